//! The rules of the canonical product, independent of transport and storage.
//!
//! Nothing here knows about tonic, HTTP, sled or any vendor: every function
//! takes and returns plain values, so the rules can be unit- and
//! property-tested directly.
//!
//! - [`names`]: resource names and AIP-122 ids.
//! - [`field_mask`]: update masks (parse, imply, merge), driven by the descriptor.
//! - [`validation`]: the schema's rules and the common fields' rules.
//! - [`filter`]: the AIP-160 subset ListProducts and WatchProducts accept.
//! - [`page_token`], [`watch_token`]: ListProducts and WatchProducts tokens.
//! - [`schema`]: the embedded descriptor and field behaviour lookup.
//! - [`sync_plan`]: the per-vendor sync state kept on the product.
//! - [`wire`]: reading a protobuf encoding field by field, for the generic
//!   rules that walk a product's bytes instead of a reflective copy, and to
//!   check that stored bytes decode without decoding them.
//! - `filled` (tests only): products filled at every depth, for property tests.

pub mod field_mask;
#[cfg(test)]
mod filled;
pub mod filter;
pub mod names;
pub mod page_token;
pub mod schema;
pub mod sync_plan;
pub mod validation;
pub mod watch_token;
pub mod wire;

mod violation;

pub use violation::{FieldViolation, join as join_violations};
