//! Connections within limits, against the real binary: silent and idle
//! connections are closed, connections past the cap are closed at once, the
//! accept loop backs off when descriptors run out, and a flood of large
//! requests is refused before their bodies are read. A real client is served
//! throughout.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, reason};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{GetProductRequest, WatchProductsRequest};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

/// What HTTP/2 clients send first: the preface, then an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn silent_connections(addr: &str, count: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(TcpStream::connect(addr).await.expect("connect"));
    }
    out
}

/// Whether the server has closed the connection (reading what it sent meanwhile).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn count_closed(streams: &mut [TcpStream]) -> usize {
    let mut n = 0;
    for stream in streams {
        if closed(stream).await {
            n += 1;
        }
    }
    n
}

/// A real client's call, on a fresh connection: answered (here NOT_FOUND).
async fn real_client_is_served(server: &Server) {
    let mut client = server.client().await;
    let status = client
        .get_product(GetProductRequest {
            name: "products/none".into(),
        })
        .await
        .expect_err("no such product");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn silent_connections_close_at_the_handshake_deadline_and_idle_ones_later() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--handshake-timeout-secs", "1", "--idle-timeout-secs", "5"],
    );
    let began = Instant::now();
    let mut silent = silent_connections(&server.addr, 200).await;
    let mut prefaced = TcpStream::connect(&server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut prefaced, PREFACE_AND_SETTINGS)
        .await
        .unwrap();
    // A watch keeps its connection busy, however long it is quiet.
    let mut watcher = server.client().await;
    let mut changes = watcher
        .watch_products(WatchProductsRequest::default())
        .await
        .unwrap()
        .into_inner();

    real_client_is_served(&server).await;
    // Each is closed a second after it was accepted (the machine may be busy: allow for it).
    let mut open = silent.len();
    while open > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(4),
            "{open} silent connections outlived the deadline"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = silent.len() - count_closed(&mut silent).await;
    }
    assert!(
        began.elapsed() > Duration::from_millis(900),
        "closed before the deadline"
    );
    assert!(
        !closed(&mut prefaced).await,
        "a connection that sent its preface is idle, not silent"
    );

    while !closed(&mut prefaced).await {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "an idle connection outlived --idle-timeout-secs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        began.elapsed() > Duration::from_millis(4900),
        "closed before the idle timeout"
    );
    // The watch stream's connection was kept: it still delivers.
    let mut writer = server.client().await;
    common::create(
        &mut writer,
        "after-idle",
        common::create_named("after-idle").product.unwrap(),
    )
    .await;
    let change = tokio::time::timeout(Duration::from_secs(10), changes.message())
        .await
        .expect("a change in time")
        .expect("the stream is open")
        .expect("a change");
    assert_eq!(change.product.unwrap().name, "products/after-idle");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_connections_that_never_spoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--shutdown-grace-secs", "60"]);
    let _silent = silent_connections(&server.addr, 300).await;
    real_client_is_served(&server).await;
    let began = Instant::now();
    // The runtime goes on meanwhile, so the real client's connection can
    // answer the server's GOAWAY.
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "SIGTERM waited {:?} for silent connections",
        began.elapsed()
    );
}

/// A connection with a call open: a watch stream on a channel of its own.
async fn watching(server: &Server) -> (Channel, tonic::Streaming<producthub::pb::ProductChange>) {
    let channel = server.channel().await;
    let stream = ProductServiceClient::new(channel.clone())
        .watch_products(WatchProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    (channel, stream)
}

#[tokio::test]
async fn at_the_cap_a_connection_that_never_called_gives_way_and_one_that_called_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--max-connections", "4", "--metrics-listen", "127.0.0.1:0"],
    );
    let mut watchers = Vec::new();
    for _ in 0..4 {
        watchers.push(watching(&server).await);
    }
    // Every place holds a connection with a call open: a new one is closed at once.
    let mut extra = silent_connections(&server.addr, 3).await;
    assert_eq!(
        count_closed(&mut extra).await,
        3,
        "connections past the cap stayed open"
    );
    common::wait_for_metric(&server, "producthub_connections_closed_total{reason=\"limit\"}", 3.0).await;

    // One place freed, and taken by a connection that never calls.
    drop(watchers.pop());
    common::wait_for_metric(&server, "producthub_connections_open", 3.0).await;
    let mut silent = silent_connections(&server.addr, 1).await;
    common::wait_for_metric(&server, "producthub_connections_open", 4.0).await;
    // Once it is old enough to be no client's first call in flight, a real client takes its place.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    real_client_is_served(&server).await;
    assert!(
        closed(&mut silent[0]).await,
        "the connection that never called gave way"
    );
    common::wait_for_metric(&server, "producthub_connections_closed_total{reason=\"evicted\"}", 1.0).await;
    // The watch streams are untouched.
    for (_, stream) in &mut watchers {
        let pending = tokio::time::timeout(Duration::from_millis(100), stream.message()).await;
        assert!(pending.is_err(), "a watch stream ended: {pending:?}");
    }
}

