//! Fleet sweeps: diagnose every device matching a filter, at a bounded rate (devices started per
//! second) and with a bounded number in flight, so a sweep of 100,000 meters does not flood the
//! network or the server. Results are the runs themselves (tagged with the sweep), so they can be
//! counted and queried while the sweep is still going.
//!
//! A sweep survives a restart: it stays `running` in the store when the server stops, and at the
//! next start [`Diagnostics::resume_sweeps`] carries on with it. The devices it had reached are
//! known from its runs (one per device): those finished are not diagnosed again, and those left
//! pending (their tasks died with the server) are diagnosed again into the same run, so every
//! device appears once and the counts stay right. A sweep a user cancelled is stored as
//! interrupted and is not resumed.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;

use super::{DiagnoseError, Diagnostics, run_id};
use crate::fleet::registry::{DeviceFilter, PageRequest};
use crate::store::StoreError;
use crate::store::diagnostics::{RunStatus, StoredSweep, SweepStatus};

/// Devices started per second unless asked otherwise.
pub const DEFAULT_RATE: f64 = 5.0;
/// Highest rate accepted.
pub const MAX_RATE: f64 = 200.0;
/// Most devices in one sweep.
pub const MAX_DEVICES: u32 = 100_000;
/// Devices being diagnosed at once (a sleeping device holds its slot only for `WAIT`).
const IN_FLIGHT: usize = 64;
/// How long a sweep waits for each device before leaving its run pending.
const WAIT: Duration = Duration::from_secs(30);
/// Devices listed per page while walking the filter.
const PAGE: u32 = 500;
/// How often a running sweep looks whether it was cancelled.
const CANCEL_CHECK: Duration = Duration::from_secs(1);

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    pub filter: DeviceFilter,
    /// The filter as given, JSON, stored with the sweep.
    pub filter_json: String,
    pub rate_per_sec: f64,
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("rate_per_sec must be between 0.1 and {MAX_RATE}")]
    Rate,
    #[error("limit must be between 1 and {MAX_DEVICES}")]
    Limit,
    #[error("invalid filter: {0}")]
    Filter(String),
    #[error("no sweep {0:?}")]
    UnknownSweep(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The fleet filter of a sweep (the device list's filters), as the store wants it.
pub fn device_filter(
    filter: &api_types::diagnostics::SweepFilter,
) -> Result<DeviceFilter, SweepError> {
    let text = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let bad = |what: &str, value: &str| SweepError::Filter(format!("{what}: {value:?}"));
    let mut out = DeviceFilter {
        model: text(&filter.model),
        firmware_version: text(&filter.firmware),
        customer: text(&filter.customer),
        search: text(&filter.q),
        ..DeviceFilter::default()
    };
    if let Some(state) = &filter.state {
        out.state = Some(state.parse().map_err(|_| bad("state", state))?);
    }
    if let Some(connectivity) = &filter.connectivity {
        out.connectivity = Some(
            connectivity
                .parse()
                .map_err(|_| bad("connectivity", connectivity))?,
        );
    }
    for tag in &filter.tag {
        let (k, v) = tag
            .split_once(':')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| bad("tag (key:value)", tag))?;
        out.tags.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Where a sweep starts from: nothing for a new one; for a resumed one, the devices it reached
/// and its runs left pending by the stop.
#[derive(Debug, Default)]
struct Progress {
    reached: HashSet<String>,
    /// (run ID, endpoint) to diagnose again into the same run.
    pending: Vec<(String, String)>,
}

/// How a sweep's task ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Every device was reached: this many in all (including before a restart).
    Finished(u32),
    /// A user cancelled it (already stored).
    Cancelled,
    /// The server is stopping: left running, to be resumed at the next start.
    Stopped,
}

impl Diagnostics {
    /// Starts a sweep in the background and returns it as stored.
    pub async fn start_sweep(
        &self,
        plan: SweepPlan,
        created_by: &str,
    ) -> Result<StoredSweep, SweepError> {
        if !(0.1..=MAX_RATE).contains(&plan.rate_per_sec) || !plan.rate_per_sec.is_finite() {
            return Err(SweepError::Rate);
        }
        if plan.limit == 0 || plan.limit > MAX_DEVICES {
            return Err(SweepError::Limit);
        }
        // What it expects, for its progress; devices added or removed while it runs change what
        // it reaches, not this.
        let matching = self.store.count_devices(&plan.filter).await?;
        let planned = u32::try_from(matching).unwrap_or(u32::MAX).min(plan.limit);
        let sweep = StoredSweep {
            id: run_id(),
            created_at: Utc::now(),
            created_by: created_by.to_owned(),
            filter: plan.filter_json.clone(),
            rate_per_sec: plan.rate_per_sec,
            status: SweepStatus::Running,
            finished_at: None,
            device_limit: Some(plan.limit),
            cancelled_by: None,
            planned_devices: Some(planned),
        };
        self.store.insert_sweep(&sweep).await?;
        self.spawn_sweep(sweep.id.clone(), plan, Progress::default());
        Ok(sweep)
    }

    /// Cancels a running sweep: no more devices are started (those in flight finish) and it is
    /// not resumed after a restart. Returns the sweep as stored; cancelling a sweep that is no
    /// longer running changes nothing.
    pub async fn cancel_sweep(&self, id: &str, by: &str) -> Result<StoredSweep, SweepError> {
        if self.store.cancel_sweep(id, by, Utc::now()).await? {
            tracing::info!(sweep = %id, by, "diagnostic sweep cancelled");
        }
        self.store
            .sweep(id)
            .await?
            .ok_or_else(|| SweepError::UnknownSweep(id.to_owned()))
    }

    /// At start: carries on with every sweep that was running when the server stopped. Returns
    /// how many were resumed.
    pub async fn resume_sweeps(&self) -> Result<usize, StoreError> {
        let mut resumed = 0;
        for sweep in self.store.running_sweeps().await? {
            let filter = serde_json::from_str::<api_types::diagnostics::SweepFilter>(&sweep.filter)
                .map_err(|e| SweepError::Filter(e.to_string()))
                .and_then(|f| device_filter(&f));
            let filter = match filter {
                Ok(filter) => filter,
                Err(error) => {
                    tracing::warn!(sweep = %sweep.id, %error, "a sweep cannot be resumed");
                    self.store
                        .finish_sweep(&sweep.id, SweepStatus::Interrupted, Utc::now())
                        .await?;
                    continue;
                }
            };
            let runs = self.store.sweep_progress(&sweep.id).await?;
            let progress = Progress {
                reached: runs.iter().map(|r| r.endpoint.clone()).collect(),
                pending: runs
                    .iter()
                    .filter(|r| r.status == RunStatus::Pending)
                    .map(|r| (r.id.clone(), r.endpoint.clone()))
                    .collect(),
            };
            tracing::info!(
                sweep = %sweep.id,
                reached = progress.reached.len(),
                pending = progress.pending.len(),
                "resuming a diagnostic sweep"
            );
            let plan = SweepPlan {
                filter,
                filter_json: sweep.filter.clone(),
                rate_per_sec: sweep.rate_per_sec.clamp(0.1, MAX_RATE),
                limit: sweep.device_limit.unwrap_or(MAX_DEVICES),
            };
            self.spawn_sweep(sweep.id, plan, progress);
            resumed += 1;
        }
        Ok(resumed)
    }

    fn spawn_sweep(&self, id: String, plan: SweepPlan, progress: Progress) {
        let this = self.clone();
        tokio::spawn(async move {
            let stopping = Arc::new(AtomicBool::new(false));
            let status = match this.run_sweep(&id, &plan, progress, &stopping).await {
                Ok(Ended::Finished(count)) => {
                    tracing::info!(sweep = %id, devices = count, "diagnostic sweep finished");
                    SweepStatus::Completed
                }
                Ok(Ended::Cancelled) => return,
                Ok(Ended::Stopped) => {
                    tracing::info!(sweep = %id, "server stopping: the sweep resumes at the next start");
                    return;
                }
                Err(error) if stopping.load(Ordering::Relaxed) || is_closed(&error) => {
                    tracing::info!(sweep = %id, %error, "server stopping: the sweep resumes at the next start");
                    return;
                }
                Err(error) => {
                    tracing::warn!(sweep = %id, %error, "diagnostic sweep stopped");
                    SweepStatus::Interrupted
                }
            };
            if let Err(error) = this.store.finish_sweep(&id, status, Utc::now()).await {
                tracing::warn!(sweep = %id, %error, "could not record the end of a sweep");
            }
        });
    }

    /// Whether the sweep is still running in the store (not cancelled).
    async fn still_running(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .sweep(id)
            .await?
            .is_some_and(|s| s.status == SweepStatus::Running))
    }

    async fn run_sweep(
        &self,
        id: &str,
        plan: &SweepPlan,
        progress: Progress,
        stopping: &Arc<AtomicBool>,
    ) -> Result<Ended, StoreError> {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate_per_sec));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        let mut started = u32::try_from(progress.reached.len()).unwrap_or(u32::MAX);
        let actor = format!("system:sweep:{id}");
        let mut checked = tokio::time::Instant::now();

        // Runs left pending by the stop first (again, into the same run), then the devices the
        // sweep had not reached yet.
        let mut again = progress.pending.into_iter();
        let mut page = Some(PageRequest::first(PAGE));
        let mut listed = Vec::new().into_iter();
        let ended = loop {
            if stopping.load(Ordering::Relaxed) {
                break Ended::Stopped;
            }
            if checked.elapsed() >= CANCEL_CHECK {
                checked = tokio::time::Instant::now();
                if !self.still_running(id).await? {
                    break Ended::Cancelled;
                }
            }
            let (run, endpoint) = if let Some((run, endpoint)) = again.next() {
                (Some(run), endpoint)
            } else if let Some(device) = listed.next() {
                let crate::fleet::registry::Device { endpoint, .. } = device;
                if progress.reached.contains(&endpoint) {
                    continue;
                }
                if started >= plan.limit {
                    break Ended::Finished(started);
                }
                started += 1;
                (None, endpoint)
            } else if let Some(request) = page.take() {
                let result = self.store.list_devices(&plan.filter, &request).await?;
                page = result.next_after.map(|after| PageRequest {
                    after: Some(after),
                    ..request
                });
                listed = result.devices.into_iter();
                continue;
            } else {
                break Ended::Finished(started);
            };
            ticker.tick().await;
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break Ended::Finished(started);
            };
            let this = self.clone();
            let sweep = id.to_owned();
            let actor = actor.clone();
            let stopping = stopping.clone();
            tasks.spawn(async move {
                let _slot = slot;
                match this
                    .diagnose_run(&endpoint, &actor, Some(&sweep), WAIT, run)
                    .await
                {
                    Ok(_) => {}
                    Err(DiagnoseError::Stopped) => stopping.store(true, Ordering::Relaxed),
                    Err(DiagnoseError::Store(error)) if is_closed(&error) => {
                        stopping.store(true, Ordering::Relaxed)
                    }
                    Err(error) => {
                        tracing::warn!(%endpoint, %sweep, %error, "sweep: diagnosis failed");
                    }
                }
            });
            // Reap finished tasks as we go so the set stays small.
            while tasks.try_join_next().is_some() {}
        };
        while tasks.join_next().await.is_some() {}
        if stopping.load(Ordering::Relaxed) {
            return Ok(Ended::Stopped);
        }
        Ok(ended)
    }
}

/// The store was closed under the sweep: the server is stopping.
fn is_closed(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::PoolClosed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use api_types::diagnostics::SweepFilter;

    #[test]
    fn sweep_filters_map_to_the_device_filter() {
        let filter = device_filter(&SweepFilter {
            state: Some("active".into()),
            model: Some("FM-1".into()),
            q: Some(String::new()),
            tag: vec!["site:north".into()],
            ..SweepFilter::default()
        })
        .unwrap();
        assert!(filter.state.is_some());
        assert_eq!(filter.model.as_deref(), Some("FM-1"));
        assert_eq!(filter.search, None);
        assert_eq!(filter.tags, [("site".to_owned(), "north".to_owned())]);
        for bad in [
            SweepFilter {
                state: Some("asleep".into()),
                ..SweepFilter::default()
            },
            SweepFilter {
                tag: vec!["nokey".into()],
                ..SweepFilter::default()
            },
        ] {
            assert!(matches!(device_filter(&bad), Err(SweepError::Filter(_))));
        }
    }
}
