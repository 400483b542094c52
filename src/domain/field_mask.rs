//! Update masks (AIP-134, AIP-161): which fields of a product an update changes.
//!
//! Paths use proto field names and are resolved against the descriptor embedded
//! from the proto files, so every field the API declares is addressable without a
//! hand-kept list: `display_name`, `iot.model_id`, `monetization.plan.currency`.
//! A path may end in a map key (`labels.env`, or `` labels.`a.b` `` for keys that
//! are not identifiers) or in a key of a `google.protobuf.Struct`
//! (`iot.vendor_fields.someField`). Repeated fields are replaced whole: a path may
//! not go inside one.
//!
//! Merging follows one rule for every mask: a field named by the mask takes the
//! request's value, and is cleared when the request leaves it unset. Then the
//! server's own fields are put back: output-only and identifier fields keep their
//! stored values whatever the mask says, and an IMMUTABLE field left unset in the
//! request keeps its stored value, while one set to a different value is refused.

use prost::Message;
use prost::encoding::{self, WireType};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value};

use super::FieldViolation;
use super::schema::{self, behaviors, from_dynamic, to_dynamic};
use super::wire::{self, Malformed, WireValue};
use crate::pb::Product;

/// The most paths one mask may hold.
pub const MAX_PATHS: usize = 256;
/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// The field of the request message that carries the mask, for error reports.
const MASK_FIELD: &str = "update_mask";

/// A parsed update mask.
#[derive(Debug, Clone)]
pub enum UpdateMask {
    /// `*`: the request's product replaces the stored one.
    Full,
    /// Only these paths change.
    Paths(Vec<MaskPath>),
}

/// One resolved mask path.
#[derive(Debug, Clone)]
pub struct MaskPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Field(FieldDescriptor),
    /// A key of the map (or Struct) named by the step before; always last.
    Key(String),
}

impl MaskPath {
    /// The path as the client wrote it (or, for implied masks, as it would).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The proto field names along the path, without a trailing map key.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match s {
            Step::Field(f) => Some(f.name()),
            Step::Key(_) => None,
        })
    }

    /// Whether the server ignores this path: it names or runs through an
    /// output-only or identifier field, or the etag (which every write replaces).
    fn is_ignored(&self) -> bool {
        self.steps.iter().any(|step| match step {
            Step::Field(f) => {
                let b = behaviors(f);
                b.output_only || b.identifier || f.full_name() == "producthub.v1.Product.etag"
            }
            Step::Key(_) => false,
        })
    }
}

impl UpdateMask {
    /// Parses and resolves the paths of a `google.protobuf.FieldMask`, reporting
    /// every bad path (not just the first) against `update_mask`.
    pub fn parse(paths: &[String]) -> Result<Self, Vec<FieldViolation>> {
        if paths.len() > MAX_PATHS {
            return Err(vec![FieldViolation::new(
                MASK_FIELD,
                format!("has {} paths; at most {MAX_PATHS} are allowed", paths.len()),
            )]);
        }
        if paths.iter().any(|p| p == "*") {
            if paths.len() == 1 {
                return Ok(UpdateMask::Full);
            }
            return Err(vec![FieldViolation::new(
                MASK_FIELD,
                "`*` replaces the whole product and cannot be combined with other paths",
            )]);
        }
        let product = schema::product_descriptor();
        let mut resolved = Vec::with_capacity(paths.len());
        let mut violations = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            match resolve(&product, path) {
                Ok(steps) => resolved.push(MaskPath {
                    text: path.clone(),
                    steps,
                }),
                Err(why) => violations.push(FieldViolation::new(
                    format!("{MASK_FIELD}.paths[{index}]"),
                    format!("invalid path {path:?}: {why}"),
                )),
            }
        }
        if violations.is_empty() {
            Ok(UpdateMask::Paths(resolved))
        } else {
            Err(violations)
        }
    }

    /// The mask implied when a request has none: every field set in `patch`,
    /// descending into set sub-messages (so `iot { model_id: "m" }` implies only
    /// `iot.model_id`); maps and repeated fields count as one field each.
    /// Output-only fields are left out first, so a profile holding only those
    /// implies the (empty) profile itself, as merge will see it.
    pub fn implied_by(patch: &Product) -> Self {
        let mut patch = to_dynamic(patch);
        clear_output_only_fields(&mut patch);
        let mut paths = Vec::new();
        collect_set_fields(&patch, &mut Vec::new(), &mut paths);
        UpdateMask::Paths(paths)
    }

    /// The paths the merge will act on (output-only ones excluded); empty for `*`.
    pub fn effective_paths(&self) -> impl Iterator<Item = &MaskPath> {
        let paths: &[MaskPath] = match self {
            UpdateMask::Full => &[],
            UpdateMask::Paths(paths) => paths,
        };
        paths.iter().filter(|p| !p.is_ignored())
    }
}

