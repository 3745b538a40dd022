//! The bootstrap server's I/O shell (OMA LwM2M TS Core 1.1 §6.1, client-initiated bootstrap):
//! one tokio task per bootstrap socket — plain CoAP on `bs_coap_addr` only when NoSec is enabled,
//! CoAP over DTLS 1.2 PSK on `bs_coaps_addr` — owning `lwm2m_proto`'s sans-I/O
//! `BootstrapServer` and, for DTLS, a `ferrite_dtls::DtlsServer` whose PSK lookup is the factory
//! bootstrap identities ([`BsKeyCache`]). It shares the store with the LwM2M server and hands it
//! the fresh LwM2M-server credentials it delivers (pending until the device registers with them,
//! see `store::bootstrap`).
//!
//! A Bootstrap-Request is checked in a spawned task (the socket never waits for the database):
//! the DTLS identity must be a live bootstrap identity of the very endpoint named in `ep`, the
//! device not decommissioned; a NoSec request (NoSec socket) is accepted only for a NoSec device.
//! The account written comes from the device's group configuration.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use ferrite_dtls::{DtlsEvent, DtlsServer, DtlsServerConfig, PskIdentity, PskStore};
use lwm2m_proto::coap::Code;
use lwm2m_proto::lwm2m::bootstrap::{
    AccountSecurity, BootstrapEvent, BootstrapServer, BootstrapServerConfig, BootstrapTicket,
    ServerAccount,
};
use lwm2m_proto::lwm2m::server::PeerAuth;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use zeroize::Zeroizing;

use super::events::DeviceEvent;
use super::psk::PskCache;
use super::socket::{Command as LwCommand, MAX_DATAGRAM, Shared};
use crate::config::Config;
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::registry::SecurityMode;
use crate::store::Store;
use crate::store::lwm2m::Transport;

/// Default bootstrap ports (IANA assigns 5683/5684 to CoAP/CoAPS; 5783/5784 are the customary
/// LwM2M bootstrap ports, as Leshan's).
pub const DEFAULT_BS_COAP_PORT: u16 = 5783;
pub const DEFAULT_BS_COAPS_PORT: u16 = 5784;

/// Where and how the bootstrap server runs.
#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    /// Plain CoAP bootstrap address; None: no NoSec bootstrap socket.
    pub coap_addr: Option<SocketAddr>,
    /// CoAP over DTLS bootstrap address.
    pub coaps_addr: SocketAddr,
    /// The LwM2M server URI written to devices (`coaps://host:port`); None: derived from the
    /// LwM2M CoAPS socket's bound address (127.0.0.1 for an unspecified one — set it in
    /// production).
    pub public_coaps_uri: Option<String>,
    pub engine: BootstrapServerConfig,
    pub dtls: DtlsServerConfig,
}

/// The bootstrap address next to an LwM2M address: the same IP, the bootstrap port, or port 0
/// when the LwM2M socket itself asks for any port (tests).
fn beside(addr: SocketAddr, port: u16) -> SocketAddr {
    SocketAddr::new(addr.ip(), if addr.port() == 0 { 0 } else { port })
}

impl BootstrapSettings {
    pub fn from_config(config: &Config) -> BootstrapSettings {
        BootstrapSettings {
            coap_addr: config.nosec.then(|| {
                config
                    .bs_coap_addr
                    .unwrap_or_else(|| beside(config.coap_addr, DEFAULT_BS_COAP_PORT))
            }),
            coaps_addr: config
                .bs_coaps_addr
                .unwrap_or_else(|| beside(config.coaps_addr, DEFAULT_BS_COAPS_PORT)),
            public_coaps_uri: config.public_coaps_uri.clone(),
            engine: BootstrapServerConfig::default(),
            dtls: DtlsServerConfig::default(),
        }
    }
}

/// The LwM2M server URI for a bound CoAPS address.
pub(crate) fn derived_coaps_uri(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("coaps://{}", SocketAddr::new(ip, addr.port()))
}

