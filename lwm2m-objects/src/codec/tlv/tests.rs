//! Tests of the TLV codec: golden vectors from the OMA TS examples and Leshan, error kinds with
//! offsets and paths, and round-trip and never-panic property tests.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::{ObjectDef, Operations, ResourceDef};
use crate::test_support::{instance_of, value_of};
use crate::value::{ObjLink, ResourceType, ValueError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn model() -> &'static ObjectModel {
    ObjectModel::builtin()
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// Decodes and expects an error; returns it for assertions on kind, offset and path.
fn decode_err(path: &str, bytes: &str) -> DecodeError {
    match decode(&p(path), &hex(bytes), model()) {
        Ok(node) => panic!("{path} {bytes}: decoded to {node:?}, expected an error"),
        Err(e) => e,
    }
}

// ---- Golden vectors -----------------------------------------------------------------------

/// Read of /3/0 answered with resource TLVs: OMA LwM2M TS 1.0 §6.4.3.1 "Single Object
/// Instance Request Example" (Device object), as carried by eclipse-leshan/leshan
/// `leshan-core/src/test/java/org/eclipse/leshan/core/node/codec/LwM2mNodeDecoderTest.java`
/// (`ENCODED_DEVICE_WITHOUT_INSTANCE`).
const SPEC_DEVICE_RESOURCES: &str = "
    C800144F70656E204D6F62696C6520416C6C69616E6365
    C801164C69676874776569676874204D324D20436C69656E74
    C80209333435303030313233
    C303312E30
    86064100014101 05
    88070842000ED842011388
    870841007D42010384
    C10964
    C10A0F
    830B410000
    C40D5182428F
    C60E2B30323A3030
    C11055";

/// The same instance inside one object-instance TLV: TS 1.0 §6.4.3.2 example A (Leshan
/// `ENCODED_DEVICE_WITH_INSTANCE`).
fn spec_device_with_instance() -> String {
    format!("080079{SPEC_DEVICE_RESOURCES}")
}

/// Access Control objects, two instances: TS 1.0 §6.4.3.2 example B (Leshan `ENCODED_ACL`).
const SPEC_ACL_OBJECT: &str =
    "08000EC10001C101008302417F07C1037F 080212C10003C101008702417F0761013601C1037F";

/// LwM2M Server object, one instance: TS 1.0 §6.4.3.2 example C (Leshan `ENCODED_SERVER`).
const SPEC_SERVER_OBJECT: &str = "08000FC10001C40100015180C10601C10755";

/// Object links, TS 1.0 §6.4.3.3 example 1 (object 65 instance 0; Leshan `ENCODED_OBJ65`).
const SPEC_OBJ65_INSTANCE: &str =
    "88000C440000420000440100420001 C8010D38363133383030373535353030 C40212345678";

/// Object links, TS 1.0 §6.4.3.3 example 2 (object 66, two instances; Leshan `ENCODED_OBJ66`).
const SPEC_OBJ66_OBJECT: &str = "
    080026C8000B6D79536572766963652031C8010F496E7465726E65742E31352E323334C40200430000
    080126C8000B6D79536572766963652032C8010F496E7465726E65742E31352E323335C402FFFFFFFF";

/// Wakaama's /3/0 as captured in eclipse-leshan/leshan
/// `leshan-core/src/test/java/org/eclipse/leshan/core/tlv/TlvDecoderTest.java`
/// (`decode_device_object`): like the spec example but with "U" in resource 15.
const LESHAN_WAKAAMA_DEVICE: &str = "C800144F70656E204D6F62696C6520416C6C69616E6365C801164C69676874776569676874204D324D20436C69656E74C80209333435303030313233C303312E30860641000141010588070842000ED842011388870841007D42010384C10964C10A0F830B410000C40D5182428FC60E2B30323A3030C10F55";

fn spec_device_instance() -> ObjectInstance {
    ObjectInstance::new(
        0,
        [
            Resource::single(0, string("Open Mobile Alliance")),
            Resource::single(1, string("Lightweight M2M Client")),
            Resource::single(2, string("345000123")),
            Resource::single(3, string("1.0")),
            Resource::multiple(6, [(0, Value::Integer(1)), (1, Value::Integer(5))]),
            Resource::multiple(
                7,
                [(0, Value::Integer(0x0ED8)), (1, Value::Integer(0x1388))],
            ),
            Resource::multiple(8, [(0, Value::Integer(125)), (1, Value::Integer(900))]),
            Resource::single(9, Value::Integer(100)),
            Resource::single(10, Value::Integer(15)),
            Resource::multiple(11, [(0, Value::Integer(0))]),
            Resource::single(13, Value::Time(1_367_491_215)),
            Resource::single(14, string("+02:00")),
            Resource::single(16, string("U")),
        ],
    )
}

#[test]
fn spec_device_instance_decodes_and_encodes_byte_for_byte() {
    let bytes = hex(SPEC_DEVICE_RESOURCES);
    let node = decode(&p("/3/0"), &bytes, model()).unwrap();
    let Node::Instance(inst) = &node else {
        panic!("{node:?}")
    };
    assert_eq!(inst.value(0), Some(&string("Open Mobile Alliance")));
    assert_eq!(inst.value(1), Some(&string("Lightweight M2M Client")));
    assert_eq!(inst.value(2), Some(&string("345000123")));
    assert_eq!(inst.value(9), Some(&Value::Integer(100)));
    assert_eq!(inst.value(13), Some(&Value::Time(1_367_491_215)));
    assert_eq!(
        inst.resources[&7].value,
        ResourceValue::Multiple([(0, Value::Integer(3800)), (1, Value::Integer(5000))].into())
    );
    assert_eq!(inst, &spec_device_instance());
    // Our encoder produces exactly the spec's bytes (smallest lengths and integer widths).
    assert_eq!(encode(&p("/3/0"), &node).unwrap(), bytes);
}

#[test]
fn spec_device_instance_wrapped_in_an_object_instance_tlv() {
    let bytes = hex(&spec_device_with_instance());
    let node = decode(&p("/3/0"), &bytes, model()).unwrap();
    assert_eq!(node, Node::Instance(spec_device_instance()));
    let object = decode(&p("/3"), &bytes, model()).unwrap();
    let expected = Node::Object {
        id: 3,
        instances: [(0, spec_device_instance())].into(),
    };
    assert_eq!(object, expected);
    assert_eq!(encode(&p("/3"), &expected).unwrap(), bytes);
}

#[test]
fn bare_resources_for_a_single_instance_object_are_instance_0() {
    let node = decode(&p("/3"), &hex(SPEC_DEVICE_RESOURCES), model()).unwrap();
    assert_eq!(
        node,
        Node::Object {
            id: 3,
            instances: [(0, spec_device_instance())].into()
        }
    );
}

#[test]
fn spec_single_resource_read_of_3_0_0() {
    // TS 1.0 §6.4.3.1: the Manufacturer resource alone, 8-bit length field.
    let bytes = hex("C800144F70656E204D6F62696C6520416C6C69616E6365");
    let node = decode(&p("/3/0/0"), &bytes, model()).unwrap();
    assert_eq!(
        node,
        Node::Resource(Resource::single(0, string("Open Mobile Alliance")))
    );
    assert_eq!(encode(&p("/3/0/0"), &node).unwrap(), bytes);
}

#[test]
fn spec_access_control_object_with_two_instances() {
    let bytes = hex(SPEC_ACL_OBJECT);
    let node = decode(&p("/2"), &bytes, model()).unwrap();
    let Node::Object { id: 2, instances } = &node else {
        panic!("{node:?}")
    };
    assert_eq!(instances.len(), 2);
    let first = &instances[&0];
    assert_eq!(first.value(0), Some(&Value::Integer(1)));
    assert_eq!(first.value(1), Some(&Value::Integer(0)));
    assert_eq!(
        first.resources[&2].value,
        ResourceValue::Multiple([(127, Value::Integer(7))].into())
    );
    assert_eq!(first.value(3), Some(&Value::Integer(127)));
    let second = &instances[&2];
    assert_eq!(second.value(0), Some(&Value::Integer(3)));
    // Resource instance 310 uses a 16-bit identifier (type byte 0x61).
    assert_eq!(
        second.resources[&2].value,
        ResourceValue::Multiple([(127, Value::Integer(7)), (310, Value::Integer(1))].into())
    );
    assert_eq!(encode(&p("/2"), &node).unwrap(), bytes);
}

#[test]
fn spec_server_object() {
    let bytes = hex(SPEC_SERVER_OBJECT);
    let node = decode(&p("/1"), &bytes, model()).unwrap();
    let Node::Object { id: 1, instances } = &node else {
        panic!("{node:?}")
    };
    let server = &instances[&0];
    assert_eq!(server.value(0), Some(&Value::Integer(1)));
    assert_eq!(server.value(1), Some(&Value::Integer(86400)));
    assert_eq!(server.value(6), Some(&Value::Boolean(true)));
    assert_eq!(server.value(7), Some(&string("U")));
    assert_eq!(encode(&p("/1"), &node).unwrap(), bytes);
}

/// Objects 65 and 66 of TS 1.0 §6.4.3.3 (Figure 28), as Leshan's test model defines them.
fn object_link_model() -> ObjectModel {
    const fn res(id: u16, multiple: bool, ty: ResourceType) -> ResourceDef {
        ResourceDef {
            id,
            name: "res",
            operations: Operations::R,
            multiple,
            mandatory: false,
            ty,
            range: None,
            units: None,
        }
    }
    static OBJ65: ObjectDef = ObjectDef {
        id: 65,
        name: "object link tests 65",
        urn: "urn:oma:lwm2m:x:65",
        version: "1.0",
        lwm2m_version: "1.0",
        multiple: true,
        mandatory: false,
        resources: &[
            res(0, true, ResourceType::Objlnk),
            res(1, false, ResourceType::String),
            res(2, false, ResourceType::Integer),
        ],
    };
    static OBJ66: ObjectDef = ObjectDef {
        id: 66,
        name: "object link tests 66",
        urn: "urn:oma:lwm2m:x:66",
        version: "1.0",
        lwm2m_version: "1.0",
        multiple: true,
        mandatory: false,
        resources: &[
            res(0, false, ResourceType::String),
            res(1, false, ResourceType::String),
            res(2, false, ResourceType::Objlnk),
        ],
    };
    let mut model = ObjectModel::empty();
    model.insert(&OBJ65);
    model.insert(&OBJ66);
    model
}

#[test]
fn spec_object_links() {
    let model = object_link_model();
    let link = |object, instance| Value::Objlnk(ObjLink { object, instance });

    let bytes = hex(SPEC_OBJ65_INSTANCE);
    let node = decode(&p("/65/0"), &bytes, &model).unwrap();
    let expected = ObjectInstance::new(
        0,
        [
            Resource::multiple(0, [(0, link(66, 0)), (1, link(66, 1))]),
            Resource::single(1, string("8613800755500")),
            Resource::single(2, Value::Integer(0x1234_5678)),
        ],
    );
    assert_eq!(node, Node::Instance(expected));
    assert_eq!(encode(&p("/65/0"), &node).unwrap(), bytes);

    let bytes = hex(SPEC_OBJ66_OBJECT);
    let node = decode(&p("/66"), &bytes, &model).unwrap();
    let Node::Object { instances, .. } = &node else {
        panic!("{node:?}")
    };
    assert_eq!(instances[&0].value(0), Some(&string("myService 1")));
    assert_eq!(instances[&0].value(1), Some(&string("Internet.15.234")));
    assert_eq!(instances[&0].value(2), Some(&link(67, 0)));
    assert_eq!(instances[&1].value(0), Some(&string("myService 2")));
    assert_eq!(instances[&1].value(2), Some(&Value::Objlnk(ObjLink::NULL)));
    assert_eq!(encode(&p("/66"), &node).unwrap(), bytes);
}

#[test]
fn leshan_wakaama_device_capture() {
    let bytes = hex(LESHAN_WAKAAMA_DEVICE);
    let node = decode(&p("/3/0"), &bytes, model()).unwrap();
    let Node::Instance(inst) = &node else {
        panic!("{node:?}")
    };
    assert_eq!(inst.value(15), Some(&string("U")));
    assert_eq!(inst.value(14), Some(&string("+02:00")));
    assert_eq!(inst.resources.len(), 13);
    // TlvDecoderTest re-encodes and compares byte for byte; so do we.
    assert_eq!(encode(&p("/3/0"), &node).unwrap(), bytes);
}

#[test]
fn leshan_object_link_values() {
    // TlvDecoderTest.decode_object_link.
    assert_eq!(
        decode_value(ResourceType::Objlnk, &hex("12345678")),
        Ok(Value::Objlnk(ObjLink {
            object: 0x1234,
            instance: 0x5678
        }))
    );
    assert_eq!(
        decode_value(ResourceType::Objlnk, &hex("ffffffff")),
        Ok(Value::Objlnk(ObjLink::NULL))
    );
}

#[test]
fn leshan_broken_tlv_is_rejected() {
    // TlvDecoderTest.decode_broken_tlv: 00 11 is an empty object instance 0x11; 22 33 44
    // opens instance 0x3344 whose 2-byte value 55 66 starts a resource-instance TLV with a
    // 16-bit length field that the instance's value does not hold.
    let e = decode_err("/3", "0011223344556677889900");
    assert_eq!(e.kind, DecodeErrorKind::Truncated);
    assert_eq!(e.offset, Some(5));
}

#[test]
fn multiple_resource_with_and_without_its_wrapper() {
    // LwM2mNodeDecoderTest.tlv_power_source__multiple_resource and __array_values.
    let expected = Node::Resource(Resource::multiple(
        6,
        [(0, Value::Integer(1)), (1, Value::Integer(5))],
    ));
    assert_eq!(
        decode(&p("/3/0/6"), &hex("86 06 41 00 01 41 01 05"), model()),
        Ok(expected.clone())
    );
    assert_eq!(
        decode(&p("/3/0/6"), &hex("41 00 01 41 01 05"), model()),
        Ok(expected.clone())
    );
    assert_eq!(
        encode(&p("/3/0/6"), &expected).unwrap(),
        hex("86 06 41 00 01 41 01 05")
    );
}

#[test]
fn resource_inside_an_object_instance_tlv() {
    // LwM2mNodeDecoderTest.tlv_resource_with_undesired_object_instance: 00 00 08 around
    // C6 01 "client" (resource 1).
    let node = decode(&p("/3/0/1"), &hex("0800 08 C601636C69656E74"), model()).unwrap();
    assert_eq!(node, Node::Resource(Resource::single(1, string("client"))));
    // ... and with another instance ID it is outside the request.
    let e = decode_err("/3/0/1", "0801 08 C601636C69656E74");
    assert_eq!(
        e.kind,
        DecodeErrorKind::Tree(TreeError::OutsideRequest {
            requested: p("/3/0/1"),
            path: p("/3/1")
        })
    );
    assert_eq!(e.offset, Some(0));
}

#[test]
fn empty_payloads() {
    // LwM2mNodeDecoderTest.tlv_empty_object / _instance / _single_resource / _multi_resource.
    assert_eq!(
        decode(&p("/2"), &[], model()),
        Ok(Node::Object {
            id: 2,
            instances: BTreeMap::new()
        })
    );
    assert_eq!(
        decode(&p("/2/0"), &[], model()),
        Ok(Node::Instance(ObjectInstance {
            id: 0,
            ..Default::default()
        }))
    );
    let e = decode_err("/2/0/0", "");
    assert_eq!(
        e.kind,
        DecodeErrorKind::Tree(TreeError::Empty {
            requested: p("/2/0/0")
        })
    );
    assert_eq!(e.offset, Some(0));
    assert_eq!(
        decode(&p("/3/0/6"), &[], model()),
        Ok(Node::Resource(Resource::multiple(6, std::iter::empty())))
    );
    let e = decode_err("/3/0/6/0", "");
    assert!(
        matches!(e.kind, DecodeErrorKind::Tree(TreeError::Empty { .. })),
        "{e}"
    );
}

#[test]
fn unknown_objects_keep_raw_bytes() {
    let bytes = hex("C10164 C2024869 83034100 2A");
    let node = decode(&p("/10234/0"), &bytes, model()).unwrap();
    let expected = ObjectInstance::new(
        0,
        [
            Resource::single(1, Value::Untyped(vec![0x64])),
            Resource::single(2, Value::Untyped(b"Hi".to_vec())),
            Resource::multiple(3, [(0, Value::Untyped(vec![0x2A]))]),
        ],
    );
    assert_eq!(node, Node::Instance(expected));
    assert_eq!(encode(&p("/10234/0"), &node).unwrap(), bytes);
    // Unlike Leshan we do not guess an instance ID for bare resources of an unknown object.
    let e = decode_err("/10234", "C10164");
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadNesting, Some(0)));
}

