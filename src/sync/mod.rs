//! Outbound sync: every accepted change reaches each vendor whose profile the
//! product has, through a durable outbox, across vendor outages and restarts.
//!
//! - [`plan`]: the per-vendor sync state kept on the product (pure).
//! - [`config`]: which vendors are configured, with their credentials.
//! - [`http`]: sends adapter-built requests with each vendor's authentication.
//! - [`worker`]: the background loop that delivers and records outcomes.

pub mod config;
pub mod http;
pub mod plan;
pub mod worker;

pub use config::{CryptlexConfig, EnosConfig, RetryPolicy, ReveniumConfig, Secret, SyncConfig};
pub use worker::SyncWorker;
