//! Small statistics the rules share.

/// Median of the values (the mean of the middle two for an even count); `None` when empty or
/// when a value is not finite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Mean and coefficient of variation (standard deviation / mean); `None` for fewer than two
/// values or a non-positive mean.
pub fn mean_and_cv(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean <= 0.0 || !mean.is_finite() {
        return None;
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, variance.sqrt() / mean))
}

/// Least-squares slope of y over x; `None` for fewer than two points or no spread in x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn cv_of_a_steady_rhythm_is_small() {
        let (mean, cv) = mean_and_cv(&[6.0, 6.1, 5.9, 6.0]).unwrap();
        assert!((mean - 6.0).abs() < 1e-9);
        assert!(cv < 0.02);
        let (_, irregular) = mean_and_cv(&[1.0, 9.0, 3.0, 12.0]).unwrap();
        assert!(irregular > 0.5);
        assert_eq!(mean_and_cv(&[1.0]), None);
    }

    #[test]
    fn slope_of_a_line() {
        let s = slope(&[(0.0, 10.0), (1.0, 8.0), (2.0, 6.0)]).unwrap();
        assert!((s + 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
