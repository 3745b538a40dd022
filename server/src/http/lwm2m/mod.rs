//! The device-management routes (`/api/v1/devices/{endpoint}/read`, `/write`, `/execute`,
//! `/create`, `/delete`, `/discover`, `/write-attributes`, `/observe`), the poll of a request
//! queued for a sleeping device (`/api/v1/operations/{id}`) and the live registration of a device
//! (`/api/v1/devices/{endpoint}/registration`, `/observations`), on top of [`Lwm2mService`].
//!
//! Reads, Discover and Observe need `field-service`; everything that changes a device needs
//! `fleet-manager`. Values come out with their resource name, type and unit from the object
//! model (`values.rs`); errors carry the device's CoAP code (`error.rs`). A request the device
//! cannot answer within the caller's wait because it sleeps (queue mode) is answered 202 with the
//! operation's ID to poll.

mod error;
mod values;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::future::join_all;
use lwm2m_objects::link::Attributes;
use lwm2m_objects::{Operations, Path};
use lwm2m_proto::lwm2m::server::{OpError, OpOutcome, Operation, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa_axum::routes;

pub use self::error::{DeviceErrorBody, OpRouteError};
pub use self::values::ValueOut;
use self::values::{content_values, instance_in, node_in, parse_path, resource_def};
use super::extract::{JsonBody, QueryParams};
use super::{AppState, Routes};
use crate::accounts::Role;
use crate::lwm2m::{Lwm2mService, OpResult, OperationId, ServiceError};

/// How long a request waits for the device unless the caller says (`wait_ms`).
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// The most paths one read may name.
const MAX_PATHS: usize = 64;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(read))
            .routes(routes!(discover))
            .routes(routes!(observe, cancel_observation))
            .routes(routes!(observations))
            .routes(routes!(registration))
            .routes(routes!(operation)),
        Routes::role(Role::FleetManager)
            .routes(routes!(write))
            .routes(routes!(execute))
            .routes(routes!(create))
            .routes(routes!(delete))
            .routes(routes!(write_attributes)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Request and response bodies
// ---------------------------------------------------------------------------------------------

/// `POST /devices/{endpoint}/read`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// LwM2M paths: objects, instances, resources or resource instances (`/3/0`, `/4/0/2`).
    pub paths: Vec<String>,
    /// How long to wait for the device, in milliseconds (default 30000, at most 300000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A body naming one path (`/delete`, `/discover`, `/observe`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRequest {
    pub path: String,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// Replace (PUT) or partial update (POST), TS Core 1.1 §6.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteModeIn {
    Replace,
    Partial,
}

