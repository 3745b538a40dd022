//! The PostgreSQL backend, for fleets that outgrow one machine: several `ferrite` nodes share
//! one database. Same queries as SQLite (both accept `$n` placeholders); migrations are applied
//! under PostgreSQL's advisory lock, so nodes starting together do not race.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::rows::{
    AuditRow, AuditWrite, CredentialsRow, DeviceRow, FactsRow, InfoWrite, InsertAudit,
    PreparedDevice, StateRow, TransitionWrite,
};
use super::sql::{self, Bind, BuiltQuery, ExistingColumn};
use super::{StoreError, StoreOptions};
use crate::fleet::registry::Connectivity;

#[derive(Debug, Clone)]
pub(crate) struct PostgresBackend {
    /// Visible to sibling store modules (e.g. the LwM2M persistence) that run their own SQL.
    pub(super) pool: PgPool,
}

impl PostgresBackend {
    pub(crate) async fn connect(
        url: &str,
        options: &StoreOptions,
    ) -> Result<PostgresBackend, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect)
            .await
            .map_err(StoreError::Connect)?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PostgresBackend { pool })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn fetch_device(
        &self,
        endpoint: &str,
    ) -> Result<Option<DeviceRow>, sqlx::Error> {
        sqlx::query_as::<_, DeviceRow>(sql::SELECT_DEVICE)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await
    }

    pub(crate) async fn list_devices(&self, q: BuiltQuery) -> Result<Vec<DeviceRow>, sqlx::Error> {
        let mut query = sqlx::query_as::<_, DeviceRow>(AssertSqlSafe(q.sql));
        for bind in q.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        query.fetch_all(&self.pool).await
    }

    pub(crate) async fn count(&self, q: BuiltQuery) -> Result<i64, sqlx::Error> {
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(q.sql));
        for bind in q.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        query.fetch_one(&self.pool).await
    }

    pub(crate) async fn list_audit(&self, q: BuiltQuery) -> Result<Vec<AuditRow>, sqlx::Error> {
        let mut query = sqlx::query_as::<_, AuditRow>(AssertSqlSafe(q.sql));
        for bind in q.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        query.fetch_all(&self.pool).await
    }

    pub(crate) async fn credentials(
        &self,
        identity: &str,
    ) -> Result<Option<CredentialsRow>, sqlx::Error> {
        sqlx::query_as::<_, CredentialsRow>(sql::SELECT_CREDENTIALS)
            .bind(identity)
            .fetch_optional(&self.pool)
            .await
    }

    pub(crate) async fn credentials_page(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<CredentialsRow>, sqlx::Error> {
        sqlx::query_as::<_, CredentialsRow>(sql::SELECT_CREDENTIALS_PAGE)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Several connectivity updates in one transaction (one commit, one fsync on SQLite).
    pub(crate) async fn set_connectivity_many(
        &self,
        updates: &[(&str, Connectivity, Option<DateTime<Utc>>)],
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (endpoint, connectivity, last_seen) in updates {
            changed += sqlx::query(sql::UPDATE_CONNECTIVITY)
                .bind(connectivity.as_str())
                .bind(*last_seen)
                .bind(now)
                .bind(*endpoint)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(crate) async fn registration_facts(
        &self,
        endpoint: &str,
    ) -> Result<Option<FactsRow>, sqlx::Error> {
        sqlx::query_as::<_, FactsRow>(sql::SELECT_REGISTRATION_FACTS)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await
    }

    pub(crate) async fn device_state(
        &self,
        endpoint: &str,
    ) -> Result<Option<StateRow>, sqlx::Error> {
        sqlx::query_as::<_, StateRow>(sql::SELECT_STATE)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await
    }

    pub(crate) async fn set_connectivity(
        &self,
        endpoint: &str,
        connectivity: Connectivity,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(sql::UPDATE_CONNECTIVITY)
            .bind(connectivity.as_str())
            .bind(last_seen)
            .bind(now)
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn set_firmware(
        &self,
        endpoint: &str,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(sql::UPDATE_FIRMWARE)
            .bind(version)
            .bind(now)
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The state change and its audit entry in one transaction. False when the state was changed
    /// by someone else since it was read (nothing written then).
    pub(crate) async fn apply_transition(
        &self,
        t: &TransitionWrite<'_>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The guarded UPDATE locks the row; a concurrent transition waits, then sees zero rows.
        let update = if t.revoke_credentials {
            sql::UPDATE_STATE_REVOKE
        } else {
            sql::UPDATE_STATE
        };
        let changed = sqlx::query(update)
            .bind(t.to.as_str())
            .bind(t.at)
            .bind(t.device_id)
            .bind(t.from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(sql::INSERT_AUDIT)
            .bind(t.device_id)
            .bind(t.endpoint)
            .bind(t.at)
            .bind(t.actor)
            .bind(t.action)
            .bind(t.from.as_str())
            .bind(t.to.as_str())
            .bind(t.reason)
            .execute(&mut *tx)
            .await?;
        // Other nodes forget their lifecycle caches when this commits (`lifecycle_follow.rs`).
        sqlx::query(super::sql::NOTIFY_LIFECYCLE)
            .bind(super::lifecycle_follow::CHANNEL)
            .bind(t.endpoint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces a device's PSK identity and sealed key, with its audit entry, in one
    /// transaction. False when the device's credentials are revoked or it is not a PSK device.
    pub(crate) async fn replace_credentials(
        &self,
        identity: &str,
        sealed: &[u8],
        audit: &AuditWrite<'_>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(sql::UPDATE_CREDENTIALS)
            .bind(identity)
            .bind(sealed)
            .bind(audit.at)
            .bind(audit.device_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Rewrites serial, model, customer and tags, with its audit entry, in one transaction.
    pub(crate) async fn update_info(
        &self,
        info: &InfoWrite<'_>,
        audit: &AuditWrite<'_>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::UPDATE_INFO)
            .bind(info.serial)
            .bind(info.model)
            .bind(info.customer)
            .bind(info.tags_json)
            .bind(audit.at)
            .bind(audit.device_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_TAGS)
            .bind(audit.device_id)
            .execute(&mut *tx)
            .await?;
        if !info.tags.is_empty() {
            let mut insert = QueryBuilder::<Postgres>::new(sql::INSERT_TAGS_HEAD);
            insert.push_values(info.tags, |mut row, (key, value)| {
                row.push_bind(audit.device_id)
                    .push_bind(key.as_str())
                    .push_bind(value.as_str())
                    .push_bind(audit.endpoint);
            });
            insert.build().execute(&mut *tx).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(crate) async fn existing(
        &self,
        column: ExistingColumn,
        values: &[&str],
    ) -> Result<Vec<String>, sqlx::Error> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql::existing_values(
            column,
            values.len(),
        )))
        // One text per batch size: not worth a place in the connection's statement cache.
        .persistent(false);
        for value in values {
            query = query.bind(*value);
        }
        query.fetch_all(&self.pool).await
    }

    /// Inserts devices, their tags and one audit entry each, all in one transaction
    /// (`INSERT … SELECT FROM UNNEST`, see `bulk.rs`).
    pub(crate) async fn insert_devices(
        &self,
        devices: &[PreparedDevice],
        audit: &InsertAudit<'_>,
    ) -> Result<(), sqlx::Error> {
        super::bulk::insert_devices(&self.pool, devices, audit).await
    }

    /// The stored (sealed) key column, for tests that check what is at rest.
    #[cfg(test)]
    pub(crate) async fn raw_sealed_key(
        &self,
        endpoint: &str,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT psk_key_sealed FROM devices WHERE endpoint = $1",
        )
        .bind(endpoint)
        .fetch_one(&self.pool)
        .await
    }
}

/// Appends a non-transition audit entry inside `tx`.
async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    audit: &AuditWrite<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql::INSERT_AUDIT)
        .bind(audit.device_id)
        .bind(audit.endpoint)
        .bind(audit.at)
        .bind(audit.actor)
        .bind(audit.action)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(audit.reason)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
