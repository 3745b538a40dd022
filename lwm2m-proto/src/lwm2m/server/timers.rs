//! The server's own timer queue (registration lifetimes, queued-request expiry, unanswered
//! Register tickets): one deadline per key, ordered by time, so `poll_timeout` is the first entry
//! and cancelling is exact.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Deadlines keyed by `K`, one per key.
#[derive(Debug)]
pub(super) struct Timers<K: Ord + Hash + Copy> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K: Ord + Hash + Copy> Timers<K> {
    pub(super) fn new() -> Timers<K> {
        Timers {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }

    /// Sets (or moves) the deadline of `key`.
    pub(super) fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key, at) {
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    pub(super) fn cancel(&mut self, key: K) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns a key whose deadline is at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some(key)
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Bytes held, estimated: the hash table as allocated plus B-tree entries at a typical
    /// two-thirds node fill.
    pub(super) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, Instant)>();
        self.by_key.capacity() * (entry + 1) + self.by_time.len() * entry * 3 / 2
    }
}

/// A small deterministic PRNG (xorshift64*, Vigna 2014) for registration IDs. The caller seeds
/// it: tests replay exactly; in production the seed must be unpredictable, because on NoSec a
/// registration ID is what keeps another host from updating or de-registering a device.
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        // 0 is a fixed point of xorshift.
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn set_move_cancel_pop() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set(1u8, t0 + Duration::from_secs(5));
        t.set(2u8, t0 + Duration::from_secs(3));
        t.set(1u8, t0 + Duration::from_secs(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(4)), Some(1));
        t.cancel(2);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(10)), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..3).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..3).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(xs[0], xs[1]);
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
