//! EnOS connect-service v2.1 products (`/connect-service/v2.1/products`).
//!
//! Every operation is a call to one path, told apart by the `action` query
//! parameter; `orgId` is on every call. Responses come in an envelope
//! `{code, msg, requestId, data}` whose non-zero `code` is a failure even with
//! HTTP 200.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

mod auth;
mod config;
mod limits;

pub use auth::Connection;
pub use config::{Args, Config, ENABLING_FLAGS};

use super::json::{from_epoch_millis, from_struct, to_epoch_millis, to_struct};
use super::mapping::FieldMapping;
use super::{
    Adapter, AdapterError, Method, Vendor, VendorError, VendorErrorKind, VendorPage, VendorRequest, VendorResponse,
    VendorSettings, bad_json, check_vendor_rules, kind_from_http_status, non_empty, object, parse_retry_after,
    profile_place, truncated_text, unreadable,
};
use crate::domain::field_mask::UpdateMask;
use crate::pb::{IotDataFormat, IotProductType, IotProfile, Product};

pub struct Enos;

const VENDOR: Vendor = Vendor::Enos;
const PRODUCTS_PATH: &str = "/connect-service/v2.1/products";

/// The spellings EnOS uses for the dynamic-activation flag, the request one
/// first. Reading takes the first present; writing a product object reuses the
/// spellings the vendor used (kept in `vendor_fields`); requests always send
/// the first.
const DYNAMIC_ACTIVATION: [&str; 3] = ["dynamicActivateEnabled", "dynamicActiveEnabled", "dynamicActiveEnable"];

