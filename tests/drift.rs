//! Drift: copies changed at the vendors behind producthub's back (the fakes'
//! catalogs edited directly, as a vendor's console would), noticed on the
//! interval, on demand, by deliveries and by Cryptlex webhooks, and settled by
//! the report, push and adopt policies. Runs on both backends.

mod common;
mod fake_vendors;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, all_synced, create, entry, everywhere, update, wait_for};
use fake_vendors::{Fake, Vendors, vendor_args, vendors};
use producthub::pb::google::longrunning::operation;
use producthub::pb::google::longrunning::operations_client::OperationsClient;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    FieldDifference, ListProductsRequest, Product, ReconcilePolicy, ReconcileProductRequest,
    ReconcileVendorProductsMetadata, ReconcileVendorProductsRequest, SyncProductRequest, SyncState, Vendor,
    WatchProductsRequest,
};
use producthub::vendors::Secret;
use producthub::vendors::cryptlex::webhook::signature;
use prost::Message;
use serde_json::json;
use tonic::transport::Channel;

const WEBHOOK_TOKEN: &str = "whsec-test";

fn start(dir: &Path, v: &Vendors, extra: &[&str]) -> Server {
    let mut args = vendor_args(v);
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn state_is(vendor: Vendor, state: SyncState) -> impl Fn(&Product) -> bool {
    move |p| {
        p.sync
            .iter()
            .any(|s| s.vendor == vendor as i32 && s.state == state as i32)
    }
}

/// The vendor's id of the product's copy (its sync entry's).
fn remote_id(product: &Product, vendor: Vendor) -> String {
    entry(product, vendor).remote_id
}

/// The paths a DRIFTED entry names.
fn drifted_paths(product: &Product, vendor: Vendor) -> Vec<String> {
    let drift = entry(product, vendor).drift.unwrap_or_default();
    drift.fields.iter().map(|f| f.path.clone()).collect()
}

/// Calls to the fake that change something.
fn writes(fake: &Fake) -> Vec<String> {
    fake.product_calls()
        .into_iter()
        .filter(|r| r.method != "GET" && r.query.get("action").is_none_or(|a| a != "get" && a != "search"))
        .map(|r| {
            format!(
                "{} {}{}",
                r.method,
                r.path,
                r.query
                    .get("action")
                    .map(|a| format!("?action={a}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

fn reconcile(name: &str, vendors: &[Vendor], policy: ReconcilePolicy) -> ReconcileProductRequest {
    ReconcileProductRequest {
        name: name.into(),
        vendors: vendors.iter().map(|v| *v as i32).collect(),
        policy: policy as i32,
    }
}

/// Changes the station's description (and nothing else) in producthub.
async fn describe(client: &mut ProductServiceClient<Channel>, description: &str) -> Product {
    let patch = Product {
        name: "products/station".into(),
        description: description.into(),
        ..Default::default()
    };
    update(client, patch, &["description"]).await
}

async fn created_everywhere(client: &mut ProductServiceClient<Channel>, id: &str) -> Product {
    create(client, id, everywhere()).await;
    wait_for(client, &format!("products/{id}"), "the creates", all_synced).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_edits_at_each_vendor_are_reported_within_one_interval_and_nothing_is_overwritten() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &v,
        &["--reconcile-interval", "1s", "--metrics-listen", "127.0.0.1:0"],
    );
    let mut client = server.client().await;
    let product = created_everywhere(&mut client, "station").await;
    let before = (
        writes(&v.enos).len(),
        writes(&v.cryptlex).len(),
        writes(&v.revenium).len(),
    );
    // The change feed carries the drift, like any change.
    let mut feed = client
        .watch_products(WatchProductsRequest {
            filter: r#"sync.state = "DRIFTED""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    v.enos.edit(&remote_id(&product, Vendor::Enos), |copy| {
        copy["productDesc"] = json!("edited in EnOS")
    });
    v.cryptlex.edit(&remote_id(&product, Vendor::Cryptlex), |copy| {
        copy["trialPolicyId"] = json!("tp-console");
        // What Cryptlex changes by itself is not drift.
        copy["totalLicenses"] = json!(42);
        copy["updatedAt"] = json!("2026-12-01T10:00:00Z");
    });
    v.revenium.edit(&remote_id(&product, Vendor::Revenium), |copy| {
        copy["description"] = json!("edited in Revenium")
    });

    let drifted = wait_for(&mut client, "products/station", "drift at every vendor", |p| {
        [Vendor::Enos, Vendor::Cryptlex, Vendor::Revenium]
            .iter()
            .all(|v| entry(p, *v).state == SyncState::Drifted as i32)
    })
    .await;
    assert_eq!(drifted_paths(&drifted, Vendor::Enos), ["description"]);
    assert_eq!(drifted_paths(&drifted, Vendor::Revenium), ["description"]);
    let cryptlex = entry(&drifted, Vendor::Cryptlex);
    let drift = cryptlex.drift.clone().unwrap();
    assert_eq!(
        drift.fields,
        [FieldDifference {
            path: "licensing.trial_policy_id".into(),
            vendor_field: "trialPolicyId".into(),
            producthub_value: "\"tp-1\"".into(),
            vendor_value: "\"tp-console\"".into(),
        }]
    );
    assert!(drift.detect_time.is_some());
    assert!(
        cryptlex.last_error.contains("licensing.trial_policy_id"),
        "{}",
        cryptlex.last_error
    );
    assert_eq!(drifted.etag, product.etag, "reporting changes no canonical value");
    let heard = tokio::time::timeout(Duration::from_secs(30), feed.message())
        .await
        .expect("a change on the feed")
        .unwrap()
        .expect("the feed is open");
    assert_eq!(heard.product.unwrap().name, "products/station");
    common::wait_for_metric(
        &server,
        r#"producthub_products_by_sync_state{vendor="cryptlex",state="drifted"}"#,
        1.0,
    )
    .await;
    common::wait_for_metric(
        &server,
        r#"producthub_drift_detected_total{vendor="cryptlex",deleted="false"}"#,
        1.0,
    )
    .await;

    // The operator's view: exactly this product, by vendor and state.
    let listed = client
        .list_products(ListProductsRequest {
            filter: r#"sync.vendor = "VENDOR_CRYPTLEX" AND sync.state = "DRIFTED""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.products.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["products/station"]
    );

    // More intervals pass: the same drift is not reported again, and still
    // nothing is sent over the vendors' changes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = wait_for(&mut client, "products/station", "the product", |_| true).await;
    assert_eq!(entry(&later, Vendor::Cryptlex).drift, Some(drift));
    assert_eq!(
        (
            writes(&v.enos).len(),
            writes(&v.cryptlex).len(),
            writes(&v.revenium).len()
        ),
        before,
        "nothing is written to a vendor under report"
    );
    let copy = v.cryptlex.stored(&remote_id(&product, Vendor::Cryptlex)).unwrap();
    assert_eq!(copy["trialPolicyId"], "tp-console");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_restores_the_vendor_and_adopt_takes_its_values_to_the_other_vendors() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    let product = created_everywhere(&mut client, "station").await;
    let key = remote_id(&product, Vendor::Cryptlex);

    // Push: producthub's value goes back.
    v.cryptlex
        .edit(&key, |copy| copy["trialPolicyId"] = json!("tp-console"));
    let pushed = client
        .reconcile_product(reconcile(
            "products/station",
            &[Vendor::Cryptlex],
            ReconcilePolicy::Push,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entry(&pushed, Vendor::Cryptlex).state, SyncState::Pending as i32);
    wait_for(
        &mut client,
        "products/station",
        "the push",
        state_is(Vendor::Cryptlex, SyncState::Synced),
    )
    .await;
    assert_eq!(v.cryptlex.stored(&key).unwrap()["trialPolicyId"], "tp-1");

    // Adopt: the vendor's value becomes the product's, and reaches the others.
    let cryptlex_writes = writes(&v.cryptlex).len();
    v.cryptlex
        .edit(&key, |copy| copy["displayName"] = json!("Weather Station Pro"));
    let adopted = client
        .reconcile_product(reconcile("products/station", &[], ReconcilePolicy::Adopt))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adopted.display_name, "Weather Station Pro");
    assert_ne!(adopted.etag, product.etag, "an adopt is a canonical update");
    assert_eq!(entry(&adopted, Vendor::Cryptlex).state, SyncState::Synced as i32);
    let everywhere_now = wait_for(
        &mut client,
        "products/station",
        "the adopted name everywhere",
        all_synced,
    )
    .await;
    assert_eq!(everywhere_now.etag, adopted.etag);
    let enos = v.enos.stored(&remote_id(&product, Vendor::Enos)).unwrap();
    assert_eq!(enos["productName"]["defaultValue"], "Weather Station Pro");
    let revenium = v.revenium.stored(&remote_id(&product, Vendor::Revenium)).unwrap();
    assert_eq!(revenium["name"], "Weather Station Pro");
    assert_eq!(
        writes(&v.cryptlex).len(),
        cryptlex_writes,
        "the vendor adopted from is not written to"
    );
    // Nothing differs any more.
    let again = client
        .reconcile_product(reconcile("products/station", &[], ReconcilePolicy::Report))
        .await
        .unwrap()
        .into_inner();
    assert!(all_synced(&again), "{:?}", again.sync);
    assert_eq!(again.etag, adopted.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_report_a_later_update_does_not_overwrite_the_vendors_change() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    let product = created_everywhere(&mut client, "station").await;
    let key = remote_id(&product, Vendor::Cryptlex);
    let cryptlex_writes = writes(&v.cryptlex).len();
    v.cryptlex
        .edit(&key, |copy| copy["trialPolicyId"] = json!("tp-console"));

    let changed = describe(&mut client, "New words").await;
    let after = wait_for(&mut client, "products/station", "the deliveries", |p| {
        entry(p, Vendor::Cryptlex).state == SyncState::Drifted as i32
            && [Vendor::Enos, Vendor::Revenium]
                .iter()
                .all(|v| entry(p, *v).state == SyncState::Synced as i32 && entry(p, *v).synced_etag == changed.etag)
    })
    .await;
    assert_eq!(drifted_paths(&after, Vendor::Cryptlex), ["licensing.trial_policy_id"]);
    assert_eq!(
        entry(&after, Vendor::Cryptlex).pending_paths,
        ["description"],
        "the change stays pending"
    );
    let copy = v.cryptlex.stored(&key).unwrap();
    assert_eq!(copy["trialPolicyId"], "tp-console", "the vendor's change stands");
    assert_eq!(copy["description"], "Measures things");
    assert_eq!(writes(&v.cryptlex).len(), cryptlex_writes, "nothing was sent over it");

    // SyncProduct is a push: producthub's values, the pending change with them.
    client
        .sync_product(SyncProductRequest {
            name: "products/station".into(),
            vendors: vec![Vendor::Cryptlex as i32],
        })
        .await
        .unwrap();
    wait_for(&mut client, "products/station", "the push", all_synced).await;
    let copy = v.cryptlex.stored(&key).unwrap();
    assert_eq!(copy["trialPolicyId"], "tp-1");
    assert_eq!(copy["description"], "New words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_deleted_at_the_vendor_is_drift_push_creates_it_again_adopt_drops_the_profile() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    for id in ["kept", "dropped"] {
        client.create_product(common::licensed(id)).await.unwrap();
    }
    let kept = wait_for(&mut client, "products/kept", "kept", all_synced).await;
    let dropped = wait_for(&mut client, "products/dropped", "dropped", all_synced).await;
    let (old_kept, old_dropped) = (
        remote_id(&kept, Vendor::Cryptlex),
        remote_id(&dropped, Vendor::Cryptlex),
    );
    v.cryptlex.remove(&old_kept);
    v.cryptlex.remove(&old_dropped);

    let reported = client
        .reconcile_product(reconcile("products/kept", &[], ReconcilePolicy::Unspecified))
        .await
        .unwrap()
        .into_inner();
    let found = entry(&reported, Vendor::Cryptlex);
    assert_eq!(found.state, SyncState::Drifted as i32);
    assert!(found.drift.unwrap().copy_deleted);
    assert!(found.last_error.contains("deleted"), "{}", found.last_error);

    client
        .reconcile_product(reconcile("products/kept", &[], ReconcilePolicy::Push))
        .await
        .unwrap();
    let recreated = wait_for(&mut client, "products/kept", "the new copy", all_synced).await;
    let new_kept = remote_id(&recreated, Vendor::Cryptlex);
    assert_ne!(new_kept, old_kept);
    assert!(v.cryptlex.stored(&new_kept).is_some());
    assert_eq!(recreated.licensing.unwrap().product_id, new_kept);

    let deletes_before = v
        .cryptlex
        .product_calls()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    let without = client
        .reconcile_product(reconcile("products/dropped", &[], ReconcilePolicy::Adopt))
        .await
        .unwrap()
        .into_inner();
    assert!(without.licensing.is_none(), "the profile is removed");
    assert!(without.sync.is_empty(), "{:?}", without.sync);
    assert_ne!(without.etag, dropped.etag);
    let deletes_after = v
        .cryptlex
        .product_calls()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes_after, deletes_before, "nothing is deleted that is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_reconciles_at_once_and_forged_or_replayed_ones_change_nothing() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &v,
        &[
            "--reconcile-interval",
            "off",
            "--webhook-listen",
            "127.0.0.1:0",
            "--cryptlex-webhook-token",
            WEBHOOK_TOKEN,
        ],
    );
    let hooks = format!("{}cryptlex", server.webhooks_url.clone().expect("the webhook address"));
    let mut client = server.client().await;
    let product = created_everywhere(&mut client, "station").await;
    let key = remote_id(&product, Vendor::Cryptlex);
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, signature: Option<String>| {
        let mut request = http
            .post(&hooks)
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Webhook-Signature", signature);
        }
        request.send()
    };
    let token = Secret::new(WEBHOOK_TOKEN);
    let gets = |fake: &Fake| fake.product_calls().iter().filter(|r| r.method == "GET").count();

    v.cryptlex
        .edit(&key, |copy| copy["trialPolicyId"] = json!("tp-console"));
    let event = serde_json::to_vec(
        &json!({"event": "product.updated", "data": {"id": key, "trialPolicyId": "tp-console"},
                                           "triggeredAt": "2026-12-01T10:00:00Z"}),
    )
    .unwrap();

    // Forged: refused, and Cryptlex is not even asked.
    let reads = gets(&v.cryptlex);
    let forged = post(event.clone(), Some(signature(&event, &Secret::new("guessed"))))
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(post(event.clone(), None).await.unwrap().status(), 401);
    assert_eq!(gets(&v.cryptlex), reads);

    // Signed: a reconcile follows at once.
    let sent = Instant::now();
    let accepted = post(event.clone(), Some(signature(&event, &token))).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let drifted = wait_for(
        &mut client,
        "products/station",
        "the webhook's reconcile",
        state_is(Vendor::Cryptlex, SyncState::Drifted),
    )
    .await;
    println!("drift reported {:?} after the webhook", sent.elapsed());
    assert_eq!(drifted_paths(&drifted, Vendor::Cryptlex), ["licensing.trial_policy_id"]);

    // Replayed: one more read of the copy, and nothing changes.
    let reads = gets(&v.cryptlex);
    let replayed = post(event.clone(), Some(signature(&event, &token))).await.unwrap();
    assert_eq!(replayed.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while gets(&v.cryptlex) == reads {
        assert!(Instant::now() < deadline, "the replay was not read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gets(&v.cryptlex), reads + 1, "a replay costs one read");
    let after = wait_for(&mut client, "products/station", "the product", |_| true).await;
    assert_eq!(after, drifted, "a replay changes nothing");

    // The main port's HTTP side takes the same webhooks, with no bearer token.
    let main_hooks = format!("{}/webhooks/cryptlex", server.url());
    let on_main = |body: Vec<u8>, signature: String| {
        http.post(&main_hooks)
            .header("content-type", "application/json; charset=utf-8")
            .header("Webhook-Signature", signature)
            .body(body)
            .send()
    };
    let forged = on_main(event.clone(), signature(&event, &Secret::new("guessed")));
    assert_eq!(forged.await.unwrap().status(), 401);
    let reads = gets(&v.cryptlex);
    let signed = on_main(event.clone(), signature(&event, &token));
    assert_eq!(signed.await.unwrap().status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while gets(&v.cryptlex) == reads {
        assert!(Instant::now() < deadline, "the main port's webhook was not read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bad bodies, unknown copies and other events.
    let junk = b"not json".to_vec();
    assert_eq!(
        post(junk.clone(), Some(signature(&junk, &token)))
            .await
            .unwrap()
            .status(),
        400
    );
    // On a connection of its own: the server closes it after refusing a body
    // it did not read, and a pooled one would fail the next call.
    let huge = vec![b' '; 512 * 1024];
    let refused = reqwest::Client::new()
        .post(&hooks)
        .header("Webhook-Signature", signature(&huge, &token))
        .body(huge)
        .send()
        .await
        .expect("an answer to an oversized body");
    assert_eq!(refused.status(), 413);
    let unknown = serde_json::to_vec(&json!({"event": "product.created", "data": {"id": "not-ours"}})).unwrap();
    assert_eq!(
        post(unknown.clone(), Some(signature(&unknown, &token)))
            .await
            .unwrap()
            .status(),
        200
    );
    let other = serde_json::to_vec(&json!({"event": "license.created", "data": {"id": "l1"}})).unwrap();
    assert_eq!(
        post(other.clone(), Some(signature(&other, &token)))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        wait_for(&mut client, "products/station", "the product", |_| true).await,
        drifted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_vendor_is_reconciled_as_a_long_running_operation() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    for i in 0..5 {
        client.create_product(common::licensed(&format!("p{i}"))).await.unwrap();
    }
    let mut copies = Vec::new();
    for i in 0..5 {
        let p = wait_for(&mut client, &format!("products/p{i}"), "the create", all_synced).await;
        copies.push(remote_id(&p, Vendor::Cryptlex));
    }
    v.cryptlex
        .edit(&copies[1], |copy| copy["displayName"] = json!("Renamed at Cryptlex"));
    v.cryptlex.remove(&copies[3]);

    let started = client
        .reconcile_vendor_products(ReconcileVendorProductsRequest {
            vendor: Vendor::Cryptlex as i32,
            policy: ReconcilePolicy::Report as i32,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut operations = OperationsClient::new(server.channel().await);
    let done = common::poll_operation(&mut operations, &started.name, |op| op.done).await;
    let Some(operation::Result::Response(response)) = done.result else {
        panic!("the reconcile failed: {done:?}")
    };
    assert_eq!(
        response.type_url,
        "type.googleapis.com/producthub.v1.ReconcileVendorProductsResponse"
    );
    let summary = ReconcileVendorProductsMetadata::decode(done.metadata.unwrap().value.as_slice()).unwrap();
    assert_eq!(
        (
            summary.checked,
            summary.in_sync,
            summary.drifted,
            summary.deleted,
            summary.failed
        ),
        (5, 3, 2, 1, 0),
        "{summary:?}"
    );
    let mut found: Vec<String> = summary.findings.iter().map(|f| f.product.clone()).collect();
    found.sort();
    assert_eq!(found, ["products/p1", "products/p3"]);
    let p1 = wait_for(&mut client, "products/p1", "p1", |_| true).await;
    assert_eq!(drifted_paths(&p1, Vendor::Cryptlex), ["display_name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_the_vendor_applied_but_whose_answer_was_lost_is_not_drift() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    let product = created_everywhere(&mut client, "station").await;
    v.cryptlex.set(|b| b.lose_next_answer = true);
    let changed = describe(&mut client, "Applied, answer lost").await;
    // The retry finds the copy holding just what producthub sends.
    let after = wait_for(&mut client, "products/station", "the retried delivery", |p| {
        let e = entry(p, Vendor::Cryptlex);
        e.state == SyncState::Drifted as i32 || (e.state == SyncState::Synced as i32 && e.synced_etag == changed.etag)
    })
    .await;
    assert_eq!(
        entry(&after, Vendor::Cryptlex).state,
        SyncState::Synced as i32,
        "{:?}",
        after.sync
    );
    let copy = v.cryptlex.stored(&remote_id(&product, Vendor::Cryptlex)).unwrap();
    assert_eq!(copy["description"], "Applied, answer lost");
    let again = client
        .reconcile_product(reconcile(
            "products/station",
            &[Vendor::Cryptlex],
            ReconcilePolicy::Report,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entry(&again, Vendor::Cryptlex).state, SyncState::Synced as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_product_creates_again_a_copy_deleted_at_the_vendor() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v, &["--reconcile-interval", "off"]);
    let mut client = server.client().await;
    client.create_product(common::licensed("gone")).await.unwrap();
    let product = wait_for(&mut client, "products/gone", "the create", all_synced).await;
    let old = remote_id(&product, Vendor::Cryptlex);
    v.cryptlex.remove(&old);
    let reported = client
        .reconcile_product(reconcile("products/gone", &[], ReconcilePolicy::Report))
        .await
        .unwrap()
        .into_inner();
    assert!(entry(&reported, Vendor::Cryptlex).drift.unwrap().copy_deleted);
    client
        .sync_product(SyncProductRequest {
            name: "products/gone".into(),
            vendors: vec![],
        })
        .await
        .unwrap();
    let recreated = wait_for(&mut client, "products/gone", "the new copy", all_synced).await;
    let new = remote_id(&recreated, Vendor::Cryptlex);
    assert_ne!(new, old);
    assert!(v.cryptlex.stored(&new).is_some());
}
