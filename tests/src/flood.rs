//! Helpers of the DTLS flood test (`tests/tests/dtls_flood.rs`): the `ferrite` binary run as a
//! separate process on loopback (so its memory can be read from `/proc/<pid>/status`) over a
//! SQLite file provisioned beforehand with PSK devices, a few lines of HTTP/1.1 for device reads,
//! and the hostile traffic: ClientHello floods from many source ports, garbage records, and
//! handshakes abandoned right after the cookie exchange.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrite_dtls::{DtlsClient, DtlsClientConfig};
use server::fleet::lifecycle::Actor;
use server::fleet::secrets::ServerKey;
use server::store::Store;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::harness::Credentials;

/// The static admin token the process is started with.
pub const TOKEN: &str = "flood-token-0123456789";

/// A `ferrite serve` child process. Killed when dropped.
#[derive(Debug)]
pub struct FerriteProcess {
    child: Child,
    pub http: SocketAddr,
    pub coaps: SocketAddr,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Drop for FerriteProcess {
    fn drop(&mut self) {
        // Only the child this value started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ferrite` binary of this build, built if missing (the tests crate cannot depend on a
/// binary): `<target>/debug/ferrite`, `<target>` found from this test executable's path.
///
/// `FERRITE_BINARY` names a binary to use as it is: scripts/test.sh sets it to the one its
/// `cargo test --workspace --all-targets` just built (a `cargo build -p server` here would resolve
/// features differently and rebuild half the dependency tree, minutes on 2 cores).
pub fn ferrite_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRITE_BINARY").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/dtls_flood-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    // A no-op when it is up to date; cargo test does not hold the build lock while tests run.
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "server", "--bin", "ferrite"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "building the ferrite binary failed");
    profile_dir.join("ferrite")
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Creates `count` PSK devices `flood-meter-<n>` in a new SQLite file and returns the directory
/// and their credentials.
async fn provision(dir: &Path, key: [u8; 32], count: usize) -> Vec<(String, Credentials)> {
    let url = format!("sqlite://{}", dir.join("ferrite.db").display());
    let store = Store::connect(&url, ServerKey::from_bytes(key))
        .await
        .unwrap();
    let mut csv = String::from("endpoint,serial,model,tags,psk_identity,psk_key_hex\n");
    let mut devices = Vec::with_capacity(count);
    for n in 0..count {
        let endpoint = format!("flood-meter-{n:05}");
        let identity = format!("flood-id-{n:05}");
        let key: Vec<u8> = (0..16u8)
            .map(|i| i.wrapping_mul(31) ^ (n as u8) ^ ((n >> 8) as u8))
            .collect();
        csv.push_str(&format!(
            "{endpoint},SN-{n},FM-1,,{identity},{}\n",
            hex::encode(&key)
        ));
        devices.push((endpoint, Credentials { identity, key }));
    }
    let report = store
        .import_csv(csv.as_bytes(), &Actor::user("flood").unwrap())
        .await
        .unwrap();
    assert_eq!(report.accepted(), count, "import: {report:?}");
    store.close().await;
    devices
}

impl FerriteProcess {
    /// Provisions `devices` PSK devices and starts `ferrite serve` on free loopback ports, NoSec
    /// off; waits until its HTTP port answers.
    pub async fn start(devices: usize) -> (FerriteProcess, Vec<(String, Credentials)>) {
        let binary = ferrite_binary();
        let dir = tempfile::tempdir().unwrap();
        let mut key = [0u8; 32];
        server::fleet::secrets::random_bytes(&mut key).unwrap();
        let credentials = provision(dir.path(), key, devices).await;
        let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        let coaps = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        let log = dir.path().join("ferrite.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env(
                "FERRITE_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("ferrite.db").display()),
            )
            .env("FERRITE_SECRET_KEY", hex::encode(key))
            .env("FERRITE_API_TOKEN", TOKEN)
            .env("FERRITE_HTTP_ADDR", http.to_string())
            .env("FERRITE_COAPS_ADDR", coaps.to_string())
            // Not the default 5784: another test's server may hold it.
            .env(
                "FERRITE_BS_COAPS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], free_udp_port())).to_string(),
            )
            .env("FERRITE_NOSEC", "false")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let process = FerriteProcess {
            child,
            http,
            coaps,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(http).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "ferrite did not start: {}",
                process.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (process, credentials)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap()
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Reads `/3/0/9` (battery level) of `endpoint` through the HTTP API at `http`: `Ok` with the
/// value, or `Err` describing the failure.
pub async fn read_battery(http: SocketAddr, endpoint: &str) -> Result<i64, String> {
    let body = r#"{"paths":["/3/0/9"]}"#;
    let request = format!(
        "POST /api/v1/devices/{endpoint}/read HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer \
             {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: \
             close\r\n\r\n{body}",
        http,
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(http).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("{endpoint}: read timed out"))?
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{endpoint}: {head} {body}"));
    }
    // The body may be chunked; the value is found by its key either way.
    let json_start = body.find('{').unwrap_or(0);
    let json_end = body.rfind('}').map_or(body.len(), |i| i + 1);
    let json: serde_json::Value = serde_json::from_str(&body[json_start..json_end])
        .map_err(|e| format!("{endpoint}: {e}: {body}"))?;
    json["values"]
        .as_array()
        .and_then(|values| values.iter().find(|v| v["path"] == "/3/0/9"))
        .and_then(|v| v["value"].as_i64())
        .ok_or_else(|| format!("{endpoint}: no /3/0/9 in {json}"))
}

/// Counts of the hostile traffic sent and of the answers it got.
#[derive(Debug, Default)]
pub struct FloodCounts {
    pub client_hellos: AtomicU64,
    pub hello_verify_requests: AtomicU64,
    pub garbage: AtomicU64,
    pub truncated_handshakes: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
}

impl FloodCounts {
    fn sent(&self, counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A genuine first ClientHello (cookie-less) from a `DtlsClient`.
pub fn first_client_hello() -> Vec<u8> {
    let mut client = DtlsClient::new(DtlsClientConfig::new("flooder", vec![0x77; 16])).unwrap();
    client
        .connect(Instant::now(), SocketAddr::from(([127, 0, 0, 1], 1)))
        .unwrap();
    client.poll_transmit().unwrap().1
}

/// Drains whatever arrived on `socket` without waiting, counting it.
fn drain(socket: &UdpSocket, counts: &FloodCounts) {
    let mut buf = [0u8; 2048];
    while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
        counts
            .bytes_received
            .fetch_add(len as u64, Ordering::Relaxed);
        if buf.first() == Some(&22) && buf.get(13) == Some(&3) {
            counts.hello_verify_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `hellos` first ClientHellos to `target` from `ports` sockets, round robin, paced in bursts.
pub async fn hello_flood(target: SocketAddr, ports: usize, hellos: u64, counts: Arc<FloodCounts>) {
    let hello = first_client_hello();
    let mut sockets = Vec::with_capacity(ports);
    for _ in 0..ports {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    for n in 0..hellos {
        let socket = &sockets[n as usize % ports];
        if socket.send_to(&hello, target).await.is_ok() {
            counts.sent(&counts.client_hellos, hello.len());
        }
        if n % 200 == 199 {
            for socket in &sockets {
                drain(socket, &counts);
            }
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for socket in &sockets {
        drain(socket, &counts);
    }
}

/// `count` garbage datagrams: random bytes, epoch-1 application data records, alerts, truncated
/// and damaged ClientHellos, from `ports` sockets.
pub async fn garbage_flood(target: SocketAddr, ports: usize, count: u64, counts: Arc<FloodCounts>) {
    let hello = first_client_hello();
    let mut sockets = Vec::with_capacity(ports);
    for _ in 0..ports {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for n in 0..count {
        let r = next();
        let datagram: Vec<u8> = match n % 5 {
            0 => (0..(r % 600) as usize).map(|_| next() as u8).collect(),
            1 => {
                // RFC 6347 §4.1 record header, epoch 1, application data, random ciphertext.
                let mut record = vec![23, 0xfe, 0xfd, 0, 1, 0, 0];
                record.extend_from_slice(&(r as u32).to_be_bytes());
                record.extend_from_slice(&64u16.to_be_bytes());
                record.extend((0..64).map(|_| next() as u8));
                record
            }
            2 => vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40],
            3 => hello[..(r as usize % hello.len())].to_vec(),
            _ => {
                let mut damaged = hello.clone();
                let at = r as usize % damaged.len();
                damaged[at] ^= 0x5a;
                damaged
            }
        };
        let socket = &sockets[n as usize % ports];
        if socket.send_to(&datagram, target).await.is_ok() {
            counts.sent(&counts.garbage, datagram.len());
        }
        if n % 200 == 199 {
            for socket in &sockets {
                drain(socket, &counts);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// `count` handshakes, each from its own source port, that complete the cookie exchange (so the
/// server creates handshake state) and then go silent, `parallel` at a time.
pub async fn truncated_handshakes(
    target: SocketAddr,
    count: u64,
    parallel: usize,
    counts: Arc<FloodCounts>,
) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let next = next.clone();
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut client =
                    DtlsClient::new(DtlsClientConfig::new("flood-id-00000", vec![0x01; 16]))
                        .unwrap();
                client.connect(Instant::now(), target).unwrap();
                let (_, hello) = client.poll_transmit().unwrap();
                socket.send_to(&hello, target).await.unwrap();
                counts.sent(&counts.client_hellos, hello.len());
                let mut buf = [0u8; 2048];
                let Ok(Ok((len, _))) =
                    tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
                else {
                    continue;
                };
                counts
                    .bytes_received
                    .fetch_add(len as u64, Ordering::Relaxed);
                client.handle_datagram(Instant::now(), target, &buf[..len]);
                if let Some((_, second)) = client.poll_transmit() {
                    socket.send_to(&second, target).await.unwrap();
                    counts.sent(&counts.truncated_handshakes, second.len());
                }
                // The server's flight arrives; the client never answers it.
                drop(socket);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// `attempts` complete handshakes with a wrong key, one after the other, all from one source
/// address; returns how many got an answer to their first ClientHello (the rest were refused by
/// the server's per-address rate limit).
pub async fn wrong_key_handshakes(target: SocketAddr, identity: &str, attempts: u32) -> u32 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut answered = 0;
    for _ in 0..attempts {
        let mut client = DtlsClient::new(DtlsClientConfig::new(identity, vec![0xee; 16])).unwrap();
        client.connect(Instant::now(), target).unwrap();
        let mut got_answer = false;
        let deadline = Instant::now() + Duration::from_secs(2);
        'exchange: loop {
            while let Some((_, bytes)) = client.poll_transmit() {
                socket.send_to(&bytes, target).await.unwrap();
            }
            while let Some(event) = client.poll_event() {
                if matches!(event, ferrite_dtls::ClientEvent::Closed { .. }) {
                    break 'exchange;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = client
                .poll_timeout()
                .map_or(deadline, |at| at.min(deadline))
                .saturating_duration_since(now);
            let mut buf = [0u8; 2048];
            match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
                Ok(Ok((len, _))) => {
                    got_answer = true;
                    client.handle_datagram(Instant::now(), target, &buf[..len]);
                }
                _ => client.handle_timeout(Instant::now()),
            }
        }
        answered += u32::from(got_answer);
    }
    answered
}