/// The bootstrap DTLS key lookup: factory bootstrap identity → key, filled at start and by the
/// service handle; a miss is looked up asynchronously for the device's retry (as `psk.rs`).
pub(crate) struct BsKeyCache {
    keys: RwLock<HashMap<Vec<u8>, Zeroizing<Vec<u8>>>>,
    lookups: mpsc::Sender<String>,
}

impl std::fmt::Debug for BsKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BsKeyCache")
            .field("identities", &self.len())
            .finish_non_exhaustive()
    }
}

/// Misses waiting to be looked up; more are not looked up (devices retry).
const MAX_PENDING_LOOKUPS: usize = 1024;

impl BsKeyCache {
    fn new() -> (Arc<BsKeyCache>, mpsc::Receiver<String>) {
        // Bounded: a flood of unknown identities cannot grow memory or the database load.
        let (lookups, misses) = mpsc::channel(MAX_PENDING_LOOKUPS);
        (
            Arc::new(BsKeyCache {
                keys: RwLock::new(HashMap::new()),
                lookups,
            }),
            misses,
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn insert(&self, identity: &str, key: &[u8]) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(identity.as_bytes().to_vec(), Zeroizing::new(key.to_vec()));
    }

    fn remove(&self, identity: &str) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(identity.as_bytes());
    }

    async fn refresh(
        &self,
        store: &Store,
        identity: &str,
    ) -> Result<bool, crate::store::StoreError> {
        match store.bootstrap_credentials(identity).await? {
            Some(c) => {
                self.insert(&c.identity, c.key.as_bytes());
                Ok(true)
            }
            None => {
                self.remove(identity);
                Ok(false)
            }
        }
    }
}

impl PskStore for BsKeyCache {
    fn key(&self, identity: &[u8]) -> Option<Vec<u8>> {
        let found = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(identity)
            .map(|k| k.to_vec());
        if found.is_none()
            && let Ok(text) = std::str::from_utf8(identity)
        {
            let _ = self.lookups.try_send(text.to_owned());
        }
        found
    }
}

/// Commands to a bootstrap socket task.
#[derive(Debug)]
enum Command {
    Decision {
        ticket: BootstrapTicket,
        verdict: Result<ServerAccount, Code>,
    },
    /// Credentials revoked: end the DTLS session of `identity` and the endpoint's sequence.
    Revoke {
        endpoint: String,
        identity: Option<String>,
    },
}

/// What the bootstrap tasks share.
#[derive(Debug)]
struct BsShared {
    store: Store,
    /// The LwM2M server's key cache: delivered credentials are put there before they are
    /// written to the device, so its first handshake succeeds.
    lwm2m_psk: Arc<PskCache>,
    public_coaps_uri: String,
    nosec: bool,
    events: broadcast::Sender<DeviceEvent>,
}

/// The handle to the bootstrap server: addresses, and credential changes from the HTTP API.
#[derive(Debug, Clone)]
pub struct BootstrapHandle {
    cache: Arc<BsKeyCache>,
    shared: Arc<BsShared>,
    senders: Vec<(Transport, mpsc::UnboundedSender<Command>)>,
    addrs: Vec<(Transport, SocketAddr)>,
}

impl BootstrapHandle {
    /// The address a bootstrap socket is bound to.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// The LwM2M server URI written to devices.
    pub fn public_coaps_uri(&self) -> &str {
        &self.shared.public_coaps_uri
    }

    /// Bootstrap identities in the key cache.
    pub fn identities_cached(&self) -> usize {
        self.cache.len()
    }

    /// Re-reads a bootstrap identity after its credentials were set or changed.
    pub async fn refresh_identity(&self, identity: &str) -> Result<bool, crate::store::StoreError> {
        self.cache.refresh(&self.shared.store, identity).await
    }

