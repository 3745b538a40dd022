//! An in-process LwM2M server for the simulator's tests: `lwm2m_proto`'s `Lwm2mServer` (behind
//! a `ferrite_dtls::DtlsServer` for coaps) driven on a tokio UDP socket on 127.0.0.1. It accepts
//! every registration, reads `/3/0` of each new registration, observes `/10243/0` on 1.0 meters,
//! and records what arrives so the tests can compare it with the simulator's ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)] // each test file uses part of it

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrite_dtls::{DtlsEvent, DtlsServer, DtlsServerConfig, InMemoryPskStore};
use lwm2m_objects::{Node, Path, Value};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{
    Content, Lwm2mServer, OpOutcome, Operation, PeerAuth, ServerConfig, ServerEvent,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the server saw.
#[derive(Debug, Default)]
pub struct ServerLog {
    /// Endpoints registered now.
    pub registered: HashSet<String>,
    /// Every endpoint that ever registered, with its version.
    pub versions: HashMap<String, Lwm2mVersion>,
    /// Registered events (reboots count again).
    pub registrations: u64,
    /// Registrations that replaced a live one (a reboot without de-registering).
    pub re_registrations: u64,
    /// Endpoints whose `/3/0` read returned the simulator's manufacturer.
    pub device_reads: HashSet<String>,
    /// (time, kWh) of 10243/0/14 records received by Send, per endpoint.
    pub sent_energy: HashMap<String, Vec<(f64, f64)>>,
    /// kWh values of 10243/0/14 received by notification, per endpoint.
    pub notified_energy: HashMap<String, Vec<f64>>,
    /// De-registered endpoints.
    pub deregistered: HashSet<String>,
    /// Operation outcomes that were errors, as text.
    pub op_errors: Vec<String>,
    /// Execute outcomes that succeeded.
    pub executes_ok: u64,
}

/// Commands to the server.
#[derive(Debug)]
pub enum ServerCommand {
    /// Execute `path` on `endpoint`.
    Execute(String, Path),
}

/// A running test server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub log: Arc<Mutex<ServerLog>>,
    commands: mpsc::UnboundedSender<ServerCommand>,
    _thread: std::thread::JoinHandle<()>,
}

impl TestServer {
    /// A NoSec server on a free port of 127.0.0.1.
    pub fn start_nosec() -> TestServer {
        Self::start("127.0.0.1:0", None)
    }

    /// A DTLS server knowing these identities and keys.
    pub fn start_psk(keys: Vec<(String, Vec<u8>)>) -> TestServer {
        Self::start("127.0.0.1:0", Some(keys))
    }

    /// A NoSec server on `addr`.
    pub fn start_nosec_on(addr: &str) -> TestServer {
        Self::start(addr, None)
    }

    /// A DTLS server on `addr`.
    pub fn start_psk_on(addr: &str, keys: Vec<(String, Vec<u8>)>) -> TestServer {
        Self::start(addr, Some(keys))
    }

    fn start(bind: &str, keys: Option<Vec<(String, Vec<u8>)>>) -> TestServer {
        let bind = bind.to_owned();
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread_log = Arc::clone(&log);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(&bind, keys, thread_log, rx, addr_tx));
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server address");
        TestServer {
            addr,
            log,
            commands: tx,
            _thread: thread,
        }
    }

    /// Executes `path` on `endpoint`.
    pub fn execute(&self, endpoint: &str, path: Path) {
        let _ = self
            .commands
            .send(ServerCommand::Execute(endpoint.to_owned(), path));
    }

    /// Waits until `f` holds on the log, up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&ServerLog) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if f(&self.log.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Driver {
    lwm2m: Lwm2mServer,
    dtls: Option<DtlsServer>,
    log: Arc<Mutex<ServerLog>>,
    socket: Arc<UdpSocket>,
}

async fn serve(
    bind: &str,
    keys: Option<Vec<(String, Vec<u8>)>>,
    log: Arc<Mutex<ServerLog>>,
    mut commands: mpsc::UnboundedReceiver<ServerCommand>,
    addr_tx: std::sync::mpsc::Sender<SocketAddr>,
) {
    let socket = Arc::new(UdpSocket::bind(bind).await.expect("bind"));
    addr_tx.send(socket.local_addr().expect("addr")).ok();
    let dtls = keys.map(|keys| {
        let mut store = InMemoryPskStore::new();
        for (identity, key) in keys {
            store.insert(identity, key);
        }
        DtlsServer::new(DtlsServerConfig::default(), Arc::new(store)).expect("dtls server")
    });
    let config = ServerConfig {
        max_pending_registrations: 100_000,
        ..ServerConfig::default()
    };
    let mut d = Driver {
        lwm2m: Lwm2mServer::new(config, 7),
        dtls,
        log,
        socket: Arc::clone(&socket),
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let deadline = [
            d.lwm2m.poll_timeout(),
            d.dtls.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                let now = Instant::now();
                let bytes = buf[..n].to_vec();
                match d.dtls.as_mut() {
                    Some(dtls) => dtls.handle_datagram(now, peer, &bytes),
                    None => d.lwm2m.handle_datagram(now, peer, PeerAuth::NoSec, &bytes),
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                let now = Instant::now();
                if let Some(dtls) = d.dtls.as_mut() {
                    dtls.handle_timeout(now);
                }
                d.lwm2m.handle_timeout(now);
            }
            Some(cmd) = commands.recv() => {
                let now = Instant::now();
                match cmd {
                    ServerCommand::Execute(ep, path) => {
                        let _ = d.lwm2m.request(now, &ep, Operation::Execute { path, args: None });
                    }
                }
            }
        }
        d.pump().await;
    }
}

