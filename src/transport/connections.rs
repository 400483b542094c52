//! Accepting connections, within limits: at most `max_connections` open at
//! once, a deadline for a new connection's HTTP/2 preface, idle connections
//! closed, and an accept loop that backs off when the process runs out of file
//! descriptors instead of spinning.
//!
//! Why here and not in hyper: hyper gives an HTTP/2 connection that has not
//! sent its preface no deadline (and on shutdown it waits for the preface
//! before closing), and tonic's own accept loop retries a failing `accept`
//! at once, so with no descriptor left it spins at full CPU while every
//! client waits. Each accepted socket is therefore wrapped in a [`Conn`] that
//! holds its place under the cap and ends the connection (a read error, which
//! hyper turns into a close) when a deadline passes.
//!
//! At the cap, a new connection takes the place of the oldest one that has
//! not started a call and is at least a second old (a client that connected
//! a moment ago may still be sending its first call), so connections that
//! never call cannot lock real clients out; only when every place holds a
//! connection that has called, or a younger one, is the new one closed.
//!
//! Idle means no call open: [`CallTracking`] counts each connection's calls
//! from request to the end of the response body, so a WatchProducts stream
//! keeps its connection busy. Keepalive pings do not make a connection busy.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Sleep;
use tokio_stream::wrappers::WatchStream;
use tonic::transport::server::Connected;
use tower::{Layer, Service};

/// The limits on connections, from the command line.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Whether the operator chose `max_connections` (kept even if it does
    /// not fit the descriptor limit) or it is the default (fitted).
    pub max_connections_given: bool,
    /// A new connection must send the HTTP/2 client preface within this
    /// (with TLS: finish the TLS handshake).
    pub handshake_timeout: Duration,
    /// A connection with no call open for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl ConnectionLimits {
    /// Connections allowed by default, before fitting to the descriptor limit.
    pub const DEFAULT_MAX: usize = 10_000;
}

/// The 24 bytes every HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE_BYTES: usize = 24;

/// How long the accept loop waits after running out of descriptors.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// Descriptors kept free for the store, vendor calls and the database pool
/// when the connection cap is fitted under the process's descriptor limit.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard one, as
/// servers commonly do; the soft limit now in force (`None` if unknown).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// How many connections fit under the process's limit on open files, once
/// raised ([`raise_open_file_limit`]), leaving [`RESERVED_DESCRIPTORS`] for
/// everything else; at most `wanted`.
pub fn fit_to_descriptor_limit(wanted: usize) -> usize {
    let Some(available) = raise_open_file_limit() else {
        return wanted;
    };
    let room = available.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

/// A bound listening socket, and the address it got (useful with port 0).
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    pub local_addr: SocketAddr,
}

/// Binds `addr` (needs a Tokio runtime).
pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let local_addr = listener.local_addr()?;
    Ok(Listener { listener, local_addr })
}

/// What a call's request carries about its connection (tonic puts it in the
/// request's extensions; under TLS inside a `TlsConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote_addr: SocketAddr,
    activity: Arc<Activity>,
}

/// A connection's open calls, and since when it has had none.
#[derive(Debug)]
struct Activity {
    open_calls: AtomicUsize,
    /// Milliseconds since [`epoch`] when the last call ended.
    idle_since_ms: AtomicU64,
    /// Its entry among the connections that may give way, until its first call.
    eviction: Option<Arc<Eviction>>,
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    fn new(eviction: Option<Arc<Eviction>>) -> Self {
        Self {
            open_calls: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            eviction,
        }
    }

    /// When the connection, idle now, may be closed; `None` while a call is open.
    fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.open_calls.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(epoch() + since + idle_timeout)
    }
}

/// Marks a call open on its connection until dropped.
struct OpenCall(Arc<Activity>);

