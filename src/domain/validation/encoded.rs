//! The generic rules (see [`super::check_schema_rules`]) on a message's
//! encoding, walked with its descriptor: what `validate` runs on every write.
//!
//! The input is prost's own encoding of a decoded message, so a field is on
//! the wire exactly when the reflective form would say it is set: implicit-
//! presence scalars at their default, empty lists and maps, and unset
//! messages and `optional` fields are never written, and a map entry leaves
//! out a key or value at its default. What the rules cannot read (a singular
//! field twice; a string, enum, double or message field with another wire
//! type) is [`Malformed`], and the caller falls back to the reflective walk.
//! The violations are the reflective walk's; within one map they come in the
//! order the entries were sent (key order, as every map here is a
//! `BTreeMap`), where the reflective walk's order is its hash map's.

use std::fmt::Display;

use prost_reflect::{Kind, MessageDescriptor};

use super::{
    KeyShown, MAX_ENTRIES, MAX_STRING_BYTES, NOT_FINITE, NOT_FINITE_IN_JSON, not_a_value_of, struct_too_deep, too_long,
    too_many,
};
use crate::domain::FieldViolation;
use crate::domain::schema::{self, FieldInfo};
use crate::domain::wire::{self, Malformed, ScalarEncoding, WireField, WireValue};

// The field numbers of the well-known types the rules look inside: fixed by
// `google/protobuf/struct.proto`, which can never renumber them.
const STRUCT_FIELDS: u32 = 1;
const MAP_KEY: u32 = 1;
const MAP_VALUE: u32 = 2;
const VALUE_NUMBER: u32 = 2;
const VALUE_STRUCT: u32 = 5;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;
/// `google.protobuf.Value`'s `kind` oneof spans field numbers 1 to 6.
const VALUE_KINDS: std::ops::RangeInclusive<u32> = 1..=6;

/// The generic rules over the encoded `message`, appended to `out` with
/// paths under `path`: fields in declaration order, items in order, map
/// entries in the order sent.
pub(super) fn check_message(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
    path: &mut String,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    let infos = schema::fields(descriptor);
    let mut sent: Vec<(usize, WireValue)> = Vec::new();
    // prost writes fields in declaration order (oneofs last), so the next
    // field sent is looked for from where the last one was found.
    let mut from = 0;
    for field in wire::fields(bytes) {
        let field = field?;
        let found = (from..infos.len())
            .chain(0..from)
            .find(|&i| infos[i].field.number() == field.number);
        if let Some(index) = found {
            sent.push((index, field.value));
            from = index;
        }
    }
    // Stable: repeated items keep their order.
    sent.sort_by_key(|(index, _)| *index);
    let mut next = 0;
    for (index, info) in infos.iter().enumerate() {
        let first = next;
        while sent.get(next).is_some_and(|(i, _)| *i == index) {
            next += 1;
        }
        let occurrences = &sent[first..next];
        if occurrences.is_empty() {
            if info.behaviors.required {
                out.push(FieldViolation::new(
                    format!("{path}.{}", info.field.name()),
                    "is required",
                ));
            }
            continue;
        }
        let parent = path.len();
        path.push('.');
        path.push_str(info.field.name());
        let checked = if info.map {
            check_map(info, occurrences, path, out)
        } else if info.list {
            check_list(&info.kind, occurrences, path, out)
        } else if let [(_, value)] = occurrences {
            check_value(&info.kind, *value, path, out)
        } else {
            Err(Malformed)
        };
        path.truncate(parent);
        checked?;
    }
    Ok(())
}

/// One field's occurrences on the wire, each with the field's index.
type Occurrences<'a, 'b> = &'a [(usize, WireValue<'b>)];

