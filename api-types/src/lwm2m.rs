//! The JSON bodies of the device-operation routes (`/api/v1/devices/{endpoint}/read`, `/write`,
//! `/execute`, `/observe`, …): requests, answers, values and errors, shared by the server (which
//! documents them in its OpenAPI schema) and the console (which sends and reads them).
//!
//! Requests derive `Serialize` for the console and leave out absent options, so what the console
//! sends is what a hand-written client sends; answers derive `Deserialize` with the defaults that
//! match the server's `skip_serializing_if`s, so the wire format is the server's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// `POST /devices/{endpoint}/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// LwM2M paths: objects, instances, resources or resource instances (`/3/0`, `/4/0/2`).
    pub paths: Vec<String>,
    /// How long to wait for the device, in milliseconds (default 30000, at most 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/observe`: one path (`path`: Observe), or several (`paths`: one
/// Observe-Composite, LwM2M 1.1+, whose notifications carry all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObserveRequest {
    /// The observed object, instance, resource or resource instance (`/3/0/9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Several paths observed together (Observe-Composite, TS Core 1.1 §6.4.1); instead of
    /// `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// A body naming one path (`/delete`, `/discover`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PathRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// Replace (PUT) or partial update (POST), TS Core 1.1 §6.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WriteModeIn {
    Replace,
    Partial,
}

/// `POST /devices/{endpoint}/write`: `{"path": "/1/0/1", "value": 300}` for a resource (or
/// resource instance; a multiple-instance resource takes `{"0": …, "1": …}`), or
/// `{"path": "/1/0", "values": {"1": 300, "7": "U"}, "mode": "partial"}` for an instance.
/// The mode defaults to replace for a resource and partial update for an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub values: Option<serde_json::Map<String, Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WriteModeIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The executable resource, e.g. `/3/0/4` (Reboot).
    pub path: String,
    /// Arguments in the TS Core 1.1 §5.4.3 syntax (`0='x',1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/create`: `{"path": "/3303/1", "values": {"5700": 21.5}}` (or
/// `"path": "/3303", "instance": 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u16>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub values: serde_json::Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/write-attributes` (TS Core 1.1 §5.1.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteAttributesRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmax: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub st: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epmin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epmax: Option<u32>,
    /// LwM2M 1.2 attributes (`edge`, `con`, `hqmax`) as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
    /// Attributes to remove (sent without a value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `DELETE /devices/{endpoint}/observe?observation=…` (or `?path=/3/0/9`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    /// The observation's number (from the Observe answer or a notification event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<u64>,
    /// Or the observed path: cancels every observation of exactly that path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// One value as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueOut {
    /// `/object/instance/resource[/resource-instance]`.
    pub path: String,
    /// The resource's name in the object model (`Manufacturer`), null when the model does not
    /// know it.
    pub name: Option<String>,
    /// The LwM2M data type (`String`, `Integer`, `Unsigned Integer`, `Float`, `Boolean`,
    /// `Opaque`, `Time`, `Objlnk`, `Corelnk`, `none`), or `Untyped` for bytes of an unknown
    /// resource.
    #[serde(rename = "type")]
    pub ty: String,
    /// The unit from the object model (`dBm`, `Wh`), if any.
    pub unit: Option<String>,
    /// The value: text, number or boolean; Opaque as base64; Objlnk as `"object:instance"`;
    /// Time as seconds since the Unix epoch; null for no value.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Json,
    /// The device's time for the value (seconds since the Unix epoch), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
}

/// The JSON body of a failed device operation (a superset of [`crate::ErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceErrorBody {
    /// Stable machine-readable kind: `unknown_device`, `not_registered`, `not_allowed`,
    /// `invalid_request`, `busy`, `timeout`, `expired`, `device_error`, `bad_response`,
    /// `registration_ended`, `unavailable`, `bad_request`, `internal`.
    pub error: String,
    pub message: String,
    /// The device's CoAP response code (`4.04`) when it answered with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coap_code: Option<String>,
    /// The operation still running on the wire after the wait ran out (its result comes as an
    /// `operation_completed` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadResponse {
    /// The service's operation ID(s).
    pub operations: Vec<String>,
    /// How the paths were read: `read`, `read-composite` (LwM2M 1.1+, one request) or
    /// `parallel-reads` (LwM2M 1.0: one Read per path, sent together).
    pub method: String,
    pub values: Vec<ValueOut>,
    /// Paths that failed while others succeeded (parallel reads only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PathErrorOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathErrorOut {
    pub path: String,
    pub error: DeviceErrorBody,
}

