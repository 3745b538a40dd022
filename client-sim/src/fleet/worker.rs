//! One worker thread: its meters, their sockets in one epoll set, a heap of deadlines, and the
//! fault layer between the meters and their sockets (see the module documentation of `fleet`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::Shared;
use super::faults::{Delayed, Fate, fate};
use crate::ledger::LedgerWriter;
use crate::meter::{Ctx, Profile, SimMeter};
use crate::rng::Rng;
use crate::stats::Stats;

/// The longest the loop sleeps without looking at the stop flag.
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Largest datagram read (CoAP over UDP stays under ~1152 bytes with 1 KiB blocks; DTLS adds a
/// record header and tag).
const RECV_BUFFER: usize = 2048;

/// One meter with its socket.
struct Slot {
    meter: SimMeter,
    socket: Option<UdpSocket>,
    /// A firmware pull's own socket (unconnected: the file server may be anyone), while one
    /// runs.
    download_socket: Option<UdpSocket>,
    /// The deadline this slot has a live heap entry for.
    scheduled: Option<Instant>,
    stopped: bool,
}

/// Tokens of download sockets have this bit set; the rest is the slot index.
const DOWNLOAD_TOKEN: usize = 1 << (usize::BITS - 1);

struct Worker {
    shared: Arc<Shared>,
    poll: Poll,
    slots: Vec<Slot>,
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
    ledger: Option<LedgerWriter>,
    out: Vec<Vec<u8>>,
    download_out: Vec<(SocketAddr, Vec<u8>)>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    delay_seq: u64,
    rng: Rng,
    stopped: usize,
}

fn open_socket(poll: &Poll, server: SocketAddr, token: usize) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let mut socket = UdpSocket::bind(any)?;
    // Connected: the kernel drops datagrams from anyone but the server, and send needs no address.
    socket.connect(server)?;
    poll.registry()
        .register(&mut socket, Token(token), Interest::READABLE)?;
    Ok(socket)
}

/// Runs worker `id` of `workers` until the fleet is stopped and its meters are done.
pub(super) fn run(
    id: usize,
    workers: usize,
    shared: Arc<Shared>,
    ledger: Option<LedgerWriter>,
    started: Instant,
) {
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("worker {id}: cannot create the poller: {e}");
            return;
        }
    };
    let settings = &shared.settings;
    let mut slots = Vec::new();
    let mut index = id as u32;
    while index < shared.meters {
        let profile = Profile::generate(&shared.profiles, index);
        let start_at = started + Duration::from_secs_f64(f64::from(index) / shared.start_rate);
        let meter = SimMeter::new(profile, settings, start_at);
        let socket = match open_socket(&poll, meter.peer(settings), slots.len()) {
            Ok(s) => Some(s),
            Err(e) => {
                shared.socket_errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = shared.first_socket_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
                None
            }
        };
        slots.push(Slot {
            meter,
            socket,
            download_socket: None,
            scheduled: None,
            stopped: false,
        });
        shared.created.fetch_add(1, Ordering::Relaxed);
        index = index.saturating_add(workers as u32);
    }
    let mut worker = Worker {
        rng: Rng::derive(shared.profiles.seed, 99, id as u64),
        shared: Arc::clone(&shared),
        poll,
        slots,
        heap: BinaryHeap::new(),
        ledger,
        out: Vec::new(),
        download_out: Vec::new(),
        delayed: BinaryHeap::new(),
        delay_seq: 0,
        stopped: 0,
    };
    for i in 0..worker.slots.len() {
        worker.reschedule(i);
    }
    worker.run_loop();
    if let Some(ledger) = worker.ledger.as_mut() {
        ledger.flush();
    }
}

