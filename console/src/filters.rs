//! The fleet filters (search, state, connectivity, model, tag, firmware) as one value: read from
//! and written to the page's URL query (so a filtered fleet is a link, and the back button
//! returns to the previous filters), turned into the device list's API query, and into a
//! diagnostics sweep's filter.

use api_types::diagnostics::SweepFilter;

use crate::format;

/// The filters as typed (text, not yet validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetFilters {
    pub q: String,
    pub state: String,
    pub connectivity: String,
    pub model: String,
    pub tag: String,
    pub firmware: String,
}

/// The URL query keys, in the order they are written.
const KEYS: [&str; 6] = ["q", "state", "connectivity", "model", "tag", "firmware"];

impl FleetFilters {
    /// From a URL query (`get(key)` answers one parameter).
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> FleetFilters {
        let mut f = FleetFilters::default();
        for key in KEYS {
            if let Some(value) = get(key) {
                *f.field_mut(key) = value;
            }
        }
        f
    }

    fn field_mut(&mut self, key: &str) -> &mut String {
        match key {
            "state" => &mut self.state,
            "connectivity" => &mut self.connectivity,
            "model" => &mut self.model,
            "tag" => &mut self.tag,
            "firmware" => &mut self.firmware,
            _ => &mut self.q,
        }
    }

    /// The URL query (`?state=active&tag=site%3Dlab`, empty without filters): the text as typed,
    /// so reloading the page shows exactly what the operator wrote.
    pub fn to_query(&self) -> String {
        format::query_string(&self.raw_pairs())
    }

    fn raw_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("q", self.q.clone()),
            ("state", self.state.clone()),
            ("connectivity", self.connectivity.clone()),
            ("model", self.model.clone()),
            ("tag", self.tag.clone()),
            ("firmware", self.firmware.clone()),
        ]
    }

    /// The device list's query pairs, or why the tag filter cannot be used (it is then left out).
    pub fn api_pairs(&self) -> (Vec<(&'static str, String)>, Option<String>) {
        let mut pairs = self.raw_pairs();
        pairs.retain(|(k, _)| *k != "tag");
        let mut problem = None;
        if !self.tag.trim().is_empty() {
            match format::tag_filter(&self.tag) {
                Ok(tag) => pairs.push(("tag", tag)),
                Err(why) => problem = Some(why),
            }
        }
        (pairs, problem)
    }

    /// The same filters for a diagnostics sweep; an invalid tag is an error (a sweep must not
    /// silently cover more devices than the operator asked for).
    pub fn sweep_filter(&self) -> Result<SweepFilter, String> {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let tag = if self.tag.trim().is_empty() {
            Vec::new()
        } else {
            vec![format::tag_filter(&self.tag)?]
        };
        Ok(SweepFilter {
            state: some(&self.state),
            connectivity: some(&self.connectivity),
            model: some(&self.model),
            firmware: some(&self.firmware),
            customer: None,
            tag,
            q: some(&self.q),
        })
    }

    pub fn any(&self) -> bool {
        *self != FleetFilters::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn parse_query(query: &str) -> FleetFilters {
        let pairs: Vec<(String, String)> = query
            .trim_start_matches('?')
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (format::percent_decode(k), format::percent_decode(v)))
            .collect();
        FleetFilters::from_query(|key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    #[test]
    fn round_trips_through_the_url_query() {
        let f = FleetFilters {
            q: "sim 1".into(),
            state: "active".into(),
            tag: "site=lab".into(),
            ..FleetFilters::default()
        };
        let query = f.to_query();
        assert_eq!(query, "?q=sim%201&state=active&tag=site%3Dlab");
        assert_eq!(parse_query(&query), f);
        assert_eq!(FleetFilters::default().to_query(), "");
        assert!(!parse_query("").any());
        // Unknown keys are ignored.
        assert_eq!(parse_query("?page=3&model=EM-200").model, "EM-200");
    }

    #[test]
    fn api_pairs_normalise_the_tag_or_say_why_not() {
        let f = FleetFilters {
            tag: "region = north".into(),
            ..FleetFilters::default()
        };
        let (pairs, problem) = f.api_pairs();
        assert_eq!(problem, None);
        assert!(pairs.contains(&("tag", "region:north".to_owned())));
        let bad = FleetFilters {
            tag: "region".into(),
            ..FleetFilters::default()
        };
        let (pairs, problem) = bad.api_pairs();
        assert!(problem.is_some());
        assert!(pairs.iter().all(|(k, _)| *k != "tag"));
    }

    #[test]
    fn sweep_filters_leave_out_empty_fields_and_refuse_bad_tags() {
        let f = FleetFilters {
            state: "active".into(),
            model: " SIM-1 ".into(),
            tag: "site=lab".into(),
            ..FleetFilters::default()
        };
        let s = f.sweep_filter().unwrap();
        assert_eq!(s.state.as_deref(), Some("active"));
        assert_eq!(s.model.as_deref(), Some("SIM-1"));
        assert_eq!(s.tag, ["site:lab"]);
        assert_eq!(s.q, None);
        assert_eq!(
            FleetFilters::default().sweep_filter().unwrap(),
            SweepFilter::default()
        );
        let bad = FleetFilters {
            tag: "nonsense".into(),
            ..FleetFilters::default()
        };
        assert!(bad.sweep_filter().is_err());
    }
}
