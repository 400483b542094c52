//! The README's Rust client, compiled with the crate's examples (a test
//! checks the README shows this very program):
//! `cargo run --example rust_client -- http://127.0.0.1:50051`.

use producthub::pb::product_service_client::ProductServiceClient;
use producthub::pb::{CreateProductRequest, DeleteProductRequest, Product, UpdateProductRequest};
use prost_types::FieldMask;
use tonic_types::StatusExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut client = ProductServiceClient::connect(address).await?;
    let created = client
        .create_product(CreateProductRequest {
            product: Some(Product {
                display_name: "Thermostat".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    // Change one field, only if nobody changed the product since it was read.
    let update = UpdateProductRequest {
        product: Some(Product {
            name: created.name.clone(),
            description: "New text".into(),
            etag: created.etag.clone(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["description".into()],
        }),
        ..Default::default()
    };
    match client.update_product(update).await {
        Ok(updated) => println!("etag now {}", updated.into_inner().etag),
        Err(status) if status.code() == tonic::Code::Aborted => println!("changed meanwhile: read again, retry"),
        Err(status) => {
            for violation in status
                .get_details_bad_request()
                .map(|b| b.field_violations)
                .unwrap_or_default()
            {
                println!("{}: {}", violation.field, violation.description);
            }
        }
    }
    client
        .delete_product(DeleteProductRequest {
            name: created.name,
            ..Default::default()
        })
        .await?;
    Ok(())
}
