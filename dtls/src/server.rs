//! The DTLS server: one per UDP socket. Demultiplexes peers by source address in front of one
//! rtc-dtls `Endpoint`, admits only cookie-verified ClientHellos, and owns the session table,
//! its bounds and its timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_shared::TransportProtocol;
use tracing::debug;

use crate::config::{CipherSuite, ConfigError, DtlsServerConfig, PskStore};
use crate::cookie::{COOKIE_LEN, CookieCheck, CookieInjectingProvider, CookieJar, CookieSlot};
use crate::event::{CloseReason, DtlsEvent, HandshakeFailure, PskIdentity};
use crate::psk::{self, LookupRecorder};
use crate::stats::DtlsStats;
use crate::wire::{self, ClientHello};

/// Largest plaintext one DTLS record carries (RFC 6347 §4.1 / RFC 5246 §6.2.1: 2^14).
pub const MAX_PLAINTEXT: usize = 1 << 14;

/// Why [`DtlsServer::send`] (or [`DtlsClient::send`](crate::DtlsClient::send)) refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No established session with that peer (none, or its handshake is still running).
    #[error("no established DTLS session with {0}")]
    NotConnected(SocketAddr),
    /// More than one record's worth of plaintext.
    #[error("{len} bytes exceed the {max}-byte DTLS record limit")]
    TooLarge {
        /// Bytes passed.
        len: usize,
        /// [`MAX_PLAINTEXT`].
        max: usize,
    },
    /// rtc-dtls refused to encrypt.
    #[error("DTLS write failed: {0}")]
    Dtls(String),
}

