//! A snapshot: what one diagnostic read of a device returned, flattened to `path → reading`, with
//! the paths that could not be read and why. Kept small and self-describing so that it can be
//! stored as JSON and compared with later snapshots.

use std::collections::BTreeMap;

use lwm2m_objects::{Path, Value};
use serde::{Deserialize, Serialize};

/// One resource value as the rules need it. Opaque values (firmware images, certificates) are not
/// kept: no rule looks at them and they can be large.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Reading {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Seconds since the Unix epoch.
    Time(i64),
    Text(String),
}

impl Reading {
    /// The reading as an integer: floats are rounded, booleans are 0/1, text is parsed.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Reading::Int(v) | Reading::Time(v) => Some(*v),
            Reading::Float(v) if v.is_finite() => {
                let rounded = v.round();
                // `as` saturates; refuse values that would saturate rather than invent a bound.
                (rounded >= i64::MIN as f64 && rounded <= i64::MAX as f64).then_some(rounded as i64)
            }
            Reading::Float(_) => None,
            Reading::Bool(b) => Some(i64::from(*b)),
            Reading::Text(t) => t.trim().parse().ok(),
        }
    }

    /// The reading as a float (integers widen; text is parsed).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Reading::Int(v) | Reading::Time(v) => Some(*v as f64),
            Reading::Float(v) => v.is_finite().then_some(*v),
            Reading::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Reading::Text(t) => t.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        }
    }

    /// The reading as text, for evidence shown to people.
    pub fn display(&self) -> String {
        match self {
            Reading::Int(v) | Reading::Time(v) => v.to_string(),
            Reading::Float(v) => {
                let s = format!("{v:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            Reading::Bool(b) => b.to_string(),
            Reading::Text(t) => t.clone(),
        }
    }

    fn from_value(value: &Value) -> Option<Reading> {
        Some(match value {
            Value::String(s) | Value::Corelnk(s) => Reading::Text(s.clone()),
            Value::Integer(v) => Reading::Int(*v),
            Value::UnsignedInteger(v) => Reading::Int(i64::try_from(*v).unwrap_or(i64::MAX)),
            Value::Float(v) => Reading::Float(*v),
            Value::Boolean(b) => Reading::Bool(*b),
            Value::Time(t) => Reading::Time(*t),
            Value::Objlnk(link) => Reading::Text(link.to_string()),
            Value::Untyped(bytes) => Reading::Text(String::from_utf8(bytes.clone()).ok()?),
            Value::Opaque(_) | Value::None => return None,
        })
    }
}

/// What one diagnostic read returned.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unix seconds at which the answers arrived.
    pub taken_at: i64,
    /// Resource (or resource instance) path, e.g. `/4/0/2` or `/3/0/11/0`, to its reading.
    pub values: BTreeMap<String, Reading>,
    /// Paths that were asked for and not answered, with the reason in plain language (e.g.
    /// `/6/0` → "not found (4.04)"). A partial answer is still diagnosed.
    pub failed: BTreeMap<String, String>,
}

impl Snapshot {
    /// An empty snapshot taken at `taken_at`.
    pub fn new(taken_at: i64) -> Snapshot {
        Snapshot {
            taken_at,
            ..Snapshot::default()
        }
    }

    /// Builds a snapshot from the flattened answer of a read (resource and resource-instance paths
    /// with their values, as `Node::flatten` gives them).
    pub fn from_values<'a>(
        taken_at: i64,
        values: impl IntoIterator<Item = (Path, &'a Value)>,
    ) -> Snapshot {
        let mut snapshot = Snapshot::new(taken_at);
        for (path, value) in values {
            snapshot.insert(&path, value);
        }
        snapshot
    }

    /// Adds one value (ignored when it is opaque or empty).
    pub fn insert(&mut self, path: &Path, value: &Value) {
        if let Some(reading) = Reading::from_value(value) {
            self.values.insert(path.to_string(), reading);
        }
    }

