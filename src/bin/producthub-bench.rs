//! `producthub-bench`: measures producthub against the ceilings of its stack, in
//! one run, with one load generator (see docs/benchmarks.md).
//!
//! - `compare`: (a) a bare tonic echo server (the framework ceiling), (b) a tonic
//!   echo that writes each payload to sled and waits for the same group-commit
//!   flush producthub uses (the durable ceiling), and (c) producthub's Create,
//!   Update (with a mask), Get and List, against the real server binary. Each
//!   server runs as its own process on loopback; every figure is also printed as
//!   a ratio to its ceiling, because ratios from one run are what a noisy
//!   machine can compare.
//! - `scale`: loads 10k, 100k, 1M... products and reports per-operation cost,
//!   server RSS, start-up time and disk bytes per logical byte after a full
//!   overwrite pass.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use producthub::pb::bench::echo_service_client::EchoServiceClient;
use producthub::pb::bench::echo_service_server::{EchoService, EchoServiceServer};
use producthub::pb::bench::{EchoReply, EchoRequest};
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{CreateProductRequest, GetProductRequest, ListProductsRequest, Product, UpdateProductRequest};
use producthub::storage::{DurableLog, SledOptions};
use prost::Message;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The same allocator as the server, so the ceilings run on the same footing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Benchmarks producthub against the ceilings of its stack")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Framework and durable ceilings vs producthub's RPCs, in one run.
    Compare(LoadArgs),
    /// Cost per operation, memory, start-up and disk use as the catalog grows.
    Scale {
        #[command(flatten)]
        load: LoadArgs,
        /// Catalog sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<u64>,
    },
    /// (Internal) an echo server; with --durable, each payload is made durable first.
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        durable: Option<PathBuf>,
    },
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds each measurement runs (after a warm-up of a tenth of it).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The producthub binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Run only the measurements whose name contains this (e.g. `GetProduct`),
    /// to profile one call.
    #[arg(long)]
    only: Option<String>,
    /// Also measure producthub on PostgreSQL: an admin URL such as
    /// `postgres://user@127.0.0.1:5432/postgres` (a fresh database is created),
    /// with pgbench's single-row 1 KB UPDATE as the database's own ceiling.
    #[arg(long)]
    postgres: Option<String>,
    /// An extra argument for `producthub serve` (repeatable), e.g.
    /// `--server-arg=--cache-bytes=16777216`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

impl LoadArgs {
    /// The arguments that start producthub on a free port over `data_dir`.
    fn serve_args<'a>(&'a self, data_dir: &'a str) -> Vec<&'a str> {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        args.extend(self.server_args.iter().map(String::as_str));
        args
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Mode::EchoServer { durable } => runtime.block_on(echo_server(durable)),
        Mode::Compare(load) => runtime.block_on(compare(load)),
        Mode::Scale { load, sizes } => runtime.block_on(scale(load, sizes)),
    }
}

// ---- the echo ceilings -------------------------------------------------------

struct Echoer {
    log: Option<DurableLog>,
}

#[tonic::async_trait]
impl EchoService for Echoer {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let payload = request.into_inner().payload;
        if let Some(log) = &self.log {
            log.append(&payload)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(EchoReply { payload }))
    }
}

