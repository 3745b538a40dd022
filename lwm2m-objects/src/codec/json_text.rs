//! JSON text as the record formats (SenML JSON, LwM2M JSON) read it: UTF-8 and syntax checked by
//! serde_json with errors at byte offsets, a scanner that finds where each record starts, and JSON
//! numbers as SenML numbers.

use super::senml::{SenmlNumber, syntax};
use super::{ContentFormat, DecodeError, DecodeErrorKind};

/// A JSON number as SenML carries it: integers stay exact, floats stay floats, and floats are
/// exact too: serde_json's `float_roundtrip` feature (root Cargo.toml) makes its parser correctly
/// rounded, where the default one may be off by one unit in the last place, and round trips must
/// be exact.
pub(crate) fn number_from_json(n: &serde_json::Number) -> SenmlNumber {
    if let Some(u) = n.as_u64() {
        SenmlNumber::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        SenmlNumber::Signed(i)
    } else {
        // Without serde_json's `arbitrary_precision` feature a number that is neither u64 nor
        // i64 is an f64, so `as_f64` always answers.
        SenmlNumber::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// A short name of a JSON value's kind, for error messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Checks that `bytes` is UTF-8 JSON (RFC 8428 §5 allows only UTF-8) and parses it. serde_json
/// bounds nesting (128 levels) and rejects trailing data. `Ok(None)` for an empty or blank payload.
pub(crate) fn parse_json(
    format: ContentFormat,
    bytes: &[u8],
) -> Result<Option<(&str, serde_json::Value)>, DecodeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::new(format, DecodeErrorKind::InvalidUtf8).at(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value = serde_json::from_str(text).map_err(|e| json_error(format, text, &e))?;
    Ok(Some((text, value)))
}

fn json_error(format: ContentFormat, text: &str, e: &serde_json::Error) -> DecodeError {
    if e.classify() == serde_json::error::Category::Eof {
        return DecodeError::new(format, DecodeErrorKind::Truncated).at(text.len());
    }
    let message = e.to_string();
    // serde_json appends " at line L column C"; the position is carried as a byte offset instead.
    let message = match message.rsplit_once(" at line ") {
        Some((head, _)) => head.to_owned(),
        None => message,
    };
    syntax(format, message).at(line_column_offset(text, e.line(), e.column()))
}

/// The byte offset of serde_json's 1-based line and column (columns count bytes).
fn line_column_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// Which array of a JSON document holds the records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PackArray {
    /// The document is the array (SenML).
    Root,
    /// The array is the value of this member of the root object (LwM2M JSON `"e"`).
    RootMember(&'static str),
}

/// Finds the byte offset where each element of the record array starts, so that errors about a
/// record can say where it is (serde_json's `Value` keeps no positions).
///
/// Only run on text serde_json has accepted, so it can assume well-formed JSON; on anything else
/// it still terminates without panicking (every step advances and slices are checked).
pub(crate) fn element_offsets(text: &str, array: PackArray) -> Vec<usize> {
    enum Frame<'t> {
        Array { is_pack: bool },
        Object { expecting_key: bool, key: &'t str },
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut out: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
                i += 1;
            }
            b',' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = true;
                }
                i += 1;
            }
            b']' | b'}' => {
                stack.pop();
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                match stack.last_mut() {
                    Some(Frame::Object {
                        expecting_key: true,
                        key,
                    }) => *key = text.get(i + 1..end.saturating_sub(1)).unwrap_or(""),
                    _ => note_element(&stack, &mut out, i),
                }
                i = end;
            }
            b'[' | b'{' => {
                note_element(&stack, &mut out, i);
                if b == b'[' {
                    let is_pack = match (array, stack.as_slice()) {
                        (PackArray::Root, []) => true,
                        (PackArray::RootMember(member), [Frame::Object { key, .. }]) => {
                            *key == member
                        }
                        _ => false,
                    };
                    if is_pack {
                        // A repeated member: serde_json keeps the last one, and so do we.
                        out.clear();
                    }
                    stack.push(Frame::Array { is_pack });
                } else {
                    stack.push(Frame::Object {
                        expecting_key: true,
                        key: "",
                    });
                }
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                // A number or a literal (true, false, null): one element, however long.
                let end = bytes
                    .iter()
                    .skip(i)
                    .position(|c| c.is_ascii_whitespace() || b",]}:".contains(c))
                    .map_or(bytes.len(), |n| i + n);
                note_element(&stack, &mut out, i);
                i = end.max(i + 1);
            }
        }
    }

    /// Notes a value starting at `offset` when it is an element of the pack array.
    fn note_element(stack: &[Frame<'_>], out: &mut Vec<usize>, offset: usize) {
        if let [.., Frame::Array { is_pack: true }] = stack {
            out.push(offset);
        }
    }

    /// The index just past the string starting with the quote at `start`.
    fn string_end(bytes: &[u8], start: usize) -> usize {
        let mut j = start + 1;
        while let Some(&c) = bytes.get(j) {
            match c {
                b'\\' => j += 2,
                b'"' => return j + 1,
                _ => j += 1,
            }
        }
        bytes.len()
    }

    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The JSON number in `text`, read as SenML reads it.
    fn number(text: &str) -> SenmlNumber {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Number(n)) => number_from_json(&n),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn scanner_finds_elements_and_numbers_are_exact() {
        let text =
            r#" [ {"n":"a\"]{","v":0.30000000000000004,"x":[1,{"v":2}]} ,{"t":-1e-7}, [], 3 ]"#;
        let found = element_offsets(text, PackArray::Root);
        // The nested array and object inside "x" are not elements of the pack.
        assert_eq!(found.len(), 4);
        assert_eq!(found[0], 3);
        assert_eq!(found[1], text.find(r#"{"t""#).unwrap());
        assert_eq!(found[2], text.find("[]").unwrap());
        assert_eq!(&text[found[3]..found[3] + 1], "3");
        let text = r#"{"x":[{"v":9}],"e":[{"v":1},{"v":2.5}],"bt":3}"#;
        let found = element_offsets(text, PackArray::RootMember("e"));
        assert_eq!(
            found,
            [
                text.find(r#"{"v":1}"#).unwrap(),
                text.find(r#"{"v":2.5}"#).unwrap()
            ]
        );
        // Floats are read exactly, as Rust's correctly rounded parser reads them. serde_json
        // without `float_roundtrip` gets the last four wrong (the last two come from
        // proptest-regressions/codec/senml_json.txt).
        for text in [
            "0.30000000000000004",
            "-1e-7",
            "2.5",
            "3.590615209290293e-309",
            "121.87100000000001",
            "216.34699999999998",
            "3.752763973012046e-213",
            "6.292247555994569e-239",
        ] {
            let exact: f64 = text.parse().unwrap();
            assert_eq!(number(text), SenmlNumber::Float(exact), "{text}");
        }
        assert_eq!(number("-9"), SenmlNumber::Signed(-9));
        assert_eq!(
            number("18446744073709551615"),
            SenmlNumber::Unsigned(u64::MAX)
        );
    }
}
