//! Per-vendor connection settings. A vendor without settings is disabled.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::adapters::{Vendor, VendorSettings};

/// A credential. Its `Debug` and `Display` never show the value, so it cannot
/// leak into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// EnOS: API gateway, organization and the application's access key pair.
#[derive(Debug, Clone)]
pub struct EnosConfig {
    /// e.g. `https://apim-ppe1.envisioniot.com` (no trailing slash needed).
    pub base_url: String,
    pub org_id: String,
    pub app_key: String,
    pub app_secret: Secret,
}

/// Cryptlex: API base (e.g. `https://api.cryptlex.com`) and access token.
#[derive(Debug, Clone)]
pub struct CryptlexConfig {
    pub base_url: String,
    pub access_token: Secret,
}

/// Revenium: API base (e.g. `https://api.revenium.ai/profitstream`), key and
/// the team and owner new products belong to.
#[derive(Debug, Clone)]
pub struct ReveniumConfig {
    pub base_url: String,
    pub api_key: Secret,
    pub team_id: String,
    pub owner_id: String,
}

/// How failed deliveries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first retry waits about this long; each further one twice as long.
    pub base: Duration,
    /// No wait is longer than this (unless the vendor's Retry-After says so).
    pub max: Duration,
    /// How long one HTTP call to a vendor may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// Everything the sync engine needs to reach the vendors.
#[derive(Debug, Clone, Default)]
pub struct SyncConfig {
    pub enos: Option<EnosConfig>,
    pub cryptlex: Option<CryptlexConfig>,
    pub revenium: Option<ReveniumConfig>,
    pub retry: RetryPolicy,
}

impl SyncConfig {
    /// The vendors products are sent to.
    pub fn enabled(&self) -> BTreeSet<Vendor> {
        let mut enabled = BTreeSet::new();
        if self.enos.is_some() {
            enabled.insert(Vendor::Enos);
        }
        if self.cryptlex.is_some() {
            enabled.insert(Vendor::Cryptlex);
        }
        if self.revenium.is_some() {
            enabled.insert(Vendor::Revenium);
        }
        enabled
    }

    /// The ids the adapters fall back on for products that carry none.
    pub fn adapter_settings(&self) -> VendorSettings {
        VendorSettings {
            enos_org_id: self.enos.as_ref().map(|e| e.org_id.clone()),
            revenium_team_id: self.revenium.as_ref().map(|r| r.team_id.clone()),
            revenium_owner_id: self.revenium.as_ref().map(|r| r.owner_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let config = CryptlexConfig {
            base_url: "http://x".into(),
            access_token: Secret::new("tok-123"),
        };
        let shown = format!("{config:?} {}", config.access_token);
        assert!(!shown.contains("tok-123"), "{shown}");
        assert_eq!(config.access_token.expose(), "tok-123");
    }

    #[test]
    fn unconfigured_vendors_are_disabled() {
        let config = SyncConfig {
            cryptlex: Some(CryptlexConfig {
                base_url: "http://x".into(),
                access_token: Secret::new("t"),
            }),
            ..Default::default()
        };
        assert_eq!(config.enabled().into_iter().collect::<Vec<_>>(), [Vendor::Cryptlex]);
    }
}
