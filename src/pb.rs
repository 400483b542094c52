//! Code generated from `proto/` by build.rs: prost messages and tonic stubs.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Google API annotations (field behaviour), `google.rpc` (error details and
/// the status an operation ends with) and the standard long-running
/// Operations service (AIP-151).
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
}

/// The producthub API, at the path its package names so that generated
/// references to the Google packages resolve; re-exported at `pb::`.
pub mod producthub {
    pub mod v1 {
        tonic::include_proto!("producthub.v1");
    }
}

pub use producthub::v1::*;

mod codec;
mod list_page;
pub use codec::SizedCodec;
pub use list_page::ListProductsResponse;

/// The encoded `FileDescriptorSet` of the whole API, including imports, comments
/// and custom options: served by gRPC reflection and read by [`crate::domain::schema`].
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("producthub_descriptor");
