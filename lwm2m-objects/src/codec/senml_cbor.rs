//! SenML CBOR (`application/senml+cbor`, content format 112; RFC 8428 §6, OMA LwM2M TS Core 1.1
//! §7.4.5): the CBOR reading and writing of SenML records. Base fields, names and typing are shared
//! with SenML JSON (`codec/senml.rs`).
//!
//! Reading accepts definite and indefinite-length arrays, maps and strings, half, single and
//! double floats, decimal fractions (tag 4, RFC 8428 §6), and skips unknown fields with a bounded
//! nesting depth. Writing uses definite lengths, integer labels, integers for integral types and
//! the shortest float that keeps the exact value (RFC 8949 §4.2 "preferred serialization").

use std::convert::Infallible;

use minicbor::data::Type;
use minicbor::encode::Write as _;
use minicbor::{Decoder, Encoder};

use super::senml::{self, RawRecord, RawValue, SenmlField, SenmlNumber, must_understand, syntax};
use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, Record};
use crate::model::ObjectModel;
use crate::path::Path;

const FORMAT: ContentFormat = ContentFormat::SenmlCbor;

/// How deep an ignored field value may nest (arrays, maps, tags) before the pack is rejected.
const MAX_NESTING: usize = 16;

// RFC 8428 §6 Table 4: integer labels. The table is conclusive; extensions use text labels.
const BVER: i64 = -1;
const BN: i64 = -2;
const BT: i64 = -3;
const BU: i64 = -4;
const BV: i64 = -5;
const BS: i64 = -6;
const N: i64 = 0;
const U: i64 = 1;
const V: i64 = 2;
const VS: i64 = 3;
const VB: i64 = 4;
const S: i64 = 5;
const T: i64 = 6;
const UT: i64 = 7;
const VD: i64 = 8;
/// TS Core 1.1 §7.4.5: the object-link value keeps its text label in CBOR.
const VLO: &str = "vlo";

/// Decodes a SenML CBOR pack into records (names resolved to paths, values typed by the model).
///
/// An empty payload is an empty pack, as for SenML JSON.
pub fn decode(bytes: &[u8], model: &ObjectModel) -> Result<Vec<Record>, DecodeError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    senml::resolve(FORMAT, read_pack(bytes)?, model)
}

/// Encodes records as a SenML CBOR pack.
pub fn encode(records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    // Decoding rejects non-finite times, so they are not written either.
    if let Some(record) = records
        .iter()
        .find(|r| r.time.is_some_and(|t| !t.is_finite()))
    {
        return Err(EncodeError::Unsupported {
            format: FORMAT,
            path: record.path,
            what: "a time that is not a finite number".to_owned(),
        });
    }
    let (base_name, names) = senml::plan_names(records);
    write_pack(records, base_name.as_deref(), &names).map_err(|e| EncodeError::Unsupported {
        format: FORMAT,
        path: Path::Root,
        what: format!("records the CBOR writer refused: {e}"),
    })
}

fn write_pack(
    records: &[Record],
    base_name: Option<&str>,
    names: &[String],
) -> Result<Vec<u8>, minicbor::encode::Error<Infallible>> {
    let mut e = Encoder::new(Vec::new());
    e.array(records.len() as u64)?;
    for (i, (record, name)) in records.iter().zip(names).enumerate() {
        let bn = if i == 0 { base_name } else { None };
        let field = record
            .value
            .as_ref()
            .map_or(SenmlField::Absent, senml::field_of);
        let has_value = !matches!(field, SenmlField::Absent);
        let entries =
            1 + u64::from(bn.is_some()) + u64::from(record.time.is_some()) + u64::from(has_value);
        e.map(entries)?;
        if let Some(bn) = bn {
            e.i64(BN)?.str(bn)?;
        }
        e.i64(N)?.str(name)?;
        if let Some(t) = record.time {
            e.i64(T)?;
            write_number(&mut e, senml::time_number(t))?;
        }
        match field {
            SenmlField::Absent => {}
            SenmlField::Number(n) => {
                e.i64(V)?;
                write_number(&mut e, n)?;
            }
            SenmlField::Text(s) => {
                e.i64(VS)?.str(s)?;
            }
            SenmlField::Boolean(b) => {
                e.i64(VB)?.bool(b)?;
            }
            SenmlField::Data(bytes) => {
                e.i64(VD)?.bytes(bytes)?;
            }
            SenmlField::ObjLink(link) => {
                e.str(VLO)?.str(&link.to_string())?;
            }
        }
    }
    Ok(e.into_writer())
}

