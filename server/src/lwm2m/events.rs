//! What the LwM2M service publishes ([`DeviceEvent`], serde-friendly for server-sent events) and
//! the service-wide operation ID ([`OperationId`]) that names a request in events, in the
//! `lwm2m_queued_requests` table and across restarts.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::directory::RegistrationInfo;
use super::view::{OutcomeView, RecordView, rfc3339};

/// Names one request made through the service: 16 hex digits, random (so IDs persisted before a
/// restart never collide with new ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationId(u64);

impl OperationId {
    /// A fresh random ID.
    pub(crate) fn random() -> OperationId {
        let mut bytes = [0u8; 8];
        // Without an OS random source the process could not have started its DTLS layer either;
        // fall back to the clock rather than fail a request.
        if crate::fleet::secrets::random_bytes(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes = (nanos as u64).to_be_bytes();
        }
        OperationId(u64::from_be_bytes(bytes))
    }

    /// `n` fresh random IDs from one read of the OS random source (a system call each would
    /// show in the profile of a fleet read).
    pub(crate) fn random_many(n: usize) -> Vec<OperationId> {
        let mut bytes = vec![0u8; n * 8];
        if crate::fleet::secrets::random_bytes(&mut bytes).is_err() {
            return (0..n).map(|_| OperationId::random()).collect();
        }
        bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                OperationId(u64::from_be_bytes(word))
            })
            .collect()
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Text that is not 1–16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an operation ID is 16 hex digits")]
pub struct InvalidOperationId;

impl FromStr for OperationId {
    type Err = InvalidOperationId;
    fn from_str(text: &str) -> Result<OperationId, InvalidOperationId> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidOperationId);
        }
        u64::from_str_radix(text, 16)
            .map(OperationId)
            .map_err(|_| InvalidOperationId)
    }
}

impl Serialize for OperationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OperationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OperationId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An error as events and stored results carry it: a sentence, plus the device's CoAP response
/// code when it answered with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    /// A stable machine-readable kind (`device_error`, `timeout`, `expired`, …).
    pub kind: String,
    pub message: String,
    /// `4.04` etc. when the device answered with an error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coap_code: Option<String>,
}

/// How an operation ended, as events and the queued-request table carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OperationResult {
    Succeeded { outcome: OutcomeView },
    Failed { error: ErrorView },
}

/// Something that happened to a device, for the console's live view (SSE) and other listeners.
/// Values are decoded; times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A Register was accepted. `reboot`: the device was still registered (it restarted).
    Registered {
        registration: RegistrationInfo,
        reboot: bool,
    },
    /// An Update. `address_changed`: it came from a new address (NAT rebinding); observations
    /// made from the old address have ended.
    Updated {
        registration: RegistrationInfo,
        address_changed: bool,
    },
    Deregistered {
        endpoint: String,
        registration_id: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// No Update within lifetime + grace (also reported at start for registrations that ran
    /// out while the server was down).
    Expired {
        endpoint: String,
        registration_id: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// The server removed the registration (the device was decommissioned or its credentials
    /// withdrawn, it registered on the other socket, or NoSec was switched off).
    Removed {
        endpoint: String,
        registration_id: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// A Register (or Update) was refused: by the fleet registry's rules or by the engine.
    RegistrationRefused {
        endpoint: Option<String>,
        address: SocketAddr,
        coap_code: String,
        reason: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// A new value of an observation (values decoded; `error` when it could not be).
    /// `initial`: the value the Observe itself was answered with (RFC 7641 §3.2: the first
    /// notification) — the device may have sent it as a confirmable notification that then
    /// stood as the response, so it is published like any other (consumers dedupe readings on
    /// their natural key).
    Notification {
        endpoint: String,
        observation: u64,
        paths: Vec<String>,
        values: Vec<RecordView>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        initial: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// An observation ended (cancelled, the device ended it, the registration ended, …).
    ObservationEnded {
        endpoint: String,
        observation: u64,
        reason: String,
    },
    /// LwM2M Send (`/dp`): readings with their times.
    Send {
        endpoint: String,
        records: Vec<RecordView>,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// A request waits for its sleeping (queue-mode) device; it is persisted.
    OperationQueued {
        endpoint: String,
        operation: OperationId,
        #[serde(with = "rfc3339")]
        expires_at: DateTime<Utc>,
    },
    /// A committed lifecycle transition (operator action, first registration, bootstrap
    /// finished), from the store; `actor` as in the audit trail.
    StateChanged {
        endpoint: String,
        from: String,
        to: String,
        actor: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    /// A request made through the service finished.
    OperationCompleted {
        endpoint: String,
        operation: OperationId,
        result: OperationResult,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
}

impl From<crate::store::StateChange> for DeviceEvent {
    fn from(change: crate::store::StateChange) -> DeviceEvent {
        DeviceEvent::StateChanged {
            endpoint: change.endpoint,
            from: change.from.to_string(),
            to: change.to.to_string(),
            actor: change.actor,
            reason: change.reason,
            at: change.at,
        }
    }
}

impl DeviceEvent {
    /// A registration-interface event (Registered, Updated, Deregistered, Expired, Removed,
    /// RegistrationRefused): these also go to
    /// [`Lwm2mService::registration_events`](crate::lwm2m::Lwm2mService::registration_events).
    pub fn is_registration(&self) -> bool {
        matches!(
            self,
            DeviceEvent::Registered { .. }
                | DeviceEvent::Updated { .. }
                | DeviceEvent::Deregistered { .. }
                | DeviceEvent::Expired { .. }
                | DeviceEvent::Removed { .. }
                | DeviceEvent::RegistrationRefused { .. }
        )
    }

    /// The endpoint the event is about, if known.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            DeviceEvent::Registered { registration, .. }
            | DeviceEvent::Updated { registration, .. } => Some(&registration.endpoint),
            DeviceEvent::RegistrationRefused { endpoint, .. } => endpoint.as_deref(),
            DeviceEvent::Deregistered { endpoint, .. }
            | DeviceEvent::Expired { endpoint, .. }
            | DeviceEvent::Removed { endpoint, .. }
            | DeviceEvent::Notification { endpoint, .. }
            | DeviceEvent::ObservationEnded { endpoint, .. }
            | DeviceEvent::Send { endpoint, .. }
            | DeviceEvent::OperationQueued { endpoint, .. }
            | DeviceEvent::StateChanged { endpoint, .. }
            | DeviceEvent::OperationCompleted { endpoint, .. } => Some(endpoint),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lwm2m::view::ValueView;

    #[test]
    fn operation_ids_print_as_16_hex_digits_and_parse_back() {
        let id = OperationId(0xab);
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!("00000000000000ab".parse::<OperationId>(), Ok(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"00000000000000ab\"");
        for bad in ["", "xyz", "00000000000000000", "+1"] {
            assert!(bad.parse::<OperationId>().is_err(), "{bad}");
        }
        assert_ne!(OperationId::random(), OperationId::random());
    }

    #[test]
    fn events_are_tagged_json() {
        let event = DeviceEvent::Send {
            endpoint: "meter-1".into(),
            records: vec![RecordView {
                path: "/10243/0/14".into(),
                time: Some(1_700_000_000.0),
                value: ValueView::Float(12.5),
            }],
            at: DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "send");
        assert_eq!(json["records"][0]["value"]["type"], "float");
        assert_eq!(json["at"], "2026-03-01T00:00:00.000Z");
        assert_eq!(event.endpoint(), Some("meter-1"));
        let back: DeviceEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