/// Splits a path on dots, honouring backtick-quoted segments (a doubled backtick
/// inside quotes is a literal backtick).
fn split_segments(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("longer than {MAX_PATH_LEN} bytes"));
    }
    let mut segments = Vec::new();
    let mut chars = path.chars().peekable();
    loop {
        let mut segment = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            loop {
                match chars.next() {
                    Some('`') if chars.peek() == Some(&'`') => {
                        chars.next();
                        segment.push('`');
                    }
                    Some('`') => break,
                    Some(c) => segment.push(c),
                    None => return Err("a backtick-quoted segment is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    segments.push(segment);
                    return Ok(segments);
                }
                Some('.') => {}
                Some(c) => return Err(format!("unexpected {c:?} after a quoted segment")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        if segment.is_empty() {
                            return Err("a segment is empty".into());
                        }
                        segments.push(segment);
                        return Ok(segments);
                    }
                    Some('.') => break,
                    Some('`') => return Err("a backtick may only start a segment".into()),
                    Some(c) => segment.push(c),
                }
            }
            if segment.is_empty() {
                return Err("a segment is empty".into());
            }
        }
        segments.push(segment);
    }
}

fn resolve(root: &MessageDescriptor, path: &str) -> Result<Vec<Step>, String> {
    let segments = split_segments(path)?;
    let mut steps = Vec::with_capacity(segments.len());
    let mut message = root.clone();
    let mut iter = segments.into_iter().peekable();
    while let Some(segment) = iter.next() {
        let field = message
            .get_field_by_name(&segment)
            .ok_or_else(|| format!("{} has no field {segment:?}", message.full_name()))?;
        let has_more = iter.peek().is_some();
        let keyed = field.is_map() || matches!(field.kind(), Kind::Message(ref m) if schema::is_struct(m));
        steps.push(Step::Field(field.clone()));
        if !has_more {
            break;
        }
        if keyed {
            let key = iter.next().unwrap_or_default();
            if iter.peek().is_some() {
                return Err(format!("a path ends at a key of {:?}", field.name()));
            }
            steps.push(Step::Key(key));
            break;
        }
        if field.is_list() {
            return Err(format!(
                "{:?} is a repeated field and is replaced whole; end the path there",
                field.name()
            ));
        }
        match field.kind() {
            Kind::Message(m) if !schema::is_opaque_message(&m) => message = m,
            _ => return Err(format!("{:?} has no sub-fields", field.name())),
        }
    }
    Ok(steps)
}

fn collect_set_fields(message: &DynamicMessage, prefix: &mut Vec<FieldDescriptor>, out: &mut Vec<MaskPath>) {
    for (field, value) in message.fields() {
        prefix.push(field.clone());
        let before = out.len();
        if let (Value::Message(sub), false, false) = (value, field.is_list(), field.is_map())
            && !schema::is_opaque_message(&sub.descriptor())
        {
            collect_set_fields(sub, prefix, out);
        }
        let is_message = matches!(value, Value::Message(_)) && !field.is_list() && !field.is_map();
        // A sub-message with nothing set names nothing: without a mask, `iot {}`
        // must not wipe the stored profile (name `iot` in a mask to replace it).
        if out.len() == before && !is_message {
            out.push(MaskPath {
                text: prefix.iter().map(|f| f.name()).collect::<Vec<_>>().join("."),
                steps: prefix.iter().cloned().map(Step::Field).collect(),
            });
        }
        prefix.pop();
    }
}

