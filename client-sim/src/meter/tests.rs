//! [`SimMeter`] against the sans-I/O `Lwm2mServer` on a virtual clock (no sockets): simulated
//! days pass in milliseconds, so reboots, outages, buffering and lifetimes can be checked
//! exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::server::{Lwm2mServer, Operation, PeerAuth, ServerConfig, ServerEvent};

use super::firmware;
use super::profile::{Problem, ProblemSet};
use super::*;
use crate::clock::SimClock;
use crate::stats::Stats;

const METER_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 9),
    40_000,
));
const SIM_START: f64 = 1_750_000_000.0;

struct Rig {
    now: Instant,
    settings: MeterSettings,
    stats: Stats,
    meter: SimMeter,
    server: Lwm2mServer,
    events: Vec<ServerEvent>,
    /// Drop everything on the wire (the server is unreachable).
    cut: bool,
}

fn settings(start: Instant, speed: f64) -> MeterSettings {
    MeterSettings {
        seed: 3,
        endpoint_prefix: "vt-".into(),
        server: "192.0.2.1:5683".parse().unwrap(),
        security: Security::NoSec,
        clock: SimClock::new(start, SIM_START, speed),
        lifetime: 86_400,
        min_real_lifetime: 10,
        reading_interval: 900,
        send_batch: 4,
        replay_batch: 12,
        buffer_capacity: 40,
        utc_offset: 0,
        reboot_period_hours: 6.0,
        reboot_downtime: 30.0,
        outages: OutagePlan::default(),
        stop_flush: Duration::from_secs(2),
        firmware: FirmwareSettings::default(),
        bootstrap: None,
    }
}

impl Rig {
    fn new(v1_1: bool, problems: &[Problem], speed: f64) -> Rig {
        let start = Instant::now();
        let settings = settings(start, speed);
        let mut profile = Profile::generate(&ProfileParams::default(), 0);
        profile.v1_1 = v1_1;
        profile.queue_mode = false;
        profile.problems = ProblemSet::default();
        for p in problems {
            profile.problems.insert(*p);
        }
        profile.reboot_phase_hours = 3.0;
        let meter = SimMeter::new(profile, &settings, start);
        Rig {
            now: start,
            settings,
            stats: Stats::default(),
            meter,
            server: Lwm2mServer::new(ServerConfig::default(), 5),
            events: Vec::new(),
            cut: false,
        }
    }

    fn with_meter(&mut self, f: impl FnOnce(&mut SimMeter, &mut Ctx<'_>)) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut ledger = None;
        let mut ctx = Ctx {
            settings: &self.settings,
            stats: &self.stats,
            ledger: &mut ledger,
            out: &mut out,
            download: &mut Vec::new(),
        };
        f(&mut self.meter, &mut ctx);
        out
    }

    /// Moves the virtual clock to `until`, delivering every datagram at once and answering the
    /// server's events (accept every Register; read /3/0 and, on 1.0, observe /10243/0).
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = [
                self.meter.poll_timeout(&self.settings),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let out = self.with_meter(|m, ctx| m.handle_timeout(ctx, now));
            self.deliver_to_server(out);
            self.server.handle_timeout(now);
            self.exchange();
        }
    }

    fn deliver_to_server(&mut self, out: Vec<Vec<u8>>) {
        if self.cut {
            return;
        }
        for d in out {
            self.server
                .handle_datagram(self.now, METER_ADDR, PeerAuth::NoSec, &d);
        }
    }

    fn exchange(&mut self) {
        for _ in 0..50 {
            let mut any = false;
            while let Some(ev) = self.server.poll_event() {
                any = true;
                let now = self.now;
                match &ev {
                    ServerEvent::RegistrationRequest { ticket, .. } => {
                        self.server.accept_registration(now, *ticket).unwrap();
                    }
                    ServerEvent::Registered { registration, .. }
                        if !registration.version.is_1_1_or_later() =>
                    {
                        let ep = registration.endpoint.clone();
                        self.server
                            .request(now, &ep, Operation::Observe(Path::Instance(10243, 0)))
                            .unwrap();
                    }
                    _ => {}
                }
                self.events.push(ev);
            }
            while let Some(t) = self.server.poll_transmit() {
                any = true;
                if self.cut {
                    continue;
                }
                let now = self.now;
                let out = self.with_meter(|m, ctx| m.handle_datagram(ctx, now, &t.bytes));
                self.deliver_to_server(out);
            }
            if !any {
                return;
            }
        }
    }

