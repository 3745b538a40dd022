//! API types of the bootstrap server: bootstrap configurations per device group (a device's
//! group is its `group` tag; `default` serves devices without one), a device's bootstrap status,
//! its factory bootstrap credentials, and credential rotation.

use serde::{Deserialize, Serialize};

use crate::SecurityMode;

/// What the bootstrap server writes into a device's Security (0) and Server (1) objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapConfig {
    /// The group: devices tagged `group=<name>`; `default` for the others.
    pub group: String,
    /// LwM2M server URI; left out: the server's public CoAPS URI (`FERRITE_PUBLIC_COAPS_URI`).
    /// Required (`coap://…`) for `nosec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uri: Option<String>,
    pub security_mode: SecurityMode,
    /// Registration lifetime in seconds (1/x/1).
    pub lifetime_secs: u32,
    /// `U` or `UQ` (queue mode).
    pub binding: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pmin_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pmax_secs: Option<u32>,
    /// Short Server ID (0/x/10, 1/x/0), 1–65534.
    pub short_server_id: u16,
    /// Notification Storing When Disabled or Offline (1/x/6).
    pub notification_storing: bool,
    /// Set by the server.
    #[serde(default)]
    pub updated_at: String,
    /// Set by the server (`user:alice`).
    #[serde(default)]
    pub updated_by: String,
}

/// A device's bootstrap status (never a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapStatus {
    pub endpoint: String,
    pub bootstrap_identity: String,
    /// The bootstrap key was revoked (decommissioned).
    pub bootstrap_revoked: bool,
    /// Credentials delivered (or staged by a rotation) that the device has not registered
    /// with yet; its current ones stay valid until it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrapped_at: Option<String>,
    /// The configuration the device's next bootstrap uses.
    pub group: String,
}

/// Factory bootstrap credentials of a device (`PUT /devices/{endpoint}/bootstrap`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapCredentials {
    pub psk_identity: String,
    /// 16–64 bytes as hex.
    pub psk_key_hex: String,
}

// Hand-written: the key must not reach a log line through `{:?}`.
impl std::fmt::Debug for BootstrapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapCredentials")
            .field("psk_identity", &self.psk_identity)
            .field("psk_key_hex", &"<redacted>")
            .finish()
    }
}

/// The answer to a credential rotation (`POST /devices/{endpoint}/credentials/rotate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotationResult {
    pub endpoint: String,
    /// The new identity; its key reaches the device only through bootstrap.
    pub pending_identity: String,
    /// Whether the device acknowledged Bootstrap-Request Trigger (`/1/x/9`); otherwise the new
    /// key is delivered at the device's next bootstrap.
    pub bootstrap_triggered: bool,
    /// Why the trigger was not acknowledged, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_error: Option<String>,
}
