//! JSON plumbing shared by the adapters: passthrough fields in
//! `google.protobuf.Struct`, numbers, timestamps, query strings.

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// The deepest nesting of objects and arrays kept in a passthrough struct: the
/// same bound a product sent to CreateProduct meets, so any stored product can
/// be imported back.
pub const MAX_PASSTHROUGH_DEPTH: usize = crate::domain::validation::MAX_STRUCT_DEPTH;

/// Integers up to this magnitude survive a trip through an IEEE double exactly.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

/// Keeps unmodelled vendor fields in a Struct. Fails (naming the field) on an
/// integer a double cannot hold exactly, rather than changing it silently.
pub fn to_struct(fields: Map<String, Value>, at: &str) -> Result<Option<prost_types::Struct>, String> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut out = prost_types::Struct::default();
    for (key, value) in fields {
        let path = format!("{at}.{key}");
        let converted = to_proto_value(value, &path, 1)?;
        out.fields.insert(key, converted);
    }
    Ok(Some(out))
}

fn to_proto_value(value: Value, path: &str, depth: usize) -> Result<prost_types::Value, String> {
    if depth > MAX_PASSTHROUGH_DEPTH && matches!(value, Value::Array(_) | Value::Object(_)) {
        return Err(format!("{path}: nested deeper than {MAX_PASSTHROUGH_DEPTH} levels"));
    }
    let kind =
        match value {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(b),
            Value::String(s) => Kind::StringValue(s),
            Value::Number(n) => Kind::NumberValue(exact_f64(&n).ok_or_else(|| {
                format!("{path}: the number {n} cannot be kept exactly (integers are kept up to 2^53)")
            })?),
            Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| to_proto_value(v, &format!("{path}[{i}]"), depth + 1))
                    .collect::<Result<_, _>>()?,
            }),
            Value::Object(map) => Kind::StructValue(prost_types::Struct {
                fields: map
                    .into_iter()
                    .map(|(k, v)| {
                        let p = format!("{path}.{k}");
                        to_proto_value(v, &p, depth + 1).map(|v| (k, v))
                    })
                    .collect::<Result<_, _>>()?,
            }),
        };
    Ok(prost_types::Value { kind: Some(kind) })
}

fn exact_f64(n: &Number) -> Option<f64> {
    if let Some(i) = n.as_i64() {
        let f = i as f64;
        return (f.abs() <= MAX_EXACT_INTEGER && f as i64 == i).then_some(f);
    }
    if let Some(u) = n.as_u64() {
        let f = u as f64;
        return (f <= MAX_EXACT_INTEGER && f as u64 == u).then_some(f);
    }
    n.as_f64()
}

/// The passthrough fields back as JSON.
pub fn from_struct(fields: Option<&prost_types::Struct>) -> Map<String, Value> {
    fields
        .map(|s| s.fields.iter().map(|(k, v)| (k.clone(), from_proto_value(v))).collect())
        .unwrap_or_default()
}

fn from_proto_value(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(from_proto_value).collect()),
        Some(Kind::StructValue(s)) => {
            Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), from_proto_value(v))).collect())
        }
    }
}

/// A double as JSON: whole numbers as integers (as vendors write them), others
/// as decimals, -0 as `-0.0` (kept, not turned into 0); non-finite values
/// (which JSON cannot carry, and validation refuses) as null.
pub fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER && !(n == 0.0 && n.is_sign_negative()) {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)
    }
}

/// Epoch milliseconds (EnOS) as a Timestamp.
pub fn from_epoch_millis(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A Timestamp as epoch milliseconds (EnOS).
pub fn to_epoch_millis(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos / 1_000_000))
}

/// An RFC 3339 time (Cryptlex `createdAt`) as a Timestamp.
pub fn from_rfc3339(text: &str, path: &str) -> Result<prost_types::Timestamp, String> {
    text.parse()
        .map_err(|_| format!("{path}: {text:?} is not an RFC 3339 date-time"))
}

/// A Timestamp in RFC 3339, UTC (`2019-08-24T14:15:22Z`).
pub fn to_rfc3339(t: &prost_types::Timestamp) -> String {
    t.to_string()
}

/// Percent-encodes a query value (RFC 3986: everything but unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passthrough_round_trips() {
        let original = json!({"a": 1, "b": [true, null, "x", 2.5, {"c": -7}], "d": {}});
        let Value::Object(map) = original.clone() else { panic!() };
        let stored = to_struct(map, "vendor_fields").unwrap();
        assert_eq!(Value::Object(from_struct(stored.as_ref())), original);
    }

    #[test]
    fn huge_integers_are_refused_not_rounded() {
        let Value::Object(map) = json!({"id": 9_007_199_254_740_993u64}) else {
            panic!()
        };
        let err = to_struct(map, "iot.vendor_fields").unwrap_err();
        assert!(err.contains("iot.vendor_fields.id"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_so_stored_products_stay_readable() {
        let mut deep = json!(1);
        for _ in 0..MAX_PASSTHROUGH_DEPTH {
            deep = json!({ "n": deep });
        }
        // `deep` holds MAX_PASSTHROUGH_DEPTH objects: as a field's value it fits.
        let Value::Object(too_deep) = json!({ "x": { "y": deep.clone() } }) else {
            panic!()
        };
        let err = to_struct(too_deep, "vendor_fields").unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
        let Value::Object(fits) = json!({ "x": deep }) else {
            panic!()
        };
        let stored = to_struct(fits, "vendor_fields").unwrap();
        // The deepest accepted struct still decodes as part of a product.
        let product = crate::pb::Product {
            iot: Some(crate::pb::IotProfile {
                vendor_fields: stored,
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&product);
        assert!(<crate::pb::Product as prost::Message>::decode(bytes.as_slice()).is_ok());
    }

    #[test]
    fn times() {
        let t = from_epoch_millis(1_592_202_000_123);
        assert_eq!(to_epoch_millis(&t), 1_592_202_000_123);
        assert_eq!(to_epoch_millis(&from_epoch_millis(-1)), -1);
        let t = from_rfc3339("2019-08-24T14:15:22Z", "x").unwrap();
        assert_eq!(to_rfc3339(&t), "2019-08-24T14:15:22Z");
        let t = from_rfc3339("2019-08-24T14:15:22.123Z", "x").unwrap();
        assert_eq!(to_rfc3339(&t), "2019-08-24T14:15:22.123Z");
        assert!(from_rfc3339("yesterday", "x").is_err());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(encode_query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode_query_value("Az09-._~"), "Az09-._~");
    }
}