// ---- Every resource type of objects 3, 4, 5, 6 and 7 --------------------------------------

fn decoded_value(path: &str, bytes: &str) -> Value {
    match decode(&p(path), &hex(bytes), model()).unwrap() {
        Node::Resource(Resource {
            value: ResourceValue::Single(v),
            ..
        }) => v,
        Node::ResourceInstance { value, .. } => value,
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn decodes_every_resource_type_through_the_model() {
    // String: /3/0/0 Manufacturer.
    assert_eq!(decoded_value("/3/0/0", "C300 616263"), string("abc"));
    // Integer: /3/0/9 Battery Level, in 1, 2, 4 and 8 bytes, two's complement.
    assert_eq!(decoded_value("/3/0/9", "C109 FF"), Value::Integer(-1));
    assert_eq!(decoded_value("/3/0/9", "C209 FF7F"), Value::Integer(-129));
    assert_eq!(
        decoded_value("/3/0/9", "C409 80000000"),
        Value::Integer(i64::from(i32::MIN))
    );
    assert_eq!(
        decoded_value("/3/0/9", "C80908 7FFFFFFFFFFFFFFF"),
        Value::Integer(i64::MAX)
    );
    // Integer in a multiple resource: /3/0/7 Power Source Voltage.
    assert_eq!(decoded_value("/3/0/7/1", "4201 1388"), Value::Integer(5000));
    // Unsigned Integer: /5/0/13 Maximum Defer Period.
    assert_eq!(
        decoded_value("/5/0/13", "C10D FF"),
        Value::UnsignedInteger(255)
    );
    assert_eq!(
        decoded_value("/5/0/13", "C20D FFFF"),
        Value::UnsignedInteger(65535)
    );
    assert_eq!(
        decoded_value("/5/0/13", "C40D FFFFFFFF"),
        Value::UnsignedInteger(u64::from(u32::MAX))
    );
    assert_eq!(
        decoded_value("/5/0/13", "C80D08 FFFFFFFFFFFFFFFF"),
        Value::UnsignedInteger(u64::MAX)
    );
    // Float: /6/0/0 Latitude, 4 and 8 bytes.
    assert_eq!(decoded_value("/6/0/0", "C400 3FC00000"), Value::Float(1.5));
    assert_eq!(
        decoded_value("/6/0/0", "C80008 3FB999999999999A"),
        Value::Float(0.1)
    );
    // Boolean: /5/0/14 Automatic Upgrade at Download.
    assert_eq!(decoded_value("/5/0/14", "C10E 01"), Value::Boolean(true));
    assert_eq!(decoded_value("/5/0/14", "C10E 00"), Value::Boolean(false));
    // Opaque: /5/0/0 Package and /6/0/4 Velocity.
    assert_eq!(
        decoded_value("/5/0/0", "C300 00FF10"),
        Value::Opaque(vec![0, 0xFF, 0x10])
    );
    assert_eq!(
        decoded_value("/6/0/4", "C204 ABCD"),
        Value::Opaque(vec![0xAB, 0xCD])
    );
    assert_eq!(decoded_value("/5/0/0", "C000"), Value::Opaque(vec![]));
    // Time: /3/0/13 Current Time and /6/0/5 Timestamp.
    assert_eq!(
        decoded_value("/3/0/13", "C40D 5182428F"),
        Value::Time(1_367_491_215)
    );
    assert_eq!(decoded_value("/6/0/5", "C105 FF"), Value::Time(-1));
    // Objlnk: /3/0/22 ExtDevInfo (multiple).
    assert_eq!(
        decoded_value("/3/0/22/1", "4401 00040001"),
        Value::Objlnk(ObjLink {
            object: 4,
            instance: 1
        })
    );
    // Integer in object 4 (Connectivity Monitoring: /4/0/2 Radio Signal Strength) and
    // object 7 (Connectivity Statistics: /7/0/0 SMS Tx Counter).
    assert_eq!(decoded_value("/4/0/2", "C102 A6"), Value::Integer(-90));
    assert_eq!(decoded_value("/7/0/0", "C200 0100"), Value::Integer(256));
    // String in object 4: /4/0/7 APN (multiple).
    assert_eq!(decoded_value("/4/0/7/0", "4300 696F74"), string("iot"));
}

#[test]
fn encodes_values_in_the_smallest_form() {
    let cases: Vec<(Value, &str)> = vec![
        (string("é"), "C3A9"),
        (Value::Corelnk("</3/0>".into()), "3C2F332F303E"),
        (Value::Integer(0), "00"),
        (Value::Integer(127), "7F"),
        (Value::Integer(-128), "80"),
        (Value::Integer(128), "0080"),
        (Value::Integer(-129), "FF7F"),
        (Value::Integer(32767), "7FFF"),
        (Value::Integer(32768), "00008000"),
        (Value::Integer(-32769), "FFFF7FFF"),
        (Value::Integer(i64::from(i32::MAX)), "7FFFFFFF"),
        (Value::Integer(1 << 31), "0000000080000000"),
        (Value::Integer(i64::MIN), "8000000000000000"),
        (Value::Time(1_367_491_215), "5182428F"),
        (Value::UnsignedInteger(255), "FF"),
        (Value::UnsignedInteger(256), "0100"),
        (Value::UnsignedInteger(65536), "00010000"),
        (Value::UnsignedInteger(1 << 32), "0000000100000000"),
        (Value::Float(1.5), "3FC00000"),
        (Value::Float(f64::from(f32::MAX)), "7F7FFFFF"),
        (Value::Float(0.1), "3FB999999999999A"),
        (Value::Float(1e300), "7E37E43C8800759C"),
        (Value::Boolean(true), "01"),
        (Value::Boolean(false), "00"),
        (Value::Opaque(vec![1, 2, 3]), "010203"),
        (
            Value::Objlnk(ObjLink {
                object: 66,
                instance: 1,
            }),
            "00420001",
        ),
        (Value::Objlnk(ObjLink::NULL), "FFFFFFFF"),
        (Value::None, ""),
        (Value::Untyped(vec![0xDE, 0xAD]), "DEAD"),
    ];
    for (value, expected) in cases {
        assert_eq!(encode_value(&value), hex(expected), "{value:?}");
        if let Some(ty) = value.resource_type() {
            assert_eq!(
                decode_value(ty, &hex(expected)),
                Ok(value.clone()),
                "{value:?}"
            );
        }
    }
}

#[test]
fn encodes_resources_of_every_type_with_headers() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/3/0/0", string("abc"), "C300 616263"),
        ("/3/0/9", Value::Integer(100), "C109 64"),
        ("/5/0/13", Value::UnsignedInteger(300), "C20D 012C"),
        ("/6/0/0", Value::Float(1.5), "C400 3FC00000"),
        ("/6/0/0", Value::Float(0.1), "C80008 3FB999999999999A"),
        ("/5/0/14", Value::Boolean(true), "C10E 01"),
        ("/5/0/0", Value::Opaque(vec![0xAB]), "C100 AB"),
        ("/3/0/13", Value::Time(1_367_491_215), "C40D 5182428F"),
    ];
    for (path, value, expected) in cases {
        let path = p(path);
        let node = Node::Resource(Resource::single(path.resource_id().unwrap(), value));
        assert_eq!(encode(&path, &node).unwrap(), hex(expected), "{path}");
        assert_eq!(decode(&path, &hex(expected), model()), Ok(node), "{path}");
    }
    let link = Node::ResourceInstance {
        id: 1,
        value: Value::Objlnk(ObjLink {
            object: 4,
            instance: 0,
        }),
    };
    assert_eq!(
        encode(&p("/3/0/22/1"), &link).unwrap(),
        hex("4401 00040000")
    );
    assert_eq!(
        decode(&p("/3/0/22/1"), &hex("4401 00040000"), model()),
        Ok(link)
    );
}