fn check_list(
    kind: &Kind,
    occurrences: Occurrences,
    path: &mut String,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    let mut items = Vec::with_capacity(occurrences.len());
    for (_, occurrence) in occurrences {
        match (occurrence, ScalarEncoding::of(kind)) {
            (WireValue::LengthDelimited(packed), Some(encoding)) => wire::unpack(packed, encoding, &mut items)?,
            (item, _) => items.push(*item),
        }
    }
    if items.len() > MAX_ENTRIES {
        out.push(too_many(path, items.len(), MAX_ENTRIES));
    }
    for (i, item) in items.into_iter().enumerate() {
        check_item(kind, item, path, &i, out)?;
    }
    Ok(())
}

fn check_map(
    info: &FieldInfo,
    entries: Occurrences,
    path: &mut String,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    let Kind::Message(entry) = &info.kind else {
        return Err(Malformed);
    };
    // Every map of this API is keyed by strings; another key type would be
    // left to the reflective walk, which knows how to show it in a path.
    if entry.map_entry_key_field().kind() != Kind::String {
        return Err(Malformed);
    }
    let value_kind = entry.map_entry_value_field().kind();
    if entries.len() > MAX_ENTRIES {
        out.push(too_many(path, entries.len(), MAX_ENTRIES));
    }
    for (_, entry) in entries {
        let WireValue::LengthDelimited(body) = entry else {
            return Err(Malformed);
        };
        let (key, value) = map_entry(body)?;
        if key.len() > MAX_STRING_BYTES {
            out.push(FieldViolation::new(path.as_str(), "has a key that is too long"));
        }
        match value {
            Some(value) => check_item(&value_kind, value, path, &KeyShown::Text(key), out)?,
            // A value left out is its default: a message with no fields set
            // (whose REQUIRED fields are missing), or a scalar at its default,
            // which no rule refuses.
            None if matches!(value_kind, Kind::Message(_)) => check_item(
                &value_kind,
                WireValue::LengthDelimited(&[]),
                path,
                &KeyShown::Text(key),
                out,
            )?,
            None => {}
        }
    }
    Ok(())
}

/// A map entry's key (a string) and value as sent; the last one wins, as in
/// any message.
fn map_entry(body: &[u8]) -> Result<(&str, Option<WireValue<'_>>), Malformed> {
    let mut key: &[u8] = &[];
    let mut value = None;
    for field in wire::fields(body) {
        let field = field?;
        match (field.number, field.value) {
            (MAP_KEY, WireValue::LengthDelimited(k)) => key = k,
            (MAP_KEY, _) => return Err(Malformed),
            (MAP_VALUE, v) => value = Some(v),
            _ => {}
        }
    }
    let key = std::str::from_utf8(key).map_err(|_| Malformed)?;
    Ok((key, value))
}

/// One list item or map value, at `path[index]`.
fn check_item(
    kind: &Kind,
    item: WireValue,
    path: &mut String,
    index: &dyn Display,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    // Only messages (to descend) and violations need the item's own path.
    let is_message = matches!(kind, Kind::Message(_));
    if !is_message && scalar_problem(kind, item)?.is_none() {
        return Ok(());
    }
    let parent = path.len();
    use std::fmt::Write as _;
    let _ = write!(path, "[{index}]");
    let checked = check_value(kind, item, path, out);
    path.truncate(parent);
    checked
}

fn check_value(
    kind: &Kind,
    value: WireValue,
    path: &mut String,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    match kind {
        Kind::Message(message) => {
            let WireValue::LengthDelimited(body) = value else {
                return Err(Malformed);
            };
            if schema::is_struct(message) {
                check_struct(body, path, 1, out)
            } else if schema::is_opaque_message(message) {
                Ok(())
            } else {
                check_message(message, body, path, out)
            }
        }
        scalar => {
            if let Some(problem) = scalar_problem(scalar, value)? {
                out.push(FieldViolation::new(path.as_str(), problem));
            }
            Ok(())
        }
    }
}

