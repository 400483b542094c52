//! ImportVendorProducts: a vendor's whole catalog adopted, as a long-running
//! operation (AIP-151).
//!
//! The operation is a stored [`ImportJob`]: the request, the progress, the
//! page to read next and the outcome per vendor product. It advances a page
//! at a time: read the page (the vendor's own paging, with its Retry-After
//! and backoff honoured by [`Listing`]), adopt each product on it (the
//! decisions in order, the writes many at once), then save the job; the
//! following pages are read meanwhile, so the vendor is never idle. A process that stops mid-page resumes at that page; the products
//! it had already adopted are found by their remote id and reported
//! UNCHANGED, so every vendor product is adopted once. A cancel request is
//! seen between pages.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use prost::Message;
use serde_json::Value;

use super::adopt::{adopted_product, held_copy, link_copy};
use super::operations::{ImportJob, PageOutcomes, decoded, operation_id, operation_view};
use super::{AbortOnDrop, Catalog, CatalogError, now, vendor_from_request};
use crate::domain::FieldViolation;
use crate::domain::names::{check_product_id, generate_product_id, product_name};
use crate::pb::google::longrunning::Operation;
use crate::pb::google::rpc::Status;
use crate::pb::{
    ImportAction, ImportVendorProductsMetadata, ImportVendorProductsRequest, ImportedVendorProduct, LinkDirection,
    Product,
};
use crate::storage::{InsertOutcome, ProductStore, StoreError};
use crate::vendors::{ListError, ListRetry, Listing, Vendor};

/// gRPC codes an import can end with.
pub(super) const CANCELLED: i32 = 1;
pub(super) const FAILED_PRECONDITION: i32 = 9;
const UNAVAILABLE: i32 = 14;
const DATA_LOSS: i32 = 15;

/// A running import renews its lease three times per lease, at most this often.
const MIN_LEASE_RENEWAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Catalog pages read ahead of the writes.
const PAGES_AHEAD: usize = 2;

/// Refusals the metadata lists with their reasons (all are counted).
const MAX_FAILURES_KEPT: usize = 1000;

/// Writes of one page in flight at once: enough to share each flush among
/// many, few enough to leave the store room for other callers.
const WRITES_IN_FLIGHT: usize = 32;

/// Products read at a time when the display-name index is built.
const SCAN_BATCH: usize = 1000;

impl<S: ProductStore> Catalog<S> {
    /// Starts (or, for a known `request_id`, finds) an import and returns
    /// its operation; the work runs in the background.
    pub async fn import_vendor_products(
        self: &Arc<Self>,
        request: ImportVendorProductsRequest,
    ) -> Result<Operation, CatalogError> {
        let mut violations = Vec::new();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        if !request.request_id.is_empty() && uuid::Uuid::parse_str(&request.request_id).is_err() {
            violations.push(FieldViolation::new(
                "request_id",
                "must be a UUID such as 123e4567-e89b-42d3-a456-426614174000",
            ));
        }
        let mut request = request;
        let mut product_ids = BTreeMap::new();
        for (remote_id, product) in &request.product_ids {
            let id = product.strip_prefix("products/").unwrap_or(product);
            if remote_id.is_empty() {
                violations.push(FieldViolation::new("product_ids", "a remote id (key) is empty"));
            }
            match check_product_id(id) {
                Ok(()) => {
                    product_ids.insert(remote_id.clone(), id.to_owned());
                }
                Err(why) => violations.push(FieldViolation::new(format!("product_ids[{remote_id}]"), why)),
            }
        }
        let (Some(vendor), true) = (vendor, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        request.product_ids = product_ids.into_iter().collect();
        if !self.sync.enabled.contains(&vendor) {
            return Err(CatalogError::VendorsNotConfigured { vendors: vec![vendor] });
        }
        // A UUID in any case is the same request id.
        request.request_id = request.request_id.to_lowercase();
        let id = if request.request_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            request.request_id.clone()
        };
        let job = ImportJob::new(request.clone(), now());
        if !self.store.create_operation(&id, &job.encode_to_vec()).await? {
            // A retry: the operation the first call started, if it was this request.
            let first = self.stored_job(&id).await?;
            if first.request.as_ref() != Some(&request) {
                return Err(CatalogError::invalid(
                    "request_id",
                    "was already used by a different ImportVendorProducts request; use a new request_id",
                ));
            }
            return self.operation(&id).await;
        }
        tracing::info!(operation = %operation_id(&id), vendor = %vendor, validate_only = request.validate_only, "import started");
        tokio::spawn(self.clone().run_import(id.clone()));
        Ok(operation_view(&id, &job, Vec::new()))
    }

