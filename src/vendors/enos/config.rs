//! EnOS settings: the API gateway, the organization and the application's
//! access key pair, from `--enos-*` flags or `PRODUCTHUB_ENOS_*` variables.

use std::path::PathBuf;

use crate::vendors::Secret;
use crate::vendors::config::secret;

/// EnOS: API gateway, organization and the application's access key pair.
#[derive(Debug, Clone)]
pub struct Config {
    /// e.g. `https://apim-ppe1.envisioniot.com` (no trailing slash needed).
    pub base_url: String,
    pub org_id: String,
    pub app_key: String,
    pub app_secret: Secret,
}

/// The flags that enable this vendor, as error messages name them.
pub const ENABLING_FLAGS: &str =
    "--enos-base-url, --enos-org-id, --enos-app-key and --enos-app-secret (or --enos-app-secret-file)";

/// The `--enos-*` flags.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "enos")]
pub struct Args {
    /// EnOS organization id (`orgId`) for products that carry none.
    #[arg(long, env = "PRODUCTHUB_ENOS_ORG_ID")]
    pub(crate) enos_org_id: Option<String>,

    /// EnOS API gateway base URL (enables EnOS sync, with the app key and secret).
    #[arg(long, env = "PRODUCTHUB_ENOS_BASE_URL")]
    enos_base_url: Option<String>,

    /// EnOS application access key (`appKey`).
    #[arg(long, env = "PRODUCTHUB_ENOS_APP_KEY")]
    enos_app_key: Option<String>,

    /// EnOS application secret; prefer the env variable or --enos-app-secret-file.
    #[arg(long, env = "PRODUCTHUB_ENOS_APP_SECRET", hide_env_values = true)]
    enos_app_secret: Option<String>,

    /// File holding the EnOS application secret.
    #[arg(long, env = "PRODUCTHUB_ENOS_APP_SECRET_FILE")]
    enos_app_secret_file: Option<PathBuf>,
}

impl Args {
    /// EnOS's configuration: `None` when none of base URL, app key and secret is
    /// given, or what is missing when only some are.
    pub fn config(&self) -> Result<Option<Config>, String> {
        let app_secret = secret(
            self.enos_app_secret.clone(),
            self.enos_app_secret_file.as_ref(),
            "EnOS app secret",
        )?;
        match (&self.enos_base_url, &self.enos_app_key, app_secret, &self.enos_org_id) {
            (None, None, None, _) => Ok(None),
            (Some(base_url), Some(app_key), Some(app_secret), Some(org_id)) => Ok(Some(Config {
                base_url: base_url.clone(),
                org_id: org_id.clone(),
                app_key: app_key.clone(),
                app_secret,
            })),
            _ => Err("EnOS sync needs all of --enos-base-url, --enos-org-id, --enos-app-key and the app secret".into()),
        }
    }
}
