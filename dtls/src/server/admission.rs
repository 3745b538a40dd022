//! Admission of new peers: the ClientHello pre-check's second half, stateless HelloVerifyRequest
//! cookies (RFC 6347 §4.2.1), and creating the rtc-dtls connection for a cookie-verified hello.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use tracing::{debug, warn};

use super::{DtlsServer, Peer, Phase, SequenceShift};
use crate::cookie::{COOKIE_LEN, CookieCheck};
use crate::event::{CloseReason, DtlsEvent, HandshakeFailure};
use crate::wire::{self, ClientHello};

impl DtlsServer {
    pub(super) fn on_client_hello(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        hello: &ClientHello<'_>,
        datagram: &[u8],
    ) {
        if self.failures.is_blocked(now, peer) {
            // Too many failed handshakes from this address lately: not even a cookie.
            self.stats.dropped.rate_limited += 1;
            if let Some(suppressed) = self.bound_logs.rate_limited.allow(now) {
                warn!(
                    %peer,
                    suppressed,
                    total = self.stats.dropped.rate_limited,
                    "DTLS ClientHello dropped: the address is rate-limited after failed handshakes"
                );
            }
            return;
        }
        if let Some(existing) = self.peers.get(&peer)
            && existing.client_random[..] == *hello.random
        {
            match existing.phase {
                // A retransmitted cookie-bearing hello: rtc-dtls deals with it like any record of
                // the handshake it is running.
                Phase::Handshaking { .. } => self.on_records(now, peer, datagram),
                Phase::Established { .. } => self.stats.dropped.duplicate_client_hello += 1,
            }
            return;
        }
        if hello.cookie.is_empty() {
            self.send_hello_verify_request(now, peer, hello);
            return;
        }
        match self.cookies.check(now, peer, hello) {
            CookieCheck::Valid => {}
            CookieCheck::Expired => {
                self.stats.expired_cookies += 1;
                self.send_hello_verify_request(now, peer, hello);
                return;
            }
            CookieCheck::Invalid => {
                // RFC 6347 §4.2.1: a bad cookie is treated as no cookie.
                self.stats.invalid_cookies += 1;
                self.send_hello_verify_request(now, peer, hello);
                return;
            }
        }
        if hello.message_sequence != 1 {
            // rtc-dtls' server expects the hello answering its HelloVerifyRequest to be message 1.
            self.stats.dropped.unexpected_message_sequence += 1;
            return;
        }
        let replaces_handshake = matches!(
            self.peers.get(&peer),
            Some(Peer {
                phase: Phase::Handshaking { .. },
                ..
            })
        );
        if !replaces_handshake
            && self.stats.handshakes_in_progress >= self.config.max_handshakes
            && !self.evict_stalled_handshake(now)
        {
            self.stats.dropped.handshake_table_full += 1;
            if let Some(suppressed) = self.bound_logs.handshake_table_full.allow(now) {
                warn!(
                    %peer,
                    max_handshakes = self.config.max_handshakes,
                    suppressed,
                    total = self.stats.dropped.handshake_table_full,
                    "DTLS handshake table full: cookie-verified ClientHello dropped (the client retries)"
                );
            }
            return;
        }
        // The client has shown it receives datagrams at `peer`, so whatever we held for this
        // address is over: its owner restarted (RFC 6347 §4.2.8 — only now, not on a cookie-less
        // hello that anyone could spoof).
        match self.peers.get(&peer).map(|p| &p.phase) {
            Some(Phase::Established { .. }) => {
                self.stats.replaced_same_address += 1;
                self.end_session(now, peer, CloseReason::Replaced, false);
            }
            Some(Phase::Handshaking { .. }) => {
                self.fail_handshake(now, peer, HandshakeFailure::Superseded)
            }
            None => {}
        }
        self.start_handshake(now, peer, hello);
    }

