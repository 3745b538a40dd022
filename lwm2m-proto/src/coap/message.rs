//! CoAP message codec (RFC 7252 §3): the [`Message`] value type, decoded from datagrams through
//! coap-lite's `Packet` with the checks coap-lite 0.13.3 does not make, and encoded by hand.
//!
//! Why encoding is ours: a `Packet` keeps options as a B-tree of linked lists of vectors, so
//! building one, serialising it and dropping it took about 14 % of the server engine's CPU per
//! device-management Read (`benches/server_read.rs`), for a format that is a header, the token,
//! delta-coded options and the payload. [`Message::encode`] writes that into one vector sized up
//! front, and a property test holds it byte-identical to coap-lite's encoder for arbitrary
//! messages (option numbers and lengths in all three delta/length forms). Decoding, where the
//! input is hostile, stays with coap-lite behind our own structural validation.
//!
//! coap-lite is lax where RFC 7252 is strict. Measured on 0.13.3 and compensated here:
//! - it does not check the version field (§3: unknown versions MUST be silently ignored);
//! - it accepts a payload marker followed by no payload (§3: a format error);
//! - it accepts an Empty message (code 0.00) with a token, options or payload (§4.1: a format
//!   error);
//! - it accepts codes of the reserved classes 1, 6 and 7 (§4.2: such a CON is rejected);
//! - on encode it silently truncates option values longer than 65 804 bytes and drops the payload
//!   of an Empty message.
//!
//! It does reject token lengths 9–15, the reserved option delta/length nibble 15, and options that
//! run past the end; those are re-checked here anyway so each error carries its byte offset.

use std::fmt;

use coap_lite::Packet;
#[cfg(test)]
use coap_lite::{CoapOption, MessageClass, MessageType as LiteType};
use thiserror::Error;

use super::option::Options;

/// The four message types (RFC 7252 §3, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Confirmable: retransmitted until acknowledged.
    Confirmable,
    /// Non-confirmable.
    NonConfirmable,
    /// Acknowledgement of a Confirmable message (may carry a piggybacked response).
    Acknowledgement,
    /// Reset: the receiver could not process a message.
    Reset,
}

impl MessageType {
    fn from_bits(bits: u8) -> MessageType {
        match bits & 0x3 {
            0 => MessageType::Confirmable,
            1 => MessageType::NonConfirmable,
            2 => MessageType::Acknowledgement,
            _ => MessageType::Reset,
        }
    }

    fn bits(self) -> u8 {
        match self {
            MessageType::Confirmable => 0,
            MessageType::NonConfirmable => 1,
            MessageType::Acknowledgement => 2,
            MessageType::Reset => 3,
        }
    }

    #[cfg(test)]
    fn to_lite(self) -> LiteType {
        match self {
            MessageType::Confirmable => LiteType::Confirmable,
            MessageType::NonConfirmable => LiteType::NonConfirmable,
            MessageType::Acknowledgement => LiteType::Acknowledgement,
            MessageType::Reset => LiteType::Reset,
        }
    }
}

