//! Reliability and matching (RFC 7252 §4–5): retransmission, deduplication, NSTART, separate
//! responses, tokens.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;
use crate::coap::message::hex;
use crate::coap::option::ContentFormat;
use crate::coap::request::Method;
use crate::coap::testing::{LinkConfig, Side, Sim};

#[test]
fn piggybacked_request_response() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 1);
    let (mut app, seen) = echo_app(|r| r.path().join("/").into_bytes());
    let req = Request::get()
        .with_path(["3", "0", "1"])
        .with_accept(ContentFormat::TEXT_PLAIN);
    let id = sim.client.request(sim.now, sim.server_addr, req);
    assert!(
        sim.run(Duration::from_secs(10), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, id);
    assert_eq!(got[0].1.payload, b"3/0/1");
    assert_eq!(seen.borrow()[0].accept(), Some(ContentFormat::TEXT_PLAIN));
    // One CON request, one ACK carrying 2.05 with the same token and message ID.
    let c = sim.sent_by(Side::Client);
    let s = sim.sent_by(Side::Server);
    assert_eq!((c.len(), s.len()), (1, 1));
    assert_eq!(c[0].mtype, MessageType::Confirmable);
    assert_eq!(s[0].mtype, MessageType::Acknowledgement);
    assert_eq!(s[0].message_id, c[0].message_id);
    assert_eq!(s[0].token, c[0].token);
    assert_eq!(c[0].token.len(), 4);
    // Nothing left behind but deduplication memory.
    sim.run_idle(Duration::from_secs(1), &mut app);
    let st = sim.client.stats();
    assert_eq!((st.exchanges, st.sent_messages), (0, 0));
}

#[test]
fn lost_request_is_retransmitted_with_backoff() {
    let mut link = LinkConfig::perfect();
    link.drop_indices = [0, 1, 2].into_iter().collect(); // first three copies of the request
    let mut sim = Sim::new(cfg(), cfg(), link, 2);
    let (mut app, seen) = echo_app(|_| b"ok".to_vec());
    sim.client
        .request(sim.now, sim.server_addr, Request::get().with_path(["1"]));
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert_eq!(responses(&sim.client_events).len(), 1);
    assert_eq!(seen.borrow().len(), 1);
    // Transmissions at t0, t0+T, t0+3T, t0+7T with T in [2, 3] s (RFC 7252 §4.2).
    let times: Vec<Duration> = sim
        .wire_log
        .iter()
        .filter(|(_, s, _)| *s == Side::Client)
        .map(|(t, _, _)| *t - sim.start)
        .collect();
    assert_eq!(times.len(), 4);
    let t = times[1] - times[0];
    assert!(
        t >= Duration::from_secs(2) && t <= Duration::from_secs(3),
        "{t:?}"
    );
    assert_eq!(times[2] - times[1], t * 2);
    assert_eq!(times[3] - times[2], t * 4); // Three retransmissions counted for the metrics; the server retransmitted nothing.
    assert_eq!(sim.client.stats().retransmissions, 3);
    assert_eq!(sim.server.stats().retransmissions, 0);
}

#[test]
fn lost_response_is_answered_from_the_deduplication_cache() {
    let mut link = LinkConfig::perfect();
    link.drop_indices = [1].into_iter().collect(); // the piggybacked response
    let mut sim = Sim::new(cfg(), cfg(), link, 3);
    let (mut app, seen) = echo_app(|_| b"v".to_vec());
    sim.client.request(
        sim.now,
        sim.server_addr,
        Request::post().with_path(["1", "0", "8"]),
    );
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    // The non-idempotent POST reached the application once; the retransmission got the same bytes.
    assert_eq!(seen.borrow().len(), 1);
    let server_sent: Vec<&Vec<u8>> = sim
        .wire_log
        .iter()
        .filter(|(_, s, _)| *s == Side::Server)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(server_sent.len(), 2);
    assert_eq!(server_sent[0], server_sent[1]);
}

