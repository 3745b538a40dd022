//! Tests of [`Lwm2mClient`] against a server played by a hand-driven [`CoapEndpoint`] on a
//! virtual clock (one file per concern), plus pair tests with the LwM2M server over a lossy link.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dm;
mod memory;
mod observe;
mod pair;
mod registration;
mod send;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::{ObjectInstance, ObjectModel, Path, Resource, Value};

use super::{ClientConfig, ClientEvent, Lwm2mClient, MemoryObjectStore};
use crate::coap::{
    CoapConfig, CoapEndpoint, Code, Event, Message, Request, RequestId, Responder, Response,
};
use crate::lwm2m::registration::Lwm2mVersion;

pub(super) const CLIENT_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 2),
    56830,
));

/// A smart meter: server account /1/0, Device /3/0, Connectivity /4/0, Firmware /5/0, a power
/// meter /10243/0, and a Security instance /0/0 the DM server must not see.
pub(super) fn meter_store() -> MemoryObjectStore {
    let mut store = MemoryObjectStore::new(ObjectModel::builtin())
        .with_instance(0, 0, [(0, Value::String("coaps://ferrite:5684".into()))])
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
                (5, Value::Integer(0)),
            ],
        )
        .with_instance(
            10243,
            0,
            [
                (4, Value::Float(230.0)),
                (5, Value::Float(1.5)),
                (6, Value::Float(0.35)),
                (14, Value::Float(1234.5)),
            ],
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

pub(super) fn config(version: Lwm2mVersion) -> ClientConfig {
    ClientConfig::new("meter-1", version).with_lifetime(300)
}

/// A client and a server endpoint joined by a perfect link on a virtual clock.
pub(super) struct Harness {
    pub now: Instant,
    pub start: Instant,
    pub client: Lwm2mClient<MemoryObjectStore>,
    pub server: CoapEndpoint,
    /// Client events, in order.
    pub events: Vec<ClientEvent>,
    /// Requests the client sent, waiting for the test to answer.
    pub inbox: VecDeque<(Request, Responder)>,
    /// The server's other events (responses, notifications).
    pub server_events: Vec<Event>,
    /// Every datagram the client sent, decoded, with its time.
    pub sent: Vec<(Instant, Message)>,
    /// Drop what the client sends (a broken uplink).
    pub drop_uplink: bool,
}

impl Harness {
    pub(super) fn new(config: ClientConfig) -> Harness {
        Harness::with_store(config, meter_store())
    }

    pub(super) fn with_store(config: ClientConfig, store: MemoryObjectStore) -> Harness {
        let start = Instant::now();
        let server_config = CoapConfig {
            empty_ack_delay: None,
            ..CoapConfig::default()
        };
        Harness {
            now: start,
            start,
            client: Lwm2mClient::new(config, store, 11),
            server: CoapEndpoint::new(server_config, 12),
            events: Vec::new(),
            inbox: VecDeque::new(),
            server_events: Vec::new(),
            sent: Vec::new(),
            drop_uplink: false,
        }
    }

    /// Seconds since the start.
    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves datagrams and events until nothing moves (the clock stands still).
    pub(super) fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(d) = self.client.poll_transmit() {
                progressed = true;
                if let Ok(m) = Message::decode(&d) {
                    self.sent.push((self.now, m));
                }
                if !self.drop_uplink {
                    self.server.handle_datagram(self.now, CLIENT_ADDR, &d);
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                progressed = true;
                self.client.handle_datagram(self.now, &t.bytes);
            }
            while let Some(e) = self.server.poll_event() {
                progressed = true;
                match e {
                    Event::Request {
                        request, responder, ..
                    } => self.inbox.push_back((request, responder)),
                    other => self.server_events.push(other),
                }
            }
            while let Some(e) = self.client.poll_event() {
                progressed = true;
                self.events.push(e);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs the clock forward by `d`, firing every deadline on the way.
    pub(super) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.client.handle_timeout(end);
        self.server.handle_timeout(end);
        self.pump();
    }

    /// Runs the clock until the client sent a request to the server (or `limit` passed).
    pub(super) fn until_request(&mut self, limit: Duration) -> Option<Request> {
        let end = self.now + limit;
        loop {
            self.pump();
            if let Some((r, _)) = self.inbox.front() {
                return Some(r.clone());
            }
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()?;
            if next > end {
                return None;
            }
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
    }

    /// Answers the oldest request the client sent; returns that request.
    pub(super) fn answer(&mut self, response: Response) -> Request {
        let (request, responder) = self.inbox.pop_front().expect("a request from the client");
        self.server
            .respond(self.now, responder, response)
            .expect("pending");
        self.pump();
        request
    }

    /// Registers the client (2.01 at `rd/5a3f`) and clears the events.
    pub(super) fn register(&mut self) -> Request {
        self.client.register(self.now).unwrap();
        self.pump();
        let request = self.answer(Response::new(Code::CREATED).with_location_path(["rd", "5a3f"]));
        assert_eq!(
            self.events,
            [ClientEvent::Registered {
                location: "rd/5a3f".into()
            }]
        );
        self.events.clear();
        request
    }

    /// Sends `request` from the server and returns the client's response.
    pub(super) fn request(&mut self, request: Request) -> Response {
        let id = self.server.request(self.now, CLIENT_ADDR, request);
        self.pump();
        self.take_response(id).expect("a response")
    }

    /// The response to `id`, if it arrived.
    pub(super) fn take_response(&mut self, id: RequestId) -> Option<Response> {
        let at = self
            .server_events
            .iter()
            .position(|e| matches!(e, Event::Response { id: got, .. } if *got == id))?;
        match self.server_events.remove(at) {
            Event::Response { response, .. } => Some(response),
            _ => None,
        }
    }

    /// The notifications received for `id`, in order (removed from the log).
    pub(super) fn take_notifications(&mut self, id: RequestId) -> Vec<Response> {
        let mut out = Vec::new();
        self.server_events.retain(|e| match e {
            Event::Notification {
                id: got, response, ..
            } if *got == id => {
                out.push(response.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// Takes the client events so far.
    pub(super) fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }
}

/// `GET` of `path` with an optional Accept.
pub(super) fn get(path: &str) -> Request {
    let path: Path = path.parse().unwrap();
    Request::get().with_path(path.segments())
}
