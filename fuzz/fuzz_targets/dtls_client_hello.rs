//! Structure-aware fuzzing of the DTLS server's handshake: a valid ClientHello (captured from
//! OpenSSL, or a genuine `DtlsClient`'s) is mutated, the cookie exchange is completed correctly so
//! that mutations of the second hello reach rtc-dtls, then arbitrary steps follow (see
//! `src/dtls.rs`). Same checks as `dtls_datagrams`.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use lwm2m_objects_fuzz::dtls::Harness;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut harness = Harness::new();
    if harness.client_hello_exchange(&mut u).is_ok() {
        harness.run_steps(&mut u);
    }
});
