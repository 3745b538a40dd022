//! Network faults injected between the meters and the server: loss, duplication and delay (which
//! reorders) of datagrams in either direction, NAT rebinding (a meter's source port changes), and
//! periods when the server cannot be reached at all.

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// What to inject. All rates are probabilities per datagram unless said otherwise.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// A datagram is lost.
    pub loss: f64,
    /// A datagram arrives twice.
    pub duplicate: f64,
    /// A datagram is held back (uniformly up to `delay_max`), so later ones overtake it.
    pub delay: f64,
    /// The longest hold.
    pub delay_max: Duration,
    /// Source-port changes per meter per simulated day.
    pub rebind_per_day: f64,
    /// Windows (start, duration), simulated seconds from the simulation start, in which every
    /// datagram to or from the server is lost.
    pub unreachable: Vec<(f64, f64)>,
}

impl FaultConfig {
    /// Whether any per-datagram fault is configured.
    pub fn any_datagram_fault(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.delay > 0.0 || !self.unreachable.is_empty()
    }

    /// Whether simulated time `sim` (seconds from the start) is in an unreachable window.
    pub fn unreachable_at(&self, sim_from_start: f64) -> bool {
        self.unreachable
            .iter()
            .any(|(s, d)| sim_from_start >= *s && sim_from_start < s + d)
    }
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered now, `copies` times (1, or 2 when duplicated).
    Deliver { copies: u8 },
    /// Delivered once, at this time.
    Delay(Instant),
    /// Gone.
    Lost,
}

/// Decides each datagram's fate.
pub fn fate(config: &FaultConfig, rng: &mut Rng, now: Instant, unreachable: bool) -> Fate {
    if unreachable || (config.loss > 0.0 && rng.chance(config.loss)) {
        return Fate::Lost;
    }
    if config.delay > 0.0 && rng.chance(config.delay) {
        return Fate::Delay(now + config.delay_max.mul_f64(rng.unit()));
    }
    if config.duplicate > 0.0 && rng.chance(config.duplicate) {
        return Fate::Deliver { copies: 2 };
    }
    Fate::Deliver { copies: 1 }
}

/// A held-back datagram.
#[derive(Debug)]
pub struct Delayed {
    /// When it goes.
    pub at: Instant,
    /// Tie-breaker keeping the heap order total.
    pub seq: u64,
    /// The meter (slot index in its worker).
    pub meter: u32,
    /// From the server to the meter (else the other way).
    pub inbound: bool,
    /// A firmware pull's datagram: the file server's address (it goes through the meter's
    /// download socket); `None` for the LwM2M server's path.
    pub download_peer: Option<SocketAddr>,
    /// The datagram.
    pub bytes: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fates_follow_the_rates() {
        let config = FaultConfig {
            loss: 0.1,
            duplicate: 0.05,
            delay: 0.05,
            delay_max: Duration::from_millis(100),
            ..FaultConfig::default()
        };
        let mut rng = Rng::new(4);
        let now = Instant::now();
        let (mut lost, mut dup, mut delayed) = (0, 0, 0);
        let n = 100_000;
        for _ in 0..n {
            match fate(&config, &mut rng, now, false) {
                Fate::Lost => lost += 1,
                Fate::Deliver { copies: 2 } => dup += 1,
                Fate::Delay(at) => {
                    assert!(at >= now && at <= now + Duration::from_millis(100));
                    delayed += 1;
                }
                Fate::Deliver { .. } => {}
            }
        }
        // 10 %, then 5 % of the 90 % left, then 5 % of the rest.
        assert!((9_500..10_500).contains(&lost), "{lost}");
        assert!((4_200..4_800).contains(&delayed), "{delayed}");
        assert!((3_900..4_600).contains(&dup), "{dup}");
        assert_eq!(fate(&config, &mut rng, now, true), Fate::Lost);
    }

    #[test]
    fn unreachable_windows() {
        let config = FaultConfig {
            unreachable: vec![(3600.0, 600.0)],
            ..FaultConfig::default()
        };
        assert!(!config.unreachable_at(3599.0));
        assert!(config.unreachable_at(3600.0));
        assert!(config.unreachable_at(4199.0));
        assert!(!config.unreachable_at(4200.0));
        assert!(config.any_datagram_fault());
    }
}
