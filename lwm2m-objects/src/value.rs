//! Typed LwM2M resource values (OMA LwM2M TS Core 1.1 Appendix C, "Data Types").

use std::fmt;

/// The data type of a resource as the object model declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    String,
    Integer,
    UnsignedInteger,
    Float,
    Boolean,
    Opaque,
    /// Seconds since the Unix epoch, signed.
    Time,
    /// A link to an object instance, `object:instance`.
    Objlnk,
    /// A CoRE link-format string (RFC 6690).
    Corelnk,
    /// No value: executable resources.
    None,
}

impl ResourceType {
    /// The name used by the OMA object definitions (`"Unsigned Integer"`, `"Objlnk"`, …).
    pub fn oma_name(self) -> &'static str {
        match self {
            ResourceType::String => "String",
            ResourceType::Integer => "Integer",
            ResourceType::UnsignedInteger => "Unsigned Integer",
            ResourceType::Float => "Float",
            ResourceType::Boolean => "Boolean",
            ResourceType::Opaque => "Opaque",
            ResourceType::Time => "Time",
            ResourceType::Objlnk => "Objlnk",
            ResourceType::Corelnk => "Corelnk",
            ResourceType::None => "none",
        }
    }

    /// Reads the type name used by the OMA object definitions; an empty name means no value.
    pub fn from_oma_name(name: &str) -> Option<ResourceType> {
        Some(match name.trim() {
            "String" => ResourceType::String,
            "Integer" => ResourceType::Integer,
            "Unsigned Integer" => ResourceType::UnsignedInteger,
            "Float" => ResourceType::Float,
            "Boolean" => ResourceType::Boolean,
            "Opaque" => ResourceType::Opaque,
            "Time" => ResourceType::Time,
            "Objlnk" => ResourceType::Objlnk,
            "Corelnk" => ResourceType::Corelnk,
            "" | "none" | "None" => ResourceType::None,
            _ => return None,
        })
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oma_name())
    }
}

/// An object link (`Objlnk`): the object ID and instance ID of another object instance.
///
/// `65535:65535` is the "null" link (TS Core Appendix C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjLink {
    pub object: u16,
    pub instance: u16,
}

impl ObjLink {
    pub const NULL: ObjLink = ObjLink {
        object: u16::MAX,
        instance: u16::MAX,
    };
}

impl fmt::Display for ObjLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object, self.instance)
    }
}

impl std::str::FromStr for ObjLink {
    type Err = ValueError;

    /// Parses `"3:0"` (the SenML `vlo` and plain-text form).
    fn from_str(s: &str) -> Result<ObjLink, ValueError> {
        let bad = || ValueError::Unparsable {
            expected: ResourceType::Objlnk,
            text: s.to_owned(),
        };
        let (o, i) = s.split_once(':').ok_or_else(bad)?;
        let parse = |t: &str| {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<u16>().ok()
        };
        Ok(ObjLink {
            object: parse(o).ok_or_else(bad)?,
            instance: parse(i).ok_or_else(bad)?,
        })
    }
}

/// A resource value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    UnsignedInteger(u64),
    Float(f64),
    Boolean(bool),
    Opaque(Vec<u8>),
    /// Seconds since the Unix epoch.
    Time(i64),
    Objlnk(ObjLink),
    Corelnk(String),
    /// No value (an executable resource, or a name without a value in a Read-Composite request).
    None,
    /// The raw bytes of a resource whose type is not known (an object the model has no definition
    /// for, in a format that does not carry types: TLV, plain text, opaque). Kept as received, shown
    /// as text when it is printable UTF-8 and as hex otherwise, and typed later with [`Value::coerce`].
    Untyped(Vec<u8>),
}

/// Why a value could not be read or converted to the declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{text:?} is not a valid {expected}")]
    Unparsable {
        expected: ResourceType,
        text: String,
    },
    #[error("a {found} value cannot be used as {expected}")]
    WrongType {
        expected: ResourceType,
        found: &'static str,
    },
    #[error("{value} is out of range for {expected}")]
    OutOfRange {
        expected: ResourceType,
        value: String,
    },
}

impl Value {
    /// The declared type this value carries, or `None` for [`Value::Untyped`].
    pub fn resource_type(&self) -> Option<ResourceType> {
        Some(match self {
            Value::String(_) => ResourceType::String,
            Value::Integer(_) => ResourceType::Integer,
            Value::UnsignedInteger(_) => ResourceType::UnsignedInteger,
            Value::Float(_) => ResourceType::Float,
            Value::Boolean(_) => ResourceType::Boolean,
            Value::Opaque(_) => ResourceType::Opaque,
            Value::Time(_) => ResourceType::Time,
            Value::Objlnk(_) => ResourceType::Objlnk,
            Value::Corelnk(_) => ResourceType::Corelnk,
            Value::None => ResourceType::None,
            Value::Untyped(_) => return None,
        })
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.resource_type() {
            Some(t) => t.oma_name(),
            None => "untyped",
        }
    }

