//! Translation between the canonical product and each vendor's product API.
//!
//! One module per vendor, all pure: they build HTTP requests (method, path,
//! JSON body) and read responses, but never send anything and never touch
//! storage. The sync engine and the RenderVendorCall RPC drive them through the
//! [`Adapter`] trait.
//!
//! Every adapter is lossless for the vendor's product object: fields we model
//! land in the profile's typed fields, everything else in its `vendor_fields`
//! struct, and [`Adapter::export`] puts both back. Documented limits of that
//! promise (null, absent and empty read the same for documented fields) are in
//! `docs/vendor-mappings.md`.

pub mod cryptlex;
pub mod enos;
mod json;
pub mod mapping;
pub mod revenium;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::domain::FieldViolation;
use crate::domain::field_mask::UpdateMask;
use crate::domain::validation::{Profile, vendor_violations};
use crate::pb::Product;

/// A vendor producthub speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vendor {
    Enos,
    Cryptlex,
    Revenium,
}

impl Vendor {
    pub const ALL: [Vendor; 3] = [Vendor::Enos, Vendor::Cryptlex, Vendor::Revenium];

    /// The canonical profile field this vendor's data lives in.
    pub fn profile_field(self) -> &'static str {
        match self {
            Vendor::Enos => "iot",
            Vendor::Cryptlex => "licensing",
            Vendor::Revenium => "monetization",
        }
    }

    /// Whether the product has this vendor's profile.
    pub fn has_profile(self, product: &Product) -> bool {
        match self {
            Vendor::Enos => product.iot.is_some(),
            Vendor::Cryptlex => product.licensing.is_some(),
            Vendor::Revenium => product.monetization.is_some(),
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vendor::Enos => "EnOS",
            Vendor::Cryptlex => "Cryptlex",
            Vendor::Revenium => "Revenium",
        })
    }
}

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
            out.push_str(&json::encode_query_value(value));
        }
        out
    }

    /// The body exactly as it is sent (compact JSON), or empty.
    pub fn body_text(&self) -> String {
        self.body.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

/// Deployment settings the vendors' URLs and bodies need, when the product does
/// not carry them itself.
#[derive(Debug, Clone, Default)]
pub struct VendorSettings {
    /// EnOS organization id (`orgId`), used when the product has no `iot.org_id`.
    pub enos_org_id: Option<String>,
    /// Revenium team id (`teamId`), used when the product has no `monetization.team_id`.
    pub revenium_team_id: Option<String>,
    /// Revenium owner id (`ownerId`), used when the product has no `monetization.owner_id`.
    pub revenium_owner_id: Option<String>,
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
#[error("{vendor} error{}{}: {message}", .http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), .code.as_ref().map(|c| format!(" code {c}")).unwrap_or_default())]
pub struct VendorError {
    pub vendor: Vendor,
    pub kind: VendorErrorKind,
    pub http_status: Option<u16>,
    /// The vendor's own error code, when it sends one.
    pub code: Option<String>,
    pub message: String,
    /// How long the vendor asked us to wait (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
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

    /// The vendor's error in a response, or `None` for a success.
    fn read_error(&self, response: VendorResponse<'_>) -> Option<VendorError>;

    /// Whether a change under this top-level canonical field concerns the vendor.
    fn concerns(&self, top_level_field: &str) -> bool;
}

/// The adapter of a vendor.
pub fn adapter(vendor: Vendor) -> &'static dyn Adapter {
    match vendor {
        Vendor::Enos => &enos::Enos,
        Vendor::Cryptlex => &cryptlex::Cryptlex,
        Vendor::Revenium => &revenium::Revenium,
    }
}

/// The vendors an update touches: those whose profile the product has (before
/// or after) and whose fields the mask names. Common fields such as
/// `display_name` touch every such vendor; `licensing.*` only Cryptlex.
pub fn touched_vendors(before: &Product, after: &Product, mask: &UpdateMask) -> BTreeSet<Vendor> {
    Vendor::ALL
        .into_iter()
        .filter(|v| v.has_profile(before) || v.has_profile(after))
        .filter(|v| mask_concerns(adapter(*v), mask))
        .collect()
}

// ---- helpers shared by the vendor modules --------------------------------

/// The vendor's documented constraints, checked before any request is built.
fn check_vendor_rules(vendor: Vendor, product: &Product) -> Result<(), AdapterError> {
    let profile = match vendor {
        Vendor::Enos => Profile::Iot,
        Vendor::Cryptlex => Profile::Licensing,
        Vendor::Revenium => Profile::Monetization,
    };
    let violations = vendor_violations(product, profile);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AdapterError::Invalid { vendor, violations })
    }
}

