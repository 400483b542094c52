//! The OpenAPI 3 document of the REST mapping, generated from the served
//! descriptor set's `google.api.http` rules and comments (build time only;
//! the server embeds the result). The rules are read by the server's own
//! router (`routes.rs`, with its template parser), so the document and the
//! server cannot disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{
    DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value,
};
use serde_json::{Map, Value as Json, json};

use super::routes::{BodyRule, Routes};
use super::template::Template;

pub fn document(pool: &DescriptorPool) -> Result<Json, String> {
    // The server's own reading of the rules, additional bindings included.
    let routes = Routes::from_pool(pool)?;
    let behavior = pool.get_extension_by_name("google.api.field_behavior");
    let mut comments = Comments::default();
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut bindings_of: HashMap<String, usize> = HashMap::new();
    for route in routes.iter() {
        let method = route.method.as_str().to_lowercase();
        if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
            return Err(format!(
                "{}: only get, put, post, delete and patch rules are documented",
                route.rpc.full_name()
            ));
        }
        let body = match &route.body {
            BodyRule::None => "",
            BodyRule::Whole => "*",
            BodyRule::Field(field) => field.as_str(),
        };
        let (path, params) = route.template.openapi_path();
        let service = route.rpc.parent_service().name().to_string();
        // The second binding of an RPC gets an id of its own.
        let nth = bindings_of.entry(route.grpc_path.clone()).or_default();
        *nth += 1;
        let suffix = if *nth > 1 { format!("_{nth}") } else { String::new() };
        let mut operation = operation(
            &route.rpc,
            &service,
            &route.template,
            &params,
            body,
            &mut comments,
            &mut wanted,
        )?;
        operation.insert(
            "operationId".into(),
            json!(format!("{service}_{}{suffix}", route.rpc.name())),
        );
        if paths
            .entry(path.clone())
            .or_default()
            .insert(method.clone(), Json::Object(operation))
            .is_some()
        {
            return Err(format!("{method} {path} is bound twice"));
        }
    }
    let mut schemas = Map::new();
    let mut queue: Vec<String> = wanted.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(name) = queue.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let message = pool.get_message_by_name(&name).ok_or(format!("no message {name}"))?;
        let mut refs = BTreeSet::new();
        schemas.insert(
            name,
            message_schema(&message, behavior.as_ref(), &mut comments, &mut refs),
        );
        queue.extend(refs);
    }
    schemas.insert("Error".into(), error_schema());
    Ok(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "producthub",
            "version": "v1",
            "description": "One canonical Product, kept in step with the vendors' product APIs. The HTTP/JSON mapping of the gRPC API `producthub.v1` (AIP-127): the same calls, with the proto3 JSON mapping. Generated from the protos at build time.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "A token from the server's --tokens file; servers without tokens take calls without one." } },
        },
        "security": [ { "bearer": [] }, {} ],
    }))
}

