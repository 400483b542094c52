//! Prometheus metrics on their own HTTP port (`--metrics-listen`), kept apart
//! from the gRPC port so scrapers need no gRPC and no token.
//!
//! Counters and histograms are recorded where things happen, through the
//! `metrics` facade (a no-op until a recorder is installed, as in unit tests):
//! - `producthub_rpc_requests_total{method,code}` and
//!   `producthub_rpc_duration_seconds{method}` in the call layer;
//! - `producthub_sync_deliveries_total{vendor,outcome}` in the sync worker,
//!   and the gauge `producthub_sync_in_flight{vendor}` in its lanes;
//! - `producthub_import_products_total{vendor,action}` in the catalog's imports;
//! - `producthub_reconcile_copies_total{vendor,action}` and
//!   `producthub_drift_detected_total{vendor,deleted}` in the catalog's reconciles;
//! - `producthub_webhook_events_total{vendor,outcome}` at the webhook endpoint.
//!
//! `producthub_products_by_sync_state{vendor,state}` counts the products
//! whose sync entry for a vendor is in a state (FAILED, DRIFTED, PENDING,
//! SYNCED, DISABLED), from a scan of the whole catalog every
//! [`SYNC_STATE_COUNT_EVERY`] (a page at a time), so a scrape stays cheap
//! with any catalog and the write path pays nothing.
//!
//! Gauges about the store are read when scraped, not kept up to date on the
//! write path: `producthub_store_disk_bytes`, `producthub_sync_outbox_depth`
//! and `producthub_sync_tombstones` (both counted up to [`DEPTH_CAP`], so a
//! scrape stays cheap with any backlog), and `producthub_change_log_newest`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use std::collections::BTreeMap;

use crate::catalog::AbortOnDrop;
use crate::pb::{SyncState, Vendor};
use crate::storage::ProductStore;

/// How often the products are counted by sync state.
pub const SYNC_STATE_COUNT_EVERY: Duration = Duration::from_secs(10);
/// Products read at a time when they are counted.
const COUNT_BATCH: usize = 1000;

/// Backlogs are counted up to this many entries per scrape.
pub const DEPTH_CAP: usize = 10_000;

/// Latency buckets, in seconds: from a cached read to a slow vendor-heavy call.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the process-wide recorder. Fails if one is installed already.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("producthub_rpc_duration_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    describe();
    Ok(handle)
}

/// The HELP text of every metric.
fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        "producthub_rpc_requests_total",
        "gRPC calls finished, by method and status code"
    );
    metrics::describe_histogram!(
        "producthub_rpc_duration_seconds",
        Unit::Seconds,
        "gRPC call latency (until the response headers), by method"
    );
    metrics::describe_counter!(
        "producthub_sync_deliveries_total",
        "delivery attempts to vendors, by vendor and outcome (delivered, retry, failed, disabled, drifted)"
    );
    metrics::describe_gauge!(
        "producthub_sync_in_flight",
        "deliveries (and deletes of deleted products' copies) in flight, by vendor"
    );
    metrics::describe_counter!(
        "producthub_reconcile_copies_total",
        "vendor copies reconciled, by vendor and action (in_sync, drifted, pushed, adopted, failed, skipped)"
    );
    metrics::describe_counter!(
        "producthub_drift_detected_total",
        "copies found changed (deleted=false) or deleted (deleted=true) at a vendor, by vendor"
    );
    metrics::describe_counter!(
        "producthub_webhook_events_total",
        "vendor webhook calls, by vendor and outcome (scheduled, unknown_copy, ignored, bad_signature, malformed, not_configured, unavailable)"
    );
    metrics::describe_counter!(
        "producthub_import_products_total",
        "vendor products looked at by ImportVendorProducts (plans included), by vendor and action (created, linked, unchanged, skipped, failed)"
    );
    metrics::describe_gauge!(
        "producthub_store_disk_bytes",
        Unit::Bytes,
        "the store's size on disk, as sled reports it"
    );
    metrics::describe_gauge!(
        "producthub_sync_outbox_depth",
        "products waiting for the sync worker (counted up to 10000)"
    );
    metrics::describe_gauge!(
        "producthub_sync_tombstones",
        "deleted products whose vendor copies are still to be deleted (counted up to 10000)"
    );
    metrics::describe_gauge!(
        "producthub_products_by_sync_state",
        "products whose copy at a vendor is in a sync state (failed, drifted, pending, synced, disabled), counted every 10 s"
    );
    metrics::describe_gauge!(
        "producthub_change_log_newest",
        "sequence number of the newest readable change (WatchProducts)"
    );
}

