//! Block-wise transfers (RFC 7959) in both directions, including block numbers past 4095.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;
use crate::coap::option::{self, BlockOption, ContentFormat};
use crate::coap::testing::{LinkConfig, Side, Sim};

/// Answers requests for `/fw` with `body`, block-wise as the endpoint decides.
fn big_body_app(body: Vec<u8>) -> impl FnMut(&mut CoapEndpoint, Instant, Event) {
    move |ep, now, e| {
        if let Event::Request { responder, .. } = e {
            let r = Response::new(Code::CONTENT)
                .with_content_format(ContentFormat::OCTET_STREAM)
                .with_payload(body.clone());
            ep.respond(now, responder, r).expect("pending");
        }
    }
}

#[test]
fn block2_download_past_block_4095() {
    // 2 MiB + 1000 bytes at 512-byte blocks: 4098 blocks, NUM up to 4097 (coap-lite's 12-bit NUM
    // would wrap at 4096).
    let body = body_of(2 * 1024 * 1024 + 1000);
    let mut small = cfg();
    small.block_szx = 5;
    let mut sim = Sim::new(
        small.clone(),
        small,
        LinkConfig::lossy(0.01, 0.01, 0.01),
        13,
    );
    let mut app = big_body_app(body.clone());
    let id = sim
        .client
        .request(sim.now, sim.server_addr, Request::get().with_path(["fw"]));
    assert!(
        sim.run(Duration::from_secs(36_000), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        sim.client_events.first().map(|e| format!("{:?}", e.1))
    );
    assert_eq!(got[0].0, id);
    assert_eq!(got[0].1.payload.len(), body.len());
    assert!(got[0].1.payload == body);
    assert_eq!(got[0].1.content_format(), Some(ContentFormat::OCTET_STREAM));
    assert!(got[0].1.options.get(option::BLOCK2).is_none());
    let max_num = sim
        .sent_by(Side::Server)
        .iter()
        .filter_map(|m| m.options.block2().and_then(Result::ok))
        .map(|b| b.num)
        .max();
    assert_eq!(max_num, Some(4097));
    // Served from the cache: the application was asked once; the cache is empty afterwards.
    assert_eq!(sim.server.stats().block2_cache_entries, 0);
}

#[test]
fn block1_upload_past_block_4095() {
    let body = body_of(2 * 1024 * 1024 + 1000);
    let mut small = cfg();
    small.block_szx = 5;
    let mut sim = Sim::new(
        small.clone(),
        small,
        LinkConfig::lossy(0.01, 0.01, 0.01),
        14,
    );
    let seen: Rc<RefCell<Vec<Request>>> = Rc::default();
    let log = seen.clone();
    let mut app = move |ep: &mut CoapEndpoint, now: Instant, e: Event| {
        if let Event::Request {
            request, responder, ..
        } = e
        {
            log.borrow_mut().push(request);
            ep.respond(now, responder, Response::new(Code::CHANGED))
                .expect("pending");
        }
    };
    let req = Request::put()
        .with_path(["5", "0", "0"])
        .with_content_format(ContentFormat::OCTET_STREAM)
        .with_payload(body.clone());
    sim.client.request(sim.now, sim.server_addr, req);
    assert!(
        sim.run(Duration::from_secs(36_000), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.code, Code::CHANGED);
    // The application saw one request with the whole body and no transfer options.
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].payload == body);
    assert_eq!(seen[0].path(), vec!["5", "0", "0"]);
    assert!(seen[0].options.get(option::BLOCK1).is_none());
    let nums: Vec<BlockOption> = sim
        .sent_by(Side::Client)
        .iter()
        .filter_map(|m| m.options.block1().and_then(Result::ok))
        .collect();
    assert_eq!(nums.iter().map(|b| b.num).max(), Some(4097));
    // 2.31 Continue for every block but the last, whose response echoes Block1 with M = 0.
    let server: Vec<Message> = sim.sent_by(Side::Server);
    assert!(server.iter().filter(|m| m.code == Code::CONTINUE).count() >= 4097);
    let last = server
        .iter()
        .rev()
        .find(|m| m.code == Code::CHANGED)
        .expect("final");
    assert_eq!(
        last.options.block1(),
        Some(Ok(BlockOption {
            num: 4097,
            more: false,
            szx: 5
        }))
    );
    assert_eq!(sim.server.stats().block1_assemblies, 0);
}

