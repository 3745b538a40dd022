//! Calls the app in-process (`tower::ServiceExt::oneshot`, no socket) with an in-memory SQLite
//! store, a hand-moved clock, and helpers for each kind of credential.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::auth::{AuthState, Clock};
use super::{AppState, app};
use crate::accounts::secrets::{digest, new_token_secret};
use crate::accounts::{Role, first_admin};
use crate::config::Config;
use crate::fleet::secrets::ServerKey;
use crate::store::Store;
use crate::store::accounts::NewApiToken;

/// The static admin token of test apps.
pub const TOKEN: &str = "test-token-0123456789";
/// The password of users made by [`TestApp::user`].
pub const PASSWORD: &str = "correct horse battery staple";

/// How a test request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The session cookie's value, and the CSRF token to send (if any).
    Cookie {
        session: &'a str,
        csrf: Option<&'a str>,
    },
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A logged-in console session.
#[derive(Debug, Clone)]
pub struct Login {
    pub session: String,
    pub csrf: String,
    pub body: serde_json::Value,
}

#[derive(Debug)]
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    clock: Arc<Mutex<DateTime<Utc>>>,
    /// The source address every request comes from.
    pub client: SocketAddr,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(Config {
            api_token: Some(TOKEN.to_owned()),
            ..Config::default()
        })
        .await
    }

    pub async fn with_config(config: Config) -> TestApp {
        let store = Store::connect("sqlite::memory:", ServerKey::from_bytes([9; 32]))
            .await
            .unwrap();
        let mut state = AppState::new(Arc::new(config.clone()), store, None);
        let clock = Arc::new(Mutex::new(Utc::now()));
        let mut auth = AuthState::from_config(&config);
        auth.clock = Clock::Manual(clock.clone());
        state.auth = Arc::new(auth);
        TestApp {
            router: app(state.clone()),
            state,
            clock,
            client: "192.0.2.10:40000".parse().unwrap(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    /// Moves the app's clock (sessions, tokens, rate limits).
    pub fn advance(&self, by: Duration) {
        *self.clock.lock().unwrap() += by;
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            Auth::Cookie { session, csrf } => {
                let name = self.state.auth.cookie_name();
                request = request.header("cookie", format!("theme=dark; {name}={session}"));
                if let Some(csrf) = csrf {
                    request = request.header("x-csrf-token", csrf);
                }
            }
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        request.extensions_mut().insert(ConnectInfo(self.client));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    pub async fn get(&self, uri: &str, auth: Auth<'_>) -> (StatusCode, serde_json::Value) {
        let response = self.request(Method::GET, uri, auth, None, Vec::new()).await;
        (response.status, response.json())
    }

    /// A request with a JSON body (or none for `Value::Null`).
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let response = if body.is_null() {
            self.request(method, uri, auth, None, Vec::new()).await
        } else {
            self.request(
                method,
                uri,
                auth,
                Some("application/json"),
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        };
        (response.status, response.json())
    }

    /// Creates a user with [`PASSWORD`].
    pub async fn user(&self, name: &str, role: Role) {
        first_admin::create_user(
            &self.state.store,
            name,
            role,
            PASSWORD.to_owned(),
            "system:test",
        )
        .await
        .unwrap();
    }

    /// An API token secret with `role`, owned by a fresh user of that role.
    pub async fn token(&self, role: Role) -> String {
        let owner = format!("owner-{}", role.as_str());
        if self.state.store.user(&owner).await.unwrap().is_none() {
            self.state
                .store
                .create_user(&owner, role, "$argon2id$unused", "system:test")
                .await
                .unwrap();
        }
        let owner = self.state.store.user(&owner).await.unwrap().unwrap();
        let secret = new_token_secret().unwrap();
        let name = format!(
            "t-{}",
            &digest(&secret)[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        self.state
            .store
            .create_api_token(NewApiToken {
                name: &name,
                role,
                secret_digest: digest(&secret),
                owner_id: Some(owner.id),
                created_by: "system:test",
                expires_at: None,
            })
            .await
            .unwrap();
        secret
    }

    /// Logs in through the API; panics unless it succeeds.
    pub async fn login(&self, name: &str, password: &str) -> Login {
        let response = self
            .request(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some("application/json"),
                serde_json::to_vec(&serde_json::json!({"username": name, "password": password}))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let cookie = response.header("set-cookie").unwrap().to_owned();
        let session = cookie
            .split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .map(|(_, value)| value.to_owned())
            .unwrap();
        let body = response.json();
        Login {
            session,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            body,
        }
    }
}
