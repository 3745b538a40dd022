//! Storage: one [`Store`] type over two engines, SQLite (the embedded default, `sqlite://path`)
//! and PostgreSQL (`postgres://…`, shared by several `ferrite` nodes). Each engine has its own
//! module with runtime-checked queries; this module holds what is engine-independent: validation,
//! credential generation and sealing, transition rules, import orchestration. Migrations
//! (`migrations/sqlite`, `migrations/postgres`) run at connect.
//!
//! One test suite (`tests.rs`) runs every case against both engines.

/// Runs a sqlx query expression against the pool of whichever backend is in use: for SQL text
/// that is the same on both engines (`$n` placeholders). Defined before the submodules so that
/// they can all use it.
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

pub mod accounts;
pub mod bootstrap;
mod bulk;
pub mod diagnostics;
pub mod export;
mod facts;
mod fleet_read;
mod lifecycle_cache;
mod lifecycle_follow;
pub mod lwm2m;
mod postgres;
mod rows;
pub mod scratch;
mod search;
mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::broadcast;

use self::postgres::PostgresBackend;
use self::rows::{AuditWrite, InfoWrite, InsertAudit, PreparedDevice, TransitionWrite};
pub use self::search::{DeviceSummary, MIN_INDEXED_SEARCH_CHARS};
use self::sql::{Dialect, ExistingColumn};
use self::sqlite::SqliteBackend;
use crate::fleet::lifecycle::{
    self, Actor, IllegalTransition, LifecycleState, SystemComponent, TransitionAction,
};
use crate::fleet::onboarding::{self, ImportError, ImportOutcome, ImportRejection, ImportReport};
use crate::fleet::registry::{
    self, AUDIT_CREATED, AUDIT_IMPORTED, AuditEntry, AuditPage, AuditPageRequest, Connectivity,
    ConnectivityUpdate, CreatedDevice, CredentialsPage, Device, DeviceChanges, DeviceFilter,
    DevicePage, NewDevice, PageRequest, PskCredentials, RegistrationFacts, RegistrationRefusal,
    RotatedCredentials, SecurityMode, ValidationError,
};
use crate::fleet::secrets::{self, PskKey, SecretError, ServerKey};

/// Rows per import transaction: large enough to amortise the commit (an fsync on SQLite), small
/// enough that other writers (connectivity updates) are not held up for long.
const IMPORT_BATCH: usize = 1000;
/// Values per `IN (…)` duplicate check: well under SQLite's 32,766 bound parameters; 100,000
/// rows take 40 queries instead of 400.
const EXISTS_BATCH: usize = 5000;
/// Longest reason text kept in the audit trail.
pub const MAX_REASON_LEN: usize = 1000;
/// Retries of a transition that lost a race with a concurrent change.
const TRANSITION_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme {0:?}: use sqlite://path or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDirectory {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("device {0:?} not found")]
    NotFound(String),
    #[error("the credentials of device {0:?} were revoked (it is decommissioned)")]
    CredentialsRevoked(String),
    #[error("device {0:?} uses NoSec and has no PSK credentials")]
    NotPskDevice(String),
    #[error("a device with endpoint {0:?} already exists")]
    DuplicateEndpoint(String),
    #[error("the PSK identity {0:?} is already in use")]
    DuplicateIdentity(String),
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error("{action} is an operator action and needs a reason (1 to {MAX_REASON_LEN} characters)")]
    ReasonRequired { action: TransitionAction },
    #[error("device {0:?} kept changing concurrently; try again")]
    Conflict(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("import refused: {0}")]
    Import(#[from] ImportError),
    #[error("CSV output failed: {0}")]
    Csv(#[from] csv::Error),
}

/// Tuning of the connection pool. Defaults suit one server process.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// SQLite: how long a writer waits for another writer's lock before failing.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

/// Runs the same expression on whichever backend is in use (both have the same methods).
macro_rules! on_backend {
    ($store:expr, $backend:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($backend) => $body,
            Backend::Postgres($backend) => $body,
        }
    };
}

