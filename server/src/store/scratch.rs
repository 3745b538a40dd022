//! Throw-away PostgreSQL databases for tests and benchmarks: each test gets a freshly created,
//! uniquely named database (so tests run in parallel) that is dropped afterwards. Also the one
//! rule for when PostgreSQL tests may be skipped: only outside CI.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The environment variable naming an administrative PostgreSQL URL (a role with CREATEDB),
/// e.g. `postgres://ferrite:ferrite@127.0.0.1:55432/postgres` as printed by `scripts/pg.sh`.
pub const POSTGRES_URL_VAR: &str = "FERRITE_TEST_POSTGRES_URL";

/// The admin URL for PostgreSQL tests, or None (after printing why) when tests may skip it.
///
/// # Panics
/// When the variable is unset and `CI=true`: CI must never silently skip PostgreSQL.
pub fn postgres_test_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{POSTGRES_URL_VAR} is not set but CI=true: the PostgreSQL tests must run in CI \
                     (eval \"$(bash scripts/pg.sh)\" before cargo test)"
                );
            }
            eprintln!("SKIPPED (postgres): {POSTGRES_URL_VAR} not set");
            None
        }
    }
}

/// A database created for one test or benchmark run.
#[derive(Debug)]
pub struct ScratchPostgres {
    admin: PgPool,
    name: String,
    url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `admin_url` with its database (the URL path) replaced by `database`.
fn with_database(admin_url: &str, database: &str) -> Option<String> {
    let authority_start = admin_url.find("://")? + 3;
    let rest = &admin_url[authority_start..];
    let path_start = rest
        .find(['/', '?'])
        .map_or(admin_url.len(), |i| authority_start + i);
    let query = admin_url[path_start..]
        .find('?')
        .map_or("", |i| &admin_url[path_start + i..]);
    Some(format!("{}/{database}{query}", &admin_url[..path_start]))
}

impl ScratchPostgres {
    /// Creates `<prefix>_<pid>_<n>_<random>` through `admin_url`.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<ScratchPostgres, sqlx::Error> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(PgConnectOptions::from_str(admin_url)?)
            .await?;
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(30)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            hex::encode(random)
        );
        // The name is built from [a-z0-9_] only, so quoting it is enough.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await?;
        let url = with_database(admin_url, &name)
            .ok_or_else(|| sqlx::Error::Configuration("not a postgres:// URL".into()))?;
        Ok(ScratchPostgres { admin, name, url })
    }

    /// The URL of the new database (same credentials as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await?;
        self.admin.close().await;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:55432/postgres", "t1").as_deref(),
            Some("postgres://u:p@127.0.0.1:55432/t1")
        );
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "t1").as_deref(),
            Some("postgres://u:p@h/t1?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h:5432", "t1").as_deref(),
            Some("postgres://h:5432/t1")
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "t1").as_deref(),
            Some("postgres://h/t1?sslmode=disable")
        );
        assert_eq!(with_database("nonsense", "t1"), None);
    }
}