async fn echo_server(durable: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let log = durable
        .map(|dir| DurableLog::open(&dir, &SledOptions::default()))
        .transpose()?;
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse()?)?.with_nodelay(Some(true));
    println!("listening on {}", incoming.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(EchoServiceServer::new(Echoer { log }))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

// ---- processes -----------------------------------------------------------------

struct Process {
    child: Child,
    addr: SocketAddr,
    started_in: Duration,
}

impl Process {
    /// Starts `program` and waits for its `listening on ADDR` line.
    fn start(program: &Path, args: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().ok_or("the server exited before listening")??;
            if let Some(addr) = line
                .rsplit("listening on ")
                .next()
                .filter(|_| line.contains("listening on "))
            {
                let started_in = started.elapsed();
                return Ok(Self {
                    child,
                    addr: addr.trim().parse()?,
                    started_in,
                });
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's resident memory, from /proc.
    fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// SIGTERM, then wait: producthub flushes and exits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary(load: &LoadArgs) -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(path) = &load.server {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("producthub");
    if sibling.exists() {
        Ok(sibling)
    } else {
        Err(format!("no producthub binary next to {}; pass --server", me.display()).into())
    }
}

async fn channels(url: &str, count: usize) -> Result<Vec<Channel>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for _ in 0..count.max(1) {
        out.push(
            Channel::from_shared(url.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(out)
}

// ---- the load generator ----------------------------------------------------------

/// What one measurement saw.
struct Stats {
    name: String,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Sorted latencies, in microseconds.
    latencies: Vec<u32>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        f64::from(self.latencies[index]) / 1000.0
    }
}

/// Runs `call(channel, n)` from `concurrency` tasks for the configured time,
/// after a warm-up; `n` counts calls across tasks.
async fn run<F, Fut>(name: &str, load: &LoadArgs, channels: &[Channel], call: F) -> Stats
where
    F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let duration = Duration::from_secs(load.seconds.max(1));
    if load.only.as_ref().is_some_and(|only| !name.contains(only.as_str())) {
        return Stats {
            name: name.to_string(),
            ok: 0,
            errors: 0,
            elapsed: duration,
            latencies: Vec::new(),
        };
    }
    let counter = Arc::new(AtomicU64::new(0));
    let warm_up = duration / 10;
    let start = Instant::now() + warm_up;
    let end = start + duration;
    let tasks: Vec<_> = (0..load.concurrency.max(1))
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let call = call.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut ok, mut errors) = (0u64, 0u64);
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let result = call(channel.clone(), n).await;
                    if began < start {
                        continue;
                    }
                    match result {
                        Ok(()) => {
                            ok += 1;
                            latencies.push(began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ok, errors, latencies)
            })
        })
        .collect();
    let mut stats = Stats {
        name: name.to_string(),
        ok: 0,
        errors: 0,
        elapsed: duration,
        latencies: Vec::new(),
    };
    for task in tasks {
        if let Ok((ok, errors, latencies)) = task.await {
            stats.ok += ok;
            stats.errors += errors;
            stats.latencies.extend(latencies);
        }
    }
    stats.latencies.sort_unstable();
    stats
}

fn report(stats: &Stats, ceiling: Option<&Stats>) {
    let ratio = ceiling
        .map(|c| format!("{:.2}x {}", stats.rate() / c.rate().max(f64::MIN_POSITIVE), c.name))
        .unwrap_or_default();
    println!(
        "{:<28} {:>10.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  errors {:>5}  {}",
        stats.name,
        stats.rate(),
        stats.percentile_ms(0.50),
        stats.percentile_ms(0.99),
        stats.percentile_ms(0.999),
        stats.errors,
        ratio
    );
}

/// A product of about 1 KB encoded, like the ones the targets speak of.
fn sample_product(n: u64) -> Product {
    Product {
        display_name: format!("Benchmark product {n}"),
        description: "d".repeat(900),
        version: "1.0.0".into(),
        labels: [("bench".to_string(), "yes".to_string())].into(),
        ..Default::default()
    }
}

fn payload() -> Vec<u8> {
    sample_product(0).encode_to_vec()
}

// ---- compare --------------------------------------------------------------------

async fn measure_echo(
    load: &LoadArgs,
    name: &str,
    durable: Option<&Path>,
) -> Result<Stats, Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let mut args = vec!["echo-server".to_string()];
    if let Some(dir) = durable {
        args.push("--durable".into());
        args.push(dir.display().to_string());
    }
    let server = Process::start(&me, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let channels = channels(&server.url(), load.connections).await?;
    let body = Arc::new(payload());
    let stats = run(name, load, &channels, move |channel, _| {
        let body = body.clone();
        async move {
            EchoServiceClient::new(channel)
                .echo(EchoRequest { payload: body.to_vec() })
                .await
                .map(|_| ())
        }
    })
    .await;
    drop(server);
    Ok(stats)
}

/// Calls `call(client, n)` for every `n` in `from..from + count`, from
/// `concurrency` tasks; stops at the first error.
async fn for_each<F, Fut>(
    channels: &[Channel],
    from: u64,
    count: u64,
    concurrency: usize,
    call: F,
) -> Result<(), Status>
where
    F: Fn(ProductServiceClient<Channel>, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let next = Arc::new(AtomicU64::new(from));
    let end = from + count;
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|i| {
            let client = ProductServiceClient::new(channels[i % channels.len()].clone());
            let (next, call) = (next.clone(), call.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= end {
                        return Ok::<(), Status>(());
                    }
                    call(client.clone(), n).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| Status::internal(e.to_string()))??;
    }
    Ok(())
}

