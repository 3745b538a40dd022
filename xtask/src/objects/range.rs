//! Reads a resource's `<RangeEnumeration>` text into a [`RangeSpec`].
//!
//! The registry writes ranges as free text. The forms seen in practice are `min..max`, a single
//! value, a comma list of allowed values, and `min..max bytes`; anything else is prose. What the
//! numbers bound depends on the resource type: the value itself for numbers, the length in bytes
//! for String, Opaque and Corelnk values (OMA's convention, e.g. `0..255` on a URI string).

use super::{DataType, RangeSpec};

/// What a range on a resource of some type constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// The integral value (Integer, Unsigned Integer, Time).
    Integer,
    /// The numeric value (Float).
    Float,
    /// The length in bytes (String, Opaque, Corelnk).
    Length,
}

impl Bound {
    /// `None` for types a numeric range cannot apply to (Boolean, Objlnk, none).
    fn of(ty: DataType) -> Option<Bound> {
        match ty {
            DataType::Integer | DataType::UnsignedInteger | DataType::Time => Some(Bound::Integer),
            DataType::Float => Some(Bound::Float),
            DataType::String | DataType::Opaque | DataType::Corelnk => Some(Bound::Length),
            DataType::Boolean | DataType::Objlnk | DataType::None => None,
        }
    }
}

/// Parses `text` as the range of a resource of type `ty`.
///
/// Empty text is no range. Text that is not one of the recognised forms, or a form that does not
/// fit the type (a range on a Boolean, `bytes` on an Integer, bounds the wrong way round, numbers
/// that do not fit), becomes [`RangeSpec::Described`] with the text whitespace-normalised, so it is
/// kept for display but never enforced.
pub fn parse_range(text: &str, ty: DataType) -> Option<RangeSpec> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    Some(parse_form(&text, ty).unwrap_or(RangeSpec::Described(text)))
}

fn parse_form(text: &str, ty: DataType) -> Option<RangeSpec> {
    let bound = Bound::of(ty)?;
    let (body, in_bytes) = strip_bytes_suffix(text);
    if in_bytes && bound != Bound::Length {
        return None;
    }
    if let Some((lo, hi)) = body.split_once("..") {
        return interval(bound, lo.trim(), hi.trim());
    }
    if body.contains(',') {
        // An explicit list of values. On String/Opaque it lists allowed lengths (e.g. the 16, 32
        // or 48-byte SMS keys of object 0); `Range::OneOf` is the closest form the model has.
        if in_bytes {
            return None;
        }
        let values = body
            .split(',')
            .map(|v| integer(v.trim()))
            .collect::<Option<Vec<_>>>()?;
        return Some(RangeSpec::OneOf(values));
    }
    interval(bound, body, body)
}

/// Splits a trailing ` bytes` (or ` byte`) unit off `text`.
fn strip_bytes_suffix(text: &str) -> (&str, bool) {
    for suffix in [" bytes", " byte"] {
        let split = text
            .len()
            .checked_sub(suffix.len())
            .filter(|&i| text.is_char_boundary(i));
        if let Some(i) = split
            && text[i..].eq_ignore_ascii_case(suffix)
        {
            return (text[..i].trim_end(), true);
        }
    }
    (text, false)
}

fn interval(bound: Bound, lo: &str, hi: &str) -> Option<RangeSpec> {
    match bound {
        Bound::Integer => {
            let (min, max) = (integer(lo)?, integer(hi)?);
            (min <= max).then_some(RangeSpec::Integer { min, max })
        }
        Bound::Float => {
            let (min, max) = (float(lo)?, float(hi)?);
            (min <= max).then_some(RangeSpec::Float { min, max })
        }
        Bound::Length => {
            let (min, max) = (length(lo)?, length(hi)?);
            (min <= max).then_some(RangeSpec::Length { min, max })
        }
    }
}

