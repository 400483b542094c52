//! Cryptlex Web API v3 products (`/v3/products`).
//!
//! Plain REST with a bearer token: POST creates, PATCH changes only the fields
//! it is given, DELETE answers 204. Errors are `{message, code}` with the HTTP
//! status; 429 carries `Retry-After` in seconds.

use serde::Deserialize;
use serde_json::{Map, Value, json};

mod auth;
mod config;
mod limits;
pub mod webhook;

pub use auth::{Connection, connect};
pub use config::{Args, Config, ENABLING_FLAGS};

use super::json::{from_rfc3339, from_struct, to_rfc3339, to_struct};
use super::mapping::FieldMapping;
use super::{
    Adapter, AdapterError, Method, Vendor, VendorError, VendorPage, VendorRequest, VendorResponse, VendorSettings,
    bad_json, check_vendor_rules, kind_from_http_status, non_empty, object, parse_retry_after, profile_place,
    read_object_id, read_product_object, truncated_text, unreadable,
};
use crate::domain::field_mask::UpdateMask;
use crate::pb::{LicensingMetadata, LicensingProfile, Product};

pub struct Cryptlex;

const VENDOR: Vendor = Vendor::Cryptlex;
const PRODUCTS_PATH: &str = "/v3/products";

/// What each call to Cryptlex carries (rendered into docs/vendor-mappings.md).
pub const REQUESTS: &str = "\
- **Create** (`POST /v3/products`) and **update** (`PATCH /v3/products/{id}`) carry only the
  fields of the v3 request schema (seed 001): `name`, `displayName`, `description`,
  `licenseTemplateId`, `trialPolicyId`, `metadata` (items: `key`, `value`, `viewPermissions`,
  `visible`). `automatedEmails` is left out (the schema lacks it; the notes infer it for create
  only) and stays in producthub until confirmed; a mask naming only
  `licensing.automated_emails` sends nothing. `metadata[].visible` is sent: the page's request example and the notes (§2.3, [C])
  show it, and metadata is replaced whole, so leaving it out would reset it at Cryptlex.
- A PATCH carries what the change names (a `*` UpdateProduct names what it changed). A whole
  resend (SyncProduct) carries the values producthub holds and no empty `metadata`,
  `trialPolicyId` or `description` as filler.
  A change that names `licensing.metadata` or `licensing.trial_policy_id` sends it even empty
  (`[]`, `\"\"`: that clears it); a description cannot be cleared (1-256 characters).
- A failure keeps Cryptlex's `code` and `message` in the sync entry's `last_error`.
";

