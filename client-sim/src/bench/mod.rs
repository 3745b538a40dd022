//! `ferrite-sim bench …`: load scenarios against a running server that print throughput,
//! latency percentiles and — given the server's pid — the server's CPU time per operation and
//! its resident set size, read from `/proc` (figures are printed, never asserted: the machine is
//! shared, so compare ratios taken in the same run).
//!
//! Scenarios: `register` (registration storm, NoSec or DTLS PSK with full handshakes),
//! `handshake` (DTLS handshake storm, against Ferrite or `openssl s_server`), `reads`
//! (server-initiated reads through the HTTP API, the simulated devices answering),
//! `fleet-reads` (the same through `POST /api/v1/fleet/read`, many devices per request), `send`
//! (LwM2M Send throughput), `echo` (a bare UDP echo loop as the floor, against the hidden
//! `echo-server`), and `provision` (creates the benchmark's devices through the API).
//! `scripts/bench.sh` runs them all twice and prints the ratios.

pub mod driver;
mod fleet_reads;
pub mod http;
pub mod procfs;
pub mod report;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;

use self::driver::{Control, Device, DeviceSpec, Driver, Factory, GO, HALT, Kind, Pinger};
use self::procfs::{ProcessCost, Sample, Watched};
use self::report::{BenchResult, Latency};
use crate::cli::{ProgressChoice, parse_duration};
use crate::fleet::parse_server_uri;
use crate::meter::{endpoint_name, psk_key};

const BENCH_EXAMPLES: &str = "\
Examples (a server started with NoSec on, its pid in $PID, FERRITE_API_TOKEN exported):
  ferrite-sim bench provision --http http://127.0.0.1:8080 --devices 10000 --security nosec \\
      --endpoint-prefix bn-
  ferrite-sim bench register --server coap://127.0.0.1:5683 --devices 10000 \\
      --endpoint-prefix bn- --server-pid $PID --json results.jsonl
  ferrite-sim bench handshake --server coaps://127.0.0.1:5684 --devices 2000 \\
      --endpoint-prefix bd- --server-pid $PID
  ferrite-sim bench reads --server coap://127.0.0.1:5683 --http http://127.0.0.1:8080 \\
      --devices 200 --endpoint-prefix bn- --requests 5000 --server-pid $PID
  ferrite-sim bench fleet-reads --server coap://127.0.0.1:5683 --http http://127.0.0.1:8080 \\
      --devices 200 --endpoint-prefix bn- --reads 20000 --server-pid $PID
  ferrite-sim bench send --server coap://127.0.0.1:5683 --devices 100 --endpoint-prefix bn- \\
      --duration 10s --server-pid $PID
  ferrite-sim bench echo-server --bind 127.0.0.1:7000 &
  ferrite-sim bench echo --target 127.0.0.1:7000 --sockets 64 --duration 10s --server-pid $!

Each scenario prints its figures; --json FILE appends them as one JSON line per run.
scripts/bench.sh builds, starts the server and runs everything twice with a summary table.";

