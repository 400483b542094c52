//! Sync bookkeeping on the product itself: pure functions over `Product.sync`,
//! keyed by the API's `Vendor` value. Which vendor a key means, and where its
//! id lives in the product's profile, is the vendors' business (`vendors`
//! seeds and reads remote ids around these functions).
//!
//! The sync state lives in the product record, so marking a change for delivery
//! is part of the same atomic, durable write as the change itself; no separate
//! queue can disagree with it. Delivery outcomes are applied with
//! [`record_outcome`], which refuses to mark a newer change delivered.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::pb::{Product, SyncState, Vendor, VendorDrift, VendorSync};

/// The mask path meaning "the whole product".
pub const EVERYTHING: &str = "*";

/// The vendor's entry, if the product has one.
pub fn entry(product: &Product, vendor: Vendor) -> Option<&VendorSync> {
    product.sync.iter().find(|s| s.vendor == vendor as i32)
}

fn entry_mut(product: &mut Product, vendor: Vendor) -> &mut VendorSync {
    let wanted = vendor as i32;
    let index = match product.sync.iter().position(|s| s.vendor == wanted) {
        Some(index) => index,
        None => {
            product.sync.push(VendorSync {
                vendor: wanted,
                ..Default::default()
            });
            product.sync.sort_by_key(|s| s.vendor);
            product.sync.iter().position(|s| s.vendor == wanted).unwrap_or_default()
        }
    };
    &mut product.sync[index]
}

/// Marks a change for delivery to `vendors`: `paths` are the canonical paths
/// that changed (`*` for everything). Vendors that are not `enabled` are
/// marked DISABLED instead.
pub fn mark_changed(product: &mut Product, vendors: &BTreeSet<Vendor>, paths: &[String], enabled: &BTreeSet<Vendor>) {
    for vendor in vendors {
        let entry = entry_mut(product, *vendor);
        if !enabled.contains(vendor) {
            entry.state = SyncState::Disabled as i32;
            continue;
        }
        // A change arriving during retries keeps their backoff (and any
        // Retry-After the vendor asked for); otherwise it starts afresh.
        if entry.state != SyncState::Pending as i32 {
            entry.attempts = 0;
            entry.last_error.clear();
            entry.next_attempt_time = None;
        }
        entry.state = SyncState::Pending as i32;
        entry.generation += 1;
        // Named paths stay beside `*`: a whole resend sends no empty value,
        // so a clear that is still pending must be sent by name as well.
        let mut merged: BTreeSet<String> = entry.pending_paths.drain(..).collect();
        merged.extend(paths.iter().cloned());
        entry.pending_paths = merged.into_iter().collect();
    }
}

/// What happens to a copy found changed at the vendor (drift).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftPolicy {
    /// Nothing is overwritten: the entry turns DRIFTED and says how.
    #[default]
    Report,
    /// producthub wins: its values are sent again.
    Push,
    /// The vendor wins: its values become the canonical product's.
    Adopt,
}

impl DriftPolicy {
    /// The policy an API value asks for; `None` for UNSPECIFIED (the
    /// server's), an error for an unknown value.
    pub fn from_pb(value: i32) -> Result<Option<DriftPolicy>, String> {
        match crate::pb::ReconcilePolicy::try_from(value) {
            Ok(crate::pb::ReconcilePolicy::Unspecified) => Ok(None),
            Ok(crate::pb::ReconcilePolicy::Report) => Ok(Some(DriftPolicy::Report)),
            Ok(crate::pb::ReconcilePolicy::Push) => Ok(Some(DriftPolicy::Push)),
            Ok(crate::pb::ReconcilePolicy::Adopt) => Ok(Some(DriftPolicy::Adopt)),
            Err(_) => Err(format!(
                "{value} is not a policy; use RECONCILE_POLICY_REPORT, _PUSH or _ADOPT"
            )),
        }
    }

    pub fn to_pb(self) -> crate::pb::ReconcilePolicy {
        match self {
            DriftPolicy::Report => crate::pb::ReconcilePolicy::Report,
            DriftPolicy::Push => crate::pb::ReconcilePolicy::Push,
            DriftPolicy::Adopt => crate::pb::ReconcilePolicy::Adopt,
        }
    }
}

impl std::str::FromStr for DriftPolicy {
    type Err = String;

