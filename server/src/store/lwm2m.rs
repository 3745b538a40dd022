//! Persistence of the LwM2M service (migration 0002): the current registration of each endpoint,
//! so a restarted server restores them (OMA LwM2M TS Core 1.1 §6.2.1: a registration lives until
//! its lifetime ends, not until the server restarts); the requests waiting for sleeping
//! queue-mode devices and their results; and the history of registration events (register,
//! reboot, de-register, expiry) for diagnostics' reboot-rhythm rules.
//!
//! One SQL text serves both engines (`$n` placeholders, `ON CONFLICT … DO UPDATE`); the
//! `on_pool!` macro runs it on whichever pool is in use. The service's writes arrive in batches
//! ([`Lwm2mWrite`], [`Store::apply_lwm2m_writes`]): one transaction per batch, registrations of
//! distinct endpoints as multi-row statements — measured, a registration storm was dominated by
//! per-statement commits and the wake-ups of sqlx's SQLite worker thread.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};

use super::rows;
use super::sql;
use super::{Backend, BackendKind, StateChange, Store, StoreError};
use crate::fleet::lifecycle::{self, Actor, LifecycleState, SystemComponent};
use crate::fleet::registry::{Connectivity, ValidationError};

/// Longest operation JSON or result JSON kept (a queued Write carries its content).
pub const MAX_REQUEST_JSON: usize = 1 << 20;

/// Which socket a registration came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain CoAP over UDP (NoSec).
    Coap,
    /// CoAP over DTLS 1.2 (PSK).
    Coaps,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Coap => "coap",
            Transport::Coaps => "coaps",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Transport, StoreError> {
        match text {
            "coap" => Ok(Transport::Coap),
            "coaps" => Ok(Transport::Coaps),
            other => Err(StoreError::Corrupt(format!("unknown transport {other:?}"))),
        }
    }
}

/// A registration as persisted: the engine's `Registration` with wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    pub endpoint: String,
    /// The `{id}` of the client's `/rd/{id}`.
    pub registration_id: String,
    pub transport: Transport,
    /// `1.0`, `1.1`, `1.2`.
    pub lwm2m_version: String,
    /// The binding in its 1.0 form, queue mode included (`U`, `UQ`, …).
    pub binding: String,
    pub lifetime: u32,
    pub sms_number: Option<String>,
    /// The registered objects in CoRE link format.
    pub objects: String,
    /// The peer's address (`ip:port`) when it last registered or updated.
    pub address: String,
    /// The PSK identity of its DTLS session; None on NoSec.
    pub psk_identity: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_update: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct RegistrationRow {
    endpoint: String,
    registration_id: String,
    transport: String,
    lwm2m_version: String,
    binding: String,
    lifetime: i64,
    sms_number: Option<String>,
    objects: String,
    address: String,
    psk_identity: Option<String>,
    registered_at: DateTime<Utc>,
    last_update: DateTime<Utc>,
}

impl TryFrom<RegistrationRow> for StoredRegistration {
    type Error = StoreError;
    fn try_from(row: RegistrationRow) -> Result<StoredRegistration, StoreError> {
        Ok(StoredRegistration {
            transport: row.transport.parse()?,
            lifetime: u32::try_from(row.lifetime).map_err(|_| {
                StoreError::Corrupt(format!(
                    "registration of {:?}: lifetime {} out of range",
                    row.endpoint, row.lifetime
                ))
            })?,
            endpoint: row.endpoint,
            registration_id: row.registration_id,
            lwm2m_version: row.lwm2m_version,
            binding: row.binding,
            sms_number: row.sms_number,
            objects: row.objects,
            address: row.address,
            psk_identity: row.psk_identity,
            registered_at: row.registered_at,
            last_update: row.last_update,
        })
    }
}

/// Where a queued request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for the device to wake up (or on the wire).
    Pending,
    /// The device answered with success.
    Completed,
    /// It failed (error code, timeout, the registration ended).
    Failed,
    /// It waited past its expiry.
    Expired,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Completed => "completed",
            RequestStatus::Failed => "failed",
            RequestStatus::Expired => "expired",
        }
    }
}

impl FromStr for RequestStatus {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<RequestStatus, StoreError> {
        Ok(match text {
            "pending" => RequestStatus::Pending,
            "completed" => RequestStatus::Completed,
            "failed" => RequestStatus::Failed,
            "expired" => RequestStatus::Expired,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown request status {other:?}"
                )));
            }
        })
    }
}

/// A request to a queue-mode device, persisted while it waits and kept with its result after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    /// The service's operation ID (16 hex digits).
    pub id: String,
    pub endpoint: String,
    /// The operation as JSON (`lwm2m::StoredOperation`).
    pub operation: String,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The outcome or error as JSON, once finished.
    pub result: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct QueuedRequestRow {
    id: String,
    endpoint: String,
    operation: String,
    status: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    result: Option<String>,
}

impl TryFrom<QueuedRequestRow> for QueuedRequest {
    type Error = StoreError;
    fn try_from(row: QueuedRequestRow) -> Result<QueuedRequest, StoreError> {
        Ok(QueuedRequest {
            status: row.status.parse()?,
            id: row.id,
            endpoint: row.endpoint,
            operation: row.operation,
            created_at: row.created_at,
            expires_at: row.expires_at,
            finished_at: row.finished_at,
            result: row.result,
        })
    }
}

/// An established observation (migration 0008): what a restarted server needs to recognise the
/// device's next notification and decode it under the same number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObservation {
    pub endpoint: String,
    /// The engine's observation number (the API's handle).
    pub observation: u64,
    /// The registration it was made in.
    pub registration_id: String,
    /// The CoAP token, lowercase hex.
    pub token: String,
    /// The observed paths in text form (`/3/0/9`).
    pub paths: Vec<String>,
    /// Observe-Composite rather than Observe.
    pub composite: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct ObservationRow {
    endpoint: String,
    observation: i64,
    registration_id: String,
    token: String,
    paths: String,
    composite: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<ObservationRow> for StoredObservation {
    type Error = StoreError;
    fn try_from(row: ObservationRow) -> Result<StoredObservation, StoreError> {
        let observation = u64::try_from(row.observation)
            .map_err(|_| StoreError::Corrupt(format!("observation number {}", row.observation)))?;
        Ok(StoredObservation {
            endpoint: row.endpoint,
            observation,
            registration_id: row.registration_id,
            token: row.token,
            paths: row.paths.split_whitespace().map(str::to_owned).collect(),
            composite: row.composite,
            created_at: row.created_at,
        })
    }
}

/// Only while the registration it was made in is still the endpoint's: an Observe answered just
/// before a De-register or a reboot is not kept (and the statement does not fail on it).
const INSERT_OBSERVATION: &str = "INSERT INTO lwm2m_observations (endpoint, observation, \
    registration_id, token, paths, composite, created_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM lwm2m_registrations r \
    WHERE r.endpoint = $1 AND r.registration_id = $3) \
    ON CONFLICT (endpoint, observation) DO UPDATE SET registration_id = excluded.registration_id, \
    token = excluded.token, paths = excluded.paths, composite = excluded.composite, \
    created_at = excluded.created_at";

const DELETE_OBSERVATION: &str =
    "DELETE FROM lwm2m_observations WHERE endpoint = $1 AND observation = $2";

/// The observation-number high-water mark moves forward only (`$1`: a number given, plus one).
const RAISE_NEXT_OBSERVATION: &str = "UPDATE lwm2m_counters SET value = $1 \
    WHERE name = 'next_observation' AND value < $1";

const SELECT_NEXT_OBSERVATION: &str =
    "SELECT value FROM lwm2m_counters WHERE name = 'next_observation'";

const SELECT_OBSERVATIONS: &str = "SELECT endpoint, observation, registration_id, token, paths, \
    composite, created_at FROM lwm2m_observations ORDER BY endpoint, observation";

/// What happened to a registration, in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationEventKind {
    /// A Register with no registration before it.
    Registered,
    /// A Register while still registered: the device restarted.
    Reboot,
    Deregistered,
    /// No Update within lifetime + grace.
    Expired,
    /// The server removed it (decommissioned, moved to the other socket, NoSec switched off).
    Removed,
}

impl RegistrationEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationEventKind::Registered => "registered",
            RegistrationEventKind::Reboot => "reboot",
            RegistrationEventKind::Deregistered => "deregistered",
            RegistrationEventKind::Expired => "expired",
            RegistrationEventKind::Removed => "removed",
        }
    }
}

