//! The persisted form of an operation waiting for a sleeping queue-mode device: a JSON document
//! ([`StoredOperation`]) that names the operation and carries its content as typed records, so a
//! restarted server can re-submit it exactly (OMA LwM2M TS Transport 1.1 "Queue Mode Operation":
//! requests wait until the client wakes).
//!
//! Node content (Write, Create) is kept as its flattened `(path, value)` records and rebuilt with
//! [`Node::from_entries`]; an instance or multiple-instance resource with no values at all has no
//! records and does not survive the trip (such writes are refused as invalid on the way back).

use lwm2m_objects::codec::Record;
use lwm2m_objects::link::Attributes;
use lwm2m_objects::{Node, ObjectInstance, Path, Value};
use lwm2m_proto::lwm2m::server::{Operation, WriteMode};
use serde::{Deserialize, Serialize};

use super::view::{RecordView, ValueView, ValueViewError, node_records};

/// An [`Operation`] as stored in `lwm2m_queued_requests.operation`. Cancel Observation is never
/// stored: observations do not survive a restart, and the engine cancels them without queueing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoredOperation {
    Read {
        path: String,
    },
    ReadComposite {
        paths: Vec<String>,
    },
    Write {
        path: String,
        replace: bool,
        values: Vec<RecordView>,
    },
    WriteComposite {
        values: Vec<RecordView>,
    },
    Execute {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<String>,
    },
    Create {
        object: u16,
        instance: u16,
        values: Vec<RecordView>,
    },
    Delete {
        path: String,
    },
    Discover {
        path: String,
    },
    WriteAttributes {
        path: String,
        attributes: Vec<(String, Option<String>)>,
    },
    Observe {
        path: String,
    },
    ObserveComposite {
        paths: Vec<String>,
    },
}

/// Why a stored operation cannot be turned back into an [`Operation`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoredOperationError {
    #[error("not valid JSON for a stored operation: {0}")]
    Json(String),
    #[error(transparent)]
    Value(#[from] ValueViewError),
    #[error("the stored values do not form the node at {path}: {reason}")]
    Node { path: String, reason: String },
    #[error("invalid stored attributes: {0}")]
    Attributes(String),
}

fn paths_text(paths: &[Path]) -> Vec<String> {
    paths.iter().map(Path::to_string).collect()
}

fn records_to_views(records: &[Record]) -> Vec<RecordView> {
    records
        .iter()
        .map(|r| RecordView {
            path: r.path.to_string(),
            time: r.time,
            value: r.value.as_ref().map_or(ValueView::None, ValueView::from),
        })
        .collect()
}

impl StoredOperation {
    /// The stored form of `operation`; `None` for Cancel Observation.
    pub fn from_operation(operation: &Operation) -> Option<StoredOperation> {
        Some(match operation {
            Operation::Read(path) => StoredOperation::Read {
                path: path.to_string(),
            },
            Operation::ReadComposite(paths) => StoredOperation::ReadComposite {
                paths: paths_text(paths),
            },
            Operation::Write { path, node, mode } => StoredOperation::Write {
                path: path.to_string(),
                replace: *mode == WriteMode::Replace,
                values: node_records(path, node),
            },
            Operation::WriteComposite(records) => StoredOperation::WriteComposite {
                values: records_to_views(records),
            },
            Operation::Execute { path, args } => StoredOperation::Execute {
                path: path.to_string(),
                args: args.clone(),
            },
            Operation::Create { object, instance } => StoredOperation::Create {
                object: *object,
                instance: instance.id,
                values: node_records(
                    &Path::Instance(*object, instance.id),
                    &Node::Instance(instance.clone()),
                ),
            },
            Operation::Delete(path) => StoredOperation::Delete {
                path: path.to_string(),
            },
            Operation::Discover(path) => StoredOperation::Discover {
                path: path.to_string(),
            },
            Operation::WriteAttributes { path, attributes } => StoredOperation::WriteAttributes {
                path: path.to_string(),
                attributes: attributes.to_params(),
            },
            Operation::Observe(path) => StoredOperation::Observe {
                path: path.to_string(),
            },
            Operation::ObserveComposite(paths) => StoredOperation::ObserveComposite {
                paths: paths_text(paths),
            },
            Operation::CancelObservation(_) => return None,
        })
    }

    /// The JSON text stored.
    pub fn to_json(&self) -> String {
        // Serialising this enum of strings, numbers and vectors cannot fail; NaN floats become
        // `null` and fail on the way back, which is reported then.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<StoredOperation, StoredOperationError> {
        serde_json::from_str(text).map_err(|e| StoredOperationError::Json(e.to_string()))
    }

    /// The operation to re-submit.
    pub fn to_operation(&self) -> Result<Operation, StoredOperationError> {
        Ok(match self {
            StoredOperation::Read { path } => Operation::Read(parse_path(path)?),
            StoredOperation::ReadComposite { paths } => {
                Operation::ReadComposite(parse_paths(paths)?)
            }
            StoredOperation::Write {
                path,
                replace,
                values,
            } => {
                let at = parse_path(path)?;
                Operation::Write {
                    path: at,
                    node: build_node(&at, values)?,
                    mode: if *replace {
                        WriteMode::Replace
                    } else {
                        WriteMode::PartialUpdate
                    },
                }
            }
            StoredOperation::WriteComposite { values } => {
                Operation::WriteComposite(views_to_records(values)?)
            }
            StoredOperation::Execute { path, args } => Operation::Execute {
                path: parse_path(path)?,
                args: args.clone(),
            },
            StoredOperation::Create {
                object,
                instance,
                values,
            } => {
                let at = Path::Instance(*object, *instance);
                let instance = match build_node(&at, values)? {
                    Node::Instance(instance) => instance,
                    _ => ObjectInstance {
                        id: *instance,
                        ..ObjectInstance::default()
                    },
                };
                Operation::Create {
                    object: *object,
                    instance,
                }
            }
            StoredOperation::Delete { path } => Operation::Delete(parse_path(path)?),
            StoredOperation::Discover { path } => Operation::Discover(parse_path(path)?),
            StoredOperation::WriteAttributes { path, attributes } => Operation::WriteAttributes {
                path: parse_path(path)?,
                attributes: Attributes::from_params(attributes)
                    .map_err(|e| StoredOperationError::Attributes(e.to_string()))?,
            },
            StoredOperation::Observe { path } => Operation::Observe(parse_path(path)?),
            StoredOperation::ObserveComposite { paths } => {
                Operation::ObserveComposite(parse_paths(paths)?)
            }
        })
    }
}

