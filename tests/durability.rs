//! Persistence across restarts and crashes, and clear start-up errors.

mod common;

use std::process::Command;

use common::Server;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{GetProductRequest, Product};
use tonic::transport::Channel;

use common::create_named as create;

// Multi-threaded so the client keeps answering the server's GOAWAY while the
// test thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_then_stop(dir.path(), "keep").await;

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    assert_eq!(read(&mut client, "products/keep").await, created);
}

/// sled writes the snapshot of its page table only while it opens; a clean
/// shutdown has it open once more (`SledStore::checkpoint`), so the next start
/// reads a snapshot that covers every write instead of replaying the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_leaves_a_snapshot_of_every_write() {
    let dir = tempfile::tempdir().unwrap();
    // A first run, so that a snapshot exists before the writes.
    assert!(Server::start(dir.path()).terminate().success());
    let server = Server::start(dir.path());
    let at_start = snapshots(dir.path());
    assert_eq!(at_start.len(), 1, "{at_start:?}");
    let mut client = server.client().await;
    let mut created = Vec::new();
    for n in 0..20 {
        created.push(
            client
                .create_product(create(&format!("snap-{n}")))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    drop(client);
    assert!(server.terminate().success());
    let after = snapshots(dir.path());
    assert_eq!(after.len(), 1, "one snapshot, the old ones removed: {after:?}");
    assert!(
        at_start[0] < after[0],
        "the snapshot at shutdown is newer than the one at start: {at_start:?} then {after:?}"
    );
    // It reaches the log's end: opening sled again finds nothing to replay,
    // so it writes no newer snapshot.
    drop(sled::Config::new().path(dir.path().join("sled")).open().unwrap());
    assert_eq!(snapshots(dir.path()), after);

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    for product in created {
        assert_eq!(read(&mut client, &product.name).await, product);
    }
}

/// sled 0.34 reads the last `snap.` file by name, and an unfinished one (a
/// kill while it was written) sorts last: the server removes it before
/// opening sled instead of refusing the directory as corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_snapshot_from_a_kill_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_then_stop(dir.path(), "after-kill").await;
    let unfinished = dir.path().join("sled").join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"cut short").unwrap();

    let server = Server::start(dir.path());
    assert!(!unfinished.exists());
    let mut client = server.client().await;
    assert_eq!(read(&mut client, "products/after-kill").await, created);
}

/// Starts a server on `data_dir`, creates `products/{id}` and stops the
/// server with SIGTERM, asserting a clean exit; the product as created.
async fn create_then_stop(data_dir: &std::path::Path, id: &str) -> Product {
    let server = Server::start(data_dir);
    let mut client = server.client().await;
    let created = client.create_product(create(id)).await.unwrap().into_inner();
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    created
}

async fn read(client: &mut ProductServiceClient<Channel>, name: &str) -> Product {
    client
        .get_product(GetProductRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

/// sled's snapshot files, named `snap.` and their log position in hex (so
/// they sort as the positions do).
fn snapshots(data_dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("sled"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap.") && !name.ends_with(".generating"))
        .collect();
    names.sort();
    names
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

#[test]
fn a_data_directory_from_a_newer_producthub_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    drop(Server::start(dir.path()));
    {
        // As a later build would leave it: a higher schema version.
        let db = sled::open(dir.path().join("sled")).unwrap();
        db.insert(b"schema_version", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds schema version 99; this build reads versions 1 to 2"),
        "{stderr}"
    );
    assert!(stderr.contains("newer producthub"), "{stderr}");
}

/// A client that never answers the server's GOAWAY (its runtime is blocked) must
/// not keep the server from exiting: after the grace period it closes anyway.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_is_bounded_by_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = Server::start_logged(dir.path(), &["--shutdown-grace-secs", "1"]);
    let mut client = server.client().await;
    client.create_product(create("held")).await.unwrap();
    // Blocks this (only) runtime thread: the client's connection is not driven.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // The cut-off connection still held the store; stopping the runtime let
    // it go, so the checkpoint got the data directory.
    let lines: Vec<String> = lines.iter().collect();
    assert!(
        lines.iter().any(|line| line.contains("checkpointed storage")),
        "{lines:#?}"
    );
}

#[test]
fn an_unreachable_database_at_start_up_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let out = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg("postgres://app:s3cret-pw@127.0.0.1:1/catalog")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot use the database postgres://app:***@127.0.0.1:1/catalog"),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}
