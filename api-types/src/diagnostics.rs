//! Remote diagnostics: one run per device (`POST /devices/{endpoint}/diagnose`), its history,
//! and fleet sweeps. The findings themselves are `ferrite-diagnostics` types, re-exported so the
//! console renders exactly what the rules produced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use ferrite_diagnostics::{
    Change, Diagnosis, Evidence, Finding, Reading, RuleId, Severity, Snapshot, Verdict,
};

/// `POST /api/v1/devices/{endpoint}/diagnose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnoseRequest {
    /// How long to wait for the device, in milliseconds (default 10,000, at most 60,000). A
    /// sleeping queue-mode device answers when it next wakes: the run stays `pending` and
    /// completes then (poll `GET /api/v1/diagnostics/runs/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for the device (asleep in queue mode, or slow).
    Pending,
    /// Diagnosed (possibly from a partial answer: see `diagnosis.unanswered`).
    Completed,
    /// Could not be diagnosed at all (see `error`).
    Failed,
}

/// One diagnosis run of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisRun {
    pub id: String,
    pub endpoint: String,
    pub status: RunStatus,
    /// RFC 3339.
    pub requested_at: String,
    /// Who asked: `user:alice`, `token:…`, `system:sweep`.
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The sweep this run belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// What the device answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// What changed since the device's previous completed run (empty for the first).
    #[serde(default)]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One point of the charts on the device page (one per completed run, oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisPoint {
    /// RFC 3339.
    pub at: String,
    /// 4/0/2 Radio Signal Strength, dBm.
    pub rssi_dbm: Option<i64>,
    /// 3/0/9 Battery Level, %.
    pub battery_percent: Option<i64>,
    /// 3/0/10 Memory Free, KB.
    pub free_memory_kb: Option<i64>,
    pub verdict: Option<Verdict>,
}

/// `GET /api/v1/devices/{endpoint}/diagnostics`: newest runs first, and the chart series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisHistory {
    pub endpoint: String,
    pub runs: Vec<DiagnosisRun>,
    pub series: Vec<DiagnosisPoint>,
}

/// Which devices a sweep diagnoses: the device list's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// `key:value` tags, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// `POST /api/v1/diagnostics/sweeps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepRequest {
    #[serde(default)]
    pub filter: SweepFilter,
    /// Devices started per second (default 5, at most 200): a sweep must not flood the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Stop after this many devices (default: all that match, at most 100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    Running,
    Completed,
    /// The server stopped while it ran; results so far are kept.
    Interrupted,
}

/// A fleet sweep with its counts so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sweep {
    pub id: String,
    pub status: SweepStatus,
    pub filter: SweepFilter,
    pub rate_per_sec: f64,
    /// RFC 3339.
    pub created_at: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Devices it expects: its filter's matches when it started, capped by its limit (absent
    /// for sweeps from older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    /// Devices diagnosed or being diagnosed so far.
    pub devices: u64,
    pub completed: u64,
    pub pending: u64,
    pub failed: u64,
    /// Completed runs by verdict (`healthy`, `monitor`, `remote_action`, `site_visit`).
    pub by_verdict: BTreeMap<String, u64>,
    /// Completed runs with a finding of at least minor severity, by rule (`weak_signal`, …).
    pub by_rule: BTreeMap<String, u64>,
}

/// One device's line in a sweep's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepResult {
    pub endpoint: String,
    pub run_id: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Rules with a finding of at least minor severity.
    pub rules: Vec<String>,
    /// The diagnosis summary sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `GET /api/v1/diagnostics/sweeps/{id}/results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepResults {
    pub items: Vec<SweepResult>,
    /// Pass as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A rule as listed by `GET /api/v1/diagnostics/rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleInfo {
    pub id: RuleId,
    pub describes: String,
}

/// The rules and the thresholds in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulesInfo {
    pub rules: Vec<RuleInfo>,
    /// The `[diagnostics]` table of the configuration, every key with its value.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub thresholds: serde_json::Value,
}