/// What each call to EnOS carries (rendered into docs/vendor-mappings.md).
pub const REQUESTS: &str = "\
- **Create** (`action=create`, seed 002): always `productName`, `productType`, `modelId`,
  `biDirectionalAuth`, `dataFormat` (the page's required fields); `productDesc`,
  `dynamicActivateEnabled`, `productTags`, `defaultValidDay`, `maxValidDay` only when set
  (the notes confirm them for create, §1.2). `orgId` in the query.
- **Update** (`action=update`, seed 000): always `productName` and `biDirectionalAuth` (required),
  then what the change names. A whole resend (SyncProduct; a `*` UpdateProduct sends what it changed) carries only the values
  producthub holds: no empty `productDesc`, no empty `productTags`, no `false`
  `dynamicActivateEnabled` as filler, which would erase what was set at EnOS. A change that
  names a field sends it even empty (that clears it). `orgId` and `productKey` in the query.
- A failure keeps EnOS's `code`, `msg` and the envelope's `requestId` (for EnOS support) in the
  sync entry's `last_error`.
";

/// How each canonical field maps to EnOS (rendered into docs/vendor-mappings.md).
pub const MAPPING: &[FieldMapping] = &[
    FieldMapping::new(
        "display_name",
        "productName.defaultValue",
        "1-64 characters without < > ; @ * % & \\",
    ),
    FieldMapping::new(
        "localized_display_names",
        "productName.i18nValue",
        "locale id → name; `{}` when empty",
    ),
    FieldMapping::new(
        "description",
        "productDesc",
        "at most 512 characters; sent empty only by a change that names it",
    ),
    FieldMapping::new("iot.model_id", "modelId", "create only (immutable)"),
    FieldMapping::new(
        "iot.product_type",
        "productType",
        "`Device` / `Gateway`; create only (immutable)",
    ),
    FieldMapping::new(
        "iot.data_format",
        "dataFormat",
        "`Custom` / `Json`; create only (immutable)",
    ),
    FieldMapping::new(
        "iot.bidirectional_auth",
        "biDirectionalAuth",
        "sent on every create and update",
    ),
    FieldMapping::new(
        "iot.dynamic_activation_enabled",
        "dynamicActivateEnabled",
        "also read from `dynamicActiveEnabled` / `dynamicActiveEnable`; a whole resend sends it only when true",
    ),
    FieldMapping::new("iot.default_valid_days", "defaultValidDay", "1-3650"),
    FieldMapping::new("iot.max_valid_days", "maxValidDay", "1-3650"),
    FieldMapping::new(
        "iot.tags",
        "productTags",
        "≤ 100; `null` reads as empty; sent whole on update, empty only by a change that names it",
    ),
    FieldMapping::new(
        "iot.product_key",
        "productKey",
        "output only; `productKey` query parameter of update/get/delete",
    ),
    FieldMapping::new("iot.product_secret", "productSecret", "output only"),
    FieldMapping::new(
        "iot.org_id",
        "orgId",
        "output only; `orgId` query parameter (else the configured one)",
    ),
    FieldMapping::new(
        "iot.vendor_create_time",
        "createTime",
        "output only; epoch milliseconds",
    ),
    FieldMapping::new(
        "iot.vendor_update_time",
        "updateTime",
        "output only; epoch milliseconds",
    ),
    FieldMapping::new("iot.created_by", "createBy", "output only"),
    FieldMapping::new("iot.updated_by", "updateBy", "output only"),
    FieldMapping::new(
        "iot.vendor_fields",
        "(any other field)",
        "kept as sent, e.g. `sessionKey`, `protocolGatewayIds`",
    ),
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProductJson {
    org_id: Option<String>,
    product_key: Option<String>,
    product_name: Option<StringI18n>,
    product_secret: Option<String>,
    product_desc: Option<String>,
    product_type: Option<String>,
    data_format: Option<String>,
    product_tags: Option<BTreeMap<String, String>>,
    model_id: Option<String>,
    dynamic_activate_enabled: Option<FlexibleBool>,
    dynamic_active_enabled: Option<FlexibleBool>,
    dynamic_active_enable: Option<FlexibleBool>,
    bi_directional_auth: Option<bool>,
    create_time: Option<i64>,
    update_time: Option<i64>,
    create_by: Option<String>,
    update_by: Option<String>,
    default_valid_day: Option<i32>,
    max_valid_day: Option<i32>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct StringI18n {
    default_value: Option<String>,
    i18n_value: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// EnOS documents `dynamicActivateEnabled` as a String in one table and sends
/// booleans in every sample: accept both.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FlexibleBool {
    Bool(bool),
    Text(String),
}

impl FlexibleBool {
    fn value(&self, field: &str) -> Result<bool, AdapterError> {
        match self {
            FlexibleBool::Bool(b) => Ok(*b),
            FlexibleBool::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
            FlexibleBool::Text(t) if t.eq_ignore_ascii_case("false") => Ok(false),
            FlexibleBool::Text(t) => Err(bad_json(VENDOR, format!("{field}: expected a boolean, found {t:?}"))),
        }
    }
}

fn product_type_name(value: i32) -> Option<&'static str> {
    match IotProductType::try_from(value).ok()? {
        IotProductType::Device => Some("Device"),
        IotProductType::Gateway => Some("Gateway"),
        IotProductType::Unspecified => None,
    }
}

fn data_format_name(value: i32) -> Option<&'static str> {
    match IotDataFormat::try_from(value).ok()? {
        IotDataFormat::Custom => Some("Custom"),
        IotDataFormat::Json => Some("Json"),
        IotDataFormat::Unspecified => None,
    }
}

fn iot(product: &Product) -> Result<&IotProfile, AdapterError> {
    product.iot.as_ref().ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no iot profile".into(),
    })
}

fn org_id(product: &Product, settings: &VendorSettings) -> Result<String, AdapterError> {
    product
        .iot
        .as_ref()
        .and_then(|i| non_empty(&i.org_id))
        .or_else(|| settings.enos_org_id.clone().filter(|o| !o.is_empty()))
        .ok_or_else(|| AdapterError::NotReady {
            vendor: VENDOR,
            reason: "no EnOS orgId: the product has none and none is configured (--enos-org-id)".into(),
        })
}

fn product_key(product: &Product) -> Result<String, AdapterError> {
    non_empty(&iot(product)?.product_key).ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no EnOS productKey yet: create it in EnOS first".into(),
    })
}

fn request(action: &'static str, org: String, key: Option<String>, body: Option<Value>) -> VendorRequest {
    let mut query = vec![("action", action.to_string()), ("orgId", org)];
    if let Some(key) = key {
        query.push(("productKey", key));
    }
    VendorRequest {
        method: if action == "get" { Method::Get } else { Method::Post },
        path: PRODUCTS_PATH.into(),
        query,
        body,
    }
}

fn product_name(product: &Product) -> Value {
    json!({
        "defaultValue": product.display_name,
        "i18nValue": product.localized_display_names,
    })
}

