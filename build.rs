//! Compiles the protobuf API with protox (a pure-Rust protobuf compiler, so no
//! system `protoc` is needed) and generates prost messages and tonic stubs.
//!
//! The encoded descriptor set, with comments and custom options kept, is written
//! to `OUT_DIR/producthub_descriptor.bin`: gRPC reflection serves it (grpcurl
//! shows the comments), and the domain reads field behaviours from it. The
//! OpenAPI document of the REST mapping (`build/openapi.rs`) is generated from
//! it too, into `OUT_DIR/openapi.json`.

use std::{env, fs, path::PathBuf};

/// The server's router and its path templates, read by the OpenAPI
/// generator (what only the server uses is dead code here).
#[allow(dead_code)]
#[path = "src/transport/rest/template.rs"]
mod template;

#[allow(dead_code)]
#[path = "src/transport/rest/routes.rs"]
mod routes;

#[path = "build/openapi.rs"]
mod openapi;

const PROTOS: &[&str] = &[
    "proto/producthub/v1/product.proto",
    "proto/producthub/v1/product_service.proto",
    // The standard Operations service (AIP-151) that ImportVendorProducts'
    // operations are served by; product_service.proto imports it.
    "proto/google/longrunning/operations.proto",
    // The error details (tonic-types builds them; compiled so that reflection
    // can describe the details we send).
    "proto/google/rpc/error_details.proto",
];

/// The benchmark harness's echo ceilings: compiled for `producthub-bench`
/// only, kept out of the descriptor set producthub serves.
const BENCH_PROTOS: &[&str] = &["proto/producthub/bench/v1/echo.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let descriptor_set = compiler.encode_file_descriptor_set();
    fs::write(out_dir.join("producthub_descriptor.bin"), &descriptor_set)?;

    // The REST mapping's OpenAPI document, from the same descriptors.
    let pool = prost_reflect::DescriptorPool::decode(descriptor_set.as_slice())?;
    let document = openapi::document(&pool)?;
    fs::write(out_dir.join("openapi.json"), serde_json::to_string_pretty(&document)?)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Ordered maps encode deterministically: equal products give equal bytes.
        .btree_map(".")
        // Written by hand, so that a page can carry products as stored
        // (src/pb/list_page.rs); the same message on the wire.
        .extern_path(".producthub.v1.ListProductsResponse", "crate::pb::ListProductsResponse")
        // prost's codec, with each response buffer reserved at its size (src/pb/codec.rs).
        .codec_path("crate::pb::SizedCodec")
        .compile_fds(compiler.file_descriptor_set())?;

    let mut bench = protox::Compiler::new(["proto"])?;
    bench.open_files(BENCH_PROTOS)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The same codec as producthub's, so that the echo ceilings pay no
        // buffer growth producthub does not pay either.
        .codec_path("producthub::pb::SizedCodec")
        .compile_fds(bench.file_descriptor_set())?;
    Ok(())
}
