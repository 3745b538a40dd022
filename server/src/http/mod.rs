//! The HTTP API (axum): `app()` composes one router per resource behind authentication, so tests
//! can call it without a socket; `serve()` binds it and runs until shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tower_http::trace::TraceLayer;

use crate::config::Config;

mod auth;
mod error;
mod objects;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The LwM2M service (devices, operations, live events); None when the app runs without
    /// sockets (unit tests of routes that do not reach devices).
    pub lwm2m: Option<crate::lwm2m::Lwm2mService>,
}

/// The whole HTTP application: every route under `/api/v1` requires a valid credential.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(objects::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .nest("/api/v1", api)
        .fallback(error::not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Binds the HTTP listener and serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.api_token.is_none() {
        tracing::warn!(
            "no API credential is configured (FERRITE_API_TOKEN): every API request will be refused"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", config.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening");
    let state = AppState {
        config: Arc::new(config),
        lwm2m: None,
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Calls the router in-process and decodes JSON answers.

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    pub const TOKEN: &str = "test-token-0123456789";

    pub fn test_app() -> Router {
        let config = Config {
            api_token: Some(TOKEN.to_owned()),
            ..Config::default()
        };
        app(AppState {
            config: Arc::new(config),
            lwm2m: None,
        })
    }

    pub async fn get(
        app: &Router,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}
