//! [`TestDevice`]: one simulated LwM2M client on a real UDP socket, driven by a tokio task —
//! `lwm2m_proto`'s sans-I/O `Lwm2mClient` with a `MemoryObjectStore`, plain CoAP or through a
//! `ferrite_dtls::DtlsClient`. The test sends it commands (register, update, change a value,
//! move to a new port, unplug) and waits for its events.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrite_dtls::{
    ClientCloseReason, ClientEvent as DtlsClientEvent, DtlsClient, DtlsClientConfig,
};
use lwm2m_objects::codec::Record;
use lwm2m_objects::{ContentFormat, ObjectInstance, ObjectModel, Path, Resource, Value};
use lwm2m_proto::lwm2m::client::{
    BootstrapOutcome, ClientConfig, ClientEvent, Lwm2mClient, MemoryObjectStore, RegistrationState,
};
use lwm2m_proto::lwm2m::registration::{Lwm2mVersion, UpdateParams};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::PATIENCE;
use crate::harness::Credentials;

/// How the device reaches the server.
#[derive(Debug, Clone)]
pub enum Security {
    NoSec,
    Psk(Credentials),
}

/// What the test sees of the device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Client(ClientEvent),
    DtlsConnected,
    DtlsClosed(ClientCloseReason),
    /// A client-initiated bootstrap ended.
    Bootstrap(BootstrapOutcome),
}

/// A look at the client from inside its driver task.
type Inspection = Box<dyn FnOnce(&Lwm2mClient<MemoryObjectStore>) + Send>;

enum Command {
    Register,
    Update,
    Deregister,
    Set(Path, Value),
    /// A new socket (new source port), and a new DTLS handshake on it.
    Rebind,
    /// A new DTLS handshake on the same socket (after a failed one).
    Reconnect,
    /// Send to another server address (the server restarted elsewhere).
    Retarget(SocketAddr),
    /// Another server and security (a bootstrap server, or the account bootstrap delivered).
    Connect(SocketAddr, Security),
    /// Bootstrap-Request to the server connected to.
    Bootstrap,
    /// Unplugged: nothing in, nothing out, no timers.
    Unplug(bool),
    /// LwM2M Send (`/dp`) of these records.
    Send(Vec<Record>),
    /// Run `f` on the client (inspection).
    Inspect(Inspection),
}

/// A device and its driver task.
#[derive(Debug)]
pub struct TestDevice {
    pub endpoint: String,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
    addr: Arc<Mutex<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A meter's objects: 1 Server, 3 Device, 4 Connectivity Monitoring, 5 Firmware Update,
/// 6 Location, 7 Connectivity Statistics, 10243 Power Meter, with recognisable values.
pub fn meter_store() -> MemoryObjectStore {
    let mut store = MemoryObjectStore::new(ObjectModel::builtin())
        .with_instance(
            1,
            0,
            [
                (0, Value::Integer(1)),
                (1, Value::Integer(300)),
                (6, Value::Boolean(false)),
                (7, Value::String("U".into())),
            ],
        )
        .with_instance(
            4,
            0,
            [
                (0, Value::Integer(6)),
                (2, Value::Integer(-93)),
                (3, Value::Integer(20)),
            ],
        )
        .with_instance(
            5,
            0,
            [
                (1, Value::String(String::new())),
                (3, Value::Integer(0)),
                (5, Value::Integer(1)),
            ],
        )
        .with_instance(
            6,
            0,
            [
                (0, Value::Float(52.52)),
                (1, Value::Float(13.405)),
                (5, Value::Time(1_700_000_000)),
            ],
        )
        .with_instance(
            7,
            0,
            [
                (2, Value::Integer(1024)),
                (3, Value::Integer(4096)),
                (8, Value::Integer(60)),
            ],
        )
        .with_instance(
            10243,
            0,
            [(6, Value::Float(0.35)), (14, Value::Float(1234.5))],
        );
    store.insert_instance(
        3,
        ObjectInstance::new(
            0,
            [
                Resource::single(0, Value::String("Ferrite".into())),
                Resource::single(1, Value::String("FM-1".into())),
                Resource::single(3, Value::String("1.0.0".into())),
                Resource::multiple(7, [(0, Value::Integer(3800)), (1, Value::Integer(5000))]),
                Resource::single(9, Value::Integer(87)),
                Resource::multiple(11, [(0, Value::Integer(0))]),
                Resource::single(13, Value::Time(1_700_000_000)),
                Resource::single(16, Value::String("U".into())),
            ],
        ),
    );
    store
}

/// How to build a device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub endpoint: String,
    pub version: Lwm2mVersion,
    pub lifetime: u32,
    pub queue_mode: bool,
    /// The format it answers in (None: TLV for 1.0, SenML CBOR for 1.1).
    pub format: Option<ContentFormat>,
    pub security: Security,
    pub store: MemoryObjectStore,
}

