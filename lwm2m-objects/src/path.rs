//! LwM2M paths (OMA LwM2M TS Core 1.1 §6.1 / §7): `/`, `/3`, `/3/0`, `/3/0/7`, `/3/0/7/1`.
//!
//! Each ID is a 16-bit unsigned integer; 65535 is reserved (TS Core §7.1: "MAX_ID"), so valid IDs
//! are 0..=65534.

use std::fmt;
use std::str::FromStr;

/// The largest ID an object, instance, resource or resource instance may have (65535 is reserved).
pub const MAX_ID: u16 = 65534;

/// A path into the LwM2M object tree, from the root down to a resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// `/`: every object (Discover, Bootstrap-Delete, Read-Composite of everything).
    Root,
    /// `/{object}`
    Object(u16),
    /// `/{object}/{instance}`
    Instance(u16, u16),
    /// `/{object}/{instance}/{resource}`
    Resource(u16, u16, u16),
    /// `/{object}/{instance}/{resource}/{resource instance}`
    ResourceInstance(u16, u16, u16, u16),
}

/// Why a text could not be read as a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {path:?} must start with '/'")]
    NoLeadingSlash { path: String },
    #[error("path {path:?} has an empty segment at byte {offset}")]
    EmptySegment { path: String, offset: usize },
    #[error("path {path:?}: segment {segment:?} at byte {offset} is not a decimal ID")]
    NotANumber {
        path: String,
        segment: String,
        offset: usize,
    },
    #[error("path {path:?}: ID {id} at byte {offset} is above the maximum {MAX_ID}")]
    IdTooLarge {
        path: String,
        id: u32,
        offset: usize,
    },
    #[error(
        "path {path:?} has {depth} segments; at most 4 (object/instance/resource/resource instance)"
    )]
    TooDeep { path: String, depth: usize },
}

impl Path {
    /// Builds a path from up to four IDs, the way they appear in a URI or a TLV tree.
    ///
    /// Returns `None` when there are more than four or an ID is above [`MAX_ID`].
    pub fn from_ids(ids: &[u16]) -> Option<Path> {
        if ids.iter().any(|&id| id > MAX_ID) {
            return None;
        }
        Some(match *ids {
            [] => Path::Root,
            [o] => Path::Object(o),
            [o, i] => Path::Instance(o, i),
            [o, i, r] => Path::Resource(o, i, r),
            [o, i, r, ri] => Path::ResourceInstance(o, i, r, ri),
            _ => return None,
        })
    }

    /// The IDs of this path, outermost first (empty for the root).
    pub fn ids(&self) -> Vec<u16> {
        match *self {
            Path::Root => vec![],
            Path::Object(o) => vec![o],
            Path::Instance(o, i) => vec![o, i],
            Path::Resource(o, i, r) => vec![o, i, r],
            Path::ResourceInstance(o, i, r, ri) => vec![o, i, r, ri],
        }
    }

    /// How many segments the path has: 0 for the root, 4 for a resource instance.
    pub fn depth(&self) -> usize {
        match self {
            Path::Root => 0,
            Path::Object(..) => 1,
            Path::Instance(..) => 2,
            Path::Resource(..) => 3,
            Path::ResourceInstance(..) => 4,
        }
    }

    /// The object ID, unless this is the root.
    pub fn object_id(&self) -> Option<u16> {
        match *self {
            Path::Root => None,
            Path::Object(o)
            | Path::Instance(o, _)
            | Path::Resource(o, _, _)
            | Path::ResourceInstance(o, _, _, _) => Some(o),
        }
    }

    /// The object instance ID, for paths at instance depth or deeper.
    pub fn instance_id(&self) -> Option<u16> {
        match *self {
            Path::Instance(_, i) | Path::Resource(_, i, _) | Path::ResourceInstance(_, i, _, _) => {
                Some(i)
            }
            _ => None,
        }
    }

    /// The resource ID, for paths at resource depth or deeper.
    pub fn resource_id(&self) -> Option<u16> {
        match *self {
            Path::Resource(_, _, r) | Path::ResourceInstance(_, _, r, _) => Some(r),
            _ => None,
        }
    }

    /// The resource instance ID, for resource-instance paths.
    pub fn resource_instance_id(&self) -> Option<u16> {
        match *self {
            Path::ResourceInstance(_, _, _, ri) => Some(ri),
            _ => None,
        }
    }

    /// The path one level down, `None` if this is already a resource instance or `id` > [`MAX_ID`].
    pub fn child(&self, id: u16) -> Option<Path> {
        let mut ids = self.ids();
        ids.push(id);
        Path::from_ids(&ids)
    }

    /// The path one level up; the root's parent is `None`.
    pub fn parent(&self) -> Option<Path> {
        let ids = self.ids();
        match ids.split_last() {
            None => None,
            Some((_, rest)) => Path::from_ids(rest),
        }
    }

    /// Whether `other` is this path or lies below it.
    pub fn contains(&self, other: &Path) -> bool {
        let mine = self.ids();
        let theirs = other.ids();
        theirs.len() >= mine.len() && theirs[..mine.len()] == mine[..]
    }

    /// The URI path segments for a CoAP request (`["3", "0", "7"]`); empty for the root.
    pub fn segments(&self) -> Vec<String> {
        self.ids().iter().map(u16::to_string).collect()
    }

