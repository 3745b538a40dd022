//! CPU cost of the server engine per device-management Read, without sockets: the part of
//! `ferrite`'s socket thread that is ours (the kernel's part is what the bench's UDP echo floor
//! measures). 200 registered LwM2M 1.0 devices; each iteration reads /3/0/0 on all of them,
//! answers every request with a piggybacked TLV response written by hand (a few bytes copied, so
//! the figure is the server's), and takes the completions.
//!
//! `cargo bench -p lwm2m-proto --bench server_read` prints the time per 200 reads; divide by 200
//! for the cost per read.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lwm2m_objects::Path;
use lwm2m_proto::coap::{ContentFormat, Message, MessageType, Request};
use lwm2m_proto::lwm2m::server::{Lwm2mServer, Operation, PeerAuth, ServerConfig, ServerEvent};

const DEVICES: usize = 200;

struct Fleet {
    server: Lwm2mServer,
    now: Instant,
    devices: Vec<(String, SocketAddr)>,
    path: Path,
    answer: Vec<u8>,
}

fn peer(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 40_000))
}

impl Fleet {
    fn new() -> Fleet {
        let now = Instant::now();
        let mut server = Lwm2mServer::new(ServerConfig::default(), 7);
        let mut devices = Vec::new();
        for i in 0..DEVICES {
            let endpoint = format!("bench-{i:05}");
            let request = Request::post()
                .with_path(["rd"])
                .with_query(format!("ep={endpoint}"))
                .with_query("lt=86400")
                .with_query("lwm2m=1.0")
                .with_query("b=U")
                .with_content_format(ContentFormat::LINK_FORMAT)
                .with_payload("</1/0>,</3/0>,</4/0>");
            let mut msg = Message::new(
                MessageType::Confirmable,
                request.method.code(),
                i as u16,
                lwm2m_proto::coap::Token::new(&[1, 2, 3, 4]).expect("4 bytes"),
            );
            msg.options = request.options;
            msg.payload = request.payload;
            let bytes = msg.encode().expect("encodable");
            server.handle_datagram(now, peer(i), PeerAuth::NoSec, &bytes);
            while let Some(event) = server.poll_event() {
                if let ServerEvent::RegistrationRequest { ticket, .. } = event {
                    server.accept_registration(now, ticket).expect("accepted");
                }
            }
            while server.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
            devices.push((endpoint, peer(i)));
        }
        assert_eq!(server.registrations().count(), DEVICES);
        // ACK 2.05, Content-Format 11542 (TLV), resource 0 = "Ferrite" (7 bytes).
        let mut answer = vec![0x60, 0x45, 0, 0];
        answer.extend_from_slice(&[0xC2, 0x2D, 0x16, 0xFF, 0xC7, 0x00]);
        answer.extend_from_slice(b"Ferrite");
        Fleet {
            server,
            now,
            devices,
            path: "/3/0/0".parse().expect("a path"),
            answer,
        }
    }

    /// Reads the path on every device; returns the completions.
    fn round(&mut self) -> usize {
        self.now += Duration::from_millis(1);
        let now = self.now;
        for (endpoint, _) in &self.devices {
            self.server
                .request(now, endpoint, Operation::Read(self.path))
                .expect("registered");
        }
        let mut datagram = Vec::with_capacity(64);
        while let Some(t) = self.server.poll_transmit() {
            // Echo message ID and token into the canned answer.
            let tkl = usize::from(t.bytes[0] & 0x0F);
            datagram.clear();
            datagram.push(0x60 | t.bytes[0] & 0x0F);
            datagram.push(0x45);
            datagram.extend_from_slice(&t.bytes[2..4 + tkl]);
            datagram.extend_from_slice(&self.answer[4..]);
            self.server
                .handle_datagram(now, t.peer, PeerAuth::NoSec, &datagram);
        }
        let mut done = 0;
        while let Some(event) = self.server.poll_event() {
            if let ServerEvent::OpCompleted { outcome, .. } = event {
                assert!(outcome.is_ok(), "{outcome:?}");
                done += 1;
            }
        }
        done
    }
}

fn reads(c: &mut Criterion) {
    let mut fleet = Fleet::new();
    assert_eq!(fleet.round(), DEVICES);
    let mut group = c.benchmark_group("server engine");
    group.throughput(Throughput::Elements(DEVICES as u64));
    group.bench_function("200 reads of /3/0/0 (1.0, TLV)", |b| {
        b.iter(|| black_box(fleet.round()))
    });
    group.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
