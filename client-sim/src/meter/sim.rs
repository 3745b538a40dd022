//! [`SimMeter`]: one simulated meter as a sans-I/O state machine: its model (profile, dynamics,
//! objects), its LwM2M client, its DTLS session, its store-and-forward buffer, and the life it
//! leads (start, register, read every interval, deliver, outages, reboots, stop). The worker
//! that owns it feeds datagrams and timeouts with the real `now`, sends what lands in
//! [`Ctx::out`], and calls back at [`SimMeter::poll_timeout`].
//!
//! Delivery of readings (PRODUCT.md "Metering"): a 1.1 meter sends its buffered readings with
//! LwM2M Send (`/dp`, OMA LwM2M TS Core 1.1 §6.4.4; SenML CBOR records carrying the readings'
//! own times) once `send_batch` have accumulated, one Send at a time, `replay_batch` at a time
//! after an outage. A 1.0 meter has no Send: the server observes `/10243/0` and each reading is
//! shown in the object in turn, one Confirmable notification each (RFC 7641 §4.5); the reading
//! counts as acknowledged when that notification's ACK arrives (TLV carries no time, so a
//! replayed 1.0 reading reaches the server stamped with its arrival time).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrite_dtls::ClientEvent as DtlsEvent;
use lwm2m_objects::codec::Record;
use lwm2m_objects::{Path, Value};
use lwm2m_proto::coap::{Message, MessageType};
use lwm2m_proto::lwm2m::client::{
    BootstrapOutcome, ClientConfig, ClientEvent, Lwm2mClient, RegistrationOperation,
    RegistrationState, RequestFailure, SendId,
};
use lwm2m_proto::lwm2m::registration::{Lwm2mVersion, UpdateParams};
use sha2::{Digest, Sha256};

use super::buffer::ReadingBuffer;
use super::download::{Download, Injected, PskCredential};
use super::dynamics::{Dynamics, Reading};
use super::firmware::{self, FirmwareSettings};
use super::handshake::BackoffDtlsClient;
use super::profile::{Problem, Profile, stream};
use super::store::MeterStore;
use crate::clock::SimClock;
use crate::ledger::{LedgerWriter, Via};
use crate::rng::Rng;
use crate::stats::Stats;

/// How meters authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// CoAP without DTLS (`coap://`).
    NoSec,
    /// DTLS 1.2 with a pre-shared key per meter (`coaps://`): identity `identity_prefix` +
    /// endpoint name, key derived from `secret` (see [`psk_key`]).
    Psk {
        /// Put before the endpoint name to form the PSK identity.
        identity_prefix: String,
        /// The fleet secret the keys are derived from.
        secret: String,
    },
}

/// The PSK of `identity` under the fleet `secret`: the first 16 bytes of
/// SHA-256("ferrite-sim psk v1" ‖ 0 ‖ secret ‖ 0 ‖ identity). Published so the server side can
/// be provisioned with the same keys (`ferrite-sim keys`).
pub fn psk_key(secret: &str, identity: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"ferrite-sim psk v1\0");
    h.update(secret.as_bytes());
    h.update([0u8]);
    h.update(identity.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The endpoint name of meter `index`: the prefix and a 1-based number of at least six digits.
pub fn endpoint_name(prefix: &str, index: u32) -> String {
    format!("{prefix}{:06}", u64::from(index) + 1)
}

/// Outages: fixed windows for a share of the fleet, and random ones for every meter.
#[derive(Debug, Clone, Default)]
pub struct OutagePlan {
    /// (start, duration) in simulated seconds from the simulation start.
    pub scheduled: Vec<(f64, f64)>,
    /// Share of meters that take the scheduled outages.
    pub scheduled_share: f64,
    /// Random outages per meter per simulated day (Poisson).
    pub random_per_day: f64,
    /// Mean length of a random outage, simulated seconds (exponential).
    pub random_mean: f64,
}

/// Settings shared by every meter of the fleet.
#[derive(Debug, Clone)]
pub struct MeterSettings {
    /// The fleet seed.
    pub seed: u64,
    /// Endpoint name prefix.
    pub endpoint_prefix: String,
    /// The LwM2M server.
    pub server: SocketAddr,
    /// NoSec or PSK.
    pub security: Security,
    /// Real ↔ simulated time.
    pub clock: SimClock,
    /// Registration lifetime, simulated seconds.
    pub lifetime: u32,
    /// The lifetime on the wire is the simulated one divided by the speed, but at least this
    /// (real seconds), so Updates do not flood the server at high speeds.
    pub min_real_lifetime: u32,
    /// Seconds between readings (simulated).
    pub reading_interval: u32,
    /// Readings per Send in normal operation.
    pub send_batch: usize,
    /// Readings per Send when catching up after an outage.
    pub replay_batch: usize,
    /// Readings a meter buffers before evicting the oldest.
    pub buffer_capacity: usize,
    /// Local time of the meters, seconds east of UTC (the daily pattern is local).
    pub utc_offset: i64,
    /// Period of the periodic-reboot problem, simulated hours.
    pub reboot_period_hours: f64,
    /// How long a restart keeps the meter silent, simulated seconds.
    pub reboot_downtime: f64,
    /// Outages.
    pub outages: OutagePlan,
    /// On stop: how long meters may keep flushing readings before they de-register (real).
    pub stop_flush: Duration,
    /// Firmware faults and bad versions.
    pub firmware: FirmwareSettings,
    /// Start by factory bootstrap rather than with provisioned DM credentials.
    pub bootstrap: Option<BootstrapSettings>,
}

impl MeterSettings {
    /// The lifetime announced in Register (real seconds).
    pub fn real_lifetime(&self) -> u32 {
        let real = f64::from(self.lifetime) / self.clock.speed();
        (real.round() as u32).max(self.min_real_lifetime).max(1)
    }
}

/// Factory bootstrap (`--bootstrap`, OMA LwM2M TS Core 1.1 §6.1.5 client-initiated bootstrap):
/// the meter first opens a DTLS session to the bootstrap server with its factory credential
/// (identity `identity_prefix` + endpoint name, key derived from `secret` like the DM keys),
/// sends Bootstrap-Request, takes the Security and Server instances the server writes, and after
/// Bootstrap-Finish registers with the LwM2M server and the PSK it was given. The account is kept
/// across restarts (it is in the meter's flash). A NoSec fleet (`secure` false) does the same in
/// clear and must be given a NoSec (`coap://`) account; the factory credential is then unused.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapSettings {
    /// The bootstrap server (its CoAPS address, or its CoAP address for a NoSec fleet).
    pub server: SocketAddr,
    /// Over DTLS (`coaps://`, the fleet is PSK) or in clear (`coap://`, the fleet is NoSec).
    pub secure: bool,
    /// Put before the endpoint name to form the factory PSK identity.
    pub identity_prefix: String,
    /// The secret the factory keys are derived from.
    pub secret: String,
}

