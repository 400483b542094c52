//! Cryptlex's documented limits (Web API v3 product request schema), checked
//! before a product is stored or sent.

use crate::domain::FieldViolation;
use crate::domain::validation::check_length;
use crate::pb::Product;

const CRYPTLEX_MAX_TEXT: usize = 256;
const CRYPTLEX_MAX_METADATA_VALUE: usize = 4096;

/// Everything in `p` this vendor would refuse under its documented limits.
pub(super) fn violations(p: &Product) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check(p, &mut out);
    out
}

fn check(p: &Product, out: &mut Vec<FieldViolation>) {
    const WHOSE: &str = " for Cryptlex (licensing profile)";
    check_length(
        out,
        "product.display_name",
        &p.display_name,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    check_length(out, "product.description", &p.description, 0, CRYPTLEX_MAX_TEXT, WHOSE);
    let Some(l) = &p.licensing else { return };
    check_length(out, "product.licensing.name", &l.name, 0, CRYPTLEX_MAX_TEXT, WHOSE);
    check_length(
        out,
        "product.licensing.license_template_id",
        &l.license_template_id,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    check_length(
        out,
        "product.licensing.trial_policy_id",
        &l.trial_policy_id,
        0,
        CRYPTLEX_MAX_TEXT,
        WHOSE,
    );
    for (i, entry) in l.metadata.iter().enumerate() {
        let path = format!("product.licensing.metadata[{i}]");
        if !entry.key.is_empty() {
            check_length(out, &format!("{path}.key"), &entry.key, 1, CRYPTLEX_MAX_TEXT, WHOSE);
        }
        check_length(
            out,
            &format!("{path}.value"),
            &entry.value,
            0,
            CRYPTLEX_MAX_METADATA_VALUE,
            WHOSE,
        );
    }
}