    fn sim_hours(&mut self, hours: f64) {
        let until = self.now + self.settings.clock.real_span(hours * 3600.0);
        self.run_until(until);
    }

    fn count(&self, f: impl Fn(&ServerEvent) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    fn sent_times(&self) -> Vec<f64> {
        let mut times: Vec<f64> = self
            .events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Send { records, .. } => Some(records.clone()),
                _ => None,
            })
            .flatten()
            .filter(|r| r.path == Path::Resource(10243, 0, 14))
            .filter_map(|r| r.time)
            .collect();
        times.sort_by(f64::total_cmp);
        times
    }
}

#[test]
fn registers_and_sends_a_day_of_readings_in_batches() {
    let mut rig = Rig::new(true, &[], 3600.0);
    rig.sim_hours(24.2);
    assert_eq!(
        rig.count(|e| matches!(e, ServerEvent::Registered { .. })),
        1
    );
    let times = rig.sent_times();
    // 96 readings a day (the last partial batch may still be waiting).
    assert!(times.len() >= 92, "{} readings", times.len());
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 900.0),
        "15-minute grid, no gaps"
    );
    let sends = rig.count(|e| matches!(e, ServerEvent::Send { .. }));
    assert_eq!(sends, times.len() / 4, "batches of four");
    let s = rig.stats.snapshot();
    assert_eq!(s.readings_acked as usize, times.len());
    assert_eq!(s.registered, 1);
    // The lifetime on the wire is a simulated day at 3600× (24 s real): Updates keep the
    // registration alive.
    assert!(s.updates >= 1, "{s:?}");
    assert_eq!(s.expirations, 0);
}

#[test]
fn periodic_reboots_register_again_every_six_hours() {
    let mut rig = Rig::new(true, &[Problem::PeriodicReboots], 3600.0);
    rig.sim_hours(24.0);
    // First reboot at 3 h (the phase), then 9 h, 15 h, 21 h.
    let replaced = rig.count(|e| {
        matches!(
            e,
            ServerEvent::Registered {
                replaced: Some(_),
                ..
            }
        )
    });
    assert_eq!(replaced, 4);
    assert_eq!(rig.stats.snapshot().reboots, 4);
    // No reading is lost across reboots: the buffer survives in the meter.
    let times = rig.sent_times();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 900.0));
}

#[test]
fn a_meter_on_a_bad_version_from_the_start_restarts_with_its_rhythm() {
    let mut rig = Rig::new(true, &[], 3600.0);
    let version = rig.meter.profile().firmware_version().to_owned();
    rig.settings.firmware = FirmwareSettings {
        bad_versions: vec![version],
        bad_effect: super::firmware::BadEffect::Reboots,
        bad_reboot_period: 4.0 * 3600.0,
        ..FirmwareSettings::default()
    };
    rig.meter = SimMeter::new(rig.meter.profile().clone(), &rig.settings, rig.now);
    assert!(rig.meter.has_bad_firmware());
    rig.sim_hours(24.0);
    // The phase (3 h of the 6 h problem period) scaled to the 4 h period: 2 h, then every 4 h.
    assert_eq!(
        rig.stats.snapshot().reboots,
        6,
        "{:?}",
        rig.stats.snapshot()
    );
}

#[test]
fn execute_reboot_restarts_the_meter() {
    let mut rig = Rig::new(true, &[], 3600.0);
    rig.sim_hours(1.0);
    let ep = rig.meter.client().endpoint().to_owned();
    rig.server
        .request(
            rig.now,
            &ep,
            Operation::Execute {
                path: Path::Resource(3, 0, 4),
                args: None,
            },
        )
        .unwrap();
    rig.exchange();
    rig.sim_hours(0.5);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, ServerEvent::OpCompleted { outcome: Ok(_), .. }))
    );
    assert_eq!(
        rig.count(|e| matches!(
            e,
            ServerEvent::Registered {
                replaced: Some(_),
                ..
            }
        )),
        1
    );
}

