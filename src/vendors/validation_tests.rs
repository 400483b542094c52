//! Tests of the whole-product validation: the domain's rules and each
//! vendor's documented limits, as `vendors::validate` runs them together.

use crate::pb::{IotDataFormat, IotProductType, IotProfile, LicensingMetadata, LicensingProfile, Product};
use crate::vendors::validate;

fn valid() -> Product {
    Product {
        display_name: "Thermostat".into(),
        version: "1.2.3".into(),
        ..Default::default()
    }
}

fn fields(p: &Product) -> Vec<String> {
    validate(p).into_iter().map(|v| v.field).collect()
}

fn iot() -> IotProfile {
    IotProfile {
        model_id: "thermo".into(),
        product_type: IotProductType::Device as i32,
        data_format: IotDataFormat::Json as i32,
        ..Default::default()
    }
}

#[test]
fn a_minimal_product_is_valid() {
    assert!(validate(&valid()).is_empty());
}

#[test]
fn required_fields_are_reported_with_their_paths() {
    let p = Product {
        iot: Some(IotProfile::default()),
        ..Default::default()
    };
    assert_eq!(
        fields(&p),
        [
            "product.display_name",
            "product.iot.model_id",
            "product.iot.product_type",
            "product.iot.data_format"
        ]
    );
}

#[test]
fn undefined_enum_values_are_rejected() {
    let mut p = valid();
    p.iot = Some(IotProfile {
        product_type: 42,
        ..iot()
    });
    assert_eq!(fields(&p), ["product.iot.product_type"]);
}

#[test]
fn enos_name_rules_apply_only_with_an_iot_profile() {
    let mut p = valid();
    p.display_name = "a;b".into();
    assert!(validate(&p).is_empty());
    p.iot = Some(iot());
    assert_eq!(fields(&p), ["product.display_name"]);
    p.display_name = "x".repeat(65);
    assert_eq!(fields(&p), ["product.display_name"]);
    p.display_name = "x".repeat(64);
    assert!(validate(&p).is_empty());
}

#[test]
fn enos_tags_and_validity() {
    let mut p = valid();
    let mut profile = iot();
    profile.tags.insert("ok/key_1".into(), "v".into());
    profile.tags.insert("bad key".into(), "v".into());
    profile.tags.insert("k".into(), " padded".into());
    profile.default_valid_days = Some(0);
    profile.max_valid_days = Some(3650);
    p.iot = Some(profile);
    assert_eq!(
        fields(&p),
        [
            "product.iot.tags[\"bad key\"]",
            "product.iot.tags[\"k\"]",
            "product.iot.default_valid_days"
        ]
    );
}

#[test]
fn cryptlex_metadata_limits() {
    let mut p = valid();
    p.licensing = Some(LicensingProfile {
        license_template_id: "lt".into(),
        metadata: vec![
            LicensingMetadata {
                key: "k".into(),
                value: "v".repeat(4096),
                ..Default::default()
            },
            LicensingMetadata {
                key: "k".repeat(257),
                value: "v".repeat(4097),
                ..Default::default()
            },
            LicensingMetadata::default(),
        ],
        ..Default::default()
    });
    assert_eq!(
        fields(&p),
        [
            "product.licensing.metadata[2].key",
            "product.licensing.metadata[1].key",
            "product.licensing.metadata[1].value"
        ]
    );
}

#[test]
fn version_must_be_semantic() {
    for bad in ["1", "1.0", "1.0.0.0", "a.b.c", "1..0", "v1.0.0"] {
        let mut p = valid();
        p.version = bad.into();
        assert_eq!(fields(&p), ["product.version"], "{bad}");
    }
}

#[test]
fn labels_follow_the_usual_rules() {
    let mut p = valid();
    p.labels.insert("env".into(), "prod".into());
    p.labels.insert("Env".into(), "x".into());
    p.labels.insert("team".into(), "t".repeat(64));
    assert_eq!(fields(&p), ["product.labels[\"Env\"]", "product.labels[\"team\"]"]);
}

mod properties {
    use super::*;
    use crate::pb::{MonetizationProfile, Plan, PriceTier};
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    fn metadata_entries(pairs: Vec<(String, String)>) -> Vec<LicensingMetadata> {
        pairs
            .into_iter()
            .map(|(key, value)| LicensingMetadata {
                key,
                value,
                ..Default::default()
            })
            .collect()
    }