/// The fleet registry's storage. Cheap to clone (a pool handle and the server key).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    server_key: Arc<ServerKey>,
    /// Every committed lifecycle transition, for live listeners (the console's event stream).
    state_changes: broadcast::Sender<StateChange>,
    /// Registration checks waiting for their facts, looked up together (`facts.rs`).
    facts: Arc<facts::FactsBatcher>,
    /// Lifecycle states already read (`lifecycle_cache.rs`).
    lifecycle: Arc<lifecycle_cache::LifecycleCache>,
    /// PostgreSQL: the listener for other nodes' lifecycle changes (`lifecycle_follow.rs`).
    follower: Option<Arc<lifecycle_follow::Follower>>,
}

/// A lifecycle transition that was committed (and audited): published by [`Store::transition`]
/// whoever made it — an operator, the registration path, the bootstrap server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub endpoint: String,
    pub from: LifecycleState,
    pub to: LifecycleState,
    /// The audit actor: `user:alice`, `system:registration`, …
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// How many state changes a slow listener may fall behind before it is told it lagged.
const STATE_CHANGE_BACKLOG: usize = 1024;

// Hand-written: the pools' Debug shows their connect options, which may include a password.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_kind())
            .finish_non_exhaustive()
    }
}

/// Timestamps are kept to microseconds, PostgreSQL's precision, so both engines return exactly
/// what was written.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UniqueField {
    Endpoint,
    PskIdentity,
    Other,
}

/// Which unique constraint a failed insert hit, if any. SQLite names the column in its message
/// (`UNIQUE constraint failed: devices.psk_identity`), PostgreSQL in the constraint name
/// (`devices_psk_identity_key`).
fn unique_violation(error: &sqlx::Error) -> Option<UniqueField> {
    let db = error.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    let text = format!("{} {}", db.constraint().unwrap_or(""), db.message());
    // `bs_identity`: a factory bootstrap identity (the same namespace as device identities).
    Some(
        if text.contains("psk_identity") || text.contains("bs_identity") {
            UniqueField::PskIdentity
        } else if text.contains("endpoint") {
            UniqueField::Endpoint
        } else {
            UniqueField::Other
        },
    )
}

fn validate_reason(
    action: TransitionAction,
    reason: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    match reason {
        None if action.requires_reason() => Err(StoreError::ReasonRequired { action }),
        Some(r) if r.chars().count() > MAX_REASON_LEN => Err(StoreError::ReasonRequired { action }),
        _ => Ok(reason.map(str::to_owned)),
    }
}

/// Validates a new device, generates what is missing (identity, key) and seals the key.
/// Returns the row to insert and the generated key, if one was generated.
fn prepare_device(
    server_key: &ServerKey,
    new: NewDevice,
) -> Result<(PreparedDevice, Option<PskKey>), StoreError> {
    new.validate()?;
    let tags_json = serde_json::to_string(&new.tags)
        .map_err(|e| StoreError::Corrupt(format!("tags cannot be serialised: {e}")))?;
    let (psk_identity, psk_key_sealed, generated) = match new.security_mode {
        SecurityMode::NoSec => (None, None, None),
        SecurityMode::Psk => {
            let identity = match new.psk_identity {
                Some(identity) => identity,
                None => secrets::generate_psk_identity()?,
            };
            let (key, generated) = match new.psk_key {
                Some(key) => (key, false),
                None => (PskKey::generate()?, true),
            };
            let sealed = server_key.seal_psk(&new.endpoint, &key)?;
            (Some(identity), Some(sealed), generated.then_some(key))
        }
    };
    Ok((
        PreparedDevice {
            endpoint: new.endpoint,
            serial: new.serial,
            model: new.model,
            tags: new.tags,
            tags_json,
            customer: new.customer,
            security_mode: new.security_mode,
            psk_identity,
            psk_key_sealed,
            bootstrap: None,
        },
        generated,
    ))
}

