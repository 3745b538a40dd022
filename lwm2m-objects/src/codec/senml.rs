//! The SenML logic shared by SenML JSON ([`super::senml_json`]) and SenML CBOR
//! ([`super::senml_cbor`]), and in part by LwM2M JSON: records as carried ([`RawRecord`]), base
//! fields (RFC 8428 §4.5), names to paths (§4.5.1), typing through the object model (OMA LwM2M TS
//! Core 1.1 §7.4.4), and the naming plan and value fields used when encoding.
//!
//! Decoding is two steps: the format-specific module reads each record's fields as carried, then
//! [`resolve`] applies the base fields, turns names into [`Path`]s and types values through the
//! [`ObjectModel`]. Encoding writes one `bn` (the common parent of all paths, ending in `/`) on the
//! first record and relative names after it ([`plan_names`]), as the TS examples and Leshan do.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{ContentFormat, DecodeError, DecodeErrorKind, Record, declared_type};
use crate::model::ObjectModel;
use crate::node::TreeError;
use crate::path::{Path, PathError};
use crate::value::{ObjLink, ResourceType, Value, ValueError};

/// A SenML number as carried: integers stay exact, floats stay floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SenmlNumber {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl SenmlNumber {
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            SenmlNumber::Unsigned(u) => u as f64,
            SenmlNumber::Signed(i) => i as f64,
            SenmlNumber::Float(f) => f,
        }
    }

    fn to_i128(self) -> Option<i128> {
        match self {
            SenmlNumber::Unsigned(u) => Some(i128::from(u)),
            SenmlNumber::Signed(i) => Some(i128::from(i)),
            SenmlNumber::Float(_) => None,
        }
    }

    fn from_i128(v: i128) -> SenmlNumber {
        if let Ok(i) = i64::try_from(v) {
            SenmlNumber::Signed(i)
        } else if let Ok(u) = u64::try_from(v) {
            SenmlNumber::Unsigned(u)
        } else {
            SenmlNumber::Float(v as f64)
        }
    }

    /// The value before typing: an integer that fits i64 is an Integer, a larger one an Unsigned
    /// Integer, a float a Float (even when integral: the sender chose a float).
    fn into_value(self) -> Value {
        match self {
            SenmlNumber::Unsigned(u) => match i64::try_from(u) {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::UnsignedInteger(u),
            },
            SenmlNumber::Signed(i) => Value::Integer(i),
            SenmlNumber::Float(f) => Value::Float(f),
        }
    }
}

/// A record value as carried, before typing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    /// `v`
    Number(SenmlNumber),
    /// `vs`
    String(String),
    /// `vb`
    Boolean(bool),
    /// `vd` in CBOR: a byte string.
    Data(Vec<u8>),
    /// `vd` in JSON: base64url text (decoded when typed, so errors carry the path).
    Base64(String),
    /// `vlo` (TS Core 1.1 §7.4.4): `"object:instance"`.
    ObjLink(String),
}

/// One SenML record as carried, before base fields are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawRecord {
    /// Byte offset of the record in the payload, when known.
    pub offset: Option<usize>,
    pub base_name: Option<String>,
    pub base_time: Option<f64>,
    pub base_value: Option<SenmlNumber>,
    pub name: Option<String>,
    pub time: Option<f64>,
    pub value: Option<RawValue>,
}

impl RawRecord {
    pub(crate) fn new(offset: Option<usize>) -> RawRecord {
        RawRecord {
            offset,
            ..RawRecord::default()
        }
    }

    /// Sets the value; a record carries at most one of `v`, `vs`, `vb`, `vd`, `vlo`.
    pub(crate) fn set_value(&mut self, value: RawValue) -> Result<(), String> {
        if self.value.is_some() {
            return Err(
                "a record carries more than one value field (v, vs, vb, vd, vlo)".to_owned(),
            );
        }
        self.value = Some(value);
        Ok(())
    }
}

