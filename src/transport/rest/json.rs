//! The proto3 JSON mapping both ways: an HTTP request (path variables, query
//! string, body) assembled into the RPC's request message, a response message
//! as JSON, and a gRPC status as the AIP-193 error body.

use std::collections::HashMap;

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value, json};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::routes::{BodyRule, Route};
use super::template::Binding;

/// The request message, protobuf-encoded, or INVALID_ARGUMENT naming the
/// parameter or JSON path at fault.
pub fn request_message(
    route: &Route,
    bindings: &[Binding],
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, Status> {
    let input = route.input();
    let mut root = Map::new();
    let body_present = body.iter().any(|b| !b.is_ascii_whitespace());
    match &route.body {
        BodyRule::None if body_present => {
            return Err(bad_request(
                "",
                format!(
                    "{} {} takes no body; give its fields as query parameters",
                    route.method,
                    route.template.as_str()
                ),
            ));
        }
        BodyRule::None => {}
        BodyRule::Whole if body_present => match parse_body(body)? {
            Value::Object(fields) => root = fields,
            _ => return Err(bad_request("", "the body must be a JSON object".to_string())),
        },
        BodyRule::Whole => {}
        BodyRule::Field(field) if body_present => {
            let field = input
                .get_field_by_name(field)
                .ok_or_else(|| Status::internal("the body field vanished"))?;
            root.insert(field.json_name().to_string(), parse_body(body)?);
        }
        BodyRule::Field(_) => {}
    }
    // Update masks are set after the JSON mapping: its FieldMask form cannot
    // name a map key such as `labels.my_key` (it would read `_` as a case
    // change), and a mask naming one is what the API documents.
    let mut masks: Vec<(FieldDescriptor, Vec<String>)> = Vec::new();
    if let Some(query) = query {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let first = key.split('.').next().unwrap_or_default();
            if bindings
                .iter()
                .any(|b| b.field_path.first().is_some_and(|f| f == first))
            {
                return Err(bad_request(&key, format!("query parameter {key:?}: the path gives it")));
            }
            if route.body != BodyRule::Whole
                && let Some(field) = top_level_mask(&input, &key)
            {
                if masks.iter().any(|(f, _)| *f == field) {
                    return Err(bad_request(&key, format!("query parameter {key:?}: given twice")));
                }
                masks.push((field, mask_paths(&mask_target(route, &input), &value)));
                continue;
            }
            put_query_parameter(route, &input, &mut root, &key, &value)?;
        }
    }
    for binding in bindings {
        put_binding(&input, &mut root, binding)?;
    }
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(Value::Object(root), &mut track);
    let mut message = DynamicMessage::deserialize_with_options(input, deserializer, &DeserializeOptions::new())
        .map_err(|error| {
            let path = track.path().to_string();
            let mut path = if path == "?" || path == "." {
                String::new()
            } else {
                path
            };
            // The path stops at the object holding an unknown field: name it.
            if let Some(unknown) = error
                .to_string()
                .strip_prefix("unrecognized field name '")
                .and_then(|rest| rest.split('\'').next())
            {
                path = if path.is_empty() {
                    unknown.to_string()
                } else {
                    format!("{path}.{unknown}")
                };
            }
            bad_request(
                &path,
                format!(
                    "{}{error}",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path}: ")
                    }
                ),
            )
        })?;
    for (field, paths) in masks {
        let Kind::Message(mask_type) = field.kind() else {
            continue;
        };
        let mask = prost_types::FieldMask { paths }.encode_to_vec();
        let mask = DynamicMessage::decode(mask_type, mask.as_slice())
            .map_err(|e| Status::internal(format!("a field mask did not encode: {e}")))?;
        message.set_field(&field, prost_reflect::Value::Message(mask));
    }
    Ok(message.encode_to_vec())
}

/// The request's own `google.protobuf.FieldMask` field `key` names, if any.
fn top_level_mask(input: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    let field = input
        .get_field_by_name(key)
        .or_else(|| input.get_field_by_json_name(key))?;
    match field.kind() {
        Kind::Message(message) if message.full_name() == "google.protobuf.FieldMask" && !field.is_list() => Some(field),
        _ => None,
    }
}

/// The message a request's mask is over: the body's resource, else Product.
fn mask_target(route: &Route, input: &MessageDescriptor) -> MessageDescriptor {
    if let BodyRule::Field(body) = &route.body
        && let Some(field) = input.get_field_by_name(body)
        && let Kind::Message(message) = field.kind()
    {
        return message;
    }
    crate::domain::schema::product_descriptor()
}

