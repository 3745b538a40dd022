//! The registry learns each device's firmware version from the device (server/src/inventory.rs):
//! after a Register the server reads /3/0/3 and records it; after a restart on new firmware the
//! registry shows the new version. Real UDP, a real SQLite file.

#![allow(clippy::unwrap_used)]

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use tests::device::{DeviceSpec, Security, TestDevice};
use tests::harness::{TestServer, eventually};

async fn firmware_of(server: &TestServer, endpoint: &str) -> Option<String> {
    server
        .store()
        .get_device(endpoint)
        .await
        .unwrap()
        .unwrap()
        .firmware_version
}

/// A 1.0 (TLV) and a 1.1 (SenML CBOR) meter: each registry row gets the version the meter
/// reports, and a meter that restarts on new firmware shows the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_versions_are_learned_at_registration_and_after_a_restart() {
    let server = TestServer::start().await;
    for (endpoint, version) in [
        ("inv-10", Lwm2mVersion::V1_0),
        ("inv-11", Lwm2mVersion::V1_1),
    ] {
        server.create_nosec_device(endpoint).await;
        assert_eq!(firmware_of(&server, endpoint).await, None);
        let mut device = TestDevice::start(
            DeviceSpec::new(endpoint, version, Security::NoSec),
            server.coap_addr(),
        )
        .await;
        device.register_and_wait().await;
        eventually("firmware version 1.0.0 recorded", || async {
            (firmware_of(&server, endpoint).await.as_deref() == Some("1.0.0")).then_some(())
        })
        .await;
    }

    // inv-11 comes back on 2.1.0: a new process with the new /3/0/3 registers again.
    let mut spec = DeviceSpec::new("inv-11", Lwm2mVersion::V1_1, Security::NoSec);
    spec.store
        .set(Path::Resource(3, 0, 3), Value::String("2.1.0".into()))
        .unwrap();
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;
    eventually("firmware version 2.1.0 recorded", || async {
        (firmware_of(&server, "inv-11").await.as_deref() == Some("2.1.0")).then_some(())
    })
    .await;
    assert_eq!(
        firmware_of(&server, "inv-10").await.as_deref(),
        Some("1.0.0")
    );
}
