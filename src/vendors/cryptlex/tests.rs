use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::vendors::VendorErrorKind;
use crate::vendors::test_support::{any_json, mask, response, unknown_fields};

/// The product object of the Cryptlex docs' 200 response (shared/seeds/001).
fn documented_product() -> Value {
    json!({
        "id": "string",
        "createdAt": "2019-08-24T14:15:22Z",
        "updatedAt": "2019-08-24T14:15:22Z",
        "name": "string",
        "displayName": "string",
        "description": "string",
        "publicKey": "string",
        "totalLicenses": 0,
        "totalTrialActivations": 0,
        "totalReleases": 0,
        "totalProductVersions": 0,
        "totalFeatureFlags": 0,
        "automatedEmails": ["string"],
        "licenseTemplateId": "string",
        "trialPolicyId": "string",
        "iconUrl": "string",
        "metadata": [{
            "id": "string",
            "createdAt": "2019-08-24T14:15:22Z",
            "updatedAt": "2019-08-24T14:15:22Z",
            "key": "string",
            "value": "string",
            "viewPermissions": ["activation"],
            "visible": true
        }]
    })
}

fn in_cryptlex() -> Product {
    let mut product = Cryptlex.import(&documented_product()).unwrap();
    product.name = "products/p".into();
    product.display_name = "Pro Edition".into();
    product.description = "Our licence".into();
    product
}

#[test]
fn the_documented_product_object_round_trips_exactly() {
    let product = Cryptlex.import(&documented_product()).unwrap();
    let licensing = product.licensing.as_ref().unwrap();
    assert_eq!(licensing.product_id, "string");
    assert_eq!(licensing.metadata[0].view_permissions, ["activation"]);
    assert_eq!(Cryptlex.export(&product).unwrap(), documented_product());
}

#[test]
fn patch_sends_only_the_masked_fields() {
    let product = in_cryptlex();
    let request = Cryptlex
        .update(
            &product,
            &mask(&["licensing.trial_policy_id"]),
            &VendorSettings::default(),
            None,
        )
        .unwrap()
        .unwrap();
    assert_eq!(request.method, Method::Patch);
    assert_eq!(request.path_and_query(), "/v3/products/string");
    assert_eq!(request.body.unwrap(), json!({"trialPolicyId": "string"}));

    let body = |paths: &[&str], product: &Product| {
        Cryptlex
            .update(product, &mask(paths), &VendorSettings::default(), None)
            .unwrap()
            .map(|r| r.body.unwrap())
    };
    assert_eq!(
        body(&["display_name"], &product),
        Some(json!({"displayName": "Pro Edition"}))
    );
    assert_eq!(
        body(&["iot.tags", "labels"], &product),
        None,
        "nothing of Cryptlex's changed"
    );
    let mut no_trial = product.clone();
    no_trial.licensing.as_mut().unwrap().trial_policy_id.clear();
    assert_eq!(
        body(&["licensing.trial_policy_id"], &no_trial),
        Some(json!({"trialPolicyId": ""}))
    );
    let mut unnamed = product.clone();
    unnamed.licensing.as_mut().unwrap().name.clear();
    assert_eq!(
        body(&["display_name"], &unnamed),
        Some(json!({"displayName": "Pro Edition", "name": "Pro Edition"})),
        "an unnamed profile takes its Cryptlex name from the display name"
    );
    let metadata = body(&["licensing.metadata"], &product).unwrap();
    assert_eq!(
        metadata,
        json!({"metadata": [{"key": "string", "value": "string", "viewPermissions": ["activation"], "visible": true}]})
    );
}

#[test]
fn a_description_cannot_be_cleared() {
    let mut product = in_cryptlex();
    product.description.clear();
    let err = Cryptlex
        .update(&product, &mask(&["description"]), &VendorSettings::default(), None)
        .unwrap_err();
    assert!(matches!(err, AdapterError::Unsupported { .. }), "{err}");
}