/// `ferrite-sim bench`.
#[derive(Debug, Clone, Args)]
#[command(after_help = BENCH_EXAMPLES)]
pub struct BenchArgs {
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Registration storm: every device registers (after a full DTLS handshake with coaps://),
    /// stays registered for --hold, then de-registers. Prints registrations/s, Register latency,
    /// the server's CPU per registration and its RSS growth per registered device.
    Register(RegisterArgs),
    /// DTLS handshake storm: full PSK handshakes (each from a new port), closed at once.
    /// Against Ferrite (keys derived per device) or `openssl s_server` (--psk-identity,
    /// --psk-key-hex; use --concurrency 1: it serves one connection at a time).
    Handshake(HandshakeArgs),
    /// Server-initiated reads through the HTTP API (POST /api/v1/devices/{ep}/read), many at
    /// once, answered by simulated devices. With --devices 0 no device runs: the reads go to
    /// endpoints that are not registered, which measures the HTTP layer alone.
    Reads(ReadsArgs),
    /// Server-initiated reads through the fleet API (POST /api/v1/fleet/read): each request
    /// reads the same /3/0 paths on --batch devices at once. Counts CoAP reads; prints the
    /// server's CPU per CoAP read.
    FleetReads(fleet_reads::FleetReadsArgs),
    /// LwM2M Send throughput: each device sends the next Send as soon as the last is
    /// acknowledged, for --duration.
    Send(SendArgs),
    /// The floor: a closed loop of UDP datagrams against a bare echo server (`echo-server`),
    /// whose CPU per echo is what a datagram in and one out costs at least.
    Echo(EchoArgs),
    /// Creates the benchmark devices through the HTTP API: NoSec devices one by one, PSK devices
    /// with one CSV import (identity = prefix + endpoint, key derived from --psk-secret as the
    /// simulator does). Existing devices are left as they are.
    Provision(ProvisionArgs),
    /// A bare UDP echo server for the `echo` floor (one thread, blocking recv/send).
    #[command(hide = true)]
    EchoServer(EchoServerArgs),
}

/// Options every scenario has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The process whose CPU time and RSS are measured (the server, the echo server or
    /// openssl). Example: --server-pid $(pgrep -n ferrite)
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Append the result as one JSON line to FILE. Example: --json results.jsonl
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A label printed and written with the result. Example: --label "dtls round 2"
    #[arg(long, default_value = "")]
    pub label: String,
    /// Client worker threads (each polls its share of the sockets).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Progress display: bars on a terminal, plain lines otherwise (auto).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressChoice,
    /// After the load, wait at most this long for the measured process to go quiet (its
    /// deferred work, e.g. persisting registrations, belongs to the operations).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub settle: Duration,
    /// Give up on a phase (all registered, all handshakes) after this long.
    #[arg(long, value_parser = parse_duration, default_value = "180s")]
    pub timeout: Duration,
}

/// LwM2M version of the benchmark devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchVersion {
    /// LwM2M 1.0: a read of K paths is K parallel CoAP reads.
    #[value(name = "1.0")]
    V1_0,
    /// LwM2M 1.1: a read of K paths is one Read-Composite; Send works.
    #[value(name = "1.1")]
    V1_1,
}

