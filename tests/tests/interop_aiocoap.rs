//! Interop with an LwM2M 1.1 (and 1.2) client on an independent CoAP stack: aiocoap 0.4.17
//! (Python, by Christian Amsüss), driven by `tests/interop/aiocoap-client.py` as a child process
//! and managed through the server's HTTP API. The client's LwM2M layer is this project's (a small
//! Python script; no independent 1.1 client can be had on this machine, see the notes of issue
//! 3), but everything on the wire — message IDs, tokens, deduplication, retransmission,
//! block-wise transfer, Observe sequence numbers — is aiocoap's, and it speaks only SenML JSON:
//! Register with `lwm2m=1.1` (or 1.2) and `ct=110`; reads of a resource, an instance, a
//! multi-instance resource and an unknown object, each asked with Accept 110; Read-Composite
//! (FETCH); Write read back; a 3,000-byte value written in blocks and read back in blocks;
//! Execute with arguments; Discover; Write-Attributes; Observe with a notification; LwM2M Send
//! with a base time; Update; De-register.
//!
//! Needs FERRITE_AIOCOAP_PYTHON (a Python with aiocoap; scripts/interop.sh makes it).

#![allow(clippy::unwrap_used)]

mod interop_common;

use std::time::Duration;

use interop_common::{External, cancel, observe, op, read, registration, tool, value_of};
use serde_json::json;
use server::lwm2m::DeviceEvent;
use tests::harness::{TestServer, next_event, next_notification};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lwm2m_1_1_senml_json_client_on_aiocoap_is_managed_through_the_api() {
    managed("1.1").await;
}

/// The same client registering as LwM2M 1.2: accepted, and served as 1.1 where they differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lwm2m_1_2_senml_json_client_on_aiocoap_is_managed_through_the_api() {
    managed("1.2").await;
}

