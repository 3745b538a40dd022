//! The LwM2M TLV content format (`application/vnd.oma.lwm2m+tlv`, 11542; OMA LwM2M TS Core 1.1
//! §7.4.3, identical in TS 1.0 §6.4.3): a checked zero-copy element reader ([`read`], [`Tlv`]),
//! the value encodings, and the node-level [`decode`] and [`encode`].
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
use crate::value::{ObjLink, ResourceType, Value, ValueError};

const FORMAT: ContentFormat = ContentFormat::Tlv;

/// The largest value a TLV element can carry: the length field is at most 24 bits (§7.4.3).
pub const MAX_VALUE_LEN: usize = 0xFF_FFFF;

/// What a TLV element identifies: bits 7-6 of the type byte (TS Core 1.1 §7.4.3, Table 7.4.3-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvKind {
    /// `00`: an object instance; its value is resource and multiple-resource TLVs.
    ObjectInstance,
    /// `01`: one instance of a multiple-instance resource; its value is the instance's value.
    ResourceInstance,
    /// `10`: a multiple-instance resource; its value is resource-instance TLVs.
    MultipleResource,
    /// `11`: a single-instance resource with its value.
    ResourceValue,
}

impl TlvKind {
    fn from_type_byte(type_byte: u8) -> TlvKind {
        match type_byte >> 6 {
            0b00 => TlvKind::ObjectInstance,
            0b01 => TlvKind::ResourceInstance,
            0b10 => TlvKind::MultipleResource,
            _ => TlvKind::ResourceValue,
        }
    }

    fn type_bits(self) -> u8 {
        match self {
            TlvKind::ObjectInstance => 0b00 << 6,
            TlvKind::ResourceInstance => 0b01 << 6,
            TlvKind::MultipleResource => 0b10 << 6,
            TlvKind::ResourceValue => 0b11 << 6,
        }
    }

    /// Whether the value of this kind of element is a sequence of further TLV elements.
    pub fn is_container(self) -> bool {
        matches!(self, TlvKind::ObjectInstance | TlvKind::MultipleResource)
    }

    fn describe(self) -> &'static str {
        match self {
            TlvKind::ObjectInstance => "object instance",
            TlvKind::ResourceInstance => "resource instance",
            TlvKind::MultipleResource => "multiple resource",
            TlvKind::ResourceValue => "resource",
        }
    }
}

/// One TLV element as it sits in the payload: a view into the input, not a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub kind: TlvKind,
    /// The object instance, resource or resource instance ID (at most [`MAX_ID`]).
    pub id: u16,
    /// Offset of the element's type byte in the whole payload.
    pub offset: usize,
    /// Offset of the element's first value byte in the whole payload.
    pub value_offset: usize,
    /// The value bytes: raw for resources and resource instances, nested TLVs for containers.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The elements nested in this one's value (meaningful for containers; for a resource value
    /// it would read the value bytes as TLVs). Offsets stay relative to the whole payload.
    pub fn children(&self) -> TlvReader<'a> {
        TlvReader {
            bytes: self.value,
            pos: 0,
            base: self.value_offset,
            failed: false,
        }
    }
}

/// An iterator over the TLV elements of one level of a payload; it yields one error and then
/// stops when the input is malformed.
#[derive(Debug, Clone)]
pub struct TlvReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the whole payload, so errors and elements report absolute offsets.
    base: usize,
    failed: bool,
}

/// Reads the top-level TLV elements of `bytes`.
pub fn read(bytes: &[u8]) -> TlvReader<'_> {
    TlvReader {
        bytes,
        pos: 0,
        base: 0,
        failed: false,
    }
}

