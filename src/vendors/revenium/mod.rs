//! Revenium platform API products (`/v2/api/products`, relative to the
//! `…/profitstream` base URL).
//!
//! Create is a POST; update is a whole-body PUT, so the body is built from the
//! vendor's last known product object with our fields laid over it: fields we
//! do not model go back unchanged. Responses nest references (`team{id}`,
//! `owner{id}`) that requests want flat (`teamId`, `ownerId`). Lists are Spring
//! HATEOAS: `{_embedded: {<something>List: [...]}, page: {...}}`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

mod auth;
mod config;
mod limits;

pub use auth::{Connection, connect};
pub use config::{Args, Config, ENABLING_FLAGS};

use super::json::{from_struct, number, to_struct};
use super::mapping::FieldMapping;
use super::{
    Adapter, AdapterError, Method, Vendor, VendorError, VendorErrorKind, VendorPage, VendorRequest, VendorResponse,
    VendorSettings, bad_json, check_vendor_rules, kind_from_http_status, mask_concerns, non_empty, object,
    parse_retry_after, profile_place, read_object_id, read_product_object, truncated_text, unreadable,
};
use crate::domain::field_mask::UpdateMask;
use crate::pb::{
    AggregationType, BillingPeriod, MonetizationProfile, PaymentSource, Plan, PlanElement, PlanType, PriceTier,
    Product, RatingAggregation, TrialPeriod,
};

pub struct Revenium;

const VENDOR: Vendor = Vendor::Revenium;
const PRODUCTS_PATH: &str = "/v2/api/products";
/// What Revenium says of an id it cannot read as one of its (hashed) ids,
/// whether malformed or deleted: no product has it.
const UNKNOWN_ID: &str = "Failed to decode hashed id";
/// `published` when neither producthub nor Revenium says: what Revenium's own
/// code defaults it to (vendor-apis.md §3.4).
const DEFAULT_PUBLISHED: bool = true;

