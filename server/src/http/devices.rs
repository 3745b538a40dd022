//! The device registry over HTTP: create (key shown once), list with filters and keyset
//! pagination, get, edit, lifecycle actions (suspend, resume, decommission), and the audit trail
//! of one device. Import and export are in `fleet_io.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::routes;

use super::convert;
use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState, Routes};
use crate::accounts::{Principal, Role};
use crate::fleet::lifecycle::{self, Actor, IllegalTransition, LifecycleState, TransitionAction};
use crate::fleet::registry::{
    AuditPageRequest, DeviceChanges, DeviceFilter, MAX_PAGE_SIZE, NewDevice, PageRequest,
    SecurityMode,
};
use crate::fleet::secrets::PskKey;
use crate::store::DeviceSummary;

/// Page size when the query names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// What a device gets as serial or model when created without one.
const UNKNOWN: &str = "unknown";

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(list_devices))
            .routes(routes!(device_summary))
            .routes(routes!(get_device))
            .routes(routes!(device_audit)),
        Routes::role(Role::FleetManager)
            .routes(routes!(create_device))
            .routes(routes!(update_device))
            .routes(routes!(change_lifecycle)),
    ]
}

/// The caller as the audit trail records it.
pub(super) fn actor(principal: &Principal) -> Result<Actor, ApiError> {
    principal.actor().map_err(|error| {
        tracing::error!(%error, name = %principal.name, "principal without a valid actor name");
        ApiError::Internal
    })
}

/// The live LwM2M registration of `endpoint`, shown with the device. This is the one place
/// that joins the registry (store) with the LwM2M service's memory.
pub(super) fn registration_of(state: &AppState, endpoint: &str) -> Option<api_types::Registration> {
    let info = state.lwm2m.as_ref()?.registration(endpoint)?;
    Some(api_types::Registration {
        lwm2m_version: info.lwm2m_version,
        binding: info.binding,
        queue_mode: info.queue_mode,
        lifetime_secs: info.lifetime,
        address: info.address.to_string(),
        transport: info.transport.as_str().to_owned(),
        registered_at: convert::time(info.registered_at),
        last_update: convert::time(info.last_update),
    })
}

/// Parses the device filter and page from query pairs (`tag` may repeat). Unknown parameters
/// are refused, so a misspelt filter does not silently list everything.
pub(super) fn device_query(
    pairs: Vec<(String, String)>,
) -> Result<(DeviceFilter, PageRequest), ApiError> {
    let mut filter = DeviceFilter::default();
    let mut page = PageRequest::first(DEFAULT_PAGE_SIZE);
    let bad = |what: &str, value: &str| ApiError::BadRequest(format!("invalid {what}: {value:?}"));
    for (key, value) in pairs {
        let text = Some(value.clone()).filter(|v| !v.is_empty());
        match key.as_str() {
            "state" => {
                filter.state = Some(value.parse().map_err(|_| bad("state", &value))?);
            }
            "connectivity" => {
                filter.connectivity = Some(value.parse().map_err(|_| bad("connectivity", &value))?);
            }
            "model" => filter.model = text,
            "firmware" => filter.firmware_version = text,
            "customer" => filter.customer = text,
            "q" => filter.search = text,
            "tag" => {
                let (k, v) = value
                    .split_once(':')
                    .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                    .ok_or_else(|| bad("tag (key:value)", &value))?;
                filter.tags.push((k.to_owned(), v.to_owned()));
            }
            "after" => page.after = text,
            "limit" => {
                page.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| bad(&format!("limit (1 to {MAX_PAGE_SIZE})"), &value))?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?} (state, connectivity, model, firmware, \
                     customer, tag, q, after, limit)"
                )));
            }
        }
    }
    Ok((filter, page))
}