/// The devices of a scenario.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// The LwM2M server: coap://HOST:PORT (NoSec) or coaps://HOST:PORT (DTLS PSK).
    /// Example: --server coaps://127.0.0.1:5684
    #[arg(long, short = 's')]
    pub server: String,
    /// Number of devices (each with its own UDP socket).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub devices: u32,
    /// Endpoint names are this prefix and a six-digit number: bn-000001. Use the prefix the
    /// devices were provisioned with.
    #[arg(long, default_value = "bench-")]
    pub endpoint_prefix: String,
    /// DTLS: the PSK identity is this prefix followed by the endpoint name.
    #[arg(long, default_value = "")]
    pub psk_identity_prefix: String,
    /// DTLS: the fleet secret keys are derived from (as `ferrite-sim keys` does).
    #[arg(
        long,
        env = "FERRITE_SIM_PSK_SECRET",
        hide_env_values = true,
        default_value = "ferrite-sim"
    )]
    pub psk_secret: String,
    /// Operations on the wire at once while starting and stopping (handshakes, Registers,
    /// De-registers).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// `bench register`.
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub devices: DeviceArgs,
    /// LwM2M version the devices register with.
    #[arg(long, value_enum, default_value = "1.1")]
    pub lwm2m: BenchVersion,
    /// How long every device stays registered before the RSS is read and they de-register.
    /// Example: --hold 5s
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub hold: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `bench handshake`.
#[derive(Debug, Clone, Args)]
pub struct HandshakeArgs {
    #[command(flatten)]
    pub devices: DeviceArgs,
    /// One identity for every handshake instead of per-device ones (for `openssl s_server
    /// -psk_identity`). Example: --psk-identity bench
    #[arg(long, requires = "psk_key_hex")]
    pub psk_identity: Option<String>,
    /// The key for --psk-identity, hex. Example: --psk-key-hex 000102030405060708090a0b0c0d0e0f
    #[arg(long, requires = "psk_identity")]
    pub psk_key_hex: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The devices' LwM2M version and the server's HTTP API, for the benchmarks that read through it
/// (`reads`, `fleet-reads`).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// LwM2M version of the devices (1.0: K paths are K CoAP reads; 1.1: one Read-Composite).
    #[arg(long, value_enum, default_value = "1.0")]
    pub lwm2m: BenchVersion,
    /// The server's HTTP API. Example: --http http://127.0.0.1:8080
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub http: String,
    /// Bearer token for the API.
    #[arg(long, env = "FERRITE_API_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// `bench reads`.
#[derive(Debug, Clone, Args)]
pub struct ReadsArgs {
    #[command(flatten)]
    pub devices: DeviceArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Read requests to make in total.
    #[arg(long, default_value_t = 5000)]
    pub requests: u64,
    /// HTTP requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 32)]
    pub http_concurrency: usize,
    /// Resources of /3/0 per read request (1–8). Example: --paths 8
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub paths: u8,
    /// With --devices 0: the endpoints the reads go to (not registered).
    #[arg(long, default_value_t = 200)]
    pub targets: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `bench send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub devices: DeviceArgs,
    /// How long the devices send.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// SenML records per Send (readings of /10243/0/14).
    #[arg(long, default_value_t = 4)]
    pub records: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `bench echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// The echo server. Example: --target 127.0.0.1:7000
    #[arg(long)]
    pub target: SocketAddr,
    /// Sockets pinging at once (each waits for its echo before the next datagram).
    #[arg(long, default_value_t = 64)]
    pub sockets: u32,
    /// Datagram size in bytes (a CoAP read request is ~20, its answer ~40–100).
    #[arg(long, default_value_t = 48)]
    pub size: usize,
    /// How long to ping.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How provisioned devices authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProvisionSecurity {
    Nosec,
    Psk,
}

/// `bench provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// The server's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub http: String,
    /// Bearer token for the API (fleet-manager or admin).
    #[arg(long, env = "FERRITE_API_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Number of devices.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub devices: u32,
    /// Endpoint name prefix. Example: --endpoint-prefix bd-
    #[arg(long, default_value = "bench-")]
    pub endpoint_prefix: String,
    /// nosec or psk.
    #[arg(long, value_enum)]
    pub security: ProvisionSecurity,
    /// PSK: the identity is this prefix followed by the endpoint name.
    #[arg(long, default_value = "")]
    pub psk_identity_prefix: String,
    /// PSK: the fleet secret the keys are derived from.
    #[arg(
        long,
        env = "FERRITE_SIM_PSK_SECRET",
        hide_env_values = true,
        default_value = "ferrite-sim"
    )]
    pub psk_secret: String,
}

/// `bench echo-server`.
#[derive(Debug, Clone, Args)]
pub struct EchoServerArgs {
    /// Address to listen on; its actual address is printed. Example: --bind 127.0.0.1:7000
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
}

/// Runs `ferrite-sim bench …`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Register(a) => register(&a),
        Scenario::Handshake(a) => handshake(&a),
        Scenario::Reads(a) => reads(&a),
        Scenario::FleetReads(a) => fleet_reads::fleet_reads(&a),
        Scenario::Send(a) => send(&a),
        Scenario::Echo(a) => echo(&a),
        Scenario::Provision(a) => provision(&a),
        Scenario::EchoServer(a) => echo_server(&a),
    }
}

// ------------------------------------------------------------------------------ helpers

/// Progress: a bar on a terminal, a line every two seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    last_line: Instant,
    what: String,
}

impl Progress {
    fn new(choice: ProgressChoice, total: u64, what: &str) -> Progress {
        let bars = match choice {
            ProgressChoice::Bars => true,
            ProgressChoice::Auto => std::io::stderr().is_terminal(),
            ProgressChoice::Lines | ProgressChoice::None => false,
        };
        let bar = bars.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {per_sec} {elapsed}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_owned());
            bar
        });
        Progress {
            bar,
            lines: choice != ProgressChoice::None,
            last_line: Instant::now(),
            what: what.to_owned(),
        }
    }

    fn set(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if self.lines && self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            eprintln!("{}: {done}/{total}", self.what);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A task showing `done` (of `total`) every 100 ms until it reaches `total`; abort it when
    /// the work ends early.
    fn watch(mut self, done: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let d = done.load(Ordering::Relaxed);
                self.set(d, total);
                if d >= total {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.finish();
        })
    }
}

