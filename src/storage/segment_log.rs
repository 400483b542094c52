//! An append-only log of numbered records in segment files, for the sled
//! store's change log.
//!
//! Why not a sled tree: every entry there was a second insert of the
//! product's bytes, which sled 0.34 copies into a new leaf on each insert,
//! writes to its log, and rewrites again when it cleans segments; the log
//! cost a write about 15 µs of CPU, half of the store's update path. Here an
//! entry is framed once into a buffer, written once with the whole flush's
//! entries in one `pwrite`, and made durable by the same group commit as the
//! products (an `fdatasync` beside sled's). Trimming deletes whole files.
//!
//! Layout: `DIR/{first seq, 20 digits}.seg`, each holding records
//! `[payload length u32][crc32 of seq and payload u32][seq u64][payload]`
//! (little-endian), seqs rising; a segment's records have seqs from its name
//! up to (not including) the next segment's name, and a record past that is
//! not read. A new segment is started once the current one holds
//! [`SEGMENT_BYTES`], and at the first write after an open that found the
//! newest one ending in anything but the whole records it keeps. Only the
//! newest segment is written; a full one is synced before the next is
//! started, and the newest is synced at open, so an older one never has
//! unsynced bytes. A record that is torn or fails its checksum
//! ends what is readable of its segment; nothing is cut off or overwritten.
//!
//! Seqs are taken by [`SegmentLog::append`] in the order records are staged;
//! [`SegmentLog::write_staged`] (the committer, before its flush) writes
//! them, [`SegmentLog::sync`] makes them durable. Readers read only what they
//! were told is durable, so within a process they never see a staged or
//! unsynced record. Across a crash, records may be on disk though the
//! store's own writes they describe are not: the store keeps, in its own
//! storage, the newest seq written before each of its flushes (`open`'s
//! `committed_through`), and the log keeps nothing above it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const HEADER: usize = 16;
const SUFFIX: &str = ".seg";

/// The log in one directory.
pub struct SegmentLog {
    dir: PathBuf,
    /// Records taken but not written yet; locked by every writer.
    staged: Mutex<Staged>,
    /// The files; locked by the committer to write and by readers to find.
    segments: Mutex<Vec<Segment>>,
}

struct Staged {
    /// The seq the next record gets.
    next: u64,
    /// Framed records, back to back.
    bytes: Vec<u8>,
    /// Each staged record's seq and where its frame starts in `bytes`.
    records: Vec<(u64, usize)>,
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of whole, valid records.
    len: u64,
    /// Built when the segment is first read (older segments) or opened
    /// (the newest).
    index: Option<Index>,
    /// The file holds more than its indexed records (a torn write, damage, or
    /// records above what the store committed): nothing more is written to it.
    sealed: bool,
}

/// Where each record of a segment starts.
#[derive(Default)]
struct Index {
    seqs: Vec<u64>,
    offsets: Vec<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// One record read back: its seq and payload, or `None` where `bytes` ends
/// or the record there is torn or fails its checksum.
fn parse(bytes: &[u8]) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    (checksum(seq, payload) == crc).then_some((seq, payload, HEADER + len))
}

impl Segment {
    fn open(dir: &Path, first: u64, writable: bool) -> io::Result<Self> {
        let path = dir.join(format!("{first:020}{SUFFIX}"));
        let file = File::options().read(true).write(writable).open(&path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            first,
            path,
            file: Arc::new(file),
            len,
            index: None,
            sealed: false,
        })
    }

    /// Reads the whole segment once and records where each valid record with
    /// a seq below `bound` starts; `len` becomes the end of the last of them.
    fn ensure_index(&mut self, bound: Option<u64>) -> io::Result<()> {
        if self.index.is_none() {
            let mut bytes = vec![0; usize::try_from(self.len).map_err(|e| invalid(&self.path, e))?];
            self.file.read_exact_at(&mut bytes, 0)?;
            let mut index = Index::default();
            let mut at = 0;
            let mut previous = self.first.checked_sub(1);
            while let Some((seq, _, size)) = parse(&bytes[at..]) {
                if previous.is_some_and(|p| seq <= p) || bound.is_some_and(|b| seq >= b) {
                    break;
                }
                index.seqs.push(seq);
                index.offsets.push(at as u64);
                previous = Some(seq);
                at += size;
            }
            if at as u64 != self.len {
                tracing::warn!(
                    segment = %self.path.display(),
                    read_bytes = at,
                    bytes = self.len,
                    "the change log segment holds more than its readable records (a torn write, \
                     damage, or records of writes that were never committed); reading stops there"
                );
                self.sealed = true;
            }
            self.len = at as u64;
            self.index = Some(index);
        }
        Ok(())
    }
}