/// Devices matching the filters, in endpoint order, one page at a time.
///
/// `q` is a case-insensitive substring of the endpoint, serial, model or customer. Queries of 3
/// or more characters are answered from a trigram index (PostgreSQL `pg_trgm`, SQLite FTS5);
/// shorter ones have no trigram to look up and scan the devices instead (slower on large fleets).
#[utoipa::path(get, path = "/devices", tag = "devices",
    params(api_types::DeviceQuery),
    responses((status = 200, body = api_types::DevicePage),
              (status = 400, body = api_types::ErrorBody)))]
async fn list_devices(
    State(state): State<AppState>,
    QueryParams(pairs): QueryParams<Vec<(String, String)>>,
) -> Result<Json<api_types::DevicePage>, ApiError> {
    let (filter, page) = device_query(pairs)?;
    let result = state.store.list_devices(&filter, &page).await?;
    Ok(Json(api_types::DevicePage {
        devices: result
            .devices
            .into_iter()
            .map(|d| {
                let registration = registration_of(&state, &d.endpoint);
                convert::device(d, registration)
            })
            .collect(),
        next_after: result.next_after,
    }))
}

/// How many devices match the filters (the list's query parameters; `after` and `limit` are
/// ignored): in total, per lifecycle state and per connectivity, every one present (0 when none).
#[utoipa::path(get, path = "/devices/summary", tag = "devices",
    params(api_types::DeviceQuery),
    responses((status = 200, body = api_types::DeviceSummary),
              (status = 400, body = api_types::ErrorBody)))]
async fn device_summary(
    State(state): State<AppState>,
    QueryParams(pairs): QueryParams<Vec<(String, String)>>,
) -> Result<Json<api_types::DeviceSummary>, ApiError> {
    let (filter, _) = device_query(pairs)?;
    let summary = state.store.device_summary(&filter).await?;
    Ok(Json(summary_to_api(&summary)))
}

fn summary_to_api(summary: &DeviceSummary) -> api_types::DeviceSummary {
    use crate::fleet::registry::Connectivity;
    let state = |s| summary.state(s);
    let connectivity = |c| summary.connectivity(c);
    api_types::DeviceSummary {
        total: summary.total,
        by_state: api_types::StateCounts {
            registered: state(LifecycleState::Registered),
            provisioned: state(LifecycleState::Provisioned),
            active: state(LifecycleState::Active),
            suspended: state(LifecycleState::Suspended),
            updating: state(LifecycleState::Updating),
            decommissioned: state(LifecycleState::Decommissioned),
        },
        by_connectivity: api_types::ConnectivityCounts {
            online: connectivity(Connectivity::Online),
            sleeping: connectivity(Connectivity::Sleeping),
            offline: connectivity(Connectivity::Offline),
        },
    }
}

/// One device (never its key), with its live registration when it is registered.
#[utoipa::path(get, path = "/devices/{endpoint}", tag = "devices",
    params(("endpoint" = String, Path, description = "LwM2M endpoint client name")),
    responses((status = 200, body = api_types::Device),
              (status = 404, body = api_types::ErrorBody)))]
async fn get_device(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<Json<api_types::Device>, ApiError> {
    let device = state
        .store
        .get_device(&endpoint)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device with endpoint {endpoint:?}")))?;
    let registration = registration_of(&state, &endpoint);
    Ok(Json(convert::device(device, registration)))
}

/// Adds a device in state `registered`. A PSK device without identity or key gets generated
/// ones; a generated key is in this answer and nowhere else, ever.
#[utoipa::path(post, path = "/devices", tag = "devices",
    request_body = api_types::NewDevice,
    responses((status = 201, body = api_types::CreatedDevice),
              (status = 400, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody, description = "Endpoint or PSK identity taken")))]
