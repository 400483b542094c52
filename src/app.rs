//! The application, wired: choose and open the store, build the catalog,
//! start the sync worker, the reconciler, the change-log trimmer, the metrics
//! and webhook endpoints,
//! serve gRPC, and shut all of it down in order. The one module that knows
//! every other; `main` only turns the command line into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::catalog::{Catalog, SyncHooks};
use crate::domain::schema;
use crate::domain::sync_plan::DriftPolicy;
use crate::storage::{PostgresOptions, PostgresStore, ProductStore, SledOptions, SledStore, StoreError, redact_url};
use crate::sync::{RetryPolicy, SyncWorker};
use crate::transport::{self, GrpcError, GrpcOptions};
use crate::vendors::{Connections, VendorsConfig, Webhooks};

/// How often unfinished imports no process runs are looked for.
const IMPORT_SWEEP: Duration = Duration::from_secs(5);

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where products live: a local sled directory (`data_dir`) or PostgreSQL.
    pub store: StoreChoice,
    pub sled: SledOptions,
    /// How callers are served (limits, tokens, TLS, shutdown grace).
    pub grpc: GrpcOptions,
    /// The vendors changes are delivered to, with their credentials, and the
    /// deployment ids the adapters need.
    pub vendors: VendorsConfig,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
    /// Deliveries in flight to each vendor at once.
    pub sync_concurrency: usize,
    /// How many of the newest changes WatchProducts can resume from.
    pub watch_retention: u64,
    /// WatchProducts streams allowed open at once.
    pub max_watch_streams: usize,
    /// ListProducts calls run at once.
    pub max_concurrent_lists: usize,
    /// Serve Prometheus metrics over HTTP here (`/metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// How vendor copies changed outside producthub are noticed and settled.
    pub reconcile: ReconcileOptions,
    /// Take the vendors' webhooks over HTTP here (`/webhooks/{vendor}`).
    pub webhook_listen: Option<SocketAddr>,
}

/// How copies changed at the vendors are noticed and settled.
#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// Every copy is read and compared this often; `None`: never on a
    /// schedule (on demand, webhooks and deliveries still compare).
    pub interval: Option<Duration>,
    /// What is done with drift unless a call says otherwise.
    pub policy: DriftPolicy,
}

/// The storage backend.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// Embedded sled in `data_dir` (the default).
    Sled,
    /// A shared PostgreSQL database.
    Postgres(PostgresOptions),
}

/// Why the server could not start or stopped with an error. Each message is one
/// line fit for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    #[error("cannot start the sync engine: {0}")]
    Sync(String),
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
    #[error("cannot take webhooks: {0}")]
    Webhooks(String),
    #[error("--webhook-listen needs a vendor's webhook token (--cryptlex-webhook-token)")]
    NoWebhooks,
}

/// Keeps this process's memory in the kernel's small pages, and its children's
/// (the flag is inherited). mimalloc asks for transparent huge pages on its
/// heap, and a huge page is resident in full as soon as one byte of it is
/// touched, while mimalloc's purges of freed memory cannot hand back part of
/// one: at a million products a server's RSS was 161-164 MB with them and
/// 122.5 MB without, and the request rates rose (docs/benchmarks.md). Call it
/// first thing in `main`, before the heap grows. Does nothing off Linux.
pub fn keep_memory_in_small_pages() {
    #[cfg(target_os = "linux")]
    {
        // prctl reads its arguments as unsigned longs: pass them so.
        const DISABLE: libc::c_ulong = 1;
        const UNUSED: libc::c_ulong = 0;
        // SAFETY: PR_SET_THP_DISABLE reads no memory; it sets a flag on this
        // process. Failure (a kernel before 3.15) leaves huge pages on, which
        // costs only memory.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, DISABLE, UNUSED, UNUSED, UNUSED);
        }
    }
}

