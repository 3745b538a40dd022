//! The life of an admitted peer: feeding its datagrams to rtc-dtls, handshake completion and
//! failure, application data, timers, and closing sessions (with their events and counters).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_dtls::endpoint::EndpointEvent;
use tracing::{debug, warn};

use super::limits::Recorded;
use super::{DtlsServer, Peer, Phase};
use crate::config::CipherSuite;
use crate::event::{CloseReason, DtlsEvent, HandshakeFailure, PskIdentity};
use crate::wire;

impl DtlsServer {
    /// Feeds a datagram from a known peer to rtc-dtls and acts on the outcome.
    pub(super) fn on_records(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let established = match &mut entry.phase {
            Phase::Established { .. } => true,
            Phase::Handshaking { heard, .. } => {
                if *heard != now {
                    self.handshake_activity.remove(&(*heard, peer));
                    self.handshake_activity.insert((now, peer));
                    *heard = now;
                }
                false
            }
        };
        self.lookups.take();
        let result = self
            .endpoint
            .read(now, peer, None, BytesMut::from(datagram));
        if let Some(lookup) = self.lookups.take()
            && let Some(Peer {
                phase: Phase::Handshaking { lookup: slot, .. },
                ..
            }) = self.peers.get_mut(&peer)
        {
            *slot = Some(lookup);
        }
        match result {
            Ok(events) => {
                self.forward_transmits();
                for event in events {
                    match event {
                        EndpointEvent::HandshakeComplete => self.on_handshake_complete(now, peer),
                        EndpointEvent::ApplicationData(bytes) => {
                            self.on_application_data(now, peer, bytes)
                        }
                        EndpointEvent::PeerClosed => self.on_peer_closed(now, peer),
                        _ => {}
                    }
                }
            }
            Err(error) if established => {
                // An established session only gets here for a record that fails authentication or
                // makes no sense: forged, corrupted or stale. RFC 6347 §4.1.2.7: discard it
                // silently. rtc-dtls queued a fatal alert for it; sending that would let anyone who
                // can spoof the peer's address tear the session down, so it is dropped too.
                debug!(%peer, %error, "invalid DTLS record discarded");
                self.stats.dropped.invalid_records += 1;
                while let Some(transmit) = self.endpoint.poll_transmit() {
                    if !wire::starts_with_alert(&transmit.message) {
                        let mut datagram = Vec::from(transmit.message);
                        self.shift_sequences(peer, &mut datagram);
                        self.transmits.push_back((peer, datagram));
                    }
                }
            }
            Err(error) => {
                // A failed handshake: its alert goes out, then the connection is removed (rtc-dtls
                // keeps it after a read error).
                self.forward_transmits();
                let reason = self.classify_failure(peer, datagram);
                debug!(%peer, %error, ?reason, "DTLS handshake failed");
                self.fail_handshake(now, peer, reason);
            }
        }
        if !established {
            self.reschedule_handshake(peer);
        }
    }

    fn classify_failure(&self, peer: SocketAddr, datagram: &[u8]) -> HandshakeFailure {
        if wire::starts_with_alert(datagram) {
            return HandshakeFailure::PeerAborted;
        }
        match self.peers.get(&peer).map(|p| &p.phase) {
            // Failing after the key lookup means the client's Finished did not verify.
            Some(Phase::Handshaking {
                lookup: Some((_, true)),
                ..
            }) => HandshakeFailure::BadKey,
            Some(Phase::Handshaking {
                lookup: Some((_, false)),
                ..
            }) => HandshakeFailure::UnknownIdentity,
            _ => HandshakeFailure::Protocol,
        }
    }

