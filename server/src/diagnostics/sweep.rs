//! Fleet sweeps: diagnose every device matching a filter, at a bounded rate (devices started per
//! second) and with a bounded number in flight, so a sweep of 100,000 meters does not flood the
//! network or the server. Results are the runs themselves (tagged with the sweep), so they can be
//! counted and queried while the sweep is still going.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;

use super::{Diagnostics, run_id};
use crate::fleet::registry::{DeviceFilter, PageRequest};
use crate::store::StoreError;
use crate::store::diagnostics::{StoredSweep, SweepStatus};

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
    #[error(transparent)]
    Store(#[from] StoreError),
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
        let sweep = StoredSweep {
            id: run_id(),
            created_at: Utc::now(),
            created_by: created_by.to_owned(),
            filter: plan.filter_json.clone(),
            rate_per_sec: plan.rate_per_sec,
            status: SweepStatus::Running,
            finished_at: None,
        };
        self.store.insert_sweep(&sweep).await?;
        let this = self.clone();
        let id = sweep.id.clone();
        tokio::spawn(async move {
            let status = match this.run_sweep(&id, &plan).await {
                Ok(count) => {
                    tracing::info!(sweep = %id, devices = count, "diagnostic sweep finished");
                    SweepStatus::Completed
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
        Ok(sweep)
    }

    async fn run_sweep(&self, id: &str, plan: &SweepPlan) -> Result<u32, StoreError> {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate_per_sec));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        let mut page = PageRequest::first(PAGE);
        let mut started = 0u32;
        let actor = format!("system:sweep:{id}");
        'pages: loop {
            let result = self.store.list_devices(&plan.filter, &page).await?;
            for device in result.devices {
                if started >= plan.limit {
                    break 'pages;
                }
                ticker.tick().await;
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break 'pages;
                };
                started += 1;
                let this = self.clone();
                let sweep = id.to_owned();
                let actor = actor.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    if let Err(error) = this
                        .diagnose(&device.endpoint, &actor, Some(&sweep), WAIT)
                        .await
                    {
                        tracing::warn!(endpoint = %device.endpoint, %sweep, %error, "sweep: diagnosis failed");
                    }
                });
                // Reap finished tasks as we go so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
            match result.next_after {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(started)
    }
}
