//! The LwM2M client side, sans I/O: [`Lwm2mClient`] registers with one LwM2M server (OMA LwM2M
//! TS Core 1.1 §6.2), answers its device-management requests from an [`ObjectStore`] (§6.3),
//! notifies observations (§6.4) and sends data (`/dp`, §6.4.4 "Send"). One per simulated device.
//!
//! - [`config`] holds [`ClientConfig`];
//! - [`store`] holds the [`ObjectStore`] trait the application implements, [`WriteMode`],
//!   [`StoreError`];
//! - [`memory_store`] holds [`MemoryObjectStore`], a compact store enforcing the object model;
//! - [`attributes`] holds [`NotifyAttributes`] (Write-Attributes, inheritance, thresholds);
//! - `registration.rs`: Register / Update / De-register and the lifetime;
//! - `dm.rs`: the device-management requests;
//! - `observe.rs`: observations (Observe and 1.1's Observe-Composite) and when they notify;
//! - `links.rs`: the registration payload;
//! - `bootstrap.rs`: client-initiated bootstrap ([`Lwm2mClient::bootstrap`], [`BootstrapOutcome`]).

pub mod attributes;
mod bootstrap;
pub mod config;
mod dm;
mod links;
pub mod memory_store;
mod observe;
mod registration;
pub mod store;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use lwm2m_objects::Path;
use lwm2m_objects::codec::{EncodeError, Record, encode_records};
use thiserror::Error;

use self::attributes::AttributeTable;
use self::config::Settings;
use self::observe::Observation;
use self::registration::Registration;
use crate::coap::{
    CoapEndpoint, Code, ContentFormat as CoapFormat, EndpointStats, Event, FailureReason, Request,
    RequestId, Response,
};
use crate::lwm2m::registration::{Lwm2mVersion, UpdateParams};

pub use self::attributes::{AttributeError, NotifyAttributes};
pub use self::bootstrap::BootstrapOutcome;
pub use self::config::{ClientConfig, DEFAULT_QUEUE_AWAKE_TIME};
pub use self::memory_store::MemoryObjectStore;
pub use self::store::{ObjectStore, StoreError, WriteMode};

/// The address the CoAP endpoint uses for the one server. The client talks to a single peer;
/// the I/O shell knows the real address (and the DTLS session), so datagrams carry none.
const SERVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Identifies a [`Lwm2mClient::send`] in [`ClientEvent::SendCompleted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(pub u32);

/// Which registration interface operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationOperation {
    /// `POST /rd`.
    Register,
    /// `POST /rd/{location}`.
    Update,
    /// `DELETE /rd/{location}`.
    Deregister,
}

/// Why a request of the client to the server failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestFailure {
    /// The server answered with an error code (4.xx, 5.xx) or an unexpected success code.
    #[error("rejected with {0}")]
    Rejected(Code),
    /// No answer (timeout), RST, or a transfer failure.
    #[error("{0}")]
    Transport(FailureReason),
}

/// What the application must know about, from [`Lwm2mClient::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// Register succeeded (2.01); `location` is the Location-Path, e.g. `rd/5a3f`.
    Registered {
        /// The registration's location, `/`-separated, without a leading slash.
        location: String,
    },
    /// An Update succeeded (2.04).
    Updated,
    /// De-register succeeded (2.02).
    Deregistered,
    /// A registration operation failed. Nothing is retried automatically except the Register
    /// that TS Core 1.1 §6.2.2 requires after an Update answered 4.04; the application decides
    /// when to call [`Lwm2mClient::register`] or [`Lwm2mClient::update`] again.
    RegistrationFailed {
        /// What was attempted.
        operation: RegistrationOperation,
        /// Why it failed.
        reason: RequestFailure,
    },
    /// The lifetime ran out without a successful Update: the server has dropped the
    /// registration (TS Core 1.1 §6.2.1), the client is unregistered.
    RegistrationExpired,
    /// The server wrote `path` (Write, Write-Composite).
    Written {
        /// The instance, resource or resource instance written.
        path: Path,
    },
    /// The server executed `path` (e.g. `/3/0/4` Reboot: the simulator restarts the device).
    Executed {
        /// The resource.
        path: Path,
        /// The argument text, if any (TS Core 1.1 §5.4.5).
        args: Option<String>,
    },
    /// The server created the instance `path`.
    Created {
        /// The new instance.
        path: Path,
    },
    /// The server deleted the instance `path`.
    Deleted {
        /// The deleted instance.
        path: Path,
    },
    /// The server started observing `path`.
    ObservationStarted {
        /// The observed path; the root (`/`) for an Observe-Composite (LwM2M 1.1+).
        path: Path,
    },
    /// An observation of `path` ended (Observe = 1, RST, unacknowledged notification, target
    /// deleted, new registration).
    ObservationStopped {
        /// The path that was observed.
        path: Path,
    },
    /// A [`Lwm2mClient::send`] finished.
    SendCompleted {
        /// Which send.
        id: SendId,
        /// 2.04 from the server, or why not.
        result: Result<(), RequestFailure>,
    },
}

