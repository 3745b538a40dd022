//! Bootstrap pair tests: [`BootstrapServer`] ↔ [`Lwm2mClient`] over a seeded lossy link on a
//! virtual clock that jumps to the next deadline (as `client/tests/pair.rs`), then the client
//! registers with an [`Lwm2mServer`] using the account it received.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::{ObjectModel, Path, Value};

use super::*;
use crate::coap::Code;
use crate::lwm2m::client::{
    BootstrapOutcome, ClientConfig, ClientEvent, Lwm2mClient, MemoryObjectStore, ObjectStore,
    RequestFailure,
};
use crate::lwm2m::registration::Lwm2mVersion;
use crate::lwm2m::server::{Lwm2mServer, PeerAuth, ServerConfig, ServerEvent};

const DEVICE: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 2, 9),
    41_000,
));

fn bs_identity() -> PeerAuth {
    PeerAuth::Psk {
        identity: "bs-meter-1".into(),
    }
}

fn account() -> ServerAccount {
    ServerAccount {
        server_uri: "coaps://dm.example.com:5684".into(),
        security: AccountSecurity::Psk,
        identity: b"dm-meter-1".to_vec(),
        secret_key: (0u8..16).collect(),
        short_server_id: 101,
        lifetime: 600,
        default_pmin: Some(5),
        default_pmax: Some(900),
        binding: "U".into(),
        notification_storing: true,
    }
}

/// A factory-fresh meter: its bootstrap account at Security instance `bs_instance`, a stale
/// server account (ssid 99) at `/0/{stale}` + `/1/{stale_server}`, and a Device object.
fn factory_store(bs_instance: u16, stale: u16, stale_server: u16) -> MemoryObjectStore {
    MemoryObjectStore::new(ObjectModel::builtin())
        .with_instance(
            0,
            bs_instance,
            [
                (0, Value::String("coaps://bs.example.com:5784".into())),
                (1, Value::Boolean(true)),
                (2, Value::Integer(0)),
                (3, Value::Opaque(b"bs-meter-1".to_vec())),
                (5, Value::Opaque(vec![9; 16])),
            ],
        )
        .with_instance(
            0,
            stale,
            [
                (0, Value::String("coaps://old.example.com".into())),
                (1, Value::Boolean(false)),
                (2, Value::Integer(0)),
                (3, Value::Opaque(b"old".to_vec())),
                (5, Value::Opaque(vec![1; 16])),
                (10, Value::Integer(99)),
            ],
        )
        .with_instance(
            1,
            stale_server,
            [
                (0, Value::Integer(99)),
                (1, Value::Integer(60)),
                (6, Value::Boolean(false)),
                (7, Value::String("U".into())),
            ],
        )
        .with_instance(3, 0, [(0, Value::String("Ferrite".into()))])
}

struct InFlight {
    at: Instant,
    seq: u64,
    to_server: bool,
    bytes: Vec<u8>,
}

/// A bootstrap server and one client over a link that drops, duplicates and delays.
struct Pair {
    now: Instant,
    server: BootstrapServer,
    client: Lwm2mClient<MemoryObjectStore>,
    drop: f64,
    duplicate: f64,
    rng: u64,
    in_flight: Vec<InFlight>,
    seq: u64,
    /// The account to accept with; None rejects with 4.03.
    accept: Option<ServerAccount>,
    server_events: Vec<BootstrapEvent>,
    outcomes: Vec<BootstrapOutcome>,
    client_events: Vec<ClientEvent>,
    /// Paths and content formats of the server's requests as sent.
    requests: Vec<(crate::coap::Method, Vec<String>, Option<u16>)>,
}

