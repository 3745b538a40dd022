//! Configuration of an [`super::Lwm2mServer`]: timing (lifetime grace, queue-mode window, queued
//! request expiry) and the hard caps that bound its memory.

use std::time::Duration;

use crate::coap::CoapConfig;

/// Configuration of an [`super::Lwm2mServer`]. `ServerConfig::default()` suits a fleet server.
///
/// # Memory bounds
///
/// Everything a peer can make the engine hold is capped:
/// - registrations: [`max_registrations`](Self::max_registrations) (a Register beyond it is
///   answered 5.03 Service Unavailable);
/// - Register requests waiting for the application's verdict:
///   [`max_pending_registrations`](Self::max_pending_registrations) (5.03 beyond it), each
///   forgotten after [`CoapConfig::pending_request_timeout`]; changes waiting for the
///   application's commit are at most one per accepted Register plus one Update or De-register
///   per registration, each given up after
///   [`persist_before_answer`](Self::persist_before_answer);
/// - per registration: [`max_in_flight`](Self::max_in_flight) requests on the wire,
///   [`max_queued`](Self::max_queued) requests waiting (for a sleeping client or for an in-flight
///   slot), [`max_observations`](Self::max_observations) observations;
/// - the CoAP layer below is bounded by [`CoapConfig`] (deduplication, pending requests, Block1
///   reassembly, per-peer state).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// The CoAP endpoint's configuration.
    pub coap: CoapConfig,
    /// Hard cap on registrations. Default 100 000.
    pub max_registrations: usize,
    /// Hard cap on Register requests the application has not yet accepted or rejected.
    /// Default 4096.
    pub max_pending_registrations: usize,
    /// Requests on the wire per registration; more wait in the queue. Default 4.
    pub max_in_flight: usize,
    /// Requests waiting per registration (queue mode, or all in-flight slots taken); beyond it
    /// [`super::Lwm2mServer::request`] fails with `QueueFull`. Requests that time out because a
    /// queue-mode client fell asleep go back to the queue even when it is full, so it can hold up
    /// to `max_queued + max_in_flight`. Default 32.
    pub max_queued: usize,
    /// Observations (established or being set up) per registration. Default 16.
    pub max_observations: usize,
    /// How long after its lifetime a registration without an Update is removed: some slack for
    /// an Update that is being retransmitted. Default 30 s.
    pub lifetime_grace: Duration,
    /// How long a queue-mode client stays reachable after it last sent something (an Update,
    /// Register, Send or notification: LwM2M TS Transport 1.1 "Queue Mode Operation", the client
    /// listens for MAX_TRANSMIT_WAIT after its last message). Default 93 s (MAX_TRANSMIT_WAIT
    /// with the RFC 7252 defaults).
    pub queue_awake_window: Duration,
    /// How long a queued request waits for a sleeping client before it fails with `Expired`,
    /// unless the request gives its own. Default 24 h.
    pub queued_request_expiry: Duration,
    /// Acknowledged means durable: `Some(timeout)` makes accepted Registers, Updates and
    /// De-registers wait for the application's commit ([`super::ServerEvent::PersistChange`])
    /// before they take effect and are answered; a commit that has not come after `timeout` is
    /// answered 5.03. Keep it well below the client's wait for a separate response
    /// ([`CoapConfig::separate_response_timeout`] on our side: 247 s). `None` (the default, for
    /// applications without a store): changes apply and are answered at once.
    pub persist_before_answer: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        let coap = CoapConfig::default();
        ServerConfig {
            queue_awake_window: coap.max_transmit_wait(),
            coap,
            max_registrations: 100_000,
            max_pending_registrations: 4096,
            max_in_flight: 4,
            max_queued: 32,
            max_observations: 16,
            lifetime_grace: Duration::from_secs(30),
            queued_request_expiry: Duration::from_secs(24 * 3600),
            persist_before_answer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_window_defaults_to_max_transmit_wait() {
        // Queue Mode Operation / RFC 7252 §4.8.2: MAX_TRANSMIT_WAIT is 93 s.
        let c = ServerConfig::default();
        assert_eq!(c.queue_awake_window, Duration::from_secs(93));
        assert_eq!(c.queued_request_expiry, Duration::from_secs(86_400));
    }
}
