//! The SQLite backend: one file, created on first start, in WAL mode with `synchronous=FULL`
//! (every acknowledged commit is on disk), foreign keys on and a busy timeout so that concurrent
//! writers wait for each other instead of failing.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite};

use super::rows::{
    AuditRow, AuditWrite, CredentialsRow, DeviceRow, FactsRow, InfoWrite, InsertAudit,
    PreparedDevice, StateRow, TransitionWrite,
};
use super::sql::{self, Bind, BuiltQuery, ExistingColumn};
use super::{StoreError, StoreOptions};

/// Write transactions take SQLite's write lock when they begin. A deferred `BEGIN` that reads
/// first and writes later fails at once with SQLITE_BUSY ("database is locked", no busy wait) in
/// WAL mode when another connection committed in between; `BEGIN IMMEDIATE` waits for the lock
/// (busy timeout) instead.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::registry::Connectivity;

/// SQLite page cache per connection, KiB (SQLite's default is 2,000).
const SQLITE_CACHE_KIB: u32 = 1024;
/// Prepared statements kept per connection (sqlx's default is 100; each costs tens of KiB of
/// SQLite heap, and the pool's connections each prepare their own).
const SQLITE_STATEMENT_CACHE: usize = 32;

/// Whether `url` names an in-memory database (`:memory:`, or a URI with `mode=memory`). Told
/// from the URL: sqlx rewrites `sqlite::memory:` to a shared-cache file name
/// (`file:sqlx-in-memory-N`), so the parsed options' file name does not say.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteBackend {
    /// Visible to sibling store modules (e.g. the LwM2M persistence) that run their own SQL.
    pub(super) pool: SqlitePool,
}

