//! The LwM2M server side of the sans-I/O engine: the Client Registration interface (OMA LwM2M TS
//! Core 1.1 §6.2, TS 1.0 §5.3), device-management and information-reporting operations sent to
//! registered clients (§6.3, §6.4), the clients' Send (§6.4.6), and queue mode, on top of one
//! [`CoapEndpoint`]. [`Lwm2mServer`] is the entry point; its documentation gives the call order.
//!
//! Code map: `rd` (Register / Update / De-register), `lifecycle` (restore, removal, expiry, what
//! ending a registration ends), `send` (`/dp`), `dm` (sending, queueing and answering
//! operations), `mapping` (operations as CoAP requests, responses as typed content), `formats`
//! (which content format a client gets), `registrations`, `ops`, `events`, `config` (the public
//! types), `timers`.

mod commit;
mod config;
mod dm;
mod events;
mod formats;
mod lifecycle;
mod mapping;
mod ops;
mod rd;
mod registrations;
mod send;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foldhash::HashMap as FoldMap;
use lwm2m_objects::ContentFormat as Format;
use rustc_hash::FxHashMap;

use self::mapping::{Expect, ObserveTarget};
use crate::coap::{CoapEndpoint, EndpointStats, Event, RequestId, Responder, Transmit};
use crate::lwm2m::registration::RegisterParams;
use crate::rng::Rng;
use crate::timers::Timers;

pub use self::commit::{Change, CommitError, CommitTicket};
pub use self::config::ServerConfig;
pub use self::dm::{ObservationInfo, QueuedOpInfo};
pub use self::events::{
    ObservationEndReason, RefusalReason, RegistrationTicket, Rejection, SendRefusal, ServerEvent,
};
pub use self::lifecycle::{ObservationRecord, RestoreError, RestoreObservationError};
pub use self::ops::{Content, ObservationId, OpError, OpId, OpOutcome, Operation, WriteMode};
pub use self::rd::TicketError;
pub use self::registrations::{
    PeerAuth, RegisteredObjects, Registration, RegistrationId, RestoredRegistration,
};

/// Deadlines the server keeps beside the CoAP layer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKey {
    /// The registration's lifetime (+ grace) ran out.
    Lifetime(RegistrationId),
    /// A queued request's expiry.
    QueuedOp(RegistrationId, OpId),
    /// An unanswered Register ticket is forgotten.
    Ticket(RegistrationTicket),
    /// A staged change's commit never came.
    Commit(CommitTicket),
}

/// A Register waiting for the application's verdict.
#[derive(Debug)]
struct PendingRegister {
    responder: Responder,
    peer: SocketAddr,
    auth: PeerAuth,
    params: RegisterParams,
    objects: RegisteredObjects,
}

/// A request waiting for its client.
#[derive(Debug, Clone)]
struct QueuedOp {
    op: OpId,
    operation: Operation,
    expires_at: Instant,
}

/// A request on the wire.
#[derive(Debug)]
struct InFlight {
    op: OpId,
    registration: RegistrationId,
    /// Kept so that a queue-mode request that timed out (the client fell asleep) can go back to
    /// the queue.
    operation: Operation,
    expires_at: Instant,
    expect: Expect,
    format: Format,
    observe: Option<ObserveTarget>,
}

/// An established observation.
#[derive(Debug)]
struct Observation {
    registration: RegistrationId,
    request: RequestId,
    target: ObserveTarget,
    format: Format,
    /// Set while a proactive cancellation is under way.
    cancel_op: Option<OpId>,
}

/// Everything kept per registration.
#[derive(Debug)]
struct RegState {
    reg: Registration,
    /// Lifetime end plus grace.
    expires_at: Instant,
    /// Queue mode: the client is reachable until then.
    awake_until: Instant,
    in_flight: Vec<RequestId>,
    waiting: VecDeque<QueuedOp>,
    observations: Vec<ObservationId>,
}

impl RegState {
    fn reachable(&self, now: Instant) -> bool {
        !self.reg.binding.queue || now < self.awake_until
    }
}

/// Sizes of the server's state, for monitoring and for checking the memory bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerStats {
    /// Registrations.
    pub registrations: usize,
    /// Register requests waiting for the application.
    pub pending_registrations: usize,
    /// Registers, Updates and De-registers waiting for the application's commit.
    pub pending_commits: usize,
    /// Operations on the wire.
    pub in_flight_ops: usize,
    /// Operations waiting in queues.
    pub queued_ops: usize,
    /// Established observations.
    pub observations: usize,
    /// Armed timers of the LwM2M layer.
    pub timers: usize,
    /// The CoAP layer's sizes.
    pub coap: EndpointStats,
}

