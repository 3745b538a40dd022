//! The device registry's domain: what a device is, how its fields are validated, the list filter
//! and page types, and the registration decision (who may Register). Pure; the SQL lives in
//! `store/`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::lifecycle::{self, LifecycleState};
use super::secrets::PskKey;

/// Longest endpoint name, serial, model, customer reference, PSK identity.
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_KEY_LEN: usize = 64;
pub const MAX_TAG_VALUE_LEN: usize = 128;
pub const MAX_FIRMWARE_LEN: usize = 64;
/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How the device secures its CoAP traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    /// DTLS 1.2 with a pre-shared key.
    Psk,
    /// Plain CoAP; accepted only where the server enables NoSec as well.
    NoSec,
}

impl SecurityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Psk => "psk",
            SecurityMode::NoSec => "nosec",
        }
    }
}

impl FromStr for SecurityMode {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<SecurityMode, ValidationError> {
        match text {
            "psk" => Ok(SecurityMode::Psk),
            "nosec" => Ok(SecurityMode::NoSec),
            _ => Err(ValidationError::SecurityMode(text.to_owned())),
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the device is reachable now; independent of its lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connectivity {
    /// Registered and within its lifetime.
    Online,
    /// Queue mode (binding `UQ` / `Q`): registered, asleep between updates.
    Sleeping,
    /// Never registered, de-registered, or lifetime expired.
    Offline,
}

impl Connectivity {
    pub const ALL: [Connectivity; 3] = [
        Connectivity::Online,
        Connectivity::Sleeping,
        Connectivity::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::Online => "online",
            Connectivity::Sleeping => "sleeping",
            Connectivity::Offline => "offline",
        }
    }
}

impl FromStr for Connectivity {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Connectivity, ValidationError> {
        Connectivity::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| ValidationError::Connectivity(text.to_owned()))
    }
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Free-form labels such as `region=north`, `feeder=F17`; kept sorted by key.
pub type Tags = BTreeMap<String, String>;

/// A device as the registry knows it. Never carries its key: keys leave the store only through
/// the credentials lookup for the DTLS handshake, or once, when the server generated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub endpoint: String,
    pub serial: String,
    pub model: String,
    pub tags: Tags,
    pub customer: Option<String>,
    pub security_mode: SecurityMode,
    pub psk_identity: Option<String>,
    /// True once decommissioning wiped the key.
    pub credentials_revoked: bool,
    pub state: LifecycleState,
    pub firmware_version: Option<String>,
    pub connectivity: Connectivity,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an operator supplies to create a device. For `Psk`, an absent identity or key is
/// generated; for `NoSec` both must be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub endpoint: String,
    pub serial: String,
    pub model: String,
    pub tags: Tags,
    pub customer: Option<String>,
    pub security_mode: SecurityMode,
    pub psk_identity: Option<String>,
    pub psk_key: Option<PskKey>,
}

impl NewDevice {
    /// A PSK device whose identity and key the server will generate.
    pub fn psk(endpoint: &str, serial: &str, model: &str) -> NewDevice {
        NewDevice {
            endpoint: endpoint.to_owned(),
            serial: serial.to_owned(),
            model: model.to_owned(),
            tags: Tags::new(),
            customer: None,
            security_mode: SecurityMode::Psk,
            psk_identity: None,
            psk_key: None,
        }
    }

    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_endpoint(&self.endpoint)?;
        validate_text("serial", &self.serial, MAX_NAME_LEN)?;
        validate_text("model", &self.model, MAX_NAME_LEN)?;
        validate_tags(&self.tags)?;
        if let Some(customer) = &self.customer {
            validate_text("customer", customer, MAX_NAME_LEN)?;
        }
        if let Some(identity) = &self.psk_identity {
            validate_psk_identity(identity)?;
        }
        if self.security_mode == SecurityMode::NoSec
            && (self.psk_identity.is_some() || self.psk_key.is_some())
        {
            return Err(ValidationError::NoSecWithCredentials);
        }
        Ok(())
    }
}

/// The result of creating a device: the device, and the PSK if the server generated it. This is
/// the only time a generated key is shown; it cannot be read back later.
#[derive(Debug, Clone)]
pub struct CreatedDevice {
    pub device: Device,
    pub generated_psk_key: Option<PskKey>,
}

/// What the DTLS handshake needs for one identity.
#[derive(Debug, Clone)]
pub struct PskCredentials {
    pub endpoint: String,
    pub identity: String,
    pub key: PskKey,
    pub state: LifecycleState,
}