#[test]
fn create_sends_the_documented_request_fields() {
    let product = in_cryptlex();
    let request = Cryptlex.create(&product, &VendorSettings::default()).unwrap();
    assert_eq!(
        (request.method, request.path_and_query()),
        (Method::Post, "/v3/products".to_string())
    );
    assert_eq!(
        request.body.unwrap(),
        json!({
            "name": "string",
            "displayName": "Pro Edition",
            "description": "Our licence",
            "licenseTemplateId": "string",
            "trialPolicyId": "string",
            "metadata": [{"key": "string", "value": "string", "viewPermissions": ["activation"], "visible": true}]
        })
    );
    let mut too_long = product.clone();
    too_long.licensing.as_mut().unwrap().metadata[0].value = "v".repeat(4097);
    match Cryptlex.create(&too_long, &VendorSettings::default()) {
        Err(AdapterError::Invalid { violations, .. }) => {
            assert_eq!(violations[0].field, "product.licensing.metadata[0].value")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn calls_on_a_product_not_yet_in_cryptlex_are_not_ready() {
    let mut product = in_cryptlex();
    product.licensing.as_mut().unwrap().product_id.clear();
    assert!(matches!(
        Cryptlex.delete(&product, &VendorSettings::default()),
        Err(AdapterError::NotReady { .. })
    ));
    assert!(matches!(
        Cryptlex.get(&product, &VendorSettings::default()),
        Err(AdapterError::NotReady { .. })
    ));
}

#[test]
fn errors_and_rate_limits() {
    let limited = Cryptlex
        .read_error(response(
            429,
            Some("7"),
            br#"{"message": "Too many requests", "code": "RATE_LIMIT"}"#,
        ))
        .unwrap();
    assert_eq!(limited.kind, VendorErrorKind::RateLimited);
    assert_eq!(limited.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(limited.code.as_deref(), Some("RATE_LIMIT"));
    assert!(limited.is_retryable());
    let missing = Cryptlex
        .read_error(response(404, None, br#"{"message": "Product not found"}"#))
        .unwrap();
    assert_eq!(
        (missing.kind, missing.message.as_str()),
        (VendorErrorKind::NotFound, "Product not found")
    );
    assert!(!missing.is_retryable());
    let conflict = Cryptlex
        .read_error(response(409, None, br#"{"message": "has licenses"}"#))
        .unwrap();
    assert_eq!(conflict.kind, VendorErrorKind::FailedPrecondition);
    let crashed = Cryptlex.read_error(response(500, None, b"upstream died")).unwrap();
    assert_eq!(
        (crashed.kind, crashed.message.as_str()),
        (VendorErrorKind::Unavailable, "upstream died")
    );
    assert!(Cryptlex.read_error(response(204, None, b"")).is_none());
    let created = documented_product().to_string();
    assert_eq!(
        Cryptlex
            .read_created_id(response(201, None, created.as_bytes()))
            .unwrap(),
        "string"
    );
    let list = format!("[{created}, {created}]");
    assert_eq!(
        Cryptlex
            .read_list(response(200, None, list.as_bytes()))
            .unwrap()
            .products
            .len(),
        2
    );
}

#[test]
fn bad_json_is_a_clear_error() {
    let err = Cryptlex.import(&json!({"createdAt": "last tuesday"})).unwrap_err();
    assert!(err.to_string().contains("createdAt"), "{err}");
    let err = Cryptlex.import(&json!({"metadata": [{"key": 5}]})).unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");
}

fn timestamp() -> impl Strategy<Value = String> {
    (
        2000u32..2030,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        proptest::option::of(1u32..1000),
    )
        .prop_map(|(y, mo, d, h, mi, ms)| match ms {
            Some(ms) => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07.{ms:03}Z"),
            None => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07Z"),
        })
}

/// A product object as Cryptlex returns it, with unknown fields.
fn cryptlex_product_json() -> impl Strategy<Value = Value> {
    let metadata = (
        "[a-z]{1,8}",
        "[a-z ]{0,8}",
        any::<bool>(),
        timestamp(),
        unknown_fields(),
    )
        .prop_map(|(key, value, visible, at, unknown)| {
            let mut entry = unknown;
            entry.insert("id".into(), json!(format!("m-{key}")));
            entry.insert("createdAt".into(), json!(at));
            entry.insert("updatedAt".into(), json!(at));
            entry.insert("key".into(), json!(key));
            entry.insert("value".into(), json!(value));
            entry.insert("viewPermissions".into(), json!(["activation"]));
            entry.insert("visible".into(), json!(visible));
            Value::Object(entry)
        });
    (
        ("[a-f0-9-]{8,36}", "[A-Za-z ]{1,20}", "[A-Za-z ]{1,20}", "[a-z ]{0,20}"),
        (timestamp(), proptest::option::of("[a-z0-9]{4}"), "[a-z0-9]{4}"),
        (0i64..1_000_000, 0i64..1000),
        proptest::collection::vec("[a-z0-9]{4}", 0..3),
        proptest::collection::vec(metadata, 0..3),
        unknown_fields(),
    )
        .prop_map(
            |((id, name, display, desc), (at, trial, template), (licenses, releases), emails, metadata, unknown)| {
                let mut object = unknown;
                object.insert("id".into(), json!(id));
                object.insert("createdAt".into(), json!(at));
                object.insert("updatedAt".into(), json!(at));
                object.insert("name".into(), json!(name));
                object.insert("displayName".into(), json!(display));
                if !desc.is_empty() {
                    object.insert("description".into(), json!(desc));
                }
                object.insert("publicKey".into(), json!("PUBKEY"));
                object.insert("totalLicenses".into(), json!(licenses));
                object.insert("totalTrialActivations".into(), json!(0));
                object.insert("totalReleases".into(), json!(releases));
                object.insert("totalProductVersions".into(), json!(0));
                object.insert("totalFeatureFlags".into(), json!(0));
                object.insert("automatedEmails".into(), json!(emails));
                object.insert("licenseTemplateId".into(), json!(template));
                object.insert("trialPolicyId".into(), json!(trial));
                object.insert("iconUrl".into(), json!("https://example.invalid/icon.png"));
                object.insert("metadata".into(), Value::Array(metadata));
                Value::Object(object)
            },
        )
}

proptest! {
    #[test]
    fn vendor_json_round_trips_losslessly(original in cryptlex_product_json()) {
        let product = Cryptlex.import(&original).unwrap();
        prop_assert_eq!(Cryptlex.export(&product).unwrap(), original);
    }

    #[test]
    fn any_json_is_read_or_refused_without_panic(value in any_json()) {
        if let Ok(product) = Cryptlex.import(&value) {
            let _ = Cryptlex.export(&product);
        }
        let bytes = value.to_string().into_bytes();
        for status in [200u16, 201, 429, 500] {
            let r = response(status, Some("x"), &bytes);
            let _ = (Cryptlex.read_product(r), Cryptlex.read_list(r), Cryptlex.read_created_id(r), Cryptlex.read_error(r));
        }
    }
}