/// The LwM2M server account a bootstrap delivered.
#[derive(Debug, Clone, PartialEq)]
struct DmAccount {
    server: SocketAddr,
    identity: Vec<u8>,
    key: Vec<u8>,
}

/// What a meter reports to, and writes through, its worker.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Fleet settings.
    pub settings: &'a MeterSettings,
    /// Counters.
    pub stats: &'a Stats,
    /// The worker's ledger writer, if the ledger is on.
    pub ledger: &'a mut Option<LedgerWriter>,
    /// Datagrams to send to the server, in order.
    pub out: &'a mut Vec<Vec<u8>>,
    /// Datagrams of a firmware pull, to send from the meter's download socket.
    pub download: &'a mut Vec<(SocketAddr, Vec<u8>)>,
}

/// Where the meter is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not started yet.
    Waiting { start_at: Instant },
    /// Running (connecting, registered, retrying …: see the client's state).
    Running,
    /// Restarting: silent until then.
    Rebooting { until: Instant },
    /// Asked to stop: flushing readings, then de-registering, by these deadlines.
    Stopping {
        flush_until: Instant,
        give_up_at: Instant,
    },
    /// Done.
    Stopped,
}

/// A reading delivery on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Delivery {
    Idle,
    /// A Send of the buffer's in-flight readings.
    Send(SendId),
    /// A notification of the front reading (1.0): its message ID once it left.
    Notify {
        message_id: Option<u16>,
    },
}

/// The first retry waits about this long; each further one doubles it.
const RETRY_BASE: Duration = Duration::from_secs(2);
/// Retries wait at most about this long.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// A restart keeps the meter silent for at least this much real time (the answer to an Execute
/// of Reboot must leave first).
const MIN_REAL_DOWNTIME: Duration = Duration::from_millis(20);

/// One simulated meter.
#[derive(Debug)]
pub struct SimMeter {
    profile: Profile,
    dynamics: Dynamics,
    client: Lwm2mClient<MeterStore>,
    dtls: Option<Box<BackoffDtlsClient>>,
    buffer: ReadingBuffer,
    phase: Phase,
    delivery: Delivery,
    /// The next reading's timestamp (on the interval grid), simulated seconds.
    next_reading: i64,
    /// Readings are taken this long after their grid time, so the fleet spreads its work.
    reading_offset: u16,
    /// Periodic reboots: the next one (simulated).
    next_reboot: f64,
    /// The current outage ends then (simulated), if offline.
    offline_until: Option<f64>,
    /// The next outage (start, end), simulated.
    next_outage: Option<(f64, f64)>,
    /// Index of the next scheduled outage to consider.
    scheduled_outage: u8,
    /// When to try again what failed (register, update, handshake, delivery).
    retry_at: Option<Instant>,
    retries: u8,
    /// The registration must be refreshed by an Update (after a failed one or an outage).
    needs_update: bool,
    /// Counted in the fleet's `registered` gauge.
    counted_registered: bool,
    /// The server observes the power meter instance.
    observed: bool,
    /// Client rebuilds (reboots), for fresh protocol seeds.
    generation: u32,
    /// A firmware pull in progress.
    download: Option<Box<Download>>,
    /// The installed firmware is one of the bad versions.
    bad_firmware: bool,
    /// The LwM2M server account received by bootstrap (`--bootstrap`).
    dm: Option<Box<DmAccount>>,
    /// The peer changed (bootstrap server → LwM2M server): the worker must move the socket.
    reconnect: bool,
}

