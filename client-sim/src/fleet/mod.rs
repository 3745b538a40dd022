//! The fleet runtime: N meters in one process, each with its own UDP socket (its own source
//! port), driven by a few worker threads.
//!
//! # How meters are scheduled
//!
//! A tokio task and timer per meter would cost a task, a timer entry and a socket registration
//! each, and wake the runtime for every one. Instead each worker thread owns a slice of the
//! fleet (meter `i` goes to worker `i % workers`) and runs one loop:
//!
//! - an epoll set (mio `Poll`) over all of its meters' sockets, each registered with the meter's
//!   slot index as token, so a readable event names its meter directly;
//! - a binary heap of (deadline, slot) entries, the meter's [`SimMeter::poll_timeout`]; an entry
//!   is pushed only when a meter's deadline moves earlier, and stale entries are skipped when
//!   popped (the slot remembers the deadline it is scheduled for), so the heap stays near one
//!   entry per meter;
//! - `poll` sleeps until the earliest deadline or a socket is readable; then due meters get
//!   `handle_timeout`, readable ones `handle_datagram`, and what they queue in [`Ctx::out`] is
//!   sent on their own socket.
//!
//! Nothing is shared between workers but the settings and the atomic counters (and the ledger
//! file, appended in large chunks).

mod faults;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use self::faults::FaultConfig;
use crate::clock::SimClock;
use crate::ledger::Ledger;
use crate::meter::{MeterSettings, ProfileParams};
use crate::stats::{Snapshot, Stats};

/// Everything a fleet run needs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of meters.
    pub meters: u32,
    /// Worker threads (0: one per available core).
    pub workers: usize,
    /// Meters started (first Register or handshake) per second.
    pub start_rate: f64,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Simulated Unix time at the start.
    pub sim_start: f64,
    /// Who the meters are.
    pub profiles: ProfileParams,
    /// How they behave (the clock in it is replaced when the fleet starts).
    pub meter: MeterSettings,
    /// The ledger file, if any.
    pub ledger: Option<PathBuf>,
    /// Network faults.
    pub faults: FaultConfig,
}

