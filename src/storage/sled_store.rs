//! The embedded default backend: sled in a local data directory.
//!
//! Layout (schema version 2):
//! - tree `products`: product id → `producthub.v1.Product` protobuf bytes;
//! - tree `request_ids`: request id → [`StoredRequest`] protobuf bytes;
//! - tree `outbox`: product id → a random u64 nonce: "look at this product's
//!   sync", written before the product, so a crash never loses the hint;
//! - tree `tombstones`: deleted product's uid → its last protobuf bytes, written
//!   before the delete, removed by the sync worker once vendors have it gone;
//! - directory `changes/`: the change log behind WatchProducts, a
//!   [`SegmentLog`] of seq → [`StoredChange`], its entry staged under the
//!   product's lock right after its compare-and-swap (so per product the log
//!   has the commit order) and written and synced by the group commit that
//!   makes the swap durable. (In schema version 1 the log was a sled tree
//!   `changes`; opening such a directory moves it into segments and
//!   upgrades the directory to version 2.)
//! - tree `links`: big-endian i32 vendor + remote id → the id of the product
//!   holding that vendor copy. Changed only under one lock, claimed before
//!   the product's swap and released after it, so a crash can leave an entry
//!   whose product no longer holds the copy: such an entry is stale and is
//!   taken over (a holder is always checked against its product);
//! - tree `operations`: operation id → one byte done flag + the operation's
//!   bytes; tree `operation_cancels`: ids of operations asked to stop; tree
//!   `operation_parts`: operation id, a zero byte, big-endian u32 index → a
//!   part's bytes;
//! - default tree, key `schema_version`: big-endian u32; key `change_log_id`:
//!   a random u64 chosen when the directory was created; key
//!   `changes_trimmed_through`: big-endian u64, the newest seq trimmed from
//!   the change log (segments are deleted whole, later); key
//!   `changes_written_through`: big-endian u64, the newest change log seq
//!   written before the last flush (see `durable_sled`); key `links_indexed`:
//!   present once `links` was built from the products (directories from
//!   before the index get it at their first open).
//!
//! sled transactions and batches are deliberately not used: in sled 0.34 the
//! first one switches the whole process to a global reader-writer lock, after
//! which every read waits behind writers and flushes. Instead, each product
//! changes by compare-and-swap of its own key (retried on conflict), which keeps
//! reads lock-free, and the two-key create-with-request-id is ordered so that a
//! crash between its writes is completed by the retry (see [`StoredRequest`]).
//!
//! Durability: sled's flush writes with `sync_file_range`, which does not
//! persist file metadata; the committer follows it with `fdatasync` on sled's
//! log file, so an acknowledged write survives power loss, not only a crash.

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use prost::Message;

use super::durable_sled::DurableSled;
use super::segment_log::SegmentLog;
use super::{
    Change, ChangeFeed, ChangeKind, ChangeWindow, Claimed, InsertOutcome, Link, LogPosition, OperationRecord,
    Operations, Outbox, ProductStore, Products, RequestRecord, StoreError, StoredProduct, Tombstones, links_of,
};
use crate::pb::{Product, Vendor};

/// Version 2 keeps the change log in segment files; version 1 kept it in a
/// sled tree, and is upgraded at open.
const SCHEMA_VERSION: u32 = 2;
const FIRST_SCHEMA_WITH_SEGMENTS: u32 = 2;
const SCHEMA_KEY: &[u8] = b"schema_version";
const CHANGE_LOG_ID_KEY: &[u8] = b"change_log_id";
const LINKS_INDEXED_KEY: &[u8] = b"links_indexed";
const TRIMMED_THROUGH_KEY: &[u8] = b"changes_trimmed_through";
/// Product writes are serialised per product (compare-and-swap plus its change
/// log entry) over this many locks.
const PRODUCT_LOCKS: usize = 64;
const LOCK_FILE: &str = "LOCK";
/// Creates with a request id are serialised per request id, over this many locks.
const REQUEST_LOCKS: usize = 64;

/// Tuning knobs of the sled backend.
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// The most memory sled may use for its page cache, in bytes.
    pub cache_capacity_bytes: u64,
    /// Keep the change log behind WatchProducts. Off, writes skip it (no
    /// entry to stage and write, no second file to sync per flush), and the
    /// log and its id are dropped, so resume tokens from before are refused
    /// later.
    pub change_log: bool,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 64 * 1024 * 1024,
            change_log: true,
        }
    }
}

/// The request-id record as stored.
///
/// A create with a request id first stores this record with `completed` false,
/// then the product, then marks the record completed. A retry that finds an
/// uncompleted record (the first call stopped in between, e.g. in a crash)
/// finishes the job instead of creating a second product.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRequest {
    #[prost(bytes = "vec", tag = "1")]
    fingerprint: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    product: Option<Product>,
    #[prost(bool, tag = "3")]
    completed: bool,
}

/// A change log entry as stored.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredChange {
    #[prost(uint32, tag = "1")]
    kind: u32,
    /// The product's protobuf bytes, as stored in `products`.
    #[prost(bytes = "vec", tag = "2")]
    product: Vec<u8>,
    #[prost(int64, tag = "3")]
    commit_unix_micros: i64,
}

fn kind_code(kind: ChangeKind) -> u32 {
    match kind {
        ChangeKind::Created => 1,
        ChangeKind::Updated => 2,
        ChangeKind::Deleted => 3,
    }
}

fn kind_of(code: u32) -> Option<ChangeKind> {
    match code {
        1 => Some(ChangeKind::Created),
        2 => Some(ChangeKind::Updated),
        3 => Some(ChangeKind::Deleted),
        _ => None,
    }
}

/// Where the change log's segments live, inside the data directory.
const CHANGES_DIR: &str = "changes";
/// The sled tree the change log was kept in before it moved to segments.
const OLD_CHANGES_TREE: &[u8] = b"changes";

