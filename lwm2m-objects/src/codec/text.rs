//! The plain text content format (`text/plain;charset=utf-8`, 0; OMA LwM2M TS Core 1.1 §7.4.1):
//! one value of a single-instance resource or of one resource instance, written as UTF-8 text
//! (decimal numbers, `0`/`1` booleans, `object:instance` links, base64 for opaque).
//!
//! Also holds the path and node checks shared with the opaque format (§7.4.2), which carries
//! the same shapes.

use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, declared_type};
use crate::model::ObjectModel;
use crate::node::{Node, Resource, ResourceValue};
use crate::path::Path;
use crate::value::{ResourceType, Value, ValueError};

const FORMAT: ContentFormat = ContentFormat::Text;

/// Decodes a plain-text payload for the resource or resource instance `requested`, typed through
/// the model; a resource the model does not know keeps its bytes as [`Value::Untyped`].
pub fn decode(requested: &Path, bytes: &[u8], model: &ObjectModel) -> Result<Node, DecodeError> {
    check_value_path(FORMAT, requested, model)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(FORMAT, DecodeErrorKind::InvalidUtf8)
            .at(e.valid_up_to())
            .with_path(*requested)
    })?;
    let value = match declared_type(model, requested) {
        None => Value::Untyped(bytes.to_vec()),
        Some(ty) => {
            parse(text, ty).map_err(|e| DecodeError::new(FORMAT, e).at(0).with_path(*requested))?
        }
    };
    Ok(value_node(requested, value))
}

/// [`Value::parse_text`], refusing floats that overflow to infinity ("1e400"): TS Core 1.1
/// §7.4.1 floats are decimal numbers, and an infinity could not be written back as text.
fn parse(text: &str, ty: ResourceType) -> Result<Value, ValueError> {
    match Value::parse_text(text, ty)? {
        Value::Float(v) if !v.is_finite() => Err(ValueError::OutOfRange {
            expected: ResourceType::Float,
            value: text.trim().to_owned(),
        }),
        value => Ok(value),
    }
}

/// Encodes the value of a single-instance resource or of a resource instance as text.
/// Untyped values are written back byte for byte.
pub fn encode(path: &Path, node: &Node) -> Result<Vec<u8>, EncodeError> {
    Ok(match single_value(FORMAT, path, node)? {
        Value::Untyped(bytes) => bytes.clone(),
        value => value.to_text().into_bytes(),
    })
}

/// Checks that `requested` names what a single-value format (text, opaque) can carry: a resource
/// instance, or a resource the model does not declare multiple-instance.
pub(super) fn check_value_path(
    format: ContentFormat,
    requested: &Path,
    model: &ObjectModel,
) -> Result<(), DecodeError> {
    let unsupported = |what: &str| {
        Err(
            DecodeError::new(format, DecodeErrorKind::Unsupported(what.to_owned()))
                .with_path(*requested),
        )
    };
    match *requested {
        Path::Root | Path::Object(_) | Path::Instance(..) => {
            unsupported("an object or object instance (only one value)")
        }
        Path::Resource(o, _, r) if model.resource(o, r).is_some_and(|def| def.multiple) => {
            unsupported("a multiple-instance resource (only one value)")
        }
        Path::Resource(..) | Path::ResourceInstance(..) => Ok(()),
    }
}

/// The node that holds `value` at the resource or resource-instance path `requested`.
pub(super) fn value_node(requested: &Path, value: Value) -> Node {
    match *requested {
        Path::ResourceInstance(_, _, _, ri) => Node::ResourceInstance { id: ri, value },
        // check_value_path admitted only resource and resource-instance paths.
        _ => Node::Resource(Resource::single(
            requested.resource_id().unwrap_or_default(),
            value,
        )),
    }
}

