//! Reading a protobuf encoding field by field.
//!
//! The generic rules that only look at a product (clearing output-only fields,
//! the schema's validation rules) walk its encoding with the descriptor instead
//! of decoding it into a reflective message: building and dropping a
//! `DynamicMessage` was the largest cost of both in profiles of CreateProduct
//! and UpdateProduct under load.

use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};

/// Bytes that are not a well-formed protobuf encoding, or that a walk cannot
/// read with its descriptor (a field with a wire type the walk does not expect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl From<DecodeError> for Malformed {
    fn from(_: DecodeError) -> Self {
        Malformed
    }
}

/// One field as it appears in an encoded message.
#[derive(Debug, Clone, Copy)]
pub struct WireField<'a> {
    pub number: u32,
    /// The whole field as encoded, key included, to copy it unchanged.
    pub raw: &'a [u8],
    pub value: WireValue<'a>,
}

/// A field's value, read only as far as its wire type says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A string, bytes, a message or packed scalars.
    LengthDelimited(&'a [u8]),
    /// A (deprecated) group, skipped whole.
    Group,
}

/// The fields of the encoded message `input`, in the order they were written.
/// A malformed field ends the walk with `Err`.
pub fn fields(input: &[u8]) -> Fields<'_> {
    Fields { input, rest: input }
}

pub struct Fields<'a> {
    input: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<WireField<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.read();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<WireField<'a>, Malformed> {
        let start = self.input.len() - self.rest.len();
        let (number, wire_type) = encoding::decode_key(&mut self.rest)?;
        let value = match wire_type {
            WireType::Varint => WireValue::Varint(encoding::decode_varint(&mut self.rest)?),
            WireType::SixtyFourBit => {
                let (bytes, rest) = self.rest.split_first_chunk::<8>().ok_or(Malformed)?;
                self.rest = rest;
                WireValue::Fixed64(u64::from_le_bytes(*bytes))
            }
            WireType::ThirtyTwoBit => {
                let (bytes, rest) = self.rest.split_first_chunk::<4>().ok_or(Malformed)?;
                self.rest = rest;
                WireValue::Fixed32(u32::from_le_bytes(*bytes))
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(encoding::decode_varint(&mut self.rest)?).map_err(|_| Malformed)?;
                if len > self.rest.len() {
                    return Err(Malformed);
                }
                let (body, rest) = self.rest.split_at(len);
                self.rest = rest;
                WireValue::LengthDelimited(body)
            }
            WireType::StartGroup | WireType::EndGroup => {
                encoding::skip_field(wire_type, number, &mut self.rest, DecodeContext::default())?;
                WireValue::Group
            }
        };
        let end = self.input.len() - self.rest.len();
        Ok(WireField {
            number,
            raw: &self.input[start..end],
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn reads_every_wire_type_and_hands_back_each_field_as_encoded() {
        let value = prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(2.5)),
        };
        let duration = prost_types::Duration { seconds: 7, nanos: 0 };
        let mut bytes = value.encode_to_vec();
        bytes.extend(duration.encode_to_vec());
        bytes.extend([0x1d, 1, 0, 0, 0]); // field 3, fixed32 = 1
        let read: Vec<_> = fields(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(read[0].value, WireValue::Fixed64(2.5f64.to_bits()));
        assert_eq!(read[1].value, WireValue::Varint(7));
        assert_eq!(read[2].value, WireValue::Fixed32(1));
        assert_eq!(
            read.iter().flat_map(|f| f.raw.iter().copied()).collect::<Vec<_>>(),
            bytes
        );
    }

    #[test]
    fn a_truncated_field_is_malformed_and_ends_the_walk() {
        let cut = [0x0a, 5, b'a'];
        let mut walk = fields(&cut);
        assert_eq!(walk.next().map(|f| f.map(|_| ())), Some(Err(Malformed)));
        assert!(walk.next().is_none());
        assert!(
            matches!(fields(&[0x0c]).next(), Some(Err(Malformed))),
            "a stray end-group tag"
        );
    }
}
