//! Fleet-level answers of the device registry: the summary counts of `GET /api/v1/devices/summary`.

use serde::{Deserialize, Serialize};

/// `GET /api/v1/devices/summary`: how many devices match the filters (the same query parameters
/// as the device list), in total, per lifecycle state and per connectivity. Every state and
/// connectivity is present, with 0 when no device has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceSummary {
    pub total: u64,
    pub by_state: StateCounts,
    pub by_connectivity: ConnectivityCounts,
}

/// Devices per lifecycle state; the fields add up to the summary's total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    pub registered: u64,
    pub provisioned: u64,
    pub active: u64,
    pub suspended: u64,
    pub updating: u64,
    pub decommissioned: u64,
}

/// Devices per connectivity; the fields add up to the summary's total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectivityCounts {
    pub online: u64,
    pub sleeping: u64,
    pub offline: u64,
}
