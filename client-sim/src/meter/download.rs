//! Firmware pull (OMA LwM2M TS Core 1.1 §E.6, object 5 resource 1 "Package URI"): a GET of the
//! URI's path from the URI's host, the body fetched block by block (RFC 7959 §2.4 Block2,
//! reassembled by `lwm2m-proto`'s [`CoapEndpoint`]) on a socket of its own, sans I/O like the
//! rest of the meter. `coap://` only: a `coaps://` URI is answered with Update Result 9
//! (unsupported protocol), other schemes likewise, a URI without a usable host with 7 (invalid
//! URI). The transfer ends in the package bytes or an Update Result code: 4 connection lost
//! (the server stopped answering), 7 (the server answered 4.04 or another error), 3 out of
//! RAM (the body would exceed the limit). Injected faults (`--fota-failures`) end it the same
//! ways after the first block arrived.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, Event, FailureReason, Request, RequestId};

use super::firmware::result;

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

/// One transfer in progress.
#[derive(Debug)]
pub struct Download {
    endpoint: CoapEndpoint,
    peer: SocketAddr,
    request: RequestId,
    inject: Option<Injected>,
    outcome: Option<Result<Vec<u8>, i64>>,
}

/// Splits `coap://host:port/a/b?q` into the address and the path segments and queries.
pub fn parse_uri(uri: &str) -> Result<(SocketAddr, Vec<String>, Vec<String>), i64> {
    let rest = if let Some(rest) = uri.strip_prefix("coap://") {
        rest
    } else if uri.contains("://") {
        return Err(result::UNSUPPORTED_PROTOCOL);
    } else {
        return Err(result::INVALID_URI);
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(result::INVALID_URI);
    }
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_owned()
        } else {
            format!("{authority}:5683")
        }
    } else if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:5683")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|_| result::INVALID_URI)?
        .next()
        .ok_or(result::INVALID_URI)?;
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let queries = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((addr, segments, queries))
}

impl Download {
    /// Starts fetching `uri` at `now`; `Err` is the Update Result code for a URI that cannot be
    /// fetched at all.
    pub fn start(
        now: Instant,
        uri: &str,
        seed: u64,
        inject: Option<Injected>,
    ) -> Result<Download, i64> {
        let (peer, path, queries) = parse_uri(uri)?;
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
        let mut request = Request::get().with_path(path);
        for q in queries {
            request = request.with_query(q);
        }
        let request = endpoint.request(now, peer, request);
        Ok(Download {
            endpoint,
            peer,
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
        self.endpoint.handle_datagram(now, from, bytes);
        if let Some(fault) = self.inject {
            // The transfer has begun (a block arrived): fail it the injected way.
            self.endpoint.cancel(now, self.request);
            self.outcome = Some(Err(match fault {
                Injected::ConnectionLost => result::CONNECTION_LOST,
                Injected::OutOfMemory => result::OUT_OF_RAM,
            }));
            return;
        }
        self.drain_events();
    }

    /// Timers (retransmissions, giving up).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_none() {
            self.endpoint.handle_timeout(now);
            self.drain_events();
        }
    }

    /// The next datagram to send to [`peer`](Self::peer).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.endpoint.poll_transmit().map(|t| (t.peer, t.bytes))
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            None
        } else {
            self.endpoint.poll_timeout()
        }
    }

    /// The package, or the Update Result code of the failure, once the transfer ended.
    pub fn take_outcome(&mut self) -> Option<Result<Vec<u8>, i64>> {
        self.outcome.take()
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Response { id, response } if id == self.request => {
                    self.outcome = Some(if response.code == Code::CONTENT {
                        Ok(response.payload)
                    } else {
                        // 4.04 and friends: the URI names nothing downloadable.
                        Err(result::INVALID_URI)
                    });
                }
                Event::RequestFailed { id, reason } if id == self.request => {
                    self.outcome = Some(Err(match reason {
                        FailureReason::ResponseTooLarge { .. } => result::OUT_OF_RAM,
                        _ => result::CONNECTION_LOST,
                    }));
                }
                // Requests to this endpoint are not served (a stray peer).
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use lwm2m_proto::coap::Response;

    #[test]
    fn uris() {
        let (addr, path, query) = parse_uri("coap://127.0.0.1:5690/fw/E100/2.5.0?x=1").unwrap();
        assert_eq!(addr, "127.0.0.1:5690".parse::<SocketAddr>().unwrap());
        assert_eq!(path, ["fw", "E100", "2.5.0"]);
        assert_eq!(query, ["x=1"]);
        assert_eq!(parse_uri("coap://[::1]/f").unwrap().0.port(), 5683);
        assert_eq!(
            parse_uri("coaps://127.0.0.1/f").err(),
            Some(result::UNSUPPORTED_PROTOCOL)
        );
        assert_eq!(
            parse_uri("http://h/f").err(),
            Some(result::UNSUPPORTED_PROTOCOL)
        );
        assert_eq!(parse_uri("coap:///f").err(), Some(result::INVALID_URI));
        assert_eq!(parse_uri("firmware.bin").err(), Some(result::INVALID_URI));
    }

    /// A file server endpoint on the same virtual clock answering every GET with `body`.
    fn transfer(
        body: &[u8],
        inject: Option<Injected>,
        drop_after: Option<usize>,
    ) -> Result<Vec<u8>, i64> {
        let server_addr: SocketAddr = "127.0.0.1:5690".parse().unwrap();
        let meter_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut server = CoapEndpoint::new(CoapConfig::default(), 9);
        let mut now = Instant::now();
        let mut d = Download::start(now, "coap://127.0.0.1:5690/fw/pkg", 1, inject).unwrap();
        let mut delivered = 0usize;
        for _ in 0..10_000 {
            while let Some((peer, bytes)) = d.poll_transmit() {
                assert_eq!(peer, server_addr);
                server.handle_datagram(now, meter_addr, &bytes);
            }
            while let Some(ev) = server.poll_event() {
                if let Event::Request {
                    request, responder, ..
                } = ev
                {
                    assert_eq!(request.path(), ["fw", "pkg"]);
                    server
                        .respond(
                            now,
                            responder,
                            Response::new(Code::CONTENT).with_payload(body),
                        )
                        .unwrap();
                }
            }
            while let Some(t) = server.poll_transmit() {
                if drop_after.is_some_and(|n| delivered >= n) {
                    continue;
                }
                delivered += 1;
                d.handle_datagram(now, server_addr, &t.bytes);
            }
            if let Some(outcome) = d.take_outcome() {
                return outcome;
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
}
