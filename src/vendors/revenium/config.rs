//! Revenium settings: the API base, an API key, and the team and owner new
//! products belong to, from `--revenium-*` flags or `PRODUCTHUB_REVENIUM_*`
//! variables.

use std::path::PathBuf;

use crate::vendors::Secret;
use crate::vendors::config::secret;

/// Revenium: API base (e.g. `https://api.revenium.ai/profitstream`), key and
/// the team and owner new products belong to.
#[derive(Debug, Clone)]
pub struct Config {
    pub base_url: String,
    pub api_key: Secret,
    pub team_id: String,
    pub owner_id: String,
}

/// The flags that enable this vendor, as error messages name them.
pub const ENABLING_FLAGS: &str =
    "--revenium-api-key (or --revenium-api-key-file), --revenium-team-id and --revenium-owner-id";

/// The `--revenium-*` flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "revenium")]
pub struct Args {
    /// Revenium team id (`teamId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_TEAM_ID")]
    pub(crate) revenium_team_id: Option<String>,

    /// Revenium owner id (`ownerId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_OWNER_ID")]
    pub(crate) revenium_owner_id: Option<String>,

    /// Revenium API base URL.
    #[arg(
        long,
        env = "PRODUCTHUB_REVENIUM_BASE_URL",
        default_value = "https://api.revenium.ai/profitstream"
    )]
    revenium_base_url: String,

    /// Revenium API key (enables Revenium sync, with team and owner ids); prefer the env variable or a file.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_API_KEY", hide_env_values = true)]
    revenium_api_key: Option<String>,

    /// File holding the Revenium API key.
    #[arg(long, env = "PRODUCTHUB_REVENIUM_API_KEY_FILE")]
    revenium_api_key_file: Option<PathBuf>,
}

impl Args {
    /// Revenium's configuration, `None` without an API key, or what is missing.
    pub fn config(&self) -> Result<Option<Config>, String> {
        let api_key = secret(
            self.revenium_api_key.clone(),
            self.revenium_api_key_file.as_ref(),
            "Revenium API key",
        )?;
        match (api_key, &self.revenium_team_id, &self.revenium_owner_id) {
            (None, _, _) => Ok(None),
            (Some(api_key), Some(team_id), Some(owner_id)) => Ok(Some(Config {
                base_url: self.revenium_base_url.clone(),
                api_key,
                team_id: team_id.clone(),
                owner_id: owner_id.clone(),
            })),
            _ => Err("Revenium sync needs --revenium-team-id and --revenium-owner-id with the API key".into()),
        }
    }
}
