//! Outbound sync against fake vendor servers on loopback: every accepted
//! change reaches each vendor whose profile the product has.

mod common;
mod fake_vendors;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, all_synced, create, entry, everywhere, update, wait_for};
use fake_vendors::{Fake, Vendors, vendor_args, vendors};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    DeleteProductRequest, GetProductRequest, LicensingProfile, Product, SyncProductRequest, SyncState, Vendor,
};
use serde_json::json;
use tonic::transport::Channel;
use tonic_types::StatusExt;

fn start(dir: &Path, v: &Vendors) -> Server {
    let args = vendor_args(v);
    Server::start_with(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn synced(vendor: Vendor, etag: String) -> impl Fn(&Product) -> bool {
    move |p| {
        p.sync
            .iter()
            .any(|s| s.vendor == vendor as i32 && s.state == SyncState::Synced as i32 && s.synced_etag == etag)
    }
}

/// A product with only `vendor`'s profile: the worker delivers it like any
/// other, without a call to the other vendors, whose fakes' calls and ids the
/// tests count.
fn only_at(vendor: Vendor, display_name: &str) -> Product {
    let all = everywhere();
    Product {
        display_name: display_name.into(),
        iot: all.iot.filter(|_| vendor == Vendor::Enos),
        licensing: all.licensing.filter(|_| vendor == Vendor::Cryptlex),
        monetization: all.monetization.filter(|_| vendor == Vendor::Revenium),
        ..Default::default()
    }
}

/// Whether a recorded call is one of [`worker_has_passed`]'s probes.
fn is_probe(call: &fake_vendors::Recorded) -> bool {
    call.body.contains("-probe") || call.path.contains("-probe")
}

/// Returns once `vendor`'s sync lane, since this call began, has read the
/// outbox from its start and looked at every product waiting in it (starting
/// what was due): so a product it still meant to work on has had its turn.
///
/// Each vendor's lane scans on its own: the tombstones, then the outbox in
/// product-id order from the start, starting deliveries in that order. Two
/// probe products, with only `vendor`'s profile, show the scan: `a-probe`
/// sorts before every other id of the test, so a scan that had already begun
/// reading the outbox when it was created is past its place and cannot
/// deliver it; its delivery means a scan began reading the outbox after this
/// call. `z-probe`, created only then, sorts after every other id, so the
/// scan that delivers it (that one, or a later one) has looked at every entry
/// before it first. Once per server (the ids are fixed); the test's own ids
/// must sort between the two, and the calls it counts leave out the probes'
/// ([`is_probe`]).
async fn worker_has_passed(client: &mut ProductServiceClient<Channel>, vendor: Vendor) {
    for id in ["a-probe", "z-probe"] {
        let probe = create(client, id, only_at(vendor, &format!("Probe {id}"))).await;
        wait_for(
            client,
            &probe.name,
            "a probe's delivery",
            synced(vendor, probe.etag.clone()),
        )
        .await;
    }
}

/// Changes one licensing field of `products/{id}` with a one-path mask.
async fn update_licensing(
    client: &mut ProductServiceClient<Channel>,
    id: &str,
    path: &str,
    licensing: LicensingProfile,
) -> Product {
    let patch = Product {
        name: format!("products/{id}"),
        licensing: Some(licensing),
        ..Default::default()
    };
    update(client, patch, &[path]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_exactly_the_vendors_it_touches() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;

    // Create: every vendor gets the product, and producthub keeps their ids.
    create(&mut client, "station", everywhere()).await;
    let product = wait_for(&mut client, "products/station", "the creates", all_synced).await;
    assert_eq!(product.iot.as_ref().unwrap().product_key, "PK1");
    assert_eq!(product.licensing.as_ref().unwrap().product_id, "c1");
    assert_eq!(product.monetization.as_ref().unwrap().product_id, "R1");
    assert_eq!(entry(&product, Vendor::Enos).remote_id, "PK1");
    // What each vendor assigned on create is kept: EnOS's device secret (read
    // back, since its create answers only the key), Cryptlex's public key and
    // counters (from its answer), Revenium's status.
    let iot = product.iot.as_ref().unwrap();
    assert_eq!(
        (
            iot.product_secret.as_str(),
            iot.org_id.as_str(),
            iot.created_by.as_str()
        ),
        ("enos-secret-1", "org-1", "producthub-app")
    );
    assert!(iot.vendor_create_time.is_some());
    let licensing = product.licensing.as_ref().unwrap();
    assert_eq!(licensing.public_key, "RSA-PUBLIC-1");
    assert!(licensing.vendor_create_time.is_some());
    assert_eq!(product.monetization.as_ref().unwrap().status, "ACTIVE");

    let token = &v.enos.requests()[0];
    assert_eq!(
        (token.method.as_str(), token.path.as_str()),
        ("POST", "/apim-token-service/v2.0/token/get")
    );
    assert!(token.auth_ok, "token encryption recomputed by the fake");
    let enos_create = &v.enos.product_calls()[0];
    assert_eq!(enos_create.path, "/connect-service/v2.1/products");
    assert_eq!(enos_create.query.get("action").map(String::as_str), Some("create"));
    assert_eq!(enos_create.query.get("orgId").map(String::as_str), Some("org-1"));
    assert!(enos_create.auth_ok, "apim-signature recomputed by the fake");
    assert_eq!(
        enos_create.json()["productName"],
        json!({"defaultValue": "Weather Station", "i18nValue": {}})
    );
    assert_eq!(enos_create.json()["modelId"], json!("station"));
    let cryptlex_create = &v.cryptlex.product_calls()[0];
    assert_eq!(
        (cryptlex_create.method.as_str(), cryptlex_create.path.as_str()),
        ("POST", "/v3/products")
    );
    assert_eq!(cryptlex_create.json()["licenseTemplateId"], json!("lt-1"));
    let revenium_create = &v.revenium.product_calls()[0];
    assert_eq!(revenium_create.query.get("teamId").map(String::as_str), Some("T1"));
    assert_eq!(
        (&revenium_create.json()["teamId"], &revenium_create.json()["ownerId"]),
        (&json!("T1"), &json!("O1"))
    );

    // A licensing-only change goes to Cryptlex alone, with only that field.
    let (enos_before, revenium_before) = (v.enos.product_calls().len(), v.revenium.product_calls().len());
    let changed = update_licensing(
        &mut client,
        "station",
        "licensing.trial_policy_id",
        LicensingProfile {
            trial_policy_id: "tp-2".into(),
            ..Default::default()
        },
    )
    .await;
    wait_for(
        &mut client,
        "products/station",
        "the Cryptlex update",
        synced(Vendor::Cryptlex, changed.etag.clone()),
    )
    .await;
    let patch = v.cryptlex.product_calls().last().cloned().unwrap();
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", "/v3/products/c1")
    );
    assert_eq!(patch.body, r#"{"trialPolicyId":"tp-2"}"#);
    assert_eq!(v.enos.product_calls().len(), enos_before, "EnOS was not touched");
    assert_eq!(
        v.revenium.product_calls().len(),
        revenium_before,
        "Revenium was not touched"
    );

    // A common field goes everywhere: EnOS update (signed, with the required
    // fields), Revenium GET → merge → PUT keeping what it alone knows.
    let renamed = update(
        &mut client,
        Product {
            name: "products/station".into(),
            display_name: "Weather Station 2".into(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await;
    let etag = renamed.etag.clone();
    wait_for(&mut client, "products/station", "the rename everywhere", move |p| {
        p.sync.iter().all(|s| s.synced_etag == etag)
    })
    .await;
    // The update, then a read of the copy (EnOS answers only the key).
    let enos_calls = v.enos.product_calls();
    let [.., enos_update, enos_read] = enos_calls.as_slice() else {
        panic!()
    };
    assert_eq!(enos_read.query.get("action").map(String::as_str), Some("get"));
    assert_eq!(enos_update.query.get("action").map(String::as_str), Some("update"));
    assert_eq!(enos_update.query.get("productKey").map(String::as_str), Some("PK1"));
    assert!(enos_update.auth_ok);
    assert_eq!(
        enos_update.json(),
        json!({"productName": {"defaultValue": "Weather Station 2", "i18nValue": {}}, "biDirectionalAuth": false})
    );
    let revenium_calls = v.revenium.product_calls();
    let [.., get, put] = revenium_calls.as_slice() else {
        panic!()
    };
    assert_eq!((get.method.as_str(), put.method.as_str()), ("GET", "PUT"));
    assert_eq!(put.path, "/v2/api/products/R1");
    assert_eq!(put.json()["name"], json!("Weather Station 2"));
    assert_eq!(
        put.json()["audienceRestriction"],
        json!("PUBLIC"),
        "fields we do not model go back unchanged"
    );
    assert!(put.json().get("team").is_none() && put.json()["teamId"] == json!("T1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_delays_delivery_and_the_latest_state_arrives_once() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;

    v.cryptlex.set(|b| b.down = true);
    let mut last = Product::default();
    for policy in ["tp-a", "tp-b", "tp-c"] {
        last = update(
            &mut client,
            Product {
                name: "products/p".into(),
                licensing: Some(LicensingProfile {
                    trial_policy_id: policy.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &["licensing.trial_policy_id"],
        )
        .await;
    }
    let waiting = wait_for(&mut client, "products/p", "failed attempts", |p| {
        entry(p, Vendor::Cryptlex).attempts >= 2
    })
    .await;
    let state = entry(&waiting, Vendor::Cryptlex);
    assert_eq!(state.state, SyncState::Pending as i32);
    assert!(state.last_error.contains("503"), "{}", state.last_error);
    let successes_before = v.cryptlex.successful_calls().len();

    v.cryptlex.set(|b| b.down = false);
    wait_for(
        &mut client,
        "products/p",
        "delivery after the outage",
        synced(Vendor::Cryptlex, last.etag.clone()),
    )
    .await;
    // (Each update is preceded by a read of the copy, to see it was not
    // changed at Cryptlex meanwhile.)
    let delivered: Vec<_> = v
        .cryptlex
        .successful_calls()
        .into_iter()
        .skip(successes_before)
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(delivered.len(), 1, "one delivery for three changes: {delivered:?}");
    assert_eq!(delivered[0].body, r#"{"trialPolicyId":"tp-c"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_work_survives_kill_9() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;

    v.cryptlex.set(|b| b.down = true);
    let changed = update(
        &mut client,
        Product {
            name: "products/p".into(),
            description: "Measures more things".into(),
            ..Default::default()
        },
        &["description"],
    )
    .await;
    wait_for(&mut client, "products/p", "a failed attempt", |p| {
        entry(p, Vendor::Cryptlex).attempts >= 1
    })
    .await;
    drop(client);
    server.kill9();

    v.cryptlex.set(|b| b.down = false);
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    wait_for(
        &mut client,
        "products/p",
        "delivery after the restart",
        synced(Vendor::Cryptlex, changed.etag.clone()),
    )
    .await;
    let patch = v.cryptlex.successful_calls().last().cloned().unwrap();
    assert_eq!(patch.body, r#"{"description":"Measures more things"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.cryptlex.set(|b| b.rate_limit_once = true);
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;
    let calls = v.cryptlex.product_calls();
    let [limited, retried, ..] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!((limited.status, retried.status), (429, 201));
    // Retry-After: 1 (our own backoff here would be 100 ms).
    assert!(retried.at.duration_since(limited.at) >= Duration::from_secs(1));
}

/// A 429 holds off the vendor's whole lane, not only the product that got
/// it: nothing more is sent to Cryptlex until its `Retry-After` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_off_the_whole_vendor() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.cryptlex.set(|b| b.rate_limit_once = true);
    for n in 0..6 {
        create(
            &mut client,
            &format!("p{n}"),
            only_at(Vendor::Cryptlex, &format!("P{n}")),
        )
        .await;
    }
    for n in 0..6 {
        wait_for(&mut client, &format!("products/p{n}"), "the create", all_synced).await;
    }
    let calls = v.cryptlex.product_calls();
    let limited = calls
        .iter()
        .find(|c| c.status == 429)
        .expect("one call was rate limited");
    // Calls already on their way when the 429 came back arrive with it; after
    // that, nothing until Retry-After (1 s) has passed.
    let held_off: Vec<_> = calls
        .iter()
        .map(|c| c.at.saturating_duration_since(limited.at))
        .filter(|after| *after > Duration::from_millis(200) && *after < Duration::from_secs(1))
        .collect();
    assert!(held_off.is_empty(), "calls during the hold-off: {held_off:?}");
    assert_eq!(calls.iter().filter(|c| c.status == 201).count(), 6, "{calls:?}");
}

/// Each vendor has a lane of its own: one that hangs (every call waits out
/// the request timeout) delays no delivery to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_vendor_delays_no_other() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.revenium.set(|b| b.latency = Duration::from_secs(600));
    // Delivered one product at a time, all vendors in turn, these would wait
    // 15 s (the request timeout) for Revenium each, minutes in all.
    for n in 0..12 {
        create(&mut client, &format!("p{n:02}"), everywhere()).await;
    }
    for n in 0..12 {
        let product = wait_for(&mut client, &format!("products/p{n:02}"), "EnOS and Cryptlex", |p| {
            [Vendor::Enos, Vendor::Cryptlex]
                .iter()
                .all(|vendor| entry(p, *vendor).state == SyncState::Synced as i32)
        })
        .await;
        assert_eq!(entry(&product, Vendor::Revenium).state, SyncState::Pending as i32);
    }
}

/// Within a vendor's lane several deliveries run at once (at most
/// `--sync-concurrency`), but never two of one product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_a_vendor_overlap_but_never_for_one_product() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vendor_args(&v);
    args.extend(["--sync-concurrency".to_string(), "3".to_string()]);
    let server = Server::start_with(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut client = server.client().await;
    let latency = Duration::from_millis(300);
    v.cryptlex.set(|b| b.latency = latency);
    for n in 0..9 {
        create(
            &mut client,
            &format!("p{n}"),
            only_at(Vendor::Cryptlex, &format!("P{n}")),
        )
        .await;
    }
    for n in 0..9 {
        wait_for(&mut client, &format!("products/p{n}"), "the create", all_synced).await;
    }
    // Three changes of one product in a row while its deliveries are slow.
    for round in 0..3 {
        update_licensing(
            &mut client,
            "p0",
            "licensing.trial_policy_id",
            LicensingProfile {
                trial_policy_id: format!("tp-{round}"),
                ..Default::default()
            },
        )
        .await;
    }
    let p0 = wait_for(&mut client, "products/p0", "the updates", all_synced).await;
    let remote_id = p0.licensing.unwrap().product_id;
    let calls = v.cryptlex.product_calls();
    // A call is answered `latency` after it arrives, so calls arriving within
    // less than that of each other were in flight together.
    let window = latency - Duration::from_millis(50);
    let most_at_once = calls
        .iter()
        .map(|first| {
            calls
                .iter()
                .filter(|c| c.at >= first.at && c.at.duration_since(first.at) < window)
                .count()
        })
        .max()
        .unwrap();
    assert!((2..=3).contains(&most_at_once), "{most_at_once} calls at once");
    let p0: Vec<_> = calls
        .iter()
        .filter(|c| c.path.ends_with(&format!("/{remote_id}")) || c.body.contains("\"P0\""))
        .collect();
    for pair in p0.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= window,
            "two calls for one product in flight together: {pair:?}"
        );
    }
    assert!(p0.len() >= 3, "{p0:?}");
}

/// A product deleted and created again under the same id reaches the vendor
/// in that order: the earlier copy's delete is answered before the new
/// copy's create is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_again_follows_the_delete_of_its_earlier_copy() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    create(&mut client, "p", only_at(Vendor::Cryptlex, "First")).await;
    wait_for(&mut client, "products/p", "the create", all_synced).await;
    let latency = Duration::from_millis(300);
    v.cryptlex.set(|b| b.latency = latency);
    client
        .delete_product(DeleteProductRequest {
            name: "products/p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    create(&mut client, "p", only_at(Vendor::Cryptlex, "Second")).await;
    wait_for(&mut client, "products/p", "the second create", all_synced).await;
    let calls = v.cryptlex.product_calls();
    let delete = calls.iter().find(|c| c.method == "DELETE").expect("the delete");
    let create = calls.iter().rfind(|c| c.method == "POST").expect("the second create");
    assert!(
        create.at.saturating_duration_since(delete.at) >= latency,
        "the create went out before the delete was answered: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_fails_until_the_product_is_fixed() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.cryptlex.set(|b| b.bad_template = Some("lt-missing".into()));
    let mut product = everywhere();
    product.licensing.as_mut().unwrap().license_template_id = "lt-missing".into();
    create(&mut client, "p", product).await;
    let failed = wait_for(&mut client, "products/p", "the refusal", |p| {
        entry(p, Vendor::Cryptlex).state == SyncState::Failed as i32
    })
    .await;
    assert!(
        entry(&failed, Vendor::Cryptlex)
            .last_error
            .contains("License template not found")
    );
    // The worker has decided: FAILED, after one attempt. Had it kept `p` to
    // try again, the whole pass it makes next would call Cryptlex again.
    assert_eq!(entry(&failed, Vendor::Cryptlex).attempts, 1);
    let calls = || v.cryptlex.product_calls().iter().filter(|r| !is_probe(r)).count();
    let attempts = calls();
    worker_has_passed(&mut client, Vendor::Cryptlex).await;
    assert_eq!(calls(), attempts, "FAILED is not retried");
    let still = client
        .get_product(GetProductRequest {
            name: "products/p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let still = entry(&still, Vendor::Cryptlex);
    assert_eq!(
        (still.state, still.attempts),
        (SyncState::Failed as i32, 1),
        "FAILED is not retried: {still:?}"
    );

    let fixed = update_licensing(
        &mut client,
        "p",
        "licensing.license_template_id",
        LicensingProfile {
            license_template_id: "lt-1".into(),
            ..Default::default()
        },
    )
    .await;
    let product = wait_for(
        &mut client,
        "products/p",
        "delivery of the fix",
        synced(Vendor::Cryptlex, fixed.etag),
    )
    .await;
    let creates: Vec<_> = v
        .cryptlex
        .successful_calls()
        .into_iter()
        .filter(|r| r.method == "POST" && !is_probe(r))
        .collect();
    assert_eq!(creates.len(), 1, "created once fixed: {creates:?}");
    assert!(!product.licensing.unwrap().product_id.is_empty());

    // A resync on request sends everything again.
    let before = v.cryptlex.successful_calls().len();
    client
        .sync_product(SyncProductRequest {
            name: "products/p".into(),
            vendors: vec![Vendor::Cryptlex as i32],
        })
        .await
        .unwrap();
    wait_for(&mut client, "products/p", "the resync", |_| {
        v.cryptlex.successful_calls().len() > before
    })
    .await;
    assert_eq!(v.cryptlex.successful_calls().last().unwrap().method, "PATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_the_vendors_and_enos_refusals_are_not_retried() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vendor_args(&v);
    args.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string()]);
    let server = Server::start_with(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut client = server.client().await;
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;
    v.enos.set(|b| b.has_devices = true);
    client
        .delete_product(DeleteProductRequest {
            name: "products/p".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let deleted = |f: &Fake| {
        f.product_calls()
            .iter()
            .any(|r| r.method == "DELETE" || r.query.get("action").is_some_and(|a| a == "delete"))
    };
    while !(deleted(&v.enos) && deleted(&v.cryptlex) && deleted(&v.revenium)) {
        assert!(Instant::now() < deadline, "deletes did not reach every vendor");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        v.cryptlex
            .product_calls()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == "/v3/products/c1")
    );
    assert!(
        v.revenium
            .product_calls()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == "/v2/api/products/R1")
    );
    let enos_deletes = || {
        v.enos
            .product_calls()
            .into_iter()
            .filter(|r| r.query.get("action").is_some_and(|a| a == "delete"))
            .count()
    };
    // The worker has decided: with every delete answered (EnOS's 11619 is not
    // retryable), the tombstone is done with and dropped. One kept to retry
    // EnOS would stay.
    common::wait_for_metric(&server, "producthub_sync_tombstones", 0.0).await;
    worker_has_passed(&mut client, Vendor::Enos).await;
    assert_eq!(enos_deletes(), 1, "11619 is reported once, not retried forever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_vendors_are_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let product = create(&mut client, "p", everywhere()).await;
    for vendor in [Vendor::Enos, Vendor::Cryptlex, Vendor::Revenium] {
        assert_eq!(entry(&product, vendor).state, SyncState::Disabled as i32);
    }
    // Asked to sync to a vendor it cannot reach, the server says so, naming
    // the vendor and the flags that enable it, and changes nothing.
    for vendors in [vec![Vendor::Cryptlex as i32], vec![]] {
        let refused = client
            .sync_product(SyncProductRequest {
                name: "products/p".into(),
                vendors,
            })
            .await
            .expect_err("no vendor is configured");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains("Cryptlex") && refused.message().contains("--cryptlex-token"),
            "{}",
            refused.message()
        );
        let details = refused.get_error_details();
        let failure = details.precondition_failure().expect("a PreconditionFailure");
        assert!(
            failure
                .violations
                .iter()
                .any(|v| v.r#type == "VENDOR_NOT_CONFIGURED" && v.subject == "Cryptlex"),
            "{failure:?}"
        );
    }
    let after = client
        .get_product(producthub::pb::GetProductRequest {
            name: "products/p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, product, "a refused SyncProduct writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enos_business_error_in_http_200_fails_the_vendor() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.enos.set(|b| b.unknown_model = true);
    create(&mut client, "p", everywhere()).await;
    let product = wait_for(&mut client, "products/p", "the EnOS refusal", |p| {
        entry(p, Vendor::Enos).state == SyncState::Failed as i32
    })
    .await;
    let enos = entry(&product, Vendor::Enos);
    assert!(
        enos.last_error.contains("11699") && enos.last_error.contains("ModelId does not exist"),
        "{}",
        enos.last_error
    );
    assert!(
        enos.last_error.contains("req-11699"),
        "EnOS's requestId is kept for its support: {}",
        enos.last_error
    );
    assert_eq!(
        product.iot.unwrap().product_key,
        "",
        "no productKey from a refused create"
    );
    // The other vendors are not held up by EnOS.
    wait_for(&mut client, "products/p", "the others", |p| {
        entry(p, Vendor::Cryptlex).state == SyncState::Synced as i32
            && entry(p, Vendor::Revenium).state == SyncState::Synced as i32
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_profile_deletes_the_vendor_copy() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;
    update(
        &mut client,
        Product {
            name: "products/p".into(),
            ..Default::default()
        },
        &["licensing"],
    )
    .await;
    wait_for(&mut client, "products/p", "the Cryptlex delete", |p| {
        !p.sync.iter().any(|s| s.vendor == Vendor::Cryptlex as i32)
    })
    .await;
    let delete = v.cryptlex.successful_calls().last().cloned().unwrap();
    assert_eq!(
        (delete.method.as_str(), delete.path.as_str()),
        ("DELETE", "/v3/products/c1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_waiting_products_all_arrive() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    v.cryptlex.set(|b| b.down = true);
    let count = 300; // more than one worker batch
    for i in 0..count {
        let product = Product {
            display_name: format!("Licence {i}"),
            licensing: Some(LicensingProfile {
                license_template_id: "lt-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        create(&mut client, &format!("l{i:03}"), product).await;
    }
    v.cryptlex.set(|b| b.down = false);
    let created = || {
        v.cryptlex
            .successful_calls()
            .into_iter()
            .filter(|r| r.method == "POST" && !is_probe(r))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while created() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} products arrived",
            created()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The worker has recorded every product's delivery, then made a whole
    // pass: one it still meant to create would have been created again.
    for i in 0..count {
        wait_for(&mut client, &format!("products/l{i:03}"), "its sync state", all_synced).await;
    }
    worker_has_passed(&mut client, Vendor::Cryptlex).await;
    assert_eq!(created(), count, "each product created exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_sync_state() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let args = vendor_args(&v);
    let (server, lines) = Server::start_logged(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut client = server.client().await;
    // Successes, retries and refusals all get logged.
    v.cryptlex.set(|b| b.rate_limit_once = true);
    v.enos.set(|b| b.unknown_model = true);
    create(&mut client, "p", everywhere()).await;
    let product = wait_for(&mut client, "products/p", "every outcome", |p| {
        entry(p, Vendor::Enos).state == SyncState::Failed as i32
            && entry(p, Vendor::Cryptlex).state == SyncState::Synced as i32
    })
    .await;
    // A product EnOS accepts, so its device secret is read back too.
    v.enos.set(|b| b.unknown_model = false);
    create(&mut client, "q", everywhere()).await;
    let accepted = wait_for(&mut client, "products/q", "the second product", |p| {
        entry(p, Vendor::Enos).state == SyncState::Synced as i32
    })
    .await;
    let device_secret = accepted.iot.unwrap().product_secret;
    assert!(device_secret.starts_with("enos-secret-"), "{device_secret}");
    let secrets = [
        fake_vendors::ENOS_APP_SECRET,
        fake_vendors::ENOS_TOKEN,
        fake_vendors::CRYPTLEX_TOKEN,
        fake_vendors::REVENIUM_KEY,
        device_secret.as_str(),
    ];
    let state = format!("{:?}", product.sync);
    drop(client);
    server.terminate();
    let log: Vec<String> = lines.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("delivered")),
        "the sync worker logged: {log:?}"
    );
    for secret in secrets {
        assert!(!state.contains(secret), "{secret} in the sync state");
        assert!(!log.iter().any(|l| l.contains(secret)), "{secret} in the log");
    }
}

/// The fakes are as strict as the documents: a body that breaks the letter of
/// a vendor's page is refused with 400, so the sync tests above, which pass
/// through them, fail on any body a real vendor could refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fakes_refuse_what_the_documents_do_not_allow() {
    let v = vendors().await;
    let http = reqwest::Client::new();
    let revenium_required = json!({
        "pricingRuleIds": [], "assetIds": [], "productIds": [], "slaDefinitionIds": [], "tags": [],
        "notificationAddressesOnInvoice": [], "namedOrganizations": [], "published": true, "externalId": ""
    });
    let with = |extra: serde_json::Value| {
        let mut body = revenium_required.clone();
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let mut without_published = revenium_required.clone();
    without_published.as_object_mut().unwrap().remove("published");
    let cases = [
        // (vendor, method, path, body, status)
        (
            Vendor::Cryptlex,
            "POST",
            "/v3/products",
            json!({"name": "n", "licenseTemplateId": "lt", "automatedEmails": []}),
            400,
        ),
        (
            Vendor::Cryptlex,
            "PATCH",
            "/v3/products/c1",
            json!({"metadata": [{"key": "k", "value": "v", "id": "m1"}]}),
            400,
        ),
        (
            Vendor::Cryptlex,
            "PATCH",
            "/v3/products/c1",
            json!({"licensePolicyId": "lp"}),
            400,
        ),
        (
            Vendor::Cryptlex,
            "PATCH",
            "/v3/products/c1",
            json!({"description": ""}),
            400,
        ),
        (
            Vendor::Cryptlex,
            "PATCH",
            "/v3/products/c1",
            json!({"metadata": [{"key": "k", "value": "v", "viewPermissions": ["activation"]}]}),
            200,
        ),
        (
            Vendor::Revenium,
            "PUT",
            "/v2/api/products/R1",
            with(json!({"version": "1.0.0"})),
            400,
        ),
        (Vendor::Revenium, "PUT", "/v2/api/products/R1", without_published, 400),
        (
            Vendor::Revenium,
            "PUT",
            "/v2/api/products/R1",
            with(json!({"plan": {"tiers": [{"upTo": null, "startingFrom": 0}]}})),
            400,
        ),
        (
            Vendor::Revenium,
            "PUT",
            "/v2/api/products/R1",
            revenium_required.clone(),
            200,
        ),
    ];
    for (vendor, method, path, body, expected) in cases {
        let request = match vendor {
            Vendor::Cryptlex => http
                .request(method.parse().unwrap(), format!("{}{path}", v.cryptlex.url()))
                .bearer_auth(fake_vendors::CRYPTLEX_TOKEN),
            _ => http
                .request(method.parse().unwrap(), format!("{}{path}?teamId=T1", v.revenium.url()))
                .header("x-api-key", fake_vendors::REVENIUM_KEY),
        };
        let status = request
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), expected, "{vendor:?} {method} {path} {body}");
    }
}

/// A `*` UpdateProduct sends each vendor what it changed, cleared fields
/// included, and nothing more; SyncProduct resends without clearing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_update_clears_at_the_vendors_what_it_cleared() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    create(&mut client, "p", everywhere()).await;
    wait_for(&mut client, "products/p", "the creates", all_synced).await;
    let stored = client
        .get_product(producthub::pb::GetProductRequest {
            name: "products/p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // The whole product again, with a new description and no trial policy:
    // each vendor gets what changed, the cleared policy included.
    let mut replacement = stored.clone();
    replacement.description = "Measures more".into();
    replacement.licensing.as_mut().unwrap().trial_policy_id.clear();
    let changed = update(&mut client, replacement.clone(), &["*"]).await;
    wait_for(&mut client, "products/p", "the whole update", move |p| {
        p.sync.iter().all(|s| s.synced_etag == changed.etag)
    })
    .await;
    let patch = v.cryptlex.product_calls().last().cloned().unwrap();
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.json(),
        json!({"description": "Measures more", "trialPolicyId": ""})
    );
    let enos_update = |v: &Vendors| {
        v.enos
            .product_calls()
            .into_iter()
            .rfind(|c| c.query.get("action").map(String::as_str) == Some("update"))
            .expect("an EnOS update")
    };
    assert_eq!(enos_update(&v).json()["productDesc"], json!("Measures more"));

    // Without a description: cleared at EnOS and Revenium; Cryptlex cannot
    // clear one (1-256 characters) and says so.
    let mut cleared = replacement;
    cleared.etag.clear();
    cleared.description.clear();
    update(&mut client, cleared, &["*"]).await;
    let product = wait_for(&mut client, "products/p", "the clear", |p| {
        entry(p, Vendor::Cryptlex).state == SyncState::Failed as i32
            && entry(p, Vendor::Enos).synced_etag == p.etag
            && entry(p, Vendor::Revenium).synced_etag == p.etag
    })
    .await;
    assert!(
        entry(&product, Vendor::Cryptlex)
            .last_error
            .contains("cannot be cleared")
    );
    assert_eq!(enos_update(&v).json()["productDesc"], json!(""), "cleared at EnOS");
    let put = v.revenium.product_calls().last().cloned().unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.json().get("description").is_none(), "cleared at Revenium");
}

/// A clear still pending when SyncProduct asks for a resend is not lost: the
/// resend (which sends no empty value) is followed by the clear, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_clear_survives_a_resend() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    let mut product = only_at(Vendor::Enos, "Meter");
    product.description = "Counts".into();
    let created = create(&mut client, "p", product).await;
    wait_for(
        &mut client,
        "products/p",
        "the create",
        synced(Vendor::Enos, created.etag),
    )
    .await;
    v.enos.set(|b| b.down = true);
    update(
        &mut client,
        Product {
            name: "products/p".into(),
            ..Default::default()
        },
        &["description"],
    )
    .await;
    let resent = client
        .sync_product(SyncProductRequest {
            name: "products/p".into(),
            vendors: vec![Vendor::Enos as i32],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entry(&resent, Vendor::Enos).pending_paths, ["*", "description"]);
    v.enos.set(|b| b.down = false);
    let etag = resent.etag.clone();
    wait_for(&mut client, "products/p", "the resend", synced(Vendor::Enos, etag)).await;
    let updates: Vec<serde_json::Value> = v
        .enos
        .successful_calls()
        .into_iter()
        .filter(|c| c.query.get("action").map(String::as_str) == Some("update"))
        .map(|c| c.json())
        .collect();
    let last = updates.last().expect("an update");
    assert_eq!(
        last["productDesc"],
        json!(""),
        "the clear went out after the resend: {updates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_state_filter_lists_exactly_the_failed_products() {
    let v = vendors().await;
    v.cryptlex.set(|b| b.bad_template = Some("lt-missing".into()));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let mut client = server.client().await;
    for id in ["ok-1", "bad-1", "ok-2", "bad-2"] {
        let mut request = common::licensed(id);
        if let (true, Some(licensing)) = (
            id.starts_with("bad"),
            request.product.as_mut().and_then(|p| p.licensing.as_mut()),
        ) {
            licensing.license_template_id = "lt-missing".into();
        }
        client.create_product(request).await.unwrap();
        let settled = |p: &Product| entry(p, Vendor::Cryptlex).state != SyncState::Pending as i32;
        wait_for(
            &mut client,
            &format!("products/{id}"),
            "the delivery to settle",
            settled,
        )
        .await;
    }
    client.create_product(common::create_named("local")).await.unwrap();
    let listed = |filter: &str| {
        let mut client = client.clone();
        let filter = filter.to_owned();
        async move {
            let page = client
                .list_products(producthub::pb::ListProductsRequest {
                    filter,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            page.products.into_iter().map(|p| p.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(r#"sync.state = "FAILED""#).await,
        ["products/bad-1", "products/bad-2"]
    );
    assert_eq!(
        listed(r#"sync.vendor = "VENDOR_CRYPTLEX" AND sync.state = "SYNCED""#).await,
        ["products/ok-1", "products/ok-2"]
    );
    assert_eq!(listed("NOT sync:*").await, ["products/local"]);
    assert_eq!(listed(r#"sync.vendor = "VENDOR_ENOS""#).await, Vec::<String>::new());
    let refused = client
        .list_products(producthub::pb::ListProductsRequest {
            filter: r#"sync.state = "BROKEN""#.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("FAILED, DRIFTED, PENDING, SYNCED or DISABLED"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revenium_update_keeps_what_was_changed_at_revenium_and_the_change_does_not_name() {
    let v = vendors().await;
    let dir = tempfile::tempdir().unwrap();
    // Under `push` the update goes over the console's edit (under the default
    // `report` it would stop at DRIFTED, tests/drift.rs): even so it sends
    // only what it names.
    let mut args = vendor_args(&v);
    args.extend(["--reconcile-policy".to_string(), "push".to_string()]);
    let server = Server::start_with(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut client = server.client().await;
    let product = Product {
        display_name: "Metered API".into(),
        version: "1.0.0".into(),
        monetization: everywhere().monetization,
        ..Default::default()
    };
    create(&mut client, "metered", product).await;
    let synced = |p: &Product| entry(p, Vendor::Revenium).state == SyncState::Synced as i32;
    let created = wait_for(&mut client, "products/metered", "the Revenium copy", synced).await;
    let id = entry(&created, Vendor::Revenium).remote_id;
    // Someone edits the tags in Revenium's console.
    let mut at_revenium = v
        .revenium
        .successful_calls()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap()
        .json();
    at_revenium["id"] = json!(id);
    at_revenium["tags"] = json!(["edited-in-console"]);
    v.revenium.seed(1, |_| (id.clone(), at_revenium.clone()));

    update(
        &mut client,
        Product {
            name: "products/metered".into(),
            description: "Now metered per call".into(),
            ..Default::default()
        },
        &["description"],
    )
    .await;
    wait_for(&mut client, "products/metered", "the update at Revenium", |p| {
        synced(p) && entry(p, Vendor::Revenium).synced_etag == p.etag
    })
    .await;
    let put = v
        .revenium
        .successful_calls()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap()
        .json();
    assert_eq!(put["description"], json!("Now metered per call"), "the change");
    assert_eq!(put["tags"], json!(["edited-in-console"]), "not named: Revenium's own");
}
