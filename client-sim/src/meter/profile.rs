//! Who each meter is, decided once from the fleet seed and the meter's index: model, firmware,
//! serial, LwM2M version, queue mode, site (signal, location, household size) and its problems.
//! The same seed always gives the same fleet; the ground truth file is written from these.

use serde::Serialize;

use super::radio;
use crate::rng::Rng;

/// Streams derived from the seed, one per purpose, so adding a draw to one does not change the
/// others.
pub(crate) mod stream {
    /// The profile of a meter.
    pub const PROFILE: u64 = 1;
    /// Its readings and dynamic values.
    pub const RUNTIME: u64 = 2;
    /// Protocol seeds (CoAP tokens, message IDs).
    pub const PROTOCOL: u64 = 3;
    /// Random outages.
    pub const OUTAGES: u64 = 4;
    /// Injected firmware package faults.
    pub const FIRMWARE: u64 = 5;
}

/// The manufacturer every simulated meter reports in 3/0/0 and 10243/0/0.
pub const MANUFACTURER: &str = "Ferrite Sim Meters";

/// A meter model of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ModelDef {
    /// 3/0/1 Model Number.
    pub name: &'static str,
    /// Share of the fleet (relative weight).
    pub weight: f64,
    /// 3/0/21 Memory Total, kB.
    pub memory_kb: i64,
    /// Firmware versions in the field, oldest first, with their relative weights.
    pub firmwares: &'static [(&'static str, f64)],
    /// 4/0/0 Network Bearer (6 LTE-FDD, 7 NB-IoT).
    pub bearer: i64,
    /// 3/0/18 Hardware Version.
    pub hardware: &'static str,
    /// Serial number prefix.
    pub serial_prefix: &'static str,
}

/// The catalogue: three generations of single-phase meters.
pub const MODELS: [ModelDef; 3] = [
    ModelDef {
        name: "FSM-E100",
        weight: 0.45,
        memory_kb: 256,
        firmwares: &[("2.3.1", 0.3), ("2.4.0", 0.7)],
        bearer: 7,
        hardware: "E100-rev3",
        serial_prefix: "E1",
    },
    ModelDef {
        name: "FSM-E200",
        weight: 0.35,
        memory_kb: 512,
        firmwares: &[("3.0.2", 0.2), ("3.1.0", 0.5), ("3.1.1", 0.3)],
        bearer: 6,
        hardware: "E200-rev1",
        serial_prefix: "E2",
    },
    ModelDef {
        name: "FSM-E300",
        weight: 0.20,
        memory_kb: 1024,
        firmwares: &[("4.0.0", 0.6), ("4.0.3", 0.4)],
        bearer: 6,
        hardware: "E300-rev2",
        serial_prefix: "E3",
    },
];

/// A problem a meter can be given, each visible in the objects the diagnostics read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// 4/0/2 below −110 dBm, poor 4/0/3, error code 4 at times.
    WeakSignal,
    /// 3/0/9 low and falling, 3/0/7 (battery) well under its 3.6 V nominal, 3/0/20 = 4
    /// (Low Battery), error code 1.
    DyingBattery,
    /// The meter restarts (registers again without de-registering) every `reboot_period`.
    PeriodicReboots,
    /// 3/0/10 falls steadily from boot; error code 5 below 5 % of 3/0/21; a watchdog restart
    /// when it runs out.
    MemoryLeak,
    /// A persistent error code in 3/0/11 (7 IP connectivity failure or 8 peripheral
    /// malfunction).
    ErrorCodes,
}

