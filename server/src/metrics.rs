//! Prometheus metrics of the server: one process-wide registry ([`global`]) fed from the LwM2M
//! service's events (a task per service, [`watch_events`]), from its `stats()` sampled at each
//! scrape ([`Metrics::observe_stats`]), from the device-operation routes (requests by operation
//! and result, latency) and from an HTTP middleware ([`track_http`]). Encoded in the
//! OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Nothing here touches the engines: what they do not count (CoAP retransmissions) is not
//! reported.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::error::RecvError;

use crate::lwm2m::{DeviceEvent, Lwm2mService, ServiceStats, Transport};

/// The content type of the OpenMetrics text format (what [`Metrics::encode`] writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabel {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabel {
    bound: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Operation latency buckets: 5 ms … ~41 s (a CoAP request with retransmissions takes up to
/// ~93 s with RFC 7252 defaults; slower ones land in +Inf).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// HTTP latency buckets: 1 ms … ~8 s.
fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    registrations: Gauge,
    observations: Gauge,
    in_flight_ops: Gauge,
    queued_ops: Gauge,
    psk_identities_cached: Gauge,
    dtls_sessions: Gauge,
    registration_events: Family<KindLabel, Counter>,
    notifications: Counter,
    sends: Counter,
    operations_queued: Counter,
    operations_completed: Family<StatusLabel, Counter>,
    events_missed: Counter,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<OperationLabel>,
    datagrams_received: Family<TransportLabel, Counter>,
    datagrams_sent: Family<TransportLabel, Counter>,
    datagrams_oversized: Family<TransportLabel, Counter>,
    send_failures: Family<TransportLabel, Counter>,
    coap_retransmissions: Family<TransportLabel, Counter>,
    dtls_handshakes: Family<HandshakeLabel, Counter>,
    dtls_handshake_failures: Family<ReasonLabel, Counter>,
    dtls_dropped: Family<ReasonLabel, Counter>,
    dtls_bound_hits: Family<BoundLabel, Counter>,
    dtls_handshakes_in_progress: Gauge,
    dtls_rate_limited_addresses: Gauge,
    dtls_hello_verify_requests: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<OperationLabel>,
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics (Prometheus scrapes one process).
pub fn global() -> &'static Metrics {
    GLOBAL.get_or_init(Metrics::new)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferrite");
        let metrics = Metrics {
            registrations: Gauge::default(),
            observations: Gauge::default(),
            in_flight_ops: Gauge::default(),
            queued_ops: Gauge::default(),
            psk_identities_cached: Gauge::default(),
            dtls_sessions: Gauge::default(),
            registration_events: Family::default(),
            notifications: Counter::default(),
            sends: Counter::default(),
            operations_queued: Counter::default(),
            operations_completed: Family::default(),
            events_missed: Counter::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            datagrams_received: Family::default(),
            datagrams_sent: Family::default(),
            datagrams_oversized: Family::default(),
            send_failures: Family::default(),
            coap_retransmissions: Family::default(),
            dtls_handshakes: Family::default(),
            dtls_handshake_failures: Family::default(),
            dtls_dropped: Family::default(),
            dtls_bound_hits: Family::default(),
            dtls_handshakes_in_progress: Gauge::default(),
            dtls_rate_limited_addresses: Gauge::default(),
            dtls_hello_verify_requests: Counter::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "lwm2m_registrations",
            "Current LwM2M registrations",
            metrics.registrations.clone(),
        );
        r.register(
            "lwm2m_observations",
            "Established observations",
            metrics.observations.clone(),
        );
        r.register(
            "lwm2m_in_flight_operations",
            "Device requests on the wire",
            metrics.in_flight_ops.clone(),
        );
        r.register(
            "lwm2m_queued_operations",
            "Device requests waiting for sleeping devices",
            metrics.queued_ops.clone(),
        );
        r.register(
            "psk_identities_cached",
            "DTLS PSK identities in the key cache",
            metrics.psk_identities_cached.clone(),
        );
        r.register(
            "dtls_sessions",
            "Established DTLS sessions",
            metrics.dtls_sessions.clone(),
        );
        r.register(
            "lwm2m_registration_events",
            "Registration interface events by kind (registered, reregistered, updated, deregistered, expired, removed, refused)",
            metrics.registration_events.clone(),
        );
        r.register(
            "lwm2m_notifications",
            "Observe notifications received",
            metrics.notifications.clone(),
        );
        r.register(
            "lwm2m_send",
            "LwM2M Send (/dp) requests received",
            metrics.sends.clone(),
        );
        r.register(
            "lwm2m_operations_queued",
            "Requests persisted for sleeping devices",
            metrics.operations_queued.clone(),
        );
        r.register(
            "lwm2m_operations_completed",
            "Requests through the service that finished, by status (succeeded, failed)",
            metrics.operations_completed.clone(),
        );
        r.register(
            "metrics_events_missed",
            "Service events the metrics task missed (lag)",
            metrics.events_missed.clone(),
        );
        r.register(
            "lwm2m_requests",
            "Device requests made through the HTTP API, by operation and result (CoAP code such as 2.05 or 4.04, or timeout, pending, …)",
            metrics.requests.clone(),
        );
        r.register(
            "lwm2m_request_duration_seconds",
            "Latency of device requests made through the HTTP API, by operation",
            metrics.request_duration.clone(),
        );
        r.register(
            "lwm2m_datagrams_received",
            "Datagrams received, by transport",
            metrics.datagrams_received.clone(),
        );
        r.register(
            "lwm2m_datagrams_sent",
            "Datagrams sent, by transport",
            metrics.datagrams_sent.clone(),
        );
        r.register(
            "lwm2m_datagrams_oversized",
            "Datagrams dropped as oversized, by transport",
            metrics.datagrams_oversized.clone(),
        );
        r.register(
            "lwm2m_send_failures",
            "Socket send failures, by transport",
            metrics.send_failures.clone(),
        );
        r.register(
            "coap_retransmissions",
            "Confirmable CoAP messages the server retransmitted (no ACK in time), by transport",
            metrics.coap_retransmissions.clone(),
        );
        r.register(
            "dtls_handshakes",
            "DTLS handshakes by result (ok, failed)",
            metrics.dtls_handshakes.clone(),
        );
        r.register(
            "dtls_handshake_failures",
            "Failed DTLS handshakes by reason (timeout, bad_key, unknown_identity, peer_aborted, protocol, superseded, internal, evicted)",
            metrics.dtls_handshake_failures.clone(),
        );
        r.register(
            "dtls_datagrams_dropped",
            "Datagrams the DTLS layer dropped, by reason (not_client_hello, malformed_client_hello, unexpected_message_sequence, handshake_table_full, rate_limited, duplicate_client_hello, invalid_records)",
            metrics.dtls_dropped.clone(),
        );
        r.register(
            "dtls_bound_hits",
            "Times a DTLS bound was hit (handshake_table: hello dropped; handshake_table_eviction: stalled handshake abandoned; session_table: session evicted; rate_limit: address refused; failure_table: count forgotten)",
            metrics.dtls_bound_hits.clone(),
        );
        r.register(
            "dtls_handshakes_in_progress",
            "DTLS handshakes in progress (cookie verified, not complete)",
            metrics.dtls_handshakes_in_progress.clone(),
        );
        r.register(
            "dtls_rate_limited_addresses",
            "Source addresses currently refused after too many failed DTLS handshakes",
            metrics.dtls_rate_limited_addresses.clone(),
        );
        r.register(
            "dtls_hello_verify_requests",
            "Stateless DTLS HelloVerifyRequests sent",
            metrics.dtls_hello_verify_requests.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by method, route and status",
            metrics.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route",
            metrics.http_duration.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A device request made through the API: its operation (`Read`), result (`2.05`, `4.04`,
    /// `timeout`, `pending`, …) and how long the caller waited.
    pub fn record_request(&self, operation: &str, result: &str, latency: Duration) {
        self.record_requests(operation, result, latency, 1);
    }

    /// Counts `count` device requests with the same operation, result and latency (the
    /// devices of one fleet read): as many as `record_request` calls, one label lookup.
    pub fn record_requests(&self, operation: &str, result: &str, latency: Duration, count: u64) {
        if count == 0 {
            return;
        }
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_owned(),
                result: result.to_owned(),
            })
            .inc_by(count);
        let histogram = self.request_duration.get_or_create(&OperationLabel {
            operation: operation.to_owned(),
        });
        let seconds = latency.as_secs_f64();
        for _ in 0..count {
            histogram.observe(seconds);
        }
    }

    /// Counts a registration-interface event. Notifications, Send requests and completed or
    /// queued requests are counted by the sockets and read from their stats
    /// ([`observe_stats`](Self::observe_stats)): they are too frequent to wake a listener for.
    pub fn record_event(&self, event: &DeviceEvent) {
        let kind = match event {
            DeviceEvent::Registered { reboot: false, .. } => "registered",
            DeviceEvent::Registered { reboot: true, .. } => "reregistered",
            DeviceEvent::Updated { .. } => "updated",
            DeviceEvent::Deregistered { .. } => "deregistered",
            DeviceEvent::Expired { .. } => "expired",
            DeviceEvent::Removed { .. } => "removed",
            DeviceEvent::RegistrationRefused { .. } => "refused",
            DeviceEvent::Notification { .. }
            | DeviceEvent::Send { .. }
            | DeviceEvent::OperationQueued { .. }
            | DeviceEvent::OperationCompleted { .. }
            | DeviceEvent::ObservationEnded { .. }
            | DeviceEvent::StateChanged { .. } => return,
        };
        self.registration_events
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Takes the service's sizes and counters (sampled when scraped).
    pub fn observe_stats(&self, stats: &ServiceStats) {
        let gauge = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.registrations, stats.registrations);
        gauge(&self.psk_identities_cached, stats.psk_identities_cached);
        let sum = |f: fn(&crate::lwm2m::SocketStats) -> usize| stats.sockets.iter().map(f).sum();
        gauge(&self.observations, sum(|s| s.observations));
        gauge(&self.in_flight_ops, sum(|s| s.in_flight_ops));
        gauge(&self.queued_ops, sum(|s| s.queued_ops));
        gauge(&self.dtls_sessions, sum(|s| s.dtls_sessions.unwrap_or(0)));
        // The sockets count from their start; these counters mirror them (a restarted service
        // starts again from zero, which Prometheus's rate() reads as a counter reset).
        let set = |c: &Counter, v: u64| {
            c.inner().store(v, Ordering::Relaxed);
        };
        let (mut ok, mut failed) = (0, 0);
        let (mut notifications, mut sends, mut queued, mut succeeded, mut op_failed) =
            (0, 0, 0, 0, 0);
        for socket in &stats.sockets {
            notifications += socket.notifications_received;
            sends += socket.sends_received;
            queued += socket.operations_queued;
            succeeded += socket.operations_succeeded;
            op_failed += socket.operations_failed;
            let transport = TransportLabel {
                transport: match socket.transport {
                    Some(Transport::Coap) => "coap",
                    Some(Transport::Coaps) => "coaps",
                    None => "unknown",
                }
                .to_owned(),
            };
            set(
                &self.datagrams_received.get_or_create(&transport),
                socket.datagrams_received,
            );
            set(
                &self.datagrams_sent.get_or_create(&transport),
                socket.datagrams_sent,
            );
            set(
                &self.datagrams_oversized.get_or_create(&transport),
                socket.datagrams_oversized,
            );
            set(
                &self.send_failures.get_or_create(&transport),
                socket.send_failures,
            );
            set(
                &self.coap_retransmissions.get_or_create(&transport),
                socket.coap_retransmissions,
            );
            ok += socket.dtls_handshakes_completed.unwrap_or(0);
            failed += socket.dtls_handshakes_failed.unwrap_or(0);
        }
        let handshakes = |result: &str| HandshakeLabel {
            result: result.to_owned(),
        };
        set(&self.notifications, notifications);
        set(&self.sends, sends);
        set(&self.operations_queued, queued);
        let status = |status: &str| StatusLabel {
            status: status.to_owned(),
        };
        set(
            &self
                .operations_completed
                .get_or_create(&status("succeeded")),
            succeeded,
        );
        set(
            &self.operations_completed.get_or_create(&status("failed")),
            op_failed,
        );
        set(&self.dtls_handshakes.get_or_create(&handshakes("ok")), ok);
        set(
            &self.dtls_handshakes.get_or_create(&handshakes("failed")),
            failed,
        );
        self.observe_dtls(stats);
    }

    /// The DTLS layer's counters by reason, summed over the sockets that run DTLS.
    fn observe_dtls(&self, stats: &ServiceStats) {
        let set = |c: &Counter, v: u64| {
            c.inner().store(v, Ordering::Relaxed);
        };
        let mut failures = std::collections::BTreeMap::<&str, u64>::new();
        let mut dropped = std::collections::BTreeMap::<&str, u64>::new();
        let mut bounds = std::collections::BTreeMap::<&str, u64>::new();
        let (mut in_progress, mut limited, mut hvr) = (0usize, 0usize, 0u64);
        for dtls in stats.sockets.iter().filter_map(|s| s.dtls.as_ref()) {
            for (reason, n) in &dtls.handshake_failures {
                *failures.entry(reason).or_default() += n;
            }
            for (reason, n) in &dtls.dropped {
                *dropped.entry(reason).or_default() += n;
            }
            let hits = [
                (
                    "handshake_table",
                    dtls.dropped
                        .get("handshake_table_full")
                        .copied()
                        .unwrap_or(0),
                ),
                ("handshake_table_eviction", dtls.handshakes_evicted),
                ("session_table", dtls.sessions_evicted),
                ("rate_limit", dtls.rate_limit_blocks),
                ("failure_table", dtls.failure_table_evictions),
            ];
            for (bound, n) in hits {
                *bounds.entry(bound).or_default() += n;
            }
            in_progress += dtls.handshakes_in_progress;
            limited += dtls.rate_limited_addresses;
            hvr += dtls.hello_verify_requests;
        }
        for (reason, n) in failures {
            let label = ReasonLabel {
                reason: reason.to_owned(),
            };
            set(&self.dtls_handshake_failures.get_or_create(&label), n);
        }
        for (reason, n) in dropped {
            let label = ReasonLabel {
                reason: reason.to_owned(),
            };
            set(&self.dtls_dropped.get_or_create(&label), n);
        }
        for (bound, n) in bounds {
            let label = BoundLabel {
                bound: bound.to_owned(),
            };
            set(&self.dtls_bound_hits.get_or_create(&label), n);
        }
        let gauge = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.dtls_handshakes_in_progress, in_progress);
        gauge(&self.dtls_rate_limited_addresses, limited);
        set(&self.dtls_hello_verify_requests, hvr);
    }

    /// An HTTP request answered.
    pub fn record_http(&self, method: &str, route: &str, status: u16, latency: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&OperationLabel {
                operation: route.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

/// Services whose events are being counted, by one of their socket addresses (unique while the
/// service runs), so building the HTTP app twice for one service does not count twice.
static WATCHED: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());

/// Starts the task that counts `service`'s events into [`global`] (once per service); it ends
/// when the service stops. The HTTP app calls it when it is built.
pub fn watch_events(service: &Lwm2mService) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    // Keyed by a socket the service owns; a NoSec-only service has no CoAPS socket.
    let key = service
        .local_addr(Transport::Coaps)
        .or_else(|| service.local_addr(Transport::Coap))?;
    if !WATCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key)
    {
        return None;
    }
    let mut events = service.registration_events();
    Some(runtime.spawn(async move {
        let metrics = global();
        loop {
            match events.recv().await {
                Ok(event) => metrics.record_event(&event),
                Err(RecvError::Lagged(missed)) => {
                    metrics.events_missed.inc_by(missed);
                }
                Err(RecvError::Closed) => break,
            }
        }
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }))
}

