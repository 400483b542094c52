//! Delivering one product's change to one vendor, and deleting a deleted
//! product's copy at one vendor.
//!
//! [`SyncWorker::run`] hands the work to one [lane](super::lane) per vendor;
//! everything here is about a single (product, vendor) pair. A delivery reads
//! the product as it is now, so a product changed again while a vendor was
//! down is delivered once, in its latest state (the pending paths accumulate;
//! a whole resend asked for meanwhile goes first, then the named paths, so a
//! pending clear is still sent), and records the outcome on the product with
//! what the vendor assigned. Deliveries to different vendors of one product
//! may run at once: each records only its own vendor's entry, through the
//! store's compare-and-swap. Delivery is at least once: a crash between a
//! vendor's answer and recording it repeats the call after restart, which the
//! remote id makes an update rather than a second create (except for a create
//! whose answer was lost: the vendors offer no idempotency key for that).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{Mutex, Notify};

use super::RetryPolicy;
use super::lane::{self, Pace};
use crate::domain::field_mask::{self, UpdateMask};
use crate::domain::names::parse_product_name;
use crate::domain::sync_plan::{self as plan, DriftPolicy, EVERYTHING, Outcome};
use crate::pb::{Product, SyncState, VendorSync};
use crate::storage::{ProductStore, StoreError};
use crate::vendors::fingerprint::{deletion, drift, fingerprint};
use crate::vendors::{Adapter, AdapterError, Connections, Reply, Vendor, VendorError, VendorErrorKind, VendorSettings};

/// Called with a product id and vendor when a delivery stops at DRIFTED
/// under the `adopt` policy, for the adopting to be done.
pub type OnDrift = Arc<dyn Fn(&str, Vendor) + Send + Sync>;

/// Deliveries in flight per vendor unless configured otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

pub struct SyncWorker<S> {
    store: Arc<S>,
    connections: Arc<Connections>,
    settings: VendorSettings,
    enabled: BTreeSet<Vendor>,
    retry: RetryPolicy,
    wake: Arc<Notify>,
    /// What a delivery does with a copy changed at the vendor meanwhile.
    drift_policy: DriftPolicy,
    /// Where a drift found under `adopt` is handed for the adopting.
    on_drift: Option<OnDrift>,
    /// Deliveries in flight per vendor.
    concurrency: usize,
    /// Held across each read-modify-write of a tombstone: the lanes of
    /// different vendors record their deletes of one product's copies in its
    /// one tombstone. (Between replicas, the tombstone's claim does.)
    tombstone_writes: Mutex<()>,
    /// When this process's worker was made (see `pending_from_before_start`).
    started: SystemTime,
    /// Held while a lane reads (and, on a shared store, claims) a batch of
    /// the outbox or tombstones: PostgreSQL's claim skips rows another
    /// statement has locked, so two lanes claiming at once would hide items
    /// from each other until their next scan.
    claiming: Mutex<()>,
}

