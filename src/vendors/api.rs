//! What every vendor integration speaks, whoever the vendor is: the request
//! and response shapes, the errors, and the [`Adapter`] trait each vendor's
//! folder implements. Nothing here names a vendor; the registry
//! (`vendors/mod.rs`) is the one place that lists them.

use std::time::Duration;

use serde_json::Value;

use super::{Vendor, VendorSettings};
use crate::domain::FieldViolation;
use crate::domain::field_mask::UpdateMask;
use crate::pb::Product;

/// HTTP methods the vendors' product APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One HTTP request to a vendor, relative to its base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorRequest {
    pub method: Method,
    /// The path without query, e.g. `/v3/products/abc`.
    pub path: String,
    /// Query parameters in the order they are sent.
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl VendorRequest {
    /// Path and percent-encoded query, e.g. `/connect-service/v2.1/products?action=get&orgId=o`.
    pub fn path_and_query(&self) -> String {
        let mut out = self.path.clone();
        for (i, (key, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(key);
            out.push('=');
            out.push_str(&super::json::encode_query_value(value));
        }
        out
    }

    /// The body exactly as it is sent (compact JSON), or empty.
    pub fn body_text(&self) -> String {
        self.body.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

/// Why an adapter cannot produce a request or read a vendor's JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The product breaks the vendor's documented constraints.
    #[error("{vendor} would refuse this product: {}", crate::domain::join_violations(.violations))]
    Invalid {
        vendor: Vendor,
        violations: Vec<FieldViolation>,
    },
    /// Something the call needs is missing (a remote id, a configured id).
    #[error("{vendor}: {reason}")]
    NotReady { vendor: Vendor, reason: String },
    /// The change cannot be expressed in the vendor's API.
    #[error("{vendor} cannot apply {path}: {reason}")]
    Unsupported {
        vendor: Vendor,
        path: String,
        reason: String,
    },
    /// The vendor's JSON is not what its API documents.
    #[error("invalid {vendor} product JSON: {reason}")]
    BadJson { vendor: Vendor, reason: String },
}

/// What kind of failure a vendor reported, independent of its wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorErrorKind {
    InvalidArgument,
    NotFound,
    /// The vendor refuses because of the state of things (e.g. an EnOS product
    /// that still has devices).
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    RateLimited,
    /// A transient server-side failure.
    Unavailable,
    /// An access token expired: retry after getting a new one.
    TokenExpired,
    Unknown,
}

/// An error reported by a vendor, normalised across the three APIs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{vendor} error{}{}: {message}{}",
    .http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
    .code.as_ref().map(|c| format!(" code {c}")).unwrap_or_default(),
    .request_id.as_ref().map(|id| format!(" (request id {id})")).unwrap_or_default()
)]
pub struct VendorError {
    pub vendor: Vendor,
    pub kind: VendorErrorKind,
    pub http_status: Option<u16>,
    /// The vendor's own error code, when it sends one.
    pub code: Option<String>,
    pub message: String,
    /// How long the vendor asked us to wait (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The vendor's id for the failed call, when it sends one (EnOS
    /// `requestId`): what its support asks for.
    pub request_id: Option<String>,
}

impl VendorError {
    /// Whether sending the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            VendorErrorKind::RateLimited | VendorErrorKind::Unavailable | VendorErrorKind::TokenExpired
        )
    }
}

/// What a vendor's HTTP response looked like, as the adapters need it.
#[derive(Debug, Clone, Copy)]
pub struct VendorResponse<'a> {
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

/// One page of a vendor's product list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VendorPage {
    /// The vendor's product objects, as they came.
    pub products: Vec<Value>,
    /// The total number of products, when the vendor says.
    pub total: Option<u64>,
}

/// What a vendor's webhook announced (after its signature checked out).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The vendor's event name, e.g. `product.updated`.
    pub event: String,
    /// The product copy it concerns; `None` for events about other things.
    pub remote_id: Option<String>,
}

/// Why a webhook call is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookRefusal {
    /// This server takes no webhooks from the vendor (no token configured).
    #[error("webhooks from this vendor are not configured here")]
    NotConfigured,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("{0}")]
    Malformed(String),
}

/// The translation interface every vendor module implements.
pub trait Adapter: Sync {
    fn vendor(&self) -> Vendor;

    /// The vendor's product object (as its get/list API returns it) as a
    /// canonical product: common fields plus this vendor's profile.
    fn import(&self, product_json: &Value) -> Result<Product, AdapterError>;

