//! The "Objects and Object Instances" payload of Register and Update (OMA LwM2M TS Core 1.1
//! §6.2.1): built from the store's object list and the object model's versions.

use std::hash::{DefaultHasher, Hash, Hasher};

use lwm2m_objects::ObjectModel;
use lwm2m_objects::link::{ObjectLinks, RegistrationLinks};

use super::store::ObjectStore;
use crate::lwm2m::registration::Lwm2mVersion;

/// Objects never listed in registration: Security (0) and OSCORE (21) (TS Core 1.1 §6.2.1).
const UNLISTED_OBJECTS: [u16; 2] = [0, 21];

/// The content formats a 1.1+ client announces on its root link (`ct`, TS Core 1.1 §6.2.1):
/// SenML JSON, SenML CBOR and TLV, the ones it encodes besides the mandatory text and opaque.
const ANNOUNCED_FORMATS: [u16; 3] = [110, 112, 11542];

/// The registration links of `store`: for 1.1+ a root link `</>;rt="oma.lwm2m";ct=…`; per
/// object `</o>;ver=x.y` when the model's object version is not 1.0 (or the object has no
/// instance), and `</o/i>` per instance.
pub(crate) fn registration_links<S: ObjectStore + ?Sized>(
    store: &S,
    version: Lwm2mVersion,
    model: &ObjectModel,
) -> String {
    let mut links = RegistrationLinks::default();
    if version.is_1_1_or_later() {
        links.content_formats = ANNOUNCED_FORMATS.to_vec();
    }
    for (object, instances) in store.objects() {
        if UNLISTED_OBJECTS.contains(&object) {
            continue;
        }
        let version = model
            .object(object)
            .map(|def| def.version)
            .filter(|v| *v != "1.0")
            .map(str::to_owned);
        links.objects.insert(
            object,
            ObjectLinks {
                version,
                instances: instances.into_iter().collect(),
                content_formats: Vec::new(),
            },
        );
    }
    links.to_link_format()
}

/// A fingerprint of a links payload, to tell whether an Update must carry the objects again
/// without keeping the text (8 bytes per client instead of a few hundred).
pub(crate) fn fingerprint(links: &str) -> u64 {
    let mut h = DefaultHasher::new();
    links.hash(&mut h);
    h.finish()
}
