//! `producthub link` and `producthub unlink`: attach an existing vendor copy
//! to a product, or let go of one.

use super::{CliError, Connection, ServerArgs, call_error, parse_vendor, product_name};
use crate::pb::product_service_client::ProductServiceClient;
use crate::pb::{LinkDirection, LinkVendorProductRequest, Product, SyncState, UnlinkVendorProductRequest};
use crate::vendors::Vendor;

/// Whose values win when a product and a vendor copy are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// The copy's values become the product's profile for that vendor.
    Vendor,
    /// The product's profile is sent over the copy.
    Producthub,
}

/// `producthub link`: attach a copy that already exists at a vendor.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The product: `ID` or `products/ID`.
    #[arg(long)]
    pub product: String,

    /// The vendor holding the copy.
    #[arg(long, value_parser = parse_vendor)]
    pub vendor: Vendor,

    /// The vendor's id of the copy (EnOS productKey, Cryptlex id, Revenium id).
    #[arg(long)]
    pub remote_id: String,

    /// Whose values win.
    #[arg(long, value_enum, default_value = "vendor")]
    pub direction: Direction,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `producthub unlink`: let go of a vendor copy, leaving it as it is.
#[derive(Debug, clap::Args)]
pub struct UnlinkArgs {
    /// The product: `ID` or `products/ID`.
    #[arg(long)]
    pub product: String,

    /// The vendor to let go of.
    #[arg(long, value_parser = parse_vendor)]
    pub vendor: Vendor,

    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn link(args: LinkArgs) -> Result<(), CliError> {
    let connection = Connection::open(&args.server).await?;
    let mut client = ProductServiceClient::new(connection.channel.clone());
    let direction = match args.direction {
        Direction::Vendor => LinkDirection::VendorWins,
        Direction::Producthub => LinkDirection::ProducthubWins,
    };
    let product = client
        .link_vendor_product(connection.request(LinkVendorProductRequest {
            name: product_name(&args.product),
            vendor: args.vendor.to_pb() as i32,
            remote_id: args.remote_id.clone(),
            direction: direction as i32,
            etag: String::new(),
        }))
        .await
        .map_err(|s| call_error(&s))?
        .into_inner();
    let winner = match args.direction {
        Direction::Vendor => "the vendor's values kept",
        Direction::Producthub => "producthub's values sent",
    };
    println!(
        "{} is linked to the {} copy {} ({winner}); sync {}",
        product.name,
        args.vendor,
        args.remote_id,
        sync_state(&product, args.vendor.to_pb())
    );
    Ok(())
}

pub async fn unlink(args: UnlinkArgs) -> Result<(), CliError> {
    let connection = Connection::open(&args.server).await?;
    let mut client = ProductServiceClient::new(connection.channel.clone());
    let product = client
        .unlink_vendor_product(connection.request(UnlinkVendorProductRequest {
            name: product_name(&args.product),
            vendor: args.vendor.to_pb() as i32,
            etag: String::new(),
        }))
        .await
        .map_err(|s| call_error(&s))?
        .into_inner();
    println!(
        "{} no longer holds a {} copy; the copy was left as it is",
        product.name, args.vendor
    );
    Ok(())
}

fn sync_state(product: &Product, vendor: crate::pb::Vendor) -> &'static str {
    let state = product
        .sync
        .iter()
        .find(|s| s.vendor == vendor as i32)
        .and_then(|s| SyncState::try_from(s.state).ok());
    match state {
        Some(SyncState::Synced) => "SYNCED",
        Some(SyncState::Pending) => "PENDING (producthub's values are on their way)",
        Some(SyncState::Disabled) => "DISABLED (this server does not deliver to the vendor)",
        Some(SyncState::Failed) => "FAILED",
        _ => "unknown",
    }
}