/// Estimated memory held by the server, from its collections' capacities plus per-entry
/// estimates for the CoAP layer's private state (see [`Lwm2mServer::memory_estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEstimate {
    /// Registrations counted.
    pub registrations: usize,
    /// Bytes held by the LwM2M layer (registrations, indexes, timers, operations).
    pub lwm2m_bytes: usize,
    /// Bytes estimated for the CoAP layer (per-peer state, deduplication, exchanges, timers).
    pub coap_bytes: usize,
}

impl MemoryEstimate {
    /// Bytes per registration, everything included (0 without registrations).
    pub fn per_registration(&self) -> usize {
        (self.lwm2m_bytes + self.coap_bytes)
            .checked_div(self.registrations)
            .unwrap_or(0)
    }
}

/// Per-entry estimates for the CoAP layer's state, whose types are private to it: key + value +
/// hash-table overhead at typical load, plus typical heap (a deduplicated message keeps its
/// ~40-byte reply for EXCHANGE_LIFETIME).
const COAP_PEER_STATE_BYTES: usize = 112;
const COAP_DEDUP_ENTRY_BYTES: usize = 200;
const COAP_EXCHANGE_BYTES: usize = 480;
const COAP_OTHER_ENTRY_BYTES: usize = 160;

/// The longest deadline set, so `Instant` arithmetic never overflows (lifetimes may be given up
/// to u32::MAX seconds).
const MAX_DEADLINE: Duration = Duration::from_secs(10 * 365 * 86_400);

fn deadline(now: Instant, after: Duration) -> Instant {
    let after = after.min(MAX_DEADLINE);
    now.checked_add(after).unwrap_or(now)
}

/// An LwM2M server bound to one socket: a sans-I/O state machine in the style of quinn-proto.
/// The NoSec socket and the DTLS socket each get one.
///
/// # Call order
///
/// The I/O shell owns the socket (and the DTLS sessions) and the clock, and loops:
///
/// 1. Feed inputs, each with the current time: [`handle_datagram`](Self::handle_datagram) for every
///    datagram received, with the peer's [`PeerAuth`] (NoSec, or the PSK identity its DTLS session
///    proved); [`handle_timeout`](Self::handle_timeout) when the deadline from `poll_timeout` has
///    passed; and the application's calls: [`accept_registration`](Self::accept_registration) /
///    [`reject_registration`](Self::reject_registration) for each
///    [`ServerEvent::RegistrationRequest`], [`request`](Self::request) for operations,
///    [`restore_registration`](Self::restore_registration) after a restart,
///    [`remove_registration`](Self::remove_registration); and, with
///    [`ServerConfig::persist_before_answer`] set, [`commit_succeeded`](Self::commit_succeeded) /
///    [`commit_failed`](Self::commit_failed) for each [`ServerEvent::PersistChange`] once its
///    write has committed (or failed), in the order the events came.
/// 2. After any input, drain [`poll_transmit`](Self::poll_transmit) (send each datagram, through
///    the peer's DTLS session on a DTLS socket) and [`poll_event`](Self::poll_event) (hand each
///    event to the application; its answers are more inputs: go to 1).
/// 3. Re-arm the timer with [`poll_timeout`](Self::poll_timeout); it can move after any input.
///
/// The engine never reads the clock: `now` must not go backwards. Registration IDs come from a
/// generator seeded by the caller: use an unpredictable seed in production (on NoSec the ID is
/// what stops another host from updating or de-registering a device), a fixed one in tests.
///
/// Answering a Register is asynchronous: the CoAP layer acknowledges the request after
/// [`crate::coap::CoapConfig::empty_ack_delay`] and sends the verdict as a separate response, so
/// the application may check its store first.
///
/// Acknowledged means durable: with [`ServerConfig::persist_before_answer`] set, an accepted
/// Register, an Update and a De-register become a [`ServerEvent::PersistChange`] instead of taking
/// effect. The registration the engine serves (and the client's 2.01 / 2.04 / 2.02) changes only
/// at [`commit_succeeded`](Self::commit_succeeded), after the application has stored the change;
/// [`commit_failed`](Self::commit_failed), or no commit within the configured delay
/// ([`ServerEvent::CommitTimedOut`]), answers 5.03 and changes nothing. See `commit.rs`.
///
/// # Example
///
/// A device (a bare [`CoapEndpoint`]) registers; the application accepts it:
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Instant;
/// use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, ContentFormat, Event, Request};
/// use lwm2m_proto::lwm2m::server::{Lwm2mServer, PeerAuth, ServerConfig, ServerEvent};
///
/// let now = Instant::now();
/// let server_addr = SocketAddr::from(([192, 0, 2, 1], 5683));
/// let device_addr = SocketAddr::from(([192, 0, 2, 7], 40000));
/// let mut server = Lwm2mServer::new(ServerConfig::default(), 1);
/// let mut device = CoapEndpoint::new(CoapConfig::default(), 2);
///
/// let register = Request::post()
///     .with_path(["rd"])
///     .with_query("ep=meter-7")
///     .with_query("lwm2m=1.1")
///     .with_content_format(ContentFormat::LINK_FORMAT)
///     .with_payload("</1/0>,</3/0>,</10243/0>");
/// device.request(now, server_addr, register);
/// while let Some(t) = device.poll_transmit() {
///     server.handle_datagram(now, device_addr, PeerAuth::NoSec, &t.bytes);
/// }
/// let Some(ServerEvent::RegistrationRequest { ticket, params, .. }) = server.poll_event() else {
///     panic!("expected a Register");
/// };
/// assert_eq!(params.endpoint, "meter-7");
/// // … the application checks its store, then:
/// let id = server.accept_registration(now, ticket).expect("still pending");
/// assert!(matches!(server.poll_event(), Some(ServerEvent::Registered { replaced: None, .. })));
/// while let Some(t) = server.poll_transmit() {
///     device.handle_datagram(now, server_addr, &t.bytes);
/// }
/// match device.poll_event() {
///     Some(Event::Response { response, .. }) => {
///         assert_eq!(response.code, Code::CREATED);
///         assert_eq!(response.location_path(), ["rd".to_string(), id.to_string()]);
///     }
///     other => panic!("expected 2.01, got {other:?}"),
/// }
/// ```
///
/// # Memory
///
/// Every collection a peer can grow is capped (see [`ServerConfig`]);
/// [`memory_estimate`](Self::memory_estimate) reports the bytes held per registration (about 1 KB
/// for an idle registered meter, CoAP per-peer state included).
#[derive(Debug)]
pub struct Lwm2mServer {
    config: ServerConfig,
    coap: CoapEndpoint,
    rng: Rng,
    timers: Timers<TimerKey>,
    events: VecDeque<ServerEvent>,
    registrations: FxHashMap<RegistrationId, RegState>,
    by_endpoint: FoldMap<String, RegistrationId>,
    by_peer: FoldMap<SocketAddr, RegistrationId>,
    tickets: FxHashMap<RegistrationTicket, PendingRegister>,
    next_ticket: u64,
    requests: FxHashMap<RequestId, InFlight>,
    observations: FxHashMap<ObservationId, Observation>,
    observation_by_request: FxHashMap<RequestId, ObservationId>,
    next_op: u64,
    next_observation: u64,
    /// Changes waiting for the application's commit (`commit.rs`).
    commits: FxHashMap<CommitTicket, commit::PendingCommit>,
    /// Endpoints with changes in `commits`, and what they are.
    commit_endpoints: FoldMap<String, commit::Staged>,
    next_commit: u64,
}

