//! Notification attributes (OMA LwM2M TS Core 1.1 §5.1.2): what Write-Attributes sets (§6.3.4
//! `PUT` with only a query), how they are stored per path, how they are inherited (object →
//! instance → resource → resource instance, the more specific winning) and how a numeric
//! observation decides whether a change is worth a notification (`gt`, `lt`, `st`).

use lwm2m_objects::Path;
use lwm2m_objects::link::Attributes;

/// The notification attributes of one path. `None` means unset (inherited from a higher level).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NotifyAttributes {
    /// Minimum period between notifications, seconds.
    pub pmin: Option<u32>,
    /// Maximum period between notifications, seconds (ignored unless greater than `pmin`).
    pub pmax: Option<u32>,
    /// Greater-than threshold: notify when the value crosses it.
    pub gt: Option<f64>,
    /// Less-than threshold: notify when the value crosses it.
    pub lt: Option<f64>,
    /// Step: notify when the value moved by at least this much since the last notification.
    pub st: Option<f64>,
    /// Minimum evaluation period, seconds (stored and reported; not used for sampling: the
    /// store reports changes itself).
    pub epmin: Option<u32>,
    /// Maximum evaluation period, seconds (stored and reported, see `epmin`).
    pub epmax: Option<u32>,
}

/// Why a Write-Attributes query was refused (answered 4.00, TS Core 1.1 §6.3.4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// A parameter that is not a notification attribute (e.g. `dim`, `ver`, or unknown).
    #[error("{0:?} is not a writable attribute")]
    NotWritable(String),
    /// A value that does not parse.
    #[error("attribute {0:?} has an invalid value")]
    InvalidValue(String),
    /// `gt`, `lt` and `st` belong to resources (TS Core 1.1 §5.1.2).
    #[error("attribute {0:?} applies to resources only")]
    ResourceOnly(&'static str),
    /// The thresholds contradict each other (§5.1.2: `lt` < `gt` and `lt` + 2·`st` < `gt`).
    #[error("inconsistent thresholds")]
    Inconsistent,
}

impl NotifyAttributes {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == NotifyAttributes::default()
    }

    /// `self` with every field that `specific` sets taken from it (inheritance, §5.1.2).
    pub fn overridden_by(self, specific: &NotifyAttributes) -> NotifyAttributes {
        NotifyAttributes {
            pmin: specific.pmin.or(self.pmin),
            pmax: specific.pmax.or(self.pmax),
            gt: specific.gt.or(self.gt),
            lt: specific.lt.or(self.lt),
            st: specific.st.or(self.st),
            epmin: specific.epmin.or(self.epmin),
            epmax: specific.epmax.or(self.epmax),
        }
    }

    /// Applies the query of a Write-Attributes request to `self`: `name=value` sets, a bare
    /// `name` unsets (§5.1.2). On error `self` is unchanged.
    pub fn apply_query(&mut self, path: &Path, query: &[String]) -> Result<(), AttributeError> {
        let mut next = *self;
        for arg in query {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg.as_str(), None),
            };
            let parsed = match value {
                None => Attributes::default(),
                Some(v) => Attributes::from_params(&[(name.to_owned(), Some(v.to_owned()))])
                    .map_err(|_| AttributeError::InvalidValue(name.to_owned()))?,
            };
            match name.to_ascii_lowercase().as_str() {
                "pmin" => next.pmin = parsed.pmin,
                "pmax" => next.pmax = parsed.pmax,
                "epmin" => next.epmin = parsed.epmin,
                "epmax" => next.epmax = parsed.epmax,
                "gt" => next.gt = parsed.gt,
                "lt" => next.lt = parsed.lt,
                "st" => next.st = parsed.st,
                _ => return Err(AttributeError::NotWritable(name.to_owned())),
            }
        }
        if path.depth() < 3 {
            for (name, set) in [("gt", next.gt), ("lt", next.lt), ("st", next.st)] {
                if set.is_some() {
                    return Err(AttributeError::ResourceOnly(name));
                }
            }
        }
        if let (Some(lt), Some(gt)) = (next.lt, next.gt)
            && (lt >= gt || lt + 2.0 * next.st.unwrap_or(0.0) >= gt)
        {
            return Err(AttributeError::Inconsistent);
        }
        if next.st.is_some_and(|st| st < 0.0) {
            return Err(AttributeError::Inconsistent);
        }
        *self = next;
        Ok(())
    }

    /// Whether a change from `previous` (the value last notified) to `current` is to be
    /// notified: without thresholds every change is; with them, crossing `gt` or `lt` (either
    /// way) or moving by at least `st` is (§5.1.2).
    pub fn change_is_notable(&self, previous: Option<f64>, current: Option<f64>) -> bool {
        let (Some(prev), Some(cur)) = (previous, current) else {
            return true;
        };
        if self.gt.is_none() && self.lt.is_none() && self.st.is_none() {
            return true;
        }
        self.gt.is_some_and(|gt| (prev > gt) != (cur > gt))
            || self.lt.is_some_and(|lt| (prev < lt) != (cur < lt))
            || self.st.is_some_and(|st| (cur - prev).abs() >= st)
    }

    /// The typed link attributes, for Discover.
    pub fn to_attributes(&self) -> Attributes {
        Attributes {
            pmin: self.pmin,
            pmax: self.pmax,
            gt: self.gt,
            lt: self.lt,
            st: self.st,
            epmin: self.epmin,
            epmax: self.epmax,
            ..Attributes::default()
        }
    }
}

/// Attributes per path, sorted by path (few entries per client: a plain sorted `Vec`).
#[derive(Clone, Debug, Default)]
pub(crate) struct AttributeTable {
    entries: Vec<(Path, NotifyAttributes)>,
}

