//! LwM2M CBOR (`application/vnd.oma.lwm2m+cbor`, content format 11544; OMA LwM2M TS Core 1.2
//! §7.4.6): nested CBOR maps keyed by path IDs, the compact record format of LwM2M 1.2 clients.
//!
//! The payload is one map. Each key is a path fragment: an unsigned integer (one ID) or an array
//! of unsigned integers (several levels at once, e.g. `[3, 0]`); fragments add up from the root.
//! Each value is either a map (the next levels) or, at a resource or resource-instance path, the
//! value itself: integer, float (half, single, double, decimal fraction), boolean, text (String,
//! Corelnk, and Objlnk as `"object:instance"`), byte string (Opaque), tag 1 around a number
//! (Time), or null (no value). Values are typed through the [`ObjectModel`] as in SenML.
//! The format carries no times: decoded records have `time: None`.
//!
//! Reading accepts definite and indefinite lengths (clients write indefinite maps while
//! streaming). The nesting is bounded by the path: every level adds at least one ID, and a path
//! has at most four. Writing uses definite lengths, one map level per path level, the shortest
//! integer and the shortest exact float encoding.

use std::collections::BTreeMap;
use std::convert::Infallible;

use minicbor::Encoder;
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, data::IanaTag};

use super::senml::{RawValue, SenmlNumber, syntax, typed_value};
use super::senml_cbor as cbor;
use super::{ContentFormat, DecodeError, DecodeErrorKind, EncodeError, Record, declared_type};
use crate::model::ObjectModel;
use crate::path::{MAX_ID, Path};
use crate::value::{ResourceType, Value};

const FORMAT: ContentFormat = ContentFormat::Lwm2mCbor;

/// The shared CBOR readers report SenML CBOR; errors of this codec name its own format.
fn ours(mut error: DecodeError) -> DecodeError {
    error.format = FORMAT;
    error
}

/// Decodes a LwM2M CBOR payload into records (absolute paths, values typed by the model).
///
/// An empty payload carries no records.
pub fn decode(bytes: &[u8], model: &ObjectModel) -> Result<Vec<Record>, DecodeError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut d = Decoder::new(bytes);
    let mut records = Vec::new();
    read_map(&mut d, &[], model, &mut records)?;
    if d.position() < bytes.len() {
        return Err(syntax(FORMAT, "data after the end of the top-level map").at(d.position()));
    }
    Ok(records)
}

/// Reads one map whose keys continue the path `prefix`.
fn read_map(
    d: &mut Decoder<'_>,
    prefix: &[u16],
    model: &ObjectModel,
    out: &mut Vec<Record>,
) -> Result<(), DecodeError> {
    let start = d.position();
    let mut remaining = match peek(d)? {
        Type::Map | Type::MapIndef => d.map().map_err(|e| ours(cbor::cbor_error(&e, start)))?,
        other => {
            return Err(syntax(FORMAT, format!("expected a CBOR map, found {other}")).at(start));
        }
    };
    while cbor::more(d, &mut remaining).map_err(ours)? {
        let key_at = d.position();
        let mut ids = prefix.to_vec();
        read_fragment(d, &mut ids)?;
        let path = Path::from_ids(&ids)
            .ok_or_else(|| DecodeError::new(FORMAT, DecodeErrorKind::BadNesting).at(key_at))?;
        match peek(d)? {
            Type::Map | Type::MapIndef => read_map(d, &ids, model, out)?,
            _ => out.push(read_leaf(d, path, model)?),
        }
    }
    Ok(())
}

/// Reads a key (one ID or a non-empty array of IDs) onto `ids`; at most four IDs in all.
fn read_fragment(d: &mut Decoder<'_>, ids: &mut Vec<u16>) -> Result<(), DecodeError> {
    let start = d.position();
    let before = ids.len();
    let push = |d: &mut Decoder<'_>, ids: &mut Vec<u16>| -> Result<(), DecodeError> {
        let at = d.position();
        let id = match peek(d)? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
                d.u64().map_err(|e| ours(cbor::cbor_error(&e, at)))?
            }
            other => {
                return Err(syntax(
                    FORMAT,
                    format!("a path ID must be an unsigned integer, found {other}"),
                )
                .at(at));
            }
        };
        let id = u16::try_from(id)
            .ok()
            .filter(|id| *id <= MAX_ID)
            .ok_or_else(|| {
                syntax(
                    FORMAT,
                    format!("path ID {id} is above the maximum {MAX_ID}"),
                )
                .at(at)
            })?;
        if ids.len() == 4 {
            return Err(DecodeError::new(FORMAT, DecodeErrorKind::BadNesting).at(at));
        }
        ids.push(id);
        Ok(())
    };
    match peek(d)? {
        Type::Array | Type::ArrayIndef => {
            let mut remaining = d.array().map_err(|e| ours(cbor::cbor_error(&e, start)))?;
            while cbor::more(d, &mut remaining).map_err(ours)? {
                push(d, ids)?;
            }
        }
        _ => push(d, ids)?,
    }
    if ids.len() == before {
        return Err(syntax(FORMAT, "an empty path fragment").at(start));
    }
    Ok(())
}

