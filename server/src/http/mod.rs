//! The HTTP API (axum): `app()` composes one set of routes per resource, each declared with its
//! minimum role (`access::Routes`), into one router and one OpenAPI document, so tests can call
//! it without a socket. `run.rs` serves it.

use std::sync::Arc;

use axum::{Extension, Router};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::store::Store;

pub mod access;
mod audit;
pub mod auth;
mod bootstrap;
pub mod console;
mod convert;
mod devices;
mod diagnostics;
mod error;
mod events;
mod extract;
mod fleet_io;
mod lwm2m;
mod metrics;
mod objects;
mod openapi;
mod session;
#[cfg(test)]
pub(crate) mod test_util;
mod tokens;
mod users;

pub use access::Routes;
pub use error::ApiError;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The LwM2M service (devices, operations, live events); None when the app runs without
    /// sockets (unit tests of routes that do not reach devices).
    pub lwm2m: Option<crate::lwm2m::Lwm2mService>,
    /// The registry and the accounts.
    pub store: Store,
    /// Session settings, the login rate limiter and the clock.
    pub auth: Arc<auth::AuthState>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        lwm2m: Option<crate::lwm2m::Lwm2mService>,
    ) -> AppState {
        AppState {
            auth: Arc::new(auth::AuthState::from_config(&config)),
            config,
            lwm2m,
            store,
        }
    }
}

/// Every route of the API, grouped by minimum role. A route exists only if it is listed here,
/// through [`Routes`]: that is what makes the role check and the OpenAPI entry unavoidable.
fn all_routes() -> Vec<Routes> {
    let mut routes = Vec::new();
    routes.extend(session::routes());
    routes.extend(objects::routes());
    routes.extend(openapi::routes());
    routes.extend(devices::routes());
    routes.extend(bootstrap::routes());
    routes.extend(fleet_io::routes());
    routes.extend(audit::routes());
    routes.extend(users::routes());
    routes.extend(tokens::routes());
    routes.extend(lwm2m::routes());
    routes.extend(events::routes());
    routes.extend(metrics::routes());
    routes.extend(diagnostics::routes());
    routes
}

#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Ferrite API",
    description = "LwM2M device management for smart-meter fleets. Every operation names its \
                   minimum role in `x-required-role`."
))]
struct ApiDoc;

/// The router and its OpenAPI document, built together.
fn build(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
    for routes in all_routes() {
        api = api.merge(routes.into_router(state));
    }
    // Routes outside /api/v1 (only /metrics), through the same role gate.
    let mut root = OpenApiRouter::with_openapi(ApiDoc::openapi());
    for routes in metrics::root_routes() {
        root = root.merge(routes.into_router(state));
    }
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api)
        .merge(root)
        .split_for_parts();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        access::BEARER_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`ferrite_…`) or the static admin token (FERRITE_API_TOKEN)",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        access::SESSION_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "ferrite_session",
            "The console session from POST /api/v1/auth/login (`__Host-ferrite_session` with \
             secure cookies); state changes also need X-CSRF-Token",
        ))),
    );
    (router, doc)
}

/// The API's OpenAPI document (also served at `GET /api/v1/openapi.json`).
pub fn openapi_document(state: &AppState) -> utoipa::openapi::OpenApi {
    build(state).1
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (router, doc) = build(&state);
    let router = crate::metrics::instrument(router, &state);
    router
        // Not under /api: the web console (static, public); under /api: the JSON 404.
        .fallback_service(console::fallback(&state.config))
        .layer(Extension(openapi::Document::new(&doc)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