/// Merges `patch` into `stored` under `mask` and returns the result, or the
/// violations (immutable fields changed) that forbid it. Output-only values in
/// `patch` are never taken.
pub fn merge(stored: &Product, patch: &Product, mask: &UpdateMask) -> Result<Product, Vec<FieldViolation>> {
    if let Some(merged) = merge_common_fields(stored, patch, mask) {
        return Ok(merged);
    }
    merge_reflective(stored, patch, mask)
}

/// The usual update (display name, description, version, labels, localized
/// names, or their keys) done on the typed product: none of these is
/// server-set or immutable, so there is nothing to restore or check. `None`
/// for any other mask, which takes the general path; a property test holds
/// the two equal.
fn merge_common_fields(stored: &Product, patch: &Product, mask: &UpdateMask) -> Option<Product> {
    let UpdateMask::Paths(_) = mask else { return None };
    let mut merged = stored.clone();
    for path in mask.effective_paths() {
        let (field, key) = match path.steps.as_slice() {
            [Step::Field(field)] => (field, None),
            [Step::Field(field), Step::Key(key)] => (field, Some(key.as_str())),
            _ => return None,
        };
        let (target, source) = match (field.name(), key) {
            ("display_name", None) => {
                merged.display_name.clone_from(&patch.display_name);
                continue;
            }
            ("description", None) => {
                merged.description.clone_from(&patch.description);
                continue;
            }
            ("version", None) => {
                merged.version.clone_from(&patch.version);
                continue;
            }
            ("labels", _) => (&mut merged.labels, &patch.labels),
            ("localized_display_names", _) => (&mut merged.localized_display_names, &patch.localized_display_names),
            _ => return None,
        };
        match key {
            None => target.clone_from(source),
            Some(key) => match source.get(key) {
                Some(value) => {
                    target.insert(key.to_owned(), value.clone());
                }
                None => {
                    target.remove(key);
                }
            },
        }
    }
    Some(merged)
}

fn merge_reflective(stored: &Product, patch: &Product, mask: &UpdateMask) -> Result<Product, Vec<FieldViolation>> {
    let mut patch = to_dynamic(patch);
    clear_output_only_fields(&mut patch);
    let before = to_dynamic(stored);
    let mut merged = match mask {
        UpdateMask::Full => patch.clone(),
        UpdateMask::Paths(_) => {
            let mut merged = before.clone();
            for path in mask.effective_paths() {
                apply_path(&mut merged, Some(&patch), &path.steps);
            }
            merged
        }
    };
    restore_server_fields(&before, &mut merged);
    let mut violations = Vec::new();
    check_immutable(&before, &merged, &mut String::from("product"), &mut violations);
    if violations.is_empty() {
        Ok(from_dynamic(&merged))
    } else {
        Err(violations)
    }
}

/// The paths a client can name that differ between two versions of a product:
/// top-level fields, and inside a profile present in both (`iot`, ...) its
/// own fields (`iot.tags`). What a `*` update really changed, so each vendor
/// is sent those fields, cleared ones included, and nothing else.
pub fn changed_paths(before: &Product, after: &Product) -> Vec<String> {
    let (old, new) = (to_dynamic(before), to_dynamic(after));
    let mut out = Vec::new();
    for info in schema::fields(&old.descriptor()) {
        let field = &info.field;
        // `etag` and `name` are the request's bookkeeping, not data a vendor holds.
        let bookkeeping = matches!(field.name(), "etag" | "name");
        let same = old.has_field(field) == new.has_field(field) && old.get_field(field) == new.get_field(field);
        if info.behaviors.output_only || info.behaviors.identifier || bookkeeping || same {
            continue;
        }
        let profile = info.holds_messages && !info.list && !info.map && old.has_field(field) && new.has_field(field);
        match (profile, old.get_field(field).as_ref(), new.get_field(field).as_ref()) {
            (true, Value::Message(old_sub), Value::Message(new_sub)) => {
                for sub in schema::fields(&old_sub.descriptor()) {
                    let client_set = !sub.behaviors.output_only && !sub.behaviors.identifier;
                    if client_set && old_sub.get_field(&sub.field) != new_sub.get_field(&sub.field) {
                        out.push(format!("{}.{}", field.name(), sub.field.name()));
                    }
                }
            }
            _ => out.push(field.name().to_owned()),
        }
    }
    out
}

