//! The standard Operations service's use cases (AIP-151) over the stored
//! operations: get, list, wait, cancel, delete. There are two kinds,
//! ImportVendorProducts and ReconcileVendorProducts; both are stored as an
//! [`ImportJob`] (a reconcile's holds a [`ReconcileJob`]).

use std::time::Duration;

use prost::Message;

use super::{Catalog, CatalogError, page_cursor, page_size};
use crate::domain::{FieldViolation, page_token};
use crate::pb::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest, ListOperationsResponse,
    Operation, WaitOperationRequest, operation,
};
use crate::pb::google::rpc::Status;
use crate::pb::{
    ImportVendorProductsMetadata, ImportVendorProductsRequest, ImportVendorProductsResponse, ImportedVendorProduct,
    ReconcileVendorProductsMetadata, ReconcileVendorProductsRequest, ReconcileVendorProductsResponse,
};
use crate::storage::ProductStore;

/// The collection operations are named in: `operations/{id}`.
const COLLECTION: &str = "operations/";
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";
/// How often a waiting caller looks at the operation again.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// The most vendor products one GetOperation lists: a response stays well
/// under the 4 MiB gRPC clients accept by default.
const MAX_LISTED_PRODUCTS: usize = 10_000;
/// Parts read from the store at a time.
const PARTS_BATCH: usize = 16;

/// An import as stored: its request, progress, the page to read next, and
/// how it ended. The outcome of each vendor product is kept apart, one
/// stored part per catalog page ([`PageOutcomes`]), so that saving progress
/// costs the same on the last page as on the first.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ImportJob {
    #[prost(message, optional, tag = "1")]
    pub request: Option<ImportVendorProductsRequest>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ImportVendorProductsMetadata>,
    /// The catalog page to read next (from 0).
    #[prost(uint32, tag = "4")]
    pub next_page: u32,
    #[prost(bool, tag = "5")]
    pub done: bool,
    /// Why it ended early; unset when it finished or still runs.
    #[prost(message, optional, tag = "6")]
    pub error: Option<Status>,
    /// Set when the operation is a ReconcileVendorProducts (then `request`,
    /// `metadata` and `next_page` are unset).
    #[prost(message, optional, tag = "7")]
    pub reconcile: Option<ReconcileJob>,
}

/// A ReconcileVendorProducts as stored: its request, progress, and the last
/// product id done.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ReconcileJob {
    #[prost(message, optional, tag = "1")]
    pub request: Option<ReconcileVendorProductsRequest>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ReconcileVendorProductsMetadata>,
    /// Products up to this id are done; empty: none yet.
    #[prost(string, tag = "3")]
    pub after: String,
}

/// The outcomes of one catalog page, stored as the operation's part of that
/// page's index: a page imported again after a restart replaces its part.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PageOutcomes {
    #[prost(message, repeated, tag = "1")]
    pub products: Vec<ImportedVendorProduct>,
}

impl ImportJob {
    pub fn new(request: ImportVendorProductsRequest, now: prost_types::Timestamp) -> Self {
        Self {
            metadata: Some(ImportVendorProductsMetadata {
                vendor: request.vendor,
                validate_only: request.validate_only,
                create_time: Some(now),
                update_time: Some(now),
                ..Default::default()
            }),
            request: Some(request),
            ..Default::default()
        }
    }
}

/// A stored message, or the store's record `key()` reported corrupt.
pub(super) fn decoded<M: Message + Default>(bytes: &[u8], key: impl FnOnce() -> String) -> Result<M, CatalogError> {
    M::decode(bytes).map_err(|e| {
        CatalogError::Storage(crate::storage::StoreError::Corrupt {
            key: key(),
            reason: e.to_string(),
        })
    })
}

/// `operations/{id}`.
pub(super) fn operation_id(id: &str) -> String {
    format!("{COLLECTION}{id}")
}

/// `message`, of the API type `type_name`, packed in an `Any`.
fn any(type_name: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("{TYPE_URL_PREFIX}{type_name}"),
        value: message.encode_to_vec(),
    }
}

/// The job as its Operation: metadata while it runs, then the error or the
/// response, listing `products` (of the job's `seen`).
pub(super) fn operation_view(id: &str, job: &ImportJob, products: Vec<ImportedVendorProduct>) -> Operation {
    if let Some(reconcile) = &job.reconcile {
        return reconcile_view(id, job, reconcile);
    }
    let metadata = job.metadata.clone().unwrap_or_default();
    let result = match (&job.error, job.done) {
        (_, false) => None,
        (Some(error), true) => Some(operation::Result::Error(error.clone())),
        (None, true) => Some(operation::Result::Response(any(
            "producthub.v1.ImportVendorProductsResponse",
            &ImportVendorProductsResponse {
                omitted_products: (metadata.seen - products.len() as i64).max(0),
                summary: Some(metadata.clone()),
                products,
            },
        ))),
    };
    Operation {
        name: operation_id(id),
        metadata: Some(any("producthub.v1.ImportVendorProductsMetadata", &metadata)),
        done: job.done,
        result,
    }
}

/// A ReconcileVendorProducts job as its Operation.
fn reconcile_view(id: &str, job: &ImportJob, reconcile: &ReconcileJob) -> Operation {
    let metadata = reconcile.metadata.clone().unwrap_or_default();
    let result = match (&job.error, job.done) {
        (_, false) => None,
        (Some(error), true) => Some(operation::Result::Error(error.clone())),
        (None, true) => Some(operation::Result::Response(any(
            "producthub.v1.ReconcileVendorProductsResponse",
            &ReconcileVendorProductsResponse {
                summary: Some(metadata.clone()),
            },
        ))),
    };
    Operation {
        name: operation_id(id),
        metadata: Some(any("producthub.v1.ReconcileVendorProductsMetadata", &metadata)),
        done: job.done,
        result,
    }
}