/// Runs the server until `shutdown` resolves, then stops accepting calls, lets
/// the calls in flight finish, flushes storage and returns.
///
/// Once listening it prints `producthub listening on ADDR` on stdout, with the
/// actual address (useful with port 0).
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
    // Read the schema now, so a defect shows at start-up and not in a request.
    let _ = schema::product_descriptor();
    // The addresses first: one in use (or a missing webhook token) stops
    // start-up before anything is created on disk or started.
    if config.webhook_listen.is_some() && !Webhooks::new(&config.vendors).any() {
        return Err(ServeError::NoWebhooks);
    }
    let mut config = config;
    let limits = &mut config.grpc.connections;
    let fits = transport::fit_to_descriptor_limit(limits.max_connections);
    if fits < limits.max_connections {
        if limits.max_connections_given {
            tracing::warn!(
                max_connections = limits.max_connections,
                fits,
                "--max-connections is more than the open-file limit (ulimit -n) leaves room for; past it, new connections wait"
            );
        } else {
            tracing::info!(
                max_connections = fits,
                "at most this many connections, to fit the open-file limit (ulimit -n)"
            );
            limits.max_connections = fits;
        }
    }
    let listener = transport::bind(config.listen).map_err(|e| bind_error(config.listen, e))?;
    let side = Listeners {
        metrics: bind_http(config.metrics_listen).await?,
        webhooks: bind_http(config.webhook_listen).await?,
    };
    match &config.store {
        StoreChoice::Sled => {
            let store = SledStore::open(&config.data_dir, &config.sled)?;
            let shown = format!("sled in {}", config.data_dir.display());
            serve_with(config, store, shown, listener, side, shutdown).await
        }
        StoreChoice::Postgres(options) => {
            let store = PostgresStore::connect(options).await?;
            let shown = format!("PostgreSQL at {}", redact_url(&options.url));
            serve_with(config, store, shown, listener, side, shutdown).await
        }
    }
}

