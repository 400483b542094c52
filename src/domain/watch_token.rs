//! Resume tokens for WatchProducts: which change log, and the last change the
//! client received. Protobuf, base64url-encoded, opaque to clients.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

const TOKEN_VERSION: u32 = 1;
const MAX_TOKEN_LEN: usize = 128;

#[derive(Clone, PartialEq, prost::Message)]
struct ResumeTokenProto {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(fixed64, tag = "2")]
    log_id: u64,
    #[prost(uint64, tag = "3")]
    minor: u64,
    #[prost(uint64, tag = "4")]
    major: u64,
}

/// A position in a change log, as the token carries it: (major, minor).
pub type Position = (u64, u64);

/// The token for the change at `position` of change log `log_id`.
pub fn encode(log_id: u64, position: Position) -> String {
    let token = ResumeTokenProto {
        version: TOKEN_VERSION,
        log_id,
        major: position.0,
        minor: position.1,
    };
    URL_SAFE_NO_PAD.encode(token.encode_to_vec())
}

/// The position in a token, if it was minted by change log `log_id`; the
/// error says why the token is not acceptable.
pub fn decode(token: &str, log_id: u64) -> Result<Position, String> {
    const NOT_OURS: &str = "is not a resume token returned by WatchProducts";
    if token.len() > MAX_TOKEN_LEN {
        return Err(NOT_OURS.into());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| NOT_OURS.to_string())?;
    let proto = ResumeTokenProto::decode(bytes.as_slice()).map_err(|_| NOT_OURS.to_string())?;
    if proto.version != TOKEN_VERSION || (proto.major, proto.minor) == (0, 0) {
        return Err(NOT_OURS.into());
    }
    if proto.log_id != log_id {
        return Err("was issued by another producthub change log (another data directory or database, or a log that was turned off since)".into());
    }
    Ok((proto.major, proto.minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_knows_its_store() {
        let token = encode(7, (3, 42));
        assert_eq!(decode(&token, 7), Ok((3, 42)));
        assert!(decode(&token, 8).unwrap_err().contains("another producthub change log"));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "x", "!!!", &"A".repeat(200), &encode(7, (0, 0))] {
            assert!(decode(bad, 7).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(token in ".{0,200}") {
            let _ = decode(&token, 7);
        }
    }
}
