//! Observe notification ordering (RFC 7641 §3.4): whether a notification is newer than the last
//! one delivered, using the 24-bit sequence window and the 128-second rule.

use std::time::{Duration, Instant};

/// After this long, any notification is considered newer (RFC 7641 §3.4: the sequence number may
/// have wrapped or the server restarted).
pub const OBSERVE_FRESHNESS_WINDOW: Duration = Duration::from_secs(128);

/// RFC 7641 §3.4: notification (v2, t2) is fresher than (v1, t1) if
/// `(V1 < V2 and V2 - V1 < 2^23) or (V1 > V2 and V1 - V2 > 2^23) or (T2 > T1 + 128 s)`.
/// Values are 24-bit; higher bits are ignored.
pub fn is_fresher(v1: u32, t1: Instant, v2: u32, t2: Instant) -> bool {
    const HALF: u32 = 1 << 23;
    let (v1, v2) = (v1 & 0x00FF_FFFF, v2 & 0x00FF_FFFF);
    (v1 < v2 && v2 - v1 < HALF)
        || (v1 > v2 && v1 - v2 > HALF)
        || t2
            .checked_duration_since(t1)
            .is_some_and(|d| d > OBSERVE_FRESHNESS_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_window_and_time_rule() {
        let t = Instant::now();
        assert!(is_fresher(5, t, 6, t));
        assert!(!is_fresher(6, t, 5, t)); // reordered: older
        assert!(!is_fresher(6, t, 6, t)); // duplicate
        assert!(is_fresher(0xFF_FFFF, t, 0, t)); // wrap-around
        assert!(!is_fresher(0, t, 0x90_0000, t)); // more than 2^23 ahead: treated as older
        assert!(is_fresher(6, t, 5, t + Duration::from_secs(129))); // 128-second rule
        assert!(!is_fresher(6, t, 5, t + Duration::from_secs(128)));
    }
}
