//! What changed between two snapshots of a device, for "since last time" views.

use serde::{Deserialize, Serialize};

use crate::{Reading, Snapshot};

/// One difference between an earlier and a later snapshot.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    /// `None`: the path was not in the earlier snapshot.
    pub before: Option<Reading>,
    /// `None`: the path is gone from the later snapshot.
    pub after: Option<Reading>,
    /// For numbers: after − before.
    pub delta: Option<f64>,
}

/// Paths to leave out of comparisons: they change on every read and say nothing by themselves
/// (3/0/13 Current Time; 7/0 counters are compared as rates by the traffic rule instead).
const NOISY: [&str; 1] = ["/3/0/13"];

/// The differences from `before` to `after`, in path order.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> =
        before.values.keys().chain(after.values.keys()).collect();
    for path in paths {
        if NOISY.contains(&path.as_str()) {
            continue;
        }
        let b = before.values.get(path);
        let a = after.values.get(path);
        if b == a {
            continue;
        }
        let delta = match (b.and_then(Reading::as_f64), a.and_then(Reading::as_f64)) {
            (Some(x), Some(y)) if matches!(b, Some(Reading::Int(_) | Reading::Float(_))) => {
                Some(y - x)
            }
            _ => None,
        };
        out.push(Change {
            path: path.clone(),
            before: b.cloned(),
            after: a.cloned(),
            delta,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changed_added_and_removed_paths() {
        let mut a = Snapshot::new(0);
        a.values.insert("/3/0/9".into(), Reading::Int(80));
        a.values.insert("/3/0/13".into(), Reading::Time(0));
        a.values.insert("/3/0/11/0".into(), Reading::Int(0));
        a.values.insert("/4/0/2".into(), Reading::Int(-90));
        let mut b = Snapshot::new(3600);
        b.values.insert("/3/0/9".into(), Reading::Int(74));
        b.values.insert("/3/0/13".into(), Reading::Time(3600));
        b.values.insert("/3/0/11/0".into(), Reading::Int(1));
        b.values.insert("/3/0/11/1".into(), Reading::Int(4));
        b.values.insert("/4/0/2".into(), Reading::Int(-90));
        let c = changes(&a, &b);
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/3/0/11/0", "/3/0/11/1", "/3/0/9"]);
        assert_eq!(c[2].delta, Some(-6.0));
        assert_eq!(c[1].before, None);
    }
}
