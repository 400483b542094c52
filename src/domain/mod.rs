//! The rules of the canonical product, independent of transport and storage.
//!
//! Nothing here knows about tonic, HTTP or sled: every function takes and returns
//! plain values, so the rules can be unit- and property-tested directly.

pub mod field_mask;
pub mod filter;
pub mod names;
pub mod page_token;
pub mod schema;
pub mod validation;
pub mod watch_token;

mod violation;

pub use violation::{FieldViolation, join as join_violations};
