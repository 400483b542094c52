//! Test products with every field of the schema filled, at every depth, from
//! a list of choices: the input of the property tests that hold a walk over a
//! product's encoding to what it stands in for (validation's wire walk to
//! the reflective one, `wire::check_decodes` to prost's decode).

use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value};

use super::schema::{self, from_dynamic};
use super::validation::{MAX_STRING_BYTES, MAX_STRUCT_DEPTH};
use crate::pb::Product;

/// A product with every field of the schema filled from `choices`, at every
/// depth: strings short or too long, enums defined or not, doubles finite or
/// not, messages set or left out (so REQUIRED fields go missing), lists and
/// maps of up to two items with keys short or too long, and
/// `google.protobuf.Struct`s nested up to past the limit.
pub fn filled(choices: &[u8]) -> Product {
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
