//! EnOS's documented limits (connection-service limitations page and the
//! create_product docs), checked before a product is stored or sent.

use crate::domain::FieldViolation;
use crate::domain::validation::{chars, check_length, too_many};
use crate::pb::Product;

const ENOS_MAX_NAME: usize = 64;
const ENOS_NAME_FORBIDDEN: &[char] = &['<', '>', ';', '@', '*', '%', '&', '\\'];
const ENOS_MAX_DESCRIPTION: usize = 512;
const ENOS_MAX_TAGS: usize = 100;
const ENOS_MAX_TAG_KEY: usize = 50;
const ENOS_MAX_TAG_VALUE: usize = 200;
const ENOS_VALID_DAYS: std::ops::RangeInclusive<i32> = 1..=3650;

/// Everything in `p` this vendor would refuse under its documented limits.
pub(super) fn violations(p: &Product) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check(p, &mut out);
    out
}

fn check(p: &Product, out: &mut Vec<FieldViolation>) {
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
