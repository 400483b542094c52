//! The Prometheus endpoint, scraped like Prometheus would.

mod common;
mod fake_vendors;

use std::time::{Duration, Instant};

use common::Server;
use producthub::pb::google::longrunning::operations_client::OperationsClient;
use producthub::pb::{GetProductRequest, ImportVendorProductsRequest, Vendor};

async fn scrape(server: &Server) -> String {
    let url = server
        .metrics_url
        .clone()
        .expect("the server reported its metrics address");
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_store_and_sync_are_measured() {
    let cryptlex = fake_vendors::cryptlex().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--cryptlex-base-url",
            &cryptlex.url(),
            "--cryptlex-token",
            fake_vendors::CRYPTLEX_TOKEN,
        ],
    );
    let mut client = server.client().await;
    client.create_product(common::licensed("licensed")).await.unwrap();
    for _ in 0..2 {
        let missing = client
            .get_product(GetProductRequest {
                name: "products/missing".into(),
            })
            .await;
        assert!(missing.is_err());
    }

    // The delivery is counted once the worker has made it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&server).await;
        if sample(
            &text,
            r#"producthub_sync_deliveries_total{vendor="cryptlex",outcome="delivered"}"#,
        ) == Some(1.0)
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no delivery counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let create = r#"method="/producthub.v1.ProductService/CreateProduct""#;
    let get = r#"method="/producthub.v1.ProductService/GetProduct""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"producthub_rpc_requests_total{{{create},code="OK"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"producthub_rpc_requests_total{{{get},code="NOT_FOUND"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &format!("producthub_rpc_duration_seconds_count{{{get}}}")),
        Some(2.0)
    );
    assert!(text.contains(&format!(
        r#"producthub_rpc_duration_seconds_bucket{{{get},le="0.005"}}"#
    )));
    assert!(text.contains("# HELP producthub_rpc_requests_total"));
    assert!(sample(&text, "producthub_store_disk_bytes").unwrap() > 0.0);
    // The create and the worker's record of the delivery.
    assert!(sample(&text, "producthub_change_log_newest").unwrap() >= 2.0);
    assert!(sample(&text, "producthub_sync_outbox_depth").is_some());
    assert_eq!(sample(&text, "producthub_sync_tombstones"), Some(0.0));

    // An import counts each vendor product by what happened to it: the
    // delivered product is held already, the two others are created.
    cryptlex.seed(2, |n| {
        let id = format!("seeded-{n}");
        (id.clone(), fake_vendors::cryptlex_copy(&id, &format!("Seeded {n}")))
    });
    let op = client
        .import_vendor_products(ImportVendorProductsRequest {
            vendor: Vendor::Cryptlex as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut operations = OperationsClient::new(server.channel().await);
    common::poll_operation(&mut operations, &op.name, |op| op.done).await;
    let text = scrape(&server).await;
    let counted = |action: &str| {
        sample(
            &text,
            &format!(r#"producthub_import_products_total{{vendor="cryptlex",action="{action}"}}"#),
        )
    };
    assert_eq!(
        (counted("created"), counted("unchanged")),
        (Some(2.0), Some(1.0)),
        "{text}"
    );

    // Products by sync state: the delivered one and the two imported are
    // SYNCED at Cryptlex (counted within one counting period).
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = r#"producthub_products_by_sync_state{vendor="cryptlex",state="synced"}"#;
    loop {
        let text = scrape(&server).await;
        if sample(&text, series) == Some(3.0) {
            assert_eq!(
                sample(
                    &text,
                    r#"producthub_products_by_sync_state{vendor="cryptlex",state="failed"}"#
                ),
                Some(0.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
