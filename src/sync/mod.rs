//! Outbound sync: every accepted change reaches each vendor whose profile the
//! product has, through a durable outbox, across vendor outages and restarts.
//!
//! - [`lane`]: one lane per vendor, which scans the outbox and tombstones
//!   and runs that vendor's deliveries, a bounded number at a time, each
//!   product's in order; a slow, down or rate-limiting vendor holds up only
//!   its own lane.
//! - [`worker`]: one delivery of a product's change to one vendor (or one
//!   delete of a deleted product's copy) through the vendor's adapter and
//!   connection, and its outcome recorded on the product (the bookkeeping
//!   itself is `domain::sync_plan`).
//!
//! The worker names no vendor: what differs between vendors (reading the
//! current copy before an update, what "already gone" looks like) is asked of
//! each vendor's [`Adapter`](crate::vendors::Adapter).

pub mod lane;
pub mod worker;

use std::time::Duration;

pub use worker::SyncWorker;

/// How failed deliveries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first retry waits about this long; each further one twice as long.
    pub base: Duration,
    /// No wait is longer than this (unless the vendor's Retry-After says so).
    pub max: Duration,
    /// How long one HTTP call to a vendor may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
        }
    }
}
