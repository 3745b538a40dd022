//! SenML JSON (`application/senml+json`, content format 110; RFC 8428 §5, OMA LwM2M TS Core 1.1
//! §7.4.4) and the SenML logic shared with [`super::senml_cbor`]: base fields, names to paths,
//! typing values through the object model, and the naming plan used when encoding.
//!
//! Decoding is two steps: the format-specific part reads each record's fields as carried
//! (`RawRecord`), then `resolve` applies the base fields (RFC 8428 §4.5, §4.6), turns names into
//! [`Path`]s and types values through the [`ObjectModel`]. Encoding writes one `bn` (the common
//! parent of all paths, ending in `/`) on the first record and relative names after it, the way
//! the TS examples and Leshan do, with each record's time as an absolute `t`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, Record, declared_type};
use crate::model::ObjectModel;
use crate::node::TreeError;
use crate::path::{Path, PathError};
use crate::value::{ObjLink, ResourceType, Value, ValueError};

const FORMAT: ContentFormat = ContentFormat::SenmlJson;

/// Decodes a SenML JSON pack into records (names resolved to paths, values typed by the model).
///
/// An empty payload is an empty pack: clients answer a Read of an empty multiple-instance resource
/// that way (see OMA_LwM2M_for_Developers issue #494).
pub fn decode(bytes: &[u8], model: &ObjectModel) -> Result<Vec<Record>, DecodeError> {
    let Some((text, root)) = parse_json(FORMAT, bytes)? else {
        return Ok(Vec::new());
    };
    let elements = match root {
        serde_json::Value::Array(elements) => elements,
        other => {
            let offset = text.len() - text.trim_start().len();
            let found = json_kind(&other);
            return Err(syntax(
                FORMAT,
                format!("a SenML pack must be a JSON array, found {found}"),
            )
            .at(offset));
        }
    };
    let scanned = scan_elements(text, PackArray::Root);
    let raws = elements
        .iter()
        .enumerate()
        .map(|(i, element)| raw_record(element, scanned.get(i)))
        .collect::<Result<Vec<_>, _>>()?;
    resolve(FORMAT, raws, model)
}

/// Encodes records as a SenML JSON pack.
pub fn encode(records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let (base_name, names) = plan_names(records);
    let mut out = Vec::with_capacity(records.len());
    for (i, (record, name)) in records.iter().zip(names).enumerate() {
        let unsupported = |what: &str| EncodeError::Unsupported {
            format: FORMAT,
            path: record.path,
            what: what.to_owned(),
        };
        let mut json = JsonRecord {
            bn: if i == 0 { base_name.clone() } else { None },
            n: Some(name),
            ..JsonRecord::default()
        };
        if let Some(t) = record.time {
            json.t = Some(
                json_number(time_number(t))
                    .ok_or_else(|| unsupported("a time that is not a finite number"))?,
            );
        }
        match record.value.as_ref().map(field_of) {
            None | Some(SenmlField::Absent) => {}
            Some(SenmlField::Number(n)) => {
                json.v =
                    Some(json_number(n).ok_or_else(|| unsupported("a float that is not finite"))?);
            }
            Some(SenmlField::Text(s)) => json.vs = Some(s),
            Some(SenmlField::Boolean(b)) => json.vb = Some(b),
            Some(SenmlField::Data(bytes)) => json.vd = Some(BASE64URL.encode(bytes)),
            Some(SenmlField::ObjLink(link)) => json.vlo = Some(link.to_string()),
        }
        out.push(json);
    }
    serde_json::to_vec(&out).map_err(|e| EncodeError::Unsupported {
        format: FORMAT,
        path: Path::Root,
        what: format!("records serde_json refused: {e}"),
    })
}

/// One record as written; field order follows the TS 1.1 §7.4.4 examples (`bn`, `n`, value).
#[derive(Debug, Default, serde::Serialize)]
struct JsonRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    bn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vb: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vs: Option<&'a str>,
}

fn json_number(n: SenmlNumber) -> Option<serde_json::Number> {
    match n {
        SenmlNumber::Unsigned(u) => Some(u.into()),
        SenmlNumber::Signed(i) => Some(i.into()),
        SenmlNumber::Float(f) => serde_json::Number::from_f64(f),
    }
}

