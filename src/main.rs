//! The `producthub` command: `producthub serve [--listen ADDR] [--data-dir DIR]`
//! runs the server; `producthub import`, `link` and `unlink` are clients of a
//! running one (`producthub::cli`); `producthub export` and `import-snapshot`
//! copy a catalog out of and into a store (`producthub::snapshot`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use producthub::app::{Config, ReconcileOptions, StoreChoice, checkpoint_storage, serve};
use producthub::catalog::DEFAULT_MAX_WATCH_STREAMS;
use producthub::cli;
use producthub::domain::sync_plan::DriftPolicy;
use producthub::storage::{PostgresOptions, SledOptions, redact_url};
use producthub::sync::RetryPolicy;
use producthub::transport::{ConnectionLimits, GrpcOptions, TlsFiles, Tokens};
use producthub::vendors::VendorArgs;

/// glibc's allocator spent about 13 % of a create in malloc/free and its arena
/// locks (perf, 64 calls in flight); mimalloc's per-thread heaps avoid both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

/// How often, at most, an idle worker thread hands its free memory back.
const RETURN_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Called when a runtime worker runs out of work: at most once a second per
/// thread, mimalloc gives the pages freed on this thread back to the system.
/// mimalloc purges freed pages only while the thread that owns them goes on
/// allocating, so after a burst (a flood of 4 MiB requests, thousands of
/// streams) an idle server would otherwise keep its peak memory for good.
fn return_idle_memory() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| {
        let now = std::time::Instant::now();
        if last
            .get()
            .is_some_and(|at| now.duration_since(at) < RETURN_MEMORY_EVERY)
        {
            return;
        }
        last.set(Some(now));
        // SAFETY: mi_collect is thread-safe; it trims this thread's heap and purges what is due.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

#[derive(Parser)]
#[command(
    version,
    about = "One canonical product, served over gRPC and translated for EnOS, Cryptlex and Revenium"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeArgs>),
    /// Import a vendor's whole catalog into a running server (links what
    /// matches, creates the rest), showing progress.
    Import(cli::ImportArgs),
    /// Link an existing vendor copy to a product on a running server.
    Link(cli::LinkArgs),
    /// Let go of a product's vendor copy on a running server, leaving the copy as it is.
    Unlink(cli::UnlinkArgs),
    /// Write every product (with its sync state and remote ids) as JSON lines:
    /// from a stopped server's data directory or a PostgreSQL database (as of
    /// one moment), or from a running server (page by page).
    Export(ExportArgs),
    /// Load a snapshot written by `producthub export` into an empty store
    /// (a sled data directory or a PostgreSQL database).
    ImportSnapshot(ImportSnapshotArgs),
}

/// Where a snapshot is read from or written to, directly (no server).
#[derive(clap::Args)]
struct StoreArgs {
    /// A sled data directory (its server stopped: the directory is locked
    /// while one runs).
    #[arg(long, conflicts_with = "store")]
    data_dir: Option<PathBuf>,

    /// A PostgreSQL database, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`
    /// (replicas may keep running).
    #[arg(long)]
    store: Option<String>,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    from: StoreArgs,

    /// Read a running server instead (with --server, --token, ...).
    #[arg(long, conflicts_with_all = ["data_dir", "store"])]
    running: bool,

    #[command(flatten)]
    server: cli::ServerArgs,

    /// Write the snapshot here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ImportSnapshotArgs {
    #[command(flatten)]
    into: StoreArgs,

