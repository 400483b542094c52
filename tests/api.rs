//! End-to-end tests of every ProductService RPC against the real binary.

mod common;

use common::Server;
use producthub::pb::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, IotDataFormat, IotProductType, IotProfile,
    LicensingProfile, ListProductsRequest, Product, UpdateProductRequest,
};
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

fn sensor(display_name: &str) -> Product {
    Product {
        display_name: display_name.into(),
        labels: [("env".to_string(), "dev".to_string())].into(),
        iot: Some(IotProfile {
            model_id: "thermo".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn create(id: &str, product: Product) -> CreateProductRequest {
    CreateProductRequest {
        product: Some(product),
        product_id: id.into(),
        ..Default::default()
    }
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

/// The fields named by the BadRequest details of an INVALID_ARGUMENT status.
fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .expect("BadRequest details")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

fn get(name: &str) -> GetProductRequest {
    GetProductRequest { name: name.into() }
}

#[tokio::test]
async fn create_get_update_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let created = client
        .create_product(create("thermo", sensor("Thermostat")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "products/thermo");
    assert!(!created.uid.is_empty() && !created.etag.is_empty());
    assert!(created.create_time.is_some() && created.create_time == created.update_time);

    let fetched = client.get_product(get("products/thermo")).await.unwrap().into_inner();
    assert_eq!(fetched, created);

    let updated = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: "products/thermo".into(),
                description: "Smart thermostat".into(),
                labels: [("env".to_string(), "prod".to_string())].into(),
                ..Default::default()
            }),
            update_mask: mask(&["description", "labels.env"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "Smart thermostat");
    assert_eq!(updated.labels["env"], "prod");
    assert_eq!(updated.display_name, "Thermostat");
    assert_ne!(updated.etag, created.etag, "every write changes the etag");
    assert_eq!(updated.create_time, created.create_time);
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&updated.update_time) > seconds(&created.update_time));

    let listed = client
        .list_products(ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.products, vec![updated.clone()]);
    assert!(listed.next_page_token.is_empty());

    client
        .delete_product(DeleteProductRequest {
            name: "products/thermo".into(),
            etag: updated.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = client.get_product(get("products/thermo")).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .delete_product(DeleteProductRequest {
            name: "products/thermo".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn create_validates_and_reports_every_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let mut bad = sensor("");
    bad.iot.as_mut().unwrap().model_id.clear();
    bad.version = "one".into();
    let status = client
        .create_product(CreateProductRequest {
            product: Some(bad),
            product_id: "Bad_Id".into(),
            request_id: "not-a-uuid".into(),
            validate_only: false,
        })
        .await
        .unwrap_err();
    let mut fields = bad_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "product.display_name",
            "product.iot.model_id",
            "product.version",
            "product_id",
            "request_id"
        ]
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "INVALID_ARGUMENT"
    );

    let missing = client
        .create_product(CreateProductRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&missing), ["product"]);

    // Vendor constraints apply to the profiles a product has.
    let status = client
        .create_product(create("x", sensor("semi;colon")))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["product.display_name"]);
    assert!(status.message().contains("EnOS"), "{}", status.message());

    let listed = client
        .list_products(ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.products.is_empty(), "nothing stored by failed creates");
}

#[tokio::test]
async fn create_ids_duplicates_and_output_only_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let mut forged = sensor("A");
    forged.uid = "forged".into();
    forged.name = "products/elsewhere".into();
    forged.iot.as_mut().unwrap().product_key = "forged".into();
    let generated = client
        .create_product(CreateProductRequest {
            product: Some(forged),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(generated.name.starts_with("products/p"), "{}", generated.name);
    assert_ne!(generated.uid, "forged");
    assert_eq!(generated.iot.unwrap().product_key, "", "output-only fields are ignored");

    client.create_product(create("dup", sensor("A"))).await.unwrap();
    let status = client.create_product(create("dup", sensor("B"))).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(
        status.get_error_details().resource_info().unwrap().resource_name,
        "products/dup"
    );
}

#[tokio::test]
async fn request_id_makes_create_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let request = CreateProductRequest {
        product: Some(sensor("A")),
        product_id: String::new(),
        request_id: "6f1c1a8e-3d6b-4f0a-9a54-2b4f3e0e7c11".into(),
        validate_only: false,
    };
    let first = client.create_product(request.clone()).await.unwrap().into_inner();
    let retry = client.create_product(request.clone()).await.unwrap().into_inner();
    assert_eq!(retry, first, "a retry returns the original product");
    // The same UUID spelt in upper case is the same request id (AIP-155).
    let shouted = CreateProductRequest {
        request_id: request.request_id.to_uppercase(),
        ..request.clone()
    };
    let retry = client.create_product(shouted).await.unwrap().into_inner();
    assert_eq!(retry, first, "an upper-case retry is the same request");
    let listed = client
        .list_products(ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.products.len(), 1, "and creates nothing");

    let mut different = request.clone();
    different.product = Some(sensor("B"));
    assert_eq!(
        bad_fields(&client.create_product(different).await.unwrap_err()),
        ["request_id"]
    );
}

#[tokio::test]
async fn validate_only_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let mut request = create("v", sensor("A"));
    request.validate_only = true;
    let preview = client.create_product(request).await.unwrap().into_inner();
    assert_eq!(preview.name, "products/v");
    assert_eq!(
        client.get_product(get("products/v")).await.unwrap_err().code(),
        Code::NotFound
    );

    let stored = client
        .create_product(create("v", sensor("A")))
        .await
        .unwrap()
        .into_inner();
    let preview = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: "products/v".into(),
                display_name: "B".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.display_name, "B");
    assert_eq!(
        client.get_product(get("products/v")).await.unwrap().into_inner(),
        stored
    );
}

