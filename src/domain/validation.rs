//! Whole-product validation, run on every product before it is stored.
//!
//! Two layers: generic rules read from the schema (REQUIRED fields are set, enum
//! values are defined, no string or list is absurdly large), then the documented
//! constraints of each vendor whose profile the product has, so a product that
//! producthub accepts is one every one of its vendors will accept too.

use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

use super::FieldViolation;
use super::schema::{self, to_dynamic};
use crate::pb::Product;

/// The longest string any field may hold, in bytes (specific fields allow less).
pub const MAX_STRING_BYTES: usize = 16 * 1024;
/// The most entries any repeated or map field may hold (specific fields allow less).
pub const MAX_ENTRIES: usize = 1000;

const MAX_DISPLAY_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 63;
const MAX_LOCALES: usize = 64;

// EnOS limits (connection-service limitations page and create_product docs).
const ENOS_MAX_NAME: usize = 64;
const ENOS_NAME_FORBIDDEN: &[char] = &['<', '>', ';', '@', '*', '%', '&', '\\'];
const ENOS_MAX_DESCRIPTION: usize = 512;
const ENOS_MAX_TAGS: usize = 100;
const ENOS_MAX_TAG_KEY: usize = 50;
const ENOS_MAX_TAG_VALUE: usize = 200;
const ENOS_VALID_DAYS: std::ops::RangeInclusive<i32> = 1..=3650;

// Cryptlex limits (Web API v3 product request schema).
const CRYPTLEX_MAX_TEXT: usize = 256;
const CRYPTLEX_MAX_METADATA_VALUE: usize = 4096;

// Revenium limits (client-side rules of Revenium's own tools).
const REVENIUM_MAX_NAME: usize = 255;

/// Every reason `product` may not be stored, with paths rooted at `product`.
pub fn validate(product: &Product) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_schema_rules(&to_dynamic(product), &mut String::from("product"), &mut out);
    check_common(product, &mut out);
    if product.iot.is_some() {
        check_enos(product, &mut out);
    }
    if product.licensing.is_some() {
        check_cryptlex(product, &mut out);
    }
    if product.monetization.is_some() {
        check_revenium(product, &mut out);
    }
    out
}

/// A vendor profile of the canonical product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `iot`: EnOS.
    Iot,
    /// `licensing`: Cryptlex.
    Licensing,
    /// `monetization`: Revenium.
    Monetization,
}

/// What one vendor would refuse in `product`: the schema rules of its profile
/// and the vendor's documented limits (on the profile and on the common fields
/// it receives). Empty when the product lacks the profile.
pub fn vendor_violations(product: &Product, profile: Profile) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let (field, present) = match profile {
        Profile::Iot => ("iot", product.iot.is_some()),
        Profile::Licensing => ("licensing", product.licensing.is_some()),
        Profile::Monetization => ("monetization", product.monetization.is_some()),
    };
    if !present {
        return out;
    }
    let message = to_dynamic(product);
    if let Some(descriptor) = message.descriptor().get_field_by_name(field)
        && let Value::Message(sub) = message.get_field(&descriptor).as_ref()
    {
        check_schema_rules(sub, &mut format!("product.{field}"), &mut out);
    }
    if product.display_name.is_empty() {
        out.push(FieldViolation::new("product.display_name", "is required"));
    }
    match profile {
        Profile::Iot => check_enos(product, &mut out),
        Profile::Licensing => check_cryptlex(product, &mut out),
        Profile::Monetization => check_revenium(product, &mut out),
    }
    out
}

