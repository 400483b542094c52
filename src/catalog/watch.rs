//! WatchProducts: the store's change log as a stream, from a resume point,
//! filtered. Each watcher is one task that reads the log in batches and feeds
//! a small bounded channel, so a slow client holds a cursor, not a backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Catalog, CatalogError};
use crate::domain::filter::Filter;
use crate::domain::watch_token;
use crate::pb::{self, ProductChange, WatchProductsRequest};
use crate::storage::{Change, ChangeKind, LogPosition, ProductStore, StoreError};

/// Changes read from the store at a time.
const BATCH: usize = 256;
/// Changes buffered for a watcher before its task waits for the client.
const BUFFER: usize = 64;

/// How long a watcher rides out a store it cannot reach (a database
/// failover, a network blip) before it ends its stream with UNAVAILABLE.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(60);
/// The longest pause between reads while the store cannot be reached.
const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What a watcher receives.
pub type ChangeStream = ReceiverStream<Result<ProductChange, CatalogError>>;

impl<S: ProductStore> Catalog<S> {
    /// Starts a watcher; errors in the request are reported before streaming.
    pub async fn watch(self: &Arc<Self>, request: WatchProductsRequest) -> Result<ChangeStream, CatalogError> {
        let filter = Filter::parse(&request.filter).map_err(|e| CatalogError::invalid("filter", e))?;
        let log_id = self.store.change_log_id().ok_or(CatalogError::ChangeFeedDisabled)?;
        let window = self.store.change_window().await?;
        let after = if !request.resume_token.is_empty() {
            let (major, minor) = watch_token::decode(&request.resume_token, log_id)
                .map_err(|e| CatalogError::invalid("resume_token", e))?;
            let position = LogPosition { major, minor };
            if position > window.newest {
                return Err(CatalogError::invalid(
                    "resume_token",
                    "is ahead of this store's change log",
                ));
            }
            if position < window.trimmed_through {
                return Err(CatalogError::ResumeTokenExpired);
            }
            position
        } else if request.start_from_oldest {
            window.trimmed_through
        } else {
            window.newest
        };
        let permit = self
            .watchers
            .clone()
            .try_acquire_owned()
            .map_err(|_| CatalogError::TooManyWatchers {
                limit: self.max_watchers,
            })?;
        let (sender, receiver) = mpsc::channel(BUFFER);
        let catalog = self.clone();
        tokio::spawn(async move {
            catalog.feed(log_id, after, filter, sender).await;
            // The stream counts as open until its feeder has stopped.
            drop(permit);
        });
        Ok(ReceiverStream::new(receiver))
    }

    /// Sends the changes after `after` that pass `filter`, then each new one as
    /// it becomes durable, until the client goes away or the server stops.
    async fn feed(
        &self,
        log_id: u64,
        mut after: LogPosition,
        filter: Filter,
        sender: mpsc::Sender<Result<ProductChange, CatalogError>>,
    ) {
        let mut durable = self.store.watch_changes();
        let mut closing = self.closing.subscribe();
        loop {
            if *closing.borrow_and_update() {
                let _ = sender.send(Err(CatalogError::ShuttingDown)).await;
                return;
            }
            // Marked seen before reading, so a change that lands after the
            // read wakes the wait below.
            durable.borrow_and_update();
            let Some(batch) = ride_out(&sender, &closing, || self.store.changes(after, BATCH)).await else {
                return;
            };
            if batch.is_empty() {
                tokio::select! {
                    changed = durable.changed() => if changed.is_err() { return },
                    _ = closing.changed() => {}
                    () = sender.closed() => return,
                }
                continue;
            }
            // A trim past this watcher while it was behind ends it; a gap (a
            // change that was never written, e.g. in a crash) does not.
            let Some(window) = ride_out(&sender, &closing, || self.store.change_window()).await else {
                return;
            };
            if after < window.trimmed_through {
                let _ = sender.send(Err(CatalogError::ResumeTokenExpired)).await;
                return;
            }
            for change in batch {
                after = change.position;
                if !filter.matches(&change.product) {
                    continue;
                }
                if sender.send(Ok(to_message(change, log_id))).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Ends every watch stream (with UNAVAILABLE, so clients resume elsewhere
    /// or later); called when the server starts shutting down.
    pub fn close_watches(&self) {
        self.closing.send_replace(true);
    }
}

fn to_message(change: Change, log_id: u64) -> ProductChange {
    let kind = match change.kind {
        ChangeKind::Created => pb::ChangeKind::Created,
        ChangeKind::Updated => pb::ChangeKind::Updated,
        ChangeKind::Deleted => pb::ChangeKind::Deleted,
    };
    ProductChange {
        kind: kind as i32,
        product: Some(change.product),
        resume_token: watch_token::encode(log_id, (change.position.major, change.position.minor)),
        commit_time: Some(change.commit_time),
    }
}

/// Runs a read of the change log, retrying while the store is unreachable for
/// up to [`OUTAGE_PATIENCE`], so a watch stream outlives a database failover.
/// `None` when the stream is over: the error was sent, or the client left.
async fn ride_out<T, Read, Reading>(
    sender: &mpsc::Sender<Result<ProductChange, CatalogError>>,
    closing: &tokio::sync::watch::Receiver<bool>,
    mut read: Read,
) -> Option<T>
where
    Read: FnMut() -> Reading,
    Reading: Future<Output = Result<T, StoreError>>,
{
    let began = Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut closing = closing.clone();
    loop {
        match read().await {
            Ok(value) => return Some(value),
            Err(StoreError::Unavailable(_)) if began.elapsed() < OUTAGE_PATIENCE => {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = sender.closed() => return None,
                    _ = closing.changed() => {
                        let _ = sender.send(Err(CatalogError::ShuttingDown)).await;
                        return None;
                    }
                }
                pause = (pause * 2).min(OUTAGE_BACKOFF_MAX);
            }
            Err(error) => {
                let _ = sender.send(Err(error.into())).await;
                return None;
            }
        }
    }
}
