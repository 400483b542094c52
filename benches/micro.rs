//! Micro-benchmarks of the per-request work that is not I/O: field-mask merge,
//! validation, protobuf encode/decode of a full product, and each vendor
//! adapter's translation. Run with `cargo bench --bench micro`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use producthub::domain::field_mask::{UpdateMask, merge};
use producthub::pb::{
    IotDataFormat, IotProductType, IotProfile, LicensingMetadata, LicensingProfile, MonetizationProfile, Plan,
    PriceTier, Product,
};
use producthub::vendors::{Vendor, VendorSettings, validate};
use prost::Message;

/// A product with every profile filled in, about 1.5 KB encoded.
fn full_product() -> Product {
    Product {
        name: "products/bench".into(),
        uid: "00000000-0000-4000-8000-000000000000".into(),
        display_name: "Benchmark Product".into(),
        localized_display_names: [("zh_CN".to_string(), "基准产品".to_string())].into(),
        description: "d".repeat(200),
        labels: [
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "core".to_string()),
        ]
        .into(),
        version: "1.2.3".into(),
        etag: "0123456789abcdef".into(),
        iot: Some(IotProfile {
            model_id: "model".into(),
            product_type: IotProductType::Device as i32,
            data_format: IotDataFormat::Json as i32,
            bidirectional_auth: true,
            tags: [("site".to_string(), "berlin".to_string())].into(),
            product_key: "2zp6A70r".into(),
            ..Default::default()
        }),
        licensing: Some(LicensingProfile {
            name: "bench".into(),
            license_template_id: "lt-1".into(),
            trial_policy_id: "tp-1".into(),
            metadata: (0..5)
                .map(|i| LicensingMetadata {
                    key: format!("k{i}"),
                    value: "v".repeat(50),
                    visible: true,
                    view_permissions: vec!["activation".into()],
                    ..Default::default()
                })
                .collect(),
            product_id: "c0ffee".into(),
            ..Default::default()
        }),
        monetization: Some(MonetizationProfile {
            team_id: "T1".into(),
            owner_id: "O1".into(),
            product_id: "X5oon5".into(),
            tags: vec!["a".into(), "b".into()],
            plan: Some(Plan {
                name: "Std".into(),
                currency: "USD".into(),
                tiers: vec![PriceTier {
                    up_to: Some(1000.0),
                    unit_amount: Some(0.01),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn benches(c: &mut Criterion) {
    let product = full_product();
    let patch = Product {
        name: product.name.clone(),
        description: "changed".into(),
        labels: [("env".to_string(), "dev".to_string())].into(),
        ..Default::default()
    };
    let mask = UpdateMask::parse(&["description".to_string(), "labels.env".to_string()]).unwrap();
    c.bench_function("field mask merge (2 paths)", |b| {
        b.iter(|| merge(black_box(&product), black_box(&patch), &mask).unwrap())
    });
    c.bench_function("field mask parse (2 paths)", |b| {
        b.iter(|| UpdateMask::parse(black_box(&["description".to_string(), "iot.tags.site".to_string()])))
    });
    c.bench_function("validate full product", |b| b.iter(|| validate(black_box(&product))));
    let bytes = product.encode_to_vec();
    c.bench_function("protobuf encode full product", |b| {
        b.iter(|| black_box(&product).encode_to_vec())
    });
    c.bench_function("protobuf decode full product", |b| {
        b.iter(|| Product::decode(black_box(bytes.as_slice())).unwrap())
    });
    let settings = VendorSettings {
        enos_org_id: Some("org".into()),
        revenium_team_id: Some("T1".into()),
        revenium_owner_id: Some("O1".into()),
    };
    for vendor in Vendor::ALL {
        let adapter = vendor.adapter();
        let json = adapter.export(&product).unwrap();
        c.bench_function(&format!("{vendor} export"), |b| {
            b.iter(|| adapter.export(black_box(&product)))
        });
        c.bench_function(&format!("{vendor} import"), |b| {
            b.iter(|| adapter.import(black_box(&json)))
        });
        c.bench_function(&format!("{vendor} update request"), |b| {
            b.iter(|| adapter.update(black_box(&product), &UpdateMask::Full, &settings, Some(&json)))
        });
    }
}

criterion_group!(micro, benches);
criterion_main!(micro);
