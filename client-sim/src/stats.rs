//! Fleet counters: atomics the meters bump from every worker thread, and the plain snapshot the
//! progress display, the final summary and the tests read.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Live counters, shared by the workers (relaxed atomics: each is read on its own).
        #[derive(Debug, Default)]
        pub struct Stats {
            /// Meters registered right now.
            pub registered: AtomicI64,
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct Snapshot {
            /// Meters registered right now.
            pub registered: i64,
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// The current values.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot {
                    registered: self.registered.load(Ordering::Relaxed),
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                }
            }
        }
    };
}

counters! {
    /// Successful Registers (first ones and after reboots or expiry).
    registrations,
    /// Registers that failed (rejected or unanswered).
    register_failures,
    /// Successful Updates.
    updates,
    /// Updates that failed.
    update_failures,
    /// Successful De-registers.
    deregistrations,
    /// Registrations the client saw expire.
    expirations,
    /// Meter restarts (executed, periodic, watchdog).
    reboots,
    /// Requests from the server the meters received (Read, Write, Observe, Execute …).
    server_requests,
    /// Readings produced.
    readings_produced,
    /// Readings put on the wire (each attempt).
    readings_sent,
    /// Readings the server acknowledged.
    readings_acked,
    /// Readings evicted from full buffers.
    readings_evicted,
    /// Sends answered 2.04.
    sends_ok,
    /// Sends that failed.
    sends_failed,
    /// Confirmable reading notifications ACKed.
    notifications_acked,
    /// DTLS handshakes completed.
    handshakes,
    /// DTLS handshakes that failed.
    handshake_failures,
    /// DTLS handshake flights retransmitted (RFC 6347 §4.2.4, timers doubling from 1 s).
    handshake_retransmissions,
    /// Of those, the ones the meter made because rtc-dtls had dropped its own timer (see
    /// `meter::handshake`).
    handshake_timer_recoveries,
    /// Factory bootstraps finished (`--bootstrap`: DM credentials received).
    bootstraps,
    /// Bootstrap attempts that failed (refused, timed out, unusable account).
    bootstrap_failures,
    /// Outages begun.
    outages,
    /// Datagrams sent.
    datagrams_sent,
    /// Datagrams received.
    datagrams_received,
    /// Datagrams dropped by a meter (offline, rebooting, asleep, no DTLS session).
    datagrams_dropped,
    /// Datagrams the socket would not take (buffer full).
    send_errors,
    /// Firmware pulls started (Package URI written).
    firmware_downloads,
    /// Firmware pulls that failed (result 3, 4, 7, 9).
    firmware_download_failures,
    /// Firmware updates installed after the restart (result 1).
    firmware_updates,
    /// Firmware updates that failed after the restart (result 8).
    firmware_update_failures,
    /// Updates that installed a bad version.
    bad_firmware_installs,
    /// Faults injected: datagrams lost.
    fault_lost,
    /// Faults injected: datagrams duplicated.
    fault_duplicated,
    /// Faults injected: datagrams delayed.
    fault_delayed,
    /// Faults injected: source port changes.
    fault_rebinds,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves the registered gauge.
    pub fn registered_delta(&self, delta: i64) {
        self.registered.fetch_add(delta, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn snapshot_copies_every_counter() {
        let s = Stats::default();
        Stats::inc(&s.registrations);
        Stats::add(&s.readings_acked, 4);
        s.registered_delta(2);
        s.registered_delta(-1);
        let snap = s.snapshot();
        assert_eq!(snap.registrations, 1);
        assert_eq!(snap.readings_acked, 4);
        assert_eq!(snap.registered, 1);
        let json = serde_json::to_value(snap).unwrap();
        assert_eq!(json["readings_acked"], 4);
    }
}
