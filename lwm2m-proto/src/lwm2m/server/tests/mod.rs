//! Scenario tests of [`Lwm2mServer`]: fake devices (bare [`CoapEndpoint`]s answered by hand) and
//! the server joined by a virtual network (perfect, or dropping chosen datagrams) on a virtual
//! clock that jumps to the next deadline. One file per concern; the harness is here.

mod commit;
mod observe;
mod operations;
mod queue;
mod registration;
mod robustness;
mod send;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::codec::{self, Record};
use lwm2m_objects::{ContentFormat as Format, Node, ObjectInstance, Path, Resource, Value};

use super::*;
use crate::coap::{
    CoapConfig, CoapEndpoint, Code, ContentFormat, Event, Request, RequestId, Responder, Response,
};

/// A device: a CoAP endpoint whose requests from the server are answered by the test.
pub(super) struct Device {
    pub addr: SocketAddr,
    pub auth: PeerAuth,
    pub coap: CoapEndpoint,
    /// Requests from the server not yet answered.
    pub inbox: VecDeque<(Request, Responder)>,
    /// Events about the device's own requests.
    pub events: Vec<Event>,
    /// An offline device neither receives nor sends (asleep, or unplugged).
    pub online: bool,
    /// The location (`rd/{id}`) of its registration.
    pub location: Option<String>,
}

/// The server and its devices on a virtual clock.
pub(super) struct Net {
    pub now: Instant,
    pub start: Instant,
    pub server: Lwm2mServer,
    pub server_addr: SocketAddr,
    pub devices: Vec<Device>,
    /// Every server event, in order.
    pub events: Vec<ServerEvent>,
    /// How many events [`Net::take_events`] has handed out.
    taken: usize,
    /// Drop this many of the next datagrams from the server to devices (loss).
    pub drop_to_devices: usize,
    /// Drop this many of the next datagrams from devices to the server.
    pub drop_to_server: usize,
}

pub(super) fn config() -> ServerConfig {
    ServerConfig::default()
}