impl SimMeter {
    /// Meter `profile.index`, starting (connect or register) at `start_at`.
    pub fn new(profile: Profile, settings: &MeterSettings, start_at: Instant) -> SimMeter {
        let clock = settings.clock;
        let sim_start = clock.sim_start();
        let mut dynamics = Dynamics::new(&profile, settings.seed, sim_start);
        let interval = i64::from(settings.reading_interval.max(1));
        let offset = dynamics.rng().below(interval as u64) as u16;
        // The first grid time after the start.
        let next_reading = (sim_start as i64).div_euclid(interval) * interval + interval;
        let next_reboot = sim_start + f64::from(profile.reboot_phase_hours) * 3600.0;
        let next_reboot = if profile.problems.has(Problem::PeriodicReboots) {
            next_reboot
        } else {
            f64::INFINITY
        };
        let mut store = MeterStore::new(&profile, settings.real_lifetime(), sim_start);
        // The objects show real values from the start: the registers as they stand and the
        // device's condition (a display reading, not one that is delivered).
        store.set_device(dynamics.device_values(&profile, sim_start));
        let shown = Reading {
            seq: 0,
            time: sim_start as i64,
            active_kwh: dynamics.active_kwh,
            reactive_kvarh: dynamics.reactive_kvarh,
            power_kw: 0.0,
            power_factor: profile.power_factor,
        };
        let electrical = dynamics.electrical(&shown);
        store.set_reading(shown, Some(electrical));
        store.clear_changes();
        store.set_package_faults(
            &settings.firmware,
            Rng::derive(settings.seed, stream::FIRMWARE, u64::from(profile.index)),
        );
        let bad_firmware = settings.firmware.is_bad(profile.firmware_version());
        // A meter that runs a bad version from the start restarts with its rhythm too (the
        // ground truth lists it with that symptom), at a phase of its own within the period.
        let next_reboot = if bad_firmware && settings.firmware.bad_effect.reboots() {
            let period = settings.firmware.bad_reboot_period.max(60.0);
            let phase =
                f64::from(profile.reboot_phase_hours) / settings.reboot_period_hours.max(0.01);
            next_reboot.min(sim_start + phase.clamp(0.0, 1.0) * period)
        } else {
            next_reboot
        };
        let client = Lwm2mClient::new(
            client_config(&profile, settings),
            store,
            protocol_seed(settings, &profile, 0),
        );
        let mut meter = SimMeter {
            profile,
            dynamics,
            client,
            dtls: None,
            buffer: ReadingBuffer::new(),
            phase: Phase::Waiting { start_at },
            delivery: Delivery::Idle,
            next_reading,
            reading_offset: offset,
            next_reboot,
            offline_until: None,
            next_outage: None,
            scheduled_outage: 0,
            retry_at: None,
            retries: 0,
            needs_update: false,
            counted_registered: false,
            observed: false,
            generation: 0,
            download: None,
            bad_firmware,
            dm: None,
            reconnect: false,
        };
        meter.plan_next_outage(settings, sim_start);
        meter
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The LwM2M client (state, store).
    pub fn client(&self) -> &Lwm2mClient<MeterStore> {
        &self.client
    }

    /// The store-and-forward buffer.
    pub fn buffer(&self) -> &ReadingBuffer {
        &self.buffer
    }

    /// Whether the meter has finished (stopped).
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Whether it is in an outage.
    pub fn is_offline(&self) -> bool {
        self.offline_until.is_some()
    }

    /// Readings waiting for acknowledgement.
    pub fn pending_readings(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a firmware pull is in progress (the worker keeps a download socket meanwhile).
    pub fn is_downloading(&self) -> bool {
        self.download.is_some()
    }

    /// Where the meter's socket must be connected: the bootstrap server until a bootstrap
    /// delivered an account, then that account's server; without bootstrap the fleet's server.
    pub fn peer(&self, settings: &MeterSettings) -> SocketAddr {
        match (&self.dm, &settings.bootstrap) {
            (Some(dm), _) => dm.server,
            (None, Some(bs)) => bs.server,
            (None, None) => settings.server,
        }
    }

    /// Whether the peer changed since the last call (the worker then opens a socket connected
    /// to [`peer`](Self::peer)).
    pub fn take_reconnect(&mut self) -> bool {
        std::mem::take(&mut self.reconnect)
    }

    /// Whether the meter still has to bootstrap before it can register.
    fn must_bootstrap(&self, settings: &MeterSettings) -> bool {
        settings.bootstrap.is_some() && self.dm.is_none()
    }

    /// The meter's PSK for its LwM2M server (the one it registers with: provisioned, or
    /// delivered by bootstrap), which a `coaps://` firmware pull authenticates with; `None` for a
    /// NoSec meter or one still waiting for its bootstrap.
    pub fn dm_credential(&self, settings: &MeterSettings) -> Option<PskCredential> {
        if let Some(dm) = self.dm.as_ref().filter(|dm| !dm.identity.is_empty()) {
            return Some(PskCredential {
                identity: dm.identity.clone(),
                key: dm.key.clone(),
            });
        }
        match &settings.security {
            Security::Psk {
                identity_prefix,
                secret,
            } if settings.bootstrap.is_none() => {
                let identity = format!("{identity_prefix}{}", self.client.endpoint());
                let key = psk_key(secret, &identity).to_vec();
                Some(PskCredential {
                    identity: identity.into_bytes(),
                    key,
                })
            }
            _ => None,
        }
    }

    /// Whether the installed firmware is one of the bad versions.
    pub fn has_bad_firmware(&self) -> bool {
        self.bad_firmware
    }

    /// A datagram from the firmware server `from`, on the download socket.
    pub fn handle_download_datagram(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        Stats::inc(&ctx.stats.datagrams_received);
        if self.download.is_none() || self.phase != Phase::Running || self.offline_until.is_some() {
            Stats::inc(&ctx.stats.datagrams_dropped);
            return;
        }
        self.set_now(ctx, now);
        if let Some(download) = self.download.as_mut() {
            download.handle_datagram(now, from, bytes);
        }
        self.drain_download(ctx, now);
        self.pump(ctx, now);
    }

    // ---------------------------------------------------------------- inputs

    /// A datagram from the server.
    pub fn handle_datagram(&mut self, ctx: &mut Ctx<'_>, now: Instant, bytes: &[u8]) {
        Stats::inc(&ctx.stats.datagrams_received);
        if !matches!(self.phase, Phase::Running | Phase::Stopping { .. })
            || self.offline_until.is_some()
        {
            Stats::inc(&ctx.stats.datagrams_dropped);
            return;
        }
        self.set_now(ctx, now);
        self.client.store_mut().count_traffic(false, bytes.len());
        // The socket is connected: whatever arrives is from the current peer.
        let peer = self.peer(ctx.settings);
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.handle_datagram(now, peer, bytes);
            self.drain_dtls(ctx, now);
        } else if ctx.settings.security == Security::NoSec {
            self.feed_client(ctx, now, bytes);
        } else {
            Stats::inc(&ctx.stats.datagrams_dropped);
        }
        self.pump(ctx, now);
    }

    /// Timers: call at or after [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.set_now(ctx, now);
        match self.phase {
            Phase::Waiting { start_at } if now >= start_at => {
                self.phase = Phase::Running;
                self.connect_or_register(ctx, now);
            }
            Phase::Rebooting { until } if now >= until => {
                self.phase = Phase::Running;
                self.connect_or_register(ctx, now);
            }
            Phase::Stopping {
                flush_until,
                give_up_at,
            } => {
                if now >= give_up_at {
                    self.finish_stop(ctx, now);
                    return;
                }
                if now >= flush_until {
                    self.deregister_for_stop(ctx, now);
                }
            }
            Phase::Stopped => return,
            _ => {}
        }
        let sim_now = ctx.settings.clock.sim(now);
        self.run_outages(ctx, now, sim_now);
        self.run_readings(ctx, now, sim_now);
        self.run_reboots(ctx, now, sim_now);
        if self.phase == Phase::Running
            && self.offline_until.is_none()
            && self.retry_at.is_some_and(|at| now >= at)
        {
            self.retry_at = None;
            self.resume(ctx, now);
        }
        if matches!(self.phase, Phase::Running | Phase::Stopping { .. }) {
            if let Some(dtls) = self.dtls.as_mut() {
                dtls.handle_timeout(now);
                self.drain_dtls(ctx, now);
            }
            self.client.handle_timeout(now);
            if let Some(download) = self.download.as_mut() {
                download.handle_timeout(now);
                self.drain_download(ctx, now);
            }
        }
        self.pump(ctx, now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self, settings: &MeterSettings) -> Option<Instant> {
        let clock = &settings.clock;
        let mut at: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        match self.phase {
            Phase::Stopped => return None,
            Phase::Waiting { start_at } => consider(Some(start_at)),
            Phase::Rebooting { until } => consider(Some(until)),
            Phase::Stopping {
                flush_until,
                give_up_at,
            } => {
                consider(Some(give_up_at));
                if self.client.state() == RegistrationState::Registered {
                    consider(Some(flush_until));
                }
            }
            Phase::Running => {}
        }
        if matches!(self.phase, Phase::Running | Phase::Stopping { .. }) {
            consider(self.client.poll_timeout());
            consider(self.dtls.as_ref().and_then(|d| d.poll_timeout()));
            consider(self.download.as_ref().and_then(|d| d.poll_timeout()));
            if self.offline_until.is_none() {
                consider(self.retry_at);
            }
        }
        if !matches!(self.phase, Phase::Stopping { .. }) {
            let reading_due = self.next_reading as f64 + f64::from(self.reading_offset);
            consider(Some(clock.real(reading_due)));
            if self.next_reboot.is_finite() {
                consider(Some(clock.real(self.next_reboot)));
            }
            match (self.offline_until, self.next_outage) {
                (Some(end), _) => consider(Some(clock.real(end))),
                (None, Some((start, _))) => consider(Some(clock.real(start))),
                (None, None) => {}
            }
        }
        at
    }

    /// Starts a graceful stop: deliver what is buffered for up to `stop_flush`, then
    /// de-register, and give up `stop_flush` + 10 s later whatever happened.
    pub fn stop(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        match self.phase {
            Phase::Stopped | Phase::Stopping { .. } => return,
            Phase::Waiting { .. } | Phase::Rebooting { .. } => {
                self.finish_stop(ctx, now);
                return;
            }
            Phase::Running => {}
        }
        let registered = self.client.state() == RegistrationState::Registered;
        if !registered || self.offline_until.is_some() {
            self.finish_stop(ctx, now);
            return;
        }
        self.phase = Phase::Stopping {
            flush_until: now + ctx.settings.stop_flush,
            give_up_at: now + ctx.settings.stop_flush + Duration::from_secs(10),
        };
        self.pump(ctx, now);
    }

    /// Changes the meter's network path (NAT rebinding seen from the server): a DTLS session is
    /// bound to the old address, so it is dropped and the next exchange handshakes again.
    pub fn rebind(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        Stats::inc(&ctx.stats.fault_rebinds);
        if self.dtls.take().is_some() && self.phase == Phase::Running {
            self.needs_update = self.client.state() == RegistrationState::Registered;
            self.connect_or_register(ctx, now);
            self.pump(ctx, now);
        }
    }

    // ---------------------------------------------------------------- life

    fn set_now(&mut self, ctx: &Ctx<'_>, now: Instant) {
        self.client.store_mut().live.now = ctx.settings.clock.sim(now) as i64;
    }

    /// Connects (DTLS) if needed, then registers or updates.
    fn connect_or_register(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.offline_until.is_some() {
            return; // resumes when the outage ends
        }
        if let Security::Psk {
            identity_prefix,
            secret,
        } = &ctx.settings.security
        {
            let connected = self.dtls.as_ref().is_some_and(|d| d.is_connected());
            if !connected {
                let (identity, key, server) = match (&self.dm, &ctx.settings.bootstrap) {
                    (Some(dm), _) => (dm.identity.clone(), dm.key.clone(), dm.server),
                    (None, Some(bs)) => {
                        let identity = format!("{}{}", bs.identity_prefix, self.client.endpoint());
                        let key = psk_key(&bs.secret, &identity).to_vec();
                        (identity.into_bytes(), key, bs.server)
                    }
                    (None, None) => {
                        let identity = format!("{identity_prefix}{}", self.client.endpoint());
                        let key = psk_key(secret, &identity).to_vec();
                        (identity.into_bytes(), key, ctx.settings.server)
                    }
                };
                match BackoffDtlsClient::new(identity, key) {
                    Ok(mut dtls) => match dtls.connect(now, server) {
                        Ok(()) => {
                            self.dtls = Some(Box::new(dtls));
                            self.drain_dtls(ctx, now);
                        }
                        Err(_) => self.schedule_retry(now),
                    },
                    Err(_) => self.schedule_retry(now),
                }
                return; // registers (or bootstraps) once connected
            }
        }
        self.after_connect(ctx, now);
    }

    /// The session is up (or none is needed): bootstrap first if the meter has no account yet,
    /// else register or update.
    fn after_connect(&mut self, ctx: &Ctx<'_>, now: Instant) {
        if self.must_bootstrap(ctx.settings) {
            if !self.client.is_bootstrapping() && self.client.bootstrap(now).is_err() {
                self.schedule_retry(now);
            }
            return;
        }
        self.register_or_update(now);
    }

    /// Bootstrap-Finish arrived (or the bootstrap failed).
    fn on_bootstrap(&mut self, ctx: &mut Ctx<'_>, now: Instant, outcome: BootstrapOutcome) {
        let account = match outcome {
            BootstrapOutcome::Finished { account } => account,
            BootstrapOutcome::Failed { .. } => {
                Stats::inc(&ctx.stats.bootstrap_failures);
                self.dtls = None;
                self.schedule_retry(now);
                return;
            }
        };
        let secure = matches!(ctx.settings.security, Security::Psk { .. });
        match crate::fleet::parse_server_uri(&account.server_uri) {
            // The account must be of the fleet's own kind: a PSK one with its identity for a
            // DTLS fleet, a coap:// one for a NoSec fleet.
            Ok((server, uri_secure))
                if uri_secure == secure && secure != account.identity.is_empty() =>
            {
                Stats::inc(&ctx.stats.bootstraps);
                self.dm = Some(Box::new(DmAccount {
                    server,
                    identity: account.identity,
                    key: account.secret_key,
                }));
                // The bootstrap session has served its purpose (the server ages it out); the
                // worker moves the socket to the LwM2M server, then the retry timer connects.
                self.dtls = None;
                self.reconnect = true;
                self.retries = 0;
                self.retry_at = Some(now);
            }
            _ => {
                // An account of the other kind or an unusable URI: try the whole bootstrap
                // again later.
                Stats::inc(&ctx.stats.bootstrap_failures);
                self.dtls = None;
                self.schedule_retry(now);
            }
        }
    }

    fn register_or_update(&mut self, now: Instant) {
        match self.client.state() {
            RegistrationState::Registered if self.needs_update => {
                self.needs_update = false;
                if self.client.update(now, UpdateParams::default()).is_err() {
                    self.schedule_retry(now);
                }
            }
            RegistrationState::Registered => {}
            RegistrationState::Unregistered => {
                if self.client.register(now).is_err() {
                    self.schedule_retry(now);
                }
            }
            RegistrationState::Registering | RegistrationState::Deregistering => {}
        }
    }

    /// A retry came due: redo whatever is missing.
    fn resume(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let need_session = matches!(ctx.settings.security, Security::Psk { .. })
            && !self.dtls.as_ref().is_some_and(|d| d.is_connected());
        if need_session || self.client.state() != RegistrationState::Registered || self.needs_update
        {
            self.connect_or_register(ctx, now);
        }
        // A failed delivery simply becomes possible again (pump tries it).
    }

    fn schedule_retry(&mut self, now: Instant) {
        let exp = u32::from(self.retries.min(8));
        let base = RETRY_BASE.saturating_mul(1 << exp).min(RETRY_MAX);
        let jitter = self.dynamics.rng().range(0.5, 1.5);
        let wait = base.mul_f64(jitter);
        self.retries = self.retries.saturating_add(1);
        let at = now + wait;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
    }

    fn reboot(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        Stats::inc(&ctx.stats.reboots);
        let sim_now = ctx.settings.clock.sim(now);
        self.dynamics.reboot(sim_now);
        if self.delivery != Delivery::Idle {
            self.buffer.fail();
            self.delivery = Delivery::Idle;
        }
        self.set_registered(ctx, false);
        // A restart loses RAM: a fresh client (new tokens, message IDs, no observations) on the
        // same objects; a crash sends no close_notify, so the DTLS session just vanishes.
        self.generation = self.generation.wrapping_add(1);
        let seed = protocol_seed(ctx.settings, &self.profile, self.generation);
        let placeholder = MeterStore::new(&self.profile, ctx.settings.real_lifetime(), sim_now);
        let fresh = Lwm2mClient::new(
            client_config(&self.profile, ctx.settings),
            placeholder,
            seed,
        );
        let old = std::mem::replace(&mut self.client, fresh);
        *self.client.store_mut() = old.into_store();
        self.download = None;
        let updating = self.client.store().firmware_state() == firmware::state::UPDATING;
        let failure = self
            .dynamics
            .rng()
            .chance(ctx.settings.firmware.update)
            .then_some(firmware::result::UPDATE_FAILED);
        let installed = self.client.store_mut().finish_update(failure);
        if updating {
            self.after_update(ctx, sim_now, installed);
        }
        self.dtls = None;
        self.observed = false;
        self.needs_update = false;
        self.retry_at = None;
        self.retries = 0;
        let downtime = ctx
            .settings
            .clock
            .real_span(ctx.settings.reboot_downtime)
            .max(MIN_REAL_DOWNTIME);
        self.phase = Phase::Rebooting {
            until: now + downtime,
        };
    }

    /// The restart after Execute Update is done: count it, note it in the ledger, and take on
    /// the new version's behaviour (a bad version restarts every few hours or reports errors).
    fn after_update(&mut self, ctx: &mut Ctx<'_>, sim_now: f64, installed: Option<String>) {
        let store = self.client.store();
        let result = store.firmware_result();
        let version = store.firmware_version();
        let Some(installed) = installed else {
            Stats::inc(&ctx.stats.firmware_update_failures);
            if let Some(ledger) = ctx.ledger.as_mut() {
                ledger.firmware(
                    self.profile.index,
                    sim_now as i64,
                    &version,
                    result,
                    self.bad_firmware,
                );
            }
            return;
        };
        Stats::inc(&ctx.stats.firmware_updates);
        let fw = &ctx.settings.firmware;
        self.bad_firmware = fw.is_bad(&installed);
        if self.bad_firmware {
            Stats::inc(&ctx.stats.bad_firmware_installs);
        }
        if let Some(ledger) = ctx.ledger.as_mut() {
            ledger.firmware(
                self.profile.index,
                sim_now as i64,
                &installed,
                result,
                self.bad_firmware,
            );
        }
        if self.bad_firmware && fw.bad_effect.reboots() {
            let first = sim_now + ctx.settings.reboot_downtime + fw.bad_reboot_period.max(60.0);
            self.next_reboot = self.next_reboot.min(first);
        } else if !self.profile.problems.has(Problem::PeriodicReboots) {
            self.next_reboot = f64::INFINITY;
        }
    }

    /// Starts fetching the Package URI just written (Downloading).
    fn start_download(&mut self, ctx: &mut Ctx<'_>, now: Instant, uri: &str) {
        Stats::inc(&ctx.stats.firmware_downloads);
        let fw = &ctx.settings.firmware;
        let rng = self.dynamics.rng();
        let inject = if rng.chance(fw.connection) {
            Some(Injected::ConnectionLost)
        } else if rng.chance(fw.out_of_memory) {
            Some(Injected::OutOfMemory)
        } else {
            None
        };
        let seed = rng.next_u64();
        let credential = self.dm_credential(ctx.settings);
        match Download::start(now, uri, seed, inject, credential.as_ref()) {
            Ok(download) => {
                self.download = Some(Box::new(download));
                self.drain_download(ctx, now);
            }
            Err(code) => {
                Stats::inc(&ctx.stats.firmware_download_failures);
                self.client
                    .with_store(now, |s| s.download_finished(Err(code)));
            }
        }
    }

    /// Moves a pull's datagrams out and, when it ended, hands the package (or the failure) to
    /// the firmware object.
    fn drain_download(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(download) = self.download.as_mut() else {
            return;
        };
        while let Some(datagram) = download.poll_transmit() {
            if self.offline_until.is_some() {
                Stats::inc(&ctx.stats.datagrams_dropped);
            } else {
                Stats::inc(&ctx.stats.datagrams_sent);
                ctx.download.push(datagram);
            }
        }
        if let Some(outcome) = download.take_outcome() {
            self.download = None;
            if outcome.is_err() {
                Stats::inc(&ctx.stats.firmware_download_failures);
            }
            self.client
                .with_store(now, |s| s.download_finished(outcome));
        }
    }

    fn deregister_for_stop(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        match self.client.state() {
            RegistrationState::Registered => {
                if self.client.deregister(now).is_err() {
                    self.finish_stop(ctx, now);
                }
            }
            RegistrationState::Deregistering => {}
            RegistrationState::Unregistered | RegistrationState::Registering => {
                self.finish_stop(ctx, now)
            }
        }
    }

    fn finish_stop(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.set_registered(ctx, false);
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.close(now);
            while let Some((_, bytes)) = dtls.poll_transmit() {
                ctx.out.push(bytes);
            }
        }
        self.dtls = None;
        self.phase = Phase::Stopped;
    }

