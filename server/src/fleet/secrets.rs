//! Secret material of the fleet: the server's key-encryption key, device PSKs (encrypted at rest
//! with AES-256-GCM, a fresh random nonce per value) and generated PSK identities.
//!
//! Every secret type has a redacting `Debug` and is wiped from memory when dropped, so a key can
//! never reach a log line, a panic message or an error by accident.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::{Zeroize, Zeroizing};

/// Shortest PSK accepted (128 bits): shorter keys are guessable.
pub const PSK_MIN_LEN: usize = 16;
/// Longest PSK accepted; DTLS allows more, but no meter needs it.
pub const PSK_MAX_LEN: usize = 64;
/// Length of the PSKs the server generates. 128 bits is the strength of the mandatory cipher suite
/// (TLS_PSK_WITH_AES_128_CCM_8) and the largest key small DTLS stacks such as tinydtls accept.
pub const GENERATED_PSK_LEN: usize = 16;

/// Version byte in front of every encrypted value, so that the format can change later.
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Associated data binds a ciphertext to its endpoint: a sealed key copied onto another device's
/// row fails to decrypt instead of silently handing over the other device's key.
const AAD_PREFIX: &[u8] = b"ferrite-psk-v1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the server key must be 32 bytes (64 hex digits), got {0} bytes")]
    ServerKeyLength(usize),
    #[error("the server key is not valid hex")]
    ServerKeyHex,
    #[error("a PSK must be {PSK_MIN_LEN} to {PSK_MAX_LEN} bytes long, got {0} bytes")]
    PskLength(usize),
    #[error("the PSK is not valid hex: {0}")]
    PskHex(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error(
        "an encrypted key cannot be decrypted (wrong server key, or the stored value was altered)"
    )]
    Decrypt,
    #[error("an encrypted key has an unknown format (version {0})")]
    SealedFormat(u8),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), SecretError> {
    getrandom::fill(buf).map_err(|e| SecretError::Random(e.to_string()))
}

/// The server's 32-byte key-encryption key (configuration: `server_key`, 64 hex digits).
#[derive(Clone)]
pub struct ServerKey(Zeroizing<[u8; 32]>);

impl ServerKey {
    pub fn from_bytes(bytes: [u8; 32]) -> ServerKey {
        ServerKey(Zeroizing::new(bytes))
    }

    /// Parses 64 hex digits (surrounding whitespace ignored, e.g. a trailing newline of a key file).
    pub fn from_hex(text: &str) -> Result<ServerKey, SecretError> {
        let bytes =
            Zeroizing::new(hex::decode(text.trim()).map_err(|_| SecretError::ServerKeyHex)?);
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::ServerKeyLength(bytes.len()))?;
        Ok(ServerKey::from_bytes(array))
    }

    /// A fresh random key (for tests and for `ferrite` to propose one at first start).
    pub fn generate() -> Result<ServerKey, SecretError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_bytes(bytes.as_mut_slice())?;
        Ok(ServerKey(bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.0))
    }

    /// Encrypts a device PSK for storage: `version ‖ nonce ‖ ciphertext ‖ tag`.
    pub fn seal_psk(&self, endpoint: &str, psk: &PskKey) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let aad = [AAD_PREFIX, endpoint.as_bytes()].concat();
        let ciphertext = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: psk.as_bytes(),
                    aad: &aad,
                },
            )
            // AES-GCM encryption fails only for messages over 64 GiB; a PSK is at most 64 bytes.
            .map_err(|_| SecretError::Decrypt)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts a value made by [`ServerKey::seal_psk`] for the same endpoint.
    pub fn open_psk(&self, endpoint: &str, sealed: &[u8]) -> Result<PskKey, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Decrypt)?;
        if version != SEALED_VERSION {
            return Err(SecretError::SealedFormat(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Decrypt)?;
        let aad = [AAD_PREFIX, endpoint.as_bytes()].concat();
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| SecretError::Decrypt)?,
        );
        PskKey::new(plain.to_vec())
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

/// A device's DTLS pre-shared key, 16–64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PskKey(Vec<u8>);

impl PskKey {
    pub fn new(bytes: Vec<u8>) -> Result<PskKey, SecretError> {
        if !(PSK_MIN_LEN..=PSK_MAX_LEN).contains(&bytes.len()) {
            let len = bytes.len();
            drop(Zeroizing::new(bytes));
            return Err(SecretError::PskLength(len));
        }
        Ok(PskKey(bytes))
    }