impl OpenCall {
    fn new(activity: Arc<Activity>) -> Self {
        activity.open_calls.fetch_add(1, Ordering::AcqRel);
        if let Some(eviction) = &activity.eviction {
            eviction.spoke_or_closed.store(true, Ordering::Release);
        }
        Self(activity)
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        // The time first, so a connection never looks idle since before this call.
        self.0.idle_since_ms.store(now_ms(), Ordering::Release);
        self.0.open_calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections accepted from `listener`, within `limits`. Connections
/// that have not sent their preface are closed as soon as `shutdown` turns
/// true (hyper would wait for the preface before closing them). Under `tls`
/// the bytes read are TLS records, so the preface deadline is tonic's TLS
/// handshake timeout instead, and no connection is evicted.
pub fn incoming(
    listener: Listener,
    limits: ConnectionLimits,
    tls: bool,
    shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = io::Result<Conn>> {
    let acceptor = Acceptor {
        listener: listener.listener,
        places: Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS))),
        limits,
        tls,
        shutdown,
        out_of_descriptors: false,
        starved_log: StarvedLog::default(),
        refused: RefusalLog::default(),
        silent: Arc::default(),
    };
    futures_util::stream::unfold(acceptor, |mut acceptor| async move {
        let conn = acceptor.accept().await;
        Some((Ok(conn), acceptor))
    })
}

struct Acceptor {
    listener: TcpListener,
    places: Arc<Semaphore>,
    limits: ConnectionLimits,
    tls: bool,
    shutdown: watch::Receiver<bool>,
    out_of_descriptors: bool,
    starved_log: StarvedLog,
    refused: RefusalLog,
    silent: Arc<Silent>,
}

/// The connections that have not started a call, oldest first.
#[derive(Default)]
struct Silent {
    queue: Mutex<VecDeque<Arc<Eviction>>>,
}

/// One connection's entry in [`Silent`].
#[derive(Debug)]
struct Eviction {
    accepted: Instant,
    /// It started a call, or it is closed: no longer a candidate.
    spoke_or_closed: AtomicBool,
    evict: Arc<Notify>,
}

/// A connection younger than this never gives way: its client may be
/// sending its first call right now.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

impl Silent {
    fn push(&self) -> Arc<Eviction> {
        let entry = Arc::new(Eviction {
            accepted: Instant::now(),
            spoke_or_closed: AtomicBool::new(false),
            evict: Arc::default(),
        });
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Connections mostly speak (or time out) in the order they came.
        while queue.front().is_some_and(|e| e.spoke_or_closed.load(Ordering::Acquire)) {
            queue.pop_front();
        }
        queue.push_back(entry.clone());
        entry
    }

    /// Tells the oldest connection that has not called to close, if it is
    /// old enough; false if there is none.
    fn evict_oldest(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(entry) = queue.front() {
            if entry.spoke_or_closed.load(Ordering::Acquire) {
                queue.pop_front();
                continue;
            }
            // The oldest is too young: so is every other.
            if entry.accepted.elapsed() < EVICTABLE_AFTER {
                return false;
            }
            entry.evict.notify_one();
            queue.pop_front();
            return true;
        }
        false
    }
}

/// How long the accept loop waits for an evicted connection's place.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// Running out of descriptors is logged at most once a minute: under attack
/// it can start and end many times a second.
#[derive(Default)]
struct StarvedLog {
    last: Option<Instant>,
    logged_this_episode: bool,
}

impl StarvedLog {
    fn may_log(&mut self) -> bool {
        if self.last.is_some_and(|last| last.elapsed() < Duration::from_secs(60)) {
            return false;
        }
        self.last = Some(Instant::now());
        self.logged_this_episode = true;
        true
    }
}

