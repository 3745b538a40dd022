//! Just enough DTLS 1.2 framing (RFC 6347 §4.1 records, §4.2.2 handshake header, §4.2.1
//! HelloVerifyRequest) to recognise a ClientHello before any per-peer state exists, answer it with
//! a stateless HelloVerifyRequest, and peek at the records rtc-dtls emits.
//!
//! Everything here reads untrusted bytes: every access is bounds-checked and every failure is a
//! typed error, never a panic.

use std::ops::Range;

/// DTLS record header: type(1) version(2) epoch(2) sequence_number(6) length(2) — RFC 6347 §4.1.
pub(crate) const RECORD_HEADER_LEN: usize = 13;
/// DTLS handshake header: type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3)
/// — RFC 6347 §4.2.2.
pub(crate) const HANDSHAKE_HEADER_LEN: usize = 12;
/// The smallest ClientHello body: version(2) random(32) session_id<0>(1) cookie<0>(1)
/// cipher_suites<2>(2+2) compression_methods<1>(1+1) — RFC 5246 §7.4.1.2.
const MIN_CLIENT_HELLO_BODY: usize = 2 + 32 + 1 + 1 + 4 + 2;

pub(crate) const CONTENT_TYPE_ALERT: u8 = 21;
pub(crate) const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
#[cfg(test)]
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const HANDSHAKE_HELLO_VERIFY_REQUEST: u8 = 3;

const DTLS_1_0: [u8; 2] = [0xfe, 0xff];
const DTLS_1_2: [u8; 2] = [0xfe, 0xfd];

/// Why a datagram is not a ClientHello we are willing to spend anything on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotClientHello {
    /// Shorter than a record header plus a handshake header.
    #[error("datagram of {0} bytes is too short for a ClientHello")]
    TooShort(usize),
    /// The first record is not a handshake record (content type 22).
    #[error("record content type {0} is not handshake (22)")]
    NotHandshake(u8),
    /// The record version is neither DTLS 1.0 (0xfeff) nor DTLS 1.2 (0xfefd).
    #[error("record version {0:#06x} is not DTLS")]
    RecordVersion(u16),
    /// A ClientHello always travels in epoch 0 (RFC 6347 §4.2.1).
    #[error("record epoch {0} is not 0")]
    Epoch(u16),
    /// The first handshake message is not a ClientHello (type 1).
    #[error("handshake type {0} is not ClientHello (1)")]
    HandshakeType(u8),
    /// The record claims more bytes than the datagram holds.
    #[error("record length {declared} exceeds the {available} bytes after the header")]
    RecordLength {
        /// Length field of the record header.
        declared: usize,
        /// Bytes present after the header.
        available: usize,
    },
    /// The ClientHello is split over several records; PSK ClientHellos fit one record.
    #[error("fragmented ClientHello (fragment {offset}+{fragment_len} of {total})")]
    Fragmented {
        /// fragment_offset from the handshake header.
        offset: usize,
        /// fragment_length from the handshake header.
        fragment_len: usize,
        /// length from the handshake header.
        total: usize,
    },
    /// A length field inside the ClientHello body does not fit (offset is from the record start).
    #[error("ClientHello malformed at record offset {offset}")]
    Malformed {
        /// Byte offset from the start of the record where the inconsistency was found.
        offset: usize,
    },
    /// client_version is below DTLS 1.2, the only version we speak.
    #[error("client_version {0:#06x} is not DTLS 1.2")]
    ClientVersion(u16),
}

impl NotClientHello {
    /// Whether the datagram was plainly something else (`true`), as opposed to a damaged or
    /// unsupported ClientHello (`false`); the two are counted separately.
    pub(crate) fn is_other_traffic(&self) -> bool {
        matches!(
            self,
            Self::TooShort(_)
                | Self::NotHandshake(_)
                | Self::RecordVersion(_)
                | Self::Epoch(_)
                | Self::HandshakeType(_)
        )
    }
}