impl<S: ProductStore> SyncWorker<S> {
    pub fn new(
        store: Arc<S>,
        connections: Arc<Connections>,
        settings: VendorSettings,
        enabled: BTreeSet<Vendor>,
        retry: RetryPolicy,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            connections,
            settings,
            enabled,
            retry,
            wake,
            drift_policy: DriftPolicy::Report,
            on_drift: None,
            concurrency: DEFAULT_CONCURRENCY,
            tombstone_writes: Mutex::new(()),
            started: SystemTime::now(),
            claiming: Mutex::new(()),
        }
    }

    /// Deliveries over a copy changed at the vendor since producthub last
    /// delivered or read it: `Report` and `Adopt` stop at DRIFTED (`Adopt`
    /// then hands the product to `on_drift`), `Push` sends anyway.
    pub fn with_drift_policy(mut self, policy: DriftPolicy, on_drift: Option<OnDrift>) -> Self {
        self.drift_policy = policy;
        self.on_drift = on_drift;
        self
    }

    /// At most this many deliveries in flight to each vendor (at least one).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Works until `stop` resolves: one lane per vendor, so a vendor that is
    /// slow, down or rate limiting holds up only its own deliveries. A
    /// delivery cut short by the stop is repeated after the next start.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let concurrency = self.concurrency;
        let wake = self.wake.clone();
        lane::run_lanes(Arc::new(self), concurrency, wake, stop).await;
    }

    pub(super) fn store(&self) -> &S {
        &self.store
    }

    /// Up to `limit` outbox entries after `after` (claimed, on a shared store).
    pub(super) async fn outbox_batch(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let _claiming = self.claiming.lock().await;
        self.store().outbox(after, limit).await
    }

    /// Up to `limit` tombstones after `after` (claimed, on a shared store).
    pub(super) async fn tombstone_batch(&self, after: Option<&str>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let _claiming = self.claiming.lock().await;
        self.store().tombstones(after, limit).await
    }

    /// Whether deliveries to `vendor` are made (it is configured).
    pub(super) fn enabled(&self, vendor: Vendor) -> bool {
        self.enabled.contains(&vendor)
    }

    /// Delivers `vendor`'s pending change of product `id` if it is due,
    /// records the outcome, and takes the product out of the outbox (as of
    /// `nonce`) once nothing is pending for any vendor. A product with nothing
    /// pending, or gone (its tombstone carries what is left to do), is taken
    /// out at once.
    pub(super) async fn sync_vendor(&self, id: &str, vendor: Vendor, nonce: u64) -> Result<Pace, StoreError> {
        let Some(product) = self.store().get(id).await? else {
            self.store().settle_outbox(id, nonce).await?;
            return Ok(Pace::Steady);
        };
        let (ready, _) = plan::due(&product, SystemTime::now());
        let mut pace = Pace::Steady;
        if let Some(entry) = ready.into_iter().find(|entry| entry.vendor == vendor.to_pb() as i32) {
            let (recorded, slow_down) = self.deliver_and_record(id, &product, vendor, &entry).await?;
            pace = slow_down;
            if recorded == Recording::ProductGone {
                return Ok(pace);
            }
        }
        let still_pending = self
            .store()
            .get(id)
            .await?
            .is_some_and(|p| p.sync.iter().any(|s| s.state == SyncState::Pending as i32));
        if !still_pending {
            self.store().settle_outbox(id, nonce).await?;
        }
        Ok(pace)
    }

    /// One delivery of `entry`'s change to `vendor`, and its recording.
    async fn deliver_and_record(
        &self,
        id: &str,
        product: &Product,
        vendor: Vendor,
        entry: &VendorSync,
    ) -> Result<(Recording, Pace), StoreError> {
        let Delivery {
            outcome,
            assigned,
            fingerprint,
            pace,
        } = self.deliver(product, vendor, entry).await;
        log_outcome(id, vendor, &outcome);
        let now = SystemTime::now();
        let recorded = self
            .store()
            .update(
                id,
                false,
                record(
                    product,
                    vendor,
                    entry,
                    &outcome,
                    assigned.as_ref(),
                    fingerprint.as_deref(),
                    now,
                ),
            )
            .await;
        let recorded = match recorded {
            // The vendor answered with the id of a copy another product
            // holds: recorded as a failure (nothing more is sent until the
            // product changes), never as a second holder, and never
            // retried into one more copy.
            Err(StoreError::LinkTaken { remote_id, holder, .. }) => {
                let failed = Outcome::Failed {
                    error: format!("{vendor} answered with the id {remote_id:?}, whose copy products/{holder} holds"),
                };
                log_outcome(id, vendor, &failed);
                self.store()
                    .update(id, false, record(product, vendor, entry, &failed, None, None, now))
                    .await?
            }
            other => other?,
        };
        // Whether this very call created the copy (it addressed none).
        let created = entry.remote_id.is_empty() && vendor.adapter().remote_id(product).is_none();
        match recorded {
            Ok(_) => {}
            // Let go of meanwhile (unlinked, or another copy linked in its
            // place): nothing is recorded, and the copy is left as it is. One
            // this very call created belongs to no product.
            Err(NotRecorded::Unlinked) => {
                if let (Outcome::Delivered { remote_id, gone: false }, true) = (&outcome, created) {
                    tracing::warn!(product = %id, %vendor, remote_id, "a copy created while the product was linked to another belongs to no product; delete it at the vendor if it is not wanted");
                }
                return Ok((Recording::Skipped, pace));
            }
            // A drift found against a fingerprint or change that is no longer
            // the product's (a push asked for meanwhile): the product's newer
            // state is delivered next.
            Err(NotRecorded::Superseded) => return Ok((Recording::Skipped, pace)),
            Err(NotRecorded::Deleted) => {
                // Its tombstone must learn of a copy this call has just
                // created, or that copy is orphaned. (An existing copy is in
                // the tombstone already, or was let go of with the delete.)
                if let (Outcome::Delivered { remote_id, gone: false }, true) = (&outcome, created) {
                    self.remember_in_tombstone(product, vendor, remote_id).await?;
                }
                return Ok((Recording::ProductGone, pace));
            }
        }
        // Recorded DRIFTED: under `adopt` the vendor's values are taken now.
        if let (Outcome::Drifted { .. }, DriftPolicy::Adopt, Some(on_drift)) =
            (&outcome, self.drift_policy, &self.on_drift)
        {
            on_drift(id, vendor);
        }
        Ok((Recording::Written, pace))
    }

    /// One delivery attempt of the pending change for `vendor`.
    async fn deliver(&self, product: &Product, vendor: Vendor, entry: &VendorSync) -> Delivery {
        if !self.enabled.contains(&vendor) {
            return Delivery::from(Outcome::Disabled);
        }
        let adapter = vendor.adapter();
        let remote_id = adapter.remote_id(product).unwrap_or_else(|| entry.remote_id.clone());
        let result = if !adapter.has_profile(product) {
            self.delete_remote(adapter, product, &remote_id)
                .await
                .map(Delivery::from)
        } else if remote_id.is_empty() {
            self.create_remote(adapter, product).await
        } else {
            let target = with_remote_id(adapter, product, &remote_id);
            self.update_remote(adapter, &target, &remote_id, entry).await
        };
        match result {
            Ok(delivery) => delivery,
            Err(Failure::Adapter(error)) => Delivery::from(Outcome::Failed {
                error: error.to_string(),
            }),
            Err(Failure::Vendor(error)) => Delivery {
                pace: self.pace(&error),
                ..Delivery::from(self.classify(&error, entry.attempts))
            },
        }
    }

    async fn create_remote(&self, adapter: &dyn Adapter, product: &Product) -> Result<Delivery, Failure> {
        let request = adapter.create(product, &self.settings)?;
        let reply = self.connections.send(adapter.vendor(), &request).await?;
        let remote_id = adapter.read_created_id(reply.view())?;
        let target = with_remote_id(adapter, product, &remote_id);
        let assigned = self.assigned(adapter, &target, &reply).await;
        Ok(Delivery {
            outcome: Outcome::Delivered { remote_id, gone: false },
            fingerprint: Some(known(adapter, assigned.as_ref())),
            assigned,
            pace: Pace::Steady,
        })
    }

    /// The vendor's copy as its answer shows it, or, for a vendor whose
    /// answer carries only an id, as a read of it does; imported, for the
    /// output-only fields it assigned. The change is delivered either way: a
    /// copy that cannot be read now is read after the next delivery.
    async fn assigned(&self, adapter: &dyn Adapter, product: &Product, reply: &Reply) -> Option<Product> {
        let object = if adapter.answers_with_the_product() {
            adapter.read_product(reply.view()).ok()
        } else {
            let read = match adapter.get(product, &self.settings) {
                Ok(get) => match self.connections.send(adapter.vendor(), &get).await {
                    Ok(reply) => adapter.read_product(reply.view()).map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                },
                Err(error) => Err(error.to_string()),
            };
            read.map_err(|error| {
                tracing::warn!(product = %product.name, vendor = %adapter.vendor(), %error, "cannot read the copy back; SyncProduct reads it again");
            })
            .ok()
        };
        let imported = object.map(|object| adapter.import(&object));
        match imported {
            Some(Ok(product)) => Some(product),
            Some(Err(error)) => {
                tracing::warn!(product = %product.name, vendor = %adapter.vendor(), %error, "cannot read what the vendor assigned");
                None
            }
            None => None,
        }
    }

    async fn update_remote(
        &self,
        adapter: &dyn Adapter,
        product: &Product,
        remote_id: &str,
        entry: &VendorSync,
    ) -> Result<Delivery, Failure> {
        // Never over a change made at the vendor that producthub has not seen
        // (unless the policy is to push): the copy is read first and compared
        // with its fingerprint. The read is the one a whole-product update
        // needs anyway.
        let mut current = None;
        let checks = !entry.fingerprint.is_empty() && self.drift_policy != DriftPolicy::Push;
        if checks || adapter.reads_before_update() {
            let get = adapter.get(product, &self.settings)?;
            let reply = self.connections.send(adapter.vendor(), &get).await?;
            let read = adapter.read_product(reply.view());
            if checks {
                match &read {
                    Err(error) if error.kind == VendorErrorKind::NotFound => {
                        return Ok(Delivery::from(Outcome::Drifted { drift: deletion() }));
                    }
                    Err(_) => {}
                    Ok(object) => {
                        let copy = adapter.import(object)?;
                        let found = fingerprint(adapter.vendor(), &copy);
                        // A copy that differs only by what producthub itself
                        // sent (an earlier answer lost) is not drift.
                        let drifted = (found != entry.fingerprint)
                            .then(|| {
                                let maybe_sent = entry.attempts > 0 || self.pending_from_before_start(product, entry);
                                drift(
                                    adapter.vendor(),
                                    product,
                                    &copy,
                                    found,
                                    entry,
                                    maybe_sent,
                                    &self.settings,
                                )
                            })
                            .flatten();
                        if let Some(drift) = drifted {
                            return Ok(Delivery::from(Outcome::Drifted { drift }));
                        }
                    }
                }
            }
            current = Some(read?);
        }
        let pending_paths = &entry.pending_paths;
        // A whole resend (`*`) first, then what is named beside it by name, so
        // a pending clear is not lost in a resend that sends no empty value.
        let resend = pending_paths.is_empty() || pending_paths.iter().any(|p| p == EVERYTHING);
        let named: Vec<String> = pending_paths.iter().filter(|p| *p != EVERYTHING).cloned().collect();
        let mut masks = Vec::new();
        if resend {
            masks.push(UpdateMask::Full);
        }
        if !named.is_empty() {
            masks.push(UpdateMask::parse(&named).unwrap_or(UpdateMask::Full));
        }
        let mut last_reply = None;
        for mask in masks {
            // The copy read above serves the first call; a later one reads
            // the copy the first call left.
            if let Some(reply) = self.send_update(adapter, product, &mask, current.take()).await? {
                last_reply = Some(reply);
            }
        }
        // What the vendor assigned, read once, after the last call. Nothing
        // sent: the copy is as it was, and so is its fingerprint.
        let (assigned, fingerprint) = match &last_reply {
            Some(reply) => {
                let assigned = self.assigned(adapter, product, reply).await;
                let fingerprint = known(adapter, assigned.as_ref());
                (assigned, Some(fingerprint))
            }
            None => (None, None),
        };
        Ok(Delivery {
            outcome: Outcome::Delivered {
                remote_id: remote_id.to_owned(),
                gone: false,
            },
            assigned,
            fingerprint,
            pace: Pace::Steady,
        })
    }

    /// One update call for `mask` (after reading the vendor's copy where its
    /// update replaces the whole product); the vendor's answer, or `None` when
    /// the mask holds nothing of the vendor's.
    async fn send_update(
        &self,
        adapter: &dyn Adapter,
        product: &Product,
        mask: &UpdateMask,
        read: Option<serde_json::Value>,
    ) -> Result<Option<Reply>, Failure> {
        // An update that replaces the whole product is merged into the
        // vendor's current copy.
        let last_known = if !adapter.reads_before_update() {
            None
        } else if read.is_some() {
            read
        } else {
            let get = adapter.get(product, &self.settings)?;
            let reply = self.connections.send(adapter.vendor(), &get).await?;
            Some(adapter.read_product(reply.view())?)
        };
        let Some(request) = adapter.update(product, mask, &self.settings, last_known.as_ref())? else {
            return Ok(None);
        };
        let reply = self.connections.send(adapter.vendor(), &request).await?;
        if let Some(error) = adapter.read_error(reply.view()) {
            return Err(Failure::Vendor(error));
        }
        Ok(Some(reply))
    }

    /// Whether a process before this one may have sent the pending change and
    /// died before recording it (a kill, a crash), which leaves no attempt
    /// counted: the product last changed before this process started, and
    /// this process has not synced it since. (A change pending from before
    /// the start and changed again since is not recognised: its copy is
    /// reported DRIFTED, never overwritten unseen.)
    fn pending_from_before_start(&self, product: &Product, entry: &VendorSync) -> bool {
        let before_start = |time: Option<prost_types::Timestamp>| {
            time.and_then(|t| SystemTime::try_from(t).ok())
                .is_none_or(|t| t < self.started)
        };
        before_start(product.update_time) && before_start(entry.last_sync_time)
    }

    /// Deletes the vendor's copy of a product whose profile was removed (or
    /// that was deleted). A copy that is already gone counts as deleted.
    async fn delete_remote(
        &self,
        adapter: &dyn Adapter,
        product: &Product,
        remote_id: &str,
    ) -> Result<Outcome, Failure> {
        let gone = Outcome::Delivered {
            remote_id: String::new(),
            gone: true,
        };
        if remote_id.is_empty() {
            return Ok(gone);
        }
        let target = with_remote_id(adapter, product, remote_id);
        let request = adapter.delete(&target, &self.settings)?;
        let reply = self.connections.send(adapter.vendor(), &request).await?;
        match adapter.read_error(reply.view()) {
            None => Ok(gone),
            Some(error) if adapter.is_gone(&error) => Ok(gone),
            Some(error) => Err(Failure::Vendor(error)),
        }
    }

    /// A rate-limited answer holds off the vendor's whole lane, for as long
    /// as the vendor asked (or the first retry delay).
    fn pace(&self, error: &VendorError) -> Pace {
        match error.kind {
            VendorErrorKind::RateLimited => Pace::HoldOff(error.retry_after.unwrap_or(self.retry.base)),
            _ => Pace::Steady,
        }
    }

    fn classify(&self, error: &VendorError, attempts: i32) -> Outcome {
        if !error.is_retryable() {
            return Outcome::Failed {
                error: error.to_string(),
            };
        }
        let random = uuid::Uuid::new_v4().as_u64_pair().0;
        let backoff = plan::backoff(attempts, self.retry.base, self.retry.max, random);
        Outcome::Retry {
            error: error.to_string(),
            // The vendor's own Retry-After wins over our backoff.
            after: error.retry_after.unwrap_or(backoff),
        }
    }

    /// Records a vendor copy created for a product that was deleted meanwhile
    /// in its tombstone, so the copy is deleted too.
    async fn remember_in_tombstone(
        &self,
        product: &Product,
        vendor: Vendor,
        remote_id: &str,
    ) -> Result<(), StoreError> {
        let _writing = self.tombstone_writes.lock().await;
        // Without a tombstone (buried already, or the delete kept the
        // copies), a fresh one carries this copy alone.
        let mut tombstone = match self.store().tombstone(&product.uid).await? {
            Some(tombstone) => tombstone,
            None => Product {
                sync: Vec::new(),
                ..product.clone()
            },
        };
        let mut entry = plan::entry(&tombstone, vendor.to_pb()).cloned().unwrap_or(VendorSync {
            vendor: vendor.to_pb() as i32,
            ..Default::default()
        });
        entry.remote_id = remote_id.to_owned();
        entry.next_attempt_time = None;
        tombstone.sync.retain(|s| s.vendor != entry.vendor);
        tombstone.sync.push(entry);
        tracing::info!(product = %product.name, %vendor, remote_id, "created at a vendor after the delete; deleting it there too");
        self.store().set_tombstone(&product.uid, Some(&tombstone)).await
    }

    /// Deletes a deleted product's copy at `vendor` if that is due, and
    /// records the outcome in its tombstone; the tombstone goes once no
    /// vendor's copy is left to delete.
    pub(super) async fn bury_at(&self, uid: &str, vendor: Vendor) -> Result<Pace, StoreError> {
        let Some(tombstone) = self.store().tombstone(uid).await? else {
            return Ok(Pace::Steady);
        };
        if let Ok(id) = parse_product_name(&tombstone.name, "name")
            && self.store().get(id).await?.is_some_and(|p| p.uid == tombstone.uid)
        {
            // The delete this tombstone announced has not happened (yet): the
            // product lives on.
            return Ok(Pace::Steady);
        }
        // The product's removal seen above may not be durable yet (the
        // delete call is still waiting for its flush): a crash now would
        // bring the product back holding a copy deleted here. So the copy is
        // deleted only once the removal is on disk.
        self.store().flush().await?;
        let adapter = vendor.adapter();
        let now = SystemTime::now();
        let Some(entry) = plan::entry(&tombstone, vendor.to_pb()) else {
            // Nothing of this vendor's: only entries of unknown vendors to
            // clear (or nothing at all left).
            self.record_burial(uid, vendor, None, now).await?;
            return Ok(Pace::Steady);
        };
        let remote_id = adapter.remote_id(&tombstone).unwrap_or_else(|| entry.remote_id.clone());
        let not_before = entry.next_attempt_time.and_then(|t| SystemTime::try_from(t).ok());
        let mut pace = Pace::Steady;
        let outcome = if remote_id.is_empty() {
            // No copy was ever made: nothing to delete.
            Outcome::Delivered {
                remote_id: String::new(),
                gone: true,
            }
        } else if !self.enabled(vendor) || not_before.is_some_and(|t| t > now) {
            // A vendor not configured (any more) keeps its entry until it
            // is: its copy still exists.
            return Ok(Pace::Steady);
        } else {
            let outcome = match self.delete_remote(adapter, &tombstone, &remote_id).await {
                Ok(outcome) => outcome,
                Err(Failure::Adapter(error)) => Outcome::Failed {
                    error: error.to_string(),
                },
                Err(Failure::Vendor(error)) => {
                    pace = self.pace(&error);
                    self.classify(&error, entry.attempts)
                }
            };
            match &outcome {
                Outcome::Delivered { .. } => {
                    tracing::info!(product = %tombstone.name, %vendor, "deleted at vendor");
                }
                // E.g. EnOS 11619: the product still has devices. Reported,
                // not retried forever; the copy stays.
                Outcome::Failed { error } => {
                    tracing::warn!(product = %tombstone.name, %vendor, %error, "could not delete at vendor");
                }
                _ => {}
            }
            outcome
        };
        self.record_burial(uid, vendor, Some((outcome, remote_id)), now).await?;
        Ok(pace)
    }

    /// Writes what deleting the copy `addressed` at `vendor` came to into the
    /// tombstone as it is now (another vendor's lane may have written it
    /// meanwhile), unless its entry names another copy by now (one a delivery
    /// cut short by the delete created: deleted next). Entries of vendors this
    /// build does not know are dropped: nothing can delete them.
    async fn record_burial(
        &self,
        uid: &str,
        vendor: Vendor,
        outcome: Option<(Outcome, String)>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let _writing = self.tombstone_writes.lock().await;
        let Some(mut tombstone) = self.store().tombstone(uid).await? else {
            return Ok(());
        };
        let before = tombstone.sync.clone();
        tombstone.sync.retain(|entry| Vendor::from_pb(entry.vendor).is_some());
        let wanted = vendor.to_pb() as i32;
        let held = plan::entry(&tombstone, vendor.to_pb()).map(|entry| {
            vendor
                .adapter()
                .remote_id(&tombstone)
                .unwrap_or_else(|| entry.remote_id.clone())
        });
        match outcome {
            Some((_, addressed)) if held.as_ref() != Some(&addressed) => {}
            Some((Outcome::Delivered { .. } | Outcome::Failed { .. }, _)) => {
                tombstone.sync.retain(|e| e.vendor != wanted)
            }
            Some((Outcome::Retry { error, after }, _)) => {
                if let Some(entry) = tombstone.sync.iter_mut().find(|e| e.vendor == wanted) {
                    entry.attempts += 1;
                    entry.last_error = error;
                    entry.next_attempt_time = Some((now + after).into());
                }
            }
            Some((Outcome::Disabled | Outcome::Drifted { .. }, _)) | None => {}
        }
        if tombstone.sync.is_empty() {
            self.store().set_tombstone(uid, None).await
        } else if tombstone.sync != before {
            self.store().set_tombstone(uid, Some(&tombstone)).await
        } else {
            Ok(())
        }
    }
}