#[test]
fn length_and_identifier_forms() {
    // (value length, expected header) for /5/0/0: length in the type byte up to 7, then an
    // 8-, 16- or 24-bit length field.
    for (len, header) in [
        (7usize, "C700"),
        (8, "C80008"),
        (255, "C800FF"),
        (256, "D0000100"),
        (65535, "D000FFFF"),
        (65536, "D800010000"),
    ] {
        let node = Node::Resource(Resource::single(0, Value::Opaque(vec![0x5A; len])));
        let bytes = encode(&p("/5/0/0"), &node).unwrap();
        let header = hex(header);
        assert_eq!(&bytes[..header.len()], &header[..], "length {len}");
        assert_eq!(bytes.len(), header.len() + len);
        assert_eq!(
            decode(&p("/5/0/0"), &bytes, model()),
            Ok(node),
            "length {len}"
        );
    }
    // A 16-bit identifier once the ID passes 255.
    let node = Node::Resource(Resource::single(300, Value::Untyped(vec![0x2A])));
    assert_eq!(encode(&p("/10234/0/300"), &node).unwrap(), hex("E1012C 2A"));
    assert_eq!(
        decode(&p("/10234/0/300"), &hex("E1012C 2A"), model()),
        Ok(node)
    );
    // A 16-bit identifier holding a small ID is accepted too.
    assert_eq!(decoded_value("/3/0/9", "E10009 64"), Value::Integer(100));
    // With a length field, bits 2-0 are not the length and are ignored.
    assert_eq!(decoded_value("/3/0/0", "C90001 41"), string("A"));
}

