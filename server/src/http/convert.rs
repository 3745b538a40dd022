//! Explicit conversions from the server's domain types to the API types (`api-types`), the
//! serialization boundary: a field added inside the server never reaches the API by accident,
//! and a device's key has no way out.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::accounts::{self, AccountEvent, ApiToken, Role, User};
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::onboarding::{ImportOutcome, ImportReport};
use crate::fleet::registry::{AuditEntry, AuditPage, Connectivity, Device, SecurityMode};

/// RFC 3339 in UTC with `Z`, as much fraction as the value has.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn role(role: Role) -> api_types::Role {
    match role {
        Role::FieldService => api_types::Role::FieldService,
        Role::FleetManager => api_types::Role::FleetManager,
        Role::Admin => api_types::Role::Admin,
    }
}

pub fn role_from_api(role: api_types::Role) -> Role {
    match role {
        api_types::Role::FieldService => Role::FieldService,
        api_types::Role::FleetManager => Role::FleetManager,
        api_types::Role::Admin => Role::Admin,
    }
}

pub fn lifecycle_state(state: LifecycleState) -> api_types::LifecycleState {
    match state {
        LifecycleState::Registered => api_types::LifecycleState::Registered,
        LifecycleState::Provisioned => api_types::LifecycleState::Provisioned,
        LifecycleState::Active => api_types::LifecycleState::Active,
        LifecycleState::Suspended => api_types::LifecycleState::Suspended,
        LifecycleState::Updating => api_types::LifecycleState::Updating,
        LifecycleState::Decommissioned => api_types::LifecycleState::Decommissioned,
    }
}

pub fn lifecycle_state_from_api(state: api_types::LifecycleState) -> LifecycleState {
    match state {
        api_types::LifecycleState::Registered => LifecycleState::Registered,
        api_types::LifecycleState::Provisioned => LifecycleState::Provisioned,
        api_types::LifecycleState::Active => LifecycleState::Active,
        api_types::LifecycleState::Suspended => LifecycleState::Suspended,
        api_types::LifecycleState::Updating => LifecycleState::Updating,
        api_types::LifecycleState::Decommissioned => LifecycleState::Decommissioned,
    }
}

pub fn connectivity(c: Connectivity) -> api_types::Connectivity {
    match c {
        Connectivity::Online => api_types::Connectivity::Online,
        Connectivity::Sleeping => api_types::Connectivity::Sleeping,
        Connectivity::Offline => api_types::Connectivity::Offline,
    }
}

pub fn security_mode(mode: SecurityMode) -> api_types::SecurityMode {
    match mode {
        SecurityMode::Psk => api_types::SecurityMode::Psk,
        SecurityMode::NoSec => api_types::SecurityMode::Nosec,
    }
}

pub fn security_mode_from_api(mode: api_types::SecurityMode) -> SecurityMode {
    match mode {
        api_types::SecurityMode::Psk => SecurityMode::Psk,
        api_types::SecurityMode::Nosec => SecurityMode::NoSec,
    }
}

/// A device for the API. `registration` is the live LwM2M registration, when known.
pub fn device(d: Device, registration: Option<api_types::Registration>) -> api_types::Device {
    api_types::Device {
        endpoint: d.endpoint,
        serial: d.serial,
        model: d.model,
        tags: d.tags,
        customer: d.customer,
        security_mode: security_mode(d.security_mode),
        psk_identity: d.psk_identity,
        credentials_revoked: d.credentials_revoked,
        state: lifecycle_state(d.state),
        connectivity: connectivity(d.connectivity),
        last_seen: d.last_seen.map(time),
        firmware_version: d.firmware_version,
        created_at: time(d.created_at),
        updated_at: time(d.updated_at),
        registration,
    }
}

pub fn audit_entry(e: AuditEntry) -> api_types::AuditEntry {
    api_types::AuditEntry {
        id: e.id,
        endpoint: e.endpoint,
        at: time(e.at),
        actor: e.actor,
        action: e.action,
        from: e.from_state.map(lifecycle_state),
        to: e.to_state.map(lifecycle_state),
        reason: e.reason,
    }
}

