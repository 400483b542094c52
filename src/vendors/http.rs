//! Sends a built [`VendorRequest`] over HTTPS (reqwest with rustls) and
//! returns the vendor's answer as it came. Knows no vendor: each vendor's
//! `auth.rs` supplies its base URL and authentication headers.

use std::time::Duration;

use super::{Method, Secret, Vendor, VendorError, VendorErrorKind, VendorRequest, VendorResponse};

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

/// One connection pool for every vendor (cheap to clone).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client whose every call gives up after `request_timeout`.
    pub fn new(request_timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// Sends `request` to `base` with `headers`; any answer is a `Reply`,
    /// only failing to get one is an error.
    pub async fn call(
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
        request_id: None,
    }
}

/// An error with each of its causes, on one line (where reqwest and tonic
/// say what really went wrong).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A vendor reached with one credential header on every call (a bearer
/// token, an API key).
pub struct HeaderAuth {
    vendor: Vendor,
    base_url: String,
    header: &'static str,
    value: Secret,
    http: HttpClient,
}

impl HeaderAuth {
    pub fn new(vendor: Vendor, base_url: String, header: &'static str, value: Secret, http: HttpClient) -> Self {
        Self {
            vendor,
            base_url,
            header,
            value,
            http,
        }
    }

    pub async fn send(&self, request: &VendorRequest) -> Result<Reply, VendorError> {
        let headers = [(self.header, self.value.expose().to_owned())];
        self.http.call(self.vendor, &self.base_url, request, &headers).await
    }
}
