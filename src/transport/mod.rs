//! The gRPC transport: tonic service, status mapping, call logging, the guard,
//! the server, the Prometheus endpoint and the vendors' webhook endpoint.
//!
//! This is the only layer that knows about tonic and HTTP/2. It turns requests
//! into catalog calls and [`crate::catalog::CatalogError`]s into `tonic::Status`
//! (in [`status`], the one place where that mapping lives).

mod auth;
mod call_log;
mod connections;
mod deadline;
mod grpc_frame;
mod guard;
pub mod metrics;
pub mod rest;
mod server;
mod service;
mod status;
mod stored_get;
pub mod webhooks;

pub use auth::{Scope, Tokens, TokensError};
pub use connections::{ConnectionLimits, Listener, bind, fit_to_descriptor_limit, raise_open_file_limit};
pub use server::{GrpcError, GrpcOptions, TlsFiles, serve_grpc};
pub use service::ProductApi;
pub use status::{to_status, vendor_error_code};
