//! Reading a vendor's whole product catalog, page by page, as each vendor's
//! API documents it (the request of each page is the adapter's `list`): EnOS
//! `action=search` with `pagination`, ended by `pagination.totalSize`;
//! Cryptlex `GET /v3/products?page=&limit=` until a short or empty page;
//! Revenium `GET /v2/api/products?page=&size=`, HATEOAS or a bare array.
//!
//! A page that fails with a retryable error (rate limited, unavailable, an
//! expired token) is asked for again, after the vendor's `Retry-After` when it
//! sends one, else after a growing backoff; pages are addressed by index, so a
//! caller that stops can resume at the page it had reached.

use std::time::Duration;

use serde_json::Value;

use super::{Adapter, AdapterError, Connections, Vendor, VendorError, VendorSettings};
use crate::domain::sync_plan::backoff;

/// How a page that failed for a passing reason is retried.
#[derive(Debug, Clone)]
pub struct ListRetry {
    /// Tries per page, the first included.
    pub attempts: u32,
    /// The first wait; each further one twice as long.
    pub base: Duration,
    /// No backoff is longer than this.
    pub max: Duration,
    /// A vendor's `Retry-After` longer than this ends the listing instead.
    pub longest_retry_after: Duration,
}

impl Default for ListRetry {
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            longest_retry_after: Duration::from_secs(600),
        }
    }
}

/// One page of a vendor's catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPage {
    /// Which page (from 0).
    pub index: u32,
    /// The vendor's product objects, as they came.
    pub products: Vec<Value>,
    /// Whether no page follows.
    pub last: bool,
    /// How many products the vendor says it has, when it says.
    pub total: Option<u64>,
}

/// Why a catalog could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error("page {page} of the {vendor} catalog: {error}")]
    Vendor {
        vendor: Vendor,
        page: u32,
        error: VendorError,
    },
    #[error("the {vendor} catalog returned page {page} again; it does not page as documented")]
    Repeats { vendor: Vendor, page: u32 },
}

/// A vendor's catalog, read through its connection.
pub struct Listing<'a> {
    connections: &'a Connections,
    vendor: Vendor,
    settings: &'a VendorSettings,
    retry: ListRetry,
}

impl<'a> Listing<'a> {
    pub fn new(connections: &'a Connections, vendor: Vendor, settings: &'a VendorSettings, retry: ListRetry) -> Self {
        Self {
            connections,
            vendor,
            settings,
            retry,
        }
    }

    fn adapter(&self) -> &'static dyn Adapter {
        self.vendor.adapter()
    }

    /// Page `index`, retried while the vendor's errors say it may pass.
    pub async fn page(&self, index: u32) -> Result<ListedPage, ListError> {
        let adapter = self.adapter();
        let request = adapter.list(index, self.settings)?;
        let mut attempt = 0;
        loop {
            let read = match self.connections.send(self.vendor, &request).await {
                Ok(reply) => adapter.read_list(reply.view()),
                Err(error) => Err(error),
            };
            match read {
                Ok(page) => {
                    let size = adapter.page_size() as usize;
                    let seen = u64::from(index) * size as u64 + page.products.len() as u64;
                    let last = page.products.len() < size || page.total.is_some_and(|total| seen >= total);
                    return Ok(ListedPage {
                        index,
                        products: page.products,
                        last,
                        total: page.total,
                    });
                }
                Err(error) => {
                    attempt += 1;
                    let give_up = !error.is_retryable()
                        || attempt >= self.retry.attempts
                        || error
                            .retry_after
                            .is_some_and(|wait| wait > self.retry.longest_retry_after);
                    if give_up {
                        return Err(ListError::Vendor {
                            vendor: self.vendor,
                            page: index,
                            error,
                        });
                    }
                    let random = uuid::Uuid::new_v4().as_u64_pair().0;
                    let wait = error
                        .retry_after
                        .unwrap_or_else(|| backoff(attempt as i32 - 1, self.retry.base, self.retry.max, random));
                    tracing::info!(vendor = %self.vendor, page = index, %error, retry_in = ?wait, "listing page failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The whole catalog, from page `from` on, in the vendor's order. A
    /// vendor that answers the same full page twice ends it with an error
    /// rather than loop.
    pub async fn all_from(&self, from: u32) -> Result<Vec<Value>, ListError> {
        let mut products: Vec<Value> = Vec::new();
        // Where the previous page starts in `products`.
        let mut previous = 0;
        let mut index = from;
        loop {
            let page = self.page(index).await?;
            if index > from && !page.products.is_empty() && products[previous..] == page.products[..] {
                return Err(ListError::Repeats {
                    vendor: self.vendor,
                    page: index,
                });
            }
            let last = page.last;
            previous = products.len();
            products.extend(page.products);
            if last {
                return Ok(products);
            }
            index += 1;
        }
    }
}
