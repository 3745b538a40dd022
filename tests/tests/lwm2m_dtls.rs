//! End to end over CoAP + DTLS 1.2 PSK (our own `ferrite_dtls::DtlsClient`; no external tool is
//! needed): registration with the device's credentials, refusals (wrong key, another device's
//! identity, unknown endpoint), a device created after start (its key is looked up after the first
//! failed handshake), NAT rebinding with a new handshake, credentials withdrawn, and a restart
//! (registration and observation restored; the device handshakes again and carries on).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ferrite_dtls::ClientCloseReason;
use lwm2m_objects::{Path, Value};
use lwm2m_proto::coap::Code;
use lwm2m_proto::lwm2m::client::{
    ClientEvent, RegistrationOperation, RegistrationState, RequestFailure,
};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation};
use server::fleet::lifecycle::{Actor, LifecycleState};
use server::lwm2m::{DeviceEvent, OpResult, Transport};
use tests::device::{DeviceEvent as DevEvent, DeviceSpec, Security, TestDevice};
use tests::harness::{Credentials, TestServer, next_event};

const WAIT: Duration = Duration::from_secs(10);

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

/// Waits for the device's Register to be refused with `code`.
async fn expect_register_refused(device: &mut TestDevice, code: Code) {
    let refused = device
        .expect("RegistrationFailed", |e| match e {
            DevEvent::Client(ClientEvent::RegistrationFailed {
                operation: RegistrationOperation::Register,
                reason: RequestFailure::Rejected(c),
            }) => Some(*c),
            DevEvent::Client(ClientEvent::Registered { .. }) => panic!("registered"),
            _ => None,
        })
        .await;
    assert_eq!(refused, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psk_device_registers_over_dtls_and_is_read() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let credentials = server.create_psk_device("meter-dtls", true).await;
    let mut device = TestDevice::start(
        DeviceSpec::new(
            "meter-dtls",
            Lwm2mVersion::V1_1,
            Security::Psk(credentials.clone()),
        ),
        server.coaps_addr(),
    )
    .await;
    device.register_and_wait().await;
    let registration = next_event(&mut events, |e| match e {
        DeviceEvent::Registered { registration, .. } => Some(registration.clone()),
        _ => None,
    })
    .await;
    assert_eq!(registration.transport, Transport::Coaps);
    assert_eq!(
        registration.psk_identity.as_deref(),
        Some(credentials.identity.as_str())
    );
    assert_eq!(
        read_battery(&server, "meter-dtls").await,
        Value::Integer(87)
    );
    let stats = server.service().stats().await;
    let coaps = stats
        .sockets
        .iter()
        .find(|s| s.transport == Some(Transport::Coaps))
        .unwrap();
    assert_eq!(coaps.dtls_sessions, Some(1));
    assert_eq!(coaps.registrations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_the_handshake_and_nothing_registers() {
    let server = TestServer::start().await;
    let credentials = server.create_psk_device("meter-badkey", true).await;
    let wrong = Credentials {
        identity: credentials.identity,
        key: vec![0x55; 16],
    };
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-badkey", Lwm2mVersion::V1_1, Security::Psk(wrong)),
        server.coaps_addr(),
    )
    .await;
    device.register();
    device
        .expect("handshake failure", |e| match e {
            DevEvent::DtlsClosed(ClientCloseReason::HandshakeFailed) => Some(()),
            DevEvent::DtlsConnected => panic!("a wrong key completed the handshake"),
            _ => None,
        })
        .await;
    assert!(server.service().registration("meter-badkey").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_devices_identity_is_refused_with_4_03_and_registers_nothing() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let alice = server.create_psk_device("meter-alice", true).await;
    server.create_psk_device("meter-bob", true).await;
    // Alice's credentials, Bob's endpoint name.
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-bob", Lwm2mVersion::V1_1, Security::Psk(alice)),
        server.coaps_addr(),
    )
    .await;
    device.register();
    expect_register_refused(&mut device, Code::FORBIDDEN).await;
    let refused = next_event(&mut events, |e| match e {
        DeviceEvent::RegistrationRefused {
            endpoint,
            coap_code,
            ..
        } => Some((endpoint.clone(), coap_code.clone())),
        _ => None,
    })
    .await;
    assert_eq!(refused, (Some("meter-bob".to_owned()), "4.03".to_owned()));
    assert!(server.service().registration("meter-bob").is_none());
    assert!(server.service().registration("meter-alice").is_none());
    assert!(server.service().registrations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_are_refused_on_both_sockets() {
    let server = TestServer::start().await;
    // NoSec: not in the registry.
    let mut stranger = TestDevice::start(
        DeviceSpec::new("meter-stranger", Lwm2mVersion::V1_0, Security::NoSec),
        server.coap_addr(),
    )
    .await;
    stranger.register();
    expect_register_refused(&mut stranger, Code::FORBIDDEN).await;

    // A PSK device must not register over NoSec.
    server.create_psk_device("meter-psk-only", true).await;
    let mut downgrade = TestDevice::start(
        DeviceSpec::new("meter-psk-only", Lwm2mVersion::V1_0, Security::NoSec),
        server.coap_addr(),
    )
    .await;
    downgrade.register();
    expect_register_refused(&mut downgrade, Code::FORBIDDEN).await;

    // DTLS: an identity the store does not know fails the handshake.
    let mut unknown = TestDevice::start(
        DeviceSpec::new(
            "meter-ghost",
            Lwm2mVersion::V1_1,
            Security::Psk(Credentials {
                identity: "ghost-identity".into(),
                key: vec![1; 16],
            }),
        ),
        server.coaps_addr(),
    )
    .await;
    unknown.register();
    unknown
        .expect("handshake failure", |e| match e {
            DevEvent::DtlsClosed(ClientCloseReason::HandshakeFailed) => Some(()),
            DevEvent::DtlsConnected => panic!("an unknown identity completed the handshake"),
            _ => None,
        })
        .await;
    assert!(server.service().registrations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_created_after_start_gets_in_on_its_next_handshake() {
    let server = TestServer::start().await;
    // Created without telling the service: the key cache does not have it yet.
    let credentials = server.create_psk_device("meter-new", false).await;
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-new", Lwm2mVersion::V1_1, Security::Psk(credentials)),
        server.coaps_addr(),
    )
    .await;
    device.register();
    device
        .expect("first handshake fails", |e| match e {
            DevEvent::DtlsClosed(ClientCloseReason::HandshakeFailed) => Some(()),
            _ => None,
        })
        .await;
    // The miss made the service look the identity up; the retry succeeds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    device.reconnect();
    device.expect_registered().await;
    assert_eq!(read_battery(&server, "meter-new").await, Value::Integer(87));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_dtls_device_handshakes_again_and_its_update_moves_the_registration() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let credentials = server.create_psk_device("meter-roam", true).await;
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-roam", Lwm2mVersion::V1_0, Security::Psk(credentials)),
        server.coaps_addr(),
    )
    .await;
    device.register_and_wait().await;
    let before = device.local_addr();

    device.rebind();
    device.update();
    device
        .expect("new DTLS session", |e| {
            matches!(e, DevEvent::DtlsConnected).then_some(())
        })
        .await;
    device.expect_updated().await;
    let after = device.local_addr();
    assert_ne!(before, after);
    let moved = next_event(&mut events, |e| match e {
        DeviceEvent::Updated {
            registration,
            address_changed: true,
        } => Some(registration.address),
        _ => None,
    })
    .await;
    assert_eq!(moved, after);
    assert_eq!(
        server.service().registration("meter-roam").unwrap().address,
        after
    );
    assert_eq!(
        read_battery(&server, "meter-roam").await,
        Value::Integer(87)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioning_withdraws_the_session_and_the_registration() {
    let server = TestServer::start().await;
    let credentials = server.create_psk_device("meter-end", true).await;
    let mut device = TestDevice::start(
        DeviceSpec::new(
            "meter-end",
            Lwm2mVersion::V1_1,
            Security::Psk(credentials.clone()),
        ),
        server.coaps_addr(),
    )
    .await;
    device.register_and_wait().await;
    server.service().flush().await;

    server
        .store()
        .decommission("meter-end", &Actor::user("ops").unwrap(), "meter removed")
        .await
        .unwrap();
    // What the HTTP layer will do on decommission.
    server.service().forget_credentials(&credentials.identity);
    assert!(
        server
            .service()
            .remove_registration("meter-end")
            .await
            .unwrap()
    );
    assert!(server.service().registration("meter-end").is_none());
    device
        .expect("session closed", |e| {
            matches!(e, DevEvent::DtlsClosed(ClientCloseReason::PeerClosed)).then_some(())
        })
        .await;

    // It cannot come back: the handshake fails.
    device.reconnect();
    device
        .expect("handshake failure", |e| match e {
            DevEvent::DtlsClosed(ClientCloseReason::HandshakeFailed) => Some(()),
            DevEvent::DtlsConnected => panic!("a decommissioned device got a session"),
            _ => None,
        })
        .await;
    let state = server
        .store()
        .get_device("meter-end")
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, LifecycleState::Decommissioned);
    assert_eq!(
        device.state().await,
        RegistrationState::Registered,
        "it was not told"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtls_registration_and_its_observation_survive_a_restart_and_the_device_comes_back_with_a_new_handshake()
 {
    let mut server = TestServer::start().await;
    let credentials = server.create_psk_device("meter-persist", true).await;
    let mut device = TestDevice::start(
        DeviceSpec::new(
            "meter-persist",
            Lwm2mVersion::V1_1,
            Security::Psk(credentials.clone()),
        ),
        server.coaps_addr(),
    )
    .await;
    let location = device.register_and_wait().await;
    let observation = server
        .observe("meter-persist", Path::Resource(3, 0, 9))
        .await;

    server.restart().await;
    let mut events = server.events();
    let restored = server.service().registration("meter-persist").unwrap();
    assert_eq!(format!("rd/{}", restored.registration_id), location);
    assert_eq!(
        restored.psk_identity.as_deref(),
        Some(credentials.identity.as_str())
    );

    // The DTLS session died with the old process: the device handshakes again (its key was
    // reloaded from the store at start) and updates its registration, which is still known.
    device.retarget(server.coaps_addr());
    device.update();
    device.expect_updated().await;
    assert_eq!(
        read_battery(&server, "meter-persist").await,
        Value::Integer(87)
    );
    // Its observation was restored too: from the same address, over the new session, the
    // device's next notification arrives under the same number.
    device.set(Path::Resource(3, 0, 9), Value::Integer(55));
    let values = next_event(&mut events, |e| match e {
        DeviceEvent::Notification {
            endpoint,
            observation: o,
            values,
            ..
        } if endpoint == "meter-persist" && *o == observation => Some(values.clone()),
        _ => None,
    })
    .await;
    assert_eq!(values[0].path, "/3/0/9");
}

/// A device created through `POST /api/v1/devices` with a generated key is in the DTLS key
/// cache at once: its very first handshake succeeds (before, it failed and only the retry got in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_created_through_the_api_gets_in_on_its_first_handshake() {
    let server = TestServer::start().await;
    let (status, created) = tests::http::json(
        server.http_addr(),
        "e2e-token-0123456789",
        "POST",
        "/api/v1/devices",
        Some(serde_json::json!({"endpoint": "meter-api", "psk_identity": "meter-api-id"})),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = hex::decode(created["psk_key_hex"].as_str().unwrap()).unwrap();
    let credentials = Credentials {
        identity: "meter-api-id".into(),
        key,
    };
    let mut device = TestDevice::start(
        DeviceSpec::new("meter-api", Lwm2mVersion::V1_1, Security::Psk(credentials)),
        server.coaps_addr(),
    )
    .await;
    device.register();
    device
        .expect("the first handshake", |e| match e {
            DevEvent::DtlsConnected => Some(()),
            DevEvent::DtlsClosed(reason) => panic!("the first handshake failed: {reason:?}"),
            _ => None,
        })
        .await;
    device.expect_registered().await;
}
