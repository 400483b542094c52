//! Revenium authentication: the API key in an `x-api-key` header.

use crate::vendors::VendorError;
use crate::vendors::VendorRequest;
use crate::vendors::http::{HttpClient, Reply};

use super::{Config, VENDOR};

/// A configured Revenium: its API base and key.
pub struct Connection {
    config: Config,
    http: HttpClient,
}

impl Connection {
    pub fn new(config: Config, http: HttpClient) -> Self {
        Self { config, http }
    }

    pub async fn send(&self, request: &VendorRequest) -> Result<Reply, VendorError> {
        let key = self.config.api_key.expose().to_owned();
        self.http
            .call(VENDOR, &self.config.base_url, request, &[("x-api-key", key)])
            .await
    }
}