/// How each canonical field maps to Cryptlex (rendered into docs/vendor-mappings.md).
pub const MAPPING: &[FieldMapping] = &[
    FieldMapping::new("display_name", "displayName", "1-256 characters"),
    FieldMapping::new(
        "description",
        "description",
        "1-256 characters; cannot be cleared once set",
    ),
    FieldMapping::new(
        "licensing.name",
        "name",
        "1-256 characters; empty: `display_name` is sent",
    ),
    FieldMapping::new("licensing.license_template_id", "licenseTemplateId", "required"),
    FieldMapping::new(
        "licensing.trial_policy_id",
        "trialPolicyId",
        "empty is written as `null` in the product object (no trials); a change that names it sends `\"\"` to clear it",
    ),
    FieldMapping::new(
        "licensing.automated_emails",
        "automatedEmails",
        "read and written in the product object; never sent on create or PATCH (the v3 request schema lacks it; the notes only infer it for create); older API: `emailTemplates` (kept in `vendor_fields`)",
    ),
    FieldMapping::new(
        "licensing.metadata",
        "metadata",
        "always written; replaced whole on update; sent empty only by a change that names it",
    ),
    FieldMapping::new("licensing.metadata.key", "metadata[].key", "1-256 characters"),
    FieldMapping::new(
        "licensing.metadata.value",
        "metadata[].value",
        "at most 4096 characters",
    ),
    FieldMapping::new(
        "licensing.metadata.visible",
        "metadata[].visible",
        "always written and sent (metadata is replaced whole); in the v3 request example and the notes, not in the schema table",
    ),
    FieldMapping::new(
        "licensing.metadata.view_permissions",
        "metadata[].viewPermissions",
        "e.g. `activation`; always written",
    ),
    FieldMapping::new("licensing.metadata.id", "metadata[].id", "output only"),
    FieldMapping::new(
        "licensing.metadata.vendor_create_time",
        "metadata[].createdAt",
        "output only; RFC 3339",
    ),
    FieldMapping::new(
        "licensing.metadata.vendor_update_time",
        "metadata[].updatedAt",
        "output only; RFC 3339",
    ),
    FieldMapping::new(
        "licensing.product_id",
        "id",
        "output only; the `{id}` of PATCH/GET/DELETE `/v3/products/{id}`",
    ),
    FieldMapping::new("licensing.public_key", "publicKey", "output only"),
    FieldMapping::new("licensing.icon_url", "iconUrl", "output only"),
    FieldMapping::new(
        "licensing.total_licenses",
        "totalLicenses",
        "output only; always written",
    ),
    FieldMapping::new(
        "licensing.total_trial_activations",
        "totalTrialActivations",
        "output only; always written",
    ),
    FieldMapping::new(
        "licensing.total_releases",
        "totalReleases",
        "output only; always written",
    ),
    FieldMapping::new(
        "licensing.total_product_versions",
        "totalProductVersions",
        "output only; always written",
    ),
    FieldMapping::new(
        "licensing.total_feature_flags",
        "totalFeatureFlags",
        "output only; always written",
    ),
    FieldMapping::new(
        "licensing.vendor_create_time",
        "createdAt",
        "output only; RFC 3339 (written in UTC, `Z`)",
    ),
    FieldMapping::new(
        "licensing.vendor_update_time",
        "updatedAt",
        "output only; RFC 3339 (written in UTC, `Z`)",
    ),
    FieldMapping::new(
        "licensing.vendor_fields",
        "(any other field)",
        "kept as sent, e.g. `licensePolicyId`",
    ),
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProductJson {
    id: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    public_key: Option<String>,
    total_licenses: Option<i64>,
    total_trial_activations: Option<i64>,
    total_releases: Option<i64>,
    total_product_versions: Option<i64>,
    total_feature_flags: Option<i64>,
    automated_emails: Option<Vec<String>>,
    license_template_id: Option<String>,
    trial_policy_id: Option<String>,
    icon_url: Option<String>,
    metadata: Option<Vec<MetadataJson>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MetadataJson {
    id: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    key: Option<String>,
    value: Option<String>,
    view_permissions: Option<Vec<String>>,
    visible: Option<bool>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

fn time(text: Option<String>, path: &str) -> Result<Option<prost_types::Timestamp>, AdapterError> {
    text.map(|t| from_rfc3339(&t, path))
        .transpose()
        .map_err(|e| bad_json(VENDOR, e))
}

fn licensing(product: &Product) -> Result<&LicensingProfile, AdapterError> {
    product.licensing.as_ref().ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no licensing profile".into(),
    })
}

fn product_path(product: &Product) -> Result<String, AdapterError> {
    let id = non_empty(&licensing(product)?.product_id).ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no Cryptlex id yet: create it in Cryptlex first".into(),
    })?;
    Ok(format!("{PRODUCTS_PATH}/{}", super::json::encode_query_value(&id)))
}

/// Cryptlex's `name`: the profile's own, or the display name.
fn cryptlex_name(product: &Product, licensing: &LicensingProfile) -> String {
    non_empty(&licensing.name).unwrap_or_else(|| product.display_name.clone())
}

/// The request form of metadata entries: the item fields of the v3 request
/// (`key`, `value`, `viewPermissions` from the schema; `visible` from its
/// request example, confirmed in the notes). Output-only fields are left out.
/// `visible` is always sent: metadata is replaced whole, so leaving it out
/// would reset it at Cryptlex.
fn metadata_request(entries: &[LicensingMetadata]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|m| {
                json!({
                    "key": m.key,
                    "value": m.value,
                    "viewPermissions": m.view_permissions,
                    "visible": m.visible,
                })
            })
            .collect(),
    )
}