#[test]
fn lossy_link_completes_every_request_exactly_once() {
    for seed in 10..14 {
        let link = LinkConfig::lossy(0.1, 0.1, 0.1);
        let mut sim = Sim::new(cfg(), cfg(), link, seed);
        let (mut app, seen) = echo_app(|r| r.payload.clone());
        let ids: Vec<RequestId> = (0..40u32)
            .map(|i| {
                let req = Request::post()
                    .with_path(["p"])
                    .with_payload(i.to_be_bytes().to_vec());
                sim.client.request(sim.now, sim.server_addr, req)
            })
            .collect();
        assert!(
            sim.run(Duration::from_secs(3600), &mut app, &|ev| count_final(ev)
                == 40)
        );
        let got = responses(&sim.client_events);
        assert_eq!(
            got.len(),
            40,
            "seed {seed}: {:?}",
            sim.client_events
                .iter()
                .filter(|(_, e)| matches!(e, Event::RequestFailed { .. }))
                .collect::<Vec<_>>()
        );
        for (i, id) in ids.iter().enumerate() {
            let r = got.iter().find(|(g, _)| g == id).expect("answered");
            assert_eq!(r.1.payload, (i as u32).to_be_bytes());
        }
        // Each request reached the application once, in order (NSTART 1).
        let payloads: Vec<Vec<u8>> = seen.borrow().iter().map(|r| r.payload.clone()).collect();
        let expected: Vec<Vec<u8>> = (0..40u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(payloads, expected, "seed {seed}");
    }
}

#[test]
fn nstart_queues_requests_per_peer() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 4);
    let (mut app, _) = echo_app(|r| r.path().concat().into_bytes());
    for p in ["a", "b", "c"] {
        sim.client
            .request(sim.now, sim.server_addr, Request::get().with_path([p]));
    }
    // Only the first is on the wire.
    let first: Vec<Transmit> = std::iter::from_fn(|| sim.client.poll_transmit()).collect();
    assert_eq!(first.len(), 1);
    sim.link = LinkConfig::perfect();
    for t in first {
        sim.server
            .handle_datagram(sim.now, sim.client_addr, &t.bytes);
    }
    assert!(
        sim.run(Duration::from_secs(10), &mut app, &|ev| count_final(ev)
            == 3)
    );
    let bodies: Vec<Vec<u8>> = responses(&sim.client_events)
        .iter()
        .map(|(_, r)| r.payload.clone())
        .collect();
    assert_eq!(bodies, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // A request goes out only after the previous response arrived.
    let log: Vec<Side> = sim.wire_log.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(
        log,
        vec![
            Side::Server,
            Side::Client,
            Side::Server,
            Side::Client,
            Side::Server
        ]
    );

    // With NSTART 2, two go out at once.
    let mut c = cfg();
    c.nstart = 2;
    let mut sim = Sim::new(c, cfg(), LinkConfig::perfect(), 5);
    for p in ["a", "b", "c"] {
        sim.client
            .request(sim.now, sim.server_addr, Request::get().with_path([p]));
    }
    assert_eq!(std::iter::from_fn(|| sim.client.poll_transmit()).count(), 2);
}

#[test]
fn timeout_after_max_retransmit() {
    let mut link = LinkConfig::perfect();
    link.drop = 1.0;
    let mut sim = Sim::new(cfg(), cfg(), link, 6);
    let (mut app, _) = echo_app(|_| Vec::new());
    let id = sim.client.request(sim.now, sim.server_addr, Request::get());
    let queued = sim.client.request(sim.now, sim.server_addr, Request::get());
    assert!(
        sim.run(Duration::from_secs(300), &mut app, &|ev| count_final(ev)
            == 2)
    );
    let (at, first) = &sim.client_events[0];
    assert!(
        matches!(first, Event::RequestFailed { id: i, reason: FailureReason::Timeout } if *i == id)
    );
    // 1 + MAX_RETRANSMIT transmissions, failing after 31 × the initial timeout: 62..=93 s
    // (MAX_TRANSMIT_WAIT).
    let waited = *at - sim.start;
    assert!(
        waited >= Duration::from_secs(62) && waited <= Duration::from_secs(93),
        "{waited:?}"
    );
    let mids: Vec<u16> = sim
        .sent_by(Side::Client)
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(mids.len(), 10);
    assert!(mids[..5].iter().all(|m| *m == mids[0]));
    assert!(matches!(sim.client_events[1].1, Event::RequestFailed { id: i, .. } if i == queued));
}

#[test]
fn reset_fails_the_request() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 7);
    let id = sim.client.request(sim.now, sim.server_addr, Request::get());
    let t = sim.client.poll_transmit().expect("request");
    let req = Message::decode(&t.bytes).expect("valid");
    sim.client.handle_datagram(
        sim.now,
        sim.server_addr,
        &Message::reset(req.message_id).encode().expect("rst"),
    );
    assert!(matches!(
        sim.client.poll_event(),
        Some(Event::RequestFailed { id: i, reason: FailureReason::Reset }) if i == id
    ));
    // A RST or ACK matching nothing is ignored.
    sim.client
        .handle_datagram(sim.now, sim.server_addr, &hex("70000001"));
    sim.client
        .handle_datagram(sim.now, sim.server_addr, &hex("60000002"));
    assert!(sim.client.poll_event().is_none());
    assert!(sim.client.poll_transmit().is_none());
}

