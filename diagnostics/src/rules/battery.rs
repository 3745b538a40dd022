//! Battery: 3/0/9 Battery Level (%), 3/0/7 Power Source Voltage (mV) of the source whose 3/0/6
//! Available Power Sources value is 1 (internal battery; OMA: the same resource instance ID links
//! the two), and 3/0/20 Battery Status; and the level's trend over the snapshots (a battery that
//! drains fast is dying before it is low).

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};
use crate::stats::slope;

/// Snapshots a level trend needs (including the new one).
const DRAIN_MIN_SNAPSHOTS: usize = 3;
/// A rise of more than this many points between snapshots is a new battery: the trend restarts.
const REPLACED_RISE: i64 = 5;

const LEVEL: &str = "/3/0/9";
const SOURCES: &str = "/3/0/6";
const VOLTAGE: &str = "/3/0/7";
const STATUS: &str = "/3/0/20";

/// 3/0/6 value of an internal battery.
const INTERNAL_BATTERY: i64 = 1;

/// Low or failing battery: one finding combining level, voltage and status.
pub fn low_battery(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let s = input.snapshot;
    let mut evidence = Vec::new();
    let mut severity: Option<Severity> = None;
    let mut raise = |to: Severity| severity = Some(severity.map_or(to, |s| s.max(to)));

    if let Some(level) = s.int(LEVEL) {
        if level <= t.battery_critical_percent {
            raise(Severity::Critical);
            evidence.push(Evidence::new(LEVEL, format!("{level} %")).meaning("critically low"));
        } else if level <= t.battery_low_percent {
            raise(Severity::Major);
            evidence.push(Evidence::new(LEVEL, format!("{level} %")).meaning("low"));
        }
    }

    // The internal battery's voltage: the 3/0/7 instance with the same ID as the 3/0/6 instance
    // whose value is 1. Without 3/0/6 a single voltage is taken as the battery's only when the
    // device reports a battery level (otherwise it may be mains DC).
    let sources = s.instances(SOURCES);
    let voltages = s.instances(VOLTAGE);
    let battery_instance = sources
        .iter()
        .find(|(_, v)| v.as_i64() == Some(INTERNAL_BATTERY))
        .map(|(id, _)| *id)
        .or_else(|| match voltages.as_slice() {
            [(only, _)] if sources.is_empty() && s.int(LEVEL).is_some() => Some(*only),
            _ => None,
        });
    if let Some(id) = battery_instance
        && let Some(mv) = voltages
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, v)| v.as_i64())
    {
        let floor = (t.battery_nominal_mv as f64 * t.battery_voltage_low_ratio).round() as i64;
        if mv < floor {
            raise(Severity::Major);
            evidence.push(
                Evidence::new(format!("{VOLTAGE}/{id}"), format!("{mv} mV")).meaning(format!(
                    "below {floor} mV ({:.0} % of the nominal {} mV)",
                    t.battery_voltage_low_ratio * 100.0,
                    t.battery_nominal_mv
                )),
            );
        }
    }

    if let Some((per_day, days_left)) = drain(input)
        && days_left < t.battery_drain_days
    {
        raise(Severity::Major);
        evidence.push(
            Evidence::new(LEVEL, format!("−{per_day:.1} % per day")).meaning(format!(
                "draining: empty in about {days_left:.0} days at this rate"
            )),
        );
    }

    match s.int(STATUS) {
        Some(3) => {
            raise(Severity::Critical);
            evidence.push(Evidence::new(STATUS, "3").meaning("damaged"));
        }
        Some(4) => {
            raise(Severity::Major);
            evidence.push(Evidence::new(STATUS, "4").meaning("low battery"));
        }
        Some(5) if battery_instance.is_some() || s.int(LEVEL).is_some() => {
            raise(Severity::Critical);
            evidence.push(Evidence::new(STATUS, "5").meaning("battery not installed"));
        }
        _ => {}
    }

    let Some(severity) = severity else {
        return vec![];
    };
    let action = if severity == Severity::Critical {
        "Replace the battery soon: the meter may stop reporting before a routine visit."
    } else {
        "Plan a battery replacement at the next visit to the area."
    };
    vec![Finding {
        rule: RuleId::LowBattery,
        severity,
        title: if severity == Severity::Critical {
            "Battery critical".to_owned()
        } else {
            "Battery low".to_owned()
        },
        evidence,
        action: action.to_owned(),
        site_visit: true,
    }]
}