/// Creates products `products/b{from}..` (`count` of them).
async fn preload(channels: &[Channel], from: u64, count: u64, concurrency: usize) -> Result<(), Status> {
    for_each(channels, from, count, concurrency, |mut client, n| async move {
        client
            .create_product(CreateProductRequest {
                product: Some(sample_product(n)),
                product_id: format!("b{n:09}"),
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await
}

struct ProductOps {
    create: Stats,
    update: Stats,
    get: Stats,
    list: Stats,
}

/// Create, Update (mask `description`), Get and List against a running server
/// holding products `b0..pool`.
async fn measure_products(load: &LoadArgs, channels: &[Channel], pool: u64, create_from: u64) -> ProductOps {
    let create = run(
        "producthub CreateProduct",
        load,
        channels,
        move |channel, n| async move {
            let n = create_from + n;
            ProductServiceClient::new(channel)
                .create_product(CreateProductRequest {
                    product: Some(sample_product(n)),
                    product_id: format!("b{n:09}"),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        },
    )
    .await;
    let update = run(
        "producthub UpdateProduct",
        load,
        channels,
        move |channel, n| async move {
            let mut product = sample_product(n);
            product.name = format!("products/b{:09}", n % pool);
            ProductServiceClient::new(channel)
                .update_product(UpdateProductRequest {
                    product: Some(product),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["description".into()],
                    }),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        },
    )
    .await;
    let get = run("producthub GetProduct", load, channels, move |channel, n| async move {
        ProductServiceClient::new(channel)
            .get_product(GetProductRequest {
                name: format!("products/b{:09}", n % pool),
            })
            .await
            .map(|_| ())
    })
    .await;
    let list = run(
        "producthub ListProducts(50)",
        load,
        channels,
        move |channel, n| async move {
            // Pages start at spread-out places, so the whole catalog is read.
            let after = (n * 7919) % pool;
            let token = producthub::domain::page_token::encode(&format!("b{after:09}"), "");
            ProductServiceClient::new(channel)
                .list_products(ListProductsRequest {
                    page_size: 50,
                    page_token: token,
                    filter: String::new(),
                })
                .await
                .map(|_| ())
        },
    )
    .await;
    ProductOps {
        create,
        update,
        get,
        list,
    }
}

async fn compare(load: LoadArgs) -> Result<(), Box<dyn std::error::Error>> {
    let binary = server_binary(&load)?;
    println!(
        "concurrency {}, {} s per measurement, {} connections, payload {} bytes, {} cores",
        load.concurrency,
        load.seconds,
        load.connections,
        payload().len(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let framework = measure_echo(&load, "(a) tonic echo", None).await?;
    report(&framework, None);
    let durable_dir = tempfile::tempdir()?;
    let durable = measure_echo(&load, "(b) tonic echo + sled flush", Some(durable_dir.path())).await?;
    report(&durable, None);

    let data = tempfile::tempdir()?;
    let data_dir = data.path().display().to_string();
    let server = Process::start(&binary, &load.serve_args(&data_dir))?;
    let channels = channels(&server.url(), load.connections).await?;
    let pool = 10_000;
    preload(&channels, 0, pool, load.concurrency).await?;
    let ops = measure_products(&load, &channels, pool, pool).await;
    report(&ops.create, Some(&durable));
    report(&ops.update, Some(&durable));
    report(&ops.get, Some(&framework));
    report(&ops.list, Some(&framework));
    server.stop();
    if let Some(admin) = &load.postgres {
        compare_postgres(&load, &binary, admin, &ops).await?;
    }
    Ok(())
}

/// The same Create/Update/Get on the PostgreSQL backend, as ratios to the sled
/// backend's figures above and to pgbench on the same database.
async fn compare_postgres(
    load: &LoadArgs,
    binary: &Path,
    admin: &str,
    sled: &ProductOps,
) -> Result<(), Box<dyn std::error::Error>> {
    let database = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let url = {
        let (admin_client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        admin_client
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await?;
        let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(admin);
        format!("{base}/{database}")
    };
    let ceiling = pgbench_update(&url, load).await?;
    println!(
        "(c) pgbench 1 KB UPDATE      {ceiling:>10.0} tx/s  ({} clients, {} s, prepared)",
        load.concurrency, load.seconds
    );
    let data = tempfile::tempdir()?;
    let data_dir = data.path().display().to_string();
    let mut args = load.serve_args(&data_dir);
    args.extend(["--store", url.as_str()]);
    let server = Process::start(binary, &args)?;
    let channels = channels(&server.url(), load.connections).await?;
    let pool = 10_000;
    preload(&channels, 0, pool, load.concurrency).await?;
    let mut ops = measure_products(load, &channels, pool, pool).await;
    server.stop();
    for (stats, on_sled) in [
        (&mut ops.create, &sled.create),
        (&mut ops.update, &sled.update),
        (&mut ops.get, &sled.get),
    ] {
        stats.name = stats.name.replacen("producthub", "postgres", 1);
        report(stats, Some(on_sled));
        println!(
            "{:<28} {:>10.2}x (c) pgbench 1 KB UPDATE",
            "",
            stats.rate() / ceiling.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// pgbench's transactions per second for a one-row 1 KB UPDATE over 10 000
/// rows, at the harness's concurrency: what the database itself can do.
async fn pgbench_update(url: &str, load: &LoadArgs) -> Result<f64, Box<dyn std::error::Error>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE ceiling (id integer PRIMARY KEY, payload text NOT NULL);
             INSERT INTO ceiling SELECT n, repeat('x', 1024) FROM generate_series(1, 10000) n;",
        )
        .await?;
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(
        script.path(),
        "\\set id random(1, 10000)\nUPDATE ceiling SET payload = repeat(md5(random()::text), 32) WHERE id = :id;\n",
    )?;
    let pgbench = find_pgbench();
    let output = Command::new(&pgbench)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &load.concurrency.to_string(), "-T", &load.seconds.to_string()])
        .arg("-f")
        .arg(script.path())
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", pgbench.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("pgbench failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's output: {stdout}").into())
}

/// pgbench from PATH, or from Debian's PostgreSQL directory.
fn find_pgbench() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("pgbench"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .flatten()
                .map(|version| version.path().join("bin/pgbench"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(debian)
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

// ---- scale ------------------------------------------------------------------------

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Rewrites every product once (same size), for the disk-use figure.
async fn overwrite_all(channels: &[Channel], count: u64, concurrency: usize) -> Result<(), Status> {
    for_each(channels, 0, count, concurrency, |mut client, n| async move {
        let mut product = sample_product(n + 1);
        product.name = format!("products/b{n:09}");
        client
            .update_product(UpdateProductRequest {
                product: Some(product),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["description".into(), "display_name".into()],
                }),
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await
}

async fn scale(load: LoadArgs, sizes: Vec<u64>) -> Result<(), Box<dyn std::error::Error>> {
    let binary = server_binary(&load)?;
    let data = tempfile::tempdir()?;
    let data_dir = data.path().display().to_string();
    let args = load.serve_args(&data_dir);
    let mut loaded = 0u64;
    let mut sizes = sizes;
    sizes.sort_unstable();
    println!(
        "size      | load/s | get/s  get p99 | update/s upd p99 | list/s list p99 | RSS MB | start-up s | disk/logical"
    );
    for size in sizes {
        let server = Process::start(&binary, &args)?;
        let channels = channels(&server.url(), load.connections).await?;
        let began = Instant::now();
        preload(&channels, loaded, size - loaded, load.concurrency).await?;
        let load_rate = (size - loaded) as f64 / began.elapsed().as_secs_f64();
        loaded = size;
        // Creates are measured by the load above; the rest on the full catalog.
        let mut short = load.clone();
        short.seconds = load.seconds;
        let ops = measure_products(&short, &channels, size, u64::MAX / 2).await;
        overwrite_all(&channels, size, load.concurrency).await?;
        let logical = size * sample_product(0).encoded_len() as u64;
        server.stop();
        // Start-up with this much data, then memory once serving.
        let restarted = Process::start(&binary, &args)?;
        let startup = restarted.started_in;
        let channels = self::channels(&restarted.url(), load.connections).await?;
        let _ = run(
            "warm",
            &LoadArgs {
                seconds: 1,
                ..load.clone()
            },
            &channels,
            move |channel, n| async move {
                ProductServiceClient::new(channel)
                    .get_product(GetProductRequest {
                        name: format!("products/b{:09}", n % size),
                    })
                    .await
                    .map(|_| ())
            },
        )
        .await;
        let rss = restarted.rss_bytes().unwrap_or_default();
        restarted.stop();
        let disk = dir_bytes(data.path());
        println!(
            "{size:<9} | {load_rate:>6.0} | {:>6.0} {:>6.2}ms | {:>8.0} {:>6.2}ms | {:>6.0} {:>6.2}ms | {:>6.1} | {:>10.3} | {:.2}",
            ops.get.rate(),
            ops.get.percentile_ms(0.99),
            ops.update.rate(),
            ops.update.percentile_ms(0.99),
            ops.list.rate(),
            ops.list.percentile_ms(0.99),
            rss as f64 / 1e6,
            startup.as_secs_f64(),
            disk as f64 / logical as f64,
        );
    }
    Ok(())
}