/// A message code `c.dd` (RFC 7252 §3, §12.1): 3-bit class, 5-bit detail.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    /// 0.00 Empty.
    pub const EMPTY: Code = Code(0x00);
    /// 0.01 GET.
    pub const GET: Code = Code(0x01);
    /// 0.02 POST.
    pub const POST: Code = Code(0x02);
    /// 0.03 PUT.
    pub const PUT: Code = Code(0x03);
    /// 0.04 DELETE.
    pub const DELETE: Code = Code(0x04);
    /// 0.05 FETCH (RFC 8132).
    pub const FETCH: Code = Code(0x05);
    /// 0.06 PATCH (RFC 8132).
    pub const PATCH: Code = Code(0x06);
    /// 0.07 iPATCH (RFC 8132).
    pub const IPATCH: Code = Code(0x07);
    /// 2.01 Created.
    pub const CREATED: Code = Code(0x41);
    /// 2.02 Deleted.
    pub const DELETED: Code = Code(0x42);
    /// 2.03 Valid.
    pub const VALID: Code = Code(0x43);
    /// 2.04 Changed.
    pub const CHANGED: Code = Code(0x44);
    /// 2.05 Content.
    pub const CONTENT: Code = Code(0x45);
    /// 2.31 Continue (RFC 7959 §2.9.1).
    pub const CONTINUE: Code = Code(0x5F);
    /// 4.00 Bad Request.
    pub const BAD_REQUEST: Code = Code(0x80);
    /// 4.01 Unauthorized.
    pub const UNAUTHORIZED: Code = Code(0x81);
    /// 4.02 Bad Option.
    pub const BAD_OPTION: Code = Code(0x82);
    /// 4.03 Forbidden.
    pub const FORBIDDEN: Code = Code(0x83);
    /// 4.04 Not Found.
    pub const NOT_FOUND: Code = Code(0x84);
    /// 4.05 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Code = Code(0x85);
    /// 4.06 Not Acceptable.
    pub const NOT_ACCEPTABLE: Code = Code(0x86);
    /// 4.08 Request Entity Incomplete (RFC 7959 §2.9.2).
    pub const REQUEST_ENTITY_INCOMPLETE: Code = Code(0x88);
    /// 4.12 Precondition Failed.
    pub const PRECONDITION_FAILED: Code = Code(0x8C);
    /// 4.13 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: Code = Code(0x8D);
    /// 4.15 Unsupported Content-Format.
    pub const UNSUPPORTED_CONTENT_FORMAT: Code = Code(0x8F);
    /// 5.00 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Code = Code(0xA0);
    /// 5.01 Not Implemented.
    pub const NOT_IMPLEMENTED: Code = Code(0xA1);
    /// 5.03 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Code = Code(0xA3);
    /// 5.04 Gateway Timeout.
    pub const GATEWAY_TIMEOUT: Code = Code(0xA4);

    /// A code from class and detail (`Code::new(2, 5)` is 2.05).
    pub const fn new(class: u8, detail: u8) -> Code {
        Code(((class & 0x7) << 5) | (detail & 0x1F))
    }

    /// The class (0 request/empty, 2 success, 4 client error, 5 server error).
    pub fn class(self) -> u8 {
        self.0 >> 5
    }

    /// The detail.
    pub fn detail(self) -> u8 {
        self.0 & 0x1F
    }

    /// 0.00.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Class 0 but not 0.00 (RFC 7252 §5.8: further method codes may be registered).
    pub fn is_request(self) -> bool {
        self.class() == 0 && self.0 != 0
    }

    /// Classes 2, 4, 5 (RFC 7252 §5.9).
    pub fn is_response(self) -> bool {
        matches!(self.class(), 2 | 4 | 5)
    }

    /// Classes 4 and 5.
    pub fn is_error(self) -> bool {
        matches!(self.class(), 4 | 5)
    }

    /// Classes 1, 6 and 7 are reserved (RFC 7252 §3, §12.1).
    pub fn is_reserved_class(self) -> bool {
        matches!(self.class(), 1 | 6 | 7)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

/// Largest token length (RFC 7252 §3: TKL 9–15 are reserved).
pub const MAX_TOKEN_LEN: usize = 8;

/// A token of 0–8 bytes (RFC 7252 §5.3.1), stored inline so it is `Copy` and cheap to hash.
/// Zero-length tokens are legal and used by constrained devices.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    // Invariant: len <= 8 and bytes[len..] are zero, so derived Eq/Hash see only the token.
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

/// A token longer than 8 bytes was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("token of {0} bytes, at most 8 are allowed")]
pub struct TokenTooLong(pub usize);

impl Token {
    /// The zero-length token.
    pub const EMPTY: Token = Token {
        len: 0,
        bytes: [0; MAX_TOKEN_LEN],
    };

    /// A token from up to 8 bytes.
    pub fn new(bytes: &[u8]) -> Result<Token, TokenTooLong> {
        let mut token = Token::EMPTY;
        let dst = token
            .bytes
            .get_mut(..bytes.len())
            .ok_or(TokenTooLong(bytes.len()))?;
        dst.copy_from_slice(bytes);
        token.len = bytes.len() as u8; // fits: at most 8
        Ok(token)
    }

    /// The token bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // The invariant len <= 8 makes the range valid; `unwrap_or` keeps this panic-free anyway.
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Token length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether this is the zero-length token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// One CoAP message (RFC 7252 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// CON, NON, ACK or RST.
    pub mtype: MessageType,
    /// Request method, response code or 0.00 Empty.
    pub code: Code,
    /// Message ID, for deduplication and ACK/RST matching (§4.4).
    pub message_id: u16,
    /// Token, for request/response matching (§5.3.1).
    pub token: Token,
    /// Options in wire order.
    pub options: Options,
    /// Payload (empty when there is none).
    pub payload: Vec<u8>,
}

/// The fixed 4-byte header of a datagram whose version is 1; present in a [`DecodeError`] when
/// the header was readable, so the endpoint can answer a malformed CON with a RST (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub mtype: MessageType,
    /// Code.
    pub code: Code,
    /// Message ID.
    pub message_id: u16,
}