    /// Caches factory bootstrap credentials just stored (device creation, import), so the
    /// device's first bootstrap handshake finds its key without a store lookup.
    pub fn cache_credentials(&self, identity: &str, key: &crate::fleet::secrets::PskKey) {
        self.cache.insert(identity, key.as_bytes());
    }

    /// Drops a replaced factory bootstrap identity from the key cache: its next handshake fails.
    pub fn forget_identity(&self, identity: &str) {
        self.cache.remove(identity);
    }

    /// Puts staged LwM2M-server credentials into the LwM2M key cache (rotation).
    pub fn accept_dm_credentials(&self, identity: &str, key: &[u8]) {
        self.shared.lwm2m_psk.insert(identity, key);
    }

    /// Drops revoked identities (bootstrap and pending LwM2M-server ones) from both key caches
    /// and ends the endpoint's bootstrap session and sequence (decommissioning).
    pub fn revoke(&self, endpoint: &str, identities: &[String]) {
        for identity in identities {
            self.cache.remove(identity);
            self.shared.lwm2m_psk.remove(identity);
        }
        for (_, sender) in &self.senders {
            let _ = sender.send(Command::Revoke {
                endpoint: endpoint.to_owned(),
                identity: identities.first().cloned(),
            });
        }
    }
}

/// A bootstrap socket task.
struct BsTask {
    transport: Transport,
    socket: UdpSocket,
    local_addr: SocketAddr,
    engine: BootstrapServer,
    dtls: Option<DtlsServer>,
    commands: mpsc::UnboundedReceiver<Command>,
    reply: mpsc::UnboundedSender<Command>,
    shared: Arc<BsShared>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
}

/// Binds the bootstrap sockets, loads the bootstrap keys and starts the tasks; returns the
/// handle and the task handles (stopped by `shutdown`).
pub(crate) async fn start(
    store: &Store,
    settings: &BootstrapSettings,
    lwm2m_psk: Arc<PskCache>,
    lwm2m_coaps_addr: SocketAddr,
    nosec: bool,
    events: broadcast::Sender<DeviceEvent>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(BootstrapHandle, Vec<tokio::task::JoinHandle<()>>), super::StartError> {
    let mut sockets = Vec::new();
    if let Some(addr) = settings.coap_addr {
        sockets.push((Transport::Coap, super::bind(Transport::Coap, addr)?, addr));
    }
    sockets.push((
        Transport::Coaps,
        super::bind(Transport::Coaps, settings.coaps_addr)?,
        settings.coaps_addr,
    ));
    let (cache, mut misses) = BsKeyCache::new();
    for c in store.all_bootstrap_credentials().await? {
        cache.insert(&c.identity, c.key.as_bytes());
    }
    tracing::info!(identities = cache.len(), "bootstrap DTLS keys loaded");
    let shared = Arc::new(BsShared {
        store: store.clone(),
        lwm2m_psk,
        public_coaps_uri: settings
            .public_coaps_uri
            .clone()
            .unwrap_or_else(|| derived_coaps_uri(lwm2m_coaps_addr)),
        nosec,
        events,
    });
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    let mut addrs = Vec::new();
    for (transport, socket, addr) in sockets {
        let local_addr = socket
            .local_addr()
            .map_err(|source| super::StartError::Bind {
                transport,
                addr,
                source,
            })?;
        let dtls = match transport {
            Transport::Coaps => Some(DtlsServer::new(
                settings.dtls.clone(),
                cache.clone() as Arc<dyn PskStore>,
            )?),
            Transport::Coap => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push((transport, tx.clone()));
        addrs.push((transport, local_addr));
        let task = BsTask {
            transport,
            socket,
            local_addr,
            engine: BootstrapServer::new(settings.engine.clone(), super::random_seed()),
            dtls,
            commands: rx,
            reply: tx,
            shared: shared.clone(),
            outbox: Vec::new(),
        };
        handles.push(tokio::spawn(task.run(shutdown.clone())));
    }
    let lookup_cache = cache.clone();
    let lookup_store = store.clone();
    // Its sender lives in the cache (the service keeps it), so the channel never closes: the
    // task ends on the shutdown signal, or the service's shutdown would wait for it forever.
    let mut stop = shutdown.clone();
    handles.push(tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            let identity = tokio::select! {
                identity = misses.recv() => match identity {
                    Some(identity) => identity,
                    None => break,
                },
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            };
            match lookup_cache.refresh(&lookup_store, &identity).await {
                Ok(true) => {
                    tracing::info!(%identity, "bootstrap identity loaded for the next handshake")
                }
                Ok(false) => tracing::debug!(%identity, "unknown bootstrap identity"),
                Err(error) => {
                    tracing::error!(%identity, %error, "cannot look up a bootstrap identity")
                }
            }
        }
    }));
    Ok((
        BootstrapHandle {
            cache,
            shared,
            senders,
            addrs,
        },
        handles,
    ))
}

