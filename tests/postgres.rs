//! Several producthub replicas on one PostgreSQL database: no lost update
//! across replicas, each sync item worked on by one replica at a time and
//! taken over when its replica dies, changes seen by watchers on any replica,
//! and a database that goes away and comes back.
//!
//! Needs `PRODUCTHUB_TEST_POSTGRES_URL` (scripts/test starts a PostgreSQL);
//! fails, naming it, when it is missing.

mod common;
mod fake_vendors;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, licensed, postgres_database, wait_for};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    ChangeKind, CreateProductRequest, GetProductRequest, Product, SyncState, Vendor, WatchProductsRequest,
};
use tonic::Code;
use tonic::transport::Channel;

type Client = ProductServiceClient<Channel>;

/// `count` replicas on one fresh database, each with its own (unused) data dir.
fn replicas(name: &str, count: usize, extra: &[&str]) -> (Vec<Server>, Vec<tempfile::TempDir>, String) {
    let store = postgres_database(&format!("{name}-{}", uuid::Uuid::new_v4()));
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--store", store.as_str()];
        args.extend_from_slice(extra);
        servers.push(start_on(dir.path(), &args));
        dirs.push(dir);
    }
    (servers, dirs, store)
}

/// Starts a server with exactly these arguments (the store is in them).
fn start_on(dir: &std::path::Path, args: &[&str]) -> Server {
    // `--store` given twice: the last one wins, so an explicit store here
    // overrides the one the backend switch would add.
    Server::start_with(dir, args)
}

