//! Login rate limiting: token buckets per user name and per client address, in memory (one
//! server process; with several nodes each limits on its own, which still bounds guessing).
//!
//! Every login attempt takes a token from both buckets *before* the password is checked, so
//! parallel requests cannot slip past the limit; a successful login gives the user's token back.
//! An empty bucket answers 429 with the time until the next token. A bucket that has refilled is
//! forgotten, so memory holds only recent failures, and a cap bounds it even under a flood of
//! distinct names (then new keys are refused: failing closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// How many failures a bucket absorbs at once, and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketPolicy {
    pub burst: u32,
    pub refill_every: Duration,
}

/// Five tries per user name, then one per minute: an online guesser gets ~1,440 a day per name.
pub const PER_USER: BucketPolicy = BucketPolicy {
    burst: 5,
    refill_every: Duration::from_secs(60),
};
/// Twenty tries per address (an office of operators behind one NAT), then one per 15 s.
pub const PER_SOURCE: BucketPolicy = BucketPolicy {
    burst: 20,
    refill_every: Duration::from_secs(15),
};
/// Most buckets kept; beyond it, attempts under new keys are refused until some refill.
pub const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Source(String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left, in thousandths (integer arithmetic, no float drift).
    millitokens: u64,
    updated: DateTime<Utc>,
}

/// Too many recent failures: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header (at least 1).
    pub fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    per_user: BucketPolicy,
    per_source: BucketPolicy,
    max_buckets: usize,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl Default for LoginLimiter {
    fn default() -> LoginLimiter {
        LoginLimiter::new(PER_USER, PER_SOURCE, MAX_BUCKETS)
    }
}

