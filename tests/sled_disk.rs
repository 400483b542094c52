//! The sled backend's data directory filling up, as on a full disk. Sled only
//! by nature: with PostgreSQL the data directory holds no data (the database
//! going away is tests/postgres.rs::an_unreachable_database_*), so
//! scripts/test leaves this file out of its PostgreSQL pass, and run there
//! anyway it fails rather than pass having tested nothing.

mod common;

use std::collections::HashMap;

use common::Server;
use producthub::pb::GetProductRequest;
use tonic::Code;

use common::{create_named as create, reason};

/// With the data files unable to grow (as on a full disk), writes fail with
/// UNAVAILABLE and a clear message, reads keep working, and after a restart
/// with room again every acknowledged product is there, intact.
#[tokio::test]
async fn a_full_disk_fails_writes_and_keeps_reads() {
    assert!(
        !common::on_postgres(),
        "tests/sled_disk.rs tests sled's data directory and does not apply with \
         PRODUCTHUB_TEST_BACKEND=postgres: run it without that variable (scripts/test runs it in its sled pass)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_file_size_limit(dir.path(), 4 * 1024 * 1024);
    let mut client = server.client().await;
    let mut acknowledged = HashMap::new();
    let mut refusal = None;
    for n in 0..20_000 {
        let mut request = create(&format!("p{n}"));
        request.product.as_mut().unwrap().description = "x".repeat(900);
        match client.create_product(request).await {
            Ok(created) => {
                let created = created.into_inner();
                acknowledged.insert(created.name.clone(), created);
            }
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let first = refusal.expect("the disk never filled up");
    assert!(matches!(first.code(), Code::Unavailable | Code::Internal), "{first:?}");
    // Later writes are refused at once, saying why.
    let later = client.create_product(create("later")).await.unwrap_err();
    assert_eq!(later.code(), Code::Unavailable);
    assert_eq!(reason(&later), "STORAGE_READ_ONLY");
    assert!(later.message().contains("restart"), "{later:?}");
    // Reads still work.
    let some = acknowledged.keys().next().unwrap().clone();
    client.get_product(GetProductRequest { name: some }).await.unwrap();
    eprintln!("{} products acknowledged before the disk filled", acknowledged.len());
    drop(client);
    drop(server);

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    for (name, product) in &acknowledged {
        let stored = client
            .get_product(GetProductRequest { name: name.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&stored, product);
    }
    client.create_product(create("after-restart")).await.unwrap();
}
