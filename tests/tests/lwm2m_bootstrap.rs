//! End to end through the bootstrap server over real sockets: a device with only its factory
//! bootstrap credentials bootstraps over DTLS, registers over DTLS with the fresh key it received
//! and is read; refusals (wrong bootstrap key, unknown identity, another device's identity);
//! credential rotation through the HTTP API (Bootstrap-Request Trigger, re-bootstrap, the old
//! key valid until the device registered with the new one, then revoked); decommissioning refused
//! by both servers; no NoSec bootstrap socket on a server without NoSec.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_objects::{ObjectInstance, Path, Resource, Value};
use lwm2m_proto::coap::Code;
use lwm2m_proto::lwm2m::bootstrap::{AccountSecurity, ServerAccount};
use lwm2m_proto::lwm2m::client::{BootstrapOutcome, ClientEvent, RequestFailure};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation};
use serde_json::{Value as Json, json};
use server::fleet::lifecycle::{Actor, LifecycleState};
use server::fleet::registry::NewDevice;
use server::fleet::secrets::PskKey;
use server::lwm2m::{OpResult, Transport};
use tests::device::{DeviceEvent as DevEvent, DeviceSpec, Security, TestDevice, meter_store};
use tests::harness::{Credentials, TestServer, eventually};

const TOKEN: &str = "e2e-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// One HTTP exchange with the static admin token; the status and the JSON body.
async fn http(addr: SocketAddr, method: &str, uri: &str, body: Option<Json>) -> (u16, Json) {
    tests::http::json(addr, TOKEN, method, uri, body, Duration::from_secs(30)).await
}

fn bs_addr(server: &TestServer) -> SocketAddr {
    server
        .service()
        .bootstrap()
        .unwrap()
        .local_addr(Transport::Coaps)
        .unwrap()
}

fn bootstrap_credentials(endpoint: &str) -> Credentials {
    Credentials {
        identity: format!("bs-{endpoint}"),
        key: endpoint.bytes().cycle().take(16).collect(),
    }
}

