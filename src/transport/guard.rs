//! The door every call passes before any handler runs: the caller's bearer
//! token is checked (when authentication is on), and a ProductService call is
//! admitted only while fewer than the configured number are in flight.
//!
//! Every call's request message larger than 64 KiB is also charged, by the
//! length its gRPC frame declares, against one budget of request bytes in
//! flight; a call that would exceed it is refused before its body is read, so
//! a flood of large requests cannot make the server buffer them all. The
//! bytes are checked before the in-flight limit, so large calls refused for
//! memory never hold the places cheap calls need.
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

use bytes::Bytes;
use http_body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tower::{Layer, Service};

use super::auth::{self, CallerScope, Needs, Scope, Tokens};
use super::grpc_frame::{self, HEADER};
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
    /// The request's message would take the request bytes in flight past the budget.
    RequestMemory { budget_bytes: usize, message_bytes: usize },
}

/// Who may call, and how many ProductService calls may run at once.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    tokens: Option<Arc<Tokens>>,
    open_probes: bool,
    limit: usize,
    in_flight: Arc<Semaphore>,
    request_bytes: RequestBytes,
}

/// The budget of request bytes in flight, kept in KiB so one message's
/// charge fits a semaphore's `u32` acquire.
#[derive(Debug, Clone)]
struct RequestBytes {
    budget_bytes: usize,
    /// Larger messages are left to tonic, which refuses them as too large.
    max_message_bytes: usize,
    kib: Arc<Semaphore>,
}

impl GuardLayer {
    /// `tokens: None` turns authentication off. The request-byte budget is
    /// at least one message of the largest size accepted.
    pub fn new(
        tokens: Option<Tokens>,
        open_probes: bool,
        max_in_flight: usize,
        request_bytes_budget: usize,
        max_message_bytes: usize,
    ) -> Self {
        let limit = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let budget_bytes = request_bytes_budget.max(max_message_bytes).max(1024);
        Self {
            tokens: tokens.map(Arc::new),
            open_probes,
            limit,
            in_flight: Arc::new(Semaphore::new(limit)),
            request_bytes: RequestBytes {
                budget_bytes,
                max_message_bytes,
                kib: Arc::new(Semaphore::new(budget_bytes.div_ceil(1024).min(Semaphore::MAX_PERMITS))),
            },
        }
    }

    /// The caller's refusal, if any (authentication only); else its token's
    /// scope, when tokens are on.
    fn check_caller<B>(&self, request: &http::Request<B>) -> Result<Option<Scope>, Refusal> {
        self.check(request.uri().path(), request.headers())
    }

    /// The caller's refusal for calling `path`, if any: for the REST side,
    /// which checks before it reads a JSON body (the guard checks again).
    pub fn check_call(&self, path: &str, headers: &http::HeaderMap) -> Result<(), Refusal> {
        self.check(path, headers).map(|_| ())
    }

    /// Charges a REST body of `bytes` (its declared length, or the largest
    /// accepted when it declares none) against the request-byte budget,
    /// before it is read; the permit is held until the JSON is dropped.
    pub fn charge_body(&self, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        self.request_bytes.charge_len(bytes)
    }

    /// Whether a caller may read the API's description (the REST side's
    /// OpenAPI document), which reflection's rule decides.
    pub fn check_describe(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        self.check(auth::DESCRIBE_PATH, headers).map(|_| ())
    }

    fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Scope>, Refusal> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let Needs::Scope(needed) = auth::needs(path, self.open_probes) else {
            return Ok(None);
        };
        let token = headers
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

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.layer.check_caller(&request) {
            Err(refusal) => return refuse(&refusal),
            // For the handlers whose need depends on the request.
            Ok(Some(scope)) => {
                request.extensions_mut().insert(CallerScope(scope));
            }
            Ok(None) => {}
        }
        let path = request.uri().path();
        let shed = path.starts_with(SHED_PREFIX);
        let budgeted = !path.starts_with(UNBUDGETED_PREFIX);
        // The service that was made ready answers this call; a fresh clone
        // waits for the next (the tower contract for calls that start later).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (request_bytes, in_flight, limit) = (
            self.layer.request_bytes.clone(),
            self.layer.in_flight.clone(),
            self.layer.limit,
        );
        Box::pin(async move {
            // The bytes first: a flood of large requests refused for memory
            // then never holds the places cheap calls need.
            let charge = if budgeted {
                let (parts, body) = request.into_parts();
                match request_bytes.charge(body).await {
                    Ok((body, charge)) => {
                        request = http::Request::from_parts(parts, body);
                        charge
                    }
                    Err(refusal) => return Ok(refusal_response(&refusal)),
                }
            } else {
                None
            };
            let permit = if shed {
                match in_flight.try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => return Ok(refusal_response(&Refusal::Overloaded { limit })),
                }
            } else {
                None
            };
            let result = inner.call(request).await;
            // Held until the handler has answered (for a stream, until its
            // first response; the stream itself is not counted).
            drop(permit);
            drop(charge);
            result
        })
    }
}

