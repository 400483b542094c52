//! producthub keeps one canonical `Product`, serves it over gRPC, and keeps
//! three vendors' product APIs in agreement with it.
//!
//! Layers only look down (ARCHITECTURE.md; `tests/architecture.rs` checks it):
//!
//! - [`pb`]: the generated protobuf code and the embedded descriptor set, with
//!   the one message written by hand (a ListProducts page of stored bytes) and
//!   the services' codec.
//! - [`domain`]: the rules (names, field masks, validation, filters, tokens,
//!   the sync plan), pure functions over `pb` messages; knows no gRPC, no
//!   storage, no vendor.
//! - [`storage`]: products (and the vendor copies they hold), the sync outbox,
//!   tombstones, the change log and long-running operations, durable behind
//!   the [`storage::ProductStore`] seam (sled or PostgreSQL).
//! - [`snapshot`]: the catalog as JSON lines, exported from a store as of
//!   one moment and imported into an empty one (backups, moving backends).
//! - [`vendors`]: one folder per vendor (EnOS, Cryptlex, Revenium) and the
//!   registry listing them; builds requests, reads answers, authenticates.
//! - [`catalog`]: the use cases (create, get, list, update, delete, watch,
//!   sync, render, import; link and unlink vendor copies; import a vendor's
//!   catalog as a long-running operation, and the Operations service;
//!   reconcile copies changed at the vendors) over the store, the domain and
//!   the vendors.
//! - [`sync`]: the worker delivering changes from the outbox to the vendors.
//! - [`transport`]: the tonic server (with the same calls as HTTP/JSON on its
//!   port, transcoded from the protos' `google.api.http` rules), the only
//!   place that speaks `tonic::Status`, and the metrics and webhook endpoints.
//! - [`app`]: the wiring of all of them into one running server.
//! - [`cli`]: the command-line clients of a running server (`producthub
//!   import`, `link`, `unlink`), speaking only the public API.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod domain;
pub mod pb;
pub mod snapshot;
pub mod storage;
pub mod sync;
pub mod transport;
pub mod vendors;