#[test]
fn readings_of_an_outage_are_buffered_and_replayed_with_their_times() {
    let mut rig = Rig::new(true, &[], 3600.0);
    rig.settings.outages = OutagePlan {
        scheduled: vec![(2.0 * 3600.0, 5.0 * 3600.0)],
        scheduled_share: 1.0,
        ..OutagePlan::default()
    };
    // The plan is read when the meter is made.
    let profile = rig.meter.profile().clone();
    rig.meter = SimMeter::new(profile, &rig.settings, rig.now);
    rig.sim_hours(4.0);
    assert!(rig.meter.is_offline());
    assert!(rig.meter.pending_readings() >= 8);
    rig.sim_hours(6.0);
    assert!(!rig.meter.is_offline());
    let times = rig.sent_times();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 900.0),
        "nothing missing"
    );
    assert!(times.len() >= 36, "{}", times.len());
    // Replayed in bigger batches than the normal four.
    let biggest = rig
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Send { records, .. } => Some(records.len() / 4),
            _ => None,
        })
        .max();
    assert_eq!(biggest, Some(12));
}

#[test]
fn a_full_buffer_evicts_the_oldest_readings() {
    let mut rig = Rig::new(true, &[], 3600.0);
    rig.sim_hours(0.6);
    // The server vanishes for 20 simulated hours: 80 readings into a buffer of 40.
    rig.cut = true;
    rig.sim_hours(20.0);
    let s = rig.stats.snapshot();
    assert!(s.readings_evicted >= 35, "{s:?}");
    assert_eq!(rig.meter.buffer().evicted() as u64, s.readings_evicted);
    assert!(rig.meter.pending_readings() <= 40);
    // The newest are kept, besides the batch that was on the wire when the server vanished
    // (its outcome is still unknown: CoAP gives up after MAX_TRANSMIT_WAIT, 93 real seconds).
    let buffer = rig.meter.buffer();
    let waiting: Vec<i64> = buffer
        .iter()
        .skip(buffer.in_flight_len())
        .map(|r| r.time)
        .collect();
    assert!(waiting.len() > 30);
    assert!(
        waiting
            .iter()
            .all(|t| *t as f64 > SIM_START + 10.0 * 3600.0)
    );
}

#[test]
fn a_v1_0_meter_delivers_each_reading_by_notification() {
    let mut rig = Rig::new(false, &[], 3600.0);
    rig.sim_hours(6.1);
    let notified: Vec<f64> = rig
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Notification {
                content:
                    Ok(lwm2m_proto::lwm2m::server::Content::Node {
                        node: lwm2m_objects::Node::Instance(i),
                        ..
                    }),
                ..
            } => match i.value(14) {
                Some(Value::Float(v)) => Some(*v),
                _ => None,
            },
            _ => None,
        })
        .collect();
    // 24 readings in 6 h, each notified once, in order.
    assert!(notified.len() >= 23, "{}", notified.len());
    assert!(notified.windows(2).all(|w| w[1] > w[0]));
    assert_eq!(
        rig.stats.snapshot().notifications_acked as usize,
        notified.len()
    );
    assert_eq!(rig.stats.snapshot().readings_acked as usize, notified.len());
}

#[test]
fn stop_flushes_then_deregisters() {
    let mut rig = Rig::new(true, &[], 3600.0);
    rig.sim_hours(1.6); // six readings: one batch of four sent, two waiting
    assert_eq!(rig.meter.pending_readings(), 2);
    let now = rig.now;
    let out = rig.with_meter(|m, ctx| m.stop(ctx, now));
    rig.deliver_to_server(out);
    rig.exchange();
    rig.run_until(rig.now + Duration::from_secs(15));
    assert!(rig.meter.is_stopped());
    assert_eq!(rig.meter.pending_readings(), 0);
    assert_eq!(
        rig.count(|e| matches!(e, ServerEvent::Deregistered { .. })),
        1
    );
    assert_eq!(rig.stats.snapshot().registered, 0);
}