impl Store {
    /// Connects with default options; see [`Store::connect_with`].
    pub async fn connect(url: &str, server_key: ServerKey) -> Result<Store, StoreError> {
        Store::connect_with(url, server_key, StoreOptions::default()).await
    }

    /// Connects to `sqlite://path` (the file and its directory are created when missing) or
    /// `postgres://…` / `postgresql://…`, and applies pending migrations. `server_key` encrypts
    /// device keys at rest; the same key must be given on every start.
    pub async fn connect_with(
        url: &str,
        server_key: ServerKey,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let (backend, lifecycle, follower) = match scheme {
            "sqlite" => (
                Backend::Sqlite(SqliteBackend::connect(url, &options).await?),
                Arc::default(),
                None,
            ),
            "postgres" | "postgresql" => {
                let backend = Backend::Postgres(PostgresBackend::connect(url, &options).await?);
                let lifecycle = Arc::new(lifecycle_cache::LifecycleCache::off());
                let follower = lifecycle_follow::Follower::start(url, &lifecycle);
                (backend, lifecycle, Some(Arc::new(follower)))
            }
            other => return Err(StoreError::UnsupportedUrl(other.to_owned())),
        };
        Ok(Store {
            backend,
            server_key: Arc::new(server_key),
            state_changes: broadcast::channel(STATE_CHANGE_BACKLOG).0,
            facts: Arc::default(),
            lifecycle,
            follower,
        })
    }

    /// Committed lifecycle transitions from now on (see [`StateChange`]).
    pub fn state_changes(&self) -> broadcast::Receiver<StateChange> {
        self.state_changes.subscribe()
    }

    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Waits for open connections to finish and closes the pool (SQLite: checkpoints the WAL).
    pub async fn close(&self) {
        if let Some(follower) = &self.follower {
            follower.stop().await;
        }
        on_backend!(self, b => b.close().await)
    }

    /// Creates a device in state `registered` and audits it. For a PSK device an absent identity
    /// or key is generated; a generated key is returned here once and never again.
    pub async fn create_device(
        &self,
        new: NewDevice,
        actor: &Actor,
    ) -> Result<CreatedDevice, StoreError> {
        let endpoint = new.endpoint.clone();
        let (prepared, generated_psk_key) = prepare_device(&self.server_key, new)?;
        let identity = prepared.psk_identity.clone();
        let actor = actor.to_string();
        let audit = InsertAudit {
            actor: &actor,
            action: AUDIT_CREATED,
            at: now(),
        };
        let inserted =
            on_backend!(self, b => b.insert_devices(std::slice::from_ref(&prepared), &audit).await);
        if let Err(error) = inserted {
            return Err(match unique_violation(&error) {
                Some(UniqueField::Endpoint) => StoreError::DuplicateEndpoint(endpoint),
                Some(UniqueField::PskIdentity) => {
                    StoreError::DuplicateIdentity(identity.unwrap_or_default())
                }
                _ => StoreError::Database(error),
            });
        }
        let device = self
            .get_device(&endpoint)
            .await?
            .ok_or_else(|| StoreError::NotFound(endpoint.clone()))?;
        Ok(CreatedDevice {
            device,
            generated_psk_key,
        })
    }

    pub async fn get_device(&self, endpoint: &str) -> Result<Option<Device>, StoreError> {
        let row = on_backend!(self, b => b.fetch_device(endpoint).await)?;
        row.map(Device::try_from).transpose()
    }

