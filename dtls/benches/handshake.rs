//! Handshake cost and session memory of `DtlsServer` (prints figures; `harness = false`).
//!
//! Methods:
//! - **Server CPU per handshake, same thread**: N full PSK (CCM_8) handshakes between in-memory
//!   clients and one server on one thread; only the server's calls (`handle_datagram`,
//!   `poll_transmit`, `poll_event`) are timed with `Instant`. Wall time inside those calls equals
//!   CPU time unless the thread is preempted, so the thread's CPU/wall ratio over the run is
//!   printed too.
//! - **Server CPU per handshake, own thread**: the server runs on its own thread fed by a channel,
//!   clients on another (64 handshakes in flight); the server thread's on-CPU time comes from
//!   `/proc/thread-self/schedstat` (nanoseconds), channel operations included.
//! - **Memory per idle session**: a counting global allocator (`stats_alloc`); bytes held by the
//!   server after M sessions are established and their clients dropped, divided by M. These are
//!   requested bytes; the resident-set growth is printed as a cross-check (it includes malloc's
//!   per-chunk overhead).
//! - **OpenSSL** (if `openssl` is installed): `openssl s_server -dtls1_2 -nocert -psk`, 200
//!   sequential `s_client` handshakes, server process CPU from `/proc/PID/schedstat`.
//!
//! Run: `cargo bench -p ferrite-dtls --bench handshake` (env `HANDSHAKES`, `SESSIONS` to change N, M).

use std::alloc::System;
use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrite_dtls::{
    ClientEvent, DtlsClient, DtlsClientConfig, DtlsEvent, DtlsServer, DtlsServerConfig,
    InMemoryPskStore,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEY: [u8; 16] = [0x5a; 16];

fn server_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 5684))
}

fn client_addr(n: usize) -> SocketAddr {
    // Spread over 10.0.0.0/8 so every client has its own address.
    let n = n as u32;
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 50_000))
}

fn identity(n: usize) -> String {
    format!("urn:imei:{:015}", n)
}

fn server(devices: usize) -> DtlsServer {
    let mut store = InMemoryPskStore::new();
    for n in 0..devices {
        store.insert(identity(n), KEY.to_vec());
    }
    let config = DtlsServerConfig {
        max_sessions: devices + 1,
        max_handshakes: devices + 1,
        ..Default::default()
    };
    DtlsServer::new(config, Arc::new(store)).expect("server")
}

fn new_client(n: usize, now: Instant) -> DtlsClient {
    let mut client = DtlsClient::new(DtlsClientConfig::new(identity(n), KEY)).expect("client");
    client.connect(now, server_addr()).expect("connect");
    client
}

/// Thread CPU time so far, from the scheduler's accounting (nanoseconds on CPU).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

