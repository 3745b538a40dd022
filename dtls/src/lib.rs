//! DTLS 1.2 PSK for Ferrite's LwM2M server and simulator, as a sans-I/O layer.
//! (Design notes being written.)

mod client;
mod config;
mod cookie;
mod event;
mod server;
mod stats;
mod wire;

#[cfg(test)]
mod tests;

pub use client::{ConnectError, DtlsClient};
pub use config::{
    CipherSuite, ConfigError, DtlsClientConfig, DtlsServerConfig, InMemoryPskStore, PskStore,
};
pub use event::{
    ClientCloseReason, ClientEvent, CloseReason, DtlsEvent, HandshakeFailure, PskIdentity,
};
pub use server::{DtlsServer, MAX_PLAINTEXT, SendError};
pub use stats::{DroppedDatagrams, DtlsStats, HandshakeFailures};
pub use wire::NotClientHello;