/// What each call to Revenium carries (rendered into docs/vendor-mappings.md).
pub const REQUESTS: &str = "\
- **Update** (`PUT /v2/api/products/{id}`, seed 003) replaces the product, so its body is the
  vendor's current copy (GET first) with producthub's values laid over it: for a change that
  names its fields, only the modelled fields it names (the rest stays as Revenium has it, e.g.
  an edit made in its console); for a whole resend (`*`, SyncProduct), every modelled field
  producthub holds. Every field
  the page marks required is sent: `pricingRuleIds`, `assetIds`, `productIds`,
  `slaDefinitionIds`, `tags`, `notificationAddressesOnInvoice`, `namedOrganizations` (the
  vendor's current ones, or ours when named, or when the copy lacks one; possibly empty), `published` and `externalId` (ours when set, else the vendor's current value,
  else Revenium's default: `true`, and `\"\"` for `externalId`, which has none documented).
  The two required fields whose JSON names the page hides (whether to send invoice
  notifications; the audience restriction) are never invented: they go back exactly as the GET
  returned them, under the vendor's own names.
- Not sent: `version` on update (Revenium increments it itself; a mask naming only `version`
  sends nothing), `plan.tiers[].startingFrom` (output only), and the response-only `id`,
  `status`, `_links` and nested `team`/`owner` (sent flat as `teamId`/`ownerId`).
- **Create** (`POST /v2/api/products`) carries `name`, `version`, `plan`, `teamId`, `ownerId`
  (what Revenium's own tools require) and the update's required fields as above. **Gap:** for a
  product producthub creates, the two unnamed required fields cannot be sent, since their names
  are unknown; Revenium applies its own defaults to them, and every later PUT sends back what it
  chose.
";

/// How each canonical field maps to Revenium (rendered into docs/vendor-mappings.md).
pub const MAPPING: &[FieldMapping] = &[
    FieldMapping::new("display_name", "name", "1-255 characters; required"),
    FieldMapping::new("description", "description", ""),
    FieldMapping::new(
        "version",
        "version",
        "`x.y.z`; required by Revenium's tools on create, where it is sent; not sent on update (Revenium increments it itself)",
    ),
    FieldMapping::new(
        "monetization.owner_id",
        "ownerId",
        "responses: `owner.id`; else the configured owner",
    ),
    FieldMapping::new(
        "monetization.team_id",
        "teamId",
        "responses: `team.id`; also the `teamId` query parameter; else the configured team",
    ),
    FieldMapping::new("monetization.pricing_rule_ids", "pricingRuleIds", "always written"),
    FieldMapping::new("monetization.asset_ids", "assetIds", "always written"),
    FieldMapping::new("monetization.product_ids", "productIds", "always written"),
    FieldMapping::new("monetization.sla_definition_ids", "slaDefinitionIds", "always written"),
    FieldMapping::new("monetization.tags", "tags", "always written"),
    FieldMapping::new(
        "monetization.notification_addresses_on_invoice",
        "notificationAddressesOnInvoice",
        "always written",
    ),
    FieldMapping::new(
        "monetization.named_organizations",
        "namedOrganizations",
        "always written",
    ),
    FieldMapping::new(
        "monetization.published",
        "published",
        "required on update: always sent; ours when set, else the vendor's current value, else Revenium's default `true`",
    ),
    FieldMapping::new(
        "monetization.payment_source",
        "paymentSource",
        "`INVOICE_ONLY_NO_PAYMENT` / `EXTERNAL_PAYMENT_NOTIFICATION`",
    ),
    FieldMapping::new("monetization.payment_configuration_id", "paymentConfigurationId", ""),
    FieldMapping::new(
        "monetization.external_id",
        "externalId",
        "required on update: always sent; ours when set, else the vendor's current value, else `\"\"` (no default is documented); cleared by a change that names it",
    ),
    FieldMapping::new(
        "monetization.notify_client_on_invoice",
        "notifyClientOnInvoice",
        "always written",
    ),
    FieldMapping::new(
        "monetization.notify_client_trial_about_to_expire",
        "notifyClientTrialAboutToExpire",
        "always written",
    ),
    FieldMapping::new(
        "monetization.subscription_allow_mid_period_cancellation",
        "subscriptionAllowMidPeriodCancellation",
        "always written",
    ),
    FieldMapping::new("monetization.terms", "terms", "always written"),
    FieldMapping::new("monetization.coming_soon", "comingSoon", "always written"),
    FieldMapping::new("monetization.source_ids", "sourceIds", "always written"),
    FieldMapping::new("monetization.sla_ids", "slaIds", "always written"),
    FieldMapping::new(
        "monetization.custom_pricing_rule_ids",
        "customPricingRuleIds",
        "always written",
    ),
    FieldMapping::new(
        "monetization.product_id",
        "id",
        "output only; the `{id}` of PUT/GET/DELETE `/v2/api/products/{id}`",
    ),
    FieldMapping::new(
        "monetization.status",
        "status",
        "output only; not sent back on PUT (whether Revenium accepts it there is unconfirmed)",
    ),
    FieldMapping::new(
        "monetization.plan",
        "plan",
        "required (Revenium's own tools require it); with at least one tier",
    ),
    FieldMapping::new("monetization.plan.name", "plan.name", ""),
    FieldMapping::new(
        "monetization.plan.type",
        "plan.type",
        "`SUBSCRIPTION` / `CHARGE` / `SUBSCRIPTION_WITH_OVERAGE`",
    ),
    FieldMapping::new("monetization.plan.currency", "plan.currency", "ISO 4217, e.g. `USD`"),
    FieldMapping::new(
        "monetization.plan.period",
        "plan.period",
        "`MONTH`, `YEAR`, `QUARTER`, `WEEK`, `DAY`, `TEST_MINUTE`, …",
    ),
    FieldMapping::new("monetization.plan.period_count", "plan.periodCount", "> 0"),
    FieldMapping::new(
        "monetization.plan.trial_period",
        "plan.trialPeriod",
        "`DAY` / `WEEK` / `MONTH`",
    ),
    FieldMapping::new("monetization.plan.trial_period_count", "plan.trialPeriodCount", "> 0"),
    FieldMapping::new("monetization.plan.charge", "plan.charge", ""),
    FieldMapping::new("monetization.plan.graduated", "plan.graduated", "always written"),
    FieldMapping::new(
        "monetization.plan.pre_pay_all_flat_rates",
        "plan.prePayAllFlatRates",
        "always written",
    ),
    FieldMapping::new(
        "monetization.plan.tiers",
        "plan.tiers",
        "always written; items: `name`, `upTo` (`null`: unlimited, always written), `unitAmount`, `flatAmount`, `startingFrom` (output only: read, never sent)",
    ),
    FieldMapping::new(
        "monetization.plan.elements",
        "plan.elements",
        "items: `elementDefinitionId`, `name`, `description`, `unitOfMeasure`, `aggregationType`",
    ),
    FieldMapping::new(
        "monetization.plan.rating_aggregations",
        "plan.ratingAggregations",
        "items: `name`, `aggregationType`, `elementDefinitionId`, `period`, `graduated`, `tiers`; `filters`, `distinctValue` kept in the item's `vendor_fields`",
    ),
    FieldMapping::new(
        "monetization.plan.vendor_fields",
        "plan.setupFees",
        "not modelled: whether Revenium takes `plan.setupFees` or product-level `setupFees` is unconfirmed; either is kept as sent",
    ),
    FieldMapping::new(
        "monetization.plan.vendor_fields",
        "plan.(any other field)",
        "kept as sent",
    ),
    FieldMapping::new(
        "monetization.vendor_fields",
        "(any other field)",
        "kept as sent, including `team`/`owner` objects; sent back on PUT with nested references made flat",
    ),
];

// ---- JSON shapes ----------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProductJson {
    id: Option<IdValue>,
    name: Option<String>,
    description: Option<String>,
    version: Option<String>,
    team_id: Option<String>,
    owner_id: Option<String>,
    pricing_rule_ids: Option<Vec<String>>,
    asset_ids: Option<Vec<String>>,
    product_ids: Option<Vec<String>>,
    sla_definition_ids: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    notification_addresses_on_invoice: Option<Vec<String>>,
    published: Option<bool>,
    payment_source: Option<String>,
    payment_configuration_id: Option<String>,
    external_id: Option<String>,
    notify_client_on_invoice: Option<bool>,
    notify_client_trial_about_to_expire: Option<bool>,
    subscription_allow_mid_period_cancellation: Option<bool>,
    named_organizations: Option<Vec<String>>,
    terms: Option<Vec<String>>,
    coming_soon: Option<bool>,
    source_ids: Option<Vec<String>>,
    sla_ids: Option<Vec<String>>,
    custom_pricing_rule_ids: Option<Vec<String>>,
    plan: Option<PlanJson>,
    status: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// Revenium ids are short hashed strings; accept a number too.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlanJson {
    name: Option<String>,
    #[serde(rename = "type")]
    plan_type: Option<String>,
    currency: Option<String>,
    period: Option<String>,
    period_count: Option<i32>,
    trial_period: Option<String>,
    trial_period_count: Option<i32>,
    charge: Option<f64>,
    graduated: Option<bool>,
    pre_pay_all_flat_rates: Option<bool>,
    tiers: Option<Vec<TierJson>>,
    elements: Option<Vec<ElementJson>>,
    rating_aggregations: Option<Vec<AggregationJson>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TierJson {
    name: Option<String>,
    up_to: Option<f64>,
    unit_amount: Option<f64>,
    flat_amount: Option<f64>,
    starting_from: Option<f64>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ElementJson {
    element_definition_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    unit_of_measure: Option<String>,
    aggregation_type: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AggregationJson {
    name: Option<String>,
    aggregation_type: Option<String>,
    element_definition_id: Option<String>,
    period: Option<String>,
    graduated: Option<bool>,
    tiers: Option<Vec<TierJson>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

// ---- enums ------------------------------------------------------------------

/// Reads a vendor enum: a known spelling becomes the canonical value, an
/// unknown one is kept in `others` under `key` (and the canonical value stays
/// unspecified), so nothing is lost.
fn read_enum<E: Copy + Into<i32>>(
    text: Option<String>,
    key: &str,
    known: &[(&str, E)],
    others: &mut Map<String, Value>,
) -> i32 {
    let Some(text) = text else { return 0 };
    match known.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => (*value).into(),
        None => {
            others.insert(key.into(), Value::String(text));
            0
        }
    }
}

fn enum_name<E: Copy + Into<i32>>(value: i32, known: &[(&'static str, E)]) -> Option<Value> {
    known
        .iter()
        .find(|(_, e)| (*e).into() == value && value != 0)
        .map(|(name, _)| Value::from(*name))
}

const PAYMENT_SOURCES: &[(&str, PaymentSource)] = &[
    ("INVOICE_ONLY_NO_PAYMENT", PaymentSource::InvoiceOnlyNoPayment),
    (
        "EXTERNAL_PAYMENT_NOTIFICATION",
        PaymentSource::ExternalPaymentNotification,
    ),
];
const PLAN_TYPES: &[(&str, PlanType)] = &[
    ("SUBSCRIPTION", PlanType::Subscription),
    ("CHARGE", PlanType::Charge),
    ("SUBSCRIPTION_WITH_OVERAGE", PlanType::SubscriptionWithOverage),
];
const PERIODS: &[(&str, BillingPeriod)] = &[
    ("MONTH", BillingPeriod::Month),
    ("YEAR", BillingPeriod::Year),
    ("QUARTER", BillingPeriod::Quarter),
    ("WEEK", BillingPeriod::Week),
    ("DAY", BillingPeriod::Day),
    ("TEST_MINUTE", BillingPeriod::TestMinute),
    (
        "TEST_MINUTE_WITH_SYNTHETIC_METERING",
        BillingPeriod::TestMinuteWithSyntheticMetering,
    ),
    ("NONE", BillingPeriod::None),
];
const TRIAL_PERIODS: &[(&str, TrialPeriod)] = &[
    ("DAY", TrialPeriod::Day),
    ("WEEK", TrialPeriod::Week),
    ("MONTH", TrialPeriod::Month),
];
const AGGREGATIONS: &[(&str, AggregationType)] = &[
    ("SUM", AggregationType::Sum),
    ("COUNT", AggregationType::Count),
    ("MAX", AggregationType::Max),
    ("MIN", AggregationType::Min),
    ("AVERAGE", AggregationType::Average),
    ("LAST", AggregationType::Last),
];

// ---- import -----------------------------------------------------------------

fn keep(others: Map<String, Value>, at: &str) -> Result<Option<prost_types::Struct>, AdapterError> {
    to_struct(others, at).map_err(|e| bad_json(VENDOR, e))
}

fn import_tiers(tiers: Option<Vec<TierJson>>, at: &str) -> Result<Vec<PriceTier>, AdapterError> {
    tiers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(PriceTier {
                name: t.name.unwrap_or_default(),
                up_to: t.up_to,
                unit_amount: t.unit_amount,
                flat_amount: t.flat_amount,
                starting_from: t.starting_from,
                vendor_fields: keep(t.other, &format!("{at}[{i}].vendor_fields"))?,
            })
        })
        .collect()
}

fn import_plan(plan: PlanJson) -> Result<Plan, AdapterError> {
    const AT: &str = "monetization.plan";
    let mut others = plan.other;
    let plan_type = read_enum(plan.plan_type, "type", PLAN_TYPES, &mut others);
    let period = read_enum(plan.period, "period", PERIODS, &mut others);
    let trial_period = read_enum(plan.trial_period, "trialPeriod", TRIAL_PERIODS, &mut others);
    let mut elements = Vec::new();
    for (i, e) in plan.elements.unwrap_or_default().into_iter().enumerate() {
        let mut item_others = e.other;
        let aggregation_type = read_enum(e.aggregation_type, "aggregationType", AGGREGATIONS, &mut item_others);
        elements.push(PlanElement {
            element_definition_id: e.element_definition_id.unwrap_or_default(),
            name: e.name.unwrap_or_default(),
            description: e.description.unwrap_or_default(),
            unit_of_measure: e.unit_of_measure.unwrap_or_default(),
            aggregation_type,
            vendor_fields: keep(item_others, &format!("{AT}.elements[{i}].vendor_fields"))?,
        });
    }
    let mut rating_aggregations = Vec::new();
    for (i, a) in plan.rating_aggregations.unwrap_or_default().into_iter().enumerate() {
        let at = format!("{AT}.rating_aggregations[{i}]");
        let mut item_others = a.other;
        let aggregation_type = read_enum(a.aggregation_type, "aggregationType", AGGREGATIONS, &mut item_others);
        let period = read_enum(a.period, "period", PERIODS, &mut item_others);
        rating_aggregations.push(RatingAggregation {
            name: a.name.unwrap_or_default(),
            aggregation_type,
            element_definition_id: a.element_definition_id.unwrap_or_default(),
            period,
            graduated: a.graduated.unwrap_or_default(),
            tiers: import_tiers(a.tiers, &format!("{at}.tiers"))?,
            vendor_fields: keep(item_others, &format!("{at}.vendor_fields"))?,
        });
    }
    Ok(Plan {
        name: plan.name.unwrap_or_default(),
        r#type: plan_type,
        currency: plan.currency.unwrap_or_default(),
        period,
        period_count: plan.period_count,
        trial_period,
        trial_period_count: plan.trial_period_count,
        charge: plan.charge,
        graduated: plan.graduated.unwrap_or_default(),
        pre_pay_all_flat_rates: plan.pre_pay_all_flat_rates.unwrap_or_default(),
        tiers: import_tiers(plan.tiers, &format!("{AT}.tiers"))?,
        elements,
        rating_aggregations,
        vendor_fields: keep(others, &format!("{AT}.vendor_fields"))?,
    })
}

/// `{ "id": "x", ... }` nested references → the id.
fn nested_id(others: &Map<String, Value>, key: &str) -> Option<String> {
    match others.get(key)?.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---- export -----------------------------------------------------------------

fn put_opt(out: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        out.insert(key.into(), value);
    }
}

/// Whether JSON is for a request body (POST, PUT), which leaves out what the
/// vendor computes, or the product object as the vendor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Object,
    Request,
}

fn export_tier(t: &PriceTier, form: Form) -> Value {
    let mut out = from_struct(t.vendor_fields.as_ref());
    put_opt(&mut out, "name", non_empty(&t.name).map(Value::from));
    out.insert("upTo".into(), t.up_to.map(number).unwrap_or(Value::Null));
    put_opt(&mut out, "unitAmount", t.unit_amount.map(number));
    put_opt(&mut out, "flatAmount", t.flat_amount.map(number));
    // Output only: Revenium computes where a tier starts from the one before.
    if form == Form::Object {
        put_opt(&mut out, "startingFrom", t.starting_from.map(number));
    }
    Value::Object(out)
}

/// The plan's modelled fields, over `base` (its unmodelled ones).
fn export_plan(plan: &Plan, mut out: Map<String, Value>, form: Form) -> Value {
    put_opt(&mut out, "name", non_empty(&plan.name).map(Value::from));
    put_opt(&mut out, "type", enum_name(plan.r#type, PLAN_TYPES));
    put_opt(&mut out, "currency", non_empty(&plan.currency).map(Value::from));
    put_opt(&mut out, "period", enum_name(plan.period, PERIODS));
    put_opt(&mut out, "periodCount", plan.period_count.map(Value::from));
    put_opt(&mut out, "trialPeriod", enum_name(plan.trial_period, TRIAL_PERIODS));
    put_opt(&mut out, "trialPeriodCount", plan.trial_period_count.map(Value::from));
    put_opt(&mut out, "charge", plan.charge.map(number));
    out.insert("graduated".into(), plan.graduated.into());
    out.insert("prePayAllFlatRates".into(), plan.pre_pay_all_flat_rates.into());
    out.insert(
        "tiers".into(),
        plan.tiers.iter().map(|t| export_tier(t, form)).collect(),
    );
    let elements: Vec<Value> = plan
        .elements
        .iter()
        .map(|e| {
            let mut item = from_struct(e.vendor_fields.as_ref());
            put_opt(
                &mut item,
                "elementDefinitionId",
                non_empty(&e.element_definition_id).map(Value::from),
            );
            put_opt(&mut item, "name", non_empty(&e.name).map(Value::from));
            put_opt(&mut item, "description", non_empty(&e.description).map(Value::from));
            put_opt(
                &mut item,
                "unitOfMeasure",
                non_empty(&e.unit_of_measure).map(Value::from),
            );
            put_opt(
                &mut item,
                "aggregationType",
                enum_name(e.aggregation_type, AGGREGATIONS),
            );
            Value::Object(item)
        })
        .collect();
    let aggregations: Vec<Value> = plan
        .rating_aggregations
        .iter()
        .map(|a| {
            let mut item = from_struct(a.vendor_fields.as_ref());
            put_opt(&mut item, "name", non_empty(&a.name).map(Value::from));
            put_opt(
                &mut item,
                "aggregationType",
                enum_name(a.aggregation_type, AGGREGATIONS),
            );
            put_opt(
                &mut item,
                "elementDefinitionId",
                non_empty(&a.element_definition_id).map(Value::from),
            );
            put_opt(&mut item, "period", enum_name(a.period, PERIODS));
            item.insert("graduated".into(), a.graduated.into());
            item.insert("tiers".into(), a.tiers.iter().map(|t| export_tier(t, form)).collect());
            Value::Object(item)
        })
        .collect();
    for (key, items) in [("elements", elements), ("ratingAggregations", aggregations)] {
        if !items.is_empty() {
            out.insert(key.into(), Value::Array(items));
        }
    }
    Value::Object(out)
}

/// The modelled product fields (not the passthrough ones), in response form.
fn modelled_fields(product: &Product, m: &MonetizationProfile) -> Map<String, Value> {
    let mut out = Map::new();
    put_opt(&mut out, "name", non_empty(&product.display_name).map(Value::from));
    put_opt(
        &mut out,
        "description",
        non_empty(&product.description).map(Value::from),
    );
    put_opt(&mut out, "version", non_empty(&product.version).map(Value::from));
    let lists = [
        ("pricingRuleIds", &m.pricing_rule_ids),
        ("assetIds", &m.asset_ids),
        ("productIds", &m.product_ids),
        ("slaDefinitionIds", &m.sla_definition_ids),
        ("tags", &m.tags),
        ("notificationAddressesOnInvoice", &m.notification_addresses_on_invoice),
        ("namedOrganizations", &m.named_organizations),
        ("terms", &m.terms),
        ("sourceIds", &m.source_ids),
        ("slaIds", &m.sla_ids),
        ("customPricingRuleIds", &m.custom_pricing_rule_ids),
    ];
    for (key, list) in lists {
        out.insert(key.into(), json!(list));
    }
    put_opt(&mut out, "published", m.published.map(Value::from));
    put_opt(&mut out, "paymentSource", enum_name(m.payment_source, PAYMENT_SOURCES));
    put_opt(
        &mut out,
        "paymentConfigurationId",
        non_empty(&m.payment_configuration_id).map(Value::from),
    );
    put_opt(&mut out, "externalId", non_empty(&m.external_id).map(Value::from));
    for (key, flag) in [
        ("notifyClientOnInvoice", m.notify_client_on_invoice),
        ("notifyClientTrialAboutToExpire", m.notify_client_trial_about_to_expire),
        (
            "subscriptionAllowMidPeriodCancellation",
            m.subscription_allow_mid_period_cancellation,
        ),
        ("comingSoon", m.coming_soon),
    ] {
        out.insert(key.into(), flag.into());
    }
    out
}

/// Nested references as GET returns them → the flat ids PUT and POST take
/// (what Revenium's own CLI does before a PUT).
fn flatten_references(body: &mut Map<String, Value>) {
    for (nested, flat) in [
        ("team", "teamId"),
        ("owner", "ownerId"),
        ("organization", "organizationId"),
        ("product", "productId"),
    ] {
        if let Some(reference) = body.remove(nested)
            && let Some(id) = reference.get("id").filter(|id| !id.is_null())
        {
            body.entry(flat.to_string()).or_insert_with(|| id.clone());
        }
    }
    for (nested, flat) in [("organizations", "organizationIds"), ("teams", "teamIds")] {
        if let Some(Value::Array(items)) = body.remove(nested) {
            let ids: Vec<Value> = items.iter().filter_map(|i| i.get("id").cloned()).collect();
            body.entry(flat.to_string()).or_insert(Value::Array(ids));
        }
    }
    // Response-only: HATEOAS links and the server's own fields.
    for key in ["_links", "id", "status"] {
        body.remove(key);
    }
}

fn monetization(product: &Product) -> Result<&MonetizationProfile, AdapterError> {
    product.monetization.as_ref().ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no monetization profile".into(),
    })
}

fn team_id(m: &MonetizationProfile, settings: &VendorSettings) -> Result<String, AdapterError> {
    non_empty(&m.team_id)
        .or_else(|| settings.revenium_team_id.clone().filter(|t| !t.is_empty()))
        .ok_or_else(|| AdapterError::NotReady {
            vendor: VENDOR,
            reason: "no Revenium teamId: the product has none and none is configured (--revenium-team-id)".into(),
        })
}

fn owner_id(m: &MonetizationProfile, settings: &VendorSettings) -> Result<String, AdapterError> {
    non_empty(&m.owner_id)
        .or_else(|| settings.revenium_owner_id.clone().filter(|t| !t.is_empty()))
        .ok_or_else(|| AdapterError::NotReady {
            vendor: VENDOR,
            reason: "no Revenium ownerId: the product has none and none is configured (--revenium-owner-id)".into(),
        })
}

/// A request body: `base` (the vendor's product object), references made flat,
/// our modelled fields and ids laid over it.
/// Every top-level product key we model: in a request body they come from the
/// canonical product alone (absent when cleared), never from the base.
const MODELLED_KEYS: &[&str] = &[
    "name",
    "description",
    "version",
    "teamId",
    "ownerId",
    "pricingRuleIds",
    "assetIds",
    "productIds",
    "slaDefinitionIds",
    "tags",
    "notificationAddressesOnInvoice",
    "namedOrganizations",
    "terms",
    "sourceIds",
    "slaIds",
    "customPricingRuleIds",
    "published",
    "paymentSource",
    "paymentConfigurationId",
    "externalId",
    "notifyClientOnInvoice",
    "notifyClientTrialAboutToExpire",
    "subscriptionAllowMidPeriodCancellation",
    "comingSoon",
    "plan",
];

/// Every plan key we model, likewise.
const MODELLED_PLAN_KEYS: &[&str] = &[
    "name",
    "type",
    "currency",
    "period",
    "periodCount",
    "trialPeriod",
    "trialPeriodCount",
    "charge",
    "graduated",
    "prePayAllFlatRates",
    "tiers",
    "elements",
    "ratingAggregations",
];

/// Unmodelled fields the mask names explicitly (`monetization.vendor_fields`,
/// a field above it, or one of its keys): those take our value over the
/// vendor's copy (`Null`: ours has none, so the key goes).
fn named_passthrough(mask: Option<&UpdateMask>, ours: &Map<String, Value>) -> Option<Map<String, Value>> {
    named_unmodelled(mask?, "monetization.vendor_fields", ours)
}

/// The keys of the unmodelled struct at `path` that `mask` names (all of
/// them when it names the struct or a field above it), with our values.
fn named_unmodelled(mask: &UpdateMask, path: &str, ours: &Map<String, Value>) -> Option<Map<String, Value>> {
    if names(mask, path) {
        return Some(ours.clone());
    }
    let prefix = format!("{path}.");
    let mut named = Map::new();
    for named_path in mask.effective_paths() {
        if let Some(key) = named_path.as_str().strip_prefix(&prefix) {
            let key = key.trim_matches('`');
            named.insert(key.to_owned(), ours.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    (!named.is_empty()).then_some(named)
}

/// Whether a vendor field of the mapping table is a real JSON key (not the
/// `(any other field)` row of the unmodelled fields).
fn is_json_key(vendor_field: &str) -> bool {
    !vendor_field.contains('(')
}

fn request_body(
    product: &Product,
    m: &MonetizationProfile,
    base: Map<String, Value>,
    mask: Option<&UpdateMask>,
    settings: &VendorSettings,
) -> Result<Value, AdapterError> {
    let mut body = base;
    flatten_references(&mut body);
    let mut base_plan = match body.remove("plan") {
        Some(Value::Object(plan)) => plan,
        _ => Map::new(),
    };
    // Required on every call (seed 003): producthub's value when it has one,
    // else the vendor's current one, else Revenium's own default.
    let vendor_published = body.get("published").and_then(Value::as_bool);
    let vendor_external_id = body
        .get("externalId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    // PUT replaces: a field we cleared must not come back from the base.
    for key in MODELLED_KEYS {
        body.remove(*key);
    }
    for key in MODELLED_PLAN_KEYS {
        base_plan.remove(*key);
    }
    if let Some(named) = named_passthrough(mask, &from_struct(m.vendor_fields.as_ref())) {
        for (key, value) in named {
            match value {
                Value::Null => body.remove(&key),
                value => body.insert(key, value),
            };
        }
    }
    body.extend(modelled_fields(product, m));
    // A value producthub cleared, in a change that names it, is sent cleared.
    let cleared = |path: &str| mask.is_some_and(|mask| names(mask, path));
    let published = match m.published {
        Some(published) => published,
        None if cleared("monetization.published") => DEFAULT_PUBLISHED,
        None => vendor_published.unwrap_or(DEFAULT_PUBLISHED),
    };
    body.insert("published".into(), published.into());
    let external_id = match non_empty(&m.external_id) {
        Some(id) => id,
        None if cleared("monetization.external_id") => String::new(),
        None => vendor_external_id.unwrap_or_default(),
    };
    body.insert("externalId".into(), external_id.into());
    if mask.is_some() {
        // Revenium increments the version on every update itself; ours would
        // set it back (a create carries it: Revenium's tools require it there).
        body.remove("version");
    }
    if let Some(plan) = &m.plan {
        // Unmodelled plan fields: the vendor's current ones, else ours.
        let mut plan_base = from_struct(plan.vendor_fields.as_ref());
        plan_base.extend(base_plan);
        body.insert("plan".into(), export_plan(plan, plan_base, Form::Request));
    }
    body.insert("teamId".into(), team_id(m, settings)?.into());
    body.insert("ownerId".into(), owner_id(m, settings)?.into());
    Ok(Value::Object(body))
}

/// The PUT body for a change that names its paths, over the vendor's
/// current copy: the copy as it is (references flattened, the version left
/// to Revenium), with producthub's values for the modelled fields the mask
/// names only (a named field producthub cleared is sent cleared), and the
/// fields the page requires on every call.
fn named_fields_over(
    product: &Product,
    m: &MonetizationProfile,
    copy: Map<String, Value>,
    mask: &UpdateMask,
    settings: &VendorSettings,
) -> Result<Value, AdapterError> {
    let mut body = copy;
    flatten_references(&mut body);
    body.remove("version");
    if let Some(Value::Object(plan)) = body.get_mut("plan") {
        strip_output_only(plan);
    }
    let named: Vec<&str> = MAPPING
        .iter()
        .filter(|field| touches(mask, field.canonical))
        .map(|field| field.vendor)
        .collect();
    let ours = modelled_fields(product, m);
    for key in named
        .iter()
        .filter(|key| is_json_key(key) && !key.contains('.') && !matches!(**key, "version" | "plan"))
    {
        body.remove(*key);
        if let Some(value) = ours.get(*key) {
            body.insert((*key).to_owned(), value.clone());
        }
    }
    let plan_keys: Vec<&str> = named
        .iter()
        .filter_map(|key| key.strip_prefix("plan."))
        .filter(|key| is_json_key(key))
        .collect();
    let plan_passthrough = m.plan.as_ref().and_then(|plan| {
        named_unmodelled(
            mask,
            "monetization.plan.vendor_fields",
            &from_struct(plan.vendor_fields.as_ref()),
        )
    });
    if names(mask, "monetization.plan")
        && let Some(plan) = &m.plan
    {
        // The whole plan named: ours, over the unmodelled fields of theirs.
        let mut base = match body.remove("plan") {
            Some(Value::Object(plan)) => plan,
            _ => Map::new(),
        };
        for key in MODELLED_PLAN_KEYS {
            base.remove(*key);
        }
        // Unmodelled plan fields: ours where the change names them, else theirs.
        let ours = from_struct(plan.vendor_fields.as_ref());
        let plan_base = if names(mask, "monetization.plan.vendor_fields") {
            base.into_iter().chain(ours).collect()
        } else {
            ours.into_iter().chain(base).collect()
        };
        body.insert("plan".into(), export_plan(plan, plan_base, Form::Request));
    } else if !plan_keys.is_empty() || plan_passthrough.is_some() {
        let mut plan = match body.remove("plan") {
            Some(Value::Object(plan)) => plan,
            _ => Map::new(),
        };
        let our_plan = match m.plan.as_ref().map(|p| export_plan(p, Map::new(), Form::Request)) {
            Some(Value::Object(plan)) => plan,
            _ => Map::new(),
        };
        for key in plan_keys {
            plan.remove(key);
            if let Some(value) = our_plan.get(key) {
                plan.insert(key.to_owned(), value.clone());
            }
        }
        for (key, value) in plan_passthrough.into_iter().flatten() {
            match value {
                Value::Null => plan.remove(&key),
                value => plan.insert(key, value),
            };
        }
        body.insert("plan".into(), Value::Object(plan));
    }
    if let Some(passed) = named_passthrough(Some(mask), &from_struct(m.vendor_fields.as_ref())) {
        for (key, value) in passed {
            match value {
                Value::Null => body.remove(&key),
                value => body.insert(key, value),
            };
        }
    }
    // Required on every call (seed 003): the copy's value, else ours...
    for key in REQUIRED_LISTS {
        if !body.contains_key(*key)
            && let Some(value) = ours.get(*key)
        {
            body.insert((*key).to_owned(), value.clone());
        }
    }
    // ...or Revenium's default.
    if !body.get("published").is_some_and(Value::is_boolean) {
        body.insert("published".into(), DEFAULT_PUBLISHED.into());
    }
    if !body.get("externalId").is_some_and(Value::is_string) {
        body.insert("externalId".into(), "".into());
    }
    body.insert("teamId".into(), team_id(m, settings)?.into());
    body.insert("ownerId".into(), owner_id(m, settings)?.into());
    Ok(Value::Object(body))
}

/// The list fields the update page requires on every call.
const REQUIRED_LISTS: &[&str] = &[
    "pricingRuleIds",
    "assetIds",
    "productIds",
    "slaDefinitionIds",
    "tags",
    "notificationAddressesOnInvoice",
    "namedOrganizations",
];

/// A plan as the vendor showed it, without what it computes itself (each
/// tier's `startingFrom`, in the plan's tiers and its rating aggregations').
fn strip_output_only(plan: &mut Map<String, Value>) {
    let strip_tiers = |tiers: Option<&mut Value>| {
        for tier in tiers.and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(tier) = tier.as_object_mut() {
                tier.remove("startingFrom");
            }
        }
    };
    strip_tiers(plan.get_mut("tiers"));
    for aggregation in plan
        .get_mut("ratingAggregations")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        strip_tiers(aggregation.get_mut("tiers"));
    }
}

/// Whether a change naming `mask`'s paths touches the canonical field
/// `path`: it names the field, a field above it, or a part of it.
fn touches(mask: &UpdateMask, path: &str) -> bool {
    match mask {
        UpdateMask::Full => true,
        UpdateMask::Paths(_) => mask.effective_paths().any(|p| {
            let named = p.as_str();
            named == path
                || path.strip_prefix(named).is_some_and(|rest| rest.starts_with('.'))
                || named.strip_prefix(path).is_some_and(|rest| rest.starts_with('.'))
        }),
    }
}

/// Whether a mask names `path` itself or a field above it (not `*`).
fn names(mask: &UpdateMask, path: &str) -> bool {
    match mask {
        UpdateMask::Full => false,
        UpdateMask::Paths(_) => mask.effective_paths().any(|p| {
            let named = p.as_str();
            named == path || path.strip_prefix(named).is_some_and(|rest| rest.starts_with('.'))
        }),
    }
}

/// Whether the only thing of Revenium's a mask names is the version, which a
/// PUT does not carry (Revenium keeps its own): then there is nothing to send.
fn names_only_the_version(mask: &UpdateMask) -> bool {
    match mask {
        UpdateMask::Full => false,
        UpdateMask::Paths(_) => mask
            .effective_paths()
            .filter_map(|p| p.field_names().next())
            .filter(|top| Revenium.concerns(top))
            .all(|top| top == "version"),
    }
}

fn product_path(m: &MonetizationProfile) -> Result<String, AdapterError> {
    let id = non_empty(&m.product_id).ok_or_else(|| AdapterError::NotReady {
        vendor: VENDOR,
        reason: "the product has no Revenium id yet: create it in Revenium first".into(),
    })?;
    Ok(format!("{PRODUCTS_PATH}/{}", super::json::encode_query_value(&id)))
}

fn error_message(body: &[u8]) -> String {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return truncated_text(body);
    };
    let mut parts = Vec::new();
    if let Some(message) = map.get("message").and_then(Value::as_str) {
        parts.push(message.to_owned());
    }
    match map.get("details") {
        Some(Value::String(details)) => parts.push(details.clone()),
        Some(Value::Object(details)) => match details.get("error").and_then(Value::as_str) {
            Some(error) => parts.push(error.to_owned()),
            None => parts.push(Value::Object(details.clone()).to_string()),
        },
        _ => {}
    }
    if let Some(Value::Array(errors)) = map.get("errors") {
        for error in errors {
            let field = error.get("field").and_then(Value::as_str);
            let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
            parts.push(match field {
                Some(field) => format!("{field}: {message}"),
                None => message.to_owned(),
            });
        }
    }
    if parts.is_empty() {
        truncated_text(body)
    } else {
        parts.join("; ")
    }
}

impl Adapter for Revenium {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    fn import(&self, product_json: &Value) -> Result<Product, AdapterError> {
        object(VENDOR, product_json)?;
        let parsed: ProductJson =
            serde_path_to_error::deserialize(product_json).map_err(|e| bad_json(VENDOR, e.to_string()))?;
        let mut others = parsed.other;
        let team_id = parsed.team_id.clone().or_else(|| nested_id(&others, "team"));
        let owner_id = parsed.owner_id.clone().or_else(|| nested_id(&others, "owner"));
        // Flat ids the vendor sent alongside nested ones stay where they were.
        if parsed.team_id.is_some() && others.contains_key("team") {
            others.insert("teamId".into(), parsed.team_id.clone().into());
        }
        if parsed.owner_id.is_some() && others.contains_key("owner") {
            others.insert("ownerId".into(), parsed.owner_id.clone().into());
        }
        let payment_source = read_enum(parsed.payment_source, "paymentSource", PAYMENT_SOURCES, &mut others);
        let product_id = match parsed.id {
            Some(IdValue::Text(id)) => id,
            Some(IdValue::Number(n)) => {
                others.insert("id".into(), Value::Number(n.clone()));
                n.to_string()
            }
            None => String::new(),
        };
        let plan = parsed.plan.map(import_plan).transpose()?;
        Ok(Product {
            display_name: parsed.name.unwrap_or_default(),
            description: parsed.description.unwrap_or_default(),
            version: parsed.version.unwrap_or_default(),
            monetization: Some(MonetizationProfile {
                owner_id: owner_id.unwrap_or_default(),
                team_id: team_id.unwrap_or_default(),
                pricing_rule_ids: parsed.pricing_rule_ids.unwrap_or_default(),
                asset_ids: parsed.asset_ids.unwrap_or_default(),
                product_ids: parsed.product_ids.unwrap_or_default(),
                sla_definition_ids: parsed.sla_definition_ids.unwrap_or_default(),
                tags: parsed.tags.unwrap_or_default(),
                notification_addresses_on_invoice: parsed.notification_addresses_on_invoice.unwrap_or_default(),
                published: parsed.published,
                payment_source,
                payment_configuration_id: parsed.payment_configuration_id.unwrap_or_default(),
                external_id: parsed.external_id.unwrap_or_default(),
                notify_client_on_invoice: parsed.notify_client_on_invoice.unwrap_or_default(),
                notify_client_trial_about_to_expire: parsed.notify_client_trial_about_to_expire.unwrap_or_default(),
                subscription_allow_mid_period_cancellation: parsed
                    .subscription_allow_mid_period_cancellation
                    .unwrap_or_default(),
                named_organizations: parsed.named_organizations.unwrap_or_default(),
                terms: parsed.terms.unwrap_or_default(),
                coming_soon: parsed.coming_soon.unwrap_or_default(),
                source_ids: parsed.source_ids.unwrap_or_default(),
                sla_ids: parsed.sla_ids.unwrap_or_default(),
                custom_pricing_rule_ids: parsed.custom_pricing_rule_ids.unwrap_or_default(),
                plan,
                product_id,
                status: parsed.status.unwrap_or_default(),
                vendor_fields: keep(others, "monetization.vendor_fields")?,
            }),
            ..Default::default()
        })
    }

    fn export(&self, product: &Product) -> Result<Value, AdapterError> {
        let m = monetization(product)?;
        let mut out = from_struct(m.vendor_fields.as_ref());
        out.extend(modelled_fields(product, m));
        // The id: ours unless the vendor's (numeric) form is kept.
        if !out.contains_key("id") {
            put_opt(&mut out, "id", non_empty(&m.product_id).map(Value::from));
        }
        put_opt(&mut out, "status", non_empty(&m.status).map(Value::from));
        // References: nested where the vendor nested them, flat otherwise.
        for (nested, flat, id) in [("team", "teamId", &m.team_id), ("owner", "ownerId", &m.owner_id)] {
            match out.get_mut(nested) {
                Some(Value::Object(reference)) => {
                    reference.insert("id".into(), id.clone().into());
                }
                _ => put_opt(&mut out, flat, non_empty(id).map(Value::from)),
            }
        }
        if let Some(plan) = &m.plan {
            out.insert(
                "plan".into(),
                export_plan(plan, from_struct(plan.vendor_fields.as_ref()), Form::Object),
            );
        }
        Ok(Value::Object(out))
    }

    fn create(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let m = monetization(product)?;
        check_vendor_rules(self, product)?;
        let team = team_id(m, settings)?;
        let body = request_body(product, m, from_struct(m.vendor_fields.as_ref()), None, settings)?;
        Ok(VendorRequest {
            method: Method::Post,
            path: PRODUCTS_PATH.into(),
            query: vec![("teamId", team)],
            body: Some(body),
        })
    }

    fn update(
        &self,
        product: &Product,
        mask: &UpdateMask,
        settings: &VendorSettings,
        last_known: Option<&Value>,
    ) -> Result<Option<VendorRequest>, AdapterError> {
        if !mask_concerns(self, mask) || names_only_the_version(mask) {
            return Ok(None);
        }
        let m = monetization(product)?;
        check_vendor_rules(self, product)?;
        let team = team_id(m, settings)?;
        let body = match last_known {
            // Over the vendor's current copy, a change names what it sends:
            // the rest stays as the vendor has it (someone may have changed
            // it in Revenium's console).
            Some(value) if matches!(mask, UpdateMask::Paths(_)) => {
                named_fields_over(product, m, object(VENDOR, value)?, mask, settings)?
            }
            Some(value) => request_body(product, m, object(VENDOR, value)?, Some(mask), settings)?,
            None => {
                let ours = match self.export(product)? {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                request_body(product, m, ours, Some(mask), settings)?
            }
        };
        Ok(Some(VendorRequest {
            method: Method::Put,
            path: product_path(m)?,
            query: vec![("teamId", team)],
            body: Some(body),
        }))
    }

    fn delete(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let m = monetization(product)?;
        Ok(VendorRequest {
            method: Method::Delete,
            path: product_path(m)?,
            query: vec![("teamId", team_id(m, settings)?)],
            body: None,
        })
    }

    fn get(&self, product: &Product, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let m = monetization(product)?;
        Ok(VendorRequest {
            method: Method::Get,
            path: product_path(m)?,
            query: vec![("teamId", team_id(m, settings)?)],
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
        let value: Value =
            serde_json::from_slice(response.body).map_err(|e| unreadable(VENDOR, response, e.to_string()))?;
        match value {
            Value::Array(products) => Ok(VendorPage { products, total: None }),
            Value::Object(map) => {
                // Any key under `_embedded` (productResourceList, productResponseList, ...).
                let products = match map.get("_embedded") {
                    Some(Value::Object(embedded)) => embedded
                        .values()
                        .find_map(|v| v.as_array().cloned())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                let total = map
                    .get("page")
                    .and_then(|p| p.get("totalElements"))
                    .and_then(Value::as_u64);
                Ok(VendorPage { products, total })
            }
            _ => Err(unreadable(
                VENDOR,
                response,
                "a product list is an object or an array".into(),
            )),
        }
    }

    /// `GET /v2/api/products?teamId=&page=&size=` (page from 0, Spring).
    fn list(&self, page: u32, settings: &VendorSettings) -> Result<VendorRequest, AdapterError> {
        let team = settings
            .revenium_team_id
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AdapterError::NotReady {
                vendor: VENDOR,
                reason: "listing Revenium products needs a teamId (--revenium-team-id)".into(),
            })?;
        Ok(VendorRequest {
            method: Method::Get,
            path: PRODUCTS_PATH.into(),
            query: vec![
                ("teamId", team),
                ("page", page.to_string()),
                ("size", self.page_size().to_string()),
            ],
            body: None,
        })
    }

    fn page_size(&self) -> u32 {
        100
    }

    fn read_error(&self, response: VendorResponse<'_>) -> Option<VendorError> {
        if (200..300).contains(&response.status) {
            return None;
        }
        let message = error_message(response.body);
        // Revenium's answer for an id it does not (or no longer) know,
        // whatever status comes with it: no product has that id.
        let kind = if message.contains(UNKNOWN_ID) {
            VendorErrorKind::NotFound
        } else {
            kind_from_http_status(response.status)
        };
        Some(VendorError {
            vendor: VENDOR,
            kind,
            http_status: Some(response.status),
            code: None,
            message,
            retry_after: parse_retry_after(response.retry_after),
            request_id: None,
        })
    }

    profile_place!(monetization, product_id);

    fn limit_violations(&self, product: &Product) -> Vec<crate::domain::FieldViolation> {
        limits::violations(product)
    }

    /// Revenium's update (PUT) replaces the whole product: what producthub
    /// does not model must come from the vendor's current copy.
    fn reads_before_update(&self) -> bool {
        true
    }

    fn vendor_counted_paths(&self) -> &'static [&'static str] {
        // "The version field will be automatically incremented by the API."
        &["version"]
    }

    fn concerns(&self, top_level_field: &str) -> bool {
        matches!(
            top_level_field,
            "display_name" | "description" | "version" | "monetization"
        )
    }
}

#[cfg(test)]
mod tests;
