//! The vendors producthub keeps in agreement with the canonical product, each
//! in a folder of its own, and the registry that lists them: this file (the
//! `Vendor` enum and every per-vendor dispatch), `config.rs` (each vendor's
//! settings and flags) and `mapping.rs` (each vendor's table). A new vendor is a
//! new folder plus a line in each of these three files.
//!
//! A vendor's folder holds everything about that vendor: its JSON shapes and
//! field mapping table, import and export, request building, response and
//! error reading (`mod.rs`), its authentication (`auth.rs`), its settings and
//! command-line flags (`config.rs`), its documented limits (`limits.rs`) and
//! its tests. Its module doc states the vendor API's own constraints.
//!
//! - [`api`]: what every vendor speaks (requests, responses, errors, the
//!   [`Adapter`] trait); names no vendor.
//! - [`http`]: sends a built request over HTTPS (reqwest, rustls).
//! - [`listing`]: reads a vendor's whole catalog, page by page, with retries.
//! - [`fingerprint`]: a digest of a vendor's copy, and how two copies differ
//!   (drift).
//! - [`config`]: which vendors are configured ([`VendorsConfig`], [`Secret`],
//!   [`VendorSettings`]).
//! - `json`: passthrough structs, numbers, times; [`mapping`]: the field
//!   tables rendered into `docs/vendor-mappings.md`.
//!
//! Adapters are pure: they build requests and read responses, never send
//! anything and never touch storage; [`Connections`] sends, adding each
//! vendor's authentication. Every adapter is lossless for the vendor's product
//! object: fields we model land in the profile's typed fields, everything else
//! in its `vendor_fields` struct, and [`Adapter::export`] puts both back.
//! Documented limits of that promise (null, absent and empty read the same for
//! documented fields) are in `docs/vendor-mappings.md`.

pub mod api;
pub mod config;
pub mod cryptlex;
pub mod enos;
pub mod fingerprint;
pub mod http;
mod json;
pub mod listing;
pub mod mapping;
pub mod revenium;

use std::collections::BTreeSet;
use std::fmt;

pub use api::{
    Adapter, AdapterError, Method, VendorError, VendorErrorKind, VendorPage, VendorRequest, VendorResponse,
    WebhookEvent, WebhookRefusal,
};
use api::{
    bad_json, check_vendor_rules, kind_from_http_status, mask_concerns, non_empty, object, parse_retry_after,
    profile_place, read_object_id, read_product_object, truncated_text, unreadable,
};
pub use config::{Secret, VendorArgs, VendorSettings, VendorsConfig};
pub use http::Reply;
pub use listing::{ListError, ListRetry, Listing};

use crate::domain::FieldViolation;
use crate::domain::field_mask::UpdateMask;
use crate::domain::{sync_plan, validation};
use crate::pb::{self, Product};

/// A vendor producthub speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vendor {
    Enos,
    Cryptlex,
    Revenium,
}

impl Vendor {
    pub const ALL: [Vendor; 3] = [Vendor::Enos, Vendor::Cryptlex, Vendor::Revenium];