/// Why the client refused an application call.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ClientError {
    /// The operation needs a registration (Update, De-register, Send).
    #[error("not registered")]
    NotRegistered,
    /// A Register or De-register is already under way.
    #[error("a registration operation is already in progress")]
    Busy,
    /// The client's LwM2M version lacks the operation (Send needs 1.1).
    #[error("LwM2M {0} does not support this operation")]
    NotSupported(Lwm2mVersion),
    /// The records could not be encoded.
    #[error("cannot encode the records: {0}")]
    Encode(EncodeError),
}

/// Where the client is in the registration interface (TS Core 1.1 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered (never, after De-register, after a failure or expiry).
    Unregistered,
    /// A Register is in flight.
    Registering,
    /// Registered (an Update may be in flight).
    Registered,
    /// A De-register is in flight.
    Deregistering,
}

/// An LwM2M client bound to one server: a sans-I/O state machine in the style of quinn-proto,
/// on top of a [`CoapEndpoint`].
///
/// # Call order
///
/// The driver (the simulator's UDP/DTLS task, or a test) owns the socket, the DTLS session and
/// the clock and loops:
///
/// 1. Feed inputs, each with the current time: [`handle_datagram`](Self::handle_datagram) for
///    every datagram from the server, [`handle_timeout`](Self::handle_timeout) when the deadline
///    from `poll_timeout` has passed, and the application's calls
///    ([`register`](Self::register), [`update`](Self::update),
///    [`deregister`](Self::deregister), [`send`](Self::send),
///    [`notify_changed`](Self::notify_changed), [`with_store`](Self::with_store)).
/// 2. After any input, drain [`poll_transmit`](Self::poll_transmit) (datagrams to the server)
///    and [`poll_event`](Self::poll_event).
/// 3. Re-arm the timer with [`poll_timeout`](Self::poll_timeout); it can move after any input.
///
/// Device-management requests are answered inside `handle_datagram`, from the store; the
/// events tell the application what happened. `now` must not go backwards.
///
/// # Queue mode
///
/// With `binding.queue`, the client is awake for [`ClientConfig::queue_awake_time`] after each
/// datagram it sends ([`awake_until`](Self::awake_until)). The client itself still processes
/// whatever it is given: the I/O shell (or the simulator) decides to drop datagrams that arrive
/// while it sleeps.
///
/// # Example
///
/// A client registering with a server played by a bare [`CoapEndpoint`]:
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Instant;
/// use lwm2m_objects::{ObjectModel, Value};
/// use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, Event, Response};
/// use lwm2m_proto::lwm2m::client::{ClientConfig, ClientEvent, Lwm2mClient, MemoryObjectStore};
/// use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
///
/// let now = Instant::now();
/// let store = MemoryObjectStore::new(ObjectModel::builtin())
///     .with_instance(3, 0, [(0, Value::String("Ferrite".into()))]);
/// let config = ClientConfig::new("meter-1", Lwm2mVersion::V1_1).with_lifetime(300);
/// let mut client = Lwm2mClient::new(config, store, 7);
/// let mut server = CoapEndpoint::new(CoapConfig::default(), 8);
/// let client_addr = SocketAddr::from(([192, 0, 2, 2], 56830));
///
/// client.register(now).expect("not registered yet");
/// while let Some(datagram) = client.poll_transmit() {
///     server.handle_datagram(now, client_addr, &datagram);
/// }
/// while let Some(event) = server.poll_event() {
///     if let Event::Request { request, responder, .. } = event {
///         assert_eq!(request.path(), ["rd"]);
///         let created = Response::new(Code::CREATED).with_location_path(["rd", "5a3f"]);
///         server.respond(now, responder, created).expect("pending");
///     }
/// }
/// while let Some(t) = server.poll_transmit() {
///     client.handle_datagram(now, &t.bytes);
/// }
/// assert_eq!(
///     client.poll_event(),
///     Some(ClientEvent::Registered { location: "rd/5a3f".into() })
/// );
/// // 270 s later (the 300 s lifetime minus a 30 s margin) the client sends its Update itself.
/// client.handle_timeout(now + std::time::Duration::from_secs(270));
/// let update = client.poll_transmit().expect("an Update");
/// assert!(update.ends_with(b"5a3f"), "POST /rd/5a3f");
/// ```
///
/// # Memory
///
/// An idle registered client holds its CoAP endpoint, its settings (endpoint name), the location
/// and the store; observations, attributes and pending sends are small `Vec`s that allocate
/// only when used. See the `memory` test for the measured figure.
#[derive(Debug)]
pub struct Lwm2mClient<S: ObjectStore> {
    coap: CoapEndpoint,
    settings: Settings,
    store: S,
    registration: Registration,
    observations: Vec<Observation>,
    attributes: AttributeTable,
    sends: Vec<(RequestId, SendId)>,
    events: VecDeque<ClientEvent>,
    next_send_id: u32,
    /// Observe sequence numbers, shared by every observation so they only grow (RFC 7641 §4.4).
    next_observe_seq: u32,
    /// The `now` of the latest input, for stamping the wake window when a datagram leaves.
    last_now: Option<Instant>,
    awake_until: Option<Instant>,
    /// EXCHANGE_LIFETIME after the last datagram in either direction: then every message ID and
    /// deduplication record has expired and an idle endpoint can be replaced by a fresh one
    /// (see [`Lwm2mClient::recycle_idle_endpoint`]).
    idle_check_at: Option<Instant>,
    /// The caller's seed and how many endpoints were built from it.
    seed: u64,
    endpoint_generation: u32,
    /// Client-initiated bootstrap (TS Core 1.1 §6.1).
    bootstrap: self::bootstrap::Bootstrap,
}

