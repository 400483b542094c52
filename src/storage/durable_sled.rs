//! sled opened on producthub's durability path: every write is made durable
//! by a group committer that flushes sled and then `fdatasync`s sled's log, so
//! concurrent writers share one flush and an acknowledged write survives power
//! loss, not only a crash. The sled store is built on it; the benchmark's
//! "durable ceiling" uses it bare, so the two compare like with like.
//!
//! Writes nobody reads before they are durable (the change log's entries) can
//! be left to the committer instead ([`DurableSled::before_each_flush`]): its
//! one thread applies them just before the flush that covers them, as one
//! batch. Every writer inserting into the tail of one tree made sled's page
//! retry its compare-and-swap under contention, and sled copies a node's
//! handles on every insert; one thread writing a batch under one key pays
//! that once per flush.

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

/// Work the committer does before each flush.
type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Deferred {
    hooks: Mutex<Vec<Hook>>,
}

impl Deferred {
    fn run(&self) {
        for hook in self.hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            hook();
        }
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

    /// Runs `hook` on the committer's thread before every flush, after the
    /// committer took its batch of waiters: whatever a writer handed to the
    /// hook before asking for [`durable`](Self::durable) is written by the
    /// flush that answers it. A hook reports its own errors (a write it
    /// drops is not a failed flush: the writes it accompanies are durable).
    pub fn before_each_flush(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.deferred
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
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
    /// Called after the committer took its batch of waiters, so everything
    /// handed to a hook before a waiter asked is written here.
    fn flush(&self) -> Result<(), String> {
        self.deferred.run();
        self.db.flush().map_err(|e| e.to_string())?;
        self.log
            .sync_data()
            .map_err(|e| format!("fdatasync of the sled log failed: {e}"))
    }
}
