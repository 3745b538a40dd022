//! Check-in: a device must send an Update (or Register) within its lifetime (OMA LwM2M TS Core
//! §6.2.2); one that has not been heard from since is offline, and one silent for several
//! lifetimes is probably dead or cut off.

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};

pub fn missed_check_in(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let h = input.history;
    let (Some(last_seen), Some(lifetime)) = (h.last_seen, h.lifetime_secs.filter(|&l| l > 0))
    else {
        return vec![];
    };
    let silent = input.now.saturating_sub(last_seen);
    if silent <= lifetime.saturating_add(t.checkin_grace_secs) {
        return vec![];
    }
    let missed = silent / lifetime;
    let dead = missed >= t.checkin_site_visit_lifetimes;
    vec![Finding {
        rule: RuleId::MissedCheckIn,
        severity: if dead {
            Severity::Critical
        } else {
            Severity::Major
        },
        title: format!("Not heard from for {} ({missed} lifetimes)", human(silent)),
        evidence: vec![
            Evidence::new("registrations", format!("last seen {} ago", human(silent))),
            Evidence::new("registrations", format!("lifetime {}", human(lifetime))),
        ],
        action: if dead {
            "The meter has been silent for several lifetimes: check for a power cut or network \
             outage in the area, then send someone."
        } else {
            "The meter missed its check-in: check for a network outage in the area before \
             sending anyone; it may come back on its own."
        }
        .to_owned(),
        site_visit: dead,
    }]
}

fn human(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3600 => format!("{} h", s / 3600),
        s if s >= 120 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap};
    use crate::{DeviceHistory, Thresholds};

    fn check(last_seen: i64, lifetime: i64) -> Vec<Finding> {
        let h = DeviceHistory {
            last_seen: Some(last_seen),
            lifetime_secs: Some(lifetime),
            ..DeviceHistory::default()
        };
        run(missed_check_in, &snap(&[]), &h, &Thresholds::default())
    }

    #[test]
    fn within_lifetime_and_grace_is_fine() {
        assert!(check(NOW - 3600, 3600).is_empty());
        assert!(check(NOW - 3650, 3600).is_empty());
    }

    #[test]
    fn missed_once_then_dead() {
        let once = check(NOW - 2 * 3600, 3600);
        assert_eq!(once[0].severity, Severity::Major);
        assert!(!once[0].site_visit);
        assert_eq!(once[0].title, "Not heard from for 2 h (2 lifetimes)");
        let dead = check(NOW - 4 * 86_400, 86_400);
        assert!(dead[0].site_visit);
        assert_eq!(dead[0].title, "Not heard from for 4 days (4 lifetimes)");
    }
}
