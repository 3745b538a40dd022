//! Fuzzes LwM2M path parsing (TS Core 1.1 §6.1 / §7): never panics, parse(display(p)) == p, and
//! the path helpers agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwm2m_objects::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let segments: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    let _ = Path::from_segments(&segments);
    let Ok(path) = text.parse::<Path>() else {
        return;
    };

    let shown = path.to_string();
    assert_eq!(
        shown.parse::<Path>(),
        Ok(path),
        "{text:?} displayed as {shown:?}"
    );
    assert_eq!(Path::from_ids(&path.ids()), Some(path));
    assert_eq!(Path::from_segments(&path.segments()), Ok(path));
    assert_eq!(path.ids().len(), path.depth());
    if let Some(parent) = path.parent() {
        assert!(parent.contains(&path));
        assert_eq!(parent.depth() + 1, path.depth());
    }
    if let Some(child) = path.child(0) {
        assert!(path.contains(&child));
        assert_eq!(child.parent(), Some(path));
    }
});
