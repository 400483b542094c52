//! The tonic implementation of `producthub.v1.ProductService`: unwraps requests,
//! calls the catalog, wraps responses. No rules live here.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::catalog::Catalog;
use crate::pb::product_service_server::ProductService;
use crate::pb::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ImportVendorProductRequest, ListProductsRequest,
    ListProductsResponse, Product, ProductChange, RenderVendorCallRequest, SyncProductRequest, UpdateProductRequest,
    VendorCall, WatchProductsRequest,
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
        respond(self.catalog.import_vendor_product(request.into_inner()).await)
    }
}

fn respond<T>(result: Result<T, crate::catalog::CatalogError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| to_status(&e))
}
