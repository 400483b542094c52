//! The HTTP/JSON side (AIP-127 transcoding) of the real binary, through a real
//! HTTP client: the JSON mapping both ways (a product written over REST reads
//! back identically over gRPC, and the other way round), AIP-193 errors,
//! streaming WatchProducts as newline-delimited JSON, and the same door as
//! gRPC (bearer tokens and scopes, the in-flight limit, the size limit,
//! deadlines).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::Server;
use producthub::pb::{CreateProductRequest, GetProductRequest, IotProfile, Product};
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

/// reqwest is built without its `json` feature: JSON answers by hand.
trait JsonAnswer {
    async fn json_value(self) -> Value;
}

impl JsonAnswer for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// reqwest is built without its `json` feature: a JSON body by hand.
trait JsonBody {
    fn json_value(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_value(self, body: &Value) -> Self {
        self.header("content-type", "application/json").body(body.to_string())
    }
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(producthub::pb::FILE_DESCRIPTOR_SET).unwrap()
}

/// A product as proto3 JSON, written by prost-reflect (not by the server).
fn to_json(product: &Product) -> Value {
    let descriptor = pool().get_message_by_name("producthub.v1.Product").unwrap();
    let message = DynamicMessage::decode(descriptor, product.encode_to_vec().as_slice()).unwrap();
    serde_json::to_value(&message).unwrap()
}

fn from_json(value: &Value) -> Product {
    let descriptor = pool().get_message_by_name("producthub.v1.Product").unwrap();
    let message = DynamicMessage::deserialize(descriptor, value).unwrap();
    Product::decode(message.encode_to_vec().as_slice()).unwrap()
}

/// What a caller wrote, without what the server sets.
fn as_written(mut product: Product) -> Product {
    product.name.clear();
    product.uid.clear();
    product.etag.clear();
    product.create_time = None;
    product.update_time = None;
    product.sync.clear();
    product
}

fn error_of(body: &Value) -> (&str, &str) {
    let error = &body["error"];
    let reason = error["details"]
        .as_array()
        .and_then(|details| {
            details
                .iter()
                .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        })
        .and_then(|info| info["reason"].as_str())
        .unwrap_or("");
    (error["status"].as_str().unwrap_or(""), reason)
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

fn products() -> impl Strategy<Value = Product> {
    let word = "[a-z][a-z0-9_-]{0,8}";
    (
        "[\\p{L}\\p{N}]{1,20}( [\\p{L}\\p{N}]{1,10}){0,2}",
        proptest::option::of("[\\p{L}\\p{N} .,!?]{0,60}"),
        proptest::collection::btree_map(word, "[a-z0-9_-]{0,10}", 0..4),
        proptest::collection::btree_map("(zh_CN|de_DE|fr_FR|ja_JP)", "[\\p{L}]{1,12}", 0..3),
        proptest::option::of((
            "[a-z][a-z0-9_]{0,12}",
            1..=2i32,
            1..=2i32,
            any::<bool>(),
            proptest::option::of(1..365i32),
            proptest::collection::btree_map(word, "[a-z0-9]{1,8}", 0..3),
            proptest::collection::btree_map(
                "x_[a-z]{1,6}",
                prop_oneof![
                    any::<bool>().prop_map(|b| json!(b)),
                    (-1_000_000i64..1_000_000).prop_map(|n| json!(n)),
                    (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
                    "[\\p{L}\\p{N} ]{0,12}".prop_map(|s| json!(s)),
                    proptest::collection::vec("[a-z]{1,4}", 0..3).prop_map(|v| json!(v)),
                ],
                0..3,
            ),
        )),
    )
        .prop_map(|(display_name, description, labels, names, iot)| {
            let mut product = Product {
                display_name,
                description: description.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                localized_display_names: names.into_iter().collect(),
                ..Default::default()
            };
            if let Some((model_id, product_type, data_format, auth, days, tags, vendor_fields)) = iot {
                let mut profile = json!({
                    "modelId": model_id,
                    "productType": product_type,
                    "dataFormat": data_format,
                    "bidirectionalAuth": auth,
                    "tags": tags,
                    "vendorFields": vendor_fields,
                });
                if let Some(days) = days {
                    profile["defaultValidDays"] = json!(days);
                }
                let descriptor = pool().get_message_by_name("producthub.v1.IotProfile").unwrap();
                let message = DynamicMessage::deserialize(descriptor, profile).unwrap();
                product.iot = Some(IotProfile::decode(message.encode_to_vec().as_slice()).unwrap());
            }
            product
        })
}

/// The JSON mapping both ways: whatever is written over one side reads back
/// the same over the other, and what one side refuses the other refuses alike.
#[test]
fn products_round_trip_between_rest_and_grpc() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let http = reqwest::Client::new();
    let grpc = runtime.block_on(server.client());
    let counter = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&products(), |product| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let mut grpc = grpc.clone();
            runtime.block_on(async {
                let (rest_id, grpc_id) = (format!("rest-{n}"), format!("grpc-{n}"));
                let (status, body) = send(
                    http.post(format!("{base}/v1/products?productId={rest_id}"))
                        .json_value(&to_json(&product)),
                )
                .await;
                let over_grpc = grpc
                    .create_product(CreateProductRequest {
                        product_id: grpc_id.clone(),
                        product: Some(product.clone()),
                        ..Default::default()
                    })
                    .await;
                match over_grpc {
                    Err(refused) => {
                        assert_ne!(status, 200, "REST took what gRPC refused ({refused:?}): {body}");
                        assert_eq!(error_of(&body).0, common_code_name(refused.code()), "{body}");
                    }
                    Ok(created) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(status, 200, "REST refused what gRPC took: {body}");
                        // Written over REST, read over gRPC.
                        let read = grpc
                            .get_product(GetProductRequest {
                                name: format!("products/{rest_id}"),
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        assert_eq!(as_written(read.clone()), as_written(created.into_inner()));
                        assert_eq!(from_json(&body), read, "the create's answer is the stored product");
                        // Written over gRPC, read over REST.
                        let grpc_read = grpc
                            .get_product(GetProductRequest {
                                name: format!("products/{grpc_id}"),
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        let (status, body) = send(http.get(format!("{base}/v1/products/{grpc_id}"))).await;
                        assert_eq!(status, 200, "{body}");
                        assert_eq!(from_json(&body), grpc_read);
                    }
                }
            });
            Ok(())
        })
        .unwrap();
    // The generator makes mostly valid products: the property is about them.
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted >= 24, "only {accepted} of 48 products were valid");
}

fn common_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        other => panic!("unexpected refusal {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_aip_193_bodies_with_the_grpc_details() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-message-bytes", "65536"]);
    let base = server.url();
    let http = reqwest::Client::new();

