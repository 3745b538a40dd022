//! `ferrite-sim` against the real server binary (`ferrite serve` as a child process, real UDP
//! and DTLS sockets, a temporary SQLite file): simulated meters (the `client_sim` library run
//! in-process, configured through its own command line) — 1,000 by default (another size with
//! `FERRITE_SIM_FLEET_METERS`, e.g. 200 on a slow machine) — half NoSec and half DTLS PSK, each half mixed LwM2M 1.0 /
//! 1.1, provisioned through the server's HTTP API (the `--api` code path: CSV import for the DTLS
//! meters, one POST per NoSec meter; a second provisioning run reuses them all). They register;
//! reads through the HTTP API come back with the simulated values; readings flow (1.1 by Send
//! with their own timestamps, 1.0 as notifications of the observed /10243/0) through a scheduled
//! outage at 360× simulated time; after a graceful stop the simulator's ledger is compared with
//! what the server published on its event stream (`GET /api/v1/events`; the server has no
//! readings store yet): every acknowledged reading arrived, none arrived twice (natural key:
//! meter + timestamp), none is acknowledged twice, and nothing older than the last hour is left
//! unacknowledged (the outage backlog was replayed).
//!
//! A second test updates firmware by pull: the Package URI written through the HTTP API points
//! at a [`CoapFileServer`]; the meter fetches the package block-wise, checks its SHA-256 and
//! reports Downloaded; Execute Update restarts it with the new version and result 1. A corrupt
//! package ends in result 5, a missing one in 7, and a version given as bad installs but then
//! restarts every simulated hour and reports error code 8, as the ledger records. The same pull
//! over `coaps://` runs inside a DTLS PSK session with the meter's own credential; a file server
//! that does not know the meter's identity makes it report 4 (connection lost).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::process::{Child, Command, Stdio};

