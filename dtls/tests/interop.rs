//! Interoperability with real DTLS 1.2 clients: a `DtlsServer` driven over a real UDP socket on
//! loopback, with `openssl s_client -dtls1_2 -psk …` and (if the PyPI package `DTLSSocket` is
//! installed) tinydtls — the DTLS stack of Wakaama/LwM2M devices — as peers.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use ferrite_dtls::{
    CipherSuite, CloseReason, DtlsEvent, DtlsServer, DtlsServerConfig, HandshakeFailure,
    InMemoryPskStore, PskIdentity,
};

const IDENTITY: &str = "urn:imei:490154203237518";
const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn key() -> Vec<u8> {
    (0..KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY_HEX[i..i + 2], 16).expect("hex"))
        .collect()
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A server on a UDP socket, pumped by hand from the test thread.
struct Harness {
    socket: UdpSocket,
    server: DtlsServer,
    events: Vec<DtlsEvent>,
}

impl Harness {
    fn new() -> Self {
        Self::bound("127.0.0.1:0")
    }

    fn bound(local: &str) -> Self {
        let socket = UdpSocket::bind(local).expect("bind");
        let mut store = InMemoryPskStore::new();
        store.insert(IDENTITY, key());
        let server = DtlsServer::new(DtlsServerConfig::default(), Arc::new(store)).expect("server");
        Self {
            socket,
            server,
            events: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("local addr").port()
    }

    /// Runs the socket loop for up to `budget` or until `done` holds for the events so far.
    fn run_until(&mut self, budget: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = Instant::now() + budget;
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            let wait = self
                .server
                .poll_timeout()
                .map_or(Duration::from_millis(20), |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            self.socket.set_read_timeout(Some(wait)).expect("timeout");
            match self.socket.recv_from(&mut buffer) {
                Ok((len, peer)) => {
                    eprintln!("harness: got {len} bytes from {peer} type {}", buffer[0]);
                    self.server
                        .handle_datagram(Instant::now(), peer, &buffer[..len])
                }
                Err(_) => self.server.handle_timeout(Instant::now()),
            }
            self.flush();
        }
        done(self)
    }

    fn flush(&mut self) {
        while let Some((peer, datagram)) = self.server.poll_transmit() {
            eprintln!(
                "harness: {} bytes to {peer} (type {})",
                datagram.len(),
                datagram[0]
            );
            self.socket.send_to(&datagram, peer).expect("send");
        }
        while let Some(event) = self.server.poll_event() {
            self.events.push(event);
        }
    }
}

/// `openssl s_client` with stdout collected line by line on a channel.
struct OpensslClient {
    child: Child,
    lines: Receiver<String>,
}

impl OpensslClient {
    fn start(port: u16, identity: &str, key_hex: &str, cipher: &str) -> Self {
        let mut child = Command::new("openssl")
            .args(["s_client", "-dtls1_2", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-psk_identity",
                identity,
                "-psk",
                key_hex,
                "-cipher",
                cipher,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to s_client");
        stdin.flush().expect("flush");
    }

    fn received(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Closes stdin: s_client sends close_notify and exits.
    fn finish(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for OpensslClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connected_peer(events: &[DtlsEvent]) -> Option<(SocketAddr, PskIdentity)> {
    events.iter().find_map(|event| match event {
        DtlsEvent::Connected { peer, identity, .. } => Some((*peer, identity.clone())),
        _ => None,
    })
}

/// The application data received from `peer` as `identity`, in order, joined.
fn received_data(events: &[DtlsEvent], peer: SocketAddr, identity: &PskIdentity) -> Vec<u8> {
    events
        .iter()
        .filter_map(|event| match event {
            DtlsEvent::Data {
                peer: from,
                identity: who,
                bytes,
            } if *from == peer && who == identity => Some(bytes.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

fn echo_round_trip(openssl_cipher: &str, expected_suite: CipherSuite) {
    let mut harness = Harness::new();
    let mut client = OpensslClient::start(harness.port(), IDENTITY, KEY_HEX, openssl_cipher);

    assert!(
        harness.run_until(Duration::from_secs(10), |h| connected_peer(&h.events)
            .is_some()),
        "{openssl_cipher}: no handshake; events {:?}, stats {:?}",
        harness.events,
        harness.server.stats()
    );
    let (peer, identity) = connected_peer(&harness.events).expect("connected");
    assert_eq!(identity, PskIdentity::new(IDENTITY.as_bytes()));
    assert_eq!(harness.server.cipher_suite_of(peer), Some(expected_suite));

    client.send_line("hello from openssl");
    // s_client may send one line of stdin as more than one record (it reads stdin in whatever
    // chunks arrive), so the data is collected until the whole line is in.
    let line = b"hello from openssl\n";
    let got_data = harness.run_until(Duration::from_secs(10), |h| {
        received_data(&h.events, peer, &identity).len() >= line.len()
    });
    assert!(
        got_data,
        "{openssl_cipher}: no data; events {:?}",
        harness.events
    );
    assert!(
        harness.events.iter().all(|event| match event {
            DtlsEvent::Data {
                peer: from,
                identity: who,
                ..
            } => (*from, who) == (peer, &identity),
            _ => true,
        }),
        "data from another peer or identity: {:?}",
        harness.events
    );
    assert_eq!(received_data(&harness.events, peer, &identity), line);

    harness
        .server
        .send(Instant::now(), peer, b"echo: hello from openssl\n")
        .expect("send");
    harness.flush();
    let mut seen = Vec::new();
    let echoed = harness.run_until(Duration::from_secs(10), |_| {
        seen.extend(client.received());
        seen.iter().any(|line| line == "echo: hello from openssl")
    });
    assert!(
        echoed,
        "{openssl_cipher}: s_client did not print the echo; its output: {seen:?}"
    );

    client.finish();
    let closed = harness.run_until(Duration::from_secs(10), |h| {
        h.events.iter().any(|event| {
            matches!(
                event,
                DtlsEvent::Closed {
                    reason: CloseReason::PeerClosed,
                    ..
                }
            )
        })
    });
    assert!(
        closed,
        "{openssl_cipher}: no close_notify; events {:?}",
        harness.events
    );
    eprintln!(
        "{openssl_cipher}: handshake, data both ways and close_notify OK; stats {:?}",
        harness.server.stats()
    );
}

#[test]
fn openssl_s_client_psk_aes128_ccm8() {
    if !openssl_available() {
        eprintln!("SKIPPED: openssl not found");
        return;
    }
    echo_round_trip("PSK-AES128-CCM8", CipherSuite::PskAes128Ccm8);
}

#[test]
fn openssl_s_client_psk_aes128_ccm() {
    if !openssl_available() {
        eprintln!("SKIPPED: openssl not found");
        return;
    }
    echo_round_trip("PSK-AES128-CCM", CipherSuite::PskAes128Ccm);
}

#[test]
fn openssl_s_client_psk_aes128_gcm_sha256() {
    if !openssl_available() {
        eprintln!("SKIPPED: openssl not found");
        return;
    }
    echo_round_trip("PSK-AES128-GCM-SHA256", CipherSuite::PskAes128GcmSha256);
}

fn failed_handshake(identity: &str, key_hex: &str) -> HandshakeFailure {
    let mut harness = Harness::new();
    let _client = OpensslClient::start(harness.port(), identity, key_hex, "PSK-AES128-CCM8");
    let failed = harness.run_until(Duration::from_secs(10), |h| {
        h.events
            .iter()
            .any(|event| matches!(event, DtlsEvent::HandshakeFailed { .. }))
    });
    assert!(failed, "no failure; events {:?}", harness.events);
    assert!(
        !harness
            .events
            .iter()
            .any(|event| matches!(event, DtlsEvent::Connected { .. }))
    );
    harness
        .events
        .iter()
        .find_map(|event| match event {
            DtlsEvent::HandshakeFailed {
                reason,
                claimed_identity,
                ..
            } => {
                assert_eq!(
                    claimed_identity.as_ref().map(PskIdentity::as_bytes),
                    Some(identity.as_bytes())
                );
                Some(*reason)
            }
            _ => None,
        })
        .expect("failure")
}

#[test]
fn openssl_s_client_with_a_wrong_key_or_unknown_identity_is_refused() {
    if !openssl_available() {
        eprintln!("SKIPPED: openssl not found");
        return;
    }
    assert_eq!(
        failed_handshake(IDENTITY, "0f0e0d0c0b0a09080706050403020100"),
        HandshakeFailure::BadKey
    );
    assert_eq!(
        failed_handshake("urn:imei:000000000000000", KEY_HEX),
        HandshakeFailure::UnknownIdentity
    );
}

/// A tinydtls client (through DTLSSocket's Python binding) that sends one line and prints the
/// server's answer.
const TINYDTLS_CLIENT: &str = r#"
import sys, socket, time
from DTLSSocket import dtls
port, identity, key = int(sys.argv[1]), sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.settimeout(0.2)
state = {"connected": False, "data": None}
def on_read(addr, data):
    state["data"] = data
    return len(data)
def on_write(addr, data):
    return sock.sendto(data, addr)
def on_event(level, code):
    if code == 0x1de:  # DTLS_EVENT_CONNECTED
        state["connected"] = True
d = dtls.DTLS(read=on_read, write=on_write, event=on_event, pskId=identity, pskStore={identity: key})
# Keep the connection object: dropping it closes the session (DTLSSocket's own wrapper does that).
connection = d.connect("::1", port, 0, 0)
def pump(done):
    deadline = time.time() + 10
    while not done() and time.time() < deadline:
        try:
            data, source = sock.recvfrom(2048)
        except socket.timeout:
            d.checkRetransmit()
            continue
        d.handleMessageAddr(source[0], source[1], data)
    return done()
if not pump(lambda: state["connected"]):
    sys.exit("tinydtls: no handshake")
d.write(connection, b"hello from tinydtls\n")
if not pump(lambda: state["data"] is not None):
    sys.exit("tinydtls: no answer")
print(state["data"].decode().strip(), flush=True)
"#;

fn tinydtls_available() -> bool {
    Command::new("python3")
        .args(["-c", "import DTLSSocket"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn tinydtls_client_psk_aes128_ccm8() {
    if !tinydtls_available() {
        eprintln!("SKIPPED: python3 with DTLSSocket (tinydtls) not found; pip install DTLSSocket");
        return;
    }
    let mut harness = Harness::bound("[::1]:0");
    let child = Command::new("python3")
        .args([
            "-c",
            TINYDTLS_CLIENT,
            &harness.port().to_string(),
            IDENTITY,
            KEY_HEX,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let got_data = harness.run_until(Duration::from_secs(15), |h| {
        h.events
            .iter()
            .any(|event| matches!(event, DtlsEvent::Data { .. }))
    });
    assert!(
        got_data,
        "no data from tinydtls; events {:?}, stats {:?}",
        harness.events,
        harness.server.stats()
    );
    let (peer, identity) = connected_peer(&harness.events).expect("connected");
    assert_eq!(identity, PskIdentity::new(IDENTITY.as_bytes()));
    assert_eq!(
        harness.server.cipher_suite_of(peer),
        Some(CipherSuite::PskAes128Ccm8)
    );
    assert!(harness.events.iter().any(|event| matches!(
        event,
        DtlsEvent::Data { bytes, identity: data_identity, .. }
            if bytes == b"hello from tinydtls\n" && *data_identity == identity
    )));
    harness
        .server
        .send(Instant::now(), peer, b"echo: hello from tinydtls\n")
        .expect("send");
    harness.flush();
    harness.run_until(Duration::from_millis(500), |_| false);
    eprintln!("events {:?}", harness.events);
    let output = child.wait_with_output().expect("python3 output");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "echo: hello from tinydtls"
    );
    eprintln!(
        "tinydtls: handshake and data both ways OK; stats {:?}",
        harness.server.stats()
    );
}
