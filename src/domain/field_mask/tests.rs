use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use prost_reflect::{ReflectMessage, Value};

use super::*;
use crate::pb::{
    IotDataFormat, IotProductType, IotProfile, LicensingMetadata, LicensingProfile, MonetizationProfile, Plan,
    PriceTier,
};

fn mask(paths: &[&str]) -> UpdateMask {
    UpdateMask::parse(&paths.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
}

fn mask_error(paths: &[&str]) -> String {
    let violations = UpdateMask::parse(&paths.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap_err();
    assert!(violations.iter().all(|v| v.field.starts_with("update_mask")));
    violations
        .into_iter()
        .map(|v| v.description)
        .collect::<Vec<_>>()
        .join("; ")
}

fn iot(model: &str) -> IotProfile {
    IotProfile {
        model_id: model.into(),
        product_type: IotProductType::Device as i32,
        data_format: IotDataFormat::Json as i32,
        product_key: "pk-assigned-by-enos".into(),
        ..Default::default()
    }
}

fn stored() -> Product {
    Product {
        name: "products/thermo".into(),
        uid: "uid-1".into(),
        display_name: "Thermostat".into(),
        description: "old".into(),
        labels: [
            ("env".to_string(), "dev".to_string()),
            ("team".to_string(), "a".to_string()),
        ]
        .into(),
        etag: "e1".into(),
        create_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
        iot: Some(iot("m1")),
        ..Default::default()
    }
}

#[test]
fn parses_nested_map_and_struct_paths() {
    let m = mask(&[
        "display_name",
        "iot.model_id",
        "monetization.plan.currency",
        "labels.env",
        "iot.vendor_fields.x",
    ]);
    let UpdateMask::Paths(paths) = m else { panic!() };
    assert_eq!(
        paths[2].field_names().collect::<Vec<_>>(),
        ["monetization", "plan", "currency"]
    );
    assert!(matches!(mask(&["*"]), UpdateMask::Full));
}

#[test]
fn backticks_quote_map_keys() {
    let merged = merge(
        &stored(),
        &Product {
            labels: [("a.b".to_string(), "1".to_string())].into(),
            ..Default::default()
        },
        &mask(&["labels.`a.b`"]),
    )
    .unwrap();
    assert_eq!(merged.labels.get("a.b").map(String::as_str), Some("1"));
    assert_eq!(merged.labels.len(), 3);
}

#[test]
fn bad_paths_are_named() {
    assert!(mask_error(&["bogus"]).contains("\"bogus\""));
    assert!(mask_error(&["iot.nope"]).contains("IotProfile has no field \"nope\""));
    assert!(mask_error(&["licensing.metadata.key"]).contains("repeated field"));
    assert!(mask_error(&["display_name.x"]).contains("no sub-fields"));
    assert!(mask_error(&["create_time.seconds"]).contains("no sub-fields"));
    assert!(mask_error(&["*", "display_name"]).contains("cannot be combined"));
    assert!(mask_error(&[""]).contains("empty"));
    assert!(mask_error(&["iot..model_id"]).contains("empty"));
    assert!(mask_error(&["labels.`open"]).contains("not closed"));
    assert!(mask_error(&["labels.a.b"]).contains("ends at a key"));
    // Every bad path is reported, not only the first.
    assert_eq!(
        UpdateMask::parse(&["x".into(), "y".into(), "display_name".into()])
            .unwrap_err()
            .len(),
        2
    );
    let too_many: Vec<String> = (0..=MAX_PATHS).map(|_| "display_name".to_string()).collect();
    assert!(UpdateMask::parse(&too_many).is_err());
}

#[test]
fn named_fields_take_the_request_value_or_are_cleared() {
    let patch = Product {
        display_name: "New name".into(),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &mask(&["display_name", "description"])).unwrap();
    assert_eq!(merged.display_name, "New name");
    assert_eq!(merged.description, "", "named but unset: cleared");
    assert_eq!(merged.labels, stored().labels, "not named: unchanged");
}

#[test]
fn map_entries_are_set_and_removed_one_by_one() {
    let patch = Product {
        labels: [("env".to_string(), "prod".to_string())].into(),
        ..Default::default()
    };
    let merged = merge(
        &stored(),
        &patch,
        &mask(&["labels.env", "labels.team", "labels.absent"]),
    )
    .unwrap();
    assert_eq!(merged.labels, [("env".to_string(), "prod".to_string())].into());
    let whole = merge(&stored(), &Product::default(), &mask(&["labels"])).unwrap();
    assert!(whole.labels.is_empty());
}

#[test]
fn nested_paths_create_parents_only_to_set_values() {
    let mut without_licensing = stored();
    without_licensing.licensing = None;
    let patch = Product {
        licensing: Some(LicensingProfile {
            trial_policy_id: "tp".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let merged = merge(&without_licensing, &patch, &mask(&["licensing.trial_policy_id"])).unwrap();
    assert_eq!(merged.licensing.unwrap().trial_policy_id, "tp");
    let cleared = merge(
        &without_licensing,
        &Product::default(),
        &mask(&["licensing.trial_policy_id"]),
    )
    .unwrap();
    assert_eq!(
        cleared.licensing, None,
        "clearing inside an absent profile creates nothing"
    );
}

#[test]
fn output_only_and_identifier_paths_are_ignored() {
    let patch = Product {
        name: "products/other".into(),
        uid: "forged".into(),
        create_time: Some(prost_types::Timestamp { seconds: 99, nanos: 0 }),
        iot: Some(IotProfile {
            product_key: "forged".into(),
            ..iot("m1")
        }),
        ..Default::default()
    };
    let merged = merge(
        &stored(),
        &patch,
        &mask(&["name", "uid", "create_time", "iot.product_key", "etag"]),
    )
    .unwrap();
    assert_eq!(merged, stored());
}

#[test]
fn replacing_a_profile_keeps_what_the_vendor_assigned() {
    let patch = Product {
        iot: Some(IotProfile {
            bidirectional_auth: true,
            product_key: "forged".into(),
            ..iot("m1")
        }),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &mask(&["iot"])).unwrap();
    let merged_iot = merged.iot.unwrap();
    assert!(merged_iot.bidirectional_auth);
    assert_eq!(merged_iot.product_key, "pk-assigned-by-enos");
}

#[test]
fn immutable_fields_cannot_change_once_set() {
    let patch = Product {
        iot: Some(iot("m2")),
        ..Default::default()
    };
    let violations = merge(&stored(), &patch, &mask(&["iot.model_id"])).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "product.iot.model_id");
    assert!(violations[0].description.contains("\"m1\""));

    let patch = Product {
        iot: Some(IotProfile {
            product_type: IotProductType::Gateway as i32,
            ..iot("m1")
        }),
        ..Default::default()
    };
    let violations = merge(&stored(), &patch, &mask(&["iot"])).unwrap_err();
    assert_eq!(violations[0].field, "product.iot.product_type");
    assert!(
        violations[0]
            .description
            .contains("IOT_PRODUCT_TYPE_DEVICE, requested IOT_PRODUCT_TYPE_GATEWAY"),
        "{}",
        violations[0].description
    );

    // Left unset, an immutable field keeps its value: replacing the profile
    // without naming the model is allowed.
    let patch = Product {
        iot: Some(IotProfile {
            bidirectional_auth: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &mask(&["iot"])).unwrap();
    assert_eq!(merged.iot.as_ref().unwrap().model_id, "m1");
    assert_eq!(merged.iot.unwrap().product_type, IotProductType::Device as i32);

    // Removing the whole profile is not changing its fields.
    let removed = merge(&stored(), &Product::default(), &mask(&["iot"])).unwrap();
    assert_eq!(removed.iot, None);
}

#[test]
fn immutable_fields_may_be_set_the_first_time() {
    let mut no_iot = stored();
    no_iot.iot = None;
    let patch = Product {
        iot: Some(iot("m9")),
        ..Default::default()
    };
    assert_eq!(
        merge(&no_iot, &patch, &mask(&["iot"])).unwrap().iot.unwrap().model_id,
        "m9"
    );
}

#[test]
fn star_replaces_everything_but_server_fields() {
    let patch = Product {
        display_name: "Replaced".into(),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &mask(&["*"])).unwrap();
    assert_eq!(merged.display_name, "Replaced");
    assert!(merged.labels.is_empty() && merged.description.is_empty() && merged.iot.is_none());
    assert_eq!(
        (merged.name.as_str(), merged.uid.as_str()),
        ("products/thermo", "uid-1")
    );
    assert_eq!(merged.create_time, stored().create_time);
}

#[test]
fn repeated_fields_are_replaced_whole() {
    let mut with_metadata = stored();
    with_metadata.licensing = Some(LicensingProfile {
        metadata: vec![
            LicensingMetadata {
                key: "a".into(),
                ..Default::default()
            },
            LicensingMetadata {
                key: "b".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let patch = Product {
        licensing: Some(LicensingProfile {
            metadata: vec![LicensingMetadata {
                key: "c".into(),
                id: "forged".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let merged = merge(&with_metadata, &patch, &mask(&["licensing.metadata"])).unwrap();
    let metadata = merged.licensing.unwrap().metadata;
    assert_eq!(metadata.len(), 1);
    assert_eq!(metadata[0].key, "c");
    assert_eq!(
        metadata[0].id, "",
        "output-only inside list items is not taken from clients"
    );
}

#[test]
fn struct_keys_are_addressable() {
    let mut fields = prost_types::Struct::default();
    fields.fields.insert(
        "protocolGatewayIds".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("gw".into())),
        },
    );
    let patch = Product {
        iot: Some(IotProfile {
            vendor_fields: Some(fields.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &mask(&["iot.vendor_fields.protocolGatewayIds"])).unwrap();
    assert_eq!(merged.iot.as_ref().unwrap().vendor_fields, Some(fields));
    let removed = merge(
        &merged,
        &Product::default(),
        &mask(&["iot.vendor_fields.protocolGatewayIds"]),
    )
    .unwrap();
    assert_eq!(removed.iot.unwrap().vendor_fields, None);
}

#[test]
fn implied_mask_names_only_set_fields() {
    let patch = Product {
        name: "products/thermo".into(),
        etag: "e1".into(),
        description: "new".into(),
        monetization: Some(MonetizationProfile {
            plan: Some(Plan {
                currency: "EUR".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let implied = UpdateMask::implied_by(&patch);
    let paths: Vec<&str> = implied.effective_paths().map(MaskPath::as_str).collect();
    assert_eq!(paths, ["description", "monetization.plan.currency"]);
    let merged = merge(&stored(), &patch, &implied).unwrap();
    assert_eq!(merged.display_name, "Thermostat");
    assert_eq!(merged.description, "new");
    assert_eq!(merged.monetization.unwrap().plan.unwrap().currency, "EUR");
}

// ---- properties ----------------------------------------------------------

/// Leaf and subtree paths the properties pick masks from (no immutable ones:
/// those have their own tests above).
const PATHS: &[&str] = &[
    "display_name",
    "description",
    "version",
    "labels",
    "localized_display_names",
    "iot.bidirectional_auth",
    "iot.tags",
    "iot.default_valid_days",
    "licensing",
    "licensing.trial_policy_id",
    "licensing.metadata",
    "monetization.tags",
    "monetization.published",
    "monetization.plan",
    "monetization.plan.currency",
    "monetization.plan.tiers",
];

fn text() -> impl Strategy<Value = String> {
    "[a-z]{0,6}"
}

fn product_strategy() -> impl Strategy<Value = Product> {
    let iot = (
        text(),
        0..3i32,
        any::<bool>(),
        btree_map(text(), text(), 0..3),
        proptest::option::of(1..3650i32),
        text(),
    )
        .prop_map(
            |(model_id, product_type, bidirectional_auth, tags, default_valid_days, product_key)| IotProfile {
                model_id,
                product_type,
                bidirectional_auth,
                tags,
                default_valid_days,
                product_key,
                ..Default::default()
            },
        );
    let licensing =
        (text(), text(), vec((text(), text()), 0..3)).prop_map(|(template, trial, metadata)| LicensingProfile {
            license_template_id: template,
            trial_policy_id: trial,
            metadata: metadata
                .into_iter()
                .map(|(key, value)| LicensingMetadata {
                    key,
                    value,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    let plan = (text(), vec(proptest::option::of(0.0..1e6f64), 0..3)).prop_map(|(currency, tiers)| Plan {
        currency,
        tiers: tiers
            .into_iter()
            .map(|up_to| PriceTier {
                up_to,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let monetization = (
        vec(text(), 0..3),
        proptest::option::of(any::<bool>()),
        proptest::option::of(plan),
    )
        .prop_map(|(tags, published, plan)| MonetizationProfile {
            tags,
            published,
            plan,
            ..Default::default()
        });
    (
        (
            text(),
            text(),
            text(),
            btree_map(text(), text(), 0..3),
            btree_map(text(), text(), 0..2),
        ),
        proptest::option::of(iot),
        proptest::option::of(licensing),
        proptest::option::of(monetization),
    )
        .prop_map(
            |((display_name, description, version, labels, localized_display_names), iot, licensing, monetization)| {
                Product {
                    name: "products/p".into(),
                    display_name,
                    description,
                    version,
                    labels,
                    localized_display_names,
                    iot,
                    licensing,
                    monetization,
                    ..Default::default()
                }
            },
        )
}

/// The value at a dotted path; `None` when it or a parent is unset.
fn value_at(product: &Product, path: &str) -> Option<Value> {
    let mut message = to_dynamic(product);
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = message.descriptor().get_field_by_name(part)?;
        if !message.has_field(&field) {
            return None;
        }
        let value = message.get_field(&field).into_owned();
        if parts.peek().is_none() {
            return Some(value);
        }
        message = match value {
            Value::Message(m) => m,
            _ => return None,
        };
    }
    None
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

/// Patches whose immutable IoT fields agree with the stored ones, so merges are
/// accepted and the properties speak about mask semantics alone.
fn align_immutables(stored: &Product, patch: &mut Product) {
    if let (Some(s), Some(p)) = (&stored.iot, &mut patch.iot) {
        p.model_id = s.model_id.clone();
        p.product_type = s.product_type;
        p.data_format = s.data_format;
    }
}

proptest! {
    #[test]
    fn masked_paths_take_the_patch_and_others_stay(
        stored in product_strategy(),
        mut patch in product_strategy(),
        chosen in proptest::sample::subsequence(PATHS, 0..=PATHS.len()),
    ) {
        align_immutables(&stored, &mut patch);
        let merged = merge(&stored, &patch, &mask(&chosen)).unwrap();
        let clean_patch = { let mut p = patch.clone(); clear_output_only(&mut p); p };
        for path in PATHS {
            if chosen.contains(path) {
                prop_assert_eq!(value_at(&merged, path), value_at(&clean_patch, path), "masked {}", path);
            } else if !chosen.iter().any(|c| related(c, path)) {
                prop_assert_eq!(value_at(&merged, path), value_at(&stored, path), "unmasked {}", path);
            }
        }
        // Server-assigned fields never move.
        if let Some(merged_iot) = &merged.iot {
            let assigned = stored.iot.as_ref().map(|i| i.product_key.clone()).unwrap_or_default();
            prop_assert_eq!(&merged_iot.product_key, &assigned);
        }
    }

    #[test]
    fn the_common_field_shortcut_agrees_with_the_general_merge(
        stored in product_strategy(),
        patch in product_strategy(),
        chosen in proptest::sample::subsequence(
            &["display_name", "description", "version", "labels", "localized_display_names", "labels.env", "labels.x", "localized_display_names.zh_CN"][..],
            1..=4,
        ),
    ) {
        let mask = mask(&chosen);
        let fast = merge_common_fields(&stored, &patch, &mask).expect("common fields take the shortcut");
        prop_assert_eq!(Ok(fast), merge_reflective(&stored, &patch, &mask));
    }

    #[test]
    fn clearing_output_only_fields_on_the_wire_agrees_with_the_reflective_walk(product in product_strategy()) {
        let filled = with_every_output_only_field_set(&product);
        // The walk itself, not the reflective fallback behind it.
        let mut kept = Vec::new();
        let walked = strip_output_only(&schema::product_descriptor(), &filled.encode_to_vec(), &mut kept);
        prop_assert_eq!(walked, Ok(true));
        prop_assert_eq!(Product::decode(kept.as_slice()).ok(), Some(cleared_by_reflection(&filled)));
        let mut cleared = filled.clone();
        clear_output_only(&mut cleared);
        prop_assert_eq!(&cleared, &cleared_by_reflection(&filled));
        prop_assert_ne!(&cleared, &filled);
        // A product with nothing to clear stays as it is.
        let mut again = cleared.clone();
        clear_output_only(&mut again);
        prop_assert_eq!(again, cleared);
    }

    #[test]
    fn star_mask_equals_the_patch_apart_from_server_fields(stored in product_strategy(), mut patch in product_strategy()) {
        align_immutables(&stored, &mut patch);
        let merged = merge(&stored, &patch, &UpdateMask::Full).unwrap();
        let mut expected = patch.clone();
        clear_output_only(&mut expected);
        expected.name = stored.name.clone();
        if let (Some(e), Some(s)) = (&mut expected.iot, &stored.iot) {
            e.product_key = s.product_key.clone();
        }
        prop_assert_eq!(merged, expected);
    }

    #[test]
    fn implied_mask_onto_an_empty_product_gives_the_patch(patch in product_strategy()) {
        let empty = Product { name: patch.name.clone(), ..Default::default() };
        let merged = merge(&empty, &patch, &UpdateMask::implied_by(&patch)).unwrap();
        let mut expected = patch.clone();
        clear_output_only(&mut expected);
        prop_assert_eq!(merged, prune_empty_messages(&expected));
    }
}

/// The product without sub-messages that hold nothing (which implied masks skip).
fn prune_empty_messages(product: &Product) -> Product {
    fn prune(message: &mut prost_reflect::DynamicMessage) -> bool {
        let fields: Vec<_> = message.fields().map(|(f, _)| f).collect();
        for field in fields {
            if field.is_list() || field.is_map() {
                continue;
            }
            if let Value::Message(sub) = message.get_field_mut(&field)
                && !schema::is_opaque_message(&sub.descriptor())
                && !prune(sub)
            {
                message.clear_field(&field);
            }
        }
        message.fields().next().is_some()
    }
    let mut message = to_dynamic(product);
    prune(&mut message);
    from_dynamic(&message)
}

#[test]
fn implied_masks_skip_empty_profiles() {
    let patch = Product {
        iot: Some(IotProfile::default()),
        ..Default::default()
    };
    let merged = merge(&stored(), &patch, &UpdateMask::implied_by(&patch)).unwrap();
    assert_eq!(
        merged.iot,
        stored().iot,
        "an empty iot in a maskless update keeps the stored profile"
    );
}

#[test]
fn clearing_below_an_empty_parent_creates_nothing() {
    let mut no_monetization = stored();
    no_monetization.monetization = None;
    let patch = Product {
        monetization: Some(MonetizationProfile::default()),
        ..Default::default()
    };
    let merged = merge(&no_monetization, &patch, &mask(&["monetization.plan.currency"])).unwrap();
    assert_eq!(merged.monetization, None);
}

#[test]
fn vendor_ids_in_list_items_follow_their_item() {
    let mut with_metadata = stored();
    with_metadata.licensing = Some(LicensingProfile {
        metadata: vec![
            LicensingMetadata {
                key: "a".into(),
                value: "1".into(),
                id: "cryptlex-id-a".into(),
                ..Default::default()
            },
            LicensingMetadata {
                key: "b".into(),
                id: "cryptlex-id-b".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let patch = Product {
        licensing: Some(LicensingProfile {
            metadata: vec![
                LicensingMetadata {
                    key: "b".into(),
                    value: "changed".into(),
                    ..Default::default()
                },
                LicensingMetadata {
                    key: "a".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let merged = merge(&with_metadata, &patch, &mask(&["licensing.metadata"])).unwrap();
    let ids: Vec<_> = merged
        .licensing
        .unwrap()
        .metadata
        .into_iter()
        .map(|m| (m.key, m.value, m.id))
        .collect();
    assert_eq!(
        ids,
        [
            ("b".to_string(), "changed".to_string(), "cryptlex-id-b".to_string()),
            ("a".to_string(), String::new(), "cryptlex-id-a".to_string())
        ]
    );
}

#[test]
fn value_at_reads_nested_values() {
    assert_eq!(value_at(&stored(), "iot.model_id"), Some(Value::String("m1".into())));
    assert_eq!(value_at(&stored(), "licensing.trial_policy_id"), None);
}

// ---- hostile input ---------------------------------------------------------

/// Mask paths built from real field names, map keys, backticks, dots, stars
/// and junk: whatever arrives is parsed or refused, never panics, and a mask
/// that parses merges (or is refused) without panicking either.
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(PATHS).prop_map(str::to_owned),
        proptest::sample::select(&["labels", "iot", "tags", "plan", "`", ".", "*", "``", "a.b", "sync"][..])
            .prop_map(str::to_owned),
        ".{0,12}",
    ];
    vec(piece, 1..5).prop_map(|pieces| pieces.join("."))
}

proptest! {
    #[test]
    fn any_mask_is_parsed_or_refused_without_panic(
        paths in vec(hostile_path(), 0..8),
        stored in product_strategy(),
        patch in product_strategy(),
    ) {
        if let Ok(mask) = UpdateMask::parse(&paths) {
            let _ = merge(&stored, &patch, &mask);
        }
    }

    #[test]
    fn arbitrary_text_as_a_path_never_panics(path in "\\PC{0,80}") {
        let _ = UpdateMask::parse(&[path]);
    }
}

#[test]
fn mask_size_limits_are_enforced() {
    let too_many: Vec<String> = (0..=MAX_PATHS).map(|_| "description".to_string()).collect();
    assert!(UpdateMask::parse(&too_many).is_err());
    assert!(UpdateMask::parse(&["a".repeat(MAX_PATH_LEN + 1)]).is_err());
}

#[test]
fn what_a_vendor_assigned_is_adopted_and_nothing_else() {
    use crate::pb::{LicensingMetadata, LicensingProfile};
    let ours = Product {
        display_name: "Ours".into(),
        licensing: Some(LicensingProfile {
            name: "ours".into(),
            public_key: "kept-if-unsent".into(),
            total_licenses: 3,
            metadata: vec![
                LicensingMetadata {
                    key: "a".into(),
                    value: "ours".into(),
                    ..Default::default()
                },
                LicensingMetadata {
                    key: "b".into(),
                    id: "old-b".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let assigned = Product {
        display_name: "Theirs".into(),
        licensing: Some(LicensingProfile {
            name: "theirs".into(),
            product_id: "c9".into(),
            total_licenses: 0,
            icon_url: "https://icons/p.png".into(),
            metadata: vec![
                LicensingMetadata {
                    key: "b".into(),
                    id: "m-b".into(),
                    value: "theirs".into(),
                    ..Default::default()
                },
                LicensingMetadata {
                    key: "a".into(),
                    id: "m-a".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut product = ours.clone();
    adopt_output_only(&mut product, &assigned, "licensing");
    let l = product.licensing.as_ref().unwrap();
    assert_eq!(
        (l.product_id.as_str(), l.icon_url.as_str()),
        ("c9", "https://icons/p.png")
    );
    assert_eq!(
        l.public_key, "",
        "the vendor's whole copy is its word, empty values too"
    );
    assert_eq!(l.total_licenses, 0, "a counter back to zero is taken");
    assert_eq!(
        (l.metadata[0].id.as_str(), l.metadata[1].id.as_str()),
        ("m-a", "m-b"),
        "items matched by key"
    );
    assert_eq!(
        (l.name.as_str(), l.metadata[0].value.as_str()),
        ("ours", "ours"),
        "client fields untouched"
    );
    assert_eq!(product.display_name, "Ours");
    let mut without_profile = Product::default();
    adopt_output_only(&mut without_profile, &assigned, "licensing");
    assert_eq!(without_profile, Product::default(), "no profile is created");
}

#[test]
fn unkeyed_items_adopt_only_when_they_are_the_delivered_ones() {
    use crate::pb::{MonetizationProfile, Plan, PriceTier};
    let tiers = |bounds: &[(Option<f64>, Option<f64>)]| {
        bounds
            .iter()
            .map(|(up_to, starting_from)| PriceTier {
                up_to: *up_to,
                starting_from: *starting_from,
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let with = |t: Vec<PriceTier>| Product {
        monetization: Some(MonetizationProfile {
            plan: Some(Plan {
                tiers: t,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let assigned = with(tiers(&[(Some(10.0), Some(0.0)), (None, Some(10.0))]));
    let mut same = with(tiers(&[(Some(10.0), None), (None, None)]));
    adopt_output_only(&mut same, &assigned, "monetization");
    assert_eq!(same, assigned, "the delivered tiers get their bounds");
    let newer = with(tiers(&[(Some(5.0), None), (Some(10.0), None), (None, None)]));
    let mut changed = newer.clone();
    adopt_output_only(&mut changed, &assigned, "monetization");
    assert_eq!(
        changed, newer,
        "tiers changed since: no bounds are attached to the wrong ones"
    );
}

#[test]
fn changed_paths_name_what_differs_down_to_profile_fields() {
    use crate::pb::{IotProfile, LicensingProfile};
    let before = Product {
        display_name: "A".into(),
        description: "d".into(),
        etag: "1".into(),
        iot: Some(IotProfile {
            model_id: "m".into(),
            product_key: "pk".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut after = before.clone();
    after.description.clear();
    after.etag = "2".into();
    after.iot.as_mut().unwrap().tags.insert("k".into(), "v".into());
    after.iot.as_mut().unwrap().product_key = "other".into();
    after.licensing = Some(LicensingProfile::default());
    assert_eq!(changed_paths(&before, &after), ["description", "iot.tags", "licensing"]);
    assert!(changed_paths(&before, &before).is_empty());
}

/// The product with every output-only field set, at every depth its messages
/// reach (one entry in repeated and map fields), from the descriptor.
fn with_every_output_only_field_set(product: &Product) -> Product {
    fn value_for(kind: &Kind, depth: usize) -> Value {
        match kind {
            Kind::String => Value::String("set by the server".into()),
            Kind::Bytes => Value::Bytes(b"x".to_vec().into()),
            Kind::Bool => Value::Bool(true),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(7),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(7),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(7),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(7),
            Kind::Float => Value::F32(1.5),
            Kind::Double => Value::F64(1.5),
            Kind::Enum(e) => Value::EnumNumber(e.values().map(|v| v.number()).max().unwrap_or(0)),
            Kind::Message(m) => {
                let mut message = DynamicMessage::new(m.clone());
                if depth < 4 && !schema::is_opaque_message(m) {
                    fill(&mut message, depth + 1);
                }
                Value::Message(message)
            }
        }
    }
    fn fill(message: &mut DynamicMessage, depth: usize) {
        for info in schema::fields(&message.descriptor()) {
            let field = &info.field;
            if info.behaviors.output_only || (info.holds_messages && depth > 0) {
                if info.map {
                    let Kind::Message(entry) = &info.kind else { continue };
                    let value = value_for(&entry.map_entry_value_field().kind(), depth);
                    let mut entries = std::collections::HashMap::new();
                    entries.insert(MapKey::String("k".into()), value);
                    message.set_field(field, Value::Map(entries));
                } else if info.list {
                    message.set_field(field, Value::List(vec![value_for(&info.kind, depth)]));
                } else {
                    message.set_field(field, value_for(&info.kind, depth));
                }
            } else if info.holds_messages && message.has_field(field) {
                match message.get_field_mut(field) {
                    Value::Message(sub) => fill(sub, depth + 1),
                    Value::List(items) => items.iter_mut().for_each(|item| {
                        if let Value::Message(sub) = item {
                            fill(sub, depth + 1)
                        }
                    }),
                    Value::Map(entries) => entries.values_mut().for_each(|item| {
                        if let Value::Message(sub) = item {
                            fill(sub, depth + 1)
                        }
                    }),
                    _ => {}
                }
            }
        }
    }
    let mut message = to_dynamic(product);
    fill(&mut message, 0);
    from_dynamic(&message)
}
