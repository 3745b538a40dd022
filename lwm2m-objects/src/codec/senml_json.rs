//! SenML JSON (`application/senml+json`, content format 110; RFC 8428 §5, OMA LwM2M TS Core 1.1
//! §7.4.4): reading a JSON pack into SenML records as carried, and writing records as a JSON pack.
//!
//! Base fields, names, typing and the naming plan are shared with SenML CBOR (`codec/senml.rs`):
//! decoding reads each record's fields as carried (`RawRecord`), then `senml::resolve` applies the
//! base fields (RFC 8428 §4.5, §4.6), turns names into [`Path`]s and types values through the
//! [`ObjectModel`]. Encoding writes one `bn` (the common parent of all paths, ending in `/`) on the
//! first record and relative names after it, the way the TS examples and Leshan do, with each
//! record's time as an absolute `t`.

use super::json_text::{PackArray, element_offsets, json_kind, number_from_json, parse_json};
use super::senml::{
    RawRecord, RawValue, SenmlField, SenmlNumber, at, encode_base64url, field_of, must_understand,
    plan_names, resolve, syntax, time_number,
};
use super::{ContentFormat, DecodeError, EncodeError, Record};
use crate::model::ObjectModel;
use crate::path::Path;

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
    let offsets = element_offsets(text, PackArray::Root);
    let raws = elements
        .iter()
        .enumerate()
        .map(|(i, element)| raw_record(element, offsets.get(i).copied()))
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
            Some(SenmlField::Data(bytes)) => json.vd = Some(encode_base64url(bytes)),
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

/// Reads one JSON element of the pack into a [`RawRecord`]; `offset` is where the element starts
/// in the payload, when known.
fn raw_record(
    element: &serde_json::Value,
    offset: Option<usize>,
) -> Result<RawRecord, DecodeError> {
    let fail = |msg: String| at(syntax(FORMAT, msg), offset);
    let serde_json::Value::Object(fields) = element else {
        return Err(fail(format!(
            "a SenML record must be a JSON object, found {}",
            json_kind(element)
        )));
    };
    let mut record = RawRecord::new(offset);
    for (key, field) in fields {
        let number = || match field {
            serde_json::Value::Number(n) => Ok(number_from_json(n)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::DecodeErrorKind;
    use crate::codec::senml::fixtures::{any_records, builtin, device_records, p, rec, timed};
    use crate::node::TreeError;
    use crate::value::{ObjLink, ResourceType, Value, ValueError};
    use proptest::prelude::*;

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
            let _ = element_offsets(&text, PackArray::Root);
        }
    }
}