/// `displayName,labels.my_key` → `display_name`, `labels.my_key`: each
/// segment that names a field of `target` (by JSON or proto name) in its
/// proto form, map keys and anything unknown as written (the handler names
/// a path that is wrong).
fn mask_paths(target: &MessageDescriptor, text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| {
            let mut message = Some(target.clone());
            let mut map_value: Option<Option<MessageDescriptor>> = None;
            let mut out = Vec::new();
            for segment in path.split('.') {
                if let Some(value) = map_value.take() {
                    out.push(segment.to_string());
                    message = value;
                    continue;
                }
                let field = message.as_ref().and_then(|m| {
                    m.get_field_by_json_name(segment)
                        .or_else(|| m.get_field_by_name(segment))
                });
                let Some(field) = field else {
                    out.push(segment.to_string());
                    message = None;
                    continue;
                };
                out.push(field.name().to_string());
                message = None;
                match field.kind() {
                    Kind::Message(entry) if field.is_map() => {
                        map_value = Some(match entry.map_entry_value_field().kind() {
                            Kind::Message(value) => Some(value),
                            _ => None,
                        });
                    }
                    Kind::Message(inner) => message = Some(inner),
                    _ => {}
                }
            }
            out.join(".")
        })
        .collect()
}

fn parse_body(body: &[u8]) -> Result<Value, Status> {
    serde_json::from_slice(body).map_err(|error| bad_request("", format!("the body is not JSON: {error}")))
}

/// A query parameter `a.b=v`: the field path by proto or JSON names, its
/// value as the JSON mapping takes it.
fn put_query_parameter(
    route: &Route,
    input: &MessageDescriptor,
    root: &mut Map<String, Value>,
    key: &str,
    value: &str,
) -> Result<(), Status> {
    let refuse = |why: String| Err(bad_request(key, format!("query parameter {key:?}: {why}")));
    if route.body == BodyRule::Whole {
        return refuse(format!(
            "{} {} takes its fields in the body, not the query",
            route.method,
            route.template.as_str()
        ));
    }
    let mut message = input.clone();
    let mut names = Vec::new();
    let steps: Vec<&str> = key.split('.').collect();
    let mut leaf = None;
    for (at, step) in steps.iter().enumerate() {
        let Some(field) = message
            .get_field_by_name(step)
            .or_else(|| message.get_field_by_json_name(step))
        else {
            return refuse(format!("{} has no field {step:?}", message.full_name()));
        };
        names.push(field.json_name().to_string());
        if at + 1 == steps.len() {
            leaf = Some(field);
            break;
        }
        match field.kind() {
            Kind::Message(inner) if !field.is_list() && !field.is_map() && !is_well_known(&inner) => message = inner,
            _ => return refuse(format!("{step:?} is not a message to name a field of")),
        }
    }
    let Some(field) = leaf else {
        return refuse("an empty name".into());
    };
    if let BodyRule::Field(body) = &route.body
        && (steps[0] == body || input.get_field_by_name(body).is_some_and(|f| f.json_name() == steps[0]))
    {
        return refuse(format!("{body} is the body; give its fields there"));
    }
    if field.is_map() {
        return refuse("a map cannot be given in the query".into());
    }
    let Some(json_value) = query_value(&field, value) else {
        return refuse(format!("{value:?} is not a {}", kind_name(&field)));
    };
    let Some((last, parents)) = names.split_last() else {
        return refuse("an empty name".into());
    };
    let mut object = &mut *root;
    for name in parents {
        let entry = object.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = entry else {
            return refuse(format!("{name} is set to a value other than an object"));
        };
        object = inner;
    }
    if field.is_list() {
        match object.entry(last.clone()).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(items) => items.push(json_value),
            _ => return refuse("given twice".into()),
        }
    } else if object.insert(last.clone(), json_value).is_some() {
        return refuse("given twice".into());
    }
    Ok(())
}

/// A path variable: always a string field (resource names).
fn put_binding(input: &MessageDescriptor, root: &mut Map<String, Value>, binding: &Binding) -> Result<(), Status> {
    let mut message = input.clone();
    let mut object = root;
    let (last, parents) = binding
        .field_path
        .split_last()
        .ok_or_else(|| Status::internal("an empty path variable"))?;
    for name in parents {
        let field = message
            .get_field_by_name(name)
            .ok_or_else(|| Status::internal("a path variable's field vanished"))?;
        let Kind::Message(inner) = field.kind() else {
            return Err(Status::internal("a path variable descends into a scalar"));
        };
        message = inner;
        let entry = object
            .entry(field.json_name().to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        // The body might hold the proto name instead of the JSON name: the
        // deserializer accepts both, so both must not be set.
        let Value::Object(inner) = entry else {
            return Err(bad_request(
                &binding.field_path.join("."),
                format!("{name} must be an object"),
            ));
        };
        object = inner;
    }
    let field = message
        .get_field_by_name(last)
        .ok_or_else(|| Status::internal("a path variable's field vanished"))?;
    // The path wins over the body (AIP-134: the URL names the resource).
    object.remove(field.name());
    object.insert(field.json_name().to_string(), Value::String(binding.value.clone()));
    Ok(())
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

/// A query string value as the JSON mapping would write it.
fn query_value(field: &FieldDescriptor, value: &str) -> Option<Value> {
    match field.kind() {
        Kind::Bool => value.parse::<bool>().ok().map(Value::Bool),
        Kind::Enum(_) => Some(match value.parse::<i64>() {
            Ok(number) => json!(number),
            Err(_) => Value::String(value.to_string()),
        }),
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.BoolValue" => value.parse::<bool>().ok().map(Value::Bool),
            "google.protobuf.FieldMask"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue" => Some(Value::String(value.to_string())),
            _ => None,
        },
        // Numbers and bytes: the JSON mapping accepts them as strings.
        _ => Some(Value::String(value.to_string())),
    }
}

fn kind_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(message) => format!("value that fits {} in a query string", message.full_name()),
        Kind::Enum(e) => format!("name of {}", e.full_name()),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn bad_request(field: &str, description: String) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field, description.clone());
    details.set_error_info(
        "INVALID_JSON_REQUEST",
        super::super::status::ERROR_DOMAIN,
        HashMap::new(),
    );
    Status::with_error_details(Code::InvalidArgument, description, details)
}

