//! Pair tests: [`Lwm2mServer`] ↔ [`Lwm2mClient`] over the seeded lossy link of
//! `coap::testing` (drop, duplicate, reorder) on a virtual clock that jumps to the next deadline,
//! in the style of quinn-proto's `tests/util.rs`: register (1.0 TLV and 1.1 SenML), read, write,
//! execute, observe with notifications, Send with a time series, Update, De-register, lifetime
//! expiry.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::codec::Record;
use lwm2m_objects::{Node, ObjectInstance, Path, Resource, Value};

use super::*;
use crate::coap::testing::LinkConfig;
use crate::lwm2m::client::RegistrationState;
use crate::lwm2m::registration::UpdateParams;
use crate::lwm2m::server::{
    Content, Lwm2mServer, ObservationEndReason, OpError, OpId, OpOutcome, Operation, PeerAuth,
    ServerConfig, ServerEvent, WriteMode,
};

const DEVICE_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 1, 7),
    40_007,
));

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A datagram on the link.
#[derive(Debug, Clone)]
struct InFlight {
    at: Instant,
    seq: u64,
    to_server: bool,
    bytes: Vec<u8>,
}

/// A server and one client joined by a lossy link.
struct Pair {
    now: Instant,
    server: Lwm2mServer,
    client: Lwm2mClient<MemoryObjectStore>,
    link: LinkConfig,
    rng: u64,
    in_flight: Vec<InFlight>,
    next_seq: u64,
    /// The device is unplugged: nothing it sends or is sent arrives.
    offline: bool,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

impl Pair {
    fn new(config: ClientConfig, link: LinkConfig, seed: u64) -> Pair {
        let start = Instant::now();
        Pair {
            now: start,
            server: Lwm2mServer::new(ServerConfig::default(), seed ^ 0x5E),
            client: Lwm2mClient::new(config, meter_store(), seed ^ 0xC1),
            link,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            in_flight: Vec::new(),
            next_seq: 0,
            offline: false,
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    fn random(&mut self) -> f64 {
        // xorshift64, as coap::testing.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn put_on_link(&mut self, to_server: bool, bytes: Vec<u8>) {
        if self.offline || self.random() < self.link.drop {
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

    /// Moves datagrams onto the link and events to the logs; accepts every Register.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(d) = self.client.poll_transmit() {
                self.put_on_link(true, d);
                progressed = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                assert_eq!(t.peer, DEVICE_ADDR);
                self.put_on_link(false, t.bytes);
                progressed = true;
            }
            while let Some(e) = self.server.poll_event() {
                if let ServerEvent::RegistrationRequest { ticket, .. } = &e {
                    self.server.accept_registration(self.now, *ticket).unwrap();
                }
                self.server_events.push(e);
                progressed = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs until `done` holds, or `limit` of virtual time passes. Returns whether it held.
    fn run_until(&mut self, limit: Duration, done: &dyn Fn(&Pair) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            self.flush();
            if done(self) {
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
            let Some(next) = next.filter(|n| *n <= deadline) else {
                self.now = deadline;
                self.client.handle_timeout(deadline);
                self.server.handle_timeout(deadline);
                self.flush();
                return done(self);
            };
            self.now = self.now.max(next);
            let now = self.now;
            let mut due = Vec::new();
            self.in_flight.retain(|d| {
                let ready = d.at <= now;
                if ready {
                    due.push(d.clone());
                }
                !ready
            });
            due.sort_by_key(|d| (d.at, d.seq));
            for d in due {
                if d.to_server {
                    self.server
                        .handle_datagram(now, DEVICE_ADDR, PeerAuth::NoSec, &d.bytes);
                } else if self.client.is_awake(now) {
                    // A queue-mode device that sleeps has its radio off: the datagram is lost.
                    self.client.handle_datagram(now, &d.bytes);
                }
            }
            self.client.handle_timeout(now);
            self.server.handle_timeout(now);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.run_until(d, &|_| false);
    }

    /// Registers, retrying a failed Register up to three times: the retry policy is the
    /// application's (the simulator's), not the client's.
    fn register(&mut self) {
        for _ in 0..3 {
            self.client.register(self.now).unwrap();
            let settled = self.run_until(secs(300), &|p| {
                p.client.state() == RegistrationState::Unregistered
                    || (p.client.state() == RegistrationState::Registered
                        && p.server.registration("meter-1").is_some())
            });
            assert!(settled);
            if self.client.state() == RegistrationState::Registered {
                return;
            }
        }
        panic!("not registered: {:?}", self.client_events);
    }

    /// Sends `operation` and runs until it completes.
    fn op(&mut self, operation: Operation) -> Result<OpOutcome, OpError> {
        let id = self.server.request(self.now, "meter-1", operation)?;
        let done = move |p: &Pair| p.completion(id).is_some();
        assert!(
            self.run_until(secs(600), &done),
            "operation {id:?} did not complete"
        );
        self.completion(id).unwrap()
    }

    fn completion(&self, id: OpId) -> Option<Result<OpOutcome, OpError>> {
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::OpCompleted { op, outcome, .. } if *op == id => Some(outcome.clone()),
            _ => None,
        })
    }

    fn notifications(&self) -> Vec<(Vec<Path>, Content)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Notification {
                    paths,
                    content: Ok(c),
                    ..
                } => Some((paths.clone(), c.clone())),
                _ => None,
            })
            .collect()
    }
}

fn node_of(outcome: Result<OpOutcome, OpError>) -> Node {
    match outcome {
        Ok(OpOutcome::Content(Content::Node { node, .. })) => node,
        other => panic!("expected content, got {other:?}"),
    }
}

fn single(node: &Node) -> Option<Value> {
    match node {
        Node::Resource(Resource {
            value: lwm2m_objects::ResourceValue::Single(v),
            ..
        }) => Some(v.clone()),
        _ => None,
    }
}

fn lossy() -> LinkConfig {
    LinkConfig::lossy(0.15, 0.1, 0.1)
}

#[test]
fn lwm2m_1_0_tlv_client_registers_and_is_read() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_0), lossy(), 1);
    pair.register();
    let reg = pair.server.registration("meter-1").unwrap().clone();
    assert_eq!(reg.version, Lwm2mVersion::V1_0);
    assert_eq!(reg.lifetime, 300);
    assert!(reg.objects.has_instance(10243, 0));
    assert!(!reg.objects.has_object(0), "Security is not registered");
    let Node::Instance(device) = node_of(pair.op(Operation::Read(p("/3/0")))) else {
        panic!("an instance")
    };
    assert_eq!(device.value(0), Some(&Value::String("Ferrite".into())));
    assert_eq!(device.value(9), Some(&Value::Integer(87)));
    // Write (TLV), Execute.
    let write = Operation::Write {
        path: p("/1/0/1"),
        node: Node::Resource(Resource::single(1, Value::Integer(600))),
        mode: WriteMode::Replace,
    };
    assert_eq!(pair.op(write), Ok(OpOutcome::Changed));
    assert_eq!(
        pair.client.store().get(&p("/1/0/1")),
        Some(&Value::Integer(600))
    );
    let reboot = Operation::Execute {
        path: p("/3/0/4"),
        args: None,
    };
    assert_eq!(pair.op(reboot), Ok(OpOutcome::Changed));
    assert!(pair.client_events.contains(&ClientEvent::Executed {
        path: p("/3/0/4"),
        args: None
    }));
    // A read-only resource refuses the write.
    let refused = Operation::Write {
        path: p("/3/0/0"),
        node: Node::Resource(Resource::single(0, Value::String("Acme".into()))),
        mode: WriteMode::Replace,
    };
    match pair.op(refused) {
        Err(OpError::Coap { code, .. }) => assert_eq!(code, Code::METHOD_NOT_ALLOWED),
        other => panic!("expected 4.05, got {other:?}"),
    }
}

