//! Content-format codecs (OMA LwM2M TS Core 1.1 §7.4 "Data Formats").
//!
//! Two shapes of content exist:
//! - a [`Node`] at one path: what a Read, Write or Observe of a single path carries. TLV, plain
//!   text and opaque only come in this shape;
//! - a list of [`Record`]s, each `(path, time, value)`: what SenML (JSON 110, CBOR 112), LwM2M
//!   JSON (11543) and LwM2M CBOR (11544, no times) carry. Records with times are time series (Send, historical notifications); a
//!   record without a value is a name alone (Read-Composite requests).
//!
//! Formats that do not carry types (TLV, text, opaque) are typed through the [`ObjectModel`]; a
//! resource the model does not know keeps its raw bytes as [`Value::Untyped`].
//!
//! Decoders never panic on any input: malformed bytes give a [`DecodeError`] saying what is wrong
//! and where.

use std::fmt;

use crate::model::ObjectModel;
use crate::node::{Node, TreeError};
use crate::path::{Path, PathError};
use crate::value::{ResourceType, Value, ValueError};

mod json_text;
pub mod lwm2m_cbor;
pub mod lwm2m_json;
pub mod opaque;
mod senml;
pub mod senml_cbor;
pub mod senml_json;
pub mod text;
pub mod tlv;

/// A CoAP Content-Format number that LwM2M uses (IANA CoAP Content-Formats registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentFormat {
    /// `text/plain;charset=utf-8` (0)
    Text,
    /// `application/link-format` (40)
    LinkFormat,
    /// `application/octet-stream` (42)
    Opaque,
    /// `application/cbor` (60): single resource values in LwM2M 1.1
    Cbor,
    /// `application/senml+json` (110)
    SenmlJson,
    /// `application/senml+cbor` (112)
    SenmlCbor,
    /// `application/vnd.oma.lwm2m+tlv` (11542)
    Tlv,
    /// `application/vnd.oma.lwm2m+cbor` (11544, LwM2M 1.2)
    Lwm2mCbor,
    /// `application/vnd.oma.lwm2m+json` (11543)
    Lwm2mJson,
    /// The pre-registration TLV number 1542 some LwM2M 1.0 clients still send.
    LegacyTlv,
    /// The pre-registration LwM2M JSON number 1543.
    LegacyJson,
}

impl ContentFormat {
    pub fn from_u16(n: u16) -> Option<ContentFormat> {
        Some(match n {
            0 => ContentFormat::Text,
            40 => ContentFormat::LinkFormat,
            42 => ContentFormat::Opaque,
            60 => ContentFormat::Cbor,
            110 => ContentFormat::SenmlJson,
            112 => ContentFormat::SenmlCbor,
            11542 => ContentFormat::Tlv,
            11543 => ContentFormat::Lwm2mJson,
            11544 => ContentFormat::Lwm2mCbor,
            1542 => ContentFormat::LegacyTlv,
            1543 => ContentFormat::LegacyJson,
            _ => return None,
        })
    }

    pub fn to_u16(self) -> u16 {
        match self {
            ContentFormat::Text => 0,
            ContentFormat::LinkFormat => 40,
            ContentFormat::Opaque => 42,
            ContentFormat::Cbor => 60,
            ContentFormat::SenmlJson => 110,
            ContentFormat::SenmlCbor => 112,
            ContentFormat::Tlv => 11542,
            ContentFormat::Lwm2mJson => 11543,
            ContentFormat::Lwm2mCbor => 11544,
            ContentFormat::LegacyTlv => 1542,
            ContentFormat::LegacyJson => 1543,
        }
    }

