//! The device's object tree and its live events, worked out without the browser: object links
//! from the registration (CoRE link format, TS Core 1.1 §6.2.1) become objects and instances
//! named from the object model (`lwm2m-objects`), and the server-sent events become lines an
//! operator reads (with notification values named and with units).

use lwm2m_objects::{ObjectModel, Path, ResourceDef};
use serde_json::Value as Json;

use crate::format;

/// One object the device registered.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectNode {
    pub id: u16,
    /// From the object model; `Object 1234` when the model does not know it.
    pub name: String,
    pub known: bool,
    /// The version the device announced (`ver`), if any.
    pub version: Option<String>,
    pub instances: Vec<u16>,
}

/// The objects and instances of a registration's object links, by object ID. Links the parser
/// skips (or a payload it cannot read at all) are left out rather than failing the page.
pub fn object_tree(links: &str) -> Vec<ObjectNode> {
    let Ok(parsed) = lwm2m_objects::link::parse_registration(links) else {
        return Vec::new();
    };
    let model = ObjectModel::builtin();
    parsed
        .objects
        .iter()
        .map(|(id, object)| {
            let def = model.object(*id);
            ObjectNode {
                id: *id,
                name: def.map_or_else(|| format!("Object {id}"), |d| d.name.to_owned()),
                known: def.is_some(),
                version: object.version.clone(),
                instances: object.instances.iter().copied().collect(),
            }
        })
        .collect()
}

/// The resources the object model defines for an object (none for an unknown object).
pub fn resources_of(object: u16) -> &'static [ResourceDef] {
    ObjectModel::builtin()
        .object(object)
        .map_or(&[], |def| def.resources)
}

/// The resource definition at a path (`/3/0/9`, `/3/0/6/1`), if the model has it.
pub fn resource_at(path: &str) -> Option<&'static ResourceDef> {
    let path: Path = path.parse().ok()?;
    ObjectModel::builtin().resource(path.object_id()?, path.resource_id()?)
}

/// The resource path a value's path belongs to: `/3/0/6/1` → `/3/0/6`; `/3/0/9` stays.
pub fn resource_path(path: &str) -> Option<String> {
    let parsed: Path = path.parse().ok()?;
    Some(format!(
        "/{}/{}/{}",
        parsed.object_id()?,
        parsed.instance_id()?,
        parsed.resource_id()?
    ))
}

/// The OMA type name for a value's type tag in events (`unsigned_integer` → `Unsigned Integer`).
fn oma_type(tag: &str) -> &'static str {
    match tag {
        "string" => "String",
        "integer" => "Integer",
        "unsigned_integer" => "Unsigned Integer",
        "float" => "Float",
        "boolean" => "Boolean",
        "opaque" => "Opaque",
        "time" => "Time",
        "objlnk" => "Objlnk",
        "corelnk" => "Corelnk",
        _ => "none",
    }
}

/// One value carried by an event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventValue {
    pub path: String,
    /// `Battery Level` (or the path when the model does not know it).
    pub name: String,
    /// The value as text with its unit.
    pub text: String,
    pub oma_type: &'static str,
    pub raw: Json,
}

/// A live event as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// The SSE event name (`registered`, `notification`, …).
    pub kind: String,
    pub endpoint: Option<String>,
    /// RFC 3339, when the event has a time.
    pub at: Option<String>,
    /// One line for an operator.
    pub summary: String,
    pub values: Vec<EventValue>,
    pub observation: Option<u64>,
    pub operation: Option<String>,
}

fn text_of<'a>(data: &'a Json, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Json::as_str)
}

/// The values of an event's `values`/`records` (`[{"path", "time"?, "value": {"type", "value"}}]`).
fn event_values(records: Option<&Json>) -> Vec<EventValue> {
    let Some(Json::Array(records)) = records else {
        return Vec::new();
    };
    records
        .iter()
        .filter_map(|record| {
            let path = text_of(record, "path")?.to_owned();
            let view = record.get("value")?;
            let ty = oma_type(text_of(view, "type").unwrap_or("none"));
            let raw = view.get("value").cloned().unwrap_or(Json::Null);
            let def = resource_at(&path);
            Some(EventValue {
                name: def.map_or_else(|| path.clone(), |d| d.name.to_owned()),
                text: format::value_text(ty, &raw, def.and_then(|d| d.units)),
                oma_type: ty,
                raw,
                path,
            })
        })
        .collect()
}