    fn set_registered(&mut self, ctx: &Ctx<'_>, registered: bool) {
        if registered != self.counted_registered {
            ctx.stats.registered_delta(if registered { 1 } else { -1 });
            self.counted_registered = registered;
        }
    }

    // ---------------------------------------------------------------- simulated time

    fn plan_next_outage(&mut self, settings: &MeterSettings, after: f64) {
        let plan = &settings.outages;
        let sim_start = settings.clock.sim_start();
        let mut next: Option<(f64, f64)> = None;
        // Membership in the scheduled share is fixed per meter.
        let member = Rng::derive(
            settings.seed,
            stream::OUTAGES,
            u64::from(self.profile.index),
        )
        .chance(plan.scheduled_share);
        if member {
            while let Some(&(start, len)) = plan.scheduled.get(usize::from(self.scheduled_outage)) {
                let (s, e) = (sim_start + start, sim_start + start + len);
                if e > after {
                    next = Some((s.max(after), e));
                    break;
                }
                self.scheduled_outage = self.scheduled_outage.saturating_add(1);
            }
        }
        if plan.random_per_day > 0.0 && plan.random_mean > 0.0 {
            let rng = self.dynamics.rng();
            let start = after + rng.exponential(86_400.0 / plan.random_per_day);
            let len = rng.exponential(plan.random_mean).max(60.0);
            if next.is_none_or(|(s, _)| start < s) {
                next = Some((start, start + len));
            }
        }
        self.next_outage = next;
    }