    /// Makes room in a full handshake table by abandoning the handshake that has been quiet the
    /// longest, if nothing came from its peer for at least one retransmission interval: a
    /// genuine client answers each flight within a round trip (or retransmits its own), so a
    /// quiet handshake is a stalled one — a client that vanished, or a flooder that completes
    /// cookie exchanges and stops. Without this, a few hundred stalled handshakes per handshake
    /// timeout would lock every device out; with it, a flooder must keep `max_handshakes`
    /// handshakes talking to hold the table. Busy handshakes are never evicted, so a burst of
    /// genuine clients does not thrash: the new hello is dropped and its client retransmits.
    /// Returns whether a slot was freed.
    fn evict_stalled_handshake(&mut self, now: Instant) -> bool {
        let Some(&(heard, oldest)) = self.handshake_activity.first() else {
            return false;
        };
        if now.saturating_duration_since(heard) < self.config.retransmit_interval {
            return false;
        }
        self.stats.handshakes_evicted += 1;
        if let Some(suppressed) = self.bound_logs.handshake_evicted.allow(now) {
            warn!(
                evicted = %oldest,
                max_handshakes = self.config.max_handshakes,
                suppressed,
                total = self.stats.handshakes_evicted,
                "DTLS handshake table full: the oldest handshake in progress was abandoned for a new one"
            );
        }
        self.fail_handshake(now, oldest, HandshakeFailure::Evicted);
        true
    }

    fn send_hello_verify_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        hello: &ClientHello<'_>,
    ) {
        match self.cookies.mint(now, peer, hello) {
            Some(cookie) => {
                self.stats.hello_verify_requests += 1;
                self.transmits.push_back((
                    peer,
                    wire::hello_verify_request(
                        hello.record_version,
                        hello.record_sequence,
                        &cookie,
                    ),
                ));
            }
            None => debug!(%peer, "DTLS cookie MAC failed; ClientHello dropped"),
        }
    }

    /// Creates the rtc-dtls connection for a cookie-verified hello (see `cookie.rs` for how rtc-dtls
    /// is made to adopt our cookie) and feeds it the hello.
    fn start_handshake(&mut self, now: Instant, peer: SocketAddr, hello: &ClientHello<'_>) {
        let (Ok(cookie), Ok(client_random)) = (
            <[u8; COOKIE_LEN]>::try_from(hello.cookie),
            <[u8; 32]>::try_from(hello.random),
        ) else {
            return; // unreachable: the cookie verified and parse() checked the random's length
        };
        // rtc-dtls sees the first hello of the exchange (reconstructed: our cookie removed)...
        self.cookie_slot.arm(cookie);
        let first = hello.without_cookie(0);
        let result = self
            .endpoint
            .read(now, peer, None, BytesMut::from(&first[..]));
        let cookie_consumed = self.cookie_slot.disarm();
        // ...and answers it with a HelloVerifyRequest we already sent; check it carries our cookie.
        let mut adopted = cookie_consumed && result.is_ok();
        let mut transmits = 0;
        while let Some(transmit) = self.endpoint.poll_transmit() {
            transmits += 1;
            adopted &= wire::hello_verify_cookie(&transmit.message) == Some(&cookie[..]);
        }
        if !adopted || transmits != 1 {
            debug!(%peer, cookie_consumed, transmits, "rtc-dtls did not adopt our cookie");
            self.endpoint.stop(now, peer);
            self.discard_transmits();
            self.stats.handshakes_failed.internal += 1;
            self.events.push_back(DtlsEvent::HandshakeFailed {
                peer,
                claimed_identity: None,
                reason: HandshakeFailure::Internal,
            });
            return;
        }
        let deadline = now + self.config.handshake_timeout;
        // Its record sequence number must be above the reconstructed hello's 0 to pass the replay
        // window; record headers are not part of the handshake transcript.
        let hello_sequence = hello.record_sequence.max(1);
        self.peers.insert(
            peer,
            Peer {
                client_random,
                deadline,
                sequence_shift: SequenceShift::Pending { hello_sequence },
                phase: Phase::Handshaking {
                    started: now,
                    heard: now,
                    lookup: None,
                },
            },
        );
        self.handshake_deadlines.insert((deadline, peer));
        self.handshake_activity.insert((now, peer));
        self.stats.handshakes_started += 1;
        self.stats.handshakes_in_progress += 1;
        // Then the hello with the cookie, as if it answered rtc-dtls' own HelloVerifyRequest.
        let second = hello.with_record_sequence(hello_sequence);
        self.on_records(now, peer, &second);
    }
}
