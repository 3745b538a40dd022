//! Message deduplication (RFC 7252 §4.5): every Confirmable and Non-confirmable message received
//! is remembered by (peer, message ID) for EXCHANGE_LIFETIME, with the reply we sent to it, so a
//! duplicate is answered with the same bytes (CON) or dropped (NON) and processed only once.
//!
//! Memory is bounded by a hard cap: when full, the oldest entry is forgotten first. A duplicate
//! arriving after its entry was evicted is processed again, the failure mode RFC 7252 §4.5 accepts
//! for idempotent requests; the cap should be sized above (message rate × 247 s).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

type Key = (SocketAddr, u16);

#[derive(Debug)]
struct Entry {
    seq: u64,
    /// The datagram we answered with (ACK, piggybacked response or RST); `None` while no answer
    /// has been sent yet, or for NON messages.
    reply: Option<Vec<u8>>,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen<'a> {
    /// First time: the message was recorded and must be processed.
    New,
    /// A duplicate; replay this reply if any.
    Duplicate(Option<&'a [u8]>),
}

#[derive(Debug)]
pub(crate) struct DedupCache {
    map: foldhash::HashMap<Key, Entry>,
    /// Insertion order: (seq, expiry, key). An entry is live if the map holds the same seq.
    order: VecDeque<(u64, Instant, Key)>,
    next_seq: u64,
    lifetime: Duration,
    cap: usize,
}

impl DedupCache {
    pub(crate) fn new(lifetime: Duration, cap: usize) -> DedupCache {
        DedupCache {
            map: foldhash::HashMap::default(),
            order: VecDeque::new(),
            next_seq: 0,
            lifetime,
            cap: cap.max(1),
        }
    }

    /// Records (peer, mid) unless already present.
    pub(crate) fn check(&mut self, now: Instant, key: Key) -> Seen<'_> {
        self.purge(now);
        if self.map.contains_key(&key) {
            return Seen::Duplicate(self.map.get(&key).and_then(|e| e.reply.as_deref()));
        }
        while self.map.len() >= self.cap {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.map.insert(key, Entry { seq, reply: None });
        self.order.push_back((seq, now + self.lifetime, key));
        Seen::New
    }

    /// Stores the reply sent for (peer, mid), replayed to duplicates.
    pub(crate) fn set_reply(&mut self, key: Key, bytes: Vec<u8>) {
        if let Some(e) = self.map.get_mut(&key) {
            e.reply = Some(bytes);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn purge(&mut self, now: Instant) {
        while let Some(&(seq, expires, key)) = self.order.front() {
            let live = self.map.get(&key).is_some_and(|e| e.seq == seq);
            if live && expires > now {
                break;
            }
            self.order.pop_front();
            if live {
                self.map.remove(&key);
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((seq, _, key)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.seq == seq) {
                self.map.remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 5683))
    }

    #[test]
    fn duplicates_replay_and_expire() {
        let t0 = Instant::now();
        let mut d = DedupCache::new(Duration::from_secs(247), 10);
        assert_eq!(d.check(t0, (peer(), 1)), Seen::New);
        assert_eq!(d.check(t0, (peer(), 1)), Seen::Duplicate(None));
        d.set_reply((peer(), 1), vec![0x60, 0, 0, 1]);
        assert_eq!(
            d.check(t0, (peer(), 1)),
            Seen::Duplicate(Some(&[0x60, 0, 0, 1][..]))
        );
        // After EXCHANGE_LIFETIME the same message ID is new again.
        assert_eq!(
            d.check(t0 + Duration::from_secs(248), (peer(), 1)),
            Seen::New
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn cap_evicts_oldest() {
        let t0 = Instant::now();
        let mut d = DedupCache::new(Duration::from_secs(247), 3);
        for mid in 0..5u16 {
            assert_eq!(d.check(t0, (peer(), mid)), Seen::New);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.check(t0, (peer(), 4)), Seen::Duplicate(None));
        assert_eq!(d.check(t0, (peer(), 0)), Seen::New); // evicted, so seen as new
        assert!(d.order.len() <= 3 + 2);
    }
}