impl FromStr for RegistrationEventKind {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<RegistrationEventKind, StoreError> {
        Ok(match text {
            "registered" => RegistrationEventKind::Registered,
            "reboot" => RegistrationEventKind::Reboot,
            "deregistered" => RegistrationEventKind::Deregistered,
            "expired" => RegistrationEventKind::Expired,
            "removed" => RegistrationEventKind::Removed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown registration event {other:?}"
                )));
            }
        })
    }
}

/// One entry of the registration history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEvent {
    pub id: i64,
    pub endpoint: String,
    pub at: DateTime<Utc>,
    pub kind: RegistrationEventKind,
    pub registration_id: String,
    pub address: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct RegistrationEventRow {
    id: i64,
    endpoint: String,
    at: DateTime<Utc>,
    kind: String,
    registration_id: String,
    address: Option<String>,
}

const REGISTRATION_COLUMNS: &str = "endpoint, registration_id, transport, lwm2m_version, binding, \
    lifetime, sms_number, objects, address, psk_identity, registered_at, last_update";

/// The registration upsert's text around its `VALUES` rows (macros, so that `concat!` can build
/// the one-row constant; [`values_rows`] builds the many-row form of a batch).
macro_rules! upsert_registration_head {
    () => {
        "INSERT INTO lwm2m_registrations (endpoint, registration_id, transport, lwm2m_version, \
        binding, lifetime, sms_number, objects, address, psk_identity, registered_at, \
        last_update) VALUES "
    };
}
macro_rules! upsert_registration_tail {
    () => {
        " ON CONFLICT (endpoint) DO UPDATE SET registration_id = excluded.registration_id, \
        transport = excluded.transport, lwm2m_version = excluded.lwm2m_version, \
        binding = excluded.binding, lifetime = excluded.lifetime, sms_number = excluded.sms_number, \
        objects = excluded.objects, address = excluded.address, psk_identity = excluded.psk_identity, \
        registered_at = excluded.registered_at, last_update = excluded.last_update"
    };
}
const UPSERT_REGISTRATION_COLUMNS: usize = 12;
const UPSERT_REGISTRATION: &str = concat!(
    upsert_registration_head!(),
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    upsert_registration_tail!()
);

const DELETE_REGISTRATION: &str =
    "DELETE FROM lwm2m_registrations WHERE endpoint = $1 AND registration_id = $2";

const SELECT_REGISTRATIONS: &str = "SELECT endpoint, registration_id, transport, lwm2m_version, \
    binding, lifetime, sms_number, objects, address, psk_identity, registered_at, last_update \
    FROM lwm2m_registrations ORDER BY endpoint";

const SELECT_REGISTRATION: &str = "SELECT endpoint, registration_id, transport, lwm2m_version, \
    binding, lifetime, sms_number, objects, address, psk_identity, registered_at, last_update \
    FROM lwm2m_registrations WHERE endpoint = $1";

macro_rules! insert_event_head {
    () => {
        "INSERT INTO lwm2m_registration_events (endpoint, at, kind, registration_id, address) \
        VALUES "
    };
}
const INSERT_EVENT_COLUMNS: usize = 5;
const INSERT_EVENT: &str = concat!(insert_event_head!(), "($1, $2, $3, $4, $5)");

/// Online for a run of registrations and updates, each last seen at the `last_update` of its
/// registration row just upserted in the same transaction (so one statement serves the run
/// whatever their times); `$1` connectivity, `$2` now, then the endpoints. It also answers which
/// devices exist and their lifecycle states (one statement instead of a read and a write per
/// device; on PostgreSQL it also locks the rows, so the activation that may follow cannot race an
/// operator's change). The endpoint list and `)` follow.
const SET_ONLINE_MANY_HEAD: &str = "UPDATE devices SET connectivity = $1, last_seen = COALESCE(\
    (SELECT r.last_update FROM lwm2m_registrations r WHERE r.endpoint = devices.endpoint), \
    last_seen), updated_at = $2 WHERE endpoint IN (";
const SET_ONLINE_MANY_TAIL: &str = ") RETURNING id, endpoint, state";

/// First registrations → active, guarded by the state the online update read (`$1` active, `$2`
/// now, `$3` the state they were in, then the device IDs and `)`); the IDs it returns are the
/// ones that changed.
const ACTIVATE_MANY_HEAD: &str =
    "UPDATE devices SET state = $1, updated_at = $2 WHERE state = $3 AND id IN (";
const ACTIVATE_MANY_TAIL: &str = ") RETURNING id";

/// A row of [`SET_ONLINE_MANY_HEAD`]'s answer.
#[derive(Debug, sqlx::FromRow)]
struct OnlineRow {
    id: i64,
    endpoint: String,
    state: String,
}

/// Reboots of a run in the devices' audit trail (see [`INSERT_REBOOT_AUDIT`]): `(endpoint, at)`
/// rows, then the actor and the reason ([`reboot_audit_many`]); devices not in the registry are
/// skipped.
macro_rules! reboot_audit_many_head {
    () => {
        "WITH v (endpoint, at) AS (VALUES "
    };
}
fn reboot_audit_many(rows: usize) -> String {
    let mut text = String::from(reboot_audit_many_head!());
    text.push_str(&values_rows(rows, 2));
    text.push_str(&format!(
        ") INSERT INTO device_audit (device_id, endpoint, at, actor, action, from_state, \
         to_state, reason) SELECT d.id, d.endpoint, v.at, ${}, 'reboot', d.state, d.state, ${} \
         FROM v JOIN devices d ON d.endpoint = v.endpoint",
        rows * 2 + 1,
        rows * 2 + 2
    ));
    text
}

/// Firmware versions of a run, each written only when it differs from the registry's:
/// `(endpoint, version)` rows, then now ([`firmware_many`]). Unknown endpoints match nothing.
macro_rules! firmware_many_head {
    () => {
        "WITH v (endpoint, version) AS (VALUES "
    };
}
fn firmware_many(rows: usize) -> String {
    let mut text = String::from(firmware_many_head!());
    text.push_str(&values_rows(rows, 2));
    text.push_str(&format!(
        ") UPDATE devices SET firmware_version = v.version, updated_at = ${} FROM v \
         WHERE devices.endpoint = v.endpoint \
         AND (devices.firmware_version IS NULL OR devices.firmware_version <> v.version)",
        rows * 2 + 1
    ));
    text
}

/// The text of a statement built for a batch, for `engine`: on SQLite every `$n` becomes an
/// anonymous `?`. SQLite looks each `$n` up in a list of the names seen so far while it parses
/// the statement, and again for every bound value (sqlx asks each parameter's name): quadratic
/// in the number of parameters, measured as 7% of the server's CPU in a registration storm
/// (batches of up to 3,072 values); anonymous ones are numbered as they come. Only for texts
/// whose `$n` appear once each, in increasing order (checked in debug builds and by tests).
pub(crate) fn for_engine(engine: BackendKind, text: String) -> String {
    match engine {
        BackendKind::Postgres => text,
        BackendKind::Sqlite => {
            let mut out = String::with_capacity(text.len());
            let mut chars = text.chars().peekable();
            let mut expected = 1usize;
            while let Some(c) = chars.next() {
                if c != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push(c);
                    continue;
                }
                let mut number = 0usize;
                while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                    number = number * 10 + digit as usize;
                    chars.next();
                }
                debug_assert_eq!(number, expected, "placeholders out of order in {text}");
                expected += 1;
                out.push('?');
            }
            out
        }
    }
}

/// `$first, $first+1, …` (`count` of them), for an `IN (…)` list.
pub(crate) fn placeholder_list(first: usize, count: usize) -> String {
    let mut text = String::with_capacity(count * 5);
    for n in first..first + count {
        if n > first {
            text.push_str(", ");
        }
        text.push('$');
        text.push_str(&n.to_string());
    }
    text
}

/// `($1, …, $w), ($w+1, …), …` for `rows` rows of `width` values.
fn values_rows(rows: usize, width: usize) -> String {
    let mut text = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..width {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('$');
            text.push_str(&(row * width + column + 1).to_string());
        }
        text.push(')');
    }
    text
}

const SELECT_EVENTS: &str = "SELECT id, endpoint, at, kind, registration_id, address \
    FROM lwm2m_registration_events WHERE endpoint = $1 ORDER BY id DESC LIMIT $2";