/// The change log: its entries, and what watchers may read of them.
///
/// Entries live in a [`SegmentLog`] outside sled. A writer stages its entry
/// (taking the next seq) under the product's lock, so per product seqs follow
/// commits; the group committer writes a flush's staged entries in one go
/// before flushing sled and syncs them beside sled's sync, and records in
/// sled the newest seq it wrote, so that after a crash entries of writes sled
/// did not keep are dropped. A seq without an entry (dropped so, or lost with
/// a crash before it was durable) is a gap that readers skip; a crash never
/// makes one below a seq watchers have read.
struct ChangeLog {
    /// `None` when the log is off.
    log: Option<Arc<SegmentLog>>,
    /// The newest seq watchers may read: durable.
    durable: tokio::sync::watch::Sender<u64>,
    /// Seqs up to here are trimmed, though the segment holding them may still
    /// be on disk (segments are deleted whole). Kept in sled, so a restart
    /// does not bring trimmed entries back (a crash may bring back the last
    /// second's, which is harmless: they are still true).
    trimmed_through: AtomicU64,
    /// Held by a trim, so two never interleave.
    trimming: Mutex<()>,
    /// `None` when the log is off.
    id: Option<u64>,
}

impl ChangeLog {
    /// Opens the log in `dir` and has `sled`'s committer write it, moving in
    /// the entries of a log kept in sled by an earlier version; with
    /// `enabled` false, deletes what was kept of the log instead.
    fn open(sled: &DurableSled, dir: &Path, enabled: bool) -> Result<Self, String> {
        let db = sled.db();
        let had_old_tree = db.tree_names().iter().any(|name| name == OLD_CHANGES_TREE);
        if !enabled {
            // Tokens from this log must not resume a later one: changes made
            // while it is off are not in it. The id goes first (sled's flush,
            // then the files), so a crash in between leaves no id over an
            // emptied log.
            db.remove(CHANGE_LOG_ID_KEY).map_err(|e| e.to_string())?;
            db.remove(TRIMMED_THROUGH_KEY).map_err(|e| e.to_string())?;
            sled.clear_journal_written_through()?;
            db.flush().map_err(|e| e.to_string())?;
            SegmentLog::remove(&dir.join(CHANGES_DIR)).map_err(|e| e.to_string())?;
            if had_old_tree {
                db.drop_tree(OLD_CHANGES_TREE).map_err(|e| e.to_string())?;
            }
            return Ok(Self {
                log: None,
                durable: tokio::sync::watch::Sender::new(0),
                trimmed_through: AtomicU64::new(0),
                trimming: Mutex::new(()),
                id: None,
            });
        }
        // No record yet: nothing the log holds was ever committed (a crash
        // during the first flush), except while a version-1 log is moved in,
        // which records it only once the move is done.
        let committed = match sled.journal_written_through()? {
            None if !had_old_tree => Some(0),
            committed => committed,
        };
        let log = Arc::new(SegmentLog::open(&dir.join(CHANGES_DIR), committed).map_err(|e| e.to_string())?);
        if had_old_tree {
            move_old_entries(sled, &log)?;
        }
        sled.attach_journal(log.clone())?;
        let id = match db.get(CHANGE_LOG_ID_KEY).map_err(|e| e.to_string())? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| "the change log id is not 8 bytes")?,
            None => {
                let id = uuid::Uuid::new_v4().as_u64_pair().0;
                db.insert(CHANGE_LOG_ID_KEY, &id.to_be_bytes())
                    .map_err(|e| e.to_string())?;
                id
            }
        };
        let trimmed_through = match db.get(TRIMMED_THROUGH_KEY).map_err(|e| e.to_string())? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| "the change log's trim point is not 8 bytes")?,
            None => 0,
        };
        let last = log.last_taken();
        Ok(Self {
            log: Some(log),
            durable: tokio::sync::watch::Sender::new(last),
            trimmed_through: AtomicU64::new(trimmed_through.min(last)),
            trimming: Mutex::new(()),
            id: Some(id),
        })
    }

    /// Stages the entry for the next flush, taking the next seq. Called under
    /// the product's lock, so per product seqs follow commits.
    fn append(&self, kind: ChangeKind, product: &[u8]) {
        if let Some(log) = &self.log {
            let micros = unix_micros(SystemTime::now());
            log.append(|buffer| encode_change(kind, product, micros, buffer));
        }
    }

    /// The newest seq handed out: every entry up to it is staged for the
    /// next flush, written, or missing (a gap readers skip).
    fn settled(&self) -> u64 {
        self.log.as_ref().map_or(0, |log| log.last_taken())
    }

    /// Everything up to `seq` is durable now.
    fn publish(&self, seq: u64) {
        self.durable.send_if_modified(|newest| {
            let newer = seq > *newest;
            if newer {
                *newest = seq;
            }
            newer
        });
    }
}

/// Moves the entries of the sled tree an earlier version kept the log in
/// into the segments, under their seqs (so resume tokens stay valid), makes
/// them durable, then drops the tree. Interrupted, it is finished at the
/// next open: entries already moved are not moved twice.
fn move_old_entries(sled: &DurableSled, log: &SegmentLog) -> Result<(), String> {
    /// Written out in pieces, so a long log is never all in memory.
    const PIECE_BYTES: usize = 1 << 20;
    let db = sled.db();
    let tree = db.open_tree(OLD_CHANGES_TREE).map_err(|e| e.to_string())?;
    let already = log.last_taken();
    for entry in tree.range((already + 1).to_be_bytes()..) {
        let (key, value) = entry.map_err(|e| e.to_string())?;
        let seq = seq_of(&key).ok_or("a change log key is not 8 bytes")?;
        log.append_at(seq, &value);
        if log.staged_bytes() >= PIECE_BYTES {
            log.write_staged().map_err(|e| e.to_string())?;
        }
    }
    log.write_staged().map_err(|e| e.to_string())?;
    log.sync().map_err(|e| e.to_string())?;
    sled.set_journal_written_through(log.last_taken())?;
    db.flush().map_err(|e| e.to_string())?;
    db.drop_tree(OLD_CHANGES_TREE).map_err(|e| e.to_string())?;
    db.flush().map_err(|e| e.to_string())?;
    Ok(())
}

/// Encodes a [`StoredChange`] straight into the log's buffer, without first
/// copying the product's bytes into a message of their own.
fn encode_change(kind: ChangeKind, product: &[u8], commit_unix_micros: i64, buffer: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, int64, uint32};
    uint32::encode(1, &kind_code(kind), buffer);
    encode_key(2, WireType::LengthDelimited, buffer);
    encode_varint(product.len() as u64, buffer);
    buffer.extend_from_slice(product);
    if commit_unix_micros != 0 {
        int64::encode(3, &commit_unix_micros, buffer);
    }
}

