//! One lane per vendor: which delivery runs when.
//!
//! Each vendor's lane scans the tombstones and the outbox on its own and has
//! up to `--sync-concurrency` deliveries in flight to its vendor, so a vendor
//! that hangs (each call waits out the request timeout), is down (each
//! delivery backs off) or rate limits (the lane holds off for the vendor's
//! `Retry-After`) delays no other vendor's deliveries. Within a lane:
//! - a product has at most one delivery in flight, so its changes reach the
//!   vendor in order (each delivery sends the product as it is then);
//! - a product deleted and created again under the same id waits until its
//!   earlier incarnation's copy is deleted at the vendor, so the vendor sees
//!   the delete first;
//! - the deletes of deleted products' copies are looked at before changes.
//!
//! A scan reads each outbox product it may act on; one it found nothing due
//! in is not read again for a few seconds unless it changes (its outbox
//! nonce moves), so a long outbox waiting out a vendor's outage costs little.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use super::SyncWorker;
use crate::domain::names::parse_product_name;
use crate::domain::sync_plan as plan;
use crate::pb::SyncState;
use crate::storage::{Claimed, ProductStore, StoreError};
use crate::vendors::Vendor;

/// What a finished delivery asks of its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Steady,
    /// The vendor is rate limiting: start nothing new for this long.
    HoldOff(Duration),
}

/// How many outbox entries or tombstones one read of a scan takes.
const BATCH: usize = 256;
/// How often a lane looks for retries that have come due.
const POLL: Duration = Duration::from_millis(200);
/// The longest a lane holds off, whatever a vendor's `Retry-After` says (a
/// product's own retry still waits as long as it asked): a bogus header must
/// not silence a vendor for a day.
const LONGEST_HOLD_OFF: Duration = Duration::from_secs(300);
/// How long a scan trusts that an unchanged outbox product has nothing due
/// for its vendor before reading it again.
const GLANCE: Duration = Duration::from_secs(5);

/// What a lane has in flight: a delivery of a product's change, or a delete
/// of a deleted product's copy (by tombstone uid).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Work {
    Product(String),
    Tombstone(String),
}

/// Runs one lane per vendor until `stop` resolves; stopping drops the lanes
/// and so cancels what they have in flight (repeated after the next start).
pub(super) async fn run_lanes<S: ProductStore>(
    worker: Arc<SyncWorker<S>>,
    concurrency: usize,
    wake: Arc<Notify>,
    stop: impl Future<Output = ()>,
) {
    let wakes: Vec<Arc<Notify>> = Vendor::ALL.iter().map(|_| Arc::new(Notify::new())).collect();
    let lanes = Vendor::ALL
        .into_iter()
        .zip(&wakes)
        .map(|(vendor, lane_wake)| Lane::new(worker.clone(), vendor, concurrency).run(lane_wake.clone()));
    // A change wakes every lane (each keeps the wake-up until it next waits).
    let fan_out = async {
        loop {
            wake.notified().await;
            for lane_wake in &wakes {
                lane_wake.notify_one();
            }
        }
    };
    tokio::select! {
        () = stop => {}
        _ = futures_util::future::join_all(lanes) => {}
        _ = fan_out => {}
    }
}

struct Lane<S> {
    worker: Arc<SyncWorker<S>>,
    vendor: Vendor,
    concurrency: usize,
    tasks: JoinSet<Result<Pace, StoreError>>,
    in_flight: HashMap<Id, Work>,
    busy: HashSet<Work>,
    /// Nothing new starts before this (the vendor asked us to slow down).
    hold_off_until: Option<Instant>,
    /// Outbox products a scan found nothing due in for this vendor: the
    /// nonce they had, and until when that is trusted.
    glanced: HashMap<String, (u64, Instant)>,
}

impl<S: ProductStore> Lane<S> {
    fn new(worker: Arc<SyncWorker<S>>, vendor: Vendor, concurrency: usize) -> Self {
        Self {
            worker,
            vendor,
            concurrency,
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            busy: HashSet::new(),
            hold_off_until: None,
            glanced: HashMap::new(),
        }
    }

