//! Configuration: cipher suites, limits and timeouts for the server and the client, and the PSK
//! key lookup the server is given.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rtc_dtls::cipher_suite::CipherSuiteId;

/// The PSK cipher suites this crate negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655), mandatory for LwM2M PSK mode
    /// (OMA LwM2M TS Transport 1.1 §5.2.8.2 / RFC 7925 §4.2).
    PskAes128Ccm8,
    /// TLS_PSK_WITH_AES_128_CCM (RFC 6655): CCM with a 16-byte tag.
    PskAes128Ccm,
    /// TLS_PSK_WITH_AES_128_GCM_SHA256 (RFC 5487).
    PskAes128GcmSha256,
}

impl CipherSuite {
    /// Every suite, LwM2M's mandatory one first.
    pub const ALL: [CipherSuite; 3] = [
        Self::PskAes128Ccm8,
        Self::PskAes128Ccm,
        Self::PskAes128GcmSha256,
    ];

    pub(crate) fn id(self) -> CipherSuiteId {
        match self {
            Self::PskAes128Ccm8 => CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
            Self::PskAes128Ccm => CipherSuiteId::Tls_Psk_With_Aes_128_Ccm,
            Self::PskAes128GcmSha256 => CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
        }
    }

    pub(crate) fn from_id(id: CipherSuiteId) -> Option<Self> {
        Self::ALL.into_iter().find(|suite| suite.id() == id)
    }

    /// The IANA name, e.g. `TLS_PSK_WITH_AES_128_CCM_8`.
    pub fn iana_name(self) -> &'static str {
        match self {
            Self::PskAes128Ccm8 => "TLS_PSK_WITH_AES_128_CCM_8",
            Self::PskAes128Ccm => "TLS_PSK_WITH_AES_128_CCM",
            Self::PskAes128GcmSha256 => "TLS_PSK_WITH_AES_128_GCM_SHA256",
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iana_name())
    }
}

/// Where the server finds a device's pre-shared key.
///
/// Called synchronously from inside [`DtlsServer::handle_datagram`](crate::DtlsServer::handle_datagram),
/// once per handshake, with the identity the client sent in its ClientKeyExchange (RFC 4279 §2):
/// keep it an in-memory lookup (refreshed from the store elsewhere), never I/O.
pub trait PskStore: Send + Sync {
    /// The key for `identity`, or `None` if the identity is unknown. An unknown identity fails the
    /// handshake exactly like a wrong key (RFC 4279 §2 allows hiding it), so peers cannot probe
    /// which identities exist.
    fn key(&self, identity: &[u8]) -> Option<Vec<u8>>;
}

/// A fixed identity → key map, for tests, the simulator and small deployments.
#[derive(Clone, Default)]
pub struct InMemoryPskStore {
    keys: HashMap<Vec<u8>, Vec<u8>>,
}

impl InMemoryPskStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `identity`'s key.
    pub fn insert(&mut self, identity: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) {
        self.keys.insert(identity.into(), key.into());
    }

    /// Number of identities.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the store holds no identity.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl PskStore for InMemoryPskStore {
    fn key(&self, identity: &[u8]) -> Option<Vec<u8>> {
        self.keys.get(identity).cloned()
    }
}

impl fmt::Debug for InMemoryPskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identities are public (they travel in clear); keys never leave this type.
        f.debug_struct("InMemoryPskStore")
            .field("identities", &self.keys.len())
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// Limits and timeouts of a [`DtlsServer`](crate::DtlsServer).
#[derive(Debug, Clone)]
pub struct DtlsServerConfig {
    /// Suites the server accepts; the client's order of preference decides among them.
    pub cipher_suites: Vec<CipherSuite>,
    /// A handshake not complete this long after its cookie was verified is abandoned.
    pub handshake_timeout: Duration,
    /// A session with no authenticated application data from the client for this long is closed
    /// (LwM2M queue-mode devices sleep and re-handshake when they wake).
    pub idle_timeout: Duration,
    /// Most established sessions; when a new one completes beyond this, the least recently
    /// active session is evicted.
    pub max_sessions: usize,
    /// Most handshakes in progress (cookie verified, not yet complete); further ClientHellos are
    /// dropped until one finishes.
    pub max_handshakes: usize,
    /// How long a HelloVerifyRequest cookie stays valid.
    pub cookie_lifetime: Duration,
    /// Interval between handshake flight retransmissions (rtc-dtls retransmits at a fixed
    /// interval, up to 7 times).
    pub retransmit_interval: Duration,
    /// Largest datagram the handshake writes (rtc-dtls fragments flights to fit).
    pub mtu: usize,
    /// Failed handshakes (wrong key, unknown identity, protocol error, timeout, abort) one source
    /// address (IP and port) may have within [`handshake_failure_window`](Self::handshake_failure_window);
    /// at the limit its ClientHellos are dropped for a full window.
    pub max_handshake_failures: u32,
    /// The window failed handshakes are counted in, and how long an address is refused once it
    /// reaches the limit.
    pub handshake_failure_window: Duration,
    /// Most addresses whose failures are tracked; beyond it the oldest entry is forgotten.
    pub max_failure_addresses: usize,
}

