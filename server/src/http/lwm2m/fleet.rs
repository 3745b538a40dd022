//! `POST /api/v1/fleet/read`: the same paths read on up to 1,000 devices in one request, each
//! device's answer what `POST /devices/{endpoint}/read` would have given it (decoded values, or
//! the error with its status and CoAP code), all in one JSON body.
//!
//! Every read goes through [`Lwm2mService::request_many`](crate::lwm2m::Lwm2mService): one store
//! query for the lifecycle of all devices, one command per socket, completions in bursts. The
//! method per device is the single read's: one path → Read; several → one Read-Composite for
//! LwM2M 1.1+ devices (TS Core 1.1 §6.3.8), falling back to parallel Reads in a second round
//! for the devices that refuse it, and parallel Reads for 1.0 devices.

use std::time::Instant;

use api_types::fleet_read::{
    FleetReadRequest, FleetReadResponse, FleetReadResult, MAX_FLEET_READ_ENDPOINTS,
    MAX_FLEET_READ_PATHS,
};
use axum::extract::State;
use lwm2m_objects::Path;
use lwm2m_proto::lwm2m::server::{OpError, Operation};

use super::error::{DeviceErrorBody, OpRouteError};
use super::{
    Done, ReadResponse, Reply, parallel_answer, paths_of, service, settle, single_answer_at,
};
use crate::http::AppState;
use crate::http::extract::SizedJson;
use crate::lwm2m::{OpResult, ServiceError};

/// How a device is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Read,
    Composite,
    Parallel,
}

/// Reads the same paths on many devices (1 to 1,000 endpoints, 1 to 16 paths); one result per
/// endpoint, in the request's order, each with the status the single-device read would answer.
#[utoipa::path(post, path = "/fleet/read", tag = "device operations",
    request_body = FleetReadRequest,
    responses(
        (status = 200, body = FleetReadResponse, description = "One result per endpoint: decoded values, pending operations, or the error (404 unknown or not registered, 409 not allowed in its lifecycle state, 502/404 the device's CoAP error, 504 no answer in time)"),
        (status = 400, body = DeviceErrorBody, description = "No or too many endpoints or paths, a duplicate endpoint, a malformed path"),
        (status = 503, body = DeviceErrorBody)))]
pub(super) async fn fleet_read(
    State(state): State<AppState>,
    super::JsonBody(body): super::JsonBody<FleetReadRequest>,
) -> Result<SizedJson<FleetReadResponse>, OpRouteError> {
    let service = service(&state)?;
    let count = body.endpoints.len();
    if !(1..=MAX_FLEET_READ_ENDPOINTS).contains(&count) {
        return Err(OpRouteError::bad_request(format!(
            "{count} endpoints; name 1 to {MAX_FLEET_READ_ENDPOINTS}"
        )));
    }
    if !(1..=MAX_FLEET_READ_PATHS).contains(&body.paths.len()) {
        return Err(OpRouteError::bad_request(format!(
            "{} paths; name 1 to {MAX_FLEET_READ_PATHS}",
            body.paths.len()
        )));
    }
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(count, Default::default());
    if let Some(twice) = body.endpoints.iter().find(|e| !seen.insert(e.as_str())) {
        return Err(OpRouteError::bad_request(format!(
            "endpoint {twice:?} is named twice"
        )));
    }
    let paths = paths_of(&body.paths)?;
    let waited = super::wait(body.timeout_ms);
    let started = Instant::now();

    let methods: Vec<Method> = body
        .endpoints
        .iter()
        .map(|endpoint| match paths.as_slice() {
            [_] => Method::Read,
            _ if service
                .registration(endpoint)
                .is_some_and(|r| r.lwm2m_version != "1.0") =>
            {
                Method::Composite
            }
            _ => Method::Parallel,
        })
        .collect();
    let mut answers = round(service, &body.endpoints, &methods, &paths, waited, started).await?;

    // Devices that refused the composite read (no SenML/CBOR in common, 4.05/4.06): one Read
    // per path, as the single-device read does.
    let retry: Vec<usize> = answers
        .iter()
        .zip(&methods)
        .enumerate()
        .filter(|(_, (answer, method))| **method == Method::Composite && refused_composite(answer))
        .map(|(index, _)| index)
        .collect();
    if !retry.is_empty() {
        let endpoints: Vec<String> = retry
            .iter()
            .filter_map(|&i| body.endpoints.get(i).cloned())
            .collect();
        let left = waited.saturating_sub(started.elapsed());
        let again = round(
            service,
            &endpoints,
            &vec![Method::Parallel; endpoints.len()],
            &paths,
            left,
            started,
        )
        .await?;
        for (index, answer) in retry.into_iter().zip(again) {
            if let Some(slot) = answers.get_mut(index) {
                *slot = answer;
            }
        }
    }

    let mut response = FleetReadResponse {
        results: Vec::with_capacity(count),
        succeeded: 0,
        pending: 0,
        failed: 0,
    };
    for (endpoint, answer) in body.endpoints.into_iter().zip(answers) {
        let result = match answer {
            Ok(Reply::Done(read)) => {
                response.succeeded += 1;
                FleetReadResult {
                    endpoint,
                    status: 200,
                    read: Some(read),
                    pending: None,
                    error: None,
                }
            }
            Ok(Reply::Pending(pending)) => {
                response.pending += 1;
                FleetReadResult {
                    endpoint,
                    status: 202,
                    read: None,
                    pending: Some(pending),
                    error: None,
                }
            }
            Err(error) => {
                response.failed += 1;
                let status = error.status().as_u16();
                let body = error.to_body().unwrap_or_else(|| DeviceErrorBody {
                    error: "internal".to_owned(),
                    message: "internal error".to_owned(),
                    coap_code: None,
                    operation: None,
                });
                FleetReadResult {
                    endpoint,
                    status,
                    read: None,
                    pending: None,
                    error: Some(body),
                }
            }
        };
        response.results.push(result);
    }
    // About 220 bytes per device and path read.
    let capacity = 64 + response.results.len() * (120 + 100 * paths.len());
    Ok(SizedJson {
        value: response,
        capacity,
    })
}

