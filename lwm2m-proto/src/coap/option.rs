//! CoAP options: the option numbers we know (RFC 7252 §5.10, RFC 7641 §2, RFC 7959 §2.1), an
//! ordered option list, and typed views of the options the engine interprets (uint values, Block1 /
//! Block2, Content-Format, Uri-Path and Uri-Query).
//!
//! Block options are encoded here rather than through coap-lite, whose `BlockValue` keeps NUM in 12
//! bits and silently corrupts block 4096 and above (see STACK-NOTES.md).

use std::fmt;

use smallvec::SmallVec;
use thiserror::Error;

/// If-Match (RFC 7252 §5.10.8.1), critical, repeatable, 0–8 bytes.
pub const IF_MATCH: u16 = 1;
/// Uri-Host (RFC 7252 §5.10.1), critical, 1–255 bytes.
pub const URI_HOST: u16 = 3;
/// ETag (RFC 7252 §5.10.6), elective, 1–8 bytes.
pub const ETAG: u16 = 4;
/// If-None-Match (RFC 7252 §5.10.8.2), critical, empty.
pub const IF_NONE_MATCH: u16 = 5;
/// Observe (RFC 7641 §2), elective, 0–3 bytes.
pub const OBSERVE: u16 = 6;
/// Uri-Port (RFC 7252 §5.10.1), critical, 0–2 bytes.
pub const URI_PORT: u16 = 7;
/// Location-Path (RFC 7252 §5.10.7), elective, repeatable.
pub const LOCATION_PATH: u16 = 8;
/// Uri-Path (RFC 7252 §5.10.1), critical, repeatable, 0–255 bytes each.
pub const URI_PATH: u16 = 11;
/// Content-Format (RFC 7252 §5.10.3), elective, 0–2 bytes.
pub const CONTENT_FORMAT: u16 = 12;
/// Max-Age (RFC 7252 §5.10.5), elective, 0–4 bytes.
pub const MAX_AGE: u16 = 14;
/// Uri-Query (RFC 7252 §5.10.1), critical, repeatable, 0–255 bytes each.
pub const URI_QUERY: u16 = 15;
/// Accept (RFC 7252 §5.10.4), critical, 0–2 bytes.
pub const ACCEPT: u16 = 17;
/// Location-Query (RFC 7252 §5.10.7), elective, repeatable.
pub const LOCATION_QUERY: u16 = 20;
/// Block2 (RFC 7959 §2.1), critical, 0–3 bytes.
pub const BLOCK2: u16 = 23;
/// Block1 (RFC 7959 §2.1), critical, 0–3 bytes.
pub const BLOCK1: u16 = 27;
/// Size2 (RFC 7959 §4), elective, 0–4 bytes.
pub const SIZE2: u16 = 28;
/// Proxy-Uri (RFC 7252 §5.10.2), critical, 1–1034 bytes.
pub const PROXY_URI: u16 = 35;
/// Proxy-Scheme (RFC 7252 §5.10.2), critical, 1–255 bytes.
pub const PROXY_SCHEME: u16 = 39;
/// Size1 (RFC 7252 §5.10.9), elective, 0–4 bytes.
pub const SIZE1: u16 = 60;

/// RFC 7252 §5.4.1: odd option numbers are critical.
pub fn is_critical(number: u16) -> bool {
    number & 1 == 1
}

/// The critical options this engine passes on or interprets, with their permitted value lengths
/// and whether they may repeat (RFC 7252 §5.10 table; RFC 7959 §2.1). OSCORE (9) and any other
/// odd number are not understood, so a request carrying one is answered 4.02 (RFC 7252 §5.4.1).
const UNDERSTOOD_CRITICAL: &[(u16, usize, usize, bool)] = &[
    (IF_MATCH, 0, 8, true),
    (URI_HOST, 1, 255, false),
    (IF_NONE_MATCH, 0, 0, false),
    (URI_PORT, 0, 2, false),
    (URI_PATH, 0, 255, true),
    (URI_QUERY, 0, 255, true),
    (ACCEPT, 0, 2, false),
    (BLOCK2, 0, 3, false),
    (BLOCK1, 0, 3, false),
    (PROXY_URI, 1, 1034, false),
    (PROXY_SCHEME, 1, 255, false),
];

