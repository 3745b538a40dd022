//! Interop with an independent LwM2M 1.0 client: Eclipse Wakaama's example `lwm2mclient` (C, its
//! own CoAP stack er-coap-13, DTLS by tinydtls), built by `scripts/interop.sh` and run as a child
//! process against the in-process server, managed only through the server's HTTP API: Register
//! (version, binding, object links), Read of every standard object it has, Write (text for one
//! resource, TLV for an instance) read back, Execute, Discover, Write-Attributes, Observe with a
//! notification, Cancel, Delete, De-register, and lifetime expiry; over NoSec and DTLS PSK
//! (TLS_PSK_WITH_AES_128_CCM_8, tinydtls' only suite).
//!
//! Needs FERRITE_WAKAAMA_CLIENT and FERRITE_WAKAAMA_CLIENT_DTLS (scripts/test.sh exports them).

#![allow(clippy::unwrap_used)]

mod interop_common;

use std::path::Path as FsPath;
use std::time::Duration;

use interop_common::{
    External, cancel, free_udp_port, http, observe, op, read, registration, tool, value_of,
};
use serde_json::{Value as Json, json};
use server::lwm2m::{DeviceEvent, RegistrationInfo, Transport};
use tests::harness::{TestServer, next_event, next_notification};
use tokio::process::Command;

// Generous: Wakaama holds off 10 s before it bootstraps (Client Hold Off Time), and CI is loaded.
const WAIT: Duration = Duration::from_secs(30);

/// Starts `binary` as endpoint `endpoint` against `server_port`, with `extra` arguments.
fn wakaama(
    binary: &FsPath,
    endpoint: &str,
    server_port: u16,
    lifetime: u32,
    extra: &[&str],
) -> External {
    let mut command = Command::new(binary);
    command.args(["-4", "-n", endpoint, "-h", "127.0.0.1"]);
    command.args(["-p", &server_port.to_string()]);
    command.args(["-l", &free_udp_port().to_string()]);
    command.args(["-t", &lifetime.to_string()]);
    command.args(extra);
    External::spawn("wakaama lwm2mclient", command)
}

/// Waits for `endpoint`'s Register (the client's output in the panic message otherwise).
async fn registered(
    events: &mut tokio::sync::broadcast::Receiver<DeviceEvent>,
    endpoint: &str,
    client: &External,
) -> RegistrationInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(DeviceEvent::Registered { registration, .. }))
                if registration.endpoint == endpoint =>
            {
                return registration;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!(
                "{endpoint} did not register within {WAIT:?}; the client printed:\n{}",
                client.output()
            ),
        }
    }
}

