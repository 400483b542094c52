//! Durable storage of products, behind the [`ProductStore`] seam.
//!
//! The seam has five concerns, one trait each: [`Products`] (products, the
//! request ids of their creates, and the index of the vendor copies they
//! hold), [`Outbox`] (the sync worker's to-do list and its leases),
//! [`Tombstones`] (what deleted products leave for the worker),
//! [`ChangeFeed`] (the change log behind WatchProducts) and [`Operations`]
//! (long-running operations, opaque records with leases); [`ProductStore`] is
//! all five.
//!
//! A vendor copy belongs to at most one product: every write that gives a
//! product a remote id in its sync entries (`Product.sync[].remote_id`) claims
//! that (vendor, remote id) in the same atomic write, and fails with
//! [`StoreError::LinkTaken`], writing nothing, when another product holds it. Every write method resolves only after its write is durable,
//! except the primitives `write_if` and `delete_if`, which the read-modify-write
//! loops follow with `settle` before reporting any outcome; the
//! read-modify-write loops ([`Products::update`], [`Products::delete`]) are
//! written once, over each backend's versioned read and conditional write, so
//! a concurrent writer can never slip in between the read and the write.
//!
//! Backends: `sled_store` (embedded, on `durable_sled`: sled plus the
//! `group_commit` that shares one fsync among concurrent writers, with its
//! change log in a `segment_log` synced by the same commit) and
//! `postgres_store` (shared by several replicas).

mod durable_sled;
mod group_commit;
mod postgres_store;
mod segment_log;
mod sled_store;

use std::collections::BTreeSet;
use std::future::Future;

pub use durable_sled::DurableSled;
pub use postgres_store::{PostgresOptions, PostgresStore, redact_url, statements as postgres_statements};
pub use sled_store::{SledOptions, SledStore};

use bytes::Bytes;
use prost::Message;

use crate::pb::{Product, Vendor};

/// A read-modify-write that keeps losing its compare-and-swap gives up after
/// this many tries and reports contention.
const MAX_CAS_ATTEMPTS: usize = 1000;

/// Why storage failed. Carries no request data beyond ids, so it can be
/// logged as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write would give a product a vendor copy another product holds;
    /// nothing was written.
    #[error("the {} copy {remote_id:?} is linked to products/{holder}", .vendor.as_str_name())]
    LinkTaken {
        vendor: Vendor,
        remote_id: String,
        holder: String,
    },
    #[error("data directory {dir} is in use by another producthub process")]
    Locked { dir: String },
    #[error("cannot open data directory {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("cannot use the database {database}: {reason}")]
    Connect { database: String, reason: String },
    #[error(
        "data directory {dir} holds schema version {found}; this build reads versions 1 to {supported}{}",
        if .found > .supported { " (the directory was written by a newer producthub: run that version, or move the catalog with `producthub export` and `import-snapshot`)" } else { "" }
    )]
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

/// A vendor copy as the store indexes it: the vendor and its id for the copy.
pub type Link = (Vendor, String);

/// The vendor copies a product holds: each sync entry's remote id.
pub fn links_of(product: &Product) -> BTreeSet<Link> {
    product
        .sync
        .iter()
        .filter(|entry| !entry.remote_id.is_empty())
        .filter_map(|entry| Some((Vendor::try_from(entry.vendor).ok()?, entry.remote_id.clone())))
        .collect()
}

/// A product as the store keeps it: its id and its protobuf encoding, which
/// is the wire form of `producthub.v1.Product`, so a page of them can be sent
/// as it is (see `pb::ListProductsResponse`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProduct {
    pub id: String,
    pub bytes: Bytes,
}

impl StoredProduct {
    pub fn decode(&self) -> Result<Product, StoreError> {
        decode_stored(&self.id, &self.bytes)
    }
}

