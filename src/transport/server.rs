//! The gRPC server: TLS, the REST transcoder, the call-log, deadline and guard
//! layers, health, reflection, ProductService (GetProduct answered from the stored bytes by
//! `StoredGet`), the Operations service, and a graceful shutdown bounded by a grace period.
//! Choosing the store and starting the background tasks is the app's
//! business (`app`), not this module's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::auth::Tokens;
use super::call_log::CallLogLayer;
use super::connections::{self, CallTrackingLayer, ConnectionLimits, Listener};
use super::deadline::DeadlineLayer;
use super::guard::GuardLayer;
use super::rest::RestLayer;
use super::service::{OperationsApi, ProductApi};
use super::stored_get::StoredGet;
use crate::catalog::Catalog;
use crate::pb::FILE_DESCRIPTOR_SET;
use crate::pb::google::longrunning::operations_server::OperationsServer;
use crate::pb::product_service_server::ProductServiceServer;
use crate::storage::ProductStore;
use crate::vendors::Webhooks;

/// How the gRPC server treats its callers.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// Requests larger than this are refused with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Bearer tokens callers must present; `None` leaves the server open.
    pub tokens: Option<Tokens>,
    /// With tokens: let health checks and reflection through without one.
    pub open_probes: bool,
    /// ProductService calls allowed in flight at once; more are refused with
    /// UNAVAILABLE at once.
    pub max_in_flight: usize,
    /// The longest any call may run; a client's shorter `grpc-timeout` wins.
    pub call_timeout: Duration,
    /// Serve TLS (and, with a client CA, require client certificates).
    pub tls: Option<TlsFiles>,
    /// After a shutdown request, how long calls in flight may take to finish
    /// before the remaining connections are closed.
    pub shutdown_grace: Duration,
    /// Calls (streams) one HTTP/2 connection may have open at once (its
    /// SETTINGS_MAX_CONCURRENT_STREAMS): one client cannot hold every
    /// WatchProducts stream the server allows over a single connection.
    pub max_streams_per_connection: u32,
    /// HTTP/2 ping interval on idle connections; a peer that does not answer
    /// within [`KEEPALIVE_TIMEOUT`] is disconnected. `None`: no pings.
    pub keepalive: Option<Duration>,
    /// How many connections, and how long one may take to start or sit idle.
    pub connections: ConnectionLimits,
    /// Bytes of request messages all calls may hold at once.
    pub max_request_bytes_in_flight: usize,
}

/// How long a peer has to answer a keepalive ping.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest header block a call may send (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// PEM files for TLS. `Debug` leaves out the private key.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// When set, only clients with a certificate signed by this CA may connect.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_pem_bytes", &self.cert_pem.len())
            .field("key_pem", &"***")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// Why the gRPC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the descriptor set is invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the protos' HTTP rules are invalid: {0}")]
    Http(String),
}

/// Serves gRPC, and the same calls as HTTP/JSON, on `incoming` (with the
/// vendors' `webhooks`, when some are configured) until `shutdown` resolves, then reports NOT_SERVING,
/// ends watch streams, and lets the calls in flight finish for at most
/// `options.shutdown_grace`.
pub async fn serve_grpc<S: ProductStore>(
    catalog: Arc<Catalog<S>>,
    listener: Listener,
    options: GrpcOptions,
    webhooks: Option<Webhooks>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ProductServiceServer<ProductApi<S>>>().await;
    health.set_serving::<OperationsServer<OperationsApi<S>>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let products = ProductServiceServer::new(ProductApi::new(catalog.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(usize::MAX);
    let products = StoredGet::new(products, catalog.clone(), options.max_message_bytes);
    let operations = OperationsServer::new(OperationsApi::new(catalog.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(usize::MAX);

    let webhooks = webhooks.map(|webhooks| super::webhooks::router(catalog.clone(), webhooks));

    // Graceful shutdown waits for every connection to close; a client that
    // never does must not keep the server up, so the wait is bounded.
    let shutdown_requested = Arc::new(Notify::new());
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let signal = {
        let requested = shutdown_requested.clone();
        let health = health.clone();
        async move {
            shutdown.await;
            // Connections still without their preface close now.
            let _ = stopping_tx.send(true);
            // Watch streams never end by themselves; graceful shutdown would
            // wait the whole grace period for them.
            catalog.close_watches();
            // Load balancers stop sending new calls while the old ones finish.
            health.set_not_serving::<ProductServiceServer<ProductApi<S>>>().await;
            health.set_not_serving::<OperationsServer<OperationsApi<S>>>().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            requested.notify_one();
        }
    };
    let mut builder = Server::builder()
        // HTTP/1.1 too, for REST callers such as curl; gRPC stays on HTTP/2.
        .accept_http1(true)
        .max_concurrent_streams(options.max_streams_per_connection.max(1))
        .http2_keepalive_interval(options.keepalive)
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES);
    if let Some(tls) = &options.tls {
        let mut tls_config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .timeout(options.connections.handshake_timeout);
        if let Some(ca) = &tls.client_ca_pem {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(tls_config)?;
    }
    let guard = GuardLayer::new(
        options.tokens.clone(),
        options.open_probes,
        options.max_in_flight,
        options.max_request_bytes_in_flight,
        options.max_message_bytes,
    );
    let rest = RestLayer::new(options.max_message_bytes, options.call_timeout, guard.clone(), webhooks)
        .map_err(GrpcError::Http)?;
    let incoming = connections::incoming(listener, options.connections.clone(), options.tls.is_some(), stopping);
    let serving = builder
        .layer(CallTrackingLayer)
        // REST calls become gRPC calls here, so the layers below see both alike.
        .layer(rest)
        .layer(CallLogLayer)
        .layer(DeadlineLayer::new(options.call_timeout))
        .layer(guard)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(products)
        .add_service(operations)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        result = serving => result?,
        () = async {
            shutdown_requested.notified().await;
            tokio::time::sleep(options.shutdown_grace).await;
        } => {
            tracing::warn!(grace = ?options.shutdown_grace, "calls still open after the grace period; closing them");
        }
    }
    Ok(())
}
