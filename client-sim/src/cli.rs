//! The command line: `ferrite-sim run | keys | objects`, with every option explained, and its
//! translation into a [`FleetConfig`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::SimClock;
use crate::fleet::{FaultConfig, FleetConfig, parse_server_uri};
use crate::meter::{
    BadEffect, BootstrapSettings, FirmwareSettings, MeterSettings, OutagePlan, ProfileParams,
    Security, VersionMix,
};

/// Ferrite's meter simulator: many LwM2M smart meters in one process, for tests and load.
#[derive(Debug, Parser)]
#[command(name = "ferrite-sim", version, about, long_about = ABOUT)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const ABOUT: &str = "\
Ferrite's meter simulator: thousands of LwM2M smart meters in one process, each with its own \
endpoint name, UDP source port and (with coaps://) DTLS PSK identity.

Examples:
  # 1,000 meters, half LwM2M 1.0 and half 1.1, against a local server with NoSec
  ferrite-sim run --server coap://127.0.0.1:5683 --meters 1000

  # a month of readings in 12 minutes (one simulated hour per second), with the files a test
  # compares with what the server stored
  ferrite-sim run --server coap://127.0.0.1:5683 --meters 200 --speed 3600 --duration 12m \\
      --ground-truth truth.json --ledger ledger.jsonl

  # DTLS PSK: print the identities and keys to provision, then run
  ferrite-sim keys --meters 100 --psk-secret s3cret > keys.csv
  ferrite-sim run --server coaps://127.0.0.1:5684 --meters 100 --psk-secret s3cret";

const RUN_EXAMPLES: &str = "\
Examples:
  ferrite-sim run --server coap://127.0.0.1:5683 --meters 1000
  ferrite-sim run --server coap://127.0.0.1:5683 --meters 200 --speed 3600 --duration 12m \\
      --ground-truth truth.json --ledger ledger.jsonl
  ferrite-sim run --server coaps://127.0.0.1:5684 --meters 100 --psk-secret s3cret \\
      --outage 2d:6h --random-outages 0.1 --loss 0.02

