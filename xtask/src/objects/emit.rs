//! Writes [`ObjectSpec`]s as the Rust source of `lwm2m-objects/src/registry.rs`.
//!
//! The output is deterministic (objects and resources in ID order, fixed layout, `\n` line ends)
//! so regenerating from the same XML yields byte-identical text and the up-to-date test can compare
//! it with the committed file. One resource per line keeps diffs of registry updates readable.

use std::fmt::Write as _;

use super::{ObjectSpec, RangeSpec, ResourceSpec};

const HEADER: &str = "\
//! LwM2M object definitions generated from the OMA LwM2M registry by `cargo run -p xtask -- gen-objects`. Do not edit.
// @generated
//
// Source: the object definition XML of the OMNA LwM2M registry
// (https://github.com/OpenMobileAlliance/lwm2m-registry). Only normative fields are kept: IDs, names,
// URNs, versions, multiplicity, mandatory flags, operations, types, ranges and units. Descriptions
// are deliberately left out.

use crate::model::{ObjectDef, ResourceDef, Operations, Range};
use crate::value::ResourceType;
";

/// The full text of the generated file for `objects` (emitted in ID order whatever their order).
pub fn render(objects: &[ObjectSpec]) -> String {
    let mut sorted: Vec<&ObjectSpec> = objects.iter().collect();
    sorted.sort_by_key(|o| o.id);

    let mut out = String::from(HEADER);
    out.push_str("\npub static OBJECTS: &[ObjectDef] = &[\n");
    for object in sorted {
        render_object(&mut out, object);
    }
    out.push_str("];\n");
    out
}

fn render_object(out: &mut String, object: &ObjectSpec) {
    let mut resources: Vec<&ResourceSpec> = object.resources.iter().collect();
    resources.sort_by_key(|r| r.id);

    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "    ObjectDef {{");
    let _ = writeln!(out, "        id: {},", object.id);
    let _ = writeln!(out, "        name: {},", rust_str_literal(&object.name));
    let _ = writeln!(out, "        urn: {},", rust_str_literal(&object.urn));
    let _ = writeln!(
        out,
        "        version: {},",
        rust_str_literal(&object.version)
    );
    let _ = writeln!(
        out,
        "        lwm2m_version: {},",
        rust_str_literal(&object.lwm2m_version)
    );
    let _ = writeln!(out, "        multiple: {},", object.multiple);
    let _ = writeln!(out, "        mandatory: {},", object.mandatory);
    if resources.is_empty() {
        let _ = writeln!(out, "        resources: &[],");
    } else {
        let _ = writeln!(out, "        resources: &[");
        for resource in resources {
            let _ = writeln!(out, "            {},", resource_expr(resource));
        }
        let _ = writeln!(out, "        ],");
    }
    let _ = writeln!(out, "    }},");
}

fn resource_expr(r: &ResourceSpec) -> String {
    let range = match &r.range {
        Some(range) => format!("Some({})", range_expr(range)),
        None => "None".to_owned(),
    };
    let units = match &r.units {
        Some(units) => format!("Some({})", rust_str_literal(units)),
        None => "None".to_owned(),
    };
    format!(
        "ResourceDef {{ id: {}, name: {}, operations: Operations::{}, multiple: {}, mandatory: {}, \
         ty: ResourceType::{}, range: {range}, units: {units} }}",
        r.id,
        rust_str_literal(&r.name),
        r.operations.rust_const(),
        r.multiple,
        r.mandatory,
        r.ty.rust_variant(),
    )
}

fn range_expr(range: &RangeSpec) -> String {
    match range {
        RangeSpec::Integer { min, max } => format!("Range::Integer {{ min: {min}, max: {max} }}"),
        RangeSpec::Float { min, max } => {
            format!(
                "Range::Float {{ min: {}, max: {} }}",
                float_literal(*min),
                float_literal(*max)
            )
        }
        RangeSpec::Length { min, max } => format!("Range::Length {{ min: {min}, max: {max} }}"),
        RangeSpec::OneOf(values) => {
            let list: Vec<String> = values.iter().map(i64::to_string).collect();
            format!("Range::OneOf(&[{}])", list.join(", "))
        }
        RangeSpec::Described(text) => format!("Range::Described({})", rust_str_literal(text)),
    }
}