/// The generic rules, over every field of `message`. `path` names `message`
/// and is extended in place while descending (and restored), so a product
/// without violations costs no string formatting at all.
fn check_schema_rules(message: &DynamicMessage, path: &mut String, out: &mut Vec<FieldViolation>) {
    for info in schema::fields(&message.descriptor()) {
        let field = &info.field;
        if !message.has_field(field) {
            if info.behaviors.required {
                out.push(FieldViolation::new(format!("{path}.{}", field.name()), "is required"));
            }
            continue;
        }
        let parent = path.len();
        path.push('.');
        path.push_str(field.name());
        let kind = &info.kind;
        match message.get_field(field).as_ref() {
            Value::List(items) => {
                if items.len() > MAX_ENTRIES {
                    out.push(too_many(path, items.len(), MAX_ENTRIES));
                }
                for (i, item) in items.iter().enumerate() {
                    check_item(item, kind, path, &i, out);
                }
            }
            Value::Map(entries) => {
                if entries.len() > MAX_ENTRIES {
                    out.push(too_many(path, entries.len(), MAX_ENTRIES));
                }
                let value_kind = match kind {
                    Kind::Message(entry) => entry.map_entry_value_field().kind(),
                    other => other.clone(),
                };
                for (key, item) in entries {
                    let shown = match key {
                        prost_reflect::MapKey::String(k) => {
                            if k.len() > MAX_STRING_BYTES {
                                out.push(FieldViolation::new(path.as_str(), "has a key that is too long"));
                            }
                            KeyShown::Text(k)
                        }
                        other => KeyShown::Other(other),
                    };
                    check_item(item, &value_kind, path, &shown, out);
                }
            }
            single => check_value(single, kind, path, out),
        }
        path.truncate(parent);
    }
}

/// How a map key appears in a path: `labels["env"]`.
enum KeyShown<'a> {
    Text(&'a str),
    Other(&'a prost_reflect::MapKey),
}

impl std::fmt::Display for KeyShown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyShown::Text(k) => write!(f, "{k:?}"),
            KeyShown::Other(k) => write!(f, "{k:?}"),
        }
    }
}

/// One list item or map value, at `path[index]`.
fn check_item(
    value: &Value,
    kind: &Kind,
    path: &mut String,
    index: &dyn std::fmt::Display,
    out: &mut Vec<FieldViolation>,
) {
    // Only messages (to descend) and violations need the item's own path.
    let needs_path = matches!(value, Value::Message(_)) || scalar_problem(value, kind).is_some();
    if !needs_path {
        return;
    }
    let parent = path.len();
    use std::fmt::Write as _;
    let _ = write!(path, "[{index}]");
    check_value(value, kind, path, out);
    path.truncate(parent);
}

/// What is wrong with a single (non-message) value, if anything.
fn scalar_problem(value: &Value, kind: &Kind) -> Option<String> {
    match (value, kind) {
        (Value::String(s), _) if s.len() > MAX_STRING_BYTES => Some(format!(
            "is {} bytes long; at most {MAX_STRING_BYTES} are allowed",
            s.len()
        )),
        (Value::EnumNumber(n), Kind::Enum(e)) if e.get_value(*n).is_none() => {
            Some(format!("{n} is not a value of {}", e.full_name()))
        }
        (Value::F64(x), _) if !x.is_finite() => Some("must be a finite number".into()),
        _ => None,
    }
}

fn check_value(value: &Value, kind: &Kind, path: &mut String, out: &mut Vec<FieldViolation>) {
    match value {
        Value::Message(m) if !schema::is_opaque_message(&m.descriptor()) => check_schema_rules(m, path, out),
        scalar => {
            if let Some(problem) = scalar_problem(scalar, kind) {
                out.push(FieldViolation::new(path.as_str(), problem));
            }
        }
    }
}