use client_sim::cli::{RunArgs, unix_now};
use client_sim::fleet::{Fleet, FleetConfig, FleetReport};
use client_sim::ground_truth::GroundTruth;
use client_sim::provision::{ApiClient, provision};
use serde_json::{Value as Json, json};
use server::lwm2m::{DeviceEvent, ValueView};
use tests::coap_files::CoapFileServer;
use tests::flood::ferrite_binary;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "e2e-token-0123456789";
/// Meters of the whole test fleet: `FERRITE_SIM_FLEET_METERS` (at least 20), else the 1,000 the
/// issue asks for (about 40 s on the shared 2-core machine, most of it the fixed [`RUN`]). Half
/// of them NoSec, half DTLS.
fn fleet_meters() -> u32 {
    std::env::var("FERRITE_SIM_FLEET_METERS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n >= 20)
        .unwrap_or(1000)
}
/// Simulated seconds per real second: an hour every 10 s.
const SPEED: f64 = 360.0;
/// How long the fleets run (real): 3.5 simulated hours, 14 readings per meter.
const RUN: Duration = Duration::from_secs(35);

/// What the server published, collected by a task that drains the event stream.
#[derive(Debug, Default)]
struct Seen {
    registered: HashSet<String>,
    /// (endpoint, timestamp) of each 10243/0/14 record that came by Send.
    sent: Vec<(String, i64)>,
    /// (endpoint, kWh) of each 10243/0/14 value that came by notification.
    notified: Vec<(String, f64)>,
    /// (endpoint, kWh) of each value an Observe was answered with: a reading when the meter's
    /// confirmable notification stood as the response, else the meter's current state (then
    /// possibly a reading already received, or none at all) — counted once, on its natural key.
    initial: Vec<(String, f64)>,
}

fn run_args(server: &str, prefix: &str, per_kind: u32, ledger: &FsPath, sim_start: i64) -> RunArgs {
    RunArgs::parse_from_options([
        "--server",
        server,
        "--meters",
        per_kind.to_string().as_str(),
        "--endpoint-prefix",
        prefix,
        "--lwm2m",
        "mix",
        "--speed",
        SPEED.to_string().as_str(),
        "--sim-start",
        sim_start.to_string().as_str(),
        "--seed",
        "11",
        // Reboots and queue mode would end the server's observations of the 1.0 meters, which
        // this test sets up once; they have tests of their own.
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--start-rate",
        "400",
        "--workers",
        "1",
        // 30 simulated minutes in, a third of each fleet loses the network for an hour.
        "--outage",
        "30m:1h",
        "--outage-share",
        "0.33",
        "--stop-flush",
        "6s",
        "--progress",
        "none",
        "--ledger",
        ledger.to_str().unwrap(),
    ])
    .unwrap()
}

/// `ferrite serve` as a child process (the binary of this build, see [`ferrite_binary`]) on a
/// temporary SQLite file, NoSec enabled, every socket on a free loopback port.
struct Ferrite {
    child: Child,
    http: SocketAddr,
    coap: SocketAddr,
    coaps: SocketAddr,
    bs_coap: SocketAddr,
    bs_coaps: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Ferrite {
    fn drop(&mut self) {
        // Only the child this value started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Ferrite {
    async fn start() -> Ferrite {
        let dir = tempfile::tempdir().unwrap();
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (coap, coaps, bs_coap, bs_coaps) = (free_udp(), free_udp(), free_udp(), free_udp());
        let log = dir.path().join("ferrite.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let key: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        let child = Command::new(ferrite_binary())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env(
                "FERRITE_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("ferrite.db").display()),
            )
            .env("FERRITE_SECRET_KEY", key)
            .env("FERRITE_API_TOKEN", TOKEN)
            .env("FERRITE_HTTP_ADDR", http.to_string())
            .env("FERRITE_COAP_ADDR", coap.to_string())
            .env("FERRITE_COAPS_ADDR", coaps.to_string())
            .env("FERRITE_BS_COAP_ADDR", bs_coap.to_string())
            .env("FERRITE_BS_COAPS_ADDR", bs_coaps.to_string())
            .env("FERRITE_NOSEC", "true")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let ferrite = Ferrite {
            child,
            http,
            coap,
            coaps,
            bs_coap,
            bs_coaps,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(http).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "ferrite did not start: {}",
                ferrite.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ferrite
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Follows `GET /api/v1/events` (server-sent events) and hands every event to `on_event`;
    /// returns once the stream is open (the server has subscribed), with the task reading it.
    /// `lagged` messages are counted in `lagged`.
    async fn follow_events(
        &self,
        lagged: Arc<Mutex<u64>>,
        mut on_event: impl FnMut(DeviceEvent) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        // HTTP/1.0: the answer is close-delimited rather than chunked, so the body is the bare
        // event stream.
        let request = format!(
            "GET /api/v1/events HTTP/1.0\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
             accept: text/event-stream\r\n\r\n",
            self.http
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.contains(" 200 "), "events: {line}");
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let json: Json = serde_json::from_str(data.trim()).unwrap();
                if json["event"] == "lagged" {
                    *lagged.lock().unwrap() += json["missed"].as_u64().unwrap_or(1);
                    continue;
                }
                let event: DeviceEvent = serde_json::from_value(json.clone())
                    .unwrap_or_else(|e| panic!("event {json}: {e}"));
                on_event(event);
            }
        })
    }
}

/// One HTTP exchange with the API (JSON in, JSON out).
async fn post(http: SocketAddr, path: &str, body: Json) -> (u16, Json) {
    exchange(http, "POST", path, body).await
}

/// One HTTP exchange with the API by `method` (JSON in, JSON out).
async fn exchange(http: SocketAddr, method: &'static str, path: &str, body: Json) -> (u16, Json) {
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let path = path.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        api.request(
            method,
            &path,
            "application/json",
            body.to_string().as_bytes(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let json = serde_json::from_slice(&answer.body).unwrap_or(Json::Null);
    (answer.status, json)
}

/// The server's DTLS lines of `GET /metrics` (handshakes by result, failures by reason, drops,
/// bounds hit), for the figures a run prints.
async fn dtls_metrics(http: SocketAddr) -> Vec<String> {
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let answer = tokio::task::spawn_blocking(move || api.request("GET", "/metrics", "", b""))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer.body)
        .lines()
        .filter(|l| l.contains("dtls") && !l.starts_with('#') && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}

/// Datagrams the kernel dropped on the UDP socket bound to `addr` (its receive buffer was full):
/// the `drops` column of /proc/net/udp; 0 where unavailable.
fn udp_socket_drops(addr: SocketAddr) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let port = format!(":{:04X}", addr.port());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            (local.ends_with(&port)).then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

fn value_of<'a>(body: &'a Json, path: &str) -> &'a Json {
    body["values"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["path"] == path))
        .map_or(&Json::Null, |x| &x["value"])
}

/// Ledger lines: (event, endpoint, timestamp, kWh of a produced line).
fn read_ledger(path: &FsPath) -> Vec<(String, String, i64, Option<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Json = serde_json::from_str(l).unwrap();
            (
                v["ev"].as_str().unwrap().to_owned(),
                v["ep"].as_str().unwrap().to_owned(),
                v["t"].as_i64().unwrap(),
                v["kwh"].as_f64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_simulated_meters_against_the_server() {
    let started = Instant::now();
    let per_kind = fleet_meters() / 2;
    let server = Ferrite::start().await;
    let http = server.http;
    let dir = tempfile::tempdir().unwrap();

    // Everything the server publishes, from before the first meter exists.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let lagged = Arc::new(Mutex::new(0u64));
    let collector = {
        let seen = Arc::clone(&seen);
        server
            .follow_events(Arc::clone(&lagged), move |event| record(&seen, event))
            .await
    };

    // Readings end an hour before now, so none is in the future.
    let sim_start = unix_now() as i64 - 86_400;
    let kinds = [
        ("sfn-", format!("coap://{}", server.coap)),
        ("sfd-", format!("coaps://{}", server.coaps)),
    ];
    let mut configs: Vec<(RunArgs, FleetConfig, PathBuf)> = Vec::new();
    for (prefix, uri) in &kinds {
        let ledger = dir.path().join(format!("{prefix}ledger.jsonl"));
        let args = run_args(uri, prefix, per_kind, &ledger, sim_start);
        let config = args.fleet_config(unix_now()).unwrap();
        configs.push((args, config, ledger));
    }

    // Provisioning through the API (what `--api` does), twice: the second run creates nothing.
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plans: Vec<_> = configs
        .iter()
        .map(|(args, config, _)| args.provision_plan(config))
        .collect();
    let provisioned = tokio::task::spawn_blocking(move || {
        let first: Vec<_> = plans
            .iter()
            .map(|p| provision(&api, p, &|_, _| {}).unwrap())
            .collect();
        let again: Vec<_> = plans
            .iter()
            .map(|p| provision(&api, p, &|_, _| {}).unwrap())
            .collect();
        (first, again)
    })
    .await
    .unwrap();
    for (first, again) in provisioned.0.iter().zip(&provisioned.1) {
        assert_eq!((first.created, first.reused), (per_kind as usize, 0));
        assert_eq!((again.created, again.reused), (0, per_kind as usize));
    }
    eprintln!(
        "provisioned {} meters in {:?}",
        2 * per_kind,
        started.elapsed()
    );

    let truths: Vec<GroundTruth> = configs
        .iter()
        .map(|(_, c, _)| GroundTruth::of_fleet(&c.profiles, c.meters, &c.meter.endpoint_prefix))
        .collect();
    let fleets: Vec<Fleet> = configs
        .iter()
        .map(|(_, c, _)| Fleet::start(c.clone()).unwrap())
        .collect();

    // The server observes /10243/0 of every 1.0 meter once it registered.
    let v10: Vec<String> = truths
        .iter()
        .flat_map(|t| t.endpoints.iter())
        .filter(|(_, m)| m.lwm2m == "1.0")
        .map(|(ep, _)| ep.clone())
        .collect();
    let mut observers = Vec::new();
    for ep in v10.clone() {
        let seen = Arc::clone(&seen);
        observers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !seen.lock().unwrap().registered.contains(&ep) {
                assert!(Instant::now() < deadline, "{ep} never registered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            loop {
                let (status, body) = post(
                    http,
                    &format!("/api/v1/devices/{ep}/observe"),
                    json!({"path": "/10243/0"}),
                )
                .await;
                if status == 200 && body["observation"].is_u64() {
                    return;
                }
                // Worth seeing when the ledger check fails (a notification of a first attempt).
                eprintln!("observe {ep}: {status} {body}; retrying");
                assert!(Instant::now() < deadline, "observe {ep}: {status} {body}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    for o in observers {
        o.await.unwrap();
    }
    assert_eq!(seen.lock().unwrap().registered.len(), 2 * per_kind as usize);
    eprintln!(
        "{} registered, 1.0 meters observed at {:?}",
        2 * per_kind,
        started.elapsed()
    );

    // Reads through the HTTP API answer what the simulator says its meters are.
    for truth in &truths {
        for (ep, meter) in truth.endpoints.iter().step_by(50) {
            let (status, body) = post(
                http,
                &format!("/api/v1/devices/{ep}/read"),
                json!({"paths": ["/3/0/0", "/3/0/1", "/3/0/3", "/10243/0/14"]}),
            )
            .await;
            assert_eq!(status, 200, "{ep}: {body}");
            assert_eq!(value_of(&body, "/3/0/0"), "Ferrite Sim Meters", "{body}");
            assert_eq!(value_of(&body, "/3/0/1"), meter.model, "{body}");
            assert_eq!(value_of(&body, "/3/0/3"), meter.firmware, "{body}");
            let kwh = value_of(&body, "/10243/0/14").as_f64().unwrap();
            assert!(kwh > 0.0, "{ep}: {body}");
        }
    }

    // Run through the outage and stop gracefully (flush, de-register).
    let run_left = RUN.saturating_sub(fleets[0].started().elapsed());
    tokio::time::sleep(run_left).await;
    let sim_end = fleets[0].clock().sim(Instant::now()) as i64;
    for f in &fleets {
        f.stop();
    }
    let reports: Vec<FleetReport> =
        tokio::task::spawn_blocking(move || fleets.into_iter().map(Fleet::join).collect())
            .await
            .unwrap();
    // The last events are published, but they reach this process over HTTP (a loaded machine
    // can hold them back for seconds): read until the stream has been quiet for 2 s.
    let count = || {
        let seen = seen.lock().unwrap();
        seen.sent.len() + seen.notified.len() + seen.registered.len()
    };
    let (mut last, mut quiet_since) = (count(), Instant::now());
    let give_up = Instant::now() + Duration::from_secs(30);
    while quiet_since.elapsed() < Duration::from_secs(2) && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if count() != last {
            (last, quiet_since) = (count(), Instant::now());
        }
    }
    collector.abort();
    // Figures for the handshake behaviour under load (measured, not asserted): the server's DTLS
    // counters, and datagrams its sockets lost to a full receive buffer.
    eprintln!(
        "server DTLS metrics: {:#?}; datagrams dropped by full receive buffers: coaps {}, coap {}",
        dtls_metrics(http).await,
        udp_socket_drops(server.coaps),
        udp_socket_drops(server.coap)
    );

    let mut produced = 0u64;
    let mut outages = 0u64;
    for r in &reports {
        eprintln!("{:?}", r.stats);
        produced += r.stats.readings_produced;
        outages += r.stats.outages;
        assert_eq!(r.stats.readings_evicted, 0);
        assert_eq!(r.socket_errors, 0);
        // Meters created through the API get in with their first handshake (the focused
        // `dtls_meters_created_through_the_api_handshake_the_first_time` asserts none fails).
        // Here 500 handshakes start at 400/s against a debug server whose socket buffer
        // overflows (tens to hundreds of datagrams lost, printed above). With rtc-dtls' fixed 1 s
        // timer, and its client dropping the timer on a duplicate HelloVerifyRequest, up to 10 %
        // failed at load 7; the meters' RFC 6347 backoff (`client_sim::meter::handshake`) brought
        // that to none in every run measured. A handshake failing only past its 60 s timeout,
        // 1 % are tolerated; every meter registering is asserted above.
        assert!(
            r.stats.handshake_failures * 100 <= u64::from(per_kind),
            "{:?}",
            r.stats
        );
    }
    // A third of each fleet has the scheduled outage.
    assert!(outages >= u64::from(per_kind) / 2, "outages {outages}");
    assert!(
        produced >= 2 * u64::from(per_kind) * 12,
        "produced {produced}"
    );

    // The ledger against the event stream.
    let seen = seen.lock().unwrap();
    assert_eq!(
        *lagged.lock().unwrap(),
        0,
        "the event collector fell behind"
    );
    let mut received_send: HashMap<(String, i64), u32> = HashMap::new();
    for key in &seen.sent {
        *received_send.entry(key.clone()).or_default() += 1;
    }
    let mut acked = HashSet::new();
    let mut kwh_time: HashMap<(String, u64), i64> = HashMap::new();
    let mut unacked_old = Vec::new();
    let mut ledger_produced = HashSet::new();
    for (_, _, ledger) in &configs {
        let lines = read_ledger(ledger);
        for (ev, ep, t, kwh) in &lines {
            match ev.as_str() {
                "produced" => {
                    kwh_time.insert((ep.clone(), kwh.unwrap().to_bits()), *t);
                    ledger_produced.insert((ep.clone(), *t));
                }
                "acked" => assert!(
                    acked.insert((ep.clone(), *t)),
                    "{ep} {t} acknowledged twice"
                ),
                _ => {}
            }
        }
    }
    for key in &ledger_produced {
        if !acked.contains(key) && key.1 < sim_end - 3600 {
            unacked_old.push(key.clone());
        }
    }
    let mut received_notify: HashMap<(String, i64), u32> = HashMap::new();
    for (ep, kwh) in &seen.notified {
        let t = kwh_time
            .get(&(ep.clone(), kwh.to_bits()))
            .unwrap_or_else(|| panic!("{ep}: notified {kwh} kWh, which it never produced"));
        *received_notify.entry((ep.clone(), *t)).or_default() += 1;
    }
    let received_initial: HashSet<(String, i64)> = seen
        .initial
        .iter()
        .filter_map(|(ep, kwh)| {
            kwh_time
                .get(&(ep.clone(), kwh.to_bits()))
                .map(|t| (ep.clone(), *t))
        })
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|k| {
            !received_send.contains_key(*k)
                && !received_notify.contains_key(*k)
                && !received_initial.contains(*k)
        })
        .collect();
    let twice: Vec<_> = received_send
        .iter()
        .chain(&received_notify)
        .filter(|(_, n)| **n > 1)
        .collect();
    eprintln!(
        "produced {produced}, acknowledged {}, server received {} by Send and {} by \
         notification, {} registered; {:?} in all",
        acked.len(),
        received_send.len(),
        received_notify.len(),
        seen.registered.len(),
        started.elapsed()
    );
    if !missing.is_empty() {
        // The ledger's own lines of the first few (how each was delivered: `via`).
        let lines: Vec<String> = configs
            .iter()
            .flat_map(|(_, _, ledger)| {
                std::fs::read_to_string(ledger)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|l| {
                missing.iter().take(3).any(|(ep, t)| {
                    l.contains(&format!("\"ep\":\"{ep}\"")) && l.contains(&format!("\"t\":{t}"))
                })
            })
            .collect();
        panic!(
            "{} acknowledged readings never received, e.g. {:?}; their ledger lines: {lines:#?}",
            missing.len(),
            missing.iter().take(10).collect::<Vec<_>>()
        );
    }
    assert!(twice.is_empty(), "received twice: {twice:?}");
    assert!(
        unacked_old.is_empty(),
        "{} readings older than an hour never acknowledged, e.g. {:?}",
        unacked_old.len(),
        unacked_old.first()
    );
    assert!(received_send.len() as u64 > produced / 3);
    assert!(received_notify.len() as u64 > produced / 3);
}

fn record(seen: &Mutex<Seen>, event: DeviceEvent) {
    let mut seen = seen.lock().unwrap();
    match event {
        DeviceEvent::Registered { registration, .. } => {
            seen.registered.insert(registration.endpoint);
        }
        DeviceEvent::Send {
            endpoint, records, ..
        } => {
            for r in records {
                if r.path == "/10243/0/14" {
                    seen.sent
                        .push((endpoint.clone(), r.time.unwrap_or(f64::NAN) as i64));
                }
            }
        }
        DeviceEvent::Notification {
            endpoint,
            values,
            initial,
            ..
        } => {
            for r in values {
                if r.path == "/10243/0/14"
                    && let ValueView::Float(kwh) = r.value
                {
                    if initial {
                        seen.initial.push((endpoint.clone(), kwh));
                    } else {
                        seen.notified.push((endpoint.clone(), kwh));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Reads `paths` of `ep` through the API until `done` accepts the answer (errors while the
/// meter restarts are retried), for up to 40 s.
async fn read_until(
    http: SocketAddr,
    ep: &str,
    paths: &[&str],
    done: impl Fn(&Json) -> bool,
) -> Json {
    read_until_within(http, ep, paths, Duration::from_secs(40), done).await
}

/// [`read_until`] for up to `within`.
async fn read_until_within(
    http: SocketAddr,
    ep: &str,
    paths: &[&str],
    within: Duration,
    done: impl Fn(&Json) -> bool,
) -> Json {
    let deadline = Instant::now() + within;
    let mut last = Json::Null;
    while Instant::now() < deadline {
        let (status, body) = post(
            http,
            &format!("/api/v1/devices/{ep}/read"),
            json!({"paths": paths, "wait_ms": 3000}),
        )
        .await;
        if status == 200 && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{ep}: {paths:?} never as expected; last answer {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_is_pulled_by_package_uri_and_a_bad_version_shows() {
    let server = Ferrite::start().await;
    let http = server.http;
    let files = CoapFileServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("fw-ledger.jsonl");
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coap://{}", server.coap).as_str(),
        "--meters",
        "4",
        "--endpoint-prefix",
        "sfw-",
        "--lwm2m",
        "1.1",
        "--speed",
        "360",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--bad-firmware",
        "9.9.9-bad",
        "--bad-firmware-effect",
        "both",
        "--bad-firmware-reboot-period",
        "1h",
        "--progress",
        "none",
        "--ledger",
        ledger.to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    tokio::task::spawn_blocking(move || provision(&api, &plan, &|_, _| {}).unwrap())
        .await
        .unwrap();
    let truth = GroundTruth::of_fleet(&config.profiles, config.meters, "sfw-");
    for model in ["FSM-E100", "FSM-E200", "FSM-E300"] {
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let good = client_sim::meter::firmware::build_package(model, "9.9.0", &payload);
        let mut corrupt = good.clone();
        corrupt[5000] ^= 0x55;
        files.put(&format!("fw/{model}/9.9.0"), good);
        files.put(&format!("fw/{model}/corrupt"), corrupt);
        files.put(
            &format!("fw/{model}/9.9.9-bad"),
            client_sim::meter::firmware::build_package(model, "9.9.9-bad", &payload),
        );
    }
    // Registrations that are restarts, by endpoint, as the event stream tells them.
    let reboots: Arc<Mutex<Vec<String>>> = Arc::default();
    let _events = {
        let reboots = Arc::clone(&reboots);
        server
            .follow_events(Arc::default(), move |event| {
                if let DeviceEvent::Registered {
                    registration,
                    reboot: true,
                } = event
                {
                    reboots.lock().unwrap().push(registration.endpoint);
                }
            })
            .await
    };
    let fleet = Fleet::start(config).unwrap();
    let eps: Vec<(String, &str)> = truth
        .endpoints
        .iter()
        .map(|(ep, m)| (ep.clone(), m.model))
        .collect();
    for (ep, _) in &eps {
        read_until(http, ep, &["/5/0/3"], |b| value_of(b, "/5/0/3") == 0).await;
    }
    let write_uri = |ep: String, uri: String| async move {
        let (status, body) = post(
            http,
            &format!("/api/v1/devices/{ep}/write"),
            json!({"path": "/5/0/1", "value": uri}),
        )
        .await;
        assert_eq!(status, 200, "{ep}: {body}");
    };
    let state_result = ["/5/0/3", "/5/0/5"];

    // A good package: Downloading → Downloaded, fetched block by block.
    let (good_ep, model) = eps[0].clone();
    let before = files.datagrams();
    write_uri(good_ep.clone(), files.uri(&format!("fw/{model}/9.9.0"))).await;
    read_until(http, &good_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 2
    })
    .await;
    assert!(
        files.datagrams() - before >= 20,
        "{} datagrams",
        files.datagrams() - before
    );
    // A corrupt one: integrity check failure (5), back to Idle; a missing one: invalid URI (7).
    let (bad_ep, model) = eps[1].clone();
    write_uri(bad_ep.clone(), files.uri(&format!("fw/{model}/corrupt"))).await;
    read_until(http, &bad_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 0 && value_of(b, "/5/0/5") == 5
    })
    .await;
    let (missing_ep, model) = eps[2].clone();
    write_uri(
        missing_ep.clone(),
        files.uri(&format!("fw/{model}/nothing")),
    )
    .await;
    read_until(http, &missing_ep, &state_result, |b| {
        value_of(b, "/5/0/5") == 7
    })
    .await;
    // A bad version installs like a good one.
    let (worse_ep, model) = eps[3].clone();
    write_uri(
        worse_ep.clone(),
        files.uri(&format!("fw/{model}/9.9.9-bad")),
    )
    .await;
    read_until(http, &worse_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 2
    })
    .await;

    // Execute Update: restart, register again, new version and result 1.
    for ep in [&good_ep, &worse_ep] {
        let (status, body) = post(
            http,
            &format!("/api/v1/devices/{ep}/execute"),
            json!({"path": "/5/0/2"}),
        )
        .await;
        assert_eq!(status, 200, "{ep}: {body}");
    }
    read_until(http, &good_ep, &["/3/0/3", "/5/0/5"], |b| {
        value_of(b, "/3/0/3") == "9.9.0" && value_of(b, "/5/0/5") == 1
    })
    .await;
    let updated_at = Instant::now();
    read_until(http, &worse_ep, &["/3/0/3", "/5/0/5"], |b| {
        value_of(b, "/3/0/3") == "9.9.9-bad" && value_of(b, "/5/0/5") == 1
    })
    .await;
    // The bad version reports error code 8 with its next reading, and restarts within the
    // simulated hour (10 s real) — a registration without de-registration.
    read_until(http, &worse_ep, &["/3/0/11"], |b| {
        b["values"].as_array().is_some_and(|v| {
            v.iter().any(|x| {
                x["path"].as_str().is_some_and(|p| p.starts_with("/3/0/11")) && x["value"] == 8
            })
        })
    })
    .await;
    let count = |ep: &str| reboots.lock().unwrap().iter().filter(|e| *e == ep).count();
    let at_update = count(&worse_ep);
    let deadline = Instant::now() + Duration::from_secs(25);
    while count(&worse_ep) < at_update + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reboots_after_update = count(&worse_ep) - at_update;
    // One restart is the update itself (its Register may have come before `events` saw it).
    assert!(
        reboots_after_update >= 1,
        "the bad firmware never restarted ({:?})",
        updated_at.elapsed()
    );
    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    eprintln!("{:?}", report.stats);
    assert_eq!(report.stats.firmware_downloads, 4);
    assert_eq!(report.stats.firmware_download_failures, 1);
    assert_eq!(report.stats.firmware_updates, 2);
    assert_eq!(report.stats.bad_firmware_installs, 1);
    assert!(report.stats.reboots >= 3, "{:?}", report.stats);

    // The ledger names the bad install for the health checks to be scored against.
    let lines: Vec<Json> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Json| v["ev"] == "firmware")
        .collect();
    let of = |ep: &str| {
        lines
            .iter()
            .find(|l| l["ep"] == ep)
            .cloned()
            .unwrap_or(Json::Null)
    };
    assert_eq!(
        (
            of(&good_ep)["version"].clone(),
            of(&good_ep)["result"].clone(),
            of(&good_ep)["bad"].clone()
        ),
        (json!("9.9.0"), json!(1), json!(false))
    );
    assert_eq!(
        (
            of(&worse_ep)["version"].clone(),
            of(&worse_ep)["bad"].clone()
        ),
        (json!("9.9.9-bad"), json!(true))
    );
}

/// Devices created through the API (CSV import, POST /devices) are known to the DTLS server at
/// once: their first handshake succeeds (regression: the new identities were not put into the
/// DTLS key cache, so every first handshake failed and the meters got in on their retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtls_meters_created_through_the_api_handshake_the_first_time() {
    let server = Ferrite::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coaps://{}", server.coaps).as_str(),
        "--meters",
        "10",
        "--endpoint-prefix",
        "sfh-",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--workers",
        "1",
        "--progress",
        "none",
        "--ledger",
        dir.path().join("ledger.jsonl").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let api = ApiClient::new(&format!("http://{}", server.http), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    tokio::task::spawn_blocking(move || provision(&api, &plan, &|_, _| {}).unwrap())
        .await
        .unwrap();
    let fleet = Fleet::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fleet.stats().registrations < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    assert_eq!(report.stats.registrations, 10, "{:?}", report.stats);
    assert_eq!(report.stats.handshake_failures, 0, "{:?}", report.stats);
}

/// `ferrite-sim --bootstrap`: meters created through the API with only their factory bootstrap
/// credential connect to the bootstrap server over DTLS, receive their LwM2M server account (a
/// fresh PSK the server generated), register with it, and answer reads through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_bootstrap_with_factory_credentials_then_register() {
    let server = Ferrite::start().await;
    let http = server.http;
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coaps://{}", server.coaps).as_str(),
        "--bootstrap",
        format!("coaps://{}", server.bs_coaps).as_str(),
        "--meters",
        "6",
        "--endpoint-prefix",
        "sfb-",
        "--lwm2m",
        "mix",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--workers",
        "1",
        "--progress",
        "none",
        "--ledger",
        dir.path().join("ledger.jsonl").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let truth = GroundTruth::of_fleet(&config.profiles, config.meters, "sfb-");
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    let (first, again) = tokio::task::spawn_blocking(move || {
        (
            provision(&api, &plan, &|_, _| {}).unwrap(),
            provision(&api, &plan, &|_, _| {}).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!((first.created, again.reused), (6, 6));
    let fleet = Fleet::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.stats().registrations < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (ep, meter) in &truth.endpoints {
        let body = read_until(http, ep, &["/3/0/0", "/3/0/1"], |b| {
            value_of(b, "/3/0/1") == meter.model
        })
        .await;
        assert_eq!(
            value_of(&body, "/3/0/0"),
            "Ferrite Sim Meters",
            "{ep}: {body}"
        );
    }
    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    eprintln!("{:?}", report.stats);
    assert_eq!(report.stats.bootstraps, 6, "{:?}", report.stats);
    assert_eq!(report.stats.bootstrap_failures, 0, "{:?}", report.stats);
    assert_eq!(report.stats.registrations, 6, "{:?}", report.stats);
    assert_eq!(report.stats.register_failures, 0, "{:?}", report.stats);
    assert!(server.log_text().matches("panicked").count() == 0);
}

/// `ferrite-sim --bootstrap coap://…` with `--server coap://…`: NoSec meters (created through
/// the API as plain NoSec devices) ask the NoSec bootstrap socket in clear, receive the coap://
/// account of the server's default bootstrap configuration (set to NoSec through the API),
/// register with it and answer reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nosec_meters_bootstrap_in_clear_then_register() {
    let server = Ferrite::start().await;
    let http = server.http;
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = exchange(
        http,
        "PUT",
        "/api/v1/bootstrap/configs/default",
        json!({
            "group": "default",
            "server_uri": format!("coap://{}", server.coap),
            "security_mode": "nosec",
            "lifetime_secs": 300,
            "binding": "U",
            "short_server_id": 9,
            "notification_storing": true,
        }),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coap://{}", server.coap).as_str(),
        "--bootstrap",
        format!("coap://{}", server.bs_coap).as_str(),
        "--meters",
        "6",
        "--endpoint-prefix",
        "sfbn-",
        "--lwm2m",
        "mix",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--workers",
        "1",
        "--progress",
        "none",
        "--ledger",
        dir.path().join("ledger.jsonl").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let truth = GroundTruth::of_fleet(&config.profiles, config.meters, "sfbn-");
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    let (first, again) = tokio::task::spawn_blocking(move || {
        (
            provision(&api, &plan, &|_, _| {}).unwrap(),
            provision(&api, &plan, &|_, _| {}).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!((first.created, again.reused), (6, 6));
    let fleet = Fleet::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.stats().registrations < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (ep, meter) in &truth.endpoints {
        let body = read_until(http, ep, &["/3/0/0", "/3/0/1", "/1/0/0"], |b| {
            value_of(b, "/3/0/1") == meter.model
        })
        .await;
        assert_eq!(
            value_of(&body, "/3/0/0"),
            "Ferrite Sim Meters",
            "{ep}: {body}"
        );
        // The Server instance the bootstrap wrote: the configuration's short server ID.
        assert_eq!(value_of(&body, "/1/0/0"), 9, "{ep}: {body}");
    }
    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    eprintln!("{:?}", report.stats);
    assert_eq!(report.stats.bootstraps, 6, "{:?}", report.stats);
    assert_eq!(report.stats.bootstrap_failures, 0, "{:?}", report.stats);
    assert_eq!(report.stats.registrations, 6, "{:?}", report.stats);
    assert_eq!(report.stats.register_failures, 0, "{:?}", report.stats);
    assert_eq!(report.stats.handshakes, 0, "{:?}", report.stats);
    assert!(server.log_text().matches("panicked").count() == 0);
}

/// A firmware pull goes through the same fault injection as the LwM2M traffic: with loss,
/// duplication and delay on every path the file server sees more datagrams than the package has
/// blocks (retransmissions, duplicates), and the pull still ends Downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firmware_pull_through_loss_duplication_and_delay_completes() {
    let server = Ferrite::start().await;
    let http = server.http;
    let files = CoapFileServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coap://{}", server.coap).as_str(),
        "--meters",
        "1",
        "--endpoint-prefix",
        "sfl-",
        "--lwm2m",
        "1.1",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--loss",
        "0.1",
        "--duplicate",
        "0.1",
        "--delay",
        "0.1",
        "--delay-max",
        "300ms",
        "--progress",
        "none",
        "--ledger",
        dir.path().join("ledger.jsonl").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    tokio::task::spawn_blocking(move || provision(&api, &plan, &|_, _| {}).unwrap())
        .await
        .unwrap();
    let truth = GroundTruth::of_fleet(&config.profiles, config.meters, "sfl-");
    let (ep, meter) = truth.endpoints.iter().next().unwrap();
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let package = client_sim::meter::firmware::build_package(meter.model, "9.9.1", &payload);
    let blocks = package.len().div_ceil(1024);
    files.put("fw/lossy", package);
    let fleet = Fleet::start(config).unwrap();
    read_until(http, ep, &["/5/0/3"], |b| value_of(b, "/5/0/3") == 0).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = post(
            http,
            &format!("/api/v1/devices/{ep}/write"),
            json!({"path": "/5/0/1", "value": files.uri("fw/lossy")}),
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{ep}: {status} {body}");
    }
    // 40 blocks at 10 % loss each way cost about 8 CoAP retransmission timeouts of 2–3 s (some
    // doubled), and the reads themselves are lossy: measured 31–52 s at load 6–7.
    // What is asserted is that the pull completes, not how fast.
    let pulling = Instant::now();
    read_until_within(
        http,
        ep,
        &["/5/0/3", "/5/0/5"],
        Duration::from_secs(120),
        |b| value_of(b, "/5/0/3") == 2,
    )
    .await;
    eprintln!("pulled through the faults in {:?}", pulling.elapsed());
    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    eprintln!(
        "{} blocks, {} datagrams at the file server; {:?}",
        blocks,
        files.datagrams(),
        report.stats
    );
    assert_eq!(report.stats.firmware_downloads, 1);
    assert_eq!(report.stats.firmware_download_failures, 0);
    assert!(
        files.datagrams() > blocks,
        "{} datagrams for {blocks} blocks: the pull saw no fault",
        files.datagrams()
    );
}

/// Firmware pull over `coaps://`: the meter opens a DTLS 1.2 PSK session to the file server with
/// its own LwM2M credential and fetches the package block-wise inside it. A meter the file
/// server knows pulls, installs and comes back with the new version and result 1; one whose
/// identity the file server does not know fails its handshake and reports 4 (connection lost) —
/// then keeps working: it answers reads, and once the file server learns its key its next pull
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_is_pulled_over_coaps_with_the_meters_psk() {
    let server = Ferrite::start().await;
    let http = server.http;
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs::parse_from_options([
        "--server",
        format!("coaps://{}", server.coaps).as_str(),
        "--meters",
        "2",
        "--endpoint-prefix",
        "sfs-",
        "--lwm2m",
        "1.1",
        "--problem-share",
        "0",
        "--queue-share",
        "0",
        "--progress",
        "none",
        "--ledger",
        dir.path().join("ledger.jsonl").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.fleet_config(unix_now()).unwrap();
    let api = ApiClient::new(&format!("http://{http}"), TOKEN).unwrap();
    let plan = args.provision_plan(&config);
    tokio::task::spawn_blocking(move || provision(&api, &plan, &|_, _| {}).unwrap())
        .await
        .unwrap();
    let truth = GroundTruth::of_fleet(&config.profiles, config.meters, "sfs-");
    let client_sim::meter::sim::Security::Psk {
        identity_prefix,
        secret,
    } = config.meter.security.clone()
    else {
        panic!("coaps:// meters use PSKs");
    };
    let psk = |ep: &str| {
        let identity = format!("{identity_prefix}{ep}");
        let key = client_sim::meter::sim::psk_key(&secret, &identity).to_vec();
        (identity.into_bytes(), key)
    };
    let eps: Vec<(String, &str)> = truth
        .endpoints
        .iter()
        .map(|(ep, m)| (ep.clone(), m.model))
        .collect();
    let (good_ep, good_model) = eps[0].clone();
    let (stranger_ep, stranger_model) = eps[1].clone();
    // The file server knows only the first meter's key.
    let files = CoapFileServer::start_dtls([psk(&good_ep)]).await;
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 247) as u8).collect();
    for model in [good_model, stranger_model] {
        files.put(
            &format!("fw/{model}/9.9.2"),
            client_sim::meter::firmware::build_package(model, "9.9.2", &payload),
        );
    }
    let fleet = Fleet::start(config).unwrap();
    for (ep, _) in &eps {
        read_until(http, ep, &["/5/0/3"], |b| value_of(b, "/5/0/3") == 0).await;
    }
    let write_uri = |ep: String, uri: String| async move {
        let (status, body) = post(
            http,
            &format!("/api/v1/devices/{ep}/write"),
            json!({"path": "/5/0/1", "value": uri}),
        )
        .await;
        assert_eq!(status, 200, "{ep}: {body}");
    };
    let state_result = ["/5/0/3", "/5/0/5"];

    // The known meter: Downloaded, block by block inside one session.
    write_uri(
        good_ep.clone(),
        files.uri(&format!("fw/{good_model}/9.9.2")),
    )
    .await;
    read_until(http, &good_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 2
    })
    .await;
    assert_eq!(files.handshakes_completed(), 1);
    assert!(files.datagrams() >= 20, "{} datagrams", files.datagrams());
    let (status, body) = post(
        http,
        &format!("/api/v1/devices/{good_ep}/execute"),
        json!({"path": "/5/0/2"}),
    )
    .await;
    assert_eq!(status, 200, "{good_ep}: {body}");
    read_until(http, &good_ep, &["/3/0/3", "/5/0/5"], |b| {
        value_of(b, "/3/0/3") == "9.9.2" && value_of(b, "/5/0/5") == 1
    })
    .await;

    // The stranger: its handshake fails, Update Result 4, back to Idle.
    let stranger_uri = files.uri(&format!("fw/{stranger_model}/9.9.2"));
    write_uri(stranger_ep.clone(), stranger_uri.clone()).await;
    read_until(http, &stranger_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 0 && value_of(b, "/5/0/5") == 4
    })
    .await;
    assert!(files.handshakes_failed() >= 1);
    assert_eq!(files.handshakes_completed(), 1);
    // It keeps working: its LwM2M session answers, and with its key known the pull succeeds.
    let body = read_until(http, &stranger_ep, &["/3/0/1"], |b| {
        value_of(b, "/3/0/1") == stranger_model
    })
    .await;
    assert_eq!(value_of(&body, "/3/0/1"), stranger_model);
    let (identity, key) = psk(&stranger_ep);
    files.add_psk(identity, key);
    write_uri(stranger_ep.clone(), stranger_uri).await;
    read_until(http, &stranger_ep, &state_result, |b| {
        value_of(b, "/5/0/3") == 2
    })
    .await;
    assert_eq!(files.handshakes_completed(), 2);

    fleet.stop();
    let report = tokio::task::spawn_blocking(move || fleet.join())
        .await
        .unwrap();
    eprintln!("{:?}", report.stats);
    assert_eq!(report.stats.firmware_downloads, 3, "{:?}", report.stats);
    assert_eq!(
        report.stats.firmware_download_failures, 1,
        "{:?}",
        report.stats
    );
    assert_eq!(report.stats.firmware_updates, 1, "{:?}", report.stats);
    // The LwM2M sessions were never disturbed by the file server's refusal.
    assert_eq!(report.stats.handshake_failures, 0, "{:?}", report.stats);
}
