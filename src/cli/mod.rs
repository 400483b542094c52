//! The command-line clients of a running server: `producthub import`,
//! `producthub link`, `producthub unlink` and `producthub export --server`. They speak only the public API
//! (the generated stubs), as any other client would, so what they can do a
//! script with grpcurl can do too.

mod export;
mod import;
mod link;

use std::path::PathBuf;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

pub use export::export_from_server;
pub use import::{ImportArgs, ImportOutcome, import};
pub use link::{LinkArgs, UnlinkArgs, link, unlink};

use crate::vendors::Vendor;
use crate::vendors::http::error_chain;

/// How a command reaches the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server: `http://HOST:PORT`, `https://HOST:PORT`, or `HOST:PORT`
    /// (https with --ca-cert or --client-cert, else http).
    #[arg(long, env = "PRODUCTHUB_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// A read-write bearer token, when the server requires tokens.
    #[arg(long, env = "PRODUCTHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM CA certificate to trust for a TLS server (besides the system's
    /// trusted roots).
    #[arg(long, env = "PRODUCTHUB_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate, for a server that requires mutual TLS (with
    /// --client-key).
    #[arg(long, env = "PRODUCTHUB_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, env = "PRODUCTHUB_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// A vendor as a command names it: its name in any case (`cryptlex`).
pub fn parse_vendor(text: &str) -> Result<Vendor, String> {
    Vendor::ALL
        .into_iter()
        .find(|v| v.to_string().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let names: Vec<String> = Vendor::ALL.iter().map(|v| v.to_string().to_lowercase()).collect();
            format!("expected one of: {}", names.join(", "))
        })
}

/// Why a command failed, as one line for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("{0}")]
    Call(String),
}

/// A connection to the server, adding the token to every call.
struct Connection {
    channel: Channel,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Connection {
    async fn open(args: &ServerArgs) -> Result<Self, CliError> {
        let url = if args.server.contains("://") {
            args.server.clone()
        } else if args.ca_cert.is_some() || args.client_cert.is_some() {
            format!("https://{}", args.server)
        } else {
            format!("http://{}", args.server)
        };
        let connect_error = |reason: String| CliError::Connect {
            server: url.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(|e| connect_error(e.to_string()))?;
        if url.starts_with("https://") {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
            };
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &args.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| connect_error(e.to_string()))?;
        }
        let channel = endpoint.connect().await.map_err(|e| connect_error(error_chain(&e)))?;
        let token = match &args.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| CliError::Usage("the token has characters a header cannot carry".into()))?,
            ),
            None => None,
        };
        Ok(Self { channel, token })
    }

    /// `message` as a request carrying the token.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("authorization", token.clone());
        }
        request
    }
}

/// A refused call as one line: the server's message, its reason, and each
/// bad field.
fn call_error(status: &tonic::Status) -> CliError {
    let details = status.get_error_details();
    let mut line = status.message().to_owned();
    if let Some(info) = details.error_info() {
        line.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(bad) = details.bad_request() {
        for violation in &bad.field_violations {
            line.push_str(&format!("\n  {}: {}", violation.field, violation.description));
        }
    }
    CliError::Call(line)
}

/// `products/ID` for `ID` or `products/ID`.
fn product_name(product: &str) -> String {
    if product.starts_with("products/") {
        product.to_owned()
    } else {
        format!("products/{product}")
    }
}