// ---- Malformed input ----------------------------------------------------------------------

#[test]
fn wrong_value_lengths_are_typed_errors() {
    let cases: [(&str, &str, ResourceType, usize, usize, &str); 7] = [
        (
            "/3/0/9",
            "C309 000001",
            ResourceType::Integer,
            3,
            2,
            "/3/0/9",
        ),
        ("/3/0/13", "C00D", ResourceType::Time, 0, 2, "/3/0/13"),
        (
            "/5/0/13",
            "C30D 000001",
            ResourceType::UnsignedInteger,
            3,
            2,
            "/5/0/13",
        ),
        ("/6/0/0", "C300 000000", ResourceType::Float, 3, 2, "/6/0/0"),
        (
            "/5/0/14",
            "C20E 0001",
            ResourceType::Boolean,
            2,
            2,
            "/5/0/14",
        ),
        (
            "/3/0/22/0",
            "4300 000000",
            ResourceType::Objlnk,
            3,
            2,
            "/3/0/22/0",
        ),
        // A value inside a multiple resource: offset of the instance's value.
        (
            "/3/0",
            "880705 4300 000001",
            ResourceType::Integer,
            3,
            5,
            "/3/0/7/0",
        ),
    ];
    for (path, bytes, ty, len, offset, at) in cases {
        let e = decode_err(path, bytes);
        assert_eq!(
            e.kind,
            DecodeErrorKind::InvalidLength { ty, len },
            "{path} {bytes}"
        );
        assert_eq!(e.offset, Some(offset), "{path} {bytes}");
        assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
        assert_eq!(e.format, ContentFormat::Tlv);
    }
    // An executable resource carries no value.
    let e = decode_err("/3/0/4", "C104 01");
    assert_eq!(
        e.kind,
        DecodeErrorKind::InvalidLength {
            ty: ResourceType::None,
            len: 1
        }
    );
}