fn too_many(path: &str, found: usize, max: usize) -> FieldViolation {
    FieldViolation::new(path, format!("has {found} entries; at most {max} are allowed"))
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn check_length(out: &mut Vec<FieldViolation>, path: &str, value: &str, min: usize, max: usize, whose: &str) {
    let n = chars(value);
    if n < min || n > max {
        let range = if min == 0 {
            format!("at most {max}")
        } else {
            format!("{min}-{max}")
        };
        out.push(FieldViolation::new(
            path,
            format!("must be {range} characters{whose}, got {n}"),
        ));
    }
}

fn check_common(p: &Product, out: &mut Vec<FieldViolation>) {
    if !p.display_name.is_empty() {
        check_length(out, "product.display_name", &p.display_name, 1, MAX_DISPLAY_NAME, "");
        if p.display_name.trim() != p.display_name {
            out.push(FieldViolation::new(
                "product.display_name",
                "must not start or end with white space",
            ));
        }
    }
    check_length(out, "product.description", &p.description, 0, MAX_DESCRIPTION, "");
    if p.localized_display_names.len() > MAX_LOCALES {
        out.push(too_many(
            "product.localized_display_names",
            p.localized_display_names.len(),
            MAX_LOCALES,
        ));
    }
    for (locale, name) in &p.localized_display_names {
        let path = format!("product.localized_display_names[{locale:?}]");
        if !is_locale_id(locale) {
            out.push(FieldViolation::new(
                &path,
                "the key must be a locale id such as en_US or zh_CN",
            ));
        }
        check_length(out, &path, name, 1, MAX_DISPLAY_NAME, "");
    }
    if p.labels.len() > MAX_LABELS {
        out.push(too_many("product.labels", p.labels.len(), MAX_LABELS));
    }
    for (key, value) in &p.labels {
        let path = format!("product.labels[{key:?}]");
        if !is_label_key(key) {
            out.push(FieldViolation::new(
                &path,
                "the key must be 1-63 characters of [a-z0-9_-] starting with a lower-case letter",
            ));
        }
        if chars(value) > MAX_LABEL_LEN || value.chars().any(char::is_control) {
            out.push(FieldViolation::new(
                &path,
                "the value must be at most 63 characters, without control characters",
            ));
        }
    }
    if !p.version.is_empty() && !is_semantic_version(&p.version) {
        out.push(FieldViolation::new(
            "product.version",
            format!("must have the form MAJOR.MINOR.PATCH (e.g. 1.0.0), got {:?}", p.version),
        ));
    }
}

fn check_enos(p: &Product, out: &mut Vec<FieldViolation>) {
    const WHOSE: &str = " for EnOS (iot profile)";
    let names = std::iter::once(("product.display_name".to_string(), &p.display_name)).chain(
        p.localized_display_names
            .iter()
            .map(|(locale, name)| (format!("product.localized_display_names[{locale:?}]"), name)),
    );
    for (path, name) in names {
        if name.is_empty() {
            continue;
        }
        check_length(out, &path, name, 1, ENOS_MAX_NAME, WHOSE);
        if let Some(c) = name.chars().find(|c| ENOS_NAME_FORBIDDEN.contains(c)) {
            out.push(FieldViolation::new(
                path,
                format!("must not contain any of < > ; @ * % & \\{WHOSE}, found {c:?}"),
            ));
        }
    }
    check_length(
        out,
        "product.description",
        &p.description,
        0,
        ENOS_MAX_DESCRIPTION,
        WHOSE,
    );
    let Some(iot) = &p.iot else { return };
    if iot.tags.len() > ENOS_MAX_TAGS {
        out.push(too_many("product.iot.tags", iot.tags.len(), ENOS_MAX_TAGS));
    }
    for (key, value) in &iot.tags {
        let path = format!("product.iot.tags[{key:?}]");
        let key_ok = (1..=ENOS_MAX_TAG_KEY).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'));
        if !key_ok {
            out.push(FieldViolation::new(
                &path,
                "the key must be 1-50 characters of [A-Za-z0-9_-/]",
            ));
        }
        if chars(value) > ENOS_MAX_TAG_VALUE || value.trim() != value {
            out.push(FieldViolation::new(
                &path,
                "the value must be at most 200 characters, without leading or trailing white space",
            ));
        }
    }
    for (path, days) in [
        ("product.iot.default_valid_days", iot.default_valid_days),
        ("product.iot.max_valid_days", iot.max_valid_days),
    ] {
        if let Some(days) = days.filter(|d| !ENOS_VALID_DAYS.contains(d)) {
            out.push(FieldViolation::new(path, format!("must be 1-3650 days, got {days}")));
        }
    }
}

fn check_cryptlex(p: &Product, out: &mut Vec<FieldViolation>) {
    const WHOSE: &str = " for Cryptlex (licensing profile)";
    check_length(
        out,
        "product.display_name",
        &p.display_name,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    check_length(out, "product.description", &p.description, 0, CRYPTLEX_MAX_TEXT, WHOSE);
    let Some(l) = &p.licensing else { return };
    check_length(out, "product.licensing.name", &l.name, 0, CRYPTLEX_MAX_TEXT, WHOSE);
    check_length(
        out,
        "product.licensing.license_template_id",
        &l.license_template_id,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    check_length(
        out,
        "product.licensing.trial_policy_id",
        &l.trial_policy_id,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    for (i, entry) in l.metadata.iter().enumerate() {
        let path = format!("product.licensing.metadata[{i}]");
        if !entry.key.is_empty() {
            check_length(out, &format!("{path}.key"), &entry.key, 1, CRYPTLEX_MAX_TEXT, WHOSE);
        }
        check_length(
            out,
            &format!("{path}.value"),
            &entry.value,
            0,
            CRYPTLEX_MAX_METADATA_VALUE,
            WHOSE,
        );
    }
}

fn check_revenium(p: &Product, out: &mut Vec<FieldViolation>) {
    const WHOSE: &str = " for Revenium (monetization profile)";
    check_length(
        out,
        "product.display_name",
        &p.display_name,
        0,
        REVENIUM_MAX_NAME,
        WHOSE,
    );
    let Some(m) = &p.monetization else { return };
    if p.version.is_empty() {
        out.push(FieldViolation::new(
            "product.version",
            format!("is required{WHOSE} (MAJOR.MINOR.PATCH, e.g. 1.0.0)"),
        ));
    }
    match &m.plan {
        None => out.push(FieldViolation::new(
            "product.monetization.plan",
            format!("is required{WHOSE}"),
        )),
        Some(plan) if plan.tiers.is_empty() => out.push(FieldViolation::new(
            "product.monetization.plan.tiers",
            format!("must hold at least one tier{WHOSE}"),
        )),
        Some(_) => {}
    }
    for (i, address) in m.notification_addresses_on_invoice.iter().enumerate() {
        if !looks_like_email(address) {
            out.push(FieldViolation::new(
                format!("product.monetization.notification_addresses_on_invoice[{i}]"),
                format!("must be an e-mail address, got {address:?}"),
            ));
        }
    }
    let Some(plan) = &m.plan else { return };
    let iso_4217 = plan.currency.len() == 3 && plan.currency.chars().all(|c| c.is_ascii_uppercase());
    if !plan.currency.is_empty() && !iso_4217 {
        out.push(FieldViolation::new(
            "product.monetization.plan.currency",
            format!("must be an ISO 4217 code such as USD, got {:?}", plan.currency),
        ));
    }
    for (i, aggregation) in plan.rating_aggregations.iter().enumerate() {
        if aggregation.aggregation_type == crate::pb::AggregationType::Last as i32 {
            out.push(FieldViolation::new(
                format!("product.monetization.plan.rating_aggregations[{i}].aggregation_type"),
                format!(
                    "LAST applies to elements only; rating aggregations take SUM, COUNT, MAX, MIN or AVERAGE{WHOSE}"
                ),
            ));
        }
    }
    for (path, count) in [
        ("product.monetization.plan.period_count", plan.period_count),
        ("product.monetization.plan.trial_period_count", plan.trial_period_count),
    ] {
        if let Some(n) = count.filter(|n| *n <= 0) {
            out.push(FieldViolation::new(path, format!("must be greater than 0, got {n}")));
        }
    }
}

fn is_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= MAX_LABEL_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `ll`, `lll`, optionally followed by `_XX` parts (en_US, zh_CN, zh_Hans_CN).
fn is_locale_id(id: &str) -> bool {
    let mut parts = id.split(['_', '-']);
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    language_ok && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn is_semantic_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=9).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
}

fn looks_like_email(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{IotDataFormat, IotProductType, IotProfile, LicensingMetadata, LicensingProfile};

    fn valid() -> Product {
        Product {
            display_name: "Thermostat".into(),
            version: "1.2.3".into(),
            ..Default::default()
        }
    }

    fn fields(p: &Product) -> Vec<String> {
        validate(p).into_iter().map(|v| v.field).collect()
    }

    fn iot() -> IotProfile {
        IotProfile {
            model_id: "thermo".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_product_is_valid() {
        assert!(validate(&valid()).is_empty());
    }

    #[test]
    fn required_fields_are_reported_with_their_paths() {
        let p = Product {
            iot: Some(IotProfile::default()),
            ..Default::default()
        };
        assert_eq!(
            fields(&p),
            [
                "product.display_name",
                "product.iot.model_id",
                "product.iot.product_type",
                "product.iot.data_format"
            ]
        );
    }

    #[test]
    fn undefined_enum_values_are_rejected() {
        let mut p = valid();
        p.iot = Some(IotProfile {
            product_type: 42,
            ..iot()
        });
        assert_eq!(fields(&p), ["product.iot.product_type"]);
    }

    #[test]
    fn enos_name_rules_apply_only_with_an_iot_profile() {
        let mut p = valid();
        p.display_name = "a;b".into();
        assert!(validate(&p).is_empty());
        p.iot = Some(iot());
        assert_eq!(fields(&p), ["product.display_name"]);
        p.display_name = "x".repeat(65);
        assert_eq!(fields(&p), ["product.display_name"]);
        p.display_name = "x".repeat(64);
        assert!(validate(&p).is_empty());
    }

    #[test]
    fn enos_tags_and_validity() {
        let mut p = valid();
        let mut profile = iot();
        profile.tags.insert("ok/key_1".into(), "v".into());
        profile.tags.insert("bad key".into(), "v".into());
        profile.tags.insert("k".into(), " padded".into());
        profile.default_valid_days = Some(0);
        profile.max_valid_days = Some(3650);
        p.iot = Some(profile);
        assert_eq!(
            fields(&p),
            [
                "product.iot.tags[\"bad key\"]",
                "product.iot.tags[\"k\"]",
                "product.iot.default_valid_days"
            ]
        );
    }

    #[test]
    fn cryptlex_metadata_limits() {
        let mut p = valid();
        p.licensing = Some(LicensingProfile {
            license_template_id: "lt".into(),
            metadata: vec![
                LicensingMetadata {
                    key: "k".into(),
                    value: "v".repeat(4096),
                    ..Default::default()
                },
                LicensingMetadata {
                    key: "k".repeat(257),
                    value: "v".repeat(4097),
                    ..Default::default()
                },
                LicensingMetadata::default(),
            ],
            ..Default::default()
        });
        assert_eq!(
            fields(&p),
            [
                "product.licensing.metadata[2].key",
                "product.licensing.metadata[1].key",
                "product.licensing.metadata[1].value"
            ]
        );
    }

    #[test]
    fn version_must_be_semantic() {
        for bad in ["1", "1.0", "1.0.0.0", "a.b.c", "1..0", "v1.0.0"] {
            let mut p = valid();
            p.version = bad.into();
            assert_eq!(fields(&p), ["product.version"], "{bad}");
        }
    }

    #[test]
    fn labels_follow_the_usual_rules() {
        let mut p = valid();
        p.labels.insert("env".into(), "prod".into());
        p.labels.insert("Env".into(), "x".into());
        p.labels.insert("team".into(), "t".repeat(64));
        assert_eq!(fields(&p), ["product.labels[\"Env\"]", "product.labels[\"team\"]"]);
    }

    mod properties {
        use super::*;
        use crate::pb::{MonetizationProfile, Plan, PriceTier};
        use proptest::collection::{btree_map, vec};
        use proptest::prelude::*;

        fn metadata_entries(pairs: Vec<(String, String)>) -> Vec<LicensingMetadata> {
            pairs
                .into_iter()
                .map(|(key, value)| LicensingMetadata {
                    key,
                    value,
                    ..Default::default()
                })
                .collect()
        }

        fn any_product() -> impl Strategy<Value = Product> {
            (
                (".{0,80}", ".{0,600}", ".{0,12}", btree_map(".{0,70}", ".{0,70}", 0..4)),
                proptest::option::of((".{0,10}", -2..5i32, -2..5i32, btree_map(".{0,60}", ".{0,210}", 0..4))),
                proptest::option::of((".{0,300}", vec((".{0,300}", ".{0,20}"), 0..3))),
                proptest::option::of((".{0,5}", vec(".{0,30}", 0..3))),
            )
                .prop_map(
                    |((display_name, description, version, labels), iot, licensing, monetization)| Product {
                        display_name,
                        description,
                        version,
                        labels,
                        iot: iot.map(|(model_id, product_type, data_format, tags)| IotProfile {
                            model_id,
                            product_type,
                            data_format,
                            tags,
                            ..Default::default()
                        }),
                        licensing: licensing.map(|(template, metadata)| LicensingProfile {
                            license_template_id: template,
                            metadata: metadata_entries(metadata),
                            ..Default::default()
                        }),
                        monetization: monetization.map(|(currency, addresses)| MonetizationProfile {
                            notification_addresses_on_invoice: addresses,
                            plan: Some(Plan {
                                currency,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
        }

        fn valid_product() -> impl Strategy<Value = Product> {
            (
                "[A-Za-z][A-Za-z0-9 _-]{0,40}[A-Za-z0-9]",
                "[a-zA-Z0-9 .,:()!?-]{0,100}",
                (0u32..100, 0u32..100, 0u32..100),
                btree_map("[a-z][a-z0-9_-]{0,20}", "[a-z0-9]{0,20}", 0..4),
                btree_map(
                    "[A-Za-z0-9_/-]{1,50}",
                    "[A-Za-z0-9]([A-Za-z0-9 ]{0,50}[A-Za-z0-9])?",
                    0..5,
                ),
                vec(("[a-z]{1,256}", ".{0,100}"), 0..3),
            )
                .prop_map(
                    |(display_name, description, (major, minor, patch), labels, tags, metadata)| Product {
                        display_name,
                        description,
                        version: format!("{major}.{minor}.{patch}"),
                        labels,
                        iot: Some(IotProfile {
                            model_id: "m".into(),
                            product_type: IotProductType::Gateway as i32,
                            data_format: IotDataFormat::Custom as i32,
                            tags,
                            ..Default::default()
                        }),
                        licensing: Some(LicensingProfile {
                            license_template_id: "lt".into(),
                            metadata: metadata_entries(metadata),
                            ..Default::default()
                        }),
                        monetization: Some(MonetizationProfile {
                            plan: Some(Plan {
                                currency: "EUR".into(),
                                tiers: vec![PriceTier::default()],
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
        }

        proptest! {
            #[test]
            fn every_violation_names_a_product_field(product in any_product()) {
                for violation in validate(&product) {
                    prop_assert!(violation.field.starts_with("product."), "{}", violation);
                    prop_assert!(!violation.description.is_empty());
                }
            }

            #[test]
            fn products_within_every_vendor_limit_are_accepted(product in valid_product()) {
                let violations = validate(&product);
                prop_assert!(violations.is_empty(), "{:?}", violations);
            }

            #[test]
            fn enos_forbidden_characters_are_always_caught(
                before in "[a-z]{0,10}",
                bad in proptest::sample::select(ENOS_NAME_FORBIDDEN.to_vec()),
                after in "[a-z]{0,10}",
            ) {
                let mut product = Product {
                    display_name: format!("{before}{bad}{after}"),
                    ..Default::default()
                };
                prop_assert!(validate(&product).is_empty(), "only EnOS forbids these");
                product.iot = Some(IotProfile {
                    model_id: "m".into(),
                    product_type: IotProductType::Device as i32,
                    data_format: IotDataFormat::Json as i32,
                    ..Default::default()
                });
                let fields: Vec<String> = validate(&product).into_iter().map(|v| v.field).collect();
                prop_assert_eq!(fields, vec!["product.display_name".to_string()]);
            }
        }
    }

    #[test]
    fn locale_keys() {
        for ok in ["en", "en_US", "zh_CN", "zh_Hans_CN", "es-ES"] {
            assert!(is_locale_id(ok), "{ok}");
        }
        for bad in ["", "e", "english", "en_", "en US"] {
            assert!(!is_locale_id(bad), "{bad}");
        }
    }
}
