//! `producthub-bench sync`: how fast the sync worker delivers a bulk change to
//! each vendor, against the suite's fake vendors (`tests/fake_vendors`)
//! answering every call after a fixed latency.
//!
//! A vendor's lane has `--sync-concurrency` calls in flight, each taking the
//! latency, so its ceiling is concurrency / latency calls per second. Two
//! rounds: `--products` new products with all three profiles (each a create at
//! every vendor, plus the read-back of the copy where the vendor's answer
//! carries only an id), then as many again with one vendor stalled (it never
//! answers; each call waits out producthub's request timeout), when the other
//! two must keep their rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use producthub::pb::{
    IotDataFormat, IotProductType, IotProfile, LicensingProfile, MonetizationProfile, Plan, PriceTier, Product,
};

use super::fake_vendors::{Fake, Recorded, Vendors, vendor_args, vendors};
use super::{LoadArgs, Process, channels, create_each, server_binary};

/// A product with every vendor's profile, as the fakes accept it.
fn everywhere(n: u64) -> Product {
    Product {
        display_name: format!("Synced product {n}"),
        description: "d".repeat(200),
        version: "1.0.0".into(),
        iot: Some(IotProfile {
            model_id: "station".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            ..Default::default()
        }),
        licensing: Some(LicensingProfile {
            license_template_id: "lt-1".into(),
            ..Default::default()
        }),
        monetization: Some(MonetizationProfile {
            plan: Some(Plan {
                name: "Std".into(),
                currency: "USD".into(),
                tiers: vec![PriceTier::default()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A create the fake answered with success (EnOS names the action in the
/// query; the others POST to the collection).
fn is_create(call: &Recorded) -> bool {
    let succeeded = (200..300).contains(&call.status);
    let create = if call.path.starts_with("/connect-service/") {
        call.query.get("action").is_some_and(|a| a == "create")
    } else {
        call.method == "POST"
    };
    succeeded && create
}

fn is_product_call(call: &Recorded) -> bool {
    !call.path.contains("apim-token-service")
}

/// One vendor's figures for a round.
struct Lane {
    name: &'static str,
    created: usize,
    calls: usize,
    done_after: Option<Duration>,
}

/// Creates products `from..from + count` and follows each fake until it has
/// created all of them (or `give_up` passes).
async fn round(
    url: &str,
    fakes: &[(&'static str, &Fake)],
    from: u64,
    count: u64,
    give_up: Duration,
) -> Result<Vec<Lane>, Box<dyn std::error::Error>> {
    let before: BTreeMap<&str, (usize, usize)> = fakes
        .iter()
        .map(|(name, fake)| (*name, (fake.count(is_create), fake.count(is_product_call))))
        .collect();
    let channels = channels(url, 4).await?;
    let started = Instant::now();
    create_each(&channels, from, count, 64, "s", everywhere).await?;
    let written = started.elapsed();
    println!(
        "  {count} CreateProduct calls answered after {:.2} s",
        written.as_secs_f64()
    );
    let mut lanes: Vec<Lane> = fakes
        .iter()
        .map(|(name, _)| Lane {
            name,
            created: 0,
            calls: 0,
            done_after: None,
        })
        .collect();
    while lanes.iter().any(|lane| lane.done_after.is_none()) && started.elapsed() < give_up {
        for (lane, (name, fake)) in lanes.iter_mut().zip(fakes) {
            if lane.done_after.is_some() {
                continue;
            }
            let (created, calls) = before[name];
            lane.created = fake.count(is_create) - created;
            lane.calls = fake.count(is_product_call) - calls;
            if lane.created as u64 >= count {
                lane.done_after = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (lane, (name, fake)) in lanes.iter_mut().zip(fakes) {
        if lane.done_after.is_none() {
            let (created, calls) = before[name];
            lane.created = fake.count(is_create) - created;
            lane.calls = fake.count(is_product_call) - calls;
        }
    }
    Ok(lanes)
}

fn report(lanes: &[Lane], count: u64, concurrency: usize, latency: Duration, give_up: Duration) {
    let ceiling = concurrency as f64 / latency.as_secs_f64();
    for lane in lanes {
        match lane.done_after {
            Some(after) => {
                let seconds = after.as_secs_f64();
                let calls_per_second = lane.calls as f64 / seconds;
                println!(
                    "  {:<9} {count} products in {seconds:>6.2} s: {:>7.1} products/s, {:>7.1} calls/s \
                     ({:.2} calls each) = {:.2}x the lane's ceiling of {ceiling:.0} calls/s",
                    lane.name,
                    count as f64 / seconds,
                    calls_per_second,
                    lane.calls as f64 / count as f64,
                    calls_per_second / ceiling,
                );
            }
            None => println!(
                "  {:<9} {} of {count} products created after {:.0} s ({} calls)",
                lane.name,
                lane.created,
                give_up.as_secs_f64(),
                lane.calls
            ),
        }
    }
}

pub async fn sync(
    load: LoadArgs,
    products: u64,
    latency: Duration,
    sync_concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let program = server_binary(&load)?;
    let Vendors {
        enos,
        cryptlex,
        revenium,
    } = vendors().await;
    for fake in [&enos, &cryptlex, &revenium] {
        fake.set(|b| b.latency = latency);
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_string_lossy().into_owned();
    let fakes = Vendors {
        enos: enos.clone(),
        cryptlex: cryptlex.clone(),
        revenium: revenium.clone(),
    };
    let concurrency = sync_concurrency.to_string();
    let mut args: Vec<String> = load.serve_args(&data_dir).iter().map(|s| s.to_string()).collect();
    args.extend(vendor_args(&fakes));
    args.extend(["--sync-concurrency".to_string(), concurrency]);
    let server = Process::start(&program, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let all = [("EnOS", &enos), ("Cryptlex", &cryptlex), ("Revenium", &revenium)];
    let give_up = Duration::from_secs(600);
    println!(
        "sync: {products} products with all three profiles; every fake vendor answers each call after {} ms; \
         --sync-concurrency {sync_concurrency}",
        latency.as_millis()
    );
    let lanes = round(&server.url(), &all, 0, products, give_up).await?;
    report(&lanes, products, sync_concurrency, latency, give_up);

    // Revenium stalls: each call hangs until producthub's request timeout.
    revenium.set(|b| b.latency = Duration::from_secs(3600));
    println!("sync: {products} more products with Revenium stalled (it never answers)");
    let healthy = [("EnOS", &enos), ("Cryptlex", &cryptlex)];
    let lanes = round(&server.url(), &healthy, products, products, give_up).await?;
    report(&lanes, products, sync_concurrency, latency, give_up);
    let stalled = revenium.count(is_create);
    println!("  Revenium  {stalled} creates answered in all (it stopped answering after the first round)");
    server.stop();
    Ok(())
}
