//! Storage of operator accounts (users, sessions, API tokens, the account audit trail) on both
//! engines. The SQL is written once: both engines take `$n` placeholders, and `on_pool!`
//! expands each body once per engine with that engine's pool. Times are compared in Rust where a
//! decision depends on them; SQL compares them only to purge (SQLite's RFC 3339 text sorts in
//! time order for UTC values, PostgreSQL compares TIMESTAMPTZ).

use chrono::{DateTime, SubsecRound as _, Utc};

use super::{Backend, Store};
use crate::accounts::secrets::SecretDigest;
use crate::accounts::{
    AccountError, AccountEvent, AccountEventPage, ApiToken, Role, Session, TokenGrant, User,
    UserUpdate, events, validate_name,
};

/// Largest page of the account audit trail.
pub const MAX_ACCOUNT_AUDIT_PAGE: u32 = 1000;

const USER_COLUMNS: &str = "id, name, role, disabled, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: i64,
    name: String,
    role: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn parse_role(what: &str, text: &str) -> Result<Role, AccountError> {
    text.parse()
        .map_err(|e| AccountError::Corrupt(format!("{what}: {e}")))
}

impl TryFrom<UserRow> for User {
    type Error = AccountError;
    fn try_from(row: UserRow) -> Result<User, AccountError> {
        Ok(User {
            role: parse_role(&format!("user {:?}", row.name), &row.role)?,
            id: row.id,
            name: row.name,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct LoginRow {
    id: i64,
    name: String,
    role: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    password_hash: String,
}

#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_id: i64,
    user_name: String,
    user_role: String,
    user_disabled: bool,
    user_created_at: DateTime<Utc>,
    user_updated_at: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str = "t.id, t.name, t.role, t.created_by, t.created_at, t.expires_at, \
     t.last_used_at, t.revoked_at, u.id AS owner_id, u.name AS owner_name, u.role AS owner_role, \
     u.disabled AS owner_disabled, u.created_at AS owner_created_at, \
     u.updated_at AS owner_updated_at";

#[derive(Debug, sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    role: String,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    owner_id: Option<i64>,
    owner_name: Option<String>,
    owner_role: Option<String>,
    owner_disabled: Option<bool>,
    owner_created_at: Option<DateTime<Utc>>,
    owner_updated_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for TokenGrant {
    type Error = AccountError;
    fn try_from(row: TokenRow) -> Result<TokenGrant, AccountError> {
        let owner = match (
            row.owner_id,
            row.owner_name,
            row.owner_role,
            row.owner_disabled,
            row.owner_created_at,
            row.owner_updated_at,
        ) {
            (Some(id), Some(name), Some(role), Some(disabled), Some(created), Some(updated)) => {
                Some(User {
                    role: parse_role(&format!("user {name:?}"), &role)?,
                    id,
                    name,
                    disabled,
                    created_at: created,
                    updated_at: updated,
                })
            }
            _ => None,
        };
        Ok(TokenGrant {
            token: ApiToken {
                role: parse_role(&format!("token {:?}", row.name), &row.role)?,
                id: row.id,
                name: row.name,
                owner: owner.as_ref().map(|o| o.name.clone()),
                created_by: row.created_by,
                created_at: row.created_at,
                expires_at: row.expires_at,
                last_used_at: row.last_used_at,
                revoked_at: row.revoked_at,
            },
            owner,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: Option<String>,
    source: Option<String>,
    detail: Option<String>,
}

/// What [`Store::create_api_token`] stores. The secret itself is not here: only its digest.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub role: Role,
    pub secret_digest: SecretDigest,
    /// The creating user's id; None when the static admin token creates it.
    pub owner_id: Option<i64>,
    /// The creator as an audit actor (`user:alice`, `token:static-admin`).
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Times kept to microseconds, PostgreSQL's precision, so both engines return what was written.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

const INSERT_EVENT: &str = "INSERT INTO account_audit (at, actor, action, subject, source, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";

impl Store {
    /// How many users exist (the first admin is created only when there are none).
    pub async fn count_users(&self) -> Result<u64, AccountError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Creates a user with an argon2id hash from [`crate::accounts::password::hash_password`];
    /// audited as `user_created` by `actor`.
    pub async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
    ) -> Result<User, AccountError> {
        validate_name("user", name)?;
        let now = super::now();
        let sql = format!(
            "INSERT INTO users (name, role, password_hash, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, FALSE, $4, $4) RETURNING {USER_COLUMNS}"
        );
        let inserted: Result<UserRow, sqlx::Error> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
            if row.is_ok() {
                sqlx::query(INSERT_EVENT)
                    .bind(now)
                    .bind(actor)
                    .bind(events::USER_CREATED)
                    .bind(name)
                    .bind(None::<String>)
                    .bind(Some(format!("role {role}")))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            } else {
                // Roll back now rather than on drop: a dropped SQLite transaction keeps its write
                // lock until the pool gets round to it, and the next request's write fails busy.
                tx.rollback().await?;
            }
            row
        });
        match inserted {
            Ok(row) => row.try_into(),
            Err(error) if is_unique_violation(&error) => {
                Err(AccountError::DuplicateUser(name.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>, AccountError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
        let row: Option<UserRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await?
        });
        row.map(User::try_from).transpose()
    }

    /// The user and its password hash, for checking a login. The hash goes no further than the
    /// verification.
    pub async fn user_for_login(&self, name: &str) -> Result<Option<(User, String)>, AccountError> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1");
        let row: Option<LoginRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await?
        });
        row.map(|row| {
            let user = User::try_from(UserRow {
                id: row.id,
                name: row.name,
                role: row.role,
                disabled: row.disabled,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })?;
            Ok((user, row.password_hash))
        })
        .transpose()
    }

    /// All users, by name (operator teams are small: no pagination).
    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
        let rows: Vec<UserRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        rows.into_iter().map(User::try_from).collect()
    }

    /// Changes a user's role, password or disabled flag (audited as `user_updated`). Ends the
    /// user's sessions when the password changes or the account is disabled. Refuses to demote or
    /// disable the last enabled admin, so the fleet never ends up without one.
    pub async fn update_user(
        &self,
        name: &str,
        update: UserUpdate,
        actor: &str,
    ) -> Result<User, AccountError> {
        let current = self
            .user(name)
            .await?
            .ok_or_else(|| AccountError::UserNotFound(name.to_owned()))?;
        let role = update.role.unwrap_or(current.role);
        let disabled = update.disabled.unwrap_or(current.disabled);
        let was_admin = current.role == Role::Admin && !current.disabled;
        let stays_admin = role == Role::Admin && !disabled;
        let end_sessions = update.password_hash.is_some() || (disabled && !current.disabled);
        let mut changed = Vec::new();
        if role != current.role {
            changed.push(format!("role {} → {role}", current.role));
        }
        if disabled != current.disabled {
            changed.push(if disabled { "disabled" } else { "enabled" }.to_owned());
        }
        if update.password_hash.is_some() {
            changed.push("password changed".to_owned());
        }
        let now = super::now();
        let sql = format!(
            "UPDATE users SET role = $1, disabled = $2, \
             password_hash = COALESCE($3, password_hash), updated_at = $4 \
             WHERE id = $5 RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if was_admin && !stays_admin {
                // Checked inside the transaction; on PostgreSQL two concurrent demotions of the
                // last two admins could still both pass (READ COMMITTED): an admin-only action
                // with a visible audit trail, accepted.
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1",
                )
                .bind(current.id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Err(AccountError::LastAdmin(name.to_owned()));
                }
            }
            let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
                .bind(role.as_str())
                .bind(disabled)
                .bind(update.password_hash.as_deref())
                .bind(now)
                .bind(current.id)
                .fetch_one(&mut *tx)
                .await?;
            if end_sessions {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(current.id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(INSERT_EVENT)
                .bind(now)
                .bind(actor)
                .bind(events::USER_UPDATED)
                .bind(name)
                .bind(None::<String>)
                .bind(Some(changed.join(", ")).filter(|c| !c.is_empty()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        });
        row.try_into()
    }

    /// Deletes a user, its sessions and its API tokens (audited as `user_deleted`); the audit
    /// trails keep its name. Refuses to delete the last enabled admin.
    pub async fn delete_user(&self, name: &str, actor: &str) -> Result<(), AccountError> {
        let current = self
            .user(name)
            .await?
            .ok_or_else(|| AccountError::UserNotFound(name.to_owned()))?;
        let now = super::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if current.role == Role::Admin && !current.disabled {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1",
                )
                .bind(current.id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Err(AccountError::LastAdmin(name.to_owned()));
                }
            }
            // Sessions and tokens go by ON DELETE CASCADE.
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(current.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_EVENT)
                .bind(now)
                .bind(actor)
                .bind(events::USER_DELETED)
                .bind(name)
                .bind(None::<String>)
                .bind(None::<String>)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores a new session under the digest of its id.
    pub async fn create_session(
        &self,
        user_id: i64,
        id_digest: &SecretDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id_digest, user_id, created_at, last_used_at, expires_at) \
                 VALUES ($1, $2, $3, $3, $4)",
            )
            .bind(id_digest.as_slice())
            .bind(user_id)
            .bind(micros(now))
            .bind(micros(expires_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The session with this id digest and its user, whatever its expiry (the caller decides
    /// with its clock and idle limit).
    pub async fn session(&self, id_digest: &SecretDigest) -> Result<Option<Session>, AccountError> {
        let row: Option<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT s.created_at, s.last_used_at, s.expires_at, u.id AS user_id, \
                 u.name AS user_name, u.role AS user_role, u.disabled AS user_disabled, \
                 u.created_at AS user_created_at, u.updated_at AS user_updated_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_digest = $1",
            )
            .bind(id_digest.as_slice())
            .fetch_optional(pool)
            .await?
        });
        row.map(|row| {
            Ok(Session {
                user: User {
                    role: parse_role(&format!("user {:?}", row.user_name), &row.user_role)?,
                    id: row.user_id,
                    name: row.user_name,
                    disabled: row.user_disabled,
                    created_at: row.user_created_at,
                    updated_at: row.user_updated_at,
                },
                created_at: row.created_at,
                last_used_at: row.last_used_at,
                expires_at: row.expires_at,
            })
        })
        .transpose()
    }

    /// Records activity on a session (moves its idle deadline).
    pub async fn touch_session(
        &self,
        id_digest: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id_digest = $2")
                .bind(micros(now))
                .bind(id_digest.as_slice())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends a session; false when there was none.
    pub async fn delete_session(&self, id_digest: &SecretDigest) -> Result<bool, AccountError> {
        let result = on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE id_digest = $1")
                .bind(id_digest.as_slice())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result > 0)
    }

    /// Deletes sessions past their absolute end or idle since before `idle_cutoff`.
    pub async fn delete_expired_sessions(
        &self,
        idle_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, AccountError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_used_at < $2")
                .bind(micros(now))
                .bind(micros(idle_cutoff))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Stores a new API token (audited as `token_created`).
    pub async fn create_api_token(&self, new: NewApiToken<'_>) -> Result<ApiToken, AccountError> {
        validate_name("token", new.name)?;
        let now = super::now();
        let inserted: Result<i64, sqlx::Error> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query_scalar::<_, i64>(
                "INSERT INTO api_tokens (name, secret_digest, role, owner_id, created_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(new.name)
            .bind(new.secret_digest.as_slice())
            .bind(new.role.as_str())
            .bind(new.owner_id)
            .bind(new.created_by)
            .bind(now)
            .bind(new.expires_at.map(micros))
            .fetch_one(&mut *tx)
            .await;
            if id.is_ok() {
                sqlx::query(INSERT_EVENT)
                    .bind(now)
                    .bind(new.created_by)
                    .bind(events::TOKEN_CREATED)
                    .bind(new.name)
                    .bind(None::<String>)
                    .bind(Some(format!("role {}", new.role)))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            } else {
                // As in create_user: release the write lock before answering.
                tx.rollback().await?;
            }
            id
        });
        match inserted {
            Ok(_) => self
                .api_token(new.name)
                .await?
                .ok_or_else(|| AccountError::TokenNotFound(new.name.to_owned())),
            Err(error) if is_unique_violation(&error) => {
                Err(AccountError::DuplicateToken(new.name.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn token_rows(
        &self,
        condition: &str,
        bind: TokenBind<'_>,
    ) -> Result<Vec<TokenGrant>, AccountError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t LEFT JOIN users u ON u.id = t.owner_id \
             {condition} ORDER BY t.name"
        );
        let rows: Vec<TokenRow> = on_pool!(self, pool => {
            let query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            let query = match bind {
                TokenBind::None => query,
                TokenBind::Text(text) => query.bind(text),
                TokenBind::Bytes(bytes) => query.bind(bytes),
                TokenBind::Int(int) => query.bind(int),
            };
            query.fetch_all(pool).await?
        });
        rows.into_iter().map(TokenGrant::try_from).collect()
    }

    /// The token whose secret has this digest, with its owner (revoked and expired tokens too:
    /// [`TokenGrant::effective_role`] decides).
    pub async fn api_token_grant(
        &self,
        secret_digest: &SecretDigest,
    ) -> Result<Option<TokenGrant>, AccountError> {
        let mut rows = self
            .token_rows(
                "WHERE t.secret_digest = $1",
                TokenBind::Bytes(secret_digest.as_slice()),
            )
            .await?;
        Ok(rows.pop())
    }

    pub async fn api_token(&self, name: &str) -> Result<Option<ApiToken>, AccountError> {
        let mut rows = self
            .token_rows("WHERE t.name = $1", TokenBind::Text(name))
            .await?;
        Ok(rows.pop().map(|grant| grant.token))
    }

    /// Tokens by name: those owned by `owner` (a user id), or all when None.
    pub async fn list_api_tokens(&self, owner: Option<i64>) -> Result<Vec<ApiToken>, AccountError> {
        let rows = match owner {
            Some(id) => {
                self.token_rows("WHERE t.owner_id = $1", TokenBind::Int(id))
                    .await?
            }
            None => self.token_rows("", TokenBind::None).await?,
        };
        Ok(rows.into_iter().map(|grant| grant.token).collect())
    }

    /// Records that a token was used (shown in the token list).
    pub async fn touch_api_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), AccountError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(micros(now))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revokes a token at once (audited as `token_revoked`); revoking twice keeps the first time.
    pub async fn revoke_api_token(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<ApiToken, AccountError> {
        let now = super::now();
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE name = $2",
            )
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                sqlx::query(INSERT_EVENT)
                    .bind(now)
                    .bind(actor)
                    .bind(events::TOKEN_REVOKED)
                    .bind(name)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            changed
        });
        if changed == 0 {
            return Err(AccountError::TokenNotFound(name.to_owned()));
        }
        self.api_token(name)
            .await?
            .ok_or_else(|| AccountError::TokenNotFound(name.to_owned()))
    }

    /// Appends to the account audit trail (logins, failed logins, logouts).
    pub async fn record_account_event(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        source: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), AccountError> {
        let now = super::now();
        on_pool!(self, pool => {
            sqlx::query(INSERT_EVENT)
                .bind(now)
                .bind(actor)
                .bind(action)
                .bind(subject)
                .bind(source)
                .bind(detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The account audit trail, newest first: `limit` (1–1000) events with an id below `before`.
    pub async fn account_audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AccountEventPage, AccountError> {
        let limit = limit.clamp(1, MAX_ACCOUNT_AUDIT_PAGE);
        let rows: Vec<EventRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, at, actor, action, subject, source, detail FROM account_audit \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?
        });
        let mut events: Vec<AccountEvent> = rows
            .into_iter()
            .map(|row| AccountEvent {
                id: row.id,
                at: row.at,
                actor: row.actor,
                action: row.action,
                subject: row.subject,
                source: row.source,
                detail: row.detail,
            })
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_before = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AccountEventPage {
            events,
            next_before,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum TokenBind<'a> {
    None,
    Text(&'a str),
    Bytes(&'a [u8]),
    Int(i64),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! The account storage cases, run on SQLite and (when `FERRITE_TEST_POSTGRES_URL` is set;
    //! required when `CI=true`) on PostgreSQL, like `store/tests.rs`.

    use chrono::Duration;

    use super::*;
    use crate::accounts::secrets::digest;

    use crate::store::tests::dual_backend_tests;

    dual_backend_tests!(
        case_users_create_read_update_delete,
        case_the_last_admin_stays,
        case_sessions_live_and_die,
        case_api_tokens,
        case_account_audit_pages_newest_first,
    );

    // Hashing is not under test here; any PHC-looking text will do.
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA";

    async fn case_users_create_read_update_delete(store: Store) {
        assert_eq!(store.count_users().await.unwrap(), 0);
        let alice = store
            .create_user("alice", Role::Admin, HASH, "system:cli")
            .await
            .unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Admin));
        assert!(!alice.disabled);
        let bob = store
            .create_user("bob", Role::FieldService, HASH, "user:alice")
            .await
            .unwrap();
        assert!(matches!(
            store.create_user("bob", Role::Admin, HASH, "user:alice").await,
            Err(AccountError::DuplicateUser(name)) if name == "bob"
        ));
        assert!(matches!(
            store
                .create_user("b:ob", Role::Admin, HASH, "user:alice")
                .await,
            Err(AccountError::Invalid(_))
        ));
        assert_eq!(store.count_users().await.unwrap(), 2);
        assert_eq!(store.user("bob").await.unwrap(), Some(bob.clone()));
        assert_eq!(store.user("carol").await.unwrap(), None);
        let (found, hash) = store.user_for_login("alice").await.unwrap().unwrap();
        assert_eq!((found, hash.as_str()), (alice.clone(), HASH));
        let names: Vec<String> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);

        // A session for bob survives a role change but not a new password.
        let now = Utc::now();
        let sid = digest("bob-session");
        store
            .create_session(bob.id, &sid, now, now + Duration::hours(1))
            .await
            .unwrap();
        let promoted = store
            .update_user(
                "bob",
                UserUpdate {
                    role: Some(Role::FleetManager),
                    ..UserUpdate::default()
                },
                "user:alice",
            )
            .await
            .unwrap();
        assert_eq!(promoted.role, Role::FleetManager);
        let session = store.session(&sid).await.unwrap().unwrap();
        assert_eq!(
            session.user.role,
            Role::FleetManager,
            "sessions see the new role"
        );
        store
            .update_user(
                "bob",
                UserUpdate {
                    password_hash: Some("$argon2id$new".into()),
                    ..UserUpdate::default()
                },
                "user:alice",
            )
            .await
            .unwrap();
        assert_eq!(store.session(&sid).await.unwrap(), None);
        assert_eq!(
            store.user_for_login("bob").await.unwrap().unwrap().1,
            "$argon2id$new"
        );
        let disabled = store
            .update_user(
                "bob",
                UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                },
                "user:alice",
            )
            .await
            .unwrap();
        assert!(disabled.disabled);
        assert!(matches!(
            store
                .update_user("carol", UserUpdate::default(), "user:alice")
                .await,
            Err(AccountError::UserNotFound(_))
        ));

        // Deleting bob takes his sessions and tokens with him.
        store
            .create_session(bob.id, &sid, now, now + Duration::hours(1))
            .await
            .unwrap();
        store
            .create_api_token(NewApiToken {
                name: "bob-script",
                role: Role::FieldService,
                secret_digest: digest("bob-secret"),
                owner_id: Some(bob.id),
                created_by: "user:bob",
                expires_at: None,
            })
            .await
            .unwrap();
        store.delete_user("bob", "user:alice").await.unwrap();
        assert_eq!(store.user("bob").await.unwrap(), None);
        assert_eq!(store.session(&sid).await.unwrap(), None);
        assert!(
            store
                .api_token_grant(&digest("bob-secret"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            store.delete_user("bob", "user:alice").await,
            Err(AccountError::UserNotFound(_))
        ));
    }

    async fn case_the_last_admin_stays(store: Store) {
        store
            .create_user("root", Role::Admin, HASH, "system:cli")
            .await
            .unwrap();
        let demote = UserUpdate {
            role: Some(Role::FleetManager),
            ..UserUpdate::default()
        };
        let disable = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        assert!(matches!(
            store.update_user("root", demote.clone(), "user:root").await,
            Err(AccountError::LastAdmin(_))
        ));
        assert!(matches!(
            store
                .update_user("root", disable.clone(), "user:root")
                .await,
            Err(AccountError::LastAdmin(_))
        ));
        assert!(matches!(
            store.delete_user("root", "user:root").await,
            Err(AccountError::LastAdmin(_))
        ));
        assert_eq!(store.user("root").await.unwrap().unwrap().role, Role::Admin);
        // With a second admin, the first may go.
        store
            .create_user("second", Role::Admin, HASH, "user:root")
            .await
            .unwrap();
        store
            .update_user("root", demote, "user:second")
            .await
            .unwrap();
        assert!(matches!(
            store.update_user("second", disable, "user:second").await,
            Err(AccountError::LastAdmin(_))
        ));
    }

    async fn case_sessions_live_and_die(store: Store) {
        let user = store
            .create_user("alice", Role::FieldService, HASH, "system:cli")
            .await
            .unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let (a, b) = (digest("session-a"), digest("session-b"));
        store
            .create_session(user.id, &a, t0, t0 + Duration::hours(24))
            .await
            .unwrap();
        store
            .create_session(user.id, &b, t0, t0 + Duration::hours(24))
            .await
            .unwrap();
        let session = store.session(&a).await.unwrap().unwrap();
        assert_eq!(session.user, user);
        assert_eq!(
            session.created_at,
            micros(t0),
            "microsecond precision on both engines"
        );
        assert_eq!(session.last_used_at, micros(t0));
        assert_eq!(session.expires_at, micros(t0 + Duration::hours(24)));
        assert_eq!(store.session(&digest("nope")).await.unwrap(), None);

        let t1 = t0 + Duration::hours(10);
        store.touch_session(&a, t1).await.unwrap();
        assert_eq!(
            store.session(&a).await.unwrap().unwrap().last_used_at,
            micros(t1)
        );

        // At t0 + 13 h, b has been idle for more than 12 h; a was used 3 h ago.
        let t2 = t0 + Duration::hours(13);
        let purged = store
            .delete_expired_sessions(t2 - Duration::hours(12), t2)
            .await
            .unwrap();
        assert_eq!(purged, 1);
        assert!(store.session(&a).await.unwrap().is_some());
        assert!(store.session(&b).await.unwrap().is_none());
        // Past the absolute end even a busy session goes.
        let t3 = t0 + Duration::hours(24);
        store.touch_session(&a, t3).await.unwrap();
        let purged = store
            .delete_expired_sessions(t3 - Duration::hours(12), t3)
            .await
            .unwrap();
        assert_eq!(purged, 1);

        store
            .create_session(user.id, &b, t3, t3 + Duration::hours(1))
            .await
            .unwrap();
        assert!(store.delete_session(&b).await.unwrap());
        assert!(!store.delete_session(&b).await.unwrap());
    }

    async fn case_api_tokens(store: Store) {
        let alice = store
            .create_user("alice", Role::FleetManager, HASH, "system:cli")
            .await
            .unwrap();
        let expires = DateTime::from_timestamp(4_000_000_000, 500_000_000).unwrap();
        let token = store
            .create_api_token(NewApiToken {
                name: "ci-nightly",
                role: Role::FieldService,
                secret_digest: digest("secret-1"),
                owner_id: Some(alice.id),
                created_by: "user:alice",
                expires_at: Some(expires),
            })
            .await
            .unwrap();
        assert_eq!(token.name, "ci-nightly");
        assert_eq!(token.owner.as_deref(), Some("alice"));
        assert_eq!(token.expires_at, Some(expires));
        assert_eq!(token.revoked_at, None);
        let automation = store
            .create_api_token(NewApiToken {
                name: "automation",
                role: Role::Admin,
                secret_digest: digest("secret-2"),
                owner_id: None,
                created_by: "token:static-admin",
                expires_at: None,
            })
            .await
            .unwrap();
        assert_eq!(automation.owner, None);

        let grant = store
            .api_token_grant(&digest("secret-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grant.token, token);
        assert_eq!(grant.owner, Some(alice.clone()));
        let now = Utc::now();
        assert_eq!(grant.effective_role(now), Some(Role::FieldService));
        assert!(
            store
                .api_token_grant(&digest("wrong"))
                .await
                .unwrap()
                .is_none()
        );

        store.touch_api_token(token.id, now).await.unwrap();
        assert_eq!(
            store
                .api_token("ci-nightly")
                .await
                .unwrap()
                .unwrap()
                .last_used_at,
            Some(micros(now))
        );

        let mine: Vec<String> = store
            .list_api_tokens(Some(alice.id))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(mine, ["ci-nightly"]);
        assert_eq!(store.list_api_tokens(None).await.unwrap().len(), 2);

        let revoked = store
            .revoke_api_token("ci-nightly", "user:alice")
            .await
            .unwrap();
        let when = revoked.revoked_at.unwrap();
        let grant = store
            .api_token_grant(&digest("secret-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grant.effective_role(Utc::now()), None, "revoked");
        let again = store
            .revoke_api_token("ci-nightly", "user:alice")
            .await
            .unwrap();
        assert_eq!(
            again.revoked_at,
            Some(when),
            "the first revocation time stays"
        );
        assert!(matches!(
            store.revoke_api_token("nope", "user:alice").await,
            Err(AccountError::TokenNotFound(_))
        ));
        // Names are never reused, not even after revocation.
        assert!(matches!(
            store
                .create_api_token(NewApiToken {
                    name: "ci-nightly",
                    role: Role::FieldService,
                    secret_digest: digest("secret-3"),
                    owner_id: Some(alice.id),
                    created_by: "user:alice",
                    expires_at: None,
                })
                .await,
            Err(AccountError::DuplicateToken(_))
        ));
    }

    async fn case_account_audit_pages_newest_first(store: Store) {
        store
            .create_user("alice", Role::Admin, HASH, "system:first-start")
            .await
            .unwrap();
        for n in 0..5 {
            store
                .record_account_event(
                    "anonymous",
                    events::LOGIN_FAILED,
                    Some("alice"),
                    Some("192.0.2.1"),
                    Some(&format!("attempt {n}")),
                )
                .await
                .unwrap();
        }
        let first = store.account_audit(None, 4).await.unwrap();
        assert_eq!(first.events.len(), 4);
        assert_eq!(first.events[0].detail.as_deref(), Some("attempt 4"));
        assert_eq!(first.events[0].source.as_deref(), Some("192.0.2.1"));
        let rest = store.account_audit(first.next_before, 4).await.unwrap();
        assert_eq!(rest.next_before, None);
        let actions: Vec<&str> = rest.events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, [events::LOGIN_FAILED, events::USER_CREATED]);
        assert_eq!(rest.events[1].actor, "system:first-start");
        assert_eq!(rest.events[1].subject.as_deref(), Some("alice"));
    }
}
