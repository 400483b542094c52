//! Reading a protobuf encoding field by field.
//!
//! The generic rules that only look at a product (clearing output-only fields,
//! the schema's validation rules) walk its encoding with the descriptor instead
//! of decoding it into a reflective message: building and dropping a
//! `DynamicMessage` was the largest cost of both in profiles of CreateProduct
//! and UpdateProduct under load.

use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};
use prost_reflect::{Kind, MessageDescriptor};

use super::schema;

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
            WireType::SixtyFourBit => read_scalar(&mut self.rest, ScalarEncoding::Fixed64)?,
            WireType::ThirtyTwoBit => read_scalar(&mut self.rest, ScalarEncoding::Fixed32)?,
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

/// How a scalar is encoded on its own, and so how it is packed in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarEncoding {
    Varint,
    Fixed64,
    Fixed32,
}

impl ScalarEncoding {
    /// The encoding of a value of `kind`; `None` for the length-delimited
    /// kinds (strings, bytes, messages), which are never packed.
    pub fn of(kind: &Kind) -> Option<Self> {
        match kind {
            Kind::String | Kind::Bytes | Kind::Message(_) => None,
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => Some(Self::Fixed64),
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => Some(Self::Fixed32),
            Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Sint32 | Kind::Sint64 | Kind::Bool => {
                Some(Self::Varint)
            }
            Kind::Enum(_) => Some(Self::Varint),
        }
    }

    fn matches(self, value: &WireValue) -> bool {
        matches!(
            (self, value),
            (Self::Varint, WireValue::Varint(_))
                | (Self::Fixed64, WireValue::Fixed64(_))
                | (Self::Fixed32, WireValue::Fixed32(_))
        )
    }
}

/// Reads one scalar encoded as `encoding` off the front of `input`.
fn read_scalar<'a>(input: &mut &'a [u8], encoding: ScalarEncoding) -> Result<WireValue<'a>, Malformed> {
    Ok(match encoding {
        ScalarEncoding::Varint => WireValue::Varint(encoding::decode_varint(input)?),
        ScalarEncoding::Fixed64 => {
            let (bytes, rest) = input.split_first_chunk::<8>().ok_or(Malformed)?;
            *input = rest;
            WireValue::Fixed64(u64::from_le_bytes(*bytes))
        }
        ScalarEncoding::Fixed32 => {
            let (bytes, rest) = input.split_first_chunk::<4>().ok_or(Malformed)?;
            *input = rest;
            WireValue::Fixed32(u32::from_le_bytes(*bytes))
        }
    })
}

/// The items of a packed list of scalars encoded as `encoding`, appended to
/// `items`; a payload that is not a whole number of items is malformed.
pub fn unpack<'a>(
    mut packed: &'a [u8],
    encoding: ScalarEncoding,
    items: &mut Vec<WireValue<'a>>,
) -> Result<(), Malformed> {
    while !packed.is_empty() {
        items.push(read_scalar(&mut packed, encoding)?);
    }
    Ok(())
}

/// How deep prost lets messages nest when it decodes (its `RECURSION_LIMIT`).
const RECURSION_LIMIT: u32 = 100;

/// Whether `bytes` decode as a `message`, as prost would decode them, without
/// building anything: every field well framed, every declared field with the
/// wire type of its kind (a list of scalars packed or not), strings UTF-8,
/// nested messages and map entries likewise, within prost's recursion
/// limit. What is sent from storage as it was stored is checked with this
/// instead of being decoded. Groups are not declared in this API's (proto3)
/// messages, so a declared field sent as one is malformed; an unknown field's
/// groups are skipped whole, their nesting counted from the top.
pub fn check_decodes(message: &MessageDescriptor, bytes: &[u8]) -> Result<(), Malformed> {
    check_fields(message, bytes, RECURSION_LIMIT)
}