/// What is wrong with a single (non-message) value, if anything (in the
/// words [`super::scalar_problem`] uses).
fn scalar_problem(kind: &Kind, value: WireValue) -> Result<Option<String>, Malformed> {
    Ok(match (kind, value) {
        (Kind::String, WireValue::LengthDelimited(s)) => (s.len() > MAX_STRING_BYTES).then(|| too_long(s.len())),
        (Kind::Enum(e), WireValue::Varint(n)) => {
            // Enum values are int32 on the wire, sign-extended to 64 bits.
            let n = n as i32;
            e.get_value(n).is_none().then(|| not_a_value_of(n, e))
        }
        (Kind::Double, WireValue::Fixed64(bits)) => (!f64::from_bits(bits).is_finite()).then(|| NOT_FINITE.to_owned()),
        (Kind::String | Kind::Enum(_) | Kind::Double, _) => return Err(Malformed),
        _ => None,
    })
}

/// An encoded `google.protobuf.Struct` at nesting `depth`: the rules of
/// [`super::check_struct`], keys visited in sorted order like there.
fn check_struct(body: &[u8], path: &mut String, depth: usize, out: &mut Vec<FieldViolation>) -> Result<(), Malformed> {
    let mut entries = Vec::new();
    for field in wire::fields(body) {
        match field? {
            WireField {
                number: STRUCT_FIELDS,
                value: WireValue::LengthDelimited(entry),
                ..
            } => entries.push(map_entry(entry)?),
            WireField {
                number: STRUCT_FIELDS, ..
            } => return Err(Malformed),
            _ => {}
        }
    }
    entries.sort_by_key(|(key, _)| *key);
    for (key, value) in entries {
        // A value left out is an empty `Value`, which no rule refuses.
        let Some(value) = value else { continue };
        let WireValue::LengthDelimited(value) = value else {
            return Err(Malformed);
        };
        let parent = path.len();
        path.push('.');
        path.push_str(key);
        let checked = check_struct_value(value, path, depth, out);
        path.truncate(parent);
        checked?;
    }
    Ok(())
}

/// An encoded `google.protobuf.Value` at nesting `depth`.
fn check_struct_value(
    body: &[u8],
    path: &mut String,
    depth: usize,
    out: &mut Vec<FieldViolation>,
) -> Result<(), Malformed> {
    // `kind` is a oneof: the last member sent is the one set.
    let mut kind = None;
    for field in wire::fields(body) {
        let field = field?;
        if VALUE_KINDS.contains(&field.number) {
            kind = Some(field);
        }
    }
    let Some(kind) = kind else { return Ok(()) };
    let too_deep = |out: &mut Vec<FieldViolation>, path: &str| struct_too_deep(depth, path, out);
    match (kind.number, kind.value) {
        (VALUE_NUMBER, WireValue::Fixed64(bits)) => {
            if !f64::from_bits(bits).is_finite() {
                out.push(FieldViolation::new(path.as_str(), NOT_FINITE_IN_JSON));
            }
            Ok(())
        }
        (VALUE_STRUCT, WireValue::LengthDelimited(inner)) => match too_deep(out, path) {
            true => Ok(()),
            false => check_struct(inner, path, depth + 1, out),
        },
        (VALUE_LIST, WireValue::LengthDelimited(list)) => {
            if too_deep(out, path) {
                return Ok(());
            }
            let mut i = 0;
            for field in wire::fields(list) {
                let field = field?;
                if field.number != LIST_VALUES {
                    continue;
                }
                let WireValue::LengthDelimited(item) = field.value else {
                    return Err(Malformed);
                };
                let parent = path.len();
                path.push_str(&format!("[{i}]"));
                let checked = check_struct_value(item, path, depth + 1, out);
                path.truncate(parent);
                checked?;
                i += 1;
            }
            Ok(())
        }
        (VALUE_NUMBER | VALUE_STRUCT | VALUE_LIST, _) => Err(Malformed),
        _ => Ok(()),
    }
}
