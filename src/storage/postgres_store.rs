//! The shared backend: PostgreSQL, for several producthub replicas serving one
//! catalog (and, through its protocol, the engines that speak it).
//!
//! Every write is one SQL statement or one transaction, so it is atomic and
//! acknowledged only after PostgreSQL committed it (with its default
//! `synchronous_commit = on`, that is after the WAL is flushed):
//! - a product write is a conditional `UPDATE … WHERE version = $read` (or an
//!   `INSERT … ON CONFLICT DO NOTHING`), and the same statement appends the
//!   change log entry and announces the product in the outbox, through
//!   data-modifying CTEs; the compare-and-swap is the database's;
//! - a create with a request id is one transaction: an advisory lock on the
//!   request id first (a concurrent retry on another replica waits on it; it
//!   assigns no transaction id), then the product, then the request row;
//! - product versions come from one sequence, so a product deleted and created
//!   again never matches a stale writer's `version`;
//! - a write that changes which vendor copies a product holds is one
//!   transaction: the product's statement first (which assigns the
//!   transaction id, as above), then its rows in `vendor_links`, whose
//!   primary key (vendor, remote id) makes a second holder impossible: a
//!   concurrent claim of the same copy waits for the first and then finds it
//!   taken. Copies are claimed in one order, so two claims cannot deadlock.
//!
//! Operations are rows with a lease, like the outbox: the replica running one
//! renews its lease as it goes, and another takes over an unfinished one
//! whose lease ran out.
//!
//! The change log is ordered by (transaction id, seq). A watcher reads only
//! rows whose transaction id is below the oldest transaction still running
//! (`pg_snapshot_xmin`), so no row can later appear before one it has read.
//! Each product's changes keep their commit order: a later writer's
//! transaction id is assigned after the earlier writer's, because it waits on
//! the row the earlier one holds. After its writes a replica wakes its own
//! watchers at once and sends `NOTIFY producthub_changes` (at most every
//! [`NOTIFY_EVERY`], outside the writes: a NOTIFY inside a write transaction
//! takes a global lock at commit and serialised every write, measured at
//! 0.18 × pgbench). Each replica LISTENs, so a watcher on any replica wakes on
//! writes made through any other, with a poll as a fallback.
//!
//! The outbox and tombstones are leased: a replica claims a small batch with
//! `FOR UPDATE SKIP LOCKED` and a lease that expires, renews the lease right
//! before working on each item (skipping it if another replica took it over),
//! and settles only what it holds. So each item is worked on by one replica at
//! a time, and the work of a replica that died is taken over when its lease
//! runs out.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use prost::Message;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use std::collections::BTreeSet;

use super::{
    Change, ChangeFeed, ChangeKind, ChangeWindow, Claimed, InsertOutcome, Link, LogPosition, OperationRecord,
    Operations, Outbox, ProductStore, Products, RequestRecord, StoreError, StoredProduct, Tombstones, links_of,
};
use crate::pb::{Product, Vendor};

/// How producthub uses a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database` (libpq's URL form).
    pub url: String,
    /// Pooled connections this replica keeps open, besides the
    /// 4 connections that GetProduct's reads share.
    pub pool_size: usize,
    /// How long a claimed outbox item or tombstone stays with this replica
    /// before another may take it over.
    pub lease: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("lease", &self.lease)
            .finish()
    }
}

/// The URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            return redact_url(base) + "?" + &query.join("&");
        }
        None => url,
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The schema, one migration per version, applied in order and recorded in
/// `producthub_migrations`. Never edit a released one: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the whole store.
    r#"
    -- Versions come from one sequence, so a product deleted and created
    -- again never reuses a version a stale writer could match.
    CREATE SEQUENCE product_versions;
    CREATE TABLE products (
        id text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL,
        data bytea NOT NULL
    );
    CREATE TABLE request_ids (
        request_id text COLLATE "C" PRIMARY KEY,
        fingerprint bytea NOT NULL,
        product bytea NOT NULL
    );
    CREATE TABLE outbox (
        product_id text COLLATE "C" PRIMARY KEY,
        nonce bigint NOT NULL,
        lease_owner text,
        lease_until timestamptz
    );
    CREATE TABLE tombstones (
        uid text COLLATE "C" PRIMARY KEY,
        data bytea NOT NULL,
        lease_owner text,
        lease_until timestamptz
    );
    CREATE TABLE changes (
        tx bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
        seq bigserial NOT NULL,
        kind smallint NOT NULL,
        product bytea NOT NULL,
        commit_time timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (tx, seq)
    );
    CREATE TABLE producthub_meta (
        key text PRIMARY KEY,
        value bigint NOT NULL
    );
    INSERT INTO producthub_meta (key, value) VALUES
        ('change_log_id', floor(random() * 9.2e18)::bigint),
        ('trimmed_through_tx', 0),
        ('trimmed_through_seq', 0);
    "#,
    // 2: the vendor copies products hold (filled from the products by
    // `index_links` right after), and long-running operations.
    r#"
    CREATE TABLE vendor_links (
        vendor integer NOT NULL,
        remote_id text COLLATE "C" NOT NULL,
        product_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (vendor, remote_id)
    );
    CREATE INDEX vendor_links_by_product ON vendor_links (product_id);
    CREATE TABLE operations (
        id text COLLATE "C" PRIMARY KEY,
        done boolean NOT NULL DEFAULT false,
        cancel_requested boolean NOT NULL DEFAULT false,
        data bytea NOT NULL,
        lease_owner text,
        lease_until timestamptz
    );
    CREATE TABLE operation_parts (
        operation_id text COLLATE "C" NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
        part integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (operation_id, part)
    );
    INSERT INTO producthub_meta (key, value) VALUES ('links_indexed', 0);
    "#,
];

