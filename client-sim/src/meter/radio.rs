//! The radio side of a meter (object 4, Connectivity Monitoring): where its signal strength sits
//! (a fleet centred near −85 dBm, with a weak tail below −110 dBm for the weak-signal profile),
//! how it wanders from one reading to the next, and the link quality that goes with it.

use crate::rng::Rng;

/// Median signal strength of a healthy meter, dBm (RSRP for LTE / NRSRP for NB-IoT: object 4
/// resource 2 description).
pub const HEALTHY_MEDIAN_DBM: f64 = -85.0;
/// Spread of healthy meters' mean signal between sites.
pub const HEALTHY_SD_DB: f64 = 7.0;
/// The threshold below which the diagnostics call the signal weak (PRODUCT.md, Diagnostics).
pub const WEAK_THRESHOLD_DBM: f64 = -110.0;
/// Spread of one reading around the meter's mean (fading, load on the cell).
pub const READING_SD_DB: f64 = 2.0;

/// A healthy meter's mean signal: normal around −85 dBm, kept above −106 dBm so that a healthy
/// meter never crosses −110 dBm with its reading-to-reading spread (the weak tail is the
/// weak-signal profile's, and its size is what `--problem-share` configures).
pub fn healthy_mean_dbm(rng: &mut Rng) -> f64 {
    rng.gauss(HEALTHY_MEDIAN_DBM, HEALTHY_SD_DB)
        .clamp(-106.0, -60.0)
}

/// A weak-signal meter's mean: between −121 and −113 dBm, below the threshold even with the
/// reading-to-reading spread most of the time.
pub fn weak_mean_dbm(rng: &mut Rng) -> f64 {
    rng.range(-121.0, -113.0)
}

/// One reading of the signal around `mean`, in whole dBm, within the LTE RSRP range.
pub fn sample_dbm(mean: f64, rng: &mut Rng) -> i64 {
    rng.gauss(mean, READING_SD_DB).round().clamp(-140.0, -44.0) as i64
}

/// Link quality as LTE RSRQ in dB (object 4 resource 3: "RSRQ for LTE"), from −3 (excellent)
/// to −20 (unusable), following the signal strength.
pub fn link_quality_db(rssi_dbm: i64, rng: &mut Rng) -> i64 {
    // About −6 dB at −75 dBm and −17 dB at −120 dBm.
    let base = -6.0 - (f64::from((-75 - rssi_dbm as i32).max(0)) * 0.25);
    rng.gauss(base, 1.0).round().clamp(-20.0, -3.0) as i64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A fleet where `weak_share` of meters have weak signal: the median reading is near −85 dBm
    /// and the share of readings below −110 dBm is about `weak_share`.
    #[test]
    fn fleet_signal_distribution() {
        for weak_share in [0.0, 0.04, 0.10] {
            let mut rng = Rng::new(77);
            let mut readings = Vec::new();
            for _ in 0..20_000 {
                let mean = if rng.chance(weak_share) {
                    weak_mean_dbm(&mut rng)
                } else {
                    healthy_mean_dbm(&mut rng)
                };
                for _ in 0..5 {
                    readings.push(sample_dbm(mean, &mut rng));
                }
            }
            readings.sort_unstable();
            let median = readings[readings.len() / 2];
            assert!((-87..=-83).contains(&median), "median {median} dBm");
            let below = readings
                .iter()
                .filter(|r| (**r as f64) < WEAK_THRESHOLD_DBM)
                .count();
            let share = below as f64 / readings.len() as f64;
            assert!(
                (share - weak_share).abs() < 0.01,
                "share below −110 dBm {share:.4}, configured {weak_share}"
            );
        }
    }

    #[test]
    fn link_quality_follows_signal() {
        let mut rng = Rng::new(1);
        let good: f64 = (0..1000)
            .map(|_| link_quality_db(-75, &mut rng) as f64)
            .sum::<f64>()
            / 1000.0;
        let bad: f64 = (0..1000)
            .map(|_| link_quality_db(-118, &mut rng) as f64)
            .sum::<f64>()
            / 1000.0;
        assert!(good > -7.0 && good < -5.0, "{good}");
        assert!(bad < -15.0, "{bad}");
    }
}
