//! Object and resource definitions (OMA LwM2M TS Core 1.1 §5.1 and the OMA object registry) and
//! the [`ObjectModel`] that codecs consult to type values in formats that do not carry types.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::value::{ResourceType, Value};

/// Which operations a resource allows (`R`, `W`, `RW`, `E`, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operations {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Operations {
    pub const NONE: Operations = Operations {
        read: false,
        write: false,
        execute: false,
    };
    pub const R: Operations = Operations {
        read: true,
        write: false,
        execute: false,
    };
    pub const W: Operations = Operations {
        read: false,
        write: true,
        execute: false,
    };
    pub const RW: Operations = Operations {
        read: true,
        write: true,
        execute: false,
    };
    pub const E: Operations = Operations {
        read: false,
        write: false,
        execute: true,
    };

    /// Reads the `<Operations>` text of an object definition (`""`, `R`, `W`, `RW`, `E`).
    pub fn from_oma(text: &str) -> Option<Operations> {
        Some(match text.trim() {
            "" => Operations::NONE,
            "R" => Operations::R,
            "W" => Operations::W,
            "RW" => Operations::RW,
            "E" => Operations::E,
            _ => return None,
        })
    }

    /// The short form used by the OMA definitions (`"RW"`).
    pub fn as_str(self) -> &'static str {
        match (self.read, self.write, self.execute) {
            (true, true, _) => "RW",
            (true, false, _) => "R",
            (false, true, _) => "W",
            (false, false, true) => "E",
            (false, false, false) => "",
        }
    }
}

/// The range or enumeration a definition allows for a resource's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// Inclusive integer bounds, e.g. `0..100`.
    Integer { min: i64, max: i64 },
    /// Inclusive float bounds, e.g. `-1..1` on a Float resource.
    Float { min: f64, max: f64 },
    /// Inclusive bounds on the length in bytes of a String or Opaque value, e.g. `0..255 bytes`.
    Length { min: u64, max: u64 },
    /// An explicit set of allowed integers, e.g. `16,32,48`.
    OneOf(&'static [i64]),
    /// A range the definition states in words; kept for display, not enforced.
    Described(&'static str),
}

impl Range {
    /// Whether `value` satisfies the range. Ranges in words and values of other kinds pass.
    pub fn allows(&self, value: &Value) -> bool {
        match (*self, value) {
            (Range::Integer { min, max }, v) => match v.as_f64() {
                Some(x) => x >= min as f64 && x <= max as f64,
                None => true,
            },
            (Range::Float { min, max }, v) => match v.as_f64() {
                Some(x) => x >= min && x <= max,
                None => true,
            },
            (Range::Length { min, max }, Value::String(s) | Value::Corelnk(s)) => {
                (min..=max).contains(&(s.len() as u64))
            }
            (Range::Length { min, max }, Value::Opaque(b)) => {
                (min..=max).contains(&(b.len() as u64))
            }
            (Range::Length { .. }, _) => true,
            (Range::OneOf(allowed), v) => match v.as_i64() {
                Some(x) => allowed.contains(&x),
                None => true,
            },
            (Range::Described(_), _) => true,
        }
    }
}

/// The definition of one resource of an object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceDef {
    pub id: u16,
    pub name: &'static str,
    pub operations: Operations,
    /// Multiple-instance resource (`/o/i/r/ri` paths exist).
    pub multiple: bool,
    pub mandatory: bool,
    pub ty: ResourceType,
    pub range: Option<Range>,
    pub units: Option<&'static str>,
}

/// The definition of one object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectDef {
    pub id: u16,
    pub name: &'static str,
    /// e.g. `urn:oma:lwm2m:oma:3:1.2`
    pub urn: &'static str,
    /// The object version, e.g. `"1.2"` (`"1.0"` where the definition gives none).
    pub version: &'static str,
    /// The LwM2M enabler version the definition targets, e.g. `"1.1"`.
    pub lwm2m_version: &'static str,
    /// Whether the object may have several instances.
    pub multiple: bool,
    pub mandatory: bool,
    /// Sorted by resource ID.
    pub resources: &'static [ResourceDef],
}

impl ObjectDef {
    /// The definition of resource `id`, if the object defines it.
    pub fn resource(&self, id: u16) -> Option<&'static ResourceDef> {
        self.resources
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .map(|i| &self.resources[i])
    }
}

/// The set of object definitions a codec, the server or the console knows.
///
/// Objects not in the model are still representable: their values stay [`Value::Untyped`] where
/// the content format does not carry types.
#[derive(Debug, Clone, Default)]
pub struct ObjectModel {
    objects: BTreeMap<u16, &'static ObjectDef>,
}

impl ObjectModel {
    /// A model that knows no object: every TLV/text value decodes as untyped.
    pub fn empty() -> ObjectModel {
        ObjectModel::default()
    }

    /// The objects Ferrite ships, generated from the OMA registry.
    pub fn builtin() -> &'static ObjectModel {
        static BUILTIN: OnceLock<ObjectModel> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut model = ObjectModel::empty();
            for def in crate::registry::OBJECTS {
                model.insert(def);
            }
            model
        })
    }

    /// Adds (or replaces) a definition.
    pub fn insert(&mut self, def: &'static ObjectDef) {
        self.objects.insert(def.id, def);
    }

    pub fn object(&self, id: u16) -> Option<&'static ObjectDef> {
        self.objects.get(&id).copied()
    }

    pub fn resource(&self, object: u16, resource: u16) -> Option<&'static ResourceDef> {
        self.object(object)?.resource(resource)
    }

    /// Every known object, by ID.
    pub fn objects(&self) -> impl Iterator<Item = &'static ObjectDef> + '_ {
        self.objects.values().copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_has_the_objects_ferrite_needs() {
        let model = ObjectModel::builtin();
        for id in [0, 1, 2, 3, 4, 5, 6, 7, 9, 3331, 10243] {
            assert!(model.object(id).is_some(), "object {id} missing");
        }
        let manufacturer = model.resource(3, 0).unwrap();
        assert_eq!(manufacturer.name, "Manufacturer");
        assert_eq!(manufacturer.ty, ResourceType::String);
        assert_eq!(manufacturer.operations, Operations::R);
        let reboot = model.resource(3, 4).unwrap();
        assert_eq!(reboot.operations, Operations::E);
        assert_eq!(reboot.ty, ResourceType::None);
        let voltage = model.resource(3, 7).unwrap();
        assert!(voltage.multiple);
        // The registry gives /3/7 no <Units> (mV is only in its description).
        assert_eq!(voltage.units, None);
        let rssi = model.resource(4, 2).unwrap();
        assert_eq!(rssi.units, Some("dBm"));
        assert!(
            model
                .object(3)
                .unwrap()
                .resources
                .windows(2)
                .all(|w| w[0].id < w[1].id)
        );
    }

    #[test]
    fn ranges() {
        assert!(Range::Integer { min: 0, max: 100 }.allows(&Value::Integer(100)));
        assert!(!Range::Integer { min: 0, max: 100 }.allows(&Value::Integer(101)));
        assert!(!Range::Length { min: 0, max: 3 }.allows(&Value::String("abcd".into())));
        assert!(Range::OneOf(&[16, 32, 48]).allows(&Value::Integer(32)));
        assert!(!Range::OneOf(&[16, 32, 48]).allows(&Value::Integer(33)));
    }
}
