//! Defences of the real server: overload shedding, deadlines, bearer tokens,
//! TLS and mutual TLS, and read-modify-write contention. (A full disk is
//! sled's data directory filling up: tests/sled_disk.rs.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::Server;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{GetProductRequest, ListProductsRequest, Product, UpdateProductRequest};
use prost_types::FieldMask;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};
use tonic_types::StatusExt;

use common::{create_named as create, reason};

/// Floods a server allowed 2 calls in flight with 400 concurrent durable
/// creates over 8 connections: every call ends quickly as either OK or
/// UNAVAILABLE/OVERLOADED (never queued into a timeout), some of each, and
/// the server serves normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_unavailable_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-in-flight", "2"]);
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(server.channel().await);
    }
    let ok = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let mut calls = Vec::new();
    for n in 0..400 {
        let mut client = ProductServiceClient::new(channels[n % channels.len()].clone());
        let (ok, shed) = (ok.clone(), shed.clone());
        calls.push(tokio::spawn(async move {
            match client.create_product(create(&format!("flood-{n}"))).await {
                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    assert_eq!(reason(&status), "OVERLOADED");
                    assert!(status.get_details_retry_info().is_some(), "a retry delay is suggested");
                    shed.fetch_add(1, Ordering::Relaxed)
                }
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let (ok, shed) = (ok.load(Ordering::Relaxed), shed.load(Ordering::Relaxed));
    eprintln!("flood: {ok} admitted, {shed} shed");
    assert_eq!(ok + shed, 400);
    assert!(ok > 0 && shed > 0, "{ok} admitted, {shed} shed");

    // Afterwards, one call at a time is always admitted.
    let mut client = server.client().await;
    for n in 0..20 {
        client.create_product(create(&format!("after-{n}"))).await.unwrap();
    }
    let listed = client
        .list_products(ListProductsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.products.len() as u64, ok + 20);
}

/// A call whose deadline has passed is not worked on: the server answers it
/// with an error, and goes on serving.
#[tokio::test]
async fn an_expired_deadline_ends_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let mut request = Request::new(ListProductsRequest::default());
    request.set_timeout(Duration::from_nanos(1));
    let status = client.list_products(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    client.list_products(ListProductsRequest::default()).await.unwrap();
}

const WRITER: &str = "writer-3f9a2c71e8b04d5a";
const READER: &str = "reader-8c1d7e2f90a64b3c";

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn bearer_tokens_with_scopes_guard_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("# who may call\nread-write {WRITER}\nread-only {READER}\n"),
    )
    .unwrap();
    let (server, logs) = Server::start_logged(
        &dir.path().join("data"),
        &["--tokens-file", tokens.to_str().unwrap(), "--open-probes"],
    );
    let mut client = server.client().await;

    let missing = client.create_product(create("a")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(reason(&missing), "CREDENTIALS_MISSING");
    let wrong = client
        .create_product(with_token(create("a"), "not-a-known-token-at-all"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(reason(&wrong), "CREDENTIALS_INVALID");

    let created = client
        .create_product(with_token(create("a"), WRITER))
        .await
        .unwrap()
        .into_inner();
    let read = client
        .get_product(with_token(
            GetProductRequest {
                name: "products/a".into(),
            },
            READER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, created);
    let update = UpdateProductRequest {
        product: Some(Product {
            name: "products/a".into(),
            description: "changed".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["description".into()],
        }),
        ..Default::default()
    };
    let denied = client
        .update_product(with_token(update.clone(), READER))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "SCOPE_INSUFFICIENT");
    // A preview writes nothing: a read-only token may ask for one.
    let preview = UpdateProductRequest {
        validate_only: true,
        ..update.clone()
    };
    let previewed = client
        .update_product(with_token(preview, READER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(previewed.description, "changed");
    let mut planned = create("b");
    planned.validate_only = true;
    client.create_product(with_token(planned, READER)).await.unwrap();
    let translated = producthub::pb::ImportVendorProductRequest {
        vendor: producthub::pb::Vendor::Cryptlex as i32,
        json: r#"{"id": "c1", "name": "n", "displayName": "N", "licenseTemplateId": "lt"}"#.into(),
        ..Default::default()
    };
    client
        .import_vendor_product(with_token(translated.clone(), READER))
        .await
        .unwrap();
    let stored = client
        .import_vendor_product(with_token(
            producthub::pb::ImportVendorProductRequest {
                store: true,
                ..translated
            },
            READER,
        ))
        .await
        .unwrap_err();
    assert_eq!(stored.code(), Code::PermissionDenied);
    assert_eq!(reason(&stored), "SCOPE_INSUFFICIENT");
    assert!(
        client
            .get_product(with_token(
                GetProductRequest {
                    name: "products/b".into()
                },
                READER
            ))
            .await
            .is_err(),
        "nothing was created"
    );
    client.update_product(with_token(update, WRITER)).await.unwrap();

    // The probes are open as configured.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();

    // No token, valid or not, is ever logged.
    drop(client);
    server.terminate();
    let logged: Vec<String> = logs.try_iter().collect();
    assert!(logged.iter().any(|l| l.contains("UpdateProduct")), "calls are logged");
    for line in &logged {
        assert!(
            !line.contains(WRITER) && !line.contains(READER),
            "a token leaked: {line}"
        );
        assert!(!line.contains("not-a-known-token"), "a presented token leaked: {line}");
    }
}

#[tokio::test]
async fn probes_need_a_token_unless_opened() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("read-only {READER}\n")).unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--tokens-file", tokens.to_str().unwrap()]);
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let refused = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    health
        .check(with_token(tonic_health::pb::HealthCheckRequest::default(), READER))
        .await
        .unwrap();
}

#[test]
fn a_bad_token_table_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "read-write a-secret-value-that-is-long extra\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_producthub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
    assert!(!stderr.contains("a-secret-value"), "{stderr}");
}

/// A CA, a server certificate for localhost, and a client certificate, all
/// made fresh for the test.
struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["client.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

async fn tls_channel(server: &Server, pki: &Pki, client_identity: bool) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if client_identity {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert, key, ca) = (
        file("server.pem", &pki.server_cert),
        file("server.key", &pki.server_key),
        file("ca.pem", &pki.ca_pem),
    );

    // TLS: a client trusting the CA talks; a plaintext client does not.
    let server = Server::start_with(&dir.path().join("tls"), &["--tls-cert", &cert, "--tls-key", &key]);
    let mut client = ProductServiceClient::new(tls_channel(&server, &pki, false).await.unwrap());
    client.create_product(create("over-tls")).await.unwrap();
    let mut plain = server.client().await;
    assert!(plain.list_products(ListProductsRequest::default()).await.is_err());
    drop(server);

    // Mutual TLS: only a client with a certificate from the CA gets in.
    let server = Server::start_with(
        &dir.path().join("mtls"),
        &["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca],
    );
    let mut client = ProductServiceClient::new(tls_channel(&server, &pki, true).await.unwrap());
    client.create_product(create("mutual")).await.unwrap();
    let anonymous = match tls_channel(&server, &pki, false).await {
        Err(_) => None,
        Ok(channel) => Some(
            ProductServiceClient::new(channel)
                .list_products(ListProductsRequest::default())
                .await,
        ),
    };
    assert!(
        !matches!(anonymous, Some(Ok(_))),
        "a client without a certificate was served"
    );
}

/// Many clients increment counters on the same products by read-modify-write
/// with etags. Every acknowledged update is in the final count exactly once;
/// every conflict was ABORTED (and retried), none was lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_read_modify_write_loses_nothing() {
    const PRODUCTS: usize = 3;
    const CLIENTS: usize = 12;
    const INCREMENTS: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    for p in 0..PRODUCTS {
        let mut request = create(&format!("counter-{p}"));
        request
            .product
            .as_mut()
            .unwrap()
            .labels
            .insert("count".into(), "0".into());
        client.create_product(request).await.unwrap();
    }
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let channel = server.channel().await;
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = ProductServiceClient::new(channel);
            let name = format!("products/counter-{}", c % PRODUCTS);
            let mut done = 0;
            while done < INCREMENTS {
                match common::increment_label(&mut client, &name, "count").await {
                    Ok(()) => done += 1,
                    Err(status) => {
                        assert_eq!(status.code(), Code::Aborted, "{status:?}");
                        assert_eq!(reason(&status), "ETAG_MISMATCH");
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for p in 0..PRODUCTS {
        let stored = client
            .get_product(GetProductRequest {
                name: format!("products/counter-{p}"),
            })
            .await
            .unwrap()
            .into_inner();
        let count: u64 = stored.labels["count"].parse().unwrap();
        let writers = (0..CLIENTS).filter(|c| c % PRODUCTS == p).count() as u64;
        assert_eq!(count, writers * INCREMENTS, "counter-{p}");
        total += count;
    }
    let conflicts = conflicts.load(Ordering::Relaxed);
    eprintln!("{total} acknowledged increments, {conflicts} ABORTED conflicts retried");
    assert!(conflicts > 0, "the test did not contend");
}

/// A flood of refused calls is counted in full by the metrics, but logs at
/// most a budget of lines a second, plus one line saying how many were left
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_does_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("read-write {WRITER}\n")).unwrap();
    let (server, logs) = Server::start_logged(
        &dir.path().join("data"),
        &["--tokens-file", tokens.to_str().unwrap(), "--log-format", "json"],
    );
    let channel = server.channel().await;
    const CALLS: usize = 3000;
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..30 {
        let mut client = ProductServiceClient::new(channel.clone());
        let refused = refused.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..CALLS / 30 {
                let call = client
                    .get_product(GetProductRequest {
                        name: format!("products/p{worker}-{n}"),
                    })
                    .await;
                if call.is_err_and(|status| status.code() == Code::Unauthenticated) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(refused.load(Ordering::Relaxed), CALLS as u64);
    // The summary of what was left out comes a second after the first line left out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(channel);
    server.terminate();
    let lines: Vec<String> = logs.try_iter().collect();
    let call_lines = lines.iter().filter(|l| l.contains("\"producthub::call\"")).count();
    assert!(
        call_lines < CALLS / 4,
        "{call_lines} call lines for {CALLS} refused calls"
    );
    assert!(
        lines.iter().any(|l| l.contains("failed calls not logged")),
        "the log says lines were left out"
    );
}

/// A flood of ListProducts calls beyond `--max-concurrent-lists` is refused at
/// once with RESOURCE_EXHAUSTED and a retry delay (never queued), and a cheap
/// call is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_flood_is_bounded_and_cheap_calls_are_served() {
    let dir = tempfile::tempdir().unwrap();
    // A budget of one: with two server threads, a second list at the same
    // moment is one too many.
    let server = Server::start_with(dir.path(), &["--max-concurrent-lists", "1"]);
    let mut client = server.client().await;
    let channel = server.channel().await;
    let mut creators = Vec::new();
    for worker in 0..8 {
        let mut creator = ProductServiceClient::new(channel.clone());
        creators.push(tokio::spawn(async move {
            for n in (worker..1000).step_by(8) {
                creator.create_product(create(&format!("p{n:04}"))).await.unwrap();
            }
        }));
    }
    for creator in creators {
        creator.await.unwrap();
    }
    let refused = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..16 {
        let mut lister = ProductServiceClient::new(channel.clone());
        let refused = refused.clone();
        flood.push(tokio::spawn(async move {
            for _ in 0..20 {
                let listed = lister
                    .list_products(ListProductsRequest {
                        page_size: 1000,
                        filter: "NOT labels.missing:* AND -iot:* AND -licensing:*".into(),
                        ..Default::default()
                    })
                    .await;
                match listed {
                    Ok(page) => assert_eq!(page.into_inner().products.len(), 1000),
                    Err(status) => {
                        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                        assert_eq!(reason(&status), "TOO_MANY_LISTS");
                        assert!(status.get_details_retry_info().is_some());
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Cheap calls meanwhile, on their own connection: every one answered.
    for n in 0..50 {
        client
            .get_product(GetProductRequest {
                name: format!("products/p{:04}", n % 1000),
            })
            .await
            .unwrap();
    }
    for task in flood {
        task.await.unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "16 listers against a budget of 2 were all admitted"
    );
}
