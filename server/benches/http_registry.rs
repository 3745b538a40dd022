//! Fleet registry benchmark through real HTTP: the axum app served on a loopback TcpListener,
//! requests from hyper's client, with 100,000 devices on SQLite and on PostgreSQL (when
//! `FERRITE_TEST_POSTGRES_URL` is set, see scripts/pg.sh). Measures the CSV import through
//! `POST /devices/import`, lifecycle transitions per second through `POST …/lifecycle`, the
//! device list (first page, deep keyset page, filters, text search; p50/p99 over 200+ requests
//! each, body fully read), the summary route and the streamed CSV export.
//!
//! `cargo bench -p server --bench http_registry` runs it in full. Without `--bench` (cargo test)
//! it runs a 2,000-device smoke version with 20 requests per query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use server::config::Config;
use server::fleet::{Connectivity, ConnectivityUpdate, ServerKey};
use server::http::{AppState, app};
use server::store::Store;
use server::store::scratch::{POSTGRES_URL_VAR, ScratchPostgres};

const TOKEN: &str = "http-bench-token-0123456789abcdef";

struct Scale {
    devices: usize,
    queries: usize,
    transitions: usize,
}

const MODELS: [(&str, u32); 5] = [
    ("EM-100", 50),
    ("EM-200", 30),
    ("GM-10", 10),
    ("WM-5", 9),
    ("EM-300", 1),
];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const FEEDERS: usize = 200;
const FIRMWARES: usize = 20;

/// xorshift64*: the same fleet and queries on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn endpoint(i: usize) -> String {
    format!("meter-{i:07}")
}

fn serial(i: usize) -> String {
    format!("SN{:09}", i * 13)
}

fn model_of(i: usize) -> &'static str {
    let bucket = (i * 7919 % 100) as u32;
    let mut acc = 0;
    for (model, share) in MODELS {
        acc += share;
        if bucket < acc {
            return model;
        }
    }
    MODELS[0].0
}

/// Every other row brings its own identity and key, the rest get generated ones.
fn fleet_csv(devices: usize) -> String {
    let mut csv = String::from("endpoint,serial,model,tags,psk_identity,psk_key_hex,customer\n");
    for i in 0..devices {
        let (identity, key) = if i % 2 == 0 {
            (
                format!("id-{i:07}"),
                format!("{:032x}", (i as u128) * 0x9e37_79b9_7f4a_7c15 + 1),
            )
        } else {
            (String::new(), String::new())
        };
        csv.push_str(&format!(
            "{},{},{},region={};feeder=F{},{identity},{key},Customer {}\n",
            endpoint(i),
            serial(i),
            model_of(i),
            REGIONS[i % REGIONS.len()],
            i % FEEDERS,
            i / 3
        ));
    }
    csv
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|e| panic!("request {path}: {e}"));
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{path}: body: {e}"))
            .to_bytes();
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Bytes) {
        self.call(Method::GET, path, "application/json", Vec::new())
            .await
    }
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("JSON: {e}"))
}

/// Sends `count` GETs (one at a time, a fresh random input each) and prints p50/p99 of the time
/// to the last body byte, and the mean number of rows in `devices` (or the summary's total).
async fn measure(
    http: &Http,
    label: &str,
    count: usize,
    rng: &mut Rng,
    uri: impl Fn(u64) -> String,
) {
    let mut times = Vec::with_capacity(count);
    let mut rows = 0usize;
    for _ in 0..count {
        let uri = uri(rng.next());
        let start = Instant::now();
        let (status, body) = http.get(&uri).await;
        times.push(start.elapsed());
        assert_eq!(
            status,
            StatusCode::OK,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
        let value = json(&body);
        rows += match value.get("devices") {
            Some(devices) => devices.as_array().map_or(0, Vec::len),
            None => value["total"].as_u64().unwrap_or(0) as usize,
        };
    }
    times.sort();
    println!(
        "  {label:<46} p50 {:>8.3} ms  p99 {:>8.3} ms  ({:.1} rows)",
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99)),
        rows as f64 / count.max(1) as f64
    );
}

