//! Adopting what already lives at the vendors, end to end: ImportVendorProducts
//! over whole fake catalogs (hundreds of products on many pages), its plan,
//! its idempotence and its resumption after a kill -9; the match rules;
//! LinkVendorProduct, UnlinkVendorProduct and DeleteProduct keeping the
//! copies; the Operations service; and the `producthub import` / `link`
//! commands. Runs on sled, and on PostgreSQL with the rest of the suite.

mod common;
mod fake_vendors;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, all_products, create, reason};
use fake_vendors::{Fake, Vendors, cryptlex_copy, vendor_args, vendors};
use producthub::pb::google::longrunning::operations_client::OperationsClient;
use producthub::pb::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest, Operation,
    WaitOperationRequest, operation,
};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    DeleteProductRequest, GetProductRequest, ImportAction, ImportVendorProductsRequest, ImportVendorProductsResponse,
    LicensingProfile, LinkDirection, LinkVendorProductRequest, Product, SyncState, UnlinkVendorProductRequest, Vendor,
};
use prost::Message;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Products per fake catalog: many pages at every vendor's page size.
const CATALOG: usize = 520;

type Client = ProductServiceClient<Channel>;
type Operations = OperationsClient<Channel>;

fn start(dir: &Path, v: &Vendors) -> Server {
    let args = vendor_args(v);
    Server::start_with(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn seed_enos(fake: &Fake, count: usize) {
    fake.seed(count, |n| {
        let key = format!("K{n:04}");
        (
            key.clone(),
            json!({"productKey": key, "productName": {"defaultValue": format!("Meter {n}")}, "modelId": "meter",
                   "productType": "Device", "dataFormat": "Json", "biDirectionalAuth": false,
                   "productSecret": format!("secret-{n}"), "orgId": "org-1"}),
        )
    });
}

fn seed_cryptlex(fake: &Fake, count: usize) {
    fake.seed(count, |n| {
        let id = format!("c{n:04}");
        (id.clone(), cryptlex_copy(&id, &format!("Licence {n}")))
    });
}

fn seed_revenium(fake: &Fake, count: usize) {
    fake.seed(count, |n| {
        let id = format!("R{n:04}");
        (
            id.clone(),
            json!({"id": id, "name": format!("API {n}"), "version": "1.0.0", "teamId": "T1", "ownerId": "O1",
                   "status": "ACTIVE", "plan": {"name": "Std", "currency": "USD", "tiers": [{"upTo": null}]}}),
        )
    });
}

async fn clients(server: &Server) -> (Client, Operations) {
    let channel = server.channel().await;
    (
        ProductServiceClient::new(channel.clone()),
        OperationsClient::new(channel),
    )
}

fn request(vendor: Vendor) -> ImportVendorProductsRequest {
    ImportVendorProductsRequest {
        vendor: vendor as i32,
        ..Default::default()
    }
}

async fn start_import(client: &mut Client, request: ImportVendorProductsRequest) -> Operation {
    client
        .import_vendor_products(request)
        .await
        .expect("import starts")
        .into_inner()
}

/// Polls the operation until it is done.
async fn finished(operations: &mut Operations, name: &str) -> Operation {
    common::poll_operation(operations, name, |op| op.done).await
}

use common::import_progress as metadata;

fn response(op: &Operation) -> ImportVendorProductsResponse {
    match &op.result {
        Some(operation::Result::Response(any)) => {
            assert_eq!(
                any.type_url,
                "type.googleapis.com/producthub.v1.ImportVendorProductsResponse"
            );
            ImportVendorProductsResponse::decode(any.value.as_slice()).expect("response decodes")
        }
        other => panic!("{} did not succeed: {other:?}", op.name),
    }
}

async fn import(
    client: &mut Client,
    operations: &mut Operations,
    request: ImportVendorProductsRequest,
) -> ImportVendorProductsResponse {
    let op = start_import(client, request).await;
    response(&finished(operations, &op.name).await)
}

/// (seen, created, linked, unchanged, skipped, failed).
fn counts(response: &ImportVendorProductsResponse) -> (i64, i64, i64, i64, i64, i64) {
    let s = response.summary.clone().unwrap_or_default();
    (s.seen, s.created, s.linked, s.unchanged, s.skipped, s.failed)
}

fn entry(product: &Product, vendor: Vendor) -> Option<producthub::pb::VendorSync> {
    product.sync.iter().find(|s| s.vendor == vendor as i32).cloned()
}

/// The remote ids the products hold for `vendor`, checking none is held twice.
fn held_ids(products: &[Product], vendor: Vendor) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for product in products {
        if let Some(entry) = entry(product, vendor) {
            assert!(
                held.insert(entry.remote_id.clone()),
                "{} is held twice",
                entry.remote_id
            );
        }
    }
    held
}

fn writes(fake: &Fake) -> Vec<String> {
    fake.product_calls()
        .into_iter()
        .filter(|r| {
            r.method != "GET"
                && !(r.method == "POST" && r.query.get("action").is_some_and(|a| a == "search" || a == "get"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn get(client: &mut Client, id: &str) -> Product {
    client
        .get_product(GetProductRequest {
            name: format!("products/{id}"),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Changes the product's Cryptlex trial policy, and only that.
async fn set_trial_policy(client: &mut Client, id: &str, policy: &str) {
    let patch = Product {
        name: format!("products/{id}"),
        licensing: Some(LicensingProfile {
            trial_policy_id: policy.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    common::update(client, patch, &["licensing.trial_policy_id"]).await;
}

fn named(display_name: &str) -> Product {
    Product {
        display_name: display_name.into(),
        ..Default::default()
    }
}

fn link_request(id: &str, remote_id: &str, direction: LinkDirection) -> LinkVendorProductRequest {
    LinkVendorProductRequest {
        name: format!("products/{id}"),
        vendor: Vendor::Cryptlex as i32,
        remote_id: remote_id.into(),
        direction: direction as i32,
        etag: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vendors_catalog_is_planned_then_imported_once_and_a_second_run_changes_nothing() {
    let v = vendors().await;
    seed_enos(&v.enos, CATALOG);
    seed_cryptlex(&v.cryptlex, CATALOG);
    seed_revenium(&v.revenium, CATALOG);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, mut operations) = clients(&server).await;
    let n = CATALOG as i64;
    let mut expected = 0;
    for (vendor, fake) in [
        (Vendor::Enos, &v.enos),
        (Vendor::Cryptlex, &v.cryptlex),
        (Vendor::Revenium, &v.revenium),
    ] {
        let plan = import(
            &mut client,
            &mut operations,
            ImportVendorProductsRequest {
                validate_only: true,
                ..request(vendor)
            },
        )
        .await;
        assert_eq!(
            counts(&plan),
            (n, n, 0, 0, 0, 0),
            "{vendor:?}: the plan creates every product: {:?}",
            plan.products.first()
        );
        assert_eq!(plan.products.len(), CATALOG);
        assert!(plan.summary.as_ref().unwrap().validate_only);
        assert_eq!(
            all_products(&mut client).await.len(),
            expected,
            "{vendor:?}: the plan wrote nothing"
        );

        let first = import(&mut client, &mut operations, request(vendor)).await;
        assert_eq!(counts(&first), (n, n, 0, 0, 0, 0), "{vendor:?}: {:?}", first.summary);
        expected += CATALOG;
        let products = all_products(&mut client).await;
        assert_eq!(products.len(), expected);
        let held = held_ids(&products, vendor);
        assert_eq!(held.len(), CATALOG, "{vendor:?}: every copy is held by one product");
        for product in products.iter().filter(|p| entry(p, vendor).is_some()) {
            let entry = entry(product, vendor).unwrap();
            assert_eq!(
                entry.state,
                SyncState::Synced as i32,
                "{vendor:?}: the copy is the product"
            );
        }

        let again = import(&mut client, &mut operations, request(vendor)).await;
        assert_eq!(
            counts(&again),
            (n, 0, 0, n, 0, 0),
            "{vendor:?}: the second run changes nothing"
        );
        assert!(
            again.products.iter().all(|p| !p.product.is_empty()),
            "each names its holder"
        );
        assert_eq!(all_products(&mut client).await.len(), expected);
        assert_eq!(
            writes(fake),
            Vec::<String>::new(),
            "{vendor:?}: nothing was sent to the vendor"
        );
    }

    // What the vendors assigned came with the import.
    let products = all_products(&mut client).await;
    let licensed = products.iter().find_map(|p| p.licensing.clone()).unwrap();
    assert!(licensed.public_key.starts_with("PUBLIC-c"), "{licensed:?}");
    let iot = products.iter().find_map(|p| p.iot.clone()).unwrap();
    assert!(iot.product_secret.starts_with("secret-"), "{iot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_way_resumes_after_a_restart_and_imports_each_product_once() {
    let v = vendors().await;
    seed_cryptlex(&v.cryptlex, CATALOG);
    v.cryptlex.set(|b| b.latency = Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, mut operations) = clients(&server).await;
    let op = start_import(&mut client, request(Vendor::Cryptlex)).await;
    // Killed once a couple of pages are in, in the middle of the next.
    common::wait_for_pages(&mut operations, &op.name, 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill9();

    v.cryptlex.set(|b| b.latency = Duration::from_millis(20));
    let server = start(dir.path(), &v);
    let (mut client, mut operations) = clients(&server).await;
    let done = finished(&mut operations, &op.name).await;
    let summary = response(&done);
    let (seen, created, linked, unchanged, skipped, failed) = counts(&summary);
    assert_eq!(
        (seen, linked, skipped, failed),
        (CATALOG as i64, 0, 0, 0),
        "{:?}",
        summary.summary
    );
    assert_eq!(created + unchanged, CATALOG as i64);
    let products = all_products(&mut client).await;
    assert_eq!(products.len(), CATALOG, "every vendor product imported once");
    assert_eq!(held_ids(&products, Vendor::Cryptlex).len(), CATALOG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_rules_link_by_table_and_name_refuse_ambiguity_and_plan_without_writing() {
    let v = vendors().await;
    for (id, name) in [("c1", "Alpha"), ("c2", "Beta"), ("c3", "Gamma"), ("c4", "Delta")] {
        v.cryptlex.seed(1, |_| (id.to_owned(), cryptlex_copy(id, name)));
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, mut operations) = clients(&server).await;
    create(&mut client, "alpha", named("Alpha")).await;
    create(&mut client, "beta-1", named("Beta")).await;
    create(&mut client, "beta-2", named("Beta")).await;
    create(&mut client, "chosen", named("Something else")).await;
    let rules = ImportVendorProductsRequest {
        product_ids: [("c4".to_owned(), "products/chosen".to_owned())].into_iter().collect(),
        match_display_names: true,
        ..request(Vendor::Cryptlex)
    };
    let check = |response: &ImportVendorProductsResponse, planned: bool| {
        let by_id = |id: &str| response.products.iter().find(|p| p.remote_id == id).cloned().unwrap();
        let alpha = by_id("c1");
        assert_eq!(
            (alpha.action, alpha.product.as_str()),
            (ImportAction::Linked as i32, "products/alpha")
        );
        let beta = by_id("c2");
        assert_eq!(beta.action, ImportAction::Failed as i32);
        assert_eq!(beta.candidates, ["products/beta-1", "products/beta-2"], "{beta:?}");
        assert!(beta.reason.contains("2 products are named \"Beta\""), "{}", beta.reason);
        assert_eq!(by_id("c3").action, ImportAction::Created as i32);
        assert_eq!(
            by_id("c3").product.is_empty(),
            planned,
            "a planned product has no name yet"
        );
        let delta = by_id("c4");
        assert_eq!(
            (delta.action, delta.product.as_str()),
            (ImportAction::Linked as i32, "products/chosen")
        );
        assert_eq!(counts(response), (4, 1, 2, 0, 0, 1));
        assert_eq!(response.summary.as_ref().unwrap().failures, [beta]);
    };

    let plan = import(
        &mut client,
        &mut operations,
        ImportVendorProductsRequest {
            validate_only: true,
            ..rules.clone()
        },
    )
    .await;
    check(&plan, true);
    assert_eq!(all_products(&mut client).await.len(), 4, "the plan created nothing");
    assert_eq!(
        get(&mut client, "alpha").await.licensing,
        None,
        "the plan linked nothing"
    );

    let done = import(&mut client, &mut operations, rules.clone()).await;
    check(&done, false);
    let alpha = get(&mut client, "alpha").await;
    let licensing = alpha.licensing.clone().expect("the copy's values became the profile");
    assert_eq!(
        (licensing.product_id.as_str(), licensing.public_key.as_str()),
        ("c1", "PUBLIC-c1")
    );
    assert_eq!(alpha.display_name, "Alpha");
    assert_eq!(entry(&alpha, Vendor::Cryptlex).unwrap().state, SyncState::Synced as i32);
    assert_eq!(get(&mut client, "chosen").await.licensing.unwrap().product_id, "c4");
    assert_eq!(
        get(&mut client, "beta-1").await.licensing,
        None,
        "an ambiguous match writes nothing"
    );
    assert_eq!(all_products(&mut client).await.len(), 5);

    // link_only skips what nothing matches; the rest is held already.
    v.cryptlex.seed(1, |_| ("c5".into(), cryptlex_copy("c5", "Epsilon")));
    let linking = import(
        &mut client,
        &mut operations,
        ImportVendorProductsRequest {
            link_only: true,
            ..rules
        },
    )
    .await;
    assert_eq!(counts(&linking), (5, 0, 0, 3, 1, 1), "{:?}", linking.products);
    assert_eq!(all_products(&mut client).await.len(), 5);
    assert_eq!(writes(&v.cryptlex), Vec::<String>::new(), "adopting sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_copy_is_updated_not_duplicated_has_one_holder_and_unlinking_leaves_it_alone() {
    let v = vendors().await;
    for id in ["c7", "c8"] {
        v.cryptlex.seed(1, |_| (id.to_owned(), cryptlex_copy(id, "Widget Pro")));
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    create(&mut client, "widget", named("Widget")).await;
    create(&mut client, "other", named("Other")).await;

    let linked = client
        .link_vendor_product(link_request("widget", "c7", LinkDirection::VendorWins))
        .await
        .unwrap()
        .into_inner();
    let licensing = linked.licensing.clone().expect("profile from the copy");
    assert_eq!(licensing.product_id, "c7");
    assert_eq!(licensing.public_key, "PUBLIC-c7");
    assert_eq!(licensing.license_template_id, "lt-1");
    assert_eq!(
        entry(&linked, Vendor::Cryptlex).unwrap().state,
        SyncState::Synced as i32
    );
    // Again: nothing changes.
    let again = client
        .link_vendor_product(link_request("widget", "c7", LinkDirection::VendorWins))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.etag, linked.etag);

    // The copy has one holder.
    let taken = client
        .link_vendor_product(link_request("other", "c7", LinkDirection::VendorWins))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(reason(&taken), "VENDOR_COPY_LINKED");
    let info = taken.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata.get("holder").map(String::as_str), Some("products/widget"));
    assert!(taken.message().contains("products/widget"), "{}", taken.message());
    // A product holding a copy cannot take a second one of that vendor.
    let second = client
        .link_vendor_product(link_request("widget", "c8", LinkDirection::VendorWins))
        .await
        .unwrap_err();
    assert_eq!(
        (second.code(), reason(&second).as_str()),
        (Code::FailedPrecondition, "ALREADY_LINKED")
    );

    // Changing the linked profile updates the copy; nothing is created.
    set_trial_policy(&mut client, "widget", "tp-2").await;
    common::wait_for(&mut client, "products/widget", "the trial policy at Cryptlex", |p| {
        entry(p, Vendor::Cryptlex).is_some_and(|e| e.state == SyncState::Synced as i32 && e.pending_paths.is_empty())
    })
    .await;
    assert_eq!(
        writes(&v.cryptlex),
        ["PATCH /v3/products/c7"],
        "an update of the copy, no second copy"
    );

    // Unlinking lets go without touching the copy.
    let unlinked = client
        .unlink_vendor_product(UnlinkVendorProductRequest {
            name: "products/widget".into(),
            vendor: Vendor::Cryptlex as i32,
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unlinked.licensing, None);
    assert_eq!(entry(&unlinked, Vendor::Cryptlex), None);
    let not_linked = client
        .unlink_vendor_product(UnlinkVendorProductRequest {
            name: "products/widget".into(),
            vendor: Vendor::Cryptlex as i32,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (not_linked.code(), reason(&not_linked).as_str()),
        (Code::FailedPrecondition, "NOT_LINKED")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writes(&v.cryptlex), ["PATCH /v3/products/c7"], "no delete");
    assert_eq!(v.cryptlex.catalog_len(), 2, "the copy is still there");
    // Let go of, it is free for another product.
    client
        .link_vendor_product(link_request("other", "c7", LinkDirection::VendorWins))
        .await
        .unwrap();

    // Deleting with keep_vendor_copies lets go as well; by default the copy goes.
    client
        .delete_product(DeleteProductRequest {
            name: "products/other".into(),
            keep_vendor_copies: true,
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        writes(&v.cryptlex),
        ["PATCH /v3/products/c7"],
        "the kept copy was not deleted"
    );
    assert_eq!(v.cryptlex.catalog_len(), 2);

    let missing = client
        .link_vendor_product(link_request("widget", "c-none", LinkDirection::VendorWins))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), reason(&missing).as_str()),
        (Code::NotFound, "VENDOR_COPY_NOT_FOUND")
    );
    let undirected = client
        .link_vendor_product(link_request("widget", "c8", LinkDirection::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(undirected.code(), Code::InvalidArgument);
    let fields: Vec<String> = undirected
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|f| f.field.clone())
        .collect();
    assert_eq!(fields, ["direction"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_links_of_one_copy_have_one_winner() {
    let v = vendors().await;
    v.cryptlex.seed(1, |_| ("c9".into(), cryptlex_copy("c9", "Shared")));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    for round in 0..5 {
        let ids = [format!("left-{round}"), format!("right-{round}")];
        for id in &ids {
            create(&mut client, id, named("Shared")).await;
        }
        let racers: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut client = client.clone();
                let request = link_request(id, "c9", LinkDirection::VendorWins);
                tokio::spawn(async move { client.link_vendor_product(request).await })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => wins += 1,
                Err(status) => assert_eq!(reason(&status), "VENDOR_COPY_LINKED", "{status:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        let holders: Vec<Product> = all_products(&mut client)
            .await
            .into_iter()
            .filter(|p| entry(p, Vendor::Cryptlex).is_some())
            .collect();
        assert_eq!(holders.len(), 1, "round {round}: one product holds c9");
        // Free it for the next round.
        client
            .unlink_vendor_product(UnlinkVendorProductRequest {
                name: holders[0].name.clone(),
                vendor: Vendor::Cryptlex as i32,
                etag: String::new(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producthub_wins_sends_the_profile_over_an_existing_copy() {
    let v = vendors().await;
    v.cryptlex.seed(1, |_| ("c10".into(), cryptlex_copy("c10", "Old name")));
    let dir = tempfile::tempdir().unwrap();
    // Made while the server did not deliver to Cryptlex: a profile, no copy.
    let offline = Server::start(dir.path());
    let mut client = offline.client().await;
    let mut product = named("New name");
    product.licensing = Some(LicensingProfile {
        license_template_id: "lt-9".into(),
        ..Default::default()
    });
    create(&mut client, "ours", product).await;
    let refused = client
        .link_vendor_product(link_request("ours", "c10", LinkDirection::ProducthubWins))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::FailedPrecondition, "VENDOR_NOT_CONFIGURED")
    );
    offline.terminate();

    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    create(&mut client, "bare", named("Bare")).await;
    let bare = client
        .link_vendor_product(link_request("bare", "c10", LinkDirection::ProducthubWins))
        .await
        .unwrap_err();
    assert_eq!(
        (bare.code(), reason(&bare).as_str()),
        (Code::FailedPrecondition, "PROFILE_MISSING")
    );

    let linked = client
        .link_vendor_product(link_request("ours", "c10", LinkDirection::ProducthubWins))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        entry(&linked, Vendor::Cryptlex).unwrap().state,
        SyncState::Pending as i32
    );
    let synced = common::wait_for(&mut client, "products/ours", "the profile sent over the copy", |p| {
        entry(p, Vendor::Cryptlex).is_some_and(|e| e.state == SyncState::Synced as i32)
    })
    .await;
    assert_eq!(
        writes(&v.cryptlex),
        ["PATCH /v3/products/c10"],
        "sent over the copy, nothing created"
    );
    let sent = v
        .cryptlex
        .product_calls()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap()
        .json();
    assert_eq!(
        (sent["displayName"].as_str(), sent["licenseTemplateId"].as_str()),
        (Some("New name"), Some("lt-9"))
    );
    assert_eq!(
        synced.licensing.unwrap().public_key,
        "PUBLIC-c10",
        "what the vendor assigned is read back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_service_lists_waits_cancels_and_deletes_imports() {
    let v = vendors().await;
    seed_cryptlex(&v.cryptlex, 300);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, mut operations) = clients(&server).await;

    // An import from a vendor the server does not deliver to is refused.
    let offline_dir = tempfile::tempdir().unwrap();
    let offline = Server::start(offline_dir.path());
    let refused = offline
        .client()
        .await
        .import_vendor_products(request(Vendor::Enos))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::FailedPrecondition, "VENDOR_NOT_CONFIGURED")
    );

    // A request id makes the start idempotent.
    let id = "0d6f3a52-6f55-4c1e-9d4e-2a4a51d0c001";
    let first = start_import(
        &mut client,
        ImportVendorProductsRequest {
            request_id: id.into(),
            ..request(Vendor::Cryptlex)
        },
    )
    .await;
    assert_eq!(first.name, format!("operations/{id}"));
    let retried = start_import(
        &mut client,
        ImportVendorProductsRequest {
            request_id: id.into(),
            ..request(Vendor::Cryptlex)
        },
    )
    .await;
    assert_eq!(retried.name, first.name);
    let reused = client
        .import_vendor_products(ImportVendorProductsRequest {
            request_id: id.into(),
            validate_only: true,
            ..request(Vendor::Cryptlex)
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    let waited = operations
        .wait_operation(WaitOperationRequest {
            name: first.name.clone(),
            timeout: Some(prost_types::Duration { seconds: 20, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(waited.done);
    assert_eq!(counts(&response(&waited)).1, 300);

    // A slow one is cancelled between pages; a running one cannot be deleted.
    v.cryptlex.set(|b| b.latency = Duration::from_millis(300));
    let slow = start_import(&mut client, request(Vendor::Cryptlex)).await;
    let deleting = operations
        .delete_operation(DeleteOperationRequest {
            name: slow.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (deleting.code(), reason(&deleting).as_str()),
        (Code::FailedPrecondition, "OPERATION_NOT_DONE")
    );
    operations
        .cancel_operation(CancelOperationRequest {
            name: slow.name.clone(),
        })
        .await
        .unwrap();
    let cancelled = finished(&mut operations, &slow.name).await;
    match &cancelled.result {
        Some(operation::Result::Error(error)) => assert_eq!(error.code, Code::Cancelled as i32, "{error:?}"),
        other => panic!("expected a cancelled operation, got {other:?}"),
    }
    assert!(metadata(&cancelled).cancel_requested);

    let listed = operations
        .list_operations(ListOperationsRequest {
            name: "operations".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.operations.iter().map(|o| o.name.as_str()).collect();
    assert!(
        names.contains(&first.name.as_str()) && names.contains(&slow.name.as_str()),
        "{names:?}"
    );
    let running = operations
        .list_operations(ListOperationsRequest {
            filter: "done = false".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(running.operations.is_empty(), "{:?}", running.operations);
    let bad_filter = operations
        .list_operations(ListOperationsRequest {
            filter: "vendor = 2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_filter.code(), Code::InvalidArgument);

    operations
        .delete_operation(DeleteOperationRequest {
            name: slow.name.clone(),
        })
        .await
        .unwrap();
    let gone = operations
        .get_operation(GetOperationRequest {
            name: slow.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (gone.code(), reason(&gone).as_str()),
        (Code::NotFound, "OPERATION_NOT_FOUND")
    );
    let malformed = operations
        .get_operation(GetOperationRequest {
            name: "products/x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

fn producthub(server: &Server, args: &[&str]) -> (bool, i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(args)
        .args(["--server", &server.url()])
        .output()
        .expect("run producthub");
    (
        out.status.success(),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_and_link_commands_drive_a_running_server() {
    let v = vendors().await;
    seed_cryptlex(&v.cryptlex, 150);
    v.cryptlex
        .seed(1, |_| ("c-late".into(), cryptlex_copy("c-late", "Late")));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;

    let (ok, _, plan, stderr) = producthub(&server, &["import", "--vendor", "cryptlex", "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(plan.contains("create    c0000 \"Licence 0\""), "{plan}");
    assert!(plan.contains("151 products: 151 to create, 0 to link"), "{plan}");
    assert!(all_products(&mut client).await.is_empty());

    create(&mut client, "late", named("Late")).await;
    let (ok, _, out, stderr) = producthub(
        &server,
        &[
            "import",
            "--vendor",
            "Cryptlex",
            "--map",
            "c-late=late",
            "--match-display-names",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        out.contains("151 products: 150 created, 1 linked, 0 unchanged, 0 skipped, 0 failed"),
        "{out}"
    );
    assert!(
        stderr.contains("importing the Cryptlex catalog as operations/"),
        "{stderr}"
    );
    assert_eq!(get(&mut client, "late").await.licensing.unwrap().product_id, "c-late");

    let (ok, _, out, stderr) = producthub(&server, &["unlink", "--product", "late", "--vendor", "cryptlex"]);
    assert!(ok, "{stderr}");
    assert!(out.contains("products/late no longer holds a Cryptlex copy"), "{out}");
    let (ok, _, out, stderr) = producthub(
        &server,
        &[
            "link",
            "--product",
            "products/late",
            "--vendor",
            "cryptlex",
            "--remote-id",
            "c-late",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        out.contains("products/late is linked to the Cryptlex copy c-late"),
        "{out}"
    );
    let (ok, code, _, stderr) = producthub(
        &server,
        &[
            "link",
            "--product",
            "nobody",
            "--vendor",
            "cryptlex",
            "--remote-id",
            "c-late",
        ],
    );
    assert!(!ok && code == 1, "{stderr}");
    assert!(
        stderr.contains("products/nobody does not exist [PRODUCT_NOT_FOUND]"),
        "{stderr}"
    );
    let (ok, _, _, stderr) = producthub(
        &server,
        &[
            "import", "--vendor", "cryptlex", "--map", "c1=late", "--map", "c1=other",
        ],
    );
    assert!(!ok, "a remote id mapped twice is refused");
    assert!(
        stderr.contains("--map names c1 twice, for late and for other"),
        "{stderr}"
    );
    let (ok, _, _, stderr) = producthub(&server, &["import", "--vendor", "salesforce"]);
    assert!(!ok);
    assert!(stderr.contains("expected one of: enos, cryptlex, revenium"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_answering_a_create_with_a_held_id_fails_the_delivery_once() {
    let v = vendors().await;
    // The fake names its first created product c1: the id a linked copy has.
    v.cryptlex.seed(1, |_| ("c1".into(), cryptlex_copy("c1", "Holder")));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    create(&mut client, "holder", named("Holder")).await;
    client
        .link_vendor_product(link_request("holder", "c1", LinkDirection::VendorWins))
        .await
        .unwrap();
    let mut newcomer = named("Newcomer");
    newcomer.licensing = Some(LicensingProfile {
        license_template_id: "lt-1".into(),
        ..Default::default()
    });
    create(&mut client, "newcomer", newcomer).await;
    let failed = common::wait_for(&mut client, "products/newcomer", "the delivery to fail", |p| {
        entry(p, Vendor::Cryptlex).is_some_and(|e| e.state == SyncState::Failed as i32)
    })
    .await;
    let entry = entry(&failed, Vendor::Cryptlex).unwrap();
    assert!(entry.last_error.contains("products/holder"), "{}", entry.last_error);
    assert!(entry.remote_id.is_empty(), "not a second holder");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        writes(&v.cryptlex),
        ["POST /v3/products"],
        "one create, not retried into more copies"
    );
    assert_eq!(get(&mut client, "holder").await.licensing.unwrap().product_id, "c1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letting_go_during_a_delivery_sends_the_copy_nothing_more() {
    let v = vendors().await;
    for id in ["c21", "c22"] {
        v.cryptlex.seed(1, |_| (id.to_owned(), cryptlex_copy(id, "Slow")));
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    for (id, copy) in [("unlinked", "c21"), ("deleted", "c22")] {
        create(&mut client, id, named("Slow")).await;
        client
            .link_vendor_product(link_request(id, copy, LinkDirection::VendorWins))
            .await
            .unwrap();
    }
    // Each change reaches Cryptlex slowly; it is let go of meanwhile, while
    // the worker's call is in flight.
    v.cryptlex.set(|b| b.latency = Duration::from_millis(800));
    for id in ["deleted", "unlinked"] {
        set_trial_policy(&mut client, id, "tp-slow").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if id == "deleted" {
            client
                .delete_product(DeleteProductRequest {
                    name: "products/deleted".into(),
                    keep_vendor_copies: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        } else {
            client
                .unlink_vendor_product(UnlinkVendorProductRequest {
                    name: "products/unlinked".into(),
                    vendor: Vendor::Cryptlex as i32,
                    etag: String::new(),
                })
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let unlinked = get(&mut client, "unlinked").await;
    assert_eq!(
        (unlinked.licensing.clone(), entry(&unlinked, Vendor::Cryptlex)),
        (None, None),
        "stays let go of"
    );
    let sent = writes(&v.cryptlex);
    assert!(
        sent.iter().all(|w| w.starts_with("PATCH")),
        "no delete, no create: {sent:?}"
    );
    assert_eq!(
        sent.len(),
        2,
        "each copy got the change in flight, and nothing after it: {sent:?}"
    );
    assert_eq!(v.cryptlex.catalog_len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_made_while_a_create_is_in_flight_is_kept() {
    let v = vendors().await;
    v.cryptlex.seed(1, |_| ("c30".into(), cryptlex_copy("c30", "Racing")));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &v);
    let (mut client, _) = clients(&server).await;
    v.cryptlex.set(|b| b.latency = Duration::from_millis(800));
    let mut racing = named("Racing");
    racing.licensing = Some(LicensingProfile {
        license_template_id: "lt-1".into(),
        ..Default::default()
    });
    create(&mut client, "racing", racing).await;
    // The worker's create is on its way; the existing copy is linked meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    v.cryptlex.set(|b| b.latency = Duration::ZERO);
    client
        .link_vendor_product(link_request("racing", "c30", LinkDirection::VendorWins))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kept = get(&mut client, "racing").await;
    assert_eq!(kept.licensing.clone().unwrap().product_id, "c30", "the link stands");
    assert_eq!(entry(&kept, Vendor::Cryptlex).unwrap().remote_id, "c30");
    assert_eq!(
        writes(&v.cryptlex),
        ["POST /v3/products"],
        "the create that was in flight, nothing after"
    );
}
