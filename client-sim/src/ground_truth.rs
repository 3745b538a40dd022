//! The ground truth file (`--ground-truth FILE`): for every meter, its endpoint name and the
//! problems it was given, so that the server's diagnosis can be scored (true and false positives
//! need the healthy meters too, so every meter is listed).
//!
//! ```json
//! {"seed":42,"meters":3,"problem_share":0.2,"reboot_period_hours":6.0,
//!  "endpoints":{"sim-000001":{"problems":[],"model":"FSM-E100","firmware":"2.4.0",
//!                             "lwm2m":"1.1","queue_mode":false,"bad_firmware":null}, …},
//!  "bad_firmware":{"versions":["3.0.2"],"effect":"reboots","reboot_period_hours":4.0}}
//! ```
//!
//! A meter whose installed firmware (3/0/3) is one of `--bad-firmware` at the start has
//! `"bad_firmware":{"version":"3.0.2","symptoms":["reboots"]}`; meters that install a bad version
//! later by a firmware update are in the ledger (`firmware` lines with `"bad":true`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::meter::firmware::{BadEffect, FirmwareSettings};
use crate::meter::{Problem, Profile, ProfileParams, endpoint_name};

/// A meter running a bad firmware version from the start, and what it shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadFirmwareTruth {
    /// The bad version it runs (3/0/3).
    pub version: &'static str,
    /// What it does: `reboots` (restarts every `reboot_period_hours`, simulated) and/or
    /// `error_code_8` (3/0/11 = 8, peripheral malfunction).
    pub symptoms: Vec<&'static str>,
}

/// The fleet's bad firmware versions and their behaviour.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadFirmwareFleet {
    pub versions: Vec<String>,
    pub effect: BadEffect,
    pub reboot_period_hours: f64,
}

impl BadFirmwareTruth {
    fn symptoms(effect: BadEffect) -> Vec<&'static str> {
        let mut out = Vec::new();
        if effect.reboots() {
            out.push("reboots");
        }
        if effect.errors() {
            out.push("error_code_8");
        }
        out
    }
}

/// One meter's truth.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MeterTruth {
    /// Its problems (empty: healthy).
    pub problems: Vec<Problem>,
    /// 3/0/1.
    pub model: &'static str,
    /// 3/0/3.
    pub firmware: &'static str,
    /// "1.0" or "1.1".
    pub lwm2m: &'static str,
    /// Queue mode.
    pub queue_mode: bool,
    /// Mean signal strength, dBm (the readings wander ±2 dB around it).
    pub rssi_mean_dbm: f32,
    /// Whether it runs a bad firmware version from the start (see [`GroundTruth::with_firmware`]).
    pub bad_firmware: Option<BadFirmwareTruth>,
}

/// The whole file.
#[derive(Debug, Clone, Serialize)]
pub struct GroundTruth {
    /// The fleet seed.
    pub seed: u64,
    /// Number of meters.
    pub meters: u32,
    /// Configured share of meters with problems.
    pub problem_share: f64,
    /// Rhythm of the periodic-reboot problem.
    pub reboot_period_hours: f64,
    /// Meters by endpoint name.
    pub endpoints: BTreeMap<String, MeterTruth>,
    /// The bad firmware versions of the run (`None` when none was configured).
    pub bad_firmware: Option<BadFirmwareFleet>,
}

impl MeterTruth {
    /// The truth of one profile.
    pub fn of(profile: &Profile) -> MeterTruth {
        MeterTruth {
            problems: profile.problems.iter().collect(),
            model: profile.model_def().name,
            firmware: profile.firmware_version(),
            lwm2m: if profile.v1_1 { "1.1" } else { "1.0" },
            queue_mode: profile.queue_mode,
            rssi_mean_dbm: profile.rssi_mean,
            bad_firmware: None,
        }
    }
}

impl GroundTruth {
    /// The truth of a fleet of `meters` with `params` and endpoint names from `prefix`.
    pub fn of_fleet(params: &ProfileParams, meters: u32, prefix: &str) -> GroundTruth {
        let endpoints = (0..meters)
            .map(|i| {
                let p = Profile::generate(params, i);
                (endpoint_name(prefix, i), MeterTruth::of(&p))
            })
            .collect();
        GroundTruth {
            seed: params.seed,
            meters,
            problem_share: params.problem_share,
            reboot_period_hours: params.reboot_period_hours,
            endpoints,
            bad_firmware: None,
        }
    }