#[tokio::test]
async fn running_out_of_descriptors_backs_off_logs_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, logs) = Server::start_logged_with_open_files_limit(
        dir.path(),
        64,
        &["--max-connections", "1000", "--handshake-timeout-secs", "3"],
    );
    // More connections than the server has descriptors for.
    let silent = silent_connections(&server.addr, 120).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.child.id();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_ticks(pid) - before;
    // A spinning accept loop would take the whole second (100 ticks).
    assert!(
        spent < 30,
        "the accept loop used {spent} ticks of CPU in a second while out of descriptors"
    );
    drop(silent);
    // The deadline frees the silent connections' descriptors; clients are served again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), real_client_is_served(&server)).await;
        if attempt.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no client was served after the flood");
    }
    // The log line may still be on its way through the pipe.
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.iter().any(|l| l.contains("accepting connections again")) && Instant::now() < deadline {
        if let Ok(line) = logs.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    lines.extend(logs.try_iter());
    let out_of = lines.iter().filter(|l| l.contains("out of file descriptors")).count();
    assert_eq!(out_of, 1, "expected one line about running out:\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("accepting connections again")),
        "{}",
        lines.join("\n")
    );
}

/// User plus system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A CreateProduct call whose message declares `declared` bytes, of which only
/// the 5-byte frame header and a few bytes are sent: the call then waits for
/// the rest, holding its share of the request-byte budget.
async fn stalled_create(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: &str,
    declared: u32,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let request = http::Request::post(format!("http://{addr}/producthub.v1.ProductService/CreateProduct"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).expect("send headers");
    let mut frame = vec![0u8];
    frame.extend_from_slice(&declared.to_be_bytes());
    frame.extend_from_slice(b"\x0a\x03abc");
    body.send_data(Bytes::from(frame), false)
        .expect("send the frame header");
    (response, body)
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Status> {
    tonic::Status::from_header_map(headers)
}

#[tokio::test]
async fn request_bytes_in_flight_are_budgeted_before_bodies_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--max-request-bytes-in-flight",
            "8388608",
            "--max-message-bytes",
            "4194304",
        ],
    );
    let tcp = TcpStream::connect(&server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let three_mib = 3 * 1024 * 1024;
    let (_first, mut first_body) = stalled_create(&mut client, &server.addr, three_mib).await;
    let (_second, mut second_body) = stalled_create(&mut client, &server.addr, three_mib).await;
    // Let the server charge both before the third arrives (generous on a busy machine).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (third, _third_body) = stalled_create(&mut client, &server.addr, three_mib).await;
    let response = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the third call is answered at once, without its body")
        .unwrap();
    let status = grpc_status(response.headers()).expect("a trailers-only answer");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "REQUEST_MEMORY_EXHAUSTED");
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&status).is_some(),
        "a retry delay comes with it"
    );
    // A real client is served meanwhile: small calls fit in what is left.
    real_client_is_served(&server).await;

    // Calls that end give their bytes back.
    first_body.send_reset(h2::Reason::CANCEL);
    second_body.send_reset(h2::Reason::CANCEL);
    // The server sees the resets a moment later: until then a fourth call is
    // still refused, after that it is admitted (it waits for its body).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (fourth, mut fourth_body) = loop {
        let (mut response, body) = stalled_create(&mut client, &server.addr, three_mib).await;
        match tokio::time::timeout(Duration::from_millis(500), &mut response).await {
            Err(_) => break (response, body),
            Ok(answered) => {
                let status = grpc_status(answered.unwrap().headers()).expect("a status");
                assert_eq!(reason(&status), "REQUEST_MEMORY_EXHAUSTED", "{status:?}");
                assert!(Instant::now() < deadline, "the reset calls never gave their bytes back");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Its (garbage) body is read and found malformed.
    fourth_body
        .send_data(Bytes::from(vec![0xffu8; three_mib as usize - 5]), true)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), fourth)
        .await
        .expect("answered")
        .unwrap();
    let (parts, mut body) = response.into_parts();
    let status = match grpc_status(&parts.headers) {
        Some(status) => status,
        None => {
            while let Some(chunk) = body.data().await {
                chunk.unwrap();
            }
            let trailers = body.trailers().await.unwrap().expect("trailers");
            grpc_status(&trailers).expect("a status in the trailers")
        }
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "MALFORMED_REQUEST");
}