/// The list of options of one message, kept sorted by option number; values of a repeated option
/// keep their order (RFC 7252 §5.4.5: the order of repeated options is significant).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// Values up to 16 bytes (Uri-Path segments, Accept, Content-Format, Observe, Block, most
    /// Uri-Query arguments) are stored inline: building, cloning and decoding a typical request
    /// allocates once, for the list.
    entries: Vec<(u16, OptionValue)>,
}

/// One option value, inline up to 16 bytes.
type OptionValue = SmallVec<[u8; 16]>;

impl Options {
    /// No options.
    pub fn new() -> Options {
        Options::default()
    }

    /// All options in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &[u8])> + '_ {
        self.entries.iter().map(|(n, v)| (*n, v.as_slice()))
    }

    /// Number of option instances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no options at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of option `number`.
    pub fn get(&self, number: u16) -> Option<&[u8]> {
        self.get_all(number).next()
    }

    /// Every value of option `number`, in order.
    pub fn get_all(&self, number: u16) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries
            .iter()
            .filter(move |(n, _)| *n == number)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether option `number` is present.
    pub fn contains(&self, number: u16) -> bool {
        self.entries.iter().any(|(n, _)| *n == number)
    }

    /// Appends a value of option `number` after any existing values of that number.
    pub fn push(&mut self, number: u16, value: impl AsRef<[u8]>) {
        let at = self.entries.partition_point(|(n, _)| *n <= number);
        self.entries
            .insert(at, (number, OptionValue::from_slice(value.as_ref())));
    }

    /// Replaces all values of option `number` with one value.
    pub fn set(&mut self, number: u16, value: impl AsRef<[u8]>) {
        self.remove(number);
        self.push(number, value);
    }

    /// Removes every value of option `number`.
    pub fn remove(&mut self, number: u16) {
        self.entries.retain(|(n, _)| *n != number);
    }

    /// Option `number` as an unsigned integer (RFC 7252 §3.2: big-endian, leading zeros allowed,
    /// empty = 0). `None` when absent or longer than 4 bytes.
    pub fn get_uint(&self, number: u16) -> Option<u32> {
        decode_uint(self.get(number)?)
    }

    /// Sets option `number` to `value` in the shortest encoding (RFC 7252 §3.2).
    pub fn set_uint(&mut self, number: u16, value: u32) {
        let bytes = value.to_be_bytes();
        self.set(number, shortest_uint(&bytes));
    }

    /// The Block1 option, if present (`Some(Err)` when its value is invalid).
    pub fn block1(&self) -> Option<Result<BlockOption, BlockOptionError>> {
        self.get(BLOCK1).map(BlockOption::decode)
    }

    /// The Block2 option, if present (`Some(Err)` when its value is invalid).
    pub fn block2(&self) -> Option<Result<BlockOption, BlockOptionError>> {
        self.get(BLOCK2).map(BlockOption::decode)
    }

    /// Sets the Block1 option.
    pub fn set_block1(&mut self, block: BlockOption) {
        self.set(BLOCK1, block.encode());
    }

    /// Sets the Block2 option.
    pub fn set_block2(&mut self, block: BlockOption) {
        self.set(BLOCK2, block.encode());
    }

    /// The Observe value (RFC 7641 §2), if present and valid (at most 3 bytes).
    pub fn observe(&self) -> Option<u32> {
        let raw = self.get(OBSERVE)?;
        if raw.len() > 3 {
            return None;
        }
        decode_uint(raw)
    }

    /// Sets the Observe option; values are 24-bit (RFC 7641 §2), higher bits are dropped.
    pub fn set_observe(&mut self, value: u32) {
        self.set_uint(OBSERVE, value & 0x00FF_FFFF);
    }

    /// The Content-Format, if present and at most 2 bytes long.
    pub fn content_format(&self) -> Option<ContentFormat> {
        uint16(self.get(CONTENT_FORMAT)?).map(ContentFormat)
    }

    /// Sets the Content-Format.
    pub fn set_content_format(&mut self, format: ContentFormat) {
        self.set_uint(CONTENT_FORMAT, u32::from(format.0));
    }

    /// The Accept option, if present and at most 2 bytes long.
    pub fn accept(&self) -> Option<ContentFormat> {
        uint16(self.get(ACCEPT)?).map(ContentFormat)
    }

    /// Sets the Accept option.
    pub fn set_accept(&mut self, format: ContentFormat) {
        self.set_uint(ACCEPT, u32::from(format.0));
    }

    /// The Uri-Path segments, decoded as UTF-8 (invalid bytes become U+FFFD, so they never
    /// match an LwM2M object or resource id).
    pub fn uri_path(&self) -> Vec<String> {
        self.get_all(URI_PATH)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// The Uri-Path as one string, `/`-separated with a leading `/` (`"/3/0/1"`; `"/"` if empty).
    pub fn uri_path_string(&self) -> String {
        let segments = self.uri_path();
        if segments.is_empty() {
            return "/".to_owned();
        }
        segments.iter().fold(String::new(), |mut acc, s| {
            acc.push('/');
            acc.push_str(s);
            acc
        })
    }

    /// Replaces the Uri-Path with `segments` (one option per segment, RFC 7252 §6.4 step 8).
    pub fn set_uri_path<I, S>(&mut self, segments: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.remove(URI_PATH);
        for segment in segments {
            self.push(URI_PATH, segment.as_ref().as_bytes());
        }
    }

    /// The Uri-Query arguments (`"ep=meter-1"`, …), decoded as UTF-8 lossily.
    pub fn uri_query(&self) -> Vec<String> {
        self.get_all(URI_QUERY)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// Appends one Uri-Query argument.
    pub fn push_uri_query(&mut self, argument: impl AsRef<str>) {
        self.push(URI_QUERY, argument.as_ref().as_bytes());
    }

    /// The Location-Path segments (e.g. the registration id after an LwM2M Register).
    pub fn location_path(&self) -> Vec<String> {
        self.get_all(LOCATION_PATH)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// Replaces the Location-Path with `segments`.
    pub fn set_location_path<I, S>(&mut self, segments: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.remove(LOCATION_PATH);
        for segment in segments {
            self.push(LOCATION_PATH, segment.as_ref().as_bytes());
        }
    }

    /// The first critical option this engine cannot honour, if any: an unknown odd number, a known
    /// critical option with a value length outside its range (RFC 7252 §5.4.3: treated as
    /// unrecognised), or a non-repeatable critical option that repeats (§5.4.5), or a Block option
    /// with the reserved SZX 7 (RFC 7959 §2.2). Such a request is answered 4.02 Bad Option.
    pub fn first_unsupported_critical(&self) -> Option<u16> {
        let mut previous: Option<u16> = None;
        for (number, value) in self.iter() {
            if !is_critical(number) {
                previous = Some(number);
                continue;
            }
            let Some(&(_, min, max, repeatable)) =
                UNDERSTOOD_CRITICAL.iter().find(|(n, ..)| *n == number)
            else {
                return Some(number);
            };
            if value.len() < min || value.len() > max {
                return Some(number);
            }
            if !repeatable && previous == Some(number) {
                return Some(number);
            }
            if (number == BLOCK1 || number == BLOCK2) && BlockOption::decode(value).is_err() {
                return Some(number);
            }
            previous = Some(number);
        }
        None
    }
}

fn uint16(raw: &[u8]) -> Option<u16> {
    if raw.len() > 2 {
        return None;
    }
    decode_uint(raw).and_then(|v| u16::try_from(v).ok())
}

/// Decodes an RFC 7252 §3.2 uint of at most 4 bytes.
pub fn decode_uint(raw: &[u8]) -> Option<u32> {
    if raw.len() > 4 {
        return None;
    }
    Some(raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Encodes a uint in the fewest bytes (RFC 7252 §3.2: 0 is the empty value).
pub fn encode_uint(value: u32) -> Vec<u8> {
    shortest_uint(&value.to_be_bytes()).to_vec()
}

/// A big-endian uint without its leading zero bytes (RFC 7252 §3.2: 0 is the empty value).
fn shortest_uint(be: &[u8; 4]) -> &[u8] {
    let skip = be.iter().take_while(|b| **b == 0).count();
    be.get(skip..).unwrap_or(&[])
}

/// A Content-Format / Accept identifier (RFC 7252 §12.3 registry; LwM2M TS Core §5.4 and §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentFormat(pub u16);

impl ContentFormat {
    /// text/plain; charset=utf-8.
    pub const TEXT_PLAIN: ContentFormat = ContentFormat(0);
    /// application/link-format (RFC 6690), used by LwM2M Register and Discover.
    pub const LINK_FORMAT: ContentFormat = ContentFormat(40);
    /// application/octet-stream (LwM2M opaque).
    pub const OCTET_STREAM: ContentFormat = ContentFormat(42);
    /// application/json.
    pub const JSON: ContentFormat = ContentFormat(50);
    /// application/cbor.
    pub const CBOR: ContentFormat = ContentFormat(60);
    /// application/senml+json (RFC 8428).
    pub const SENML_JSON: ContentFormat = ContentFormat(110);
    /// application/senml+cbor (RFC 8428).
    pub const SENML_CBOR: ContentFormat = ContentFormat(112);
    /// application/vnd.oma.lwm2m+tlv.
    pub const LWM2M_TLV: ContentFormat = ContentFormat(11542);
    /// application/vnd.oma.lwm2m+json (LwM2M 1.0 JSON).
    pub const LWM2M_JSON: ContentFormat = ContentFormat(11543);
    /// application/vnd.oma.lwm2m+cbor (LwM2M 1.2).
    pub const LWM2M_CBOR: ContentFormat = ContentFormat(11544);
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Largest block number: NUM has at most 20 bits (RFC 7959 §2.2, 3-byte option value).
pub const MAX_BLOCK_NUM: u32 = (1 << 20) - 1;

/// A Block1 or Block2 option value (RFC 7959 §2.2): block number, more flag, size exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockOption {
    /// Block number, 0 ..= 2^20 − 1.
    pub num: u32,
    /// More blocks follow (M bit).
    pub more: bool,
    /// Size exponent: the block size is 2^(szx + 4) bytes, 16 ..= 1024; 7 is reserved.
    pub szx: u8,
}

/// Why a Block1/Block2 option value or a block request is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BlockOptionError {
    /// The option value is longer than 3 bytes (RFC 7959 §2.2).
    #[error("block option value is {0} bytes, at most 3 are allowed")]
    TooLong(usize),
    /// SZX 7 is reserved (RFC 7959 §2.2: "MUST NOT be sent and MUST lead to a 4.00").
    #[error("block option uses the reserved SZX 7")]
    ReservedSzx,
    /// NUM does not fit in 20 bits.
    #[error("block number {0} exceeds 2^20 - 1")]
    NumTooLarge(u32),
}

impl BlockOption {
    /// A block option, checking NUM and SZX ranges.
    pub fn new(num: u32, more: bool, szx: u8) -> Result<BlockOption, BlockOptionError> {
        if szx > 6 {
            return Err(BlockOptionError::ReservedSzx);
        }
        if num > MAX_BLOCK_NUM {
            return Err(BlockOptionError::NumTooLarge(num));
        }
        Ok(BlockOption { num, more, szx })
    }

    /// The block size in bytes: 2^(SZX + 4).
    pub fn size(&self) -> usize {
        block_size(self.szx)
    }

    /// Byte offset of this block in the body: NUM × size.
    pub fn offset(&self) -> usize {
        (self.num as usize).saturating_mul(self.size())
    }

    /// Decodes an option value (RFC 7959 §2.2: NUM in the high bits, then M, then 3-bit SZX;
    /// 0–3 bytes, the empty value meaning NUM 0, M 0, SZX 0).
    pub fn decode(raw: &[u8]) -> Result<BlockOption, BlockOptionError> {
        if raw.len() > 3 {
            return Err(BlockOptionError::TooLong(raw.len()));
        }
        let value = raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (value & 0x7) as u8;
        if szx == 7 {
            return Err(BlockOptionError::ReservedSzx);
        }
        Ok(BlockOption {
            num: value >> 4,
            more: value & 0x8 != 0,
            szx,
        })
    }

    /// Encodes the value in the fewest bytes. NUM is masked to 20 bits and SZX to 3; build with
    /// [`BlockOption::new`] to have out-of-range values rejected instead.
    pub fn encode(&self) -> Vec<u8> {
        let value = ((self.num & MAX_BLOCK_NUM) << 4)
            | if self.more { 0x8 } else { 0 }
            | u32::from(self.szx & 0x7);
        encode_uint(value)
    }
}

/// Block size for a size exponent (clamped to 6: 1024 bytes).
pub fn block_size(szx: u8) -> usize {
    16usize << szx.min(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_option_small_values() {
        // RFC 7959 §2.2: NUM 0, M 0, SZX 0 may be sent as the empty value.
        assert_eq!(
            BlockOption::decode(&[]),
            Ok(BlockOption {
                num: 0,
                more: false,
                szx: 0
            })
        );
        let b = BlockOption::new(1, true, 6).expect("valid");
        assert_eq!(b.encode(), vec![0x1E]);
        assert_eq!(b.size(), 1024);
        assert_eq!(b.offset(), 1024);
        assert_eq!(BlockOption::decode(&[0x1E]), Ok(b));
    }

    #[test]
    fn block_option_num_4096_needs_three_bytes() {
        // 4096 << 4 | M(8) | SZX 5 = 0x010000 | 0x0D: the value coap-lite 0.13.3 encodes as NUM 0.
        let b = BlockOption::new(4096, true, 5).expect("valid");
        assert_eq!(b.encode(), vec![0x01, 0x00, 0x0D]);
        assert_eq!(BlockOption::decode(&[0x01, 0x00, 0x0D]), Ok(b));
        assert_eq!(b.offset(), 4096 * 512);
    }

    #[test]
    fn block_option_largest_num() {
        let b = BlockOption::new(1_048_575, false, 6).expect("valid");
        assert_eq!(b.encode(), vec![0xFF, 0xFF, 0xF6]);
        assert_eq!(BlockOption::decode(&[0xFF, 0xFF, 0xF6]), Ok(b));
        assert_eq!(
            BlockOption::new(1_048_576, false, 6),
            Err(BlockOptionError::NumTooLarge(1_048_576))
        );
    }

    #[test]
    fn block_option_rejects_reserved_szx_and_long_values() {
        assert_eq!(
            BlockOption::decode(&[0x17]),
            Err(BlockOptionError::ReservedSzx)
        );
        assert_eq!(
            BlockOption::new(0, false, 7),
            Err(BlockOptionError::ReservedSzx)
        );
        assert_eq!(
            BlockOption::decode(&[0, 0, 0, 0x16]),
            Err(BlockOptionError::TooLong(4))
        );
    }

    #[test]
    fn uint_encoding_is_minimal() {
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(0xFF), vec![0xFF]);
        assert_eq!(encode_uint(11542), vec![0x2D, 0x16]);
        assert_eq!(encode_uint(0x0100_0000), vec![1, 0, 0, 0]);
        assert_eq!(decode_uint(&[0, 0, 1]), Some(1));
        assert_eq!(decode_uint(&[1, 0, 0, 0, 0]), None);
    }

    #[test]
    fn options_keep_wire_order_and_repeat_order() {
        let mut o = Options::new();
        o.push(URI_QUERY, "b=2");
        o.push(URI_PATH, "3");
        o.push(URI_QUERY, "a=1");
        o.push(URI_PATH, "0");
        o.set_content_format(ContentFormat::LWM2M_TLV);
        let numbers: Vec<u16> = o.iter().map(|(n, _)| n).collect();
        assert_eq!(
            numbers,
            vec![URI_PATH, URI_PATH, CONTENT_FORMAT, URI_QUERY, URI_QUERY]
        );
        assert_eq!(o.uri_path(), vec!["3", "0"]);
        assert_eq!(o.uri_path_string(), "/3/0");
        assert_eq!(o.uri_query(), vec!["b=2", "a=1"]);
        assert_eq!(o.content_format(), Some(ContentFormat::LWM2M_TLV));
        o.set_uri_path(["5", "0", "1"]);
        assert_eq!(o.uri_path_string(), "/5/0/1");
    }

    #[test]
    fn unsupported_critical_options() {
        let mut o = Options::new();
        o.set_uri_path(["3"]);
        o.push(ETAG, [1u8]);
        o.push(65000, [1u8]); // elective unknown: ignored
        assert_eq!(o.first_unsupported_critical(), None);
        o.push(9, Vec::new()); // OSCORE: not understood
        assert_eq!(o.first_unsupported_critical(), Some(9));
        let mut o = Options::new();
        o.push(ACCEPT, [0u8, 0, 1]); // 3 bytes: outside 0–2
        assert_eq!(o.first_unsupported_critical(), Some(ACCEPT));
        let mut o = Options::new();
        o.push(URI_HOST, "a");
        o.push(URI_HOST, "b"); // not repeatable
        assert_eq!(o.first_unsupported_critical(), Some(URI_HOST));
        let mut o = Options::new();
        o.push(BLOCK2, [0x07u8]); // SZX 7
        assert_eq!(o.first_unsupported_critical(), Some(BLOCK2));
    }
}
