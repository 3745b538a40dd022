//! The state of a device's LwM2M session: its live registration and the requests persisted for
//! it while it sleeps (queue mode), with stored results shown like direct answers.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use chrono::Utc;
use serde_json::Value as Json_;

use super::values::{self, ValueOut};
use super::{DeviceErrorBody, ENDPOINT, OpRouteError, OperationStatus, RegistrationOut, service};
use crate::http::AppState;
use crate::lwm2m::{OperationId, ServiceError};

/// The device's live registration: version, binding, lifetime, object links, address,
/// registered at, last update.
#[utoipa::path(get, path = "/devices/{endpoint}/registration", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, body = RegistrationOut),
        (status = 404, body = DeviceErrorBody, description = "Not registered")))]
pub(super) async fn registration(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
) -> Result<Json<RegistrationOut>, OpRouteError> {
    let service = service(&state)?;
    let info = service
        .registration(&endpoint)
        .ok_or_else(|| OpRouteError::Service(ServiceError::NotRegistered(endpoint.clone())))?;
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(Json(RegistrationOut {
        transport: match info.transport {
            crate::lwm2m::Transport::Coap => "coap",
            crate::lwm2m::Transport::Coaps => "coaps",
        }
        .to_owned(),
        endpoint: info.endpoint,
        registration_id: info.registration_id,
        lwm2m_version: info.lwm2m_version,
        binding: info.binding,
        queue_mode: info.queue_mode,
        lifetime_secs: info.lifetime,
        sms_number: info.sms_number,
        objects: info.objects,
        address: info.address.to_string(),
        psk_identity: info.psk_identity,
        registered_at: time(info.registered_at),
        last_update: time(info.last_update),
    }))
}

/// A request persisted for a sleeping device: pending, or finished with its result.
#[utoipa::path(get, path = "/operations/{id}", tag = "device operations",
    params(("id" = String, Path, description = "The operation ID (16 hex digits) from a 202 answer")),
    responses((status = 200, body = OperationStatus), (status = 400, body = DeviceErrorBody),
        (status = 404, body = DeviceErrorBody)))]
pub(super) async fn operation(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OperationStatus>, OpRouteError> {
    let service = service(&state)?;
    let parsed: OperationId = id
        .parse()
        .map_err(|e| OpRouteError::bad_request(format!("{id:?}: {e}")))?;
    let request = service.operation(parsed).await?.ok_or_else(|| {
        OpRouteError::Api(crate::http::ApiError::NotFound(format!(
            "no queued operation {id} (only requests for sleeping devices are kept)"
        )))
    })?;
    let json =
        |text: &str| serde_json::from_str::<Json_>(text).unwrap_or(Json_::String(text.to_owned()));
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(Json(OperationStatus {
        id: request.id,
        endpoint: request.endpoint,
        status: request.status.as_str().to_owned(),
        operation: json(&request.operation),
        created_at: time(request.created_at),
        expires_at: time(request.expires_at),
        finished_at: request.finished_at.map(time),
        result: request
            .result
            .as_deref()
            .map(|text| stored_result(text).unwrap_or_else(|| json(text))),
    }))
}

/// A stored result in the API's form: values named, typed and with units like a direct read
/// (`{"status": "succeeded", "outcome": {"kind": "content", "values": [...]}}`). None when the
/// text is not a result the service wrote.
fn stored_result(text: &str) -> Option<Json_> {
    use crate::lwm2m::{OperationResult, OutcomeView, RecordView};
    let result: OperationResult = serde_json::from_str(text).ok()?;
    let values = |records: &[RecordView]| -> Option<Vec<ValueOut>> {
        records
            .iter()
            .map(|record| {
                let path = record.parsed_path().ok()?;
                let value = lwm2m_objects::Value::try_from(&record.value).ok()?;
                Some(values::value_out(&path, &value, record.time))
            })
            .collect()
    };
    let outcome = match &result {
        OperationResult::Succeeded {
            outcome: OutcomeView::Content { values: records },
        } => serde_json::json!({"kind": "content", "values": values(records)?}),
        OperationResult::Succeeded {
            outcome:
                OutcomeView::Observing {
                    observation,
                    values: records,
                },
        } => serde_json::json!({
            "kind": "observing", "observation": observation, "values": values(records)?
        }),
        _ => return serde_json::to_value(&result).ok(),
    };
    Some(serde_json::json!({"status": "succeeded", "outcome": outcome}))
}