/// Applies base fields (RFC 8428 §4.5: a base field applies to its record and every later record
/// until replaced), resolves names to paths and types values through the model.
pub(crate) fn resolve(
    format: ContentFormat,
    raws: Vec<RawRecord>,
    model: &ObjectModel,
) -> Result<Vec<Record>, DecodeError> {
    let mut base_name: Option<String> = None;
    let mut base_time: Option<f64> = None;
    let mut base_value: Option<SenmlNumber> = None;
    let mut records = Vec::with_capacity(raws.len());
    for raw in raws {
        let offset = raw.offset;
        if raw.base_name.is_some() {
            base_name = raw.base_name;
        }
        if raw.base_time.is_some() {
            base_time = raw.base_time;
        }
        if raw.base_value.is_some() {
            base_value = raw.base_value;
        }
        let path = resolve_name(base_name.as_deref(), raw.name.as_deref())
            .map_err(|kind| at(DecodeError::new(format, kind), offset))?;
        let fail =
            |kind: DecodeErrorKind| at(DecodeError::new(format, kind), offset).with_path(path);
        // RFC 8428 §4.5.3: time = base time + time; a record with neither has no time ("now").
        let time = match (base_time, raw.time) {
            (None, None) => None,
            (bt, t) => {
                let sum = bt.unwrap_or(0.0) + t.unwrap_or(0.0);
                if !sum.is_finite() {
                    return Err(fail(DecodeErrorKind::Syntax(
                        "the record's time is not a finite number".to_owned(),
                    )));
                }
                Some(sum)
            }
        };
        let value = match raw.value {
            None => None,
            Some(value) => {
                if path.depth() < 3 {
                    return Err(fail(DecodeErrorKind::Tree(TreeError::NotAValuePath {
                        path,
                        depth: path.depth(),
                    })));
                }
                // RFC 8428 §4.5.2: the base value is added to `v`.
                let value = match (value, base_value) {
                    (RawValue::Number(v), Some(bv)) => RawValue::Number(add_numbers(bv, v)),
                    (value, _) => value,
                };
                let typed = typed_value(value, declared_type(model, &path))
                    .map_err(|e| fail(DecodeErrorKind::Value(e)))?;
                Some(typed)
            }
        };
        records.push(Record { path, time, value });
    }
    Ok(records)
}

fn add_numbers(a: SenmlNumber, b: SenmlNumber) -> SenmlNumber {
    match (a.to_i128(), b.to_i128()) {
        // Both within i64/u64: the i128 sum cannot overflow.
        (Some(x), Some(y)) => SenmlNumber::from_i128(x + y),
        _ => SenmlNumber::Float(a.to_f64() + b.to_f64()),
    }
}

/// The path named by base name + name (RFC 8428 §4.5.1: plain concatenation).
///
/// Accepted spellings: `bn:"/3/0/", n:"0"` (TS and Leshan), `bn:"/3/0", n:"/0"`, a base name or a
/// name alone. Tolerated, as Leshan does: a missing leading `/` (`"3/0/0"`), one trailing `/`
/// (`"/3/0/"` naming the instance), and `bn:"/3/0/", n:"/0"` (the doubled `/` is dropped).
pub(crate) fn resolve_name(
    base_name: Option<&str>,
    name: Option<&str>,
) -> Result<Path, DecodeErrorKind> {
    let text: Cow<'_, str> = match (base_name, name) {
        (None, None) => {
            return Err(DecodeErrorKind::Syntax(
                "a record has no name (bn or n)".to_owned(),
            ));
        }
        (Some(b), None) => Cow::Borrowed(b),
        (None, Some(n)) => Cow::Borrowed(n),
        (Some(b), Some(n)) => match (b.ends_with('/'), n.strip_prefix('/')) {
            (true, Some(rest)) => Cow::Owned(format!("{b}{rest}")),
            _ => Cow::Owned(format!("{b}{n}")),
        },
    };
    parse_name(&text).map_err(DecodeErrorKind::Path)
}

fn parse_name(text: &str) -> Result<Path, PathError> {
    if text.is_empty() {
        return Err(PathError::NoLeadingSlash {
            path: String::new(),
        });
    }
    let rooted: Cow<'_, str> = if text.starts_with('/') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("/{text}"))
    };
    let trimmed = match rooted.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => &rooted,
    };
    trimmed.parse()
}

/// Types a carried value: through the declared type when the model knows the resource (exact
/// conversions only, [`Value::coerce`]), otherwise by what was carried (`v` integer → Integer or,
/// above i64, Unsigned Integer; `v` float → Float; `vs` → String; `vb` → Boolean; `vd` → Opaque;
/// `vlo` → Objlnk).
pub(crate) fn typed_value(
    raw: RawValue,
    declared: Option<ResourceType>,
) -> Result<Value, ValueError> {
    let value = match raw {
        RawValue::Number(n) => n.into_value(),
        RawValue::String(s) => Value::String(s),
        RawValue::Boolean(b) => Value::Boolean(b),
        RawValue::Data(bytes) => Value::Opaque(bytes),
        RawValue::Base64(text) => match decode_base64(&text) {
            Some(bytes) => Value::Opaque(bytes),
            None => {
                return Err(ValueError::Unparsable {
                    expected: ResourceType::Opaque,
                    text: clip(&text),
                });
            }
        },
        RawValue::ObjLink(text) => Value::Objlnk(text.parse::<ObjLink>()?),
    };
    match declared {
        Some(ty) => value.coerce(ty),
        None => Ok(value),
    }
}