    pub fn from_hex(text: &str) -> Result<PskKey, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|e| SecretError::PskHex(e.to_string()))?;
        PskKey::new(bytes)
    }

    /// A fresh random key of [`GENERATED_PSK_LEN`] bytes.
    pub fn generate() -> Result<PskKey, SecretError> {
        let mut bytes = vec![0u8; GENERATED_PSK_LEN];
        random_bytes(&mut bytes)?;
        Ok(PskKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex, for handing a generated key to the operator once.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl Drop for PskKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PskKey(<redacted {} bytes>)", self.0.len())
    }
}

/// A new PSK identity: `fe-` and 24 hex digits (96 random bits), short enough for small DTLS
/// stacks (tinydtls keeps at most 32 bytes of identity) and unique with overwhelming probability.
pub fn generate_psk_identity() -> Result<String, SecretError> {
    let mut bytes = [0u8; 12];
    random_bytes(&mut bytes)?;
    Ok(format!("fe-{}", hex::encode(bytes)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn sealed_psk_round_trips_and_hides_the_key() {
        let server = ServerKey::generate().unwrap();
        let psk = PskKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let sealed = server.seal_psk("meter-1", &psk).unwrap();
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 16 + TAG_LEN);
        assert!(!sealed.windows(16).any(|w| w == psk.as_bytes()));
        assert_eq!(server.open_psk("meter-1", &sealed).unwrap(), psk);
        // A fresh nonce per value: the same key sealed twice gives different bytes.
        assert_ne!(sealed, server.seal_psk("meter-1", &psk).unwrap());
    }

    #[test]
    fn sealed_psk_is_bound_to_its_endpoint_and_server_key() {
        let server = ServerKey::generate().unwrap();
        let psk = PskKey::generate().unwrap();
        let sealed = server.seal_psk("meter-1", &psk).unwrap();
        assert_eq!(
            server.open_psk("meter-2", &sealed),
            Err(SecretError::Decrypt)
        );
        let other = ServerKey::generate().unwrap();
        assert_eq!(
            other.open_psk("meter-1", &sealed),
            Err(SecretError::Decrypt)
        );
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            server.open_psk("meter-1", &tampered),
            Err(SecretError::Decrypt)
        );
        assert_eq!(server.open_psk("meter-1", &[]), Err(SecretError::Decrypt));
        assert_eq!(
            server.open_psk("meter-1", &[9, 1, 2]),
            Err(SecretError::SealedFormat(9))
        );
        assert_eq!(
            server.open_psk("meter-1", &sealed[..10]),
            Err(SecretError::Decrypt)
        );
    }

    #[test]
    fn psk_length_limits() {
        assert_eq!(PskKey::new(vec![0; 15]), Err(SecretError::PskLength(15)));
        assert!(PskKey::new(vec![0; 16]).is_ok());
        assert!(PskKey::new(vec![0; 64]).is_ok());
        assert_eq!(PskKey::new(vec![0; 65]), Err(SecretError::PskLength(65)));
        assert!(matches!(
            PskKey::from_hex("zz"),
            Err(SecretError::PskHex(_))
        ));
        assert_eq!(
            PskKey::generate().unwrap().as_bytes().len(),
            GENERATED_PSK_LEN
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let psk = PskKey::from_hex("41414141414141414141414141414141").unwrap();
        let server = ServerKey::from_hex(&"42".repeat(32)).unwrap();
        let text = format!("{psk:?} {server:?}");
        assert!(!text.contains("41") && !text.contains("AAAA") && !text.contains("42"));
        assert!(text.contains("redacted"));
    }

    #[test]
    fn server_key_parsing() {
        assert!(ServerKey::from_hex(&format!("{}\n", "ab".repeat(32))).is_ok());
        assert_eq!(
            ServerKey::from_hex(&"ab".repeat(31)).unwrap_err(),
            SecretError::ServerKeyLength(31)
        );
        assert_eq!(
            ServerKey::from_hex("not hex").unwrap_err(),
            SecretError::ServerKeyHex
        );
    }

    #[test]
    fn generated_identities_are_distinct_and_short() {
        let a = generate_psk_identity().unwrap();
        let b = generate_psk_identity().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 27);
        assert!(a.starts_with("fe-"));
    }
}
