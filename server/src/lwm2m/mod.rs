//! The LwM2M service: the I/O shell that runs the sans-I/O engines (`lwm2m_proto`'s
//! `Lwm2mServer`, `ferrite_dtls`'s `DtlsServer`) on real UDP sockets and connects them to the
//! store, and [`Lwm2mService`], the cloneable handle the HTTP API and jobs use to reach devices.
//!
//! Code map: `socket` (one tokio task per socket: datagrams, timers, commands), `io_thread`
//! (the thread each socket task runs on), `bulk` (requests to many devices at once), `handlers`
//! (engine events → registry decisions, directory, store writes, `DeviceEvent`s), `persist` (the
//! ordered store-write worker), `psk` (the DTLS key cache), `restore` (start after a restart),
//! `directory` (who is registered where), `stored` (queued operations as JSON), `view` and
//! `events` (serde-friendly values, outcomes and events), `error`.
//!
//! Sockets: plain CoAP on `coap_addr` only when NoSec is enabled; CoAP over DTLS 1.2 PSK on
//! `coaps_addr`. Each socket task owns its engines; nothing else touches them.

mod bootstrap;
mod bulk;
mod directory;
mod error;
mod events;
mod handlers;
mod io_thread;
mod persist;
mod psk;
mod restore;
mod socket;
mod stored;
mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use ferrite_dtls::{DtlsServer, DtlsServerConfig};
use lwm2m_proto::lwm2m::server::{Lwm2mServer, ObservationId, OpOutcome, Operation, ServerConfig};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use self::bootstrap::{BootstrapHandle, BootstrapSettings};
pub use self::directory::RegistrationInfo;
pub use self::error::{ServiceError, ServiceErrorKind};
pub use self::events::{DeviceEvent, ErrorView, InvalidOperationId, OperationId, OperationResult};
pub use self::socket::{DtlsCounters, MAX_DATAGRAM, ObservationView, SocketStats};
pub use self::stored::{StoredOperation, StoredOperationError};
pub use self::view::{LinkView, OutcomeView, RecordView, ValueView, ValueViewError};
pub use crate::store::lwm2m::{QueuedRequest, RequestStatus, Transport};

use self::directory::Directory;
use self::io_thread::IoThread;
use self::persist::Job;
use self::psk::PskCache;
use self::restore::RestoreReport;
use self::socket::{Command, Requested, Shared, SocketTask, Submit};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Events kept for slow listeners before they start missing some (`broadcast` lag).
const EVENT_CAPACITY: usize = 4096;
/// Finished queued requests are kept this long for `operation()` before being pruned at start.
const KEEP_FINISHED_REQUESTS: Duration = Duration::from_secs(7 * 86_400);
/// Most queued requests listed per device.
const MAX_LISTED_REQUESTS: u32 = 100;

/// Where and how the service runs. [`ServiceSettings::from_config`] gives the production values;
/// tests shorten the engine's timings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Plain CoAP (NoSec) address; None keeps NoSec off (no socket at all).
    pub coap_addr: Option<SocketAddr>,
    /// CoAP over DTLS address.
    pub coaps_addr: SocketAddr,
    /// The LwM2M engine's configuration (lifetime grace, queue-mode window and expiry, CoAP).
    pub engine: ServerConfig,
    /// The DTLS layer's configuration (cipher suites, limits, idle timeout).
    pub dtls: DtlsServerConfig,
    /// The bootstrap server (`bootstrap.rs`); None: not started.
    pub bootstrap: Option<BootstrapSettings>,
}