/// The one value a single-value format (text, opaque) can carry from `node` at `path`: a
/// single-instance resource or a resource instance whose ID matches the path.
pub(super) fn single_value<'a>(
    format: ContentFormat,
    path: &Path,
    node: &'a Node,
) -> Result<&'a Value, EncodeError> {
    let unsupported = |what: &str| EncodeError::Unsupported {
        format,
        path: *path,
        what: what.to_owned(),
    };
    let mismatch = |reason: String| EncodeError::PathMismatch {
        format,
        path: *path,
        reason,
    };
    match node {
        Node::Object { .. } | Node::Instance(_) => Err(unsupported("an object or object instance")),
        Node::Resource(Resource {
            value: ResourceValue::Multiple(_),
            ..
        }) => Err(unsupported("a multiple-instance resource")),
        Node::Resource(Resource {
            id,
            value: ResourceValue::Single(value),
        }) => match *path {
            Path::Resource(_, _, r) if r == *id => Ok(value),
            _ => Err(mismatch(format!("got resource {id}"))),
        },
        Node::ResourceInstance { id, value } => match *path {
            Path::ResourceInstance(_, _, _, ri) if ri == *id => Ok(value),
            _ => Err(mismatch(format!("got resource instance {id}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::ObjectDef;
    use crate::test_support::value_of;
    use crate::value::ObjLink;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    fn model() -> &'static ObjectModel {
        ObjectModel::builtin()
    }

    fn value_at(path: &str, text: &str) -> Value {
        match decode(&p(path), text.as_bytes(), model()).unwrap() {
            Node::Resource(Resource {
                value: ResourceValue::Single(v),
                ..
            }) => v,
            Node::ResourceInstance { value, .. } => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leshan_text_examples() {
        // eclipse-leshan/leshan LwM2mNodeDecoderTest: text_manufacturer_resource,
        // text_battery_resource, text_decode_opaque_from_base64_string.
        let node = decode(&p("/3/0/0"), b"MyManufacturer", model()).unwrap();
        assert_eq!(
            node,
            Node::Resource(Resource::single(0, Value::String("MyManufacturer".into())))
        );
        assert_eq!(value_at("/3/0/9", "100"), Value::Integer(100));
        assert_eq!(
            value_at("/5/0/0", "AQIDBAU="),
            Value::Opaque(vec![1, 2, 3, 4, 5])
        );
        // ... text_decode_should_throw_an_exception_for_invalid_base64.
        let e = decode(&p("/5/0/0"), b"!,-INVALID$_'", model()).unwrap_err();
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::Value(ValueError::Unparsable { .. })
            ),
            "{e}"
        );
        // LwM2mNodeEncoderTest.text_encode_date_as_iso_string: a Time is seconds since the epoch.
        let time = Node::Resource(Resource::single(13, Value::Time(1_367_491_215)));
        assert_eq!(encode(&p("/3/0/13"), &time).unwrap(), b"1367491215");
        // LwM2mNodeEncoderTest.text_encode_single_resource.
        let float = Node::Resource(Resource::single(0, Value::Float(56.4)));
        assert_eq!(encode(&p("/6/0/0"), &float).unwrap(), b"56.4");
        // ... text_encode_multiple_instances.
        let multiple = Node::Resource(Resource::multiple(
            6,
            [(0, Value::Integer(1)), (1, Value::Integer(5))],
        ));
        assert!(matches!(
            encode(&p("/3/0/6"), &multiple),
            Err(EncodeError::Unsupported { .. })
        ));
    }

    #[test]
    fn every_resource_type_of_objects_3_to_7() {
        let cases: Vec<(&str, &str, Value)> = vec![
            (
                "/3/0/0",
                "Open Mobile Alliance",
                Value::String("Open Mobile Alliance".into()),
            ),
            ("/3/0/9", "-5", Value::Integer(-5)),
            ("/4/0/2", "-90", Value::Integer(-90)),
            ("/7/0/0", "12", Value::Integer(12)),
            (
                "/5/0/13",
                "18446744073709551615",
                Value::UnsignedInteger(u64::MAX),
            ),
            ("/6/0/0", "51.5", Value::Float(51.5)),
            ("/5/0/14", "1", Value::Boolean(true)),
            ("/5/0/14", "0", Value::Boolean(false)),
            ("/6/0/4", "q80=", Value::Opaque(vec![0xAB, 0xCD])),
            ("/3/0/13", "1367491215", Value::Time(1_367_491_215)),
            (
                "/3/0/22/1",
                "4:1",
                Value::Objlnk(ObjLink {
                    object: 4,
                    instance: 1,
                }),
            ),
            ("/4/0/7/0", "iot", Value::String("iot".into())),
        ];
        for (path, text, value) in cases {
            assert_eq!(value_at(path, text), value, "{path}");
            let path = p(path);
            let node = match path {
                Path::ResourceInstance(_, _, _, ri) => Node::ResourceInstance { id: ri, value },
                _ => Node::Resource(Resource::single(path.resource_id().unwrap(), value)),
            };
            assert_eq!(encode(&path, &node).unwrap(), text.as_bytes(), "{path}");
        }
    }

    #[test]
    fn unknown_resources_stay_untyped() {
        assert_eq!(
            value_at("/10234/0/1", "21.5"),
            Value::Untyped(b"21.5".to_vec())
        );
        let node = Node::Resource(Resource::single(1, Value::Untyped(vec![0x34, 0x32])));
        assert_eq!(encode(&p("/10234/0/1"), &node).unwrap(), b"42");
    }

    #[test]
    fn malformed_text() {
        let e = decode(&p("/3/0/0"), b"ab\xFFcd", model()).unwrap_err();
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::InvalidUtf8, Some(2)));
        assert_eq!(e.path, Some(p("/3/0/0")));
        let e = decode(&p("/3/0/9"), b"ten", model()).unwrap_err();
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::Value(ValueError::Unparsable { .. })
            ),
            "{e}"
        );
        assert_eq!((e.offset, e.path), (Some(0), Some(p("/3/0/9"))));
        let e = decode(&p("/5/0/14"), b"2", model()).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Value(_)), "{e}");
        let e = decode(&p("/5/0/13"), b"-1", model()).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Value(_)), "{e}");
        // A float that overflows to infinity could not be written back as text.
        let e = decode(&p("/6/0/0"), b"1e400", model()).unwrap_err();
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::Value(ValueError::OutOfRange { .. })
            ),
            "{e}"
        );
    }

    #[test]
    fn only_single_values() {
        for path in ["/", "/3", "/3/0", "/3/0/7"] {
            let e = decode(&p(path), b"1", model()).unwrap_err();
            assert!(
                matches!(e.kind, DecodeErrorKind::Unsupported(_)),
                "{path}: {e}"
            );
            assert_eq!(e.path, Some(p(path)));
        }
        let inst = Node::Instance(crate::node::ObjectInstance {
            id: 0,
            ..Default::default()
        });
        assert!(matches!(
            encode(&p("/3/0"), &inst),
            Err(EncodeError::Unsupported { .. })
        ));
        let object = Node::Object {
            id: 3,
            instances: Default::default(),
        };
        assert!(matches!(
            encode(&p("/3"), &object),
            Err(EncodeError::Unsupported { .. })
        ));
        let resource = Node::Resource(Resource::single(9, Value::Integer(1)));
        assert!(matches!(
            encode(&p("/3/0/8"), &resource),
            Err(EncodeError::PathMismatch { .. })
        ));
        let instance = Node::ResourceInstance {
            id: 1,
            value: Value::Integer(1),
        };
        assert!(matches!(
            encode(&p("/3/0/7/0"), &instance),
            Err(EncodeError::PathMismatch { .. })
        ));
    }

    fn round_trip(path: Path, node: Node) -> Result<(), TestCaseError> {
        let bytes = encode(&path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode(&path, &bytes, model()), Ok(node), "{}", path);
        Ok(())
    }

    #[test]
    fn every_builtin_value_round_trips() {
        let defs: Vec<&'static ObjectDef> = model().objects().collect();
        for id in [3, 4, 5, 6, 7] {
            assert!(
                model().object(id).is_some(),
                "object {id} missing from the builtin model"
            );
        }
        let mut runner = TestRunner::new(Config {
            cases: 16,
            failure_persistence: None,
            ..Config::default()
        });
        for def in defs {
            for res in def.resources.iter().filter(|r| r.ty != ResourceType::None) {
                runner
                    .run(&(0u16..100, value_of(res.ty)), |(ri, value)| {
                        if res.multiple {
                            let path = Path::ResourceInstance(def.id, 0, res.id, ri);
                            round_trip(path, Node::ResourceInstance { id: ri, value })
                        } else {
                            let path = Path::Resource(def.id, 0, res.id);
                            round_trip(path, Node::Resource(Resource::single(res.id, value)))
                        }
                    })
                    .unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for path in ["/3/0/0", "/3/0/9", "/5/0/0", "/6/0/0", "/3/0/22/0", "/10234/0/1", "/3"] {
                let path = p(path);
                match decode(&path, &bytes, model()) {
                    Ok(node) => {
                        // Whatever decodes encodes, and reads back the same.
                        let again = encode(&path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(decode(&path, &again, model()), Ok(node));
                    }
                    Err(e) => prop_assert!(e.offset.is_none_or(|o| o <= bytes.len())),
                }
            }
        }
    }
}