/// What is wrong with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    /// Shorter than the 4-byte header.
    #[error("datagram of {0} bytes is shorter than the 4-byte header")]
    TooShort(usize),
    /// Version other than 1 (§3: silently ignored).
    #[error("unsupported CoAP version {0}")]
    UnsupportedVersion(u8),
    /// TKL 9–15 (§3: a message format error).
    #[error("reserved token length {0}")]
    ReservedTokenLength(u8),
    /// The datagram ends inside the token.
    #[error("token of {0} bytes runs past the end of the datagram")]
    TruncatedToken(u8),
    /// An Empty message (0.00) with bytes after the header (§4.1).
    #[error("empty message with token, options or payload")]
    EmptyMessageNotEmpty,
    /// A code of reserved class 1, 6 or 7 (§4.2).
    #[error("code {0} has a reserved class")]
    ReservedCodeClass(Code),
    /// Option delta nibble 15 not part of a payload marker (§3.1).
    #[error("reserved option delta 15")]
    ReservedOptionDelta,
    /// Option length nibble 15 (§3.1).
    #[error("reserved option length 15")]
    ReservedOptionLength,
    /// An extended delta/length or the option value runs past the end.
    #[error("option runs past the end of the datagram")]
    TruncatedOption,
    /// The option number exceeds 65535.
    #[error("option number exceeds 65535")]
    OptionNumberOverflow,
    /// A payload marker with zero-length payload (§3: a message format error).
    #[error("payload marker followed by an empty payload")]
    EmptyPayloadAfterMarker,
    /// coap-lite refused bytes that passed our checks (should not happen; kept typed, not panicked).
    #[error("codec rejected the datagram: {0}")]
    Codec(&'static str),
}

/// A datagram that is not a valid CoAP message: what, where, and the header if it was readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("malformed CoAP datagram at byte {offset}: {kind}")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset of the fault.
    pub offset: usize,
    /// The header, if the first 4 bytes were readable and the version was 1.
    pub header: Option<Header>,
}

/// Why a message cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// An Empty message must have no token, options or payload (§4.1).
    #[error("empty message with token, options or payload")]
    EmptyMessageNotEmpty,
    /// Option values are at most [`MAX_OPTION_VALUE_LEN`] bytes.
    #[error("option {number} value of {len} bytes is too long")]
    OptionTooLong {
        /// Option number.
        number: u16,
        /// Value length.
        len: usize,
    },
    /// coap-lite failed to serialise.
    #[error("codec failed to encode")]
    Codec,
}

/// Longest option value we encode. RFC 7252 §3.1 allows 65 535 + 269, but coap-lite 0.13.3 only
/// decodes lengths up to 65 535 (its 14-nibble arithmetic is u16), so we stay within that.
pub const MAX_OPTION_VALUE_LEN: usize = 65_535;

impl Message {
    /// A message with no options and no payload.
    pub fn new(mtype: MessageType, code: Code, message_id: u16, token: Token) -> Message {
        Message {
            mtype,
            code,
            message_id,
            token,
            options: Options::new(),
            payload: Vec::new(),
        }
    }

