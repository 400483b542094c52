//! The per-vendor field mapping tables, rendered into `docs/vendor-mappings.md`.
//!
//! Each vendor module declares its table next to the code that implements it; a
//! test renders the tables and compares them with the committed document, and
//! checks every canonical path against the proto schema, so neither can drift.

use super::{Vendor, cryptlex, enos, revenium};

/// One row: a canonical field, the vendor JSON field it maps to, and notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMapping {
    /// Canonical path from `Product`, in update-mask syntax.
    pub canonical: &'static str,
    /// The vendor's JSON field (dotted for nesting).
    pub vendor: &'static str,
    pub notes: &'static str,
}

impl FieldMapping {
    pub const fn new(canonical: &'static str, vendor: &'static str, notes: &'static str) -> Self {
        Self {
            canonical,
            vendor,
            notes,
        }
    }
}

/// What each of a vendor's calls carries, and why.
pub fn requests(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Enos => enos::REQUESTS,
        Vendor::Cryptlex => cryptlex::REQUESTS,
        Vendor::Revenium => revenium::REQUESTS,
    }
}

/// The table of a vendor.
pub fn table(vendor: Vendor) -> &'static [FieldMapping] {
    match vendor {
        Vendor::Enos => enos::MAPPING,
        Vendor::Cryptlex => cryptlex::MAPPING,
        Vendor::Revenium => revenium::MAPPING,
    }
}

const INTRO: &str = "\
# Vendor field mappings

Generated from the `MAPPING` tables in `src/vendors/*/mod.rs` (the test
`vendors::mapping::tests::document_is_current` fails when this file is stale; run
`UPDATE_DOCS=1 cargo test --lib document_is_current` to rewrite it).

How to read the tables: *canonical* is the path in `producthub.v1.Product` (usable in an
update mask, except rows inside lists such as `licensing.metadata.key`, which name a field of
each item), *vendor* the JSON field in the vendor's product object.
Which vendor fields are confirmed by the vendors' documents and which are inferred is recorded
in `shared/vendor-apis.md`; fields marked unconfirmed there are not modelled (they stay in
`vendor_fields`). Where a row relies on an inference, its notes say so.

Rules common to every adapter:
- Fields not in a table are kept, exactly as the vendor sent them, in the profile's
  `vendor_fields` (nested objects in the `vendor_fields` of their canonical message), and
  written back when the product object is exported. Revenium's whole-body PUT sends the
  vendor's current values of these fields, or ours for keys the update mask names.
- Nesting in `vendor_fields` is limited to 20 levels (deeper JSON is refused, naming the
  field), so every stored product stays readable; CreateProduct and UpdateProduct apply the
  same limit, so any stored product can be imported back. Numbers in `vendor_fields` must be
  finite (JSON has no NaN or infinity: refused, naming the field); -0 is kept and sent as
  `-0.0`.
- For documented fields, `null`, an absent field and (for strings and lists) an empty value
  read the same, and are written as absent, except where a note says otherwise; documented
  booleans are always written.
- A vendor enum value producthub does not know is kept as sent in `vendor_fields` and the
  canonical enum stays `*_UNSPECIFIED`.
- Unknown numeric fields are kept as IEEE doubles: integers up to 2^53 exactly; a larger
  integer is refused (with its path) rather than rounded. A whole number written as a
  decimal (`2.0`) comes back as an integer (`2`).
- Times are rewritten in UTC with the fewest fraction digits that keep their value
  (Cryptlex `…T14:15:22.000Z` comes back as `…T14:15:22Z`).
";

/// The whole document.
pub fn markdown() -> String {
    let mut out = String::from(INTRO);
    for vendor in Vendor::ALL {
        let (title, api) = match vendor {
            Vendor::Enos => (
                "EnOS",
                "connect-service v2.1, `/connect-service/v2.1/products?action=…` (profile `iot`)",
            ),
            Vendor::Cryptlex => ("Cryptlex", "Web API v3, `/v3/products` (profile `licensing`)"),
            Vendor::Revenium => ("Revenium", "platform API, `/v2/api/products` (profile `monetization`)"),
        };
        out.push_str(&format!(
            "\n## {title}\n\n{api}\n\n| canonical | vendor | notes |\n|---|---|---|\n"
        ));
        for row in table(vendor) {
            out.push_str(&format!("| `{}` | `{}` | {} |\n", row.canonical, row.vendor, row.notes));
        }
        out.push_str("\n### What each call carries\n\n");
        out.push_str(requests(vendor));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "docs/vendor-mappings.md";

    #[test]
    fn document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
        let expected = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{DOC} is stale: run `UPDATE_DOCS=1 cargo test --lib document_is_current`"
        );
    }

    /// Resolves a dotted path through the schema, descending into repeated
    /// messages too (mapping rows name fields of list items).
    fn resolves(path: &str) -> bool {
        let mut message = crate::domain::schema::product_descriptor();
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let Some(field) = message.get_field_by_name(part) else {
                return false;
            };
            if parts.peek().is_none() {
                return true;
            }
            match field.kind() {
                prost_reflect::Kind::Message(m) => message = m,
                _ => return false,
            }
        }
        false
    }

    #[test]
    fn canonical_paths_exist() {
        for vendor in Vendor::ALL {
            for row in table(vendor) {
                assert!(
                    resolves(row.canonical),
                    "{vendor}: {} is not a Product field",
                    row.canonical
                );
            }
        }
        assert!(!resolves("iot.nope"));
    }
}
