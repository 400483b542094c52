//! producthub keeps one canonical `Product` and serves it over gRPC.
//!
//! The crate is layered so each part can be read and tested alone (see
//! ARCHITECTURE.md): [`domain`] holds the rules (names, field masks, validation,
//! filters, page tokens) and knows nothing of gRPC or sled; [`storage`] persists
//! products durably behind the [`storage::ProductStore`] seam; [`catalog`] carries
//! out the use cases with the two; [`transport`] is the tonic server and the only
//! place that speaks `tonic::Status`.

pub mod adapters;
pub mod catalog;
pub mod domain;
pub mod pb;
pub mod storage;
pub mod sync;
pub mod transport;