fn watched(common: &CommonArgs) -> Option<Watched> {
    common.server_pid.map(|pid| Watched { pid })
}

/// The first sample of a scenario, once the measured process has finished what earlier
/// scenarios left behind (persisting de-registrations, closing sessions): up to six times
/// --settle.
fn quiet_start(w: Option<Watched>, common: &CommonArgs) -> Option<Sample> {
    w.and_then(|w| w.quiesce(common.settle * 6))
}

fn cost(
    w: Option<Watched>,
    before: Option<Sample>,
    after: Option<Sample>,
    ops: u64,
    devices: u64,
) -> Option<ProcessCost> {
    Some(ProcessCost::between(w?.pid, before?, after?, ops, devices))
}

fn note_failure(r: &mut BenchResult, rec: &driver::Recorder) {
    if let Some(why) = &rec.first_failure {
        r.extra.insert("first_failure".into(), why.clone().into());
    }
}

fn emit(common: &CommonArgs, result: &BenchResult) -> anyhow::Result<()> {
    for line in result.lines() {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    if let Some(path) = &common.json {
        result
            .append_json(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn version(v: BenchVersion) -> Lwm2mVersion {
    match v {
        BenchVersion::V1_0 => Lwm2mVersion::V1_0,
        BenchVersion::V1_1 => Lwm2mVersion::V1_1,
    }
}

/// The device factory for `args` (keys derived per device with coaps://).
fn devices(
    args: &DeviceArgs,
    lwm2m: Lwm2mVersion,
    handshake_only: bool,
    send_records: usize,
) -> anyhow::Result<(SocketAddr, bool, Factory<Device>)> {
    let (server, secure) = parse_server_uri(&args.server).map_err(anyhow::Error::msg)?;
    let prefix = args.endpoint_prefix.clone();
    let identity_prefix = args.psk_identity_prefix.clone();
    let secret = args.psk_secret.clone();
    let factory: Factory<Device> = Arc::new(move |i| {
        let endpoint = endpoint_name(&prefix, i);
        let psk = secure.then(|| {
            let identity = format!("{identity_prefix}{endpoint}");
            let key = psk_key(&secret, &identity).to_vec();
            (identity.into_bytes(), key)
        });
        Device::new(
            DeviceSpec {
                endpoint,
                version: lwm2m,
                psk,
                handshake_only,
                send_records,
                server,
            },
            0x00be_4c00 ^ u64::from(i),
        )
    });
    Ok((server, secure, factory))
}

fn latency_value(l: &Latency) -> serde_json::Value {
    serde_json::to_value(l).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn result(
    scenario: &str,
    common: &CommonArgs,
    op: &str,
    ops: u64,
    failed: u64,
    devices: u64,
    elapsed: Duration,
    latency: Latency,
    process: Option<ProcessCost>,
) -> BenchResult {
    let secs = elapsed.as_secs_f64();
    BenchResult {
        scenario: scenario.to_owned(),
        label: common.label.clone(),
        op: op.to_owned(),
        ops,
        failed,
        devices,
        elapsed_seconds: secs,
        per_second: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        latency,
        process,
        extra: serde_json::Map::new(),
        load_average: procfs::load_average(),
    }
}

/// Starts `n` devices and waits until each has registered (or failed).
fn start_registered(
    args: &DeviceArgs,
    common: &CommonArgs,
    factory: Factory<Device>,
    server: SocketAddr,
    what: &str,
) -> anyhow::Result<(Driver, Duration)> {
    let n = args.devices;
    let driver = Driver::start(n, common.workers, args.concurrency, server, factory)
        .context("cannot start the devices")?;
    let mut progress = Progress::new(common.progress, u64::from(n), what);
    let end = driver.wait(
        common.timeout,
        |c: &Control| c.settled() >= u64::from(n),
        |c: &Control| progress.set(c.settled(), u64::from(n)),
    );
    progress.finish();
    let elapsed = end.unwrap_or_else(Instant::now) - driver.started;
    if end.is_none() {
        eprintln!(
            "warning: only {} of {n} devices settled within {:?}",
            driver.control.settled(),
            common.timeout
        );
    }
    Ok((driver, elapsed))
}

// ------------------------------------------------------------------------------ scenarios

fn register(args: &RegisterArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let (server, secure, factory) = devices(&args.devices, version(args.lwm2m), false, 0)?;
    let before = quiet_start(w, common);
    let (driver, elapsed) =
        start_registered(&args.devices, common, factory, server, "registering")?;
    std::thread::sleep(args.hold);
    // Registrations are persisted behind the answers: that work belongs to them.
    let after = quiet_start(w, common);
    let control = Arc::clone(&driver.control);
    let registered = control.ok(Kind::Register);
    let started = driver.started;
    let mut rec = driver.finish();
    // Stragglers that fail by timeout do not stretch the rate.
    let elapsed = rec
        .last_done(Kind::Register)
        .map_or(elapsed, |t| t.saturating_duration_since(started));
    let mut r = result(
        "register",
        common,
        "registration",
        registered,
        control.failed(Kind::Register),
        u64::from(args.devices.devices),
        elapsed,
        Latency::of(&mut rec.take(Kind::Register)),
        cost(w, before, after, registered, registered),
    );
    r.extra.insert(
        "transport".into(),
        (if secure { "dtls" } else { "nosec" }).into(),
    );
    if secure {
        r.extra.insert(
            "handshake_latency".into(),
            latency_value(&Latency::of(&mut rec.take(Kind::Handshake))),
        );
        r.extra.insert(
            "handshakes_failed".into(),
            control.failed(Kind::Handshake).into(),
        );
    }
    r.extra
        .insert("deregistered".into(), control.ok(Kind::Deregister).into());
    note_failure(&mut r, &rec);
    emit(common, &r)
}

fn handshake(args: &HandshakeArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let (server, secure, mut factory) = devices(&args.devices, Lwm2mVersion::V1_1, true, 0)?;
    if !secure {
        bail!("the handshake scenario needs a coaps:// server");
    }
    if let (Some(identity), Some(key_hex)) = (&args.psk_identity, &args.psk_key_hex) {
        let key = decode_hex(key_hex).context("--psk-key-hex")?;
        let identity = identity.clone();
        factory = Arc::new(move |i| {
            Device::new(
                DeviceSpec {
                    endpoint: identity.clone(),
                    version: Lwm2mVersion::V1_1,
                    psk: Some((identity.clone().into_bytes(), key.clone())),
                    handshake_only: true,
                    send_records: 0,
                    server,
                },
                u64::from(i),
            )
        });
    }
    let before = quiet_start(w, common);
    let (driver, elapsed) = start_registered(&args.devices, common, factory, server, "handshakes")?;
    let control = Arc::clone(&driver.control);
    let started = driver.started;
    let mut rec = driver.finish();
    let after = w.and_then(|w| w.quiesce(common.settle));
    let ok = control.ok(Kind::Handshake);
    let elapsed = rec
        .last_done(Kind::Handshake)
        .map_or(elapsed, |t| t.saturating_duration_since(started));
    let mut r = result(
        "handshake",
        common,
        "handshake",
        ok,
        control.failed(Kind::Handshake),
        u64::from(args.devices.devices),
        elapsed,
        Latency::of(&mut rec.take(Kind::Handshake)),
        cost(w, before, after, ok, 0),
    );
    note_failure(&mut r, &rec);
    emit(common, &r)
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("not hex at {i}"))
        })
        .collect()
}

fn reads(args: &ReadsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let http_addr = http::parse_http_url(&args.api.http).map_err(anyhow::Error::msg)?;
    let (server, _secure, factory) = devices(&args.devices, version(args.api.lwm2m), false, 0)?;
    let with_devices = args.devices.devices > 0;
    let running = if with_devices {
        Some(start_registered(&args.devices, common, factory, server, "registering")?.0)
    } else {
        None
    };
    let targets = if with_devices {
        running
            .as_ref()
            .map_or(0, |d| d.control.ok(Kind::Register) as u32)
    } else {
        args.targets.max(1)
    };
    if targets == 0 {
        bail!("no device registered");
    }
    let prefix = if with_devices {
        args.devices.endpoint_prefix.clone()
    } else {
        format!("{}absent-", args.devices.endpoint_prefix)
    };
    // Resources of /3/0 the devices hold (see driver::device_store).
    let resources = [0u16, 1, 2, 3, 9, 10, 17, 21];
    let paths: Vec<String> = resources
        .iter()
        .take(usize::from(args.paths))
        .map(|r| format!("\"/3/0/{r}\""))
        .collect();
    let body = format!("{{\"paths\":[{}]}}", paths.join(",")).into_bytes();
    let before = quiet_start(w, common);
    let load = HttpLoad {
        addr: http_addr,
        token: args.api.token.clone(),
        prefix,
        targets,
        body,
        total: args.requests,
        concurrency: args.http_concurrency.max(1),
        progress: common.progress,
    };
    let outcome = load.run()?;
    let after = w.and_then(|w| w.quiesce(common.settle));
    if let Some(driver) = running {
        driver.finish();
    }
    let expected_ok = |status: u16| {
        if with_devices {
            status == 200
        } else {
            status < 500
        }
    };
    let ok: u64 = outcome
        .statuses
        .iter()
        .filter(|(s, _)| expected_ok(**s))
        .map(|(_, n)| *n)
        .sum();
    let failed = outcome.answered + outcome.errors - ok;
    let mut latencies = outcome.latencies;
    let mut r = result(
        "reads",
        common,
        "read request",
        ok,
        failed,
        u64::from(if with_devices { targets } else { 0 }),
        outcome.elapsed,
        Latency::of(&mut latencies),
        cost(w, before, after, ok, 0),
    );
    let coap_reads = if with_devices {
        ok * u64::from(args.paths)
    } else {
        0
    };
    r.extra
        .insert("paths_per_request".into(), args.paths.into());
    r.extra.insert("coap_reads".into(), coap_reads.into());
    if let Some(p) = &r.process
        && coap_reads > 0
    {
        r.extra.insert(
            "cpu_us_per_coap_read".into(),
            (p.cpu_seconds * 1e6 / coap_reads as f64).into(),
        );
    }
    let statuses: serde_json::Map<String, serde_json::Value> = outcome
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), (*n).into()))
        .collect();
    r.extra.insert("http_statuses".into(), statuses.into());
    r.extra.insert("http_errors".into(), outcome.errors.into());
    emit(common, &r)
}