#[test]
fn boolean_other_than_0_or_1_is_rejected() {
    let e = decode_err("/5/0/14", "C10E 02");
    assert_eq!(
        e.kind,
        DecodeErrorKind::Value(ValueError::OutOfRange {
            expected: ResourceType::Boolean,
            value: "2".into()
        })
    );
    assert_eq!((e.offset, e.path), (Some(2), Some(p("/5/0/14"))));
}

#[test]
fn invalid_utf8_in_a_string() {
    let e = decode_err("/3/0/0", "C200 FFFE");
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
    assert_eq!((e.offset, e.path), (Some(2), Some(p("/3/0/0"))));
}

#[test]
fn truncation_and_trailing_bytes() {
    for (path, bytes, offset) in [
        // One byte after a complete element.
        ("/3/0/0", "C10041 C1", 3),
        // 8-bit length field missing.
        ("/3/0/0", "C800", 0),
        // Second byte of a 16-bit identifier missing.
        ("/3/0/0", "E100", 0),
        // Length past the end of the payload.
        ("/3/0/0", "C80014 4F70", 0),
        // A 24-bit length of 16 MiB over a 1-byte value: rejected before any allocation.
        ("/3/0/0", "D800FFFFFF 00", 0),
        // A nested element running past its container.
        ("/3/0", "8206 4100", 2),
        ("/3/0", "8306 480005", 2),
    ] {
        let e = decode_err(path, bytes);
        assert_eq!(e.kind, DecodeErrorKind::Truncated, "{path} {bytes}");
        assert_eq!(e.offset, Some(offset), "{path} {bytes}");
    }
    // A second complete element after the one resource asked for.
    let e = decode_err("/3/0/0", "C10041 C10142");
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::BadNesting, Some(3)));
}

