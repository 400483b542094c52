//! The embedded default backend: sled in a local data directory.
//!
//! Layout (schema version 1):
//! - tree `products`: product id → `producthub.v1.Product` protobuf bytes;
//! - tree `request_ids`: request id → [`StoredRequest`] protobuf bytes;
//! - default tree, key `schema_version`: big-endian u32.
//!
//! Writes spanning trees run in one sled transaction; every write waits for the
//! group committer before it resolves. Reads go straight to sled, which serves
//! them lock-free, so they never wait for writers or flushes.

use std::fs::{self, File, TryLockError};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::group_commit::GroupCommit;
use super::{InsertOutcome, ProductStore, RequestRecord, StoreError};
use crate::pb::Product;

const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";
const LOCK_FILE: &str = "LOCK";

/// Tuning knobs of the sled backend.
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// The most memory sled may use for its page cache, in bytes.
    pub cache_capacity_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The request-id record as stored.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRequest {
    #[prost(bytes = "vec", tag = "1")]
    fingerprint: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    product: Option<Product>,
}

pub struct SledStore {
    db: sled::Db,
    products: sled::Tree,
    requests: sled::Tree,
    committer: GroupCommit,
    /// Held for the store's lifetime: the OS releases the lock when the file is
    /// closed, including when the process dies.
    _lock: File,
}

impl SledStore {
    /// Opens (creating if needed) the data directory `dir`.
    pub fn open(dir: &Path, options: &SledOptions) -> Result<Self, StoreError> {
        let shown = dir.display().to_string();
        let open_error = |reason: String| StoreError::Open {
            dir: shown.clone(),
            reason,
        };
        fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| open_error(e.to_string()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { dir: shown }),
            Err(TryLockError::Error(e)) => return Err(open_error(e.to_string())),
        }
        let db = sled::Config::new()
            .path(sled_dir(dir))
            .cache_capacity(options.cache_capacity_bytes)
            .open()
            .map_err(|e| open_error(e.to_string()))?;
        check_schema(&db, &shown)?;
        let products = db.open_tree("products").map_err(|e| open_error(e.to_string()))?;
        let requests = db.open_tree("request_ids").map_err(|e| open_error(e.to_string()))?;
        let committer = GroupCommit::start(db.clone()).map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            db,
            products,
            requests,
            committer,
            _lock: lock,
        })
    }

    async fn durable(&self) -> Result<(), StoreError> {
        self.committer.durable().await.map_err(StoreError::Backend)
    }
}

fn sled_dir(dir: &Path) -> PathBuf {
    dir.join("sled")
}

