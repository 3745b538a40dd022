//! The DTLS layer's key lookup: an in-memory `identity → key` map ([`PskCache`]) behind
//! `ferrite_dtls::PskStore`, because the handshake asks for the key synchronously from inside the
//! socket task (RFC 4279 §2: the identity arrives in ClientKeyExchange). The map is filled from the
//! store at start, kept current by the service handle (`refresh_credentials` /
//! `forget_credentials`), and a miss schedules an asynchronous lookup so that a device created after
//! start fails its first handshake only: the key is there for its retry.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use ferrite_dtls::PskStore;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::store::{Store, StoreError};

/// Most lookups scheduled at once; misses beyond it are not looked up (a flood of unknown
/// identities cannot grow memory or the database load; real devices retry).
const MAX_PENDING_LOOKUPS: usize = 1024;
/// Credentials loaded per page at start.
const LOAD_PAGE: u32 = 1000;

/// The identity → key map shared by the DTLS socket (reads, synchronously) and the service
/// (writes). Keys are zeroed when dropped and never printed.
pub(crate) struct PskCache {
    keys: RwLock<HashMap<Vec<u8>, Zeroizing<Vec<u8>>>>,
    pending: RwLock<HashSet<String>>,
    lookups: mpsc::UnboundedSender<String>,
}

impl fmt::Debug for PskCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PskCache")
            .field("identities", &self.len())
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl PskCache {
    /// An empty cache and the receiver of the identities to look up.
    pub(crate) fn new() -> (Arc<PskCache>, mpsc::UnboundedReceiver<String>) {
        let (lookups, receiver) = mpsc::unbounded_channel();
        let cache = PskCache {
            keys: RwLock::new(HashMap::new()),
            pending: RwLock::new(HashSet::new()),
            lookups,
        };
        (Arc::new(cache), receiver)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn insert(&self, identity: &str, key: &[u8]) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(identity.as_bytes().to_vec(), Zeroizing::new(key.to_vec()));
    }

    pub(crate) fn remove(&self, identity: &str) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(identity.as_bytes());
    }

    fn lookup_done(&self, identity: &str) {
        self.pending
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(identity);
    }

    /// Loads every live credential from the store (paged). Returns how many.
    pub(crate) async fn load_all(&self, store: &Store) -> Result<usize, StoreError> {
        let mut after: Option<String> = None;
        let mut loaded = 0;
        loop {
            let page = store
                .psk_credentials_page(after.as_deref(), LOAD_PAGE)
                .await?;
            for credentials in &page.credentials {
                self.insert(&credentials.identity, credentials.key.as_bytes());
                loaded += 1;
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(loaded),
            }
        }
    }

    /// Re-reads one identity from the store: present and live → cached, otherwise removed.
    pub(crate) async fn refresh(&self, store: &Store, identity: &str) -> Result<bool, StoreError> {
        match store.psk_credentials(identity).await? {
            Some(credentials) => {
                self.insert(&credentials.identity, credentials.key.as_bytes());
                Ok(true)
            }
            None => {
                self.remove(identity);
                Ok(false)
            }
        }
    }
}

impl PskStore for PskCache {
    fn key(&self, identity: &[u8]) -> Option<Vec<u8>> {
        let found = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(identity)
            .map(|key| key.to_vec());
        if found.is_none() {
            // Only text identities can be in the store (they are validated as visible ASCII).
            if let Ok(text) = std::str::from_utf8(identity) {
                let mut pending = self.pending.write().unwrap_or_else(PoisonError::into_inner);
                if pending.len() < MAX_PENDING_LOOKUPS && pending.insert(text.to_owned()) {
                    // A closed channel means the service is stopping; nothing to do.
                    let _ = self.lookups.send(text.to_owned());
                }
            }
        }
        found
    }
}

/// Answers the cache's misses from the store until the channel closes.
pub(crate) async fn run_lookups(
    cache: Arc<PskCache>,
    store: Store,
    mut misses: mpsc::UnboundedReceiver<String>,
) {
    while let Some(identity) = misses.recv().await {
        match cache.refresh(&store, &identity).await {
            Ok(true) => tracing::info!(
                identity = %identity,
                "DTLS identity was not in the key cache; loaded from the store for the next handshake"
            ),
            Ok(false) => tracing::debug!(identity = %identity, "unknown DTLS identity"),
            Err(error) => {
                tracing::error!(identity = %identity, %error, "cannot look up a DTLS identity");
            }
        }
        cache.lookup_done(&identity);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hits_answer_and_misses_are_scheduled_once() {
        let (cache, mut misses) = PskCache::new();
        cache.insert("id-1", &[1; 16]);
        assert_eq!(cache.key(b"id-1"), Some(vec![1; 16]));
        assert!(misses.try_recv().is_err(), "a hit schedules nothing");

        assert_eq!(cache.key(b"id-2"), None);
        assert_eq!(cache.key(b"id-2"), None);
        assert_eq!(misses.try_recv().unwrap(), "id-2");
        assert!(misses.try_recv().is_err(), "deduplicated while pending");
        cache.lookup_done("id-2");
        assert_eq!(cache.key(b"id-2"), None);
        assert_eq!(misses.try_recv().unwrap(), "id-2", "scheduled again later");

        // Non-UTF-8 identities are never in the store.
        assert_eq!(cache.key(&[0xff, 0xfe]), None);
        assert!(misses.try_recv().is_err());

        cache.remove("id-1");
        assert_eq!(cache.key(b"id-1"), None);
        assert!(!format!("{cache:?}").contains("1, 1"), "no key material");
    }

    #[test]
    fn pending_lookups_are_bounded() {
        let (cache, mut misses) = PskCache::new();
        for i in 0..MAX_PENDING_LOOKUPS + 10 {
            cache.key(format!("id-{i}").as_bytes());
        }
        let mut scheduled = 0;
        while misses.try_recv().is_ok() {
            scheduled += 1;
        }
        assert_eq!(scheduled, MAX_PENDING_LOOKUPS);
    }
}
