//! GetProduct answered with the product's stored bytes.
//!
//! Both stores keep a product as its `producthub.v1.Product` encoding, which
//! is GetProduct's answer on the wire. The generated service would decode
//! those bytes into a `Product` only for tonic to encode it again; this
//! service, in front of it under the same name, sends them as stored (checked
//! to decode, see [`Catalog::get_stored`]). Everything else is as the
//! generated service does it, so a client cannot tell the two apart: the
//! request is read to the end of its body, every message in it decoded,
//! over-size and compressed-flag messages refused with tonic's words, errors
//! sent trailers-only. Requests this service does not take (other methods; a
//! request declaring a `grpc-encoding` other than `identity`, which tonic
//! refuses in its own words)
//! go on to the generated service.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, Either};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use super::grpc_frame::{self, HEADER};
use super::status::{malformed_status, to_status, too_large_status};
use crate::catalog::Catalog;
use crate::pb::GetProductRequest;
use crate::storage::ProductStore;

/// The method this service answers itself.
const GET_PRODUCT_PATH: &str = "/producthub.v1.ProductService/GetProduct";

/// `inner` (the generated ProductService), with GetProduct answered from the
/// stored bytes.
pub struct StoredGet<S, Inner> {
    inner: Inner,
    catalog: Arc<Catalog<S>>,
    max_message_bytes: usize,
}

impl<S, Inner> StoredGet<S, Inner> {
    /// `max_message_bytes`: the largest request message, as the generated
    /// service is configured.
    pub fn new(inner: Inner, catalog: Arc<Catalog<S>>, max_message_bytes: usize) -> Self {
        Self {
            inner,
            catalog,
            max_message_bytes,
        }
    }
}

impl<S, Inner: Clone> Clone for StoredGet<S, Inner> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            catalog: self.catalog.clone(),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

impl<S, Inner: NamedService> NamedService for StoredGet<S, Inner> {
    const NAME: &'static str = Inner::NAME;
}

impl<S, Inner> Service<http::Request<Body>> for StoredGet<S, Inner>
where
    S: ProductStore,
    Inner: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<Inner::Future, BoxFuture<'static, Result<http::Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let declares_encoding = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|encoding| encoding != "identity");
        if request.uri().path() != GET_PRODUCT_PATH || declares_encoding {
            return Either::Left(self.inner.call(request));
        }
        let catalog = self.catalog.clone();
        let limit = self.max_message_bytes;
        Either::Right(Box::pin(async move {
            let answer = match read_request(request.into_body(), limit).await {
                Ok(request) => catalog.get_stored(request).await.map_err(|e| to_status(&e)),
                Err(status) => Err(status),
            };
            Ok(match answer {
                Ok(product) => unary_answer(&product),
                Err(status) => status.into_http(),
            })
        }))
    }
}

/// The first message of a unary request's body, read to its end as tonic
/// reads it: each message decoded as it completes; the body ends at its
/// end, at trailers or when the caller cancels, and a message left unfinished
/// by its plain end is an error. The bytes waiting are kept in one growing
/// buffer, so a message sent in many small frames costs no more than one.
async fn read_request(mut body: Body, limit: usize) -> Result<GetProductRequest, Status> {
    let mut pending = BytesMut::new();
    let mut first = None;
    loop {
        while let Some(message) = next_message(&mut pending, limit)? {
            let request = GetProductRequest::decode(message).map_err(|e| malformed_status(e.to_string()))?;
            first.get_or_insert(request);
        }
        let frame = match body.frame().await {
            None if !pending.is_empty() => return Err(Status::internal("Unexpected EOF decoding stream.")),
            None => break,
            Some(Err(status)) if status.code() == tonic::Code::Cancelled => break,
            Some(frame) => frame?,
        };
        match frame.into_data() {
            Ok(data) => pending.extend_from_slice(&data),
            // Trailers end the body and carry metadata only; GetProduct reads none.
            Err(_) => break,
        }
    }
    first.ok_or_else(|| Status::internal("Missing request message."))
}

