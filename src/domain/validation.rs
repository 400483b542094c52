//! The domain's product rules, run on every product before it is stored.
//!
//! Generic rules read from the schema (REQUIRED fields are set, enum values are
//! defined, no string or list is absurdly large) and the rules of the common
//! fields (names, labels, locales, versions). Each vendor's documented limits
//! live in that vendor's folder (`vendors/<name>/limits.rs`); `vendors::validate`
//! runs both, and is what the catalog calls. The small checks here are public
//! so the vendors' limits are written in the same words.

use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};

use super::FieldViolation;
use super::schema::{self, to_dynamic};
use super::wire::{self, WireValue};
use crate::pb::Product;

mod encoded;
#[cfg(test)]
mod tests;

/// The longest string any field may hold, in bytes (specific fields allow less).
pub const MAX_STRING_BYTES: usize = 16 * 1024;
/// The most entries any repeated or map field may hold (specific fields allow less).
pub const MAX_ENTRIES: usize = 1000;

/// The deepest nesting of objects and arrays in a `vendor_fields` struct,
/// however the product arrives (CreateProduct or an import from a vendor's
/// JSON): each level costs protobuf three (Value, Struct, map entry), and
/// prost refuses to decode messages nested past 100, so a stored product can
/// always be read back.
pub const MAX_STRUCT_DEPTH: usize = 20;
const MAX_DISPLAY_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 63;
const MAX_LOCALES: usize = 64;

/// Every reason under the domain's rules that `product` may not be stored,
/// with paths rooted at `product`.
pub fn validate(product: &Product) -> Vec<FieldViolation> {
    let descriptor = schema::product_descriptor();
    let mut out = schema_violations(&descriptor, Ok(&product.encode_to_vec()), "product", || {
        to_dynamic(product)
    });
    check_common(product, &mut out);
    out
}

/// The generic rules over one profile of the product (`iot`, `licensing`,
/// `monetization`), with paths rooted at `product`; empty when the product
/// lacks it. Each vendor's own rules add to these (see `vendors`).
pub fn profile_schema_violations(product: &Product, profile_field: &str) -> Vec<FieldViolation> {
    let Some(field) = schema::product_descriptor().get_field_by_name(profile_field) else {
        return Vec::new();
    };
    let Kind::Message(profile) = field.kind() else {
        return Vec::new();
    };
    let bytes = product.encode_to_vec();
    // A profile is a singular message: the product's encoding holds it at
    // most once.
    let sent = wire::fields(&bytes).find_map(|f| match f {
        Ok(f) if f.number == field.number() => Some(match f.value {
            WireValue::LengthDelimited(body) => Ok(body),
            _ => Err(wire::Malformed),
        }),
        Ok(_) => None,
        Err(malformed) => Some(Err(malformed)),
    });
    let Some(body) = sent else {
        return Vec::new();
    };
    schema_violations(
        &profile,
        body,
        &format!("product.{profile_field}"),
        || match to_dynamic(product).get_field(&field).as_ref() {
            Value::Message(sub) => sub.clone(),
            _ => DynamicMessage::new(profile.clone()),
        },
    )
}

/// The generic rules over the encoded `message`, at `path`: walked on the
/// wire ([`encoded`]), or over the reflective form `reflective` gives should
/// the bytes not be prost's own encoding (they always are; tests fail if not).
fn schema_violations(
    message: &MessageDescriptor,
    bytes: Result<&[u8], wire::Malformed>,
    path: &str,
    reflective: impl FnOnce() -> DynamicMessage,
) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if let Ok(bytes) = bytes
        && encoded::check_message(message, bytes, &mut path.to_owned(), &mut out).is_ok()
    {
        return out;
    }
    debug_assert!(false, "prost's own encoding of {} does not walk", message.full_name());
    out.clear();
    check_schema_rules(&reflective(), &mut path.to_owned(), &mut out);
    out
}

/// The generic rules, over every field of the reflective `message` (the
/// reference [`encoded`] is held to, and its fallback). `path` names `message`
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

// The words of the generic rules, shared by both walks so they cannot drift.

fn too_long(bytes: usize) -> String {
    format!("is {bytes} bytes long; at most {MAX_STRING_BYTES} are allowed")
}

fn not_a_value_of(number: i32, enumeration: &prost_reflect::EnumDescriptor) -> String {
    format!("{number} is not a value of {}", enumeration.full_name())
}

const NOT_FINITE: &str = "must be a finite number";
const NOT_FINITE_IN_JSON: &str = "must be a finite number (JSON has no NaN or infinity)";

/// Whether a Struct at `depth` is nested past [`MAX_STRUCT_DEPTH`]; if so,
/// says so at `path`.
fn struct_too_deep(depth: usize, path: &str, out: &mut Vec<FieldViolation>) -> bool {
    let too_deep = depth > MAX_STRUCT_DEPTH;
    if too_deep {
        out.push(FieldViolation::new(
            path,
            format!("is nested deeper than {MAX_STRUCT_DEPTH} levels"),
        ));
    }
    too_deep
}

