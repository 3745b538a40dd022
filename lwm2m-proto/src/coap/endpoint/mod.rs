//! The CoAP endpoint state machine (RFC 7252 §4–5, RFC 7641, RFC 7959), sans I/O: one
//! [`CoapEndpoint`] per socket, acting as client and server at once.

mod client;
mod config;
mod dedup;
mod server;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foldhash::HashMap as FoldMap;
use rustc_hash::FxHashMap;
use thiserror::Error;

use self::client::ClientExchange;
use self::dedup::{DedupCache, Seen};
use self::server::{Block1Assemblies, Block2Cache, PendingRequest};
use super::message::{Code, EncodeError, Message, MessageType, Token};
use super::option::BlockOptionError;
use super::request::{Request, Response};
use crate::rng::Rng;
use crate::timers::Timers;

pub use self::config::CoapConfig;

/// Identifies a request sent with [`CoapEndpoint::request`] in the events that answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: SocketAddr,
    /// The encoded CoAP message.
    pub bytes: Vec<u8>,
}

/// The handle to answer one incoming request with [`CoapEndpoint::respond`]. Not `Clone`: a
/// request is answered once.
#[derive(Debug, PartialEq, Eq)]
pub struct Responder {
    id: u64,
    peer: SocketAddr,
    token: Token,
}

impl Responder {
    /// Who sent the request.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The request's token; with [`Responder::peer`] it names an observation for
    /// [`CoapEndpoint::notify`] (RFC 7641 §4.1).
    pub fn token(&self) -> Token {
        self.token
    }
}

/// Something the application must know about, from [`CoapEndpoint::poll_event`].
#[derive(Debug)]
pub enum Event {
    /// A peer sent a request (a Block1 body already reassembled). Answer with
    /// [`CoapEndpoint::respond`].
    Request {
        /// Sender.
        peer: SocketAddr,
        /// The request.
        request: Request,
        /// Handle for the answer.
        responder: Responder,
    },
    /// The response to a request (a Block2 body already reassembled). For an Observe
    /// registration that the server accepted (the response carries Observe), notifications
    /// follow as [`Event::Notification`].
    Response {
        /// The request.
        id: RequestId,
        /// The response.
        response: Response,
    },
    /// A fresh notification of an established observation (RFC 7641 §3.2); reordered and
    /// duplicate notifications are filtered out (§3.4).
    Notification {
        /// The Observe registration request.
        id: RequestId,
        /// The notification.
        response: Response,
        /// Its Observe sequence number.
        seq: u32,
    },
    /// An observation ended: the server sent a response without Observe (RFC 7641 §3.2), or a
    /// proactive cancellation completed (`response` is its answer, or `None` if it got none).
    ObservationEnded {
        /// The Observe registration request.
        id: RequestId,
        /// The final response, if one arrived.
        response: Option<Response>,
    },
    /// A request failed; no further events for `id`.
    RequestFailed {
        /// The request.
        id: RequestId,
        /// Why.
        reason: FailureReason,
    },
    /// An observer of ours went away: it rejected a notification with RST (RFC 7641 §3.6) or a
    /// Confirmable notification was never acknowledged (§4.5). Stop notifying (`peer`, `token`).
    ObserverGone {
        /// The observer.
        peer: SocketAddr,
        /// The observation's token.
        token: Token,
        /// RST or timeout.
        reason: FailureReason,
    },
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FailureReason {
    /// No ACK after MAX_RETRANSMIT retransmissions, or no response in time.
    #[error("timed out")]
    Timeout,
    /// The peer rejected the request with RST.
    #[error("reset by peer")]
    Reset,
    /// The block-wise response body exceeds [`CoapConfig::max_body_size`].
    #[error("response body larger than {limit} bytes")]
    ResponseTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The block-wise transfer broke.
    #[error("block-wise transfer failed: {0}")]
    BlockTransfer(BlockFailure),
    /// The response carried a critical option we do not understand (RFC 7252 §5.4.1).
    #[error("response rejected: unsupported critical option {option}")]
    ResponseRejected {
        /// The option number.
        option: u16,
    },
    /// The request could not be encoded.
    #[error("request cannot be encoded: {0}")]
    Encode(EncodeError),
}

/// How a block-wise transfer broke (RFC 7959).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BlockFailure {
    /// A block arrived for the wrong offset.
    #[error("expected the block at offset {expected}, got offset {got}")]
    UnexpectedBlock {
        /// Bytes received so far.
        expected: usize,
        /// Offset of the block that arrived.
        got: usize,
    },
    /// A block other than the last was not full size (RFC 7959 §2.2).
    #[error("non-final block of {len} bytes, expected {size}")]
    ShortBlock {
        /// Its length.
        len: usize,
        /// The block size.
        size: usize,
    },
    /// The representation kept changing (ETag differs between blocks, RFC 7959 §2.4).
    #[error("the representation changed during the transfer")]
    RepresentationChanged,
    /// The Block option was invalid.
    #[error("invalid block option: {0}")]
    InvalidOption(BlockOptionError),
    /// The server answered 2.31 Continue to something we did not expect it for.
    #[error("unexpected 2.31 Continue")]
    UnexpectedContinue,
    /// A follow-up block request was answered without a Block2 option.
    #[error("block response without Block2 option")]
    MissingBlockOption,
}