/// Many concurrent keep-alive connections posting reads.
struct HttpLoad {
    addr: SocketAddr,
    token: String,
    prefix: String,
    targets: u32,
    body: Vec<u8>,
    total: u64,
    concurrency: usize,
    progress: ProgressChoice,
}

struct HttpOutcome {
    statuses: std::collections::BTreeMap<u16, u64>,
    answered: u64,
    errors: u64,
    latencies: Vec<u32>,
    elapsed: Duration,
}

impl HttpLoad {
    fn run(self) -> anyhow::Result<HttpOutcome> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client runtime")?;
        let this = Arc::new(self);
        runtime.block_on(async move {
            let next = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..this.concurrency {
                let this = Arc::clone(&this);
                let next = Arc::clone(&next);
                let done = Arc::clone(&done);
                tasks.push(tokio::spawn(async move {
                    let mut statuses = std::collections::BTreeMap::new();
                    let mut latencies = Vec::new();
                    let mut errors = 0u64;
                    let mut conn: Option<http::HttpConn> = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= this.total {
                            break;
                        }
                        let endpoint =
                            endpoint_name(&this.prefix, (i % u64::from(this.targets)) as u32);
                        let path = format!("/api/v1/devices/{endpoint}/read");
                        let t = Instant::now();
                        if conn.is_none() {
                            conn = http::HttpConn::connect(this.addr).await.ok();
                        }
                        let answer = match conn.as_mut() {
                            Some(c) => {
                                c.request(
                                    "POST",
                                    &path,
                                    &this.token,
                                    Some(("application/json", &this.body)),
                                )
                                .await
                            }
                            None => Err(std::io::Error::other("cannot connect")),
                        };
                        match answer {
                            Ok(a) => {
                                *statuses.entry(a.status).or_insert(0u64) += 1;
                                let us = t.elapsed().as_micros();
                                latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                            Err(_) => {
                                errors += 1;
                                conn = None;
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (statuses, latencies, errors)
                }));
            }
            let total = this.total;
            let watcher =
                Progress::new(this.progress, total, "reads").watch(Arc::clone(&done), total);
            let mut outcome = HttpOutcome {
                statuses: std::collections::BTreeMap::new(),
                answered: 0,
                errors: 0,
                latencies: Vec::new(),
                elapsed: Duration::ZERO,
            };
            for task in tasks {
                if let Ok((statuses, latencies, errors)) = task.await {
                    for (s, n) in statuses {
                        *outcome.statuses.entry(s).or_insert(0) += n;
                        outcome.answered += n;
                    }
                    outcome.latencies.extend(latencies);
                    outcome.errors += errors;
                }
            }
            outcome.elapsed = started.elapsed();
            watcher.abort();
            Ok(outcome)
        })
    }
}

fn send(args: &SendArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let (server, _secure, factory) = devices(
        &args.devices,
        Lwm2mVersion::V1_1,
        false,
        args.records.max(1),
    )?;
    let (driver, _) = start_registered(&args.devices, common, factory, server, "registering")?;
    let before = quiet_start(w, common);
    let control = Arc::clone(&driver.control);
    let started = Instant::now();
    control.set_phase(GO);
    let mut progress = Progress::new(common.progress, args.duration.as_secs(), "sending (s)");
    while started.elapsed() < args.duration {
        std::thread::sleep(Duration::from_millis(100));
        progress.set(started.elapsed().as_secs(), args.duration.as_secs());
    }
    progress.finish();
    control.set_phase(HALT);
    // Sends on the wire finish (no new ones start).
    std::thread::sleep(Duration::from_millis(300));
    let elapsed = started.elapsed();
    let after = w.and_then(|w| w.quiesce(common.settle));
    let ok = control.ok(Kind::Send);
    let failed = control.failed(Kind::Send);
    let mut rec = driver.finish();
    let mut r = result(
        "send",
        common,
        "send",
        ok,
        failed,
        u64::from(args.devices.devices),
        elapsed,
        Latency::of(&mut rec.take(Kind::Send)),
        cost(w, before, after, ok, 0),
    );
    r.extra
        .insert("records_per_send".into(), args.records.max(1).into());
    note_failure(&mut r, &rec);
    emit(common, &r)
}

fn echo(args: &EchoArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let size = args.size.clamp(1, 1400);
    let factory: Factory<Pinger> = Arc::new(move |_| Pinger::new(size));
    let driver = Driver::start(
        args.sockets.max(1),
        common.workers,
        args.sockets as usize,
        args.target,
        factory,
    )
    .context("cannot open the sockets")?;
    let n = u64::from(args.sockets.max(1));
    driver.wait(common.timeout, |c| c.settled() >= n, |_| {});
    let before = quiet_start(w, common);
    let control = Arc::clone(&driver.control);
    let started = Instant::now();
    control.set_phase(GO);
    let mut progress = Progress::new(common.progress, args.duration.as_secs(), "echo (s)");
    while started.elapsed() < args.duration {
        std::thread::sleep(Duration::from_millis(100));
        progress.set(started.elapsed().as_secs(), args.duration.as_secs());
    }
    progress.finish();
    control.set_phase(HALT);
    std::thread::sleep(Duration::from_millis(100));
    let elapsed = started.elapsed();
    let after = w.and_then(|w| w.quiesce(common.settle));
    let ok = control.ok(Kind::Echo);
    let failed = control.failed(Kind::Echo);
    let mut rec = driver.finish();
    let mut r = result(
        "echo",
        common,
        "echo",
        ok,
        failed,
        n,
        elapsed,
        Latency::of(&mut rec.take(Kind::Echo)),
        cost(w, before, after, ok, 0),
    );
    r.extra.insert("datagram_bytes".into(), size.into());
    note_failure(&mut r, &rec);
    emit(common, &r)
}

fn echo_server(args: &EchoServerArgs) -> anyhow::Result<()> {
    let socket = std::net::UdpSocket::bind(args.bind)
        .with_context(|| format!("cannot bind {}", args.bind))?;
    println!(
        "echo-server listening on {} pid {}",
        socket.local_addr()?,
        std::process::id()
    );
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = socket.send_to(buf.get(..n).unwrap_or(&[]), from);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn provision(args: &ProvisionArgs) -> anyhow::Result<()> {
    let addr = http::parse_http_url(&args.http).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.security {
            ProvisionSecurity::Psk => {
                let mut csv = String::from("endpoint,serial,model,psk_identity,psk_key_hex\n");
                for i in 0..args.devices {
                    let endpoint = endpoint_name(&args.endpoint_prefix, i);
                    let identity = format!("{}{endpoint}", args.psk_identity_prefix);
                    let key: String = psk_key(&args.psk_secret, &identity)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    csv.push_str(&format!(
                        "{endpoint},SN-{endpoint},bench,{identity},{key}\n"
                    ));
                }
                let mut conn = http::HttpConn::connect(addr).await?;
                let answer = conn
                    .request(
                        "POST",
                        "/api/v1/devices/import",
                        &args.token,
                        Some(("text/csv", csv.as_bytes())),
                    )
                    .await?;
                if answer.status != 200 {
                    bail!(
                        "import answered {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    );
                }
                let report: serde_json::Value = serde_json::from_slice(&answer.body)?;
                println!(
                    "imported PSK devices {}…: {}",
                    endpoint_name(&args.endpoint_prefix, 0),
                    summarize_import(&report)
                );
            }
            ProvisionSecurity::Nosec => {
                let next = Arc::new(AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..8 {
                    let next = Arc::clone(&next);
                    let args = args.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut counts = std::collections::BTreeMap::<u16, u64>::new();
                        let mut conn = http::HttpConn::connect(addr).await?;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= u64::from(args.devices) {
                                break;
                            }
                            let endpoint = endpoint_name(&args.endpoint_prefix, i as u32);
                            let body = serde_json::json!({
                                "endpoint": endpoint,
                                "model": "bench",
                                "security_mode": "nosec",
                            })
                            .to_string();
                            let a = conn
                                .request(
                                    "POST",
                                    "/api/v1/devices",
                                    &args.token,
                                    Some(("application/json", body.as_bytes())),
                                )
                                .await?;
                            *counts.entry(a.status).or_insert(0) += 1;
                        }
                        anyhow::Ok(counts)
                    }));
                }
                let mut counts = std::collections::BTreeMap::<u16, u64>::new();
                for t in tasks {
                    for (s, n) in t.await?? {
                        *counts.entry(s).or_insert(0) += n;
                    }
                }
                println!(
                    "NoSec devices {}…: HTTP statuses {counts:?} (201 created, 409 existed)",
                    endpoint_name(&args.endpoint_prefix, 0)
                );
                if counts.keys().any(|s| *s != 201 && *s != 409) {
                    bail!("some devices could not be created: {counts:?}");
                }
            }
        }
        Ok(())
    })
}

