//! The load generator's runtime: agents (a simulated device, a bare DTLS handshaker, a UDP echo
//! pinger), each with its own UDP socket (its own source port, as real devices have), driven by
//! a few worker threads with one mio poll set and one deadline heap each — the fleet runtime's
//! shape (`crate::fleet`), without the meter model so that the client side stays cheap and the
//! figures are about the server.
//!
//! The main thread steers the agents through [`Control`]'s phase (run → go → halt → stop) and
//! reads their progress from its counters; each worker keeps its latencies in a [`Recorder`]
//! returned when it ends. A gate per worker keeps at most `concurrency / workers` agents with an
//! operation on the wire while starting and stopping, so a storm measures the server rather than
//! the retransmissions of an overrun socket buffer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrite_dtls::{ClientEvent as DtlsEvent, DtlsClient, DtlsClientConfig};
use lwm2m_objects::codec::Record;
use lwm2m_objects::{ObjectModel, Path, Value};
use lwm2m_proto::lwm2m::client::{
    ClientConfig, ClientEvent, Lwm2mClient, MemoryObjectStore, RegistrationOperation,
};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

/// Kinds of timed operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake = 0,
    Register = 1,
    Send = 2,
    Echo = 3,
    Deregister = 4,
}

const KINDS: usize = 5;

/// Phases the main thread sets.
pub const RUN: u8 = 0;
/// Start the steady traffic (Sends, echoes).
pub const GO: u8 = 1;
/// No new steady operations; those on the wire finish.
pub const HALT: u8 = 2;
/// De-register / close and finish.
pub const STOP: u8 = 3;

/// What the main thread and the workers share.
#[derive(Debug, Default)]
pub struct Control {
    pub phase: AtomicU8,
    /// Agents whose first operation (handshake, Register) concluded, either way.
    pub settled: AtomicU64,
    /// Agents done for good.
    pub finished: AtomicU64,
    ok: [AtomicU64; KINDS],
    failed: [AtomicU64; KINDS],
}

impl Control {
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Relaxed);
    }
    pub fn ok(&self, kind: Kind) -> u64 {
        self.ok[kind as usize].load(Ordering::Relaxed)
    }
    pub fn failed(&self, kind: Kind) -> u64 {
        self.failed[kind as usize].load(Ordering::Relaxed)
    }
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Relaxed)
    }
}

/// A worker's latencies (microseconds) by kind.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies: [Vec<u32>; KINDS],
    /// Why the first failed operation failed, for the report.
    pub first_failure: Option<String>,
    /// When the last operation of each kind succeeded (a storm's rate ends there, not at a
    /// straggler's timeout).
    last_done: [Option<Instant>; KINDS],
}

impl Recorder {
    /// When the last operation of `kind` succeeded.
    pub fn last_done(&self, kind: Kind) -> Option<Instant> {
        self.last_done[kind as usize]
    }
    pub fn take(&mut self, kind: Kind) -> Vec<u32> {
        std::mem::take(&mut self.latencies[kind as usize])
    }
    fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.latencies.iter_mut().zip(other.latencies) {
            mine.extend(theirs);
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        for (mine, theirs) in self.last_done.iter_mut().zip(other.last_done) {
            *mine = (*mine).max(theirs);
        }
    }
}

/// What an agent writes through.
#[allow(missing_debug_implementations)]
pub struct Io<'a> {
    out: &'a mut Vec<Vec<u8>>,
    rec: &'a mut Recorder,
    control: &'a Control,
}