/// Any fixed number: the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0070_726f_6468_7562;
const CHANNEL: &str = "producthub_changes";
/// Outbox items or tombstones claimed at a time.
const CLAIM_BATCH: usize = 32;
/// Other replicas hear of this one's writes at most this late.
const NOTIFY_EVERY: Duration = Duration::from_millis(10);
/// Watchers look for new changes at least this often, notified or not
/// (the readable window also moves when unrelated transactions end).
const POLL: Duration = Duration::from_millis(250);

pub struct PostgresStore {
    pool: Pool,
    reads: SharedReads,
    log_id: u64,
    /// This replica's name in leases.
    owner: String,
    lease_secs: f64,
    wake: watch::Sender<u64>,
    /// Set after a write; the notifier tells the other replicas.
    wrote: std::sync::Arc<tokio::sync::Notify>,
    listener: tokio::task::JoinHandle<()>,
    notifier: tokio::task::JoinHandle<()>,
}

/// Connections GetProduct's reads share (see [`SharedReads`]).
const SHARED_READ_CONNECTIONS: usize = 4;

/// Connections that GetProduct's reads share. tokio-postgres pipelines the
/// queries of every caller of one client: the queries waiting at once go out
/// in one write, the backend answers them one after another without sleeping
/// in between, and the answers come back together. A pooled connection per
/// read costs each read its own send, receive and wake-up of a backend.
/// Pages of ListProducts stay on the pool, so a long answer never holds up
/// the reads queued behind it; so does an update's read, not yet measured
/// faster shared.
struct SharedReads {
    /// Where the shared connections come from; it may hold twice as many,
    /// so a closed one is replaced while its last callers still hold it.
    pool: Pool,
    slots: Vec<SharedSlot>,
    next: std::sync::atomic::AtomicUsize,
}

/// One shared connection, and the lock its replacement is made under, so
/// that a burst of reads on an empty slot opens one connection, not one each.
#[derive(Default)]
struct SharedSlot {
    held: std::sync::Mutex<Option<std::sync::Arc<deadpool_postgres::Object>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl SharedSlot {
    /// The open connection held, if any; a closed one is let go (the pool
    /// discards it once its last caller does).
    fn open(&self) -> Option<std::sync::Arc<deadpool_postgres::Object>> {
        // The slot holds a whole Option even if a holder panicked.
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.as_ref().is_some_and(|client| client.is_closed()) {
            *held = None;
        }
        held.clone()
    }
}

impl SharedReads {
    fn new(pool: Pool) -> Self {
        Self {
            pool,
            slots: (0..SHARED_READ_CONNECTIONS).map(|_| SharedSlot::default()).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next shared connection in turn, connecting it anew if it has
    /// closed (a call already on a closed connection fails as any call on a
    /// broken connection does).
    async fn client(&self) -> Result<std::sync::Arc<deadpool_postgres::Object>, StoreError> {
        let index = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        if let Some(client) = slot.open() {
            return Ok(client);
        }
        let _connecting = slot.connecting.lock().await;
        // Whoever held the lock before may have connected the slot already.
        if let Some(client) = slot.open() {
            return Ok(client);
        }
        let fresh = std::sync::Arc::new(self.pool.get().await.map_err(pool_error)?);
        *slot.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh.clone());
        Ok(fresh)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.notifier.abort();
    }
}

/// The statements of a product write, public so that the benchmark harness
/// can have pgbench run exactly what producthub sends: the database's own
/// cost of each write, without producthub in the way.
pub mod statements {
    // Each write has two forms, so a write with nothing to announce plans no
    // outbox insert at all: a data-modifying CTE runs (opens its table and
    // indexes) even when its WHERE is false: under pgbench, the swap without
    // it ran 13-32 % faster than the one form did. The statement's last
    // part answers one row exactly when the product was written.

    /// Inserts the product (`$1` id, `$2` bytes) if its id is free, with its
    /// change-log row.
    pub const INSERT_PRODUCT: &str = r#"
    WITH ins AS (
        INSERT INTO products (id, version, data) VALUES ($1, nextval('product_versions'), $2)
        ON CONFLICT (id) DO NOTHING RETURNING id
    )
    INSERT INTO changes (kind, product) SELECT 1, $2 FROM ins RETURNING 1
    "#;

    /// [`INSERT_PRODUCT`], and announces the product in the outbox (nonce `$3`).
    pub const INSERT_ANNOUNCED_PRODUCT: &str = r#"
    WITH ins AS (
        INSERT INTO products (id, version, data) VALUES ($1, nextval('product_versions'), $2)
        ON CONFLICT (id) DO NOTHING RETURNING id
    ), chg AS (
        INSERT INTO changes (kind, product) SELECT 1, $2 FROM ins
    )
    INSERT INTO outbox (product_id, nonce) SELECT id, $3 FROM ins
    ON CONFLICT (product_id) DO UPDATE SET nonce = EXCLUDED.nonce RETURNING 1
    "#;

    /// Updates the product `$1` to the bytes `$2` if its version is still
    /// `$3`, with its change-log row.
    pub const SWAP_PRODUCT: &str = r#"
    WITH upd AS (
        UPDATE products SET data = $2, version = nextval('product_versions')
        WHERE id = $1 AND version = $3 RETURNING id
    )
    INSERT INTO changes (kind, product) SELECT 2, $2 FROM upd RETURNING 1
    "#;

    /// [`SWAP_PRODUCT`], and announces the product in the outbox (nonce `$4`).
    pub const SWAP_ANNOUNCED_PRODUCT: &str = r#"
    WITH upd AS (
        UPDATE products SET data = $2, version = nextval('product_versions')
        WHERE id = $1 AND version = $3 RETURNING id
    ), chg AS (
        INSERT INTO changes (kind, product) SELECT 2, $2 FROM upd
    )
    INSERT INTO outbox (product_id, nonce) SELECT id, $4 FROM upd
    ON CONFLICT (product_id) DO UPDATE SET nonce = EXCLUDED.nonce RETURNING 1
    "#;