/// Reads the value at a resource or resource-instance `path`.
fn read_leaf(d: &mut Decoder<'_>, path: Path, model: &ObjectModel) -> Result<Record, DecodeError> {
    let start = d.position();
    if path.resource_id().is_none() {
        return Err(DecodeError::new(FORMAT, DecodeErrorKind::BadNesting)
            .with_path(path)
            .at(start));
    }
    let declared = declared_type(model, &path);
    let field = "a resource value";
    let raw = match peek(d)? {
        Type::Null => {
            d.skip().map_err(|e| ours(cbor::cbor_error(&e, start)))?;
            return Ok(Record {
                path,
                time: None,
                value: None,
            });
        }
        Type::Bool => RawValue::Boolean(cbor::read_bool(d, field).map_err(ours)?),
        Type::String | Type::StringIndef => {
            let text = cbor::read_text(d, field).map_err(ours)?;
            if declared == Some(ResourceType::Objlnk) {
                RawValue::ObjLink(text)
            } else {
                RawValue::String(text)
            }
        }
        Type::Bytes | Type::BytesIndef => RawValue::Data(cbor::read_bytes(d, field).map_err(ours)?),
        _ => RawValue::Number(cbor::read_number(d, field, 0).map_err(ours)?),
    };
    let value = typed_value(raw, declared)
        .map_err(|e| DecodeError::new(FORMAT, e).with_path(path).at(start))?;
    Ok(Record {
        path,
        time: None,
        value: Some(value),
    })
}

fn peek(d: &Decoder<'_>) -> Result<Type, DecodeError> {
    d.datatype()
        .map_err(|e| ours(cbor::cbor_error(&e, d.position())))
}

