//! The product use cases: create, get, list, update, delete, watch, sync,
//! render a vendor call, import one vendor product; adopt existing vendor
//! copies (`adopt`: link, unlink), import a vendor's catalog (`import`, a
//! long-running operation), serve the operations (`operations`), and notice
//! and settle changes made at the vendors (`reconcile`).
//!
//! The catalog joins the domain rules to a [`ProductStore`]. It validates whole
//! requests before touching storage, runs every read-modify-write as one atomic
//! store operation, and reports failures as [`CatalogError`], which the transport
//! maps to gRPC status codes in one place.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Notify;

use bytes::Bytes;
use prost::Message;

use crate::domain::field_mask::{self, UpdateMask};
use crate::domain::filter::Filter;
use crate::domain::names::{check_product_id, generate_product_id, parse_product_name, product_name};
use crate::domain::sync_plan::{self, DriftPolicy, EVERYTHING};
use crate::domain::{FieldViolation, page_token, schema, wire};
use crate::pb::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ImportVendorProductRequest, ListProductsRequest,
    ListProductsResponse, Product, RenderVendorCallRequest, SyncProductRequest, UpdateProductRequest, VendorCall,
    VendorOperation,
};
use crate::storage::{InsertOutcome, ProductStore, RequestRecord, StoreError, StoredProduct, decode_stored};
use crate::vendors::{self, AdapterError, Connections, Vendor, VendorError, VendorSettings, validate};

mod adopt;
mod import;
mod operations;
mod reconcile;
mod watch;

pub use reconcile::Reconciles;

pub use watch::ChangeStream;

/// Aborts the task when dropped, so a helper task (an import's page reader
/// and lease renewer, a server's upkeep) ends with what it serves.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Page size used when a ListProducts request asks for none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page; larger requests are served this many (AIP-158).
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most products one ListProducts call examines when a filter skips most of
/// them; past that it returns what it found with a token to go on, so a call's
/// cost stays bounded whatever the catalog's size.
pub const MAX_SCAN_PER_CALL: usize = 10_000;
/// A page stops growing past this many encoded bytes (with a token to go on),
/// so it stays under the 4 MiB that gRPC clients accept by default.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// Why a catalog operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid request: {}", crate::domain::join_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{name} does not exist")]
    NotFound { name: String },
    #[error("{name} already exists")]
    AlreadyExists { name: String },
    #[error("{name} has changed: its etag is no longer {sent:?}; read it again and retry")]
    EtagMismatch { name: String, sent: String },
    #[error(transparent)]
    Vendor(#[from] AdapterError),
    /// A vendor call failed (reading a copy to link).
    #[error(transparent)]
    VendorCall(VendorError),
    #[error(transparent)]
    Storage(StoreError),
    #[error("the {vendor} copy {remote_id:?} is linked to {holder}; unlink it there first")]
    CopyLinked {
        vendor: Vendor,
        remote_id: String,
        holder: String,
    },
    #[error("{name} already holds the {vendor} copy {remote_id:?}; unlink it first")]
    AlreadyLinked {
        name: String,
        vendor: Vendor,
        remote_id: String,
    },
    #[error("{name} holds no {vendor} copy")]
    NotLinked { name: String, vendor: Vendor },
    #[error("{name} has no {} profile to send over the {vendor} copy; link with LINK_DIRECTION_VENDOR_WINS", .vendor.profile_field())]
    ProfileMissing { name: String, vendor: Vendor },
    #[error("{vendor} has no product {remote_id:?}")]
    VendorCopyNotFound { vendor: Vendor, remote_id: String },
    #[error("{name} does not exist")]
    OperationNotFound { name: String },
    #[error("{name} is still running; cancel it, and delete it once it is done")]
    OperationRunning { name: String },
    #[error("the resume token points before the oldest change still retained; list the products again, then watch")]
    ResumeTokenExpired,
    #[error("the server is shutting down; reconnect and resume with the last resume_token")]
    ShuttingDown,
    #[error("this server keeps no change log (--watch-retention 0), so it cannot stream changes")]
    ChangeFeedDisabled,
    #[error("not configured on this server: {}", enabling(.vendors))]
    VendorsNotConfigured { vendors: Vec<Vendor> },
    #[error("cannot adopt the {vendor} copy's values into {name}: {}", crate::domain::join_violations(.violations))]
    AdoptRefused {
        name: String,
        vendor: Vendor,
        violations: Vec<FieldViolation>,
    },
    #[error("{limit} WatchProducts streams are open, the most this server allows (--max-watch-streams); retry later")]
    TooManyWatchers { limit: usize },
    #[error(
        "{limit} ListProducts calls are running, the most this server runs at once (--max-concurrent-lists); retry shortly"
    )]
    TooManyLists { limit: usize },
}

