//! The storage seam's contract, one suite for every backend (as object_store
//! tests its backends): each test is written once against the `ProductStore`
//! traits and runs on the backend this suite runs on, sled by default and
//! PostgreSQL with `PRODUCTHUB_TEST_BACKEND=postgres` (a database of its own
//! per test, on the server `scripts/test` starts).

mod common;

use std::sync::Arc;

use producthub::pb::{Product, Vendor, VendorSync};
// The four concerns' methods come with the `ProductStore` bound.
use producthub::storage::{
    ChangeKind, InsertOutcome, LogPosition, PostgresOptions, PostgresStore, ProductStore, RequestRecord, SledOptions,
    SledStore, StoreError,
};

/// A store under test and what keeps it alive (the sled directory).
struct Fixture<S> {
    store: Arc<S>,
    _dir: tempfile::TempDir,
}

/// Runs `test` against the backend of this run.
macro_rules! conformance {
    ($name:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().expect("temporary directory");
            if common::on_postgres() {
                let url = common::postgres_database(&format!(
                    "conformance-{}-{}",
                    stringify!($name),
                    dir.path().display()
                ));
                let options = PostgresOptions {
                    url,
                    pool_size: 8,
                    lease: std::time::Duration::from_secs(30),
                };
                let store = PostgresStore::connect(&options)
                    .await
                    .expect("connect to PostgreSQL");
                $body(Fixture {
                    store: Arc::new(store),
                    _dir: dir,
                })
                .await;
            } else {
                let store = SledStore::open(dir.path(), &SledOptions::default()).expect("open sled");
                $body(Fixture {
                    store: Arc::new(store),
                    _dir: dir,
                })
                .await;
            }
        }
    };
}

conformance!(crud_round_trip, crud);
conformance!(compare_and_swap_loses_no_update, contention);
conformance!(a_refused_change_writes_nothing, refusal);
conformance!(request_ids_replay_the_first_outcome, request_ids);
conformance!(outbox_entries_settle_only_with_their_nonce, outbox_nonces);
conformance!(deletes_leave_tombstones_until_removed, tombstones);
conformance!(the_change_log_keeps_commit_order_and_skips_gaps, change_log);
conformance!(a_version_never_matches_a_later_incarnation, version_aba);
conformance!(concurrent_deletes_keep_the_winners_tombstone, concurrent_deletes);
conformance!(a_vendor_copy_has_one_holder, links);
conformance!(concurrent_claims_of_one_copy_have_one_winner, concurrent_links);
conformance!(a_delete_can_let_go_of_the_vendor_copies, delete_without_tombstone);
conformance!(operations_are_kept_with_their_cancel_requests, operations);

fn product(id: &str, uid: &str) -> Product {
    Product {
        name: format!("products/{id}"),
        uid: uid.into(),
        display_name: format!("Product {id}"),
        etag: format!("e-{uid}"),
        ..Default::default()
    }
}

fn relabel(product: &Product, key: &str, value: &str) -> Product {
    let mut next = product.clone();
    next.labels.insert(key.into(), value.into());
    next
}

