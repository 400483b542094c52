//! Group commit: many writers share one flush.
//!
//! A writer applies its change in memory (sled), then asks the committer for
//! durability and waits. The committer thread takes every request queued so far,
//! makes the data durable once, and answers them all. While one flush runs, new
//! requests queue up and share the next one, so durability costs one flush per
//! batch, not per write, and throughput grows with concurrency instead of
//! serialising on the disk.
//!
//! A failed flush leaves writes applied in memory but maybe not on disk. The
//! committer then stops for good: it fails every later request, and the store
//! refuses writes, so nothing more is acknowledged on top of an unknown state
//! (the lesson of PostgreSQL's "fsyncgate"). A restart recovers.

use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<(), String>>;

/// Something that can make all earlier writes durable.
pub trait Flush: Send + 'static {
    fn flush(&self) -> Result<(), String>;
}

pub struct GroupCommit {
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Reply>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Why the committer stopped, once it has.
    failure: Arc<Mutex<Option<String>>>,
}

const STOPPED: &str = "the commit thread has stopped";

impl GroupCommit {
    /// Starts the committer thread; it ends when the `GroupCommit` is dropped.
    pub fn start(target: impl Flush) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel::<Reply>();
        let failure = Arc::new(Mutex::new(None));
        let recorded = failure.clone();
        let thread = thread::Builder::new().name("producthub-commit".into()).spawn(move || {
            let mut failed: Option<String> = None;
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                batch.extend(queue.try_iter());
                let result = match &failed {
                    Some(why) => Err(why.clone()),
                    None => target.flush(),
                };
                if let (Err(why), None) = (&result, &failed) {
                    failed = Some(why.clone());
                    *recorded.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                }
                for waiter in batch {
                    // A waiter that gave up (its call was cancelled) needs no answer.
                    let _ = waiter.send(result.clone());
                }
            }
        })?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
            failure,
        })
    }

    /// Why durability can no longer be promised, once a flush has failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once every write made before this call is durable.
    pub async fn durable(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| STOPPED.to_string())?
            .send(reply)
            .map_err(|_| STOPPED.to_string())?;
        answer.await.map_err(|_| STOPPED.to_string())?
    }
}

impl Drop for GroupCommit {
    /// Stops the thread and waits for it, so that whatever it holds (the
    /// database handle) is released when the store is dropped.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct SlowFlush(Arc<AtomicUsize>);

    impl Flush for SlowFlush {
        fn flush(&self) -> Result<(), String> {
            thread::sleep(Duration::from_millis(20));
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_flushes() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let commit = Arc::new(GroupCommit::start(SlowFlush(flushes.clone())).unwrap());
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.durable().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        // 64 writers, each waiting for durability: far fewer flushes than writers.
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "{n} flushes for 64 writers");
    }

    struct FailingFlush;

    impl Flush for FailingFlush {
        fn flush(&self) -> Result<(), String> {
            Err("disk full".into())
        }
    }

    #[tokio::test]
    async fn a_failed_flush_stops_the_committer_for_good() {
        let commit = GroupCommit::start(FailingFlush).unwrap();
        assert_eq!(commit.failure(), None);
        assert_eq!(commit.durable().await, Err("disk full".to_string()));
        assert_eq!(commit.failure(), Some("disk full".to_string()));
        assert_eq!(commit.durable().await, Err("disk full".to_string()));
    }
}