/// Creates a PSK device with factory bootstrap credentials through `POST /api/v1/devices`.
async fn create_bootstrappable(server: &TestServer, endpoint: &str) -> Credentials {
    let bs = bootstrap_credentials(endpoint);
    let (status, body) = http(
        server.http_addr(),
        "POST",
        "/api/v1/devices",
        Some(json!({
            "endpoint": endpoint,
            "bootstrap_psk_identity": bs.identity,
            "bootstrap_psk_key_hex": hex::encode(&bs.key),
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    bs
}

/// A factory-fresh meter: its bootstrap account at Security instance 3 (not 0), no server
/// account.
fn factory_spec(endpoint: &str, bs: &Credentials, bs_uri: String) -> DeviceSpec {
    let mut store = meter_store();
    store.insert_instance(
        0,
        ObjectInstance::new(
            3,
            [
                Resource::single(0, Value::String(bs_uri)),
                Resource::single(1, Value::Boolean(true)),
                Resource::single(2, Value::Integer(0)),
                Resource::single(3, Value::Opaque(bs.identity.as_bytes().to_vec())),
                Resource::single(5, Value::Opaque(bs.key.clone())),
            ],
        ),
    );
    let mut spec = DeviceSpec::new(endpoint, Lwm2mVersion::V1_1, Security::Psk(bs.clone()));
    spec.store = store;
    spec
}

async fn expect_bootstrap(device: &mut TestDevice) -> Result<ServerAccount, RequestFailure> {
    device
        .expect("bootstrap outcome", |e| match e {
            DevEvent::Bootstrap(BootstrapOutcome::Finished { account }) => {
                Some(Ok(account.clone()))
            }
            DevEvent::Bootstrap(BootstrapOutcome::Failed { reason }) => Some(Err(reason.clone())),
            _ => None,
        })
        .await
}

fn dm_credentials(account: &ServerAccount) -> Credentials {
    Credentials {
        identity: String::from_utf8(account.identity.clone()).unwrap(),
        key: account.secret_key.clone(),
    }
}

/// Bootstraps `device` (connected to the bootstrap server) and registers it with the account it
/// got.
async fn bootstrap_and_register(server: &TestServer, device: &mut TestDevice) -> ServerAccount {
    device.bootstrap();
    let account = expect_bootstrap(device).await.unwrap();
    assert_eq!(account.security, AccountSecurity::Psk);
    assert_eq!(
        account.server_uri,
        format!("coaps://{}", server.coaps_addr())
    );
    assert_eq!(account.secret_key.len(), 16, "a fresh 128-bit key");
    device.connect(server.coaps_addr(), Security::Psk(dm_credentials(&account)));
    device.register_and_wait().await;
    account
}

async fn read_battery(server: &TestServer, endpoint: &str) -> Value {
    match server
        .service()
        .request(endpoint, Operation::Read(Path::Resource(3, 0, 9)), WAIT)
        .await
        .unwrap()
    {
        OpResult::Done {
            outcome: OpOutcome::Content(Content::Node { node, .. }),
            ..
        } => node.flatten(&Path::Resource(3, 0, 9))[0].1.clone(),
        other => panic!("expected content, got {other:?}"),
    }
}

async fn state_of(server: &TestServer, endpoint: &str) -> LifecycleState {
    server
        .store()
        .get_device(endpoint)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// `device` asks to bootstrap and its handshake with the bootstrap server fails.
async fn expect_bootstrap_handshake_refused(device: &mut TestDevice) {
    device.bootstrap();
    device
        .expect("handshake failure", |e| match e {
            DevEvent::DtlsClosed(_) => Some(()),
            DevEvent::Bootstrap(BootstrapOutcome::Finished { .. }) => panic!("bootstrapped"),
            _ => None,
        })
        .await;
}

/// A device with `credentials` does not get registered: its handshake fails or its Register is
/// refused.
async fn expect_refused_by_dm_server(
    server: &TestServer,
    endpoint: &str,
    credentials: Credentials,
) {
    let spec = DeviceSpec::new(endpoint, Lwm2mVersion::V1_1, Security::Psk(credentials));
    let mut device = TestDevice::start(spec, server.coaps_addr()).await;
    device.register();
    device
        .expect("refusal", |e| match e {
            DevEvent::DtlsClosed(_) => Some(()),
            DevEvent::Client(ClientEvent::RegistrationFailed { .. }) => Some(()),
            DevEvent::Client(ClientEvent::Registered { .. }) => panic!("registered"),
            _ => None,
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_then_dtls_registration_with_the_new_key_then_read() {
    let server = TestServer::start().await;
    let bs = create_bootstrappable(&server, "meter-bs-1").await;
    let old = server
        .store()
        .get_device("meter-bs-1")
        .await
        .unwrap()
        .unwrap()
        .psk_identity
        .unwrap();
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device =
        TestDevice::start(factory_spec("meter-bs-1", &bs, bs_uri), bs_addr(&server)).await;
    device.bootstrap();
    let account = expect_bootstrap(&mut device).await.unwrap();
    assert_eq!(account.short_server_id, 1);
    assert_eq!(account.lifetime, 3600);
    eventually("provisioned", || async {
        (state_of(&server, "meter-bs-1").await == LifecycleState::Provisioned).then_some(())
    })
    .await;
    device.connect(server.coaps_addr(), Security::Psk(dm_credentials(&account)));
    device.register_and_wait().await;
    // The first registration's transition is written by the persistence worker.
    eventually("active", || async {
        (state_of(&server, "meter-bs-1").await == LifecycleState::Active).then_some(())
    })
    .await;
    assert!(matches!(
        read_battery(&server, "meter-bs-1").await,
        Value::Integer(_)
    ));
    // The delivered identity is now the device's; the one it was created with is revoked.
    let device_row = server
        .store()
        .get_device("meter-bs-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        device_row.psk_identity.as_deref(),
        Some(dm_credentials(&account).identity.as_str())
    );
    assert!(
        server
            .store()
            .psk_credentials(&old)
            .await
            .unwrap()
            .is_none()
    );
    let status = server
        .store()
        .bootstrap_status("meter-bs-1")
        .await
        .unwrap()
        .unwrap();
    assert!(status.pending_identity.is_none());
    assert!(status.bootstrapped_at.is_some());
}

/// Factory bootstrap credentials imported by CSV (`bootstrap_psk_identity`,
/// `bootstrap_psk_key_hex`) are cached at once and let the meter bootstrap, register and be read;
/// a row whose bootstrap identity is another device's identity is rejected and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_credentials_imported_by_csv() {
    let server = TestServer::start().await;
    let taken = create_bootstrappable(&server, "meter-csv-0").await;
    let bs = bootstrap_credentials("meter-csv-1");
    let cached_before = server.service().bootstrap().unwrap().identities_cached();
    let csv = format!(
        "endpoint,serial,model,bootstrap_psk_identity,bootstrap_psk_key_hex\n\
         meter-csv-1,SN1,EM-100,{},{}\n\
         meter-csv-2,SN2,EM-100,{},{}\n",
        bs.identity,
        hex::encode(&bs.key),
        taken.identity,
        hex::encode(&taken.key),
    );
    let (status, _, body) = tests::http::send(
        server.http_addr(),
        TOKEN,
        "POST",
        "/api/v1/devices/import",
        "text/csv",
        csv.as_bytes(),
        Duration::from_secs(30),
    )
    .await;
    let report: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{report}");
    let text = report.to_string();
    assert!(text.contains("duplicate PSK identity"), "{report}");
    assert!(
        !text.contains(&hex::encode(&bs.key)),
        "no key in the report"
    );
    assert!(
        server
            .store()
            .get_device("meter-csv-2")
            .await
            .unwrap()
            .is_none()
    );
    // Cached at import: the first handshake needs no store lookup.
    assert_eq!(
        server.service().bootstrap().unwrap().identities_cached(),
        cached_before + 1
    );
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device =
        TestDevice::start(factory_spec("meter-csv-1", &bs, bs_uri), bs_addr(&server)).await;
    bootstrap_and_register(&server, &mut device).await;
    eventually("active", || async {
        (state_of(&server, "meter-csv-1").await == LifecycleState::Active).then_some(())
    })
    .await;
    assert!(matches!(
        read_battery(&server, "meter-csv-1").await,
        Value::Integer(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bootstrap_key_and_unknown_identity_fail_the_handshake() {
    let server = TestServer::start().await;
    let bs = create_bootstrappable(&server, "meter-bs-2").await;
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    for credentials in [
        Credentials {
            identity: bs.identity.clone(),
            key: vec![0x42; 16],
        },
        Credentials {
            identity: "bs-nobody".into(),
            key: bs.key.clone(),
        },
    ] {
        let mut device = TestDevice::start(
            factory_spec("meter-bs-2", &credentials, bs_uri.clone()),
            bs_addr(&server),
        )
        .await;
        expect_bootstrap_handshake_refused(&mut device).await;
    }
    assert_eq!(
        state_of(&server, "meter-bs-2").await,
        LifecycleState::Registered
    );
}

/// Replacing a device's factory bootstrap credentials (`PUT /devices/{ep}/bootstrap`) makes
/// the old ones fail at once (not at the next restart), and the new ones work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_bootstrap_credentials_stop_working() {
    let server = TestServer::start().await;
    let old = create_bootstrappable(&server, "meter-bs-r").await;
    let new = Credentials {
        identity: "bs-meter-bs-r-2".into(),
        key: vec![0x5a; 16],
    };
    let (status, body) = http(
        server.http_addr(),
        "PUT",
        "/api/v1/devices/meter-bs-r/bootstrap",
        Some(json!({
            "psk_identity": new.identity,
            "psk_key_hex": hex::encode(&new.key),
        })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device = TestDevice::start(
        factory_spec("meter-bs-r", &old, bs_uri.clone()),
        bs_addr(&server),
    )
    .await;
    expect_bootstrap_handshake_refused(&mut device).await;
    let mut device =
        TestDevice::start(factory_spec("meter-bs-r", &new, bs_uri), bs_addr(&server)).await;
    bootstrap_and_register(&server, &mut device).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_devices_bootstrap_identity_is_refused() {
    let server = TestServer::start().await;
    let bs_a = create_bootstrappable(&server, "meter-bs-a").await;
    create_bootstrappable(&server, "meter-bs-b").await;
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    // meter-bs-b presents meter-bs-a's (valid) bootstrap credentials.
    let mut device =
        TestDevice::start(factory_spec("meter-bs-b", &bs_a, bs_uri), bs_addr(&server)).await;
    device.bootstrap();
    assert_eq!(
        expect_bootstrap(&mut device).await,
        Err(RequestFailure::Rejected(Code::FORBIDDEN))
    );
    assert_eq!(
        state_of(&server, "meter-bs-b").await,
        LifecycleState::Registered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rebootstraps_and_revokes_the_old_key_after_registration() {
    let server = TestServer::start().await;
    let bs = create_bootstrappable(&server, "meter-rot").await;
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device =
        TestDevice::start(factory_spec("meter-rot", &bs, bs_uri), bs_addr(&server)).await;
    let first = bootstrap_and_register(&server, &mut device).await;
    let first_credentials = dm_credentials(&first);

    let (status, body) = http(
        server.http_addr(),
        "POST",
        "/api/v1/devices/meter-rot/credentials/rotate",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bootstrap_triggered"], true, "{body}");
    let pending = body["pending_identity"].as_str().unwrap().to_owned();
    assert_ne!(pending, first_credentials.identity);
    device
        .expect("Bootstrap-Request Trigger", |e| match e {
            DevEvent::Client(ClientEvent::Executed { path, .. })
                if *path == Path::Resource(1, 0, 9) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    // Until the device registers with the new key, the old one still works.
    assert!(
        server
            .store()
            .psk_credentials(&first_credentials.identity)
            .await
            .unwrap()
            .is_some()
    );
    device.connect(bs_addr(&server), Security::Psk(bs.clone()));
    let second = bootstrap_and_register(&server, &mut device).await;
    assert_eq!(dm_credentials(&second).identity, pending);
    assert_ne!(second.secret_key, first.secret_key);
    assert!(matches!(
        read_battery(&server, "meter-rot").await,
        Value::Integer(_)
    ));
    // Then the old key is revoked in the store and in the DTLS layer.
    assert!(
        server
            .store()
            .psk_credentials(&first_credentials.identity)
            .await
            .unwrap()
            .is_none()
    );
    expect_refused_by_dm_server(&server, "meter-rot", first_credentials).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioned_device_is_refused_by_both_servers() {
    let server = TestServer::start().await;
    let bs = create_bootstrappable(&server, "meter-dec").await;
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device = TestDevice::start(
        factory_spec("meter-dec", &bs, bs_uri.clone()),
        bs_addr(&server),
    )
    .await;
    let account = bootstrap_and_register(&server, &mut device).await;
    let (status, body) = http(
        server.http_addr(),
        "POST",
        "/api/v1/devices/meter-dec/lifecycle",
        Some(json!({"to": "decommissioned", "reason": "meter removed"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    drop(device);
    // The LwM2M server: the delivered credentials no longer register.
    expect_refused_by_dm_server(&server, "meter-dec", dm_credentials(&account)).await;
    // The bootstrap server: the factory credentials no longer handshake.
    let mut again =
        TestDevice::start(factory_spec("meter-dec", &bs, bs_uri), bs_addr(&server)).await;
    again.bootstrap();
    again
        .expect("bootstrap refusal", |e| match e {
            DevEvent::DtlsClosed(_) => Some(()),
            DevEvent::Bootstrap(BootstrapOutcome::Failed { .. }) => Some(()),
            DevEvent::Bootstrap(BootstrapOutcome::Finished { .. }) => panic!("bootstrapped"),
            _ => None,
        })
        .await;
    let status = server
        .store()
        .bootstrap_status("meter-dec")
        .await
        .unwrap()
        .unwrap();
    assert!(status.bootstrap_revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nosec_device_on_a_server_without_nosec() {
    let server = TestServer::start_with(|settings| {
        settings.coap_addr = None;
        if let Some(bs) = settings.bootstrap.as_mut() {
            bs.coap_addr = None;
        }
    })
    .await;
    let bootstrap = server.service().bootstrap().unwrap();
    assert_eq!(
        bootstrap.local_addr(Transport::Coap),
        None,
        "no NoSec bootstrap socket"
    );
    assert_eq!(server.service().local_addr(Transport::Coap), None);
    server
        .store()
        .create_device(
            NewDevice {
                security_mode: server::fleet::registry::SecurityMode::NoSec,
                ..NewDevice::psk("meter-nosec", "SN-1", "FM-1")
            },
            &Actor::user("e2e").unwrap(),
        )
        .await
        .unwrap();
    // Bootstrap credentials cannot make a NoSec device bootstrap over DTLS either: its group's
    // configuration is PSK and the device is NoSec.
    server
        .store()
        .set_bootstrap_credentials(
            "meter-nosec",
            "bs-meter-nosec",
            &PskKey::new(vec![5; 16]).unwrap(),
            &Actor::user("e2e").unwrap(),
        )
        .await
        .unwrap();
    bootstrap.refresh_identity("bs-meter-nosec").await.unwrap();
    let bs = Credentials {
        identity: "bs-meter-nosec".into(),
        key: vec![5; 16],
    };
    let bs_uri = format!("coaps://{}", bs_addr(&server));
    let mut device =
        TestDevice::start(factory_spec("meter-nosec", &bs, bs_uri), bs_addr(&server)).await;
    device.bootstrap();
    assert_eq!(
        expect_bootstrap(&mut device).await,
        Err(RequestFailure::Rejected(Code::FORBIDDEN))
    );
    assert!(matches!(
        server
            .store()
            .may_register("meter-nosec", None, false)
            .await
            .unwrap(),
        Err(server::fleet::registry::RegistrationRefusal::NoSecDisabledOnServer)
    ));
}

/// A factory-fresh NoSec meter (its bootstrap account at instance 2 says NoSec) bootstraps over
/// plain CoAP on a server with NoSec enabled, gets a NoSec account from its group's
/// configuration, registers with it and is read; a PSK device on the same socket is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nosec_bootstrap_then_registration_then_read() {
    let server = TestServer::start().await;
    let bs_coap = server
        .service()
        .bootstrap()
        .unwrap()
        .local_addr(Transport::Coap)
        .expect("NoSec bootstrap socket when NoSec is enabled");
    let (status, config) = http(
        server.http_addr(),
        "PUT",
        "/api/v1/bootstrap/configs/lab",
        Some(json!({
            "group": "lab",
            "server_uri": format!("coap://{}", server.coap_addr()),
            "security_mode": "nosec",
            "lifetime_secs": 600,
            "binding": "U",
            "short_server_id": 7,
            "notification_storing": true,
        })),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {config}");
    for (endpoint, mode) in [("meter-open", "nosec"), ("meter-closed", "psk")] {
        let (status, body) = http(
            server.http_addr(),
            "POST",
            "/api/v1/devices",
            Some(json!({"endpoint": endpoint, "security_mode": mode, "tags": {"group": "lab"}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    let factory = |endpoint: &str| {
        let mut store = meter_store();
        store.insert_instance(
            0,
            ObjectInstance::new(
                2,
                [
                    Resource::single(0, Value::String(format!("coap://{bs_coap}"))),
                    Resource::single(1, Value::Boolean(true)),
                    Resource::single(2, Value::Integer(3)),
                ],
            ),
        );
        let mut spec = DeviceSpec::new(endpoint, Lwm2mVersion::V1_1, Security::NoSec);
        spec.store = store;
        spec
    };
    let mut device = TestDevice::start(factory("meter-open"), bs_coap).await;
    device.bootstrap();
    let account = expect_bootstrap(&mut device).await.unwrap();
    assert_eq!(account.security, AccountSecurity::NoSec);
    assert_eq!(account.server_uri, format!("coap://{}", server.coap_addr()));
    assert_eq!(account.short_server_id, 7);
    assert_eq!(account.lifetime, 600);
    assert!(account.secret_key.is_empty());
    eventually("provisioned", || async {
        (state_of(&server, "meter-open").await == LifecycleState::Provisioned).then_some(())
    })
    .await;
    device.connect(server.coap_addr(), Security::NoSec);
    device.register_and_wait().await;
    eventually("active", || async {
        (state_of(&server, "meter-open").await == LifecycleState::Active).then_some(())
    })
    .await;
    assert!(matches!(
        read_battery(&server, "meter-open").await,
        Value::Integer(_)
    ));

    // A PSK device must bootstrap over DTLS: the NoSec socket refuses it.
    let mut closed = TestDevice::start(factory("meter-closed"), bs_coap).await;
    closed.bootstrap();
    assert_eq!(
        expect_bootstrap(&mut closed).await,
        Err(RequestFailure::Rejected(Code::FORBIDDEN))
    );
    assert_eq!(
        state_of(&server, "meter-closed").await,
        LifecycleState::Registered
    );
}