    fn run_outages(&mut self, ctx: &mut Ctx<'_>, now: Instant, sim_now: f64) {
        if let Some(end) = self.offline_until {
            if sim_now < end {
                return;
            }
            // Back on the network: refresh the registration, then replay.
            self.offline_until = None;
            self.plan_next_outage(ctx.settings, sim_now);
            if self.phase == Phase::Running {
                self.retries = 0;
                self.retry_at = None;
                self.needs_update = self.client.state() == RegistrationState::Registered;
                self.connect_or_register(ctx, now);
            }
            return;
        }
        if let Some((start, end)) = self.next_outage
            && sim_now >= start
        {
            self.next_outage = None;
            if sim_now < end {
                Stats::inc(&ctx.stats.outages);
                self.offline_until = Some(end);
            } else {
                self.plan_next_outage(ctx.settings, sim_now);
            }
        }
    }

    fn run_readings(&mut self, ctx: &mut Ctx<'_>, now: Instant, sim_now: f64) {
        if matches!(self.phase, Phase::Stopping { .. } | Phase::Stopped) {
            return;
        }
        let interval = ctx.settings.reading_interval.max(1);
        let mut produced = false;
        while (self.next_reading as f64 + f64::from(self.reading_offset)) <= sim_now {
            let end = self.next_reading;
            self.next_reading += i64::from(interval);
            let reading =
                self.dynamics
                    .read_interval(&self.profile, end, interval, ctx.settings.utc_offset);
            let electrical = self.dynamics.electrical(&reading);
            let mut device = self.dynamics.device_values(&self.profile, end as f64);
            if self.bad_firmware && ctx.settings.firmware.bad_effect.errors() {
                device.error_codes.retain(|c| *c != 0);
                device.error_codes.push(firmware::BAD_FIRMWARE_ERROR);
            }
            Stats::inc(&ctx.stats.readings_produced);
            let index = self.profile.index;
            if let Some(ledger) = ctx.ledger.as_mut() {
                ledger.produced(index, &reading);
            }
            if let Some(evicted) = self.buffer.push(reading, ctx.settings.buffer_capacity) {
                Stats::inc(&ctx.stats.readings_evicted);
                if let Some(ledger) = ctx.ledger.as_mut() {
                    ledger.evicted(index, &evicted);
                }
            }
            // A 1.0 meter whose readings are being notified shows the one being delivered;
            // otherwise the object shows the newest reading.
            let show = self.profile.v1_1 || !self.observed;
            self.client.with_store(now, |s| {
                s.set_device(device);
                if show {
                    s.set_reading(reading, Some(electrical));
                } else {
                    s.live.electrical = Some(electrical);
                }
                s.traffic_changed();
            });
            produced = true;
        }
        if produced
            && self.phase == Phase::Running
            && self.dynamics.out_of_memory(&self.profile, sim_now)
        {
            // The watchdog restarts a meter whose memory ran out.
            self.reboot(ctx, now);
        }
    }