/// Reads one JSON element of the pack into a [`RawRecord`].
fn raw_record(
    element: &serde_json::Value,
    scanned: Option<&ScannedElement<'_>>,
) -> Result<RawRecord, DecodeError> {
    let offset = scanned.map(|s| s.offset);
    let fail = |msg: String| at(syntax(FORMAT, msg), offset);
    let serde_json::Value::Object(fields) = element else {
        return Err(fail(format!(
            "a SenML record must be a JSON object, found {}",
            json_kind(element)
        )));
    };
    let mut record = RawRecord::new(offset);
    for (key, field) in fields {
        let exact = scanned.and_then(|s| s.number(key));
        let number = || match field {
            serde_json::Value::Number(n) => Ok(number_from_json(n, exact)),
            other => Err(fail(format!(
                "field {key:?} must be a number, found {}",
                json_kind(other)
            ))),
        };
        let text = || match field {
            serde_json::Value::String(s) => Ok(s.clone()),
            other => Err(fail(format!(
                "field {key:?} must be a string, found {}",
                json_kind(other)
            ))),
        };
        match key.as_str() {
            "bn" => record.base_name = Some(text()?),
            "bt" => record.base_time = Some(number()?.to_f64()),
            "bv" => record.base_value = Some(number()?),
            "n" => record.name = Some(text()?),
            "t" => record.time = Some(number()?.to_f64()),
            "v" => record
                .set_value(RawValue::Number(number()?))
                .map_err(fail)?,
            "vs" => record.set_value(RawValue::String(text()?)).map_err(fail)?,
            "vd" => record.set_value(RawValue::Base64(text()?)).map_err(fail)?,
            "vlo" => record.set_value(RawValue::ObjLink(text()?)).map_err(fail)?,
            "vb" => match field {
                serde_json::Value::Bool(b) => {
                    record.set_value(RawValue::Boolean(*b)).map_err(fail)?
                }
                other => {
                    return Err(fail(format!(
                        "field \"vb\" must be a boolean, found {}",
                        json_kind(other)
                    )));
                }
            },
            other if other.ends_with('_') => return Err(must_understand(FORMAT, other, offset)),
            // RFC 8428 §4.4: other unknown fields are ignored; bver, bu, u, s, bs and ut carry
            // nothing LwM2M uses.
            _ => {}
        }
    }
    Ok(record)
}

/// A JSON number as SenML carries it. Integers are exact in serde_json; floats are re-read from
/// their text (when the scanner found it) because serde_json's default float parser may be off by
/// one unit in the last place, and round trips must be exact.
pub(crate) fn number_from_json(n: &serde_json::Number, text: Option<&str>) -> SenmlNumber {
    if let Some(u) = n.as_u64() {
        SenmlNumber::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        SenmlNumber::Signed(i)
    } else {
        let approx = n.as_f64().unwrap_or(f64::NAN);
        SenmlNumber::Float(text.and_then(|t| t.parse::<f64>().ok()).unwrap_or(approx))
    }
}

/// A short name of a JSON value's kind, for error messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// JSON text: syntax check with serde_json, and a scanner for offsets and exact number texts.
// ---------------------------------------------------------------------------------------------

/// Checks that `bytes` is UTF-8 JSON (RFC 8428 §5 allows only UTF-8) and parses it. serde_json
/// bounds nesting (128 levels) and rejects trailing data. `Ok(None)` for an empty or blank payload.
pub(crate) fn parse_json(
    format: ContentFormat,
    bytes: &[u8],
) -> Result<Option<(&str, serde_json::Value)>, DecodeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::new(format, DecodeErrorKind::InvalidUtf8).at(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value = serde_json::from_str(text).map_err(|e| json_error(format, text, &e))?;
    Ok(Some((text, value)))
}

fn json_error(format: ContentFormat, text: &str, e: &serde_json::Error) -> DecodeError {
    if e.classify() == serde_json::error::Category::Eof {
        return DecodeError::new(format, DecodeErrorKind::Truncated).at(text.len());
    }
    let message = e.to_string();
    // serde_json appends " at line L column C"; the position is carried as a byte offset instead.
    let message = match message.rsplit_once(" at line ") {
        Some((head, _)) => head.to_owned(),
        None => message,
    };
    syntax(format, message).at(line_column_offset(text, e.line(), e.column()))
}

/// The byte offset of serde_json's 1-based line and column (columns count bytes).
fn line_column_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// Which array of a JSON document holds the records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PackArray {
    /// The document is the array (SenML).
    Root,
    /// The array is the value of this member of the root object (LwM2M JSON `"e"`).
    RootMember(&'static str),
}

/// What the scanner found about one element of the record array.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScannedElement<'t> {
    /// Byte offset where the element starts.
    pub offset: usize,
    /// Number-valued members of the element: (key as written, number text).
    numbers: Vec<(&'t str, &'t str)>,
}

