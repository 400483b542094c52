//! Snapshots of the catalog, for backups, restores and moving between
//! backends: every product, with its sync state and the vendors' remote ids,
//! one per line as protobuf JSON (`producthub.v1.Product`, keys in sorted
//! order, so equal products give equal lines).
//!
//! [`export`] reads a store as of one moment ([`Products::snapshot`]: a
//! locked sled directory, or one PostgreSQL transaction); [`import`] loads a
//! snapshot into an empty store, either backend, product by product through
//! the store's own writes (so the vendor copies' holders are claimed and
//! pending deliveries are announced again). Not carried: tombstones of deletes
//! still to reach a vendor, the change log (WatchProducts resume tokens do not
//! survive a move), request ids, and long-running operations.

use std::io::{BufRead, Write};

use futures_util::stream::{self, StreamExt};
use prost_reflect::DynamicMessage;

use crate::domain::names::parse_product_name;
use crate::domain::schema::{from_dynamic, product_descriptor, to_dynamic};
use crate::pb::{Product, SyncState};
use crate::storage::{InsertOutcome, ProductStore, StoreError};

/// Products read from the store, or written to it, at a time.
const BATCH: usize = 256;
/// Writes in flight while importing (they share the store's flushes).
pub const WRITES_IN_FLIGHT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the snapshot: {0}")]
    Write(std::io::Error),
    #[error("cannot read the snapshot: {0}")]
    Read(std::io::Error),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("cannot write {name} as JSON: {reason}")]
    Unwritable { name: String, reason: String },
    #[error("the store already holds products (products/{first}, ...); import-snapshot loads only into an empty store")]
    NotEmpty { first: String },
}

/// A product as its snapshot line (without the newline); an error for a
/// value protobuf JSON cannot hold (a NaN in `vendor_fields`, a time outside
/// years 1-9999).
pub fn to_line(product: &Product) -> Result<String, SnapshotError> {
    // serde_json's maps are ordered: the keys come out sorted.
    serde_json::to_value(to_dynamic(product))
        .map(|json| json.to_string())
        .map_err(|e| SnapshotError::Unwritable {
            name: product.name.clone(),
            reason: e.to_string(),
        })
}

/// The product a snapshot line holds.
pub fn from_line(line: &str) -> Result<Product, String> {
    let mut json = serde_json::Deserializer::from_str(line);
    let message = DynamicMessage::deserialize(product_descriptor(), &mut json).map_err(|e| e.to_string())?;
    json.end().map_err(|e| e.to_string())?;
    let product = from_dynamic(&message);
    parse_product_name(&product.name, "name").map_err(|v| format!("{}: {}", v.field, v.description))?;
    Ok(product)
}

/// Writes every product of `store`, as of one moment, to `out`; returns how
/// many.
pub async fn export<S: ProductStore>(store: &S, out: &mut (impl Write + Send)) -> Result<u64, SnapshotError> {
    let mut count = 0u64;
    let mut failed = None;
    store
        .snapshot(BATCH, |page| {
            for product in &page {
                let written = to_line(product).and_then(|line| writeln!(out, "{line}").map_err(SnapshotError::Write));
                if let Err(error) = written {
                    failed = Some(error);
                    return Err(StoreError::Backend("the snapshot stopped".into()));
                }
                count += 1;
            }
            Ok(())
        })
        .await
        .map_err(|error| failed.take().unwrap_or(SnapshotError::Store(error)))?;
    out.flush().map_err(SnapshotError::Write)?;
    Ok(count)
}

/// Loads the snapshot `input` into `store`, which must hold no product;
/// returns how many were loaded. A bad line stops the load, naming the line
/// (what was loaded before it stays: the store is not empty any more, so
/// start again on an empty one).
pub async fn import<S: ProductStore>(store: &S, input: impl BufRead) -> Result<u64, SnapshotError> {
    if let Some(first) = store.scan(None, 1).await?.first() {
        return Err(SnapshotError::NotEmpty {
            first: first.name.strip_prefix("products/").unwrap_or(&first.name).to_owned(),
        });
    }
    let mut count = 0u64;
    let mut batch: Vec<(usize, Product)> = Vec::with_capacity(BATCH);
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(SnapshotError::Read)?;
        if line.trim().is_empty() {
            // An export writes none: a blank line is a damaged file.
            return Err(SnapshotError::Line {
                line: index + 1,
                reason: "a blank line (the file is damaged or not a snapshot)".into(),
            });
        }
        let product = from_line(&line).map_err(|reason| SnapshotError::Line {
            line: index + 1,
            reason,
        })?;
        batch.push((index + 1, product));
        if batch.len() == BATCH {
            count += write_batch(store, std::mem::take(&mut batch)).await?;
        }
    }
    count += write_batch(store, batch).await?;
    Ok(count)
}