/// The battery level's trend: (% lost per day, days until 0 %), when it falls across at least
/// `DRAIN_MIN_SNAPSHOTS` snapshots since the last battery change and by at least 2 points.
fn drain(input: &Input<'_>) -> Option<(f64, f64)> {
    let mut points: Vec<(i64, i64)> = input
        .history
        .snapshots_by_time()
        .into_iter()
        .chain(std::iter::once(input.snapshot))
        .filter_map(|s| Some((s.taken_at, s.int(LEVEL)?)))
        .collect();
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    if let Some(replaced) = points
        .windows(2)
        .rposition(|w| w[1].1 > w[0].1.saturating_add(REPLACED_RISE))
    {
        points.drain(..=replaced);
    }
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < DRAIN_MIN_SNAPSHOTS || first.1.saturating_sub(last.1) < 2 {
        return None;
    }
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|&(at, level)| (at.saturating_sub(first.0) as f64 / 86_400.0, level as f64))
        .collect();
    let per_day = -slope(&xy)?;
    if !per_day.is_finite() || per_day <= 0.0 {
        return None;
    }
    Some((per_day, last.1.max(0) as f64 / per_day))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rules::test_support::{run, snap};
    use crate::{DeviceHistory, Thresholds};

    fn check(values: &[(&str, i64)]) -> Vec<Finding> {
        run(
            low_battery,
            &snap(values),
            &DeviceHistory::default(),
            &Thresholds::default(),
        )
    }

    fn with_levels(levels: &[(i64, i64)]) -> Vec<Finding> {
        let history = DeviceHistory {
            snapshots: levels[..levels.len() - 1]
                .iter()
                .map(|&(at, level)| {
                    let mut s = snap(&[(LEVEL, level)]);
                    s.taken_at = at;
                    s
                })
                .collect(),
            ..DeviceHistory::default()
        };
        let &(at, level) = levels.last().unwrap();
        let mut now = snap(&[(LEVEL, level)]);
        now.taken_at = at;
        run(low_battery, &now, &history, &Thresholds::default())
    }

    const DAY: i64 = 86_400;

    #[test]
    fn a_fast_drain_is_found_before_the_level_is_low() {
        // 60 → 52 % in two days: 4 %/day, empty in ~13 days.
        let found = with_levels(&[(0, 60), (DAY, 56), (2 * DAY, 52)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Major);
        assert!(
            found[0].evidence[0].value.contains("4.0 % per day"),
            "{found:?}"
        );
    }

    #[test]
    fn a_slow_drain_a_replacement_or_too_few_points_is_not() {
        // 1 point in 10 days: years left.
        assert!(with_levels(&[(0, 90), (5 * DAY, 90), (10 * DAY, 89)]).is_empty());
        assert!(with_levels(&[(0, 90), (10 * DAY, 80), (20 * DAY, 70)]).is_empty());
        // A new battery between the snapshots: only what follows counts (two points: none).
        assert!(with_levels(&[(0, 40), (DAY, 30), (2 * DAY, 95), (3 * DAY, 94)]).is_empty());
        assert!(with_levels(&[(0, 60), (DAY, 50)]).is_empty());
    }

    #[test]
    fn healthy_battery_gives_nothing() {
        assert!(
            check(&[
                (LEVEL, 90),
                ("/3/0/6/0", 1),
                ("/3/0/7/0", 3580),
                (STATUS, 0)
            ])
            .is_empty()
        );
        assert!(check(&[]).is_empty());
    }

    #[test]
    fn level_thresholds() {
        assert_eq!(check(&[(LEVEL, 20)])[0].severity, Severity::Major);
        assert_eq!(check(&[(LEVEL, 10)])[0].severity, Severity::Critical);
        assert!(check(&[(LEVEL, 21)]).is_empty());
    }

    #[test]
    fn voltage_of_the_internal_battery_instance_only() {
        // Instance 0 is DC (5 V fine), instance 1 is the battery at 2.9 V: well below 3.06 V.
        let f = check(&[
            ("/3/0/6/0", 0),
            ("/3/0/7/0", 5000),
            ("/3/0/6/1", 1),
            ("/3/0/7/1", 2900),
        ]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence[0].path, "/3/0/7/1");
        // A low DC voltage is not a battery problem.
        assert!(check(&[("/3/0/6/0", 0), ("/3/0/7/0", 2000)]).is_empty());
        // No 3/0/6 but a level: the single voltage is the battery's.
        assert_eq!(check(&[(LEVEL, 60), ("/3/0/7/0", 2800)]).len(), 1);
    }

    #[test]
    fn status_codes() {
        assert_eq!(check(&[(STATUS, 4)])[0].severity, Severity::Major);
        assert_eq!(check(&[(STATUS, 3)])[0].severity, Severity::Critical);
        assert!(check(&[(STATUS, 1)]).is_empty(), "charging is fine");
        assert!(
            check(&[(STATUS, 5)]).is_empty(),
            "no battery on a mains meter is fine"
        );
    }

    #[test]
    fn one_finding_with_all_evidence() {
        let f = check(&[(LEVEL, 8), (STATUS, 4), ("/3/0/6/0", 1), ("/3/0/7/0", 2700)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].evidence.len(), 3);
        assert!(f[0].site_visit);
    }
}