/// sled's change log is one sequence: positions are (0, seq).
fn position(seq: u64) -> LogPosition {
    LogPosition { major: 0, minor: seq }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

fn unix_micros(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub struct SledStore {
    products: sled::Tree,
    requests: sled::Tree,
    outbox: sled::Tree,
    tombstones: sled::Tree,
    links: sled::Tree,
    operations: sled::Tree,
    operation_cancels: sled::Tree,
    operation_parts: sled::Tree,
    changes: ChangeLog,
    /// Held by every write that claims or releases vendor copies, so two
    /// products can never both claim one.
    link_lock: Mutex<()>,
    request_locks: Vec<Mutex<()>>,
    product_locks: Vec<Mutex<()>>,
    /// Dropped after the trees (fields drop in order), so the database is
    /// closed before the directory lock is released.
    sled: DurableSled,
    /// Held for the store's lifetime: the OS releases the lock when the file is
    /// closed, including when the process dies.
    _lock: File,
}

impl SledStore {
    /// Opens (creating if needed) the data directory `dir`.
    pub fn open(dir: &Path, options: &SledOptions) -> Result<Self, StoreError> {
        let shown = dir.display().to_string();
        let open_error = |reason: String| StoreError::Open {
            dir: shown.clone(),
            reason,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(open_error(
                "it is a file, not a directory; give --data-dir a directory (it is created if missing)".into(),
            ));
        }
        fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        let lock = lock_dir(dir)?;
        let sled = DurableSled::open(dir, options.cache_capacity_bytes).map_err(open_error)?;
        let db = sled.db().clone();
        let schema = check_schema(&db, &shown)?;
        let products = db.open_tree("products").map_err(|e| open_error(e.to_string()))?;
        let requests = db.open_tree("request_ids").map_err(|e| open_error(e.to_string()))?;
        let outbox = db.open_tree("outbox").map_err(|e| open_error(e.to_string()))?;
        let tombstones = db.open_tree("tombstones").map_err(|e| open_error(e.to_string()))?;
        let links = db.open_tree("links").map_err(|e| open_error(e.to_string()))?;
        let operations = db.open_tree("operations").map_err(|e| open_error(e.to_string()))?;
        let operation_cancels = db
            .open_tree("operation_cancels")
            .map_err(|e| open_error(e.to_string()))?;
        let operation_parts = db.open_tree("operation_parts").map_err(|e| open_error(e.to_string()))?;
        index_links(&db, &products, &links)?;
        // After the schema check: a directory this build refuses is left as it is.
        let changes = ChangeLog::open(&sled, dir, options.change_log).map_err(open_error)?;
        if schema < FIRST_SCHEMA_WITH_SEGMENTS {
            // Only now that the log has moved: interrupted before, the next
            // open moves the rest.
            db.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(backend)?;
            db.flush().map_err(backend)?;
        }
        Ok(Self {
            products,
            requests,
            outbox,
            tombstones,
            links,
            operations,
            operation_cancels,
            operation_parts,
            link_lock: Mutex::new(()),
            changes,
            request_locks: (0..REQUEST_LOCKS).map(|_| Mutex::new(())).collect(),
            product_locks: (0..PRODUCT_LOCKS).map(|_| Mutex::new(())).collect(),
            sled,
            _lock: lock,
        })
    }

    /// Leaves a closed data directory so the next open starts quickly: sled
    /// 0.34 writes the snapshot of its page table only while it opens, so the
    /// next start would otherwise read back every log segment written since
    /// the last one (about a second after a million writes here; a restart
    /// after this reads only the snapshot). It takes the directory's lock and
    /// has sled open and close once, which replays the log into a new
    /// snapshot; no key changes. A crash in the middle leaves at most an
    /// unfinished snapshot, which the next open removes (see
    /// `DurableSled::open`). False if the directory holds no sled database;
    /// `Locked` while a store has it open.
    pub fn checkpoint(dir: &Path, options: &SledOptions) -> Result<bool, StoreError> {
        let _lock = lock_dir(dir)?;
        DurableSled::checkpoint(dir, options.cache_capacity_bytes).map_err(|reason| StoreError::Open {
            dir: dir.display().to_string(),
            reason,
        })
    }

    /// Refuses writes once a flush has failed (see the group committer).
    fn ensure_writable(&self) -> Result<(), StoreError> {
        match self.sled.failure() {
            Some(why) => Err(StoreError::ReadOnly(why)),
            None => Ok(()),
        }
    }

    /// Waits until everything written so far is durable, then lets watchers
    /// see the changes that flush covered.
    async fn durable(&self) -> Result<(), StoreError> {
        let settled = self.changes.settled();
        self.sled.durable().await.map_err(StoreError::Durability)?;
        self.changes.publish(settled);
        Ok(())
    }

    fn request_lock(&self, request_id: &str) -> std::sync::MutexGuard<'_, ()> {
        striped_lock(&self.request_locks, request_id)
    }

    /// Replaces the product under `key` if it is still `current`, and logs the
    /// change; false if another writer changed it first. Serialised per
    /// product, so the log has each product's changes in commit order.
    fn swap_and_log(
        &self,
        key: &str,
        current: Option<&[u8]>,
        next: Option<&[u8]>,
        kind: ChangeKind,
    ) -> Result<bool, StoreError> {
        let _serialised = striped_lock(&self.product_locks, key);
        let swapped = self
            .products
            .compare_and_swap(key.as_bytes(), current, next)
            .map_err(backend)?;
        if swapped.is_err() {
            return Ok(false);
        }
        // A delete logs the product as it was. Staging cannot fail; a failed
        // write of the log fails the flush that would make this write durable,
        // like a failed flush of sled (the store turns read-only).
        self.changes.append(kind, next.or(current).unwrap_or_default());
        Ok(true)
    }

    /// The create-with-request-id protocol; called with the request's lock held.
    fn insert_with_request(
        &self,
        id: &str,
        product: &Product,
        record: &RequestRecord,
        announce: bool,
    ) -> Result<InsertOutcome, StoreError> {
        let key = record.request_id.as_bytes();
        if let Some(bytes) = self.requests.get(key).map_err(backend)? {
            let stored = StoredRequest::decode(bytes.as_ref()).map_err(|e| StoreError::Corrupt {
                key: record.request_id.clone(),
                reason: e.to_string(),
            })?;
            let first = stored.product.clone().unwrap_or_default();
            if !stored.completed {
                let first_id = first.name.strip_prefix("products/").unwrap_or_default().to_owned();
                if !self.finish_interrupted_create(&first_id, &first, announce)? {
                    self.requests.remove(key).map_err(backend)?;
                    return Ok(InsertOutcome::IdTaken);
                }
                self.put_request(
                    key,
                    StoredRequest {
                        completed: true,
                        ..stored.clone()
                    },
                )?;
            }
            return Ok(InsertOutcome::Replayed(Box::new(RequestRecord {
                request_id: record.request_id.clone(),
                fingerprint: stored.fingerprint,
                product: first,
            })));
        }
        let pending = StoredRequest {
            fingerprint: record.fingerprint.clone(),
            product: Some(record.product.clone()),
            completed: false,
        };
        self.put_request(key, pending.clone())?;
        if self.insert_new(id, product, announce)? {
            self.put_request(
                key,
                StoredRequest {
                    completed: true,
                    ..pending
                },
            )?;
            Ok(InsertOutcome::Inserted)
        } else {
            self.requests.remove(key).map_err(backend)?;
            Ok(InsertOutcome::IdTaken)
        }
    }

    /// Whether the product of an interrupted create is (now) stored: inserted
    /// here, or found already stored by that same create (same uid).
    fn finish_interrupted_create(&self, id: &str, product: &Product, announce: bool) -> Result<bool, StoreError> {
        if self.insert_new(id, product, announce)? {
            return Ok(true);
        }
        Ok(read_product(&self.products, id)?.is_some_and(|existing| existing.uid == product.uid))
    }

    fn put_request(&self, key: &[u8], record: StoredRequest) -> Result<(), StoreError> {
        self.requests
            .insert(key, record.encode_to_vec())
            .map(|_| ())
            .map_err(backend)
    }

    /// Puts the product in the sync outbox with a fresh nonce.
    fn announce(&self, id: &str) -> Result<(), StoreError> {
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        self.outbox
            .insert(id.as_bytes(), &nonce.to_be_bytes())
            .map(|_| ())
            .map_err(backend)
    }

    /// Stores the product if the id is free; false if it is taken.
    fn insert_new(&self, id: &str, product: &Product, announce: bool) -> Result<bool, StoreError> {
        if announce {
            self.announce(id)?;
        }
        let bytes = product.encode_to_vec();
        let inserted = self.with_links(id, &BTreeSet::new(), &links_of(product), || {
            self.swap_and_log(id, None, Some(&bytes), ChangeKind::Created)
        })?;
        if inserted && announce {
            // Again after the write: a worker that settled the first nonce
            // before it could see this product must look once more.
            self.announce(id)?;
        }
        Ok(inserted)
    }
}

impl SledStore {
    /// Runs `swap` (a product's compare-and-swap) with the product's vendor
    /// copies going from `held` to `wanted`: the new ones claimed first
    /// (refused if another product holds one), the ones let go released
    /// after a swap that happened; a lost swap gives back what it claimed.
    fn with_links(
        &self,
        id: &str,
        held: &BTreeSet<Link>,
        wanted: &BTreeSet<Link>,
        swap: impl FnOnce() -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        if held == wanted {
            return swap();
        }
        let _links = self.link_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let claimed: Vec<&Link> = wanted.difference(held).collect();
        for link in &claimed {
            if let Some(holder) = self.holder(link)?.filter(|holder| holder != id) {
                return Err(StoreError::LinkTaken {
                    vendor: link.0,
                    remote_id: link.1.clone(),
                    holder,
                });
            }
        }
        // Only entries this call writes are given back if the swap is lost:
        // one already naming `id` may be the claim of the version that won.
        let mut written = Vec::new();
        for link in claimed {
            let key = link_key(link);
            if self.links.get(&key).map_err(backend)?.as_deref() != Some(id.as_bytes()) {
                self.links.insert(key, id.as_bytes()).map_err(backend)?;
                written.push(link);
            }
        }
        let swapped = swap()?;
        let released: Vec<&Link> = if swapped {
            held.difference(wanted).collect()
        } else {
            written
        };
        for link in released {
            self.release(link, id)?;
        }
        Ok(swapped)
    }

    /// The product holding `link`, if its entry is not stale.
    fn holder(&self, link: &Link) -> Result<Option<String>, StoreError> {
        let Some(holder) = self.links.get(link_key(link)).map_err(backend)? else {
            return Ok(None);
        };
        let holder = String::from_utf8_lossy(&holder).into_owned();
        let holds = read_product(&self.products, &holder)?.is_some_and(|p| links_of(&p).contains(link));
        Ok(holds.then_some(holder))
    }

    /// Removes `link`'s entry if it still names `id`.
    fn release(&self, link: &Link, id: &str) -> Result<(), StoreError> {
        let key = link_key(link);
        if self
            .links
            .get(&key)
            .map_err(backend)?
            .is_some_and(|v| v.as_ref() == id.as_bytes())
        {
            self.links.remove(&key).map_err(backend)?;
        }
        Ok(())
    }
}

fn link_key((vendor, remote_id): &Link) -> Vec<u8> {
    let mut key = (*vendor as i32).to_be_bytes().to_vec();
    key.extend_from_slice(remote_id.as_bytes());
    key
}

/// Takes the data directory's lock file, which a store holds while open.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let shown = dir.display().to_string();
    let open_error = |reason: String| StoreError::Open {
        dir: shown.clone(),
        reason,
    };
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| open_error(e.to_string()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked { dir: shown }),
        Err(TryLockError::Error(e)) => Err(open_error(e.to_string())),
    }
}

