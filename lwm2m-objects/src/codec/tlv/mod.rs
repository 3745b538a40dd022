//! The LwM2M TLV content format (`application/vnd.oma.lwm2m+tlv`, 11542; OMA LwM2M TS Core 1.1
//! §7.4.3, identical in TS 1.0 §6.4.3): the node-level [`decode`] and [`encode`], on top of the
//! checked zero-copy element reader ([`read`], [`Tlv`]; `reader.rs`) and the value encodings
//! ([`decode_value`], [`encode_value`]; `value.rs`).
//!
//! Every element is a type byte, an 8- or 16-bit identifier, an optional 8/16/24-bit length and
//! the value. TLV carries no types: values are typed through the [`ObjectModel`] by path, and a
//! resource the model does not know keeps its raw bytes as [`Value::Untyped`].
//!
//! Nesting is bounded by construction: an object instance holds resources and multiple
//! resources, a multiple resource holds resource instances, and nothing else nests, so no input
//! goes deeper than three levels. Lengths are checked against the remaining input before any
//! value is looked at; decoding slices the payload and never allocates by a declared length.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, declared_type};
use crate::model::ObjectModel;
use crate::node::{Node, ObjectInstance, Resource, ResourceValue, TreeError};
use crate::path::{MAX_ID, Path};
use crate::value::Value;

mod reader;
mod value;

pub use reader::{Tlv, TlvKind, TlvReader, read};
pub use value::{decode_value, encode_value};

const FORMAT: ContentFormat = ContentFormat::Tlv;

/// The largest value a TLV element can carry: the length field is at most 24 bits (§7.4.3).
pub const MAX_VALUE_LEN: usize = 0xFF_FFFF;

// ---------------------------------------------------------------------------------------------
// Decoding a node
// ---------------------------------------------------------------------------------------------

/// Decodes a TLV payload answering `requested` (a Read response, a notification, or a Write
/// body). The requested path decides the expected shape (TS Core 1.1 §7.4.3):
/// - `/o`: object-instance TLVs;
/// - `/o/i`: resource and multiple-resource TLVs (or one object-instance TLV with ID `i` around
///   them);
/// - `/o/i/r`: one resource TLV or one multiple-resource TLV;
/// - `/o/i/r/ri`: one resource-instance TLV.
///
/// The root path cannot be carried in TLV.
pub fn decode(requested: &Path, bytes: &[u8], model: &ObjectModel) -> Result<Node, DecodeError> {
    let decoder = NodeDecoder { model };
    match *requested {
        Path::Root => Err(DecodeError::new(
            FORMAT,
            DecodeErrorKind::Unsupported("the root path (TLV starts at object level)".into()),
        )
        .with_path(*requested)),
        Path::Object(o) => decoder.object(o, bytes),
        Path::Instance(o, i) => decoder.instance_at_path(o, i, bytes).map(Node::Instance),
        Path::Resource(o, i, r) => decoder.resource_at_path(*requested, o, i, r, bytes),
        Path::ResourceInstance(o, i, r, ri) => {
            decoder.resource_instance_at_path(*requested, o, i, r, ri, bytes)
        }
    }
}

fn bad_nesting(tlv: &Tlv<'_>, parent: Path) -> DecodeError {
    DecodeError::new(FORMAT, DecodeErrorKind::BadNesting)
        .at(tlv.offset)
        .with_path(parent)
}

fn duplicate(tlv: &Tlv<'_>, path: Path) -> DecodeError {
    DecodeError::new(
        FORMAT,
        DecodeErrorKind::Syntax(format!(
            "{} ID {} appears twice",
            tlv.kind.describe(),
            tlv.id
        )),
    )
    .at(tlv.offset)
    .with_path(path)
}

fn outside_request(tlv: &Tlv<'_>, requested: Path, path: Path) -> DecodeError {
    DecodeError::new(FORMAT, TreeError::OutsideRequest { requested, path })
        .at(tlv.offset)
        .with_path(path)
}

struct NodeDecoder<'m> {
    model: &'m ObjectModel,
}

