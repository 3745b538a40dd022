//! Remote diagnostics over HTTP: diagnose one device, its history (with the chart series), one
//! run (to poll a pending one), fleet sweeps and their results, and the rules in force.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, SecondsFormat, Utc};
use ferrite_diagnostics::{Diagnosis, Snapshot, changes};
use utoipa_axum::routes;

use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState, Routes};
use crate::accounts::{Principal, Role};
use crate::diagnostics::{DiagnoseError, Diagnostics, SweepError, SweepPlan, sweep};
use crate::store::diagnostics::{RunStatus, StoredRun, StoredSweep, SweepStatus};

/// Default and longest wait for a device answering a diagnosis.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Runs listed in a device's history by default, and at most.
const DEFAULT_HISTORY: u32 = 20;
const MAX_HISTORY: u32 = 200;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(diagnose_device))
            .routes(routes!(device_history))
            .routes(routes!(run))
            .routes(routes!(rules))
            .routes(routes!(sweep_detail))
            .routes(routes!(sweep_results)),
        Routes::role(Role::FieldService).routes(routes!(list_sweeps)),
        Routes::role(Role::FleetManager)
            .routes(routes!(start_sweep))
            .routes(routes!(cancel_sweep)),
    ]
}

fn service(state: &AppState) -> Diagnostics {
    Diagnostics::new(
        state.store.clone(),
        state.lwm2m.clone(),
        state.config.diagnostics.clone(),
        Duration::from_secs(state.config.queued_request_expiry_secs),
    )
}

impl From<DiagnoseError> for ApiError {
    fn from(error: DiagnoseError) -> ApiError {
        match error {
            DiagnoseError::UnknownDevice(endpoint) => {
                ApiError::NotFound(format!("no device with endpoint {endpoint:?}"))
            }
            DiagnoseError::Stopped => ApiError::Conflict {
                code: "stopping",
                message: "the server is stopping".into(),
            },
            DiagnoseError::Store(error) => error.into(),
        }
    }
}

impl From<SweepError> for ApiError {
    fn from(error: SweepError) -> ApiError {
        match error {
            SweepError::Store(error) => error.into(),
            SweepError::UnknownSweep(id) => ApiError::NotFound(format!("no sweep {id:?}")),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn actor(principal: &Principal) -> String {
    principal
        .actor()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("user:{}", principal.name))
}

fn run_view(run: StoredRun, previous: Option<&Snapshot>) -> api_types::diagnostics::DiagnosisRun {
    let snapshot: Option<Snapshot> = run
        .snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let diagnosis: Option<Diagnosis> = run
        .diagnosis
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok());
    let changes = match (previous, &snapshot) {
        (Some(before), Some(after)) if !after.values.is_empty() => changes(before, after),
        _ => Vec::new(),
    };
    api_types::diagnostics::DiagnosisRun {
        id: run.id,
        endpoint: run.endpoint,
        status: match run.status {
            RunStatus::Pending => api_types::diagnostics::RunStatus::Pending,
            RunStatus::Completed => api_types::diagnostics::RunStatus::Completed,
            RunStatus::Failed => api_types::diagnostics::RunStatus::Failed,
        },
        requested_at: rfc3339(run.requested_at),
        requested_by: run.requested_by,
        completed_at: run.completed_at.map(rfc3339),
        sweep_id: run.sweep_id,
        diagnosis,
        snapshot,
        changes,
        error: run.error,
    }
}

/// The snapshot of the newest completed run with values, among `runs` (newest first) after `index`.
fn previous_snapshot(runs: &[StoredRun], index: usize) -> Option<Snapshot> {
    runs.iter()
        .skip(index + 1)
        .filter(|r| r.status == RunStatus::Completed)
        .filter_map(|r| serde_json::from_str::<Snapshot>(r.snapshot.as_deref()?).ok())
        .find(|s| !s.values.is_empty())
}

/// Diagnose a device: reads objects 3/4/5/6/7 (one Read-Composite on LwM2M 1.1+, parallel reads
/// otherwise), runs the rules, stores the run. A sleeping queue-mode device answers when it
/// wakes: the answer is then `pending` (poll `GET /diagnostics/runs/{id}`). Devices that answer
/// only part keep what they answered (`diagnosis.unanswered` says what failed); an unregistered
/// device is diagnosed from its history alone (e.g. a missed check-in).
#[utoipa::path(post, path = "/devices/{endpoint}/diagnose", tag = "diagnostics",
    params(("endpoint" = String, Path)),
    request_body(content = api_types::diagnostics::DiagnoseRequest, content_type = "application/json"),
    responses((status = 200, body = api_types::diagnostics::DiagnosisRun),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody)))]