    fn run_reboots(&mut self, ctx: &mut Ctx<'_>, now: Instant, sim_now: f64) {
        if self.next_reboot.is_finite() && sim_now >= self.next_reboot {
            let fw = &ctx.settings.firmware;
            let period = if self.bad_firmware && fw.bad_effect.reboots() {
                fw.bad_reboot_period.max(60.0)
            } else {
                ctx.settings.reboot_period_hours.max(0.01) * 3600.0
            };
            while self.next_reboot <= sim_now {
                self.next_reboot += period;
            }
            if self.phase == Phase::Running {
                self.reboot(ctx, now);
            }
        }
    }

    // ---------------------------------------------------------------- protocol plumbing

    fn drain_dtls(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        loop {
            let Some(dtls) = self.dtls.as_mut() else {
                return;
            };
            while let Some((_, bytes)) = dtls.poll_transmit() {
                self.client.store_mut().count_traffic(true, bytes.len());
                Stats::inc(&ctx.stats.datagrams_sent);
                ctx.out.push(bytes);
            }
            let Some(dtls) = self.dtls.as_mut() else {
                return;
            };
            let (retransmissions, recovered) = dtls.take_counts();
            Stats::add(&ctx.stats.handshake_retransmissions, retransmissions.into());
            Stats::add(&ctx.stats.handshake_timer_recoveries, recovered.into());
            let Some(event) = dtls.poll_event() else {
                return;
            };
            match event {
                DtlsEvent::Connected { .. } => {
                    Stats::inc(&ctx.stats.handshakes);
                    self.retries = 0;
                    self.after_connect(ctx, now);
                }
                DtlsEvent::Data { bytes } => self.feed_client(ctx, now, &bytes),
                DtlsEvent::Closed { reason } => {
                    if reason == ferrite_dtls::ClientCloseReason::HandshakeFailed {
                        Stats::inc(&ctx.stats.handshake_failures);
                    }
                    self.dtls = None;
                    if self.phase == Phase::Running {
                        self.needs_update = self.client.state() == RegistrationState::Registered;
                        self.schedule_retry(now);
                    }
                    return;
                }
            }
        }
    }