/// The id in `operations/{id}`.
fn parse_operation_name(name: &str) -> Result<&str, CatalogError> {
    match name.strip_prefix(COLLECTION) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id),
        _ if name.is_empty() => Err(CatalogError::invalid("name", "is required")),
        _ => Err(CatalogError::invalid("name", "must be operations/{operation_id}")),
    }
}

/// `done = true` / `done = false` / nothing.
fn parse_done_filter(filter: &str) -> Result<Option<bool>, FieldViolation> {
    let compact: String = filter.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "" => Ok(None),
        "done=true" => Ok(Some(true)),
        "done=false" => Ok(Some(false)),
        _ => Err(FieldViolation::new(
            "filter",
            "supported filters: empty, `done = true`, `done = false`",
        )),
    }
}

impl<S: ProductStore> Catalog<S> {
    /// The finished job's first outcomes (up to [`MAX_LISTED_PRODUCTS`]).
    async fn listed_products(&self, id: &str, job: &ImportJob) -> Result<Vec<ImportedVendorProduct>, CatalogError> {
        let mut listed = Vec::new();
        if !job.done || job.error.is_some() || job.reconcile.is_some() {
            return Ok(listed);
        }
        let mut from = 0;
        loop {
            let parts = self.store.operation_parts(id, from, PARTS_BATCH).await?;
            let Some((last, _)) = parts.last() else {
                return Ok(listed);
            };
            from = last.saturating_add(1);
            for (index, bytes) in parts {
                let page: PageOutcomes = decoded(&bytes, || format!("{} part {index}", operation_id(id)))?;
                let room = MAX_LISTED_PRODUCTS - listed.len();
                listed.extend(page.products.into_iter().take(room));
                if listed.len() == MAX_LISTED_PRODUCTS {
                    return Ok(listed);
                }
            }
        }
    }

    /// The stored operation `id`, with the outcomes it lists.
    pub(super) async fn operation(&self, id: &str) -> Result<Operation, CatalogError> {
        let job = self.stored_job(id).await?;
        let products = self.listed_products(id, &job).await?;
        Ok(operation_view(id, &job, products))
    }

    pub async fn get_operation(&self, request: GetOperationRequest) -> Result<Operation, CatalogError> {
        let id = parse_operation_name(&request.name)?;
        self.operation(id).await
    }

    pub async fn list_operations(
        &self,
        request: ListOperationsRequest,
    ) -> Result<ListOperationsResponse, CatalogError> {
        let mut violations = Vec::new();
        if !request.name.is_empty() && request.name != "operations" {
            violations.push(FieldViolation::new("name", "must be `operations` or empty"));
        }
        let page_size = page_size(request.page_size, &mut violations);
        let done = parse_done_filter(&request.filter)
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        let after = page_cursor(&request.page_token, &request.filter, &mut violations);
        if !violations.is_empty() {
            return Err(CatalogError::InvalidArgument(violations));
        }
        let mut records = self.store.operations(after.as_deref(), page_size + 1, done).await?;
        let more = records.len() > page_size;
        records.truncate(page_size);
        let next_page_token = match (more, records.last()) {
            (true, Some(last)) => page_token::encode(&last.id, &request.filter),
            _ => String::new(),
        };
        let mut operations = Vec::with_capacity(records.len());
        for record in records {
            let job: ImportJob = decoded(&record.data, || operation_id(&record.id))?;
            // A list carries each import's summary, not its outcomes.
            operations.push(operation_view(&record.id, &job, Vec::new()));
        }
        Ok(ListOperationsResponse {
            operations,
            next_page_token,
            unreachable: Vec::new(),
        })
    }

    pub async fn wait_operation(&self, request: WaitOperationRequest) -> Result<Operation, CatalogError> {
        let id = parse_operation_name(&request.name)?;
        let longest = match request.timeout {
            Some(timeout) if timeout.seconds < 0 || timeout.nanos < 0 => {
                return Err(CatalogError::invalid("timeout", "must not be negative"));
            }
            Some(timeout) => Duration::new(timeout.seconds as u64, timeout.nanos as u32).min(self.max_wait),
            None => self.max_wait,
        };
        let deadline = tokio::time::Instant::now() + longest;
        loop {
            let job = self.stored_job(id).await?;
            if job.done || tokio::time::Instant::now() >= deadline {
                let products = self.listed_products(id, &job).await?;
                return Ok(operation_view(id, &job, products));
            }
            tokio::time::sleep_until((tokio::time::Instant::now() + WAIT_POLL).min(deadline)).await;
        }
    }

    pub async fn cancel_operation(&self, request: CancelOperationRequest) -> Result<(), CatalogError> {
        let id = parse_operation_name(&request.name)?;
        let job = self.stored_job(id).await?;
        if !job.done && !self.store.cancel_operation(id).await? {
            return Err(CatalogError::OperationNotFound { name: request.name });
        }
        Ok(())
    }

    pub async fn delete_operation(&self, request: DeleteOperationRequest) -> Result<(), CatalogError> {
        let id = parse_operation_name(&request.name)?;
        let job = self.stored_job(id).await?;
        if !job.done {
            return Err(CatalogError::OperationRunning { name: request.name });
        }
        self.store.delete_operation(id).await?;
        Ok(())
    }
}
