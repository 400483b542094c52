//! The vendors' webhooks: `POST /webhooks/{vendor}` (today
//! `/webhooks/cryptlex`), on the main port's HTTP side whenever a vendor's
//! webhook token is configured, and over plain HTTP/1.1 on `--webhook-listen`
//! if given. Signed by the vendor, so no bearer token is asked for.
//!
//! A call is checked and answered at once: a body over [`MAX_BODY`] gets 413,
//! a signature that does not match the raw body 401, a body that is not the
//! vendor's event 400. A valid event about a product copy only schedules a
//! reconcile of the product holding that copy (202): the event is a hint, and
//! the truth is read from the vendor with producthub's own credentials, so a
//! replayed or stale event costs one read and changes nothing by itself. An
//! event about a copy no product holds is counted and answered 200, so the
//! vendor does not retry it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::catalog::Catalog;
use crate::storage::ProductStore;
use crate::vendors::{Vendor, WebhookRefusal, Webhooks};

/// The largest webhook body accepted: a product event is a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

struct Receiver<S> {
    catalog: Arc<Catalog<S>>,
    webhooks: Webhooks,
}

/// The server to run on `listener` (bound by the caller, so that a bad
/// address fails start-up), and the address it serves.
pub fn serve<S: ProductStore>(
    listener: tokio::net::TcpListener,
    catalog: Arc<Catalog<S>>,
    webhooks: Webhooks,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send)> {
    let bound = listener.local_addr()?;
    let app = router(catalog, webhooks);
    let server = async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the webhook endpoint stopped");
        }
    };
    Ok((bound, server))
}

/// `POST /webhooks/{vendor}`: served on its own listener by [`serve`], and
/// on the main port's HTTP side too (`rest`).
pub fn router<S: ProductStore>(catalog: Arc<Catalog<S>>, webhooks: Webhooks) -> Router {
    Router::new()
        .route("/webhooks/{vendor}", post(receive::<S>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(Receiver { catalog, webhooks }))
}

async fn receive<S: ProductStore>(
    State(receiver): State<Arc<Receiver<S>>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(vendor) = Webhooks::vendor(&slug) else {
        return (StatusCode::NOT_FOUND, format!("no webhooks at /webhooks/{slug}\n"));
    };
    let signature = Webhooks::signature_header(vendor)
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok());
    let event = match receiver.webhooks.receive(vendor, signature, &body) {
        Ok(event) => event,
        Err(refusal) => {
            let (status, outcome) = match &refusal {
                WebhookRefusal::NotConfigured => (StatusCode::NOT_FOUND, "not_configured"),
                WebhookRefusal::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
                WebhookRefusal::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            };
            tracing::warn!(%vendor, %refusal, "webhook refused");
            count(vendor, outcome);
            return (status, format!("{refusal}\n"));
        }
    };
    let Some(remote_id) = event.remote_id else {
        count(vendor, "ignored");
        return (
            StatusCode::OK,
            format!("{} is not a product event; ignored\n", event.event),
        );
    };
    match receiver.catalog.copy_holder(vendor, &remote_id).await {
        Ok(Some(holder)) => {
            receiver.catalog.reconciles().schedule(&holder, vendor);
            tracing::info!(%vendor, event = %event.event, remote_id, product = %holder, "webhook: reconcile scheduled");
            count(vendor, "scheduled");
            (StatusCode::ACCEPTED, format!("reconciling products/{holder}\n"))
        }
        Ok(None) => {
            tracing::info!(%vendor, event = %event.event, remote_id, "webhook for a copy no product holds; ignored");
            count(vendor, "unknown_copy");
            (
                StatusCode::OK,
                format!("no product holds the copy {remote_id:?}; ignored\n"),
            )
        }
        Err(error) => {
            tracing::warn!(%vendor, %error, "webhook: cannot look up the copy");
            count(vendor, "unavailable");
            // The vendor retries later.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry later\n".to_owned(),
            )
        }
    }
}

/// `producthub_webhook_events_total{vendor,outcome}`.
fn count(vendor: Vendor, outcome: &'static str) {
    metrics::counter!("producthub_webhook_events_total", "vendor" => vendor.to_string().to_lowercase(), "outcome" => outcome)
        .increment(1);
}