/// An `f64` literal that reads back to the same value: Rust's shortest round-trip form, which for
/// the finite values the range parser admits always has a `.` or an exponent (`-1.0`, `1e300`).
fn float_literal(value: f64) -> String {
    format!("{value:?}")
}

/// `text` as a Rust string literal: quotes, backslashes and control characters escaped, every
/// other character (including non-ASCII) kept as is.
pub fn rust_str_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{DataType, OperationsSpec};

    #[test]
    fn string_literals_are_escaped() {
        assert_eq!(rust_str_literal("Device"), r#""Device""#);
        assert_eq!(rust_str_literal(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(
            rust_str_literal("x\ny\r\tz\u{0}\u{7f}"),
            r#""x\ny\r\tz\u{0}\u{7f}""#
        );
        assert_eq!(rust_str_literal("µ°C"), "\"µ°C\"");
    }

    #[test]
    fn float_literals_keep_a_decimal_point() {
        assert_eq!(float_literal(-1.0), "-1.0");
        assert_eq!(float_literal(0.25), "0.25");
        assert_eq!(float_literal(1e300), "1e300");
    }

    fn resource(id: u16, range: Option<RangeSpec>) -> ResourceSpec {
        ResourceSpec {
            id,
            name: format!("R\"{id}\""),
            operations: OperationsSpec::None,
            multiple: false,
            mandatory: true,
            ty: DataType::Opaque,
            range,
            units: (id == 1).then(|| "m/s".to_owned()),
        }
    }

    fn object(id: u16, resources: Vec<ResourceSpec>) -> ObjectSpec {
        ObjectSpec {
            id,
            name: format!("Object {id}"),
            urn: format!("urn:oma:lwm2m:x:{id}"),
            version: "1.0".into(),
            lwm2m_version: "1.1".into(),
            multiple: true,
            mandatory: false,
            resources,
        }
    }

    #[test]
    fn renders_objects_and_resources_in_id_order() {
        let objects = vec![
            object(
                9,
                vec![
                    resource(3, None),
                    resource(1, Some(RangeSpec::OneOf(vec![16, 32]))),
                ],
            ),
            object(2, vec![]),
        ];
        let text = render(&objects);
        assert!(text.starts_with(
            "//! LwM2M object definitions generated from the OMA LwM2M registry by `cargo run -p \
             xtask -- gen-objects`. Do not edit.\n// @generated\n"
        ));
        let object_2 = text.find("id: 2,").expect("object 2 rendered");
        let object_9 = text.find("id: 9,").expect("object 9 rendered");
        assert!(object_2 < object_9);
        assert!(text.contains("        resources: &[],\n"));
        let expected_resource = "            ResourceDef { id: 1, name: \"R\\\"1\\\"\", operations: \
             Operations::NONE, multiple: false, mandatory: true, ty: ResourceType::Opaque, range: \
             Some(Range::OneOf(&[16, 32])), units: Some(\"m/s\") },\n            ResourceDef { id: 3,";
        assert!(text.contains(expected_resource), "{text}");
        assert!(text.ends_with("    },\n];\n"));
        assert_eq!(render(&objects), text, "rendering is deterministic");
    }

    #[test]
    fn renders_every_range_form() {
        let forms = [
            (
                RangeSpec::Integer { min: -5, max: 5 },
                "Range::Integer { min: -5, max: 5 }",
            ),
            (
                RangeSpec::Float {
                    min: -1.0,
                    max: 0.5,
                },
                "Range::Float { min: -1.0, max: 0.5 }",
            ),
            (
                RangeSpec::Length { min: 0, max: 255 },
                "Range::Length { min: 0, max: 255 }",
            ),
            (RangeSpec::OneOf(vec![6]), "Range::OneOf(&[6])"),
            (
                RangeSpec::Described("8-\"Bits\"".into()),
                r#"Range::Described("8-\"Bits\"")"#,
            ),
        ];
        for (range, expected) in forms {
            assert_eq!(range_expr(&range), expected);
        }
    }
}