impl AttributeTable {
    /// The attributes set on exactly `path`.
    pub(crate) fn get(&self, path: &Path) -> NotifyAttributes {
        self.entries
            .binary_search_by(|(p, _)| p.cmp(path))
            .ok()
            .and_then(|at| self.entries.get(at))
            .map(|(_, a)| *a)
            .unwrap_or_default()
    }

    /// Stores `attrs` for `path` (removing the entry when nothing is set).
    pub(crate) fn set(&mut self, path: Path, attrs: NotifyAttributes) {
        match self.entries.binary_search_by(|(p, _)| p.cmp(&path)) {
            Ok(at) if attrs.is_empty() => {
                self.entries.remove(at);
            }
            Ok(at) => {
                if let Some(entry) = self.entries.get_mut(at) {
                    entry.1 = attrs;
                }
            }
            Err(_) if attrs.is_empty() => {}
            Err(at) => self.entries.insert(at, (path, attrs)),
        }
    }

    /// The attributes in force at `path`: `base` (the server's default periods) overridden by
    /// those of the object, the instance, the resource and the resource instance on the way down.
    pub(crate) fn effective(&self, path: &Path, base: NotifyAttributes) -> NotifyAttributes {
        let mut out = base;
        for depth in 1..=path.depth() {
            let ids = path.ids();
            if let Some(level) = ids.get(..depth).and_then(Path::from_ids) {
                out = out.overridden_by(&self.get(&level));
            }
        }
        out
    }

    /// Forgets the attributes at and below `path` (the instance was deleted).
    pub(crate) fn remove_under(&mut self, path: &Path) {
        self.entries.retain(|(p, _)| !path.contains(p));
    }

    /// How many paths carry attributes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn q(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn query_sets_and_unsets() {
        let path = Path::Resource(3, 0, 9);
        let mut a = NotifyAttributes::default();
        a.apply_query(&path, &q(&["pmin=10", "pmax=60", "gt=50", "st=2"]))
            .unwrap();
        assert_eq!(a.pmin, Some(10));
        assert_eq!(a.pmax, Some(60));
        assert_eq!(a.gt, Some(50.0));
        a.apply_query(&path, &q(&["gt"])).unwrap();
        assert_eq!(a.gt, None);
        assert_eq!(a.st, Some(2.0));
    }

    #[test]
    fn query_refusals_leave_attributes_unchanged() {
        let path = Path::Instance(3, 0);
        let mut a = NotifyAttributes::default();
        a.apply_query(&path, &q(&["pmin=5"])).unwrap();
        let before = a;
        for bad in [
            &["dim=3"][..],
            &["pmin=abc"],
            &["gt=5"],
            &["ver=1.0"],
            &["pmin=-1"],
        ] {
            assert!(a.apply_query(&path, &q(bad)).is_err(), "{bad:?}");
            assert_eq!(a, before);
        }
        let res = Path::Resource(3, 0, 9);
        let mut b = NotifyAttributes::default();
        assert_eq!(
            b.apply_query(&res, &q(&["lt=10", "gt=5"])),
            Err(AttributeError::Inconsistent)
        );
        assert_eq!(
            b.apply_query(&res, &q(&["lt=10", "gt=20", "st=5"])),
            Err(AttributeError::Inconsistent)
        );
        b.apply_query(&res, &q(&["lt=10", "gt=20", "st=4"]))
            .unwrap();
    }

    #[test]
    fn inheritance_more_specific_wins() {
        let mut t = AttributeTable::default();
        t.set(
            Path::Object(3),
            NotifyAttributes {
                pmin: Some(1),
                pmax: Some(100),
                ..Default::default()
            },
        );
        t.set(
            Path::Resource(3, 0, 9),
            NotifyAttributes {
                pmax: Some(30),
                ..Default::default()
            },
        );
        let base = NotifyAttributes {
            pmin: Some(0),
            pmax: Some(1000),
            ..Default::default()
        };
        let e = t.effective(&Path::Resource(3, 0, 9), base);
        assert_eq!((e.pmin, e.pmax), (Some(1), Some(30)));
        let e = t.effective(&Path::Resource(3, 0, 1), base);
        assert_eq!((e.pmin, e.pmax), (Some(1), Some(100)));
        let e = t.effective(&Path::Resource(4, 0, 1), base);
        assert_eq!((e.pmin, e.pmax), (Some(0), Some(1000)));
        t.set(Path::Object(3), NotifyAttributes::default());
        assert_eq!(t.len(), 1);
        t.remove_under(&Path::Instance(3, 0));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn thresholds_decide_notability() {
        let none = NotifyAttributes::default();
        assert!(none.change_is_notable(Some(1.0), Some(1.0)));
        let gt = NotifyAttributes {
            gt: Some(50.0),
            ..Default::default()
        };
        assert!(!gt.change_is_notable(Some(10.0), Some(20.0)));
        assert!(gt.change_is_notable(Some(10.0), Some(60.0)));
        assert!(gt.change_is_notable(Some(60.0), Some(10.0)));
        let lt = NotifyAttributes {
            lt: Some(5.0),
            ..Default::default()
        };
        assert!(lt.change_is_notable(Some(10.0), Some(4.0)));
        assert!(!lt.change_is_notable(Some(10.0), Some(6.0)));
        let st = NotifyAttributes {
            st: Some(2.0),
            ..Default::default()
        };
        assert!(!st.change_is_notable(Some(10.0), Some(11.5)));
        assert!(st.change_is_notable(Some(10.0), Some(12.0)));
        assert!(st.change_is_notable(None, Some(12.0)));
    }
}