impl Pair {
    fn new(version: Lwm2mVersion, store: MemoryObjectStore, seed: u64) -> Pair {
        let config = ClientConfig::new("meter-1", version).with_lifetime(30);
        let server_config = BootstrapServerConfig {
            coap: crate::coap::CoapConfig {
                ack_timeout: Duration::from_millis(500),
                ..Default::default()
            },
            ..Default::default()
        };
        Pair {
            now: Instant::now(),
            server: BootstrapServer::new(server_config, seed ^ 0xB5),
            client: Lwm2mClient::new(config, store, seed ^ 0xC1),
            drop: 0.0,
            duplicate: 0.0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            in_flight: Vec::new(),
            seq: 0,
            accept: Some(account()),
            server_events: Vec::new(),
            outcomes: Vec::new(),
            client_events: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn put(&mut self, to_server: bool, bytes: Vec<u8>) {
        if self.random() < self.drop {
            return;
        }
        let copies = if self.random() < self.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_millis(10 + (self.random() * 40.0) as u64);
            self.seq += 1;
            self.in_flight.push(InFlight {
                at: self.now + delay,
                seq: self.seq,
                to_server,
                bytes: bytes.clone(),
            });
        }
    }

    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(d) = self.client.poll_transmit() {
                self.put(true, d);
                progressed = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                assert_eq!(t.peer, DEVICE);
                if let Ok(m) = crate::coap::Message::decode(&t.bytes)
                    && let Some(method) = crate::coap::Method::from_code(m.code)
                {
                    self.requests.push((
                        method,
                        m.options.uri_path(),
                        m.options.content_format().map(|f| f.0),
                    ));
                }
                self.put(false, t.bytes);
                progressed = true;
            }
            while let Some(e) = self.server.poll_event() {
                progressed = true;
                if let BootstrapEvent::Request { ticket, .. } = &e {
                    let ticket = *ticket;
                    match self.accept.clone() {
                        Some(a) => self.server.accept(self.now, ticket, a).unwrap(),
                        None => self
                            .server
                            .reject(self.now, ticket, Code::FORBIDDEN)
                            .unwrap(),
                    }
                }
                self.server_events.push(e);
            }
            while let Some(o) = self.client.poll_bootstrap() {
                progressed = true;
                self.outcomes.push(o);
            }
            while let Some(e) = self.client.poll_event() {
                progressed = true;
                self.client_events.push(e);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs until nothing is left to do or `limit` virtual time passed.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.flush();
            let next_packet = self.in_flight.iter().map(|p| (p.at, p.seq)).min();
            let next_timer = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next = match (next_packet, next_timer) {
                (Some((p, _)), Some(t)) => p.min(t),
                (Some((p, _)), None) => p,
                (None, Some(t)) => t,
                (None, None) => return,
            };
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            if let Some(at) = next_packet
                .filter(|(at, _)| *at <= self.now)
                .and_then(|(_, seq)| self.in_flight.iter().position(|p| p.seq == seq))
            {
                let p = self.in_flight.swap_remove(at);
                if p.to_server {
                    self.server
                        .handle_datagram(self.now, DEVICE, bs_identity(), &p.bytes);
                } else {
                    self.client.handle_datagram(self.now, &p.bytes);
                }
            } else {
                self.client.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
            }
        }
    }

    fn finished(&self) -> Option<&ServerAccount> {
        self.outcomes.iter().find_map(|o| match o {
            BootstrapOutcome::Finished { account } => Some(account),
            BootstrapOutcome::Failed { .. } => None,
        })
    }
}

fn bootstrap(pair: &mut Pair) {
    pair.client.bootstrap(pair.now).unwrap();
    pair.run(Duration::from_secs(120));
}

