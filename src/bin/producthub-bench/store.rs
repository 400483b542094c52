//! `store`: the sled store's write path alone, in process, with the change
//! log on and off in alternating rounds of one run.
//!
//! No network, no gRPC and no client share the cores with it, so what the
//! change log costs a write shows without the noise of a whole server. The
//! CPU time per write (user + system, from `getrusage`) is the steadier
//! figure on a shared machine; under `valgrind --tool=callgrind` the same mode
//! counts instructions per write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use producthub::storage::{Products, SledOptions, SledStore};

use super::sample_product;

#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Products stored before the updates, which are spread over them.
    #[arg(long, default_value_t = 10_000)]
    products: u64,
    /// Updates per round.
    #[arg(long, default_value_t = 100_000)]
    updates: u64,
    /// Updates in flight at once (each waits for its group commit).
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Rounds of each setting, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Only this setting: `on` or `off` (for a profiler).
    #[arg(long)]
    log: Option<String>,
}

struct Round {
    wall: Duration,
    cpu: Duration,
}

pub async fn store(args: StoreArgs) -> Result<(), Box<dyn std::error::Error>> {
    let settings: Vec<bool> = match args.log.as_deref() {
        None => vec![true, false],
        Some("on") => vec![true],
        Some("off") => vec![false],
        Some(other) => return Err(format!("--log takes on or off, not {other}").into()),
    };
    println!(
        "{} updates per round over {} products, {} in flight, {} cores",
        args.updates,
        args.products,
        args.concurrency,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    for round in 1..=args.rounds {
        for &change_log in &settings {
            let measured = one_round(&args, change_log).await?;
            let updates = args.updates as f64;
            println!(
                "round {round} change log {:<3}  {:>8.0} updates/s  {:>6.1} µs CPU per update",
                if change_log { "on" } else { "off" },
                updates / measured.wall.as_secs_f64(),
                measured.cpu.as_secs_f64() * 1e6 / updates,
            );
        }
    }
    Ok(())
}

/// A fresh store, loaded, then `updates` updates (mask-free: the description
/// is replaced) from `concurrency` tasks.
async fn one_round(args: &StoreArgs, change_log: bool) -> Result<Round, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = SledOptions {
        change_log,
        ..SledOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), &options)?);
    let pool = args.products.max(1);
    run_tasks(&store, args.concurrency, pool, |n| (format!("s{n:09}"), n)).await?;
    let cpu_before = cpu_time();
    let began = Instant::now();
    run_tasks(&store, args.concurrency, args.updates, move |n| {
        (format!("s{:09}", (n * 7919) % pool), n)
    })
    .await?;
    Ok(Round {
        wall: began.elapsed(),
        cpu: cpu_time().saturating_sub(cpu_before),
    })
}

/// Writes `count` products from `concurrency` tasks: `key(n)` names the
/// product and the payload's number for the `n`th write.
async fn run_tasks(
    store: &Arc<SledStore>,
    concurrency: u64,
    count: u64,
    key: impl Fn(u64) -> (String, u64) + Send + Sync + Clone + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (store, next, key) = (store.clone(), next.clone(), key.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<(), String>(());
                    }
                    let (id, payload) = key(n);
                    let name = format!("products/{id}");
                    store
                        .update(&id, false, |current| {
                            let mut next = sample_product(payload);
                            next.name.clone_from(&name);
                            if let Some(current) = current {
                                next.create_time = current.create_time;
                            }
                            Ok::<_, ()>(next)
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|()| "refused".to_string())?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// This process's CPU time so far, user and system.
pub(super) fn cpu_time() -> Duration {
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF (every thread of this process) with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    micros(usage.ru_utime) + micros(usage.ru_stime)
}
