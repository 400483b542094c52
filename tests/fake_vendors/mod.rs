//! Fake EnOS, Cryptlex and Revenium servers on loopback for the sync tests.
//!
//! Each records every request (method, path, query, headers, body, time) and
//! answers like its vendor: envelopes, ids, errors. Each checks authentication
//! the way its vendor documents it; the EnOS fake recomputes the token
//! `encryption` and every request's `apim-signature` independently of the code
//! under test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const ENOS_APP_KEY: &str = "ak-test";
pub const ENOS_APP_SECRET: &str = "sk-test-secret";
pub const ENOS_TOKEN: &str = "enos-token-1";
pub const CRYPTLEX_TOKEN: &str = "cryptlex-token";
pub const REVENIUM_KEY: &str = "rev_sk_test";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// For EnOS: whether the signature (or token encryption) checked out.
    pub auth_ok: bool,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What a fake should do differently from a healthy vendor.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer 503 to everything.
    pub down: bool,
    /// Answer the next product call with 429 and `Retry-After: 1`.
    pub rate_limit_once: bool,
    /// EnOS: refuse creates with 11699 (modelId does not exist).
    pub unknown_model: bool,
    /// EnOS: refuse deletes with 11619 (the product still has devices).
    pub has_devices: bool,
    /// Cryptlex: refuse products whose licenseTemplateId is this, with 400.
    pub bad_template: Option<String>,
    /// Cryptlex: answer every list request with its first page, as a server
    /// that ignores paging would.
    pub ignore_paging: bool,
    /// Wait this long before answering each request (a far-away vendor).
    pub latency: std::time::Duration,
    /// Cryptlex: apply the next PATCH, then answer it 503, as a gateway
    /// timing out after the vendor acted would.
    pub lose_next_answer: bool,
}

#[derive(Default)]
struct FakeState {
    requests: Vec<Recorded>,
    behaviour: Behaviour,
    next_id: u32,
    /// Revenium: the stored product objects by id.
    products: BTreeMap<String, Value>,
}

