//! Remote diagnostics, the I/O side: one action reads objects 3/4/5/6/7 of a device (one
//! Read-Composite for LwM2M 1.1+ devices, parallel Reads otherwise or when the composite read is
//! refused), keeps what answered and what failed, turns it into a `ferrite_diagnostics::Snapshot`,
//! runs the pure rules over it with the device's history, and stores the run. A sleeping
//! queue-mode device gets its reads when it wakes: the run stays pending and a task finishes it
//! from the completion events. Fleet sweeps (`sweep.rs`) run this over a filtered set of devices
//! at a bounded rate.

pub mod background;
pub mod samples;
pub mod sweep;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferrite_diagnostics::{
    DeviceHistory, Diagnosis, Input, RegistrationEvent, RegistrationKind, Severity, Snapshot,
    Thresholds, diagnose,
};
use lwm2m_objects::Path;
use lwm2m_proto::lwm2m::server::{Content, OpError, OpOutcome, Operation};
use tokio::sync::broadcast;

use crate::fleet::registry::{AUDIT_DEVICE_EXECUTE, AuditEntry, AuditPageRequest};
use crate::lwm2m::{
    DeviceEvent, Lwm2mService, OpResult, OperationId, OperationResult, OutcomeView, RecordView,
    ServiceError,
};
use crate::store::diagnostics::{RunOutcome, RunStatus, StoredRun};
use crate::store::lwm2m::RegistrationEventKind;
use crate::store::{Store, StoreError};

pub use sweep::{SweepError, SweepPlan};

/// The diagnostic objects, in the order they are read: Device, Connectivity Monitoring, Firmware
/// Update, Location, Connectivity Statistics.
pub const OBJECTS: [u16; 5] = [3, 4, 5, 6, 7];
/// Earlier snapshots the rules see (trends such as a memory leak).
const HISTORY_SNAPSHOTS: u32 = 20;
/// Samples (boot samples: two per sampled boot) the rules see.
const HISTORY_SAMPLES: u32 = 40;
/// Registration events the rules see (reboot counts and rhythm).
const HISTORY_EVENTS: u32 = 500;
/// How much earlier than its audit entry an operator's reboot may have happened.
const AUDIT_SLACK_SECS: i64 = 5;
/// Longest a pending run waits for a sleeping device, whatever the queue's own expiry.
const MAX_PENDING: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("device {0:?} is not in the fleet registry")]
    UnknownDevice(String),
    /// The server is stopping: the run stays pending (a sweep's is diagnosed again when the
    /// sweep resumes; a single run is marked failed at the next start).
    #[error("the server is stopping")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The diagnostics service: cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct Diagnostics {
    store: Store,
    lwm2m: Option<Lwm2mService>,
    thresholds: Arc<Thresholds>,
    /// How long a pending run waits for a sleeping device.
    pending_for: Duration,
}