    let (status, body) = send(http.get(format!("{base}/v1/products/missing"))).await;
    assert_eq!(
        (status, error_of(&body)),
        (404, ("NOT_FOUND", "PRODUCT_NOT_FOUND")),
        "{body}"
    );
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("products/missing"));

    // A body field the schema lacks: named in a BadRequest.
    let (status, body) = send(
        http.post(format!("{base}/v1/products"))
            .json_value(&json!({"displayName": "x", "colour": "red"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let violations = &body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap()["fieldViolations"];
    assert_eq!(violations[0]["field"], "product.colour", "{body}");

    // The proto field names are accepted as well as the JSON names.
    let (status, body) = send(
        http.post(format!("{base}/v1/products?product_id=snake"))
            .json_value(&json!({"display_name": "Snake", "localized_display_names": {"de_DE": "Schlange"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["localizedDisplayNames"]["de_DE"], "Schlange");

    // A query parameter that names no field, a value of the wrong type, a
    // body on a method that takes none.
    for (request, field) in [
        (http.get(format!("{base}/v1/products?colour=red")), "colour"),
        (http.get(format!("{base}/v1/products?pageSize=ten")), "pageSize"),
        (http.get(format!("{base}/v1/products/snake")).body("{\"x\": 1}"), ""),
    ] {
        let (status, body) = send(request).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_of(&body).0, "INVALID_ARGUMENT");
        let bad = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .unwrap();
        // An empty string is a default value, left out of the JSON.
        assert_eq!(
            bad["fieldViolations"][0]["field"].as_str().unwrap_or(""),
            field,
            "{body}"
        );
    }

    // Not JSON at all.
    let (status, body) = send(
        http.post(format!("{base}/v1/products"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"), "{body}");

    // An unknown path, and a known one with another method.
    let (status, body) = send(http.get(format!("{base}/v2/products"))).await;
    assert_eq!((status, error_of(&body).0), (404, "NOT_FOUND"), "{body}");
    let response = http.put(format!("{base}/v1/products/snake")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, PATCH, DELETE");
    let body: Value = response.json_value().await;
    assert_eq!(body["error"]["code"], 405, "{body}");

    // Over the size limit: 413, with the same ErrorInfo as gRPC's refusal.
    let big = "x".repeat(70_000);
    let (status, body) = send(
        http.post(format!("{base}/v1/products"))
            .json_value(&json!({"displayName": "big", "description": big})),
    )
    .await;
    assert_eq!(
        (status, error_of(&body)),
        (413, ("RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE")),
        "{body}"
    );

    // A deadline that is not a number.
    let (status, body) = send(
        http.get(format!("{base}/v1/products"))
            .header("x-server-timeout", "soon"),
    )
    .await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"), "{body}");
    // A deadline that is: the call fits in it.
    let (status, body) = send(http.get(format!("{base}/v1/products")).header("x-server-timeout", "5")).await;
    assert_eq!(status, 200, "{body}");

    // The document the errors point to is served.
    let (status, body) = send(http.get(format!("{base}/v1/openapi.json"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.0.3");
    assert!(body["paths"]["/v1/products/{product}"]["patch"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_follow_the_mask_and_the_etag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let http = reqwest::Client::new();
    let (_, created) = send(
        http.post(format!("{base}/v1/products?productId=lamp"))
            .json_value(&json!({"displayName": "Lamp", "description": "old", "labels": {"a": "1", "b": "2"}})),
    )
    .await;
    let etag = created["etag"].as_str().unwrap().to_string();
    // Only the masked field changes, whatever else the body holds.
    let (status, updated) = send(
        http.patch(format!("{base}/v1/products/lamp?updateMask=labels.a"))
            .json_value(&json!({"displayName": "ignored", "labels": {"a": "9"}, "etag": etag})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["displayName"], "Lamp");
    assert_eq!(updated["labels"], json!({"a": "9", "b": "2"}));
    assert_eq!(updated["description"], "old");
    // The etag it was read with is stale now.
    let (status, body) = send(
        http.patch(format!("{base}/v1/products/lamp?updateMask=description"))
            .json_value(&json!({"description": "new", "etag": etag})),
    )
    .await;
    assert_eq!((status, error_of(&body)), (409, ("ABORTED", "ETAG_MISMATCH")), "{body}");
    // The path names the product, whatever the body says.
    let (status, body) = send(
        http.patch(format!("{base}/v1/products/lamp?updateMask=description"))
            .json_value(&json!({"name": "products/other", "description": "new"})),
    )
    .await;
    assert_eq!((status, body["name"].clone()), (200, json!("products/lamp")), "{body}");
    // Delete with keepVendorCopies as a query parameter, then it is gone.
    let (status, body) = send(http.delete(format!("{base}/v1/products/lamp?keepVendorCopies=true"))).await;
    assert_eq!((status, body), (200, json!({})));
    let (status, _) = send(http.get(format!("{base}/v1/products/lamp"))).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_newline_delimited_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let http = reqwest::Client::new();
    let mut response = http
        .get(format!(
            "{base}/v1/products:watch?filter=labels.room%20%3D%20%22hall%22"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    for (id, room) in [("a", "kitchen"), ("b", "hall")] {
        let (status, body) = send(
            http.post(format!("{base}/v1/products?productId={id}"))
                .json_value(&json!({"displayName": id, "labels": {"room": room}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut buffered = Vec::new();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(end) = buffered.iter().position(|b| *b == b'\n') {
                return String::from_utf8(buffered[..end].to_vec()).unwrap();
            }
            let chunk = response.chunk().await.unwrap().expect("the stream goes on");
            buffered.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("a change arrives");
    let change: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(change["kind"], "CHANGE_KIND_CREATED");
    assert_eq!(change["product"]["name"], "products/b", "the filter holds");
    assert!(change["resumeToken"].is_string());

    // A bad filter fails before the stream begins: a plain error answer.
    let (status, body) = send(http.get(format!("{base}/v1/products:watch?filter=%3D%3D"))).await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"), "{body}");
}

const WRITER: &str = "writer-5b0e6c1d9a7f4e32";
const READER: &str = "reader-2d4f8a6c1e3b5a79";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_scopes_guard_rest_as_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("read-write {WRITER}\nread-only {READER}\n")).unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--tokens-file", tokens.to_str().unwrap()]);
    let base = server.url();
    let http = reqwest::Client::new();
    let create = || {
        http.post(format!("{base}/v1/products?productId=guarded"))
            .json_value(&json!({"displayName": "Guarded"}))
    };
    let (status, body) = send(create()).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, ("UNAUTHENTICATED", "CREDENTIALS_MISSING")),
        "{body}"
    );
    let (status, body) = send(create().bearer_auth("not-a-token-we-know")).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, ("UNAUTHENTICATED", "CREDENTIALS_INVALID")),
        "{body}"
    );
    let (status, body) = send(create().bearer_auth(READER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (403, ("PERMISSION_DENIED", "SCOPE_INSUFFICIENT")),
        "{body}"
    );
    let (status, body) = send(create().bearer_auth(WRITER)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(http.get(format!("{base}/v1/products/guarded")).bearer_auth(READER)).await;
    assert_eq!((status, body["displayName"].clone()), (200, json!("Guarded")));
    // The OpenAPI document needs what reflection needs: a token, unless
    // the server runs with --open-probes.
    let (status, body) = send(http.get(format!("{base}/v1/openapi.json"))).await;
    assert_eq!((status, error_of(&body).0), (401, "UNAUTHENTICATED"), "{body}");
    let (status, _) = send(http.get(format!("{base}/v1/openapi.json")).bearer_auth(READER)).await;
    assert_eq!(status, 200);
}

/// The in-flight limit sheds REST calls as it sheds gRPC ones: 503 with
/// OVERLOADED and a retry delay, never a queue into a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_over_rest_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-in-flight", "2"]);
    let base = Arc::new(server.url());
    let http = reqwest::Client::new();
    let (ok, shed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut calls = Vec::new();
    for n in 0..300 {
        let (http, base, ok, shed) = (http.clone(), base.clone(), ok.clone(), shed.clone());
        calls.push(tokio::spawn(async move {
            let (status, body) = send(
                http.post(format!("{base}/v1/products?productId=flood-{n}"))
                    .json_value(&json!({"displayName": "Flood"})),
            )
            .await;
            match status {
                200 => ok.fetch_add(1, Ordering::Relaxed),
                _ => {
                    assert_eq!(
                        (status, error_of(&body)),
                        (503, ("UNAVAILABLE", "OVERLOADED")),
                        "{body}"
                    );
                    let retry = body["error"]["details"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo");
                    assert!(retry, "a retry delay is suggested: {body}");
                    shed.fetch_add(1, Ordering::Relaxed)
                }
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let (ok, shed) = (ok.load(Ordering::Relaxed), shed.load(Ordering::Relaxed));
    eprintln!("REST flood: {ok} admitted, {shed} shed");
    assert_eq!(ok + shed, 300);
    assert!(ok > 0 && shed > 0, "{ok} admitted, {shed} shed");
}

/// A REST call is logged as the gRPC call it became, saying it came as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_calls_get_the_same_call_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (server, lines) = Server::start_logged(dir.path(), &["--log-format", "json"]);
    let (status, _) = send(reqwest::Client::new().get(format!("{}/v1/products/missing", server.url()))).await;
    assert_eq!(status, 404);
    let call = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a log line for the call");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["target"] == "producthub::call" {
            break value;
        }
    };
    let fields = &call["fields"];
    assert_eq!(fields["method"], "/producthub.v1.ProductService/GetProduct");
    assert_eq!(fields["status"], "NOT_FOUND");
    assert_eq!(fields["protocol"], "http-json");
    assert!(
        fields["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{call}"
    );

    // Refused before it became a gRPC call (a body that is not JSON): the
    // same line, under the method it was for.
    let (status, _) = send(
        reqwest::Client::new()
            .post(format!("{}/v1/products", server.url()))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    let refused = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a log line for the refused call");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["target"] == "producthub::call" {
            break value;
        }
    };
    let fields = &refused["fields"];
    assert_eq!(
        fields["method"], "/producthub.v1.ProductService/CreateProduct",
        "{refused}"
    );
    assert_eq!(fields["status"], "INVALID_ARGUMENT");
    assert_eq!(fields["protocol"], "http-json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_json_and_masks_may_name_map_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let http = reqwest::Client::new();
    // A browser's cross-site "simple" request (text/plain, or a form) is refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, body) = send(
            http.post(format!("{base}/v1/products?productId=forged"))
                .header("content-type", content_type)
                .body("{\"displayName\": \"Forged\"}"),
        )
        .await;
        assert_eq!(
            (status, error_of(&body)),
            (400, ("INVALID_ARGUMENT", "BAD_HTTP_HEADER")),
            "{body}"
        );
    }
    let (status, _) = send(http.get(format!("{base}/v1/products/forged"))).await;
    assert_eq!(status, 404, "nothing was written");

    let (status, body) = send(
        http.post(format!("{base}/v1/products?productId=keys"))
            .json_value(&json!({"displayName": "Keys", "labels": {"my_key": "a", "other": "b"},
                                "localizedDisplayNames": {"de_DE": "Schlüssel"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Map keys with `_` or capitals, which the JSON form of a FieldMask cannot spell.
    let (status, body) = send(
        http.patch(format!(
            "{base}/v1/products/keys?updateMask=labels.my_key,localizedDisplayNames.de_DE"
        ))
        .json_value(&json!({"labels": {"my_key": "z", "other": "ignored"},
                                "localizedDisplayNames": {"de_DE": "Neu"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"], json!({"my_key": "z", "other": "b"}));
    assert_eq!(body["localizedDisplayNames"]["de_DE"], "Neu");
    // A field the path already gives cannot come from the query too.
    let (status, body) = send(http.get(format!("{base}/v1/products/keys?name=products/other"))).await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"), "{body}");
    // gRPC's deadline header is refused: X-Server-Timeout is the REST form.
    let (status, body) = send(
        http.get(format!("{base}/v1/products/keys"))
            .header("grpc-timeout", "1S"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body)),
        (400, ("INVALID_ARGUMENT", "BAD_HTTP_HEADER")),
        "{body}"
    );
}

/// A client that stops in the middle of its body holds its place no longer
/// than its deadline: 504 DEADLINE_EXCEEDED, as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_ends_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut socket = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    socket
        .write_all(
            b"POST /v1/products?productId=slow HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              x-server-timeout: 1\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"dis\r\n",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !String::from_utf8_lossy(&answer).contains("}}") {
            let n = socket.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("an answer at the deadline");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("DEADLINE_EXCEEDED"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// The details of a REST error are those of the gRPC status for the same
/// failure, detail for detail (decoded independently of the server's code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_errors_carry_the_grpc_status_details() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let http = reqwest::Client::new();
    let mut grpc = server.client().await;
    let (status, _) = send(
        http.post(format!("{base}/v1/products?productId=same"))
            .json_value(&json!({
                "displayName": "Same",
                "iot": {"modelId": "m1", "productType": "IOT_PRODUCT_TYPE_DEVICE", "dataFormat": "IOT_DATA_FORMAT_JSON"}
            })),
    )
    .await;
    assert_eq!(status, 200);
    let pool = pool();
    let any_json = |any: &prost_types::Any| -> Value {
        let name = any.type_url.rsplit('/').next().unwrap();
        let message = DynamicMessage::decode(pool.get_message_by_name(name).unwrap(), any.value.as_slice()).unwrap();
        let mut value = serde_json::to_value(&message).unwrap();
        value["@type"] = json!(any.type_url);
        value
    };
    // A stale etag, an immutable field, a missing product: the same failure both ways.
    let cases: Vec<(reqwest::RequestBuilder, producthub::pb::UpdateProductRequest)> = vec![
        (
            http.patch(format!("{base}/v1/products/same?updateMask=description"))
                .json_value(&json!({"description": "x", "etag": "0000000000000000"})),
            producthub::pb::UpdateProductRequest {
                product: Some(Product {
                    name: "products/same".into(),
                    description: "x".into(),
                    etag: "0000000000000000".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["description".into()],
                }),
                ..Default::default()
            },
        ),
        (
            http.patch(format!("{base}/v1/products/same?updateMask=iot.modelId"))
                .json_value(&json!({"iot": {"modelId": "m2"}})),
            producthub::pb::UpdateProductRequest {
                product: Some(Product {
                    name: "products/same".into(),
                    iot: Some(IotProfile {
                        model_id: "m2".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["iot.model_id".into()],
                }),
                ..Default::default()
            },
        ),
        (
            http.patch(format!("{base}/v1/products/gone?updateMask=description"))
                .json_value(&json!({"description": "x"})),
            producthub::pb::UpdateProductRequest {
                product: Some(Product {
                    name: "products/gone".into(),
                    description: "x".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["description".into()],
                }),
                ..Default::default()
            },
        ),
    ];
    for (rest, over_grpc) in cases {
        let (http_status, body) = send(rest).await;
        let refused = grpc.update_product(over_grpc).await.unwrap_err();
        let details = tonic_types::pb::Status::decode(refused.details()).unwrap();
        let expected: Vec<Value> = details.details.iter().map(any_json).collect();
        assert!(!expected.is_empty(), "{refused:?}");
        assert_eq!(body["error"]["details"], Value::Array(expected), "{body}");
        assert_eq!(body["error"]["message"], refused.message());
        let code_names = [
            (tonic::Code::Aborted, 409, "ABORTED"),
            (tonic::Code::InvalidArgument, 400, "INVALID_ARGUMENT"),
            (tonic::Code::NotFound, 404, "NOT_FOUND"),
        ];
        let (_, http_code, name) = code_names.iter().find(|(c, _, _)| *c == refused.code()).unwrap();
        assert_eq!(
            (http_status, body["error"]["status"].as_str().unwrap()),
            (*http_code, *name)
        );
    }
}
