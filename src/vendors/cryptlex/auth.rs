//! Cryptlex authentication: a bearer access token on every call.

use crate::vendors::VendorError;
use crate::vendors::VendorRequest;
use crate::vendors::http::{HttpClient, Reply};

use super::{Config, VENDOR};

/// A configured Cryptlex: its API base and access token.
pub struct Connection {
    config: Config,
    http: HttpClient,
}

impl Connection {
    pub fn new(config: Config, http: HttpClient) -> Self {
        Self { config, http }
    }

    pub async fn send(&self, request: &VendorRequest) -> Result<Reply, VendorError> {
        let bearer = format!("Bearer {}", self.config.access_token.expose());
        self.http
            .call(VENDOR, &self.config.base_url, request, &[("authorization", bearer)])
            .await
    }
}
