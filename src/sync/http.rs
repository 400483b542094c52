//! Sends adapter-built requests to the vendors over HTTPS (reqwest, rustls),
//! adding each vendor's authentication: EnOS access token and per-request
//! signature, Cryptlex bearer token, Revenium `x-api-key`.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::config::SyncConfig;
use crate::adapters::{Method, Vendor, VendorError, VendorErrorKind, VendorRequest, VendorResponse, enos};

/// A vendor's HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn view(&self) -> VendorResponse<'_> {
        VendorResponse {
            status: self.status,
            retry_after: self.retry_after.as_deref(),
            body: &self.body,
        }
    }
}

/// Refresh the EnOS token when this share of its lifetime has passed.
const TOKEN_REFRESH_AT: f64 = 0.8;

struct CachedToken {
    value: String,
    refresh_after: Instant,
}

pub struct VendorHttp {
    client: reqwest::Client,
    config: SyncConfig,
    enos_token: Mutex<Option<CachedToken>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn transport_error(vendor: Vendor, error: &reqwest::Error) -> VendorError {
    // Connection refused, reset, timeout: the vendor may be back soon.
    VendorError {
        vendor,
        kind: VendorErrorKind::Unavailable,
        http_status: None,
        code: None,
        message: format!("cannot reach {vendor}: {}", error_chain(error)),
        retry_after: None,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn not_configured(vendor: Vendor) -> VendorError {
    VendorError {
        vendor,
        kind: VendorErrorKind::FailedPrecondition,
        http_status: None,
        code: None,
        message: format!("{vendor} is not configured"),
        retry_after: None,
    }
}

impl VendorHttp {
    pub fn new(config: SyncConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.retry.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            config,
            enos_token: Mutex::new(None),
        })
    }

    /// Sends `request` to `vendor` and returns its answer, whatever the status.
    /// Only failures to get an answer at all are errors.
    pub async fn send(&self, vendor: Vendor, request: &VendorRequest) -> Result<Reply, VendorError> {
        let (base, headers) = match vendor {
            Vendor::Enos => {
                let config = self.config.enos.as_ref().ok_or_else(|| not_configured(vendor))?;
                let token = self.enos_token().await?;
                let timestamp = now_ms();
                let signature = enos::signature(&token, request, timestamp, config.app_secret.expose());
                (
                    config.base_url.as_str(),
                    vec![
                        ("apim-accesstoken", token),
                        ("apim-signature", signature),
                        ("apim-timestamp", timestamp.to_string()),
                    ],
                )
            }
            Vendor::Cryptlex => {
                let config = self.config.cryptlex.as_ref().ok_or_else(|| not_configured(vendor))?;
                let bearer = format!("Bearer {}", config.access_token.expose());
                (config.base_url.as_str(), vec![("authorization", bearer)])
            }
            Vendor::Revenium => {
                let config = self.config.revenium.as_ref().ok_or_else(|| not_configured(vendor))?;
                (
                    config.base_url.as_str(),
                    vec![("x-api-key", config.api_key.expose().to_owned())],
                )
            }
        };
        let reply = self.call(vendor, base, request, &headers).await?;
        // A token the gateway no longer accepts: forget it, so the next
        // attempt gets a new one.
        if vendor == Vendor::Enos
            && let Some(error) = crate::adapters::adapter(vendor).read_error(reply.view())
            && matches!(
                error.kind,
                VendorErrorKind::TokenExpired | VendorErrorKind::Unauthenticated
            )
        {
            *self.enos_token.lock().await = None;
        }
        Ok(reply)
    }

    async fn call(
        &self,
        vendor: Vendor,
        base: &str,
        request: &VendorRequest,
        headers: &[(&str, String)],
    ) -> Result<Reply, VendorError> {
        let url = format!("{}{}", base.trim_end_matches('/'), request.path_and_query());
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if request.body.is_some() {
            // The exact bytes that were signed are the bytes sent.
            builder = builder
                .header("content-type", "application/json;charset=UTF-8")
                .body(request.body_text());
        }
        let response = builder.send().await.map_err(|e| transport_error(vendor, &e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(vendor, &e))?
            .to_vec();
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }

    /// A valid EnOS access token: cached, refreshed once most of its lifetime
    /// has passed, fetched anew when there is none or the refresh fails.
    async fn enos_token(&self) -> Result<String, VendorError> {
        let mut cached = self.enos_token.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| now < t.refresh_after) {
            return Ok(token.value.clone());
        }
        let config = self.config.enos.as_ref().ok_or_else(|| not_configured(Vendor::Enos))?;
        let secret = config.app_secret.expose();
        if let Some(old) = cached.take() {
            let refresh = enos::token_refresh_request(&config.app_key, secret, now_ms(), &old.value);
            if let Ok(reply) = self.call(Vendor::Enos, &config.base_url, &refresh, &[]).await
                && let Ok((value, expire)) = enos::read_token(reply.view())
            {
                return Ok(cache(&mut cached, value, expire));
            }
        }
        let request = enos::token_request(&config.app_key, secret, now_ms());
        let reply = self.call(Vendor::Enos, &config.base_url, &request, &[]).await?;
        let (value, expire) = enos::read_token(reply.view())?;
        Ok(cache(&mut cached, value, expire))
    }
}

fn cache(slot: &mut Option<CachedToken>, value: String, expire_secs: u64) -> String {
    let lifetime = Duration::from_secs(expire_secs).mul_f64(TOKEN_REFRESH_AT);
    *slot = Some(CachedToken {
        value: value.clone(),
        refresh_after: Instant::now() + lifetime,
    });
    value
}
