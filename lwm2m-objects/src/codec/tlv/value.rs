//! TLV value encodings (OMA LwM2M TS Core 1.1 §7.4.3.1 and Appendix C): the bytes of one resource
//! or resource-instance value for each resource type, read by declared type and written in the
//! fewest bytes that keep the value.

use super::reader::be_uint;
use crate::codec::DecodeErrorKind;
use crate::value::{ObjLink, ResourceType, Value, ValueError};

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
