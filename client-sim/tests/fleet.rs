//! Black-box runs of the fleet against an in-process LwM2M server on 127.0.0.1: meters register,
//! answer reads, deliver readings by Send (1.1) and notification (1.0), reboot on Execute, and
//! de-register; every reading the ledger says was acknowledged is one the server received.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use client_sim::clock::SimClock;
use client_sim::fleet::{FaultConfig, Fleet, FleetConfig};
use client_sim::meter::{
    MeterSettings, OutagePlan, ProfileParams, Security, VersionMix, endpoint_name, psk_key,
};
use lwm2m_objects::Path;
use support::TestServer;

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ferrite-sim-{}-{name}", std::process::id()))
}

fn config(
    meters: u32,
    server: std::net::SocketAddr,
    security: Security,
    speed: f64,
) -> FleetConfig {
    let now_unix = 1_750_000_000.0;
    FleetConfig {
        meters,
        workers: 2,
        start_rate: 2_000.0,
        speed,
        sim_start: now_unix,
        profiles: ProfileParams {
            seed: 11,
            problem_share: 0.2,
            queue_share: 0.0,
            versions: VersionMix::Mix(0.5),
            ..ProfileParams::default()
        },
        meter: MeterSettings {
            seed: 11,
            endpoint_prefix: "it-".into(),
            server,
            security,
            clock: SimClock::new(Instant::now(), now_unix, speed),
            lifetime: 86_400,
            min_real_lifetime: 60,
            reading_interval: 900,
            send_batch: 4,
            replay_batch: 12,
            buffer_capacity: 960,
            utc_offset: 0,
            reboot_period_hours: 6.0,
            reboot_downtime: 30.0,
            outages: OutagePlan::default(),
            stop_flush: Duration::from_secs(3),
            firmware: client_sim::meter::FirmwareSettings::default(),
            bootstrap: None,
        },
        ledger: None,
        faults: FaultConfig::default(),
    }
}

/// Ledger lines as (event, endpoint, seq, time, kwh).
fn read_ledger(path: &std::path::Path) -> Vec<(String, String, u64, i64, Option<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["ev"].as_str().unwrap().to_owned(),
                v["ep"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
                v["t"].as_i64().unwrap(),
                v["kwh"].as_f64(),
            )
        })
        .collect()
}

#[test]
fn two_hundred_mixed_meters_register_answer_and_deliver() {
    let server = TestServer::start_nosec();
    let ledger = temp_file("ledger.jsonl");
    let mut cfg = config(200, server.addr, Security::NoSec, 3600.0);
    cfg.ledger = Some(ledger.clone());
    let fleet = Fleet::start(cfg).unwrap();

    assert!(
        server.wait_for(Duration::from_secs(20), |l| l.versions.len() == 200),
        "registered: {}",
        server.log.lock().unwrap().versions.len()
    );
    assert!(
        server.wait_for(Duration::from_secs(20), |l| l.device_reads.len() == 200),
        "answered /3/0: {}",
        server.log.lock().unwrap().device_reads.len()
    );
    // Both kinds of meters deliver: Send from 1.1, notifications from 1.0.
    let delivered = server.wait_for(Duration::from_secs(30), |l| {
        let v11: Vec<&String> = l
            .versions
            .iter()
            .filter(|(_, v)| v.is_1_1_or_later())
            .map(|(e, _)| e)
            .collect();
        let v10: Vec<&String> = l
            .versions
            .iter()
            .filter(|(_, v)| !v.is_1_1_or_later())
            .map(|(e, _)| e)
            .collect();
        !v11.is_empty()
            && !v10.is_empty()
            && v11
                .iter()
                .all(|e| l.sent_energy.get(*e).is_some_and(|r| r.len() >= 4))
            && v10
                .iter()
                .all(|e| l.notified_energy.get(*e).is_some_and(|r| r.len() >= 3))
    });
    assert!(delivered, "not every meter delivered readings");

    // A reboot executed by the server: the meter answers, restarts and registers again.
    let before = server.log.lock().unwrap().re_registrations;
    for i in 0..5 {
        server.execute(&endpoint_name("it-", i), Path::Resource(3, 0, 4));
    }
    assert!(
        server.wait_for(Duration::from_secs(10), |l| l.executes_ok >= 5
            && l.re_registrations >= before + 5),
        "reboots did not lead to new registrations"
    );

    fleet.stop();
    let report = fleet.join();
    assert!(
        server.wait_for(Duration::from_secs(5), |l| l.deregistered.len() >= 195),
        "de-registered: {}",
        server.log.lock().unwrap().deregistered.len()
    );
    assert!(report.stats.readings_acked > 0);
    assert_eq!(report.stats.registered, 0);

    // Every acknowledged reading is one the server received; none is acknowledged twice.
    let lines = read_ledger(&ledger);
    std::fs::remove_file(&ledger).ok();
    let log = server.log.lock().unwrap();
    let mut produced: HashMap<(String, u64), (i64, f64)> = HashMap::new();
    let mut acked: HashSet<(String, u64)> = HashSet::new();
    for (ev, ep, seq, t, kwh) in &lines {
        match ev.as_str() {
            "produced" => {
                produced.insert((ep.clone(), *seq), (*t, kwh.unwrap()));
            }
            "acked" => assert!(acked.insert((ep.clone(), *seq)), "{ep} {seq} acked twice"),
            _ => {}
        }
    }
    assert_eq!(acked.len() as u64, report.stats.readings_acked);
    for (ep, seq) in &acked {
        let (t, kwh) = produced[&(ep.clone(), *seq)];
        let found = match log.versions[ep].is_1_1_or_later() {
            true => log.sent_energy[ep]
                .iter()
                .any(|(st, sk)| *st == t as f64 && *sk == kwh),
            false => log.notified_energy[ep].contains(&kwh),
        };
        assert!(found, "{ep} reading {seq} acknowledged but not received");
    }
    // Readings sit on the 15-minute grid.
    for records in log.sent_energy.values() {
        assert!(records.iter().all(|(t, _)| (*t as i64) % 900 == 0));
    }
}

