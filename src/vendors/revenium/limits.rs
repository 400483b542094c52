//! Revenium's limits (the client-side rules of Revenium's own tools),
//! checked before a product is stored or sent.

use crate::domain::FieldViolation;
use crate::domain::validation::{check_length, looks_like_email};
use crate::pb::Product;

const REVENIUM_MAX_NAME: usize = 255;

/// Everything in `p` this vendor would refuse under its documented limits.
pub(super) fn violations(p: &Product) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check(p, &mut out);
    out
}

fn check(p: &Product, out: &mut Vec<FieldViolation>) {
    const WHOSE: &str = " for Revenium (monetization profile)";
    check_length(
        out,
        "product.display_name",
        &p.display_name,
        0,
        REVENIUM_MAX_NAME,
        WHOSE,
    );
    let Some(m) = &p.monetization else { return };
    if p.version.is_empty() {
        out.push(FieldViolation::new(
            "product.version",
            format!("is required{WHOSE} (MAJOR.MINOR.PATCH, e.g. 1.0.0)"),
        ));
    }
    match &m.plan {
        None => out.push(FieldViolation::new(
            "product.monetization.plan",
            format!("is required{WHOSE}"),
        )),
        Some(plan) if plan.tiers.is_empty() => out.push(FieldViolation::new(
            "product.monetization.plan.tiers",
            format!("must hold at least one tier{WHOSE}"),
        )),
        Some(_) => {}
    }
    for (i, address) in m.notification_addresses_on_invoice.iter().enumerate() {
        if !looks_like_email(address) {
            out.push(FieldViolation::new(
                format!("product.monetization.notification_addresses_on_invoice[{i}]"),
                format!("must be an e-mail address, got {address:?}"),
            ));
        }
    }
    let Some(plan) = &m.plan else { return };
    let iso_4217 = plan.currency.len() == 3 && plan.currency.chars().all(|c| c.is_ascii_uppercase());
    if !plan.currency.is_empty() && !iso_4217 {
        out.push(FieldViolation::new(
            "product.monetization.plan.currency",
            format!("must be an ISO 4217 code such as USD, got {:?}", plan.currency),
        ));
    }
    for (i, aggregation) in plan.rating_aggregations.iter().enumerate() {
        if aggregation.aggregation_type == crate::pb::AggregationType::Last as i32 {
            out.push(FieldViolation::new(
                format!("product.monetization.plan.rating_aggregations[{i}].aggregation_type"),
                format!(
                    "LAST applies to elements only; rating aggregations take SUM, COUNT, MAX, MIN or AVERAGE{WHOSE}"
                ),
            ));
        }
    }
    for (path, count) in [
        ("product.monetization.plan.period_count", plan.period_count),
        ("product.monetization.plan.trial_period_count", plan.trial_period_count),
    ] {
        if let Some(n) = count.filter(|n| *n <= 0) {
            out.push(FieldViolation::new(path, format!("must be greater than 0, got {n}")));
        }
    }
}