#[test]
fn separate_response_after_empty_ack() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 8);
    let parked: Rc<RefCell<Vec<Responder>>> = Rc::default();
    let p = parked.clone();
    let mut app = move |_: &mut CoapEndpoint, _: Instant, e: Event| {
        if let Event::Request { responder, .. } = e {
            p.borrow_mut().push(responder);
        }
    };
    let id = sim.client.request(
        sim.now,
        sim.server_addr,
        Request::post().with_path(["5", "0", "2"]),
    );
    sim.advance(Duration::from_secs(5), &mut app);
    // The server acknowledged after empty_ack_delay; the client stopped retransmitting.
    let s = sim.sent_by(Side::Server);
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].mtype, s[0].code),
        (MessageType::Acknowledgement, Code::EMPTY)
    );
    assert_eq!(sim.sent_by(Side::Client).len(), 1);
    let responder = parked.borrow_mut().pop().expect("request delivered");
    let now = sim.now;
    sim.server
        .respond(now, responder, Response::new(Code::CHANGED))
        .expect("pending");
    assert!(
        sim.run(Duration::from_secs(10), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert!(
        matches!(&sim.client_events[0].1, Event::Response { id: i, response } if *i == id && response.code == Code::CHANGED)
    );
    sim.run_idle(Duration::from_secs(10), &mut app);
    // Separate CON response, acknowledged by the client with an Empty ACK; no retransmission.
    let s = sim.sent_by(Side::Server);
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].mtype, MessageType::Confirmable);
    let c = sim.sent_by(Side::Client);
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[1].mtype, c[1].message_id),
        (MessageType::Acknowledgement, s[1].message_id)
    );
    assert_eq!(sim.server.stats().sent_messages, 0);
}

#[test]
fn separate_response_survives_loss_and_duplicates() {
    let mut link = LinkConfig::lossy(0.0, 0.5, 0.3);
    link.drop_indices = [3].into_iter().collect(); // the client's ACK of the separate response
    let mut sim = Sim::new(cfg(), cfg(), link, 9);
    let parked: Rc<RefCell<Vec<Responder>>> = Rc::default();
    let p = parked.clone();
    let mut app = move |_: &mut CoapEndpoint, _: Instant, e: Event| {
        if let Event::Request { responder, .. } = e {
            p.borrow_mut().push(responder);
        }
    };
    sim.client.request(sim.now, sim.server_addr, Request::get());
    sim.advance(Duration::from_secs(4), &mut app);
    let responder = parked.borrow_mut().pop().expect("delivered once");
    assert!(parked.borrow().is_empty());
    let now = sim.now;
    sim.server
        .respond(now, responder, Response::new(Code::CONTENT))
        .expect("pending");
    sim.run_idle(Duration::from_secs(100), &mut app);
    assert_eq!(responses(&sim.client_events).len(), 1);
    assert_eq!(count_final(&sim.client_events), 1);
}

#[test]
fn piggybacking_only_when_empty_ack_disabled() {
    let mut s = cfg();
    s.empty_ack_delay = None;
    let mut sim = Sim::new(cfg(), s, LinkConfig::perfect(), 11);
    let parked: Rc<RefCell<Vec<Responder>>> = Rc::default();
    let p = parked.clone();
    let mut app = move |_: &mut CoapEndpoint, _: Instant, e: Event| {
        if let Event::Request { responder, .. } = e {
            p.borrow_mut().push(responder);
        }
    };
    sim.client.request(sim.now, sim.server_addr, Request::get());
    sim.advance(Duration::from_secs(4), &mut app); // the client retransmits once meanwhile
    let responder = parked.borrow_mut().pop().expect("delivered");
    let now = sim.now;
    sim.server
        .respond(now, responder, Response::new(Code::CONTENT))
        .expect("pending");
    sim.run_idle(Duration::from_secs(60), &mut app);
    let s = sim.sent_by(Side::Server);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].mtype, MessageType::Acknowledgement);
    assert_eq!(responses(&sim.client_events).len(), 1);
}