/// `POST /devices/{endpoint}/write`: `{"path": "/1/0/1", "value": 300}` for a resource (or
/// resource instance; a multiple-instance resource takes `{"0": …, "1": …}`), or
/// `{"path": "/1/0", "values": {"1": 300, "7": "U"}, "mode": "partial"}` for an instance.
/// The mode defaults to replace for a resource and partial update for an instance.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    pub path: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Option<Json_>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: Option<serde_json::Map<String, Json_>>,
    #[serde(default)]
    pub mode: Option<WriteModeIn>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/execute`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The executable resource, e.g. `/3/0/4` (Reboot).
    pub path: String,
    /// Arguments in the TS Core 1.1 §5.4.3 syntax (`0='x',1`).
    #[serde(default)]
    pub args: Option<String>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/create`: `{"path": "/3303/1", "values": {"5700": 21.5}}` (or
/// `"path": "/3303", "instance": 1`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub path: String,
    #[serde(default)]
    pub instance: Option<u16>,
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, Json_>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `POST /devices/{endpoint}/write-attributes` (TS Core 1.1 §5.1.2).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteAttributesRequest {
    pub path: String,
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
    pub gt: Option<f64>,
    pub lt: Option<f64>,
    pub st: Option<f64>,
    pub epmin: Option<u32>,
    pub epmax: Option<u32>,
    /// LwM2M 1.2 attributes (`edge`, `con`, `hqmax`) as text.
    #[serde(default)]
    pub other: BTreeMap<String, String>,
    /// Attributes to remove (sent without a value).
    #[serde(default)]
    pub clear: Vec<String>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `DELETE /devices/{endpoint}/observe?observation=…` (or `?path=/3/0/9`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    /// The observation's number (from the Observe answer or a notification event).
    pub observation: Option<u64>,
    /// Or the observed path: cancels every observation of exactly that path.
    pub path: Option<String>,
    pub wait_ms: Option<u64>,
}

/// The answer to a read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadResponse {
    /// The service's operation ID(s).
    pub operations: Vec<String>,
    /// How the paths were read: `read`, `read-composite` (LwM2M 1.1+, one request) or
    /// `parallel-reads` (LwM2M 1.0: one Read per path, sent together).
    pub method: String,
    pub values: Vec<ValueOut>,
    /// Paths that failed while others succeeded (parallel reads only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PathErrorOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathErrorOut {
    pub path: String,
    pub error: DeviceErrorBody,
}

/// Write, Execute, Write-Attributes, Delete done.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DoneResponse {
    pub operation: String,
    /// `changed` or `deleted`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedResponse {
    pub operation: String,
    /// The new instance's path, when the device named it.
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkOut {
    pub path: String,
    /// `pmin`, `dim`, `ver`, …; null for a flag without a value.
    pub attributes: BTreeMap<String, Option<String>>,
    /// The resource's or object's name in the object model.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiscoverResponse {
    pub operation: String,
    pub links: Vec<LinkOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObserveResponse {
    pub operation: String,
    /// The observation's number (cancel with it; notifications carry it). Null when the device
    /// answered without establishing an observation.
    pub observation: Option<u64>,
    pub values: Vec<ValueOut>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub operations: Vec<String>,
    pub cancelled: Vec<u64>,
}

/// 202: the device sleeps (queue mode); the request waits for it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingResponse {
    /// Always `pending`.
    pub status: String,
    pub operation: String,
    /// Every pending operation (several for parallel reads).
    pub operations: Vec<String>,
    /// Where to poll: `/api/v1/operations/{id}`.
    pub poll: String,
}

/// A request persisted for a sleeping device.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OperationStatus {
    pub id: String,
    pub endpoint: String,
    /// `pending`, `completed`, `failed`, `expired`.
    pub status: String,
    /// The operation as stored.
    #[schema(value_type = Object)]
    pub operation: Json_,
    pub created_at: String,
    pub expires_at: String,
    pub finished_at: Option<String>,
    /// The outcome (`{"status": "succeeded", "outcome": …}`) or error, once finished.
    #[schema(value_type = Object)]
    pub result: Option<Json_>,
}

/// A device's live LwM2M registration (from the server's memory).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegistrationOut {
    pub endpoint: String,
    pub registration_id: String,
    /// `coap` or `coaps`.
    pub transport: String,
    /// `1.0`, `1.1`, `1.2`.
    pub lwm2m_version: String,
    /// 1.0 form: `U`, `UQ`.
    pub binding: String,
    pub queue_mode: bool,
    pub lifetime_secs: u32,
    pub sms_number: Option<String>,
    /// The registered object links (`</3/0>`, …) as sent.
    pub objects: String,
    /// `ip:port`.
    pub address: String,
    pub psk_identity: Option<String>,
    pub registered_at: String,
    /// The last Register or Update (the device was last seen then or later).
    pub last_update: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObservationOut {
    pub observation: u64,
    pub paths: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------------------------

/// An answer, or 202 when the device sleeps.
#[derive(Debug)]
pub enum Reply<T> {
    Done(T),
    Pending(PendingResponse),
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        match self {
            Reply::Done(body) => (StatusCode::OK, Json(body)).into_response(),
            Reply::Pending(body) => (StatusCode::ACCEPTED, Json(body)).into_response(),
        }
    }
}