async fn create_device(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<api_types::NewDevice>,
) -> Result<(StatusCode, Json<api_types::CreatedDevice>), ApiError> {
    let psk_key = request
        .psk_key_hex
        .as_deref()
        .map(PskKey::from_hex)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("psk_key_hex: {e}")))?;
    let new = NewDevice {
        endpoint: request.endpoint,
        serial: request.serial.unwrap_or_else(|| UNKNOWN.to_owned()),
        model: request.model.unwrap_or_else(|| UNKNOWN.to_owned()),
        tags: request.tags,
        customer: request.customer,
        security_mode: request
            .security_mode
            .map_or(SecurityMode::Psk, convert::security_mode_from_api),
        psk_identity: request.psk_identity,
        psk_key,
    };
    let bootstrap = match (
        request.bootstrap_psk_identity,
        request.bootstrap_psk_key_hex,
    ) {
        (Some(identity), Some(key_hex)) => Some((identity, key_hex)),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "bootstrap_psk_identity and bootstrap_psk_key_hex go together".to_owned(),
            ));
        }
    };
    let created = state.store.create_device(new, &actor(&principal)?).await?;
    match (
        &created.device.psk_identity,
        &created.generated_psk_key,
        &state.lwm2m,
    ) {
        (Some(identity), Some(key), Some(service)) => service.cache_credentials(identity, key),
        (Some(identity), _, _) => warm_key_cache(&state, [identity.as_str()]).await,
        _ => {}
    }
    if let Some((identity, key_hex)) = bootstrap {
        super::bootstrap::set_factory_credentials(
            &state,
            &created.device.endpoint,
            &identity,
            &key_hex,
            &actor(&principal)?,
        )
        .await?;
    }
    tracing::info!(endpoint = %created.device.endpoint, by = %principal.name, "device created");
    Ok((
        StatusCode::CREATED,
        Json(api_types::CreatedDevice {
            device: convert::device(created.device, None),
            psk_key_hex: created.generated_psk_key.map(|key| key.to_hex()),
        }),
    ))
}

/// Edits serial, model, customer or tags (audited as `updated`).
#[utoipa::path(patch, path = "/devices/{endpoint}", tag = "devices",
    params(("endpoint" = String, Path)),
    request_body = api_types::DeviceChanges,
    responses((status = 200, body = api_types::Device),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody)))]
async fn update_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(endpoint): Path<String>,
    JsonBody(changes): JsonBody<api_types::DeviceChanges>,
) -> Result<Json<api_types::Device>, ApiError> {
    let changes = DeviceChanges {
        serial: changes.serial,
        model: changes.model,
        customer: changes.customer,
        tags: changes.tags,
    };
    let device = state
        .store
        .update_device(&endpoint, changes, &actor(&principal)?)
        .await?;
    let registration = registration_of(&state, &endpoint);
    Ok(Json(convert::device(device, registration)))
}

/// Why an operator cannot drive a transition the lifecycle itself allows.
fn not_an_operator_action(
    from: LifecycleState,
    to: LifecycleState,
    action: TransitionAction,
) -> IllegalTransition {
    let why = match action {
        TransitionAction::BootstrapFinished => {
            "provisioned follows the device's bootstrap; an operator cannot set it"
        }
        TransitionAction::FirstRegistration => {
            "active follows the device's first registration; an operator can only resume a \
             suspended device"
        }
        TransitionAction::FirmwareUpdateStarted | TransitionAction::FirmwareUpdateFinished => {
            "updating is driven by firmware campaigns, not by lifecycle actions"
        }
        TransitionAction::Suspend | TransitionAction::Resume | TransitionAction::Decommission => {
            "not an operator action"
        }
    };
    IllegalTransition { from, to, why }
}

/// An operator lifecycle action: `{"to": "suspended"}` suspends an active device, `active`
/// resumes a suspended one, `decommissioned` (admin only) revokes its credentials for good.
/// Every action needs a reason and is audited; an illegal one is a 409 with from, to and why.
#[utoipa::path(post, path = "/devices/{endpoint}/lifecycle", tag = "devices",
    params(("endpoint" = String, Path)),
    request_body = api_types::LifecycleChange,
    responses((status = 200, body = api_types::Device),
              (status = 400, body = api_types::ErrorBody, description = "Missing reason"),
              (status = 403, body = api_types::ErrorBody, description = "Decommissioning needs admin"),
              (status = 404, body = api_types::ErrorBody),
              (status = 409, body = api_types::IllegalTransitionBody)))]
