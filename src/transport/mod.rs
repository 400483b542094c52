//! The gRPC transport: tonic service, status mapping, call logging, server.
//!
//! This is the only layer that knows about tonic and HTTP/2. It turns requests
//! into catalog calls and [`crate::catalog::CatalogError`]s into `tonic::Status`
//! (in [`status`], the one place where that mapping lives).

mod auth;
mod call_log;
mod guard;
mod metrics;
mod server;
mod service;
mod status;

pub use auth::{Scope, Tokens, TokensError};
pub use server::{ServeError, ServerConfig, StoreChoice, TlsFiles, serve};
pub use service::ProductApi;
pub use status::{to_status, vendor_error_code};
