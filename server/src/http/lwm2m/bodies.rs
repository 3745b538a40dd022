//! The JSON bodies of the device-operation routes (requests and answers), documented in the
//! OpenAPI schema. Values are [`ValueOut`]s; errors are `DeviceErrorBody`s (`error.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;

use super::error::DeviceErrorBody;
use super::values::ValueOut;

/// `POST /devices/{endpoint}/read`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// LwM2M paths: objects, instances, resources or resource instances (`/3/0`, `/4/0/2`).
    pub paths: Vec<String>,
    /// How long to wait for the device, in milliseconds (default 30000, at most 300000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A body naming one path (`/delete`, `/discover`, `/observe`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRequest {
    pub path: String,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// Replace (PUT) or partial update (POST), TS Core 1.1 §6.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteModeIn {
    Replace,
    Partial,
}

/// `POST /devices/{endpoint}/write`: `{"path": "/1/0/1", "value": 300}` for a resource (or
/// resource instance; a multiple-instance resource takes `{"0": …, "1": …}`), or
/// `{"path": "/1/0", "values": {"1": 300, "7": "U"}, "mode": "partial"}` for an instance.
/// The mode defaults to replace for a resource and partial update for an instance.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    pub path: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Option<Json_>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: Option<serde_json::Map<String, Json_>>,
    #[serde(default)]
    pub mode: Option<WriteModeIn>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/execute`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The executable resource, e.g. `/3/0/4` (Reboot).
    pub path: String,
    /// Arguments in the TS Core 1.1 §5.4.3 syntax (`0='x',1`).
    #[serde(default)]
    pub args: Option<String>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/create`: `{"path": "/3303/1", "values": {"5700": 21.5}}` (or
/// `"path": "/3303", "instance": 1`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub path: String,
    #[serde(default)]
    pub instance: Option<u16>,
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, Json_>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/write-attributes` (TS Core 1.1 §5.1.2).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteAttributesRequest {
    pub path: String,
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
    pub gt: Option<f64>,
    pub lt: Option<f64>,
    pub st: Option<f64>,
    pub epmin: Option<u32>,
    pub epmax: Option<u32>,
    /// LwM2M 1.2 attributes (`edge`, `con`, `hqmax`) as text.
    #[serde(default)]
    pub other: BTreeMap<String, String>,
    /// Attributes to remove (sent without a value).
    #[serde(default)]
    pub clear: Vec<String>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `DELETE /devices/{endpoint}/observe?observation=…` (or `?path=/3/0/9`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    /// The observation's number (from the Observe answer or a notification event).
    pub observation: Option<u64>,
    /// Or the observed path: cancels every observation of exactly that path.
    pub path: Option<String>,
    pub wait_ms: Option<u64>,
}

/// The answer to a read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadResponse {
    /// The service's operation ID(s).
    pub operations: Vec<String>,
    /// How the paths were read: `read`, `read-composite` (LwM2M 1.1+, one request) or
    /// `parallel-reads` (LwM2M 1.0: one Read per path, sent together).
    pub method: String,
    pub values: Vec<ValueOut>,
    /// Paths that failed while others succeeded (parallel reads only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PathErrorOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathErrorOut {
    pub path: String,
    pub error: DeviceErrorBody,
}

/// Write, Execute, Write-Attributes, Delete done.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DoneResponse {
    pub operation: String,
    /// `changed` or `deleted`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedResponse {
    pub operation: String,
    /// The new instance's path, when the device named it.
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkOut {
    pub path: String,
    /// `pmin`, `dim`, `ver`, …; null for a flag without a value.
    pub attributes: BTreeMap<String, Option<String>>,
    /// The resource's or object's name in the object model.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiscoverResponse {
    pub operation: String,
    pub links: Vec<LinkOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObserveResponse {
    pub operation: String,
    /// The observation's number (cancel with it; notifications carry it). Null when the device
    /// answered without establishing an observation.
    pub observation: Option<u64>,
    pub values: Vec<ValueOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub operations: Vec<String>,
    pub cancelled: Vec<u64>,
}

/// 202: the device sleeps (queue mode); the request waits for it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OperationStatus {
    pub id: String,
    pub endpoint: String,
    /// `pending`, `completed`, `failed`, `expired`.
    pub status: String,
    /// The operation as stored.
    #[schema(value_type = Object)]
    pub operation: Json_,
    pub created_at: String,
    pub expires_at: String,
    pub finished_at: Option<String>,
    /// The outcome (`{"status": "succeeded", "outcome": …}`) or error, once finished.
    #[schema(value_type = Object)]
    pub result: Option<Json_>,
}

/// A device's live LwM2M registration (from the server's memory).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObservationOut {
    pub observation: u64,
    pub paths: Vec<String>,
}