fn pending(ids: &[OperationId]) -> PendingResponse {
    let first = ids.first().map(ToString::to_string).unwrap_or_default();
    PendingResponse {
        status: "pending".to_owned(),
        poll: format!("/api/v1/operations/{first}"),
        operation: first,
        operations: ids.iter().map(ToString::to_string).collect(),
    }
}

/// Now, as SenML counts time (resolves relative times in what was just received).
fn unix_seconds_now() -> f64 {
    // Microsecond precision; f64 holds it exactly for centuries.
    Utc::now().timestamp_micros() as f64 / 1e6
}

fn service(state: &AppState) -> Result<&Lwm2mService, OpRouteError> {
    state
        .lwm2m
        .as_ref()
        .ok_or(OpRouteError::Service(ServiceError::Unavailable))
}

fn wait(wait_ms: Option<u64>) -> Duration {
    wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT)
}

fn path_of(text: &str) -> Result<Path, OpRouteError> {
    parse_path(text).map_err(OpRouteError::bad_request)
}

/// What a request came to, for the caller.
enum Done {
    Answered(OperationId, OpOutcome),
    /// Waiting for a sleeping device.
    Queued(OperationId),
}

/// The CoAP code an outcome was answered with (RFC 7252 §5.9.1), for the metrics.
fn outcome_code(outcome: &OpOutcome) -> &'static str {
    match outcome {
        OpOutcome::Changed => "2.04",
        OpOutcome::Created { .. } => "2.01",
        OpOutcome::Deleted => "2.02",
        OpOutcome::Content(_)
        | OpOutcome::Links(_)
        | OpOutcome::Observing { .. }
        | OpOutcome::Cancelled { .. } => "2.05",
    }
}

/// Sends one request and waits, recording it in the metrics.
async fn run(
    endpoint: &str,
    name: &str,
    request: impl std::future::Future<Output = Result<OpResult, ServiceError>>,
    waited: Duration,
) -> Result<Done, OpRouteError> {
    let started = Instant::now();
    let result = request.await;
    let (label, done) = match result {
        Ok(OpResult::Done { operation, outcome }) => (
            outcome_code(&outcome),
            Ok(Done::Answered(operation, outcome)),
        ),
        Ok(OpResult::Pending {
            operation,
            queued: true,
        }) => ("queued", Ok(Done::Queued(operation))),
        Ok(OpResult::Pending {
            operation,
            queued: false,
        }) => (
            "timeout",
            Err(OpRouteError::StillRunning {
                operation,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            }),
        ),
        Err(error) => {
            let label = error.coap_code().unwrap_or(error.code_name());
            // The label set is bounded: CoAP codes and the service's error names.
            let label: &'static str = match label {
                "4.00" => "4.00",
                "4.01" => "4.01",
                "4.02" => "4.02",
                "4.03" => "4.03",
                "4.04" => "4.04",
                "4.05" => "4.05",
                "4.06" => "4.06",
                "4.08" => "4.08",
                "4.12" => "4.12",
                "4.13" => "4.13",
                "4.15" => "4.15",
                "5.00" => "5.00",
                "5.01" => "5.01",
                "5.03" => "5.03",
                _ if error.coap_code().is_some() => "other",
                _ => error.code_name(),
            };
            (label, Err(OpRouteError::Service(error)))
        }
    };
    crate::metrics::global().record_request(name, label, started.elapsed());
    if let Err(error) = &done {
        tracing::debug!(%endpoint, operation = name, %error, "device request failed");
    }
    done
}

async fn request(
    service: &Lwm2mService,
    endpoint: &str,
    operation: Operation,
    wait_ms: Option<u64>,
) -> Result<Done, OpRouteError> {
    let name = operation.name();
    let waited = wait(wait_ms);
    run(
        endpoint,
        name,
        service.request(endpoint, operation, waited),
        waited,
    )
    .await
}