impl ScannedElement<'_> {
    /// The text of the number member `key` (the last one, as serde_json keeps the last duplicate).
    pub(crate) fn number(&self, key: &str) -> Option<&str> {
        self.numbers
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, text)| *text)
    }
}

/// Finds where each element of the record array starts and the texts of its number members.
///
/// Only run on text serde_json has accepted, so it can assume well-formed JSON; on anything else
/// it still terminates without panicking (every step advances and slices are checked).
pub(crate) fn scan_elements(text: &str, array: PackArray) -> Vec<ScannedElement<'_>> {
    enum Frame<'t> {
        Array {
            is_pack: bool,
        },
        Object {
            expecting_key: bool,
            key: &'t str,
            is_record: bool,
        },
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut out: Vec<ScannedElement<'_>> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
                i += 1;
            }
            b',' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = true;
                }
                i += 1;
            }
            b']' | b'}' => {
                stack.pop();
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                let token = text.get(i + 1..end.saturating_sub(1)).unwrap_or("");
                match stack.last_mut() {
                    Some(Frame::Object {
                        expecting_key: true,
                        key,
                        ..
                    }) => *key = token,
                    _ => {
                        element_start(&stack, &mut out, i, None);
                    }
                }
                i = end;
            }
            b'[' | b'{' => {
                let is_record = element_start(&stack, &mut out, i, None);
                if b == b'[' {
                    let is_pack = match (array, stack.as_slice()) {
                        (PackArray::Root, []) => true,
                        (
                            PackArray::RootMember(member),
                            [
                                Frame::Object {
                                    key,
                                    is_record: false,
                                    ..
                                },
                            ],
                        ) => *key == member,
                        _ => false,
                    };
                    if is_pack {
                        // A repeated member: serde_json keeps the last one, and so do we.
                        out.clear();
                    }
                    stack.push(Frame::Array { is_pack });
                } else {
                    stack.push(Frame::Object {
                        expecting_key: true,
                        key: "",
                        is_record,
                    });
                }
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                // A number or a literal (true, false, null).
                let end = bytes
                    .iter()
                    .skip(i)
                    .position(|c| c.is_ascii_whitespace() || b",]}:".contains(c))
                    .map_or(bytes.len(), |n| i + n);
                let token = text.get(i..end).unwrap_or("");
                let number = (b == b'-' || b.is_ascii_digit()).then_some(token);
                element_start(&stack, &mut out, i, number);
                i = end.max(i + 1);
            }
        }
    }

    /// Notes a value starting at `offset`; returns whether it is an element of the pack array.
    fn element_start<'t>(
        stack: &[Frame<'t>],
        out: &mut Vec<ScannedElement<'t>>,
        offset: usize,
        number: Option<&'t str>,
    ) -> bool {
        match stack {
            [.., Frame::Array { is_pack: true }] => {
                out.push(ScannedElement {
                    offset,
                    numbers: Vec::new(),
                });
                true
            }
            [
                ..,
                Frame::Object {
                    key,
                    is_record: true,
                    ..
                },
            ] => {
                if let (Some(text), Some(element)) = (number, out.last_mut()) {
                    element.numbers.push((key, text));
                }
                false
            }
            _ => false,
        }
    }

    /// The index just past the string starting with the quote at `start`.
    fn string_end(bytes: &[u8], start: usize) -> usize {
        let mut j = start + 1;
        while let Some(&c) = bytes.get(j) {
            match c {
                b'\\' => j += 2,
                b'"' => return j + 1,
                _ => j += 1,
            }
        }
        bytes.len()
    }

    out
}