impl<S: ObjectStore> Lwm2mClient<S> {
    /// A client for `config`, serving `store`. `seed` drives CoAP tokens, message IDs and jitter:
    /// distinct per client (and unpredictable in production), fixed in tests.
    pub fn new(config: ClientConfig, store: S, seed: u64) -> Lwm2mClient<S> {
        let (settings, coap_config) = Settings::from_config(config);
        Lwm2mClient {
            coap: CoapEndpoint::new(coap_config, seed),
            settings,
            store,
            registration: Registration::Unregistered,
            observations: Vec::new(),
            attributes: AttributeTable::default(),
            sends: Vec::new(),
            events: VecDeque::new(),
            next_send_id: 0,
            next_observe_seq: 0,
            last_now: None,
            awake_until: None,
            idle_check_at: None,
            seed,
            endpoint_generation: 0,
            bootstrap: Default::default(),
        }
    }

    /// Processes one datagram from the server: answers its requests, takes the answers to ours.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        self.last_now = Some(now);
        self.idle_check_at = Some(now + self.coap.config().exchange_lifetime);
        self.coap.handle_datagram(now, SERVER, bytes);
        self.after_input(now);
    }

    /// Processes every timer due at `now`: retransmissions, the automatic Update, the lifetime,
    /// notifications whose `pmin`/`pmax` came.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.coap.handle_timeout(now);
        self.after_input(now);
    }

    /// The next datagram for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let t = self.coap.poll_transmit()?;
        if let Some(now) = self.last_now {
            if self.settings.binding.queue {
                self.awake_until = Some(now + self.settings.queue_awake_time);
            }
            self.idle_check_at = Some(now + self.coap.config().exchange_lifetime);
        }
        Some(t.bytes)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.coap.poll_timeout(),
            self.registration.deadline(self.settings.lifetime),
            self.next_observation_deadline(),
            self.idle_check_at,
            self.bootstrap.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Tells the client that the value at `path` changed (the application changed it in its
    /// store): observations of `path`, of what contains it and of what it contains are due for a
    /// notification, subject to their attributes.
    pub fn notify_changed(&mut self, now: Instant, path: Path) {
        self.last_now = Some(now);
        self.mark_changed(&path);
        self.after_input(now);
    }

    /// Lets the application change its store, then notifies the observations of the paths the
    /// store reports through [`ObjectStore::pop_change`] (e.g. [`MemoryObjectStore::set`]).
    pub fn with_store<R>(&mut self, now: Instant, f: impl FnOnce(&mut S) -> R) -> R {
        self.last_now = Some(now);
        let out = f(&mut self.store);
        self.after_input(now);
        out
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably. Changes it reports through [`ObjectStore::pop_change`] are picked up
    /// at the next input; [`with_store`](Self::with_store) picks them up at once.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back (e.g. to build a fresh client after a simulated reboot).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Sends Data (`POST /dp`, OMA LwM2M TS Core 1.1 §6.4.4; 1.1+ only, registered only) with
    /// `records` (paths, values, optional times) in the configured SenML format. The outcome
    /// arrives as [`ClientEvent::SendCompleted`].
    pub fn send(&mut self, now: Instant, records: &[Record]) -> Result<SendId, ClientError> {
        if !self.settings.version.is_1_1_or_later() {
            return Err(ClientError::NotSupported(self.settings.version));
        }
        if self.registration.location().is_none() {
            return Err(ClientError::NotRegistered);
        }
        let format = self.settings.send_format;
        let payload = encode_records(format, records).map_err(ClientError::Encode)?;
        self.last_now = Some(now);
        let request = Request::post()
            .with_path(["dp"])
            .with_content_format(CoapFormat(format.to_u16()))
            .with_payload(payload);
        let request_id = self.coap.request(now, SERVER, request);
        let id = SendId(self.next_send_id);
        self.next_send_id = self.next_send_id.wrapping_add(1);
        self.sends.push((request_id, id));
        self.after_input(now);
        Ok(id)
    }

    /// Where the registration stands.
    pub fn state(&self) -> RegistrationState {
        self.registration.state()
    }

    /// The registration's location (`rd/5a3f`) while registered.
    pub fn location(&self) -> Option<&str> {
        self.registration.location()
    }

    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// The LwM2M version the client registers with.
    pub fn version(&self) -> Lwm2mVersion {
        self.settings.version
    }

    /// The current lifetime in seconds (changed by a successful Update with `lt`).
    pub fn lifetime(&self) -> u32 {
        self.settings.lifetime
    }

    /// Queue mode: until when the client is reachable (`None` before it sent anything, or
    /// without queue mode).
    pub fn awake_until(&self) -> Option<Instant> {
        self.awake_until
    }

    /// Whether the client is reachable at `now`: always without queue mode; in queue mode
    /// within [`ClientConfig::queue_awake_time`] of its last transmission.
    pub fn is_awake(&self, now: Instant) -> bool {
        !self.settings.binding.queue || self.awake_until.is_some_and(|until| now < until)
    }

    /// The paths currently observed by the server.
    pub fn observed_paths(&self) -> impl Iterator<Item = Path> + '_ {
        self.observations.iter().map(|o| o.path)
    }

    /// The attributes written on exactly `path` (not inherited ones).
    pub fn attributes(&self, path: &Path) -> NotifyAttributes {
        self.attributes.get(path)
    }

    /// Sizes of the CoAP endpoint's state.
    pub fn coap_stats(&self) -> EndpointStats {
        self.coap.stats()
    }

    /// After any input: take the endpoint's events, the store's changes, then run what is due.
    fn after_input(&mut self, now: Instant) {
        self.drain_coap(now);
        while let Some(path) = self.store.pop_change() {
            self.mark_changed(&path);
        }
        self.registration_timers(now);
        self.bootstrap_timers(now);
        self.service_observations(now);
        // Notifications and requests sent above produce no events until the next datagram,
        // but a failure to encode could: drain once more.
        self.drain_coap(now);
        if self.idle_check_at.is_some_and(|at| now >= at) {
            self.idle_check_at = None;
            self.recycle_idle_endpoint();
        }
    }

    /// Replaces an idle CoAP endpoint by a fresh one and drops spare capacity, so an idle client
    /// holds about 1 KiB instead of the ~4 KiB of hash-map capacity an endpoint keeps after its
    /// first exchanges (`CoapEndpoint` has no way to shrink; see the `memory` test).
    ///
    /// Safe only when nothing is in flight and no observation is served (the endpoint keeps
    /// their request keys), and called EXCHANGE_LIFETIME after the last datagram: by then every
    /// deduplication record has expired and the message IDs the old endpoint used can no longer
    /// be confused with new ones (RFC 7252 §4.4), so a fresh random start is as good as the old
    /// counter.
    fn recycle_idle_endpoint(&mut self) {
        let stats = self.coap.stats();
        let idle = stats.exchanges == 0
            && stats.pending_requests == 0
            && stats.sent_messages == 0
            && stats.timers == 0
            && stats.queued_outputs == 0
            && stats.observations == 0
            && self.observations.is_empty()
            && self.sends.is_empty();
        if !idle {
            return;
        }
        self.endpoint_generation = self.endpoint_generation.wrapping_add(1);
        // A different seed per generation (SplitMix64 step), so tokens and IDs do not repeat.
        let seed = self
            .seed
            .wrapping_add(u64::from(self.endpoint_generation).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let config = self.coap.config().clone();
        self.coap = CoapEndpoint::new(config, seed);
        self.events.shrink_to_fit();
        self.sends.shrink_to_fit();
        self.observations.shrink_to_fit();
    }

    fn drain_coap(&mut self, now: Instant) {
        while let Some(event) = self.coap.poll_event() {
            match event {
                Event::Request {
                    request, responder, ..
                } => self.on_request(now, request, responder),
                Event::Response { id, response } => self.on_answer(now, id, Ok(response)),
                Event::RequestFailed { id, reason } => self.on_answer(now, id, Err(reason)),
                Event::ObserverGone { token, .. } => self.on_observer_gone(token),
                // The client observes nothing on the server.
                Event::Notification { .. } | Event::ObservationEnded { .. } => {}
            }
        }
    }

    /// The answer to one of our requests: registration, or a Send.
    fn on_answer(&mut self, now: Instant, id: RequestId, answer: Result<Response, FailureReason>) {
        if self.registration.owns(id) {
            self.on_registration_answer(now, answer);
            return;
        }
        if self.bootstrap.owns(id) {
            self.on_bootstrap_answer(now, answer);
            return;
        }
        if let Some(at) = self.sends.iter().position(|(r, _)| *r == id) {
            let (_, send_id) = self.sends.swap_remove(at);
            let result = match answer {
                Ok(r) if r.code == Code::CHANGED => Ok(()),
                Ok(r) => Err(RequestFailure::Rejected(r.code)),
                Err(reason) => Err(RequestFailure::Transport(reason)),
            };
            self.events.push_back(ClientEvent::SendCompleted {
                id: send_id,
                result,
            });
        }
    }

    /// Starts an Update with `params` (TS Core 1.1 §6.2.2), e.g. a new lifetime or binding.
    /// The object links are added when they changed since the last Register/Update. While an
    /// Update is in flight the new one is queued (parameters merged) and sent after it.
    pub fn update(&mut self, now: Instant, params: UpdateParams) -> Result<(), ClientError> {
        self.last_now = Some(now);
        let result = self.start_update(now, params);
        self.after_input(now);
        result
    }
}
