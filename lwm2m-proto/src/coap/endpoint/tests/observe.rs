//! Observe (RFC 7641): registration, notification ordering, cancellation, block-wise
//! notifications, observers that go away.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;
use crate::coap::option::BlockOption;
use crate::coap::testing::{LinkConfig, Side, Sim};

/// An observable resource: registers observers and lets the test notify them.
#[derive(Default)]
struct Observed {
    observers: Vec<(SocketAddr, Token)>,
    requests: Vec<Request>,
}

fn observe_app(state: Rc<RefCell<Observed>>) -> impl FnMut(&mut CoapEndpoint, Instant, Event) {
    move |ep, now, e| match e {
        Event::Request {
            peer,
            request,
            responder,
        } => {
            let mut r = Response::new(Code::CONTENT).with_payload(b"v0".to_vec());
            if request.observe() == Some(0) {
                state.borrow_mut().observers.push((peer, responder.token()));
                r = r.with_observe(1);
            } else {
                state
                    .borrow_mut()
                    .observers
                    .retain(|o| *o != (peer, responder.token()));
            }
            state.borrow_mut().requests.push(request);
            ep.respond(now, responder, r).expect("pending");
        }
        Event::ObserverGone { peer, token, .. } => {
            state.borrow_mut().observers.retain(|o| *o != (peer, token));
        }
        _ => {}
    }
}

fn notifications(events: &[(Instant, Event)]) -> Vec<(u32, Vec<u8>)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Notification { seq, response, .. } => Some((*seq, response.payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn observe_delivers_fresh_notifications_in_order_over_a_reordering_link() {
    let state: Rc<RefCell<Observed>> = Rc::default();
    let mut app = observe_app(state.clone());
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::lossy(0.05, 0.2, 0.4), 19);
    let id = sim.client.request(
        sim.now,
        sim.server_addr,
        Request::get().with_path(["3", "0", "9"]).with_observe(0),
    );
    assert!(sim.run(Duration::from_secs(60), &mut app, &|ev| {
        !responses(ev).is_empty()
    }));
    assert_eq!(responses(&sim.client_events)[0].1.observe(), Some(1));
    let (peer, token) = state.borrow().observers[0];
    for i in 2..40u32 {
        let now = sim.now;
        let r = Response::new(Code::CONTENT)
            .with_observe(i)
            .with_payload(i.to_be_bytes().to_vec());
        sim.server
            .notify(now, peer, token, r, i % 3 == 0)
            .expect("notify");
        sim.advance(Duration::from_millis(3), &mut app); // faster than the link delay: overtaking
    }
    sim.run_idle(Duration::from_secs(300), &mut app);
    let seqs: Vec<u32> = notifications(&sim.client_events)
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert!(seqs.len() >= 20, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "not increasing: {seqs:?}"
    );
    assert!(sim.client.stats().exchanges == 1);
    assert!(
        sim.client_events
            .iter()
            .all(|(_, e)| !matches!(e, Event::RequestFailed { .. }))
    );
    let _ = id;
}

#[test]
fn observe_reordering_window_and_128_second_rule() {
    let mut ep = CoapEndpoint::new(cfg(), 5);
    let server = SocketAddr::from(([192, 0, 2, 7], 5683));
    let t0 = Instant::now();
    let id = ep.request(t0, server, Request::get().with_observe(0));
    let req = Message::decode(&ep.poll_transmit().expect("sent").bytes).expect("valid");
    let mut mid = 100u16;
    let mut notify = |ep: &mut CoapEndpoint, at: Instant, seq: u32, mtype: MessageType| {
        mid += 1;
        let mut m = Message::new(mtype, Code::CONTENT, mid, req.token);
        m.options.set_observe(seq);
        m.payload = seq.to_be_bytes().to_vec();
        ep.handle_datagram(at, server, &m.encode().expect("encodes"));
        mid
    };
    // Piggybacked first response with Observe 10 establishes the observation.
    let mut ack = Message::new(
        MessageType::Acknowledgement,
        Code::CONTENT,
        req.message_id,
        req.token,
    );
    ack.options.set_observe(10);
    ep.handle_datagram(t0, server, &ack.encode().expect("encodes"));
    assert!(matches!(ep.poll_event(), Some(Event::Response { id: i, .. }) if i == id));
    notify(&mut ep, t0, 12, MessageType::NonConfirmable);
    notify(&mut ep, t0, 11, MessageType::NonConfirmable); // older: dropped
    let con_mid = notify(&mut ep, t0, 9, MessageType::Confirmable); // older, but still ACKed
    notify(&mut ep, t0, 0xFF_FFF0, MessageType::NonConfirmable); // 2^23 away: older
    notify(
        &mut ep,
        t0 + Duration::from_secs(129),
        5,
        MessageType::NonConfirmable,
    ); // 128-s rule
    notify(
        &mut ep,
        t0 + Duration::from_secs(129),
        5 + (1 << 22),
        MessageType::NonConfirmable,
    );
    let seqs: Vec<u32> = std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            Event::Notification { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![12, 5, 5 + (1 << 22)]);
    let acks: Vec<Message> = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Message::decode(&t.bytes).expect("valid"))
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].mtype, acks[0].message_id),
        (MessageType::Acknowledgement, con_mid)
    );
    // A response without Observe ends the observation.
    mid += 1;
    let end = Message::new(MessageType::NonConfirmable, Code::NOT_FOUND, mid, req.token);
    ep.handle_datagram(
        t0 + Duration::from_secs(130),
        server,
        &end.encode().expect("encodes"),
    );
    assert!(
        matches!(ep.poll_event(), Some(Event::ObservationEnded { id: i, response: Some(r) }) if i == id && r.code == Code::NOT_FOUND)
    );
    assert_eq!(ep.stats().exchanges, 0);
}

