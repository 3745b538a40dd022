//! What changes in a meter as simulated time passes: the energy registers (one [`Reading`] every
//! interval), the electrical values that go with them, the backup battery, free memory, signal
//! and the error codes, each coherent with the meter's [`Profile`] and its problems.

use super::consumption;
use super::profile::{Problem, Profile};
use super::radio;
use crate::rng::Rng;

/// One interval reading (what goes into a Send or a notification, the buffer and the ledger).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Per meter, from 0, never reused (survives reboots: the meter's flash).
    pub seq: u32,
    /// End of the interval, simulated Unix seconds (on the interval grid).
    pub time: i64,
    /// 10243/0/14 Active Energy register, kWh (Wh resolution).
    pub active_kwh: f64,
    /// 10243/0/15 Reactive Energy register, kvarh.
    pub reactive_kvarh: f64,
    /// 10243/0/6 Active Power, kW (the interval's average).
    pub power_kw: f32,
    /// 10243/0/11 Power Factor.
    pub power_factor: f32,
}

/// Instantaneous electrical values reported with the newest reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Electrical {
    /// 10243/0/4 Tension, V.
    pub voltage: f64,
    /// 10243/0/5 Current, A.
    pub current: f64,
    /// 10243/0/17 Frequency, Hz.
    pub frequency: f64,
}

/// Device values of objects 3 and 4 at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceValues {
    /// 3/0/9, %.
    pub battery_level: i64,
    /// 3/0/7 instance 1 (the internal battery), mV.
    pub battery_mv: i64,
    /// 3/0/20 (0 Normal, 4 Low Battery).
    pub battery_status: i64,
    /// 3/0/10, kB.
    pub memory_free_kb: i64,
    /// 3/0/11 (`[0]` when there is no error).
    pub error_codes: Vec<i64>,
    /// 4/0/2, dBm.
    pub rssi: i64,
    /// 4/0/3, dB (RSRQ).
    pub link_quality: i64,
}

/// Nominal voltage of the lithium backup cell, mV.
pub const BATTERY_NOMINAL_MV: i64 = 3600;

/// The changing state of one meter.
#[derive(Debug, Clone)]
pub struct Dynamics {
    rng: Rng,
    /// Active energy register, kWh.
    pub active_kwh: f64,
    /// Reactive energy register, kvarh.
    pub reactive_kvarh: f64,
    /// The next reading's sequence number.
    pub next_seq: u32,
    /// Simulated time of the last boot.
    pub boot_time: f64,
    /// Simulated time the simulation started (battery drain counts from there).
    pub start_time: f64,
    /// Restarts so far.
    pub reboots: u32,
}

impl Dynamics {
    /// The state at the start of the simulation (`sim_start`, Unix seconds).
    pub fn new(profile: &Profile, seed: u64, sim_start: f64) -> Dynamics {
        let mut rng = Rng::derive(
            seed,
            super::profile::stream::RUNTIME,
            u64::from(profile.index),
        );
        // The reactive register starts in proportion to the active one.
        let pf = f64::from(profile.power_factor);
        let reactive = profile.start_kwh * pf.acos().tan() * rng.range(0.9, 1.1);
        Dynamics {
            rng,
            active_kwh: profile.start_kwh,
            reactive_kvarh: (reactive * 1000.0).round() / 1000.0,
            next_seq: 0,
            // Booted some time before the simulation started.
            boot_time: sim_start - 3600.0,
            start_time: sim_start,
            reboots: 0,
        }
    }