/// Reads one server-sent event (`kind` its name, `data` its JSON).
pub fn live_event(kind: &str, data: &str) -> LiveEvent {
    let json: Json = serde_json::from_str(data).unwrap_or(Json::Null);
    let registration = json.get("registration");
    let endpoint = text_of(&json, "endpoint")
        .or_else(|| registration.and_then(|r| text_of(r, "endpoint")))
        .map(str::to_owned);
    let at = text_of(&json, "at")
        .or_else(|| registration.and_then(|r| text_of(r, "last_update")))
        .map(str::to_owned);
    let observation = json.get("observation").and_then(Json::as_u64);
    let operation = text_of(&json, "operation").map(str::to_owned);
    let mut values = Vec::new();
    let registration_text = |r: &Json| {
        let lifetime = r.get("lifetime").and_then(Json::as_u64).unwrap_or(0);
        format!(
            "LwM2M {}, binding {}, lifetime {}, from {}",
            text_of(r, "lwm2m_version").unwrap_or("?"),
            text_of(r, "binding").unwrap_or("?"),
            format::duration_text(lifetime),
            text_of(r, "address").unwrap_or("?"),
        )
    };
    let summary = match kind {
        "registered" => {
            let reboot = json.get("reboot").and_then(Json::as_bool).unwrap_or(false);
            let what = if reboot {
                "Registered again (the device restarted)"
            } else {
                "Registered"
            };
            match registration {
                Some(r) => format!("{what}: {}", registration_text(r)),
                None => what.to_owned(),
            }
        }
        "updated" => {
            let moved = json
                .get("address_changed")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            match (registration, moved) {
                (Some(r), true) => format!(
                    "Registration updated from a new address {}; its observations ended",
                    text_of(r, "address").unwrap_or("?")
                ),
                _ => "Registration updated (the device checked in)".to_owned(),
            }
        }
        "deregistered" => "De-registered by the device".to_owned(),
        "expired" => "Registration expired: no update within its lifetime".to_owned(),
        "removed" => "Registration removed by the server".to_owned(),
        "registration_refused" => format!(
            "Registration refused ({}): {}",
            text_of(&json, "coap_code").unwrap_or("?"),
            text_of(&json, "reason").unwrap_or("no reason given")
        ),
        "notification" => {
            values = event_values(json.get("values"));
            match text_of(&json, "error") {
                Some(error) => format!("Notification could not be decoded: {error}"),
                None => format!(
                    "Notification (observation {}): {}",
                    observation.unwrap_or(0),
                    values_line(&values)
                ),
            }
        }
        "observation_ended" => format!(
            "Observation {} ended: {}",
            observation.unwrap_or(0),
            text_of(&json, "reason").unwrap_or("no reason given")
        ),
        "send" => {
            values = event_values(json.get("records"));
            format!("Data sent by the device: {}", values_line(&values))
        }
        "operation_queued" => format!(
            "Request {} queued until the device wakes (expires {})",
            operation.as_deref().unwrap_or("?"),
            text_of(&json, "expires_at").map_or_else(|| "?".to_owned(), format::time_text)
        ),
        "operation_completed" => {
            let result = json.get("result");
            let failed = result
                .and_then(|r| r.get("error"))
                .and_then(|e| text_of(e, "message"));
            if let Some(outcome) = result.and_then(|r| r.get("outcome")) {
                values = event_values(outcome.get("values"));
            }
            match failed {
                Some(message) => format!(
                    "Request {} failed: {message}",
                    operation.as_deref().unwrap_or("?")
                ),
                None if values.is_empty() => {
                    format!("Request {} completed", operation.as_deref().unwrap_or("?"))
                }
                None => format!(
                    "Request {} completed: {}",
                    operation.as_deref().unwrap_or("?"),
                    values_line(&values)
                ),
            }
        }
        "state_changed" => {
            let actor = text_of(&json, "actor").unwrap_or("someone");
            // `user:alice` → `alice`; system actors stay as they are.
            let actor = actor.strip_prefix("user:").unwrap_or(actor);
            let mut line = format!(
                "Lifecycle {} → {} by {actor}",
                text_of(&json, "from").unwrap_or("?"),
                text_of(&json, "to").unwrap_or("?"),
            );
            if let Some(reason) = text_of(&json, "reason").filter(|r| !r.is_empty()) {
                line.push_str(&format!(": {reason}"));
            }
            line
        }
        "lagged" => format!(
            "{} events were missed (the console fell behind)",
            json.get("missed").and_then(Json::as_u64).unwrap_or(0)
        ),
        other => other.to_string(),
    };
    LiveEvent {
        kind: kind.to_owned(),
        endpoint,
        at,
        summary,
        values,
        observation,
        operation,
    }
}

