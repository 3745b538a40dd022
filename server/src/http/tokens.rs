//! API tokens for scripts: create (the secret is answered once), list, revoke. Anyone logged in
//! may make tokens for themselves, with at most their own role; a token never acts above its
//! owner's current role and dies with the owner's account. Admins see and revoke every token.
//! Tokens cannot make tokens: a leaked token must not be able to entrench itself.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use utoipa_axum::routes;

use super::devices::actor;
use super::extract::JsonBody;
use super::{ApiError, AppState, Routes, convert};
use crate::accounts::{
    AccountValidationError, Principal, PrincipalKind, Role, secrets, validate_name,
};
use crate::store::accounts::NewApiToken;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(list_tokens, create_token))
            .routes(routes!(revoke_token)),
    ]
}

/// Whose tokens the caller may see and revoke: all for an admin, else its own user's.
fn scope(principal: &Principal) -> Option<i64> {
    if principal.role.allows(Role::Admin) {
        None
    } else {
        // A non-admin principal is a user or a user's token: user_id is set. The fallback
        // (-1, no such user) shows nothing rather than everything.
        Some(principal.user_id().unwrap_or(-1))
    }
}

/// The caller's tokens (an admin's answer lists every token).
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = Vec<api_types::TokenInfo>)))]
async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<api_types::TokenInfo>>, ApiError> {
    let tokens = state.store.list_api_tokens(scope(&principal)).await?;
    Ok(Json(tokens.into_iter().map(convert::token).collect()))
}

/// Creates an API token with at most the caller's role. The secret is in this answer only; it
/// is stored as a SHA-256 digest.
#[utoipa::path(post, path = "/tokens", tag = "tokens",
    request_body = api_types::NewToken,
    responses((status = 201, body = api_types::CreatedToken),
              (status = 400, body = api_types::ErrorBody),
              (status = 403, body = api_types::ErrorBody, description = "Role above the caller's, or the caller is a token"),
              (status = 409, body = api_types::ErrorBody, description = "Name used before")))]
async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(new): JsonBody<api_types::NewToken>,
) -> Result<(StatusCode, Json<api_types::CreatedToken>), ApiError> {
    if let PrincipalKind::Token { .. } = principal.kind {
        return Err(ApiError::Refused(
            "an API token cannot create API tokens; log in as a user".to_owned(),
        ));
    }
    validate_name("token", &new.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if new.name == crate::accounts::STATIC_ADMIN_NAME {
        return Err(ApiError::BadRequest(
            AccountValidationError::ReservedName(new.name).to_string(),
        ));
    }
    let role = new.role.map_or(principal.role, convert::role_from_api);
    if !principal.role.allows(role) {
        return Err(ApiError::Forbidden {
            required: role,
            actual: principal.role,
        });
    }
    let now = state.auth.now();
    let expires_at = match new.expires_at.as_deref() {
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|e| ApiError::BadRequest(format!("expires_at is not RFC 3339: {e}")))?
                .with_timezone(&Utc);
            if at <= now {
                return Err(ApiError::BadRequest(
                    AccountValidationError::ExpiryInPast.to_string(),
                ));
            }
            Some(at)
        }
        None => None,
    };
    let secret = secrets::new_token_secret()?;
    let created_by = actor(&principal)?.to_string();
    let token = state
        .store
        .create_api_token(NewApiToken {
            name: &new.name,
            role,
            secret_digest: secrets::digest(&secret),
            owner_id: principal.user_id(),
            created_by: &created_by,
            expires_at,
        })
        .await?;
    tracing::info!(token = %token.name, role = %role, by = %principal.name, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(api_types::CreatedToken {
            token: convert::token(token),
            secret,
        }),
    ))
}

