//! The drivers of the `dtls_datagrams` and `dtls_client_hello` targets: ferrite-dtls'
//! `DtlsServer` fed fuzz-chosen datagrams from several source addresses — arbitrary bytes,
//! record-shaped garbage, genuine `DtlsClient` handshakes whose datagrams the input drops,
//! duplicates, replays or corrupts, and (structure-aware) a valid ClientHello mutated before and
//! after a correct cookie exchange so that the mutations reach rtc-dtls — with time passing.
//!
//! After every step: no panic; the server's bookkeeping is consistent and within its bounds
//! (`DtlsServer::check_invariants`); and an address for which the server held nothing before the
//! datagram and holds nothing after it got back no more bytes than it sent (no amplification:
//! a HelloVerifyRequest is never larger than the ClientHello it answers).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_dtls::{
    CipherSuite, DtlsClient, DtlsClientConfig, DtlsServer, DtlsServerConfig, InMemoryPskStore,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

const MAX_STEPS: usize = 120;
const IDENTITY: &[u8] = b"meter-0001";
const KEY: [u8; 16] = [0x5a; 16];

/// First ClientHello captured from `openssl s_client -dtls1_2 -psk_identity meter-0001 -cipher
/// PSK-AES128-CCM8` (OpenSSL 3.0.19; the same capture as dtls/src/wire.rs' tests).
pub const OPENSSL_CLIENT_HELLO: &str = "16feff00000000000000000074010000680000000000000068fefd7ad17608c709346c202a61e5d10790b4104e8e38e6ff5e5b54201a6f761b12a700000004c0a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";

fn server_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5684)
}

fn peers() -> [SocketAddr; 4] {
    [
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40001),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40002),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 5684),
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            5684,
        ),
    ]
}

