//! One UDP socket and the sans-I/O engines it drives: a tokio task that owns the socket, its
//! `Lwm2mServer` and, on the CoAPS socket, its `DtlsServer`. It waits for a datagram, a command
//! from the service handle (requests, registration decisions, removals), or the engines' next
//! deadline (`poll_timeout`, one pinned `Sleep`); then it handles what else is already waiting
//! (bounded, datagrams and commands alternating) and sends the outbox once. After each input it
//! drains the engines' events and datagrams (the call order documented on `Lwm2mServer` and
//! `DtlsServer`).
//!
//! The task never waits for the database: registration checks run in spawned tasks whose verdict
//! comes back as a command, and store writes go to the ordered persistence worker.
//!
//! NAT rebinding on DTLS: a device whose address changed re-handshakes from the new address; the
//! DTLS layer closes the old session (`Connected { replaced }`), and the LwM2M engine learns the new
//! address from the device's next Update (TS Core 1.1 §6.2.2), which the client sends after a new
//! handshake. Until then requests to the device go to the old address, have no session and time
//! out; its observations end with the Update (`AddressChanged`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferrite_dtls::{DtlsEvent, DtlsServer, HandshakeFailure, PskIdentity};
use lwm2m_proto::coap::Transmit;
use lwm2m_proto::lwm2m::server::{
    CommitTicket, Lwm2mServer, ObservationId, OpError, OpId, OpOutcome, Operation, PeerAuth,
    RegistrationTicket, Rejection,
};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::bulk::BatchSlot;
use super::directory::Directory;
use super::events::{DeviceEvent, OperationId};
use super::persist::{Job, JobSender};
use crate::store::Store;
use crate::store::lwm2m::{RegistrationEventKind, Transport};

/// Largest datagram accepted: a full DTLS record (2^14 bytes of plaintext, RFC 6347 §4.1, plus
/// header and AEAD overhead) or a CoAP message of that size. Anything larger is dropped unread:
/// block-wise transfer (RFC 7959) keeps real LwM2M traffic far below it.
pub const MAX_DATAGRAM: usize = 16 * 1024 + 256;

/// Rounds of the drain after each wake-up of a socket task (one datagram and one command per
/// round): enough to amortise the wake-up under load, few enough that the timer and shutdown are
/// looked at often (a round costs microseconds).
const DRAIN_ROUNDS: usize = 64;

/// What the rest of the service shares with the socket tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Store,
    pub directory: Directory,
    /// Every event (SSE, diagnoses waiting for answers).
    pub events: broadcast::Sender<DeviceEvent>,
    /// Registration-interface events only: for the listeners that need nothing else
    /// (inventory, boot samples, retired identities, metrics), so that a completed request or a
    /// notification does not wake them.
    pub registrations: broadcast::Sender<DeviceEvent>,
    pub persist: JobSender,
    /// NoSec is enabled (the CoAP socket exists).
    pub nosec: bool,
    /// Every socket's command channel, to move a registration between sockets.
    pub sockets: Vec<(Transport, mpsc::UnboundedSender<Command>)>,
    /// The server's main runtime: work a socket task starts (registration checks) runs there,
    /// not on the socket tasks' own thread.
    pub runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn sender(&self, transport: Transport) -> Option<&mpsc::UnboundedSender<Command>> {
        self.sockets
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, s)| s)
    }

    pub(crate) fn publish(&self, event: DeviceEvent) {
        // No subscriber is not an error.
        if event.is_registration() && self.registrations.receiver_count() > 0 {
            let _ = self.registrations.send(event.clone());
        }
        let _ = self.events.send(event);
    }

    /// Whether anyone listens to [`events`](Self::events): the high-rate events (completed
    /// requests, notifications, Send data) are only built when someone does.
    pub(crate) fn listened(&self) -> bool {
        self.events.receiver_count() > 0
    }

    pub(crate) fn persist(&self, job: Job) {
        if self.persist.send(job).is_err() {
            tracing::error!("the persistence worker has stopped; a store write is lost");
        }
    }
}