/// A validated view of a datagram's first record when it is an unfragmented epoch-0 ClientHello.
#[derive(Debug, Clone)]
pub(crate) struct ClientHello<'a> {
    /// The whole first record, header included, exactly as long as its length field says.
    record: &'a [u8],
    /// Record layer version (0xfeff or 0xfefd), echoed in the HelloVerifyRequest's record.
    pub(crate) record_version: u16,
    /// Record sequence number (48 bits).
    pub(crate) record_sequence: u64,
    /// Handshake message_seq: 0 for the first ClientHello, 1 for the one answering a
    /// HelloVerifyRequest (RFC 6347 §4.2.2).
    pub(crate) message_sequence: u16,
    /// The 32-byte client random.
    pub(crate) random: &'a [u8],
    /// The cookie; empty in a first ClientHello.
    pub(crate) cookie: &'a [u8],
    /// Record range of the cookie length byte.
    cookie_len_at: usize,
    /// Record range of cipher_suites and compression_methods (both with their length prefixes).
    suites_and_compression: Range<usize>,
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
}

fn be_u24(bytes: &[u8], at: usize) -> Option<usize> {
    let triple = bytes.get(at..at.checked_add(3)?)?;
    Some(
        (usize::from(*triple.first()?) << 16)
            | (usize::from(*triple.get(1)?) << 8)
            | usize::from(*triple.get(2)?),
    )
}

