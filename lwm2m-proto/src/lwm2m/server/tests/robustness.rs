//! Untrusted input never panics the server (property tests over raw and structured datagrams),
//! and the memory held per registered idle device stays within budget.

use proptest::prelude::*;

use super::*;
use crate::coap::{Message, MessageType, Token};

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 2, n], 40_000 + u16::from(n)))
}

fn auth(n: u8) -> PeerAuth {
    if n.is_multiple_of(2) {
        PeerAuth::NoSec
    } else {
        PeerAuth::Psk {
            identity: format!("id-{}", n % 4),
        }
    }
}

/// A CoAP request to one of the server's resources with arbitrary query and payload.
fn request_datagram(
    mid: u16,
    code: u8,
    path: &[String],
    query: &[String],
    cf: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let mut msg = Message::new(
        MessageType::Confirmable,
        Code(code),
        mid,
        Token::new(&mid.to_be_bytes()).unwrap_or(Token::EMPTY),
    );
    msg.options.set_uri_path(path);
    for q in query {
        msg.options.push_uri_query(q);
    }
    if let Some(cf) = cf {
        msg.options.set_content_format(ContentFormat(cf));
    }
    msg.payload = payload.to_vec();
    msg.encode().unwrap_or_default()
}

fn path_strategy() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(vec!["rd".to_string()]),
        Just(vec!["dp".to_string()]),
        "[0-9a-z]{0,9}".prop_map(|id| vec!["rd".to_string(), id]),
        proptest::collection::vec("[a-z0-9]{0,4}", 0..4),
    ]
}

fn query_strategy() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            "ep=[a-z0-9]{0,6}",
            "lt=[0-9]{0,11}",
            "lwm2m=(1\\.0|1\\.1|1\\.2|2\\.0|x)",
            "b=[UQSTNX]{0,4}",
            Just("Q".to_string()),
            ".{0,12}",
        ],
        0..6,
    )
}

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "(</[0-9]{1,5}(/[0-9]{1,3})?>(;ct=[0-9]{1,5})?,?){0,5}".prop_map(String::into_bytes),
        Just(br#"[{"n":"/10243/0/14","v":1.5,"t":1700000000}]"#.to_vec()),
    ]
}

/// What the application does between datagrams.
#[derive(Debug, Clone)]
enum AppAction {
    Accept,
    Reject,
    Read(u8),
    Observe(u8),
    CancelFirstObservation(u8),
    Advance(u16),
}

fn action_strategy() -> impl Strategy<Value = AppAction> {
    prop_oneof![
        Just(AppAction::Accept),
        Just(AppAction::Reject),
        any::<u8>().prop_map(AppAction::Read),
        any::<u8>().prop_map(AppAction::Observe),
        any::<u8>().prop_map(AppAction::CancelFirstObservation),
        (0u16..400).prop_map(AppAction::Advance),
    ]
}

/// Plays the application: answers tickets, issues operations, advances time.
fn act(
    server: &mut Lwm2mServer,
    now: &mut Instant,
    tickets: &mut Vec<RegistrationTicket>,
    a: &AppAction,
) {
    let endpoints: Vec<String> = server.registrations().map(|r| r.endpoint.clone()).collect();
    let pick = |n: u8| {
        endpoints
            .get(usize::from(n) % endpoints.len().max(1))
            .cloned()
    };
    match a {
        AppAction::Accept => {
            if let Some(t) = tickets.pop() {
                let _ = server.accept_registration(*now, t);
            }
        }
        AppAction::Reject => {
            if let Some(t) = tickets.pop() {
                let _ = server.reject_registration(*now, t, Rejection::Forbidden);
            }
        }
        AppAction::Read(n) => {
            if let Some(ep) = pick(*n) {
                let _ = server.request(*now, &ep, Operation::Read(Path::Instance(3, 0)));
            }
        }
        AppAction::Observe(n) => {
            if let Some(ep) = pick(*n) {
                let _ = server.request(*now, &ep, Operation::Observe(Path::Resource(3, 0, 9)));
            }
        }
        AppAction::CancelFirstObservation(n) => {
            if let Some(ep) = pick(*n)
                && let Some(o) = server.observations(&ep).first()
            {
                let _ = server.request(*now, &ep, Operation::CancelObservation(o.observation));
            }
        }
        AppAction::Advance(secs) => {
            *now += Duration::from_secs(u64::from(*secs));
            server.handle_timeout(*now);
        }
    }
}