impl Lwm2mServer {
    /// A new server. `seed` drives registration IDs and the CoAP layer's tokens and message IDs.
    pub fn new(config: ServerConfig, seed: u64) -> Lwm2mServer {
        let mut rng = Rng::new(seed);
        let coap_seed = rng.next_u64();
        Lwm2mServer {
            coap: CoapEndpoint::new(config.coap.clone(), coap_seed),
            config,
            rng,
            timers: Timers::new(),
            events: VecDeque::new(),
            registrations: FxHashMap::default(),
            by_endpoint: FoldMap::default(),
            by_peer: FoldMap::default(),
            tickets: FxHashMap::default(),
            next_ticket: 0,
            requests: FxHashMap::default(),
            observations: FxHashMap::default(),
            observation_by_request: FxHashMap::default(),
            next_op: 0,
            next_observation: 0,
            commits: FxHashMap::default(),
            commit_endpoints: FoldMap::default(),
            next_commit: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Processes one received datagram from `peer`, authenticated as `auth`. Malformed datagrams
    /// are answered as RFC 7252 requires (RST or silence) and never panic.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: PeerAuth,
        bytes: &[u8],
    ) {
        self.coap.handle_datagram(now, peer, bytes);
        self.drain_coap(now, Some((peer, &auth)));
    }

    /// Processes every timer due at `now`: CoAP retransmissions and deadlines, registration
    /// lifetimes, queued-request expiry, forgotten Register tickets, commits that never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.coap.handle_timeout(now);
        self.drain_coap(now, None);
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Lifetime(id) => self.on_lifetime_end(now, id),
                TimerKey::QueuedOp(id, op) => self.on_queued_op_expired(id, op),
                TimerKey::Ticket(ticket) => {
                    // The CoAP layer has forgotten the request by now; the client will retry.
                    self.tickets.remove(&ticket);
                }
                TimerKey::Commit(ticket) => self.on_commit_timeout(now, ticket),
            }
        }
        self.drain_coap(now, None);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.coap.poll_transmit()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.coap.poll_timeout(), self.timers.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The registration of `endpoint`, if registered.
    pub fn registration(&self, endpoint: &str) -> Option<&Registration> {
        let id = self.by_endpoint.get(endpoint)?;
        self.registrations.get(id).map(|s| &s.reg)
    }

    /// The registration with ID `id`.
    pub fn registration_by_id(&self, id: RegistrationId) -> Option<&Registration> {
        self.registrations.get(&id).map(|s| &s.reg)
    }

    /// Every registration, in no particular order.
    pub fn registrations(&self) -> impl Iterator<Item = &Registration> + '_ {
        self.registrations.values().map(|s| &s.reg)
    }

    /// Whether `endpoint` can be sent requests now: registered and, in queue mode, within its
    /// awake window.
    pub fn is_reachable(&self, now: Instant, endpoint: &str) -> bool {
        self.by_endpoint
            .get(endpoint)
            .and_then(|id| self.registrations.get(id))
            .is_some_and(|s| s.reachable(now))
    }

    /// Sizes of the internal state.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            registrations: self.registrations.len(),
            pending_registrations: self.tickets.len(),
            pending_commits: self.commits.len(),
            in_flight_ops: self.requests.len(),
            queued_ops: self.registrations.values().map(|s| s.waiting.len()).sum(),
            observations: self.observations.len(),
            timers: self.timers.len(),
            coap: self.coap.stats(),
        }
    }

    /// Estimates the memory held: the LwM2M layer from its collections' capacities and the heap
    /// of each registration; the CoAP layer from its entry counts times per-entry estimates
    /// (its types are private). Events not yet polled are not counted.
    pub fn memory_estimate(&self) -> MemoryEstimate {
        fn table<K, V, S>(map: &HashMap<K, V, S>) -> usize {
            map.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        let mut lwm2m = table(&self.registrations)
            + table(&self.by_endpoint)
            + table(&self.by_peer)
            + table(&self.tickets)
            + table(&self.requests)
            + table(&self.observations)
            + table(&self.observation_by_request)
            + table(&self.commits)
            + table(&self.commit_endpoints)
            + self.timers.heap_bytes();
        for state in self.registrations.values() {
            lwm2m += state.reg.heap_bytes()
                + state.in_flight.capacity() * std::mem::size_of::<RequestId>()
                + state.waiting.capacity() * std::mem::size_of::<QueuedOp>()
                + state.observations.capacity() * std::mem::size_of::<ObservationId>();
        }
        lwm2m += self.by_endpoint.keys().map(String::capacity).sum::<usize>();
        let c = self.coap.stats();
        let coap = c.peer_states * COAP_PEER_STATE_BYTES
            + c.dedup_entries * COAP_DEDUP_ENTRY_BYTES
            + c.exchanges * COAP_EXCHANGE_BYTES
            + (c.pending_requests + c.sent_messages + c.observations + c.timers)
                * COAP_OTHER_ENTRY_BYTES
            + c.block1_bytes
            + c.block2_cache_bytes;
        MemoryEstimate {
            registrations: self.registrations.len(),
            lwm2m_bytes: lwm2m,
            coap_bytes: coap,
        }
    }

    /// Hands the CoAP layer's events to their handlers. `origin` is the sender of the datagram
    /// being processed: only a datagram yields incoming requests, and its auth applies to them.
    fn drain_coap(&mut self, now: Instant, origin: Option<(SocketAddr, &PeerAuth)>) {
        while let Some(event) = self.coap.poll_event() {
            match event {
                Event::Request {
                    peer,
                    request,
                    responder,
                } => match origin {
                    Some((from, auth)) if from == peer => {
                        self.on_request(now, peer, auth, request, responder);
                    }
                    // Cannot happen (requests come out of handle_datagram); answer rather
                    // than leave the client waiting.
                    _ => self.answer(
                        now,
                        responder,
                        crate::coap::Response::new(crate::coap::Code::INTERNAL_SERVER_ERROR),
                    ),
                },
                Event::Response { id, response } => self.on_response(now, id, response),
                Event::Notification { id, response, seq } => {
                    self.on_notification(now, id, response, seq);
                }
                Event::ObservationEnded { id, response } => {
                    self.on_observation_ended(now, id, response);
                }
                Event::RequestFailed { id, reason } => self.on_request_failed(now, id, reason),
                // This server serves no observations of its own.
                Event::ObserverGone { .. } => {}
            }
        }
    }

    /// Sends a response; a request the CoAP layer has already forgotten needs none.
    fn answer(&mut self, now: Instant, responder: Responder, response: crate::coap::Response) {
        // Err means the request expired or the response could not be encoded; either way
        // there is nobody left to tell.
        let _ = self.coap.respond(now, responder, response);
    }
}