impl DeviceSpec {
    pub fn new(endpoint: &str, version: Lwm2mVersion, security: Security) -> DeviceSpec {
        DeviceSpec {
            endpoint: endpoint.to_owned(),
            version,
            lifetime: 300,
            queue_mode: false,
            format: None,
            security,
            store: meter_store(),
        }
    }
}

struct Driver {
    client: Lwm2mClient<MemoryObjectStore>,
    socket: UdpSocket,
    server: SocketAddr,
    security: Security,
    dtls: Option<DtlsClient>,
    dtls_up: bool,
    /// CoAP datagrams waiting for the DTLS handshake.
    waiting: Vec<Vec<u8>>,
    unplugged: bool,
    events: mpsc::UnboundedSender<DeviceEvent>,
    addr: Arc<Mutex<SocketAddr>>,
}

async fn bind_local() -> UdpSocket {
    UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

impl TestDevice {
    /// Starts the driver; the device does nothing until told (e.g. [`register`](Self::register)).
    pub async fn start(spec: DeviceSpec, server: SocketAddr) -> TestDevice {
        let mut config =
            ClientConfig::new(spec.endpoint.clone(), spec.version).with_lifetime(spec.lifetime);
        if spec.queue_mode {
            config = config.with_queue_mode();
        }
        if let Some(format) = spec.format {
            config = config.with_preferred_format(format);
        }
        let seed = spec
            .endpoint
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        let client = Lwm2mClient::new(config, spec.store, seed);
        let socket = bind_local().await;
        let addr = Arc::new(Mutex::new(socket.local_addr().unwrap()));
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let mut driver = Driver {
            client,
            socket,
            server,
            security: spec.security,
            dtls: None,
            dtls_up: false,
            waiting: Vec::new(),
            unplugged: false,
            events: event_tx,
            addr: addr.clone(),
        };
        driver.connect_dtls(Instant::now());
        let task = tokio::spawn(driver.run(command_rx));
        TestDevice {
            endpoint: spec.endpoint,
            commands,
            events,
            addr,
            task,
        }
    }

    fn send_command(&self, command: Command) {
        self.commands.send(command).unwrap();
    }

    /// The device's current source address.
    pub fn local_addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap()
    }

    pub fn register(&self) {
        self.send_command(Command::Register);
    }

    pub fn update(&self) {
        self.send_command(Command::Update);
    }

    pub fn deregister(&self) {
        self.send_command(Command::Deregister);
    }

    /// Changes a value as the device's application would (observations notify).
    pub fn set(&self, path: Path, value: Value) {
        self.send_command(Command::Set(path, value));
    }

    /// Moves to a new source port (NAT rebinding); a DTLS device handshakes again there.
    pub fn rebind(&self) {
        self.send_command(Command::Rebind);
    }

    /// Starts a new DTLS handshake (after a failed one).
    pub fn reconnect(&self) {
        self.send_command(Command::Reconnect);
    }

    pub fn retarget(&self, server: SocketAddr) {
        self.send_command(Command::Retarget(server));
    }

    /// Connects to `server` with `security` (a new DTLS handshake for PSK).
    pub fn connect(&self, server: SocketAddr, security: Security) {
        self.send_command(Command::Connect(server, security));
    }

    /// Sends Bootstrap-Request to the server connected to; a [`DeviceEvent::Bootstrap`] follows.
    pub fn bootstrap(&self) {
        self.send_command(Command::Bootstrap);
    }

    /// Sends readings with LwM2M Send (1.1).
    pub fn send(&self, records: Vec<Record>) {
        self.send_command(Command::Send(records));
    }

    /// Unplugged: no datagram in or out, no timers (lifetime expiry tests).
    pub fn unplug(&self, unplugged: bool) {
        self.send_command(Command::Unplug(unplugged));
    }

    /// The client's registration state.
    pub async fn state(&self) -> RegistrationState {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_command(Command::Inspect(Box::new(move |client| {
            let _ = tx.send(client.state());
        })));
        rx.await.unwrap()
    }

    /// Waits up to [`PATIENCE`] for an event `pick` accepts; the others are skipped.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                    seen.push(event);
                }
                Ok(None) => panic!("{}: driver stopped waiting for {what}", self.endpoint),
                Err(_) => panic!(
                    "{}: no {what} within {PATIENCE:?}; saw {seen:#?}",
                    self.endpoint
                ),
            }
        }
    }

    /// Waits for the Register's 2.01.
    pub async fn expect_registered(&mut self) -> String {
        self.expect("Registered", |e| match e {
            DeviceEvent::Client(ClientEvent::Registered { location }) => Some(location.clone()),
            DeviceEvent::Client(ClientEvent::RegistrationFailed { operation, reason }) => {
                panic!("registration failed: {operation:?} {reason}")
            }
            _ => None,
        })
        .await
    }

    pub async fn expect_updated(&mut self) {
        self.expect("Updated", |e| {
            matches!(e, DeviceEvent::Client(ClientEvent::Updated)).then_some(())
        })
        .await;
    }

    /// Registers and waits for the 2.01.
    pub async fn register_and_wait(&mut self) -> String {
        self.register();
        self.expect_registered().await
    }

    /// Events received so far, without waiting.
    pub fn drain(&mut self) -> Vec<DeviceEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }
}