/// Why [`CoapEndpoint::respond`] or [`CoapEndpoint::notify`] failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RespondError {
    /// The request is no longer pending (answered, or forgotten after
    /// [`CoapConfig::pending_request_timeout`]).
    #[error("the request is no longer pending")]
    Expired,
    /// The response could not be encoded.
    #[error("response cannot be encoded: {0}")]
    Encode(EncodeError),
    /// The code is not a response code (class 2, 4 or 5); the request stays pending.
    #[error("{0} is not a response code")]
    NotAResponseCode(Code),
}

/// How [`CoapEndpoint::cancel_observe`] ends an observation (RFC 7641 §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelMode {
    /// Forget it now; the next notification is answered with RST. No event follows.
    Reactive,
    /// Send a GET with Observe = 1 and the same token; [`Event::ObservationEnded`] follows.
    Proactive,
}

/// Sizes of the endpoint's state, for monitoring and for checking the memory bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Outgoing requests and observations not finished.
    pub exchanges: usize,
    /// Incoming requests waiting for [`CoapEndpoint::respond`].
    pub pending_requests: usize,
    /// Remembered (peer, message ID) pairs.
    pub dedup_entries: usize,
    /// Sent messages awaiting ACK/RST.
    pub sent_messages: usize,
    /// Incoming Block1 bodies being reassembled, and their bytes.
    pub block1_assemblies: usize,
    /// Bytes held by Block1 reassembly.
    pub block1_bytes: usize,
    /// Cached block-wise responses, and their bytes.
    pub block2_cache_entries: usize,
    /// Bytes held by the Block2 cache.
    pub block2_cache_bytes: usize,
    /// Per-peer message-ID and NSTART state.
    pub peer_states: usize,
    /// Server-side observations whose request key is remembered.
    pub observations: usize,
    /// Armed timers.
    pub timers: usize,
    /// Datagrams and events not yet polled.
    pub queued_outputs: usize,
    /// Confirmable messages retransmitted since the endpoint was created (a counter, not a
    /// size: RFC 7252 §4.2 retransmissions, for the server's metrics).
    pub retransmissions: u64,
}

/// A timer of the endpoint other than a sent message's (those are in
/// [`CoapEndpoint::sent_due`]). Every key is a counter of ours, so they are hashed fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKey {
    /// Give up waiting for a response.
    Deadline(RequestId),
    /// Send an Empty ACK for a request the application has not answered yet.
    EmptyAck(u64),
    /// Forget a request the application never answered.
    PendingExpiry(u64),
}

/// Who a sent message belongs to, so an ACK, RST or timeout reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SentOwner {
    Request(RequestId),
    SeparateResponse,
    Notification(Token),
}

/// A message we sent and may retransmit (CON) or match a RST against (NON).
#[derive(Debug)]
struct SentMessage {
    owner: SentOwner,
    confirmable: bool,
    /// The datagram, kept for retransmission (empty for NON).
    bytes: Vec<u8>,
    retransmits: u32,
    timeout: Duration,
    /// When to retransmit (CON) or forget (NON) it: its entry in [`CoapEndpoint::sent_due`].
    due: Instant,
}

