//! The TLV element layout (OMA LwM2M TS Core 1.1 §7.4.3): a checked zero-copy reader that parses
//! each element's header (type byte, identifier, length) and hands out a view of its value bytes.
//!
//! Lengths are checked against the remaining input before any value is looked at; reading slices
//! the payload and never allocates by a declared length.

use super::FORMAT;
use crate::codec::{DecodeError, DecodeErrorKind};
use crate::path::MAX_ID;

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

    pub(super) fn type_bits(self) -> u8 {
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

    pub(super) fn describe(self) -> &'static str {
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
pub(super) fn be_uint(bytes: &[u8]) -> u64 {
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