/// IPv6 clients usually own a whole /64: limit the prefix, not each of its 2^64 addresses.
fn source_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(per_user: BucketPolicy, per_source: BucketPolicy, max_buckets: usize) -> Self {
        LoginLimiter {
            per_user,
            per_source,
            max_buckets,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn policy(&self, key: &Key) -> BucketPolicy {
        match key {
            Key::User(_) => self.per_user,
            Key::Source(_) => self.per_source,
        }
    }

    /// The bucket's tokens at `now` (refilled since its last update), capped at the burst.
    fn level(policy: BucketPolicy, bucket: Option<&Bucket>, now: DateTime<Utc>) -> u64 {
        let full = u64::from(policy.burst) * 1000;
        let Some(bucket) = bucket else { return full };
        let elapsed = (now - bucket.updated).to_std().unwrap_or(Duration::ZERO);
        let refill_ms = policy.refill_every.as_millis().max(1);
        let earned = elapsed.as_millis().saturating_mul(1000) / refill_ms;
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        bucket.millitokens.saturating_add(earned).min(full)
    }

    /// Takes one attempt from the user's and the source's buckets, or says how long to wait.
    /// `user` is compared case-insensitively; an unknown source shares one bucket.
    pub fn acquire(
        &self,
        user: &str,
        source: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), RetryAfter> {
        let keys = [
            Key::User(user.to_lowercase()),
            Key::Source(source.map_or_else(|| "unknown".to_owned(), source_key)),
        ];
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        let mut levels = [0u64; 2];
        for (level, key) in levels.iter_mut().zip(&keys) {
            let policy = self.policy(key);
            *level = Self::level(policy, buckets.get(key), now);
            if *level < 1000 {
                let missing = u32::try_from(1000 - *level).unwrap_or(1000);
                wait = wait.max(policy.refill_every * missing / 1000);
            }
        }
        if wait > Duration::ZERO {
            return Err(RetryAfter(wait));
        }
        let new_keys = keys.iter().filter(|k| !buckets.contains_key(*k)).count();
        if buckets.len() + new_keys > self.max_buckets {
            self.forget_full(&mut buckets, now);
            if buckets.len() + new_keys > self.max_buckets {
                tracing::warn!(
                    buckets = buckets.len(),
                    "login rate limiter is full: refusing attempts under new names or addresses"
                );
                return Err(RetryAfter(self.per_user.refill_every));
            }
        }
        for (key, level) in keys.into_iter().zip(levels) {
            buckets.insert(
                key,
                Bucket {
                    millitokens: level - 1000,
                    updated: now,
                },
            );
        }
        Ok(())
    }

    /// A successful login: the user's failures are forgiven (the source's are not, or one valid
    /// account would reset the limit for guessing others from the same address).
    pub fn succeeded(&self, user: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.remove(&Key::User(user.to_lowercase()));
    }

    /// Drops buckets that have refilled completely: they carry no information.
    fn forget_full(&self, buckets: &mut HashMap<Key, Bucket>, now: DateTime<Utc>) {
        buckets.retain(|key, bucket| {
            let policy = self.policy(key);
            Self::level(policy, Some(bucket), now) < u64::from(policy.burst) * 1000
        });
    }

    /// Buckets held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_user_gets_its_burst_then_one_try_per_refill() {
        let limiter = LoginLimiter::default();
        for _ in 0..5 {
            assert!(limiter.acquire("alice", ip("10.0.0.1"), at(0)).is_ok());
        }
        let wait = limiter.acquire("Alice", ip("10.0.0.2"), at(0)).unwrap_err();
        assert_eq!(wait.seconds(), 60, "names are compared case-insensitively");
        assert_eq!(
            limiter
                .acquire("alice", ip("10.0.0.1"), at(30))
                .unwrap_err()
                .seconds(),
            30
        );
        assert!(limiter.acquire("alice", ip("10.0.0.1"), at(60)).is_ok());
        assert!(limiter.acquire("alice", ip("10.0.0.1"), at(60)).is_err());
        // Another user from the same address is not affected (the source still has tokens).
        assert!(limiter.acquire("bob", ip("10.0.0.1"), at(60)).is_ok());
    }

    #[test]
    fn a_source_is_limited_across_user_names() {
        let limiter = LoginLimiter::default();
        for n in 0..20 {
            assert!(
                limiter
                    .acquire(&format!("user{n}"), ip("192.0.2.7"), at(0))
                    .is_ok()
            );
        }
        let wait = limiter
            .acquire("user99", ip("192.0.2.7"), at(0))
            .unwrap_err();
        assert_eq!(wait.seconds(), 15);
        assert!(limiter.acquire("user99", ip("192.0.2.8"), at(0)).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_64_prefix() {
        let limiter = LoginLimiter::default();
        for n in 0..20 {
            let addr = format!("2001:db8:1:2::{n:x}");
            assert!(limiter.acquire(&format!("u{n}"), ip(&addr), at(0)).is_ok());
        }
        assert!(
            limiter
                .acquire("u99", ip("2001:db8:1:2:ffff::1"), at(0))
                .is_err()
        );
        assert!(limiter.acquire("u99", ip("2001:db8:1:3::1"), at(0)).is_ok());
    }

    #[test]
    fn success_forgives_the_user_but_not_the_source() {
        let limiter = LoginLimiter::default();
        for _ in 0..5 {
            limiter.acquire("alice", ip("10.0.0.1"), at(0)).unwrap();
        }
        assert!(limiter.acquire("alice", ip("10.0.0.1"), at(0)).is_err());
        limiter.succeeded("alice");
        assert!(limiter.acquire("alice", ip("10.0.0.1"), at(0)).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_refilled_buckets_are_forgotten() {
        let limiter = LoginLimiter::new(PER_USER, PER_SOURCE, 4);
        assert!(limiter.acquire("a", ip("10.0.0.1"), at(0)).is_ok());
        assert!(limiter.acquire("b", ip("10.0.0.2"), at(0)).is_ok());
        assert_eq!(limiter.len(), 4);
        assert!(
            limiter.acquire("c", ip("10.0.0.3"), at(1)).is_err(),
            "full of fresh failures: new keys are refused"
        );
        // After a minute every bucket has refilled and can be dropped.
        assert!(limiter.acquire("c", ip("10.0.0.3"), at(61)).is_ok());
        assert_eq!(limiter.len(), 2);
    }
}