    /// One page of devices matching `filter`, in endpoint order (keyset pagination).
    pub async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<DevicePage, StoreError> {
        page.validate()?;
        let plan = self.list_search_plan(filter, page).await?;
        let query = sql::list_devices(filter, page, self.dialect(), plan);
        let rows = on_backend!(self, b => b.list_devices(query).await)?;
        let mut devices = rows
            .into_iter()
            .map(Device::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let next_after = if devices.len() > limit {
            devices.truncate(limit);
            devices.last().map(|d| d.endpoint.clone())
        } else {
            None
        };
        Ok(DevicePage {
            devices,
            next_after,
        })
    }

    /// How many devices match `filter` (for "n devices" in the console; costs a scan of the
    /// matching index range).
    pub async fn count_devices(&self, filter: &DeviceFilter) -> Result<u64, StoreError> {
        let query = sql::count_devices(filter, self.dialect());
        let count = on_backend!(self, b => b.count(query).await)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The key for a DTLS handshake. None when the identity is unknown, its credentials were
    /// revoked, or the device is decommissioned: the handshake must then fail.
    pub async fn psk_credentials(
        &self,
        identity: &str,
    ) -> Result<Option<PskCredentials>, StoreError> {
        let Some(row) = on_backend!(self, b => b.credentials(identity).await)? else {
            // Credentials delivered by bootstrap are accepted before the device first uses them.
            return self.pending_psk_credentials(identity).await;
        };
        let state = rows::parse_state(&row.endpoint, &row.state)?;
        let (Some(sealed), Some(identity), false) = (
            row.psk_key_sealed,
            row.psk_identity,
            row.credentials_revoked,
        ) else {
            return Ok(None);
        };
        if state == LifecycleState::Decommissioned {
            return Ok(None);
        }
        let key = self.server_key.open_psk(&row.endpoint, &sealed)?;
        Ok(Some(PskCredentials {
            endpoint: row.endpoint,
            identity,
            key,
            state,
        }))
    }

    /// Live credentials (not revoked, not decommissioned) in identity order, `limit` (1–1000) at a
    /// time after `after`: for loading the DTLS layer's identity → key map at start.
    pub async fn psk_credentials_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<CredentialsPage, StoreError> {
        PageRequest::first(limit).validate()?;
        // Identities are never empty, so "" is before the first one.
        let rows = on_backend!(self, b => b.credentials_page(after.unwrap_or(""), i64::from(limit)).await)?;
        let full = rows.len() == usize::try_from(limit).unwrap_or(usize::MAX);
        let mut credentials = Vec::with_capacity(rows.len());
        for row in rows {
            let state = rows::parse_state(&row.endpoint, &row.state)?;
            let (Some(identity), Some(sealed)) = (row.psk_identity, row.psk_key_sealed) else {
                continue;
            };
            let key = self.server_key.open_psk(&row.endpoint, &sealed)?;
            credentials.push(PskCredentials {
                endpoint: row.endpoint,
                identity,
                key,
                state,
            });
        }
        let next_after = if full {
            credentials.last().map(|c| c.identity.clone())
        } else {
            None
        };
        Ok(CredentialsPage {
            credentials,
            next_after,
        })
    }

    /// Whether `endpoint` may Register, given the PSK identity its DTLS session authenticated
    /// (None for plain CoAP) and whether NoSec is enabled on the server. The outer error is a
    /// storage failure; the inner one the refusal (answer 4.03 and log it).
    pub async fn may_register(
        &self,
        endpoint: &str,
        authenticated_identity: Option<&str>,
        nosec_enabled_on_server: bool,
    ) -> Result<Result<LifecycleState, RegistrationRefusal>, StoreError> {
        // Looked up with the other checks waiting at the same time (one query for a storm).
        let mut facts = self
            .registration_facts_batched(endpoint)
            .await?
            .map(RegistrationFacts::try_from)
            .transpose()?;
        // The first Register with credentials delivered by bootstrap makes them the device's
        // own and revokes the old ones (store/bootstrap.rs).
        if let (Some(f), Some(identity)) = (facts.as_mut(), authenticated_identity)
            && f.psk_identity.as_deref() != Some(identity)
            && f.state != LifecycleState::Decommissioned
            && self
                .promote_pending_credentials(endpoint, identity)
                .await?
                .is_some()
        {
            f.psk_identity = Some(identity.to_owned());
        }
        Ok(registry::may_register(
            endpoint,
            facts.as_ref(),
            authenticated_identity,
            nosec_enabled_on_server,
        )
        .map(|()| facts.map_or(LifecycleState::Registered, |f| f.state)))
    }

    /// A Register was accepted (call [`Store::may_register`] first): the device becomes
    /// `active` if this is its first registration (audited as `system:registration`), and its
    /// connectivity and last-seen time are updated.
    pub async fn record_registration(
        &self,
        endpoint: &str,
        connectivity: Connectivity,
        at: DateTime<Utc>,
    ) -> Result<Device, StoreError> {
        let state = self.current_state(endpoint).await?.1;
        if matches!(
            state,
            LifecycleState::Registered | LifecycleState::Provisioned
        ) {
            self.transition(
                endpoint,
                LifecycleState::Active,
                &Actor::system(SystemComponent::Registration),
                None,
            )
            .await?;
        }
        self.set_connectivity(endpoint, connectivity, Some(at))
            .await?;
        self.get_device(endpoint)
            .await?
            .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))
    }

