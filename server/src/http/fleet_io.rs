//! Bulk onboarding over HTTP: `POST /api/v1/devices/import` (a CSV body, up to 32 MiB: 100,000
//! rows are about 9 MB) answers a per-row report, generated keys included, once;
//! `GET /api/v1/devices/export` answers the registry as CSV, without keys. The formats are
//! `fleet::onboarding`'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::access::with_body_limit;
use super::devices::{actor, device_query};
use super::extract::QueryParams;
use super::{ApiError, AppState, Routes, convert};
use crate::accounts::{Principal, Role};

/// Largest import body. Axum's default (2 MB) would stop at ~20,000 rows.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService).routes(routes!(export_devices)),
        Routes::role(Role::FleetManager)
            .routes(with_body_limit(routes!(import_devices), MAX_IMPORT_BYTES)),
    ]
}

/// Imports devices from CSV (`endpoint,serial,model,tags,psk_identity,psk_key_hex[,customer]`,
/// columns by name; tags as `k=v;k2=v2`). Every row gets an outcome; valid rows are stored even
/// when others are rejected. Keys generated for rows without one are in this report only.
#[utoipa::path(post, path = "/devices/import", tag = "devices",
    request_body(content = String, content_type = "text/csv",
                 description = "CSV with a header line, at most 32 MiB"),
    responses((status = 200, body = api_types::ImportReport),
              (status = 400, body = api_types::ErrorBody, description = "Header unusable"),
              (status = 413, description = "Body over 32 MiB")))]
async fn import_devices(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<api_types::ImportReport>, ApiError> {
    let report = state
        .store
        .import_csv(body.as_ref(), &actor(&principal)?)
        .await?;
    tracing::info!(
        accepted = report.accepted(),
        rejected = report.rejected(),
        aborted = report.aborted.is_some(),
        by = %principal.name,
        "device import"
    );
    Ok(Json(convert::import_report(report)))
}

/// The devices matching the filters as CSV (the import format plus state, connectivity and
/// times; never a key). The `after` and `limit` parameters are ignored: the export is whole.
#[utoipa::path(get, path = "/devices/export", tag = "devices",
    params(api_types::DeviceQuery),
    responses((status = 200, description = "CSV", content_type = "text/csv")))]
async fn export_devices(
    State(state): State<AppState>,
    QueryParams(pairs): QueryParams<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (filter, _) = device_query(pairs)?;
    // Held in memory: ~15 MB for 100,000 devices. Streaming would need the store to page on a
    // task of its own; not worth it at this size.
    let mut csv = Vec::new();
    state.store.export_csv(&filter, &mut csv).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"devices.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
