//! `flood`: the server, with its default limits, under each flood an attacker
//! would try (issue 18): thousands of watch streams, thousands of connections
//! that never speak, a thousand 4 MiB requests at once, a stream of failed
//! calls, and expensive lists. For each it reports the server's peak resident
//! memory and its memory once the flood is over, how the flood's calls ended,
//! a real client's GetProduct latency meanwhile against the same client's
//! latency just before the flood (this machine's noise drifts between
//! minutes, so each flood has its own unloaded baseline), and whether new
//! clients could connect and be served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{CreateProductRequest, GetProductRequest, ListProductsRequest, Product, WatchProductsRequest};
use prost::Message;
use std::future::Future;
use tonic::transport::Channel;

use super::{LoadArgs, Process, channels, preload, server_binary};

/// How the flood's own calls ended, by gRPC status name.
type Outcomes = BTreeMap<String, u64>;

/// What one flood did to the server.
struct Figures {
    name: String,
    outcomes: Outcomes,
    peak_rss: u64,
    settled_rss: u64,
    probe: Latencies,
    /// The probe just before the flood.
    unloaded: Latencies,
    fresh_clients: (u64, u64),
    log_lines: Option<(u64, u64)>,
}

#[derive(Default)]
struct Latencies {
    /// Sorted, in microseconds.
    micros: Vec<u32>,
    errors: u64,
}

impl Latencies {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let index = ((self.micros.len() as f64 * p) as usize).min(self.micros.len() - 1);
        f64::from(self.micros[index]) / 1000.0
    }
}

pub async fn flood(load: LoadArgs, products: u64, settle: Duration) -> Result<(), Box<dyn std::error::Error>> {
    // The floods open thousands of sockets.
    producthub::transport::raise_open_file_limit();
    let program = server_binary(&load)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let data_arg = data.display().to_string();
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg.as_str()];
    args.extend(load.server_args.iter().map(String::as_str));
    // The server's own default logging (info), to a file, as an operator runs it.
    let server = Process::start_logging_to(&program, &args, &log_path)?;
    let url = server.url();
    let seconds = Duration::from_secs(load.seconds.max(1));
    println!(
        "flood: producthub with default limits on {} products; each flood runs {} s, then {} s to settle",
        products,
        seconds.as_secs(),
        settle.as_secs()
    );

    let loaders = channels(&url, 4).await?;
    preload(&loaders, 0, products, 64).await?;
    drop(loaders);
    tokio::time::sleep(settle).await;
    let baseline_rss = server.rss_bytes().unwrap_or(0);
    let probe_channel = channels(&url, 1).await?.remove(0);
    let unloaded = probe(&probe_channel, seconds, Arc::new(AtomicBool::new(false))).await;
    println!(
        "baseline: RSS {:.0} MB; GetProduct unloaded p50 {:.3} ms, p99 {:.3} ms ({} calls)",
        mb(baseline_rss),
        unloaded.percentile_ms(0.5),
        unloaded.percentile_ms(0.99),
        unloaded.micros.len()
    );

    let mut all = Vec::new();
    for kind in [Kind::Watch, Kind::Silent, Kind::Large, Kind::Failed, Kind::Lists] {
        if load
            .only
            .as_ref()
            .is_some_and(|only| !kind.name().contains(only.as_str()))
        {
            continue;
        }
        let figures = run_flood(kind, &server, &url, &probe_channel, seconds, settle, &log_path).await?;
        report(&figures, baseline_rss, settle);
        all.push(figures);
    }
    println!();
    println!(
        "targets: peak RSS under {TARGET_RSS_MB} MB, back near the baseline ({:.0} MB) after; GetProduct p99 under a list or watch flood within 3x unloaded",
        mb(baseline_rss)
    );
    for figures in &all {
        let ratio = figures.probe.percentile_ms(0.99) / figures.unloaded.percentile_ms(0.99);
        println!(
            "  {:<34} peak {:>4.0} MB {}  after {:>4.0} MB  p99 {:>5.2}x  fresh clients {}/{}",
            figures.name,
            mb(figures.peak_rss),
            if mb(figures.peak_rss) < TARGET_RSS_MB {
                "ok "
            } else {
                "HIGH"
            },
            mb(figures.settled_rss),
            ratio,
            figures.fresh_clients.0,
            figures.fresh_clients.1
        );
    }
    server.stop();
    Ok(())
}