/// How long a Register, Update or De-register waits for its store commit before the device is
/// answered 5.03: far above a commit's normal milliseconds (a batch of MAX_BATCH writes), well
/// below the device's wait for a separate response (EXCHANGE_LIFETIME, 247 s).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl ServiceSettings {
    pub fn from_config(config: &Config) -> ServiceSettings {
        let engine = ServerConfig {
            lifetime_grace: Duration::from_secs(config.lifetime_grace_secs),
            queued_request_expiry: Duration::from_secs(config.queued_request_expiry_secs),
            // Acknowledged means durable: registration changes are answered after their commit.
            persist_before_answer: Some(COMMIT_TIMEOUT),
            ..ServerConfig::default()
        };
        ServiceSettings {
            coap_addr: config.nosec.then_some(config.coap_addr),
            coaps_addr: config.coaps_addr,
            engine,
            dtls: DtlsServerConfig::default(),
            bootstrap: Some(BootstrapSettings::from_config(config)),
        }
    }
}

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the {transport} socket on {addr}: {source}")]
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid DTLS configuration: {0}")]
    Dtls(#[from] ferrite_dtls::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the LwM2M socket thread: {0}")]
    Thread(std::io::Error),
}

/// What a request through the service came to.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// The device answered.
    Done {
        operation: OperationId,
        outcome: OpOutcome,
    },
    /// No answer within the caller's `wait`. `queued`: the device is asleep (queue mode) and the
    /// request is persisted until it wakes (or expires); otherwise it is on the wire. Either way
    /// the result comes as [`DeviceEvent::OperationCompleted`] with this ID, and for a queued one
    /// also from [`Lwm2mService::operation`].
    Pending {
        operation: OperationId,
        queued: bool,
    },
}

/// Sizes and counters of the whole service.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStats {
    pub registrations: usize,
    pub psk_identities_cached: usize,
    pub sockets: Vec<SocketStats>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    psk: Arc<PskCache>,
    addrs: Vec<(Transport, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    bootstrap: Option<BootstrapHandle>,
    /// Socket tasks first, then the helpers.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    helpers: Mutex<Vec<JoinHandle<()>>>,
    /// The threads that run the LwM2M socket tasks, one each (not the bootstrap server's).
    threads: Mutex<Vec<IoThread>>,
}

/// The handle to the running LwM2M service: cheap to clone, safe to share between tasks.
///
/// - Requests: [`request`](Self::request) (Read, Write, Execute, Observe, … as
///   `lwm2m_proto::lwm2m::server::Operation`), [`cancel_observation`](Self::cancel_observation),
///   [`operation`](Self::operation) / [`queued_requests`](Self::queued_requests) for requests
///   waiting for sleeping devices.
/// - State: [`registrations`](Self::registrations), [`registration`](Self::registration),
///   [`observations`](Self::observations), [`stats`](Self::stats), [`events`](Self::events)
///   (live [`DeviceEvent`]s for SSE).
/// - Fleet changes: [`refresh_credentials`](Self::refresh_credentials) after a device's PSK was
///   created or changed, [`forget_credentials`](Self::forget_credentials) and
///   [`remove_registration`](Self::remove_registration) when it is decommissioned.
/// - [`shutdown`](Self::shutdown).
///
/// The device's lifecycle gates requests: a suspended device may be read (Read, Discover,
/// Observe) but not written (Write, Execute, Create, Delete, Write-Attributes), see
/// `fleet::lifecycle::allows_dm_write`.
#[derive(Debug, Clone)]
pub struct Lwm2mService {
    inner: Arc<Inner>,
}

