//! JSON text as the record formats (SenML JSON, LwM2M JSON) read it: UTF-8 and syntax checked by
//! serde_json with errors at byte offsets, a scanner that finds where each record starts (and the
//! texts of its numbers), and JSON numbers as SenML numbers.

use super::senml::{SenmlNumber, syntax};
use super::{ContentFormat, DecodeError, DecodeErrorKind};

/// A JSON number as SenML carries it. Integers are exact in serde_json; floats are re-read from
/// their text (when the scanner found it) because serde_json's default float parser may be off by
/// one unit in the last place, and round trips must be exact.
pub(crate) fn number_from_json(n: &serde_json::Number, text: Option<&str>) -> SenmlNumber {
    if let Some(u) = n.as_u64() {
        SenmlNumber::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        SenmlNumber::Signed(i)
    } else {
        let approx = n.as_f64().unwrap_or(f64::NAN);
        SenmlNumber::Float(text.and_then(|t| t.parse::<f64>().ok()).unwrap_or(approx))
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

/// What the scanner found about one element of the record array.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScannedElement<'t> {
    /// Byte offset where the element starts.
    pub offset: usize,
    /// Number-valued members of the element: (key as written, number text).
    numbers: Vec<(&'t str, &'t str)>,
}

impl ScannedElement<'_> {
    /// The text of the number member `key` (the last one, as serde_json keeps the last duplicate).
    pub(crate) fn number(&self, key: &str) -> Option<&str> {
        self.numbers
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, text)| *text)
    }
}

/// Finds where each element of the record array starts and the texts of its number members.
///
/// Only run on text serde_json has accepted, so it can assume well-formed JSON; on anything else
/// it still terminates without panicking (every step advances and slices are checked).
pub(crate) fn scan_elements(text: &str, array: PackArray) -> Vec<ScannedElement<'_>> {
    enum Frame<'t> {
        Array {
            is_pack: bool,
        },
        Object {
            expecting_key: bool,
            key: &'t str,
            is_record: bool,
        },
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut out: Vec<ScannedElement<'_>> = Vec::new();
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
                let token = text.get(i + 1..end.saturating_sub(1)).unwrap_or("");
                match stack.last_mut() {
                    Some(Frame::Object {
                        expecting_key: true,
                        key,
                        ..
                    }) => *key = token,
                    _ => {
                        element_start(&stack, &mut out, i, None);
                    }
                }
                i = end;
            }
            b'[' | b'{' => {
                let is_record = element_start(&stack, &mut out, i, None);
                if b == b'[' {
                    let is_pack = match (array, stack.as_slice()) {
                        (PackArray::Root, []) => true,
                        (
                            PackArray::RootMember(member),
                            [
                                Frame::Object {
                                    key,
                                    is_record: false,
                                    ..
                                },
                            ],
                        ) => *key == member,
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
                        is_record,
                    });
                }
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                // A number or a literal (true, false, null).
                let end = bytes
                    .iter()
                    .skip(i)
                    .position(|c| c.is_ascii_whitespace() || b",]}:".contains(c))
                    .map_or(bytes.len(), |n| i + n);
                let token = text.get(i..end).unwrap_or("");
                let number = (b == b'-' || b.is_ascii_digit()).then_some(token);
                element_start(&stack, &mut out, i, number);
                i = end.max(i + 1);
            }
        }
    }

    /// Notes a value starting at `offset`; returns whether it is an element of the pack array.
    fn element_start<'t>(
        stack: &[Frame<'t>],
        out: &mut Vec<ScannedElement<'t>>,
        offset: usize,
        number: Option<&'t str>,
    ) -> bool {
        match stack {
            [.., Frame::Array { is_pack: true }] => {
                out.push(ScannedElement {
                    offset,
                    numbers: Vec::new(),
                });
                true
            }
            [
                ..,
                Frame::Object {
                    key,
                    is_record: true,
                    ..
                },
            ] => {
                if let (Some(text), Some(element)) = (number, out.last_mut()) {
                    element.numbers.push((key, text));
                }
                false
            }
            _ => false,
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
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_elements_and_number_texts() {
        let text =
            r#" [ {"n":"a\"]{","v":0.30000000000000004,"x":[1,{"v":2}]} ,{"t":-1e-7}, [], 3 ]"#;
        let found = scan_elements(text, PackArray::Root);
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].offset, 3);
        assert_eq!(found[0].number("v"), Some("0.30000000000000004"));
        assert_eq!(found[0].number("x"), None);
        assert_eq!(found[1].number("t"), Some("-1e-7"));
        assert_eq!(&text[found[3].offset..found[3].offset + 1], "3");
        let text = r#"{"x":[{"v":9}],"e":[{"v":1},{"v":2.5}],"bt":3}"#;
        let found = scan_elements(text, PackArray::RootMember("e"));
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].number("v"), Some("2.5"));
    }
}
