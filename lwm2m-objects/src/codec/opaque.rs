//! The opaque content format (`application/octet-stream`, 42; OMA LwM2M TS Core 1.1 §7.4.2):
//! the raw bytes of one Opaque resource or resource instance, such as a firmware package
//! (`/5/0/0`), with no framing at all.

use super::text::{check_value_path, single_value, value_node};
use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, declared_type};
use crate::model::ObjectModel;
use crate::node::Node;
use crate::path::Path;
use crate::value::{ResourceType, Value};

const FORMAT: ContentFormat = ContentFormat::Opaque;

/// Decodes the payload as the value of the resource or resource instance `requested`, which the
/// model must declare Opaque or not know at all (the content format itself says the bytes are
/// opaque, so an unknown resource gets [`Value::Opaque`], not [`Value::Untyped`]).
pub fn decode(requested: &Path, bytes: &[u8], model: &ObjectModel) -> Result<Node, DecodeError> {
    check_value_path(FORMAT, requested, model)?;
    match declared_type(model, requested) {
        None | Some(ResourceType::Opaque) => {
            Ok(value_node(requested, Value::Opaque(bytes.to_vec())))
        }
        Some(ty) => Err(DecodeError::new(
            FORMAT,
            DecodeErrorKind::Unsupported(format!("a {ty} resource (only Opaque ones)")),
        )
        .with_path(*requested)),
    }
}

/// Encodes an Opaque (or untyped) value of a single-instance resource or resource instance as
/// its raw bytes.
pub fn encode(path: &Path, node: &Node) -> Result<Vec<u8>, EncodeError> {
    match single_value(FORMAT, path, node)? {
        Value::Opaque(bytes) | Value::Untyped(bytes) => Ok(bytes.clone()),
        other => Err(EncodeError::Unsupported {
            format: FORMAT,
            path: *path,
            what: format!("a {} value (only Opaque ones)", other.kind_name()),
        }),
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::node::{ObjectInstance, Resource};
    use proptest::prelude::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    fn model() -> &'static ObjectModel {
        ObjectModel::builtin()
    }

    #[test]
    fn opaque_resources_carry_raw_bytes() {
        // A firmware package chunk for /5/0/0 (Package, Opaque) and a velocity for /6/0/4.
        let bytes = [0x7F, 0x45, 0x4C, 0x46, 0x00, 0xFF];
        let node = decode(&p("/5/0/0"), &bytes, model()).unwrap();
        assert_eq!(
            node,
            Node::Resource(Resource::single(0, Value::Opaque(bytes.to_vec())))
        );
        assert_eq!(encode(&p("/5/0/0"), &node).unwrap(), bytes);
        let node = decode(&p("/6/0/4"), &[], model()).unwrap();
        assert_eq!(
            node,
            Node::Resource(Resource::single(4, Value::Opaque(vec![])))
        );
    }

    #[test]
    fn unknown_resources_and_resource_instances() {
        let node = decode(&p("/10234/0/1/2"), b"\x01\x02", model()).unwrap();
        assert_eq!(
            node,
            Node::ResourceInstance {
                id: 2,
                value: Value::Opaque(vec![1, 2])
            }
        );
        assert_eq!(encode(&p("/10234/0/1/2"), &node).unwrap(), [1, 2]);
        let untyped = Node::Resource(Resource::single(1, Value::Untyped(vec![9])));
        assert_eq!(encode(&p("/10234/0/1"), &untyped).unwrap(), [9]);
    }

    #[test]
    fn other_types_and_shapes_are_unsupported() {
        for path in [
            "/3/0/0",
            "/3/0/9",
            "/5/0/14",
            "/3/0/22/0",
            "/3/0/7",
            "/3/0",
            "/3",
            "/",
        ] {
            let e = decode(&p(path), b"x", model()).unwrap_err();
            assert!(
                matches!(e.kind, DecodeErrorKind::Unsupported(_)),
                "{path}: {e}"
            );
            assert_eq!(e.path, Some(p(path)));
            assert_eq!(e.format, ContentFormat::Opaque);
        }
        let string = Node::Resource(Resource::single(0, Value::String("x".into())));
        assert!(matches!(
            encode(&p("/3/0/0"), &string),
            Err(EncodeError::Unsupported { .. })
        ));
        let inst = Node::Instance(ObjectInstance {
            id: 0,
            ..Default::default()
        });
        assert!(matches!(
            encode(&p("/5/0"), &inst),
            Err(EncodeError::Unsupported { .. })
        ));
        let multiple = Node::Resource(Resource::multiple(0, [(0, Value::Opaque(vec![]))]));
        assert!(matches!(
            encode(&p("/5/0/0"), &multiple),
            Err(EncodeError::Unsupported { .. })
        ));
        let elsewhere = Node::Resource(Resource::single(0, Value::Opaque(vec![])));
        assert!(matches!(
            encode(&p("/5/0/1"), &elsewhere),
            Err(EncodeError::PathMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for path in ["/5/0/0", "/6/0/4", "/10234/0/1"] {
                let path = p(path);
                let node = decode(&path, &bytes, model()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&encode(&path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?, &bytes);
            }
        }
    }
}
