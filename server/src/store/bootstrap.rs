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
fn bootstrap_aad(endpoint: &str) -> String {
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

const TAKE_RETIRED: &str = "UPDATE device_bootstrap SET retired_identity = NULL \
    WHERE endpoint = $1 AND retired_identity IS NOT NULL RETURNING retired_identity";

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
    /// Refused for decommissioned devices; the identity must be unused.
    pub async fn set_bootstrap_credentials(
        &self,
        endpoint: &str,
        identity: &str,
        key: &PskKey,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        registry::validate_psk_identity(identity)?;
        let (_, state) = self.current_state(endpoint).await?;
        if state == LifecycleState::Decommissioned {
            return Err(StoreError::CredentialsRevoked(endpoint.to_owned()));
        }
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
            .await
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
        let retired: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(TAKE_RETIRED)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        Ok(retired.and_then(|(r,)| r).filter(|r| !r.is_empty()))
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
        let (_, state) = self.current_state(endpoint).await?;
        if state == LifecycleState::Registered {
            let device = self
                .transition(
                    endpoint,
                    LifecycleState::Provisioned,
                    &Actor::system(SystemComponent::Bootstrap),
                    None,
                )
                .await?;
            return Ok(device.state);
        }
        Ok(state)
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