    /// The product `$1` with the version a conditional write must match.
    pub const READ_VERSIONED: &str = "SELECT version, data FROM products WHERE id = $1";
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(with_causes(&e))
}

/// An error with its causes ("…: error connecting to server: Connection
/// refused"): the pool's own message alone does not say what went wrong.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

/// How a database error answers: the server went away (crash or shutdown,
/// as in a failover), the server takes no writes (a standby, or a primary
/// demoted), or it refused the statement itself.
enum Answer {
    Gone,
    ReadOnly,
    Refused,
}

fn answer(code: &tokio_postgres::error::SqlState) -> Answer {
    use tokio_postgres::error::SqlState;
    let code = code.code();
    if code.starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .iter()
        .any(|transient| transient.code() == code)
    {
        Answer::Gone
    } else if code == SqlState::READ_ONLY_SQL_TRANSACTION.code() {
        Answer::ReadOnly
    } else {
        Answer::Refused
    }
}

/// Per host, when the URL does not say (`connect_timeout`): how long a
/// connection attempt may take before the next host is tried.
const HOST_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings that let a replica find a new primary after a failover, where the
/// URL does not choose otherwise: each host gets its own connect timeout (a
/// machine that is gone answers nothing, and must not use up the time the
/// next host needs), and TCP keepalives with a user timeout notice a dead
/// server's connections in about 20 s instead of the kernel's 15 minutes.
/// Returns the time one connection may take, every host tried.
fn fit_for_failover(config: &mut tokio_postgres::Config) -> Duration {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(HOST_CONNECT_TIMEOUT);
    }
    // tokio-postgres's defaults: keepalives on, first probe after 2 hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(2);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(20));
    }
    let per_host = config.get_connect_timeout().copied().unwrap_or(HOST_CONNECT_TIMEOUT);
    let hosts = u32::try_from(config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    per_host.saturating_mul(hosts) + Duration::from_secs(2)
}

/// A failed read: the database said no, or could not be reached (then the
/// caller may retry).
fn read_error(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(answer) {
        Some(Answer::Refused) => StoreError::Backend(with_causes(&e)),
        Some(Answer::Gone | Answer::ReadOnly) | None => StoreError::Unavailable(with_causes(&e)),
    }
}

/// A failed write: without an answer from the database, or when it went away
/// mid-transaction, it may have committed; a server that takes no writes
/// wrote nothing.
fn write_error(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(answer) {
        Some(Answer::Refused) => StoreError::Backend(with_causes(&e)),
        Some(Answer::ReadOnly) => StoreError::Unavailable(with_causes(&e)),
        Some(Answer::Gone) | None => StoreError::Uncertain(with_causes(&e)),
    }
}

/// `sql` prepared once per connection. A statement given as a string is
/// parsed anew on every call, a round trip of its own before the one that
/// runs it.
async fn prepared(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    client.prepare_cached(sql).await.map_err(read_error)
}

fn corrupt(key: &str, e: prost::DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

fn random_nonce() -> i64 {
    // Stored as bigint; the bits are all that matter.
    i64::from_ne_bytes(uuid::Uuid::new_v4().as_u64_pair().0.to_ne_bytes())
}

fn as_u64(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

fn as_i64(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

impl PostgresStore {
    /// Connects, migrates the schema (safe with several replicas starting at
    /// once), and starts listening for other replicas' changes.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, StoreError> {
        Self::open(options, true).await
    }

    /// Connects to a database producthub already uses, at exactly this
    /// build's schema version, changing nothing in it (for reading it out:
    /// a newer or older schema, or a database producthub never used, is
    /// refused, saying which).
    pub async fn connect_existing(options: &PostgresOptions) -> Result<Self, StoreError> {
        Self::open(options, false).await
    }

    async fn open(options: &PostgresOptions, migrating: bool) -> Result<Self, StoreError> {
        let shown = redact_url(&options.url);
        let open_error = |reason: String| StoreError::Connect {
            database: shown.clone(),
            reason,
        };
        let mut config = tokio_postgres::Config::from_str(&options.url).map_err(|e| open_error(e.to_string()))?;
        let connect_budget = fit_for_failover(&mut config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let build = |manager, size| {
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(5)))
                .create_timeout(Some(connect_budget))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| open_error(e.to_string()))
        };
        let pool = build(manager, options.pool_size.max(2))?;
        let reads = SharedReads::new(build(
            Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            ),
            2 * SHARED_READ_CONNECTIONS,
        )?);
        if migrating {
            migrate(&pool).await.map_err(|e| open_error(e.to_string()))?;
        } else {
            check_schema(&pool).await.map_err(open_error)?;
        }
        let client = pool.get().await.map_err(|e| open_error(with_causes(&e)))?;
        let row = client
            .query_one("SELECT value FROM producthub_meta WHERE key = 'change_log_id'", &[])
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let log_id = as_u64(row.get(0));
        let (wake, _) = watch::channel(0u64);
        let listener = tokio::spawn(listen(config, connect_budget, wake.clone()));
        let wrote = std::sync::Arc::new(tokio::sync::Notify::new());
        let notifier = tokio::spawn(notify_others(pool.clone(), wrote.clone()));
        Ok(Self {
            pool,
            reads,
            log_id,
            owner: uuid::Uuid::new_v4().to_string(),
            lease_secs: options.lease.as_secs_f64(),
            wake,
            wrote,
            listener,
            notifier,
        })
    }

