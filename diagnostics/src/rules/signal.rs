//! Radio: 4/0/2 Radio Signal Strength (dBm) and 4/0/3 Link Quality, whose scale depends on the
//! 4/0/0 Network Bearer (OMA object 4: RSRQ for LTE/NB-IoT, RxQual 0–7 for GSM, LQI 0–255 for
//! IEEE 802.15.4).

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};
use crate::stats::median;

const RSSI: &str = "/4/0/2";
const LINK_QUALITY: &str = "/4/0/3";
const BEARER: &str = "/4/0/0";

/// Readings the usual signal is the median of: this one and the newest earlier ones.
const USUAL_OF: usize = 3;

/// Weak signal: RSSI at or below the weak threshold needs the antenna checked or the modem moved;
/// marginal signal is worth watching. One reading fades by a few dB either way, so with earlier
/// snapshots the verdict follows the usual signal (the median of the last readings): one weak
/// reading of a meter that is usually above the threshold is only worth a second look, unless
/// it dropped by `rssi_drop_db` or more (something changed: antenna, cable, obstruction).
pub fn weak_signal(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let Some(rssi) = input.snapshot.int(RSSI) else {
        return vec![];
    };
    let earlier: Vec<f64> = input
        .history
        .snapshots_by_time()
        .iter()
        .rev()
        .filter(|s| s.taken_at < input.snapshot.taken_at)
        .filter_map(|s| s.int(RSSI))
        .take(USUAL_OF - 1)
        .map(|v| v as f64)
        .collect();
    let mut recent = earlier.clone();
    recent.push(rssi as f64);
    let usual = median(&recent).unwrap_or(rssi as f64);
    let dropped =
        median(&earlier).is_some_and(|before| before - rssi as f64 >= t.rssi_drop_db as f64);
    let weak = t.rssi_weak_dbm as f64;
    let mut evidence = vec![Evidence::new(RSSI, format!("{rssi} dBm"))];
    if !earlier.is_empty() {
        evidence.push(
            Evidence::new(RSSI, format!("{usual:.0} dBm"))
                .meaning(format!("median of the last {} readings", recent.len())),
        );
    }
    if usual <= weak || (rssi <= t.rssi_weak_dbm && dropped) {
        let title = if usual <= weak {
            format!("Weak radio signal ({rssi} dBm)")
        } else {
            format!("Radio signal dropped to {rssi} dBm (usually {usual:.0} dBm)")
        };
        vec![Finding {
            rule: RuleId::WeakSignal,
            severity: Severity::Major,
            title,
            evidence,
            action: format!(
                "Signal is at or below {} dBm: check the antenna and its cable, or move the \
                 modem or fit an external antenna.",
                t.rssi_weak_dbm
            ),
            site_visit: true,
        }]
    } else if rssi <= t.rssi_weak_dbm {
        vec![Finding {
            rule: RuleId::WeakSignal,
            severity: Severity::Minor,
            title: format!(
                "Weak radio signal in this reading only ({rssi} dBm, usually {usual:.0} dBm)"
            ),
            evidence,
            action: "One weak reading of a meter whose signal is usually better: diagnose it \
                     again later before sending anyone."
                .to_owned(),
            site_visit: false,
        }]
    } else if rssi <= t.rssi_marginal_dbm {
        vec![Finding {
            rule: RuleId::WeakSignal,
            severity: Severity::Minor,
            title: format!("Marginal radio signal ({rssi} dBm)"),
            evidence,
            action: "Signal is usable but marginal: watch for missed check-ins before sending \
                     anyone."
                .to_owned(),
            site_visit: false,
        }]
    } else {
        vec![]
    }
}

/// The scale of 4/0/3 for a bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// dB, higher is better (LTE RSRQ, NB-IoT NRSRQ).
    Rsrq,
    /// 0–7, higher is worse (GSM RxQual).
    RxQual,
    /// 0–255, higher is better (IEEE 802.15.4 LQI) — also used for unknown bearers with
    /// non-negative values.
    Lqi,
}

fn scale(bearer: Option<i64>, value: i64) -> Scale {
    match bearer {
        Some(0) => Scale::RxQual,
        Some(5..=9) => Scale::Rsrq,
        _ if value < 0 => Scale::Rsrq,
        _ => Scale::Lqi,
    }
}

/// Poor link quality for the bearer.
pub fn poor_link_quality(input: &Input<'_>) -> Vec<Finding> {
    let t = input.thresholds;
    let Some(lq) = input.snapshot.int(LINK_QUALITY) else {
        return vec![];
    };
    let bearer = input.snapshot.int(BEARER);
    let (poor, shown, limit) = match scale(bearer, lq) {
        Scale::Rsrq => (
            lq <= t.rsrq_poor_db,
            format!("{lq} dB (RSRQ)"),
            format!("{} dB", t.rsrq_poor_db),
        ),
        Scale::RxQual => (
            lq >= t.rxqual_poor,
            format!("{lq} (RxQual 0–7)"),
            format!("RxQual {}", t.rxqual_poor),
        ),
        Scale::Lqi => (
            lq <= t.lqi_poor,
            format!("{lq} (LQI 0–255)"),
            format!("LQI {}", t.lqi_poor),
        ),
    };
    if !poor {
        return vec![];
    }
    let mut evidence = vec![Evidence::new(LINK_QUALITY, shown)];
    if let Some(b) = bearer {
        evidence.push(Evidence::new(BEARER, b.to_string()).meaning(bearer_name(b)));
    }
    vec![Finding {
        rule: RuleId::PoorLinkQuality,
        severity: Severity::Minor,
        title: "Poor link quality".to_owned(),
        evidence,
        action: format!(
            "Link quality is at or beyond {limit}: interference or a congested cell. If it \
             persists with a good signal, ask the operator about the cell."
        ),
        site_visit: false,
    }]
}