/// The trial policy; clearing it sends `""` (the schema's string of 0-256
/// characters: no trials).
fn trial_policy(licensing: &LicensingProfile) -> Value {
    Value::from(licensing.trial_policy_id.clone())
}

fn description(product: &Product, path: &str) -> Result<Value, AdapterError> {
    non_empty(&product.description)
        .map(Value::from)
        .ok_or_else(|| AdapterError::Unsupported {
            vendor: VENDOR,
            path: path.into(),
            reason: "Cryptlex descriptions are 1-256 characters, so one cannot be cleared".into(),
        })
}

impl Adapter for Cryptlex {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    fn import(&self, product_json: &Value) -> Result<Product, AdapterError> {
        object(VENDOR, product_json)?;
        let parsed: ProductJson =
            serde_path_to_error::deserialize(product_json).map_err(|e| bad_json(VENDOR, e.to_string()))?;
        let mut metadata = Vec::new();
        for (i, entry) in parsed.metadata.unwrap_or_default().into_iter().enumerate() {
            let at = format!("metadata[{i}]");
            metadata.push(LicensingMetadata {
                key: entry.key.unwrap_or_default(),
                value: entry.value.unwrap_or_default(),
                visible: entry.visible.unwrap_or_default(),
                view_permissions: entry.view_permissions.unwrap_or_default(),
                id: entry.id.unwrap_or_default(),
                vendor_create_time: time(entry.created_at, &format!("{at}.createdAt"))?,
                vendor_update_time: time(entry.updated_at, &format!("{at}.updatedAt"))?,
                vendor_fields: to_struct(entry.other, &format!("licensing.metadata[{i}].vendor_fields"))
                    .map_err(|e| bad_json(VENDOR, e))?,
            });
        }
        let name = parsed.name.unwrap_or_default();
        Ok(Product {
            display_name: parsed.display_name.unwrap_or_else(|| name.clone()),
            description: parsed.description.unwrap_or_default(),
            licensing: Some(LicensingProfile {
                name,
                license_template_id: parsed.license_template_id.unwrap_or_default(),
                trial_policy_id: parsed.trial_policy_id.unwrap_or_default(),
                automated_emails: parsed.automated_emails.unwrap_or_default(),
                metadata,
                product_id: parsed.id.unwrap_or_default(),
                public_key: parsed.public_key.unwrap_or_default(),
                icon_url: parsed.icon_url.unwrap_or_default(),
                total_licenses: parsed.total_licenses.unwrap_or_default(),
                total_trial_activations: parsed.total_trial_activations.unwrap_or_default(),
                total_releases: parsed.total_releases.unwrap_or_default(),
                total_product_versions: parsed.total_product_versions.unwrap_or_default(),
                total_feature_flags: parsed.total_feature_flags.unwrap_or_default(),
                vendor_create_time: time(parsed.created_at, "createdAt")?,
                vendor_update_time: time(parsed.updated_at, "updatedAt")?,
                vendor_fields: to_struct(parsed.other, "licensing.vendor_fields").map_err(|e| bad_json(VENDOR, e))?,
            }),
            ..Default::default()
        })
    }