/// Takes into `product`'s `profile` (e.g. `licensing`) the output-only fields a
/// vendor assigned, from `assigned`, the vendor's whole copy as it just read
/// or answered it (imported): each such field takes the vendor's value, set
/// or empty. Items of repeated fields are matched by their `key` where they
/// have one; items without one only when the lists hold the same items apart
/// from what the vendor assigns (a newer change may have reordered them).
/// Nothing a client may set is touched, so this never changes the product's
/// own data.
pub fn adopt_output_only(product: &mut Product, assigned: &Product, profile: &str) {
    let source = to_dynamic(assigned);
    let mut target = to_dynamic(product);
    let Some(field) = target.descriptor().get_field_by_name(profile) else {
        return;
    };
    if !source.has_field(&field) || !target.has_field(&field) {
        return;
    }
    if let (Value::Message(from), Value::Message(into)) =
        (source.get_field(&field).as_ref(), target.get_field_mut(&field))
    {
        adopt_fields(from, into);
    }
    *product = from_dynamic(&target);
}

fn adopt_fields(from: &DynamicMessage, into: &mut DynamicMessage) {
    for info in schema::fields(&from.descriptor()) {
        let field = &info.field;
        if info.behaviors.output_only {
            if from.has_field(field) {
                into.set_field(field, from.get_field(field).into_owned());
            } else {
                into.clear_field(field);
            }
            continue;
        }
        if !info.holds_messages || info.map || !from.has_field(field) || !into.has_field(field) {
            continue;
        }
        let source = from.get_field(field);
        match (source.as_ref(), into.get_field_mut(field)) {
            (Value::List(sources), Value::List(targets)) => {
                let Kind::Message(item_type) = field.kind() else {
                    continue;
                };
                let key = item_type.get_field_by_name("key");
                if key.is_none() && !same_items(sources, targets) {
                    continue;
                }
                for (index, target) in targets.iter_mut().enumerate() {
                    let Value::Message(target) = target else { continue };
                    let counterpart = match &key {
                        Some(key) => sources.iter().find(|s| match s {
                            Value::Message(s) => s.get_field(key) == target.get_field(key),
                            _ => false,
                        }),
                        None => sources.get(index),
                    };
                    if let Some(Value::Message(source)) = counterpart {
                        adopt_fields(source, target);
                    }
                }
            }
            (Value::Message(source), Value::Message(target)) => adopt_fields(source, target),
            _ => {}
        }
    }
}

/// Whether two lists of messages hold the same items, in order, apart from
/// their output-only fields.
fn same_items(a: &[Value], b: &[Value]) -> bool {
    let client_part = |value: &Value| match value {
        Value::Message(m) => {
            let mut m = m.clone();
            clear_output_only_fields(&mut m);
            Some(m)
        }
        _ => None,
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| client_part(x) == client_part(y))
}

/// Clears every output-only field of a product taken from a client, however deep
/// (inside repeated and map values too).
///
/// Works on the product's encoding: the fields are dropped from the bytes
/// (see [`strip_output_only`]) and the product is decoded again only if one
/// was there, which is much cheaper than the reflective walk it replaced (it
/// was the largest single cost of a CreateProduct in a profile under h2load).
pub fn clear_output_only(product: &mut Product) {
    let bytes = product.encode_to_vec();
    let mut kept = Vec::with_capacity(bytes.len());
    // Bytes prost just wrote always walk and decode again; should they not,
    // the reflective walk still gives the right answer (and tests fail).
    match strip_output_only(&schema::product_descriptor(), &bytes, &mut kept) {
        Ok(false) => {}
        Ok(true) => match Product::decode(kept.as_slice()) {
            Ok(cleared) => *product = cleared,
            Err(_) => {
                debug_assert!(false, "a product without its output-only fields does not decode");
                *product = cleared_by_reflection(product);
            }
        },
        Err(Malformed) => {
            debug_assert!(false, "prost's own encoding of a product does not walk");
            *product = cleared_by_reflection(product);
        }
    }
}