/// What became of a delivery's outcome.
#[derive(Debug, PartialEq, Eq)]
enum Recording {
    Written,
    /// Nothing was written (the copy was let go of, or the drift found was
    /// superseded); the product's next state is looked at next.
    Skipped,
    /// The product (this incarnation) is gone.
    ProductGone,
}

/// What one delivery attempt came to, and what the vendor assigned on the way.
struct Delivery {
    outcome: Outcome,
    /// The vendor's copy after a create or update, imported.
    assigned: Option<Product>,
    /// The fingerprint of what the vendor holds now (empty: sent, but not
    /// read back); `None`: nothing was sent, the old one stands.
    fingerprint: Option<String>,
    /// What the vendor's answer asks of its lane.
    pace: Pace,
}

impl From<Outcome> for Delivery {
    fn from(outcome: Outcome) -> Self {
        Delivery {
            outcome,
            assigned: None,
            fingerprint: None,
            pace: Pace::Steady,
        }
    }
}

/// The fingerprint of a copy read back, or empty (unknown: the next
/// reconcile compares the copy with what producthub sent).
fn known(adapter: &dyn Adapter, assigned: Option<&Product>) -> String {
    assigned
        .map(|copy| fingerprint(adapter.vendor(), copy))
        .unwrap_or_default()
}

