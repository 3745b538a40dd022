//! Connectivity Statistics (object 7): 7/0/2 Tx Data and 7/0/3 Rx Data are counters (KB) since
//! collection started. Their rate per hour between snapshots, compared with the device's own
//! earlier rates, shows a meter that suddenly talks far more than it used to (retries, a loop,
//! a misconfigured reporting interval) — which costs money on a metered SIM.

use crate::finding::{Evidence, Finding, RuleId, Severity};
use crate::stats::median;
use crate::{Input, Snapshot};

const COUNTERS: [(&str, &str); 2] = [("/7/0/2", "sent"), ("/7/0/3", "received")];

/// Rates below this (KB/h) are too small to matter whatever their ratio.
const MIN_RATE_KB_PER_H: f64 = 5.0;

/// The traffic of one interval between snapshots. The counters are whole kilobytes, so an
/// increase of `delta` KB means anything from `delta - 1` to `delta + 1` KB: a meter that sends
/// less than a kilobyte per interval shows 0 and then 1, which is no spike.
#[derive(Debug, Clone, Copy)]
struct Interval {
    /// KB/h as read.
    rate: f64,
    /// The least it can have been (one KB less), and the most (one KB more).
    low: f64,
    high: f64,
}

fn rates(snapshots: &[&Snapshot], path: &str) -> Vec<Interval> {
    snapshots
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0], w[1]);
            let hours = b.taken_at.saturating_sub(a.taken_at) as f64 / 3600.0;
            let delta = b.int(path)?.checked_sub(a.int(path)?)?;
            // A falling counter was reset (collection restarted, device rebooted): no rate.
            (hours > 0.0 && delta >= 0).then(|| Interval {
                rate: delta as f64 / hours,
                low: (delta as f64 - 1.0).max(0.0) / hours,
                high: (delta as f64 + 1.0) / hours,
            })
        })
        .collect()
}

pub fn traffic_pattern(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let mut snapshots = input.history.snapshots_by_time();
    snapshots.push(input.snapshot);
    let mut out = Vec::new();
    for (path, direction) in COUNTERS {
        let all = rates(&snapshots, path);
        let Some((current, past)) = all.split_last() else {
            continue;
        };
        if past.len() < t.traffic_min_intervals {
            continue;
        }
        let past_rates: Vec<f64> = past.iter().map(|i| i.rate).collect();
        let past_high: Vec<f64> = past.iter().map(|i| i.high).collect();
        let (Some(usual), Some(usual_high)) = (median(&past_rates), median(&past_high)) else {
            continue;
        };
        // A spike even counting the counters' rounding against it.
        if current.low < MIN_RATE_KB_PER_H
            || current.low <= usual_high.max(0.1) * t.traffic_spike_factor
        {
            continue;
        }
        let current = current.rate;
        out.push(Finding {
            rule: RuleId::TrafficPattern,
            severity: Severity::Minor,
            title: format!(
                "Data {direction} {:.0}× the usual rate",
                current / usual.max(0.1)
            ),
            evidence: vec![
                Evidence::new(path, format!("{current:.1} KB/h"))
                    .meaning("since the previous snapshot"),
                Evidence::new(path, format!("{usual:.1} KB/h"))
                    .meaning(format!("median over {} earlier intervals", past.len())),
            ],
            action:
                "Check the meter's reporting interval and its recent firmware or configuration \
                     changes; retries after failed requests also inflate traffic."
                    .to_owned(),
            site_visit: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap_at};
    use crate::{DeviceHistory, Thresholds};

    fn history(tx: &[i64]) -> DeviceHistory {
        DeviceHistory {
            snapshots: tx
                .iter()
                .enumerate()
                .map(|(i, &v)| snap_at(NOW - (tx.len() - i) as i64 * 3600, &[("/7/0/2", v)]))
                .collect(),
            ..DeviceHistory::default()
        }
    }

    #[test]
    fn a_spike_over_the_usual_rate() {
        let h = history(&[100, 110, 121, 130]);
        let f = run(
            traffic_pattern,
            &snap_at(NOW, &[("/7/0/2", 330)]),
            &h,
            &Thresholds::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].title.starts_with("Data sent 20×"), "{}", f[0].title);
    }

    #[test]
    fn under_a_kilobyte_per_interval_is_no_spike_whatever_the_clock() {
        let t = Thresholds::default();
        // Snapshots 20 s apart (an accelerated simulation) or 8 h apart: counters in whole KB
        // that step 0, 0, 1, 1, 2 are a meter sending less than a kilobyte per interval.
        for spacing in [20, 8 * 3600] {
            let h = DeviceHistory {
                snapshots: [0, 0, 1, 1]
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| snap_at(NOW - (4 - i as i64) * spacing, &[("/7/0/2", v)]))
                    .collect(),
                ..DeviceHistory::default()
            };
            assert!(
                run(traffic_pattern, &snap_at(NOW, &[("/7/0/2", 2)]), &h, &t).is_empty(),
                "spacing {spacing}"
            );
            // A real burst still is one at the short spacing (at 8 h, 11 KB is under 5 KB/h).
            let burst = run(traffic_pattern, &snap_at(NOW, &[("/7/0/2", 12)]), &h, &t);
            assert_eq!(burst.len(), usize::from(spacing == 20), "spacing {spacing}");
        }
    }

    #[test]
    fn steady_traffic_and_resets_are_fine() {
        let t = Thresholds::default();
        let h = history(&[100, 110, 121, 130]);
        assert!(run(traffic_pattern, &snap_at(NOW, &[("/7/0/2", 141)]), &h, &t).is_empty());
        // Counter reset: no rate for the last interval.
        assert!(run(traffic_pattern, &snap_at(NOW, &[("/7/0/2", 3)]), &h, &t).is_empty());
        // Not enough history.
        assert!(
            run(
                traffic_pattern,
                &snap_at(NOW, &[("/7/0/2", 900)]),
                &history(&[100, 110]),
                &t
            )
            .is_empty()
        );
    }
}