    /// A change was committed: wake this replica's watchers now, and the
    /// other replicas' soon.
    fn changed(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        self.wrote.notify_one();
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Inserts `product` under `id` if free, with its change entry and (when
    /// `announce`) outbox announcement, in one statement. True if inserted.
    async fn insert_statement(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        id: &str,
        bytes: &[u8],
        announce: bool,
    ) -> Result<bool, StoreError> {
        let written = if announce {
            let statement = prepared(client, statements::INSERT_ANNOUNCED_PRODUCT).await?;
            client.query_opt(&statement, &[&id, &bytes, &random_nonce()]).await
        } else {
            let statement = prepared(client, statements::INSERT_PRODUCT).await?;
            client.query_opt(&statement, &[&id, &bytes]).await
        };
        let inserted = written.map_err(write_error)?.is_some();
        if inserted {
            self.changed();
        }
        Ok(inserted)
    }

    /// The product under `id` with the version a conditional write must match.
    async fn read_versioned_with(
        &self,
        client: &deadpool_postgres::Object,
        id: &str,
    ) -> Result<Option<(i64, Product)>, StoreError> {
        let read = client
            .prepare_cached(statements::READ_VERSIONED)
            .await
            .map_err(read_error)?;
        let Some(row) = client.query_opt(&read, &[&id]).await.map_err(read_error)? else {
            return Ok(None);
        };
        let product = Product::decode(row.get::<_, &[u8]>(1)).map_err(|e| corrupt(id, e))?;
        Ok(Some((row.get(0), product)))
    }

    /// Rows of `table` (outbox or tombstones), counted up to `cap`.
    async fn count_up_to(&self, table: &str, cap: usize) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $1) t"),
                &[&cap],
            )
            .await
            .map_err(read_error)?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Claims up to `limit` rows of `table` (outbox or tombstones) after `after`
    /// for this replica, returning their keys and second column.
    async fn claim<T>(
        &self,
        sql: &str,
        after: Option<&str>,
        limit: usize,
        read: impl Fn(&tokio_postgres::Row) -> Result<(String, T), StoreError>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(read_error)?;
        // Small batches: what one replica holds, the others cannot work on.
        let limit = i64::try_from(limit.min(CLAIM_BATCH)).unwrap_or(1);
        let rows = client
            .query(
                &statement,
                &[&self.owner, &after.unwrap_or(""), &limit, &self.lease_secs],
            )
            .await
            .map_err(read_error)?;
        let mut claimed = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(claimed)
    }
}

/// That the database holds producthub's schema at this build's version.
async fn check_schema(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| with_causes(&e))?;
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    let present: bool = client
        .query_one("SELECT to_regclass('producthub_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let applied: Option<i32> = match present {
        false => None,
        true => Some(
            client
                .query_one("SELECT coalesce(max(version), 0) FROM producthub_migrations", &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0),
        ),
    };
    match applied {
        None => Err("it holds no producthub schema (is this the right database?)".into()),
        Some(applied) if applied == known => Ok(()),
        Some(applied) => Err(format!(
            "it holds schema version {applied}; this build reads version {known}: use the producthub build the replicas run"
        )),
    }
}

async fn migrate(pool: &Pool) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| with_causes(&e))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS producthub_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(|e| e.to_string())?;
        let applied: i32 = client
            .query_one("SELECT coalesce(max(version), 0) FROM producthub_migrations", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        if applied > known {
            return Err(format!(
                "the database holds schema version {applied}; this build knows versions up to {known} (a newer producthub migrated it: run that version on every replica)"
            ));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let transaction = client.transaction().await.map_err(|e| e.to_string())?;
            transaction
                .batch_execute(sql)
                .await
                .map_err(|e| format!("migration {version}: {e}"))?;
            transaction
                .execute("INSERT INTO producthub_migrations (version) VALUES ($1)", &[&version])
                .await
                .map_err(|e| e.to_string())?;
            transaction.commit().await.map_err(|e| e.to_string())?;
            tracing::info!(version, "applied database migration");
        }
        index_links(&mut client).await
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| e.to_string());
    result.and(unlocked.map(|_| ()))
}