/// Health checks are never refused; reflection streams carry tiny requests.
const UNBUDGETED_PREFIX: &str = "/grpc.";

impl RequestBytes {
    /// Reads the body up to its first gRPC frame header and charges the
    /// message length it declares; the body is handed back whole.
    async fn charge(&self, mut body: Body) -> Result<(Body, Option<OwnedSemaphorePermit>), Refusal> {
        let mut seen: Vec<Bytes> = Vec::new();
        let mut header = [0u8; HEADER];
        let mut have = 0;
        let mut trailers = None;
        let (mut failed, mut ended) = (None, false);
        while have < HEADER {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            let frame = match frame {
                Some(Ok(frame)) => frame,
                // A broken body: handed on, for tonic to report as it would.
                Some(Err(error)) => {
                    failed = Some(error);
                    break;
                }
                None => {
                    ended = true;
                    break;
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let take = (HEADER - have).min(data.len());
                    header[have..have + take].copy_from_slice(&data[..take]);
                    have += take;
                    seen.push(data);
                }
                Err(frame) => {
                    trailers = Some(frame);
                    break;
                }
            }
        }
        let ended = ended || failed.is_some() || trailers.is_some();
        let replayed = Body::new(Replay {
            seen: seen.into(),
            trailers,
            failed,
            rest: (!ended).then_some(body),
        });
        // A body that ended before a whole header is tonic's to refuse.
        let Some((_, message_bytes)) = grpc_frame::header(&header[..have]) else {
            return Ok((replayed, None));
        };
        Ok((replayed, self.charge_len(message_bytes)?))
    }

    /// Charges a message of `message_bytes`; small and over-size ones are
    /// not charged (the size limit refuses the latter).
    fn charge_len(&self, message_bytes: usize) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        if message_bytes <= UNCHARGED_MESSAGE_BYTES || message_bytes > self.max_message_bytes {
            return Ok(None);
        }
        // Rounded up to a whole KiB, as the budget is: a message of the
        // largest size always fits an empty budget.
        let kib = u32::try_from(message_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        match self.kib.clone().try_acquire_many_owned(kib) {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                metrics::counter!("producthub_request_memory_refused_total").increment(1);
                Err(Refusal::RequestMemory {
                    budget_bytes: self.budget_bytes,
                    message_bytes,
                })
            }
        }
    }
}

/// Messages up to this size are not charged: `--max-in-flight` bounds what
/// they hold (512 × 64 KiB = 32 MiB), and a cheap call must never find the
/// budget taken by large ones.
const UNCHARGED_MESSAGE_BYTES: usize = 64 * 1024;

/// A request body whose first frames were read already, given again first.
struct Replay {
    seen: std::collections::VecDeque<Bytes>,
    trailers: Option<http_body::Frame<Bytes>>,
    failed: Option<tonic::Status>,
    /// The body still to read; `None` once it ended while being read ahead.
    rest: Option<Body>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.seen.pop_front() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.seen.is_empty()
            && self.trailers.is_none()
            && self.failed.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let seen: usize = self.seen.iter().map(Bytes::len).sum();
        let hint = self
            .rest
            .as_ref()
            .map(|rest| rest.size_hint())
            .unwrap_or_else(|| http_body::SizeHint::with_exact(0));
        let seen = u64::try_from(seen).unwrap_or(u64::MAX);
        // A fresh hint: setting the lower bound first on one with an upper
        // bound could pass it.
        let mut total = http_body::SizeHint::new();
        total.set_lower(hint.lower().saturating_add(seen));
        if let Some(upper) = hint.upper() {
            total.set_upper(upper.saturating_add(seen));
        }
        total
    }
}

/// The answer to a call turned away at the door.
fn refusal_response(refusal: &Refusal) -> http::Response<Body> {
    refusal_status(refusal).into_http::<Body>()
}

fn refuse<E: Send + 'static>(
    refusal: &Refusal,
) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>> {
    Box::pin(std::future::ready(Ok(refusal_response(refusal))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITER: &str = "writer-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    fn guard(open_probes: bool) -> GuardLayer {
        let tokens = Tokens::parse(&format!("read-write {WRITER}\nread-only {READER}")).unwrap();
        GuardLayer::new(Some(tokens), open_probes, 8, 1 << 20, 1 << 20)
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
        let open = GuardLayer::new(None, false, 8, 1 << 20, 1 << 20);
        assert_eq!(open.check_caller(&request(UPDATE, None)), Ok(None));
    }
}