#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl Fake {
    /// Puts `count` products in the fake's catalog, as the vendor would hold
    /// them (`make` builds the product object of number `n`, keyed by `key`).
    pub fn seed(&self, count: usize, make: impl Fn(usize) -> (String, Value)) {
        let mut state = self.state.lock().unwrap();
        for n in 0..count {
            let (key, product) = make(n);
            state.products.insert(key, product);
        }
    }

    /// The vendor's copy `key`, as it holds it now.
    pub fn stored(&self, key: &str) -> Option<Value> {
        self.state.lock().unwrap().products.get(key).cloned()
    }

    /// Changes the copy `key` behind producthub's back, as someone in the
    /// vendor's console would.
    pub fn edit(&self, key: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.state.lock().unwrap();
        let copy = state
            .products
            .get_mut(key)
            .unwrap_or_else(|| panic!("the fake has no product {key}"));
        change(copy);
    }

    /// Deletes the copy `key` behind producthub's back.
    pub fn remove(&self, key: &str) {
        self.state.lock().unwrap().products.remove(key);
    }

    /// The fake's catalog size.
    pub fn catalog_len(&self) -> usize {
        self.state.lock().unwrap().products.len()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap().behaviour);
    }

    /// How many recorded requests `keep` accepts (without copying them).
    pub fn count(&self, keep: impl Fn(&Recorded) -> bool) -> usize {
        self.state.lock().unwrap().requests.iter().filter(|r| keep(r)).count()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests to product endpoints (not the EnOS token service).
    pub fn product_calls(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.path.contains("apim-token-service"))
            .collect()
    }

    /// Product calls the fake answered with success.
    pub fn successful_calls(&self) -> Vec<Recorded> {
        self.product_calls()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

/// A fake's answer: status, extra headers, JSON body.
type Answer = (u16, Vec<(&'static str, String)>, Value);
type Handler = fn(&mut FakeState, &Recorded) -> Answer;

async fn serve(handler: Handler) -> Fake {
    let state = Arc::new(Mutex::new(FakeState::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = (state.clone(), handler);
    let app = Router::new().fallback(record).with_state(shared);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake { addr, state }
}

async fn record(
    State((state, handler)): State<(Arc<Mutex<FakeState>>, Handler)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let mut recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        auth_ok: false,
        status: 0,
    };
    let latency = state.lock().unwrap().behaviour.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = state.lock().unwrap();
    let (status, extra_headers, answer) = if state.behaviour.down {
        (503, Vec::new(), json!({"message": "down for maintenance"}))
    } else {
        handler(&mut state, &recorded)
    };
    recorded.status = status;
    recorded.auth_ok = recorded.auth_ok || check_auth(&recorded);
    state.requests.push(recorded);
    let mut response = (StatusCode::from_u16(status).unwrap(), answer.to_string()).into_response();
    for (name, value) in extra_headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// EnOS: the token's `encryption`, or a call's `apim-signature`, recomputed.
fn check_auth(r: &Recorded) -> bool {
    if r.path.contains("apim-token-service") {
        let body = r.json();
        let timestamp = body["timestamp"].as_i64().map(|t| t.to_string()).unwrap_or_default();
        return body["appKey"] == json!(ENOS_APP_KEY)
            && body["encryption"] == json!(sha256_hex(&format!("{ENOS_APP_KEY}{timestamp}{ENOS_APP_SECRET}")));
    }
    if r.path.starts_with("/connect-service/") {
        let params: String = r.query.iter().map(|(k, v)| format!("{k}{v}")).collect();
        let timestamp = r.headers.get("apim-timestamp").cloned().unwrap_or_default();
        let expected = sha256_hex(&format!("{ENOS_TOKEN}{params}{}{timestamp}{ENOS_APP_SECRET}", r.body));
        return r.headers.get("apim-accesstoken").map(String::as_str) == Some(ENOS_TOKEN)
            && r.headers.get("apim-signature") == Some(&expected);
    }
    false
}

fn rate_limited(state: &mut FakeState) -> Option<Answer> {
    if state.behaviour.rate_limit_once {
        state.behaviour.rate_limit_once = false;
        return Some((
            429,
            vec![("retry-after", "1".into())],
            json!({"message": "Too many requests"}),
        ));
    }
    None
}

/// The documents' rules for a request body, checked as the strictest server
/// would: what the page marks required must be there, and nothing the
/// documented request schema lacks may be. The fakes refuse a body that breaks
/// them with HTTP 400, naming the rule, so a test that syncs through them
/// fails on any body a real vendor could refuse. Written from the seed pages
/// in `shared/seeds/`, independently of the code under test.
fn letter_breaches(body: &Value, required: &[&str], allowed: Option<&[&str]>, forbidden: &[&str]) -> Vec<String> {
    let Some(map) = body.as_object() else {
        return vec!["the body is not a JSON object".into()];
    };
    let mut out = Vec::new();
    for key in required {
        if !map.contains_key(*key) {
            out.push(format!("{key} is required"));
        }
    }
    for key in map.keys() {
        if forbidden.contains(&key.as_str()) || allowed.is_some_and(|allowed| !allowed.contains(&key.as_str())) {
            out.push(format!("{key} is not a request field"));
        }
    }
    out
}

const ENOS_CREATE_REQUIRED: &[&str] = &[
    "productName",
    "productType",
    "modelId",
    "biDirectionalAuth",
    "dataFormat",
];
const ENOS_UPDATE_REQUIRED: &[&str] = &["productName", "biDirectionalAuth"];
const ENOS_OPTIONAL: &[&str] = &[
    "productDesc",
    "dynamicActivateEnabled",
    "productTags",
    "defaultValidDay",
    "maxValidDay",
];

fn enos_breaches(action: &str, body: &Value) -> Vec<String> {
    let required = if action == "create" {
        ENOS_CREATE_REQUIRED
    } else {
        ENOS_UPDATE_REQUIRED
    };
    let allowed: Vec<&str> = required.iter().chain(ENOS_OPTIONAL).copied().collect();
    let mut out = letter_breaches(body, required, Some(&allowed), &[]);
    if let Some(name) = body.get("productName")
        && name.get("defaultValue").and_then(Value::as_str).is_none()
    {
        out.push("productName must be a StringI18n with a defaultValue".into());
    }
    out
}

fn cryptlex_breaches(body: &Value) -> Vec<String> {
    let allowed = [
        "name",
        "displayName",
        "description",
        "licenseTemplateId",
        "trialPolicyId",
        "metadata",
    ];
    let mut out = letter_breaches(body, &[], Some(&allowed), &[]);
    for key in ["name", "displayName", "description", "licenseTemplateId"] {
        if body
            .get(key)
            .is_some_and(|v| v.as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 256))
        {
            out.push(format!("{key} must be 1-256 characters"));
        }
    }
    for item in body.get("metadata").and_then(Value::as_array).into_iter().flatten() {
        out.extend(
            letter_breaches(
                item,
                &["key", "value"],
                Some(&["key", "value", "viewPermissions", "visible"]),
                &[],
            )
            .into_iter()
            .map(|b| format!("metadata: {b}")),
        );
    }
    out
}

const REVENIUM_PUT_REQUIRED: &[&str] = &[
    "pricingRuleIds",
    "assetIds",
    "productIds",
    "slaDefinitionIds",
    "tags",
    "notificationAddressesOnInvoice",
    "namedOrganizations",
    "published",
    "externalId",
];

fn revenium_breaches(method: &str, body: &Value) -> Vec<String> {
    let mut out = if method == "PUT" {
        // The page hides scalar names, so only the named rules are judged; the
        // version is Revenium's own on update.
        letter_breaches(body, REVENIUM_PUT_REQUIRED, None, &["version", "id", "_links"])
    } else {
        letter_breaches(
            body,
            &["name", "version", "plan", "teamId", "ownerId"],
            None,
            &["id", "_links"],
        )
    };
    let tiers = body.get("plan").and_then(|p| p.get("tiers")).and_then(Value::as_array);
    if tiers.into_iter().flatten().any(|t| t.get("startingFrom").is_some()) {
        out.push("plan.tiers[].startingFrom is output only".into());
    }
    out
}

/// A strict server's refusal.
fn refused(breaches: Vec<String>, envelope: bool) -> Option<Answer> {
    if breaches.is_empty() {
        return None;
    }
    let message = breaches.join("; ");
    Some(if envelope {
        (
            400,
            vec![],
            json!({"code": 99400, "msg": format!("Invalid Argument: {message}"), "requestId": "req-letter"}),
        )
    } else {
        (400, vec![], json!({"message": message, "code": "INVALID_REQUEST"}))
    })
}

pub async fn enos() -> Fake {
    serve(|state, r| {
        if r.path == "/apim-token-service/v2.0/token/get" {
            return if check_auth(r) {
                (
                    200,
                    vec![],
                    json!({"status": 0, "msg": "SUCCESS", "data": {"accessToken": ENOS_TOKEN, "expire": 7200}}),
                )
            } else {
                (200, vec![], json!({"status": 1003, "msg": "encryption invalid"}))
            };
        }
        if !check_auth(r) {
            return (200, vec![], json!({"code": 1003, "msg": "signature invalid"}));
        }
        if let Some(limited) = rate_limited(state) {
            return limited;
        }
        let key = r.query.get("productKey").cloned().unwrap_or_default();
        let action = r.query.get("action").map(String::as_str).unwrap_or_default();
        if !r.query.contains_key("orgId") || (matches!(action, "update" | "get" | "delete") && key.is_empty()) {
            return (
                400,
                vec![],
                json!({"code": 99400, "msg": "orgId and productKey are required", "requestId": "req-letter"}),
            );
        }
        if matches!(action, "create" | "update")
            && let Some(refusal) = refused(enos_breaches(action, &r.json()), true)
        {
            return refusal;
        }
        if action == "search" {
            // Paged as documented: pageNo from 1, pageSize at most 200.
            let pagination = &r.json()["pagination"];
            let (Some(page_no), Some(page_size)) = (pagination["pageNo"].as_u64(), pagination["pageSize"].as_u64()) else {
                return (200, vec![], json!({"code": 99400, "msg": "pagination.pageNo and pageSize are mandatory", "requestId": "req-search"}));
            };
            if page_no < 1 || !(1..=200).contains(&page_size) {
                return (200, vec![], json!({"code": 99400, "msg": "pageNo >= 1 and pageSize 1-200", "requestId": "req-search"}));
            }
            let all: Vec<Value> = state.products.values().cloned().collect();
            let data: Vec<Value> =
                all.iter().skip(((page_no - 1) * page_size) as usize).take(page_size as usize).cloned().collect();
            return (
                200,
                vec![],
                json!({"code": 0, "msg": "OK", "requestId": "r", "data": data,
                       "pagination": {"pageNo": page_no, "pageSize": page_size, "totalSize": all.len()}}),
            );
        }
        match r.query.get("action").map(String::as_str) {
            Some("create") if state.behaviour.unknown_model => (
                200,
                vec![],
                json!({"code": 11699, "msg": "ModelId does not exist", "requestId": "req-11699"}),
            ),
            Some("create") => {
                state.next_id += 1;
                let key = format!("PK{}", state.next_id);
                // What EnOS keeps and `action=get` shows: the body, and what
                // it assigns (the key, a device secret, the org, times).
                let mut product = r.json();
                product["productKey"] = json!(key);
                product["productSecret"] = json!(format!("enos-secret-{}", state.next_id));
                product["orgId"] = json!(r.query.get("orgId"));
                product["createTime"] = json!(1_700_000_000_000i64);
                product["createBy"] = json!("producthub-app");
                state.products.insert(key.clone(), product);
                (
                    200,
                    vec![],
                    json!({"code": 0, "msg": "OK", "requestId": "r", "data": key}),
                )
            }
            Some("get") => match state.products.get(&key) {
                Some(product) => (
                    200,
                    vec![],
                    json!({"code": 0, "msg": "OK", "requestId": "r", "data": product}),
                ),
                None => (
                    200,
                    vec![],
                    json!({"code": 11404, "msg": "Product cannot be found", "requestId": "req-get"}),
                ),
            },
            Some("update") => {
                if let (Some(stored), Some(changes)) = (state.products.get_mut(&key), r.json().as_object()) {
                    for (field, value) in changes {
                        stored[field] = value.clone();
                    }
                }
                (
                    200,
                    vec![],
                    json!({"code": 0, "msg": "OK", "requestId": "r", "data": key}),
                )
            }
            Some("delete") if state.behaviour.has_devices => (
                200,
                vec![],
                json!({"code": 11619, "msg": "Existing Device Restrictions", "requestId": "r"}),
            ),
            Some("delete") => {
                state.products.remove(&key);
                (
                    200,
                    vec![],
                    json!({"code": 0, "msg": "OK", "requestId": "r", "data": key}),
                )
            }
            _ => (200, vec![], json!({"code": 99400, "msg": "Invalid Argument action"})),
        }
    })
    .await
}

pub async fn cryptlex() -> Fake {
    serve(|state, r| {
        if r.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {CRYPTLEX_TOKEN}")) {
            return (401, vec![], json!({"message": "Unauthorized"}));
        }
        if let Some(limited) = rate_limited(state) {
            return limited;
        }
        let body = r.json();
        if let (Some(bad), Some(template)) = (&state.behaviour.bad_template, body["licenseTemplateId"].as_str())
            && bad == template
        {
            return (
                400,
                vec![],
                json!({"message": "License template not found", "code": "NOT_FOUND"}),
            );
        }
        if matches!(r.method.as_str(), "POST" | "PATCH")
            && let Some(refusal) = refused(cryptlex_breaches(&body), false)
        {
            return refusal;
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v3/products") => {
                // page from 1, limit 1-100; a bare array, empty past the end.
                let asked: usize = r.query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let page = if state.behaviour.ignore_paging { 1 } else { asked };
                let limit: usize = r.query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
                if page < 1 || !(1..=100).contains(&limit) {
                    return (400, vec![], json!({"message": "page >= 1 and limit 1-100"}));
                }
                let data: Vec<Value> = state
                    .products
                    .values()
                    .skip((page - 1) * limit)
                    .take(limit)
                    .cloned()
                    .collect();
                (200, vec![], Value::Array(data))
            }
            ("POST", "/v3/products") => {
                state.next_id += 1;
                // The product object Cryptlex answers: the body and what it
                // assigns (id, the public key licensing clients need, counters).
                let mut product = body.clone();
                product["id"] = json!(format!("c{}", state.next_id));
                product["publicKey"] = json!(format!("RSA-PUBLIC-{}", state.next_id));
                product["totalLicenses"] = json!(0);
                product["createdAt"] = json!("2026-01-02T03:04:05Z");
                state
                    .products
                    .insert(product["id"].as_str().unwrap_or_default().to_owned(), product.clone());
                (201, vec![], product)
            }
            ("PATCH", path) if path.starts_with("/v3/products/") => {
                // PATCH changes what it is given and answers the whole product.
                let id = path.trim_start_matches("/v3/products/").to_owned();
                let stored = state.products.entry(id.clone()).or_insert_with(|| json!({"id": id}));
                for (field, value) in body.as_object().into_iter().flatten() {
                    stored[field] = value.clone();
                }
                let answer = stored.clone();
                if std::mem::take(&mut state.behaviour.lose_next_answer) {
                    return (503, vec![], json!({"message": "upstream timed out"}));
                }
                (200, vec![], answer)
            }
            ("GET", path) if path.starts_with("/v3/products/") => {
                match state.products.get(path.trim_start_matches("/v3/products/")) {
                    Some(product) => (200, vec![], product.clone()),
                    None => (
                        404,
                        vec![],
                        json!({"message": "Product not found", "code": "NOT_FOUND"}),
                    ),
                }
            }
            ("DELETE", path) if path.starts_with("/v3/products/") => {
                state.products.remove(path.trim_start_matches("/v3/products/"));
                (204, vec![], Value::Null)
            }
            _ => (404, vec![], json!({"message": "Not found"})),
        }
    })
    .await
}

pub async fn revenium() -> Fake {
    serve(|state, r| {
        if r.headers.get("x-api-key").map(String::as_str) != Some(REVENIUM_KEY) {
            return (401, vec![], json!({"message": "Invalid API key"}));
        }
        if !r.query.contains_key("teamId") {
            return (400, vec![], json!({"message": "teamId is required"}));
        }
        let id = r.path.strip_prefix("/v2/api/products/").map(str::to_owned);
        if matches!(r.method.as_str(), "POST" | "PUT")
            && let Some(refusal) = refused(revenium_breaches(&r.method, &r.json()), false)
        {
            return refusal;
        }
        if r.method == "GET" && r.path == "/v2/api/products" {
            if let Some(limited) = rate_limited(state) {
                return limited;
            }
            // Spring paging: page from 0, a HATEOAS page object.
            let page: usize = r.query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
            let size: usize = r.query.get("size").and_then(|s| s.parse().ok()).unwrap_or(20);
            if size == 0 {
                return (400, vec![], json!({"message": "size must be positive"}));
            }
            let total = state.products.len();
            let data: Vec<Value> = state.products.values().skip(page * size).take(size).cloned().collect();
            return (
                200,
                vec![],
                json!({"_embedded": {"productResourceList": data},
                       "page": {"size": size, "totalElements": total, "totalPages": total.div_ceil(size), "number": page}}),
            );
        }
        match (r.method.as_str(), id) {
            ("POST", None) => {
                state.next_id += 1;
                let id = format!("R{}", state.next_id);
                // What Revenium keeps and GET shows: nested references and a
                // field producthub does not model.
                let mut product = r.json();
                product["id"] = json!(id);
                product["team"] = json!({"id": product["teamId"]});
                product["owner"] = json!({"id": product["ownerId"]});
                product["audienceRestriction"] = json!("PUBLIC");
                product["status"] = json!("ACTIVE");
                state.products.insert(id, product.clone());
                (200, vec![], product)
            }
            ("GET", Some(id)) => match state.products.get(&id) {
                Some(product) => (200, vec![], product.clone()),
                None => (404, vec![], json!({"message": "Failed to decode hashed id"})),
            },
            ("PUT", Some(id)) => {
                let mut product = r.json();
                // Revenium keeps the version and increments it on update.
                let version = state
                    .products
                    .get(&id)
                    .and_then(|p| p["version"].as_str())
                    .map(bump_patch)
                    .unwrap_or_else(|| "1.0.0".into());
                product["version"] = json!(version);
                product["id"] = json!(id);
                // Revenium's own field, kept across updates.
                if let Some(status) = state.products.get(&id).map(|p| p["status"].clone()) {
                    product["status"] = status;
                }
                state.products.insert(id, product.clone());
                (200, vec![], product)
            }
            ("DELETE", Some(id)) => {
                state.products.remove(&id);
                (200, vec![], json!({}))
            }
            _ => (404, vec![], json!({"message": "Not found"})),
        }
    })
    .await
}

/// A Cryptlex product object as the fake's catalog holds it: `id`, a `name`
/// made from the display name, a template, and what Cryptlex assigns.
pub fn cryptlex_copy(id: &str, display_name: &str) -> Value {
    json!({"id": id, "name": display_name.to_lowercase().replace(' ', "-"), "displayName": display_name,
           "licenseTemplateId": "lt-1", "publicKey": format!("PUBLIC-{id}"), "totalLicenses": 3})
}

/// One fake of each vendor.
pub struct Vendors {
    pub enos: Fake,
    pub cryptlex: Fake,
    pub revenium: Fake,
}

/// A fresh fake of each vendor.
pub async fn vendors() -> Vendors {
    Vendors {
        enos: enos().await,
        cryptlex: cryptlex().await,
        revenium: revenium().await,
    }
}

/// The server flags that configure all three vendors against the fakes,
/// with short sync retries.
pub fn vendor_args(v: &Vendors) -> Vec<String> {
    [
        "--enos-base-url",
        &v.enos.url(),
        "--enos-org-id",
        "org-1",
        "--enos-app-key",
        ENOS_APP_KEY,
        "--enos-app-secret",
        ENOS_APP_SECRET,
        "--cryptlex-base-url",
        &v.cryptlex.url(),
        "--cryptlex-token",
        CRYPTLEX_TOKEN,
        "--revenium-base-url",
        &v.revenium.url(),
        "--revenium-api-key",
        REVENIUM_KEY,
        "--revenium-team-id",
        "T1",
        "--revenium-owner-id",
        "O1",
        "--sync-retry-base-ms",
        "100",
        "--sync-retry-max-ms",
        "400",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `1.2.3` → `1.2.4`.
fn bump_patch(version: &str) -> String {
    match version.rsplit_once('.') {
        Some((head, patch)) => format!("{head}.{}", patch.parse::<u64>().map_or(0, |p| p + 1)),
        None => version.to_owned(),
    }
}