pub(super) fn write_number(
    e: &mut Encoder<Vec<u8>>,
    n: SenmlNumber,
) -> Result<(), minicbor::encode::Error<Infallible>> {
    match n {
        SenmlNumber::Signed(i) => {
            e.i64(i)?;
        }
        SenmlNumber::Unsigned(u) => {
            e.u64(u)?;
        }
        SenmlNumber::Float(f) => {
            // RFC 8428 §6: the CBOR number must convert back to exactly the same double.
            if let Some(half) = f64_to_half(f) {
                let [hi, lo] = half.to_be_bytes();
                e.writer_mut()
                    .write_all(&[0xf9, hi, lo])
                    .map_err(minicbor::encode::Error::write)?;
            } else if f64::from(f as f32) == f {
                e.f32(f as f32)?;
            } else {
                e.f64(f)?;
            }
        }
    }
    Ok(())
}

/// The IEEE 754 half-precision bits of `v` when that represents it exactly (NaN as the canonical
/// quiet NaN).
fn f64_to_half(v: f64) -> Option<u16> {
    if v.is_nan() {
        return Some(0x7e00);
    }
    let sign: u16 = if v.is_sign_negative() { 0x8000 } else { 0 };
    let a = v.abs();
    if a.is_infinite() {
        return Some(sign | 0x7c00);
    }
    if a == 0.0 {
        return Some(sign);
    }
    if a < 6.103_515_625e-5 {
        // Below 2^-14 halves are subnormal: multiples of 2^-24 (scaling by 2^24 is exact).
        let scaled = a * 16_777_216.0;
        return (scaled.fract() == 0.0).then_some(sign | scaled as u16);
    }
    let bits = a.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = bits & ((1u64 << 52) - 1);
    // A half keeps the top 10 of the 52 mantissa bits and exponents up to 15.
    if exponent > 15 || mantissa & ((1u64 << 42) - 1) != 0 {
        return None;
    }
    Some(sign | (((exponent + 15) as u16) << 10) | (mantissa >> 42) as u16)
}

/// The value of half-precision bits (RFC 8949 Appendix D).
fn half_to_f64(half: u16) -> f64 {
    let sign = if half & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1024.0 + mantissa) * 2f64.powi(e - 25),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads the pack into records as carried.
pub(crate) fn read_pack(bytes: &[u8]) -> Result<Vec<RawRecord>, DecodeError> {
    let mut d = Decoder::new(bytes);
    let mut remaining = match peek(&d)? {
        Type::Array | Type::ArrayIndef => d.array().map_err(|e| cbor_error(&e, 0))?,
        other => {
            return Err(syntax(
                FORMAT,
                format!("a SenML pack must be a CBOR array, found {other}"),
            )
            .at(0));
        }
    };
    // No capacity from the declared length: it comes from the input and may be a lie.
    let mut records = Vec::new();
    while more(&mut d, &mut remaining)? {
        records.push(read_record(&mut d)?);
    }
    if d.position() < bytes.len() {
        return Err(syntax(FORMAT, "data after the end of the SenML pack").at(d.position()));
    }
    Ok(records)
}

fn read_record(d: &mut Decoder<'_>) -> Result<RawRecord, DecodeError> {
    let offset = d.position();
    let mut remaining = match peek(d)? {
        Type::Map | Type::MapIndef => d.map().map_err(|e| cbor_error(&e, offset))?,
        other => {
            return Err(syntax(
                FORMAT,
                format!("a SenML record must be a CBOR map, found {other}"),
            )
            .at(offset));
        }
    };
    let mut record = RawRecord::new(Some(offset));
    while more(d, &mut remaining)? {
        read_field(d, &mut record)?;
    }
    Ok(record)
}