pub(super) fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Net {
    pub(super) fn new(config: ServerConfig) -> Net {
        let now = Instant::now();
        Net {
            now,
            start: now,
            server: Lwm2mServer::new(config, 42),
            server_addr: SocketAddr::from(([10, 0, 0, 1], 5683)),
            devices: Vec::new(),
            events: Vec::new(),
            taken: 0,
            drop_to_devices: 0,
            drop_to_server: 0,
        }
    }

    /// Adds a device; returns its index.
    pub(super) fn device(&mut self, auth: PeerAuth) -> usize {
        let n = self.devices.len();
        let addr = SocketAddr::from(([10, 0, 1, (n % 250) as u8 + 2], 40_000 + n as u16));
        self.devices.push(Device {
            addr,
            auth,
            coap: CoapEndpoint::new(CoapConfig::default(), 1000 + n as u64),
            inbox: VecDeque::new(),
            events: Vec::new(),
            online: true,
            location: None,
        });
        n
    }

    /// Moves datagrams both ways until nothing moves, without advancing time.
    pub(super) fn flush(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                if self.drop_to_devices > 0 {
                    self.drop_to_devices -= 1;
                    continue;
                }
                if let Some(d) = self.devices.iter_mut().find(|d| d.addr == t.peer)
                    && d.online
                {
                    d.coap.handle_datagram(self.now, self.server_addr, &t.bytes);
                }
            }
            for d in &mut self.devices {
                while let Some(t) = d.coap.poll_transmit() {
                    moved = true;
                    if self.drop_to_server > 0 {
                        self.drop_to_server -= 1;
                        continue;
                    }
                    if d.online {
                        self.server
                            .handle_datagram(self.now, d.addr, d.auth.clone(), &t.bytes);
                    }
                }
                while let Some(e) = d.coap.poll_event() {
                    match e {
                        Event::Request {
                            request, responder, ..
                        } => d.inbox.push_back((request, responder)),
                        other => d.events.push(other),
                    }
                }
            }
            while let Some(e) = self.server.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Advances the clock by `d`, firing every timer on the way.
    pub(super) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.flush();
        loop {
            let next = self
                .devices
                .iter()
                .filter_map(|d| d.coap.poll_timeout())
                .chain(self.server.poll_timeout())
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.fire();
                }
                _ => break,
            }
        }
        self.now = target;
        self.fire();
    }

    fn fire(&mut self) {
        let now = self.now;
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        for d in &mut self.devices {
            if d.coap.poll_timeout().is_some_and(|t| t <= now) {
                d.coap.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// The events since the last call.
    pub(super) fn take_events(&mut self) -> Vec<ServerEvent> {
        let out = self.events[self.taken..].to_vec();
        self.taken = self.events.len();
        out
    }

    /// The device sends `request` to the server.
    pub(super) fn send(&mut self, dev: usize, request: Request) -> RequestId {
        let now = self.now;
        let server = self.server_addr;
        let id = self.devices[dev].coap.request(now, server, request);
        self.flush();
        id
    }

    /// The final response the device got for `id`.
    pub(super) fn response(&self, dev: usize, id: RequestId) -> Option<&Response> {
        self.devices[dev].events.iter().find_map(|e| match e {
            Event::Response { id: i, response } if *i == id => Some(response),
            _ => None,
        })
    }

    /// Sends a Register with `query` and `links` and returns the ticket event's content.
    pub(super) fn register_request(
        &mut self,
        dev: usize,
        query: &[&str],
        links: &str,
    ) -> RequestId {
        let mut r = Request::post()
            .with_path(["rd"])
            .with_content_format(ContentFormat::LINK_FORMAT)
            .with_payload(links);
        for q in query {
            r = r.with_query(q);
        }
        self.send(dev, r)
    }

    /// Registers the device and accepts it; returns the registration.
    pub(super) fn register(&mut self, dev: usize, query: &[&str], links: &str) -> Registration {
        let req = self.register_request(dev, query, links);
        let ticket = self
            .take_events()
            .into_iter()
            .find_map(|e| match e {
                ServerEvent::RegistrationRequest { ticket, .. } => Some(ticket),
                _ => None,
            })
            .expect("a RegistrationRequest");
        let now = self.now;
        let id = self
            .server
            .accept_registration(now, ticket)
            .expect("accepted");
        self.flush();
        let response = self.response(dev, req).expect("2.01").clone();
        assert_eq!(response.code, Code::CREATED);
        assert_eq!(response.location_path(), ["rd".to_string(), id.to_string()]);
        self.devices[dev].location = Some(id.to_string());
        self.server
            .registration_by_id(id)
            .expect("registered")
            .clone()
    }

    /// The device sends an Update with `query` (and `links` as payload if not empty).
    pub(super) fn update(&mut self, dev: usize, query: &[&str], links: &str) -> RequestId {
        let location = self.devices[dev].location.clone().expect("registered");
        let mut r = Request::post().with_path(["rd", location.as_str()]);
        for q in query {
            r = r.with_query(q);
        }
        if !links.is_empty() {
            r = r
                .with_content_format(ContentFormat::LINK_FORMAT)
                .with_payload(links);
        }
        self.send(dev, r)
    }

    /// The next request the device got from the server.
    pub(super) fn next_request(&mut self, dev: usize) -> (Request, Responder) {
        self.devices[dev]
            .inbox
            .pop_front()
            .expect("the device received a request")
    }

    /// The device answers `responder` with `response`.
    pub(super) fn reply(&mut self, dev: usize, responder: Responder, response: Response) {
        let now = self.now;
        self.devices[dev]
            .coap
            .respond(now, responder, response)
            .expect("request still pending");
        self.flush();
    }

    /// The device answers its next request with `answer(request)`; returns the request.
    pub(super) fn serve(
        &mut self,
        dev: usize,
        answer: impl FnOnce(&Request) -> Response,
    ) -> Request {
        let (request, responder) = self.next_request(dev);
        let response = answer(&request);
        self.reply(dev, responder, response);
        request
    }

    /// The completion of `op` among the events so far.
    pub(super) fn completion(&self, op: OpId) -> Option<&Result<OpOutcome, OpError>> {
        self.events.iter().find_map(|e| match e {
            ServerEvent::OpCompleted { op: o, outcome, .. } if *o == op => Some(outcome),
            _ => None,
        })
    }

    /// The successful outcome of `op`.
    pub(super) fn outcome(&self, op: OpId) -> OpOutcome {
        match self.completion(op) {
            Some(Ok(outcome)) => outcome.clone(),
            other => panic!("expected {op} to succeed, got {other:?}"),
        }
    }
}

/// The `/3/0` Device instance a test device holds.
pub(super) fn device_instance() -> ObjectInstance {
    ObjectInstance::new(
        0,
        [
            Resource::single(0, Value::String("Ferrite Meters".into())),
            Resource::single(1, Value::String("FM-100".into())),
            Resource::single(9, Value::Integer(87)),
            Resource::multiple(6, [(0, Value::Integer(1)), (1, Value::Integer(5))]),
        ],
    )
}

/// `node` at `path` encoded in `format`, as a 2.05 response.
pub(super) fn content(format: Format, path: Path, node: &Node) -> Response {
    let payload = codec::encode(format, &path, node).expect("encodes");
    Response::new(Code::CONTENT)
        .with_content_format(ContentFormat(format.to_u16()))
        .with_payload(payload)
}

/// Records encoded in `format`, as a 2.05 response.
pub(super) fn records_response(format: Format, records: &[Record]) -> Response {
    let payload = codec::encode_records(format, records).expect("encodes");
    Response::new(Code::CONTENT)
        .with_content_format(ContentFormat(format.to_u16()))
        .with_payload(payload)
}

/// The server's registration events of one kind.
pub(super) fn refused(events: &[ServerEvent]) -> Vec<(Code, RefusalReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::RegistrationRefused { code, reason, .. } => Some((*code, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Links of a typical 1.1 meter.
pub(super) const METER_LINKS: &str = r#"</>;rt="oma.lwm2m";ct="60 110 112 11542",</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</10243/0>"#;

/// Links of a typical 1.0 meter.
pub(super) const METER_LINKS_1_0: &str = "</1/0>,</3/0>,</4/0>,</5/0>,</10243/0>";

/// Registers a 1.1 meter `ep` on a fresh device.
pub(super) fn registered_meter(net: &mut Net, ep: &str) -> (usize, Registration) {
    let dev = net.device(PeerAuth::Psk {
        identity: format!("id-{ep}"),
    });
    let ep_arg = format!("ep={ep}");
    let reg = net.register(dev, &[&ep_arg, "lt=300", "lwm2m=1.1", "b=U"], METER_LINKS);
    net.take_events();
    (dev, reg)
}

/// Registers a 1.1 queue-mode meter `ep` on a fresh device.
pub(super) fn registered_sleeper(net: &mut Net, ep: &str) -> (usize, Registration) {
    let dev = net.device(PeerAuth::NoSec);
    let ep_arg = format!("ep={ep}");
    let reg = net.register(
        dev,
        &[&ep_arg, "lt=3600", "lwm2m=1.1", "b=U", "Q"],
        METER_LINKS,
    );
    net.take_events();
    (dev, reg)
}
