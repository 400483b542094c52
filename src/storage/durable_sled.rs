//! sled opened on producthub's durability path: every write is made durable
//! by a group committer that flushes sled and then `fdatasync`s sled's log, so
//! concurrent writers share one flush and an acknowledged write survives power
//! loss, not only a crash. The sled store is built on it; the benchmark's
//! "durable ceiling" uses it bare, so the two compare like with like.
//!
//! A [`SegmentLog`] can ride on the same commit (the store's change log): the
//! committer writes its staged records before flushing sled, and a thread of
//! its own syncs them while sled flushes and syncs, so one group commit
//! covers both and costs about one `fdatasync` of wall time, not two. Before
//! each flush the committer also records in sled the newest seq it wrote
//! ([`DurableSled::journal_written_through`]): every sled write a record
//! describes came before it in sled's log, so after a crash the records up to
//! it describe writes sled kept, and the log drops any above it.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;

use super::group_commit::{Flush, GroupCommit};
use super::segment_log::SegmentLog;

const SLED_DIR: &str = "sled";
/// sled 0.34 keeps its log in this file of its directory.
const SLED_LOG_FILE: &str = "db";
/// Default tree key: big-endian u64, the newest journal seq written before
/// the last flush.
const JOURNAL_WRITTEN_KEY: &[u8] = b"changes_written_through";

/// Opens sled in `sled_dir`, after removing any snapshot a crash left
/// unfinished. sled 0.34 writes a snapshot as `snap.{lsn}.generating`, syncs
/// it and renames it to `snap.{lsn}`, but when it opens it reads the last
/// `snap.` file by name, and an unfinished `.generating` one sorts after its
/// finished siblings, so a kill while writing it would make every later open
/// fail as corrupt. Such a file is never the only copy of anything: the log
/// it was made from is still there.
fn open_sled(sled_dir: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, String> {
    remove_unfinished_snapshots(sled_dir)?;
    sled::Config::new()
        .path(sled_dir)
        .cache_capacity(cache_capacity_bytes)
        .open()
        .map_err(|e| e.to_string())
}

fn remove_unfinished_snapshots(sled_dir: &Path) -> Result<(), String> {
    let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", sled_dir.display());
    let entries = match std::fs::read_dir(sled_dir) {
        Ok(entries) => entries,
        // A new database: sled creates the directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unreadable(e)),
    };
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove the unfinished snapshot {name}: {e}"))?;
        }
    }
    Ok(())
}

/// A sled database in `dir/sled` and the committer that makes its writes durable.
pub struct DurableSled {
    /// Dropped first (fields drop in order): its thread holds the database.
    committer: GroupCommit,
    db: sled::Db,
    journal: Arc<OnceLock<JournalSync>>,
}

impl DurableSled {
    /// Opens (creating if needed) sled in `dir/sled`, with a page cache of at
    /// most `cache_capacity_bytes`. `dir` must exist.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Self, String> {
        let sled_dir = dir.join(SLED_DIR);
        let db = open_sled(&sled_dir, cache_capacity_bytes)?;
        // The directories' entries for the files sled created must be durable too.
        for directory in [dir, sled_dir.as_path()] {
            File::open(directory)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", directory.display()))?;
        }
        let log = File::open(sled_dir.join(SLED_LOG_FILE)).map_err(|e| e.to_string())?;
        let journal = Arc::new(OnceLock::new());
        let committer = GroupCommit::start(SledDurability {
            db: db.clone(),
            log,
            journal: journal.clone(),
        })
        .map_err(|e| e.to_string())?;
        Ok(Self { committer, db, journal })
    }

    /// Opens sled in `dir/sled` and closes it again, with no committer:
    /// opening replays sled's log into a new snapshot, so the next open reads
    /// that instead of the log; no key changes. False if there is no sled
    /// database there. The caller holds the data directory's lock.
    pub fn checkpoint(dir: &Path, cache_capacity_bytes: u64) -> Result<bool, String> {
        let sled_dir = dir.join(SLED_DIR);
        if !sled_dir.is_dir() {
            return Ok(false);
        }
        drop(open_sled(&sled_dir, cache_capacity_bytes)?);
        Ok(true)
    }

    /// From now on every flush also writes and syncs `journal` (once per
    /// database; a second call is refused). Open it with
    /// [`Self::journal_written_through`].
    pub fn attach_journal(&self, journal: Arc<SegmentLog>) -> Result<(), String> {
        let sync = JournalSync::start(journal).map_err(|e| e.to_string())?;
        self.journal
            .set(sync)
            .map_err(|_| "a journal is attached already".to_string())
    }

    /// The newest journal seq written before a flush of sled, as sled kept it.
    pub fn journal_written_through(&self) -> Result<Option<u64>, String> {
        match self.db.get(JOURNAL_WRITTEN_KEY).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| "the change log's committed seq is not 8 bytes".into()),
        }
    }

    /// Records `seq` as the journal's newest committed seq, e.g. after an
    /// import into it; durable with the next flush.
    pub fn set_journal_written_through(&self, seq: u64) -> Result<(), String> {
        self.db
            .insert(JOURNAL_WRITTEN_KEY, &seq.to_be_bytes())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Forgets the journal's committed seq (the journal was deleted).
    pub fn clear_journal_written_through(&self) -> Result<(), String> {
        self.db.remove(JOURNAL_WRITTEN_KEY).map(drop).map_err(|e| e.to_string())
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
    journal: Arc<OnceLock<JournalSync>>,
}

/// Syncs the journal on a thread of its own, while the committer flushes and
/// syncs sled: the two `fdatasync`s overlap instead of adding up.
struct JournalSync {
    journal: Arc<SegmentLog>,
    /// `None` only while dropping.
    start: Option<mpsc::Sender<()>>,
    done: std::sync::Mutex<mpsc::Receiver<std::io::Result<()>>>,
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
            done: std::sync::Mutex::new(done),
            thread: Some(thread),
        })
    }

    /// Writes the staged records and starts syncing them; returns the
    /// newest seq written, if any.
    fn begin(&self) -> Result<Option<u64>, String> {
        let written = self
            .journal
            .write_staged()
            .map_err(|e| format!("writing the change log failed: {e}"))?;
        self.start
            .as_ref()
            .and_then(|start| start.send(()).ok())
            .ok_or_else(|| "the change log's sync thread has stopped".to_string())?;
        Ok(written)
    }

    /// Waits for the sync `begin` started.
    fn finish(&self) -> Result<(), String> {
        match self.done.lock().unwrap_or_else(|p| p.into_inner()).recv() {
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
        let journal = self.journal.get();
        let written = match journal {
            Some(journal) => journal.begin()?,
            None => None,
        };
        let sled = written
            .map_or(Ok(()), |seq| {
                // After every write the records up to `seq` describe.
                self.db
                    .insert(JOURNAL_WRITTEN_KEY, &seq.to_be_bytes())
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| self.db.flush().map_err(|e| e.to_string()))
            .and_then(|_| {
                self.log
                    .sync_data()
                    .map_err(|e| format!("fdatasync of the sled log failed: {e}"))
            });
        // Waited for even when sled failed, so no sync is left running.
        let journal = journal.map_or(Ok(()), JournalSync::finish);
        sled.and(journal)
    }
}