#[test]
fn every_prefix_of_a_wrapped_instance_is_truncated() {
    let bytes = hex(&spec_device_with_instance());
    for n in 1..bytes.len() {
        let e = decode(&p("/3/0"), &bytes[..n], model()).unwrap_err();
        assert_eq!(
            (e.kind, e.offset),
            (DecodeErrorKind::Truncated, Some(0)),
            "prefix {n}"
        );
    }
}

#[test]
fn reserved_identifier() {
    let e = decode_err("/3/0", "E1FFFF 01");
    assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{e}");
    assert_eq!(e.offset, Some(1));
}

#[test]
fn nesting_that_does_not_fit_the_path() {
    for (path, bytes, offset, at) in [
        // An object instance inside an object instance.
        ("/3", "080002 0001", 3, "/3/0"),
        // A resource inside a multiple resource.
        ("/3/0", "8206 C000", 2, "/3/0/6"),
        // A resource instance directly in an object instance, or at the top of /o/i.
        ("/3", "080003 410001", 3, "/3/0"),
        ("/3/0", "410001", 0, "/3/0"),
        // A resource where a resource instance was asked for.
        ("/3/0/6/0", "C10601", 0, "/3/0/6/0"),
        // Bare resources for a multiple-instance object: no instance ID to give them.
        ("/2", "C10001", 0, "/2"),
        // Object instances and bare resources mixed.
        ("/3", "0000 C10964", 2, "/3"),
        // Two object-instance TLVs for one instance.
        ("/3/0", "0000 0001", 2, "/3/0"),
        // A resource and a resource instance at /o/i/r.
        ("/3/0/6", "C10601 410001", 3, "/3/0/6"),
        // Two resource instances at /o/i/r/ri.
        ("/3/0/6/0", "410001 410102", 3, "/3/0/6/0"),
    ] {
        let e = decode_err(path, bytes);
        assert_eq!(e.kind, DecodeErrorKind::BadNesting, "{path} {bytes}");
        assert_eq!(e.offset, Some(offset), "{path} {bytes}");
        assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
    }
}