/// The HTTP-status part of error classification, common to the three APIs.
fn kind_from_http_status(status: u16) -> VendorErrorKind {
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
fn parse_retry_after(header: Option<&str>) -> Option<Duration> {
    header
        .and_then(|h| h.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// At most this much of a vendor's plain-text error body is kept.
const MAX_ERROR_TEXT: usize = 1024;

fn truncated_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn bad_json(vendor: Vendor, reason: impl Into<String>) -> AdapterError {
    AdapterError::BadJson {
        vendor,
        reason: reason.into(),
    }
}

/// A JSON object's fields, or a clear error for anything else.
fn object(vendor: Vendor, value: &Value) -> Result<serde_json::Map<String, Value>, AdapterError> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        other => Err(bad_json(
            vendor,
            format!("expected a JSON object, found {}", json_type(other)),
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
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
fn mask_concerns(adapter: &dyn Adapter, mask: &UpdateMask) -> bool {
    match mask {
        UpdateMask::Full => true,
        UpdateMask::Paths(_) => mask
            .effective_paths()
            .filter_map(|p| p.field_names().next())
            .any(|top| adapter.concerns(top)),
    }
}

/// A plain-REST response's product object (Cryptlex, Revenium), or the error.
fn read_product_object(adapter: &dyn Adapter, response: VendorResponse<'_>) -> Result<Value, VendorError> {
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
fn read_object_id(adapter: &dyn Adapter, response: VendorResponse<'_>) -> Result<String, VendorError> {
    match read_product_object(adapter, response)?.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(unreadable(adapter.vendor(), response, "the product has no `id`".into())),
    }
}

/// A response body that should be JSON but is not, as a vendor error.
fn unreadable(vendor: Vendor, response: VendorResponse<'_>, why: String) -> VendorError {
    VendorError {
        vendor,
        kind: VendorErrorKind::Unknown,
        http_status: Some(response.status),
        code: None,
        message: format!("unreadable response: {why}"),
        retry_after: None,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Generators shared by the adapters' property tests.

    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// Any JSON value a vendor might send in a field we do not model. Numbers are
    /// integers or fractions (a whole number written as `1.0` comes back as `1`).
    pub fn unknown_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            (-1000i32..1000).prop_map(|n| Value::from(f64::from(n) + 0.25)),
            "[a-zA-Z0-9 ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Fields no vendor documents (`x_` keeps them clear of real names).
    pub fn unknown_fields() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map("x_[a-z]{1,8}", unknown_value(), 0..4).prop_map(|m| m.into_iter().collect())
    }

    /// Any JSON at all, for the never-panic properties.
    pub fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        "[a-zA-Z]{1,24}".boxed(),
                        proptest::sample::select(KNOWN_NAMES.to_vec())
                            .prop_map(String::from)
                            .boxed(),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An update mask from paths that are known to be valid.
    pub fn mask(paths: &[&str]) -> crate::domain::field_mask::UpdateMask {
        crate::domain::field_mask::UpdateMask::parse(&paths.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .expect("test masks are valid")
    }

    /// A vendor response as the adapters see it.
    pub fn response<'a>(status: u16, retry_after: Option<&'a str>, body: &'a [u8]) -> super::VendorResponse<'a> {
        super::VendorResponse {
            status,
            retry_after,
            body,
        }
    }

    /// Documented field names, so arbitrary JSON hits the typed paths too.
    const KNOWN_NAMES: &[&str] = &[
        "productName",
        "productKey",
        "productTags",
        "modelId",
        "productType",
        "dataFormat",
        "biDirectionalAuth",
        "dynamicActiveEnabled",
        "createTime",
        "defaultValidDay",
        "i18nValue",
        "defaultValue",
        "code",
        "data",
        "id",
        "name",
        "displayName",
        "metadata",
        "key",
        "value",
        "visible",
        "viewPermissions",
        "createdAt",
        "trialPolicyId",
        "totalLicenses",
        "team",
        "owner",
        "plan",
        "tiers",
        "upTo",
        "type",
        "period",
        "elements",
        "ratingAggregations",
        "paymentSource",
        "published",
        "tags",
    ];
}

#[cfg(test)]
mod tests {
    use super::test_support::mask;
    use super::*;
    use crate::pb::{IotProfile, LicensingProfile, MonetizationProfile};

    fn all_profiles() -> Product {
        Product {
            iot: Some(IotProfile::default()),
            licensing: Some(LicensingProfile::default()),
            monetization: Some(MonetizationProfile::default()),
            ..Default::default()
        }
    }

    #[test]
    fn masks_touch_the_vendors_whose_fields_they_name() {
        let p = all_profiles();
        let touched = |paths: &[&str]| touched_vendors(&p, &p, &mask(paths)).into_iter().collect::<Vec<_>>();
        assert_eq!(touched(&["licensing.trial_policy_id"]), [Vendor::Cryptlex]);
        assert_eq!(touched(&["display_name"]), Vendor::ALL);
        assert_eq!(touched(&["localized_display_names"]), [Vendor::Enos]);
        assert_eq!(touched(&["version"]), [Vendor::Revenium]);
        assert_eq!(touched(&["labels.env"]), []);
        assert_eq!(touched(&["uid", "create_time"]), [], "output-only paths touch nothing");
        assert_eq!(touched(&["*"]), Vendor::ALL);
    }

    #[test]
    fn only_vendors_with_a_profile_are_touched() {
        let before = Product {
            iot: Some(IotProfile::default()),
            ..Default::default()
        };
        let after = Product::default();
        // Removing the iot profile touches EnOS (the product must go there).
        assert_eq!(
            touched_vendors(&before, &after, &mask(&["iot"]))
                .into_iter()
                .collect::<Vec<_>>(),
            [Vendor::Enos]
        );
        assert!(touched_vendors(&after, &after, &mask(&["display_name"])).is_empty());
    }

    #[test]
    fn query_strings_are_encoded() {
        let request = VendorRequest {
            method: Method::Get,
            path: "/p".into(),
            query: vec![("orgId", "o 1&x".into()), ("productKey", "k".into())],
            body: None,
        };
        assert_eq!(request.path_and_query(), "/p?orgId=o%201%26x&productKey=k");
        assert_eq!(request.body_text(), "");
    }

    #[test]
    fn retryable_kinds() {
        let error = |kind| VendorError {
            vendor: Vendor::Enos,
            kind,
            http_status: None,
            code: None,
            message: String::new(),
            retry_after: None,
        };
        assert!(error(VendorErrorKind::RateLimited).is_retryable());
        assert!(error(VendorErrorKind::Unavailable).is_retryable());
        assert!(error(VendorErrorKind::TokenExpired).is_retryable());
        assert!(!error(VendorErrorKind::InvalidArgument).is_retryable());
        assert!(!error(VendorErrorKind::FailedPrecondition).is_retryable());
        assert!(!error(VendorErrorKind::Unknown).is_retryable());
    }
}
