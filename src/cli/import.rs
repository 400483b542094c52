//! `producthub import`: starts ImportVendorProducts on a running server,
//! shows its progress, and prints what it did (or, with `--dry-run`, the plan).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;

use super::{CliError, Connection, ServerArgs, call_error, parse_vendor};
use crate::pb::google::longrunning::operations_client::OperationsClient;
use crate::pb::google::longrunning::{GetOperationRequest, Operation, operation};
use crate::pb::product_service_client::ProductServiceClient;
use crate::pb::{
    ImportAction, ImportVendorProductsMetadata, ImportVendorProductsRequest, ImportVendorProductsResponse,
    ImportedVendorProduct,
};
use crate::vendors::Vendor;

/// How often the operation is looked at while it runs.
const POLL: Duration = Duration::from_millis(200);
/// Tries again when the server is briefly unavailable (with a growing wait).
const POLL_RETRIES: u32 = 5;

/// `producthub import`: adopt a vendor's whole catalog.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The vendor whose catalog to import.
    #[arg(long, value_parser = parse_vendor)]
    pub vendor: Vendor,

    /// Only plan: print what would be created, linked, skipped or refused,
    /// and write no product.
    #[arg(long)]
    pub dry_run: bool,

    /// Link a vendor product to the one product with the same display name
    /// that holds no copy of this vendor yet.
    #[arg(long)]
    pub match_display_names: bool,

    /// Link the vendor product REMOTE_ID to PRODUCT_ID (repeatable).
    #[arg(long = "map", value_name = "REMOTE_ID=PRODUCT_ID", value_parser = parse_mapping)]
    pub mappings: Vec<(String, String)>,

    /// Never create products: vendor products no rule matches are skipped.
    #[arg(long)]
    pub link_only: bool,

    /// A UUID: running the command again with it finds the same operation
    /// instead of starting another.
    #[arg(long)]
    pub request_id: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// The `--map` table; a remote id mapped to two products is refused.
fn product_ids(mappings: &[(String, String)]) -> Result<HashMap<String, String>, CliError> {
    let mut table = HashMap::new();
    for (remote_id, product) in mappings {
        if let Some(other) = table.insert(remote_id.clone(), product.clone())
            && other != *product
        {
            return Err(CliError::Usage(format!(
                "--map names {remote_id} twice, for {other} and for {product}"
            )));
        }
    }
    Ok(table)
}

fn parse_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((remote, product)) if !remote.is_empty() && !product.is_empty() => {
            Ok((remote.to_owned(), product.to_owned()))
        }
        _ => Err("expected REMOTE_ID=PRODUCT_ID".into()),
    }
}

/// What the command ended with: every product adopted (or planned), some
/// refused, or the operation failed.
pub enum ImportOutcome {
    Done,
    SomeFailed,
}

pub async fn import(args: ImportArgs) -> Result<ImportOutcome, CliError> {
    let connection = Connection::open(&args.server).await?;
    let mut products = ProductServiceClient::new(connection.channel.clone());
    let mut operations = OperationsClient::new(connection.channel.clone());
    let request = ImportVendorProductsRequest {
        vendor: args.vendor.to_pb() as i32,
        product_ids: product_ids(&args.mappings)?.into_iter().collect(),
        match_display_names: args.match_display_names,
        link_only: args.link_only,
        validate_only: args.dry_run,
        request_id: args.request_id.clone().unwrap_or_default(),
    };
    let mut op = products
        .import_vendor_products(connection.request(request))
        .await
        .map_err(|s| call_error(&s))?
        .into_inner();
    let verb = if args.dry_run { "planning" } else { "importing" };
    eprintln!("{verb} the {} catalog as {}", args.vendor, op.name);

    let bar = progress_bar();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while !op.done {
        show_progress(&bar, &metadata(&op));
        tokio::select! {
            _ = &mut interrupted => {
                bar.abandon();
                return Err(CliError::Call(format!(
                    "stopped watching; the import goes on at the server as {} (GetOperation shows it)",
                    op.name
                )));
            }
            () = tokio::time::sleep(POLL) => {}
        }
        op = match poll(&mut operations, &connection, &op.name).await {
            Ok(now) => now,
            Err(error) => {
                bar.abandon();
                return Err(CliError::Call(format!(
                    "{error}\nstopped watching; the import goes on at the server as {}",
                    op.name
                )));
            }
        };
    }
    let summary = metadata(&op);
    show_progress(&bar, &summary);
    bar.finish_and_clear();
    match op.result {
        Some(operation::Result::Error(error)) => Err(CliError::Call(format!(
            "{} ended early: {} ({} seen, {} created, {} linked before it)",
            op.name, error.message, summary.seen, summary.created, summary.linked
        ))),
        Some(operation::Result::Response(any)) => {
            let response = ImportVendorProductsResponse::decode(any.value.as_slice())
                .map_err(|e| CliError::Call(format!("the server's response cannot be read: {e}")))?;
            print_report(args.vendor, args.dry_run, &response);
            let failed = response.summary.as_ref().map_or(0, |s| s.failed);
            Ok(if failed > 0 {
                ImportOutcome::SomeFailed
            } else {
                ImportOutcome::Done
            })
        }
        None => Err(CliError::Call(format!("{} is done but has no result", op.name))),
    }
}