/// A fresh unpredictable engine seed: registration IDs are what stops another NoSec host from
/// updating or de-registering a device (see `Lwm2mServer`).
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if crate::fleet::secrets::random_bytes(&mut bytes).is_err() {
        tracing::warn!("no OS randomness for the LwM2M engine seed; using the clock");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return nanos as u64 ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

/// Whether `operation` changes the device (refused while suspended).
fn is_dm_write(operation: &Operation) -> bool {
    matches!(
        operation,
        Operation::Write { .. }
            | Operation::WriteComposite(_)
            | Operation::Execute { .. }
            | Operation::Create { .. }
            | Operation::Delete(_)
            | Operation::WriteAttributes { .. }
    )
}

/// The receive buffer asked for on every LwM2M and bootstrap socket: a burst of datagrams (a
/// registration storm after a power cut, a handshake flood) waits in the kernel instead of being
/// dropped. The kernel caps it at `net.core.rmem_max`; the default (about 208 KiB) dropped
/// datagrams in the simulator's 1,000-meter runs.
const RECV_BUFFER_BYTES: usize = 4 << 20;

/// Opens a UDP socket registered with the current runtime's reactor (call it inside the
/// runtime that will serve the socket).
fn bind(transport: Transport, addr: SocketAddr) -> Result<UdpSocket, StartError> {
    let failed = |source| StartError::Bind {
        transport,
        addr,
        source,
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(failed)?;
    if let Err(error) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
        tracing::warn!(%addr, %error, "cannot enlarge the socket's receive buffer");
    }
    socket.set_nonblocking(true).map_err(failed)?;
    socket.bind(&addr.into()).map_err(failed)?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(%addr, ?transport, granted, "receive buffer");
    UdpSocket::from_std(socket.into()).map_err(failed)
}

impl Lwm2mService {
    /// Opens the sockets, loads the DTLS keys, restores persisted registrations and queued
    /// requests, and starts serving.
    pub async fn start(
        store: Store,
        settings: ServiceSettings,
    ) -> Result<Lwm2mService, StartError> {
        let mut sockets = Vec::new();
        if let Some(addr) = settings.coap_addr {
            sockets.push((Transport::Coap, addr));
        }
        sockets.push((Transport::Coaps, settings.coaps_addr));
        // Each socket task on its own thread (`io_thread.rs`), its socket on that thread's reactor;
        // in socket order, like `tasks` below.
        let mut threads = Vec::new();
        let sockets = sockets
            .into_iter()
            .map(|(transport, addr)| {
                let io =
                    IoThread::start(&format!("ferrite-{transport}")).map_err(StartError::Thread)?;
                let socket = io.enter(|| bind(transport, addr))?;
                threads.push(io);
                Ok((transport, socket))
            })
            .collect::<Result<Vec<_>, StartError>>()?;

        let (psk, misses) = PskCache::new();
        let loaded = psk.load_all(&store).await?;
        // Credentials bootstrap delivered that their devices have not used yet.
        for pending in store.all_pending_psk_credentials().await? {
            psk.insert(&pending.identity, pending.key.as_bytes());
        }
        tracing::info!(identities = loaded, "DTLS keys loaded");

        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (registrations, _) = broadcast::channel(EVENT_CAPACITY);
        let mut channels = Vec::new();
        let mut senders = Vec::new();
        for (transport, _) in &sockets {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push((*transport, tx));
            channels.push(rx);
        }
        let shared = Arc::new(Shared {
            store: store.clone(),
            directory: Directory::default(),
            events,
            registrations,
            persist: persist_tx,
            nosec: settings.coap_addr.is_some(),
            sockets: senders,
            runtime: tokio::runtime::Handle::current(),
        });

        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for ((transport, socket), commands) in sockets.into_iter().zip(channels) {
            let local_addr = socket.local_addr().map_err(|source| StartError::Bind {
                transport,
                addr: settings.coaps_addr,
                source,
            })?;
            addrs.push((transport, local_addr));
            let dtls = match transport {
                Transport::Coaps => Some(DtlsServer::new(
                    settings.dtls.clone(),
                    psk.clone() as Arc<dyn ferrite_dtls::PskStore>,
                )?),
                Transport::Coap => None,
            };
            tasks.push(SocketTask {
                transport,
                socket,
                local_addr,
                engine: Lwm2mServer::new(settings.engine.clone(), random_seed()),
                dtls,
                commands,
                shared: shared.clone(),
                ops: Default::default(),
                submitting: None,
                sleep: Default::default(),
                awake_window: settings.engine.queue_awake_window,
                counters: Default::default(),
                outbox: Vec::new(),
            });
        }

        let mut report = RestoreReport::default();
        let registrations = store.lwm2m_registrations().await?;
        restore::restore_registrations(
            &mut tasks,
            &registrations,
            settings.engine.lifetime_grace,
            &mut report,
        );
        let observations = store.lwm2m_observations().await?;
        restore::restore_observations(&mut tasks, &observations, &mut report);
        // Numbers given before the restart, to observations that have ended since too, are
        // not given again.
        let next = ObservationId::from_u64(store.next_observation_number().await?);
        for task in &mut tasks {
            task.engine.number_observations_from(next);
        }
        let requests = store.pending_queued_requests().await?;
        restore::resubmit_requests(&mut tasks, requests, &mut report);
        if registrations.len() + report.requests_resubmitted + report.requests_failed > 0 {
            tracing::info!(
                restored = report.restored,
                expired = report.expired,
                dropped = report.dropped,
                observations_restored = report.observations_restored,
                observations_dropped = report.observations_dropped,
                requests_resubmitted = report.requests_resubmitted,
                requests_failed = report.requests_failed,
                "persisted LwM2M state restored"
            );
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let lwm2m_coaps_addr = addrs
            .iter()
            .find(|(t, _)| *t == Transport::Coaps)
            .map_or(settings.coaps_addr, |(_, a)| *a);
        let mut socket_tasks: Vec<JoinHandle<()>> = tasks
            .into_iter()
            .zip(&threads)
            .map(|(task, io)| io.spawn(task.run(shutdown_rx.clone())))
            .collect();
        let bootstrap = match &settings.bootstrap {
            Some(bs) => {
                let (handle, bs_tasks) = bootstrap::start(
                    &store,
                    bs,
                    psk.clone(),
                    lwm2m_coaps_addr,
                    settings.coap_addr.is_some(),
                    shared.events.clone(),
                    &shutdown_rx,
                )
                .await?;
                socket_tasks.extend(bs_tasks);
                Some(handle)
            }
            None => None,
        };
        let mut helpers = vec![
            tokio::spawn(persist::run(store.clone(), persist_rx)),
            tokio::spawn(psk::run_lookups(psk.clone(), store.clone(), misses)),
            tokio::spawn(bootstrap::retire_replaced_identities(
                store.clone(),
                psk.clone(),
                shared.clone(),
                shared.registrations.subscribe(),
            )),
        ];
        let prune_store = store.clone();
        helpers.push(tokio::spawn(async move {
            let before =
                Utc::now() - chrono::Duration::from_std(KEEP_FINISHED_REQUESTS).unwrap_or_default();
            match prune_store.prune_queued_requests(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old finished queued requests deleted"),
                Err(error) => tracing::warn!(%error, "cannot prune finished queued requests"),
            }
        }));

        Ok(Lwm2mService {
            inner: Arc::new(Inner {
                shared,
                psk,
                addrs,
                shutdown,
                bootstrap,
                tasks: Mutex::new(socket_tasks),
                helpers: Mutex::new(helpers),
                threads: Mutex::new(threads),
            }),
        })
    }

    /// The address a socket is bound to (the real port when configured with port 0).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// The bootstrap server, when it runs.
    pub fn bootstrap(&self) -> Option<&BootstrapHandle> {
        self.inner.bootstrap.as_ref()
    }

    /// The store the service writes to.
    pub fn store(&self) -> &Store {
        &self.inner.shared.store
    }

    fn sender(
        &self,
        transport: Transport,
    ) -> Result<&mpsc::UnboundedSender<Command>, ServiceError> {
        self.inner
            .shared
            .sender(transport)
            .ok_or(ServiceError::Unavailable)
    }

    /// Checks the device's lifecycle for `operation` and finds the socket holding its
    /// registration.
    async fn route(
        &self,
        endpoint: &str,
        name: &'static str,
        writes: bool,
    ) -> Result<Transport, ServiceError> {
        let state = self
            .store()
            .lifecycle_state(endpoint)
            .await?
            .ok_or_else(|| ServiceError::UnknownDevice(endpoint.to_owned()))?;
        let transport = self
            .inner
            .shared
            .directory
            .get(endpoint)
            .map(|info| info.transport);
        bulk::admit(endpoint, Some(state), transport, name, writes)
    }

    /// Sends `operation` to `endpoint` and waits up to `wait` for the answer.
    ///
    /// The request goes to the socket whose engine holds the device's registration. A device in
    /// queue mode that is asleep gets it when it next wakes (its Update): the request is persisted
    /// first (it survives a restart) and, if `wait` runs out, the answer is
    /// [`OpResult::Pending`] with the ID its completion will carry. Errors: unknown or
    /// unregistered device (404), lifecycle forbids it (409: suspended devices are read-only),
    /// the device's error code (502), no answer (504); see [`ServiceErrorKind`].
    pub async fn request(
        &self,
        endpoint: &str,
        operation: Operation,
        wait: Duration,
    ) -> Result<OpResult, ServiceError> {
        let transport = self
            .route(endpoint, operation.name(), is_dm_write(&operation))
            .await?;
        self.submit(transport, endpoint, Requested::Operation(operation), wait)
            .await
    }

    /// Cancels observation `observation` (the number in [`DeviceEvent::Notification`] and
    /// [`OutcomeView::Observing`]) of `endpoint` (TS Core 1.1 §6.4.3).
    pub async fn cancel_observation(
        &self,
        endpoint: &str,
        observation: u64,
        wait: Duration,
    ) -> Result<OpResult, ServiceError> {
        let transport = self.route(endpoint, "Cancel Observation", false).await?;
        self.submit(transport, endpoint, Requested::Cancel(observation), wait)
            .await
    }

    async fn submit(
        &self,
        transport: Transport,
        endpoint: &str,
        request: Requested,
        wait: Duration,
    ) -> Result<OpResult, ServiceError> {
        let id = OperationId::random();
        let (completion_tx, completion_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.sender(transport)?
            .send(Command::Submit(Box::new(Submit {
                id,
                endpoint: endpoint.to_owned(),
                request,
                expiry: None,
                persisted: false,
                created_at: Utc::now(),
                completion: Some(completion_tx),
                reply: Some(reply_tx),
            })))
            .map_err(|_| ServiceError::Unavailable)?;
        let started = Instant::now();
        let ack = reply_rx.await.map_err(|_| ServiceError::Unavailable)??;
        if let Some(durable) = ack.durable
            && !matches!(durable.await, Ok(true))
        {
            // It waits in the engine's queue all the same; only a restart would lose it.
            tracing::warn!(%endpoint, operation = %id, "a queued request could not be persisted");
        }
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, completion_rx).await {
            Ok(Ok(Ok(outcome))) => Ok(OpResult::Done {
                operation: id,
                outcome,
            }),
            Ok(Ok(Err(error))) => Err(error.into()),
            Ok(Err(_)) => Err(ServiceError::Unavailable),
            Err(_) => Ok(OpResult::Pending {
                operation: id,
                queued: ack.queued,
            }),
        }
    }

    /// A request persisted for a sleeping device (pending or finished, with its result JSON).
    pub async fn operation(&self, id: OperationId) -> Result<Option<QueuedRequest>, ServiceError> {
        Ok(self.store().queued_request(&id.to_string()).await?)
    }

    /// The newest requests persisted for `endpoint` (any status), newest first.
    pub async fn queued_requests(
        &self,
        endpoint: &str,
    ) -> Result<Vec<QueuedRequest>, ServiceError> {
        Ok(self
            .store()
            .queued_requests_for(endpoint, MAX_LISTED_REQUESTS)
            .await?)
    }

    /// Live events (registrations, notifications, Send data, completed requests). A receiver
    /// that falls more than 4096 events behind misses the oldest (`RecvError::Lagged`).
    ///
    /// Completed requests, notifications and Send data are only turned into events while
    /// somebody holds a receiver: subscribe before making the request whose completion you
    /// want to see.
    pub fn events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The registration-interface events alone ([`DeviceEvent::is_registration`]), for
    /// listeners that need nothing else: they are not woken by each completed request.
    pub fn registration_events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.inner.shared.registrations.subscribe()
    }

    /// Every current registration, in endpoint order.
    pub fn registrations(&self) -> Vec<RegistrationInfo> {
        self.inner.shared.directory.all()
    }

    /// `endpoint`'s current registration.
    pub fn registration(&self, endpoint: &str) -> Option<RegistrationInfo> {
        self.inner.shared.directory.get(endpoint)
    }

    /// `endpoint`'s established observations.
    pub async fn observations(&self, endpoint: &str) -> Result<Vec<ObservationView>, ServiceError> {
        let info = self
            .registration(endpoint)
            .ok_or_else(|| ServiceError::NotRegistered(endpoint.to_owned()))?;
        let (reply, answer) = oneshot::channel();
        self.sender(info.transport)?
            .send(Command::Observations {
                endpoint: endpoint.to_owned(),
                reply,
            })
            .map_err(|_| ServiceError::Unavailable)?;
        answer.await.map_err(|_| ServiceError::Unavailable)
    }

    /// Sizes and counters of every socket.
    pub async fn stats(&self) -> ServiceStats {
        let mut sockets = Vec::new();
        for (_, sender) in &self.inner.shared.sockets {
            let (reply, answer) = oneshot::channel();
            if sender.send(Command::Stats { reply }).is_ok()
                && let Ok(stats) = answer.await
            {
                sockets.push(stats);
            }
        }
        ServiceStats {
            registrations: self.inner.shared.directory.len(),
            psk_identities_cached: self.inner.psk.len(),
            sockets,
        }
    }

    /// Re-reads `identity`'s key from the store into the DTLS key cache (call after creating a
    /// device or changing its key). An identity that is gone or revoked is dropped from the cache
    /// and its session closed. Returns whether the identity has live credentials.
    pub async fn refresh_credentials(&self, identity: &str) -> Result<bool, ServiceError> {
        let live = self.inner.psk.refresh(self.store(), identity).await?;
        if !live {
            self.close_identity(identity);
        }
        Ok(live)
    }

    /// Puts a key the caller has just stored (a device created with a generated key) into the
    /// DTLS key cache without reading it back from the store.
    pub fn cache_credentials(&self, identity: &str, key: &crate::fleet::secrets::PskKey) {
        self.inner.psk.insert(identity, key.as_bytes());
    }

    /// Drops `identity` from the DTLS key cache and closes its session (decommissioning): its
    /// next handshake fails.
    pub fn forget_credentials(&self, identity: &str) {
        self.inner.psk.remove(identity);
        self.close_identity(identity);
    }

    fn close_identity(&self, identity: &str) {
        if let Some(sender) = self.inner.shared.sender(Transport::Coaps) {
            let _ = sender.send(Command::CloseIdentity {
                identity: identity.to_owned(),
            });
        }
    }

    /// Ends `endpoint`'s registration on the server side (e.g. decommissioned): its requests fail,
    /// the device is marked offline, and its next Update gets 4.04 (it then registers again,
    /// which the registry may refuse). Returns whether it was registered.
    pub async fn remove_registration(&self, endpoint: &str) -> Result<bool, ServiceError> {
        let Some(info) = self.registration(endpoint) else {
            return Ok(false);
        };
        let (reply, answer) = oneshot::channel();
        self.sender(info.transport)?
            .send(Command::Remove {
                endpoint: endpoint.to_owned(),
                registration_id: None,
                kind: crate::store::lwm2m::RegistrationEventKind::Removed,
                mark_offline: true,
                reply: Some(reply),
            })
            .map_err(|_| ServiceError::Unavailable)?;
        answer.await.map_err(|_| ServiceError::Unavailable)
    }

    /// Records the firmware version `endpoint` reported (`inventory`) through the persistence
    /// worker: written with the next batch of registration writes, not in a transaction of its
    /// own, and only when it differs from the registry's. False when the service is stopping.
    pub fn record_firmware_version(&self, endpoint: &str, version: &str) -> bool {
        self.inner
            .shared
            .persist
            .send(Job::Firmware {
                endpoint: endpoint.to_owned(),
                version: version.to_owned(),
            })
            .is_ok()
    }

    /// Waits until every store write asked for so far is done.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.shared.persist.send(Job::Barrier(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Stops the sockets (in-flight requests fail with `Unavailable`), then finishes the pending
    /// store writes. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            let _ = task.await;
        }
        // Their tasks have ended: the threads end at once (joined on drop, microseconds).
        drop(std::mem::take(
            &mut *self
                .inner
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ));
        self.flush().await;
        let helpers: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .helpers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for helper in helpers {
            helper.abort();
        }
    }
}
