//! The DTLS server: one per UDP socket. Demultiplexes peers by source address in front of one
//! rtc-dtls `Endpoint`, admits only cookie-verified ClientHellos, and owns the session table,
//! its bounds and its timers.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMap as FoldMap;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::Endpoint;
use rtc_shared::TransportProtocol;

use crate::config::{CipherSuite, ConfigError, DtlsServerConfig, PskStore};
use crate::cookie::{CookieInjectingProvider, CookieJar, CookieSlot};
use crate::event::{CloseReason, DtlsEvent, PskIdentity};
use crate::psk::{self, LookupRecorder};
use crate::stats::DtlsStats;
use crate::wire::{self, ClientHello};

mod admission;
mod lifecycle;
mod limits;

use self::limits::{FailureLimiter, Throttled};

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
        /// When a datagram from the peer was last processed (a stalled handshake goes quiet).
        heard: Instant,
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
    peers: FoldMap<SocketAddr, Peer>,
    /// Established sessions by identity, to notice the same device arriving from a new address.
    identities: FoldMap<PskIdentity, SocketAddr>,
    /// When each handshake next needs `handle_timeout` (retransmission or its overall timeout).
    handshake_deadlines: BTreeSet<(Instant, SocketAddr)>,
    /// When each handshake last heard from its peer: the quietest is evicted when the table is
    /// full.
    handshake_activity: BTreeSet<(Instant, SocketAddr)>,
    /// When each established session expires; also the least-recently-active order for eviction.
    idle_deadlines: BTreeSet<(Instant, SocketAddr)>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<DtlsEvent>,
    stats: DtlsStats,
    failures: FailureLimiter,
    bound_logs: BoundLogs,
}

/// One throttled log line per bound, so a flood yields a few lines a minute.
#[derive(Debug, Default)]
struct BoundLogs {
    handshake_table_full: Throttled,
    handshake_evicted: Throttled,
    session_evicted: Throttled,
    rate_limited: Throttled,
    address_blocked: Throttled,
    failure_table_full: Throttled,
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
            ("max_failure_addresses", config.max_failure_addresses),
            (
                "max_handshake_failures",
                config.max_handshake_failures as usize,
            ),
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
        let failures = FailureLimiter::new(
            config.max_handshake_failures,
            config.handshake_failure_window,
            config.max_failure_addresses,
        );
        Ok(Self {
            failures,
            bound_logs: BoundLogs::default(),
            config,
            endpoint,
            cookies,
            cookie_slot,
            lookups,
            peers: FoldMap::default(),
            identities: FoldMap::default(),
            handshake_deadlines: BTreeSet::new(),
            handshake_activity: BTreeSet::new(),
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
        [handshake, idle].into_iter().flatten().min()
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

    /// Source addresses whose failed handshakes are being counted, and how many of them are
    /// currently refused (for metrics; O(tracked addresses)).
    pub fn failure_table(&self) -> (usize, usize) {
        (self.failures.len(), self.failures.blocked())
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

    /// Whether the server holds any per-peer state for `peer` (a handshake or a session). A
    /// datagram from an address without state never creates any unless it is a ClientHello
    /// returning a valid cookie.
    pub fn holds_state_for(&self, peer: SocketAddr) -> bool {
        self.peers.contains_key(&peer)
    }

    /// Checks the server's bookkeeping against itself and its bounds: every peer is either a
    /// handshake or a session and counted in exactly one gauge, rtc-dtls holds a connection for
    /// each peer and for nothing else, each has one deadline, and every table is within its
    /// configured cap. For fuzz targets and tests; `Err` describes the first inconsistency.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let handshakes = self
            .peers
            .values()
            .filter(|p| matches!(p.phase, Phase::Handshaking { .. }))
            .count();
        let sessions = self.peers.len() - handshakes;
        let connections = self.endpoint.get_connections_keys().len();
        let checks = [
            (
                handshakes == self.stats.handshakes_in_progress,
                "handshake gauge",
            ),
            (sessions == self.stats.sessions, "session gauge"),
            (
                handshakes == self.handshake_deadlines.len(),
                "handshake deadlines",
            ),
            (sessions == self.idle_deadlines.len(), "idle deadlines"),
            (sessions == self.identities.len(), "identity index"),
            (connections == self.peers.len(), "rtc-dtls connections"),
            (handshakes <= self.config.max_handshakes, "max_handshakes"),
            (sessions <= self.config.max_sessions, "max_sessions"),
            (self.failures.is_consistent(), "failure table"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(format!(
                "{what}: {handshakes} handshakes, {sessions} sessions, {connections} rtc-dtls \
                 connections, {} handshake and {} idle deadlines, {} identities, stats {:?}",
                self.handshake_deadlines.len(),
                self.idle_deadlines.len(),
                self.identities.len(),
                self.stats
            )),
            None => Ok(()),
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