    async fn run(mut self, wake: Arc<Notify>) {
        loop {
            if let Err(error) = self.scan().await {
                tracing::warn!(vendor = %self.vendor, %error, "sync pass failed; retrying");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One look at everything waiting for this vendor, deletes first. Work
    /// that cannot be handled is logged and left for the next scan, so it
    /// cannot hold up the rest.
    async fn scan(&mut self) -> Result<(), StoreError> {
        self.reap_finished();
        let waiting_for_delete = self.scan_tombstones().await?;
        let now = Instant::now();
        self.glanced.retain(|_, (_, until)| *until > now);
        let worker = self.worker.clone();
        let store = worker.store();
        let mut after: Option<String> = None;
        loop {
            let batch = store.outbox(after.as_deref(), BATCH).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for (id, nonce) in batch {
                after = Some(id.clone());
                let work = Work::Product(id.clone());
                if waiting_for_delete.contains(&id)
                    || self.busy.contains(&work)
                    || self
                        .glanced
                        .get(&id)
                        .is_some_and(|(seen, until)| *seen == nonce && *until > Instant::now())
                {
                    continue;
                }
                let product = store.get(&id).await?;
                let Some(product) = product.filter(|p| p.sync.iter().any(|s| s.state == SyncState::Pending as i32))
                else {
                    // Gone (its tombstone has what is left), or nothing pending
                    // for any vendor: out of the outbox, unless changed since.
                    store.settle_outbox(&id, nonce).await?;
                    continue;
                };
                let (ready, later) = plan::due(&product, SystemTime::now());
                if !ready.iter().any(|entry| entry.vendor == self.vendor.to_pb() as i32) {
                    // Due later here, or pending only at other vendors.
                    let until = later
                        .and_then(|at| at.duration_since(SystemTime::now()).ok())
                        .map_or(GLANCE, |wait| wait.min(GLANCE));
                    self.glanced.insert(id, (nonce, Instant::now() + until));
                    continue;
                }
                // A claim lasts a while, not a whole scan of slow vendor
                // calls: renewed right before the delivery starts.
                if !store.renew_claim(Claimed::Outbox(&id)).await? {
                    continue;
                }
                let (worker, vendor) = (self.worker.clone(), self.vendor);
                self.dispatch(work, async move { worker.sync_vendor(&id, vendor, nonce).await })
                    .await;
            }
        }
    }

    /// Starts the deletes due at this vendor. Returns the ids of products
    /// whose earlier incarnation still has a copy to delete here: their own
    /// deliveries wait for it.
    async fn scan_tombstones(&mut self) -> Result<HashSet<String>, StoreError> {
        let mut waiting_for_delete = HashSet::new();
        let vendor = self.vendor;
        let mut after: Option<String> = None;
        loop {
            let batch = self.worker.store().tombstones(after.as_deref(), BATCH).await?;
            if batch.is_empty() {
                return Ok(waiting_for_delete);
            }
            for tombstone in batch {
                after = Some(tombstone.uid.clone());
                let entry = plan::entry(&tombstone, vendor.to_pb());
                // Entries of no vendor this build knows: any lane clears them.
                let leftover = tombstone.sync.iter().all(|e| Vendor::from_pb(e.vendor).is_none());
                if entry.is_none() && !leftover {
                    continue;
                }
                // A vendor not configured keeps its copies (and entries) until
                // it is; the product's new incarnation is not held up by them.
                if entry.is_some()
                    && self.worker.enabled(vendor)
                    && let Ok(id) = parse_product_name(&tombstone.name, "name")
                {
                    waiting_for_delete.insert(id.to_owned());
                }
                let not_before = entry
                    .and_then(|e| e.next_attempt_time)
                    .and_then(|t| SystemTime::try_from(t).ok());
                let work = Work::Tombstone(tombstone.uid.clone());
                if self.busy.contains(&work) || not_before.is_some_and(|t| t > SystemTime::now()) {
                    continue;
                }
                if !self
                    .worker
                    .store()
                    .renew_claim(Claimed::Tombstone(&tombstone.uid))
                    .await?
                {
                    // Another replica took it over.
                    continue;
                }
                let (worker, uid) = (self.worker.clone(), tombstone.uid);
                self.dispatch(work, async move { worker.bury_at(&uid, vendor).await })
                    .await;
            }
        }
    }

    /// Starts `job` once a place is free and any hold-off has passed.
    async fn dispatch<F>(&mut self, work: Work, job: F)
    where
        F: Future<Output = Result<Pace, StoreError>> + Send + 'static,
    {
        while self.tasks.len() >= self.concurrency {
            if let Some(done) = self.tasks.join_next_with_id().await {
                self.reaped(done);
            }
        }
        self.reap_finished();
        if let Some(until) = self.hold_off_until.take() {
            tokio::time::sleep_until(until).await;
        }
        let task = self.tasks.spawn(job);
        self.in_flight.insert(task.id(), work.clone());
        self.busy.insert(work);
        self.count_in_flight();
    }

    fn reap_finished(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.reaped(done);
        }
    }

    fn reaped(&mut self, done: Result<(Id, Result<Pace, StoreError>), JoinError>) {
        let (id, outcome) = match done {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(error) => {
                if error.is_panic() {
                    tracing::error!(vendor = %self.vendor, "a delivery panicked; it is tried again on the next scan");
                }
                (error.id(), None)
            }
        };
        let work = self.in_flight.remove(&id);
        if let Some(work) = &work {
            self.busy.remove(work);
        }
        self.count_in_flight();
        match outcome {
            Some(Ok(Pace::HoldOff(wait))) => {
                let until = Instant::now() + wait.min(LONGEST_HOLD_OFF);
                tracing::info!(vendor = %self.vendor, hold_off = ?wait, "the vendor is rate limiting; holding off its deliveries");
                self.hold_off_until = Some(self.hold_off_until.map_or(until, |held| held.max(until)));
            }
            Some(Ok(Pace::Steady)) | None => {}
            Some(Err(error)) => {
                tracing::warn!(vendor = %self.vendor, work = ?work, %error, "could not sync; skipping it this pass");
            }
        }
    }

    fn count_in_flight(&self) {
        metrics::gauge!("producthub_sync_in_flight", "vendor" => self.vendor.to_string().to_lowercase())
            .set(self.tasks.len() as f64);
    }
}
