//! Persistence of the bootstrap server (migration 0004): each device's factory bootstrap
//! credentials (sealed like the device's PSK, with associated data that keeps the two apart), the
//! fresh LwM2M-server credentials a bootstrap delivers — "pending" until the device registers with
//! them, when they replace the device's current credentials (which are then revoked) — and the
//! bootstrap configurations per device group.
//!
//! A device's group is its `group` tag (`group=north-feeders`); a device without one, or whose
//! group has no configuration, uses the configuration named `default`, and without that the
//! server's built-in defaults.
//!
//! One SQL text serves both engines (`$n` placeholders); `on_pool!` picks the pool.

use chrono::{DateTime, Utc};

use super::rows::{self, AuditWrite};
use super::{Backend, Store, StoreError, now};
use crate::fleet::lifecycle::{Actor, LifecycleState, SystemComponent};
use crate::fleet::registry::{self, AUDIT_CREDENTIALS_ROTATED, PskCredentials, SecurityMode};
use crate::fleet::secrets::{self, PskKey, ServerKey};

macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(backend) => {
                let $pool = &backend.pool;
                $body
            }
            Backend::Postgres(backend) => {
                let $pool = &backend.pool;
                $body
            }
        }
    };
}

/// The tag naming a device's bootstrap group.
pub const GROUP_TAG: &str = "group";
/// The configuration used by devices without a group (or whose group has none).
pub const DEFAULT_GROUP: &str = "default";
/// Longest group name, server URI and binding accepted.
const MAX_GROUP_LEN: usize = 128;
const MAX_URI_LEN: usize = 255;

/// The audit action of a bootstrap-related change that is not a lifecycle transition.
pub const AUDIT_BOOTSTRAP_CREDENTIALS: &str = "bootstrap_credentials_set";
pub const AUDIT_BOOTSTRAP_REVOKED: &str = "bootstrap_credentials_revoked";
pub const AUDIT_CREDENTIALS_STAGED: &str = "credentials_staged";

/// The associated data of a sealed bootstrap key: the endpoint behind a NUL (which no endpoint
/// name contains), so a sealed bootstrap key never opens as the device's LwM2M-server key.
pub(super) fn bootstrap_aad(endpoint: &str) -> String {
    format!("\0bootstrap\0{endpoint}")
}

/// What the bootstrap DTLS handshake and the Bootstrap-Request check need for one identity.
#[derive(Debug, Clone)]
pub struct BootstrapCredentials {
    pub endpoint: String,
    pub identity: String,
    pub key: PskKey,
    pub state: LifecycleState,
}

/// What an operator sees of a device's bootstrap (never a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapStatus {
    pub endpoint: String,
    pub bootstrap_identity: String,
    pub bootstrap_revoked: bool,
    /// Delivered (or staged) LwM2M-server credentials the device has not registered with yet.
    pub pending_identity: Option<String>,
    pub pending_since: Option<DateTime<Utc>>,
    pub bootstrapped_at: Option<DateTime<Utc>>,
}

/// A bootstrap configuration: what the bootstrap server writes into `/0` and `/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapConfig {
    pub group: String,
    /// LwM2M server URI; None: the server's public CoAPS URI.
    pub server_uri: Option<String>,
    pub security_mode: SecurityMode,
    pub lifetime: u32,
    /// `U` or `UQ` (queue mode).
    pub binding: String,
    pub default_pmin: Option<u32>,
    pub default_pmax: Option<u32>,
    pub short_server_id: u16,
    pub notification_storing: bool,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl BootstrapConfig {
    /// The built-in configuration used when the store has none for a device's group.
    pub fn builtin() -> BootstrapConfig {
        BootstrapConfig {
            group: DEFAULT_GROUP.to_owned(),
            server_uri: None,
            security_mode: SecurityMode::Psk,
            lifetime: 3600,
            binding: "U".to_owned(),
            default_pmin: None,
            default_pmax: None,
            short_server_id: 1,
            notification_storing: true,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_by: "system:builtin".to_owned(),
        }
    }

    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigInvalid> {
        validate_group(&self.group)?;
        if let Some(uri) = &self.server_uri {
            if uri.len() > MAX_URI_LEN || uri.chars().any(char::is_control) {
                return Err(ConfigInvalid {
                    field: "server_uri",
                    reason: "at most 255 characters, no control characters",
                });
            }
            let scheme_ok = match self.security_mode {
                SecurityMode::Psk => uri.starts_with("coaps://"),
                SecurityMode::NoSec => uri.starts_with("coap://"),
            };
            if !scheme_ok {
                return Err(ConfigInvalid {
                    field: "server_uri",
                    reason: "must be coaps://… for psk and coap://… for nosec",
                });
            }
        }
        if self.security_mode == SecurityMode::NoSec && self.server_uri.is_none() {
            return Err(ConfigInvalid {
                field: "server_uri",
                reason: "a nosec configuration needs its coap:// server URI",
            });
        }
        if self.lifetime == 0 {
            return Err(ConfigInvalid {
                field: "lifetime",
                reason: "must be at least 1 second",
            });
        }
        if !matches!(self.binding.as_str(), "U" | "UQ") {
            return Err(ConfigInvalid {
                field: "binding",
                reason: "must be U or UQ",
            });
        }
        if let (Some(pmin), Some(pmax)) = (self.default_pmin, self.default_pmax)
            && pmin > pmax
        {
            return Err(ConfigInvalid {
                field: "default_pmin",
                reason: "must not exceed default_pmax",
            });
        }
        if self.short_server_id == 0 || self.short_server_id == u16::MAX {
            return Err(ConfigInvalid {
                field: "short_server_id",
                reason: "must be 1 to 65534",
            });
        }
        Ok(())
    }
}

