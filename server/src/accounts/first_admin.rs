//! The first admin account. There is no default password: the first admin comes either from
//! `ferrite user add --role admin` or, on a start with no users at all, from the environment
//! (`FERRITE_ADMIN_USER` + `FERRITE_ADMIN_PASSWORD`, e.g. from a container's secret store).
//! Once any user exists the variables are ignored, so a forgotten variable cannot reset a
//! password.

use super::{AccountError, Role, User, password, validate_name, validate_password};
use crate::store::Store;

pub const ADMIN_USER_VAR: &str = "FERRITE_ADMIN_USER";
pub const ADMIN_PASSWORD_VAR: &str = "FERRITE_ADMIN_PASSWORD";
/// The audit actor of accounts created by the server itself at first start.
pub const FIRST_START_ACTOR: &str = "system:first-start";

/// Hashes on a blocking thread (argon2id takes tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?
}

/// Creates a user after validating its name and password.
pub async fn create_user(
    store: &Store,
    name: &str,
    role: Role,
    password: String,
    actor: &str,
) -> Result<User, AccountError> {
    validate_name("user", name)?;
    validate_password(&password)?;
    let hash = hash_password(password).await?;
    store.create_user(name, role, &hash, actor).await
}

/// Creates the admin `name` if the store has no users yet; None when users already exist.
pub async fn create_first_admin(
    store: &Store,
    name: &str,
    password: String,
) -> Result<Option<User>, AccountError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    create_user(store, name, Role::Admin, password, FIRST_START_ACTOR)
        .await
        .map(Some)
}

/// At server start: the first admin from the environment, when both variables are set and no
/// user exists. Logs what it did (never the password).
pub async fn ensure_first_admin_from_env(store: &Store) -> Result<(), AccountError> {
    let name = std::env::var(ADMIN_USER_VAR).ok().filter(|v| !v.is_empty());
    let password = std::env::var(ADMIN_PASSWORD_VAR)
        .ok()
        .filter(|v| !v.is_empty());
    match (name, password) {
        (Some(name), Some(password)) => match create_first_admin(store, &name, password).await? {
            Some(user) => {
                tracing::info!(user = %user.name, "created the first admin from {ADMIN_USER_VAR}");
            }
            None => tracing::info!(
                "{ADMIN_USER_VAR} is ignored: users exist already (unset {ADMIN_PASSWORD_VAR})"
            ),
        },
        (None, None) => {
            if store.count_users().await? == 0 {
                tracing::warn!(
                    "no operator account exists: create one with `ferrite user add --name NAME \
                     --role admin`, or set {ADMIN_USER_VAR} and {ADMIN_PASSWORD_VAR} for the first \
                     start"
                );
            }
        }
        _ => tracing::warn!(
            "{ADMIN_USER_VAR} and {ADMIN_PASSWORD_VAR} must be set together; no admin created"
        ),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::fleet::secrets::ServerKey;

    #[tokio::test]
    async fn the_first_admin_is_made_only_when_no_user_exists() {
        let store = Store::connect("sqlite::memory:", ServerKey::from_bytes([1; 32]))
            .await
            .unwrap();
        assert!(
            create_first_admin(&store, "root", "short".to_owned())
                .await
                .is_err(),
            "no weak first password either"
        );
        let admin = create_first_admin(&store, "root", "first admin password".to_owned())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(
            create_first_admin(&store, "root2", "another admin password".to_owned())
                .await
                .unwrap()
                .is_none(),
            "users exist: the environment is ignored"
        );
        assert_eq!(store.count_users().await.unwrap(), 1);
        let event = &store.account_audit(None, 1).await.unwrap().events[0];
        assert_eq!(
            (event.actor.as_str(), event.action.as_str()),
            (FIRST_START_ACTOR, "user_created")
        );
    }
}