/// The name of a 4/0/0 Network Bearer value (OMA object 4).
pub fn bearer_name(bearer: i64) -> &'static str {
    match bearer {
        0 => "GSM",
        1 => "TD-SCDMA",
        2 => "WCDMA",
        3 => "CDMA2000",
        4 => "WiMAX",
        5 => "LTE-TDD",
        6 => "LTE-FDD",
        7 => "NB-IoT",
        8 => "5G-NR TDD",
        9 => "5G-NR FDD",
        10..=20 => "other cellular",
        21 => "WLAN",
        22 => "Bluetooth",
        23 => "IEEE 802.15.4",
        24..=40 => "other wireless",
        41 => "Ethernet",
        42 => "DSL",
        43 => "PLC",
        44..=50 => "other wireline",
        _ => "unknown bearer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{NOW, run, snap, snap_at};
    use crate::{DeviceHistory, Thresholds};

    fn readings(earlier: &[i64]) -> DeviceHistory {
        DeviceHistory {
            snapshots: earlier
                .iter()
                .enumerate()
                .map(|(i, &v)| snap_at(NOW - (earlier.len() - i) as i64 * 8 * 3600, &[(RSSI, v)]))
                .collect(),
            ..DeviceHistory::default()
        }
    }

    #[test]
    fn the_usual_signal_decides_with_earlier_readings() {
        let t = Thresholds::default();
        let at = |earlier: &[i64], now: i64| {
            run(weak_signal, &snap(&[(RSSI, now)]), &readings(earlier), &t)
        };
        // A meter usually at −106 dBm fading to −111 once: a second look, no truck.
        let f = at(&[-120, -105, -106], -111);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Minor);
        assert!(!f[0].site_visit);
        assert!(f[0].title.contains("this reading only"), "{}", f[0].title);
        assert_eq!(f[0].evidence[1].value, "-106 dBm");
        // Usually weak: weak even when this reading is a little better.
        let f = at(&[-100, -115, -116], -108);
        assert_eq!(f[0].severity, Severity::Major);
        assert!(f[0].site_visit);
        // Weak twice in the last three readings.
        assert_eq!(at(&[-106, -112], -111)[0].severity, Severity::Major);
        // A drop of 10 dB or more to a weak reading is a change, not fading.
        let f = at(&[-98, -99], -112);
        assert_eq!(f[0].severity, Severity::Major);
        assert!(f[0].title.contains("dropped"), "{}", f[0].title);
        // Without earlier readings the reading decides.
        assert_eq!(at(&[], -111)[0].severity, Severity::Major);
    }

    #[test]
    fn rssi_thresholds_are_inclusive() {
        let t = Thresholds::default();
        let h = DeviceHistory::default();
        let at = |rssi| run(weak_signal, &snap(&[(RSSI, rssi)]), &h, &t);
        let weak = at(-110);
        assert_eq!(weak.len(), 1);
        assert_eq!(weak[0].severity, Severity::Major);
        assert!(weak[0].site_visit);
        assert_eq!(weak[0].evidence[0].value, "-110 dBm");
        assert_eq!(at(-109)[0].severity, Severity::Minor);
        assert_eq!(at(-100)[0].severity, Severity::Minor);
        assert!(at(-99).is_empty());
        assert!(
            run(weak_signal, &snap(&[]), &h, &t).is_empty(),
            "no RSSI, no finding"
        );
    }

    #[test]
    fn link_quality_follows_the_bearer_scale() {
        let t = Thresholds::default();
        let h = DeviceHistory::default();
        let lq = |bearer: Option<i64>, v: i64| {
            let mut values = vec![(LINK_QUALITY, v)];
            if let Some(b) = bearer {
                values.push((BEARER, b));
            }
            !run(poor_link_quality, &snap(&values), &h, &t).is_empty()
        };
        // LTE RSRQ in dB.
        assert!(lq(Some(6), -16));
        assert!(lq(Some(6), -15));
        assert!(!lq(Some(6), -9));
        // GSM RxQual: higher is worse.
        assert!(lq(Some(0), 6));
        assert!(!lq(Some(0), 2));
        // 802.15.4 LQI: higher is better.
        assert!(lq(Some(23), 30));
        assert!(!lq(Some(23), 200));
        // No bearer: the sign tells.
        assert!(lq(None, -18));
        assert!(!lq(None, 180));
    }
}