/// `depth_left`: how many more levels of messages may nest below this one
/// (prost's recursion budget as it reads this message's fields).
fn check_fields(message: &MessageDescriptor, bytes: &[u8], depth_left: u32) -> Result<(), Malformed> {
    let infos = schema::fields(message);
    // prost writes fields in declaration order, so each is looked for from
    // where the last one was found.
    let mut from = 0;
    for field in fields(bytes) {
        let field = field?;
        let found = (from..infos.len())
            .chain(0..from)
            .find(|&i| infos[i].field.number() == field.number);
        let Some(index) = found else {
            // prost skips an unknown field, but not once the budget is spent.
            if depth_left == 0 {
                return Err(Malformed);
            }
            continue;
        };
        from = index;
        let info = &infos[index];
        match (&info.kind, field.value) {
            // A map's entries are messages too, checked the same way.
            (Kind::Message(inner), WireValue::LengthDelimited(body)) => {
                let depth_left = depth_left.checked_sub(1).ok_or(Malformed)?;
                check_fields(inner, body, depth_left)?;
            }
            (Kind::String, WireValue::LengthDelimited(body)) => {
                std::str::from_utf8(body).map_err(|_| Malformed)?;
            }
            (Kind::Bytes, WireValue::LengthDelimited(_)) => {}
            (kind, value) => match ScalarEncoding::of(kind) {
                Some(encoding) if encoding.matches(&value) => {}
                Some(encoding) if info.list => {
                    let WireValue::LengthDelimited(packed) = value else {
                        return Err(Malformed);
                    };
                    let mut packed = packed;
                    while !packed.is_empty() {
                        read_scalar(&mut packed, encoding)?;
                    }
                }
                _ => return Err(Malformed),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filled::filled;
    use crate::pb::Product;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use prost::Message;

    /// One change to an encoding, at a position taken modulo its length.
    #[derive(Debug, Clone)]
    enum Damage {
        Set(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Cut(usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Set(at, byte)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
            any::<usize>().prop_map(Damage::Remove),
            any::<usize>().prop_map(Damage::Cut),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
        if bytes.is_empty() {
            return;
        }
        let at = |n: usize| n % bytes.len();
        match *damage {
            Damage::Set(n, byte) => {
                let i = at(n);
                bytes[i] = byte;
            }
            Damage::Insert(n, byte) => bytes.insert(at(n), byte),
            Damage::Remove(n) => {
                bytes.remove(at(n));
            }
            Damage::Cut(n) => bytes.truncate(at(n)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// On products filled at every depth and then damaged anywhere,
        /// `check_decodes` says yes exactly when prost decodes the bytes.
        #[test]
        fn check_decodes_agrees_with_prost(
            choices in vec(any::<u8>(), 1..64),
            damages in vec(damage(), 0..4),
        ) {
            let mut bytes = filled(&choices).encode_to_vec();
            for damage in &damages {
                apply(&mut bytes, damage);
            }
            let checked = check_decodes(&schema::product_descriptor(), &bytes);
            let decoded = Product::decode(bytes.as_slice());
            prop_assert_eq!(checked.is_ok(), decoded.is_ok(), "prost: {:?}", decoded.err());
        }
    }

    #[test]
    fn check_decodes_counts_nesting_as_prost_does() {
        // Value -> ListValue -> Value ... nests two messages a level.
        use prost_types::value::Kind as JsonKind;
        let nested = |levels: usize| {
            (0..levels).fold(prost_types::Value::default(), |inner, _| prost_types::Value {
                kind: Some(JsonKind::ListValue(prost_types::ListValue { values: vec![inner] })),
            })
        };
        let descriptor = schema::product_descriptor()
            .parent_pool()
            .get_message_by_name("google.protobuf.Value")
            .unwrap();
        for levels in [10, 49, 50, 51, 60] {
            let bytes = nested(levels).encode_to_vec();
            assert_eq!(
                check_decodes(&descriptor, &bytes).is_ok(),
                prost_types::Value::decode(bytes.as_slice()).is_ok(),
                "{levels} levels"
            );
        }
    }

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
