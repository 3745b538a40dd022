//! Per-address rate limiting of failed handshakes, and throttled log lines for bounds being hit.
//!
//! A client that keeps failing handshakes (wrong key, unknown identity, handshakes it abandons) is
//! refused further ClientHellos for a while, so it cannot keep the server busy with full
//! handshakes. The limit is per source *address* (IP and port), not per IP: LwM2M meters often sit
//! behind carrier-grade NAT, thousands of them sharing one public IP, and a per-IP limit would let
//! one misconfigured meter lock out all its neighbours. The cookie exchange (RFC 6347 §4.2.1)
//! already makes a flooder prove each address it uses, and the handshake table bound caps what all
//! of them together can hold.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Counted; the address is still allowed.
    Counted,
    /// This failure reached the limit: the address is refused until the window ends.
    Blocked,
    /// Counted after evicting the oldest entry of a full table.
    CountedAfterEviction,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// End of the counting window, or of the block once `failures` reached the limit.
    until: Instant,
}

/// Failed-handshake counts per address, bounded and self-expiring.
#[derive(Debug)]
pub(super) struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    max_entries: usize,
    entries: HashMap<SocketAddr, Entry>,
    by_expiry: BTreeSet<(Instant, SocketAddr)>,
}

impl FailureLimiter {
    pub(super) fn new(max_failures: u32, window: Duration, max_entries: usize) -> Self {
        Self {
            max_failures,
            window,
            max_entries,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Forgets entries whose window has ended.
    fn purge(&mut self, now: Instant) {
        while let Some(&(until, peer)) = self.by_expiry.first() {
            if until > now {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&peer);
        }
    }

    /// Whether `peer` has used up its failures for now.
    pub(super) fn is_blocked(&mut self, now: Instant, peer: SocketAddr) -> bool {
        self.purge(now);
        self.entries
            .get(&peer)
            .is_some_and(|entry| entry.failures >= self.max_failures)
    }

    /// Counts one failed handshake of `peer`.
    pub(super) fn record_failure(&mut self, now: Instant, peer: SocketAddr) -> Recorded {
        self.purge(now);
        let mut evicted = false;
        let entry = match self.entries.get(&peer).copied() {
            Some(entry) => {
                self.by_expiry.remove(&(entry.until, peer));
                entry
            }
            None => {
                if self.entries.len() >= self.max_entries
                    && let Some((_, oldest)) = self.by_expiry.pop_first()
                {
                    self.entries.remove(&oldest);
                    evicted = true;
                }
                Entry {
                    failures: 0,
                    until: now + self.window,
                }
            }
        };
        let failures = entry.failures.saturating_add(1);
        let blocked = failures >= self.max_failures;
        // The block lasts a full window from the failure that triggered it.
        let until = if blocked && entry.failures < self.max_failures {
            now + self.window
        } else {
            entry.until
        };
        self.entries.insert(peer, Entry { failures, until });
        self.by_expiry.insert((until, peer));
        match (blocked && entry.failures < self.max_failures, evicted) {
            (true, _) => Recorded::Blocked,
            (false, true) => Recorded::CountedAfterEviction,
            (false, false) => Recorded::Counted,
        }
    }

    /// Addresses tracked.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Addresses currently refused.
    pub(super) fn blocked(&self) -> usize {
        self.entries
            .values()
            .filter(|entry| entry.failures >= self.max_failures)
            .count()
    }

    pub(super) fn is_consistent(&self) -> bool {
        self.entries.len() == self.by_expiry.len() && self.entries.len() <= self.max_entries
    }
}

/// How often at most one kind of bound-hit line is logged; the lines in between are counted and
/// the count is reported with the next one.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A log line that fires at most once per [`LOG_INTERVAL`], so a flood that keeps hitting a bound
/// produces a few lines a minute, not one per datagram.
#[derive(Debug, Default)]
pub(super) struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    /// `Some(lines suppressed since the last one)` if a line may be logged now.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 7], port))
    }

    #[test]
    fn blocks_after_the_limit_for_a_window_then_forgets() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        assert_eq!(limiter.record_failure(t0, addr(1)), Recorded::Counted);
        assert_eq!(limiter.record_failure(t0, addr(1)), Recorded::Counted);
        assert!(!limiter.is_blocked(t0, addr(1)));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(limiter.record_failure(t1, addr(1)), Recorded::Blocked);
        assert!(limiter.is_blocked(t1, addr(1)));
        assert!(
            !limiter.is_blocked(t1, addr(2)),
            "other ports are not affected"
        );
        assert_eq!(limiter.blocked(), 1);
        // The block runs a full window from the failure that triggered it.
        assert!(limiter.is_blocked(t1 + Duration::from_secs(59), addr(1)));
        assert!(!limiter.is_blocked(t1 + Duration::from_secs(60), addr(1)));
        assert_eq!(limiter.len(), 0, "expired entries are gone");
        assert!(limiter.is_consistent());
    }

    #[test]
    fn failures_spread_over_windows_never_block() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::new(3, Duration::from_secs(10), 100);
        for n in 0..10 {
            let now = t0 + Duration::from_secs(6 * n);
            assert_ne!(limiter.record_failure(now, addr(1)), Recorded::Blocked);
            assert!(!limiter.is_blocked(now, addr(1)));
        }
    }

    #[test]
    fn the_table_is_bounded_by_evicting_the_oldest() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::new(2, Duration::from_secs(60), 3);
        for port in 1..=3 {
            limiter.record_failure(t0 + Duration::from_secs(u64::from(port)), addr(port));
        }
        assert_eq!(
            limiter.record_failure(t0 + Duration::from_secs(4), addr(4)),
            Recorded::CountedAfterEviction
        );
        assert_eq!(limiter.len(), 3);
        assert!(limiter.is_consistent());
        // addr(1) was the oldest: its count starts again.
        assert_eq!(
            limiter.record_failure(t0 + Duration::from_secs(5), addr(1)),
            Recorded::CountedAfterEviction
        );
        assert_eq!(
            limiter.record_failure(t0 + Duration::from_secs(5), addr(4)),
            Recorded::Blocked
        );
    }

    #[test]
    fn throttled_lines_fire_once_per_interval_and_count_the_rest() {
        let t0 = Instant::now();
        let mut line = Throttled::default();
        assert_eq!(line.allow(t0), Some(0));
        assert_eq!(line.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(line.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(line.allow(t0 + Duration::from_secs(10)), Some(2));
    }
}