/// Takes the next whole message off the front of `pending`, if one is there.
/// A header is judged as soon as it is all there, before its message arrives.
fn next_message(pending: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, Status> {
    let Some((flag, length)) = grpc_frame::header(pending) else {
        return Ok(None);
    };
    match flag {
        0 => {}
        // No `grpc-encoding` was declared (such requests go to tonic).
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ));
        }
        other => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {other} (valid flags are 0 and 1), while sending request"
            )));
        }
    }
    if length > limit {
        return Err(too_large_status(format!(
            "Error, decoded message length too large: found {length} bytes, the limit is: {limit} bytes"
        )));
    }
    if pending.len() < HEADER + length {
        // Room for the whole message once, rather than growth by doubling.
        pending.reserve(HEADER + length - pending.len());
        return Ok(None);
    }
    let mut message = pending.split_to(HEADER + length);
    Ok(Some(message.split_off(HEADER).freeze()))
}

/// A successful unary answer: `message`, then an OK status in the trailers.
fn unary_answer(message: &[u8]) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    // A stream rather than one `Full` body: its size is not known ahead, so
    // hyper sends no `content-length`, as with tonic's own answers.
    let frames: [Result<_, Status>; 2] = [
        Ok(http_body::Frame::data(grpc_frame::frame(message))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut response = http::Response::new(Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::catalog::SyncHooks;
    use crate::pb::Product;
    use crate::pb::product_service_server::ProductServiceServer;
    use crate::storage::{Products, SledOptions, SledStore};
    use crate::transport::call_log::CallLogLayer;
    use crate::transport::service::ProductApi;
    use crate::vendors::{Connections, VendorSettings, VendorsConfig};

    const LIMIT: usize = 4096;

    /// What a client can see of an answer.
    #[derive(Debug, PartialEq)]
    struct Seen {
        headers: Vec<(String, String)>,
        data: Bytes,
        trailers: Vec<(String, String)>,
    }

    fn pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        pairs.sort();
        pairs
    }

    /// Request headers to add: name and value.
    type Headers = Vec<(&'static str, &'static str)>;

    /// How a request body ends after its data.
    #[derive(Clone, Copy, Debug)]
    enum End {
        Plain,
        Trailers,
        Cancelled,
    }

    async fn seen<Svc>(service: Svc, body: &[Bytes], headers: &[(&'static str, &'static str)], end: End) -> Seen
    where
        Svc: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    {
        let mut chunks: Vec<Result<_, Status>> = body.iter().cloned().map(http_body::Frame::data).map(Ok).collect();
        match end {
            End::Plain => {}
            End::Trailers => chunks.push(Ok(http_body::Frame::trailers(http::HeaderMap::new()))),
            End::Cancelled => chunks.push(Err(Status::cancelled("the client went away"))),
        }
        let mut request = http::Request::post(format!("http://test{GET_PRODUCT_PATH}"))
            .header("content-type", "application/grpc")
            .body(Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
                chunks,
            ))))
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().map(pairs).unwrap_or_default();
        Seen {
            headers: pairs(&parts.headers),
            data: collected.to_bytes(),
            trailers,
        }
    }

    fn framed(message: &[u8]) -> Bytes {
        grpc_frame::frame(message)
    }

    fn get(name: &str) -> Bytes {
        framed(&GetProductRequest { name: name.to_owned() }.encode_to_vec())
    }

    /// Every way a request can be right or wrong gets the very answer the
    /// generated service gives, both behind the call log as in the server.
    #[tokio::test]
    async fn answers_every_request_as_the_generated_service_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path(), &SledOptions::default()).unwrap());
        let product = Product {
            name: "products/p1".into(),
            uid: "u-1".into(),
            display_name: "Thermostat".into(),
            description: "ü".repeat(600),
            ..Default::default()
        };
        store.insert("p1", &product, None, false).await.unwrap();
        let connections = Arc::new(Connections::new(&VendorsConfig::default(), Duration::from_secs(1)).unwrap());
        let catalog = Arc::new(Catalog::new(
            store,
            VendorSettings::default(),
            connections,
            SyncHooks::default(),
        ));
        let generated = ProductServiceServer::new(ProductApi::new(catalog.clone())).max_decoding_message_size(LIMIT);
        let stored = StoredGet::new(generated.clone(), catalog, LIMIT);

        let whole = get("products/p1");
        let mut compressed = whole.to_vec();
        compressed[0] = 1;
        let mut bad_flag = whole.to_vec();
        bad_flag[0] = 7;
        // A name near the limit, a byte a frame: the body the old per-frame
        // join copied quadratically (no timing here; the answers must match).
        let long_name = get(&format!("products/{}", "n".repeat(LIMIT - 100)));
        let bytewise = |message: &Bytes| (0..message.len()).map(|i| message.slice(i..=i)).collect::<Vec<_>>();
        let mut too_long = vec![0, 0, 0, 0x20, 0];
        too_long.extend([0x0a, 1, b'x']);
        let cases: Vec<(&str, Vec<Bytes>, Headers)> = vec![
            ("found", vec![whole.clone()], vec![]),
            (
                "found, split",
                vec![whole.slice(..3), whole.slice(3..7), whole.slice(7..)],
                vec![],
            ),
            (
                "identity encoding",
                vec![whole.clone()],
                vec![("grpc-encoding", "identity")],
            ),
            ("not found", vec![get("products/p2")], vec![]),
            ("bad name", vec![get("p1")], vec![]),
            ("empty name", vec![get("")], vec![]),
            (
                "two messages",
                vec![[whole.clone(), get("products/p2")].concat().into()],
                vec![],
            ),
            (
                "second undecodable",
                vec![[whole.clone(), framed(b"\xff\xff")].concat().into()],
                vec![],
            ),
            ("undecodable", vec![framed(b"\xff\xff\xff")], vec![]),
            ("not UTF-8", vec![framed(b"\x0a\x01\xff")], vec![]),
            ("no message", vec![], vec![]),
            ("half a header", vec![whole.slice(..3)], vec![]),
            ("half a message", vec![whole.slice(..whole.len() - 1)], vec![]),
            ("compressed flag", vec![compressed.into()], vec![]),
            ("invalid flag", vec![bad_flag.into()], vec![]),
            ("too long", vec![too_long.into()], vec![]),
            ("declared gzip", vec![whole.clone()], vec![("grpc-encoding", "gzip")]),
            ("a byte a frame", bytewise(&whole), vec![]),
            ("a long name a byte a frame", bytewise(&long_name), vec![]),
        ];
        let endings: Vec<(&str, Vec<Bytes>, End)> = vec![
            ("whole, then trailers", vec![whole.clone()], End::Trailers),
            ("half, then trailers", vec![whole.slice(..7)], End::Trailers),
            ("nothing, then trailers", vec![], End::Trailers),
            ("whole, then cancelled", vec![whole.clone()], End::Cancelled),
            ("half, then cancelled", vec![whole.slice(..7)], End::Cancelled),
        ];
        let plain = cases
            .into_iter()
            .map(|(case, body, headers)| (case, body, headers, End::Plain));
        let ended = endings
            .into_iter()
            .map(|(case, body, end)| (case, body, Vec::new(), end));
        for (case, body, headers, end) in plain.chain(ended) {
            let expected = seen(CallLogLayer.layer(generated.clone()), &body, &headers, end).await;
            let answered = seen(CallLogLayer.layer(stored.clone()), &body, &headers, end).await;
            assert_eq!(answered, expected, "{case}");
        }
        let found = seen(stored, &[whole], &[], End::Plain).await;
        assert_eq!(found.data, framed(&product.encode_to_vec()), "the stored bytes, framed");
    }

    /// hyper adds `content-length` to an answer whose size is known ahead;
    /// tonic's answers carry none, so this one must not either.
    #[test]
    fn an_answer_does_not_tell_its_size_ahead() {
        use http_body::Body as _;
        assert_eq!(unary_answer(b"stored").body().size_hint().exact(), None);
    }

    #[test]
    fn the_path_is_the_generated_services_get_product() {
        let name = <ProductServiceServer<ProductApi<SledStore>> as NamedService>::NAME;
        assert_eq!(GET_PRODUCT_PATH, format!("/{name}/GetProduct"));
    }
}
