//! WatchProducts against the real server: order, filters, resuming after a
//! disconnection or a restart, retention, and shutdown.

mod common;

use std::time::Duration;

use common::Server;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    ChangeKind, CreateProductRequest, DeleteProductRequest, GetProductRequest, Product, ProductChange,
    UpdateProductRequest, WatchProductsRequest,
};
use prost_types::FieldMask;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;

type Client = ProductServiceClient<Channel>;

async fn create(client: &mut Client, id: &str, env: &str) -> Product {
    client
        .create_product(CreateProductRequest {
            product_id: id.into(),
            product: Some(Product {
                display_name: id.into(),
                labels: [("env".to_string(), env.to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn describe(client: &mut Client, id: &str, description: &str) -> Product {
    client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: format!("products/{id}"),
                description: description.into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["description".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn delete(client: &mut Client, id: &str) {
    client
        .delete_product(DeleteProductRequest {
            name: format!("products/{id}"),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn watch(client: &mut Client, request: WatchProductsRequest) -> Streaming<ProductChange> {
    client.watch_products(request).await.unwrap().into_inner()
}

/// The next change, failing the test if none comes within a generous bound
/// (this waits for the server; it does not measure it).
async fn next(stream: &mut Streaming<ProductChange>) -> ProductChange {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("no change arrived")
        .unwrap()
        .expect("the stream ended")
}

fn summary(change: &ProductChange) -> (ChangeKind, String, String) {
    let product = change.product.clone().unwrap_or_default();
    (change.kind(), product.name, product.etag)
}

#[tokio::test]
async fn changes_arrive_in_commit_order_and_resume_after_a_disconnection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let before = create(&mut client, "before", "dev").await;

    // From now: what was written before the call is not replayed (on sled).
    let mut stream = watch(&mut client, WatchProductsRequest::default()).await;
    let a = create(&mut client, "a", "dev").await;
    let a2 = describe(&mut client, "a", "second").await;
    delete(&mut client, "a").await;
    let b = create(&mut client, "b", "prod").await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let change = next(&mut stream).await;
        // On PostgreSQL "from now" may also replay a change committed just
        // before the call (it never misses one committed after it).
        if seen.is_empty() && summary(&change).1 == before.name {
            continue;
        }
        seen.push(change);
    }
    assert_eq!(
        seen.iter().map(summary).collect::<Vec<_>>(),
        [
            (ChangeKind::Created, a.name.clone(), a.etag.clone()),
            (ChangeKind::Updated, a.name.clone(), a2.etag.clone()),
            (ChangeKind::Deleted, a.name.clone(), a2.etag.clone()),
            (ChangeKind::Created, b.name.clone(), b.etag.clone()),
        ]
    );
    assert_eq!(seen[3].product.as_ref(), Some(&b));
    assert!(seen.iter().all(|c| c.commit_time.is_some()));

    // Disconnect; what is written meanwhile arrives on resuming, exactly once.
    drop(stream);
    let b2 = describe(&mut client, "b", "while away").await;
    let c = create(&mut client, "c", "dev").await;
    let mut resumed = watch(
        &mut client,
        WatchProductsRequest {
            resume_token: seen[3].resume_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        summary(&next(&mut resumed).await),
        (ChangeKind::Updated, b2.name, b2.etag)
    );
    assert_eq!(
        summary(&next(&mut resumed).await),
        (ChangeKind::Created, c.name, c.etag)
    );
    // And it goes on live.
    let d = create(&mut client, "d", "dev").await;
    assert_eq!(
        summary(&next(&mut resumed).await),
        (ChangeKind::Created, d.name, d.etag)
    );

    // From the oldest retained change: everything, starting with `before`.
    let mut replay = watch(
        &mut client,
        WatchProductsRequest {
            start_from_oldest: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        summary(&next(&mut replay).await),
        (ChangeKind::Created, before.name, before.etag)
    );
}

#[tokio::test]
async fn a_filter_selects_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let mut prod_only = watch(
        &mut client,
        WatchProductsRequest {
            filter: r#"labels.env = "prod""#.into(),
            ..Default::default()
        },
    )
    .await;
    create(&mut client, "dev-1", "dev").await;
    let prod = create(&mut client, "prod-1", "prod").await;
    describe(&mut client, "dev-1", "ignored").await;
    let prod2 = describe(&mut client, "prod-1", "seen").await;
    assert_eq!(summary(&next(&mut prod_only).await).2, prod.etag);
    assert_eq!(summary(&next(&mut prod_only).await).2, prod2.etag);

    let bad = client
        .watch_products(WatchProductsRequest {
            filter: "labels.env ~ nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_tokens_survive_a_restart_and_expire_with_retention() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--watch-retention", "5"]);
    let mut client = server.client().await;
    let mut stream = watch(&mut client, WatchProductsRequest::default()).await;
    create(&mut client, "first", "dev").await;
    let first = next(&mut stream).await;
    drop(stream);
    let second = create(&mut client, "second", "dev").await;
    drop(client);
    assert!(server.terminate().success());

    // After a restart the log is still there: resume where we left off.
    let server = Server::start_with(dir.path(), &["--watch-retention", "5"]);
    let mut client = server.client().await;
    let resume = WatchProductsRequest {
        resume_token: first.resume_token.clone(),
        ..Default::default()
    };
    let mut resumed = watch(&mut client, resume.clone()).await;
    assert_eq!(summary(&next(&mut resumed).await).2, second.etag);
    drop(resumed);

    // Twenty more writes; once trimmed to five, the old token is refused.
    for n in 0..20 {
        describe(&mut client, "second", &format!("write {n}")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let expired = loop {
        match client.watch_products(resume.clone()).await {
            Err(status) => break status,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "the log was never trimmed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(expired.code(), Code::FailedPrecondition, "{expired:?}");
    assert_eq!(
        expired.get_details_error_info().map(|i| i.reason).as_deref(),
        Some("RESUME_TOKEN_EXPIRED")
    );

    // A token from another store, or none of ours, is INVALID_ARGUMENT.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start(other_dir.path());
    let mut other_client = other.client().await;
    let foreign = other_client
        .watch_products(WatchProductsRequest {
            resume_token: first.resume_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);
    assert!(
        foreign.message().contains("another producthub change log"),
        "{foreign:?}"
    );
    let garbage = other_client
        .watch_products(WatchProductsRequest {
            resume_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_watch_streams_with_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let mut stream = watch(&mut client, WatchProductsRequest::default()).await;
    let waiting = tokio::spawn(async move { stream.message().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let terminated = tokio::task::spawn_blocking(move || server.terminate());
    // The server ends the stream with its status before it exits. Bounded, so
    // a stream left open fails the test instead of hanging it.
    let ended = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the watch stream did not end within 20 s of SIGTERM")
        .unwrap();
    match ended {
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            // Sent by the server, not made up by the client from a broken
            // connection.
            assert_eq!(
                status.get_details_error_info().map(|i| i.reason).as_deref(),
                Some("SHUTTING_DOWN"),
                "{status:?}"
            );
        }
        Ok(None) => panic!("the watch stream ended with OK at shutdown, not UNAVAILABLE"),
        Ok(Some(change)) => panic!("unexpected change {change:?}"),
    }
    let status = tokio::time::timeout(Duration::from_secs(30), terminated)
        .await
        .expect("the server did not exit within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// With retention 0 there is no change log: watching is refused, and a token
/// from before cannot resume once the log is back (it would miss changes).
/// Replicas sharing PostgreSQL share one log, so there it is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_change_log_refuses_to_watch() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(store) = common::backend_store(dir.path()) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_producthub"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--watch-retention",
                "0",
                "--store",
                &store,
            ])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("sled backend only"));
        return;
    }
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let mut stream = watch(&mut client, WatchProductsRequest::default()).await;
    create(&mut client, "logged", "dev").await;
    let token = next(&mut stream).await.resume_token;
    drop((stream, client));
    assert!(server.terminate().success());

    let server = Server::start_with(dir.path(), &["--watch-retention", "0"]);
    let mut client = server.client().await;
    create(&mut client, "unlogged", "dev").await;
    let refused = client
        .watch_products(WatchProductsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason).as_deref(),
        Some("CHANGE_FEED_DISABLED")
    );
    drop(client);
    assert!(server.terminate().success());

    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let stale = client
        .watch_products(WatchProductsRequest {
            resume_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::InvalidArgument, "{stale:?}");
}

/// Open streams are bounded by `--max-watch-streams`, not by the in-flight
/// limit: past it a new stream is refused with RESOURCE_EXHAUSTED, and a
/// stream that closes frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_limited_and_a_closed_one_frees_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-watch-streams", "2", "--max-in-flight", "1"]);
    let mut client = server.client().await;
    let first = watch(&mut client, WatchProductsRequest::default()).await;
    let _second = watch(&mut client, WatchProductsRequest::default()).await;
    let refused = client
        .watch_products(WatchProductsRequest::default())
        .await
        .expect_err("a third stream is over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason).as_deref(),
        Some("TOO_MANY_WATCH_STREAMS")
    );
    assert!(
        refused.get_details_retry_info().is_some(),
        "a retry delay comes with it"
    );
    // Two open streams do not hold the in-flight limit of 1: unary calls go on.
    create(&mut client, "still-served", "dev").await;
    drop(first);
    // The place is free once the server has seen the stream reset and its
    // feeder has stopped (bounded wait; it does not measure how soon).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match client.watch_products(WatchProductsRequest::default()).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the closed stream's place was not freed: {status:?}"),
        }
    }
}

/// One connection may hold only `--max-streams-per-connection` calls at once
/// (HTTP/2's own limit, so the client queues the rest): a single client
/// cannot take every watch stream the server allows, and other connections
/// are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_holds_at_most_its_share_of_streams() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-streams-per-connection", "2"]);
    let channel = server.channel().await;
    let mut greedy = ProductServiceClient::new(channel.clone());
    let _first = watch(&mut greedy, WatchProductsRequest::default()).await;
    let _second = watch(&mut greedy, WatchProductsRequest::default()).await;
    // A third call on that connection waits for a stream to close...
    let mut same = ProductServiceClient::new(channel);
    let queued = tokio::time::timeout(
        Duration::from_millis(500),
        same.get_product(GetProductRequest {
            name: "products/none".into(),
        }),
    )
    .await;
    assert!(queued.is_err(), "a third stream opened on the connection: {queued:?}");
    // ...while another connection is served at once.
    let mut other = server.client().await;
    let answered = other
        .get_product(GetProductRequest {
            name: "products/none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(answered.code(), Code::NotFound);
}