    /// Finds unfinished imports no process is running (this one's after a
    /// restart; on a shared store, another replica's whose lease ran out)
    /// and runs them, every `every` until the catalog is dropped.
    pub async fn resume_imports(self: Arc<Self>, every: std::time::Duration) {
        loop {
            if let Err(error) = self.resume_unfinished().await {
                tracing::warn!(%error, "cannot look for unfinished imports; trying again later");
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn resume_unfinished(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut after: Option<String> = None;
        loop {
            let batch = self.store.operations(after.as_deref(), 100, Some(false)).await?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = Some(last.id.clone());
            for record in batch {
                if self.is_running(&record.id) || !self.store.claim_operation(&record.id).await? {
                    continue;
                }
                tracing::info!(operation = %operation_id(&record.id), "resuming an unfinished operation");
                tokio::spawn(self.clone().run_import(record.id));
            }
        }
    }

    fn is_running(&self, id: &str) -> bool {
        self.running_imports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(id)
    }

    /// Runs the import `id` to its end (once per process at a time).
    pub(super) async fn run_import(self: Arc<Self>, id: String) {
        let started = self
            .running_imports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone());
        if !started {
            return;
        }
        if let Err(error) = self.drive_import(&id).await {
            // Left unfinished: the next sweep (or replica) resumes it.
            tracing::warn!(operation = %operation_id(&id), %error, "operation interrupted by a storage failure; it will resume");
        }
        self.running_imports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
    }

    async fn drive_import(&self, id: &str) -> Result<(), StoreError> {
        let mut job = match self.stored_job(id).await {
            Ok(job) => job,
            Err(CatalogError::Storage(error)) => return Err(error),
            // Not ours to run (gone, or unreadable: reported by GetOperation).
            Err(_) => return Ok(()),
        };
        if job.done {
            return Ok(());
        }
        if job.reconcile.is_some() {
            return self.drive_reconcile(id, job).await;
        }
        let request = job.request.clone().unwrap_or_default();
        let Some(vendor) = Vendor::from_pb(request.vendor) else {
            return self
                .finish(id, job, Some(status(DATA_LOSS, "the stored request names no vendor")))
                .await;
        };
        if !self.sync.enabled.contains(&vendor) {
            let why = format!(
                "{vendor} is no longer configured on this server ({})",
                vendor.enabling_flags()
            );
            return self.finish(id, job, Some(status(FAILED_PRECONDITION, &why))).await;
        }
        // The lease is renewed while the import runs, whatever it waits for
        // (building the display-name index, a vendor's Retry-After).
        let _renewer = self.lease_renewer(id);
        let mut matcher = Matcher::new(&*self.store, vendor, &request).await?;
        // Pages are read one after the other by a task of their own, ahead
        // of the writes (at most PAGES_AHEAD waiting), so the vendor is never
        // idle while pages are written; it stops when the import ends.
        let (pages, mut incoming) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let first = job.next_page;
        let connections = self.connections.clone();
        let settings = self.vendors.clone();
        let _reader = AbortOnDrop(tokio::spawn(async move {
            let listing = Listing::new(&connections, vendor, &settings, ListRetry::default());
            let mut index = first;
            loop {
                let page = listing.page(index).await;
                let more = page.as_ref().is_ok_and(|page| !page.last);
                if pages.send(page).await.is_err() || !more {
                    return;
                }
                index += 1;
            }
        }));
        let writer = async {
            let mut previous: Option<Vec<Value>> = None;
            loop {
                if !self.store.claim_operation(id).await? {
                    // Another replica took it over.
                    return Ok(());
                }
                if self.store.operation(id).await?.is_some_and(|r| r.cancel_requested) {
                    let done = job.metadata().seen;
                    let why = format!("cancelled by CancelOperation after {done} vendor products");
                    return self.finish(id, job, Some(status(CANCELLED, &why))).await;
                }
                let Some(fetched) = incoming.recv().await else {
                    // The reader stops only after the last page or an error,
                    // both of which end this loop first: it failed.
                    tracing::warn!(operation = %operation_id(id), "the catalog reader stopped; the import will resume");
                    return Ok(());
                };
                let page = match fetched {
                    Ok(page) => page,
                    Err(error) => {
                        let code = match &error {
                            ListError::Vendor { error, .. } if error.is_retryable() => UNAVAILABLE,
                            _ => FAILED_PRECONDITION,
                        };
                        return self.finish(id, job, Some(status(code, &error.to_string()))).await;
                    }
                };
                if !page.products.is_empty() && previous.as_ref() == Some(&page.products) {
                    let error = ListError::Repeats {
                        vendor,
                        page: page.index,
                    };
                    return self
                        .finish(id, job, Some(status(FAILED_PRECONDITION, &error.to_string())))
                        .await;
                }
                let outcomes = self.adopt_page(vendor, &page.products, &request, &mut matcher).await?;
                for outcome in &outcomes {
                    job.record(outcome);
                    count(vendor, outcome);
                }
                let part = PageOutcomes { products: outcomes };
                if !self
                    .store
                    .put_operation_part(id, page.index, &part.encode_to_vec())
                    .await?
                {
                    // Another process holds it now (or it was deleted).
                    return Ok(());
                }
                job.next_page = page.index + 1;
                let pages_read = i32::try_from(job.next_page).unwrap_or(i32::MAX);
                let metadata = job.metadata_mut();
                metadata.pages_read = pages_read;
                if let Some(total) = page.total {
                    metadata.total = i64::try_from(total).unwrap_or(i64::MAX);
                }
                metadata.update_time = Some(now());
                if page.last {
                    return self.finish(id, job, None).await;
                }
                if !self.store.save_operation(id, false, &job.encode_to_vec()).await? {
                    return Ok(());
                }
                previous = Some(page.products);
            }
        };
        writer.await
    }

    /// Saves the operation `id` as done, with `error` (or, without one, its
    /// response); `stamp` records the end in its metadata, told whether a
    /// cancel was asked for. Whether this process saved it (`false`: another
    /// holds it now, and its run reports the outcome).
    pub(super) async fn save_finished(
        &self,
        id: &str,
        job: &mut ImportJob,
        error: Option<Status>,
        stamp: impl FnOnce(&mut ImportJob, bool),
    ) -> Result<bool, StoreError> {
        let cancel_requested = self.store.operation(id).await?.is_some_and(|r| r.cancel_requested);
        stamp(job, cancel_requested);
        job.done = true;
        job.error = error;
        self.store.save_operation(id, true, &job.encode_to_vec()).await
    }

    /// Renews the operation's lease (on a store that has leases) until
    /// dropped.
    pub(super) fn lease_renewer(&self, id: &str) -> Option<AbortOnDrop> {
        self.store.operation_lease().map(|lease| {
            let store = self.store.clone();
            let lease_id = id.to_owned();
            let every = (lease / 3).max(MIN_LEASE_RENEWAL);
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.claim_operation(&lease_id).await {
                        Ok(true) => {}
                        // Taken over (or finished): the writer finds out at its next write.
                        Ok(false) => return,
                        Err(error) => {
                            tracing::warn!(operation = %operation_id(&lease_id), %error, "cannot renew the operation's lease")
                        }
                    }
                }
            }))
        })
    }

    /// Ends the import with `error`, or with its response.
    async fn finish(&self, id: &str, mut job: ImportJob, error: Option<Status>) -> Result<(), StoreError> {
        let saved = self
            .save_finished(id, &mut job, error, |job, cancel_requested| {
                let metadata = job.metadata_mut();
                metadata.end_time = Some(now());
                metadata.update_time = metadata.end_time;
                metadata.cancel_requested = cancel_requested;
            })
            .await?;
        if !saved {
            // Another process holds it now: its run reports the outcome.
            return Ok(());
        }
        let summary = job.metadata();
        match &job.error {
            None => tracing::info!(
                operation = %operation_id(id),
                seen = summary.seen,
                created = summary.created,
                linked = summary.linked,
                unchanged = summary.unchanged,
                skipped = summary.skipped,
                failed = summary.failed,
                "import finished"
            ),
            Some(error) => {
                tracing::warn!(operation = %operation_id(id), error = %error.message, "import ended early")
            }
        }
        self.wake_sync();
        Ok(())
    }

    /// What happens to each vendor product of a page, in the page's order:
    /// the match rules decided one product after the other (a decision may
    /// rest on the one before it), then the writes, many at once, so that
    /// they share the store's flushes.
    async fn adopt_page(
        &self,
        vendor: Vendor,
        objects: &[Value],
        request: &ImportVendorProductsRequest,
        matcher: &mut Matcher,
    ) -> Result<Vec<ImportedVendorProduct>, StoreError> {
        let adapter = vendor.adapter();
        let copies: Vec<Result<Product, String>> = objects
            .iter()
            .map(|object| adapter.import(object).map_err(|e| e.to_string()))
            .collect();
        // Who holds each copy already: one lookup for the whole page.
        let remote_ids: Vec<String> = copies
            .iter()
            .map(|copy| {
                copy.as_ref()
                    .ok()
                    .and_then(|c| adapter.remote_id(c))
                    .unwrap_or_default()
            })
            .collect();
        let holders = self.store.linked_all(vendor.to_pb(), &remote_ids).await?;
        let mut decisions = Vec::with_capacity(objects.len());
        for (copy, holder) in copies.into_iter().zip(holders) {
            decisions.push(decide(vendor, copy, holder, request, matcher));
        }
        let applied: Vec<Result<ImportedVendorProduct, StoreError>> = stream::iter(decisions)
            .map(|decision| self.apply(vendor, decision, request.validate_only))
            .buffered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        applied.into_iter().collect()
    }

    /// Carries out a decision (writes nothing when only planning).
    async fn apply(
        &self,
        vendor: Vendor,
        decision: Decision,
        validate_only: bool,
    ) -> Result<ImportedVendorProduct, StoreError> {
        match decision {
            Decision::Done(outcome) => Ok(outcome),
            Decision::Link { outcome, copy, id, why } => {
                self.link_in_import(outcome, vendor, copy, &id, why, validate_only)
                    .await
            }
            Decision::Create { outcome, copy } => self.create_in_import(outcome, vendor, copy, validate_only).await,
        }
    }

    async fn link_in_import(
        &self,
        mut outcome: ImportedVendorProduct,
        vendor: Vendor,
        copy: Product,
        id: &str,
        why: String,
        validate_only: bool,
    ) -> Result<ImportedVendorProduct, StoreError> {
        let remote_id = outcome.remote_id.clone();
        let enabled = &self.sync.enabled;
        let link = |current: Option<Product>| -> Result<Product, CatalogError> {
            let current = current.ok_or_else(|| CatalogError::NotFound { name: product_name(id) })?;
            link_copy(current, vendor, &copy, &remote_id, LinkDirection::VendorWins, enabled)
        };
        let result = if validate_only {
            link(self.store.get(id).await?)
        } else {
            match self.store.update(id, self.announces(), link).await {
                Ok(result) => result,
                Err(StoreError::LinkTaken { holder, .. }) => {
                    return Ok(unchanged(outcome, &holder, "a product already holds this copy"));
                }
                Err(error) => return Err(error),
            }
        };
        match result {
            Ok(_) => {
                outcome.action = ImportAction::Linked as i32;
                outcome.product = product_name(id);
                outcome.reason = why;
            }
            Err(error) => {
                outcome.action = ImportAction::Failed as i32;
                outcome.reason = format!("cannot link to {}: {error}", product_name(id));
            }
        }
        Ok(outcome)
    }

    async fn create_in_import(
        &self,
        mut outcome: ImportedVendorProduct,
        vendor: Vendor,
        copy: Product,
        validate_only: bool,
    ) -> Result<ImportedVendorProduct, StoreError> {
        let id = generate_product_id();
        let product = match adopted_product(copy, &id, vendor, &self.sync.enabled) {
            Ok(product) => product,
            Err(violations) => {
                outcome.action = ImportAction::Failed as i32;
                outcome.reason = format!("not a valid product: {}", crate::domain::join_violations(&violations));
                return Ok(outcome);
            }
        };
        outcome.action = ImportAction::Created as i32;
        if validate_only {
            outcome.reason = "no product matches: a new one would be created".into();
            return Ok(outcome);
        }
        match self.store.insert(&id, &product, None, self.announces()).await {
            Ok(InsertOutcome::Inserted) => {
                outcome.product = product.name;
                outcome.reason = "no product matches".into();
                Ok(outcome)
            }
            Ok(_) => {
                outcome.action = ImportAction::Failed as i32;
                outcome.reason = format!("the generated id {id} is taken; import again");
                Ok(outcome)
            }
            Err(StoreError::LinkTaken { holder, .. }) => {
                Ok(unchanged(outcome, &holder, "a product already holds this copy"))
            }
            Err(error) => Err(error),
        }
    }

    pub(super) async fn stored_job(&self, id: &str) -> Result<ImportJob, CatalogError> {
        let record = self
            .store
            .operation(id)
            .await?
            .ok_or_else(|| CatalogError::OperationNotFound { name: operation_id(id) })?;
        decoded(&record.data, || operation_id(id))
    }
}

