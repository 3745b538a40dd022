//! The device-management routes (`/api/v1/devices/{endpoint}/read`, `/write`, `/execute`,
//! `/create`, `/delete`, `/discover`, `/write-attributes`, `/observe`), the poll of a request
//! queued for a sleeping device (`/api/v1/operations/{id}`) and the live registration of a device
//! (`/api/v1/devices/{endpoint}/registration`, `/observations`), and the read of many devices
//! at once (`/api/v1/fleet/read`, `fleet.rs`), on top of [`Lwm2mService`].
//!
//! Reads, Discover and Observe need `field-service`; everything that changes a device needs
//! `fleet-manager`. Values come out with their resource name, type and unit from the object
//! model (`values.rs`); errors carry the device's CoAP code (`error.rs`). A request the device
//! cannot answer within the caller's wait because it sleeps (queue mode) is answered 202 with the
//! operation's ID to poll.

mod bodies;
mod change;
mod error;
mod fleet;
mod status;
mod values;

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use lwm2m_objects::Path;
use lwm2m_proto::lwm2m::server::{OpError, OpOutcome, Operation};
use serde::Serialize;
use utoipa_axum::routes;

pub use self::bodies::*;
pub use self::error::{DeviceErrorBody, OpRouteError};
use self::values::{content_values, parse_path, resource_def};
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
            .routes(routes!(fleet::fleet_read))
            .routes(routes!(discover))
            .routes(routes!(observe, cancel_observation))
            .routes(routes!(observations))
            .routes(routes!(status::registration))
            .routes(routes!(status::operation)),
        Routes::role(Role::FleetManager)
            .routes(routes!(change::write))
            .routes(routes!(change::execute))
            .routes(routes!(change::create))
            .routes(routes!(change::delete))
            .routes(routes!(change::write_attributes)),
    ]
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

/// Every path of a request body, or 400 naming the first malformed one.
fn paths_of(texts: &[String]) -> Result<Vec<Path>, OpRouteError> {
    texts.iter().map(|p| path_of(p)).collect()
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
    name: &'static str,
    request: impl std::future::Future<Output = Result<OpResult, ServiceError>>,
    waited: Duration,
) -> Result<Done, OpRouteError> {
    let started = Instant::now();
    let result = request.await;
    finish(endpoint, name, result, waited, started.elapsed())
}

/// What one request came to, for the caller, recorded in the metrics (`took`: its duration).
fn finish(
    endpoint: &str,
    name: &'static str,
    result: Result<OpResult, ServiceError>,
    waited: Duration,
    took: Duration,
) -> Result<Done, OpRouteError> {
    let (label, done) = settle(endpoint, name, result, waited);
    crate::metrics::global().record_request(name, label, took);
    done
}

/// What one request came to, and its metrics label (the CoAP code, or what went wrong); the
/// caller records it ([`finish`], or a fleet read once per label).
fn settle(
    endpoint: &str,
    name: &'static str,
    result: Result<OpResult, ServiceError>,
    waited: Duration,
) -> (&'static str, Result<Done, OpRouteError>) {
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
    if let Err(error) = &done {
        tracing::debug!(%endpoint, operation = name, %error, "device request failed");
    }
    (label, done)
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
    let paths = paths_of(&body.paths)?;
    if let [path] = paths.as_slice() {
        let result = request(service, &endpoint, Operation::Read(*path), body.wait_ms).await;
        return single_answer("read", result);
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
    // One lifecycle query and one command for all the paths (`request_many`), not one each.
    let waited = wait(wait_ms);
    let started = Instant::now();
    let requests = paths
        .iter()
        .map(|path| (endpoint.to_owned(), Operation::Read(*path)))
        .collect();
    let results = service.request_many(requests, waited).await?;
    let took = started.elapsed();
    let results = results
        .into_iter()
        .map(|result| finish(endpoint, "Read", result, waited, took))
        .collect();
    parallel_answer(paths, results, unix_seconds_now())
}

/// The answer to parallel reads from each path's result: the values read, the paths that
/// failed; 202 when any waits for a sleeping device; the first error when every path failed.
fn parallel_answer(
    paths: &[Path],
    results: Vec<Result<Done, OpRouteError>>,
    received: f64,
) -> Result<Reply<ReadResponse>, OpRouteError> {
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

/// The answer to one Read or Read-Composite (`method`).
fn single_answer(
    method: &str,
    result: Result<Done, OpRouteError>,
) -> Result<Reply<ReadResponse>, OpRouteError> {
    single_answer_at(method, result, unix_seconds_now())
}

/// [`single_answer`] for content received at `received` (Unix seconds: the base of relative
/// SenML times).
fn single_answer_at(
    method: &str,
    result: Result<Done, OpRouteError>,
    received: f64,
) -> Result<Reply<ReadResponse>, OpRouteError> {
    match result? {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Content(content)) => Ok(Reply::Done(ReadResponse {
            operations: vec![id.to_string()],
            method: method.to_owned(),
            values: content_values(&content, received),
            errors: Vec::new(),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
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

/// Observes a path (TS Core 1.1 §6.4.1), or several together (`paths`: one Observe-Composite,
/// LwM2M 1.1+ devices; a 1.0 device answers 400): the first value(s) and the observation's
/// number; the notifications come as `notification` events on `GET /api/v1/events`. The
/// observation is kept in the store: after a server restart the device's notifications arrive
/// under the same number until it is cancelled, the device ends it, or its registration ends.
#[utoipa::path(post, path = "/devices/{endpoint}/observe", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = ObserveRequest,
    responses((status = 200, body = ObserveResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody, description = "Neither or both of path and paths, a malformed path, too many paths, Observe-Composite to an LwM2M 1.0 device"),
        (status = 404, body = DeviceErrorBody),
        (status = 429, body = DeviceErrorBody, description = "Too many observations"),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
async fn observe(
    State(state): State<AppState>,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<ObserveRequest>,
) -> Result<Reply<ObserveResponse>, OpRouteError> {
    let service = service(&state)?;
    let operation = match (&body.path, &body.paths) {
        (Some(path), None) => Operation::Observe(path_of(path)?),
        (None, Some(paths)) => {
            if !(1..=MAX_PATHS).contains(&paths.len()) {
                return Err(OpRouteError::bad_request(format!(
                    "{} paths; name 1 to {MAX_PATHS}",
                    paths.len()
                )));
            }
            Operation::ObserveComposite(paths_of(paths)?)
        }
        _ => {
            return Err(OpRouteError::bad_request(
                "give either \"path\" (Observe) or \"paths\" (Observe-Composite)",
            ));
        }
    };
    match request(service, &endpoint, operation, body.wait_ms).await? {
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
