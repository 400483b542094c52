//! Crash torture: concurrent creates, updates and deletes against the real
//! binary, SIGKILL at random moments, restart, and check that
//! - every acknowledged write is stored with its acknowledged etag,
//! - an acknowledged delete stays deleted,
//! - a write cut short by the kill is either wholly there or wholly absent,
//! - and the sync outbox survived too: after the last restart every product
//!   reaches the (fake) vendor at its final state.
//!
//! `PRODUCTHUB_TORTURE_CYCLES` sets the number of kill cycles (default 12, a
//! CI-sized run; try 300 for a long one) and `PRODUCTHUB_TORTURE_SEED` replays
//! a run's kill moments and write mix.

mod common;
mod fake_vendors;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::Server;
use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, LicensingProfile, Product, SyncState,
    UpdateProductRequest, Vendor,
};
use prost_types::FieldMask;
use tonic::transport::Channel;

/// A write the kill may have cut short.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InFlight {
    /// The write that would make `seq` this number.
    Write(u64),
    Delete,
}

/// What the clients were told about one product.
#[derive(Debug, Clone, Default)]
struct Acked {
    /// Sequence number and etag of the last acknowledged write (0: none).
    seq: u64,
    etag: String,
    deleted: bool,
    in_flight: Option<InFlight>,
}

type Ledger = Arc<Mutex<HashMap<String, Acked>>>;