/// Why a fleet could not start.
#[derive(Debug, Error)]
pub enum FleetError {
    /// The ledger file could not be created.
    #[error("cannot create the ledger {path}: {source}")]
    Ledger {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What the workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub settings: MeterSettings,
    pub profiles: ProfileParams,
    pub faults: FaultConfig,
    pub stats: Stats,
    pub stop: AtomicBool,
    /// Meters whose socket and state exist.
    pub created: AtomicUsize,
    /// Sockets that could not be opened (file-descriptor limit?).
    pub socket_errors: AtomicUsize,
    /// First socket error, for the report.
    pub first_socket_error: std::sync::Mutex<Option<String>>,
    pub start_rate: f64,
    pub meters: u32,
}

/// A running fleet.
#[derive(Debug)]
pub struct Fleet {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// Final counters.
    pub stats: Snapshot,
    /// Real time the fleet ran.
    pub elapsed: Duration,
    /// Meters that could not get a socket.
    pub socket_errors: usize,
}

impl Fleet {
    /// Starts the workers; meters begin registering at `start_rate` per second.
    pub fn start(config: FleetConfig) -> Result<Fleet, FleetError> {
        if config.meters == 0 {
            return Err(FleetError::Config("no meters".into()));
        }
        let largest_batch = config.meter.send_batch.max(config.meter.replay_batch);
        if config.meter.buffer_capacity <= largest_batch {
            return Err(FleetError::Config(format!(
                "the buffer ({} readings) must hold more than a batch ({largest_batch})",
                config.meter.buffer_capacity
            )));
        }
        let ledger = match &config.ledger {
            Some(path) => Some(Ledger::create(path, &config.meter.endpoint_prefix).map_err(
                |source| FleetError::Ledger {
                    path: path.clone(),
                    source,
                },
            )?),
            None => None,
        };
        let started = Instant::now();
        let mut settings = config.meter.clone();
        settings.clock = SimClock::new(started, config.sim_start, config.speed);
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        }
        .clamp(1, config.meters as usize);
        let shared = Arc::new(Shared {
            settings,
            profiles: config.profiles.clone(),
            faults: config.faults.clone(),
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            created: AtomicUsize::new(0),
            socket_errors: AtomicUsize::new(0),
            first_socket_error: std::sync::Mutex::new(None),
            start_rate: config.start_rate.max(0.001),
            meters: config.meters,
        });
        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let shared = Arc::clone(&shared);
            let writer = ledger.as_ref().map(|l| l.writer());
            let handle = std::thread::Builder::new()
                .name(format!("sim-worker-{id}"))
                .spawn(move || worker::run(id, workers, shared, writer, started))
                .map_err(FleetError::Thread)?;
            handles.push(handle);
        }
        Ok(Fleet {
            shared,
            workers: handles,
            started,
        })
    }

    /// The counters now.
    pub fn stats(&self) -> Snapshot {
        self.shared.stats.snapshot()
    }

    /// Meters created so far (sockets open).
    pub fn created(&self) -> usize {
        self.shared.created.load(Ordering::Relaxed)
    }

    /// Meters that could not get a socket, and the first reason.
    pub fn socket_errors(&self) -> (usize, Option<String>) {
        let n = self.shared.socket_errors.load(Ordering::Relaxed);
        let first = self
            .shared
            .first_socket_error
            .lock()
            .ok()
            .and_then(|e| e.clone());
        (n, first)
    }

    /// The simulated clock.
    pub fn clock(&self) -> SimClock {
        self.shared.settings.clock
    }

    /// When the fleet started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Asks every meter to stop gracefully (flush, de-register).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Whether every worker has finished.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(|w| w.is_finished())
    }

    /// Waits for the workers (after [`stop`](Self::stop)) and reports.
    pub fn join(self) -> FleetReport {
        for w in self.workers {
            // A worker that panicked has already printed why; the counters still stand.
            let _ = w.join();
        }
        FleetReport {
            stats: self.shared.stats.snapshot(),
            elapsed: self.started.elapsed(),
            socket_errors: self.shared.socket_errors.load(Ordering::Relaxed),
        }
    }
}

/// Parses `coap://host:port` or `coaps://host:port` (default ports 5683 / 5684) into the
/// address and whether DTLS is used.
pub fn parse_server_uri(uri: &str) -> Result<(SocketAddr, bool), String> {
    use std::net::ToSocketAddrs;
    let (secure, rest) = if let Some(rest) = uri.strip_prefix("coaps://") {
        (true, rest)
    } else if let Some(rest) = uri.strip_prefix("coap://") {
        (false, rest)
    } else {
        return Err(format!(
            "{uri:?}: expected coap://HOST:PORT or coaps://HOST:PORT"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if secure { 5684 } else { 5683 };
    let with_port = if rest.starts_with('[') {
        if rest.contains("]:") {
            rest.to_owned()
        } else {
            format!("{rest}:{default_port}")
        }
    } else if rest.contains(':') {
        rest.to_owned()
    } else {
        format!("{rest}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{uri:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{uri:?}: no address"))?;
    Ok((addr, secure))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn server_uris() {
        assert_eq!(
            parse_server_uri("coap://127.0.0.1:5683").unwrap(),
            ("127.0.0.1:5683".parse().unwrap(), false)
        );
        assert_eq!(
            parse_server_uri("coaps://127.0.0.1").unwrap(),
            ("127.0.0.1:5684".parse().unwrap(), true)
        );
        assert_eq!(
            parse_server_uri("coap://[::1]").unwrap(),
            ("[::1]:5683".parse().unwrap(), false)
        );
        assert!(parse_server_uri("http://x").is_err());
        assert!(parse_server_uri("coap://127.0.0.1:notaport").is_err());
    }
}
