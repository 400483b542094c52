//! Opaque page tokens for ListProducts (AIP-158).
//!
//! A token records where the previous page stopped (the last product id it
//! examined, which with a filter may be past the last one it returned) and a
//! fingerprint of the filter, so a token cannot be replayed with another filter.
//! It is protobuf, base64url-encoded: opaque to clients, cheap to check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use super::names::check_product_id;

const TOKEN_VERSION: u32 = 1;
/// Tokens are short; anything much longer is not one of ours.
const MAX_TOKEN_LEN: usize = 512;

#[derive(Clone, PartialEq, prost::Message)]
struct PageTokenProto {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(string, tag = "2")]
    after_id: String,
    #[prost(fixed64, tag = "3")]
    filter_fingerprint: u64,
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// The next page holds products whose ids sort after this one.
    pub after_id: String,
}

/// Encodes the cursor for a listing made with `filter`.
pub fn encode(after_id: &str, filter: &str) -> String {
    let token = PageTokenProto {
        version: TOKEN_VERSION,
        after_id: after_id.to_owned(),
        filter_fingerprint: fingerprint(filter),
    };
    URL_SAFE_NO_PAD.encode(token.encode_to_vec())
}

/// Decodes a token given back by a client listing with `filter`; the error says
/// why the token is not acceptable.
pub fn decode(token: &str, filter: &str) -> Result<PageCursor, String> {
    const NOT_OURS: &str = "is not a page token returned by ListProducts";
    if token.len() > MAX_TOKEN_LEN {
        return Err(NOT_OURS.into());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| NOT_OURS.to_string())?;
    let proto = PageTokenProto::decode(bytes.as_slice()).map_err(|_| NOT_OURS.to_string())?;
    if proto.version != TOKEN_VERSION || check_product_id(&proto.after_id).is_err() {
        return Err(NOT_OURS.into());
    }
    if proto.filter_fingerprint != fingerprint(filter) {
        return Err("was issued for a different filter; list again from the first page".into());
    }
    Ok(PageCursor {
        after_id: proto.after_id,
    })
}

/// FNV-1a, 64 bits: stable across releases and platforms (unlike std's hasher),
/// so tokens survive a server upgrade.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let token = encode("sensor-9", "iot:*");
        assert_eq!(decode(&token, "iot:*").unwrap().after_id, "sensor-9");
    }

    #[test]
    fn refuses_another_filter() {
        let token = encode("sensor-9", "iot:*");
        assert!(decode(&token, "").unwrap_err().contains("different filter"));
    }

    #[test]
    fn refuses_forgeries() {
        for bad in ["", "x", "!!!", &"A".repeat(600), &URL_SAFE_NO_PAD.encode(b"\x08\x02")] {
            assert!(decode(bad, "").is_err(), "{bad}");
        }
        let not_an_id = URL_SAFE_NO_PAD.encode(
            PageTokenProto {
                version: 1,
                after_id: "../etc".into(),
                filter_fingerprint: fingerprint(""),
            }
            .encode_to_vec(),
        );
        assert!(decode(&not_an_id, "").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(token in ".{0,600}", filter in ".{0,40}") {
            let _ = decode(&token, &filter);
        }
    }
}