    fn on_handshake_complete(&mut self, now: Instant, peer: SocketAddr) {
        let Some(Peer {
            phase: Phase::Handshaking { lookup, .. },
            ..
        }) = self.peers.get(&peer)
        else {
            return;
        };
        let state = self.endpoint.get_connection_state(peer);
        let identity = state.map(|state| PskIdentity::new(&state.identity_hint));
        let suite = state
            .and_then(|state| state.cipher_suite())
            .and_then(|suite| CipherSuite::from_id(suite.id()));
        // Belt and braces: a handshake completes only under a key the store returned for exactly
        // the identity rtc-dtls reports (a random dummy key cannot verify).
        let verified = match (lookup, &identity) {
            (Some((looked_up, true)), Some(identity)) => looked_up == identity,
            _ => false,
        };
        let Some(identity) = identity.filter(|_| verified) else {
            debug!(%peer, "DTLS handshake completed without a known identity; dropped");
            self.fail_handshake(now, peer, HandshakeFailure::Internal);
            return;
        };
        self.remove_handshake_entry(peer);

        let replaced = match self.identities.get(&identity) {
            Some(&old) if old != peer => {
                self.stats.replaced_moved += 1;
                // The device is no longer at `old`; a close_notify there would reach nobody or a
                // stranger behind the same NAT.
                self.end_session(now, old, CloseReason::MovedTo(peer), false);
                Some(old)
            }
            _ => None,
        };
        while self.stats.sessions >= self.config.max_sessions {
            let Some(&(_, least_recent)) = self.idle_deadlines.first() else {
                break;
            };
            self.stats.evictions += 1;
            if let Some(suppressed) = self.bound_logs.session_evicted.allow(now) {
                warn!(
                    evicted = %least_recent,
                    max_sessions = self.config.max_sessions,
                    suppressed,
                    total = self.stats.evictions,
                    "DTLS session table full: the least recently active session was evicted"
                );
            }
            self.end_session(now, least_recent, CloseReason::Evicted, true);
        }

        let deadline = now + self.config.idle_timeout;
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        entry.deadline = deadline;
        entry.phase = Phase::Established {
            identity: identity.clone(),
            suite,
        };
        self.idle_deadlines.insert((deadline, peer));
        self.identities.insert(identity.clone(), peer);
        // Its final flight was drained (`forward_transmits` ran before the events): free what
        // only the handshake needed (vendored rtc-dtls, `Endpoint::compact`).
        self.endpoint.compact(peer);
        self.stats.handshakes_completed += 1;
        self.stats.sessions += 1;
        debug!(%peer, %identity, ?suite, ?replaced, "DTLS session established");
        self.events.push_back(DtlsEvent::Connected {
            peer,
            identity,
            replaced,
        });
    }