/// [`clear_output_only`] on the reflective form.
fn cleared_by_reflection(product: &Product) -> Product {
    let mut message = to_dynamic(product);
    clear_output_only_fields(&mut message);
    from_dynamic(&message)
}

/// Copies the encoded `message` in `input` to `out` without its output-only
/// fields, however deep (in nested, repeated and map-valued messages); true
/// if any was dropped. Fields the descriptor does not know are kept as sent.
fn strip_output_only(message: &MessageDescriptor, input: &[u8], out: &mut Vec<u8>) -> Result<bool, Malformed> {
    let fields = schema::fields(message);
    let mut dropped = false;
    for field in wire::fields(input) {
        let field = field?;
        let info = fields.iter().find(|info| info.field.number() == field.number);
        if info.is_some_and(|info| info.behaviors.output_only) {
            dropped = true;
            continue;
        }
        // A nested message (a map field's entry message, for a map) that
        // has output-only fields of its own loses them too.
        if let Some(info) = info.filter(|info| info.output_only_within)
            && let (Kind::Message(nested), WireValue::LengthDelimited(body)) = (&info.kind, field.value)
        {
            let mut inner = Vec::with_capacity(body.len());
            if strip_output_only(nested, body, &mut inner)? {
                dropped = true;
                encoding::encode_key(field.number, WireType::LengthDelimited, out);
                encoding::encode_varint(inner.len() as u64, out);
                out.extend_from_slice(&inner);
                continue;
            }
        }
        out.extend_from_slice(field.raw);
    }
    Ok(dropped)
}

fn clear_output_only_fields(message: &mut DynamicMessage) {
    let descriptor = message.descriptor();
    for info in schema::fields(&descriptor) {
        let field = &info.field;
        if info.behaviors.output_only {
            message.clear_field(field);
            continue;
        }
        if !info.holds_messages || !message.has_field(field) {
            continue;
        }
        match message.get_field_mut(field) {
            Value::Message(sub) => clear_output_only_fields(sub),
            Value::List(items) => items.iter_mut().for_each(|item| {
                if let Value::Message(sub) = item {
                    clear_output_only_fields(sub)
                }
            }),
            Value::Map(entries) => entries.values_mut().for_each(|item| {
                if let Value::Message(sub) = item {
                    clear_output_only_fields(sub)
                }
            }),
            _ => {}
        }
    }
}

/// Applies one path: the field (or map entry) takes the patch's value, or is
/// removed when the patch has none. Clearing never creates a missing parent.
fn apply_path(target: &mut DynamicMessage, patch: Option<&DynamicMessage>, steps: &[Step]) {
    let Some(Step::Field(field)) = steps.first() else {
        return;
    };
    let patch_value = patch.filter(|p| p.has_field(field)).map(|p| p.get_field(field));
    match &steps[1..] {
        [] => match patch_value {
            Some(value) => target.set_field(field, value.into_owned()),
            None => target.clear_field(field),
        },
        [Step::Key(key)] => {
            let key = MapKey::String(key.clone());
            let new_value = patch_value.and_then(|v| keyed_entries(&v).and_then(|m| m.get(&key).cloned()));
            if new_value.is_none() && !target.has_field(field) {
                return;
            }
            if let Some(entries) = keyed_entries_mut(target.get_field_mut(field)) {
                match new_value {
                    Some(value) => {
                        entries.insert(key, value);
                    }
                    None => {
                        entries.remove(&key);
                    }
                }
            }
            // A map or Struct left empty is the same as an unset one; keep the
            // stored form canonical so equal products encode equally.
            if keyed_entries(&target.get_field(field)).is_some_and(|m| m.is_empty()) {
                target.clear_field(field);
            }
        }
        rest => {
            let sub_patch = patch_value.and_then(|v| match v.into_owned() {
                Value::Message(m) => Some(m),
                _ => None,
            });
            // Clearing inside a missing parent changes nothing; only setting a
            // value may create the parent.
            if !target.has_field(field) && !sets_value(sub_patch.as_ref(), rest) {
                return;
            }
            if let Value::Message(sub_target) = target.get_field_mut(field) {
                apply_path(sub_target, sub_patch.as_ref(), rest);
            }
        }
    }
}