/// A map key of a record.
enum Label {
    Int(i64),
    Text(String),
    Other,
}

fn read_field(d: &mut Decoder<'_>, record: &mut RawRecord) -> Result<(), DecodeError> {
    let key_at = d.position();
    let label = match peek(d)? {
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => {
            let int = d.int().map_err(|e| cbor_error(&e, key_at))?;
            i64::try_from(i128::from(int)).map_or(Label::Other, Label::Int)
        }
        Type::String | Type::StringIndef => Label::Text(read_text(d, "a map key")?),
        _ => {
            skip(d, 0)?;
            Label::Other
        }
    };
    let set_value = |record: &mut RawRecord, value: RawValue| {
        record
            .set_value(value)
            .map_err(|m| syntax(FORMAT, m).at(key_at))
    };
    match label {
        Label::Int(BN) => record.base_name = Some(read_text(d, "bn")?),
        Label::Int(BT) => record.base_time = Some(read_number(d, "bt", 0)?.to_f64()),
        Label::Int(BV) => record.base_value = Some(read_number(d, "bv", 0)?),
        Label::Int(N) => record.name = Some(read_text(d, "n")?),
        Label::Int(T) => record.time = Some(read_number(d, "t", 0)?.to_f64()),
        Label::Int(V) => set_value(record, RawValue::Number(read_number(d, "v", 0)?))?,
        Label::Int(VS) => set_value(record, RawValue::String(read_text(d, "vs")?))?,
        Label::Int(VB) => set_value(record, RawValue::Boolean(read_bool(d, "vb")?))?,
        Label::Int(VD) => set_value(record, RawValue::Data(read_bytes(d, "vd")?))?,
        Label::Text(key) if key == VLO => {
            set_value(record, RawValue::ObjLink(read_text(d, VLO)?))?;
        }
        Label::Text(key) if key.ends_with('_') => {
            return Err(must_understand(FORMAT, &key, Some(key_at)));
        }
        // Version, units, sums and update time carry nothing LwM2M uses (TS Core 1.1 §7.4.5);
        // unknown labels are ignored (RFC 8428 §4.4).
        Label::Int(BVER | BU | BS | U | S | UT) => skip(d, 0)?,
        Label::Int(_) | Label::Text(_) | Label::Other => skip(d, 0)?,
    }
    Ok(())
}

/// Whether another item follows in an array or map being read: `Some(n)` items left of a definite
/// length, or `None` for an indefinite length (ended by a break, which this consumes).
pub(super) fn more(d: &mut Decoder<'_>, remaining: &mut Option<u64>) -> Result<bool, DecodeError> {
    match remaining {
        Some(0) => Ok(false),
        Some(n) => {
            *n -= 1;
            Ok(true)
        }
        None => {
            if peek(d)? == Type::Break {
                d.set_position(d.position() + 1);
                Ok(false)
            } else {
                Ok(true)
            }
        }
    }
}

fn peek(d: &Decoder<'_>) -> Result<Type, DecodeError> {
    d.datatype().map_err(|e| cbor_error(&e, d.position()))
}

pub(super) fn cbor_error(e: &minicbor::decode::Error, fallback_offset: usize) -> DecodeError {
    let offset = e.position().unwrap_or(fallback_offset);
    let kind = if e.is_end_of_input() {
        DecodeErrorKind::Truncated
    } else {
        DecodeErrorKind::Syntax(e.to_string())
    };
    DecodeError::new(FORMAT, kind).at(offset)
}

fn wrong_type(field: &str, expected: &str, found: Type, offset: usize) -> DecodeError {
    syntax(FORMAT, format!("{field} must be {expected}, found {found}")).at(offset)
}

pub(super) fn read_text(d: &mut Decoder<'_>, field: &str) -> Result<String, DecodeError> {
    let start = d.position();
    // The type is checked first, so a failure is either the end of input or bad UTF-8.
    let text_error = |e: minicbor::decode::Error| {
        if e.is_end_of_input() {
            cbor_error(&e, start)
        } else {
            DecodeError::new(FORMAT, DecodeErrorKind::InvalidUtf8).at(e.position().unwrap_or(start))
        }
    };
    match peek(d)? {
        Type::String => d.str().map(str::to_owned).map_err(text_error),
        Type::StringIndef => {
            let mut text = String::new();
            for chunk in d.str_iter().map_err(text_error)? {
                text.push_str(chunk.map_err(text_error)?);
            }
            Ok(text)
        }
        other => Err(wrong_type(field, "a text string", other, start)),
    }
}

