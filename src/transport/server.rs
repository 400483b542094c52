//! Starting and stopping the server: storage, listener, services, shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::auth::Tokens;
use super::call_log::CallLogLayer;
use super::guard::GuardLayer;
use super::metrics;
use super::service::ProductApi;
use crate::adapters::VendorSettings;
use crate::catalog::{Catalog, SyncHooks};
use crate::domain::schema;
use crate::pb::FILE_DESCRIPTOR_SET;
use crate::pb::product_service_server::ProductServiceServer;
use crate::storage::{PostgresOptions, PostgresStore, ProductStore, SledOptions, SledStore, StoreError, redact_url};
use crate::sync::http::VendorHttp;
use crate::sync::{SyncConfig, SyncWorker};

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Requests larger than this are refused with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Where products live: a local sled directory (`data_dir`) or PostgreSQL.
    pub store: StoreChoice,
    pub sled: SledOptions,
    /// After a shutdown request, how long calls in flight may take to finish
    /// before the remaining connections are closed.
    pub shutdown_grace: Duration,
    /// Deployment ids the vendor adapters need (EnOS orgId, Revenium team/owner).
    pub vendors: VendorSettings,
    /// The vendors changes are delivered to, with their credentials.
    pub sync: SyncConfig,
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
    /// How many of the newest changes WatchProducts can resume from.
    pub watch_retention: u64,
    /// Serve Prometheus metrics over HTTP here (`/metrics`).
    pub metrics_listen: Option<SocketAddr>,
}

/// The storage backend.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// Embedded sled in `data_dir` (the default).
    Sled,
    /// A shared PostgreSQL database.
    Postgres(PostgresOptions),
}

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

/// Why the server could not start or stopped with an error. Each message is one
/// line fit for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the descriptor set is invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot start the sync engine: {0}")]
    Sync(String),
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
}

/// Runs the server until `shutdown` resolves, then stops accepting calls, lets
/// the calls in flight finish, flushes storage and returns.
///
/// Once listening it prints `producthub listening on ADDR` on stdout, with the
/// actual address (useful with port 0).
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
    // Read the schema now, so a defect shows at start-up and not in a request.
    let _ = schema::product_descriptor();
    match &config.store {
        StoreChoice::Sled => {
            let store = SledStore::open(&config.data_dir, &config.sled)?;
            serve_with(config, store, shutdown).await
        }
        StoreChoice::Postgres(options) => {
            let store = PostgresStore::connect(options).await?;
            tracing::info!(database = %redact_url(&options.url), "using PostgreSQL");
            serve_with(config, store, shutdown).await
        }
    }
}

async fn serve_with<S: ProductStore>(
    config: ServerConfig,
    store: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let wake = Arc::new(Notify::new());
    let hooks = SyncHooks {
        enabled: config.sync.enabled(),
        wake: wake.clone(),
    };
    let catalog = Arc::new(Catalog::new(store, config.vendors.clone(), hooks.clone()));
    let http = VendorHttp::new(config.sync.clone()).map_err(ServeError::Sync)?;
    let worker = SyncWorker::new(
        catalog.clone(),
        http,
        config.vendors.clone(),
        hooks.enabled.clone(),
        config.sync.retry.clone(),
        wake,
    );
    let trimmer = tokio::spawn(trim_change_log(catalog.clone(), config.watch_retention));
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = tokio::spawn(worker.run(async move {
        let _ = worker_stopped.await;
    }));
    tracing::info!(vendors = ?hooks.enabled, "sync engine started");

    let incoming = TcpIncoming::bind(config.listen)
        .map_err(|e| bind_error(config.listen, e))?
        .with_nodelay(Some(true));
    let local_addr = incoming.local_addr().map_err(|e| bind_error(config.listen, e))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ProductServiceServer<ProductApi<S>>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let products = ProductServiceServer::new(ProductApi::new(catalog.clone()))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(usize::MAX);

    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let handle = metrics::install_recorder().map_err(ServeError::Metrics)?;
            let (bound, server) = metrics::serve(addr, handle, catalog.clone())
                .await
                .map_err(|e| bind_error(addr, e))?;
            tracing::info!(addr = %bound, "serving metrics");
            println!("producthub metrics on http://{bound}/metrics");
            Some(tokio::spawn(server))
        }
        None => None,
    };

    tracing::info!(addr = %local_addr, "listening");
    println!("producthub listening on {local_addr}");

    // Graceful shutdown waits for every connection to close; a client that
    // never does must not keep the server up, so the wait is bounded.
    let shutdown_requested = Arc::new(Notify::new());
    let signal = {
        let requested = shutdown_requested.clone();
        let health = health.clone();
        let catalog = catalog.clone();
        async move {
            shutdown.await;
            // Watch streams never end by themselves; graceful shutdown would
            // wait the whole grace period for them.
            catalog.close_watches();
            // Load balancers stop sending new calls while the old ones finish.
            health.set_not_serving::<ProductServiceServer<ProductApi<S>>>().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            requested.notify_one();
        }
    };
    let mut builder = Server::builder().timeout(config.call_timeout);
    if let Some(tls) = &config.tls {
        let mut tls_config = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(tls_config)?;
    }
    let guard = GuardLayer::new(config.tokens.clone(), config.open_probes, config.max_in_flight);
    let serving = builder
        .layer(CallLogLayer)
        .layer(guard)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(products)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        result = serving => result?,
        () = async {
            shutdown_requested.notified().await;
            tokio::time::sleep(config.shutdown_grace).await;
        } => {
            tracing::warn!(grace = ?config.shutdown_grace, "calls still open after the grace period; closing them");
        }
    }

    // The worker finishes its current call (bounded); anything cut short is
    // delivered again after the next start.
    let _ = stop_worker.send(());
    if tokio::time::timeout(config.shutdown_grace, worker_task).await.is_err() {
        tracing::warn!("the sync worker did not stop in time; its unfinished delivery will be repeated");
    }
    trimmer.abort();
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    tracing::info!("stopped accepting calls; flushing storage");
    catalog.store().flush().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Keeps the change log to its retention, once a second.
async fn trim_change_log<S: ProductStore>(catalog: Arc<Catalog<S>>, retention: u64) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = catalog.store().trim_changes(retention).await {
            tracing::warn!(%error, "could not trim the change log");
        }
    }
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> ServeError {
    let reason = match e.kind() {
        std::io::ErrorKind::AddrInUse => "the address is already in use".to_string(),
        std::io::ErrorKind::AddrNotAvailable => "the address is not available on this machine".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    ServeError::Bind { addr, reason }
}
