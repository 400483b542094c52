//! Code generated from `proto/` by build.rs: prost messages and tonic stubs.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Google API annotations (field behaviour).
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

tonic::include_proto!("producthub.v1");

/// The encoded `FileDescriptorSet` of the whole API, including imports, comments
/// and custom options: served by gRPC reflection and read by [`crate::domain::schema`].
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("producthub_descriptor");
