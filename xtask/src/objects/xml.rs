//! Reads one OMA object definition file (the `LWM2M` document of `LWM2M-v1_1.xsd`) into an
//! [`ObjectSpec`], keeping the normative fields and dropping the descriptions.

use anyhow::{Context as _, anyhow, bail};
use roxmltree::Node;

use super::{DataType, ObjectSpec, OperationsSpec, ResourceSpec, parse_range};

/// Parses the text of a registry file holding exactly one `<Object>`.
///
/// Resources are returned sorted by ID (some files list them out of order); a duplicate resource
/// ID, a value outside the schema's enumerations or a missing required element is an error naming
/// the object and resource.
pub fn parse_object(xml: &str) -> anyhow::Result<ObjectSpec> {
    let doc = roxmltree::Document::parse(xml).context("not well-formed XML")?;
    let root = doc.root_element();
    if root.tag_name().name() != "LWM2M" {
        bail!(
            "root element is <{}>, expected <LWM2M>",
            root.tag_name().name()
        );
    }
    let mut objects = elements(root, "Object");
    let object = objects
        .next()
        .ok_or_else(|| anyhow!("no <Object> element"))?;
    if objects.next().is_some() {
        bail!("more than one <Object>; the registry keeps one object per file");
    }
    let id_text = required(object, "ObjectID")?;
    let id: u16 = id_text
        .parse()
        .with_context(|| format!("<ObjectID> {id_text:?}"))?;
    parse_object_fields(object, id).with_context(|| format!("object {id}"))
}

fn parse_object_fields(object: Node<'_, '_>, id: u16) -> anyhow::Result<ObjectSpec> {
    let resources_node = elements(object, "Resources")
        .next()
        .ok_or_else(|| anyhow!("no <Resources> element"))?;
    let mut resources = Vec::new();
    for item in elements(resources_node, "Item") {
        let id_text = item
            .attribute("ID")
            .ok_or_else(|| anyhow!("<Item> without an ID"))?;
        let resource_id: u16 = id_text
            .trim()
            .parse()
            .with_context(|| format!("<Item ID={id_text:?}>"))?;
        let resource =
            parse_resource(item, resource_id).with_context(|| format!("resource {resource_id}"))?;
        resources.push(resource);
    }
    resources.sort_by_key(|r| r.id);
    if let Some(pair) = resources.windows(2).find(|w| w[0].id == w[1].id) {
        bail!("resource {} is defined twice", pair[0].id);
    }
    Ok(ObjectSpec {
        id,
        name: required(object, "Name")?,
        urn: required(object, "ObjectURN")?,
        version: optional(object, "ObjectVersion").unwrap_or_else(|| "1.0".to_owned()),
        lwm2m_version: optional(object, "LWM2MVersion").unwrap_or_else(|| "1.0".to_owned()),
        multiple: multiple_instances(object)?,
        mandatory: mandatory(object)?,
        resources,
    })
}

fn parse_resource(item: Node<'_, '_>, id: u16) -> anyhow::Result<ResourceSpec> {
    let operations_text = text_of(item, "Operations").unwrap_or_default();
    let operations = OperationsSpec::from_oma(&operations_text)
        .ok_or_else(|| anyhow!("unknown <Operations> {operations_text:?}"))?;
    // An absent <Type> is read like the schema's empty one: no value.
    let type_text = text_of(item, "Type").unwrap_or_default();
    let ty =
        DataType::from_oma(&type_text).ok_or_else(|| anyhow!("unknown <Type> {type_text:?}"))?;
    let range_text = text_of(item, "RangeEnumeration").unwrap_or_default();
    Ok(ResourceSpec {
        id,
        name: required(item, "Name")?,
        operations,
        multiple: multiple_instances(item)?,
        mandatory: mandatory(item)?,
        ty,
        range: parse_range(&range_text, ty),
        units: optional(item, "Units"),
    })
}

fn multiple_instances(node: Node<'_, '_>) -> anyhow::Result<bool> {
    match required(node, "MultipleInstances")?.as_str() {
        "Multiple" => Ok(true),
        "Single" => Ok(false),
        other => bail!("<MultipleInstances> is {other:?}, expected Multiple or Single"),
    }
}

fn mandatory(node: Node<'_, '_>) -> anyhow::Result<bool> {
    match required(node, "Mandatory")?.as_str() {
        "Mandatory" => Ok(true),
        "Optional" => Ok(false),
        other => bail!("<Mandatory> is {other:?}, expected Mandatory or Optional"),
    }
}

/// The direct child elements of `node` named `name`.
fn elements<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// The trimmed text of the first child element `name` (text and CDATA, however nested), or
/// `None` when there is no such element.
fn text_of(node: Node<'_, '_>, name: &'static str) -> Option<String> {
    let element = elements(node, name).next()?;
    let text: String = element
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    Some(text.trim().to_owned())
}

/// The trimmed text of child `name`; an error when it is missing or empty.
fn required(node: Node<'_, '_>, name: &'static str) -> anyhow::Result<String> {
    match text_of(node, name) {
        Some(text) if !text.is_empty() => Ok(text),
        Some(_) => bail!("<{name}> is empty"),
        None => bail!("no <{name}> element"),
    }
}