/// Whether `patch` holds a value at `steps` (a set field, or a present key).
fn sets_value(patch: Option<&DynamicMessage>, steps: &[Step]) -> bool {
    let (Some(patch), Some(Step::Field(field))) = (patch, steps.first()) else {
        return false;
    };
    if !patch.has_field(field) {
        return false;
    }
    match &steps[1..] {
        [] => true,
        [Step::Key(key)] => {
            keyed_entries(&patch.get_field(field)).is_some_and(|m| m.contains_key(&MapKey::String(key.clone())))
        }
        rest => match patch.get_field(field).as_ref() {
            Value::Message(sub) => sets_value(Some(sub), rest),
            _ => false,
        },
    }
}

/// The entries of a map value, or of a Struct's `fields` map.
fn keyed_entries(value: &Value) -> Option<&std::collections::HashMap<MapKey, Value>> {
    match value {
        Value::Map(entries) => Some(entries),
        Value::Message(message) => message.get_field_by_name("fields").and_then(|v| match v {
            std::borrow::Cow::Borrowed(Value::Map(entries)) => Some(entries),
            _ => None,
        }),
        _ => None,
    }
}

fn keyed_entries_mut(value: &mut Value) -> Option<&mut std::collections::HashMap<MapKey, Value>> {
    match value {
        Value::Map(entries) => Some(entries),
        Value::Message(message) => match message.get_field_by_name_mut("fields") {
            Some(Value::Map(entries)) => Some(entries),
            _ => None,
        },
        _ => None,
    }
}

/// Puts back what only the server may set: output-only and identifier fields take
/// their stored values, and IMMUTABLE fields left unset keep their stored values.
/// Descends into singular sub-messages present in both.
fn restore_server_fields(stored: &DynamicMessage, merged: &mut DynamicMessage) {
    let descriptor = stored.descriptor();
    for info in schema::fields(&descriptor) {
        let field = &info.field;
        let b = info.behaviors;
        let keep_stored = b.output_only || b.identifier || (b.immutable && !merged.has_field(field));
        if keep_stored {
            if stored.has_field(field) {
                merged.set_field(field, stored.get_field(field).into_owned());
            } else {
                merged.clear_field(field);
            }
            continue;
        }
        if !info.holds_messages || info.map || !stored.has_field(field) || !merged.has_field(field) {
            continue;
        }
        if info.list {
            restore_list_items(field, stored, merged);
            continue;
        }
        if let (Value::Message(stored_sub), Value::Message(merged_sub)) =
            (stored.get_field(field).as_ref(), merged.get_field_mut(field))
        {
            restore_server_fields(stored_sub, merged_sub);
        }
    }
}

/// Output-only fields inside the items of a repeated message field (Cryptlex
/// metadata ids, Revenium tier bounds) follow their item: matched by its `key`
/// field where it has one, else by position.
fn restore_list_items(field: &FieldDescriptor, stored: &DynamicMessage, merged: &mut DynamicMessage) {
    let Kind::Message(item_type) = field.kind() else { return };
    let key_field = item_type.get_field_by_name("key");
    let stored_value = stored.get_field(field);
    let Value::List(stored_items) = stored_value.as_ref() else {
        return;
    };
    let Value::List(merged_items) = merged.get_field_mut(field) else {
        return;
    };
    for (index, item) in merged_items.iter_mut().enumerate() {
        let Value::Message(merged_item) = item else { continue };
        let counterpart = match &key_field {
            Some(key) => stored_items.iter().find(|s| match s {
                Value::Message(s) => s.get_field(key) == merged_item.get_field(key),
                _ => false,
            }),
            None => stored_items.get(index),
        };
        match counterpart {
            Some(Value::Message(stored_item)) => restore_server_fields(stored_item, merged_item),
            _ => clear_output_only_fields(merged_item),
        }
    }
}

