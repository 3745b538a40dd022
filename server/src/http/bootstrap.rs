//! Bootstrap routes: configurations per device group (`/bootstrap/configs`; a device's group is
//! its `group` tag, `default` serves the rest), a device's bootstrap status and factory
//! credentials (`/devices/{endpoint}/bootstrap`), and credential rotation
//! (`/devices/{endpoint}/credentials/rotate`: new LwM2M-server credentials are staged, the
//! device is asked to bootstrap again with Bootstrap-Request Trigger `/1/x/9`, and its old
//! credentials stay valid until it registers with the new ones). Also the hooks the device
//! routes call at creation and decommissioning.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lwm2m_proto::lwm2m::bootstrap::BOOTSTRAP_REQUEST_TRIGGER;
use lwm2m_proto::lwm2m::server::{OpOutcome, Operation, RegisteredObjects};
use utoipa_axum::routes;

use super::convert;
use super::devices::actor;
use super::extract::JsonBody;
use super::{ApiError, AppState, Routes};
use crate::accounts::{Principal, Role};
use crate::fleet::lifecycle::{Actor, SystemComponent};
use crate::fleet::secrets::PskKey;
use crate::lwm2m::OpResult;
use crate::store::bootstrap::{BootstrapConfig, ConfigInvalid, DEFAULT_GROUP};

/// How long a rotation waits for the device to acknowledge the trigger.
const TRIGGER_WAIT: Duration = Duration::from_secs(10);

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(list_configs))
            .routes(routes!(get_config))
            .routes(routes!(device_bootstrap)),
        Routes::role(Role::FleetManager)
            .routes(routes!(put_config, delete_config))
            .routes(routes!(set_device_credentials))
            .routes(routes!(rotate_credentials)),
    ]
}

impl From<ConfigInvalid> for ApiError {
    fn from(invalid: ConfigInvalid) -> ApiError {
        ApiError::BadRequest(invalid.to_string())
    }
}

fn config_view(c: BootstrapConfig) -> api_types::bootstrap::BootstrapConfig {
    api_types::bootstrap::BootstrapConfig {
        group: c.group,
        server_uri: c.server_uri,
        security_mode: convert::security_mode(c.security_mode),
        lifetime_secs: c.lifetime,
        binding: c.binding,
        default_pmin_secs: c.default_pmin,
        default_pmax_secs: c.default_pmax,
        short_server_id: c.short_server_id,
        notification_storing: c.notification_storing,
        updated_at: convert::time(c.updated_at),
        updated_by: c.updated_by,
    }
}

/// Every stored configuration, by group name. Without a `default` one, devices without a group
/// get the built-in defaults (PSK, lifetime 3600 s, binding U, Short Server ID 1).
#[utoipa::path(get, path = "/bootstrap/configs", tag = "bootstrap",
    responses((status = 200, body = Vec<api_types::bootstrap::BootstrapConfig>)))]
async fn list_configs(
    State(state): State<AppState>,
) -> Result<Json<Vec<api_types::bootstrap::BootstrapConfig>>, ApiError> {
    let configs = state.store.bootstrap_configs().await?;
    Ok(Json(configs.into_iter().map(config_view).collect()))
}

/// One group's configuration (`default`: the built-in one when none is stored).
#[utoipa::path(get, path = "/bootstrap/configs/{group}", tag = "bootstrap",
    params(("group" = String, Path)),
    responses((status = 200, body = api_types::bootstrap::BootstrapConfig),
              (status = 404, body = api_types::ErrorBody)))]
async fn get_config(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<api_types::bootstrap::BootstrapConfig>, ApiError> {
    match state.store.bootstrap_config(&group).await? {
        Some(config) => Ok(Json(config_view(config))),
        None if group == DEFAULT_GROUP => Ok(Json(config_view(BootstrapConfig::builtin()))),
        None => Err(ApiError::NotFound(format!(
            "no bootstrap configuration for group {group:?}"
        ))),
    }
}

/// Creates or replaces a group's configuration; the group in the path wins over the body's.
#[utoipa::path(put, path = "/bootstrap/configs/{group}", tag = "bootstrap",
    params(("group" = String, Path)),
    request_body = api_types::bootstrap::BootstrapConfig,
    responses((status = 200, body = api_types::bootstrap::BootstrapConfig),
              (status = 400, body = api_types::ErrorBody)))]