    /// The vendor's adapter: everything producthub knows of its API.
    pub fn adapter(self) -> &'static dyn Adapter {
        match self {
            Vendor::Enos => &enos::Enos,
            Vendor::Cryptlex => &cryptlex::Cryptlex,
            Vendor::Revenium => &revenium::Revenium,
        }
    }

    /// The API's name for the vendor.
    pub fn to_pb(self) -> pb::Vendor {
        match self {
            Vendor::Enos => pb::Vendor::Enos,
            Vendor::Cryptlex => pb::Vendor::Cryptlex,
            Vendor::Revenium => pb::Vendor::Revenium,
        }
    }

    /// The vendor an API value names; `None` for UNSPECIFIED or unknown values.
    pub fn from_pb(value: i32) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.to_pb() as i32 == value)
    }

    /// The canonical profile field this vendor's data lives in.
    pub fn profile_field(self) -> &'static str {
        self.adapter().profile_field()
    }

    /// Whether the product has this vendor's profile.
    pub fn has_profile(self, product: &Product) -> bool {
        self.adapter().has_profile(product)
    }

    /// The command-line flags that configure the vendor, for messages that
    /// tell an operator how to enable it.
    pub fn enabling_flags(self) -> &'static str {
        match self {
            Vendor::Enos => enos::ENABLING_FLAGS,
            Vendor::Cryptlex => cryptlex::ENABLING_FLAGS,
            Vendor::Revenium => revenium::ENABLING_FLAGS,
        }
    }

    /// The API enum names of every vendor, for error messages
    /// (`VENDOR_A, VENDOR_B or VENDOR_C`).
    pub fn api_names() -> String {
        let names: Vec<&str> = Vendor::ALL.iter().map(|v| v.to_pb().as_str_name()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
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

/// The vendors an update touches: those whose profile the product has (before
/// or after) and whose fields the mask names. Common fields such as
/// `display_name` touch every such vendor; `licensing.*` only Cryptlex.
pub fn touched_vendors(before: &Product, after: &Product, mask: &UpdateMask) -> BTreeSet<Vendor> {
    Vendor::ALL
        .into_iter()
        .filter(|v| v.has_profile(before) || v.has_profile(after))
        .filter(|v| mask_concerns(v.adapter(), mask))
        .collect()
}

/// The vendors whose profile the product has.
pub fn profiled(product: &Product) -> BTreeSet<Vendor> {
    Vendor::ALL.into_iter().filter(|v| v.has_profile(product)).collect()
}

/// Every reason `product` may not be stored: the domain's rules, then the
/// documented limits of each vendor whose profile it has, so a product that
/// producthub accepts is one every one of its vendors will accept too.
pub fn validate(product: &Product) -> Vec<FieldViolation> {
    let mut out = validation::validate(product);
    for vendor in Vendor::ALL {
        if vendor.has_profile(product) {
            out.extend(vendor.adapter().limit_violations(product));
        }
    }
    out
}

/// Marks a change for delivery to `vendors` (see [`sync_plan::mark_changed`]),
/// first recording in each vendor's sync entry the id its profile already
/// holds (e.g. from an import), so the copy can be found after the profile is
/// removed.
pub fn mark_changed(product: &mut Product, vendors: &BTreeSet<Vendor>, paths: &[String], enabled: &BTreeSet<Vendor>) {
    for vendor in vendors {
        if let Some(id) = vendor.adapter().remote_id(product) {
            sync_plan::note_remote_id(product, vendor.to_pb(), &id);
        }
    }
    sync_plan::mark_changed(product, &to_pb_set(vendors), paths, &to_pb_set(enabled));
}

/// Marks the vendor's copy as matching the product as it is (after an import
/// from that vendor: it sent us this very product). For a vendor this server
/// does not deliver to, the copy is recorded as linked and DISABLED: SYNCED
/// would promise deliveries that will not happen.
/// `copy` is the vendor's copy as read (imported): its fingerprint is recorded.
pub fn mark_synced(
    product: &mut Product,
    vendor: Vendor,
    copy: &Product,
    enabled: &BTreeSet<Vendor>,
    now: std::time::SystemTime,
) {
    let remote_id = vendor.adapter().remote_id(product).unwrap_or_default();
    if enabled.contains(&vendor) {
        sync_plan::mark_synced(product, vendor.to_pb(), &remote_id, now);
    } else {
        sync_plan::mark_linked(product, vendor.to_pb(), &remote_id);
    }
    let known = fingerprint::fingerprint(vendor, copy);
    sync_plan::set_fingerprint(product, vendor.to_pb(), &known);
}

/// The vendor's sync entry on the product, if it has one.
pub fn sync_entry(product: &Product, vendor: Vendor) -> Option<&pb::VendorSync> {
    sync_plan::entry(product, vendor.to_pb())
}

fn to_pb_set(vendors: &BTreeSet<Vendor>) -> BTreeSet<pb::Vendor> {
    vendors.iter().map(|v| v.to_pb()).collect()
}

/// The configured vendors, ready to be called: each with its credentials and
/// authentication (EnOS token and signature, Cryptlex bearer token, Revenium
/// API key) over one shared HTTP client.
pub struct Connections {
    enos: Option<enos::Connection>,
    cryptlex: Option<cryptlex::Connection>,
    revenium: Option<revenium::Connection>,
}

impl Connections {
    pub fn new(config: &VendorsConfig, request_timeout: std::time::Duration) -> Result<Self, String> {
        let http = http::HttpClient::new(request_timeout)?;
        Ok(Self {
            enos: config.enos.clone().map(|c| enos::Connection::new(c, http.clone())),
            cryptlex: config.cryptlex.clone().map(|c| cryptlex::connect(c, http.clone())),
            revenium: config.revenium.clone().map(|c| revenium::connect(c, http.clone())),
        })
    }

    /// Sends `request` to `vendor` and returns its answer, whatever the status.
    /// Only failures to get an answer at all are errors.
    pub async fn send(&self, vendor: Vendor, request: &VendorRequest) -> Result<Reply, VendorError> {
        match vendor {
            Vendor::Enos => {
                self.enos
                    .as_ref()
                    .ok_or_else(|| not_configured(vendor))?
                    .send(request)
                    .await
            }
            Vendor::Cryptlex => {
                self.cryptlex
                    .as_ref()
                    .ok_or_else(|| not_configured(vendor))?
                    .send(request)
                    .await
            }
            Vendor::Revenium => {
                self.revenium
                    .as_ref()
                    .ok_or_else(|| not_configured(vendor))?
                    .send(request)
                    .await
            }
        }
    }
}

/// The vendors' product webhooks this server takes, with the tokens that sign
/// them. Only Cryptlex sends product webhooks; EnOS and Revenium document
/// none, so their copies are reconciled on the interval alone.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    cryptlex: Option<Secret>,
}

impl Webhooks {
    pub fn new(config: &VendorsConfig) -> Self {
        Self {
            cryptlex: config.cryptlex.as_ref().and_then(|c| c.webhook_token.clone()),
        }
    }

    /// The vendor whose webhooks arrive at `/webhooks/{slug}` (`cryptlex`).
    pub fn vendor(slug: &str) -> Option<Vendor> {
        match slug {
            "cryptlex" => Some(Vendor::Cryptlex),
            _ => None,
        }
    }

    /// Whether any vendor's webhooks are configured.
    pub fn any(&self) -> bool {
        self.cryptlex.is_some()
    }

    /// The header a vendor's webhook carries its signature in.
    pub fn signature_header(vendor: Vendor) -> Option<&'static str> {
        match vendor {
            Vendor::Cryptlex => Some(cryptlex::webhook::SIGNATURE_HEADER),
            Vendor::Enos | Vendor::Revenium => None,
        }
    }

    /// The event a webhook call from `vendor` announces, once its signature
    /// (the header's value, if any) is checked against the raw `body`.
    pub fn receive(
        &self,
        vendor: Vendor,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookRefusal> {
        match vendor {
            Vendor::Cryptlex => {
                let token = self.cryptlex.as_ref().ok_or(WebhookRefusal::NotConfigured)?;
                if !cryptlex::webhook::signed(body, signature, token) {
                    return Err(WebhookRefusal::BadSignature);
                }
                cryptlex::webhook::event(body)
            }
            Vendor::Enos | Vendor::Revenium => Err(WebhookRefusal::NotConfigured),
        }
    }
}

fn not_configured(vendor: Vendor) -> VendorError {
    VendorError {
        vendor,
        kind: VendorErrorKind::FailedPrecondition,
        http_status: None,
        code: None,
        message: format!("{vendor} is not configured"),
        retry_after: None,
        request_id: None,
    }
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
    fn list_requests_page_as_each_vendor_documents() {
        let settings = VendorSettings {
            enos_org_id: Some("o1".into()),
            revenium_team_id: Some("T1".into()),
            revenium_owner_id: None,
        };
        let shown = |vendor: Vendor, page| {
            let request = vendor.adapter().list(page, &settings).unwrap();
            (request.method, request.path_and_query(), request.body_text())
        };
        assert_eq!(
            shown(Vendor::Enos, 2),
            (
                Method::Post,
                "/connect-service/v2.1/products?action=search&orgId=o1".to_string(),
                r#"{"pagination":{"pageNo":3,"pageSize":50}}"#.to_string()
            )
        );
        assert_eq!(
            shown(Vendor::Cryptlex, 0),
            (Method::Get, "/v3/products?page=1&limit=100".to_string(), String::new())
        );
        assert_eq!(
            shown(Vendor::Revenium, 0),
            (
                Method::Get,
                "/v2/api/products?teamId=T1&page=0&size=100".to_string(),
                String::new()
            )
        );
        let unset = VendorSettings::default();
        for vendor in [Vendor::Enos, Vendor::Revenium] {
            assert!(
                matches!(vendor.adapter().list(0, &unset), Err(AdapterError::NotReady { .. })),
                "{vendor} needs its deployment id to list"
            );
        }
    }

    #[test]
    fn retryable_kinds() {
        let error = |kind| VendorError {
            vendor: Vendor::Enos,
            kind,
            http_status: None,
            code: None,
            message: String::new(),
            request_id: None,
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

#[cfg(test)]
mod validation_tests;

#[cfg(test)]
mod seed_tests;
