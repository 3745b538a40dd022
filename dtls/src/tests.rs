//! In-memory client/server tests on a virtual clock: datagrams are passed between a
//! [`DtlsServer`] and any number of [`DtlsClient`]s, with loss and duplication under test control.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::*;

const IDENTITY: &[u8] = b"urn:imei:490154203237518";
const KEY: [u8; 16] = [
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
];

fn server_addr() -> SocketAddr {
    "192.0.2.1:5684".parse().expect("addr")
}

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], 40_000 + n))
}

fn store() -> Arc<InMemoryPskStore> {
    let mut store = InMemoryPskStore::new();
    store.insert(IDENTITY, KEY.to_vec());
    store.insert(b"meter-2".to_vec(), vec![0x42; 16]);
    store.insert(b"meter-3".to_vec(), vec![0x43; 16]);
    Arc::new(store)
}

fn client(identity: &[u8], key: &[u8]) -> DtlsClient {
    DtlsClient::new(DtlsClientConfig::new(identity, key)).expect("client config")
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// What the network does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

type Filter = Box<dyn FnMut(Direction, SocketAddr, &[u8]) -> Fate>;

/// A server, its clients by address, and a virtual clock.
struct Net {
    now: Instant,
    server: DtlsServer,
    clients: BTreeMap<SocketAddr, DtlsClient>,
    server_events: Vec<DtlsEvent>,
    client_events: BTreeMap<SocketAddr, Vec<ClientEvent>>,
    /// Every datagram the server sent, in order.
    server_sent: Vec<(SocketAddr, Vec<u8>)>,
    filter: Filter,
}

impl Net {
    fn new(config: DtlsServerConfig) -> Self {
        Self {
            now: Instant::now(),
            server: DtlsServer::new(config, store()).expect("server config"),
            clients: BTreeMap::new(),
            server_events: Vec::new(),
            client_events: BTreeMap::new(),
            server_sent: Vec::new(),
            filter: Box::new(|_, _, _| Fate::Deliver),
        }
    }

    fn connect(&mut self, at: SocketAddr, client: DtlsClient) {
        self.clients.insert(at, client);
        let now = self.now;
        self.clients
            .get_mut(&at)
            .expect("inserted")
            .connect(now, server_addr())
            .expect("connect");
        self.pump();
    }

    /// Delivers queued datagrams (through the filter) until nothing moves.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let addresses: Vec<SocketAddr> = self.clients.keys().copied().collect();
            for at in addresses {
                while let Some((to, bytes)) = self
                    .clients
                    .get_mut(&at)
                    .and_then(DtlsClient::poll_transmit)
                {
                    assert_eq!(to, server_addr());
                    moved = true;
                    let copies = match (self.filter)(Direction::ToServer, at, &bytes) {
                        Fate::Deliver => 1,
                        Fate::Drop => 0,
                        Fate::Duplicate => 2,
                    };
                    for _ in 0..copies {
                        self.server.handle_datagram(self.now, at, &bytes);
                    }
                }
            }
            while let Some((to, bytes)) = self.server.poll_transmit() {
                moved = true;
                self.server_sent.push((to, bytes.clone()));
                let copies = match (self.filter)(Direction::ToClient, to, &bytes) {
                    Fate::Deliver => 1,
                    Fate::Drop => 0,
                    Fate::Duplicate => 2,
                };
                if let Some(client) = self.clients.get_mut(&to) {
                    for _ in 0..copies {
                        client.handle_datagram(self.now, server_addr(), &bytes);
                    }
                }
            }
            self.collect_events();
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
        for (at, client) in &mut self.clients {
            while let Some(event) = client.poll_event() {
                self.client_events.entry(*at).or_default().push(event);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(DtlsClient::poll_timeout)
            .chain(self.server.poll_timeout())
            .min()
    }

    /// Moves the clock to `until`, firing every timer due on the way.
    fn advance_to(&mut self, until: Instant) {
        while let Some(next) = self.next_timeout().filter(|next| *next <= until) {
            self.now = self.now.max(next);
            self.server.handle_timeout(self.now);
            for client in self.clients.values_mut() {
                client.handle_timeout(self.now);
            }
            self.pump();
        }
        self.now = self.now.max(until);
        self.pump();
    }

    fn advance(&mut self, by: Duration) {
        self.advance_to(self.now + by);
    }

    fn connected(&self, at: SocketAddr) -> bool {
        self.clients.get(&at).is_some_and(DtlsClient::is_connected)
    }

    fn client_send(&mut self, at: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        self.clients
            .get_mut(&at)
            .expect("client")
            .send(now, bytes)
            .expect("client send");
        self.pump();
    }

    fn server_send(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.server.send(self.now, to, bytes).expect("server send");
        self.pump();
    }

    fn take_server_events(&mut self) -> Vec<DtlsEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// The application data among the server's events (which are all taken).
    fn take_server_data(&mut self) -> Vec<Vec<u8>> {
        self.take_server_events()
            .into_iter()
            .filter_map(|event| match event {
                DtlsEvent::Data { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect()
    }

    fn client_data(&self, at: SocketAddr) -> Vec<Vec<u8>> {
        self.client_events
            .get(&at)
            .into_iter()
            .flatten()
            .filter_map(|event| match event {
                ClientEvent::Data { bytes } => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    fn client_closed(&self, at: SocketAddr) -> Option<ClientCloseReason> {
        self.client_events
            .get(&at)
            .into_iter()
            .flatten()
            .find_map(|event| match event {
                ClientEvent::Closed { reason } => Some(*reason),
                _ => None,
            })
    }
}

fn connected_event(peer: SocketAddr, identity: &[u8], replaced: Option<SocketAddr>) -> DtlsEvent {
    DtlsEvent::Connected {
        peer,
        identity: PskIdentity::new(identity),
        replaced,
    }
}

#[test]
fn handshake_and_data_both_ways_for_every_suite() {
    for suite in CipherSuite::ALL {
        let mut net = Net::new(DtlsServerConfig::default());
        let mut config = DtlsClientConfig::new(IDENTITY, KEY);
        config.cipher_suites = vec![suite];
        net.connect(addr(1), DtlsClient::new(config).expect("client"));
        assert!(net.connected(addr(1)), "{suite}: client connected");
        assert_eq!(
            net.take_server_events(),
            vec![connected_event(addr(1), IDENTITY, None)],
            "{suite}"
        );
        assert_eq!(net.server.cipher_suite_of(addr(1)), Some(suite));
        assert_eq!(net.clients[&addr(1)].cipher_suite(), Some(suite));

        net.client_send(addr(1), b"POST /rd?ep=meter");
        assert_eq!(
            net.take_server_events(),
            vec![DtlsEvent::Data {
                peer: addr(1),
                identity: PskIdentity::new(IDENTITY),
                bytes: b"POST /rd?ep=meter".to_vec()
            }],
            "{suite}"
        );
        net.server_send(addr(1), b"2.01 Created");
        assert_eq!(
            net.client_data(addr(1)),
            vec![b"2.01 Created".to_vec()],
            "{suite}"
        );

        let stats = net.server.stats();
        assert_eq!(stats.hello_verify_requests, 1);
        assert_eq!(stats.handshakes_started, 1);
        assert_eq!(stats.handshakes_completed, 1);
        assert_eq!((stats.sessions, stats.handshakes_in_progress), (1, 0));
        assert_eq!(
            net.server.identity_of(addr(1)),
            Some(&PskIdentity::new(IDENTITY))
        );
        assert_eq!(
            net.server.peer_of(&PskIdentity::new(IDENTITY)),
            Some(addr(1))
        );
        // Established sessions only wait for the idle timeout.
        assert_eq!(
            net.server.poll_timeout(),
            Some(net.now + Duration::from_secs(600))
        );
    }
}

#[test]
fn the_server_answers_a_verified_cookie_with_a_server_hello() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    // server_sent: HelloVerifyRequest, then the ServerHello flight.
    let (_, first) = &net.server_sent[0];
    assert!(crate::wire::hello_verify_cookie(first).is_some());
    let (_, second) = &net.server_sent[1];
    assert!(crate::wire::starts_with_server_hello(second));
}

#[test]
fn handshake_survives_lost_and_duplicated_datagrams() {
    // Several deterministic loss patterns: drop the n-th datagram in one direction, duplicate
    // every other one in the other.
    for lost in 0..6usize {
        for direction in [Direction::ToServer, Direction::ToClient] {
            let mut net = Net::new(DtlsServerConfig::default());
            let mut count = 0usize;
            net.filter = Box::new(move |dir, _, _| {
                if dir != direction {
                    return if count.is_multiple_of(2) {
                        Fate::Duplicate
                    } else {
                        Fate::Deliver
                    };
                }
                count += 1;
                if count == lost + 1 {
                    Fate::Drop
                } else {
                    Fate::Duplicate
                }
            });
            net.connect(addr(1), client(IDENTITY, &KEY));
            net.advance(Duration::from_secs(20));
            assert!(
                net.connected(addr(1)),
                "lost #{lost} {direction:?}: client connected"
            );
            let connected: Vec<_> = net
                .take_server_events()
                .into_iter()
                .filter(|event| matches!(event, DtlsEvent::Connected { .. }))
                .collect();
            assert_eq!(
                connected,
                vec![connected_event(addr(1), IDENTITY, None)],
                "lost #{lost} {direction:?}"
            );

            // Application data itself is not retransmitted by DTLS (CoAP does that); duplicate it.
            net.filter = Box::new(|_, _, _| Fate::Duplicate);
            net.client_send(addr(1), b"ping");
            let data = net.take_server_data();
            // Duplicated records are caught by the replay window: delivered once.
            assert_eq!(data, vec![b"ping".to_vec()], "lost #{lost} {direction:?}");
            assert_eq!(net.server.stats().handshakes_completed, 1);
        }
    }
}

#[test]
fn a_lost_server_final_flight_is_retransmitted_when_the_client_repeats_its_own() {
    let mut net = Net::new(DtlsServerConfig::default());
    // The server's datagrams: 1 HelloVerifyRequest, 2 ServerHello flight, 3 CCS + Finished.
    let mut to_client = 0;
    net.filter = Box::new(move |dir, _, _| {
        if dir == Direction::ToClient {
            to_client += 1;
            if to_client == 3 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(!net.connected(addr(1)));
    assert!(matches!(
        net.take_server_events().as_slice(),
        [DtlsEvent::Connected { .. }]
    ));
    net.advance(Duration::from_secs(3));
    assert!(
        net.connected(addr(1)),
        "the client's retransmitted flight made the server repeat its last one"
    );
    assert!(net.take_server_events().is_empty(), "no second Connected");
}

#[test]
fn the_server_repeats_its_flight_when_only_part_of_the_client_final_flight_arrives() {
    // The client's final flight (ClientKeyExchange, ChangeCipherSpec, Finished) is lost except
    // for its first record. The server has an incomplete flight and must keep its retransmit
    // timer (RFC 6347 §4.2.4), so that the client learns it has to send its flight again.
    let mut net = Net::new(DtlsServerConfig::default());
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = std::rc::Rc::clone(&sent);
    let mut to_server = 0;
    net.filter = Box::new(move |dir, _, bytes| {
        if dir == Direction::ToServer {
            to_server += 1;
            if to_server > 2 {
                // Every copy of the final flight: recorded, not delivered.
                log.borrow_mut().push(bytes.to_vec());
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(!net.connected(addr(1)));
    let flight = sent
        .borrow()
        .first()
        .cloned()
        .expect("the final flight was sent");
    // Its first record alone: 13-byte header, then the length in bytes 11 and 12.
    let first_len = 13 + usize::from(u16::from_be_bytes([flight[11], flight[12]]));
    assert!(first_len < flight.len(), "the flight holds several records");
    let server_hellos = |net: &Net| {
        net.server_sent
            .iter()
            .filter(|(_, bytes)| crate::wire::starts_with_server_hello(bytes))
            .count()
    };
    assert_eq!(server_hellos(&net), 1);
    net.server
        .handle_datagram(net.now, addr(1), &flight[..first_len]);
    net.pump();
    // Past the retransmit interval (1 s), well before the handshake timeout.
    net.advance(Duration::from_millis(1500));
    assert!(
        server_hellos(&net) >= 2,
        "the server repeated its ServerHello flight after the partial client flight"
    );
}

#[test]
fn a_late_copy_of_the_client_final_flight_after_application_data_is_ignored() {
    // Once the client has sent application data it has our final flight, so the server frees
    // that flight and the handshake messages (vendored rtc-dtls `peer_confirmed`). A network
    // copy of the client's final flight arriving later must neither be answered nor hurt.
    let mut net = Net::new(DtlsServerConfig::default());
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = std::rc::Rc::clone(&sent);
    net.filter = Box::new(move |dir, _, bytes| {
        if dir == Direction::ToServer {
            log.borrow_mut().push(bytes.to_vec());
        }
        Fate::Deliver
    });
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(net.connected(addr(1)));
    // ClientHello, ClientHello with the cookie, then the final flight (CKE, CCS, Finished).
    let final_flight = sent.borrow().get(2).cloned().expect("three client flights");
    net.client_send(addr(1), b"ping");
    let server_sent_before = net.server_sent.len();
    net.server.handle_datagram(net.now, addr(1), &final_flight);
    net.pump();
    assert_eq!(
        net.server_sent.len(),
        server_sent_before,
        "nothing is sent in answer to the late copy"
    );
    net.client_send(addr(1), b"still there");
    net.server_send(addr(1), b"and back");
    let data = net.take_server_data();
    assert_eq!(data, vec![b"ping".to_vec(), b"still there".to_vec()]);
    assert_eq!(net.client_data(addr(1)), vec![b"and back".to_vec()]);
    assert_eq!(net.server.stats().handshakes_completed, 1);
    assert_eq!(net.server.stats().sessions, 1);
}

#[test]
fn the_client_retransmits_its_first_hello_when_the_hello_verify_request_is_lost() {
    let mut net = Net::new(DtlsServerConfig::default());
    let mut to_client = 0;
    net.filter = Box::new(move |dir, _, _| {
        if dir == Direction::ToClient {
            to_client += 1;
            if to_client == 1 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(!net.connected(addr(1)));

    // The client retransmits at 1 s and completes without waiting for any further timer: the
    // ServerHello continues from the retransmitted hellos' record sequence numbers (RFC 6347
    // §4.2.1), so the client's replay window does not mistake it for the HelloVerifyRequest.
    net.advance(Duration::from_millis(1500));
    assert!(net.connected(addr(1)));
    assert_eq!(net.server.stats().hello_verify_requests, 2);
    let server_hello = net
        .server_sent
        .iter()
        .find(|(_, bytes)| crate::wire::starts_with_server_hello(bytes));
    assert_eq!(
        server_hello.and_then(|(_, bytes)| crate::wire::first_epoch0_sequence(bytes)),
        Some(2)
    );
}

/// The alert datagrams the server sent to `to`, by (length, content type, epoch).
fn alert_shapes(net: &Net, to: SocketAddr) -> Vec<(usize, u8, [u8; 2])> {
    net.server_sent
        .iter()
        .filter(|(peer, bytes)| *peer == to && crate::wire::starts_with_alert(bytes))
        .map(|(_, bytes)| (bytes.len(), bytes[0], [bytes[3], bytes[4]]))
        .collect()
}

#[test]
fn a_wrong_key_fails_the_handshake() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &[0x01; 16]));
    net.advance(Duration::from_secs(40));
    assert!(!net.connected(addr(1)));
    assert_eq!(
        net.client_closed(addr(1)),
        Some(ClientCloseReason::HandshakeFailed)
    );
    assert_eq!(
        net.take_server_events(),
        vec![DtlsEvent::HandshakeFailed {
            peer: addr(1),
            claimed_identity: Some(PskIdentity::new(IDENTITY)),
            reason: HandshakeFailure::BadKey,
        }]
    );
    let stats = net.server.stats();
    assert_eq!(stats.handshakes_failed.bad_key, 1);
    assert_eq!((stats.sessions, stats.handshakes_in_progress), (0, 0));
    assert_eq!(
        net.server.poll_timeout(),
        None,
        "nothing left for that peer"
    );
    assert_eq!(alert_shapes(&net, addr(1)).len(), 1, "one alert");
}

#[test]
fn an_unknown_identity_fails_exactly_like_a_wrong_key() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(b"urn:imei:000000000000000", &KEY));
    net.connect(addr(2), client(IDENTITY, &[0x01; 16]));
    net.advance(Duration::from_secs(40));
    assert!(!net.connected(addr(1)));
    assert_eq!(
        net.client_closed(addr(1)),
        Some(ClientCloseReason::HandshakeFailed)
    );
    let events = net.take_server_events();
    assert!(events.contains(&DtlsEvent::HandshakeFailed {
        peer: addr(1),
        claimed_identity: Some(PskIdentity::new(b"urn:imei:000000000000000")),
        reason: HandshakeFailure::UnknownIdentity,
    }));
    assert_eq!(net.server.stats().handshakes_failed.unknown_identity, 1);
    // What the peer sees: the same number of datagrams, and the same alert record, as for a wrong
    // key (the identities differ in length, which only changes what the client itself sent).
    let sent_to = |to| {
        net.server_sent
            .iter()
            .filter(|(peer, _)| *peer == to)
            .count()
    };
    assert_eq!(sent_to(addr(1)), sent_to(addr(2)));
    assert_eq!(alert_shapes(&net, addr(1)), alert_shapes(&net, addr(2)));
    let alert = |to| {
        net.server_sent
            .iter()
            .find(|(peer, bytes)| *peer == to && crate::wire::starts_with_alert(bytes))
            .map(|(_, bytes)| bytes[13..].to_vec())
    };
    assert_eq!(alert(addr(1)), alert(addr(2)), "identical alert body");
}

#[test]
fn garbage_from_a_new_peer_creates_no_state() {
    let mut net = Net::new(DtlsServerConfig::default());
    let now = net.now;
    let valid_hello = {
        let mut probe = client(IDENTITY, &KEY);
        probe.connect(now, server_addr()).expect("connect");
        probe.poll_transmit().expect("a ClientHello").1
    };
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x16],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        // A CoAP CON GET (RFC 7252 §3): plain CoAP sent to the DTLS port.
        vec![0x40, 0x01, 0x12, 0x34, 0xb2, 0x72, 0x64],
        // An epoch-1 application data record (content type 23).
        [
            &[23u8, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 8][..],
            &[0xaa; 8],
        ]
        .concat(),
        // An alert (content type 21).
        vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40],
    ];
    // Valid-looking hellos with one field broken.
    for (at, value) in [(1, 0x03), (3, 1), (13, 2), (11, 0xff), (13 + 6, 1)] {
        let mut broken = valid_hello.clone();
        broken[at] = value;
        garbage.push(broken);
    }
    for bytes in &garbage {
        net.server.handle_datagram(now, addr(9), bytes);
    }
    assert!(net.server.poll_transmit().is_none(), "nothing answered");
    assert!(net.server.poll_event().is_none());
    assert_eq!(net.server.poll_timeout(), None, "no timer means no state");
    let stats = net.server.stats();
    assert_eq!(
        stats.dropped.not_client_hello + stats.dropped.malformed_client_hello,
        garbage.len() as u64
    );
    assert_eq!(stats.dropped.not_client_hello, 9);
    assert_eq!(stats.handshakes_in_progress, 0);

    // A genuine first ClientHello is answered, statelessly.
    net.server.handle_datagram(now, addr(9), &valid_hello);
    let (to, hvr) = net.server.poll_transmit().expect("HelloVerifyRequest");
    assert_eq!(to, addr(9));
    assert!(crate::wire::hello_verify_cookie(&hvr).is_some());
    assert!(hvr.len() < valid_hello.len(), "no amplification");
    assert_eq!(net.server.poll_timeout(), None, "still no state");
    assert_eq!(net.server.stats().handshakes_in_progress, 0);
}

#[test]
fn a_replayed_cookie_from_another_address_is_refused() {
    let mut net = Net::new(DtlsServerConfig::default());
    let now = net.now;
    let mut probe = client(IDENTITY, &KEY);
    probe.connect(now, server_addr()).expect("connect");
    let (_, hello) = probe.poll_transmit().expect("hello");
    net.server.handle_datagram(now, addr(1), &hello);
    let (_, hvr) = net.server.poll_transmit().expect("hvr");
    probe.handle_datagram(now, server_addr(), &hvr);
    let (_, hello_with_cookie) = probe.poll_transmit().expect("hello with cookie");
    // An attacker at addr(2) replays it: it gets a new cookie, nothing more.
    net.server.handle_datagram(now, addr(2), &hello_with_cookie);
    assert_eq!(net.server.stats().invalid_cookies, 1);
    assert_eq!(net.server.stats().handshakes_started, 0);
    // After the lifetime, the genuine client's cookie has expired too.
    net.server.poll_transmit();
    net.server
        .handle_datagram(now + Duration::from_secs(61), addr(1), &hello_with_cookie);
    assert_eq!(net.server.stats().expired_cookies, 1);
    assert_eq!(net.server.stats().handshakes_started, 0);
}

#[test]
fn a_handshake_that_stalls_times_out() {
    let config = DtlsServerConfig {
        handshake_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let mut net = Net::new(config);
    // Deliver the two ClientHellos, then nothing more from the client.
    let mut to_server = 0;
    net.filter = Box::new(move |dir, _, _| {
        if dir == Direction::ToServer {
            to_server += 1;
            if to_server > 2 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    let start = net.now;
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert_eq!(net.server.stats().handshakes_in_progress, 1);
    net.advance(Duration::from_secs(4));
    assert!(net.take_server_events().is_empty());
    net.advance(Duration::from_secs(2));
    assert_eq!(
        net.take_server_events(),
        vec![DtlsEvent::HandshakeFailed {
            peer: addr(1),
            claimed_identity: None,
            reason: HandshakeFailure::Timeout
        }]
    );
    assert!(net.now <= start + Duration::from_secs(6));
    assert_eq!(net.server.stats().handshakes_in_progress, 0);
    assert_eq!(net.server.stats().handshakes_failed.timeout, 1);
    // The server retransmitted its flight while waiting.
    let flights = net
        .server_sent
        .iter()
        .filter(|(_, bytes)| crate::wire::starts_with_server_hello(bytes))
        .count();
    assert!(flights >= 3, "{flights} ServerHello flights");
}

#[test]
fn the_handshake_table_is_bounded() {
    let config = DtlsServerConfig {
        max_handshakes: 2,
        ..Default::default()
    };
    let mut net = Net::new(config);
    // Clients whose third datagram (ClientKeyExchange flight) never arrives stay mid-handshake.
    net.filter = Box::new(|dir, _, bytes| {
        if dir == Direction::ToServer && crate::wire::ClientHello::parse(bytes).is_err() {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    for n in 1..=3 {
        net.connect(addr(n), client(IDENTITY, &KEY));
    }
    let stats = net.server.stats();
    assert_eq!(stats.handshakes_in_progress, 2);
    assert_eq!(stats.dropped.handshake_table_full, 1);
    assert_eq!(stats.handshakes_started, 2);
    net.server.check_invariants().expect("consistent");
}

#[test]
fn a_full_handshake_table_gives_way_to_new_clients_once_a_handshake_has_gone_quiet() {
    let config = DtlsServerConfig {
        max_handshakes: 2,
        retransmit_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let mut net = Net::new(config);
    // Two clients that complete the cookie exchange and then stall (their key exchange flight
    // is lost): the table is full.
    let stalled = [addr(1), addr(2)];
    net.filter = Box::new(move |dir, at, bytes| {
        if dir == Direction::ToServer
            && stalled.contains(&at)
            && crate::wire::ClientHello::parse(bytes).is_err()
        {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    for at in stalled {
        net.connect(at, client(IDENTITY, &KEY));
    }
    assert_eq!(net.server.stats().handshakes_in_progress, 2);
    net.advance(Duration::from_millis(1500));
    // A genuine client arrives: the oldest stalled handshake makes room, and it connects.
    net.connect(addr(3), client(b"meter-2", &[0x42; 16]));
    assert!(net.connected(addr(3)));
    let stats = net.server.stats();
    assert_eq!(stats.handshakes_evicted, 1);
    assert_eq!(stats.handshakes_failed.evicted, 1);
    assert_eq!(stats.dropped.handshake_table_full, 0);
    assert!(
        net.take_server_events()
            .contains(&DtlsEvent::HandshakeFailed {
                peer: addr(1),
                claimed_identity: None,
                reason: HandshakeFailure::Evicted,
            })
    );
    // An eviction does not count against the evicted address.
    assert_eq!(net.server.failure_table(), (0, 0));
    net.server.check_invariants().expect("consistent");
}

/// A server with `idle_timeout` and one established session, from `addr(1)`, events taken.
fn one_session_with_idle_timeout(idle_timeout: Duration) -> Net {
    let config = DtlsServerConfig {
        idle_timeout,
        ..Default::default()
    };
    let mut net = Net::new(config);
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();
    net
}

#[test]
fn the_idle_deadline_moves_in_steps_not_on_every_record() {
    let mut net = one_session_with_idle_timeout(Duration::from_secs(600));
    let first = net.server.poll_timeout().expect("an idle deadline");
    // Within the step (1 s for a 600 s timeout) a record leaves the deadline where it was.
    net.advance(Duration::from_millis(500));
    net.client_send(addr(1), b"a");
    assert_eq!(net.server.poll_timeout(), Some(first));
    // A record a step or more later moves it to a full timeout after that record.
    net.advance(Duration::from_millis(1500));
    net.client_send(addr(1), b"b");
    assert_eq!(
        net.server.poll_timeout(),
        Some(net.now + Duration::from_secs(600))
    );
    net.server.check_invariants().expect("consistent");
}

#[test]
fn idle_sessions_expire_and_traffic_keeps_them_alive() {
    let mut net = one_session_with_idle_timeout(Duration::from_secs(600));
    net.advance(Duration::from_secs(500));
    net.client_send(addr(1), b"update");
    net.advance(Duration::from_secs(500));
    assert_eq!(
        net.server.stats().sessions,
        1,
        "traffic at 500 s restarted the idle clock"
    );
    // Server-to-client traffic does not prove the client is there.
    net.server_send(addr(1), b"observe notification request");
    net.advance(Duration::from_secs(101));
    let events = net.take_server_events();
    assert_eq!(
        events.last(),
        Some(&DtlsEvent::Closed {
            peer: addr(1),
            identity: PskIdentity::new(IDENTITY),
            reason: CloseReason::IdleTimeout
        })
    );
    assert_eq!(net.server.stats().idle_expirations, 1);
    assert_eq!(net.server.stats().sessions, 0);
    assert_eq!(net.server.poll_timeout(), None);
    // The client was told (close_notify).
    assert_eq!(
        net.client_closed(addr(1)),
        Some(ClientCloseReason::PeerClosed)
    );
    // Its data is now just traffic from an unknown address.
    assert!(net.server.send(net.now, addr(1), b"x").is_err());
}

#[test]
fn a_client_restarting_from_the_same_address_replaces_its_session() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();

    // A cookie-less hello from that address (anyone can spoof one) only earns a HelloVerifyRequest.
    let now = net.now;
    let mut spoofer = client(IDENTITY, &KEY);
    spoofer.connect(now, server_addr()).expect("connect");
    let (_, hello) = spoofer.poll_transmit().expect("hello");
    net.server.handle_datagram(now, addr(1), &hello);
    net.server.poll_transmit();
    assert!(net.server.poll_event().is_none());
    assert_eq!(net.server.stats().sessions, 1);

    // The device reboots: same address, new client state.
    net.clients.remove(&addr(1));
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(net.connected(addr(1)));
    assert_eq!(
        net.take_server_events(),
        vec![
            DtlsEvent::Closed {
                peer: addr(1),
                identity: PskIdentity::new(IDENTITY),
                reason: CloseReason::Replaced
            },
            connected_event(addr(1), IDENTITY, None),
        ]
    );
    assert_eq!(net.server.stats().replaced_same_address, 1);
    assert_eq!(net.server.stats().sessions, 1);
    net.client_send(addr(1), b"after reboot");
    assert!(
        matches!(net.take_server_events().as_slice(), [DtlsEvent::Data { bytes, .. }] if bytes == b"after reboot")
    );
}

#[test]
fn a_duplicate_of_the_opening_hello_does_not_disturb_the_session() {
    let mut net = Net::new(DtlsServerConfig::default());
    // Keep a copy of the client's hello with the cookie as it crosses the network.
    let captured = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = captured.clone();
    net.filter = Box::new(move |dir, _, bytes| {
        if dir == Direction::ToServer
            && crate::wire::ClientHello::parse(bytes).is_ok_and(|hello| !hello.cookie.is_empty())
        {
            sink.borrow_mut().push(bytes.to_vec());
        }
        Fate::Deliver
    });
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();
    let hello_with_cookie = captured.borrow().first().cloned().expect("captured");
    // The network delivers it again, late.
    net.server
        .handle_datagram(net.now, addr(1), &hello_with_cookie);
    net.pump();
    assert_eq!(net.server.stats().dropped.duplicate_client_hello, 1);
    assert_eq!(net.server.stats().sessions, 1);
    assert!(net.take_server_events().is_empty());
    net.client_send(addr(1), b"fine");
    assert!(
        matches!(net.take_server_events().as_slice(), [DtlsEvent::Data { bytes, .. }] if bytes == b"fine")
    );
}

#[test]
fn the_same_identity_from_a_new_address_moves_the_session() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.connect(addr(2), client(b"meter-2", &[0x42; 16]));
    net.take_server_events();
    // NAT rebinding: the device's packets now come from addr(3).
    net.connect(addr(3), client(IDENTITY, &KEY));
    assert_eq!(
        net.take_server_events(),
        vec![
            DtlsEvent::Closed {
                peer: addr(1),
                identity: PskIdentity::new(IDENTITY),
                reason: CloseReason::MovedTo(addr(3))
            },
            connected_event(addr(3), IDENTITY, Some(addr(1))),
        ]
    );
    assert_eq!(net.server.stats().replaced_moved, 1);
    assert_eq!(net.server.stats().sessions, 2);
    assert_eq!(
        net.server.peer_of(&PskIdentity::new(IDENTITY)),
        Some(addr(3))
    );
    assert_eq!(net.server.identity_of(addr(1)), None);
    // The old address is a stranger now: its records are dropped by the pre-check.
    let dropped = net.server.stats().dropped.not_client_hello;
    net.client_send(addr(1), b"stale");
    assert!(net.take_server_events().is_empty());
    assert_eq!(net.server.stats().dropped.not_client_hello, dropped + 1);
}

#[test]
fn a_full_session_table_evicts_the_least_recently_active_session() {
    let config = DtlsServerConfig {
        max_sessions: 2,
        ..Default::default()
    };
    let mut net = Net::new(config);
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.advance(Duration::from_secs(1));
    net.connect(addr(2), client(b"meter-2", &[0x42; 16]));
    net.advance(Duration::from_secs(1));
    net.client_send(addr(1), b"recent");
    net.take_server_events();
    net.connect(addr(3), client(b"meter-3", &[0x43; 16]));
    assert_eq!(
        net.take_server_events(),
        vec![
            DtlsEvent::Closed {
                peer: addr(2),
                identity: PskIdentity::new(b"meter-2"),
                reason: CloseReason::Evicted
            },
            connected_event(addr(3), b"meter-3", None),
        ]
    );
    assert_eq!(net.server.stats().evictions, 1);
    assert_eq!(net.server.stats().sessions, 2);
}

#[test]
fn a_forged_record_does_not_tear_down_an_established_session() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();
    let sent_before = net.server_sent.len();
    // Epoch-1 application data and alert records with garbage ciphertext, "from" the client.
    for content_type in [23u8, 21] {
        let forged = [
            &[content_type, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 99, 0, 24][..],
            &[0x5a; 24],
        ]
        .concat();
        net.server.handle_datagram(net.now, addr(1), &forged);
    }
    net.pump();
    assert_eq!(net.server_sent.len(), sent_before, "no alert went out");
    assert!(net.take_server_events().is_empty());
    assert_eq!(net.server.stats().dropped.invalid_records, 2);
    assert_eq!(net.server.stats().sessions, 1);
    net.client_send(addr(1), b"still here");
    assert!(
        matches!(net.take_server_events().as_slice(), [DtlsEvent::Data { bytes, .. }] if bytes == b"still here")
    );
}

#[test]
fn a_replayed_record_is_dropped_and_delivered_once() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();
    // Capture the client's application-data datagram on its way to the server.
    let captured = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = captured.clone();
    net.filter = Box::new(move |dir, _, bytes| {
        if dir == Direction::ToServer && bytes.first() == Some(&23) {
            sink.borrow_mut().push(bytes.to_vec());
        }
        Fate::Deliver
    });
    net.client_send(addr(1), b"reading 1");
    let record = captured.borrow().first().cloned().expect("captured record");
    // RFC 6347 §4.1.2.6: the replay window discards a record already received, however often it
    // comes back, and the session stays up.
    for _ in 0..3 {
        net.server.handle_datagram(net.now, addr(1), &record);
    }
    net.pump();
    let data = net.take_server_data();
    assert_eq!(data, vec![b"reading 1".to_vec()], "delivered exactly once");
    assert_eq!(net.server.stats().sessions, 1);
    // A replay from another address is no record of any session there.
    net.server.handle_datagram(net.now, addr(2), &record);
    assert!(net.server.poll_event().is_none());
    assert_eq!(net.server.stats().dropped.not_client_hello, 1);
    net.client_send(addr(1), b"reading 2");
    assert!(matches!(
        net.take_server_events().as_slice(),
        [DtlsEvent::Data { bytes, .. }] if bytes == b"reading 2"
    ));
    net.server.check_invariants().expect("consistent");
}

#[test]
fn a_corrupted_record_of_a_session_is_dropped_and_the_session_goes_on() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.take_server_events();
    // The client's record with one bit of its authentication tag flipped (in transit).
    let mut corrupted = Vec::new();
    {
        let now = net.now;
        let client = net.clients.get_mut(&addr(1)).expect("client");
        client.send(now, b"tampered").expect("send");
        let (_, mut bytes) = client.poll_transmit().expect("record");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        corrupted.push(bytes);
    }
    for bytes in &corrupted {
        net.server.handle_datagram(net.now, addr(1), bytes);
    }
    net.pump();
    assert!(net.take_server_events().is_empty(), "nothing delivered");
    assert_eq!(net.server.stats().dropped.invalid_records, 1);
    net.client_send(addr(1), b"intact");
    assert!(matches!(
        net.take_server_events().as_slice(),
        [DtlsEvent::Data { bytes, .. }] if bytes == b"intact"
    ));
}

#[test]
fn repeated_failed_handshakes_rate_limit_that_address_only() {
    let config = DtlsServerConfig {
        max_handshake_failures: 2,
        handshake_failure_window: Duration::from_secs(120),
        ..Default::default()
    };
    let mut net = Net::new(config);
    for _ in 0..2 {
        net.connect(addr(1), client(IDENTITY, &[0x01; 16]));
        net.advance(Duration::from_secs(31));
    }
    let stats = net.server.stats();
    assert_eq!(stats.handshakes_failed.bad_key, 2);
    assert_eq!(stats.rate_limit_blocks, 1);
    assert_eq!(net.server.failure_table(), (1, 1));
    // Now even the right key gets nothing at that address: no HelloVerifyRequest, no state.
    let sent_before = net.server_sent.len();
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(!net.connected(addr(1)));
    assert_eq!(net.server_sent.len(), sent_before, "not even a cookie");
    assert!(net.server.stats().dropped.rate_limited >= 1);
    assert!(!net.server.holds_state_for(addr(1)));
    // Another port of the same host is another address (NAT): unaffected.
    let same_host = SocketAddr::from(([198, 51, 100, 7], 50_000));
    net.connect(same_host, client(b"meter-2", &[0x42; 16]));
    assert!(net.connected(same_host));
    // After the window the address may try again.
    net.advance(Duration::from_secs(121));
    net.connect(addr(1), client(IDENTITY, &KEY));
    assert!(net.connected(addr(1)));
    assert_eq!(net.server.failure_table().1, 0);
    net.server.check_invariants().expect("consistent");
}

#[test]
fn superseded_handshakes_do_not_count_against_the_address() {
    assert!(!HandshakeFailure::Superseded.counts_against_the_address());
    assert!(!HandshakeFailure::Internal.counts_against_the_address());
    assert!(!HandshakeFailure::Evicted.counts_against_the_address());
    for reason in [
        HandshakeFailure::Timeout,
        HandshakeFailure::BadKey,
        HandshakeFailure::UnknownIdentity,
        HandshakeFailure::PeerAborted,
        HandshakeFailure::Protocol,
    ] {
        assert!(reason.counts_against_the_address(), "{reason:?}");
    }
}

#[test]
fn an_unknown_identity_and_a_wrong_key_look_the_same_on_the_wire() {
    // Identities of the same length, so the client's own flights are the same size too.
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(b"meter-9", &KEY));
    net.connect(addr(2), client(b"meter-2", &[0x01; 16]));
    let shapes = |to| {
        net.server_sent
            .iter()
            .filter(|(peer, _)| *peer == to)
            .map(|(_, bytes)| (bytes.len(), bytes[0], bytes[13]))
            .collect::<Vec<_>>()
    };
    // Every datagram the server sent — HelloVerifyRequest, ServerHello flight, the alert — has the
    // same length and type: the failure comes at the same message (the client's Finished).
    let unknown = shapes(addr(1));
    assert_eq!(unknown, shapes(addr(2)));
    assert!(unknown.len() >= 3, "{unknown:?}");
    let reasons: Vec<_> = net
        .take_server_events()
        .into_iter()
        .filter_map(|event| match event {
            DtlsEvent::HandshakeFailed { peer, reason, .. } => Some((peer, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (addr(1), HandshakeFailure::UnknownIdentity),
            (addr(2), HandshakeFailure::BadKey)
        ],
        "both failed at once, on the client's final flight"
    );
}

#[test]
fn bound_hits_are_counted_and_the_tables_stay_within_bounds() {
    let config = DtlsServerConfig {
        max_sessions: 2,
        max_handshakes: 1,
        ..Default::default()
    };
    let mut net = Net::new(config);
    for n in 1..=4 {
        net.connect(addr(n), client(IDENTITY, &KEY));
        net.server.check_invariants().expect("consistent");
    }
    let stats = net.server.stats();
    assert_eq!(
        stats.sessions, 1,
        "one identity, one session (the others moved)"
    );
    for (n, identity, key) in [
        (5, &b"meter-2"[..], [0x42; 16]),
        (6, b"meter-3", [0x43; 16]),
    ] {
        net.connect(addr(n), client(identity, &key));
    }
    let stats = net.server.stats();
    assert_eq!(stats.sessions, 2);
    assert_eq!(stats.evictions, 1);
    net.server.check_invariants().expect("consistent");
}

#[test]
fn closing_from_either_side_reports_closed_once() {
    let mut net = Net::new(DtlsServerConfig::default());
    net.connect(addr(1), client(IDENTITY, &KEY));
    net.connect(addr(2), client(b"meter-2", &[0x42; 16]));
    net.take_server_events();

    net.server.close(net.now, addr(1));
    net.pump();
    assert_eq!(
        net.client_closed(addr(1)),
        Some(ClientCloseReason::PeerClosed)
    );

    let now = net.now;
    net.clients.get_mut(&addr(2)).expect("client").close(now);
    net.pump();
    assert_eq!(
        net.client_closed(addr(2)),
        Some(ClientCloseReason::ClosedLocally)
    );
    assert_eq!(
        net.take_server_events(),
        vec![
            DtlsEvent::Closed {
                peer: addr(1),
                identity: PskIdentity::new(IDENTITY),
                reason: CloseReason::ClosedLocally
            },
            DtlsEvent::Closed {
                peer: addr(2),
                identity: PskIdentity::new(b"meter-2"),
                reason: CloseReason::PeerClosed
            },
        ]
    );
    let stats = net.server.stats();
    assert_eq!(
        (stats.local_closes, stats.peer_closes, stats.sessions),
        (1, 1, 0)
    );
    assert_eq!(net.server.poll_timeout(), None);
}

#[test]
fn send_refuses_unknown_peers_and_oversized_plaintext() {
    let mut net = Net::new(DtlsServerConfig::default());
    assert!(matches!(
        net.server.send(net.now, addr(1), b"x"),
        Err(SendError::NotConnected(_))
    ));
    net.connect(addr(1), client(IDENTITY, &KEY));
    let big = vec![0u8; MAX_PLAINTEXT + 1];
    assert!(matches!(
        net.server.send(net.now, addr(1), &big),
        Err(SendError::TooLarge { .. })
    ));
    let mut idle = client(IDENTITY, &KEY);
    assert!(matches!(
        idle.send(net.now, b"x"),
        Err(SendError::NotConnected(_))
    ));
    assert!(idle.connect(net.now, server_addr()).is_ok());
    assert!(matches!(
        idle.connect(net.now, server_addr()),
        Err(ConnectError::AlreadyStarted)
    ));
}

#[test]
fn debug_output_never_shows_keys_and_the_types_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<DtlsServer>();
    assert_send::<DtlsClient>();

    let net = Net::new(DtlsServerConfig::default());
    let key_bytes = format!("{:?}", &KEY[..4]);
    for text in [
        format!("{:?}", net.server),
        format!("{:?}", client(IDENTITY, &KEY)),
    ] {
        assert!(!text.contains(&key_bytes[1..key_bytes.len() - 1]), "{text}");
        assert!(
            !text.contains("11, 22") && !text.contains("17, 34, 51"),
            "{text}"
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever arrives from unknown addresses, the server never panics and never keeps
        /// state: at most it answers with stateless HelloVerifyRequests.
        #[test]
        fn arbitrary_datagrams_from_strangers_create_no_state(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
        ) {
            let mut server = DtlsServer::new(DtlsServerConfig::default(), store()).expect("server");
            let now = Instant::now();
            for (n, datagram) in datagrams.iter().enumerate() {
                server.handle_datagram(now, addr(n as u16), datagram);
            }
            prop_assert_eq!(server.poll_timeout(), None);
            prop_assert_eq!(server.stats().handshakes_in_progress, 0);
            prop_assert!(server.poll_event().is_none());
            while let Some((_, reply)) = server.poll_transmit() {
                prop_assert!(crate::wire::hello_verify_cookie(&reply).is_some());
            }
        }

        /// No amplification: an address the server holds nothing for gets back at most as many
        /// bytes as it sent, whatever it sent — random bytes or a genuine ClientHello with any
        /// bytes changed — and still nothing is held afterwards.
        #[test]
        fn stateless_answers_are_never_larger_than_the_datagram(
            random in proptest::collection::vec(any::<u8>(), 0..300),
            changes in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
            truncate in proptest::option::of(0usize..200),
        ) {
            let mut server = DtlsServer::new(DtlsServerConfig::default(), store()).expect("server");
            let now = Instant::now();
            let mut probe = client(IDENTITY, &KEY);
            probe.connect(now, server_addr()).expect("connect");
            let mut hello = probe.poll_transmit().expect("hello").1;
            for (at, value) in changes {
                if let Some(byte) = hello.get_mut(at) {
                    *byte = value;
                }
            }
            if let Some(len) = truncate {
                hello.truncate(len);
            }
            for (n, datagram) in [random, hello].iter().enumerate() {
                server.handle_datagram(now, addr(n as u16), datagram);
                let answered: usize = std::iter::from_fn(|| server.poll_transmit())
                    .map(|(_, bytes)| bytes.len())
                    .sum();
                prop_assert!(answered <= datagram.len(), "{} > {}", answered, datagram.len());
                prop_assert!(!server.holds_state_for(addr(n as u16)));
            }
            prop_assert!(server.check_invariants().is_ok());
        }

        /// Arbitrary datagrams "from" an established peer never panic and never end its session
        /// (unless one happens to be a valid close_notify, which random bytes are not).
        #[test]
        fn arbitrary_datagrams_on_an_established_session_leave_it_up(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..10),
        ) {
            let mut net = Net::new(DtlsServerConfig::default());
            net.connect(addr(1), client(IDENTITY, &KEY));
            net.take_server_events();
            for datagram in &datagrams {
                net.server.handle_datagram(net.now, addr(1), datagram);
            }
            net.pump();
            prop_assert_eq!(net.server.stats().sessions, 1);
            net.client_send(addr(1), b"alive");
            let data = net.take_server_events().into_iter().any(|event| {
                matches!(event, DtlsEvent::Data { bytes, .. } if bytes == b"alive")
            });
            prop_assert!(data);
        }
    }
}

/// A server slower than the client's retransmission timer answers both copies of the first
/// ClientHello; the client answers only one of the two HelloVerifyRequests and the handshake
/// completes (a suspect for first handshakes failing under load, ruled out here).
#[test]
fn a_retransmitted_first_hello_gets_two_cookies_and_the_handshake_still_completes() {
    let mut net = Net::new(DtlsServerConfig::default());
    let t0 = net.now;
    let mut c = client(IDENTITY, &KEY);
    c.connect(t0, server_addr()).expect("connect");
    let (_, hello) = c.poll_transmit().expect("hello");
    net.server.handle_datagram(t0, addr(1), &hello);
    let (_, first_hvr) = net
        .server
        .poll_transmit()
        .expect("first HelloVerifyRequest");
    let t1 = t0 + Duration::from_millis(1100);
    c.handle_timeout(t1);
    let (_, again) = c.poll_transmit().expect("retransmitted hello");
    net.server.handle_datagram(t1, addr(1), &again);
    let (_, second_hvr) = net
        .server
        .poll_transmit()
        .expect("second HelloVerifyRequest");
    c.handle_datagram(t1, server_addr(), &first_hvr);
    c.handle_datagram(t1, server_addr(), &second_hvr);
    let answers: Vec<Vec<u8>> = std::iter::from_fn(|| c.poll_transmit().map(|(_, b)| b)).collect();
    assert_eq!(answers.len(), 1, "one hello with a cookie");
    net.now = t1;
    net.clients.insert(addr(1), c);
    for answer in &answers {
        net.server.handle_datagram(t1, addr(1), answer);
    }
    net.pump();
    assert!(net.connected(addr(1)));
    assert_eq!(net.server.stats().dropped.unexpected_message_sequence, 0);
}
