//! sled opened on producthub's durability path: every write is made durable
//! by a group committer that flushes sled and then `fdatasync`s sled's log, so
//! concurrent writers share one flush and an acknowledged write survives power
//! loss, not only a crash. The sled store is built on it; the benchmark's
//! "durable ceiling" uses it bare, so the two compare like with like.
//!
//! A [`SegmentLog`] can ride on the same commit (the store's change log): the
//! committer writes its staged records before flushing sled, and a thread of
//! its own syncs them while sled flushes and syncs, so one group commit
//! covers both and costs about one `fdatasync` of wall time, not two.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;

use super::group_commit::{Flush, GroupCommit};
use super::segment_log::SegmentLog;

const SLED_DIR: &str = "sled";
/// sled 0.34 keeps its log in this file of its directory.
const SLED_LOG_FILE: &str = "db";

/// A sled database in `dir/sled` and the committer that makes its writes durable.
pub struct DurableSled {
    /// Dropped first (fields drop in order): its thread holds the database.
    committer: GroupCommit,
    db: sled::Db,
}

impl DurableSled {
    /// Opens (creating if needed) sled in `dir/sled`, with a page cache of at
    /// most `cache_capacity_bytes`. `dir` must exist. Every flush also writes
    /// and syncs `journal`, when there is one.
    pub fn open(dir: &Path, cache_capacity_bytes: u64, journal: Option<Arc<SegmentLog>>) -> Result<Self, String> {
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
        let journal = journal.map(JournalSync::start).transpose().map_err(|e| e.to_string())?;
        let committer = GroupCommit::start(SledDurability {
            db: db.clone(),
            log,
            journal,
        })
        .map_err(|e| e.to_string())?;
        Ok(Self { committer, db })
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
    journal: Option<JournalSync>,
}

/// Syncs the journal on a thread of its own, while the committer flushes and
/// syncs sled: the two `fdatasync`s overlap instead of adding up.
struct JournalSync {
    journal: Arc<SegmentLog>,
    /// `None` only while dropping.
    start: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<std::io::Result<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl JournalSync {
    fn start(journal: Arc<SegmentLog>) -> std::io::Result<Self> {
        let (start, requests) = mpsc::channel::<()>();
        let (answer, done) = mpsc::channel();
        let syncing = journal.clone();
        let thread = thread::Builder::new()
            .name("producthub-journal-sync".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    if answer.send(syncing.sync()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            journal,
            start: Some(start),
            done,
            thread: Some(thread),
        })
    }

    /// Writes the staged records and starts syncing them.
    fn begin(&self) -> Result<(), String> {
        self.journal
            .write_staged()
            .map_err(|e| format!("writing the change log failed: {e}"))?;
        self.start
            .as_ref()
            .and_then(|start| start.send(()).ok())
            .ok_or_else(|| "the change log's sync thread has stopped".to_string())
    }

    /// Waits for the sync `begin` started.
    fn finish(&self) -> Result<(), String> {
        match self.done.recv() {
            Ok(result) => result.map_err(|e| format!("fdatasync of the change log failed: {e}")),
            Err(_) => Err("the change log's sync thread has stopped".into()),
        }
    }
}

impl Drop for JournalSync {
    fn drop(&mut self) {
        self.start.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Flush for SledDurability {
    /// Called after the committer took its batch of waiters, so every record
    /// a writer staged before it asked is written and synced here.
    fn flush(&self) -> Result<(), String> {
        if let Some(journal) = &self.journal {
            journal.begin()?;
        }
        let sled = self.db.flush().map_err(|e| e.to_string()).and_then(|_| {
            self.log
                .sync_data()
                .map_err(|e| format!("fdatasync of the sled log failed: {e}"))
        });
        // Waited for even when sled failed, so no sync is left running.
        let journal = self.journal.as_ref().map_or(Ok(()), JournalSync::finish);
        sled.and(journal)
    }
}
