//! Firmware update (OMA LwM2M TS Core 1.1 §E.6, object 5), push or pull: the server writes the
//! package to 5/0/0 (block-wise for large ones, RFC 7959, reassembled by the CoAP layer), or
//! writes a Package URI to 5/0/1 and the meter fetches it (Downloading, 5/0/3 = 1; see
//! [`super::download`]); the meter checks it and reports Downloaded (5/0/3 = 2), Execute 5/0/2
//! starts Updating (3), the meter restarts and registers again with the new version in 3/0/3 and
//! Update Result 1 (§E.6.1 state machine).
//!
//! A simulated package is `ferrite-fw <model> <version>\n`, any payload, then the SHA-256 of
//! everything before it (32 bytes): a wrong digest gives result 5 (integrity check failure), a
//! package for another model or without the header 6 (unsupported package type), one larger than
//! the meter's memory 2 (not enough flash). Only the digest and the version are kept, never the
//! package.
//!
//! Faults by configured rate and reason ([`FirmwareSettings`]): integrity check failure (5) and
//! unsupported package (6) after a download, out of RAM (3) and connection lost (4) during a
//! pull, update failed (8) after the restart. A *bad* version (`--bad-firmware`) installs and
//! boots, but then restarts every few simulated hours and/or reports error code 8 in 3/0/11,
//! for the post-update health checks of a rollout to find.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::rng::Rng;

/// What a bad firmware version does once installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BadEffect {
    /// Restarts every `bad_reboot_period` (simulated).
    #[default]
    Reboots,
    /// Reports error code 8 (peripheral malfunction) in 3/0/11.
    Errors,
    /// Both.
    Both,
}

impl BadEffect {
    /// Whether it restarts.
    pub fn reboots(self) -> bool {
        matches!(self, BadEffect::Reboots | BadEffect::Both)
    }

    /// Whether it reports an error code.
    pub fn errors(self) -> bool {
        matches!(self, BadEffect::Errors | BadEffect::Both)
    }
}

/// The error code a bad firmware reports (3/0/11: 8 peripheral malfunction).
pub const BAD_FIRMWARE_ERROR: i64 = 8;

/// Firmware faults of the fleet (shares of attempts, 0–1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FirmwareSettings {
    /// A received package fails its integrity check (result 5).
    pub integrity: f64,
    /// A received package is refused as unsupported (result 6).
    pub unsupported: f64,
    /// A pull runs out of RAM (result 3).
    pub out_of_memory: f64,
    /// A pull loses its connection (result 4).
    pub connection: f64,
    /// The update fails after the restart (result 8, old version kept).
    pub update: f64,
    /// Versions that install but misbehave.
    pub bad_versions: Vec<String>,
    /// How they misbehave.
    pub bad_effect: BadEffect,
    /// Simulated seconds between the restarts of a bad version.
    pub bad_reboot_period: f64,
}

impl FirmwareSettings {
    /// Whether `version` is one of the bad ones.
    pub fn is_bad(&self, version: &str) -> bool {
        self.bad_versions.iter().any(|v| v == version)
    }

    /// The failure to inject into a received package, if any (result 5 or 6).
    pub fn package_fault(&self, rng: &mut Rng) -> Option<i64> {
        if rng.chance(self.integrity) {
            Some(result::INTEGRITY_FAILURE)
        } else if rng.chance(self.unsupported) {
            Some(result::UNSUPPORTED_PACKAGE)
        } else {
            None
        }
    }

    /// Parses `integrity=0.02,memory=0.01,connection=0.01,unsupported=0.01,update=0.02`.
    pub fn parse_rates(&mut self, text: &str) -> Result<(), String> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected REASON=RATE"))?;
            let rate: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the rate is not a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{part:?}: the rate must be between 0 and 1"));
            }
            let slot = match name.trim() {
                "integrity" => &mut self.integrity,
                "unsupported" => &mut self.unsupported,
                "memory" | "out-of-memory" => &mut self.out_of_memory,
                "connection" => &mut self.connection,
                "update" => &mut self.update,
                other => {
                    return Err(format!(
                        "{other:?}: unknown reason (integrity, unsupported, memory, connection, update)"
                    ));
                }
            };
            *slot = rate;
        }
        Ok(())
    }
}

/// 5/0/3 State values (TS Core 1.1 §E.6).
pub mod state {
    /// Idle (before downloading or after a successful update).
    pub const IDLE: i64 = 0;
    /// Downloading.
    pub const DOWNLOADING: i64 = 1;
    /// Downloaded.
    pub const DOWNLOADED: i64 = 2;
    /// Updating.
    pub const UPDATING: i64 = 3;
}

