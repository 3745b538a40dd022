//! Firmware pull (OMA LwM2M TS Core 1.1 §E.6, object 5 resource 1 "Package URI"): a GET of the
//! URI's path from the URI's host, the body fetched block by block (RFC 7959 §2.4 Block2,
//! reassembled by `lwm2m-proto`'s [`CoapEndpoint`]) on a socket of its own, sans I/O like the
//! rest of the meter.
//!
//! `coap://` goes in clear. `coaps://` runs the same exchange inside a DTLS 1.2 PSK session
//! (the meter's [`BackoffDtlsClient`], RFC 6347; the GET leaves once the handshake completed, every CoAP datagram is
//! one application-data record). The credential is the meter's own PSK for its LwM2M server
//! (the identity and key it registers with, or the ones its bootstrap delivered): LwM2M TS Core
//! 1.1 §E.6 leaves the download's security to the client, and a real meter has no other key in
//! flash — clients such as Anjay use the Security instance whose server URI matches the host,
//! which for a meter with one account is this one. A file server that does not know that
//! identity (or holds another key) fails the handshake; since RFC 4279 §2 makes an unknown
//! identity indistinguishable from a wrong key, and a handshake that never completes looks the
//! same as a lost link, that ends the pull with 4 (connection lost), as Anjay reports a DTLS
//! handshake failure of its downloader. A `coaps://` URI given to a NoSec meter (no key at all)
//! is answered with 9 (unsupported protocol), other schemes likewise, a URI without a usable host
//! with 7 (invalid URI).
//!
//! The transfer ends in the package bytes or an Update Result code: 4 connection lost (the
//! server stopped answering, or the DTLS session could not be set up or was closed), 7 (the
//! server answered 4.04 or another error), 3 out of RAM (the body would exceed the limit).
//! Injected faults (`--fota-failures`) end it the same ways after the first block arrived.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use ferrite_dtls::ClientEvent as DtlsEvent;
use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, Event, FailureReason, Request, RequestId};

use super::firmware::result;
use super::handshake::BackoffDtlsClient;

/// The largest package a meter will fetch (the largest model has 1 MB of memory).
pub const MAX_PACKAGE: usize = 2 * 1024 * 1024;

/// A fault to inject into one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Drop the transfer after the first block: Update Result 4.
    ConnectionLost,
    /// Run out of RAM after the first block: Update Result 3.
    OutOfMemory,
}

/// The PSK a meter authenticates a `coaps://` pull with (its LwM2M server credential).
#[derive(Clone, PartialEq, Eq)]
pub struct PskCredential {
    /// PSK identity.
    pub identity: Vec<u8>,
    /// The key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for PskCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskCredential")
            .field("identity", &String::from_utf8_lossy(&self.identity))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A parsed Package URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUri {
    /// The file server.
    pub addr: SocketAddr,
    /// `coaps://`.
    pub secure: bool,
    /// Uri-Path segments.
    pub path: Vec<String>,
    /// Uri-Query items.
    pub query: Vec<String>,
}

/// How the CoAP datagrams travel.
#[derive(Debug)]
enum Transport {
    Plain,
    Dtls {
        client: Box<BackoffDtlsClient>,
        /// The GET, until the handshake completes.
        request: Option<Request>,
    },
}

/// One transfer in progress.
#[derive(Debug)]
pub struct Download {
    endpoint: CoapEndpoint,
    peer: SocketAddr,
    transport: Transport,
    /// The GET once it left (at once in clear, after the handshake over DTLS).
    request: Option<RequestId>,
    inject: Option<Injected>,
    outcome: Option<Result<Vec<u8>, i64>>,
}

/// Splits `coap://host:port/a/b?q` (or `coaps://…`) into the address, the scheme and the path
/// segments and queries.
pub fn parse_uri(uri: &str) -> Result<PackageUri, i64> {
    let (secure, rest) = if let Some(rest) = uri.strip_prefix("coap://") {
        (false, rest)
    } else if let Some(rest) = uri.strip_prefix("coaps://") {
        (true, rest)
    } else if uri.contains("://") {
        return Err(result::UNSUPPORTED_PROTOCOL);
    } else {
        return Err(result::INVALID_URI);
    };
    let default_port = if secure { 5684 } else { 5683 };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(result::INVALID_URI);
    }
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        }
    } else if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|_| result::INVALID_URI)?
        .next()
        .ok_or(result::INVALID_URI)?;
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let path = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let query = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(PackageUri {
        addr,
        secure,
        path,
        query,
    })
}

