//! Remote diagnostics end to end: simulated meters (one LwM2M 1.0 TLV, one 1.1 SenML) register
//! with the running server over real UDP; `POST /devices/{ep}/diagnose` reads objects 3/4/5/6/7
//! (parallel reads for 1.0, one Read-Composite for 1.1), the rules find what is wrong, the run is
//! stored and comparable with the next one; a sleeping queue-mode meter leaves the run pending
//! until it wakes; an unregistered meter is diagnosed from its history; a fleet sweep counts
//! findings by rule.

#![allow(clippy::unwrap_used)]

use lwm2m_objects::{ContentFormat, Path, Value};
use lwm2m_proto::lwm2m::registration::Lwm2mVersion;
use serde_json::{Value as Json, json};
use tests::device::{DeviceSpec, Security, TestDevice};
use tests::harness::{TestServer, eventually};

const TOKEN: &str = "e2e-token-0123456789";

async fn call(server: &TestServer, method: &str, uri: &str, body: Option<Json>) -> (u16, Json) {
    tests::http::json(
        server.http_addr(),
        TOKEN,
        method,
        uri,
        body,
        std::time::Duration::from_secs(60),
    )
    .await
}

async fn meter(server: &TestServer, endpoint: &str, version: Lwm2mVersion) -> TestDevice {
    server.registered_nosec_meter(endpoint, version).await
}

fn path(text: &str) -> Path {
    text.parse().unwrap()
}