/// Revokes a token at once (its name stays taken). Others' tokens look absent to non-admins.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = api_types::TokenInfo),
              (status = 404, body = api_types::ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<api_types::TokenInfo>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no API token named {name:?}"));
    let token = state.store.api_token(&name).await?.ok_or_else(not_found)?;
    if let Some(owner_id) = scope(&principal) {
        let mine = state
            .store
            .list_api_tokens(Some(owner_id))
            .await?
            .iter()
            .any(|t| t.id == token.id);
        if !mine {
            return Err(not_found());
        }
    }
    let by = actor(&principal)?.to_string();
    let token = state.store.revoke_api_token(&name, &by).await?;
    tracing::info!(token = %token.name, by = %principal.name, "API token revoked");
    Ok(Json(convert::token(token)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use axum::http::{Method, StatusCode};
    use chrono::Duration;
    use serde_json::{Value, json};

    use super::super::convert;
    use super::super::test_util::*;
    use crate::accounts::{Role, UserUpdate};

    #[tokio::test]
    async fn tokens_are_shown_once_work_and_die_when_revoked() {
        let app = TestApp::new().await;
        app.user("alice", Role::FleetManager).await;
        let login = app.login("alice", PASSWORD).await;
        let alice = Auth::Cookie {
            session: &login.session,
            csrf: Some(&login.csrf),
        };
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "ci", "role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "above alice's role: {body}");
        let (status, created) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "ci-nightly"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("ferrite_"));
        assert_eq!(
            created["token"]["role"], "fleet-manager",
            "the creator's role by default"
        );
        assert_eq!(created["token"]["owner"], "alice");
        assert_eq!(created["token"]["created_by"], "user:alice");

        // The token works, is audited by name, and cannot make tokens.
        let ci = Auth::Bearer(&secret);
        let (status, me) = app.get("/api/v1/me", ci).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (me["kind"].as_str(), me["name"].as_str()),
            (Some("token"), Some("ci-nightly"))
        );
        let (status, _) = app
            .send(
                Method::POST,
                "/api/v1/devices",
                ci,
                json!({"endpoint": "meter-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, audit) = app.get("/api/v1/devices/meter-1/audit", ci).await;
        assert_eq!(audit["entries"][0]["actor"], "token:ci-nightly");
        let (status, body) = app
            .send(Method::POST, "/api/v1/tokens", ci, json!({"name": "ci-2"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Listed without the secret; the name is never reused.
        let (status, list) = app.get("/api/v1/tokens", alice).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["name"], "ci-nightly");
        assert!(list[0]["last_used_at"].is_string());
        assert!(!list.to_string().contains(&secret));

        let (status, revoked) = app
            .send(
                Method::DELETE,
                "/api/v1/tokens/ci-nightly",
                alice,
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(revoked["revoked_at"].is_string());
        assert_eq!(app.get("/api/v1/me", ci).await.0, StatusCode::UNAUTHORIZED);
        let (status, _) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "ci-nightly"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn tokens_expire_follow_their_owner_and_stay_private() {
        let app = TestApp::new().await;
        app.user("alice", Role::Admin).await;
        app.user("bob", Role::FieldService).await;
        let a = app.login("alice", PASSWORD).await;
        let alice = Auth::Cookie {
            session: &a.session,
            csrf: Some(&a.csrf),
        };
        let b = app.login("bob", PASSWORD).await;
        let bob = Auth::Cookie {
            session: &b.session,
            csrf: Some(&b.csrf),
        };
        let expires = convert::time(app.now() + Duration::hours(1));
        let (_, short) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "short", "expires_at": expires}),
            )
            .await;
        let (_, admin) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "admin-script"}),
            )
            .await;
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                alice,
                json!({"name": "past", "expires_at": "2001-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, bobs) = app
            .send(Method::POST, "/api/v1/tokens", bob, json!({"name": "bobs"}))
            .await;

        let short = short["secret"].as_str().unwrap();
        assert_eq!(
            app.get("/api/v1/me", Auth::Bearer(short)).await.0,
            StatusCode::OK
        );
        app.advance(Duration::hours(2));
        assert_eq!(
            app.get("/api/v1/me", Auth::Bearer(short)).await.0,
            StatusCode::UNAUTHORIZED,
            "expired"
        );

        // Bob sees and revokes only his own; alice (admin) sees all.
        let (_, list) = app.get("/api/v1/tokens", bob).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        let (status, _) = app
            .send(
                Method::DELETE,
                "/api/v1/tokens/admin-script",
                bob,
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = app.get("/api/v1/tokens", alice).await;
        assert_eq!(list.as_array().unwrap().len(), 3);

        // A token never acts above its owner's current role.
        let admin = admin["secret"].as_str().unwrap();
        assert_eq!(
            app.get("/api/v1/users", Auth::Bearer(admin)).await.0,
            StatusCode::OK
        );
        app.user("root", Role::Admin).await;
        app.state
            .store
            .update_user(
                "alice",
                UserUpdate {
                    role: Some(Role::FieldService),
                    ..UserUpdate::default()
                },
                "user:root",
            )
            .await
            .unwrap();
        let (status, body) = app.get("/api/v1/users", Auth::Bearer(admin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (_, me) = app.get("/api/v1/me", Auth::Bearer(admin)).await;
        assert_eq!(me["role"], "field-service");

        // …and dies with the owner's account.
        let bobs = bobs["secret"].as_str().unwrap();
        app.state
            .store
            .delete_user("bob", "user:root")
            .await
            .unwrap();
        assert_eq!(
            app.get("/api/v1/me", Auth::Bearer(bobs)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn the_static_token_makes_unowned_tokens() {
        let app = TestApp::new().await;
        let (status, created) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                Auth::Bearer(TOKEN),
                json!({"name": "automation", "role": "fleet-manager"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["token"]["owner"], Value::Null);
        assert_eq!(created["token"]["created_by"], "token:static-admin");
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                Auth::Bearer(TOKEN),
                json!({"name": "static-admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "reserved: {body}");
    }
}