#[test]
fn block1_server_asks_for_smaller_blocks() {
    // Late negotiation (RFC 7959 §2.5): client sends 1024-byte blocks, server wants 256.
    let mut s = cfg();
    s.block_szx = 4;
    let mut sim = Sim::new(cfg(), s, LinkConfig::perfect(), 15);
    let body = body_of(5000);
    let seen: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let log = seen.clone();
    let mut app = move |ep: &mut CoapEndpoint, now: Instant, e: Event| {
        if let Event::Request {
            request, responder, ..
        } = e
        {
            log.borrow_mut().push(request.payload);
            ep.respond(now, responder, Response::new(Code::CHANGED))
                .expect("pending");
        }
    };
    sim.client.request(
        sim.now,
        sim.server_addr,
        Request::put().with_payload(body.clone()),
    );
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert_eq!(seen.borrow().as_slice(), &[body]);
    let blocks: Vec<BlockOption> = sim
        .sent_by(Side::Client)
        .iter()
        .filter_map(|m| m.options.block1().and_then(Result::ok))
        .collect();
    assert_eq!(
        blocks[0],
        BlockOption {
            num: 0,
            more: true,
            szx: 6
        }
    );
    // After the first 1024 bytes the client continues at 256-byte block 4.
    assert_eq!(
        blocks[1],
        BlockOption {
            num: 4,
            more: true,
            szx: 4
        }
    );
    assert_eq!(blocks.last().map(|b| b.more), Some(false));
}

#[test]
fn block1_too_large_is_refused_with_4_13() {
    let mut s = cfg();
    s.max_body_size = 4096;
    let mut sim = Sim::new(cfg(), s, LinkConfig::perfect(), 16);
    let (mut app, seen) = echo_app(|_| Vec::new());
    sim.client.request(
        sim.now,
        sim.server_addr,
        Request::put().with_payload(body_of(10_000)),
    );
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    assert_eq!(got[0].1.code, Code::REQUEST_ENTITY_TOO_LARGE);
    assert_eq!(got[0].1.options.get_uint(option::SIZE1), Some(4096));
    assert!(seen.borrow().is_empty());
    // Without Size1 the server notices while reassembling.
    let mut ep = CoapEndpoint::new(
        CoapConfig {
            max_body_size: 40,
            block_szx: 0,
            ..cfg()
        },
        1,
    );
    let peer = SocketAddr::from(([192, 0, 2, 3], 5683));
    let now = Instant::now();
    let mut replies = Vec::new();
    for num in 0..3u32 {
        let mut m = Message::new(
            MessageType::Confirmable,
            Code::PUT,
            num as u16,
            Token::EMPTY,
        );
        m.options.set_block1(BlockOption {
            num,
            more: true,
            szx: 0,
        });
        m.payload = vec![0; 16];
        ep.handle_datagram(now, peer, &m.encode().expect("encodes"));
        replies.push(
            Message::decode(&ep.poll_transmit().expect("reply").bytes)
                .expect("valid")
                .code,
        );
    }
    assert_eq!(
        replies,
        vec![
            Code::CONTINUE,
            Code::CONTINUE,
            Code::REQUEST_ENTITY_TOO_LARGE
        ]
    );
    assert_eq!(ep.stats().block1_assemblies, 0);
}

#[test]
fn block1_out_of_order_is_4_08() {
    let mut ep = CoapEndpoint::new(cfg(), 1);
    let peer = SocketAddr::from(([192, 0, 2, 3], 5683));
    let now = Instant::now();
    let mut send = |mid: u16, num: u32, more: bool| {
        let mut m = Message::new(MessageType::Confirmable, Code::POST, mid, Token::EMPTY);
        m.options.set_uri_path(["x"]);
        m.options.set_block1(BlockOption { num, more, szx: 0 });
        m.payload = vec![mid as u8; 16];
        ep.handle_datagram(now, peer, &m.encode().expect("encodes"));
        Message::decode(&ep.poll_transmit().expect("reply").bytes).expect("valid")
    };
    assert_eq!(send(1, 2, true).code, Code::REQUEST_ENTITY_INCOMPLETE); // no block 0 yet
    assert_eq!(send(2, 0, true).code, Code::CONTINUE);
    assert_eq!(send(3, 2, true).code, Code::REQUEST_ENTITY_INCOMPLETE); // skipped block 1
    let r = send(4, 1, true);
    assert_eq!(r.code, Code::CONTINUE);
    assert_eq!(
        r.options.block1(),
        Some(Ok(BlockOption {
            num: 1,
            more: true,
            szx: 0
        }))
    );
}

#[test]
fn block2_response_larger_than_the_limit_fails() {
    let mut c = cfg();
    c.max_body_size = 4096;
    let mut sim = Sim::new(c, cfg(), LinkConfig::perfect(), 17);
    let mut app = big_body_app(body_of(10_000));
    let id = sim.client.request(sim.now, sim.server_addr, Request::get());
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert!(matches!(
        &sim.client_events[0].1,
        Event::RequestFailed { id: i, reason: FailureReason::ResponseTooLarge { limit: 4096 } } if *i == id
    ));
}