    /// CoAP bytes from the server (decrypted).
    fn feed_client(&mut self, ctx: &mut Ctx<'_>, now: Instant, bytes: &[u8]) {
        if !self.client.is_awake(now) {
            // Queue mode: the radio is off; the server keeps its requests for the next Update.
            Stats::inc(&ctx.stats.datagrams_dropped);
            return;
        }
        if let Some((mtype, code, message_id)) = header(bytes) {
            if code != 0 && code < 32 {
                Stats::inc(&ctx.stats.server_requests);
            }
            if let Delivery::Notify {
                message_id: Some(mid),
            } = self.delivery
                && mid == message_id
            {
                match mtype {
                    MessageType::Acknowledgement => self.acknowledge(ctx, Via::Notify),
                    MessageType::Reset => {
                        self.buffer.fail();
                        self.delivery = Delivery::Idle;
                    }
                    _ => {}
                }
            }
        }
        self.client.handle_datagram(now, bytes);
    }

    /// After any input: act on the client's events, deliver readings, and move its datagrams
    /// (through DTLS when secured) to the worker.
    fn pump(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        for _ in 0..8 {
            let mut progressed = false;
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                self.on_client_event(ctx, now, event);
            }
            if let Some(uri) = self.client.store_mut().take_pull_request() {
                progressed = true;
                self.start_download(ctx, now, &uri);
            }
            self.try_deliver(ctx, now);
            while let Some(bytes) = self.client.poll_transmit() {
                progressed = true;
                self.transmit(ctx, now, bytes);
            }
            // After the transmits: the answer to Bootstrap-Finish still goes through the
            // bootstrap session.
            while let Some(outcome) = self.client.poll_bootstrap() {
                progressed = true;
                self.on_bootstrap(ctx, now, outcome);
            }
            if !progressed {
                break;
            }
        }
        if matches!(self.phase, Phase::Stopping { .. })
            && self.client.state() == RegistrationState::Registered
            && self.delivery == Delivery::Idle
            && self.buffer.is_empty()
        {
            self.deregister_for_stop(ctx, now);
            while let Some(bytes) = self.client.poll_transmit() {
                self.transmit(ctx, now, bytes);
            }
        }
    }

    fn transmit(&mut self, ctx: &mut Ctx<'_>, now: Instant, bytes: Vec<u8>) {
        if self.offline_until.is_some() {
            Stats::inc(&ctx.stats.datagrams_dropped);
            return;
        }
        if let Delivery::Notify { message_id: None } = self.delivery
            && let Some((MessageType::Confirmable, 0x45, mid)) = header(&bytes)
            && Message::decode(&bytes).is_ok_and(|m| m.options.observe().is_some())
        {
            self.delivery = Delivery::Notify {
                message_id: Some(mid),
            };
        }
        self.client.store_mut().count_traffic(true, bytes.len());
        match self.dtls.as_mut() {
            Some(dtls) if dtls.is_connected() => {
                if dtls.send(now, &bytes).is_ok() {
                    while let Some((_, out)) = dtls.poll_transmit() {
                        Stats::inc(&ctx.stats.datagrams_sent);
                        ctx.out.push(out);
                    }
                } else {
                    Stats::inc(&ctx.stats.datagrams_dropped);
                }
            }
            Some(_) => Stats::inc(&ctx.stats.datagrams_dropped),
            None if ctx.settings.security == Security::NoSec => {
                Stats::inc(&ctx.stats.datagrams_sent);
                ctx.out.push(bytes);
            }
            None => Stats::inc(&ctx.stats.datagrams_dropped),
        }
    }

    fn on_client_event(&mut self, ctx: &mut Ctx<'_>, now: Instant, event: ClientEvent) {
        match event {
            ClientEvent::Registered { .. } => {
                Stats::inc(&ctx.stats.registrations);
                self.set_registered(ctx, true);
                self.retries = 0;
                self.retry_at = None;
                self.observed = false;
                self.abandon_notification();
            }
            ClientEvent::Updated => {
                Stats::inc(&ctx.stats.updates);
                self.retries = 0;
            }
            ClientEvent::Deregistered => {
                Stats::inc(&ctx.stats.deregistrations);
                self.set_registered(ctx, false);
                if matches!(self.phase, Phase::Stopping { .. }) {
                    self.finish_stop(ctx, now);
                }
            }
            ClientEvent::RegistrationFailed { operation, reason } => {
                let transport = matches!(reason, RequestFailure::Transport(_));
                match operation {
                    RegistrationOperation::Register => {
                        Stats::inc(&ctx.stats.register_failures);
                        self.set_registered(ctx, false);
                    }
                    RegistrationOperation::Update => {
                        Stats::inc(&ctx.stats.update_failures);
                        self.needs_update = true;
                    }
                    RegistrationOperation::Deregister => {
                        self.set_registered(ctx, false);
                        if matches!(self.phase, Phase::Stopping { .. }) {
                            self.finish_stop(ctx, now);
                        }
                        return;
                    }
                }
                if transport && self.dtls.is_some() {
                    // The server may have lost the session: handshake again before retrying.
                    self.dtls = None;
                }
                if self.phase == Phase::Running {
                    self.schedule_retry(now);
                }
            }
            ClientEvent::RegistrationExpired => {
                Stats::inc(&ctx.stats.expirations);
                self.set_registered(ctx, false);
                self.observed = false;
                self.abandon_notification();
                if self.phase == Phase::Running {
                    self.schedule_retry(now);
                }
            }
            ClientEvent::Executed { path, .. } => {
                // 3/0/4 Reboot, 3/0/5 Factory Reset, 5/0/2 Update: the answer is already
                // queued; restart (installing the firmware on the way).
                if matches!(
                    path,
                    Path::Resource(3, 0, 4) | Path::Resource(3, 0, 5) | Path::Resource(5, 0, 2)
                ) && self.phase == Phase::Running
                {
                    // Let the 2.04 out before the restart.
                    while let Some(bytes) = self.client.poll_transmit() {
                        self.transmit(ctx, now, bytes);
                    }
                    self.reboot(ctx, now);
                }
            }
            ClientEvent::ObservationStarted { path } => {
                if observes_power_meter(&path) {
                    self.observed = true;
                }
            }
            ClientEvent::ObservationStopped { path } => {
                if observes_power_meter(&path)
                    && !self
                        .client
                        .observed_paths()
                        .any(|p| observes_power_meter(&p))
                {
                    self.observed = false;
                    self.abandon_notification();
                }
            }
            ClientEvent::SendCompleted { id, result } => {
                if self.delivery != Delivery::Send(id) {
                    return;
                }
                match result {
                    Ok(()) => {
                        Stats::inc(&ctx.stats.sends_ok);
                        self.acknowledge(ctx, Via::Send);
                    }
                    Err(reason) => {
                        Stats::inc(&ctx.stats.sends_failed);
                        self.buffer.fail();
                        self.delivery = Delivery::Idle;
                        if matches!(reason, RequestFailure::Transport(_)) && self.dtls.is_some() {
                            self.dtls = None;
                            self.needs_update = true;
                        }
                        if self.phase == Phase::Running {
                            self.schedule_retry(now);
                        }
                    }
                }
            }
            ClientEvent::Written { .. }
            | ClientEvent::Created { .. }
            | ClientEvent::Deleted { .. } => {}
        }
    }

    fn abandon_notification(&mut self) {
        if matches!(self.delivery, Delivery::Notify { .. }) {
            self.buffer.fail();
            self.delivery = Delivery::Idle;
        }
    }

    fn acknowledge(&mut self, ctx: &mut Ctx<'_>, via: Via) {
        let acked = self.buffer.acknowledge();
        self.delivery = Delivery::Idle;
        Stats::add(&ctx.stats.readings_acked, acked.len() as u64);
        if via == Via::Notify {
            Stats::inc(&ctx.stats.notifications_acked);
        }
        if let Some(ledger) = ctx.ledger.as_mut() {
            for r in &acked {
                ledger.acked(self.profile.index, r, via);
            }
        }
    }

    /// Starts a delivery when one can go.
    fn try_deliver(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        if !(self.phase == Phase::Running || stopping)
            || self.offline_until.is_some()
            || self.delivery != Delivery::Idle
            || self.buffer.is_empty()
            || self.retry_at.is_some()
            || self.client.state() != RegistrationState::Registered
        {
            return;
        }
        if matches!(ctx.settings.security, Security::Psk { .. })
            && !self.dtls.as_ref().is_some_and(|d| d.is_connected())
        {
            return;
        }
        let settings = ctx.settings;
        if self.profile.v1_1 {
            let backlog = self.buffer.len();
            if backlog < settings.send_batch && !stopping {
                return;
            }
            // Normal operation sends full batches; a backlog (after an outage) replays in
            // larger ones.
            let max = if backlog > settings.send_batch {
                settings.replay_batch.max(settings.send_batch)
            } else {
                settings.send_batch
            };
            let records: Vec<Record> = self
                .buffer
                .start_batch(max)
                .iter()
                .flat_map(reading_records)
                .collect();
            let n = self.buffer.in_flight_len();
            match self.client.send(now, &records) {
                Ok(id) => {
                    Stats::add(&ctx.stats.readings_sent, n as u64);
                    self.delivery = Delivery::Send(id);
                }
                Err(_) => self.buffer.fail(),
            }
        } else if self.observed {
            let Some(&reading) = self.buffer.start_batch(1).first() else {
                return;
            };
            Stats::inc(&ctx.stats.readings_sent);
            self.delivery = Delivery::Notify { message_id: None };
            self.client
                .with_store(now, |s| s.set_reading(reading, None));
        }
    }
}