fn be_u48(bytes: &[u8], at: usize) -> Option<u64> {
    let six = bytes.get(at..at.checked_add(6)?)?;
    Some(six.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn put_u24(out: &mut Vec<u8>, value: usize) {
    // Callers only pass lengths of at most one record (< 2^14), so the top byte is dropped safely.
    out.extend_from_slice(&[(value >> 16) as u8, (value >> 8) as u8, value as u8]);
}

fn put_u48(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes()[2..]);
}

/// Reads a `<len_bytes>`-prefixed vector at `at`; returns the range of its contents.
fn vector(
    record: &[u8],
    at: usize,
    len_bytes: usize,
    end: usize,
) -> Result<Range<usize>, NotClientHello> {
    let malformed = NotClientHello::Malformed { offset: at };
    let len = match len_bytes {
        1 => usize::from(*record.get(at).ok_or(malformed)?),
        _ => usize::from(be_u16(record, at).ok_or(malformed)?),
    };
    let start = at + len_bytes;
    let stop = start.checked_add(len).ok_or(malformed)?;
    if stop > end {
        return Err(malformed);
    }
    Ok(start..stop)
}

impl<'a> ClientHello<'a> {
    /// Checks that `datagram` starts with a sane, unfragmented epoch-0 DTLS 1.2 ClientHello.
    ///
    /// This is the pre-check in front of rtc-dtls: it costs a few comparisons, and only a
    /// datagram that passes it may make the server spend a MAC computation or any state.
    pub(crate) fn parse(datagram: &'a [u8]) -> Result<Self, NotClientHello> {
        if datagram.len() < RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN {
            return Err(NotClientHello::TooShort(datagram.len()));
        }
        let content_type = datagram.first().copied().unwrap_or_default();
        if content_type != CONTENT_TYPE_HANDSHAKE {
            return Err(NotClientHello::NotHandshake(content_type));
        }
        let version = be_u16(datagram, 1).unwrap_or_default();
        if version.to_be_bytes() != DTLS_1_0 && version.to_be_bytes() != DTLS_1_2 {
            return Err(NotClientHello::RecordVersion(version));
        }
        let epoch = be_u16(datagram, 3).unwrap_or_default();
        if epoch != 0 {
            return Err(NotClientHello::Epoch(epoch));
        }
        let handshake_type = datagram.get(RECORD_HEADER_LEN).copied().unwrap_or_default();
        if handshake_type != HANDSHAKE_CLIENT_HELLO {
            return Err(NotClientHello::HandshakeType(handshake_type));
        }
        let record_sequence = be_u48(datagram, 5).unwrap_or_default();
        let declared = usize::from(be_u16(datagram, 11).unwrap_or_default());
        let available = datagram.len() - RECORD_HEADER_LEN;
        if declared > available {
            return Err(NotClientHello::RecordLength {
                declared,
                available,
            });
        }
        let record =
            datagram
                .get(..RECORD_HEADER_LEN + declared)
                .ok_or(NotClientHello::RecordLength {
                    declared,
                    available,
                })?;

        let hs = RECORD_HEADER_LEN;
        let malformed = |offset| NotClientHello::Malformed { offset };
        let total = be_u24(record, hs + 1).ok_or(malformed(hs + 1))?;
        let message_sequence = be_u16(record, hs + 4).ok_or(malformed(hs + 4))?;
        let offset = be_u24(record, hs + 6).ok_or(malformed(hs + 6))?;
        let fragment_len = be_u24(record, hs + 9).ok_or(malformed(hs + 9))?;
        if offset != 0 || fragment_len != total {
            return Err(NotClientHello::Fragmented {
                offset,
                fragment_len,
                total,
            });
        }
        let body = hs + HANDSHAKE_HEADER_LEN;
        // The ClientHello must fill the record exactly: no trailing handshake messages to confuse
        // the cookie exchange (a genuine client sends nothing else in that flight).
        if body + total != record.len() || total < MIN_CLIENT_HELLO_BODY {
            return Err(malformed(hs + 1));
        }
        let end = record.len();
        let client_version = be_u16(record, body).ok_or(malformed(body))?;
        if client_version.to_be_bytes() != DTLS_1_2 {
            // DTLS versions count down: 0xfefd (1.2) is below 0xfeff (1.0).
            return Err(NotClientHello::ClientVersion(client_version));
        }
        let random = record.get(body + 2..body + 34).ok_or(malformed(body + 2))?;
        let session_id = vector(record, body + 34, 1, end)?;
        if session_id.len() > 32 {
            return Err(malformed(body + 34));
        }
        let cookie_len_at = session_id.end;
        let cookie = vector(record, cookie_len_at, 1, end)?;
        let suites = vector(record, cookie.end, 2, end)?;
        if suites.is_empty() || suites.len() % 2 != 0 {
            return Err(malformed(cookie.end));
        }
        let compression = vector(record, suites.end, 1, end)?;
        if compression.is_empty() {
            return Err(malformed(suites.end));
        }
        if compression.end != end {
            let extensions = vector(record, compression.end, 2, end)?;
            if extensions.end != end {
                return Err(malformed(extensions.end));
            }
        }
        Ok(Self {
            record,
            record_version: version,
            record_sequence,
            message_sequence,
            random,
            cookie: record.get(cookie.clone()).ok_or(malformed(cookie_len_at))?,
            cookie_len_at,
            suites_and_compression: cookie.end..compression.end,
        })
    }

    /// The ClientHello fields a cookie must bind (RFC 6347 §4.2.1: the client repeats version,
    /// random, session_id, cipher_suites and compression_method unchanged after a
    /// HelloVerifyRequest), as two slices around the cookie.
    pub(crate) fn cookie_bound_fields(&self) -> [&'a [u8]; 2] {
        let before = self
            .record
            .get(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN..self.cookie_len_at);
        let after = self.record.get(self.suites_and_compression.clone());
        [before.unwrap_or_default(), after.unwrap_or_default()]
    }

    /// The same record with its record sequence number replaced.
    pub(crate) fn with_record_sequence(&self, sequence: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.record.len());
        out.extend_from_slice(self.record.get(..5).unwrap_or_default());
        put_u48(&mut out, sequence);
        out.extend_from_slice(self.record.get(11..).unwrap_or_default());
        out
    }

    /// This ClientHello as the first one of the exchange would have looked: no cookie,
    /// message_seq 0, record sequence `record_sequence`. Everything else is byte-identical.
    pub(crate) fn without_cookie(&self, record_sequence: u64) -> Vec<u8> {
        let body_start = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
        let before = self
            .record
            .get(body_start..self.cookie_len_at)
            .unwrap_or_default();
        let after = self
            .record
            .get(self.suites_and_compression.start..)
            .unwrap_or_default();
        let body_len = before.len() + 1 + after.len();
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + body_len);
        out.extend_from_slice(self.record.get(..5).unwrap_or_default());
        put_u48(&mut out, record_sequence);
        out.extend_from_slice(&((HANDSHAKE_HEADER_LEN + body_len) as u16).to_be_bytes());
        out.push(HANDSHAKE_CLIENT_HELLO);
        put_u24(&mut out, body_len);
        out.extend_from_slice(&0u16.to_be_bytes());
        put_u24(&mut out, 0);
        put_u24(&mut out, body_len);
        out.extend_from_slice(before);
        out.push(0);
        out.extend_from_slice(after);
        out
    }
}

