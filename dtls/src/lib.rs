//! DTLS 1.2 with pre-shared keys for Ferrite's LwM2M server and device simulator, as a sans-I/O
//! layer: datagrams and `now` go in; datagrams, events and timer deadlines come out.
//!
//! The server's UDP task owns one [`DtlsServer`] per socket, feeds it every datagram and timer
//! tick, sends what [`DtlsServer::poll_transmit`] returns, and passes each
//! [`DtlsEvent::Data`] — decrypted CoAP bytes plus the peer's authenticated [`PskIdentity`] — to
//! the CoAP/LwM2M engine, which never sees DTLS. [`DtlsClient`] is the same shape for one
//! connection, for the simulator and tests. The call order is documented on each type.
//!
//! # Why rtc-dtls
//!
//! [`rtc-dtls`](https://docs.rs/rtc-dtls) 0.21 (webrtc-rs) is a sans-I/O DTLS 1.2 implementation:
//! no tasks, no sockets, no clock, which is the shape of our engine. It offers the LwM2M
//! mandatory TLS_PSK_WITH_AES_128_CCM_8 plus PSK AES_128_CCM and AES_128_GCM_SHA256, takes the
//! key from a synchronous callback given the client's identity, reports that identity after the
//! handshake, retransmits flights, and interoperates with OpenSSL's and tinydtls' clients (tests/interop.rs). Measured on this machine it costs about a
//! fifth of webrtc-dtls' CPU per handshake and memory per session; webrtc-dtls' async listener
//! also had a one-packet denial of service. Its cost: a large dependency tree (rustls, rcgen,
//! x509-parser) even for PSK only.
//!
//! # What this crate adds
//!
//! rtc-dtls' `Endpoint` creates a connection — and generates an X25519 key pair — for *any*
//! datagram from a new address, checks the cookie only afterwards, never removes a connection
//! after a read error, and has no idle expiry or bounds. So:
//!
//! - **Pre-check** (`wire` module): from an address we hold nothing for, only a datagram
//!   that parses as an unfragmented epoch-0 DTLS ClientHello (content type 22, DTLS record
//!   version, handshake type 1, consistent lengths, client_version DTLS 1.2) is looked at;
//!   everything else is dropped and counted ([`DroppedDatagrams::not_client_hello`]).
//! - **Stateless cookies** (`cookie` module, RFC 6347 §4.2.1): a first ClientHello gets a
//!   HelloVerifyRequest with `HMAC(secret, time, address, hello parameters)` and no state is
//!   kept. Only a ClientHello that returns a valid cookie creates an rtc-dtls connection; rtc-dtls
//!   is handed our cookie through its crypto provider's random source, and the server checks
//!   that rtc-dtls' own HelloVerifyRequest carries it (a mismatch fails the handshake as
//!   `Internal`). Spoofed ClientHellos therefore cost one HMAC and a reply shorter than the
//!   request, never state or a key pair.
//! - **Bounds**: at most [`DtlsServerConfig::max_handshakes`] cookie-verified handshakes in
//!   progress (further ones are dropped and counted) and [`DtlsServerConfig::max_sessions`]
//!   sessions (the least recently active one is evicted).
//! - **Rate limit**: a source address (IP and port) with
//!   [`DtlsServerConfig::max_handshake_failures`] failed handshakes within
//!   [`DtlsServerConfig::handshake_failure_window`] gets no answer to its ClientHellos for a
//!   window; the table of counted addresses is bounded too. Every bound hit is counted in
//!   [`DtlsStats`] and logged at warn, at most once per 10 s per bound (`server/limits.rs`).
//! - **Timers**: an overall handshake timeout on top of rtc-dtls' retransmissions, and idle
//!   expiry: a session with no authenticated application data from the client for
//!   [`DtlsServerConfig::idle_timeout`] is closed (queue-mode devices re-handshake on waking).
//! - **Demultiplexing by address**: a new ClientHello with a valid cookie from an address with a
//!   session replaces it (the client restarted — RFC 6347 §4.2.8: only once the cookie proves
//!   the client is really there, so a spoofed hello cannot end a session); a handshake
//!   completing for an identity already connected elsewhere closes the old session and says so
//!   in `DtlsEvent::Connected { replaced }` (NAT rebinding).
//! - **Errors**: a failed handshake sends rtc-dtls' alert and the connection is removed. On an
//!   established session a record that fails authentication is discarded *without* the fatal
//!   alert rtc-dtls queues for it (RFC 6347 §4.1.2.7), so a spoofed datagram cannot end it.
//! - **Unknown identities** get a random key, so they fail exactly like a wrong key, with the
//!   same alert (RFC 4279 §2); the server's events and counters still tell them apart.
//! - **Counters** in [`DtlsStats`]; keys never appear in logs or `Debug` output.
//!
//! # Not supported
//!
//! Raw public keys and certificates (RPK/X.509 LwM2M security modes), Connection ID (RFC 9146 —
//! NAT rebinding costs a new handshake instead), session resumption and abbreviated handshakes,
//! renegotiation, DTLS 1.3, fragmented ClientHellos, and a ClientHello answering a second
//! HelloVerifyRequest (message_seq 2; dropped and counted, the client retries from scratch).
//! Idle sessions are held in full (≈ 6.5 KB each, see `benches/handshake.rs`); parking them as
//! serialized rtc-dtls `State` would be the way to a few hundred bytes per sleeping device.

mod client;
mod config;
mod cookie;
mod event;
mod psk;
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
