//! What producthub knows of a vendor's copy, to notice when it changes
//! outside producthub: the copy's **fingerprint**, a digest of the fields
//! producthub maps for that vendor as the vendor itself returns them (its
//! import, so the vendor's own normalisation applies), and the field by field
//! differences shown when a fingerprint no longer matches.
//!
//! What the vendor sets by itself is left out, so that it never reads as a
//! change: output-only fields (ids, keys, times, counters) and the unmodelled
//! `vendor_fields` (where server-set fields such as Revenium's `updated` or
//! Cryptlex's `updatedAt` land). An edit to an unmodelled field is therefore
//! not drift, and is never overwritten either: producthub sends those fields
//! only as the vendor had them.

use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage};
use sha2::{Digest, Sha256};

use super::{Vendor, VendorSettings, mapping};
use crate::domain::field_mask::{changed_paths, clear_output_only, clear_struct_fields, value_json};
use crate::domain::schema::{from_dynamic, to_dynamic};
use crate::pb::{FieldDifference, Product, VendorDrift, VendorSync};

/// Hex digits kept of the SHA-256 digest: 128 bits, ample to tell versions of
/// one copy apart.
const FINGERPRINT_HEX: usize = 32;

/// The part of `product` a vendor's copy holds and producthub maps: the
/// common fields the vendor receives and its profile, without output-only or
/// unmodelled fields, or the fields the vendor counts up by itself.
pub fn projection(vendor: Vendor, product: &Product) -> Product {
    let adapter = vendor.adapter();
    let source = to_dynamic(product);
    let descriptor = source.descriptor();
    let mut kept = DynamicMessage::new(descriptor.clone());
    let counted = adapter.vendor_counted_paths();
    for field in descriptor.fields() {
        if adapter.concerns(field.name()) && !counted.contains(&field.name()) && source.has_field(&field) {
            kept.set_field(&field, source.get_field(&field).into_owned());
        }
    }
    let mut projected = from_dynamic(&kept);
    clear_output_only(&mut projected);
    clear_struct_fields(&mut projected);
    projected
}

/// The fingerprint of a vendor's copy, imported (`copy` is what the vendor's
/// object reads as). Equal copies give equal fingerprints on every machine:
/// maps are ordered, so the encoding is deterministic.
pub fn fingerprint(vendor: Vendor, copy: &Product) -> String {
    let digest = Sha256::digest(projection(vendor, copy).encode_to_vec());
    let mut hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    hex.truncate(FINGERPRINT_HEX);
    hex
}

/// The fields in which the vendor's copy (imported) differs from the
/// canonical product, with both values. producthub's side is the product as
/// producthub has the vendor hold it: what it would send, the values it
/// fills in from the server's settings or the vendor's defaults included
/// (Revenium's team and owner, Cryptlex's `name`), so those do not read as
/// differences.
pub fn differences(
    vendor: Vendor,
    canonical: &Product,
    copy: &Product,
    settings: &VendorSettings,
) -> Vec<FieldDifference> {
    let ours = projection(vendor, &as_sent(vendor, canonical, settings));
    let theirs = projection(vendor, copy);
    changed_paths(&ours, &theirs)
        .into_iter()
        .map(|path| FieldDifference {
            vendor_field: vendor_field(vendor, &path),
            producthub_value: value_json(&ours, &path),
            vendor_value: value_json(&theirs, &path),
            path,
        })
        .collect()
}

/// The product as the vendor holds it once producthub has sent it: the
/// vendor's own reading of the body producthub would create it with (which
/// fills in what the settings and the vendor's defaults give); the product
/// itself where that body cannot be built or read.
fn as_sent(vendor: Vendor, product: &Product, settings: &VendorSettings) -> Product {
    let adapter = vendor.adapter();
    let sent = adapter
        .create(product, settings)
        .ok()
        .and_then(|request| request.body)
        .and_then(|body| adapter.import(&body).ok());
    match sent {
        // Identity and the vendor's bookkeeping come from the product.
        Some(mut sent) => {
            sent.name = product.name.clone();
            sent
        }
        None => product.clone(),
    }
}

