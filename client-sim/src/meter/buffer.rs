//! Store-and-forward: the readings a meter has produced and the server has not yet acknowledged,
//! in a bounded buffer. When it is full the oldest reading that is not on the wire is evicted
//! (and counted); the ones on the wire stay until their outcome is known, so a reading is never
//! both evicted and acknowledged.

use std::collections::VecDeque;

use super::dynamics::Reading;

/// Unacknowledged readings, oldest first; the first `in_flight` are being delivered.
#[derive(Debug, Clone, Default)]
pub struct ReadingBuffer {
    items: VecDeque<Reading>,
    in_flight: u16,
    evicted: u32,
}

impl ReadingBuffer {
    /// An empty buffer (allocates on first use).
    pub fn new() -> ReadingBuffer {
        ReadingBuffer::default()
    }

    /// Adds `reading`; if that makes more than `capacity` readings, evicts the oldest one not
    /// in flight and returns it. `capacity` is at least one more than the largest batch (the
    /// fleet configuration checks it), so there is always such a reading.
    pub fn push(&mut self, reading: Reading, capacity: usize) -> Option<Reading> {
        self.items.push_back(reading);
        if self.items.len() <= capacity.max(1) {
            return None;
        }
        let victim = usize::from(self.in_flight).min(self.items.len() - 1);
        let evicted = self.items.remove(victim);
        if evicted.is_some() {
            self.evicted = self.evicted.saturating_add(1);
        }
        evicted
    }

    /// Marks up to `max` of the oldest readings as in flight and returns them. Nothing when a
    /// delivery is already under way.
    pub fn start_batch(&mut self, max: usize) -> &[Reading] {
        if self.in_flight > 0 {
            return &[];
        }
        let n = max.min(self.items.len()).min(usize::from(u16::MAX));
        self.in_flight = n as u16;
        self.items.make_contiguous();
        let (front, _) = self.items.as_slices();
        front.get(..n).unwrap_or(&[])
    }

    /// The readings in flight.
    pub fn in_flight(&self) -> impl Iterator<Item = &Reading> {
        self.items.iter().take(usize::from(self.in_flight))
    }

    /// Every reading held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Reading> {
        self.items.iter()
    }

    /// How many readings are in flight.
    pub fn in_flight_len(&self) -> usize {
        usize::from(self.in_flight)
    }

    /// The batch was acknowledged: removes and returns it.
    pub fn acknowledge(&mut self) -> Vec<Reading> {
        let n = usize::from(self.in_flight);
        self.in_flight = 0;
        let acked: Vec<Reading> = self.items.drain(..n.min(self.items.len())).collect();
        // Give back the memory a long outage took.
        if self.items.capacity() > 64 && self.items.len() < self.items.capacity() / 4 {
            self.items.shrink_to(self.items.len() * 2);
        }
        acked
    }

    /// The batch failed: it stays at the front, to be sent again.
    pub fn fail(&mut self) {
        self.in_flight = 0;
    }

    /// Readings held (in flight included).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Readings evicted so far.
    pub fn evicted(&self) -> u32 {
        self.evicted
    }

    /// The oldest reading held.
    pub fn front(&self) -> Option<&Reading> {
        self.items.front()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn reading(seq: u32) -> Reading {
        Reading {
            seq,
            time: 900 * i64::from(seq),
            active_kwh: f64::from(seq),
            reactive_kvarh: 0.0,
            power_kw: 0.0,
            power_factor: 1.0,
        }
    }

    #[test]
    fn evicts_oldest_first_and_counts() {
        let mut b = ReadingBuffer::new();
        for seq in 0..5 {
            assert_eq!(b.push(reading(seq), 3).map(|r| r.seq), seq.checked_sub(3));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.evicted(), 2);
        assert_eq!(b.front().map(|r| r.seq), Some(2));
    }

    #[test]
    fn readings_in_flight_are_never_evicted() {
        let mut b = ReadingBuffer::new();
        for seq in 0..4 {
            b.push(reading(seq), 4);
        }
        let batch: Vec<u32> = b.start_batch(2).iter().map(|r| r.seq).collect();
        assert_eq!(batch, [0, 1]);
        // Full: the oldest not in flight (2) goes.
        assert_eq!(b.push(reading(4), 4).map(|r| r.seq), Some(2));
        assert_eq!(b.push(reading(5), 4).map(|r| r.seq), Some(3));
        let acked: Vec<u32> = b.acknowledge().iter().map(|r| r.seq).collect();
        assert_eq!(acked, [0, 1]);
        let rest: Vec<u32> = b.start_batch(10).iter().map(|r| r.seq).collect();
        assert_eq!(rest, [4, 5]);
    }

    #[test]
    fn a_failed_batch_is_sent_again_in_order() {
        let mut b = ReadingBuffer::new();
        for seq in 0..3 {
            b.push(reading(seq), 10);
        }
        assert_eq!(b.start_batch(2).len(), 2);
        assert!(b.start_batch(2).is_empty(), "one batch at a time");
        b.fail();
        let again: Vec<u32> = b.start_batch(5).iter().map(|r| r.seq).collect();
        assert_eq!(again, [0, 1, 2]);
        assert_eq!(b.in_flight_len(), 3);
        assert_eq!(b.acknowledge().len(), 3);
        assert!(b.is_empty());
    }

    #[test]
    fn memory_is_given_back_after_a_long_outage() {
        let mut b = ReadingBuffer::new();
        for seq in 0..2000 {
            b.push(reading(seq), 4000);
        }
        while !b.is_empty() {
            b.start_batch(100);
            b.acknowledge();
        }
        assert!(b.items.capacity() <= 64, "{}", b.items.capacity());
    }
}
