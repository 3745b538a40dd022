//! JSON ↔ LwM2M values for the device-operation routes: a request's JSON value becomes a typed
//! [`Value`] by the resource's type in the object model (TS Core 1.1 Appendix C data types), and a
//! decoded value goes out as plain JSON with its path, resource name, type and unit.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use lwm2m_objects::codec::Record;
use lwm2m_objects::{
    Node, ObjLink, ObjectInstance, ObjectModel, Path, Resource, ResourceDef, ResourceType, Value,
};
use lwm2m_proto::lwm2m::server::Content;
use serde_json::Value as Json;

/// One value as the API shows it (defined in `api_types::lwm2m`, shared with the console).
pub use api_types::lwm2m::ValueOut;

/// The model's definition of the resource at `path`, if it names a resource.
pub fn resource_def(path: &Path) -> Option<&'static ResourceDef> {
    let (object, resource) = (path.object_id()?, path.resource_id()?);
    ObjectModel::builtin().resource(object, resource)
}

/// A decoded value for the API: typed by the model when the format did not carry a type.
pub fn value_out(path: &Path, value: &Value, time: Option<f64>) -> ValueOut {
    let def = resource_def(path);
    let typed = match (value, def) {
        (Value::Untyped(_), Some(def)) => value.clone().coerce(def.ty).ok(),
        _ => None,
    };
    let value = typed.as_ref().unwrap_or(value);
    let ty = match value.resource_type() {
        Some(ty) => ty.oma_name().to_owned(),
        None => "Untyped".to_owned(),
    };
    ValueOut {
        path: path.to_string(),
        name: def.map(|d| d.name.to_owned()),
        ty,
        unit: def.and_then(|d| d.units).map(str::to_owned),
        value: value_json(value),
        time,
    }
}

/// A value as plain JSON.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::String(s) | Value::Corelnk(s) => Json::String(s.clone()),
        Value::Integer(i) | Value::Time(i) => Json::from(*i),
        Value::UnsignedInteger(u) => Json::from(*u),
        // JSON has no NaN or infinity: those become null.
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Opaque(bytes) => Json::String(BASE64.encode(bytes)),
        Value::Objlnk(link) => Json::String(link.to_string()),
        Value::None => Json::Null,
        Value::Untyped(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Json::String(text.to_owned()),
            Err(_) => Json::String(BASE64.encode(bytes)),
        },
    }
}

/// Every value of decoded content, in path order for nodes and as received for records.
pub fn content_values(content: &Content, received_unix: f64) -> Vec<ValueOut> {
    match content {
        Content::Node { path, node } => node
            .flatten(path)
            .into_iter()
            .map(|(path, value)| value_out(&path, value, None))
            .collect(),
        Content::Records(records) => records
            .iter()
            .map(|record| record_out(record, received_unix))
            .collect(),
    }
}

fn record_out(record: &Record, received_unix: f64) -> ValueOut {
    value_out(
        &record.path,
        record.value.as_ref().unwrap_or(&Value::None),
        record.absolute_time(received_unix),
    )
}

/// Reads a path given as text, explaining what is wrong.
pub fn parse_path(text: &str) -> Result<Path, String> {
    text.parse::<Path>().map_err(|e| e.to_string())
}

fn describe(path: &Path, def: Option<&ResourceDef>) -> String {
    match def {
        Some(def) => format!("{path} ({})", def.name),
        None => path.to_string(),
    }
}

