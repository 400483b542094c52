//! The whole-product rules, vendors' limits included, are tested in
//! `vendors/validation_tests.rs`, where both are in reach. Here: the rules on
//! the wire against the reflective walk they replaced.

use super::*;
use crate::domain::filled::filled;
use proptest::collection::vec;
use proptest::prelude::*;

#[test]
fn locale_keys() {
    for ok in ["en", "en_US", "zh_CN", "zh_Hans_CN", "es-ES"] {
        assert!(is_locale_id(ok), "{ok}");
    }
    for bad in ["", "e", "english", "en_", "en US"] {
        assert!(!is_locale_id(bad), "{bad}");
    }
}

/// The generic rules walked on the wire, sorted; `Err` if the walk failed.
fn on_the_wire(product: &Product) -> Result<Vec<FieldViolation>, wire::Malformed> {
    let mut out = Vec::new();
    encoded::check_message(
        &schema::product_descriptor(),
        &product.encode_to_vec(),
        &mut "product".to_owned(),
        &mut out,
    )?;
    Ok(sorted(out))
}

/// The generic rules over the reflective form, sorted (map entries come in
/// no particular order there).
fn by_reflection(product: &Product) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_schema_rules(&to_dynamic(product), &mut "product".to_owned(), &mut out);
    sorted(out)
}

fn sorted(mut violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    violations.sort_by(|a, b| (&a.field, &a.description).cmp(&(&b.field, &b.description)));
    violations
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn the_rules_on_the_wire_agree_with_the_reflective_walk(choices in vec(any::<u8>(), 1..64)) {
        let product = filled(&choices);
        prop_assert_eq!(on_the_wire(&product), Ok(by_reflection(&product)));
    }
}

#[test]
fn the_filled_products_break_every_generic_rule_somewhere() {
    let mut seen = Vec::new();
    for seed in 0..=255u8 {
        let choices: Vec<u8> = (0..64u8)
            .map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(17)))
            .collect();
        let product = filled(&choices);
        let found = on_the_wire(&product).expect("prost's encoding walks");
        assert_eq!(found, by_reflection(&product), "seed {seed}");
        seen.extend(found.into_iter().map(|v| v.description));
    }
    for kind in [
        "is required",
        "is not a value of",
        "bytes long",
        "must be a finite number",
        "(JSON has no NaN or infinity)",
        "is nested deeper than",
        "has a key that is too long",
    ] {
        assert!(seen.iter().any(|d| d.contains(kind)), "no filled product gave {kind:?}");
    }
}

#[test]
fn too_many_entries_are_counted_alike_in_lists_and_maps() {
    use crate::pb::{LicensingMetadata, LicensingProfile, MonetizationProfile};
    let many = MAX_ENTRIES + 1;
    let product = Product {
        labels: (0..many).map(|i| (format!("l{i}"), String::new())).collect(),
        licensing: Some(LicensingProfile {
            metadata: vec![LicensingMetadata::default(); many],
            ..LicensingProfile::default()
        }),
        monetization: Some(MonetizationProfile {
            tags: vec!["t".to_owned(); many],
            ..MonetizationProfile::default()
        }),
        ..Product::default()
    };
    let found = on_the_wire(&product).expect("walks");
    for list in [
        "product.labels",
        "product.licensing.metadata",
        "product.monetization.tags",
    ] {
        assert!(found.contains(&too_many(list, many, MAX_ENTRIES)), "{list}: {found:?}");
    }
    assert_eq!(found, by_reflection(&product));
}

/// No list of the API is packed; a packed list of the descriptor pool's own
/// types stands in, so unpacking is held to the reflective count too.
#[test]
fn a_packed_list_counts_its_items() {
    let location = schema::product_descriptor()
        .parent_pool()
        .get_message_by_name("google.protobuf.SourceCodeInfo.Location")
        .expect("descriptor.proto is in the pool");
    let bytes = prost_types::source_code_info::Location {
        path: (0..1001).collect(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut walked = Vec::new();
    encoded::check_message(&location, &bytes, &mut "location".to_owned(), &mut walked).expect("walks");
    let mut reflected = Vec::new();
    let message = DynamicMessage::decode(location, bytes.as_slice()).expect("decodes");
    check_schema_rules(&message, &mut "location".to_owned(), &mut reflected);
    assert_eq!(walked, vec![too_many("location.path", 1001, MAX_ENTRIES)]);
    assert_eq!(walked, reflected);
}
