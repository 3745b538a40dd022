//! PostgreSQL bulk insert of devices: one `INSERT … SELECT FROM UNNEST($1, $2, …)` per table
//! with one array per column, instead of a multi-row `VALUES` list with a bound value per cell.
//! The statement text is the same for every batch size (prepared once per connection) and the
//! parse/bind work is per column, not per cell; STACK-NOTES measured 430–480k rows/s against
//! 332k/s for multi-row inserts. The caller (`Store::import_csv`) keeps its per-row reporting:
//! a batch that hits a unique constraint fails as a whole and is retried row by row.

use std::collections::HashMap;

use sqlx::postgres::PgPool;

use super::rows::{InsertAudit, PreparedDevice};
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::registry::Connectivity;

const INSERT_DEVICES: &str = "INSERT INTO devices (endpoint, serial, model, tags, customer, \
    security_mode, psk_identity, psk_key_sealed, credentials_revoked, state, connectivity, \
    created_at, updated_at) \
    SELECT u.endpoint, u.serial, u.model, u.tags, u.customer, u.security_mode, u.psk_identity, \
    u.psk_key_sealed, FALSE, $9, $10, $11, $11 \
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::bytea[]) \
    AS u (endpoint, serial, model, tags, customer, security_mode, psk_identity, psk_key_sealed) \
    RETURNING id, endpoint";

const INSERT_TAGS: &str = "INSERT INTO device_tags (device_id, key, value, endpoint) \
    SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[])";

const INSERT_AUDIT: &str = "INSERT INTO device_audit (device_id, endpoint, at, actor, action, \
    from_state, to_state, reason) \
    SELECT u.device_id, u.endpoint, $3, $4, u.action, NULL, $5, NULL \
    FROM UNNEST($1::bigint[], $2::text[], $6::text[]) AS u (device_id, endpoint, action)";

const INSERT_BOOTSTRAP: &str = "INSERT INTO device_bootstrap (endpoint, bs_identity, \
    bs_key_sealed, updated_at) \
    SELECT u.endpoint, u.bs_identity, u.bs_key_sealed, $4 \
    FROM UNNEST($1::text[], $2::text[], $3::bytea[]) AS u (endpoint, bs_identity, bs_key_sealed)";

/// Inserts devices, their tags and one audit entry each, all in one transaction.
pub(super) async fn insert_devices(
    pool: &PgPool,
    devices: &[PreparedDevice],
    audit: &InsertAudit<'_>,
) -> Result<(), sqlx::Error> {
    if devices.is_empty() {
        return Ok(());
    }
    let registered = LifecycleState::Registered.as_str();
    let offline = Connectivity::Offline.as_str();
    let column = |f: fn(&PreparedDevice) -> &str| -> Vec<&str> { devices.iter().map(f).collect() };
    let optional = |f: fn(&PreparedDevice) -> Option<&str>| -> Vec<Option<&str>> {
        devices.iter().map(f).collect()
    };
    let sealed: Vec<Option<&[u8]>> = devices
        .iter()
        .map(|d| d.psk_key_sealed.as_deref())
        .collect();

    let mut tx = pool.begin().await?;
    let returned: Vec<(i64, String)> = sqlx::query_as(INSERT_DEVICES)
        .bind(column(|d| d.endpoint.as_str()))
        .bind(column(|d| d.serial.as_str()))
        .bind(column(|d| d.model.as_str()))
        .bind(column(|d| d.tags_json.as_str()))
        .bind(optional(|d| d.customer.as_deref()))
        .bind(column(|d| d.security_mode.as_str()))
        .bind(optional(|d| d.psk_identity.as_deref()))
        .bind(sealed)
        .bind(registered)
        .bind(offline)
        .bind(audit.at)
        .fetch_all(&mut *tx)
        .await?;
    let ids: HashMap<&str, i64> = returned
        .iter()
        .map(|(id, endpoint)| (endpoint.as_str(), *id))
        .collect();

    let mut tag_ids = Vec::new();
    let mut tag_keys = Vec::new();
    let mut tag_values = Vec::new();
    let mut tag_endpoints = Vec::new();
    let mut audit_ids = Vec::with_capacity(devices.len());
    let mut audit_endpoints = Vec::with_capacity(devices.len());
    let mut audit_actions: Vec<&str> = Vec::with_capacity(devices.len());
    for device in devices {
        let Some(&id) = ids.get(device.endpoint.as_str()) else {
            continue;
        };
        for (key, value) in &device.tags {
            tag_ids.push(id);
            tag_keys.push(key.as_str());
            tag_values.push(value.as_str());
            tag_endpoints.push(device.endpoint.as_str());
        }
        audit_ids.push(id);
        audit_endpoints.push(device.endpoint.as_str());
        audit_actions.push(audit.action);
    }
    // Factory bootstrap credentials, each audited like `set_bootstrap_credentials`.
    let mut bs_endpoints = Vec::new();
    let mut bs_identities = Vec::new();
    let mut bs_keys: Vec<&[u8]> = Vec::new();
    for device in devices {
        if let (Some((identity, sealed)), Some(&id)) =
            (&device.bootstrap, ids.get(device.endpoint.as_str()))
        {
            bs_endpoints.push(device.endpoint.as_str());
            bs_identities.push(identity.as_str());
            bs_keys.push(sealed.as_slice());
            audit_ids.push(id);
            audit_endpoints.push(device.endpoint.as_str());
            audit_actions.push(super::bootstrap::AUDIT_BOOTSTRAP_CREDENTIALS);
        }
    }
    if !tag_ids.is_empty() {
        sqlx::query(INSERT_TAGS)
            .bind(tag_ids)
            .bind(tag_keys)
            .bind(tag_values)
            .bind(tag_endpoints)
            .execute(&mut *tx)
            .await?;
    }
    if !bs_endpoints.is_empty() {
        sqlx::query(INSERT_BOOTSTRAP)
            .bind(bs_endpoints)
            .bind(bs_identities)
            .bind(bs_keys)
            .bind(audit.at)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(INSERT_AUDIT)
        .bind(audit_ids)
        .bind(audit_endpoints)
        .bind(audit.at)
        .bind(audit.actor)
        .bind(registered)
        .bind(audit_actions)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