/// What the match rules decided for one vendor product.
enum Decision {
    /// Nothing to write: the outcome is known.
    Done(ImportedVendorProduct),
    /// Link the copy to the product `id` (matched because `why`).
    Link {
        outcome: ImportedVendorProduct,
        copy: Product,
        id: String,
        why: String,
    },
    /// A new canonical product from the copy.
    Create {
        outcome: ImportedVendorProduct,
        copy: Product,
    },
}

/// What the match rules look up during one run: the products a display name
/// names (those holding no copy of the vendor), the products linked in this
/// run, and the copies already looked at.
struct Matcher {
    by_name: BTreeMap<String, Vec<String>>,
    claimed: BTreeSet<String>,
    seen: HashSet<String>,
}

impl Matcher {
    async fn new<S: ProductStore>(
        store: &S,
        vendor: Vendor,
        request: &ImportVendorProductsRequest,
    ) -> Result<Self, StoreError> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if request.match_display_names {
            let mut after: Option<String> = None;
            loop {
                let batch = store.scan(after.as_deref(), SCAN_BATCH).await?;
                let exhausted = batch.len() < SCAN_BATCH;
                for product in batch {
                    let id = product.name.strip_prefix("products/").unwrap_or_default().to_owned();
                    if held_copy(&product, vendor).is_none() && !product.display_name.is_empty() {
                        by_name
                            .entry(product.display_name.clone())
                            .or_default()
                            .push(id.clone());
                    }
                    after = Some(id);
                }
                if exhausted {
                    break;
                }
            }
        }
        Ok(Self {
            by_name,
            claimed: BTreeSet::new(),
            seen: HashSet::new(),
        })
    }

    /// The products named `name` not yet linked in this run.
    fn named(&mut self, name: &str) -> &[String] {
        let Some(ids) = self.by_name.get_mut(name) else {
            return &[];
        };
        let claimed = &self.claimed;
        ids.retain(|id| !claimed.contains(id));
        ids
    }

    /// False when this copy was looked at before in this run.
    fn first_sighting(&mut self, remote_id: &str) -> bool {
        self.seen.insert(remote_id.to_owned())
    }
}