/// Fills `vendor_links` from the products, once per database (those written
/// before the table existed); called under the migration lock. The first
/// product (in id order) holding a copy keeps it.
async fn index_links(client: &mut deadpool_postgres::Object) -> Result<(), String> {
    let done: i64 = client
        .query_one("SELECT value FROM producthub_meta WHERE key = 'links_indexed'", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if done == 1 {
        return Ok(());
    }
    let transaction = client.transaction().await.map_err(|e| e.to_string())?;
    let rows = transaction
        .query("SELECT id, data FROM products ORDER BY id", &[])
        .await
        .map_err(|e| e.to_string())?;
    for row in rows {
        let id: String = row.get(0);
        let product = Product::decode(row.get::<_, &[u8]>(1)).map_err(|e| format!("product {id:?}: {e}"))?;
        for (vendor, remote_id) in links_of(&product) {
            transaction
                .execute(
                    "INSERT INTO vendor_links (vendor, remote_id, product_id) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&(vendor as i32), &remote_id, &id],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    transaction
        .execute("UPDATE producthub_meta SET value = 1 WHERE key = 'links_indexed'", &[])
        .await
        .map_err(|e| e.to_string())?;
    transaction.commit().await.map_err(|e| e.to_string())
}

/// Inside a product write's transaction, after its statement: claims the
/// copies in `wanted` but not `held` (refused when another product holds
/// one) and releases those in `held` but not `wanted`, in key order, so two
/// writes moving copies between the same products cannot deadlock.
async fn move_links(
    transaction: &deadpool_postgres::Transaction<'_>,
    id: &str,
    held: &BTreeSet<Link>,
    wanted: &BTreeSet<Link>,
) -> Result<(), StoreError> {
    for link in held.symmetric_difference(wanted).collect::<BTreeSet<_>>() {
        let (vendor, remote_id) = link;
        if held.contains(link) {
            let release = prepared(
                transaction,
                "DELETE FROM vendor_links WHERE vendor = $1 AND remote_id = $2 AND product_id = $3",
            )
            .await?;
            transaction
                .execute(&release, &[&(*vendor as i32), remote_id, &id])
                .await
                .map_err(write_error)?;
            continue;
        }
        // On a clash the row is left as it is and its holder returned.
        let claim = prepared(
            transaction,
            "INSERT INTO vendor_links (vendor, remote_id, product_id) VALUES ($1, $2, $3)
             ON CONFLICT (vendor, remote_id) DO UPDATE SET product_id = vendor_links.product_id
             RETURNING product_id",
        )
        .await?;
        let holder: String = transaction
            .query_one(&claim, &[&(*vendor as i32), remote_id, &id])
            .await
            .map_err(write_error)?
            .get(0);
        if holder != id {
            return Err(StoreError::LinkTaken {
                vendor: *vendor,
                remote_id: remote_id.clone(),
                holder,
            });
        }
    }
    Ok(())
}

/// Sends one NOTIFY per burst of writes, at most every [`NOTIFY_EVERY`].
async fn notify_others(pool: Pool, wrote: std::sync::Arc<tokio::sync::Notify>) {
    loop {
        wrote.notified().await;
        if let Ok(client) = pool.get().await
            && let Err(error) = client.batch_execute(&format!("NOTIFY {CHANNEL}")).await
        {
            tracing::debug!(%error, "could not notify the other replicas; they will poll");
        }
        tokio::time::sleep(NOTIFY_EVERY).await;
    }
}

/// Keeps a connection LISTENing for changes, bumping `wake` on each
/// notification and on a regular tick; reconnects when the connection drops.
async fn listen(config: tokio_postgres::Config, connect_budget: Duration, wake: watch::Sender<u64>) {
    let bump = |wake: &watch::Sender<u64>| wake.send_modify(|n| *n = n.wrapping_add(1));
    let connect_timeout = connect_budget;
    loop {
        let connected = match tokio::time::timeout(connect_timeout, config.connect(NoTls)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("timed out connecting".to_string()),
        };
        match connected {
            Ok((client, mut connection)) => {
                let (notified, mut notifications) = tokio::sync::mpsc::unbounded_channel::<()>();
                let driver = tokio::spawn(async move {
                    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => {
                                if notified.send(()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                });
                let listen = format!("LISTEN {CHANNEL}");
                let listening = tokio::time::timeout(connect_timeout, client.batch_execute(&listen)).await;
                if matches!(listening, Ok(Ok(()))) {
                    loop {
                        tokio::select! {
                            message = notifications.recv() => match message {
                                Some(()) => bump(&wake),
                                None => break,
                            },
                            () = tokio::time::sleep(POLL) => bump(&wake),
                        }
                    }
                }
                driver.abort();
            }
            Err(error) => tracing::warn!(%error, "cannot listen for changes; retrying"),
        }
        // Until the listener is back, watchers still poll.
        bump(&wake);
        tokio::time::sleep(POLL).await;
    }
}

const CLAIM_OUTBOX: &str = r#"
    UPDATE outbox SET lease_owner = $1, lease_until = now() + make_interval(secs => $4)
    WHERE product_id IN (
        SELECT product_id FROM outbox
        WHERE product_id > $2 AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
        ORDER BY product_id LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    RETURNING product_id, nonce
"#;

const CLAIM_TOMBSTONES: &str = r#"
    UPDATE tombstones SET lease_owner = $1, lease_until = now() + make_interval(secs => $4)
    WHERE uid IN (
        SELECT uid FROM tombstones
        WHERE uid > $2 AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
        ORDER BY uid LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    RETURNING uid, data
"#;
impl Products for PostgresStore {
    /// The row's version, from one sequence: never reused, even after a
    /// delete and re-create, so a stale decision cannot match (no ABA).
    type Version = i64;

    async fn get_stored(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        let client = self.reads.client().await?;
        let statement = client
            .prepare_cached("SELECT data FROM products WHERE id = $1")
            .await
            .map_err(read_error)?;
        let row = client.query_opt(&statement, &[&id]).await.map_err(read_error)?;
        Ok(row.map(|row| Bytes::copy_from_slice(row.get::<_, &[u8]>(0))))
    }

    async fn scan_stored(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<StoredProduct>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, data FROM products WHERE id > $1 ORDER BY id LIMIT $2")
            .await
            .map_err(read_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&after_id.unwrap_or(""), &limit])
            .await
            .map_err(read_error)?;
        Ok(rows
            .iter()
            .map(|row| StoredProduct {
                id: row.get(0),
                bytes: Bytes::from(row.get::<_, Vec<u8>>(1)),
            })
            .collect())
    }

    async fn snapshot(
        &self,
        batch: usize,
        mut each: impl FnMut(Vec<Product>) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        // One transaction sees one moment, however long the reading takes.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(read_error)?;
        let mut after = String::new();
        loop {
            let rows = transaction
                .query(
                    "SELECT id, data FROM products WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &batch],
                )
                .await
                .map_err(read_error)?;
            let full = rows.len() as i64 == batch;
            let page = rows
                .iter()
                .map(|row| Product::decode(row.get::<_, &[u8]>(1)).map_err(|e| corrupt(row.get(0), e)))
                .collect::<Result<Vec<_>, _>>()?;
            match rows.last() {
                Some(last) => after = last.get::<_, String>(0),
                None => break,
            }
            each(page)?;
            if !full {
                break;
            }
        }
        transaction.commit().await.map_err(read_error)
    }

    async fn insert(
        &self,
        id: &str,
        product: &Product,
        request: Option<&RequestRecord>,
        announce: bool,
    ) -> Result<InsertOutcome, StoreError> {
        let bytes = product.encode_to_vec();
        let links = links_of(product);
        let mut client = self.client().await?;
        if request.is_none() && links.is_empty() {
            return Ok(match self.insert_statement(&client, id, &bytes, announce).await? {
                true => InsertOutcome::Inserted,
                false => InsertOutcome::IdTaken,
            });
        }
        let transaction = client.transaction().await.map_err(read_error)?;
        let Some(record) = request else {
            if !self.insert_statement(&transaction, id, &bytes, announce).await? {
                return Ok(InsertOutcome::IdTaken);
            }
            move_links(&transaction, id, &BTreeSet::new(), &links).await?;
            transaction.commit().await.map_err(write_error)?;
            self.changed();
            return Ok(InsertOutcome::Inserted);
        };
        // Calls with the same request id (on any replica) queue here. The
        // lock assigns no transaction id, so this transaction's id comes from
        // its product insert, which keeps the change log in commit order.
        transaction
            .execute(
                &prepared(&transaction, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").await?,
                &[&record.request_id],
            )
            .await
            .map_err(read_error)?;
        let earlier = transaction
            .query_opt(
                &prepared(
                    &transaction,
                    "SELECT fingerprint, product FROM request_ids WHERE request_id = $1",
                )
                .await?,
                &[&record.request_id],
            )
            .await
            .map_err(read_error)?;
        if let Some(row) = earlier {
            let first = Product::decode(row.get::<_, &[u8]>(1)).map_err(|e| corrupt(&record.request_id, e))?;
            return Ok(InsertOutcome::Replayed(Box::new(RequestRecord {
                request_id: record.request_id.clone(),
                fingerprint: row.get(0),
                product: first,
            })));
        }
        if !self.insert_statement(&transaction, id, &bytes, announce).await? {
            // Rolled back on drop: the request id stays free.
            return Ok(InsertOutcome::IdTaken);
        }
        move_links(&transaction, id, &BTreeSet::new(), &links).await?;
        transaction
            .execute(
                &prepared(
                    &transaction,
                    "INSERT INTO request_ids (request_id, fingerprint, product) VALUES ($1, $2, $3)",
                )
                .await?,
                &[&record.request_id, &record.fingerprint, &record.product.encode_to_vec()],
            )
            .await
            .map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;
        self.changed();
        Ok(InsertOutcome::Inserted)
    }

    async fn read_versioned(&self, id: &str) -> Result<Option<(i64, Product)>, StoreError> {
        let client = self.client().await?;
        self.read_versioned_with(&client, id).await
    }

    async fn write_if(
        &self,
        id: &str,
        expected: Option<&i64>,
        held: &BTreeSet<Link>,
        next: &Product,
        announce: bool,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let bytes = next.encode_to_vec();
        let wanted = links_of(next);
        if wanted != *held {
            let transaction = client.transaction().await.map_err(read_error)?;
            let swapped = match expected {
                None => self.insert_statement(&transaction, id, &bytes, announce).await?,
                Some(version) => {
                    self.swap_statement(&transaction, id, &bytes, *version, announce)
                        .await?
                }
            };
            if !swapped {
                return Ok(false);
            }
            move_links(&transaction, id, held, &wanted).await?;
            transaction.commit().await.map_err(write_error)?;
            self.changed();
            return Ok(true);
        }
        let Some(version) = expected else {
            return self.insert_statement(&client, id, &bytes, announce).await;
        };
        let swapped = self.swap_statement(&client, id, &bytes, *version, announce).await?;
        if swapped {
            self.changed();
        }
        Ok(swapped)
    }

    async fn linked(&self, vendor: Vendor, remote_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &prepared(
                    &client,
                    "SELECT product_id FROM vendor_links WHERE vendor = $1 AND remote_id = $2",
                )
                .await?,
                &[&(vendor as i32), &remote_id],
            )
            .await
            .map_err(read_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn linked_all(&self, vendor: Vendor, remote_ids: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &prepared(
                    &client,
                    "SELECT remote_id, product_id FROM vendor_links WHERE vendor = $1 AND remote_id = ANY($2)",
                )
                .await?,
                &[&(vendor as i32), &remote_ids],
            )
            .await
            .map_err(read_error)?;
        let holders: std::collections::HashMap<String, String> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(remote_ids.iter().map(|id| holders.get(id).cloned()).collect())
    }

    async fn delete_if(&self, id: &str, expected: &i64, doomed: &Product, tombstone: bool) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // The row goes, its tombstone and change-log entry come, its vendor
        // copies are released: one statement.
        let remove = client
            .prepare_cached(
                r#"
                WITH del AS (
                    DELETE FROM products WHERE id = $1 AND version = $2 RETURNING data
                ), tmb AS (
                    INSERT INTO tombstones (uid, data) SELECT $3, data FROM del WHERE $4
                    ON CONFLICT (uid) DO UPDATE SET data = EXCLUDED.data RETURNING 1
                ), chg AS (
                    INSERT INTO changes (kind, product) SELECT 3, data FROM del RETURNING 1
                ), lnk AS (
                    DELETE FROM vendor_links WHERE product_id = $1 AND EXISTS (SELECT 1 FROM del) RETURNING 1
                )
                SELECT (SELECT count(*) FROM del),
                       (SELECT count(*) FROM tmb) + (SELECT count(*) FROM chg) + (SELECT count(*) FROM lnk)
                "#,
            )
            .await
            .map_err(read_error)?;
        let deleted = client
            .query_one(&remove, &[&id, expected, &doomed.uid, &tombstone])
            .await
            .map_err(write_error)?;
        let deleted = deleted.get::<_, i64>(0) == 1;
        if deleted {
            self.changed();
        }
        Ok(deleted)
    }
    /// A database that cannot take writes says so when written to.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Each write is durable once its statement or transaction committed.
    async fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl PostgresStore {
    /// The conditional update of a product, with its change-log entry and
    /// (when `announce`) outbox announcement, in one statement; true if the
    /// version matched.
    async fn swap_statement(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        id: &str,
        bytes: &[u8],
        version: i64,
        announce: bool,
    ) -> Result<bool, StoreError> {
        let written = if announce {
            let swap = prepared(client, statements::SWAP_ANNOUNCED_PRODUCT).await?;
            client.query_opt(&swap, &[&id, &bytes, &version, &random_nonce()]).await
        } else {
            let swap = prepared(client, statements::SWAP_PRODUCT).await?;
            client.query_opt(&swap, &[&id, &bytes, &version]).await
        };
        Ok(written.map_err(write_error)?.is_some())
    }
}

impl Outbox for PostgresStore {
    async fn outbox(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        self.claim(CLAIM_OUTBOX, after_id, limit, |row| {
            Ok((row.get(0), as_u64(row.get::<_, i64>(1))))
        })
        .await
    }

    async fn outbox_depth(&self, cap: usize) -> Result<usize, StoreError> {
        self.count_up_to("outbox", cap).await
    }

    async fn renew_claim(&self, item: Claimed<'_>) -> Result<bool, StoreError> {
        let (sql, key) = match item {
            Claimed::Outbox(id) => (
                "UPDATE outbox SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
                 WHERE product_id = $2 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < now())",
                id,
            ),
            Claimed::Tombstone(uid) => (
                "UPDATE tombstones SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
                 WHERE uid = $2 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < now())",
                uid,
            ),
        };
        let client = self.client().await?;
        let renewed = client
            .execute(&prepared(&client, sql).await?, &[&self.owner, &key, &self.lease_secs])
            .await
            .map_err(read_error)?;
        Ok(renewed == 1)
    }

    async fn settle_outbox(&self, id: &str, nonce: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let settled = client
            .execute(
                &prepared(
                    &client,
                    "DELETE FROM outbox WHERE product_id = $1 AND nonce = $2
                     AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < now())",
                )
                .await?,
                &[&id, &as_i64(nonce), &self.owner],
            )
            .await
            .map_err(write_error)?;
        Ok(settled == 1)
    }
}

impl Tombstones for PostgresStore {
    async fn tombstone(&self, uid: &str) -> Result<Option<Product>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &prepared(&client, "SELECT data FROM tombstones WHERE uid = $1").await?,
                &[&uid],
            )
            .await
            .map_err(read_error)?;
        row.map(|row| Product::decode(row.get::<_, &[u8]>(0)).map_err(|e| corrupt(uid, e)))
            .transpose()
    }

    async fn tombstones(&self, after_uid: Option<&str>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let claimed = self
            .claim(CLAIM_TOMBSTONES, after_uid, limit, |row| {
                let uid: String = row.get(0);
                let product = Product::decode(row.get::<_, &[u8]>(1)).map_err(|e| corrupt(&uid, e))?;
                Ok((uid, product))
            })
            .await?;
        Ok(claimed.into_iter().map(|(_, product)| product).collect())
    }

    async fn set_tombstone(&self, uid: &str, product: Option<&Product>) -> Result<(), StoreError> {
        let client = self.client().await?;
        match product {
            Some(product) => {
                let bytes = product.encode_to_vec();
                let put = prepared(
                    &client,
                    "INSERT INTO tombstones (uid, data) VALUES ($1, $2)
                     ON CONFLICT (uid) DO UPDATE SET data = EXCLUDED.data",
                )
                .await?;
                client.execute(&put, &[&uid, &bytes]).await
            }
            None => {
                let remove = prepared(&client, "DELETE FROM tombstones WHERE uid = $1").await?;
                client.execute(&remove, &[&uid]).await
            }
        }
        .map_err(write_error)?;
        Ok(())
    }

    async fn tombstone_depth(&self, cap: usize) -> Result<usize, StoreError> {
        self.count_up_to("tombstones", cap).await
    }
}

impl ChangeFeed for PostgresStore {
    fn change_log_id(&self) -> Option<u64> {
        Some(self.log_id)
    }

    async fn change_window(&self) -> Result<ChangeWindow, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                r#"
                SELECT (SELECT value FROM producthub_meta WHERE key = 'trimmed_through_tx'),
                       (SELECT value FROM producthub_meta WHERE key = 'trimmed_through_seq'),
                       newest.tx, newest.seq
                FROM (SELECT NULL) x LEFT JOIN LATERAL (
                    SELECT tx, seq FROM changes
                    WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                    ORDER BY tx DESC, seq DESC LIMIT 1
                ) newest ON true
                "#,
                &[],
            )
            .await
            .map_err(read_error)?;
        let trimmed_through = position(row.get(0), row.get(1));
        let newest = match (row.get::<_, Option<i64>>(2), row.get::<_, Option<i64>>(3)) {
            (Some(tx), Some(seq)) => position(tx, seq).max(trimmed_through),
            _ => trimmed_through,
        };
        Ok(ChangeWindow {
            trimmed_through,
            newest,
        })
    }

    async fn changes(&self, after: LogPosition, limit: usize) -> Result<Vec<Change>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                r#"
                SELECT tx, seq, kind, product,
                       (extract(epoch FROM commit_time) * 1000000)::bigint
                FROM changes
                WHERE (tx, seq) > ($1, $2)
                  AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                ORDER BY tx, seq LIMIT $3
                "#,
            )
            .await
            .map_err(read_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&as_i64(after.major), &as_i64(after.minor), &limit])
            .await
            .map_err(read_error)?;
        rows.iter()
            .map(|row| {
                let position = position(row.get(0), row.get(1));
                let key = format!("change {position:?}");
                let kind = match row.get::<_, i16>(2) {
                    1 => ChangeKind::Created,
                    2 => ChangeKind::Updated,
                    3 => ChangeKind::Deleted,
                    other => {
                        return Err(StoreError::Corrupt {
                            key,
                            reason: format!("unknown kind {other}"),
                        });
                    }
                };
                let micros: i64 = row.get(4);
                Ok(Change {
                    position,
                    kind,
                    product: Product::decode(row.get::<_, &[u8]>(3)).map_err(|e| corrupt(&key, e))?,
                    commit_time: prost_types::Timestamp {
                        seconds: micros.div_euclid(1_000_000),
                        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
                    },
                })
            })
            .collect()
    }

    fn watch_changes(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(write_error)?;
        // Only whole, readable history is trimmed, oldest first, and the
        // high-water mark moves with it, so a resume token older than it is
        // known to be expired.
        let row = transaction
            .query_one(
                r#"
                WITH cutoff AS (
                    SELECT tx, seq FROM changes
                    WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                    ORDER BY tx DESC, seq DESC OFFSET $1 LIMIT 1
                ), gone AS (
                    DELETE FROM changes c USING cutoff
                    WHERE (c.tx, c.seq) <= (cutoff.tx, cutoff.seq)
                    RETURNING c.tx, c.seq
                )
                SELECT count(*), max(tx), max(seq) FILTER (WHERE tx = (SELECT max(tx) FROM gone))
                FROM gone
                "#,
                &[&as_i64(keep)],
            )
            .await
            .map_err(write_error)?;
        let removed: i64 = row.get(0);
        if let (Some(tx), Some(seq)) = (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2)) {
            transaction
                .execute(
                    r#"
                    UPDATE producthub_meta SET value = CASE key WHEN 'trimmed_through_tx' THEN $1 ELSE $2 END
                    WHERE key IN ('trimmed_through_tx', 'trimmed_through_seq')
                      AND ($1, $2) > ((SELECT value FROM producthub_meta WHERE key = 'trimmed_through_tx'),
                                      (SELECT value FROM producthub_meta WHERE key = 'trimmed_through_seq'))
                    "#,
                    &[&tx, &seq],
                )
                .await
                .map_err(write_error)?;
        }
        transaction.commit().await.map_err(write_error)?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}

