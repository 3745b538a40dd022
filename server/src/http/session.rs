//! Console sessions: `POST /api/v1/auth/login` (the one public route), `POST /api/v1/auth/logout`
//! and `GET /api/v1/me`.
//!
//! Login checks the rate limits first (per user name and per client address, `accounts::limiter`),
//! then the argon2id hash on a blocking thread, and answers every failure alike (unknown user,
//! wrong password, disabled account) so the answer does not tell which names exist. Failures are
//! logged and written to the account audit trail, never with the password.
//! Login CSRF needs no token: the body must be `application/json`, which a cross-site form
//! cannot send and a cross-site `fetch` cannot send without a CORS preflight this server refuses.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SubsecRound as _;
use utoipa_axum::routes;

use super::auth::{ClientAddr, CurrentSession};
use super::convert;
use super::extract::JsonBody;
use super::{ApiError, AppState, Routes};
use crate::accounts::{Principal, Role, events, password, secrets, validate_name};

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::public().routes(routes!(login)),
        Routes::role(Role::FieldService)
            .routes(routes!(logout))
            .routes(routes!(me)),
    ]
}

/// The user name as it may appear in logs and the audit trail: printable, at most 64 characters.
fn printable_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Log in with a user name and password: sets the HttpOnly session cookie and returns the
/// CSRF token to send in `X-CSRF-Token` with every state-changing request.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = api_types::LoginRequest,
    responses(
        (status = 200, body = api_types::Me, description = "Logged in; `Set-Cookie` carries the session"),
        (status = 401, body = api_types::ErrorBody, description = "Wrong user name or password"),
        (status = 429, body = api_types::ErrorBody, description = "Too many failures; see `Retry-After`"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    JsonBody(request): JsonBody<api_types::LoginRequest>,
) -> Result<Response, ApiError> {
    let now = state.auth.now();
    let name = printable_name(&request.username);
    let source_text = source.map(|ip| ip.to_string());
    if let Err(wait) = state.auth.limiter.acquire(&name, source, now) {
        tracing::warn!(user = %name, source = ?source, "login refused: too many failures");
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.seconds(),
        });
    }

    let found = if validate_name("user", &request.username).is_ok() {
        state.store.user_for_login(&request.username).await?
    } else {
        None
    };
    // One verification at a time per permit: argon2id is memory- and CPU-hungry.
    let permit = state
        .auth
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::Internal)?;
    let password_text = request.password;
    let hash = found.as_ref().map(|(_, hash)| hash.clone());
    let verified = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => password::verify_password(&password_text, &hash),
        None => {
            password::verify_dummy(&password_text);
            false
        }
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    drop(permit);

    let user = match found {
        Some((user, _)) if verified && !user.disabled => user,
        other => {
            let reason = match other {
                None => "unknown user",
                Some((user, _)) if user.disabled && verified => "account disabled",
                Some(_) => "wrong password",
            };
            tracing::warn!(user = %name, source = ?source, reason, "login failed");
            state
                .store
                .record_account_event(
                    "anonymous",
                    events::LOGIN_FAILED,
                    Some(&name),
                    source_text.as_deref(),
                    Some(reason),
                )
                .await?;
            return Err(ApiError::LoginFailed);
        }
    };
    state.auth.limiter.succeeded(&name);

    let session_id = secrets::new_session_id()?;
    // Microseconds: what the store keeps, so `/me` later shows the same time.
    let expires_at = (now + state.auth.session_absolute).trunc_subsecs(6);
    state
        .store
        .create_session(user.id, &secrets::digest(&session_id), now, expires_at)
        .await?;
    // Sessions whose time is up are purged here, at the rate of logins.
    state
        .store
        .delete_expired_sessions(now - state.auth.session_idle, now)
        .await?;
    let actor = format!("user:{}", user.name);
    state
        .store
        .record_account_event(
            &actor,
            events::LOGIN,
            Some(&user.name),
            source_text.as_deref(),
            None,
        )
        .await?;
    tracing::info!(user = %user.name, source = ?source, "logged in");
    let me = api_types::Me {
        kind: api_types::PrincipalKind::User,
        name: user.name,
        role: convert::role(user.role),
        csrf_token: Some(secrets::csrf_token(&session_id)),
        session_expires_at: Some(convert::time(expires_at)),
    };
    Ok((
        [(header::SET_COOKIE, state.auth.session_cookie(&session_id))],
        axum::Json(me),
    )
        .into_response())
}

