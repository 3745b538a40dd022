//! Location (object 6): 6/0/0 Latitude and 6/0/1 Longitude in degrees. Missing, impossible,
//! "null island" (0, 0: an unset GPS fix) or outside the configured service area.

use crate::Input;
use crate::finding::{Evidence, Finding, RuleId, Severity};

const LAT: &str = "/6/0/0";
const LON: &str = "/6/0/1";

pub fn location(input: &Input<'_>) -> Vec<Finding> {
    let s = input.snapshot;
    let finding = |severity, title: &str, evidence, action: &str| Finding {
        rule: RuleId::Location,
        severity,
        title: title.to_owned(),
        evidence,
        action: action.to_owned(),
        site_visit: false,
    };
    let (Some(lat), Some(lon)) = (s.float(LAT), s.float(LON)) else {
        let asked_and_failed = s
            .failed
            .keys()
            .any(|p| p == "/6/0" || p.starts_with("/6/0/"));
        let evidence = s
            .failed
            .iter()
            .filter(|(p, _)| p.starts_with("/6"))
            .map(|(p, why)| Evidence::new(p.clone(), why.clone()))
            .collect();
        return vec![finding(
            if asked_and_failed {
                Severity::Minor
            } else {
                Severity::Info
            },
            "No location reported",
            evidence,
            "Dispatchers need the meter's position: record it in the registry at the next visit.",
        )];
    };
    let evidence = vec![
        Evidence::new(LAT, format!("{lat:.5}°")),
        Evidence::new(LON, format!("{lon:.5}°")),
    ];
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return vec![finding(
            Severity::Minor,
            "Impossible location",
            evidence,
            "The GPS data is corrupt: do not dispatch on it; check the GPS module.",
        )];
    }
    if lat.abs() < 1e-6 && lon.abs() < 1e-6 {
        return vec![finding(
            Severity::Minor,
            "Location not fixed (0°, 0°)",
            evidence,
            "The meter has no GPS fix: do not dispatch on it; use the registry address.",
        )];
    }
    if let Some([min_lat, min_lon, max_lat, max_lon]) = input.thresholds.service_area
        && !(lat >= min_lat && lat <= max_lat && lon >= min_lon && lon <= max_lon)
    {
        return vec![finding(
            Severity::Minor,
            "Location outside the service area",
            evidence,
            "Either the GPS is wrong or the meter was moved: check with the customer before \
             dispatching.",
        )];
    }
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{run, snap};
    use crate::{DeviceHistory, Reading, Snapshot, Thresholds};

    fn at(lat: f64, lon: f64) -> Snapshot {
        let mut s = snap(&[]);
        s.values.insert(LAT.into(), Reading::Float(lat));
        s.values.insert(LON.into(), Reading::Float(lon));
        s
    }

    #[test]
    fn plausible_inside_the_area_is_fine() {
        let t = Thresholds {
            service_area: Some([47.0, 5.0, 55.0, 15.0]),
            ..Thresholds::default()
        };
        let h = DeviceHistory::default();
        assert!(run(location, &at(52.52, 13.40), &h, &t).is_empty());
        assert_eq!(
            run(location, &at(40.0, 13.4), &h, &t)[0].title,
            "Location outside the service area"
        );
        assert_eq!(
            run(location, &at(0.0, 0.0), &h, &t)[0].title,
            "Location not fixed (0°, 0°)"
        );
        assert_eq!(
            run(location, &at(95.0, 0.0), &h, &t)[0].title,
            "Impossible location"
        );
    }

    #[test]
    fn missing_location_is_info_unless_the_read_failed() {
        let t = Thresholds::default();
        let h = DeviceHistory::default();
        assert_eq!(
            run(location, &snap(&[]), &h, &t)[0].severity,
            Severity::Info
        );
        let mut failed = snap(&[]);
        failed.fail("/6/0", "not found (4.04)");
        let f = run(location, &failed, &h, &t);
        assert_eq!(f[0].severity, Severity::Minor);
        assert_eq!(f[0].evidence[0].value, "not found (4.04)");
    }

    #[test]
    fn text_coordinates_from_lwm2m_1_0_parse() {
        let mut s = snap(&[]);
        s.values.insert(LAT.into(), Reading::Text("52.52".into()));
        s.values.insert(LON.into(), Reading::Text("13.40".into()));
        assert!(
            run(
                location,
                &s,
                &DeviceHistory::default(),
                &Thresholds::default()
            )
            .is_empty()
        );
    }
}
