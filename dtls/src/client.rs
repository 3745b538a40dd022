//! A sans-I/O DTLS 1.2 PSK client over rtc-dtls, for the device simulator and tests.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_shared::TransportProtocol;
use tracing::debug;

use crate::config::{CipherSuite, ConfigError, DtlsClientConfig};
use crate::event::{ClientCloseReason, ClientEvent, PskIdentity};
use crate::server::{MAX_PLAINTEXT, SendError};
use crate::wire;

/// Why [`DtlsClient::connect`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `connect` was already called on this client (make a new client to reconnect).
    #[error("this DTLS client has already connected")]
    AlreadyStarted,
    /// rtc-dtls refused to start the handshake (e.g. port 0).
    #[error("DTLS connect failed: {0}")]
    Dtls(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Handshaking { deadline: Instant },
    Connected,
    Closed,
}

/// A sans-I/O DTLS 1.2 PSK client: one connection to one server.
///
/// Call order: [`connect(now, server)`](Self::connect) once; then feed every datagram received
/// from the server to [`handle_datagram`](Self::handle_datagram), call
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) is reached
/// (handshake flights are retransmitted from there), and after each call drain
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event). Once
/// [`ClientEvent::Connected`] has been reported, [`send`](Self::send) encrypts application data.
/// A client is single-use: after [`ClientEvent::Closed`], make a new one to reconnect.
pub struct DtlsClient {
    endpoint: Endpoint,
    handshake_config: Arc<HandshakeConfig>,
    config: DtlsClientConfig,
    server: Option<SocketAddr>,
    phase: Phase,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<ClientEvent>,
}