impl SqliteBackend {
    pub(crate) async fn connect(
        url: &str,
        options: &StoreOptions,
    ) -> Result<SqliteBackend, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            // Memory bounds (see ARCHITECTURE.md, "Memory"): the page cache per connection and
            // the prepared statements kept per connection are what SQLite's heap grows with.
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
            .statement_cache_capacity(SQLITE_STATEMENT_CACHE);
        let in_memory = is_in_memory(url);
        if !in_memory {
            // "Created on first start" includes the directory the file lives in.
            if let Some(parent) = connect
                .get_filename()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDirectory {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
        // No ping before each acquire: for SQLite it is one more round trip to the connection's
        // worker thread per query (measured: the worker wake-ups were a third of the server's
        // CPU in a registration storm), and a local file does not hang up like a network peer.
        let mut pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .test_before_acquire(false);
        if in_memory {
            // One in-memory database, kept by exactly one connection, forever: sqlx opens
            // `sqlite::memory:` as a shared-cache database, where a second connection meets
            // table locks (SQLITE_LOCKED, "database table is locked") that no busy timeout
            // waits out.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(StoreError::Connect)?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(SqliteBackend { pool })
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // The guarded UPDATE is the transaction's first statement: it takes SQLite's write lock
        // (waiting up to the busy timeout) instead of upgrading a read lock, which can fail.
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
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
            let mut insert = QueryBuilder::<Sqlite>::new(sql::INSERT_TAGS_HEAD);
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

    /// Inserts devices, their tags and one audit entry each, all in one transaction.
    pub(crate) async fn insert_devices(
        &self,
        devices: &[PreparedDevice],
        audit: &InsertAudit<'_>,
    ) -> Result<(), sqlx::Error> {
        if devices.is_empty() {
            return Ok(());
        }
        let registered = LifecycleState::Registered.as_str();
        let offline = Connectivity::Offline.as_str();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let mut ids: HashMap<String, i64> = HashMap::with_capacity(devices.len());
        for chunk in devices.chunks(sql::MAX_PARAMS / sql::INSERT_DEVICES_PARAMS) {
            let mut insert = QueryBuilder::<Sqlite>::new(sql::INSERT_DEVICES_HEAD);
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(d.endpoint.as_str())
                    .push_bind(d.serial.as_str())
                    .push_bind(d.model.as_str())
                    .push_bind(d.tags_json.as_str())
                    .push_bind(d.customer.as_deref())
                    .push_bind(d.security_mode.as_str())
                    .push_bind(d.psk_identity.as_deref())
                    .push_bind(d.psk_key_sealed.as_deref())
                    .push_bind(false)
                    .push_bind(registered)
                    .push_bind(offline)
                    .push_bind(audit.at)
                    .push_bind(audit.at);
            });
            insert.push(" RETURNING id, endpoint");
            // Texts vary with the batch size: kept out of the connection's statement cache.
            let returned: Vec<(i64, String)> = insert
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            ids.extend(returned.into_iter().map(|(id, endpoint)| (endpoint, id)));
        }
        let tags: Vec<(i64, &str, &str, &str)> = devices
            .iter()
            .filter_map(|d| ids.get(d.endpoint.as_str()).map(|&id| (id, d)))
            .flat_map(|(id, d)| {
                d.tags
                    .iter()
                    .map(move |(k, v)| (id, k.as_str(), v.as_str(), d.endpoint.as_str()))
            })
            .collect();
        for chunk in tags.chunks(sql::MAX_PARAMS / sql::INSERT_TAGS_PARAMS) {
            let mut insert = QueryBuilder::<Sqlite>::new(sql::INSERT_TAGS_HEAD);
            insert.push_values(chunk, |mut row, &(id, key, value, endpoint)| {
                row.push_bind(id)
                    .push_bind(key)
                    .push_bind(value)
                    .push_bind(endpoint);
            });
            insert.build().persistent(false).execute(&mut *tx).await?;
        }
        let audited: Vec<(i64, &str)> = devices
            .iter()
            .filter_map(|d| {
                ids.get(d.endpoint.as_str())
                    .map(|&id| (id, d.endpoint.as_str()))
            })
            .collect();
        // Factory bootstrap credentials, each audited like `set_bootstrap_credentials`.
        let bootstrap: Vec<(i64, &str, &str, &[u8])> = devices
            .iter()
            .filter_map(|d| {
                let (identity, sealed) = d.bootstrap.as_ref()?;
                let id = *ids.get(d.endpoint.as_str())?;
                Some((
                    id,
                    d.endpoint.as_str(),
                    identity.as_str(),
                    sealed.as_slice(),
                ))
            })
            .collect();
        for chunk in bootstrap.chunks(sql::MAX_PARAMS / sql::INSERT_BOOTSTRAP_PARAMS) {
            let mut insert = QueryBuilder::<Sqlite>::new(sql::INSERT_BOOTSTRAP_HEAD);
            insert.push_values(chunk, |mut row, &(_, endpoint, identity, sealed)| {
                row.push_bind(endpoint)
                    .push_bind(identity)
                    .push_bind(sealed)
                    .push_bind(audit.at);
            });
            insert.build().persistent(false).execute(&mut *tx).await?;
        }
        let audited = audited
            .into_iter()
            .map(|(id, endpoint)| (id, endpoint, audit.action))
            .chain(bootstrap.iter().map(|&(id, endpoint, _, _)| {
                (id, endpoint, super::bootstrap::AUDIT_BOOTSTRAP_CREDENTIALS)
            }))
            .collect::<Vec<_>>();
        for chunk in audited.chunks(sql::MAX_PARAMS / sql::INSERT_AUDIT_PARAMS) {
            let mut insert = QueryBuilder::<Sqlite>::new(sql::INSERT_AUDIT_HEAD);
            insert.push_values(chunk, |mut row, &(id, endpoint, action)| {
                row.push_bind(id)
                    .push_bind(endpoint)
                    .push_bind(audit.at)
                    .push_bind(audit.actor)
                    .push_bind(action)
                    .push_bind(None::<&str>)
                    .push_bind(registered)
                    .push_bind(None::<&str>);
            });
            insert.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await
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

    /// The connection settings that durability depends on, as SQLite reports them.
    #[cfg(test)]
    pub(crate) async fn pragmas(&self) -> Result<(String, i64, i64, i64), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?;
        let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        Ok((journal_mode, synchronous, foreign_keys, busy_timeout))
    }
}

/// Appends a non-transition audit entry inside `tx`.
async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod in_memory_tests {
    use super::*;

    #[test]
    fn in_memory_urls_are_recognised_after_sqlx_rewrites_them() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:file:ferrite?mode=memory&cache=shared",
        ] {
            assert!(is_in_memory(url), "{url}");
        }
        // Why the URL decides: sqlx renames the in-memory database.
        let parsed = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        assert!(
            parsed
                .get_filename()
                .to_string_lossy()
                .starts_with("file:sqlx-in-memory-")
        );
        assert!(!is_in_memory("sqlite://ferrite.db"));
        assert!(!is_in_memory(
            "sqlite:///var/lib/ferrite/ferrite.db?mode=rwc"
        ));
    }

    #[tokio::test]
    async fn an_in_memory_store_keeps_one_connection() {
        let backend = SqliteBackend::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(backend.pool.options().get_max_connections(), 1);
    }
}
