//! `GET /metrics` (Prometheus' default path) and `GET /api/v1/metrics`: the server's Prometheus
//! metrics (OpenMetrics text), behind the same
//! authentication as every route — Prometheus sends a bearer token
//! (`authorization: {credentials: <API token>}` in its scrape config). The LwM2M service's sizes
//! and counters are sampled at each scrape, so they are never older than the scrape.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::routes;

use super::{AppState, Routes};
use crate::accounts::Role;

pub fn routes() -> Vec<Routes> {
    vec![Routes::role(Role::FieldService).routes(routes!(metrics))]
}

/// The routes outside `/api/v1`: `/metrics`, where a Prometheus scrape config looks by default.
pub fn root_routes() -> Vec<Routes> {
    vec![Routes::role(Role::FieldService).routes(routes!(root_metrics))]
}

/// Prometheus metrics at Prometheus' default path; the same document as `/api/v1/metrics`.
#[utoipa::path(get, path = "/metrics", tag = "meta", operation_id = "root_metrics",
    responses((status = 200, content_type = "application/openmetrics-text",
        description = "OpenMetrics text (`ferrite_*` metrics)")))]
async fn root_metrics(state: State<AppState>) -> impl IntoResponse {
    metrics(state).await
}

/// Prometheus metrics: registrations, registration events, device requests by operation and
/// result, latency histograms, datagrams, DTLS handshakes, HTTP requests.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, content_type = "application/openmetrics-text",
        description = "OpenMetrics text (`ferrite_*` metrics)")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = crate::metrics::global();
    if let Some(service) = &state.lwm2m {
        metrics.observe_stats(&service.stats().await);
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
}
