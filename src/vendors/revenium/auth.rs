//! Revenium authentication: the API key in an `x-api-key` header.

use super::{Config, VENDOR};
use crate::vendors::http::{HeaderAuth, HttpClient};

/// A configured Revenium.
pub type Connection = HeaderAuth;

/// Revenium at its API base, with `x-api-key: KEY`.
pub fn connect(config: Config, http: HttpClient) -> Connection {
    HeaderAuth::new(VENDOR, config.base_url, "x-api-key", config.api_key, http)
}