async fn diagnose_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<api_types::diagnostics::DiagnosisRun>, ApiError> {
    // The body is optional: an empty one means the defaults.
    let request: api_types::diagnostics::DiagnoseRequest =
        if body.iter().all(u8::is_ascii_whitespace) {
            Default::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
        };
    let wait = request
        .wait_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_WAIT);
    if wait > MAX_WAIT {
        return Err(ApiError::BadRequest(format!(
            "wait_ms is at most {}",
            MAX_WAIT.as_millis()
        )));
    }
    let diagnostics = service(&state);
    let run = diagnostics
        .diagnose(&endpoint, &actor(&principal), None, wait)
        .await?;
    let runs = state
        .store
        .diagnostic_runs(&endpoint, DEFAULT_HISTORY)
        .await?;
    let index = runs.iter().position(|r| r.id == run.id).unwrap_or(0);
    let previous = previous_snapshot(&runs, index);
    Ok(Json(run_view(run, previous.as_ref())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Runs to list, newest first (default 20, at most 200).
    limit: Option<u32>,
}

/// A device's diagnosis runs, newest first, each with what changed since the one before; and the
/// RSSI / battery / free-memory series over the completed runs (oldest first) for charts.
#[utoipa::path(get, path = "/devices/{endpoint}/diagnostics", tag = "diagnostics",
    params(("endpoint" = String, Path), HistoryQuery),
    responses((status = 200, body = api_types::diagnostics::DiagnosisHistory),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody)))]
async fn device_history(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Json<api_types::diagnostics::DiagnosisHistory>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::BadRequest(format!(
            "limit is between 1 and {MAX_HISTORY}"
        )));
    }
    if state.store.get_device(&endpoint).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "no device with endpoint {endpoint:?}"
        )));
    }
    let runs = state.store.diagnostic_runs(&endpoint, limit).await?;
    let mut series: Vec<api_types::diagnostics::DiagnosisPoint> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .filter_map(|r| {
            let s: Snapshot = serde_json::from_str(r.snapshot.as_deref()?).ok()?;
            let d: Option<Diagnosis> = r
                .diagnosis
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok());
            (!s.values.is_empty()).then(|| api_types::diagnostics::DiagnosisPoint {
                at: rfc3339(r.completed_at.unwrap_or(r.requested_at)),
                rssi_dbm: s.int("/4/0/2"),
                battery_percent: s.int("/3/0/9"),
                free_memory_kb: s.int("/3/0/10"),
                verdict: d.map(|d| d.verdict),
            })
        })
        .collect();
    series.reverse();
    let views = runs
        .iter()
        .enumerate()
        .map(|(i, r)| run_view(r.clone(), previous_snapshot(&runs, i).as_ref()))
        .collect();
    Ok(Json(api_types::diagnostics::DiagnosisHistory {
        endpoint,
        runs: views,
        series,
    }))
}

/// One diagnosis run (poll a pending one until it completes).
#[utoipa::path(get, path = "/diagnostics/runs/{id}", tag = "diagnostics",
    params(("id" = String, Path)),
    responses((status = 200, body = api_types::diagnostics::DiagnosisRun),
              (status = 404, body = api_types::ErrorBody)))]
async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<api_types::diagnostics::DiagnosisRun>, ApiError> {
    let run = state
        .store
        .diagnostic_run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no diagnosis run {id:?}")))?;
    let runs = state
        .store
        .diagnostic_runs(&run.endpoint, MAX_HISTORY)
        .await?;
    let previous = runs
        .iter()
        .position(|r| r.id == run.id)
        .and_then(|i| previous_snapshot(&runs, i));
    Ok(Json(run_view(run, previous.as_ref())))
}

