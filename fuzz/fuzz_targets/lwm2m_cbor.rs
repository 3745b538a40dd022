//! Fuzzes the LwM2M CBOR decoder (TS Core 1.2 §7.4.6, content format 11544): never panics, neither to records nor to a node;
//! records that decode re-encode, and the re-encoded bytes decode to the same records (in path
//! order: a CBOR map has no order, and the encoder writes paths sorted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwm2m_objects::codec::{self, ContentFormat};
use lwm2m_objects_fuzz::{model, same_records, split_path};

const FORMAT: ContentFormat = ContentFormat::Lwm2mCbor;

fuzz_target!(|data: &[u8]| {
    let Some((path, payload)) = split_path(data) else {
        return;
    };
    // The node form (records assembled under the requested path) must not panic either.
    let _ = codec::decode(FORMAT, &path, payload, model());
    let Ok(mut records) = codec::decode_records(FORMAT, &path, payload, model()) else {
        return;
    };
    let Ok(encoded) = codec::encode_records(FORMAT, &records) else {
        return;
    };
    records.sort_by_key(|r| r.path.ids());
    match codec::decode_records(FORMAT, &path, &encoded, model()) {
        Ok(again) => assert!(
            same_records(&records, &again, model()),
            "{FORMAT} round trip changed the records:\n first {records:?}\n again {again:?}\n bytes {encoded:02x?}"
        ),
        Err(e) => panic!("{FORMAT}: re-encoded {encoded:02x?} of {records:?} does not decode: {e}"),
    }
});