/// A page of live credentials in identity order, for filling the DTLS layer's in-memory
/// identity → key map (its PSK callback is synchronous).
#[derive(Debug, Clone)]
pub struct CredentialsPage {
    pub credentials: Vec<PskCredentials>,
    /// Pass as `after` for the next page; None on the last page.
    pub next_after: Option<String>,
}

/// One entry of a batched connectivity update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityUpdate {
    pub endpoint: String,
    pub connectivity: Connectivity,
    /// When the device was last heard; None keeps the stored time.
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("the {field} is missing")]
    Missing { field: &'static str },
    #[error("the {field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("the {field} contains a control character")]
    ControlCharacter { field: &'static str },
    #[error(
        "the endpoint name contains {0:?}; allowed are letters, digits and - . _ : (at most 128)"
    )]
    EndpointCharacter(char),
    #[error("the PSK identity must be visible ASCII characters without leading or trailing spaces")]
    IdentityCharacter,
    #[error("the endpoint name {0:?} is reserved (it names an API route under /devices)")]
    ReservedEndpoint(String),
    #[error("tag {0:?} is not key=value (tags are written k=v;k2=v2)")]
    TagSyntax(String),
    #[error("tag key {0:?} must be 1 to 64 letters, digits, '-', '_' or '.'")]
    TagKey(String),
    #[error(
        "tag value for {0:?} must be 1 to 128 characters without ';', '=' or control characters"
    )]
    TagValue(String),
    #[error("tag {0:?} appears twice")]
    DuplicateTag(String),
    #[error("at most {MAX_TAGS} tags per device")]
    TooManyTags,
    #[error("a NoSec device has no PSK identity or key")]
    NoSecWithCredentials,
    #[error("unknown security mode {0:?} (psk or nosec)")]
    SecurityMode(String),
    #[error("unknown connectivity {0:?} (online, sleeping or offline)")]
    Connectivity(String),
    #[error("page size must be 1 to {MAX_PAGE_SIZE}")]
    PageSize,
}

/// Endpoint names appear in CoAP Uri-Query (`ep=`), URLs of the HTTP API and file names of
/// exports, so they are kept to a safe alphabet; `urn:imei:…`, `urn:dev:ops:…` fit.
pub fn validate_endpoint(endpoint: &str) -> Result<(), ValidationError> {
    if endpoint.is_empty() {
        return Err(ValidationError::Missing { field: "endpoint" });
    }
    if let Some(bad) = endpoint
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')))
    {
        return Err(ValidationError::EndpointCharacter(bad));
    }
    if endpoint.len() > MAX_NAME_LEN {
        return Err(ValidationError::TooLong {
            field: "endpoint",
            max: MAX_NAME_LEN,
        });
    }
    // `/api/v1/devices/import`, `/devices/export` and `/devices/summary` are routes: a device with
    // one of these names could never be fetched by its endpoint.
    if RESERVED_ENDPOINTS.contains(&endpoint) {
        return Err(ValidationError::ReservedEndpoint(endpoint.to_owned()));
    }
    Ok(())
}

/// Endpoint names that collide with routes under `/api/v1/devices/`.
const RESERVED_ENDPOINTS: &[&str] = &["import", "export", "summary"];

/// RFC 4279 §5.1 allows any UTF-8 identity; we keep to visible ASCII so identities survive CSV,
/// logs and device configuration tools unchanged.
pub fn validate_psk_identity(identity: &str) -> Result<(), ValidationError> {
    if identity.is_empty() {
        return Err(ValidationError::Missing {
            field: "PSK identity",
        });
    }
    if identity.len() > MAX_NAME_LEN {
        return Err(ValidationError::TooLong {
            field: "PSK identity",
            max: MAX_NAME_LEN,
        });
    }
    let visible = identity.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !visible || identity.starts_with(' ') || identity.ends_with(' ') {
        return Err(ValidationError::IdentityCharacter);
    }
    Ok(())
}

/// A required single-line text field.
pub fn validate_text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Missing { field });
    }
    if value.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacter { field });
    }
    Ok(())
}

pub fn validate_firmware_version(version: &str) -> Result<(), ValidationError> {
    validate_text("firmware version", version, MAX_FIRMWARE_LEN)
}