/// Resident set size in bytes (Linux).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Run alone: `cargo test -p client-sim --release --lib memory_of_10k -- --ignored
/// --nocapture --test-threads=1`. Meters made, then registered with a virtual server and left
/// idle past EXCHANGE_LIFETIME, without sockets: the simulator's own share of the per-meter
/// figure `ferrite-sim run` reports.
#[test]
#[ignore = "measures process memory; run alone"]
fn memory_of_10k_meters() {
    const N: u32 = 10_000;
    let Some(base) = resident_bytes() else {
        return;
    };
    let start = Instant::now();
    let settings = settings(start, 1.0);
    let params = ProfileParams::default();
    let mut meters: Vec<SimMeter> = (0..N)
        .map(|i| SimMeter::new(Profile::generate(&params, i), &settings, start))
        .collect();
    let made = resident_bytes().unwrap();
    let stats = Stats::default();
    let mut server = Lwm2mServer::new(ServerConfig::default(), 1);
    let mut ledger = None;
    for (i, meter) in meters.iter_mut().enumerate() {
        let addr = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 40_000));
        let mut now = start;
        for _ in 0..20 {
            let mut out = Vec::new();
            let mut ctx = Ctx {
                settings: &settings,
                stats: &stats,
                ledger: &mut ledger,
                out: &mut out,
                download: &mut Vec::new(),
            };
            meter.handle_timeout(&mut ctx, now);
            for d in out.drain(..) {
                server.handle_datagram(now, addr, PeerAuth::NoSec, &d);
            }
            while let Some(ev) = server.poll_event() {
                if let ServerEvent::RegistrationRequest { ticket, .. } = ev {
                    server.accept_registration(now, ticket).unwrap();
                }
            }
            while let Some(t) = server.poll_transmit() {
                let mut ctx = Ctx {
                    settings: &settings,
                    stats: &stats,
                    ledger: &mut ledger,
                    out: &mut out,
                    download: &mut Vec::new(),
                };
                meter.handle_datagram(&mut ctx, now, &t.bytes);
            }
            if meter.client().location().is_some() {
                break;
            }
            now += Duration::from_millis(50);
        }
        assert!(meter.client().location().is_some(), "meter {i} registered");
        // Idle past EXCHANGE_LIFETIME: the client recycles its CoAP endpoint.
        let later = start + Duration::from_secs(300);
        let mut out = Vec::new();
        let mut ctx = Ctx {
            settings: &settings,
            stats: &stats,
            ledger: &mut ledger,
            out: &mut out,
            download: &mut Vec::new(),
        };
        meter.handle_timeout(&mut ctx, later);
    }
    let registered = resident_bytes().unwrap();
    drop(server);
    println!(
        "per meter: made {} B, registered and idle {} B (inline SimMeter {} B)",
        (made - base) / N as usize,
        (registered - base) / N as usize,
        std::mem::size_of::<SimMeter>()
    );
    assert!((made - base) / (N as usize) < 32 * 1024);
}

#[test]
fn a_queue_mode_meter_gets_requests_when_it_wakes() {
    let mut rig = Rig::new(true, &[], 1.0);
    rig.settings.lifetime = 300;
    rig.settings.min_real_lifetime = 1;
    let mut profile = rig.meter.profile().clone();
    profile.queue_mode = true;
    profile.problems = ProblemSet::default();
    rig.meter = SimMeter::new(profile, &rig.settings, rig.now);
    rig.run_until(rig.now + Duration::from_secs(5));
    assert_eq!(
        rig.count(|e| matches!(e, ServerEvent::Registered { registration, .. }
            if registration.binding.queue)),
        1
    );
    // Past the 93 s wake window the server holds its request until the meter's next Update
    // (270 s: the 300 s lifetime minus the margin).
    rig.run_until(rig.now + Duration::from_secs(120));
    let ep = rig.meter.client().endpoint().to_owned();
    rig.server
        .request(rig.now, &ep, Operation::Read(Path::Resource(3, 0, 9)))
        .unwrap();
    rig.exchange();
    assert_eq!(rig.count(|e| matches!(e, ServerEvent::OpQueued { .. })), 1);
    assert_eq!(
        rig.count(|e| matches!(e, ServerEvent::OpCompleted { .. })),
        0
    );
    rig.run_until(rig.now + Duration::from_secs(160));
    assert_eq!(rig.stats.snapshot().updates, 1);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, ServerEvent::OpCompleted { outcome: Ok(_), .. })),
        "the queued read was answered after the Update"
    );
}