/// The operation as it is now; a server that is briefly unavailable is
/// asked again a few times.
async fn poll(
    operations: &mut OperationsClient<tonic::transport::Channel>,
    connection: &Connection,
    name: &str,
) -> Result<Operation, CliError> {
    let mut attempt = 0;
    loop {
        let request = connection.request(GetOperationRequest { name: name.to_owned() });
        match operations.get_operation(request).await {
            Ok(op) => return Ok(op.into_inner()),
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < POLL_RETRIES => {
                attempt += 1;
                tokio::time::sleep(POLL * 5 * attempt).await;
            }
            Err(status) => return Err(call_error(&status)),
        }
    }
}

fn metadata(op: &Operation) -> ImportVendorProductsMetadata {
    op.metadata
        .as_ref()
        .and_then(|any| ImportVendorProductsMetadata::decode(any.value.as_slice()).ok())
        .unwrap_or_default()
}

/// A bar on a terminal's stderr; hidden when stderr is not a terminal.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn show_progress(bar: &ProgressBar, metadata: &ImportVendorProductsMetadata) {
    let counts = format!(
        "{} created, {} linked, {} unchanged, {} failed",
        metadata.created, metadata.linked, metadata.unchanged, metadata.failed
    );
    match u64::try_from(metadata.total).ok().filter(|total| *total > 0) {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} products ({per_sec}, {eta} left) {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_length(total);
            }
        }
        None => bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} products ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
    bar.set_position(u64::try_from(metadata.seen).unwrap_or(0));
    bar.set_message(counts);
}

fn action_name(action: i32) -> &'static str {
    match ImportAction::try_from(action) {
        Ok(ImportAction::Created) => "create",
        Ok(ImportAction::Linked) => "link",
        Ok(ImportAction::Unchanged) => "unchanged",
        Ok(ImportAction::Skipped) => "skip",
        _ => "FAILED",
    }
}

fn line(product: &ImportedVendorProduct) -> String {
    let mut text = format!(
        "{:<9} {} {:?}",
        action_name(product.action),
        if product.remote_id.is_empty() {
            "-"
        } else {
            &product.remote_id
        },
        product.display_name
    );
    if !product.product.is_empty() {
        text.push_str(&format!(" -> {}", product.product));
    }
    if !product.reason.is_empty() {
        text.push_str(&format!(": {}", product.reason));
    }
    if !product.candidates.is_empty() {
        text.push_str(&format!(" (candidates: {})", product.candidates.join(", ")));
    }
    text
}

fn print_report(vendor: Vendor, dry_run: bool, response: &ImportVendorProductsResponse) {
    let summary = response.summary.clone().unwrap_or_default();
    if dry_run {
        for product in &response.products {
            println!("{}", line(product));
        }
        if response.omitted_products > 0 {
            println!(
                "({} more not listed; GetOperation lists the first 10000)",
                response.omitted_products
            );
        }
        println!(
            "plan for the {} catalog (nothing was written): {} products: {} to create, {} to link, {} unchanged, {} to skip, {} refused",
            vendor, summary.seen, summary.created, summary.linked, summary.unchanged, summary.skipped, summary.failed
        );
        return;
    }
    // The refusals, from the metadata (which keeps the first 1000).
    for product in &summary.failures {
        println!("{}", line(product));
    }
    if summary.failed > summary.failures.len() as i64 {
        println!(
            "({} more refused, not listed)",
            summary.failed - summary.failures.len() as i64
        );
    }
    println!(
        "imported the {} catalog: {} products: {} created, {} linked, {} unchanged, {} skipped, {} failed",
        vendor, summary.seen, summary.created, summary.linked, summary.unchanged, summary.skipped, summary.failed
    );
}