impl Diagnostics {
    pub fn new(
        store: Store,
        lwm2m: Option<Lwm2mService>,
        thresholds: Thresholds,
        queued_request_expiry: Duration,
    ) -> Diagnostics {
        Diagnostics {
            store,
            lwm2m,
            thresholds: Arc::new(thresholds),
            pending_for: queued_request_expiry.min(MAX_PENDING),
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Diagnoses `endpoint`: reads, stores and returns the run. Waits up to `wait` for the
    /// device; a device that has not answered by then (asleep in queue mode) leaves the run
    /// pending, and it completes in the background when the device answers (or fails when its
    /// requests expire).
    pub async fn diagnose(
        &self,
        endpoint: &str,
        requested_by: &str,
        sweep_id: Option<&str>,
        wait: Duration,
    ) -> Result<StoredRun, DiagnoseError> {
        self.diagnose_run(endpoint, requested_by, sweep_id, wait, None)
            .await
    }

    /// As [`diagnose`](Self::diagnose); with `existing`, into that pending run instead of a new
    /// one (a resumed sweep's run that the stop left pending).
    async fn diagnose_run(
        &self,
        endpoint: &str,
        requested_by: &str,
        sweep_id: Option<&str>,
        wait: Duration,
        existing: Option<String>,
    ) -> Result<StoredRun, DiagnoseError> {
        let device = self
            .store
            .get_device(endpoint)
            .await?
            .ok_or_else(|| DiagnoseError::UnknownDevice(endpoint.to_owned()))?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = run_id();
                self.store
                    .insert_diagnostic_run(&id, endpoint, sweep_id, Utc::now(), requested_by)
                    .await?;
                id
            }
        };

        let registration = self.lwm2m.as_ref().and_then(|s| s.registration(endpoint));
        let mut reading = Reading::new(Utc::now());
        match (&self.lwm2m, &registration) {
            (Some(service), Some(registration)) => {
                // Subscribe before the first request so that no completion can be missed.
                let events = service.events();
                let paths = diagnostic_paths(&registration.objects);
                let composite = registration.lwm2m_version != "1.0" && paths.len() > 1;
                read(service, endpoint, &paths, composite, wait, &mut reading).await;
                if reading.stopped {
                    return Err(DiagnoseError::Stopped);
                }
                if !reading.pending.is_empty() {
                    let this = self.clone();
                    let owned_endpoint = endpoint.to_owned();
                    let run = id.clone();
                    let last_seen = device.last_seen;
                    tokio::spawn(async move {
                        reading.wait_for(events, this.pending_for).await;
                        if let Err(error) =
                            this.finish(&run, &owned_endpoint, reading, last_seen).await
                        {
                            tracing::warn!(endpoint = %owned_endpoint, %run, %error, "a pending diagnosis could not be stored");
                        }
                    });
                    return self
                        .store
                        .diagnostic_run(&id)
                        .await?
                        .ok_or_else(|| DiagnoseError::UnknownDevice(endpoint.to_owned()));
                }
            }
            _ => reading
                .snapshot
                .fail("/", "the device is not registered: nothing could be read"),
        }
        self.finish(&id, endpoint, reading, device.last_seen)
            .await?;
        self.store
            .diagnostic_run(&id)
            .await?
            .ok_or_else(|| DiagnoseError::UnknownDevice(endpoint.to_owned()))
    }

    /// Runs the rules over what was read and the device's history, and stores the outcome.
    async fn finish(
        &self,
        id: &str,
        endpoint: &str,
        reading: Reading,
        last_seen: Option<DateTime<Utc>>,
    ) -> Result<(), DiagnoseError> {
        let now = Utc::now();
        let mut snapshot = reading.snapshot;
        snapshot.taken_at = now.timestamp();
        let history = self
            .history(endpoint, id, last_seen, reading.answered.then_some(now))
            .await?;
        let diagnosis = diagnose(Input {
            snapshot: &snapshot,
            history: &history,
            now: now.timestamp(),
            thresholds: &self.thresholds,
        });
        let outcome = outcome_of(now, &snapshot, &diagnosis, reading.answered);
        self.store.finish_diagnostic_run(id, &outcome).await?;
        Ok(())
    }

    /// The device's past: earlier completed snapshots, registration events, lifetime, last seen.
    async fn history(
        &self,
        endpoint: &str,
        current_run: &str,
        last_seen: Option<DateTime<Utc>>,
        answered_at: Option<DateTime<Utc>>,
    ) -> Result<DeviceHistory, DiagnoseError> {
        let runs = self
            .store
            .diagnostic_runs(endpoint, HISTORY_SNAPSHOTS + 1)
            .await?;
        let snapshots = runs
            .iter()
            .filter(|r| r.id != current_run && r.status == RunStatus::Completed)
            .filter_map(|r| serde_json::from_str::<Snapshot>(r.snapshot.as_deref()?).ok())
            // A run where nothing answered has no values to trend.
            .filter(|s| !s.values.is_empty())
            .collect();
        let samples = self
            .store
            .diagnostic_samples(endpoint, HISTORY_SAMPLES)
            .await?
            .iter()
            .filter_map(|json| serde_json::from_str::<Snapshot>(json).ok())
            .collect();
        let mut registrations: Vec<RegistrationEvent> = self
            .store
            .registration_events(endpoint, HISTORY_EVENTS)
            .await?
            .into_iter()
            .map(|e| RegistrationEvent {
                at: e.at.timestamp(),
                kind: match e.kind {
                    RegistrationEventKind::Registered => RegistrationKind::Registered,
                    RegistrationEventKind::Reboot => RegistrationKind::Reregistered,
                    RegistrationEventKind::Deregistered | RegistrationEventKind::Removed => {
                        RegistrationKind::Deregistered
                    }
                    RegistrationEventKind::Expired => RegistrationKind::Expired,
                },
            })
            .collect();
        // Reboots an operator asked for (Execute /3/0/4 Reboot or /3/0/5 Factory Reset through
        // the API, from the audit trail) are not the device's doing: the rules skip the Register
        // that follows them.
        let audit = self
            .store
            .device_audit(endpoint, AuditPageRequest::first(HISTORY_EVENTS))
            .await?;
        registrations.extend(
            audit
                .entries
                .iter()
                .filter(|e| is_requested_reboot(e))
                .map(|e| RegistrationEvent {
                    // The entry is written once the device answered; a quick device may have
                    // registered again a moment before.
                    at: e.at.timestamp().saturating_sub(AUDIT_SLACK_SECS),
                    kind: RegistrationKind::RebootExecuted,
                }),
        );
        let registration = self.lwm2m.as_ref().and_then(|s| s.registration(endpoint));
        let stored = match &registration {
            Some(_) => None,
            None => self.store.lwm2m_registration(endpoint).await?,
        };
        let lifetime_secs = registration
            .as_ref()
            .map(|r| i64::from(r.lifetime))
            .or_else(|| stored.as_ref().map(|r| i64::from(r.lifetime)));
        let last_update = registration
            .as_ref()
            .map(|r| r.last_update)
            .or_else(|| stored.as_ref().map(|r| r.last_update));
        let last_seen = [last_seen, last_update, answered_at]
            .into_iter()
            .flatten()
            .max();
        Ok(DeviceHistory {
            snapshots,
            samples,
            registrations,
            lifetime_secs,
            last_seen: last_seen.map(|t| t.timestamp()),
            queue_mode: registration.is_some_and(|r| r.queue_mode),
        })
    }
}