async fn put_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(group): Path<String>,
    JsonBody(body): JsonBody<api_types::bootstrap::BootstrapConfig>,
) -> Result<Json<api_types::bootstrap::BootstrapConfig>, ApiError> {
    let config = BootstrapConfig {
        group,
        server_uri: body.server_uri.filter(|u| !u.is_empty()),
        security_mode: convert::security_mode_from_api(body.security_mode),
        lifetime: body.lifetime_secs,
        binding: body.binding,
        default_pmin: body.default_pmin_secs,
        default_pmax: body.default_pmax_secs,
        short_server_id: body.short_server_id,
        notification_storing: body.notification_storing,
        updated_at: chrono::Utc::now(),
        updated_by: String::new(),
    };
    let saved = state
        .store
        .put_bootstrap_config(config, &actor(&principal)?)
        .await??;
    tracing::info!(group = %saved.group, by = %principal.name, "bootstrap configuration saved");
    Ok(Json(config_view(saved)))
}

/// Deletes a group's configuration (its devices fall back to `default`).
#[utoipa::path(delete, path = "/bootstrap/configs/{group}", tag = "bootstrap",
    params(("group" = String, Path)),
    responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
async fn delete_config(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_bootstrap_config(&group).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no bootstrap configuration for group {group:?}"
        )))
    }
}

/// A device's bootstrap status: its bootstrap identity, pending credentials, last bootstrap and
/// the group configuration its next bootstrap uses.
#[utoipa::path(get, path = "/devices/{endpoint}/bootstrap", tag = "bootstrap",
    params(("endpoint" = String, Path)),
    responses((status = 200, body = api_types::bootstrap::BootstrapStatus),
              (status = 404, body = api_types::ErrorBody)))]
async fn device_bootstrap(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<Json<api_types::bootstrap::BootstrapStatus>, ApiError> {
    let device = state
        .store
        .get_device(&endpoint)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device with endpoint {endpoint:?}")))?;
    let status = state
        .store
        .bootstrap_status(&endpoint)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("device {endpoint:?} has no bootstrap credentials"))
        })?;
    let group = state.store.bootstrap_config_for(&device.tags).await?.group;
    Ok(Json(api_types::bootstrap::BootstrapStatus {
        endpoint: status.endpoint,
        bootstrap_identity: status.bootstrap_identity,
        bootstrap_revoked: status.bootstrap_revoked,
        pending_identity: status.pending_identity,
        pending_since: status.pending_since.map(convert::time),
        bootstrapped_at: status.bootstrapped_at.map(convert::time),
        group,
    }))
}

/// Sets (or replaces) a device's factory bootstrap credentials.
#[utoipa::path(put, path = "/devices/{endpoint}/bootstrap", tag = "bootstrap",
    params(("endpoint" = String, Path)),
    request_body = api_types::bootstrap::BootstrapCredentials,
    responses((status = 204),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody, description = "Identity taken, or device decommissioned")))]