async fn write_batch<S: ProductStore>(store: &S, batch: Vec<(usize, Product)>) -> Result<u64, SnapshotError> {
    let written = stream::iter(batch)
        .map(|(line, product)| async move {
            let id = product
                .name
                .strip_prefix("products/")
                .unwrap_or(&product.name)
                .to_owned();
            // A delivery that was waiting is announced again, so it resumes.
            let pending = product.sync.iter().any(|s| s.state == SyncState::Pending as i32);
            match store.insert(&id, &product, None, pending).await {
                Ok(InsertOutcome::Inserted) => Ok(1),
                Ok(_) => Err(SnapshotError::Line {
                    line,
                    reason: format!("{} appears twice", product.name),
                }),
                Err(StoreError::LinkTaken {
                    vendor,
                    remote_id,
                    holder,
                }) => Err(SnapshotError::Line {
                    line,
                    reason: format!(
                        "{} holds the {} copy {remote_id:?}, which products/{holder} holds too",
                        product.name,
                        vendor.as_str_name()
                    ),
                }),
                Err(error) => Err(SnapshotError::Store(error)),
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect::<Vec<Result<u64, SnapshotError>>>()
        .await;
    written.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{LicensingProfile, VendorSync};

    #[test]
    fn a_line_round_trips_byte_for_byte() {
        let product = Product {
            name: "products/p1".into(),
            uid: "u-1".into(),
            display_name: "Thermostat".into(),
            labels: [("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())].into(),
            etag: "e1".into(),
            licensing: Some(LicensingProfile {
                license_template_id: "lt".into(),
                product_id: "c1".into(),
                ..Default::default()
            }),
            sync: vec![VendorSync {
                vendor: crate::pb::Vendor::Cryptlex as i32,
                state: SyncState::Synced as i32,
                remote_id: "c1".into(),
                generation: 3,
                fingerprint: "abc".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let line = to_line(&product).unwrap();
        let back = from_line(&line).unwrap();
        assert_eq!(back, product);
        assert_eq!(to_line(&back).unwrap(), line);
        assert!(line.find("\"a\"").unwrap() < line.find("\"b\"").unwrap(), "{line}");
    }

    #[test]
    fn doubles_come_back_to_the_bit() {
        let mut product = Product {
            name: "products/p".into(),
            ..Default::default()
        };
        let mut fields = prost_types::Struct::default();
        for (i, value) in [
            487.260_075_870_910_67,
            0.1 + 0.2,
            1e-300,
            123_456_789.123_456_78,
            2.0f64.sqrt(),
        ]
        .into_iter()
        .enumerate()
        {
            fields.fields.insert(
                format!("n{i}"),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(value)),
                },
            );
        }
        product.monetization = Some(crate::pb::MonetizationProfile {
            plan: Some(crate::pb::Plan {
                charge: Some(0.1 + 0.7),
                ..Default::default()
            }),
            vendor_fields: Some(fields),
            ..Default::default()
        });
        let line = to_line(&product).unwrap();
        assert_eq!(from_line(&line).unwrap(), product, "{line}");
    }

    #[test]
    fn what_json_cannot_hold_is_an_error_naming_the_product() {
        let mut fields = prost_types::Struct::default();
        fields.fields.insert(
            "bad".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
            },
        );
        let product = Product {
            name: "products/nan".into(),
            licensing: Some(LicensingProfile {
                vendor_fields: Some(fields),
                ..Default::default()
            }),
            ..Default::default()
        };
        let error = to_line(&product).unwrap_err().to_string();
        assert!(error.contains("products/nan"), "{error}");
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(from_line("{").is_err());
        assert!(from_line(r#"{"displayName": "no name"}"#).unwrap_err().contains("name"));
        assert!(from_line(r#"{"name": "products/a", "noSuchField": 1}"#).is_err());
    }
}
