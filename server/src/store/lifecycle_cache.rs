//! The lifecycle states that [`Store::lifecycle_states`](super::Store::lifecycle_states) has
//! read, remembered for the next request to the same devices: every device-management request
//! checks its device's lifecycle first, and on SQLite that check cost about 2 µs of the sqlx
//! worker's CPU per device of a fleet read, a tenth of the whole read.
//!
//! Every state change goes through [`Store::transition`](super::Store::transition) or the first
//! registration's activation in `apply_lwm2m_writes`, and both call [`LifecycleCache::forget`]
//! once they have committed. On SQLite this process is the database's one writer of device
//! states, so that is all. A PostgreSQL database may be shared by several nodes: there both
//! writes also `pg_notify` the change in their transaction, and `lifecycle_follow.rs` forgets
//! the cache on every notification; the cache is off whenever that listener is not listening
//! (until it is first, after a lost connection).
//!
//! A read that raced a change must not put the old state back: [`LifecycleCache::lookup`] hands
//! out the generation it saw, and [`LifecycleCache::fill`] keeps what the query found only if no
//! [`LifecycleCache::forget`] came in between. A forget that comes after the fill removes it.
//! Devices absent from the registry are not remembered (a device created later is then found).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::fleet::lifecycle::LifecycleState;

/// Past this many devices the cache starts again empty: a bound on its memory (about 60 B per
/// device), far above the fleets one SQLite file carries.
const MAX_DEVICES: usize = 1 << 20;

#[derive(Debug, Default)]
pub(super) struct LifecycleCache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Bumped by every [`LifecycleCache::forget`].
    generation: u64,
    /// Off: every lookup goes to the database (PostgreSQL while nobody listens for changes).
    enabled: bool,
    states: foldhash::HashMap<Box<str>, LifecycleState>,
}

impl Inner {
    /// Empty again; fills handed an older generation are dropped.
    fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.states.clear();
    }
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            generation: 0,
            enabled: true,
            states: foldhash::HashMap::default(),
        }
    }
}

/// What [`LifecycleCache::lookup`] saw: the generation to hand back to
/// [`LifecycleCache::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Generation(u64);

impl LifecycleCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the remembered states of `endpoints` into `found` and returns the endpoints it does
    /// not know (to be read from the database), with the generation to fill them under.
    pub(super) fn lookup<'a>(
        &self,
        endpoints: &[&'a str],
        found: &mut HashMap<String, LifecycleState>,
    ) -> (Vec<&'a str>, Generation) {
        let inner = self.inner();
        if !inner.enabled {
            return (endpoints.to_vec(), Generation(inner.generation));
        }
        let mut unknown = Vec::new();
        for &endpoint in endpoints {
            match inner.states.get(endpoint) {
                Some(&state) => {
                    found.insert(endpoint.to_owned(), state);
                }
                None => unknown.push(endpoint),
            }
        }
        (unknown, Generation(inner.generation))
    }

    /// Remembers states read from the database, unless a change was committed since the
    /// `lookup` that handed out `seen` (the rows may be older than that change).
    pub(super) fn fill<'a>(
        &self,
        seen: Generation,
        states: impl IntoIterator<Item = (&'a str, LifecycleState)>,
    ) {
        let mut inner = self.inner();
        if inner.generation != seen.0 || !inner.enabled {
            return;
        }
        for (endpoint, state) in states {
            if inner.states.len() >= MAX_DEVICES {
                inner.states.clear();
            }
            inner.states.insert(endpoint.into(), state);
        }
    }

    /// Forgets everything: called after every committed state change (they are rare; a
    /// per-device forget would not be simpler to get right).
    pub(super) fn forget(&self) {
        self.inner().reset();
    }

    /// A cache that starts off (PostgreSQL, until its listener listens).
    pub(super) fn off() -> LifecycleCache {
        let cache = LifecycleCache::default();
        cache.inner().enabled = false;
        cache
    }

    /// Turns the cache on or off; either way it starts again empty, and fills that began
    /// before are dropped.
    pub(super) fn set_enabled(&self, enabled: bool) {
        let mut inner = self.inner();
        inner.reset();
        inner.enabled = enabled;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_filled_and_reports_the_rest() {
        let cache = LifecycleCache::default();
        let mut found = HashMap::new();
        let (unknown, seen) = cache.lookup(&["a", "b"], &mut found);
        assert_eq!(unknown, ["a", "b"]);
        assert!(found.is_empty());
        cache.fill(seen, [("a", LifecycleState::Active)]);

        let (unknown, _) = cache.lookup(&["a", "b", "a"], &mut found);
        assert_eq!(
            unknown,
            ["b"],
            "b was absent from the registry: not remembered"
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found.get("a"), Some(&LifecycleState::Active));
    }

    #[test]
    fn a_fill_that_raced_a_change_is_dropped() {
        let cache = LifecycleCache::default();
        let mut found = HashMap::new();
        let (_, seen) = cache.lookup(&["a"], &mut found);
        // The device is suspended while its old state is being read.
        cache.forget();
        cache.fill(seen, [("a", LifecycleState::Active)]);
        let (unknown, seen) = cache.lookup(&["a"], &mut found);
        assert_eq!(unknown, ["a"], "the stale state was not kept");

        // A fill that lands before the change's forget is removed by it.
        cache.fill(seen, [("a", LifecycleState::Active)]);
        cache.forget();
        let (unknown, _) = cache.lookup(&["a"], &mut found);
        assert_eq!(unknown, ["a"]);
    }

    #[test]
    fn an_off_cache_remembers_nothing_and_turning_it_on_drops_older_fills() {
        let cache = LifecycleCache::off();
        let mut found = HashMap::new();
        let (unknown, seen) = cache.lookup(&["a"], &mut found);
        cache.fill(seen, [("a", LifecycleState::Active)]);
        let (unknown_again, _) = cache.lookup(&["a"], &mut found);
        assert_eq!((unknown, unknown_again), (vec!["a"], vec!["a"]));
        // A fill that began while off is not kept once on.
        let (_, before) = cache.lookup(&["a"], &mut found);
        cache.set_enabled(true);
        cache.fill(before, [("a", LifecycleState::Active)]);
        let (unknown, seen) = cache.lookup(&["a"], &mut found);
        assert_eq!(unknown, ["a"]);
        cache.fill(seen, [("a", LifecycleState::Active)]);
        assert!(cache.lookup(&["a"], &mut found).0.is_empty());
        cache.set_enabled(false);
        let mut fresh = HashMap::new();
        assert_eq!(cache.lookup(&["a"], &mut fresh).0, ["a"]);
        assert!(fresh.is_empty());
    }

    #[test]
    fn the_cache_starts_again_past_its_bound() {
        let cache = LifecycleCache::default();
        let names: Vec<String> = (0..MAX_DEVICES + 1).map(|i| format!("m-{i}")).collect();
        let (_, seen) = cache.lookup(&[], &mut HashMap::new());
        cache.fill(
            seen,
            names.iter().map(|n| (n.as_str(), LifecycleState::Active)),
        );
        assert_eq!(cache.inner().states.len(), 1);
    }
}