/// A reboot in the device's audit trail: not a lifecycle transition (from = to = the current
/// state), but what an operator looking at the device's history needs to see.
const INSERT_REBOOT_AUDIT: &str = "INSERT INTO device_audit (device_id, endpoint, at, actor, \
    action, from_state, to_state, reason) SELECT id, endpoint, $1, $2, 'reboot', state, state, $3 \
    FROM devices WHERE endpoint = $4";

const REBOOT_REASON: &str = "registered again without de-registering (device restart)";

const QUEUED_COLUMNS: &str =
    "id, endpoint, operation, status, created_at, expires_at, finished_at, result";

const INSERT_QUEUED: &str = "INSERT INTO lwm2m_queued_requests (id, endpoint, operation, status, \
    created_at, expires_at) VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT (id) DO NOTHING";

const FINISH_QUEUED: &str = "UPDATE lwm2m_queued_requests SET status = $1, finished_at = $2, \
    result = $3 WHERE id = $4 AND status = 'pending'";

const SELECT_PENDING: &str = "SELECT id, endpoint, operation, status, created_at, expires_at, \
    finished_at, result FROM lwm2m_queued_requests WHERE status = 'pending' \
    ORDER BY created_at, id";

const SELECT_QUEUED_ONE: &str = "SELECT id, endpoint, operation, status, created_at, expires_at, \
    finished_at, result FROM lwm2m_queued_requests WHERE id = $1";

const SELECT_QUEUED_FOR: &str = "SELECT id, endpoint, operation, status, created_at, expires_at, \
    finished_at, result FROM lwm2m_queued_requests WHERE endpoint = $1 \
    ORDER BY created_at DESC, id DESC LIMIT $2";

const PRUNE_QUEUED: &str =
    "DELETE FROM lwm2m_queued_requests WHERE status <> 'pending' AND finished_at < $1";

// The column lists above are spelled out in each statement so every text is a `&'static str`;
// these keep them in one place for review.
const _: (&str, &str) = (REGISTRATION_COLUMNS, QUEUED_COLUMNS);

fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn check_json_len(what: &str, text: &str) -> Result<(), StoreError> {
    if text.len() > MAX_REQUEST_JSON {
        return Err(StoreError::Invalid(
            crate::fleet::registry::ValidationError::TooLong {
                field: if what == "operation" {
                    "operation"
                } else {
                    "result"
                },
                max: MAX_REQUEST_JSON,
            },
        ));
    }
    Ok(())
}

impl Store {
    /// Saves `endpoint`'s current registration (replacing the one before: one per endpoint).
    pub async fn save_lwm2m_registration(
        &self,
        registration: &StoredRegistration,
    ) -> Result<(), StoreError> {
        let r = registration;
        on_pool!(self, pool => sqlx::query(UPSERT_REGISTRATION)
            .bind(&r.endpoint)
            .bind(&r.registration_id)
            .bind(r.transport.as_str())
            .bind(&r.lwm2m_version)
            .bind(&r.binding)
            .bind(i64::from(r.lifetime))
            .bind(&r.sms_number)
            .bind(&r.objects)
            .bind(&r.address)
            .bind(&r.psk_identity)
            .bind(micros(r.registered_at))
            .bind(micros(r.last_update))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Deletes `endpoint`'s registration if it is still `registration_id` (a newer one, e.g. after
    /// a reboot, is kept). Returns whether a row was deleted.
    pub async fn delete_lwm2m_registration(
        &self,
        endpoint: &str,
        registration_id: &str,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(DELETE_REGISTRATION)
            .bind(endpoint)
            .bind(registration_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    /// Every persisted registration, in endpoint order (read once at start).
    pub async fn lwm2m_registrations(&self) -> Result<Vec<StoredRegistration>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RegistrationRow>(SELECT_REGISTRATIONS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredRegistration::try_from).collect()
    }

    /// `endpoint`'s persisted registration.
    pub async fn lwm2m_registration(
        &self,
        endpoint: &str,
    ) -> Result<Option<StoredRegistration>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, RegistrationRow>(SELECT_REGISTRATION)
            .bind(endpoint)
            .fetch_optional(pool)
            .await)?;
        row.map(StoredRegistration::try_from).transpose()
    }

    /// Appends to the registration history.
    pub async fn record_registration_event(
        &self,
        endpoint: &str,
        at: DateTime<Utc>,
        kind: RegistrationEventKind,
        registration_id: &str,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(INSERT_EVENT)
            .bind(endpoint)
            .bind(micros(at))
            .bind(kind.as_str())
            .bind(registration_id)
            .bind(address)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// The newest `limit` history entries of `endpoint`, newest first.
    pub async fn registration_events(
        &self,
        endpoint: &str,
        limit: u32,
    ) -> Result<Vec<RegistrationEvent>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RegistrationEventRow>(SELECT_EVENTS)
            .bind(endpoint)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|row| {
                Ok(RegistrationEvent {
                    kind: row.kind.parse()?,
                    id: row.id,
                    endpoint: row.endpoint,
                    at: row.at,
                    registration_id: row.registration_id,
                    address: row.address,
                })
            })
            .collect()
    }

    /// Records a reboot (a Register while registered) in the device's audit trail, by the
    /// registration component. Unknown endpoints are ignored.
    pub async fn audit_reboot(&self, endpoint: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let actor = Actor::system(SystemComponent::Registration).to_string();
        on_pool!(self, pool => sqlx::query(INSERT_REBOOT_AUDIT)
            .bind(micros(at))
            .bind(&actor)
            .bind(REBOOT_REASON)
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Persists a request waiting for a sleeping device (idempotent on `id`).
    pub async fn insert_queued_request(
        &self,
        id: &str,
        endpoint: &str,
        operation_json: &str,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        check_json_len("operation", operation_json)?;
        on_pool!(self, pool => sqlx::query(INSERT_QUEUED)
            .bind(id)
            .bind(endpoint)
            .bind(operation_json)
            .bind(micros(created_at))
            .bind(micros(expires_at))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Records how a pending request ended. Returns false if it was not pending (unknown, or
    /// finished already).
    pub async fn finish_queued_request(
        &self,
        id: &str,
        status: RequestStatus,
        at: DateTime<Utc>,
        result_json: Option<&str>,
    ) -> Result<bool, StoreError> {
        if let Some(json) = result_json {
            check_json_len("result", json)?;
        }
        let affected = on_pool!(self, pool => sqlx::query(FINISH_QUEUED)
            .bind(status.as_str())
            .bind(micros(at))
            .bind(result_json)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    /// Every pending request, oldest first (re-submitted at start).
    pub async fn pending_queued_requests(&self) -> Result<Vec<QueuedRequest>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, QueuedRequestRow>(SELECT_PENDING)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(QueuedRequest::try_from).collect()
    }

    /// One queued request by ID.
    pub async fn queued_request(&self, id: &str) -> Result<Option<QueuedRequest>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, QueuedRequestRow>(SELECT_QUEUED_ONE)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(QueuedRequest::try_from).transpose()
    }

    /// Every persisted observation, by endpoint and number (read once at start).
    pub async fn lwm2m_observations(&self) -> Result<Vec<StoredObservation>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ObservationRow>(SELECT_OBSERVATIONS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredObservation::try_from).collect()
    }

    /// The first observation number never given out (every established observation's number,
    /// plus one, is recorded with it, including those that have ended since): the engines
    /// number new observations from there after a restart.
    pub async fn next_observation_number(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(SELECT_NEXT_OBSERVATION)
            .fetch_optional(pool)
            .await)?;
        let value = value.ok_or_else(|| {
            StoreError::Corrupt("lwm2m_counters has no next_observation row".to_owned())
        })?;
        u64::try_from(value).map_err(|_| {
            StoreError::Corrupt(format!("next observation number {value} is negative"))
        })
    }

    /// The newest `limit` queued requests of `endpoint` (any status), newest first.
    pub async fn queued_requests_for(
        &self,
        endpoint: &str,
        limit: u32,
    ) -> Result<Vec<QueuedRequest>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, QueuedRequestRow>(SELECT_QUEUED_FOR)
            .bind(endpoint)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(QueuedRequest::try_from).collect()
    }

    /// Deletes finished requests older than `before`; returns how many.
    pub async fn prune_queued_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(PRUNE_QUEUED)
            .bind(micros(before))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected)
    }
}