/// Error texts quote at most this many characters of the offending value.
const CLIP: usize = 64;

fn clip(text: &str) -> String {
    match text.char_indices().nth(CLIP) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or("")),
        None => text.to_owned(),
    }
}

const PAD_INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// RFC 8428 §5: data values are base64url (RFC 4648 §5) without padding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, PAD_INDIFFERENT);
const BASE64STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_INDIFFERENT);

/// Writes data values as RFC 8428 §5 asks: base64url without padding.
pub(crate) fn encode_base64url(bytes: &[u8]) -> String {
    BASE64URL.encode(bytes)
}

/// Decodes base64url as RFC 8428 §5 asks, and also the standard alphabet and padded forms that
/// some clients send (and that LwM2M JSON `sv` opaque values use, TS Core 1.0 §6.4.4).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64URL
        .decode(text)
        .or_else(|_| BASE64STD.decode(text))
        .ok()
}

/// The DecodeError for a must-understand field (RFC 8428 §4.4: a label ending in `_`) we do not know.
pub(crate) fn must_understand(
    format: ContentFormat,
    key: &str,
    offset: Option<usize>,
) -> DecodeError {
    at(
        DecodeError::new(
            format,
            DecodeErrorKind::Unsupported(format!(
                "the must-understand field {:?} (RFC 8428 §4.4)",
                clip(key)
            )),
        ),
        offset,
    )
}

pub(crate) fn syntax(format: ContentFormat, message: impl Into<String>) -> DecodeError {
    DecodeError::new(format, DecodeErrorKind::Syntax(message.into()))
}

