//! Persistence of remote diagnostics (migrations 0006, 0007): diagnosis runs (the snapshot a
//! device answered and the diagnosis the rules made of it, as JSON), fleet sweeps (resumed after
//! a restart unless cancelled) and samples (light /3/0 reads between diagnoses). One SQL text
//! serves both engines.

use chrono::{DateTime, SubsecRound, Utc};

use super::{Backend, Store, StoreError};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Pending,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<RunStatus, StoreError> {
        Ok(match text {
            "pending" => RunStatus::Pending,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("unknown run status {other:?}"))),
        })
    }
}

/// A diagnosis run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: String,
    pub endpoint: String,
    pub sweep_id: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub requested_by: String,
    pub status: RunStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub verdict: Option<String>,
    /// Rules with a finding of at least minor severity.
    pub rules: Vec<String>,
    /// JSON of `ferrite_diagnostics::Snapshot`.
    pub snapshot: Option<String>,
    /// JSON of `ferrite_diagnostics::Diagnosis`.
    pub diagnosis: Option<String>,
    pub error: Option<String>,
}

/// The outcome written when a run finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub completed_at: DateTime<Utc>,
    pub verdict: Option<String>,
    pub rules: Vec<String>,
    pub snapshot: Option<String>,
    pub diagnosis: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStatus {
    Running,
    Completed,
    Interrupted,
}