/// Builds the `links` index from the products, once per data directory
/// (directories written before the index existed). The first product (in id
/// order) holding a copy keeps it.
fn index_links(db: &sled::Db, products: &sled::Tree, links: &sled::Tree) -> Result<(), StoreError> {
    if db.contains_key(LINKS_INDEXED_KEY).map_err(backend)? {
        return Ok(());
    }
    for entry in products.iter() {
        let (key, bytes) = entry.map_err(backend)?;
        let product = decode_product(&key, &bytes)?;
        for link in links_of(&product) {
            let link_key = link_key(&link);
            if !links.contains_key(&link_key).map_err(backend)? {
                links.insert(link_key, key.as_ref()).map_err(backend)?;
            }
        }
    }
    db.insert(LINKS_INDEXED_KEY, &[1u8]).map_err(backend)?;
    db.flush().map_err(backend)?;
    Ok(())
}

/// The directory's schema version, which this build reads (a new directory
/// gets the current one); older ones are upgraded by `open`.
fn check_schema(db: &sled::Db, dir: &str) -> Result<u32, StoreError> {
    let stored = db.get(SCHEMA_KEY).map_err(backend)?;
    match stored {
        None => {
            db.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(backend)?;
            db.flush().map_err(backend)?;
            Ok(SCHEMA_VERSION)
        }
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: "schema_version".into(),
                    reason: "not a 4-byte version".into(),
                })?;
            if (1..=SCHEMA_VERSION).contains(&found) {
                Ok(found)
            } else {
                Err(StoreError::UnsupportedSchema {
                    dir: dir.to_owned(),
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
        }
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decode_product(key: &[u8], bytes: &[u8]) -> Result<Product, StoreError> {
    Product::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// The product stored under `key` in `tree`, if any.
fn read_product(tree: &sled::Tree, key: &str) -> Result<Option<Product>, StoreError> {
    match tree.get(key.as_bytes()).map_err(backend)? {
        Some(bytes) => decode_product(key.as_bytes(), &bytes).map(Some),
        None => Ok(None),
    }
}

/// Where a keyset page starts: after `key`, or at the beginning.
fn after(key: Option<&str>) -> (Bound<&[u8]>, Bound<&[u8]>) {
    match key {
        Some(key) => (Bound::Excluded(key.as_bytes()), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// Up to `limit` products of `tree` after `key`, in key order, as stored.
fn scan_products(tree: &sled::Tree, key: Option<&str>, limit: usize) -> Result<Vec<StoredProduct>, StoreError> {
    tree.range::<&[u8], _>(after(key))
        .take(limit)
        .map(|entry| {
            let (key, bytes) = entry.map_err(backend)?;
            let id = String::from_utf8(key.to_vec()).map_err(|_| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "a product key that is not UTF-8".into(),
            })?;
            // The page shares sled's buffer instead of copying it.
            Ok(StoredProduct {
                id,
                bytes: Bytes::from_owner(bytes),
            })
        })
        .collect()
}
impl Products for SledStore {
    /// The stored bytes: a swap succeeds only if they are unchanged.
    type Version = sled::IVec;

    async fn get_stored(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        // Shares sled's buffer instead of copying it.
        let stored = self.products.get(id.as_bytes()).map_err(backend)?;
        Ok(stored.map(Bytes::from_owner))
    }

    async fn scan_stored(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<StoredProduct>, StoreError> {
        scan_products(&self.products, after_id, limit)
    }

    async fn insert(
        &self,
        id: &str,
        product: &Product,
        request: Option<&RequestRecord>,
        announce: bool,
    ) -> Result<InsertOutcome, StoreError> {
        self.ensure_writable()?;
        let outcome = match request {
            None => {
                if self.insert_new(id, product, announce)? {
                    InsertOutcome::Inserted
                } else {
                    InsertOutcome::IdTaken
                }
            }
            Some(record) => {
                let _serialised = self.request_lock(&record.request_id);
                self.insert_with_request(id, product, record, announce)?
            }
        };
        // Every outcome waits: a replay or a clash may rest on another call's
        // write that is not durable yet.
        self.durable().await?;
        Ok(outcome)
    }

    async fn read_versioned(&self, id: &str) -> Result<Option<(sled::IVec, Product)>, StoreError> {
        let key = id.as_bytes();
        match self.products.get(key).map_err(backend)? {
            Some(bytes) => {
                let product = decode_product(key, &bytes)?;
                Ok(Some((bytes, product)))
            }
            None => Ok(None),
        }
    }

    async fn write_if(
        &self,
        id: &str,
        expected: Option<&sled::IVec>,
        held: &BTreeSet<Link>,
        next: &Product,
        announce: bool,
    ) -> Result<bool, StoreError> {
        if announce {
            self.announce(id)?;
        }
        let kind = match expected {
            Some(_) => ChangeKind::Updated,
            None => ChangeKind::Created,
        };
        let bytes = next.encode_to_vec();
        let swapped = self.with_links(id, held, &links_of(next), || {
            self.swap_and_log(id, expected.map(|v| v.as_ref()), Some(&bytes), kind)
        })?;
        if swapped && announce {
            // Again after the write (see insert_new).
            self.announce(id)?;
        }
        Ok(swapped)
    }

    async fn delete_if(
        &self,
        id: &str,
        expected: &sled::IVec,
        doomed: &Product,
        tombstone: bool,
    ) -> Result<bool, StoreError> {
        // The tombstone first: once the product is gone, the worker must
        // still know where it lived. (One whose product still exists is
        // skipped by the worker, and removed here when the delete loses.)
        let uid = doomed.uid.as_bytes();
        if tombstone {
            self.tombstones.insert(uid, expected.as_ref()).map_err(backend)?;
        }
        let deleted = self.with_links(id, &links_of(doomed), &BTreeSet::new(), || {
            self.swap_and_log(id, Some(expected), None, ChangeKind::Deleted)
        })?;
        if deleted || !tombstone {
            return Ok(deleted);
        }
        // Lost the swap. If the product (this incarnation) is gone, another
        // delete won and needs this tombstone: keep it.
        let still_there = read_product(&self.products, id)?.is_some_and(|p| p.uid == doomed.uid);
        if still_there {
            self.tombstones.remove(uid).map_err(backend)?;
        }
        Ok(false)
    }

    async fn linked(&self, vendor: Vendor, remote_id: &str) -> Result<Option<String>, StoreError> {
        self.holder(&(vendor, remote_id.to_owned()))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.ensure_writable()
    }

    async fn settle(&self) -> Result<(), StoreError> {
        self.durable().await
    }
}

impl Outbox for SledStore {
    async fn outbox(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        self.outbox
            .range::<&[u8], _>(after(after_id))
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                let nonce = <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or_default();
                Ok((String::from_utf8_lossy(&key).into_owned(), nonce))
            })
            .collect()
    }

    async fn outbox_depth(&self, cap: usize) -> Result<usize, StoreError> {
        Ok(self.outbox.iter().keys().take(cap).count())
    }

    async fn renew_claim(&self, _item: Claimed<'_>) -> Result<bool, StoreError> {
        // One process per data directory: nobody else can hold it.
        Ok(true)
    }

    async fn settle_outbox(&self, id: &str, nonce: u64) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        let settled = self
            .outbox
            .compare_and_swap(id.as_bytes(), Some(&nonce.to_be_bytes()[..]), None as Option<&[u8]>)
            .map_err(backend)?
            .is_ok();
        self.durable().await?;
        Ok(settled)
    }
}

impl Tombstones for SledStore {
    async fn tombstone(&self, uid: &str) -> Result<Option<Product>, StoreError> {
        read_product(&self.tombstones, uid)
    }

    async fn tombstones(&self, after_uid: Option<&str>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let stored = scan_products(&self.tombstones, after_uid, limit)?;
        stored.iter().map(StoredProduct::decode).collect()
    }

    async fn set_tombstone(&self, uid: &str, product: Option<&Product>) -> Result<(), StoreError> {
        self.ensure_writable()?;
        match product {
            Some(p) => self.tombstones.insert(uid.as_bytes(), p.encode_to_vec()).map(|_| ()),
            None => self.tombstones.remove(uid.as_bytes()).map(|_| ()),
        }
        .map_err(backend)?;
        self.durable().await
    }

    async fn tombstone_depth(&self, cap: usize) -> Result<usize, StoreError> {
        Ok(self.tombstones.iter().keys().take(cap).count())
    }
}

impl ChangeFeed for SledStore {
    fn change_log_id(&self) -> Option<u64> {
        self.changes.id
    }

    async fn change_window(&self) -> Result<ChangeWindow, StoreError> {
        let newest = *self.changes.durable.borrow();
        let oldest = self.changes.log.as_ref().and_then(|log| log.oldest());
        let trimmed_through = oldest
            .map_or(newest, |first| first.saturating_sub(1))
            .max(self.changes.trimmed_through.load(Ordering::Acquire))
            .min(newest);
        Ok(ChangeWindow {
            trimmed_through: position(trimmed_through),
            newest: position(newest),
        })
    }

    async fn changes(&self, after: LogPosition, limit: usize) -> Result<Vec<Change>, StoreError> {
        let newest = *self.changes.durable.borrow();
        let after = after.minor.max(self.changes.trimmed_through.load(Ordering::Acquire));
        let Some(log) = self.changes.log.as_ref().filter(|_| after < newest) else {
            return Ok(Vec::new());
        };
        let records = log
            .read(after, newest, limit)
            .map_err(|e| StoreError::Backend(format!("reading the change log failed: {e}")))?;
        records
            .into_iter()
            .map(|(seq, bytes)| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    key: format!("change {seq}"),
                    reason,
                };
                let stored = StoredChange::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
                Ok(Change {
                    position: position(seq),
                    kind: kind_of(stored.kind).ok_or_else(|| corrupt(format!("unknown kind {}", stored.kind)))?,
                    product: Product::decode(stored.product.as_slice()).map_err(|e| corrupt(e.to_string()))?,
                    commit_time: timestamp(stored.commit_unix_micros),
                })
            })
            .collect()
    }

    fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.durable.subscribe()
    }

    async fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        let _one_at_a_time = self.changes.trimming.lock().unwrap_or_else(|p| p.into_inner());
        // Relative to what watchers may read, never past it.
        let newest = *self.changes.durable.borrow();
        let Some(log) = &self.changes.log else {
            return Ok(0);
        };
        let before = self.changes.trimmed_through.load(Ordering::Acquire);
        let cutoff = newest.saturating_sub(keep).max(before);
        if cutoff > before {
            self.sled
                .db()
                .insert(TRIMMED_THROUGH_KEY, &cutoff.to_be_bytes())
                .map_err(backend)?;
            self.changes.trimmed_through.store(cutoff, Ordering::Release);
        }
        // Also when the point did not move: a delete that failed is retried.
        log.trim(cutoff)
            .map_err(|e| StoreError::Backend(format!("trimming the change log failed: {e}")))?;
        Ok(cutoff - before)
    }
}