    fn export(&self, product: &Product) -> Result<Value, AdapterError> {
        let l = licensing(product)?;
        let mut out = from_struct(l.vendor_fields.as_ref());
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        };
        put("id", non_empty(&l.product_id).map(Value::from));
        put("createdAt", l.vendor_create_time.as_ref().map(|t| to_rfc3339(t).into()));
        put("updatedAt", l.vendor_update_time.as_ref().map(|t| to_rfc3339(t).into()));
        put("name", non_empty(&l.name).map(Value::from));
        put("displayName", non_empty(&product.display_name).map(Value::from));
        put("description", non_empty(&product.description).map(Value::from));
        put("publicKey", non_empty(&l.public_key).map(Value::from));
        put("totalLicenses", Some(l.total_licenses.into()));
        put("totalTrialActivations", Some(l.total_trial_activations.into()));
        put("totalReleases", Some(l.total_releases.into()));
        put("totalProductVersions", Some(l.total_product_versions.into()));
        put("totalFeatureFlags", Some(l.total_feature_flags.into()));
        put("automatedEmails", Some(json!(l.automated_emails)));
        put("licenseTemplateId", non_empty(&l.license_template_id).map(Value::from));
        // The product object says `null` for no trial policy.
        put(
            "trialPolicyId",
            Some(non_empty(&l.trial_policy_id).map(Value::from).unwrap_or(Value::Null)),
        );
        put("iconUrl", non_empty(&l.icon_url).map(Value::from));
        let metadata = l
            .metadata
            .iter()
            .map(|m| {
                let mut entry = from_struct(m.vendor_fields.as_ref());
                if let Some(id) = non_empty(&m.id) {
                    entry.insert("id".into(), id.into());
                }
                if let Some(t) = &m.vendor_create_time {
                    entry.insert("createdAt".into(), to_rfc3339(t).into());
                }
                if let Some(t) = &m.vendor_update_time {
                    entry.insert("updatedAt".into(), to_rfc3339(t).into());
                }
                entry.insert("key".into(), m.key.clone().into());
                entry.insert("value".into(), m.value.clone().into());
                entry.insert("viewPermissions".into(), json!(m.view_permissions));
                entry.insert("visible".into(), m.visible.into());
                Value::Object(entry)
            })
            .collect();
        put("metadata", Some(Value::Array(metadata)));
        Ok(Value::Object(out))
    }

    fn create(&self, product: &Product, _settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let l = licensing(product)?;
        check_vendor_rules(self, product)?;
        let mut body = Map::new();
        body.insert("name".into(), cryptlex_name(product, l).into());
        body.insert("displayName".into(), product.display_name.clone().into());
        if !product.description.is_empty() {
            body.insert("description".into(), product.description.clone().into());
        }
        body.insert("licenseTemplateId".into(), l.license_template_id.clone().into());
        if !l.trial_policy_id.is_empty() {
            body.insert("trialPolicyId".into(), l.trial_policy_id.clone().into());
        }
        if !l.metadata.is_empty() {
            body.insert("metadata".into(), metadata_request(&l.metadata));
        }
        Ok(VendorRequest {
            method: Method::Post,
            path: PRODUCTS_PATH.into(),
            query: Vec::new(),
            body: Some(Value::Object(body)),
        })
    }

    fn update(
        &self,
        product: &Product,
        mask: &UpdateMask,
        _settings: &VendorSettings,
        _last_known: Option<&Value>,
    ) -> Result<Option<VendorRequest>, AdapterError> {
        let l = licensing(product)?;
        let mut body = Map::new();
        // The profile's fields; `clear` sends empty ones too (the change
        // named the profile), otherwise they are left alone at Cryptlex.
        let whole_profile = |body: &mut Map<String, Value>, clear: bool| {
            body.insert("name".into(), cryptlex_name(product, l).into());
            body.insert("licenseTemplateId".into(), l.license_template_id.clone().into());
            if clear || !l.trial_policy_id.is_empty() {
                body.insert("trialPolicyId".into(), trial_policy(l));
            }
            if clear || !l.metadata.is_empty() {
                body.insert("metadata".into(), metadata_request(&l.metadata));
            }
        };
        // A whole resend (SyncProduct, a `*` update) carries what producthub
        // holds, never an empty value as filler: that would erase what was
        // set at Cryptlex.
        if matches!(mask, UpdateMask::Full) {
            body.insert("displayName".into(), product.display_name.clone().into());
            if !product.description.is_empty() {
                body.insert("description".into(), product.description.clone().into());
            }
            whole_profile(&mut body, false);
        }
        for path in mask.effective_paths() {
            let names: Vec<&str> = path.field_names().collect();
            match names.as_slice() {
                ["display_name"] => {
                    body.insert("displayName".into(), product.display_name.clone().into());
                    if l.name.is_empty() {
                        body.insert("name".into(), product.display_name.clone().into());
                    }
                }
                ["description"] => {
                    body.insert("description".into(), description(product, path.as_str())?);
                }
                ["licensing"] => whole_profile(&mut body, true),
                ["licensing", "name"] => {
                    body.insert("name".into(), cryptlex_name(product, l).into());
                }
                ["licensing", "license_template_id"] => {
                    body.insert("licenseTemplateId".into(), l.license_template_id.clone().into());
                }
                ["licensing", "trial_policy_id"] => {
                    body.insert("trialPolicyId".into(), trial_policy(l));
                }
                // The v3 request schema has no automatedEmails (the notes
                // infer it for create only): kept in producthub, not sent.
                ["licensing", "automated_emails"] => {}
                ["licensing", "metadata"] => {
                    body.insert("metadata".into(), metadata_request(&l.metadata));
                }
                // Other fields (other profiles, labels, vendor_fields) are not
                // Cryptlex's to change.
                _ => {}
            }
        }
        if body.is_empty() {
            return Ok(None);
        }
        check_vendor_rules(self, product)?;
        Ok(Some(VendorRequest {
            method: Method::Patch,
            path: product_path(product)?,
            query: Vec::new(),
            body: Some(Value::Object(body)),
        }))
    }

    fn delete(&self, product: &Product, _settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        Ok(VendorRequest {
            method: Method::Delete,
            path: product_path(product)?,
            query: Vec::new(),
            body: None,
        })
    }

    fn get(&self, product: &Product, _settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        Ok(VendorRequest {
            method: Method::Get,
            path: product_path(product)?,
            query: Vec::new(),
            body: None,
        })
    }

    fn read_product(&self, response: VendorResponse<'_>) -> Result<Value, VendorError> {
        read_product_object(self, response)
    }

    fn read_created_id(&self, response: VendorResponse<'_>) -> Result<String, VendorError> {
        read_object_id(self, response)
    }

    fn read_list(&self, response: VendorResponse<'_>) -> Result<VendorPage, VendorError> {
        if let Some(error) = self.read_error(response) {
            return Err(error);
        }
        match serde_json::from_slice::<Value>(response.body) {
            Ok(Value::Array(products)) => Ok(VendorPage { products, total: None }),
            Ok(_) => Err(unreadable(VENDOR, response, "a product list is a JSON array".into())),
            Err(e) => Err(unreadable(VENDOR, response, e.to_string())),
        }
    }

    /// `GET /v3/products?page=&limit=` (page from 1), until an empty page.
    fn list(&self, page: u32, _settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        Ok(VendorRequest {
            method: Method::Get,
            path: PRODUCTS_PATH.into(),
            query: vec![
                ("page", (page + 1).to_string()),
                ("limit", self.page_size().to_string()),
            ],
            body: None,
        })
    }

    /// `limit` is 1-100 in Cryptlex's own clients.
    fn page_size(&self) -> u32 {
        100
    }

    fn read_error(&self, response: VendorResponse<'_>) -> Option<VendorError> {
        if (200..300).contains(&response.status) {
            return None;
        }
        let parsed: Option<Value> = serde_json::from_slice(response.body).ok();
        let field = |name: &str| {
            parsed.as_ref().and_then(|v| v.get(name)).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Some(VendorError {
            vendor: VENDOR,
            kind: kind_from_http_status(response.status),
            http_status: Some(response.status),
            code: field("code"),
            message: field("message").unwrap_or_else(|| truncated_text(response.body)),
            retry_after: parse_retry_after(response.retry_after),
            request_id: None,
        })
    }

    profile_place!(licensing, product_id);

    fn limit_violations(&self, product: &Product) -> Vec<crate::domain::FieldViolation> {
        limits::violations(product)
    }

    fn concerns(&self, top_level_field: &str) -> bool {
        matches!(top_level_field, "display_name" | "description" | "licensing")
    }
}

#[cfg(test)]
mod tests;
