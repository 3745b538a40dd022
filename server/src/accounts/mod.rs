//! Operator accounts: users with roles, their passwords (argon2id), console sessions, API tokens
//! for scripts, login rate limiting, and the first admin. The store keeps the rows
//! (`store/accounts.rs`); the HTTP layer (`http/access.rs`) turns credentials into a
//! [`Principal`] and checks its role.
//!
//! Invariants: a password, a session id or a token secret is never stored, logged or returned
//! after creation in clear; only argon2id hashes (passwords) and SHA-256 digests (256-bit random
//! secrets) are kept.

pub mod cli;
pub mod first_admin;
pub mod limiter;
pub mod password;
pub mod secrets;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::fleet::lifecycle::{Actor, ActorError};

/// What an operator may do. Ordered: each role can do everything the roles before it can
/// (PRODUCT.md "Console"; issue "Operator accounts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// See devices, read, diagnose.
    FieldService,
    /// + firmware and campaigns, lifecycle actions (suspend, resume), onboarding.
    FleetManager,
    /// + users, decommissioning, settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::FieldService, Role::FleetManager, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::FieldService => "field-service",
            Role::FleetManager => "fleet-manager",
            Role::Admin => "admin",
        }
    }

    /// Does this role include everything `required` may do?
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (field-service, fleet-manager or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

/// Longest user or token name; they appear in audit actors (`user:NAME`, `token:NAME`).
pub const MAX_NAME_LEN: usize = 64;
/// Shortest password accepted. Length is the one rule that measurably helps (NIST SP 800-63B
/// §3.1.1.2); no composition rules.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted: argon2 hashes any length, but a megabyte "password" is a
/// denial-of-service attempt, not a credential.
pub const MAX_PASSWORD_LEN: usize = 256;
/// The audit name of the static admin token from `FERRITE_API_TOKEN` (`token:static-admin`);
/// no stored token may take it.
pub const STATIC_ADMIN_NAME: &str = "static-admin";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountValidationError {
    #[error(
        "a {what} name must be 1 to {MAX_NAME_LEN} characters: letters, digits, '.', '_', '-', '@'"
    )]
    Name { what: &'static str },
    #[error("the name {0:?} is reserved")]
    ReservedName(String),
    #[error(
        "a password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters without control characters"
    )]
    Password,
    #[error(transparent)]
    Role(#[from] UnknownRole),
    #[error("the expiry must be in the future")]
    ExpiryInPast,
}

/// User and token names: a small alphabet, because they end up in audit actors, URLs and logs.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), AccountValidationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountValidationError::Name { what })
    }
}

pub fn validate_password(password: &str) -> Result<(), AccountValidationError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&chars)
        && !password.chars().any(char::is_control)
    {
        Ok(())
    } else {
        Err(AccountValidationError::Password)
    }
}

/// An operator account as stored (never with its password hash; see
/// [`crate::store::Store::user_for_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a user; None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    /// An argon2id PHC string from [`password::hash_password`].
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

/// A console session: a 256-bit random id in an HttpOnly cookie, stored as its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

/// An API token for scripts. The secret is shown once at creation; only its digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    /// Unique forever (revoked tokens keep theirs), so `token:NAME` in the audit trail names
    /// exactly one token.
    pub name: String,
    pub role: Role,
    /// The user who created it; None when the static admin token did. The token dies with its
    /// owner's account, and never acts above the owner's current role.
    pub owner: Option<String>,
    /// `user:alice` or `token:static-admin`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}

/// What a token lookup finds: the token and the state of its owner.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token: ApiToken,
    /// The owner's account (None for tokens made by the static admin token).
    pub owner: Option<User>,
}

impl TokenGrant {
    /// The role the token acts with now: its own, capped by its owner's current role; None when
    /// the token is revoked, expired, or its owner is disabled.
    pub fn effective_role(&self, now: DateTime<Utc>) -> Option<Role> {
        if !self.token.is_live(now) {
            return None;
        }
        match &self.owner {
            Some(owner) if owner.disabled => None,
            Some(owner) => Some(self.token.role.min(owner.role)),
            None => Some(self.token.role),
        }
    }
}

/// An account event for the account audit trail (logins, failures, user and token changes).
/// Never carries a password or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who did it (`user:alice`, `token:ci`), or `anonymous` for a failed login.
    pub actor: String,
    pub action: String,
    /// The user or token acted upon.
    pub subject: Option<String>,
    /// The client address, for logins.
    pub source: Option<String>,
    pub detail: Option<String>,
}

