//! The per-call log line, in JSON when asked.

mod common;

use std::time::Duration;

use common::Server;
use producthub::pb::GetProductRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_call_with_method_status_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = Server::start_logged(dir.path(), &["--log-format", "json"]);
    let mut client = server.client().await;
    let _ = client
        .get_product(GetProductRequest {
            name: "products/missing".into(),
        })
        .await;

    let call = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a log line for the call");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["target"] == "producthub::call" {
            break value;
        }
    };
    let fields = &call["fields"];
    assert_eq!(fields["method"], "/producthub.v1.ProductService/GetProduct");
    assert_eq!(fields["status"], "NotFound");
    assert!(fields["latency_ms"].as_f64().is_some(), "{call}");
}
