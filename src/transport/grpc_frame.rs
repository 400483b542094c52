//! gRPC's length-prefixed message: a compression flag byte, a 4-byte
//! big-endian length, then the message. Every gRPC body is a run of these.

use bytes::{BufMut, Bytes, BytesMut};

/// The flag byte and the length before each message.
pub const HEADER: usize = 5;

/// What a message's header says, read from the first [`HEADER`] bytes of `bytes`
/// (`None` while fewer have arrived): its compression flag (0 for none) and
/// its length.
pub fn header(bytes: &[u8]) -> Option<(u8, usize)> {
    let (&[flag, a, b, c, d], _) = bytes.split_first_chunk::<HEADER>()?;
    Some((flag, u32::from_be_bytes([a, b, c, d]) as usize))
}

/// One uncompressed message, framed.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(HEADER + message.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.extend_from_slice(message);
    framed.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_message_reads_back_its_header() {
        let framed = frame(b"hello");
        assert_eq!(header(&framed), Some((0, 5)));
        assert_eq!(&framed[HEADER..], b"hello");
        assert_eq!(header(&framed[..4]), None, "a header not all there yet");
        assert_eq!(header(&[1, 0, 0, 1, 0]), Some((1, 256)));
    }
}