impl Problem {
    /// Every problem, in a fixed order (bit positions in [`ProblemSet`]).
    pub const ALL: [Problem; 5] = [
        Problem::WeakSignal,
        Problem::DyingBattery,
        Problem::PeriodicReboots,
        Problem::MemoryLeak,
        Problem::ErrorCodes,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A small set of problems (one byte per meter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProblemSet(u8);

impl ProblemSet {
    /// Whether `p` is in the set.
    pub fn has(self, p: Problem) -> bool {
        self.0 & p.bit() != 0
    }

    /// Adds `p`.
    pub fn insert(&mut self, p: Problem) {
        self.0 |= p.bit();
    }

    /// The problems, in [`Problem::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Problem> {
        Problem::ALL.into_iter().filter(move |p| self.has(*p))
    }

    /// No problem.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which LwM2M versions the fleet uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VersionMix {
    /// Every meter 1.0 (TLV, readings by notification).
    V1_0,
    /// Every meter 1.1 (SenML, readings by Send).
    V1_1,
    /// 1.1 with this probability, else 1.0.
    Mix(f64),
}

/// The fleet-wide inputs of the profiles.
#[derive(Debug, Clone)]
pub struct ProfileParams {
    /// The seed.
    pub seed: u64,
    /// Share of meters with at least one problem.
    pub problem_share: f64,
    /// Share of meters in queue mode.
    pub queue_share: f64,
    /// LwM2M versions.
    pub versions: VersionMix,
    /// Centre of the service area (degrees) and its radius (km).
    pub area: (f64, f64, f64),
    /// Rhythm of the periodic-reboot problem, simulated hours.
    pub reboot_period_hours: f64,
}

impl Default for ProfileParams {
    fn default() -> ProfileParams {
        ProfileParams {
            seed: 1,
            problem_share: 0.2,
            queue_share: 0.1,
            versions: VersionMix::Mix(0.5),
            area: (52.52, 13.405, 15.0),
            reboot_period_hours: 6.0,
        }
    }
}

/// Everything fixed about one meter. About 90 bytes.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Index in the fleet (0-based).
    pub index: u32,
    /// LwM2M 1.1 (Send, SenML) rather than 1.0 (TLV, notifications).
    pub v1_1: bool,
    /// Queue mode (binding `UQ`).
    pub queue_mode: bool,
    /// Its problems.
    pub problems: ProblemSet,
    /// Index into [`MODELS`].
    pub model: u8,
    /// Index into the model's firmware list.
    pub firmware: u8,
    /// Serial number digits.
    pub serial: u32,
    /// Household consumption level within the bands, 0–1.
    pub household: f32,
    /// Power factor of its load.
    pub power_factor: f32,
    /// Mean signal strength, dBm.
    pub rssi_mean: f32,
    /// Site.
    pub latitude: f32,
    /// Site.
    pub longitude: f32,
    /// Serving cell.
    pub cell_id: u32,
    /// Mobile network code.
    pub mnc: u8,
    /// Battery level at the start, %.
    pub battery_start: f32,
    /// Battery loss per simulated day, percentage points.
    pub battery_drain_per_day: f32,
    /// Free memory right after boot, share of the total.
    pub memory_free_share: f32,
    /// Memory leaked per simulated hour, kB (0 without the leak).
    pub leak_kb_per_hour: f32,
    /// Periodic reboots: the first one this many simulated hours after the start.
    pub reboot_phase_hours: f32,
    /// The persistent error code of the error-codes problem.
    pub error_code: u8,
    /// Active energy register at the start of the simulation, kWh.
    pub start_kwh: f64,
}

impl Profile {
    /// The profile of meter `index` of the fleet.
    pub fn generate(params: &ProfileParams, index: u32) -> Profile {
        let mut rng = Rng::derive(params.seed, stream::PROFILE, u64::from(index));
        let v1_1 = match params.versions {
            VersionMix::V1_0 => false,
            VersionMix::V1_1 => true,
            VersionMix::Mix(share) => rng.chance(share),
        };
        let queue_mode = rng.chance(params.queue_share);
        let weights: Vec<f64> = MODELS.iter().map(|m| m.weight).collect();
        let model = rng.weighted(&weights);
        let def = &MODELS[model];
        let fw_weights: Vec<f64> = def.firmwares.iter().map(|f| f.1).collect();
        let firmware = rng.weighted(&fw_weights);

        let mut problems = ProblemSet::default();
        if rng.chance(params.problem_share) {
            let first = Problem::ALL[rng.below(5) as usize];
            problems.insert(first);
            // One problem meter in seven has a second one.
            if rng.chance(1.0 / 7.0) {
                problems.insert(Problem::ALL[rng.below(5) as usize]);
            }
        }
        let rssi_mean = if problems.has(Problem::WeakSignal) {
            radio::weak_mean_dbm(&mut rng)
        } else {
            radio::healthy_mean_dbm(&mut rng)
        };
        // A uniform point in the disc: radius ∝ √u.
        let (lat0, lon0, radius_km) = params.area;
        let r = radius_km * rng.unit().sqrt();
        let angle = rng.range(0.0, std::f64::consts::TAU);
        let latitude = lat0 + r * angle.sin() / 111.32;
        let longitude = lon0 + r * angle.cos() / (111.32 * lat0.to_radians().cos().max(0.01));
        let (battery_start, battery_drain_per_day) = if problems.has(Problem::DyingBattery) {
            (rng.range(8.0, 25.0), rng.range(1.0, 3.0))
        } else {
            (rng.range(80.0, 100.0), rng.range(0.0, 0.02))
        };
        let leak_kb_per_hour = if problems.has(Problem::MemoryLeak) {
            // Runs out in one to four simulated days from boot.
            (def.memory_kb as f64 * 0.45) / rng.range(24.0, 96.0)
        } else {
            0.0
        };
        Profile {
            index,
            v1_1,
            queue_mode,
            problems,
            model: model as u8,
            firmware: firmware as u8,
            serial: (rng.below(90_000_000) + 10_000_000) as u32,
            household: rng.range(0.05, 0.95) as f32,
            power_factor: rng.range(0.90, 0.99) as f32,
            rssi_mean: rssi_mean as f32,
            latitude: latitude as f32,
            longitude: longitude as f32,
            cell_id: rng.below(1 << 28) as u32,
            mnc: [1u8, 2, 3][rng.below(3) as usize],
            battery_start: battery_start as f32,
            battery_drain_per_day: battery_drain_per_day as f32,
            memory_free_share: rng.range(0.40, 0.55) as f32,
            leak_kb_per_hour: leak_kb_per_hour as f32,
            reboot_phase_hours: rng.range(0.0, params.reboot_period_hours) as f32,
            error_code: [7u8, 8][rng.below(2) as usize],
            start_kwh: (rng.range(1_000.0, 40_000.0) * 1000.0).round() / 1000.0,
        }
    }