/// A HelloVerifyRequest record (RFC 6347 §4.2.1) carrying `cookie`, sent with the ClientHello's
/// record sequence number and DTLS 1.0 as server_version, as the RFC recommends. The record
/// layer version echoes the ClientHello's: tinydtls 0.8 (Wakaama's DTLS stack, in many deployed
/// devices) drops every record whose version is not exactly DTLS 1.2, and OpenSSL sends its first
/// ClientHello with DTLS 1.0, so answering each client in its own version suits both. It is
/// shorter than any ClientHello that passes [`ClientHello::parse`], so it amplifies nothing.
pub(crate) fn hello_verify_request(
    record_version: u16,
    record_sequence: u64,
    cookie: &[u8],
) -> Vec<u8> {
    let body_len = 2 + 1 + cookie.len();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + body_len);
    out.push(CONTENT_TYPE_HANDSHAKE);
    out.extend_from_slice(&record_version.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    put_u48(&mut out, record_sequence);
    out.extend_from_slice(&((HANDSHAKE_HEADER_LEN + body_len) as u16).to_be_bytes());
    out.push(HANDSHAKE_HELLO_VERIFY_REQUEST);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&0u16.to_be_bytes());
    put_u24(&mut out, 0);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&DTLS_1_0);
    out.push(cookie.len() as u8);
    out.extend_from_slice(cookie);
    out
}

/// The cookie of a HelloVerifyRequest if `datagram` starts with one.
pub(crate) fn hello_verify_cookie(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.first() != Some(&CONTENT_TYPE_HANDSHAKE)
        || datagram.get(RECORD_HEADER_LEN) != Some(&HANDSHAKE_HELLO_VERIFY_REQUEST)
    {
        return None;
    }
    let body = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
    let len = usize::from(*datagram.get(body + 2)?);
    datagram.get(body + 3..body + 3 + len)
}

/// Whether `datagram` starts with an epoch-0 handshake record carrying a ServerHello: the sign
/// that rtc-dtls accepted the cookie and is running the handshake proper.
#[cfg(test)]
pub(crate) fn starts_with_server_hello(datagram: &[u8]) -> bool {
    datagram.first() == Some(&CONTENT_TYPE_HANDSHAKE)
        && be_u16(datagram, 3) == Some(0)
        && datagram.get(RECORD_HEADER_LEN) == Some(&HANDSHAKE_SERVER_HELLO)
}

/// The record sequence number of `datagram`'s first record, if it is an epoch-0 record.
pub(crate) fn first_epoch0_sequence(datagram: &[u8]) -> Option<u64> {
    if datagram.len() < RECORD_HEADER_LEN || be_u16(datagram, 3)? != 0 {
        return None;
    }
    be_u48(datagram, 5)
}

/// Adds `shift` to the record sequence number of every epoch-0 record in `datagram` (records are
/// walked by their length fields; a truncated tail is left alone). Epoch-0 sequence numbers are
/// not covered by any MAC, so this changes nothing but what the peer's replay window sees.
pub(crate) fn shift_epoch0_sequences(datagram: &mut [u8], shift: u64) {
    let mut at = 0usize;
    while let (Some(epoch), Some(sequence), Some(len)) = (
        be_u16(datagram, at + 3),
        be_u48(datagram, at + 5),
        be_u16(datagram, at + 11),
    ) {
        if epoch == 0
            && let Some(field) = datagram.get_mut(at + 5..at + 11)
        {
            let shifted = sequence.wrapping_add(shift) & 0xffff_ffff_ffff;
            field.copy_from_slice(&shifted.to_be_bytes()[2..]);
        }
        at += RECORD_HEADER_LEN + usize::from(len);
    }
}