#[test]
fn firmware_pushed_to_5_0_0_installs_after_execute_and_restart() {
    use lwm2m_objects::{Node, Resource};
    use lwm2m_proto::lwm2m::server::{Content, OpOutcome, WriteMode};

    let mut rig = Rig::new(true, &[], 3600.0);
    rig.sim_hours(0.2);
    let ep = rig.meter.client().endpoint().to_owned();
    let model = rig.meter.profile().model_def().name;
    let write = |bytes: Vec<u8>| Operation::Write {
        path: Path::Resource(5, 0, 0),
        node: Node::Resource(Resource::single(0, Value::Opaque(bytes))),
        mode: WriteMode::Replace,
    };
    // A corrupted package: integrity check failure, still Idle.
    let mut bad = firmware::build_package(model, "9.9.9", &[1u8; 5000]);
    bad[100] ^= 0xFF;
    rig.server.request(rig.now, &ep, write(bad)).unwrap();
    rig.exchange();
    rig.run_until(rig.now + Duration::from_millis(200));
    assert_eq!(rig.meter.client().store().firmware_state(), 0);
    assert_eq!(rig.meter.client().store().firmware_result(), 5);
    // Executing Update without a package is refused.
    let execute = Operation::Execute {
        path: Path::Resource(5, 0, 2),
        args: None,
    };
    rig.server.request(rig.now, &ep, execute.clone()).unwrap();
    rig.exchange();
    rig.run_until(rig.now + Duration::from_millis(200));
    assert_eq!(rig.stats.snapshot().reboots, 0);

    // A good package (5 kB: block-wise) → Downloaded → Execute → restart → new version.
    let good = firmware::build_package(model, "9.9.9", &[1u8; 5000]);
    rig.server.request(rig.now, &ep, write(good)).unwrap();
    rig.exchange();
    rig.run_until(rig.now + Duration::from_millis(500));
    assert_eq!(rig.meter.client().store().firmware_state(), 2);
    rig.server.request(rig.now, &ep, execute).unwrap();
    rig.exchange();
    rig.run_until(rig.now + Duration::from_secs(2));
    assert_eq!(rig.stats.snapshot().reboots, 1);
    assert_eq!(
        rig.count(|e| matches!(
            e,
            ServerEvent::Registered {
                replaced: Some(_),
                ..
            }
        )),
        1
    );
    rig.server
        .request(
            rig.now,
            &ep,
            Operation::ReadComposite(vec![Path::Resource(3, 0, 3), Path::Resource(5, 0, 5)]),
        )
        .unwrap();
    rig.exchange();
    rig.run_until(rig.now + Duration::from_millis(200));
    let read = rig.events.iter().rev().find_map(|e| match e {
        ServerEvent::OpCompleted {
            outcome: Ok(OpOutcome::Content(Content::Records(records))),
            ..
        } => Some(records.clone()),
        _ => None,
    });
    let records = read.expect("composite read answered");
    let value = |p: Path| {
        records
            .iter()
            .find(|r| r.path == p)
            .and_then(|r| r.value.clone())
    };
    assert_eq!(
        value(Path::Resource(3, 0, 3)),
        Some(Value::String("9.9.9".into()))
    );
    assert_eq!(value(Path::Resource(5, 0, 5)), Some(Value::Integer(1)));
}