    fn any_product() -> impl Strategy<Value = Product> {
        (
            (".{0,80}", ".{0,600}", ".{0,12}", btree_map(".{0,70}", ".{0,70}", 0..4)),
            proptest::option::of((".{0,10}", -2..5i32, -2..5i32, btree_map(".{0,60}", ".{0,210}", 0..4))),
            proptest::option::of((".{0,300}", vec((".{0,300}", ".{0,20}"), 0..3))),
            proptest::option::of((".{0,5}", vec(".{0,30}", 0..3))),
        )
            .prop_map(
                |((display_name, description, version, labels), iot, licensing, monetization)| Product {
                    display_name,
                    description,
                    version,
                    labels,
                    iot: iot.map(|(model_id, product_type, data_format, tags)| IotProfile {
                        model_id,
                        product_type,
                        data_format,
                        tags,
                        ..Default::default()
                    }),
                    licensing: licensing.map(|(template, metadata)| LicensingProfile {
                        license_template_id: template,
                        metadata: metadata_entries(metadata),
                        ..Default::default()
                    }),
                    monetization: monetization.map(|(currency, addresses)| MonetizationProfile {
                        notification_addresses_on_invoice: addresses,
                        plan: Some(Plan {
                            currency,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
    }

    fn valid_product() -> impl Strategy<Value = Product> {
        (
            "[A-Za-z][A-Za-z0-9 _-]{0,40}[A-Za-z0-9]",
            "[a-zA-Z0-9 .,:()!?-]{0,100}",
            (0u32..100, 0u32..100, 0u32..100),
            btree_map("[a-z][a-z0-9_-]{0,20}", "[a-z0-9]{0,20}", 0..4),
            btree_map(
                "[A-Za-z0-9_/-]{1,50}",
                "[A-Za-z0-9]([A-Za-z0-9 ]{0,50}[A-Za-z0-9])?",
                0..5,
            ),
            vec(("[a-z]{1,256}", ".{0,100}"), 0..3),
        )
            .prop_map(
                |(display_name, description, (major, minor, patch), labels, tags, metadata)| Product {
                    display_name,
                    description,
                    version: format!("{major}.{minor}.{patch}"),
                    labels,
                    iot: Some(IotProfile {
                        model_id: "m".into(),
                        product_type: IotProductType::Gateway as i32,
                        data_format: IotDataFormat::Custom as i32,
                        tags,
                        ..Default::default()
                    }),
                    licensing: Some(LicensingProfile {
                        license_template_id: "lt".into(),
                        metadata: metadata_entries(metadata),
                        ..Default::default()
                    }),
                    monetization: Some(MonetizationProfile {
                        plan: Some(Plan {
                            currency: "EUR".into(),
                            tiers: vec![PriceTier::default()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
    }

    proptest! {
        #[test]
        fn every_violation_names_a_product_field(product in any_product()) {
            for violation in validate(&product) {
                prop_assert!(violation.field.starts_with("product."), "{}", violation);
                prop_assert!(!violation.description.is_empty());
            }
        }

        #[test]
        fn products_within_every_vendor_limit_are_accepted(product in valid_product()) {
            let violations = validate(&product);
            prop_assert!(violations.is_empty(), "{:?}", violations);
        }

        #[test]
        fn enos_forbidden_characters_are_always_caught(
            before in "[a-z]{0,10}",
            bad in proptest::sample::select(vec!['<', '>', ';', '@', '*', '%', '&', '\\']),
            after in "[a-z]{0,10}",
        ) {
            let mut product = Product {
                display_name: format!("{before}{bad}{after}"),
                ..Default::default()
            };
            prop_assert!(validate(&product).is_empty(), "only EnOS forbids these");
            product.iot = Some(IotProfile {
                model_id: "m".into(),
                product_type: IotProductType::Device as i32,
                data_format: IotDataFormat::Json as i32,
                ..Default::default()
            });
            let fields: Vec<String> = validate(&product).into_iter().map(|v| v.field).collect();
            prop_assert_eq!(fields, vec!["product.display_name".to_string()]);
        }
    }
}

/// A Struct nested `levels` deep: `{"k": {"k": ... 1}}`, as JSON.
fn nested_json(levels: usize) -> serde_json::Value {
    (0..levels).fold(serde_json::json!(1), |inner, _| serde_json::json!({ "k": inner }))
}

fn licensed_with(vendor_fields: serde_json::Value) -> Product {
    let object =
        serde_json::json!({"id": "c1", "name": "n", "displayName": "N", "licenseTemplateId": "lt", "x": vendor_fields});
    crate::vendors::Vendor::Cryptlex
        .adapter()
        .import(&object)
        .expect("within the passthrough depth")
}

#[test]
fn vendor_fields_hold_only_what_json_can_carry() {
    let number = |value: f64| {
        let mut fields = prost_types::Struct::default();
        fields.fields.insert(
            "n".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(value)),
            },
        );
        Product {
            licensing: Some(LicensingProfile {
                license_template_id: "lt".into(),
                vendor_fields: Some(fields),
                ..Default::default()
            }),
            ..valid()
        }
    };
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let violations = validate(&number(bad));
        assert_eq!(
            violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
            ["product.licensing.vendor_fields.n"],
            "{bad}: {violations:?}"
        );
    }
    assert!(validate(&number(0.0)).is_empty());
    assert!(validate(&number(1.5)).is_empty());
    // -0 is kept, and goes to the vendor as it came.
    let negative_zero = number(-0.0);
    assert!(validate(&negative_zero).is_empty());
    let sent = crate::vendors::Vendor::Cryptlex
        .adapter()
        .export(&negative_zero)
        .unwrap();
    assert_eq!(sent["n"].to_string(), "-0.0");
}

#[test]
fn create_and_import_agree_on_how_deep_vendor_fields_may_nest() {
    // The deepest an import keeps is also what validation accepts...
    let deepest = licensed_with(nested_json(crate::domain::validation::MAX_STRUCT_DEPTH));
    assert!(validate(&deepest).is_empty(), "{:?}", validate(&deepest));
    // ...and one level more is refused by both.
    let object = serde_json::json!({"id": "c1", "name": "n", "displayName": "N", "licenseTemplateId": "lt",
                                    "x": nested_json(crate::domain::validation::MAX_STRUCT_DEPTH + 1)});
    assert!(crate::vendors::Vendor::Cryptlex.adapter().import(&object).is_err());
    let mut too_deep = deepest;
    let mut fields = too_deep.licensing.as_ref().unwrap().vendor_fields.clone().unwrap();
    let inner = fields.fields.remove("x").unwrap();
    let mut wrapper = prost_types::Struct::default();
    wrapper.fields.insert("k".into(), inner);
    fields.fields.insert(
        "x".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StructValue(wrapper)),
        },
    );
    too_deep.licensing.as_mut().unwrap().vendor_fields = Some(fields);
    let violations = validate(&too_deep);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].description.contains("nested deeper"), "{violations:?}");
}
