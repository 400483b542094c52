//! sled opened on producthub's durability path: every write is made durable
//! by a group committer that flushes sled and then `fdatasync`s sled's log, so
//! concurrent writers share one flush and an acknowledged write survives power
//! loss, not only a crash. The sled store is built on it; the benchmark's
//! "durable ceiling" uses it bare, so the two compare like with like.
//!
//! Writes nobody reads before they are durable (the change log's entries) can
//! be handed to the committer instead ([`DurableSled::defer_insert`]): it
//! inserts them from its one thread just before the flush that covers them.
//! Every writer inserting into the tail of one tree made sled's page retry its
//! compare-and-swap under contention; one thread appending a batch does not.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::group_commit::{Flush, GroupCommit};

const SLED_DIR: &str = "sled";
/// sled 0.34 keeps its log in this file of its directory.
const SLED_LOG_FILE: &str = "db";

/// A sled database in `dir/sled` and the committer that makes its writes durable.
pub struct DurableSled {
    /// Dropped first (fields drop in order): its thread holds the database.
    committer: GroupCommit,
    db: sled::Db,
    deferred: Arc<Deferred>,
}

/// Inserts waiting for the next flush, in the order they were deferred.
#[derive(Default)]
struct Deferred {
    inserts: Mutex<Vec<(sled::Tree, sled::IVec, Vec<u8>)>>,
}

impl Deferred {
    fn take(&self) -> Vec<(sled::Tree, sled::IVec, Vec<u8>)> {
        std::mem::take(&mut *self.inserts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl DurableSled {
    /// Opens (creating if needed) sled in `dir/sled`, with a page cache of at
    /// most `cache_capacity_bytes`. `dir` must exist.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Self, String> {
        let sled_dir = dir.join(SLED_DIR);
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(|e| e.to_string())?;
        // The directories' entries for the files sled created must be durable too.
        for directory in [dir, sled_dir.as_path()] {
            File::open(directory)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", directory.display()))?;
        }
        let log = File::open(sled_dir.join(SLED_LOG_FILE)).map_err(|e| e.to_string())?;
        let deferred = Arc::new(Deferred::default());
        let committer = GroupCommit::start(SledDurability {
            db: db.clone(),
            log,
            deferred: deferred.clone(),
        })
        .map_err(|e| e.to_string())?;
        Ok(Self {
            committer,
            db,
            deferred,
        })
    }

    /// Inserts `value` under `key` in `tree` before the next flush: the
    /// [`durable`](Self::durable) call that follows this one resolves only
    /// after the insert. Until then, readers of `tree` do not see it. An
    /// insert that fails is logged and dropped (it is not a failed flush: the
    /// writes it accompanies are durable).
    pub fn defer_insert(&self, tree: &sled::Tree, key: impl Into<sled::IVec>, value: Vec<u8>) {
        self.deferred
            .inserts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((tree.clone(), key.into(), value));
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Resolves once everything written before the call is durable.
    pub async fn durable(&self) -> Result<(), String> {
        self.committer.durable().await
    }

    /// Why a flush failed, if one did: from then on nothing is durable.
    pub fn failure(&self) -> Option<String> {
        self.committer.failure()
    }
}

/// What the committer does to make writes durable.
struct SledDurability {
    db: sled::Db,
    log: File,
    deferred: Arc<Deferred>,
}

impl Flush for SledDurability {
    /// Called after the committer took its batch of waiters, so every insert
    /// deferred before a waiter asked is applied here.
    fn flush(&self) -> Result<(), String> {
        for (tree, key, value) in self.deferred.take() {
            if let Err(error) = tree.insert(&key, value) {
                tracing::error!(%error, key = ?key, "a deferred insert failed; dropped");
            }
        }
        self.db.flush().map_err(|e| e.to_string())?;
        self.log
            .sync_data()
            .map_err(|e| format!("fdatasync of the sled log failed: {e}"))
    }
}