/// Whether an observation of `path` covers the power meter's readings.
fn observes_power_meter(path: &Path) -> bool {
    path.object_id() == Some(10243) && path.instance_id().is_none_or(|i| i == 0)
}

/// The Send records of one reading: 10243/0/14, 15, 6, 11 at the reading's time.
fn reading_records(r: &Reading) -> [Record; 4] {
    let at = |path: Path, v: f64| Record {
        path,
        time: Some(r.time as f64),
        value: Some(Value::Float(v)),
    };
    [
        at(Path::Resource(10243, 0, 14), r.active_kwh),
        at(Path::Resource(10243, 0, 15), r.reactive_kvarh),
        at(Path::Resource(10243, 0, 6), f64::from(r.power_kw)),
        at(Path::Resource(10243, 0, 11), f64::from(r.power_factor)),
    ]
}

/// Type, code and message ID of a CoAP datagram (RFC 7252 §3), if it has a header.
fn header(bytes: &[u8]) -> Option<(MessageType, u8, u16)> {
    let (b0, code, hi, lo) = (bytes.first()?, bytes.get(1)?, bytes.get(2)?, bytes.get(3)?);
    let mtype = match (b0 >> 4) & 0x3 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    };
    Some((mtype, *code, u16::from_be_bytes([*hi, *lo])))
}

fn protocol_seed(settings: &MeterSettings, profile: &Profile, generation: u32) -> u64 {
    Rng::derive(settings.seed, stream::PROTOCOL, u64::from(profile.index)).next_u64()
        ^ u64::from(generation).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn client_config(profile: &Profile, settings: &MeterSettings) -> ClientConfig {
    let version = if profile.v1_1 {
        Lwm2mVersion::V1_1
    } else {
        Lwm2mVersion::V1_0
    };
    let config = ClientConfig::new(
        endpoint_name(&settings.endpoint_prefix, profile.index),
        version,
    )
    .with_lifetime(settings.real_lifetime());
    if profile.queue_mode {
        config.with_queue_mode()
    } else {
        config
    }
}