/// What a request asks for.
#[derive(Debug)]
pub(crate) enum Requested {
    Operation(Operation),
    /// Cancel Observation by the observation's number (as events show it).
    Cancel(u64),
}

/// A request for the engine.
#[derive(Debug)]
pub(crate) struct Submit {
    pub id: OperationId,
    pub endpoint: String,
    pub request: Requested,
    /// The queue expiry; None: the engine's default.
    pub expiry: Option<Duration>,
    /// Already in `lwm2m_queued_requests` (re-submitted at start).
    pub persisted: bool,
    pub created_at: DateTime<Utc>,
    pub completion: Option<oneshot::Sender<Result<OpOutcome, OpError>>>,
    pub reply: Option<oneshot::Sender<Result<SubmitAck, OpError>>>,
}

/// Many requests in one command (`Lwm2mService::request_many`): the socket submits them all
/// in one go and answers with one message; each outcome goes into the request's
/// [`BatchSlot`](super::bulk::BatchSlot).
#[derive(Debug)]
pub(crate) struct SubmitBatch {
    pub requests: Vec<BatchRequest>,
    /// Whether each request was taken, as (index, ack), after all were submitted.
    pub acks: oneshot::Sender<Vec<(usize, Result<SubmitAck, OpError>)>>,
}

/// One request of a [`SubmitBatch`].
#[derive(Debug)]
pub(crate) struct BatchRequest {
    /// The caller's index, echoed in the ack.
    pub index: usize,
    pub id: OperationId,
    pub endpoint: String,
    pub operation: Operation,
    /// Where its outcome goes; dropped unfilled (the request refused, the socket stopped), it
    /// tells the caller so.
    pub slot: BatchSlot,
}

/// Where a tracked request's outcome goes.
#[derive(Debug)]
pub(crate) enum Completion {
    /// A caller waiting for this request alone.
    One(oneshot::Sender<Result<OpOutcome, OpError>>),
    /// One request of a [`SubmitBatch`].
    Batch(BatchSlot),
}

impl Completion {
    /// Hands the outcome over.
    pub(crate) fn send(self, outcome: Result<OpOutcome, OpError>) {
        match self {
            // The requester may have stopped waiting.
            Completion::One(sender) => {
                let _ = sender.send(outcome);
            }
            Completion::Batch(slot) => slot.fill(outcome),
        }
    }
}

/// The engine took the request.
#[derive(Debug)]
pub(crate) struct SubmitAck {
    /// It waits for a sleeping device (or for an in-flight slot).
    pub queued: bool,
    /// Told when the queued request is stored.
    pub durable: Option<oneshot::Receiver<bool>>,
}

/// Commands to a socket task.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Box<Submit>),
    SubmitMany(Box<SubmitBatch>),
    /// The persistence worker's outcome for staged registration changes: stored or not, in
    /// the order they were staged.
    Committed(Vec<(CommitTicket, bool)>),
    /// The verdict on a Register.
    Decision {
        ticket: RegistrationTicket,
        verdict: Result<(), Rejection>,
    },
    /// Remove `endpoint`'s registration (if it is still `registration_id`, when given).
    Remove {
        endpoint: String,
        registration_id: Option<String>,
        kind: RegistrationEventKind,
        /// Mark the device offline (false when it moved to the other socket).
        mark_offline: bool,
        reply: Option<oneshot::Sender<bool>>,
    },
    /// End the DTLS session of an identity (credentials revoked).
    CloseIdentity {
        identity: String,
    },
    Observations {
        endpoint: String,
        reply: oneshot::Sender<Vec<ObservationView>>,
    },
    Stats {
        reply: oneshot::Sender<SocketStats>,
    },
}

/// An established observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservationView {
    pub observation: u64,
    pub paths: Vec<String>,
}