impl Acceptor {
    /// A place under the cap: a free one, or the place of the oldest
    /// connection that has not spoken, closed for it.
    async fn place(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Some(place);
        }
        if !self.silent.evict_oldest() {
            return None;
        }
        tokio::time::timeout(EVICTION_WAIT, self.places.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    async fn accept(&mut self) -> Conn {
        loop {
            match self.listener.accept().await {
                Ok((stream, remote_addr)) => {
                    if std::mem::take(&mut self.out_of_descriptors) && self.starved_log.logged_this_episode {
                        self.starved_log.logged_this_episode = false;
                        tracing::info!("accepting connections again");
                    }
                    let Some(place) = self.place().await else {
                        // Closing it at once tells the client now; leaving it in
                        // the kernel's backlog would let it wait for nothing.
                        drop(stream);
                        metrics::counter!("producthub_connections_closed_total", "reason" => "limit").increment(1);
                        self.refused.note(self.limits.max_connections);
                        continue;
                    };
                    configure(&stream);
                    metrics::counter!("producthub_connections_accepted_total").increment(1);
                    let silent = (!self.tls).then(|| self.silent.push());
                    return Conn::new(
                        stream,
                        remote_addr,
                        place,
                        &self.limits,
                        self.tls,
                        silent,
                        self.shutdown.clone(),
                    );
                }
                Err(error) if is_out_of_resources(&error) => {
                    metrics::counter!("producthub_accept_errors_total", "kind" => "out_of_descriptors").increment(1);
                    if !std::mem::replace(&mut self.out_of_descriptors, true) && self.starved_log.may_log() {
                        tracing::warn!(
                            %error,
                            "out of file descriptors: new connections wait until some close (raise `ulimit -n` or lower --max-connections; producthub_accept_errors_total counts every time)"
                        );
                    }
                    // The pending connection stays ready in the backlog, so
                    // accepting again at once would only spin.
                    tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
                }
                // The peer gave up before it was accepted (ECONNABORTED and the like).
                Err(_) => {
                    metrics::counter!("producthub_accept_errors_total", "kind" => "other").increment(1);
                }
            }
        }
    }
}

/// Logs connections refused at the cap at most once every ten seconds.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since_last: u64,
}

impl RefusalLog {
    fn note(&mut self, limit: usize) {
        self.since_last += 1;
        if self.last.is_some_and(|last| last.elapsed() < Duration::from_secs(10)) {
            return;
        }
        tracing::warn!(
            limit,
            refused = self.since_last,
            "connections refused: --max-connections are open"
        );
        self.last = Some(Instant::now());
        self.since_last = 0;
    }
}

fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Nagle off (calls are small and latency matters); TCP keepalive on, so the
/// kernel notices dead peers even where HTTP/2 pings are off.
fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// An accepted connection: its socket, its place under the cap, and the
/// deadlines that end it.
pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
    _place: OwnedSemaphorePermit,
    /// Bytes of the HTTP/2 preface still to arrive; 0 once it has (always 0
    /// under TLS, whose handshake deadline tonic enforces).
    preface_left: usize,
    idle_timeout: Option<Duration>,
    deadline: Pin<Box<Sleep>>,
    shutdown: WatchStream<bool>,
    shutting_down: bool,
    /// Until its first call: its entry among the connections that may give
    /// way, and the signal that its place is wanted.
    silent: Option<(Arc<Eviction>, Pin<Box<OwnedNotified>>)>,
}

impl Conn {
    fn new(
        stream: TcpStream,
        remote_addr: SocketAddr,
        place: OwnedSemaphorePermit,
        limits: &ConnectionLimits,
        tls: bool,
        silent: Option<Arc<Eviction>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let shutting_down = *shutdown.borrow();
        let preface_left = if tls { 0 } else { PREFACE_BYTES };
        let first_deadline = if preface_left > 0 {
            Some(limits.handshake_timeout)
        } else {
            limits.idle_timeout
        };
        let deadline = first_deadline.map_or_else(far_future, |after| tokio::time::Instant::now() + after);
        metrics::gauge!("producthub_connections_open").increment(1.0);
        Self {
            stream,
            info: ConnInfo {
                remote_addr,
                activity: Arc::new(Activity::new(silent.clone())),
            },
            _place: place,
            preface_left,
            idle_timeout: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            shutdown: WatchStream::from_changes(shutdown),
            shutting_down,
            silent: silent.map(|entry| {
                let evicted = Box::pin(entry.evict.clone().notified_owned());
                (entry, evicted)
            }),
        }
    }

