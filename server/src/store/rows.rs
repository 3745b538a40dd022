//! Rows as both backends return them, and their explicit conversion into the fleet's domain
//! types. A value the domain does not know (a state string, malformed tags JSON) is reported as
//! corrupt data, never guessed.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::registry::{
    AuditEntry, Connectivity, Device, RegistrationFacts, SecurityMode, Tags,
};

/// Columns of `sql::DEVICE_COLUMNS`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub endpoint: String,
    pub serial: String,
    pub model: String,
    pub tags: String,
    pub customer: Option<String>,
    pub security_mode: String,
    pub psk_identity: Option<String>,
    pub credentials_revoked: bool,
    pub state: String,
    pub firmware_version: Option<String>,
    pub connectivity: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn corrupt(endpoint: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("device {endpoint:?}: {what}"))
}

pub(crate) fn parse_state(endpoint: &str, text: &str) -> Result<LifecycleState, StoreError> {
    text.parse().map_err(|e| corrupt(endpoint, e))
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;
    fn try_from(row: DeviceRow) -> Result<Device, StoreError> {
        let tags: Tags = serde_json::from_str(&row.tags)
            .map_err(|e| corrupt(&row.endpoint, format!("tags are not a JSON object: {e}")))?;
        Ok(Device {
            security_mode: row
                .security_mode
                .parse::<SecurityMode>()
                .map_err(|e| corrupt(&row.endpoint, e))?,
            state: parse_state(&row.endpoint, &row.state)?,
            connectivity: row
                .connectivity
                .parse::<Connectivity>()
                .map_err(|e| corrupt(&row.endpoint, e))?,
            endpoint: row.endpoint,
            serial: row.serial,
            model: row.model,
            tags,
            customer: row.customer,
            psk_identity: row.psk_identity,
            credentials_revoked: row.credentials_revoked,
            firmware_version: row.firmware_version,
            last_seen: row.last_seen,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FactsRow {
    pub endpoint: String,
    pub state: String,
    pub security_mode: String,
    pub psk_identity: Option<String>,
    pub credentials_revoked: bool,
}

impl TryFrom<FactsRow> for RegistrationFacts {
    type Error = StoreError;
    fn try_from(row: FactsRow) -> Result<RegistrationFacts, StoreError> {
        Ok(RegistrationFacts {
            state: parse_state(&row.endpoint, &row.state)?,
            security_mode: row
                .security_mode
                .parse()
                .map_err(|e| corrupt(&row.endpoint, e))?,
            endpoint: row.endpoint,
            psk_identity: row.psk_identity,
            credentials_revoked: row.credentials_revoked,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    pub endpoint: String,
    pub psk_identity: Option<String>,
    pub psk_key_sealed: Option<Vec<u8>>,
    pub state: String,
    pub credentials_revoked: bool,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StateRow {
    pub id: i64,
    pub state: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: i64,
    pub endpoint: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub reason: Option<String>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<AuditEntry, StoreError> {
        let state = |text: Option<String>| text.map(|t| parse_state(&row.endpoint, &t)).transpose();
        Ok(AuditEntry {
            from_state: state(row.from_state.clone())?,
            to_state: state(row.to_state.clone())?,
            id: row.id,
            endpoint: row.endpoint,
            at: row.at,
            actor: row.actor,
            action: row.action,
            reason: row.reason,
        })
    }
}

/// A device ready to insert: validated, credentials generated and sealed.
#[derive(Debug, Clone)]
pub(crate) struct PreparedDevice {
    pub endpoint: String,
    pub serial: String,
    pub model: String,
    pub tags: Tags,
    pub tags_json: String,
    pub customer: Option<String>,
    pub security_mode: SecurityMode,
    pub psk_identity: Option<String>,
    pub psk_key_sealed: Option<Vec<u8>>,
    /// Factory bootstrap credentials: identity and sealed key (imports), stored in the same
    /// transaction as the device.
    pub bootstrap: Option<(String, Vec<u8>)>,
}

/// The audit entry written with each inserted device.
#[derive(Debug, Clone)]
pub(crate) struct InsertAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub at: DateTime<Utc>,
}

/// A validated transition, ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct TransitionWrite<'a> {
    pub device_id: i64,
    pub endpoint: &'a str,
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub revoke_credentials: bool,
    pub actor: &'a str,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// An audit entry written alongside a change that is not a lifecycle transition.
#[derive(Debug, Clone)]
pub(crate) struct AuditWrite<'a> {
    pub device_id: i64,
    pub endpoint: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// New descriptive fields of a device (tags replace the old set).
#[derive(Debug, Clone)]
pub(crate) struct InfoWrite<'a> {
    pub serial: &'a str,
    pub model: &'a str,
    pub customer: Option<&'a str>,
    pub tags: &'a Tags,
    pub tags_json: &'a str,
}