async fn managed(version: &str) {
    let Some(python) = tool("FERRITE_AIOCOAP_PYTHON", "Python with aiocoap") else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let ep = format!("aiocoap-{}", version.replace('.', ""));
    let ep = ep.as_str();
    server.create_nosec_device(ep).await;
    let mut events = server.events();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/aiocoap-client.py");
    let mut command = Command::new(&python);
    command.arg(script).args([
        "127.0.0.1",
        &server.coap_addr().port().to_string(),
        ep,
        "60",
        version,
    ]);
    let mut client = External::spawn("aiocoap client", command);
    client.wait_for(r#""event": "registered""#, 0, WAIT).await;

    let reg = registration(addr, ep).await;
    assert_eq!(reg["lwm2m_version"], version, "{reg}");
    assert_eq!(reg["binding"], "U", "{reg}");

    // A resource: SenML JSON asked for (Accept 110, never TLV), its base name resolved.
    let battery = read(addr, ep, &["/3/0/9"]).await;
    assert_eq!(battery["method"], "read", "{battery}");
    assert_eq!(value_of(&battery, "/3/0/9")["value"], 93);
    assert_eq!(value_of(&battery, "/3/0/9")["type"], "Integer");
    client
        .wait_for(
            r#""event": "read", "path": "/3/0/9", "accept": 110"#,
            0,
            WAIT,
        )
        .await;

    // An instance: every resource, names relative to the base name, a multi-instance one too.
    let device = read(addr, ep, &["/3/0"]).await;
    assert_eq!(value_of(&device, "/3/0/0")["value"], "aiocoap meters");
    assert_eq!(value_of(&device, "/3/0/2")["value"], "AIO-0001");
    assert_eq!(value_of(&device, "/3/0/11/0")["value"], 0);
    assert_eq!(value_of(&device, "/3/0/16")["value"], "U");
    // An object the server's model lacks: SenML carries the types itself.
    let temperature = read(addr, ep, &["/3303/0"]).await;
    assert_eq!(value_of(&temperature, "/3303/0/5700")["value"], 21.5);
    assert_eq!(value_of(&temperature, "/3303/0/5701")["value"], "Cel");

    // Several paths of a 1.1 device: one Read-Composite (FETCH).
    let composite = read(addr, ep, &["/3/0/0", "/3/0/9", "/1/0/1"]).await;
    assert_eq!(composite["method"], "read-composite", "{composite}");
    assert_eq!(value_of(&composite, "/3/0/0")["value"], "aiocoap meters");
    assert_eq!(value_of(&composite, "/3/0/9")["value"], 93);
    assert_eq!(value_of(&composite, "/1/0/1")["value"], 60);
    client
        .wait_for(r#""event": "read-composite""#, 0, WAIT)
        .await;

    // Write (SenML JSON) and read back.
    let written = op(addr, ep, "write", json!({"path": "/1/0/1", "value": 120})).await;
    assert_eq!(written["outcome"], "changed", "{written}");
    client
        .wait_for(
            r#""event": "write", "path": "/1/0/1", "value": 120, "block1": false"#,
            0,
            WAIT,
        )
        .await;
    assert_eq!(
        value_of(&read(addr, ep, &["/1/0/1"]).await, "/1/0/1")["value"],
        120
    );

    // Block-wise both ways (RFC 7959) with aiocoap's own Block1 assembly and Block2 slicing:
    // a 3,000-byte value written, then read back.
    let long: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    op(
        addr,
        ep,
        "write",
        json!({"path": "/3303/0/5701", "value": long}),
    )
    .await;
    let wrote = client
        .wait_for(r#""event": "write", "path": "/3303/0/5701""#, 0, WAIT)
        .await;
    assert!(wrote.contains(r#""block1": true"#), "{wrote}");
    let back = read(addr, ep, &["/3303/0/5701"]).await;
    assert_eq!(value_of(&back, "/3303/0/5701")["value"], long.as_str());
    // aiocoap answered the first block and was asked for the others.
    client
        .wait_for(
            r#""event": "block2", "path": "/3303/0/5701", "number": 2"#,
            0,
            WAIT,
        )
        .await;

    // Execute with arguments.
    op(
        addr,
        ep,
        "execute",
        json!({"path": "/3/0/4", "args": "0='soft',1"}),
    )
    .await;
    client
        .wait_for(
            r#""event": "execute", "path": "/3/0/4", "args": "0='soft',1""#,
            0,
            WAIT,
        )
        .await;

    // Write-Attributes, then Discover shows them.
    op(
        addr,
        ep,
        "write-attributes",
        json!({"path": "/3/0/9", "pmin": 1, "pmax": 30}),
    )
    .await;
    let found = op(addr, ep, "discover", json!({"path": "/3/0"})).await;
    let battery_link = found["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == "/3/0/9")
        .unwrap_or_else(|| panic!("{found}"));
    assert_eq!(battery_link["attributes"]["pmin"], "1", "{found}");
    assert_eq!(battery_link["attributes"]["pmax"], "30", "{found}");
    assert!(
        found["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["path"] == "/3/0/4"),
        "{found}"
    );

    // Observe the battery level; a new value is notified (aiocoap's Observe numbering).
    let (observation, observed) = observe(addr, ep, json!({"path": "/3/0/9"})).await;
    assert_eq!(value_of(&observed, "/3/0/9")["value"], 93);
    client.send("set /3/0/9 42").await;
    let values = next_notification(&mut events, ep, observation).await;
    let values = serde_json::to_value(values).unwrap();
    assert_eq!(values[0]["path"], "/3/0/9", "{values}");
    assert_eq!(values[0]["value"]["value"], 42, "{values}");

    // Observe-Composite (FETCH with Observe): one observation of two paths; a change of either
    // notifies both.
    let (composite, both) = observe(addr, ep, json!({"paths": ["/3/0/9", "/3303/0/5700"]})).await;
    assert_eq!(value_of(&both, "/3303/0/5700")["value"], 21.5);
    client.send("set /3303/0/5700 23").await;
    let values = next_notification(&mut events, ep, composite).await;
    let values = serde_json::to_value(values).unwrap();
    let at = |path: &str| {
        values
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in {values}"))["value"]["value"]
            .clone()
    };
    assert_eq!((at("/3/0/9"), at("/3303/0/5700")), (json!(42), json!(23)));
    cancel(addr, ep, composite).await;

    // LwM2M Send: a reading with its time (a SenML base time).
    let before = chrono::Utc::now().timestamp() as f64;
    client.send("send /3303/0/5700 22.5").await;
    let records = next_event(&mut events, |e| match e {
        DeviceEvent::Send {
            endpoint, records, ..
        } if endpoint == ep => Some(records.clone()),
        _ => None,
    })
    .await;
    client
        .wait_for(r#""event": "sent", "code": "2.04 Changed""#, 0, WAIT)
        .await;
    let records = serde_json::to_value(records).unwrap();
    assert_eq!(records[0]["path"], "/3303/0/5700", "{records}");
    assert_eq!(records[0]["value"]["value"], 22.5, "{records}");
    let time = records[0]["time"]
        .as_f64()
        .unwrap_or_else(|| panic!("{records}"));
    assert!((time - before).abs() < 60.0, "{records}");

    // Update, then De-register.
    client.send("update").await;
    client
        .wait_for(r#""event": "updated", "code": "2.04 Changed""#, 0, WAIT)
        .await;
    client.send("quit").await;
    next_event(&mut events, |e| match e {
        DeviceEvent::Deregistered { endpoint, .. } if endpoint == ep => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(client.wait_exit(WAIT).await, Some(0));
}
