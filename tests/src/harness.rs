//! [`TestServer`]: `ferrite` started in-process with NoSec enabled, every socket on
//! 127.0.0.1:0, a temporary SQLite file and a fresh server key, with the LwM2M engine's timings
//! shortened (lifetime grace 1 s, queue-mode awake window 2 s, quick CoAP retransmissions) so
//! expiry and queue-mode tests take seconds. It can be stopped and started again on the same file
//! and ports (restart tests), and creates devices in the fleet registry.

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_proto::coap::CoapConfig;
use server::config::Config;
use server::fleet::lifecycle::Actor;
use server::fleet::registry::{NewDevice, SecurityMode, Tags};
use server::lwm2m::{DeviceEvent, Lwm2mService, ServiceSettings, Transport};
use server::run::RunningServer;
use server::store::Store;
use tempfile::TempDir;
use tokio::sync::broadcast;

use crate::PATIENCE;

/// A PSK device's credentials, as the registry generated them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub identity: String,
    pub key: Vec<u8>,
}

/// A running (or stopped, between restarts) server.
#[derive(Debug)]
pub struct TestServer {
    _dir: TempDir,
    config: Config,
    settings: ServiceSettings,
    running: Option<RunningServer>,
}

/// The engine timings the tests rely on.
pub fn test_settings(config: &Config) -> ServiceSettings {
    let mut settings = ServiceSettings::from_config(config);
    settings.engine.lifetime_grace = Duration::from_secs(1);
    settings.engine.queue_awake_window = Duration::from_secs(2);
    settings.engine.coap = CoapConfig {
        ack_timeout: Duration::from_millis(500),
        max_retransmit: 2,
        ..CoapConfig::default()
    };
    settings
}

impl TestServer {
    /// Starts with [`test_settings`].
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts with [`test_settings`] changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut ServiceSettings)) -> TestServer {
        crate::init_logging();
        let dir = tempfile::tempdir().unwrap();
        let mut key = [0u8; 32];
        server::fleet::secrets::random_bytes(&mut key).unwrap();
        let config = Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            coap_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            coaps_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nosec: true,
            database_url: format!("sqlite://{}", dir.path().join("ferrite.db").display()),
            api_token: Some("e2e-token-0123456789".into()),
            secret_key: Some(hex::encode(key)),
            ..Config::default()
        };
        let mut settings = test_settings(&config);
        tweak(&mut settings);
        let running = server::run::start_with(config.clone(), settings.clone())
            .await
            .unwrap();
        // Restarts come back on the same ports, as a real server would.
        let service = running.lwm2m();
        settings.coap_addr = service.local_addr(Transport::Coap);
        if let Some(coaps) = service.local_addr(Transport::Coaps) {
            settings.coaps_addr = coaps;
        }
        TestServer {
            _dir: dir,
            config,
            settings,
            running: Some(running),
        }
    }

    fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("the server is running")
    }

    pub fn service(&self) -> &Lwm2mService {
        self.running().lwm2m()
    }

    pub fn store(&self) -> &Store {
        self.running().store()
    }

    /// Observes `path` on `endpoint` (waiting up to 10 s); the observation's number. Panics on
    /// any other outcome.
    pub async fn observe(&self, endpoint: &str, path: lwm2m_objects::Path) -> u64 {
        use lwm2m_proto::lwm2m::server::{OpOutcome, Operation};
        let observed = self
            .service()
            .request(endpoint, Operation::Observe(path), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("observe {path} on {endpoint}: {e}"));
        match observed {
            server::lwm2m::OpResult::Done {
                outcome: OpOutcome::Observing { observation, .. },
                ..
            } => observation.as_u64(),
            other => panic!("expected an observation of {path} on {endpoint}, got {other:?}"),
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.running().http_addr()
    }

    /// The plain CoAP (NoSec) address.
    pub fn coap_addr(&self) -> SocketAddr {
        self.settings.coap_addr.expect("NoSec is enabled")
    }

    /// The CoAP-over-DTLS address.
    pub fn coaps_addr(&self) -> SocketAddr {
        self.settings.coaps_addr
    }

    pub fn events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.service().events()
    }

    /// Stops everything (the SQLite file stays).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }

    /// Stops and starts again on the same database file, key and ports.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = server::run::start_with(self.config.clone(), self.settings.clone())
            .await
            .unwrap();
        self.running = Some(running);
    }

    /// Creates a NoSec device in the registry and starts a test meter for it, registered: TLV
    /// for LwM2M 1.0, SenML JSON for 1.1 and later.
    pub async fn registered_nosec_meter(
        &self,
        endpoint: &str,
        version: lwm2m_proto::lwm2m::registration::Lwm2mVersion,
    ) -> crate::device::TestDevice {
        use crate::device::{DeviceSpec, Security, TestDevice};
        self.create_nosec_device(endpoint).await;
        let mut spec = DeviceSpec::new(endpoint, version, Security::NoSec);
        if version != lwm2m_proto::lwm2m::registration::Lwm2mVersion::V1_0 {
            spec.format = Some(lwm2m_objects::ContentFormat::SenmlJson);
        }
        let mut device = TestDevice::start(spec, self.coap_addr()).await;
        device.register_and_wait().await;
        device
    }

    /// Creates a NoSec device in the registry.
    pub async fn create_nosec_device(&self, endpoint: &str) {
        let device = NewDevice {
            endpoint: endpoint.to_owned(),
            serial: format!("SN-{endpoint}"),
            model: "FM-1".to_owned(),
            tags: Tags::new(),
            customer: None,
            security_mode: SecurityMode::NoSec,
            psk_identity: None,
            psk_key: None,
        };
        self.store()
            .create_device(device, &Actor::user("e2e").unwrap())
            .await
            .unwrap();
    }

    /// Creates a PSK device with a generated identity and key. With `announce`, the service's
    /// key cache is refreshed at once (as the HTTP API will do); without, the first handshake
    /// finds the key missing and the service looks it up for the retry.
    pub async fn create_psk_device(&self, endpoint: &str, announce: bool) -> Credentials {
        let created = self
            .store()
            .create_device(
                NewDevice::psk(endpoint, &format!("SN-{endpoint}"), "FM-1"),
                &Actor::user("e2e").unwrap(),
            )
            .await
            .unwrap();
        let identity = created.device.psk_identity.clone().unwrap();
        let key = created.generated_psk_key.unwrap().as_bytes().to_vec();
        if announce {
            assert!(self.service().refresh_credentials(&identity).await.unwrap());
        }
        Credentials { identity, key }
    }
}

/// Waits up to [`PATIENCE`] for a service event `pick` accepts.
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<DeviceEvent>,
    mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => {
                if let Some(found) = pick(&event) {
                    return found;
                }
                seen.push(event);
            }
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                panic!("event receiver lagged by {n}")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("event stream closed"),
            Err(_) => panic!("no matching service event within {PATIENCE:?}; saw {seen:#?}"),
        }
    }
}

/// Waits for the next notification (not the Observe's own first value) of `observation` on
/// `endpoint`: its values.
pub async fn next_notification(
    events: &mut broadcast::Receiver<DeviceEvent>,
    endpoint: &str,
    observation: u64,
) -> Vec<server::lwm2m::RecordView> {
    next_event(events, |e| match e {
        DeviceEvent::Notification {
            endpoint: ep,
            observation: o,
            values,
            initial: false,
            ..
        } if ep == endpoint && *o == observation => Some(values.clone()),
        _ => None,
    })
    .await
}

/// Polls `check` every 50 ms until it returns Some, for up to [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("not within {PATIENCE:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