fn validate_tag(key: &str, value: &str) -> Result<(), ValidationError> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_TAG_KEY_LEN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        return Err(ValidationError::TagKey(key.to_owned()));
    }
    let value_ok = !value.is_empty()
        && value.chars().count() <= MAX_TAG_VALUE_LEN
        && value
            .chars()
            .all(|c| !c.is_control() && c != ';' && c != '=');
    if !value_ok {
        return Err(ValidationError::TagValue(key.to_owned()));
    }
    Ok(())
}

pub fn validate_tags(tags: &Tags) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::TooManyTags);
    }
    tags.iter().try_for_each(|(k, v)| validate_tag(k, v))
}

/// Parses the CSV form `k=v;k2=v2` (empty text: no tags; surrounding spaces trimmed).
pub fn parse_tags(text: &str) -> Result<Tags, ValidationError> {
    let mut tags = Tags::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| ValidationError::TagSyntax(item.to_owned()))?;
        let (key, value) = (key.trim(), value.trim());
        validate_tag(key, value)?;
        if tags.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ValidationError::DuplicateTag(key.to_owned()));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::TooManyTags);
    }
    Ok(tags)
}

/// The inverse of [`parse_tags`].
pub fn format_tags(tags: &Tags) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Which devices a list call returns; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub state: Option<LifecycleState>,
    pub connectivity: Option<Connectivity>,
    pub model: Option<String>,
    pub firmware_version: Option<String>,
    pub customer: Option<String>,
    /// Each (key, value) must be among the device's tags.
    pub tags: Vec<(String, String)>,
    /// Case-insensitive substring of the endpoint name, serial number, model or customer
    /// (3+ characters are looked up in a trigram index, shorter text scans).
    pub search: Option<String>,
}

/// Keyset pagination: the page after `after` (an endpoint name), ordered by endpoint name. Deep
/// pages cost the same as the first, unlike OFFSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub fn first(limit: u32) -> PageRequest {
        PageRequest { after: None, limit }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(ValidationError::PageSize);
        }
        Ok(())
    }
}

/// One page of devices; `next_after` is the cursor for the next page (None on the last page).
#[derive(Debug, Clone)]
pub struct DevicePage {
    pub devices: Vec<Device>,
    pub next_after: Option<String>,
}

/// The facts about a stored device that decide whether it may register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationFacts {
    pub endpoint: String,
    pub state: LifecycleState,
    pub security_mode: SecurityMode,
    pub psk_identity: Option<String>,
    pub credentials_revoked: bool,
}

/// Why a Register is refused (the CoAP layer answers 4.03 Forbidden or 4.00 and logs this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    #[error("endpoint {0:?} is not in the fleet registry")]
    UnknownEndpoint(String),
    #[error("endpoint {0:?} is decommissioned")]
    Decommissioned(String),
    #[error("the credentials of endpoint {0:?} were revoked")]
    CredentialsRevoked(String),
    #[error("the DTLS identity does not belong to endpoint {endpoint:?}")]
    IdentityMismatch { endpoint: String },
    #[error("endpoint {0:?} must use DTLS (its security mode is psk)")]
    SecurityRequired(String),
    #[error("NoSec is not enabled on this server")]
    NoSecDisabledOnServer,
    #[error("the lifecycle state {state} of endpoint {endpoint:?} forbids registration")]
    StateForbids {
        endpoint: String,
        state: LifecycleState,
    },
}

/// The registration decision. `authenticated_identity` is the PSK identity the DTLS handshake
/// authenticated, or None for plain CoAP (NoSec). PRODUCT.md: the identity must match the
/// endpoint's credential; NoSec only where both the server and the device allow it.
pub fn may_register(
    endpoint: &str,
    device: Option<&RegistrationFacts>,
    authenticated_identity: Option<&str>,
    nosec_enabled_on_server: bool,
) -> Result<(), RegistrationRefusal> {
    let device = device.ok_or_else(|| RegistrationRefusal::UnknownEndpoint(endpoint.to_owned()))?;
    if device.state == LifecycleState::Decommissioned {
        return Err(RegistrationRefusal::Decommissioned(endpoint.to_owned()));
    }
    if !lifecycle::allows_registration(device.state) {
        return Err(RegistrationRefusal::StateForbids {
            endpoint: endpoint.to_owned(),
            state: device.state,
        });
    }
    match authenticated_identity {
        Some(identity) => {
            if device.credentials_revoked {
                return Err(RegistrationRefusal::CredentialsRevoked(endpoint.to_owned()));
            }
            if device.psk_identity.as_deref() != Some(identity) {
                return Err(RegistrationRefusal::IdentityMismatch {
                    endpoint: endpoint.to_owned(),
                });
            }
            Ok(())
        }
        None => {
            if !nosec_enabled_on_server {
                return Err(RegistrationRefusal::NoSecDisabledOnServer);
            }
            if device.security_mode != SecurityMode::NoSec {
                return Err(RegistrationRefusal::SecurityRequired(endpoint.to_owned()));
            }
            Ok(())
        }
    }
}