/// What one run has read so far.
#[derive(Debug)]
struct Reading {
    snapshot: Snapshot,
    /// Whether anything at all answered.
    answered: bool,
    /// A request failed because the server is stopping: what was read is not a diagnosis.
    stopped: bool,
    /// Requests waiting for a sleeping device: operation → the paths it reads.
    pending: HashMap<OperationId, Vec<Path>>,
}

impl Reading {
    fn new(at: DateTime<Utc>) -> Reading {
        Reading {
            snapshot: Snapshot::new(at.timestamp()),
            answered: false,
            stopped: false,
            pending: HashMap::new(),
        }
    }

    fn content(&mut self, content: &Content) {
        self.answered = true;
        match content {
            Content::Node { path, node } => {
                for (p, value) in node.flatten(path) {
                    self.snapshot.insert(&p, value);
                }
            }
            Content::Records(records) => {
                for record in records {
                    if let Some(value) = &record.value {
                        self.snapshot.insert(&record.path, value);
                    }
                }
            }
        }
    }

    fn records(&mut self, records: &[RecordView]) {
        self.answered = true;
        for record in records {
            if let (Ok(path), Ok(value)) = (
                record.parsed_path(),
                lwm2m_objects::Value::try_from(&record.value),
            ) {
                self.snapshot.insert(&path, &value);
            }
        }
    }

    fn fail(&mut self, paths: &[Path], why: &str) {
        for p in paths {
            self.snapshot.fail(p.to_string(), why);
        }
    }

    /// Waits for the pending requests' completion events (or `limit`).
    async fn wait_for(&mut self, mut events: broadcast::Receiver<DeviceEvent>, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.pending.is_empty() {
            let event = match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(event)) => event,
                // Lagged: completions may have been dropped; keep listening for the rest.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            };
            let DeviceEvent::OperationCompleted {
                operation, result, ..
            } = event
            else {
                continue;
            };
            let Some(paths) = self.pending.remove(&operation) else {
                continue;
            };
            match result {
                OperationResult::Succeeded {
                    outcome: OutcomeView::Content { values } | OutcomeView::Observing { values, .. },
                } => self.records(&values),
                OperationResult::Succeeded { .. } => {
                    self.fail(&paths, "the device answered something other than values");
                }
                OperationResult::Failed { error } => self.fail(&paths, &error.message),
            }
        }
        let left: Vec<Path> = self.pending.drain().flat_map(|(_, p)| p).collect();
        self.fail(&left, "the device did not wake up in time");
    }
}

/// `/o/0` of each diagnostic object the device registered with instance 0 (all five when the
/// registration's links cannot be parsed: the device answers 4.04 for what it lacks).
fn diagnostic_paths(objects: &str) -> Vec<Path> {
    let all = || OBJECTS.iter().map(|&o| Path::Instance(o, 0)).collect();
    let Ok(links) = lwm2m_objects::link::parse_registration(objects) else {
        return all();
    };
    OBJECTS
        .iter()
        .filter(|o| {
            links
                .objects
                .get(o)
                .is_some_and(|l| l.instances.contains(&0))
        })
        .map(|&o| Path::Instance(o, 0))
        .collect()
}

