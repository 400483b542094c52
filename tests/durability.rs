//! Persistence across restarts and crashes, and clear start-up errors.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use producthub::pb::{CreateProductRequest, GetProductRequest, ListProductsRequest, Product, UpdateProductRequest};
use prost_types::FieldMask;

fn product(name: &str) -> Product {
    Product {
        display_name: name.into(),
        ..Default::default()
    }
}

fn create(id: &str) -> CreateProductRequest {
    CreateProductRequest {
        product: Some(product(id)),
        product_id: id.into(),
        ..Default::default()
    }
}

// Multi-threaded so the client keeps answering the server's GOAWAY while the
// test thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let created = client.create_product(create("keep")).await.unwrap().into_inner();
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let fetched = client
        .get_product(GetProductRequest {
            name: "products/keep".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);
}

/// What one writer knows about its product after its last acknowledged write.
#[derive(Debug, Clone, Default)]
struct Acked {
    /// The sequence number and etag of the last acknowledged write.
    seq: u64,
    etag: String,
    /// A write was sent but not acknowledged when the server died.
    in_flight: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    const WRITERS: usize = 8;
    const CYCLES: usize = 3;
    let mut acked: HashMap<String, Acked> = HashMap::new();

    for cycle in 0..CYCLES {
        let server = Server::start(dir.path());
        // Every acknowledged write from earlier cycles is present, exactly.
        let mut client = server.client().await;
        verify_all(&mut client, &acked).await;
        // Re-base on what is stored now (an in-flight write may have landed).
        let ids: Vec<String> = acked.keys().cloned().collect();
        for id in ids {
            let stored = client
                .get_product(GetProductRequest {
                    name: format!("products/{id}"),
                })
                .await;
            match stored {
                Ok(stored) => {
                    let stored = stored.into_inner();
                    acked.insert(
                        id,
                        Acked {
                            seq: seq_of(&stored),
                            etag: stored.etag,
                            in_flight: false,
                        },
                    );
                }
                Err(_) => {
                    acked.remove(&id);
                }
            }
        }

        let shared = Arc::new(Mutex::new(acked.clone()));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let id = format!("c{cycle}-w{w}");
            let url = server.url();
            let shared = shared.clone();
            let existing: Vec<(String, Acked)> = acked
                .iter()
                .filter(|(k, _)| k.ends_with(&format!("-w{w}")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tasks.push(tokio::spawn(async move { write_loop(url, id, existing, shared).await }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * cycle as u64)).await;
        server.kill9();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        acked = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
        let writes: u64 = acked.values().map(|a| a.seq).sum();
        assert!(writes > 0, "cycle {cycle}: no write was acknowledged before the kill");
        eprintln!("kill -9 cycle {cycle}: {writes} acknowledged writes so far, checked after restart");
    }

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    verify_all(&mut client, &acked).await;
    let listed = client
        .list_products(ListProductsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.products.len() >= acked.values().filter(|a| a.seq > 0).count());
}

/// Every acknowledged write is stored, exactly (see `verify`).
async fn verify_all(
    client: &mut producthub::pb::product_service_client::ProductServiceClient<tonic::transport::Channel>,
    acked: &HashMap<String, Acked>,
) {
    for (id, state) in acked {
        let stored = client
            .get_product(GetProductRequest {
                name: format!("products/{id}"),
            })
            .await;
        verify(id, state, stored.ok().map(|r| r.into_inner()));
    }
}

fn seq_of(product: &Product) -> u64 {
    product.labels.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn verify(id: &str, state: &Acked, stored: Option<Product>) {
    if state.seq == 0 {
        // Never acknowledged: may or may not exist, but if it does it is whole.
        if let Some(p) = stored {
            assert_eq!(p.display_name, id);
        }
        return;
    }
    let stored = stored.unwrap_or_else(|| panic!("{id}: acknowledged product is missing"));
    let seq = seq_of(&stored);
    if state.in_flight {
        assert!(
            seq == state.seq || seq == state.seq + 1,
            "{id}: stored seq {seq}, acknowledged {} (+1 in flight)",
            state.seq
        );
        if seq == state.seq {
            assert_eq!(stored.etag, state.etag, "{id}");
        }
    } else {
        assert_eq!(seq, state.seq, "{id}: acknowledged seq lost");
        assert_eq!(stored.etag, state.etag, "{id}: acknowledged etag lost");
    }
    assert_eq!(stored.description, format!("write {seq}"), "{id}: half-applied write");
}

/// Creates one product, then updates it sequentially, recording every
/// acknowledged write; also keeps updating the products this writer owned in
/// earlier cycles.
async fn write_loop(
    url: String,
    id: String,
    existing: Vec<(String, Acked)>,
    shared: Arc<Mutex<HashMap<String, Acked>>>,
) {
    let Ok(mut client) = producthub::pb::product_service_client::ProductServiceClient::connect(url).await else {
        return;
    };
    let mut owned: Vec<String> = existing.into_iter().map(|(k, _)| k).collect();
    shared.lock().unwrap().entry(id.clone()).or_default().in_flight = true;
    let mut first = create(&id);
    let p = first.product.as_mut().unwrap();
    p.display_name = id.clone();
    p.labels.insert("seq".into(), "1".into());
    p.description = "write 1".into();
    match client.create_product(first).await {
        Ok(r) => {
            let r = r.into_inner();
            shared.lock().unwrap().insert(
                id.clone(),
                Acked {
                    seq: 1,
                    etag: r.etag,
                    in_flight: false,
                },
            );
            owned.push(id.clone());
        }
        Err(_) => return,
    }
    loop {
        for target in &owned {
            let next = {
                let mut map = shared.lock().unwrap();
                let state = map.get_mut(target).unwrap();
                state.in_flight = true;
                state.seq + 1
            };
            let request = UpdateProductRequest {
                product: Some(Product {
                    name: format!("products/{target}"),
                    description: format!("write {next}"),
                    labels: [("seq".to_string(), next.to_string())].into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["description".into(), "labels.seq".into()],
                }),
                ..Default::default()
            };
            match client.update_product(request).await {
                Ok(r) => {
                    let r = r.into_inner();
                    shared.lock().unwrap().insert(
                        target.clone(),
                        Acked {
                            seq: next,
                            etag: r.etag,
                            in_flight: false,
                        },
                    );
                }
                Err(_) => return,
            }
        }
    }
}

#[test]
fn a_locked_data_dir_and_a_busy_address_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let locked = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!locked.status.success());
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert!(stderr.contains("in use by another producthub process"), "{stderr}");

    let other = tempfile::tempdir().unwrap();
    let busy = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", &server.addr, "--data-dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open data directory"), "{stderr}");
}

/// A client that never answers the server's GOAWAY (its runtime is blocked) must
/// not keep the server from exiting: after the grace period it closes anyway.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_is_bounded_by_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--shutdown-grace-secs", "1"]);
    let mut client = server.client().await;
    client.create_product(create("held")).await.unwrap();
    // Blocks this (only) runtime thread: the client's connection is not driven.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