/// The product stored as `bytes` under `id`; bytes that do not decode are
/// [`StoreError::Corrupt`].
pub fn decode_stored(id: &str, bytes: &[u8]) -> Result<Product, StoreError> {
    Product::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: id.to_owned(),
        reason: e.to_string(),
    })
}

/// A long-running operation as the store keeps it. The store knows only
/// whether it is done and whether cancelling it was asked; what it is, is
/// the caller's encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub id: String,
    pub done: bool,
    pub cancel_requested: bool,
    pub data: Vec<u8>,
}

/// An item of the sync worker's to-do lists.
#[derive(Debug, Clone, Copy)]
pub enum Claimed<'a> {
    /// An outbox entry, by product id.
    Outbox(&'a str),
    /// A tombstone, by the deleted product's uid.
    Tombstone(&'a str),
}

/// Products and the request ids of their creates.
///
/// A backend supplies the primitives (a versioned read, a conditional write,
/// a conditional delete); the read-modify-write loops built on them,
/// [`Products::update`] and [`Products::delete`], are written once, here.
pub trait Products: Send + Sync + 'static {
    /// What a conditional write must match: the stored state it was decided on.
    type Version: Send + Sync;

    /// The product with this id, if any, as stored (not decoded): its
    /// `producthub.v1.Product` encoding.
    fn get_stored(&self, id: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// [`Products::get_stored`], decoded.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send {
        async move {
            let Some(bytes) = self.get_stored(id).await? else {
                return Ok(None);
            };
            decode_stored(id, &bytes).map(Some)
        }
    }

    /// Up to `limit` products whose ids sort after `after_id` (from the first
    /// when `None`), in ascending id order, as stored (not decoded).
    fn scan_stored(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredProduct>, StoreError>> + Send;

    /// [`Products::scan_stored`], decoded.
    fn scan(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send {
        async move {
            let stored = self.scan_stored(after_id, limit).await?;
            stored.iter().map(StoredProduct::decode).collect()
        }
    }

    /// Every product as of one moment, in ascending id order, handed to
    /// `each` a batch of at most `batch` at a time. This default pages with
    /// [`Products::scan`], which is one moment only while nothing else
    /// writes (as with a sled directory, locked to the one process that has
    /// it open); PostgreSQL reads in one REPEATABLE READ transaction.
    fn snapshot(
        &self,
        batch: usize,
        mut each: impl FnMut(Vec<Product>) -> Result<(), StoreError> + Send,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let batch = batch.max(1);
            let mut after: Option<String> = None;
            loop {
                let page = self.scan(after.as_deref(), batch).await?;
                let full = page.len() == batch;
                after = page
                    .last()
                    .map(|p| p.name.strip_prefix("products/").unwrap_or(&p.name).to_owned());
                if page.is_empty() {
                    return Ok(());
                }
                each(page)?;
                if !full {
                    return Ok(());
                }
            }
        }
    }

    /// Stores a new product under the id in its name, and, when given, the
    /// request record, atomically. A known request id wins over an id clash.
    /// With `announce`, a stored product is also put in the sync outbox (as in
    /// [`Products::update`]).
    fn insert(
        &self,
        id: &str,
        product: &Product,
        request: Option<&RequestRecord>,
        announce: bool,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    /// The product with this id and the version a conditional write must match.
    fn read_versioned(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(Self::Version, Product)>, StoreError>> + Send;

    /// Stores `next` under `id` if the product is still at `expected` (still
    /// absent for `None`), with its change-log entry, with `announce` its
    /// outbox announcement, and its vendor copies (`held`: those the product
    /// at `expected` holds) claimed or released; false if another writer
    /// changed it first, [`StoreError::LinkTaken`] if another product holds
    /// a copy `next` claims.
    fn write_if(
        &self,
        id: &str,
        expected: Option<&Self::Version>,
        held: &BTreeSet<Link>,
        next: &Product,
        announce: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the product under `id` if it is still at `expected`, logging
    /// the delete and releasing its vendor copies; with `tombstone`, leaves it
    /// behind as a tombstone (keyed by its uid) so the worker deletes its
    /// copies at the vendors. False if another writer changed it first.
    fn delete_if(
        &self,
        id: &str,
        expected: &Self::Version,
        doomed: &Product,
        tombstone: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The id of the product holding the vendor's copy `remote_id`, if any.
    fn linked(
        &self,
        vendor: Vendor,
        remote_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// [`Products::linked`] for each of `remote_ids`, in their order (a
    /// backend answers all in one round trip where it can).
    fn linked_all(
        &self,
        vendor: Vendor,
        remote_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send {
        async move {
            let mut holders = Vec::with_capacity(remote_ids.len());
            for remote_id in remote_ids {
                holders.push(self.linked(vendor, remote_id).await?);
            }
            Ok(holders)
        }
    }

    /// Fails when the store accepts no writes (e.g. after a failed flush).
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Resolves once every write before it is durable; a read-modify-write
    /// waits for it before reporting any outcome, a refusal included (it may
    /// rest on another call's write that is not durable yet).
    fn settle(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads the product with this id (`None` if missing), passes it to `change`,
    /// and stores what `change` returns, atomically. `change` may run more than
    /// once (on a write conflict) and must not have side effects. When `change`
    /// refuses, nothing is written and its error is returned inside `Ok`.
    /// With `announce`, the product is also put in the sync outbox (made
    /// durable with the product), so the sync worker looks at it; the worker's
    /// own bookkeeping writes do not announce.
    fn update<E, F>(
        &self,
        id: &str,
        announce: bool,
        change: F,
    ) -> impl Future<Output = Result<Result<Product, E>, StoreError>> + Send
    where
        E: Send,
        F: Fn(Option<Product>) -> Result<Product, E> + Send + Sync,
    {
        async move {
            self.check_writable()?;
            for _ in 0..MAX_CAS_ATTEMPTS {
                let (version, current) = match self.read_versioned(id).await? {
                    Some((version, product)) => (Some(version), Some(product)),
                    None => (None, None),
                };
                let held = current.as_ref().map(links_of).unwrap_or_default();
                let next = match change(current) {
                    Ok(next) => next,
                    Err(refusal) => {
                        self.settle().await?;
                        return Ok(Err(refusal));
                    }
                };
                if self.write_if(id, version.as_ref(), &held, &next, announce).await? {
                    self.settle().await?;
                    return Ok(Ok(next));
                }
            }
            Err(StoreError::Contention { key: id.to_owned() })
        }
    }

    /// Deletes the product with this id if `check` accepts it, atomically.
    /// Resolves to `Ok(Ok(false))` when there is no such product. With
    /// `tombstone`, the deleted product stays behind as a tombstone (keyed by
    /// its uid) until the sync worker has deleted it at its vendors; without,
    /// its vendor copies are let go of.
    fn delete<E, F>(
        &self,
        id: &str,
        tombstone: bool,
        check: F,
    ) -> impl Future<Output = Result<Result<bool, E>, StoreError>> + Send
    where
        E: Send,
        F: Fn(&Product) -> Result<(), E> + Send + Sync,
    {
        async move {
            self.check_writable()?;
            for _ in 0..MAX_CAS_ATTEMPTS {
                let Some((version, doomed)) = self.read_versioned(id).await? else {
                    self.settle().await?;
                    return Ok(Ok(false));
                };
                if let Err(refusal) = check(&doomed) {
                    self.settle().await?;
                    return Ok(Err(refusal));
                }
                if self.delete_if(id, &version, &doomed, tombstone).await? {
                    self.settle().await?;
                    return Ok(Ok(true));
                }
            }
            Err(StoreError::Contention { key: id.to_owned() })
        }
    }
}

/// The sync outbox: ids of products whose sync state may need the worker.
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` products in the sync outbox after `after_id`, in id
    /// order: (product id, nonce). A shared store may return fewer, or none
    /// while every waiting item is leased by another replica, and claims what
    /// it returns for this process for a while.
    fn outbox(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    /// How many products wait in the outbox, counted up to `cap` (leased
    /// ones included). For metrics; claims nothing.
    fn outbox_depth(&self, cap: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Right before working on an item returned by [`Outbox::outbox`] or
    /// [`Tombstones::tombstones`]: renews this process's claim on it, or
    /// returns false if another process holds it now (then leave it alone).
    /// A store used by one process only always returns true.
    fn renew_claim(&self, item: Claimed<'_>) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a product out of the outbox, unless it was put there again since
    /// `nonce` was read (then it stays, and is looked at again).
    fn settle_outbox(&self, id: &str, nonce: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What deleted products leave behind until their vendor copies are deleted.
pub trait Tombstones: Send + Sync + 'static {
    /// The tombstone of the deleted product with this uid, if any.
    fn tombstone(&self, uid: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Up to `limit` tombstones of deleted products after `after_uid`, in uid
    /// order. A shared store claims what it returns, as [`Outbox::outbox`] does.
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

    /// How many tombstones wait, counted up to `cap`. For metrics; claims nothing.
    fn tombstone_depth(&self, cap: usize) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The change log behind WatchProducts: committed product writes, each
/// product's in commit order, readable once durable.
pub trait ChangeFeed: Send + Sync + 'static {
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
}

/// Long-running operations, kept durably so that one the process was running
/// when it stopped is resumed by the next (or, on a shared store, by another
/// replica once this one's lease has run out).
pub trait Operations: Send + Sync + 'static {
    /// Stores a new, unfinished operation; false (nothing written) if one
    /// with this id exists. The creator holds its lease.
    fn create_operation(&self, id: &str, data: &[u8]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the operation's data and done flag, keeping a cancel request;
    /// false (nothing written) if there is no such unfinished operation, or
    /// another process holds it now.
    fn save_operation(
        &self,
        id: &str,
        done: bool,
        data: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The operation with this id, if any.
    fn operation(&self, id: &str) -> impl Future<Output = Result<Option<OperationRecord>, StoreError>> + Send;

    /// Up to `limit` operations after `after_id`, in id order, only those
    /// whose done flag is `done` when given.
    fn operations(
        &self,
        after_id: Option<&str>,
        limit: usize,
        done: Option<bool>,
    ) -> impl Future<Output = Result<Vec<OperationRecord>, StoreError>> + Send;

    /// Records that cancelling the operation was asked; false if there is no
    /// such operation.
    fn cancel_operation(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores part `index` of the operation (replacing what was stored under
    /// that index), for data that grows as the operation runs; false (nothing
    /// written) as for [`Operations::save_operation`].
    fn put_operation_part(
        &self,
        id: &str,
        index: u32,
        data: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Up to `limit` parts of the operation from index `from` on, in index order.
    fn operation_parts(
        &self,
        id: &str,
        from: u32,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u32, Vec<u8>)>, StoreError>> + Send;

    /// Forgets the operation and its parts; false if there was none.
    fn delete_operation(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes or renews this process's lease on an unfinished operation, for
    /// a while; false if another process holds it (then leave it alone). A
    /// store used by one process only always returns true.
    fn claim_operation(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// How long a claim lasts; `None` for a store used by one process only,
    /// where claims never run out (nothing needs renewing).
    fn operation_lease(&self) -> Option<std::time::Duration>;
}

/// A whole store: the five concerns, plus what concerns the store as one.
/// Implementations make every write durable before its future resolves, and
/// keep reads independent of writers.
pub trait ProductStore: Products + Outbox + Tombstones + ChangeFeed + Operations {
    /// Bytes the store occupies on disk.
    fn disk_bytes(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes everything written so far durable (at shutdown; and before the
    /// sync worker deletes a vendor copy for a removal it has just read).
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