    /// The reading for the interval of `seconds` ending at `end` (simulated Unix seconds), in
    /// the meter's local time (`utc_offset` seconds east of UTC): the registers advance by the
    /// interval's consumption (PRODUCT.md daily pattern, with noise).
    pub fn read_interval(
        &mut self,
        profile: &Profile,
        end: i64,
        seconds: u32,
        utc_offset: i64,
    ) -> Reading {
        let start_local = (end - i64::from(seconds) + utc_offset).rem_euclid(86_400) as u32;
        let kwh = consumption::interval_kwh(
            f64::from(profile.household),
            start_local,
            seconds,
            &mut self.rng,
        );
        let pf = (f64::from(profile.power_factor) + self.rng.gauss(0.0, 0.01)).clamp(0.8, 1.0);
        let kvarh = kwh * pf.acos().tan();
        // Registers keep Wh resolution, as a meter's display does.
        self.active_kwh = ((self.active_kwh + kwh) * 1000.0).round() / 1000.0;
        self.reactive_kvarh = ((self.reactive_kvarh + kvarh) * 1000.0).round() / 1000.0;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        Reading {
            seq,
            time: end,
            active_kwh: self.active_kwh,
            reactive_kvarh: self.reactive_kvarh,
            power_kw: (kwh * 3600.0 / f64::from(seconds.max(1))) as f32,
            power_factor: ((pf * 1000.0).round() / 1000.0) as f32,
        }
    }

    /// Voltage, current and frequency to go with `reading`.
    pub fn electrical(&mut self, reading: &Reading) -> Electrical {
        let voltage = self.rng.gauss(230.0, 2.5).clamp(207.0, 253.0);
        let pf = f64::from(reading.power_factor).max(0.1);
        let current = f64::from(reading.power_kw) * 1000.0 / (voltage * pf);
        Electrical {
            voltage: (voltage * 10.0).round() / 10.0,
            current: (current * 100.0).round() / 100.0,
            frequency: (self.rng.gauss(50.0, 0.02) * 100.0).round() / 100.0,
        }
    }

    /// Objects 3 and 4 at simulated time `now`.
    pub fn device_values(&mut self, profile: &Profile, now: f64) -> DeviceValues {
        let days = ((now - self.start_time) / 86_400.0).max(0.0);
        let level = (f64::from(profile.battery_start)
            - days * f64::from(profile.battery_drain_per_day))
        .clamp(0.0, 100.0);
        let dying = profile.problems.has(Problem::DyingBattery);
        // A healthy cell sits near nominal; a dying one sags well under it as it empties.
        let battery_mv = if dying {
            2_900.0 + level * 12.0
        } else {
            3_300.0 + level * 3.5
        } + self.rng.gauss(0.0, 8.0);
        let battery_status = if level < 20.0 { 4 } else { 0 };

        let total = profile.model_def().memory_kb as f64;
        let hours_up = ((now - self.boot_time) / 3600.0).max(0.0);
        let free = total * f64::from(profile.memory_free_share)
            - hours_up * f64::from(profile.leak_kb_per_hour)
            + self.rng.gauss(0.0, total * 0.005);
        let memory_free_kb = free.clamp(0.0, total).round() as i64;

        let rssi = radio::sample_dbm(f64::from(profile.rssi_mean), &mut self.rng);
        let link_quality = radio::link_quality_db(rssi, &mut self.rng);

        let mut error_codes = Vec::new();
        if dying && level < 15.0 {
            error_codes.push(1); // Low battery power
        }
        if profile.problems.has(Problem::WeakSignal) && rssi < -115 {
            error_codes.push(4); // Low received signal strength
        }
        if (memory_free_kb as f64) < total * 0.05 {
            error_codes.push(5); // Out of memory
        }
        if profile.problems.has(Problem::ErrorCodes) {
            error_codes.push(i64::from(profile.error_code));
        }
        if error_codes.is_empty() {
            error_codes.push(0);
        }
        DeviceValues {
            battery_level: level.round() as i64,
            battery_mv: battery_mv.round() as i64,
            battery_status,
            memory_free_kb,
            error_codes,
            rssi,
            link_quality,
        }
    }

    /// Whether the memory has run out (the watchdog restarts the meter).
    pub fn out_of_memory(&self, profile: &Profile, now: f64) -> bool {
        if profile.leak_kb_per_hour <= 0.0 {
            return false;
        }
        let total = profile.model_def().memory_kb as f64;
        let hours_up = ((now - self.boot_time) / 3600.0).max(0.0);
        total * f64::from(profile.memory_free_share)
            - hours_up * f64::from(profile.leak_kb_per_hour)
            < total * 0.02
    }