const TARGET_RSS_MB: f64 = 300.0;

#[derive(Clone, Copy)]
enum Kind {
    Watch,
    Silent,
    Large,
    Failed,
    Lists,
}

const WATCH_STREAMS: usize = 16_000;
const WATCH_CONNECTIONS: usize = 64;
const SILENT_CONNECTIONS: usize = 3_000;
const LARGE_REQUESTS: usize = 1_000;
const LARGE_CONNECTIONS: usize = 8;
const FAILING_CALLERS: usize = 64;
const LISTERS: usize = 200;

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Watch => format!("watch: {WATCH_STREAMS} streams"),
            Kind::Silent => format!("silent: {SILENT_CONNECTIONS} connections"),
            Kind::Large => format!("large: {LARGE_REQUESTS} x 4 MiB at once"),
            Kind::Failed => format!("failed calls: {FAILING_CALLERS} callers"),
            Kind::Lists => format!("lists: {LISTERS} x 32-term filter"),
        }
    }
}

async fn run_flood(
    kind: Kind,
    server: &Process,
    url: &str,
    probe_channel: &Channel,
    seconds: Duration,
    settle: Duration,
    log_path: &std::path::Path,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let unloaded = probe(probe_channel, seconds / 2, Arc::new(AtomicBool::new(false))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(std::sync::Mutex::new(Outcomes::new()));
    let log_before = log_counts(log_path);
    let flood_task = {
        let (stop, outcomes, url) = (stop.clone(), outcomes.clone(), url.to_owned());
        let addr = server.addr;
        tokio::spawn(async move {
            let result = match kind {
                Kind::Watch => watch_flood(&url, &stop, &outcomes).await,
                Kind::Silent => silent_flood(addr, &stop, &outcomes).await,
                Kind::Large => large_flood(addr, &stop, &outcomes).await,
                Kind::Failed => failed_flood(&url, &stop, &outcomes).await,
                Kind::Lists => list_flood(&url, &stop, &outcomes).await,
            };
            if let Err(error) = result {
                eprintln!("flood {}: {error}", kind.name());
            }
        })
    };
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        let pid = server.child.id();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = super::rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let fresh = {
        let (stop, url) = (stop.clone(), url.to_owned());
        tokio::spawn(async move { fresh_clients(&url, &stop).await })
    };
    let probed = probe(probe_channel, seconds, stop.clone()).await;
    stop.store(true, Ordering::SeqCst);
    let _ = flood_task.await;
    let _ = sampler.await;
    let fresh_clients = fresh.await.unwrap_or((0, 0));
    let log_after = log_counts(log_path);
    tokio::time::sleep(settle).await;
    let settled_rss = server.rss_bytes().unwrap_or(0);
    let outcomes = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
    let log_lines = match (kind, log_before, log_after) {
        (Kind::Failed, Some(before), Some(after)) => Some((after.0 - before.0, after.1.saturating_sub(before.1))),
        _ => None,
    };
    Ok(Figures {
        name: kind.name(),
        outcomes,
        peak_rss: peak.load(Ordering::Relaxed),
        settled_rss,
        probe: probed,
        unloaded,
        fresh_clients,
        log_lines,
    })
}

fn report(figures: &Figures, baseline_rss: u64, settle: Duration) {
    println!();
    println!("{}", figures.name);
    let outcomes: Vec<String> = figures.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  flood calls: {}", outcomes.join(", "));
    println!(
        "  RSS: peak {:.0} MB, {:.0} MB {} s after (baseline {:.0} MB)",
        mb(figures.peak_rss),
        mb(figures.settled_rss),
        settle.as_secs(),
        mb(baseline_rss)
    );
    println!(
        "  GetProduct meanwhile: p50 {:.3} ms, p99 {:.3} ms ({:.2}x the p99 of {:.3} ms just before), {} calls, {} errors",
        figures.probe.percentile_ms(0.5),
        figures.probe.percentile_ms(0.99),
        figures.probe.percentile_ms(0.99) / figures.unloaded.percentile_ms(0.99),
        figures.unloaded.percentile_ms(0.99),
        figures.probe.micros.len(),
        figures.probe.errors
    );
    println!(
        "  new clients: {} of {} connected and served",
        figures.fresh_clients.0, figures.fresh_clients.1
    );
    if let Some((lines, warn)) = figures.log_lines {
        println!("  server log meanwhile: {lines} lines, {warn} of them WARN");
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn note(outcomes: &std::sync::Mutex<Outcomes>, outcome: &str) {
    if let Ok(mut outcomes) = outcomes.lock() {
        *outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
}

fn code_name(status: &tonic::Status) -> String {
    format!("{:?}", status.code())
}

/// GetProduct of one product, one call at a time, until `stop` or `seconds`.
async fn probe(channel: &Channel, seconds: Duration, stop: Arc<AtomicBool>) -> Latencies {
    let mut client = ProductServiceClient::new(channel.clone());
    let mut latencies = Latencies::default();
    let end = Instant::now() + seconds;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let result = client
            .get_product(GetProductRequest {
                name: "products/b000000000".into(),
            })
            .await;
        match result {
            Ok(_) => latencies
                .micros
                .push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(_) => {
                latencies.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    latencies.micros.sort_unstable();
    latencies
}

/// Every half second, a new client connects and makes one call: (served, tried).
async fn fresh_clients(url: &str, stop: &AtomicBool) -> (u64, u64) {
    let (mut served, mut tried) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        tried += 1;
        let attempt = async {
            let channel = Channel::from_shared(url.to_owned()).ok()?.connect().await.ok()?;
            ProductServiceClient::new(channel)
                .get_product(GetProductRequest {
                    name: "products/b000000000".into(),
                })
                .await
                .ok()
        };
        if tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            served += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (served, tried)
}

async fn wait(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 16 000 WatchProducts streams over 64 connections, held open.
async fn watch_flood(
    url: &str,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
) -> Result<(), Box<dyn std::error::Error>> {
    let connections = channels(url, WATCH_CONNECTIONS).await?;
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..WATCH_STREAMS {
        let mut client = ProductServiceClient::new(connections[i % connections.len()].clone());
        opening.spawn(async move { client.watch_products(WatchProductsRequest::default()).await });
    }
    let mut open = Vec::new();
    while let Some(result) = opening.join_next().await {
        match result {
            Ok(Ok(stream)) => {
                note(outcomes, "Ok (stream open)");
                open.push(stream.into_inner());
            }
            Ok(Err(status)) => note(outcomes, &code_name(&status)),
            Err(_) => note(outcomes, "task failed"),
        }
    }
    wait(stop).await;
    drop(open);
    Ok(())
}

/// 3 000 TCP connections that never send a byte.
async fn silent_flood(
    addr: std::net::SocketAddr,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = Vec::with_capacity(SILENT_CONNECTIONS);
    for _ in 0..SILENT_CONNECTIONS {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => {
                note(outcomes, "connected");
                held.push(stream);
            }
            Err(_) => note(outcomes, "refused by the kernel"),
        }
    }
    wait(stop).await;
    drop(held);
    Ok(())
}

/// 1 000 CreateProduct calls of just under 4 MiB each in flight at once, over
/// raw HTTP/2 (one shared body, so the client holds 4 MiB, not 4 GB).
async fn large_flood(
    addr: std::net::SocketAddr,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
) -> Result<(), Box<dyn std::error::Error>> {
    let message = CreateProductRequest {
        product_id: "large".into(),
        product: Some(Product {
            display_name: "large".into(),
            description: "x".repeat(4 * 1024 * 1024 - 1024),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let body = Bytes::from(super::h2load::grpc_frame(&message));
    let mut clients = Vec::new();
    for _ in 0..LARGE_CONNECTIONS {
        clients.push(reqwest::Client::builder().http2_prior_knowledge().build()?);
    }
    let url = format!("http://{addr}/producthub.v1.ProductService/CreateProduct");
    callers_until(LARGE_REQUESTS, stop, outcomes, move |i| {
        let (client, body, url) = (clients[i % clients.len()].clone(), body.clone(), url.clone());
        async move {
            let sent = client
                .post(&url)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let headers = response.headers().clone();
                    let trailers_only = headers.get("grpc-status").is_some();
                    let _ = response.bytes().await;
                    match (trailers_only, headers.get("grpc-message")) {
                        (true, Some(message)) => grpc_outcome(&headers, message.to_str().unwrap_or("")),
                        (true, None) => grpc_outcome(&headers, ""),
                        (false, _) => "answered in trailers".to_owned(),
                    }
                }
                Err(_) => "transport error".to_owned(),
            }
        }
    })
    .await;
    Ok(())
}

/// Runs `count` callers until `stop`, each making the call `call(i)` builds
/// (`i` is the caller's number) again and again, and adds up how they ended.
async fn callers_until<Call, Calling>(
    count: usize,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
    call: Call,
) where
    Call: Fn(usize) -> Calling + Clone + Send + 'static,
    Calling: Future<Output = String> + Send,
{
    let stopping = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..count {
        let (call, stopping) = (call.clone(), stopping.clone());
        callers.spawn(async move {
            let mut ended = Outcomes::new();
            while !stopping.load(Ordering::Relaxed) {
                *ended.entry(call(i).await).or_default() += 1;
            }
            ended
        });
    }
    wait(stop).await;
    stopping.store(true, Ordering::SeqCst);
    while let Some(result) = callers.join_next().await {
        if let (Ok(ended), Ok(mut into)) = (result, outcomes.lock()) {
            for (outcome, n) in ended {
                *into.entry(outcome).or_default() += n;
            }
        }
    }
}

fn grpc_outcome(headers: &reqwest::header::HeaderMap, message: &str) -> String {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Unknown);
    let memory = message.contains("--max-request-bytes-in-flight");
    format!("{code:?}{}", if memory { " (request memory)" } else { "" })
}

/// 64 callers making calls that fail (an invalid name), as fast as they can.
async fn failed_flood(
    url: &str,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
) -> Result<(), Box<dyn std::error::Error>> {
    let connections = channels(url, 4).await?;
    callers_until(FAILING_CALLERS, stop, outcomes, move |i| {
        let mut client = ProductServiceClient::new(connections[i % connections.len()].clone());
        async move {
            let result = client
                .get_product(GetProductRequest {
                    name: "not a product name".into(),
                })
                .await;
            match result {
                Ok(_) => "Ok".to_owned(),
                Err(status) => code_name(&status),
            }
        }
    })
    .await;
    Ok(())
}

/// 200 callers listing with a 32-term filter no product matches, so each
/// call examines as many products as one call may.
async fn list_flood(
    url: &str,
    stop: &AtomicBool,
    outcomes: &std::sync::Mutex<Outcomes>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut terms = vec![r#"labels.bench = "no""#.to_owned()];
    terms.extend((1..32).map(|n| format!(r#"NOT labels.k{n} = "v{n}""#)));
    let filter = terms.join(" AND ");
    let connections = channels(url, 8).await?;
    callers_until(LISTERS, stop, outcomes, move |i| {
        let mut client = ProductServiceClient::new(connections[i % connections.len()].clone());
        let filter = filter.clone();
        async move {
            let result = client
                .list_products(ListProductsRequest {
                    filter,
                    page_size: 50,
                    ..Default::default()
                })
                .await;
            match result {
                Ok(_) => "Ok".to_owned(),
                Err(status) => {
                    // A refused lister waits as told (RetryInfo), as a good client does.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    code_name(&status)
                }
            }
        }
    })
    .await;
    Ok(())
}

/// (lines, WARN lines) in the server's log so far.
fn log_counts(path: &std::path::Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines = text.lines().count() as u64;
    let warn = text.lines().filter(|l| l.contains(" WARN ")).count() as u64;
    Some((lines, warn))
}