    /// An Empty ACK for message `message_id` (§4.2).
    pub fn empty_ack(message_id: u16) -> Message {
        Message::new(
            MessageType::Acknowledgement,
            Code::EMPTY,
            message_id,
            Token::EMPTY,
        )
    }

    /// A RST for message `message_id` (§4.2).
    pub fn reset(message_id: u16) -> Message {
        Message::new(MessageType::Reset, Code::EMPTY, message_id, Token::EMPTY)
    }

    /// Decodes one datagram. Never panics; every failure is a [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let header = validate(bytes)?;
        let packet = Packet::from_bytes(bytes).map_err(|e| DecodeError {
            kind: DecodeErrorKind::Codec(lite_error_name(&e)),
            offset: 0,
            header: Some(header),
        })?;
        let token = Token::new(packet.get_token()).map_err(|_| DecodeError {
            kind: DecodeErrorKind::ReservedTokenLength(packet.get_token().len() as u8),
            offset: 0,
            header: Some(header),
        })?;
        let mut options = Options::new();
        for (number, values) in packet.options() {
            for value in values {
                options.push(*number, value);
            }
        }
        Ok(Message {
            mtype: header.mtype,
            code: header.code,
            message_id: header.message_id,
            token,
            options,
            payload: packet.payload,
        })
    }

    /// Encodes the message into one datagram.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.code.is_empty()
            && (!self.token.is_empty() || !self.options.is_empty() || !self.payload.is_empty())
        {
            return Err(EncodeError::EmptyMessageNotEmpty);
        }
        let token = self.token.as_bytes();
        let mut size = 4 + token.len() + self.payload.len() + 1;
        for (number, value) in self.options.iter() {
            if value.len() > MAX_OPTION_VALUE_LEN {
                return Err(EncodeError::OptionTooLong {
                    number,
                    len: value.len(),
                });
            }
            size += 5 + value.len();
        }
        let mut out = Vec::with_capacity(size);
        out.push(0x40 | (self.mtype.bits() << 4) | token.len() as u8); // token.len() <= 8
        out.push(self.code.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(token);
        // Options are kept in wire order (sorted by number, repeats in order), so each is its
        // delta from the previous one (§3.1).
        let mut previous = 0u16;
        for (number, value) in self.options.iter() {
            let (delta_nibble, delta_ext) = extended(number.wrapping_sub(previous).into());
            let (len_nibble, len_ext) = extended(value.len());
            out.push((delta_nibble << 4) | len_nibble);
            out.extend_from_slice(delta_ext.as_slice());
            out.extend_from_slice(len_ext.as_slice());
            out.extend_from_slice(value);
            previous = number;
        }
        if !self.payload.is_empty() {
            out.push(0xFF);
            out.extend_from_slice(&self.payload);
        }
        Ok(out)
    }

    /// Encodes through coap-lite's `Packet`: the reference [`Message::encode`] is tested
    /// against (byte for byte), and what it replaced.
    #[cfg(test)]
    fn encode_with_coap_lite(&self) -> Result<Vec<u8>, EncodeError> {
        if self.code.is_empty()
            && (!self.token.is_empty() || !self.options.is_empty() || !self.payload.is_empty())
        {
            return Err(EncodeError::EmptyMessageNotEmpty);
        }
        let mut packet = Packet::new();
        packet.header.set_version(1);
        packet.header.set_type(self.mtype.to_lite());
        packet.header.code = MessageClass::from(self.code.0);
        packet.header.message_id = self.message_id;
        packet.set_token(self.token.as_bytes().to_vec());
        for (number, value) in self.options.iter() {
            if value.len() > MAX_OPTION_VALUE_LEN {
                return Err(EncodeError::OptionTooLong {
                    number,
                    len: value.len(),
                });
            }
            packet.add_option(CoapOption::from(number), value.to_vec());
        }
        packet.payload = self.payload.clone();
        packet.to_bytes_unlimited().map_err(|_| EncodeError::Codec)
    }
}