/// Whether a Read-Composite failed the way that makes the single read fall back to parallel
/// Reads.
fn refused_composite(answer: &Result<Reply<ReadResponse>, OpRouteError>) -> bool {
    matches!(
        answer,
        Err(OpRouteError::Service(
            ServiceError::Invalid(OpError::NotSupported { .. }) | ServiceError::DeviceError { .. }
        ))
    )
}

/// Sends every device's request(s) in one `request_many` and turns each device's results into
/// its answer.
async fn round(
    service: &crate::lwm2m::Lwm2mService,
    endpoints: &[String],
    methods: &[Method],
    paths: &[Path],
    waited: std::time::Duration,
    started: Instant,
) -> Result<Vec<Result<Reply<ReadResponse>, OpRouteError>>, OpRouteError> {
    let mut requests = Vec::with_capacity(endpoints.len() * paths.len());
    for (endpoint, method) in endpoints.iter().zip(methods) {
        match method {
            Method::Composite => {
                requests.push((endpoint.clone(), Operation::ReadComposite(paths.to_vec())));
            }
            Method::Read | Method::Parallel => {
                for path in paths {
                    requests.push((endpoint.clone(), Operation::Read(*path)));
                }
            }
        }
    }
    let mut results = service.request_many(requests, waited).await?.into_iter();
    let took = started.elapsed();
    let received = super::unix_seconds_now();
    // Each request counts in the metrics as a single one would; they are tallied by label
    // first, so a round of 1,000 devices takes the metrics' label lookup once or twice, not
    // 1,000 times.
    let mut tally: Vec<(&'static str, &'static str, u64)> = Vec::new();
    let mut outcome = |endpoint: &str, name: &'static str, result: Option<Result<OpResult, _>>| {
        let result = result.unwrap_or(Err(ServiceError::Unavailable));
        let (label, done) = settle(endpoint, name, result, waited);
        match tally.iter_mut().find(|(n, l, _)| *n == name && *l == label) {
            Some((_, _, count)) => *count += 1,
            None => tally.push((name, label, 1)),
        }
        done
    };
    let mut answers = Vec::with_capacity(endpoints.len());
    for (endpoint, method) in endpoints.iter().zip(methods) {
        let answer = match method {
            Method::Read => {
                single_answer_at("read", outcome(endpoint, "Read", results.next()), received)
            }
            Method::Composite => single_answer_at(
                "read-composite",
                outcome(endpoint, "Read-Composite", results.next()),
                received,
            ),
            Method::Parallel => {
                let each: Vec<Result<Done, OpRouteError>> = paths
                    .iter()
                    .map(|_| outcome(endpoint, "Read", results.next()))
                    .collect();
                parallel_answer(paths, each, received)
            }
        };
        answers.push(answer);
    }
    let metrics = crate::metrics::global();
    for (name, label, count) in tally {
        metrics.record_requests(name, label, took, count);
    }
    Ok(answers)
}