A whole fleet in a file (TOML; keys are the option names, arrays repeat an option; options on
the command line win over the file's, repeatable ones add to them):
  ferrite-sim run --config fleet.toml --duration 10m
  # fleet.toml
  server = \"coaps://127.0.0.1:5684\"
  meters = 10000
  psk-secret = \"s3cret\"
  api = \"http://127.0.0.1:8080\"
  speed = 3600
  outage = [\"2d:6h\", \"10d:1d\"]
  fota-failures = \"integrity=0.02,connection=0.01\"
  bad-firmware = [\"2.5.0\"]

Files: --ground-truth writes {\"endpoints\": {\"sim-000001\": {\"problems\": [...], ...}}}; --ledger
writes one JSON line per reading produced, evicted or acknowledged
({\"ev\":\"acked\",\"ep\":\"sim-000001\",\"seq\":7,\"t\":1718000100,\"via\":\"send\"}).";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fleet of meters against a server until --duration or Ctrl-C, then de-register.
    #[command(after_help = RUN_EXAMPLES, args_override_self = true)]
    Run(Box<RunArgs>),
    /// Print each meter's endpoint name, PSK identity and key (hex) as CSV, to provision a server.
    Keys(KeysArgs),
    /// List the LwM2M objects a simulated meter knows, with their resources.
    Objects,
    /// Load scenarios that print throughput, latency percentiles and the server's CPU time and
    /// RSS (registration storm, DTLS handshake storm, reads through the API, Send, UDP echo).
    Bench(Box<crate::bench::BenchArgs>),
    /// Score the server's remote diagnostics against the ground truth: provision and run a
    /// fleet with problem profiles, start diagnostic sweeps through the API, print precision and
    /// recall per problem and a confusion table. Example: ferrite-sim accuracy --server
    /// coap://127.0.0.1:5683 --api http://127.0.0.1:8080 --meters 1000 --speed 720
    #[command(args_override_self = true)]
    Accuracy(Box<crate::accuracy::AccuracyArgs>),
}

/// LwM2M versions of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionChoice {
    /// Every meter LwM2M 1.0 (TLV; readings by notification of the observed /10243/0).
    #[value(name = "1.0")]
    V1_0,
    /// Every meter LwM2M 1.1 (SenML CBOR; readings by Send).
    #[value(name = "1.1")]
    V1_1,
    /// Both, in the ratio --v11-share.
    Mix,
}

/// What a bad firmware version does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BadEffectChoice {
    /// Restarts every few (simulated) hours.
    Reboots,
    /// Reports error code 8 (peripheral malfunction).
    Errors,
    /// Both.
    Both,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressChoice {
    /// Bars on a terminal, lines otherwise.
    Auto,
    /// Progress bars.
    Bars,
    /// A plain line every few seconds.
    Lines,
    /// Only the final summary.
    None,
}

/// Naming and keys, shared by `run` and `keys`.
#[derive(Debug, Clone, Args)]
pub struct NamingArgs {
    /// Number of meters.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub meters: u32,
    /// Endpoint names are this prefix and a six-digit number from 000001: `sim-000001`.
    #[arg(long, default_value = "sim-")]
    pub endpoint_prefix: String,
    /// DTLS: the PSK identity is this prefix followed by the endpoint name.
    #[arg(long, default_value = "")]
    pub psk_identity_prefix: String,
    /// DTLS: the fleet secret every meter's key is derived from:
    /// key = SHA-256("ferrite-sim psk v1" 0x00 secret 0x00 identity)[0..16].
    #[arg(
        long,
        env = "FERRITE_SIM_PSK_SECRET",
        hide_env_values = true,
        default_value = "ferrite-sim"
    )]
    pub psk_secret: String,
}

/// `ferrite-sim keys`.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// Names and keys.
    #[command(flatten)]
    pub naming: NamingArgs,
}

/// `ferrite-sim run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Read options from a TOML file first (see the examples below).
    /// Example: --config fleet.toml
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The LwM2M server: coap://HOST:PORT (NoSec) or coaps://HOST:PORT (DTLS PSK).
    /// Example: --server coap://127.0.0.1:5683
    #[arg(long, short = 's')]
    pub server: String,
    /// Names and keys.
    #[command(flatten)]
    pub naming: NamingArgs,
    /// LwM2M version of the meters: 1.0, 1.1 or mix.
    #[arg(long, value_enum, default_value = "mix")]
    pub lwm2m: VersionChoice,
    /// With --lwm2m mix: the share of 1.1 meters. Example: --v11-share 0.3
    #[arg(long, default_value_t = 0.5)]
    pub v11_share: f64,
    /// Stop after this much real time (then de-register). Without it, run until Ctrl-C.
    /// Examples: --duration 90s, --duration 10m, --duration 1h30m
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Simulated seconds per real second, for readings, lifetimes and outages.
    /// Example: --speed 3600 (an hour per second: a month in 12 minutes)
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulated start time, Unix seconds. Default: chosen so the simulated period ends now
    /// when --duration is given (readings are never in the future), else now.
    #[arg(long)]
    pub sim_start: Option<i64>,
    /// Seed for everything about the meters (models, problems, readings). Same seed, same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write which meter has which problem to FILE (JSON). Example: --ground-truth truth.json
    #[arg(long, value_name = "FILE")]
    pub ground_truth: Option<PathBuf>,
    /// Write every reading produced, evicted and acknowledged to FILE (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Share of meters in queue mode (binding UQ).
    #[arg(long, default_value_t = 0.1)]
    pub queue_share: f64,
    /// Share of meters with problems (weak signal, dying battery, periodic reboots, memory
    /// leak, error codes; one in seven of them has two).
    #[arg(long, default_value_t = 0.2)]
    pub problem_share: f64,
    /// Rhythm of the periodic-reboot problem (simulated). Example: --reboot-period 6h
    #[arg(long, value_parser = parse_duration, default_value = "6h")]
    pub reboot_period: Duration,
    /// Registration lifetime (simulated); the lifetime sent is this divided by --speed, at
    /// least --min-lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "1d")]
    pub lifetime: Duration,
    /// Smallest lifetime sent to the server (real).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub min_lifetime: Duration,
    /// Time between readings (simulated).
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub reading_interval: Duration,
    /// Readings per Send (1.1) in normal operation. Example: --send-batch 4 (hourly)
    #[arg(long, default_value_t = 4)]
    pub send_batch: usize,
    /// Readings per Send when replaying a backlog after an outage.
    #[arg(long, default_value_t = 12)]
    pub replay_batch: usize,
    /// Readings a meter buffers while it cannot deliver; beyond it the oldest are evicted.
    /// Default: 10 days of 15-minute readings.
    #[arg(long, default_value_t = 960)]
    pub buffer: usize,
    /// Meters started (first Register / handshake) per second.
    #[arg(long, default_value_t = 500.0)]
    pub start_rate: f64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// The meters' local time, hours east of UTC (the daily pattern follows local time).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub utc_offset: f64,
    /// Service area: LAT,LON,RADIUS_KM. Example: --area 48.137,11.575,20
    #[arg(long, default_value = "52.52,13.405,15", value_parser = parse_area)]
    pub area: (f64, f64, f64),
    /// A scheduled outage, START:LENGTH in simulated time from the start; repeatable.
    /// Example: --outage 2d:6h --outage 10d:1d
    #[arg(long, value_parser = parse_window)]
    pub outage: Vec<(Duration, Duration)>,
    /// Share of meters that take the scheduled outages.
    #[arg(long, default_value_t = 1.0)]
    pub outage_share: f64,
    /// Random outages per meter per simulated day. Example: --random-outages 0.1
    #[arg(long, default_value_t = 0.0)]
    pub random_outages: f64,
    /// Mean length of a random outage (simulated).
    #[arg(long, value_parser = parse_duration, default_value = "2h")]
    pub random_outage_mean: Duration,
    /// Fault: share of datagrams lost (each direction). Example: --loss 0.05
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Fault: share of datagrams duplicated.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// Fault: share of datagrams delayed (up to --delay-max, so they arrive out of order).
    #[arg(long, default_value_t = 0.0)]
    pub delay: f64,
    /// Fault: the longest delay.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub delay_max: Duration,
    /// Fault: NAT rebindings (source-port changes) per meter per simulated day.
    #[arg(long, default_value_t = 0.0)]
    pub rebind_per_day: f64,
    /// Fault: the server is unreachable in this window, START:LENGTH simulated from the start;
    /// repeatable. Example: --unreachable 1d:2h
    #[arg(long, value_parser = parse_window)]
    pub unreachable: Vec<(Duration, Duration)>,
    /// On stop: how long meters may deliver what they buffered before de-registering.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub stop_flush: Duration,
    /// Share of firmware updates that fail after the restart (Update Result 8, old version kept).
    /// Example: --fota-failure-rate 0.05
    #[arg(long, default_value_t = 0.0)]
    pub fota_failure_rate: f64,
    /// Firmware failures by reason, REASON=RATE,…: integrity (result 5) and unsupported (6)
    /// for received packages, memory (3) and connection (4) during a pull, update (8, same as
    /// --fota-failure-rate) after the restart.
    /// Example: --fota-failures integrity=0.02,memory=0.01,connection=0.02,update=0.01
    #[arg(long, value_name = "RATES")]
    pub fota_failures: Option<String>,
    /// A firmware version that installs fine but misbehaves afterwards (see
    /// --bad-firmware-effect); repeatable. Listed in the ground truth, and each install is a
    /// `firmware` line with `"bad":true` in the ledger. Example: --bad-firmware 2.5.0
    #[arg(long, value_name = "VERSION")]
    pub bad_firmware: Vec<String>,
    /// What a bad firmware does: restart every --bad-firmware-reboot-period, report error code
    /// 8 in 3/0/11, or both. Example: --bad-firmware-effect both
    #[arg(long, value_enum, default_value = "reboots")]
    pub bad_firmware_effect: BadEffectChoice,
    /// How often a bad firmware restarts (simulated). Example: --bad-firmware-reboot-period 3h
    #[arg(long, value_parser = parse_duration, default_value = "4h")]
    pub bad_firmware_reboot_period: Duration,
    /// Start by factory bootstrap: each meter opens a DTLS session to this bootstrap server with
    /// its factory credential (identity --bootstrap-identity-prefix + endpoint name, key derived
    /// from --psk-secret), receives its LwM2M server account (URI, PSK identity and key) and
    /// registers there; --server must be coaps:// too. With --api the meters are created with
    /// their factory credential (the server generates the DM keys). A coap:// bootstrap server
    /// (NoSec, with a coap:// --server) is asked in clear and must deliver a NoSec account; with
    /// --api such meters are created as NoSec devices (the server's bootstrap configuration for
    /// them must name a coap:// server). Example: --bootstrap coaps://127.0.0.1:5784
    #[arg(long, value_name = "URI")]
    pub bootstrap: Option<String>,
    /// Factory bootstrap identities are this prefix followed by the endpoint name.
    #[arg(long, default_value = "bs-")]
    pub bootstrap_identity_prefix: String,
    /// Before starting, enter the meters in the server's fleet registry through its HTTP API
    /// (DTLS meters by CSV import with the keys derived from --psk-secret, NoSec meters one by
    /// one). Meters already there are reused; a conflicting one stops the run.
    /// Example: --api http://127.0.0.1:8080
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// API token for --api (a fleet-manager token or the server's static admin token).
    /// Example: --api-token "$FERRITE_API_TOKEN"
    #[arg(long, env = "FERRITE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressChoice,
    /// Write the final summary (counters, memory, rates) to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

/// Expands `run --config FILE` in a command line: the file's keys become options inserted right
/// after `run` (so the command line's own options, parsed later, override them) and `--config`
/// itself is removed. Other command lines come back unchanged.
pub fn expand_config(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(run) = argv.iter().position(|a| a == "run") else {
        return Ok(argv);
    };
    let mut path = None;
    let mut rest = Vec::new();
    let mut iter = argv.iter().skip(run + 1);
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            path = Some(PathBuf::from(
                iter.next().ok_or("--config needs a FILE")?.clone(),
            ));
        } else if let Some(p) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            path = Some(PathBuf::from(p));
        } else {
            rest.push(arg.clone());
        }
    }
    let Some(path) = path else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let from_file = config_options(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(argv
        .iter()
        .take(run + 1)
        .cloned()
        .chain(from_file.into_iter().map(OsString::from))
        .chain(rest)
        .collect())
}

