//! Password hashing with argon2id (RFC 9106) at the argon2 crate's defaults (m = 19 MiB, t = 2,
//! p = 1: the OWASP Password Storage Cheat Sheet's first argon2id configuration), stored as PHC
//! strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) so the parameters can be raised later
//! without invalidating stored hashes: verification reads them from the string.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::AccountError;
use crate::fleet::secrets::random_bytes;

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// Hashes a password with a fresh 128-bit salt. CPU- and memory-heavy by design (tens of
/// milliseconds): call it from a blocking task.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt).map_err(|e| AccountError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Does `password` match the stored PHC string? A malformed stored hash never matches (and is
/// reported by the caller's audit as a failed login, not a crash).
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification for a user that does not exist, so the response time
/// does not tell which user names exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("dummy password for timing").ok());
    if let Some(hash) = dummy {
        let _ = verify_password(password, hash);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("correct horse battery staple").unwrap();
        let b = hash_password("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery staple", &a));
        assert!(!verify_password("correct horse battery stapler", &a));
        assert!(!verify_password("anything", "not a phc string"));
    }

    /// The reference implementation's test vector for argon2id v1.3, t = 2, m = 2^16, p = 1,
    /// password "password", salt "somesalt" (P-H-C/phc-winner-argon2 `src/test.c`, as encoded
    /// in RustCrypto argon2 0.5.3 `tests/kat.rs` `reference_argon2id_v0x13_2_16_1`): a hash made
    /// elsewhere, with other parameters than ours, must verify.
    #[test]
    fn verifies_a_hash_from_the_reference_implementation() {
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify_password("password", reference));
        assert!(!verify_password("Password", reference));
    }
}