    /// The canonical product as the vendor's product object: the inverse of
    /// [`Adapter::import`] for every field the vendor returned.
    fn export(&self, product: &Product) -> Result<Value, AdapterError>;

    /// The request creating the product at the vendor.
    fn create(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError>;

    /// The request sending the change named by `mask`; `None` when the mask
    /// touches nothing this vendor holds. `last_known` is the vendor's current
    /// product object, for vendors whose update replaces the whole product.
    fn update(
        &self,
        product: &Product,
        mask: &UpdateMask,
        settings: &VendorSettings,
        last_known: Option<&Value>,
    ) -> Result<Option<VendorRequest>, AdapterError>;

    /// The request deleting the product at the vendor.
    fn delete(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError>;

    /// The request reading the product from the vendor.
    fn get(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError>;

    /// The vendor's product object from a get/create/update response, or the
    /// vendor's error.
    fn read_product(&self, response: VendorResponse<'_>) -> Result<Value, VendorError>;

    /// The id the vendor gave a product it created (EnOS productKey, Cryptlex
    /// id, Revenium id), or the vendor's error.
    fn read_created_id(&self, response: VendorResponse<'_>) -> Result<String, VendorError>;

    /// A page of the vendor's product list, or the vendor's error.
    fn read_list(&self, response: VendorResponse<'_>) -> Result<VendorPage, VendorError>;

    /// The request for page `page` (counted from 0; each vendor maps it to its
    /// own numbering) of the vendor's product list, [`Adapter::page_size`]
    /// products a page.
    fn list(&self, page: u32, settings: &VendorSettings) -> Result<VendorRequest, AdapterError>;

    /// How many products a list request asks for: within the vendor's limit.
    fn page_size(&self) -> u32;

    /// The vendor's error in a response, or `None` for a success.
    fn read_error(&self, response: VendorResponse<'_>) -> Option<VendorError>;

    /// Whether a change under this top-level canonical field concerns the vendor.
    fn concerns(&self, top_level_field: &str) -> bool;

    // ---- the vendor's place in the canonical product ----------------------

    /// The canonical profile field this vendor's data lives in (`iot`, ...).
    fn profile_field(&self) -> &'static str;

    /// Whether the product has this vendor's profile.
    fn has_profile(&self, product: &Product) -> bool;

    /// Gives the product (at least) an empty profile of this vendor, so a
    /// request can address the vendor's copy after the profile was removed.
    fn ensure_profile(&self, product: &mut Product);

    /// The vendor's id for the product as its profile holds it, if set.
    fn remote_id(&self, product: &Product) -> Option<String>;

    /// Sets the vendor's id in the product's profile; creates no profile.
    fn set_remote_id(&self, product: &mut Product, remote_id: &str);

    /// The vendor's documented limits on its profile and on the common fields
    /// it receives (its `limits.rs`), for a product that has the profile.
    fn limit_violations(&self, product: &Product) -> Vec<FieldViolation>;

    /// What this vendor would refuse in `product`: the schema rules of its
    /// profile, the display name it requires, and its documented limits.
    /// Empty when the product lacks the profile.
    fn violations(&self, product: &Product) -> Vec<FieldViolation> {
        if !self.has_profile(product) {
            return Vec::new();
        }
        let mut out = profile_violations(self, product);
        out.extend(self.limit_violations(product));
        out
    }

    // ---- how the vendor's API behaves ---------------------------------------

    /// Whether an update replaces the vendor's whole product, so the current
    /// copy must be read (GET) and merged before it is sent.
    fn reads_before_update(&self) -> bool {
        false
    }

    /// Whether a create's or update's answer is the vendor's product object
    /// (with what the vendor assigned); otherwise it carries only an id and
    /// the copy is read to learn it.
    fn answers_with_the_product(&self) -> bool {
        true
    }

    /// Canonical paths the vendor's API sets by itself on every write (a
    /// counter the vendor increments), so they never read as a change made
    /// at the vendor. They are still sent and adopted as they always were.
    fn vendor_counted_paths(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether an error to a delete means the copy is already gone.
    fn is_gone(&self, error: &VendorError) -> bool {
        error.kind == VendorErrorKind::NotFound
    }
}

/// The vendor's documented constraints, checked before any request is built.
pub(super) fn check_vendor_rules(adapter: &dyn Adapter, product: &Product) -> Result<(), AdapterError> {
    let violations = adapter.violations(product);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AdapterError::Invalid {
            vendor: adapter.vendor(),
            violations,
        })
    }
}

/// The schema rules of the vendor's profile and the display name every
/// vendor requires: the part of a vendor's rules common to all of them.
fn profile_violations<A: Adapter + ?Sized>(adapter: &A, product: &Product) -> Vec<FieldViolation> {
    let mut out = crate::domain::validation::profile_schema_violations(product, adapter.profile_field());
    if product.display_name.is_empty() {
        out.push(FieldViolation::new("product.display_name", "is required"));
    }
    out
}

// ---- helpers shared by the vendor modules --------------------------------

/// The [`Adapter`] methods that place a vendor in the canonical product: its
/// profile is `Product.$profile`, and the vendor's id for the product is that
/// profile's `$id` field.
macro_rules! profile_place {
    ($profile:ident, $id:ident) => {
        fn profile_field(&self) -> &'static str {
            stringify!($profile)
        }

        fn has_profile(&self, product: &Product) -> bool {
            product.$profile.is_some()
        }

        fn ensure_profile(&self, product: &mut Product) {
            product.$profile.get_or_insert_with(Default::default);
        }

        fn remote_id(&self, product: &Product) -> Option<String> {
            product
                .$profile
                .as_ref()
                .and_then(|p| $crate::vendors::non_empty(&p.$id))
        }

        fn set_remote_id(&self, product: &mut Product, remote_id: &str) {
            if let Some(profile) = product.$profile.as_mut() {
                profile.$id = remote_id.to_owned();
            }
        }
    };
}
pub(super) use profile_place;

/// The HTTP-status part of error classification, common to the three APIs.
pub(super) fn kind_from_http_status(status: u16) -> VendorErrorKind {
    match status {
        400 | 422 => VendorErrorKind::InvalidArgument,
        401 => VendorErrorKind::Unauthenticated,
        403 => VendorErrorKind::PermissionDenied,
        404 => VendorErrorKind::NotFound,
        409 => VendorErrorKind::FailedPrecondition,
        408 | 425 | 429 => VendorErrorKind::RateLimited,
        500..=599 => VendorErrorKind::Unavailable,
        _ => VendorErrorKind::Unknown,
    }
}

/// `Retry-After` in seconds; an HTTP-date is not honoured (none of the three
/// vendors documents sending one).
pub(super) fn parse_retry_after(header: Option<&str>) -> Option<Duration> {
    header
        .and_then(|h| h.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// At most this much of a vendor's plain-text error body is kept.
const MAX_ERROR_TEXT: usize = 1024;

pub(super) fn truncated_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) fn bad_json(vendor: Vendor, reason: impl Into<String>) -> AdapterError {
    AdapterError::BadJson {
        vendor,
        reason: reason.into(),
    }
}

/// A JSON object's fields, or a clear error for anything else.
pub(super) fn object(vendor: Vendor, value: &Value) -> Result<serde_json::Map<String, Value>, AdapterError> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        other => Err(bad_json(
            vendor,
            format!("expected a JSON object, found {}", json_type(other)),
        )),
    }
}

pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a mask names anything of this adapter's vendor.
pub(super) fn mask_concerns(adapter: &dyn Adapter, mask: &UpdateMask) -> bool {
    match mask {
        UpdateMask::Full => true,
        UpdateMask::Paths(_) => mask
            .effective_paths()
            .filter_map(|p| p.field_names().next())
            .any(|top| adapter.concerns(top)),
    }
}

/// A plain-REST response's product object (Cryptlex, Revenium), or the error.
pub(super) fn read_product_object(adapter: &dyn Adapter, response: VendorResponse<'_>) -> Result<Value, VendorError> {
    if let Some(error) = adapter.read_error(response) {
        return Err(error);
    }
    match serde_json::from_slice::<Value>(response.body) {
        Ok(product @ Value::Object(_)) => Ok(product),
        Ok(_) => Err(unreadable(adapter.vendor(), response, "not a product object".into())),
        Err(e) => Err(unreadable(adapter.vendor(), response, e.to_string())),
    }
}

/// The `id` of the product object in a plain-REST create response.
pub(super) fn read_object_id(adapter: &dyn Adapter, response: VendorResponse<'_>) -> Result<String, VendorError> {
    match read_product_object(adapter, response)?.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(unreadable(adapter.vendor(), response, "the product has no `id`".into())),
    }
}

/// A response body that should be JSON but is not, as a vendor error.
pub(super) fn unreadable(vendor: Vendor, response: VendorResponse<'_>, why: String) -> VendorError {
    VendorError {
        vendor,
        kind: VendorErrorKind::Unknown,
        http_status: Some(response.status),
        code: None,
        message: format!("unreadable response: {why}"),
        retry_after: None,
        request_id: None,
    }
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