/// Instruments the HTTP app: counts its requests ([`track_http`]) and starts counting the
/// service's events ([`watch_events`]).
pub fn instrument<S>(router: axum::Router<S>, state: &crate::http::AppState) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if let Some(service) = &state.lwm2m {
        watch_events(service);
    }
    router.layer(axum::middleware::from_fn(track_http))
}

/// Middleware counting every HTTP request by method, matched route and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    global().record_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A counter's value (tests).
#[cfg(test)]
fn value(counter: &Counter) -> u64 {
    counter.inner().load(Ordering::Relaxed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lwm2m::{DtlsCounters, SocketStats};

    #[test]
    fn a_tally_of_requests_counts_like_single_requests() {
        let tallied = Metrics::new();
        tallied.record_requests("Read", "2.05", Duration::from_millis(30), 3);
        tallied.record_requests("Read", "4.04", Duration::from_millis(30), 0);
        let single = Metrics::new();
        for _ in 0..3 {
            single.record_request("Read", "2.05", Duration::from_millis(30));
        }
        let text = tallied.encode();
        assert!(
            text.contains("ferrite_lwm2m_requests_total{operation=\"Read\",result=\"2.05\"} 3")
        );
        assert!(
            text.contains("ferrite_lwm2m_request_duration_seconds_count{operation=\"Read\"} 3")
        );
        assert!(
            !text.contains("result=\"4.04\""),
            "a zero tally creates no series"
        );
        assert_eq!(text, single.encode());
    }

    #[test]
    fn events_and_stats_become_metrics() {
        let metrics = Metrics::new();
        metrics.record_request("Read", "2.05", Duration::from_millis(12));
        metrics.record_request("Read", "4.04", Duration::from_millis(8));
        metrics.record_http("GET", "/api/v1/devices", 200, Duration::from_millis(3));
        let stats = ServiceStats {
            registrations: 3,
            psk_identities_cached: 2,
            sockets: vec![SocketStats {
                transport: Some(Transport::Coaps),
                datagrams_received: 40,
                coap_retransmissions: 2,
                notifications_received: 5,
                sends_received: 6,
                operations_queued: 1,
                operations_succeeded: 8,
                operations_failed: 2,
                dtls_handshakes_completed: Some(7),
                dtls_handshakes_failed: Some(1),
                dtls: Some(DtlsCounters {
                    handshakes_in_progress: 2,
                    handshake_failures: [("bad_key".to_owned(), 1)].into(),
                    dropped: [
                        ("handshake_table_full".to_owned(), 5),
                        ("rate_limited".to_owned(), 3),
                    ]
                    .into(),
                    sessions_evicted: 4,
                    rate_limit_blocks: 1,
                    ..DtlsCounters::default()
                }),
                ..SocketStats::default()
            }],
        };
        metrics.observe_stats(&stats);
        metrics.observe_stats(&stats);
        let text = metrics.encode();
        for line in [
            "ferrite_lwm2m_registrations 3",
            "ferrite_lwm2m_requests_total{operation=\"Read\",result=\"2.05\"} 1",
            "ferrite_lwm2m_requests_total{operation=\"Read\",result=\"4.04\"} 1",
            "ferrite_dtls_handshakes_total{result=\"ok\"} 7",
            "ferrite_dtls_handshakes_total{result=\"failed\"} 1",
            "ferrite_dtls_handshake_failures_total{reason=\"bad_key\"} 1",
            "ferrite_dtls_datagrams_dropped_total{reason=\"rate_limited\"} 3",
            "ferrite_dtls_bound_hits_total{bound=\"handshake_table\"} 5",
            "ferrite_dtls_bound_hits_total{bound=\"session_table\"} 4",
            "ferrite_dtls_bound_hits_total{bound=\"rate_limit\"} 1",
            "ferrite_dtls_handshakes_in_progress 2",
            "ferrite_lwm2m_datagrams_received_total{transport=\"coaps\"} 40",
            "ferrite_coap_retransmissions_total{transport=\"coaps\"} 2",
            "ferrite_lwm2m_notifications_total 5",
            "ferrite_lwm2m_send_total 6",
            "ferrite_lwm2m_operations_queued_total 1",
            "ferrite_lwm2m_operations_completed_total{status=\"succeeded\"} 8",
            "ferrite_lwm2m_operations_completed_total{status=\"failed\"} 2",
            "ferrite_lwm2m_request_duration_seconds_count{operation=\"Read\"} 2",
            "ferrite_http_requests_total{method=\"GET\",route=\"/api/v1/devices\",status=\"200\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn registration_events_are_counted_by_kind() {
        let metrics = Metrics::new();
        let at = chrono::Utc::now();
        metrics.record_event(&DeviceEvent::Expired {
            endpoint: "m".into(),
            registration_id: "r".into(),
            at,
        });
        // Counted from the sockets' stats, not from events.
        metrics.record_event(&DeviceEvent::Send {
            endpoint: "m".into(),
            records: Vec::new(),
            at,
        });
        assert_eq!(value(&metrics.sends), 0);
        let text = metrics.encode();
        assert!(
            text.contains("ferrite_lwm2m_registration_events_total{kind=\"expired\"} 1"),
            "{text}"
        );
    }
}