/// Which UpdateProduct body fields a mask calls for. Each optional field is
/// `None` (not wanted), `Some(false)` (sent when producthub holds a value: a
/// whole resend never sends an empty value as filler, which would erase what
/// was set at EnOS) or `Some(true)` (sent even when empty: the change named
/// it, so clearing it is meant).
#[derive(Default)]
struct UpdateFields {
    any: bool,
    description: Option<bool>,
    dynamic_activation: Option<bool>,
    tags: Option<bool>,
    default_valid_days: Option<bool>,
    max_valid_days: Option<bool>,
}

/// Raises what a field is wanted for to at least `to`.
fn want(field: &mut Option<bool>, to: bool) {
    *field = Some(field.unwrap_or(false) || to);
}

impl UpdateFields {
    /// A whole resend: every field producthub holds a value for.
    fn resend() -> Self {
        UpdateFields {
            any: true,
            description: Some(false),
            dynamic_activation: Some(false),
            tags: Some(false),
            default_valid_days: Some(false),
            max_valid_days: Some(false),
        }
    }

    fn from_mask(mask: &UpdateMask) -> Self {
        if matches!(mask, UpdateMask::Full) {
            return Self::resend();
        }
        let mut fields = UpdateFields::default();
        for path in mask.effective_paths() {
            let names: Vec<&str> = path.field_names().collect();
            match names.as_slice() {
                ["display_name"] | ["localized_display_names"] => fields.any = true,
                ["description"] => {
                    fields.any = true;
                    want(&mut fields.description, true);
                }
                ["iot"] => {
                    // The whole profile: its fields as they are now, cleared
                    // ones included; the validity cannot be cleared at EnOS,
                    // so it goes only when set.
                    fields.any = true;
                    want(&mut fields.description, false);
                    want(&mut fields.dynamic_activation, true);
                    want(&mut fields.tags, true);
                    want(&mut fields.default_valid_days, false);
                    want(&mut fields.max_valid_days, false);
                }
                ["iot", "bidirectional_auth"] => fields.any = true,
                ["iot", "dynamic_activation_enabled"] => {
                    fields.any = true;
                    want(&mut fields.dynamic_activation, true);
                }
                ["iot", "tags"] => {
                    fields.any = true;
                    want(&mut fields.tags, true);
                }
                ["iot", "default_valid_days"] => {
                    fields.any = true;
                    want(&mut fields.default_valid_days, true);
                }
                ["iot", "max_valid_days"] => {
                    fields.any = true;
                    want(&mut fields.max_valid_days, true);
                }
                // modelId, productType and dataFormat are immutable in the
                // canonical model, so a mask naming them carries no change;
                // other fields have no place in EnOS's update body.
                _ => {}
            }
        }
        fields
    }
}

/// Whether a field wanted as `wanted` goes in the body, given whether
/// producthub holds a value for it.
fn sent(wanted: Option<bool>, has_value: bool) -> bool {
    match wanted {
        None => false,
        Some(clear) => clear || has_value,
    }
}

fn set_validity(
    body: &mut Map<String, Value>,
    key: &str,
    path: &str,
    value: Option<i32>,
    wanted: Option<bool>,
) -> Result<(), AdapterError> {
    match (wanted, value) {
        (None, _) | (Some(false), None) => Ok(()),
        (Some(_), Some(days)) => {
            body.insert(key.into(), json!(days));
            Ok(())
        }
        (Some(true), None) => Err(AdapterError::Unsupported {
            vendor: VENDOR,
            path: path.into(),
            reason: format!("EnOS's update cannot clear {key}; set a value of 1-3650 days instead"),
        }),
    }
}

fn envelope(response: VendorResponse<'_>) -> Result<Map<String, Value>, VendorError> {
    if let Some(error) = Enos.read_error(response) {
        return Err(error);
    }
    match serde_json::from_slice::<Value>(response.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(unreadable(VENDOR, response, "the envelope is not a JSON object".into())),
        Err(e) => Err(unreadable(VENDOR, response, e.to_string())),
    }
}

