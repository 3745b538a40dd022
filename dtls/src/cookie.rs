//! Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1), and the provider shim that makes
//! rtc-dtls adopt our cookie as its own.
//!
//! rtc-dtls checks cookies itself, but only after it has created a connection for the address
//! (and generated an X25519 key pair for it), so a flood of spoofed ClientHellos would cost state
//! and CPU per packet. We therefore answer first ClientHellos ourselves, statelessly, with
//! `cookie = t ‖ HMAC-SHA256(secret, t ‖ address ‖ hello parameters)[..16]`, and create the
//! rtc-dtls connection only for a ClientHello that returns a valid cookie — a client that has
//! shown it receives datagrams at its source address.
//!
//! rtc-dtls then has to accept that ClientHello as the answer to a HelloVerifyRequest it never
//! sent. Its server draws its cookie as the first 20-byte read from the crypto provider's random
//! source when a connection starts; [`CookieInjectingProvider`] hands it our cookie for exactly
//! that one read (armed only around that call), and the server checks that the HelloVerifyRequest
//! rtc-dtls generates carries it, so a change inside rtc-dtls shows up as a failed handshake and a
//! counter, never as a weaker check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rtc_dtls::crypto_provider::{
    CryptoError, HmacAlgorithm, Mac, RTCCrypto, RTCCryptoProvider, RTCRandom, constant_time_eq,
};

use crate::wire::ClientHello;

/// rtc-dtls' cookie length (`COOKIE_LENGTH` in its `conn` module); ours must match it exactly.
pub(crate) const COOKIE_LEN: usize = 20;
const TIME_LEN: usize = 4;
const TAG_LEN: usize = COOKIE_LEN - TIME_LEN;

/// Outcome of checking a returned cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieCheck {
    Valid,
    /// Correct MAC but older than the configured lifetime (or from the future).
    Expired,
    /// Wrong length or MAC: minted for another address, other parameters, or another secret.
    Invalid,
}

/// Mints and verifies cookies with a per-server random secret.
pub(crate) struct CookieJar {
    mac: Box<dyn Mac>,
    /// Cookie timestamps count seconds from the first `now` this jar saw (sans-I/O: no clock).
    origin: Option<Instant>,
    lifetime_secs: u64,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("secret", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl CookieJar {
    pub(crate) fn new(
        provider: &dyn RTCCryptoProvider,
        lifetime_secs: u64,
    ) -> Result<Self, CryptoError> {
        let mut secret = [0u8; 32];
        provider.random().fill(&mut secret)?;
        let mac = provider.crypto().new_hmac(HmacAlgorithm::Sha256, &secret)?;
        Ok(Self {
            mac,
            origin: None,
            lifetime_secs,
        })
    }

    fn seconds(&mut self, now: Instant) -> u32 {
        let origin = *self.origin.get_or_insert(now);
        u32::try_from(now.saturating_duration_since(origin).as_secs()).unwrap_or(u32::MAX)
    }

    fn tag(
        &mut self,
        time: [u8; TIME_LEN],
        peer: SocketAddr,
        hello: &ClientHello<'_>,
    ) -> Option<[u8; TAG_LEN]> {
        let (ip, port) = match peer {
            SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped().octets(), v4.port()),
            SocketAddr::V6(v6) => (v6.ip().octets(), v6.port()),
        };
        let [before_cookie, after_cookie] = hello.cookie_bound_fields();
        let mut full = vec![0u8; self.mac.output_len()];
        self.mac
            .sign(
                &[&time, &ip, &port.to_be_bytes(), before_cookie, after_cookie],
                &mut full,
            )
            .ok()?;
        full.get(..TAG_LEN)?.try_into().ok()
    }

    /// A fresh cookie for `hello` from `peer`. `None` only if the MAC primitive fails.
    pub(crate) fn mint(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        hello: &ClientHello<'_>,
    ) -> Option<[u8; COOKIE_LEN]> {
        let time = self.seconds(now).to_be_bytes();
        let tag = self.tag(time, peer, hello)?;
        let mut cookie = [0u8; COOKIE_LEN];
        let (time_part, tag_part) = cookie.split_at_mut(TIME_LEN);
        time_part.copy_from_slice(&time);
        tag_part.copy_from_slice(&tag);
        Some(cookie)
    }

    /// Checks the cookie `hello` carries.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        hello: &ClientHello<'_>,
    ) -> CookieCheck {
        let Some((time, tag)) = hello.cookie.split_first_chunk::<TIME_LEN>() else {
            return CookieCheck::Invalid;
        };
        if tag.len() != TAG_LEN {
            return CookieCheck::Invalid;
        }
        let Some(expected) = self.tag(*time, peer, hello) else {
            return CookieCheck::Invalid;
        };
        if !constant_time_eq(&expected, tag) {
            return CookieCheck::Invalid;
        }
        let minted = u64::from(u32::from_be_bytes(*time));
        let current = u64::from(self.seconds(now));
        if minted > current || current - minted > self.lifetime_secs {
            return CookieCheck::Expired;
        }
        CookieCheck::Valid
    }
}

/// The slot through which the server passes a cookie to rtc-dtls' next cookie draw.
#[derive(Debug, Default)]
pub(crate) struct CookieSlot(Mutex<Option<[u8; COOKIE_LEN]>>);

