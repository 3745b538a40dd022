//! What an idle registered client costs: the state left after registration (no exchanges, no
//! timers but the Update), its inline size, and (ignored by default, run alone) the resident
//! memory of 10,000 registered meters.

use std::time::Duration;

use super::*;
use crate::coap::MessageType;

#[test]
fn idle_registered_client_keeps_no_exchange_state() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1).with_lifetime(86_400));
    h.register();
    // Past EXCHANGE_LIFETIME (247 s) every deduplication record and sent message is gone, and
    // the client swaps its endpoint for a fresh one.
    h.advance(Duration::from_secs(300));
    let stats = h.client.coap_stats();
    assert_eq!(stats.exchanges, 0);
    assert_eq!(stats.pending_requests, 0);
    assert_eq!(stats.sent_messages, 0);
    assert_eq!(stats.timers, 0);
    assert_eq!(stats.queued_outputs, 0);
    assert_eq!(stats.observations, 0);
    // The endpoint was replaced by a fresh one once idle (no per-peer state yet).
    assert_eq!(stats.peer_states, 0);
    assert_eq!(stats.dedup_entries, 0);
    // Only the automatic Update is scheduled. The client still answers and updates.
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.start + Duration::from_secs(77_760))
    );
    let r = h.request(get("/3/0/9"));
    assert_eq!(r.code, Code::CONTENT);
    h.until_request(Duration::from_secs(86_400))
        .expect("the Update");
    h.answer(Response::new(Code::CHANGED));
    assert_eq!(h.take_events(), [ClientEvent::Updated]);
    // 1280 before client-initiated bootstrap; its state (request, deadline, outcomes) adds 40.
    let inline = std::mem::size_of::<Lwm2mClient<MemoryObjectStore>>();
    assert!(
        inline <= 1320,
        "Lwm2mClient<MemoryObjectStore> is {inline} bytes inline"
    );
}

/// Resident set size in bytes (Linux), for the measurement below.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Answers a Register datagram the way a server would: a piggybacked 2.01 with a location.
fn created_ack(register: &[u8], location: &str) -> Vec<u8> {
    let request = Message::decode(register).unwrap();
    let mut ack = Message::new(
        MessageType::Acknowledgement,
        Code::CREATED,
        request.message_id,
        request.token,
    );
    ack.options.set_location_path(["rd", location]);
    ack.encode().unwrap()
}

/// Run alone: `cargo test -p lwm2m-proto memory_of_10k -- --ignored --nocapture
/// --test-threads=1` (other tests in the same process disturb the resident-size reading).
#[test]
#[ignore = "measures process memory; run alone with --test-threads=1"]
fn memory_of_10k_registered_meters() {
    const N: usize = 10_000;
    let Some(base) = resident_bytes() else {
        return; // not Linux
    };
    let stores: Vec<MemoryObjectStore> = (0..N).map(|_| meter_store()).collect();
    let with_stores = resident_bytes().unwrap();
    let now = Instant::now();
    let mut clients: Vec<Lwm2mClient<MemoryObjectStore>> = Vec::with_capacity(N);
    for (i, store) in stores.into_iter().enumerate() {
        let config = ClientConfig::new(format!("meter-{i:05}"), Lwm2mVersion::V1_1);
        let mut client = Lwm2mClient::new(config, store, i as u64);
        client.register(now).unwrap();
        let register = client.poll_transmit().unwrap();
        client.handle_datagram(now, &created_ack(&register, &format!("{i:x}")));
        assert!(client.location().is_some());
        // Idle: past EXCHANGE_LIFETIME the deduplication state has expired.
        client.handle_timeout(now + Duration::from_secs(300));
        clients.push(client);
    }
    let with_clients = resident_bytes().unwrap();
    let store_bytes = (with_stores - base) / N;
    let client_bytes = (with_clients - with_stores) / N;
    println!(
        "per meter: store {store_bytes} B, client without store {client_bytes} B, total {} B \
         (inline size {} B)",
        store_bytes + client_bytes,
        std::mem::size_of::<Lwm2mClient<MemoryObjectStore>>()
    );
    assert!(
        store_bytes + client_bytes < 16 * 1024,
        "an idle meter costs {} bytes",
        store_bytes + client_bytes
    );
    drop(clients);
}

/// A server request datagram: `method` on `path`, with a message ID and token of its own.
fn request_datagram(code: Code, path: &str, mid: u16, accept: Option<u16>) -> Vec<u8> {
    let token = crate::coap::Token::new(&mid.to_be_bytes()).unwrap();
    let mut m = Message::new(MessageType::Confirmable, code, mid, token);
    let path: lwm2m_objects::Path = path.parse().unwrap();
    m.options.set_uri_path(path.segments());
    if let Some(cf) = accept {
        m.options.set_accept(crate::coap::ContentFormat(cf));
    }
    m.encode().unwrap()
}

/// CPU per operation on the client side (decode the request, answer from the store, encode the
/// response). Run in release: `cargo test -p lwm2m-proto --release cpu_per_operation --
/// --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn cpu_per_operation() {
    const N: u16 = 20_000;
    let now = Instant::now();
    let mut client = Lwm2mClient::new(config(Lwm2mVersion::V1_1), meter_store(), 1);
    client.register(now).unwrap();
    let register = client.poll_transmit().unwrap();
    client.handle_datagram(now, &created_ack(&register, "1"));
    for (label, path, accept) in [
        ("read /3/0/9 text", "/3/0/9", Some(0)),
        ("read /3/0 SenML CBOR", "/3/0", None),
        ("read /3/0 TLV", "/3/0", Some(11542)),
    ] {
        let datagrams: Vec<Vec<u8>> = (0..N)
            .map(|mid| request_datagram(Code::GET, path, mid, accept))
            .collect();
        let started = std::time::Instant::now();
        for d in &datagrams {
            client.handle_datagram(now, d);
            let answer = client.poll_transmit().unwrap();
            assert!(answer.len() > 4);
        }
        let per_op = started.elapsed() / u32::from(N);
        println!("{label}: {per_op:?} per request");
        // Loose bound so the test asserts something even in debug builds.
        assert!(per_op < Duration::from_millis(5));
    }
}