/// The JSON value for the resource (instance) at `path` as a typed [`Value`]: by the model's
/// type when it knows the resource, by the JSON type otherwise.
pub fn value_in(path: &Path, json: &Json) -> Result<Value, String> {
    let def = resource_def(path);
    let Some(ty) = def.map(|d| d.ty) else {
        return untyped_in(path, json);
    };
    let wrong = |expected: &str| {
        format!(
            "{} is {} {}: expected {expected}, got {json}",
            describe(path, def),
            article(ty.oma_name()),
            ty.oma_name()
        )
    };
    Ok(match ty {
        ResourceType::String => Value::String(
            json.as_str()
                .ok_or_else(|| wrong("a JSON string"))?
                .to_owned(),
        ),
        ResourceType::Corelnk => Value::Corelnk(
            json.as_str()
                .ok_or_else(|| wrong("a JSON string"))?
                .to_owned(),
        ),
        ResourceType::Integer => {
            Value::Integer(json.as_i64().ok_or_else(|| wrong("a JSON integer"))?)
        }
        ResourceType::UnsignedInteger => {
            Value::UnsignedInteger(json.as_u64().ok_or_else(|| wrong("a JSON integer ≥ 0"))?)
        }
        ResourceType::Float => Value::Float(json.as_f64().ok_or_else(|| wrong("a JSON number"))?),
        ResourceType::Boolean => {
            Value::Boolean(json.as_bool().ok_or_else(|| wrong("true or false"))?)
        }
        ResourceType::Opaque => {
            let text = json.as_str().ok_or_else(|| wrong("a base64 string"))?;
            Value::Opaque(BASE64.decode(text).map_err(|_| wrong("a base64 string"))?)
        }
        ResourceType::Time => match json {
            Json::String(text) => Value::Time(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| wrong("seconds since the Unix epoch or an RFC 3339 time"))?
                    .timestamp(),
            ),
            _ => Value::Time(
                json.as_i64()
                    .ok_or_else(|| wrong("seconds since the Unix epoch or an RFC 3339 time"))?,
            ),
        },
        ResourceType::Objlnk => {
            let text = json.as_str().ok_or_else(|| wrong("\"object:instance\""))?;
            Value::Objlnk(
                text.parse::<ObjLink>()
                    .map_err(|_| wrong("\"object:instance\""))?,
            )
        }
        ResourceType::None => {
            return Err(format!(
                "{} has no value (it is executable): use /execute",
                describe(path, def)
            ));
        }
    })
}

fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'I' | b'U' | b'O' | b'A' | b'E') => "an",
        _ => "a",
    }
}

/// A value for a resource the model does not know, typed by its JSON form.
fn untyped_in(path: &Path, json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::String(s) => Value::String(s.clone()),
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else if let Some(u) = n.as_u64() {
                Value::UnsignedInteger(u)
            } else {
                Value::Float(n.as_f64().unwrap_or_default())
            }
        }
        _ => {
            return Err(format!(
                "{path} is not in the object model; give a string, number or boolean, got {json}"
            ));
        }
    })
}

/// The resource at `path` (`/o/i/r`) from JSON: a value, or for a multiple-instance resource an
/// object of resource-instance ID → value.
pub fn resource_in(path: &Path, json: &Json) -> Result<Resource, String> {
    let Path::Resource(o, i, r) = *path else {
        return Err(format!(
            "{path} is not a resource path (/object/instance/resource)"
        ));
    };
    let multiple = resource_def(path).is_some_and(|d| d.multiple);
    match json {
        Json::Object(instances) => {
            let mut values = BTreeMap::new();
            for (key, value) in instances {
                let ri = id_key(key, "resource instance")?;
                values.insert(ri, value_in(&Path::ResourceInstance(o, i, r, ri), value)?);
            }
            Ok(Resource::multiple(r, values))
        }
        _ if multiple => Err(format!(
            "{} is a multiple-instance resource: give an object of instance ID → value, e.g. {{\"0\": …}}",
            describe(path, resource_def(path))
        )),
        _ => Ok(Resource::single(r, value_in(path, json)?)),
    }
}

/// An ID given as a JSON object key.
fn id_key(key: &str, what: &str) -> Result<u16, String> {
    key.parse::<u16>()
        .ok()
        .filter(|id| *id <= lwm2m_objects::MAX_ID)
        .ok_or_else(|| format!("{key:?} is not a {what} ID (0..65534)"))
}