    /// The value as a number, when it is one (Integer, Unsigned Integer, Float, Time).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Integer(v) | Value::Time(v) => Some(v as f64),
            Value::UnsignedInteger(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a signed integer, when it is an integral number that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Integer(v) | Value::Time(v) => Some(v),
            Value::UnsignedInteger(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text, when it is a String or Corelnk.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Corelnk(s) => Some(s),
            _ => None,
        }
    }

    /// Converts this value to `ty`: an [`Value::Untyped`] value is read from its bytes as the
    /// plain-text representation (TS Core §7.4.1, what text and unknown-object payloads carry), and
    /// numbers convert between numeric types when the value fits exactly.
    pub fn coerce(self, ty: ResourceType) -> Result<Value, ValueError> {
        if self.resource_type() == Some(ty) {
            return Ok(self);
        }
        let out_of_range = |v: &dyn fmt::Display| ValueError::OutOfRange {
            expected: ty,
            value: v.to_string(),
        };
        match (self, ty) {
            (Value::Untyped(bytes), ResourceType::Opaque) => Ok(Value::Opaque(bytes)),
            (Value::Untyped(bytes), _) => {
                let text = String::from_utf8(bytes).map_err(|e| ValueError::Unparsable {
                    expected: ty,
                    text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                })?;
                Value::parse_text(&text, ty)
            }
            (Value::Integer(v), ResourceType::UnsignedInteger) => u64::try_from(v)
                .map(Value::UnsignedInteger)
                .map_err(|_| out_of_range(&v)),
            (Value::Integer(v), ResourceType::Time) => Ok(Value::Time(v)),
            (Value::Integer(v), ResourceType::Float) => Ok(Value::Float(v as f64)),
            (Value::UnsignedInteger(v), ResourceType::Integer) => i64::try_from(v)
                .map(Value::Integer)
                .map_err(|_| out_of_range(&v)),
            (Value::UnsignedInteger(v), ResourceType::Time) => i64::try_from(v)
                .map(Value::Time)
                .map_err(|_| out_of_range(&v)),
            (Value::UnsignedInteger(v), ResourceType::Float) => Ok(Value::Float(v as f64)),
            (Value::Time(v), ResourceType::Integer) => Ok(Value::Integer(v)),
            (Value::Float(v), ResourceType::Integer | ResourceType::Time) => {
                if v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64 {
                    let i = v as i64;
                    Ok(if ty == ResourceType::Time {
                        Value::Time(i)
                    } else {
                        Value::Integer(i)
                    })
                } else {
                    Err(out_of_range(&v))
                }
            }
            (Value::Float(v), ResourceType::UnsignedInteger) => {
                if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(Value::UnsignedInteger(v as u64))
                } else {
                    Err(out_of_range(&v))
                }
            }
            (Value::String(s), ResourceType::Corelnk) => Ok(Value::Corelnk(s)),
            (Value::Corelnk(s), ResourceType::String) => Ok(Value::String(s)),
            (other, _) => Err(ValueError::WrongType {
                expected: ty,
                found: other.kind_name(),
            }),
        }
    }

    /// Reads the plain-text representation of a value of type `ty` (TS Core 1.1 §7.4.1 "Plain
    /// Text"): decimal numbers, `0`/`1` for Boolean, `obj:inst` for Objlnk, base64 for Opaque.
    pub fn parse_text(text: &str, ty: ResourceType) -> Result<Value, ValueError> {
        let bad = || ValueError::Unparsable {
            expected: ty,
            text: text.to_owned(),
        };
        Ok(match ty {
            ResourceType::String => Value::String(text.to_owned()),
            ResourceType::Corelnk => Value::Corelnk(text.to_owned()),
            ResourceType::Integer => Value::Integer(text.trim().parse().map_err(|_| bad())?),
            ResourceType::Time => Value::Time(text.trim().parse().map_err(|_| bad())?),
            ResourceType::UnsignedInteger => {
                Value::UnsignedInteger(text.trim().parse().map_err(|_| bad())?)
            }
            ResourceType::Float => {
                let t = text.trim();
                // Rust also accepts "inf"/"NaN"; LwM2M text floats are decimal numbers only.
                if t.is_empty()
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                {
                    return Err(bad());
                }
                let v: f64 = t.parse().map_err(|_| bad())?;
                // "1e400" parses to infinity, which has no text form to write back.
                if !v.is_finite() {
                    return Err(ValueError::OutOfRange {
                        expected: ty,
                        value: t.to_owned(),
                    });
                }
                Value::Float(v)
            }
            ResourceType::Boolean => match text.trim() {
                "0" => Value::Boolean(false),
                "1" => Value::Boolean(true),
                _ => return Err(bad()),
            },
            ResourceType::Objlnk => Value::Objlnk(text.trim().parse()?),
            ResourceType::Opaque => {
                use base64::Engine as _;
                Value::Opaque(
                    base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .map_err(|_| bad())?,
                )
            }
            ResourceType::None => {
                if text.is_empty() {
                    Value::None
                } else {
                    return Err(bad());
                }
            }
        })
    }

    /// The plain-text representation of this value (TS Core 1.1 §7.4.1), the inverse of
    /// [`Value::parse_text`]. Untyped bytes are written back unchanged (lossily if not UTF-8).
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) | Value::Corelnk(s) => s.clone(),
            Value::Integer(v) | Value::Time(v) => v.to_string(),
            Value::UnsignedInteger(v) => v.to_string(),
            Value::Float(v) => format_float(*v),
            Value::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
            Value::Opaque(bytes) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            Value::Objlnk(link) => link.to_string(),
            Value::None => String::new(),
            Value::Untyped(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Formats a float so that it reads back to the same value (Rust's shortest round-trip form).
fn format_float(v: f64) -> String {
    format!("{v:?}")
}

impl fmt::Display for Value {
    /// A human-readable form for logs and the console: text as is, opaque as hex, untyped as text
    /// when it is printable UTF-8, as hex otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Opaque(bytes) => write_hex(f, bytes),
            Value::Untyped(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => {
                    f.write_str(s)
                }
                _ => write_hex(f, bytes),
            },
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::None => f.write_str("(none)"),
            other => f.write_str(&other.to_text()),
        }
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            Value::parse_text("42", ResourceType::Integer),
            Ok(Value::Integer(42))
        );
        assert_eq!(
            Value::parse_text("1", ResourceType::Boolean),
            Ok(Value::Boolean(true))
        );
        assert!(Value::parse_text("true", ResourceType::Boolean).is_err());
        assert_eq!(
            Value::parse_text("3:0", ResourceType::Objlnk),
            Ok(Value::Objlnk(ObjLink {
                object: 3,
                instance: 0
            }))
        );
        assert!(Value::parse_text("NaN", ResourceType::Float).is_err());
        assert!(matches!(
            Value::parse_text("1e400", ResourceType::Float),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(Value::parse_text("-1", ResourceType::UnsignedInteger).is_err());
        assert_eq!(Value::Float(3.5).to_text(), "3.5");
        assert_eq!(Value::Float(1.0).to_text(), "1.0");
    }

    #[test]
    fn untyped_values_coerce_through_their_text() {
        let raw = Value::Untyped(b"-110".to_vec());
        assert_eq!(
            raw.clone().coerce(ResourceType::Integer),
            Ok(Value::Integer(-110))
        );
        assert!(raw.clone().coerce(ResourceType::UnsignedInteger).is_err());
        assert_eq!(raw.to_string(), "-110");
        assert_eq!(Value::Untyped(vec![0, 1, 0xff]).to_string(), "0x0001ff");
    }

    #[test]
    fn numeric_coercions_are_exact() {
        assert_eq!(
            Value::Float(5.0).coerce(ResourceType::Integer),
            Ok(Value::Integer(5))
        );
        assert!(Value::Float(5.5).coerce(ResourceType::Integer).is_err());
        assert!(
            Value::Integer(-1)
                .coerce(ResourceType::UnsignedInteger)
                .is_err()
        );
        assert!(
            Value::UnsignedInteger(u64::MAX)
                .coerce(ResourceType::Integer)
                .is_err()
        );
        assert!(Value::Boolean(true).coerce(ResourceType::Integer).is_err());
    }

    proptest! {
        #[test]
        fn integer_text_round_trips(v in any::<i64>()) {
            prop_assert_eq!(Value::parse_text(&Value::Integer(v).to_text(), ResourceType::Integer), Ok(Value::Integer(v)));
        }

        #[test]
        fn float_text_round_trips(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            prop_assert_eq!(Value::parse_text(&Value::Float(v).to_text(), ResourceType::Float), Ok(Value::Float(v)));
        }

        #[test]
        fn opaque_text_round_trips(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(Value::parse_text(&Value::Opaque(v.clone()).to_text(), ResourceType::Opaque), Ok(Value::Opaque(v)));
        }
    }
}