pub(super) fn read_bytes(d: &mut Decoder<'_>, field: &str) -> Result<Vec<u8>, DecodeError> {
    let start = d.position();
    match peek(d)? {
        Type::Bytes => d
            .bytes()
            .map(<[u8]>::to_vec)
            .map_err(|e| cbor_error(&e, start)),
        Type::BytesIndef => {
            let mut bytes = Vec::new();
            for chunk in d.bytes_iter().map_err(|e| cbor_error(&e, start))? {
                bytes.extend_from_slice(chunk.map_err(|e| cbor_error(&e, start))?);
            }
            Ok(bytes)
        }
        other => Err(wrong_type(field, "a byte string", other, start)),
    }
}

pub(super) fn read_bool(d: &mut Decoder<'_>, field: &str) -> Result<bool, DecodeError> {
    let start = d.position();
    match peek(d)? {
        Type::Bool => d.bool().map_err(|e| cbor_error(&e, start)),
        other => Err(wrong_type(field, "a boolean", other, start)),
    }
}

/// Reads a number: any integer, a half, single or double float, or a decimal fraction (tag 4).
/// Other tags around a number are looked through, a few levels deep.
pub(super) fn read_number(
    d: &mut Decoder<'_>,
    field: &str,
    tags: usize,
) -> Result<SenmlNumber, DecodeError> {
    let start = d.position();
    let fail = |e: minicbor::decode::Error| cbor_error(&e, start);
    Ok(match peek(d)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            SenmlNumber::Unsigned(d.u64().map_err(fail)?)
        }
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => SenmlNumber::Signed(d.i64().map_err(fail)?),
        // Below -2^63: only a float can hold it (the model's exact conversions will say no).
        Type::Int => SenmlNumber::Float(i128::from(d.int().map_err(fail)?) as f64),
        Type::F16 => {
            // minicbor reads halves only with its "half" feature; the bits are simple enough.
            let Some(&[hi, lo]) = d.input().get(start + 1..start + 3) else {
                return Err(
                    DecodeError::new(FORMAT, DecodeErrorKind::Truncated).at(d.input().len())
                );
            };
            d.set_position(start + 3);
            SenmlNumber::Float(half_to_f64(u16::from_be_bytes([hi, lo])))
        }
        Type::F32 => SenmlNumber::Float(f64::from(d.f32().map_err(fail)?)),
        Type::F64 => SenmlNumber::Float(d.f64().map_err(fail)?),
        Type::Tag => {
            let tag = d.tag().map_err(fail)?.as_u64();
            if tag == 4 {
                read_decimal_fraction(d, field, start)?
            } else if tags < 4 {
                read_number(d, field, tags + 1)?
            } else {
                return Err(
                    syntax(FORMAT, format!("{field}: too many tags around a number")).at(start),
                );
            }
        }
        other => return Err(wrong_type(field, "a number", other, start)),
    })
}

/// RFC 8949 §3.4.4 decimal fraction `[exponent, mantissa]`, read through its decimal text so the
/// result is correctly rounded.
fn read_decimal_fraction(
    d: &mut Decoder<'_>,
    field: &str,
    start: usize,
) -> Result<SenmlNumber, DecodeError> {
    let bad = || {
        syntax(
            FORMAT,
            format!("{field}: a decimal fraction must be [exponent, mantissa]"),
        )
        .at(start)
    };
    let len = match peek(d)? {
        Type::Array => d.array().map_err(|e| cbor_error(&e, start))?,
        _ => return Err(bad()),
    };
    if len != Some(2) {
        return Err(bad());
    }
    let int = |d: &mut Decoder<'_>| match peek(d)? {
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => d.int().map(i128::from).map_err(|e| cbor_error(&e, start)),
        _ => Err(bad()),
    };
    let exponent = int(d)?;
    let mantissa = int(d)?;
    let value = format!("{mantissa}e{exponent}")
        .parse::<f64>()
        .map_err(|_| bad())?;
    Ok(SenmlNumber::Float(value))
}