async fn serve_with<S: ProductStore>(
    config: Config,
    store: S,
    store_shown: String,
    listener: transport::Listener,
    side: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let store = Arc::new(store);
    let wake = Arc::new(Notify::new());
    let hooks = SyncHooks {
        enabled: config.vendors.enabled(),
        wake: wake.clone(),
    };
    let connections =
        Arc::new(Connections::new(&config.vendors, config.retry.request_timeout).map_err(ServeError::Sync)?);
    let catalog = Arc::new(
        Catalog::new(
            store.clone(),
            config.vendors.settings.clone(),
            connections.clone(),
            hooks.clone(),
        )
        .with_max_watch_streams(config.max_watch_streams)
        .with_max_concurrent_lists(config.max_concurrent_lists)
        .with_drift_policy(config.reconcile.policy)
        // A wait ends before the call's own timeout would cut it off.
        .with_max_wait(
            config
                .grpc
                .call_timeout
                .saturating_sub(Duration::from_secs(1))
                .max(Duration::from_secs(1)),
        ),
    );
    let reconciles = catalog.reconciles();
    let worker = SyncWorker::new(
        store.clone(),
        connections,
        config.vendors.settings.clone(),
        hooks.enabled.clone(),
        config.retry.clone(),
        wake,
    )
    // A delivery that stops at DRIFTED under `adopt` has the vendor's values
    // adopted at once.
    .with_drift_policy(
        config.reconcile.policy,
        Some(Arc::new(move |id: &str, vendor| reconciles.schedule(id, vendor))),
    )
    .with_concurrency(config.sync_concurrency);
    let trimmer = tokio::spawn(trim_change_log(store.clone(), config.watch_retention));
    // Imports left unfinished (by this process before a restart, or by a
    // replica that stopped) are picked up again.
    let imports = tokio::spawn(catalog.clone().resume_imports(IMPORT_SWEEP));
    // Copies handed over by webhooks and deliveries, and (when configured)
    // every copy on the interval.
    let reconciler = tokio::spawn(catalog.clone().run_reconciles());
    let reconcile_pass = config
        .reconcile
        .interval
        .map(|every| tokio::spawn(catalog.clone().reconcile_every(every)));
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = tokio::spawn(worker.run(async move {
        let _ = worker_stopped.await;
    }));
    let vendors: Vec<String> = hooks.enabled.iter().map(ToString::to_string).collect();
    tracing::info!(
        store = %store_shown,
        vendors = %if vendors.is_empty() { "none".to_owned() } else { vendors.join(", ") },
        tokens = if config.grpc.tokens.is_some() { "required" } else { "off" },
        tls = match &config.grpc.tls {
            None => "off",
            Some(tls) if tls.client_ca_pem.is_some() => "mutual",
            Some(_) => "on",
        },
        reconcile_interval = %config.reconcile.interval.map_or_else(|| "off".to_owned(), |every| format!("{}s", every.as_secs())),
        reconcile_policy = ?config.reconcile.policy,
        "producthub starting"
    );

    let metrics_server = match side.metrics {
        Some(listener) => {
            let handle = transport::metrics::install_recorder().map_err(ServeError::Metrics)?;
            let (bound, server) = transport::metrics::serve(listener, handle, store.clone())
                .map_err(|e| ServeError::Metrics(e.to_string()))?;
            tracing::info!(addr = %bound, "serving metrics");
            println!("producthub metrics on http://{bound}/metrics");
            Some(tokio::spawn(server))
        }
        None => None,
    };

    let webhook_server = match side.webhooks {
        Some(listener) => {
            let webhooks = Webhooks::new(&config.vendors);
            let (bound, server) = transport::webhooks::serve(listener, catalog.clone(), webhooks)
                .map_err(|e| ServeError::Webhooks(e.to_string()))?;
            tracing::info!(addr = %bound, "taking webhooks");
            println!("producthub webhooks on http://{bound}/webhooks/");
            Some(tokio::spawn(server))
        }
        None => None,
    };

    let local_addr = listener.local_addr;
    tracing::info!(addr = %local_addr, "listening");
    println!("producthub listening on {local_addr}");
    let grace = config.grpc.shutdown_grace;
    // The webhooks are taken on the main port's HTTP side too.
    let webhooks = Some(Webhooks::new(&config.vendors)).filter(Webhooks::any);
    transport::serve_grpc(catalog, listener, config.grpc, webhooks, shutdown).await?;

    // Stopping the worker cancels the calls its lanes have in flight; what
    // they cut short is delivered again after the next start.
    let _ = stop_worker.send(());
    if tokio::time::timeout(grace, worker_task).await.is_err() {
        tracing::warn!("the sync worker did not stop in time; its unfinished delivery will be repeated");
    }
    trimmer.abort();
    imports.abort();
    reconciler.abort();
    if let Some(pass) = reconcile_pass {
        pass.abort();
    }
    if let Some(webhook_server) = webhook_server {
        webhook_server.abort();
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    tracing::info!("stopped accepting calls; flushing storage");
    store.flush().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// After a clean shutdown of a server on sled, leaves sled a fresh snapshot
/// so the next start does not read back its whole log
/// (`SledStore::checkpoint`); nothing on PostgreSQL. Call it once the runtime
/// that served is gone, so no task holds the store any more. Best effort: if
/// it cannot, the next start replays the log, as after a crash.
pub fn checkpoint_storage(config: &Config) {
    if !matches!(config.store, StoreChoice::Sled) {
        return;
    }
    let began = std::time::Instant::now();
    let checkpointed = loop {
        match SledStore::checkpoint(&config.data_dir, &config.sled) {
            // This process's store is still closing (its last holder was
            // dropped as the runtime stopped).
            Err(StoreError::Locked { .. }) if began.elapsed() < CHECKPOINT_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match checkpointed {
        Ok(true) => tracing::info!(
            took_ms = began.elapsed().as_millis(),
            "checkpointed storage for a quick start"
        ),
        Ok(false) => {}
        Err(StoreError::Locked { .. }) => {
            tracing::warn!("could not checkpoint storage: the store was still open; the next start reads its whole log")
        }
        Err(error) => tracing::warn!(%error, "could not checkpoint storage; the next start reads its whole log"),
    }
}

/// How long the checkpoint waits for this process's store to finish closing.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// The HTTP listeners beside gRPC, bound before anything starts.
struct Listeners {
    metrics: Option<tokio::net::TcpListener>,
    webhooks: Option<tokio::net::TcpListener>,
}

async fn bind_http(addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| bind_error(addr, e)),
        None => Ok(None),
    }
}

/// Keeps the change log to its retention, once a second.
async fn trim_change_log<S: ProductStore>(store: Arc<S>, retention: u64) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = store.trim_changes(retention).await {
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

#[cfg(test)]
mod tests {
    /// The kernel reports the flag in `/proc/self/status` (Linux 5.0 and later).
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_off_once_asked() {
        super::keep_memory_in_small_pages();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|line| line.starts_with("THP_enabled:"));
        assert_eq!(
            line.map(|line| line.split_whitespace().last()),
            Some(Some("0")),
            "{status}"
        );
    }
}