/// EnOS business and gateway codes, as documented (codes vary by doc version).
fn kind_from_code(code: i64, message: &str) -> VendorErrorKind {
    match code {
        11699 | 99400 | 1004 | 1202 => VendorErrorKind::InvalidArgument,
        // Later docs report a bad modelId on create as 99500 "Query model failed".
        99500 if message.contains("Query model failed") => VendorErrorKind::InvalidArgument,
        11651 | 11404 | 11611 | 99404 => VendorErrorKind::NotFound,
        11619 | 11858 => VendorErrorKind::FailedPrecondition,
        99403 => VendorErrorKind::PermissionDenied,
        1002 | 1003 | 1204 => VendorErrorKind::Unauthenticated,
        1203 => VendorErrorKind::TokenExpired,
        // 1001: replayed request; 1005 and 99500: internal errors.
        1001 | 1005 | 99500 => VendorErrorKind::Unavailable,
        // The rest of EnOS's common 994xx range is about the request.
        99400..=99499 => VendorErrorKind::InvalidArgument,
        _ => VendorErrorKind::Unknown,
    }
}

impl Adapter for Enos {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    fn import(&self, product_json: &Value) -> Result<Product, AdapterError> {
        let value = match product_json {
            // A get response envelope: take its data.
            Value::Object(map) if map.contains_key("code") && map.contains_key("data") => &map["data"],
            other => other,
        };
        object(VENDOR, value)?;
        let parsed: ProductJson =
            serde_path_to_error::deserialize(value).map_err(|e| bad_json(VENDOR, e.to_string()))?;
        let mut others = parsed.other;

        let spellings = [
            (DYNAMIC_ACTIVATION[0], &parsed.dynamic_activate_enabled),
            (DYNAMIC_ACTIVATION[1], &parsed.dynamic_active_enabled),
            (DYNAMIC_ACTIVATION[2], &parsed.dynamic_active_enable),
        ];
        let mut present = Vec::new();
        for (name, value) in spellings {
            if let Some(v) = value {
                present.push((name, v.value(name)?));
            }
        }
        let dynamic_activation_enabled = present.first().is_some_and(|(_, v)| *v);
        let only_request_spelling = present.len() == 1 && present[0].0 == DYNAMIC_ACTIVATION[0];
        if !present.is_empty() && !only_request_spelling {
            for (name, value) in &present {
                others.insert((*name).into(), Value::Bool(*value));
            }
        }

        let product_type = match parsed.product_type.as_deref() {
            Some("Device") => IotProductType::Device,
            Some("Gateway") => IotProductType::Gateway,
            Some(other) => {
                others.insert("productType".into(), Value::String(other.into()));
                IotProductType::Unspecified
            }
            None => IotProductType::Unspecified,
        };
        let data_format = match parsed.data_format.as_deref() {
            Some("Custom") => IotDataFormat::Custom,
            Some("Json") => IotDataFormat::Json,
            Some(other) => {
                others.insert("dataFormat".into(), Value::String(other.into()));
                IotDataFormat::Unspecified
            }
            None => IotDataFormat::Unspecified,
        };
        let name = parsed.product_name.unwrap_or_default();
        if !name.other.is_empty() {
            others.insert("productName".into(), Value::Object(name.other));
        }
        let vendor_fields = to_struct(others, "iot.vendor_fields").map_err(|e| bad_json(VENDOR, e))?;

        Ok(Product {
            display_name: name.default_value.unwrap_or_default(),
            localized_display_names: name.i18n_value.unwrap_or_default(),
            description: parsed.product_desc.unwrap_or_default(),
            iot: Some(IotProfile {
                model_id: parsed.model_id.unwrap_or_default(),
                product_type: product_type as i32,
                data_format: data_format as i32,
                bidirectional_auth: parsed.bi_directional_auth.unwrap_or_default(),
                dynamic_activation_enabled,
                default_valid_days: parsed.default_valid_day,
                max_valid_days: parsed.max_valid_day,
                tags: parsed.product_tags.unwrap_or_default(),
                product_key: parsed.product_key.unwrap_or_default(),
                product_secret: parsed.product_secret.unwrap_or_default(),
                org_id: parsed.org_id.unwrap_or_default(),
                vendor_create_time: parsed.create_time.map(from_epoch_millis),
                vendor_update_time: parsed.update_time.map(from_epoch_millis),
                created_by: parsed.create_by.unwrap_or_default(),
                updated_by: parsed.update_by.unwrap_or_default(),
                vendor_fields,
            }),
            ..Default::default()
        })
    }

