//! Counters a [`DtlsServer`](crate::DtlsServer) keeps for the server's metrics exporter.

/// Server counters. Monotonic counters only grow; the two gauges (`sessions`,
/// `handshakes_in_progress`) are current values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DtlsStats {
    /// Datagrams passed to `handle_datagram`.
    pub datagrams_received: u64,
    /// HelloVerifyRequests sent (stateless; one per ClientHello without a valid cookie).
    pub hello_verify_requests: u64,
    /// ClientHellos whose cookie had a valid MAC but had expired (answered with a new cookie).
    pub expired_cookies: u64,
    /// ClientHellos carrying a cookie we did not mint for them (answered with a new cookie).
    pub invalid_cookies: u64,
    /// Handshakes started (cookie verified, rtc-dtls connection created).
    pub handshakes_started: u64,
    /// Handshakes that produced a session.
    pub handshakes_completed: u64,
    /// Handshakes that failed, by reason.
    pub handshakes_failed: HandshakeFailures,
    /// Datagrams dropped without any state change, by reason.
    pub dropped: DroppedDatagrams,
    /// Sessions closed by the peer's close_notify.
    pub peer_closes: u64,
    /// Sessions closed for inactivity.
    pub idle_expirations: u64,
    /// Sessions replaced by a new handshake from the same address (client restart).
    pub replaced_same_address: u64,
    /// Sessions replaced by the same identity connecting from another address (NAT rebinding).
    pub replaced_moved: u64,
    /// Sessions evicted because the session table was full.
    pub evictions: u64,
    /// Handshakes abandoned because the handshake table was full (also in
    /// `handshakes_failed.evicted`).
    pub handshakes_evicted: u64,
    /// Sessions closed by `close`.
    pub local_closes: u64,
    /// Times an address reached `max_handshake_failures` and was refused for a window.
    pub rate_limit_blocks: u64,
    /// Failure counts forgotten because `max_failure_addresses` was reached.
    pub failure_table_evictions: u64,
    /// Gauge: established sessions.
    pub sessions: usize,
    /// Gauge: handshakes in progress.
    pub handshakes_in_progress: usize,
}

/// Failed handshakes by reason (see [`HandshakeFailure`](crate::HandshakeFailure)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeFailures {
    /// Timed out or ran out of retransmissions.
    pub timeout: u64,
    /// Wrong key for a known identity.
    pub bad_key: u64,
    /// Unknown identity.
    pub unknown_identity: u64,
    /// The peer aborted with an alert.
    pub peer_aborted: u64,
    /// Other protocol errors.
    pub protocol: u64,
    /// Superseded by a newer handshake from the same address.
    pub superseded: u64,
    /// Internal errors.
    pub internal: u64,
    /// Abandoned (the oldest) to make room in a full handshake table.
    pub evicted: u64,
}

/// Datagrams dropped by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedDatagrams {
    /// From an address without a session or handshake, and not a ClientHello.
    pub not_client_hello: u64,
    /// Looked like a ClientHello but was malformed, fragmented or not DTLS 1.2.
    pub malformed_client_hello: u64,
    /// A valid cookie but message_seq other than 1 (only a client that received two
    /// HelloVerifyRequests sends that; it will retry from scratch).
    pub unexpected_message_sequence: u64,
    /// A new handshake would have exceeded `max_handshakes` and no handshake in progress was old
    /// enough to evict.
    pub handshake_table_full: u64,
    /// A ClientHello from an address refused for too many failed handshakes.
    pub rate_limited: u64,
    /// A repeat of the ClientHello that opened the current session (network duplicate).
    pub duplicate_client_hello: u64,
    /// A record of an established session that rtc-dtls rejected (bad MAC, forged or corrupt);
    /// silently discarded as RFC 6347 §4.1.2.7 asks, the session stays up.
    pub invalid_records: u64,
}
