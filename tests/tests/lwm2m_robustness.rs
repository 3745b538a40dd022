//! Malformed input on the real sockets: raw CoAP datagrams that break RFC 7252's message format
//! (§3) or carry an unknown critical option (§5.4.1), an oversized datagram, and garbage on the DTLS
//! port. Each is answered as RFC 7252 asks (RST, 4.02) or dropped — and devices registered before
//! and after keep being served, which they would not be if a socket task had panicked.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation};
use server::lwm2m::{OpResult, Transport};
use tests::device::{DeviceSpec, Security, TestDevice};
use tests::harness::TestServer;
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(10);
/// How long to wait for an answer that may not come.
const QUIET: Duration = Duration::from_millis(400);

async fn read_battery(server: &TestServer, endpoint: &str) -> Value {
    match server
        .service()
        .request(endpoint, Operation::Read(Path::Resource(3, 0, 9)), WAIT)
        .await
        .unwrap()
    {
        OpResult::Done {
            outcome: OpOutcome::Content(Content::Node { node, .. }),
            ..
        } => node.flatten(&Path::Resource(3, 0, 9))[0].1.clone(),
        other => panic!("expected content, got {other:?}"),
    }
}

/// Sends `datagram` and returns the answer, if one comes within [`QUIET`].
async fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(datagram, to).await.unwrap();
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(QUIET, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

/// (type, code, message ID) of a CoAP answer (RFC 7252 §3).
fn header(answer: &[u8]) -> (u8, u8, u16) {
    assert!(answer.len() >= 4, "short answer {answer:02x?}");
    (
        (answer[0] >> 4) & 0b11,
        answer[1],
        u16::from_be_bytes([answer[2], answer[3]]),
    )
}

const RST: u8 = 3;
const ACK: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_coap_is_answered_or_dropped_and_service_goes_on() {
    let server = TestServer::start().await;
    server.create_nosec_device("meter-ok").await;
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-ok", Lwm2mVersion::V1_0, Security::NoSec),
        server.coap_addr(),
    )
    .await;
    device.register_and_wait().await;

    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = server.coap_addr();

    // Truncated header (RFC 7252 §3: 4 bytes minimum): silently ignored.
    assert_eq!(exchange(&raw, to, &[0x40, 0x01]).await, None);
    assert_eq!(exchange(&raw, to, &[]).await, None);

    // Format errors in a Confirmable message are rejected with RST (§4.2).
    let format_errors: [(&str, Vec<u8>); 4] = [
        // Option delta 15 without being the payload marker (§3.1).
        ("bad option delta", vec![0x40, 0x01, 0x12, 0x34, 0xF1, 0x00]),
        // Uri-Path with length 5 but 2 bytes left.
        (
            "option past the end",
            vec![0x40, 0x01, 0x12, 0x35, 0xB5, b'r', b'd'],
        ),
        // Payload marker followed by a zero-length payload (§3).
        ("marker without payload", vec![0x40, 0x02, 0x12, 0x36, 0xFF]),
        // Token length 9..15 is reserved (§3).
        (
            "reserved token length",
            vec![0x49, 0x01, 0x12, 0x37, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ),
    ];
    for (what, datagram) in format_errors {
        let mid = u16::from_be_bytes([datagram[2], datagram[3]]);
        let answer = exchange(&raw, to, &datagram)
            .await
            .unwrap_or_else(|| panic!("{what}: no RST"));
        assert_eq!(header(&answer), (RST, 0, mid), "{what}: {answer:02x?}");
    }

    // An unknown critical option (9 is unassigned and odd) in a CON request: 4.02 Bad Option.
    let critical = [0x40, 0x01, 0x12, 0x39, 0x91, 0x00];
    let answer = exchange(&raw, to, &critical).await.expect("an answer");
    let (ty, code, mid) = header(&answer);
    assert_eq!((ty, mid), (ACK, 0x1239), "{answer:02x?}");
    assert_eq!(code, 0x82, "4.02 Bad Option, got {answer:02x?}");

    // A Confirmable Empty message is a ping: RST (§4.3).
    let answer = exchange(&raw, to, &[0x40, 0x00, 0x12, 0x3A])
        .await
        .expect("an answer");
    assert_eq!(header(&answer), (RST, 0, 0x123A));

    // An ACK for nothing, a RST for nothing: ignored.
    assert_eq!(exchange(&raw, to, &[0x60, 0x45, 0x77, 0x77]).await, None);
    assert_eq!(exchange(&raw, to, &[0x70, 0x00, 0x77, 0x78]).await, None);

    // A well-formed Register without `ep` (TS Core 1.1 §6.2.1: mandatory) → 4.00.
    let register_without_ep = [0x40, 0x02, 0x12, 0x3B, 0xB2, b'r', b'd'];
    let answer = exchange(&raw, to, &register_without_ep)
        .await
        .expect("an answer");
    assert_eq!(header(&answer), (ACK, 0x80, 0x123B), "{answer:02x?}");

    // Oversized: dropped unread.
    let mut huge = vec![0x40, 0x02, 0x12, 0x3C, 0xFF];
    huge.resize(40_000, b'x');
    assert_eq!(exchange(&raw, to, &huge).await, None);

    // Still serving the registered device, and new ones.
    assert_eq!(read_battery(&server, "meter-ok").await, Value::Integer(87));
    server.create_nosec_device("meter-after").await;
    let mut after = TestDevice::start(
        DeviceSpec::new("meter-after", Lwm2mVersion::V1_1, Security::NoSec),
        server.coap_addr(),
    )
    .await;
    after.register_and_wait().await;
    assert_eq!(
        read_battery(&server, "meter-after").await,
        Value::Integer(87)
    );

    let stats = server.service().stats().await;
    let coap = stats
        .sockets
        .iter()
        .find(|s| s.transport == Some(Transport::Coap))
        .unwrap();
    assert!(coap.datagrams_oversized >= 1, "{coap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_dtls_port_is_dropped_and_service_goes_on() {
    let server = TestServer::start().await;
    let credentials = server.create_psk_device("meter-secure", true).await;
    let mut device = TestDevice::start(
        DeviceSpec::new(
            "meter-secure",
            Lwm2mVersion::V1_1,
            Security::Psk(credentials),
        ),
        server.coaps_addr(),
    )
    .await;
    device.register_and_wait().await;

    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = server.coaps_addr();
    let garbage: [(&str, Vec<u8>); 6] = [
        ("empty", vec![]),
        (
            "random bytes",
            (0u8..64).map(|i| i.wrapping_mul(37)).collect(),
        ),
        // Handshake record header (RFC 6347 §4.1) claiming far more than is there.
        (
            "truncated handshake record",
            vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 0, 0],
        ),
        // Application data of epoch 1 from an address without a session.
        (
            "application data without a session",
            vec![23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4],
        ),
        // An alert.
        (
            "alert",
            vec![21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 2, 40],
        ),
        // A CoAP request sent in clear to the DTLS port.
        ("plain CoAP", vec![0x40, 0x01, 0x12, 0x34, 0xB2, b'r', b'd']),
    ];
    for (what, datagram) in garbage {
        assert_eq!(exchange(&raw, to, &datagram).await, None, "{what}");
    }
    let mut huge = vec![22u8, 0xFE, 0xFD];
    huge.resize(40_000, 0);
    assert_eq!(exchange(&raw, to, &huge).await, None, "oversized");

    assert_eq!(
        read_battery(&server, "meter-secure").await,
        Value::Integer(87)
    );
    let stats = server.service().stats().await;
    let coaps = stats
        .sockets
        .iter()
        .find(|s| s.transport == Some(Transport::Coaps))
        .unwrap();
    assert_eq!(coaps.dtls_sessions, Some(1), "{coaps:?}");
}
