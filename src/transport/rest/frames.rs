//! gRPC's length-prefixed messages (a flag byte, a 4-byte big-endian length,
//! the message) in and out of a call's body, and its trailing status.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use prost_reflect::MessageDescriptor;
use tonic::Status;
use tonic::body::Body;

pub use crate::transport::grpc_frame::frame;
use crate::transport::grpc_frame::{self, HEADER};

/// Messages taken from the bytes of a body as they arrive.
#[derive(Default)]
struct Deframer {
    buffer: BytesMut,
}

impl Deframer {
    fn push(&mut self, data: Bytes) {
        self.buffer.extend_from_slice(&data);
    }

    fn next(&mut self) -> Result<Option<Bytes>, Status> {
        let Some((flag, length)) = grpc_frame::header(&self.buffer) else {
            return Ok(None);
        };
        if flag != 0 {
            return Err(Status::internal("the call answered with a compressed message"));
        }
        if self.buffer.len() < HEADER + length {
            return Ok(None);
        }
        self.buffer.advance(HEADER);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }

    fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }
}

/// The status trailers carry (a missing one is an error: the call broke).
fn trailer_status(trailers: Option<&http::HeaderMap>) -> Status {
    trailers
        .and_then(Status::from_header_map)
        .unwrap_or_else(|| Status::internal("the call ended without a status"))
}

/// Every message of a unary answer, and the status it ended with.
pub async fn collect(mut body: Body) -> Result<(Vec<Bytes>, Status), Status> {
    let mut deframer = Deframer::default();
    let mut messages = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                deframer.push(data);
                while let Some(message) = deframer.next()? {
                    messages.push(message);
                }
            }
            Err(frame) => {
                let status = trailer_status(frame.trailers_ref());
                return Ok((messages, status));
            }
        }
    }
    Ok((messages, trailer_status(None)))
}

/// A server stream as newline-delimited JSON: a line per message; a failure
/// after the stream began is one last line, the AIP-193 error body.
pub fn ndjson_stream(output: MessageDescriptor, body: Body) -> http::Response<Body> {
    struct State {
        body: Body,
        deframer: Deframer,
        output: MessageDescriptor,
        done: bool,
    }
    let state = State {
        body,
        deframer: Deframer::default(),
        output,
        done: false,
    };
    let lines = futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            match state.deframer.next() {
                Ok(Some(message)) => {
                    let line = match super::json::response_json(&state.output, &message) {
                        Ok(mut json) => {
                            json.push(b'\n');
                            json
                        }
                        Err(status) => {
                            state.done = true;
                            error_line(&status)
                        }
                    };
                    return Some((Ok::<_, Status>(http_body::Frame::data(Bytes::from(line))), state));
                }
                Ok(None) => {}
                Err(status) => {
                    state.done = true;
                    return Some((Ok(http_body::Frame::data(Bytes::from(error_line(&status)))), state));
                }
            }
            match state.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => state.deframer.push(data),
                    Err(frame) => {
                        state.done = true;
                        let mut status = trailer_status(frame.trailers_ref());
                        if status.code() == tonic::Code::Ok {
                            if state.deframer.is_empty() {
                                return None;
                            }
                            status = Status::internal("the stream ended inside a message");
                        }
                        return Some((Ok(http_body::Frame::data(Bytes::from(error_line(&status)))), state));
                    }
                },
                Some(Err(status)) => {
                    state.done = true;
                    return Some((Ok(http_body::Frame::data(Bytes::from(error_line(&status)))), state));
                }
                None => {
                    state.done = true;
                    return Some((
                        Ok(http_body::Frame::data(Bytes::from(error_line(&trailer_status(None))))),
                        state,
                    ));
                }
            }
        }
    });
    let mut response = http::Response::new(Body::new(http_body_util::StreamBody::new(lines.boxed())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

fn error_line(status: &Status) -> Vec<u8> {
    let mut line = super::json::error_json(status, super::json::http_status(status.code()))
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_come_out_whole() {
        let framed = [frame(b"hello"), frame(b""), frame(b"world")].concat();
        let mut deframer = Deframer::default();
        let mut out = Vec::new();
        for chunk in framed.chunks(3) {
            deframer.push(Bytes::copy_from_slice(chunk));
            while let Some(message) = deframer.next().unwrap() {
                out.push(message);
            }
        }
        assert_eq!(
            out,
            vec![Bytes::from_static(b"hello"), Bytes::new(), Bytes::from_static(b"world")]
        );
        assert!(deframer.is_empty());
    }
}
