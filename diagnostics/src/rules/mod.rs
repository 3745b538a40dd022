//! The rules: each a small pure function from the diagnosis [`Input`] to findings. Thresholds
//! come from [`crate::Thresholds`]; no rule knows how the values were produced (real meter or
//! simulator), only what OMA says they mean.

use crate::finding::Finding;
use crate::{Input, RuleId};

mod battery;
mod checkin;
mod errors;
mod firmware;
mod location;
mod memory;
mod reboots;
mod signal;
mod traffic;

pub use battery::low_battery;
pub use checkin::missed_check_in;
pub use errors::error_codes;
pub use firmware::firmware_update;
pub use location::location;
pub use memory::{low_memory, memory_leak};
pub use reboots::frequent_reboots;
pub use signal::{poor_link_quality, weak_signal};
pub use traffic::traffic_pattern;

/// A rule: its identifier, a one-line description (shown in the console's rule list) and the
/// function.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: RuleId,
    pub describes: &'static str,
    pub run: fn(&Input<'_>) -> Vec<Finding>,
}

/// Every rule, in the order findings of equal severity are listed.
pub const ALL: &[Rule] = &[
    Rule {
        id: RuleId::MissedCheckIn,
        describes: "The device has not been heard from within its registration lifetime.",
        run: missed_check_in,
    },
    Rule {
        id: RuleId::WeakSignal,
        describes: "Radio signal strength (4/0/2) at or below the weak threshold.",
        run: weak_signal,
    },
    Rule {
        id: RuleId::PoorLinkQuality,
        describes: "Link quality (4/0/3) poor for the bearer (RSRQ, RxQual or LQI).",
        run: poor_link_quality,
    },
    Rule {
        id: RuleId::LowBattery,
        describes: "Battery level (3/0/9), voltage (3/0/7) or status (3/0/20) low or damaged.",
        run: low_battery,
    },
    Rule {
        id: RuleId::FrequentReboots,
        describes: "Reboots (Register while registered) frequent or on a rhythm.",
        run: frequent_reboots,
    },
    Rule {
        id: RuleId::ErrorCode,
        describes: "Error codes (3/0/11) decoded to their meaning.",
        run: error_codes,
    },
    Rule {
        id: RuleId::MemoryLeak,
        describes: "Free memory (3/0/10) falling steadily across snapshots.",
        run: memory_leak,
    },
    Rule {
        id: RuleId::LowMemory,
        describes: "Free memory (3/0/10) a small fraction of total memory (3/0/21).",
        run: low_memory,
    },
    Rule {
        id: RuleId::FirmwareUpdate,
        describes: "Firmware update state (5/0/3) and last result (5/0/5).",
        run: firmware_update,
    },
    Rule {
        id: RuleId::TrafficPattern,
        describes: "Data sent/received (7/0/2, 7/0/3) per hour far above the device's own pattern.",
        run: traffic_pattern,
    },
    Rule {
        id: RuleId::Location,
        describes: "Location (6/0) missing, impossible or outside the service area.",
        run: location,
    },
];

#[cfg(test)]
pub(crate) mod test_support {
    use crate::{DeviceHistory, Input, Reading, Snapshot, Thresholds};

    pub const NOW: i64 = 1_800_000_000;

    /// A snapshot at NOW with the given path → integer values.
    pub fn snap(values: &[(&str, i64)]) -> Snapshot {
        snap_at(NOW, values)
    }

    pub fn snap_at(at: i64, values: &[(&str, i64)]) -> Snapshot {
        let mut s = Snapshot::new(at);
        for (p, v) in values {
            s.values.insert((*p).to_owned(), Reading::Int(*v));
        }
        s
    }

    pub fn run(
        rule: fn(&Input<'_>) -> Vec<crate::Finding>,
        snapshot: &Snapshot,
        history: &DeviceHistory,
        thresholds: &Thresholds,
    ) -> Vec<crate::Finding> {
        rule(&Input {
            snapshot,
            history,
            now: NOW,
            thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_id_has_exactly_one_rule() {
        for id in RuleId::ALL {
            assert_eq!(ALL.iter().filter(|r| r.id == id).count(), 1, "{id:?}");
        }
    }
}
