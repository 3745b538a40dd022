//! Fuzzes the LwM2M engine's whole datagram path (`Lwm2mServer` over `CoapEndpoint`): sequences
//! of datagrams, application decisions and timeouts from several peers, including registrations
//! and responses to the server's pending requests. Never panics; every memory cap holds after each
//! step (see `src/engine.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lwm2m_objects_fuzz::engine::run(data);
});