fn check_immutable(stored: &DynamicMessage, merged: &DynamicMessage, path: &mut String, out: &mut Vec<FieldViolation>) {
    for info in schema::fields(&stored.descriptor()) {
        let field = &info.field;
        let relevant = info.behaviors.immutable || (info.holds_messages && !info.list && !info.map);
        if !relevant || !stored.has_field(field) || !merged.has_field(field) {
            continue;
        }
        let (old, new) = (stored.get_field(field), merged.get_field(field));
        if info.behaviors.immutable {
            if old != new {
                out.push(FieldViolation::new(
                    format!("{path}.{}", field.name()),
                    format!(
                        "is immutable: it cannot change once set (stored {}, requested {})",
                        show(field, &old),
                        show(field, &new)
                    ),
                ));
            }
            continue;
        }
        if let (Value::Message(old), Value::Message(new)) = (old.as_ref(), new.as_ref()) {
            let parent = path.len();
            path.push('.');
            path.push_str(field.name());
            check_immutable(old, new, path, out);
            path.truncate(parent);
        }
    }
}

/// The value at `path` (a top-level field, or a field of a profile, as
/// [`changed_paths`] names them) as protobuf JSON; `null` when it is unset.
pub fn value_json(product: &Product, path: &str) -> String {
    let mut message = to_dynamic(product);
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let Some(field) = message.descriptor().get_field_by_name(name) else {
            return "null".to_owned();
        };
        if !message.has_field(&field) {
            return "null".to_owned();
        }
        if names.peek().is_some() {
            match message.get_field(&field).as_ref() {
                Value::Message(sub) => {
                    let sub = sub.clone();
                    message = sub;
                    continue;
                }
                _ => return "null".to_owned(),
            }
        }
        // Only this field, in a message of its own, rendered the way the
        // JSON mapping renders it (enums by name, 64-bit numbers quoted).
        let mut only = DynamicMessage::new(message.descriptor());
        only.set_field(&field, message.get_field(&field).into_owned());
        return serde_json::to_value(&only)
            .ok()
            .and_then(|json| json.get(field.json_name()).cloned())
            .map_or_else(|| "null".to_owned(), |value| value.to_string());
    }
    "null".to_owned()
}

/// Clears every `google.protobuf.Struct` field (the vendors' unmodelled
/// `vendor_fields`), however deep.
pub fn clear_struct_fields(product: &mut Product) {
    let mut message = to_dynamic(product);
    clear_structs(&mut message);
    *product = from_dynamic(&message);
}

fn clear_structs(message: &mut DynamicMessage) {
    let descriptor = message.descriptor();
    for field in descriptor.fields() {
        let Kind::Message(kind) = field.kind() else {
            continue;
        };
        if schema::is_struct(&kind) {
            message.clear_field(&field);
            continue;
        }
        if schema::is_opaque_message(&kind) || !message.has_field(&field) {
            continue;
        }
        match message.get_field_mut(&field) {
            Value::Message(sub) => clear_structs(sub),
            Value::List(items) => items.iter_mut().for_each(|item| {
                if let Value::Message(sub) = item {
                    clear_structs(sub)
                }
            }),
            Value::Map(entries) => entries.values_mut().for_each(|item| {
                if let Value::Message(sub) = item {
                    clear_structs(sub)
                }
            }),
            _ => {}
        }
    }
}

/// A value as a client would write it: strings quoted, enums by name.
fn show(field: &FieldDescriptor, value: &Value) -> String {
    match (value, field.kind()) {
        (Value::String(s), _) => format!("{s:?}"),
        (Value::EnumNumber(n), Kind::Enum(e)) => e
            .get_value(*n)
            .map(|v| v.name().to_owned())
            .unwrap_or_else(|| n.to_string()),
        (other, _) => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