impl<'a> Iterator for TlvReader<'a> {
    type Item = Result<Tlv<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        match parse_element(self.bytes, self.pos, self.base) {
            Ok((tlv, next)) => {
                self.pos = next;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Big-endian unsigned integer of at most 8 bytes.
fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Parses the element starting at `bytes[pos]` (which exists); returns it and the position
/// after it. `base` is the offset of `bytes[0]` in the payload.
fn parse_element(bytes: &[u8], pos: usize, base: usize) -> Result<(Tlv<'_>, usize), DecodeError> {
    let start = base + pos;
    let truncated = || DecodeError::new(FORMAT, DecodeErrorKind::Truncated).at(start);
    let rest = bytes.get(pos..).unwrap_or_default();
    let (&type_byte, rest) = rest.split_first().ok_or_else(truncated)?;
    let kind = TlvKind::from_type_byte(type_byte);
    // Bit 5: identifier length; bits 4-3: length type; bits 2-0: the length when the type is 00.
    let id_len = if type_byte & 0b0010_0000 != 0 { 2 } else { 1 };
    let length_len = usize::from((type_byte >> 3) & 0b11);
    let id_bytes = rest.get(..id_len).ok_or_else(truncated)?;
    let length_bytes = rest
        .get(id_len..id_len + length_len)
        .ok_or_else(truncated)?;
    let id = be_uint(id_bytes);
    if id > u64::from(MAX_ID) {
        // TS Core §7.1: 65535 is reserved and never names an instance or resource.
        return Err(DecodeError::new(
            FORMAT,
            DecodeErrorKind::Syntax(format!(
                "identifier {id} is reserved (the maximum is {MAX_ID})"
            )),
        )
        .at(start + 1));
    }
    let len = if length_len == 0 {
        usize::from(type_byte & 0b111)
    } else {
        // At most 24 bits: always fits in usize.
        be_uint(length_bytes) as usize
    };
    let value_start = pos + 1 + id_len + length_len;
    let value_end = value_start.checked_add(len).ok_or_else(truncated)?;
    let value = bytes.get(value_start..value_end).ok_or_else(truncated)?;
    let tlv = Tlv {
        kind,
        id: id as u16,
        offset: start,
        value_offset: base + value_start,
        value,
    };
    Ok((tlv, value_end))
}

/// Reads a TLV value of the declared type `ty` (TS Core 1.1 §7.4.3.1 and Appendix C): integers
/// and times are 1, 2, 4 or 8 bytes of big-endian two's complement, unsigned integers 1, 2, 4 or
/// 8 bytes, floats 4 or 8 bytes of IEEE 754, booleans one byte 0 or 1, object links 4 bytes
/// (object ID, instance ID), strings UTF-8, opaque raw, none empty.
pub fn decode_value(ty: ResourceType, bytes: &[u8]) -> Result<Value, DecodeErrorKind> {
    let invalid_length = || DecodeErrorKind::InvalidLength {
        ty,
        len: bytes.len(),
    };
    Ok(match ty {
        ResourceType::String | ResourceType::Corelnk => {
            let text = std::str::from_utf8(bytes).map_err(|_| DecodeErrorKind::InvalidUtf8)?;
            if ty == ResourceType::String {
                Value::String(text.to_owned())
            } else {
                Value::Corelnk(text.to_owned())
            }
        }
        ResourceType::Integer | ResourceType::Time => {
            let v = match *bytes {
                [a] => i64::from(i8::from_be_bytes([a])),
                [a, b] => i64::from(i16::from_be_bytes([a, b])),
                [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
                _ => return Err(invalid_length()),
            };
            if ty == ResourceType::Time {
                Value::Time(v)
            } else {
                Value::Integer(v)
            }
        }
        ResourceType::UnsignedInteger => match bytes.len() {
            1 | 2 | 4 | 8 => Value::UnsignedInteger(be_uint(bytes)),
            _ => return Err(invalid_length()),
        },
        ResourceType::Float => match *bytes {
            [a, b, c, d] => Value::Float(f64::from(f32::from_be_bytes([a, b, c, d]))),
            [a, b, c, d, e, f, g, h] => Value::Float(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
            _ => return Err(invalid_length()),
        },
        ResourceType::Boolean => match *bytes {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            [other] => {
                return Err(DecodeErrorKind::Value(ValueError::OutOfRange {
                    expected: ResourceType::Boolean,
                    value: other.to_string(),
                }));
            }
            _ => return Err(invalid_length()),
        },
        ResourceType::Opaque => Value::Opaque(bytes.to_vec()),
        ResourceType::Objlnk => match *bytes {
            [a, b, c, d] => Value::Objlnk(ObjLink {
                object: u16::from_be_bytes([a, b]),
                instance: u16::from_be_bytes([c, d]),
            }),
            _ => return Err(invalid_length()),
        },
        ResourceType::None => {
            if !bytes.is_empty() {
                return Err(invalid_length());
            }
            Value::None
        }
    })
}

/// The TLV value bytes of `value`: integers in the fewest of 1, 2, 4 or 8 bytes, a float in 4
/// bytes only when it is exactly representable as an `f32`, untyped values as received.
pub fn encode_value(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) | Value::Corelnk(s) => s.as_bytes().to_vec(),
        Value::Integer(v) | Value::Time(v) => encode_signed(*v),
        Value::UnsignedInteger(v) => encode_unsigned(*v),
        Value::Float(v) => {
            let narrow = *v as f32;
            if f64::from(narrow) == *v {
                narrow.to_be_bytes().to_vec()
            } else {
                v.to_be_bytes().to_vec()
            }
        }
        Value::Boolean(b) => vec![u8::from(*b)],
        Value::Opaque(bytes) | Value::Untyped(bytes) => bytes.clone(),
        Value::Objlnk(link) => {
            let mut out = link.object.to_be_bytes().to_vec();
            out.extend_from_slice(&link.instance.to_be_bytes());
            out
        }
        Value::None => Vec::new(),
    }
}

fn encode_signed(v: i64) -> Vec<u8> {
    if let Ok(n) = i8::try_from(v) {
        n.to_be_bytes().to_vec()
    } else if let Ok(n) = i16::try_from(v) {
        n.to_be_bytes().to_vec()
    } else if let Ok(n) = i32::try_from(v) {
        n.to_be_bytes().to_vec()
    } else {
        v.to_be_bytes().to_vec()
    }
}

fn encode_unsigned(v: u64) -> Vec<u8> {
    if let Ok(n) = u8::try_from(v) {
        vec![n]
    } else if let Ok(n) = u16::try_from(v) {
        n.to_be_bytes().to_vec()
    } else if let Ok(n) = u32::try_from(v) {
        n.to_be_bytes().to_vec()
    } else {
        v.to_be_bytes().to_vec()
    }
}

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
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{ObjectDef, Operations, ResourceDef};
    use crate::test_support::{instance_of, value_of};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    fn model() -> &'static ObjectModel {
        ObjectModel::builtin()
    }

    fn string(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// Decodes and expects an error; returns it for assertions on kind, offset and path.
    fn decode_err(path: &str, bytes: &str) -> DecodeError {
        match decode(&p(path), &hex(bytes), model()) {
            Ok(node) => panic!("{path} {bytes}: decoded to {node:?}, expected an error"),
            Err(e) => e,
        }
    }

    // ---- Golden vectors -----------------------------------------------------------------------

    /// Read of /3/0 answered with resource TLVs: OMA LwM2M TS 1.0 §6.4.3.1 "Single Object
    /// Instance Request Example" (Device object), as carried by eclipse-leshan/leshan
    /// `leshan-core/src/test/java/org/eclipse/leshan/core/node/codec/LwM2mNodeDecoderTest.java`
    /// (`ENCODED_DEVICE_WITHOUT_INSTANCE`).
    const SPEC_DEVICE_RESOURCES: &str = "
        C800144F70656E204D6F62696C6520416C6C69616E6365
        C801164C69676874776569676874204D324D20436C69656E74
        C80209333435303030313233
        C303312E30
        86064100014101 05
        88070842000ED842011388
        870841007D42010384
        C10964
        C10A0F
        830B410000
        C40D5182428F
        C60E2B30323A3030
        C11055";

    /// The same instance inside one object-instance TLV: TS 1.0 §6.4.3.2 example A (Leshan
    /// `ENCODED_DEVICE_WITH_INSTANCE`).
    fn spec_device_with_instance() -> String {
        format!("080079{SPEC_DEVICE_RESOURCES}")
    }

    /// Access Control objects, two instances: TS 1.0 §6.4.3.2 example B (Leshan `ENCODED_ACL`).
    const SPEC_ACL_OBJECT: &str =
        "08000EC10001C101008302417F07C1037F 080212C10003C101008702417F0761013601C1037F";

    /// LwM2M Server object, one instance: TS 1.0 §6.4.3.2 example C (Leshan `ENCODED_SERVER`).
    const SPEC_SERVER_OBJECT: &str = "08000FC10001C40100015180C10601C10755";

    /// Object links, TS 1.0 §6.4.3.3 example 1 (object 65 instance 0; Leshan `ENCODED_OBJ65`).
    const SPEC_OBJ65_INSTANCE: &str =
        "88000C440000420000440100420001 C8010D38363133383030373535353030 C40212345678";

    /// Object links, TS 1.0 §6.4.3.3 example 2 (object 66, two instances; Leshan `ENCODED_OBJ66`).
    const SPEC_OBJ66_OBJECT: &str = "
        080026C8000B6D79536572766963652031C8010F496E7465726E65742E31352E323334C40200430000
        080126C8000B6D79536572766963652032C8010F496E7465726E65742E31352E323335C402FFFFFFFF";

    /// Wakaama's /3/0 as captured in eclipse-leshan/leshan
    /// `leshan-core/src/test/java/org/eclipse/leshan/core/tlv/TlvDecoderTest.java`
    /// (`decode_device_object`): like the spec example but with "U" in resource 15.
    const LESHAN_WAKAAMA_DEVICE: &str = "C800144F70656E204D6F62696C6520416C6C69616E6365C801164C69676874776569676874204D324D20436C69656E74C80209333435303030313233C303312E30860641000141010588070842000ED842011388870841007D42010384C10964C10A0F830B410000C40D5182428FC60E2B30323A3030C10F55";

    fn spec_device_instance() -> ObjectInstance {
        ObjectInstance::new(
            0,
            [
                Resource::single(0, string("Open Mobile Alliance")),
                Resource::single(1, string("Lightweight M2M Client")),
                Resource::single(2, string("345000123")),
                Resource::single(3, string("1.0")),
                Resource::multiple(6, [(0, Value::Integer(1)), (1, Value::Integer(5))]),
                Resource::multiple(
                    7,
                    [(0, Value::Integer(0x0ED8)), (1, Value::Integer(0x1388))],
                ),
                Resource::multiple(8, [(0, Value::Integer(125)), (1, Value::Integer(900))]),
                Resource::single(9, Value::Integer(100)),
                Resource::single(10, Value::Integer(15)),
                Resource::multiple(11, [(0, Value::Integer(0))]),
                Resource::single(13, Value::Time(1_367_491_215)),
                Resource::single(14, string("+02:00")),
                Resource::single(16, string("U")),
            ],
        )
    }

    #[test]
    fn spec_device_instance_decodes_and_encodes_byte_for_byte() {
        let bytes = hex(SPEC_DEVICE_RESOURCES);
        let node = decode(&p("/3/0"), &bytes, model()).unwrap();
        let Node::Instance(inst) = &node else {
            panic!("{node:?}")
        };
        assert_eq!(inst.value(0), Some(&string("Open Mobile Alliance")));
        assert_eq!(inst.value(1), Some(&string("Lightweight M2M Client")));
        assert_eq!(inst.value(2), Some(&string("345000123")));
        assert_eq!(inst.value(9), Some(&Value::Integer(100)));
        assert_eq!(inst.value(13), Some(&Value::Time(1_367_491_215)));
        assert_eq!(
            inst.resources[&7].value,
            ResourceValue::Multiple([(0, Value::Integer(3800)), (1, Value::Integer(5000))].into())
        );
        assert_eq!(inst, &spec_device_instance());
        // Our encoder produces exactly the spec's bytes (smallest lengths and integer widths).
        assert_eq!(encode(&p("/3/0"), &node).unwrap(), bytes);
    }

    #[test]
    fn spec_device_instance_wrapped_in_an_object_instance_tlv() {
        let bytes = hex(&spec_device_with_instance());
        let node = decode(&p("/3/0"), &bytes, model()).unwrap();
        assert_eq!(node, Node::Instance(spec_device_instance()));
        let object = decode(&p("/3"), &bytes, model()).unwrap();
        let expected = Node::Object {
            id: 3,
            instances: [(0, spec_device_instance())].into(),
        };
        assert_eq!(object, expected);
        assert_eq!(encode(&p("/3"), &expected).unwrap(), bytes);
    }

    #[test]
    fn bare_resources_for_a_single_instance_object_are_instance_0() {
        let node = decode(&p("/3"), &hex(SPEC_DEVICE_RESOURCES), model()).unwrap();
        assert_eq!(
            node,
            Node::Object {
                id: 3,
                instances: [(0, spec_device_instance())].into()
            }
        );
    }

    #[test]
    fn spec_single_resource_read_of_3_0_0() {
        // TS 1.0 §6.4.3.1: the Manufacturer resource alone, 8-bit length field.
        let bytes = hex("C800144F70656E204D6F62696C6520416C6C69616E6365");
        let node = decode(&p("/3/0/0"), &bytes, model()).unwrap();
        assert_eq!(
            node,
            Node::Resource(Resource::single(0, string("Open Mobile Alliance")))
        );
        assert_eq!(encode(&p("/3/0/0"), &node).unwrap(), bytes);
    }

    #[test]
    fn spec_access_control_object_with_two_instances() {
        let bytes = hex(SPEC_ACL_OBJECT);
        let node = decode(&p("/2"), &bytes, model()).unwrap();
        let Node::Object { id: 2, instances } = &node else {
            panic!("{node:?}")
        };
        assert_eq!(instances.len(), 2);
        let first = &instances[&0];
        assert_eq!(first.value(0), Some(&Value::Integer(1)));
        assert_eq!(first.value(1), Some(&Value::Integer(0)));
        assert_eq!(
            first.resources[&2].value,
            ResourceValue::Multiple([(127, Value::Integer(7))].into())
        );
        assert_eq!(first.value(3), Some(&Value::Integer(127)));
        let second = &instances[&2];
        assert_eq!(second.value(0), Some(&Value::Integer(3)));
        // Resource instance 310 uses a 16-bit identifier (type byte 0x61).
        assert_eq!(
            second.resources[&2].value,
            ResourceValue::Multiple([(127, Value::Integer(7)), (310, Value::Integer(1))].into())
        );
        assert_eq!(encode(&p("/2"), &node).unwrap(), bytes);
    }

    #[test]
    fn spec_server_object() {
        let bytes = hex(SPEC_SERVER_OBJECT);
        let node = decode(&p("/1"), &bytes, model()).unwrap();
        let Node::Object { id: 1, instances } = &node else {
            panic!("{node:?}")
        };
        let server = &instances[&0];
        assert_eq!(server.value(0), Some(&Value::Integer(1)));
        assert_eq!(server.value(1), Some(&Value::Integer(86400)));
        assert_eq!(server.value(6), Some(&Value::Boolean(true)));
        assert_eq!(server.value(7), Some(&string("U")));
        assert_eq!(encode(&p("/1"), &node).unwrap(), bytes);
    }

    /// Objects 65 and 66 of TS 1.0 §6.4.3.3 (Figure 28), as Leshan's test model defines them.
    fn object_link_model() -> ObjectModel {
        const fn res(id: u16, multiple: bool, ty: ResourceType) -> ResourceDef {
            ResourceDef {
                id,
                name: "res",
                operations: Operations::R,
                multiple,
                mandatory: false,
                ty,
                range: None,
                units: None,
            }
        }
        static OBJ65: ObjectDef = ObjectDef {
            id: 65,
            name: "object link tests 65",
            urn: "urn:oma:lwm2m:x:65",
            version: "1.0",
            lwm2m_version: "1.0",
            multiple: true,
            mandatory: false,
            resources: &[
                res(0, true, ResourceType::Objlnk),
                res(1, false, ResourceType::String),
                res(2, false, ResourceType::Integer),
            ],
        };
        static OBJ66: ObjectDef = ObjectDef {
            id: 66,
            name: "object link tests 66",
            urn: "urn:oma:lwm2m:x:66",
            version: "1.0",
            lwm2m_version: "1.0",
            multiple: true,
            mandatory: false,
            resources: &[
                res(0, false, ResourceType::String),
                res(1, false, ResourceType::String),
                res(2, false, ResourceType::Objlnk),
            ],
        };
        let mut model = ObjectModel::empty();
        model.insert(&OBJ65);
        model.insert(&OBJ66);
        model
    }

    #[test]
    fn spec_object_links() {
        let model = object_link_model();
        let link = |object, instance| Value::Objlnk(ObjLink { object, instance });

        let bytes = hex(SPEC_OBJ65_INSTANCE);
        let node = decode(&p("/65/0"), &bytes, &model).unwrap();
        let expected = ObjectInstance::new(
            0,
            [
                Resource::multiple(0, [(0, link(66, 0)), (1, link(66, 1))]),
                Resource::single(1, string("8613800755500")),
                Resource::single(2, Value::Integer(0x1234_5678)),
            ],
        );
        assert_eq!(node, Node::Instance(expected));
        assert_eq!(encode(&p("/65/0"), &node).unwrap(), bytes);

        let bytes = hex(SPEC_OBJ66_OBJECT);
        let node = decode(&p("/66"), &bytes, &model).unwrap();
        let Node::Object { instances, .. } = &node else {
            panic!("{node:?}")
        };
        assert_eq!(instances[&0].value(0), Some(&string("myService 1")));
        assert_eq!(instances[&0].value(1), Some(&string("Internet.15.234")));
        assert_eq!(instances[&0].value(2), Some(&link(67, 0)));
        assert_eq!(instances[&1].value(0), Some(&string("myService 2")));
        assert_eq!(instances[&1].value(2), Some(&Value::Objlnk(ObjLink::NULL)));
        assert_eq!(encode(&p("/66"), &node).unwrap(), bytes);
    }

    #[test]
    fn leshan_wakaama_device_capture() {
        let bytes = hex(LESHAN_WAKAAMA_DEVICE);
        let node = decode(&p("/3/0"), &bytes, model()).unwrap();
        let Node::Instance(inst) = &node else {
            panic!("{node:?}")
        };
        assert_eq!(inst.value(15), Some(&string("U")));
        assert_eq!(inst.value(14), Some(&string("+02:00")));
        assert_eq!(inst.resources.len(), 13);
        // TlvDecoderTest re-encodes and compares byte for byte; so do we.
        assert_eq!(encode(&p("/3/0"), &node).unwrap(), bytes);
    }

    #[test]
    fn leshan_object_link_values() {
        // TlvDecoderTest.decode_object_link.
        assert_eq!(
            decode_value(ResourceType::Objlnk, &hex("12345678")),
            Ok(Value::Objlnk(ObjLink {
                object: 0x1234,
                instance: 0x5678
            }))
        );
        assert_eq!(
            decode_value(ResourceType::Objlnk, &hex("ffffffff")),
            Ok(Value::Objlnk(ObjLink::NULL))
        );
    }

    #[test]
    fn leshan_broken_tlv_is_rejected() {
        // TlvDecoderTest.decode_broken_tlv: 00 11 is an empty object instance 0x11; 22 33 44
        // opens instance 0x3344 whose 2-byte value 55 66 starts a resource-instance TLV with a
        // 16-bit length field that the instance's value does not hold.
        let e = decode_err("/3", "0011223344556677889900");
        assert_eq!(e.kind, DecodeErrorKind::Truncated);
        assert_eq!(e.offset, Some(5));
    }

    #[test]
    fn multiple_resource_with_and_without_its_wrapper() {
        // LwM2mNodeDecoderTest.tlv_power_source__multiple_resource and __array_values.
        let expected = Node::Resource(Resource::multiple(
            6,
            [(0, Value::Integer(1)), (1, Value::Integer(5))],
        ));
        assert_eq!(
            decode(&p("/3/0/6"), &hex("86 06 41 00 01 41 01 05"), model()),
            Ok(expected.clone())
        );
        assert_eq!(
            decode(&p("/3/0/6"), &hex("41 00 01 41 01 05"), model()),
            Ok(expected.clone())
        );
        assert_eq!(
            encode(&p("/3/0/6"), &expected).unwrap(),
            hex("86 06 41 00 01 41 01 05")
        );
    }

    #[test]
    fn resource_inside_an_object_instance_tlv() {
        // LwM2mNodeDecoderTest.tlv_resource_with_undesired_object_instance: 00 00 08 around
        // C6 01 "client" (resource 1).
        let node = decode(&p("/3/0/1"), &hex("0800 08 C601636C69656E74"), model()).unwrap();
        assert_eq!(node, Node::Resource(Resource::single(1, string("client"))));
        // ... and with another instance ID it is outside the request.
        let e = decode_err("/3/0/1", "0801 08 C601636C69656E74");
        assert_eq!(
            e.kind,
            DecodeErrorKind::Tree(TreeError::OutsideRequest {
                requested: p("/3/0/1"),
                path: p("/3/1")
            })
        );
        assert_eq!(e.offset, Some(0));
    }

    #[test]
    fn empty_payloads() {
        // LwM2mNodeDecoderTest.tlv_empty_object / _instance / _single_resource / _multi_resource.
        assert_eq!(
            decode(&p("/2"), &[], model()),
            Ok(Node::Object {
                id: 2,
                instances: BTreeMap::new()
            })
        );
        assert_eq!(
            decode(&p("/2/0"), &[], model()),
            Ok(Node::Instance(ObjectInstance {
                id: 0,
                ..Default::default()
            }))
        );
        let e = decode_err("/2/0/0", "");
        assert_eq!(
            e.kind,
            DecodeErrorKind::Tree(TreeError::Empty {
                requested: p("/2/0/0")
            })
        );
        assert_eq!(e.offset, Some(0));
        assert_eq!(
            decode(&p("/3/0/6"), &[], model()),
            Ok(Node::Resource(Resource::multiple(6, std::iter::empty())))
        );
        let e = decode_err("/3/0/6/0", "");
        assert!(
            matches!(e.kind, DecodeErrorKind::Tree(TreeError::Empty { .. })),
            "{e}"
        );
    }

    #[test]
    fn unknown_objects_keep_raw_bytes() {
        let bytes = hex("C10164 C2024869 83034100 2A");
        let node = decode(&p("/10234/0"), &bytes, model()).unwrap();
        let expected = ObjectInstance::new(
            0,
            [
                Resource::single(1, Value::Untyped(vec![0x64])),
                Resource::single(2, Value::Untyped(b"Hi".to_vec())),
                Resource::multiple(3, [(0, Value::Untyped(vec![0x2A]))]),
            ],
        );
        assert_eq!(node, Node::Instance(expected));
        assert_eq!(encode(&p("/10234/0"), &node).unwrap(), bytes);
        // Unlike Leshan we do not guess an instance ID for bare resources of an unknown object.
        let e = decode_err("/10234", "C10164");
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadNesting, Some(0)));
    }

