//! Test harness: a client and a server [`CoapEndpoint`] joined by a lossy virtual link (seeded
//! drop / duplicate / reorder) on a virtual clock that jumps to the next deadline, in the style
//! of quinn-proto's `tests/util.rs`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::endpoint::{CoapConfig, CoapEndpoint, Event};

/// Link behaviour, per datagram.
#[derive(Clone, Debug)]
pub(crate) struct LinkConfig {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub delay: Duration,
    pub jitter: Duration,
    /// Indices (in send order over both directions, from 0) of datagrams to drop for sure.
    pub drop_indices: BTreeSet<usize>,
}

impl LinkConfig {
    pub(crate) fn perfect() -> LinkConfig {
        LinkConfig {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            drop_indices: BTreeSet::new(),
        }
    }

    pub(crate) fn lossy(drop: f64, duplicate: f64, reorder: f64) -> LinkConfig {
        LinkConfig {
            drop,
            duplicate,
            reorder,
            jitter: Duration::from_millis(5),
            ..LinkConfig::perfect()
        }
    }
}

/// A datagram on the wire.
#[derive(Clone, Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    to_server: bool,
    bytes: Vec<u8>,
}

/// The client's events with the time they were polled.
pub(crate) type ClientLog = [(Instant, Event)];

/// Which side an event or datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Client and server endpoints over a virtual link.
pub(crate) struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub client: CoapEndpoint,
    pub server: CoapEndpoint,
    pub client_addr: SocketAddr,
    pub server_addr: SocketAddr,
    pub link: LinkConfig,
    rng: u64,
    in_flight: Vec<InFlight>,
    next_seq: u64,
    sent_count: usize,
    /// Every datagram put on the link: (time, sender, bytes), including dropped ones.
    pub wire_log: Vec<(Instant, Side, Vec<u8>)>,
    /// Events of the client, in order.
    pub client_events: Vec<(Instant, Event)>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &(self.now - self.start))
            .finish()
    }
}

impl Sim {
    pub(crate) fn new(client: CoapConfig, server: CoapConfig, link: LinkConfig, seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            now: start,
            start,
            client: CoapEndpoint::new(client, seed ^ 0xC11E),
            server: CoapEndpoint::new(server, seed ^ 0x5E7E),
            client_addr: SocketAddr::from(([10, 0, 0, 2], 56830)),
            server_addr: SocketAddr::from(([10, 0, 0, 1], 5683)),
            link,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            in_flight: Vec::new(),
            next_seq: 0,
            sent_count: 0,
            wire_log: Vec::new(),
            client_events: Vec::new(),
        }
    }

    fn random(&mut self) -> f64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn put_on_link(&mut self, to_server: bool, bytes: Vec<u8>) {
        let from = if to_server {
            Side::Client
        } else {
            Side::Server
        };
        self.wire_log.push((self.now, from, bytes.clone()));
        let index = self.sent_count;
        self.sent_count += 1;
        if self.link.drop_indices.contains(&index) || self.random() < self.link.drop {
            return;
        }
        let copies = if self.random() < self.link.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.link.delay + self.link.jitter.mul_f64(self.random());
            if self.random() < self.link.reorder {
                delay += self.link.delay * 5;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight.push(InFlight {
                at: self.now + delay,
                seq,
                to_server,
                bytes: bytes.clone(),
            });
        }
    }

    /// Moves datagrams from the endpoints onto the link and events to their consumers. Returns
    /// whether anything happened.
    fn flush(&mut self, server_app: &mut dyn FnMut(&mut CoapEndpoint, Instant, Event)) -> bool {
        let mut any = false;
        loop {
            let mut progressed = false;
            while let Some(t) = self.client.poll_transmit() {
                assert_eq!(t.peer, self.server_addr);
                self.put_on_link(true, t.bytes);
                progressed = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                assert_eq!(t.peer, self.client_addr);
                self.put_on_link(false, t.bytes);
                progressed = true;
            }
            while let Some(e) = self.server.poll_event() {
                server_app(&mut self.server, self.now, e);
                progressed = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push((self.now, e));
                progressed = true;
            }
            if !progressed {
                return any;
            }
            any = true;
        }
    }

    /// Runs until `done` holds for the client events, nothing is left to do, or `limit` of
    /// virtual time passes. Returns whether `done` held.
    pub(crate) fn run(
        &mut self,
        limit: Duration,
        server_app: &mut dyn FnMut(&mut CoapEndpoint, Instant, Event),
        done: &dyn Fn(&ClientLog) -> bool,
    ) -> bool {
        let deadline = self.now + limit;
        loop {
            self.flush(server_app);
            if done(&self.client_events) {
                return true;
            }
            let next = [
                self.in_flight.iter().map(|d| d.at).min(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return false;
            };
            if next > deadline {
                self.now = deadline;
                return false;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let mut due: Vec<InFlight> = Vec::new();
            self.in_flight.retain(|d| {
                if d.at <= now {
                    due.push(d.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|d| (d.at, d.seq));
            for d in due {
                if d.to_server {
                    self.server.handle_datagram(now, self.client_addr, &d.bytes);
                } else {
                    self.client.handle_datagram(now, self.server_addr, &d.bytes);
                }
            }
            self.client.handle_timeout(now);
            self.server.handle_timeout(now);
        }
    }

    /// Runs until the link and both endpoints are idle (or `limit`).
    pub(crate) fn run_idle(
        &mut self,
        limit: Duration,
        server_app: &mut dyn FnMut(&mut CoapEndpoint, Instant, Event),
    ) {
        self.run(limit, server_app, &|_| false);
    }

    /// Advances the clock by `d`, processing everything due meanwhile.
    pub(crate) fn advance(
        &mut self,
        d: Duration,
        server_app: &mut dyn FnMut(&mut CoapEndpoint, Instant, Event),
    ) {
        self.run(d, server_app, &|_| false);
    }

    /// Datagrams a side put on the wire, decoded.
    pub(crate) fn sent_by(&self, side: Side) -> Vec<super::message::Message> {
        self.wire_log
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(_, _, b)| super::message::Message::decode(b).ok())
            .collect()
    }
}
