//! The PSK key lookup rtc-dtls calls during a handshake: our [`PskStore`] behind it, random keys
//! for unknown identities, and a record of what was looked up for the server to read back.

use std::sync::{Arc, Mutex, PoisonError};

use rtc_dtls::crypto_provider::RTCCryptoProvider;

use crate::config::PskStore;
use crate::event::PskIdentity;

/// Length of the random key an unknown identity is given (AES-128 PSKs are 16 bytes).
const DUMMY_KEY_LEN: usize = 16;

/// rtc-dtls' PSK callback type: identity in, key out.
pub(crate) type Callback = Arc<dyn Fn(&[u8]) -> rtc_shared::error::Result<Vec<u8>> + Send + Sync>;

/// The identity the callback was last asked about and whether the store knew it. The callback runs
/// synchronously inside `Endpoint::read`, so the server takes this right after each read and
/// knows which peer it belongs to.
#[derive(Debug, Default)]
pub(crate) struct LookupRecorder(Mutex<Option<(PskIdentity, bool)>>);

impl LookupRecorder {
    fn record(&self, identity: &[u8], known: bool) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((PskIdentity::new(identity), known));
    }

    pub(crate) fn take(&self) -> Option<(PskIdentity, bool)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The callback for rtc-dtls' `ConfigBuilder::with_psk`.
pub(crate) fn callback(
    store: Arc<dyn PskStore>,
    crypto: Arc<dyn RTCCryptoProvider>,
    lookups: Arc<LookupRecorder>,
) -> Callback {
    Arc::new(move |identity: &[u8]| {
        let key = store.key(identity);
        lookups.record(identity, key.is_some());
        match key {
            Some(key) => Ok(key),
            // RFC 4279 §2: to hide that the identity is unknown, continue as if it existed with a
            // wrong key. A fresh random key per attempt can never verify, and the peer then gets
            // the same alert as for a wrong key.
            None => {
                let mut dummy = vec![0u8; DUMMY_KEY_LEN];
                crypto
                    .random()
                    .fill(&mut dummy)
                    .map_err(|error| rtc_shared::error::Error::Other(error.to_string()))?;
                Ok(dummy)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InMemoryPskStore;

    #[test]
    fn known_identities_get_their_key_and_unknown_ones_a_fresh_random_key() {
        let mut store = InMemoryPskStore::new();
        store.insert("meter-1", vec![7u8; 16]);
        let lookups = Arc::new(LookupRecorder::default());
        let crypto = rtc_dtls::crypto_provider::default_provider().expect("provider");
        let lookup = callback(Arc::new(store), crypto, lookups.clone());

        assert_eq!(lookup(b"meter-1").expect("key"), vec![7u8; 16]);
        assert_eq!(lookups.take(), Some((PskIdentity::new(b"meter-1"), true)));
        assert_eq!(lookups.take(), None, "taken");

        let first = lookup(b"stranger").expect("dummy key");
        let second = lookup(b"stranger").expect("dummy key");
        assert_eq!(first.len(), DUMMY_KEY_LEN);
        assert_ne!(first, second, "fresh per attempt");
        assert_eq!(lookups.take(), Some((PskIdentity::new(b"stranger"), false)));
    }
}