/// Drops the LwM2M-server identity a device's first registration with bootstrap-delivered
/// credentials replaced (`Store::may_register` promotes them): out of the key cache, its DTLS
/// session closed. Runs until the event stream closes.
pub(crate) async fn retire_replaced_identities(
    store: Store,
    psk: Arc<PskCache>,
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<DeviceEvent>,
) {
    loop {
        let endpoint = match events.recv().await {
            // Credentials are promoted only by a Register over DTLS with the delivered identity
            // (`Store::may_register`): a NoSec Register has nothing to retire, and is not worth a
            // query each in a registration storm.
            Ok(DeviceEvent::Registered { registration, .. })
                if registration.transport == Transport::Coaps =>
            {
                registration.endpoint
            }
            Ok(_) => continue,
            // Missed events: the replaced key stays cached (refused at Register, since the
            // device's identity changed) until the next registration of that device or a restart.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match store.take_retired_identity(&endpoint).await {
            Ok(Some(old)) => {
                psk.remove(&old);
                if let Some(sender) = shared.sender(Transport::Coaps) {
                    let _ = sender.send(LwCommand::CloseIdentity {
                        identity: old.clone(),
                    });
                }
                tracing::info!(%endpoint, identity = %old, "previous LwM2M credentials revoked: the device registered with the ones bootstrap delivered");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%endpoint, %error, "cannot check for replaced credentials")
            }
        }
    }
}

