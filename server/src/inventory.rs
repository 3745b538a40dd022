//! What the registry learns from the devices themselves: after every Register the server reads
//! the firmware version (/3/0/3) and records it when it changed, so the fleet list, its filters
//! and rollout targeting show what each meter runs from its first registration on (a Register
//! follows every restart, and so every firmware update).
//!
//! Cost: one single-resource Read per Register (a restart or a new registration; Updates cost
//! nothing); at most [`READS_AT_ONCE`] in flight and [`MAX_WAITING`] waiting, so a mass restart
//! after a power cut is spread out instead of queued without bound. The version goes to the
//! LwM2M persistence worker (`Lwm2mService::record_firmware_version`): no read of the device
//! row, and one conditional UPDATE (written only when it changed) per batch of versions inside
//! the worker's batch transaction — measured, a separate read and commit per Register cost more
//! than the Register's own writes. Queue-mode devices are read in the awake window that follows their Register.

use std::sync::Arc;
use std::time::Duration;

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation};
use tokio::sync::{Semaphore, broadcast};

use crate::fleet::registry;
use crate::lwm2m::{DeviceEvent, Lwm2mService, OpResult, ServiceError};

/// Firmware Version of the Device object (TS Core Appendix E.4).
pub const FIRMWARE_VERSION: Path = Path::Resource(3, 0, 3);
/// How long one read waits for the device.
const READ_WAIT: Duration = Duration::from_secs(30);
/// Reads in flight at once.
pub const READS_AT_ONCE: usize = 32;
/// Registrations waiting for their read; more are skipped (their next Register reads again).
pub const MAX_WAITING: usize = 10_000;

/// Starts the listener; it ends when the service stops.
pub fn start(service: Lwm2mService) {
    let events = service.registration_events();
    tokio::spawn(listen(service, events));
}

async fn listen(service: Lwm2mService, mut events: broadcast::Receiver<DeviceEvent>) {
    let reads = Arc::new(Semaphore::new(READS_AT_ONCE));
    let waiting = Arc::new(Semaphore::new(MAX_WAITING));
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "firmware versions: missed registration events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let DeviceEvent::Registered { registration, .. } = event else {
            continue;
        };
        let Ok(slot) = waiting.clone().try_acquire_owned() else {
            tracing::debug!(endpoint = %registration.endpoint, "firmware version not read: too many waiting");
            continue;
        };
        let (service, reads) = (service.clone(), reads.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(_read) = reads.acquire().await else {
                return;
            };
            learn(&service, &registration.endpoint).await;
        });
    }
}

/// Reads /3/0/3 of `endpoint` and hands it to the persistence worker, which writes it (in its
/// next batch transaction, no read first) when it differs from the registry's.
async fn learn(service: &Lwm2mService, endpoint: &str) {
    let outcome = service
        .request(endpoint, Operation::Read(FIRMWARE_VERSION), READ_WAIT)
        .await;
    let version = match outcome {
        Ok(OpResult::Done {
            outcome: OpOutcome::Content(content),
            ..
        }) => match version_in(&content) {
            Some(version) => version,
            None => {
                tracing::debug!(%endpoint, "firmware version: no text value in the answer");
                return;
            }
        },
        Err(ServiceError::Unavailable) => return,
        Ok(other) => {
            tracing::debug!(%endpoint, ?other, "firmware version not read");
            return;
        }
        Err(error) => {
            tracing::debug!(%endpoint, %error, "firmware version not read");
            return;
        }
    };
    // Checked here too so that a bad value is logged as the device's, not as a failed write.
    if let Err(error) = registry::validate_firmware_version(&version) {
        tracing::debug!(%endpoint, %error, "firmware version not stored");
        return;
    }
    if service.record_firmware_version(endpoint, &version) {
        tracing::debug!(%endpoint, %version, "firmware version read");
    }
}

/// The firmware version in a Read answer of /3/0/3: a non-empty string (trimmed).
fn version_in(content: &Content) -> Option<String> {
    let text = |value: &Value| match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        _ => None,
    };
    match content {
        Content::Node { path, node } => node
            .flatten(path)
            .into_iter()
            .find_map(|(p, value)| (p == FIRMWARE_VERSION).then(|| text(value)).flatten()),
        Content::Records(records) => records
            .iter()
            .filter(|r| r.path == FIRMWARE_VERSION)
            .find_map(|r| r.value.as_ref().and_then(text)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use lwm2m_objects::{Node, Resource};

    fn content(value: Value) -> Content {
        Content::Node {
            path: FIRMWARE_VERSION,
            node: Node::Resource(Resource::single(3, value)),
        }
    }

    #[test]
    fn the_version_is_the_trimmed_text_of_3_0_3() {
        assert_eq!(
            version_in(&content(Value::String(" 2.4.1 ".into()))).as_deref(),
            Some("2.4.1")
        );
        assert_eq!(version_in(&content(Value::String("  ".into()))), None);
        assert_eq!(version_in(&content(Value::Integer(2))), None);
    }
}
