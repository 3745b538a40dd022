//! The random secrets of accounts: session ids, API token secrets and the CSRF token derived from
//! a session id. Each secret is 256 random bits from the operating system.
//!
//! They are stored as SHA-256 digests, not with a slow password hash: a slow hash protects
//! low-entropy secrets (passwords) from guessing after a database leak, but nobody can guess a
//! 256-bit random value, fast hash or not (2^255 tries on average). A fast, unsalted digest also
//! lets every request find its session or token with one indexed lookup.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use super::AccountError;
use crate::fleet::secrets::random_bytes;

/// Prefix of API token secrets: recognisable in a script or a leaked file (secret scanners can
/// match `ferrite_`), and never confused with a session id.
pub const TOKEN_PREFIX: &str = "ferrite_";

/// A SHA-256 digest of a secret, as stored.
pub type SecretDigest = [u8; 32];

fn random_text() -> Result<String, AccountError> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new session id (43 base64url characters) for the session cookie.
pub fn new_session_id() -> Result<String, AccountError> {
    random_text()
}

/// A new API token secret: `ferrite_` and 43 base64url characters.
pub fn new_token_secret() -> Result<String, AccountError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_text()?))
}

/// The stored form of a session id or token secret.
pub fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// The CSRF token of a session: derived from the session id, which only the server and the
/// browser's HttpOnly cookie know, so it needs no storage and can be shown again (`GET /me`)
/// after a page reload. A cross-site page can make the browser send the cookie, but cannot read
/// this value. (OWASP CSRF Prevention Cheat Sheet: synchronizer token, here derived.)
pub fn csrf_token(session_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ferrite csrf v1\0");
    hasher.update(session_id.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Compares secrets in time independent of where they differ (the length may show, which is
/// harmless for fixed-length random values).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_distinct() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 43, "256 bits in base64url");
        assert_ne!(a, b);
        let token = new_token_secret().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token.len(), TOKEN_PREFIX.len() + 43);
    }

    /// FIPS 180-2 appendix B.1 ("abc"): the digest is plain SHA-256.
    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            hex::encode(digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn csrf_tokens_depend_on_the_session() {
        assert_eq!(csrf_token("s1"), csrf_token("s1"));
        assert_ne!(csrf_token("s1"), csrf_token("s2"));
        assert_ne!(csrf_token("s1"), "s1");
    }

    #[test]
    fn compares_secrets() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