/// What is wrong with a single (non-message) value, if anything.
fn scalar_problem(value: &Value, kind: &Kind) -> Option<String> {
    match (value, kind) {
        (Value::String(s), _) if s.len() > MAX_STRING_BYTES => Some(too_long(s.len())),
        (Value::EnumNumber(n), Kind::Enum(e)) if e.get_value(*n).is_none() => Some(not_a_value_of(*n, e)),
        (Value::F64(x), _) if !x.is_finite() => Some(NOT_FINITE.into()),
        _ => None,
    }
}

fn check_value(value: &Value, kind: &Kind, path: &mut String, out: &mut Vec<FieldViolation>) {
    match value {
        Value::Message(m) if schema::is_struct(&m.descriptor()) => check_struct(m, path, 1, out),
        Value::Message(m) if !schema::is_opaque_message(&m.descriptor()) => check_schema_rules(m, path, out),
        scalar => {
            if let Some(problem) = scalar_problem(scalar, kind) {
                out.push(FieldViolation::new(path.as_str(), problem));
            }
        }
    }
}

/// A `google.protobuf.Struct` (a vendor's unmodelled fields) at nesting
/// `depth`: every number finite (JSON, which the vendors speak, has no NaN or
/// infinity; -0 is kept as `-0.0`), and no deeper than [`MAX_STRUCT_DEPTH`].
fn check_struct(message: &DynamicMessage, path: &mut String, depth: usize, out: &mut Vec<FieldViolation>) {
    let Some(fields) = message.descriptor().get_field_by_name("fields") else {
        return;
    };
    if let Value::Map(entries) = message.get_field(&fields).as_ref() {
        let mut keys: Vec<_> = entries.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in keys {
            let parent = path.len();
            match key {
                prost_reflect::MapKey::String(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                other => path.push_str(&format!("[{other:?}]")),
            }
            if let Value::Message(value) = value {
                check_struct_value(value, path, depth, out);
            }
            path.truncate(parent);
        }
    }
}

fn check_struct_value(value: &DynamicMessage, path: &mut String, depth: usize, out: &mut Vec<FieldViolation>) {
    let field = |name: &str| {
        value
            .descriptor()
            .get_field_by_name(name)
            .filter(|f| value.has_field(f))
            .map(|f| value.get_field(&f).into_owned())
    };
    let nested = |out: &mut Vec<FieldViolation>, path: &str| !struct_too_deep(depth, path, out);
    if let Some(Value::F64(number)) = field("number_value")
        && !number.is_finite()
    {
        out.push(FieldViolation::new(path.as_str(), NOT_FINITE_IN_JSON));
    }
    if let Some(Value::Message(inner)) = field("struct_value")
        && nested(out, path)
    {
        check_struct(&inner, path, depth + 1, out);
    }
    if let Some(Value::Message(list)) = field("list_value")
        && nested(out, path)
        && let Some(values) = list.descriptor().get_field_by_name("values")
        && let Value::List(items) = list.get_field(&values).as_ref()
    {
        for (i, item) in items.iter().enumerate() {
            if let Value::Message(item) = item {
                let parent = path.len();
                path.push_str(&format!("[{i}]"));
                check_struct_value(item, path, depth + 1, out);
                path.truncate(parent);
            }
        }
    }
}

pub fn too_many(path: &str, found: usize, max: usize) -> FieldViolation {
    FieldViolation::new(path, format!("has {found} entries; at most {max} are allowed"))
}

pub fn chars(s: &str) -> usize {
    s.chars().count()
}

pub fn check_length(out: &mut Vec<FieldViolation>, path: &str, value: &str, min: usize, max: usize, whose: &str) {
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
    // Paths are formatted only for an entry with something wrong: most
    // products have none, and this runs on every write.
    for (locale, name) in &p.localized_display_names {
        let locale_ok = is_locale_id(locale);
        if locale_ok && (1..=MAX_DISPLAY_NAME).contains(&chars(name)) {
            continue;
        }
        let path = format!("product.localized_display_names[{locale:?}]");
        if !locale_ok {
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
        let key_ok = is_label_key(key);
        let value_ok = chars(value) <= MAX_LABEL_LEN && !value.chars().any(char::is_control);
        if key_ok && value_ok {
            continue;
        }
        let path = format!("product.labels[{key:?}]");
        if !key_ok {
            out.push(FieldViolation::new(
                &path,
                "the key must be 1-63 characters of [a-z0-9_-] starting with a lower-case letter",
            ));
        }
        if !value_ok {
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

pub fn looks_like_email(address: &str) -> bool {
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