/// Whether `datagram` starts with an alert record. The record header is never encrypted, so this
/// holds for alerts of every epoch.
pub(crate) fn starts_with_alert(datagram: &[u8]) -> bool {
    datagram.first() == Some(&CONTENT_TYPE_ALERT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// First ClientHello captured from `openssl s_client -dtls1_2 -psk_identity meter-0001
    /// -cipher PSK-AES128-CCM8` (OpenSSL 3.0.19, Debian) sent to a bare UDP socket.
    const OPENSSL_CLIENT_HELLO_1: &str = "16feff00000000000000000074010000680000000000000068fefd7ad17608c709346c202a61e5d10790b4104e8e38e6ff5e5b54201a6f761b12a700000004c0a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";
    /// The same client's second ClientHello, answering a HelloVerifyRequest whose cookie was
    /// twenty 0xaa bytes (same capture).
    const OPENSSL_CLIENT_HELLO_2: &str = "16feff000000000000000100880100007c000100000000007cfefd7ad17608c709346c202a61e5d10790b4104e8e38e6ff5e5b54201a6f761b12a70014aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0004c0a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn parses_openssl_first_client_hello() {
        let bytes = hex(OPENSSL_CLIENT_HELLO_1);
        let hello = ClientHello::parse(&bytes).expect("a ClientHello");
        assert_eq!(hello.record_sequence, 0);
        assert_eq!(hello.message_sequence, 0);
        assert!(hello.cookie.is_empty());
        assert_eq!(hello.random.len(), 32);
        assert_eq!(hello.random[..4], [0x7a, 0xd1, 0x76, 0x08]);
    }

    #[test]
    fn parses_openssl_second_client_hello_and_strips_its_cookie_back_to_the_first() {
        let first = hex(OPENSSL_CLIENT_HELLO_1);
        let second = hex(OPENSSL_CLIENT_HELLO_2);
        let hello = ClientHello::parse(&second).expect("a ClientHello");
        assert_eq!(hello.record_sequence, 1);
        assert_eq!(hello.message_sequence, 1);
        assert_eq!(hello.cookie, &[0xaa; 20]);
        // OpenSSL repeats every parameter, so removing the cookie reproduces the first hello.
        assert_eq!(hello.without_cookie(0), first);
        let first_hello = ClientHello::parse(&first).expect("a ClientHello");
        assert_eq!(
            hello.cookie_bound_fields(),
            first_hello.cookie_bound_fields()
        );
    }

    #[test]
    fn record_sequence_rewrite_keeps_everything_else() {
        let second = hex(OPENSSL_CLIENT_HELLO_2);
        let hello = ClientHello::parse(&second).expect("a ClientHello");
        let rewritten = hello.with_record_sequence(0x0102_0304_0506);
        assert_eq!(rewritten[5..11], [1, 2, 3, 4, 5, 6]);
        assert_eq!(rewritten[..5], second[..5]);
        assert_eq!(rewritten[11..], second[11..]);
    }

    #[test]
    fn hello_verify_request_round_trips_its_cookie_and_is_smaller_than_any_hello() {
        let cookie = [7u8; 20];
        let hvr = hello_verify_request(0xfeff, 42, &cookie);
        assert_eq!(hello_verify_cookie(&hvr), Some(&cookie[..]));
        assert_eq!(be_u48(&hvr, 5), Some(42));
        assert!(hvr.len() < RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + MIN_CLIENT_HELLO_BODY);
        // RFC 6347 §4.2.1 example layout: 13-byte record header, 12-byte handshake header,
        // server_version, cookie length, cookie.
        assert_eq!(hvr.len(), 13 + 12 + 2 + 1 + 20);
    }

    #[test]
    fn hello_verify_request_record_echoes_the_client_hello_record_version() {
        // Regression (Wakaama's tinydtls 0.8.6 client never answered our HelloVerifyRequest): its
        // is_record() drops any record whose version is not 0xfefd, so a DTLS 1.2 record hello
        // must get a DTLS 1.2 record back; the body's server_version stays DTLS 1.0 (§4.2.1).
        let mut first = hex(OPENSSL_CLIENT_HELLO_1);
        for version in [DTLS_1_0, DTLS_1_2] {
            first[1..3].copy_from_slice(&version);
            let hello = ClientHello::parse(&first).expect("a ClientHello");
            let hvr = hello_verify_request(hello.record_version, hello.record_sequence, &[1; 20]);
            assert_eq!(hvr[1..3], version);
            assert_eq!(hvr[25..27], DTLS_1_0);
        }
    }

    #[test]
    fn rejects_other_traffic_with_the_right_reason() {
        let mut bytes = hex(OPENSSL_CLIENT_HELLO_1);
        assert_eq!(
            ClientHello::parse(&bytes[..20]).err(),
            Some(NotClientHello::TooShort(20))
        );
        bytes[0] = 23;
        assert_eq!(
            ClientHello::parse(&bytes).err(),
            Some(NotClientHello::NotHandshake(23))
        );
        bytes[0] = 22;
        bytes[4] = 1;
        assert_eq!(
            ClientHello::parse(&bytes).err(),
            Some(NotClientHello::Epoch(1))
        );
        bytes[4] = 0;
        bytes[13] = 16;
        assert_eq!(
            ClientHello::parse(&bytes).err(),
            Some(NotClientHello::HandshakeType(16))
        );
        bytes[13] = 1;
        bytes[11] = 0xff;
        assert!(matches!(
            ClientHello::parse(&bytes).err(),
            Some(NotClientHello::RecordLength { .. })
        ));
    }

    #[test]
    fn rejects_fragments_and_bad_inner_lengths() {
        let good = hex(OPENSSL_CLIENT_HELLO_1);
        let mut fragment = good.clone();
        fragment[13 + 11] = 0x10; // fragment_length 0x10 of 0x68
        assert!(matches!(
            ClientHello::parse(&fragment).err(),
            Some(NotClientHello::Fragmented { .. })
        ));
        let mut long_session_id = good.clone();
        long_session_id[13 + 12 + 34] = 0x21; // session_id length 33
        assert!(matches!(
            ClientHello::parse(&long_session_id).err(),
            Some(NotClientHello::Malformed { .. })
        ));
        let mut old_version = good;
        old_version[13 + 12 + 1] = 0xff; // client_version DTLS 1.0
        assert_eq!(
            ClientHello::parse(&old_version).err(),
            Some(NotClientHello::ClientVersion(0xfeff))
        );
    }

    #[test]
    fn peeks_at_record_kinds() {
        assert!(starts_with_alert(&[21, 0xfe, 0xfd]));
        assert!(!starts_with_alert(&[]));
        let mut server_hello = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 12];
        server_hello.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(starts_with_server_hello(&server_hello));
        server_hello[4] = 1;
        assert!(!starts_with_server_hello(&server_hello));
        assert_eq!(hello_verify_cookie(&server_hello), None);
    }

    #[test]
    fn shifts_only_epoch0_record_sequences() {
        // Two records in one datagram: epoch 0 seq 1 (2-byte body), epoch 1 seq 0 (1-byte body).
        let mut datagram = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0xaa, 0xbb];
        datagram.extend_from_slice(&[23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xcc]);
        assert_eq!(first_epoch0_sequence(&datagram), Some(1));
        shift_epoch0_sequences(&mut datagram, 0x0100);
        assert_eq!(be_u48(&datagram, 5), Some(0x0101));
        assert_eq!(be_u48(&datagram, 15 + 5), Some(0), "epoch 1 untouched");
        assert_eq!(datagram[13..15], [0xaa, 0xbb]);
        assert_eq!(first_epoch0_sequence(&datagram[15..]), None);
    }

    proptest! {
        #[test]
        fn shifting_never_panics_or_changes_length(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
            shift in any::<u64>(),
        ) {
            let len = bytes.len();
            shift_epoch0_sequences(&mut bytes, shift);
            prop_assert_eq!(bytes.len(), len);
            let _ = first_epoch0_sequence(&bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(hello) = ClientHello::parse(&bytes) {
                // Whatever parses can be rebuilt without its cookie, and that parses too.
                let stripped = hello.without_cookie(0);
                let again = ClientHello::parse(&stripped).expect("a stripped hello parses");
                prop_assert!(again.cookie.is_empty());
                prop_assert_eq!(again.cookie_bound_fields(), hello.cookie_bound_fields());
            }
            let _ = hello_verify_cookie(&bytes);
            let _ = starts_with_server_hello(&bytes);
        }

        #[test]
        fn mutated_openssl_hellos_never_panic(index in 0usize..150, value in any::<u8>()) {
            let mut bytes = hex(OPENSSL_CLIENT_HELLO_2);
            if let Some(byte) = bytes.get_mut(index) {
                *byte = value;
            }
            if let Ok(hello) = ClientHello::parse(&bytes) {
                let _ = hello.without_cookie(0);
                let _ = hello.with_record_sequence(5);
            }
        }
    }
}