/// The 4-bit nibble and the extended bytes (0, 1 or 2) for an option delta or length `value`
/// (RFC 7252 §3.1): below 13 the nibble itself, then 13 + one byte, then 14 + two bytes. Callers
/// keep `value` at most 65 535 (option numbers are u16, lengths are checked), which fits.
fn extended(value: usize) -> (u8, Extension) {
    if value < 13 {
        (value as u8, Extension::default())
    } else if value < 269 {
        (13, Extension::one((value - 13) as u8))
    } else {
        let v = u16::try_from(value - 269).unwrap_or(u16::MAX);
        (14, Extension::two(v))
    }
}

/// Up to two extended bytes of an option header, without allocating.
#[derive(Default)]
struct Extension {
    bytes: [u8; 2],
    len: usize,
}

impl Extension {
    fn one(b: u8) -> Extension {
        Extension {
            bytes: [b, 0],
            len: 1,
        }
    }

    fn two(v: u16) -> Extension {
        Extension {
            bytes: v.to_be_bytes(),
            len: 2,
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

fn lite_error_name(e: &coap_lite::error::MessageError) -> &'static str {
    use coap_lite::error::MessageError as E;
    match e {
        E::InvalidHeader => "invalid header",
        E::InvalidPacketLength => "invalid packet length",
        E::InvalidTokenLength => "invalid token length",
        E::InvalidOptionDelta => "invalid option delta",
        E::InvalidOptionLength => "invalid option length",
    }
}

/// Structural validation of a datagram per RFC 7252 §3 and §4.1, with offsets. On success the
/// datagram is one coap-lite parses the same way; the header is returned.
fn validate(bytes: &[u8]) -> Result<Header, DecodeError> {
    let err = |kind, offset, header| DecodeError {
        kind,
        offset,
        header,
    };
    let (Some(&b0), Some(&code), Some(&mid_hi), Some(&mid_lo)) =
        (bytes.first(), bytes.get(1), bytes.get(2), bytes.get(3))
    else {
        return Err(err(
            DecodeErrorKind::TooShort(bytes.len()),
            bytes.len(),
            None,
        ));
    };
    let version = b0 >> 6;
    if version != 1 {
        return Err(err(DecodeErrorKind::UnsupportedVersion(version), 0, None));
    }
    let header = Header {
        mtype: MessageType::from_bits(b0 >> 4),
        code: Code(code),
        message_id: u16::from_be_bytes([mid_hi, mid_lo]),
    };
    let h = Some(header);
    let tkl = b0 & 0x0F;
    if usize::from(tkl) > MAX_TOKEN_LEN {
        return Err(err(DecodeErrorKind::ReservedTokenLength(tkl), 0, h));
    }
    if header.code.is_empty() {
        // §4.1: TKL must be 0 and nothing may follow the Message ID.
        if tkl != 0 || bytes.len() > 4 {
            return Err(err(DecodeErrorKind::EmptyMessageNotEmpty, 4, h));
        }
        return Ok(header);
    }
    if header.code.is_reserved_class() {
        return Err(err(DecodeErrorKind::ReservedCodeClass(header.code), 1, h));
    }
    let mut at = 4 + usize::from(tkl);
    if at > bytes.len() {
        return Err(err(DecodeErrorKind::TruncatedToken(tkl), bytes.len(), h));
    }
    let mut number: u32 = 0;
    while let Some(&byte) = bytes.get(at) {
        let start = at;
        if byte == 0xFF {
            if at + 1 == bytes.len() {
                return Err(err(DecodeErrorKind::EmptyPayloadAfterMarker, at, h));
            }
            return Ok(header);
        }
        at += 1;
        let delta = read_extended(bytes, &mut at, byte >> 4).map_err(|e| match e {
            Extended::Truncated => err(DecodeErrorKind::TruncatedOption, start, h),
            Extended::Reserved => err(DecodeErrorKind::ReservedOptionDelta, start, h),
        })?;
        let length = read_extended(bytes, &mut at, byte & 0x0F).map_err(|e| match e {
            Extended::Truncated => err(DecodeErrorKind::TruncatedOption, start, h),
            Extended::Reserved => err(DecodeErrorKind::ReservedOptionLength, start, h),
        })?;
        number += delta;
        if number > u32::from(u16::MAX) {
            return Err(err(DecodeErrorKind::OptionNumberOverflow, start, h));
        }
        at = at
            .checked_add(length as usize)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| err(DecodeErrorKind::TruncatedOption, start, h))?;
    }
    Ok(header)
}

/// Reads an option delta or length whose 4-bit nibble is `nibble` (RFC 7252 §3.1): 13 → one
/// extra byte + 13, 14 → two extra bytes + 269, 15 → reserved (`None` = runs past the end).
fn read_extended(bytes: &[u8], at: &mut usize, nibble: u8) -> Result<u32, Extended> {
    match nibble {
        13 => {
            let b = *bytes.get(*at).ok_or(Extended::Truncated)?;
            *at += 1;
            Ok(u32::from(b) + 13)
        }
        14 => {
            let (Some(&hi), Some(&lo)) = (bytes.get(*at), bytes.get(*at + 1)) else {
                return Err(Extended::Truncated);
            };
            *at += 2;
            Ok(u32::from(u16::from_be_bytes([hi, lo])) + 269)
        }
        15 => Err(Extended::Reserved),
        n => Ok(u32::from(n)),
    }
}

/// Why an option delta or length could not be read.
enum Extended {
    Truncated,
    Reserved,
}

/// Hex-decodes a test vector (whitespace ignored).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            u8::from_str_radix(text, 16).unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::option::{self, ContentFormat};
    use proptest::prelude::*;