struct Scrape<S> {
    handle: PrometheusHandle,
    store: Arc<S>,
}

/// The server to run on `listener` (bound by the caller, so that a bad
/// address fails start-up), and the address it serves.
pub fn serve<S: ProductStore>(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    store: Arc<S>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send)> {
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    let counted = store.clone();
    let state = Arc::new(Scrape { handle, store });
    let app = Router::new().route("/metrics", get(render::<S>)).with_state(state);
    let server = async move {
        // Histograms need regular upkeep, scraped or not.
        // Both end with the server, however it ends (it is aborted at shutdown).
        let _upkeep = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        }));
        let _counter = AbortOnDrop(tokio::spawn(async move {
            loop {
                match count_sync_states(counted.as_ref()).await {
                    Ok(counts) => publish_sync_states(&counts),
                    Err(error) => tracing::warn!(%error, "cannot count products by sync state"),
                }
                tokio::time::sleep(SYNC_STATE_COUNT_EVERY).await;
            }
        }));
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the metrics endpoint stopped");
        }
    };
    Ok((bound, server))
}

/// How many products have a sync entry in each (vendor, state).
async fn count_sync_states<S: ProductStore>(
    store: &S,
) -> Result<BTreeMap<(i32, i32), u64>, crate::storage::StoreError> {
    let mut counts = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let batch = store.scan(after.as_deref(), COUNT_BATCH).await?;
        let exhausted = batch.len() < COUNT_BATCH;
        for product in &batch {
            for entry in &product.sync {
                *counts.entry((entry.vendor, entry.state)).or_insert(0) += 1;
            }
        }
        after = batch
            .last()
            .map(|p| p.name.strip_prefix("products/").unwrap_or(&p.name).to_owned());
        if exhausted || after.is_none() {
            return Ok(counts);
        }
        // A big catalog is counted without holding up other work.
        tokio::task::yield_now().await;
    }
}

/// Sets the gauge of every (vendor, state), zero where nothing is counted.
fn publish_sync_states(counts: &BTreeMap<(i32, i32), u64>) {
    let vendors = (1..).map_while(|n| Vendor::try_from(n).ok());
    for vendor in vendors {
        for state in (1..).map_while(|n| SyncState::try_from(n).ok()) {
            let count = counts.get(&(vendor as i32, state as i32)).copied().unwrap_or(0);
            metrics::gauge!(
                "producthub_products_by_sync_state",
                "vendor" => label(vendor.as_str_name(), "VENDOR_"),
                "state" => label(state.as_str_name(), "SYNC_STATE_")
            )
            .set(count as f64);
        }
    }
}

/// `VENDOR_X` → `x`: the API name as a metric label.
fn label(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

async fn render<S: ProductStore>(State(scrape): State<Arc<Scrape<S>>>) -> String {
    for (name, value) in store_gauges(scrape.store.as_ref()).await {
        metrics::gauge!(name).set(value);
    }
    scrape.handle.render()
}

async fn store_gauges<S: ProductStore>(store: &S) -> Vec<(&'static str, f64)> {
    let mut gauges = Vec::new();
    if let Ok(bytes) = store.disk_bytes().await {
        gauges.push(("producthub_store_disk_bytes", bytes as f64));
    }
    if let Ok(depth) = store.outbox_depth(DEPTH_CAP).await {
        gauges.push(("producthub_sync_outbox_depth", depth as f64));
    }
    if let Ok(depth) = store.tombstone_depth(DEPTH_CAP).await {
        gauges.push(("producthub_sync_tombstones", depth as f64));
    }
    if let Ok(window) = store.change_window().await {
        gauges.push(("producthub_change_log_newest", window.newest.minor as f64));
    }
    gauges
}
