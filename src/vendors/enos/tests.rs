use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::vendors::VendorErrorKind;
use crate::vendors::test_support::{any_json, mask, response, unknown_fields};

fn settings() -> VendorSettings {
    VendorSettings {
        enos_org_id: Some("xxx".into()),
        ..Default::default()
    }
}

fn ok(body: Value) -> Vec<u8> {
    body.to_string().into_bytes()
}

/// The product behind the create sample of the EnOS docs (shared/seeds/002).
fn create_sample_product() -> Product {
    Product {
        display_name: "AlterTest0615_Product".into(),
        description: "openapi_sdk_create_test".into(),
        iot: Some(IotProfile {
            model_id: "AlterTest0615".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Custom as i32,
            bidirectional_auth: false,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn create_matches_the_documented_sample_exactly() {
    let request = Enos.create(&create_sample_product(), &settings()).unwrap();
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.path_and_query(),
        "/connect-service/v2.1/products?action=create&orgId=xxx"
    );
    assert_eq!(
        request.body.unwrap(),
        json!({
            "productDesc": "openapi_sdk_create_test",
            "biDirectionalAuth": false,
            "modelId": "AlterTest0615",
            "dataFormat": "Custom",
            "productName": {"defaultValue": "AlterTest0615_Product", "i18nValue": {}},
            "productType": "Device"
        })
    );
}

#[test]
fn update_matches_the_documented_sample_exactly() {
    // shared/seeds/000: description and dynamic activation changed.
    let product = Product {
        display_name: "AlterTest0615_Product".into(),
        description: "test_sdk_update".into(),
        iot: Some(IotProfile {
            product_key: "xxx".into(),
            bidirectional_auth: true,
            dynamic_activation_enabled: true,
            ..create_sample_product().iot.unwrap()
        }),
        ..Default::default()
    };
    let request = Enos
        .update(
            &product,
            &mask(&["description", "iot.dynamic_activation_enabled"]),
            &settings(),
            None,
        )
        .unwrap()
        .unwrap();
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.path_and_query(),
        "/connect-service/v2.1/products?action=update&orgId=xxx&productKey=xxx"
    );
    assert_eq!(
        request.body.unwrap(),
        json!({
            "productDesc": "test_sdk_update",
            "biDirectionalAuth": true,
            "dynamicActivateEnabled": true,
            "productName": {"defaultValue": "AlterTest0615_Product", "i18nValue": {}}
        })
    );
}

fn stored_in_enos() -> Product {
    let mut product = create_sample_product();
    let iot = product.iot.as_mut().unwrap();
    iot.product_key = "2zp6A70r".into();
    iot.tags.insert("site".into(), "berlin".into());
    product.localized_display_names.insert("zh_CN".into(), "产品".into());
    product
}

#[test]
fn updates_always_carry_name_and_auth_and_only_what_changed() {
    let product = stored_in_enos();
    let body = |paths: &[&str]| {
        Enos.update(&product, &mask(paths), &settings(), None)
            .unwrap()
            .map(|r| r.body.unwrap())
    };
    assert_eq!(
        body(&["display_name"]),
        Some(json!({
            "productName": {"defaultValue": "AlterTest0615_Product", "i18nValue": {"zh_CN": "产品"}},
            "biDirectionalAuth": false
        }))
    );
    let tags = body(&["iot.tags.site"]).unwrap();
    assert_eq!(tags["productTags"], json!({"site": "berlin"}));
    assert_eq!(body(&["labels.env"]), None, "labels do not concern EnOS");
    assert_eq!(body(&["licensing.trial_policy_id"]), None);
    // Immutable fields carry no change, so they add nothing to the body.
    assert_eq!(body(&["iot.model_id"]), None);
}

#[test]
fn updates_say_what_enos_cannot_do() {
    let product = stored_in_enos();
    let err = Enos
        .update(&product, &mask(&["iot.default_valid_days"]), &settings(), None)
        .unwrap_err();
    assert!(
        matches!(err, AdapterError::Unsupported { ref path, .. } if path == "iot.default_valid_days"),
        "{err}"
    );
    // A whole-profile update sends the validity only when it is set.
    assert!(
        Enos.update(&product, &mask(&["iot"]), &settings(), None)
            .unwrap()
            .is_some()
    );
}

#[test]
fn calls_need_a_product_key_and_an_org() {
    let product = create_sample_product();
    assert!(matches!(
        Enos.update(&product, &mask(&["description"]), &settings(), None),
        Err(AdapterError::NotReady { .. })
    ));
    assert!(matches!(
        Enos.delete(&product, &settings()),
        Err(AdapterError::NotReady { .. })
    ));
    assert!(matches!(
        Enos.create(&product, &VendorSettings::default()),
        Err(AdapterError::NotReady { .. })
    ));
    // The product's own orgId wins over the configured one.
    let mut own_org = stored_in_enos();
    own_org.iot.as_mut().unwrap().org_id = "o-own".into();
    let delete = Enos.delete(&own_org, &settings()).unwrap();
    assert_eq!(
        delete.path_and_query(),
        "/connect-service/v2.1/products?action=delete&orgId=o-own&productKey=2zp6A70r"
    );
    assert_eq!(delete.body, None);
    assert_eq!(Enos.get(&own_org, &settings()).unwrap().method, Method::Get);
}

#[test]
fn constraints_are_checked_before_anything_is_built() {
    let mut product = create_sample_product();
    product.display_name = "bad<name>".into();
    match Enos.create(&product, &settings()) {
        Err(AdapterError::Invalid { violations, .. }) => assert_eq!(violations[0].field, "product.display_name"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_a_get_response_with_aliases_nulls_and_times() {
    let body = ok(json!({
        "code": 0, "msg": "OK", "requestId": "r",
        "data": {
            "orgId": "o1", "productKey": "2zp6A70r",
            "productName": {"defaultValue": "Meter", "i18nValue": {"en_US": "Meter"}},
            "productSecret": "s3cret", "productDesc": null, "productType": "Gateway", "dataFormat": "Json",
            "productTags": null, "modelId": "m1", "dynamicActiveEnabled": true, "biDirectionalAuth": true,
            "createTime": 1592202000123i64, "updateTime": null, "createBy": null, "updateBy": "u",
            "defaultValidDay": 730, "maxValidDay": null, "protocolGatewayIds": "gw1"
        }
    }));
    let json = Enos.read_product(response(200, None, &body)).unwrap();
    let product = Enos.import(&json).unwrap();
    let iot = product.iot.as_ref().unwrap();
    assert_eq!(product.display_name, "Meter");
    assert_eq!(iot.product_type, IotProductType::Gateway as i32);
    assert!(
        iot.dynamic_activation_enabled,
        "read from the dynamicActiveEnabled alias"
    );
    assert!(iot.tags.is_empty());
    assert_eq!(
        iot.vendor_create_time.as_ref().map(super::super::json::to_epoch_millis),
        Some(1592202000123)
    );
    assert_eq!(iot.default_valid_days, Some(730));
    // Written back under the spelling EnOS used, unknown fields included.
    let exported = Enos.export(&product).unwrap();
    assert_eq!(exported["dynamicActiveEnabled"], json!(true));
    assert!(exported.get("dynamicActivateEnabled").is_none());
    assert_eq!(exported["protocolGatewayIds"], json!("gw1"));
    // The envelope itself is accepted by import too.
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(Enos.import(&envelope).unwrap(), product);
}

#[test]
fn unknown_enum_values_are_kept() {
    let json = json!({"productType": "Edge", "dataFormat": "Binary", "biDirectionalAuth": false});
    let product = Enos.import(&json).unwrap();
    assert_eq!(product.iot.as_ref().unwrap().product_type, 0);
    let exported = Enos.export(&product).unwrap();
    assert_eq!(exported["productType"], json!("Edge"));
    assert_eq!(exported["dataFormat"], json!("Binary"));
}

#[test]
fn bad_json_is_a_clear_error() {
    for bad in [
        json!([1]),
        json!("x"),
        json!({"biDirectionalAuth": "maybe"}),
        json!({"productTags": {"a": 1}}),
    ] {
        let err = Enos.import(&bad).unwrap_err();
        assert!(matches!(err, AdapterError::BadJson { .. }), "{bad}: {err}");
    }
    let err = Enos.import(&json!({"createTime": "yesterday"})).unwrap_err();
    assert!(err.to_string().contains("createTime"), "{err}");
}

#[test]
fn business_errors_inside_http_200_are_errors() {
    let cases = [
        (
            json!({"code": 11699, "msg": "ModelId does not exist"}),
            VendorErrorKind::InvalidArgument,
            false,
        ),
        (
            json!({"code": 99500, "msg": "Query model failed"}),
            VendorErrorKind::InvalidArgument,
            false,
        ),
        (
            json!({"code": 11651, "msg": "productkey does not exist"}),
            VendorErrorKind::NotFound,
            false,
        ),
        (
            json!({"code": 11404, "msg": "Product cannot be found"}),
            VendorErrorKind::NotFound,
            false,
        ),
        (
            json!({"code": 11611, "msg": "not found"}),
            VendorErrorKind::NotFound,
            false,
        ),
        (
            json!({"code": 11619, "msg": "Existing Device Restrictions"}),
            VendorErrorKind::FailedPrecondition,
            false,
        ),
        (
            json!({"code": 99400, "msg": "Invalid Argument action"}),
            VendorErrorKind::InvalidArgument,
            false,
        ),
        (
            json!({"code": 99403, "msg": "denied"}),
            VendorErrorKind::PermissionDenied,
            false,
        ),
        (
            json!({"code": 99500, "msg": "internal error"}),
            VendorErrorKind::Unavailable,
            true,
        ),
        (
            json!({"code": 1203, "msg": "token expired"}),
            VendorErrorKind::TokenExpired,
            true,
        ),
        (
            json!({"code": "1002", "msg": "appKey unknown"}),
            VendorErrorKind::Unauthenticated,
            false,
        ),
        (json!({"code": 4242, "msg": "?"}), VendorErrorKind::Unknown, false),
    ];
    for (body, kind, retryable) in cases {
        let bytes = ok(body.clone());
        let error = Enos
            .read_error(response(200, None, &bytes))
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(error.kind, kind, "{body}");
        assert_eq!(error.is_retryable(), retryable, "{body}");
        assert_eq!(error.message, body["msg"].as_str().unwrap());
        assert!(Enos.read_product(response(200, None, &bytes)).is_err());
    }
    let success = ok(json!({"code": 0, "msg": "OK", "requestId": "522d0269", "data": "2zp6A70r"}));
    assert!(Enos.read_error(response(200, None, &success)).is_none());
    assert_eq!(Enos.read_created_id(response(200, None, &success)).unwrap(), "2zp6A70r");
    let gateway = Enos
        .read_error(response(502, None, b"<html>Bad Gateway</html>"))
        .unwrap();
    assert_eq!(gateway.kind, VendorErrorKind::Unavailable);
    assert!(gateway.is_retryable());
}

#[test]
fn reads_search_pages() {
    let body = ok(json!({
        "code": 0, "msg": "OK", "requestId": "r",
        "data": [{"productKey": "a"}, {"productKey": "b"}],
        "pagination": {"sortedBy": null, "pageNo": 1, "pageSize": 10, "totalSize": 12}
    }));
    let page = Enos.read_list(response(200, None, &body)).unwrap();
    assert_eq!(page.products.len(), 2);
    assert_eq!(page.total, Some(12));
}

/// A product object as EnOS's get/search return it, with unknown fields.
fn enos_product_json() -> impl Strategy<Value = Value> {
    (
        ("[A-Za-z0-9]{8}", "[a-z0-9-]{1,12}", "[A-Za-z0-9 ]{1,20}", "[a-z]{0,12}"),
        (
            proptest::sample::select(vec!["Device", "Gateway"]),
            proptest::sample::select(vec!["Custom", "Json"]),
        ),
        (
            any::<bool>(),
            proptest::sample::select(DYNAMIC_ACTIVATION.to_vec()),
            any::<bool>(),
        ),
        (
            proptest::collection::btree_map("[a-z_]{1,5}", "[A-Za-z]{1,8}", 0..3),
            proptest::collection::btree_map("[a-z]{1,5}", "[a-z]{1,5}", 1..3),
        ),
        (
            proptest::option::of(0i64..4_000_000_000_000),
            proptest::option::of(1..3650i32),
        ),
        unknown_fields(),
    )
        .prop_map(
            |(
                (key, model, name, desc),
                (ptype, format),
                (auth, spelling, dynamic),
                (i18n, tags),
                (time, days),
                unknown,
            )| {
                let mut object = unknown;
                object.insert("productKey".into(), json!(key));
                object.insert("orgId".into(), json!("o1"));
                object.insert("modelId".into(), json!(model));
                object.insert("productName".into(), json!({"defaultValue": name, "i18nValue": i18n}));
                if !desc.is_empty() {
                    object.insert("productDesc".into(), json!(desc));
                }
                object.insert("productType".into(), json!(ptype));
                object.insert("dataFormat".into(), json!(format));
                object.insert("biDirectionalAuth".into(), json!(auth));
                object.insert(spelling.into(), json!(dynamic));
                object.insert("productTags".into(), json!(tags));
                if let Some(t) = time {
                    object.insert("createTime".into(), json!(t));
                    object.insert("updateTime".into(), json!(t + 1));
                }
                if let Some(d) = days {
                    object.insert("defaultValidDay".into(), json!(d));
                    object.insert("maxValidDay".into(), json!(d));
                }
                object.insert("createBy".into(), json!("someone"));
                Value::Object(object)
            },
        )
}

proptest! {
    #[test]
    fn vendor_json_round_trips_losslessly(original in enos_product_json()) {
        let product = Enos.import(&original).unwrap();
        prop_assert_eq!(Enos.export(&product).unwrap(), original);
    }

    #[test]
    fn any_json_is_read_or_refused_without_panic(value in any_json()) {
        if let Ok(product) = Enos.import(&value) {
            let _ = Enos.export(&product);
        }
        let bytes = value.to_string().into_bytes();
        for status in [200u16, 400, 500] {
            let r = response(status, None, &bytes);
            let _ = (Enos.read_product(r), Enos.read_list(r), Enos.read_created_id(r), Enos.read_error(r));
        }
    }
}

#[test]
fn deeply_nested_or_malformed_bodies_do_not_panic() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let error = Enos.read_product(response(200, None, deep.as_bytes())).unwrap_err();
    assert_eq!(error.kind, VendorErrorKind::Unknown);
    assert!(Enos.read_product(response(200, None, b"\xff\xfe")).is_err());
    assert!(Enos.read_product(response(200, None, b"")).is_err());
}