async fn crud<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    for id in ["b", "a", "c"] {
        assert_eq!(
            s.insert(id, &product(id, &format!("u-{id}")), None, false)
                .await
                .unwrap(),
            InsertOutcome::Inserted
        );
    }
    assert_eq!(
        s.insert("a", &product("a", "u-other"), None, false).await.unwrap(),
        InsertOutcome::IdTaken
    );
    assert_eq!(s.get("a").await.unwrap().unwrap().uid, "u-a", "a clash writes nothing");
    let ids = |products: Vec<Product>| products.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        ids(s.scan(None, 10).await.unwrap()),
        ["products/a", "products/b", "products/c"]
    );
    assert_eq!(ids(s.scan(Some("a"), 1).await.unwrap()), ["products/b"]);

    let updated = s
        .update("b", false, |current| {
            Ok::<_, ()>(relabel(&current.expect("b exists"), "k", "v"))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.get("b").await.unwrap().unwrap(), updated);

    assert_eq!(s.delete("b", true, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    assert_eq!(s.get("b").await.unwrap(), None);
    assert_eq!(
        s.delete("b", true, |_| Ok::<_, ()>(())).await.unwrap(),
        Ok(false),
        "already gone"
    );
    // An update of a missing product sees `None`; what it returns is created.
    let created = s
        .update("b", false, |current| {
            assert!(current.is_none());
            Ok::<_, ()>(product("b", "u-b2"))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.get("b").await.unwrap().unwrap(), created);
}

async fn contention<S: ProductStore>(f: Fixture<S>) {
    f.store.insert("n", &product("n", "u-n"), None, false).await.unwrap();
    let writers = 4;
    let rounds = 25;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                store
                    .update("n", false, |current| {
                        let current = current.expect("n exists");
                        let count: u32 = current.labels.get("count").map_or(0, |c| c.parse().unwrap());
                        Ok::<_, ()>(relabel(&current, "count", &(count + 1).to_string()))
                    })
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let count = f.store.get("n").await.unwrap().unwrap().labels["count"].clone();
    assert_eq!(count, (writers * rounds).to_string(), "every increment counted once");
}

/// Every change after `after`, once the change that creates `marker` is
/// readable. A shared store makes a change readable only when every older
/// transaction has ended (other tests' too), so this waits, boundedly; once
/// the marker, written last, is readable, so is everything before it.
async fn changes_through<S: ProductStore>(s: &S, after: LogPosition, marker: &str) -> Vec<producthub::storage::Change> {
    let marker = format!("products/{marker}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        let mut from = after;
        loop {
            // Small batches, so reading on across batch ends is exercised too.
            let batch = s.changes(from, 2).await.unwrap();
            let Some(last) = batch.last() else { break };
            from = last.position;
            seen.extend(batch);
        }
        if seen.iter().any(|c| c.product.name == marker) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{marker}'s change never became readable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn refusal<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    let start = s.change_window().await.unwrap().newest;
    let before = product("r", "u-r");
    s.insert("r", &before, None, false).await.unwrap();
    let refused = s.update("r", true, |_| Err::<Product, _>("no")).await.unwrap();
    assert_eq!(refused, Err("no"));
    assert_eq!(s.delete("r", true, |_| Err("kept")).await.unwrap(), Err("kept"));
    assert_eq!(s.get("r").await.unwrap().unwrap(), before);
    s.insert("zz-marker", &product("zz-marker", "u-m"), None, false)
        .await
        .unwrap();
    let logged: Vec<String> = changes_through(s.as_ref(), start, "zz-marker")
        .await
        .into_iter()
        .map(|c| c.product.name)
        .collect();
    assert_eq!(
        logged,
        ["products/r", "products/zz-marker"],
        "the refusals logged nothing"
    );
    assert!(s.outbox(None, 10).await.unwrap().is_empty(), "nothing announced");
}

async fn request_ids<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    let first = product("q", "u-q1");
    let record = RequestRecord {
        request_id: "8d3b6f4e-0c1a-4e8e-9d7a-1f2b3c4d5e6f".into(),
        fingerprint: b"first".to_vec(),
        product: first.clone(),
    };
    assert_eq!(
        s.insert("q", &first, Some(&record), false).await.unwrap(),
        InsertOutcome::Inserted
    );
    let retry = RequestRecord {
        fingerprint: b"second".to_vec(),
        product: product("q2", "u-q2"),
        ..record.clone()
    };
    match s
        .insert("q2", &product("q2", "u-q2"), Some(&retry), false)
        .await
        .unwrap()
    {
        InsertOutcome::Replayed(stored) => {
            assert_eq!(stored.product, first, "the first call's product");
            assert_eq!(stored.fingerprint, b"first", "the first call's fingerprint");
        }
        other => panic!("a known request id replays, got {other:?}"),
    }
    assert_eq!(s.get("q2").await.unwrap(), None, "a replay writes nothing");
    // An id clash under a new request id leaves that request id free.
    let clash = RequestRecord {
        request_id: "1a2b3c4d-0000-4000-8000-000000000001".into(),
        fingerprint: b"clash".to_vec(),
        product: product("q", "u-q3"),
    };
    assert_eq!(
        s.insert("q", &product("q", "u-q3"), Some(&clash), false).await.unwrap(),
        InsertOutcome::IdTaken
    );
    let reuse = RequestRecord {
        product: product("q4", "u-q4"),
        ..clash
    };
    assert_eq!(
        s.insert("q4", &product("q4", "u-q4"), Some(&reuse), false)
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
}

async fn outbox_nonces<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    s.insert("o", &product("o", "u-o"), None, true).await.unwrap();
    s.insert("quiet", &product("quiet", "u-quiet"), None, false)
        .await
        .unwrap();
    let listed = s.outbox(None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["o"],
        "only announced writes"
    );
    let first_nonce = listed[0].1;
    assert!(s.renew_claim(producthub::storage::Claimed::Outbox("o")).await.unwrap());
    // Announced again meanwhile: the old nonce must not settle it.
    s.update("o", true, |current| Ok::<_, ()>(relabel(&current.unwrap(), "k", "v")))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !s.settle_outbox("o", first_nonce).await.unwrap(),
        "a stale nonce settles nothing"
    );
    let relisted = s.outbox(None, 10).await.unwrap();
    assert_eq!(relisted.len(), 1, "still waiting: {relisted:?}");
    assert_ne!(relisted[0].1, first_nonce);
    assert_eq!(s.outbox_depth(100).await.unwrap(), 1);
    assert!(s.settle_outbox("o", relisted[0].1).await.unwrap());
    assert!(s.outbox(None, 10).await.unwrap().is_empty());
    assert_eq!(s.outbox_depth(100).await.unwrap(), 0);
}

async fn tombstones<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    let doomed = product("t", "u-t");
    s.insert("t", &doomed, None, false).await.unwrap();
    assert_eq!(s.tombstone("u-t").await.unwrap(), None);
    assert_eq!(s.delete("t", true, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    assert_eq!(
        s.tombstone("u-t").await.unwrap(),
        Some(doomed.clone()),
        "the product as it was"
    );
    assert_eq!(s.tombstone_depth(100).await.unwrap(), 1);
    let listed = s.tombstones(None, 10).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&doomed));
    let attempted = relabel(&doomed, "attempts", "1");
    s.set_tombstone("u-t", Some(&attempted)).await.unwrap();
    assert_eq!(s.tombstone("u-t").await.unwrap(), Some(attempted));
    s.set_tombstone("u-t", None).await.unwrap();
    assert_eq!(s.tombstone("u-t").await.unwrap(), None);
    assert!(s.tombstones(None, 10).await.unwrap().is_empty());
    assert_eq!(s.tombstone_depth(100).await.unwrap(), 0);
}

async fn change_log<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    assert!(s.change_log_id().is_some(), "the log is on by default");
    let start = s.change_window().await.unwrap().newest;
    s.insert("c", &product("c", "u-c"), None, false).await.unwrap();
    s.update("c", false, |current| Ok::<_, ()>(relabel(&current.unwrap(), "k", "1")))
        .await
        .unwrap()
        .unwrap();
    // A create that fails (the id is taken) within a request-id transaction
    // commits nothing: on PostgreSQL it may leave a gap in the positions.
    let clash = RequestRecord {
        request_id: "2b3c4d5e-0000-4000-8000-000000000002".into(),
        fingerprint: b"x".to_vec(),
        product: product("c", "u-c2"),
    };
    assert_eq!(
        s.insert("c", &product("c", "u-c2"), Some(&clash), false).await.unwrap(),
        InsertOutcome::IdTaken
    );
    s.insert("d", &product("d", "u-d"), None, false).await.unwrap();
    assert_eq!(s.delete("c", true, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    s.insert("zz-marker", &product("zz-marker", "u-m"), None, false)
        .await
        .unwrap();

    let changes = changes_through(s.as_ref(), start, "zz-marker").await;
    let mut after = start;
    let mut seen = Vec::new();
    for change in &changes {
        assert!(change.position > after, "positions strictly increase");
        after = change.position;
        if change.product.name != "products/zz-marker" {
            seen.push((
                change.kind,
                change.product.name.clone(),
                change.product.labels.get("k").cloned(),
            ));
        }
    }
    let window = s.change_window().await.unwrap();
    assert_eq!(
        seen,
        [
            (ChangeKind::Created, "products/c".to_string(), None),
            (ChangeKind::Updated, "products/c".to_string(), Some("1".to_string())),
            (ChangeKind::Created, "products/d".to_string(), None),
            (ChangeKind::Deleted, "products/c".to_string(), Some("1".to_string())),
        ],
        "commit order, the failed create absent and its gap skipped; a delete logs the product as it was"
    );
    assert_eq!(after, window.newest, "the window ends at the newest change");
    assert!(s.changes(window.newest, 10).await.unwrap().is_empty());
    // Trimming keeps the newest changes and moves the window's start.
    s.trim_changes(1).await.unwrap();
    let trimmed = s.change_window().await.unwrap();
    assert!(trimmed.trimmed_through > start, "{trimmed:?}");
    let kept = s.changes(trimmed.trimmed_through, 10).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        (kept[0].kind, kept[0].product.name.as_str()),
        (ChangeKind::Created, "products/zz-marker")
    );
    assert!(LogPosition::default() <= trimmed.trimmed_through);
}

async fn version_aba<S: ProductStore>(f: Fixture<S>) {
    let s = &f.store;
    s.insert("v", &product("v", "u-v1"), None, false).await.unwrap();
    let (stale, read) = s.read_versioned("v").await.unwrap().expect("v exists");
    assert_eq!(s.delete("v", true, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    // Re-created under the same id: a new incarnation (new uid), as the
    // catalog always makes one.
    s.insert("v", &product("v", "u-v2"), None, false).await.unwrap();
    let late = relabel(&read, "from", "the first incarnation");
    assert!(
        !s.write_if("v", Some(&stale), &Default::default(), &late, false)
            .await
            .unwrap(),
        "a stale version must not match"
    );
    assert_eq!(s.get("v").await.unwrap().unwrap().uid, "u-v2");
    assert!(
        !s.delete_if("v", &stale, &read, true).await.unwrap(),
        "nor delete the new incarnation"
    );
    assert_eq!(s.get("v").await.unwrap().unwrap().uid, "u-v2");
    let (current, now) = s.read_versioned("v").await.unwrap().expect("v exists");
    assert!(
        s.write_if(
            "v",
            Some(&current),
            &Default::default(),
            &relabel(&now, "k", "v"),
            false
        )
        .await
        .unwrap()
    );
}

async fn concurrent_deletes<S: ProductStore>(f: Fixture<S>) {
    for round in 0..20 {
        let id = format!("x{round}");
        let uid = format!("u-x{round}");
        f.store.insert(&id, &product(&id, &uid), None, false).await.unwrap();
        let racers: Vec<_> = (0..3)
            .map(|_| {
                let store = f.store.clone();
                let id = id.clone();
                tokio::spawn(async move { store.delete(&id, true, |_| Ok::<_, ()>(())).await.unwrap().unwrap() })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            if racer.await.unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one delete wins");
        assert_eq!(f.store.get(&id).await.unwrap(), None);
        let tombstone = f.store.tombstone(&uid).await.unwrap();
        assert_eq!(
            tombstone.map(|t| t.uid),
            Some(uid.clone()),
            "round {round}: the winner's tombstone is kept"
        );
    }
}

/// `product` holding the vendor's copy `remote_id`.
fn holding(mut product: Product, vendor: Vendor, remote_id: &str) -> Product {
    product.sync.push(VendorSync {
        vendor: vendor as i32,
        remote_id: remote_id.into(),
        ..Default::default()
    });
    product.sync.sort_by_key(|s| s.vendor);
    product
}

fn holder_of(error: StoreError) -> String {
    match error {
        StoreError::LinkTaken { holder, .. } => holder,
        other => panic!("expected LinkTaken, got {other:?}"),
    }
}

async fn links<S: ProductStore>(f: Fixture<S>) {
    let s = &*f.store;
    let a = holding(product("a", "u-a"), Vendor::Cryptlex, "c1");
    assert_eq!(s.insert("a", &a, None, false).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(s.linked(Vendor::Cryptlex, "c1").await.unwrap().as_deref(), Some("a"));
    assert_eq!(s.linked(Vendor::Enos, "c1").await.unwrap(), None, "per vendor");
    let asked = ["none".to_owned(), "c1".to_owned(), "c1".to_owned()];
    assert_eq!(
        s.linked_all(Vendor::Cryptlex, &asked).await.unwrap(),
        [None, Some("a".to_owned()), Some("a".to_owned())]
    );

    // A second product cannot be created holding it, nor updated to hold it.
    let b = holding(product("b", "u-b"), Vendor::Cryptlex, "c1");
    assert_eq!(holder_of(s.insert("b", &b, None, false).await.unwrap_err()), "a");
    assert_eq!(s.get("b").await.unwrap(), None, "nothing written");
    s.insert("b", &product("b", "u-b"), None, false).await.unwrap();
    let claim = s
        .update("b", false, |p| Ok::<_, ()>(holding(p.unwrap(), Vendor::Cryptlex, "c1")))
        .await;
    assert_eq!(holder_of(claim.unwrap_err()), "a");
    assert!(s.get("b").await.unwrap().unwrap().sync.is_empty(), "nothing written");

    // Another vendor's copy with the same id is a different copy.
    s.update("b", false, |p| Ok::<_, ()>(holding(p.unwrap(), Vendor::Enos, "c1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.linked(Vendor::Enos, "c1").await.unwrap().as_deref(), Some("b"));

    // Let go (the entry goes), then b may take it.
    s.update("a", false, |p| {
        let mut p = p.unwrap();
        p.sync.clear();
        Ok::<_, ()>(p)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.linked(Vendor::Cryptlex, "c1").await.unwrap(), None);
    s.update("b", false, |p| Ok::<_, ()>(holding(p.unwrap(), Vendor::Cryptlex, "c1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.linked(Vendor::Cryptlex, "c1").await.unwrap().as_deref(), Some("b"));

    // An update that keeps the copy keeps the claim; a delete releases it.
    s.update("b", false, |p| {
        let mut p = p.unwrap();
        p.description = "kept".into();
        Ok::<_, ()>(p)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.linked(Vendor::Cryptlex, "c1").await.unwrap().as_deref(), Some("b"));
    assert_eq!(s.delete("b", true, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    assert_eq!(s.linked(Vendor::Cryptlex, "c1").await.unwrap(), None);
    assert_eq!(s.linked(Vendor::Enos, "c1").await.unwrap(), None);
    // Two writers giving one product the same copy: the loser's lost swap
    // leaves the winner's claim in place.
    s.insert("d", &product("d", "u-d"), None, false).await.unwrap();
    let (stale, read) = s.read_versioned("d").await.unwrap().unwrap();
    let first = holding(read.clone(), Vendor::Enos, "pk-d");
    assert!(
        s.write_if("d", Some(&stale), &Default::default(), &first, false)
            .await
            .unwrap()
    );
    let mut second = holding(read, Vendor::Enos, "pk-d");
    second.description = "late".into();
    assert!(
        !s.write_if("d", Some(&stale), &Default::default(), &second, false)
            .await
            .unwrap()
    );
    assert_eq!(s.linked(Vendor::Enos, "pk-d").await.unwrap().as_deref(), Some("d"));
    let rival = holding(product("e", "u-e"), Vendor::Enos, "pk-d");
    assert_eq!(holder_of(s.insert("e", &rival, None, false).await.unwrap_err()), "d");

    let c = holding(product("c", "u-c"), Vendor::Cryptlex, "c1");
    assert_eq!(s.insert("c", &c, None, false).await.unwrap(), InsertOutcome::Inserted);
}

async fn concurrent_links<S: ProductStore>(f: Fixture<S>) {
    for round in 0..10 {
        let copy = format!("copy-{round}");
        let ids: Vec<String> = (0..4).map(|i| format!("r{round}-{i}")).collect();
        for id in &ids {
            f.store
                .insert(id, &product(id, &format!("u-{id}")), None, false)
                .await
                .unwrap();
        }
        let racers: Vec<_> = ids
            .iter()
            .map(|id| {
                let store = f.store.clone();
                let id = id.clone();
                let copy = copy.clone();
                tokio::spawn(async move {
                    store
                        .update(&id, false, |p| {
                            Ok::<_, ()>(holding(p.unwrap(), Vendor::Revenium, &copy))
                        })
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.unwrap());
        }
        assert_eq!(won, 1, "round {round}: exactly one claim wins");
        let holder = f
            .store
            .linked(Vendor::Revenium, &copy)
            .await
            .unwrap()
            .expect("a holder");
        for id in &ids {
            let holds = !f.store.get(id).await.unwrap().unwrap().sync.is_empty();
            assert_eq!(holds, *id == holder, "round {round}: only the holder holds it");
        }
    }
}

async fn delete_without_tombstone<S: ProductStore>(f: Fixture<S>) {
    let s = &*f.store;
    let kept = holding(product("k", "u-k"), Vendor::Enos, "pk");
    s.insert("k", &kept, None, false).await.unwrap();
    assert_eq!(s.delete("k", false, |_| Ok::<_, ()>(())).await.unwrap(), Ok(true));
    assert_eq!(s.get("k").await.unwrap(), None);
    assert_eq!(
        s.tombstone("u-k").await.unwrap(),
        None,
        "no tombstone: the copy is kept"
    );
    assert_eq!(s.linked(Vendor::Enos, "pk").await.unwrap(), None, "and let go of");
}

async fn operations<S: ProductStore>(f: Fixture<S>) {
    let s = &*f.store;
    assert!(s.create_operation("op-1", b"first").await.unwrap());
    assert!(!s.create_operation("op-1", b"again").await.unwrap(), "ids are unique");
    assert!(s.create_operation("op-2", b"second").await.unwrap());
    let one = s.operation("op-1").await.unwrap().expect("stored");
    assert_eq!(
        (one.done, one.cancel_requested, one.data.as_slice()),
        (false, false, &b"first"[..])
    );
    assert!(s.claim_operation("op-1").await.unwrap(), "its creator holds it");

    assert!(s.cancel_operation("op-1").await.unwrap());
    assert!(s.save_operation("op-1", false, b"progress").await.unwrap());
    let one = s.operation("op-1").await.unwrap().unwrap();
    assert!(one.cancel_requested, "a save keeps the cancel request");
    assert_eq!(one.data, b"progress");
    assert!(s.save_operation("op-1", true, b"done").await.unwrap());
    assert!(
        !s.save_operation("op-1", false, b"late").await.unwrap(),
        "a finished operation stays finished"
    );
    assert_eq!(s.operation("op-1").await.unwrap().unwrap().data, b"done");
    assert!(
        !s.save_operation("op-9", true, b"x").await.unwrap(),
        "no such operation"
    );
    assert!(!s.cancel_operation("op-9").await.unwrap());

    let all: Vec<String> = s
        .operations(None, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, ["op-1", "op-2"]);
    let unfinished: Vec<String> = s
        .operations(None, 10, Some(false))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(unfinished, ["op-2"]);
    let after: Vec<String> = s
        .operations(Some("op-1"), 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(after, ["op-2"]);
    // Parts: by index, replaced in place, gone with their operation.
    assert!(s.create_operation("op-3", b"third").await.unwrap());
    for (index, data) in [(0, "p0"), (1, "p1"), (2, "p2"), (1, "p1 again")] {
        assert!(s.put_operation_part("op-3", index, data.as_bytes()).await.unwrap());
    }
    assert!(s.put_operation_part("op-2", 0, b"other").await.unwrap());
    assert!(
        !s.put_operation_part("op-9", 0, b"x").await.unwrap(),
        "no such operation"
    );
    assert!(
        !s.put_operation_part("op-1", 0, b"x").await.unwrap(),
        "a finished operation"
    );
    let parts = s.operation_parts("op-3", 1, 10).await.unwrap();
    assert_eq!(parts, [(1, b"p1 again".to_vec()), (2, b"p2".to_vec())]);
    assert_eq!(s.operation_parts("op-3", 0, 1).await.unwrap(), [(0, b"p0".to_vec())]);
    assert!(s.delete_operation("op-3").await.unwrap());
    assert!(!s.delete_operation("op-3").await.unwrap());
    assert_eq!(s.operation("op-3").await.unwrap(), None);
    assert_eq!(s.operation_parts("op-3", 0, 10).await.unwrap(), []);
    assert!(s.delete_operation("op-1").await.unwrap());
    assert_eq!(s.operation("op-1").await.unwrap(), None);
    assert_eq!(
        s.operation_parts("op-2", 0, 10).await.unwrap(),
        [(0, b"other".to_vec())]
    );
}