impl Download {
    /// Starts fetching `uri` at `now`; `credential` is the meter's PSK, used for `coaps://`.
    /// `Err` is the Update Result code for a URI that cannot be fetched at all.
    pub fn start(
        now: Instant,
        uri: &str,
        seed: u64,
        inject: Option<Injected>,
        credential: Option<&PskCredential>,
    ) -> Result<Download, i64> {
        let uri = parse_uri(uri)?;
        let config = CoapConfig {
            max_body_size: MAX_PACKAGE,
            // Nothing is served by this endpoint; keep its caches tiny.
            max_dedup_entries: 64,
            max_pending_requests: 4,
            max_block1_assemblies: 1,
            max_block2_cache_entries: 1,
            max_peer_states: 4,
            ..CoapConfig::default()
        };
        let mut endpoint = CoapEndpoint::new(config, seed);
        let mut get = Request::get().with_path(uri.path);
        for q in uri.query {
            get = get.with_query(q);
        }
        let peer = uri.addr;
        let (transport, request) = if uri.secure {
            let Some(credential) = credential else {
                // A NoSec meter holds no key to open a DTLS session with.
                return Err(result::UNSUPPORTED_PROTOCOL);
            };
            let mut client =
                BackoffDtlsClient::new(credential.identity.clone(), credential.key.clone())
                    .map_err(|_| result::UNSUPPORTED_PROTOCOL)?;
            client
                .connect(now, peer)
                .map_err(|_| result::CONNECTION_LOST)?;
            let transport = Transport::Dtls {
                client: Box::new(client),
                request: Some(get),
            };
            (transport, None)
        } else {
            let id = endpoint.request(now, peer, get);
            (Transport::Plain, Some(id))
        };
        Ok(Download {
            endpoint,
            peer,
            transport,
            request,
            inject,
            outcome: None,
        })
    }

