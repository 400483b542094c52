//! End-to-end tests of the vendor translation RPCs: RenderVendorCall and
//! ImportVendorProduct, against the real binary.

mod common;

use common::Server;
use producthub::pb::{
    CreateProductRequest, GetProductRequest, ImportVendorProductRequest, IotDataFormat, IotProductType, IotProfile,
    Product, RenderVendorCallRequest, UpdateProductRequest, Vendor, VendorOperation,
};
use prost_types::FieldMask;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

fn start(dir: &std::path::Path) -> Server {
    Server::start_with(
        dir,
        &[
            "--enos-org-id",
            "org-1",
            "--revenium-team-id",
            "team-1",
            "--revenium-owner-id",
            "owner-1",
        ],
    )
}

fn render(name: &str, vendor: Vendor, operation: VendorOperation, paths: &[&str]) -> RenderVendorCallRequest {
    RenderVendorCallRequest {
        name: name.into(),
        vendor: vendor as i32,
        operation: operation as i32,
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        last_known_json: String::new(),
    }
}

fn import(vendor: Vendor, json: &Value, id: &str, store: bool) -> ImportVendorProductRequest {
    ImportVendorProductRequest {
        vendor: vendor as i32,
        json: json.to_string(),
        product_id: id.into(),
        store,
    }
}

