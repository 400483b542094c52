//! One lane per vendor: which delivery runs when.
//!
//! Each vendor's lane scans the tombstones and the outbox on its own and has
//! up to `--sync-concurrency` deliveries in flight to its vendor, so a vendor
//! that hangs (each call waits out the request timeout), is down (each
//! delivery backs off) or rate limits (the lane holds off for the vendor's
//! `Retry-After`) delays no other vendor's deliveries. Within a lane:
//! - a product id has at most one call in flight (a delivery, or the delete
//!   of an earlier incarnation's copy), so its changes reach the vendor in
//!   order (each delivery sends the product as it is then);
//! - a product deleted and created again under the same id waits until its
//!   earlier incarnation's copy is deleted at the vendor, so the vendor sees
//!   the delete first (a product created while a scan runs waits for the
//!   next scan, which reads the tombstones first);
//! - the deletes of deleted products' copies are looked at before changes;
//! - a claim (shared stores) is renewed as each call starts, after any wait
//!   for a place or a hold-off.
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
/// of a deleted product's copy (its tombstone's uid). Both hold the product
/// id, so a lane never has two calls about one product id in flight.
#[derive(Debug, Clone)]
struct Work {
    product: String,
    tombstone: Option<String>,
}

/// Runs one lane per vendor, each its own task, until `stop` resolves;
/// stopping drops the lanes and so cancels what they have in flight
/// (repeated after the next start).
pub(super) async fn run_lanes<S: ProductStore>(
    worker: Arc<SyncWorker<S>>,
    concurrency: usize,
    wake: Arc<Notify>,
    stop: impl Future<Output = ()>,
) {
    let mut lanes = JoinSet::new();
    let mut wakes = Vec::new();
    for vendor in Vendor::ALL {
        let lane_wake = Arc::new(Notify::new());
        wakes.push(lane_wake.clone());
        lanes.spawn(Lane::new(worker.clone(), vendor, concurrency).run(lane_wake));
    }
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
        _ = lanes.join_next() => tracing::error!("a sync lane stopped; restart the server"),
        _ = fan_out => {}
    }
}

struct Lane<S> {
    worker: Arc<SyncWorker<S>>,
    vendor: Vendor,
    concurrency: usize,
    tasks: JoinSet<Result<Pace, StoreError>>,
    in_flight: HashMap<Id, Work>,
    busy_products: HashSet<String>,
    busy_tombstones: HashSet<String>,
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
            busy_products: HashSet::new(),
            busy_tombstones: HashSet::new(),
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

    /// One look at everything waiting for this vendor, deletes first. A
    /// product that cannot be handled is logged and skipped, so it cannot
    /// hold up the rest.
    async fn scan(&mut self) -> Result<(), StoreError> {
        self.reap_finished();
        // A product created from here on may have a tombstone this scan has
        // not seen: it waits for the next scan.
        let tombstones_read_from = SystemTime::now();
        let earlier_incarnations = self.scan_tombstones().await?;
        let now = Instant::now();
        self.glanced.retain(|_, (_, until)| *until > now);
        let worker = self.worker.clone();
        let store = worker.store();
        let mut after: Option<String> = None;
        loop {
            let batch = worker.outbox_batch(after.as_deref(), BATCH).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for (id, nonce) in batch {
                after = Some(id.clone());
                if self.busy_products.contains(&id)
                    || self
                        .glanced
                        .get(&id)
                        .is_some_and(|(seen, until)| *seen == nonce && *until > Instant::now())
                {
                    continue;
                }
                let product = match store.get(&id).await {
                    Ok(product) => product,
                    Err(error) => {
                        tracing::warn!(vendor = %self.vendor, product = %id, %error, "could not read; skipping it this pass");
                        continue;
                    }
                };
                let Some(product) = product.filter(|p| p.sync.iter().any(|s| s.state == SyncState::Pending as i32))
                else {
                    // Gone (its tombstone has what is left), or nothing pending
                    // for any vendor: out of the outbox, unless changed since.
                    if let Err(error) = store.settle_outbox(&id, nonce).await {
                        tracing::warn!(vendor = %self.vendor, product = %id, %error, "could not settle; skipping it this pass");
                    }
                    continue;
                };
                let older_copy_to_delete = earlier_incarnations
                    .get(&id)
                    .is_some_and(|uids| uids.iter().any(|uid| *uid != product.uid));
                let created = product.create_time.and_then(|t| SystemTime::try_from(t).ok());
                if older_copy_to_delete || created.is_some_and(|t| t >= tombstones_read_from) {
                    continue;
                }
                let (ready, later) = plan::due(&product, SystemTime::now());
                if !ready.iter().any(|entry| entry.vendor == self.vendor.to_pb() as i32) {
                    // Due later here, or pending only at other vendors.
                    let until = later.map_or(GLANCE, |at| {
                        at.duration_since(SystemTime::now()).unwrap_or_default().min(GLANCE)
                    });
                    self.glanced.insert(id, (nonce, Instant::now() + until));
                    continue;
                }
                let (worker, vendor) = (self.worker.clone(), self.vendor);
                let work = Work {
                    product: id.clone(),
                    tombstone: None,
                };
                self.dispatch(work, async move {
                    // A claim lasts a while, not a wait for a place or a
                    // hold-off: renewed as the delivery starts.
                    if !worker.store().renew_claim(Claimed::Outbox(&id)).await? {
                        return Ok(Pace::Steady);
                    }
                    worker.sync_vendor(&id, vendor, nonce).await
                })
                .await;
            }
            // sled answers without ever yielding: let the other lanes run.
            tokio::task::yield_now().await;
        }
    }

