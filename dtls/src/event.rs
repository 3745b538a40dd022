//! What the server and the client report: sessions opening and closing, decrypted application
//! data, and handshake failures, each with the peer's authenticated PSK identity.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A PSK identity (RFC 4279 §2). Identities travel in clear, so they may be logged; cloning is
/// cheap (shared bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PskIdentity(Arc<[u8]>);

impl PskIdentity {
    /// Wraps identity bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self(Arc::from(bytes))
    }

    /// The identity bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The identity as text, if it is UTF-8 (LwM2M endpoint names usually are).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// What [`Display`](fmt::Display) writes, as a `String`, without the formatting machinery
    /// for printable identities (once per received record on the socket's hot path).
    pub fn to_text(&self) -> String {
        match self.printable() {
            Some(text) => text.to_owned(),
            None => self.to_string(),
        }
    }

    /// The identity as text when it is UTF-8 without control characters (else it is shown in hex).
    fn printable(&self) -> Option<&str> {
        self.as_str()
            .filter(|text| !text.chars().any(char::is_control))
    }
}

impl fmt::Display for PskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.printable() {
            Some(text) => f.write_str(text),
            None => self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}")),
        }
    }
}

impl fmt::Debug for PskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PskIdentity({self})")
    }
}

/// Why an established session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent close_notify (RFC 5246 §7.2.1).
    PeerClosed,
    /// No authenticated application data arrived for the idle timeout.
    IdleTimeout,
    /// The same address completed a cookie exchange for a new handshake: the client restarted
    /// (RFC 6347 §4.2.8).
    Replaced,
    /// The same identity completed a handshake from another address (NAT rebinding, or the
    /// device moved); the new session's `Connected` names this address in `replaced`.
    MovedTo(SocketAddr),
    /// The session table was full and this was the least recently active session.
    Evicted,
    /// [`DtlsServer::close`](crate::DtlsServer::close) was called.
    ClosedLocally,
}

/// Why a handshake did not produce a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The handshake did not complete in time (or rtc-dtls ran out of retransmissions).
    Timeout,
    /// The client's Finished did not verify under the key for the identity it claimed: a wrong key.
    BadKey,
    /// The claimed identity is not in the [`PskStore`](crate::PskStore). The peer cannot tell
    /// this from [`BadKey`](Self::BadKey): it sees the same alert.
    UnknownIdentity,
    /// The peer sent an alert or close_notify during the handshake.
    PeerAborted,
    /// Anything else rtc-dtls rejected (no common cipher suite, malformed flight, …).
    Protocol,
    /// A new ClientHello with a valid cookie from the same address started over.
    Superseded,
    /// Our own machinery failed (see the logs); should not happen.
    Internal,
    /// The handshake table was full and this was the oldest handshake, abandoned for a new one
    /// ([`DtlsServerConfig::max_handshakes`](crate::DtlsServerConfig::max_handshakes)).
    Evicted,
}

impl HandshakeFailure {
    /// Whether this failure counts towards the address's rate limit
    /// ([`DtlsServerConfig::max_handshake_failures`](crate::DtlsServerConfig::max_handshake_failures)):
    /// everything the client caused; not a newer hello replacing the handshake, an eviction from a
    /// full table, nor our own errors.
    pub fn counts_against_the_address(self) -> bool {
        !matches!(self, Self::Superseded | Self::Internal | Self::Evicted)
    }
}

/// What a [`DtlsServer`](crate::DtlsServer) reports, in order.
///
/// Every `Connected` is followed, eventually, by exactly one `Closed` for the same peer address;
/// `Data` only comes between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsEvent {
    /// A handshake completed.
    Connected {
        /// The client's address.
        peer: SocketAddr,
        /// The PSK identity the client authenticated with.
        identity: PskIdentity,
        /// The address this identity was connected from until now, if elsewhere (NAT rebinding);
        /// that session has just been closed (`Closed { reason: MovedTo(peer) }` precedes this).
        replaced: Option<SocketAddr>,
    },
    /// Decrypted application data from an established session.
    Data {
        /// The client's address.
        peer: SocketAddr,
        /// The session's authenticated PSK identity.
        identity: PskIdentity,
        /// The plaintext (one DTLS record's worth).
        bytes: Vec<u8>,
    },
    /// An established session ended.
    Closed {
        /// The client's address.
        peer: SocketAddr,
        /// The session's PSK identity.
        identity: PskIdentity,
        /// Why.
        reason: CloseReason,
    },
    /// A handshake failed; no session was created. For logs and audit: the peer is not told more
    /// than a generic alert.
    HandshakeFailed {
        /// The client's address.
        peer: SocketAddr,
        /// The identity the client claimed, if it got that far (unauthenticated).
        claimed_identity: Option<PskIdentity>,
        /// Why.
        reason: HandshakeFailure,
    },
}

/// What a [`DtlsClient`](crate::DtlsClient) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake completed; `send` works from now on.
    Connected {
        /// The server's address.
        server: SocketAddr,
    },
    /// Decrypted application data from the server.
    Data {
        /// The plaintext.
        bytes: Vec<u8>,
    },
    /// The connection ended (or never came up). No further events follow.
    Closed {
        /// Why.
        reason: ClientCloseReason,
    },
}

/// Why a [`DtlsClient`](crate::DtlsClient) connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCloseReason {
    /// The handshake failed or timed out (a wrong key shows up as a failure or a timeout, depending
    /// on which alert the server sends).
    HandshakeFailed,
    /// The server sent close_notify.
    PeerClosed,
    /// [`DtlsClient::close`](crate::DtlsClient::close) was called.
    ClosedLocally,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_display_as_text_or_hex() {
        assert_eq!(
            PskIdentity::new(b"urn:imei:123").to_string(),
            "urn:imei:123"
        );
        assert_eq!(PskIdentity::new(&[0xde, 0xad, 0x0a]).to_string(), "dead0a");
        assert_eq!(PskIdentity::new(b"a\nb").to_string(), "610a62");
        assert_eq!(format!("{:?}", PskIdentity::new(b"m")), "PskIdentity(m)");
    }

    #[test]
    fn to_text_is_what_display_writes() {
        for bytes in [
            &b"urn:imei:123"[..],
            &[0xde, 0xad, 0x0a],
            b"a\nb",
            b"",
            "\u{e9}t\u{e9}".as_bytes(),
        ] {
            let identity = PskIdentity::new(bytes);
            assert_eq!(identity.to_text(), identity.to_string(), "{bytes:?}");
        }
    }
}