/// Why a delivery did not happen.
enum Failure {
    Adapter(AdapterError),
    Vendor(VendorError),
}

impl From<AdapterError> for Failure {
    fn from(e: AdapterError) -> Self {
        Failure::Adapter(e)
    }
}

impl From<VendorError> for Failure {
    fn from(e: VendorError) -> Self {
        Failure::Vendor(e)
    }
}

/// The product with (at least) an empty profile holding the vendor's id, so
/// the adapter can address the vendor's copy after the profile was removed.
/// Why a delivery's outcome was not recorded on the product.
enum NotRecorded {
    /// The product (this incarnation) is gone.
    Deleted,
    /// The product no longer has the vendor's sync entry: its copy was let
    /// go of (UnlinkVendorProduct) during the delivery.
    Unlinked,
    /// A drift was found against a fingerprint or a change the product no
    /// longer has (e.g. SyncProduct asked for a push meanwhile).
    Superseded,
}

/// The change recording a delivery outcome on the product: the outcome
/// itself, what the vendor assigned, and the vendor's id in the profile.
fn record<'a>(
    delivered: &'a Product,
    vendor: Vendor,
    entry: &'a VendorSync,
    outcome: &'a Outcome,
    assigned: Option<&'a Product>,
    fingerprint: Option<&'a str>,
    now: SystemTime,
) -> impl Fn(Option<Product>) -> Result<Product, NotRecorded> + Send + Sync + 'a {
    move |current| {
        // Only onto the same incarnation: a product deleted and created again
        // under this id is not the one delivered.
        let mut current = current.filter(|c| c.uid == delivered.uid).ok_or(NotRecorded::Deleted)?;
        // Gone, or another copy linked in its place: the copy delivered to
        // was let go of.
        // The copy the delivery addressed must be the one the product holds
        // now (none, for a first create): otherwise it was let go of, or
        // another was linked in its place, meanwhile.
        let Some(linked) = plan::entry(&current, vendor.to_pb()) else {
            return Err(NotRecorded::Unlinked);
        };
        let addressed = vendor
            .adapter()
            .remote_id(delivered)
            .unwrap_or_else(|| entry.remote_id.clone());
        let held = vendor
            .adapter()
            .remote_id(&current)
            .unwrap_or_else(|| linked.remote_id.clone());
        if addressed != held {
            return Err(NotRecorded::Unlinked);
        }
        if matches!(outcome, Outcome::Drifted { .. })
            && (linked.fingerprint != entry.fingerprint || linked.generation != entry.generation)
        {
            return Err(NotRecorded::Superseded);
        }
        plan::record_outcome(
            &mut current,
            vendor.to_pb(),
            entry.generation,
            &delivered.etag,
            outcome,
            now,
        );
        // What the vendor assigned (keys, secrets, counters) is its word:
        // kept whatever change is pending.
        if let Some(assigned) = assigned {
            field_mask::adopt_output_only(&mut current, assigned, vendor.profile_field());
        }
        // What the vendor now holds, for the next delivery and reconcile to
        // compare with (unknown when it could not be read back).
        if let (Outcome::Delivered { gone: false, .. }, Some(known)) = (outcome, fingerprint) {
            plan::set_fingerprint(&mut current, vendor.to_pb(), known);
        }
        // Keep the vendor's id in the profile too, where the adapter reads it.
        if let Outcome::Delivered { remote_id, gone: false } = outcome {
            vendor.adapter().set_remote_id(&mut current, remote_id);
        }
        Ok(current)
    }
}