fn drain(server: &mut Lwm2mServer, tickets: &mut Vec<RegistrationTicket>) {
    while server.poll_transmit().is_some() {}
    while let Some(e) = server.poll_event() {
        if let ServerEvent::RegistrationRequest { ticket, .. } = e {
            tickets.push(ticket);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80)), 1..40),
    ) {
        let mut server = Lwm2mServer::new(config(), 7);
        let now = Instant::now();
        for (n, bytes) in &datagrams {
            server.handle_datagram(now, peer(*n % 8), auth(*n), bytes);
        }
        server.handle_timeout(now + Duration::from_secs(3600));
        drain(&mut server, &mut Vec::new());
        prop_assert_eq!(server.stats().registrations, 0);
    }

    #[test]
    fn arbitrary_requests_and_app_actions_never_panic_and_stay_bounded(
        steps in proptest::collection::vec(
            (
                any::<u8>(),
                prop_oneof![Just(0x02u8), Just(0x04u8), Just(0x01u8), Just(0x03u8), any::<u8>()],
                path_strategy(),
                query_strategy(),
                prop_oneof![Just(None), Just(Some(40u16)), Just(Some(110u16)), Just(Some(112u16)), any::<u16>().prop_map(Some)],
                payload_strategy(),
                action_strategy(),
            ),
            1..40,
        ),
    ) {
        let mut cfg = config();
        cfg.max_registrations = 4;
        cfg.max_pending_registrations = 3;
        cfg.max_queued = 2;
        cfg.max_in_flight = 1;
        let mut server = Lwm2mServer::new(cfg, 11);
        let mut now = Instant::now();
        let mut tickets = Vec::new();
        for (i, (n, code, path, query, cf, payload, action)) in steps.iter().enumerate() {
            let bytes = request_datagram(i as u16, *code, path, query, *cf, payload);
            server.handle_datagram(now, peer(*n % 6), auth(*n), &bytes);
            drain(&mut server, &mut tickets);
            act(&mut server, &mut now, &mut tickets, action);
            drain(&mut server, &mut tickets);
            let stats = server.stats();
            prop_assert!(stats.registrations <= 4);
            prop_assert!(stats.pending_registrations <= 3);
            for r in server.registrations() {
                prop_assert!(server.queued_ops(&r.endpoint).len() <= 2 + 1);
            }
        }
    }
}

#[test]
fn an_idle_registered_meter_costs_under_4_kib() {
    let mut net = Net::new(config());
    let n = 200;
    for i in 0..n {
        registered_meter(&mut net, &format!("meter-{i:05}"));
    }
    // Idle: past EXCHANGE_LIFETIME, so deduplication entries of the Registers are gone (they
    // are purged when the next message arrives).
    net.advance(Duration::from_secs(250));
    let late = net.device(PeerAuth::NoSec);
    net.register(late, &["ep=late", "lt=300"], METER_LINKS_1_0);
    let estimate = net.server.memory_estimate();
    assert_eq!(estimate.registrations, n + 1);
    let per = estimate.per_registration();
    assert!(per <= 4096, "{per} bytes per registration: {estimate:?}");
    assert!(per > 300, "an implausibly low estimate: {estimate:?}");
    println!("estimate: {per} bytes per registration ({estimate:?})");
}

/// Measures real memory (RSS) per registration. Run alone, single-threaded:
/// `cargo test -p lwm2m-proto --release rss_per_registration -- --ignored --test-threads=1 --nocapture`
#[test]
#[ignore = "measures process RSS; run alone"]
fn rss_per_registration() {
    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }
    let n = 20_000usize;
    let mut server = Lwm2mServer::new(config(), 3);
    let mut device = CoapEndpoint::new(CoapConfig::default(), 4);
    let server_addr = SocketAddr::from(([10, 0, 0, 1], 5683));
    let start = Instant::now();
    let before = rss_bytes();
    for i in 0..n {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40_000));
        let register = Request::post()
            .with_path(["rd"])
            .with_query(format!("ep=meter-{i:06}"))
            .with_query("lt=86400")
            .with_query("lwm2m=1.1")
            .with_content_format(ContentFormat::LINK_FORMAT)
            .with_payload(METER_LINKS);
        device.request(start, server_addr, register);
        while let Some(t) = device.poll_transmit() {
            server.handle_datagram(start, addr, PeerAuth::NoSec, &t.bytes);
        }
        while let Some(e) = server.poll_event() {
            if let ServerEvent::RegistrationRequest { ticket, .. } = e {
                server.accept_registration(start, ticket).expect("accepted");
            }
        }
        while server.poll_transmit().is_some() {}
        // The fake device never sees the answers; forget its side.
        device = CoapEndpoint::new(CoapConfig::default(), 5 + i as u64);
    }
    // Past EXCHANGE_LIFETIME, then one more message purges the deduplication entries.
    let later = start + Duration::from_secs(300);
    server.handle_timeout(later);
    let ping = Message::new(MessageType::NonConfirmable, Code::GET, 1, Token::EMPTY);
    let ping = ping.encode().expect("encodes");
    server.handle_datagram(later, server_addr, PeerAuth::NoSec, &ping);
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
    let after = rss_bytes();
    let estimate = server.memory_estimate();
    println!(
        "{n} registrations: RSS {} bytes/registration, estimate {} bytes/registration ({estimate:?})",
        after.saturating_sub(before) / n,
        estimate.per_registration()
    );
    assert_eq!(server.stats().registrations, n);
}
