//! EnOS authentication: an access token from the API gateway's token service,
//! cached and refreshed before it expires, and a per-request signature
//! (`apim-accesstoken`, `apim-signature`, `apim-timestamp` headers).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Config, VENDOR, kind_from_code};
use crate::vendors::http::{HttpClient, Reply};
use crate::vendors::{
    Adapter, Method, VendorError, VendorErrorKind, VendorRequest, VendorResponse, kind_from_http_status,
    parse_retry_after, unreadable,
};

/// The token service's path (EnOS "token authentication" for third parties).
pub const TOKEN_PATH: &str = "/apim-token-service/v2.0/token/get";
/// Refreshes a token before it expires (the get path returns the same token
/// while it is valid).
pub const TOKEN_REFRESH_PATH: &str = "/apim-token-service/v2.0/token/refresh";

/// Lower-case hex SHA-256 of the concatenated parts, as EnOS's token and
/// request signatures use.
fn sha256_hex(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The request for an access token: `encryption` is
/// sha256(appKey + timestamp + appSecret).
pub fn token_request(app_key: &str, app_secret: &str, timestamp_ms: i64) -> VendorRequest {
    let timestamp = timestamp_ms.to_string();
    VendorRequest {
        method: Method::Post,
        path: TOKEN_PATH.into(),
        query: Vec::new(),
        body: Some(json!({
            "appKey": app_key,
            "encryption": sha256_hex(&[app_key, &timestamp, app_secret]),
            "timestamp": timestamp_ms,
        })),
    }
}

/// The request refreshing `access_token`: the get request's fields plus the token.
pub fn token_refresh_request(app_key: &str, app_secret: &str, timestamp_ms: i64, access_token: &str) -> VendorRequest {
    let mut request = token_request(app_key, app_secret, timestamp_ms);
    request.path = TOKEN_REFRESH_PATH.into();
    if let Some(Value::Object(body)) = request.body.as_mut() {
        body.insert("accessToken".into(), json!(access_token));
    }
    request
}

/// The access token and its lifetime in seconds, from the token service's
/// answer `{status, msg, data: {accessToken, expire}}` (one EnOS sample spells
/// `status` as `stauts`; both are read).
pub fn read_token(response: VendorResponse<'_>) -> Result<(String, u64), VendorError> {
    let parsed: Value =
        serde_json::from_slice(response.body).map_err(|e| unreadable(VENDOR, response, e.to_string()))?;
    let status = parsed
        .get("status")
        .or_else(|| parsed.get("stauts"))
        .and_then(|s| match s {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        });
    let message = parsed.get("msg").and_then(Value::as_str).unwrap_or_default().to_owned();
    let token = parsed.pointer("/data/accessToken").and_then(Value::as_str);
    match (status, token) {
        (Some(0), Some(token)) if (200..300).contains(&response.status) && !token.is_empty() => {
            let expire = parsed.pointer("/data/expire").and_then(Value::as_u64).unwrap_or(7200);
            Ok((token.to_owned(), expire))
        }
        _ => Err(VendorError {
            vendor: VENDOR,
            kind: match status {
                Some(code) if code != 0 => kind_from_code(code, &message),
                _ => kind_from_http_status(response.status),
            },
            http_status: Some(response.status),
            code: status.map(|c| c.to_string()),
            // Never the body itself: a token answer may carry the token.
            message: if message.is_empty() {
                format!("the token service answered HTTP {} without a message", response.status)
            } else {
                message
            },
            retry_after: parse_retry_after(response.retry_after),
            request_id: None,
        }),
    }
}

/// The `apim-signature` of a request: sha256(accessToken + the query
/// parameters sorted by name as `k1v1k2v2…` + the exact body + timestamp +
/// appSecret), lower-case hex.
pub fn signature(access_token: &str, request: &VendorRequest, timestamp_ms: i64, app_secret: &str) -> String {
    let mut params: Vec<&(&'static str, String)> = request.query.iter().collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    let mut data = String::new();
    for (key, value) in params {
        data.push_str(key);
        data.push_str(value);
    }
    data.push_str(&request.body_text());
    sha256_hex(&[access_token, &data, &timestamp_ms.to_string(), app_secret])
}

/// Refresh the token when this share of its lifetime has passed.
const TOKEN_REFRESH_AT: f64 = 0.8;

struct CachedToken {
    value: String,
    refresh_after: Instant,
}

/// A configured EnOS: its gateway, credentials and cached access token.
pub struct Connection {
    config: Config,
    http: HttpClient,
    token: Mutex<Option<CachedToken>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Connection {
    pub fn new(config: Config, http: HttpClient) -> Self {
        Self {
            config,
            http,
            token: Mutex::new(None),
        }
    }

    /// Sends a signed request with a valid token.
    pub async fn send(&self, request: &VendorRequest) -> Result<Reply, VendorError> {
        let token = self.token().await?;
        let timestamp = now_ms();
        let signature = signature(&token, request, timestamp, self.config.app_secret.expose());
        let headers = [
            ("apim-accesstoken", token),
            ("apim-signature", signature),
            ("apim-timestamp", timestamp.to_string()),
        ];
        let reply = self.http.call(VENDOR, &self.config.base_url, request, &headers).await?;
        // A token the gateway no longer accepts: forget it, so the next
        // attempt gets a new one.
        if let Some(error) = super::Enos.read_error(reply.view())
            && matches!(
                error.kind,
                VendorErrorKind::TokenExpired | VendorErrorKind::Unauthenticated
            )
        {
            *self.token.lock().await = None;
        }
        Ok(reply)
    }

    /// A valid access token: cached, refreshed once most of its lifetime
    /// has passed, fetched anew when there is none or the refresh fails.
    async fn token(&self) -> Result<String, VendorError> {
        let mut cached = self.token.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| now < t.refresh_after) {
            return Ok(token.value.clone());
        }
        let config = &self.config;
        let secret = config.app_secret.expose();
        if let Some(old) = cached.take() {
            let refresh = token_refresh_request(&config.app_key, secret, now_ms(), &old.value);
            if let Ok(reply) = self.http.call(VENDOR, &config.base_url, &refresh, &[]).await
                && let Ok((value, expire)) = read_token(reply.view())
            {
                return Ok(cache(&mut cached, value, expire));
            }
        }
        let request = token_request(&config.app_key, secret, now_ms());
        let reply = self.http.call(VENDOR, &config.base_url, &request, &[]).await?;
        let (value, expire) = read_token(reply.view())?;
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

#[cfg(test)]
mod tests {
    use super::super::PRODUCTS_PATH;
    use super::*;
    use crate::vendors::test_support::response;

    #[test]
    fn token_requests_and_signatures_follow_the_documented_recipe() {
        let request = token_request("ak", "sk", 1_600_000_000_000);
        assert_eq!(request.path_and_query(), "/apim-token-service/v2.0/token/get");
        let body = request.body.unwrap();
        assert_eq!(body["appKey"], json!("ak"));
        assert_eq!(body["timestamp"], json!(1_600_000_000_000i64));
        // sha256("ak" + "1600000000000" + "sk")
        assert_eq!(body["encryption"], json!(sha256_hex(&["ak1600000000000sk"])));

        let call = VendorRequest {
            method: Method::Post,
            path: PRODUCTS_PATH.into(),
            query: vec![
                ("orgId", "o1".into()),
                ("action", "update".into()),
                ("productKey", "pk".into()),
            ],
            body: Some(json!({"a": 1})),
        };
        // Query sorted by name: action, orgId, productKey; then the body.
        let expected = sha256_hex(&["TOKEN", "actionupdateorgIdo1productKeypk{\"a\":1}", "42", "sk"]);
        assert_eq!(signature("TOKEN", &call, 42, "sk"), expected);
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn token_answers() {
        let ok = json!({"status": 0, "msg": "SUCCESS", "business": "apim-token-service", "data": {"accessToken": "T", "expire": 7200}}).to_string();
        assert_eq!(
            read_token(response(200, None, ok.as_bytes())).unwrap(),
            ("T".to_string(), 7200)
        );
        let typo = json!({"stauts": 0, "msg": "SUCCESS", "data": {"accessToken": "T", "expire": 60}}).to_string();
        assert_eq!(read_token(response(200, None, typo.as_bytes())).unwrap().1, 60);
        let bad_key = json!({"status": 1002, "msg": "appKey unknown"}).to_string();
        assert_eq!(
            read_token(response(200, None, bad_key.as_bytes())).unwrap_err().kind,
            VendorErrorKind::Unauthenticated
        );
    }
}