#[test]
fn elements_outside_the_requested_path() {
    for (path, bytes, outside) in [
        ("/3/0", "0001", "/3/1"),
        ("/3/0/0", "C10141", "/3/0/1"),
        ("/3/0/7/1", "410201", "/3/0/7/2"),
        ("/3/0/6", "8607 410001 410105", "/3/0/7"),
    ] {
        let e = decode_err(path, bytes);
        assert_eq!(
            e.kind,
            DecodeErrorKind::Tree(TreeError::OutsideRequest {
                requested: p(path),
                path: p(outside)
            }),
            "{path} {bytes}"
        );
        assert_eq!(e.offset, Some(0));
    }
}

#[test]
fn duplicate_identifiers() {
    for (path, bytes, offset, at) in [
        // LwM2mNodeDecoderTest.tlv_invalid_object__instance_2_resources_with_the_same_id
        ("/3/0", "C10964 C10964", 3, "/3/0/9"),
        // ... tlv_invalid_object_2_instances_with_the_same_id
        ("/2", "0001 0001", 2, "/2/1"),
        // ... tlv_invalid_multi_resource_2_instance_with_the_same_id (Objlnk /3/0/22)
        (
            "/3/0/22",
            "88160C 4400 00640001 4400 00650002",
            9,
            "/3/0/22/0",
        ),
    ] {
        let e = decode_err(path, bytes);
        assert!(matches!(e.kind, DecodeErrorKind::Syntax(_)), "{path}: {e}");
        assert_eq!(e.offset, Some(offset), "{path} {bytes}");
        assert_eq!(e.path, Some(p(at)), "{path} {bytes}");
    }
}

#[test]
fn root_path_is_not_carried() {
    let e = decode_err("/", "0000");
    assert!(matches!(e.kind, DecodeErrorKind::Unsupported(_)), "{e}");
    let node = Node::Object {
        id: 3,
        instances: BTreeMap::new(),
    };
    assert!(matches!(
        encode(&Path::Root, &node),
        Err(EncodeError::Unsupported { .. })
    ));
}

#[test]
fn encode_rejects_nodes_that_do_not_fit_the_path() {
    let resource = Node::Resource(Resource::single(9, Value::Integer(1)));
    for path in ["/3", "/3/0", "/3/0/8", "/3/0/9/0"] {
        assert!(
            matches!(
                encode(&p(path), &resource),
                Err(EncodeError::PathMismatch { .. })
            ),
            "{path}"
        );
    }
    let inst = Node::Instance(ObjectInstance {
        id: 1,
        ..Default::default()
    });
    assert!(matches!(
        encode(&p("/3/0"), &inst),
        Err(EncodeError::PathMismatch { .. })
    ));
    // A map key that disagrees with the ID stored in the node.
    let mut bad = ObjectInstance::new(0, [Resource::single(9, Value::Integer(1))]);
    bad.resources
        .insert(10, Resource::single(11, Value::Integer(2)));
    let e = encode(&p("/3/0"), &Node::Instance(bad));
    assert!(matches!(e, Err(EncodeError::PathMismatch { .. })), "{e:?}");
    // 65535 is reserved.
    let reserved = Node::ResourceInstance {
        id: 0,
        value: Value::Integer(1),
    };
    assert!(encode(&p("/3/0/6/0"), &reserved).is_ok());
    let reserved = Node::Resource(Resource::multiple(6, [(u16::MAX, Value::Integer(1))]));
    assert!(matches!(
        encode(&p("/3/0/6"), &reserved),
        Err(EncodeError::Unsupported { .. })
    ));
}

