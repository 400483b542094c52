//! Each call's deadline: the server's `--call-timeout`, or the caller's
//! shorter `grpc-timeout`. A call past it answers DEADLINE_EXCEEDED.
//!
//! Why not tonic's own `Server::timeout`: it runs outside every layer, so a
//! REST call (transcoded in [`super::rest`]) would get a gRPC answer to an
//! HTTP/JSON request, and the call log would see a cancelled call instead of
//! its status. Here the deadline sits inside both. (tonic still applies a
//! gRPC caller's own `grpc-timeout` outside; this one fires a little sooner.) As with tonic's, it bounds
//! the wait for the response's head; a stream's body runs on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// How much sooner than the caller's `grpc-timeout` this deadline fires.
const TONIC_MARGIN: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    longest: Duration,
}

impl DeadlineLayer {
    pub fn new(longest: Duration) -> Self {
        Self { longest }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            longest: self.longest,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    longest: Duration,
}

impl<S> Service<http::Request<Body>> for Deadline<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        // tonic still times a call by its `grpc-timeout`, outside every layer
        // (answering CANCELLED, past the call log): a hair shorter, this
        // deadline fires first.
        let limit = asked.map_or(self.longest, |asked| {
            asked.saturating_sub(TONIC_MARGIN).min(self.longest)
        });
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!("the call's deadline of {limit:?} passed")).into_http()),
            }
        })
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
    }
}