impl SweepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Running => "running",
            SweepStatus::Completed => "completed",
            SweepStatus::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Result<SweepStatus, StoreError> {
        Ok(match text {
            "running" => SweepStatus::Running,
            "completed" => SweepStatus::Completed,
            "interrupted" => SweepStatus::Interrupted,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown sweep status {other:?}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredSweep {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// JSON of `api_types::diagnostics::SweepFilter`.
    pub filter: String,
    pub rate_per_sec: f64,
    pub status: SweepStatus,
    pub finished_at: Option<DateTime<Utc>>,
    /// Most devices it may diagnose (`None`: the server's maximum).
    pub device_limit: Option<u32>,
    /// Who cancelled it (then `status` is `Interrupted`).
    pub cancelled_by: Option<String>,
    /// How many devices it expects: its filter's matches when it started, capped by its limit
    /// (`None` for sweeps from before migration 0009).
    pub planned_devices: Option<u32>,
}

/// Counts of a sweep's runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub devices: u64,
    pub completed: u64,
    pub pending: u64,
    pub failed: u64,
    pub by_verdict: std::collections::BTreeMap<String, u64>,
    pub by_rule: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, sqlx::FromRow)]
struct RunRow {
    id: String,
    endpoint: String,
    sweep_id: Option<String>,
    requested_at: DateTime<Utc>,
    requested_by: String,
    status: String,
    completed_at: Option<DateTime<Utc>>,
    verdict: Option<String>,
    rules: String,
    snapshot: Option<String>,
    diagnosis: Option<String>,
    error: Option<String>,
}

impl TryFrom<RunRow> for StoredRun {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<StoredRun, StoreError> {
        Ok(StoredRun {
            status: RunStatus::parse(&row.status)?,
            rules: split_rules(&row.rules),
            id: row.id,
            endpoint: row.endpoint,
            sweep_id: row.sweep_id,
            requested_at: row.requested_at,
            requested_by: row.requested_by,
            completed_at: row.completed_at,
            verdict: row.verdict,
            snapshot: row.snapshot,
            diagnosis: row.diagnosis,
            error: row.error,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct SweepRow {
    id: String,
    created_at: DateTime<Utc>,
    created_by: String,
    filter: String,
    rate_per_sec: f64,
    status: String,
    finished_at: Option<DateTime<Utc>>,
    device_limit: Option<i64>,
    cancelled_by: Option<String>,
    planned_devices: Option<i64>,
}

impl TryFrom<SweepRow> for StoredSweep {
    type Error = StoreError;
    fn try_from(row: SweepRow) -> Result<StoredSweep, StoreError> {
        Ok(StoredSweep {
            status: SweepStatus::parse(&row.status)?,
            id: row.id,
            created_at: row.created_at,
            created_by: row.created_by,
            filter: row.filter,
            rate_per_sec: row.rate_per_sec,
            finished_at: row.finished_at,
            device_limit: row.device_limit.and_then(|n| u32::try_from(n).ok()),
            cancelled_by: row.cancelled_by,
            planned_devices: row.planned_devices.and_then(|n| u32::try_from(n).ok()),
        })
    }
}

/// Counting rows of a sweep: status, verdict and rules of each run.
#[derive(Debug, sqlx::FromRow)]
struct CountRow {
    status: String,
    verdict: Option<String>,
    rules: String,
}

fn split_rules(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

const RUN_COLUMNS: &str = "id, endpoint, sweep_id, requested_at, requested_by, status, \
    completed_at, verdict, rules, snapshot, diagnosis, error";

const INSERT_RUN: &str = "INSERT INTO diagnostic_runs (id, endpoint, sweep_id, requested_at, \
    requested_by, status) VALUES ($1, $2, $3, $4, $5, 'pending')";

const FINISH_RUN: &str = "UPDATE diagnostic_runs SET status = $1, completed_at = $2, \
    verdict = $3, rules = $4, snapshot = $5, diagnosis = $6, error = $7 \
    WHERE id = $8 AND status = 'pending'";

const SELECT_RUN: &str = "SELECT id, endpoint, sweep_id, requested_at, requested_by, status, \
    completed_at, verdict, rules, snapshot, diagnosis, error FROM diagnostic_runs WHERE id = $1";

const SELECT_RUNS_OF: &str = "SELECT id, endpoint, sweep_id, requested_at, requested_by, status, \
    completed_at, verdict, rules, snapshot, diagnosis, error FROM diagnostic_runs \
    WHERE endpoint = $1 ORDER BY requested_at DESC, id DESC LIMIT $2";

const SELECT_SWEEP_RUNS: &str = "SELECT id, endpoint, sweep_id, requested_at, requested_by, \
    status, completed_at, verdict, rules, snapshot, diagnosis, error FROM diagnostic_runs \
    WHERE sweep_id = $1 AND endpoint > $2 ORDER BY endpoint LIMIT $3";

const COUNT_SWEEP: &str = "SELECT status, verdict, rules FROM diagnostic_runs WHERE sweep_id = $1";

/// Runs left pending by a stop, except those of sweeps that will be resumed (they are diagnosed
/// again into the same row).
const FAIL_ORPHANED_RUNS: &str = "UPDATE diagnostic_runs SET status = 'failed', \
    completed_at = $1, error = 'the server restarted before the device answered' \
    WHERE status = 'pending' AND (sweep_id IS NULL OR sweep_id NOT IN \
    (SELECT id FROM diagnostic_sweeps WHERE status = 'running'))";

/// Every run of a sweep, for resuming it: which devices it has reached and which are pending.
const SELECT_SWEEP_PROGRESS: &str = "SELECT id, endpoint, sweep_id, requested_at, requested_by, \
    status, completed_at, verdict, rules, CAST(NULL AS TEXT) AS snapshot, CAST(NULL AS TEXT) AS diagnosis, error \
    FROM diagnostic_runs WHERE sweep_id = $1 ORDER BY endpoint";

const INSERT_SWEEP: &str = "INSERT INTO diagnostic_sweeps (id, created_at, created_by, filter, \
    rate_per_sec, status, device_limit, planned_devices) \
    VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)";

const CANCEL_SWEEP: &str = "UPDATE diagnostic_sweeps SET status = 'interrupted', \
    finished_at = $1, cancelled_by = $2 WHERE id = $3 AND status = 'running'";

const FINISH_SWEEP: &str = "UPDATE diagnostic_sweeps SET status = $1, finished_at = $2 \
    WHERE id = $3 AND status = 'running'";

const SWEEP_COLUMNS: &str = "id, created_at, created_by, filter, rate_per_sec, status, \
    finished_at, device_limit, cancelled_by, planned_devices";

const SELECT_SWEEP: &str = "SELECT id, created_at, created_by, filter, rate_per_sec, status, \
    finished_at, device_limit, cancelled_by, planned_devices FROM diagnostic_sweeps WHERE id = $1";

const SELECT_SWEEPS: &str = "SELECT id, created_at, created_by, filter, rate_per_sec, status, \
    finished_at, device_limit, cancelled_by, planned_devices FROM diagnostic_sweeps \
    ORDER BY created_at DESC, id DESC LIMIT $1";

const SELECT_RUNNING_SWEEPS: &str = "SELECT id, created_at, created_by, filter, rate_per_sec, \
    status, finished_at, device_limit, cancelled_by, planned_devices FROM diagnostic_sweeps \
    WHERE status = 'running' ORDER BY created_at, id";

const INSERT_SAMPLE: &str = "INSERT INTO diagnostic_samples (endpoint, taken_at, reason, snapshot) \
    VALUES ($1, $2, $3, $4)";

const PRUNE_SAMPLES: &str = "DELETE FROM diagnostic_samples WHERE endpoint = $1 AND taken_at < $2";

const SELECT_SAMPLES: &str = "SELECT snapshot FROM diagnostic_samples WHERE endpoint = $1 \
    ORDER BY taken_at DESC, id DESC LIMIT $2";

/// Samples older than this are deleted when the device gets a new one.
pub const SAMPLE_RETENTION_DAYS: i64 = 30;

// The column lists are spelled out in each statement so every text is a `&'static str`.
const _: (&str, &str) = (RUN_COLUMNS, SWEEP_COLUMNS);

impl Store {
    /// Records a new pending run.
    pub async fn insert_diagnostic_run(
        &self,
        id: &str,
        endpoint: &str,
        sweep_id: Option<&str>,
        requested_at: DateTime<Utc>,
        requested_by: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(INSERT_RUN)
            .bind(id)
            .bind(endpoint)
            .bind(sweep_id)
            .bind(micros(requested_at))
            .bind(requested_by)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Finishes a pending run; `false` when it was not pending (finished already).
    pub async fn finish_diagnostic_run(
        &self,
        id: &str,
        outcome: &RunOutcome,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(FINISH_RUN)
            .bind(outcome.status.as_str())
            .bind(micros(outcome.completed_at))
            .bind(&outcome.verdict)
            .bind(outcome.rules.join(","))
            .bind(&outcome.snapshot)
            .bind(&outcome.diagnosis)
            .bind(&outcome.error)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    pub async fn diagnostic_run(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(SELECT_RUN)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(StoredRun::try_from).transpose()
    }

    /// The newest `limit` runs of `endpoint`, newest first.
    pub async fn diagnostic_runs(
        &self,
        endpoint: &str,
        limit: u32,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(SELECT_RUNS_OF)
            .bind(endpoint)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredRun::try_from).collect()
    }

    /// A page of a sweep's runs in endpoint order, after `after`.
    pub async fn sweep_runs(
        &self,
        sweep_id: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(SELECT_SWEEP_RUNS)
            .bind(sweep_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredRun::try_from).collect()
    }

    /// Counts of a sweep's runs by status, verdict and rule.
    pub async fn sweep_counts(&self, sweep_id: &str) -> Result<SweepCounts, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, CountRow>(COUNT_SWEEP)
            .bind(sweep_id)
            .fetch_all(pool)
            .await)?;
        let mut counts = SweepCounts::default();
        for row in rows {
            counts.devices += 1;
            match RunStatus::parse(&row.status)? {
                RunStatus::Pending => counts.pending += 1,
                RunStatus::Failed => counts.failed += 1,
                RunStatus::Completed => {
                    counts.completed += 1;
                    if let Some(verdict) = row.verdict {
                        *counts.by_verdict.entry(verdict).or_default() += 1;
                    }
                    for rule in split_rules(&row.rules) {
                        *counts.by_rule.entry(rule).or_default() += 1;
                    }
                }
            }
        }
        Ok(counts)
    }

    pub async fn insert_sweep(&self, sweep: &StoredSweep) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(INSERT_SWEEP)
            .bind(&sweep.id)
            .bind(micros(sweep.created_at))
            .bind(&sweep.created_by)
            .bind(&sweep.filter)
            .bind(sweep.rate_per_sec)
            .bind(sweep.device_limit.map(i64::from))
            .bind(sweep.planned_devices.map(i64::from))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn finish_sweep(
        &self,
        id: &str,
        status: SweepStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(FINISH_SWEEP)
            .bind(status.as_str())
            .bind(micros(at))
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn sweep(&self, id: &str) -> Result<Option<StoredSweep>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, SweepRow>(SELECT_SWEEP)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(StoredSweep::try_from).transpose()
    }

    /// The newest `limit` sweeps, newest first.
    pub async fn sweeps(&self, limit: u32) -> Result<Vec<StoredSweep>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, SweepRow>(SELECT_SWEEPS)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredSweep::try_from).collect()
    }

    /// At start: runs that were pending when the server stopped cannot finish (their tasks are
    /// gone), except those of sweeps still running, which are resumed. Marks the others failed;
    /// returns how many.
    pub async fn fail_orphaned_runs(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let runs = on_pool!(self, pool => sqlx::query(FAIL_ORPHANED_RUNS)
            .bind(micros(at))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(runs)
    }

    /// Sweeps still marked running (after a restart: those to resume), oldest first.
    pub async fn running_sweeps(&self) -> Result<Vec<StoredSweep>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, SweepRow>(SELECT_RUNNING_SWEEPS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredSweep::try_from).collect()
    }

    /// Every run of a sweep in endpoint order, without snapshot and diagnosis (resume).
    pub async fn sweep_progress(&self, sweep_id: &str) -> Result<Vec<StoredRun>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(SELECT_SWEEP_PROGRESS)
            .bind(sweep_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(StoredRun::try_from).collect()
    }

    /// Cancels a running sweep: it stops starting devices and is not resumed after a restart.
    /// `false` when it was not running.
    pub async fn cancel_sweep(
        &self,
        id: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query(CANCEL_SWEEP)
            .bind(micros(at))
            .bind(by)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    /// Stores a sample (JSON of a `Snapshot`) of `endpoint`, deleting its samples older than
    /// [`SAMPLE_RETENTION_DAYS`].
    pub async fn insert_diagnostic_sample(
        &self,
        endpoint: &str,
        taken_at: DateTime<Utc>,
        reason: &str,
        snapshot: &str,
    ) -> Result<(), StoreError> {
        let cutoff = taken_at - chrono::Duration::days(SAMPLE_RETENTION_DAYS);
        on_pool!(self, pool => sqlx::query(PRUNE_SAMPLES)
            .bind(endpoint)
            .bind(micros(cutoff))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        on_pool!(self, pool => sqlx::query(INSERT_SAMPLE)
            .bind(endpoint)
            .bind(micros(taken_at))
            .bind(reason)
            .bind(snapshot)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// The newest `limit` samples of `endpoint` (JSON of `Snapshot`), newest first.
    pub async fn diagnostic_samples(
        &self,
        endpoint: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(SELECT_SAMPLES)
            .bind(endpoint)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::fleet::registry::{NewDevice, SecurityMode, Tags};

    async fn device(store: &Store, endpoint: &str) {
        store
            .create_device(
                NewDevice {
                    endpoint: endpoint.to_owned(),
                    serial: format!("SN-{endpoint}"),
                    model: "M1".to_owned(),
                    tags: Tags::default(),
                    customer: None,
                    security_mode: SecurityMode::NoSec,
                    psk_identity: None,
                    psk_key: None,
                },
                &crate::fleet::lifecycle::Actor::user("alice").unwrap(),
            )
            .await
            .unwrap();
    }

    async fn runs_and_sweeps(store: Store) {
        device(&store, "m-1").await;
        device(&store, "m-2").await;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let sweep = StoredSweep {
            id: "sw1".into(),
            created_at: t0,
            created_by: "user:alice".into(),
            filter: "{}".into(),
            rate_per_sec: 5.0,
            status: SweepStatus::Running,
            finished_at: None,
            device_limit: None,
            cancelled_by: None,
            planned_devices: Some(2),
        };
        store.insert_sweep(&sweep).await.unwrap();
        store
            .insert_diagnostic_run("r1", "m-1", Some("sw1"), t0, "system:sweep")
            .await
            .unwrap();
        store
            .insert_diagnostic_run("r2", "m-2", Some("sw1"), t0, "system:sweep")
            .await
            .unwrap();
        store
            .insert_diagnostic_run("r3", "m-1", None, t0 + Duration::hours(1), "user:bob")
            .await
            .unwrap();
        let done = RunOutcome {
            status: RunStatus::Completed,
            completed_at: t0 + Duration::seconds(3),
            verdict: Some("site_visit".into()),
            rules: vec!["weak_signal".into(), "low_battery".into()],
            snapshot: Some("{\"taken_at\":1}".into()),
            diagnosis: Some("{}".into()),
            error: None,
        };
        assert!(store.finish_diagnostic_run("r1", &done).await.unwrap());
        assert!(
            !store.finish_diagnostic_run("r1", &done).await.unwrap(),
            "only once"
        );

        let r1 = store.diagnostic_run("r1").await.unwrap().unwrap();
        assert_eq!(r1.status, RunStatus::Completed);
        assert_eq!(r1.rules, ["weak_signal", "low_battery"]);
        assert_eq!(r1.completed_at, Some(t0 + Duration::seconds(3)));

        let of_m1 = store.diagnostic_runs("m-1", 10).await.unwrap();
        assert_eq!(
            of_m1.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r3", "r1"]
        );

        let counts = store.sweep_counts("sw1").await.unwrap();
        assert_eq!(
            (counts.devices, counts.completed, counts.pending),
            (2, 1, 1)
        );
        assert_eq!(counts.by_rule.get("weak_signal"), Some(&1));
        assert_eq!(counts.by_verdict.get("site_visit"), Some(&1));

        let page = store.sweep_runs("sw1", "", 1).await.unwrap();
        assert_eq!(page[0].endpoint, "m-1");
        let next = store.sweep_runs("sw1", "m-1", 1).await.unwrap();
        assert_eq!(next[0].endpoint, "m-2");

        // A restart fails the one-off pending run but keeps the running sweep's (resumed).
        let sweep2 = StoredSweep {
            id: "sw2".into(),
            created_at: t0 + Duration::minutes(1),
            device_limit: Some(7),
            ..sweep.clone()
        };
        store.insert_sweep(&sweep2).await.unwrap();
        let failed = store
            .fail_orphaned_runs(t0 + Duration::hours(2))
            .await
            .unwrap();
        assert_eq!(failed, 1);
        assert_eq!(
            store.diagnostic_run("r3").await.unwrap().unwrap().status,
            RunStatus::Failed
        );
        assert_eq!(
            store.diagnostic_run("r2").await.unwrap().unwrap().status,
            RunStatus::Pending
        );
        let running = store.running_sweeps().await.unwrap();
        assert_eq!(
            running.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["sw1", "sw2"]
        );
        assert_eq!(running[1].device_limit, Some(7));
        let progress = store.sweep_progress("sw1").await.unwrap();
        assert_eq!(
            progress
                .iter()
                .map(|r| (r.endpoint.as_str(), r.status))
                .collect::<Vec<_>>(),
            [("m-1", RunStatus::Completed), ("m-2", RunStatus::Pending)]
        );

        // A cancelled sweep is not resumed, and its pending run fails at the next start.
        assert!(
            store
                .cancel_sweep("sw1", "user:carol", t0 + Duration::hours(3))
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_sweep("sw1", "user:carol", t0 + Duration::hours(3))
                .await
                .unwrap(),
            "only a running sweep"
        );
        let s = store.sweep("sw1").await.unwrap().unwrap();
        assert_eq!(s.status, SweepStatus::Interrupted);
        assert_eq!(s.cancelled_by.as_deref(), Some("user:carol"));
        assert_eq!(s.finished_at, Some(t0 + Duration::hours(3)));
        // Finishing it later (its task ending) does not overwrite the cancellation.
        store
            .finish_sweep("sw1", SweepStatus::Completed, t0 + Duration::hours(4))
            .await
            .unwrap();
        assert_eq!(
            store.sweep("sw1").await.unwrap().unwrap().status,
            SweepStatus::Interrupted
        );
        assert_eq!(
            store
                .running_sweeps()
                .await
                .unwrap()
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["sw2"]
        );
        assert_eq!(
            store
                .fail_orphaned_runs(t0 + Duration::hours(5))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store.diagnostic_run("r2").await.unwrap().unwrap().status,
            RunStatus::Failed
        );
        assert_eq!(store.sweeps(5).await.unwrap().len(), 2);

        // Samples: newest first, and those past the retention go when a new one arrives.
        for (n, at) in [
            t0 - Duration::days(SAMPLE_RETENTION_DAYS + 1),
            t0,
            t0 + Duration::hours(1),
        ]
        .into_iter()
        .enumerate()
        {
            store
                .insert_diagnostic_sample("m-1", at, "boot", &format!("{{\"n\":{n}}}"))
                .await
                .unwrap();
        }
        assert_eq!(
            store.diagnostic_samples("m-1", 10).await.unwrap(),
            ["{\"n\":2}", "{\"n\":1}"]
        );
        assert_eq!(store.diagnostic_samples("m-1", 1).await.unwrap().len(), 1);
        assert!(
            store
                .diagnostic_samples("m-2", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    crate::store::tests::dual_backend_tests!(runs_and_sweeps);
}