/// Skips one value of an ignored field, refusing nesting deeper than [`MAX_NESTING`].
fn skip(d: &mut Decoder<'_>, depth: usize) -> Result<(), DecodeError> {
    let start = d.position();
    if depth > MAX_NESTING {
        return Err(syntax(
            FORMAT,
            format!("a value nests deeper than {MAX_NESTING} levels"),
        )
        .at(start));
    }
    match peek(d)? {
        Type::Array | Type::ArrayIndef => {
            let mut remaining = d.array().map_err(|e| cbor_error(&e, start))?;
            while more(d, &mut remaining)? {
                skip(d, depth + 1)?;
            }
        }
        Type::Map | Type::MapIndef => {
            let mut remaining = d
                .map()
                .map_err(|e| cbor_error(&e, start))?
                .map(|n| n.saturating_mul(2));
            while more(d, &mut remaining)? {
                skip(d, depth + 1)?;
            }
        }
        Type::Tag => {
            d.tag().map_err(|e| cbor_error(&e, start))?;
            skip(d, depth + 1)?;
        }
        Type::Break => return Err(syntax(FORMAT, "a break where a value was expected").at(start)),
        // Scalars and (possibly indefinite) strings: minicbor skips them without nesting.
        _ => d.skip().map_err(|e| cbor_error(&e, start))?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::senml::fixtures::{any_records, builtin, device_records, p, rec, timed};
    use crate::value::{ObjLink, ResourceType, Value, ValueError};
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// OMA LwM2M TS Core 1.1(.1) §7.4.5, SenML CBOR payload of a Read of /3/0 (the same bytes are
    /// in Leshan's `AbstractSenMLTest.givenSenMLCborExample()`).
    const TS_DEVICE_CBOR: &str = concat!(
        "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a200613103764c696768747765696768",
        "74204d324d20436c69656e74a20061320369333435303030313233a20061330363312e30a20063362f300201a20063362f310205a20063372f",
        "3002190ed8a20063372f3102191388a20063382f3002187da20063382f3102190384a2006139021864a200623130020fa2006431312f300200",
        "a200623133021a5182428fa20062313403662b30323a3030a200623136036155"
    );

    /// RFC 8428 §6: the CBOR dump of the §5.1.2 example (bt, bu, bver, then relative times).
    const RFC8428_CBOR: &str = "
        87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a
        31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a
        22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00
        67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06
        66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06
        24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75
        72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc
        cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f
        f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e
        74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e
        74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67
        63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33
        33 33 33";

    fn decode_hex(s: &str) -> Result<Vec<Record>, DecodeError> {
        decode(&hex(s), builtin())
    }

    #[test]
    fn ts_device_example_decodes_and_is_what_we_encode() {
        assert_eq!(decode_hex(TS_DEVICE_CBOR).unwrap(), device_records());
        assert_eq!(to_hex(&encode(&device_records()).unwrap()), TS_DEVICE_CBOR);
    }

    #[test]
    fn leshan_vectors() {
        // Leshan SenMLCborSerializerTest.deserialize_opaque_resource: [{-2: "/0/0/3", 8: h'ABCDEF'}]
        assert_eq!(
            decode_hex("81a221662f302f302f330843abcdef").unwrap(),
            vec![rec("/0/0/3", Value::Opaque(vec![0xab, 0xcd, 0xef]))]
        );
        // Leshan SenMLCborSerializerTest.deserialize_float_resource: [{2: 300.0, -2: "/3442/0/130"}]
        // (a half float, value before name, an object the model does not know).
        assert_eq!(
            decode_hex("81a202f95cb0216b2f333434322f302f313330").unwrap(),
            vec![rec("/3442/0/130", Value::Float(300.0))]
        );
        // Leshan senml_cbor_empty_multi_resource: empty payload and empty array.
        assert_eq!(decode_hex("").unwrap(), vec![]);
        assert_eq!(decode_hex("80").unwrap(), vec![]);
        assert_eq!(decode_hex("9fff").unwrap(), vec![]);
    }

    #[test]
    fn rfc8428_example_reads_and_names_are_not_paths() {
        let raws = read_pack(&hex(RFC8428_CBOR)).unwrap();
        assert_eq!(raws.len(), 7);
        assert_eq!(
            raws[0].base_name.as_deref(),
            Some("urn:dev:ow:10e2073a0108006:")
        );
        assert_eq!(raws[0].base_time, Some(1_276_020_076.001));
        assert_eq!(raws[0].name.as_deref(), Some("voltage"));
        assert_eq!(
            raws[0].value,
            Some(RawValue::Number(SenmlNumber::Float(120.1)))
        );
        assert_eq!(raws[1].time, Some(-5.0));
        assert_eq!(
            raws[1].value,
            Some(RawValue::Number(SenmlNumber::Float(1.2)))
        );
        // 0x90: `f9 3e 00` is the half float 1.5.
        assert_eq!(raws[4].offset, Some(0x87));
        assert_eq!(
            raws[4].value,
            Some(RawValue::Number(SenmlNumber::Float(1.5)))
        );
        assert_eq!(raws[6].time, Some(0.0));
        assert_eq!(
            raws[6].value,
            Some(RawValue::Number(SenmlNumber::Float(1.7)))
        );
        // "urn:dev:ow:…voltage" is not an LwM2M path.
        let err = decode_hex(RFC8428_CBOR).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Path(_)), "{err}");
        assert_eq!(err.offset, Some(1));
    }

    #[test]
    fn rfc8428_example_with_lwm2m_names_resolves_times() {
        // The same pack with bn "/3/0/" and names "7/0" / "8/0" in place of the URN names; the
        // empty model types the floats as Float.
        let text = RFC8428_CBOR.split_whitespace().collect::<String>();
        let text = text
            .replace(
                "781b75726e3a6465763a6f773a3130653230373361303130383030363a",
                "652f332f302f",
            )
            .replace("0067766f6c74616765", "0063372f30")
            .replace("006763757272656e74", "0063382f30");
        let records = decode(&hex(&text), &ObjectModel::empty()).unwrap();
        let bt = 1_276_020_076.001;
        assert_eq!(records[0], timed("/3/0/7/0", bt, Value::Float(120.1)));
        assert_eq!(records[1], timed("/3/0/8/0", bt - 5.0, Value::Float(1.2)));
        assert_eq!(records[4], timed("/3/0/8/0", bt - 2.0, Value::Float(1.5)));
        assert_eq!(records[6], timed("/3/0/8/0", bt, Value::Float(1.7)));
    }

    #[test]
    fn indefinite_lengths_and_text_labels() {
        // [_ {_ -2: "/3/0/", 0: (_ "9"), 2: 100}, {_ 0: "22/0", (_ "vl", "o"): (_ "3:", "0")},
        //    {0: "/5/0/0", 8: (_ h'01', h'0203')}]
        let bytes = hex(concat!(
            "9f",
            "bf 21 65 2f332f302f 00 7f 61 39 ff 02 18 64 ff",
            "bf 00 64 32322f30 7f 62 766c 61 6f ff 7f 62 333a 61 30 ff ff",
            "a2 21 66 2f352f302f30 08 5f 41 01 42 0203 ff",
            "ff"
        ));
        assert_eq!(
            decode(&bytes, builtin()).unwrap(),
            vec![
                rec("/3/0/9", Value::Integer(100)),
                rec(
                    "/3/0/22/0",
                    Value::Objlnk(ObjLink {
                        object: 3,
                        instance: 0
                    })
                ),
                rec("/5/0/0", Value::Opaque(vec![1, 2, 3])),
            ]
        );
    }

    #[test]
    fn number_encodings() {
        // Integers of every width, negative integers, single and double floats, decimal fractions.
        let cases: [(&str, Value); 7] = [
            ("1b 0000000100000000", Value::Integer(1 << 32)),
            ("3b 7fffffffffffffff", Value::Integer(i64::MIN)),
            ("38 63", Value::Integer(-100)),
            ("fa 47c35000", Value::Float(100_000.0)),
            ("fb 3fb999999999999a", Value::Float(0.1)),
            ("c4 82 21 196ab3", Value::Float(273.15)),
            ("c1 f9 3c00", Value::Float(1.0)),
        ];
        for (number, value) in cases {
            let bytes = hex(&format!("81 a2 00 6a 2f33333030302f302f30 02 {number}"));
            assert_eq!(
                decode(&bytes, &ObjectModel::empty()).unwrap()[0].value,
                Some(value),
                "{number}"
            );
        }
        // Floats are written in the shortest exact form.
        let float_bytes = |f: f64| to_hex(&encode(&[rec("/6/0/0", Value::Float(f))]).unwrap());
        assert!(float_bytes(1.5).ends_with("02f93e00"));
        assert!(float_bytes(-0.0).ends_with("02f98000"));
        assert!(float_bytes(100_000.0).ends_with("02fa47c35000"));
        assert!(float_bytes(0.1).ends_with("02fb3fb999999999999a"));
        assert!(float_bytes(f64::NAN).ends_with("02f97e00"));
        // A value below -2^63 is only a float, and not an exact Integer.
        let bytes = hex("81 a2 00 66 2f332f302f39 02 3b ffffffffffffffff");
        let err = decode(&bytes, builtin()).unwrap_err();
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::OutOfRange { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn half_floats_convert_exactly() {
        // RFC 8949 Appendix A examples.
        assert_eq!(half_to_f64(0x3e00), 1.5);
        assert_eq!(half_to_f64(0x7bff), 65504.0);
        assert_eq!(half_to_f64(0x0001), 5.960_464_477_539_063e-8);
        assert_eq!(half_to_f64(0x0400), 6.103_515_625e-5);
        assert_eq!(half_to_f64(0xc400), -4.0);
        assert_eq!(half_to_f64(0xfc00), f64::NEG_INFINITY);
        assert!(half_to_f64(0x7e00).is_nan());
        // Every non-NaN half converts back to its own bits.
        for bits in 0..=u16::MAX {
            let v = half_to_f64(bits);
            if !v.is_nan() {
                assert_eq!(f64_to_half(v), Some(bits), "{bits:#06x}");
            }
        }
        assert_eq!(f64_to_half(65520.0), None);
        assert_eq!(f64_to_half(0.1), None);
        assert_eq!(f64_to_half(1.0 + f64::EPSILON), None);
    }

    #[test]
    fn time_series_and_every_type_round_trip() {
        let records = vec![
            timed("/10243/0/14", 1_700_000_000.0, Value::Float(1234.5)),
            timed("/10243/0/14", 1_700_000_900.0, Value::Float(1236.25)),
            timed("/10243/0/14", 1_700_001_800.25, Value::Float(1240.0)),
        ];
        let bytes = encode(&records).unwrap();
        // [{-2: "/10243/0/", 0: "14", 6: 1700000000, 2: 1234.5}, …]
        assert!(to_hex(&bytes).starts_with("83a421692f31303234332f302f00623134061a6553f100"));
        assert_eq!(decode(&bytes, builtin()).unwrap(), records);

        let records = vec![
            rec("/3/0/0", Value::String("Ferrite ü".into())),
            rec("/3/0/13", Value::Time(-1)),
            rec("/3/0/22/0", Value::Objlnk(ObjLink::NULL)),
            rec("/4/0/2", Value::Integer(-60)),
            rec("/5/0/0", Value::Opaque(vec![0; 300])),
            rec("/5/0/13", Value::UnsignedInteger(u64::MAX)),
            rec("/5/0/14", Value::Boolean(false)),
            rec("/6/0/0", Value::Float(-33.918_998)),
            rec("/7/0/8", Value::Integer(i64::MAX)),
            Record {
                path: p("/3/0/4"),
                time: None,
                value: None,
            },
        ];
        let bytes = encode(&records).unwrap();
        assert_eq!(decode(&bytes, builtin()).unwrap(), records);
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let model = builtin();
        // Not an array.
        let err = decode(&hex("a1 00 61 30"), model).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::Syntax(ref m) if m.contains("array")),
            "{err}"
        );
        // A record that is not a map.
        let err = decode(&hex("82 a1 00 66 2f332f302f30 05"), model).unwrap_err();
        assert_eq!(
            (err.offset, matches!(err.kind, DecodeErrorKind::Syntax(_))),
            (Some(10), true)
        );
        // Truncated anywhere in the TS example.
        let ts = hex(TS_DEVICE_CBOR);
        for cut in 1..ts.len() {
            let err = decode(&ts[..cut], model).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::Truncated, "cut at {cut}: {err}");
            assert!(err.offset.unwrap() <= cut, "cut at {cut}: {err}");
        }
        // Trailing data.
        let err = decode(&hex("80 00"), model).unwrap_err();
        assert_eq!(
            (err.offset, matches!(err.kind, DecodeErrorKind::Syntax(_))),
            (Some(1), true)
        );
        // Must-understand text label "x_".
        let err = decode(&hex("81 a2 00 66 2f332f302f39 62 785f 01"), model).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::Unsupported(ref m) if m.contains("x_")),
            "{err}"
        );
        assert_eq!(err.offset, Some(10));
        // Unknown labels (units, an int label, a text label with nested data) are skipped.
        let bytes = hex("81 a5 00 66 2f332f302f39 01 61 25 18 63 80 61 78 a1 01 82 01 02 02 01");
        assert_eq!(
            decode(&bytes, model).unwrap(),
            vec![rec("/3/0/9", Value::Integer(1))]
        );
        // Deep nesting in an ignored value.
        let mut deep = hex("81 a2 00 66 2f332f302f39 61 78");
        deep.extend(std::iter::repeat_n(0x81, 10_000));
        deep.push(0x01);
        let err = decode(&deep, model).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::Syntax(ref m) if m.contains("nests")),
            "{err}"
        );
        // vlo "3:" is not an object link.
        let err = decode(
            &hex("81 a2 00 69 2f332f302f32322f30 63 766c6f 62 333a"),
            model,
        )
        .unwrap_err();
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::Unparsable {
                    expected: ResourceType::Objlnk,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(err.path, Some(p("/3/0/22/0")));
        // Bad path; wrong field types; two values; invalid UTF-8; declared Integer, got vs.
        let err = decode(&hex("81 a2 00 66 2f332f782f39 02 01"), model).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Path(_)), "{err}");
        let err = decode(&hex("81 a2 00 66 2f352f302f30 08 61 41"), model).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::Syntax(ref m) if m.contains("vd")),
            "{err}"
        );
        let err = decode(&hex("81 a2 00 66 2f352f302f30 04 01"), model).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::Syntax(ref m) if m.contains("vb")),
            "{err}"
        );
        let err = decode(&hex("81 a3 00 66 2f332f302f39 02 01 03 61 31"), model).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
        let err = decode(&hex("81 a2 00 66 2f332f302f30 03 61 ff"), model).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
        let err = decode(&hex("81 a2 00 66 2f332f302f39 03 62 3935"), model).unwrap_err();
        assert_eq!(err.path, Some(p("/3/0/9")));
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::WrongType { .. })
            ),
            "{err}"
        );
        // A lying array length does not allocate: it runs out of input.
        let err = decode(&hex("9b ffffffffffffffff a0"), model).unwrap_err();
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Truncated | DecodeErrorKind::Syntax(_)
            ),
            "{err}"
        );
        // A stray break.
        let err = decode(&hex("81 a2 00 66 2f332f302f39 61 78 ff"), model).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
    }

    proptest! {
        #[test]
        fn records_round_trip(records in any_records()) {
            let bytes = encode(&records).unwrap();
            prop_assert_eq!(decode(&bytes, builtin()).unwrap(), records);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, builtin());
        }

        #[test]
        fn mutated_payloads_never_panic(
            flips in proptest::collection::vec((0usize..182, any::<u8>()), 1..4),
        ) {
            let mut bytes = hex(TS_DEVICE_CBOR);
            for (i, b) in flips {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            let _ = decode(&bytes, builtin());
        }
    }
}
