//! Reconcile: read a vendor's copy, compare it with what producthub last
//! delivered or read (the sync entry's fingerprint), and settle any drift by
//! the policy: report it, push producthub's values again, or adopt the
//! vendor's as a canonical update.
//!
//! Reconciles run on demand (ReconcileProduct), when a vendor says a copy
//! changed (a webhook hands the copy to [`Reconciles`]), when a delivery
//! stopped at DRIFTED under `adopt`, and every `--reconcile-interval` over
//! every copy. A copy whose delivery is pending is left to that delivery,
//! which compares the copy itself before it sends. Every write re-checks that
//! the copy is still the one read and that nothing was delivered to it
//! meanwhile; otherwise the reconcile writes nothing (the next one looks
//! again).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::sync::mpsc;

use prost::Message;

use super::adopt::{held_copy, without_profile};
use super::import::{CANCELLED, FAILED_PRECONDITION, status};
use super::operations::{ImportJob, ReconcileJob, operation_id, operation_view};
use super::{Catalog, CatalogError, new_etag, now, updated, vendor_from_request, vendors_from_request};
use crate::domain::field_mask::UpdateMask;
use crate::domain::names::{parse_product_name, product_name};
use crate::domain::sync_plan::{self as plan, DriftPolicy, EVERYTHING};
use crate::domain::{FieldViolation, join_violations};
use crate::pb::google::longrunning::Operation;
use crate::pb::google::rpc::Status;
use crate::pb::{
    Product, ReconcileAction, ReconcileProductRequest, ReconcileVendorProductsMetadata, ReconcileVendorProductsRequest,
    ReconciledCopy, SyncState, VendorDrift,
};
use crate::storage::{ProductStore, StoreError};
use crate::vendors::fingerprint::{deletion, drift, fingerprint};
use crate::vendors::{self, Vendor, validate};

/// Copies read at once by a pass over the catalog or the queue: enough to
/// hide a vendor's latency, few enough to stay inside its rate limits.
const READS_IN_FLIGHT: usize = 8;

/// Products read from the store at a time by a pass.
const SCAN_BATCH: usize = 256;

/// The copies waiting to be reconciled soon (asked for by webhooks and by
/// deliveries that stopped at DRIFTED under `adopt`). A copy already waiting
/// is not queued twice, so a burst of events for one copy costs one read.
#[derive(Clone)]
pub struct Reconciles {
    sender: mpsc::UnboundedSender<(String, Vendor)>,
    waiting: Arc<Mutex<HashSet<(String, Vendor)>>>,
}

