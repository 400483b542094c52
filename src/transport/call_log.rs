//! A tower layer around every gRPC call: one log line and the metrics per call
//! (method, status, latency), and the status of an over-size request made RESOURCE_EXHAUSTED.
//!
//! tonic refuses a request larger than the configured limit with OUT_OF_RANGE
//! before any handler runs; gRPC's own status-code guide names RESOURCE_EXHAUSTED
//! for that case, which is what clients retrying on "too big" look for.
//!
//! The status is read from the response headers: tonic answers every error of a
//! unary call with a trailers-only response, whose status is in the headers, and
//! a response without one there carries OK in its trailers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderValue;
use tonic::{Code, Status};
use tower::{Layer, Service};

use super::status::{malformed_status, too_large_status};

const TOO_LARGE_MESSAGE: &str = "message length too large";
/// How tonic's codec words a request it cannot decode.
const UNDECODABLE_MESSAGE: &str = "failed to decode Protobuf message";

#[derive(Debug, Clone, Copy, Default)]
pub struct CallLogLayer;

impl<S> Layer<S> for CallLogLayer {
    type Service = CallLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CallLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CallLog<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let peer = peer(&request);
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut result = response.await;
            let elapsed = started.elapsed().as_secs_f64();
            // Microseconds are all a log reader can use.
            let latency_ms = (elapsed * 1_000_000.0).round() / 1000.0;
            match &mut result {
                Ok(response) => {
                    let code = normalize_status(response.headers_mut());
                    let status = code_name(code);
                    metrics::counter!("producthub_rpc_requests_total", "method" => method.clone(), "code" => status)
                        .increment(1);
                    metrics::histogram!("producthub_rpc_duration_seconds", "method" => method.clone()).record(elapsed);
                    let error = match code {
                        Code::Ok => String::new(),
                        _ => Status::from_header_map(response.headers())
                            .map(|status| status.message().to_owned())
                            .unwrap_or_default(),
                    };
                    if matches!(
                        code,
                        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable
                    ) {
                        tracing::warn!(target: "producthub::call", %method, status, latency_ms, %peer, error, "call");
                    } else if code == Code::Ok {
                        tracing::info!(target: "producthub::call", %method, status, latency_ms, %peer, "call");
                    } else {
                        tracing::info!(target: "producthub::call", %method, status, latency_ms, %peer, error, "call");
                    }
                }
                Err(_) => {
                    tracing::warn!(target: "producthub::call", %method, status = "TRANSPORT_ERROR", latency_ms, %peer, "call")
                }
            }
            result
        })
    }
}

/// The caller's address, as the connection tells it (plain or TLS); `-`
/// when unknown.
fn peer<B>(request: &http::Request<B>) -> String {
    let extensions = request.extensions();
    let plain = extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|info| info.remote_addr());
    let tls = extensions
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr());
    plain.or(tls).map_or_else(|| "-".to_owned(), |addr| addr.to_string())
}

/// The canonical upper-case name of a code, as gRPC documents them.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The call's gRPC status, after turning tonic's OUT_OF_RANGE for an over-size
/// request into RESOURCE_EXHAUSTED, and its INTERNAL for a request it could
/// not decode into INVALID_ARGUMENT (reason MALFORMED_REQUEST).
fn normalize_status(headers: &mut http::HeaderMap) -> Code {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
    else {
        return Code::Ok;
    };
    let too_large = code == Code::OutOfRange
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains(TOO_LARGE_MESSAGE) || m.contains("message%20length%20too%20large"));
    if too_large {
        let message = Status::from_header_map(headers)
            .map(|original| original.message().to_owned())
            .unwrap_or_default();
        let status = too_large_status(message);
        if status.add_header(headers).is_err() {
            headers.insert("grpc-status", HeaderValue::from(Code::ResourceExhausted as i32));
        }
        return Code::ResourceExhausted;
    }
    if code == Code::Internal {
        let message = Status::from_header_map(headers)
            .map(|original| original.message().to_owned())
            .unwrap_or_default();
        if message.starts_with(UNDECODABLE_MESSAGE) {
            let status = malformed_status(message);
            if status.add_header(headers).is_err() {
                headers.insert("grpc-status", HeaderValue::from(Code::InvalidArgument as i32));
            }
            return Code::InvalidArgument;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_requests_become_resource_exhausted() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(11));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large"),
        );
        assert_eq!(normalize_status(&mut headers), Code::ResourceExhausted);
        assert_eq!(headers["grpc-status"], "8");
    }

    #[test]
    fn undecodable_requests_are_the_callers_fault() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(13));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type"),
        );
        assert_eq!(normalize_status(&mut headers), Code::InvalidArgument);
        assert_eq!(headers["grpc-status"], "3");
        let status = Status::from_header_map(&headers).unwrap();
        assert!(status.message().contains("invalid wire type"));
    }

    #[test]
    fn other_statuses_pass_through() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(normalize_status(&mut headers), Code::Ok);
        headers.insert("grpc-status", HeaderValue::from(11));
        assert_eq!(normalize_status(&mut headers), Code::OutOfRange);
        headers.insert("grpc-status", HeaderValue::from(5));
        assert_eq!(normalize_status(&mut headers), Code::NotFound);
    }
}
