//! The end-to-end harness: [`harness::TestServer`] runs `ferrite` in-process (a library call,
//! real sockets on 127.0.0.1:0, a temporary SQLite file) and [`device::TestDevice`] drives a
//! simulated LwM2M client (`lwm2m_proto`'s `Lwm2mClient` + `MemoryObjectStore`) over a tokio UDP
//! socket, plain or through `ferrite_dtls::DtlsClient`. The tests live in `tests/tests/`.

// A failed unwrap in a test harness is a failed test, with its message.
#![allow(clippy::unwrap_used)]

pub mod coap_files;
pub mod device;
pub mod flood;
pub mod harness;
pub mod http;

use std::time::Duration;

/// How long a test waits for something that should happen within a second or two.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Logs to the test output once, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
