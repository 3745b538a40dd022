//! End to end over plain CoAP (NoSec enabled): devices register with the in-process server on
//! real sockets, and the service handle reads, writes, executes and observes them. Covers a 1.0
//! TLV client and a 1.1 SenML client, the diagnostic objects 3/4/5/6/7, a block-wise read of a
//! 4 KB resource, lifecycle effects in the store, and the suspended state's read-only rule.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lwm2m_objects::codec::Record;
use lwm2m_objects::{ContentFormat, Node, Path, Resource, Value};
use lwm2m_proto::lwm2m::client::ClientEvent;
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use lwm2m_proto::lwm2m::server::{Content, OpOutcome, Operation, WriteMode};
use server::fleet::lifecycle::{Actor, LifecycleState};
use server::fleet::registry::Connectivity;
use server::lwm2m::{DeviceEvent, OpResult, ServiceError, ServiceErrorKind, Transport, ValueView};
use tests::device::{DeviceEvent as DevEvent, DeviceSpec, Security, TestDevice};
use tests::harness::{TestServer, eventually, next_event, next_notification};

const WAIT: Duration = Duration::from_secs(10);

async fn nosec_device(server: &TestServer, endpoint: &str, version: Lwm2mVersion) -> TestDevice {
    server.create_nosec_device(endpoint).await;
    let mut device = TestDevice::start(
        DeviceSpec::new(endpoint, version, Security::NoSec),
        server.coap_addr(),
    )
    .await;
    device.register_and_wait().await;
    device
}

/// The node a Read returned.
fn read_node(result: OpResult) -> Node {
    match result {
        OpResult::Done {
            outcome: OpOutcome::Content(Content::Node { node, .. }),
            ..
        } => node,
        other => panic!("expected content, got {other:?}"),
    }
}

fn value_at(node: &Node, at: &Path, path: Path) -> Value {
    node.flatten(at)
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{path} not in {node:?}"))
}