fn check_schema(db: &sled::Db, dir: &str) -> Result<(), StoreError> {
    let stored = db.get(SCHEMA_KEY).map_err(backend)?;
    match stored {
        None => {
            db.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(backend)?;
            db.flush().map_err(backend)?;
            Ok(())
        }
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: "schema_version".into(),
                    reason: "not a 4-byte version".into(),
                })?;
            if found == SCHEMA_VERSION {
                Ok(())
            } else {
                Err(StoreError::UnsupportedSchema {
                    dir: dir.to_owned(),
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
        }
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decode_product(key: &[u8], bytes: &[u8]) -> Result<Product, StoreError> {
    Product::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Turns sled's transaction error into ours; aborts carry our own errors.
fn from_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

impl ProductStore for SledStore {
    fn get(&self, id: &str) -> Result<Option<Product>, StoreError> {
        match self.products.get(id.as_bytes()).map_err(backend)? {
            Some(bytes) => decode_product(id.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn scan(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<Product>, StoreError> {
        let start = match after_id {
            Some(id) => Bound::Excluded(id.as_bytes()),
            None => Bound::Unbounded,
        };
        self.products
            .range::<&[u8], _>((start, Bound::Unbounded))
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry.map_err(backend)?;
                decode_product(&key, &bytes)
            })
            .collect()
    }

    async fn insert(
        &self,
        id: &str,
        product: &Product,
        request: Option<&RequestRecord>,
    ) -> Result<InsertOutcome, StoreError> {
        let product_bytes = product.encode_to_vec();
        let request_bytes = request.map(|r| {
            StoredRequest {
                fingerprint: r.fingerprint.clone(),
                product: Some(r.product.clone()),
            }
            .encode_to_vec()
        });
        let outcome = (&self.products, &self.requests)
            .transaction(|(products, requests)| {
                if let Some(record) = request
                    && let Some(bytes) = requests.get(record.request_id.as_bytes())?
                {
                    let stored = StoredRequest::decode(bytes.as_ref()).map_err(|e| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            key: record.request_id.clone(),
                            reason: e.to_string(),
                        })
                    })?;
                    return Ok(InsertOutcome::Replayed(Box::new(RequestRecord {
                        request_id: record.request_id.clone(),
                        fingerprint: stored.fingerprint,
                        product: stored.product.unwrap_or_default(),
                    })));
                }
                if products.get(id.as_bytes())?.is_some() {
                    return Ok(InsertOutcome::IdTaken);
                }
                products.insert(id.as_bytes(), product_bytes.as_slice())?;
                if let (Some(record), Some(bytes)) = (request, &request_bytes) {
                    requests.insert(record.request_id.as_bytes(), bytes.as_slice())?;
                }
                Ok(InsertOutcome::Inserted)
            })
            .map_err(from_tx)?;
        if outcome == InsertOutcome::Inserted {
            self.durable().await?;
        }
        Ok(outcome)
    }

    async fn update<E, F>(&self, id: &str, change: F) -> Result<Result<Product, E>, StoreError>
    where
        E: Send,
        F: Fn(Option<Product>) -> Result<Product, E> + Send + Sync,
    {
        let outcome = self
            .products
            .transaction(|products| {
                let current = match products.get(id.as_bytes())? {
                    Some(bytes) => {
                        Some(decode_product(id.as_bytes(), &bytes).map_err(ConflictableTransactionError::Abort)?)
                    }
                    None => None,
                };
                match change(current) {
                    Ok(next) => {
                        products.insert(id.as_bytes(), next.encode_to_vec())?;
                        Ok(Ok(next))
                    }
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
            .map_err(from_tx)?;
        if outcome.is_ok() {
            self.durable().await?;
        }
        Ok(outcome)
    }

    async fn delete<E, F>(&self, id: &str, check: F) -> Result<Result<bool, E>, StoreError>
    where
        E: Send,
        F: Fn(&Product) -> Result<(), E> + Send + Sync,
    {
        let outcome = self
            .products
            .transaction(|products| {
                let Some(bytes) = products.get(id.as_bytes())? else {
                    return Ok(Ok(false));
                };
                let current = decode_product(id.as_bytes(), &bytes).map_err(ConflictableTransactionError::Abort)?;
                match check(&current) {
                    Ok(()) => {
                        products.remove(id.as_bytes())?;
                        Ok(Ok(true))
                    }
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
            .map_err(from_tx)?;
        if matches!(outcome, Ok(true)) {
            self.durable().await?;
        }
        Ok(outcome)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(|_| ()).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str) -> Product {
        Product {
            name: format!("products/{id}"),
            display_name: id.to_uppercase(),
            ..Default::default()
        }
    }

    fn open(dir: &Path) -> SledStore {
        SledStore::open(dir, &SledOptions::default()).unwrap()
    }

    #[tokio::test]
    async fn insert_get_scan_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for id in ["b", "a", "c"] {
            assert_eq!(
                store.insert(id, &product(id), None).await.unwrap(),
                InsertOutcome::Inserted
            );
        }
        assert_eq!(
            store.insert("a", &product("a"), None).await.unwrap(),
            InsertOutcome::IdTaken
        );
        assert_eq!(store.get("a").unwrap(), Some(product("a")));
        let ids = |v: Vec<Product>| v.into_iter().map(|p| p.display_name).collect::<Vec<_>>();
        assert_eq!(ids(store.scan(None, 10).unwrap()), ["A", "B", "C"]);
        assert_eq!(ids(store.scan(Some("a"), 1).unwrap()), ["B"]);

        let updated = store
            .update("b", |p| -> Result<Product, ()> {
                let mut p = p.unwrap();
                p.description = "x".into();
                Ok(p)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.get("b").unwrap(), Some(updated));
        let refused = store.update("b", |_| Err::<Product, _>("no")).await.unwrap();
        assert_eq!(refused, Err("no"));
        assert_eq!(store.delete("c", |_| Err::<(), _>("keep")).await.unwrap(), Err("keep"));
        assert_eq!(store.delete("c", |_| Ok::<(), ()>(())).await.unwrap(), Ok(true));
        assert_eq!(store.delete("c", |_| Ok::<(), ()>(())).await.unwrap(), Ok(false));
    }

    #[tokio::test]
    async fn request_ids_replay_the_first_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let record = RequestRecord {
            request_id: "r1".into(),
            fingerprint: vec![1, 2],
            product: product("a"),
        };
        assert_eq!(
            store.insert("a", &product("a"), Some(&record)).await.unwrap(),
            InsertOutcome::Inserted
        );
        // Same request id, other product id: the first call's record comes back
        // and nothing new is stored.
        assert_eq!(
            store.insert("z", &product("z"), Some(&record)).await.unwrap(),
            InsertOutcome::Replayed(Box::new(record.clone()))
        );
        assert_eq!(store.get("z").unwrap(), None);
    }

    #[tokio::test]
    async fn data_survives_reopening_and_the_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.insert("a", &product("a"), None).await.unwrap();
            assert!(matches!(
                SledStore::open(dir.path(), &SledOptions::default()),
                Err(StoreError::Locked { .. })
            ));
        }
        assert_eq!(open(dir.path()).get("a").unwrap(), Some(product("a")));
    }

    #[tokio::test]
    async fn corrupt_records_are_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.products.insert("bad", &[0xff, 0xff, 0xff][..]).unwrap();
        assert!(matches!(store.get("bad"), Err(StoreError::Corrupt { .. })));
        let update = store.update("bad", |p| Ok::<_, ()>(p.unwrap_or_default())).await;
        assert!(matches!(update, Err(StoreError::Corrupt { .. })));
    }
}
