//! Every request body held against the vendors' documents, field by field:
//! the seed pages in `shared/seeds/` (and the confirmed fields of
//! `shared/vendor-apis.md` where a seed is silent) are the law. A field a page
//! marks required is always present; a field the documented request schema
//! lacks is never sent. Each vendor's create, masked update and whole (`*`)
//! update are checked for a minimal product, as producthub creates one with
//! none of the optional fields set, and for a full one.
//!
//! `cargo test --lib seed_tests -- --nocapture` prints every body checked.

use serde_json::{Map, Value, json};

use super::test_support::mask;
use super::{Adapter, Vendor, VendorRequest, VendorSettings};
use crate::domain::field_mask::UpdateMask;
use crate::pb::{
    IotDataFormat, IotProductType, IotProfile, LicensingMetadata, LicensingProfile, MonetizationProfile, Plan,
    PriceTier, Product,
};

/// What one call's body must hold and may hold.
struct Schema {
    /// Present in every body.
    required: &'static [&'static str],
    /// The only top-level fields allowed; `None` when the vendor's schema hides
    /// names, so fields the vendor itself returned go back as they came.
    allowed: Option<&'static [&'static str]>,
    /// Never sent.
    forbidden: &'static [&'static str],
}

/// EnOS CreateProduct (seed 002; the optional fields the notes confirm, §1.2).
const ENOS_CREATE: Schema = Schema {
    required: &[
        "productName",
        "productType",
        "modelId",
        "biDirectionalAuth",
        "dataFormat",
    ],
    allowed: Some(&[
        "productName",
        "productType",
        "modelId",
        "biDirectionalAuth",
        "dataFormat",
        "productDesc",
        "dynamicActivateEnabled",
        "productTags",
        "defaultValidDay",
        "maxValidDay",
    ]),
    forbidden: &[],
};

/// EnOS UpdateProduct (seed 000; notes §1.2).
const ENOS_UPDATE: Schema = Schema {
    required: &["productName", "biDirectionalAuth"],
    allowed: Some(&[
        "productName",
        "biDirectionalAuth",
        "productDesc",
        "dynamicActivateEnabled",
        "productTags",
        "defaultValidDay",
        "maxValidDay",
    ]),
    forbidden: &[],
};

/// Cryptlex v3 product request schema (seed 001), for PATCH and POST alike.
const CRYPTLEX_REQUEST: Schema = Schema {
    required: &[],
    allowed: Some(&[
        "name",
        "displayName",
        "description",
        "licenseTemplateId",
        "trialPolicyId",
        "metadata",
    ]),
    forbidden: &["automatedEmails", "licensePolicyId"],
};

/// Revenium Update-a-Product (seed 003): the required fields whose names the
/// page shows. Its scalar names are hidden, so other fields are not judged
/// here, except what the API computes itself.
const REVENIUM_PUT: Schema = Schema {
    required: &[
        "pricingRuleIds",
        "assetIds",
        "productIds",
        "slaDefinitionIds",
        "tags",
        "notificationAddressesOnInvoice",
        "namedOrganizations",
        "published",
        "externalId",
    ],
    allowed: None,
    forbidden: &["version", "id", "status", "_links", "team", "owner"],
};

/// Revenium create: what Revenium's own tools require on create (name,
/// version, plan, team and owner); the PUT's required fields are checked too.
const REVENIUM_POST: Schema = Schema {
    required: &["name", "version", "plan", "teamId", "ownerId"],
    allowed: None,
    forbidden: &["id", "status", "_links", "team", "owner"],
};

fn settings() -> VendorSettings {
    VendorSettings {
        enos_org_id: Some("o1".into()),
        revenium_team_id: Some("T1".into()),
        revenium_owner_id: Some("O1".into()),
    }
}