/// xorshift64*: enough randomness for kill moments, and replayable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn vendor_args(cryptlex: &fake_vendors::Fake) -> Vec<String> {
    [
        "--cryptlex-base-url",
        &cryptlex.url(),
        "--cryptlex-token",
        fake_vendors::CRYPTLEX_TOKEN,
        "--sync-retry-base-ms",
        "50",
        "--sync-retry-max-ms",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start(dir: &std::path::Path, args: &[String]) -> Server {
    Server::start_with(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_random_kill_9() {
    const WRITERS: usize = 6;
    let cycles = env_number("PRODUCTHUB_TORTURE_CYCLES").unwrap_or(12);
    let seed = env_number("PRODUCTHUB_TORTURE_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    eprintln!("torture: {cycles} cycles, PRODUCTHUB_TORTURE_SEED={seed}");
    let mut rng = Rng(seed);
    let cryptlex = fake_vendors::cryptlex().await;
    let args = vendor_args(&cryptlex);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger: HashMap<String, Acked> = HashMap::new();
    let (mut writes, mut deletes, mut cut_short) = (0u64, 0u64, 0u64);

    for cycle in 0..cycles {
        let server = start(dir.path(), &args);
        let mut client = server.client().await;
        cut_short += check_and_settle(&mut client, &mut ledger).await;

        let shared: Ledger = Arc::new(Mutex::new(ledger.clone()));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (url, shared, seed) = (server.url(), shared.clone(), rng.next() | 1);
            tasks.push(tokio::spawn(async move {
                write_loop(url, format!("c{cycle}-w{w}"), shared, Rng(seed)).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
        server.kill9();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        ledger = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
        writes = ledger.values().map(|a| a.seq).sum();
        deletes = ledger.values().filter(|a| a.deleted).count() as u64;
    }

    let server = start(dir.path(), &args);
    let mut client = server.client().await;
    cut_short += check_and_settle(&mut client, &mut ledger).await;
    assert!(writes > 0, "no write was acknowledged");
    eprintln!(
        "torture: {cycles} kill -9 cycles; {writes} acknowledged writes and {deletes} acknowledged deletes all \
         checked; {cut_short} writes cut short were whole or absent"
    );

    // The outbox survived the kills: every product reaches the vendor at its
    // final state, under a vendor copy that exists.
    let survivors: Vec<String> = ledger
        .iter()
        .filter(|(_, a)| !a.deleted && a.seq > 0)
        .map(|(id, _)| id.clone())
        .collect();
    let mut remote_ids = BTreeSet::new();
    for id in &survivors {
        let product = wait_until_synced(&mut client, id).await;
        let entry = product.sync.iter().find(|s| s.vendor == Vendor::Cryptlex as i32);
        remote_ids.insert(entry.map(|s| s.remote_id.clone()).unwrap_or_default());
    }
    let live = live_remote_ids(&cryptlex);
    let missing: Vec<_> = remote_ids.difference(&live).collect();
    assert!(missing.is_empty(), "synced products without a vendor copy: {missing:?}");
    eprintln!(
        "torture: {} products synced at their final etag; {} vendor copies left over from deliveries \
         cut short (at-least-once delivery; Cryptlex has no idempotency key)",
        survivors.len(),
        live.len() - remote_ids.len()
    );
}

/// Checks every product against the ledger, then settles the writes the
/// kill cut short to what was stored (so the next cycle checks exactly).
/// Returns how many were cut short.
async fn check_and_settle(client: &mut ProductServiceClient<Channel>, ledger: &mut HashMap<String, Acked>) -> u64 {
    let mut cut_short = 0;
    for (id, acked) in ledger.iter_mut() {
        let stored = client
            .get_product(GetProductRequest {
                name: format!("products/{id}"),
            })
            .await
            .map(|r| r.into_inner());
        let stored = match stored {
            Ok(product) => Some(product),
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("{id}: {status:?}"),
        };
        check(id, acked, stored.as_ref());
        if acked.in_flight.take().is_some() {
            cut_short += 1;
            match stored {
                Some(product) => {
                    acked.seq = seq_of(&product);
                    acked.etag = product.etag;
                }
                None => acked.deleted = true,
            }
        }
    }
    cut_short
}

fn check(id: &str, acked: &Acked, stored: Option<&Product>) {
    let Some(stored) = stored else {
        let may_be_gone = acked.deleted
            || acked.in_flight == Some(InFlight::Delete)
            || (acked.seq == 0 && acked.in_flight == Some(InFlight::Write(1)));
        assert!(may_be_gone, "{id}: acknowledged product is missing ({acked:?})");
        return;
    };
    assert!(!acked.deleted, "{id}: an acknowledged delete came undone");
    let seq = seq_of(stored);
    assert_eq!(stored.description, format!("write {seq}"), "{id}: half-applied write");
    match acked.in_flight {
        Some(InFlight::Write(next)) if seq == next => {}
        _ => {
            assert_eq!(seq, acked.seq, "{id}: acknowledged write lost ({acked:?})");
            assert_eq!(stored.etag, acked.etag, "{id}: acknowledged etag lost");
        }
    }
}

fn seq_of(product: &Product) -> u64 {
    product.labels.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn new_product(id: &str) -> Product {
    Product {
        display_name: id.into(),
        description: "write 1".into(),
        labels: [("seq".to_string(), "1".to_string())].into(),
        licensing: Some(LicensingProfile {
            license_template_id: "lt-1".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mark(shared: &Ledger, id: &str, in_flight: InFlight) {
    shared.lock().unwrap().entry(id.to_owned()).or_default().in_flight = Some(in_flight);
}

fn acknowledge(shared: &Ledger, id: &str, change: impl FnOnce(&mut Acked)) {
    let mut ledger = shared.lock().unwrap();
    let acked = ledger.entry(id.to_owned()).or_default();
    acked.in_flight = None;
    change(acked);
}

/// Creates products one after another, updates each a few times, then
/// deletes it with its etag, recording every acknowledgement, until killed.
async fn write_loop(url: String, prefix: String, shared: Ledger, mut rng: Rng) {
    let Ok(mut client) = ProductServiceClient::connect(url).await else {
        return;
    };
    for k in 0.. {
        let id = format!("{prefix}-{k}");
        mark(&shared, &id, InFlight::Write(1));
        let request = CreateProductRequest {
            product: Some(new_product(&id)),
            product_id: id.clone(),
            ..Default::default()
        };
        let Ok(created) = client.create_product(request).await else {
            return;
        };
        let mut etag = created.into_inner().etag;
        acknowledge(&shared, &id, |a| {
            a.seq = 1;
            a.etag = etag.clone();
        });
        let updates = 1 + rng.below(6);
        for seq in 2..2 + updates {
            mark(&shared, &id, InFlight::Write(seq));
            let request = UpdateProductRequest {
                product: Some(Product {
                    name: format!("products/{id}"),
                    description: format!("write {seq}"),
                    labels: [("seq".to_string(), seq.to_string())].into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["description".into(), "labels.seq".into()],
                }),
                ..Default::default()
            };
            let Ok(updated) = client.update_product(request).await else {
                return;
            };
            etag = updated.into_inner().etag;
            acknowledge(&shared, &id, |a| {
                a.seq = seq;
                a.etag = etag.clone();
            });
        }
        // Most products are deleted again; some stay for later cycles.
        if rng.below(3) > 0 {
            mark(&shared, &id, InFlight::Delete);
            let request = DeleteProductRequest {
                name: format!("products/{id}"),
                etag: etag.clone(),
                ..Default::default()
            };
            if client.delete_product(request).await.is_err() {
                return;
            }
            acknowledge(&shared, &id, |a| a.deleted = true);
        }
    }
}

async fn wait_until_synced(client: &mut ProductServiceClient<Channel>, id: &str) -> Product {
    let name = format!("products/{id}");
    common::wait_for(client, &name, "delivery at the final etag", |product| {
        product.sync.iter().any(|s| {
            s.vendor == Vendor::Cryptlex as i32 && s.state == SyncState::Synced as i32 && s.synced_etag == product.etag
        })
    })
    .await
}

/// The fake Cryptlex's product ids that were created and not deleted (it
/// numbers them c1, c2, … in the order of its successful creates).
fn live_remote_ids(cryptlex: &fake_vendors::Fake) -> BTreeSet<String> {
    let calls = cryptlex.successful_calls();
    let created = calls.iter().filter(|c| c.method == "POST").count();
    let deleted: BTreeSet<String> = calls
        .iter()
        .filter(|c| c.method == "DELETE")
        .filter_map(|c| c.path.rsplit('/').next().map(str::to_owned))
        .collect();
    (1..=created)
        .map(|n| format!("c{n}"))
        .filter(|id| !deleted.contains(id))
        .collect()
}
