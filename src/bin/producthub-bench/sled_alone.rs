//! `sled`: what sled 0.34 alone does with the workload `scale` gives
//! producthub, with nothing of producthub around it: the floor under
//! `scale`'s disk and List figures.
//!
//! Each product is one key (its id) and one value (the bench's product as the
//! client encodes it: the logical bytes `scale` divides by, fewer than the
//! server stores). Writes go through [`DurableSled`] and wait for its group
//! commit, as the server's do; the load and the overwrite pass come in
//! ascending order, as `scale`'s do; the clean stop ends with the same
//! checkpoint. A "page" is 50 consecutive values from a spread-out start, the
//! storage half of a ListProducts(50), read where `scale` lists: after the
//! load, the database still open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use producthub::storage::{DurableSled, SledOptions};
use prost::Message;

use super::{dir_bytes, sample_product, store::cpu_time};

#[derive(clap::Args, Clone)]
pub struct SledArgs {
    /// Catalog sizes, comma-separated; each is built in a fresh directory.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<u64>,
    /// Writes in flight at once (each waits for its group commit).
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Seconds of page reads at each size.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

/// The products tree's name in the server's database.
const TREE: &str = "products";
/// Items per page, as `scale` lists them.
const PAGE: usize = 50;

pub async fn sled_alone(args: SledArgs) -> Result<(), Box<dyn std::error::Error>> {
    let cache = SledOptions::default().cache_capacity_bytes;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("sled alone, cache {cache} bytes, {threads} reading threads");
    println!("size      | load/s | overwrite/s | disk/logical | pages/s | CPU µs/page");
    let mut smallest: Option<(u64, f64)> = None;
    for size in args.sizes.iter().copied().filter(|&size| size > 0) {
        let dir = tempfile::tempdir()?;
        let sled = Arc::new(DurableSled::open(dir.path(), cache)?);
        let load = write_all(&sled, size, args.concurrency, 0).await?;
        // Pages are read where `scale` lists them: after the load, open.
        let (pages_per_second, cpu_per_page) = read_pages(&sled, size, threads, args.seconds)?;
        let overwrite = write_all(&sled, size, args.concurrency, 1).await?;
        drop(Arc::into_inner(sled).ok_or("a writer still holds the database")?);
        DurableSled::checkpoint(dir.path(), cache)?;
        let logical = size * sample_product(0).encoded_len() as u64;
        let disk = dir_bytes(dir.path());
        let micros = cpu_per_page.as_secs_f64() * 1e6;
        println!(
            "{size:<9} | {load:>6.0} | {overwrite:>11.0} | {:>12.2} | {pages_per_second:>7.0} | {micros:>11.1}",
            disk as f64 / logical as f64
        );
        match smallest {
            None => smallest = Some((size, micros)),
            Some((first, first_micros)) => println!(
                "  a page at {size} costs {:.2}x the CPU of one at {first}",
                micros / first_micros
            ),
        }
    }
    Ok(())
}

/// Writes every product once, ascending, from `concurrency` tasks, each
/// waiting for the group commit; `pass` varies the value as `scale`'s
/// overwrite does. Writes per second.
async fn write_all(
    sled: &Arc<DurableSled>,
    count: u64,
    concurrency: u64,
    pass: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let tree = sled.db().open_tree(TREE)?;
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (sled, tree, next) = (sled.clone(), tree.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<(), String>(());
                    }
                    let value = sample_product(n + pass).encode_to_vec();
                    tree.insert(format!("b{n:09}"), value).map_err(|e| e.to_string())?;
                    sled.durable().await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / began.elapsed().as_secs_f64())
}

/// Reads pages from `threads` threads for `seconds`, each starting after
/// `(n * 7919) % size` as `scale`'s ListProducts(50) does: pages per second
/// and the process's CPU time per page.
fn read_pages(
    sled: &DurableSled,
    size: u64,
    threads: usize,
    seconds: u64,
) -> Result<(f64, Duration), Box<dyn std::error::Error>> {
    let tree = sled.db().open_tree(TREE)?;
    let next = AtomicU64::new(0);
    let deadline = Duration::from_secs(seconds.max(1));
    let cpu_before = cpu_time();
    let began = Instant::now();
    let pages = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<u64, sled::Error> {
                    let mut pages = 0;
                    while began.elapsed() < deadline {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let after = format!("b{:09}", (n * 7919) % size);
                        let mut bytes = 0;
                        for item in tree.range(after.as_bytes()..).skip(1).take(PAGE) {
                            bytes += item?.1.len();
                        }
                        std::hint::black_box(bytes);
                        pages += 1;
                    }
                    Ok(pages)
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().map_err(|_| "a reading thread panicked".to_string()))
            .try_fold(0u64, |total, pages| {
                Ok::<_, String>(total + pages?.map_err(|e| e.to_string())?)
            })
    })?;
    let wall = began.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    Ok((pages as f64 / wall.as_secs_f64(), cpu.div_f64(pages.max(1) as f64)))
}