/// The rules and the thresholds in force (the `[diagnostics]` table of the configuration).
#[utoipa::path(get, path = "/diagnostics/rules", tag = "diagnostics",
    responses((status = 200, body = api_types::diagnostics::RulesInfo)))]
async fn rules(State(state): State<AppState>) -> Json<api_types::diagnostics::RulesInfo> {
    Json(api_types::diagnostics::RulesInfo {
        rules: ferrite_diagnostics::rules::ALL
            .iter()
            .map(|r| api_types::diagnostics::RuleInfo {
                id: r.id,
                describes: r.describes.to_owned(),
            })
            .collect(),
        thresholds: serde_json::to_value(&state.config.diagnostics)
            .unwrap_or(serde_json::Value::Null),
    })
}

async fn sweep_view(
    state: &AppState,
    sweep: StoredSweep,
) -> Result<api_types::diagnostics::Sweep, ApiError> {
    let counts = state.store.sweep_counts(&sweep.id).await?;
    Ok(api_types::diagnostics::Sweep {
        status: match sweep.status {
            SweepStatus::Running => api_types::diagnostics::SweepStatus::Running,
            SweepStatus::Completed => api_types::diagnostics::SweepStatus::Completed,
            SweepStatus::Interrupted => api_types::diagnostics::SweepStatus::Interrupted,
        },
        filter: serde_json::from_str(&sweep.filter).unwrap_or_default(),
        rate_per_sec: sweep.rate_per_sec,
        created_at: rfc3339(sweep.created_at),
        created_by: sweep.created_by,
        finished_at: sweep.finished_at.map(rfc3339),
        id: sweep.id,
        planned: sweep.planned_devices.map(u64::from),
        devices: counts.devices,
        completed: counts.completed,
        pending: counts.pending,
        failed: counts.failed,
        by_verdict: counts.by_verdict,
        by_rule: counts.by_rule,
    })
}

/// The device list's query parameters, from a sweep's filter.
fn filter_pairs(filter: &api_types::diagnostics::SweepFilter) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            pairs.push((k.to_owned(), v.clone()));
        }
    };
    add("state", &filter.state);
    add("connectivity", &filter.connectivity);
    add("model", &filter.model);
    add("firmware", &filter.firmware);
    add("customer", &filter.customer);
    add("q", &filter.q);
    pairs.extend(filter.tag.iter().map(|t| ("tag".to_owned(), t.clone())));
    pairs
}

/// Start a fleet sweep: diagnose every device matching the filter (the device list's filters), at
/// most `rate_per_sec` devices started per second (default 5) and 64 at once. Returns at once;
/// follow it with `GET /diagnostics/sweeps/{id}`.
#[utoipa::path(post, path = "/diagnostics/sweeps", tag = "diagnostics",
    request_body = api_types::diagnostics::SweepRequest,
    responses((status = 202, body = api_types::diagnostics::Sweep),
              (status = 400, body = api_types::ErrorBody)))]
async fn start_sweep(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<api_types::diagnostics::SweepRequest>,
) -> Result<(axum::http::StatusCode, Json<api_types::diagnostics::Sweep>), ApiError> {
    // The device list's own parser first (its messages), then the sweep's (resume uses it too).
    super::devices::device_query(filter_pairs(&request.filter))?;
    let plan = SweepPlan {
        filter: sweep::device_filter(&request.filter)?,
        filter_json: serde_json::to_string(&request.filter).map_err(|_| ApiError::Internal)?,
        rate_per_sec: request.rate_per_sec.unwrap_or(sweep::DEFAULT_RATE),
        limit: request.limit.unwrap_or(sweep::MAX_DEVICES),
    };
    let stored = service(&state)
        .start_sweep(plan, &actor(&principal))
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(sweep_view(&state, stored).await?),
    ))
}

/// Cancel a running sweep: no more devices are started (those being diagnosed finish) and it is
/// not resumed after a restart. It then shows as `interrupted`. Cancelling a sweep that is no
/// longer running changes nothing.
#[utoipa::path(post, path = "/diagnostics/sweeps/{id}/cancel", tag = "diagnostics",
    params(("id" = String, Path)),
    responses((status = 200, body = api_types::diagnostics::Sweep),
              (status = 404, body = api_types::ErrorBody)))]