/// Counters and sizes of one socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStats {
    pub transport: Option<Transport>,
    pub local_addr: Option<SocketAddr>,
    pub registrations: usize,
    pub pending_registrations: usize,
    pub in_flight_ops: usize,
    pub queued_ops: usize,
    pub observations: usize,
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    /// Larger than [`MAX_DATAGRAM`].
    pub datagrams_oversized: u64,
    /// Socket send failures, and CoAP messages for a DTLS peer without a session.
    pub send_failures: u64,
    pub dtls_sessions: Option<usize>,
    pub dtls_handshakes_completed: Option<u64>,
    pub dtls_handshakes_failed: Option<u64>,
    /// Confirmable CoAP messages the engine retransmitted (RFC 7252 §4.2), since start.
    #[serde(default)]
    pub coap_retransmissions: u64,
    /// The DTLS layer's counters by reason (CoAPS socket only).
    #[serde(default)]
    pub dtls: Option<DtlsCounters>,
    /// Observe notifications received (the initial answer of an Observe not counted).
    #[serde(default)]
    pub notifications_received: u64,
    /// LwM2M Send requests accepted.
    #[serde(default)]
    pub sends_received: u64,
    /// Requests that waited for a sleeping device.
    #[serde(default)]
    pub operations_queued: u64,
    /// Requests through the service that completed, by outcome.
    #[serde(default)]
    pub operations_succeeded: u64,
    #[serde(default)]
    pub operations_failed: u64,
}

/// The DTLS layer's counters and gauges on the CoAPS socket, by reason, for metrics: what its
/// bounds, rate limit and pre-check turned away.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsCounters {
    pub handshakes_in_progress: usize,
    pub hello_verify_requests: u64,
    /// Failed handshakes by reason: timeout, bad_key, unknown_identity, peer_aborted, protocol,
    /// superseded, internal, evicted.
    pub handshake_failures: BTreeMap<String, u64>,
    /// Datagrams dropped without effect, by reason: not_client_hello, malformed_client_hello,
    /// unexpected_message_sequence, handshake_table_full, rate_limited, duplicate_client_hello,
    /// invalid_records.
    pub dropped: BTreeMap<String, u64>,
    /// Sessions evicted because the session table was full.
    pub sessions_evicted: u64,
    /// Stalled handshakes abandoned because the handshake table was full.
    pub handshakes_evicted: u64,
    /// Addresses that reached the failed-handshake limit.
    pub rate_limit_blocks: u64,
    /// Addresses currently refused.
    pub rate_limited_addresses: usize,
    /// Failure counts forgotten because the failure table was full.
    pub failure_table_evictions: u64,
}

impl DtlsCounters {
    fn of(dtls: &DtlsServer) -> DtlsCounters {
        let s = dtls.stats();
        let f = &s.handshakes_failed;
        let d = &s.dropped;
        let map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), *value))
                .collect()
        };
        DtlsCounters {
            handshakes_in_progress: s.handshakes_in_progress,
            hello_verify_requests: s.hello_verify_requests,
            handshake_failures: map(&[
                ("timeout", f.timeout),
                ("bad_key", f.bad_key),
                ("unknown_identity", f.unknown_identity),
                ("peer_aborted", f.peer_aborted),
                ("protocol", f.protocol),
                ("superseded", f.superseded),
                ("internal", f.internal),
                ("evicted", f.evicted),
            ]),
            dropped: map(&[
                ("not_client_hello", d.not_client_hello),
                ("malformed_client_hello", d.malformed_client_hello),
                ("unexpected_message_sequence", d.unexpected_message_sequence),
                ("handshake_table_full", d.handshake_table_full),
                ("rate_limited", d.rate_limited),
                ("duplicate_client_hello", d.duplicate_client_hello),
                ("invalid_records", d.invalid_records),
            ]),
            sessions_evicted: s.evictions,
            handshakes_evicted: s.handshakes_evicted,
            rate_limit_blocks: s.rate_limit_blocks,
            rate_limited_addresses: dtls.failure_table().1,
            failure_table_evictions: s.failure_table_evictions,
        }
    }
}

