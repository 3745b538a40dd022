//! End to end through the HTTP API: devices register with the running server over real UDP
//! (NoSec), and the test drives them with real HTTP requests on the server's HTTP socket —
//! read (one path, Read-Composite for 1.1, parallel reads for 1.0) with resource names, types and
//! units, write and read back, execute, observe with the notification arriving on the SSE
//! stream, Observe-Composite (`paths`) with its notifications and cancel, the error mapping (unknown device 404, bad path 400, bad value 400, device 4.04 → 404,
//! suspended write 409), and the Prometheus registration gauge.
//!
//! The HTTP client is `tests::http` (a few lines of HTTP/1.1 over a `TcpStream`; responses are
//! read to the end, `Connection: close`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_objects::{ContentFormat, Path, Value};
use lwm2m_proto::lwm2m::client::ClientEvent;
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use serde_json::{Value as Json, json};
use server::fleet::lifecycle::Actor;
use tests::device::{DeviceEvent as DevEvent, DeviceSpec, Security, TestDevice};
use tests::harness::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "e2e-token-0123456789";

/// How long one HTTP answer may take.
const HTTP_PATIENCE: Duration = Duration::from_secs(30);

/// One HTTP exchange; returns the status, the headers (lower-case) and the body.
async fn http_raw(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    body: Option<&Json>,
) -> (u16, String, Vec<u8>) {
    tests::http::raw(addr, TOKEN, method, uri, body, HTTP_PATIENCE).await
}

async fn http(addr: SocketAddr, method: &str, uri: &str, body: Option<Json>) -> (u16, Json) {
    tests::http::json(addr, TOKEN, method, uri, body, HTTP_PATIENCE).await
}

async fn post(server: &TestServer, uri: &str, body: Json) -> (u16, Json) {
    http(server.http_addr(), "POST", uri, Some(body)).await
}

async fn device(server: &TestServer, endpoint: &str, version: Lwm2mVersion) -> TestDevice {
    server.registered_nosec_meter(endpoint, version).await
}

/// Cancels observation `observation` of the device at `base` by its number, expecting it
/// cancelled.
async fn cancel(server: &TestServer, base: &str, observation: u64) {
    let (status, body) = http(
        server.http_addr(),
        "DELETE",
        &format!("{base}/observe?observation={observation}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"], json!([observation]));
}

