//! Fuzzes the DTLS server's input path (`DtlsServer::handle_datagram` / `handle_timeout`) with
//! arbitrary and record-shaped datagrams from several addresses, interleaved with genuine client
//! handshakes whose datagrams are lost, duplicated, replayed or corrupted. Never panics; the
//! server's tables stay consistent and bounded; stateless answers never amplify (`src/dtls.rs`).
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use lwm2m_objects_fuzz::dtls::Harness;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut harness = Harness::new();
    harness.run_steps(&mut u);
});