/// Account audit action names.
pub mod events {
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const USER_CREATED: &str = "user_created";
    pub const USER_UPDATED: &str = "user_updated";
    pub const USER_DELETED: &str = "user_deleted";
    pub const TOKEN_CREATED: &str = "token_created";
    pub const TOKEN_REVOKED: &str = "token_revoked";
}

#[derive(Debug, Clone)]
pub struct AccountEventPage {
    pub events: Vec<AccountEvent>,
    pub next_before: Option<i64>,
}

/// Who is making a request, as established by the HTTP layer: a logged-in user, an API token,
/// or the static admin token. Its [`Actor`] is what the audit trail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    /// The role in force for this request.
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A user logged in through the console (session cookie).
    User { user_id: i64 },
    /// An API token (`Authorization: Bearer`); `owner` is its user's id.
    Token { token_id: i64, owner: Option<i64> },
    /// `FERRITE_API_TOKEN`.
    StaticAdmin,
}

impl Principal {
    pub fn static_admin() -> Principal {
        Principal {
            kind: PrincipalKind::StaticAdmin,
            name: STATIC_ADMIN_NAME.to_owned(),
            role: Role::Admin,
        }
    }

    /// `user:alice`, `token:ci-nightly`, `token:static-admin`.
    pub fn actor(&self) -> Result<Actor, ActorError> {
        match self.kind {
            PrincipalKind::User { .. } => Actor::user(&self.name),
            PrincipalKind::Token { .. } | PrincipalKind::StaticAdmin => Actor::token(&self.name),
        }
    }

    /// The user account behind this principal: the logged-in user, or a token's owner.
    pub fn user_id(&self) -> Option<i64> {
        match self.kind {
            PrincipalKind::User { user_id } => Some(user_id),
            PrincipalKind::Token { owner, .. } => owner,
            PrincipalKind::StaticAdmin => None,
        }
    }
}

/// Errors of account operations (validation, storage, hashing).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input: {0}")]
    Invalid(#[from] AccountValidationError),
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    #[error("no user named {0:?}")]
    UserNotFound(String),
    #[error("an API token named {0:?} exists or existed (token names are never reused)")]
    DuplicateToken(String),
    #[error("no API token named {0:?}")]
    TokenNotFound(String),
    #[error("refused: {0:?} is the last enabled admin; create or enable another admin first")]
    LastAdmin(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored account data is inconsistent: {0}")]
    Corrupt(String),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Admin.allows(Role::FleetManager));
        assert!(Role::FleetManager.allows(Role::FleetManager));
        assert!(!Role::FieldService.allows(Role::FleetManager));
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn names_and_passwords() {
        assert!(validate_name("user", "alice.smith@ops").is_ok());
        assert!(validate_name("user", "").is_err());
        assert!(
            validate_name("user", "a:b").is_err(),
            "':' would break actors"
        );
        assert!(validate_name("user", "a b").is_err());
        assert!(validate_name("user", &"a".repeat(65)).is_err());
        assert!(validate_password("correct horse battery").is_ok());
        assert!(validate_password("short").is_err());
        assert!(validate_password("tab\tin the password").is_err());
        assert!(validate_password(&"x".repeat(257)).is_err());
    }

    fn user(role: Role, disabled: bool) -> User {
        let now = Utc::now();
        User {
            id: 1,
            name: "alice".into(),
            role,
            disabled,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn token_role_is_capped_by_its_owner() {
        let now = Utc::now();
        let token = ApiToken {
            id: 1,
            name: "ci".into(),
            role: Role::Admin,
            owner: Some("alice".into()),
            created_by: "user:alice".into(),
            created_at: now,
            expires_at: Some(now + chrono::Duration::hours(1)),
            last_used_at: None,
            revoked_at: None,
        };
        let grant = |role, disabled| TokenGrant {
            token: token.clone(),
            owner: Some(user(role, disabled)),
        };
        assert_eq!(
            grant(Role::FleetManager, false).effective_role(now),
            Some(Role::FleetManager)
        );
        assert_eq!(grant(Role::Admin, true).effective_role(now), None);
        assert_eq!(
            grant(Role::Admin, false).effective_role(now + chrono::Duration::hours(2)),
            None,
            "expired"
        );
        let orphan = TokenGrant {
            token: token.clone(),
            owner: None,
        };
        assert_eq!(orphan.effective_role(now), Some(Role::Admin));
    }

    #[test]
    fn principals_become_audit_actors() {
        assert_eq!(
            Principal::static_admin().actor().unwrap().to_string(),
            "token:static-admin"
        );
        let user = Principal {
            kind: PrincipalKind::User { user_id: 3 },
            name: "alice".into(),
            role: Role::Admin,
        };
        assert_eq!(user.actor().unwrap().to_string(), "user:alice");
        assert_eq!(user.user_id(), Some(3));
    }
}