/// The drift of a copy (imported) found with the fingerprint `found`, which
/// differs from the one `entry` knows; `None` when the difference is
/// producthub's own doing: the copy holds just what producthub would send
/// (a delivery whose answer was lost reached it), or it differs only in fields
/// producthub has pending and an earlier attempt to send them may have
/// reached it (`maybe_sent`). The fields a pending change names are left out
/// of the drift, unless nothing else differs.
pub fn drift(
    vendor: Vendor,
    product: &Product,
    copy: &Product,
    found: String,
    entry: &VendorSync,
    maybe_sent: bool,
    settings: &VendorSettings,
) -> Option<VendorDrift> {
    let all = differences(vendor, product, copy, settings);
    let pending_covers = |path: &str| {
        entry.pending_paths.iter().any(|p| {
            p == path
                || p == crate::domain::sync_plan::EVERYTHING
                || path.starts_with(&format!("{p}."))
                || p.starts_with(&format!("{path}."))
        })
    };
    let theirs: Vec<FieldDifference> = all.iter().filter(|d| !pending_covers(&d.path)).cloned().collect();
    if all.is_empty() || (theirs.is_empty() && maybe_sent) {
        return None;
    }
    Some(VendorDrift {
        detect_time: Some(std::time::SystemTime::now().into()),
        copy_deleted: false,
        fields: if theirs.is_empty() { all } else { theirs },
        vendor_fingerprint: found,
    })
}

/// A drift that is the copy's deletion at the vendor.
pub fn deletion() -> VendorDrift {
    VendorDrift {
        detect_time: Some(std::time::SystemTime::now().into()),
        copy_deleted: true,
        ..Default::default()
    }
}

/// The vendor's JSON field a canonical path maps to (its mapping table), or
/// the top-level vendor field holding it; empty when the table has none.
fn vendor_field(vendor: Vendor, path: &str) -> String {
    let table = mapping::table(vendor);
    if let Some(row) = table.iter().find(|row| row.canonical == path) {
        return row.vendor.to_owned();
    }
    let inside = format!("{path}.");
    table
        .iter()
        .find(|row| row.canonical.starts_with(&inside))
        .and_then(|row| row.vendor.split(['.', '[']).next())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cryptlex(object: serde_json::Value) -> Product {
        Vendor::Cryptlex.adapter().import(&object).expect("valid Cryptlex JSON")
    }

    #[test]
    fn server_set_fields_do_not_change_the_fingerprint() {
        let base = json!({"id": "c1", "name": "weather", "displayName": "Weather", "licenseTemplateId": "lt"});
        let mut later = base.clone();
        later["totalLicenses"] = json!(12);
        later["updatedAt"] = json!("2026-02-03T04:05:06Z");
        later["publicKey"] = json!("RSA-NEW");
        assert_eq!(
            fingerprint(Vendor::Cryptlex, &cryptlex(base)),
            fingerprint(Vendor::Cryptlex, &cryptlex(later))
        );
    }

    #[test]
    fn a_mapped_field_changes_it_and_is_named_with_both_values() {
        let base = json!({"id": "c1", "name": "weather", "displayName": "Weather", "licenseTemplateId": "lt"});
        let mut edited = base.clone();
        edited["trialPolicyId"] = json!("tp-9");
        let (ours, theirs) = (cryptlex(base), cryptlex(edited));
        assert_ne!(
            fingerprint(Vendor::Cryptlex, &ours),
            fingerprint(Vendor::Cryptlex, &theirs)
        );
        let found = differences(Vendor::Cryptlex, &ours, &theirs, &VendorSettings::default());
        assert_eq!(
            found,
            [FieldDifference {
                path: "licensing.trial_policy_id".into(),
                vendor_field: "trialPolicyId".into(),
                producthub_value: "null".into(),
                vendor_value: "\"tp-9\"".into(),
            }]
        );
    }

    #[test]
    fn fields_another_vendor_maps_are_not_this_ones() {
        let mut product = cryptlex(json!({"id": "c1", "name": "w", "displayName": "W", "licenseTemplateId": "lt"}));
        let before = fingerprint(Vendor::Cryptlex, &product);
        product.labels.insert("team".into(), "iot".into());
        product.version = "2.0.0".into();
        assert_eq!(fingerprint(Vendor::Cryptlex, &product), before);
    }
}