#[test]
fn zero_length_tokens() {
    let mut c = cfg();
    c.token_length = 0;
    let mut sim = Sim::new(c, cfg(), LinkConfig::lossy(0.1, 0.1, 0.0), 12);
    let (mut app, _) = echo_app(|_| b"z".to_vec());
    for _ in 0..3 {
        sim.client.request(sim.now, sim.server_addr, Request::get());
    }
    assert!(
        sim.run(Duration::from_secs(600), &mut app, &|ev| count_final(ev)
            == 3)
    );
    assert_eq!(responses(&sim.client_events).len(), 3);
    assert!(sim.sent_by(Side::Client).iter().all(|m| m.token.is_empty()));

    // An incoming request with a zero-length token is answered with a zero-length token.
    let mut ep = CoapEndpoint::new(cfg(), 1);
    let peer = SocketAddr::from(([192, 0, 2, 9], 5683));
    let now = Instant::now();
    ep.handle_datagram(now, peer, &hex("40014242 b3 726464"));
    let Some(Event::Request {
        responder, request, ..
    }) = ep.poll_event()
    else {
        panic!("request expected");
    };
    assert_eq!(request.path(), vec!["rdd"]);
    assert_eq!(responder.token(), Token::EMPTY);
    ep.respond(now, responder, Response::new(Code::CONTENT))
        .expect("pending");
    assert_eq!(ep.poll_transmit().map(|t| t.bytes), Some(hex("60454242")));
}

#[test]
fn duplicates_are_answered_from_cache_and_delivered_once() {
    let mut ep = CoapEndpoint::new(cfg(), 9);
    let peer = SocketAddr::from(([192, 0, 2, 4], 5683));
    let now = Instant::now();
    let con = hex("42010777 abcd b3 666f6f");
    ep.handle_datagram(now, peer, &con);
    let Some(Event::Request { responder, .. }) = ep.poll_event() else {
        panic!("request expected")
    };
    // Duplicate before the answer: absorbed silently.
    ep.handle_datagram(now, peer, &con);
    assert!(ep.poll_event().is_none() && ep.poll_transmit().is_none());
    ep.respond(
        now,
        responder,
        Response::new(Code::CONTENT).with_payload(b"bar".to_vec()),
    )
    .expect("pending");
    let answer = ep.poll_transmit().expect("answer").bytes;
    assert_eq!(answer, hex("62450777 abcd ff 626172"));
    // Duplicate after the answer: the same bytes again, no new event.
    ep.handle_datagram(now + Duration::from_secs(100), peer, &con);
    assert_eq!(ep.poll_transmit().map(|t| t.bytes), Some(answer));
    assert!(ep.poll_event().is_none());
    // After EXCHANGE_LIFETIME the message ID is new again.
    ep.handle_datagram(now + Duration::from_secs(248), peer, &con);
    assert!(matches!(ep.poll_event(), Some(Event::Request { .. })));
    // NON duplicates are dropped.
    let non = hex("52010778 abce b3 666f6f");
    ep.handle_datagram(now, peer, &non);
    ep.handle_datagram(now, peer, &non);
    let requests = std::iter::from_fn(|| ep.poll_event())
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(requests, 1);
}

#[test]
fn unknown_token_response_is_reset() {
    let mut ep = CoapEndpoint::new(cfg(), 9);
    let peer = SocketAddr::from(([192, 0, 2, 4], 5683));
    let now = Instant::now();
    ep.handle_datagram(now, peer, &hex("41450099 77"));
    assert_eq!(ep.poll_transmit().map(|t| t.bytes), Some(hex("70000099")));
    assert!(ep.poll_event().is_none());
}

#[test]
fn response_with_unknown_critical_option_is_rejected() {
    let mut ep = CoapEndpoint::new(cfg(), 9);
    let peer = SocketAddr::from(([192, 0, 2, 4], 5683));
    let now = Instant::now();
    let id = ep.request(now, peer, Request::get());
    let req = Message::decode(&ep.poll_transmit().expect("sent").bytes).expect("valid");
    let mut resp = Message::new(MessageType::Confirmable, Code::CONTENT, 5, req.token);
    resp.options.push(2049, vec![1]);
    ep.handle_datagram(now, peer, &resp.encode().expect("encodes"));
    assert_eq!(ep.poll_transmit().map(|t| t.bytes), Some(hex("70000005")));
    assert!(
        matches!(ep.poll_event(), Some(Event::RequestFailed { id: i, reason: FailureReason::ResponseRejected { option: 2049 } }) if i == id)
    );
}