    fn export(&self, product: &Product) -> Result<Value, AdapterError> {
        let iot = iot(product)?;
        let mut out = from_struct(iot.vendor_fields.as_ref());
        let mut name = match out.remove("productName") {
            Some(Value::Object(extra)) => extra,
            _ => Map::new(),
        };
        name.insert("defaultValue".into(), json!(product.display_name));
        name.insert("i18nValue".into(), json!(product.localized_display_names));
        out.insert("productName".into(), Value::Object(name));
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        };
        put("orgId", non_empty(&iot.org_id).map(Value::from));
        put("productKey", non_empty(&iot.product_key).map(Value::from));
        put("productSecret", non_empty(&iot.product_secret).map(Value::from));
        put("productDesc", non_empty(&product.description).map(Value::from));
        put("productType", product_type_name(iot.product_type).map(Value::from));
        put("dataFormat", data_format_name(iot.data_format).map(Value::from));
        put("productTags", (!iot.tags.is_empty()).then(|| json!(iot.tags)));
        put("modelId", non_empty(&iot.model_id).map(Value::from));
        put("biDirectionalAuth", Some(Value::Bool(iot.bidirectional_auth)));
        put(
            "createTime",
            iot.vendor_create_time.as_ref().map(|t| json!(to_epoch_millis(t))),
        );
        put(
            "updateTime",
            iot.vendor_update_time.as_ref().map(|t| json!(to_epoch_millis(t))),
        );
        put("createBy", non_empty(&iot.created_by).map(Value::from));
        put("updateBy", non_empty(&iot.updated_by).map(Value::from));
        put("defaultValidDay", iot.default_valid_days.map(Value::from));
        put("maxValidDay", iot.max_valid_days.map(Value::from));
        let used: Vec<&str> = DYNAMIC_ACTIVATION
            .into_iter()
            .filter(|s| out.contains_key(*s))
            .collect();
        let spellings = if used.is_empty() {
            vec![DYNAMIC_ACTIVATION[0]]
        } else {
            used
        };
        for spelling in spellings {
            out.insert(spelling.into(), Value::Bool(iot.dynamic_activation_enabled));
        }
        Ok(Value::Object(out))
    }

    fn create(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let iot = iot(product)?;
        check_vendor_rules(self, product)?;
        let org = org_id(product, settings)?;
        let mut body = Map::new();
        body.insert("productName".into(), product_name(product));
        // check() guarantees both enums are set.
        body.insert("productType".into(), json!(product_type_name(iot.product_type)));
        body.insert("modelId".into(), json!(iot.model_id));
        body.insert("biDirectionalAuth".into(), json!(iot.bidirectional_auth));
        body.insert("dataFormat".into(), json!(data_format_name(iot.data_format)));
        if !product.description.is_empty() {
            body.insert("productDesc".into(), json!(product.description));
        }
        if iot.dynamic_activation_enabled {
            body.insert(DYNAMIC_ACTIVATION[0].into(), json!(true));
        }
        if !iot.tags.is_empty() {
            body.insert("productTags".into(), json!(iot.tags));
        }
        if let Some(days) = iot.default_valid_days {
            body.insert("defaultValidDay".into(), json!(days));
        }
        if let Some(days) = iot.max_valid_days {
            body.insert("maxValidDay".into(), json!(days));
        }
        Ok(request("create", org, None, Some(Value::Object(body))))
    }

    fn update(
        &self,
        product: &Product,
        mask: &UpdateMask,
        settings: &VendorSettings,
        _last_known: Option<&Value>,
    ) -> Result<Option<VendorRequest>, AdapterError> {
        let fields = UpdateFields::from_mask(mask);
        if !fields.any {
            return Ok(None);
        }
        let iot = iot(product)?;
        check_vendor_rules(self, product)?;
        let key = product_key(product)?;
        let org = org_id(product, settings)?;
        // v2.1 requires productName and biDirectionalAuth in every update.
        let mut body = Map::new();
        body.insert("productName".into(), product_name(product));
        body.insert("biDirectionalAuth".into(), json!(iot.bidirectional_auth));
        if sent(fields.description, !product.description.is_empty()) {
            body.insert("productDesc".into(), json!(product.description));
        }
        if sent(fields.dynamic_activation, iot.dynamic_activation_enabled) {
            body.insert(DYNAMIC_ACTIVATION[0].into(), json!(iot.dynamic_activation_enabled));
        }
        if sent(fields.tags, !iot.tags.is_empty()) {
            body.insert("productTags".into(), json!(iot.tags));
        }
        set_validity(
            &mut body,
            "defaultValidDay",
            "iot.default_valid_days",
            iot.default_valid_days,
            fields.default_valid_days,
        )?;
        set_validity(
            &mut body,
            "maxValidDay",
            "iot.max_valid_days",
            iot.max_valid_days,
            fields.max_valid_days,
        )?;
        Ok(Some(request("update", org, Some(key), Some(Value::Object(body)))))
    }

    fn delete(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        Ok(request(
            "delete",
            org_id(product, settings)?,
            Some(product_key(product)?),
            None,
        ))
    }

    fn get(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        Ok(request(
            "get",
            org_id(product, settings)?,
            Some(product_key(product)?),
            None,
        ))
    }

    fn read_product(&self, response: VendorResponse<'_>) -> Result<Value, VendorError> {
        match envelope(response)?.remove("data") {
            Some(data @ Value::Object(_)) => Ok(data),
            _ => Err(unreadable(VENDOR, response, "`data` is not a product object".into())),
        }
    }

    fn read_created_id(&self, response: VendorResponse<'_>) -> Result<String, VendorError> {
        match envelope(response)?.remove("data") {
            Some(Value::String(key)) if !key.is_empty() => Ok(key),
            _ => Err(unreadable(VENDOR, response, "`data` is not a productKey".into())),
        }
    }

    fn read_list(&self, response: VendorResponse<'_>) -> Result<VendorPage, VendorError> {
        let mut map = envelope(response)?;
        let products = match map.remove("data") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(unreadable(VENDOR, response, "`data` is not an array".into())),
        };
        let total = map
            .get("pagination")
            .and_then(|p| p.get("totalSize"))
            .and_then(Value::as_u64);
        Ok(VendorPage { products, total })
    }

    /// `action=search` with `pagination {pageNo, pageSize}` (pageNo from 1);
    /// the answer's `pagination.totalSize` says when the list ends.
    fn list(&self, page: u32, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let org =
            non_empty(settings.enos_org_id.as_deref().unwrap_or_default()).ok_or_else(|| AdapterError::NotReady {
                vendor: VENDOR,
                reason: "listing EnOS products needs an orgId (--enos-org-id)".into(),
            })?;
        let body = json!({"pagination": {"pageNo": page + 1, "pageSize": self.page_size()}});
        Ok(request("search", org, None, Some(body)))
    }

    /// v2.1 allows 200 a page; v2.4 recommends at most 50.
    fn page_size(&self) -> u32 {
        50
    }

    fn read_error(&self, response: VendorResponse<'_>) -> Option<VendorError> {
        let success_status = (200..300).contains(&response.status);
        let parsed: Option<Value> = serde_json::from_slice(response.body).ok();
        // Product calls answer `code`; the token service and gateway `status`.
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code").or_else(|| v.get("status")))
            .and_then(|c| match c {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("msg"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| truncated_text(response.body));
        let kind = match code {
            Some(0) if success_status => return None,
            Some(0) => kind_from_http_status(response.status),
            Some(code) => kind_from_code(code, &message),
            None if success_status => return None,
            None => kind_from_http_status(response.status),
        };
        Some(VendorError {
            vendor: VENDOR,
            kind,
            http_status: Some(response.status),
            code: code.map(|c| c.to_string()),
            message,
            retry_after: parse_retry_after(response.retry_after),
            // What EnOS support asks for when a call went wrong.
            request_id: parsed
                .as_ref()
                .and_then(|v| v.get("requestId"))
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        })
    }

    profile_place!(iot, product_key);

    /// Create and update answer only the productKey: the secret and the
    /// other assigned fields come from a read (`action=get`).
    fn answers_with_the_product(&self) -> bool {
        false
    }

    fn limit_violations(&self, product: &Product) -> Vec<crate::domain::FieldViolation> {
        limits::violations(product)
    }

    fn concerns(&self, top_level_field: &str) -> bool {
        matches!(
            top_level_field,
            "display_name" | "localized_display_names" | "description" | "iot"
        )
    }
}

#[cfg(test)]
mod tests;