async fn cancel_sweep(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<api_types::diagnostics::Sweep>, ApiError> {
    let stored = service(&state)
        .cancel_sweep(&id, &actor(&principal))
        .await?;
    Ok(Json(sweep_view(&state, stored).await?))
}

/// The newest sweeps (at most 50), with their counts.
#[utoipa::path(get, path = "/diagnostics/sweeps", tag = "diagnostics",
    responses((status = 200, body = Vec<api_types::diagnostics::Sweep>)))]
async fn list_sweeps(
    State(state): State<AppState>,
) -> Result<Json<Vec<api_types::diagnostics::Sweep>>, ApiError> {
    let mut out = Vec::new();
    for sweep in state.store.sweeps(50).await? {
        out.push(sweep_view(&state, sweep).await?);
    }
    Ok(Json(out))
}

/// A sweep with its counts so far: devices, completed/pending/failed, by verdict, by rule.
#[utoipa::path(get, path = "/diagnostics/sweeps/{id}", tag = "diagnostics",
    params(("id" = String, Path)),
    responses((status = 200, body = api_types::diagnostics::Sweep),
              (status = 404, body = api_types::ErrorBody)))]
async fn sweep_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<api_types::diagnostics::Sweep>, ApiError> {
    let sweep = state
        .store
        .sweep(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no sweep {id:?}")))?;
    Ok(Json(sweep_view(&state, sweep).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ResultsQuery {
    /// Only devices with a finding of this rule (`weak_signal`, …).
    rule: Option<String>,
    /// Only devices with this verdict (`healthy`, `monitor`, `remote_action`, `site_visit`).
    verdict: Option<String>,
    /// The `next_after` of the previous page.
    after: Option<String>,
    /// Page size, 1–1000 (default 100).
    limit: Option<u32>,
}

/// A sweep's per-device results in endpoint order, optionally only one rule or one verdict.
#[utoipa::path(get, path = "/diagnostics/sweeps/{id}/results", tag = "diagnostics",
    params(("id" = String, Path), ResultsQuery),
    responses((status = 200, body = api_types::diagnostics::SweepResults),
              (status = 400, body = api_types::ErrorBody),
              (status = 404, body = api_types::ErrorBody)))]
async fn sweep_results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<ResultsQuery>,
) -> Result<Json<api_types::diagnostics::SweepResults>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest("limit is between 1 and 1000".into()));
    }
    if state.store.sweep(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no sweep {id:?}")));
    }
    let mut items = Vec::new();
    let mut after = query.after.unwrap_or_default();
    let mut next_after = None;
    // Filters apply after paging through the store: scan forward until the page is full.
    'scan: loop {
        let page = state.store.sweep_runs(&id, &after, 1000).await?;
        let exhausted = page.len() < 1000;
        for run in page {
            after = run.endpoint.clone();
            let wanted = query.rule.as_ref().is_none_or(|r| run.rules.contains(r))
                && query
                    .verdict
                    .as_ref()
                    .is_none_or(|v| run.verdict.as_ref() == Some(v));
            if !wanted {
                continue;
            }
            if items.len() as u32 == limit {
                next_after = items
                    .last()
                    .map(|i: &api_types::diagnostics::SweepResult| i.endpoint.clone());
                break 'scan;
            }
            let summary = run
                .diagnosis
                .as_deref()
                .and_then(|d| serde_json::from_str::<Diagnosis>(d).ok());
            items.push(api_types::diagnostics::SweepResult {
                endpoint: run.endpoint,
                run_id: run.id,
                status: match run.status {
                    RunStatus::Pending => api_types::diagnostics::RunStatus::Pending,
                    RunStatus::Completed => api_types::diagnostics::RunStatus::Completed,
                    RunStatus::Failed => api_types::diagnostics::RunStatus::Failed,
                },
                verdict: summary.as_ref().map(|d| d.verdict),
                rules: run.rules,
                summary: summary.map(|d| d.summary),
            });
        }
        if exhausted {
            break;
        }
    }
    Ok(Json(api_types::diagnostics::SweepResults {
        items,
        next_after,
    }))
}
