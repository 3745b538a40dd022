//! A small deterministic PRNG (xorshift64*) for tokens, initial message IDs, retransmission
//! jitter and registration IDs. On NoSec a registration ID is what keeps another host from
//! updating or de-registering a device, so production seeds must be unpredictable. The caller seeds it, so simulations and tests replay exactly; tokens are only a weak
//! defence against off-path spoofing (RFC 7252 §5.3.1), DTLS is the real one.

/// xorshift64* (Vigna 2014). Not cryptographic.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed`; 0 (a fixed point of xorshift) is replaced by a constant.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(bytes.get(..n).unwrap_or(&[]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_spread() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        let f = Rng::new(0).next_f64();
        assert!((0.0..1.0).contains(&f));
        let mut buf = [0u8; 5];
        Rng::new(7).fill(&mut buf);
        assert_ne!(buf, [0u8; 5]);
        // Seed 0 is a fixed point of xorshift and is replaced.
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
