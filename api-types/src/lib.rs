//! The serde types of Ferrite's HTTP API (`/api/v1`), shared by the server and the console.
//!
//! These types are the serialization boundary: the server converts its store rows and core types
//! into them explicitly, so a change inside the server never changes the API by accident.

use serde::{Deserialize, Serialize};

mod fleet;
pub use fleet::{ConnectivityCounts, DeviceSummary, StateCounts};

pub mod lwm2m;

pub mod fleet_read;

pub mod bootstrap;

pub mod diagnostics;

/// The body of every error response: a stable machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// e.g. `unauthorized`, `not_found`, `bad_request`.
    pub error: String,
    pub message: String,
}

/// One object of the server's object model, as listed by `GET /api/v1/objects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectSummary {
    pub id: u16,
    pub name: String,
    pub version: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    pub resource_count: usize,
}

/// One object with its resources, as returned by `GET /api/v1/objects/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectDetail {
    pub id: u16,
    pub name: String,
    pub urn: String,
    pub version: String,
    pub lwm2m_version: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    pub resources: Vec<ResourceInfo>,
}

/// A resource definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceInfo {
    pub id: u16,
    pub name: String,
    /// `R`, `W`, `RW`, `E` or empty.
    pub operations: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    /// The OMA type name: `String`, `Integer`, `Unsigned Integer`, `Float`, `Boolean`, `Opaque`,
    /// `Time`, `Objlnk`, `Corelnk`, or `none` for executable resources.
    #[serde(rename = "type")]
    pub ty: String,
    pub units: Option<String>,
    /// The range or enumeration as text (`0..100`, `16,32,48`, `0..255 bytes`).
    pub range: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Operator accounts: roles, login, users, API tokens.
//
// Timestamps are RFC 3339 text in UTC (`2025-01-31T12:00:00.123456Z`), so this crate needs no
// date library (it also compiles to wasm32 for the console).
// ---------------------------------------------------------------------------------------------

/// What an operator may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// See devices, read, diagnose.
    FieldService,
    /// + firmware and campaigns, lifecycle actions, onboarding.
    FleetManager,
    /// + users, decommissioning, settings.
    Admin,
}

/// `POST /api/v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

// Hand-written: a password must not reach a log line through `{:?}`.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A console session (cookie).
    User,
    /// An API token.
    Token,
    /// The static admin token from `FERRITE_API_TOKEN`.
    StaticToken,
}

/// `GET /api/v1/me`, and the answer to a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub kind: PrincipalKind,
    pub name: String,
    pub role: Role,
    /// With a session cookie: send this in `X-CSRF-Token` on every POST, PATCH, PUT or DELETE.
    pub csrf_token: Option<String>,
    /// With a session cookie: when the session ends at the latest.
    pub session_expires_at: Option<String>,
}

/// One operator account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /api/v1/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// 1–64 letters, digits, `.`, `_`, `-`, `@`.
    pub name: String,
    pub role: Role,
    /// 12–256 characters.
    pub password: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// `PATCH /api/v1/users/{name}`: fields left out stay as they are. A new password or
/// disabling the account ends its sessions.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl std::fmt::Debug for UserChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserChanges")
            .field("role", &self.role)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    /// 1–64 letters, digits, `.`, `_`, `-`, `@`; never reused, even after revocation.
    pub name: String,
    /// At most the creator's role; the creator's role when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// RFC 3339; no expiry when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    /// The user it belongs to (it never acts above that user's current role, and dies with the
    /// account); none for tokens made with the static admin token.
    pub owner: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    pub token: TokenInfo,
    /// Send as `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// One entry of the account audit trail (logins, failed logins, user and token changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountEvent {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountEventPage {
    pub events: Vec<AccountEvent>,
    /// Pass as `before` for the next (older) page; none on the last page.
    pub next_before: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Devices: registry, lifecycle, audit, import/export.
// ---------------------------------------------------------------------------------------------

/// Where a device is in its life (PRODUCT.md "Device lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    Registered,
    Provisioned,
    Active,
    Suspended,
    Updating,
    Decommissioned,
}

/// Whether the device is reachable; independent of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Connectivity {
    Online,
    Sleeping,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// DTLS 1.2 with a pre-shared key.
    Psk,
    /// Plain CoAP, only where the server allows it.
    Nosec,
}

/// `POST /api/v1/devices`. For `psk` (the default), an absent identity or key is generated and
/// returned once in the answer.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewDevice {
    /// The LwM2M endpoint client name: letters, digits and `-._:` (at most 128).
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_identity: Option<String>,
    /// 16–64 bytes as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_key_hex: Option<String>,
    /// `unknown` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `unknown` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_mode: Option<SecurityMode>,
    /// Factory bootstrap identity (with `bootstrap_psk_key_hex`): lets the device reach the
    /// bootstrap server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_psk_identity: Option<String>,
    /// 16–64 bytes as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_psk_key_hex: Option<String>,
}