    // ---- Every resource type of objects 3, 4, 5, 6 and 7 --------------------------------------

    fn decoded_value(path: &str, bytes: &str) -> Value {
        match decode(&p(path), &hex(bytes), model()).unwrap() {
            Node::Resource(Resource {
                value: ResourceValue::Single(v),
                ..
            }) => v,
            Node::ResourceInstance { value, .. } => value,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn decodes_every_resource_type_through_the_model() {
        // String: /3/0/0 Manufacturer.
        assert_eq!(decoded_value("/3/0/0", "C300 616263"), string("abc"));
        // Integer: /3/0/9 Battery Level, in 1, 2, 4 and 8 bytes, two's complement.
        assert_eq!(decoded_value("/3/0/9", "C109 FF"), Value::Integer(-1));
        assert_eq!(decoded_value("/3/0/9", "C209 FF7F"), Value::Integer(-129));
        assert_eq!(
            decoded_value("/3/0/9", "C409 80000000"),
            Value::Integer(i64::from(i32::MIN))
        );
        assert_eq!(
            decoded_value("/3/0/9", "C80908 7FFFFFFFFFFFFFFF"),
            Value::Integer(i64::MAX)
        );
        // Integer in a multiple resource: /3/0/7 Power Source Voltage.
        assert_eq!(decoded_value("/3/0/7/1", "4201 1388"), Value::Integer(5000));
        // Unsigned Integer: /5/0/13 Maximum Defer Period.
        assert_eq!(
            decoded_value("/5/0/13", "C10D FF"),
            Value::UnsignedInteger(255)
        );
        assert_eq!(
            decoded_value("/5/0/13", "C20D FFFF"),
            Value::UnsignedInteger(65535)
        );
        assert_eq!(
            decoded_value("/5/0/13", "C40D FFFFFFFF"),
            Value::UnsignedInteger(u64::from(u32::MAX))
        );
        assert_eq!(
            decoded_value("/5/0/13", "C80D08 FFFFFFFFFFFFFFFF"),
            Value::UnsignedInteger(u64::MAX)
        );
        // Float: /6/0/0 Latitude, 4 and 8 bytes.
        assert_eq!(decoded_value("/6/0/0", "C400 3FC00000"), Value::Float(1.5));
        assert_eq!(
            decoded_value("/6/0/0", "C80008 3FB999999999999A"),
            Value::Float(0.1)
        );
        // Boolean: /5/0/14 Automatic Upgrade at Download.
        assert_eq!(decoded_value("/5/0/14", "C10E 01"), Value::Boolean(true));
        assert_eq!(decoded_value("/5/0/14", "C10E 00"), Value::Boolean(false));
        // Opaque: /5/0/0 Package and /6/0/4 Velocity.
        assert_eq!(
            decoded_value("/5/0/0", "C300 00FF10"),
            Value::Opaque(vec![0, 0xFF, 0x10])
        );
        assert_eq!(
            decoded_value("/6/0/4", "C204 ABCD"),
            Value::Opaque(vec![0xAB, 0xCD])
        );
        assert_eq!(decoded_value("/5/0/0", "C000"), Value::Opaque(vec![]));
        // Time: /3/0/13 Current Time and /6/0/5 Timestamp.
        assert_eq!(
            decoded_value("/3/0/13", "C40D 5182428F"),
            Value::Time(1_367_491_215)
        );
        assert_eq!(decoded_value("/6/0/5", "C105 FF"), Value::Time(-1));
        // Objlnk: /3/0/22 ExtDevInfo (multiple).
        assert_eq!(
            decoded_value("/3/0/22/1", "4401 00040001"),
            Value::Objlnk(ObjLink {
                object: 4,
                instance: 1
            })
        );
        // Integer in object 4 (Connectivity Monitoring: /4/0/2 Radio Signal Strength) and
        // object 7 (Connectivity Statistics: /7/0/0 SMS Tx Counter).
        assert_eq!(decoded_value("/4/0/2", "C102 A6"), Value::Integer(-90));
        assert_eq!(decoded_value("/7/0/0", "C200 0100"), Value::Integer(256));
        // String in object 4: /4/0/7 APN (multiple).
        assert_eq!(decoded_value("/4/0/7/0", "4300 696F74"), string("iot"));
    }

    #[test]
    fn encodes_values_in_the_smallest_form() {
        let cases: Vec<(Value, &str)> = vec![
            (string("é"), "C3A9"),
            (Value::Corelnk("</3/0>".into()), "3C2F332F303E"),
            (Value::Integer(0), "00"),
            (Value::Integer(127), "7F"),
            (Value::Integer(-128), "80"),
            (Value::Integer(128), "0080"),
            (Value::Integer(-129), "FF7F"),
            (Value::Integer(32767), "7FFF"),
            (Value::Integer(32768), "00008000"),
            (Value::Integer(-32769), "FFFF7FFF"),
            (Value::Integer(i64::from(i32::MAX)), "7FFFFFFF"),
            (Value::Integer(1 << 31), "0000000080000000"),
            (Value::Integer(i64::MIN), "8000000000000000"),
            (Value::Time(1_367_491_215), "5182428F"),
            (Value::UnsignedInteger(255), "FF"),
            (Value::UnsignedInteger(256), "0100"),
            (Value::UnsignedInteger(65536), "00010000"),
            (Value::UnsignedInteger(1 << 32), "0000000100000000"),
            (Value::Float(1.5), "3FC00000"),
            (Value::Float(f64::from(f32::MAX)), "7F7FFFFF"),
            (Value::Float(0.1), "3FB999999999999A"),
            (Value::Float(1e300), "7E37E43C8800759C"),
            (Value::Boolean(true), "01"),
            (Value::Boolean(false), "00"),
            (Value::Opaque(vec![1, 2, 3]), "010203"),
            (
                Value::Objlnk(ObjLink {
                    object: 66,
                    instance: 1,
                }),
                "00420001",
            ),
            (Value::Objlnk(ObjLink::NULL), "FFFFFFFF"),
            (Value::None, ""),
            (Value::Untyped(vec![0xDE, 0xAD]), "DEAD"),
        ];
        for (value, expected) in cases {
            assert_eq!(encode_value(&value), hex(expected), "{value:?}");
            if let Some(ty) = value.resource_type() {
                assert_eq!(
                    decode_value(ty, &hex(expected)),
                    Ok(value.clone()),
                    "{value:?}"
                );
            }
        }
    }

    #[test]
    fn encodes_resources_of_every_type_with_headers() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/3/0/0", string("abc"), "C300 616263"),
            ("/3/0/9", Value::Integer(100), "C109 64"),
            ("/5/0/13", Value::UnsignedInteger(300), "C20D 012C"),
            ("/6/0/0", Value::Float(1.5), "C400 3FC00000"),
            ("/6/0/0", Value::Float(0.1), "C80008 3FB999999999999A"),
            ("/5/0/14", Value::Boolean(true), "C10E 01"),
            ("/5/0/0", Value::Opaque(vec![0xAB]), "C100 AB"),
            ("/3/0/13", Value::Time(1_367_491_215), "C40D 5182428F"),
        ];
        for (path, value, expected) in cases {
            let path = p(path);
            let node = Node::Resource(Resource::single(path.resource_id().unwrap(), value));
            assert_eq!(encode(&path, &node).unwrap(), hex(expected), "{path}");
            assert_eq!(decode(&path, &hex(expected), model()), Ok(node), "{path}");
        }
        let link = Node::ResourceInstance {
            id: 1,
            value: Value::Objlnk(ObjLink {
                object: 4,
                instance: 0,
            }),
        };
        assert_eq!(
            encode(&p("/3/0/22/1"), &link).unwrap(),
            hex("4401 00040000")
        );
        assert_eq!(
            decode(&p("/3/0/22/1"), &hex("4401 00040000"), model()),
            Ok(link)
        );
    }

