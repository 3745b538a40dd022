//! Malformed and hostile input: the RFC 7252 answer table and the memory bounds under arbitrary
//! datagrams (proptest).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::coap::message::hex;
use crate::coap::option::BlockOption;

/// What the endpoint must send back for a raw datagram (RFC 7252 §3, §4.2, §4.3, §5.4.1, §5.8).
#[test]
fn malformed_datagram_table() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("truncated header", "4001", None),
        ("version 2", "80011234", None),
        ("version 0", "00011234", None),
        (
            "CON token length 9",
            "49011234 010203040506070809",
            Some("70001234"),
        ),
        ("CON token length 15", "4f011234", Some("70001234")),
        ("NON token length 9", "59011234 010203040506070809", None),
        ("token past the end", "44011234 aa", Some("70001234")),
        (
            "CON option delta 15, no payload marker",
            "40011234 f1 00",
            Some("70001234"),
        ),
        ("CON option length 15", "40011234 bf", Some("70001234")),
        ("NON option delta 15", "50011234 f1 00", None),
        (
            "CON option length past the end",
            "40011234 b5 6162",
            Some("70001234"),
        ),
        (
            "CON payload marker without payload",
            "40011234 ff",
            Some("70001234"),
        ),
        ("NON payload marker without payload", "50011234 ff", None),
        ("ACK with payload marker only", "60451234 ff", None),
        (
            "CON empty message with token (§4.1)",
            "41001234 aa",
            Some("70001234"),
        ),
        ("CON reserved class 7", "40e01234", Some("70001234")),
        ("CON ping (§4.3)", "40001234", Some("70001234")),
        ("NON empty", "50001234", None),
        ("unmatched ACK", "60001234", None),
        ("unmatched RST", "70001234", None),
        // Unknown critical option 9 (OSCORE) in a CON GET: piggybacked 4.02, token echoed.
        (
            "CON unknown critical option",
            "41011234 aa 90",
            // … with the diagnostic payload "unsupported critical option 9" (§5.5.2).
            Some("6182 1234 aa ff 756e737570706f7274656420637269746963616c206f7074696f6e2039"),
        ),
        // The same as NON is rejected (§5.4.1 → §4.3): silence.
        ("NON unknown critical option", "51011234 aa 90", None),
        // Uri-Host repeated (not repeatable, §5.4.5) is treated as unrecognised.
        (
            "CON repeated Uri-Host",
            "40011234 3161 0161",
            Some("60821234"),
        ),
        // Block2 with SZX 7.
        ("CON Block2 SZX 7", "40011234 d10a07", Some("60821234")),
        ("CON unknown method 0.08", "40081234", Some("60851234")),
    ];
    for (name, input, expected) in cases {
        let mut ep = CoapEndpoint::new(cfg(), 1);
        let peer = SocketAddr::from(([192, 0, 2, 1], 5683));
        ep.handle_datagram(Instant::now(), peer, &hex(input));
        let out = ep.poll_transmit().map(|t| t.bytes);
        match expected {
            None => assert_eq!(out, None, "{name}"),
            Some(e) => {
                let e = hex(e);
                let out = out.unwrap_or_else(|| panic!("{name}: no reply"));
                assert_eq!(out.get(..e.len()), Some(&e[..]), "{name}");
            }
        }
        assert!(ep.poll_transmit().is_none(), "{name}: one reply at most");
        assert!(
            ep.poll_event().is_none(),
            "{name}: nothing for the application"
        );
    }
}

mod bounds {
    use super::*;
    use proptest::prelude::*;

    fn small() -> CoapConfig {
        CoapConfig {
            max_dedup_entries: 16,
            max_pending_requests: 4,
            max_block1_assemblies: 2,
            max_block1_bytes: 256,
            max_block2_cache_entries: 2,
            max_block2_cache_bytes: 4096,
            max_peer_states: 4,
            block_szx: 0,
            ..CoapConfig::default()
        }
    }

    /// A plausible datagram: a valid header and random rest, or a mutated valid request.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (
                0u8..4,
                0u8..9,
                any::<u8>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..48)
            )
                .prop_map(|(t, tkl, code, mid, rest)| {
                    let mut b = vec![
                        0x40 | (t << 4) | tkl,
                        (code % 0x20) | (code & 0x80),
                        (mid >> 8) as u8,
                        mid as u8,
                    ];
                    b.extend(rest);
                    b
                }),
            (
                any::<u16>(),
                0u32..8,
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(mid, num, more, payload)| {
                    let mut m =
                        Message::new(MessageType::Confirmable, Code::PUT, mid, Token::EMPTY);
                    m.options.set_uri_path(["b"]);
                    m.options.set_block1(BlockOption { num, more, szx: 0 });
                    m.payload = payload;
                    m.encode().unwrap_or_default()
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_datagrams_never_panic_or_exceed_bounds(
            inputs in proptest::collection::vec((0u8..6, datagram(), 0u64..5000), 1..120)
        ) {
            let config = small();
            let mut ep = CoapEndpoint::new(config.clone(), 77);
            let mut now = Instant::now();
            for (peer, bytes, advance_ms) in inputs {
                now += Duration::from_millis(advance_ms);
                let addr = SocketAddr::from(([192, 0, 2, peer], 5683));
                ep.handle_datagram(now, addr, &bytes);
                ep.handle_timeout(now);
                while ep.poll_transmit().is_some() {}
                // Answer some requests with large bodies so the Block2 cache is exercised.
                while let Some(e) = ep.poll_event() {
                    if let Event::Request { responder, .. } = e
                        && bytes.len() % 2 == 0
                    {
                        let _ = ep.respond(now, responder, Response::new(Code::CONTENT).with_payload(vec![0; 100]));
                    }
                }
                let s = ep.stats();
                prop_assert!(s.dedup_entries <= config.max_dedup_entries);
                prop_assert!(s.pending_requests <= config.max_pending_requests);
                prop_assert!(s.block1_assemblies <= config.max_block1_assemblies);
                prop_assert!(s.block1_bytes <= config.max_block1_bytes);
                prop_assert!(s.block2_cache_entries <= config.max_block2_cache_entries);
                prop_assert!(s.block2_cache_bytes <= config.max_block2_cache_bytes);
                prop_assert!(s.peer_states <= config.max_peer_states);
                prop_assert_eq!(s.exchanges, 0);
                // Every timer belongs to a pending request (two each) or a sent message.
                prop_assert!(s.timers <= 2 * s.pending_requests + s.sent_messages);
            }
        }
    }
}