/// The match rules for one vendor product (imported, or why it could not
/// be), in order (see `ImportVendorProductsRequest`); `holder` is the product
/// already holding its copy, if any.
fn decide(
    vendor: Vendor,
    copy: Result<Product, String>,
    holder: Option<String>,
    request: &ImportVendorProductsRequest,
    matcher: &mut Matcher,
) -> Decision {
    let copy = match copy {
        Ok(copy) => copy,
        Err(error) => return Decision::Done(outcome_failed(String::new(), "", error)),
    };
    let Some(remote_id) = vendor.adapter().remote_id(&copy) else {
        return Decision::Done(outcome_failed(
            String::new(),
            &copy.display_name,
            format!("the {vendor} product has no id"),
        ));
    };
    let mut outcome = ImportedVendorProduct {
        remote_id: remote_id.clone(),
        display_name: copy.display_name.clone(),
        ..Default::default()
    };
    if let Some(holder) = holder {
        return Decision::Done(unchanged(outcome, &holder, "a product already holds this copy"));
    }
    if !matcher.first_sighting(&remote_id) {
        outcome.action = ImportAction::Unchanged as i32;
        outcome.reason = "the vendor listed this copy twice; it was looked at once".into();
        return Decision::Done(outcome);
    }
    let target = match request.product_ids.get(&remote_id) {
        Some(id) => Some((id.clone(), "named in product_ids".to_owned())),
        None if request.match_display_names => match matcher.named(&copy.display_name) {
            [] => None,
            [one] => Some((one.clone(), format!("the one product named {:?}", copy.display_name))),
            many => {
                outcome.action = ImportAction::Failed as i32;
                outcome.reason = format!(
                    "{} products are named {:?}; name one in product_ids",
                    many.len(),
                    copy.display_name
                );
                outcome.candidates = many.iter().map(|id| product_name(id)).collect();
                return Decision::Done(outcome);
            }
        },
        None => None,
    };
    match target {
        Some((id, _)) if !matcher.claimed.insert(id.clone()) => {
            outcome.action = ImportAction::Failed as i32;
            outcome.reason = format!(
                "{} is linked to another {vendor} copy in this import",
                product_name(&id)
            );
            Decision::Done(outcome)
        }
        Some((id, why)) => Decision::Link { outcome, copy, id, why },
        None if request.link_only => {
            outcome.action = ImportAction::Skipped as i32;
            outcome.reason = "no product matches and link_only is set".into();
            Decision::Done(outcome)
        }
        None => Decision::Create { outcome, copy },
    }
}