/// Per-peer message IDs and NSTART accounting.
#[derive(Debug)]
struct PeerState {
    next_mid: u16,
    /// Interactions outstanding (RFC 7252 §4.7).
    outstanding: usize,
    /// Requests waiting for an NSTART slot, in order.
    queue: VecDeque<RequestId>,
}

/// A CoAP endpoint bound to one socket: a sans-I/O state machine in the style of quinn-proto.
///
/// # Call order
///
/// The driver (a UDP or DTLS task in `server` / `client-sim`, or a test) owns the socket and the
/// clock and loops:
///
/// 1. Feed inputs, each with the current time: [`handle_datagram`](Self::handle_datagram) for
///    every datagram received, [`handle_timeout`](Self::handle_timeout) when the deadline from
///    `poll_timeout` has passed, and the application's calls ([`request`](Self::request),
///    [`respond`](Self::respond), [`notify`](Self::notify), [`cancel`](Self::cancel),
///    [`cancel_observe`](Self::cancel_observe)).
/// 2. After any input, drain [`poll_transmit`](Self::poll_transmit) and send each datagram, and
///    drain [`poll_event`](Self::poll_event) and hand each event to the application (whose
///    answers are more inputs: go to 1).
/// 3. Re-arm the timer with [`poll_timeout`](Self::poll_timeout); it can move after any input.
///
/// The endpoint never reads the clock: `now` must not go backwards. Randomness (tokens, initial
/// message IDs, retransmission jitter) comes from a generator seeded by the caller, so a run is
/// reproducible.
///
/// # Example
///
/// Two endpoints joined by hand instead of by UDP:
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Instant;
/// use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, ContentFormat, Event, Request, Response};
///
/// let now = Instant::now();
/// let server_addr = SocketAddr::from(([192, 0, 2, 1], 5683));
/// let client_addr = SocketAddr::from(([192, 0, 2, 2], 56830));
/// let mut server = CoapEndpoint::new(CoapConfig::default(), 1);
/// let mut client = CoapEndpoint::new(CoapConfig::default(), 2);
///
/// let read = Request::get().with_path(["3", "0", "0"]).with_accept(ContentFormat::TEXT_PLAIN);
/// let id = client.request(now, server_addr, read);
/// while let Some(t) = client.poll_transmit() {
///     server.handle_datagram(now, client_addr, &t.bytes);
/// }
/// while let Some(event) = server.poll_event() {
///     if let Event::Request { request, responder, .. } = event {
///         assert_eq!(request.path(), ["3", "0", "0"]);
///         let answer = Response::new(Code::CONTENT).with_payload("Ferrite");
///         server.respond(now, responder, answer).expect("still pending");
///     }
/// }
/// while let Some(t) = server.poll_transmit() {
///     client.handle_datagram(now, server_addr, &t.bytes);
/// }
/// match client.poll_event() {
///     Some(Event::Response { id: got, response }) => {
///         assert_eq!(got, id);
///         assert_eq!(response.payload, b"Ferrite");
///     }
///     other => panic!("expected the response, got {other:?}"),
/// }
/// ```
///
/// # Memory
///
/// State that a peer can make grow is capped by [`CoapConfig`]: deduplication entries, pending
/// requests, Block1 reassemblies and bytes, the Block2 cache, per-peer state. Outgoing requests
/// are bounded by what the application sends.
#[derive(Debug)]
pub struct CoapEndpoint {
    config: CoapConfig,
    rng: Rng,
    timers: Timers<TimerKey>,
    /// The deadlines of `sent`, in time order. Each message keeps its own deadline, so arming
    /// and cancelling need no second index (and no hash of the peer's address).
    sent_due: BTreeSet<(Instant, SocketAddr, u16)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    dedup: DedupCache,
    peers: FoldMap<SocketAddr, PeerState>,
    sent: FoldMap<(SocketAddr, u16), SentMessage>,
    // Client side.
    next_request_id: u64,
    /// Keyed by our own counters: FxHash. Maps keyed by what the network sends (addresses,
    /// tokens, message IDs) use foldhash, seeded at random per map (ARCHITECTURE.md).
    exchanges: FxHashMap<RequestId, ClientExchange>,
    tokens: FoldMap<(SocketAddr, Token), RequestId>,
    // Server side.
    next_responder_id: u64,
    pending: FxHashMap<u64, PendingRequest>,
    block1: Block1Assemblies,
    block2: Block2Cache,
    /// Request keys of observations we serve, for block-wise notifications (RFC 7959 §2.6).
    observations: FoldMap<(SocketAddr, Token), Vec<u8>>,
    next_observe_seq: u32,
    /// Confirmable retransmissions so far ([`EndpointStats::retransmissions`]).
    retransmissions: u64,
}