/// As producthub creates it: only what each vendor requires, plus the ids the
/// vendors gave it (so updates can be built).
fn minimal() -> Product {
    Product {
        name: "products/minimal".into(),
        display_name: "Minimal".into(),
        version: "1.0.0".into(),
        iot: Some(IotProfile {
            model_id: "m1".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            product_key: "pk1".into(),
            ..Default::default()
        }),
        licensing: Some(LicensingProfile {
            license_template_id: "lt1".into(),
            product_id: "c1".into(),
            ..Default::default()
        }),
        monetization: Some(MonetizationProfile {
            plan: Some(Plan {
                tiers: vec![PriceTier::default()],
                ..Default::default()
            }),
            product_id: "R1".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every field producthub maps, set.
fn full() -> Product {
    let mut product = minimal();
    product.name = "products/full".into();
    product.description = "Everything set".into();
    product.localized_display_names.insert("zh_CN".into(), "全部".into());
    let iot = product.iot.as_mut().unwrap_or_else(|| unreachable!());
    iot.bidirectional_auth = true;
    iot.dynamic_activation_enabled = true;
    iot.tags.insert("site".into(), "north".into());
    iot.default_valid_days = Some(730);
    iot.max_valid_days = Some(1095);
    let licensing = product.licensing.as_mut().unwrap_or_else(|| unreachable!());
    licensing.name = "full-licence".into();
    licensing.trial_policy_id = "tp1".into();
    licensing.automated_emails = vec!["welcome".into()];
    licensing.metadata = vec![LicensingMetadata {
        key: "tier".into(),
        value: "gold".into(),
        visible: true,
        view_permissions: vec!["activation".into()],
        ..Default::default()
    }];
    let m = product.monetization.as_mut().unwrap_or_else(|| unreachable!());
    m.pricing_rule_ids = vec!["PR1".into()];
    m.asset_ids = vec!["A1".into()];
    m.tags = vec!["weather".into()];
    m.notification_addresses_on_invoice = vec!["billing@example.com".into()];
    m.named_organizations = vec!["Acme".into()];
    m.published = Some(false);
    m.external_id = "apim-7".into();
    m.plan = Some(Plan {
        name: "Standard".into(),
        currency: "EUR".into(),
        tiers: vec![
            PriceTier {
                up_to: Some(1000.0),
                unit_amount: Some(0.01),
                starting_from: Some(0.0),
                ..Default::default()
            },
            PriceTier {
                unit_amount: Some(0.005),
                starting_from: Some(1000.0),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    product
}

/// Revenium's current copy as its GET returns it, with the two required
/// fields whose names the page hides under the names this copy uses.
fn revenium_copy() -> Value {
    json!({
        "id": "R1", "name": "Minimal", "version": "1.0.7",
        "team": {"id": "T1"}, "owner": {"id": "O1"},
        "pricingRuleIds": [], "assetIds": [], "productIds": [], "slaDefinitionIds": [], "tags": [],
        "notificationAddressesOnInvoice": [], "namedOrganizations": [],
        "published": false, "externalId": "apim-at-vendor",
        "sendInvoiceNotifications": true, "audienceRestriction": "PUBLIC",
        "plan": {"name": "Standard", "tiers": [{"upTo": null, "unitAmount": 0.01, "startingFrom": 0}]},
        "status": "ACTIVE",
        "_links": {"self": {"href": "x"}}
    })
}

fn body(request: &VendorRequest) -> Map<String, Value> {
    match &request.body {
        Some(Value::Object(map)) => map.clone(),
        other => panic!(
            "{} {} has no JSON object body: {other:?}",
            request.method.as_str(),
            request.path
        ),
    }
}

/// What breaks `schema` in `body`.
fn breaches(body: &Map<String, Value>, schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for key in schema.required {
        if !body.contains_key(*key) {
            out.push(format!("required `{key}` is missing"));
        }
    }
    for key in body.keys() {
        if schema.forbidden.contains(&key.as_str()) {
            out.push(format!("`{key}` must not be sent"));
        }
        if let Some(allowed) = schema.allowed
            && !allowed.contains(&key.as_str())
        {
            out.push(format!("`{key}` is not in the documented request schema"));
        }
    }
    out
}

/// The nested rules: EnOS's StringI18n name, Cryptlex's metadata items,
/// Revenium's output-only tier field.
fn nested_breaches(vendor: Vendor, body: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    match vendor {
        Vendor::Enos => {
            if let Some(name) = body.get("productName") {
                let keys: Vec<&str> = name
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                if !keys.contains(&"defaultValue") || keys.iter().any(|k| !["defaultValue", "i18nValue"].contains(k)) {
                    out.push(format!("productName is not a StringI18n: {name}"));
                }
            }
        }
        Vendor::Cryptlex => {
            for item in body.get("metadata").and_then(Value::as_array).into_iter().flatten() {
                let Some(item) = item.as_object() else {
                    out.push("a metadata item is not an object".into());
                    continue;
                };
                for key in ["key", "value"] {
                    if !item.contains_key(key) {
                        out.push(format!("metadata item lacks required `{key}`"));
                    }
                }
                for key in item.keys() {
                    if !["key", "value", "viewPermissions", "visible"].contains(&key.as_str()) {
                        out.push(format!("metadata item field `{key}` is not in the request schema"));
                    }
                }
            }
            for key in ["name", "displayName", "description", "licenseTemplateId"] {
                if body.get(key).is_some_and(|v| v.as_str().is_none_or(str::is_empty)) {
                    out.push(format!("`{key}` must be a string of 1-256 characters"));
                }
            }
        }
        Vendor::Revenium => {
            let tiers = body.get("plan").and_then(|p| p.get("tiers")).and_then(Value::as_array);
            for tier in tiers.into_iter().flatten() {
                if tier.get("startingFrom").is_some() {
                    out.push("plan.tiers[].startingFrom is output only".into());
                }
            }
        }
    }
    out
}

fn check(vendor: Vendor, what: &str, request: &VendorRequest, schema: &Schema) -> Map<String, Value> {
    let body = body(request);
    println!(
        "{vendor} {what}: {} {}\n{}\n",
        request.method.as_str(),
        request.path_and_query(),
        Value::Object(body.clone())
    );
    let mut problems = breaches(&body, schema);
    problems.extend(nested_breaches(vendor, &body));
    assert!(
        problems.is_empty(),
        "{vendor} {what}:\n{}\nbody: {}",
        problems.join("\n"),
        Value::Object(body)
    );
    body
}

fn update(adapter: &dyn Adapter, product: &Product, mask: &UpdateMask, last_known: Option<&Value>) -> VendorRequest {
    adapter
        .update(product, mask, &settings(), last_known)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{} sent nothing for a change it holds", adapter.vendor()))
}

#[test]
fn enos_bodies_meet_the_seeds() {
    let adapter = Vendor::Enos.adapter();
    for (label, product) in [("minimal", minimal()), ("full", full())] {
        let create = adapter.create(&product, &settings()).unwrap();
        assert_eq!(create.query, [("action", "create".into()), ("orgId", "o1".into())]);
        check(Vendor::Enos, &format!("create {label}"), &create, &ENOS_CREATE);
        for (what, change) in [
            ("update display_name", mask(&["display_name"])),
            ("update *", UpdateMask::Full),
        ] {
            let request = update(adapter, &product, &change, None);
            let query: Vec<&str> = request.query.iter().map(|(k, _)| *k).collect();
            assert!(query.contains(&"orgId") && query.contains(&"productKey"), "{query:?}");
            check(Vendor::Enos, &format!("{what} {label}"), &request, &ENOS_UPDATE);
        }
    }
    // A whole resend carries no empty value as filler...
    let resend = body(&update(adapter, &minimal(), &UpdateMask::Full, None));
    for filler in ["productDesc", "productTags", "dynamicActivateEnabled"] {
        assert!(
            !resend.contains_key(filler),
            "`*` must not send an empty {filler}: {resend:?}"
        );
    }
    // ...while a change that names a field clears it.
    let cleared = body(&update(adapter, &minimal(), &mask(&["description", "iot.tags"]), None));
    assert_eq!(
        (&cleared["productDesc"], &cleared["productTags"]),
        (&json!(""), &json!({}))
    );
}

#[test]
fn cryptlex_bodies_meet_the_seed() {
    let adapter = Vendor::Cryptlex.adapter();
    for (label, product) in [("minimal", minimal()), ("full", full())] {
        let create = adapter.create(&product, &settings()).unwrap();
        check(Vendor::Cryptlex, &format!("create {label}"), &create, &CRYPTLEX_REQUEST);
        for (what, change) in [
            ("update licensing.metadata", mask(&["licensing.metadata"])),
            ("update *", UpdateMask::Full),
        ] {
            check(
                Vendor::Cryptlex,
                &format!("{what} {label}"),
                &update(adapter, &product, &change, None),
                &CRYPTLEX_REQUEST,
            );
        }
    }
    let resend = body(&update(adapter, &minimal(), &UpdateMask::Full, None));
    for filler in ["metadata", "trialPolicyId", "description"] {
        assert!(
            !resend.contains_key(filler),
            "`*` must not send an empty {filler}: {resend:?}"
        );
    }
    let cleared = body(&update(
        adapter,
        &minimal(),
        &mask(&["licensing.metadata", "licensing.trial_policy_id"]),
        None,
    ));
    assert_eq!(cleared["metadata"], json!([]), "named, so cleared");
    assert_eq!(
        cleared["trialPolicyId"],
        json!(""),
        "a string of 0-256 characters clears it"
    );
    assert!(
        adapter
            .update(&full(), &mask(&["licensing.automated_emails"]), &settings(), None)
            .unwrap()
            .is_none(),
        "automatedEmails is not in the update schema: nothing to send"
    );
}

#[test]
fn revenium_bodies_meet_the_seed() {
    let adapter = Vendor::Revenium.adapter();
    let copy = revenium_copy();
    for (label, product) in [("minimal", minimal()), ("full", full())] {
        let create = adapter.create(&product, &settings()).unwrap();
        let sent = check(Vendor::Revenium, &format!("create {label}"), &create, &REVENIUM_POST);
        let missing = breaches(
            &sent,
            &Schema {
                forbidden: &[],
                ..REVENIUM_PUT
            },
        );
        assert!(missing.is_empty(), "create {label}: {missing:?}");
        for (what, change) in [
            ("update description", mask(&["description"])),
            ("update *", UpdateMask::Full),
        ] {
            for (from, last_known) in [("over its GET copy", Some(&copy)), ("without a copy", None)] {
                let request = update(adapter, &product, &change, last_known);
                let sent = check(
                    Vendor::Revenium,
                    &format!("{what} {label} {from}"),
                    &request,
                    &REVENIUM_PUT,
                );
                if last_known.is_some() {
                    // The required fields the page does not name go back as the
                    // vendor returned them.
                    assert_eq!(sent["sendInvoiceNotifications"], json!(true));
                    assert_eq!(sent["audienceRestriction"], json!("PUBLIC"));
                }
            }
        }
    }
    // Required fields producthub leaves unset: the vendor's current values...
    let over_copy = body(&update(adapter, &minimal(), &UpdateMask::Full, Some(&copy)));
    assert_eq!(
        (&over_copy["published"], &over_copy["externalId"]),
        (&json!(false), &json!("apim-at-vendor"))
    );
    // ...else Revenium's own defaults...
    let bare = body(&update(adapter, &minimal(), &UpdateMask::Full, None));
    assert_eq!((&bare["published"], &bare["externalId"]), (&json!(true), &json!("")));
    // ...and producthub's own values when it has them.
    let ours = body(&update(adapter, &full(), &UpdateMask::Full, Some(&copy)));
    assert_eq!(
        (&ours["published"], &ours["externalId"]),
        (&json!(false), &json!("apim-7"))
    );
    // The version is Revenium's to keep on update; a create carries ours.
    assert_eq!(
        body(&adapter.create(&full(), &settings()).unwrap())["version"],
        json!("1.0.0")
    );
    assert!(
        adapter
            .update(&full(), &mask(&["version"]), &settings(), Some(&copy))
            .unwrap()
            .is_none()
    );
}