/// `Battery Level = 87 %, Supply Voltage = 3.3 V` (the first few values).
fn values_line(values: &[EventValue]) -> String {
    const SHOWN: usize = 6;
    let mut parts: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("{} = {}", v.name, v.text))
        .collect();
    if values.len() > SHOWN {
        parts.push(format!("and {} more", values.len() - SHOWN));
    }
    if parts.is_empty() {
        "no values".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn lifecycle_changes_read_as_who_moved_it_where() {
        let e = live_event(
            "state_changed",
            r#"{"event":"state_changed","endpoint":"m1","from":"active","to":"suspended","actor":"user:alice","reason":"cabinet open","at":"2026-11-22T02:00:00Z"}"#,
        );
        assert_eq!(e.endpoint.as_deref(), Some("m1"));
        assert_eq!(
            e.summary,
            "Lifecycle active → suspended by alice: cabinet open"
        );
        let e = live_event(
            "state_changed",
            r#"{"endpoint":"m1","from":"provisioned","to":"active","actor":"system:registration"}"#,
        );
        assert_eq!(
            e.summary,
            "Lifecycle provisioned → active by system:registration"
        );
    }

    #[test]
    fn object_links_become_named_objects_with_instances() {
        let tree = object_tree(
            "</>;rt=\"oma.lwm2m\",</1/0>,</3/0>,</4/0>,</5>;ver=1.1,</10243/0>,</9999/2>",
        );
        let ids: Vec<u16> = tree.iter().map(|o| o.id).collect();
        assert_eq!(ids, vec![1, 3, 4, 5, 9999, 10243]);
        let device = tree.iter().find(|o| o.id == 3).unwrap();
        assert_eq!(device.name, "Device");
        assert_eq!(device.instances, vec![0]);
        let firmware = tree.iter().find(|o| o.id == 5).unwrap();
        assert!(firmware.instances.is_empty());
        assert_eq!(firmware.version.as_deref(), Some("1.1"));
        let unknown = tree.iter().find(|o| o.id == 9999).unwrap();
        assert!(!unknown.known);
        assert_eq!(unknown.name, "Object 9999");
        assert!(object_tree("not a link").is_empty());
    }

    #[test]
    fn resources_and_paths_come_from_the_model() {
        let battery = resource_at("/3/0/9").unwrap();
        assert_eq!(battery.name, "Battery Level");
        // The OMA registry gives the battery level in "/100" (shown as %).
        assert_eq!(battery.units, Some("/100"));
        assert!(
            resources_of(3)
                .iter()
                .any(|r| r.id == 4 && r.operations.execute)
        );
        assert!(resources_of(9999).is_empty());
        assert_eq!(resource_path("/3/0/6/1").as_deref(), Some("/3/0/6"));
        assert_eq!(resource_path("/3/0/9").as_deref(), Some("/3/0/9"));
        assert_eq!(resource_path("/3/0"), None);
        assert_eq!(resource_path("junk"), None);
    }

    #[test]
    fn notifications_show_named_values_with_units() {
        let data = r#"{"event":"notification","endpoint":"meter-1","observation":7,"paths":["/3/0/9"],"values":[{"path":"/3/0/9","value":{"type":"integer","value":87}}],"at":"2025-01-31T12:00:00Z"}"#;
        let event = live_event("notification", data);
        assert_eq!(event.endpoint.as_deref(), Some("meter-1"));
        assert_eq!(event.observation, Some(7));
        assert_eq!(event.values.len(), 1);
        assert_eq!(event.values[0].text, "87 %");
        assert_eq!(
            event.summary,
            "Notification (observation 7): Battery Level = 87 %"
        );
    }

    #[test]
    fn registrations_and_other_events_read_as_sentences() {
        let data = r#"{"event":"registered","registration":{"endpoint":"meter-1","registration_id":"r1","transport":"coaps","lwm2m_version":"1.1","binding":"U","queue_mode":false,"lifetime":3600,"sms_number":null,"objects":"</3/0>","address":"10.0.0.1:5683","psk_identity":"m","registered_at":"2025-01-31T12:00:00Z","last_update":"2025-01-31T12:00:00Z"},"reboot":true}"#;
        let event = live_event("registered", data);
        assert_eq!(event.endpoint.as_deref(), Some("meter-1"));
        assert_eq!(event.at.as_deref(), Some("2025-01-31T12:00:00Z"));
        assert_eq!(
            event.summary,
            "Registered again (the device restarted): LwM2M 1.1, binding U, lifetime 1 h, from 10.0.0.1:5683"
        );
        let failed = live_event(
            "operation_completed",
            r#"{"endpoint":"m","operation":"00000000000000ab","result":{"status":"failed","error":{"kind":"timeout","message":"no answer"}},"at":"2025-01-31T12:00:00Z"}"#,
        );
        assert_eq!(failed.summary, "Request 00000000000000ab failed: no answer");
        let lagged = live_event("lagged", r#"{"event":"lagged","missed":3}"#);
        assert!(lagged.summary.starts_with("3 events were missed"));
        // Garbage data still gives a line rather than a panic.
        assert_eq!(live_event("expired", "{").kind, "expired");
    }
}