/// "EnOS (enabled by --enos-…); Cryptlex (enabled by …)", for messages.
fn enabling(vendors: &[Vendor]) -> String {
    let each: Vec<String> = vendors
        .iter()
        .map(|v| format!("{v} (enabled by {})", v.enabling_flags()))
        .collect();
    each.join("; ")
}

impl CatalogError {
    fn invalid(field: &str, description: impl Into<String>) -> Self {
        CatalogError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<StoreError> for CatalogError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LinkTaken {
                vendor,
                remote_id,
                holder,
            } => match Vendor::from_pb(vendor as i32) {
                Some(vendor) => CatalogError::CopyLinked {
                    vendor,
                    remote_id,
                    holder: product_name(&holder),
                },
                None => CatalogError::Storage(StoreError::LinkTaken {
                    vendor,
                    remote_id,
                    holder,
                }),
            },
            other => CatalogError::Storage(other),
        }
    }
}

impl From<FieldViolation> for CatalogError {
    fn from(v: FieldViolation) -> Self {
        CatalogError::InvalidArgument(vec![v])
    }
}

/// The product catalog over a store.
pub struct Catalog<S> {
    store: Arc<S>,
    vendors: VendorSettings,
    /// The configured vendors, for reading their copies and catalogs.
    connections: Arc<Connections>,
    sync: SyncHooks,
    /// Imports this process is running now.
    running_imports: std::sync::Mutex<BTreeSet<String>>,
    /// The longest WaitOperation.
    max_wait: std::time::Duration,
    /// Set once at shutdown; every watch stream ends when it is.
    closing: tokio::sync::watch::Sender<bool>,
    /// One permit per open WatchProducts stream, held for the stream's life.
    watchers: Arc<tokio::sync::Semaphore>,
    max_watchers: usize,
    /// One permit per ListProducts call running: a flood of lists (each may
    /// examine thousands of products) cannot take every core from cheap calls.
    lists: tokio::sync::Semaphore,
    max_lists: usize,
    /// What a reconcile does with drift unless a call says otherwise.
    drift_policy: DriftPolicy,
    /// Copies to reconcile soon, and (until `run_reconciles` takes it) the
    /// other end of that queue.
    reconciles: Reconciles,
    reconcile_queue: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, Vendor)>>>,
}

/// ListProducts calls run at once unless configured otherwise: two per core,
/// enough to keep the cores busy, few enough that cheap calls find one free.
pub fn default_max_lists() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2)
}

/// The longest WaitOperation unless configured otherwise.
pub const DEFAULT_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// WatchProducts streams allowed open at once unless configured otherwise.
pub const DEFAULT_MAX_WATCH_STREAMS: usize = 1024;

/// What the catalog tells the sync engine.
#[derive(Debug, Clone, Default)]
pub struct SyncHooks {
    /// Vendors configured for delivery; changes for others are marked DISABLED.
    pub enabled: BTreeSet<Vendor>,
    /// Woken after every write that may need delivery.
    pub wake: Arc<Notify>,
}

