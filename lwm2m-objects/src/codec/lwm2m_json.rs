//! LwM2M JSON (`application/vnd.oma.lwm2m+json`: content format 11543, and 1543 before IANA
//! registration; OMA LwM2M TS Core 1.0 §6.4.4, TS Core 1.1 §7.4.6), decoding only: LwM2M 1.0
//! clients answer Reads and send notifications in it, the server never needs to write it.
//!
//! ```text
//! {"bn":"/3/0/", "bt":1700000000,
//!  "e":[{"n":"0","sv":"Open Mobile Alliance"}, {"n":"9","v":95}, {"n":"7/0","v":3800,"t":-5}]}
//! ```
//!
//! Entry names are relative to `bn`, or to the requested path when there is no `bn`; values are
//! `v` (numbers), `sv` (strings; base64 for Opaque resources), `bv` (booleans) and `ov` (object
//! links `"3:0"`); an entry's time is `bt` + `t`.

use super::json_text::{PackArray, element_offsets, json_kind, number_from_json, parse_json};
use super::senml::{RawValue, at, resolve_name, syntax, typed_value};
use super::{ContentFormat, DecodeError, DecodeErrorKind, Record, declared_type};
use crate::model::ObjectModel;
use crate::node::TreeError;
use crate::path::Path;
use crate::value::ResourceType;

const FORMAT: ContentFormat = ContentFormat::Lwm2mJson;

/// Decodes an LwM2M JSON payload that answers a request on `requested` into records.
///
/// An empty payload is no records (as for SenML); `{}` without `"e"` is an error, as in Leshan.
pub fn decode(
    requested: &Path,
    bytes: &[u8],
    model: &ObjectModel,
) -> Result<Vec<Record>, DecodeError> {
    let Some((text, root)) = parse_json(FORMAT, bytes)? else {
        return Ok(Vec::new());
    };
    let start = text.len() - text.trim_start().len();
    let fail = |message: String| syntax(FORMAT, message).at(start);
    let serde_json::Value::Object(root) = &root else {
        return Err(fail(format!(
            "an LwM2M JSON payload must be a JSON object, found {}",
            json_kind(&root)
        )));
    };
    let base_name = match root.get("bn") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(fail(format!(
                "\"bn\" must be a string, found {}",
                json_kind(other)
            )));
        }
    };
    let base_time = match root.get("bt") {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(number_from_json(n).to_f64()),
        Some(other) => {
            return Err(fail(format!(
                "\"bt\" must be a number, found {}",
                json_kind(other)
            )));
        }
    };
    let entries = match root.get("e") {
        Some(serde_json::Value::Array(entries)) => entries,
        Some(other) => {
            return Err(fail(format!(
                "\"e\" must be an array, found {}",
                json_kind(other)
            )));
        }
        None => return Err(fail("the payload has no \"e\" array of entries".to_owned())),
    };
    let offsets = element_offsets(text, PackArray::RootMember("e"));
    let context = Context {
        requested,
        base_name,
        base_time,
        model,
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| context.record(entry, offsets.get(i).copied()))
        .collect()
}

/// What every entry is read against.
struct Context<'a> {
    requested: &'a Path,
    base_name: Option<&'a str>,
    base_time: Option<f64>,
    model: &'a ObjectModel,
}