#[test]
fn reactive_cancel_resets_the_next_notification() {
    let state: Rc<RefCell<Observed>> = Rc::default();
    let mut app = observe_app(state.clone());
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 20);
    let id = sim
        .client
        .request(sim.now, sim.server_addr, Request::get().with_observe(0));
    assert!(sim.run(Duration::from_secs(10), &mut app, &|ev| {
        !responses(ev).is_empty()
    }));
    let (peer, token) = state.borrow().observers[0];
    let now = sim.now;
    assert!(sim.client.cancel_observe(now, id, CancelMode::Reactive));
    sim.server
        .notify(now, peer, token, Response::new(Code::CONTENT), false)
        .expect("notify");
    sim.run_idle(Duration::from_secs(10), &mut app);
    // The client answered the NON notification with RST; the server dropped the observer.
    let last = sim.sent_by(Side::Client).pop().expect("rst");
    assert_eq!(last.mtype, MessageType::Reset);
    assert!(state.borrow().observers.is_empty());
    assert!(notifications(&sim.client_events).is_empty());
}

#[test]
fn proactive_cancel_sends_get_with_observe_1() {
    let state: Rc<RefCell<Observed>> = Rc::default();
    let mut app = observe_app(state.clone());
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 21);
    let path = ["3303", "0", "5700"];
    let id = sim.client.request(
        sim.now,
        sim.server_addr,
        Request::get().with_path(path).with_observe(0),
    );
    assert!(sim.run(Duration::from_secs(10), &mut app, &|ev| {
        !responses(ev).is_empty()
    }));
    let (peer, token) = state.borrow().observers[0];
    let now = sim.now;
    sim.server
        .notify(
            now,
            peer,
            token,
            Response::new(Code::CONTENT).with_payload(b"21.5".to_vec()),
            true,
        )
        .expect("notify");
    sim.run_idle(Duration::from_secs(10), &mut app);
    assert_eq!(notifications(&sim.client_events).len(), 1);
    let now = sim.now;
    assert!(sim.client.cancel_observe(now, id, CancelMode::Proactive));
    assert!(sim.run(Duration::from_secs(10), &mut app, &|ev| {
        ev.iter()
            .any(|(_, e)| matches!(e, Event::ObservationEnded { .. }))
    }));
    let st = state.borrow();
    assert_eq!(st.requests.len(), 2);
    assert_eq!(st.requests[1].observe(), Some(1));
    assert_eq!(st.requests[1].path(), path);
    assert!(st.observers.is_empty());
    let cancel = sim
        .sent_by(Side::Client)
        .into_iter()
        .rev()
        .find(|m| m.code == Code::GET)
        .expect("GET");
    assert_eq!(cancel.token, token);
    assert_eq!(sim.client.stats().exchanges, 0);
}