/// One entry of the audit trail, newest first when listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing; the pagination cursor.
    pub id: i64,
    pub endpoint: String,
    pub at: DateTime<Utc>,
    /// `user:alice`, `system:bootstrap`, `token:ci` (see `lifecycle::Actor`).
    pub actor: String,
    /// A `TransitionAction` name, or `created` / `imported` for a new device.
    pub action: String,
    pub from_state: Option<LifecycleState>,
    pub to_state: Option<LifecycleState>,
    pub reason: Option<String>,
}

/// Audit action names that are not lifecycle transitions.
pub const AUDIT_CREATED: &str = "created";
pub const AUDIT_IMPORTED: &str = "imported";
pub const AUDIT_UPDATED: &str = "updated";
pub const AUDIT_CREDENTIALS_ROTATED: &str = "credentials_rotated";
/// A bootstrap that did not change the lifecycle state (re-bootstrap of an active device).
pub const AUDIT_BOOTSTRAP_FINISHED: &str = "bootstrap_finished";
/// A changing device operation asked for through the API (`reason`: path and outcome).
pub const AUDIT_DEVICE_WRITE: &str = "device_write";
pub const AUDIT_DEVICE_EXECUTE: &str = "device_execute";
pub const AUDIT_DEVICE_CREATE: &str = "device_create";
pub const AUDIT_DEVICE_DELETE: &str = "device_delete";
pub const AUDIT_DEVICE_WRITE_ATTRIBUTES: &str = "device_write_attributes";

/// An edit of a device's descriptive fields; None leaves a field as it is. The endpoint name,
/// security mode and lifecycle state are not editable here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChanges {
    pub serial: Option<String>,
    pub model: Option<String>,
    /// `Some(None)` removes the customer reference.
    pub customer: Option<Option<String>>,
    /// Replaces the whole tag set.
    pub tags: Option<Tags>,
}

/// A device's new credentials after a rotation, for the bootstrap server to write to the device
/// (Security object /0: PSK identity and secret key).
#[derive(Debug, Clone)]
pub struct RotatedCredentials {
    pub identity: String,
    pub key: PskKey,
}

/// Newest-first pagination of the audit trail: entries with an id below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPageRequest {
    pub before: Option<i64>,
    pub limit: u32,
}

