//! Battery: 3/0/9 Battery Level (%), 3/0/7 Power Source Voltage (mV) of the source whose 3/0/6
//! Available Power Sources value is 1 (internal battery; OMA: the same resource instance ID links
//! the two), and 3/0/20 Battery Status.

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};

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

#[cfg(test)]
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