impl fmt::Debug for DtlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsClient")
            .field("config", &self.config) // its Debug redacts the key
            .field("server", &self.server)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl DtlsClient {
    /// A client that will authenticate with `config`'s identity and key.
    pub fn new(config: DtlsClientConfig) -> Result<Self, ConfigError> {
        if config.cipher_suites.is_empty() {
            return Err(ConfigError::NoCipherSuites);
        }
        if config.identity.is_empty() {
            return Err(ConfigError::EmptyCredential("identity"));
        }
        if config.key.is_empty() {
            return Err(ConfigError::EmptyCredential("key"));
        }
        let crypto = rtc_dtls::crypto_provider::default_provider()
            .map_err(|error| ConfigError::Crypto(error.to_string()))?;
        let key = config.key.clone();
        let handshake_config = ConfigBuilder::default()
            .with_crypto_provider(crypto)
            .with_cipher_suites(
                config
                    .cipher_suites
                    .iter()
                    .map(|suite| suite.id())
                    .collect(),
            )
            // The server may send an identity hint (RFC 4279 §2); LwM2M has no use for it.
            .with_psk(Some(Arc::new(move |_hint: &[u8]| Ok(key.clone()))))
            // rtc-dtls names the client's own identity "identity hint".
            .with_psk_identity_hint(Some(config.identity.clone()))
            .with_extended_master_secret(ExtendedMasterSecretType::Request)
            .with_flight_interval(config.retransmit_interval)
            .with_mtu(config.mtu)
            .build(true, None)
            .map_err(|error| ConfigError::Dtls(error.to_string()))?;
        Ok(Self {
            endpoint: Endpoint::new(
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                TransportProtocol::UDP,
                None,
            ),
            handshake_config: Arc::new(handshake_config),
            config,
            server: None,
            phase: Phase::Idle,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The identity this client authenticates with.
    pub fn identity(&self) -> PskIdentity {
        PskIdentity::new(&self.config.identity)
    }

    /// Starts the handshake with `server` (queues the first ClientHello).
    pub fn connect(&mut self, now: Instant, server: SocketAddr) -> Result<(), ConnectError> {
        if self.phase != Phase::Idle {
            return Err(ConnectError::AlreadyStarted);
        }
        self.endpoint
            .connect(now, server, self.handshake_config.clone(), None)
            .map_err(|error| ConnectError::Dtls(error.to_string()))?;
        self.server = Some(server);
        self.phase = Phase::Handshaking {
            deadline: now + self.config.handshake_timeout,
        };
        self.forward_transmits();
        Ok(())
    }

    /// Processes one datagram received from `from`; datagrams from anyone but the server are
    /// ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(server) = self.server.filter(|server| *server == from) else {
            return;
        };
        if !matches!(self.phase, Phase::Handshaking { .. } | Phase::Connected) {
            return;
        }
        match self
            .endpoint
            .read(now, server, None, BytesMut::from(datagram))
        {
            Ok(events) => {
                self.forward_transmits();
                for event in events {
                    match event {
                        EndpointEvent::HandshakeComplete => {
                            self.phase = Phase::Connected;
                            self.events.push_back(ClientEvent::Connected { server });
                        }
                        EndpointEvent::ApplicationData(bytes) => {
                            self.events.push_back(ClientEvent::Data {
                                bytes: Vec::from(bytes),
                            });
                        }
                        EndpointEvent::PeerClosed => self.finish(ClientCloseReason::PeerClosed),
                        _ => {}
                    }
                }
            }
            Err(error) if self.phase == Phase::Connected => {
                // Same policy as the server: a record that fails authentication after the
                // handshake is discarded silently (RFC 6347 §4.1.2.7), alert included.
                debug!(%error, "invalid DTLS record discarded");
                while let Some(transmit) = self.endpoint.poll_transmit() {
                    if !wire::starts_with_alert(&transmit.message) {
                        self.transmits
                            .push_back((server, Vec::from(transmit.message)));
                    }
                }
            }
            Err(error) => {
                debug!(%error, "DTLS handshake failed");
                self.forward_transmits();
                self.endpoint.stop(now, server);
                self.discard_transmits();
                self.finish(ClientCloseReason::HandshakeFailed);
            }
        }
    }

    /// Retransmits handshake flights and enforces the handshake timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Phase::Handshaking { deadline }, Some(server)) = (self.phase, self.server) else {
            return;
        };
        if now >= deadline {
            self.endpoint.stop(now, server);
            self.discard_transmits();
            self.finish(ClientCloseReason::HandshakeFailed);
            return;
        }
        let result = self.endpoint.handle_timeout(server, now);
        self.forward_transmits();
        if result.is_err() {
            // Out of retransmissions.
            self.endpoint.stop(now, server);
            self.discard_transmits();
            self.finish(ClientCloseReason::HandshakeFailed);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called (only while the handshake
    /// runs: an established client has no timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (Phase::Handshaking { deadline }, Some(server)) = (self.phase, self.server) else {
            return None;
        };
        Some(
            self.endpoint
                .poll_timeout(&server)
                .map_or(deadline, |at| at.min(deadline)),
        )
    }

    /// The next datagram to send (always to the server).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Whether the handshake has completed and the connection is open.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The negotiated cipher suite, once connected.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        let state = self.endpoint.get_connection_state(self.server?)?;
        CipherSuite::from_id(state.cipher_suite()?.id())
    }

    /// Encrypts `plaintext` as one application-data record to the server.
    pub fn send(&mut self, now: Instant, plaintext: &[u8]) -> Result<(), SendError> {
        let server = self
            .server
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        if self.phase != Phase::Connected {
            return Err(SendError::NotConnected(server));
        }
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SendError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            });
        }
        let result = self.endpoint.write(now, server, plaintext);
        self.forward_transmits();
        result.map_err(|error| SendError::Dtls(error.to_string()))
    }

    /// Sends close_notify (if connected) and ends the connection.
    pub fn close(&mut self, now: Instant) {
        let Some(server) = self.server else {
            self.phase = Phase::Closed;
            return;
        };
        match self.phase {
            Phase::Connected => {
                self.endpoint.stop(now, server);
                self.forward_transmits();
            }
            Phase::Handshaking { .. } => {
                self.endpoint.stop(now, server);
                self.discard_transmits();
            }
            Phase::Idle | Phase::Closed => return,
        }
        self.finish(ClientCloseReason::ClosedLocally);
    }

    fn finish(&mut self, reason: ClientCloseReason) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(ClientEvent::Closed { reason });
        }
    }

    fn forward_transmits(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            self.transmits
                .push_back((transmit.transport.peer_addr, Vec::from(transmit.message)));
        }
    }

    fn discard_transmits(&mut self) {
        while self.endpoint.poll_transmit().is_some() {}
    }
}
