//! End to end: `POST /api/v1/fleet/read` against a running server with meters registered over
//! real UDP (NoSec, `tests::device`): decoded values per meter (1.0 TLV meters read path by path,
//! a 1.1 SenML meter with Read-Composite), and per-endpoint errors in the same answer — an
//! unknown endpoint and a known but unregistered one (404), a decommissioned one still registered
//! (409), the device's own 4.04, a meter that does not answer (504) — plus the 400s of a bad body.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lwm2m_objects::{Path, Value};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use serde_json::{Value as Json, json};
use server::fleet::lifecycle::Actor;
use tests::device::TestDevice;
use tests::harness::TestServer;

const TOKEN: &str = "e2e-token-0123456789";

async fn post(server: &TestServer, uri: &str, body: Json) -> (u16, Json) {
    tests::http::json(
        server.http_addr(),
        TOKEN,
        "POST",
        uri,
        Some(body),
        Duration::from_secs(30),
    )
    .await
}

async fn meter(
    server: &TestServer,
    endpoint: &str,
    version: Lwm2mVersion,
    rssi: i64,
) -> TestDevice {
    let device = server.registered_nosec_meter(endpoint, version).await;
    device.set(Path::Resource(4, 0, 2), Value::Integer(rssi));
    device
}

/// The result of `endpoint` in a fleet read's answer.
fn result_of<'a>(body: &'a Json, endpoint: &str) -> &'a Json {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == endpoint)
        .unwrap_or_else(|| panic!("{endpoint} not in {body}"))
}

fn value_of<'a>(result: &'a Json, path: &str) -> &'a Json {
    result["read"]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values in {result}"))
        .iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_reads_many_meters_and_reports_each_failure() {
    let server = TestServer::start().await;
    let _a = meter(&server, "fleet-a", Lwm2mVersion::V1_0, -71).await;
    let _b = meter(&server, "fleet-b", Lwm2mVersion::V1_0, -82).await;
    let _c = meter(&server, "fleet-c", Lwm2mVersion::V1_1, -93).await;
    let _gone = meter(&server, "fleet-gone", Lwm2mVersion::V1_0, -60).await;
    let silent = meter(&server, "fleet-silent", Lwm2mVersion::V1_0, -60).await;
    server.create_nosec_device("fleet-never").await;
    server.service().flush().await;
    // Decommissioned in the registry while its registration is still live: reads refused.
    server
        .store()
        .decommission("fleet-gone", &Actor::user("ops").unwrap(), "scrapped")
        .await
        .unwrap();
    // Values set on the meters' side reach their object stores before the read (commands are
    // handled in order; a read of each shows it).
    let endpoints = ["fleet-a", "fleet-b", "fleet-c"];

    // One path: a Read per meter, values decoded with name, type and unit.
    let (status, body) = post(
        &server,
        "/api/v1/fleet/read",
        json!({"endpoints": ["fleet-a", "nobody", "fleet-b", "fleet-never", "fleet-c", "fleet-gone"],
               "paths": ["/4/0/2"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["succeeded"], &body["failed"], &body["pending"]),
        (&json!(3), &json!(3), &json!(0)),
        "{body}"
    );
    let order: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "fleet-a",
            "nobody",
            "fleet-b",
            "fleet-never",
            "fleet-c",
            "fleet-gone"
        ]
    );
    for (endpoint, rssi) in endpoints.iter().zip([-71, -82, -93]) {
        let result = result_of(&body, endpoint);
        assert_eq!(result["status"], 200, "{result}");
        assert_eq!(result["read"]["method"], "read", "{result}");
        let value = value_of(result, "/4/0/2");
        assert_eq!(
            (&value["name"], &value["unit"], &value["value"]),
            (&json!("Radio Signal Strength"), &json!("dBm"), &json!(rssi)),
            "{result}"
        );
    }
    let unknown = result_of(&body, "nobody");
    assert_eq!(unknown["status"], 404, "{unknown}");
    assert_eq!(unknown["error"]["error"], "unknown_device", "{unknown}");
    let never = result_of(&body, "fleet-never");
    assert_eq!(never["status"], 404, "{never}");
    assert_eq!(never["error"]["error"], "not_registered", "{never}");
    let gone = result_of(&body, "fleet-gone");
    assert_eq!(gone["status"], 409, "{gone}");
    assert_eq!(gone["error"]["error"], "not_allowed", "{gone}");

    // Two paths: parallel Reads for the 1.0 meters, one Read-Composite for the 1.1 meter.
    let (status, body) = post(
        &server,
        "/api/v1/fleet/read",
        json!({"endpoints": endpoints, "paths": ["/4/0/2", "/3/0/3"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (endpoint, method) in
        endpoints
            .iter()
            .zip(["parallel-reads", "parallel-reads", "read-composite"])
    {
        let result = result_of(&body, endpoint);
        assert_eq!(result["read"]["method"], method, "{result}");
        assert_eq!(value_of(result, "/3/0/3")["name"], "Firmware Version");
        assert_eq!(value_of(result, "/3/0/3")["value"], "1.0.0");
    }
    assert_eq!(
        value_of(result_of(&body, "fleet-b"), "/4/0/2")["value"],
        -82
    );

    // The device's own error code, and a meter that does not answer within the timeout.
    silent.unplug(true);
    let (status, body) = post(
        &server,
        "/api/v1/fleet/read",
        json!({"endpoints": ["fleet-a", "fleet-silent"], "paths": ["/3/0/2"], "timeout_ms": 1500}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let missing = result_of(&body, "fleet-a");
    assert_eq!(missing["status"], 404, "{missing}");
    assert_eq!(missing["error"]["coap_code"], "4.04", "{missing}");
    let timeout = result_of(&body, "fleet-silent");
    assert_eq!(timeout["status"], 504, "{timeout}");
    assert_eq!(timeout["error"]["error"], "timeout", "{timeout}");
    assert!(timeout["error"]["operation"].is_string(), "{timeout}");

    // Malformed requests are refused as a whole.
    for bad in [
        json!({"endpoints": [], "paths": ["/3/0/3"]}),
        json!({"endpoints": ["fleet-a"], "paths": []}),
        json!({"endpoints": ["fleet-a", "fleet-a"], "paths": ["/3/0/3"]}),
        json!({"endpoints": ["fleet-a"], "paths": ["/3/zero"]}),
        json!({"endpoints": (0..1001).map(|i| format!("m-{i}")).collect::<Vec<_>>(), "paths": ["/3/0/3"]}),
    ] {
        let (status, body) = post(&server, "/api/v1/fleet/read", bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
}
