//! Transmission parameters (RFC 7252 §4.8) and the memory bounds of a [`super::CoapEndpoint`].

use std::time::Duration;

/// Configuration of a [`super::CoapEndpoint`]. `CoapConfig::default()` gives the RFC 7252 §4.8
/// defaults and bounds sized for a server handling many devices.
#[derive(Clone, Debug, PartialEq)]
pub struct CoapConfig {
    /// ACK_TIMEOUT (RFC 7252 §4.8): initial retransmission timeout lower bound. Default 2 s.
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR: the initial timeout is uniform in
    /// [ack_timeout, ack_timeout × ack_random_factor]. Default 1.5.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT: retransmissions of a Confirmable message before giving up. Default 4.
    pub max_retransmit: u32,
    /// NSTART (§4.7): outstanding interactions per peer; more requests queue. Default 1.
    pub nstart: usize,
    /// EXCHANGE_LIFETIME (§4.8.2): how long a message ID is remembered for deduplication.
    /// Default 247 s.
    pub exchange_lifetime: Duration,
    /// NON_LIFETIME (§4.8.2): how long a sent Non-confirmable message can be matched by a RST.
    /// Default 145 s.
    pub non_lifetime: Duration,
    /// Length of the tokens we generate, 0–8 bytes (§5.3.1). With short tokens a collision with a
    /// token still in use for the same peer makes the endpoint use a longer one. Default 4.
    pub token_length: usize,
    /// How long to wait for a separate response after an Empty ACK. Default 247 s
    /// (EXCHANGE_LIFETIME).
    pub separate_response_timeout: Duration,
    /// How long to wait for the response to a Non-confirmable request. Default 93 s
    /// (MAX_TRANSMIT_WAIT).
    pub non_response_timeout: Duration,
    /// If the application has not answered a Confirmable request within this delay, send an
    /// Empty ACK and later a separate Confirmable response (§5.2.2). `None`: always piggyback
    /// (the requester may retransmit meanwhile; duplicates are absorbed). Default 1 s, below
    /// ACK_TIMEOUT so the requester does not retransmit.
    pub empty_ack_delay: Option<Duration>,
    /// An incoming request the application has not answered after this long is forgotten.
    /// Default 247 s.
    pub pending_request_timeout: Duration,
    /// Block size exponent for bodies we send and for blocks we ask for (RFC 7959 §2.2:
    /// 2^(szx+4) bytes). Default 6 (1024 bytes, RFC 7252 §4.6 keeps datagrams under 1152).
    pub block_szx: u8,
    /// Largest body reassembled from blocks, either direction (RFC 7959). A larger Block2
    /// response fails the request; a larger Block1 request is answered 4.13. Default 16 MiB.
    pub max_body_size: usize,
    /// Hard cap on remembered (peer, message ID) pairs for deduplication; beyond it the oldest
    /// are forgotten first. Default 16 384.
    pub max_dedup_entries: usize,
    /// Hard cap on incoming requests waiting for the application's answer; beyond it requests are
    /// answered 5.03. Default 4096.
    pub max_pending_requests: usize,
    /// Hard cap on concurrent incoming Block1 reassemblies; the oldest is dropped. Default 64.
    pub max_block1_assemblies: usize,
    /// Hard cap on the bytes held by all Block1 reassemblies together. Default 64 MiB.
    pub max_block1_bytes: usize,
    /// Hard cap on cached block-wise responses (served without asking the application again).
    /// Default 64.
    pub max_block2_cache_entries: usize,
    /// Hard cap on the bytes held by the Block2 response cache. Default 64 MiB.
    pub max_block2_cache_bytes: usize,
    /// Per-peer state (message ID counters) is kept for idle peers up to this many peers.
    /// Default 100 000.
    pub max_peer_states: usize,
}

impl Default for CoapConfig {
    fn default() -> CoapConfig {
        CoapConfig {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            nstart: 1,
            exchange_lifetime: Duration::from_secs(247),
            non_lifetime: Duration::from_secs(145),
            token_length: 4,
            separate_response_timeout: Duration::from_secs(247),
            non_response_timeout: Duration::from_secs(93),
            empty_ack_delay: Some(Duration::from_secs(1)),
            pending_request_timeout: Duration::from_secs(247),
            block_szx: 6,
            max_body_size: 16 * 1024 * 1024,
            max_dedup_entries: 16_384,
            max_pending_requests: 4096,
            max_block1_assemblies: 64,
            max_block1_bytes: 64 * 1024 * 1024,
            max_block2_cache_entries: 64,
            max_block2_cache_bytes: 64 * 1024 * 1024,
            max_peer_states: 100_000,
        }
    }
}

impl CoapConfig {
    /// MAX_TRANSMIT_SPAN (§4.8.2): ACK_TIMEOUT × (2^MAX_RETRANSMIT − 1) × ACK_RANDOM_FACTOR.
    pub fn max_transmit_span(&self) -> Duration {
        let factor = (2f64.powi(self.max_retransmit.min(30) as i32) - 1.0) * self.ack_random_factor;
        self.ack_timeout.mul_f64(factor.max(0.0))
    }

    /// MAX_TRANSMIT_WAIT (§4.8.2): ACK_TIMEOUT × (2^(MAX_RETRANSMIT + 1) − 1) × ACK_RANDOM_FACTOR,
    /// the longest a Confirmable request can wait for its ACK (93 s with the defaults).
    pub fn max_transmit_wait(&self) -> Duration {
        let factor =
            (2f64.powi(self.max_retransmit.min(30) as i32 + 1) - 1.0) * self.ack_random_factor;
        self.ack_timeout.mul_f64(factor.max(0.0))
    }

    /// The configured block size exponent, clamped to the valid 0..=6.
    pub(crate) fn szx(&self) -> u8 {
        self.block_szx.min(6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_times_match_rfc7252_table() {
        // RFC 7252 §4.8.2: MAX_TRANSMIT_SPAN 45 s, MAX_TRANSMIT_WAIT 93 s with the defaults.
        let c = CoapConfig::default();
        assert_eq!(c.max_transmit_span(), Duration::from_secs(45));
        assert_eq!(c.max_transmit_wait(), Duration::from_secs(93));
    }
}
