//! `GET /api/v1/metrics`: the server's Prometheus metrics (OpenMetrics text), behind the same
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