/// Where part `index` of operation `id` is kept: the id, a zero byte (ids
/// have none), the index big-endian, so an operation's parts sort by index.
fn part_key(id: &str, index: u32) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The stored form of an operation: a done byte, then its data.
fn operation_value(done: bool, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(data.len() + 1);
    value.push(u8::from(done));
    value.extend_from_slice(data);
    value
}

impl SledStore {
    /// Whether an unfinished operation is stored under `key`.
    fn unfinished(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .operations
            .get(key)
            .map_err(backend)?
            .is_some_and(|value| value.first() == Some(&0)))
    }

    fn operation_record(&self, key: &[u8], value: &[u8]) -> Result<OperationRecord, StoreError> {
        let (done, data) = value.split_first().ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "empty operation record".into(),
        })?;
        Ok(OperationRecord {
            id: String::from_utf8_lossy(key).into_owned(),
            done: *done == 1,
            cancel_requested: self.operation_cancels.contains_key(key).map_err(backend)?,
            data: data.to_vec(),
        })
    }
}

impl Operations for SledStore {
    async fn create_operation(&self, id: &str, data: &[u8]) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        let created = self
            .operations
            .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(operation_value(false, data)))
            .map_err(backend)?
            .is_ok();
        self.durable().await?;
        Ok(created)
    }

    async fn save_operation(&self, id: &str, done: bool, data: &[u8]) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        let key = id.as_bytes();
        if !self.unfinished(key)? {
            return Ok(false);
        }
        self.operations
            .insert(key, operation_value(done, data))
            .map_err(backend)?;
        self.durable().await?;
        Ok(true)
    }

    async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        match self.operations.get(id.as_bytes()).map_err(backend)? {
            Some(value) => self.operation_record(id.as_bytes(), &value).map(Some),
            None => Ok(None),
        }
    }

    async fn operations(
        &self,
        after_id: Option<&str>,
        limit: usize,
        done: Option<bool>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in self.operations.range::<&[u8], _>(after(after_id)) {
            if out.len() == limit {
                break;
            }
            let (key, value) = entry.map_err(backend)?;
            let record = self.operation_record(&key, &value)?;
            if done.is_none_or(|done| record.done == done) {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn cancel_operation(&self, id: &str) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        if !self.operations.contains_key(id.as_bytes()).map_err(backend)? {
            return Ok(false);
        }
        self.operation_cancels.insert(id.as_bytes(), &[]).map_err(backend)?;
        self.durable().await?;
        Ok(true)
    }

    async fn put_operation_part(&self, id: &str, index: u32, data: &[u8]) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        if !self.unfinished(id.as_bytes())? {
            return Ok(false);
        }
        self.operation_parts
            .insert(part_key(id, index), data)
            .map_err(backend)?;
        self.durable().await?;
        Ok(true)
    }

    async fn operation_parts(&self, id: &str, from: u32, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let end = part_key(id, u32::MAX);
        let mut parts = Vec::new();
        for entry in self.operation_parts.range(part_key(id, from)..=end).take(limit) {
            let (key, value) = entry.map_err(backend)?;
            let index = key
                .len()
                .checked_sub(4)
                .and_then(|at| <[u8; 4]>::try_from(&key[at..]).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "not an operation part key".into(),
                })?;
            parts.push((index, value.to_vec()));
        }
        Ok(parts)
    }

    async fn delete_operation(&self, id: &str) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        let existed = self.operations.remove(id.as_bytes()).map_err(backend)?.is_some();
        self.operation_cancels.remove(id.as_bytes()).map_err(backend)?;
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        for key in self.operation_parts.scan_prefix(&prefix).keys() {
            self.operation_parts.remove(key.map_err(backend)?).map_err(backend)?;
        }
        self.durable().await?;
        Ok(existed)
    }

    async fn claim_operation(&self, _id: &str) -> Result<bool, StoreError> {
        // One process owns the directory (its lock file).
        Ok(true)
    }

    fn operation_lease(&self) -> Option<std::time::Duration> {
        None
    }
}

