//! Memory: 3/0/10 Memory Free and 3/0/21 Memory Total (KB). Low free memory now, and free memory
//! falling steadily across snapshots (a leak: the device will run out and restart). The leak rule
//! also looks at the history's samples (light /3/0 reads the server takes twice per boot of a
//! device that restarts often), so that a device restarting every few hours still shows a
//! per-boot trend.

use crate::finding::{Evidence, Finding, RuleId, Severity};
use crate::stats::slope;
use crate::{Input, Snapshot};

const FREE: &str = "/3/0/10";
const TOTAL: &str = "/3/0/21";

/// Total memory from this snapshot or, when missing, the most recent earlier one or sample.
fn total(input: &Input<'_>) -> Option<i64> {
    input
        .snapshot
        .int(TOTAL)
        .or_else(|| earlier(input).iter().rev().find_map(|s| s.int(TOTAL)))
}

/// Earlier snapshots and samples, oldest first.
fn earlier<'a>(input: &Input<'a>) -> Vec<&'a Snapshot> {
    let mut out: Vec<&Snapshot> = input
        .history
        .snapshots
        .iter()
        .chain(&input.history.samples)
        .collect();
    out.sort_by_key(|s| s.taken_at);
    out
}

pub fn low_memory(input: &Input<'_>) -> Vec<Finding> {
    let (Some(free), Some(total)) = (input.snapshot.int(FREE), total(input)) else {
        return vec![];
    };
    if total <= 0 || (free as f64) >= total as f64 * input.thresholds.memory_low_ratio {
        return vec![];
    }
    vec![Finding {
        rule: RuleId::LowMemory,
        severity: Severity::Major,
        title: format!("Low free memory ({free} of {total} KB)"),
        evidence: vec![
            Evidence::new(FREE, format!("{free} KB")),
            Evidence::new(TOTAL, format!("{total} KB")),
        ],
        action: "Reboot the meter remotely to recover memory; if free memory keeps falling \
                 afterwards, the firmware leaks: roll it back."
            .to_owned(),
        site_visit: false,
    }]
}

/// Free memory over time, oldest first, from earlier snapshots, samples and this one, cut into
/// segments at each restart (own or executed): a restart gives memory back, and a leak starts
/// again from there. The last segment is the one since the last restart.
fn segments(input: &Input<'_>) -> Vec<Vec<(i64, i64)>> {
    let points = earlier(input)
        .into_iter()
        .chain(std::iter::once(input.snapshot))
        .filter_map(|s: &Snapshot| Some((s.taken_at, s.int(FREE)?)))
        .collect();
    cut_at_restarts(input, points)
}

/// As [`segments`], from the samples alone.
fn sample_segments(input: &Input<'_>) -> Vec<Vec<(i64, i64)>> {
    let points = input
        .history
        .samples
        .iter()
        .filter(|s| s.taken_at <= input.snapshot.taken_at)
        .filter_map(|s| Some((s.taken_at, s.int(FREE)?)))
        .collect();
    cut_at_restarts(input, points)
}

fn cut_at_restarts(input: &Input<'_>, mut points: Vec<(i64, i64)>) -> Vec<Vec<(i64, i64)>> {
    let executed = input
        .history
        .registrations
        .iter()
        .filter(|e| e.kind == crate::RegistrationKind::RebootExecuted)
        .map(|e| e.at);
    let mut restarts: Vec<i64> = input
        .history
        .spontaneous_reboots(0)
        .into_iter()
        .chain(executed)
        .filter(|&at| at <= input.snapshot.taken_at)
        .collect();
    restarts.sort_unstable();
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    let mut out: Vec<Vec<(i64, i64)>> = vec![Vec::new()];
    let mut next = restarts.iter().peekable();
    for point in points {
        let mut cut = false;
        while next.peek().is_some_and(|&&r| r <= point.0) {
            next.next();
            cut = true;
        }
        if cut && out.last().is_some_and(|seg| !seg.is_empty()) {
            out.push(Vec::new());
        }
        if let Some(seg) = out.last_mut() {
            seg.push(point);
        }
    }
    out
}

