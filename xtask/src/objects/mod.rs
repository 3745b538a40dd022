//! `gen-objects`: turns the OMA LwM2M registry's object definition XML into
//! `lwm2m-objects/src/registry.rs`, the static `ObjectDef` table the object model ships.
//!
//! The pipeline is `xml` (one file → [`ObjectSpec`]) → `range` (RangeEnumeration text →
//! [`RangeSpec`]) → `emit` (specs → Rust text). The specs are plain owned data so the registry
//! cross-check test can compare them with `ObjectModel::builtin()` without going through the
//! generated text.
//!
//! Only the normative fields are kept (IDs, names, operations, multiplicity, mandatory flags,
//! types, ranges, units, versions); the XML's descriptions are deliberately never copied.
//! The element set and allowed values follow the registry's schema, `LWM2M-v1_1.xsd`.

mod emit;
mod range;
mod xml;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use emit::{render, rust_str_literal};
pub use range::parse_range;
pub use xml::parse_object;

/// The objects Ferrite ships: the core LwM2M objects it manages plus the metering objects.
pub const OBJECT_IDS: &[u16] = &[0, 1, 2, 3, 4, 5, 6, 7, 9, 3331, 10243];

/// Where the generated file lives, relative to the workspace root.
pub const OUTPUT_PATH: &str = "lwm2m-objects/src/registry.rs";

/// The environment variable naming the registry folder.
pub const REGISTRY_DIR_ENV: &str = "LWM2M_REGISTRY_DIR";

/// The command that regenerates [`OUTPUT_PATH`], for messages.
pub const REGENERATE_COMMAND: &str = "cargo run -p xtask -- gen-objects";

/// One object definition as the registry states it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub id: u16,
    pub name: String,
    pub urn: String,
    /// `<ObjectVersion>`, `"1.0"` when the definition gives none (the element is optional in
    /// LWM2M-v1_1.xsd; definitions that predate it are version 1.0).
    pub version: String,
    /// `<LWM2MVersion>`, `"1.0"` when absent.
    pub lwm2m_version: String,
    pub multiple: bool,
    pub mandatory: bool,
    /// Sorted by ID, IDs unique.
    pub resources: Vec<ResourceSpec>,
}

/// One resource (`<Item ID="..">`) of an object definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    pub id: u16,
    pub name: String,
    pub operations: OperationsSpec,
    pub multiple: bool,
    pub mandatory: bool,
    pub ty: DataType,
    pub range: Option<RangeSpec>,
    /// `None` when `<Units>` is empty or absent.
    pub units: Option<String>,
}

/// The `<Operations>` of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationsSpec {
    /// Empty: not accessible by a LwM2M Server (e.g. every Security object resource).
    None,
    R,
    W,
    RW,
    E,
}

impl OperationsSpec {
    pub fn from_oma(text: &str) -> Option<OperationsSpec> {
        Some(match text.trim() {
            "" => OperationsSpec::None,
            "R" => OperationsSpec::R,
            "W" => OperationsSpec::W,
            "RW" => OperationsSpec::RW,
            "E" => OperationsSpec::E,
            _ => return None,
        })
    }

    /// The OMA text (`""`, `"R"`, …), which `lwm2m_objects::Operations::as_str` also produces.
    pub fn oma(self) -> &'static str {
        match self {
            OperationsSpec::None => "",
            OperationsSpec::R => "R",
            OperationsSpec::W => "W",
            OperationsSpec::RW => "RW",
            OperationsSpec::E => "E",
        }
    }

    /// The `lwm2m_objects::Operations` constant's name.
    pub fn rust_const(self) -> &'static str {
        match self {
            OperationsSpec::None => "NONE",
            other => other.oma(),
        }
    }
}

/// The `<Type>` of a resource (TS Core 1.1 Appendix C), mirroring `lwm2m_objects::ResourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    String,
    Integer,
    UnsignedInteger,
    Float,
    Boolean,
    Opaque,
    Time,
    Objlnk,
    Corelnk,
    /// Empty `<Type>`: executable resources carry no value.
    None,
}

impl DataType {
    pub fn from_oma(text: &str) -> Option<DataType> {
        Some(match text.trim() {
            "String" => DataType::String,
            "Integer" => DataType::Integer,
            "Unsigned Integer" => DataType::UnsignedInteger,
            "Float" => DataType::Float,
            "Boolean" => DataType::Boolean,
            "Opaque" => DataType::Opaque,
            "Time" => DataType::Time,
            "Objlnk" => DataType::Objlnk,
            "Corelnk" => DataType::Corelnk,
            "" | "none" | "None" => DataType::None,
            _ => return None,
        })
    }