    #[test]
    fn length_and_identifier_forms() {
        // (value length, expected header) for /5/0/0: length in the type byte up to 7, then an
        // 8-, 16- or 24-bit length field.
        for (len, header) in [
            (7usize, "C700"),
            (8, "C80008"),
            (255, "C800FF"),
            (256, "D0000100"),
            (65535, "D000FFFF"),
            (65536, "D800010000"),
        ] {
            let node = Node::Resource(Resource::single(0, Value::Opaque(vec![0x5A; len])));
            let bytes = encode(&p("/5/0/0"), &node).unwrap();
            let header = hex(header);
            assert_eq!(&bytes[..header.len()], &header[..], "length {len}");
            assert_eq!(bytes.len(), header.len() + len);
            assert_eq!(
                decode(&p("/5/0/0"), &bytes, model()),
                Ok(node),
                "length {len}"
            );
        }
        // A 16-bit identifier once the ID passes 255.
        let node = Node::Resource(Resource::single(300, Value::Untyped(vec![0x2A])));
        assert_eq!(encode(&p("/10234/0/300"), &node).unwrap(), hex("E1012C 2A"));
        assert_eq!(
            decode(&p("/10234/0/300"), &hex("E1012C 2A"), model()),
            Ok(node)
        );
        // A 16-bit identifier holding a small ID is accepted too.
        assert_eq!(decoded_value("/3/0/9", "E10009 64"), Value::Integer(100));
        // With a length field, bits 2-0 are not the length and are ignored.
        assert_eq!(decoded_value("/3/0/0", "C90001 41"), string("A"));
    }