    /// The media type, e.g. `application/vnd.oma.lwm2m+tlv`.
    pub fn media_type(self) -> &'static str {
        match self {
            ContentFormat::Text => "text/plain;charset=utf-8",
            ContentFormat::LinkFormat => "application/link-format",
            ContentFormat::Opaque => "application/octet-stream",
            ContentFormat::Cbor => "application/cbor",
            ContentFormat::SenmlJson => "application/senml+json",
            ContentFormat::SenmlCbor => "application/senml+cbor",
            ContentFormat::Tlv | ContentFormat::LegacyTlv => "application/vnd.oma.lwm2m+tlv",
            ContentFormat::Lwm2mJson | ContentFormat::LegacyJson => {
                "application/vnd.oma.lwm2m+json"
            }
            ContentFormat::Lwm2mCbor => "application/vnd.oma.lwm2m+cbor",
        }
    }

    /// Whether the format carries a list of records (with names and times) rather than one node.
    pub fn carries_records(self) -> bool {
        matches!(
            self,
            ContentFormat::SenmlJson
                | ContentFormat::SenmlCbor
                | ContentFormat::Lwm2mJson
                | ContentFormat::Lwm2mCbor
                | ContentFormat::LegacyJson
        )
    }
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.media_type(), self.to_u16())
    }
}

/// One entry of a SenML or LwM2M JSON payload: a path, an optional time and an optional value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// A resource or resource-instance path (or any path, in Read-Composite requests).
    pub path: Path,
    /// Base time + time, in seconds, as carried (RFC 8428 §4.5.3): see [`Record::absolute_time`].
    pub time: Option<f64>,
    pub value: Option<Value>,
}

/// RFC 8428 §4.5.3: a time below 2^28 is relative to the time the record is read.
const SENML_RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;

impl Record {
    pub fn new(path: Path, value: Value) -> Record {
        Record {
            path,
            time: None,
            value: Some(value),
        }
    }

    /// The record's time in seconds since the Unix epoch: relative times (below 2^28, RFC 8428
    /// §4.5.3) are added to `now` (seconds since the epoch when the payload was received).
    pub fn absolute_time(&self, now: f64) -> Option<f64> {
        self.time.map(|t| {
            if t < SENML_RELATIVE_TIME_LIMIT {
                now + t
            } else {
                t
            }
        })
    }
}

/// What went wrong decoding a payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("the payload ends in the middle of an element")]
    Truncated,
    #[error("{0}")]
    Syntax(String),
    #[error("a text value is not valid UTF-8")]
    InvalidUtf8,
    #[error("a {ty} value has an invalid length of {len} bytes")]
    InvalidLength { ty: ResourceType, len: usize },
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("nesting does not fit the path (e.g. a resource inside a resource)")]
    BadNesting,
    #[error("this format cannot carry {0}")]
    Unsupported(String),
    #[error("the content format is not one this codec decodes")]
    UnsupportedFormat,
}

/// A payload that could not be decoded: the format, where (byte offset, path where known), and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DecodeError {
    pub format: ContentFormat,
    /// Byte offset into the payload where the problem was found, when known.
    pub offset: Option<usize>,
    /// The LwM2M path of the element at fault, when known.
    pub path: Option<Path>,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub fn new(format: ContentFormat, kind: impl Into<DecodeErrorKind>) -> DecodeError {
        DecodeError {
            format,
            offset: None,
            path: None,
            kind: kind.into(),
        }
    }

    pub fn at(mut self, offset: usize) -> DecodeError {
        self.offset = Some(offset);
        self
    }

    pub fn with_path(mut self, path: Path) -> DecodeError {
        self.path = Some(path);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot decode {}: {}",
            self.format.media_type(),
            self.kind
        )?;
        if let Some(path) = &self.path {
            write!(f, " at {path}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " (byte {offset})")?;
        }
        Ok(())
    }
}

/// Why content could not be encoded in the chosen format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{format} cannot carry {what} at {path}")]
    Unsupported {
        format: ContentFormat,
        path: Path,
        what: String,
    },
    #[error("{format}: {path} does not match the node given ({reason})")]
    PathMismatch {
        format: ContentFormat,
        path: Path,
        reason: String,
    },
    #[error("the content format {0} is not one this codec encodes")]
    UnsupportedFormat(ContentFormat),
}