fn parse_path(text: &str) -> Result<Path, StoredOperationError> {
    text.parse::<Path>()
        .map_err(|_| StoredOperationError::Value(ValueViewError::Path(text.to_owned())))
}

fn parse_paths(texts: &[String]) -> Result<Vec<Path>, StoredOperationError> {
    texts.iter().map(|t| parse_path(t)).collect()
}

fn views_to_records(views: &[RecordView]) -> Result<Vec<Record>, StoredOperationError> {
    views
        .iter()
        .map(|view| {
            let value = Value::try_from(&view.value)?;
            Ok(Record {
                path: view.parsed_path()?,
                time: view.time,
                value: (value != Value::None).then_some(value),
            })
        })
        .collect()
}

fn build_node(at: &Path, values: &[RecordView]) -> Result<Node, StoredOperationError> {
    let mut entries = Vec::with_capacity(values.len());
    for view in values {
        entries.push((view.parsed_path()?, Value::try_from(&view.value)?));
    }
    Node::from_entries(at, entries).map_err(|e| StoredOperationError::Node {
        path: at.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lwm2m_objects::{ObjLink, Resource};

    fn round_trip(operation: Operation) {
        let stored = StoredOperation::from_operation(&operation).expect("storable");
        let json = stored.to_json();
        let back = StoredOperation::from_json(&json)
            .expect("parses")
            .to_operation()
            .expect("rebuilds");
        assert_eq!(back, operation, "{json}");
    }

    #[test]
    fn every_storable_operation_round_trips() {
        round_trip(Operation::Read(Path::Instance(3, 0)));
        round_trip(Operation::ReadComposite(vec![
            Path::Resource(3, 0, 9),
            Path::Instance(4, 0),
        ]));
        round_trip(Operation::Write {
            path: Path::Resource(1, 0, 1),
            node: Node::Resource(Resource::single(1, Value::Integer(300))),
            mode: WriteMode::Replace,
        });
        round_trip(Operation::Write {
            path: Path::Instance(3, 0),
            node: Node::Instance(ObjectInstance::new(
                0,
                [
                    Resource::single(13, Value::Time(1_700_000_000)),
                    Resource::multiple(6, [(0, Value::Integer(1)), (3, Value::Integer(5))]),
                ],
            )),
            mode: WriteMode::PartialUpdate,
        });
        round_trip(Operation::WriteComposite(vec![
            Record::new(Path::Resource(3, 0, 13), Value::Time(5)),
            Record::new(Path::ResourceInstance(3, 0, 6, 1), Value::Integer(2)),
        ]));
        round_trip(Operation::Execute {
            path: Path::Resource(3, 0, 4),
            args: Some("0='x',1".into()),
        });
        round_trip(Operation::Execute {
            path: Path::Resource(3, 0, 4),
            args: None,
        });
        round_trip(Operation::Create {
            object: 10243,
            instance: ObjectInstance::new(
                2,
                [
                    Resource::single(14, Value::Float(12.5)),
                    Resource::single(
                        1,
                        Value::Objlnk(ObjLink {
                            object: 3,
                            instance: 0,
                        }),
                    ),
                    Resource::single(2, Value::Opaque(vec![1, 2, 3])),
                ],
            ),
        });
        round_trip(Operation::Delete(Path::Instance(10243, 2)));
        round_trip(Operation::Discover(Path::Object(3)));
        let attributes = Attributes {
            pmin: Some(10),
            gt: Some(3.5),
            ..Attributes::default()
        };
        round_trip(Operation::WriteAttributes {
            path: Path::Resource(3, 0, 9),
            attributes,
        });
        round_trip(Operation::Observe(Path::Resource(3, 0, 9)));
        round_trip(Operation::ObserveComposite(vec![Path::Resource(3, 0, 9)]));
    }

    #[test]
    fn the_json_names_the_operation() {
        let stored = StoredOperation::from_operation(&Operation::Read(Path::Instance(3, 0)))
            .expect("storable");
        assert_eq!(stored.to_json(), r#"{"op":"read","path":"/3/0"}"#);
    }

    #[test]
    fn corrupt_rows_are_errors() {
        for text in [
            "",
            "{}",
            r#"{"op":"read","path":"/x"}"#,
            r#"{"op":"write","path":"/3/0/13","replace":true,"values":[{"path":"/4/0/1","value":{"type":"integer","value":1}}]}"#,
            r#"{"op":"write_attributes","path":"/3/0/9","attributes":[["pmin","soon"]]}"#,
        ] {
            let parsed = StoredOperation::from_json(text).and_then(|s| s.to_operation());
            assert!(parsed.is_err(), "{text}");
        }
    }
}