impl Context<'_> {
    /// `offset` is where the entry starts in the payload, when known.
    fn record(
        &self,
        entry: &serde_json::Value,
        offset: Option<usize>,
    ) -> Result<Record, DecodeError> {
        let fail = |kind: DecodeErrorKind| at(DecodeError::new(FORMAT, kind), offset);
        let syntax_error = |message: String| fail(DecodeErrorKind::Syntax(message));
        let serde_json::Value::Object(fields) = entry else {
            return Err(syntax_error(format!(
                "an entry must be a JSON object, found {}",
                json_kind(entry)
            )));
        };
        let name = match fields.get("n") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                return Err(syntax_error(format!(
                    "\"n\" must be a string, found {}",
                    json_kind(other)
                )));
            }
        };
        let path = self.entry_path(name).map_err(fail)?;
        let fail_at_path = |kind: DecodeErrorKind| fail(kind).with_path(path);
        let time = match fields.get("t") {
            None => None,
            Some(serde_json::Value::Number(n)) => Some(number_from_json(n).to_f64()),
            Some(other) => {
                return Err(syntax_error(format!(
                    "\"t\" must be a number, found {}",
                    json_kind(other)
                )));
            }
        };
        let time = match (self.base_time, time) {
            (None, None) => None,
            (bt, t) => {
                let sum = bt.unwrap_or(0.0) + t.unwrap_or(0.0);
                if !sum.is_finite() {
                    return Err(fail_at_path(DecodeErrorKind::Syntax(
                        "the entry's time is not a finite number".to_owned(),
                    )));
                }
                Some(sum)
            }
        };
        let mut values = ["v", "sv", "bv", "ov"]
            .into_iter()
            .filter_map(|key| fields.get(key).map(|field| (key, field)));
        let (key, field) = match (values.next(), values.next()) {
            (Some(only), None) => only,
            (None, _) => {
                return Err(fail_at_path(DecodeErrorKind::Syntax(
                    "an entry has no value (v, sv, bv or ov)".to_owned(),
                )));
            }
            (Some(_), Some(_)) => {
                return Err(fail_at_path(DecodeErrorKind::Syntax(
                    "an entry has more than one value (v, sv, bv, ov)".to_owned(),
                )));
            }
        };
        if path.depth() < 3 {
            return Err(fail_at_path(DecodeErrorKind::Tree(
                TreeError::NotAValuePath {
                    path,
                    depth: path.depth(),
                },
            )));
        }
        let declared = declared_type(self.model, &path);
        let raw = match (key, field) {
            ("v", serde_json::Value::Number(n)) => RawValue::Number(number_from_json(n)),
            // TS Core 1.0 §6.4.4: Opaque values are base64 text in "sv".
            ("sv", serde_json::Value::String(s)) if declared == Some(ResourceType::Opaque) => {
                RawValue::Base64(s.clone())
            }
            ("sv", serde_json::Value::String(s)) => RawValue::String(s.clone()),
            ("bv", serde_json::Value::Bool(b)) => RawValue::Boolean(*b),
            ("ov", serde_json::Value::String(s)) => RawValue::ObjLink(s.clone()),
            (key, other) => {
                let expected = match key {
                    "v" => "a number",
                    "bv" => "a boolean",
                    _ => "a string",
                };
                return Err(fail_at_path(DecodeErrorKind::Syntax(format!(
                    "{key:?} must be {expected}, found {}",
                    json_kind(other)
                ))));
            }
        };
        let value =
            typed_value(raw, declared).map_err(|e| fail_at_path(DecodeErrorKind::Value(e)))?;
        Ok(Record {
            path,
            time,
            value: Some(value),
        })
    }

    /// The entry's path: `bn` + `n` (plain concatenation, as in SenML, so `bn:"/3/0/1"` with
    /// `n:"1/0"` is `/3/0/11/0`, which Leshan accepts too); without `bn`, an absolute `n`, or `n`
    /// relative to the requested path; with neither, the requested path itself.
    fn entry_path(&self, name: Option<&str>) -> Result<Path, DecodeErrorKind> {
        match (self.base_name, name) {
            (Some(_), _) => resolve_name(self.base_name, name),
            (None, None) => Ok(*self.requested),
            (None, Some(n)) if n.starts_with('/') => resolve_name(None, Some(n)),
            (None, Some(n)) => {
                let base = match self.requested {
                    Path::Root => "/".to_owned(),
                    requested => format!("{requested}/"),
                };
                resolve_name(Some(&base), Some(n))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::senml::fixtures::{any_records, builtin, device_records, p, rec, timed};
    use crate::value::{ObjLink, Value, ValueError};
    use proptest::prelude::*;

    fn decode_at(requested: &str, text: &str) -> Result<Vec<Record>, DecodeError> {
        decode(&p(requested), text.as_bytes(), builtin())
    }

    /// OMA LwM2M TS Core 1.0 §6.4.4, the JSON payload of a Read of /3/0 (as reproduced in Leshan's
    /// `LwM2mNodeDecoderTest.json_device_object_instance0`).
    const TS_DEVICE_JSON: &str = concat!(
        r#"{"bn":"/3/0/","#,
        r#""e":["#,
        r#"{"n":"0","sv":"Open Mobile Alliance"},"#,
        r#"{"n":"1","sv":"Lightweight M2M Client"},"#,
        r#"{"n":"2","sv":"345000123"},"#,
        r#"{"n":"3","sv":"1.0"},"#,
        r#"{"n":"6/0","v":1},"#,
        r#"{"n":"6/1","v":5},"#,
        r#"{"n":"7/0","v":3800},"#,
        r#"{"n":"7/1","v":5000},"#,
        r#"{"n":"8/0","v":125},"#,
        r#"{"n":"8/1","v":900},"#,
        r#"{"n":"9","v":100},"#,
        r#"{"n":"10","v":15},"#,
        r#"{"n":"11/0","v":0},"#,
        r#"{"n":"13","v":1367491215},"#,
        r#"{"n":"14","sv":"+02:00"},"#,
        r#"{"n":"16","sv":"U"}]}"#
    );

    #[test]
    fn ts_device_example() {
        assert_eq!(decode_at("/3/0", TS_DEVICE_JSON).unwrap(), device_records());
    }

    #[test]
    fn leshan_naming_variants() {
        // Leshan json_device_object_instance0_with_empty_root_basename and …_without_basename.
        let with_root = TS_DEVICE_JSON
            .replace(r#""bn":"/3/0/","#, r#""bn":"/","#)
            .replace(r#""n":""#, r#""n":"3/0/"#);
        assert_eq!(decode_at("/3/0", &with_root).unwrap(), device_records());
        let absolute = TS_DEVICE_JSON
            .replace(r#""bn":"/3/0/","#, "")
            .replace(r#""n":""#, r#""n":"/3/0/"#);
        assert_eq!(decode_at("/3/0", &absolute).unwrap(), device_records());
        // Without bn, relative names are relative to the requested path.
        let relative = TS_DEVICE_JSON.replace(r#""bn":"/3/0/","#, "");
        assert_eq!(decode_at("/3/0", &relative).unwrap(), device_records());
        let relative = r#"{"e":[{"n":"0/0","sv":"x"},{"n":"1/9","v":7}]}"#;
        assert_eq!(
            decode_at("/3", relative).unwrap(),
            vec![
                rec("/3/0/0", Value::String("x".into())),
                rec("/3/1/9", Value::Integer(7))
            ]
        );
        // Leshan json_cut_basename_name_in_the_middle_of_an_id: "3/0/1" + "1/0" is /3/0/11/0.
        let cut = r#"{"bn":"3/0/1","e":[{"n":"1/0","v":0},{"n":"1/1","v":0}]}"#;
        assert_eq!(
            decode_at("/3/0/11", cut).unwrap(),
            vec![
                rec("/3/0/11/0", Value::Integer(0)),
                rec("/3/0/11/1", Value::Integer(0))
            ]
        );
        // Leshan json_empty_object: an empty entry list, with or without bn.
        assert_eq!(decode_at("/2", r#"{"e":[]}"#).unwrap(), vec![]);
        assert_eq!(decode_at("/2", r#"{"bn":"2", "e":[]}"#).unwrap(), vec![]);
    }

    #[test]
    fn every_value_kind_and_opaque_as_base64() {
        let text = r#"{"bn":"/","bt":1700000000,"e":[
            {"n":"3/0/0","sv":"Open Mobile Alliance"},
            {"n":"3/0/9","v":95},
            {"n":"5/0/14","bv":true},
            {"n":"3/0/22/0","ov":"10243:0"},
            {"n":"3/0/7/0","v":3800,"t":-5},
            {"n":"5/0/0","sv":"AQIDBAU="},
            {"n":"6/0/0","v":43.918998},
            {"n":"3/0/13","v":1.7e9},
            {"n":"5/0/13","v":18446744073709551615}]}"#;
        let bt = 1_700_000_000.0;
        assert_eq!(
            decode_at("/", text).unwrap(),
            vec![
                timed("/3/0/0", bt, Value::String("Open Mobile Alliance".into())),
                timed("/3/0/9", bt, Value::Integer(95)),
                timed("/5/0/14", bt, Value::Boolean(true)),
                timed(
                    "/3/0/22/0",
                    bt,
                    Value::Objlnk(ObjLink {
                        object: 10243,
                        instance: 0
                    })
                ),
                timed("/3/0/7/0", bt - 5.0, Value::Integer(3800)),
                timed("/5/0/0", bt, Value::Opaque(vec![1, 2, 3, 4, 5])),
                timed("/6/0/0", bt, Value::Float(43.918998)),
                timed("/3/0/13", bt, Value::Time(1_700_000_000)),
                timed("/5/0/13", bt, Value::UnsignedInteger(u64::MAX)),
            ]
        );
    }

    #[test]
    fn leshan_timestamped_and_custom_objects() {
        // Leshan json_timestamped_resources: bn is the resource, bt after the entries.
        let text = r#"{"bn":"/1024/0/1","e":[{"v":22.9,"t":-30},{"v":22.4,"t":-5},{"v":24.1,"t":-50}],"bt":25462634}"#;
        assert_eq!(
            decode_at("/1024/0/1", text).unwrap(),
            vec![
                timed("/1024/0/1", 25_462_604.0, Value::Float(22.9)),
                timed("/1024/0/1", 25_462_629.0, Value::Float(22.4)),
                timed("/1024/0/1", 25_462_584.0, Value::Float(24.1)),
            ]
        );
        // Leshan json_custom_object_instance: an object the model does not know.
        let text = r#"{"bn":"1024/0/", "e":[{"n":"0","sv":"a string"},{"n":"1","v":10.5},{"n":"2","bv":true}]}"#;
        assert_eq!(
            decode_at("/1024/0", text).unwrap(),
            vec![
                rec("/1024/0/0", Value::String("a string".into())),
                rec("/1024/0/1", Value::Float(10.5)),
                rec("/1024/0/2", Value::Boolean(true)),
            ]
        );
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let syntax = |requested: &str, text: &str| {
            let err = decode_at(requested, text).unwrap_err();
            assert!(
                matches!(err.kind, DecodeErrorKind::Syntax(_)),
                "{text}: {err}"
            );
            err
        };
        // Leshan json_empty_object: "{}" has no "e".
        syntax("/2", "{}");
        syntax("/3/0", r#"[{"n":"/3/0/9","v":1}]"#);
        syntax("/3/0", r#"{"bn":3,"e":[]}"#);
        syntax("/3/0", r#"{"e":{}}"#);
        // Leshan json_missing_value_for_resource.
        let err = syntax("/2/0/0", r#"{"bn":"2/0/","e":[{"n":"0"}]}"#);
        assert_eq!((err.path, err.offset), (Some(p("/2/0/0")), Some(18)));
        syntax("/3/0", r#"{"e":[{"n":"9","v":1,"sv":"1"}]}"#);
        syntax("/3/0", r#"{"e":[{"n":"9","v":"1"}]}"#);
        syntax("/3/0", r#"{"e":[7]}"#);
        // Type mismatches and bad values carry the path.
        let err =
            decode_at("/3/0", r#"{"e":[{"n":"0","sv":"a"},{"n":"9","sv":"95"}]}"#).unwrap_err();
        assert_eq!((err.path, err.offset), (Some(p("/3/0/9")), Some(25)));
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::Value(ValueError::WrongType { .. })
            ),
            "{err}"
        );
        let err = decode_at("/5/0", r#"{"e":[{"n":"0","sv":"!!"}]}"#).unwrap_err();
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
        let err = decode_at("/3/0", r#"{"e":[{"n":"22/0","ov":"3:"}]}"#).unwrap_err();
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
        let err = decode_at("/3/0", r#"{"e":[{"n":"x","v":1}]}"#).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Path(_)), "{err}");
        let err = decode_at("/3", r#"{"e":[{"n":"0","v":1}]}"#).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::Tree(_)), "{err}");
        let err = decode_at("/3/0", r#"{"e":[{"n":"9","v":1}"#).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Truncated);
        assert_eq!(decode_at("/3/0", "").unwrap(), vec![]);
    }

    /// Writes records the way an LwM2M 1.0 client would (test-only: Ferrite never encodes it).
    fn client_json(records: &[Record]) -> String {
        use base64::Engine as _;
        let entries: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut entry = serde_json::Map::new();
                entry.insert("n".into(), r.path.to_string().into());
                if let Some(t) = r.time {
                    entry.insert("t".into(), serde_json::Number::from_f64(t).unwrap().into());
                }
                let (key, value): (&str, serde_json::Value) = match r.value.as_ref().unwrap() {
                    Value::String(s) | Value::Corelnk(s) => ("sv", s.as_str().into()),
                    Value::Integer(i) | Value::Time(i) => ("v", (*i).into()),
                    Value::UnsignedInteger(u) => ("v", (*u).into()),
                    Value::Float(f) => ("v", serde_json::Number::from_f64(*f).unwrap().into()),
                    Value::Boolean(b) => ("bv", (*b).into()),
                    Value::Opaque(bytes) => (
                        "sv",
                        base64::engine::general_purpose::STANDARD
                            .encode(bytes)
                            .into(),
                    ),
                    Value::Objlnk(link) => ("ov", link.to_string().into()),
                    other => panic!("not generated: {other:?}"),
                };
                entry.insert(key.into(), value);
                serde_json::Value::Object(entry)
            })
            .collect();
        serde_json::json!({ "e": entries }).to_string()
    }

    proptest! {
        #[test]
        fn client_payloads_decode_exactly(records in any_records()) {
            let text = client_json(&records);
            prop_assert_eq!(decode(&Path::Root, text.as_bytes(), builtin()).unwrap(), records);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&Path::Instance(3, 0), &bytes, builtin());
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
            let _ = decode(&Path::Instance(3, 0), &bytes, builtin());
            let _ = decode(&Path::Root, &bytes[..cut], builtin());
        }
    }
}