impl NodeDecoder<'_> {
    /// Types the value of a resource or resource instance at `path` through the model.
    fn value(&self, path: Path, tlv: &Tlv<'_>) -> Result<Value, DecodeError> {
        match declared_type(self.model, &path) {
            None => Ok(Value::Untyped(tlv.value.to_vec())),
            Some(ty) => decode_value(ty, tlv.value).map_err(|kind| {
                DecodeError::new(FORMAT, kind)
                    .at(tlv.value_offset)
                    .with_path(path)
            }),
        }
    }

    fn object(&self, o: u16, bytes: &[u8]) -> Result<Node, DecodeError> {
        let object_path = Path::Object(o);
        let mut instances: BTreeMap<u16, ObjectInstance> = BTreeMap::new();
        // Lenient: some clients answer a Read of a single-instance object (e.g. /3) with the
        // resource TLVs of its only instance and no object-instance TLV around them (Leshan
        // accepts this too). The instance of a single-instance object is always 0 (TS Core 1.1
        // §6.1), so nothing is guessed; for multiple-instance objects the ID would be unknown.
        let single_instance = self.model.object(o).is_some_and(|def| !def.multiple);
        let mut bare: Option<ObjectInstance> = None;
        for tlv in read(bytes) {
            let tlv = tlv?;
            match tlv.kind {
                TlvKind::ObjectInstance if bare.is_none() => {
                    let inst = self.instance_content(o, tlv.id, tlv.children())?;
                    match instances.entry(tlv.id) {
                        Entry::Occupied(_) => {
                            return Err(duplicate(&tlv, Path::Instance(o, tlv.id)));
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(inst);
                        }
                    }
                }
                TlvKind::ResourceValue | TlvKind::MultipleResource
                    if single_instance && instances.is_empty() =>
                {
                    let inst = bare.get_or_insert_with(|| ObjectInstance {
                        id: 0,
                        ..Default::default()
                    });
                    self.add_resource(o, inst, &tlv)?;
                }
                _ => return Err(bad_nesting(&tlv, object_path)),
            }
        }
        if let Some(inst) = bare {
            instances.insert(0, inst);
        }
        Ok(Node::Object { id: o, instances })
    }

    /// The resources of instance `/o/i` from the resource and multiple-resource TLVs `elements`.
    fn instance_content<'a>(
        &self,
        o: u16,
        i: u16,
        elements: impl Iterator<Item = Result<Tlv<'a>, DecodeError>>,
    ) -> Result<ObjectInstance, DecodeError> {
        let mut inst = ObjectInstance {
            id: i,
            ..Default::default()
        };
        for tlv in elements {
            let tlv = tlv?;
            match tlv.kind {
                TlvKind::ResourceValue | TlvKind::MultipleResource => {
                    self.add_resource(o, &mut inst, &tlv)?;
                }
                _ => return Err(bad_nesting(&tlv, Path::Instance(o, i))),
            }
        }
        Ok(inst)
    }

    fn add_resource(
        &self,
        o: u16,
        inst: &mut ObjectInstance,
        tlv: &Tlv<'_>,
    ) -> Result<(), DecodeError> {
        let resource = self.resource(o, inst.id, tlv)?;
        match inst.resources.entry(tlv.id) {
            Entry::Occupied(_) => Err(duplicate(tlv, Path::Resource(o, inst.id, tlv.id))),
            Entry::Vacant(slot) => {
                slot.insert(resource);
                Ok(())
            }
        }
    }

    /// A resource TLV or multiple-resource TLV inside instance `/o/i`.
    fn resource(&self, o: u16, i: u16, tlv: &Tlv<'_>) -> Result<Resource, DecodeError> {
        let path = Path::Resource(o, i, tlv.id);
        match tlv.kind {
            TlvKind::ResourceValue => Ok(Resource::single(tlv.id, self.value(path, tlv)?)),
            TlvKind::MultipleResource => {
                let values = self.resource_instances(o, i, tlv.id, tlv.children())?;
                Ok(Resource {
                    id: tlv.id,
                    value: ResourceValue::Multiple(values),
                })
            }
            _ => Err(bad_nesting(tlv, Path::Instance(o, i))),
        }
    }

    /// The instances of `/o/i/r` from resource-instance TLVs.
    fn resource_instances<'a>(
        &self,
        o: u16,
        i: u16,
        r: u16,
        elements: impl Iterator<Item = Result<Tlv<'a>, DecodeError>>,
    ) -> Result<BTreeMap<u16, Value>, DecodeError> {
        let mut values = BTreeMap::new();
        for tlv in elements {
            let tlv = tlv?;
            let path = Path::ResourceInstance(o, i, r, tlv.id);
            if tlv.kind != TlvKind::ResourceInstance {
                return Err(bad_nesting(&tlv, Path::Resource(o, i, r)));
            }
            let value = self.value(path, &tlv)?;
            match values.entry(tlv.id) {
                Entry::Occupied(_) => return Err(duplicate(&tlv, path)),
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
            }
        }
        Ok(values)
    }

    /// The top-level elements; at most the input length / 2 of them (each is at least 2 bytes).
    fn elements<'a>(bytes: &'a [u8]) -> Result<Vec<Tlv<'a>>, DecodeError> {
        read(bytes).collect()
    }

    /// Strips one object-instance TLV around the content of `/o/i` (TS Core 1.1 §7.4.3.2 allows
    /// a Read of an instance to be answered either way). Returns the elements inside it, or the
    /// top-level elements unchanged when there is no wrapper.
    fn unwrap_instance<'a>(
        requested: Path,
        o: u16,
        i: u16,
        top: Vec<Tlv<'a>>,
    ) -> Result<Vec<Tlv<'a>>, DecodeError> {
        let Some(first_wrapper) = top.iter().position(|t| t.kind == TlvKind::ObjectInstance) else {
            return Ok(top);
        };
        if top.len() > 1 {
            // An object-instance TLV next to anything else: point at whichever element breaks
            // the "exactly one wrapper" shape.
            let culprit = if first_wrapper == 0 {
                &top[1]
            } else {
                &top[first_wrapper]
            };
            return Err(bad_nesting(culprit, requested));
        }
        let wrapper = &top[first_wrapper];
        if wrapper.id != i {
            return Err(outside_request(
                wrapper,
                requested,
                Path::Instance(o, wrapper.id),
            ));
        }
        wrapper.children().collect()
    }

    fn instance_at_path(
        &self,
        o: u16,
        i: u16,
        bytes: &[u8],
    ) -> Result<ObjectInstance, DecodeError> {
        let top = Self::elements(bytes)?;
        let content = Self::unwrap_instance(Path::Instance(o, i), o, i, top)?;
        self.instance_content(o, i, content.into_iter().map(Ok))
    }

    fn resource_at_path(
        &self,
        requested: Path,
        o: u16,
        i: u16,
        r: u16,
        bytes: &[u8],
    ) -> Result<Node, DecodeError> {
        let top = Self::elements(bytes)?;
        // Lenient, as Leshan is: an object-instance TLV with the requested instance ID around
        // the resource.
        let content = Self::unwrap_instance(requested, o, i, top)?;
        let declared_multiple = self.model.resource(o, r).is_some_and(|def| def.multiple);
        match content.as_slice() {
            [] if declared_multiple => {
                // A multiple-instance resource with no instances may come as an empty payload.
                Ok(Node::Resource(Resource::multiple(r, std::iter::empty())))
            }
            [] => Err(DecodeError::new(FORMAT, TreeError::Empty { requested })
                .at(0)
                .with_path(requested)),
            [only]
                if matches!(
                    only.kind,
                    TlvKind::ResourceValue | TlvKind::MultipleResource
                ) =>
            {
                if only.id != r {
                    return Err(outside_request(
                        only,
                        requested,
                        Path::Resource(o, i, only.id),
                    ));
                }
                self.resource(o, i, only).map(Node::Resource)
            }
            elements if elements.iter().all(|t| t.kind == TlvKind::ResourceInstance) => {
                // Lenient: bare resource-instance TLVs without the multiple-resource TLV around
                // them; some clients answer a Read of a multiple resource this way and Leshan
                // accepts it.
                let values = self.resource_instances(o, i, r, elements.iter().copied().map(Ok))?;
                Ok(Node::Resource(Resource {
                    id: r,
                    value: ResourceValue::Multiple(values),
                }))
            }
            [first, ..]
                if !matches!(
                    first.kind,
                    TlvKind::ResourceValue | TlvKind::MultipleResource
                ) =>
            {
                Err(bad_nesting(first, requested))
            }
            // A resource followed by anything: the second element is the one that does not fit.
            [_, second, ..] => Err(bad_nesting(second, requested)),
            [only] => Err(bad_nesting(only, requested)),
        }
    }

    fn resource_instance_at_path(
        &self,
        requested: Path,
        o: u16,
        i: u16,
        r: u16,
        ri: u16,
        bytes: &[u8],
    ) -> Result<Node, DecodeError> {
        let top = Self::elements(bytes)?;
        match top.as_slice() {
            [] => Err(DecodeError::new(FORMAT, TreeError::Empty { requested })
                .at(0)
                .with_path(requested)),
            [only] if only.kind == TlvKind::ResourceInstance => {
                if only.id != ri {
                    let path = Path::ResourceInstance(o, i, r, only.id);
                    return Err(outside_request(only, requested, path));
                }
                Ok(Node::ResourceInstance {
                    id: ri,
                    value: self.value(requested, only)?,
                })
            }
            [first, ..] if first.kind != TlvKind::ResourceInstance => {
                Err(bad_nesting(first, requested))
            }
            [_, second, ..] => Err(bad_nesting(second, requested)),
            [only] => Err(bad_nesting(only, requested)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding a node
// ---------------------------------------------------------------------------------------------

/// Encodes `node`, found at `path`, as TLV. An object becomes object-instance TLVs; an object
/// instance becomes its resource TLVs without a wrapper (the form of TS Core 1.1 §7.4.3.2 for a
/// Read of `/o/i`); a resource one resource or multiple-resource TLV; a resource instance one
/// resource-instance TLV.
pub fn encode(path: &Path, node: &Node) -> Result<Vec<u8>, EncodeError> {
    let encoder = NodeEncoder { path: *path };
    let mut out = Vec::new();
    match (*path, node) {
        (Path::Root, _) => {
            return Err(EncodeError::Unsupported {
                format: FORMAT,
                path: *path,
                what: "the root path".into(),
            });
        }
        (Path::Object(o), Node::Object { id, instances }) if *id == o => {
            for (&key, inst) in instances {
                encoder.check_key("object instance", key, inst.id)?;
                let content = encoder.instance_content(inst)?;
                encoder.element(&mut out, TlvKind::ObjectInstance, key, &content)?;
            }
        }
        (Path::Instance(_, i), Node::Instance(inst)) if inst.id == i => {
            out = encoder.instance_content(inst)?;
        }
        (Path::Resource(..), Node::Resource(res)) if path.resource_id() == Some(res.id) => {
            encoder.resource(&mut out, res)?;
        }
        (Path::ResourceInstance(..), Node::ResourceInstance { id, value })
            if path.resource_instance_id() == Some(*id) =>
        {
            encoder.element(
                &mut out,
                TlvKind::ResourceInstance,
                *id,
                &encode_value(value),
            )?;
        }
        (_, other) => {
            return Err(EncodeError::PathMismatch {
                format: FORMAT,
                path: *path,
                reason: format!("got {}", describe_node(other)),
            });
        }
    }
    Ok(out)
}

fn describe_node(node: &Node) -> String {
    match node {
        Node::Object { id, .. } => format!("object {id}"),
        Node::Instance(inst) => format!("object instance {}", inst.id),
        Node::Resource(res) => format!("resource {}", res.id),
        Node::ResourceInstance { id, .. } => format!("resource instance {id}"),
    }
}

struct NodeEncoder {
    /// The path being encoded, for error messages.
    path: Path,
}

impl NodeEncoder {
    fn unsupported(&self, what: String) -> EncodeError {
        EncodeError::Unsupported {
            format: FORMAT,
            path: self.path,
            what,
        }
    }

    /// Map keys and the IDs stored in the nodes must agree, or the output would depend on which
    /// one we chose.
    fn check_key(&self, what: &str, key: u16, id: u16) -> Result<(), EncodeError> {
        if key == id {
            Ok(())
        } else {
            Err(EncodeError::PathMismatch {
                format: FORMAT,
                path: self.path,
                reason: format!("{what} stored under ID {key} says it is {id}"),
            })
        }
    }

    fn instance_content(&self, inst: &ObjectInstance) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        for (&key, res) in &inst.resources {
            self.check_key("resource", key, res.id)?;
            self.resource(&mut out, res)?;
        }
        Ok(out)
    }

    fn resource(&self, out: &mut Vec<u8>, res: &Resource) -> Result<(), EncodeError> {
        match &res.value {
            ResourceValue::Single(value) => {
                self.element(out, TlvKind::ResourceValue, res.id, &encode_value(value))
            }
            ResourceValue::Multiple(values) => {
                let mut content = Vec::new();
                for (&ri, value) in values {
                    self.element(
                        &mut content,
                        TlvKind::ResourceInstance,
                        ri,
                        &encode_value(value),
                    )?;
                }
                self.element(out, TlvKind::MultipleResource, res.id, &content)
            }
        }
    }

    /// Writes one element: type byte, identifier (8 bits when it fits), length (in the type byte
    /// when below 8, else the fewest of 8, 16 or 24 bits), value (TS Core 1.1 §7.4.3).
    fn element(
        &self,
        out: &mut Vec<u8>,
        kind: TlvKind,
        id: u16,
        value: &[u8],
    ) -> Result<(), EncodeError> {
        if id > MAX_ID {
            return Err(self.unsupported(format!("the reserved ID {id}")));
        }
        let len = value.len();
        if len > MAX_VALUE_LEN {
            return Err(self.unsupported(format!(
                "a value of {len} bytes (TLV lengths stop at {MAX_VALUE_LEN})"
            )));
        }
        let mut type_byte = kind.type_bits();
        if id > 0xFF {
            type_byte |= 0b0010_0000;
        }
        // `len` fits in 24 bits (checked above), so each cast below keeps every bit.
        let length_field: &[u8] = &(len as u32).to_be_bytes();
        let length_field = if len < 8 {
            type_byte |= len as u8;
            &length_field[4..]
        } else if len <= 0xFF {
            type_byte |= 0b01 << 3;
            &length_field[3..]
        } else if len <= 0xFFFF {
            type_byte |= 0b10 << 3;
            &length_field[2..]
        } else {
            type_byte |= 0b11 << 3;
            &length_field[1..]
        };
        out.push(type_byte);
        if id > 0xFF {
            out.extend_from_slice(&id.to_be_bytes());
        } else {
            out.push(id as u8);
        }
        out.extend_from_slice(length_field);
        out.extend_from_slice(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