    /// A restart at simulated time `now`.
    pub fn reboot(&mut self, now: f64) {
        self.boot_time = now;
        self.reboots = self.reboots.saturating_add(1);
    }

    /// A random draw from the meter's runtime stream (jitter, outages).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::meter::profile::{ProblemSet, ProfileParams};

    fn profile_with(problem: Option<Problem>) -> Profile {
        let mut p = Profile::generate(&ProfileParams::default(), 3);
        p.problems = ProblemSet::default();
        if let Some(problem) = problem {
            p.problems.insert(problem);
        }
        p
    }

    #[test]
    fn registers_grow_monotonically_on_the_grid() {
        let p = profile_with(None);
        let mut d = Dynamics::new(&p, 1, 1_700_000_000.0);
        let mut last = d.active_kwh;
        let mut last_r = d.reactive_kvarh;
        for k in 1..=96 {
            let r = d.read_interval(&p, 1_700_000_100 + k * 900, 900, 0);
            assert!(r.active_kwh > last, "reading {k}");
            assert!(r.reactive_kvarh >= last_r);
            assert_eq!(r.seq, (k - 1) as u32);
            assert!(
                r.power_kw > 0.0 && r.power_kw < 13.8,
                "within a 60 A meter's capacity"
            );
            last = r.active_kwh;
            last_r = r.reactive_kvarh;
        }
        // A day is 33 kWh ± the household level and noise.
        let day = last - p.start_kwh;
        assert!((10.0..70.0).contains(&day), "{day}");
    }

    #[test]
    fn dying_battery_is_low_and_sagging() {
        let mut p = profile_with(Some(Problem::DyingBattery));
        p.battery_start = 18.0;
        p.battery_drain_per_day = 2.0;
        let mut d = Dynamics::new(&p, 1, 0.0);
        let v = d.device_values(&p, 86_400.0 * 3.0);
        assert_eq!(v.battery_level, 12);
        assert!(v.battery_mv < 3_100, "{}", v.battery_mv);
        assert_eq!(v.battery_status, 4);
        assert!(v.error_codes.contains(&1));
        let healthy = profile_with(None);
        let v = Dynamics::new(&healthy, 1, 0.0).device_values(&healthy, 0.0);
        assert!(v.battery_mv > 3_550 && v.battery_mv < BATTERY_NOMINAL_MV + 100);
        assert_eq!(v.error_codes, [0]);
    }

    #[test]
    fn leaking_memory_runs_out_and_resets_on_reboot() {
        let mut p = profile_with(Some(Problem::MemoryLeak));
        p.leak_kb_per_hour = 10.0;
        p.memory_free_share = 0.5;
        p.model = 0; // 256 kB: 128 kB free after boot, empty after ~12 h
        let mut d = Dynamics::new(&p, 1, 0.0);
        d.reboot(0.0);
        let early = d.device_values(&p, 3600.0).memory_free_kb;
        let late = d.device_values(&p, 11.0 * 3600.0).memory_free_kb;
        assert!(early > late + 80, "{early} → {late}");
        assert!(d.device_values(&p, 12.5 * 3600.0).error_codes.contains(&5));
        assert!(d.out_of_memory(&p, 12.5 * 3600.0));
        d.reboot(12.5 * 3600.0);
        assert!(!d.out_of_memory(&p, 12.5 * 3600.0));
        assert_eq!(d.reboots, 2);
    }

    #[test]
    fn error_code_profile_reports_its_code() {
        let mut p = profile_with(Some(Problem::ErrorCodes));
        p.error_code = 8;
        let v = Dynamics::new(&p, 1, 0.0).device_values(&p, 0.0);
        assert_eq!(v.error_codes, [8]);
    }
}
