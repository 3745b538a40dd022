//! Shared helpers for the fuzz targets: choosing the requested path from the first input byte, and
//! comparing decoded content the way a round trip must preserve it (NaN equal to NaN; numbers of
//! resources the model does not type compared by value).

pub mod dtls;
pub mod engine;

use lwm2m_objects::codec::Record;
use lwm2m_objects::{Node, ObjectInstance, ObjectModel, Path, Resource, ResourceValue, Value};

/// Requested paths chosen by a selector byte below 0x80: objects the built-in model knows (so
/// values get typed), an object it does not know (so values stay untyped), and every depth.
pub const PATHS: &[Path] = &[
    Path::Object(3),
    Path::Instance(3, 0),
    Path::Resource(3, 0, 0),
    Path::Resource(3, 0, 7),
    Path::ResourceInstance(3, 0, 7, 1),
    Path::Resource(3, 0, 13),
    Path::Object(1),
    Path::Instance(1, 0),
    Path::Resource(1, 0, 1),
    Path::Instance(0, 0),
    Path::Instance(5, 0),
    Path::Resource(5, 0, 0),
    Path::Instance(4, 0),
    Path::Object(2),
    Path::Instance(3331, 0),
    Path::Resource(10243, 0, 5),
    Path::Object(9999),
    Path::Instance(9999, 0),
    Path::Resource(9999, 0, 1),
    Path::ResourceInstance(9999, 0, 1, 2),
    Path::Root,
];

/// Splits a fuzz input into the requested path and the payload.
///
/// The first byte selects the path: below 0x80 it indexes [`PATHS`] (modulo its length); from
/// 0x80 its low bits give a depth (0..=4, `& 7 % 5`) and that many little-endian `u16` IDs follow.
/// Inputs too short for their IDs, or with an ID above `MAX_ID`, are skipped (`None`).
pub fn split_path(data: &[u8]) -> Option<(Path, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    if selector < 0x80 {
        let path = PATHS.get(usize::from(selector) % PATHS.len())?;
        return Some((*path, rest));
    }
    let depth = usize::from(selector & 0x07) % 5;
    let (ids, payload) = rest.split_at_checked(depth * 2)?;
    let ids: Vec<u16> = ids
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some((Path::from_ids(&ids)?, payload))
}

/// The model every target decodes with.
pub fn model() -> &'static ObjectModel {
    ObjectModel::builtin()
}

/// Whether two values are the same for a round trip: equal, or both NaN. With `loose_numbers`,
/// numbers of different kinds (`Integer(5)`, `Float(5.0)`) count as equal when their values are:
/// a format that carries types may pick another numeric kind for a resource the model does not
/// type, and that is not a loss.
pub fn same_value(a: &Value, b: &Value, loose_numbers: bool) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ if a == b => true,
        _ if loose_numbers => match (exact_number(a), exact_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// A number as an exact integer (`i128`) when integral, else as its `f64` bits; `None` for
/// non-numbers.
#[derive(PartialEq)]
enum Number {
    Integral(i128),
    Fractional(u64),
}

fn exact_number(v: &Value) -> Option<Number> {
    Some(match *v {
        Value::Integer(i) | Value::Time(i) => Number::Integral(i128::from(i)),
        Value::UnsignedInteger(u) => Number::Integral(i128::from(u)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e38 => Number::Integral(f as i128),
        Value::Float(f) => Number::Fractional(f.to_bits()),
        _ => return None,
    })
}

fn same_resource(a: &Resource, b: &Resource) -> bool {
    a.id == b.id
        && match (&a.value, &b.value) {
            (ResourceValue::Single(x), ResourceValue::Single(y)) => same_value(x, y, false),
            (ResourceValue::Multiple(x), ResourceValue::Multiple(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((i, v), (j, w))| i == j && same_value(v, w, false))
            }
            _ => false,
        }
}

fn same_instance(a: &ObjectInstance, b: &ObjectInstance) -> bool {
    a.id == b.id
        && a.resources.len() == b.resources.len()
        && a.resources
            .iter()
            .zip(&b.resources)
            .all(|((i, r), (j, s))| i == j && same_resource(r, s))
}

/// Whether two nodes are the same, values compared with [`same_value`] (strictly).
pub fn same_node(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (
            Node::Object {
                id: i,
                instances: x,
            },
            Node::Object {
                id: j,
                instances: y,
            },
        ) => {
            i == j
                && x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, p), (l, q))| k == l && same_instance(p, q))
        }
        (Node::Instance(x), Node::Instance(y)) => same_instance(x, y),
        (Node::Resource(x), Node::Resource(y)) => same_resource(x, y),
        (
            Node::ResourceInstance { id: i, value: v },
            Node::ResourceInstance { id: j, value: w },
        ) => i == j && same_value(v, w, false),
        _ => false,
    }
}

/// Whether two record lists are the same: paths, times (or both NaN) and values, numbers compared
/// loosely for resources the model does not type.
pub fn same_records(a: &[Record], b: &[Record], model: &ObjectModel) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(r, s)| {
            let typed = match (r.path.object_id(), r.path.resource_id()) {
                (Some(o), Some(res)) => model.resource(o, res).is_some(),
                _ => false,
            };
            r.path == s.path
                && match (r.time, s.time) {
                    (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
                    (None, None) => true,
                    _ => false,
                }
                && match (&r.value, &s.value) {
                    (Some(v), Some(w)) => same_value(v, w, !typed),
                    (None, None) => true,
                    _ => false,
                }
        })
}