impl CoapEndpoint {
    /// A new endpoint. `seed` drives tokens, message IDs and jitter; give each endpoint a
    /// different, unpredictable seed in production and a fixed one in tests.
    pub fn new(config: CoapConfig, seed: u64) -> CoapEndpoint {
        let mut rng = Rng::new(seed);
        let next_observe_seq = (rng.next_u64() & 0xFFFF) as u32;
        CoapEndpoint {
            dedup: DedupCache::new(config.exchange_lifetime, config.max_dedup_entries),
            config,
            rng,
            timers: Timers::new(),
            sent_due: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            peers: FoldMap::default(),
            sent: FoldMap::default(),
            next_request_id: 0,
            exchanges: FxHashMap::default(),
            tokens: FoldMap::default(),
            next_responder_id: 0,
            pending: FxHashMap::default(),
            block1: Block1Assemblies::default(),
            block2: Block2Cache::default(),
            observations: FoldMap::default(),
            next_observe_seq,
            retransmissions: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoapConfig {
        &self.config
    }

    /// Processes one received datagram. Malformed datagrams are answered as RFC 7252 §4.2–4.3
    /// requires (a Confirmable one with RST, anything else with silence) and never panic.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        let msg = match Message::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                // §4.2: a CON we cannot process is rejected with RST; §3: unknown versions and
                // unreadable headers are silently ignored (no header then).
                if let Some(h) = e.header
                    && h.mtype == MessageType::Confirmable
                {
                    self.send_message(peer, &Message::reset(h.message_id));
                }
                return;
            }
        };
        match (msg.mtype, msg.code.is_empty()) {
            // §4.3: an Empty CON is a "ping", answered with RST.
            (MessageType::Confirmable, true) => {
                self.send_message(peer, &Message::reset(msg.message_id));
            }
            (MessageType::NonConfirmable, true) => {}
            (MessageType::Acknowledgement, _) => {
                // §4.2: an ACK carries a response or is Empty; anything else is ignored.
                if msg.code.is_empty() || msg.code.is_response() {
                    self.on_ack(now, peer, msg);
                }
            }
            (MessageType::Reset, true) => self.on_reset(now, peer, msg.message_id),
            (MessageType::Reset, false) => {}
            (MessageType::Confirmable | MessageType::NonConfirmable, false) => {
                match self.dedup.check(now, (peer, msg.message_id)) {
                    Seen::Duplicate(reply) => {
                        // §4.5: answer a duplicate CON with the same reply, process nothing.
                        if let Some(reply) = reply
                            && msg.mtype == MessageType::Confirmable
                        {
                            let bytes = reply.to_vec();
                            self.transmits.push_back(Transmit { peer, bytes });
                        }
                    }
                    Seen::New if msg.code.is_request() => self.on_request(now, peer, msg),
                    Seen::New => self.on_response_message(now, peer, msg),
                }
            }
        }
    }

    /// Processes every timer due at `now`: retransmissions, response deadlines, Empty ACKs.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            // The earlier of the two queues first, as one queue would order them.
            let sent = self.sent_due.first().map(|&(at, _, _)| at);
            if let Some(at) = sent
                && at <= now
                && self.timers.next().is_none_or(|other| at <= other)
                && let Some((_, peer, mid)) = self.sent_due.pop_first()
            {
                self.on_sent_timer(now, peer, mid);
                continue;
            }
            let Some(key) = self.timers.pop_due(now) else {
                return;
            };
            match key {
                TimerKey::Deadline(id) => self.fail(now, id, FailureReason::Timeout),
                TimerKey::EmptyAck(id) => self.on_empty_ack_timer(id),
                TimerKey::PendingExpiry(id) => {
                    self.pending.remove(&id);
                }
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sent = self.sent_due.first().map(|&(at, _, _)| at);
        [sent, self.timers.next()].into_iter().flatten().min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sizes of the internal state.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            exchanges: self.exchanges.len(),
            pending_requests: self.pending.len(),
            dedup_entries: self.dedup.len(),
            sent_messages: self.sent.len(),
            block1_assemblies: self.block1.len(),
            block1_bytes: self.block1.bytes(),
            block2_cache_entries: self.block2.len(),
            block2_cache_bytes: self.block2.bytes(),
            peer_states: self.peers.len(),
            observations: self.observations.len(),
            timers: self.timers.len() + self.sent_due.len(),
            queued_outputs: self.transmits.len() + self.events.len(),
            retransmissions: self.retransmissions,
        }
    }

    /// Encodes and queues a message. Only our own well-formed messages come here; if one cannot
    /// be encoded it is dropped and `None` returned.
    fn send_message(&mut self, peer: SocketAddr, msg: &Message) -> Option<Vec<u8>> {
        let bytes = msg.encode().ok()?;
        self.transmits.push_back(Transmit {
            peer,
            bytes: bytes.clone(),
        });
        Some(bytes)
    }

    /// Sends a reply to a received CON/NON and remembers it for duplicates (CON only).
    fn send_reply(&mut self, peer: SocketAddr, received_mid: u16, reply: &Message) {
        if let Some(bytes) = self.send_message(peer, reply)
            && matches!(
                reply.mtype,
                MessageType::Acknowledgement | MessageType::Reset
            )
        {
            self.dedup.set_reply((peer, received_mid), bytes);
        }
    }

    /// Registers a sent message for ACK/RST matching, with its retransmission (CON, §4.2) or
    /// expiry (NON, NON_LIFETIME) timer.
    fn track_sent(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        mid: u16,
        owner: SentOwner,
        confirmable: bool,
        bytes: Vec<u8>,
    ) {
        let (timeout, bytes) = if confirmable {
            // §4.2: initial timeout uniform in [ACK_TIMEOUT, ACK_TIMEOUT × ACK_RANDOM_FACTOR].
            let spread = (self.config.ack_random_factor - 1.0).max(0.0);
            let factor = 1.0 + spread * self.rng.next_f64();
            (self.config.ack_timeout.mul_f64(factor), bytes)
        } else {
            (self.config.non_lifetime, Vec::new())
        };
        let due = now + timeout;
        let old = self.sent.insert(
            (peer, mid),
            SentMessage {
                owner,
                confirmable,
                bytes,
                retransmits: 0,
                timeout,
                due,
            },
        );
        if let Some(old) = old {
            self.sent_due.remove(&(old.due, peer, mid));
        }
        self.sent_due.insert((due, peer, mid));
    }

    /// Forgets a sent message and its deadline; returns it.
    fn forget_sent(&mut self, peer: SocketAddr, mid: u16) -> Option<SentMessage> {
        let entry = self.sent.remove(&(peer, mid))?;
        self.sent_due.remove(&(entry.due, peer, mid));
        Some(entry)
    }

    fn on_sent_timer(&mut self, now: Instant, peer: SocketAddr, mid: u16) {
        let max_retransmit = self.config.max_retransmit;
        let Some(entry) = self.sent.get_mut(&(peer, mid)) else {
            return;
        };
        if entry.confirmable && entry.retransmits < max_retransmit {
            // §4.2: retransmit and double the timeout.
            entry.retransmits += 1;
            self.retransmissions += 1;
            entry.timeout = entry.timeout.saturating_mul(2);
            let at = now + entry.timeout;
            // Its previous deadline has just been popped from `sent_due`.
            entry.due = at;
            let bytes = entry.bytes.clone();
            self.transmits.push_back(Transmit { peer, bytes });
            self.sent_due.insert((at, peer, mid));
            return;
        }
        let Some(entry) = self.forget_sent(peer, mid) else {
            return;
        };
        if !entry.confirmable {
            return; // a NON record simply expires
        }
        match entry.owner {
            SentOwner::Request(id) => {
                if self.exchanges.get(&id).and_then(|ex| ex.current_mid) == Some(mid) {
                    self.fail(now, id, FailureReason::Timeout);
                }
            }
            SentOwner::Notification(token) => {
                // RFC 7641 §4.5: an unacknowledged CON notification removes the observer.
                self.observations.remove(&(peer, token));
                self.events.push_back(Event::ObserverGone {
                    peer,
                    token,
                    reason: FailureReason::Timeout,
                });
            }
            SentOwner::SeparateResponse => {}
        }
    }

    fn on_ack(&mut self, now: Instant, peer: SocketAddr, msg: Message) {
        let Some(entry) = self.sent.get(&(peer, msg.message_id)) else {
            return; // §4.2: an ACK matching nothing is ignored
        };
        if !entry.confirmable {
            return;
        }
        match entry.owner {
            SentOwner::Request(id) => self.on_request_ack(now, peer, id, msg),
            SentOwner::SeparateResponse | SentOwner::Notification(_) => {
                self.forget_sent(peer, msg.message_id);
            }
        }
    }

    fn on_reset(&mut self, now: Instant, peer: SocketAddr, mid: u16) {
        let Some(entry) = self.forget_sent(peer, mid) else {
            return; // §4.2: a RST matching nothing is ignored
        };
        match entry.owner {
            SentOwner::Request(id) => {
                if self.exchanges.get(&id).and_then(|ex| ex.current_mid) == Some(mid) {
                    self.fail(now, id, FailureReason::Reset);
                }
            }
            SentOwner::Notification(token) => {
                // RFC 7641 §3.6: a RST in reply to a notification cancels the observation.
                self.observations.remove(&(peer, token));
                self.events.push_back(Event::ObserverGone {
                    peer,
                    token,
                    reason: FailureReason::Reset,
                });
            }
            SentOwner::SeparateResponse => {}
        }
    }

    /// The state of `peer`, created (with a random first message ID) if there is room or `force`.
    fn peer_state(&mut self, peer: SocketAddr, force: bool) -> Option<&mut PeerState> {
        if !force
            && self.peers.len() >= self.config.max_peer_states
            && !self.peers.contains_key(&peer)
            && !self.peer_state_room()
        {
            return None;
        }
        let rng = &mut self.rng;
        Some(self.peers.entry(peer).or_insert_with(|| PeerState {
            next_mid: (rng.next_u64() & 0xFFFF) as u16,
            outstanding: 0,
            queue: VecDeque::new(),
        }))
    }

    /// The next message ID for `peer` (§4.4: unique per peer within EXCHANGE_LIFETIME; sequential
    /// from a random start). Idle per-peer state is dropped when [`CoapConfig::max_peer_states`]
    /// is reached; a peer seen again then restarts at a random ID.
    fn next_mid(&mut self, peer: SocketAddr) -> u16 {
        if let Some(state) = self.peer_state(peer, false) {
            let mid = state.next_mid;
            state.next_mid = mid.wrapping_add(1);
            return mid;
        }
        // No room even after dropping idle peers: a random ID, as a fresh peer state would use.
        (self.rng.next_u64() & 0xFFFF) as u16
    }

    /// Whether a new per-peer state fits, dropping idle ones if needed.
    fn peer_state_room(&mut self) -> bool {
        if self.peers.len() < self.config.max_peer_states {
            return true;
        }
        self.peers
            .retain(|_, s| s.outstanding > 0 || !s.queue.is_empty());
        self.peers.len() < self.config.max_peer_states
    }

    fn next_observe_seq(&mut self) -> u32 {
        let seq = self.next_observe_seq & 0x00FF_FFFF;
        self.next_observe_seq = self.next_observe_seq.wrapping_add(1);
        seq
    }
}

#[cfg(test)]
mod tests;