    /// `report`, `push` or `adopt` (any case), as the command line says it.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "report" => Ok(DriftPolicy::Report),
            "push" => Ok(DriftPolicy::Push),
            "adopt" => Ok(DriftPolicy::Adopt),
            _ => Err(format!("{text:?} is not a policy; use report, push or adopt")),
        }
    }
}

/// Forgets the vendor's copy (gone at the vendor), so the next delivery
/// creates one.
pub fn forget_copy(product: &mut Product, vendor: Vendor) {
    let entry = entry_mut(product, vendor);
    entry.remote_id.clear();
    entry.fingerprint.clear();
    entry.drift = None;
}

/// Removes the vendor's entry: the product holds nothing there any more.
pub fn remove_entry(product: &mut Product, vendor: Vendor) {
    product.sync.retain(|s| s.vendor != vendor as i32);
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The vendor has the change; `remote_id` is its id for the product (new
    /// after a create), empty after the vendor's copy was deleted.
    Delivered { remote_id: String, gone: bool },
    /// Try again after `after`.
    Retry { error: String, after: Duration },
    /// Retrying cannot help until the product changes.
    Failed { error: String },
    /// The vendor is not configured on this server (any more): nothing sent.
    Disabled,
    /// The vendor's copy changed since it was last delivered or read, and the
    /// change was not sent over it (the `report` policy). What is pending
    /// stays pending, for a push or an adopt to settle.
    Drifted { drift: VendorDrift },
}

/// Applies a delivery outcome for `vendor`, made for the change of
/// `generation` and the product at `etag`. A newer change that arrived
/// meanwhile stays pending.
pub fn record_outcome(
    product: &mut Product,
    vendor: Vendor,
    generation: u64,
    etag: &str,
    outcome: &Outcome,
    now: SystemTime,
) {
    let entry = entry_mut(product, vendor);
    let current = entry.generation == generation;
    match outcome {
        Outcome::Delivered { gone: true, .. } if current => {
            // The vendor's copy is deleted and nothing newer is pending: the
            // product no longer has anything at this vendor.
            let wanted = entry.vendor;
            product.sync.retain(|s| s.vendor != wanted);
        }
        Outcome::Delivered { remote_id, gone } => {
            entry.remote_id = if *gone { String::new() } else { remote_id.clone() };
            entry.attempts = 0;
            entry.last_error.clear();
            entry.next_attempt_time = None;
            entry.drift = None;
            if current {
                entry.state = SyncState::Synced as i32;
                entry.synced_etag = etag.to_owned();
                entry.last_sync_time = Some(now.into());
                entry.pending_paths.clear();
            } else {
                // The call reached the vendor, but a newer change must still be
                // sent (as an update, now that the remote id is known).
                entry.state = SyncState::Pending as i32;
            }
        }
        Outcome::Retry { error, after } if current => {
            entry.attempts += 1;
            entry.last_error = error.clone();
            entry.next_attempt_time = Some((now + *after).into());
        }
        Outcome::Failed { error } if current => {
            entry.state = SyncState::Failed as i32;
            entry.attempts += 1;
            entry.last_error = error.clone();
            entry.next_attempt_time = None;
        }
        Outcome::Disabled => entry.state = SyncState::Disabled as i32,
        // Whatever is pending, the copy has changed at the vendor.
        Outcome::Drifted { drift } => {
            entry.state = SyncState::Drifted as i32;
            entry.attempts = 0;
            entry.last_error = drift_summary(drift);
            entry.next_attempt_time = None;
            entry.drift = Some(drift.clone());
        }
        // A newer change is pending: it gets a fresh start.
        Outcome::Retry { .. } | Outcome::Failed { .. } => {}
    }
}

/// Records `remote_id` as the vendor's copy of the product unless its entry
/// already names one (e.g. the id an imported profile holds), creating the
/// entry if need be.
pub fn note_remote_id(product: &mut Product, vendor: Vendor, remote_id: &str) {
    let entry = entry_mut(product, vendor);
    if entry.remote_id.is_empty() {
        entry.remote_id = remote_id.to_owned();
    }
}

/// Records the vendor's copy of the product for a vendor this server does not
/// deliver to (not configured): linked, DISABLED, nothing pending.
pub fn mark_linked(product: &mut Product, vendor: Vendor, remote_id: &str) {
    let entry = entry_mut(product, vendor);
    entry.state = SyncState::Disabled as i32;
    entry.remote_id = remote_id.to_owned();
    entry.pending_paths.clear();
    entry.next_attempt_time = None;
}

/// Marks the vendor's copy as matching the product as it is (after an import
/// from that vendor: it sent us this very product).
pub fn mark_synced(product: &mut Product, vendor: Vendor, remote_id: &str, now: SystemTime) {
    let etag = product.etag.clone();
    let entry = entry_mut(product, vendor);
    entry.state = SyncState::Synced as i32;
    entry.remote_id = remote_id.to_owned();
    entry.synced_etag = etag;
    entry.last_sync_time = Some(now.into());
    entry.pending_paths.clear();
}

/// Records the digest of the vendor's copy as just delivered or read (empty:
/// not known, so the next delivery does not compare).
pub fn set_fingerprint(product: &mut Product, vendor: Vendor, fingerprint: &str) {
    entry_mut(product, vendor).fingerprint = fingerprint.to_owned();
}

/// Records drift found by a reconcile: the entry turns DRIFTED (see
/// [`Outcome::Drifted`]).
pub fn mark_drifted(product: &mut Product, vendor: Vendor, drift: VendorDrift) {
    let entry = entry_mut(product, vendor);
    entry.state = SyncState::Drifted as i32;
    entry.last_error = drift_summary(&drift);
    entry.next_attempt_time = None;
    entry.attempts = 0;
    entry.drift = Some(drift);
}

/// Sets the entry's `last_error` (a reason more precise than its state's).
pub fn set_last_error(product: &mut Product, vendor: Vendor, error: &str) {
    entry_mut(product, vendor).last_error = error.to_owned();
}

/// Forgets a drift that is no more (the copy is back to what producthub
/// knows): the entry is SYNCED again, or PENDING when a change waits.
pub fn clear_drift(product: &mut Product, vendor: Vendor) {
    let entry = entry_mut(product, vendor);
    entry.drift = None;
    if entry.state == SyncState::Drifted as i32 {
        entry.last_error.clear();
        entry.state = if entry.pending_paths.is_empty() {
            SyncState::Synced as i32
        } else {
            SyncState::Pending as i32
        };
    }
}

/// Records that the vendor's copy matches the product at its current etag
/// (it is where the values came from), unless a change is still pending.
pub fn mark_holding(product: &mut Product, vendor: Vendor, now: SystemTime) {
    let etag = product.etag.clone();
    let entry = entry_mut(product, vendor);
    if entry.state == SyncState::Synced as i32 {
        entry.synced_etag = etag;
        entry.last_sync_time = Some(now.into());
    }
}

/// The one-line account of a drift that `last_error` shows.
pub fn drift_summary(drift: &VendorDrift) -> String {
    if drift.copy_deleted {
        return "the copy was deleted at the vendor".to_owned();
    }
    let paths: Vec<&str> = drift.fields.iter().map(|f| f.path.as_str()).collect();
    match paths.is_empty() {
        true => "the copy was changed at the vendor".to_owned(),
        false => format!("the copy was changed at the vendor: {}", paths.join(", ")),
    }
}

/// Entries waiting for delivery whose time has come, and the earliest later one.
pub fn due(product: &Product, now: SystemTime) -> (Vec<VendorSync>, Option<SystemTime>) {
    let mut ready = Vec::new();
    let mut later: Option<SystemTime> = None;
    for entry in &product.sync {
        if entry.state != SyncState::Pending as i32 {
            continue;
        }
        let at = entry
            .next_attempt_time
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if at <= now {
            ready.push(entry.clone());
        } else {
            later = Some(later.map_or(at, |l| l.min(at)));
        }
    }
    (ready, later)
}

/// Exponential backoff with jitter: about `base · 2^attempts`, capped at
/// `max`, spread over ±25% so retries from many products do not align.
pub fn backoff(attempts: i32, base: Duration, max: Duration, random: u64) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let nominal = base.saturating_mul(1u32 << exponent).min(max);
    let spread = nominal.as_millis() as u64 / 2;
    let jitter = if spread == 0 { 0 } else { random % (spread + 1) };
    ((nominal - Duration::from_millis(spread / 2)) + Duration::from_millis(jitter)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendors(v: &[Vendor]) -> BTreeSet<Vendor> {
        v.iter().copied().collect()
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn changes_coalesce_until_delivered() {
        let mut p = Product::default();
        let enabled = vendors(&[Vendor::Cryptlex]);
        mark_changed(
            &mut p,
            &vendors(&[Vendor::Cryptlex]),
            &paths(&["description"]),
            &enabled,
        );
        mark_changed(
            &mut p,
            &vendors(&[Vendor::Cryptlex]),
            &paths(&["licensing.name"]),
            &enabled,
        );
        let e = entry(&p, Vendor::Cryptlex).unwrap();
        assert_eq!(e.state, SyncState::Pending as i32);
        assert_eq!(e.pending_paths, ["description", "licensing.name"]);
        assert_eq!(e.generation, 2);
        mark_changed(&mut p, &vendors(&[Vendor::Cryptlex]), &paths(&["*"]), &enabled);
        assert_eq!(
            entry(&p, Vendor::Cryptlex).unwrap().pending_paths,
            ["*", "description", "licensing.name"],
            "a resend keeps the named changes, so clears among them still go"
        );
    }

    #[test]
    fn disabled_vendors_say_so() {
        let mut p = Product::default();
        mark_changed(&mut p, &vendors(&[Vendor::Enos]), &paths(&["*"]), &BTreeSet::new());
        assert_eq!(entry(&p, Vendor::Enos).unwrap().state, SyncState::Disabled as i32);
    }

    #[test]
    fn a_delivery_does_not_swallow_a_newer_change() {
        let mut p = Product {
            licensing: Some(Default::default()),
            ..Default::default()
        };
        let enabled = vendors(&[Vendor::Cryptlex]);
        mark_changed(&mut p, &enabled, &paths(&["*"]), &enabled);
        let sent_generation = entry(&p, Vendor::Cryptlex).unwrap().generation;
        mark_changed(&mut p, &enabled, &paths(&["description"]), &enabled);
        let delivered = Outcome::Delivered {
            remote_id: "c1".into(),
            gone: false,
        };
        record_outcome(
            &mut p,
            Vendor::Cryptlex,
            sent_generation,
            "e1",
            &delivered,
            SystemTime::now(),
        );
        let e = entry(&p, Vendor::Cryptlex).unwrap();
        assert_eq!(e.state, SyncState::Pending as i32, "the newer change is still to go");
        assert_eq!(e.remote_id, "c1");
        let current = e.generation;
        record_outcome(&mut p, Vendor::Cryptlex, current, "e2", &delivered, SystemTime::now());
        let e = entry(&p, Vendor::Cryptlex).unwrap();
        assert_eq!((e.state, e.synced_etag.as_str()), (SyncState::Synced as i32, "e2"));
        assert!(e.pending_paths.is_empty());
    }

    #[test]
    fn retries_back_off_and_failures_stop() {
        let mut p = Product::default();
        let enabled = vendors(&[Vendor::Enos]);
        mark_changed(&mut p, &enabled, &paths(&["*"]), &enabled);
        let now = SystemTime::now();
        let g = entry(&p, Vendor::Enos).unwrap().generation;
        let retry = Outcome::Retry {
            error: "503".into(),
            after: Duration::from_secs(5),
        };
        record_outcome(&mut p, Vendor::Enos, g, "e", &retry, now);
        assert_eq!(due(&p, now).0.len(), 0, "not before its time");
        assert_eq!(due(&p, now + Duration::from_secs(6)).0.len(), 1);
        record_outcome(
            &mut p,
            Vendor::Enos,
            g,
            "e",
            &Outcome::Failed {
                error: "bad model".into(),
            },
            now,
        );
        let e = entry(&p, Vendor::Enos).unwrap();
        assert_eq!(
            (e.state, e.attempts, e.last_error.as_str()),
            (SyncState::Failed as i32, 2, "bad model")
        );
        assert!(
            due(&p, now + Duration::from_secs(600)).0.is_empty(),
            "failed: no more attempts"
        );
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for random in [0u64, 7, u64::MAX] {
            let first = backoff(0, base, max, random);
            assert!(
                (Duration::from_millis(75)..=Duration::from_millis(125)).contains(&first),
                "{first:?}"
            );
            let late = backoff(30, base, max, random);
            assert!(late <= max && late >= Duration::from_millis(7500), "{late:?}");
        }
    }
}