    /// The file server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// A datagram from the file server.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        match &mut self.transport {
            Transport::Plain => {
                self.endpoint.handle_datagram(now, from, bytes);
                if self.inject_fault(now) {
                    return;
                }
            }
            Transport::Dtls { client, .. } => {
                client.handle_datagram(now, from, bytes);
                self.drain_dtls(now);
            }
        }
        self.drain_events(now);
    }

    /// Timers (handshake and CoAP retransmissions, giving up).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        if let Transport::Dtls { client, .. } = &mut self.transport {
            client.handle_timeout(now);
            self.drain_dtls(now);
        }
        if self.outcome.is_none() {
            self.endpoint.handle_timeout(now);
            self.drain_events(now);
        }
    }

    /// The next datagram to send to [`peer`](Self::peer).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        match &mut self.transport {
            Transport::Plain => self.endpoint.poll_transmit().map(|t| (t.peer, t.bytes)),
            // CoAP datagrams were encrypted into the client as they were produced.
            Transport::Dtls { client, .. } => client.poll_transmit(),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let coap = self.endpoint.poll_timeout();
        let dtls = match &self.transport {
            Transport::Plain => None,
            Transport::Dtls { client, .. } => client.poll_timeout(),
        };
        [coap, dtls].into_iter().flatten().min()
    }

    /// The package, or the Update Result code of the failure, once the transfer ended.
    pub fn take_outcome(&mut self) -> Option<Result<Vec<u8>, i64>> {
        self.outcome.take()
    }

    /// After a datagram reached the endpoint: the transfer has begun (a block arrived), so an
    /// injected fault ends it now. Whether it did.
    fn inject_fault(&mut self, now: Instant) -> bool {
        let (Some(fault), Some(request)) = (self.inject, self.request) else {
            return false;
        };
        self.endpoint.cancel(now, request);
        self.finish(
            now,
            Err(match fault {
                Injected::ConnectionLost => result::CONNECTION_LOST,
                Injected::OutOfMemory => result::OUT_OF_RAM,
            }),
        );
        true
    }

    /// DTLS events: the session opening sends the GET, application data goes to the CoAP
    /// endpoint, a failed handshake or a closed session ends the pull.
    fn drain_dtls(&mut self, now: Instant) {
        loop {
            let Transport::Dtls { client, request } = &mut self.transport else {
                return;
            };
            let Some(event) = client.poll_event() else {
                break;
            };
            match event {
                DtlsEvent::Connected { .. } => {
                    if let Some(get) = request.take() {
                        self.request = Some(self.endpoint.request(now, self.peer, get));
                    }
                }
                DtlsEvent::Data { bytes } => {
                    self.endpoint.handle_datagram(now, self.peer, &bytes);
                    if self.inject_fault(now) {
                        return;
                    }
                }
                DtlsEvent::Closed { .. } => {
                    // Handshake failed (wrong or unknown key, no answer) or the server ended the
                    // session: the meter cannot tell these apart (RFC 4279 §2).
                    self.finish(now, Err(result::CONNECTION_LOST));
                    return;
                }
            }
        }
        self.encrypt_transmits(now);
    }

    /// Moves the endpoint's datagrams into the DTLS session (no-op in clear).
    fn encrypt_transmits(&mut self, now: Instant) {
        let Transport::Dtls { client, .. } = &mut self.transport else {
            return;
        };
        if !client.is_connected() {
            return;
        }
        while let Some(t) = self.endpoint.poll_transmit() {
            // A CoAP datagram of one block is far below a record's limit; should a send fail,
            // the datagram is lost like on the wire and CoAP retransmits it.
            let _ = client.send(now, &t.bytes);
        }
    }

    /// Ends the transfer; a DTLS session is closed with close_notify (RFC 5246 §7.2.1).
    fn finish(&mut self, now: Instant, outcome: Result<Vec<u8>, i64>) {
        if self.outcome.is_some() {
            return;
        }
        self.outcome = Some(outcome);
        if let Transport::Dtls { client, .. } = &mut self.transport {
            client.close(now);
        }
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Response { id, response } if Some(id) == self.request => {
                    self.finish(
                        now,
                        if response.code == Code::CONTENT {
                            Ok(response.payload)
                        } else {
                            // 4.04 and friends: the URI names nothing downloadable.
                            Err(result::INVALID_URI)
                        },
                    );
                }
                Event::RequestFailed { id, reason } if Some(id) == self.request => {
                    self.finish(
                        now,
                        Err(match reason {
                            FailureReason::ResponseTooLarge { .. } => result::OUT_OF_RAM,
                            _ => result::CONNECTION_LOST,
                        }),
                    );
                }
                // Requests to this endpoint are not served (a stray peer).
                _ => {}
            }
        }
        self.encrypt_transmits(now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use ferrite_dtls::{DtlsEvent as ServerEvent, DtlsServer, DtlsServerConfig, InMemoryPskStore};
    use lwm2m_proto::coap::Response;

    #[test]
    fn uris() {
        let uri = parse_uri("coap://127.0.0.1:5690/fw/E100/2.5.0?x=1").unwrap();
        assert_eq!(uri.addr, "127.0.0.1:5690".parse::<SocketAddr>().unwrap());
        assert!(!uri.secure);
        assert_eq!(uri.path, ["fw", "E100", "2.5.0"]);
        assert_eq!(uri.query, ["x=1"]);
        assert_eq!(parse_uri("coap://[::1]/f").unwrap().addr.port(), 5683);
        let secure = parse_uri("coaps://127.0.0.1/f").unwrap();
        assert!(secure.secure);
        assert_eq!(secure.addr.port(), 5684);
        assert_eq!(
            parse_uri("http://h/f").err(),
            Some(result::UNSUPPORTED_PROTOCOL)
        );
        assert_eq!(parse_uri("coap:///f").err(), Some(result::INVALID_URI));
        assert_eq!(parse_uri("coaps:///f").err(), Some(result::INVALID_URI));
        assert_eq!(parse_uri("firmware.bin").err(), Some(result::INVALID_URI));
    }

    #[test]
    fn a_nosec_meter_cannot_pull_over_coaps() {
        let now = Instant::now();
        assert_eq!(
            Download::start(now, "coaps://127.0.0.1:5690/fw", 1, None, None).err(),
            Some(result::UNSUPPORTED_PROTOCOL)
        );
    }

    const SERVER: &str = "127.0.0.1:5690";
    const METER: &str = "127.0.0.1:40000";

    /// A file server on the same virtual clock answering every GET with `body`: a plain CoAP
    /// endpoint, behind a DTLS server knowing `psk` when given.
    struct FileServer {
        coap: CoapEndpoint,
        dtls: Option<DtlsServer>,
        body: Vec<u8>,
    }

    impl FileServer {
        fn new(body: &[u8], psk: Option<(&str, &[u8])>) -> FileServer {
            let dtls = psk.map(|(identity, key)| {
                let mut store = InMemoryPskStore::new();
                store.insert(identity, key.to_vec());
                DtlsServer::new(DtlsServerConfig::default(), Arc::new(store)).unwrap()
            });
            FileServer {
                coap: CoapEndpoint::new(CoapConfig::default(), 9),
                dtls,
                body: body.to_vec(),
            }
        }

        /// Datagram in; datagrams out (to the meter), unless dropped.
        fn receive(&mut self, now: Instant, bytes: &[u8]) {
            let meter: SocketAddr = METER.parse().unwrap();
            match self.dtls.as_mut() {
                None => self.coap.handle_datagram(now, meter, bytes),
                Some(dtls) => {
                    dtls.handle_datagram(now, meter, bytes);
                    while let Some(ev) = dtls.poll_event() {
                        if let ServerEvent::Data { bytes, .. } = ev {
                            self.coap.handle_datagram(now, meter, &bytes);
                        }
                    }
                }
            }
            self.serve(now);
        }

        fn serve(&mut self, now: Instant) {
            while let Some(ev) = self.coap.poll_event() {
                if let Event::Request {
                    request, responder, ..
                } = ev
                {
                    assert_eq!(request.path(), ["fw", "pkg"]);
                    self.coap
                        .respond(
                            now,
                            responder,
                            Response::new(Code::CONTENT).with_payload(self.body.clone()),
                        )
                        .unwrap();
                }
            }
        }

        fn transmits(&mut self, now: Instant) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            while let Some(t) = self.coap.poll_transmit() {
                match self.dtls.as_mut() {
                    None => out.push(t.bytes),
                    Some(dtls) => {
                        let _ = dtls.send(now, t.peer, &t.bytes);
                    }
                }
            }
            if let Some(dtls) = self.dtls.as_mut() {
                while let Some((_, bytes)) = dtls.poll_transmit() {
                    out.push(bytes);
                }
            }
            out
        }

        fn poll_timeout(&self) -> Option<Instant> {
            let dtls = self.dtls.as_ref().and_then(DtlsServer::poll_timeout);
            [self.coap.poll_timeout(), dtls].into_iter().flatten().min()
        }

        fn handle_timeout(&mut self, now: Instant) {
            self.coap.handle_timeout(now);
            if let Some(dtls) = self.dtls.as_mut() {
                dtls.handle_timeout(now);
            }
        }
    }

    /// Runs one transfer of `uri` to its end; `drop_after`: the server's datagrams after that
    /// many are lost.
    fn run(
        server: &mut FileServer,
        uri: &str,
        credential: Option<&PskCredential>,
        inject: Option<Injected>,
        drop_after: Option<usize>,
    ) -> Result<Vec<u8>, i64> {
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let mut now = Instant::now();
        let mut d = Download::start(now, uri, 1, inject, credential).unwrap();
        let mut delivered = 0usize;
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some((peer, bytes)) = d.poll_transmit() {
                assert_eq!(peer, server_addr);
                server.receive(now, &bytes);
                moved = true;
            }
            for bytes in server.transmits(now) {
                moved = true;
                if drop_after.is_some_and(|n| delivered >= n) {
                    continue;
                }
                delivered += 1;
                d.handle_datagram(now, server_addr, &bytes);
            }
            if let Some(outcome) = d.take_outcome() {
                return outcome;
            }
            if moved {
                continue; // time stands still while datagrams are in flight
            }
            let next = [d.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            now = now.max(next);
            d.handle_timeout(now);
            server.handle_timeout(now);
        }
        panic!("the transfer never ended");
    }

    fn transfer(
        body: &[u8],
        inject: Option<Injected>,
        drop_after: Option<usize>,
    ) -> Result<Vec<u8>, i64> {
        let mut server = FileServer::new(body, None);
        run(
            &mut server,
            "coap://127.0.0.1:5690/fw/pkg",
            None,
            inject,
            drop_after,
        )
    }

    fn credential(identity: &str, key: &[u8]) -> PskCredential {
        PskCredential {
            identity: identity.as_bytes().to_vec(),
            key: key.to_vec(),
        }
    }

    #[test]
    fn a_package_arrives_block_by_block() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(transfer(&body, None, None), Ok(body));
    }

    #[test]
    fn failures_give_their_result_codes() {
        let body = vec![7u8; 5000];
        assert_eq!(
            transfer(&body, Some(Injected::ConnectionLost), None),
            Err(result::CONNECTION_LOST)
        );
        assert_eq!(
            transfer(&body, Some(Injected::OutOfMemory), None),
            Err(result::OUT_OF_RAM)
        );
        // The server goes silent after two blocks: retransmissions run out.
        assert_eq!(transfer(&body, None, Some(2)), Err(result::CONNECTION_LOST));
    }

    #[test]
    fn a_package_arrives_over_dtls_with_the_meters_psk() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 249) as u8).collect();
        let key = [5u8; 16];
        let mut server = FileServer::new(&body, Some(("meter-1", &key)));
        let cred = credential("meter-1", &key);
        let uri = "coaps://127.0.0.1:5690/fw/pkg";
        assert_eq!(run(&mut server, uri, Some(&cred), None, None), Ok(body));
        assert_eq!(
            server.dtls.as_ref().unwrap().stats().handshakes_completed,
            1
        );
    }

    #[test]
    fn dtls_failures_give_connection_lost() {
        let body = vec![3u8; 5000];
        let uri = "coaps://127.0.0.1:5690/fw/pkg";
        // The file server does not know the identity, or holds another key for it.
        for (identity, key) in [("stranger", [5u8; 16]), ("meter-1", [6u8; 16])] {
            let mut server = FileServer::new(&body, Some(("meter-1", &[5u8; 16])));
            let cred = credential(identity, &key);
            assert_eq!(
                run(&mut server, uri, Some(&cred), None, None),
                Err(result::CONNECTION_LOST),
                "{identity}"
            );
        }
        // Injected faults act on the first block inside the session.
        let mut server = FileServer::new(&body, Some(("meter-1", &[5u8; 16])));
        let cred = credential("meter-1", &[5u8; 16]);
        assert_eq!(
            run(
                &mut server,
                uri,
                Some(&cred),
                Some(Injected::OutOfMemory),
                None
            ),
            Err(result::OUT_OF_RAM)
        );
    }
}
