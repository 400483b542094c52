//! The tonic implementations of `producthub.v1.ProductService` and of the
//! standard `google.longrunning.Operations`: unwrap requests, call the
//! catalog, wrap responses. No rules live here.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{CallerScope, Scope};
use super::guard::Refusal;
use super::status::{refusal_status, to_status};
use crate::catalog::Catalog;
use crate::pb::google::longrunning::operations_server::Operations;
use crate::pb::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest, ListOperationsResponse,
    Operation, WaitOperationRequest,
};
use crate::pb::product_service_server::ProductService;
use crate::pb::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ImportVendorProductRequest,
    ImportVendorProductsRequest, LinkVendorProductRequest, ListProductsRequest, ListProductsResponse, Product,
    ProductChange, ReconcileProductRequest, ReconcileVendorProductsRequest, RenderVendorCallRequest,
    SyncProductRequest, UnlinkVendorProductRequest, UpdateProductRequest, VendorCall, WatchProductsRequest,
};
use crate::storage::ProductStore;

/// The gRPC face of a [`Catalog`].
pub struct ProductApi<S> {
    catalog: Arc<Catalog<S>>,
}

impl<S> ProductApi<S> {
    pub fn new(catalog: Arc<Catalog<S>>) -> Self {
        Self { catalog }
    }
}

/// A WatchProducts stream as tonic sends it.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<ProductChange, Status>> + Send>>;

#[tonic::async_trait]
impl<S: ProductStore> ProductService for ProductApi<S> {
    type WatchProductsStream = WatchStream;

    async fn watch_products(
        &self,
        request: Request<WatchProductsRequest>,
    ) -> Result<Response<Self::WatchProductsStream>, Status> {
        let changes = self
            .catalog
            .watch(request.into_inner())
            .await
            .map_err(|e| to_status(&e))?;
        let stream: WatchStream = Box::pin(changes.map(|change| change.map_err(|e| to_status(&e))));
        Ok(Response::new(stream))
    }

    async fn create_product(&self, request: Request<CreateProductRequest>) -> Result<Response<Product>, Status> {
        let writes = !request.get_ref().validate_only;
        may_write(&request, writes)?;
        respond(self.catalog.create(request.into_inner()).await)
    }

    async fn get_product(&self, request: Request<GetProductRequest>) -> Result<Response<Product>, Status> {
        respond(self.catalog.get(request.into_inner()).await)
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        respond(self.catalog.list(request.into_inner()).await)
    }

    async fn update_product(&self, request: Request<UpdateProductRequest>) -> Result<Response<Product>, Status> {
        let writes = !request.get_ref().validate_only;
        may_write(&request, writes)?;
        respond(self.catalog.update(request.into_inner()).await)
    }

    async fn delete_product(&self, request: Request<DeleteProductRequest>) -> Result<Response<()>, Status> {
        respond(self.catalog.delete(request.into_inner()).await)
    }

    async fn render_vendor_call(
        &self,
        request: Request<RenderVendorCallRequest>,
    ) -> Result<Response<VendorCall>, Status> {
        respond(self.catalog.render_vendor_call(request.into_inner()).await)
    }

    async fn sync_product(&self, request: Request<SyncProductRequest>) -> Result<Response<Product>, Status> {
        respond(self.catalog.sync_product(request.into_inner()).await)
    }

    async fn import_vendor_product(
        &self,
        request: Request<ImportVendorProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let writes = request.get_ref().store;
        may_write(&request, writes)?;
        respond(self.catalog.import_vendor_product(request.into_inner()).await)
    }

    async fn import_vendor_products(
        &self,
        request: Request<ImportVendorProductsRequest>,
    ) -> Result<Response<Operation>, Status> {
        respond(self.catalog.import_vendor_products(request.into_inner()).await)
    }

    async fn link_vendor_product(
        &self,
        request: Request<LinkVendorProductRequest>,
    ) -> Result<Response<Product>, Status> {
        respond(self.catalog.link_vendor_product(request.into_inner()).await)
    }

    async fn reconcile_product(&self, request: Request<ReconcileProductRequest>) -> Result<Response<Product>, Status> {
        respond(self.catalog.reconcile_product(request.into_inner()).await)
    }

    async fn reconcile_vendor_products(
        &self,
        request: Request<ReconcileVendorProductsRequest>,
    ) -> Result<Response<Operation>, Status> {
        respond(self.catalog.reconcile_vendor_products(request.into_inner()).await)
    }

    async fn unlink_vendor_product(
        &self,
        request: Request<UnlinkVendorProductRequest>,
    ) -> Result<Response<Product>, Status> {
        respond(self.catalog.unlink_vendor_product(request.into_inner()).await)
    }
}

/// The gRPC face of the catalog's long-running operations.
pub struct OperationsApi<S> {
    catalog: Arc<Catalog<S>>,
}

impl<S> OperationsApi<S> {
    pub fn new(catalog: Arc<Catalog<S>>) -> Self {
        Self { catalog }
    }
}

#[tonic::async_trait]
impl<S: ProductStore> Operations for OperationsApi<S> {
    async fn list_operations(
        &self,
        request: Request<ListOperationsRequest>,
    ) -> Result<Response<ListOperationsResponse>, Status> {
        respond(self.catalog.list_operations(request.into_inner()).await)
    }

    async fn get_operation(&self, request: Request<GetOperationRequest>) -> Result<Response<Operation>, Status> {
        respond(self.catalog.get_operation(request.into_inner()).await)
    }

    async fn delete_operation(&self, request: Request<DeleteOperationRequest>) -> Result<Response<()>, Status> {
        respond(self.catalog.delete_operation(request.into_inner()).await)
    }

    async fn cancel_operation(&self, request: Request<CancelOperationRequest>) -> Result<Response<()>, Status> {
        respond(self.catalog.cancel_operation(request.into_inner()).await)
    }

    async fn wait_operation(&self, request: Request<WaitOperationRequest>) -> Result<Response<Operation>, Status> {
        respond(self.catalog.wait_operation(request.into_inner()).await)
    }
}

/// Refuses a call that `writes` to a caller whose token is read-only (the
/// guard let it in because the method can also preview).
fn may_write<T>(request: &Request<T>, writes: bool) -> Result<(), Status> {
    match request.extensions().get::<CallerScope>() {
        Some(CallerScope(Scope::ReadOnly)) if writes => Err(refusal_status(&Refusal::PreviewOnly)),
        _ => Ok(()),
    }
}

fn respond<T>(result: Result<T, crate::catalog::CatalogError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| to_status(&e))
}