    /// Marks the meters whose starting firmware is one of `firmware`'s bad versions.
    pub fn with_firmware(mut self, firmware: &FirmwareSettings) -> GroundTruth {
        if firmware.bad_versions.is_empty() {
            return self;
        }
        for meter in self.endpoints.values_mut() {
            if firmware.is_bad(meter.firmware) {
                meter.bad_firmware = Some(BadFirmwareTruth {
                    version: meter.firmware,
                    symptoms: BadFirmwareTruth::symptoms(firmware.bad_effect),
                });
            }
        }
        self.bad_firmware = Some(BadFirmwareFleet {
            versions: firmware.bad_versions.clone(),
            effect: firmware.bad_effect,
            reboot_period_hours: firmware.bad_reboot_period / 3600.0,
        });
        self
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer(&mut file, self)?;
        file.write_all(b"\n")?;
        file.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn file_lists_every_meter_with_its_problems() {
        let params = ProfileParams {
            seed: 5,
            problem_share: 0.5,
            ..ProfileParams::default()
        };
        let truth = GroundTruth::of_fleet(&params, 200, "gt-");
        let path = std::env::temp_dir().join(format!("ferrite-gt-{}.json", std::process::id()));
        truth.write(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).ok();
        let endpoints = json["endpoints"].as_object().unwrap();
        assert_eq!(endpoints.len(), 200);
        assert_eq!(json["seed"], 5);
        // Matches the profiles the fleet would run.
        let mut with_problems = 0;
        for i in 0..200 {
            let p = Profile::generate(&params, i);
            let entry = &endpoints[&endpoint_name("gt-", i)];
            let problems: Vec<String> = entry["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let expected: Vec<String> = p
                .problems
                .iter()
                .map(|p| {
                    serde_json::to_value(p)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(problems, expected);
            if !problems.is_empty() {
                with_problems += 1;
            }
        }
        assert!((70..130).contains(&with_problems), "{with_problems}");
        assert!(json["bad_firmware"].is_null());
        assert!(endpoints.values().all(|e| e["bad_firmware"].is_null()));
        // Names of the problems as the file spells them.
        let names: Vec<String> = Problem::ALL
            .iter()
            .map(|p| {
                serde_json::to_value(p)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "weak_signal",
                "dying_battery",
                "periodic_reboots",
                "memory_leak",
                "error_codes"
            ]
        );
    }

    #[test]
    fn meters_on_a_bad_version_are_listed_with_their_symptoms() {
        let params = ProfileParams::default();
        let firmware = FirmwareSettings {
            bad_versions: vec!["3.0.2".into(), "9.9.9".into()],
            bad_effect: BadEffect::Both,
            bad_reboot_period: 4.0 * 3600.0,
            ..FirmwareSettings::default()
        };
        let truth = GroundTruth::of_fleet(&params, 300, "bf-").with_firmware(&firmware);
        let json = serde_json::to_value(&truth).unwrap();
        assert_eq!(json["bad_firmware"]["versions"][0], "3.0.2");
        assert_eq!(json["bad_firmware"]["effect"], "both");
        assert_eq!(json["bad_firmware"]["reboot_period_hours"], 4.0);
        let mut bad = 0;
        for (ep, meter) in json["endpoints"].as_object().unwrap() {
            if meter["firmware"] == "3.0.2" {
                bad += 1;
                assert_eq!(meter["bad_firmware"]["version"], "3.0.2", "{ep}");
                assert_eq!(
                    meter["bad_firmware"]["symptoms"],
                    serde_json::json!(["reboots", "error_code_8"])
                );
            } else {
                assert!(meter["bad_firmware"].is_null(), "{ep}: {meter}");
            }
        }
        // 3.0.2 is a fifth of the E200s, a third of the fleet: about 7 %.
        assert!((8..40).contains(&bad), "{bad}");
    }
}