/// Adds the offset to an error when it is known.
pub(crate) fn at(error: DecodeError, offset: Option<usize>) -> DecodeError {
    match offset {
        Some(o) => error.at(o),
        None => error,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared encoding plan.
// ---------------------------------------------------------------------------------------------

/// What one value is written as (TS Core 1.1 §7.4.4 Table "SenML JSON/CBOR representation").
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SenmlField<'a> {
    /// No value field (a name alone, or an executable resource).
    Absent,
    /// `v`: Integer, Unsigned Integer, Time (integers) and Float (a float, even when integral).
    Number(SenmlNumber),
    /// `vs`: String and Corelnk.
    Text(&'a str),
    /// `vb`
    Boolean(bool),
    /// `vd`: Opaque, and untyped bytes.
    Data(&'a [u8]),
    /// `vlo`
    ObjLink(ObjLink),
}

pub(crate) fn field_of(value: &Value) -> SenmlField<'_> {
    match value {
        Value::Integer(i) | Value::Time(i) => SenmlField::Number(SenmlNumber::Signed(*i)),
        Value::UnsignedInteger(u) => SenmlField::Number(SenmlNumber::Unsigned(*u)),
        Value::Float(f) => SenmlField::Number(SenmlNumber::Float(*f)),
        Value::String(s) | Value::Corelnk(s) => SenmlField::Text(s),
        Value::Boolean(b) => SenmlField::Boolean(*b),
        Value::Opaque(bytes) | Value::Untyped(bytes) => SenmlField::Data(bytes),
        Value::Objlnk(link) => SenmlField::ObjLink(*link),
        Value::None => SenmlField::Absent,
    }
}

/// A time as written: integral times as integers (shorter, and what clients send), others as floats.
pub(crate) fn time_number(t: f64) -> SenmlNumber {
    // 2^63: integral floats in (-2^63, 2^63) convert to i64 and back exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if t.fract() == 0.0 && t > -LIMIT && t < LIMIT {
        SenmlNumber::Signed(t as i64)
    } else {
        SenmlNumber::Float(t)
    }
}

/// The base name written on the first record and each record's name relative to it.
///
/// The base name is the deepest path that is a strict parent of every record's path, written with
/// a trailing `/` (`"/3/0/"`, names `"0"`, `"6/0"`: TS Core 1.1 §7.4.4 example). When the only
/// common parent is the root, there is no base name and names are absolute (`"/3/0/0"`).
pub(crate) fn plan_names(records: &[Record]) -> (Option<String>, Vec<String>) {
    let mut iter = records.iter();
    let mut prefix = iter.next().map(|r| r.path.ids()).unwrap_or_default();
    let mut min_depth = prefix.len();
    for record in iter {
        let ids = record.path.ids();
        let common = prefix.iter().zip(&ids).take_while(|(a, b)| a == b).count();
        prefix.truncate(common);
        min_depth = min_depth.min(ids.len());
    }
    prefix.truncate(min_depth.saturating_sub(1));
    if prefix.is_empty() {
        return (None, records.iter().map(|r| r.path.to_string()).collect());
    }
    let join = |ids: &[u16]| ids.iter().map(u16::to_string).collect::<Vec<_>>().join("/");
    let base = format!("/{}/", join(&prefix));
    let names = records
        .iter()
        .map(|r| join(r.path.ids().get(prefix.len()..).unwrap_or_default()))
        .collect();
    (Some(base), names)
}

/// Records and models shared by the tests of the SenML JSON, SenML CBOR and LwM2M JSON codecs.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    use super::*;
    use crate::node::Node;
    use crate::test_support::instance_of;
    use proptest::prelude::*;

    pub(crate) fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    pub(crate) fn rec(path: &str, value: Value) -> Record {
        Record::new(p(path), value)
    }

    pub(crate) fn timed(path: &str, time: f64, value: Value) -> Record {
        Record {
            path: p(path),
            time: Some(time),
            value: Some(value),
        }
    }

    pub(crate) fn builtin() -> &'static ObjectModel {
        let model = ObjectModel::builtin();
        assert!(
            model.resource(3, 0).is_some(),
            "the builtin object model (registry.rs) is empty: regenerate it first"
        );
        model
    }

    /// The Device object instance of the TS Core 1.1 §7.4.4 "Read /3/0" example, as records.
    pub(crate) fn device_records() -> Vec<Record> {
        vec![
            rec("/3/0/0", Value::String("Open Mobile Alliance".into())),
            rec("/3/0/1", Value::String("Lightweight M2M Client".into())),
            rec("/3/0/2", Value::String("345000123".into())),
            rec("/3/0/3", Value::String("1.0".into())),
            rec("/3/0/6/0", Value::Integer(1)),
            rec("/3/0/6/1", Value::Integer(5)),
            rec("/3/0/7/0", Value::Integer(3800)),
            rec("/3/0/7/1", Value::Integer(5000)),
            rec("/3/0/8/0", Value::Integer(125)),
            rec("/3/0/8/1", Value::Integer(900)),
            rec("/3/0/9", Value::Integer(100)),
            rec("/3/0/10", Value::Integer(15)),
            rec("/3/0/11/0", Value::Integer(0)),
            rec("/3/0/13", Value::Time(1_367_491_215)),
            rec("/3/0/14", Value::String("+02:00".into())),
            rec("/3/0/16", Value::String("U".into())),
        ]
    }

    /// Records for any instances of builtin objects, with values of the declared types and
    /// optional times.
    pub(crate) fn any_records() -> impl Strategy<Value = Vec<Record>> {
        let defs: Vec<&'static crate::ObjectDef> = builtin().objects().collect();
        let instance = proptest::sample::select(defs)
            .prop_flat_map(|def| (Just(def.id), instance_of(def, 0), 0u16..3))
            .prop_map(|(object, mut inst, id)| {
                inst.id = id;
                let at = Path::Instance(object, id);
                Node::Instance(inst)
                    .flatten(&at)
                    .into_iter()
                    .map(|(path, v)| (path, v.clone()))
                    .collect::<Vec<_>>()
            });
        let time = proptest::option::of(prop_oneof![
            any::<i32>().prop_map(f64::from),
            (-1e12f64..1e12f64),
            Just(1.276020076001e9),
        ]);
        proptest::collection::vec(instance, 1..3).prop_flat_map(move |groups| {
            let entries: Vec<(Path, Value)> = groups.into_iter().flatten().collect();
            let n = entries.len();
            proptest::collection::vec(time.clone(), n).prop_map(move |times| {
                entries
                    .iter()
                    .cloned()
                    .zip(times)
                    .map(|((path, value), time)| Record {
                        path,
                        time,
                        value: Some(value),
                    })
                    .collect::<Vec<_>>()
            })
        })
    }
}
