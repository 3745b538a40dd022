//! Serde-friendly views of LwM2M content for events and the HTTP layer: typed values
//! ([`ValueView`]), records with their paths and times ([`RecordView`]), operation outcomes
//! ([`OutcomeView`]), and the explicit conversions from `lwm2m-objects` / `lwm2m-proto` types.
//! Opaque bytes travel as base64 (RFC 4648 §4, padded), object links as `"object:instance"`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use lwm2m_objects::codec::Record;
use lwm2m_objects::link::DiscoverLink;
use lwm2m_objects::{Node, ObjLink, Path, Value};
use lwm2m_proto::lwm2m::server::{Content, OpOutcome};
use serde::{Deserialize, Serialize};

/// A resource value with its LwM2M type (TS Core 1.1 Appendix C data types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ValueView {
    String(String),
    Integer(i64),
    UnsignedInteger(u64),
    Float(f64),
    Boolean(bool),
    /// Base64 of the bytes.
    Opaque(String),
    /// Seconds since the Unix epoch.
    Time(i64),
    /// `"object:instance"`.
    Objlnk(String),
    Corelnk(String),
    /// No value (an executable resource).
    None,
    /// Bytes of a resource the object model does not know, base64.
    Untyped(String),
}

impl From<&Value> for ValueView {
    fn from(value: &Value) -> ValueView {
        match value {
            Value::String(s) => ValueView::String(s.clone()),
            Value::Integer(i) => ValueView::Integer(*i),
            Value::UnsignedInteger(u) => ValueView::UnsignedInteger(*u),
            Value::Float(f) => ValueView::Float(*f),
            Value::Boolean(b) => ValueView::Boolean(*b),
            Value::Opaque(bytes) => ValueView::Opaque(BASE64.encode(bytes)),
            Value::Time(t) => ValueView::Time(*t),
            Value::Objlnk(link) => ValueView::Objlnk(link.to_string()),
            Value::Corelnk(s) => ValueView::Corelnk(s.clone()),
            Value::None => ValueView::None,
            Value::Untyped(bytes) => ValueView::Untyped(BASE64.encode(bytes)),
        }
    }
}

/// Why a [`ValueView`] does not make a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueViewError {
    #[error("invalid base64 in an opaque value: {0}")]
    Base64(String),
    #[error("invalid object link {0:?} (expected \"object:instance\")")]
    ObjLink(String),
    #[error("invalid LwM2M path {0:?}")]
    Path(String),
}

impl TryFrom<&ValueView> for Value {
    type Error = ValueViewError;
    fn try_from(view: &ValueView) -> Result<Value, ValueViewError> {
        let bytes = |text: &str| {
            BASE64
                .decode(text)
                .map_err(|e| ValueViewError::Base64(e.to_string()))
        };
        Ok(match view {
            ValueView::String(s) => Value::String(s.clone()),
            ValueView::Integer(i) => Value::Integer(*i),
            ValueView::UnsignedInteger(u) => Value::UnsignedInteger(*u),
            ValueView::Float(f) => Value::Float(*f),
            ValueView::Boolean(b) => Value::Boolean(*b),
            ValueView::Opaque(text) => Value::Opaque(bytes(text)?),
            ValueView::Time(t) => Value::Time(*t),
            ValueView::Objlnk(text) => Value::Objlnk(
                text.parse::<ObjLink>()
                    .map_err(|_| ValueViewError::ObjLink(text.clone()))?,
            ),
            ValueView::Corelnk(s) => Value::Corelnk(s.clone()),
            ValueView::None => Value::None,
            ValueView::Untyped(text) => Value::Untyped(bytes(text)?),
        })
    }
}

/// One value at one path, with its time when the device gave one (absolute, seconds since the
/// Unix epoch: SenML relative times are resolved against the time of reception, RFC 8428 §4.5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// `/object/instance/resource[/resource-instance]`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    pub value: ValueView,
}

impl RecordView {
    /// The record's path, parsed.
    pub fn parsed_path(&self) -> Result<Path, ValueViewError> {
        self.path
            .parse::<Path>()
            .map_err(|_| ValueViewError::Path(self.path.clone()))
    }
}

/// The values of a node read at `path`, flattened to one record per resource (instance).
pub fn node_records(path: &Path, node: &Node) -> Vec<RecordView> {
    node.flatten(path)
        .into_iter()
        .map(|(path, value)| RecordView {
            path: path.to_string(),
            time: None,
            value: ValueView::from(value),
        })
        .collect()
}

/// Records as received; `received_unix` (seconds since the epoch) resolves relative times.
pub fn records_view(records: &[Record], received_unix: f64) -> Vec<RecordView> {
    records
        .iter()
        .map(|record| RecordView {
            path: record.path.to_string(),
            time: record.absolute_time(received_unix),
            value: record
                .value
                .as_ref()
                .map_or(ValueView::None, ValueView::from),
        })
        .collect()
}

/// Decoded content of a Read, Observe or notification.
pub fn content_records(content: &Content, received_unix: f64) -> Vec<RecordView> {
    match content {
        Content::Node { path, node } => node_records(path, node),
        Content::Records(records) => records_view(records, received_unix),
    }
}

/// One Discover link: a path and its attributes (`pmin`, `dim`, `ver`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub path: String,
    pub attributes: BTreeMap<String, Option<String>>,
}

