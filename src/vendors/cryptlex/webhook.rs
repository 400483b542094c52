//! Cryptlex webhooks, as Cryptlex documents them: an HTTP `POST` with
//! `Content-Type: application/json; charset=utf-8`, the header
//! `Webhook-Signature` holding the base64 of the HMAC-SHA256 of the body,
//! keyed with the webhook's token, and a body
//! `{"event": "product.updated", "data": {…the product…}, "triggeredAt": "…"}`.
//! The product events are `product.created`, `product.updated` and
//! `product.deleted`. (That the raw body is what is signed is inferred.)

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::vendors::Secret;
use crate::vendors::api::{WebhookEvent, WebhookRefusal};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Webhook-Signature";

/// Whether `signature` is the body's signature under `token`, compared in
/// constant time.
pub fn signed(body: &[u8], signature: Option<&str>, token: &Secret) -> bool {
    let Some(signature) = signature else {
        return false;
    };
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The signature Cryptlex sends for `body` (for tests and tools).
pub fn signature(body: &[u8], token: &Secret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The event a signed body announces.
pub fn event(body: &[u8]) -> Result<WebhookEvent, WebhookRefusal> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| WebhookRefusal::Malformed(format!("the body is not JSON: {e}")))?;
    let Some(name) = json.get("event").and_then(Value::as_str) else {
        return Err(WebhookRefusal::Malformed("the body has no `event` string".into()));
    };
    if !name.starts_with("product.") {
        return Ok(WebhookEvent {
            event: name.to_owned(),
            remote_id: None,
        });
    }
    let id = match json.get("data").and_then(|data| data.get("id")) {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Err(WebhookRefusal::Malformed(format!("a {name} event without `data.id`"))),
    };
    Ok(WebhookEvent {
        event: name.to_owned(),
        remote_id: Some(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_token_is_accepted_and_any_other_refused() {
        let token = Secret::new("whsec");
        let body = br#"{"event":"product.updated","data":{"id":"c1"}}"#;
        let good = signature(body, &token);
        assert!(signed(body, Some(&good), &token));
        assert!(!signed(body, Some(&good), &Secret::new("other")));
        assert!(!signed(b"{}", Some(&good), &token), "another body");
        assert!(!signed(body, Some("not base64!"), &token));
        assert!(!signed(body, None, &token));
    }

    #[test]
    fn product_events_name_the_copy() {
        let seen = event(br#"{"event":"product.deleted","data":{"id":"c9"},"triggeredAt":"2026-01-01T00:00:00Z"}"#);
        assert_eq!(seen.unwrap().remote_id.as_deref(), Some("c9"));
        assert_eq!(
            event(br#"{"event":"license.created","data":{}}"#).unwrap().remote_id,
            None
        );
        assert!(matches!(event(b"[1]"), Err(WebhookRefusal::Malformed(_))));
        assert!(matches!(
            event(br#"{"event":"product.updated","data":{}}"#),
            Err(WebhookRefusal::Malformed(_))
        ));
    }
}