fn counter(id: &str) -> CreateProductRequest {
    CreateProductRequest {
        product_id: id.into(),
        product: Some(Product {
            display_name: id.into(),
            labels: [("count".to_string(), "0".to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn increment(client: &mut Client, name: &str, conflicts: &AtomicU64) {
    while let Err(status) = common::increment_label(client, name, "count").await {
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_catalog_without_lost_updates() {
    let (servers, _dirs, _) = replicas("shared", 2, &[]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    a.create_product(counter("shared")).await.unwrap();
    // A create through one replica is read through the other.
    let seen = b
        .get_product(GetProductRequest {
            name: "products/shared".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.display_name, "shared");

    const CLIENTS_PER_REPLICA: u64 = 6;
    const INCREMENTS: u64 = 15;
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for server in &servers {
        for _ in 0..CLIENTS_PER_REPLICA {
            let mut client = server.client().await;
            let conflicts = conflicts.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    increment(&mut client, "products/shared", &conflicts).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = 2 * CLIENTS_PER_REPLICA * INCREMENTS;
    for client in [&mut a, &mut b] {
        let stored = client
            .get_product(GetProductRequest {
                name: "products/shared".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stored.labels["count"], total.to_string());
    }
    let conflicts = conflicts.load(Ordering::Relaxed);
    eprintln!("two replicas: {total} acknowledged increments, {conflicts} ABORTED conflicts retried, none lost");
    assert!(conflicts > 0, "the replicas did not contend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_one_replica_sees_writes_through_another() {
    let (servers, _dirs, _) = replicas("watch", 2, &[]);
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let mut stream = b
        .watch_products(WatchProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let created = a.create_product(counter("via-a")).await.unwrap().into_inner();
    let change = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("no change arrived on the other replica")
        .unwrap()
        .unwrap();
    assert_eq!(change.kind(), ChangeKind::Created);
    assert_eq!(change.product.unwrap().etag, created.etag);
}

async fn wait_synced(client: &mut Client, id: &str) -> Product {
    let name = format!("products/{id}");
    wait_for(client, &name, "delivery to Cryptlex", |product| {
        product
            .sync
            .iter()
            .any(|s| s.vendor == Vendor::Cryptlex as i32 && s.state == SyncState::Synced as i32)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_is_made_by_one_replica_and_taken_over_when_it_dies() {
    let cryptlex = fake_vendors::cryptlex().await;
    let url = cryptlex.url();
    let vendor = [
        "--cryptlex-base-url",
        url.as_str(),
        "--cryptlex-token",
        fake_vendors::CRYPTLEX_TOKEN,
        "--sync-retry-base-ms",
        "100",
        "--sync-retry-max-ms",
        "300",
        "--sync-lease-secs",
        "2",
    ];
    let (servers, _dirs, store) = replicas("leases", 2, &vendor);
    let mut a = servers[0].client().await;

    // Both replicas' workers see every product; each is created at the
    // vendor exactly once.
    const PRODUCTS: usize = 30;
    for n in 0..PRODUCTS {
        a.create_product(licensed(&format!("l{n:02}"))).await.unwrap();
    }
    for n in 0..PRODUCTS {
        wait_synced(&mut a, &format!("l{n:02}")).await;
    }
    let creates = cryptlex
        .successful_calls()
        .iter()
        .filter(|c| c.method == "POST")
        .count();
    assert_eq!(creates, PRODUCTS, "a product was created twice at the vendor");
    drop(servers);

    // One replica claims a delivery the vendor keeps refusing, and dies; the
    // other takes it over once the lease runs out.
    cryptlex.set(|b| b.down = true);
    let first_dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--store", store.as_str()];
    args.extend_from_slice(&vendor);
    let first = start_on(first_dir.path(), &args);
    let mut client = first.client().await;
    client.create_product(licensed("orphan")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let product = client
            .get_product(GetProductRequest {
                name: "products/orphan".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if product.sync.iter().any(|s| s.attempts >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the first replica never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second_dir = tempfile::tempdir().unwrap();
    let second = start_on(second_dir.path(), &args);
    drop(client);
    first.kill9();
    cryptlex.set(|b| b.down = false);
    let mut client = second.client().await;
    wait_synced(&mut client, "orphan").await;
}

/// A TCP relay to PostgreSQL that the test can cut and restore.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, list) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Relay { port, cut, connections }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_unavailable_and_recovers() {
    let store = postgres_database(&format!("relay-{}", uuid::Uuid::new_v4()));
    // postgres://user@HOST:PORT[,HOST:PORT…]/db → the relay in front of the
    // first host (the primary, when there are several).
    let (scheme_user, rest) = store.split_once('@').unwrap();
    let (hosts, database) = rest.split_once('/').unwrap();
    let primary = hosts.split(',').next().unwrap();
    let relay = Relay::start(primary.to_string()).await;
    let relayed = format!("{scheme_user}@127.0.0.1:{}/{database}", relay.port);
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), &["--store", &relayed]);
    let mut client = server.client().await;
    let created = client.create_product(counter("before")).await.unwrap().into_inner();

    relay.cut();
    let status = client
        .get_product(GetProductRequest {
            name: "products/before".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("database"), "{status:?}");
    let refused = client.create_product(counter("during")).await.unwrap_err();
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::Internal),
        "{refused:?}"
    );

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = loop {
        match client
            .get_product(GetProductRequest {
                name: "products/before".into(),
            })
            .await
        {
            Ok(product) => break product.into_inner(),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(Instant::now() < deadline, "never recovered: {status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(back, created, "nothing was damaged");
    client.create_product(counter("after")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_taken_over_when_its_replica_dies() {
    use producthub::pb::google::longrunning::operation;
    use producthub::pb::google::longrunning::operations_client::OperationsClient;
    use producthub::pb::{ImportVendorProductsRequest, ImportVendorProductsResponse};
    use prost::Message;

    const CATALOG: usize = 350;
    let cryptlex = fake_vendors::cryptlex().await;
    cryptlex.seed(CATALOG, |n| {
        let id = format!("c{n:04}");
        (id.clone(), fake_vendors::cryptlex_copy(&id, &format!("Licence {n}")))
    });
    cryptlex.set(|b| b.latency = Duration::from_millis(400));
    let url = cryptlex.url();
    let vendor = [
        "--cryptlex-base-url",
        url.as_str(),
        "--cryptlex-token",
        fake_vendors::CRYPTLEX_TOKEN,
        "--sync-lease-secs",
        "2",
    ];
    let (mut servers, _dirs, _) = replicas("import-takeover", 2, &vendor);
    let mut a = servers[0].client().await;
    let op = a
        .import_vendor_products(ImportVendorProductsRequest {
            vendor: Vendor::Cryptlex as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut on_b = OperationsClient::new(servers[1].channel().await);
    common::wait_for_pages(&mut on_b, &op.name, 1).await;
    servers.remove(0).kill9();
    cryptlex.set(|b| b.latency = Duration::from_millis(10));

    // The survivor's sweep finds it once the dead replica's lease ran out.
    let done = common::poll_operation(&mut on_b, &op.name, |op| op.done).await;
    let Some(operation::Result::Response(any)) = &done.result else {
        panic!("the import failed: {:?}", done.result);
    };
    let summary = ImportVendorProductsResponse::decode(any.value.as_slice())
        .unwrap()
        .summary
        .unwrap();
    assert_eq!((summary.seen, summary.failed), (CATALOG as i64, 0));
    assert_eq!(summary.created + summary.unchanged, CATALOG as i64);
    let mut b = servers[0].client().await;
    let mut held = std::collections::BTreeSet::new();
    for product in common::all_products(&mut b).await {
        let copy = product.licensing.as_ref().unwrap().product_id.clone();
        assert!(held.insert(copy.clone()), "{copy} imported twice");
    }
    assert_eq!(held.len(), CATALOG, "every vendor product imported once");
}

/// The database ends every session producthub has (a restart, an
/// administrator's `pg_terminate_backend`): the calls caught on a dead
/// connection fail as unavailable, and the replica carries on over new ones,
/// the connections its reads share included, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_the_database_ends_are_replaced() {
    let (servers, _dirs, store) = replicas("terminated", 1, &[]);
    let mut client = servers[0].client().await;
    let created = client.create_product(counter("kept")).await.unwrap().into_inner();
    let get = || GetProductRequest {
        name: "products/kept".into(),
    };
    // More reads than there are shared connections, so each one is open.
    for _ in 0..16 {
        client.get_product(get()).await.unwrap();
    }
    let admin = std::env::var("PRODUCTHUB_TEST_POSTGRES_URL").unwrap();
    let database = store.rsplit_once('/').unwrap().1.split('?').next().unwrap().to_string();
    let output = std::process::Command::new("psql")
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-t", "-c"])
        .arg(format!(
            // With a timeout, it waits until each session has ended.
            "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ))
        .output()
        .expect("run psql");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let ended: u32 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert!(ended >= 2, "only {ended} sessions were ended");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut in_a_row = 0;
    while in_a_row < 16 {
        match client.get_product(get()).await {
            Ok(product) => {
                assert_eq!(product.into_inner(), created, "nothing was damaged");
                in_a_row += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(Instant::now() < deadline, "never recovered: {status:?}");
                in_a_row = 0;
            }
        }
    }
    // A write sent on a pooled connection not yet seen as closed may have
    // been cut off after it reached the database: that is answered as
    // uncertain (INTERNAL), and a retry may then find the product there.
    loop {
        match client.create_product(counter("after")).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::AlreadyExists => break,
            Err(status) => {
                assert!(
                    matches!(status.code(), Code::Unavailable | Code::Internal),
                    "{status:?}"
                );
                assert!(Instant::now() < deadline, "writes never recovered: {status:?}");
            }
        }
    }
    let after = client
        .get_product(GetProductRequest {
            name: "products/after".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.display_name, "after");
}