impl From<&DiscoverLink> for LinkView {
    fn from(link: &DiscoverLink) -> LinkView {
        LinkView {
            path: link.path.to_string(),
            attributes: link.attributes.to_params().into_iter().collect(),
        }
    }
}

/// What a successful operation returned, serde-friendly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeView {
    /// Read, Read-Composite (and an Observe the device answered without observing).
    Content {
        values: Vec<RecordView>,
    },
    /// Write, Write-Composite, Write-Attributes, Execute.
    Changed,
    /// Create: the new instance, when the device named it.
    Created {
        instance: Option<String>,
    },
    Deleted,
    /// Discover.
    Links {
        links: Vec<LinkView>,
    },
    /// Observe established, with the first value.
    Observing {
        observation: u64,
        values: Vec<RecordView>,
    },
    /// Observation cancelled.
    Cancelled {
        observation: u64,
    },
}

impl OutcomeView {
    /// The view of `outcome`; `received_unix` resolves relative SenML times.
    pub fn new(outcome: &OpOutcome, received_unix: f64) -> OutcomeView {
        match outcome {
            OpOutcome::Content(content) => OutcomeView::Content {
                values: content_records(content, received_unix),
            },
            OpOutcome::Changed => OutcomeView::Changed,
            OpOutcome::Created { instance } => OutcomeView::Created {
                instance: instance.map(|p| p.to_string()),
            },
            OpOutcome::Deleted => OutcomeView::Deleted,
            OpOutcome::Links(links) => OutcomeView::Links {
                links: links.iter().map(LinkView::from).collect(),
            },
            OpOutcome::Observing {
                observation,
                content,
            } => OutcomeView::Observing {
                observation: observation.as_u64(),
                values: content_records(content, received_unix),
            },
            OpOutcome::Cancelled { observation } => OutcomeView::Cancelled {
                observation: observation.as_u64(),
            },
        }
    }
}

/// Seconds since the Unix epoch of `at`, as SenML counts time.
pub fn unix_seconds(at: DateTime<Utc>) -> f64 {
    // Microsecond precision is what the store keeps; f64 holds it exactly for centuries.
    at.timestamp_micros() as f64 / 1e6
}

/// Serde for timestamps as RFC 3339 text with milliseconds (`2026-03-01T12:00:00.000Z`), the
/// form JavaScript's `Date` reads.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lwm2m_objects::{ObjectInstance, Resource};

    #[test]
    fn every_value_type_round_trips_through_its_view_and_json() {
        let values = [
            Value::String("Ferrite".into()),
            Value::Integer(-110),
            Value::UnsignedInteger(u64::MAX),
            Value::Float(230.25),
            Value::Boolean(true),
            Value::Opaque(vec![0, 0xff, 0x10]),
            Value::Time(1_700_000_000),
            Value::Objlnk(ObjLink {
                object: 3,
                instance: 0,
            }),
            Value::Corelnk("</3/0>".into()),
            Value::None,
            Value::Untyped(vec![1, 2]),
        ];
        for value in values {
            let view = ValueView::from(&value);
            let json = serde_json::to_string(&view).unwrap();
            let back: ValueView = serde_json::from_str(&json).unwrap();
            assert_eq!(Value::try_from(&back).unwrap(), value, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&ValueView::Integer(5)).unwrap(),
            r#"{"type":"integer","value":5}"#
        );
        assert_eq!(
            serde_json::to_string(&ValueView::from(&Value::Opaque(b"hi".to_vec()))).unwrap(),
            r#"{"type":"opaque","value":"aGk="}"#
        );
    }

    #[test]
    fn bad_views_are_errors_not_panics() {
        assert!(Value::try_from(&ValueView::Opaque("***".into())).is_err());
        assert!(Value::try_from(&ValueView::Objlnk("3".into())).is_err());
        let record = RecordView {
            path: "/3/x".into(),
            time: None,
            value: ValueView::None,
        };
        assert!(record.parsed_path().is_err());
    }

    #[test]
    fn nodes_flatten_to_records_and_relative_times_resolve() {
        let instance = ObjectInstance::new(
            0,
            [
                Resource::single(0, Value::String("Ferrite".into())),
                Resource::multiple(6, [(0, Value::Integer(1)), (1, Value::Integer(5))]),
            ],
        );
        let records = node_records(&Path::Instance(3, 0), &Node::Instance(instance));
        let paths: Vec<_> = records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/3/0/0", "/3/0/6/0", "/3/0/6/1"]);

        // RFC 8428 §4.5.3: a time below 2^28 is relative to the time of reception.
        let mut record = Record::new(Path::Resource(10243, 0, 14), Value::Float(1.5));
        record.time = Some(-60.0);
        let view = records_view(&[record], 1_700_000_000.0);
        assert_eq!(view[0].time, Some(1_699_999_940.0));
    }

    #[test]
    fn timestamps_serialise_as_rfc3339_milliseconds() {
        #[derive(Serialize, Deserialize)]
        struct T(#[serde(with = "rfc3339")] DateTime<Utc>);
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let json = serde_json::to_string(&T(at)).unwrap();
        assert_eq!(json, r#""2026-03-01T12:00:00.250Z""#);
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, at);
    }
}
