//! Durable storage of products, behind the narrow [`ProductStore`] seam.
//!
//! The catalog talks only to this trait, so another backend (e.g. PostgreSQL) can
//! be added without touching the service. Every write method resolves only after
//! its write is durable; each runs the caller's decision (`change`, `check`)
//! atomically against the stored product, so a concurrent writer can never slip
//! in between the read and the write.

mod group_commit;
mod postgres_store;
mod sled_store;

use std::future::Future;

pub use postgres_store::{PostgresOptions, PostgresStore, redact_url};
pub use sled_store::{DurableLog, SledOptions, SledStore};

use crate::pb::Product;

/// A read-modify-write that keeps losing its compare-and-swap gives up after
/// this many tries and reports contention.
const MAX_CAS_ATTEMPTS: usize = 1000;

/// Why storage failed. Carries no request data, so it can be logged as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {dir} is in use by another producthub process")]
    Locked { dir: String },
    #[error("cannot open data directory {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("cannot use the database {database}: {reason}")]
    Connect { database: String, reason: String },
    #[error("data directory {dir} holds schema version {found}; this build reads version {supported}")]
    UnsupportedSchema { dir: String, found: u32, supported: u32 },
    #[error("storage failed: {0}")]
    Backend(String),
    #[error("stored record {key:?} cannot be read: {reason}")]
    Corrupt { key: String, reason: String },
    /// A flush failed: the write may or may not be on disk.
    #[error("could not make the write durable ({0}); producthub accepts no more writes until it is restarted")]
    Durability(String),
    /// An earlier flush failed, so writes are refused (reads still work).
    #[error("storage is read-only after a failed flush ({0}); fix the disk and restart producthub")]
    ReadOnly(String),
    /// The database cannot be reached; nothing was written.
    #[error("the database is unavailable ({0}); retry later")]
    Unavailable(String),
    /// The connection broke while a write was in flight: it may or may not
    /// have been committed.
    #[error(
        "the database connection broke during the write ({0}); it may or may not have been committed: read before retrying"
    )]
    Uncertain(String),
    /// Concurrent writers kept changing the record; nothing was written.
    #[error("too many concurrent changes to {key:?}; retry")]
    Contention { key: String },
}

/// What a create request left behind for idempotent retries (AIP-155).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub request_id: String,
    /// The request as first received, to tell a true retry from a reused id.
    pub fingerprint: Vec<u8>,
    /// The product the first call returned.
    pub product: Product,
}

/// How an insert ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// The product was stored (durably).
    Inserted,
    /// A product with this id already exists; nothing was written.
    IdTaken,
    /// The request id was seen before; nothing was written. Holds the record of
    /// the first call.
    Replayed(Box<RequestRecord>),
}

/// What a committed change did to a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// Where a change sits in the change log. Positions are totally ordered (by
/// `major`, then `minor`); what the parts mean is the backend's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct LogPosition {
    pub major: u64,
    pub minor: u64,
}

/// One entry of the change log: a committed product write. Each product's
/// changes are in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub position: LogPosition,
    pub kind: ChangeKind,
    /// The product as the change left it; for a delete, as it was.
    pub product: Product,
    pub commit_time: prost_types::Timestamp,
}

/// The part of the change log that can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeWindow {
    /// Changes at or before this position are gone (trimmed) or never were.
    pub trimmed_through: LogPosition,
    /// The newest change watchers may read (durable, nothing pending before it).
    pub newest: LogPosition,
}

/// An item of the sync worker's to-do lists.
#[derive(Debug, Clone, Copy)]
pub enum Claimed<'a> {
    /// An outbox entry, by product id.
    Outbox(&'a str),
    /// A tombstone, by the deleted product's uid.
    Tombstone(&'a str),
}

/// The storage seam. Implementations must make every write durable before the
/// returned future resolves, and keep reads independent of writers.
pub trait ProductStore: Send + Sync + 'static {
    /// The product with this id, if any.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Up to `limit` products whose ids sort after `after_id` (from the first
    /// when `None`), in ascending id order.
    fn scan(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    /// Stores a new product under the id in its name, and, when given, the
    /// request record, atomically. A known request id wins over an id clash.
    /// With `announce`, a stored product is also put in the sync outbox (as in
    /// [`ProductStore::update`]).
    fn insert(
        &self,
        id: &str,
        product: &Product,
        request: Option<&RequestRecord>,
        announce: bool,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    /// Reads the product with this id (`None` if missing), passes it to `change`,
    /// and stores what `change` returns, atomically. `change` may run more than
    /// once (on a write conflict) and must not have side effects. When `change`
    /// refuses, nothing is written and its error is returned inside `Ok`.
    /// With `announce`, the product is also put in the sync outbox (written
    /// first, made durable with the product), so the sync worker looks at it;
    /// the worker's own bookkeeping writes do not announce.
    fn update<E, F>(
        &self,
        id: &str,
        announce: bool,
        change: F,
    ) -> impl Future<Output = Result<Result<Product, E>, StoreError>> + Send
    where
        E: Send,
        F: Fn(Option<Product>) -> Result<Product, E> + Send + Sync;

    /// Deletes the product with this id if `check` accepts it, atomically.
    /// Resolves to `Ok(Ok(false))` when there is no such product. The deleted
    /// product stays behind as a tombstone (keyed by its uid) until the sync
    /// worker has deleted it at its vendors.
    fn delete<E, F>(&self, id: &str, check: F) -> impl Future<Output = Result<Result<bool, E>, StoreError>> + Send
    where
        E: Send,
        F: Fn(&Product) -> Result<(), E> + Send + Sync;

    /// Up to `limit` products in the sync outbox after `after_id`, in id
    /// order: (product id, nonce). A shared store may return fewer (never
    /// none while some wait) and claims them for this process for a while.
    fn outbox(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    /// How many products wait in the outbox, counted up to `cap` (leased
    /// ones included). For metrics; claims nothing.
    fn outbox_depth(&self, cap: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// How many tombstones wait, counted up to `cap`. For metrics; claims nothing.
    fn tombstone_depth(&self, cap: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Right before working on an item returned by [`ProductStore::outbox`] or
    /// [`ProductStore::tombstones`]: renews this process's claim on it, or
    /// returns false if another process holds it now (then leave it alone).
    /// A store used by one process only always returns true.
    fn renew_claim(&self, item: Claimed<'_>) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a product out of the outbox, unless it was put there again since
    /// `nonce` was read (then it stays, and is looked at again).
    fn settle_outbox(&self, id: &str, nonce: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The tombstone of the deleted product with this uid, if any.
    fn tombstone(&self, uid: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Up to `limit` tombstones of deleted products after `after_uid`, in uid order.
    fn tombstones(
        &self,
        after_uid: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    /// Replaces a tombstone (to record delivery attempts), or removes it with `None`.
    fn set_tombstone(
        &self,
        uid: &str,
        product: Option<&Product>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Identifies this store's change log, so a resume token minted by another
    /// store is recognised as such; `None` when the store keeps no change log.
    fn change_log_id(&self) -> Option<u64>;

    /// Which changes can be read now.
    fn change_window(&self) -> impl Future<Output = Result<ChangeWindow, StoreError>> + Send;

    /// Up to `limit` readable changes after `after`, in position order.
    fn changes(&self, after: LogPosition, limit: usize)
    -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Changes its value whenever more changes may have become readable.
    fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Forgets all but the newest `keep` changes; returns how many it removed.
    fn trim_changes(&self, keep: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Bytes the store occupies on disk.
    fn disk_bytes(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes everything written so far durable (used at shutdown).
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