fn process_cpu(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

fn resident_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One-thread run: returns (server time in its calls, total wall, total thread CPU, allocations
/// made inside server calls).
fn same_thread(handshakes: usize) -> (Duration, Duration, Duration, u64) {
    let mut server = server(handshakes);
    let start_wall = Instant::now();
    let start_cpu = thread_cpu();
    let mut server_time = Duration::ZERO;
    let mut server_allocations = 0u64;
    for n in 0..handshakes {
        let now = Instant::now();
        let mut client = new_client(n, now);
        let at = client_addr(n);
        let mut connected = false;
        for _ in 0..16 {
            let mut to_server = Vec::new();
            while let Some((_, datagram)) = client.poll_transmit() {
                to_server.push(datagram);
            }
            let region = Region::new(GLOBAL);
            let timer = Instant::now();
            let mut to_client = Vec::new();
            for datagram in &to_server {
                server.handle_datagram(now, at, datagram);
            }
            while let Some((_, datagram)) = server.poll_transmit() {
                to_client.push(datagram);
            }
            while let Some(event) = server.poll_event() {
                connected |= matches!(event, DtlsEvent::Connected { .. });
            }
            server_time += timer.elapsed();
            server_allocations += region.change().allocations as u64;
            for datagram in &to_client {
                client.handle_datagram(now, server_addr(), datagram);
            }
            if connected && client.is_connected() {
                break;
            }
        }
        assert!(
            connected && client.is_connected(),
            "handshake {n} did not complete"
        );
    }
    assert_eq!(server.stats().handshakes_completed as usize, handshakes);
    (
        server_time,
        start_wall.elapsed(),
        thread_cpu() - start_cpu,
        server_allocations,
    )
}

/// Two threads: returns the server thread's CPU time and the wall time of the run.
fn own_thread(handshakes: usize, in_flight: usize) -> (Duration, Duration) {
    let (to_server, server_inbox) = mpsc::channel::<(SocketAddr, Vec<u8>)>();
    let (to_clients, client_inbox) = mpsc::channel::<(SocketAddr, Vec<u8>)>();
    let (cpu_sender, cpu_report) = mpsc::channel::<Duration>();
    let started = Instant::now();
    let server_thread = std::thread::spawn(move || {
        let mut server = server(handshakes);
        let start = thread_cpu();
        let mut completed = 0;
        while completed < handshakes {
            let Ok((peer, datagram)) = server_inbox.recv() else {
                break;
            };
            server.handle_datagram(Instant::now(), peer, &datagram);
            while let Some(transmit) = server.poll_transmit() {
                if to_clients.send(transmit).is_err() {
                    break;
                }
            }
            while let Some(event) = server.poll_event() {
                completed += usize::from(matches!(event, DtlsEvent::Connected { .. }));
            }
        }
        let _ = cpu_sender.send(thread_cpu() - start);
    });

    let mut clients: HashMap<SocketAddr, DtlsClient> = HashMap::new();
    let mut next = 0;
    let mut done = 0;
    let flush = |clients: &mut HashMap<SocketAddr, DtlsClient>, at: SocketAddr| {
        if let Some(client) = clients.get_mut(&at) {
            while let Some((_, datagram)) = client.poll_transmit() {
                let _ = to_server.send((at, datagram));
            }
        }
    };
    while done < handshakes {
        while clients.len() < in_flight && next < handshakes {
            let at = client_addr(next);
            clients.insert(at, new_client(next, Instant::now()));
            flush(&mut clients, at);
            next += 1;
        }
        let Ok((at, datagram)) = client_inbox.recv() else {
            break;
        };
        let Some(client) = clients.get_mut(&at) else {
            continue;
        };
        client.handle_datagram(Instant::now(), server_addr(), &datagram);
        flush(&mut clients, at);
        let connected =
            std::iter::from_fn(|| clients.get_mut(&at).and_then(DtlsClient::poll_event))
                .any(|event| matches!(event, ClientEvent::Connected { .. }));
        if connected {
            clients.remove(&at);
            done += 1;
        }
    }
    let cpu = cpu_report.recv().unwrap_or_default();
    let _ = server_thread.join();
    (cpu, started.elapsed())
}

/// Establishes `sessions` sessions and returns the server-held bytes and the RSS growth.
fn memory(sessions: usize) -> (i64, i64, u64) {
    let rss_before = resident_bytes();
    let region = Region::new(GLOBAL);
    let mut server = server(sessions);
    let after_construction = region.change();
    // stats_alloc counts realloc growth into bytes_allocated already (and again in
    // bytes_reallocated), so held = allocated - deallocated.
    let held_by_server_before =
        after_construction.bytes_allocated as i64 - after_construction.bytes_deallocated as i64;
    let now = Instant::now();
    for n in 0..sessions {
        let at = client_addr(n);
        let mut client = new_client(n, now);
        for _ in 0..16 {
            while let Some((_, datagram)) = client.poll_transmit() {
                server.handle_datagram(now, at, &datagram);
            }
            while let Some((_, datagram)) = server.poll_transmit() {
                client.handle_datagram(now, server_addr(), &datagram);
            }
            if client.is_connected() {
                break;
            }
        }
        while server.poll_event().is_some() {}
        // The client is dropped here: what remains allocated belongs to the server.
    }
    assert_eq!(server.stats().sessions, sessions);
    let change = region.change();
    let held = change.bytes_allocated as i64 - change.bytes_deallocated as i64;
    let rss_growth = resident_bytes() as i64 - rss_before as i64;
    drop(server);
    (
        held - held_by_server_before,
        rss_growth,
        change.allocations as u64,
    )
}

fn free_udp_port() -> u16 {
    // Bind and release; s_server binds it right after.
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map_or(47_684, |addr| addr.port())
}

/// OpenSSL's own server CPU per PSK handshake (idle CPU over the same wall time subtracted), or
/// `None` if openssl is missing. Returns (handshake CPU, idle CPU subtracted, successes).
fn openssl_server(handshakes: usize) -> Option<(Duration, Duration, usize)> {
    Command::new("openssl").arg("version").output().ok()?;
    let port = free_udp_port();
    let key_hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    let mut server = Command::new("openssl")
        .args(["s_server", "-dtls1_2", "-nocert", "-quiet", "-accept"])
        .arg(port.to_string())
        .args([
            "-psk",
            &key_hex,
            "-psk_identity",
            &identity(0),
            "-cipher",
            "PSK-AES128-CCM8",
            "-naccept",
        ])
        .arg(handshakes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    // s_server wakes up on its own while idle; measure that rate to subtract it.
    let idle_start = process_cpu(server.id());
    std::thread::sleep(Duration::from_secs(2));
    let idle_per_second = (process_cpu(server.id()) - idle_start).as_secs_f64() / 2.0;
    let started = Instant::now();
    let before = process_cpu(server.id());
    let mut ok = 0;
    for _ in 0..handshakes {
        let mut child = Command::new("openssl")
            .args(["s_client", "-dtls1_2", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-psk_identity",
                &identity(0),
                "-psk",
                &key_hex,
                "-cipher",
                "PSK-AES128-CCM8",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut output = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut output);
        }
        let _ = child.wait();
        ok += usize::from(output.contains("PSK-AES128-CCM8"));
    }
    let cpu = process_cpu(server.id()) - before;
    let idle = Duration::from_secs_f64(idle_per_second * started.elapsed().as_secs_f64());
    let _ = server.kill();
    let _ = server.wait();
    Some((cpu.saturating_sub(idle), idle, ok))
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn micros(duration: Duration, count: usize) -> f64 {
    duration.as_secs_f64() * 1e6 / count.max(1) as f64
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments; keep that quick.
    let quick = std::env::args().any(|arg| arg == "--test");
    let handshakes = if quick {
        20
    } else {
        env_or("HANDSHAKES", 2000)
    };
    let sessions = if quick {
        100
    } else {
        env_or("SESSIONS", 10_000)
    };

    // Warm-up (first-use costs: lazy statics, page faults).
    let _ = same_thread(50.min(handshakes));

    let (server_time, wall, cpu, allocations) = same_thread(handshakes);
    println!("handshakes (TLS_PSK_WITH_AES_128_CCM_8, EMS), N = {handshakes}, one thread:");
    println!(
        "  server calls: {:.1} µs per handshake ({:.1} allocations); whole loop {:.1} µs wall, {:.1} µs CPU per handshake (client + server; CPU/wall {:.2})",
        micros(server_time, handshakes),
        allocations as f64 / handshakes as f64,
        micros(wall, handshakes),
        micros(cpu, handshakes),
        cpu.as_secs_f64() / wall.as_secs_f64(),
    );

    let (server_cpu, wall) = own_thread(handshakes, 64);
    println!(
        "  server on its own thread: {:.1} µs CPU per handshake (schedstat; channel ops included), {:.0} handshakes/s wall with clients on a second thread",
        micros(server_cpu, handshakes),
        handshakes as f64 / wall.as_secs_f64(),
    );

    let (held, rss, allocations) = memory(sessions);
    println!("idle established sessions, M = {sessions}:");
    println!(
        "  {:.0} bytes requested per session held by the server (counting allocator); RSS growth {:.0} bytes per session (includes the clients' freed memory kept by malloc); {:.0} allocations per handshake + session incl. client",
        held as f64 / sessions as f64,
        rss as f64 / sessions as f64,
        allocations as f64 / sessions as f64,
    );

    if quick {
        return;
    }
    match openssl_server(200) {
        Some((cpu, idle, ok)) => println!(
            "openssl s_server -dtls1_2 -nocert -psk (PSK-AES128-CCM8): {:.1} µs CPU per handshake over {ok} sequential s_client handshakes (process CPU minus {:.1} µs/handshake idle wake-ups; includes its per-connection setup)",
            micros(cpu, ok),
            micros(idle, ok)
        ),
        None => println!("openssl: not available, comparison skipped"),
    }
}
