//! `POST /api/v1/fleet/read`: one read of the same paths on many devices (firmware versions,
//! signal strength, a register reading across a fleet), answered per device in one JSON body.

use serde::{Deserialize, Serialize};

use crate::lwm2m::{DeviceErrorBody, PendingResponse, ReadResponse};

/// The most endpoints one fleet read may name.
pub const MAX_FLEET_READ_ENDPOINTS: usize = 1000;
/// The most paths one fleet read may name.
pub const MAX_FLEET_READ_PATHS: usize = 16;

/// `POST /fleet/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FleetReadRequest {
    /// Endpoint names, each at most once (1 to 1000).
    pub endpoints: Vec<String>,
    /// LwM2M paths read on every device (1 to 16): objects, instances, resources or resource
    /// instances (`/3/0/3`, `/4/0/2`).
    pub paths: Vec<String>,
    /// How long to wait for the devices, in milliseconds (default 30000, at most 300000). A
    /// device that has not answered by then is reported `timeout` (504) with its operation,
    /// whose result still comes as an `operation_completed` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The answer: one result per requested endpoint, in the request's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetReadResponse {
    pub results: Vec<FleetReadResult>,
    /// Results with status 200.
    pub succeeded: usize,
    /// Results with status 202 (sleeping devices: the reads wait for them).
    pub pending: usize,
    /// Results with an error.
    pub failed: usize,
}

/// One device's part of a fleet read: what `POST /devices/{endpoint}/read` would have
/// answered for it, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetReadResult {
    pub endpoint: String,
    /// 200 (read), 202 (queued for a sleeping device), or the error's status: 404 (unknown or
    /// not registered device, or the device's 4.04), 409 (the lifecycle forbids it), 502 (other
    /// device error), 504 (no answer in time)…
    pub status: u16,
    /// Status 200: the decoded values, as the single-device read gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ReadResponse>,
    /// Status 202: the operations to poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingResponse>,
    /// Any other status: the error, with the device's CoAP code when it answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeviceErrorBody>,
}