// ---------------------------------------------------------------------------------------------
// Shared SenML model: records as carried, resolution and typing (used by SenML CBOR too).
// ---------------------------------------------------------------------------------------------

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
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

    /// OMA LwM2M TS Core 1.1 §7.4.4, SenML JSON payload of a Read of /3/0 (the same text is in
    /// Leshan's `AbstractSenMLTest.givenSenMLJsonExample()` and `LwM2mNodeDecoderTest`).
    const TS_DEVICE_JSON: &str = concat!(
        r#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},"#,
        r#"{"n":"1","vs":"Lightweight M2M Client"},"#,
        r#"{"n":"2","vs":"345000123"},"#,
        r#"{"n":"3","vs":"1.0"},"#,
        r#"{"n":"6/0","v":1},{"n":"6/1","v":5},"#,
        r#"{"n":"7/0","v":3800},{"n":"7/1","v":5000},"#,
        r#"{"n":"8/0","v":125},{"n":"8/1","v":900},"#,
        r#"{"n":"9","v":100},"#,
        r#"{"n":"10","v":15},"#,
        r#"{"n":"11/0","v":0},"#,
        r#"{"n":"13","v":1367491215},"#,
        r#"{"n":"14","vs":"+02:00"},"#,
        r#"{"n":"16","vs":"U"}]"#
    );

    fn decode_str(text: &str) -> Result<Vec<Record>, DecodeError> {
        decode(text.as_bytes(), builtin())
    }

    fn decode_err(text: &str) -> DecodeError {
        decode(text.as_bytes(), builtin()).unwrap_err()
    }

    #[test]
    fn ts_device_example_decodes_with_model_types() {
        assert_eq!(decode_str(TS_DEVICE_JSON).unwrap(), device_records());
    }

    #[test]
    fn ts_device_example_is_what_we_encode() {
        let bytes = encode(&device_records()).unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), TS_DEVICE_JSON);
    }

    #[test]
    fn both_naming_styles_and_bn_or_n_alone() {
        let expected = vec![
            rec("/3/0/0", Value::String("A".into())),
            rec("/3/0/9", Value::Integer(95)),
        ];
        // bn ending in "/" and relative n (TS, Leshan).
        let a = r#"[{"bn":"/3/0/","n":"0","vs":"A"},{"n":"9","v":95}]"#;
        // bn without trailing "/" and n starting with "/".
        let b = r#"[{"bn":"/3/0","n":"/0","vs":"A"},{"n":"/9","v":95}]"#;
        // Each record a full base name (Leshan `senml_json_decode_resources`).
        let c = r#"[{"bn":"/3/0/0","vs":"A"},{"bn":"/3/0/9","v":95}]"#;
        // Absolute names only; and the doubled slash tolerated.
        let d = r#"[{"n":"/3/0/0","vs":"A"},{"n":"/3/0/9","v":95}]"#;
        let e = r#"[{"bn":"/3/0/","n":"/0","vs":"A"},{"n":"9","v":95}]"#;
        for text in [a, b, c, d, e] {
            assert_eq!(decode_str(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn leshan_multiple_bn_acl_object() {
        // Leshan LwM2mNodeDecoderTest.senml_json_decode_acl_object.
        let text = r#"[{"bn":"/2/3/","n":"0","v":3},{"n":"1","v":1},{"n":"3","v":123},{"bn":"/2/2/","n":"0","v":4},{"n":"1","v":2},{"n":"3","v":124}]"#;
        let records = decode_str(text).unwrap();
        let paths: Vec<String> = records.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(
            paths,
            ["/2/3/0", "/2/3/1", "/2/3/3", "/2/2/0", "/2/2/1", "/2/2/3"]
        );
        assert_eq!(records[5].value, Some(Value::Integer(124)));
    }

    #[test]
    fn leshan_number_edge_cases() {
        // Leshan LwM2mNodeDecoderTest: senml_json_decode_single_resource_using_exponantial_notation,
        // senml_json_decode_long, and a float for a Float resource.
        assert_eq!(
            decode_str(r#"[{"bn":"/3/0/13","v":1.638435E9}]"#).unwrap(),
            vec![rec("/3/0/13", Value::Time(1_638_435_000))]
        );
        assert_eq!(
            decode_str(r#"[{"n":"/1/0/2","v":9223372036854775800}]"#).unwrap()[0].value,
            Some(Value::Integer(9_223_372_036_854_775_800))
        );
        assert_eq!(
            decode_str(r#"[{"n":"/6/0/3","v":20.0}]"#).unwrap(),
            vec![rec("/6/0/3", Value::Float(20.0))]
        );
        // Unsigned Integer beyond i64 (TS 1.1 type; /5/0/13 Maximum Defer Period).
        assert_eq!(
            decode_str(r#"[{"n":"/5/0/13","v":18446744073709551615}]"#).unwrap()[0].value,
            Some(Value::UnsignedInteger(u64::MAX))
        );
    }

    #[test]
    fn leshan_opaque_and_empty_payloads() {
        // Leshan senml_json_decode_opaque_resource: "q83v" is base64 of AB CD EF.
        assert_eq!(
            decode_str(r#"[{"bn":"/0/0/3","vd":"q83v"}]"#).unwrap(),
            vec![rec("/0/0/3", Value::Opaque(vec![0xab, 0xcd, 0xef]))]
        );
        // Leshan senml_json_empty_multi_resource (OMA_LwM2M_for_Developers#494).
        assert_eq!(decode_str("").unwrap(), vec![]);
        assert_eq!(decode_str("  \n").unwrap(), vec![]);
        assert_eq!(decode_str("[]").unwrap(), vec![]);
    }

    #[test]
    fn leshan_read_composite_names_without_values() {
        // Leshan senml_json_decode_path_using_base_name: a Read-Composite request body.
        let records =
            decode_str(r#"[{"bn":"/4/0/", "n":"0"},{"n":"1"},{"n":"2"},{"n":"/3"}]"#).unwrap();
        let expected: Vec<Record> = ["/4/0/0", "/4/0/1", "/4/0/2", "/4/0/3"]
            .iter()
            .map(|s| Record {
                path: p(s),
                time: None,
                value: None,
            })
            .collect();
        // The last name is "/4/0/" + "/3" with the doubled slash dropped.
        assert_eq!(records, expected);
        let encoded = encode(&expected).unwrap();
        assert_eq!(
            std::str::from_utf8(&encoded).unwrap(),
            r#"[{"bn":"/4/0/","n":"0"},{"n":"1"},{"n":"2"},{"n":"3"}]"#
        );
        // Names at object and instance depth are fine without a value.
        let records = decode_str(r#"[{"n":"/3"},{"n":"/1/0"},{"n":"/"}]"#).unwrap();
        assert_eq!(records[0].path, Path::Object(3));
        assert_eq!(records[1].path, Path::Instance(1, 0));
        assert_eq!(records[2].path, Path::Root);
    }

    #[test]
    fn leshan_timestamped_records() {
        // Leshan senml_timestamped_resources / senml_multiple_timestamped_nodes: bt applies to
        // later records; a record with bt and no t is at bt.
        let text = concat!(
            r#"[{"bn":"/4/0/","bt":268600000,"n":"0","v":1,"t":1},"#,
            r#"{"n":"1","v":2,"t":2},{"n":"1","v":3,"t":3},"#,
            r#"{"bn":"/3/0/7/","n":"0","v":3800}]"#
        );
        assert_eq!(
            decode_str(text).unwrap(),
            vec![
                timed("/4/0/0", 268_600_001.0, Value::Integer(1)),
                timed("/4/0/1", 268_600_002.0, Value::Integer(2)),
                timed("/4/0/1", 268_600_003.0, Value::Integer(3)),
                timed("/3/0/7/0", 268_600_000.0, Value::Integer(3800)),
            ]
        );
    }

    #[test]
    fn rfc8428_relative_times_with_lwm2m_names() {
        // RFC 8428 §5.1.2, second example (bt, bu, bver, then t relative to bt), with the URN names
        // replaced by LwM2M paths: /3/0/7/0 for "voltage", /3/0/8/0 for "current".
        let text = r#"[
             {"bn":"/3/0/","bt":1.276020076001e+09,
              "bu":"A","bver":5,
              "n":"7/0","u":"V","v":120.1},
             {"n":"8/0","t":-5,"v":1.2},
             {"n":"8/0","t":-4,"v":1.3},
             {"n":"8/0","t":-3,"v":1.4},
             {"n":"8/0","t":-2,"v":1.5},
             {"n":"8/0","t":-1,"v":1.6},
             {"n":"8/0","v":1.7}
           ]"#;
        // A custom model types these as Float (the Device object says Integer, and 120.1 is not).
        let records = decode(text.as_bytes(), &ObjectModel::empty()).unwrap();
        let bt = 1.276020076001e+09;
        assert_eq!(records.len(), 7);
        assert_eq!(records[0], timed("/3/0/7/0", bt, Value::Float(120.1)));
        assert_eq!(records[1], timed("/3/0/8/0", bt - 5.0, Value::Float(1.2)));
        assert_eq!(records[6], timed("/3/0/8/0", bt, Value::Float(1.7)));
        // With the Device model, 120.1 for an Integer resource is an exact-conversion error.
        let err = decode(text.as_bytes(), builtin()).unwrap_err();
        assert_eq!(err.path, Some(p("/3/0/7/0")));
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::OutOfRange { .. })
            ),
            "{err}"
        );
        assert!(err.offset.unwrap() > 0);
    }

    #[test]
    fn rfc8428_base_value_and_streaming_relative_times() {
        // RFC 8428 §5.1.2 third example (SensML stream): bt then t = 10, 20, …; with a bv added.
        let text = r#"[{"bn":"/10243/0/14","bt":1.320067464e+09,"bu":"%RH","v":21.2},
            {"t":10,"v":21.3},{"t":20,"v":21.4},{"bv":100,"t":30,"v":1}]"#;
        let records = decode_str(text).unwrap();
        assert_eq!(
            records[0],
            timed("/10243/0/14", 1_320_067_464.0, Value::Float(21.2))
        );
        assert_eq!(
            records[2],
            timed("/10243/0/14", 1_320_067_484.0, Value::Float(21.4))
        );
        // 100 + 1 as a Float resource (Active Energy).
        assert_eq!(
            records[3],
            timed("/10243/0/14", 1_320_067_494.0, Value::Float(101.0))
        );
        // Integer base values add exactly.
        let records = decode_str(r#"[{"bn":"/3/0/9","bv":40,"v":2}]"#).unwrap();
        assert_eq!(records[0].value, Some(Value::Integer(42)));
    }

    #[test]
    fn send_time_series_round_trips() {
        // A Send (TS Core 1.1 §6.4.2) of several points of /10243/0/14 (Active Energy) at
        // different times, plus a name-only record.
        let records = vec![
            timed("/10243/0/14", 1_700_000_000.0, Value::Float(1234.5)),
            timed("/10243/0/14", 1_700_000_900.0, Value::Float(1236.25)),
            timed("/10243/0/14", 1_700_001_800.5, Value::Float(1240.0)),
            timed("/10243/0/6", 1_700_001_800.5, Value::Float(-3.5)),
        ];
        let bytes = encode(&records).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            concat!(
                r#"[{"bn":"/10243/0/","n":"14","t":1700000000,"v":1234.5},"#,
                r#"{"n":"14","t":1700000900,"v":1236.25},"#,
                r#"{"n":"14","t":1700001800.5,"v":1240.0},"#,
                r#"{"n":"6","t":1700001800.5,"v":-3.5}]"#
            )
        );
        assert_eq!(decode(&bytes, builtin()).unwrap(), records);
    }

    #[test]
    fn every_resource_type_of_objects_3_to_7() {
        let model = builtin();
        let records = vec![
            rec(
                "/3/0/0",
                Value::String("Ferrite \"meter\" ü \u{1F600}".into()),
            ),
            rec("/3/0/9", Value::Integer(-7)),
            rec("/3/0/13", Value::Time(1_700_000_000)),
            rec(
                "/3/0/22/0",
                Value::Objlnk(ObjLink {
                    object: 10243,
                    instance: 0,
                }),
            ),
            rec("/3/0/22/1", Value::Objlnk(ObjLink::NULL)),
            rec("/4/0/4/0", Value::String("192.0.2.1".into())),
            rec("/5/0/0", Value::Opaque(vec![0, 1, 0xfe, 0xff])),
            rec("/5/0/13", Value::UnsignedInteger(u64::MAX)),
            rec("/5/0/14", Value::Boolean(true)),
            rec("/6/0/0", Value::Float(43.918998)),
            rec("/6/0/4", Value::Opaque(vec![])),
            rec("/7/0/8", Value::Integer(i64::MIN)),
            Record {
                path: p("/3/0/4"),
                time: None,
                value: None,
            },
        ];
        let bytes = encode(&records).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(r#"[{"n":"/3/0/0","vs":"Ferrite \"meter\" ü 😀"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"n":"/3/0/22/0","vlo":"10243:0"}"#),
            "{text}"
        );
        assert!(text.contains(r#"{"n":"/5/0/0","vd":"AAH-_w"}"#), "{text}");
        assert!(text.contains(r#"{"n":"/5/0/14","vb":true}"#), "{text}");
        assert!(text.contains(r#"{"n":"/3/0/4"}"#), "{text}");
        assert_eq!(decode(&bytes, model).unwrap(), records);
    }

    #[test]
    fn corelnk_and_unknown_resources() {
        static RESOURCES: [crate::ResourceDef; 1] = [crate::ResourceDef {
            id: 0,
            name: "Links",
            operations: crate::Operations::R,
            multiple: false,
            mandatory: false,
            ty: ResourceType::Corelnk,
            range: None,
            units: None,
        }];
        static LINKS: crate::ObjectDef = crate::ObjectDef {
            id: 33000,
            name: "Links test",
            urn: "urn:oma:lwm2m:x:33000",
            version: "1.0",
            lwm2m_version: "1.1",
            multiple: false,
            mandatory: false,
            resources: &RESOURCES,
        };
        let mut model = ObjectModel::empty();
        model.insert(&LINKS);
        let decoded = decode(br#"[{"n":"/33000/0/0","vs":"</3/0>"}]"#, &model).unwrap();
        assert_eq!(
            decoded,
            vec![rec("/33000/0/0", Value::Corelnk("</3/0>".into()))]
        );
        // Unknown resources are typed by what was carried.
        let text = r#"[{"bn":"/33000/0/","n":"1","v":3},{"n":"2","v":3.0},{"n":"3","vs":"x"},
            {"n":"4","vb":false},{"n":"5","vd":"AQ"},{"n":"6","vlo":"3:0"},{"n":"7","v":-2},
            {"n":"8","v":18446744073709551615}]"#;
        let values: Vec<Value> = decode(text.as_bytes(), &model)
            .unwrap()
            .into_iter()
            .filter_map(|r| r.value)
            .collect();
        assert_eq!(
            values,
            vec![
                Value::Integer(3),
                Value::Float(3.0),
                Value::String("x".into()),
                Value::Boolean(false),
                Value::Opaque(vec![1]),
                Value::Objlnk(ObjLink {
                    object: 3,
                    instance: 0
                }),
                Value::Integer(-2),
                Value::UnsignedInteger(u64::MAX),
            ]
        );
    }

    #[test]
    fn type_mismatches_carry_path_and_offset() {
        let text = r#"[{"bn":"/3/0/","n":"0","vs":"A"},{"n":"9","vs":"95"}]"#;
        let err = decode_err(text);
        assert_eq!(err.path, Some(p("/3/0/9")));
        assert_eq!(err.offset, Some(text.find(r#"{"n":"9""#).unwrap()));
        assert_eq!(
            err.kind,
            DecodeErrorKind::Value(ValueError::WrongType {
                expected: ResourceType::Integer,
                found: "String"
            })
        );
        // Opaque declared, vs given: no client sends that in SenML, so it is a type error.
        let err = decode_err(r#"[{"n":"/5/0/0","vs":"AQID"}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::WrongType { .. })
            ),
            "{err}"
        );
        let err = decode_err(r#"[{"n":"/5/0/14","v":1}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::WrongType { .. })
            ),
            "{err}"
        );
        let err = decode_err(r#"[{"n":"/5/0/13","v":-1}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::OutOfRange { .. })
            ),
            "{err}"
        );
        // A value for an executable resource.
        let err = decode_err(r#"[{"n":"/3/0/4","v":1}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::WrongType { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_payloads_are_rejected_with_position() {
        // Not an array.
        let err = decode_err(r#"  {"bn":"/3/0/0","v":1}"#);
        assert!(
            matches!(err.kind, DecodeErrorKind::Syntax(ref m) if m.contains("array")),
            "{err}"
        );
        assert_eq!(err.offset, Some(2));
        // A record that is not an object.
        let err = decode_err(r#"[{"n":"/3/0/9","v":1}, 5]"#);
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
        assert_eq!(err.offset, Some(23));
        // Bad base64.
        let err = decode_err(r#"[{"n":"/5/0/0","vd":"!!notbase64"}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::Unparsable {
                    expected: ResourceType::Opaque,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(err.path, Some(p("/5/0/0")));
        // Bad paths.
        for text in [
            r#"[{"n":"/3/x/0","v":1}]"#,
            r#"[{"n":"/3/0/65535","v":1}]"#,
            r#"[{"n":"/3/0/7/0/1","v":1}]"#,
            r#"[{"n":"urn:dev:ow:10e2073a01080063","v":23.1}]"#,
            r#"[{"bn":"","v":1}]"#,
        ] {
            let err = decode_err(text);
            assert!(
                matches!(err.kind, DecodeErrorKind::Path(_)),
                "{text}: {err}"
            );
            assert_eq!(err.offset, Some(1), "{text}");
        }
        // No name at all.
        let err = decode_err(r#"[{"v":1}]"#);
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
        // A value at instance depth.
        let err = decode_err(r#"[{"n":"/3/0","v":1}]"#);
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Tree(TreeError::NotAValuePath { .. })
            ),
            "{err}"
        );
        // Must-understand field (RFC 8428 §4.4).
        let err = decode_err(r#"[{"n":"/3/0/9","v":1,"x_":2}]"#);
        assert!(
            matches!(err.kind, DecodeErrorKind::Unsupported(ref m) if m.contains("x_")),
            "{err}"
        );
        // Unknown fields without "_" are ignored.
        assert_eq!(
            decode_str(r#"[{"n":"/3/0/9","v":1,"x":{"deep":[1,2]},"u":"%"}]"#).unwrap(),
            vec![rec("/3/0/9", Value::Integer(1))]
        );
        // vlo "3:" is not an object link.
        let err = decode_err(r#"[{"n":"/3/0/22/0","vlo":"3:"}]"#);
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
        // Two values in one record; wrong field types.
        for text in [
            r#"[{"n":"/3/0/9","v":1,"vs":"1"}]"#,
            r#"[{"n":"/3/0/9","v":"1"}]"#,
            r#"[{"n":9,"v":1}]"#,
            r#"[{"n":"/5/0/14","vb":1}]"#,
        ] {
            assert!(
                matches!(decode_err(text).kind, DecodeErrorKind::Syntax(_)),
                "{text}"
            );
        }
        // Deep nesting: serde_json stops at 128 levels.
        let deep = format!(
            r#"[{{"n":"/3/0/9","x":{}1{}}}]"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let err = decode_err(&deep);
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
        assert!(err.offset.unwrap() < deep.len());
        // Truncated, trailing data, invalid UTF-8.
        let err = decode_err(r#"[{"n":"/3/0/9","v":1"#);
        assert_eq!(err.kind, DecodeErrorKind::Truncated);
        let err = decode_err("[]\n[]");
        assert!(matches!(err.kind, DecodeErrorKind::Syntax(_)), "{err}");
        assert_eq!(err.offset, Some(3));
        let err = decode(b"[{\"n\":\"/3/0/0\",\"vs\":\"\xff\"}]", builtin()).unwrap_err();
        assert_eq!(
            (err.kind, err.offset),
            (DecodeErrorKind::InvalidUtf8, Some(21))
        );
    }

    #[test]
    fn encoding_floats_and_unsupported_values() {
        // Integral floats stay floats; NaN cannot be written in JSON.
        let bytes = encode(&[rec("/6/0/0", Value::Float(5.0))]).unwrap();
        assert_eq!(bytes, br#"[{"bn":"/6/0/","n":"0","v":5.0}]"#);
        let err = encode(&[rec("/6/0/0", Value::Float(f64::NAN))]).unwrap_err();
        assert!(matches!(err, EncodeError::Unsupported { path, .. } if path == p("/6/0/0")));
        let err = encode(&[timed("/6/0/0", f64::INFINITY, Value::Float(1.0))]).unwrap_err();
        assert!(matches!(err, EncodeError::Unsupported { .. }));
        assert_eq!(encode(&[]).unwrap(), b"[]");
        // Records in different objects: absolute names, no bn.
        let bytes = encode(&[
            rec("/3/0/9", Value::Integer(1)),
            rec("/4/0/2", Value::Integer(-60)),
        ])
        .unwrap();
        assert_eq!(bytes, br#"[{"n":"/3/0/9","v":1},{"n":"/4/0/2","v":-60}]"#);
    }

    #[test]
    fn scanner_finds_elements_and_number_texts() {
        let text =
            r#" [ {"n":"a\"]{","v":0.30000000000000004,"x":[1,{"v":2}]} ,{"t":-1e-7}, [], 3 ]"#;
        let found = scan_elements(text, PackArray::Root);
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].offset, 3);
        assert_eq!(found[0].number("v"), Some("0.30000000000000004"));
        assert_eq!(found[0].number("x"), None);
        assert_eq!(found[1].number("t"), Some("-1e-7"));
        assert_eq!(&text[found[3].offset..found[3].offset + 1], "3");
        let text = r#"{"x":[{"v":9}],"e":[{"v":1},{"v":2.5}],"bt":3}"#;
        let found = scan_elements(text, PackArray::RootMember("e"));
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].number("v"), Some("2.5"));
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
            cut in 0usize..TS_DEVICE_JSON.len(),
            flips in proptest::collection::vec((0usize..TS_DEVICE_JSON.len(), any::<u8>()), 0..4),
        ) {
            let mut bytes = TS_DEVICE_JSON.as_bytes().to_vec();
            for (i, b) in flips {
                bytes[i] = b;
            }
            let _ = decode(&bytes, builtin());
            let _ = decode(&bytes[..cut], builtin());
        }

        #[test]
        fn arbitrary_json_text_never_panics(text in r#"[\[\]{}",:0-9a-z_/ .eE+-]{0,80}"#) {
            let _ = decode(text.as_bytes(), builtin());
            let _ = scan_elements(&text, PackArray::Root);
        }
    }
}
