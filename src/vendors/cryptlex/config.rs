//! Cryptlex settings: the API base and an access token, from `--cryptlex-*`
//! flags or `PRODUCTHUB_CRYPTLEX_*` variables.

use std::path::PathBuf;

use crate::vendors::Secret;
use crate::vendors::config::secret;

/// Cryptlex: API base (e.g. `https://api.cryptlex.com`) and access token.
#[derive(Debug, Clone)]
pub struct Config {
    pub base_url: String,
    pub access_token: Secret,
    /// The token Cryptlex signs this server's webhook calls with, when
    /// webhooks are set up (Developer → Webhooks).
    pub webhook_token: Option<Secret>,
}

/// The flags that enable this vendor, as error messages name them.
pub const ENABLING_FLAGS: &str =
    "--cryptlex-token (or --cryptlex-token-file), with --cryptlex-base-url for another API host";

/// The `--cryptlex-*` flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "cryptlex")]
pub struct Args {
    /// Cryptlex API base URL.
    #[arg(
        long,
        env = "PRODUCTHUB_CRYPTLEX_BASE_URL",
        default_value = "https://api.cryptlex.com"
    )]
    cryptlex_base_url: String,

    /// Cryptlex access token (enables Cryptlex sync); prefer the env variable or a file.
    #[arg(long, env = "PRODUCTHUB_CRYPTLEX_TOKEN", hide_env_values = true)]
    cryptlex_token: Option<String>,

    /// File holding the Cryptlex access token.
    #[arg(long, env = "PRODUCTHUB_CRYPTLEX_TOKEN_FILE")]
    cryptlex_token_file: Option<PathBuf>,

    /// The token of the Cryptlex webhook that calls this server
    /// (`--webhook-listen`): its calls are signed with it. Prefer the env
    /// variable or a file.
    #[arg(long, env = "PRODUCTHUB_CRYPTLEX_WEBHOOK_TOKEN", hide_env_values = true)]
    cryptlex_webhook_token: Option<String>,

    /// File holding the Cryptlex webhook token.
    #[arg(long, env = "PRODUCTHUB_CRYPTLEX_WEBHOOK_TOKEN_FILE")]
    cryptlex_webhook_token_file: Option<PathBuf>,
}

impl Args {
    /// Cryptlex's configuration, `None` without a token.
    pub fn config(&self) -> Result<Option<Config>, String> {
        let webhook_token = secret(
            self.cryptlex_webhook_token.clone(),
            self.cryptlex_webhook_token_file.as_ref(),
            "Cryptlex webhook token",
        )?;
        let access_token = secret(
            self.cryptlex_token.clone(),
            self.cryptlex_token_file.as_ref(),
            "Cryptlex token",
        )?;
        match (access_token, webhook_token) {
            (Some(access_token), webhook_token) => Ok(Some(Config {
                base_url: self.cryptlex_base_url.clone(),
                access_token,
                webhook_token,
            })),
            // A webhook's event is only a hint: the copy is read with the
            // access token, so webhooks alone cannot work.
            (None, Some(_)) => Err("--cryptlex-webhook-token needs --cryptlex-token: events are checked by reading the product from Cryptlex".into()),
            (None, None) => Ok(None),
        }
    }
}