#[test]
fn values_above_the_24_bit_length_are_refused() {
    let node = Node::Resource(Resource::single(
        0,
        Value::Opaque(vec![0; MAX_VALUE_LEN + 1]),
    ));
    assert!(matches!(
        encode(&p("/5/0/0"), &node),
        Err(EncodeError::Unsupported { .. })
    ));
}

// ---- Property tests -----------------------------------------------------------------------

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn builtin_defs() -> Vec<&'static ObjectDef> {
    let defs: Vec<_> = model().objects().collect();
    for id in [3, 4, 5, 6, 7] {
        assert!(
            model().object(id).is_some(),
            "object {id} missing from the builtin model"
        );
    }
    defs
}

fn round_trip(path: Path, node: Node) -> Result<(), TestCaseError> {
    let bytes = encode(&path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decode(&path, &bytes, model()), Ok(node), "{}", path);
    Ok(())
}

#[test]
fn instances_of_every_builtin_object_round_trip() {
    for def in builtin_defs() {
        let strategy = (0..=MAX_ID).prop_flat_map(move |id| instance_of(def, id));
        runner(32)
            .run(&strategy, |inst| {
                round_trip(Path::Instance(def.id, inst.id), Node::Instance(inst))
            })
            .unwrap();
    }
}

#[test]
fn objects_of_every_builtin_object_round_trip() {
    for def in builtin_defs() {
        let strategy =
            proptest::collection::btree_set(0..=MAX_ID, 0..3).prop_flat_map(move |ids| {
                ids.into_iter()
                    .map(|id| instance_of(def, id))
                    .collect::<Vec<_>>()
            });
        runner(16)
            .run(&strategy, |instances| {
                let instances = instances.into_iter().map(|i| (i.id, i)).collect();
                round_trip(
                    Path::Object(def.id),
                    Node::Object {
                        id: def.id,
                        instances,
                    },
                )
            })
            .unwrap();
    }
}

#[test]
fn resources_and_resource_instances_of_every_builtin_object_round_trip() {
    for def in builtin_defs() {
        for res in def.resources.iter().filter(|r| r.ty != ResourceType::None) {
            let path = Path::Resource(def.id, 0, res.id);
            if res.multiple {
                let values = proptest::collection::btree_map(0..=MAX_ID, value_of(res.ty), 0..4);
                runner(8)
                    .run(&values, |values| {
                        round_trip(path, Node::Resource(Resource::multiple(res.id, values)))
                    })
                    .unwrap();
                runner(8)
                    .run(&(0..=MAX_ID, value_of(res.ty)), |(ri, value)| {
                        let path = Path::ResourceInstance(def.id, 0, res.id, ri);
                        round_trip(path, Node::ResourceInstance { id: ri, value })
                    })
                    .unwrap();
            } else {
                runner(8)
                    .run(&value_of(res.ty), |value| {
                        round_trip(path, Node::Resource(Resource::single(res.id, value)))
                    })
                    .unwrap();
            }
        }
    }
}

fn any_type() -> impl Strategy<Value = ResourceType> {
    prop_oneof![
        Just(ResourceType::String),
        Just(ResourceType::Integer),
        Just(ResourceType::UnsignedInteger),
        Just(ResourceType::Float),
        Just(ResourceType::Boolean),
        Just(ResourceType::Opaque),
        Just(ResourceType::Time),
        Just(ResourceType::Objlnk),
        Just(ResourceType::Corelnk),
        Just(ResourceType::None),
    ]
}

/// Decoding, re-encoding and decoding again must give the same bytes (compared as bytes so
/// that NaN floats from the input count as equal to themselves).
fn check_stable(path: &Path, bytes: &[u8], model: &ObjectModel) -> Result<(), TestCaseError> {
    match decode(path, bytes, model) {
        Ok(node) => {
            let first = encode(path, &node).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = decode(path, &first, model)
                .map_err(|e| TestCaseError::fail(format!("re-decoding: {e}")))?;
            let second = encode(path, &again).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(first, second);
        }
        Err(e) => {
            prop_assert!(e.offset.is_none_or(|o| o <= bytes.len()), "{}", e);
        }
    }
    Ok(())
}

const FUZZ_PATHS: [&str; 9] = [
    "/",
    "/3",
    "/3/0",
    "/3/0/0",
    "/3/0/7",
    "/3/0/7/0",
    "/2",
    "/10234/0",
    "/10234/0/1",
];

proptest! {
    #[test]
    fn values_of_every_type_round_trip(
        (ty, value) in any_type().prop_flat_map(|ty| (Just(ty), value_of(ty)))
    ) {
        prop_assert_eq!(decode_value(ty, &encode_value(&value)), Ok(value));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for path in FUZZ_PATHS {
            check_stable(&p(path), &bytes, model())?;
            check_stable(&p(path), &bytes, &ObjectModel::empty())?;
        }
    }

    #[test]
    fn mutated_spec_vectors_never_panic(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        for vector in [spec_device_with_instance().as_str(), SPEC_ACL_OBJECT, SPEC_OBJ66_OBJECT] {
            let mut bytes = hex(vector);
            let at = index.index(bytes.len());
            bytes[at] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            for path in FUZZ_PATHS {
                check_stable(&p(path), &bytes, model())?;
            }
        }
    }
}
