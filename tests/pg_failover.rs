//! Database failover: two producthub replicas on a PostgreSQL primary with a
//! synchronous streaming standby, given both hosts in one URL
//! (`host=a,b target_session_attrs=read-write`). The primary is killed with
//! SIGKILL under write load and the standby promoted: every acknowledged write
//! is there afterwards, writes resume by themselves, the outbox delivers what
//! it held, and a watch stream carries on across the failover.
//!
//! The test starts a pair of its own (it kills one), with the PostgreSQL
//! server binaries that `scripts/test` puts on PATH; it fails, naming the
//! package, when they are missing.

mod common;
mod fake_vendors;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, wait_for};
use producthub::pb::{CreateProductRequest, GetProductRequest, Product, SyncState, Vendor, WatchProductsRequest};

/// A PostgreSQL primary and its synchronous standby, in a temporary directory.
struct Pair {
    dir: tempfile::TempDir,
    bin: PathBuf,
    primary_port: u16,
    standby_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// PostgreSQL's server binaries: on PATH (scripts/test puts them there) or
/// where Debian's package installs them.
fn postgres_bin() -> PathBuf {
    if let Some(initdb) = common::on_path("initdb") {
        // Through any symlink, to the directory holding all of them.
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return initdb.parent().unwrap().to_path_buf();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) are missing: apt-get install -y postgresql (scripts/test does)")
    })
}