    fn kind(bytes: &[u8]) -> DecodeErrorKind {
        match Message::decode(bytes) {
            Err(e) => e.kind,
            Ok(m) => panic!("expected an error, decoded {m:?}"),
        }
    }

    #[test]
    fn decodes_coap_lite_readme_response() {
        // ACK 2.05, MID 0x5D1F, token 00003974, payload "Hello World!" (coap-lite lib.rs docs).
        let m = Message::decode(&hex("64455D1F00003974FF48656C6C6F20576F726C6421")).expect("valid");
        assert_eq!(m.mtype, MessageType::Acknowledgement);
        assert_eq!(m.code, Code::CONTENT);
        assert_eq!(m.message_id, 0x5D1F);
        assert_eq!(m.token.as_bytes(), &[0, 0, 0x39, 0x74]);
        assert_eq!(m.payload, b"Hello World!");
    }

    #[test]
    fn decodes_rfc7252_figure_examples() {
        // GET /temperature, CON, MID 0x7d34, no token: the first request of RFC 7252 Figure 16,
        // laid out per §3 (header 40 01 7d34, option delta 11 length 11).
        let bytes = hex("40017d34 bb74656d7065726174757265");
        let m = Message::decode(&bytes).expect("valid");
        assert_eq!(m.code, Code::GET);
        assert!(m.token.is_empty());
        assert_eq!(m.options.uri_path(), vec!["temperature"]);
        assert_eq!(m.encode().expect("encodes"), bytes);
    }

    #[test]
    fn round_trips_lwm2m_register() {
        // CON POST /rd?ep=meter-1&lt=300, token 0xa1b2, Content-Format 40.
        let mut m = Message::new(
            MessageType::Confirmable,
            Code::POST,
            0x1234,
            Token::new(&[0xa1, 0xb2]).expect("2 bytes"),
        );
        m.options.set_uri_path(["rd"]);
        m.options.push_uri_query("ep=meter-1");
        m.options.push_uri_query("lt=300");
        m.options.set_content_format(ContentFormat::LINK_FORMAT);
        m.payload = b"</3/0>,</1/0>".to_vec();
        let bytes = m.encode().expect("encodes");
        assert_eq!(
            bytes,
            hex(
                "42021234a1b2 b2 7264 11 28 3a 65703d6d657465722d31 06 6c743d333030 ff 3c2f332f303e2c3c2f312f303e"
            )
        );
        assert_eq!(Message::decode(&bytes).expect("valid"), m);
    }