impl Worker {
    fn run_loop(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut stop_started: Option<Instant> = None;
        let mut stop_next = 0usize;
        let mut last_rebind_check = Instant::now();
        let give_up = self.shared.settings.stop_flush + Duration::from_secs(20);
        loop {
            let now = Instant::now();
            if stop_started.is_none() && self.shared.stop.load(Ordering::Relaxed) {
                stop_started = Some(now);
            }
            // Stop gracefully at the start rate (per worker), so de-registrations do not arrive
            // all at once.
            if let Some(since) = stop_started {
                let rate = self.shared.start_rate / self.shared_workers();
                let due = ((now - since).as_secs_f64() * rate) as usize + 1;
                while stop_next < due.min(self.slots.len()) {
                    self.with_meter(stop_next, now, |meter, ctx| meter.stop(ctx, now));
                    stop_next += 1;
                }
                if self.stopped >= self.slots.len() || now - since > give_up {
                    break;
                }
            }
            self.run_delayed(now);
            self.maybe_rebind(now, &mut last_rebind_check);
            // Due timers. A stale entry (the slot was rescheduled earlier) is skipped.
            while let Some(&Reverse((at, slot))) = self.heap.peek() {
                if at > now {
                    break;
                }
                self.heap.pop();
                let i = slot as usize;
                let Some(s) = self.slots.get_mut(i) else {
                    continue;
                };
                if s.scheduled != Some(at) {
                    continue;
                }
                s.scheduled = None;
                self.with_meter(i, now, |meter, ctx| meter.handle_timeout(ctx, now));
            }
            let mut timeout = MAX_SLEEP;
            if let Some(&Reverse((at, _))) = self.heap.peek() {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if let Some(Reverse(d)) = self.delayed.peek() {
                timeout = timeout.min(d.at.saturating_duration_since(Instant::now()));
            }
            if stop_started.is_some() && stop_next < self.slots.len() {
                timeout = timeout.min(Duration::from_millis(5));
            }
            if self.poll.poll(&mut events, Some(timeout)).is_err() {
                // EINTR and the like: go round again.
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                let token = event.token().0;
                if token & DOWNLOAD_TOKEN != 0 {
                    self.receive_download(token & !DOWNLOAD_TOKEN, now, &mut buf);
                } else {
                    self.receive(token, now, &mut buf);
                }
            }
        }
    }

    fn shared_workers(&self) -> f64 {
        // Each worker holds about meters / workers of the fleet; its share of the rate follows.
        let mine = self.slots.len().max(1) as f64;
        (f64::from(self.shared.meters) / mine).max(1.0)
    }

    /// Reads everything waiting on slot `i`'s socket.
    fn receive(&mut self, i: usize, now: Instant, buf: &mut [u8]) {
        loop {
            let Some(socket) = self.slots.get(i).and_then(|s| s.socket.as_ref()) else {
                return;
            };
            match socket.recv(buf) {
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or(&[]);
                    if self.shared.faults.any_datagram_fault() {
                        let unreachable = self.unreachable(now);
                        match fate(&self.shared.faults, &mut self.rng, now, unreachable) {
                            Fate::Lost => {
                                Stats::inc(&self.shared.stats.fault_lost);
                                continue;
                            }
                            Fate::Delay(at) => {
                                Stats::inc(&self.shared.stats.fault_delayed);
                                self.hold(at, i, true, bytes.to_vec());
                                continue;
                            }
                            Fate::Deliver { copies } => {
                                for _ in 0..copies {
                                    self.with_meter(i, now, |m, ctx| {
                                        m.handle_datagram(ctx, now, bytes)
                                    });
                                }
                                if copies > 1 {
                                    Stats::inc(&self.shared.stats.fault_duplicated);
                                }
                                continue;
                            }
                        }
                    }
                    self.with_meter(i, now, |m, ctx| m.handle_datagram(ctx, now, bytes));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP port unreachable surfaces as ConnectionRefused on a connected socket: the
                // server is not there; CoAP retransmission handles it.
                Err(_) => return,
            }
        }
    }

    /// Reads everything waiting on slot `i`'s download socket, through the same fault injection
    /// (loss, duplication, delay, unreachable periods) as the LwM2M traffic.
    fn receive_download(&mut self, i: usize, now: Instant, buf: &mut [u8]) {
        loop {
            let Some(socket) = self.slots.get(i).and_then(|s| s.download_socket.as_ref()) else {
                return;
            };
            match socket.recv_from(buf) {
                Ok((n, from)) => {
                    let bytes = buf.get(..n).unwrap_or(&[]);
                    let copies = match self.fate_now(now) {
                        Ok(copies) => copies,
                        Err(at) => {
                            self.hold_for(at, i, true, Some(from), bytes.to_vec());
                            continue;
                        }
                    };
                    for _ in 0..copies {
                        self.with_meter(i, now, |m, ctx| {
                            m.handle_download_datagram(ctx, now, from, bytes)
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn unreachable(&self, now: Instant) -> bool {
        let clock = &self.shared.settings.clock;
        !self.shared.faults.unreachable.is_empty()
            && self
                .shared
                .faults
                .unreachable_at(clock.sim(now) - clock.sim_start())
    }

    fn hold(&mut self, at: Instant, slot: usize, inbound: bool, bytes: Vec<u8>) {
        self.hold_for(at, slot, inbound, None, bytes);
    }

    fn hold_for(
        &mut self,
        at: Instant,
        slot: usize,
        inbound: bool,
        download_peer: Option<SocketAddr>,
        bytes: Vec<u8>,
    ) {
        self.delay_seq += 1;
        self.delayed.push(Reverse(Delayed {
            at,
            seq: self.delay_seq,
            meter: slot as u32,
            inbound,
            download_peer,
            bytes,
        }));
    }

    /// How many copies of a datagram go through now (0: lost), or `Err(at)`: held back until
    /// then; by the fault settings, counting what was injected.
    fn fate_now(&mut self, now: Instant) -> Result<u8, Instant> {
        if !self.shared.faults.any_datagram_fault() {
            return Ok(1);
        }
        let unreachable = self.unreachable(now);
        match fate(&self.shared.faults, &mut self.rng, now, unreachable) {
            Fate::Lost => {
                Stats::inc(&self.shared.stats.fault_lost);
                Ok(0)
            }
            Fate::Delay(at) => {
                Stats::inc(&self.shared.stats.fault_delayed);
                Err(at)
            }
            Fate::Deliver { copies } => {
                if copies > 1 {
                    Stats::inc(&self.shared.stats.fault_duplicated);
                }
                Ok(copies)
            }
        }
    }

    fn run_delayed(&mut self, now: Instant) {
        while self.delayed.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(d)) = self.delayed.pop() else {
                return;
            };
            let i = d.meter as usize;
            match (d.inbound, d.download_peer) {
                (true, None) => {
                    self.with_meter(i, now, |m, ctx| m.handle_datagram(ctx, now, &d.bytes));
                }
                (true, Some(from)) => self.with_meter(i, now, |m, ctx| {
                    m.handle_download_datagram(ctx, now, from, &d.bytes)
                }),
                (false, None) => self.send_raw(i, &d.bytes),
                (false, Some(peer)) => {
                    // The pull may have ended meanwhile (its socket closed): then it is lost.
                    if let Some(socket) = self.slots.get(i).and_then(|s| s.download_socket.as_ref())
                        && socket.send_to(&d.bytes, peer).is_err()
                    {
                        Stats::inc(&self.shared.stats.send_errors);
                    }
                }
            }
        }
    }

    /// Runs `f` on slot `i`'s meter, sends what it queued, and re-arms its deadline.
    fn with_meter(&mut self, i: usize, now: Instant, f: impl FnOnce(&mut SimMeter, &mut Ctx<'_>)) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let mut ctx = Ctx {
            settings: &self.shared.settings,
            stats: &self.shared.stats,
            ledger: &mut self.ledger,
            out: &mut self.out,
            download: &mut self.download_out,
        };
        f(&mut slot.meter, &mut ctx);
        if !self.download_out.is_empty() || slot.download_socket.is_some() {
            self.run_download_socket(i);
        }
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.meter.is_stopped() && !slot.stopped {
            slot.stopped = true;
            self.stopped += 1;
        }
        let out = std::mem::take(&mut self.out);
        for bytes in &out {
            self.send(i, now, bytes);
        }
        self.out = out;
        self.out.clear();
        // After a bootstrap the meter talks to another server: a socket connected to it (what
        // was queued above, the answer to Bootstrap-Finish, went out on the old one).
        if let Some(slot) = self.slots.get_mut(i)
            && slot.meter.take_reconnect()
        {
            let peer = slot.meter.peer(&self.shared.settings);
            match open_socket(&self.poll, peer, i) {
                Ok(socket) => {
                    if let Some(mut old) = slot.socket.replace(socket) {
                        let _ = self.poll.registry().deregister(&mut old);
                    }
                }
                Err(_) => Stats::inc(&self.shared.stats.send_errors),
            }
        }
        self.reschedule(i);
    }

    /// Sends a pull's datagrams from slot `i`'s download socket, opening it on first use and
    /// closing it once the pull is over.
    fn run_download_socket(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if !self.download_out.is_empty() && slot.download_socket.is_none() {
            let any = SocketAddr::from(([0, 0, 0, 0], 0));
            match UdpSocket::bind(any).and_then(|mut s| {
                self.poll
                    .registry()
                    .register(&mut s, Token(i | DOWNLOAD_TOKEN), Interest::READABLE)
                    .map(|()| s)
            }) {
                Ok(s) => slot.download_socket = Some(s),
                Err(_) => Stats::inc(&self.shared.stats.send_errors),
            }
        }
        let out = std::mem::take(&mut self.download_out);
        let now = Instant::now();
        for (peer, bytes) in out {
            let copies = match self.fate_now(now) {
                Ok(copies) => copies,
                Err(at) => {
                    self.hold_for(at, i, false, Some(peer), bytes);
                    continue;
                }
            };
            for _ in 0..copies {
                let sent = self
                    .slots
                    .get(i)
                    .and_then(|s| s.download_socket.as_ref())
                    .is_some_and(|s| s.send_to(&bytes, peer).is_ok());
                if !sent {
                    // The pull's CoAP layer retransmits or gives up (result 4).
                    Stats::inc(&self.shared.stats.send_errors);
                }
            }
        }
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if !slot.meter.is_downloading()
            && let Some(mut socket) = slot.download_socket.take()
        {
            let _ = self.poll.registry().deregister(&mut socket);
        }
    }

    fn send(&mut self, i: usize, now: Instant, bytes: &[u8]) {
        if self.shared.faults.any_datagram_fault() {
            let unreachable = self.unreachable(now);
            match fate(&self.shared.faults, &mut self.rng, now, unreachable) {
                Fate::Lost => {
                    Stats::inc(&self.shared.stats.fault_lost);
                    return;
                }
                Fate::Delay(at) => {
                    Stats::inc(&self.shared.stats.fault_delayed);
                    self.hold(at, i, false, bytes.to_vec());
                    return;
                }
                Fate::Deliver { copies } => {
                    if copies > 1 {
                        Stats::inc(&self.shared.stats.fault_duplicated);
                        self.send_raw(i, bytes);
                    }
                }
            }
        }
        self.send_raw(i, bytes);
    }

    fn send_raw(&mut self, i: usize, bytes: &[u8]) {
        let Some(socket) = self.slots.get(i).and_then(|s| s.socket.as_ref()) else {
            return;
        };
        if socket.send(bytes).is_err() {
            // Full socket buffer or ICMP error: the datagram is lost, CoAP retransmits.
            Stats::inc(&self.shared.stats.send_errors);
        }
    }

    fn reschedule(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let Some(at) = slot.meter.poll_timeout(&self.shared.settings) else {
            return;
        };
        if slot.scheduled.is_none_or(|s| at < s) {
            slot.scheduled = Some(at);
            self.heap.push(Reverse((at, i as u32)));
        }
    }

    /// NAT rebinding: meters change source port at the configured rate per simulated day.
    fn maybe_rebind(&mut self, now: Instant, last: &mut Instant) {
        let rate = self.shared.faults.rebind_per_day;
        if rate <= 0.0 || now < *last + Duration::from_millis(100) || self.slots.is_empty() {
            return;
        }
        let real = (now - *last).as_secs_f64();
        *last = now;
        let sim_days = real * self.shared.settings.clock.speed() / 86_400.0;
        let expected = rate * sim_days * self.slots.len() as f64;
        let mut count = expected.floor() as u64;
        if self.rng.chance(expected.fract()) {
            count += 1;
        }
        for _ in 0..count {
            let i = self.rng.below(self.slots.len() as u64) as usize;
            self.rebind(i, now);
        }
    }

    fn rebind(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let server = slot.meter.peer(&self.shared.settings);
        if slot.stopped {
            return;
        }
        // Open the new socket first so the port surely changes.
        let Ok(socket) = open_socket(&self.poll, server, i) else {
            return;
        };
        if let Some(mut old) = slot.socket.replace(socket) {
            let _ = self.poll.registry().deregister(&mut old);
        }
        self.with_meter(i, now, |m, ctx| m.rebind(ctx, now));
    }
}
