//! The door every call passes before any handler runs: the caller's bearer
//! token is checked (when authentication is on), and a ProductService call is
//! admitted only while fewer than the configured number are in flight.
//!
//! A call over the limit is refused at once with UNAVAILABLE instead of being
//! queued: under overload a queue only grows memory and latency, while a quick
//! refusal lets the client back off and retry (UNAVAILABLE is the code gRPC
//! retry policies treat as transient). Health and reflection are never shed,
//! so probes still answer while the service is saturated.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::auth::{self, CallerScope, Needs, Scope, Tokens};
use super::status::refusal_status;

/// Why a call was turned away at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer …` metadata.
    MissingToken,
    /// A token that is not in the table.
    UnknownToken,
    /// A read-only token on a method that writes.
    InsufficientScope,
    /// A read-only token on a call that writes, of a method that can also
    /// preview (refused by the handler, which sees the request).
    PreviewOnly,
    /// `limit` calls were already in flight.
    Overloaded { limit: usize },
}

/// Who may call, and how many ProductService calls may run at once.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    tokens: Option<Arc<Tokens>>,
    open_probes: bool,
    limit: usize,
    in_flight: Arc<Semaphore>,
}

impl GuardLayer {
    /// `tokens: None` turns authentication off.
    pub fn new(tokens: Option<Tokens>, open_probes: bool, max_in_flight: usize) -> Self {
        let limit = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            tokens: tokens.map(Arc::new),
            open_probes,
            limit,
            in_flight: Arc::new(Semaphore::new(limit)),
        }
    }

    /// The caller's refusal, if any (authentication only); else its token's
    /// scope, when tokens are on.
    fn check_caller<B>(&self, request: &http::Request<B>) -> Result<Option<Scope>, Refusal> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let Needs::Scope(needed) = auth::needs(request.uri().path(), self.open_probes) else {
            return Ok(None);
        };
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(auth::bearer)
            .ok_or(Refusal::MissingToken)?;
        let scope = tokens.scope_of(token).ok_or(Refusal::UnknownToken)?;
        if scope < needed {
            return Err(Refusal::InsufficientScope);
        }
        Ok(Some(scope))
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

const SHED_PREFIX: &str = "/producthub.v1.ProductService/";

impl<S, ReqBody> Service<http::Request<ReqBody>> for Guard<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        match self.layer.check_caller(&request) {
            Err(refusal) => return refuse(&refusal),
            // For the handlers whose need depends on the request.
            Ok(Some(scope)) => {
                request.extensions_mut().insert(CallerScope(scope));
            }
            Ok(None) => {}
        }
        let permit = if request.uri().path().starts_with(SHED_PREFIX) {
            match self.layer.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return refuse(&Refusal::Overloaded {
                        limit: self.layer.limit,
                    });
                }
            }
        } else {
            None
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            // Held until the handler has answered (for a stream, until its
            // first response; the stream itself is not counted).
            drop(permit);
            result
        })
    }
}

fn refuse<E: Send + 'static>(
    refusal: &Refusal,
) -> Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>> {
    let response = refusal_status(refusal).into_http::<tonic::body::Body>();
    Box::pin(std::future::ready(Ok(response)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITER: &str = "writer-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    fn guard(open_probes: bool) -> GuardLayer {
        let tokens = Tokens::parse(&format!("read-write {WRITER}\nread-only {READER}")).unwrap();
        GuardLayer::new(Some(tokens), open_probes, 8)
    }

    fn request(path: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(format!("http://localhost{path}"));
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).unwrap()
    }

    const UPDATE: &str = "/producthub.v1.ProductService/UpdateProduct";
    const DELETE: &str = "/producthub.v1.ProductService/DeleteProduct";
    const GET: &str = "/producthub.v1.ProductService/GetProduct";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";

    #[test]
    fn callers_are_checked_against_the_method() {
        let guard = guard(false);
        let write = format!("Bearer {WRITER}");
        let read = format!("Bearer {READER}");
        assert_eq!(
            guard.check_caller(&request(UPDATE, Some(&write))),
            Ok(Some(Scope::ReadWrite))
        );
        assert_eq!(
            guard.check_caller(&request(GET, Some(&read))),
            Ok(Some(Scope::ReadOnly))
        );
        assert_eq!(
            guard.check_caller(&request(DELETE, Some(&read))),
            Err(Refusal::InsufficientScope)
        );
        // A method that can preview lets a reader in; its handler refuses the write.
        assert_eq!(
            guard.check_caller(&request(UPDATE, Some(&read))),
            Ok(Some(Scope::ReadOnly))
        );
        assert_eq!(guard.check_caller(&request(GET, None)), Err(Refusal::MissingToken));
        assert_eq!(
            guard.check_caller(&request(GET, Some("Bearer nope-nope-nope-nope"))),
            Err(Refusal::UnknownToken)
        );
        assert_eq!(guard.check_caller(&request(HEALTH, None)), Err(Refusal::MissingToken));
    }

    #[test]
    fn open_probes_need_no_token() {
        assert_eq!(guard(true).check_caller(&request(HEALTH, None)), Ok(None));
        assert_eq!(
            guard(true).check_caller(&request(GET, None)),
            Err(Refusal::MissingToken)
        );
    }

    #[test]
    fn without_tokens_everyone_may_call() {
        let open = GuardLayer::new(None, false, 8);
        assert_eq!(open.check_caller(&request(UPDATE, None)), Ok(None));
    }
}
