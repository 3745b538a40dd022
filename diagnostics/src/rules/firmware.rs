//! Firmware Update object: 5/0/5 Update Result of the last attempt and a 5/0/3 State that does
//! not move (OMA object 5).

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};

const STATE: &str = "/5/0/3";
const RESULT: &str = "/5/0/5";
const VERSION: &str = "/3/0/3";

/// A state other than Idle unchanged for this long is stuck.
const STUCK_AFTER_SECS: i64 = 2 * 3600;

fn state_name(state: i64) -> &'static str {
    match state {
        0 => "Idle",
        1 => "Downloading",
        2 => "Downloaded",
        3 => "Updating",
        _ => "unknown state",
    }
}

/// Meaning and action for a failing 5/0/5 value (2–9).
fn failure(result: i64) -> Option<(&'static str, &'static str)> {
    Some(match result {
        2 => (
            "not enough flash memory for the package",
            "The package is too big for this model: build a smaller delta or exclude the model from the campaign.",
        ),
        3 => (
            "out of RAM during download",
            "Reboot the meter remotely and retry the update.",
        ),
        4 => (
            "connection lost during download",
            "Retry when the signal is better; check the signal findings.",
        ),
        5 => (
            "integrity check failure",
            "The downloaded image did not match: re-upload the package, check its SHA-256, and retry.",
        ),
        6 => (
            "unsupported package type",
            "The package is not for this model or format: check the campaign's target models.",
        ),
        7 => (
            "invalid URI",
            "Fix the package URI of the campaign and retry.",
        ),
        8 => (
            "firmware update failed",
            "The meter could not install the image: retry once, then take it out of the campaign and report to the manufacturer.",
        ),
        9 => (
            "unsupported protocol",
            "The meter cannot fetch from that URI scheme: use coap:// or coaps://, or push the package.",
        ),
        _ => return None,
    })
}

pub fn firmware_update(input: &Input<'_>) -> Vec<Finding> {
    let s = input.snapshot;
    let mut out = Vec::new();
    if let Some(result) = s.int(RESULT)
        && let Some((meaning, action)) = failure(result)
    {
        let mut evidence = vec![Evidence::new(RESULT, result.to_string()).meaning(meaning)];
        if let Some(v) = s.get(VERSION) {
            evidence.push(Evidence::new(VERSION, v.display()).meaning("running firmware"));
        }
        out.push(Finding {
            rule: RuleId::FirmwareUpdate,
            severity: Severity::Major,
            title: format!("Last firmware update failed: {meaning}"),
            evidence,
            action: action.to_owned(),
            site_visit: false,
        });
    }
    if let Some(state) = s.int(STATE).filter(|&st| st != 0) {
        // Stuck: every earlier snapshot since `STUCK_AFTER_SECS` ago shows the same state.
        let earlier = input.history.snapshots_by_time();
        let since = earlier
            .iter()
            .rev()
            .take_while(|e| e.int(STATE) == Some(state))
            .map(|e| e.taken_at)
            .last();
        if let Some(since) = since
            && s.taken_at.saturating_sub(since) >= STUCK_AFTER_SECS
        {
            let hours = s.taken_at.saturating_sub(since) / 3600;
            out.push(Finding {
                rule: RuleId::FirmwareUpdate,
                severity: Severity::Major,
                title: format!(
                    "Firmware update stuck in {} for {hours} h",
                    state_name(state)
                ),
                evidence: vec![Evidence::new(STATE, state.to_string()).meaning(state_name(state))],
                action:
                    "Cancel the update (write an empty Package URI) and retry; if it sticks again, \
                         take the meter out of the campaign."
                        .to_owned(),
                site_visit: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap, snap_at};
    use crate::{DeviceHistory, Thresholds};

    #[test]
    fn failed_result_is_reported_with_its_meaning() {
        let h = DeviceHistory::default();
        let t = Thresholds::default();
        let f = run(firmware_update, &snap(&[(RESULT, 5), (STATE, 0)]), &h, &t);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].title,
            "Last firmware update failed: integrity check failure"
        );
        assert!(run(firmware_update, &snap(&[(RESULT, 1), (STATE, 0)]), &h, &t).is_empty());
        assert!(run(firmware_update, &snap(&[(RESULT, 0)]), &h, &t).is_empty());
    }

    #[test]
    fn a_state_that_does_not_move_is_stuck() {
        let t = Thresholds::default();
        let h = DeviceHistory {
            snapshots: vec![
                snap_at(NOW - 5 * 3600, &[(STATE, 0)]),
                snap_at(NOW - 3 * 3600, &[(STATE, 1)]),
                snap_at(NOW - 3600, &[(STATE, 1)]),
            ],
            ..DeviceHistory::default()
        };
        let f = run(firmware_update, &snap(&[(STATE, 1)]), &h, &t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].title, "Firmware update stuck in Downloading for 3 h");
        // Just started: not stuck.
        let fresh = DeviceHistory {
            snapshots: vec![snap_at(NOW - 600, &[(STATE, 1)])],
            ..DeviceHistory::default()
        };
        assert!(run(firmware_update, &snap(&[(STATE, 1)]), &fresh, &t).is_empty());
    }
}