#[test]
fn lwm2m_1_1_senml_client_read_write_execute_create_delete_discover() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_1), lossy(), 2);
    pair.register();
    assert_eq!(
        pair.server.registration("meter-1").unwrap().version,
        Lwm2mVersion::V1_1
    );
    let node = node_of(pair.op(Operation::Read(p("/10243/0/14"))));
    assert_eq!(single(&node), Some(Value::Float(1234.5)));
    let write = Operation::Write {
        path: p("/3/0/13"),
        node: Node::Resource(Resource::single(13, Value::Time(1_700_000_300))),
        mode: WriteMode::Replace,
    };
    assert_eq!(pair.op(write), Ok(OpOutcome::Changed));
    assert!(
        pair.client_events
            .contains(&ClientEvent::Written { path: p("/3/0/13") })
    );
    let update = Operation::Execute {
        path: p("/5/0/2"),
        args: Some("0='now'".into()),
    };
    assert_eq!(pair.op(update), Ok(OpOutcome::Changed));
    // Read-Composite.
    match pair.op(Operation::ReadComposite(vec![p("/3/0/9"), p("/4/0/2")])) {
        Ok(OpOutcome::Content(Content::Records(records))) => {
            let values: Vec<_> = records.into_iter().map(|r| (r.path, r.value)).collect();
            assert_eq!(
                values,
                [
                    (p("/3/0/9"), Some(Value::Integer(87))),
                    (p("/4/0/2"), Some(Value::Integer(-93)))
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    // Create then Delete an instance; each is followed by an Update with the new links.
    pair.client.store_mut().support(3331);
    let create = Operation::Create {
        object: 3331,
        instance: ObjectInstance::new(4, [Resource::single(5700, Value::Float(3.5))]),
    };
    assert_eq!(
        pair.op(create),
        Ok(OpOutcome::Created {
            instance: Some(p("/3331/4"))
        })
    );
    assert!(pair.run_until(secs(60), &|p| {
        p.server
            .registration("meter-1")
            .is_some_and(|r| r.objects.has_instance(3331, 4))
    }));
    assert_eq!(
        pair.op(Operation::Delete(p("/3331/4"))),
        Ok(OpOutcome::Deleted)
    );
    assert!(pair.run_until(secs(60), &|p| {
        p.server
            .registration("meter-1")
            .is_some_and(|r| !r.objects.has_instance(3331, 4))
    }));
    // Discover.
    match pair.op(Operation::Discover(p("/3/0"))) {
        Ok(OpOutcome::Links(links)) => {
            assert_eq!(links[0].path, p("/3/0"));
            let voltage = links.iter().find(|l| l.path == p("/3/0/7")).unwrap();
            assert_eq!(voltage.attributes.dim, Some(2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn observe_notifies_changes_and_pmax_then_cancel() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_1), lossy(), 3);
    pair.register();
    let attributes = lwm2m_objects::link::Attributes {
        pmin: Some(5),
        pmax: Some(120),
        ..Default::default()
    };
    let write_attributes = Operation::WriteAttributes {
        path: p("/10243/0/14"),
        attributes,
    };
    assert_eq!(pair.op(write_attributes), Ok(OpOutcome::Changed));
    let observation = match pair.op(Operation::Observe(p("/10243/0/14"))) {
        Ok(OpOutcome::Observing {
            observation,
            content,
        }) => {
            let Content::Node { node, .. } = content else {
                panic!("{content:?}")
            };
            assert_eq!(single(&node), Some(Value::Float(1234.5)));
            observation
        }
        other => panic!("{other:?}"),
    };
    // The meter's register moves every 15 minutes for an hour.
    for i in 1..=4 {
        pair.advance(secs(900));
        let now = pair.now;
        pair.client
            .with_store(now, |s| {
                s.set(p("/10243/0/14"), Value::Float(1234.5 + f64::from(i)))
            })
            .unwrap();
    }
    let wanted = 1234.5 + 4.0;
    let got_last = pair.run_until(secs(60), &|p| {
        p.notifications().iter().any(|(_, c)| {
            matches!(c, Content::Node { node, .. } if single(node) == Some(Value::Float(wanted)))
        })
    });
    assert!(got_last, "{:?}", pair.notifications());
    // Each 15-minute gap exceeds pmax (120 s): periodic notifications came in between too.
    assert!(
        pair.notifications().len() >= 4 + 4 * 6,
        "{}",
        pair.notifications().len()
    );
    assert_eq!(
        pair.op(Operation::CancelObservation(observation))
            .map(|_| ()),
        Ok(())
    );
    assert!(
        pair.client_events
            .contains(&ClientEvent::ObservationStopped {
                path: p("/10243/0/14")
            })
    );
    let count = pair.notifications().len();
    let now = pair.now;
    pair.client
        .with_store(now, |s| s.set(p("/10243/0/14"), Value::Float(9999.0)))
        .unwrap();
    pair.advance(secs(600));
    assert_eq!(
        pair.notifications().len(),
        count,
        "no notification after the cancel"
    );
}

#[test]
fn send_delivers_a_time_series() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_1), lossy(), 4);
    pair.register();
    let readings: Vec<Record> = (0..96)
        .map(|i| Record {
            path: p("/10243/0/14"),
            time: Some(1_700_000_000.0 + 900.0 * f64::from(i)),
            value: Some(Value::Float(1234.5 + 0.25 * f64::from(i))),
        })
        .collect();
    let id = pair.client.send(pair.now, &readings).unwrap();
    let done = move |p: &Pair| {
        p.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::SendCompleted { id: got, .. } if *got == id))
    };
    assert!(pair.run_until(secs(300), &done));
    assert!(
        pair.client_events
            .contains(&ClientEvent::SendCompleted { id, result: Ok(()) })
    );
    let received: Vec<&Vec<Record>> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Send { records, .. } => Some(records),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 1, "duplicates are absorbed");
    assert_eq!(received[0], &readings);
}