/// Small bounds, so that inputs reach them.
pub fn server_config() -> DtlsServerConfig {
    DtlsServerConfig {
        max_sessions: 2,
        max_handshakes: 2,
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        cookie_lifetime: Duration::from_secs(30),
        retransmit_interval: Duration::from_secs(1),
        ..DtlsServerConfig::default()
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// A server, the genuine clients talking to it, and the datagrams seen so far.
pub struct Harness {
    server: DtlsServer,
    now: Instant,
    peers: [SocketAddr; 4],
    clients: BTreeMap<SocketAddr, DtlsClient>,
    /// Datagrams from clients to the server not yet delivered.
    to_server: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams from the server not yet delivered to a client.
    to_clients: Vec<(SocketAddr, Vec<u8>)>,
    /// Every client datagram seen, to replay or corrupt.
    history: Vec<(SocketAddr, Vec<u8>)>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh server with [`server_config`] and one known identity.
    pub fn new() -> Self {
        let mut store = InMemoryPskStore::new();
        store.insert(IDENTITY, KEY.to_vec());
        store.insert(b"meter-0002".to_vec(), vec![0x42; 16]);
        let Ok(server) = DtlsServer::new(server_config(), Arc::new(store)) else {
            panic!("server config refused");
        };
        Self {
            server,
            now: Instant::now(),
            peers: peers(),
            clients: BTreeMap::new(),
            to_server: Vec::new(),
            to_clients: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Feeds one datagram to the server and checks what it did.
    pub fn deliver(&mut self, from: SocketAddr, datagram: &[u8]) {
        let stateless_before = !self.server.holds_state_for(from);
        self.server.handle_datagram(self.now, from, datagram);
        let mut answered = 0usize;
        while let Some((to, bytes)) = self.server.poll_transmit() {
            if to == from {
                answered += bytes.len();
            }
            self.to_clients.push((to, bytes));
        }
        if stateless_before && !self.server.holds_state_for(from) {
            assert!(
                answered <= datagram.len(),
                "{answered} bytes answered a {}-byte datagram from a stateless address",
                datagram.len()
            );
        }
        self.after_step();
    }

    fn after_step(&mut self) {
        while let Some((to, bytes)) = self.server.poll_transmit() {
            self.to_clients.push((to, bytes));
        }
        while self.server.poll_event().is_some() {}
        if let Err(problem) = self.server.check_invariants() {
            panic!("DtlsServer invariant broken: {problem}");
        }
        // Bound the harness itself.
        self.to_clients.truncate(256);
        self.to_server.truncate(256);
    }

    fn peer(&self, u: &mut Unstructured<'_>) -> Result<SocketAddr> {
        Ok(*u.choose(&self.peers)?)
    }

    fn remember(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.history.len() < 64 {
            self.history.push((from, bytes.to_vec()));
        }
    }

    /// Collects what the clients want to send.
    fn collect_client_transmits(&mut self) {
        for (&at, client) in &mut self.clients {
            while let Some((_, bytes)) = client.poll_transmit() {
                if self.to_server.len() < 256 {
                    self.to_server.push((at, bytes));
                }
            }
            while client.poll_event().is_some() {}
        }
    }

    /// Flips, sets, truncates or extends `bytes` as the input says.
    pub fn mutate(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Result<()> {
        for _ in 0..u.int_in_range(0u8..=6)? {
            match u.int_in_range(0u8..=4)? {
                0 | 1 if !bytes.is_empty() => {
                    let at = u.choose_index(bytes.len())?;
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= u.int_in_range(1u8..=255)?;
                    }
                }
                2 if !bytes.is_empty() => {
                    let at = u.choose_index(bytes.len())?;
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte = u.arbitrary()?;
                    }
                }
                3 => {
                    let keep = u.int_in_range(0..=bytes.len())?;
                    bytes.truncate(keep);
                }
                _ => {
                    let at = u.int_in_range(0..=bytes.len())?;
                    let len = u.int_in_range(0usize..=40)?;
                    let insert = u.bytes(len)?.to_vec();
                    bytes.splice(at..at, insert);
                }
            }
        }
        Ok(())
    }

    /// One fuzz-chosen step.
    pub fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0u8..=10)? {
            0 => {
                let from = self.peer(u)?;
                let len = u.int_in_range(0usize..=1500)?;
                let bytes = u.bytes(len)?.to_vec();
                self.deliver(from, &bytes);
            }
            1 => {
                // Record-shaped datagrams: plausible headers, arbitrary bodies (RFC 6347 §4.1).
                let from = self.peer(u)?;
                let mut datagram = Vec::new();
                for _ in 0..u.int_in_range(1u8..=3)? {
                    let content_type = *u.choose(&[20u8, 21, 22, 23, 24, 25, 0, 255])?;
                    let version = *u.choose(&[[0xfe, 0xfd], [0xfe, 0xff], [3, 3]])?;
                    let epoch: u16 = if u.arbitrary()? { 0 } else { u.arbitrary()? };
                    let sequence: [u8; 6] = u.arbitrary()?;
                    let len = u.int_in_range(0usize..=300)?;
                    let body = u.bytes(len)?;
                    let declared = if u.ratio(7u8, 8u8)? {
                        len as u16
                    } else {
                        u.arbitrary()?
                    };
                    datagram.push(content_type);
                    datagram.extend_from_slice(&version);
                    datagram.extend_from_slice(&epoch.to_be_bytes());
                    datagram.extend_from_slice(&sequence);
                    datagram.extend_from_slice(&declared.to_be_bytes());
                    datagram.extend_from_slice(body);
                }
                self.deliver(from, &datagram);
            }
            2 => {
                // A genuine client starts a handshake: right key, wrong key or unknown identity.
                let at = self.peer(u)?;
                let (identity, key): (&[u8], Vec<u8>) = match u.int_in_range(0u8..=3)? {
                    0 | 1 => (IDENTITY, KEY.to_vec()),
                    2 => (IDENTITY, vec![0x11; 16]),
                    _ => (b"stranger", KEY.to_vec()),
                };
                let mut config = DtlsClientConfig::new(identity, key);
                config.cipher_suites = match u.int_in_range(0u8..=3)? {
                    0 => vec![CipherSuite::PskAes128Ccm],
                    1 => vec![CipherSuite::PskAes128GcmSha256],
                    _ => vec![CipherSuite::PskAes128Ccm8],
                };
                if let Ok(mut client) = DtlsClient::new(config)
                    && client.connect(self.now, server_addr()).is_ok()
                {
                    self.clients.insert(at, client);
                    self.collect_client_transmits();
                }
            }
            3 | 4 => {
                // Deliver pending datagrams both ways; each may be dropped, duplicated or damaged.
                for _ in 0..u.int_in_range(1u8..=8)? {
                    self.collect_client_transmits();
                    if !self.to_server.is_empty() {
                        let (from, mut bytes) = self.to_server.remove(0);
                        match u.int_in_range(0u8..=7)? {
                            0 => {} // lost
                            1 => {
                                self.remember(from, &bytes);
                                self.deliver(from, &bytes);
                                self.deliver(from, &bytes);
                            }
                            2 => {
                                Self::mutate(u, &mut bytes)?;
                                self.deliver(from, &bytes);
                            }
                            _ => {
                                self.remember(from, &bytes);
                                self.deliver(from, &bytes);
                            }
                        }
                    }
                    if !self.to_clients.is_empty() {
                        let (to, bytes) = self.to_clients.remove(0);
                        if !u.ratio(1u8, 8u8)?
                            && let Some(client) = self.clients.get_mut(&to)
                        {
                            client.handle_datagram(self.now, server_addr(), &bytes);
                        }
                    }
                }
            }
            5 => {
                // Time passes.
                let by = match u.int_in_range(0u8..=2)? {
                    0 => Duration::from_millis(u.int_in_range(0u64..=3_000)?),
                    1 => Duration::from_secs(u.int_in_range(0u64..=200)?),
                    _ => self
                        .server
                        .poll_timeout()
                        .map_or(Duration::ZERO, |at| at.saturating_duration_since(self.now)),
                };
                self.now += by;
                self.server.handle_timeout(self.now);
                for client in self.clients.values_mut() {
                    client.handle_timeout(self.now);
                }
                self.after_step();
            }
            6 => {
                // A datagram seen before, again, from where it came or elsewhere, maybe damaged.
                if self.history.is_empty() {
                    return Ok(());
                }
                let (mut from, mut bytes) = u.choose(&self.history)?.clone();
                if u.ratio(1u8, 4u8)? {
                    from = self.peer(u)?;
                }
                if u.arbitrary()? {
                    Self::mutate(u, &mut bytes)?;
                }
                self.deliver(from, &bytes);
            }
            7 => {
                // Application data both ways.
                let at = self.peer(u)?;
                let len = u.int_in_range(0usize..=200)?;
                let data = u.bytes(len)?.to_vec();
                if let Some(client) = self.clients.get_mut(&at) {
                    let _ = client.send(self.now, &data);
                }
                let _ = self.server.send(self.now, at, &data);
                self.after_step();
            }
            8 => {
                let at = self.peer(u)?;
                if u.arbitrary()? {
                    self.server.close(self.now, at);
                } else if let Some(client) = self.clients.get_mut(&at) {
                    client.close(self.now);
                }
                self.after_step();
            }
            9 => {
                // The captured ClientHello, with any cookie, maybe damaged.
                let from = self.peer(u)?;
                let mut hello = hex(OPENSSL_CLIENT_HELLO);
                if u.arbitrary()? {
                    let len = u.int_in_range(0usize..=40)?;
                    let cookie = u.bytes(len)?.to_vec();
                    hello = with_cookie(&hello, &cookie, u.arbitrary()?, u.arbitrary()?);
                }
                Self::mutate(u, &mut hello)?;
                self.deliver(from, &hello);
            }
            _ => {
                // Many strangers' ClientHellos at once (a flood in miniature).
                for port in 0..u.int_in_range(0u16..=40)? {
                    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)), port);
                    let hello = hex(OPENSSL_CLIENT_HELLO);
                    self.deliver(from, &hello);
                }
            }
        }
        Ok(())
    }

    /// Runs steps until the input or the step budget runs out, then lets every timer expire.
    pub fn run_steps(&mut self, u: &mut Unstructured<'_>) {
        for _ in 0..MAX_STEPS {
            if u.is_empty() || self.step(u).is_err() {
                break;
            }
        }
        for _ in 0..64 {
            let Some(at) = self.server.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.server.handle_timeout(self.now);
            self.after_step();
        }
    }

    /// The structure-aware start: a valid ClientHello (the captured one, or a genuine client's),
    /// mutated, sent; if the server answers with a HelloVerifyRequest, the same hello returns the
    /// cookie correctly (message_seq 1, RFC 6347 §4.2.1) and is mutated again — changes to fields
    /// the cookie does not bind (extensions, record header) reach rtc-dtls' handshake.
    pub fn client_hello_exchange(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let from = self.peer(u)?;
        let genuine = u.arbitrary::<bool>()?;
        let mut first = if genuine {
            let mut client = DtlsClient::new(DtlsClientConfig::new(IDENTITY, KEY.to_vec()))
                .map_err(|_| libfuzzer_sys::arbitrary::Error::IncorrectFormat)?;
            let _ = client.connect(self.now, server_addr());
            let hello = client.poll_transmit().map(|(_, bytes)| bytes);
            self.clients.insert(from, client);
            hello.unwrap_or_else(|| hex(OPENSSL_CLIENT_HELLO))
        } else {
            hex(OPENSSL_CLIENT_HELLO)
        };
        if u.ratio(1u8, 3u8)? {
            Self::mutate(u, &mut first)?;
        }
        let before = self.to_clients.len();
        self.deliver(from, &first);
        let cookie = self
            .to_clients
            .get(before..)
            .unwrap_or_default()
            .iter()
            .find(|(to, _)| *to == from)
            .and_then(|(_, bytes)| hello_verify_cookie(bytes))
            .map(<[u8]>::to_vec);
        let Some(cookie) = cookie else {
            return Ok(());
        };
        let mut second = with_cookie(&first, &cookie, 1, 1);
        Self::mutate(u, &mut second)?;
        if genuine && let Some(client) = self.clients.get_mut(&from) {
            // Keep the genuine client in step: it sends its own second hello, which we replace.
            for (to, bytes) in self.to_clients.drain(before..) {
                if to == from {
                    client.handle_datagram(self.now, server_addr(), &bytes);
                }
            }
            while client.poll_transmit().is_some() {}
        }
        self.remember(from, &second);
        self.deliver(from, &second);
        Ok(())
    }
}