#[test]
fn dtls_meters_register_and_send() {
    let secret = "it-secret";
    let meters = 12;
    let keys: Vec<(String, Vec<u8>)> = (0..meters)
        .map(|i| {
            let identity = endpoint_name("it-", i);
            let key = psk_key(secret, &identity).to_vec();
            (identity, key)
        })
        .collect();
    let server = TestServer::start_psk(keys);
    let cfg = config(
        meters,
        server.addr,
        Security::Psk {
            identity_prefix: String::new(),
            secret: secret.into(),
        },
        3600.0,
    );
    let fleet = Fleet::start(cfg).unwrap();
    assert!(
        server.wait_for(Duration::from_secs(30), |l| l.device_reads.len()
            == meters as usize),
        "DTLS meters answering /3/0: {}",
        server.log.lock().unwrap().device_reads.len()
    );
    assert!(server.wait_for(Duration::from_secs(30), |l| {
        l.versions
            .iter()
            .filter(|(_, v)| v.is_1_1_or_later())
            .all(|(e, _)| l.sent_energy.contains_key(e))
    }));
    fleet.stop();
    let report = fleet.join();
    assert!(report.stats.handshakes >= u64::from(meters));
    assert!(
        server.wait_for(Duration::from_secs(5), |l| l.deregistered.len()
            == meters as usize),
        "de-registered over DTLS: {}",
        server.log.lock().unwrap().deregistered.len()
    );
}

#[test]
fn an_outage_is_replayed_with_original_timestamps() {
    let server = TestServer::start_nosec();
    let ledger = temp_file("outage-ledger.jsonl");
    let mut cfg = config(20, server.addr, Security::NoSec, 3600.0);
    cfg.profiles.versions = VersionMix::V1_1;
    cfg.profiles.problem_share = 0.0;
    // Every meter offline from 2 h to 6 h of simulated time (2–6 s real).
    cfg.meter.outages = OutagePlan {
        scheduled: vec![(2.0 * 3600.0, 4.0 * 3600.0)],
        scheduled_share: 1.0,
        ..OutagePlan::default()
    };
    cfg.ledger = Some(ledger.clone());
    let fleet = Fleet::start(cfg).unwrap();
    // Ten simulated hours.
    std::thread::sleep(Duration::from_secs(10));
    fleet.stop();
    let report = fleet.join();
    assert_eq!(report.stats.outages, 20);
    let lines = read_ledger(&ledger);
    std::fs::remove_file(&ledger).ok();
    let log = server.log.lock().unwrap();
    // Readings timestamped inside the outage reached the server later, with their own times.
    let start = 1_750_000_000.0;
    for i in 0..20 {
        let ep = endpoint_name("it-", i);
        let in_outage = log.sent_energy[&ep]
            .iter()
            .filter(|(t, _)| *t > start + 2.5 * 3600.0 && *t < start + 5.5 * 3600.0)
            .count();
        assert!(
            in_outage >= 10,
            "{ep}: {in_outage} outage readings replayed"
        );
        // The register values the server got are increasing with time.
        let mut records = log.sent_energy[&ep].clone();
        records.sort_by(|a, b| a.0.total_cmp(&b.0));
        records.dedup();
        assert!(records.windows(2).all(|w| w[1].1 > w[0].1), "{ep}");
    }
    let acked = lines.iter().filter(|l| l.0 == "acked").count() as u64;
    assert_eq!(acked, report.stats.readings_acked);
    assert!(report.stats.readings_acked >= 20 * 30);
}

#[test]
fn under_loss_duplication_and_delay_nothing_acknowledged_is_lost() {
    let server = TestServer::start_nosec();
    let ledger = temp_file("faults-ledger.jsonl");
    let mut cfg = config(30, server.addr, Security::NoSec, 3600.0);
    cfg.profiles.problem_share = 0.0;
    cfg.faults = FaultConfig {
        loss: 0.1,
        duplicate: 0.05,
        delay: 0.05,
        delay_max: Duration::from_millis(300),
        ..FaultConfig::default()
    };
    cfg.ledger = Some(ledger.clone());
    let fleet = Fleet::start(cfg).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    fleet.stop();
    let report = fleet.join();
    let s = report.stats;
    assert!(
        s.fault_lost > 0 && s.fault_duplicated > 0 && s.fault_delayed > 0,
        "{s:?}"
    );
    assert!(s.readings_acked > 30 * 10, "{s:?}");
    let lines = read_ledger(&ledger);
    std::fs::remove_file(&ledger).ok();
    let log = server.log.lock().unwrap();
    let mut produced: HashMap<(String, u64), (i64, f64)> = HashMap::new();
    let mut acked = HashSet::new();
    for (ev, ep, seq, t, kwh) in &lines {
        match ev.as_str() {
            "produced" => {
                produced.insert((ep.clone(), *seq), (*t, kwh.unwrap()));
            }
            "acked" => assert!(acked.insert((ep.clone(), *seq)), "{ep} {seq} acked twice"),
            _ => {}
        }
    }
    for (ep, seq) in &acked {
        let (t, kwh) = produced[&(ep.clone(), *seq)];
        let found = if log.versions[ep].is_1_1_or_later() {
            log.sent_energy[ep]
                .iter()
                .any(|(st, sk)| *st == t as f64 && *sk == kwh)
        } else {
            log.notified_energy[ep].contains(&kwh)
        };
        assert!(found, "{ep} reading {seq} acknowledged but not received");
    }
}
