//! The device API in-process: creation with the key shown once, filters and pagination, edits,
//! lifecycle actions (409 for illegal ones, admin for decommissioning), audit actors, import
//! report and export without keys.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::super::test_util::*;
use crate::accounts::Role;
use crate::fleet::registry::Connectivity;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

async fn create(app: &TestApp, auth: Auth<'_>, body: Value) -> (StatusCode, Value) {
    app.send(Method::POST, "/api/v1/devices", auth, body).await
}

/// Makes a device `active`, as its first registration would.
async fn activate(app: &TestApp, endpoint: &str) {
    app.state
        .store
        .record_registration(endpoint, Connectivity::Online, app.now())
        .await
        .unwrap();
}

async fn lifecycle(
    app: &TestApp,
    auth: Auth<'_>,
    endpoint: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.send(
        Method::POST,
        &format!("/api/v1/devices/{endpoint}/lifecycle"),
        auth,
        body,
    )
    .await
}

#[tokio::test]
async fn a_generated_key_is_answered_once_and_never_again() {
    let app = TestApp::new().await;
    let manager = app.token(Role::FleetManager).await;
    let (status, created) = create(
        &app,
        Auth::Bearer(&manager),
        json!({"endpoint": "meter-1", "model": "EM-100", "tags": {"region": "north"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["psk_key_hex"].as_str().unwrap().to_owned();
    assert!(
        key.len() >= 32 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{key}"
    );
    let device = &created["device"];
    assert_eq!(device["endpoint"], "meter-1");
    assert_eq!(device["state"], "registered");
    assert_eq!(device["security_mode"], "psk");
    assert_eq!(device["serial"], "unknown", "absent serial");
    assert_eq!(device["registration"], Value::Null);
    assert!(device["psk_identity"].as_str().unwrap().starts_with("fe-"));

    // Nowhere afterwards: not in the device, the list, the audit trail or the export.
    let reader = app.token(Role::FieldService).await;
    for uri in [
        "/api/v1/devices/meter-1",
        "/api/v1/devices",
        "/api/v1/devices/meter-1/audit",
        "/api/v1/devices/export",
    ] {
        let response = app
            .request(Method::GET, uri, Auth::Bearer(&reader), None, Vec::new())
            .await;
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        assert!(
            !response.text().to_lowercase().contains(&key),
            "{uri} shows the key"
        );
        assert!(response.text().contains("meter-1"), "{uri}");
    }

    // A key the operator supplied is not echoed back.
    let (status, created) = create(
        &app,
        Auth::Bearer(&manager),
        json!({"endpoint": "meter-2", "psk_identity": "id-2", "psk_key_hex": KEY_HEX,
               "serial": "SN2", "model": "EM-100"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["psk_key_hex"], Value::Null);
    assert_eq!(created["device"]["psk_identity"], "id-2");
}

#[tokio::test]
async fn creation_errors_are_clear() {
    let app = TestApp::new().await;
    let auth = Auth::Bearer(TOKEN);
    let (status, _) = create(&app, auth, json!({"endpoint": "meter-1"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = create(&app, auth, json!({"endpoint": "meter-1"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "duplicate");
    let (status, body) = create(&app, auth, json!({"endpoint": "meter 2"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("endpoint"),
        "{body}"
    );
    let (status, body) = create(
        &app,
        auth,
        json!({"endpoint": "meter-3", "security_mode": "nosec", "psk_key_hex": KEY_HEX}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let secret_looking = "zz0102030405060708090a0b0c0d0e0f";
    let (status, body) = create(
        &app,
        auth,
        json!({"endpoint": "meter-4", "psk_key_hex": secret_looking}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        !body.to_string().contains(secret_looking),
        "the key is not echoed: {body}"
    );
    let (status, body) = create(&app, auth, json!({"endpoint": 5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = create(
        &app,
        auth,
        json!({"endpoint": "meter-5", "security_mode": "nosec"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn lists_filter_and_page() {
    let app = TestApp::new().await;
    let auth = Auth::Bearer(TOKEN);
    for (n, region, model) in [
        (1, "north", "EM-100"),
        (2, "north", "EM-200"),
        (3, "south", "EM-100"),
        (4, "north", "EM-100"),
        (5, "north", "EM-100"),
    ] {
        let body = json!({"endpoint": format!("meter-{n}"), "serial": format!("SN-{n}"),
                          "model": model, "tags": {"region": region}});
        assert_eq!(create(&app, auth, body).await.0, StatusCode::CREATED);
    }
    activate(&app, "meter-4").await;

    let endpoints = |page: &Value| -> Vec<String> {
        page["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["endpoint"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = app
        .get(
            "/api/v1/devices?model=EM-100&tag=region:north&limit=2",
            auth,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(endpoints(&page), ["meter-1", "meter-4"]);
    assert_eq!(page["next_after"], "meter-4");
    let (_, page) = app
        .get(
            "/api/v1/devices?model=EM-100&tag=region:north&limit=2&after=meter-4",
            auth,
        )
        .await;
    assert_eq!(endpoints(&page), ["meter-5"]);
    assert_eq!(page["next_after"], Value::Null);

    let (_, page) = app.get("/api/v1/devices?state=active", auth).await;
    assert_eq!(endpoints(&page), ["meter-4"]);
    let (_, page) = app.get("/api/v1/devices?connectivity=online", auth).await;
    assert_eq!(endpoints(&page), ["meter-4"]);
    let (_, page) = app.get("/api/v1/devices?q=sn-3", auth).await;
    assert_eq!(
        endpoints(&page),
        ["meter-3"],
        "q searches serials, case-insensitively"
    );
    let (_, page) = app
        .get("/api/v1/devices?tag=region:north&tag=region:south", auth)
        .await;
    assert!(endpoints(&page).is_empty(), "every tag must match");

    for bad in [
        "state=sleepy",
        "connectivity=maybe",
        "tag=region",
        "limit=0",
        "limit=1001",
        "modle=EM-100",
    ] {
        let (status, body) = app.get(&format!("/api/v1/devices?{bad}"), auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
    }
    let (status, _) = app.get("/api/v1/devices/meter-9", auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn edits_replace_fields_and_are_audited_with_the_actor() {
    let app = TestApp::new().await;
    app.user("alice", Role::FleetManager).await;
    let login = app.login("alice", PASSWORD).await;
    let alice = Auth::Cookie {
        session: &login.session,
        csrf: Some(&login.csrf),
    };
    let body = json!({"endpoint": "meter-1", "customer": "ACME-7", "tags": {"a": "1"}});
    assert_eq!(create(&app, alice, body).await.0, StatusCode::CREATED);
    let (status, device) = app
        .send(
            Method::PATCH,
            "/api/v1/devices/meter-1",
            alice,
            json!({"model": "EM-300", "customer": null, "tags": {"feeder": "F17"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["model"], "EM-300");
    assert_eq!(device["customer"], Value::Null);
    assert_eq!(device["tags"], json!({"feeder": "F17"}));
    let (status, device) = app
        .send(
            Method::PATCH,
            "/api/v1/devices/meter-1",
            alice,
            json!({"serial": "SN-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(device["model"], "EM-300", "left-out fields stay");
    let (status, _) = app
        .send(
            Method::PATCH,
            "/api/v1/devices/meter-9",
            alice,
            json!({"serial": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, audit) = app
        .get("/api/v1/devices/meter-1/audit", Auth::Bearer(TOKEN))
        .await;
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("updated".to_owned(), "user:alice".to_owned()),
            ("updated".to_owned(), "user:alice".to_owned()),
            ("created".to_owned(), "user:alice".to_owned()),
        ]
    );
}

#[tokio::test]
async fn lifecycle_actions_their_roles_and_the_409() {
    let app = TestApp::new().await;
    let manager = app.token(Role::FleetManager).await;
    let admin = app.token(Role::Admin).await;
    let m = Auth::Bearer(&manager);
    assert_eq!(
        create(&app, m, json!({"endpoint": "meter-1"})).await.0,
        StatusCode::CREATED
    );

    // Registered: an operator cannot suspend it, nor make it active.
    let (status, body) = lifecycle(
        &app,
        m,
        "meter-1",
        json!({"to": "suspended", "reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "illegal_transition");
    assert_eq!(body["from"], "registered");
    assert_eq!(body["to"], "suspended");
    assert!(body["why"].as_str().unwrap().contains("active"), "{body}");
    let (status, body) =
        lifecycle(&app, m, "meter-1", json!({"to": "active", "reason": "x"})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "first registration is the device's, not ours"
    );
    assert!(
        body["why"].as_str().unwrap().contains("first registration"),
        "{body}"
    );

    activate(&app, "meter-1").await;
    let (status, body) = lifecycle(&app, m, "meter-1", json!({"to": "suspended"})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a reason is required: {body}"
    );
    let (status, body) = lifecycle(
        &app,
        m,
        "meter-1",
        json!({"to": "suspended", "reason": " "}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, device) = lifecycle(
        &app,
        m,
        "meter-1",
        json!({"to": "suspended", "reason": "tamper alarm"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["state"], "suspended");
    let (status, device) = lifecycle(
        &app,
        m,
        "meter-1",
        json!({"to": "active", "reason": "inspected"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(device["state"], "active");
    let (status, body) =
        lifecycle(&app, m, "meter-1", json!({"to": "updating", "reason": "x"})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "firmware is the campaigns' business: {body}"
    );

    // Decommissioning is the admin's.
    let gone = json!({"to": "decommissioned", "reason": "meter replaced"});
    let (status, body) = lifecycle(&app, m, "meter-1", gone.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    let (status, device) = lifecycle(&app, Auth::Bearer(&admin), "meter-1", gone.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(device["state"], "decommissioned");
    assert_eq!(device["credentials_revoked"], true);
    let (status, body) = lifecycle(
        &app,
        Auth::Bearer(&admin),
        "meter-1",
        json!({"to": "suspended", "reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["from"], "decommissioned");
    assert!(body["why"].as_str().unwrap().contains("terminal"));

    let (status, _) = lifecycle(
        &app,
        m,
        "meter-9",
        json!({"to": "suspended", "reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = lifecycle(&app, m, "meter-1", json!({"to": "asleep", "reason": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The audit trail names the tokens and the reasons.
    let (_, audit) = app.get("/api/v1/audit?limit=3", Auth::Bearer(&admin)).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["action"], "decommission");
    assert_eq!(entries[0]["reason"], "meter replaced");
    assert_eq!(entries[0]["from"], "active");
    assert_eq!(entries[0]["to"], "decommissioned");
    assert!(
        entries[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:t-")
    );
    assert_eq!(entries[1]["action"], "resume");
    assert_eq!(entries[2]["action"], "suspend");
    assert_eq!(entries[2]["reason"], "tamper alarm");
    let older = audit["next_before"].as_i64().unwrap();
    let (_, rest) = app
        .get(
            &format!("/api/v1/audit?before={older}"),
            Auth::Bearer(&admin),
        )
        .await;
    let actions: Vec<&str> = rest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["first_registration", "created"]);
    assert_eq!(rest["entries"][0]["actor"], "system:registration");
}

#[tokio::test]
async fn the_static_token_is_audited_as_static_admin() {
    let app = TestApp::new().await;
    assert_eq!(
        create(&app, Auth::Bearer(TOKEN), json!({"endpoint": "meter-1"}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (_, audit) = app
        .get("/api/v1/devices/meter-1/audit", Auth::Bearer(TOKEN))
        .await;
    assert_eq!(audit["entries"][0]["actor"], "token:static-admin");
}

const IMPORT: &str = "endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n\
meter-1,SN1,EM-100,region=north,,,ACME\n\
meter-2,SN2,EM-100,region=south,id-2,000102030405060708090a0b0c0d0e0f,\n\
meter 3,SN3,EM-100,,,,\n\
meter-1,SN4,EM-100,,,,\n\
meter-5,,EM-100,,,,\n";

#[tokio::test]
async fn import_reports_every_row_and_export_has_no_keys() {
    let app = TestApp::new().await;
    let manager = app.token(Role::FleetManager).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/devices/import",
            Auth::Bearer(&manager),
            Some("text/csv"),
            IMPORT.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let report = response.json();
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"], 3);
    assert_eq!(report["not_attempted"], 0);
    let rows = report["rows"].as_array().unwrap();
    let statuses: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            (2, "accepted"),
            (3, "accepted"),
            (4, "rejected"),
            (5, "rejected"),
            (6, "rejected")
        ]
    );
    let generated = rows[0]["generated_psk_key_hex"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(generated.len() >= 32);
    assert_eq!(
        rows[1]["generated_psk_key_hex"],
        Value::Null,
        "the file had a key"
    );
    assert_eq!(rows[1]["psk_identity"], "id-2");
    assert!(
        rows[3]["reason"].as_str().unwrap().contains("line 2"),
        "{}",
        rows[3]
    );
    assert!(
        rows[4]["reason"].as_str().unwrap().contains("serial"),
        "{}",
        rows[4]
    );

    let reader = app.token(Role::FieldService).await;
    let export = app
        .request(
            Method::GET,
            "/api/v1/devices/export?tag=region:north",
            Auth::Bearer(&reader),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(
        export.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let csv = export.text();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("endpoint,serial,model,tags,psk_identity"),
        "{header}"
    );
    assert!(!header.contains("key"), "{header}");
    assert_eq!(lines.count(), 1, "only meter-1 is in the north: {csv}");
    let everything = app
        .request(
            Method::GET,
            "/api/v1/devices/export",
            Auth::Bearer(&reader),
            None,
            Vec::new(),
        )
        .await
        .text();
    assert!(everything.contains("meter-2"));
    assert!(!everything.contains(&generated));
    assert!(!everything.contains("000102030405060708090a0b0c0d0e0f"));

    // A file without the required columns is refused whole.
    let response = app
        .request(
            Method::POST,
            "/api/v1/devices/import",
            Auth::Bearer(&manager),
            Some("text/csv"),
            b"name,serial\nx,y\n".to_vec(),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.json()["message"]
            .as_str()
            .unwrap()
            .contains("endpoint")
    );
}

#[tokio::test]
async fn the_import_route_alone_accepts_large_bodies() {
    let app = TestApp::new().await;
    // One row with a 3 MB column that the import ignores: over axum's 2 MB default.
    let filler = "x".repeat(3 * 1024 * 1024);
    let csv = format!("endpoint,serial,model,notes\nmeter-1,SN1,EM-100,{filler}\n");
    let response = app
        .request(
            Method::POST,
            "/api/v1/devices/import",
            Auth::Bearer(TOKEN),
            Some("text/csv"),
            csv.into_bytes(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["accepted"], 1);
    assert_eq!(response.json()["ignored_columns"], json!(["notes"]));

    let too_big = vec![b'a'; super::super::fleet_io::MAX_IMPORT_BYTES + 1];
    let response = app
        .request(
            Method::POST,
            "/api/v1/devices/import",
            Auth::Bearer(TOKEN),
            Some("text/csv"),
            too_big,
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Other routes keep the default limit.
    let big_json = json!({"endpoint": "meter-2", "model": "x".repeat(3 * 1024 * 1024)});
    let (status, _) = create(&app, Auth::Bearer(TOKEN), big_json).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_summary_counts_the_filtered_fleet_in_the_console_shape() {
    let app = TestApp::new().await;
    let reader = app.token(Role::FieldService).await;
    let (status, empty) = app
        .get("/api/v1/devices/summary", Auth::Bearer(&reader))
        .await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(
        empty,
        json!({
            "total": 0,
            "by_state": {"registered": 0, "provisioned": 0, "active": 0, "suspended": 0,
                         "updating": 0, "decommissioned": 0},
            "by_connectivity": {"online": 0, "sleeping": 0, "offline": 0}
        })
    );
    for (endpoint, model, region) in [
        ("meter-1", "EM-100", "north"),
        ("meter-2", "EM-100", "south"),
        ("meter-3", "GM-10", "north"),
    ] {
        let (status, body) = create(
            &app,
            Auth::Bearer(TOKEN),
            json!({"endpoint": endpoint, "model": model, "tags": {"region": region}}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    activate(&app, "meter-1").await;
    activate(&app, "meter-3").await;
    let (status, _) = lifecycle(
        &app,
        Auth::Bearer(TOKEN),
        "meter-3",
        json!({"to": "suspended", "reason": "tamper alarm"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (_, all) = app
        .get("/api/v1/devices/summary", Auth::Bearer(&reader))
        .await;
    assert_eq!(all["total"], 3);
    assert_eq!(all["by_state"]["registered"], 1);
    assert_eq!(all["by_state"]["active"], 1);
    assert_eq!(all["by_state"]["suspended"], 1);
    assert_eq!(all["by_connectivity"]["online"], 2);
    assert_eq!(all["by_connectivity"]["offline"], 1);

    // The list's filters; page parameters are accepted and ignored.
    for (query, total) in [
        ("?tag=region:north", 2),
        ("?tag=region:north&model=EM-100", 1),
        ("?state=suspended", 1),
        ("?connectivity=offline", 1),
        ("?q=METER-", 3),
        ("?q=gm-1", 1),
        ("?q=2", 1),
        ("?limit=1&after=meter-1", 3),
    ] {
        let uri = format!("/api/v1/devices/summary{query}");
        let (status, body) = app.get(&uri, Auth::Bearer(&reader)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["total"], total, "{uri}: {body}");
    }
    let (status, body) = app
        .get(
            "/api/v1/devices/summary?state=sleepy",
            Auth::Bearer(&reader),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // `summary` is a route, so no device may take it as its name.
    let (status, body) = create(&app, Auth::Bearer(TOKEN), json!({"endpoint": "summary"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_export_streams_every_device_with_formulas_neutralised() {
    let app = TestApp::new().await;
    let mut csv = String::from("endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n");
    for i in 0..2100 {
        csv.push_str(&format!("m-{i:05},=S{i},EM-100,,,,@c{i}\n"));
    }
    let response = app
        .request(
            Method::POST,
            "/api/v1/devices/import",
            Auth::Bearer(TOKEN),
            Some("text/csv"),
            csv.into_bytes(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["accepted"], 2100);

    let reader = app.token(Role::FieldService).await;
    let export = app
        .request(
            Method::GET,
            "/api/v1/devices/export",
            Auth::Bearer(&reader),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    let text = export.text();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2100, "three chunks, one header");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row[0], format!("m-{i:05}"));
        assert_eq!(&row[1], format!("'=S{i}"), "a formula is neutralised");
        assert_eq!(&row[5], format!("'@c{i}"));
    }
    // A bad filter is still a 400 (checked before the stream starts).
    let response = app
        .request(
            Method::GET,
            "/api/v1/devices/export?state=nope",
            Auth::Bearer(TOKEN),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}