/// What is written at one resource.
enum Leaf<'a> {
    Single(Option<&'a Value>),
    Multiple(BTreeMap<u16, Option<&'a Value>>),
}

type Tree<'a> = BTreeMap<u16, BTreeMap<u16, BTreeMap<u16, Leaf<'a>>>>;

/// Encodes records (resource or resource-instance paths, no times) as LwM2M CBOR.
pub fn encode(records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let unsupported = |path: Path, what: &str| EncodeError::Unsupported {
        format: FORMAT,
        path,
        what: what.to_owned(),
    };
    let mut tree: Tree<'_> = BTreeMap::new();
    for record in records {
        if record.time.is_some() {
            return Err(unsupported(record.path, "a time"));
        }
        let value = record.value.as_ref().filter(|v| **v != Value::None);
        match record.path {
            Path::Resource(o, i, r) => {
                let slot = resources(&mut tree, o, i);
                if slot.contains_key(&r) {
                    return Err(unsupported(record.path, "the same resource twice"));
                }
                slot.insert(r, Leaf::Single(value));
            }
            Path::ResourceInstance(o, i, r, ri) => {
                let leaf = resources(&mut tree, o, i)
                    .entry(r)
                    .or_insert_with(|| Leaf::Multiple(BTreeMap::new()));
                match leaf {
                    Leaf::Multiple(instances) if !instances.contains_key(&ri) => {
                        instances.insert(ri, value);
                    }
                    _ => {
                        return Err(unsupported(
                            record.path,
                            "a resource instance beside its resource or twice",
                        ));
                    }
                }
            }
            _ => {
                return Err(unsupported(record.path, "a value above the resource level"));
            }
        }
    }
    write_tree(&tree)
        .map_err(|e| unsupported(Path::Root, &format!("records the CBOR writer refused: {e}")))
}

/// The resources of `/o/i` in the tree being built.
fn resources<'t, 'a>(tree: &'t mut Tree<'a>, o: u16, i: u16) -> &'t mut BTreeMap<u16, Leaf<'a>> {
    tree.entry(o).or_default().entry(i).or_default()
}

fn write_tree(tree: &Tree<'_>) -> Result<Vec<u8>, minicbor::encode::Error<Infallible>> {
    let mut e = Encoder::new(Vec::new());
    e.map(tree.len() as u64)?;
    for (object, instances) in tree {
        e.u16(*object)?.map(instances.len() as u64)?;
        for (instance, resources) in instances {
            e.u16(*instance)?.map(resources.len() as u64)?;
            for (resource, leaf) in resources {
                e.u16(*resource)?;
                match leaf {
                    Leaf::Single(value) => write_value(&mut e, *value)?,
                    Leaf::Multiple(values) => {
                        e.map(values.len() as u64)?;
                        for (ri, value) in values {
                            e.u16(*ri)?;
                            write_value(&mut e, *value)?;
                        }
                    }
                }
            }
        }
    }
    Ok(e.into_writer())
}

fn write_value(
    e: &mut Encoder<Vec<u8>>,
    value: Option<&Value>,
) -> Result<(), minicbor::encode::Error<Infallible>> {
    match value {
        None | Some(Value::None) => {
            e.null()?;
        }
        Some(Value::String(s) | Value::Corelnk(s)) => {
            e.str(s)?;
        }
        Some(Value::Integer(i)) => cbor::write_number(e, SenmlNumber::Signed(*i))?,
        Some(Value::UnsignedInteger(u)) => cbor::write_number(e, SenmlNumber::Unsigned(*u))?,
        Some(Value::Float(f)) => cbor::write_number(e, SenmlNumber::Float(*f))?,
        Some(Value::Boolean(b)) => {
            e.bool(*b)?;
        }
        Some(Value::Opaque(bytes) | Value::Untyped(bytes)) => {
            e.bytes(bytes)?;
        }
        Some(Value::Time(t)) => {
            // RFC 8949 §3.4.2: epoch-based date/time.
            e.tag(Tag::from(IanaTag::Timestamp))?;
            cbor::write_number(e, SenmlNumber::Signed(*t))?;
        }
        Some(Value::Objlnk(link)) => {
            e.str(&link.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::value::ObjLink;
    use proptest::prelude::*;

    fn model() -> &'static ObjectModel {
        ObjectModel::builtin()
    }

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn nested_maps_and_path_arrays_decode_to_typed_records() {
        // {3: {0: {0: "Ferrite", 9: 87, 11: {0: 0, 1: 8}, 13: 1(1700000000)}},
        //  [4, 0]: {2: -85}, [1, 0, 1]: 300, [3, 0, 6, 0]: 1, [5, 0, 3]: null}
        let bytes = hex(
            "a5 03 a1 00 a4 00 67 46 65 72 72 69 74 65 09 18 57 0b a2 00 00 01 08 0d c1 1a 65 53 f1 00
             82 04 00 a1 02 38 54
             83 01 00 01 19 01 2c
             84 03 00 06 00 01
             83 05 00 03 f6",
        );
        let records = decode(&bytes, model()).unwrap();
        let got: Vec<(Path, Option<Value>)> =
            records.into_iter().map(|r| (r.path, r.value)).collect();
        assert_eq!(
            got,
            vec![
                (
                    Path::Resource(3, 0, 0),
                    Some(Value::String("Ferrite".into()))
                ),
                (Path::Resource(3, 0, 9), Some(Value::Integer(87))),
                (Path::ResourceInstance(3, 0, 11, 0), Some(Value::Integer(0))),
                (Path::ResourceInstance(3, 0, 11, 1), Some(Value::Integer(8))),
                (Path::Resource(3, 0, 13), Some(Value::Time(1_700_000_000))),
                (Path::Resource(4, 0, 2), Some(Value::Integer(-85))),
                (Path::Resource(1, 0, 1), Some(Value::Integer(300))),
                (Path::ResourceInstance(3, 0, 6, 0), Some(Value::Integer(1))),
                (Path::Resource(5, 0, 3), None),
            ]
        );
    }

    #[test]
    fn indefinite_maps_as_streaming_clients_write_them() {
        // {_ 3: {_ 0: {_ 9: 50 } } }
        let bytes = hex("bf 03 bf 00 bf 09 18 32 ff ff ff");
        let records = decode(&bytes, model()).unwrap();
        assert_eq!(
            records,
            vec![Record::new(Path::Resource(3, 0, 9), Value::Integer(50))]
        );
    }

    #[test]
    fn malformed_payloads_say_what_and_where() {
        let cases: &[(&str, &str)] = &[
            ("81 00", "expected a CBOR map"),
            ("a1 03 18 57", "nesting"), // a value at an object path
            ("a1 84 03 00 09 00 a1 00 01", "nesting"), // five IDs
            ("a1 80 01", "empty path fragment"),
            ("a1 20 01", "unsigned integer"),        // key -1
            ("a1 19 ff ff 01", "above the maximum"), // ID 65535
            ("a1 83 03 00 09 65 68 65 6c 6c 6f", "Integer"), // battery as text
            ("a1 83 03 00 09", "ends"),              // truncated
            ("a1 83 03 00 09 01 00", "after the end"),
        ];
        for (input, expected) in cases {
            let error = decode(&hex(input), model()).unwrap_err();
            assert_eq!(error.format, FORMAT);
            let text = error.to_string();
            assert!(
                text.to_lowercase().contains(&expected.to_lowercase()),
                "{input}: {text}"
            );
        }
    }

    #[test]
    fn text_of_a_resource_the_model_does_not_know_stays_a_string() {
        // {[16, 0, 0]: "3:0"}: only a declared Objlnk turns "3:0" into an object link.
        let bytes = hex("a1 83 10 00 00 63 33 3a 30");
        let records = decode(&bytes, model()).unwrap();
        assert_eq!(records[0].value, Some(Value::String("3:0".into())));
    }

    #[test]
    fn encodes_nested_maps_and_refuses_what_the_format_cannot_carry() {
        let records = vec![
            Record::new(Path::Resource(3, 0, 9), Value::Integer(87)),
            Record::new(Path::ResourceInstance(3, 0, 11, 0), Value::Integer(0)),
            Record::new(Path::Resource(3, 0, 13), Value::Time(1_700_000_000)),
        ];
        let bytes = encode(&records).unwrap();
        assert_eq!(
            bytes,
            hex("a1 03 a1 00 a3 09 18 57 0b a1 00 00 0d c1 1a 65 53 f1 00")
        );
        assert_eq!(decode(&bytes, model()).unwrap(), records);
        let timed = Record {
            time: Some(1.0),
            ..Record::new(Path::Resource(3, 0, 9), Value::Integer(1))
        };
        assert!(encode(&[timed]).is_err());
        assert!(encode(&[Record::new(Path::Instance(3, 0), Value::Integer(1))]).is_err());
        assert!(
            encode(&[
                Record::new(Path::Resource(3, 0, 11), Value::Integer(1)),
                Record::new(Path::ResourceInstance(3, 0, 11, 0), Value::Integer(1)),
            ])
            .is_err()
        );
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::String),
            any::<i64>().prop_map(Value::Integer),
            any::<u64>().prop_map(|u| if i64::try_from(u).is_ok() {
                Value::Integer(u as i64)
            } else {
                Value::UnsignedInteger(u)
            }),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Boolean),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Opaque),
        ]
    }

    proptest! {
        /// Records of objects the model does not know (so values keep the type they were
        /// written with) survive encode → decode.
        #[test]
        fn round_trips(entries in proptest::collection::btree_map(
            (30000u16..30003, 0u16..3, 0u16..5), any_value(), 0..12)) {
            let records: Vec<Record> = entries
                .into_iter()
                .map(|((o, i, r), v)| Record::new(Path::Resource(o, i, r), v))
                .collect();
            let bytes = encode(&records).unwrap();
            prop_assert_eq!(decode(&bytes, model()).unwrap(), records);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, model());
        }
    }

    /// Fuzzing found (fuzz/artifacts/lwm2m_cbor/crash-2a8fc750…): indefinite maps whose
    /// resource instances come out of order re-encode in path order; a map has no order, so the
    /// round trip holds for the records sorted by path.
    #[test]
    fn unordered_indefinite_maps_round_trip_in_path_order() {
        let bytes = hex("bf 02 b8 01 00 bf 02 bf 08 00 00 00 ff 00 00 ff ff");
        let mut records = decode(&bytes, model()).unwrap();
        assert_eq!(records.len(), 3);
        let again = decode(&encode(&records).unwrap(), model()).unwrap();
        records.sort_by_key(|r| r.path.ids());
        assert_eq!(again, records);
    }

    /// Fuzzing found (crash-fba23af8…): a resource instance sorts before a resource of a higher
    /// ID on the wire (IDs order), not in `Path`'s variant order.
    #[test]
    fn paths_are_written_in_id_order() {
        let records = vec![
            Record::new(Path::Resource(2, 2, 15), Value::Integer(0)),
            Record::new(Path::ResourceInstance(2, 2, 8, 0), Value::Integer(0)),
        ];
        let again = decode(&encode(&records).unwrap(), model()).unwrap();
        assert_eq!(again, [records[1].clone(), records[0].clone()]);
    }

    #[test]
    fn objlnk_values_are_written_as_text() {
        let bytes = encode(&[Record::new(
            Path::Resource(30000, 0, 0),
            Value::Objlnk(ObjLink {
                object: 3,
                instance: 0,
            }),
        )])
        .unwrap();
        assert_eq!(bytes, hex("a1 19 75 30 a1 00 a1 00 63 33 3a 30"));
    }
}