impl BsTask {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        tracing::info!(transport = %self.transport, addr = %self.local_addr, "LwM2M bootstrap socket serving");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let deadline = [
                self.engine.poll_timeout(),
                self.dtls.as_ref().and_then(DtlsServer::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending::<()>().await,
                }
            };
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
                    Ok((len, peer)) if len <= MAX_DATAGRAM => {
                        let bytes = buf.get(..len).unwrap_or_default();
                        let now = Instant::now();
                        match self.dtls.as_mut() {
                            Some(dtls) => dtls.handle_datagram(now, peer, bytes),
                            None => self.engine.handle_datagram(now, peer, PeerAuth::NoSec, bytes),
                        }
                    }
                    Ok(_) => tracing::debug!("oversized datagram dropped on the bootstrap socket"),
                    Err(error) => tracing::debug!(%error, "bootstrap UDP receive failed"),
                },
                () = timer => {
                    let now = Instant::now();
                    self.engine.handle_timeout(now);
                    if let Some(dtls) = self.dtls.as_mut() {
                        dtls.handle_timeout(now);
                    }
                }
            }
            self.pump(Instant::now());
            for (peer, bytes) in std::mem::take(&mut self.outbox) {
                if let Err(error) = self.socket.send_to(&bytes, peer).await {
                    tracing::debug!(%peer, %error, "bootstrap UDP send failed");
                }
            }
        }
        tracing::info!(transport = %self.transport, "LwM2M bootstrap socket stopped");
    }

    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.dtls.as_mut().and_then(DtlsServer::poll_event) {
                progressed = true;
                match event {
                    DtlsEvent::Data {
                        peer,
                        identity,
                        bytes,
                    } => {
                        let auth = PeerAuth::Psk {
                            identity: identity.to_string(),
                        };
                        self.engine.handle_datagram(now, peer, auth, &bytes);
                    }
                    DtlsEvent::HandshakeFailed {
                        peer,
                        claimed_identity,
                        reason,
                    } => {
                        let identity = claimed_identity.as_ref().map(PskIdentity::to_string);
                        tracing::info!(%peer, identity = identity.as_deref().unwrap_or("-"), ?reason, "bootstrap DTLS handshake failed");
                    }
                    DtlsEvent::Connected { .. } | DtlsEvent::Closed { .. } => {}
                }
            }
            while let Some(event) = self.engine.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            while let Some(t) = self.engine.poll_transmit() {
                progressed = true;
                match self.dtls.as_mut() {
                    Some(dtls) => {
                        if let Err(error) = dtls.send(now, t.peer, &t.bytes) {
                            tracing::debug!(peer = %t.peer, %error, "bootstrap message for a peer without a DTLS session dropped");
                        }
                    }
                    None => self.outbox.push((t.peer, t.bytes)),
                }
            }
            while let Some(datagram) = self.dtls.as_mut().and_then(DtlsServer::poll_transmit) {
                self.outbox.push(datagram);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Decision { ticket, verdict } => {
                let answered = match verdict {
                    Ok(account) => self.engine.accept(now, ticket, account),
                    Err(code) => self.engine.reject(now, ticket, code),
                };
                if let Err(error) = answered {
                    tracing::info!(%error, "a Bootstrap-Request could not be answered (the client will retry)");
                }
            }
            Command::Revoke { endpoint, identity } => {
                self.engine.abort(now, &endpoint);
                if let (Some(dtls), Some(identity)) = (self.dtls.as_mut(), identity) {
                    let identity = PskIdentity::new(identity.as_bytes());
                    if let Some(peer) = dtls.peer_of(&identity) {
                        dtls.close(now, peer);
                    }
                }
            }
        }
        self.pump(now);
    }

    fn on_event(&mut self, event: BootstrapEvent) {
        match event {
            BootstrapEvent::Request {
                ticket,
                peer,
                auth,
                endpoint,
                preferred_format: _,
            } => {
                let shared = self.shared.clone();
                let reply = self.reply.clone();
                tokio::spawn(async move {
                    let verdict = decide(&shared, peer, &auth, &endpoint).await;
                    let _ = reply.send(Command::Decision { ticket, verdict });
                });
            }
            BootstrapEvent::Refused {
                peer,
                endpoint,
                code,
            } => {
                tracing::info!(%peer, endpoint = endpoint.as_deref().unwrap_or("-"), %code, "Bootstrap-Request refused")
            }
            BootstrapEvent::Finished { endpoint, peer, .. } => {
                tracing::info!(%endpoint, %peer, "bootstrap finished");
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    match shared.store.record_bootstrap_finished(&endpoint).await {
                        Ok(state) => tracing::debug!(%endpoint, %state, "bootstrap recorded"),
                        Err(error) => {
                            tracing::error!(%endpoint, %error, "cannot record a finished bootstrap")
                        }
                    }
                });
            }
            BootstrapEvent::Failed {
                endpoint,
                peer,
                step,
                reason,
            } => tracing::warn!(%endpoint, %peer, ?step, ?reason, "bootstrap sequence failed"),
        }
    }
}