/// A fall of free memory: (KB lost per hour, first point, last point), each point being
/// (seconds, free KB).
type Fall = (f64, (i64, i64), (i64, i64));

/// A leak in one segment: (KB lost per hour, first point, last point) when free memory fell
/// across at least `memory_leak_min_snapshots` snapshots, mostly monotonically, by at least
/// `memory_leak_min_drop_ratio` of the total.
fn leak_in(points: &[(i64, i64)], total: i64, t: &crate::Thresholds) -> Option<Fall> {
    leak_over(points, total, t, t.memory_leak_min_snapshots.max(2))
}

/// As [`leak_in`], with `min_points` snapshots.
fn leak_over(
    points: &[(i64, i64)],
    total: i64,
    t: &crate::Thresholds,
    min_points: usize,
) -> Option<Fall> {
    if points.len() < min_points.max(2) {
        return None;
    }
    let (first, last) = (*points.first()?, *points.last()?);
    let drop = first.1.saturating_sub(last.1);
    // Mostly falling: at most one small rise (allocator noise) between consecutive snapshots.
    let rises = points.windows(2).filter(|w| w[1].1 > w[0].1).count();
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|&(at, free)| (at.saturating_sub(first.0) as f64 / 3600.0, free as f64))
        .collect();
    let per_hour = slope(&xy)?;
    if per_hour >= 0.0 || rises > 1 || (drop as f64) < total as f64 * t.memory_leak_min_drop_ratio {
        return None;
    }
    Some((-per_hour, first, last))
}

const LEAK_ACTION: &str = "A firmware memory leak: schedule a remote reboot to buy time, check \
     whether other meters on this firmware leak too, and roll the firmware back.";

pub fn memory_leak(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let Some(total) = total(input).filter(|&t| t > 0) else {
        return vec![];
    };
    let segments = segments(input);
    let Some((current, earlier)) = segments.split_last() else {
        return vec![];
    };
    if let Some((leak, first, last)) = leak_in(current, total, t) {
        let hours_left = last.1 as f64 / leak;
        let mut evidence = vec![
            Evidence::new(FREE, format!("{} KB → {} KB", first.1, last.1))
                .meaning(format!("over {} snapshots", current.len())),
            Evidence::new(FREE, format!("−{leak:.1} KB/h")).meaning("trend"),
        ];
        if hours_left.is_finite() {
            evidence.push(
                Evidence::new(FREE, format!("about {:.0} h", hours_left.max(0.0)))
                    .meaning("until memory runs out at this rate"),
            );
        }
        return vec![Finding {
            rule: RuleId::MemoryLeak,
            severity: if hours_left < 24.0 {
                Severity::Critical
            } else {
                Severity::Major
            },
            title: format!("Memory leak: free memory falling {leak:.1} KB/h"),
            evidence,
            action: LEAK_ACTION.to_owned(),
            site_visit: false,
        }];
    }
    // Not (yet) visible since the last restart, but the run before it leaked: a restart gives
    // the memory back without curing the firmware, so the leak is still there.
    if let Some((leak, first, last)) = earlier
        .iter()
        .rev()
        .find_map(|segment| leak_in(segment, total, t))
    {
        return vec![Finding {
            rule: RuleId::MemoryLeak,
            severity: Severity::Major,
            title: format!("Memory leak before the last restart: free memory fell {leak:.1} KB/h"),
            evidence: vec![
                Evidence::new(FREE, format!("{} KB → {} KB", first.1, last.1))
                    .meaning("before the restart"),
                Evidence::new(FREE, format!("−{leak:.1} KB/h")).meaning("trend before the restart"),
            ],
            action: LEAK_ACTION.to_owned(),
            site_visit: false,
        }];
    }
    // A device that leaks fast restarts before a run shows a trend; but if free memory fell
    // (by the same margin) between two snapshots after each of several restarts, that is the
    // same leak seen again and again.
    let falls: Vec<Fall> = segments
        .iter()
        .filter_map(|segment| leak_over(segment, total, t, 2))
        .collect();
    if falls.len() < RECURRING_FALLS {
        return per_boot(&sample_segments(input), total, t);
    }
    let leak = falls.iter().map(|f| f.0).sum::<f64>() / falls.len() as f64;
    vec![Finding {
        rule: RuleId::MemoryLeak,
        severity: Severity::Major,
        title: format!("Memory leak: free memory falls after every restart (about {leak:.1} KB/h)"),
        evidence: falls
            .iter()
            .map(|(_, first, last)| {
                Evidence::new(FREE, format!("{} KB → {} KB", first.1, last.1))
                    .meaning("between two snapshots after a restart")
            })
            .collect(),
        action: LEAK_ACTION.to_owned(),
        site_visit: false,
    }]
}