fn with_remote_id(adapter: &dyn Adapter, product: &Product, remote_id: &str) -> Product {
    let mut target = product.clone();
    adapter.ensure_profile(&mut target);
    adapter.set_remote_id(&mut target, remote_id);
    target
}

/// Logs a delivery attempt and counts it in
/// `producthub_sync_deliveries_total{vendor,outcome}`.
fn log_outcome(id: &str, vendor: Vendor, outcome: &Outcome) {
    let counted = match outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Failed { .. } => "failed",
        Outcome::Disabled => "disabled",
        Outcome::Drifted { .. } => "drifted",
    };
    metrics::counter!("producthub_sync_deliveries_total", "vendor" => vendor.to_string().to_lowercase(), "outcome" => counted)
        .increment(1);
    match outcome {
        Outcome::Delivered { remote_id, gone } => {
            tracing::info!(product = id, %vendor, remote_id, deleted = gone, "delivered")
        }
        Outcome::Retry { error, after } => {
            tracing::warn!(product = id, %vendor, %error, retry_in = ?after, "delivery failed; will retry")
        }
        Outcome::Failed { error } => tracing::warn!(product = id, %vendor, %error, "delivery refused; not retrying"),
        Outcome::Disabled => tracing::info!(product = id, %vendor, "vendor not configured; nothing sent"),
        Outcome::Drifted { drift } => {
            metrics::counter!("producthub_drift_detected_total", "vendor" => vendor.to_string().to_lowercase(), "deleted" => drift.copy_deleted.to_string())
                .increment(1);
            tracing::warn!(
            product = id,
            %vendor,
            drift = %plan::drift_summary(drift),
            "the copy changed at the vendor; not overwritten (DRIFTED)"
            )
        }
    }
}
