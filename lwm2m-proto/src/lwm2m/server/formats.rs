//! Which content format the server asks for and writes in, chosen from what the client registered
//! (OMA LwM2M TS Core 1.1 §6.2.1 `ct` on the root or an object link; §7.4 Data Formats).
//!
//! - LwM2M 1.0: TLV (11542), which every 1.0 client must support (TS 1.0 "Data Formats"); the
//!   pre-registration number 1542 when that is the TLV number the client lists.
//! - LwM2M 1.1 and later: SenML CBOR (112), the most compact hierarchical format; SenML JSON (110)
//!   for a client that lists 110 but not 112; LwM2M CBOR (11544) for a 1.2 client that lists it
//!   but no SenML; TLV for one that lists TLV but no SenML.
//! - Composite operations (Read-/Write-/Observe-Composite) need SenML: CBOR unless the client
//!   lists JSON and not CBOR.
//!
//! `ct` on an object's link overrides the root link's list for that object.

use lwm2m_objects::ContentFormat as Format;

use super::registrations::RegisteredObjects;
use crate::lwm2m::registration::Lwm2mVersion;

/// The formats the client listed for `object` (its own `ct`, else the root link's).
fn listed(objects: &RegisteredObjects, object: Option<u16>) -> Vec<u16> {
    if let Some(o) = object {
        let own = objects.object_content_formats(o);
        if !own.is_empty() {
            return own;
        }
    }
    objects.content_formats().to_vec()
}

/// The format for single-path content (Read, Observe, Write, Create) of `object`.
pub(super) fn single_format(
    version: Lwm2mVersion,
    objects: &RegisteredObjects,
    object: Option<u16>,
) -> Format {
    let listed = listed(objects, object);
    let lists = |n: u16| listed.contains(&n);
    if version.is_1_1_or_later() {
        if listed.is_empty() || lists(112) {
            Format::SenmlCbor
        } else if lists(110) {
            Format::SenmlJson
        } else if version != Lwm2mVersion::V1_1 && lists(11544) {
            // LwM2M CBOR (TS Core 1.2 §7.4.6) for a 1.2 client that lists it but no SenML.
            Format::Lwm2mCbor
        } else if lists(11542) {
            Format::Tlv
        } else if lists(1542) {
            Format::LegacyTlv
        } else {
            Format::SenmlCbor
        }
    } else if lists(1542) && !lists(11542) {
        Format::LegacyTlv
    } else {
        Format::Tlv
    }
}

/// The SenML format for composite operations.
pub(super) fn composite_format(objects: &RegisteredObjects) -> Format {
    let listed = objects.content_formats();
    if listed.contains(&110) && !listed.contains(&112) {
        Format::SenmlJson
    } else {
        Format::SenmlCbor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(text: &str) -> RegisteredObjects {
        RegisteredObjects::parse(text).expect("links")
    }

    #[test]
    fn version_and_listed_formats_decide() {
        use Lwm2mVersion::*;
        let plain = objects("</1/0>,</3/0>");
        assert_eq!(single_format(V1_0, &plain, Some(3)), Format::Tlv);
        assert_eq!(single_format(V1_1, &plain, Some(3)), Format::SenmlCbor);
        assert_eq!(single_format(V1_2, &plain, Some(3)), Format::SenmlCbor);
        let legacy = objects(r#"</>;ct=1542,</3/0>"#);
        assert_eq!(single_format(V1_0, &legacy, Some(3)), Format::LegacyTlv);
        let both = objects(r#"</>;ct="1542 11542",</3/0>"#);
        assert_eq!(single_format(V1_0, &both, Some(3)), Format::Tlv);
        // A 1.1 client that only speaks SenML JSON gets 110.
        let json = objects(r#"</>;ct=110,</3/0>"#);
        assert_eq!(single_format(V1_1, &json, Some(3)), Format::SenmlJson);
        assert_eq!(composite_format(&json), Format::SenmlJson);
        let all = objects(r#"</>;ct="60 110 112 11542",</3/0>"#);
        assert_eq!(single_format(V1_1, &all, Some(3)), Format::SenmlCbor);
        assert_eq!(composite_format(&all), Format::SenmlCbor);
        // A 1.2 client that lists LwM2M CBOR and no SenML gets 11544 (1.1 has no 11544).
        let lwm2m_cbor = objects(r#"</>;ct="11542 11544",</3/0>"#);
        assert_eq!(single_format(V1_2, &lwm2m_cbor, Some(3)), Format::Lwm2mCbor);
        assert_eq!(single_format(V1_1, &lwm2m_cbor, Some(3)), Format::Tlv);
        let tlv_only = objects(r#"</>;ct=11542,</3/0>"#);
        assert_eq!(single_format(V1_1, &tlv_only, None), Format::Tlv);
        // An object's own ct overrides the root's.
        let per_object = objects(r#"</>;ct=112,</3/0>,</3303>;ct=110"#);
        assert_eq!(
            single_format(V1_1, &per_object, Some(3303)),
            Format::SenmlJson
        );
        assert_eq!(single_format(V1_1, &per_object, Some(3)), Format::SenmlCbor);
    }
}