/// Restart-to-restart runs, each with free memory falling between two snapshots, that make a
/// recurring leak.
const RECURRING_FALLS: usize = 2;

/// The most recent boots the per-boot trend looks at.
const PER_BOOT_WINDOW: usize = 8;

/// A device that restarts every few hours loses too little memory within one boot for any one
/// boot to pass the drop threshold. But free memory that falls within (nearly) every boot, by
/// as much in sum as a leak must lose in one, is the same leak seen boot after boot: noise
/// falls in half the boots and its sum stays near zero. Looks at the last `PER_BOOT_WINDOW`
/// boots with at least two samples (first and last of each boot). Only the boot samples count:
/// they are taken at set times after the restart, past the start-up; a diagnosis can land in
/// the first seconds of a boot, before the device has even refreshed its values.
fn per_boot(segments: &[Vec<(i64, i64)>], total: i64, t: &crate::Thresholds) -> Vec<Finding> {
    let boots: Vec<((i64, i64), (i64, i64))> = segments
        .iter()
        .filter(|s| s.len() >= 2)
        .filter_map(|s| Some((*s.first()?, *s.last()?)))
        .collect();
    let boots = &boots[boots.len().saturating_sub(PER_BOOT_WINDOW)..];
    let falling = boots.iter().filter(|(a, b)| b.1 < a.1).count();
    let lost = boots.iter().fold(0i64, |sum, (a, b)| {
        sum.saturating_add(a.1.saturating_sub(b.1))
    });
    let hours: f64 = boots
        .iter()
        .map(|(a, b)| b.0.saturating_sub(a.0) as f64 / 3600.0)
        .sum();
    if falling < t.memory_leak_min_boots.max(2)
        || falling * 5 < boots.len() * 4
        || (lost as f64) < total as f64 * t.memory_leak_min_drop_ratio
        || hours <= 0.0
    {
        return vec![];
    }
    let leak = lost as f64 / hours;
    vec![Finding {
        rule: RuleId::MemoryLeak,
        severity: Severity::Major,
        title: format!(
            "Memory leak: free memory fell within {falling} of the last {} boots (about {leak:.1} KB/h)",
            boots.len()
        ),
        evidence: boots
            .iter()
            .map(|(a, b)| {
                Evidence::new(FREE, format!("{} KB → {} KB", a.1, b.1)).meaning(format!(
                    "within one boot, {:.1} h apart",
                    b.0.saturating_sub(a.0) as f64 / 3600.0
                ))
            })
            .chain(std::iter::once(
                Evidence::new(FREE, format!("{lost} KB of {total} KB"))
                    .meaning("lost within boots, in sum"),
            ))
            .collect(),
        action: LEAK_ACTION.to_owned(),
        site_visit: false,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap, snap_at};
    use crate::{DeviceHistory, RegistrationEvent, RegistrationKind, Thresholds};

    #[test]
    fn low_memory_threshold() {
        let h = DeviceHistory::default();
        let t = Thresholds::default();
        assert_eq!(
            run(low_memory, &snap(&[(FREE, 90), (TOTAL, 1024)]), &h, &t).len(),
            1
        );
        assert!(run(low_memory, &snap(&[(FREE, 200), (TOTAL, 1024)]), &h, &t).is_empty());
        assert!(
            run(low_memory, &snap(&[(FREE, 90)]), &h, &t).is_empty(),
            "no total, no ratio"
        );
    }

    fn leak_history(frees: &[i64]) -> DeviceHistory {
        DeviceHistory {
            snapshots: frees
                .iter()
                .enumerate()
                .map(|(i, &f)| {
                    snap_at(
                        NOW - (frees.len() - i) as i64 * 3600,
                        &[(FREE, f), (TOTAL, 1024)],
                    )
                })
                .collect(),
            ..DeviceHistory::default()
        }
    }

    #[test]
    fn steady_fall_is_a_leak() {
        let h = leak_history(&[900, 860, 815]);
        let f = run(
            memory_leak,
            &snap(&[(FREE, 770), (TOTAL, 1024)]),
            &h,
            &Thresholds::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].title.contains("KB/h"));
        assert_eq!(f[0].evidence[0].value, "900 KB → 770 KB");
    }

    #[test]
    fn noise_around_a_level_is_not_a_leak() {
        let h = leak_history(&[900, 880, 905, 890]);
        assert!(
            run(
                memory_leak,
                &snap(&[(FREE, 885), (TOTAL, 1024)]),
                &h,
                &Thresholds::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn too_few_snapshots_or_a_tiny_drop() {
        let t = Thresholds::default();
        assert!(
            run(
                memory_leak,
                &snap(&[(FREE, 700), (TOTAL, 1024)]),
                &leak_history(&[900]),
                &t
            )
            .is_empty()
        );
        assert!(
            run(
                memory_leak,
                &snap(&[(FREE, 896), (TOTAL, 1024)]),
                &leak_history(&[900, 899, 898]),
                &t
            )
            .is_empty()
        );
    }

    #[test]
    fn free_memory_falling_after_each_of_several_restarts_is_a_leak() {
        let t = Thresholds::default();
        // Two snapshots per run: 900 → 800, restart, 950 → 850, restart, 960.
        let mut h = leak_history(&[900, 800, 950, 850]);
        for hours_ago in [2, 0] {
            h.registrations.push(RegistrationEvent {
                at: NOW - hours_ago * 3600 - 1800,
                kind: RegistrationKind::Reregistered,
            });
        }
        let f = run(memory_leak, &snap(&[(FREE, 960), (TOTAL, 1024)]), &h, &t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].title.contains("after every restart"), "{f:?}");
        assert_eq!(f[0].evidence.len(), 2);
        // Flat runs between restarts (a device that just reboots) are not.
        let mut h = leak_history(&[900, 895, 950, 948]);
        for hours_ago in [2, 0] {
            h.registrations.push(RegistrationEvent {
                at: NOW - hours_ago * 3600 - 1800,
                kind: RegistrationKind::Reregistered,
            });
        }
        assert!(run(memory_leak, &snap(&[(FREE, 960), (TOTAL, 1024)]), &h, &t).is_empty());
    }

    /// A device restarting every 4 h, with free memory read 15 min and 2 h after each restart
    /// (samples) and a diagnosis now: `boot_falls` KB lost between the two reads of each boot
    /// (plus `noise`, alternating in sign), 512 KB total.
    fn sampled_boots(boot_falls: &[i64], noise: i64) -> DeviceHistory {
        let mut h = DeviceHistory::default();
        let boots = boot_falls.len() as i64;
        for (i, fall) in boot_falls.iter().enumerate() {
            let boot = NOW - (boots - i as i64) * 4 * 3600;
            h.registrations.push(RegistrationEvent {
                at: boot,
                kind: RegistrationKind::Reregistered,
            });
            let jitter = if i % 2 == 0 { noise } else { -noise };
            h.samples
                .push(snap_at(boot + 900, &[(FREE, 240), (TOTAL, 512)]));
            h.samples.push(snap_at(
                boot + 7200,
                &[(FREE, 240 - fall + jitter), (TOTAL, 512)],
            ));
        }
        h
    }

    #[test]
    fn free_memory_falling_within_each_sampled_boot_is_a_leak() {
        let t = Thresholds::default();
        // The diagnosis now falls in the last boot: 240 → 236 there too.
        let now = snap(&[(FREE, 236), (TOTAL, 512)]);
        // 2.5 KB/h: 4–5 KB per boot, far below 5 % of 512 KB in any one boot; 26+ KB in sum.
        let f = run(
            memory_leak,
            &now,
            &sampled_boots(&[5, 4, 4, 5, 4, 4], 0),
            &t,
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].title.contains("within 6 of the last 6 boots"), "{f:?}");
        assert_eq!(f[0].evidence.len(), 7);
        assert_eq!(f[0].evidence[6].value, "26 KB of 512 KB");
        // The same with one boot that rose a little (5 of 6 fell).
        let f = run(
            memory_leak,
            &now,
            &sampled_boots(&[6, 6, -1, 6, 6, 6], 0),
            &t,
        );
        assert_eq!(f.len(), 1, "{f:?}");
    }

    #[test]
    fn a_diagnosis_in_the_first_seconds_of_a_boot_does_not_hide_the_per_boot_trend() {
        // Each boot also has a diagnosis 10 s after the restart that still shows the previous
        // boot's low value (not refreshed yet): the per-boot trend is the samples'.
        let mut h = sampled_boots(&[5, 4, 4, 5, 4, 4], 0);
        let restarts: Vec<i64> = h.registrations.iter().map(|e| e.at).collect();
        for at in restarts {
            h.snapshots
                .push(snap_at(at + 10, &[(FREE, 200), (TOTAL, 512)]));
        }
        let f = run(
            memory_leak,
            &snap(&[(FREE, 236), (TOTAL, 512)]),
            &h,
            &Thresholds::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].title.contains("within 6 of the last 6 boots"), "{f:?}");
    }

    #[test]
    fn sampled_boots_of_a_healthy_device_are_not_a_leak() {
        let t = Thresholds::default();
        let now = snap(&[(FREE, 240), (TOTAL, 512)]);
        // Noise of ±3 KB around a level: falls in half the boots, nothing in sum.
        assert!(run(memory_leak, &now, &sampled_boots(&[0; 8], 3), &t).is_empty());
        // Falls in every boot, but too small in sum to be more than allocator noise.
        assert!(
            run(
                memory_leak,
                &now,
                &sampled_boots(&[2, 1, 2, 1, 2, 1], 0),
                &t
            )
            .is_empty()
        );
        // Big falls in only half the boots.
        assert!(
            run(
                memory_leak,
                &now,
                &sampled_boots(&[15, -2, 15, -2, 15, -2], 0),
                &t
            )
            .is_empty()
        );
        // Too few boots seen.
        assert!(run(memory_leak, &now, &sampled_boots(&[12, 12], 0), &t).is_empty());
        // Samples are ignored by the other rules: no low-memory from a sample.
        let mut h = sampled_boots(&[0, 0, 0], 0);
        h.samples
            .push(snap_at(NOW - 60, &[(FREE, 10), (TOTAL, 512)]));
        assert!(run(low_memory, &snap(&[(FREE, 240)]), &h, &t).is_empty());
    }

    #[test]
    fn a_reboot_restarts_the_series_but_a_leak_before_it_is_still_reported() {
        let mut h = leak_history(&[900, 800, 700]);
        h.registrations.push(RegistrationEvent {
            at: NOW - 1800,
            kind: RegistrationKind::Reregistered,
        });
        // After the reboot only the new snapshot counts, but the segment before it leaked.
        let f = run(
            memory_leak,
            &snap(&[(FREE, 950), (TOTAL, 1024)]),
            &h,
            &Thresholds::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Major);
        assert!(f[0].title.contains("before the last restart"), "{f:?}");
        // Noise before a reboot is no leak.
        let mut h = leak_history(&[900, 880, 905]);
        h.registrations.push(RegistrationEvent {
            at: NOW - 1800,
            kind: RegistrationKind::Reregistered,
        });
        assert!(
            run(
                memory_leak,
                &snap(&[(FREE, 950), (TOTAL, 1024)]),
                &h,
                &Thresholds::default()
            )
            .is_empty()
        );
    }
}