fn summarize_import(report: &serde_json::Value) -> String {
    let count = |key: &str| {
        report
            .get(key)
            .and_then(|v| v.as_array().map(|a| a.len() as u64).or_else(|| v.as_u64()))
    };
    match (count("accepted"), count("rejected")) {
        (Some(a), Some(r)) => format!("{a} accepted, {r} rejected (existing devices are rejected)"),
        _ => report.to_string().chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn hex_keys() {
        assert_eq!(decode_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(decode_hex("0").is_err());
        assert!(decode_hex("zz").is_err());
    }

    #[test]
    fn bench_arguments_parse() {
        let cli = Cli::try_parse_from([
            "ferrite-sim",
            "bench",
            "reads",
            "--server",
            "coap://127.0.0.1:5683",
            "--token",
            "t",
            "--paths",
            "8",
            "--devices",
            "0",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("bench expected");
        };
        let Scenario::Reads(r) = args.scenario else {
            panic!("reads expected");
        };
        assert_eq!(r.paths, 8);
        assert_eq!(r.devices.devices, 0);
        assert!(
            Cli::try_parse_from([
                "ferrite-sim",
                "bench",
                "reads",
                "--server",
                "coap://x",
                "--token",
                "t",
                "--paths",
                "9"
            ])
            .is_err()
        );
    }
}
