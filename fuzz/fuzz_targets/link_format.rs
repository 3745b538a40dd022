//! Fuzzes the CoRE link-format parsers (RFC 6690; TS Core 1.1 §6.2.1 registration, §6.3 Discover):
//! never panic, and for each layer parse(encode(x)) == x.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwm2m_objects::link;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(links) = link::parse(text) {
        let encoded = link::encode_links(&links);
        assert_eq!(
            link::parse(&encoded),
            Ok(links),
            "links re-encoded as {encoded:?}"
        );
    }

    if let Ok(mut registration) = link::parse_registration(text) {
        // Skipped links are reported, not re-encoded.
        registration.ignored.clear();
        let encoded = registration.to_link_format();
        assert_eq!(
            link::parse_registration(&encoded),
            Ok(registration),
            "registration re-encoded as {encoded:?}"
        );
    }

    for root in ["/", "/lwm2m"] {
        if let Ok(discovered) = link::parse_discover_under(text, root) {
            // Discover output is encoded from `/`.
            let encoded = link::encode_discover(&discovered);
            assert_eq!(
                link::parse_discover(&encoded),
                Ok(discovered),
                "discover re-encoded as {encoded:?}"
            );
        }
    }
});
