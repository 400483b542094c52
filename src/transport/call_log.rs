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

use super::rest::Transcoded;
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
        // REST calls arrive here transcoded, under their gRPC method.
        let protocol = if request.extensions().get::<Transcoded>().is_some() {
            super::rest::PROTOCOL
        } else {
            "grpc"
        };
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
                    let error = match code {
                        Code::Ok => String::new(),
                        _ => Status::from_header_map(response.headers())
                            .map(|status| status.message().to_owned())
                            .unwrap_or_default(),
                    };
                    record(&method, code, &error, elapsed, &peer, protocol);
                }
                Err(_) => {
                    tracing::warn!(target: "producthub::call", %method, status = "TRANSPORT_ERROR", latency_ms, %peer, protocol, "call")
                }
            }
            result
        })
    }
}

/// Counts one call (`method` is its gRPC path) and logs its line, as every
/// call gets; the REST side calls this too for a call it refused before
/// handing it on (a bad body, a refused token, an over-size upload).
pub fn record(method: &str, code: Code, error: &str, elapsed_seconds: f64, peer: &str, protocol: &str) {
    // Microseconds are all a log reader can use.
    let latency_ms = (elapsed_seconds * 1_000_000.0).round() / 1000.0;
    let status = code_name(code);
    metrics::counter!("producthub_rpc_requests_total", "method" => method.to_owned(), "code" => status).increment(1);
    metrics::histogram!("producthub_rpc_duration_seconds", "method" => method.to_owned()).record(elapsed_seconds);
    if code == Code::Ok {
        tracing::info!(target: "producthub::call", method, status, latency_ms, peer, protocol, "call");
    } else if let Some(suppressed) = FAILED_CALL_LINES.admit() {
        if suppressed > 0 {
            tracing::warn!(target: "producthub::call", suppressed, "failed calls not logged in the last second (the metrics count them all)");
        }
        if matches!(
            code,
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable
        ) {
            tracing::warn!(target: "producthub::call", method, status, latency_ms, peer, protocol, error, "call");
        } else {
            tracing::info!(target: "producthub::call", method, status, latency_ms, peer, protocol, error, "call");
        }
    }
}

/// Failed calls logged per second at most: a flood of refusals (overload,
/// bad tokens) must not flood the log too. The rest are counted, and the
/// next line logged says how many were left out.
const FAILED_CALL_LINES_PER_SECOND: u64 = 50;

static FAILED_CALL_LINES: LineBudget = LineBudget::new(FAILED_CALL_LINES_PER_SECOND);

/// A budget of log lines per second, shared by every call.
struct LineBudget {
    per_second: u64,
    /// The second (since the process started) the counts are for, and how
    /// many lines it logged and left out.
    state: std::sync::Mutex<(u64, u64, u64)>,
}

impl LineBudget {
    const fn new(per_second: u64) -> Self {
        Self {
            per_second,
            state: std::sync::Mutex::new((0, 0, 0)),
        }
    }

    /// `Some(left out before)` when a line may be logged now (with how many
    /// were left out since the last one logged), `None` when it is over
    /// the budget.
    fn admit(&'static self) -> Option<u64> {
        let now = started().elapsed().as_secs();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (second, logged, left_out) = &mut *state;
        if *second != now {
            *second = now;
            *logged = 0;
        }
        if *logged >= self.per_second {
            *left_out += 1;
            if *left_out == 1 {
                // The first line left out: say how many, a second from now,
                // even if no other failure comes to say it.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        self.report_left_out();
                    });
                }
            }
            return None;
        }
        *logged += 1;
        Some(std::mem::take(left_out))
    }
}

impl LineBudget {
    /// Logs how many lines were left out since the last report, if any.
    fn report_left_out(&self) {
        let left_out = {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::take(&mut state.2)
        };
        if left_out > 0 {
            tracing::warn!(target: "producthub::call", suppressed = left_out, "failed calls not logged in the last second (the metrics count them all)");
        }
    }
}

fn started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// The caller's address, as the connection tells it (plain or TLS); `-`
/// when unknown.
pub fn peer<B>(request: &http::Request<B>) -> String {
    super::connections::conn_info(request).map_or_else(|| "-".to_owned(), |info| info.remote_addr.to_string())
}

/// The canonical upper-case name of a code, as gRPC documents them.
pub fn code_name(code: Code) -> &'static str {
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
    fn failed_call_lines_stay_within_their_budget() {
        static BUDGET: LineBudget = LineBudget::new(3);
        let budget = &BUDGET;
        let admitted: Vec<Option<u64>> = (0..5).map(|_| budget.admit()).collect();
        assert_eq!(&admitted[..3], [Some(0), Some(0), Some(0)]);
        assert_eq!(&admitted[3..], [None, None]);
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
