//! The API's own descriptors, read once from the descriptor set build.rs embeds.
//!
//! Field behaviour (REQUIRED, OUTPUT_ONLY, IMMUTABLE, IDENTIFIER) is declared once,
//! in the proto files, with `google.api.field_behavior`; the server reads it from
//! here instead of keeping a second, hand-written list that could drift.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::pb::{self, google::api::FieldBehavior};

/// Full proto name of the canonical product message.
pub const PRODUCT_MESSAGE: &str = "producthub.v1.Product";

struct Schema {
    product: MessageDescriptor,
    /// Keyed by the address of the field's full name inside the (static) pool:
    /// a unique, stable identity that costs nothing to hash. Field masks and
    /// validation ask this for every field they visit.
    behaviors: HashMap<usize, Behaviors, BuildHasherDefault<AddressHasher>>,
    /// Every message's fields with what the walks need, worked out once:
    /// asking the descriptor for a field's kind each time was the largest
    /// single cost of a field-mask merge. Keyed like `behaviors`.
    fields: HashMap<usize, Vec<FieldInfo>, BuildHasherDefault<AddressHasher>>,
}

/// What the generic walks (field masks, validation) need to know about a field.
#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub field: FieldDescriptor,
    pub behaviors: Behaviors,
    pub kind: Kind,
    pub list: bool,
    pub map: bool,
    /// The field holds messages the walks descend into (singular, repeated or
    /// as map values), as opposed to scalars or well-known types.
    pub holds_messages: bool,
    /// The field holds messages with an output-only field somewhere inside
    /// them, so walks that drop output-only fields must descend into it.
    pub output_only_within: bool,
}

/// Hashes a pointer-sized key by one multiplication (Fibonacci hashing).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn field_key(field: &FieldDescriptor) -> usize {
    field.full_name().as_ptr() as usize
}

fn message_key(message: &MessageDescriptor) -> usize {
    message.full_name().as_ptr() as usize
}

/// The fields of a message of this API, with their walk facts.
pub fn fields(message: &MessageDescriptor) -> &'static [FieldInfo] {
    schema()
        .fields
        .get(&message_key(message))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The behaviours declared on one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviors {
    pub required: bool,
    pub output_only: bool,
    pub immutable: bool,
    pub identifier: bool,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The descriptor set is produced by our own build script from our own
        // protos; failing to decode it is a build defect, caught by every test.
        let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("embedded descriptor set is invalid: {e}"));
        let product = pool
            .get_message_by_name(PRODUCT_MESSAGE)
            .unwrap_or_else(|| panic!("{PRODUCT_MESSAGE} missing from descriptor set"));
        let extension = pool
            .get_extension_by_name("google.api.field_behavior")
            .unwrap_or_else(|| panic!("google.api.field_behavior missing from descriptor set"));
        let mut behaviors = HashMap::default();
        let mut fields = HashMap::<usize, Vec<FieldInfo>, _>::default();
        for message in pool.all_messages() {
            for field in message.fields() {
                let options = field.options();
                let declared = options.get_extension(&extension);
                let mut b = Behaviors::default();
                if let Value::List(values) = declared.as_ref() {
                    for value in values {
                        match value.as_enum_number().and_then(|n| FieldBehavior::try_from(n).ok()) {
                            Some(FieldBehavior::Required) => b.required = true,
                            Some(FieldBehavior::OutputOnly) => b.output_only = true,
                            Some(FieldBehavior::Immutable) => b.immutable = true,
                            Some(FieldBehavior::Identifier) => b.identifier = true,
                            _ => {}
                        }
                    }
                }
                if b != Behaviors::default() {
                    behaviors.insert(field_key(&field), b);
                }
                let kind = field.kind();
                let holds_messages = match &kind {
                    Kind::Message(m) if field.is_map() => matches!(
                        m.map_entry_value_field().kind(),
                        Kind::Message(ref v) if !is_opaque_message(v)
                    ),
                    Kind::Message(m) => !is_opaque_message(m),
                    _ => false,
                };
                fields.entry(message_key(&message)).or_default().push(FieldInfo {
                    list: field.is_list(),
                    map: field.is_map(),
                    field,
                    behaviors: b,
                    kind,
                    holds_messages,
                    output_only_within: false,
                });
            }
        }
        mark_output_only_within(&mut fields);
        Schema {
            product,
            behaviors,
            fields,
        }
    })
}

