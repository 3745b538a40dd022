//! [`CoapFileServer`]: a tiny CoAP file server for firmware pull tests — `lwm2m_proto`'s
//! sans-I/O [`CoapEndpoint`] on a tokio UDP socket on 127.0.0.1:0, answering `GET /<path>` with
//! the bytes put under that path (block-wise, RFC 7959 §2.4: the endpoint sends the first block
//! and serves the others from its Block2 cache as the client asks), 4.04 for an unknown path and
//! 4.05 for any other method. It counts the datagrams it received, so a test can see that a
//! download really went block by block.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Code, Event, Method, Response};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A running file server.
#[derive(Debug)]
pub struct CoapFileServer {
    addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    datagrams: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for CoapFileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CoapFileServer {
    /// Starts serving nothing on a free port of 127.0.0.1.
    pub async fn start() -> CoapFileServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let datagrams = Arc::new(AtomicUsize::new(0));
        let gets = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            socket,
            Arc::clone(&files),
            Arc::clone(&datagrams),
            Arc::clone(&gets),
        ));
        CoapFileServer {
            addr,
            files,
            datagrams,
            gets,
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

    /// The `coap://` URI of `path`.
    pub fn uri(&self, path: &str) -> String {
        format!("coap://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received (one per block requested, plus ACKs and retransmissions).
    pub fn datagrams(&self) -> usize {
        self.datagrams.load(Ordering::Relaxed)
    }

    /// GET requests answered with a body or 4.04 (a transfer's later blocks are served from the
    /// endpoint's Block2 cache and count only in [`datagrams`](Self::datagrams)).
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::Relaxed)
    }
}

async fn serve(
    socket: UdpSocket,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    datagrams: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
) {
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
            // A full socket buffer loses the datagram; CoAP retransmission covers it.
            let _ = socket.send_to(&t.bytes, t.peer).await;
        }
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = received else { continue };
                datagrams.fetch_add(1, Ordering::Relaxed);
                endpoint.handle_datagram(Instant::now(), peer, buf.get(..n).unwrap_or(&[]));
            }
            _ = tokio::time::sleep(wait) => endpoint.handle_timeout(Instant::now()),
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
                gets.fetch_add(1, Ordering::Relaxed);
                let path = request.path().join("/");
                match files.lock().unwrap().get(&path) {
                    Some(bytes) => Response::new(Code::CONTENT).with_payload(bytes.clone()),
                    None => Response::new(Code::NOT_FOUND),
                }
            };
            // Expired only if the request waited past its lifetime; nothing to do then.
            let _ = endpoint.respond(Instant::now(), responder, response);
        }
    }
}