impl Operations for PostgresStore {
    async fn create_operation(&self, id: &str, data: &[u8]) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let created = client
            .execute(
                "INSERT INTO operations (id, data, lease_owner, lease_until)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &data, &self.owner, &self.lease_secs],
            )
            .await
            .map_err(write_error)?;
        Ok(created == 1)
    }

    async fn save_operation(&self, id: &str, done: bool, data: &[u8]) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let saved = client
            .execute(
                "UPDATE operations SET data = $2, done = $3 WHERE id = $1 AND NOT done AND lease_owner = $4",
                &[&id, &data, &done, &self.owner],
            )
            .await
            .map_err(write_error)?;
        Ok(saved == 1)
    }

    async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, done, cancel_requested, data FROM operations WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(read_error)?;
        Ok(row.map(|row| operation_record(&row)))
    }

    async fn operations(
        &self,
        after_id: Option<&str>,
        limit: usize,
        done: Option<bool>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, done, cancel_requested, data FROM operations
                 WHERE id > $1 AND ($2::boolean IS NULL OR done = $2)
                 ORDER BY id LIMIT $3",
                &[&after_id.unwrap_or(""), &done, &limit],
            )
            .await
            .map_err(read_error)?;
        Ok(rows.iter().map(operation_record).collect())
    }

    async fn cancel_operation(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let cancelled = client
            .execute("UPDATE operations SET cancel_requested = true WHERE id = $1", &[&id])
            .await
            .map_err(write_error)?;
        Ok(cancelled == 1)
    }

    async fn put_operation_part(&self, id: &str, index: u32, data: &[u8]) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let index =
            i32::try_from(index).map_err(|_| StoreError::Backend("operation part index out of range".into()))?;
        let stored = client
            .execute(
                "INSERT INTO operation_parts (operation_id, part, data)
                 SELECT id, $2, $3 FROM operations WHERE id = $1 AND NOT done AND lease_owner = $4
                 ON CONFLICT (operation_id, part) DO UPDATE SET data = EXCLUDED.data",
                &[&id, &index, &data, &self.owner],
            )
            .await
            .map_err(write_error)?;
        Ok(stored == 1)
    }

    async fn operation_parts(&self, id: &str, from: u32, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let from = i32::try_from(from).unwrap_or(i32::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT part, data FROM operation_parts WHERE operation_id = $1 AND part >= $2
                 ORDER BY part LIMIT $3",
                &[&id, &from, &limit],
            )
            .await
            .map_err(read_error)?;
        Ok(rows
            .iter()
            .map(|row| (u32::try_from(row.get::<_, i32>(0)).unwrap_or_default(), row.get(1)))
            .collect())
    }

    async fn delete_operation(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM operations WHERE id = $1", &[&id])
            .await
            .map_err(write_error)?;
        Ok(deleted == 1)
    }

    async fn claim_operation(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let claimed = client
            .execute(
                "UPDATE operations SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
                 WHERE id = $2 AND NOT done
                 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < now())",
                &[&self.owner, &id, &self.lease_secs],
            )
            .await
            .map_err(write_error)?;
        Ok(claimed == 1)
    }
    fn operation_lease(&self) -> Option<std::time::Duration> {
        Some(Duration::from_secs_f64(self.lease_secs))
    }
}

