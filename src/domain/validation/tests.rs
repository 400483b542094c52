//! The whole-product rules, vendors' limits included, are tested in
//! `vendors/validation_tests.rs`, where both are in reach. Here: the rules on
//! the wire against the reflective walk they replaced.

use proptest::collection::vec;
use proptest::prelude::*;
use prost_reflect::MapKey;

use super::*;
use crate::domain::schema::from_dynamic;

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

/// A product with every field of the schema filled from `choices`, at every
/// depth: strings short or too long, enums defined or not, doubles finite or
/// not, messages set or left out (so REQUIRED fields go missing), lists and
/// maps of up to two items with keys short or too long, and
/// `google.protobuf.Struct`s nested up to past the limit.
fn filled(choices: &[u8]) -> Product {
    let mut choices = choices.iter().copied().cycle();
    from_dynamic(&fill(&schema::product_descriptor(), &mut choices, 0))
}

fn fill(descriptor: &MessageDescriptor, choices: &mut impl Iterator<Item = u8>, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for field in descriptor.fields() {
        let choice = choices.next().unwrap_or_default();
        if choice.is_multiple_of(4) {
            continue;
        }
        let count = usize::from(choice % 3);
        let value = match field.kind() {
            Kind::Message(entry) if field.is_map() => {
                let value_kind = entry.map_entry_value_field().kind();
                Value::Map(
                    (0..count)
                        .map(|i| {
                            let key = match choice % 11 {
                                0 => "k".repeat(MAX_STRING_BYTES + 1),
                                _ => format!("k{i}"),
                            };
                            (MapKey::String(key), one(&value_kind, choices, depth))
                        })
                        .collect(),
                )
            }
            kind if field.is_list() => Value::List((0..count).map(|_| one(&kind, choices, depth)).collect()),
            kind => one(&kind, choices, depth),
        };
        message.set_field(&field, value);
    }
    message
}

fn one(kind: &Kind, choices: &mut impl Iterator<Item = u8>, depth: usize) -> Value {
    let choice = choices.next().unwrap_or_default();
    match kind {
        Kind::String => Value::String(match choice % 7 {
            0 => "s".repeat(MAX_STRING_BYTES + 1),
            _ => format!("s{choice}"),
        }),
        Kind::Enum(e) => Value::EnumNumber(match choice % 5 {
            0 => 999,
            _ => e.default_value().number(),
        }),
        Kind::Double => Value::F64([1.5, f64::NAN, f64::INFINITY, -0.0][usize::from(choice % 4)]),
        Kind::Message(m) if schema::is_struct(m) => {
            let json = nested_struct(choice).encode_to_vec();
            Value::Message(
                DynamicMessage::decode(m.clone(), json.as_slice()).unwrap_or_else(|_| DynamicMessage::new(m.clone())),
            )
        }
        Kind::Message(m) if schema::is_opaque_message(m) || depth > 6 => Value::Message(DynamicMessage::new(m.clone())),
        Kind::Message(m) => Value::Message(fill(m, choices, depth + 1)),
        other => Value::default_value(other),
    }
}

/// `{"a": <levels deep of objects and arrays>, "b": leaf}`, where `choice`
/// picks how deep (to just past [`MAX_STRUCT_DEPTH`]) and the leaf number.
fn nested_struct(choice: u8) -> prost_types::Struct {
    use prost_types::value::Kind as JsonKind;
    let levels = [1, 3, MAX_STRUCT_DEPTH, MAX_STRUCT_DEPTH + 1, MAX_STRUCT_DEPTH + 2][usize::from(choice % 5)];
    let leaf = [1.0, f64::NAN, f64::NEG_INFINITY][usize::from(choice / 5 % 3)];
    let number = |n: f64| prost_types::Value {
        kind: Some(JsonKind::NumberValue(n)),
    };
    let deep = (0..levels).fold(number(leaf), |inner, level| prost_types::Value {
        kind: Some(match level % 2 {
            0 => JsonKind::StructValue(prost_types::Struct {
                fields: [("k".to_owned(), inner), ("n".to_owned(), number(leaf))].into(),
            }),
            _ => JsonKind::ListValue(prost_types::ListValue {
                values: vec![number(2.0), inner],
            }),
        }),
    });
    prost_types::Struct {
        fields: [("a".to_owned(), deep), ("b".to_owned(), number(leaf))].into(),
    }
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