#[test]
fn v1_1_client_gets_the_account_in_its_format_and_keeps_its_bootstrap_account() {
    // The bootstrap account is at /0/5 and the stale server account at /0/0: nothing assumes
    // instance 0 is either.
    let mut pair = Pair::new(Lwm2mVersion::V1_1, factory_store(5, 0, 3), 1);
    bootstrap(&mut pair);
    assert_eq!(pair.finished(), Some(&account()));
    let finished = pair
        .server_events
        .iter()
        .find_map(|e| match e {
            BootstrapEvent::Finished {
                endpoint,
                security_instance,
                server_instance,
                ..
            } => Some((endpoint.clone(), *security_instance, *server_instance)),
            _ => None,
        })
        .unwrap();
    assert_eq!(finished, ("meter-1".into(), 0, 0));
    let store = pair.client.store();
    // The bootstrap account is untouched, the stale one replaced, the Device object kept.
    assert_eq!(
        store.get(&Path::Resource(0, 5, 1)),
        Some(&Value::Boolean(true))
    );
    assert_eq!(
        store.get(&Path::Resource(0, 0, 0)),
        Some(&Value::String("coaps://dm.example.com:5684".into()))
    );
    assert!(
        !store.has_instance(1, 3),
        "the stale server account is deleted"
    );
    assert!(store.has_instance(3, 0));
    // Discover `/`, the stale instances one by one, the writes in SenML CBOR (the client's
    // `pct`), Finish.
    let methods: Vec<(String, Option<u16>)> = pair
        .requests
        .iter()
        .map(|(m, p, cf)| (format!("{m:?} /{}", p.join("/")), *cf))
        .collect();
    assert_eq!(
        methods,
        vec![
            ("Get /".to_owned(), None),
            ("Delete /0/0".to_owned(), None),
            ("Delete /1/3".to_owned(), None),
            ("Put /0/0".to_owned(), Some(112)),
            ("Put /1/0".to_owned(), Some(112)),
            ("Post /bs".to_owned(), None),
        ]
    );
    // The client's lifetime follows the account.
    assert_eq!(pair.client.lifetime(), 600);
    assert!(!pair.client.is_bootstrapping());
}

#[test]
fn v1_0_client_without_discover_attributes_gets_tlv_after_whole_object_deletes() {
    let mut pair = Pair::new(Lwm2mVersion::V1_0, factory_store(1, 0, 0), 2);
    bootstrap(&mut pair);
    assert_eq!(pair.finished(), Some(&account()));
    let paths: Vec<String> = pair
        .requests
        .iter()
        .map(|(m, p, _)| format!("{m:?} /{}", p.join("/")))
        .collect();
    assert_eq!(
        paths,
        [
            "Get /",
            "Delete /0",
            "Delete /1",
            "Get /0",
            "Put /0/0",
            "Put /1/0",
            "Post /bs"
        ]
    );
    assert!(
        pair.requests
            .iter()
            .filter(|(m, _, _)| *m == crate::coap::Method::Put)
            .all(|(_, _, cf)| *cf == Some(11542)),
        "TLV for a 1.0 client"
    );
    let store = pair.client.store();
    assert_eq!(
        store.get(&Path::Resource(0, 1, 1)),
        Some(&Value::Boolean(true)),
        "bootstrap account kept at /0/1"
    );
    assert_eq!(
        store.get(&Path::Resource(0, 0, 3)),
        Some(&Value::Opaque(b"dm-meter-1".to_vec()))
    );
}

#[test]
fn bootstrap_completes_over_a_lossy_link() {
    for seed in 10..20 {
        let mut pair = Pair::new(Lwm2mVersion::V1_1, factory_store(0, 2, 0), seed);
        pair.drop = 0.15;
        pair.duplicate = 0.1;
        bootstrap(&mut pair);
        // A lost 2.04 to Bootstrap-Finish can leave the server without its Finished event
        // while the client has its account; the client side must always complete.
        assert_eq!(pair.finished(), Some(&account()), "seed {seed}");
    }
}

#[test]
fn refused_request_fails_on_the_client() {
    let mut pair = Pair::new(Lwm2mVersion::V1_1, factory_store(0, 1, 0), 3);
    pair.accept = None;
    bootstrap(&mut pair);
    assert_eq!(
        pair.outcomes,
        vec![BootstrapOutcome::Failed {
            reason: RequestFailure::Rejected(Code::FORBIDDEN)
        }]
    );
    assert_eq!(pair.server.sessions(), 0);
    assert!(!pair.client.is_bootstrapping());
}

