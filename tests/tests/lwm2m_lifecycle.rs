//! End to end over plain CoAP: how registrations live and die, and what survives a restart —
//! queue mode (a request to a sleeping device is persisted and completes after its Update),
//! lifetime expiry, NAT rebinding (an Update from a new port moves the registration), and a
//! server restart on the same SQLite file (registrations restored, queued requests re-submitted).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::client::ClientEvent;
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation};
use server::fleet::registry::Connectivity;
use server::lwm2m::{
    DeviceEvent, OpResult, OperationResult, OutcomeView, RequestStatus, ValueView,
};
use server::store::lwm2m::RegistrationEventKind;
use tests::device::{DeviceEvent as DevEvent, DeviceSpec, Security, TestDevice};
use tests::harness::{TestServer, eventually, next_event};

const WAIT: Duration = Duration::from_secs(10);

async fn start_device(server: &TestServer, spec: DeviceSpec) -> TestDevice {
    server.create_nosec_device(&spec.endpoint).await;
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;
    device
}

fn battery(result: &OpResult) -> Option<Value> {
    match result {
        OpResult::Done {
            outcome: OpOutcome::Content(Content::Node { node, .. }),
            ..
        } => node
            .flatten(&Path::Resource(3, 0, 9))
            .first()
            .map(|(_, v)| (*v).clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_sleeping_queue_mode_device_is_persisted_and_completes_after_its_update() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let mut spec = DeviceSpec::new("meter-q", Lwm2mVersion::V1_1, Security::NoSec);
    spec.queue_mode = true;
    spec.lifetime = 120;
    let mut device = start_device(&server, spec).await;
    let service = server.service();
    assert!(service.registration("meter-q").unwrap().queue_mode);

    // The server's awake window (2 s in the tests) passes: the device counts as asleep.
    eventually("connectivity sleeping", || async {
        let d = server.store().get_device("meter-q").await.unwrap()?;
        (d.connectivity == Connectivity::Sleeping).then_some(())
    })
    .await;

    let pending = service
        .request(
            "meter-q",
            Operation::Read(Path::Resource(3, 0, 9)),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let OpResult::Pending {
        operation,
        queued: true,
    } = pending
    else {
        panic!("expected a queued request, got {pending:?}");
    };
    // Acknowledged means durable: the request is in the table before `Pending` is returned.
    let stored = service.operation(operation).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Pending);
    assert_eq!(stored.endpoint, "meter-q");
    next_event(&mut events, |e| match e {
        DeviceEvent::OperationQueued { operation: o, .. } => (*o == operation).then_some(()),
        _ => None,
    })
    .await;

    // A second caller waits for the answer instead.
    let waiting = {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .request("meter-q", Operation::Read(Path::Resource(3, 0, 9)), WAIT)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());

    // The device wakes up with an Update: both requests go out and complete.
    device.update();
    device.expect_updated().await;
    let answered = waiting.await.unwrap().unwrap();
    assert_eq!(battery(&answered), Some(Value::Integer(87)));
    let result = next_event(&mut events, |e| match e {
        DeviceEvent::OperationCompleted {
            operation: o,
            result,
            ..
        } if *o == operation => Some(result.clone()),
        _ => None,
    })
    .await;
    let OperationResult::Succeeded {
        outcome: OutcomeView::Content { values },
    } = result
    else {
        panic!("expected content, got {result:?}");
    };
    assert_eq!(values[0].value, ValueView::Integer(87));
    eventually(
        "the stored request is completed with its result",
        || async {
            let row = service.operation(operation).await.unwrap()?;
            (row.status == RequestStatus::Completed && row.result.is_some()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_without_update_expires_after_its_lifetime() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let mut spec = DeviceSpec::new("meter-gone", Lwm2mVersion::V1_0, Security::NoSec);
    spec.lifetime = 2;
    let device = start_device(&server, spec).await;
    // Unplugged: no automatic Update. Lifetime 2 s + grace 1 s.
    device.unplug(true);
    let registration_id = next_event(&mut events, |e| match e {
        DeviceEvent::Expired {
            endpoint,
            registration_id,
            ..
        } if endpoint == "meter-gone" => Some(registration_id.clone()),
        _ => None,
    })
    .await;
    assert!(server.service().registration("meter-gone").is_none());
    server.service().flush().await;
    let device_row = server
        .store()
        .get_device("meter-gone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device_row.connectivity, Connectivity::Offline);
    assert!(
        server
            .store()
            .lwm2m_registration("meter-gone")
            .await
            .unwrap()
            .is_none()
    );
    let history = server
        .store()
        .registration_events("meter-gone", 10)
        .await
        .unwrap();
    assert_eq!(history[0].kind, RegistrationEventKind::Expired);
    assert_eq!(history[0].registration_id, registration_id);
    let read = server
        .service()
        .request("meter-gone", Operation::Read(Path::Instance(3, 0)), WAIT)
        .await
        .unwrap_err();
    assert_eq!(read.kind(), server::lwm2m::ServiceErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_from_a_new_port_moves_the_registration() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let mut device = start_device(
        &server,
        DeviceSpec::new("meter-nat", Lwm2mVersion::V1_1, Security::NoSec),
    )
    .await;
    let before = device.local_addr();
    assert_eq!(
        server.service().registration("meter-nat").unwrap().address,
        before
    );

    device.rebind();
    device.update();
    device.expect_updated().await;
    let after = device.local_addr();
    assert_ne!(before, after);
    let (address, changed) = next_event(&mut events, |e| match e {
        DeviceEvent::Updated {
            registration,
            address_changed,
        } if registration.endpoint == "meter-nat" => Some((registration.address, *address_changed)),
        _ => None,
    })
    .await;
    assert_eq!(address, after);
    assert!(changed);
    let read = server
        .service()
        .request("meter-nat", Operation::Read(Path::Resource(3, 0, 9)), WAIT)
        .await
        .unwrap();
    assert_eq!(battery(&read), Some(Value::Integer(87)));
    eventually("the stored address follows", || async {
        let row = server
            .store()
            .lwm2m_registration("meter-nat")
            .await
            .unwrap()?;
        (row.address == after.to_string()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_queued_requests_survive_a_restart() {
    let mut server = TestServer::start().await;
    let mut always_on = start_device(
        &server,
        DeviceSpec::new("meter-r", Lwm2mVersion::V1_0, Security::NoSec),
    )
    .await;
    let mut spec = DeviceSpec::new("meter-rq", Lwm2mVersion::V1_1, Security::NoSec);
    spec.queue_mode = true;
    spec.lifetime = 120;
    let mut sleeper = start_device(&server, spec).await;
    let before = server.service().registration("meter-r").unwrap();

    // A request for the sleeping device waits in the table.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let OpResult::Pending { operation, .. } = server
        .service()
        .request(
            "meter-rq",
            Operation::Write {
                path: Path::Resource(7, 0, 8),
                node: lwm2m_objects::Node::Resource(lwm2m_objects::Resource::single(
                    8,
                    Value::Integer(15),
                )),
                mode: lwm2m_proto::lwm2m::server::WriteMode::Replace,
            },
            Duration::ZERO,
        )
        .await
        .unwrap()
    else {
        panic!("expected a pending request");
    };

    server.restart().await;
    let mut events = server.events();

    // Restored at start, before any device spoke: same registration ID, same address.
    let restored = server.service().registration("meter-r").unwrap();
    assert_eq!(restored.registration_id, before.registration_id);
    assert_eq!(restored.address, before.address);
    assert!(server.service().registration("meter-rq").is_some());
    assert_eq!(
        server
            .service()
            .operation(operation)
            .await
            .unwrap()
            .unwrap()
            .status,
        RequestStatus::Pending
    );

    // The device's next Update is accepted (not 4.04: the registration is known) and it reads.
    always_on.update();
    always_on.expect_updated().await;
    let read = server
        .service()
        .request("meter-r", Operation::Read(Path::Resource(3, 0, 9)), WAIT)
        .await
        .unwrap();
    assert_eq!(battery(&read), Some(Value::Integer(87)));

    // The sleeper wakes: the re-submitted Write reaches it.
    sleeper.update();
    sleeper.expect_updated().await;
    sleeper
        .expect("Written /7/0/8", |e| match e {
            DevEvent::Client(ClientEvent::Written { path }) => {
                (*path == Path::Resource(7, 0, 8)).then_some(())
            }
            _ => None,
        })
        .await;
    next_event(&mut events, |e| match e {
        DeviceEvent::OperationCompleted { operation: o, .. } => (*o == operation).then_some(()),
        _ => None,
    })
    .await;
    eventually("the re-submitted request is completed", || async {
        let row = server.service().operation(operation).await.unwrap()?;
        (row.status == RequestStatus::Completed).then_some(())
    })
    .await;
}

/// Cancels meter-obs's observation `number`; it must answer Cancelled.
async fn cancel(server: &TestServer, number: u64) {
    let cancelled = server
        .service()
        .cancel_observation("meter-obs", number, WAIT)
        .await
        .unwrap();
    assert!(
        matches!(
            cancelled,
            OpResult::Done {
                outcome: OpOutcome::Cancelled { .. },
                ..
            }
        ),
        "{cancelled:?}"
    );
}

/// An observation outlives a restart: the device keeps notifying (it never heard of the restart),
/// and the restarted server delivers its notifications under the same number instead of
/// answering them with RST; it can still be cancelled. One ended before the restart stays ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_survive_a_restart() {
    let mut server = TestServer::start().await;
    let device = start_device(
        &server,
        DeviceSpec::new("meter-obs", Lwm2mVersion::V1_1, Security::NoSec),
    )
    .await;
    let battery = server.observe("meter-obs", Path::Resource(3, 0, 9)).await;
    // Acknowledged means durable: once the API has answered, the observation is stored.
    let stored = server.store().lwm2m_observations().await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|o| (o.endpoint.as_str(), o.observation, o.paths.clone()))
            .collect::<Vec<_>>(),
        [("meter-obs", battery, vec!["/3/0/9".to_owned()])]
    );
    let memory = server.observe("meter-obs", Path::Resource(3, 0, 13)).await;
    cancel(&server, memory).await;

    server.restart().await;
    let mut events = server.events();
    let observations = server.service().observations("meter-obs").await.unwrap();
    assert_eq!(
        observations
            .iter()
            .map(|o| (o.observation, o.paths.clone()))
            .collect::<Vec<_>>(),
        [(battery, vec!["/3/0/9".to_owned()])]
    );

    // The device notifies on its own (no Update since the restart): delivered, not rejected.
    device.set(Path::Resource(3, 0, 9), Value::Integer(41));
    let values = next_event(&mut events, |e| match e {
        DeviceEvent::Notification {
            endpoint,
            observation,
            values,
            ..
        } if endpoint == "meter-obs" && *observation == battery => Some(values.clone()),
        _ => None,
    })
    .await;
    assert_eq!(values[0].path, "/3/0/9");
    assert_eq!(values[0].value, ValueView::Integer(41));

    // A new observation takes neither the restored one's number nor that of the one cancelled
    // before the restart (an API caller may still hold it); the restored one can be cancelled.
    let fresh = server.observe("meter-obs", Path::Resource(3, 0, 3)).await;
    assert!(fresh > battery && fresh > memory, "{fresh}");
    cancel(&server, battery).await;
    // Only the fresh one is left, in memory and in the store (a second restart brings back
    // exactly that one).
    server.restart().await;
    let left = server.service().observations("meter-obs").await.unwrap();
    assert_eq!(
        left.iter().map(|o| o.observation).collect::<Vec<_>>(),
        [fresh]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_that_ran_out_while_the_server_was_down_are_expired_at_start() {
    let mut server = TestServer::start().await;
    let mut spec = DeviceSpec::new("meter-late", Lwm2mVersion::V1_1, Security::NoSec);
    spec.lifetime = 1;
    let device = start_device(&server, spec).await;
    device.unplug(true);
    server.service().flush().await;
    server.stop().await;
    // Lifetime 1 s + grace 1 s pass while the server is down.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.restart().await;
    assert!(server.service().registration("meter-late").is_none());
    server.service().flush().await;
    assert!(
        server
            .store()
            .lwm2m_registration("meter-late")
            .await
            .unwrap()
            .is_none()
    );
    let history = server
        .store()
        .registration_events("meter-late", 1)
        .await
        .unwrap();
    assert_eq!(history[0].kind, RegistrationEventKind::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_while_registered_is_a_reboot_and_is_recorded() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let mut device = start_device(
        &server,
        DeviceSpec::new("meter-boot", Lwm2mVersion::V1_1, Security::NoSec),
    )
    .await;
    let first = next_event(&mut events, |e| match e {
        DeviceEvent::Registered { registration, .. } => Some(registration.registration_id.clone()),
        _ => None,
    })
    .await;
    // The device restarts and registers again without de-registering.
    device.register_and_wait().await;
    let (second, reboot) = next_event(&mut events, |e| match e {
        DeviceEvent::Registered {
            registration,
            reboot,
        } => Some((registration.registration_id.clone(), *reboot)),
        _ => None,
    })
    .await;
    assert!(reboot);
    assert_ne!(first, second);
    assert_eq!(
        server
            .service()
            .registration("meter-boot")
            .unwrap()
            .registration_id,
        second
    );
    server.service().flush().await;
    let history = server
        .store()
        .registration_events("meter-boot", 10)
        .await
        .unwrap();
    let kinds: Vec<_> = history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            RegistrationEventKind::Reboot,
            RegistrationEventKind::Registered
        ]
    );
    let audit = server
        .store()
        .device_audit(
            "meter-boot",
            server::fleet::registry::AuditPageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "reboot" && e.actor == "system:registration"),
        "{audit:?}"
    );
    assert_eq!(
        server
            .store()
            .lwm2m_registration("meter-boot")
            .await
            .unwrap()
            .unwrap()
            .registration_id,
        second
    );
}

/// Acknowledged means durable (ARCHITECTURE.md): the `ferrite` binary on a SQLite file, devices
/// register over real UDP, and the process is killed (SIGKILL: no graceful shutdown, no flush)
/// the moment the last 2.01 arrives. Every device that got a 2.01 is in the file under the ID its
/// Location-Path named, and a server restarted on the file answers their Updates 2.04 (a
/// forgotten registration would get 4.04 and have to register again). Before the engine deferred
/// the answer until the commit, the last registrations of a burst were routinely missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registration_answered_2_01_survives_a_crash_right_after() {
    use lwm2m_proto::coap::{Code, ContentFormat, Request};
    use server::fleet::lifecycle::Actor;
    use server::fleet::registry::{NewDevice, SecurityMode};
    use server::fleet::secrets::ServerKey;
    use server::store::Store;

    const DEVICES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferrite.db").display());
    let mut key = [0u8; 32];
    server::fleet::secrets::random_bytes(&mut key).unwrap();
    let endpoints: Vec<String> = (0..DEVICES)
        .map(|n| format!("meter-crash-{n:02}"))
        .collect();
    let store = Store::connect(&url, ServerKey::from_bytes(key))
        .await
        .unwrap();
    for endpoint in &endpoints {
        let mut device = NewDevice::psk(endpoint, &format!("SN-{endpoint}"), "FM-1");
        device.security_mode = SecurityMode::NoSec;
        device.psk_identity = None;
        device.psk_key = None;
        store
            .create_device(device, &Actor::user("e2e").unwrap())
            .await
            .unwrap();
    }
    store.close().await;

    let process = crash::Ferrite::start(dir.path(), &url, key).await;
    let coap = process.coap;
    let mut registering = tokio::task::JoinSet::new();
    for (n, endpoint) in endpoints.iter().enumerate() {
        let register = Request::post()
            .with_path(["rd"])
            .with_query(format!("ep={endpoint}"))
            .with_query("lt=600")
            .with_query("lwm2m=1.1")
            .with_content_format(ContentFormat::LINK_FORMAT)
            .with_payload("</1/0>,</3/0>");
        let endpoint = endpoint.clone();
        registering.spawn(async move {
            let response = crash::exchange(coap, register, n as u64).await;
            (endpoint, response)
        });
    }
    let mut locations = Vec::new();
    while let Some(joined) = registering.join_next().await {
        let (endpoint, response) = joined.unwrap();
        assert_eq!(response.code, Code::CREATED, "{endpoint}: {response:?}");
        let path = response.location_path();
        assert_eq!(path.len(), 2, "{endpoint}: {path:?}");
        locations.push((endpoint, path[1].clone()));
    }
    // The last 2.01 is in: crash now.
    let restart = process.kill();

    let store = Store::connect(&url, ServerKey::from_bytes(key))
        .await
        .unwrap();
    let stored: std::collections::HashMap<String, String> = store
        .lwm2m_registrations()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.endpoint, r.registration_id))
        .collect();
    store.close().await;
    let missing: Vec<_> = locations
        .iter()
        .filter(|(endpoint, id)| stored.get(endpoint) != Some(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {DEVICES} acknowledged registrations are not in the store: {missing:?}",
        missing.len()
    );

    // Restarted on the same file and port: the registrations are known.
    let process = restart.start_again().await;
    let mut updating = tokio::task::JoinSet::new();
    for (n, (endpoint, id)) in locations.iter().enumerate() {
        let update = Request::post().with_path(["rd", id.as_str()]);
        let endpoint = endpoint.clone();
        let coap = process.coap;
        updating.spawn(async move {
            let response = crash::exchange(coap, update, 1000 + n as u64).await;
            (endpoint, response.code)
        });
    }
    while let Some(joined) = updating.join_next().await {
        let (endpoint, code) = joined.unwrap();
        assert_eq!(code, Code::CHANGED, "{endpoint}'s Update after the restart");
    }
    drop(process);
}

/// The `ferrite` binary for the crash test, and one CoAP exchange over a fresh UDP socket.
mod crash {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use lwm2m_proto::coap::{CoapConfig, CoapEndpoint, Event, Request, Response};
    use tokio::net::{TcpStream, UdpSocket};

    /// A running `ferrite serve`, killed when dropped.
    pub struct Ferrite {
        child: Child,
        pub coap: SocketAddr,
        settings: Settings,
    }

    /// What it takes to start the same server again.
    #[derive(Clone)]
    pub struct Settings {
        binary: PathBuf,
        env: Vec<(String, String)>,
        http: SocketAddr,
        coap: SocketAddr,
        log: PathBuf,
    }

    fn free_port(udp: bool) -> u16 {
        if udp {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        } else {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        }
    }

    impl Ferrite {
        pub async fn start(dir: &Path, url: &str, key: [u8; 32]) -> Ferrite {
            let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
            let http = loopback(free_port(false));
            let coap = loopback(free_port(true));
            let env = vec![
                ("FERRITE_DATABASE_URL".into(), url.to_owned()),
                ("FERRITE_SECRET_KEY".into(), hex::encode(key)),
                ("FERRITE_API_TOKEN".into(), "crash-token-0123456789".into()),
                ("FERRITE_HTTP_ADDR".into(), http.to_string()),
                ("FERRITE_NOSEC".into(), "true".into()),
                ("FERRITE_COAP_ADDR".into(), coap.to_string()),
                (
                    "FERRITE_COAPS_ADDR".into(),
                    loopback(free_port(true)).to_string(),
                ),
                (
                    "FERRITE_BS_COAP_ADDR".into(),
                    loopback(free_port(true)).to_string(),
                ),
                (
                    "FERRITE_BS_COAPS_ADDR".into(),
                    loopback(free_port(true)).to_string(),
                ),
                ("RUST_LOG".into(), "warn".into()),
            ];
            let settings = Settings {
                binary: tests::flood::ferrite_binary(),
                env,
                http,
                coap,
                log: dir.join("ferrite.log"),
            };
            settings.start_again().await
        }

        /// SIGKILL, as a crash or a power cut would stop it.
        pub fn kill(mut self) -> Settings {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.settings.clone()
        }
    }

    impl Drop for Ferrite {
        fn drop(&mut self) {
            // Only the child this value started.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Settings {
        pub async fn start_again(self) -> Ferrite {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap();
            let child = Command::new(&self.binary)
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while TcpStream::connect(self.http).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "ferrite did not start: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ferrite {
                child,
                coap: self.coap,
                settings: self,
            }
        }
    }

    /// Sends `request` from a new socket with the engine's own CoAP endpoint (retransmissions,
    /// the Empty ACK of a separate response and our ACK of it) and returns the response.
    pub async fn exchange(server: SocketAddr, request: Request, seed: u64) -> Response {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut coap = CoapEndpoint::new(CoapConfig::default(), seed);
        let id = coap.request(Instant::now(), server, request);
        let mut buf = vec![0u8; 2048];
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            while let Some(t) = coap.poll_transmit() {
                socket.send_to(&t.bytes, t.peer).await.unwrap();
            }
            while let Some(event) = coap.poll_event() {
                match event {
                    Event::Response { id: i, response } if i == id => {
                        // Our ACK of a separate response goes out first.
                        while let Some(t) = coap.poll_transmit() {
                            socket.send_to(&t.bytes, t.peer).await.unwrap();
                        }
                        return response;
                    }
                    Event::RequestFailed { reason, .. } => panic!("no answer: {reason:?}"),
                    _ => {}
                }
            }
            assert!(Instant::now() < give_up, "no answer within 60 s");
            let wait = coap.poll_timeout().map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
            });
            match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
                Ok(Ok((len, from))) => {
                    coap.handle_datagram(Instant::now(), from, buf.get(..len).unwrap_or_default());
                }
                _ => coap.handle_timeout(Instant::now()),
            }
        }
    }
}
