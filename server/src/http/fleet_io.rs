//! Bulk onboarding over HTTP: `POST /api/v1/devices/import` (a CSV body, up to 32 MiB: 100,000
//! rows are about 9 MB) answers a per-row report, generated keys included, once;
//! `GET /api/v1/devices/export` streams the registry as CSV, without keys, one page of 1,000
//! devices at a time (never the whole export in memory). The formats are `fleet::onboarding`'s.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::access::with_body_limit;
use super::devices::{actor, device_query, warm_key_cache};
use super::extract::QueryParams;
use super::{ApiError, AppState, Routes, convert};
use crate::accounts::{Principal, Role};
use crate::fleet::onboarding::ImportOutcome;

/// Largest import body. Axum's default (2 MB) would stop at ~20,000 rows.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService).routes(routes!(export_devices)),
        Routes::role(Role::FleetManager)
            .routes(with_body_limit(routes!(import_devices), MAX_IMPORT_BYTES)),
    ]
}

/// Imports devices from CSV (`endpoint,serial,model,tags,psk_identity,psk_key_hex[,customer]
/// [,bootstrap_psk_identity,bootstrap_psk_key_hex]`, columns by name; tags as `k=v;k2=v2`; the
/// bootstrap pair gives a meter its factory bootstrap credentials). Every row gets an outcome; valid rows are stored even
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
    // Generated keys are at hand (cached directly); keys given in the file are read back.
    let mut identities: Vec<String> = Vec::new();
    for row in &report.rows {
        if let ImportOutcome::Accepted {
            psk_identity,
            generated_psk_key,
        } = &row.outcome
            && !psk_identity.is_empty()
        {
            match (generated_psk_key, &state.lwm2m) {
                (Some(key), Some(service)) => service.cache_credentials(psk_identity, key),
                _ => identities.push(psk_identity.clone()),
            }
        }
    }
    warm_key_cache(&state, identities.iter().map(String::as_str)).await;
    if let Some(bs) = state.lwm2m.as_ref().and_then(|s| s.bootstrap()) {
        for (identity, key) in &report.bootstrap_credentials {
            bs.cache_credentials(identity, key);
        }
    }
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
/// Streamed in endpoint order, 1,000 devices per chunk: pages are separate reads, so a device
/// changed during a long export shows its state at the time its page was read. Cells a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) get a
/// leading `'`; the import removes it again, so an export can be re-imported unchanged. A
/// storage error after the first chunk ends the response early (the CSV is then truncated and
/// the transfer incomplete, which HTTP clients report).
#[utoipa::path(get, path = "/devices/export", tag = "devices",
    params(api_types::DeviceQuery),
    responses((status = 200, description = "CSV", content_type = "text/csv"),
              (status = 400, body = api_types::ErrorBody)))]
async fn export_devices(
    State(state): State<AppState>,
    QueryParams(pairs): QueryParams<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (filter, _) = device_query(pairs)?;
    // The first chunk is read before answering, so that its errors are still a status code.
    let first = state.store.export_csv_chunk(&filter, None).await?;
    let store = state.store.clone();
    let chunks =
        futures_util::stream::unfold(ExportStep::Send(first.csv, first.next_after), move |step| {
            let store = store.clone();
            let filter = filter.clone();
            async move {
                let (csv, next) = match step {
                    ExportStep::Done => return None,
                    ExportStep::Send(csv, next) => (csv, next),
                    ExportStep::Fetch(after) => {
                        match store.export_csv_chunk(&filter, Some(after)).await {
                            Ok(chunk) => (chunk.csv, chunk.next_after),
                            Err(error) => {
                                tracing::error!(%error, "device export stopped");
                                return Some((Err(std::io::Error::other(error)), ExportStep::Done));
                            }
                        }
                    }
                };
                let step = next.map_or(ExportStep::Done, ExportStep::Fetch);
                Some((Ok(Bytes::from(csv)), step))
            }
        });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"devices.csv\"",
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// Where the export stream is: a rendered chunk to send, the cursor of the page to read next,
/// or the end.
enum ExportStep {
    Send(Vec<u8>, Option<String>),
    Fetch(String),
    Done,
}