impl Io<'_> {
    fn done(&mut self, kind: Kind, since: Option<Instant>, now: Instant) {
        self.control.ok[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.rec.last_done[kind as usize] = Some(now);
        if let Some(t) = since {
            let us = now.saturating_duration_since(t).as_micros();
            self.rec.latencies[kind as usize].push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    fn fail(&mut self, kind: Kind) {
        self.control.failed[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn fail_with(&mut self, kind: Kind, why: &dyn std::fmt::Display) {
        self.fail(kind);
        if self.rec.first_failure.is_none() {
            self.rec.first_failure = Some(format!("{kind:?}: {why}"));
        }
    }
    fn settle(&mut self) {
        self.control.settled.fetch_add(1, Ordering::Relaxed);
    }
}

/// One load-generating peer of the server.
pub trait Agent {
    /// Begin (connect, register); called through the gate.
    fn start(&mut self, io: &mut Io<'_>, now: Instant);
    fn datagram(&mut self, io: &mut Io<'_>, now: Instant, bytes: &[u8]);
    fn timeout(&mut self, io: &mut Io<'_>, now: Instant);
    /// The phase became [`GO`].
    fn go(&mut self, _io: &mut Io<'_>, _now: Instant) {}
    /// End (de-register, close); called through the gate.
    fn stop(&mut self, io: &mut Io<'_>, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    /// An operation the gate counts is on the wire.
    fn busy(&self) -> bool;
    fn finished(&self) -> bool;
}

/// Makes agent `index` (0-based over the whole run).
pub type Factory<A> = Arc<dyn Fn(u32) -> A + Send + Sync>;

/// Running workers.
#[allow(missing_debug_implementations)]
pub struct Driver {
    pub control: Arc<Control>,
    workers: Vec<JoinHandle<Recorder>>,
    pub started: Instant,
}

impl Driver {
    /// Starts `agents` agents over `workers` threads, all talking to `server`.
    pub fn start<A: Agent + 'static>(
        agents: u32,
        workers: usize,
        concurrency: usize,
        server: SocketAddr,
        factory: Factory<A>,
    ) -> std::io::Result<Driver> {
        let control = Arc::new(Control::default());
        let workers = workers.clamp(1, agents.max(1) as usize);
        let limit = (concurrency / workers).max(1);
        let started = Instant::now();
        let mut handles = Vec::new();
        for id in 0..workers {
            let control = Arc::clone(&control);
            let factory = Arc::clone(&factory);
            let handle = std::thread::Builder::new()
                .name(format!("bench-{id}"))
                .spawn(move || {
                    let indexes = (id as u32..agents).step_by(workers);
                    match Worker::new(indexes.map(|i| factory(i)).collect(), server, limit) {
                        Ok(mut w) => w.run(&control),
                        Err(e) => {
                            eprintln!("bench worker {id}: {e}");
                            Recorder::default()
                        }
                    }
                })?;
            handles.push(handle);
        }
        Ok(Driver {
            control,
            workers: handles,
            started,
        })
    }

    /// Waits until `done` holds or `patience` passes, calling `tick` every 100 ms; returns when
    /// `done` held (None on timeout).
    pub fn wait(
        &self,
        patience: Duration,
        mut done: impl FnMut(&Control) -> bool,
        mut tick: impl FnMut(&Control),
    ) -> Option<Instant> {
        let give_up = Instant::now() + patience;
        loop {
            if done(&self.control) {
                return Some(Instant::now());
            }
            if Instant::now() >= give_up || self.workers.iter().all(|w| w.is_finished()) {
                return done(&self.control).then(Instant::now);
            }
            tick(&self.control);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agents and collects the latencies.
    pub fn finish(self) -> Recorder {
        self.control.set_phase(STOP);
        let mut all = Recorder::default();
        for w in self.workers {
            if let Ok(r) = w.join() {
                all.merge(r);
            }
        }
        all
    }
}

/// The longest a worker sleeps without looking at the phase.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// How long stopping may take before a worker gives up on its agents.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

struct Slot<A> {
    agent: A,
    socket: UdpSocket,
    scheduled: Option<Instant>,
    busy: bool,
    finished: bool,
}

struct Worker<A> {
    poll: Poll,
    slots: Vec<Slot<A>>,
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
    out: Vec<Vec<u8>>,
    rec: Recorder,
    limit: usize,
    busy: usize,
    finished: usize,
}

impl<A: Agent> Worker<A> {
    fn new(agents: Vec<A>, server: SocketAddr, limit: usize) -> std::io::Result<Worker<A>> {
        let poll = Poll::new()?;
        let mut slots = Vec::with_capacity(agents.len());
        for (i, agent) in agents.into_iter().enumerate() {
            let any: SocketAddr = if server.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            let mut socket = UdpSocket::bind(any)?;
            socket.connect(server)?;
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)?;
            slots.push(Slot {
                agent,
                socket,
                scheduled: None,
                busy: false,
                finished: false,
            });
        }
        Ok(Worker {
            poll,
            slots,
            heap: BinaryHeap::new(),
            out: Vec::new(),
            rec: Recorder::default(),
            limit,
            busy: 0,
            finished: 0,
        })
    }

    fn run(&mut self, control: &Control) -> Recorder {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 4096];
        let mut next_start = 0usize;
        let mut next_stop = 0usize;
        let mut went = false;
        let mut stop_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let phase = control.phase();
            if phase >= GO && !went {
                went = true;
                for i in 0..self.slots.len() {
                    self.with(i, now, control, |a, io| a.go(io, now));
                }
            }
            if phase == STOP {
                let since = *stop_since.get_or_insert(now);
                while self.busy < self.limit && next_stop < self.slots.len() {
                    self.with(next_stop, now, control, |a, io| a.stop(io, now));
                    next_stop += 1;
                }
                if (next_stop >= self.slots.len() && self.finished >= self.slots.len())
                    || now - since > STOP_PATIENCE
                {
                    break;
                }
            } else {
                while self.busy < self.limit && next_start < self.slots.len() {
                    self.with(next_start, now, control, |a, io| a.start(io, now));
                    next_start += 1;
                }
            }
            while let Some(&Reverse((at, slot))) = self.heap.peek() {
                if at > now {
                    break;
                }
                self.heap.pop();
                let i = slot as usize;
                match self.slots.get_mut(i) {
                    Some(s) if s.scheduled == Some(at) => s.scheduled = None,
                    _ => continue,
                }
                self.with(i, now, control, |a, io| a.timeout(io, now));
            }
            let mut timeout = MAX_SLEEP;
            if let Some(&Reverse((at, _))) = self.heap.peek() {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if self.poll.poll(&mut events, Some(timeout)).is_err() {
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                let i = event.token().0;
                while let Some(slot) = self.slots.get(i) {
                    match slot.socket.recv(&mut buf) {
                        Ok(n) => {
                            let bytes = buf.get(..n).unwrap_or(&[]);
                            self.with(i, now, control, |a, io| a.datagram(io, now, bytes));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // ICMP errors on a connected socket: the peer's retransmissions cope.
                        Err(_) => break,
                    }
                }
            }
        }
        std::mem::take(&mut self.rec)
    }

    fn with(
        &mut self,
        i: usize,
        _now: Instant,
        control: &Control,
        f: impl FnOnce(&mut A, &mut Io<'_>),
    ) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let mut io = Io {
            out: &mut self.out,
            rec: &mut self.rec,
            control,
        };
        f(&mut slot.agent, &mut io);
        for bytes in self.out.drain(..) {
            // A full socket buffer loses the datagram; the protocol retransmits.
            let _ = slot.socket.send(&bytes);
        }
        let busy = slot.agent.busy();
        if busy != slot.busy {
            slot.busy = busy;
            if busy {
                self.busy += 1;
            } else {
                self.busy = self.busy.saturating_sub(1);
            }
        }
        if !slot.finished && slot.agent.finished() {
            slot.finished = true;
            self.finished += 1;
            control.finished.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(at) = slot.agent.poll_timeout()
            && slot.scheduled.is_none_or(|s| at < s)
        {
            slot.scheduled = Some(at);
            self.heap.push(Reverse((at, i as u32)));
        }
    }
}

// ------------------------------------------------------------------------------------ devices

/// How a [`Device`] behaves.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub endpoint: String,
    pub version: Lwm2mVersion,
    /// DTLS identity and key (None: NoSec).
    pub psk: Option<(Vec<u8>, Vec<u8>)>,
    /// Stop after the handshake (a handshake storm): no LwM2M at all.
    pub handshake_only: bool,
    /// Records per Send in the [`GO`] phase (0: no Sends).
    pub send_records: usize,
    pub server: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Handshaking,
    Registering,
    Registered,
    Deregistering,
    Done,
}

/// A simulated device: the project's LwM2M client over a memory object store (Device object
/// with the resources the read scenario asks for), optionally under the project's DTLS client.
#[allow(missing_debug_implementations)]
pub struct Device {
    spec: DeviceSpec,
    client: Lwm2mClient<MemoryObjectStore>,
    dtls: Option<Box<DtlsClient>>,
    state: State,
    since: Option<Instant>,
    send_since: Option<Instant>,
    settled: bool,
    seq: u64,
}

/// The objects of a benchmark device: Server (1/0), the Device object (3/0) the read scenario
/// reads (strings and integers, OMA LwM2M TS Core Appendix E.4 resource IDs) and a power meter
/// (10243/0) for Send.
fn device_store() -> MemoryObjectStore {
    MemoryObjectStore::new(ObjectModel::builtin())
        .with_instance(
            1,
            0,
            [
                (0, Value::Integer(1)),
                (1, Value::Integer(86_400)),
                (6, Value::Boolean(false)),
                (7, Value::String("U".into())),
            ],
        )
        .with_instance(
            3,
            0,
            [
                (0, Value::String("Ferrite Bench".into())),
                (1, Value::String("FB-1".into())),
                (2, Value::String("SN-0001".into())),
                (3, Value::String("1.0.0".into())),
                (9, Value::Integer(87)),
                (10, Value::Integer(512)),
                (16, Value::String("U".into())),
                (17, Value::String("smart meter".into())),
                (18, Value::String("hw-1".into())),
                (19, Value::String("sw-1".into())),
                (21, Value::Integer(1024)),
            ],
        )
        // The power meter whose readings Send reports (the server refuses Send for an object
        // the device did not register: TS Transport 1.1 Table 6.7-4).
        .with_instance(10243, 0, [(14, Value::Float(0.0))])
}

impl Device {
    pub fn new(spec: DeviceSpec, seed: u64) -> Device {
        let config = ClientConfig::new(spec.endpoint.clone(), spec.version);
        let client = Lwm2mClient::new(config, device_store(), seed);
        Device {
            spec,
            client,
            dtls: None,
            state: State::Idle,
            since: None,
            send_since: None,
            settled: false,
            seq: 0,
        }
    }

    fn settle(&mut self, io: &mut Io<'_>) {
        if !self.settled {
            self.settled = true;
            io.settle();
        }
    }

    fn register(&mut self, io: &mut Io<'_>, now: Instant) {
        self.state = State::Registering;
        self.since = Some(now);
        if self.client.register(now).is_err() {
            io.fail(Kind::Register);
            self.settle(io);
            self.end(now);
        }
    }

    fn end(&mut self, now: Instant) {
        if let Some(d) = self.dtls.as_mut() {
            d.close(now);
        }
        self.state = State::Done;
    }

    fn send_next(&mut self, io: &mut Io<'_>, now: Instant) {
        if io.control.phase() != GO || self.spec.send_records == 0 {
            self.send_since = None;
            return;
        }
        self.seq += 1;
        let t = 1_700_000_000.0 + self.seq as f64;
        let records: Vec<Record> = (0..self.spec.send_records)
            .map(|i| Record {
                path: Path::Resource(10243, 0, 14),
                time: Some(t + i as f64),
                value: Some(Value::Float(self.seq as f64 * 0.25)),
            })
            .collect();
        match self.client.send(now, &records) {
            Ok(_) => self.send_since = Some(now),
            Err(e) => {
                io.fail_with(Kind::Send, &e);
                self.send_since = None;
            }
        }
    }

    /// Moves bytes and events between the LwM2M client, the DTLS client and the socket until
    /// nothing is left.
    fn pump(&mut self, io: &mut Io<'_>, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(bytes) = self.client.poll_transmit() {
                progressed = true;
                match self.dtls.as_mut() {
                    Some(d) => {
                        let _ = d.send(now, &bytes);
                    }
                    None => io.out.push(bytes),
                }
            }
            let mut dtls_events = Vec::new();
            if let Some(d) = self.dtls.as_mut() {
                while let Some((_, bytes)) = d.poll_transmit() {
                    io.out.push(bytes);
                }
                while let Some(e) = d.poll_event() {
                    dtls_events.push(e);
                }
            }
            for event in dtls_events {
                progressed = true;
                match event {
                    DtlsEvent::Connected { .. } => {
                        io.done(Kind::Handshake, self.since, now);
                        if self.spec.handshake_only {
                            self.settle(io);
                            self.end(now);
                        } else {
                            self.register(io, now);
                        }
                    }
                    DtlsEvent::Data { bytes } => self.client.handle_datagram(now, &bytes),
                    DtlsEvent::Closed { reason } => {
                        if matches!(self.state, State::Handshaking) {
                            io.fail_with(Kind::Handshake, &format!("{reason:?}"));
                            self.settle(io);
                        } else if matches!(self.state, State::Registering) {
                            io.fail(Kind::Register);
                            self.settle(io);
                        }
                        self.state = State::Done;
                    }
                }
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                match event {
                    ClientEvent::Registered { .. } => {
                        io.done(Kind::Register, self.since, now);
                        self.state = State::Registered;
                        self.settle(io);
                        if io.control.phase() == GO {
                            self.send_next(io, now);
                        }
                    }
                    ClientEvent::Deregistered => {
                        io.done(Kind::Deregister, self.since, now);
                        self.end(now);
                    }
                    ClientEvent::RegistrationFailed { operation, reason } => match operation {
                        RegistrationOperation::Register => {
                            io.fail_with(Kind::Register, &reason);
                            self.settle(io);
                            self.end(now);
                        }
                        RegistrationOperation::Deregister => {
                            io.fail_with(Kind::Deregister, &reason);
                            self.end(now);
                        }
                        RegistrationOperation::Update => {}
                    },
                    ClientEvent::SendCompleted { result, .. } => {
                        match result {
                            Ok(()) => io.done(Kind::Send, self.send_since, now),
                            Err(e) => io.fail_with(Kind::Send, &e),
                        }
                        self.send_next(io, now);
                    }
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
    }
}

impl Agent for Device {
    fn start(&mut self, io: &mut Io<'_>, now: Instant) {
        if let Some((identity, key)) = &self.spec.psk {
            let config = DtlsClientConfig::new(identity.clone(), key.clone());
            match DtlsClient::new(config) {
                Ok(mut d) => {
                    self.since = Some(now);
                    self.state = State::Handshaking;
                    if d.connect(now, self.spec.server).is_err() {
                        io.fail(Kind::Handshake);
                        self.settle(io);
                        self.state = State::Done;
                    }
                    self.dtls = Some(Box::new(d));
                }
                Err(_) => {
                    io.fail(Kind::Handshake);
                    self.settle(io);
                    self.state = State::Done;
                }
            }
        } else {
            self.register(io, now);
        }
        self.pump(io, now);
    }

    fn datagram(&mut self, io: &mut Io<'_>, now: Instant, bytes: &[u8]) {
        match self.dtls.as_mut() {
            Some(d) => d.handle_datagram(now, self.spec.server, bytes),
            None => self.client.handle_datagram(now, bytes),
        }
        self.pump(io, now);
    }

    fn timeout(&mut self, io: &mut Io<'_>, now: Instant) {
        if let Some(d) = self.dtls.as_mut() {
            d.handle_timeout(now);
        }
        self.client.handle_timeout(now);
        self.pump(io, now);
    }

    fn go(&mut self, io: &mut Io<'_>, now: Instant) {
        if self.state == State::Registered {
            self.send_next(io, now);
            self.pump(io, now);
        }
    }

    fn stop(&mut self, io: &mut Io<'_>, now: Instant) {
        match self.state {
            State::Registered => {
                self.state = State::Deregistering;
                self.since = Some(now);
                if self.client.deregister(now).is_err() {
                    self.end(now);
                }
            }
            State::Done => {}
            _ => self.end(now),
        }
        self.pump(io, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            return None;
        }
        let client = self.client.poll_timeout();
        let dtls = self.dtls.as_ref().and_then(|d| d.poll_timeout());
        [client, dtls].into_iter().flatten().min()
    }

    fn busy(&self) -> bool {
        matches!(
            self.state,
            State::Handshaking | State::Registering | State::Deregistering
        )
    }

    fn finished(&self) -> bool {
        self.state == State::Done
    }
}

// ------------------------------------------------------------------------------------ echo

/// A closed-loop UDP pinger for the echo floor: one datagram of `size` bytes out, wait for it to
/// come back, again, while the phase is [`GO`]. A datagram not back within a second counts as
/// lost and is sent again.
#[derive(Debug)]
pub struct Pinger {
    size: usize,
    sent: Option<Instant>,
    done: bool,
}

/// A lost echo is given up on after this.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

impl Pinger {
    pub fn new(size: usize) -> Pinger {
        Pinger {
            size,
            sent: None,
            done: false,
        }
    }

    fn ping(&mut self, io: &mut Io<'_>, now: Instant) {
        if io.control.phase() == GO {
            io.out.push(vec![0x5a; self.size]);
            self.sent = Some(now);
        } else {
            self.sent = None;
        }
    }
}

impl Agent for Pinger {
    fn start(&mut self, io: &mut Io<'_>, _now: Instant) {
        io.settle();
    }
    fn datagram(&mut self, io: &mut Io<'_>, now: Instant, _bytes: &[u8]) {
        if self.sent.is_some() {
            io.done(Kind::Echo, self.sent, now);
            self.ping(io, now);
        }
    }
    fn timeout(&mut self, io: &mut Io<'_>, now: Instant) {
        if self.sent.is_some_and(|t| now >= t + ECHO_TIMEOUT) {
            io.fail(Kind::Echo);
            self.ping(io, now);
        }
    }
    fn go(&mut self, io: &mut Io<'_>, now: Instant) {
        self.ping(io, now);
    }
    fn stop(&mut self, _io: &mut Io<'_>, _now: Instant) {
        self.done = true;
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.sent.map(|t| t + ECHO_TIMEOUT)
    }
    fn busy(&self) -> bool {
        false
    }
    fn finished(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The pinger against a bare echo thread: every echo is counted with a latency.
    #[test]
    fn pingers_count_echoes() {
        let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        });
        let factory: Factory<Pinger> = Arc::new(|_| Pinger::new(32));
        let driver = Driver::start(4, 2, 4, addr, factory).unwrap();
        driver
            .wait(Duration::from_secs(5), |c| c.settled() == 4, |_| {})
            .unwrap();
        driver.control.set_phase(GO);
        driver
            .wait(Duration::from_secs(10), |c| c.ok(Kind::Echo) >= 200, |_| {})
            .unwrap();
        driver.control.set_phase(HALT);
        let control = Arc::clone(&driver.control);
        let mut rec = driver.finish();
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        let latencies = rec.take(Kind::Echo);
        assert!(latencies.len() as u64 >= 200);
        assert_eq!(latencies.len() as u64, control.ok(Kind::Echo));
        assert_eq!(control.finished.load(Ordering::Relaxed), 4);
    }
}