/// One write of the LwM2M persistence worker (`lwm2m::persist`), applied with others in one
/// transaction by [`Store::apply_lwm2m_writes`]. Each variant is one job's writes, so a job is
/// all-or-nothing even when it is retried alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lwm2mWrite {
    /// A Register was accepted: save the registration, append to the history (and the audit
    /// trail on a reboot), first registration → active, connectivity online.
    Registered {
        registration: StoredRegistration,
        reboot: bool,
    },
    /// An Update: save the registration, online, last seen at its last update.
    Updated { registration: StoredRegistration },
    /// The registration ended: delete it (if still this one), history, and offline unless
    /// `mark_offline` is false. A de-registering device was heard at `at`; others were not.
    Ended {
        endpoint: String,
        registration_id: String,
        kind: RegistrationEventKind,
        at: DateTime<Utc>,
        mark_offline: bool,
    },
    /// Connectivity alone (a queue-mode device fell asleep).
    Connectivity {
        endpoint: String,
        connectivity: Connectivity,
    },
    /// A request waits for a sleeping device (idempotent on `id`).
    Queue {
        id: String,
        endpoint: String,
        operation_json: String,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// A stored request ended (ignored when it is not pending).
    Finish {
        id: String,
        status: RequestStatus,
        at: DateTime<Utc>,
        result_json: String,
    },
    /// The firmware version the device reported (/3/0/3), written only when it differs from the
    /// registry's; an endpoint no longer in the registry is ignored (deleted since its Register).
    Firmware { endpoint: String, version: String },
    /// An observation was established (replaces one with the same number; ignored when its
    /// registration is no longer the endpoint's).
    Observed { observation: StoredObservation },
    /// An observation ended (cancelled, ended by the device, or with its registration).
    ObservationEnded { endpoint: String, observation: u64 },
}

impl Lwm2mWrite {
    /// What the write is about, for logs: the endpoint, or the request ID of a `Finish`.
    pub fn subject(&self) -> &str {
        match self {
            Lwm2mWrite::Registered { registration, .. } | Lwm2mWrite::Updated { registration } => {
                &registration.endpoint
            }
            Lwm2mWrite::Ended { endpoint, .. }
            | Lwm2mWrite::Connectivity { endpoint, .. }
            | Lwm2mWrite::Queue { endpoint, .. }
            | Lwm2mWrite::Firmware { endpoint, .. }
            | Lwm2mWrite::ObservationEnded { endpoint, .. } => endpoint,
            Lwm2mWrite::Observed { observation } => &observation.endpoint,
            Lwm2mWrite::Finish { id, .. } => id,
        }
    }