#[test]
fn block1_upload_with_block2_response() {
    // A POST with a large body whose answer is large too (RFC 7959 §2.7).
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::lossy(0.05, 0.05, 0.05), 18);
    let (mut app, seen) = echo_app(|r| r.payload.iter().rev().copied().collect());
    let body = body_of(6000);
    sim.client.request(
        sim.now,
        sim.server_addr,
        Request::post().with_payload(body.clone()),
    );
    assert!(
        sim.run(Duration::from_secs(600), &mut app, &|ev| count_final(ev)
            == 1)
    );
    let got = responses(&sim.client_events);
    let expected: Vec<u8> = body.iter().rev().copied().collect();
    assert_eq!(got[0].1.payload, expected);
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn block2_early_negotiation_uses_the_clients_block_size() {
    // RFC 7959 §2.4: the client may ask for small blocks in its first request.
    let mut sim = Sim::new(cfg(), cfg(), LinkConfig::perfect(), 40);
    let body = body_of(300);
    let mut app = big_body_app(body.clone());
    let mut req = Request::get().with_path(["fw"]);
    req.options.set_block2(BlockOption {
        num: 0,
        more: false,
        szx: 2,
    });
    sim.client.request(sim.now, sim.server_addr, req);
    assert!(
        sim.run(Duration::from_secs(60), &mut app, &|ev| count_final(ev)
            == 1)
    );
    assert_eq!(responses(&sim.client_events)[0].1.payload, body);
    let sizes: Vec<usize> = sim
        .sent_by(Side::Server)
        .iter()
        .map(|m| m.payload.len())
        .collect();
    assert_eq!(sizes, vec![64, 64, 64, 64, 44]);
    let first = &sim.sent_by(Side::Server)[0];
    assert_eq!(first.options.get_uint(option::SIZE2), Some(300));
    assert!(first.options.get(option::ETAG).is_some());
}

#[test]
fn block2_restarts_when_the_etag_changes() {
    let mut ep = CoapEndpoint::new(cfg(), 41);
    let server = SocketAddr::from(([192, 0, 2, 8], 5683));
    let now = Instant::now();
    let id = ep.request(now, server, Request::get().with_path(["r"]));
    let block = |req: &Message, num: u32, more: bool, etag: u8, fill: u8| {
        let mut m = Message::new(
            MessageType::Acknowledgement,
            Code::CONTENT,
            req.message_id,
            req.token,
        );
        m.options.set(option::ETAG, vec![etag]);
        m.options.set_block2(BlockOption { num, more, szx: 0 });
        m.payload = vec![fill; if more { 16 } else { 4 }];
        m.encode().expect("encodes")
    };
    let next = |ep: &mut CoapEndpoint| {
        Message::decode(&ep.poll_transmit().expect("sent").bytes).expect("valid")
    };
    let r0 = next(&mut ep);
    ep.handle_datagram(now, server, &block(&r0, 0, true, 1, 0xA));
    let r1 = next(&mut ep);
    assert_eq!(
        r1.options.block2(),
        Some(Ok(BlockOption {
            num: 1,
            more: false,
            szx: 0
        }))
    );
    // The representation changed (ETag 2): the client starts again from block 0.
    ep.handle_datagram(now, server, &block(&r1, 1, true, 2, 0xB));
    let again = next(&mut ep);
    assert_eq!(
        again.options.block2(),
        Some(Ok(BlockOption {
            num: 0,
            more: false,
            szx: 0
        }))
    );
    ep.handle_datagram(now, server, &block(&again, 0, true, 2, 0xC));
    let r2 = next(&mut ep);
    ep.handle_datagram(now, server, &block(&r2, 1, false, 2, 0xD));
    let Some(Event::Response { id: got, response }) = ep.poll_event() else {
        panic!("response expected")
    };
    assert_eq!(got, id);
    assert_eq!(response.payload, [vec![0xC; 16], vec![0xD; 4]].concat());
}

#[test]
fn block2_cache_miss_is_answered_by_slicing_the_applications_response() {
    let mut ep = CoapEndpoint::new(cfg(), 42);
    let peer = SocketAddr::from(([192, 0, 2, 8], 40000));
    let now = Instant::now();
    let mut m = Message::new(MessageType::Confirmable, Code::GET, 9, Token::EMPTY);
    m.options.set_block2(BlockOption {
        num: 2,
        more: false,
        szx: 0,
    });
    ep.handle_datagram(now, peer, &m.encode().expect("encodes"));
    let Some(Event::Request {
        responder, request, ..
    }) = ep.poll_event()
    else {
        panic!("request expected")
    };
    assert!(request.options.get(option::BLOCK2).is_none());
    ep.respond(
        now,
        responder,
        Response::new(Code::CONTENT).with_payload(body_of(100)),
    )
    .expect("pending");
    let reply = Message::decode(&ep.poll_transmit().expect("reply").bytes).expect("valid");
    assert_eq!(
        reply.options.block2(),
        Some(Ok(BlockOption {
            num: 2,
            more: true,
            szx: 0
        }))
    );
    assert_eq!(reply.payload, body_of(100)[32..48]);
}