/// Why a bootstrap configuration is refused: the field and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigInvalid {
    pub field: &'static str,
    pub reason: &'static str,
}

/// A group name: 1–128 visible ASCII characters.
pub fn validate_group(group: &str) -> Result<(), ConfigInvalid> {
    let ok = !group.is_empty()
        && group.len() <= MAX_GROUP_LEN
        && group.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(ConfigInvalid {
            field: "group",
            reason: "must be 1 to 128 visible ASCII characters without spaces",
        });
    }
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct CredentialsRow {
    endpoint: String,
    identity: String,
    sealed: Option<Vec<u8>>,
    state: String,
}

#[derive(Debug, sqlx::FromRow)]
struct StatusRow {
    endpoint: String,
    bs_identity: String,
    bs_key_sealed: Option<Vec<u8>>,
    pending_identity: Option<String>,
    pending_since: Option<DateTime<Utc>>,
    bootstrapped_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct PendingRow {
    pending_identity: Option<String>,
    pending_key_sealed: Option<Vec<u8>>,
}

#[derive(Debug, sqlx::FromRow)]
struct ConfigRow {
    group_name: String,
    server_uri: Option<String>,
    security_mode: String,
    lifetime: i64,
    binding: String,
    default_pmin: Option<i64>,
    default_pmax: Option<i64>,
    short_server_id: i64,
    notification_storing: bool,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

impl TryFrom<ConfigRow> for BootstrapConfig {
    type Error = StoreError;
    fn try_from(row: ConfigRow) -> Result<BootstrapConfig, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "bootstrap configuration {:?}: {what}",
                row.group_name
            ))
        };
        let security_mode = match row.security_mode.as_str() {
            "psk" => SecurityMode::Psk,
            "nosec" => SecurityMode::NoSec,
            _ => return Err(corrupt("unknown security mode")),
        };
        let period = |v: Option<i64>| v.map(u32::try_from).transpose();
        Ok(BootstrapConfig {
            security_mode,
            lifetime: u32::try_from(row.lifetime).map_err(|_| corrupt("lifetime"))?,
            default_pmin: period(row.default_pmin).map_err(|_| corrupt("default_pmin"))?,
            default_pmax: period(row.default_pmax).map_err(|_| corrupt("default_pmax"))?,
            short_server_id: u16::try_from(row.short_server_id)
                .map_err(|_| corrupt("short_server_id"))?,
            group: row.group_name,
            server_uri: row.server_uri,
            binding: row.binding,
            notification_storing: row.notification_storing,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

const SELECT_BS_CREDENTIALS: &str = "SELECT b.endpoint AS endpoint, b.bs_identity AS identity, \
    b.bs_key_sealed AS sealed, d.state AS state FROM device_bootstrap b \
    JOIN devices d ON d.endpoint = b.endpoint WHERE b.bs_identity = $1";

const SELECT_ALL_BS_CREDENTIALS: &str = "SELECT b.endpoint AS endpoint, b.bs_identity AS identity, \
    b.bs_key_sealed AS sealed, d.state AS state FROM device_bootstrap b \
    JOIN devices d ON d.endpoint = b.endpoint \
    WHERE b.bs_key_sealed IS NOT NULL AND d.state <> 'decommissioned' ORDER BY b.bs_identity";

const SELECT_PENDING_BY_IDENTITY: &str = "SELECT b.endpoint AS endpoint, \
    b.pending_identity AS identity, b.pending_key_sealed AS sealed, d.state AS state \
    FROM device_bootstrap b JOIN devices d ON d.endpoint = b.endpoint \
    WHERE b.pending_identity = $1";

const SELECT_ALL_PENDING: &str = "SELECT b.endpoint AS endpoint, b.pending_identity AS identity, \
    b.pending_key_sealed AS sealed, d.state AS state FROM device_bootstrap b \
    JOIN devices d ON d.endpoint = b.endpoint \
    WHERE b.pending_identity IS NOT NULL AND b.pending_key_sealed IS NOT NULL \
    AND d.state <> 'decommissioned' ORDER BY b.pending_identity";

const UPSERT_BS_CREDENTIALS: &str = "INSERT INTO device_bootstrap (endpoint, bs_identity, \
    bs_key_sealed, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (endpoint) DO UPDATE SET \
    bs_identity = excluded.bs_identity, bs_key_sealed = excluded.bs_key_sealed, \
    updated_at = excluded.updated_at";

const SELECT_STATUS: &str = "SELECT endpoint, bs_identity, bs_key_sealed, pending_identity, \
    pending_since, bootstrapped_at FROM device_bootstrap WHERE endpoint = $1";

const SELECT_PENDING: &str =
    "SELECT pending_identity, pending_key_sealed FROM device_bootstrap WHERE endpoint = $1";

const SET_PENDING: &str = "UPDATE device_bootstrap SET pending_identity = $1, \
    pending_key_sealed = $2, pending_since = $3, updated_at = $3 WHERE endpoint = $4";

const CLEAR_PENDING: &str = "UPDATE device_bootstrap SET pending_identity = NULL, \
    pending_key_sealed = NULL, pending_since = NULL, retired_identity = $1, updated_at = $2 \
    WHERE endpoint = $3 AND pending_identity = $4";

const SELECT_RETIRED: &str = "SELECT retired_identity FROM device_bootstrap WHERE endpoint = $1";

/// Clears the retired identity if it is still the one read (a concurrent take gets it once).
const CLEAR_RETIRED: &str = "UPDATE device_bootstrap SET retired_identity = NULL \
    WHERE endpoint = $1 AND retired_identity = $2";

const SET_BOOTSTRAPPED: &str =
    "UPDATE device_bootstrap SET bootstrapped_at = $1, updated_at = $1 WHERE endpoint = $2";

const REVOKE: &str = "UPDATE device_bootstrap SET bs_key_sealed = NULL, pending_identity = NULL, \
    pending_key_sealed = NULL, pending_since = NULL, updated_at = $1 WHERE endpoint = $2 \
    RETURNING bs_identity";

const INSERT_AUDIT: &str = "INSERT INTO device_audit (device_id, endpoint, at, actor, action, \
    from_state, to_state, reason) SELECT id, endpoint, $1, $2, $3, state, state, $4 \
    FROM devices WHERE endpoint = $5";

const SELECT_CONFIG: &str = "SELECT group_name, server_uri, security_mode, lifetime, binding, \
    default_pmin, default_pmax, short_server_id, notification_storing, updated_at, updated_by \
    FROM bootstrap_configs WHERE group_name = $1";

const SELECT_CONFIGS: &str = "SELECT group_name, server_uri, security_mode, lifetime, binding, \
    default_pmin, default_pmax, short_server_id, notification_storing, updated_at, updated_by \
    FROM bootstrap_configs ORDER BY group_name";

const UPSERT_CONFIG: &str = "INSERT INTO bootstrap_configs (group_name, server_uri, \
    security_mode, lifetime, binding, default_pmin, default_pmax, short_server_id, \
    notification_storing, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    $10, $11) ON CONFLICT (group_name) DO UPDATE SET server_uri = excluded.server_uri, \
    security_mode = excluded.security_mode, lifetime = excluded.lifetime, \
    binding = excluded.binding, default_pmin = excluded.default_pmin, \
    default_pmax = excluded.default_pmax, short_server_id = excluded.short_server_id, \
    notification_storing = excluded.notification_storing, updated_at = excluded.updated_at, \
    updated_by = excluded.updated_by";

fn open_row(
    key: &ServerKey,
    row: CredentialsRow,
    bootstrap: bool,
) -> Result<Option<(String, String, PskKey, LifecycleState)>, StoreError> {
    let state = rows::parse_state(&row.endpoint, &row.state)?;
    let Some(sealed) = row.sealed else {
        return Ok(None);
    };
    if state == LifecycleState::Decommissioned {
        return Ok(None);
    }
    let aad = if bootstrap {
        bootstrap_aad(&row.endpoint)
    } else {
        row.endpoint.clone()
    };
    let key = key.open_psk(&aad, &sealed)?;
    Ok(Some((row.endpoint, row.identity, key, state)))
}

impl Store {
    async fn audit_note(
        &self,
        endpoint: &str,
        actor: &Actor,
        action: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let actor = actor.to_string();
        on_pool!(self, pool => sqlx::query(INSERT_AUDIT)
            .bind(now())
            .bind(&actor)
            .bind(action)
            .bind(reason)
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Gives `endpoint` its factory bootstrap credentials (replacing earlier ones), audited.
    /// Refused for decommissioned devices; the identity must be unused. Returns the identity the
    /// new credentials replaced, if it differs (the caller drops it from the key cache: a
    /// replaced factory key stops working at once).
    pub async fn set_bootstrap_credentials(
        &self,
        endpoint: &str,
        identity: &str,
        key: &PskKey,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError> {
        registry::validate_psk_identity(identity)?;
        let (_, state) = self.current_state(endpoint).await?;
        if state == LifecycleState::Decommissioned {
            return Err(StoreError::CredentialsRevoked(endpoint.to_owned()));
        }
        let replaced = self
            .bootstrap_status(endpoint)
            .await?
            .map(|status| status.bootstrap_identity)
            .filter(|old| old != identity);
        // One namespace for DTLS identities: a bootstrap identity never equals a device's.
        if self.psk_credentials(identity).await?.is_some() {
            return Err(StoreError::DuplicateIdentity(identity.to_owned()));
        }
        let sealed = self.server_key.seal_psk(&bootstrap_aad(endpoint), key)?;
        let written = on_pool!(self, pool => sqlx::query(UPSERT_BS_CREDENTIALS)
            .bind(endpoint)
            .bind(identity)
            .bind(&sealed)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match written {
            Ok(_) => {}
            Err(error) if super::unique_violation(&error).is_some() => {
                return Err(StoreError::DuplicateIdentity(identity.to_owned()));
            }
            Err(error) => return Err(error.into()),
        }
        self.audit_note(endpoint, actor, AUDIT_BOOTSTRAP_CREDENTIALS, None)
            .await?;
        Ok(replaced)
    }

    /// The live bootstrap credentials of `identity` (None: unknown, revoked or decommissioned).
    pub async fn bootstrap_credentials(
        &self,
        identity: &str,
    ) -> Result<Option<BootstrapCredentials>, StoreError> {
        let row: Option<CredentialsRow> = on_pool!(self, pool => sqlx::query_as(SELECT_BS_CREDENTIALS)
            .bind(identity)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        Ok(
            open_row(&self.server_key, row, true)?.map(|(endpoint, identity, key, state)| {
                BootstrapCredentials {
                    endpoint,
                    identity,
                    key,
                    state,
                }
            }),
        )
    }

    /// Every live bootstrap credential (for the bootstrap DTLS key cache at start).
    pub async fn all_bootstrap_credentials(&self) -> Result<Vec<BootstrapCredentials>, StoreError> {
        let rows: Vec<CredentialsRow> = on_pool!(self, pool => sqlx::query_as(SELECT_ALL_BS_CREDENTIALS)
            .fetch_all(pool)
            .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((endpoint, identity, key, state)) = open_row(&self.server_key, row, true)? {
                out.push(BootstrapCredentials {
                    endpoint,
                    identity,
                    key,
                    state,
                });
            }
        }
        Ok(out)
    }

    /// Pending LwM2M-server credentials by identity, as the DTLS key lookup needs them.
    pub async fn pending_psk_credentials(
        &self,
        identity: &str,
    ) -> Result<Option<PskCredentials>, StoreError> {
        let row: Option<CredentialsRow> = on_pool!(self, pool => sqlx::query_as(SELECT_PENDING_BY_IDENTITY)
            .bind(identity)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        Ok(
            open_row(&self.server_key, row, false)?.map(|(endpoint, identity, key, state)| {
                PskCredentials {
                    endpoint,
                    identity,
                    key,
                    state,
                }
            }),
        )
    }

    /// Every live pending credential (for the LwM2M DTLS key cache at start).
    pub async fn all_pending_psk_credentials(&self) -> Result<Vec<PskCredentials>, StoreError> {
        let rows: Vec<CredentialsRow> = on_pool!(self, pool => sqlx::query_as(SELECT_ALL_PENDING)
            .fetch_all(pool)
            .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((endpoint, identity, key, state)) = open_row(&self.server_key, row, false)?
            {
                out.push(PskCredentials {
                    endpoint,
                    identity,
                    key,
                    state,
                });
            }
        }
        Ok(out)
    }

    /// The device's bootstrap status; None when it has no bootstrap credentials.
    pub async fn bootstrap_status(
        &self,
        endpoint: &str,
    ) -> Result<Option<BootstrapStatus>, StoreError> {
        let row: Option<StatusRow> = on_pool!(self, pool => sqlx::query_as(SELECT_STATUS)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|row| BootstrapStatus {
            endpoint: row.endpoint,
            bootstrap_identity: row.bs_identity,
            bootstrap_revoked: row.bs_key_sealed.is_none(),
            pending_identity: row.pending_identity,
            pending_since: row.pending_since,
            bootstrapped_at: row.bootstrapped_at,
        }))
    }

    async fn write_pending(
        &self,
        endpoint: &str,
        identity: &str,
        key: &PskKey,
    ) -> Result<(), StoreError> {
        let sealed = self.server_key.seal_psk(endpoint, key)?;
        let changed = on_pool!(self, pool => sqlx::query(SET_PENDING)
            .bind(identity)
            .bind(&sealed)
            .bind(now())
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Err(StoreError::NotFound(endpoint.to_owned()));
        }
        Ok(())
    }

    /// Generates fresh LwM2M-server credentials for `endpoint` and keeps them pending (replacing
    /// earlier pending ones): the device's current credentials stay valid until it registers with
    /// the new ones. For a credential rotation (audited) and for a bootstrap with none pending.
    pub async fn stage_dm_credentials(
        &self,
        endpoint: &str,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<(String, PskKey), StoreError> {
        let device = self
            .get_device(endpoint)
            .await?
            .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))?;
        if device.state == LifecycleState::Decommissioned || device.credentials_revoked {
            return Err(StoreError::CredentialsRevoked(endpoint.to_owned()));
        }
        if device.security_mode == SecurityMode::NoSec {
            return Err(StoreError::NotPskDevice(endpoint.to_owned()));
        }
        let identity = secrets::generate_psk_identity()?;
        let key = PskKey::generate()?;
        self.write_pending(endpoint, &identity, &key).await?;
        self.audit_note(endpoint, actor, AUDIT_CREDENTIALS_STAGED, reason)
            .await?;
        Ok((identity, key))
    }

    /// The credentials a bootstrap of `endpoint` delivers: the pending ones if a rotation (or an
    /// earlier, unfinished bootstrap) staged some, else freshly staged ones.
    pub async fn dm_credentials_for_bootstrap(
        &self,
        endpoint: &str,
    ) -> Result<(String, PskKey), StoreError> {
        let row: Option<PendingRow> = on_pool!(self, pool => sqlx::query_as(SELECT_PENDING)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        if let Some(PendingRow {
            pending_identity: Some(identity),
            pending_key_sealed: Some(sealed),
        }) = row
        {
            let key = self.server_key.open_psk(endpoint, &sealed)?;
            return Ok((identity, key));
        }
        self.stage_dm_credentials(endpoint, &Actor::system(SystemComponent::Bootstrap), None)
            .await
    }

    /// If `identity` is `endpoint`'s pending identity, makes it the device's identity and key
    /// (audited `credentials_rotated` by `system:bootstrap`): the old credentials stop working.
    /// Returns the identity replaced, which the caller drops from the DTLS key cache.
    pub async fn promote_pending_credentials(
        &self,
        endpoint: &str,
        identity: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<PendingRow> = on_pool!(self, pool => sqlx::query_as(SELECT_PENDING)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        let Some(PendingRow {
            pending_identity: Some(pending),
            pending_key_sealed: Some(sealed),
        }) = row
        else {
            return Ok(None);
        };
        if pending != identity {
            return Ok(None);
        }
        let (device_id, _) = self.current_state(endpoint).await?;
        let old = self
            .get_device(endpoint)
            .await?
            .and_then(|d| d.psk_identity)
            .unwrap_or_default();
        let actor = Actor::system(SystemComponent::Bootstrap).to_string();
        let audit = AuditWrite {
            device_id,
            endpoint,
            actor: &actor,
            action: AUDIT_CREDENTIALS_ROTATED,
            reason: Some("registered with the credentials delivered by bootstrap"),
            at: now(),
        };
        // Clear first: the identity is unique across both columns' uses in the key cache.
        on_pool!(self, pool => sqlx::query(CLEAR_PENDING)
            .bind(&old)
            .bind(now())
            .bind(endpoint)
            .bind(identity)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        let replaced = match &self.backend {
            Backend::Sqlite(b) => b.replace_credentials(identity, &sealed, &audit).await,
            Backend::Postgres(b) => b.replace_credentials(identity, &sealed, &audit).await,
        }?;
        if !replaced {
            return Err(StoreError::CredentialsRevoked(endpoint.to_owned()));
        }
        Ok(Some(old))
    }

    /// The identity the last promotion replaced, once (for dropping it from the key cache).
    pub async fn take_retired_identity(
        &self,
        endpoint: &str,
    ) -> Result<Option<String>, StoreError> {
        let retired: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(SELECT_RETIRED)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        let Some(retired) = retired.and_then(|(r,)| r) else {
            return Ok(None);
        };
        let cleared = on_pool!(self, pool => sqlx::query(CLEAR_RETIRED)
            .bind(endpoint)
            .bind(&retired)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok((cleared == 1 && !retired.is_empty()).then_some(retired))
    }

    /// Bootstrap-Finish was acknowledged: records when, and moves a `registered` device to
    /// `provisioned` (audited as `system:bootstrap`). Returns the device's state.
    pub async fn record_bootstrap_finished(
        &self,
        endpoint: &str,
    ) -> Result<LifecycleState, StoreError> {
        on_pool!(self, pool => sqlx::query(SET_BOOTSTRAPPED)
            .bind(now())
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        let actor = Actor::system(SystemComponent::Bootstrap);
        let (_, state) = self.current_state(endpoint).await?;
        if state == LifecycleState::Registered {
            match self
                .transition(endpoint, LifecycleState::Provisioned, &actor, None)
                .await
            {
                Ok(device) => return Ok(device.state),
                // The device registered with its new account before this record was written (a
                // quick client registers the moment it has acknowledged Bootstrap-Finish, and the
                // registration's write won): it is active already; audit the bootstrap below.
                Err(StoreError::IllegalTransition(_)) => {}
                Err(error) => return Err(error),
            }
        }
        // A re-bootstrap (rotation) or the race above: no transition, but the audit trail says
        // that the device was bootstrapped.
        self.record_audit(
            endpoint,
            &actor,
            registry::AUDIT_BOOTSTRAP_FINISHED,
            "Bootstrap-Finish acknowledged",
        )
        .await?;
        Ok(self.current_state(endpoint).await?.1)
    }

    /// Revokes the bootstrap credentials and any pending ones (decommissioning), audited.
    /// Returns the identities to drop from the key caches.
    pub async fn revoke_bootstrap_credentials(
        &self,
        endpoint: &str,
        actor: &Actor,
    ) -> Result<Vec<String>, StoreError> {
        let status = self.bootstrap_status(endpoint).await?;
        let Some(status) = status else {
            return Ok(Vec::new());
        };
        on_pool!(self, pool => sqlx::query(REVOKE)
            .bind(now())
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        self.audit_note(endpoint, actor, AUDIT_BOOTSTRAP_REVOKED, None)
            .await?;
        Ok(std::iter::once(status.bootstrap_identity)
            .chain(status.pending_identity)
            .collect())
    }

    /// The configuration for a device with `tags`: its group's, else `default`, else built-in.
    pub async fn bootstrap_config_for(
        &self,
        tags: &registry::Tags,
    ) -> Result<BootstrapConfig, StoreError> {
        if let Some(group) = tags.get(GROUP_TAG)
            && let Some(config) = self.bootstrap_config(group).await?
        {
            return Ok(config);
        }
        Ok(self
            .bootstrap_config(DEFAULT_GROUP)
            .await?
            .unwrap_or_else(BootstrapConfig::builtin))
    }

    pub async fn bootstrap_config(
        &self,
        group: &str,
    ) -> Result<Option<BootstrapConfig>, StoreError> {
        let row: Option<ConfigRow> = on_pool!(self, pool => sqlx::query_as(SELECT_CONFIG)
            .bind(group)
            .fetch_optional(pool)
            .await)?;
        row.map(BootstrapConfig::try_from).transpose()
    }

    pub async fn bootstrap_configs(&self) -> Result<Vec<BootstrapConfig>, StoreError> {
        let rows: Vec<ConfigRow> = on_pool!(self, pool => sqlx::query_as(SELECT_CONFIGS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(BootstrapConfig::try_from).collect()
    }

    /// Creates or replaces a group's configuration (validated); `updated_at`/`updated_by` are set
    /// here.
    pub async fn put_bootstrap_config(
        &self,
        mut config: BootstrapConfig,
        actor: &Actor,
    ) -> Result<Result<BootstrapConfig, ConfigInvalid>, StoreError> {
        if let Err(invalid) = config.validate() {
            return Ok(Err(invalid));
        }
        config.updated_at = now();
        config.updated_by = actor.to_string();
        on_pool!(self, pool => sqlx::query(UPSERT_CONFIG)
            .bind(&config.group)
            .bind(&config.server_uri)
            .bind(config.security_mode.as_str())
            .bind(i64::from(config.lifetime))
            .bind(&config.binding)
            .bind(config.default_pmin.map(i64::from))
            .bind(config.default_pmax.map(i64::from))
            .bind(i64::from(config.short_server_id))
            .bind(config.notification_storing)
            .bind(config.updated_at)
            .bind(&config.updated_by)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(Ok(config))
    }

    /// Deletes a group's configuration; whether it existed.
    pub async fn delete_bootstrap_config(&self, group: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, pool => sqlx::query("DELETE FROM bootstrap_configs WHERE group_name = $1")
            .bind(group)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Run against SQLite (a temporary file) and PostgreSQL (a scratch database, when
    //! `FERRITE_TEST_POSTGRES_URL` is set; `scripts/pg.sh` starts one).

    use super::*;
    use crate::fleet::registry::{NewDevice, Tags};
    use crate::store::scratch::{self, ScratchPostgres};

    fn actor() -> Actor {
        Actor::user("alice").unwrap()
    }

    async fn with_stores(case: fn(Store) -> futures_util::future::BoxFuture<'static, ()>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bs.db").display());
        let store = Store::connect(&url, ServerKey::from_bytes([3; 32]))
            .await
            .unwrap();
        case(store.clone()).await;
        store.close().await;
        let Some(admin) = scratch::postgres_test_url() else {
            return;
        };
        let db = ScratchPostgres::create(&admin, "ferrite_bs").await.unwrap();
        let store = Store::connect(db.url(), ServerKey::from_bytes([3; 32]))
            .await
            .unwrap();
        let outcome = tokio::spawn(case(store.clone())).await;
        store.close().await;
        db.drop_database().await.unwrap();
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    async fn device(store: &Store, endpoint: &str, tags: &[(&str, &str)]) -> String {
        let mut new = NewDevice::psk(endpoint, "SN-1", "EM-100");
        new.tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Tags>();
        let created = store.create_device(new, &actor()).await.unwrap();
        created.device.psk_identity.unwrap()
    }

    fn credentials_flow(store: Store) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            let old = device(&store, "m-1", &[]).await;
            device(&store, "m-2", &[]).await;
            let key = PskKey::new(vec![7; 16]).unwrap();
            store
                .set_bootstrap_credentials("m-1", "bs-m-1", &key, &actor())
                .await
                .unwrap();
            // Bootstrap identities are unique and never a device's LwM2M identity.
            assert!(matches!(
                store
                    .set_bootstrap_credentials("m-2", "bs-m-1", &key, &actor())
                    .await,
                Err(StoreError::DuplicateIdentity(_))
            ));
            assert!(matches!(
                store
                    .set_bootstrap_credentials("m-2", &old, &key, &actor())
                    .await,
                Err(StoreError::DuplicateIdentity(_))
            ));
            let found = store
                .bootstrap_credentials("bs-m-1")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (found.endpoint.as_str(), found.key.as_bytes()),
                ("m-1", &[7u8; 16][..])
            );
            assert_eq!(store.all_bootstrap_credentials().await.unwrap().len(), 1);
            // The sealed bootstrap key does not open as an LwM2M key of the device.
            assert!(store.psk_credentials("bs-m-1").await.unwrap().is_none());

            // A bootstrap stages fresh credentials; a second one delivers the same ones.
            let (pending, pending_key) = store.dm_credentials_for_bootstrap("m-1").await.unwrap();
            let (again, again_key) = store.dm_credentials_for_bootstrap("m-1").await.unwrap();
            assert_eq!(
                (&pending, pending_key.as_bytes()),
                (&again, again_key.as_bytes())
            );
            // Both the old and the pending credentials are accepted until the first Register.
            assert!(store.psk_credentials(&old).await.unwrap().is_some());
            let staged = store.psk_credentials(&pending).await.unwrap().unwrap();
            assert_eq!(staged.endpoint, "m-1");
            assert_eq!(store.all_pending_psk_credentials().await.unwrap().len(), 1);
            assert_eq!(
                store.record_bootstrap_finished("m-1").await.unwrap(),
                LifecycleState::Provisioned
            );
            // Another device's pending identity is refused; the device's own is promoted.
            assert!(
                store
                    .may_register("m-2", Some(&pending), false)
                    .await
                    .unwrap()
                    .is_err()
            );
            assert!(
                store
                    .may_register("m-1", Some(&pending), false)
                    .await
                    .unwrap()
                    .is_ok()
            );
            assert!(
                store.psk_credentials(&old).await.unwrap().is_none(),
                "old revoked"
            );
            assert_eq!(
                store
                    .psk_credentials(&pending)
                    .await
                    .unwrap()
                    .unwrap()
                    .key
                    .as_bytes(),
                pending_key.as_bytes()
            );
            assert_eq!(
                store.take_retired_identity("m-1").await.unwrap(),
                Some(old.clone())
            );
            assert_eq!(store.take_retired_identity("m-1").await.unwrap(), None);
            assert!(
                store
                    .may_register("m-1", Some(&old), false)
                    .await
                    .unwrap()
                    .is_err()
            );

            // Rotation stages new ones; decommissioning revokes bootstrap and pending.
            let (rotated, _) = store
                .stage_dm_credentials("m-1", &actor(), Some("test"))
                .await
                .unwrap();
            let revoked = store
                .revoke_bootstrap_credentials("m-1", &actor())
                .await
                .unwrap();
            assert_eq!(revoked, vec!["bs-m-1".to_owned(), rotated.clone()]);
            assert!(
                store
                    .bootstrap_credentials("bs-m-1")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(store.psk_credentials(&rotated).await.unwrap().is_none());
            let status = store.bootstrap_status("m-1").await.unwrap().unwrap();
            assert!(status.bootstrap_revoked && status.pending_identity.is_none());
            assert!(status.bootstrapped_at.is_some());
        })
    }

    fn configs_by_group(store: Store) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            device(&store, "m-n", &[("group", "north")]).await;
            let tags_north: Tags = [("group".to_owned(), "north".to_owned())].into();
            assert_eq!(
                store.bootstrap_config_for(&tags_north).await.unwrap(),
                BootstrapConfig::builtin()
            );
            let north = BootstrapConfig {
                group: "north".into(),
                server_uri: Some("coaps://north.example.com:5684".into()),
                lifetime: 600,
                binding: "UQ".into(),
                default_pmin: Some(10),
                default_pmax: Some(60),
                short_server_id: 7,
                notification_storing: false,
                ..BootstrapConfig::builtin()
            };
            let saved = store
                .put_bootstrap_config(north.clone(), &actor())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(saved.updated_by, "user:alice");
            let got = store.bootstrap_config_for(&tags_north).await.unwrap();
            assert_eq!(
                (got.group.as_str(), got.lifetime, got.short_server_id),
                ("north", 600, 7)
            );
            assert_eq!(got.default_pmax, Some(60));
            assert!(!got.notification_storing);
            // Invalid ones are refused with the field named.
            let bad = BootstrapConfig {
                binding: "X".into(),
                ..north.clone()
            };
            assert_eq!(
                store
                    .put_bootstrap_config(bad, &actor())
                    .await
                    .unwrap()
                    .unwrap_err()
                    .field,
                "binding"
            );
            let nosec_without_uri = BootstrapConfig {
                security_mode: SecurityMode::NoSec,
                server_uri: None,
                ..north.clone()
            };
            assert!(
                store
                    .put_bootstrap_config(nosec_without_uri, &actor())
                    .await
                    .unwrap()
                    .is_err()
            );
            // A default row serves devices without a (configured) group.
            let default = BootstrapConfig {
                lifetime: 120,
                ..BootstrapConfig::builtin()
            };
            store
                .put_bootstrap_config(default, &actor())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                store
                    .bootstrap_config_for(&Tags::new())
                    .await
                    .unwrap()
                    .lifetime,
                120
            );
            assert_eq!(store.bootstrap_configs().await.unwrap().len(), 2);
            assert!(store.delete_bootstrap_config("north").await.unwrap());
            assert!(!store.delete_bootstrap_config("north").await.unwrap());
            assert_eq!(
                store
                    .bootstrap_config_for(&tags_north)
                    .await
                    .unwrap()
                    .lifetime,
                120
            );
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bootstrap_and_pending_credentials_on_both_engines() {
        with_stores(credentials_flow).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn configurations_by_group_on_both_engines() {
        with_stores(configs_by_group).await;
    }
}