    /// Records that `path` could not be read.
    pub fn fail(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.failed.insert(path.into(), why.into());
    }

    pub fn get(&self, path: &str) -> Option<&Reading> {
        self.values.get(path)
    }

    pub fn int(&self, path: &str) -> Option<i64> {
        self.get(path).and_then(Reading::as_i64)
    }

    pub fn float(&self, path: &str) -> Option<f64> {
        self.get(path).and_then(Reading::as_f64)
    }

    /// The instances of a multiple resource (`/3/0/11` → `[(0, reading), …]`), in instance order.
    /// A single-instance answer for the same resource (some clients flatten a one-element
    /// multiple resource) is returned as instance 0.
    pub fn instances(&self, resource: &str) -> Vec<(u16, &Reading)> {
        let prefix = format!("{resource}/");
        let mut out: Vec<(u16, &Reading)> = self
            .values
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| Some((k[prefix.len()..].parse::<u16>().ok()?, v)))
            .collect();
        if out.is_empty()
            && let Some(v) = self.get(resource)
        {
            out.push((0, v));
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Whether the snapshot holds anything under `prefix` (e.g. `/6/0`).
    pub fn has_any(&self, prefix: &str) -> bool {
        let with_slash = format!("{prefix}/");
        self.values
            .keys()
            .any(|k| k == prefix || k.starts_with(&with_slash))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn from_values_keeps_scalars_and_drops_opaque() {
        let rssi = Value::Integer(-97);
        let fw = Value::Opaque(vec![1, 2, 3]);
        let name = Value::String("Ferrite Meters".into());
        let code = Value::UnsignedInteger(4);
        let s = Snapshot::from_values(
            100,
            [
                ("/4/0/2".parse().unwrap(), &rssi),
                ("/5/0/0".parse().unwrap(), &fw),
                ("/3/0/0".parse().unwrap(), &name),
                ("/3/0/11/1".parse().unwrap(), &code),
            ],
        );
        assert_eq!(s.int("/4/0/2"), Some(-97));
        assert!(s.get("/5/0/0").is_none());
        assert_eq!(s.get("/3/0/0").unwrap().display(), "Ferrite Meters");
        assert_eq!(s.instances("/3/0/11"), vec![(1, &Reading::Int(4))]);
    }

    #[test]
    fn instances_are_numeric_order_and_a_flat_value_is_instance_zero() {
        let mut s = Snapshot::new(0);
        for (i, v) in [(10u16, 5i64), (2, 1), (0, 0)] {
            s.values.insert(format!("/3/0/11/{i}"), Reading::Int(v));
        }
        s.values.insert("/3/0/110".into(), Reading::Int(9)); // not an instance of /3/0/11
        let ids: Vec<u16> = s.instances("/3/0/11").iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [0, 2, 10]);

        let mut flat = Snapshot::new(0);
        flat.values.insert("/3/0/11".into(), Reading::Int(5));
        assert_eq!(flat.instances("/3/0/11"), vec![(0, &Reading::Int(5))]);
    }

    #[test]
    fn readings_convert_leniently_but_never_invent() {
        assert_eq!(Reading::Text(" -85 ".into()).as_i64(), Some(-85));
        assert_eq!(Reading::Text("n/a".into()).as_i64(), None);
        assert_eq!(Reading::Float(f64::NAN).as_i64(), None);
        assert_eq!(Reading::Float(1e300).as_i64(), None);
        assert_eq!(Reading::Float(3.6).as_i64(), Some(4));
        assert_eq!(Reading::Float(3.25).display(), "3.25");
        assert_eq!(Reading::Float(3.0).display(), "3");
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut s = Snapshot::new(1_700_000_000);
        s.values.insert("/4/0/2".into(), Reading::Int(-111));
        s.values.insert("/6/0/0".into(), Reading::Float(52.52));
        s.fail("/7/0", "not found (4.04)");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
    }
}