/// Observes `path`, has the client change resource `changed` through its `change` command,
/// returns the notified values (as JSON) and cancels the observation.
async fn observe_and_change(
    server: &TestServer,
    client: &mut External,
    endpoint: &str,
    path: &str,
    changed: &str,
    new_value: &str,
) -> Json {
    let mut events = server.events();
    let (observation, _) = observe(server.http_addr(), endpoint, json!({ "path": path })).await;
    client.send(&format!("change {changed} {new_value}")).await;
    let values = next_notification(&mut events, endpoint, observation).await;
    cancel(server.http_addr(), endpoint, observation).await;
    serde_json::to_value(values).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakaama_over_nosec_is_registered_read_written_executed_observed_and_deregisters() {
    let Some(binary) = tool("FERRITE_WAKAAMA_CLIENT", "Wakaama lwm2mclient") else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let ep = "waka-nosec";
    server.create_nosec_device(ep).await;
    let mut events = server.events();
    let mut client = wakaama(&binary, ep, server.coap_addr().port(), 60, &[]);

    // Register: LwM2M 1.0, UDP binding, its objects (and the LwM2M JSON format on the root).
    let info = registered(&mut events, ep, &client).await;
    assert_eq!(info.transport, Transport::Coap);
    let reg = registration(addr, ep).await;
    assert_eq!(reg["lwm2m_version"], "1.0", "{reg}");
    assert_eq!(reg["binding"], "U", "{reg}");
    assert_eq!(reg["lifetime_secs"], 60, "{reg}");
    let objects = reg["objects"].as_str().unwrap();
    for link in [
        "</1/0>",
        "</3/0>",
        "</4/0>",
        "</5/0>",
        "</6/0>",
        "</7/0>",
        "</31024/10>",
    ] {
        assert!(objects.contains(link), "{link} not in {objects}");
    }

    // Device: TLV decoded and typed by the model.
    let device = read(addr, ep, &["/3/0"]).await;
    assert_eq!(value_of(&device, "/3/0/0")["value"], "Open Mobile Alliance");
    assert_eq!(
        value_of(&device, "/3/0/1")["value"],
        "Lightweight M2M Client"
    );
    assert_eq!(value_of(&device, "/3/0/9")["type"], "Integer");
    assert_eq!(value_of(&device, "/3/0/7/1")["value"], 5000);
    assert_eq!(value_of(&device, "/3/0/13")["type"], "Time");
    // The other standard objects it has.
    let server_obj = read(addr, ep, &["/1/0"]).await;
    assert_eq!(value_of(&server_obj, "/1/0/0")["value"], 123);
    assert_eq!(value_of(&server_obj, "/1/0/7")["value"], "U");
    let conn = read(addr, ep, &["/4/0"]).await;
    assert_eq!(value_of(&conn, "/4/0/4/0")["value"], "192.168.178.101");
    let fw = read(addr, ep, &["/5/0"]).await;
    assert_eq!(value_of(&fw, "/5/0/6")["value"], "lwm2mclient");
    let location = read(addr, ep, &["/6/0"]).await;
    let latitude = value_of(&location, "/6/0/0")["value"].as_f64().unwrap();
    assert!((latitude - 27.986).abs() < 0.001, "{location}");
    let stats = read(addr, ep, &["/7/0"]).await;
    assert_eq!(value_of(&stats, "/7/0/0")["type"], "Integer");
    // Single resources (plain text for a 1.0 client), several at once (parallel reads).
    let several = read(addr, ep, &["/3/0/0", "/3/0/9", "/3/0/15"]).await;
    assert_eq!(several["method"], "parallel-reads", "{several}");
    assert_eq!(
        value_of(&several, "/3/0/0")["value"],
        "Open Mobile Alliance"
    );
    assert_eq!(value_of(&several, "/3/0/15")["value"], "Europe/Berlin");

    // Write one resource and read it back; then an instance (partial update, TLV).
    let written = op(addr, ep, "write", json!({"path": "/1/0/1", "value": 120})).await;
    assert_eq!(written["outcome"], "changed");
    assert_eq!(
        value_of(&read(addr, ep, &["/1/0/1"]).await, "/1/0/1")["value"],
        120
    );
    op(
        addr,
        ep,
        "write",
        json!({"path": "/3/0/14", "value": "+02:00"}),
    )
    .await;
    assert_eq!(
        value_of(&read(addr, ep, &["/3/0/14"]).await, "/3/0/14")["value"],
        "+02:00"
    );
    op(
        addr,
        ep,
        "write",
        json!({"path": "/1/0", "values": {"2": 5, "3": 30}}),
    )
    .await;
    let periods = read(addr, ep, &["/1/0"]).await;
    assert_eq!(value_of(&periods, "/1/0/2")["value"], 5);
    assert_eq!(value_of(&periods, "/1/0/3")["value"], 30);

    // Execute with arguments on the test object (it prints them).
    let printed = client.output().len();
    op(
        addr,
        ep,
        "execute",
        json!({"path": "/31024/10/2", "args": "0='on'"}),
    )
    .await;
    client
        .wait_for("Execute on 31024/10/2", printed, WAIT)
        .await;

    // Discover, Write-Attributes, Discover again.
    let found = op(addr, ep, "discover", json!({"path": "/3/0"})).await;
    let links = found["links"].as_array().unwrap();
    let battery = links
        .iter()
        .find(|l| l["path"] == "/3/0/9")
        .unwrap_or_else(|| panic!("{found}"));
    assert_eq!(battery["name"], "Battery Level");
    op(
        addr,
        ep,
        "write-attributes",
        json!({"path": "/3/0/9", "pmin": 1, "pmax": 30}),
    )
    .await;
    let found = op(addr, ep, "discover", json!({"path": "/3/0/9"})).await;
    let battery = &found["links"][0];
    assert_eq!(battery["attributes"]["pmax"], "30", "{found}");
    assert_eq!(battery["attributes"]["pmin"], "1", "{found}");

    // Observe the battery level; the client's `change` command makes it notify.
    let values = observe_and_change(&server, &mut client, ep, "/3/0/9", "/3/0/9", "42").await;
    assert_eq!(values[0]["path"], "/3/0/9", "{values}");
    assert_eq!(values[0]["value"]["value"], 42, "{values}");
    // An observed instance notifies with the whole instance (TLV).
    let values = observe_and_change(&server, &mut client, ep, "/3/0", "/3/0/9", "43").await;
    let battery = values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["path"] == "/3/0/9")
        .unwrap();
    assert_eq!(battery["value"]["value"], 43, "{values}");

    // Delete a test object instance; reading it is then 4.04.
    let deleted = op(addr, ep, "delete", json!({"path": "/31024/12"})).await;
    assert_eq!(deleted["outcome"], "deleted");
    let (status, body) = http(
        addr,
        "POST",
        &format!("/api/v1/devices/{ep}/read"),
        Some(json!({"paths": ["/31024/12"]})),
    )
    .await;
    assert_eq!(
        (status, body["coap_code"].as_str()),
        (404, Some("4.04")),
        "{body}"
    );

    // `quit` de-registers.
    client.send("quit").await;
    next_event(&mut events, |e| match e {
        DeviceEvent::Deregistered { endpoint, .. } if endpoint == ep => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(client.wait_exit(WAIT).await, Some(0));
}

// Wakaama's DTLS client (tinydtls 0.8.6, PSK only, as its examples build it) sends a ClientHello
// without an extensions block, which is legal (RFC 5246 §7.4.1.2) but which rtc-dtls 0.21.1
// rejected; the workspace patches it (vendor/rtc-dtls, [patch.crates-io]), and this test is the
// proof against an independent DTLS implementation and LwM2M client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakaama_over_dtls_psk_registers_with_the_api_created_key_and_is_managed() {
    let Some(binary) = tool("FERRITE_WAKAAMA_CLIENT_DTLS", "Wakaama lwm2mclient (DTLS)") else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let ep = "waka-dtls";
    let key_hex = "8f4c2a1b9d7e6f5a4b3c2d1e0f9a8b7c";
    let (status, created) = http(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"endpoint": ep, "psk_identity": "waka-dtls-id", "psk_key_hex": key_hex})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut events = server.events();
    let mut client = wakaama(
        &binary,
        ep,
        server.coaps_addr().port(),
        60,
        &["-i", "waka-dtls-id", "-s", key_hex],
    );

    let info = registered(&mut events, ep, &client).await;
    assert_eq!(info.transport, Transport::Coaps);
    assert_eq!(info.psk_identity.as_deref(), Some("waka-dtls-id"));
    let reg = registration(addr, ep).await;
    assert_eq!(reg["transport"], "coaps", "{reg}");
    assert_eq!(reg["lwm2m_version"], "1.0", "{reg}");

    let device = read(addr, ep, &["/3/0"]).await;
    assert_eq!(value_of(&device, "/3/0/0")["value"], "Open Mobile Alliance");
    op(addr, ep, "write", json!({"path": "/1/0/1", "value": 90})).await;
    assert_eq!(
        value_of(&read(addr, ep, &["/1/0/1"]).await, "/1/0/1")["value"],
        90
    );
    let values = observe_and_change(&server, &mut client, ep, "/3/0/9", "/3/0/9", "17").await;
    assert_eq!(values[0]["value"]["value"], 17, "{values}");

    // Reboot: Wakaama's example answers 2.04, then "reboots" by exiting with status 1.
    let printed = client.output().len();
    op(addr, ep, "execute", json!({"path": "/3/0/4"})).await;
    client.wait_for("REBOOT", printed, WAIT).await;
    assert_eq!(client.wait_exit(WAIT).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_wakaama_client_expires_after_its_lifetime() {
    let Some(binary) = tool("FERRITE_WAKAAMA_CLIENT", "Wakaama lwm2mclient") else {
        return;
    };
    let server = TestServer::start().await;
    let ep = "waka-gone";
    server.create_nosec_device(ep).await;
    let mut events = server.events();
    let mut client = wakaama(&binary, ep, server.coap_addr().port(), 4, &[]);
    registered(&mut events, ep, &client).await;
    // Killed: no De-register. Lifetime 4 s + the tests' 1 s grace.
    client.child.kill().await.unwrap();
    next_event(&mut events, |e| match e {
        DeviceEvent::Expired { endpoint, .. } if endpoint == ep => Some(()),
        DeviceEvent::Deregistered { endpoint, .. } if endpoint == ep => {
            panic!("a killed client cannot de-register")
        }
        _ => None,
    })
    .await;
    let (status, _) = http(
        server.http_addr(),
        "GET",
        &format!("/api/v1/devices/{ep}/registration"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Wakaama bootstraps (`-b`: its only account is a bootstrap account) over NoSec from our
/// bootstrap server — LwM2M 1.0 client, so no Discover: Delete of /0 and /1, Write of the new
/// Security and Server instances, Bootstrap-Finish — then registers with the account it was
/// given and is managed. The device goes registered → provisioned → active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakaama_bootstraps_over_nosec_then_registers_with_the_delivered_account() {
    let Some(binary) = tool("FERRITE_WAKAAMA_CLIENT", "Wakaama lwm2mclient") else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.http_addr();
    let ep = "waka-bs";
    let bs_coap = server
        .service()
        .bootstrap()
        .unwrap()
        .local_addr(Transport::Coap)
        .expect("NoSec bootstrap socket");
    let (status, config) = http(
        addr,
        "PUT",
        "/api/v1/bootstrap/configs/waka",
        Some(json!({
            "group": "waka",
            "server_uri": format!("coap://{}", server.coap_addr()),
            "security_mode": "nosec",
            "lifetime_secs": 90,
            "binding": "U",
            "short_server_id": 123,
            "notification_storing": false,
        })),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {config}");
    let (status, created) = http(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"endpoint": ep, "security_mode": "nosec", "tags": {"group": "waka"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut events = server.events();
    let client = wakaama(&binary, ep, bs_coap.port(), 60, &["-b"]);
    let info = registered(&mut events, ep, &client).await;
    assert_eq!(info.transport, Transport::Coap);
    // The lifetime is the one the bootstrap server wrote into /1/x/1, not the command line's.
    assert_eq!(info.lifetime, 90);
    let reg = registration(addr, ep).await;
    assert_eq!(reg["lwm2m_version"], "1.0", "{reg}");
    let device = read(addr, ep, &["/3/0"]).await;
    assert_eq!(value_of(&device, "/3/0/0")["value"], "Open Mobile Alliance");
    let server_object = read(addr, ep, &["/1"]).await;
    assert!(
        server_object.to_string().contains("123"),
        "the short server ID written by bootstrap: {server_object}"
    );
    tests::harness::eventually("active", || async {
        let (_, device) = http(addr, "GET", &format!("/api/v1/devices/{ep}"), None).await;
        (device["state"] == "active").then_some(())
    })
    .await;
    // Provisioned by bootstrap — as a transition, or (when Wakaama's Register, sent the moment
    // it acknowledged Bootstrap-Finish, was written first) as a bootstrap_finished entry.
    tests::harness::eventually("the bootstrap in the audit trail", || async {
        let (_, audit) = http(addr, "GET", &format!("/api/v1/devices/{ep}/audit"), None).await;
        let text = audit.to_string();
        (text.contains("\"provisioned\"") || text.contains("bootstrap_finished")).then_some(())
    })
    .await;
}