    /// Read the snapshot from here instead of standard input.
    #[arg(long, short)]
    input: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on, `HOST:PORT` (a name such as `localhost` is
    /// resolved; port 0 picks a free port).
    #[arg(long, env = "PRODUCTHUB_LISTEN", default_value = "127.0.0.1:50051", value_parser = parse_address)]
    listen: SocketAddr,

    /// Where products live: unset for the embedded sled database in
    /// --data-dir, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for a
    /// PostgreSQL database shared by several producthub replicas.
    #[arg(long, env = "PRODUCTHUB_STORE")]
    store: Option<String>,

    /// Pooled connections to PostgreSQL per replica (with --store
    /// postgres://...), besides the 4 that GetProduct's reads share.
    #[arg(long, env = "PRODUCTHUB_STORE_POOL_SIZE", default_value_t = 16)]
    store_pool_size: usize,

    /// With PostgreSQL: seconds a replica holds a claimed sync item before
    /// another replica may take it over.
    #[arg(long, env = "PRODUCTHUB_SYNC_LEASE_SECS", default_value_t = 30)]
    sync_lease_secs: u64,

    /// Directory holding the sled database (created if missing).
    #[arg(long, env = "PRODUCTHUB_DATA_DIR", default_value = "./producthub-data")]
    data_dir: PathBuf,

    /// Largest request accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PRODUCTHUB_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,

    /// Memory for sled's page cache, in bytes.
    #[arg(long, env = "PRODUCTHUB_CACHE_BYTES", default_value_t = SledOptions::default().cache_capacity_bytes)]
    cache_bytes: u64,

    /// ProductService calls allowed in flight at once; beyond it calls are
    /// refused at once with UNAVAILABLE (reason OVERLOADED) instead of queued.
    #[arg(long, env = "PRODUCTHUB_MAX_IN_FLIGHT", default_value_t = 512)]
    max_in_flight: usize,

    /// The longest any call may run, in seconds; a client's shorter deadline
    /// (`grpc-timeout`) wins.
    #[arg(long, env = "PRODUCTHUB_CALL_TIMEOUT_SECS", default_value_t = 30)]
    call_timeout_secs: u64,

    /// File of bearer tokens, one `read-only TOKEN` or `read-write TOKEN` per
    /// line. With it (or PRODUCTHUB_TOKENS), every call needs a token.
    #[arg(long, env = "PRODUCTHUB_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,

    /// Let health checks and reflection through without a token.
    #[arg(long, env = "PRODUCTHUB_OPEN_PROBES")]
    open_probes: bool,

    /// PEM certificate chain: serve TLS (needs --tls-key).
    #[arg(long, env = "PRODUCTHUB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "PRODUCTHUB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// PEM CA certificate: require client certificates signed by it (mutual TLS).
    #[arg(long, env = "PRODUCTHUB_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks a free port).
    #[arg(long, env = "PRODUCTHUB_METRICS_LISTEN", value_parser = parse_address)]
    metrics_listen: Option<SocketAddr>,

    /// How many of the newest changes WatchProducts keeps for clients that
    /// resume; an older resume token gets FAILED_PRECONDITION. 0 turns the
    /// change log (and WatchProducts) off, which makes every write cheaper.
    #[arg(long, env = "PRODUCTHUB_WATCH_RETENTION", default_value_t = 100_000)]
    watch_retention: u64,

    /// WatchProducts streams allowed open at once; more are refused with
    /// RESOURCE_EXHAUSTED until one closes.
    #[arg(long, env = "PRODUCTHUB_MAX_WATCH_STREAMS", default_value_t = DEFAULT_MAX_WATCH_STREAMS)]
    max_watch_streams: usize,

    /// Calls one client connection may have open at once (HTTP/2
    /// SETTINGS_MAX_CONCURRENT_STREAMS); more wait at the client.
    #[arg(long, env = "PRODUCTHUB_MAX_STREAMS_PER_CONNECTION", default_value_t = 256)]
    max_streams_per_connection: u32,

    /// Seconds between HTTP/2 keepalive pings on a connection; a peer that
    /// does not answer in 20 s is disconnected. 0 sends none.
    #[arg(long, env = "PRODUCTHUB_KEEPALIVE_SECS", default_value_t = 30)]
    keepalive_secs: u64,

    /// Connections open at once; more are closed as soon as they are
    /// accepted. Default: 10 000, or fewer to fit the process's open-file
    /// limit (`ulimit -n`, raised to its hard limit first) less 256
    /// descriptors. A number given here is kept, with a warning if it does not fit.
    #[arg(long, env = "PRODUCTHUB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,

    /// Seconds a new connection has to send its HTTP/2 preface (with TLS: to
    /// finish the TLS handshake) before it is closed.
    #[arg(long, env = "PRODUCTHUB_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout_secs: u64,

    /// Seconds a connection may have no call open (watch streams count as
    /// open) before it is closed; 0 never closes idle connections.
    #[arg(long, env = "PRODUCTHUB_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    idle_timeout_secs: u64,

    /// Bytes of request messages held at once, by every call together; a
    /// call whose message would exceed it is refused with RESOURCE_EXHAUSTED
    /// before its body is read.
    #[arg(long, env = "PRODUCTHUB_MAX_REQUEST_BYTES_IN_FLIGHT", default_value_t = 32 * 1024 * 1024)]
    max_request_bytes_in_flight: usize,

    /// ListProducts calls run at once (default: two per core); more are
    /// refused at once with RESOURCE_EXHAUSTED and a retry delay, so a flood
    /// of lists leaves the cores to cheap calls.
    #[arg(long, env = "PRODUCTHUB_MAX_CONCURRENT_LISTS", default_value_t = producthub::catalog::default_max_lists())]
    max_concurrent_lists: usize,

    /// On SIGINT/SIGTERM, seconds to let calls in flight finish before closing.
    #[arg(long, env = "PRODUCTHUB_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,

    /// How often every vendor copy is read and compared with what producthub
    /// last delivered or read (e.g. `30s`, `10m`, `1h`; `off` never, leaving
    /// webhooks, deliveries and ReconcileProduct to notice drift). Each pass
    /// costs one GET per copy.
    #[arg(long, env = "PRODUCTHUB_RECONCILE_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    reconcile_interval: Interval,

    /// What a reconcile does with a copy changed at the vendor, unless a call
    /// says otherwise: `report` (mark it DRIFTED, overwrite nothing), `push`
    /// (send producthub's values again) or `adopt` (take the vendor's values
    /// as a canonical update).
    #[arg(long, env = "PRODUCTHUB_RECONCILE_POLICY", default_value = "report")]
    reconcile_policy: DriftPolicy,

    /// Take the vendors' webhooks (today Cryptlex's, at
    /// http://ADDR/webhooks/cryptlex; needs --cryptlex-webhook-token).
    #[arg(long, env = "PRODUCTHUB_WEBHOOK_LISTEN", value_parser = parse_address)]
    webhook_listen: Option<SocketAddr>,

    /// The vendors' flags (EnOS, Cryptlex, Revenium): each vendor is synced
    /// once its credentials are given.
    #[command(flatten)]
    vendors: VendorArgs,

    /// First retry delay of a failed vendor delivery, in milliseconds (doubling up to the max).
    #[arg(long, env = "PRODUCTHUB_SYNC_RETRY_BASE_MS", default_value_t = 500)]
    sync_retry_base_ms: u64,

    /// Longest retry delay of a failed vendor delivery, in milliseconds.
    #[arg(long, env = "PRODUCTHUB_SYNC_RETRY_MAX_MS", default_value_t = 60_000)]
    sync_retry_max_ms: u64,

    /// Deliveries in flight to each vendor at once. Each vendor has a lane of
    /// its own, so a slow or failing vendor delays only its own deliveries;
    /// a product's changes reach a vendor one at a time, in order.
    #[arg(long, env = "PRODUCTHUB_SYNC_CONCURRENCY", default_value_t = producthub::sync::worker::DEFAULT_CONCURRENCY as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    sync_concurrency: u16,

    /// Log format.
    #[arg(long, env = "PRODUCTHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `HOST:PORT`, an IP address or a name (`localhost:50051`), resolved now:
/// the name's first IPv4 address (else its first) is the one listened on;
/// the start-up output prints the address bound.
fn parse_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let resolved: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT (such as 127.0.0.1:50051 or localhost:50051): {e}"))?
        .collect();
    // IPv4 first: `localhost` often resolves to ::1 first, and clients that
    // dial 127.0.0.1 would not reach a server bound there.
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// A reconcile interval: a duration, or never.
#[derive(Clone, Copy, Debug)]
struct Interval(Option<std::time::Duration>);

/// `30s`, `10m`, `2h`, `500ms`; `off` (or `0`) for never.
fn parse_interval(text: &str) -> Result<Interval, String> {
    let text = text.trim();
    if matches!(text, "off" | "0" | "never") {
        return Ok(Interval(None));
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 10m or 1h (or off)"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    match amount.checked_mul(unit_ms) {
        Some(0) => Ok(Interval(None)),
        Some(ms) => Ok(Interval(Some(std::time::Duration::from_millis(ms)))),
        None => Err(format!("{text:?} is too long")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn retry_policy(args: &ServeArgs) -> RetryPolicy {
    RetryPolicy {
        base: std::time::Duration::from_millis(args.sync_retry_base_ms),
        max: std::time::Duration::from_millis(args.sync_retry_max_ms),
        ..RetryPolicy::default()
    }
}

/// The token table from `--tokens-file` or `PRODUCTHUB_TOKENS` (not both).
/// Errors name the source and the line, never a token.
fn tokens(args: &ServeArgs) -> Result<Option<Tokens>, String> {
    let inline = std::env::var("PRODUCTHUB_TOKENS").ok();
    let (source, text) = match (&args.tokens_file, inline) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err("give --tokens-file or PRODUCTHUB_TOKENS, not both".into()),
        (Some(path), None) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        (None, Some(text)) => ("PRODUCTHUB_TOKENS".to_string(), text),
    };
    Tokens::parse(&text)
        .map(Some)
        .map_err(|e| format!("bad token table {source}: {e}"))
}

fn store_choice(args: &ServeArgs) -> Result<StoreChoice, String> {
    match args.store.as_deref() {
        None | Some("") | Some("sled") => Ok(StoreChoice::Sled),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            if args.watch_retention == 0 {
                return Err("--watch-retention 0 (no change log) is for the sled backend only: replicas sharing a database share its change log".into());
            }
            Ok(StoreChoice::Postgres(PostgresOptions {
                url: url.to_owned(),
                pool_size: args.store_pool_size,
                lease: std::time::Duration::from_secs(args.sync_lease_secs.max(1)),
            }))
        }
        Some(other) => Err(format!(
            "--store must be a postgres:// URL (or unset for the embedded sled store), not {:?}",
            redact_url(other)
        )),
    }
}

fn tls_files(args: &ServeArgs) -> Result<Option<TlsFiles>, String> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    Ok(Some(TlsFiles {
        cert_pem: read(cert, "TLS certificate")?,
        key_pem: read(key, "TLS key")?,
        client_ca_pem: args
            .tls_client_ca
            .as_ref()
            .map(|ca| read(ca, "client CA certificate"))
            .transpose()?,
    }))
}

fn main() -> ExitCode {
    producthub::app::keep_memory_in_small_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => exit_with(error),
    };
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Import(args) => {
            return run_client(async {
                cli::import(args).await.map(|outcome| match outcome {
                    cli::ImportOutcome::Done => ExitCode::SUCCESS,
                    // Some vendor products were refused (listed above).
                    cli::ImportOutcome::SomeFailed => ExitCode::from(2),
                })
            });
        }
        Command::Link(args) => return run_client(async { cli::link(args).await.map(|()| ExitCode::SUCCESS) }),
        Command::Unlink(args) => return run_client(async { cli::unlink(args).await.map(|()| ExitCode::SUCCESS) }),
        Command::Export(args) => return run_client(export(args)),
        Command::ImportSnapshot(args) => return run_client(import_snapshot(args)),
    };
    init_logging(args.log_format);
    let settings = args
        .vendors
        .config()
        .and_then(|vendors| Ok((vendors, tokens(&args)?, tls_files(&args)?, store_choice(&args)?)));
    let (vendors, tokens, tls, store) = match settings {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("producthub: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        store,
        sled: SledOptions {
            cache_capacity_bytes: args.cache_bytes,
            change_log: args.watch_retention > 0,
        },
        grpc: GrpcOptions {
            max_message_bytes: args.max_message_bytes,
            tokens,
            open_probes: args.open_probes,
            max_in_flight: args.max_in_flight,
            call_timeout: std::time::Duration::from_secs(args.call_timeout_secs),
            tls,
            shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_secs),
            max_streams_per_connection: args.max_streams_per_connection,
            keepalive: (args.keepalive_secs > 0).then(|| std::time::Duration::from_secs(args.keepalive_secs)),
            connections: ConnectionLimits {
                max_connections: args.max_connections.map_or(ConnectionLimits::DEFAULT_MAX, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
                max_connections_given: args.max_connections.is_some(),
                handshake_timeout: std::time::Duration::from_secs(args.handshake_timeout_secs),
                idle_timeout: (args.idle_timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(args.idle_timeout_secs)),
            },
            max_request_bytes_in_flight: args.max_request_bytes_in_flight,
        },
        vendors,
        retry: retry_policy(&args),
        sync_concurrency: usize::from(args.sync_concurrency),
        watch_retention: args.watch_retention,
        max_watch_streams: args.max_watch_streams,
        max_concurrent_lists: args.max_concurrent_lists,
        metrics_listen: args.metrics_listen,
        reconcile: ReconcileOptions {
            interval: args.reconcile_interval.0,
            policy: args.reconcile_policy,
        },
        webhook_listen: args.webhook_listen,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(return_idle_memory)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("producthub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let for_checkpoint = config.clone();
    let served = runtime.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        serve(config, shutdown).await.map_err(|e| e.to_string())
    });
    // Drops every task still holding the store (a connection the grace
    // period cut off), so the checkpoint can take the data directory.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => {
            checkpoint_storage(&for_checkpoint);
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, for people and for scripts alike.
            eprintln!("producthub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command; its error is one line (or a few, for bad fields).
fn run_client(command: impl std::future::Future<Output = Result<ExitCode, cli::CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("producthub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("producthub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The store a snapshot command names, opened directly.
enum OpenedStore {
    Sled(Box<producthub::storage::SledStore>),
    Postgres(producthub::storage::PostgresStore),
}

/// `existing`: the data directory must exist already (an export of a
/// mistyped path reports it rather than create an empty one).
async fn open_store(args: &StoreArgs, existing: bool) -> Result<OpenedStore, cli::CliError> {
    let failed = |e: producthub::storage::StoreError| cli::CliError::Call(e.to_string());
    match (&args.data_dir, &args.store) {
        (Some(dir), _) if existing && !dir.join("sled").is_dir() => Err(cli::CliError::Usage(format!(
            "{} is not a producthub data directory",
            dir.display()
        ))),
        (Some(dir), _) => {
            let options = SledOptions {
                change_log: true,
                ..SledOptions::default()
            };
            producthub::storage::SledStore::open(dir, &options)
                .map(|store| OpenedStore::Sled(Box::new(store)))
                .map_err(failed)
        }
        (None, Some(url)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // Enough connections for an import's writes in flight.
            let options = PostgresOptions {
                url: url.clone(),
                pool_size: producthub::snapshot::WRITES_IN_FLIGHT + 2,
                lease: std::time::Duration::from_secs(30),
            };
            // An export reads: it neither creates nor migrates a schema.
            let connected = match existing {
                true => producthub::storage::PostgresStore::connect_existing(&options).await,
                false => producthub::storage::PostgresStore::connect(&options).await,
            };
            connected.map(OpenedStore::Postgres).map_err(failed)
        }
        (None, Some(other)) => Err(cli::CliError::Usage(format!(
            "--store must be a postgres:// URL, not {:?}",
            redact_url(other)
        ))),
        (None, None) => Err(cli::CliError::Usage(
            "name the store: --data-dir DIR (sled) or --store postgres://... (or, for export, --running with --server URL to read a running server)".into(),
        )),
    }
}

async fn export(args: ExportArgs) -> Result<ExitCode, cli::CliError> {
    // The store first: a store that cannot be read leaves an existing file
    // (yesterday's backup) as it is.
    let store = match args.running {
        true => None,
        false => Some(open_store(&args.from, true).await?),
    };
    // Into a file beside the target, renamed over it only once complete.
    let partial = args.output.as_ref().map(|path| {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        path.with_file_name(name)
    });
    let mut out: Box<dyn std::io::Write + Send> = match &partial {
        Some(path) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| {
                cli::CliError::Usage(format!("cannot create {}: {e}", path.display()))
            })?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let failed = |e: producthub::snapshot::SnapshotError| cli::CliError::Call(e.to_string());
    let exported = match store {
        None => cli::export_from_server(&args.server, &mut out).await,
        Some(OpenedStore::Sled(store)) => producthub::snapshot::export(&*store, &mut out).await.map_err(failed),
        Some(OpenedStore::Postgres(store)) => producthub::snapshot::export(&store, &mut out).await.map_err(failed),
    };
    drop(out);
    let count = match (exported, &partial) {
        (Ok(count), _) => count,
        (Err(error), Some(partial)) => {
            let _ = std::fs::remove_file(partial);
            return Err(error);
        }
        (Err(error), None) => return Err(error),
    };
    if let (Some(partial), Some(path)) = (&partial, &args.output) {
        let finished = std::fs::File::open(partial)
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(partial, path));
        finished.map_err(|e| cli::CliError::Call(format!("cannot finish {}: {e}", path.display())))?;
    }
    eprintln!("exported {count} products");
    Ok(ExitCode::SUCCESS)
}

async fn import_snapshot(args: ImportSnapshotArgs) -> Result<ExitCode, cli::CliError> {
    let input: Box<dyn std::io::BufRead + Send> = match &args.input {
        Some(path) => {
            Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(|e| {
                cli::CliError::Usage(format!("cannot open {}: {e}", path.display()))
            })?))
        }
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let failed = |e: producthub::snapshot::SnapshotError| cli::CliError::Call(e.to_string());
    let count = match open_store(&args.into, false).await? {
        OpenedStore::Sled(store) => {
            let count = producthub::snapshot::import(&*store, input).await.map_err(failed)?;
            producthub::storage::ProductStore::flush(&*store)
                .await
                .map_err(|e| cli::CliError::Call(e.to_string()))?;
            count
        }
        OpenedStore::Postgres(store) => producthub::snapshot::import(&store, input).await.map_err(failed)?,
    };
    eprintln!("imported {count} products");
    Ok(ExitCode::SUCCESS)
}

/// Prints clap's error and exits; a bad value that came from an environment
/// variable says so, naming the variable rather than only the flag.
fn exit_with(error: clap::Error) -> ! {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let from_env = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(shown)) => {
            let long = shown
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_start_matches("--")
                .to_owned();
            let given_as_flag =
                std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
            let command = Cli::command();
            let env = command
                .get_subcommands()
                .chain(std::iter::once(&command))
                .flat_map(|c| c.get_arguments())
                .find(|a| a.get_long() == Some(long.as_str()))
                .and_then(|a| a.get_env())
                .map(|env| env.to_string_lossy().into_owned());
            env.filter(|env| !given_as_flag && std::env::var_os(env).is_some())
        }
        _ => None,
    };
    match from_env {
        Some(env) => {
            let rendered = error.render().to_string();
            eprint!(
                "{}",
                rendered.replacen("error: ", &format!("error: (from the environment variable {env}) "), 1)
            );
            std::process::exit(2);
        }
        None => error.exit(),
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal, never into a file or a pipe.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A future resolving on the first SIGINT or SIGTERM. The handlers are
/// installed right here, before the server starts: installed lazily (at the
/// future's first poll), a signal sent just after start-up could still meet
/// the default action and kill the process without a clean shutdown.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutdown requested");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown requested");
        })
    }
}
