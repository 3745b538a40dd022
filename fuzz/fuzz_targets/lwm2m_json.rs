//! Fuzzes the LwM2M JSON decoder (TS Core 1.1 §7.4.5; 11543 and the legacy 1543): never panics,
//! neither to records nor to a node. There is no LwM2M JSON encoder (servers only read it), so the
//! round trip goes through SenML JSON, which carries the same records: what decodes and encodes as
//! SenML JSON must decode back to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwm2m_objects::codec::{self, ContentFormat};
use lwm2m_objects_fuzz::{model, same_records, split_path};

fuzz_target!(|data: &[u8]| {
    let Some((path, payload)) = split_path(data) else {
        return;
    };
    for format in [ContentFormat::Lwm2mJson, ContentFormat::LegacyJson] {
        let _ = codec::decode(format, &path, payload, model());
    }
    let Ok(records) = codec::decode_records(ContentFormat::Lwm2mJson, &path, payload, model())
    else {
        return;
    };
    let Ok(senml) = codec::encode_records(ContentFormat::SenmlJson, &records) else {
        return;
    };
    match codec::decode_records(ContentFormat::SenmlJson, &path, &senml, model()) {
        Ok(again) => assert!(
            same_records(&records, &again, model()),
            "LwM2M JSON -> SenML JSON changed the records:\n first {records:?}\n again {again:?}\n senml {}",
            String::from_utf8_lossy(&senml)
        ),
        Err(e) => panic!(
            "SenML JSON {} written from LwM2M JSON records {records:?} does not decode: {e}",
            String::from_utf8_lossy(&senml)
        ),
    }
});