#[test]
fn update_deregister_and_automatic_updates() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_1), lossy(), 5);
    pair.register();
    // Two lifetimes pass: the client updates by itself and stays registered.
    pair.advance(secs(700));
    assert!(pair.server.registration("meter-1").is_some());
    let updates = pair
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Updated { .. }))
        .count();
    assert!(updates >= 2, "{updates} automatic Updates");
    assert!(
        !pair
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Expired { .. }))
    );
    // On demand, with a new lifetime.
    pair.client
        .update(
            pair.now,
            UpdateParams {
                lifetime: Some(900),
                ..UpdateParams::default()
            },
        )
        .unwrap();
    assert!(pair.run_until(secs(120), &|p| {
        p.server
            .registration("meter-1")
            .is_some_and(|r| r.lifetime == 900)
    }));
    pair.client.deregister(pair.now).unwrap();
    assert!(pair.run_until(secs(120), &|p| p.server.registration("meter-1").is_none()));
    assert!(
        pair.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Deregistered { .. }))
    );
    assert!(pair.run_until(secs(120), &|p| {
        p.client_events.contains(&ClientEvent::Deregistered)
    }));
}

#[test]
fn lifetime_expires_on_both_sides_when_the_device_is_unplugged() {
    let mut pair = Pair::new(config(Lwm2mVersion::V1_0), LinkConfig::perfect(), 6);
    pair.register();
    let observation = match pair.op(Operation::Observe(p("/3/0/9"))) {
        Ok(OpOutcome::Observing { observation, .. }) => observation,
        other => panic!("{other:?}"),
    };
    pair.offline = true;
    // The Update at 270 s gets no answer; the lifetime (300 s) and the server's grace (30 s) pass.
    pair.advance(secs(400));
    assert!(pair.server.registration("meter-1").is_none());
    assert!(
        pair.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Expired { .. }))
    );
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::ObservationEnded { observation: o, reason: ObservationEndReason::RegistrationExpired, .. } if *o == observation
    )));
    assert!(
        pair.client_events
            .contains(&ClientEvent::RegistrationExpired)
    );
    assert_eq!(pair.client.state(), RegistrationState::Unregistered);
    // Back online, the application registers again.
    pair.offline = false;
    pair.register();
}