    /// The model's definition.
    pub fn model_def(&self) -> &'static ModelDef {
        MODELS.get(usize::from(self.model)).unwrap_or(&MODELS[0])
    }

    /// The firmware version it runs (3/0/3).
    pub fn firmware_version(&self) -> &'static str {
        let fws = self.model_def().firmwares;
        fws.get(usize::from(self.firmware))
            .or(fws.first())
            .map_or("1.0.0", |f| f.0)
    }

    /// The serial number (3/0/2).
    pub fn serial_number(&self) -> String {
        format!("{}{:08}", self.model_def().serial_prefix, self.serial)
    }

    /// Its IPv4 address in the operator's private range (4/0/4).
    pub fn ip_address(&self) -> String {
        let i = self.index;
        format!(
            "10.{}.{}.{}",
            64 + (i >> 16) % 64,
            (i >> 8) & 0xFF,
            i & 0xFF
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn same_seed_same_fleet() {
        let params = ProfileParams::default();
        for i in [0, 1, 999] {
            let a = Profile::generate(&params, i);
            let b = Profile::generate(&params, i);
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        let other = ProfileParams {
            seed: 2,
            ..ProfileParams::default()
        };
        assert_ne!(
            Profile::generate(&params, 5).serial,
            Profile::generate(&other, 5).serial
        );
    }

    #[test]
    fn shares_follow_the_parameters() {
        let params = ProfileParams {
            problem_share: 0.2,
            queue_share: 0.1,
            versions: VersionMix::Mix(0.3),
            ..ProfileParams::default()
        };
        let n = 10_000;
        let fleet: Vec<Profile> = (0..n).map(|i| Profile::generate(&params, i)).collect();
        let share = |f: &dyn Fn(&Profile) -> bool| {
            fleet.iter().filter(|p| f(p)).count() as f64 / f64::from(n)
        };
        assert!((share(&|p| !p.problems.is_empty()) - 0.2).abs() < 0.015);
        assert!((share(&|p| p.queue_mode) - 0.1).abs() < 0.01);
        assert!((share(&|p| p.v1_1) - 0.3).abs() < 0.015);
        for problem in Problem::ALL {
            // 0.2 × (1/5 + a little from second problems).
            let s = share(&|p| p.problems.has(problem));
            assert!((0.035..0.055).contains(&s), "{problem:?}: {s}");
        }
        // Every model appears.
        for m in 0..MODELS.len() {
            assert!(share(&|p| usize::from(p.model) == m) > 0.1);
        }
    }

    #[test]
    fn locations_stay_in_the_area() {
        let params = ProfileParams::default();
        let (lat0, lon0, radius) = params.area;
        for i in 0..2_000 {
            let p = Profile::generate(&params, i);
            let dy = (f64::from(p.latitude) - lat0) * 111.32;
            let dx = (f64::from(p.longitude) - lon0) * 111.32 * lat0.to_radians().cos();
            assert!((dx * dx + dy * dy).sqrt() <= radius + 0.01, "meter {i}");
        }
    }

    #[test]
    fn problem_set_iterates_in_order() {
        let mut s = ProblemSet::default();
        assert!(s.is_empty());
        s.insert(Problem::MemoryLeak);
        s.insert(Problem::WeakSignal);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Problem::WeakSignal, Problem::MemoryLeak]
        );
    }
}