async fn set_device_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(endpoint): Path<String>,
    JsonBody(body): JsonBody<api_types::bootstrap::BootstrapCredentials>,
) -> Result<StatusCode, ApiError> {
    set_factory_credentials(
        &state,
        &endpoint,
        &body.psk_identity,
        &body.psk_key_hex,
        &actor(&principal)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores factory bootstrap credentials and tells the bootstrap server (device creation and the
/// route above).
pub(super) async fn set_factory_credentials(
    state: &AppState,
    endpoint: &str,
    identity: &str,
    key_hex: &str,
    actor: &Actor,
) -> Result<(), ApiError> {
    let key = PskKey::from_hex(key_hex)
        .map_err(|e| ApiError::BadRequest(format!("bootstrap_psk_key_hex: {e}")))?;
    let replaced = state
        .store
        .set_bootstrap_credentials(endpoint, identity, &key, actor)
        .await?;
    if let Some(bs) = state.lwm2m.as_ref().and_then(|s| s.bootstrap()) {
        if let Some(old) = &replaced {
            bs.forget_identity(old);
        }
        bs.cache_credentials(identity, &key);
    }
    Ok(())
}

/// Revokes a decommissioned device's bootstrap and pending credentials in both servers (the
/// device is written nothing).
pub(super) async fn revoke_for_decommission(state: &AppState, endpoint: &str) {
    let revoked = state
        .store
        .revoke_bootstrap_credentials(endpoint, &Actor::system(SystemComponent::Bootstrap))
        .await;
    match revoked {
        Ok(identities) => {
            if let Some(bs) = state.lwm2m.as_ref().and_then(|s| s.bootstrap()) {
                bs.revoke(endpoint, &identities);
            }
        }
        Err(error) => {
            tracing::error!(%endpoint, %error, "decommissioned, but its bootstrap credentials were not revoked");
        }
    }
}

/// Generates new LwM2M-server credentials for a device and asks it to bootstrap again
/// (Execute `/1/x/9`, Bootstrap-Request Trigger, LwM2M 1.1). The old credentials keep working
/// until the device registers with the new ones; then they are revoked. A device that is not
/// registered, or does not support the trigger, gets the new key at its next bootstrap.
#[utoipa::path(post, path = "/devices/{endpoint}/credentials/rotate", tag = "bootstrap",
    params(("endpoint" = String, Path)),
    responses((status = 200, body = api_types::bootstrap::RotationResult),
              (status = 404, body = api_types::ErrorBody),
              (status = 409, body = api_types::ErrorBody, description = "NoSec, decommissioned, or no bootstrap credentials")))]
async fn rotate_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(endpoint): Path<String>,
) -> Result<Json<api_types::bootstrap::RotationResult>, ApiError> {
    let status = state.store.bootstrap_status(&endpoint).await?;
    match status {
        Some(s) if !s.bootstrap_revoked => {}
        Some(_) => {
            return Err(ApiError::Conflict {
                code: "credentials_revoked",
                message: format!("the bootstrap credentials of {endpoint:?} were revoked"),
            });
        }
        None => {
            // 404 for an unknown device, 409 for one that cannot bootstrap.
            state.store.get_device(&endpoint).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no device with endpoint {endpoint:?}"))
            })?;
            return Err(ApiError::Conflict {
                code: "no_bootstrap_credentials",
                message: format!(
                    "device {endpoint:?} has no bootstrap credentials: it cannot receive new ones"
                ),
            });
        }
    }
    let (identity, key) = state
        .store
        .stage_dm_credentials(&endpoint, &actor(&principal)?, Some("credential rotation"))
        .await?;
    let mut trigger_error = None;
    let mut triggered = false;
    match &state.lwm2m {
        Some(service) => {
            if let Some(bs) = service.bootstrap() {
                bs.accept_dm_credentials(&identity, key.as_bytes());
            }
            match trigger_bootstrap(service, &endpoint).await {
                Ok(()) => triggered = true,
                Err(why) => trigger_error = Some(why),
            }
        }
        None => trigger_error = Some("the LwM2M service is not running".to_owned()),
    }
    tracing::info!(%endpoint, by = %principal.name, triggered, "credentials rotation staged");
    Ok(Json(api_types::bootstrap::RotationResult {
        endpoint,
        pending_identity: identity,
        bootstrap_triggered: triggered,
        trigger_error,
    }))
}

/// Executes Bootstrap-Request Trigger on the device's Server object instance(s).
async fn trigger_bootstrap(
    service: &crate::lwm2m::Lwm2mService,
    endpoint: &str,
) -> Result<(), String> {
    let info = service
        .registration(endpoint)
        .ok_or_else(|| "the device is not registered".to_owned())?;
    let objects = RegisteredObjects::parse(&info.objects).map_err(|e| e.to_string())?;
    let instance = objects
        .instances()
        .find(|(o, _)| *o == 1)
        .map(|(_, i)| i)
        .ok_or_else(|| "the device registered no Server object instance".to_owned())?;
    let path = lwm2m_objects::Path::Resource(1, instance, BOOTSTRAP_REQUEST_TRIGGER);
    match service
        .request(
            endpoint,
            Operation::Execute { path, args: None },
            TRIGGER_WAIT,
        )
        .await
    {
        Ok(OpResult::Done {
            outcome: OpOutcome::Changed,
            ..
        }) => Ok(()),
        Ok(OpResult::Done { outcome, .. }) => Err(format!("unexpected answer {outcome:?}")),
        Ok(OpResult::Pending { .. }) => Err("no answer yet (the device may be asleep)".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