impl Pair {
    fn start() -> Pair {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root; its package's user runs it.
            let status = Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let pair = Pair {
            dir,
            bin,
            primary_port: free_port(),
            standby_port: free_port(),
        };
        let socket_dir = pair.dir.path().display().to_string();
        pair.run(
            "initdb",
            &[
                "-D",
                &pair.data("primary"),
                "-U",
                "producthub",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        pair.pg_ctl_start(
            "primary",
            &format!(
                "-p {} -k '{socket_dir}' -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=5 -c synchronous_standby_names=standby1",
                pair.primary_port
            ),
        );
        let primary_port = pair.primary_port.to_string();
        pair.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "producthub",
                "-D",
                &pair.data("standby"),
                "-R",
                "-X",
                "stream",
            ],
        );
        // Promoted, it must not wait for a standby of its own.
        pair.pg_ctl_start(
            "standby",
            &format!(
                "-p {} -k '{socket_dir}' -c listen_addresses=127.0.0.1 -c cluster_name=standby1 -c synchronous_standby_names=''",
                pair.standby_port
            ),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while pair
            .sql(
                pair.primary_port,
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'",
            )
            .as_deref()
            != Ok("sync")
        {
            assert!(Instant::now() < deadline, "the standby did not become synchronous");
            std::thread::sleep(Duration::from_millis(100));
        }
        pair
    }

    fn data(&self, which: &str) -> String {
        self.dir.path().join(which).display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self, which: &str, options: &str) {
        let log = self.dir.path().join(format!("{which}.log")).display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(which), "-l", &log, "-w", "-o", options, "start"],
        );
    }

    /// Runs one statement; its output, or the error it failed with.
    fn sql(&self, port: u16, query: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "producthub",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-qtAc", query])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Both hosts, primary first; libpq-style clients pick the one that takes writes.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://producthub@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// SIGKILL to the primary's postmaster and every process it started, as if
    /// its machine had gone.
    fn kill_primary(&self) {
        let pid_file = Path::new(&self.data("primary")).join("postmaster.pid");
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        // Its children are listed first: once it is dead they belong to init.
        let children = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        let children = String::from_utf8_lossy(&children.stdout).to_string();
        let mut all: Vec<&str> = children.split_whitespace().collect();
        assert!(!all.is_empty(), "the primary has no backends to kill");
        all.push(&pid);
        // A backend may have ended by itself meanwhile: kill's status is no guide.
        let _ = Command::new("kill").arg("-KILL").args(&all).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("kill")
            .args(["-0", &pid])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "the primary survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn promote_standby(&self) {
        self.run("pg_ctl", &["-D", &self.data("standby"), "-w", "promote"]);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for which in ["standby", "primary"] {
            let _ = self
                .command("pg_ctl")
                .args(["-D", &self.data(which), "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// What the writers were told, in the order they were told it: each
/// acknowledged product's name and etag.
type Acknowledged = Arc<Mutex<Vec<(String, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_write_load_fails_over_to_its_synchronous_standby() {
    let pair = Pair::start();
    pair.sql(pair.primary_port, "CREATE DATABASE producthub")
        .expect("create the database");
    let store = pair.url("producthub");
    let cryptlex = fake_vendors::cryptlex().await;
    let cryptlex_url = cryptlex.url();
    let args = [
        "--store",
        store.as_str(),
        "--cryptlex-base-url",
        cryptlex_url.as_str(),
        "--cryptlex-token",
        fake_vendors::CRYPTLEX_TOKEN,
        "--sync-retry-base-ms",
        "100",
        "--sync-retry-max-ms",
        "500",
        "--sync-lease-secs",
        "3",
    ];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let replicas = [
        Server::start_with(dirs[0].path(), &args),
        Server::start_with(dirs[1].path(), &args),
    ];

    let mut watcher = replicas[1].client().await;
    let mut changes = watcher
        .watch_products(WatchProductsRequest::default())
        .await
        .unwrap()
        .into_inner();

    let acknowledged: Acknowledged = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let mut client = replicas[writer % 2].client().await;
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failed = 0u64;
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("w{writer}-{n:05}");
                let request = CreateProductRequest {
                    product_id: id.clone(),
                    product: Some(common::licensed(&id).product.unwrap()),
                    ..Default::default()
                };
                match client.create_product(request).await {
                    Ok(response) => {
                        let product = response.into_inner();
                        acknowledged.lock().unwrap().push((product.name, product.etag));
                    }
                    Err(_) => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            failed
        }));
    }

    let count = |acknowledged: &Acknowledged| acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = count(&acknowledged);
    assert!(before_kill > 10, "only {before_kill} writes before the kill");
    pair.kill_primary();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pair.promote_standby();
    let at_promotion = count(&acknowledged);

    // Writes resume by themselves, on both replicas.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&acknowledged) < at_promotion + 40 {
        assert!(Instant::now() < deadline, "writes did not resume after the promotion");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for writer in writers {
        failed += writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "failover: {before_kill} writes acknowledged before the kill, {} in all; {failed} refused or cut short while the database was away",
        acknowledged.len()
    );

    // Every acknowledged write is there, through either replica.
    for (i, (name, etag)) in acknowledged.iter().enumerate() {
        let mut client = replicas[i % 2].client().await;
        let product = client
            .get_product(GetProductRequest { name: name.clone() })
            .await
            .unwrap_or_else(|status| panic!("{name} was acknowledged but is gone after the failover: {status:?}"))
            .into_inner();
        assert_eq!(&product.etag, etag, "{name}");
    }

    // The outbox carries on: every product reaches the vendor, those written
    // before the kill included.
    let mut client = replicas[0].client().await;
    for (name, _) in &acknowledged {
        wait_for(&mut client, name, "synced to Cryptlex", |p: &Product| {
            p.sync
                .iter()
                .any(|s| s.vendor == Vendor::Cryptlex as i32 && s.state == SyncState::Synced as i32)
        })
        .await;
    }

    // The watch stream opened before the kill is still open and carries the
    // last change, made after the promotion.
    let last = acknowledged.last().unwrap().0.clone();
    let mut seen_after = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen_after {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, changes.message())
            .await
            .expect("the watch stream stalled")
            .expect("the watch stream ended with an error during the failover")
            .expect("the watch stream ended");
        seen_after = change.product.is_some_and(|p| p.name == last);
    }
}
