//! The simulated clock: maps real time (what the protocol runs on) to simulated time (what the
//! meters live in: reading timestamps, lifetimes, outages, reboot rhythms) at a fixed speed.
//!
//! Two clocks, because they serve different masters: CoAP retransmissions and DTLS flights must
//! follow the real network (a server answers in real milliseconds, whatever the speed), while a
//! month of readings must fit in minutes. The LwM2M client and DTLS engines get real `Instant`s;
//! everything the meter model decides is in simulated Unix seconds.

use std::time::{Duration, Instant};

/// Real ↔ simulated time at `speed` simulated seconds per real second.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    real_start: Instant,
    sim_start: f64,
    speed: f64,
}

impl SimClock {
    /// A clock whose simulated time is `sim_start` (Unix seconds) at `real_start`.
    /// `speed` below 1e-6 is raised to that (the clock must advance).
    pub fn new(real_start: Instant, sim_start: f64, speed: f64) -> SimClock {
        SimClock {
            real_start,
            sim_start,
            speed: speed.max(1e-6),
        }
    }

    /// Simulated seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Simulated Unix time at the start.
    pub fn sim_start(&self) -> f64 {
        self.sim_start
    }

    /// The real instant the clock started.
    pub fn real_start(&self) -> Instant {
        self.real_start
    }

    /// Simulated Unix seconds at real instant `now`.
    pub fn sim(&self, now: Instant) -> f64 {
        let real = now.saturating_duration_since(self.real_start).as_secs_f64();
        self.sim_start + real * self.speed
    }

    /// The real instant at which simulated time reaches `sim` (the start for earlier times).
    pub fn real(&self, sim: f64) -> Instant {
        let real = ((sim - self.sim_start) / self.speed).max(0.0);
        // Ten years of real time is beyond any run; keeps `Instant` arithmetic from overflowing.
        let real = real.min(10.0 * 365.0 * 86_400.0);
        self.real_start + Duration::from_secs_f64(real)
    }

    /// A simulated span as real time.
    pub fn real_span(&self, sim_seconds: f64) -> Duration {
        Duration::from_secs_f64((sim_seconds / self.speed).clamp(0.0, 10.0 * 365.0 * 86_400.0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_hour_per_second() {
        let t0 = Instant::now();
        let c = SimClock::new(t0, 1_700_000_000.0, 3600.0);
        assert_eq!(c.sim(t0), 1_700_000_000.0);
        assert_eq!(c.sim(t0 + Duration::from_secs(2)), 1_700_007_200.0);
        assert_eq!(c.real(1_700_003_600.0), t0 + Duration::from_secs(1));
        // Before the start maps to the start.
        assert_eq!(c.real(1_600_000_000.0), t0);
        assert_eq!(c.real_span(900.0), Duration::from_millis(250));
    }

    #[test]
    fn real_and_sim_round_trip() {
        let t0 = Instant::now();
        let c = SimClock::new(t0, 1_000.0, 1.0);
        let t = t0 + Duration::from_millis(12_345);
        let back = c.real(c.sim(t));
        let diff = if back > t { back - t } else { t - back };
        assert!(diff < Duration::from_micros(1));
    }
}