async fn read(server: &TestServer, endpoint: &str, path: Path) -> Node {
    read_node(
        server
            .service()
            .request(endpoint, Operation::Read(path), WAIT)
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_tlv_client_registers_and_its_diagnostic_objects_read_back_typed() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let _device = nosec_device(&server, "meter-tlv", Lwm2mVersion::V1_0).await;

    let registration = next_event(&mut events, |e| match e {
        DeviceEvent::Registered {
            registration,
            reboot,
        } => Some((registration.clone(), *reboot)),
        _ => None,
    })
    .await;
    assert_eq!(registration.0.endpoint, "meter-tlv");
    assert_eq!(registration.0.lwm2m_version, "1.0");
    assert_eq!(registration.0.transport, Transport::Coap);
    assert!(!registration.1, "a first registration is not a reboot");
    assert!(registration.0.objects.contains("</3/0>"));

    let device_node = read(&server, "meter-tlv", Path::Instance(3, 0)).await;
    let at = Path::Instance(3, 0);
    assert_eq!(
        value_at(&device_node, &at, Path::Resource(3, 0, 0)),
        Value::String("Ferrite".into())
    );
    assert_eq!(
        value_at(&device_node, &at, Path::Resource(3, 0, 9)),
        Value::Integer(87)
    );
    assert_eq!(
        value_at(&device_node, &at, Path::ResourceInstance(3, 0, 7, 1)),
        Value::Integer(5000)
    );
    assert_eq!(
        value_at(&device_node, &at, Path::Resource(3, 0, 13)),
        Value::Time(1_700_000_000)
    );

    let radio = read(&server, "meter-tlv", Path::Instance(4, 0)).await;
    assert_eq!(
        value_at(&radio, &Path::Instance(4, 0), Path::Resource(4, 0, 2)),
        Value::Integer(-93)
    );
    let firmware = read(&server, "meter-tlv", Path::Instance(5, 0)).await;
    assert_eq!(
        value_at(&firmware, &Path::Instance(5, 0), Path::Resource(5, 0, 5)),
        Value::Integer(1)
    );
    let location = read(&server, "meter-tlv", Path::Instance(6, 0)).await;
    assert_eq!(
        value_at(&location, &Path::Instance(6, 0), Path::Resource(6, 0, 0)),
        Value::Float(52.52)
    );
    let stats = read(&server, "meter-tlv", Path::Instance(7, 0)).await;
    assert_eq!(
        value_at(&stats, &Path::Instance(7, 0), Path::Resource(7, 0, 3)),
        Value::Integer(4096)
    );

    // The store followed: first registration → active (audited), online, registration persisted.
    server.service().flush().await;
    let device = server
        .store()
        .get_device("meter-tlv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.state, LifecycleState::Active);
    assert_eq!(device.connectivity, Connectivity::Online);
    assert!(device.last_seen.is_some());
    let stored = server
        .store()
        .lwm2m_registration("meter-tlv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.registration_id, registration.0.registration_id);
    let audit = server
        .store()
        .device_audit(
            "meter-tlv",
            server::fleet::registry::AuditPageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.actor == "system:registration" && e.to_state == Some(LifecycleState::Active)),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_1_senml_client_is_read_written_executed_and_observed() {
    let server = TestServer::start().await;
    let mut events = server.events();
    server.create_nosec_device("meter-senml").await;
    let mut spec = DeviceSpec::new("meter-senml", Lwm2mVersion::V1_1, Security::NoSec);
    spec.format = Some(ContentFormat::SenmlJson);
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;
    let service = server.service();

    // Read-Composite of three diagnostic resources in one request (1.1).
    let composite = service
        .request(
            "meter-senml",
            Operation::ReadComposite(vec![
                Path::Resource(3, 0, 9),
                Path::Resource(4, 0, 2),
                Path::Resource(6, 0, 1),
            ]),
            WAIT,
        )
        .await
        .unwrap();
    let OpResult::Done {
        outcome: OpOutcome::Content(Content::Records(records)),
        ..
    } = composite
    else {
        panic!("expected records, got {composite:?}");
    };
    let found: Vec<_> = records
        .iter()
        .map(|r| (r.path, r.value.clone().unwrap()))
        .collect();
    assert!(
        found.contains(&(Path::Resource(4, 0, 2), Value::Integer(-93))),
        "{found:?}"
    );
    assert!(
        found.contains(&(Path::Resource(6, 0, 1), Value::Float(13.405))),
        "{found:?}"
    );

    // Write (replace) a writable resource, read it back.
    let written = service
        .request(
            "meter-senml",
            Operation::Write {
                path: Path::Resource(7, 0, 8),
                node: Node::Resource(Resource::single(8, Value::Integer(900))),
                mode: WriteMode::Replace,
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(matches!(
        written,
        OpResult::Done {
            outcome: OpOutcome::Changed,
            ..
        }
    ));
    device
        .expect("Written", |e| match e {
            DevEvent::Client(ClientEvent::Written { path }) => Some(*path),
            _ => None,
        })
        .await;
    let node = read(&server, "meter-senml", Path::Resource(7, 0, 8)).await;
    assert_eq!(
        value_at(&node, &Path::Resource(7, 0, 8), Path::Resource(7, 0, 8)),
        Value::Integer(900)
    );

    // Execute Reboot.
    let executed = service
        .request(
            "meter-senml",
            Operation::Execute {
                path: Path::Resource(3, 0, 4),
                args: None,
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(matches!(
        executed,
        OpResult::Done {
            outcome: OpOutcome::Changed,
            ..
        }
    ));
    device
        .expect("Executed /3/0/4", |e| match e {
            DevEvent::Client(ClientEvent::Executed { path, .. }) => {
                (*path == Path::Resource(3, 0, 4)).then_some(())
            }
            _ => None,
        })
        .await;

    // Observe the battery level; a change on the device arrives as a decoded notification event.
    let observed = service
        .request(
            "meter-senml",
            Operation::Observe(Path::Resource(3, 0, 9)),
            WAIT,
        )
        .await
        .unwrap();
    let OpResult::Done {
        outcome: OpOutcome::Observing { observation, .. },
        ..
    } = observed
    else {
        panic!("expected an observation, got {observed:?}");
    };
    assert_eq!(
        service.observations("meter-senml").await.unwrap()[0].observation,
        observation.as_u64()
    );
    device.set(Path::Resource(3, 0, 9), Value::Integer(42));
    let values = next_notification(&mut events, "meter-senml", observation.as_u64()).await;
    assert_eq!(values[0].path, "/3/0/9");
    assert_eq!(values[0].value, ValueView::Integer(42));

    // Cancel the observation.
    let cancelled = service
        .cancel_observation("meter-senml", observation.as_u64(), WAIT)
        .await
        .unwrap();
    assert!(matches!(
        cancelled,
        OpResult::Done {
            outcome: OpOutcome::Cancelled { .. },
            ..
        }
    ));
    assert!(
        service
            .observations("meter-senml")
            .await
            .unwrap()
            .is_empty()
    );

    // Errors from the device carry its CoAP code: no instance /3/7.
    let missing = service
        .request("meter-senml", Operation::Read(Path::Instance(3, 7)), WAIT)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ServiceErrorKind::BadGateway, "{missing}");
    assert_eq!(missing.coap_code(), Some("4.04"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_kb_resource_is_read_block_wise() {
    let server = TestServer::start().await;
    server.create_nosec_device("meter-big").await;
    let mut spec = DeviceSpec::new("meter-big", Lwm2mVersion::V1_0, Security::NoSec);
    let big: String = (0..4096)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    spec.store
        .set(Path::Resource(3, 0, 0), Value::String(big.clone()))
        .unwrap();
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;

    // TLV of /3/0 is over 4 KB: more than one 1024-byte Block2 (RFC 7959).
    let node = read(&server, "meter-big", Path::Instance(3, 0)).await;
    assert_eq!(
        value_at(&node, &Path::Instance(3, 0), Path::Resource(3, 0, 0)),
        Value::String(big.clone())
    );
    let single = read(&server, "meter-big", Path::Resource(3, 0, 0)).await;
    assert_eq!(
        value_at(&single, &Path::Resource(3, 0, 0), Path::Resource(3, 0, 0)),
        Value::String(big)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_device_is_read_only_and_unknown_devices_are_not_found() {
    let server = TestServer::start().await;
    let _device = nosec_device(&server, "meter-hold", Lwm2mVersion::V1_1).await;
    let service = server.service();
    server.service().flush().await;
    server
        .store()
        .suspend(
            "meter-hold",
            &Actor::user("ops").unwrap(),
            "billing dispute",
        )
        .await
        .unwrap();

    let write = service
        .request(
            "meter-hold",
            Operation::Execute {
                path: Path::Resource(3, 0, 4),
                args: None,
            },
            WAIT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            write,
            ServiceError::NotAllowed {
                state: LifecycleState::Suspended,
                ..
            }
        ),
        "{write}"
    );
    assert_eq!(write.kind(), ServiceErrorKind::Conflict);
    // Reads stay allowed.
    read(&server, "meter-hold", Path::Resource(3, 0, 9)).await;

    let unknown = service
        .request("nobody", Operation::Read(Path::Instance(3, 0)), WAIT)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ServiceErrorKind::NotFound);

    // Known but not registered.
    server.create_nosec_device("meter-off").await;
    let offline = service
        .request("meter-off", Operation::Read(Path::Instance(3, 0)), WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(offline, ServiceError::NotRegistered(_)),
        "{offline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_deregistration_are_published_and_recorded() {
    let server = TestServer::start().await;
    let mut events = server.events();
    let mut device = nosec_device(&server, "meter-bye", Lwm2mVersion::V1_1).await;

    // LwM2M Send (/dp) of two timestamped readings: published with absolute times.
    let mut first = Record::new(Path::Resource(10243, 0, 14), Value::Float(1234.5));
    first.time = Some(1_700_000_000.0);
    let mut second = Record::new(Path::Resource(10243, 0, 14), Value::Float(1235.0));
    second.time = Some(1_700_000_900.0);
    device.send(vec![first, second]);
    let records = next_event(&mut events, |e| match e {
        DeviceEvent::Send {
            endpoint, records, ..
        } if endpoint == "meter-bye" => Some(records.clone()),
        _ => None,
    })
    .await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].path, "/10243/0/14");
    assert_eq!(records[1].time, Some(1_700_000_900.0));
    assert_eq!(records[1].value, ValueView::Float(1235.0));
    device
        .expect("SendCompleted", |e| match e {
            DevEvent::Client(ClientEvent::SendCompleted { result, .. }) => Some(result.clone()),
            _ => None,
        })
        .await
        .unwrap();
    device.deregister();
    device
        .expect("Deregistered", |e| {
            matches!(e, DevEvent::Client(ClientEvent::Deregistered)).then_some(())
        })
        .await;
    next_event(&mut events, |e| match e {
        DeviceEvent::Deregistered { endpoint, .. } => (endpoint == "meter-bye").then_some(()),
        _ => None,
    })
    .await;
    assert!(server.service().registration("meter-bye").is_none());
    eventually(
        "the device is offline and its registration row gone",
        || async {
            let device = server.store().get_device("meter-bye").await.unwrap()?;
            let row = server
                .store()
                .lwm2m_registration("meter-bye")
                .await
                .unwrap();
            (device.connectivity == Connectivity::Offline && row.is_none()).then_some(())
        },
    )
    .await;
}
