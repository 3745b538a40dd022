//! Firmware update by push (OMA LwM2M TS Core 1.1 §E.6, object 5): the server writes the package
//! to 5/0/0 (block-wise for large ones, RFC 7959, reassembled by the CoAP layer), the meter checks
//! it and reports Downloaded (5/0/3 = 2), Execute 5/0/2 starts Updating (3), the meter restarts
//! and registers again with the new version in 3/0/3 and Update Result 1 (§E.6.1 state machine).
//!
//! A simulated package is `ferrite-fw <model> <version>\n`, any payload, then the SHA-256 of
//! everything before it (32 bytes): a wrong digest gives result 5 (integrity check failure), a
//! package for another model or without the header 6 (unsupported package type), one larger than
//! the meter's memory 2 (not enough flash). Only the digest and the version are kept, never the
//! package. Pull by Package URI (5/0/1) is not implemented yet: the URI is stored and nothing
//! happens.

use sha2::{Digest, Sha256};

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
    /// Integrity check failure for the new downloaded package.
    pub const INTEGRITY_FAILURE: i64 = 5;
    /// Unsupported package type.
    pub const UNSUPPORTED_PACKAGE: i64 = 6;
    /// Firmware update failed.
    pub const UPDATE_FAILED: i64 = 8;
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
}
