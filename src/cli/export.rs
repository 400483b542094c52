//! `producthub export --server URL`: a running server's catalog as snapshot
//! lines (`crate::snapshot`), read through ListProducts a page at a time.
//! Each product is as it was committed when its page was read, not all as of
//! one moment: for that, export the store itself (a stopped server's data
//! directory, or the PostgreSQL database, read in one transaction).

use std::io::Write;

use super::{CliError, Connection, ServerArgs, call_error};
use crate::pb::ListProductsRequest;
use crate::pb::product_service_client::ProductServiceClient;
use crate::snapshot::to_line;

/// Products asked for per page (the server's most).
const PAGE: i32 = 1000;

/// Writes every product of the server to `out`; returns how many.
pub async fn export_from_server(args: &ServerArgs, out: &mut impl Write) -> Result<u64, CliError> {
    let connection = Connection::open(args).await?;
    // A page holds at least one product, however large the server allows.
    let mut client = ProductServiceClient::new(connection.channel.clone()).max_decoding_message_size(usize::MAX);
    let write_error = |e: std::io::Error| CliError::Usage(format!("cannot write the snapshot: {e}"));
    let mut page_token = String::new();
    let mut count = 0u64;
    loop {
        let page = client
            .list_products(connection.request(ListProductsRequest {
                page_size: PAGE,
                page_token: page_token.clone(),
                filter: String::new(),
            }))
            .await
            .map_err(|status| call_error(&status))?
            .into_inner();
        for product in &page.products {
            let line = to_line(product).map_err(|e| CliError::Call(e.to_string()))?;
            writeln!(out, "{line}").map_err(write_error)?;
            count += 1;
        }
        if page.next_page_token.is_empty() {
            out.flush().map_err(write_error)?;
            return Ok(count);
        }
        page_token = page.next_page_token;
    }
}