#[allow(clippy::too_many_arguments)]
fn operation(
    rpc: &MethodDescriptor,
    service: &str,
    template: &Template,
    params: &[(String, Vec<String>)],
    body: &str,
    comments: &mut Comments,
    wanted: &mut BTreeSet<String>,
) -> Result<Map<String, Json>, String> {
    let input = rpc.input();
    let output = rpc.output();
    let mut parameters = Vec::new();
    for (name, field_path) in params {
        let collection = template.as_str();
        parameters.push(json!({
            "name": name,
            "in": "path",
            "required": true,
            "schema": { "type": "string" },
            "description": format!("The id in `{}` (the request's `{}`), as in the template {collection}.", field_path.join("."), field_path.join(".")),
        }));
    }
    let bound: BTreeSet<&str> = template.variables().iter().map(|p| p[0].as_str()).collect();
    if body != "*" {
        for field in input.fields() {
            if bound.contains(field.name()) || field.name() == body {
                continue;
            }
            let Some(schema) = query_schema(&field) else { continue };
            let mut parameter = json!({
                "name": field.json_name(),
                "in": "query",
                "schema": schema,
            });
            if let Some(text) = comments.of(&field.parent_file(), field.path()) {
                parameter["description"] = Json::String(text);
            }
            if field.is_list() {
                parameter["style"] = json!("form");
                parameter["explode"] = json!(true);
            }
            parameters.push(parameter);
        }
    }
    let mut operation = Map::new();
    operation.insert("tags".into(), json!([service]));
    if let Some(text) = comments.of(&rpc.parent_file(), rpc.path()) {
        let summary = text
            .split(". ")
            .next()
            .unwrap_or(&text)
            .trim_end_matches('.')
            .to_string();
        operation.insert("summary".into(), json!(summary));
        operation.insert("description".into(), json!(text));
    }
    operation.insert("parameters".into(), Json::Array(parameters));
    match body {
        "" => {}
        "*" => {
            wanted.insert(input.full_name().to_string());
            operation.insert(
                "requestBody".into(),
                json!({ "required": false, "content": { "application/json": { "schema": reference(input.full_name()) } } }),
            );
        }
        field => {
            let field = input
                .get_field_by_name(field)
                .ok_or(format!("{}: no body field {field}", rpc.full_name()))?;
            let Kind::Message(message) = field.kind() else {
                return Err(format!("{}: the body field is not a message", rpc.full_name()));
            };
            wanted.insert(message.full_name().to_string());
            operation.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": reference(message.full_name()) } } }),
            );
        }
    }
    wanted.insert(output.full_name().to_string());
    let ok = if rpc.is_server_streaming() {
        json!({
            "description": format!("A stream of {}, one JSON object per line (newline-delimited JSON); a failure after the stream began is a last line holding an Error.", output.name()),
            "content": { "application/x-ndjson": { "schema": reference(output.full_name()) } },
        })
    } else {
        json!({ "description": "OK", "content": { "application/json": { "schema": reference(output.full_name()) } } })
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": ok,
            "default": {
                "description": "An error (AIP-193): the HTTP status of its gRPC code, and the same google.rpc details the gRPC status carries.",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
            },
        }),
    );
    Ok(operation)
}

fn reference(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A query parameter's schema: scalars, enums, well-known types written as
/// strings, and lists of them; `None` for fields a query cannot give.
fn query_schema(field: &FieldDescriptor) -> Option<Json> {
    if field.is_map() {
        return None;
    }
    let one = match field.kind() {
        Kind::Message(message)
            if !matches!(
                message.full_name(),
                "google.protobuf.FieldMask" | "google.protobuf.Timestamp" | "google.protobuf.Duration"
            ) =>
        {
            return None;
        }
        _ => single_schema(field, &mut BTreeSet::new()),
    };
    Some(if field.is_list() {
        json!({ "type": "array", "items": one })
    } else {
        one
    })
}

fn message_schema(
    message: &MessageDescriptor,
    behavior: Option<&prost_reflect::ExtensionDescriptor>,
    comments: &mut Comments,
    refs: &mut BTreeSet<String>,
) -> Json {
    if let Some(known) = well_known(message.full_name()) {
        return known;
    }
    let mut properties = Map::new();
    for field in message.fields() {
        let mut schema = if field.is_map() {
            let value = field.kind();
            let value_field = match value {
                Kind::Message(entry) => entry.map_entry_value_field(),
                _ => continue,
            };
            json!({ "type": "object", "additionalProperties": single_schema(&value_field, refs) })
        } else if field.is_list() {
            json!({ "type": "array", "items": single_schema(&field, refs) })
        } else {
            single_schema(&field, refs)
        };
        let mut description = comments.of(&field.parent_file(), field.path()).unwrap_or_default();
        let behaviors = field_behaviors(&field, behavior);
        if !behaviors.is_empty() {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("Field behavior: {}.", behaviors.join(", ")));
        }
        if behaviors.iter().any(|b| b == "OUTPUT_ONLY") {
            schema = with(schema, "readOnly", json!(true));
        }
        if !description.is_empty() {
            schema = with(schema, "description", Json::String(description));
        }
        properties.insert(field.json_name().to_string(), schema);
    }
    let mut schema = json!({ "type": "object", "properties": properties });
    if let Some(text) = comments.of(&message.parent_file(), message.path()) {
        schema["description"] = Json::String(text);
    }
    schema
}