/// A request the task follows until it completes.
#[derive(Debug)]
pub(crate) struct TrackedOp {
    pub id: OperationId,
    /// Kept until it is persisted (a queue-mode request) or completes.
    pub operation: Option<Operation>,
    pub persisted: bool,
    pub created_at: DateTime<Utc>,
    pub completion: Option<Completion>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: u64,
    pub sent: u64,
    pub oversized: u64,
    pub send_failures: u64,
    pub notifications: u64,
    pub sends: u64,
    pub ops_queued: u64,
    pub ops_succeeded: u64,
    pub ops_failed: u64,
}

/// When queue-mode devices are expected to fall asleep (connectivity `sleeping`).
#[derive(Debug, Default)]
pub(crate) struct SleepTracker {
    by_time: BTreeSet<(Instant, String)>,
    by_endpoint: foldhash::HashMap<String, Instant>,
}

impl SleepTracker {
    pub(crate) fn set(&mut self, endpoint: &str, at: Instant) {
        self.clear(endpoint);
        self.by_time.insert((at, endpoint.to_owned()));
        self.by_endpoint.insert(endpoint.to_owned(), at);
    }

    pub(crate) fn clear(&mut self, endpoint: &str) {
        if let Some(at) = self.by_endpoint.remove(endpoint) {
            self.by_time.remove(&(at, endpoint.to_owned()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<String> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, endpoint) = self.by_time.pop_first()?;
        self.by_endpoint.remove(&endpoint);
        Some(endpoint)
    }
}

/// The socket task's state.
#[derive(Debug)]
pub(crate) struct SocketTask {
    pub transport: Transport,
    pub socket: UdpSocket,
    pub local_addr: SocketAddr,
    pub engine: Lwm2mServer,
    pub dtls: Option<DtlsServer>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub shared: Arc<Shared>,
    pub ops: foldhash::HashMap<OpId, TrackedOp>,
    /// Set while a Submit is being handled: whether its op was queued, and its durability signal.
    pub submitting: Option<(OpId, bool, Option<oneshot::Receiver<bool>>)>,
    pub sleep: SleepTracker,
    pub awake_window: Duration,
    pub counters: Counters,
    pub outbox: Vec<(SocketAddr, Vec<u8>)>,
}

/// The wall-clock time of engine instant `at`, given that `now` is the current instant.
pub(crate) fn wall(now: Instant, at: Instant) -> DateTime<Utc> {
    let ago = now.saturating_duration_since(at);
    Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default()
}

impl SocketTask {
    /// Runs until `shutdown` turns true (or its sender is gone) or every command sender is gone.
    ///
    /// Each wake-up (a datagram, a command or the timer) is followed by a bounded drain of what
    /// is already waiting, without waiting: up to [`DRAIN_ROUNDS`] rounds of one datagram and
    /// one command each (alternating, so neither source starves the other), every input pumped
    /// through the engines as before; then the outbox is sent once. Under load this replaces a
    /// `select!` (and its wake-up) per datagram with one per batch. The timer is one pinned
    /// `Sleep`, reset only when the engines' deadline changes.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        self.pump(Instant::now());
        self.send_outbox().await;
        tracing::info!(transport = %self.transport, addr = %self.local_addr, "LwM2M socket serving");
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        // The deadline the timer is set to; None: disarmed.
        let mut armed: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let deadline = self.next_deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(tokio::time::Instant::from_std(at));
                }
                armed = deadline;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(Instant::now(), command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, peer)) => {
                        let bytes = buf.get(..len).unwrap_or_default();
                        self.on_datagram(Instant::now(), peer, bytes);
                    }
                    Err(error) => {
                        tracing::debug!(transport = %self.transport, %error, "UDP receive failed");
                    }
                },
                () = &mut timer, if armed.is_some() => {
                    // Fired: re-armed next round even if the deadline stays the same.
                    armed = None;
                    self.on_timeout(Instant::now());
                }
            }
            self.pump(Instant::now());
            self.drain_ready(&mut buf);
            self.send_outbox().await;
        }
        tracing::info!(transport = %self.transport, "LwM2M socket stopped");
    }

    /// Handles the datagrams and commands that are already waiting, without waiting for more:
    /// one of each per round, at most [`DRAIN_ROUNDS`] rounds, each input pumped through the
    /// engines like a single one (the engines' call order: drain after any input).
    fn drain_ready(&mut self, buf: &mut [u8]) {
        for _ in 0..DRAIN_ROUNDS {
            let mut progressed = false;
            match self.socket.try_recv_from(buf) {
                Ok((len, peer)) => {
                    progressed = true;
                    let bytes = buf.get(..len).unwrap_or_default();
                    self.on_datagram(Instant::now(), peer, bytes);
                    self.pump(Instant::now());
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::debug!(transport = %self.transport, %error, "UDP receive failed");
                }
            }
            // A closed channel is seen by the next `recv` in `run` (and ends the task there).
            if let Ok(command) = self.commands.try_recv() {
                progressed = true;
                self.on_command(Instant::now(), command);
                self.pump(Instant::now());
            }
            if !progressed {
                break;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.engine.poll_timeout(),
            self.dtls.as_ref().and_then(DtlsServer::poll_timeout),
            self.sleep.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        if bytes.len() > MAX_DATAGRAM {
            self.counters.oversized += 1;
            tracing::debug!(%peer, len = bytes.len(), "oversized datagram dropped");
            return;
        }
        self.counters.received += 1;
        match self.dtls.as_mut() {
            Some(dtls) => dtls.handle_datagram(now, peer, bytes),
            None => self
                .engine
                .handle_datagram(now, peer, PeerAuth::NoSec, bytes),
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now);
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.handle_timeout(now);
        }
        while let Some(endpoint) = self.sleep.pop_due(now) {
            if self.engine.is_reachable(now, &endpoint) {
                // Still awake (it sent something since): look again later.
                let again = self.awake_window.max(Duration::from_secs(4)) / 4;
                self.sleep.set(&endpoint, now + again);
            } else if self.engine.registration(&endpoint).is_some() {
                self.shared.persist(Job::Connectivity {
                    endpoint,
                    connectivity: crate::fleet::registry::Connectivity::Sleeping,
                });
            }
        }
    }

    /// Drains the engines until neither has anything left: DTLS events (decrypted data goes into
    /// the LwM2M engine), LwM2M events, LwM2M datagrams (through DTLS on the CoAPS socket).
    pub(crate) fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.dtls.as_mut().and_then(DtlsServer::poll_event) {
                progressed = true;
                self.on_dtls_event(now, event);
            }
            while let Some(event) = self.engine.poll_event() {
                progressed = true;
                self.on_engine_event(now, event);
            }
            while let Some(transmit) = self.engine.poll_transmit() {
                progressed = true;
                self.transmit(now, transmit);
            }
            while let Some(datagram) = self.dtls.as_mut().and_then(DtlsServer::poll_transmit) {
                self.outbox.push(datagram);
            }
            if !progressed {
                break;
            }
        }
    }

    fn transmit(&mut self, now: Instant, transmit: Transmit) {
        match self.dtls.as_mut() {
            Some(dtls) => {
                if let Err(error) = dtls.send(now, transmit.peer, &transmit.bytes) {
                    // No session (it idled out, or the device moved): the engine retransmits or
                    // fails the request; the device re-handshakes when it next talks.
                    self.counters.send_failures += 1;
                    tracing::debug!(peer = %transmit.peer, %error, "CoAP message for a peer without a DTLS session dropped");
                }
            }
            None => self.outbox.push((transmit.peer, transmit.bytes)),
        }
    }

    /// Sends what the engines produced: `try_send_to` first (a UDP socket is nearly always
    /// writable), awaiting writability only when the kernel's send buffer is full.
    async fn send_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let mut outbox = std::mem::take(&mut self.outbox);
        for (peer, bytes) in outbox.drain(..) {
            let sent = match self.socket.try_send_to(&bytes, peer) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.socket.send_to(&bytes, peer).await
                }
                other => other,
            };
            match sent {
                Ok(_) => self.counters.sent += 1,
                Err(error) => {
                    self.counters.send_failures += 1;
                    tracing::debug!(%peer, %error, "UDP send failed");
                }
            }
        }
        // Keep the allocation for the next batch.
        self.outbox = outbox;
    }

    fn on_dtls_event(&mut self, now: Instant, event: DtlsEvent) {
        match event {
            DtlsEvent::Data {
                peer,
                identity,
                bytes,
            } => {
                let auth = PeerAuth::Psk {
                    identity: identity.to_text(),
                };
                self.engine.handle_datagram(now, peer, auth, &bytes);
            }
            DtlsEvent::Connected {
                peer,
                identity,
                replaced,
            } => match replaced {
                Some(old) => tracing::info!(
                    %identity, %peer, old = %old,
                    "DTLS session moved to a new address (NAT rebinding); the registration follows with the device's next Update"
                ),
                None => tracing::debug!(%identity, %peer, "DTLS session established"),
            },
            DtlsEvent::Closed {
                peer,
                identity,
                reason,
            } => tracing::debug!(%identity, %peer, ?reason, "DTLS session closed"),
            DtlsEvent::HandshakeFailed {
                peer,
                claimed_identity,
                reason,
            } => {
                let identity = claimed_identity.as_ref().map(PskIdentity::to_string);
                let identity = identity.as_deref().unwrap_or("-");
                // A wrong key or an unknown identity is worth an operator's attention; abandoned and
                // timed-out handshakes are what floods and lossy links produce by the thousand, so
                // they are only counted (ferrite_dtls_handshake_failures_total) and logged at debug.
                if matches!(
                    reason,
                    HandshakeFailure::BadKey | HandshakeFailure::UnknownIdentity
                ) {
                    tracing::info!(%peer, identity, ?reason, "DTLS handshake failed");
                } else {
                    tracing::debug!(%peer, identity, ?reason, "DTLS handshake failed");
                }
            }
        }
    }

    pub(crate) fn on_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Submit(submit) => self.on_submit(now, *submit),
            Command::SubmitMany(batch) => self.on_submit_many(now, *batch),
            Command::Committed(outcomes) => {
                for (ticket, stored) in outcomes {
                    let answered = if stored {
                        self.engine.commit_succeeded(now, ticket)
                    } else {
                        tracing::warn!(
                            ticket = ticket.as_u64(),
                            transport = %self.transport,
                            "a registration change could not be stored; the device is answered 5.03"
                        );
                        self.engine.commit_failed(now, ticket)
                    };
                    if let Err(error) = answered {
                        // Given up after the commit timeout (logged then, and undone in the store).
                        tracing::debug!(ticket = ticket.as_u64(), %error, "late commit outcome ignored");
                    }
                }
            }
            Command::Decision { ticket, verdict } => {
                let answered = match verdict {
                    Ok(()) => self.engine.accept_registration(now, ticket).map(|_| ()),
                    Err(rejection) => self.engine.reject_registration(now, ticket, rejection),
                };
                if let Err(error) = answered {
                    tracing::info!(%error, "the Register could not be answered (the client will retry)");
                }
            }
            Command::Remove {
                endpoint,
                registration_id,
                kind,
                mark_offline,
                reply,
            } => {
                let removed = self.remove(
                    now,
                    &endpoint,
                    registration_id.as_deref(),
                    kind,
                    mark_offline,
                );
                if let Some(reply) = reply {
                    let _ = reply.send(removed);
                }
            }
            Command::CloseIdentity { identity } => {
                if let Some(dtls) = self.dtls.as_mut() {
                    let identity = PskIdentity::new(identity.as_bytes());
                    if let Some(peer) = dtls.peer_of(&identity) {
                        dtls.close(now, peer);
                        tracing::info!(%identity, %peer, "DTLS session closed: credentials withdrawn");
                    }
                }
            }
            Command::Observations { endpoint, reply } => {
                let views = self
                    .engine
                    .observations(&endpoint)
                    .into_iter()
                    .map(|o| ObservationView {
                        observation: o.observation.as_u64(),
                        paths: o.paths.iter().map(ToString::to_string).collect(),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }

    fn find_observation(&self, endpoint: &str, number: u64) -> Option<ObservationId> {
        self.engine
            .observations(endpoint)
            .into_iter()
            .map(|o| o.observation)
            .find(|o| o.as_u64() == number)
    }

    fn on_submit(&mut self, now: Instant, submit: Submit) {
        let Submit {
            id,
            endpoint,
            request,
            expiry,
            persisted,
            created_at,
            completion,
            reply,
        } = submit;
        let operation = match request {
            Requested::Operation(operation) => operation,
            Requested::Cancel(number) => match self.find_observation(&endpoint, number) {
                Some(observation) => Operation::CancelObservation(observation),
                None => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(OpError::UnknownObservation));
                    }
                    return;
                }
            },
        };
        let acked = self.submit_operation(
            now,
            id,
            &endpoint,
            operation,
            expiry,
            persisted,
            created_at,
            completion.map(Completion::One),
        );
        if let Some(reply) = reply {
            let _ = reply.send(acked);
        }
    }

    /// Submits every request of a batch (each exactly as a single Submit would be), then
    /// answers with all the acks in one message.
    fn on_submit_many(&mut self, now: Instant, batch: SubmitBatch) {
        let SubmitBatch { requests, acks } = batch;
        let created_at = Utc::now();
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let completion = Completion::Batch(request.slot);
            let acked = self.submit_operation(
                now,
                request.id,
                &request.endpoint,
                request.operation,
                None,
                false,
                created_at,
                Some(completion),
            );
            answers.push((request.index, acked));
        }
        let _ = acks.send(answers);
    }

    /// Hands one operation to the engine and tracks it; whether it was queued (and its
    /// durability signal) comes from the events of the pump that follows.
    #[allow(clippy::too_many_arguments)]
    fn submit_operation(
        &mut self,
        now: Instant,
        id: OperationId,
        endpoint: &str,
        operation: Operation,
        expiry: Option<Duration>,
        persisted: bool,
        created_at: DateTime<Utc>,
        completion: Option<Completion>,
    ) -> Result<SubmitAck, OpError> {
        // Kept to persist it if it has to wait for the device.
        let kept = (!persisted && !matches!(operation, Operation::CancelObservation(_)))
            .then(|| operation.clone());
        let result = match expiry {
            Some(expiry) => self
                .engine
                .request_with_expiry(now, endpoint, operation, expiry),
            None => self.engine.request(now, endpoint, operation),
        };
        match result {
            Ok(op) => {
                self.ops.insert(
                    op,
                    TrackedOp {
                        id,
                        operation: kept,
                        persisted,
                        created_at,
                        completion,
                    },
                );
                self.submitting = Some((op, false, None));
                self.pump(now);
                let (queued, durable) = match self.submitting.take() {
                    Some((_, queued, durable)) => (queued, durable),
                    None => (false, None),
                };
                Ok(SubmitAck { queued, durable })
            }
            Err(error) => {
                if persisted {
                    // A re-submitted request the engine refuses ends here.
                    let result = super::events::OperationResult::Failed {
                        error: super::error::ServiceError::from(error.clone()).to_view(),
                    };
                    self.shared.persist(Job::Finish {
                        id: id.to_string(),
                        status: crate::store::lwm2m::RequestStatus::Failed,
                        at: Utc::now(),
                        result_json: serde_json::to_string(&result).unwrap_or_default(),
                    });
                }
                Err(error)
            }
        }
    }

    /// Removes `endpoint`'s registration from the engine (if it is `registration_id`, when given).
    pub(crate) fn remove(
        &mut self,
        now: Instant,
        endpoint: &str,
        registration_id: Option<&str>,
        kind: RegistrationEventKind,
        mark_offline: bool,
    ) -> bool {
        let matches = self
            .engine
            .registration(endpoint)
            .is_some_and(|r| registration_id.is_none_or(|id| r.id.to_string() == id));
        if !matches {
            return false;
        }
        let Some(registration) = self.engine.remove_registration(now, endpoint) else {
            return false;
        };
        let registration_id = registration.id.to_string();
        self.sleep.clear(endpoint);
        self.shared
            .directory
            .remove_if(endpoint, self.transport, &registration_id);
        let at = Utc::now();
        self.shared.persist(Job::Ended {
            endpoint: endpoint.to_owned(),
            registration_id: registration_id.clone(),
            kind,
            at,
            mark_offline,
        });
        self.shared.publish(DeviceEvent::Removed {
            endpoint: endpoint.to_owned(),
            registration_id,
            at,
        });
        tracing::info!(endpoint, transport = %self.transport, ?kind, "registration removed by the server");
        true
    }

    fn stats(&self) -> SocketStats {
        let engine = self.engine.stats();
        let dtls = self.dtls.as_ref().map(DtlsServer::stats);
        SocketStats {
            transport: Some(self.transport),
            local_addr: Some(self.local_addr),
            registrations: engine.registrations,
            pending_registrations: engine.pending_registrations,
            in_flight_ops: engine.in_flight_ops,
            queued_ops: engine.queued_ops,
            observations: engine.observations,
            coap_retransmissions: engine.coap.retransmissions,
            datagrams_received: self.counters.received,
            datagrams_sent: self.counters.sent,
            datagrams_oversized: self.counters.oversized,
            send_failures: self.counters.send_failures,
            notifications_received: self.counters.notifications,
            sends_received: self.counters.sends,
            operations_queued: self.counters.ops_queued,
            operations_succeeded: self.counters.ops_succeeded,
            operations_failed: self.counters.ops_failed,
            dtls_sessions: dtls.map(|s| s.sessions),
            dtls_handshakes_completed: dtls.map(|s| s.handshakes_completed),
            dtls_handshakes_failed: dtls.map(|s| {
                let f = &s.handshakes_failed;
                f.timeout
                    + f.bad_key
                    + f.unknown_identity
                    + f.peer_aborted
                    + f.protocol
                    + f.superseded
                    + f.internal
                    + f.evicted
            }),
            dtls: self.dtls.as_ref().map(DtlsCounters::of),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sleep_tracker_pops_in_time_order_and_forgets_cleared_endpoints() {
        let start = Instant::now();
        let mut tracker = SleepTracker::default();
        tracker.set("b", start + Duration::from_secs(2));
        tracker.set("a", start + Duration::from_secs(1));
        tracker.set("c", start + Duration::from_secs(3));
        tracker.clear("c");
        tracker.set("b", start + Duration::from_secs(5));
        assert_eq!(tracker.next(), Some(start + Duration::from_secs(1)));
        assert_eq!(tracker.pop_due(start), None);
        assert_eq!(
            tracker.pop_due(start + Duration::from_secs(4)).as_deref(),
            Some("a")
        );
        assert_eq!(tracker.pop_due(start + Duration::from_secs(4)), None);
        assert_eq!(
            tracker.pop_due(start + Duration::from_secs(5)).as_deref(),
            Some("b")
        );
        assert_eq!(tracker.next(), None);
    }

    #[test]
    fn wall_clock_of_an_instant_counts_back_from_now() {
        let earlier = Instant::now();
        let now = earlier + Duration::from_secs(60);
        let ago = Utc::now() - wall(now, earlier);
        assert!((ago.num_milliseconds() - 60_000).abs() < 1000, "{ago:?}");
        // An instant after `now` is now, not the future.
        assert!(wall(earlier, now) <= Utc::now());
    }
}
