//! The `producthub` command: `producthub serve [--listen ADDR] [--data-dir DIR]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use producthub::adapters::VendorSettings;
use producthub::storage::SledOptions;
use producthub::transport::{ServerConfig, serve};
use tracing_subscriber::EnvFilter;

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
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "PRODUCTHUB_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,

    /// Directory holding the sled database (created if missing).
    #[arg(long, env = "PRODUCTHUB_DATA_DIR", default_value = "./producthub-data")]
    data_dir: PathBuf,

    /// Largest request accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PRODUCTHUB_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,

    /// Memory for sled's page cache, in bytes.
    #[arg(long, env = "PRODUCTHUB_CACHE_BYTES", default_value_t = SledOptions::default().cache_capacity_bytes)]
    cache_bytes: u64,

    /// On SIGINT/SIGTERM, seconds to let calls in flight finish before closing.
    #[arg(long, env = "PRODUCTHUB_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,

    /// EnOS organization id (`orgId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_ENOS_ORG_ID")]
    enos_org_id: Option<String>,

    /// Revenium team id (`teamId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_TEAM_ID")]
    revenium_team_id: Option<String>,

    /// Revenium owner id (`ownerId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_OWNER_ID")]
    revenium_owner_id: Option<String>,

    /// Log format.
    #[arg(long, env = "PRODUCTHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    init_logging(args.log_format);
    let config = ServerConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        max_message_bytes: args.max_message_bytes,
        sled: SledOptions {
            cache_capacity_bytes: args.cache_bytes,
        },
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_secs),
        vendors: VendorSettings {
            enos_org_id: args.enos_org_id,
            revenium_team_id: args.revenium_team_id,
            revenium_owner_id: args.revenium_owner_id,
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("producthub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, for people and for scripts alike.
            eprintln!("producthub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}