/// Decodes the content of a response, notification or write to the single path `requested`.
///
/// Record formats are decoded to records and assembled into the node at `requested`: when a
/// resource repeats with several times (historical notifications) the last record wins; use
/// [`decode_records`] to keep every point.
pub fn decode(
    format: ContentFormat,
    requested: &Path,
    bytes: &[u8],
    model: &ObjectModel,
) -> Result<Node, DecodeError> {
    match format {
        ContentFormat::Tlv | ContentFormat::LegacyTlv => tlv::decode(requested, bytes, model),
        ContentFormat::Text => text::decode(requested, bytes, model),
        ContentFormat::Opaque => opaque::decode(requested, bytes, model),
        ContentFormat::SenmlJson
        | ContentFormat::SenmlCbor
        | ContentFormat::Lwm2mJson
        | ContentFormat::Lwm2mCbor
        | ContentFormat::LegacyJson => {
            let records = decode_records(format, requested, bytes, model)?;
            let entries = records.into_iter().filter_map(|r| Some((r.path, r.value?)));
            Node::from_entries(requested, entries)
                .map_err(|e| DecodeError::new(format, e).with_path(*requested))
        }
        ContentFormat::LinkFormat | ContentFormat::Cbor => {
            Err(DecodeError::new(format, DecodeErrorKind::UnsupportedFormat))
        }
    }
}

/// Decodes a record format (SenML JSON/CBOR, LwM2M JSON) into its records, keeping times.
/// `requested` is the path the payload answers, which LwM2M JSON names are relative to; SenML
/// names are absolute and ignore it.
pub fn decode_records(
    format: ContentFormat,
    requested: &Path,
    bytes: &[u8],
    model: &ObjectModel,
) -> Result<Vec<Record>, DecodeError> {
    match format {
        ContentFormat::SenmlJson => senml_json::decode(bytes, model),
        ContentFormat::SenmlCbor => senml_cbor::decode(bytes, model),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::decode(bytes, model),
        ContentFormat::Lwm2mJson | ContentFormat::LegacyJson => {
            lwm2m_json::decode(requested, bytes, model)
        }
        _ => Err(DecodeError::new(format, DecodeErrorKind::UnsupportedFormat)),
    }
}

/// Encodes `node`, found at `path`, in `format` (for Write requests and Read responses).
pub fn encode(format: ContentFormat, path: &Path, node: &Node) -> Result<Vec<u8>, EncodeError> {
    match format {
        ContentFormat::Tlv | ContentFormat::LegacyTlv => tlv::encode(path, node),
        ContentFormat::Text => text::encode(path, node),
        ContentFormat::Opaque => opaque::encode(path, node),
        ContentFormat::SenmlJson | ContentFormat::SenmlCbor | ContentFormat::Lwm2mCbor => {
            let records: Vec<Record> = node
                .flatten(path)
                .into_iter()
                .map(|(p, v)| Record {
                    path: p,
                    time: None,
                    value: Some(v.clone()),
                })
                .collect();
            encode_records(format, &records)
        }
        _ => Err(EncodeError::UnsupportedFormat(format)),
    }
}

/// Encodes records (Send, Read-Composite requests and responses, time series) in SenML.
pub fn encode_records(format: ContentFormat, records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    match format {
        ContentFormat::SenmlJson => senml_json::encode(records),
        ContentFormat::SenmlCbor => senml_cbor::encode(records),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::encode(records),
        _ => Err(EncodeError::UnsupportedFormat(format)),
    }
}

/// The declared type of the resource at `path`, if the model knows it.
pub(crate) fn declared_type(model: &ObjectModel, path: &Path) -> Option<ResourceType> {
    model
        .resource(path.object_id()?, path.resource_id()?)
        .map(|r| r.ty)
}
