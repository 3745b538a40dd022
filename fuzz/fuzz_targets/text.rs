//! Fuzzes the plain-text (TS Core 1.1 §7.4.1) and opaque (§7.4.2) decoders: never panic; whatever
//! decodes re-encodes, and the re-encoded bytes decode to the same node.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwm2m_objects::codec::{self, ContentFormat};
use lwm2m_objects_fuzz::{model, same_node, split_path};

fuzz_target!(|data: &[u8]| {
    let Some((path, payload)) = split_path(data) else {
        return;
    };
    for format in [ContentFormat::Text, ContentFormat::Opaque] {
        let Ok(node) = codec::decode(format, &path, payload, model()) else {
            continue;
        };
        let Ok(encoded) = codec::encode(format, &path, &node) else {
            continue;
        };
        match codec::decode(format, &path, &encoded, model()) {
            Ok(again) => assert!(
                same_node(&node, &again),
                "{format} round trip at {path} changed the node:\n first {node:?}\n again {again:?}\n bytes {encoded:02x?}"
            ),
            Err(e) => panic!(
                "{format} at {path}: re-encoded {encoded:02x?} of {node:?} does not decode: {e}"
            ),
        }
    }
});
