//! Cross-checks lwm2m-objects' built-in object definitions against the OMA registry XML: the
//! committed `registry.rs` must be what the generator produces now, and the compiled model must
//! agree with the XML field by field.
//!
//! Both tests need the registry folder named by `LWM2M_REGISTRY_DIR` (CI always sets it); without
//! it they say so on stderr and pass, since the XML is reference data kept outside the repository.

use std::path::PathBuf;

use lwm2m_objects::{ObjectDef, ObjectModel, Operations, Range, ResourceDef, ResourceType};
use xtask::objects::{self, DataType, ObjectSpec, RangeSpec, ResourceSpec};

/// The registry folder, or `None` (after saying so) when the cross-check cannot run.
fn registry_dir() -> Option<PathBuf> {
    match std::env::var_os(objects::REGISTRY_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("SKIPPED: LWM2M_REGISTRY_DIR not set; registry cross-check not run");
            None
        }
    }
}

#[test]
fn generated_file_is_up_to_date() -> anyhow::Result<()> {
    let Some(registry) = registry_dir() else {
        return Ok(());
    };
    let generated = objects::generate(&registry)?;
    let path = xtask::workspace_root().join(objects::OUTPUT_PATH);
    let committed = std::fs::read_to_string(&path)?;
    if let Some(diff) = objects::first_difference(&generated, &committed) {
        panic!(
            "{} is out of date with the registry in {}; run `{}` and commit the result.\n{diff}",
            objects::OUTPUT_PATH,
            registry.display(),
            objects::REGENERATE_COMMAND
        );
    }
    Ok(())
}

#[test]
fn builtin_model_matches_registry() -> anyhow::Result<()> {
    let Some(registry) = registry_dir() else {
        return Ok(());
    };
    let specs = objects::load_objects(&registry, objects::OBJECT_IDS)?;
    let model = ObjectModel::builtin();
    let mut mismatches = Vec::new();

    for spec in &specs {
        match model.object(spec.id) {
            Some(def) => compare_object(spec, def, &mut mismatches),
            None => mismatches.push(format!(
                "/{}: in the registry list but not built in",
                spec.id
            )),
        }
    }
    for def in model.objects() {
        if !specs.iter().any(|s| s.id == def.id) {
            mismatches.push(format!(
                "/{}: built in but not generated from the registry",
                def.id
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "the built-in model differs from the registry in {} ({} mismatches):\n{}",
        registry.display(),
        mismatches.len(),
        mismatches.join("\n")
    );
    // Guard against the comparison passing vacuously.
    assert_eq!(model.objects().count(), objects::OBJECT_IDS.len());
    Ok(())
}

fn compare_object(spec: &ObjectSpec, def: &ObjectDef, out: &mut Vec<String>) {
    let at = format!("/{}", spec.id);
    check(out, &at, "name", &spec.name.as_str(), &def.name);
    check(out, &at, "urn", &spec.urn.as_str(), &def.urn);
    check(out, &at, "version", &spec.version.as_str(), &def.version);
    check(
        out,
        &at,
        "lwm2m_version",
        &spec.lwm2m_version.as_str(),
        &def.lwm2m_version,
    );
    check(out, &at, "multiple", &spec.multiple, &def.multiple);
    check(out, &at, "mandatory", &spec.mandatory, &def.mandatory);
    if !def.resources.windows(2).all(|w| w[0].id < w[1].id) {
        out.push(format!(
            "{at}: resources are not sorted by ID (lookups binary-search them)"
        ));
    }
    for resource in &spec.resources {
        match def.resource(resource.id) {
            Some(r) => compare_resource(&format!("{at}/{}", resource.id), resource, r, out),
            None => out.push(format!(
                "{at}/{}: in the registry but not built in",
                resource.id
            )),
        }
    }
    for r in def.resources {
        if !spec.resources.iter().any(|s| s.id == r.id) {
            out.push(format!("{at}/{}: built in but not in the registry", r.id));
        }
    }
}

fn compare_resource(at: &str, spec: &ResourceSpec, def: &ResourceDef, out: &mut Vec<String>) {
    check(out, at, "name", &spec.name.as_str(), &def.name);
    check(
        out,
        at,
        "operations",
        &Operations::from_oma(spec.operations.oma()),
        &Some(def.operations),
    );
    check(out, at, "multiple", &spec.multiple, &def.multiple);
    check(out, at, "mandatory", &spec.mandatory, &def.mandatory);
    check(out, at, "type", &resource_type(spec.ty), &def.ty);
    check(out, at, "units", &spec.units.as_deref(), &def.units);
    if !range_matches(spec.range.as_ref(), def.range.as_ref()) {
        out.push(format!(
            "{at} range: registry {:?}, built in {:?}",
            spec.range, def.range
        ));
    }
}

fn check<T: PartialEq + std::fmt::Debug>(
    out: &mut Vec<String>,
    at: &str,
    field: &str,
    registry: &T,
    builtin: &T,
) {
    if registry != builtin {
        out.push(format!(
            "{at} {field}: registry {registry:?}, built in {builtin:?}"
        ));
    }
}

/// Maps the generator's type onto the model's one by name, not by the generator's own table, so a
/// mistake in that table shows up here.
fn resource_type(ty: DataType) -> ResourceType {
    let name = match ty {
        DataType::String => "String",
        DataType::Integer => "Integer",
        DataType::UnsignedInteger => "Unsigned Integer",
        DataType::Float => "Float",
        DataType::Boolean => "Boolean",
        DataType::Opaque => "Opaque",
        DataType::Time => "Time",
        DataType::Objlnk => "Objlnk",
        DataType::Corelnk => "Corelnk",
        DataType::None => "",
    };
    ResourceType::from_oma_name(name).unwrap_or(ResourceType::None)
}

fn range_matches(spec: Option<&RangeSpec>, def: Option<&Range>) -> bool {
    match (spec, def) {
        (None, None) => true,
        (Some(RangeSpec::Integer { min, max }), Some(Range::Integer { min: a, max: b })) => {
            (min, max) == (a, b)
        }
        (Some(RangeSpec::Float { min, max }), Some(Range::Float { min: a, max: b })) => {
            min.to_bits() == a.to_bits() && max.to_bits() == b.to_bits()
        }
        (Some(RangeSpec::Length { min, max }), Some(Range::Length { min: a, max: b })) => {
            (min, max) == (a, b)
        }
        (Some(RangeSpec::OneOf(values)), Some(Range::OneOf(allowed))) => values == allowed,
        (Some(RangeSpec::Described(text)), Some(Range::Described(d))) => text == d,
        _ => false,
    }
}