/// A response message as JSON (lowerCamelCase names, enums by name, int64 as
/// strings, default values left out).
pub fn response_json(output: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Status> {
    let message = DynamicMessage::decode(output.clone(), bytes)
        .map_err(|e| Status::internal(format!("the response did not decode as {}: {e}", output.full_name())))?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| Status::internal(format!("the response did not encode as JSON: {e}")))?;
    Ok(out)
}

/// The HTTP status a gRPC code maps to (google/rpc/code.proto).
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as H;
    match code {
        Code::Ok => H::OK,
        Code::Cancelled => H::from_u16(499).unwrap_or(H::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => H::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => H::BAD_REQUEST,
        Code::DeadlineExceeded => H::GATEWAY_TIMEOUT,
        Code::NotFound => H::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => H::CONFLICT,
        Code::PermissionDenied => H::FORBIDDEN,
        Code::Unauthenticated => H::UNAUTHORIZED,
        Code::ResourceExhausted => H::TOO_MANY_REQUESTS,
        Code::Unimplemented => H::NOT_IMPLEMENTED,
        Code::Unavailable => H::SERVICE_UNAVAILABLE,
    }
}

/// `{"error": {"code", "message", "status", "details"}}` (AIP-193): `code`
/// is the HTTP status, `details` the same `google.rpc` details the gRPC
/// status carries, each with its `@type`.
pub fn error_json(status: &Status, http_code: http::StatusCode) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), json!(http_code.as_u16()));
    error.insert("message".into(), Value::String(status.message().to_string()));
    error.insert(
        "status".into(),
        Value::String(super::super::call_log::code_name(status.code()).to_string()),
    );
    error.insert("details".into(), Value::Array(details_json(status.details())));
    json!({ "error": error })
}

/// The details of `grpc-status-details-bin` (a `google.rpc.Status`) as JSON,
/// each `Any` with its `@type`; one whose type this server does not know
/// keeps its bytes, base64-encoded, as `value`.
fn details_json(encoded: &[u8]) -> Vec<Value> {
    let Ok(status) = tonic_types::pb::Status::decode(encoded) else {
        return Vec::new();
    };
    let pool = super::pool();
    status
        .details
        .iter()
        .map(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            let known = pool
                .get_message_by_name(name)
                .and_then(|message| DynamicMessage::decode(message, any.value.as_slice()).ok())
                .and_then(|message| serde_json::to_value(&message).ok());
            match known {
                Some(Value::Object(mut fields)) => {
                    let mut out = Map::new();
                    out.insert("@type".into(), Value::String(any.type_url.clone()));
                    out.append(&mut fields);
                    Value::Object(out)
                }
                _ => {
                    use base64::Engine;
                    json!({ "@type": any.type_url, "value": base64::engine::general_purpose::STANDARD.encode(&any.value) })
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_map_keys_as_written() {
        let product = crate::domain::schema::product_descriptor();
        assert_eq!(
            mask_paths(
                &product,
                "displayName, labels.my_key,localizedDisplayNames.de_DE,iot.modelId,iot.tags.aB,nope.x"
            ),
            [
                "display_name",
                "labels.my_key",
                "localized_display_names.de_DE",
                "iot.model_id",
                "iot.tags.aB",
                "nope.x"
            ]
        );
        assert_eq!(mask_paths(&product, "display_name"), ["display_name"]);
        assert!(mask_paths(&product, "").is_empty());
    }

    #[test]
    fn errors_carry_every_detail_of_the_status() {
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(std::time::Duration::from_millis(50)));
        details.set_error_info("OVERLOADED", "producthub", HashMap::new());
        details.add_bad_request_violation("product.display_name", "is required");
        let status = Status::with_error_details(Code::Unavailable, "busy", details);
        let body = error_json(&status, http_status(status.code()));
        assert_eq!(body["error"]["code"], 503);
        assert_eq!(body["error"]["status"], "UNAVAILABLE");
        let types: Vec<&str> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["@type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "type.googleapis.com/google.rpc.RetryInfo",
                "type.googleapis.com/google.rpc.ErrorInfo",
                "type.googleapis.com/google.rpc.BadRequest"
            ],
            "{body}"
        );
        assert_eq!(body["error"]["details"][0]["retryDelay"], "0.050s");
    }
}
