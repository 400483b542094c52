//! HTTP/JSON beside gRPC, on the same port, from the same definition: every
//! RPC's `google.api.http` rule (AIP-127) is served as REST by transcoding.
//!
//! A request whose `content-type` is not `application/grpc…` is REST. Its path
//! and method pick the RPC ([`routes`]); its path variables, query string and
//! JSON body become the request message under the proto3 JSON mapping
//! ([`json`]), which is then sent, as a gRPC call, through the same stack a
//! gRPC client's call takes: the call log and metrics, the deadline, the
//! guard (bearer tokens and scopes, the in-flight limit, the request-byte
//! budget) and the service. So REST has one door with gRPC, not a second one
//! to keep in step. The answer comes back as JSON; a failure as the AIP-193
//! error body with the HTTP status of its code and the status's own details.
//!
//! WatchProducts streams newline-delimited JSON (`application/x-ndjson`), one
//! `ProductChange` per line, because every line is a complete JSON document a
//! shell pipeline (`curl -N … | jq -c`) or any JSON library reads as it
//! arrives, with no framing to parse; server-sent events would add an
//! `data:` framing only browsers need. A stream that fails after it began
//! ends with one last line, `{"error": {…}}`.
//!
//! `X-Server-Timeout: SECONDS` (Google's REST form of a deadline) shortens
//! the call's deadline, which covers the body's upload too; as over gRPC, it
//! bounds the wait for a stream's start, not the stream. A method with a body
//! needs `Content-Type: application/json` (so browsers cannot forge calls
//! across origins). The body is at most
//! `--max-message-bytes` (413 beyond). The OpenAPI 3 document built from the
//! protos at build time is served at [`OPENAPI_PATH`].

mod frames;
mod json;
mod routes;
pub mod template;

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use prost_reflect::DescriptorPool;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::guard::GuardLayer;
use routes::{Found, Route, Routes};

/// Where the vendors' webhooks are taken, when configured.
const WEBHOOKS_PREFIX: &str = "/webhooks/";

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// The OpenAPI 3 document, generated from the protos by `build.rs`.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The served descriptor set's pool.
fn pool() -> DescriptorPool {
    crate::domain::schema::product_descriptor().parent_pool().clone()
}

/// How the call log names the REST side.
pub const PROTOCOL: &str = "http-json";

/// Marks a gRPC request transcoded from REST (the call log says so).
#[derive(Debug, Clone, Copy)]
pub struct Transcoded;

/// Serves REST in front of the gRPC stack it wraps.
#[derive(Clone)]
pub struct RestLayer {
    shared: Arc<Shared>,
}

struct Shared {
    routes: Routes,
    max_body_bytes: usize,
    /// Who may read the OpenAPI document (as reflection); calls pass the
    /// guard inside the stack.
    guard: GuardLayer,
    /// The vendors' webhook receiver (`/webhooks/{vendor}`), when one is
    /// configured: signed by the vendor, it asks for no bearer token.
    webhooks: Option<axum::Router>,
    /// `--call-timeout`: the longest a REST call may take, its upload included.
    call_timeout: std::time::Duration,
}

impl RestLayer {
    /// The routes of the served protos; a JSON body is at most `max_body_bytes`;
    /// `guard` decides who may read the OpenAPI document; `webhooks` is
    /// served at `/webhooks/`.
    pub fn new(
        max_body_bytes: usize,
        call_timeout: std::time::Duration,
        guard: GuardLayer,
        webhooks: Option<axum::Router>,
    ) -> Result<Self, String> {
        static ROUTES: OnceLock<Result<Routes, String>> = OnceLock::new();
        let routes = ROUTES.get_or_init(|| Routes::from_pool(&pool())).clone()?;
        Ok(Self {
            shared: Arc::new(Shared {
                routes,
                max_body_bytes,
                guard,
                webhooks,
                call_timeout,
            }),
        })
    }
}

impl<S> Layer<S> for RestLayer {
    type Service = Rest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rest {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Rest<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> Service<http::Request<Body>> for Rest<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if is_grpc(&request) {
            return Box::pin(self.inner.call(request));
        }
        // The service that was made ready answers this call (tower's contract).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.serve(inner, request).await) })
    }
}

fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl Shared {
    async fn serve<S>(&self, inner: S, request: http::Request<Body>) -> http::Response<Body>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
    {
        let path = request.uri().path().to_string();
        if let Some(webhooks) = &self.webhooks
            && path.starts_with(WEBHOOKS_PREFIX)
        {
            let mut webhooks = webhooks.clone();
            return match webhooks.call(request).await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            };
        }
        if path == OPENAPI_PATH && request.method() == http::Method::GET {
            if let Err(refusal) = self.guard.check_describe(request.headers()) {
                return error_response(&super::status::refusal_status(&refusal));
            }
            return json_response(http::StatusCode::OK, Bytes::from_static(OPENAPI_JSON.as_bytes()));
        }
        let (route, bindings) = match self.routes.find(request.method(), &path) {
            Found::Route(route, bindings) => (route, bindings),
            Found::OtherMethods(methods) => {
                let mut allowed: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
                allowed.dedup();
                let allow = allowed.join(", ");
                // 405 with `Allow` (RFC 9110); the body's status is the
                // gRPC code of a method the server does not have.
                let status = Status::unimplemented(format!(
                    "{} {path} is not served; this path takes {allow}",
                    request.method()
                ));
                let body = json::error_json(&status, http::StatusCode::METHOD_NOT_ALLOWED).to_string();
                let mut response = json_response(http::StatusCode::METHOD_NOT_ALLOWED, Bytes::from(body));
                if let Ok(value) = http::HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(http::header::ALLOW, value);
                }
                return response;
            }
            Found::Nothing => {
                return error_response(&Status::not_found(format!(
                    "no method is served at {} {path} (the API is described at {OPENAPI_PATH})",
                    request.method()
                )));
            }
        };
        if let Err(status) = check_headers(route, request.headers()) {
            return error_response(&status);
        }
        let limit = match server_timeout(request.headers()) {
            Ok(asked) => asked.map_or(self.call_timeout, |asked| asked.min(self.call_timeout)),
            Err(status) => return error_response(&status),
        };
        // One deadline over the whole call, the body's upload included: a
        // client that stalls mid-body holds its charge no longer than this.
        // It starts before the inner one (the same --call-timeout), so it
        // fires first and the answer is JSON.
        let started = std::time::Instant::now();
        let peer = super::call_log::peer(&request);
        let mut handed_on = false;
        let outcome = tokio::time::timeout(limit, self.call(inner, route, bindings, request, &mut handed_on)).await;
        let status = match outcome {
            Ok(Ok(response)) => return response,
            Ok(Err(status)) => status,
            Err(_) => {
                // The call log saw nothing: the inner call was cut off.
                handed_on = false;
                Status::deadline_exceeded(format!("the call's deadline of {limit:?} passed"))
            }
        };
        // Refused before it became a gRPC call: logged and counted here.
        if !handed_on {
            let elapsed = started.elapsed().as_secs_f64();
            super::call_log::record(
                &route.grpc_path,
                status.code(),
                status.message(),
                elapsed,
                &peer,
                PROTOCOL,
            );
        }
        error_response(&status)
    }

    async fn call<S>(
        &self,
        mut inner: S,
        route: &Route,
        bindings: Vec<template::Binding>,
        request: http::Request<Body>,
        handed_on: &mut bool,
    ) -> Result<http::Response<Body>, Status>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
    {
        let (parts, body) = request.into_parts();
        // Who may call, and whether the body fits, before it is read.
        self.guard
            .check_call(&route.grpc_path, &parts.headers)
            .map_err(|refusal| super::status::refusal_status(&refusal))?;
        let declared = http_body::Body::size_hint(&body).exact();
        let length = declared.map_or(self.max_body_bytes, |n| usize::try_from(n).unwrap_or(usize::MAX));
        if length > self.max_body_bytes {
            return Err(too_large(self.max_body_bytes));
        }
        let charge = self
            .guard
            .charge_body(length)
            .map_err(|refusal| super::status::refusal_status(&refusal))?;
        let body = read_body(body, self.max_body_bytes).await?;
        let message = json::request_message(route, &bindings, parts.uri.query(), &body)?;
        // The JSON is gone; the guard charges the message it became.
        drop(body);
        drop(charge);
        let grpc_request = grpc_request(route, parts, message)?;
        *handed_on = true;
        let response = inner
            .call(grpc_request)
            .await
            .map_err(|error| Status::internal(format!("the call failed: {}", error.into())))?;
        let (parts, body) = response.into_parts();
        // A trailers-only answer: the call failed before any message.
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        let output = route.output();
        if route.streams() {
            return Ok(frames::ndjson_stream(output, body));
        }
        let (messages, status) = frames::collect(body).await?;
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
        let Some(message) = messages.first() else {
            return Err(Status::internal("the call answered OK with no message"));
        };
        let mut response = json_response(
            http::StatusCode::OK,
            Bytes::from(json::response_json(&output, message)?),
        );
        copy_metadata(&parts.headers, response.headers_mut());
        Ok(response)
    }
}