/// A `$ref` cannot carry siblings in OpenAPI 3.0: such a schema is wrapped.
fn with(schema: Json, key: &str, value: Json) -> Json {
    if schema.get("$ref").is_some() {
        json!({ "allOf": [schema], key: value })
    } else {
        let mut schema = schema;
        schema[key] = value;
        schema
    }
}

fn field_behaviors(field: &FieldDescriptor, behavior: Option<&prost_reflect::ExtensionDescriptor>) -> Vec<String> {
    let Some(extension) = behavior else { return Vec::new() };
    let options = field.options();
    if !options.has_extension(extension) {
        return Vec::new();
    }
    let Kind::Enum(kind) = extension.kind() else {
        return Vec::new();
    };
    match options.get_extension(extension).into_owned() {
        Value::List(values) => values
            .iter()
            .filter_map(|v| v.as_enum_number())
            .filter_map(|n| kind.get_value(n).map(|v| v.name().to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// One value of `field` (the element, for a list).
fn single_schema(field: &FieldDescriptor, refs: &mut BTreeSet<String>) -> Json {
    match field.kind() {
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
        Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "int64", "minimum": 0 }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "string", "format": "int64" }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte" }),
        Kind::Enum(e) => {
            json!({ "type": "string", "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>() })
        }
        Kind::Message(message) => match well_known(message.full_name()) {
            Some(schema) => schema,
            None => {
                refs.insert(message.full_name().to_string());
                reference(message.full_name())
            }
        },
    }
}

/// The JSON forms the proto3 mapping gives the well-known types.
fn well_known(name: &str) -> Option<Json> {
    Some(match name {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "description": "Seconds with an `s` suffix, e.g. `3.5s`." })
        }
        "google.protobuf.FieldMask" => {
            json!({ "type": "string", "description": "Field paths in lowerCamelCase, separated by commas." })
        }
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Any" => {
            json!({ "type": "object", "properties": { "@type": { "type": "string" } }, "additionalProperties": true })
        }
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => json!({ "type": "string", "nullable": true }),
        "google.protobuf.BoolValue" => json!({ "type": "boolean", "nullable": true }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({ "type": "integer", "nullable": true }),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({ "type": "string", "format": "int64", "nullable": true })
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({ "type": "number", "nullable": true }),
        _ => return None,
    })
}

fn error_schema() -> Json {
    json!({
        "type": "object",
        "description": "AIP-193: every failed call's body.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": { "type": "integer", "description": "The HTTP status code." },
                    "message": { "type": "string", "description": "What went wrong, for a developer." },
                    "status": { "type": "string", "description": "The gRPC code's name, e.g. `NOT_FOUND`." },
                    "details": {
                        "type": "array",
                        "description": "google.rpc error details (ErrorInfo, BadRequest, ...), each with its `@type`.",
                        "items": { "type": "object", "properties": { "@type": { "type": "string" } }, "additionalProperties": true },
                    },
                },
            },
        },
    })
}

/// Leading comments by file and source path, read once per file.
#[derive(Default)]
struct Comments {
    by_file: HashMap<String, HashMap<Vec<i32>, String>>,
}

impl Comments {
    fn of(&mut self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        let table = self.by_file.entry(file.name().to_string()).or_insert_with(|| {
            let mut table = HashMap::new();
            if let Some(info) = &file.file_descriptor_proto().source_code_info {
                for location in &info.location {
                    if let Some(text) = &location.leading_comments {
                        let text = text
                            .lines()
                            .map(str::trim)
                            .collect::<Vec<_>>()
                            .join(" ")
                            .trim()
                            .to_string();
                        if !text.is_empty() {
                            table.insert(location.path.clone(), text);
                        }
                    }
                }
            }
            table
        });
        table.get(path).cloned()
    }
}
