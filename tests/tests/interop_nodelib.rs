//! Interop with an independent LwM2M 1.0 client in another language and CoAP stack: Telefonica's
//! lwm2m-node-lib 1.4.0 (Node.js, node-coap), which speaks plain text only — no TLV, no
//! Content-Format on its answers — driven by `tests/interop/nodelib-client.js` as a child process
//! and managed through the server's HTTP API: Register, Read of single resources (text, typed by
//! the model; untyped for an object it does not know), Write read back, Execute, Discover,
//! Write-Attributes, Observe with a notification, De-register.
//!
//! Needs FERRITE_NODE_LWM2M_DIR (a node_modules with lwm2m-node-lib; scripts/test.sh exports it).

#![allow(clippy::unwrap_used)]

mod interop_common;

use std::time::Duration;

use interop_common::{External, observe, op, read, registration, tool, value_of};
use serde_json::json;
use server::lwm2m::DeviceEvent;
use tests::harness::{TestServer, next_event, next_notification};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwm2m_node_lib_registers_and_is_read_written_executed_observed_and_deregisters() {
    let Some(modules) = tool("FERRITE_NODE_LWM2M_DIR", "lwm2m-node-lib") else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let ep = "node-lib";
    server.create_nosec_device(ep).await;
    let mut events = server.events();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/nodelib-client.js");
    let mut command = Command::new("node");
    command
        .arg(script)
        .args([
            "127.0.0.1",
            &server.coap_addr().port().to_string(),
            ep,
            "60",
        ])
        .env("NODE_PATH", &modules);
    let mut client = External::spawn("lwm2m-node-lib client", command);
    client.wait_for(r#""event":"registered""#, 0, WAIT).await;

    let reg = registration(addr, ep).await;
    assert_eq!(reg["lwm2m_version"], "1.0", "{reg}");
    assert_eq!(reg["binding"], "U", "{reg}");
    assert_eq!(reg["objects"], "</1/0>,</3/0>,</3303/0>", "{reg}");

    // Single resources: text without Content-Format, typed through the model.
    let device = read(addr, ep, &["/3/0/0"]).await;
    assert_eq!(value_of(&device, "/3/0/0")["value"], "Telefonica I+D");
    let battery = read(addr, ep, &["/3/0/9"]).await;
    assert_eq!(value_of(&battery, "/3/0/9")["type"], "Integer");
    assert_eq!(value_of(&battery, "/3/0/9")["value"], 87);
    let temperature = read(addr, ep, &["/3303/0/5700", "/3303/0/5701"]).await;
    assert_eq!(temperature["method"], "parallel-reads", "{temperature}");
    // 3303 is not in the server's object model: its values come back untyped, as sent.
    let celsius = value_of(&temperature, "/3303/0/5700");
    assert_eq!(
        (&celsius["type"], &celsius["value"]),
        (&json!("Untyped"), &json!("21.5"))
    );
    assert_eq!(value_of(&temperature, "/3303/0/5701")["value"], "Cel");
    // (A whole instance it cannot read: it does not speak TLV, which LwM2M 1.0 requires for
    // instances, and node-coap drops a request whose Accept it does not know, so such a Read
    // ends in the server's timeout. Not asserted: it would only cost the test that timeout.)

    // Write (as text) and read back.
    let written = op(addr, ep, "write", json!({"path": "/1/0/1", "value": 120})).await;
    assert_eq!(written["outcome"], "changed");
    client
        .wait_for(r#""event":"write","path":"/1/0/1","value":"120""#, 0, WAIT)
        .await;
    assert_eq!(
        value_of(&read(addr, ep, &["/1/0/1"]).await, "/1/0/1")["value"],
        120
    );

    // Execute.
    op(addr, ep, "execute", json!({"path": "/3/0/4"})).await;
    client
        .wait_for(r#""event":"execute","path":"/3/0/4""#, 0, WAIT)
        .await;

    // Discover an instance: its resources.
    let found = op(addr, ep, "discover", json!({"path": "/3/0"})).await;
    let paths: Vec<&str> = found["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["path"].as_str())
        .collect();
    assert!(paths.contains(&"/3/0/9"), "{found}");
    // Write-Attributes, then Discover shows them. (Not on the observed battery level: the
    // library's observer ignores value changes of a resource that has attributes but no pmax.)
    op(
        addr,
        ep,
        "write-attributes",
        json!({"path": "/3303/0/5700", "gt": 50.0}),
    )
    .await;
    let found = op(addr, ep, "discover", json!({"path": "/3303/0/5700"})).await;
    assert_eq!(found["links"][0]["attributes"]["gt"], "50", "{found}");

    // Observe the battery level; a new value is notified.
    let (observation, observed) = observe(addr, ep, json!({"path": "/3/0/9"})).await;
    assert_eq!(value_of(&observed, "/3/0/9")["value"], 87);
    client.send("set /3/0 9 42").await;
    let values = next_notification(&mut events, ep, observation).await;
    let values = serde_json::to_value(values).unwrap();
    assert_eq!(values[0]["path"], "/3/0/9", "{values}");
    assert_eq!(values[0]["value"]["value"], 42, "{values}");

    // De-register.
    client.send("quit").await;
    next_event(&mut events, |e| match e {
        DeviceEvent::Deregistered { endpoint, .. } if endpoint == ep => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(client.wait_exit(WAIT).await, Some(0));
}