#[tokio::test]
async fn etags_guard_against_lost_updates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;

    let v1 = client
        .create_product(create("e", sensor("A")))
        .await
        .unwrap()
        .into_inner();
    let update = |etag: &str, name: &str| UpdateProductRequest {
        product: Some(Product {
            name: "products/e".into(),
            display_name: name.into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(&["display_name"]),
        ..Default::default()
    };
    let v2 = client.update_product(update(&v1.etag, "B")).await.unwrap().into_inner();
    let stale = client.update_product(update(&v1.etag, "C")).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert_eq!(stale.get_error_details().error_info().unwrap().reason, "ETAG_MISMATCH");
    let stale_delete = client
        .delete_product(DeleteProductRequest {
            name: "products/e".into(),
            etag: v1.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale_delete.code(), Code::Aborted);
    assert_eq!(client.get_product(get("products/e")).await.unwrap().into_inner(), v2);
}

#[tokio::test]
async fn update_masks_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let stored = client
        .create_product(create("m", sensor("A")))
        .await
        .unwrap()
        .into_inner();

    let with_mask = |paths: &[&str], product: Product| UpdateProductRequest {
        product: Some(Product {
            name: "products/m".into(),
            ..product
        }),
        update_mask: mask(paths),
        ..Default::default()
    };
    let unknown = client
        .update_product(with_mask(&["display_name", "colour"], Product::default()))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&unknown), ["update_mask.paths[1]"]);
    assert!(unknown.message().contains("colour"), "{}", unknown.message());

    let mut other_model = sensor("A");
    other_model.iot.as_mut().unwrap().model_id = "other".into();
    let immutable = client
        .update_product(with_mask(&["iot.model_id"], other_model))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&immutable), ["product.iot.model_id"]);

    // The merged product is validated as a whole: clearing a required field fails.
    let cleared = client
        .update_product(with_mask(&["display_name"], Product::default()))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&cleared), ["product.display_name"]);

    // Output-only paths are ignored, not errors.
    let ignored = client
        .update_product(with_mask(
            &["uid", "create_time", "description"],
            Product {
                uid: "x".into(),
                description: "d".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ignored.uid, stored.uid);
    assert_eq!(ignored.description, "d");

    // No mask: the fields set in the request change, the rest stays.
    let implied = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: "products/m".into(),
                licensing: Some(LicensingProfile {
                    license_template_id: "lt-1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(implied.licensing.unwrap().license_template_id, "lt-1");
    assert_eq!(implied.description, "d");
    assert_eq!(implied.display_name, "A");

    let bad_name = client
        .update_product(UpdateProductRequest {
            product: Some(Product {
                name: "m".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_name), ["product.name"]);
}

#[tokio::test]
async fn update_missing_products() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    let request = |allow_missing| UpdateProductRequest {
        product: Some(Product {
            name: "products/new".into(),
            ..sensor("New")
        }),
        update_mask: mask(&["display_name"]),
        allow_missing,
        validate_only: false,
    };
    assert_eq!(
        client.update_product(request(false)).await.unwrap_err().code(),
        Code::NotFound
    );
    let created = client.update_product(request(true)).await.unwrap().into_inner();
    assert_eq!(created.name, "products/new");
    assert_eq!(
        created.iot.unwrap().model_id,
        "thermo",
        "allow_missing creates from the whole product"
    );
}

#[tokio::test]
async fn list_pages_filters_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    for i in 0..25 {
        let mut product = sensor(&format!("P{i}"));
        if i % 5 == 0 {
            product.labels.insert("env".into(), "prod".into());
            product.iot = None;
        }
        client
            .create_product(create(&format!("p{i:02}"), product))
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_products(ListProductsRequest {
                page_size: 10,
                page_token: token.clone(),
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.products.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("products/p{i:02}")).collect();
    assert_eq!(seen, expected, "every product once, in id order");

    let filter = r#"labels.env = "prod" AND NOT iot:*"#;
    let first = client
        .list_products(ListProductsRequest {
            page_size: 2,
            page_token: String::new(),
            filter: filter.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first.products.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["products/p00", "products/p05"]);
    let rest = client
        .list_products(ListProductsRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            filter: filter.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = rest.products.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["products/p10", "products/p15", "products/p20"]);

    let other_filter = client
        .list_products(ListProductsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            filter: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&other_filter), ["page_token"]);
    let forged = client
        .list_products(ListProductsRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&forged), ["page_token"]);
    let bad = client
        .list_products(ListProductsRequest {
            page_size: -1,
            filter: "colour = red".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["page_size", "filter"]);
    let clamped = client
        .list_products(ListProductsRequest {
            page_size: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clamped.products.len(), 25);
}

#[tokio::test]
async fn names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    for bad in ["", "thermo", "products/", "products/UPPER", "shelves/x"] {
        let status = client.get_product(get(bad)).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["name"], "{bad:?}");
    }
    let status = client
        .delete_product(DeleteProductRequest {
            name: "nope".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["name"]);
}

#[tokio::test]
async fn oversize_requests_get_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-message-bytes", "2048"]);
    let mut client = server.client().await;
    let mut big = sensor("Big");
    big.description = "x".repeat(4096);
    let status = client.create_product(create("big", big)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "MESSAGE_TOO_LARGE"
    );
    // The server is still fine afterwards.
    client.create_product(create("small", sensor("Small"))).await.unwrap();
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel);
    for service in ["", "producthub.v1.ProductService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status, 1, "SERVING for {service:?}");
    }
}

#[tokio::test]
async fn reflection_v1_lists_the_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let channel = server.channel().await;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "producthub.v1.ProductService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

/// Every size a client controls has a limit, and crossing it names the field.
#[tokio::test]
async fn size_limits_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut client = server.client().await;
    client.create_product(create("limits", sensor("Limits"))).await.unwrap();

    let mut long_name = create("long-name", sensor("x"));
    long_name.product.as_mut().unwrap().display_name = "n".repeat(257);
    let status = client.create_product(long_name).await.unwrap_err();
    // Too long for producthub, and for EnOS (the sensor has an IoT profile).
    assert_eq!(bad_fields(&status), ["product.display_name", "product.display_name"]);

    let mut many_labels = create("many-labels", sensor("x"));
    many_labels.product.as_mut().unwrap().labels = (0..65).map(|n| (format!("k{n}"), "v".to_string())).collect();
    let status = client.create_product(many_labels).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["product.labels"]);

    let long_mask = UpdateProductRequest {
        product: Some(Product {
            name: "products/limits".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["description".to_string(); 257],
        }),
        ..Default::default()
    };
    let status = client.update_product(long_mask).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["update_mask"]);

    let long_filter = ListProductsRequest {
        filter: "x".repeat(4096),
        ..Default::default()
    };
    let status = client.list_products(long_filter).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["filter"]);
}
