//! Which vendors are configured, with their credentials, and the command-line
//! flags that configure them. A vendor without settings is disabled: its
//! changes are marked DISABLED and nothing is sent to it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use super::{Vendor, cryptlex, enos, revenium};

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

/// A secret from its flag or env variable, or else from its file.
pub(super) fn secret(value: Option<String>, file: Option<&PathBuf>, what: &str) -> Result<Option<Secret>, String> {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(value)));
    }
    match file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|text| Some(Secret::new(text.trim())))
            .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display())),
    }
}

/// Deployment settings the vendors' URLs and bodies need, when the product does
/// not carry them itself.
#[derive(Debug, Clone, Default)]
pub struct VendorSettings {
    /// EnOS organization id (`orgId`), used when the product has no `iot.org_id`.
    pub enos_org_id: Option<String>,
    /// Revenium team id (`teamId`), used when the product has no `monetization.team_id`.
    pub revenium_team_id: Option<String>,
    /// Revenium owner id (`ownerId`), used when the product has no `monetization.owner_id`.
    pub revenium_owner_id: Option<String>,
}

/// Everything needed to reach the vendors that are configured.
#[derive(Debug, Clone, Default)]
pub struct VendorsConfig {
    pub enos: Option<enos::Config>,
    pub cryptlex: Option<cryptlex::Config>,
    pub revenium: Option<revenium::Config>,
    /// Deployment ids the adapters fall back on for products that carry none
    /// (also when the vendor itself is not configured, for RenderVendorCall).
    pub settings: VendorSettings,
}

impl VendorsConfig {
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
}

/// The vendors' command-line flags (and their `PRODUCTHUB_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct VendorArgs {
    #[command(flatten)]
    enos: enos::Args,
    #[command(flatten)]
    cryptlex: cryptlex::Args,
    #[command(flatten)]
    revenium: revenium::Args,
}

impl VendorArgs {
    /// The configuration the flags describe, or why they are incomplete.
    pub fn config(&self) -> Result<VendorsConfig, String> {
        Ok(VendorsConfig {
            enos: self.enos.config()?,
            cryptlex: self.cryptlex.config()?,
            revenium: self.revenium.config()?,
            settings: VendorSettings {
                enos_org_id: self.enos.enos_org_id.clone(),
                revenium_team_id: self.revenium.revenium_team_id.clone(),
                revenium_owner_id: self.revenium.revenium_owner_id.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let config = cryptlex::Config {
            base_url: "http://x".into(),
            access_token: Secret::new("tok-123"),
            webhook_token: None,
        };
        let shown = format!("{config:?} {}", config.access_token);
        assert!(!shown.contains("tok-123"), "{shown}");
        assert_eq!(config.access_token.expose(), "tok-123");
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        vendors: VendorArgs,
    }

    #[test]
    fn the_flags_fit_together_and_configure_each_vendor() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["t", "--cryptlex-token", "t1", "--revenium-team-id", "team"]).unwrap();
        let config = cli.vendors.config().unwrap();
        assert_eq!(config.enabled().into_iter().collect::<Vec<_>>(), [Vendor::Cryptlex]);
        assert_eq!(config.settings.revenium_team_id.as_deref(), Some("team"));
        let incomplete = Cli::try_parse_from(["t", "--revenium-api-key", "k"]).unwrap();
        assert!(incomplete.vendors.config().unwrap_err().contains("--revenium-team-id"));
    }

    #[test]
    fn unconfigured_vendors_are_disabled() {
        let config = VendorsConfig {
            cryptlex: Some(cryptlex::Config {
                base_url: "http://x".into(),
                access_token: Secret::new("t"),
                webhook_token: None,
            }),
            ..Default::default()
        };
        assert_eq!(config.enabled().into_iter().collect::<Vec<_>>(), [Vendor::Cryptlex]);
    }
}
