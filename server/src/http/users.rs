//! Operator accounts (admin only): list, create, show, change (role, password, disabled) and
//! delete users. The last enabled admin can be neither demoted, disabled nor deleted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::routes;

use super::devices::actor;
use super::extract::JsonBody;
use super::{ApiError, AppState, Routes, convert};
use crate::accounts::{Principal, Role, UserUpdate, first_admin, validate_password};

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::Admin)
            .routes(routes!(list_users, create_user))
            .routes(routes!(get_user, update_user, delete_user)),
    ]
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no user named {name:?}"))
}

/// All operator accounts.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = Vec<api_types::UserInfo>)))]
async fn list_users(
    State(state): State<AppState>,
) -> Result<Json<Vec<api_types::UserInfo>>, ApiError> {
    let users = state.store.list_users().await?;
    Ok(Json(users.into_iter().map(convert::user).collect()))
}

/// Creates an operator account (password: 12–256 characters, hashed with argon2id).
#[utoipa::path(post, path = "/users", tag = "users",
    request_body = api_types::NewUser,
    responses((status = 201, body = api_types::UserInfo),
              (status = 400, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(new): JsonBody<api_types::NewUser>,
) -> Result<(StatusCode, Json<api_types::UserInfo>), ApiError> {
    let by = actor(&principal)?.to_string();
    let user = first_admin::create_user(
        &state.store,
        &new.name,
        convert::role_from_api(new.role),
        new.password,
        &by,
    )
    .await?;
    tracing::info!(user = %user.name, role = %user.role, by = %principal.name, "user created");
    Ok((StatusCode::CREATED, Json(convert::user(user))))
}

/// One operator account.
#[utoipa::path(get, path = "/users/{name}", tag = "users",
    params(("name" = String, Path)),
    responses((status = 200, body = api_types::UserInfo),
              (status = 404, body = api_types::ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<api_types::UserInfo>, ApiError> {
    let user = state
        .store
        .user(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(convert::user(user)))
}

/// Changes role, password or disabled flag. A new password or disabling ends the user's
/// sessions; API tokens never act above their owner's current role.
#[utoipa::path(patch, path = "/users/{name}", tag = "users",
    params(("name" = String, Path)),
    request_body = api_types::UserChanges,
    responses((status = 200, body = api_types::UserInfo),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody, description = "The last admin")))]
async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    JsonBody(changes): JsonBody<api_types::UserChanges>,
) -> Result<Json<api_types::UserInfo>, ApiError> {
    let password_hash = match changes.password {
        Some(password) => {
            validate_password(&password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Some(first_admin::hash_password(password).await?)
        }
        None => None,
    };
    let update = UserUpdate {
        role: changes.role.map(convert::role_from_api),
        password_hash,
        disabled: changes.disabled,
    };
    let by = actor(&principal)?.to_string();
    let user = state.store.update_user(&name, update, &by).await?;
    tracing::info!(user = %user.name, by = %principal.name, "user changed");
    Ok(Json(convert::user(user)))
}

/// Deletes a user with its sessions and API tokens (the audit trails keep the name).
#[utoipa::path(delete, path = "/users/{name}", tag = "users",
    params(("name" = String, Path)),
    responses((status = 204),
              (status = 404, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody, description = "The last admin")))]
async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let by = actor(&principal)?.to_string();
    state.store.delete_user(&name, &by).await?;
    tracing::info!(user = %name, by = %principal.name, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use axum::http::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::super::test_util::*;
    use crate::accounts::Role;

    #[tokio::test]
    async fn admins_manage_users_and_changes_take_effect() {
        let app = TestApp::new().await;
        app.user("root", Role::Admin).await;
        let login = app.login("root", PASSWORD).await;
        let root = Auth::Cookie {
            session: &login.session,
            csrf: Some(&login.csrf),
        };
        let (status, created) = app
            .send(
                Method::POST,
                "/api/v1/users",
                root,
                json!({"name": "bob", "role": "field-service", "password": "bob's long password"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["role"], "field-service");
        assert!(!created.to_string().contains("password"), "{created}");
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/users",
                root,
                json!({"name": "bob", "role": "admin", "password": "another long one"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/users",
                root,
                json!({"name": "carol", "role": "admin", "password": "short"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        let bob = app.login("bob", "bob's long password").await;
        let (status, _) = app
            .send(
                Method::PATCH,
                "/api/v1/users/bob",
                root,
                json!({"role": "fleet-manager", "password": "bob's new long password"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .get(
                "/api/v1/me",
                Auth::Cookie {
                    session: &bob.session,
                    csrf: None,
                },
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a new password ends the sessions"
        );
        let bob = app.login("bob", "bob's new long password").await;
        assert_eq!(bob.body["role"], "fleet-manager");

        let (status, users) = app.get("/api/v1/users", root).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["bob", "root"]);
        assert_eq!(
            app.get("/api/v1/users/bob", root).await.1["role"],
            "fleet-manager"
        );

        // The last admin stays; others go with their sessions.
        let (status, body) = app
            .send(
                Method::PATCH,
                "/api/v1/users/root",
                root,
                json!({"role": "field-service"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"], "last_admin");
        let (status, _) = app
            .send(Method::DELETE, "/api/v1/users/root", root, Value::Null)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = app
            .send(Method::DELETE, "/api/v1/users/bob", root, Value::Null)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            app.get("/api/v1/users/bob", root).await.0,
            StatusCode::NOT_FOUND
        );

        let (_, events) = app.get("/api/v1/audit/accounts", root).await;
        let actions: Vec<(&str, &str)> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == "bob")
            .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
            .collect();
        assert_eq!(
            actions,
            [
                ("user_deleted", "user:root"),
                ("login", "user:bob"),
                ("user_updated", "user:root"),
                ("login", "user:bob"),
                ("user_created", "user:root"),
            ]
        );
    }
}