/// A byte range of one segment holding consecutive records.
struct Span {
    file: Arc<File>,
    path: PathBuf,
    start: u64,
    end: u64,
    count: usize,
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`. `committed_through` is the
    /// newest seq the store says it wrote before a flush of its own data
    /// (`None`: trust the log): records above it describe writes that may
    /// not be in the store and were never read, so they are not kept, and
    /// seqs go on above it. The newest segment is read once (to find where
    /// the log ends) and synced; older ones are read when first asked for.
    pub fn open(dir: &Path, committed_through: Option<u64>) -> io::Result<Self> {
        let created = !dir.exists();
        fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent().filter(|_| created) {
            File::open(parent)?.sync_all()?;
        }
        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name.strip_suffix(SUFFIX).and_then(|s| s.parse::<u64>().ok()) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        // Segments that begin above what the store committed hold nothing
        // that was ever read.
        if let Some(committed) = committed_through {
            let uncommitted = firsts.partition_point(|&first| first <= committed);
            if uncommitted < firsts.len() {
                for first in firsts.drain(uncommitted..) {
                    fs::remove_file(dir.join(format!("{first:020}{SUFFIX}")))?;
                }
                File::open(dir)?.sync_all()?;
            }
        }
        let newest = firsts.len().saturating_sub(1);
        let mut segments = firsts
            .iter()
            .enumerate()
            .map(|(n, &first)| Segment::open(dir, first, n == newest))
            .collect::<io::Result<Vec<_>>>()?;
        let above_committed = committed_through.map_or(0, |c| c + 1);
        let mut removed_any = false;
        let next = loop {
            let Some(last) = segments.last_mut() else {
                break above_committed.max(1);
            };
            // What an earlier process wrote but never synced is in the page
            // cache only: sync it before anyone reads it.
            last.file.sync_data()?;
            last.ensure_index(committed_through.map(|c| c + 1))?;
            if last.sealed && last.index.as_ref().is_some_and(|index| index.seqs.is_empty()) {
                // Nothing readable (its first record is torn): it goes, so
                // that its name can be used again by the next segment.
                fs::remove_file(&last.path)?;
                segments.pop();
                removed_any = true;
                if let Some(previous) = segments.pop() {
                    segments.push(Segment::open(dir, previous.first, true)?);
                }
                continue;
            }
            let written = last
                .index
                .as_ref()
                .and_then(|index| index.seqs.last().copied())
                .map_or(last.first, |seq| seq + 1);
            break written.max(above_committed);
        };
        if removed_any {
            File::open(dir)?.sync_all()?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            staged: Mutex::new(Staged {
                next,
                bytes: Vec::new(),
                records: Vec::new(),
            }),
            segments: Mutex::new(segments),
        })
    }

    /// Stages a record whose payload `encode` appends to the buffer it is
    /// given, and returns its seq. Seqs rise in the order of the calls.
    pub fn append(&self, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let mut staged = lock(&self.staged);
        let seq = staged.next;
        staged.next += 1;
        let start = staged.bytes.len();
        staged.bytes.resize(start + HEADER, 0);
        encode(&mut staged.bytes);
        let payload = &staged.bytes[start + HEADER..];
        // A payload over 4 GiB cannot be framed; the store's messages are
        // limited far below that.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = checksum(seq, payload);
        staged.bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
        staged.bytes[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        staged.bytes[start + 8..start + 16].copy_from_slice(&seq.to_le_bytes());
        staged.records.push((seq, start));
        seq
    }

    /// Stages a record under a seq of the caller's (an import of an older
    /// log); `seq` must be above every seq taken so far.
    pub fn append_at(&self, seq: u64, payload: &[u8]) {
        {
            let mut staged = lock(&self.staged);
            staged.next = staged.next.max(seq);
        }
        self.append(|buffer| buffer.extend_from_slice(payload));
    }

    /// The newest seq taken: written, staged, or lost with a failed write.
    pub fn last_taken(&self) -> u64 {
        lock(&self.staged).next - 1
    }

    /// Bytes staged and not written yet.
    pub fn staged_bytes(&self) -> usize {
        lock(&self.staged).bytes.len()
    }

    /// Writes every staged record to the newest segment (starting a new one
    /// when it is full or sealed), and returns the newest seq written, if it
    /// wrote any. Called by one thread at a time (the committer).
    pub fn write_staged(&self) -> io::Result<Option<u64>> {
        let (bytes, records) = {
            let mut staged = lock(&self.staged);
            (std::mem::take(&mut staged.bytes), std::mem::take(&mut staged.records))
        };
        let (Some(&(first, _)), Some(&(last, _))) = (records.first(), records.last()) else {
            return Ok(None);
        };
        let mut segments = lock(&self.segments);
        if segments
            .last()
            .is_none_or(|newest| newest.sealed || newest.len >= SEGMENT_BYTES)
        {
            // The full segment is never written again: it must not be left
            // with bytes only the page cache has (a flush syncs the newest
            // segment only; an import writes several before it syncs).
            if let Some(full) = segments.last() {
                full.file.sync_data()?;
            }
            let path = self.dir.join(format!("{first:020}{SUFFIX}"));
            File::options().write(true).create_new(true).open(&path)?;
            File::open(&self.dir)?.sync_all()?;
            let mut segment = Segment::open(&self.dir, first, true)?;
            segment.index = Some(Index::default());
            segments.push(segment);
        }
        let Some(segment) = segments.last_mut() else {
            return Ok(None);
        };
        segment.file.write_all_at(&bytes, segment.len)?;
        let base = segment.len;
        segment.len += bytes.len() as u64;
        let index = segment.index.get_or_insert_with(Index::default);
        for (seq, offset) in records {
            index.seqs.push(seq);
            index.offsets.push(base + offset as u64);
        }
        Ok(Some(last))
    }

    /// Makes everything written durable.
    pub fn sync(&self) -> io::Result<()> {
        let newest = lock(&self.segments).last().map(|s| s.file.clone());
        match newest {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// The first seq of the oldest segment, if there is one.
    pub fn oldest(&self) -> Option<u64> {
        lock(&self.segments).first().map(|s| s.first)
    }

    /// Up to `limit` payloads of records with seqs in `after+1 ..= through`,
    /// in seq order, with their seqs.
    pub fn read(&self, after: u64, through: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let spans = self.spans(after, through, limit)?;
        let mut records = Vec::new();
        for span in spans {
            let mut bytes = vec![0; usize::try_from(span.end - span.start).map_err(|e| invalid(&span.path, e))?];
            span.file.read_exact_at(&mut bytes, span.start)?;
            let mut at = 0;
            for _ in 0..span.count {
                let (seq, payload, size) =
                    parse(&bytes[at..]).ok_or_else(|| invalid(&span.path, "a record changed after it was written"))?;
                records.push((seq, payload.to_vec()));
                at += size;
            }
        }
        Ok(records)
    }

    /// Where the records `read` asks for are, found under the lock; read after it.
    fn spans(&self, after: u64, through: u64, limit: usize) -> io::Result<Vec<Span>> {
        let mut segments = lock(&self.segments);
        let from = segments
            .partition_point(|s| s.first <= after.saturating_add(1))
            .saturating_sub(1);
        let bounds: Vec<Option<u64>> = (from..segments.len())
            .map(|n| segments.get(n + 1).map(|next| next.first))
            .collect();
        let mut spans = Vec::new();
        let mut left = limit;
        for (segment, bound) in segments.iter_mut().skip(from).zip(bounds) {
            if left == 0 || segment.first > through {
                break;
            }
            // An older segment is read whole the first time (once per
            // process), under the lock: a rare resume from far back.
            segment.ensure_index(bound)?;
            let Some(index) = segment.index.as_ref() else {
                continue;
            };
            let start = index.seqs.partition_point(|&seq| seq <= after);
            let end = index.seqs.partition_point(|&seq| seq <= through).min(start + left);
            if start < end {
                let end_offset = index.offsets.get(end).copied().unwrap_or(segment.len);
                spans.push(Span {
                    file: segment.file.clone(),
                    path: segment.path.clone(),
                    start: index.offsets[start],
                    end: end_offset,
                    count: end - start,
                });
                left -= end - start;
            }
        }
        Ok(spans)
    }

    /// Deletes every segment all of whose records have seqs up to `floor`,
    /// never the newest; returns how many seqs the deleted segments spanned.
    pub fn trim(&self, floor: u64) -> io::Result<u64> {
        let mut segments = lock(&self.segments);
        let mut removed = 0;
        while segments.len() > 1 && segments[1].first <= floor.saturating_add(1) {
            // The file first: if it cannot go, the next trim tries again.
            match fs::remove_file(&segments[0].path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let gone = segments.remove(0);
            removed += segments[0].first - gone.first;
        }
        Ok(removed)
    }

    /// Deletes the whole log, files and directory.
    pub fn remove(dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(log: &SegmentLog, after: u64, through: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        log.read(after, through, limit).unwrap()
    }

    /// Cuts `bytes` off the end of segment 1, as a torn write leaves it;
    /// returns its path and its length before.
    fn cut_first_segment(dir: &Path, bytes: u64) -> (PathBuf, u64) {
        let file = dir.join(format!("{:020}{SUFFIX}", 1));
        let len = fs::metadata(&file).unwrap().len();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - bytes)
            .unwrap();
        (file, len)
    }

    fn add(log: &SegmentLog, text: &str) -> u64 {
        log.append(|b| b.extend_from_slice(text.as_bytes()))
    }

    #[test]
    fn records_read_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!((add(&log, "a"), add(&log, "b"), add(&log, "c")), (1, 2, 3));
        assert_eq!(log.last_taken(), 3);
        log.write_staged().unwrap();
        log.sync().unwrap();
        assert_eq!(
            payloads(&log, 0, 3, 10),
            [(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
        );
        assert_eq!(payloads(&log, 1, 2, 10), [(2, b"b".to_vec())], "only up to `through`");
        assert_eq!(payloads(&log, 0, 3, 2).len(), 2, "at most `limit`");
        drop(log);
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(add(&log, "d"), 4, "seqs go on after a reopen");
        log.write_staged().unwrap();
        assert_eq!(payloads(&log, 2, 4, 10), [(3, b"c".to_vec()), (4, b"d".to_vec())]);
    }

    #[test]
    fn a_torn_tail_is_left_unread_and_writes_go_on_in_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = SegmentLog::open(&path, None).unwrap();
        add(&log, "kept");
        add(&log, "torn");
        log.write_staged().unwrap();
        drop(log);
        let (file, len) = cut_first_segment(&path, 2);
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(payloads(&log, 0, 10, 10), [(1, b"kept".to_vec())]);
        assert_eq!(
            add(&log, "after"),
            2,
            "the torn record's seq is taken again: nobody read it"
        );
        log.write_staged().unwrap();
        assert_eq!(payloads(&log, 1, 2, 10), [(2, b"after".to_vec())]);
        assert_eq!(
            fs::metadata(&file).unwrap().len(),
            len - 2,
            "nothing is cut off: the next write starts a new segment"
        );
        drop(log);
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(
            payloads(&log, 0, 10, 10),
            [(1, b"kept".to_vec()), (2, b"after".to_vec())]
        );
    }

    #[test]
    fn a_segment_with_nothing_readable_goes_and_its_name_is_used_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = SegmentLog::open(&path, None).unwrap();
        add(&log, "torn");
        log.write_staged().unwrap();
        drop(log);
        cut_first_segment(&path, 1);
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(add(&log, "again"), 1);
        log.write_staged().unwrap();
        assert_eq!(payloads(&log, 0, 1, 10), [(1, b"again".to_vec())]);
    }

    #[test]
    fn records_above_what_the_store_committed_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = SegmentLog::open(&path, None).unwrap();
        let big = vec![1u8; SEGMENT_BYTES as usize];
        log.append(|b| b.extend_from_slice(&big));
        assert_eq!(log.write_staged().unwrap(), Some(1));
        add(&log, "two");
        add(&log, "three");
        assert_eq!(log.write_staged().unwrap(), Some(3));
        add(&log, "four");
        log.write_staged().unwrap();
        drop(log);
        assert_eq!(fs::read_dir(&path).unwrap().count(), 2);

        // The store kept its writes up to seq 2 only.
        let log = SegmentLog::open(&path, Some(2)).unwrap();
        assert_eq!(payloads(&log, 1, 10, 10), [(2, b"two".to_vec())]);
        assert_eq!(add(&log, "three again"), 3);
        log.write_staged().unwrap();
        assert_eq!(
            fs::read_dir(&path).unwrap().count(),
            3,
            "a new segment, the old one kept as it is"
        );
        assert_eq!(
            payloads(&log, 1, 10, 10),
            [(2, b"two".to_vec()), (3, b"three again".to_vec())]
        );
        drop(log);
        // Reopened without the store's word, the older segment still stops
        // where the next one begins.
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(
            payloads(&log, 1, 10, 10),
            [(2, b"two".to_vec()), (3, b"three again".to_vec())]
        );

        // Segments that begin above what the store committed are deleted.
        drop(log);
        let log = SegmentLog::open(&path, Some(1)).unwrap();
        assert_eq!(fs::read_dir(&path).unwrap().count(), 1);
        assert_eq!(payloads(&log, 0, 10, 10).len(), 1);
        assert_eq!(add(&log, "two again"), 2);
    }

    #[test]
    fn full_segments_roll_over_and_trimming_deletes_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = SegmentLog::open(&path, None).unwrap();
        let big = vec![7u8; (SEGMENT_BYTES / 2) as usize];
        for _ in 0..5 {
            log.append(|b| b.extend_from_slice(&big));
            log.write_staged().unwrap();
        }
        // Two records fill a segment, the third starts the next one.
        assert_eq!(fs::read_dir(&path).unwrap().count(), 3);
        assert_eq!(
            payloads(&log, 0, 5, 10).iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(log.trim(3).unwrap(), 2, "the segment of 1 and 2 goes, 3's stays");
        assert_eq!(log.oldest(), Some(3));
        assert_eq!(log.trim(100).unwrap(), 2, "never the newest segment");
        assert_eq!(log.oldest(), Some(5));
        drop(log);
        let log = SegmentLog::open(&path, None).unwrap();
        assert_eq!(payloads(&log, 0, 9, 10).iter().map(|r| r.0).collect::<Vec<_>>(), [5]);
        assert_eq!(add(&log, "x"), 6);
    }

    #[test]
    fn imported_records_keep_their_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(&dir.path().join("log"), None).unwrap();
        log.append_at(40, b"forty");
        log.append_at(42, b"forty-two");
        log.write_staged().unwrap();
        assert_eq!(add(&log, "next"), 43);
        log.write_staged().unwrap();
        assert_eq!(
            payloads(&log, 0, 43, 10).iter().map(|r| r.0).collect::<Vec<_>>(),
            [40, 42, 43]
        );
        assert_eq!(payloads(&log, 40, 43, 1), [(42, b"forty-two".to_vec())]);
    }
}