/// A TOML document as `run` options: `key = value` → `--key value` (underscores become dashes),
/// an array repeats the option, `true` is a bare flag, `false` leaves it out.
pub fn config_options(text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let values = match value {
            toml::Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            match v {
                toml::Value::String(s) => out.extend([flag.clone(), s]),
                toml::Value::Integer(i) => out.extend([flag.clone(), i.to_string()]),
                toml::Value::Float(f) => out.extend([flag.clone(), f.to_string()]),
                toml::Value::Boolean(true) => out.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                other => {
                    return Err(format!(
                        "{key}: a {} cannot be an option value",
                        other.type_str()
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Parses `90s`, `10m`, `1h30m`, `2d`, `500ms`, `1.5h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"));
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("{text:?}: expected a number before {rest:?}"));
        }
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{text:?}: bad number {num:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 7.0 * 86_400.0,
            "" => return Err(format!("{text:?}: missing unit after {num}")),
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (ms, s, m, h, d, w)"
                ));
            }
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("{text:?}: {e}"))
}

/// Parses `START:LENGTH` (two durations).
pub fn parse_window(text: &str) -> Result<(Duration, Duration), String> {
    let (start, len) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected START:LENGTH, e.g. 2d:6h"))?;
    Ok((parse_duration(start)?, parse_duration(len)?))
}

/// Parses `LAT,LON,RADIUS_KM`.
pub fn parse_area(text: &str) -> Result<(f64, f64, f64), String> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{text:?}: {e}"))?;
    match parts.as_slice() {
        [lat, lon, r] if lat.abs() <= 90.0 && lon.abs() <= 180.0 && *r >= 0.0 => {
            Ok((*lat, *lon, *r))
        }
        _ => Err(format!("{text:?}: expected LAT,LON,RADIUS_KM")),
    }
}

fn share(name: &str, v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("--{name} must be between 0 and 1, got {v}"))
    }
}

impl RunArgs {
    /// The fleet configuration these arguments describe. `now_unix` is the wall clock, for the
    /// default simulated start.
    pub fn fleet_config(&self, now_unix: f64) -> Result<FleetConfig, String> {
        let (server, secure) = parse_server_uri(&self.server)?;
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return Err(format!("--speed must be positive, got {}", self.speed));
        }
        let versions = match self.lwm2m {
            VersionChoice::V1_0 => VersionMix::V1_0,
            VersionChoice::V1_1 => VersionMix::V1_1,
            VersionChoice::Mix => VersionMix::Mix(share("v11-share", self.v11_share)?),
        };
        for (name, v) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
            ("outage-share", self.outage_share),
            ("fota-failure-rate", self.fota_failure_rate),
        ] {
            share(name, v)?;
        }
        let reading_interval = self.reading_interval.as_secs();
        if reading_interval == 0 || reading_interval > 86_400 {
            return Err("--reading-interval must be between 1 s and 1 d".into());
        }
        if self.send_batch == 0 || self.replay_batch == 0 {
            return Err("--send-batch and --replay-batch must be at least 1".into());
        }
        let sim_start = match (self.sim_start, self.duration) {
            (Some(t), _) => t as f64,
            // The simulated period ends when the run does: sim_end = start + d·speed = now + d.
            (None, Some(d)) => now_unix - d.as_secs_f64() * (self.speed - 1.0).max(0.0),
            (None, None) => now_unix,
        };
        let profiles = ProfileParams {
            seed: self.seed,
            problem_share: share("problem-share", self.problem_share)?,
            queue_share: share("queue-share", self.queue_share)?,
            versions,
            area: self.area,
            reboot_period_hours: self.reboot_period.as_secs_f64() / 3600.0,
        };
        let security = if secure {
            Security::Psk {
                identity_prefix: self.naming.psk_identity_prefix.clone(),
                secret: self.naming.psk_secret.clone(),
            }
        } else {
            Security::NoSec
        };
        let window = |w: &(Duration, Duration)| (w.0.as_secs_f64(), w.1.as_secs_f64());
        let meter = MeterSettings {
            seed: self.seed,
            endpoint_prefix: self.naming.endpoint_prefix.clone(),
            server,
            security,
            // Replaced by the fleet when it starts.
            clock: SimClock::new(std::time::Instant::now(), sim_start, self.speed),
            lifetime: u32::try_from(self.lifetime.as_secs()).unwrap_or(u32::MAX),
            min_real_lifetime: u32::try_from(self.min_lifetime.as_secs())
                .unwrap_or(u32::MAX)
                .max(1),
            reading_interval: reading_interval as u32,
            send_batch: self.send_batch,
            replay_batch: self.replay_batch,
            buffer_capacity: self.buffer,
            utc_offset: (self.utc_offset * 3600.0).round() as i64,
            reboot_period_hours: profiles.reboot_period_hours,
            reboot_downtime: 30.0,
            outages: OutagePlan {
                scheduled: self.outage.iter().map(window).collect(),
                scheduled_share: self.outage_share,
                random_per_day: self.random_outages.max(0.0),
                random_mean: self.random_outage_mean.as_secs_f64(),
            },
            stop_flush: self.stop_flush,
            firmware: self.firmware_settings()?,
            bootstrap: self.bootstrap_settings(secure)?,
        };
        Ok(FleetConfig {
            meters: self.naming.meters,
            workers: self.workers,
            start_rate: self.start_rate,
            speed: self.speed,
            sim_start,
            profiles,
            meter,
            ledger: self.ledger.clone(),
            faults: FaultConfig {
                loss: self.loss,
                duplicate: self.duplicate,
                delay: self.delay,
                delay_max: self.delay_max,
                rebind_per_day: self.rebind_per_day.max(0.0),
                unreachable: self.unreachable.iter().map(window).collect(),
            },
        })
    }
}

impl RunArgs {
    /// The firmware faults and bad versions these arguments describe.
    pub fn firmware_settings(&self) -> Result<FirmwareSettings, String> {
        let mut f = FirmwareSettings {
            update: share("fota-failure-rate", self.fota_failure_rate)?,
            bad_versions: self.bad_firmware.clone(),
            bad_effect: match self.bad_firmware_effect {
                BadEffectChoice::Reboots => BadEffect::Reboots,
                BadEffectChoice::Errors => BadEffect::Errors,
                BadEffectChoice::Both => BadEffect::Both,
            },
            bad_reboot_period: self.bad_firmware_reboot_period.as_secs_f64(),
            ..FirmwareSettings::default()
        };
        if let Some(rates) = &self.fota_failures {
            f.parse_rates(rates)
                .map_err(|e| format!("--fota-failures: {e}"))?;
        }
        Ok(f)
    }

    /// Parses `run`'s options (without the program and subcommand names), as a test or another
    /// program configures a fleet: `RunArgs::parse_from_options(["--server", "coap://…"])`.
    pub fn parse_from_options<I, T>(options: I) -> Result<RunArgs, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = ["ferrite-sim".into(), "run".into()]
            .into_iter()
            .chain(options.into_iter().map(Into::into));
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Run(args) => Ok(*args),
            _ => Err("not a run command".into()),
        }
    }

    /// The factory bootstrap of `--bootstrap`, if given.
    fn bootstrap_settings(&self, secure: bool) -> Result<Option<BootstrapSettings>, String> {
        let Some(uri) = &self.bootstrap else {
            return Ok(None);
        };
        let (server, bs_secure) = parse_server_uri(uri)?;
        if secure != bs_secure {
            // The bootstrap server hands out an account of the device's own security mode: a
            // NoSec meter gets a coap:// account, a PSK one a coaps:// account.
            return Err(
                "--bootstrap and --server must both be coap:// (NoSec) or both coaps:// (PSK)"
                    .into(),
            );
        }
        Ok(Some(BootstrapSettings {
            server,
            secure,
            identity_prefix: self.bootstrap_identity_prefix.clone(),
            secret: self.naming.psk_secret.clone(),
        }))
    }

    /// What `--api` must provision for this fleet (call with the result of
    /// [`fleet_config`](Self::fleet_config)).
    pub fn provision_plan(&self, config: &FleetConfig) -> crate::provision::ProvisionPlan {
        crate::provision::ProvisionPlan {
            meters: config.meters,
            endpoint_prefix: config.meter.endpoint_prefix.clone(),
            security: config.meter.security.clone(),
            profiles: config.profiles.clone(),
            bootstrap: config.meter.bootstrap.clone(),
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5").is_err());
        assert_eq!(
            parse_window("2d:6h"),
            Ok((Duration::from_secs(172_800), Duration::from_secs(21_600)))
        );
        assert!(parse_window("2d").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_arguments_become_a_fleet_config() {
        let cli = Cli::try_parse_from([
            "ferrite-sim",
            "run",
            "--server",
            "coaps://127.0.0.1:5684",
            "--meters",
            "250",
            "--lwm2m",
            "1.1",
            "--speed",
            "3600",
            "--duration",
            "10m",
            "--outage",
            "1d:2h",
            "--utc-offset",
            "-5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("run expected");
        };
        let config = args.fleet_config(1_800_000_000.0).unwrap();
        assert_eq!(config.meters, 250);
        assert_eq!(config.profiles.versions, VersionMix::V1_1);
        assert!(matches!(config.meter.security, Security::Psk { .. }));
        // 10 minutes at 3600×: 600 × 3599 s before now.
        assert_eq!(config.sim_start, 1_800_000_000.0 - 600.0 * 3599.0);
        assert_eq!(config.meter.outages.scheduled, [(86_400.0, 7_200.0)]);
        assert_eq!(config.meter.utc_offset, -5 * 3600);
        assert_eq!(config.meter.reading_interval, 900);
    }

    #[test]
    fn a_toml_file_describes_a_fleet_and_the_command_line_wins() {
        let options = config_options(
            "server = \"coaps://127.0.0.1:5684\"\nmeters = 2000\nspeed = 3600.0\n\
             outage = [\"2d:6h\", \"10d:1d\"]\nbad_firmware = [\"2.5.0\"]\n\
             fota-failures = \"integrity=0.02\"\n",
        )
        .unwrap();
        assert!(options.windows(2).any(|w| w == ["--meters", "2000"]));
        assert!(options.windows(2).any(|w| w == ["--bad-firmware", "2.5.0"]));
        let path = std::env::temp_dir().join(format!("ferrite-sim-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "server = \"coaps://127.0.0.1:5684\"\nmeters = 2000\noutage = [\"2d:6h\"]\n\
             fota-failures = \"integrity=0.02,update=0.1\"\n",
        )
        .unwrap();
        let argv: Vec<OsString> = [
            "ferrite-sim",
            "run",
            "--config",
            path.to_str().unwrap(),
            "--meters",
            "50",
            "--outage",
            "5d:1h",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let expanded = expand_config(argv).unwrap();
        std::fs::remove_file(&path).ok();
        let Command::Run(args) = Cli::try_parse_from(expanded).unwrap().command else {
            panic!("run expected");
        };
        assert_eq!(args.naming.meters, 50);
        assert_eq!(args.server, "coaps://127.0.0.1:5684");
        let config = args.fleet_config(1_800_000_000.0).unwrap();
        assert_eq!(config.meter.outages.scheduled.len(), 2);
        assert_eq!(config.meter.firmware.integrity, 0.02);
        assert_eq!(config.meter.firmware.update, 0.1);
        assert!(config_options("[section]\nx = 1\n").is_err());
        assert!(config_options("x = ").is_err());
        // Unknown keys are clap's unknown options.
        let unknown = ["ferrite-sim", "run", "--server", "coap://127.0.0.1"]
            .into_iter()
            .map(String::from)
            .chain(config_options("colour = \"red\"").unwrap());
        assert!(Cli::try_parse_from(unknown).is_err());
    }

    #[test]
    fn bad_shares_are_refused() {
        let cli = Cli::try_parse_from([
            "ferrite-sim",
            "run",
            "--server",
            "coap://127.0.0.1",
            "--loss",
            "1.5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("run expected");
        };
        let err = args.fleet_config(0.0).err().unwrap_or_default();
        assert!(err.contains("--loss"), "{err}");
    }

    #[test]
    fn bootstrap_in_clear_or_over_dtls_never_mixed() {
        let config = |server: &str, bootstrap: &str| {
            RunArgs::parse_from_options(["--server", server, "--bootstrap", bootstrap])
                .unwrap()
                .fleet_config(0.0)
        };
        let nosec = config("coap://127.0.0.1:5683", "coap://127.0.0.1:5783").unwrap();
        let bs = nosec.meter.bootstrap.unwrap();
        assert!(!bs.secure);
        assert_eq!(bs.server.port(), 5783);
        assert_eq!(nosec.meter.security, Security::NoSec);
        let psk = config("coaps://127.0.0.1:5684", "coaps://127.0.0.1:5784").unwrap();
        assert!(psk.meter.bootstrap.unwrap().secure);
        for (server, bootstrap) in [
            ("coap://127.0.0.1:5683", "coaps://127.0.0.1:5784"),
            ("coaps://127.0.0.1:5684", "coap://127.0.0.1:5783"),
        ] {
            let err = config(server, bootstrap).err().unwrap_or_default();
            assert!(err.contains("--bootstrap"), "{err}");
        }
    }
}
