//! [`CoapFileServer`]: a tiny CoAP file server for firmware pull tests — `lwm2m_proto`'s
//! sans-I/O [`CoapEndpoint`] on a tokio UDP socket on 127.0.0.1:0, answering `GET /<path>` with
//! the bytes put under that path (block-wise, RFC 7959 §2.4: the endpoint sends the first block
//! and serves the others from its Block2 cache as the client asks), 4.04 for an unknown path and
//! 4.05 for any other method. It counts the datagrams it received, so a test can see that a
//! download really went block by block.
//!
//! [`CoapFileServer::start_dtls`] serves `coaps://` instead: the same endpoint behind
//! `ferrite-dtls`' sans-I/O [`DtlsServer`] (DTLS 1.2 PSK, the server side the LwM2M server
//! uses), driven the way the server's socket task drives it — every datagram and timer tick into
//! the DTLS server, decrypted application data into the CoAP endpoint with the peer's address,
//! the endpoint's datagrams encrypted back with `send`. Keys come from an identity → key map
//! the test fills ([`CoapFileServer::add_psk`]); an identity missing from it fails its handshake
//! like a wrong key (RFC 4279 §2).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrite_dtls::{DtlsEvent, DtlsServer, DtlsServerConfig, PskStore};
use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, Event, Method, Response};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Identity → key, shared between the test and the DTLS server's synchronous lookup.
#[derive(Default)]
struct Keys(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

impl PskStore for Keys {
    fn key(&self, identity: &[u8]) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(identity).cloned()
    }
}

/// Handshake outcomes of a DTLS file server.
#[derive(Debug, Default)]
struct Handshakes {
    completed: AtomicUsize,
    failed: AtomicUsize,
}

/// A running file server.
pub struct CoapFileServer {
    addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    datagrams: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    /// `Some` in DTLS mode.
    keys: Option<Arc<Keys>>,
    handshakes: Arc<Handshakes>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for CoapFileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoapFileServer")
            .field("addr", &self.addr)
            .field("dtls", &self.keys.is_some())
            .field("datagrams", &self.datagrams())
            .finish_non_exhaustive() // never the keys
    }
}

impl Drop for CoapFileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CoapFileServer {
    /// Starts serving nothing over `coap://` on a free port of 127.0.0.1.
    pub async fn start() -> CoapFileServer {
        Self::spawn(None).await
    }

    /// Starts serving nothing over `coaps://` (DTLS 1.2 PSK) on a free port of 127.0.0.1,
    /// knowing the PSKs in `psks` (identity, key); more with [`add_psk`](Self::add_psk).
    pub async fn start_dtls(psks: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> CoapFileServer {
        let keys = Keys::default();
        keys.0.lock().unwrap().extend(psks);
        Self::spawn(Some(Arc::new(keys))).await
    }

    async fn spawn(keys: Option<Arc<Keys>>) -> CoapFileServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let datagrams = Arc::new(AtomicUsize::new(0));
        let gets = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(Handshakes::default());
        let dtls = keys.as_ref().map(|keys| {
            let store: Arc<dyn PskStore> = keys.clone();
            DtlsServer::new(DtlsServerConfig::default(), store).unwrap()
        });
        let task = tokio::spawn(serve(
            socket,
            dtls,
            Counters {
                files: Arc::clone(&files),
                datagrams: Arc::clone(&datagrams),
                gets: Arc::clone(&gets),
                handshakes: Arc::clone(&handshakes),
            },
        ));
        CoapFileServer {
            addr,
            files,
            datagrams,
            gets,
            keys,
            handshakes,
            task,
        }
    }

