//! The fleet-wide audit trail (`GET /api/v1/audit`: every lifecycle transition and device
//! change, newest first) and the account audit trail (`GET /api/v1/audit/accounts`: logins,
//! failed logins, user and token changes; admin only).

use axum::Json;
use axum::extract::State;
use utoipa_axum::routes;

use super::devices::audit_page_request;
use super::extract::QueryParams;
use super::{ApiError, AppState, Routes, convert};
use crate::accounts::Role;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FleetManager).routes(routes!(fleet_audit)),
        Routes::role(Role::Admin).routes(routes!(account_audit)),
    ]
}

/// The audit trail of the whole fleet, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit",
    params(api_types::AuditQuery),
    responses((status = 200, body = api_types::AuditPage),
              (status = 400, body = api_types::ErrorBody)))]
async fn fleet_audit(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<api_types::AuditQuery>,
) -> Result<Json<api_types::AuditPage>, ApiError> {
    let page = state.store.fleet_audit(audit_page_request(&query)?).await?;
    Ok(Json(convert::audit_page(page)))
}

/// Logins, failed logins (with the client address), user and token changes, newest first.
#[utoipa::path(get, path = "/audit/accounts", tag = "audit",
    params(api_types::AuditQuery),
    responses((status = 200, body = api_types::AccountEventPage),
              (status = 400, body = api_types::ErrorBody)))]
async fn account_audit(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<api_types::AuditQuery>,
) -> Result<Json<api_types::AccountEventPage>, ApiError> {
    let page = audit_page_request(&query)?;
    let page = state.store.account_audit(page.before, page.limit).await?;
    Ok(Json(api_types::AccountEventPage {
        events: page
            .events
            .into_iter()
            .map(convert::account_event)
            .collect(),
        next_before: page.next_before,
    }))
}