impl AuditPageRequest {
    pub fn first(limit: u32) -> AuditPageRequest {
        AuditPageRequest {
            before: None,
            limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_before: Option<i64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn facts(state: LifecycleState, mode: SecurityMode) -> RegistrationFacts {
        RegistrationFacts {
            endpoint: "meter-1".into(),
            state,
            security_mode: mode,
            psk_identity: (mode == SecurityMode::Psk).then(|| "id-1".to_owned()),
            credentials_revoked: false,
        }
    }

    #[test]
    fn endpoint_alphabet() {
        assert!(validate_endpoint("urn:imei:490154203237518").is_ok());
        assert!(validate_endpoint("meter-00.17_a").is_ok());
        assert!(matches!(
            validate_endpoint("import"),
            Err(ValidationError::ReservedEndpoint(_))
        ));
        assert!(matches!(
            validate_endpoint("export"),
            Err(ValidationError::ReservedEndpoint(_))
        ));
        assert!(validate_endpoint("import-7").is_ok());
        assert_eq!(
            validate_endpoint("meter 1"),
            Err(ValidationError::EndpointCharacter(' '))
        );
        assert_eq!(
            validate_endpoint("mèter"),
            Err(ValidationError::EndpointCharacter('è'))
        );
        assert_eq!(
            validate_endpoint(""),
            Err(ValidationError::Missing { field: "endpoint" })
        );
        assert!(matches!(
            validate_endpoint(&"a".repeat(129)),
            Err(ValidationError::TooLong { .. })
        ));
    }

    #[test]
    fn tags_parse_and_format() {
        let tags = parse_tags(" region=north ; feeder=F17;").unwrap();
        assert_eq!(tags.get("region").map(String::as_str), Some("north"));
        assert_eq!(format_tags(&tags), "feeder=F17;region=north");
        assert_eq!(parse_tags("").unwrap(), Tags::new());
        assert!(matches!(
            parse_tags("region"),
            Err(ValidationError::TagSyntax(_))
        ));
        assert!(matches!(
            parse_tags("a=1;a=2"),
            Err(ValidationError::DuplicateTag(_))
        ));
        assert!(matches!(
            parse_tags("a b=1"),
            Err(ValidationError::TagKey(_))
        ));
        assert!(matches!(
            parse_tags("a="),
            Err(ValidationError::TagValue(_))
        ));
        assert!(matches!(
            parse_tags("a=b=c"),
            Err(ValidationError::TagValue(_))
        ));
    }

    #[test]
    fn new_device_validation() {
        let mut device = NewDevice::psk("meter-1", "SN1", "EM-100");
        assert!(device.validate().is_ok());
        device.serial = " ".into();
        assert_eq!(
            device.validate(),
            Err(ValidationError::Missing { field: "serial" })
        );
        let mut nosec = NewDevice::psk("meter-2", "SN2", "EM-100");
        nosec.security_mode = SecurityMode::NoSec;
        assert!(nosec.validate().is_ok());
        nosec.psk_identity = Some("x".into());
        assert_eq!(nosec.validate(), Err(ValidationError::NoSecWithCredentials));
        let mut bad_identity = NewDevice::psk("meter-3", "SN3", "EM-100");
        bad_identity.psk_identity = Some("tab\there".into());
        assert_eq!(
            bad_identity.validate(),
            Err(ValidationError::IdentityCharacter)
        );
    }

    #[test]
    fn registration_decisions() {
        use LifecycleState::*;
        let psk = facts(Active, SecurityMode::Psk);
        assert_eq!(
            may_register("meter-1", Some(&psk), Some("id-1"), false),
            Ok(())
        );
        assert_eq!(
            may_register("meter-1", None, Some("id-1"), true),
            Err(RegistrationRefusal::UnknownEndpoint("meter-1".into()))
        );
        assert!(matches!(
            may_register("meter-1", Some(&psk), Some("id-2"), false),
            Err(RegistrationRefusal::IdentityMismatch { .. })
        ));
        assert_eq!(
            may_register("meter-1", Some(&psk), None, false),
            Err(RegistrationRefusal::NoSecDisabledOnServer)
        );
        assert_eq!(
            may_register("meter-1", Some(&psk), None, true),
            Err(RegistrationRefusal::SecurityRequired("meter-1".into()))
        );
        let nosec = facts(Registered, SecurityMode::NoSec);
        assert_eq!(may_register("meter-1", Some(&nosec), None, true), Ok(()));
        assert_eq!(
            may_register("meter-1", Some(&nosec), None, false),
            Err(RegistrationRefusal::NoSecDisabledOnServer)
        );
        // A NoSec device has no identity, so any DTLS identity is someone else's.
        assert!(matches!(
            may_register("meter-1", Some(&nosec), Some("id-1"), true),
            Err(RegistrationRefusal::IdentityMismatch { .. })
        ));
        let gone = facts(Decommissioned, SecurityMode::Psk);
        assert_eq!(
            may_register("meter-1", Some(&gone), Some("id-1"), true),
            Err(RegistrationRefusal::Decommissioned("meter-1".into()))
        );
        let mut revoked = facts(Active, SecurityMode::Psk);
        revoked.credentials_revoked = true;
        assert_eq!(
            may_register("meter-1", Some(&revoked), Some("id-1"), true),
            Err(RegistrationRefusal::CredentialsRevoked("meter-1".into()))
        );
        for state in [Registered, Provisioned, Active, Suspended, Updating] {
            let device = facts(state, SecurityMode::Psk);
            assert_eq!(
                may_register("meter-1", Some(&device), Some("id-1"), false),
                Ok(()),
                "{state}"
            );
        }
    }

    #[test]
    fn page_size_limits() {
        assert!(PageRequest::first(1).validate().is_ok());
        assert!(PageRequest::first(MAX_PAGE_SIZE).validate().is_ok());
        assert_eq!(
            PageRequest::first(0).validate(),
            Err(ValidationError::PageSize)
        );
        assert_eq!(
            PageRequest::first(MAX_PAGE_SIZE + 1).validate(),
            Err(ValidationError::PageSize)
        );
    }
}