/// Reads `paths` (composite first when allowed), recording answers, failures and pending
/// requests in `reading`.
async fn read(
    service: &Lwm2mService,
    endpoint: &str,
    paths: &[Path],
    composite: bool,
    wait: Duration,
    reading: &mut Reading,
) {
    if composite {
        match service
            .request(endpoint, Operation::ReadComposite(paths.to_vec()), wait)
            .await
        {
            Ok(OpResult::Done {
                outcome: OpOutcome::Content(content),
                ..
            }) => return reading.content(&content),
            Ok(OpResult::Done { .. }) => {}
            Ok(OpResult::Pending { operation, .. }) => {
                reading.pending.insert(operation, paths.to_vec());
                return;
            }
            // No composite-capable format in common, or the device refuses it: read one by one.
            Err(ServiceError::Invalid(OpError::NotSupported { .. }))
            | Err(ServiceError::DeviceError { .. }) => {}
            Err(ServiceError::Unavailable) => {
                reading.stopped = true;
                return;
            }
            Err(error) => return reading.fail(paths, &describe(&error)),
        }
    }
    let requests = paths.iter().map(|&path| async move {
        (
            path,
            service.request(endpoint, Operation::Read(path), wait).await,
        )
    });
    for (path, result) in futures_util::future::join_all(requests).await {
        match result {
            Ok(OpResult::Done {
                outcome: OpOutcome::Content(content),
                ..
            }) => reading.content(&content),
            Ok(OpResult::Done { .. }) => {
                reading.fail(&[path], "the device answered something other than values")
            }
            Ok(OpResult::Pending { operation, .. }) => {
                reading.pending.insert(operation, vec![path]);
            }
            Err(ServiceError::Unavailable) => reading.stopped = true,
            Err(error) => reading.fail(&[path], &describe(&error)),
        }
    }
}

/// A failed read in plain language, with the CoAP code when the device gave one.
fn describe(error: &ServiceError) -> String {
    match error {
        ServiceError::DeviceError { code, .. } if code == "4.04" => {
            "not found on the device (4.04)".to_owned()
        }
        ServiceError::DeviceError { code, .. } if code == "4.01" || code == "4.03" => {
            format!("the device refused access ({code})")
        }
        ServiceError::Timeout(_) => "the device did not answer in time".to_owned(),
        other => other.to_string(),
    }
}

fn outcome_of(
    now: DateTime<Utc>,
    snapshot: &Snapshot,
    diagnosis: &Diagnosis,
    answered: bool,
) -> RunOutcome {
    let rules = diagnosis
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Minor)
        .map(|f| f.rule.as_str().to_owned())
        .fold(Vec::<String>::new(), |mut acc, r| {
            if !acc.contains(&r) {
                acc.push(r);
            }
            acc
        });
    RunOutcome {
        // A device that answered nothing is still diagnosed (e.g. "missed check-in"), but the
        // run says it failed to read.
        status: RunStatus::Completed,
        completed_at: now,
        verdict: serde_json::to_value(diagnosis.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        rules,
        snapshot: serde_json::to_string(snapshot).ok(),
        diagnosis: serde_json::to_string(diagnosis).ok(),
        error: (!answered).then(|| "the device answered none of the reads".to_owned()),
    }
}

/// A fresh run ID: 16 random bytes, hex.
fn run_id() -> String {
    let mut bytes = [0u8; 16];
    if crate::fleet::secrets::random_bytes(&mut bytes).is_err() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    }
    hex::encode(bytes)
}

/// An audited Execute of Reboot (/3/0/4) or Factory Reset (/3/0/5) that reached the device
/// or its queue (see `http::lwm2m::change`: the reason is "path[ args …]: outcome").
fn is_requested_reboot(entry: &AuditEntry) -> bool {
    let Some(reason) = entry.reason.as_deref() else {
        return false;
    };
    let path = reason.split([' ', ':']).next().unwrap_or_default();
    entry.action == AUDIT_DEVICE_EXECUTE
        && matches!(path, "/3/0/4" | "/3/0/5")
        && !reason.contains(": failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_registered_objects() {
        let paths = diagnostic_paths("</1/0>,</3/0>,</4/0>,</5>,</6/1>,</10243/0>");
        let shown: Vec<String> = paths.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["/3/0", "/4/0"]);
        assert_eq!(diagnostic_paths("<<not links").len(), 5);
    }

    #[test]
    fn run_ids_are_distinct_hex() {
        let a = run_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, run_id());
    }
}