/// An object instance from an object of resource ID → value.
pub fn instance_in(
    object: u16,
    instance: u16,
    resources: &serde_json::Map<String, Json>,
) -> Result<ObjectInstance, String> {
    let mut out = Vec::with_capacity(resources.len());
    for (key, json) in resources {
        let r = id_key(key, "resource")?;
        out.push(resource_in(&Path::Resource(object, instance, r), json)?);
    }
    Ok(ObjectInstance::new(instance, out))
}

/// The node to write at `path` from a single JSON value: a resource, or one resource instance.
pub fn node_in(path: &Path, json: &Json) -> Result<Node, String> {
    match *path {
        Path::Resource(..) => Ok(Node::Resource(resource_in(path, json)?)),
        Path::ResourceInstance(_, _, _, ri) => Ok(Node::ResourceInstance {
            id: ri,
            value: value_in(path, json)?,
        }),
        _ => Err(format!(
            "\"value\" writes a resource or resource instance; {path} needs \"values\" (resource ID → value)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_by_the_object_model() {
        // /1/0/1 Lifetime: Integer (OMA object 1, LwM2M Server).
        assert_eq!(
            value_in(&Path::Resource(1, 0, 1), &json!(300)).unwrap(),
            Value::Integer(300)
        );
        let error = value_in(&Path::Resource(1, 0, 1), &json!("abc")).unwrap_err();
        assert!(
            error.contains("Lifetime") && error.contains("Integer"),
            "{error}"
        );
        // /3/0/13 Current Time: Time, from seconds or RFC 3339.
        assert_eq!(
            value_in(&Path::Resource(3, 0, 13), &json!("2023-11-14T22:13:20Z")).unwrap(),
            Value::Time(1_700_000_000)
        );
        assert_eq!(
            value_in(&Path::Resource(1, 0, 6), &json!(true)).unwrap(),
            Value::Boolean(true)
        );
        assert!(
            value_in(&Path::Resource(3, 0, 4), &json!(null)).is_err(),
            "Reboot is executable"
        );
        // Unknown objects are typed by the JSON.
        assert_eq!(
            value_in(&Path::Resource(40000, 0, 1), &json!(1.5)).unwrap(),
            Value::Float(1.5)
        );
    }

    #[test]
    fn multiple_instance_resources_need_an_object() {
        // /3/0/7 Power Source Voltage is multiple-instance.
        let resource =
            resource_in(&Path::Resource(3, 0, 7), &json!({"0": 5000, "1": 3300})).unwrap();
        assert_eq!(
            resource,
            Resource::multiple(7, [(0, Value::Integer(5000)), (1, Value::Integer(3300))])
        );
        assert!(resource_in(&Path::Resource(3, 0, 7), &json!(5)).is_err());
        assert!(resource_in(&Path::Resource(3, 0, 7), &json!({"x": 5})).is_err());
        assert!(node_in(&Path::Instance(3, 0), &json!(5)).is_err());
    }

    #[test]
    fn decoded_values_carry_name_type_and_unit() {
        let out = value_out(&Path::Resource(4, 0, 2), &Value::Integer(-93), None);
        assert_eq!(out.name.as_deref(), Some("Radio Signal Strength"));
        assert_eq!(out.ty, "Integer");
        assert_eq!(out.unit.as_deref(), Some("dBm"));
        assert_eq!(out.value, json!(-93));
        // Untyped bytes of a known resource are typed by the model.
        let out = value_out(
            &Path::Resource(3, 0, 9),
            &Value::Untyped(b"87".to_vec()),
            None,
        );
        assert_eq!((out.ty.as_str(), out.value), ("Integer", json!(87)));
        let out = value_out(
            &Path::Resource(3, 0, 0),
            &Value::String("Ferrite".into()),
            None,
        );
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "path": "/3/0/0", "name": "Manufacturer", "type": "String", "unit": null, "value": "Ferrite"
            })
        );
        assert_eq!(value_json(&Value::Float(f64::NAN)), Json::Null);
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        assert!(parse_path("/3/x").unwrap_err().contains("not a decimal ID"));
        assert!(parse_path("3/0").is_err());
    }
}