fn unexpected(outcome: &OpOutcome) -> OpRouteError {
    tracing::error!(?outcome, "the service answered with an unexpected outcome");
    OpRouteError::Service(ServiceError::Unavailable)
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

const ENDPOINT: &str = "The device's LwM2M endpoint name";

/// Reads one or more paths. Several paths are one Read-Composite for LwM2M 1.1+ devices (TS
/// Core 1.1 §6.3.8) and parallel Reads for 1.0 devices (or when the device refuses composite).
#[utoipa::path(post, path = "/devices/{endpoint}/read", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = ReadRequest,
    responses(
        (status = 200, body = ReadResponse, description = "Decoded values with name, type and unit"),
        (status = 202, body = PendingResponse, description = "Queued for a sleeping device"),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn read(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<ReadRequest>,
) -> Result<Reply<ReadResponse>, OpRouteError> {
    let service = service(&state)?;
    if body.paths.is_empty() {
        return Err(OpRouteError::bad_request(
            "\"paths\" is empty: name at least one path",
        ));
    }
    if body.paths.len() > MAX_PATHS {
        return Err(OpRouteError::bad_request(format!(
            "{} paths; at most {MAX_PATHS} per read",
            body.paths.len()
        )));
    }
    let paths = body
        .paths
        .iter()
        .map(|p| path_of(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let [path] = paths.as_slice() {
        return match request(service, &endpoint, Operation::Read(*path), body.wait_ms).await? {
            Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
            Done::Answered(id, OpOutcome::Content(content)) => Ok(Reply::Done(ReadResponse {
                operations: vec![id.to_string()],
                method: "read".to_owned(),
                values: content_values(&content, unix_seconds_now()),
                errors: Vec::new(),
            })),
            Done::Answered(_, other) => Err(unexpected(&other)),
        };
    }
    let composite = service
        .registration(&endpoint)
        .is_some_and(|r| r.lwm2m_version != "1.0");
    if composite {
        match request(
            service,
            &endpoint,
            Operation::ReadComposite(paths.clone()),
            body.wait_ms,
        )
        .await
        {
            Ok(Done::Queued(id)) => return Ok(Reply::Pending(pending(&[id]))),
            Ok(Done::Answered(id, OpOutcome::Content(content))) => {
                return Ok(Reply::Done(ReadResponse {
                    operations: vec![id.to_string()],
                    method: "read-composite".to_owned(),
                    values: content_values(&content, unix_seconds_now()),
                    errors: Vec::new(),
                }));
            }
            Ok(Done::Answered(_, other)) => return Err(unexpected(&other)),
            // No SenML/CBOR format in common, or the device answers 4.05/4.06 to the composite
            // request: fall back to one Read per path.
            Err(OpRouteError::Service(
                ServiceError::Invalid(OpError::NotSupported { .. })
                | ServiceError::DeviceError { .. },
            )) => {}
            Err(error) => return Err(error),
        }
    }
    parallel_reads(service, &endpoint, &paths, body.wait_ms).await
}

/// One Read per path, all sent at once (the engine keeps NSTART per device, RFC 7252 §4.7).
async fn parallel_reads(
    service: &Lwm2mService,
    endpoint: &str,
    paths: &[Path],
    wait_ms: Option<u64>,
) -> Result<Reply<ReadResponse>, OpRouteError> {
    let results = join_all(
        paths
            .iter()
            .map(|path| request(service, endpoint, Operation::Read(*path), wait_ms)),
    )
    .await;
    let received = unix_seconds_now();
    let mut response = ReadResponse {
        operations: Vec::new(),
        method: "parallel-reads".to_owned(),
        values: Vec::new(),
        errors: Vec::new(),
    };
    let mut queued = Vec::new();
    let mut first_error = None;
    for (path, result) in paths.iter().zip(results) {
        match result {
            Ok(Done::Answered(id, OpOutcome::Content(content))) => {
                response.operations.push(id.to_string());
                response.values.extend(content_values(&content, received));
            }
            Ok(Done::Answered(_, other)) => return Err(unexpected(&other)),
            Ok(Done::Queued(id)) => queued.push(id),
            Err(error) => {
                let status = error.status();
                let Some(body) = error.to_body() else {
                    return Err(error);
                };
                response.errors.push(PathErrorOut {
                    path: path.to_string(),
                    error: body.clone(),
                });
                first_error.get_or_insert((status, body));
            }
        }
    }
    if !queued.is_empty() {
        return Ok(Reply::Pending(pending(&queued)));
    }
    if response.operations.is_empty()
        && let Some((status, body)) = first_error
    {
        return Err(OpRouteError::Body(status, body));
    }
    Ok(Reply::Done(response))
}

/// Writes a resource, a resource instance or (with `values`) an object instance.
#[utoipa::path(post, path = "/devices/{endpoint}/write", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = WriteRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody, description = "Bad path, or a value that does not fit the resource's type"),
        (status = 404, body = DeviceErrorBody), (status = 409, body = DeviceErrorBody, description = "The device is suspended (read-only)"),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn write(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<WriteRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    let (node, default_mode) = match (&body.value, &body.values, path) {
        (Some(value), None, _) => (
            node_in(&path, value).map_err(OpRouteError::bad_request)?,
            WriteMode::Replace,
        ),
        (None, Some(values), Path::Instance(object, instance)) => (
            lwm2m_objects::Node::Instance(
                instance_in(object, instance, values).map_err(OpRouteError::bad_request)?,
            ),
            WriteMode::PartialUpdate,
        ),
        (None, Some(_), _) => {
            return Err(OpRouteError::bad_request(format!(
                "\"values\" (resource ID → value) writes an object instance (/object/instance), not {path}"
            )));
        }
        _ => {
            return Err(OpRouteError::bad_request(
                "give either \"value\" (a resource) or \"values\" (an object instance)",
            ));
        }
    };
    if let Some(def) = resource_def(&path)
        && !def.operations.write
    {
        return Err(OpRouteError::bad_request(format!(
            "{path} ({}) is not writable (operations: {})",
            def.name,
            operations_text(def.operations)
        )));
    }
    let mode = match body.mode {
        Some(WriteModeIn::Replace) => WriteMode::Replace,
        Some(WriteModeIn::Partial) => WriteMode::PartialUpdate,
        None => default_mode,
    };
    changed(
        request(
            service,
            &endpoint,
            Operation::Write { path, node, mode },
            body.wait_ms,
        )
        .await?,
    )
}

fn operations_text(operations: Operations) -> &'static str {
    match operations.as_str() {
        "" => "none",
        other => other,
    }
}

fn changed(done: Done) -> Result<Reply<DoneResponse>, OpRouteError> {
    match done {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Changed) => Ok(Reply::Done(DoneResponse {
            operation: id.to_string(),
            outcome: "changed".to_owned(),
        })),
        Done::Answered(id, OpOutcome::Deleted) => Ok(Reply::Done(DoneResponse {
            operation: id.to_string(),
            outcome: "deleted".to_owned(),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

/// Executes a resource (TS Core 1.1 §6.3.5), with optional arguments.
#[utoipa::path(post, path = "/devices/{endpoint}/execute", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = ExecuteRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
async fn execute(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<ExecuteRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    if !matches!(path, Path::Resource(..)) {
        return Err(OpRouteError::bad_request(format!(
            "Execute targets a resource (/object/instance/resource), not {path}"
        )));
    }
    if let Some(def) = resource_def(&path)
        && !def.operations.execute
    {
        return Err(OpRouteError::bad_request(format!(
            "{path} ({}) is not executable (operations: {})",
            def.name,
            operations_text(def.operations)
        )));
    }
    let operation = Operation::Execute {
        path,
        args: body.args.filter(|a| !a.is_empty()),
    };
    changed(request(service, &endpoint, operation, body.wait_ms).await?)
}

/// Creates an object instance (TS Core 1.1 §6.3.6).
#[utoipa::path(post, path = "/devices/{endpoint}/create", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = CreateRequest,
    responses((status = 200, body = CreatedResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
async fn create(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Result<Reply<CreatedResponse>, OpRouteError> {
    let service = service(&state)?;
    let (object, instance) = match (path_of(&body.path)?, body.instance) {
        (Path::Object(object), Some(instance)) => (object, instance),
        (Path::Instance(object, instance), None) => (object, instance),
        (Path::Instance(object, instance), Some(other)) if other == instance => (object, instance),
        (Path::Object(_), None) => {
            return Err(OpRouteError::bad_request(
                "name the new instance: \"path\": \"/object/instance\" or \"instance\": n",
            ));
        }
        (path, _) => {
            return Err(OpRouteError::bad_request(format!(
                "Create targets an object (/object) or a new instance (/object/instance), not {path}"
            )));
        }
    };
    let instance =
        instance_in(object, instance, &body.values).map_err(OpRouteError::bad_request)?;
    match request(
        service,
        &endpoint,
        Operation::Create { object, instance },
        body.wait_ms,
    )
    .await?
    {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Created { instance }) => Ok(Reply::Done(CreatedResponse {
            operation: id.to_string(),
            instance: instance.map(|p| p.to_string()),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

/// Deletes an object instance (or, LwM2M 1.2, a resource instance), TS Core 1.1 §6.3.7.
#[utoipa::path(post, path = "/devices/{endpoint}/delete", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = PathRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    changed(request(service, &endpoint, Operation::Delete(path), body.wait_ms).await?)
}

/// Discovers the attributes and resources below a path (TS Core 1.1 §6.3.2).
#[utoipa::path(post, path = "/devices/{endpoint}/discover", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = PathRequest,
    responses((status = 200, body = DiscoverResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn discover(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Result<Reply<DiscoverResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    match request(service, &endpoint, Operation::Discover(path), body.wait_ms).await? {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Links(links)) => Ok(Reply::Done(DiscoverResponse {
            operation: id.to_string(),
            links: links
                .iter()
                .map(|link| {
                    let view = crate::lwm2m::LinkView::from(link);
                    LinkOut {
                        name: link_name(&link.path),
                        path: view.path,
                        attributes: view.attributes,
                    }
                })
                .collect(),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

fn link_name(path: &Path) -> Option<String> {
    match path {
        Path::Object(_) | Path::Instance(..) => path
            .object_id()
            .and_then(|o| lwm2m_objects::ObjectModel::builtin().object(o))
            .map(|def| def.name.to_owned()),
        _ => resource_def(path).map(|def| def.name.to_owned()),
    }
}

/// Writes notification attributes (TS Core 1.1 §5.1.2, §6.3.4).
#[utoipa::path(post, path = "/devices/{endpoint}/write-attributes", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = WriteAttributesRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
async fn write_attributes(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<WriteAttributesRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    let attributes = attributes_in(&body).map_err(OpRouteError::bad_request)?;
    let operation = Operation::WriteAttributes { path, attributes };
    changed(request(service, &endpoint, operation, body.wait_ms).await?)
}

/// The attributes of a Write-Attributes body; `clear` sends names without a value (removal).
fn attributes_in(body: &WriteAttributesRequest) -> Result<Attributes, String> {
    let mut attributes = Attributes {
        pmin: body.pmin,
        pmax: body.pmax,
        gt: body.gt,
        lt: body.lt,
        st: body.st,
        epmin: body.epmin,
        epmax: body.epmax,
        ..Attributes::default()
    };
    for (name, value) in &body.other {
        if !valid_attribute_name(name) || value.is_empty() {
            return Err(format!(
                "attribute {name:?}={value:?} is not a name=value pair"
            ));
        }
        attributes.other.push((name.clone(), Some(value.clone())));
    }
    for name in &body.clear {
        if !valid_attribute_name(name) {
            return Err(format!("{name:?} is not an attribute name"));
        }
        attributes.other.push((name.clone(), None));
    }
    if attributes == Attributes::default() {
        return Err(
            "no attribute given (pmin, pmax, gt, lt, st, epmin, epmax, other, clear)".to_owned(),
        );
    }
    Ok(attributes)
}

fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 16 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Observes a path (TS Core 1.1 §6.4.1): the first value and the observation's number; the
/// notifications come as `notification` events on `GET /api/v1/events`.
#[utoipa::path(post, path = "/devices/{endpoint}/observe", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = PathRequest,
    responses((status = 200, body = ObserveResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 429, body = DeviceErrorBody, description = "Too many observations"),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn observe(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Result<Reply<ObserveResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    match request(service, &endpoint, Operation::Observe(path), body.wait_ms).await? {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(
            id,
            OpOutcome::Observing {
                observation,
                content,
            },
        ) => Ok(Reply::Done(ObserveResponse {
            operation: id.to_string(),
            observation: Some(observation.as_u64()),
            values: content_values(&content, unix_seconds_now()),
        })),
        Done::Answered(id, OpOutcome::Content(content)) => Ok(Reply::Done(ObserveResponse {
            operation: id.to_string(),
            observation: None,
            values: content_values(&content, unix_seconds_now()),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

/// Cancels an observation by number (`?observation=`) or every observation of a path (`?path=`),
/// TS Core 1.1 §6.4.3.
#[utoipa::path(delete, path = "/devices/{endpoint}/observe", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT), CancelQuery),
    responses((status = 200, body = CancelResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn cancel_observation(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    QueryParams(query): QueryParams<CancelQuery>,
) -> Result<Json<CancelResponse>, OpRouteError> {
    let service = service(&state)?;
    let numbers = match (query.observation, &query.path) {
        (Some(number), None) => vec![number],
        (None, Some(path)) => {
            let path = path_of(path)?.to_string();
            let numbers: Vec<u64> = service
                .observations(&endpoint)
                .await?
                .into_iter()
                .filter(|o| o.paths.len() == 1 && o.paths.first() == Some(&path))
                .map(|o| o.observation)
                .collect();
            if numbers.is_empty() {
                return Err(OpRouteError::Api(super::ApiError::NotFound(format!(
                    "{endpoint:?} has no observation of {path}"
                ))));
            }
            numbers
        }
        _ => {
            return Err(OpRouteError::bad_request(
                "give either ?observation=<number> or ?path=<observed path>",
            ));
        }
    };
    let waited = wait(query.wait_ms);
    let mut response = CancelResponse {
        operations: Vec::new(),
        cancelled: Vec::new(),
    };
    for number in numbers {
        let done = run(
            &endpoint,
            "Cancel Observation",
            service.cancel_observation(&endpoint, number, waited),
            waited,
        )
        .await?;
        match done {
            Done::Answered(id, _) | Done::Queued(id) => {
                response.operations.push(id.to_string());
                response.cancelled.push(number);
            }
        }
    }
    Ok(Json(response))
}

/// The device's established observations.
#[utoipa::path(get, path = "/devices/{endpoint}/observations", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, body = Vec<ObservationOut>), (status = 404, body = DeviceErrorBody)))]
async fn observations(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
) -> Result<Json<Vec<ObservationOut>>, OpRouteError> {
    let service = service(&state)?;
    Ok(Json(
        service
            .observations(&endpoint)
            .await?
            .into_iter()
            .map(|o| ObservationOut {
                observation: o.observation,
                paths: o.paths,
            })
            .collect(),
    ))
}

/// The device's live registration: version, binding, lifetime, object links, address,
/// registered at, last update.
#[utoipa::path(get, path = "/devices/{endpoint}/registration", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, body = RegistrationOut),
        (status = 404, body = DeviceErrorBody, description = "Not registered")))]
async fn registration(
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
async fn operation(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OperationStatus>, OpRouteError> {
    let service = service(&state)?;
    let parsed: OperationId = id
        .parse()
        .map_err(|e| OpRouteError::bad_request(format!("{id:?}: {e}")))?;
    let request = service.operation(parsed).await?.ok_or_else(|| {
        OpRouteError::Api(super::ApiError::NotFound(format!(
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
        result: request.result.as_deref().map(json),
    }))
}