/// Counts the outcome in `producthub_import_products_total{vendor,action}`.
fn count(vendor: Vendor, outcome: &ImportedVendorProduct) {
    let action = match ImportAction::try_from(outcome.action) {
        Ok(ImportAction::Created) => "created",
        Ok(ImportAction::Linked) => "linked",
        Ok(ImportAction::Unchanged) => "unchanged",
        Ok(ImportAction::Skipped) => "skipped",
        _ => "failed",
    };
    metrics::counter!(
        "producthub_import_products_total",
        "vendor" => vendor.to_string().to_lowercase(),
        "action" => action
    )
    .increment(1);
}

fn unchanged(mut outcome: ImportedVendorProduct, holder: &str, why: &str) -> ImportedVendorProduct {
    outcome.action = ImportAction::Unchanged as i32;
    outcome.product = product_name(holder);
    outcome.reason = why.into();
    outcome
}

fn outcome_failed(remote_id: String, display_name: &str, reason: String) -> ImportedVendorProduct {
    ImportedVendorProduct {
        remote_id,
        display_name: display_name.to_owned(),
        action: ImportAction::Failed as i32,
        reason,
        ..Default::default()
    }
}

pub(super) fn status(code: i32, message: &str) -> Status {
    Status {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

impl ImportJob {
    fn metadata(&self) -> ImportVendorProductsMetadata {
        self.metadata.clone().unwrap_or_default()
    }

    fn metadata_mut(&mut self) -> &mut ImportVendorProductsMetadata {
        self.metadata.get_or_insert_with(Default::default)
    }

    /// Counts one vendor product's outcome (and keeps a refusal's reason).
    fn record(&mut self, outcome: &ImportedVendorProduct) {
        let metadata = self.metadata_mut();
        metadata.seen += 1;
        match ImportAction::try_from(outcome.action) {
            Ok(ImportAction::Created) => metadata.created += 1,
            Ok(ImportAction::Linked) => metadata.linked += 1,
            Ok(ImportAction::Unchanged) => metadata.unchanged += 1,
            Ok(ImportAction::Skipped) => metadata.skipped += 1,
            _ => {
                metadata.failed += 1;
                if metadata.failures.len() < MAX_FAILURES_KEPT {
                    metadata.failures.push(outcome.clone());
                }
            }
        }
    }
}