    /// Whether a deadline or the shutdown ends the connection now; otherwise
    /// registers the waker for the next check.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        if !self.shutting_down {
            while let Poll::Ready(Some(now)) = Pin::new(&mut self.shutdown).poll_next(cx) {
                self.shutting_down = now;
            }
        }
        let mut called = false;
        if let Some((entry, evicted)) = &mut self.silent {
            if entry.spoke_or_closed.load(Ordering::Acquire) {
                called = true;
            } else if evicted.as_mut().poll(cx).is_ready() {
                return Some("evicted");
            }
        }
        if called {
            self.silent = None;
        }
        if self.preface_left > 0 {
            if self.shutting_down {
                return Some("shutdown");
            }
            return self
                .deadline
                .as_mut()
                .poll(cx)
                .is_ready()
                .then_some("handshake_timeout");
        }
        let idle_timeout = self.idle_timeout?;
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return None;
            }
            let next = match self.info.activity.idle_deadline(idle_timeout) {
                Some(at) if at <= Instant::now() => return Some("idle"),
                Some(at) => tokio::time::Instant::from_std(at),
                // A call is open; look again one timeout from now.
                None => tokio::time::Instant::now() + idle_timeout,
            };
            self.deadline.as_mut().reset(next);
        }
    }

    fn saw(&mut self, bytes: usize) {
        if self.preface_left == 0 {
            return;
        }
        self.preface_left = self.preface_left.saturating_sub(bytes);
        if self.preface_left == 0 {
            let next = self
                .idle_timeout
                .map_or_else(far_future, |after| tokio::time::Instant::now() + after);
            self.deadline.as_mut().reset(next);
        }
    }
}

/// A deadline that never comes (about 30 years on).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((entry, _)) = &self.silent {
            entry.spoke_or_closed.store(true, Ordering::Release);
        }
        metrics::gauge!("producthub_connections_open").decrement(1.0);
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.stream).poll_read(cx, buf) {
            this.saw(buf.filled().len() - before);
            return Poll::Ready(result);
        }
        match this.expired(cx) {
            None => Poll::Pending,
            Some(reason) => {
                metrics::counter!("producthub_connections_closed_total", "reason" => reason).increment(1);
                tracing::debug!(peer = %this.info.remote_addr, reason, "connection closed");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)))
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

/// The connection a request came on, plain or under TLS.
pub fn conn_info<B>(request: &http::Request<B>) -> Option<&ConnInfo> {
    let extensions = request.extensions();
    extensions.get::<ConnInfo>().or_else(|| {
        extensions
            .get::<tonic::transport::server::TlsConnectInfo<ConnInfo>>()
            .map(|info| info.get_ref())
    })
}

/// Counts each call open on its connection, from its request until its
/// response body is dropped, so that [`Conn`] knows when it is idle.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTrackingLayer;

impl<S> Layer<S> for CallTrackingLayer {
    type Service = CallTracking<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTracking { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CallTracking<S> {
    inner: S,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for CallTracking<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let open = conn_info(&request).map(|info| OpenCall::new(info.activity.clone()));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match open {
                None => response,
                Some(open) => response.map(|body| tonic::body::Body::new(Tracked { body, _open: open })),
            })
        })
    }
}

/// A response body that keeps its call counted open until it is dropped.
struct Tracked {
    body: tonic::body::Body,
    _open: OpenCall,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_with_a_call_open_is_never_idle() {
        let activity = Arc::new(Activity::new(None));
        let timeout = Duration::from_secs(5);
        let open = OpenCall::new(activity.clone());
        assert_eq!(activity.idle_deadline(timeout), None);
        drop(open);
        let deadline = activity.idle_deadline(timeout).expect("idle once the call ends");
        assert!(deadline > Instant::now() + Duration::from_secs(4));
    }

    #[test]
    fn the_cap_fits_under_the_descriptor_limit() {
        let fitted = fit_to_descriptor_limit(usize::MAX);
        assert!((16..usize::MAX).contains(&fitted));
        assert_eq!(fit_to_descriptor_limit(10), 10);
    }
}