impl CookieSlot {
    pub(crate) fn arm(&self, cookie: [u8; COOKIE_LEN]) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(cookie);
    }

    /// Disarms the slot; `true` if the armed cookie was consumed by rtc-dtls.
    pub(crate) fn disarm(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_none()
    }

    fn take(&self) -> Option<[u8; COOKIE_LEN]> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A crypto provider that is `inner` in every respect except that, while a cookie is armed, the
/// next 20-byte random draw returns it (see the module docs).
pub(crate) struct CookieInjectingProvider {
    inner: Arc<dyn RTCCryptoProvider>,
    random: CookieInjectingRandom,
}

struct CookieInjectingRandom {
    inner: Arc<dyn RTCCryptoProvider>,
    slot: Arc<CookieSlot>,
}

impl CookieInjectingProvider {
    pub(crate) fn new(inner: Arc<dyn RTCCryptoProvider>, slot: Arc<CookieSlot>) -> Self {
        Self {
            random: CookieInjectingRandom {
                inner: inner.clone(),
                slot,
            },
            inner,
        }
    }
}

impl RTCCryptoProvider for CookieInjectingProvider {
    fn name(&self) -> &'static str {
        "ferrite-cookie-injecting"
    }

    fn crypto(&self) -> &dyn RTCCrypto {
        self.inner.crypto()
    }

    fn random(&self) -> &dyn RTCRandom {
        &self.random
    }
}

impl RTCRandom for CookieInjectingRandom {
    fn fill(&self, output: &mut [u8]) -> Result<(), CryptoError> {
        if output.len() == COOKIE_LEN
            && let Some(cookie) = self.slot.take()
        {
            output.copy_from_slice(&cookie);
            return Ok(());
        }
        self.inner.random().fill(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HELLO_WITH_COOKIE: &str = "16feff000000000000000100880100007c000100000000007cfefd7ad17608c709346c202a61e5d10790b4104e8e38e6ff5e5b54201a6f761b12a70014aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0004c0a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    fn provider() -> Arc<dyn RTCCryptoProvider> {
        rtc_dtls::crypto_provider::default_provider().expect("ring provider")
    }

    /// Replaces the cookie of the captured OpenSSL hello (same length, 20 bytes).
    fn hello_returning(cookie: &[u8; COOKIE_LEN]) -> Vec<u8> {
        let mut bytes = hex(HELLO_WITH_COOKIE);
        let at = 13 + 12 + 2 + 32 + 1 + 1;
        bytes[at..at + COOKIE_LEN].copy_from_slice(cookie);
        bytes
    }

    #[test]
    fn a_minted_cookie_verifies_only_for_its_address_and_lifetime() {
        let mut jar = CookieJar::new(provider().as_ref(), 60).expect("jar");
        let t0 = Instant::now();
        let peer: SocketAddr = "192.0.2.1:5684".parse().expect("addr");
        let other: SocketAddr = "192.0.2.1:5685".parse().expect("addr");
        let template = hex(HELLO_WITH_COOKIE);
        let first = ClientHello::parse(&template).expect("hello");
        let cookie = jar.mint(t0, peer, &first).expect("cookie");

        let returned = hello_returning(&cookie);
        let hello = ClientHello::parse(&returned).expect("hello");
        assert_eq!(
            jar.check(t0 + Duration::from_secs(5), peer, &hello),
            CookieCheck::Valid
        );
        assert_eq!(jar.check(t0, other, &hello), CookieCheck::Invalid);
        assert_eq!(
            jar.check(t0 + Duration::from_secs(61), peer, &hello),
            CookieCheck::Expired
        );

        let mut forged = cookie;
        forged[COOKIE_LEN - 1] ^= 1;
        let forged = hello_returning(&forged);
        let hello = ClientHello::parse(&forged).expect("hello");
        assert_eq!(jar.check(t0, peer, &hello), CookieCheck::Invalid);

        // The captured hello carries twenty 0xaa bytes: not ours.
        assert_eq!(jar.check(t0, peer, &first), CookieCheck::Invalid);
    }

    #[test]
    fn another_server_secret_rejects_the_cookie() {
        let t0 = Instant::now();
        let peer: SocketAddr = "[2001:db8::1]:5684".parse().expect("addr");
        let template = hex(HELLO_WITH_COOKIE);
        let first = ClientHello::parse(&template).expect("hello");
        let cookie = CookieJar::new(provider().as_ref(), 60)
            .expect("jar")
            .mint(t0, peer, &first)
            .expect("cookie");
        let returned = hello_returning(&cookie);
        let hello = ClientHello::parse(&returned).expect("hello");
        let mut other_jar = CookieJar::new(provider().as_ref(), 60).expect("jar");
        assert_eq!(other_jar.check(t0, peer, &hello), CookieCheck::Invalid);
    }

    #[test]
    fn the_injecting_random_serves_the_armed_cookie_once_and_only_to_a_cookie_draw() {
        let slot = Arc::new(CookieSlot::default());
        let injecting = CookieInjectingProvider::new(provider(), slot.clone());
        slot.arm([9; COOKIE_LEN]);
        let mut other = [0u8; 28];
        injecting.random().fill(&mut other).expect("fill");
        let mut cookie = [0u8; COOKIE_LEN];
        injecting.random().fill(&mut cookie).expect("fill");
        assert_eq!(cookie, [9; COOKIE_LEN]);
        assert!(slot.disarm(), "consumed");
        injecting.random().fill(&mut cookie).expect("fill");
        assert_ne!(cookie, [9; COOKIE_LEN]);
        slot.arm([1; COOKIE_LEN]);
        assert!(!slot.disarm(), "not consumed");
    }
}