    #[test]
    fn large_option_numbers_and_lengths_round_trip() {
        let mut m = Message::new(MessageType::NonConfirmable, Code::CONTENT, 1, Token::EMPTY);
        m.options.push(option::URI_PATH, vec![b'x'; 300]); // 2-byte extended length
        m.options.push(2048, vec![1, 2, 3]); // 2-byte extended delta
        m.options
            .set_block2(option::BlockOption::new(4096, true, 5).expect("valid"));
        let bytes = m.encode().expect("encodes");
        let back = Message::decode(&bytes).expect("valid");
        assert_eq!(back, m);
        assert_eq!(
            back.options.block2(),
            Some(Ok(option::BlockOption {
                num: 4096,
                more: true,
                szx: 5
            }))
        );
    }

    #[test]
    fn zero_length_token_is_valid() {
        let m = Message::decode(&hex("5045 0001")).expect("valid");
        assert_eq!(m.token, Token::EMPTY);
        assert_eq!(m.mtype, MessageType::NonConfirmable);
    }

    #[test]
    fn malformed_datagrams_give_typed_errors() {
        // Truncated header.
        assert_eq!(kind(&hex("4001")), DecodeErrorKind::TooShort(2));
        assert_eq!(kind(&[]), DecodeErrorKind::TooShort(0));
        // Version 2 / version 0: silently ignored, so no header is reported.
        let e = Message::decode(&hex("80011234")).expect_err("version 2");
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedVersion(2));
        assert_eq!(e.header, None);
        assert_eq!(
            kind(&hex("00011234")),
            DecodeErrorKind::UnsupportedVersion(0)
        );
        // Token length 9..=15 (coap-lite rejects these too).
        for tkl in 9u8..=15 {
            let mut bytes = vec![0x40 | tkl, 0x01, 0x12, 0x34];
            bytes.extend(std::iter::repeat_n(0xAA, usize::from(tkl)));
            let e = Message::decode(&bytes).expect_err("reserved tkl");
            assert_eq!(e.kind, DecodeErrorKind::ReservedTokenLength(tkl));
            assert_eq!(e.header.map(|h| h.message_id), Some(0x1234));
        }
        // Token runs past the end.
        assert_eq!(
            kind(&hex("44011234 aabb")),
            DecodeErrorKind::TruncatedToken(4)
        );
        // Option delta nibble 15 without it being a payload marker (0xF1).
        assert_eq!(
            kind(&hex("40011234 f1 00")),
            DecodeErrorKind::ReservedOptionDelta
        );
        // Option length nibble 15.
        assert_eq!(
            kind(&hex("40011234 bf")),
            DecodeErrorKind::ReservedOptionLength
        );
        // Option length past the end: Uri-Path of 5 bytes, 2 present.
        let e = Message::decode(&hex("40011234 b5 6162")).expect_err("truncated");
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::TruncatedOption, 4));
        // Extended delta byte missing.
        assert_eq!(kind(&hex("40011234 d0")), DecodeErrorKind::TruncatedOption);
        assert_eq!(
            kind(&hex("40011234 e0 01")),
            DecodeErrorKind::TruncatedOption
        );
        // Option number past 65535: 14-delta 0xFFFF + 269.
        assert_eq!(
            kind(&hex("40011234 e0ffff")),
            DecodeErrorKind::OptionNumberOverflow
        );
        // Payload marker with no payload: coap-lite 0.13.3 accepts this, RFC 7252 §3 does not.
        assert!(Packet::from_bytes(&hex("40011234 ff")).is_ok());
        let e = Message::decode(&hex("40011234 ff")).expect_err("marker only");
        assert_eq!(
            (e.kind, e.offset),
            (DecodeErrorKind::EmptyPayloadAfterMarker, 4)
        );
        // Empty message with a token or trailing bytes (§4.1); coap-lite accepts both.
        assert!(Packet::from_bytes(&hex("41001234 aa")).is_ok());
        assert_eq!(
            kind(&hex("41001234 aa")),
            DecodeErrorKind::EmptyMessageNotEmpty
        );
        assert_eq!(
            kind(&hex("60001234 ff01")),
            DecodeErrorKind::EmptyMessageNotEmpty
        );
        // Reserved code classes 1, 6, 7.
        assert_eq!(
            kind(&hex("40211234")),
            DecodeErrorKind::ReservedCodeClass(Code(0x21))
        );
        assert_eq!(
            kind(&hex("40e01234")),
            DecodeErrorKind::ReservedCodeClass(Code(0xe0))
        );
    }

    #[test]
    fn unknown_critical_option_decodes_and_is_detected() {
        // CON GET with option 9 (OSCORE, not understood); then one with unknown critical option
        // 2049 (delta nibble 14: 0x06f4 + 269).
        let m = Message::decode(&hex("40011234 90")).expect("well-formed");
        assert_eq!(m.options.first_unsupported_critical(), Some(9));
        let m = Message::decode(&hex("40011234 e1 06f4 00")).expect("well-formed");
        assert_eq!(m.options.get(2049), Some(&[0u8][..]));
        assert_eq!(m.options.first_unsupported_critical(), Some(2049));
    }

    #[test]
    fn encode_refuses_invalid_messages() {
        let mut m = Message::empty_ack(1);
        m.payload = vec![1];
        assert_eq!(m.encode(), Err(EncodeError::EmptyMessageNotEmpty));
        let mut m = Message::new(MessageType::Confirmable, Code::PUT, 1, Token::EMPTY);
        m.options
            .push(option::URI_PATH, vec![0; MAX_OPTION_VALUE_LEN + 1]);
        assert!(matches!(m.encode(), Err(EncodeError::OptionTooLong { .. })));
        assert_eq!(Message::reset(7).encode(), Ok(hex("70000007")));
    }

    #[test]
    fn code_helpers() {
        assert_eq!(Code::CONTENT.to_string(), "2.05");
        assert_eq!(Code::CONTINUE.to_string(), "2.31");
        assert_eq!(Code::new(4, 13), Code::REQUEST_ENTITY_TOO_LARGE);
        assert!(Code::GET.is_request() && !Code::EMPTY.is_request());
        assert!(Code::BAD_OPTION.is_error() && Code::BAD_OPTION.is_response());
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            0u8..4,
            prop_oneof![Just(0x01u8), Just(0x02), Just(0x45), Just(0x84), Just(0x5F)],
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..=8),
            proptest::collection::vec(
                (0u16..3000, proptest::collection::vec(any::<u8>(), 0..300)),
                0..6,
            ),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(t, code, mid, token, opts, payload)| {
                let mut m = Message::new(
                    MessageType::from_bits(t),
                    Code(code),
                    mid,
                    Token::new(&token).unwrap_or(Token::EMPTY),
                );
                for (n, v) in opts {
                    m.options.push(n, v);
                }
                m.payload = payload;
                m
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_plausible_headers(
            tkl in 0u8..16, code in any::<u8>(), rest in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut bytes = vec![0x40 | tkl, code, 0, 1];
            bytes.extend(rest);
            if let Ok(m) = Message::decode(&bytes) {
                // Anything we accept re-encodes and decodes to the same message.
                let again = m.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(Message::decode(&again).map_err(|e| TestCaseError::fail(e.to_string()))?, m);
            }
        }

        #[test]
        fn encode_is_byte_identical_to_coap_lite(m in arb_message()) {
            prop_assert_eq!(m.encode(), m.encode_with_coap_lite());
        }

        #[test]
        fn encode_is_byte_identical_to_coap_lite_for_long_values_and_numbers(
            number in prop_oneof![0u16..30, 250u16..300, 60_000u16..=u16::MAX],
            len in prop_oneof![0usize..20, 260usize..280, 65_000usize..=65_535],
            second in any::<u16>(),
        ) {
            let mut m = Message::new(MessageType::Confirmable, Code::POST, 7, Token::EMPTY);
            m.options.push(number, vec![0xA5; len]);
            m.options.push(second, vec![1, 2, 3]);
            prop_assert_eq!(m.encode(), m.encode_with_coap_lite());
        }

        #[test]
        fn encode_decode_round_trip(m in arb_message()) {
            let bytes = m.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = Message::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, m);
        }
    }
}