/// The cookie of a HelloVerifyRequest (RFC 6347 §4.2.1), if `datagram` starts with one.
fn hello_verify_cookie(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.first() != Some(&22) || datagram.get(13) != Some(&3) {
        return None;
    }
    let len = usize::from(*datagram.get(27)?);
    datagram.get(28..28 + len)
}

/// `hello` (an unfragmented ClientHello record) with `cookie` in place of its cookie, the given
/// message_seq and record sequence number, and every length field fixed up. Returns `hello`
/// unchanged if it is too damaged to find the cookie.
pub fn with_cookie(hello: &[u8], cookie: &[u8], message_seq: u16, record_seq: u8) -> Vec<u8> {
    const BODY: usize = 25;
    let Some(&session_len) = hello.get(BODY + 34) else {
        return hello.to_vec();
    };
    let cookie_at = BODY + 35 + usize::from(session_len);
    let Some(&old_len) = hello.get(cookie_at) else {
        return hello.to_vec();
    };
    let (Some(head), Some(tail)) = (
        hello.get(..cookie_at),
        hello.get(cookie_at + 1 + usize::from(old_len)..),
    ) else {
        return hello.to_vec();
    };
    let mut out = head.to_vec();
    out.push(cookie.len().min(255) as u8);
    out.extend_from_slice(cookie.get(..255.min(cookie.len())).unwrap_or_default());
    out.extend_from_slice(tail);
    let body_len = out.len() - BODY;
    let record_len = out.len() - 13;
    if let Some(field) = out.get_mut(10) {
        *field = record_seq;
    }
    if let Some(field) = out.get_mut(11..13) {
        field.copy_from_slice(&(record_len as u16).to_be_bytes());
    }
    let len24 = [
        (body_len >> 16) as u8,
        (body_len >> 8) as u8,
        body_len as u8,
    ];
    if let Some(field) = out.get_mut(14..17) {
        field.copy_from_slice(&len24);
    }
    if let Some(field) = out.get_mut(17..19) {
        field.copy_from_slice(&message_seq.to_be_bytes());
    }
    if let Some(field) = out.get_mut(22..25) {
        field.copy_from_slice(&len24);
    }
    out
}
