//! The meaning of 3/0/11 Error Code values (OMA LwM2M object 3, resource 11) and what to do
//! about each.

use crate::Severity;

/// What an error code means for field service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMeaning {
    pub code: i64,
    pub meaning: &'static str,
    pub severity: Severity,
    pub action: &'static str,
    pub site_visit: bool,
}

/// The meaning of `code`; `None` for 0 (no error). Reserved (9–15), device-specific (16–32)
/// and out-of-range codes still get an entry so nothing a device reports is dropped.
pub fn meaning(code: i64) -> Option<ErrorMeaning> {
    let (meaning, severity, action, site_visit) = match code {
        0 => return None,
        1 => (
            "low battery power",
            Severity::Major,
            "Plan a battery replacement.",
            true,
        ),
        2 => (
            "external power supply off",
            Severity::Major,
            "Check the mains supply at the site; the meter runs on its backup.",
            true,
        ),
        3 => (
            "GPS module failure",
            Severity::Minor,
            "Location is unreliable; enter it by hand or replace the module at the next visit.",
            false,
        ),
        4 => (
            "low received signal strength",
            Severity::Major,
            "Check the antenna or move the meter's modem; see the signal findings.",
            false,
        ),
        5 => (
            "out of memory",
            Severity::Major,
            "Reboot the meter remotely; if it recurs, the firmware leaks memory: roll it back.",
            false,
        ),
        6 => (
            "SMS failure",
            Severity::Minor,
            "SMS binding is failing; the UDP binding keeps working. Check the SIM's SMS service.",
            false,
        ),
        7 => (
            "IP connectivity failure",
            Severity::Major,
            "The meter lost its IP connection; check the SIM and the APN with the operator.",
            false,
        ),
        8 => (
            "peripheral malfunction",
            Severity::Critical,
            "A sensor or peripheral of the meter is broken: replace the meter.",
            true,
        ),
        9..=15 => (
            "reserved error code",
            Severity::Minor,
            "The device reported a code reserved by OMA; ask the manufacturer.",
            false,
        ),
        16..=32 => (
            "device-specific error",
            Severity::Minor,
            "Look the code up in the manufacturer's documentation for this model.",
            false,
        ),
        _ => (
            "invalid error code",
            Severity::Minor,
            "The device reported a code outside the OMA range; ask the manufacturer.",
            false,
        ),
    };
    Some(ErrorMeaning {
        code,
        meaning,
        severity,
        action,
        site_visit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_oma_code_has_its_meaning() {
        assert_eq!(meaning(0), None);
        let names: Vec<&str> = (1..=8).filter_map(meaning).map(|m| m.meaning).collect();
        assert_eq!(
            names,
            [
                "low battery power",
                "external power supply off",
                "GPS module failure",
                "low received signal strength",
                "out of memory",
                "SMS failure",
                "IP connectivity failure",
                "peripheral malfunction"
            ]
        );
        assert_eq!(meaning(12).map(|m| m.meaning), Some("reserved error code"));
        assert_eq!(
            meaning(20).map(|m| m.meaning),
            Some("device-specific error")
        );
        assert_eq!(meaning(-3).map(|m| m.meaning), Some("invalid error code"));
        assert!(meaning(8).is_some_and(|m| m.site_visit));
    }
}