/// A decimal integer with an optional sign, nothing else.
fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A finite decimal number. Rust's parser also takes `inf` and `NaN`, which are not ranges.
fn float(text: &str) -> Option<f64> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(text: &str) -> Option<RangeSpec> {
        Some(RangeSpec::Described(text.to_owned()))
    }

    #[test]
    fn empty_text_is_no_range() {
        assert_eq!(parse_range("", DataType::Integer), None);
        assert_eq!(parse_range("  \n\t ", DataType::String), None);
    }

    #[test]
    fn intervals_bound_the_value_of_numbers() {
        assert_eq!(
            parse_range("0..100", DataType::Integer),
            Some(RangeSpec::Integer { min: 0, max: 100 })
        );
        assert_eq!(
            parse_range("1..65534", DataType::UnsignedInteger),
            Some(RangeSpec::Integer { min: 1, max: 65534 })
        );
        assert_eq!(
            parse_range("-10 .. 10", DataType::Time),
            Some(RangeSpec::Integer { min: -10, max: 10 })
        );
        assert_eq!(
            parse_range("-1..1", DataType::Float),
            Some(RangeSpec::Float {
                min: -1.0,
                max: 1.0
            })
        );
        assert_eq!(
            parse_range("0.5..2.25", DataType::Float),
            Some(RangeSpec::Float {
                min: 0.5,
                max: 2.25
            })
        );
    }

    #[test]
    fn intervals_bound_the_length_of_strings_and_opaque() {
        let length = Some(RangeSpec::Length { min: 0, max: 255 });
        assert_eq!(parse_range("0..255", DataType::String), length);
        assert_eq!(parse_range("0..255 bytes", DataType::String), length);
        assert_eq!(parse_range("0..255 Bytes", DataType::Opaque), length);
        assert_eq!(parse_range("0..255", DataType::Corelnk), length);
        assert_eq!(
            parse_range("6", DataType::Opaque),
            Some(RangeSpec::Length { min: 6, max: 6 })
        );
        assert_eq!(
            parse_range("32 bytes", DataType::Opaque),
            Some(RangeSpec::Length { min: 32, max: 32 })
        );
    }

    #[test]
    fn a_single_number_is_a_one_value_interval() {
        assert_eq!(
            parse_range("255", DataType::Integer),
            Some(RangeSpec::Integer { min: 255, max: 255 })
        );
        assert_eq!(
            parse_range("1.5", DataType::Float),
            Some(RangeSpec::Float { min: 1.5, max: 1.5 })
        );
    }

    #[test]
    fn comma_lists_are_sets_of_values() {
        assert_eq!(
            parse_range("16,32,48", DataType::Opaque),
            Some(RangeSpec::OneOf(vec![16, 32, 48]))
        );
        assert_eq!(
            parse_range("1, 2, -3", DataType::Integer),
            Some(RangeSpec::OneOf(vec![1, 2, -3]))
        );
        assert_eq!(parse_range("1,,2", DataType::Integer), described("1,,2"));
        assert_eq!(
            parse_range("16,32 bytes", DataType::Opaque),
            described("16,32 bytes")
        );
    }

    #[test]
    fn other_text_is_kept_as_a_description() {
        assert_eq!(
            parse_range("8-Bits", DataType::Integer),
            described("8-Bits")
        );
        assert_eq!(
            parse_range(
                "The possible values are\n   those listed  in the spec",
                DataType::String
            ),
            described("The possible values are those listed in the spec")
        );
        assert_eq!(parse_range("1..", DataType::Integer), described("1.."));
        assert_eq!(parse_range("a..b", DataType::Integer), described("a..b"));
        assert_eq!(
            parse_range("\"x\\y\"", DataType::String),
            described("\"x\\y\"")
        );
    }

    #[test]
    fn forms_that_do_not_fit_the_type_are_described() {
        // Bounds the wrong way round, a unit on a number, fractions on integers, negative
        // lengths, numbers outside i64, ranges on types that have no magnitude.
        assert_eq!(parse_range("10..1", DataType::Integer), described("10..1"));
        assert_eq!(
            parse_range("0..255 bytes", DataType::Integer),
            described("0..255 bytes")
        );
        assert_eq!(
            parse_range("0..1.5", DataType::Integer),
            described("0..1.5")
        );
        assert_eq!(parse_range("-1..5", DataType::String), described("-1..5"));
        assert_eq!(
            parse_range("0..18446744073709551615", DataType::UnsignedInteger),
            described("0..18446744073709551615")
        );
        assert_eq!(parse_range("0..1", DataType::Boolean), described("0..1"));
        assert_eq!(parse_range("0..1", DataType::Objlnk), described("0..1"));
        assert_eq!(
            parse_range("inf..NaN", DataType::Float),
            described("inf..NaN")
        );
        assert_eq!(
            parse_range("1e999..2", DataType::Float),
            described("1e999..2")
        );
    }

    #[test]
    fn non_ascii_text_does_not_panic() {
        assert_eq!(
            parse_range("0..255 bÿtes", DataType::String),
            described("0..255 bÿtes")
        );
        assert_eq!(parse_range("ÿÿÿÿÿÿ", DataType::String), described("ÿÿÿÿÿÿ"));
    }
}