    /// Updates connectivity; `last_seen` (when given) records when the device was last heard.
    pub async fn set_connectivity(
        &self,
        endpoint: &str,
        connectivity: Connectivity,
        last_seen: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let last_seen = last_seen.map(|t| t.trunc_subsecs(6));
        let changed = on_backend!(self, b => b.set_connectivity(endpoint, connectivity, last_seen, now()).await)?;
        if changed == 0 {
            return Err(StoreError::NotFound(endpoint.to_owned()));
        }
        Ok(())
    }

    /// Many connectivity updates in one transaction, e.g. a lifetime-expiry sweep marking devices
    /// offline. Unknown endpoints are skipped; returns how many devices were updated.
    pub async fn set_connectivity_many(
        &self,
        updates: &[ConnectivityUpdate],
    ) -> Result<u64, StoreError> {
        let updates: Vec<(&str, Connectivity, Option<DateTime<Utc>>)> = updates
            .iter()
            .map(|u| {
                (
                    u.endpoint.as_str(),
                    u.connectivity,
                    u.last_seen.map(|t| t.trunc_subsecs(6)),
                )
            })
            .collect();
        Ok(on_backend!(self, b => b.set_connectivity_many(&updates, now()).await)?)
    }

    /// Records the firmware version the device reported (3/0/3).
    pub async fn set_firmware_version(
        &self,
        endpoint: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        registry::validate_firmware_version(version)?;
        let changed = on_backend!(self, b => b.set_firmware(endpoint, version, now()).await)?;
        if changed == 0 {
            return Err(StoreError::NotFound(endpoint.to_owned()));
        }
        Ok(())
    }

