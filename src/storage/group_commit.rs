//! Group commit: many writers share one fsync.
//!
//! A writer applies its change in memory (sled), then asks the committer for
//! durability and waits. The committer thread takes every request queued so far,
//! flushes once, and answers them all. While one flush runs, new requests queue
//! up and share the next one, so durability costs one fsync per batch, not per
//! write, and throughput grows with concurrency instead of serialising on disk.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<(), String>>;

/// Something that can make all earlier writes durable.
pub trait Flush: Send + 'static {
    fn flush(&self) -> Result<(), String>;
}

impl Flush for sled::Db {
    fn flush(&self) -> Result<(), String> {
        sled::Tree::flush(self).map(|_| ()).map_err(|e| e.to_string())
    }
}

pub struct GroupCommit {
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Reply>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the committer thread; it ends when the `GroupCommit` is dropped.
    pub fn start(target: impl Flush) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel::<Reply>();
        let thread = thread::Builder::new().name("producthub-commit".into()).spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                batch.extend(queue.try_iter());
                let result = target.flush();
                for waiter in batch {
                    // A waiter that gave up (its call was cancelled) needs no answer.
                    let _ = waiter.send(result.clone());
                }
            }
        })?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Resolves once every write made before this call is durable.
    pub async fn durable(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| "the commit thread has stopped".to_string())?
            .send(reply)
            .map_err(|_| "the commit thread has stopped".to_string())?;
        answer.await.map_err(|_| "the commit thread has stopped".to_string())?
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
    use std::sync::Arc;
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
    async fn flush_errors_reach_every_waiter() {
        let commit = GroupCommit::start(FailingFlush).unwrap();
        assert_eq!(commit.durable().await, Err("disk full".to_string()));
    }
}