    // ---- Malformed input ----------------------------------------------------------------------

    #[test]
    fn wrong_value_lengths_are_typed_errors() {
        let cases: [(&str, &str, ResourceType, usize, usize, &str); 7] = [
            (
                "/3/0/9",
                "C309 000001",
                ResourceType::Integer,
                3,
                2,
                "/3/0/9",
            ),
            ("/3/0/13", "C00D", ResourceType::Time, 0, 2, "/3/0/13"),
            (
                "/5/0/13",
                "C30D 000001",
                ResourceType::UnsignedInteger,
                3,
                2,
                "/5/0/13",
            ),
            ("/6/0/0", "C300 000000", ResourceType::Float, 3, 2, "/6/0/0"),
            (
                "/5/0/14",
                "C20E 0001",
                ResourceType::Boolean,
                2,
                2,
                "/5/0/14",
            ),
            (
                "/3/0/22/0",
                "4300 000000",
                ResourceType::Objlnk,
                3,
                2,
                "/3/0/22/0",
            ),
            // A value inside a multiple resource: offset of the instance's value.
            (
                "/3/0",
                "880705 4300 000001",
                ResourceType::Integer,
                3,
                5,
                "/3/0/7/0",
            ),
        ];
        for (path, bytes, ty, len, offset, at) in cases {
            let e = decode_err(path, bytes);
            assert_eq!(
                e.kind,
                DecodeErrorKind::InvalidLength { ty, len },
                "{path} {bytes}"
            );
            assert_eq!(e.offset, Some(offset), "{path} {bytes}");
            assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
            assert_eq!(e.format, ContentFormat::Tlv);
        }
        // An executable resource carries no value.
        let e = decode_err("/3/0/4", "C104 01");
        assert_eq!(
            e.kind,
            DecodeErrorKind::InvalidLength {
                ty: ResourceType::None,
                len: 1
            }
        );
    }