    /// Starts the deletes due at this vendor. Returns, by product id, the
    /// uids of deleted incarnations that still have a copy to delete here: a
    /// product of that id with another uid (created again) waits for it.
    async fn scan_tombstones(&mut self) -> Result<HashMap<String, HashSet<String>>, StoreError> {
        let mut earlier_incarnations: HashMap<String, HashSet<String>> = HashMap::new();
        let vendor = self.vendor;
        let enabled = self.worker.enabled(vendor);
        let mut after: Option<String> = None;
        loop {
            let batch = self.worker.tombstone_batch(after.as_deref(), BATCH).await?;
            if batch.is_empty() {
                return Ok(earlier_incarnations);
            }
            for tombstone in batch {
                after = Some(tombstone.uid.clone());
                let entry = plan::entry(&tombstone, vendor.to_pb());
                // Entries of no vendor this build knows: any lane clears them.
                let leftover = tombstone.sync.iter().all(|e| Vendor::from_pb(e.vendor).is_none());
                if entry.is_none() && !leftover {
                    continue;
                }
                // The product id, or (a name that is not one) the uid alone.
                let product = parse_product_name(&tombstone.name, "name")
                    .map(str::to_owned)
                    .unwrap_or_else(|_| format!("\0{}", tombstone.uid));
                let has_copy = entry.is_some_and(|entry| {
                    vendor.adapter().remote_id(&tombstone).is_some() || !entry.remote_id.is_empty()
                });
                if has_copy {
                    if !enabled {
                        // A vendor not configured keeps its copies (and
                        // entries) until it is; the product's new incarnation
                        // is not held up by them.
                        continue;
                    }
                    earlier_incarnations
                        .entry(product.clone())
                        .or_default()
                        .insert(tombstone.uid.clone());
                }
                let not_before = entry
                    .and_then(|e| e.next_attempt_time)
                    .and_then(|t| SystemTime::try_from(t).ok());
                if self.busy_tombstones.contains(&tombstone.uid)
                    || self.busy_products.contains(&product)
                    || not_before.is_some_and(|t| t > SystemTime::now())
                {
                    continue;
                }
                let (worker, uid) = (self.worker.clone(), tombstone.uid);
                let work = Work {
                    product,
                    tombstone: Some(uid.clone()),
                };
                self.dispatch(work, async move {
                    if !worker.store().renew_claim(Claimed::Tombstone(&uid)).await? {
                        // Another replica took it over.
                        return Ok(Pace::Steady);
                    }
                    worker.bury_at(&uid, vendor).await
                })
                .await;
            }
            tokio::task::yield_now().await;
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
        self.busy_products.insert(work.product.clone());
        if let Some(uid) = &work.tombstone {
            self.busy_tombstones.insert(uid.clone());
        }
        self.in_flight.insert(task.id(), work);
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
            self.busy_products.remove(&work.product);
            if let Some(uid) = &work.tombstone {
                self.busy_tombstones.remove(uid);
            }
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
