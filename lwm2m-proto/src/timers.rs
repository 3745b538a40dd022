//! A timer queue shared by the CoAP endpoint and the LwM2M server: at most one deadline per
//! timer key, ordered by time, so `poll_timeout` is the first entry and cancelling is exact (no
//! stale wake-ups pile up).

use std::collections::BTreeSet;
use std::hash::Hash;
use std::time::Instant;

use rustc_hash::FxHashMap;

/// Deadlines keyed by `K`, one per key. Keys must be IDs of our own (registrations, requests,
/// tickets), never something from the network: they are hashed with the fast, unkeyed Fx hash.
/// (A sent message's retransmission deadline, keyed by the peer's address, is kept with the
/// message instead: `CoapEndpoint::sent_due`.)
pub(crate) struct Timers<K: Ord + Hash + Copy> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: FxHashMap<K, Instant>,
}

impl<K: Ord + Hash + Copy> std::fmt::Debug for Timers<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("armed", &self.by_key.len())
            .field("next", &self.by_time.first().map(|(at, _)| at))
            .finish()
    }
}

impl<K: Ord + Hash + Copy> Timers<K> {
    pub(crate) fn new() -> Timers<K> {
        Timers {
            by_time: BTreeSet::new(),
            by_key: FxHashMap::default(),
        }
    }

    /// Sets (or moves) the deadline of `key`.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key, at) {
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    pub(crate) fn cancel(&mut self, key: K) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns a key whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Bytes held, estimated: the hash table as allocated plus B-tree entries at a typical
    /// two-thirds node fill.
    pub(crate) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, Instant)>();
        self.by_key.capacity() * (entry + 1) + self.by_time.len() * entry * 3 / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn set_move_cancel_pop() {
        let t0 = Instant::now();
        let mut t: Timers<u8> = Timers::new();
        t.set(1u8, t0 + Duration::from_secs(5));
        t.set(2u8, t0 + Duration::from_secs(3));
        t.set(1u8, t0 + Duration::from_secs(1)); // moved earlier
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(4)), Some(1));
        t.cancel(2);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(10)), None);
        assert_eq!(t.len(), 0);
    }
}