async fn serve(store: Store) -> (Http, tokio::task::JoinHandle<()>) {
    let config = Config {
        api_token: Some(TOKEN.to_owned()),
        ..Config::default()
    };
    let state = AppState::new(Arc::new(config), store, None);
    let router = app(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    let server = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, service).await {
            eprintln!("server stopped: {error}");
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    (
        Http {
            client,
            base: format!("http://{address}/api/v1"),
        },
        server,
    )
}

async fn transitions(http: &Http, endpoints: Vec<String>, to: &str, tasks: usize) -> f64 {
    let body = format!(r#"{{"to": "{to}", "reason": "benchmark"}}"#);
    let endpoints = Arc::new(endpoints);
    let http = Arc::new(Http {
        client: http.client.clone(),
        base: http.base.clone(),
    });
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..tasks {
        let (http, endpoints, body) = (http.clone(), endpoints.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            for endpoint in endpoints.iter().skip(worker).step_by(tasks) {
                let path = format!("/devices/{endpoint}/lifecycle");
                let (status, answer) = http
                    .call(
                        Method::POST,
                        &path,
                        "application/json",
                        body.clone().into_bytes(),
                    )
                    .await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{path}: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap_or_else(|e| panic!("{e}"));
    }
    endpoints.len() as f64 / start.elapsed().as_secs_f64()
}

async fn run(backend: &str, store: Store, scale: &Scale) {
    println!(
        "\n== {backend}: {} devices through HTTP (load average {})",
        scale.devices,
        load_average()
    );
    let (http, server) = serve(store.clone()).await;

    let csv = fleet_csv(scale.devices);
    let start = Instant::now();
    let (status, report) = http
        .call(
            Method::POST,
            "/devices/import",
            "text/csv",
            csv.into_bytes(),
        )
        .await;
    let elapsed = start.elapsed();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&report)
    );
    let report = json(&report);
    assert_eq!(report["accepted"].as_u64(), Some(scale.devices as u64));
    println!(
        "  CSV import of {} rows (POST /devices/import, report included): {:.2} s ({:.0} rows/s)",
        scale.devices,
        elapsed.as_secs_f64(),
        scale.devices as f64 / elapsed.as_secs_f64()
    );

    // Fleet state for the filters: the first 2n devices register (active), every third of them
    // is online, 1 % report a firmware version.
    let n = scale.transitions;
    let now = chrono::Utc::now();
    for i in 0..2 * n {
        store
            .record_registration(&endpoint(i), Connectivity::Offline, now)
            .await
            .unwrap_or_else(|e| panic!("registration: {e}"));
    }
    let online: Vec<ConnectivityUpdate> = (0..2 * n)
        .step_by(3)
        .map(|i| ConnectivityUpdate {
            endpoint: endpoint(i),
            connectivity: Connectivity::Online,
            last_seen: Some(now),
        })
        .collect();
    for chunk in online.chunks(500) {
        store
            .set_connectivity_many(chunk)
            .await
            .unwrap_or_else(|e| panic!("connectivity: {e}"));
    }
    for i in (0..scale.devices).step_by(100) {
        store
            .set_firmware_version(&endpoint(i), &format!("1.{}.0", (i / 100) % FIRMWARES))
            .await
            .unwrap_or_else(|e| panic!("firmware: {e}"));
    }

    // Operator transitions through the lifecycle route (each audited with its reason).
    let first: Vec<String> = (0..n).map(endpoint).collect();
    let second: Vec<String> = (n..2 * n).map(endpoint).collect();
    let suspend_1 = transitions(&http, first.clone(), "suspended", 1).await;
    let suspend_4 = transitions(&http, second.clone(), "suspended", 4).await;
    let resume_4 = transitions(&http, second, "active", 4).await;
    println!(
        "  lifecycle transitions (POST …/lifecycle, audited): {suspend_1:.0}/s sequential, \
         {suspend_4:.0}/s suspensions from 4 clients, {resume_4:.0}/s resumptions from 4 clients"
    );

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let q = scale.queries;
    let devices = scale.devices;
    println!("  GET /devices?limit=50 and /devices/summary, {q} requests each (sequential):");
    measure(&http, "first page, no filter", q, &mut rng, |_| {
        "/devices?limit=50".into()
    })
    .await;
    measure(
        &http,
        "deep keyset page (random cursor)",
        q,
        &mut rng,
        |s| format!("/devices?limit=50&after={}", endpoint(s as usize % devices)),
    )
    .await;
    measure(&http, "state=suspended", q, &mut rng, |_| {
        "/devices?limit=50&state=suspended".into()
    })
    .await;
    measure(&http, "state=registered, random cursor", q, &mut rng, |s| {
        format!(
            "/devices?limit=50&state=registered&after={}",
            endpoint(s as usize % devices)
        )
    })
    .await;
    measure(
        &http,
        "model=EM-300 (1 %), random cursor",
        q,
        &mut rng,
        |s| {
            format!(
                "/devices?limit=50&model=EM-300&after={}",
                endpoint(s as usize % devices)
            )
        },
    )
    .await;
    measure(
        &http,
        "model=EM-100 (50 %), random cursor",
        q,
        &mut rng,
        |s| {
            format!(
                "/devices?limit=50&model=EM-100&after={}",
                endpoint(s as usize % devices)
            )
        },
    )
    .await;
    measure(&http, "tag feeder=F<random> (0.5 %)", q, &mut rng, |s| {
        format!("/devices?limit=50&tag=feeder:F{}", s as usize % FEEDERS)
    })
    .await;
    measure(
        &http,
        "tag region=<random> (25 %), random cursor",
        q,
        &mut rng,
        |s| {
            format!(
                "/devices?limit=50&tag=region:{}&after={}",
                REGIONS[s as usize % 4],
                endpoint((s >> 8) as usize % devices)
            )
        },
    )
    .await;
    measure(&http, "tag region + model=EM-300", q, &mut rng, |s| {
        format!(
            "/devices?limit=50&tag=region:{}&model=EM-300",
            REGIONS[s as usize % 4]
        )
    })
    .await;
    measure(&http, "tag region + model=EM-100", q, &mut rng, |s| {
        format!(
            "/devices?limit=50&tag=region:{}&model=EM-100",
            REGIONS[s as usize % 4]
        )
    })
    .await;
    measure(&http, "firmware=1.<random>.0 (0.05 %)", q, &mut rng, |s| {
        format!("/devices?limit=50&firmware=1.{}.0", s as usize % FIRMWARES)
    })
    .await;
    measure(&http, "connectivity=online", q, &mut rng, |_| {
        "/devices?limit=50&connectivity=online".into()
    })
    .await;
    measure(&http, "q=<endpoint> (one hit)", q, &mut rng, |s| {
        format!("/devices?limit=50&q={}", endpoint(s as usize % devices))
    })
    .await;
    measure(
        &http,
        "q=<serial, lower case> (one hit)",
        q,
        &mut rng,
        |s| {
            format!(
                "/devices?limit=50&q={}",
                serial(s as usize % devices).to_lowercase()
            )
        },
    )
    .await;
    measure(&http, "q=customer%20<n>0 (~30 hits)", q, &mut rng, |s| {
        format!(
            "/devices?limit=50&q=customer%20{}0",
            s as usize % (devices / 30).max(1)
        )
    })
    .await;
    measure(&http, "q=meter (every device)", q, &mut rng, |_| {
        "/devices?limit=50&q=meter".into()
    })
    .await;
    measure(
        &http,
        "q=zq (2 chars, no hit: scan fallback)",
        q,
        &mut rng,
        |_| "/devices?limit=50&q=zq".into(),
    )
    .await;
    measure(&http, "summary, no filter", q, &mut rng, |_| {
        "/devices/summary".into()
    })
    .await;
    measure(&http, "summary, model=EM-200", q, &mut rng, |_| {
        "/devices/summary?model=EM-200".into()
    })
    .await;
    measure(
        &http,
        "summary, tag region + model=EM-100",
        q,
        &mut rng,
        |s| {
            format!(
                "/devices/summary?tag=region:{}&model=EM-100",
                REGIONS[s as usize % 4]
            )
        },
    )
    .await;
    measure(&http, "summary, q=<serial> (one hit)", q, &mut rng, |s| {
        format!("/devices/summary?q={}", serial(s as usize % devices))
    })
    .await;

    let start = Instant::now();
    let (status, csv) = http.get("/devices/export").await;
    assert_eq!(status, StatusCode::OK);
    let lines = csv.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, devices + 1, "header + every device");
    println!(
        "  CSV export (streamed): {:.2} s for {} devices, {:.1} MB",
        start.elapsed().as_secs_f64(),
        devices,
        csv.len() as f64 / 1e6
    );
    server.abort();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full {
        Scale {
            devices: 100_000,
            queries: 200,
            transitions: 1000,
        }
    } else {
        Scale {
            devices: 2_000,
            queries: 20,
            transitions: 50,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let key = || ServerKey::from_bytes([3; 32]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url, key())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        run("SQLite", store.clone(), &scale).await;
        store.close().await;

        match std::env::var(POSTGRES_URL_VAR) {
            Ok(admin) if !admin.is_empty() => {
                let db = ScratchPostgres::create(&admin, "ferrite_http_bench")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let store = Store::connect(db.url(), key())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                run("PostgreSQL", store.clone(), &scale).await;
                store.close().await;
                db.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
            }
            _ => println!("\nSKIPPED (postgres): {POSTGRES_URL_VAR} not set"),
        }
        println!("\nload average at the end: {}", load_average());
    });
}
