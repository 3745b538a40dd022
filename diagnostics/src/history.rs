//! What the server remembers about a device between diagnoses: its earlier snapshots and its
//! registration history (from which reboots are counted).

use serde::{Deserialize, Serialize};

use crate::Snapshot;

/// What happened at the registration interface, as the server recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationKind {
    /// A Register from an endpoint that was not registered.
    Registered,
    /// A Register from an endpoint that was still registered: the device restarted without
    /// de-registering (a reboot, OMA LwM2M TS Core §6.2.1).
    Reregistered,
    /// The server executed /3/0/4 Reboot (an operator asked for it).
    RebootExecuted,
    Updated,
    Deregistered,
    /// The lifetime ran out without an Update.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationEvent {
    /// Unix seconds.
    pub at: i64,
    pub kind: RegistrationKind,
}

/// The device's past as the rules need it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceHistory {
    /// Earlier snapshots (any order).
    pub snapshots: Vec<Snapshot>,
    /// Light reads between diagnoses (any order), e.g. /3/0 twice per boot of a device that
    /// restarts often; only rules that say so look at them (memory).
    #[serde(default)]
    pub samples: Vec<Snapshot>,
    /// Registration events (any order).
    pub registrations: Vec<RegistrationEvent>,
    /// The registration's lifetime in seconds, when registered.
    pub lifetime_secs: Option<i64>,
    /// Unix seconds of the last message from the device.
    pub last_seen: Option<i64>,
    /// Queue mode devices sleep between updates; their check-in is still bounded by the lifetime.
    pub queue_mode: bool,
}

impl DeviceHistory {
    /// Earlier snapshots, oldest first.
    pub fn snapshots_by_time(&self) -> Vec<&Snapshot> {
        let mut out: Vec<&Snapshot> = self.snapshots.iter().collect();
        out.sort_by_key(|s| s.taken_at);
        out
    }

    /// Times of the reboots the device did on its own (a Register while registered), oldest
    /// first. A Register within `requested_window_secs` after an executed reboot was asked for by
    /// an operator and is not counted: it says nothing about the device's health.
    pub fn spontaneous_reboots(&self, requested_window_secs: i64) -> Vec<i64> {
        let mut events = self.registrations.clone();
        events.sort_by_key(|e| e.at);
        let mut last_requested: Option<i64> = None;
        let mut out = Vec::new();
        for e in events {
            match e.kind {
                RegistrationKind::RebootExecuted => last_requested = Some(e.at),
                RegistrationKind::Reregistered => {
                    let requested = last_requested.is_some_and(|at| {
                        e.at >= at && e.at.saturating_sub(at) <= requested_window_secs
                    });
                    if requested {
                        last_requested = None;
                    } else {
                        out.push(e.at);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, kind: RegistrationKind) -> RegistrationEvent {
        RegistrationEvent { at, kind }
    }

    #[test]
    fn requested_reboots_are_not_spontaneous() {
        let h = DeviceHistory {
            registrations: vec![
                ev(5_000, RegistrationKind::Reregistered),
                ev(100, RegistrationKind::Registered),
                ev(1_000, RegistrationKind::RebootExecuted),
                ev(1_030, RegistrationKind::Reregistered),
                ev(3_000, RegistrationKind::Updated),
                ev(9_000, RegistrationKind::Reregistered),
            ],
            ..DeviceHistory::default()
        };
        assert_eq!(h.spontaneous_reboots(600), vec![5_000, 9_000]);
    }

    #[test]
    fn a_late_register_after_an_executed_reboot_counts() {
        let h = DeviceHistory {
            registrations: vec![
                ev(1_000, RegistrationKind::RebootExecuted),
                ev(10_000, RegistrationKind::Reregistered),
            ],
            ..DeviceHistory::default()
        };
        assert_eq!(h.spontaneous_reboots(600), vec![10_000]);
    }
}