impl Reconciles {
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<(String, Vendor)>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let reconciles = Self {
            sender,
            waiting: Arc::new(Mutex::new(HashSet::new())),
        };
        (reconciles, receiver)
    }

    /// Asks for the product's copy at `vendor` to be reconciled soon, with
    /// the server's policy.
    pub fn schedule(&self, product_id: &str, vendor: Vendor) {
        let key = (product_id.to_owned(), vendor);
        let fresh = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key.clone());
        if fresh && self.sender.send(key.clone()).is_err() {
            // No one reconciles (shutting down): the interval catches up.
            self.begun(&key);
        }
    }

    fn begun(&self, key: &(String, Vendor)) {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

/// How `last_error` says that a drift's values were not adopted.
const CANNOT_ADOPT: &str = "cannot adopt it";

/// Findings (drifted or failed copies) an operation's metadata lists.
const MAX_FINDINGS_KEPT: usize = 1000;

/// Why a reconcile's write did not happen.
enum NotWritten {
    /// The product or its copy changed since the copy was read.
    Moved,
    Refused(CatalogError),
}

impl<S: ProductStore> Catalog<S> {
    /// The queue webhooks and the sync engine hand copies to.
    pub fn reconciles(&self) -> Reconciles {
        self.reconciles.clone()
    }

    /// The id of the product holding the vendor's copy `remote_id`, if any.
    pub async fn copy_holder(&self, vendor: Vendor, remote_id: &str) -> Result<Option<String>, CatalogError> {
        Ok(self.store.linked(vendor.to_pb(), remote_id).await?)
    }

    pub async fn reconcile_product(&self, request: ReconcileProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let id = parse_product_name(&request.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let asked_policy = DriftPolicy::from_pb(request.policy)
            .map_err(|why| violations.push(FieldViolation::new("policy", why)))
            .ok()
            .flatten();
        let chosen = asked_policy.is_some();
        let policy = asked_policy.unwrap_or(self.drift_policy);
        let asked = vendors_from_request(&request.vendors, &mut violations);
        let (Some(id), true) = (id, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        let product = self.store.get(id).await?.ok_or_else(|| CatalogError::NotFound {
            name: request.name.clone(),
        })?;
        let holding: BTreeSet<Vendor> = Vendor::ALL
            .into_iter()
            .filter(|v| held_copy(&product, *v).is_some())
            .collect();
        let targets = self.target_vendors(&holding, &asked)?;
        if let Some(vendor) = targets.iter().find(|v| !holding.contains(v)) {
            return Err(CatalogError::NotLinked {
                name: request.name.clone(),
                vendor: *vendor,
            });
        }
        // Every copy asked for is reconciled; the first failure is the answer.
        let mut failure = None;
        for vendor in targets {
            if let Err(error) = self.reconcile_copy(id, vendor, policy, chosen).await {
                failure.get_or_insert(error);
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        self.store
            .get(id)
            .await?
            .ok_or(CatalogError::NotFound { name: request.name })
    }

    /// Reconciles the product's copy at `vendor` by `policy`. A copy that
    /// cannot be read, or a drift that cannot be adopted, is an error; one
    /// that is not compared now is SKIPPED, with the reason. A copy whose
    /// delivery is pending is left to that delivery, unless the policy was
    /// the caller's own choice (`chosen`).
    pub(super) async fn reconcile_copy(
        &self,
        id: &str,
        vendor: Vendor,
        policy: DriftPolicy,
        chosen: bool,
    ) -> Result<ReconciledCopy, CatalogError> {
        let name = product_name(id);
        let product = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| CatalogError::NotFound { name: name.clone() })?;
        let Some(remote_id) = held_copy(&product, vendor) else {
            return Err(CatalogError::NotLinked { name, vendor });
        };
        let mut found = ReconciledCopy {
            product: name.clone(),
            remote_id: remote_id.clone(),
            ..Default::default()
        };
        let entry = vendors::sync_entry(&product, vendor).cloned().unwrap_or_default();
        let not_now = if !vendor.has_profile(&product) {
            Some("the profile was removed; the copy's delete is pending")
        } else if entry.state == SyncState::Disabled as i32 {
            Some("nothing was delivered to the copy yet (DISABLED); SyncProduct sends it")
        } else if entry.state == SyncState::Pending as i32 && !chosen {
            Some("a delivery is pending; it compares the copy itself before it sends")
        } else {
            None
        };
        if let Some(why) = not_now {
            found.action = ReconcileAction::Skipped as i32;
            found.reason = why.into();
            return Ok(counted(vendor, found));
        }
        let copy = match self.read_copy(vendor, &remote_id).await {
            Ok(copy) => Some(copy),
            Err(CatalogError::VendorCopyNotFound { .. }) => None,
            Err(error) => return Err(error),
        };
        // The write below happens only onto what was read: the same copy,
        // nothing delivered or marked for delivery since.
        let unmoved = |current: &Product| {
            current.uid == product.uid
                && held_copy(current, vendor).as_deref() == Some(remote_id.as_str())
                && vendors::sync_entry(current, vendor).is_some_and(|e| {
                    e.fingerprint == entry.fingerprint
                        && e.generation == entry.generation
                        && e.synced_etag == entry.synced_etag
                        && e.state == entry.state
                })
        };
        let moved = |mut found: ReconciledCopy| {
            found.action = ReconcileAction::Skipped as i32;
            found.reason = "the product changed while the copy was read; the next reconcile looks again".into();
            Ok(counted(vendor, found))
        };
        // No fingerprint yet (a copy never read back): compared with what
        // producthub sends, and taken as the starting point if it matches.
        let seen = copy.as_ref().map(|copy| fingerprint(vendor, copy));
        let drifted = match (&copy, &seen) {
            (None, _) => Some(deletion()),
            (Some(_), Some(seen)) if *seen == entry.fingerprint => None,
            (Some(copy), Some(seen)) => drift(
                vendor,
                &product,
                copy,
                seen.clone(),
                &entry,
                entry.attempts > 0,
                &self.vendors,
            ),
            (Some(_), None) => None,
        };
        let Some(drifted) = drifted else {
            found.action = ReconcileAction::InSync as i32;
            let seen = seen.unwrap_or_default();
            if seen != entry.fingerprint || entry.state == SyncState::Drifted as i32 {
                // Changed back at the vendor, or holding what producthub sent
                // (an answer that never arrived): nothing differs.
                let written = self
                    .write_reconciled(id, |current| {
                        if !unmoved(&current) {
                            return Err(NotWritten::Moved);
                        }
                        let mut next = current;
                        plan::set_fingerprint(&mut next, vendor.to_pb(), &seen);
                        plan::clear_drift(&mut next, vendor.to_pb());
                        Ok(next)
                    })
                    .await?;
                if written.is_none() {
                    return moved(found);
                }
                self.wake_sync();
            }
            return Ok(counted(vendor, found));
        };
        found.copy_deleted = drifted.copy_deleted;
        found.fields = drifted.fields.clone();
        // A drift already reported is not news: written, counted and logged once.
        let known = entry.state == SyncState::Drifted as i32
            && entry.drift.as_ref().is_some_and(|d| {
                d.copy_deleted == drifted.copy_deleted && d.vendor_fingerprint == drifted.vendor_fingerprint
            });
        let news = || {
            metrics::counter!("producthub_drift_detected_total", "vendor" => label(vendor), "deleted" => drifted.copy_deleted.to_string())
                .increment(1);
            tracing::info!(product = %name, %vendor, remote_id, drift = %plan::drift_summary(&drifted), ?policy, "drift found");
        };
        let action = match policy {
            DriftPolicy::Report => {
                if !known {
                    let written = self
                        .write_reconciled(id, |current| {
                            if !unmoved(&current) {
                                return Err(NotWritten::Moved);
                            }
                            let mut next = current;
                            plan::mark_drifted(&mut next, vendor.to_pb(), drifted.clone());
                            Ok(next)
                        })
                        .await?;
                    if written.is_none() {
                        return moved(found);
                    }
                    news();
                }
                ReconcileAction::Drifted
            }
            DriftPolicy::Push => {
                let mut paths = vec![EVERYTHING.to_owned()];
                // By name too: a whole resend sends no empty value, so a field
                // set at the vendor and empty here is cleared only by name.
                paths.extend(drifted.fields.iter().map(|f| f.path.clone()));
                let only = BTreeSet::from([vendor]);
                let written = self
                    .write_reconciled(id, |current| {
                        if !unmoved(&current) {
                            return Err(NotWritten::Moved);
                        }
                        let mut next = current;
                        if drifted.copy_deleted {
                            // Created again: the old copy is gone.
                            vendor.adapter().set_remote_id(&mut next, "");
                            plan::forget_copy(&mut next, vendor.to_pb());
                        }
                        plan::set_fingerprint(&mut next, vendor.to_pb(), "");
                        vendors::mark_changed(&mut next, &only, &paths, &self.sync.enabled);
                        Ok(next)
                    })
                    .await?;
                if written.is_none() {
                    return moved(found);
                }
                if !known {
                    news();
                }
                self.wake_sync();
                ReconcileAction::Pushed
            }
            DriftPolicy::Adopt => {
                let adopted = |current: &Product| match &copy {
                    Some(copy) => adopt_values(current, copy, vendor, &drifted, &self.sync.enabled),
                    None => adopt_deletion(current, vendor),
                };
                // Refused already, for this very drift: said again, not written again.
                let refused_before = known && entry.last_error.contains(CANNOT_ADOPT);
                if let (true, Err(CatalogError::InvalidArgument(violations))) = (refused_before, adopted(&product)) {
                    return Err(CatalogError::AdoptRefused {
                        name,
                        vendor,
                        violations,
                    });
                }
                let written = self
                    .write_reconciled(id, |current| {
                        if !unmoved(&current) {
                            return Err(NotWritten::Moved);
                        }
                        match adopted(&current) {
                            Ok(next) => Ok(next),
                            // The vendor's values break producthub's rules:
                            // reported, nothing adopted.
                            Err(CatalogError::InvalidArgument(violations)) => {
                                let mut next = current;
                                plan::mark_drifted(&mut next, vendor.to_pb(), drifted.clone());
                                plan::set_last_error(
                                    &mut next,
                                    vendor.to_pb(),
                                    &format!(
                                        "{}; {CANNOT_ADOPT}: {}",
                                        plan::drift_summary(&drifted),
                                        join_violations(&violations)
                                    ),
                                );
                                Ok(next)
                            }
                            Err(other) => Err(NotWritten::Refused(other)),
                        }
                    })
                    .await?;
                let Some(written) = written else {
                    return moved(found);
                };
                if !known {
                    news();
                }
                let still_drifted =
                    vendors::sync_entry(&written, vendor).is_some_and(|e| e.state == SyncState::Drifted as i32);
                if still_drifted {
                    let violations = match adopted(&product) {
                        Err(CatalogError::InvalidArgument(violations)) => violations,
                        _ => Vec::new(),
                    };
                    return Err(CatalogError::AdoptRefused {
                        name,
                        vendor,
                        violations,
                    });
                }
                self.wake_sync();
                ReconcileAction::Adopted
            }
        };
        found.action = action as i32;
        Ok(counted(vendor, found))
    }

    /// One reconcile write, returning the product written; `None` when the
    /// product moved since the copy was read and was left as it is (the next
    /// reconcile looks again).
    async fn write_reconciled(
        &self,
        id: &str,
        change: impl Fn(Product) -> Result<Product, NotWritten> + Send + Sync,
    ) -> Result<Option<Product>, CatalogError> {
        let written = self
            .store
            .update(id, self.announces(), |stored: Option<Product>| match stored {
                Some(stored) => change(stored),
                None => Err(NotWritten::Moved),
            })
            .await?;
        match written {
            Ok(product) => Ok(Some(product)),
            Err(NotWritten::Moved) => Ok(None),
            Err(NotWritten::Refused(error)) => Err(error),
        }
    }

    /// The copies `batch` holds at configured vendors (or only at `only`),
    /// reconciled by `policy`, READS_IN_FLIGHT at a time. A copy that cannot
    /// be read or settled is FAILED, with the reason; storage failures end
    /// the batch. `chosen`: the policy is the caller's (see
    /// [`Catalog::reconcile_copy`]).
    pub(super) async fn reconcile_batch(
        &self,
        batch: &[Product],
        only: Option<Vendor>,
        policy: DriftPolicy,
        chosen: bool,
    ) -> Result<Vec<(Vendor, ReconciledCopy)>, CatalogError> {
        let copies: Vec<(String, String, Vendor)> = batch
            .iter()
            .flat_map(|product| {
                let id = product
                    .name
                    .strip_prefix("products/")
                    .unwrap_or(&product.name)
                    .to_owned();
                Vendor::ALL
                    .into_iter()
                    .filter(|v| only.is_none_or(|o| o == *v) && self.sync.enabled.contains(v))
                    .filter_map(move |v| held_copy(product, v).map(|remote_id| (id.clone(), remote_id, v)))
            })
            .collect();
        let mut results = stream::iter(copies)
            .map(|(id, remote_id, vendor)| async move {
                let outcome = self.reconcile_copy(&id, vendor, policy, chosen).await;
                (id, remote_id, vendor, outcome)
            })
            .buffer_unordered(READS_IN_FLIGHT);
        let mut out = Vec::new();
        while let Some((id, remote_id, vendor, outcome)) = results.next().await {
            let copy = match outcome {
                Ok(copy) => copy,
                // Deleted or unlinked meanwhile: nothing to reconcile.
                Err(CatalogError::NotFound { .. } | CatalogError::NotLinked { .. }) => continue,
                Err(CatalogError::Storage(error)) => return Err(CatalogError::Storage(error)),
                Err(error) => {
                    tracing::warn!(product = %product_name(&id), %vendor, %error, "cannot reconcile the copy");
                    let failed = ReconciledCopy {
                        product: product_name(&id),
                        remote_id,
                        action: ReconcileAction::Failed as i32,
                        reason: error.to_string(),
                        ..Default::default()
                    };
                    counted(vendor, failed)
                }
            };
            out.push((vendor, copy));
        }
        Ok(out)
    }

    /// Up to SCAN_BATCH products after `after`, and the id to continue after
    /// (`None` at the end).
    pub(super) async fn reconcile_scan(
        &self,
        after: Option<&str>,
    ) -> Result<(Vec<Product>, Option<String>), CatalogError> {
        let batch = self.store.scan(after, SCAN_BATCH).await?;
        let next = match batch.last() {
            Some(last) if batch.len() == SCAN_BATCH => {
                Some(last.name.strip_prefix("products/").unwrap_or(&last.name).to_owned())
            }
            _ => None,
        };
        Ok((batch, next))
    }

    /// Starts (or, for a known `request_id`, finds) a reconcile of every
    /// copy at one vendor and returns its operation; the work runs in the
    /// background, resumable like an import.
    pub async fn reconcile_vendor_products(
        self: &Arc<Self>,
        request: ReconcileVendorProductsRequest,
    ) -> Result<Operation, CatalogError> {
        let mut violations = Vec::new();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        if let Err(why) = DriftPolicy::from_pb(request.policy) {
            violations.push(FieldViolation::new("policy", why));
        }
        if !request.request_id.is_empty() && uuid::Uuid::parse_str(&request.request_id).is_err() {
            violations.push(FieldViolation::new(
                "request_id",
                "must be a UUID such as 123e4567-e89b-42d3-a456-426614174000",
            ));
        }
        let (Some(vendor), true) = (vendor, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        if !self.sync.enabled.contains(&vendor) {
            return Err(CatalogError::VendorsNotConfigured { vendors: vec![vendor] });
        }
        let mut request = request;
        request.request_id = request.request_id.to_lowercase();
        let policy = DriftPolicy::from_pb(request.policy)
            .ok()
            .flatten()
            .unwrap_or(self.drift_policy);
        let id = match request.request_id.is_empty() {
            true => uuid::Uuid::now_v7().to_string(),
            false => request.request_id.clone(),
        };
        let started = now();
        let job = ImportJob {
            reconcile: Some(ReconcileJob {
                metadata: Some(ReconcileVendorProductsMetadata {
                    vendor: request.vendor,
                    policy: policy.to_pb() as i32,
                    create_time: Some(started),
                    update_time: Some(started),
                    ..Default::default()
                }),
                request: Some(request.clone()),
                after: String::new(),
            }),
            ..Default::default()
        };
        if !self.store.create_operation(&id, &job.encode_to_vec()).await? {
            let first = self.stored_job(&id).await?;
            if first.reconcile.as_ref().and_then(|r| r.request.as_ref()) != Some(&request) {
                return Err(CatalogError::invalid(
                    "request_id",
                    "was already used by a different request; use a new request_id",
                ));
            }
            return self.operation(&id).await;
        }
        tracing::info!(operation = %operation_id(&id), %vendor, ?policy, "reconcile started");
        tokio::spawn(self.clone().run_import(id.clone()));
        Ok(operation_view(&id, &job, Vec::new()))
    }

    /// Runs the stored reconcile `id` from where it stands to its end.
    pub(super) async fn drive_reconcile(&self, id: &str, mut job: ImportJob) -> Result<(), StoreError> {
        let mut state = job.reconcile.take().unwrap_or_default();
        let request = state.request.clone().unwrap_or_default();
        let metadata = state.metadata.get_or_insert_with(Default::default);
        let policy = DriftPolicy::from_pb(metadata.policy)
            .ok()
            .flatten()
            .unwrap_or(self.drift_policy);
        // A policy the request named is the caller's choice; else the server's.
        let chosen = DriftPolicy::from_pb(request.policy).ok().flatten().is_some();
        let Some(vendor) = Vendor::from_pb(request.vendor) else {
            let error = status(FAILED_PRECONDITION, "the stored request names no vendor");
            return self.finish_reconcile(id, job, state, Some(error)).await;
        };
        if !self.sync.enabled.contains(&vendor) {
            let why = format!(
                "{vendor} is no longer configured on this server ({})",
                vendor.enabling_flags()
            );
            return self
                .finish_reconcile(id, job, state, Some(status(FAILED_PRECONDITION, &why)))
                .await;
        }
        let _renewer = self.lease_renewer(id);
        loop {
            if !self.store.claim_operation(id).await? {
                return Ok(());
            }
            if self.store.operation(id).await?.is_some_and(|r| r.cancel_requested) {
                let checked = state.metadata.as_ref().map_or(0, |m| m.checked);
                let why = format!("cancelled by CancelOperation after {checked} copies");
                return self
                    .finish_reconcile(id, job, state, Some(status(CANCELLED, &why)))
                    .await;
            }
            let after = (!state.after.is_empty()).then(|| state.after.clone());
            let scanned = match self.reconcile_scan(after.as_deref()).await {
                Ok(scanned) => scanned,
                Err(CatalogError::Storage(error)) => return Err(error),
                Err(other) => return Err(StoreError::Backend(other.to_string())),
            };
            let (batch, next) = scanned;
            let copies = match self.reconcile_batch(&batch, Some(vendor), policy, chosen).await {
                Ok(copies) => copies,
                Err(CatalogError::Storage(error)) => return Err(error),
                Err(other) => return Err(StoreError::Backend(other.to_string())),
            };
            let metadata = state.metadata.get_or_insert_with(Default::default);
            for (_, copy) in copies {
                tally(metadata, copy);
            }
            metadata.update_time = Some(now());
            match next {
                Some(next) => state.after = next,
                None => return self.finish_reconcile(id, job, state, None).await,
            }
            job.reconcile = Some(state.clone());
            if !self.store.save_operation(id, false, &job.encode_to_vec()).await? {
                return Ok(());
            }
            job.reconcile = None;
        }
    }

    async fn finish_reconcile(
        &self,
        id: &str,
        mut job: ImportJob,
        state: ReconcileJob,
        error: Option<Status>,
    ) -> Result<(), StoreError> {
        job.reconcile = Some(state);
        let saved = self
            .save_finished(id, &mut job, error, |job, cancel_requested| {
                let metadata = job
                    .reconcile
                    .get_or_insert_with(Default::default)
                    .metadata
                    .get_or_insert_with(Default::default);
                metadata.end_time = Some(now());
                metadata.update_time = metadata.end_time;
                metadata.cancel_requested = cancel_requested;
            })
            .await?;
        if !saved {
            return Ok(());
        }
        let summary = job
            .reconcile
            .as_ref()
            .and_then(|r| r.metadata.clone())
            .unwrap_or_default();
        match &job.error {
            None => tracing::info!(
                operation = %operation_id(id),
                checked = summary.checked,
                in_sync = summary.in_sync,
                drifted = summary.drifted,
                failed = summary.failed,
                "reconcile finished"
            ),
            Some(error) => {
                tracing::warn!(operation = %operation_id(id), error = %error.message, "reconcile ended early")
            }
        }
        Ok(())
    }

    /// Reconciles every copy every `interval`, with the server's policy.
    pub async fn reconcile_every(self: Arc<Self>, interval: Duration) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is now; the first pass comes one interval after start.
        every.tick().await;
        loop {
            every.tick().await;
            let (mut drifted, mut checked) = (0u64, 0u64);
            let pass = async {
                let mut after: Option<String> = None;
                loop {
                    let (batch, next) = self.reconcile_scan(after.as_deref()).await?;
                    for (_, copy) in self.reconcile_batch(&batch, None, self.drift_policy, false).await? {
                        checked += 1;
                        if copy.copy_deleted || !copy.fields.is_empty() {
                            drifted += 1;
                        }
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => return Ok::<(), CatalogError>(()),
                    }
                }
            };
            match pass.await {
                Ok(()) => tracing::info!(checked, drifted, "reconcile pass done"),
                Err(error) => tracing::warn!(%error, "reconcile pass interrupted; the next one starts over"),
            }
        }
    }

    /// Reconciles the copies handed to [`Reconciles`], as they come, until
    /// the catalog is dropped. Runs once per catalog.
    pub async fn run_reconciles(self: Arc<Self>) {
        let taken = self
            .reconcile_queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(queue) = taken else {
            return;
        };
        let reconciles = self.reconciles.clone();
        let catalog = self.clone();
        tokio_stream::wrappers::UnboundedReceiverStream::new(queue)
            .for_each_concurrent(READS_IN_FLIGHT, move |key| {
                let catalog = catalog.clone();
                let reconciles = reconciles.clone();
                async move {
                    reconciles.begun(&key);
                    let (id, vendor) = key;
                    match catalog.reconcile_copy(&id, vendor, catalog.drift_policy, false).await {
                        Ok(_) | Err(CatalogError::NotFound { .. } | CatalogError::NotLinked { .. }) => {}
                        Err(error) => {
                            tracing::warn!(product = %product_name(&id), %vendor, %error, "cannot reconcile the copy")
                        }
                    }
                }
            })
            .await;
    }
}

/// The vendor's values for the fields that drifted, as an update of
/// `current` (validated, with a new etag) that reaches the other vendors it
/// touches; the vendor it came from holds them already.
fn adopt_values(
    current: &Product,
    copy: &Product,
    vendor: Vendor,
    drifted: &VendorDrift,
    enabled: &BTreeSet<Vendor>,
) -> Result<Product, CatalogError> {
    let paths: Vec<String> = drifted.fields.iter().map(|f| f.path.clone()).collect();
    let mut next = if paths.is_empty() {
        current.clone()
    } else {
        let mask = UpdateMask::parse(&paths).map_err(CatalogError::InvalidArgument)?;
        let patch = Product {
            name: current.name.clone(),
            ..copy.clone()
        };
        updated(current, &patch, &mask, &BTreeSet::from([vendor]), enabled)?.0
    };
    plan::set_fingerprint(&mut next, vendor.to_pb(), &drifted.vendor_fingerprint);
    plan::clear_drift(&mut next, vendor.to_pb());
    // The vendor holds this very version (of what it holds).
    plan::mark_holding(&mut next, vendor.to_pb(), std::time::SystemTime::now());
    Ok(next)
}

/// `current` without the profile of a vendor whose copy is gone there: it
/// holds nothing at that vendor any more, and nothing is sent to delete it.
fn adopt_deletion(current: &Product, vendor: Vendor) -> Result<Product, CatalogError> {
    let mut next = without_profile(current, vendor)?;
    let violations = validate(&next);
    if !violations.is_empty() {
        return Err(CatalogError::InvalidArgument(violations));
    }
    next.update_time = Some(now());
    next.etag = new_etag();
    plan::remove_entry(&mut next, vendor.to_pb());
    Ok(next)
}

/// Counts one copy's reconcile in the operation's metadata.
fn tally(metadata: &mut ReconcileVendorProductsMetadata, copy: ReconciledCopy) {
    metadata.checked += 1;
    let action = ReconcileAction::try_from(copy.action).unwrap_or_default();
    match action {
        ReconcileAction::InSync => metadata.in_sync += 1,
        ReconcileAction::Skipped => metadata.skipped += 1,
        ReconcileAction::Failed | ReconcileAction::Unspecified => metadata.failed += 1,
        ReconcileAction::Drifted | ReconcileAction::Pushed | ReconcileAction::Adopted => {
            metadata.drifted += 1;
            metadata.deleted += i64::from(copy.copy_deleted);
            metadata.pushed += i64::from(action == ReconcileAction::Pushed);
            metadata.adopted += i64::from(action == ReconcileAction::Adopted);
        }
    }
    let finding = !matches!(action, ReconcileAction::InSync | ReconcileAction::Skipped);
    if finding && metadata.findings.len() < MAX_FINDINGS_KEPT {
        metadata.findings.push(copy);
    }
}

/// Counts a reconcile in `producthub_reconcile_copies_total{vendor,action}`.
fn counted(vendor: Vendor, copy: ReconciledCopy) -> ReconciledCopy {
    let action = ReconcileAction::try_from(copy.action).unwrap_or_default();
    let action = action
        .as_str_name()
        .trim_start_matches("RECONCILE_ACTION_")
        .to_lowercase();
    metrics::counter!("producthub_reconcile_copies_total", "vendor" => label(vendor), "action" => action).increment(1);
    copy
}

fn label(vendor: Vendor) -> String {
    vendor.to_string().to_lowercase()
}