impl ProductStore for SledStore {
    async fn disk_bytes(&self) -> Result<u64, StoreError> {
        self.sled.db().size_on_disk().map_err(backend)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }
}

/// One of `locks`, chosen by a hash of `key`.
fn striped_lock<'a>(locks: &'a [Mutex<()>], key: &str) -> std::sync::MutexGuard<'a, ()> {
    let hash = key
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    locks[hash % locks.len()]
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str) -> Product {
        Product {
            name: format!("products/{id}"),
            display_name: id.to_uppercase(),
            ..Default::default()
        }
    }

    fn open(dir: &Path) -> SledStore {
        SledStore::open(dir, &SledOptions::default()).unwrap()
    }

    #[tokio::test]
    async fn insert_get_scan_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for id in ["b", "a", "c"] {
            assert_eq!(
                store.insert(id, &product(id), None, true).await.unwrap(),
                InsertOutcome::Inserted
            );
        }
        assert_eq!(
            store.insert("a", &product("a"), None, true).await.unwrap(),
            InsertOutcome::IdTaken
        );
        assert_eq!(store.get("a").await.unwrap(), Some(product("a")));
        let ids = |v: Vec<Product>| v.into_iter().map(|p| p.display_name).collect::<Vec<_>>();
        assert_eq!(ids(store.scan(None, 10).await.unwrap()), ["A", "B", "C"]);
        assert_eq!(ids(store.scan(Some("a"), 1).await.unwrap()), ["B"]);

        let updated = store
            .update("b", true, |p| -> Result<Product, ()> {
                let mut p = p.unwrap();
                p.description = "x".into();
                Ok(p)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.get("b").await.unwrap(), Some(updated));
        let refused = store.update("b", true, |_| Err::<Product, _>("no")).await.unwrap();
        assert_eq!(refused, Err("no"));
        assert_eq!(
            store.delete("c", true, |_| Err::<(), _>("keep")).await.unwrap(),
            Err("keep")
        );
        assert_eq!(store.delete("c", true, |_| Ok::<(), ()>(())).await.unwrap(), Ok(true));
        assert_eq!(store.delete("c", true, |_| Ok::<(), ()>(())).await.unwrap(), Ok(false));
    }

    #[tokio::test]
    async fn request_ids_replay_the_first_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let record = RequestRecord {
            request_id: "r1".into(),
            fingerprint: vec![1, 2],
            product: product("a"),
        };
        assert_eq!(
            store.insert("a", &product("a"), Some(&record), true).await.unwrap(),
            InsertOutcome::Inserted
        );
        // Same request id, other product id: the first call's record comes back
        // and nothing new is stored.
        assert_eq!(
            store.insert("z", &product("z"), Some(&record), true).await.unwrap(),
            InsertOutcome::Replayed(Box::new(record.clone()))
        );
        assert_eq!(store.get("z").await.unwrap(), None);
    }

    #[tokio::test]
    async fn data_survives_reopening_and_the_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.insert("a", &product("a"), None, true).await.unwrap();
            assert!(matches!(
                SledStore::open(dir.path(), &SledOptions::default()),
                Err(StoreError::Locked { .. })
            ));
        }
        assert_eq!(open(dir.path()).get("a").await.unwrap(), Some(product("a")));
    }

    #[tokio::test]
    async fn a_retry_finishes_a_create_interrupted_between_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut first = product("a");
        first.uid = "u1".into();
        // What a crash after the first of the create's writes leaves behind.
        let pending = StoredRequest {
            fingerprint: vec![7],
            product: Some(first.clone()),
            completed: false,
        };
        store.requests.insert("r1", pending.encode_to_vec()).unwrap();
        let record = RequestRecord {
            request_id: "r1".into(),
            fingerprint: vec![7],
            product: first.clone(),
        };
        let outcome = store.insert("a", &first, Some(&record), true).await.unwrap();
        assert_eq!(outcome, InsertOutcome::Replayed(Box::new(record.clone())));
        assert_eq!(store.get("a").await.unwrap(), Some(first.clone()));
        // Deleting it later does not bring it back on another retry.
        store.delete("a", true, |_| Ok::<(), ()>(())).await.unwrap().unwrap();
        store.insert("a", &first, Some(&record), true).await.unwrap();
        assert_eq!(store.get("a").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_read_modify_writes_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(open(dir.path()));
        store.insert("n", &product("n"), None, true).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        store
                            .update("n", true, |p| {
                                let mut p = p.unwrap();
                                let n: u32 = p.description.parse().unwrap_or(0);
                                p.description = (n + 1).to_string();
                                Ok::<_, ()>(p)
                            })
                            .await
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.get("n").await.unwrap().unwrap().description, "200");
    }

    #[tokio::test]
    async fn corrupt_records_are_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.products.insert("bad", &[0xff, 0xff, 0xff][..]).unwrap();
        assert!(matches!(store.get("bad").await, Err(StoreError::Corrupt { .. })));
        let update = store.update("bad", true, |p| Ok::<_, ()>(p.unwrap_or_default())).await;
        assert!(matches!(update, Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn change_entries_are_encoded_as_the_message() {
        for (kind, micros) in [(ChangeKind::Created, 1_700_000_000_000_000), (ChangeKind::Deleted, 0)] {
            let product = product("e").encode_to_vec();
            let mut framed = Vec::new();
            encode_change(kind, &product, micros, &mut framed);
            let message = StoredChange {
                kind: kind_code(kind),
                product,
                commit_unix_micros: micros,
            };
            assert_eq!(framed, message.encode_to_vec());
        }
    }

    #[tokio::test]
    async fn a_version_1_directory_moves_its_change_log_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As version 1 left it: the log in a sled tree, some of it trimmed.
            let db = sled::open(dir.path().join("sled")).unwrap();
            db.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
            db.insert(CHANGE_LOG_ID_KEY, &77u64.to_be_bytes()).unwrap();
            let tree = db.open_tree(OLD_CHANGES_TREE).unwrap();
            for (seq, id) in [(5u64, "old-a"), (6, "old-b")] {
                let entry = StoredChange {
                    kind: kind_code(ChangeKind::Created),
                    product: product(id).encode_to_vec(),
                    commit_unix_micros: 1,
                };
                tree.insert(seq.to_be_bytes(), entry.encode_to_vec()).unwrap();
            }
            db.flush().unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.change_log_id(), Some(77), "resume tokens stay valid");
        let window = store.change_window().await.unwrap();
        assert_eq!((window.trimmed_through, window.newest), (position(4), position(6)));
        let moved = store.changes(position(4), 10).await.unwrap();
        let seen: Vec<_> = moved.iter().map(|c| (c.position, c.product.name.as_str())).collect();
        assert_eq!(seen, [(position(5), "products/old-a"), (position(6), "products/old-b")]);
        assert!(!store.sled.db().tree_names().iter().any(|name| name == OLD_CHANGES_TREE));
        let version = store.sled.db().get(SCHEMA_KEY).unwrap().unwrap();
        assert_eq!(version.as_ref(), SCHEMA_VERSION.to_be_bytes());

        store.insert("new", &product("new"), None, false).await.unwrap();
        drop(store);
        let store = open(dir.path());
        let all = store.changes(position(4), 10).await.unwrap();
        assert_eq!(all.iter().map(|c| c.position.minor).collect::<Vec<_>>(), [5, 6, 7]);
    }

    #[tokio::test]
    async fn trimmed_changes_stay_trimmed_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for id in ["a", "b", "c"] {
            store.insert(id, &product(id), None, false).await.unwrap();
        }
        store.trim_changes(1).await.unwrap();
        let window = store.change_window().await.unwrap();
        assert_eq!((window.trimmed_through, window.newest), (position(2), position(3)));
        drop(store);
        // The entries are still in their (newest) segment, but not readable.
        let store = open(dir.path());
        let window = store.change_window().await.unwrap();
        assert_eq!((window.trimmed_through, window.newest), (position(2), position(3)));
        let kept = store.changes(position(0), 10).await.unwrap();
        assert_eq!(kept.iter().map(|c| c.position.minor).collect::<Vec<_>>(), [3]);
    }

    /// Appends a change entry straight to the log's files, behind sled's
    /// back, as a crash leaves one whose write sled did not keep.
    fn write_ghost_entry(dir: &Path) {
        let log = SegmentLog::open(&dir.join(CHANGES_DIR), None).unwrap();
        log.append(|buffer| encode_change(ChangeKind::Created, &product("ghost").encode_to_vec(), 1, buffer));
        log.write_staged().unwrap();
        log.sync().unwrap();
    }

    /// Every readable change's seq and product name.
    async fn all_changes(store: &SledStore) -> Vec<(u64, String)> {
        let changes = store.changes(position(0), 100).await.unwrap();
        changes
            .into_iter()
            .map(|c| (c.position.minor, c.product.name))
            .collect()
    }

    #[tokio::test]
    async fn change_entries_of_writes_sled_did_not_keep_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for id in ["a", "b"] {
            store.insert(id, &product(id), None, false).await.unwrap();
        }
        drop(store);
        {
            // As a crash can leave it: the log's write reached the disk, the
            // writes to sled it describes did not.
            write_ghost_entry(dir.path());
        }
        let store = open(dir.path());
        let window = store.change_window().await.unwrap();
        assert_eq!(window.newest, position(2));
        store.insert("c", &product("c"), None, false).await.unwrap();
        let seen = all_changes(&store).await;
        assert_eq!(
            seen,
            [
                (1, "products/a".into()),
                (2, "products/b".into()),
                (3, "products/c".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_crash_during_the_first_flush_leaves_no_entry_behind() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        {
            // The log's first write reached the disk; sled kept nothing of
            // the write, nor a committed seq.
            write_ghost_entry(dir.path());
        }
        let store = open(dir.path());
        assert_eq!(store.change_window().await.unwrap().newest, position(0));
        store.insert("real", &product("real"), None, false).await.unwrap();
        let seen = all_changes(&store).await;
        assert_eq!(seen, [(1, "products/real".into())]);
    }
}