/// End the current session (with a session cookie; a bearer token stays valid: revoke it with
/// `DELETE /api/v1/tokens/{name}`).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out; the cookie is cleared")))]
async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let Some(session) = session else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    state.store.delete_session(&session.id_digest).await?;
    let actor = principal
        .actor()
        .map_err(|_| ApiError::Internal)?
        .to_string();
    state
        .store
        .record_account_event(&actor, events::LOGOUT, Some(&principal.name), None, None)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, state.auth.clear_cookie())],
    )
        .into_response())
}

/// Who am I: name, role, and (with a session) the CSRF token again, e.g. after a page reload.
#[utoipa::path(get, path = "/me", tag = "auth",
    responses((status = 200, body = api_types::Me)))]
async fn me(
    principal: Principal,
    CurrentSession(session): CurrentSession,
) -> axum::Json<api_types::Me> {
    axum::Json(api_types::Me {
        kind: convert::principal_kind(principal.kind),
        name: principal.name,
        role: convert::role(principal.role),
        csrf_token: session.as_ref().map(|s| s.csrf_token.clone()),
        session_expires_at: session.map(|s| convert::time(s.expires_at)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use axum::http::{Method, StatusCode};
    use chrono::Duration;
    use serde_json::json;

    use super::super::test_util::*;
    use crate::accounts::{Role, UserUpdate};
    use crate::config::Config;

    fn login_body(user: &str, password: &str) -> serde_json::Value {
        json!({"username": user, "password": password})
    }

    #[tokio::test]
    async fn login_sets_a_strict_httponly_cookie_and_me_shows_the_csrf_token() {
        let app = TestApp::new().await;
        app.user("alice", Role::FleetManager).await;
        let response = app
            .request(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some("application/json"),
                serde_json::to_vec(&login_body("alice", PASSWORD)).unwrap(),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let cookie = response.header("set-cookie").unwrap();
        assert!(cookie.starts_with("ferrite_session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Secure"), "not configured: {cookie}");
        let body = response.json();
        assert_eq!(body["name"], "alice");
        assert_eq!(body["role"], "fleet-manager");
        assert_eq!(body["kind"], "user");
        assert!(!response.text().contains(PASSWORD));

        let login = app.login("alice", PASSWORD).await;
        let (status, me) = app
            .get(
                "/api/v1/me",
                Auth::Cookie {
                    session: &login.session,
                    csrf: None,
                },
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["name"], "alice");
        assert_eq!(me["csrf_token"], login.csrf.as_str());
        assert_eq!(me["session_expires_at"], login.body["session_expires_at"]);

        // The session id is stored only as a digest.
        let digest = crate::accounts::secrets::digest(&login.session);
        assert!(app.state.store.session(&digest).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn secure_cookies_use_the_host_prefix() {
        let app = TestApp::with_config(Config {
            secure_cookies: true,
            ..Config::default()
        })
        .await;
        app.user("alice", Role::Admin).await;
        let response = app
            .request(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some("application/json"),
                serde_json::to_vec(&login_body("alice", PASSWORD)).unwrap(),
            )
            .await;
        let cookie = response.header("set-cookie").unwrap();
        assert!(cookie.starts_with("__Host-ferrite_session="), "{cookie}");
        assert!(cookie.contains("; Secure"), "{cookie}");
        let login = app.login("alice", PASSWORD).await;
        let (status, _) = app
            .get(
                "/api/v1/me",
                Auth::Cookie {
                    session: &login.session,
                    csrf: None,
                },
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn failures_look_alike_and_are_audited_without_the_password() {
        let app = TestApp::new().await;
        app.user("alice", Role::Admin).await;
        let wrong = "Tr0ub4dor&3-wrong-guess";
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                login_body("alice", wrong),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "login_failed");
        let (status, unknown) = app
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                login_body("mallory", wrong),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown, body, "an unknown user looks like a wrong password");
        app.state
            .store
            .update_user(
                "alice",
                UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                },
                "system:test",
            )
            .await
            .unwrap_err(); // the last admin cannot be disabled…
        app.user("bob", Role::FieldService).await;
        app.state
            .store
            .update_user(
                "bob",
                UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                },
                "system:test",
            )
            .await
            .unwrap();
        let (status, disabled) = app
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                login_body("bob", PASSWORD),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "…but bob can, and then cannot log in"
        );
        assert_eq!(disabled, body);

        let events = app
            .state
            .store
            .account_audit(None, 100)
            .await
            .unwrap()
            .events;
        let failures: Vec<_> = events
            .iter()
            .filter(|e| e.action == "login_failed")
            .map(|e| (e.subject.clone().unwrap(), e.detail.clone().unwrap()))
            .collect();
        assert_eq!(
            failures,
            [
                ("bob".to_owned(), "account disabled".to_owned()),
                ("mallory".to_owned(), "unknown user".to_owned()),
                ("alice".to_owned(), "wrong password".to_owned()),
            ]
        );
        assert!(
            events
                .iter()
                .all(|e| e.source.as_deref() == Some("192.0.2.10") || e.action != "login_failed")
        );
        let everything = format!("{events:?}");
        assert!(!everything.contains(wrong) && !everything.contains(PASSWORD));
    }

    #[tokio::test]
    async fn repeated_failures_are_rate_limited_with_retry_after() {
        let app = TestApp::new().await;
        app.user("alice", Role::Admin).await;
        for _ in 0..5 {
            let (status, _) = app
                .send(
                    Method::POST,
                    "/api/v1/auth/login",
                    Auth::None,
                    login_body("alice", "nope-nope-nope"),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let response = app
            .request(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some("application/json"),
                serde_json::to_vec(&login_body("alice", PASSWORD)).unwrap(),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::TOO_MANY_REQUESTS,
            "even the right password waits"
        );
        assert_eq!(response.header("retry-after"), Some("60"));
        assert_eq!(response.json()["error"], "too_many_requests");
        app.advance(Duration::seconds(60));
        app.login("alice", PASSWORD).await;
    }

    #[tokio::test]
    async fn cookie_writes_need_the_csrf_token_and_logout_ends_the_session() {
        let app = TestApp::new().await;
        app.user("alice", Role::FieldService).await;
        let login = app.login("alice", PASSWORD).await;
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/auth/logout",
                Auth::Cookie {
                    session: &login.session,
                    csrf: None,
                },
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "csrf_token_required");
        let (status, _) = app
            .send(
                Method::POST,
                "/api/v1/auth/logout",
                Auth::Cookie {
                    session: &login.session,
                    csrf: Some("forged"),
                },
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let response = app
            .request(
                Method::POST,
                "/api/v1/auth/logout",
                Auth::Cookie {
                    session: &login.session,
                    csrf: Some(&login.csrf),
                },
                None,
                Vec::new(),
            )
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert!(response.header("set-cookie").unwrap().contains("Max-Age=0"));
        let (status, _) = app
            .get(
                "/api/v1/me",
                Auth::Cookie {
                    session: &login.session,
                    csrf: None,
                },
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the session is gone");
        let actions: Vec<String> = app
            .state
            .store
            .account_audit(None, 10)
            .await
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions[..2], ["logout".to_owned(), "login".to_owned()]);
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let app = TestApp::new().await;
        app.user("alice", Role::FieldService).await;
        async fn me_status(app: &TestApp, session: &str) -> StatusCode {
            let auth = Auth::Cookie {
                session,
                csrf: None,
            };
            app.get("/api/v1/me", auth).await.0
        }
        // Idle: 12 h without a request.
        let idle = app.login("alice", PASSWORD).await;
        app.advance(Duration::hours(11));
        assert_eq!(me_status(&app, &idle.session).await, StatusCode::OK);
        app.advance(Duration::hours(11));
        assert_eq!(
            me_status(&app, &idle.session).await,
            StatusCode::OK,
            "used 11 h ago"
        );
        app.advance(Duration::hours(12));
        assert_eq!(
            me_status(&app, &idle.session).await,
            StatusCode::UNAUTHORIZED,
            "idle 12 h"
        );

        // Absolute: busy, but 24 h old.
        let busy = app.login("alice", PASSWORD).await;
        for _ in 0..3 {
            app.advance(Duration::hours(7));
            assert_eq!(me_status(&app, &busy.session).await, StatusCode::OK);
        }
        app.advance(Duration::hours(3));
        assert_eq!(
            me_status(&app, &busy.session).await,
            StatusCode::UNAUTHORIZED,
            "24 h old"
        );
    }

    #[tokio::test]
    async fn the_static_token_is_an_admin_only_when_configured() {
        let app = TestApp::new().await;
        let (status, me) = app.get("/api/v1/me", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["kind"], "static-token");
        assert_eq!(me["name"], "static-admin");
        assert_eq!(me["role"], "admin");
        assert_eq!(me["csrf_token"], serde_json::Value::Null);
        let (status, body) = app
            .get("/api/v1/me", Auth::Bearer("test-token-wrong"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");

        let unset = TestApp::with_config(Config::default()).await;
        for token in ["", TOKEN] {
            let (status, _) = unset.get("/api/v1/me", Auth::Bearer(token)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test]
    async fn a_malformed_login_body_is_a_clear_400() {
        let app = TestApp::new().await;
        let (status, body) = app
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                json!({"user": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"].as_str().unwrap().contains("username"),
            "{body}"
        );
    }
}