fn operation_record(row: &tokio_postgres::Row) -> OperationRecord {
    OperationRecord {
        id: row.get(0),
        done: row.get(1),
        cancel_requested: row.get(2),
        data: row.get(3),
    }
}

impl ProductStore for PostgresStore {
    async fn disk_bytes(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (pg_total_relation_size('products') + pg_total_relation_size('changes')
                        + pg_total_relation_size('outbox') + pg_total_relation_size('tombstones')
                        + pg_total_relation_size('request_ids'))::bigint",
                &[],
            )
            .await
            .map_err(read_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged write is committed already.
        Ok(())
    }
}

fn position(tx: i64, seq: i64) -> LogPosition {
    LogPosition {
        major: as_u64(tx),
        minor: as_u64(seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/catalog"),
            "postgres://app:***@db:5432/catalog"
        );
        assert_eq!(redact_url("postgres://app@db/catalog"), "postgres://app@db/catalog");
        assert_eq!(
            redact_url("postgres://db/catalog?user=app&password=s3cret"),
            "postgres://db/catalog?user=app&password=***"
        );
        let options = PostgresOptions {
            url: "postgres://app:s3cret@db/catalog".into(),
            pool_size: 4,
            lease: Duration::from_secs(30),
        };
        assert!(!format!("{options:?}").contains("s3cret"));
    }
}