/// The trimmed text of child `name`, `None` when it is missing or empty.
fn optional(node: Node<'_, '_>, name: &'static str) -> Option<String> {
    text_of(node, name).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::RangeSpec;

    /// A made-up object in the registry's layout (not taken from the registry), with resources
    /// out of order, whitespace around values, CDATA, a self-closing element and no versions.
    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- comment before the root -->
<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Object ObjectType="MODefinition">
    <Name> Sample "Meter" </Name>
    <Description1><![CDATA[Not kept.]]></Description1>
    <ObjectID>32000</ObjectID>
    <ObjectURN>urn:oma:lwm2m:x:32000</ObjectURN>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="7">
        <Name><![CDATA[Reset]]></Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type></Type>
        <RangeEnumeration/>
        <Units/>
        <Description>Not kept.</Description>
      </Item>
      <Item ID="2">
        <Name>
          Label
        </Name>
        <Operations> RW </Operations>
        <MultipleInstances>Multiple</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>String</Type>
        <RangeEnumeration>0..32 bytes</RangeEnumeration>
        <Units></Units>
        <Description>Not kept.</Description>
      </Item>
      <Item ID="5">
        <Name>Level</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Unsigned Integer</Type>
        <RangeEnumeration>0..100</RangeEnumeration>
        <Units>/100</Units>
        <Description>Not kept.</Description>
      </Item>
    </Resources>
  </Object>
</LWM2M>
"#;

    #[test]
    fn reads_the_normative_fields() -> anyhow::Result<()> {
        let object = parse_object(SAMPLE)?;
        assert_eq!(object.id, 32000);
        assert_eq!(object.name, "Sample \"Meter\"");
        assert_eq!(object.urn, "urn:oma:lwm2m:x:32000");
        assert_eq!(
            (object.version.as_str(), object.lwm2m_version.as_str()),
            ("1.0", "1.0")
        );
        assert!(object.multiple && !object.mandatory);
        let ids: Vec<u16> = object.resources.iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 5, 7], "resources are sorted by ID");
        assert_eq!(
            object.resources[0],
            ResourceSpec {
                id: 2,
                name: "Label".into(),
                operations: OperationsSpec::RW,
                multiple: true,
                mandatory: false,
                ty: DataType::String,
                range: Some(RangeSpec::Length { min: 0, max: 32 }),
                units: None,
            }
        );
        assert_eq!(object.resources[1].units.as_deref(), Some("/100"));
        assert_eq!(
            object.resources[1].range,
            Some(RangeSpec::Integer { min: 0, max: 100 })
        );
        let reset = &object.resources[2];
        assert_eq!(
            (reset.name.as_str(), reset.operations, reset.ty),
            ("Reset", OperationsSpec::E, DataType::None)
        );
        assert_eq!((reset.range.as_ref(), reset.units.as_ref()), (None, None));
        Ok(())
    }

    #[test]
    fn versions_are_read_when_present() -> anyhow::Result<()> {
        let xml = SAMPLE.replace(
            "<MultipleInstances>Multiple</MultipleInstances>\n    <Mandatory>",
            "<LWM2MVersion>1.1</LWM2MVersion><ObjectVersion> 2.0 </ObjectVersion>\n    \
             <MultipleInstances>Multiple</MultipleInstances>\n    <Mandatory>",
        );
        let object = parse_object(&xml)?;
        assert_eq!(
            (object.version.as_str(), object.lwm2m_version.as_str()),
            ("2.0", "1.1")
        );
        Ok(())
    }

    fn error_of(xml: &str) -> String {
        match parse_object(xml) {
            Ok(object) => panic!("expected an error, parsed object {}", object.id),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn schema_violations_are_errors_naming_the_place() {
        let bad_type = SAMPLE.replace("<Type>String</Type>", "<Type>Text</Type>");
        let e = error_of(&bad_type);
        assert!(
            e.contains("object 32000") && e.contains("resource 2") && e.contains("\"Text\""),
            "{e}"
        );

        let bad_ops = SAMPLE.replace("<Operations>R</Operations>", "<Operations>RWE</Operations>");
        assert!(error_of(&bad_ops).contains("resource 5"));

        let duplicate = SAMPLE.replace(r#"<Item ID="5">"#, r#"<Item ID="2">"#);
        assert!(error_of(&duplicate).contains("resource 2 is defined twice"));

        let bad_id = SAMPLE.replace(r#"<Item ID="5">"#, r#"<Item ID="70000">"#);
        assert!(error_of(&bad_id).contains("70000"));

        let no_urn = SAMPLE.replace("<ObjectURN>urn:oma:lwm2m:x:32000</ObjectURN>", "");
        assert!(error_of(&no_urn).contains("no <ObjectURN>"));

        let bad_multiple =
            SAMPLE.replacen("<MultipleInstances>Single", "<MultipleInstances>Many", 1);
        assert!(error_of(&bad_multiple).contains("\"Many\""));

        assert!(error_of("<LWM2M><Object>").contains("not well-formed"));
        assert!(error_of("<Other/>").contains("expected <LWM2M>"));
        assert!(error_of("<LWM2M/>").contains("no <Object>"));
    }
}