impl Driver {
    async fn pump(&mut self) {
        for _ in 0..16 {
            let now = Instant::now();
            let mut progressed = false;
            if let Some(dtls) = self.dtls.as_mut() {
                while let Some(event) = dtls.poll_event() {
                    progressed = true;
                    if let DtlsEvent::Data {
                        peer,
                        identity,
                        bytes,
                    } = event
                    {
                        let auth = PeerAuth::Psk {
                            identity: identity.to_string(),
                        };
                        self.lwm2m.handle_datagram(now, peer, auth, &bytes);
                    }
                }
            }
            while let Some(event) = self.lwm2m.poll_event() {
                progressed = true;
                self.on_event(now, event);
            }
            while let Some(t) = self.lwm2m.poll_transmit() {
                progressed = true;
                match self.dtls.as_mut() {
                    Some(dtls) => {
                        let _ = dtls.send(now, t.peer, &t.bytes);
                    }
                    None => {
                        let _ = self.socket.send_to(&t.bytes, t.peer).await;
                    }
                }
            }
            if let Some(dtls) = self.dtls.as_mut() {
                while let Some((peer, bytes)) = dtls.poll_transmit() {
                    progressed = true;
                    let _ = self.socket.send_to(&bytes, peer).await;
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: ServerEvent) {
        let mut log = self.log.lock().unwrap();
        match event {
            ServerEvent::RegistrationRequest { ticket, .. } => {
                let _ = self.lwm2m.accept_registration(now, ticket);
            }
            ServerEvent::Registered {
                registration,
                replaced,
            } => {
                let ep = registration.endpoint.clone();
                log.registrations += 1;
                if replaced.is_some() {
                    log.re_registrations += 1;
                }
                log.registered.insert(ep.clone());
                log.versions.insert(ep.clone(), registration.version);
                let _ = self
                    .lwm2m
                    .request(now, &ep, Operation::Read(Path::Instance(3, 0)));
                if registration.version == Lwm2mVersion::V1_0 {
                    let _ =
                        self.lwm2m
                            .request(now, &ep, Operation::Observe(Path::Instance(10243, 0)));
                }
            }
            ServerEvent::Deregistered { registration } => {
                log.registered.remove(&registration.endpoint);
                log.deregistered.insert(registration.endpoint);
            }
            ServerEvent::Expired { registration } => {
                log.registered.remove(&registration.endpoint);
            }
            ServerEvent::OpCompleted {
                endpoint, outcome, ..
            } => match outcome {
                Ok(OpOutcome::Content(Content::Node {
                    node: Node::Instance(i),
                    ..
                })) if i.value(0)
                    == Some(&Value::String(
                        client_sim::meter::profile::MANUFACTURER.into(),
                    )) =>
                {
                    log.device_reads.insert(endpoint);
                }
                Ok(OpOutcome::Observing { content, .. }) => {
                    record_notification(&mut log, &endpoint, &content);
                }
                Ok(OpOutcome::Changed) => log.executes_ok += 1,
                Ok(_) => {}
                Err(e) => log.op_errors.push(format!("{endpoint}: {e:?}")),
            },
            ServerEvent::Notification {
                endpoint,
                content: Ok(content),
                ..
            } => record_notification(&mut log, &endpoint, &content),
            ServerEvent::Send {
                endpoint, records, ..
            } => {
                let entry = log.sent_energy.entry(endpoint).or_default();
                for r in records {
                    if r.path == Path::Resource(10243, 0, 14)
                        && let (Some(t), Some(Value::Float(v))) = (r.time, r.value)
                    {
                        entry.push((t, v));
                    }
                }
            }
            _ => {}
        }
    }
}

fn record_notification(log: &mut ServerLog, endpoint: &str, content: &Content) {
    if let Content::Node {
        node: Node::Instance(i),
        ..
    } = content
        && let Some(Value::Float(kwh)) = i.value(14)
    {
        log.notified_energy
            .entry(endpoint.to_owned())
            .or_default()
            .push(*kwh);
    }
}