async fn change_lifecycle(
    State(state): State<AppState>,
    principal: Principal,
    Path(endpoint): Path<String>,
    JsonBody(change): JsonBody<api_types::LifecycleChange>,
) -> Result<Json<api_types::Device>, ApiError> {
    let to = convert::lifecycle_state_from_api(change.to);
    if to == LifecycleState::Decommissioned && !principal.role.allows(Role::Admin) {
        return Err(ApiError::Forbidden {
            required: Role::Admin,
            actual: principal.role,
        });
    }
    let current = state
        .store
        .get_device(&endpoint)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device with endpoint {endpoint:?}")))?;
    let action =
        lifecycle::validate_transition(current.state, to).map_err(ApiError::IllegalTransition)?;
    if !matches!(
        action,
        TransitionAction::Suspend | TransitionAction::Resume | TransitionAction::Decommission
    ) {
        return Err(ApiError::IllegalTransition(not_an_operator_action(
            current.state,
            to,
            action,
        )));
    }
    // The store validates again against the state it changes, so a concurrent change between
    // the check above and this call cannot slip an illegal transition through.
    let device = state
        .store
        .transition(&endpoint, to, &actor(&principal)?, Some(&change.reason))
        .await?;
    tracing::info!(
        %endpoint, from = %current.state, to = %to, by = %principal.name, "lifecycle action"
    );
    if to == LifecycleState::Decommissioned {
        forget_live_device(&state, &endpoint, current.psk_identity.as_deref()).await;
        super::bootstrap::revoke_for_decommission(&state, &endpoint).await;
    }
    let registration = registration_of(&state, &endpoint);
    Ok(Json(convert::device(device, registration)))
}

/// Puts new devices' keys into the DTLS key cache at once, so that their first handshake
/// succeeds (without it, the first handshake of a device created after start missed the cache
/// and failed, and only its retry found the key). A failure is logged: the cache's own lookup on
/// a miss still lets the device in on its retry.
pub(super) async fn warm_key_cache<'a>(
    state: &AppState,
    identities: impl IntoIterator<Item = &'a str>,
) {
    let Some(service) = &state.lwm2m else { return };
    for identity in identities {
        if let Err(error) = service.refresh_credentials(identity).await {
            tracing::warn!(%error, "a new device's key could not be cached; its first handshake may fail");
            return;
        }
    }
}

/// A decommissioned device loses its cached key and its live registration at once, rather
/// than at its next handshake or lifetime expiry.
async fn forget_live_device(state: &AppState, endpoint: &str, identity: Option<&str>) {
    let Some(service) = &state.lwm2m else { return };
    if let Some(identity) = identity {
        service.forget_credentials(identity);
    }
    if let Err(error) = service.remove_registration(endpoint).await {
        tracing::warn!(%endpoint, %error, "decommissioned, but its registration was not removed");
    }
}

/// The audit trail of one device, newest first.
#[utoipa::path(get, path = "/devices/{endpoint}/audit", tag = "audit",
    params(("endpoint" = String, Path), api_types::AuditQuery),
    responses((status = 200, body = api_types::AuditPage),
              (status = 404, body = api_types::ErrorBody)))]
async fn device_audit(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    QueryParams(query): QueryParams<api_types::AuditQuery>,
) -> Result<Json<api_types::AuditPage>, ApiError> {
    let page = audit_page_request(&query)?;
    let page = state.store.device_audit(&endpoint, page).await?;
    Ok(Json(convert::audit_page(page)))
}

pub(super) fn audit_page_request(
    query: &api_types::AuditQuery,
) -> Result<AuditPageRequest, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE_SIZE}"
        )));
    }
    Ok(AuditPageRequest {
        before: query.before,
        limit,
    })
}

#[cfg(test)]
mod tests;