/// The Bootstrap-Request decision and the account to write.
async fn decide(
    shared: &BsShared,
    peer: SocketAddr,
    auth: &PeerAuth,
    endpoint: &str,
) -> Result<ServerAccount, Code> {
    let refuse = |code: Code, why: &str| {
        tracing::warn!(%endpoint, %peer, %code, reason = why, "Bootstrap-Request refused");
        let _ = &shared.events;
        Err(code)
    };
    let store = &shared.store;
    let device = match store.get_device(endpoint).await {
        Ok(Some(device)) => device,
        Ok(None) => return refuse(Code::BAD_REQUEST, "unknown endpoint"),
        Err(error) => {
            tracing::error!(%endpoint, %error, "cannot check a Bootstrap-Request; answered 5.03");
            return Err(Code::SERVICE_UNAVAILABLE);
        }
    };
    if device.state == LifecycleState::Decommissioned {
        return refuse(Code::FORBIDDEN, "decommissioned");
    }
    match auth {
        PeerAuth::Psk { identity } => match store.bootstrap_credentials(identity).await {
            Ok(Some(c)) if c.endpoint == endpoint => {}
            Ok(Some(_)) => {
                return refuse(
                    Code::FORBIDDEN,
                    "the bootstrap identity belongs to another endpoint",
                );
            }
            Ok(None) => return refuse(Code::FORBIDDEN, "bootstrap credentials unknown or revoked"),
            Err(error) => {
                tracing::error!(%endpoint, %error, "cannot check a bootstrap identity; answered 5.03");
                return Err(Code::SERVICE_UNAVAILABLE);
            }
        },
        PeerAuth::NoSec => {
            if !shared.nosec || device.security_mode != SecurityMode::NoSec {
                return refuse(Code::FORBIDDEN, "this endpoint must bootstrap over DTLS");
            }
        }
    }
    let config = match store.bootstrap_config_for(&device.tags).await {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%endpoint, %error, "cannot read the bootstrap configuration; answered 5.03");
            return Err(Code::SERVICE_UNAVAILABLE);
        }
    };
    let mut account = ServerAccount {
        server_uri: config
            .server_uri
            .clone()
            .unwrap_or_else(|| shared.public_coaps_uri.clone()),
        security: AccountSecurity::NoSec,
        identity: Vec::new(),
        secret_key: Vec::new(),
        short_server_id: config.short_server_id,
        lifetime: config.lifetime,
        default_pmin: config.default_pmin,
        default_pmax: config.default_pmax,
        binding: config.binding.clone(),
        notification_storing: config.notification_storing,
    };
    match (config.security_mode, device.security_mode) {
        (SecurityMode::Psk, SecurityMode::Psk) => {
            let (identity, key) = match store.dm_credentials_for_bootstrap(endpoint).await {
                Ok(credentials) => credentials,
                Err(error) => {
                    tracing::error!(%endpoint, %error, "cannot prepare LwM2M credentials; answered 5.03");
                    return Err(Code::SERVICE_UNAVAILABLE);
                }
            };
            // Accepted by the LwM2M server before the device can use them.
            shared.lwm2m_psk.insert(&identity, key.as_bytes());
            account.security = AccountSecurity::Psk;
            account.identity = identity.into_bytes();
            account.secret_key = key.as_bytes().to_vec();
        }
        (SecurityMode::NoSec, SecurityMode::NoSec) if shared.nosec => {}
        _ => {
            return refuse(
                Code::FORBIDDEN,
                "the group's security mode does not suit the device's",
            );
        }
    }
    tracing::info!(%endpoint, %peer, group = %config.group, "Bootstrap-Request accepted");
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_addresses_sit_beside_the_lwm2m_ones() {
        let config = Config {
            nosec: true,
            ..Config::default()
        };
        let s = BootstrapSettings::from_config(&config);
        assert_eq!(s.coaps_addr.port(), DEFAULT_BS_COAPS_PORT);
        assert_eq!(s.coap_addr.map(|a| a.port()), Some(DEFAULT_BS_COAP_PORT));
        let test_config = Config {
            coaps_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        let s = BootstrapSettings::from_config(&test_config);
        assert_eq!(s.coaps_addr, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(s.coap_addr, None, "no NoSec bootstrap socket without NoSec");
        assert_eq!(
            derived_coaps_uri(SocketAddr::from(([0, 0, 0, 0], 5684))),
            "coaps://127.0.0.1:5684"
        );
    }
}