#[derive(Debug)]
struct Peer {
    /// The client random of the ClientHello that started this connection: a network duplicate of
    /// that hello must not restart anything.
    client_random: [u8; 32],
    /// This peer's entry in `handshake_deadlines` or `idle_deadlines` (by phase).
    deadline: Instant,
    /// Added to the sequence number of every epoch-0 record we send this peer. RFC 6347 §4.2.1:
    /// the initial ServerHello must carry the ClientHello's record sequence number (as our
    /// HelloVerifyRequest carried the first hello's), or the client's replay window may drop it
    /// as a repeat of our HelloVerifyRequest. rtc-dtls numbers from its own counter, so the first
    /// flight it emits fixes the shift: `Pending` holds the hello's sequence number until then.
    sequence_shift: SequenceShift,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum SequenceShift {
    Pending { hello_sequence: u64 },
    Fixed(u64),
}

#[derive(Debug)]
enum Phase {
    Handshaking {
        started: Instant,
        /// Set once the PSK callback ran: the claimed identity and whether the store knew it.
        lookup: Option<(PskIdentity, bool)>,
    },
    Established {
        identity: PskIdentity,
        suite: Option<CipherSuite>,
    },
}

/// A sans-I/O DTLS 1.2 PSK server for one UDP socket.
///
/// It performs no I/O and reads no clock. Call order, from the socket task:
///
/// 1. For each received datagram: [`handle_datagram(now, peer, bytes)`](Self::handle_datagram).
/// 2. When the time returned by [`poll_timeout`](Self::poll_timeout) is reached:
///    [`handle_timeout(now)`](Self::handle_timeout).
/// 3. To send application data to an established peer: [`send(now, peer, plaintext)`](Self::send);
///    to end a session: [`close(now, peer)`](Self::close).
/// 4. After any of the above, drain [`poll_transmit`](Self::poll_transmit) (send each datagram to
///    its address) and [`poll_event`](Self::poll_event) until both return `None`, then re-read
///    [`poll_timeout`](Self::poll_timeout) — every call may move it.
///
/// `now` must not go backwards between calls. Application data is only delivered between a
/// peer's [`DtlsEvent::Connected`] and its [`DtlsEvent::Closed`], always with the identity the
/// peer authenticated with.
pub struct DtlsServer {
    config: DtlsServerConfig,
    endpoint: Endpoint,
    cookies: CookieJar,
    cookie_slot: Arc<CookieSlot>,
    lookups: Arc<LookupRecorder>,
    peers: HashMap<SocketAddr, Peer>,
    /// Established sessions by identity, to notice the same device arriving from a new address.
    identities: HashMap<PskIdentity, SocketAddr>,
    /// When each handshake next needs `handle_timeout` (retransmission or its overall timeout).
    handshake_deadlines: BTreeSet<(Instant, SocketAddr)>,
    /// When each established session expires; also the least-recently-active order for eviction.
    idle_deadlines: BTreeSet<(Instant, SocketAddr)>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<DtlsEvent>,
    stats: DtlsStats,
}

impl fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsServer")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("queued_transmits", &self.transmits.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl DtlsServer {
    /// A server with `config`, looking keys up in `psk_store`.
    pub fn new(
        config: DtlsServerConfig,
        psk_store: Arc<dyn PskStore>,
    ) -> Result<Self, ConfigError> {
        if config.cipher_suites.is_empty() {
            return Err(ConfigError::NoCipherSuites);
        }
        for (name, value) in [
            ("max_sessions", config.max_sessions),
            ("max_handshakes", config.max_handshakes),
            ("mtu", config.mtu),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        let crypto = rtc_dtls::crypto_provider::default_provider()
            .map_err(|error| ConfigError::Crypto(error.to_string()))?;
        let cookie_slot = Arc::new(CookieSlot::default());
        let lookups = Arc::new(LookupRecorder::default());
        let cookies = CookieJar::new(crypto.as_ref(), config.cookie_lifetime.as_secs())
            .map_err(|error| ConfigError::Crypto(error.to_string()))?;

        let callback = psk::callback(psk_store, crypto.clone(), lookups.clone());
        let provider: Arc<dyn RTCCryptoProvider> =
            Arc::new(CookieInjectingProvider::new(crypto, cookie_slot.clone()));
        let handshake_config = ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_cipher_suites(
                config
                    .cipher_suites
                    .iter()
                    .map(|suite| suite.id())
                    .collect(),
            )
            .with_psk(Some(callback))
            // RFC 7627 extended master secret when the client offers it; LwM2M clients built on
            // older tinydtls do not.
            .with_extended_master_secret(ExtendedMasterSecretType::Request)
            .with_flight_interval(config.retransmit_interval)
            .with_mtu(config.mtu)
            .build(false, None)
            .map_err(|error| ConfigError::Dtls(error.to_string()))?;
        let endpoint = Endpoint::new(
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            TransportProtocol::UDP,
            Some(Arc::new(handshake_config)),
        );
        Ok(Self {
            config,
            endpoint,
            cookies,
            cookie_slot,
            lookups,
            peers: HashMap::new(),
            identities: HashMap::new(),
            handshake_deadlines: BTreeSet::new(),
            idle_deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: DtlsStats::default(),
        })
    }

    /// Processes one datagram received from `peer`.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        match ClientHello::parse(datagram) {
            Ok(hello) => self.on_client_hello(now, peer, &hello, datagram),
            Err(_) if self.peers.contains_key(&peer) => self.on_records(now, peer, datagram),
            Err(reason) => {
                // The pre-check: from an address we hold nothing for, only a ClientHello may cost
                // us anything.
                if reason.is_other_traffic() {
                    self.stats.dropped.not_client_hello += 1;
                } else {
                    self.stats.dropped.malformed_client_hello += 1;
                }
            }
        }
    }

    /// Runs retransmissions, handshake timeouts and idle expiry due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .handshake_deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, peer)| *peer)
            .collect();
        for peer in due {
            self.on_handshake_timer(now, peer);
        }
        let due: Vec<SocketAddr> = self
            .idle_deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, peer)| *peer)
            .collect();
        for peer in due {
            self.stats.idle_expirations += 1;
            self.end_session(now, peer, CloseReason::IdleTimeout, true);
        }
    }

    /// The next datagram to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self
            .handshake_deadlines
            .first()
            .map(|(deadline, _)| *deadline);
        let idle = self.idle_deadlines.first().map(|(deadline, _)| *deadline);
        match (handshake, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Encrypts `plaintext` as one application-data record to the established `peer`.
    pub fn send(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        plaintext: &[u8],
    ) -> Result<(), SendError> {
        if !matches!(
            self.peers.get(&peer),
            Some(Peer {
                phase: Phase::Established { .. },
                ..
            })
        ) {
            return Err(SendError::NotConnected(peer));
        }
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SendError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            });
        }
        let result = self.endpoint.write(now, peer, plaintext);
        self.forward_transmits();
        result.map_err(|error| SendError::Dtls(error.to_string()))
    }

    /// Ends `peer`'s session with a close_notify (or abandons its handshake). An established
    /// session reports `Closed { reason: ClosedLocally }`.
    pub fn close(&mut self, now: Instant, peer: SocketAddr) {
        match self.peers.get(&peer).map(|p| &p.phase) {
            Some(Phase::Established { .. }) => {
                self.stats.local_closes += 1;
                self.end_session(now, peer, CloseReason::ClosedLocally, true);
            }
            Some(Phase::Handshaking { .. }) => {
                self.remove_handshake(now, peer);
            }
            None => {}
        }
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> &DtlsStats {
        &self.stats
    }

    /// The authenticated identity of `peer`'s established session.
    pub fn identity_of(&self, peer: SocketAddr) -> Option<&PskIdentity> {
        match &self.peers.get(&peer)?.phase {
            Phase::Established { identity, .. } => Some(identity),
            Phase::Handshaking { .. } => None,
        }
    }

    /// The cipher suite `peer`'s established session negotiated.
    pub fn cipher_suite_of(&self, peer: SocketAddr) -> Option<CipherSuite> {
        match &self.peers.get(&peer)?.phase {
            Phase::Established { suite, .. } => *suite,
            Phase::Handshaking { .. } => None,
        }
    }

    /// The address `identity` is connected from, if it has an established session.
    pub fn peer_of(&self, identity: &PskIdentity) -> Option<SocketAddr> {
        self.identities.get(identity).copied()
    }

    fn on_client_hello(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        hello: &ClientHello<'_>,
        datagram: &[u8],
    ) {
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
        if !replaces_handshake && self.stats.handshakes_in_progress >= self.config.max_handshakes {
            self.stats.dropped.handshake_table_full += 1;
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
                    wire::hello_verify_request(hello.record_sequence, &cookie),
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
                    lookup: None,
                },
            },
        );
        self.handshake_deadlines.insert((deadline, peer));
        self.stats.handshakes_started += 1;
        self.stats.handshakes_in_progress += 1;
        // Then the hello with the cookie, as if it answered rtc-dtls' own HelloVerifyRequest.
        let second = hello.with_record_sequence(hello_sequence);
        self.on_records(now, peer, &second);
    }

    /// Feeds a datagram from a known peer to rtc-dtls and acts on the outcome.
    fn on_records(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        let Some(established) = self
            .peers
            .get(&peer)
            .map(|p| matches!(p.phase, Phase::Established { .. }))
        else {
            return;
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
        self.reschedule_handshake(peer);
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
        // records never get this far.
        let deadline = now + self.config.idle_timeout;
        if deadline != entry.deadline {
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

    fn on_handshake_timer(&mut self, now: Instant, peer: SocketAddr) {
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
    fn end_session(&mut self, now: Instant, peer: SocketAddr, reason: CloseReason, notify: bool) {
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
    fn fail_handshake(&mut self, now: Instant, peer: SocketAddr, reason: HandshakeFailure) {
        let claimed_identity = match self.peers.get(&peer).map(|p| &p.phase) {
            Some(Phase::Handshaking { lookup, .. }) => {
                lookup.as_ref().map(|(identity, _)| identity.clone())
            }
            _ => return,
        };
        self.remove_handshake(now, peer);
        let failures = &mut self.stats.handshakes_failed;
        *match reason {
            HandshakeFailure::Timeout => &mut failures.timeout,
            HandshakeFailure::BadKey => &mut failures.bad_key,
            HandshakeFailure::UnknownIdentity => &mut failures.unknown_identity,
            HandshakeFailure::PeerAborted => &mut failures.peer_aborted,
            HandshakeFailure::Protocol => &mut failures.protocol,
            HandshakeFailure::Superseded => &mut failures.superseded,
            HandshakeFailure::Internal => &mut failures.internal,
        } += 1;
        self.events.push_back(DtlsEvent::HandshakeFailed {
            peer,
            claimed_identity,
            reason,
        });
    }

    /// Removes a handshaking peer and its rtc-dtls connection, without an event.
    fn remove_handshake(&mut self, now: Instant, peer: SocketAddr) {
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
                    phase: Phase::Handshaking { .. },
                    ..
                },
            ) => {
                self.handshake_deadlines.remove(&(entry.deadline, peer));
                self.stats.handshakes_in_progress =
                    self.stats.handshakes_in_progress.saturating_sub(1);
                true
            }
            _ => false,
        }
    }

    fn forward_transmits(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            let peer = transmit.transport.peer_addr;
            let mut datagram = Vec::from(transmit.message);
            self.shift_sequences(peer, &mut datagram);
            self.transmits.push_back((peer, datagram));
        }
    }

    fn shift_sequences(&mut self, peer: SocketAddr, datagram: &mut [u8]) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let shift = match entry.sequence_shift {
            SequenceShift::Fixed(shift) => shift,
            SequenceShift::Pending { hello_sequence } => {
                match wire::first_epoch0_sequence(datagram) {
                    Some(first) => {
                        let shift = hello_sequence.saturating_sub(first);
                        entry.sequence_shift = SequenceShift::Fixed(shift);
                        shift
                    }
                    None => return,
                }
            }
        };
        if shift != 0 {
            wire::shift_epoch0_sequences(datagram, shift);
        }
    }

    fn discard_transmits(&mut self) {
        while self.endpoint.poll_transmit().is_some() {}
    }
}
