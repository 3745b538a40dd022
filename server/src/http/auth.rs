//! Who is calling: turns the request's credential into a [`Principal`]. Three kinds:
//! `Authorization: Bearer ferrite_…` (an API token), `Authorization: Bearer <FERRITE_API_TOKEN>`
//! (the static admin token, when configured), or the console's session cookie. A cookie-borne
//! request that changes state must also carry the session's CSRF token in `X-CSRF-Token`
//! (bearer requests need none: a browser never adds an `Authorization` header on its own).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::{DateTime, Duration, Utc};

use super::{ApiError, AppState};
use crate::accounts::limiter::LoginLimiter;
use crate::accounts::secrets::{self, SecretDigest, TOKEN_PREFIX};
use crate::accounts::{Principal, PrincipalKind};
use crate::config::Config;

/// A session ends after this long without a request…
pub const SESSION_IDLE: Duration = Duration::hours(12);
/// …and after this long whatever the activity: an operator logs in once a working day.
pub const SESSION_ABSOLUTE: Duration = Duration::hours(24);
/// Activity is written back at most this often per session or token (one write per minute, not
/// one per request).
const TOUCH_INTERVAL: Duration = Duration::seconds(60);
/// Concurrent password verifications (argon2id: ~19 MiB and tens of ms of CPU each). More
/// parallel logins wait instead of exhausting memory and CPU.
const MAX_CONCURRENT_HASHES: usize = 2;

/// The header carrying the CSRF token on cookie-authenticated state changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where the time comes from: the system clock, or a hand-moved one in tests (session expiry).
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(now) => *now.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The authentication settings and shared runtime state (login limiter, hashing permits).
#[derive(Debug)]
pub struct AuthState {
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub secure_cookies: bool,
    pub limiter: LoginLimiter,
    pub clock: Clock,
    pub(super) hashing: tokio::sync::Semaphore,
}

impl AuthState {
    pub fn from_config(config: &Config) -> AuthState {
        AuthState {
            session_idle: SESSION_IDLE,
            session_absolute: SESSION_ABSOLUTE,
            secure_cookies: config.secure_cookies,
            limiter: LoginLimiter::default(),
            clock: Clock::System,
            hashing: tokio::sync::Semaphore::new(MAX_CONCURRENT_HASHES),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The cookie's name: with `Secure`, the `__Host-` prefix makes browsers refuse it unless it
    /// was set over HTTPS for this exact host and path `/` (RFC 6265bis §4.1.3.2).
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-ferrite_session"
        } else {
            "ferrite_session"
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, session_id: &str) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.cookie_name(),
            self.session_absolute.num_seconds()
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            self.cookie_name()
        )
    }
}

/// The session behind a cookie-authenticated request.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub id_digest: SecretDigest,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// An authenticated request: who, and through which session (None for bearer tokens).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub session: Option<SessionContext>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The value of cookie `name` (all `Cookie` headers: HTTP/2 may split them).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Does this method change state (and so need the CSRF token with a cookie)?
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Establishes who sent the request. `Ok(None)`: no credential at all; `Err(Unauthorized)`: a
/// credential that is wrong, expired or revoked; `Err(CsrfRequired)`: a cookie-borne state
/// change without the session's CSRF token.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, ApiError> {
    let now = state.auth.now();
    if let Some(presented) = bearer(headers) {
        if let Some(expected) = state.config.api_token.as_deref()
            && secrets::constant_time_eq(presented.as_bytes(), expected.as_bytes())
        {
            return Ok(Some(Authenticated {
                principal: Principal::static_admin(),
                session: None,
            }));
        }
        if !presented.starts_with(TOKEN_PREFIX) {
            return Err(ApiError::Unauthorized);
        }
        let grant = state
            .store
            .api_token_grant(&secrets::digest(presented))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let role = grant.effective_role(now).ok_or(ApiError::Unauthorized)?;
        if grant
            .token
            .last_used_at
            .is_none_or(|t| now - t >= TOUCH_INTERVAL)
        {
            state.store.touch_api_token(grant.token.id, now).await?;
        }
        return Ok(Some(Authenticated {
            principal: Principal {
                kind: PrincipalKind::Token {
                    token_id: grant.token.id,
                    owner: grant.owner.as_ref().map(|o| o.id),
                },
                name: grant.token.name,
                role,
            },
            session: None,
        }));
    }

    let Some(session_id) = cookie(headers, state.auth.cookie_name()) else {
        return Ok(None);
    };
    let id_digest = secrets::digest(session_id);
    let session = state
        .store
        .session(&id_digest)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let idle_end = session.last_used_at + state.auth.session_idle;
    if now >= session.expires_at || now >= idle_end || session.user.disabled {
        // Expired: remove it now rather than waiting for the purge at the next login.
        state.store.delete_session(&id_digest).await?;
        return Err(ApiError::Unauthorized);
    }
    let csrf_token = secrets::csrf_token(session_id);
    if is_state_changing(method) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let valid = sent
            .is_some_and(|sent| secrets::constant_time_eq(sent.as_bytes(), csrf_token.as_bytes()));
        if !valid {
            return Err(ApiError::CsrfRequired);
        }
    }
    if now - session.last_used_at >= TOUCH_INTERVAL {
        state.store.touch_session(&id_digest, now).await?;
    }
    Ok(Some(Authenticated {
        principal: Principal {
            kind: PrincipalKind::User {
                user_id: session.user.id,
            },
            name: session.user.name,
            role: session.user.role,
        },
        session: Some(SessionContext {
            id_digest,
            csrf_token,
            expires_at: session.expires_at,
        }),
    }))
}

/// The caller, for handlers behind a role gate (`http::access`). A handler on a route without a
/// gate that asks for it answers 401: it fails closed.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .map(|a| a.principal.clone())
            .ok_or(ApiError::Unauthorized)
    }
}

/// The session of a cookie-authenticated request (None with a bearer token).
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Option<SessionContext>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let authenticated = parts
            .extensions
            .get::<Authenticated>()
            .ok_or(ApiError::Unauthorized)?;
        Ok(CurrentSession(authenticated.session.clone()))
    }
}

/// The client's address, when the server was started with connect info (`run.rs`). Behind a
/// reverse proxy this is the proxy: trusting `X-Forwarded-For` needs a configured proxy list,
/// which does not exist yet.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_cookies_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferrite_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "ferrite_session"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "ferrite"), None);
    }

    #[test]
    fn session_cookie_attributes() {
        let mut auth = AuthState::from_config(&Config::default());
        let cookie = auth.session_cookie("xyz");
        assert_eq!(
            cookie,
            "ferrite_session=xyz; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400"
        );
        auth.secure_cookies = true;
        let cookie = auth.session_cookie("xyz");
        assert!(
            cookie.starts_with("__Host-ferrite_session=xyz;"),
            "{cookie}"
        );
        assert!(cookie.ends_with("; Secure"), "{cookie}");
        assert!(auth.clear_cookie().contains("Max-Age=0"));
    }
}