    /// Checks that need no database: a refused write is left out of the transaction.
    fn check(&self) -> Result<(), StoreError> {
        match self {
            Lwm2mWrite::Queue { operation_json, .. } => check_json_len("operation", operation_json),
            Lwm2mWrite::Finish { result_json, .. } => check_json_len("result", result_json),
            Lwm2mWrite::Firmware { version, .. } => {
                Ok(crate::fleet::registry::validate_firmware_version(version)?)
            }
            Lwm2mWrite::Observed { observation: o } => {
                if o.token.len() > 16 {
                    return Err(ValidationError::TooLong {
                        field: "observation token",
                        max: 16,
                    }
                    .into());
                }
                if i64::try_from(o.observation).is_err() {
                    return Err(StoreError::Corrupt(format!(
                        "observation number {} of {:?} out of range",
                        o.observation, o.endpoint
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Binds the twelve columns of [`UPSERT_REGISTRATION`] (a macro: the query type differs per
/// engine).
macro_rules! bind_registration {
    ($query:expr, $r:expr) => {
        $query
            .bind(&$r.endpoint)
            .bind(&$r.registration_id)
            .bind($r.transport.as_str())
            .bind(&$r.lwm2m_version)
            .bind(&$r.binding)
            .bind(i64::from($r.lifetime))
            .bind(&$r.sms_number)
            .bind(&$r.objects)
            .bind(&$r.address)
            .bind(&$r.psk_identity)
            .bind(micros($r.registered_at))
            .bind(micros($r.last_update))
    };
}

/// Connectivity inside a batch: `Ok(false)` when the device is not in the registry (the job
/// reports it; the rest of the batch goes on).
macro_rules! tx_connectivity {
    ($tx:expr, $endpoint:expr, $connectivity:expr, $last_seen:expr, $now:expr) => {
        sqlx::query(sql::UPDATE_CONNECTIVITY)
            .bind($connectivity.as_str())
            .bind($last_seen.map(micros))
            .bind($now)
            .bind($endpoint)
            .execute(&mut *$tx)
            .await
            .map(|done| done.rows_affected() > 0)
    };
}

/// A first registration's device to activate: its ID, the state it is in, the transition.
type Activation = (i64, LifecycleState, lifecycle::TransitionAction);

/// What a first registration found in the online update's answer: `Some` when the device is to
/// become active, `None` when its state stays as it is.
fn activation_of(endpoint: &str, row: &OnlineRow) -> Result<Option<Activation>, StoreError> {
    let from = rows::parse_state(endpoint, &row.state)?;
    if !matches!(
        from,
        LifecycleState::Registered | LifecycleState::Provisioned
    ) {
        return Ok(None);
    }
    let action = lifecycle::validate_transition(from, LifecycleState::Active)?;
    Ok(Some((row.id, from, action)))
}

impl Store {
    /// Applies `writes` in order in ONE transaction (one commit: one fsync on SQLite instead of
    /// one per statement), the persistence worker's batch. `Err` (a database error) means
    /// nothing was written: the caller retries the writes one by one so that one bad row does
    /// not lose the others. `Ok` has one entry per write: `Err` for a write that was refused
    /// without touching the database (too long) or that found its device gone from the registry
    /// (the rest of the batch is kept, as separate statements always did).
    pub async fn apply_lwm2m_writes(
        &self,
        writes: &[Lwm2mWrite],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let engine = self.backend_kind();
        let begin = match engine {
            BackendKind::Sqlite => "BEGIN IMMEDIATE",
            BackendKind::Postgres => "BEGIN",
        };
        let now = super::now();
        let mut outcomes = Vec::with_capacity(writes.len());
        // Published once committed, as `Store::transition` does.
        let mut changes = Vec::new();
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let mut next = 0;
            while next < writes.len() {
                // A run of registrations and updates of distinct endpoints: one multi-row upsert
                // and one multi-row history insert serve all of them (order only matters per
                // endpoint; PostgreSQL refuses an upsert that meets the same key twice).
                let mut endpoints = HashSet::new();
                let mut end = next;
                while let Some(Lwm2mWrite::Registered { registration, .. } | Lwm2mWrite::Updated { registration }) = writes.get(end) {
                    if !endpoints.insert(registration.endpoint.as_str()) {
                        break;
                    }
                    end += 1;
                }
                let run = writes.get(next..end).unwrap_or_default();
                if !run.is_empty() {
                    next = end;
                    let mut upsert = String::from(upsert_registration_head!());
                    upsert.push_str(&values_rows(run.len(), UPSERT_REGISTRATION_COLUMNS));
                    upsert.push_str(upsert_registration_tail!());
                    // Not kept in the connection's statement cache: up to MAX_BATCH texts, large
                    // ones, would evict the hot single-row statements and grow memory.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(for_engine(engine, upsert))).persistent(false);
                    for write in run {
                        if let Lwm2mWrite::Registered { registration: r, .. } | Lwm2mWrite::Updated { registration: r } = write {
                            query = bind_registration!(query, r);
                        }
                    }
                    query.execute(&mut *tx).await?;
                    let events: Vec<_> = run
                        .iter()
                        .filter_map(|write| match write {
                            Lwm2mWrite::Registered { registration, reboot: true } => {
                                Some((registration, RegistrationEventKind::Reboot))
                            }
                            Lwm2mWrite::Registered { registration, reboot: false } => {
                                Some((registration, RegistrationEventKind::Registered))
                            }
                            _ => None,
                        })
                        .collect();
                    if !events.is_empty() {
                        let mut insert = String::from(insert_event_head!());
                        insert.push_str(&values_rows(events.len(), INSERT_EVENT_COLUMNS));
                        let mut query =
                            sqlx::query(sqlx::AssertSqlSafe(for_engine(engine, insert))).persistent(false);
                        for (r, kind) in &events {
                            query = query
                                .bind(&r.endpoint)
                                .bind(micros(r.last_update))
                                .bind(kind.as_str())
                                .bind(&r.registration_id)
                                .bind(&r.address);
                        }
                        query.execute(&mut *tx).await?;
                    }
                    let actor = Actor::system(SystemComponent::Registration).to_string();
                    // Reboots in the audit trail (from = to = the state before this batch's
                    // activation, as a write at a time recorded it).
                    let reboots: Vec<_> = run
                        .iter()
                        .filter_map(|write| match write {
                            Lwm2mWrite::Registered { registration, reboot: true } => Some(registration),
                            _ => None,
                        })
                        .collect();
                    if !reboots.is_empty() {
                        let insert = for_engine(engine, reboot_audit_many(reboots.len()));
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert)).persistent(false);
                        for r in &reboots {
                            query = query.bind(&r.endpoint).bind(micros(r.last_update));
                        }
                        query.bind(&actor).bind(REBOOT_REASON).execute(&mut *tx).await?;
                    }
                    // Online for the whole run; which devices exist, in which state.
                    let mut online = String::from(SET_ONLINE_MANY_HEAD);
                    online.push_str(&placeholder_list(3, run.len()));
                    online.push_str(SET_ONLINE_MANY_TAIL);
                    let mut query = sqlx::query_as::<_, OnlineRow>(sqlx::AssertSqlSafe(for_engine(engine, online)))
                        .persistent(false)
                        .bind(Connectivity::Online.as_str())
                        .bind(now);
                    for write in run {
                        query = query.bind(write.subject());
                    }
                    let found: HashMap<String, OnlineRow> = query
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|row| (row.endpoint.clone(), row))
                        .collect();
                    // Per write: its outcome so far, and for a first registration the device to
                    // activate (fleet::lifecycle).
                    let mut plan: Vec<Result<Option<Activation>, StoreError>> =
                        Vec::with_capacity(run.len());
                    for write in run {
                        let Some(row) = found.get(write.subject()) else {
                            plan.push(Err(StoreError::NotFound(write.subject().to_owned())));
                            continue;
                        };
                        let Lwm2mWrite::Registered { .. } = write else {
                            plan.push(Ok(None));
                            continue;
                        };
                        plan.push(activation_of(write.subject(), row));
                    }
                    // Guarded like `Store::transition` (state = the one read, per from-state);
                    // the rows are ours since the UPDATE above (SQLite's `BEGIN IMMEDIATE` holds
                    // the write lock, PostgreSQL the row locks).
                    let mut activated = HashSet::new();
                    for from in [LifecycleState::Registered, LifecycleState::Provisioned] {
                        let ids: Vec<i64> = plan
                            .iter()
                            .filter_map(|p| match p {
                                Ok(Some((id, f, _))) if *f == from => Some(*id),
                                _ => None,
                            })
                            .collect();
                        if ids.is_empty() {
                            continue;
                        }
                        let mut update = String::from(ACTIVATE_MANY_HEAD);
                        update.push_str(&placeholder_list(4, ids.len()));
                        update.push_str(ACTIVATE_MANY_TAIL);
                        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(for_engine(engine, update)))
                            .persistent(false)
                            .bind(LifecycleState::Active.as_str())
                            .bind(now)
                            .bind(from.as_str());
                        for id in &ids {
                            query = query.bind(*id);
                        }
                        activated.extend(query.fetch_all(&mut *tx).await?);
                    }
                    if engine == BackendKind::Postgres && !activated.is_empty() {
                        // Other nodes forget their lifecycle caches at commit.
                        sqlx::query(super::sql::NOTIFY_LIFECYCLE)
                            .bind(super::lifecycle_follow::CHANNEL)
                            .bind("")
                            .execute(&mut *tx)
                            .await?;
                    }
                    let mut audits = Vec::new();
                    for (write, planned) in run.iter().zip(plan) {
                        let outcome = match planned {
                            Err(error) => Err(error),
                            Ok(None) => Ok(()),
                            Ok(Some((id, from, action))) if activated.contains(&id) => {
                                audits.push((id, write.subject(), from, action));
                                changes.push(StateChange {
                                    endpoint: write.subject().to_owned(),
                                    from,
                                    to: LifecycleState::Active,
                                    actor: actor.clone(),
                                    reason: None,
                                    at: now,
                                });
                                Ok(())
                            }
                            Ok(Some(_)) => Err(StoreError::Conflict(write.subject().to_owned())),
                        };
                        outcomes.push(outcome);
                    }
                    if !audits.is_empty() {
                        let mut insert = String::from(sql::INSERT_AUDIT_HEAD);
                        insert.push_str("VALUES ");
                        insert.push_str(&values_rows(audits.len(), sql::INSERT_AUDIT_PARAMS));
                        let mut query =
                            sqlx::query(sqlx::AssertSqlSafe(for_engine(engine, insert))).persistent(false);
                        for (id, endpoint, from, action) in &audits {
                            query = query
                                .bind(*id)
                                .bind(*endpoint)
                                .bind(now)
                                .bind(&actor)
                                .bind(action.as_str())
                                .bind(from.as_str())
                                .bind(LifecycleState::Active.as_str())
                                .bind(None::<&str>);
                        }
                        query.execute(&mut *tx).await?;
                    }
                    continue;
                }
                // A run of firmware versions: one statement (the last version of an endpoint
                // wins; PostgreSQL's UPDATE … FROM must meet each row once).
                let mut end = next;
                while let Some(Lwm2mWrite::Firmware { .. }) = writes.get(end) {
                    end += 1;
                }
                let run = writes.get(next..end).unwrap_or_default();
                if !run.is_empty() {
                    next = end;
                    let mut versions: Vec<(&str, &str)> = Vec::new();
                    let mut seen: HashMap<&str, usize> = HashMap::new();
                    for write in run {
                        let Lwm2mWrite::Firmware { endpoint, version } = write else {
                            continue;
                        };
                        if let Err(refused) = write.check() {
                            outcomes.push(Err(refused));
                            continue;
                        }
                        outcomes.push(Ok(()));
                        match seen.get(endpoint.as_str()) {
                            Some(&at) => {
                                if let Some(slot) = versions.get_mut(at) {
                                    slot.1 = version;
                                }
                            }
                            None => {
                                seen.insert(endpoint, versions.len());
                                versions.push((endpoint, version));
                            }
                        }
                    }
                    if !versions.is_empty() {
                        let update = for_engine(engine, firmware_many(versions.len()));
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(update)).persistent(false);
                        for (endpoint, version) in &versions {
                            query = query.bind(*endpoint).bind(*version);
                        }
                        query.bind(now).execute(&mut *tx).await?;
                    }
                    continue;
                }
                let Some(write) = writes.get(next) else {
                    break;
                };
                next += 1;
                if let Err(refused) = write.check() {
                    outcomes.push(Err(refused));
                    continue;
                }
                let missing = || Err(StoreError::NotFound(write.subject().to_owned()));
                let outcome = match write {
                    // Always in a run (see above).
                    Lwm2mWrite::Registered { .. }
                    | Lwm2mWrite::Updated { .. }
                    | Lwm2mWrite::Firmware { .. } => Ok(()),
                    Lwm2mWrite::Ended { endpoint, registration_id, kind, at, mark_offline } => {
                        sqlx::query(DELETE_REGISTRATION)
                            .bind(endpoint)
                            .bind(registration_id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(INSERT_EVENT)
                            .bind(endpoint)
                            .bind(micros(*at))
                            .bind(kind.as_str())
                            .bind(registration_id)
                            .bind(None::<&str>)
                            .execute(&mut *tx)
                            .await?;
                        let last_seen = (*kind == RegistrationEventKind::Deregistered).then_some(*at);
                        if !*mark_offline
                            || tx_connectivity!(tx, endpoint, Connectivity::Offline, last_seen, now)?
                        {
                            Ok(())
                        } else {
                            missing()
                        }
                    }
                    Lwm2mWrite::Connectivity { endpoint, connectivity } => {
                        if tx_connectivity!(tx, endpoint, *connectivity, None::<DateTime<Utc>>, now)? {
                            Ok(())
                        } else {
                            missing()
                        }
                    }
                    Lwm2mWrite::Queue { id, endpoint, operation_json, created_at, expires_at } => {
                        sqlx::query(INSERT_QUEUED)
                            .bind(id)
                            .bind(endpoint)
                            .bind(operation_json)
                            .bind(micros(*created_at))
                            .bind(micros(*expires_at))
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    }
                    Lwm2mWrite::Observed { observation: o } => {
                        sqlx::query(INSERT_OBSERVATION)
                            .bind(&o.endpoint)
                            .bind(o.observation as i64)
                            .bind(&o.registration_id)
                            .bind(&o.token)
                            .bind(o.paths.join(" "))
                            .bind(o.composite)
                            .bind(micros(o.created_at))
                            .execute(&mut *tx)
                            .await?;
                        // `check` kept the number within i64, so + 1 cannot overflow u64;
                        // i64::MAX itself saturates (the mark then stays at the last number).
                        let next = i64::try_from(o.observation.saturating_add(1)).unwrap_or(i64::MAX);
                        sqlx::query(RAISE_NEXT_OBSERVATION)
                            .bind(next)
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    }
                    Lwm2mWrite::ObservationEnded { endpoint, observation } => {
                        sqlx::query(DELETE_OBSERVATION)
                            .bind(endpoint)
                            .bind(*observation as i64)
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    }
                    Lwm2mWrite::Finish { id, status, at, result_json } => {
                        sqlx::query(FINISH_QUEUED)
                            .bind(status.as_str())
                            .bind(micros(*at))
                            .bind(result_json)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    }
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
        });
        if !changes.is_empty() {
            self.lifecycle.forget();
        }
        for change in changes {
            // No listener is not an error.
            let _ = self.state_changes.send(change);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The same cases on SQLite (a temporary file) and on PostgreSQL (a scratch database, when
    //! `FERRITE_TEST_POSTGRES_URL` is set; see `scratch::postgres_test_url`).

    use super::*;
    use crate::fleet::registry::{NewDevice, SecurityMode};
    use crate::store::tests::on_both;
    use chrono::Duration;

    fn registration(endpoint: &str, id: &str) -> StoredRegistration {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        StoredRegistration {
            endpoint: endpoint.into(),
            registration_id: id.into(),
            transport: Transport::Coaps,
            lwm2m_version: "1.1".into(),
            binding: "UQ".into(),
            lifetime: 300,
            sms_number: None,
            objects: "</1/0>,</3/0>".into(),
            address: "192.0.2.7:40000".into(),
            psk_identity: Some("id-1".into()),
            registered_at: at,
            last_update: at + Duration::seconds(60),
        }
    }

    async fn device(store: &Store, endpoint: &str) {
        let mut new = NewDevice::psk(endpoint, "s", "m");
        new.security_mode = SecurityMode::NoSec;
        store
            .create_device(new, &Actor::system(SystemComponent::Registration))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn registrations_are_saved_replaced_and_deleted_by_id() {
        on_both(|store| async move {
            device(&store, "meter-1").await;
            let first = registration("meter-1", "aaaaaaaa");
            store.save_lwm2m_registration(&first).await.unwrap();
            assert_eq!(
                store.lwm2m_registrations().await.unwrap(),
                std::slice::from_ref(&first)
            );

            let mut second = registration("meter-1", "bbbbbbbb");
            second.transport = Transport::Coap;
            second.psk_identity = None;
            store.save_lwm2m_registration(&second).await.unwrap();
            assert_eq!(
                store.lwm2m_registration("meter-1").await.unwrap(),
                Some(second.clone())
            );
            // A late delete of the replaced registration keeps the new one.
            assert!(
                !store
                    .delete_lwm2m_registration("meter-1", "aaaaaaaa")
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .delete_lwm2m_registration("meter-1", "bbbbbbbb")
                    .await
                    .unwrap()
            );
            assert!(store.lwm2m_registrations().await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn observations_are_kept_per_registration_and_go_with_it() {
        on_both(|store| async move {
            device(&store, "meter-o").await;
            store
                .save_lwm2m_registration(&registration("meter-o", "aaaaaaaa"))
                .await
                .unwrap();
            let at = DateTime::parse_from_rfc3339("2026-03-01T12:05:00.5Z")
                .unwrap()
                .with_timezone(&Utc);
            let observed = |number: u64, registration_id: &str, paths: &[&str]| StoredObservation {
                endpoint: "meter-o".into(),
                observation: number,
                registration_id: registration_id.into(),
                token: format!("00ff{number:02x}"),
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                composite: paths.len() > 1,
                created_at: at,
            };
            assert_eq!(store.next_observation_number().await.unwrap(), 0);
            let single = observed(3, "aaaaaaaa", &["/10243/0/14"]);
            let composite = observed(7, "aaaaaaaa", &["/3/0/9", "/10243/0/14"]);
            // Made in a registration that is no longer the endpoint's: not kept, not an error.
            let stale = observed(8, "zzzzzzzz", &["/3/0/9"]);
            let outcomes = store
                .apply_lwm2m_writes(&[
                    Lwm2mWrite::Observed {
                        observation: single.clone(),
                    },
                    Lwm2mWrite::Observed {
                        observation: composite.clone(),
                    },
                    Lwm2mWrite::Observed { observation: stale },
                ])
                .await
                .unwrap();
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(
                store.lwm2m_observations().await.unwrap(),
                [single.clone(), composite.clone()]
            );
            // Every number given is past the mark, the stale one's too.
            assert_eq!(store.next_observation_number().await.unwrap(), 9);
            // A token too long for CoAP is refused before the database.
            let mut long = observed(9, "aaaaaaaa", &["/3/0/9"]);
            long.token = "00".repeat(9);
            let outcomes = store
                .apply_lwm2m_writes(&[Lwm2mWrite::Observed { observation: long }])
                .await
                .unwrap();
            assert!(matches!(outcomes.as_slice(), [Err(StoreError::Invalid(_))]));

            store
                .apply_lwm2m_writes(&[Lwm2mWrite::ObservationEnded {
                    endpoint: "meter-o".into(),
                    observation: 3,
                }])
                .await
                .unwrap();
            assert_eq!(
                store.lwm2m_observations().await.unwrap(),
                std::slice::from_ref(&composite)
            );
            // The registration's end takes its observations with it.
            store
                .delete_lwm2m_registration("meter-o", "aaaaaaaa")
                .await
                .unwrap();
            assert!(store.lwm2m_observations().await.unwrap().is_empty());
            // Ended observations' numbers stay given; the mark never moves back.
            store
                .apply_lwm2m_writes(&[Lwm2mWrite::Observed {
                    observation: observed(2, "aaaaaaaa", &["/3/0/9"]),
                }])
                .await
                .unwrap();
            assert_eq!(store.next_observation_number().await.unwrap(), 9);
        })
        .await;
    }

    #[tokio::test]
    async fn queued_requests_finish_once_and_are_listed() {
        on_both(|store| async move {
            device(&store, "meter-2").await;
            let now = Utc::now().trunc_subsecs(6);
            let later = now + Duration::hours(1);
            store
                .insert_queued_request("00000000000000a1", "meter-2", "{}", now, later)
                .await
                .unwrap();
            // Idempotent.
            store
                .insert_queued_request("00000000000000a1", "meter-2", "{}", now, later)
                .await
                .unwrap();
            let pending = store.pending_queued_requests().await.unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].status, RequestStatus::Pending);
            assert_eq!(pending[0].expires_at, later);

            assert!(
                store
                    .finish_queued_request(
                        "00000000000000a1",
                        RequestStatus::Completed,
                        now,
                        Some("{\"kind\":\"changed\"}")
                    )
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .finish_queued_request("00000000000000a1", RequestStatus::Failed, now, None)
                    .await
                    .unwrap(),
                "finishes once"
            );
            let done = store
                .queued_request("00000000000000a1")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(done.status, RequestStatus::Completed);
            assert_eq!(done.result.as_deref(), Some("{\"kind\":\"changed\"}"));
            assert!(store.pending_queued_requests().await.unwrap().is_empty());
            assert_eq!(
                store
                    .queued_requests_for("meter-2", 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                store
                    .prune_queued_requests(now + Duration::seconds(1))
                    .await
                    .unwrap(),
                1
            );
        })
        .await;
    }

    #[test]
    fn on_sqlite_batch_statements_get_anonymous_placeholders_in_order() {
        assert_eq!(
            for_engine(
                BackendKind::Sqlite,
                "SELECT $1, $2 WHERE x IN ($3, $4)".into()
            ),
            "SELECT ?, ? WHERE x IN (?, ?)"
        );
        let text = "SELECT $1 WHERE x = $2".to_owned();
        assert_eq!(for_engine(BackendKind::Postgres, text.clone()), text);
        // Every builder numbers its placeholders in the order they appear (for_engine checks).
        let counts = |text: String| {
            let anonymous = for_engine(BackendKind::Sqlite, text.clone());
            (text.matches('$').count(), anonymous.matches('?').count())
        };
        assert_eq!(counts(reboot_audit_many(3)), (8, 8));
        assert_eq!(counts(firmware_many(2)), (5, 5));
        let mut online = String::from(SET_ONLINE_MANY_HEAD);
        online.push_str(&placeholder_list(3, 4));
        online.push_str(SET_ONLINE_MANY_TAIL);
        assert_eq!(counts(online), (6, 6));
        let mut activate = String::from(ACTIVATE_MANY_HEAD);
        activate.push_str(&placeholder_list(4, 2));
        activate.push_str(ACTIVATE_MANY_TAIL);
        assert_eq!(counts(activate), (5, 5));
    }

    #[test]
    #[should_panic(expected = "out of order")]
    #[cfg(debug_assertions)]
    fn placeholders_out_of_order_are_caught_in_debug_builds() {
        for_engine(BackendKind::Sqlite, "SELECT $2, $1".into());
    }

    #[test]
    fn values_rows_number_the_placeholders_row_by_row() {
        assert_eq!(values_rows(1, 2), "($1, $2)");
        assert_eq!(values_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            UPSERT_REGISTRATION.matches('$').count(),
            UPSERT_REGISTRATION_COLUMNS
        );
        assert_eq!(INSERT_EVENT.matches('$').count(), INSERT_EVENT_COLUMNS);
    }

    #[tokio::test]
    async fn a_batch_is_one_transaction_applied_in_order() {
        on_both(|store| async move {
            for n in 0..40 {
                device(&store, &format!("batch-{n}")).await;
            }
            let now = Utc::now().trunc_subsecs(6);
            let mut writes = Vec::new();
            for n in 0..40 {
                let endpoint = format!("batch-{n}");
                let mut first = registration(&endpoint, "aaaaaaaa");
                first.last_update = now;
                writes.push(Lwm2mWrite::Registered {
                    registration: first.clone(),
                    reboot: false,
                });
                // Order per device: the later Update wins over the Register before it.
                let mut second = first;
                second.address = "192.0.2.8:40001".into();
                writes.push(Lwm2mWrite::Updated {
                    registration: second,
                });
            }
            writes.push(Lwm2mWrite::Queue {
                id: "00000000000000b1".into(),
                endpoint: "batch-0".into(),
                operation_json: "{}".into(),
                created_at: now,
                expires_at: now + Duration::hours(1),
            });
            writes.push(Lwm2mWrite::Finish {
                id: "00000000000000b1".into(),
                status: RequestStatus::Completed,
                at: now,
                result_json: "{}".into(),
            });
            writes.push(Lwm2mWrite::Ended {
                endpoint: "batch-39".into(),
                registration_id: "aaaaaaaa".into(),
                kind: RegistrationEventKind::Deregistered,
                at: now,
                mark_offline: true,
            });
            // Refused without touching the database: only this write fails.
            writes.push(Lwm2mWrite::Queue {
                id: "00000000000000b2".into(),
                endpoint: "batch-1".into(),
                operation_json: "x".repeat(MAX_REQUEST_JSON + 1),
                created_at: now,
                expires_at: now,
            });
            // A device not in the registry: reported, the rest is kept.
            writes.push(Lwm2mWrite::Connectivity {
                endpoint: "nobody".into(),
                connectivity: Connectivity::Sleeping,
            });
            let outcomes = store.apply_lwm2m_writes(&writes).await.unwrap();
            assert_eq!(outcomes.len(), writes.len());
            let failed: Vec<_> = outcomes
                .iter()
                .zip(&writes)
                .filter(|(o, _)| o.is_err())
                .map(|(_, w)| w.subject().to_owned())
                .collect();
            assert_eq!(failed, ["batch-1", "nobody"]);

            let stored = store.lwm2m_registrations().await.unwrap();
            assert_eq!(stored.len(), 39, "batch-39 de-registered");
            assert!(stored.iter().all(|r| r.address == "192.0.2.8:40001"));
            let first = store.get_device("batch-0").await.unwrap().unwrap();
            assert_eq!(first.state, LifecycleState::Active);
            assert_eq!(first.connectivity, Connectivity::Online);
            let last = store.get_device("batch-39").await.unwrap().unwrap();
            assert_eq!(last.connectivity, Connectivity::Offline);
            let audit = store
                .device_audit(
                    "batch-0",
                    crate::fleet::registry::AuditPageRequest::first(10),
                )
                .await
                .unwrap();
            assert!(
                audit
                    .entries
                    .iter()
                    .any(|e| e.actor == "system:registration"
                        && e.to_state == Some(LifecycleState::Active)),
                "{audit:?}"
            );
            let request = store
                .queued_request("00000000000000b1")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(request.status, RequestStatus::Completed);
            assert!(
                store
                    .queued_request("00000000000000b2")
                    .await
                    .unwrap()
                    .is_none()
            );
            let history = store.registration_events("batch-39", 5).await.unwrap();
            let kinds: Vec<_> = history.iter().map(|e| e.kind).collect();
            assert_eq!(
                kinds,
                [
                    RegistrationEventKind::Deregistered,
                    RegistrationEventKind::Registered
                ]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_database_error_rolls_the_whole_batch_back() {
        on_both(|store| async move {
            device(&store, "roll-1").await;
            let writes = [
                Lwm2mWrite::Registered {
                    registration: registration("roll-1", "aaaaaaaa"),
                    reboot: false,
                },
                // No such device: the foreign key refuses the row, a database error.
                Lwm2mWrite::Registered {
                    registration: registration("roll-unknown", "bbbbbbbb"),
                    reboot: false,
                },
            ];
            assert!(matches!(
                store.apply_lwm2m_writes(&writes).await,
                Err(StoreError::Database(_))
            ));
            // One transaction: the first write is gone with the second.
            assert!(store.lwm2m_registrations().await.unwrap().is_empty());
            assert!(
                store
                    .registration_events("roll-1", 5)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Alone it goes through.
            let outcomes = store.apply_lwm2m_writes(&writes[..1]).await.unwrap();
            assert!(outcomes.iter().all(Result::is_ok));
            assert_eq!(store.lwm2m_registrations().await.unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_reboot_in_a_batch_is_audited_and_activation_happens_once() {
        on_both(|store| async move {
            device(&store, "boot-1").await;
            // Read (and, on SQLite, remembered) before the activation.
            assert_eq!(
                store.lifecycle_state("boot-1").await.unwrap(),
                Some(LifecycleState::Registered)
            );
            let mut changes = store.state_changes();
            let first = registration("boot-1", "aaaaaaaa");
            let writes = [
                Lwm2mWrite::Registered {
                    registration: first.clone(),
                    reboot: false,
                },
                Lwm2mWrite::Registered {
                    registration: registration("boot-1", "bbbbbbbb"),
                    reboot: true,
                },
            ];
            let outcomes = store.apply_lwm2m_writes(&writes).await.unwrap();
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(
                store.lifecycle_state("boot-1").await.unwrap(),
                Some(LifecycleState::Active),
                "the activation is seen at once"
            );
            let audit = store
                .device_audit(
                    "boot-1",
                    crate::fleet::registry::AuditPageRequest::first(10),
                )
                .await
                .unwrap();
            let actions: Vec<_> = audit.entries.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(
                actions.iter().filter(|a| **a == "reboot").count(),
                1,
                "{actions:?}"
            );
            assert_eq!(
                audit
                    .entries
                    .iter()
                    .filter(|e| e.to_state == Some(LifecycleState::Active)
                        && e.from_state != e.to_state)
                    .count(),
                1,
                "{actions:?}"
            );
            assert_eq!(
                store
                    .lwm2m_registration("boot-1")
                    .await
                    .unwrap()
                    .unwrap()
                    .registration_id,
                "bbbbbbbb"
            );
            // The activation reaches live listeners once, after the commit.
            let change = changes.try_recv().unwrap();
            assert_eq!(
                (change.endpoint.as_str(), change.to, change.actor.as_str()),
                ("boot-1", LifecycleState::Active, "system:registration")
            );
            assert!(changes.try_recv().is_err(), "one change only");
        })
        .await;
    }

    /// The set-based paths of a batch: first registrations from `registered` and from
    /// `provisioned` (two guarded updates), the re-registration of an active device (reboot
    /// audit, no activation), an Update, a suspended device's Register (no activation),
    /// firmware versions (last one wins, unchanged ones not rewritten, a bad one refused, an
    /// unknown endpoint ignored) and a missing device.
    #[tokio::test]
    async fn a_mixed_batch_activates_audits_and_records_firmware_set_wise() {
        on_both(|store| async move {
            let registration_actor = Actor::system(SystemComponent::Registration);
            for endpoint in [
                "mix-new", "mix-prov", "mix-boot", "mix-upd", "mix-susp", "mix-fw",
            ] {
                device(&store, endpoint).await;
            }
            store
                .transition(
                    "mix-prov",
                    LifecycleState::Provisioned,
                    &Actor::system(SystemComponent::Bootstrap),
                    None,
                )
                .await
                .unwrap();
            // Active already (an earlier registration), and one suspended after it.
            for endpoint in ["mix-boot", "mix-upd", "mix-susp"] {
                store
                    .transition(endpoint, LifecycleState::Active, &registration_actor, None)
                    .await
                    .unwrap();
            }
            store
                .transition(
                    "mix-susp",
                    LifecycleState::Suspended,
                    &Actor::system(SystemComponent::Firmware),
                    Some("test"),
                )
                .await
                .unwrap();
            store.set_firmware_version("mix-fw", "1.0.0").await.unwrap();
            let fw_before = store.get_device("mix-fw").await.unwrap().unwrap();
            let mut changes = store.state_changes();

            let at = |seconds| Utc::now().trunc_subsecs(6) - Duration::seconds(seconds);
            let mut new = registration("mix-new", "aaaaaaa1");
            new.last_update = at(10);
            let mut prov = registration("mix-prov", "aaaaaaa2");
            prov.last_update = at(20);
            let mut boot = registration("mix-boot", "aaaaaaa3");
            boot.last_update = at(30);
            let mut upd = registration("mix-upd", "aaaaaaa4");
            upd.last_update = at(40);
            let mut susp = registration("mix-susp", "aaaaaaa5");
            susp.last_update = at(50);
            let firmware = |endpoint: &str, version: &str| Lwm2mWrite::Firmware {
                endpoint: endpoint.into(),
                version: version.into(),
            };
            let writes = vec![
                Lwm2mWrite::Registered {
                    registration: new.clone(),
                    reboot: false,
                },
                firmware("mix-new", "0.9.0"),
                firmware("mix-new", "1.2.3"),
                firmware("mix-fw", "1.0.0"),
                firmware("mix-prov", &"x".repeat(10_000)),
                firmware("nobody", "1.0.0"),
                Lwm2mWrite::Registered {
                    registration: prov.clone(),
                    reboot: false,
                },
                Lwm2mWrite::Registered {
                    registration: boot.clone(),
                    reboot: true,
                },
                Lwm2mWrite::Updated {
                    registration: upd.clone(),
                },
                Lwm2mWrite::Registered {
                    registration: susp.clone(),
                    reboot: false,
                },
                Lwm2mWrite::Connectivity {
                    endpoint: "nobody".into(),
                    connectivity: Connectivity::Sleeping,
                },
                firmware("mix-prov", "3.0"),
            ];
            let outcomes = store.apply_lwm2m_writes(&writes).await.unwrap();
            let failed: Vec<_> = outcomes
                .iter()
                .zip(&writes)
                .filter(|(o, _)| o.is_err())
                .map(|(o, w)| {
                    (
                        w.subject().to_owned(),
                        o.as_ref().err().map(ToString::to_string),
                    )
                })
                .collect();
            assert_eq!(failed.len(), 2, "{failed:?}");
            assert!(
                matches!(outcomes[4], Err(StoreError::Invalid(_))),
                "{:?}",
                outcomes[4]
            );
            assert!(
                matches!(outcomes[10], Err(StoreError::NotFound(_))),
                "{:?}",
                outcomes[10]
            );

            // Lifecycle: the two first registrations only, each from its own state.
            let state = |endpoint: &'static str| {
                let store = store.clone();
                async move { store.get_device(endpoint).await.unwrap().unwrap() }
            };
            for (endpoint, expected, registration) in [
                ("mix-new", LifecycleState::Active, &new),
                ("mix-prov", LifecycleState::Active, &prov),
                ("mix-boot", LifecycleState::Active, &boot),
                ("mix-upd", LifecycleState::Active, &upd),
                ("mix-susp", LifecycleState::Suspended, &susp),
            ] {
                let device = state(endpoint).await;
                assert_eq!(device.state, expected, "{endpoint}");
                assert_eq!(device.connectivity, Connectivity::Online, "{endpoint}");
                // Each device last seen at its own registration's last update.
                assert_eq!(
                    device.last_seen,
                    Some(registration.last_update),
                    "{endpoint}"
                );
            }
            let mut published = Vec::new();
            while let Ok(change) = changes.try_recv() {
                published.push((change.endpoint, change.from, change.to, change.actor));
            }
            assert_eq!(
                published,
                [
                    (
                        "mix-new".to_owned(),
                        LifecycleState::Registered,
                        LifecycleState::Active,
                        "system:registration".to_owned()
                    ),
                    (
                        "mix-prov".to_owned(),
                        LifecycleState::Provisioned,
                        LifecycleState::Active,
                        "system:registration".to_owned()
                    ),
                ]
            );

            // The audit trail: an activation each for the first registrations, the reboot.
            let trail = |endpoint: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .device_audit(
                            endpoint,
                            crate::fleet::registry::AuditPageRequest::first(20),
                        )
                        .await
                        .unwrap()
                        .entries
                        .into_iter()
                        .filter(|e| e.actor == "system:registration" && e.action != "created")
                        .map(|e| (e.action, e.from_state, e.to_state))
                        .collect::<Vec<_>>()
                }
            };
            let activation = |from| {
                vec![(
                    lifecycle::TransitionAction::FirstRegistration
                        .as_str()
                        .to_owned(),
                    Some(from),
                    Some(LifecycleState::Active),
                )]
            };
            assert_eq!(
                trail("mix-new").await,
                activation(LifecycleState::Registered)
            );
            assert_eq!(
                trail("mix-prov").await,
                activation(LifecycleState::Provisioned)
            );
            let boot_trail = trail("mix-boot").await;
            assert_eq!(
                boot_trail
                    .iter()
                    .filter(|(a, f, t)| a == "reboot"
                        && *f == Some(LifecycleState::Active)
                        && *t == Some(LifecycleState::Active))
                    .count(),
                1,
                "{boot_trail:?}"
            );
            // Besides its earlier activation: the reboot only.
            assert_eq!(boot_trail.len(), 2, "{boot_trail:?}");
            // Their earlier activation only: nothing new for an Update or a suspended device.
            assert_eq!(
                trail("mix-upd").await,
                activation(LifecycleState::Registered)
            );
            assert_eq!(
                trail("mix-susp").await,
                activation(LifecycleState::Registered)
            );

            // History: Registered for the first ones, Reboot for the restart, none for an Update.
            let kinds = |endpoint: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .registration_events(endpoint, 5)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|e| e.kind)
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(kinds("mix-new").await, [RegistrationEventKind::Registered]);
            assert_eq!(kinds("mix-boot").await, [RegistrationEventKind::Reboot]);
            assert!(kinds("mix-upd").await.is_empty());

            // Firmware: the last version of a batch wins; an unchanged one is not rewritten.
            assert_eq!(
                state("mix-new").await.firmware_version.as_deref(),
                Some("1.2.3")
            );
            assert_eq!(
                state("mix-prov").await.firmware_version.as_deref(),
                Some("3.0")
            );
            let fw_after = state("mix-fw").await;
            assert_eq!(fw_after.firmware_version.as_deref(), Some("1.0.0"));
            assert_eq!(
                fw_after.updated_at, fw_before.updated_at,
                "unchanged: not written"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn history_and_reboot_audit_are_recorded() {
        on_both(|store| async move {
            device(&store, "meter-3").await;
            let at = Utc::now().trunc_subsecs(6);
            for kind in [
                RegistrationEventKind::Registered,
                RegistrationEventKind::Reboot,
                RegistrationEventKind::Expired,
            ] {
                store
                    .record_registration_event("meter-3", at, kind, "aaaaaaaa", Some("[::1]:5"))
                    .await
                    .unwrap();
            }
            let events = store.registration_events("meter-3", 2).await.unwrap();
            let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
            assert_eq!(
                kinds,
                [
                    RegistrationEventKind::Expired,
                    RegistrationEventKind::Reboot
                ]
            );

            store.audit_reboot("meter-3", at).await.unwrap();
            let audit = store
                .device_audit(
                    "meter-3",
                    crate::fleet::registry::AuditPageRequest::first(10),
                )
                .await
                .unwrap();
            let reboot = audit
                .entries
                .iter()
                .find(|e| e.action == "reboot")
                .expect("reboot audited");
            assert_eq!(reboot.actor, "system:registration");
            assert_eq!(reboot.from_state, reboot.to_state);
        })
        .await;
    }
}
