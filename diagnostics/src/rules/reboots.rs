//! Reboots, from the registration history: a Register from an endpoint that is still registered
//! is a restart (OMA LwM2M TS Core §6.2.1); operator-requested reboots are excluded. Frequent
//! reboots, or reboots on a steady rhythm (a watchdog or a scheduled crash, "every 6 hours"), point
//! at firmware rather than hardware.

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};
use crate::stats::mean_and_cv;

/// A Register this soon after an executed /3/0/4 was asked for.
const REQUESTED_WINDOW_SECS: i64 = 600;

pub fn frequent_reboots(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let reboots = input.history.spontaneous_reboots(REQUESTED_WINDOW_SECS);
    let window_start = input
        .now
        .saturating_sub(t.reboot_window_hours.saturating_mul(3600));
    let recent = reboots
        .iter()
        .filter(|&&at| at >= window_start && at <= input.now)
        .count();

    let intervals: Vec<f64> = reboots
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64)
        .collect();
    // The rhythm is judged on the most recent intervals (a device may have changed firmware).
    let tail = &intervals[intervals.len().saturating_sub(6)..];
    let rhythm = (tail.len() >= t.reboot_rhythm_min_intervals)
        .then(|| mean_and_cv(tail))
        .flatten()
        .filter(|(_, cv)| *cv <= t.reboot_rhythm_max_cv)
        .map(|(mean, _)| mean);
    // A rhythm only matters while it is still going: the last reboot within about two periods.
    // Restarts days apart on a schedule (maintenance) are not a fault: only periods within the
    // frequency window count.
    let rhythm = rhythm.filter(|period| {
        *period <= t.reboot_window_hours.saturating_mul(3600) as f64
            && reboots
                .last()
                .is_some_and(|&last| input.now.saturating_sub(last) as f64 <= 2.0 * period + 3600.0)
    });

    let frequent = recent >= t.reboots_frequent_count;
    if !frequent && rhythm.is_none() {
        return vec![];
    }
    let mut evidence = vec![
        Evidence::new(
            "registrations",
            format!("{recent} reboots in the last {} h", t.reboot_window_hours),
        )
        .meaning("Register while already registered"),
    ];
    let title = match rhythm {
        Some(period) => {
            let shown = human_period(period);
            evidence.push(
                Evidence::new("registrations", format!("every {shown}")).meaning(format!(
                    "steady rhythm over the last {} reboots",
                    tail.len() + 1
                )),
            );
            format!("Reboots every {shown}")
        }
        None => format!("Frequent reboots ({recent} in {} h)", t.reboot_window_hours),
    };
    vec![Finding {
        rule: RuleId::FrequentReboots,
        severity: Severity::Major,
        title,
        evidence,
        action:
            "Restarts on their own point at the firmware (watchdog, crash): compare with other \
                 meters on the same firmware version and roll back if they share it; no site visit \
                 unless it continues on the previous firmware."
                .to_owned(),
        site_visit: false,
    }]
}

fn human_period(secs: f64) -> String {
    let hours = secs / 3600.0;
    if hours >= 1.0 {
        let rounded = (hours * 2.0).round() / 2.0;
        if rounded.fract() == 0.0 {
            format!("{rounded:.0} h")
        } else {
            format!("{rounded:.1} h")
        }
    } else {
        format!("{:.0} min", secs / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap};
    use crate::{DeviceHistory, RegistrationEvent, RegistrationKind, Thresholds};

    fn history(reboots: &[i64]) -> DeviceHistory {
        DeviceHistory {
            registrations: reboots
                .iter()
                .map(|&at| RegistrationEvent {
                    at,
                    kind: RegistrationKind::Reregistered,
                })
                .collect(),
            ..DeviceHistory::default()
        }
    }

    fn check(h: &DeviceHistory) -> Vec<Finding> {
        run(frequent_reboots, &snap(&[]), h, &Thresholds::default())
    }

    #[test]
    fn every_six_hours_is_a_rhythm() {
        let six = 6 * 3600;
        let h = history(&[NOW - 3 * six - 60, NOW - 2 * six + 30, NOW - six, NOW - 90]);
        let f = check(&h);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].title, "Reboots every 6 h");
        assert!(!f[0].site_visit);
    }

    #[test]
    fn two_reboots_a_week_apart_are_nothing() {
        assert!(check(&history(&[NOW - 7 * 86_400, NOW - 3600])).is_empty());
    }

    #[test]
    fn irregular_but_frequent() {
        let f = check(&history(&[
            NOW - 40 * 3600,
            NOW - 30 * 3600,
            NOW - 29 * 3600,
            NOW - 2 * 3600,
        ]));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].title.starts_with("Frequent reboots (4 in 48 h)"),
            "{}",
            f[0].title
        );
    }

    #[test]
    fn an_old_rhythm_that_stopped_is_not_reported() {
        let six = 6 * 3600;
        let start = NOW - 30 * 86_400;
        assert!(
            check(&history(&[
                start,
                start + six,
                start + 2 * six,
                start + 3 * six
            ]))
            .is_empty()
        );
    }

    #[test]
    fn operator_reboots_do_not_count() {
        let mut h = DeviceHistory::default();
        for k in 0..5 {
            let at = NOW - k * 3600;
            h.registrations.push(RegistrationEvent {
                at,
                kind: RegistrationKind::RebootExecuted,
            });
            h.registrations.push(RegistrationEvent {
                at: at + 20,
                kind: RegistrationKind::Reregistered,
            });
        }
        assert!(check(&h).is_empty());
    }

    #[test]
    fn a_weekly_schedule_is_not_a_fault() {
        let week = 7 * 86_400;
        assert!(
            check(&history(&[
                NOW - 3 * week,
                NOW - 2 * week,
                NOW - week,
                NOW - 100
            ]))
            .is_empty()
        );
    }

    #[test]
    fn periods_read_naturally() {
        assert_eq!(human_period(6.0 * 3600.0 + 100.0), "6 h");
        assert_eq!(human_period(5.5 * 3600.0), "5.5 h");
        assert_eq!(human_period(1200.0), "20 min");
    }
}