fn value_of<'a>(body: &'a Json, path: &str) -> &'a Json {
    body["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_back_named_typed_and_with_units() {
    let server = TestServer::start().await;
    let _old = device(&server, "http-tlv", Lwm2mVersion::V1_0).await;
    let _new = device(&server, "http-senml", Lwm2mVersion::V1_1).await;

    let (status, body) = post(
        &server,
        "/api/v1/devices/http-tlv/read",
        json!({"paths": ["/3/0"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "read");
    assert_eq!(
        value_of(&body, "/3/0/0"),
        &json!({"path": "/3/0/0", "name": "Manufacturer", "type": "String", "unit": null, "value": "Ferrite"})
    );
    let battery = value_of(&body, "/3/0/9");
    assert_eq!(
        (battery["type"].as_str(), battery["value"].as_i64()),
        (Some("Integer"), Some(87))
    );
    assert_eq!(value_of(&body, "/3/0/7/1")["value"], 5000);
    assert_eq!(value_of(&body, "/3/0/13")["type"], "Time");

    // Several paths: parallel Reads for 1.0, one Read-Composite for 1.1.
    for (endpoint, method) in [
        ("http-tlv", "parallel-reads"),
        ("http-senml", "read-composite"),
    ] {
        let (status, body) = post(
            &server,
            &format!("/api/v1/devices/{endpoint}/read"),
            json!({"paths": ["/4/0/2", "/6/0/0"]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["method"], method, "{body}");
        let rssi = value_of(&body, "/4/0/2");
        assert_eq!(rssi["name"], "Radio Signal Strength");
        assert_eq!(rssi["unit"], "dBm");
        assert_eq!(rssi["value"], -93);
        assert_eq!(value_of(&body, "/6/0/0")["value"], 52.52);
    }

    // Errors: unknown device, bad path text, the device's 4.04, a bad body.
    let (status, body) = post(
        &server,
        "/api/v1/devices/nobody/read",
        json!({"paths": ["/3/0"]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_device");
    let (status, body) = post(
        &server,
        "/api/v1/devices/http-tlv/read",
        json!({"paths": ["/3/zero"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("zero"), "{body}");
    let (status, body) = post(
        &server,
        "/api/v1/devices/http-tlv/read",
        json!({"paths": ["/3/9"]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["coap_code"], "4.04", "{body}");
    let (status, _) = post(
        &server,
        "/api/v1/devices/http-tlv/read",
        json!({"path": "/3/0"}),
    )
    .await;
    assert_eq!(status, 400);

    // The live registration.
    let (status, body) = http(
        server.http_addr(),
        "GET",
        "/api/v1/devices/http-senml/registration",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lwm2m_version"], "1.1");
    assert_eq!(body["binding"], "U");
    assert!(
        body["objects"].as_str().unwrap().contains("</3/0>"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_execute_and_observe_with_the_notification_on_the_event_stream() {
    let server = TestServer::start().await;
    let mut device = device(&server, "http-ops", Lwm2mVersion::V1_1).await;
    let base = "/api/v1/devices/http-ops";

    // Write and read back (/7/0/8 Collection Period, Integer).
    let (status, body) = post(
        &server,
        &format!("{base}/write"),
        json!({"path": "/7/0/8", "value": 900}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "changed");
    let (_, body) = post(
        &server,
        &format!("{base}/read"),
        json!({"paths": ["/7/0/8"]}),
    )
    .await;
    assert_eq!(value_of(&body, "/7/0/8")["value"], 900);
    // A value of the wrong type never reaches the device.
    let (status, body) = post(
        &server,
        &format!("{base}/write"),
        json!({"path": "/7/0/8", "value": "soon"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Integer"),
        "{body}"
    );

    // Execute Reboot.
    let (status, body) = post(
        &server,
        &format!("{base}/execute"),
        json!({"path": "/3/0/4"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    device
        .expect("Executed /3/0/4", |e| match e {
            DevEvent::Client(ClientEvent::Executed { path, .. }) => {
                (*path == Path::Resource(3, 0, 4)).then_some(())
            }
            _ => None,
        })
        .await;

    // Open the event stream for this device, then observe the battery level.
    let mut events = TcpStream::connect(server.http_addr()).await.unwrap();
    events
        .write_all(
            format!(
                "GET /api/v1/events?endpoint=http-ops HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    // The response head comes first (the stream is open before the notification is sent).
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), events.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the event stream closed");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("text/event-stream"));

    let (status, body) = post(
        &server,
        &format!("{base}/observe"),
        json!({"path": "/3/0/9"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let observation = body["observation"].as_u64().unwrap();
    assert_eq!(value_of(&body, "/3/0/9")["value"], 87);
    device.set(Path::Resource(3, 0, 9), Value::Integer(42));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        // The Observe's own answer comes first as the initial notification, then the change.
        let notifications: Vec<&str> = text
            .split("\n\n")
            .filter(|m| m.contains("event: notification"))
            .collect();
        if notifications.len() >= 2 {
            let (first, second) = (notifications[0], notifications[1]);
            for data in [first, second] {
                assert!(
                    data.contains(&format!("\"observation\":{observation}")),
                    "{data}"
                );
                assert!(data.contains(r#""path":"/3/0/9""#), "{data}");
            }
            assert!(first.contains(r#""initial":true"#), "{first}");
            assert!(first.contains(r#""value":87"#), "{first}");
            assert!(!second.contains(r#""initial""#), "{second}");
            assert!(second.contains(r#""value":42"#), "{second}");
            break;
        }
        let n = tokio::time::timeout_at(deadline, events.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no notification on the event stream; saw {text}"))
            .unwrap();
        assert!(n > 0, "the event stream closed; saw {text}");
        seen.extend_from_slice(&chunk[..n]);
    }

    // Cancel it.
    cancel(&server, base, observation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_devices_refuse_writes_and_metrics_count_registrations() {
    let server = TestServer::start().await;
    let _device = device(&server, "http-hold", Lwm2mVersion::V1_1).await;
    server.service().flush().await;
    server
        .store()
        .suspend("http-hold", &Actor::user("ops").unwrap(), "billing dispute")
        .await
        .unwrap();
    let (status, body) = post(
        &server,
        "/api/v1/devices/http-hold/write",
        json!({"path": "/1/0/1", "value": 600}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_allowed");
    assert!(
        body["message"].as_str().unwrap().contains("suspended"),
        "{body}"
    );
    // Reads stay allowed.
    let (status, _) = post(
        &server,
        "/api/v1/devices/http-hold/read",
        json!({"paths": ["/3/0/9"]}),
    )
    .await;
    assert_eq!(status, 200);

    // Events are counted by a task that listens to the service, so the counter can trail the
    // registration a little on a loaded machine: scrape until it shows (bounded), then check.
    let mut scrape = http_raw(server.http_addr(), "GET", "/api/v1/metrics", None).await;
    for _ in 0..100 {
        let text = String::from_utf8_lossy(&scrape.2);
        if text.contains("ferrite_lwm2m_registration_events_total{kind=\"registered\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        scrape = http_raw(server.http_addr(), "GET", "/api/v1/metrics", None).await;
    }
    let (status, head, body) = scrape;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("openmetrics"), "{head}");
    assert!(text.contains("ferrite_lwm2m_registrations 1"), "{text}");
    assert!(
        text.contains("ferrite_lwm2m_registration_events_total{kind=\"registered\"}"),
        "{text}"
    );
    assert!(
        text.contains("ferrite_lwm2m_requests_total{operation=\"Write\",result=\"not_allowed\"}"),
        "{text}"
    );
    assert!(text.contains("ferrite_http_requests_total{"), "{text}");
    // Completed requests are counted by the socket (no event listener needed): at least the
    // read above.
    let succeeded = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("ferrite_lwm2m_operations_completed_total{status=\"succeeded\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(succeeded.is_some_and(|n| n >= 1), "{text}");

    // Also at Prometheus' default path, the same document.
    let (status, head, body) = http_raw(server.http_addr(), "GET", "/metrics", None).await;
    let root = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{root}");
    assert!(head.contains("openmetrics"), "{head}");
    assert!(root.contains("ferrite_lwm2m_registrations 1"), "{root}");

    // Every route needs a token, these too.
    for path in ["/api/v1/metrics", "/metrics"] {
        let mut stream = TcpStream::connect(server.http_addr()).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        assert!(
            String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 401"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_a_sleeping_device_is_accepted_and_polled_until_it_wakes() {
    let server = TestServer::start().await;
    server.create_nosec_device("http-q").await;
    let mut spec = DeviceSpec::new("http-q", Lwm2mVersion::V1_1, Security::NoSec);
    spec.queue_mode = true;
    spec.lifetime = 120;
    spec.format = Some(ContentFormat::SenmlJson);
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;
    // The server's awake window (2 s in the tests) passes: the device counts as asleep.
    tests::harness::eventually("connectivity sleeping", || async {
        let d = server.store().get_device("http-q").await.unwrap()?;
        (d.connectivity == server::fleet::registry::Connectivity::Sleeping).then_some(())
    })
    .await;

    let (status, body) = post(
        &server,
        "/api/v1/devices/http-q/read",
        json!({"paths": ["/3/0/9"], "wait_ms": 0}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let poll = body["poll"].as_str().unwrap().to_owned();
    let (status, polled) = http(server.http_addr(), "GET", &poll, None).await;
    assert_eq!(status, 200, "{polled}");
    assert_eq!(polled["status"], "pending");
    assert_eq!(polled["endpoint"], "http-q");

    device.update();
    device.expect_updated().await;
    let finished = tests::harness::eventually("the queued read completes", || {
        let poll = poll.clone();
        let addr = server.http_addr();
        async move {
            let (_, polled) = http(addr, "GET", &poll, None).await;
            (polled["status"] == "completed").then_some(polled)
        }
    })
    .await;
    assert_eq!(
        finished["result"]["outcome"]["values"][0],
        json!({"path": "/3/0/9", "name": "Battery Level", "type": "Integer", "unit": "/100", "value": 87}),
        "{finished}"
    );

    let (status, body) = http(server.http_addr(), "GET", "/api/v1/operations/xyz", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(
        server.http_addr(),
        "GET",
        "/api/v1/operations/00000000000000ab",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// `POST /observe` with `paths`: one Observe-Composite, its notifications carrying every path,
/// listed and cancelled by number; and what the route refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_composite_through_the_api() {
    let server = TestServer::start().await;
    let new = device(&server, "http-obs-11", Lwm2mVersion::V1_1).await;
    let _old = device(&server, "http-obs-10", Lwm2mVersion::V1_0).await;
    let mut events = server.events();
    let base = "/api/v1/devices/http-obs-11";

    let (status, body) = post(
        &server,
        &format!("{base}/observe"),
        json!({"paths": ["/3/0/9", "/3/0/0"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let observation = body["observation"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(value_of(&body, "/3/0/9")["value"], 87);
    assert!(value_of(&body, "/3/0/0")["value"].is_string(), "{body}");

    // A change notifies both paths under the one number.
    new.set(Path::Resource(3, 0, 9), Value::Integer(42));
    let (paths, values) = tests::harness::next_event(&mut events, |e| match e {
        server::lwm2m::DeviceEvent::Notification {
            endpoint,
            observation: o,
            paths,
            values,
            initial: false,
            ..
        } if endpoint == "http-obs-11" && *o == observation => {
            Some((paths.clone(), values.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(paths, ["/3/0/9", "/3/0/0"]);
    let battery = values.iter().find(|v| v.path == "/3/0/9").unwrap();
    assert_eq!(serde_json::to_value(&battery.value).unwrap()["value"], 42);
    assert!(values.iter().any(|v| v.path == "/3/0/0"), "{values:?}");

    // Listed with both paths, cancelled by its number.
    let (status, listed) = http(
        server.http_addr(),
        "GET",
        &format!("{base}/observations"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed
            .to_string()
            .contains(r#""paths":["/3/0/9","/3/0/0"]"#),
        "{listed}"
    );
    cancel(&server, base, observation).await;

    for (body, why) in [
        (json!({}), "either"),
        (json!({"path": "/3/0/9", "paths": ["/3/0/0"]}), "either"),
        (json!({"paths": []}), "0 paths"),
        (json!({"paths": ["/3/x"]}), "/3/x"),
    ] {
        let (status, answer) =
            post(&server, "/api/v1/devices/http-obs-11/observe", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer.to_string().contains(why), "{body} → {answer}");
    }
    // An LwM2M 1.0 device has no Observe-Composite.
    let (status, answer) = post(
        &server,
        "/api/v1/devices/http-obs-10/observe",
        json!({"paths": ["/3/0/9", "/3/0/0"]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("1.0"), "{answer}");
}