#[test]
fn overload_answers_5_03_and_expires_pending() {
    let mut ep = CoapEndpoint::new(
        CoapConfig {
            max_pending_requests: 2,
            ..cfg()
        },
        1,
    );
    let peer = SocketAddr::from(([192, 0, 2, 1], 5683));
    let now = Instant::now();
    for mid in 0..3u16 {
        let m = Message::new(MessageType::Confirmable, Code::GET, mid, Token::EMPTY);
        ep.handle_datagram(now, peer, &m.encode().expect("encodes"));
    }
    let codes: Vec<Code> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Message::decode(&t.bytes).expect("valid").code)
        .collect();
    assert_eq!(codes, vec![Code::SERVICE_UNAVAILABLE]);
    let responders: Vec<Responder> = std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            Event::Request { responder, .. } => Some(responder),
            _ => None,
        })
        .collect();
    assert_eq!(responders.len(), 2);
    ep.handle_timeout(now + Duration::from_secs(248));
    assert_eq!(ep.stats().pending_requests, 0);
    let late = responders.into_iter().next().expect("one");
    assert_eq!(
        ep.respond(now, late, Response::new(Code::CONTENT)),
        Err(RespondError::Expired)
    );
}

#[test]
fn respond_rejects_request_codes() {
    let mut ep = CoapEndpoint::new(cfg(), 1);
    let peer = SocketAddr::from(([192, 0, 2, 1], 5683));
    let now = Instant::now();
    ep.handle_datagram(now, peer, &hex("40010001"));
    let Some(Event::Request { responder, .. }) = ep.poll_event() else {
        panic!("request expected")
    };
    let r = ep.respond(now, responder, Response::new(Code::GET));
    assert_eq!(r, Err(RespondError::NotAResponseCode(Code::GET)));
}

#[test]
fn fetch_method_round_trip() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 23);
    let (mut app, seen) = echo_app(|r| r.payload.clone());
    let req = Request::new(Method::Fetch).with_payload(b"q".to_vec());
    sim.client.request(sim.now, sim.server_addr, req);
    assert!(
        sim.run(Duration::from_secs(10), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert_eq!(seen.borrow()[0].method, Method::Fetch);
    assert_eq!(responses(&sim.client_events)[0].1.payload, b"q");
}

#[test]
fn non_confirmable_request_and_response() {
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 30);
    let (mut app, seen) = echo_app(|_| b"n".to_vec());
    let id = sim
        .client
        .request(sim.now, sim.server_addr, Request::get().non_confirmable());
    assert!(
        sim.run(Duration::from_secs(10), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert_eq!(responses(&sim.client_events)[0].0, id);
    assert!(!seen.borrow()[0].confirmable);
    let c = sim.sent_by(Side::Client);
    let s = sim.sent_by(Side::Server);
    assert_eq!((c.len(), s.len()), (1, 1));
    assert_eq!(c[0].mtype, MessageType::NonConfirmable);
    // RFC 7252 §5.2.3: a NON request gets a NON response with the same token.
    assert_eq!(s[0].mtype, MessageType::NonConfirmable);
    assert_eq!(s[0].token, c[0].token);
}

#[test]
fn non_confirmable_request_without_response_times_out() {
    let mut link = LinkConfig::perfect();
    link.drop = 1.0;
    let mut sim = Sim::new(cfg(), cfg(), link, 31);
    let (mut app, _) = echo_app(|_| Vec::new());
    sim.client
        .request(sim.now, sim.server_addr, Request::get().non_confirmable());
    assert!(
        sim.run(Duration::from_secs(300), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let (at, e) = &sim.client_events[0];
    assert!(matches!(
        e,
        Event::RequestFailed {
            reason: FailureReason::Timeout,
            ..
        }
    ));
    assert_eq!(*at - sim.start, Duration::from_secs(93)); // non_response_timeout
    assert_eq!(sim.sent_by(Side::Client).len(), 1); // never retransmitted
}

#[test]
fn cancel_stops_retransmission_and_frees_the_slot() {
    let mut link = LinkConfig::perfect();
    link.drop_indices = [0].into_iter().collect();
    let mut sim = Sim::new(cfg(), cfg(), link, 32);
    let (mut app, seen) = echo_app(|r| r.path().concat().into_bytes());
    let first = sim
        .client
        .request(sim.now, sim.server_addr, Request::get().with_path(["a"]));
    let second = sim
        .client
        .request(sim.now, sim.server_addr, Request::get().with_path(["b"]));
    sim.advance(Duration::from_millis(500), &mut app);
    let now = sim.now;
    assert!(sim.client.cancel(now, first));
    assert!(!sim.client.cancel(now, first));
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    assert_eq!((got[0].0, got[0].1.payload.as_slice()), (second, &b"b"[..]));
    sim.run_idle(Duration::from_secs(300), &mut app);
    // The cancelled request was sent once (and lost), never retransmitted.
    let paths: Vec<Vec<String>> = seen.borrow().iter().map(|r| r.path()).collect();
    assert_eq!(paths, vec![vec!["b".to_owned()]]);
    assert_eq!(sim.sent_by(Side::Client).len(), 2);
}