    #[test]
    fn boolean_other_than_0_or_1_is_rejected() {
        let e = decode_err("/5/0/14", "C10E 02");
        assert_eq!(
            e.kind,
            DecodeErrorKind::Value(ValueError::OutOfRange {
                expected: ResourceType::Boolean,
                value: "2".into()
            })
        );
        assert_eq!((e.offset, e.path), (Some(2), Some(p("/5/0/14"))));
    }

    #[test]
    fn invalid_utf8_in_a_string() {
        let e = decode_err("/3/0/0", "C200 FFFE");
        assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
        assert_eq!((e.offset, e.path), (Some(2), Some(p("/3/0/0"))));
    }

    #[test]
    fn truncation_and_trailing_bytes() {
        for (path, bytes, offset) in [
            // One byte after a complete element.
            ("/3/0/0", "C10041 C1", 3),
            // 8-bit length field missing.
            ("/3/0/0", "C800", 0),
            // Second byte of a 16-bit identifier missing.
            ("/3/0/0", "E100", 0),
            // Length past the end of the payload.
            ("/3/0/0", "C80014 4F70", 0),
            // A 24-bit length of 16 MiB over a 1-byte value: rejected before any allocation.
            ("/3/0/0", "D800FFFFFF 00", 0),
            // A nested element running past its container.
            ("/3/0", "8206 4100", 2),
            ("/3/0", "8306 480005", 2),
        ] {
            let e = decode_err(path, bytes);
            assert_eq!(e.kind, DecodeErrorKind::Truncated, "{path} {bytes}");
            assert_eq!(e.offset, Some(offset), "{path} {bytes}");
        }
        // A second complete element after the one resource asked for.
        let e = decode_err("/3/0/0", "C10041 C10142");
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadNesting, Some(3)));
    }

    #[test]
    fn every_prefix_of_a_wrapped_instance_is_truncated() {
        let bytes = hex(&spec_device_with_instance());
        for n in 1..bytes.len() {
            let e = decode(&p("/3/0"), &bytes[..n], model()).unwrap_err();
            assert_eq!(
                (e.kind, e.offset),
                (DecodeErrorKind::Truncated, Some(0)),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn reserved_identifier() {
        let e = decode_err("/3/0", "E1FFFF 01");
        assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{e}");
        assert_eq!(e.offset, Some(1));
    }

    #[test]
    fn nesting_that_does_not_fit_the_path() {
        for (path, bytes, offset, at) in [
            // An object instance inside an object instance.
            ("/3", "080002 0001", 3, "/3/0"),
            // A resource inside a multiple resource.
            ("/3/0", "8206 C000", 2, "/3/0/6"),
            // A resource instance directly in an object instance, or at the top of /o/i.
            ("/3", "080003 410001", 3, "/3/0"),
            ("/3/0", "410001", 0, "/3/0"),
            // A resource where a resource instance was asked for.
            ("/3/0/6/0", "C10601", 0, "/3/0/6/0"),
            // Bare resources for a multiple-instance object: no instance ID to give them.
            ("/2", "C10001", 0, "/2"),
            // Object instances and bare resources mixed.
            ("/3", "0000 C10964", 2, "/3"),
            // Two object-instance TLVs for one instance.
            ("/3/0", "0000 0001", 2, "/3/0"),
            // A resource and a resource instance at /o/i/r.
            ("/3/0/6", "C10601 410001", 3, "/3/0/6"),
            // Two resource instances at /o/i/r/ri.
            ("/3/0/6/0", "410001 410102", 3, "/3/0/6/0"),
        ] {
            let e = decode_err(path, bytes);
            assert_eq!(e.kind, DecodeErrorKind::BadNesting, "{path} {bytes}");
            assert_eq!(e.offset, Some(offset), "{path} {bytes}");
            assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
        }
    }

    #[test]
    fn elements_outside_the_requested_path() {
        for (path, bytes, outside) in [
            ("/3/0", "0001", "/3/1"),
            ("/3/0/0", "C10141", "/3/0/1"),
            ("/3/0/7/1", "410201", "/3/0/7/2"),
            ("/3/0/6", "8607 410001 410105", "/3/0/7"),
        ] {
            let e = decode_err(path, bytes);
            assert_eq!(
                e.kind,
                DecodeErrorKind::Tree(TreeError::OutsideRequest {
                    requested: p(path),
                    path: p(outside)
                }),
                "{path} {bytes}"
            );
            assert_eq!(e.offset, Some(0));
        }
    }

    #[test]
    fn duplicate_identifiers() {
        for (path, bytes, offset, at) in [
            // LwM2mNodeDecoderTest.tlv_invalid_object__instance_2_resources_with_the_same_id
            ("/3/0", "C10964 C10964", 3, "/3/0/9"),
            // ... tlv_invalid_object_2_instances_with_the_same_id
            ("/2", "0001 0001", 2, "/2/1"),
            // ... tlv_invalid_multi_resource_2_instance_with_the_same_id (Objlnk /3/0/22)
            (
                "/3/0/22",
                "88160C 4400 00640001 4400 00650002",
                9,
                "/3/0/22/0",
            ),
        ] {
            let e = decode_err(path, bytes);
            assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{path}: {e}");
            assert_eq!(e.offset, Some(offset), "{path} {bytes}");
            assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
        }
    }

    #[test]
    fn root_path_is_not_carried() {
        let e = decode_err("/", "0000");
        assert!(matches!(e.kind, DecodeErrorKind::Unsupported(_)), "{e}");
        let node = Node::Object {
            id: 3,
            instances: BTreeMap::new(),
        };
        assert!(matches!(
            encode(&Path::Root, &node),
            Err(EncodeError::Unsupported { .. })
        ));
    }

    #[test]
    fn encode_rejects_nodes_that_do_not_fit_the_path() {
        let resource = Node::Resource(Resource::single(9, Value::Integer(1)));
        for path in ["/3", "/3/0", "/3/0/8", "/3/0/9/0"] {
            assert!(
                matches!(
                    encode(&p(path), &resource),
                    Err(EncodeError::PathMismatch { .. })
                ),
                "{path}"
            );
        }
        let inst = Node::Instance(ObjectInstance {
            id: 1,
            ..Default::default()
        });
        assert!(matches!(
            encode(&p("/3/0"), &inst),
            Err(EncodeError::PathMismatch { .. })
        ));
        // A map key that disagrees with the ID stored in the node.
        let mut bad = ObjectInstance::new(0, [Resource::single(9, Value::Integer(1))]);
        bad.resources
            .insert(10, Resource::single(11, Value::Integer(2)));
        let e = encode(&p("/3/0"), &Node::Instance(bad));
        assert!(matches!(e, Err(EncodeError::PathMismatch { .. })), "{e:?}");
        // 65535 is reserved.
        let reserved = Node::ResourceInstance {
            id: 0,
            value: Value::Integer(1),
        };
        assert!(encode(&p("/3/0/6/0"), &reserved).is_ok());
        let reserved = Node::Resource(Resource::multiple(6, [(u16::MAX, Value::Integer(1))]));
        assert!(matches!(
            encode(&p("/3/0/6"), &reserved),
            Err(EncodeError::Unsupported { .. })
        ));
    }

    #[test]
    fn values_above_the_24_bit_length_are_refused() {
        let node = Node::Resource(Resource::single(
            0,
            Value::Opaque(vec![0; MAX_VALUE_LEN + 1]),
        ));
        assert!(matches!(
            encode(&p("/5/0/0"), &node),
            Err(EncodeError::Unsupported { .. })
        ));
    }

    // ---- Property tests -----------------------------------------------------------------------

    fn runner(cases: u32) -> TestRunner {
        TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        })
    }

    fn builtin_defs() -> Vec<&'static ObjectDef> {
        let defs: Vec<_> = model().objects().collect();
        for id in [3, 4, 5, 6, 7] {
            assert!(
                model().object(id).is_some(),
                "object {id} missing from the builtin model"
            );
        }
        defs
    }

    fn round_trip(path: Path, node: Node) -> Result<(), TestCaseError> {
        let bytes = encode(&path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode(&path, &bytes, model()), Ok(node), "{}", path);
        Ok(())
    }

    #[test]
    fn instances_of_every_builtin_object_round_trip() {
        for def in builtin_defs() {
            let strategy = (0..=MAX_ID).prop_flat_map(move |id| instance_of(def, id));
            runner(32)
                .run(&strategy, |inst| {
                    round_trip(Path::Instance(def.id, inst.id), Node::Instance(inst))
                })
                .unwrap();
        }
    }

    #[test]
    fn objects_of_every_builtin_object_round_trip() {
        for def in builtin_defs() {
            let strategy =
                proptest::collection::btree_set(0..=MAX_ID, 0..3).prop_flat_map(move |ids| {
                    ids.into_iter()
                        .map(|id| instance_of(def, id))
                        .collect::<Vec<_>>()
                });
            runner(16)
                .run(&strategy, |instances| {
                    let instances = instances.into_iter().map(|i| (i.id, i)).collect();
                    round_trip(
                        Path::Object(def.id),
                        Node::Object {
                            id: def.id,
                            instances,
                        },
                    )
                })
                .unwrap();
        }
    }

    #[test]
    fn resources_and_resource_instances_of_every_builtin_object_round_trip() {
        for def in builtin_defs() {
            for res in def.resources.iter().filter(|r| r.ty != ResourceType::None) {
                let path = Path::Resource(def.id, 0, res.id);
                if res.multiple {
                    let values =
                        proptest::collection::btree_map(0..=MAX_ID, value_of(res.ty), 0..4);
                    runner(8)
                        .run(&values, |values| {
                            round_trip(path, Node::Resource(Resource::multiple(res.id, values)))
                        })
                        .unwrap();
                    runner(8)
                        .run(&(0..=MAX_ID, value_of(res.ty)), |(ri, value)| {
                            let path = Path::ResourceInstance(def.id, 0, res.id, ri);
                            round_trip(path, Node::ResourceInstance { id: ri, value })
                        })
                        .unwrap();
                } else {
                    runner(8)
                        .run(&value_of(res.ty), |value| {
                            round_trip(path, Node::Resource(Resource::single(res.id, value)))
                        })
                        .unwrap();
                }
            }
        }
    }

    fn any_type() -> impl Strategy<Value = ResourceType> {
        prop_oneof![
            Just(ResourceType::String),
            Just(ResourceType::Integer),
            Just(ResourceType::UnsignedInteger),
            Just(ResourceType::Float),
            Just(ResourceType::Boolean),
            Just(ResourceType::Opaque),
            Just(ResourceType::Time),
            Just(ResourceType::Objlnk),
            Just(ResourceType::Corelnk),
            Just(ResourceType::None),
        ]
    }

    /// Decoding, re-encoding and decoding again must give the same bytes (compared as bytes so
    /// that NaN floats from the input count as equal to themselves).
    fn check_stable(path: &Path, bytes: &[u8], model: &ObjectModel) -> Result<(), TestCaseError> {
        match decode(path, bytes, model) {
            Ok(node) => {
                let first = encode(path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = decode(path, &first, model)
                    .map_err(|e| TestCaseError::fail(format!("re-decoding: {e}")))?;
                let second =
                    encode(path, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(first, second);
            }
            Err(e) => {
                prop_assert!(e.offset.is_none_or(|o| o <= bytes.len()), "{}", e);
            }
        }
        Ok(())
    }

    const FUZZ_PATHS: [&str; 9] = [
        "/",
        "/3",
        "/3/0",
        "/3/0/0",
        "/3/0/7",
        "/3/0/7/0",
        "/2",
        "/10234/0",
        "/10234/0/1",
    ];

    proptest! {
        #[test]
        fn values_of_every_type_round_trip(
            (ty, value) in any_type().prop_flat_map(|ty| (Just(ty), value_of(ty)))
        ) {
            prop_assert_eq!(decode_value(ty, &encode_value(&value)), Ok(value));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for path in FUZZ_PATHS {
                check_stable(&p(path), &bytes, model())?;
                check_stable(&p(path), &bytes, &ObjectModel::empty())?;
            }
        }

        #[test]
        fn mutated_spec_vectors_never_panic(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            for vector in [spec_device_with_instance().as_str(), SPEC_ACL_OBJECT, SPEC_OBJ66_OBJECT] {
                let mut bytes = hex(vector);
                let at = index.index(bytes.len());
                bytes[at] = byte;
                bytes.truncate(cut.index(bytes.len() + 1));
                for path in FUZZ_PATHS {
                    check_stable(&p(path), &bytes, model())?;
                }
            }
        }
    }
}