    /// The `lwm2m_objects::ResourceType` variant's name.
    pub fn rust_variant(self) -> &'static str {
        match self {
            DataType::String => "String",
            DataType::Integer => "Integer",
            DataType::UnsignedInteger => "UnsignedInteger",
            DataType::Float => "Float",
            DataType::Boolean => "Boolean",
            DataType::Opaque => "Opaque",
            DataType::Time => "Time",
            DataType::Objlnk => "Objlnk",
            DataType::Corelnk => "Corelnk",
            DataType::None => "None",
        }
    }
}

/// A parsed `<RangeEnumeration>`, mirroring `lwm2m_objects::Range` with owned data.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeSpec {
    Integer {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    /// Bounds on the length in bytes of a String, Opaque or Corelnk value.
    Length {
        min: u64,
        max: u64,
    },
    OneOf(Vec<i64>),
    /// Text that is not a range we can enforce, whitespace-normalised.
    Described(String),
}

/// Reads `<id>.xml` for every ID in `ids` from `registry_dir`, sorted by object ID.
pub fn load_objects(registry_dir: &Path, ids: &[u16]) -> anyhow::Result<Vec<ObjectSpec>> {
    let mut objects = Vec::with_capacity(ids.len());
    for &id in ids {
        let file = registry_dir.join(format!("{id}.xml"));
        let xml = std::fs::read_to_string(&file)
            .with_context(|| format!("reading object {id} from {}", file.display()))?;
        let object = parse_object(&xml).with_context(|| format!("in {}", file.display()))?;
        anyhow::ensure!(
            object.id == id,
            "{} defines object {}, expected {id}",
            file.display(),
            object.id
        );
        objects.push(object);
    }
    objects.sort_by_key(|o| o.id);
    if let Some(pair) = objects.windows(2).find(|w| w[0].id == w[1].id) {
        anyhow::bail!("object {} is listed twice", pair[0].id);
    }
    Ok(objects)
}

/// The text of `lwm2m-objects/src/registry.rs` for the objects in [`OBJECT_IDS`].
pub fn generate(registry_dir: &Path) -> anyhow::Result<String> {
    Ok(render(&load_objects(registry_dir, OBJECT_IDS)?))
}

/// The registry folder: `$LWM2M_REGISTRY_DIR` when set, else `shared/lwm2m-registry` beside the
/// workspace root (`/work/main` → `/work/shared/lwm2m-registry`).
pub fn default_registry_dir() -> PathBuf {
    match std::env::var_os(REGISTRY_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let root = crate::workspace_root();
            root.parent()
                .unwrap_or(&root)
                .join("shared")
                .join("lwm2m-registry")
        }
    }
}

/// The first line where two texts differ (1-based), for "file is stale" messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineDifference {
    pub line: usize,
    /// `None` when that text has ended.
    pub expected: Option<String>,
    pub actual: Option<String>,
}

impl fmt::Display for LineDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |l: &Option<String>| match l {
            Some(text) => format!("{text:?}"),
            None => "(end of file)".to_owned(),
        };
        write!(
            f,
            "first difference at line {}:\n  generated: {}\n  committed: {}",
            self.line,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// Compares `expected` (freshly generated) with `actual` (committed) line by line.
pub fn first_difference(expected: &str, actual: &str) -> Option<LineDifference> {
    if expected == actual {
        return None;
    }
    let mut e = expected.split('\n');
    let mut a = actual.split('\n');
    let mut line = 1;
    loop {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            // Equal line lists would mean equal texts, handled above.
            (None, None) => return None,
            (x, y) => {
                return Some(LineDifference {
                    line,
                    expected: x.map(str::to_owned),
                    actual: y.map(str::to_owned),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let d = first_difference("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(
            d,
            Some(LineDifference {
                line: 2,
                expected: Some("b".into()),
                actual: Some("x".into())
            })
        );
        let shorter = first_difference("a\nb", "a").expect("texts differ");
        assert_eq!((shorter.line, shorter.actual.as_deref()), (2, None));
        assert!(shorter.to_string().contains("(end of file)"));
    }

    #[test]
    fn oma_names_read_back() {
        for ops in ["", "R", "W", "RW", "E"] {
            assert_eq!(
                OperationsSpec::from_oma(ops).map(OperationsSpec::oma),
                Some(ops)
            );
        }
        assert_eq!(OperationsSpec::from_oma("RWE"), None);
        assert_eq!(OperationsSpec::None.rust_const(), "NONE");
        assert_eq!(
            DataType::from_oma(" Unsigned Integer "),
            Some(DataType::UnsignedInteger)
        );
        assert_eq!(DataType::from_oma(""), Some(DataType::None));
        assert_eq!(DataType::from_oma("Integer32"), None);
    }
}
