//! The daily electricity consumption pattern of PRODUCT.md ("Client simulator"): kWh per hour by
//! time of day, a per-household position inside each band, and noise per 15-minute interval.

use crate::rng::Rng;

/// One band of the day: hours `[from, to)` with consumption between `lo` and `hi` kWh per hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// First hour (local time).
    pub from: u8,
    /// Hour after the last.
    pub to: u8,
    /// Lowest hourly consumption, kWh.
    pub lo: f64,
    /// Highest hourly consumption, kWh.
    pub hi: f64,
}

/// PRODUCT.md, "Daily consumption pattern (per hour)", electric: night 00–06 0.3–0.5 kWh,
/// morning peak 06–09 1.5–3.0, daytime 09–17 0.8–1.2, evening peak 17–22 2.0–4.0,
/// late night 22–24 0.5–0.8.
pub const ELECTRIC_BANDS: [Band; 5] = [
    Band {
        from: 0,
        to: 6,
        lo: 0.3,
        hi: 0.5,
    },
    Band {
        from: 6,
        to: 9,
        lo: 1.5,
        hi: 3.0,
    },
    Band {
        from: 9,
        to: 17,
        lo: 0.8,
        hi: 1.2,
    },
    Band {
        from: 17,
        to: 22,
        lo: 2.0,
        hi: 4.0,
    },
    Band {
        from: 22,
        to: 24,
        lo: 0.5,
        hi: 0.8,
    },
];

/// The band of `hour` (0–23; larger values wrap).
pub fn band(hour: u32) -> Band {
    let hour = (hour % 24) as u8;
    ELECTRIC_BANDS
        .iter()
        .copied()
        .find(|b| hour >= b.from && hour < b.to)
        // The bands cover 0–24 without gaps; the fallback is never taken.
        .unwrap_or(ELECTRIC_BANDS[0])
}

/// Standard deviation of the multiplicative noise on one interval's consumption.
const NOISE_SD: f64 = 0.12;
/// The noise factor is kept within this of 1 (symmetric, so it does not bias the mean).
const NOISE_CLAMP: f64 = 0.35;

/// The mean hourly consumption of a household at `level` (0 = the band's low end, 1 = its high
/// end) during `hour` of its local day.
pub fn mean_kwh_per_hour(level: f64, hour: u32) -> f64 {
    let b = band(hour);
    b.lo + level.clamp(0.0, 1.0) * (b.hi - b.lo)
}

/// The energy used in the interval of `seconds` that starts at local second-of-day
/// `start_of_day` (the interval must not span hours with different bands for exactness; a
/// 15-minute interval on the quarter-hour never does), with noise drawn from `rng`.
pub fn interval_kwh(level: f64, start_of_day: u32, seconds: u32, rng: &mut Rng) -> f64 {
    let hour = start_of_day / 3600;
    let noise = rng.gauss(0.0, NOISE_SD).clamp(-NOISE_CLAMP, NOISE_CLAMP);
    mean_kwh_per_hour(level, hour) * f64::from(seconds) / 3600.0 * (1.0 + noise)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bands_cover_the_day() {
        assert_eq!(band(0).lo, 0.3);
        assert_eq!(band(5).hi, 0.5);
        assert_eq!(band(6).lo, 1.5);
        assert_eq!(band(8).hi, 3.0);
        assert_eq!(band(9).lo, 0.8);
        assert_eq!(band(16).hi, 1.2);
        assert_eq!(band(17).lo, 2.0);
        assert_eq!(band(21).hi, 4.0);
        assert_eq!(band(22).lo, 0.5);
        assert_eq!(band(23).hi, 0.8);
    }

    /// Simulates 60 days of 15-minute readings for households across the level range and
    /// checks every hour's mean consumption lies in its PRODUCT.md band.
    #[test]
    fn hourly_means_fall_in_the_product_bands() {
        let mut rng = Rng::new(2024);
        for level in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let mut sums = [0.0f64; 24];
            let days = 60;
            for _ in 0..days {
                for quarter in 0..96u32 {
                    let start = quarter * 900;
                    sums[(start / 3600) as usize] += interval_kwh(level, start, 900, &mut rng);
                }
            }
            for (hour, sum) in sums.iter().enumerate() {
                let mean = sum / f64::from(days);
                let b = band(hour as u32);
                // Noise averages out to within a few percent over 240 intervals.
                let slack = 0.03 * b.hi;
                assert!(
                    mean >= b.lo - slack && mean <= b.hi + slack,
                    "level {level} hour {hour}: {mean:.3} kWh outside {}–{}",
                    b.lo,
                    b.hi
                );
            }
        }
    }

    #[test]
    fn a_day_sums_to_the_band_totals() {
        // Mid-level household without noise: 6·0.4 + 3·2.25 + 8·1.0 + 5·3.0 + 2·0.65 = 33.45 kWh.
        let total: f64 = (0..24).map(|h| mean_kwh_per_hour(0.5, h)).sum();
        assert!((total - 33.45).abs() < 1e-9, "{total}");
    }
}