fn rules(run: &Json) -> Vec<String> {
    let mut rules: Vec<String> = run["diagnosis"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_troubled_meter_needs_a_site_visit_and_a_healthy_one_does_not() {
    let server = TestServer::start().await;
    let healthy = meter(&server, "diag-healthy", Lwm2mVersion::V1_1).await;
    let troubled = meter(&server, "diag-troubled", Lwm2mVersion::V1_0).await;
    troubled.set(path("/4/0/2"), Value::Integer(-116));
    troubled.set(path("/3/0/9"), Value::Integer(6));
    troubled.set(path("/3/0/11/0"), Value::Integer(1));

    let (status, run) = call(
        &server,
        "POST",
        "/api/v1/devices/diag-troubled/diagnose",
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["diagnosis"]["verdict"], "site_visit", "{run}");
    assert_eq!(
        rules(&run),
        ["error_code", "low_battery", "weak_signal"],
        "{run}"
    );
    let weak = run["diagnosis"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "weak_signal")
        .unwrap();
    assert_eq!(
        weak["evidence"][0],
        json!({"path": "/4/0/2", "value": "-116 dBm", "meaning": null})
    );
    assert!(weak["action"].as_str().unwrap().contains("antenna"));
    // Every diagnostic object was read (TLV, parallel reads) into the snapshot.
    let values = &run["snapshot"]["values"];
    for p in ["/3/0/0", "/4/0/2", "/5/0/3", "/6/0/0", "/7/0/2"] {
        assert!(values.get(p).is_some(), "{p} missing from {values}");
    }
    assert_eq!(run["diagnosis"]["unanswered"], json!({}));

    let (status, run) = call(
        &server,
        "POST",
        "/api/v1/devices/diag-healthy/diagnose",
        Some(json!({"wait_ms": 5000})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["diagnosis"]["verdict"], "healthy", "{run}");
    assert_eq!(
        run["snapshot"]["values"]["/3/0/0"]["value"], "Ferrite",
        "{run}"
    );

    // The battery drops; the next run says what changed, and the history has both with the
    // chart series oldest first.
    healthy.set(path("/3/0/9"), Value::Integer(15));
    let (_, second) = call(
        &server,
        "POST",
        "/api/v1/devices/diag-healthy/diagnose",
        None,
    )
    .await;
    assert_eq!(rules(&second), ["low_battery"], "{second}");
    let change = second["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/3/0/9")
        .unwrap_or_else(|| panic!("no battery change in {second}"));
    assert_eq!(change["delta"], -72.0);
    let (status, history) = call(
        &server,
        "GET",
        "/api/v1/devices/diag-healthy/diagnostics",
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["runs"].as_array().unwrap().len(), 2);
    assert_eq!(history["runs"][0]["id"], second["id"], "newest first");
    let batteries: Vec<i64> = history["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["battery_percent"].as_i64().unwrap())
        .collect();
    assert_eq!(batteries, [87, 15]);

    // Unknown device: 404; a bad body: 400.
    let (status, _) = call(&server, "POST", "/api/v1/devices/nobody/diagnose", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/devices/diag-healthy/diagnose",
        Some(json!({"wait_ms": "soon"})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_meter_is_diagnosed_when_it_wakes() {
    let server = TestServer::start().await;
    server.create_nosec_device("diag-q").await;
    let mut spec = DeviceSpec::new("diag-q", Lwm2mVersion::V1_1, Security::NoSec);
    spec.queue_mode = true;
    spec.lifetime = 120;
    spec.format = Some(ContentFormat::SenmlJson);
    let mut device = TestDevice::start(spec, server.coap_addr()).await;
    device.register_and_wait().await;
    eventually("connectivity sleeping", || async {
        let d = server.store().get_device("diag-q").await.unwrap()?;
        (d.connectivity == server::fleet::registry::Connectivity::Sleeping).then_some(())
    })
    .await;

    let (status, run) = call(
        &server,
        "POST",
        "/api/v1/devices/diag-q/diagnose",
        Some(json!({"wait_ms": 200})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "pending", "{run}");
    let poll = format!("/api/v1/diagnostics/runs/{}", run["id"].as_str().unwrap());

    device.update();
    device.expect_updated().await;
    let done = eventually("the pending diagnosis completes", || {
        let poll = poll.clone();
        let server = &server;
        async move {
            let (_, run) = call(server, "GET", &poll, None).await;
            (run["status"] == "completed").then_some(run)
        }
    })
    .await;
    assert_eq!(done["diagnosis"]["verdict"], "healthy", "{done}");
    assert_eq!(done["snapshot"]["values"]["/4/0/2"]["value"], -93, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_meter_is_diagnosed_from_its_history_and_a_sweep_counts_findings() {
    let server = TestServer::start().await;
    let _ok = meter(&server, "sweep-ok", Lwm2mVersion::V1_1).await;
    let weak = meter(&server, "sweep-weak", Lwm2mVersion::V1_0).await;
    weak.set(path("/4/0/2"), Value::Integer(-112));
    server.create_nosec_device("sweep-never").await;

    let (status, run) = call(
        &server,
        "POST",
        "/api/v1/devices/sweep-never/diagnose",
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "completed");
    assert!(
        run["error"].as_str().unwrap().contains("none of the reads"),
        "{run}"
    );
    assert!(run["diagnosis"]["unanswered"]["/"].is_string(), "{run}");

    let (status, sweep) = call(
        &server,
        "POST",
        "/api/v1/diagnostics/sweeps",
        Some(json!({"filter": {"q": "sweep-"}, "rate_per_sec": 50})),
    )
    .await;
    assert_eq!(status, 202, "{sweep}");
    // It knows from the start how many devices it is going to diagnose.
    assert_eq!(sweep["planned"], 3, "{sweep}");
    let uri = format!(
        "/api/v1/diagnostics/sweeps/{}",
        sweep["id"].as_str().unwrap()
    );
    let done = eventually("the sweep completes", || {
        let uri = uri.clone();
        let server = &server;
        async move {
            let (_, sweep) = call(server, "GET", &uri, None).await;
            (sweep["status"] == "completed").then_some(sweep)
        }
    })
    .await;
    assert_eq!(done["devices"], 3, "{done}");
    assert_eq!(done["completed"], 3, "{done}");
    assert_eq!(done["by_rule"]["weak_signal"], 1, "{done}");
    assert_eq!(done["by_verdict"]["site_visit"], 1, "{done}");

    let (status, results) = call(
        &server,
        "GET",
        &format!("{uri}/results?rule=weak_signal"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let endpoints: Vec<&str> = results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["sweep-weak"]);

    // A field-service-only sweep list works, and the rules are listed with their thresholds.
    let (status, rules) = call(&server, "GET", "/api/v1/diagnostics/rules", None).await;
    assert_eq!(status, 200);
    assert_eq!(rules["thresholds"]["rssi_weak_dbm"], -110);
    assert_eq!(rules["rules"].as_array().unwrap().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_an_operator_asked_for_are_audited_and_not_held_against_the_meter() {
    let server = TestServer::start().await;
    let mut asked = meter(&server, "reboot-asked", Lwm2mVersion::V1_0).await;
    let mut own = meter(&server, "reboot-own", Lwm2mVersion::V1_0).await;
    // Three restarts each: one meter because an operator executed Reboot, the other on its own
    // (a Register while still registered is a restart).
    for _ in 0..3 {
        let (status, done) = call(
            &server,
            "POST",
            "/api/v1/devices/reboot-asked/execute",
            Some(json!({"path": "/3/0/4"})),
        )
        .await;
        assert_eq!(status, 200, "{done}");
        asked.register();
        asked.expect_registered().await;
        own.register();
        own.expect_registered().await;
    }

    let (status, audit) = call(&server, "GET", "/api/v1/devices/reboot-asked/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    let executes: Vec<&Json> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device_execute")
        .collect();
    assert_eq!(executes.len(), 3, "{audit}");
    for entry in &executes {
        assert!(
            entry["reason"]
                .as_str()
                .unwrap()
                .starts_with("/3/0/4: done"),
            "{entry}"
        );
        assert!(entry["actor"].as_str().unwrap().contains(':'), "{entry}");
    }

    let (status, run) = call(&server, "POST", "/api/v1/devices/reboot-own/diagnose", None).await;
    assert_eq!(status, 200, "{run}");
    assert!(
        rules(&run).contains(&"frequent_reboots".to_owned()),
        "{run}"
    );
    let (status, run) = call(
        &server,
        "POST",
        "/api/v1/devices/reboot-asked/diagnose",
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert!(
        !rules(&run).contains(&"frequent_reboots".to_owned()),
        "{run}"
    );
}

async fn sweep_state(server: &TestServer, id: &str) -> Json {
    let (status, sweep) = call(
        server,
        "GET",
        &format!("/api/v1/diagnostics/sweeps/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{sweep}");
    sweep
}

async fn start_sweep(server: &TestServer, q: &str, rate: f64) -> String {
    let (status, sweep) = call(
        server,
        "POST",
        "/api/v1/diagnostics/sweeps",
        Some(json!({"filter": {"q": q}, "rate_per_sec": rate})),
    )
    .await;
    assert_eq!(status, 202, "{sweep}");
    sweep["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_resumes_after_a_restart_and_diagnoses_each_meter_once() {
    // Eight meters on a real SQLite file; two of them (resume-1 and resume-2) answer nothing
    // (unplugged), so their reads are still waiting for retransmissions when the server stops.
    let mut server = TestServer::start().await;
    let mut meters = Vec::new();
    for n in 0..8 {
        meters.push(meter(&server, &format!("resume-{n}"), Lwm2mVersion::V1_0).await);
    }
    let silent = |n: usize| n == 1 || n == 2;
    for (n, meter) in meters.iter().enumerate() {
        meter.unplug(silent(n));
    }
    let endpoints: Vec<String> = (0..8).map(|n| format!("resume-{n}")).collect();

    // One device a second: stop once three have been reached.
    let id = start_sweep(&server, "resume-", 1.0).await;
    eventually("the sweep reaches three meters", || {
        let (server, id) = (&server, &id);
        async move { (sweep_state(server, id).await["devices"].as_u64()? >= 3).then_some(()) }
    })
    .await;
    server.restart().await;
    let after_restart = sweep_state(&server, &id).await;
    assert_eq!(after_restart["status"], "running", "{after_restart}");
    assert!(
        after_restart["devices"].as_u64().unwrap() < 8,
        "stopped mid-sweep: {after_restart}"
    );

    // Five more meters at one a second, and the silent ones' reads time out again.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let sweep = sweep_state(&server, &id).await;
        if sweep["status"] != "running" {
            break sweep;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resumed sweep did not finish: {sweep}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (
            &done["devices"],
            &done["completed"],
            &done["pending"],
            &done["failed"]
        ),
        (&json!(8), &json!(8), &json!(0), &json!(0)),
        "{done}"
    );
    let (status, results) = call(
        &server,
        "GET",
        &format!("/api/v1/diagnostics/sweeps/{id}/results"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let reached: Vec<&str> = results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(reached, endpoints, "each meter once: {results}");
    // And nowhere else: each meter's history holds exactly one run of this sweep, with what
    // it answered (the silent ones: nothing).
    for (n, endpoint) in endpoints.iter().enumerate() {
        let (status, history) = call(
            &server,
            "GET",
            &format!("/api/v1/devices/{endpoint}/diagnostics"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{history}");
        let runs: Vec<&Json> = history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["sweep_id"] == json!(id))
            .collect();
        assert_eq!(runs.len(), 1, "{endpoint}: {history}");
        assert_eq!(runs[0]["status"], "completed", "{endpoint}: {history}");
        if !silent(n) {
            assert_eq!(
                runs[0]["snapshot"]["values"]["/3/0/0"]["value"], "Ferrite",
                "{endpoint}: {history}"
            );
        } else {
            assert!(runs[0]["snapshot"]["values"].get("/3/0/0").is_none());
        }
    }

    // A cancelled sweep stays cancelled across a restart: not resumed, no more meters.
    let id = start_sweep(&server, "resume-", 0.5).await;
    eventually("the second sweep reaches a meter", || {
        let (server, id) = (&server, &id);
        async move { (sweep_state(server, id).await["devices"].as_u64()? >= 1).then_some(()) }
    })
    .await;
    let (status, cancelled) = call(
        &server,
        "POST",
        &format!("/api/v1/diagnostics/sweeps/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "interrupted", "{cancelled}");
    // At most one more start can slip in before the sweep notices (it looks every second).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let reached = sweep_state(&server, &id).await["devices"].clone();
    assert!(reached.as_u64().unwrap() < 8, "{reached}");
    server.restart().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let later = sweep_state(&server, &id).await;
    assert_eq!(later["status"], "interrupted", "{later}");
    assert_eq!(later["devices"], reached, "{later}");
    let (status, missing) = call(
        &server,
        "POST",
        "/api/v1/diagnostics/sweeps/no-such-sweep/cancel",
        None,
    )
    .await;
    assert_eq!(status, 404, "{missing}");
}
