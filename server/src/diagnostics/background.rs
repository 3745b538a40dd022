//! What diagnostics do on their own, started once with the server: after a restart, fail the
//! single runs the stop left pending and resume the sweeps that were running; then sample the
//! boots of devices that restart often (`samples.rs`).

use std::time::Duration;

use chrono::Utc;
use ferrite_diagnostics::Thresholds;

use super::Diagnostics;
use crate::lwm2m::Lwm2mService;
use crate::store::Store;

/// Starts the background work of diagnostics; returns once the sweeps to resume are started.
pub async fn start(
    store: Store,
    lwm2m: Lwm2mService,
    thresholds: Thresholds,
    queued_request_expiry: Duration,
) {
    match store.fail_orphaned_runs(Utc::now()).await {
        Ok(0) => {}
        Ok(runs) => tracing::info!(runs, "marked diagnoses interrupted by the last stop failed"),
        Err(error) => tracing::warn!(%error, "could not mark interrupted diagnoses"),
    }
    let diagnostics = Diagnostics::new(
        store,
        Some(lwm2m.clone()),
        thresholds,
        queued_request_expiry,
    );
    super::samples::start(diagnostics.clone(), lwm2m);
    match diagnostics.resume_sweeps().await {
        Ok(0) => {}
        Ok(sweeps) => tracing::info!(sweeps, "resumed diagnostic sweeps"),
        Err(error) => tracing::warn!(%error, "could not resume diagnostic sweeps"),
    }
}