impl Default for DtlsServerConfig {
    fn default() -> Self {
        Self {
            cipher_suites: CipherSuite::ALL.to_vec(),
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_sessions: 100_000,
            max_handshakes: 1_000,
            cookie_lifetime: Duration::from_secs(60),
            retransmit_interval: Duration::from_secs(1),
            mtu: 1200,
            max_handshake_failures: 10,
            handshake_failure_window: Duration::from_secs(60),
            max_failure_addresses: 10_000,
        }
    }
}

/// Identity, key and timing of a [`DtlsClient`](crate::DtlsClient).
#[derive(Clone)]
pub struct DtlsClientConfig {
    /// The PSK identity sent in ClientKeyExchange.
    pub identity: Vec<u8>,
    /// The pre-shared key.
    pub key: Vec<u8>,
    /// Suites offered, in order of preference.
    pub cipher_suites: Vec<CipherSuite>,
    /// The whole handshake must complete within this.
    pub handshake_timeout: Duration,
    /// Interval between flight retransmissions.
    pub retransmit_interval: Duration,
    /// Largest datagram the handshake writes.
    pub mtu: usize,
}

impl DtlsClientConfig {
    /// Defaults for everything but the credentials: all suites with CCM_8 first, 30 s handshake
    /// timeout, 1 s retransmission interval.
    pub fn new(identity: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        Self {
            identity: identity.into(),
            key: key.into(),
            cipher_suites: CipherSuite::ALL.to_vec(),
            handshake_timeout: Duration::from_secs(30),
            retransmit_interval: Duration::from_secs(1),
            mtu: 1200,
        }
    }
}

impl fmt::Debug for DtlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsClientConfig")
            .field("identity", &String::from_utf8_lossy(&self.identity))
            .field("key", &"<redacted>")
            .field("cipher_suites", &self.cipher_suites)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("retransmit_interval", &self.retransmit_interval)
            .field("mtu", &self.mtu)
            .finish()
    }
}

/// A configuration rtc-dtls or the crypto provider refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No cipher suite was configured.
    #[error("no cipher suite configured")]
    NoCipherSuites,
    /// A limit is zero.
    #[error("{0} must be greater than zero")]
    ZeroLimit(&'static str),
    /// The client identity or key is empty.
    #[error("PSK {0} must not be empty")]
    EmptyCredential(&'static str),
    /// rtc-dtls rejected the configuration.
    #[error("DTLS configuration rejected: {0}")]
    Dtls(String),
    /// The crypto provider failed (no randomness, no HMAC).
    #[error("crypto provider: {0}")]
    Crypto(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_keys() {
        let mut store = InMemoryPskStore::new();
        store.insert("meter-1", b"s3cr3t-key-bytes".to_vec());
        let client = DtlsClientConfig::new("meter-1", b"s3cr3t-key-bytes".to_vec());
        for text in [format!("{store:?}"), format!("{client:?}")] {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!text.contains("115, 51"), "{text}"); // the key as a byte list
            assert!(text.contains("redacted"), "{text}");
        }
        assert_eq!(
            store.key(b"meter-1").as_deref(),
            Some(&b"s3cr3t-key-bytes"[..])
        );
        assert_eq!(store.key(b"meter-2"), None);
    }

    #[test]
    fn suites_map_to_their_iana_code_points() {
        // RFC 6655 §3 (CCM, CCM_8) and RFC 5487 §3.1 (GCM) code points.
        assert_eq!(CipherSuite::PskAes128Ccm8.id() as u16, 0xc0a8);
        assert_eq!(CipherSuite::PskAes128Ccm.id() as u16, 0xc0a4);
        assert_eq!(CipherSuite::PskAes128GcmSha256.id() as u16, 0x00a8);
        for suite in CipherSuite::ALL {
            assert_eq!(CipherSuite::from_id(suite.id()), Some(suite));
        }
    }
}