#[test]
fn malformed_requests_are_refused_and_reported() {
    let mut server = BootstrapServer::new(BootstrapServerConfig::default(), 4);
    let now = Instant::now();
    let mut client = crate::coap::CoapEndpoint::new(crate::coap::CoapConfig::default(), 9);
    client.request(now, DEVICE, crate::coap::Request::post().with_path(["bs"]));
    let no_ep = client.poll_transmit().unwrap().bytes;
    server.handle_datagram(now, DEVICE, PeerAuth::NoSec, &no_ep);
    assert_eq!(
        server.poll_event(),
        Some(BootstrapEvent::Refused {
            peer: DEVICE,
            endpoint: None,
            code: Code::BAD_REQUEST
        })
    );
    let answer = crate::coap::Message::decode(&server.poll_transmit().unwrap().bytes).unwrap();
    assert_eq!(answer.code, Code::BAD_REQUEST);
    // Garbage is not a request at all.
    server.handle_datagram(now, DEVICE, PeerAuth::NoSec, &[0xff, 0x00]);
    assert_eq!(server.poll_event(), None);
}

#[test]
fn a_second_request_supersedes_the_running_sequence() {
    let mut pair = Pair::new(Lwm2mVersion::V1_1, factory_store(0, 1, 0), 5);
    // The client restarts after the first sequence began and asks again.
    pair.client.bootstrap(pair.now).unwrap();
    pair.run(Duration::from_millis(60));
    assert_eq!(pair.server.sessions(), 1, "the first sequence started");
    // Restart the client's bootstrap: a fresh client whose store is the same.
    let store = pair.client.store().clone();
    pair.client = Lwm2mClient::new(
        ClientConfig::new("meter-1", Lwm2mVersion::V1_1).with_lifetime(30),
        store,
        99,
    );
    pair.in_flight.clear();
    bootstrap(&mut pair);
    assert_eq!(pair.finished(), Some(&account()));
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        BootstrapEvent::Failed {
            reason: BootstrapFailure::Superseded,
            ..
        }
    )));
}

#[test]
fn bootstrapped_client_registers_with_the_new_account() {
    let mut pair = Pair::new(Lwm2mVersion::V1_1, factory_store(0, 1, 0), 6);
    bootstrap(&mut pair);
    let account = pair.finished().unwrap().clone();
    // The I/O shell now connects to account.server_uri with its identity; here the LwM2M
    // server sees the identity as the peer's authentication.
    let mut client = pair.client;
    let mut server = Lwm2mServer::new(ServerConfig::default(), 7);
    let now = pair.now;
    client.register(now).unwrap();
    let auth = PeerAuth::Psk {
        identity: String::from_utf8(account.identity.clone()).unwrap(),
    };
    let mut registered = None;
    for _ in 0..4 {
        while let Some(d) = client.poll_transmit() {
            server.handle_datagram(now, DEVICE, auth.clone(), &d);
        }
        while let Some(e) = server.poll_event() {
            match e {
                ServerEvent::RegistrationRequest { ticket, params, .. } => {
                    assert_eq!(params.lifetime, 600, "the lifetime of the account");
                    server.accept_registration(now, ticket).unwrap();
                }
                ServerEvent::Registered { registration, .. } => registered = Some(registration),
                _ => {}
            }
        }
        while let Some(t) = server.poll_transmit() {
            client.handle_datagram(now, &t.bytes);
        }
    }
    let registration = registered.unwrap();
    assert_eq!(registration.auth, auth);
    // The Security object is never listed at registration; the new Server instance is.
    let links = registration.objects.link_format().to_owned();
    assert!(!links.contains("</0/"), "{links}");
    assert!(links.contains("</1/0>"), "{links}");
    assert!(client.store().bootstrap_read_instance(0, 1).is_some());
}

#[test]
fn bootstrap_request_trigger_is_executable_on_the_server_object() {
    // TS Core 1.1 Appendix E.2: /1/x/9 is executable; the client reports it and the
    // application starts the bootstrap.
    let def = ObjectModel::builtin()
        .resource(1, BOOTSTRAP_REQUEST_TRIGGER)
        .unwrap();
    assert!(def.operations.execute);
}
