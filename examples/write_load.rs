//! A small closed-loop load generator for CreateProduct, used to see group
//! commit at work: durable writes per second at a given concurrency.
//!
//! ```sh
//! cargo run --release -- serve --data-dir /tmp/load-data &
//! cargo run --release --example write_load -- --concurrency 64 --seconds 5
//! ```
//! (The full benchmark harness, with ceilings and ratios, is a separate tool.)

use std::time::{Duration, Instant};

use clap::Parser;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{CreateProductRequest, Product};

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = ProductServiceClient::connect(args.addr.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let request = CreateProductRequest {
                        product: Some(Product {
                            display_name: "Load test product".into(),
                            description: "x".repeat(800),
                            labels: [("load".to_string(), "test".to_string())].into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let call = Instant::now();
                    match client.create_product(request).await {
                        Ok(_) => latencies.push(call.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "CreateProduct concurrency={} ok={} errors={} rate={:.0}/s p50={:.2}ms p99={:.2}ms",
        args.concurrency,
        latencies.len(),
        errors,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