/// Sets `output_only_within` on every field that needs it: repeated until
/// nothing changes, because messages may nest one another (even recursively).
fn mark_output_only_within(fields: &mut HashMap<usize, Vec<FieldInfo>, BuildHasherDefault<AddressHasher>>) {
    loop {
        let mut changed = false;
        let keys: Vec<usize> = fields.keys().copied().collect();
        for key in keys {
            let count = fields.get(&key).map_or(0, Vec::len);
            for i in 0..count {
                let info = &fields[&key][i];
                if !info.holds_messages || info.output_only_within {
                    continue;
                }
                // A map's entry message is a message of the pool like any other.
                let within = match &info.kind {
                    Kind::Message(inner) => fields
                        .get(&message_key(inner))
                        .is_some_and(|inner| inner.iter().any(|f| f.behaviors.output_only || f.output_only_within)),
                    _ => false,
                };
                if within && let Some(infos) = fields.get_mut(&key) {
                    infos[i].output_only_within = true;
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// The descriptor of `producthub.v1.Product`.
pub fn product_descriptor() -> MessageDescriptor {
    schema().product.clone()
}

/// The behaviours declared on `field` (all false when none are declared).
pub fn behaviors(field: &FieldDescriptor) -> Behaviors {
    schema().behaviors.get(&field_key(field)).copied().unwrap_or_default()
}

/// Converts a product to its reflective form, for generic field-mask work.
pub fn to_dynamic(product: &pb::Product) -> DynamicMessage {
    let mut message = DynamicMessage::new(product_descriptor());
    // Encoding a valid prost message and decoding it with its own descriptor
    // cannot fail; merge leaves the message empty only on a descriptor mismatch,
    // which the schema tests rule out.
    let _ = message.merge(product.encode_to_vec().as_slice());
    message
}

/// Converts the reflective form back to the generated product type.
pub fn from_dynamic(message: &DynamicMessage) -> pb::Product {
    pb::Product::decode(message.encode_to_vec().as_slice()).unwrap_or_default()
}

/// Whether a message type is treated as one value by field masks (well-known
/// types such as Timestamp are not addressed field by field).
pub fn is_opaque_message(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

/// Whether a message type is `google.protobuf.Struct`, whose keys field masks may
/// address like map keys.
pub fn is_struct(message: &MessageDescriptor) -> bool {
    message.full_name() == "google.protobuf.Struct"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str) -> FieldDescriptor {
        let mut message = product_descriptor();
        let mut found = None;
        for part in path.split('.') {
            let f = message.get_field_by_name(part).expect(part);
            if let prost_reflect::Kind::Message(m) = f.kind() {
                message = m;
            }
            found = Some(f);
        }
        found.unwrap()
    }

    #[test]
    fn behaviours_come_from_the_proto_annotations() {
        assert!(behaviors(&field("display_name")).required);
        assert!(behaviors(&field("uid")).output_only);
        assert!(behaviors(&field("name")).identifier);
        let model_id = behaviors(&field("iot.model_id"));
        assert!(model_id.required && model_id.immutable);
        assert!(behaviors(&field("licensing.public_key")).output_only);
        assert_eq!(behaviors(&field("description")), Behaviors::default());
    }

    #[test]
    fn dynamic_round_trip_keeps_every_field() {
        let product = pb::Product {
            name: "products/a".into(),
            display_name: "A".into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            iot: Some(pb::IotProfile {
                model_id: "m".into(),
                default_valid_days: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(from_dynamic(&to_dynamic(&product)), product);
    }
}
