//! Cryptlex authentication: a bearer access token on every call.

use super::{Config, VENDOR};
use crate::vendors::Secret;
use crate::vendors::http::{HeaderAuth, HttpClient};

/// A configured Cryptlex.
pub type Connection = HeaderAuth;

/// Cryptlex at its API base, with `authorization: Bearer TOKEN`.
pub fn connect(config: Config, http: HttpClient) -> Connection {
    let bearer = Secret::new(format!("Bearer {}", config.access_token.expose()));
    HeaderAuth::new(VENDOR, config.base_url, "authorization", bearer, http)
}