    /// Edits serial, model, customer and tags (audited as `updated`). Concurrent edits of the same
    /// device: the last one wins.
    pub async fn update_device(
        &self,
        endpoint: &str,
        changes: DeviceChanges,
        actor: &Actor,
    ) -> Result<Device, StoreError> {
        let (device_id, _) = self.current_state(endpoint).await?;
        let current = self
            .get_device(endpoint)
            .await?
            .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))?;
        // Validate the merged fields with the rules of a new device (credentials are not part of
        // an edit, hence NoSec without any).
        let merged = NewDevice {
            endpoint: current.endpoint,
            serial: changes.serial.unwrap_or(current.serial),
            model: changes.model.unwrap_or(current.model),
            tags: changes.tags.unwrap_or(current.tags),
            customer: changes.customer.unwrap_or(current.customer),
            security_mode: SecurityMode::NoSec,
            psk_identity: None,
            psk_key: None,
        };
        merged.validate()?;
        let tags_json = serde_json::to_string(&merged.tags)
            .map_err(|e| StoreError::Corrupt(format!("tags cannot be serialised: {e}")))?;
        let actor = actor.to_string();
        let info = InfoWrite {
            serial: &merged.serial,
            model: &merged.model,
            customer: merged.customer.as_deref(),
            tags: &merged.tags,
            tags_json: &tags_json,
        };
        let audit = AuditWrite {
            device_id,
            endpoint,
            actor: &actor,
            action: registry::AUDIT_UPDATED,
            reason: None,
            at: now(),
        };
        on_backend!(self, b => b.update_info(&info, &audit).await)?;
        self.get_device(endpoint)
            .await?
            .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))
    }

    /// Gives a PSK device new credentials (audited as `credentials_rotated`), e.g. when the
    /// bootstrap server provisions a fresh per-device key. Absent identity or key are generated.
    /// The old key stops working at once. Refused for NoSec and decommissioned devices.
    pub async fn rotate_credentials(
        &self,
        endpoint: &str,
        identity: Option<String>,
        key: Option<PskKey>,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<RotatedCredentials, StoreError> {
        let (device_id, _) = self.current_state(endpoint).await?;
        let identity = match identity {
            Some(identity) => {
                registry::validate_psk_identity(&identity)?;
                identity
            }
            None => secrets::generate_psk_identity()?,
        };
        let key = match key {
            Some(key) => key,
            None => PskKey::generate()?,
        };
        let sealed = self.server_key.seal_psk(endpoint, &key)?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let actor = actor.to_string();
        let audit = AuditWrite {
            device_id,
            endpoint,
            actor: &actor,
            action: registry::AUDIT_CREDENTIALS_ROTATED,
            reason,
            at: now(),
        };
        let replaced =
            on_backend!(self, b => b.replace_credentials(&identity, &sealed, &audit).await);
        match replaced {
            Ok(true) => Ok(RotatedCredentials { identity, key }),
            Ok(false) => {
                let device = self
                    .get_device(endpoint)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))?;
                Err(if device.security_mode == SecurityMode::NoSec {
                    StoreError::NotPskDevice(endpoint.to_owned())
                } else {
                    StoreError::CredentialsRevoked(endpoint.to_owned())
                })
            }
            Err(error) if unique_violation(&error) == Some(UniqueField::PskIdentity) => {
                Err(StoreError::DuplicateIdentity(identity))
            }
            Err(error) => Err(StoreError::Database(error)),
        }
    }

    async fn current_state(&self, endpoint: &str) -> Result<(i64, LifecycleState), StoreError> {
        let row = on_backend!(self, b => b.device_state(endpoint).await)?
            .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()))?;
        Ok((row.id, rows::parse_state(endpoint, &row.state)?))
    }

    /// Moves a device to `to` if the lifecycle allows it, and appends the audit entry in the same
    /// transaction. Operator actions (suspend, resume, decommission) need a `reason`.
    /// Decommissioning also wipes the key: the identity's credentials lookup fails from then on.
    pub async fn transition(
        &self,
        endpoint: &str,
        to: LifecycleState,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<Device, StoreError> {
        let actor = actor.to_string();
        for _ in 0..TRANSITION_ATTEMPTS {
            let (device_id, from) = self.current_state(endpoint).await?;
            let action = lifecycle::validate_transition(from, to)?;
            let reason = validate_reason(action, reason)?;
            let write = TransitionWrite {
                device_id,
                endpoint,
                from,
                to,
                revoke_credentials: action == TransitionAction::Decommission,
                actor: &actor,
                action: action.as_str(),
                reason: reason.as_deref(),
                at: now(),
            };
            let applied = on_backend!(self, b => b.apply_transition(&write).await);
            // Committed or not, nothing remembered may be older than this attempt.
            self.lifecycle.forget();
            if applied? {
                // No listener is not an error.
                let _ = self.state_changes.send(StateChange {
                    endpoint: endpoint.to_owned(),
                    from,
                    to,
                    actor: actor.clone(),
                    reason: reason.clone(),
                    at: write.at,
                });
                return self
                    .get_device(endpoint)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(endpoint.to_owned()));
            }
            // The state changed between the read and the guarded update: decide again.
        }
        Err(StoreError::Conflict(endpoint.to_owned()))
    }

    /// Operator hold (active → suspended).
    pub async fn suspend(
        &self,
        endpoint: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Device, StoreError> {
        self.transition(endpoint, LifecycleState::Suspended, actor, Some(reason))
            .await
    }

    /// End of an operator hold (suspended → active).
    pub async fn resume(
        &self,
        endpoint: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Device, StoreError> {
        self.transition(endpoint, LifecycleState::Active, actor, Some(reason))
            .await
    }

    /// Terminal: revokes the credentials; registration is refused from then on.
    pub async fn decommission(
        &self,
        endpoint: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Device, StoreError> {
        self.transition(
            endpoint,
            LifecycleState::Decommissioned,
            actor,
            Some(reason),
        )
        .await
    }

    /// Appends an audit entry that is not a lifecycle transition (a device operation asked for
    /// through the API: `action` one of the `AUDIT_DEVICE_*` names, `detail` its path and
    /// outcome).
    pub async fn record_audit(
        &self,
        endpoint: &str,
        actor: &Actor,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let (device_id, _) = self.current_state(endpoint).await?;
        let actor = actor.to_string();
        on_pool!(self, pool => sqlx::query(sql::INSERT_AUDIT)
            .bind(device_id)
            .bind(endpoint)
            .bind(now())
            .bind(&actor)
            .bind(action)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(detail)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The audit trail of one device, newest first.
    pub async fn device_audit(
        &self,
        endpoint: &str,
        page: AuditPageRequest,
    ) -> Result<AuditPage, StoreError> {
        let (device_id, _) = self.current_state(endpoint).await?;
        self.audit_page(Some(device_id), page).await
    }

    /// The audit trail of the whole fleet, newest first.
    pub async fn fleet_audit(&self, page: AuditPageRequest) -> Result<AuditPage, StoreError> {
        self.audit_page(None, page).await
    }

    async fn audit_page(
        &self,
        device_id: Option<i64>,
        page: AuditPageRequest,
    ) -> Result<AuditPage, StoreError> {
        PageRequest::first(page.limit).validate()?;
        let query = sql::list_audit(device_id, page.before, page.limit);
        let rows = on_backend!(self, b => b.list_audit(query).await)?;
        let mut entries = rows
            .into_iter()
            .map(AuditEntry::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let next_before = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_before,
        })
    }

    async fn existing(
        &self,
        column: ExistingColumn,
        values: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in values.chunks(EXISTS_BATCH) {
            found.extend(on_backend!(self, b => b.existing(column, chunk).await)?);
        }
        Ok(found)
    }

    /// Bulk onboarding from CSV (see `fleet::onboarding` for the format). Every row gets an
    /// outcome in the report; valid rows are stored in batches of 1,000 per transaction, with an
    /// `imported` audit entry each. Keys absent from the file are generated and appear in the
    /// report only.
    pub async fn import_csv<R: Read>(
        &self,
        input: R,
        actor: &Actor,
    ) -> Result<ImportReport, StoreError> {
        let parsed = onboarding::parse_import(input)?;
        let mut report = parsed.report;
        let candidates = parsed.candidates;

        let endpoints: Vec<&str> = candidates
            .iter()
            .map(|c| c.device.endpoint.as_str())
            .collect();
        let taken_endpoints = self.existing(ExistingColumn::Endpoint, &endpoints).await?;
        // Device and bootstrap identities share one namespace: each is checked against both.
        let identities: Vec<&str> = candidates
            .iter()
            .flat_map(|c| {
                c.device
                    .psk_identity
                    .as_deref()
                    .into_iter()
                    .chain(c.bootstrap.as_ref().map(|(identity, _)| identity.as_str()))
            })
            .collect();
        let mut taken_identities = self
            .existing(ExistingColumn::PskIdentity, &identities)
            .await?;
        taken_identities.extend(
            self.existing(ExistingColumn::BootstrapIdentity, &identities)
                .await?,
        );

        let mut prepared = Vec::with_capacity(candidates.len());
        let mut pending = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let rejection = if taken_endpoints.contains(&candidate.device.endpoint) {
                Some(ImportRejection::DuplicateEndpointInDatabase)
            } else if candidate
                .device
                .psk_identity
                .iter()
                .chain(candidate.bootstrap.as_ref().map(|(identity, _)| identity))
                .any(|identity| taken_identities.contains(identity))
            {
                Some(ImportRejection::DuplicateIdentityInDatabase)
            } else {
                None
            };
            if let Some(rejection) = rejection {
                if let Some(row) = report.rows.get_mut(candidate.row) {
                    row.outcome = ImportOutcome::Rejected(rejection);
                }
                continue;
            }
            let (mut device, generated) = prepare_device(&self.server_key, candidate.device)?;
            if let Some((identity, key)) = &candidate.bootstrap {
                let sealed = self
                    .server_key
                    .seal_psk(&bootstrap::bootstrap_aad(&device.endpoint), key)?;
                device.bootstrap = Some((identity.clone(), sealed));
            }
            prepared.push(device);
            pending.push((candidate.row, generated, candidate.bootstrap));
        }

        let actor = actor.to_string();
        let audit = InsertAudit {
            actor: &actor,
            action: AUDIT_IMPORTED,
            at: now(),
        };
        for (devices, meta) in prepared
            .chunks(IMPORT_BATCH)
            .zip(pending.chunks(IMPORT_BATCH))
        {
            match on_backend!(self, b => b.insert_devices(devices, &audit).await) {
                Ok(()) => {
                    for (device, (row, generated, bootstrap)) in devices.iter().zip(meta) {
                        accept(&mut report, *row, device, generated.clone());
                        report.bootstrap_credentials.extend(bootstrap.clone());
                    }
                }
                // Someone created one of these devices since the duplicate check: store the
                // batch row by row to find out which.
                Err(error) if unique_violation(&error).is_some() => {
                    for (device, (row, generated, bootstrap)) in devices.iter().zip(meta) {
                        match on_backend!(self, b => b.insert_devices(std::slice::from_ref(device), &audit).await)
                        {
                            Ok(()) => {
                                accept(&mut report, *row, device, generated.clone());
                                report.bootstrap_credentials.extend(bootstrap.clone());
                            }
                            Err(error) => {
                                let rejection = match unique_violation(&error) {
                                    Some(UniqueField::PskIdentity) => {
                                        ImportRejection::DuplicateIdentityInDatabase
                                    }
                                    Some(_) => ImportRejection::DuplicateEndpointInDatabase,
                                    None => ImportRejection::Storage(error.to_string()),
                                };
                                if let Some(r) = report.rows.get_mut(*row) {
                                    r.outcome = ImportOutcome::Rejected(rejection);
                                }
                            }
                        }
                    }
                }
                Err(error) => {
                    // Earlier batches are committed and reported as such; the rest stays
                    // `NotAttempted`.
                    report.aborted = Some(error.to_string());
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Writes the devices matching `filter` as CSV (no keys), paging through the registry (see
    /// `export.rs`; the HTTP route streams the same chunks). Returns the number of devices written.
    pub async fn export_csv<W: Write + Send>(
        &self,
        filter: &DeviceFilter,
        mut out: W,
    ) -> Result<u64, StoreError> {
        let mut after = None;
        let mut written = 0;
        loop {
            let chunk = self.export_csv_chunk(filter, after).await?;
            out.write_all(&chunk.csv).map_err(csv::Error::from)?;
            written += u64::try_from(chunk.devices).unwrap_or(u64::MAX);
            match chunk.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(written)
    }

    /// The raw stored key column (tests check that keys are sealed at rest).
    #[cfg(test)]
    pub(crate) async fn raw_sealed_key(
        &self,
        endpoint: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(on_backend!(self, b => b.raw_sealed_key(endpoint).await)?)
    }
}

fn accept(
    report: &mut ImportReport,
    row: usize,
    device: &PreparedDevice,
    generated: Option<PskKey>,
) {
    if let Some(r) = report.rows.get_mut(row) {
        r.outcome = ImportOutcome::Accepted {
            psk_identity: device.psk_identity.clone().unwrap_or_default(),
            generated_psk_key: generated,
        };
    }
}