    /// Reads a path from CoAP Uri-Path segments (each segment a decimal ID).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Path, PathError> {
        let mut text = String::new();
        for s in segments {
            text.push('/');
            text.push_str(s.as_ref());
        }
        if text.is_empty() {
            return Ok(Path::Root);
        }
        text.parse()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Path::Root = self {
            return f.write_str("/");
        }
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = PathError;

    /// Parses `/`, `/3`, `/3/0`, `/3/0/7` or `/3/0/7/1`. A trailing slash is not allowed except for
    /// the root; IDs are plain decimal digits (no sign, no spaces) up to [`MAX_ID`].
    fn from_str(text: &str) -> Result<Path, PathError> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| PathError::NoLeadingSlash {
                path: text.to_owned(),
            })?;
        if rest.is_empty() {
            return Ok(Path::Root);
        }
        let mut ids = [0u16; 4];
        let mut depth = 0;
        let mut offset = 1;
        for segment in rest.split('/') {
            if depth == 4 {
                return Err(PathError::TooDeep {
                    path: text.to_owned(),
                    depth: rest.split('/').count(),
                });
            }
            if segment.is_empty() {
                return Err(PathError::EmptySegment {
                    path: text.to_owned(),
                    offset,
                });
            }
            if segment.len() > 5 || !segment.bytes().all(|b| b.is_ascii_digit()) {
                // More than five digits can only be out of range or junk; either way say what it is.
                if segment.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PathError::IdTooLarge {
                        path: text.to_owned(),
                        id: u32::MAX,
                        offset,
                    });
                }
                return Err(PathError::NotANumber {
                    path: text.to_owned(),
                    segment: segment.to_owned(),
                    offset,
                });
            }
            // At most five ASCII digits: always fits in u32.
            let id: u32 = segment
                .bytes()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
            if id > u32::from(MAX_ID) {
                return Err(PathError::IdTooLarge {
                    path: text.to_owned(),
                    id,
                    offset,
                });
            }
            ids[depth] = id as u16;
            depth += 1;
            offset += segment.len() + 1;
        }
        // depth is 1..=4 here and every ID was range-checked above.
        Path::from_ids(&ids[..depth]).ok_or(PathError::TooDeep {
            path: text.to_owned(),
            depth,
        })
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_depth() {
        assert_eq!("/".parse::<Path>(), Ok(Path::Root));
        assert_eq!("/3".parse::<Path>(), Ok(Path::Object(3)));
        assert_eq!("/3/0".parse::<Path>(), Ok(Path::Instance(3, 0)));
        assert_eq!("/3/0/7".parse::<Path>(), Ok(Path::Resource(3, 0, 7)));
        assert_eq!(
            "/3/0/7/1".parse::<Path>(),
            Ok(Path::ResourceInstance(3, 0, 7, 1))
        );
        assert_eq!(
            "/65534/65534".parse::<Path>(),
            Ok(Path::Instance(65534, 65534))
        );
    }

    #[test]
    fn rejects_malformed_paths_with_position() {
        assert!(matches!(
            "3/0".parse::<Path>(),
            Err(PathError::NoLeadingSlash { .. })
        ));
        assert!(matches!(
            "/3//7".parse::<Path>(),
            Err(PathError::EmptySegment { offset: 3, .. })
        ));
        assert!(matches!(
            "/3/0/".parse::<Path>(),
            Err(PathError::EmptySegment { offset: 5, .. })
        ));
        assert!(matches!(
            "/3/x".parse::<Path>(),
            Err(PathError::NotANumber { offset: 3, .. })
        ));
        assert!(matches!(
            "/3/-1".parse::<Path>(),
            Err(PathError::NotANumber { .. })
        ));
        assert!(matches!(
            "/3/+1".parse::<Path>(),
            Err(PathError::NotANumber { .. })
        ));
        assert!(matches!(
            "/65535".parse::<Path>(),
            Err(PathError::IdTooLarge {
                id: 65535,
                offset: 1,
                ..
            })
        ));
        assert!(matches!(
            "/99999999999".parse::<Path>(),
            Err(PathError::IdTooLarge { .. })
        ));
        assert!(matches!(
            "/1/2/3/4/5".parse::<Path>(),
            Err(PathError::TooDeep { depth: 5, .. })
        ));
        assert!(matches!(
            "".parse::<Path>(),
            Err(PathError::NoLeadingSlash { .. })
        ));
    }

    #[test]
    fn relations() {
        let p: Path = "/3/0/7".parse().unwrap();
        assert_eq!(p.parent(), Some(Path::Instance(3, 0)));
        assert_eq!(p.child(1), Some(Path::ResourceInstance(3, 0, 7, 1)));
        assert_eq!(Path::ResourceInstance(3, 0, 7, 1).child(0), None);
        assert!(Path::Object(3).contains(&p));
        assert!(!Path::Object(4).contains(&p));
        assert!(Path::Root.contains(&p));
        assert_eq!(p.segments(), vec!["3", "0", "7"]);
        assert_eq!(Path::from_segments(&["3", "0"]), Ok(Path::Instance(3, 0)));
        assert_eq!(Path::from_segments::<&str>(&[]), Ok(Path::Root));
    }

    fn any_path() -> impl Strategy<Value = Path> {
        proptest::collection::vec(0..=MAX_ID, 0..=4).prop_map(|ids| Path::from_ids(&ids).unwrap())
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(p in any_path()) {
            prop_assert_eq!(p.to_string().parse::<Path>(), Ok(p));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Path>();
        }
    }
}