#[test]
fn blockwise_notification_is_fetched_and_delivered_whole() {
    let state: Rc<RefCell<Observed>> = Rc::default();
    let mut app = observe_app(state.clone());
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 22);
    sim.client.request(
        sim.now,
        sim.server_addr,
        Request::get().with_path(["3", "0"]).with_observe(0),
    );
    assert!(sim.run(Duration::from_secs(10), &mut app, &|ev| {
        !responses(ev).is_empty()
    }));
    let (peer, token) = state.borrow().observers[0];
    let big = body_of(3000);
    let now = sim.now;
    sim.server
        .notify(
            now,
            peer,
            token,
            Response::new(Code::CONTENT).with_payload(big.clone()),
            false,
        )
        .expect("notify");
    sim.run_idle(Duration::from_secs(30), &mut app);
    let n = notifications(&sim.client_events);
    assert_eq!(n.len(), 1);
    assert!(n[0].1 == big);
    // The follow-ups were GETs without Observe, served from the server's cache.
    assert_eq!(state.borrow().requests.len(), 1);
    let follow_ups: Vec<Message> = sim
        .sent_by(Side::Client)
        .into_iter()
        .filter(|m| m.options.block2().is_some())
        .collect();
    assert_eq!(follow_ups.len(), 2);
    assert!(
        follow_ups
            .iter()
            .all(|m| m.options.observe().is_none() && m.code == Code::GET)
    );
}

#[test]
fn confirmable_notification_without_ack_drops_the_observer() {
    let mut ep = CoapEndpoint::new(cfg(), 3);
    let client = SocketAddr::from(([192, 0, 2, 5], 40000));
    let t0 = Instant::now();
    let token = Token::new(&[1, 2]).expect("2 bytes");
    ep.notify(t0, client, token, Response::new(Code::CONTENT), true)
        .expect("notify");
    let mut now = t0;
    let mut sent = std::iter::from_fn(|| ep.poll_transmit()).count();
    while let Some(at) = ep.poll_timeout() {
        now = at;
        ep.handle_timeout(now);
        sent += std::iter::from_fn(|| ep.poll_transmit()).count();
    }
    assert_eq!(sent, 5); // the notification and MAX_RETRANSMIT retransmissions
    assert!(
        matches!(ep.poll_event(), Some(Event::ObserverGone { token: t, reason: FailureReason::Timeout, .. }) if t == token)
    );
    assert!(now - t0 <= ep.config().max_transmit_wait());
}

#[test]
fn notification_block_fetch_with_separate_response() {
    let mut ep = CoapEndpoint::new(cfg(), 50);
    let server = SocketAddr::from(([192, 0, 2, 7], 5683));
    let t0 = Instant::now();
    let id = ep.request(
        t0,
        server,
        Request::get().with_path(["3", "0"]).with_observe(0),
    );
    let next = |ep: &mut CoapEndpoint| {
        Message::decode(&ep.poll_transmit().expect("sent").bytes).expect("valid")
    };
    let req = next(&mut ep);
    let mut ack = Message::new(
        MessageType::Acknowledgement,
        Code::CONTENT,
        req.message_id,
        req.token,
    );
    ack.options.set_observe(1);
    ep.handle_datagram(t0, server, &ack.encode().expect("encodes"));
    assert!(matches!(ep.poll_event(), Some(Event::Response { .. })));
    // A NON notification whose body needs a second block.
    let mut n = Message::new(MessageType::NonConfirmable, Code::CONTENT, 500, req.token);
    n.options.set_observe(2);
    n.options.set_block2(BlockOption {
        num: 0,
        more: true,
        szx: 0,
    });
    n.payload = vec![1; 16];
    ep.handle_datagram(t0, server, &n.encode().expect("encodes"));
    let fetch = next(&mut ep);
    assert_eq!((fetch.code, fetch.options.observe()), (Code::GET, None));
    assert_eq!(
        fetch.options.block2(),
        Some(Ok(BlockOption {
            num: 1,
            more: false,
            szx: 0
        }))
    );
    // The server acknowledges first and answers separately (RFC 7252 §5.2.2).
    ep.handle_datagram(
        t0,
        server,
        &Message::empty_ack(fetch.message_id)
            .encode()
            .expect("encodes"),
    );
    let mut rest = Message::new(MessageType::Confirmable, Code::CONTENT, 501, req.token);
    rest.options.set_block2(BlockOption {
        num: 1,
        more: false,
        szx: 0,
    });
    rest.payload = vec![2; 5];
    ep.handle_datagram(t0, server, &rest.encode().expect("encodes"));
    let ack_of_rest = next(&mut ep);
    assert_eq!(
        (ack_of_rest.mtype, ack_of_rest.message_id),
        (MessageType::Acknowledgement, 501)
    );
    match ep.poll_event() {
        Some(Event::Notification {
            id: got,
            response,
            seq,
        }) => {
            assert_eq!((got, seq), (id, 2));
            assert_eq!(response.payload, [vec![1; 16], vec![2; 5]].concat());
        }
        other => panic!("expected the whole notification, got {other:?}"),
    }
    assert_eq!(ep.stats().exchanges, 1);
}