/// 5/0/5 Update Result values (TS Core 1.1 §E.6).
pub mod result {
    /// Initial value.
    pub const INITIAL: i64 = 0;
    /// Firmware updated successfully.
    pub const SUCCESS: i64 = 1;
    /// Not enough flash memory for the new firmware package.
    pub const NOT_ENOUGH_FLASH: i64 = 2;
    /// Out of RAM during the downloading process.
    pub const OUT_OF_RAM: i64 = 3;
    /// Connection lost during the downloading process.
    pub const CONNECTION_LOST: i64 = 4;
    /// Integrity check failure for the new downloaded package.
    pub const INTEGRITY_FAILURE: i64 = 5;
    /// Unsupported package type.
    pub const UNSUPPORTED_PACKAGE: i64 = 6;
    /// Invalid URI.
    pub const INVALID_URI: i64 = 7;
    /// Firmware update failed.
    pub const UPDATE_FAILED: i64 = 8;
    /// Unsupported protocol.
    pub const UNSUPPORTED_PROTOCOL: i64 = 9;
}

/// A package that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The version it installs (becomes 3/0/3).
    pub version: String,
}

/// Why a package was refused: the Update Result code to report.
pub fn check(bytes: &[u8], model: &str, memory_kb: i64) -> Result<Package, i64> {
    if bytes.len() as i64 > memory_kb.saturating_mul(1000) {
        return Err(result::NOT_ENOUGH_FLASH);
    }
    let Some(split) = bytes.len().checked_sub(32) else {
        return Err(result::UNSUPPORTED_PACKAGE);
    };
    let (body, digest) = bytes.split_at(split);
    let line_end = body
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(result::UNSUPPORTED_PACKAGE)?;
    let header = std::str::from_utf8(&body[..line_end]).map_err(|_| result::UNSUPPORTED_PACKAGE)?;
    let mut words = header.split(' ');
    let (Some("ferrite-fw"), Some(for_model), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(result::UNSUPPORTED_PACKAGE);
    };
    if for_model != model || version.is_empty() {
        return Err(result::UNSUPPORTED_PACKAGE);
    }
    if Sha256::digest(body)[..] != *digest {
        return Err(result::INTEGRITY_FAILURE);
    }
    Ok(Package {
        version: version.to_owned(),
    })
}

/// Builds a valid package (for tests and for provisioning scripts).
pub fn build_package(model: &str, version: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = format!("ferrite-fw {model} {version}\n").into_bytes();
    bytes.extend_from_slice(payload);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_good_package_passes() {
        let p = build_package("FSM-E100", "2.5.0", &[7u8; 3000]);
        assert_eq!(
            check(&p, "FSM-E100", 256),
            Ok(Package {
                version: "2.5.0".into()
            })
        );
    }

    #[test]
    fn bad_packages_give_their_result_codes() {
        let mut p = build_package("FSM-E100", "2.5.0", b"payload");
        assert_eq!(check(&p, "FSM-E200", 256), Err(result::UNSUPPORTED_PACKAGE));
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(check(&p, "FSM-E100", 256), Err(result::INTEGRITY_FAILURE));
        assert_eq!(
            check(b"short", "FSM-E100", 256),
            Err(result::UNSUPPORTED_PACKAGE)
        );
        assert_eq!(
            check(&[0u8; 64], "FSM-E100", 256),
            Err(result::UNSUPPORTED_PACKAGE)
        );
        let big = build_package("FSM-E100", "9", &vec![0u8; 300_000]);
        assert_eq!(check(&big, "FSM-E100", 256), Err(result::NOT_ENOUGH_FLASH));
    }

    #[test]
    fn failure_rates_parse_by_reason() {
        let mut f = FirmwareSettings::default();
        f.parse_rates("integrity=0.02, memory=0.01,connection=0.5,unsupported=0,update=1")
            .unwrap();
        assert_eq!(
            (
                f.integrity,
                f.out_of_memory,
                f.connection,
                f.unsupported,
                f.update
            ),
            (0.02, 0.01, 0.5, 0.0, 1.0)
        );
        assert!(f.parse_rates("integrity").is_err());
        assert!(f.parse_rates("integrity=2").is_err());
        assert!(f.parse_rates("flash=0.1").is_err());
        // Every package fails when the rate is 1.
        let mut rng = Rng::new(1);
        f.integrity = 1.0;
        assert_eq!(f.package_fault(&mut rng), Some(result::INTEGRITY_FAILURE));
        f.integrity = 0.0;
        f.unsupported = 1.0;
        assert_eq!(f.package_fault(&mut rng), Some(result::UNSUPPORTED_PACKAGE));
    }
}