#[tokio::test]
async fn renders_enos_calls_for_a_stored_product() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = server.client().await;
    client
        .create_product(CreateProductRequest {
            product: Some(Product {
                display_name: "Thermostat".into(),
                iot: Some(IotProfile {
                    model_id: "thermo".into(),
                    product_type: IotProductType::Device as i32,
                    data_format: IotDataFormat::Json as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            product_id: "thermo".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let call = client
        .render_vendor_call(render("products/thermo", Vendor::Enos, VendorOperation::Create, &[]))
        .await
        .unwrap()
        .into_inner();
    assert!(call.needed);
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/connect-service/v2.1/products?action=create&orgId=org-1");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        body["productName"],
        json!({"defaultValue": "Thermostat", "i18nValue": {}})
    );
    assert_eq!(body["productType"], json!("Device"));

    // Not created in EnOS yet: no productKey to update.
    let status = client
        .render_vendor_call(render(
            "products/thermo",
            Vendor::Enos,
            VendorOperation::Update,
            &["display_name"],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("productKey"), "{}", status.message());
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "VENDOR_NOT_READY"
    );

    // No licensing profile: nothing to render for Cryptlex.
    let status = client
        .render_vendor_call(render(
            "products/thermo",
            Vendor::Cryptlex,
            VendorOperation::Create,
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let status = client
        .render_vendor_call(RenderVendorCallRequest {
            name: "products/thermo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<_> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["vendor", "operation"]);
}

#[tokio::test]
async fn imported_vendor_products_keep_what_the_vendor_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = server.client().await;
    let enos = json!({
        "code": 0, "msg": "OK", "requestId": "r1",
        "data": {
            "orgId": "org-9", "productKey": "2zp6A70r", "productSecret": "s",
            "productName": {"defaultValue": "Meter", "i18nValue": {"zh_CN": "电表"}},
            "modelId": "meter", "productType": "Device", "dataFormat": "Json",
            "biDirectionalAuth": false, "dynamicActiveEnabled": false, "createTime": 1592202000000i64,
            "protocolGatewayIds": "gw-7"
        }
    });
    let preview = client
        .import_vendor_product(import(Vendor::Enos, &enos, "meter", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.name, "products/meter");
    assert!(preview.uid.is_empty(), "not stored");
    assert_eq!(
        client
            .get_product(GetProductRequest {
                name: "products/meter".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let stored = client
        .import_vendor_product(import(Vendor::Enos, &enos, "meter", true))
        .await
        .unwrap()
        .into_inner();
    assert!(!stored.uid.is_empty());
    assert_eq!(stored.iot.as_ref().unwrap().product_key, "2zp6A70r");
    // This server does not deliver to EnOS: the copy is linked, not SYNCED.
    let enos_entry = stored
        .sync
        .iter()
        .find(|s| s.vendor == Vendor::Enos as i32)
        .expect("an EnOS sync entry");
    assert_eq!(
        (enos_entry.state, enos_entry.remote_id.as_str()),
        (producthub::pb::SyncState::Disabled as i32, "2zp6A70r")
    );
    assert!(enos_entry.pending_paths.is_empty() && enos_entry.synced_etag.is_empty());

    // An ordinary update keeps the vendor's key (it is output only).
    let updated = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: "products/meter".into(),
                display_name: "Smart Meter".into(),
                iot: Some(IotProfile {
                    product_key: "forged".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into(), "iot".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.iot.as_ref().unwrap().product_key, "2zp6A70r");
    assert_eq!(updated.iot.as_ref().unwrap().model_id, "meter", "immutable, kept");

    let call = client
        .render_vendor_call(render(
            "products/meter",
            Vendor::Enos,
            VendorOperation::Update,
            &["display_name"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        call.path,
        "/connect-service/v2.1/products?action=update&orgId=org-9&productKey=2zp6A70r"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&call.body).unwrap(),
        json!({"productName": {"defaultValue": "Smart Meter", "i18nValue": {"zh_CN": "电表"}}, "biDirectionalAuth": false})
    );
    let untouched = client
        .render_vendor_call(render(
            "products/meter",
            Vendor::Enos,
            VendorOperation::Update,
            &["labels.env"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!untouched.needed && untouched.body.is_empty());
    let delete = client
        .render_vendor_call(render("products/meter", Vendor::Enos, VendorOperation::Delete, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((delete.method.as_str(), delete.body.as_str()), ("POST", ""));

    let again = client
        .import_vendor_product(import(Vendor::Enos, &enos, "meter", true))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn cryptlex_patch_carries_only_the_masked_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = server.client().await;
    let cryptlex = json!({
        "id": "c0ffee", "name": "pro", "displayName": "Pro", "description": "Pro edition",
        "licenseTemplateId": "lt-1", "trialPolicyId": "tp-1", "automatedEmails": [], "metadata": [],
        "totalLicenses": 12, "publicKey": "KEY"
    });
    client
        .import_vendor_product(import(Vendor::Cryptlex, &cryptlex, "pro", true))
        .await
        .unwrap();
    let call = client
        .render_vendor_call(render(
            "products/pro",
            Vendor::Cryptlex,
            VendorOperation::Update,
            &["licensing.trial_policy_id"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("PATCH", "/v3/products/c0ffee")
    );
    assert_eq!(call.body, r#"{"trialPolicyId":"tp-1"}"#);
}

#[tokio::test]
async fn revenium_put_merges_into_the_given_last_known_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = server.client().await;
    let revenium = json!({
        "id": "X5oon5", "name": "Weather API", "version": "1.0.0", "team": {"id": "T1"}, "owner": {"id": "O1"},
        "plan": {"name": "Std", "type": "SUBSCRIPTION", "currency": "USD", "period": "MONTH", "tiers": [{"upTo": null}]}
    });
    client
        .import_vendor_product(import(Vendor::Revenium, &revenium, "weather", true))
        .await
        .unwrap();
    let mut request = render(
        "products/weather",
        Vendor::Revenium,
        VendorOperation::Update,
        &["display_name"],
    );
    request.last_known_json =
        json!({"id": "X5oon5", "name": "Old", "team": {"id": "T1"}, "audience": "PUBLIC"}).to_string();
    let call = client.render_vendor_call(request).await.unwrap().into_inner();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("PUT", "/v2/api/products/X5oon5?teamId=T1")
    );
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["name"], json!("Weather API"));
    assert_eq!(body["audience"], json!("PUBLIC"));
    assert_eq!(body["teamId"], json!("T1"));

    let mut bad = render("products/weather", Vendor::Revenium, VendorOperation::Update, &[]);
    bad.last_known_json = "{not json".into();
    let status = client.render_vendor_call(bad).await.unwrap_err();
    assert_eq!(
        status.get_error_details().bad_request().unwrap().field_violations[0].field,
        "last_known_json"
    );
}

#[tokio::test]
async fn bad_vendor_json_is_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = server.client().await;
    let field = |status: &tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.get_error_details().bad_request().unwrap().field_violations[0]
            .field
            .clone()
    };
    let not_json = ImportVendorProductRequest {
        vendor: Vendor::Enos as i32,
        json: "{".into(),
        ..Default::default()
    };
    assert_eq!(
        field(&client.import_vendor_product(not_json).await.unwrap_err()),
        "json"
    );
    let wrong_type = import(Vendor::Cryptlex, &json!({"displayName": 5}), "", false);
    let status = client.import_vendor_product(wrong_type).await.unwrap_err();
    assert_eq!(field(&status), "json");
    assert!(status.message().contains("displayName"), "{}", status.message());
    let no_vendor = import(Vendor::Unspecified, &json!({}), "", false);
    assert_eq!(
        field(&client.import_vendor_product(no_vendor).await.unwrap_err()),
        "vendor"
    );
    // Valid JSON that breaks EnOS's own limits is refused by validation.
    let too_long = import(
        Vendor::Enos,
        &json!({"productName": {"defaultValue": "x".repeat(65)}, "modelId": "m", "productType": "Device", "dataFormat": "Json"}),
        "",
        false,
    );
    assert_eq!(
        field(&client.import_vendor_product(too_long).await.unwrap_err()),
        "product.display_name"
    );
}