impl<S: ProductStore> Catalog<S> {
    pub fn new(store: Arc<S>, vendors: VendorSettings, connections: Arc<Connections>, sync: SyncHooks) -> Self {
        let (reconciles, queue) = Reconciles::new();
        Self {
            drift_policy: DriftPolicy::Report,
            reconciles,
            reconcile_queue: std::sync::Mutex::new(Some(queue)),
            store,
            vendors,
            connections,
            sync,
            running_imports: std::sync::Mutex::new(BTreeSet::new()),
            max_wait: DEFAULT_MAX_WAIT,
            closing: tokio::sync::watch::Sender::new(false),
            watchers: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_WATCH_STREAMS)),
            max_watchers: DEFAULT_MAX_WATCH_STREAMS,
            lists: tokio::sync::Semaphore::new(default_max_lists()),
            max_lists: default_max_lists(),
        }
    }

    /// At most `limit` WatchProducts streams open at once; more are refused
    /// (RESOURCE_EXHAUSTED) until one closes. Streams are long-lived, so they
    /// are not counted in the in-flight limit but in this one.
    pub fn with_max_watch_streams(mut self, limit: usize) -> Self {
        let limit = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self.watchers = Arc::new(tokio::sync::Semaphore::new(limit));
        self.max_watchers = limit;
        self
    }

    /// At most `limit` ListProducts calls run at once; more are refused at
    /// once (RESOURCE_EXHAUSTED, with a retry delay) rather than queued.
    pub fn with_max_concurrent_lists(mut self, limit: usize) -> Self {
        let limit = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self.lists = tokio::sync::Semaphore::new(limit);
        self.max_lists = limit;
        self
    }

    /// Drift found by a reconcile is settled by `policy` unless the call
    /// names another.
    pub fn with_drift_policy(mut self, policy: DriftPolicy) -> Self {
        self.drift_policy = policy;
        self
    }

    /// WaitOperation waits at most `longest` (keep it under the call timeout).
    pub fn with_max_wait(mut self, longest: std::time::Duration) -> Self {
        self.max_wait = longest;
        self
    }

    /// Whether writes go through the sync outbox. With no vendor configured a
    /// change can only be marked DISABLED, so there is nothing to deliver and
    /// the outbox hints (two extra writes per change) are skipped.
    fn announces(&self) -> bool {
        !self.sync.enabled.is_empty()
    }

    /// The vendors a call acts on: those `asked`, or (when none are) every
    /// one in `holding` this server is configured for. Nothing can be done at
    /// a vendor this server does not reach: that is said (for one asked for,
    /// or when no vendor is left), rather than answered OK.
    fn target_vendors(
        &self,
        holding: &BTreeSet<Vendor>,
        asked: &BTreeSet<Vendor>,
    ) -> Result<BTreeSet<Vendor>, CatalogError> {
        let targets: BTreeSet<Vendor> = if asked.is_empty() {
            holding.intersection(&self.sync.enabled).copied().collect()
        } else {
            asked.clone()
        };
        let unreachable: Vec<Vendor> = match (asked.is_empty(), targets.is_empty()) {
            (true, true) => holding.iter().copied().collect(),
            _ => targets.difference(&self.sync.enabled).copied().collect(),
        };
        match unreachable.is_empty() {
            true => Ok(targets),
            false => Err(CatalogError::VendorsNotConfigured { vendors: unreachable }),
        }
    }

    /// Tells the sync worker a change may be waiting (when any can be).
    fn wake_sync(&self) {
        if self.announces() {
            self.sync.wake.notify_one();
        }
    }

    pub async fn create(&self, request: CreateProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let id = requested_or_new_id(&request.product_id, &mut violations);
        let mut request = request;
        if !request.request_id.is_empty() {
            match uuid::Uuid::parse_str(&request.request_id) {
                // One UUID, however it is spelt (AIP-155: upper case, braces,
                // no hyphens), is one request id.
                Ok(uuid) => request.request_id = uuid.hyphenated().to_string(),
                Err(_) => violations.push(FieldViolation::new(
                    "request_id",
                    "must be a UUID such as 123e4567-e89b-42d3-a456-426614174000",
                )),
            }
        }
        let Some(submitted) = request.product.clone() else {
            violations.push(FieldViolation::new("product", "is required"));
            return Err(CatalogError::InvalidArgument(violations));
        };
        let product = match new_product(submitted, &id, &self.sync.enabled) {
            Ok(product) if violations.is_empty() => product,
            Ok(_) => return Err(CatalogError::InvalidArgument(violations)),
            Err(mut more) => {
                violations.append(&mut more);
                return Err(CatalogError::InvalidArgument(violations));
            }
        };
        if request.validate_only {
            if self.store.get(&id).await?.is_some() {
                return Err(CatalogError::AlreadyExists { name: product.name });
            }
            return Ok(product);
        }
        let record = (!request.request_id.is_empty()).then(|| RequestRecord {
            request_id: request.request_id.clone(),
            fingerprint: fingerprint(&request),
            product: product.clone(),
        });
        let outcome = self
            .store
            .insert(&id, &product, record.as_ref(), self.announces())
            .await?;
        self.wake_sync();
        match outcome {
            InsertOutcome::Inserted => Ok(product),
            InsertOutcome::IdTaken => Err(CatalogError::AlreadyExists { name: product.name }),
            InsertOutcome::Replayed(first) if Some(&first.fingerprint) == record.as_ref().map(|r| &r.fingerprint) => {
                Ok(first.product)
            }
            InsertOutcome::Replayed(_) => Err(CatalogError::invalid(
                "request_id",
                "was already used by a different CreateProduct request; use a new request_id",
            )),
        }
    }

    pub async fn get(&self, request: GetProductRequest) -> Result<Product, CatalogError> {
        let id = parse_product_name(&request.name, "name")?.to_owned();
        let stored = self.get_stored(request).await?;
        Ok(decode_stored(&id, &stored)?)
    }

    /// GetProduct as the product is stored: its `producthub.v1.Product`
    /// encoding, which is GetProduct's answer on the wire. The bytes are
    /// checked to decode (without decoding them), so a damaged record is
    /// DATA_LOSS here rather than an answer the client cannot read.
    pub async fn get_stored(&self, request: GetProductRequest) -> Result<Bytes, CatalogError> {
        let id = parse_product_name(&request.name, "name")?;
        let Some(stored) = self.store.get_stored(id).await? else {
            return Err(CatalogError::NotFound { name: request.name });
        };
        if wire::check_decodes(&schema::product_descriptor(), &stored).is_err() {
            // Decoded only to say what is wrong with it.
            decode_stored(id, &stored)?;
        }
        Ok(stored)
    }

    pub async fn list(&self, request: ListProductsRequest) -> Result<ListProductsResponse, CatalogError> {
        let mut violations = Vec::new();
        let page_size = page_size(request.page_size, &mut violations);
        let filter = Filter::parse(&request.filter).unwrap_or_else(|why| {
            violations.push(FieldViolation::new("filter", why));
            Filter::default()
        });
        let mut after = page_cursor(&request.page_token, &request.filter, &mut violations);
        if !violations.is_empty() {
            return Err(CatalogError::InvalidArgument(violations));
        }
        let _running = self
            .lists
            .try_acquire()
            .map_err(|_| CatalogError::TooManyLists { limit: self.max_lists })?;

        // One extra product tells whether another page follows. Products go
        // out as stored: decoded only when a filter has to look at them.
        let chunk = page_size + 1;
        let mut products: Vec<StoredProduct> = Vec::with_capacity(page_size);
        let mut page_bytes = 0;
        let mut scanned = 0;
        loop {
            let batch = self.store.scan_stored(after.as_deref(), chunk).await?;
            let exhausted = batch.len() < chunk;
            for stored in batch {
                scanned += 1;
                if filter.is_empty() || filter.matches(&stored.decode()?) {
                    let size = stored.bytes.len();
                    let full =
                        products.len() == page_size || (!products.is_empty() && page_bytes + size > MAX_PAGE_BYTES);
                    if full {
                        let last = products.last().map(|p| p.id.as_str()).unwrap_or_default();
                        let token = page_token::encode(last, &request.filter);
                        return Ok(page(products, token));
                    }
                    page_bytes += size;
                    after = Some(stored.id.clone());
                    products.push(stored);
                } else {
                    after = Some(stored.id);
                }
            }
            if exhausted {
                return Ok(page(products, String::new()));
            }
            if scanned >= MAX_SCAN_PER_CALL {
                let token = page_token::encode(after.as_deref().unwrap_or_default(), &request.filter);
                return Ok(page(products, token));
            }
            // A long scan (sled reads never wait) lets other calls run
            // between its batches, so a cheap call is not stuck behind it.
            tokio::task::yield_now().await;
        }
    }

    pub async fn update(&self, request: UpdateProductRequest) -> Result<Product, CatalogError> {
        let Some(patch) = request.product else {
            return Err(CatalogError::invalid("product", "is required"));
        };
        let id = parse_product_name(&patch.name, "product.name")?.to_owned();
        let mask = match &request.update_mask {
            Some(mask) if !mask.paths.is_empty() => {
                UpdateMask::parse(&mask.paths).map_err(CatalogError::InvalidArgument)?
            }
            _ => UpdateMask::implied_by(&patch),
        };
        let change = |stored: Option<Product>| -> Result<Product, CatalogError> {
            let Some(stored) = stored else {
                // An etag names a version the client saw; if the product is gone
                // since, re-creating it would undo someone's delete.
                if request.allow_missing && !patch.etag.is_empty() {
                    return Err(CatalogError::EtagMismatch {
                        name: patch.name.clone(),
                        sent: patch.etag.clone(),
                    });
                }
                if request.allow_missing {
                    return new_product(patch.clone(), &id, &self.sync.enabled).map_err(CatalogError::InvalidArgument);
                }
                return Err(CatalogError::NotFound {
                    name: patch.name.clone(),
                });
            };
            check_etag(&stored, &patch.name, &patch.etag)?;
            let (merged, _) = updated(&stored, &patch, &mask, &BTreeSet::new(), &self.sync.enabled)?;
            Ok(merged)
        };
        if request.validate_only {
            let stored = self.store.get(&id).await?;
            let stored_etag = stored.as_ref().map(|p| p.etag.clone()).unwrap_or_default();
            // A preview is not a write: it keeps the etag the product has.
            return change(stored).map(|preview| Product {
                etag: stored_etag,
                ..preview
            });
        }
        let updated = self.store.update(&id, self.announces(), change).await?;
        self.wake_sync();
        updated
    }

    pub async fn delete(&self, request: DeleteProductRequest) -> Result<(), CatalogError> {
        let id = parse_product_name(&request.name, "name")?;
        let check = |stored: &Product| check_etag(stored, &request.name, &request.etag);
        let deleted = self.store.delete(id, !request.keep_vendor_copies, check).await??;
        self.sync.wake.notify_one();
        match deleted {
            true => Ok(()),
            false => Err(CatalogError::NotFound { name: request.name }),
        }
    }

    pub async fn sync_product(&self, request: SyncProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let id = parse_product_name(&request.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let asked = vendors_from_request(&request.vendors, &mut violations);
        let (Some(id), true) = (id, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        let everything = [EVERYTHING.to_string()];
        let resync = |stored: Option<Product>| -> Result<Product, CatalogError> {
            let mut product = stored.ok_or_else(|| CatalogError::NotFound {
                name: request.name.clone(),
            })?;
            // By default: every vendor holding (or owed) a copy that this
            // server delivers to.
            let holding: BTreeSet<Vendor> = Vendor::ALL
                .into_iter()
                .filter(|v| v.has_profile(&product) || vendors::sync_entry(&product, *v).is_some())
                .collect();
            let targets = self.target_vendors(&holding, &asked)?;
            // A resend asked for is a push: it goes over whatever the vendor
            // holds now, a drift found before included.
            for vendor in &targets {
                let deleted_there = vendors::sync_entry(&product, *vendor)
                    .and_then(|e| e.drift.as_ref())
                    .is_some_and(|d| d.copy_deleted);
                if deleted_there {
                    // The copy is gone at the vendor: the push creates one.
                    vendor.adapter().set_remote_id(&mut product, "");
                    sync_plan::forget_copy(&mut product, vendor.to_pb());
                }
                sync_plan::set_fingerprint(&mut product, vendor.to_pb(), "");
            }
            vendors::mark_changed(&mut product, &targets, &everything, &self.sync.enabled);
            Ok(product)
        };
        let product = self.store.update(id, self.announces(), resync).await??;
        self.wake_sync();
        Ok(product)
    }

    pub async fn render_vendor_call(&self, request: RenderVendorCallRequest) -> Result<VendorCall, CatalogError> {
        let mut violations = Vec::new();
        let id = parse_product_name(&request.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        let operation = match VendorOperation::try_from(request.operation) {
            Ok(VendorOperation::Unspecified) | Err(_) => {
                violations.push(FieldViolation::new(
                    "operation",
                    "must be CREATE, UPDATE, DELETE or GET",
                ));
                None
            }
            Ok(op) => Some(op),
        };
        let mask = match &request.update_mask {
            Some(mask) if !mask.paths.is_empty() => UpdateMask::parse(&mask.paths)
                .map_err(|mut more| violations.append(&mut more))
                .ok(),
            _ => Some(UpdateMask::Full),
        };
        let last_known = if request.last_known_json.is_empty() {
            None
        } else {
            serde_json::from_str::<serde_json::Value>(&request.last_known_json)
                .map_err(|e| violations.push(FieldViolation::new("last_known_json", format!("is not JSON: {e}"))))
                .ok()
        };
        let (Some(id), Some(vendor), Some(operation), Some(mask), true) =
            (id, vendor, operation, mask, violations.is_empty())
        else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        let product = self
            .store
            .get(id)
            .await?
            .ok_or(CatalogError::NotFound { name: request.name })?;
        let adapter = vendor.adapter();
        let call = match operation {
            VendorOperation::Create => Some(adapter.create(&product, &self.vendors)?),
            VendorOperation::Update => adapter
                .update(&product, &mask, &self.vendors, last_known.as_ref())
                .map_err(|e| match e {
                    AdapterError::BadJson { reason, .. } => CatalogError::invalid("last_known_json", reason),
                    other => CatalogError::Vendor(other),
                })?,
            VendorOperation::Delete => Some(adapter.delete(&product, &self.vendors)?),
            VendorOperation::Get | VendorOperation::Unspecified => Some(adapter.get(&product, &self.vendors)?),
        };
        Ok(match call {
            Some(call) => VendorCall {
                vendor: request.vendor,
                method: call.method.as_str().to_owned(),
                path: call.path_and_query(),
                body: call.body_text(),
                needed: true,
            },
            None => VendorCall {
                vendor: request.vendor,
                needed: false,
                ..Default::default()
            },
        })
    }

    pub async fn import_vendor_product(&self, request: ImportVendorProductRequest) -> Result<Product, CatalogError> {
        let mut violations = Vec::new();
        let vendor = vendor_from_request(request.vendor, &mut violations);
        let id = requested_or_new_id(&request.product_id, &mut violations);
        let json = serde_json::from_str::<serde_json::Value>(&request.json)
            .map_err(|e| violations.push(FieldViolation::new("json", format!("is not JSON: {e}"))))
            .ok();
        let (Some(vendor), Some(json), true) = (vendor, json, violations.is_empty()) else {
            return Err(CatalogError::InvalidArgument(violations));
        };
        let mut product = vendor.adapter().import(&json).map_err(|e| match e {
            AdapterError::BadJson { reason, .. } => CatalogError::invalid("json", reason),
            other => CatalogError::Vendor(other),
        })?;
        if !request.store {
            product.name = product_name(&id);
            let violations = validate(&product);
            if !violations.is_empty() {
                return Err(CatalogError::InvalidArgument(violations));
            }
            return Ok(product);
        }
        // Unlike CreateProduct, what the vendor assigned (keys, ids, counters)
        // is kept, and the vendor it came from already has it as it is.
        let product =
            adopt::adopted_product(product, &id, vendor, &self.sync.enabled).map_err(CatalogError::InvalidArgument)?;
        let outcome = self.store.insert(&id, &product, None, self.announces()).await?;
        self.wake_sync();
        match outcome {
            InsertOutcome::Inserted => Ok(product),
            _ => Err(CatalogError::AlreadyExists { name: product.name }),
        }
    }
}

/// `stored` changed by `patch` under `mask`, validated, with a new etag, and
/// marked for delivery to the vendors it touches (except those in `quiet`,
/// which hold the new values already). Also returns the vendors touched.
fn updated(
    stored: &Product,
    patch: &Product,
    mask: &UpdateMask,
    quiet: &BTreeSet<Vendor>,
    enabled: &BTreeSet<Vendor>,
) -> Result<(Product, BTreeSet<Vendor>), CatalogError> {
    let mut merged = field_mask::merge(stored, patch, mask).map_err(CatalogError::InvalidArgument)?;
    let violations = validate(&merged);
    if !violations.is_empty() {
        return Err(CatalogError::InvalidArgument(violations));
    }
    merged.update_time = Some(now());
    merged.etag = new_etag();
    // A `*` update sends the vendors what it really changed, cleared fields
    // included; `*` itself stands for a whole resend, which never clears
    // (see SyncProduct).
    let (changed, mask): (Vec<String>, UpdateMask) = match mask {
        UpdateMask::Full => {
            let changed = field_mask::changed_paths(stored, &merged);
            match UpdateMask::parse(&changed) {
                Ok(diff) => (changed, diff),
                // Every path names a schema field, so this cannot happen; if
                // it did, a whole resend is the safe side.
                Err(_) => (vec![EVERYTHING.to_string()], UpdateMask::Full),
            }
        }
        UpdateMask::Paths(_) => (
            mask.effective_paths().map(|p| p.as_str().to_owned()).collect(),
            mask.clone(),
        ),
    };
    let touched = vendors::touched_vendors(stored, &merged, &mask);
    let told: BTreeSet<Vendor> = touched.difference(quiet).copied().collect();
    vendors::mark_changed(&mut merged, &told, &changed, enabled);
    Ok((merged, touched))
}

/// Refuses a change sent with an etag (`etag`, for the product `name`) other
/// than the product's: someone changed it since it was read.
fn check_etag(product: &Product, name: &str, etag: &str) -> Result<(), CatalogError> {
    if etag.is_empty() || etag == product.etag {
        Ok(())
    } else {
        Err(CatalogError::EtagMismatch {
            name: name.to_owned(),
            sent: etag.to_owned(),
        })
    }
}

/// A list call's page size: 0 means [`DEFAULT_PAGE_SIZE`], more than
/// [`MAX_PAGE_SIZE`] means that; negative is a violation.
fn page_size(requested: i32, violations: &mut Vec<FieldViolation>) -> usize {
    match requested {
        n if n < 0 => {
            violations.push(FieldViolation::new("page_size", "must not be negative"));
            0
        }
        0 => DEFAULT_PAGE_SIZE,
        n => (n as usize).min(MAX_PAGE_SIZE),
    }
}

/// Where a list call's page starts: after the id in its `page_token`
/// (bound to `filter`), or at the beginning.
fn page_cursor(token: &str, filter: &str, violations: &mut Vec<FieldViolation>) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    match page_token::decode(token, filter) {
        Ok(cursor) => Some(cursor.after_id),
        Err(why) => {
            violations.push(FieldViolation::new("page_token", why));
            None
        }
    }
}

/// The id a create asked for (checked against AIP-122), or a fresh one.
fn requested_or_new_id(requested: &str, violations: &mut Vec<FieldViolation>) -> String {
    if requested.is_empty() {
        return generate_product_id();
    }
    if let Err(why) = check_product_id(requested) {
        violations.push(FieldViolation::new("product_id", why));
    }
    requested.to_owned()
}

/// The vendors a request lists (`vendors[i]`), each one checked.
fn vendors_from_request(values: &[i32], violations: &mut Vec<FieldViolation>) -> BTreeSet<Vendor> {
    let mut asked = BTreeSet::new();
    for (i, value) in values.iter().enumerate() {
        match Vendor::from_pb(*value) {
            Some(vendor) => {
                asked.insert(vendor);
            }
            None => violations.push(FieldViolation::new(format!("vendors[{i}]"), "is not a vendor")),
        }
    }
    asked
}

fn vendor_from_request(value: i32, violations: &mut Vec<FieldViolation>) -> Option<Vendor> {
    let vendor = Vendor::from_pb(value);
    if vendor.is_none() {
        violations.push(FieldViolation::new(
            "vendor",
            format!("must be {}", Vendor::api_names()),
        ));
    }
    vendor
}

/// Server fields of a product stored for the first time, and its delivery to
/// every vendor whose profile it has.
fn stamp_new(product: &mut Product, enabled: &BTreeSet<Vendor>) {
    let now = now();
    product.uid = uuid::Uuid::new_v4().to_string();
    product.create_time = Some(now);
    product.update_time = Some(now);
    product.etag = new_etag();
    let targets = vendors::profiled(product);
    product.sync.clear();
    vendors::mark_changed(product, &targets, &[EVERYTHING.to_string()], enabled);
}

/// A product as first stored: client-only fields kept, server fields stamped.
fn new_product(mut product: Product, id: &str, enabled: &BTreeSet<Vendor>) -> Result<Product, Vec<FieldViolation>> {
    field_mask::clear_output_only(&mut product);
    product.name = product_name(id);
    let violations = validate(&product);
    if !violations.is_empty() {
        return Err(violations);
    }
    stamp_new(&mut product, enabled);
    Ok(product)
}

/// The create request without its request id: what must match for a retry.
/// Leaves out what the server ignores (output-only fields, the product's name
/// and etag), so a retry that differs only there still counts as the same.
fn fingerprint(request: &CreateProductRequest) -> Vec<u8> {
    let product = request.product.clone().map(|mut p| {
        field_mask::clear_output_only(&mut p);
        p.name.clear();
        p.etag.clear();
        p
    });
    CreateProductRequest {
        product,
        request_id: String::new(),
        ..request.clone()
    }
    .encode_to_vec()
}

fn page(products: Vec<StoredProduct>, next_page_token: String) -> ListProductsResponse {
    ListProductsResponse {
        encoded_products: products.into_iter().map(|p| p.bytes).collect(),
        next_page_token,
        ..Default::default()
    }
}

/// A fresh etag: 64 random bits in hex. Unique per write, so an etag from before
/// a delete and re-create never matches the new product.
fn new_etag() -> String {
    let bits = uuid::Uuid::new_v4().as_u64_pair().0;
    format!("{bits:016x}")
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}