impl Driver {
    fn emit(&self, event: DeviceEvent) {
        let _ = self.events.send(event);
    }

    fn connect_dtls(&mut self, now: Instant) {
        let Security::Psk(credentials) = &self.security else {
            return;
        };
        let mut config = DtlsClientConfig::new(
            credentials.identity.as_bytes().to_vec(),
            credentials.key.clone(),
        );
        config.handshake_timeout = Duration::from_secs(5);
        let mut client = DtlsClient::new(config).unwrap();
        client.connect(now, self.server).unwrap();
        self.dtls = Some(client);
        self.dtls_up = false;
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let deadline = if self.unplugged {
                None
            } else {
                [
                    self.client.poll_timeout(),
                    self.dtls.as_ref().and_then(DtlsClient::poll_timeout),
                ]
                .into_iter()
                .flatten()
                .min()
            };
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received
                        && !self.unplugged
                    {
                        let now = Instant::now();
                        let bytes = &buf[..len];
                        match self.dtls.as_mut() {
                            Some(dtls) => dtls.handle_datagram(now, from, bytes),
                            None => self.client.handle_datagram(now, bytes),
                        }
                    }
                }
                () = timer => {
                    let now = Instant::now();
                    self.client.handle_timeout(now);
                    if let Some(dtls) = self.dtls.as_mut() {
                        dtls.handle_timeout(now);
                    }
                }
            }
            self.flush().await;
        }
    }

    async fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Register => self.client.register(now).unwrap(),
            Command::Update => self.client.update(now, UpdateParams::default()).unwrap(),
            Command::Deregister => self.client.deregister(now).unwrap(),
            Command::Set(path, value) => {
                self.client
                    .with_store(now, |store| store.set(path, value))
                    .unwrap();
            }
            Command::Rebind => {
                self.socket = bind_local().await;
                *self.addr.lock().unwrap() = self.socket.local_addr().unwrap();
                self.connect_dtls(now);
            }
            Command::Reconnect => self.connect_dtls(now),
            Command::Retarget(server) => {
                self.server = server;
                self.connect_dtls(now);
            }
            Command::Connect(server, security) => {
                self.server = server;
                self.security = security;
                self.dtls = None;
                self.dtls_up = false;
                self.waiting.clear();
                self.connect_dtls(now);
            }
            Command::Bootstrap => self.client.bootstrap(now).unwrap(),
            Command::Unplug(unplugged) => self.unplugged = unplugged,
            Command::Send(records) => {
                self.client.send(now, &records).unwrap();
            }
            Command::Inspect(f) => f(&self.client),
        }
    }

    async fn flush(&mut self) {
        loop {
            let now = Instant::now();
            let mut progressed = false;
            while let Some(datagram) = self.client.poll_transmit() {
                progressed = true;
                if self.unplugged {
                    continue;
                }
                match self.dtls.as_mut() {
                    None => {
                        // UDP: a lost datagram is the protocol's business.
                        let _ = self.socket.send_to(&datagram, self.server).await;
                    }
                    Some(dtls) if self.dtls_up => {
                        let _ = dtls.send(now, &datagram);
                    }
                    Some(_) => self.waiting.push(datagram),
                }
            }
            while let Some(event) = self.dtls.as_mut().and_then(DtlsClient::poll_event) {
                progressed = true;
                match event {
                    DtlsClientEvent::Connected { .. } => {
                        self.dtls_up = true;
                        if let Some(dtls) = self.dtls.as_mut() {
                            for datagram in std::mem::take(&mut self.waiting) {
                                let _ = dtls.send(now, &datagram);
                            }
                        }
                        self.emit(DeviceEvent::DtlsConnected);
                    }
                    DtlsClientEvent::Data { bytes } => self.client.handle_datagram(now, &bytes),
                    DtlsClientEvent::Closed { reason } => {
                        self.dtls_up = false;
                        self.emit(DeviceEvent::DtlsClosed(reason));
                    }
                }
            }
            while let Some((to, datagram)) = self.dtls.as_mut().and_then(DtlsClient::poll_transmit)
            {
                progressed = true;
                if !self.unplugged {
                    let _ = self.socket.send_to(&datagram, to).await;
                }
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                self.emit(DeviceEvent::Client(event));
            }
            while let Some(outcome) = self.client.poll_bootstrap() {
                progressed = true;
                self.emit(DeviceEvent::Bootstrap(outcome));
            }
            if !progressed {
                break;
            }
        }
    }
}