#[test]
fn many_seeds_over_a_bad_link_all_complete() {
    for seed in 10..30 {
        let version = if seed % 2 == 0 {
            Lwm2mVersion::V1_0
        } else {
            Lwm2mVersion::V1_1
        };
        let mut pair = Pair::new(config(version), LinkConfig::lossy(0.25, 0.2, 0.2), seed);
        pair.register();
        let node = node_of(pair.op(Operation::Read(p("/3/0/9"))));
        assert_eq!(single(&node), Some(Value::Integer(87)), "seed {seed}");
        let write = Operation::Write {
            path: p("/3/0/14"),
            node: Node::Resource(Resource::single(14, Value::String("+05:30".into()))),
            mode: WriteMode::Replace,
        };
        assert_eq!(pair.op(write), Ok(OpOutcome::Changed), "seed {seed}");
        let written = pair
            .client_events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Written { .. }))
            .count();
        assert_eq!(
            written, 1,
            "seed {seed}: a duplicated write is processed once"
        );
    }
}

#[test]
fn queue_mode_requests_wait_for_the_client_to_wake() {
    let mut pair = Pair::new(
        config(Lwm2mVersion::V1_1).with_queue_mode(),
        LinkConfig::perfect(),
        7,
    );
    pair.register();
    assert!(pair.server.registration("meter-1").unwrap().binding.queue);
    // Past the 93 s wake window both sides agree the device sleeps.
    pair.advance(secs(100));
    assert!(!pair.client.is_awake(pair.now));
    assert!(!pair.server.is_reachable(pair.now, "meter-1"));
    let id = pair
        .server
        .request(pair.now, "meter-1", Operation::Read(p("/3/0/9")))
        .unwrap();
    pair.flush();
    assert!(
        pair.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::OpQueued { op, .. } if *op == id))
    );
    // The automatic Update at 270 s wakes the device; the server sends the queued Read then.
    let done = move |p: &Pair| p.completion(id).is_some();
    assert!(pair.run_until(secs(300), &done));
    let node = node_of(pair.completion(id).unwrap());
    assert_eq!(single(&node), Some(Value::Integer(87)));
    let updated_at = pair
        .server_events
        .iter()
        .position(|e| matches!(e, ServerEvent::Updated { .. }))
        .unwrap();
    let completed_at = pair
        .server_events
        .iter()
        .position(|e| matches!(e, ServerEvent::OpCompleted { op, .. } if *op == id))
        .unwrap();
    assert!(updated_at < completed_at);
}