// Hand-written: the key must not reach a log line through `{:?}`.
impl std::fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDevice")
            .field("endpoint", &self.endpoint)
            .field("psk_identity", &self.psk_identity)
            .field(
                "psk_key_hex",
                &self.psk_key_hex.as_ref().map(|_| "<redacted>"),
            )
            .field("model", &self.model)
            .field("serial", &self.serial)
            .field("tags", &self.tags)
            .field("customer", &self.customer)
            .field("security_mode", &self.security_mode)
            .field("bootstrap_psk_identity", &self.bootstrap_psk_identity)
            .field(
                "bootstrap_psk_key_hex",
                &self.bootstrap_psk_key_hex.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The live LwM2M registration of a device (from the LwM2M server's memory, not the registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registration {
    /// `1.0`, `1.1` or `1.2`.
    pub lwm2m_version: String,
    /// 1.0 form: `U`, `UQ`, …
    pub binding: String,
    pub queue_mode: bool,
    pub lifetime_secs: u32,
    /// `ip:port` the device's datagrams come from.
    pub address: String,
    /// `coap` or `coaps`.
    pub transport: String,
    pub registered_at: String,
    pub last_update: String,
}

/// A device as the API shows it. Never contains its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub endpoint: String,
    pub serial: String,
    pub model: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub customer: Option<String>,
    pub security_mode: SecurityMode,
    pub psk_identity: Option<String>,
    /// True once decommissioning wiped the key.
    pub credentials_revoked: bool,
    pub state: LifecycleState,
    pub connectivity: Connectivity,
    pub last_seen: Option<String>,
    /// As last reported by the device (3/0/3).
    pub firmware_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The current LwM2M registration, when the device is registered with this server.
    pub registration: Option<Registration>,
}

/// The answer to `POST /api/v1/devices`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedDevice {
    pub device: Device,
    /// The generated PSK as hex, when the request had none: shown this once, never again.
    pub psk_key_hex: Option<String>,
}

impl std::fmt::Debug for CreatedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedDevice")
            .field("device", &self.device)
            .field(
                "psk_key_hex",
                &self.psk_key_hex.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `GET /api/v1/devices`: one page, in endpoint order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicePage {
    pub devices: Vec<Device>,
    /// Pass as `after` for the next page; none on the last page.
    pub next_after: Option<String>,
}

/// Query of `GET /api/v1/devices` and `GET /api/v1/devices/export`; every given filter must
/// match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct DeviceQuery {
    pub state: Option<LifecycleState>,
    pub connectivity: Option<Connectivity>,
    pub model: Option<String>,
    /// Firmware version last reported.
    pub firmware: Option<String>,
    pub customer: Option<String>,
    /// `key:value`; repeat the parameter for several tags (all must match).
    #[serde(default)]
    pub tag: Vec<String>,
    /// Case-insensitive substring of the endpoint name, serial, model or customer. 3 or more
    /// characters use a trigram index; shorter text scans the devices (slow on large fleets).
    pub q: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// `PATCH /api/v1/devices/{endpoint}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A string sets the customer reference, `null` removes it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub customer: Option<Option<String>>,
    /// Replaces the whole tag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
}

/// Tells a field that is `null` (Some(None)) from one left out (None, by `default`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /api/v1/devices/{endpoint}/lifecycle`: an operator action. `suspended` suspends an
/// active device, `active` resumes a suspended one, `decommissioned` (admin) is terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LifecycleChange {
    pub to: LifecycleState,
    /// Why (1–1000 characters): kept in the audit trail.
    pub reason: String,
}

/// The 409 answer to a transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IllegalTransitionBody {
    /// `illegal_transition`.
    pub error: String,
    pub message: String,
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub why: String,
}

/// One entry of a device's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub endpoint: String,
    pub at: String,
    /// `user:alice`, `token:ci-nightly`, `system:registration`, …
    pub actor: String,
    /// `created`, `imported`, `updated`, `suspend`, `resume`, `decommission`, …
    pub action: String,
    pub from: Option<LifecycleState>,
    pub to: Option<LifecycleState>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; none on the last page.
    pub next_before: Option<i64>,
}

/// Query of the audit trails: newest first, `limit` (1–1000, default 100) entries older than
/// `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Accepted,
    Rejected,
    /// The import stopped (see `aborted`) before this row.
    NotAttempted,
}

/// The outcome of one CSV row.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub endpoint: String,
    pub status: ImportStatus,
    pub reason: Option<String>,
    pub psk_identity: Option<String>,
    /// Generated when the row had no key: shown in this report only.
    pub generated_psk_key_hex: Option<String>,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("line", &self.line)
            .field("endpoint", &self.endpoint)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("psk_identity", &self.psk_identity)
            .finish_non_exhaustive()
    }
}

/// The answer to `POST /api/v1/devices/import`: every row's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub accepted: usize,
    pub rejected: usize,
    pub not_attempted: usize,
    /// Columns of the file that were not used.
    pub ignored_columns: Vec<String>,
    /// Set when a storage error stopped the import; the rows before it are stored as reported.
    pub aborted: Option<String>,
    pub rows: Vec<ImportRow>,
}