/// Write, Execute, Write-Attributes, Delete done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DoneResponse {
    pub operation: String,
    /// `changed` or `deleted`.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedResponse {
    pub operation: String,
    /// The new instance's path, when the device named it.
    pub instance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkOut {
    pub path: String,
    /// `pmin`, `dim`, `ver`, …; null for a flag without a value.
    pub attributes: BTreeMap<String, Option<String>>,
    /// The resource's or object's name in the object model.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoverResponse {
    pub operation: String,
    pub links: Vec<LinkOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObserveResponse {
    pub operation: String,
    /// The observation's number (cancel with it; notifications carry it). Null when the device
    /// answered without establishing an observation.
    pub observation: Option<u64>,
    pub values: Vec<ValueOut>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelResponse {
    pub operations: Vec<String>,
    pub cancelled: Vec<u64>,
}

/// 202: the device sleeps (queue mode); the request waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingResponse {
    /// Always `pending`.
    pub status: String,
    pub operation: String,
    /// Every pending operation (several for parallel reads).
    pub operations: Vec<String>,
    /// Where to poll: `/api/v1/operations/{id}`.
    pub poll: String,
}

/// A request persisted for a sleeping device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationStatus {
    pub id: String,
    pub endpoint: String,
    /// `pending`, `completed`, `failed`, `expired`.
    pub status: String,
    /// The operation as stored.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub operation: Json,
    pub created_at: String,
    pub expires_at: String,
    pub finished_at: Option<String>,
    /// The outcome (`{"status": "succeeded", "outcome": …}`) or error, once finished.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Option<Json>,
}

/// A device's live LwM2M registration (from the server's memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationOut {
    pub endpoint: String,
    pub registration_id: String,
    /// `coap` or `coaps`.
    pub transport: String,
    /// `1.0`, `1.1`, `1.2`.
    pub lwm2m_version: String,
    /// 1.0 form: `U`, `UQ`.
    pub binding: String,
    pub queue_mode: bool,
    pub lifetime_secs: u32,
    pub sms_number: Option<String>,
    /// The registered object links (`</3/0>`, …) as sent.
    pub objects: String,
    /// `ip:port`.
    pub address: String,
    pub psk_identity: Option<String>,
    pub registered_at: String,
    /// The last Register or Update (the device was last seen then or later).
    pub last_update: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObservationOut {
    pub observation: u64,
    pub paths: Vec<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn requests_leave_absent_options_out_and_read_back() {
        let write = WriteRequest {
            path: "/1/0/1".into(),
            value: Some(Json::from(300)),
            values: None,
            mode: None,
            wait_ms: None,
        };
        let text = serde_json::to_string(&write).unwrap();
        assert_eq!(text, r#"{"path":"/1/0/1","value":300}"#);
        assert_eq!(serde_json::from_str::<WriteRequest>(&text).unwrap(), write);
        let read = ReadRequest {
            paths: vec!["/3/0".into()],
            wait_ms: Some(5000),
        };
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"paths":["/3/0"],"wait_ms":5000}"#
        );
        assert!(serde_json::from_str::<PathRequest>(r#"{"path":"/3","extra":1}"#).is_err());
    }

    #[test]
    fn answers_read_back_what_the_server_writes() {
        let text = r#"{"operations":["00000000000000ab"],"method":"read","values":[{"path":"/3/0/9","name":"Battery Level","type":"Integer","unit":"%","value":87}]}"#;
        let read: ReadResponse = serde_json::from_str(text).unwrap();
        assert!(read.errors.is_empty());
        assert_eq!(read.values[0].unit.as_deref(), Some("%"));
        assert_eq!(read.values[0].time, None);
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
        let error: DeviceErrorBody =
            serde_json::from_str(r#"{"error":"timeout","message":"no answer"}"#).unwrap();
        assert_eq!(error.coap_code, None);
    }
}