    /// Serves `bytes` at `path` (segments separated by `/`, no leading `/`).
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.trim_start_matches('/').to_owned(), bytes);
    }

    /// Lets `identity` in with `key` (DTLS mode; ignored in clear).
    pub fn add_psk(&self, identity: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) {
        if let Some(keys) = &self.keys {
            keys.0.lock().unwrap().insert(identity.into(), key.into());
        }
    }

    /// The `coap://` (or, in DTLS mode, `coaps://`) URI of `path`.
    pub fn uri(&self, path: &str) -> String {
        let scheme = if self.keys.is_some() { "coaps" } else { "coap" };
        format!("{scheme}://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received (one per block requested, plus ACKs and retransmissions; in DTLS mode
    /// handshake datagrams too).
    pub fn datagrams(&self) -> usize {
        self.datagrams.load(Ordering::Relaxed)
    }

    /// GET requests answered with a body or 4.04 (a transfer's later blocks are served from the
    /// endpoint's Block2 cache and count only in [`datagrams`](Self::datagrams)).
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::Relaxed)
    }

    /// DTLS handshakes completed.
    pub fn handshakes_completed(&self) -> usize {
        self.handshakes.completed.load(Ordering::Relaxed)
    }

    /// DTLS handshakes that failed (unknown identity, wrong key, timeout …).
    pub fn handshakes_failed(&self) -> usize {
        self.handshakes.failed.load(Ordering::Relaxed)
    }
}

/// What the serving task shares with the handle.
struct Counters {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    datagrams: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    handshakes: Arc<Handshakes>,
}

async fn serve(socket: UdpSocket, mut dtls: Option<DtlsServer>, counters: Counters) {
    let config = CoapConfig {
        // Many meters may fetch at once; each cached body is one package.
        max_block2_cache_entries: 4096,
        ..CoapConfig::default()
    };
    let mut endpoint = CoapEndpoint::new(config, 0xF11E);
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        while let Some(t) = endpoint.poll_transmit() {
            match dtls.as_mut() {
                // A full socket buffer loses the datagram; CoAP retransmission covers it.
                None => {
                    let _ = socket.send_to(&t.bytes, t.peer).await;
                }
                // A session gone meanwhile loses it the same way.
                Some(dtls) => {
                    let _ = dtls.send(now, t.peer, &t.bytes);
                }
            }
        }
        if let Some(dtls) = dtls.as_mut() {
            while let Some((peer, bytes)) = dtls.poll_transmit() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
        let next = [
            endpoint.poll_timeout(),
            dtls.as_ref().and_then(DtlsServer::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = next.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = received else { continue };
                counters.datagrams.fetch_add(1, Ordering::Relaxed);
                let bytes = buf.get(..n).unwrap_or(&[]);
                match dtls.as_mut() {
                    None => endpoint.handle_datagram(Instant::now(), peer, bytes),
                    Some(dtls) => dtls.handle_datagram(Instant::now(), peer, bytes),
                }
            }
            _ = tokio::time::sleep(wait) => {
                endpoint.handle_timeout(Instant::now());
                if let Some(dtls) = dtls.as_mut() {
                    dtls.handle_timeout(Instant::now());
                }
            }
        }
        if let Some(dtls) = dtls.as_mut() {
            while let Some(event) = dtls.poll_event() {
                match event {
                    DtlsEvent::Data { peer, bytes, .. } => {
                        endpoint.handle_datagram(Instant::now(), peer, &bytes);
                    }
                    DtlsEvent::Connected { .. } => {
                        counters
                            .handshakes
                            .completed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    DtlsEvent::HandshakeFailed { .. } => {
                        counters.handshakes.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
        while let Some(event) = endpoint.poll_event() {
            let Event::Request {
                request, responder, ..
            } = event
            else {
                continue;
            };
            let response = if request.method != Method::Get {
                Response::new(Code::METHOD_NOT_ALLOWED)
            } else {
                counters.gets.fetch_add(1, Ordering::Relaxed);
                let path = request.path().join("/");
                match counters.files.lock().unwrap().get(&path) {
                    Some(bytes) => Response::new(Code::CONTENT).with_payload(bytes.clone()),
                    None => Response::new(Code::NOT_FOUND),
                }
            };
            // Expired only if the request waited past its lifetime; nothing to do then.
            let _ = endpoint.respond(Instant::now(), responder, response);
        }
    }
}