    fn on_application_data(&mut self, now: Instant, peer: SocketAddr, bytes: BytesMut) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let Phase::Established { identity, .. } = &entry.phase else {
            return;
        };
        // Only authenticated application data proves the client is alive; replayed or forged
        // records never get this far. The deadline moves in steps of a sixteenth of the idle
        // timeout (at most a second), not on every record: a busy session would otherwise cost
        // two B-tree updates per datagram, and an idle one still goes within 1/16 of its time.
        let idle = self.config.idle_timeout;
        let deadline = now + idle;
        if deadline >= entry.deadline + (idle / 16).min(Duration::from_secs(1)) {
            self.idle_deadlines.remove(&(entry.deadline, peer));
            self.idle_deadlines.insert((deadline, peer));
            entry.deadline = deadline;
        }
        self.events.push_back(DtlsEvent::Data {
            peer,
            identity: identity.clone(),
            bytes: Vec::from(bytes),
        });
    }

    fn on_peer_closed(&mut self, now: Instant, peer: SocketAddr) {
        // rtc-dtls has already removed the connection and queued the close_notify reply.
        match self.peers.get(&peer).map(|p| &p.phase) {
            Some(Phase::Established { .. }) => {
                self.stats.peer_closes += 1;
                self.end_session(now, peer, CloseReason::PeerClosed, true);
            }
            Some(Phase::Handshaking { .. }) => {
                self.fail_handshake(now, peer, HandshakeFailure::PeerAborted)
            }
            None => {}
        }
    }

    pub(super) fn on_handshake_timer(&mut self, now: Instant, peer: SocketAddr) {
        let Some(Peer {
            phase: Phase::Handshaking { started, .. },
            ..
        }) = self.peers.get(&peer)
        else {
            return;
        };
        if now >= *started + self.config.handshake_timeout {
            self.fail_handshake(now, peer, HandshakeFailure::Timeout);
            return;
        }
        let result = self.endpoint.handle_timeout(peer, now);
        self.forward_transmits();
        match result {
            Ok(()) => self.reschedule_handshake(peer),
            // rtc-dtls ran out of retransmissions.
            Err(_) => self.fail_handshake(now, peer, HandshakeFailure::Timeout),
        }
    }

    /// Recomputes a handshaking peer's deadline: rtc-dtls' retransmission timer or the overall
    /// handshake timeout, whichever is first.
    fn reschedule_handshake(&mut self, peer: SocketAddr) {
        let retransmit = self.endpoint.poll_timeout(&peer);
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let Phase::Handshaking { started, .. } = entry.phase else {
            return;
        };
        let overall = started + self.config.handshake_timeout;
        let deadline = retransmit.map_or(overall, |at| at.min(overall));
        if deadline != entry.deadline {
            self.handshake_deadlines.remove(&(entry.deadline, peer));
            self.handshake_deadlines.insert((deadline, peer));
            entry.deadline = deadline;
        }
    }

    /// Closes an established session and reports it. `notify` sends close_notify to the peer.
    pub(super) fn end_session(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        reason: CloseReason,
        notify: bool,
    ) {
        let Some(entry) = self.peers.remove(&peer) else {
            return;
        };
        let Phase::Established { identity, .. } = entry.phase else {
            // Not a session: put it back untouched (callers check the phase first).
            self.peers.insert(peer, entry);
            return;
        };
        self.idle_deadlines.remove(&(entry.deadline, peer));
        if self.identities.get(&identity) == Some(&peer) {
            self.identities.remove(&identity);
        }
        self.endpoint.stop(now, peer);
        if notify {
            self.forward_transmits();
        } else {
            self.discard_transmits();
        }
        self.stats.sessions = self.stats.sessions.saturating_sub(1);
        debug!(%peer, %identity, ?reason, "DTLS session closed");
        self.events.push_back(DtlsEvent::Closed {
            peer,
            identity,
            reason,
        });
    }

    /// Drops a handshake and reports why.
    pub(super) fn fail_handshake(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        reason: HandshakeFailure,
    ) {
        let claimed_identity = match self.peers.get(&peer).map(|p| &p.phase) {
            Some(Phase::Handshaking { lookup, .. }) => {
                lookup.as_ref().map(|(identity, _)| identity.clone())
            }
            _ => return,
        };
        self.remove_handshake(now, peer);
        if reason.counts_against_the_address() {
            self.count_failure(now, peer);
        }
        let failures = &mut self.stats.handshakes_failed;
        *match reason {
            HandshakeFailure::Timeout => &mut failures.timeout,
            HandshakeFailure::BadKey => &mut failures.bad_key,
            HandshakeFailure::UnknownIdentity => &mut failures.unknown_identity,
            HandshakeFailure::PeerAborted => &mut failures.peer_aborted,
            HandshakeFailure::Protocol => &mut failures.protocol,
            HandshakeFailure::Superseded => &mut failures.superseded,
            HandshakeFailure::Internal => &mut failures.internal,
            HandshakeFailure::Evicted => &mut failures.evicted,
        } += 1;
        self.events.push_back(DtlsEvent::HandshakeFailed {
            peer,
            claimed_identity,
            reason,
        });
    }

    /// Counts a failed handshake against `peer`'s address and logs when it gets refused.
    fn count_failure(&mut self, now: Instant, peer: SocketAddr) {
        match self.failures.record_failure(now, peer) {
            Recorded::Counted => {}
            Recorded::Blocked => {
                self.stats.rate_limit_blocks += 1;
                if let Some(suppressed) = self.bound_logs.address_blocked.allow(now) {
                    warn!(
                        %peer,
                        max_failures = self.config.max_handshake_failures,
                        window_secs = self.config.handshake_failure_window.as_secs(),
                        suppressed,
                        total = self.stats.rate_limit_blocks,
                        "DTLS address rate-limited: too many failed handshakes; its ClientHellos are dropped for one window"
                    );
                }
            }
            Recorded::CountedAfterEviction => {
                self.stats.failure_table_evictions += 1;
                if let Some(suppressed) = self.bound_logs.failure_table_full.allow(now) {
                    warn!(
                        max_failure_addresses = self.config.max_failure_addresses,
                        suppressed,
                        total = self.stats.failure_table_evictions,
                        "DTLS failed-handshake table full: the oldest address's count was forgotten"
                    );
                }
            }
        }
    }

    /// Removes a handshaking peer and its rtc-dtls connection, without an event.
    pub(super) fn remove_handshake(&mut self, now: Instant, peer: SocketAddr) {
        if !self.remove_handshake_entry(peer) {
            return;
        }
        self.peers.remove(&peer);
        // stop() queues a close_notify; a failed handshake has already sent its alert.
        self.endpoint.stop(now, peer);
        self.discard_transmits();
    }

    /// Forgets a handshaking peer's deadline and gauge entry (the peer itself stays).
    fn remove_handshake_entry(&mut self, peer: SocketAddr) -> bool {
        match self.peers.get(&peer) {
            Some(
                entry @ Peer {
                    phase: Phase::Handshaking { heard, .. },
                    ..
                },
            ) => {
                self.handshake_deadlines.remove(&(entry.deadline, peer));
                self.handshake_activity.remove(&(*heard, peer));
                self.stats.handshakes_in_progress =
                    self.stats.handshakes_in_progress.saturating_sub(1);
                true
            }
            _ => false,
        }
    }
}