pub fn audit_page(page: AuditPage) -> api_types::AuditPage {
    api_types::AuditPage {
        entries: page.entries.into_iter().map(audit_entry).collect(),
        next_before: page.next_before,
    }
}

/// The import report, generated keys included: it goes to the operator who imported, once.
pub fn import_report(report: ImportReport) -> api_types::ImportReport {
    let (accepted, rejected) = (report.accepted(), report.rejected());
    let not_attempted = report.rows.len() - accepted - rejected;
    api_types::ImportReport {
        accepted,
        rejected,
        not_attempted,
        ignored_columns: report.ignored_columns,
        aborted: report.aborted,
        rows: report
            .rows
            .into_iter()
            .map(|row| {
                let (status, reason, psk_identity, key) = match row.outcome {
                    ImportOutcome::Accepted {
                        psk_identity,
                        generated_psk_key,
                    } => (
                        api_types::ImportStatus::Accepted,
                        None,
                        Some(psk_identity).filter(|i| !i.is_empty()),
                        generated_psk_key.map(|k| k.to_hex()),
                    ),
                    ImportOutcome::Rejected(why) => (
                        api_types::ImportStatus::Rejected,
                        Some(why.to_string()),
                        None,
                        None,
                    ),
                    ImportOutcome::NotAttempted => {
                        (api_types::ImportStatus::NotAttempted, None, None, None)
                    }
                };
                api_types::ImportRow {
                    line: row.line,
                    endpoint: row.endpoint,
                    status,
                    reason,
                    psk_identity,
                    generated_psk_key_hex: key,
                }
            })
            .collect(),
    }
}

pub fn user(u: User) -> api_types::UserInfo {
    api_types::UserInfo {
        name: u.name,
        role: role(u.role),
        disabled: u.disabled,
        created_at: time(u.created_at),
        updated_at: time(u.updated_at),
    }
}

pub fn token(t: ApiToken) -> api_types::TokenInfo {
    api_types::TokenInfo {
        name: t.name,
        role: role(t.role),
        owner: t.owner,
        created_by: t.created_by,
        created_at: time(t.created_at),
        expires_at: t.expires_at.map(time),
        last_used_at: t.last_used_at.map(time),
        revoked_at: t.revoked_at.map(time),
    }
}

pub fn account_event(e: AccountEvent) -> api_types::AccountEvent {
    api_types::AccountEvent {
        id: e.id,
        at: time(e.at),
        actor: e.actor,
        action: e.action,
        subject: e.subject,
        source: e.source,
        detail: e.detail,
    }
}

pub fn principal_kind(kind: accounts::PrincipalKind) -> api_types::PrincipalKind {
    match kind {
        accounts::PrincipalKind::User { .. } => api_types::PrincipalKind::User,
        accounts::PrincipalKind::Token { .. } => api_types::PrincipalKind::Token,
        accounts::PrincipalKind::StaticAdmin => api_types::PrincipalKind::StaticToken,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_the_api_types() {
        for state in LifecycleState::ALL {
            assert_eq!(lifecycle_state_from_api(lifecycle_state(state)), state);
            // The API spells states as the store does.
            let json = serde_json::to_value(lifecycle_state(state)).unwrap();
            assert_eq!(json, state.as_str());
        }
        for c in Connectivity::ALL {
            assert_eq!(serde_json::to_value(connectivity(c)).unwrap(), c.as_str());
        }
        for mode in [SecurityMode::Psk, SecurityMode::NoSec] {
            assert_eq!(security_mode_from_api(security_mode(mode)), mode);
            assert_eq!(
                serde_json::to_value(security_mode(mode)).unwrap(),
                mode.as_str()
            );
        }
        for r in Role::ALL {
            assert_eq!(role_from_api(role(r)), r);
            assert_eq!(serde_json::to_value(role(r)).unwrap(), r.as_str());
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(time(t), "2023-11-14T22:13:20.123456Z");
    }
}