/// The JSON body, at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Status> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(error) => Err(Status::cancelled(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

fn too_large(limit: usize) -> Status {
    super::status::too_large_status(format!(
        "the request body is larger than this server accepts ({limit} bytes, --max-message-bytes)"
    ))
}

/// Headers a REST caller sends that mean the same to the gRPC call; the rest
/// (content negotiation, hop-by-hop, cookies) stay behind.
const PASSED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-request-id",
    "traceparent",
    "tracestate",
];

fn grpc_request(route: &Route, parts: http::request::Parts, message: Vec<u8>) -> Result<http::Request<Body>, Status> {
    let uri: http::Uri = route
        .grpc_path
        .parse()
        .map_err(|_| Status::internal("a route's gRPC path is not a URI"))?;
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .version(http::Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::new(http_body_util::Full::new(frames::frame(&message))))
        .map_err(|e| Status::internal(format!("the gRPC request could not be built: {e}")))?;
    let headers = request.headers_mut();
    for name in PASSED_HEADERS {
        if let Some(value) = parts.headers.get(*name) {
            headers.insert(*name, value.clone());
        }
    }
    // The connection's own facts (peer address, TLS) travel as extensions.
    *request.extensions_mut() = parts.extensions;
    request.extensions_mut().insert(Transcoded);
    Ok(request)
}

/// `X-Server-Timeout: 2.5` (seconds, Google's REST form) shortens the
/// call's deadline. `grpc-timeout` is refused: tonic would time the call by
/// it outside this layer and answer as gRPC.
fn server_timeout(headers: &http::HeaderMap) -> Result<Option<std::time::Duration>, Status> {
    if headers.contains_key("grpc-timeout") {
        return Err(bad_header(
            "grpc-timeout",
            "grpc-timeout is for gRPC calls; over HTTP/JSON give X-Server-Timeout: SECONDS",
        ));
    }
    let Some(value) = headers.get("x-server-timeout") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|seconds| Some(std::time::Duration::from_secs_f64(seconds.min(1e9))))
        .ok_or_else(|| {
            bad_header(
                "X-Server-Timeout",
                "X-Server-Timeout must be a positive number of seconds",
            )
        })
}

/// A body-carrying method needs `Content-Type: application/json`: a
/// browser cannot send that across origins without a CORS preflight, which
/// this server never grants, so a web page cannot make a visitor's browser
/// write here (cross-site request forgery).
fn check_headers(route: &Route, headers: &http::HeaderMap) -> Result<(), Status> {
    let writes = matches!(
        route.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if writes && !json {
        return Err(bad_header(
            "Content-Type",
            "this method needs `Content-Type: application/json` (even with an empty body)",
        ));
    }
    Ok(())
}

fn bad_header(header: &str, description: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(header, description);
    details.set_error_info(
        "BAD_HTTP_HEADER",
        super::status::ERROR_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(tonic::Code::InvalidArgument, description, details)
}

/// The call's response metadata, as HTTP headers (not gRPC's own).
fn copy_metadata(from: &http::HeaderMap, to: &mut http::HeaderMap) {
    for (name, value) in from {
        let text = name.as_str();
        if text.starts_with("grpc-") || text == "content-type" || text.ends_with("-bin") {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

fn json_response(status: http::StatusCode, body: Bytes) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A failure as the AIP-193 JSON body with its code's HTTP status. A body
/// over the size limit is 413, not the 429 of RESOURCE_EXHAUSTED: it is not
/// worth retrying.
fn error_response(status: &Status) -> http::Response<Body> {
    use tonic_types::StatusExt;
    let too_large = status
        .get_details_error_info()
        .is_some_and(|info| info.reason == "MESSAGE_TOO_LARGE");
    let http_status = if too_large {
        http::StatusCode::PAYLOAD_TOO_LARGE
    } else {
        json::http_status(status.code())
    };
    let body = json::error_json(status, http_status).to_string();
    let mut response = json_response(http_status, Bytes::from(body));
    if too_large {
        // The body was not read to its end, so on HTTP/1.1 the connection
        // ends with this answer: say so, or a client may send its next
        // request on it and find it closed. (HTTP/2 drops the header.)
        response
            .headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}
