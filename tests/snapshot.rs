//! Backups and moves between backends: `producthub export` and
//! `producthub import-snapshot`, round trip sled → file → PostgreSQL → file →
//! sled with byte-identical snapshots, and the products served from the new
//! store equal to the old ones, sync state and remote ids included. Needs
//! PostgreSQL (`scripts/test` starts one; PRODUCTHUB_TEST_POSTGRES_URL) and
//! fails, never skips, without it.

mod common;
mod fake_vendors;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Server, everywhere, wait_for};
use fake_vendors::{vendor_args, vendors};
use producthub::pb::{GetProductRequest, Product, SyncState};

fn producthub(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run producthub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = producthub(args);
    assert!(success, "producthub {args:?} failed:\n{stderr}");
    stdout
}

/// A server on exactly this store (sled `dir`, or PostgreSQL `url`).
fn serve_on(dir: &Path, url: Option<&str>, extra: &[String]) -> Server {
    let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
    if let Some(url) = url {
        args.extend(["--store", url]);
    }
    Server::start_with(dir, &args)
}

async fn read_all(server: &Server, names: &[&str]) -> Vec<Product> {
    let mut client = server.client().await;
    let mut out = Vec::new();
    for name in names {
        let product = client
            .get_product(GetProductRequest { name: (*name).into() })
            .await
            .unwrap()
            .into_inner();
        out.push(product);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_moves_from_sled_to_postgres_and_back_unchanged() {
    let v = vendors().await;
    let args = vendor_args(&v);
    let work = tempfile::tempdir().unwrap();
    let sled_dir = work.path().join("sled");
    let names = ["products/everywhere", "products/plain", "products/labelled"];
    // A catalog with copies at every vendor (remote ids, fingerprints,
    // SYNCED entries) beside products with none. (The suite runs this file
    // once, on sled, with PostgreSQL at hand: see scripts/test.)
    let (running, before) = {
        let server = serve_on(&sled_dir, None, &args);
        let mut client = server.client().await;
        common::create(&mut client, "everywhere", everywhere()).await;
        wait_for(&mut client, "products/everywhere", "the copies", |p| {
            p.sync.len() == 3 && p.sync.iter().all(|s| s.state == SyncState::Synced as i32)
        })
        .await;
        common::create(
            &mut client,
            "plain",
            Product {
                display_name: "Plain".into(),
                ..Default::default()
            },
        )
        .await;
        let mut labelled = Product {
            display_name: "Labelled".into(),
            ..Default::default()
        };
        labelled.labels.insert("team".into(), "iot".into());
        labelled.labels.insert("env".into(), "prod".into());
        common::create(&mut client, "labelled", labelled).await;
        let before = read_all(&server, &names).await;
        // A running server's catalog, through its API, holds the same lines.
        let running = ok(&["export", "--running", "--server", &server.url()]);
        server.terminate();
        (running, before)
    };

    let sled_dir_text = sled_dir.to_str().unwrap();
    let from_sled = ok(&["export", "--data-dir", sled_dir_text]);
    assert_eq!(from_sled.lines().count(), 3, "{from_sled}");
    assert_eq!(running, from_sled, "a running server exports what its store holds");
    let file = work.path().join("catalog.jsonl");
    std::fs::write(&file, &from_sled).unwrap();

    let url = common::postgres_database(&format!("snapshot {}", work.path().display()));
    let file_text = file.to_str().unwrap();
    let loaded = producthub(&["import-snapshot", "--store", &url, "--input", file_text]);
    assert!(loaded.0, "{}", loaded.2);
    assert!(loaded.2.contains("imported 3 products"), "{}", loaded.2);
    let from_postgres = ok(&["export", "--store", &url]);
    assert_eq!(from_postgres, from_sled, "byte-identical through PostgreSQL");

    // Served from PostgreSQL, the products are the ones sled held.
    let pg_dir = tempfile::tempdir().unwrap();
    let on_postgres = serve_on(pg_dir.path(), Some(&url), &[]);
    let served: Vec<Product> = read_all(&on_postgres, &names).await;
    assert_eq!(served, before, "the products, sync state and remote ids included");
    drop(on_postgres);

    // An export reads only a producthub database, and creates nothing in it.
    let empty = common::postgres_database(&format!("snapshot empty {}", work.path().display()));
    let (success, _, said) = producthub(&["export", "--store", &empty]);
    assert!(!success);
    assert!(said.contains("holds no producthub schema"), "{said}");

    // A store that holds products is refused, and keeps them.
    let refused = producthub(&["import-snapshot", "--store", &url, "--input", file_text]);
    assert!(!refused.0);
    assert!(refused.2.contains("only into an empty store"), "{}", refused.2);

    // And back to a fresh sled directory.
    let back = work.path().join("sled-again");
    let back_text = back.to_str().unwrap();
    std::fs::write(&file, &from_postgres).unwrap();
    ok(&["import-snapshot", "--data-dir", back_text, "--input", file_text]);
    assert_eq!(ok(&["export", "--data-dir", back_text]), from_sled);
}

#[test]
fn snapshot_mistakes_are_explained() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("no-such-dir");
    let (success, _, said) = producthub(&["export", "--data-dir", missing.to_str().unwrap()]);
    assert!(!success);
    assert!(said.contains("is not a producthub data directory"), "{said}");
    assert!(!missing.exists(), "an export creates nothing");

    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"name\": \"products/a\", \"displayName\": \"A\"}\nnot json\n").unwrap();
    let target = work.path().join("target");
    let (success, _, said) = producthub(&[
        "import-snapshot",
        "--data-dir",
        target.to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert!(!success);
    assert!(said.contains("line 2"), "{said}");
    let (success, _, said) = producthub(&["export"]);
    assert!(!success);
    assert!(said.contains("--data-dir DIR (sled) or --store postgres://"), "{said}");

    // A failed export leaves the last backup as it was.
    let running = tempfile::tempdir().unwrap();
    let server = Server::start(running.path());
    let backup = work.path().join("backup.jsonl");
    std::fs::write(&backup, "yesterday\n").unwrap();
    let (success, _, said) = producthub(&[
        "export",
        "--data-dir",
        running.path().to_str().unwrap(),
        "--output",
        backup.to_str().unwrap(),
    ]);
    assert!(!success);
    assert!(said.contains("in use"), "{said}");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "yesterday\n");
    drop(server);
}
