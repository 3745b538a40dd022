//! Fleet registry benchmark: 100,000 devices on SQLite, and on PostgreSQL when
//! `FERRITE_TEST_POSTGRES_URL` is set (see scripts/pg.sh). Measures the CSV import, device-list
//! queries (first page, deep keyset page, filters, text search; p50/p99), lookups, lifecycle
//! transitions per second (each with its audit entry) and the CSV export.
//!
//! `cargo bench -p server --bench registry` runs it in full. Under `cargo test` (no `--bench`
//! argument) it runs a 2,000-device smoke version so that CI checks it still works.

use std::time::{Duration, Instant};

use server::fleet::{
    Actor, Connectivity, DeviceFilter, LifecycleState, PageRequest, ServerKey, SystemComponent,
};
use server::store::Store;
use server::store::scratch::{POSTGRES_URL_VAR, ScratchPostgres};

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

/// A small deterministic PRNG (xorshift64*): the same fleet and queries on every run.
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

/// The import file: every other row brings its own identity and key, the rest get generated ones.
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
            "{},SN{:09},{},region={};feeder=F{},{identity},{key},C-{}\n",
            endpoint(i),
            i * 13,
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

/// Runs `query` `count` times (with a fresh random input each time) and prints p50/p99.
async fn measure<F, Fut>(label: &str, count: usize, rng: &mut Rng, mut query: F) -> usize
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(count);
    let mut rows = 0;
    for _ in 0..count {
        let seed = rng.next();
        let start = Instant::now();
        rows += query(seed).await;
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "  {label:<44} p50 {:>8.3} ms  p99 {:>8.3} ms  ({:.1} rows/query)",
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99)),
        rows as f64 / count.max(1) as f64
    );
    rows
}

async fn list(store: &Store, filter: DeviceFilter, after: Option<String>) -> usize {
    let page = PageRequest { after, limit: 50 };
    match store.list_devices(&filter, &page).await {
        Ok(page) => page.devices.len(),
        Err(error) => panic!("list failed: {error}"),
    }
}

async fn run(backend: &str, store: &Store, scale: &Scale) {
    println!("\n== {backend}: {} devices", scale.devices);
    let csv = fleet_csv(scale.devices);
    let operator = Actor::user("bench").unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let report = store
        .import_csv(csv.as_bytes(), &operator)
        .await
        .unwrap_or_else(|e| panic!("import failed: {e}"));
    let elapsed = start.elapsed();
    assert_eq!(report.accepted(), scale.devices, "every row imported");
    println!(
        "  CSV import of {} rows: {:.2} s ({:.0} rows/s)",
        scale.devices,
        elapsed.as_secs_f64(),
        scale.devices as f64 / elapsed.as_secs_f64()
    );

    // Lifecycle transitions with audit: first registrations one after another, then from 4
    // concurrent tasks, then operator suspensions.
    let registration = Actor::system(SystemComponent::Registration);
    let n = scale.transitions;
    let start = Instant::now();
    for i in 0..n {
        store
            .transition(&endpoint(i), LifecycleState::Active, &registration, None)
            .await
            .unwrap_or_else(|e| panic!("transition failed: {e}"));
    }
    let sequential = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let store = store.clone();
        let registration = registration.clone();
        tasks.push(tokio::spawn(async move {
            for i in (n + worker..2 * n).step_by(4) {
                store
                    .transition(&endpoint(i), LifecycleState::Active, &registration, None)
                    .await
                    .unwrap_or_else(|e| panic!("transition failed: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let concurrent = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let suspended = n / 4;
    for i in 0..suspended {
        store
            .suspend(&endpoint(i * 4), &operator, "benchmark hold")
            .await
            .unwrap_or_else(|e| panic!("suspend failed: {e}"));
    }
    let operator_rate = suspended as f64 / start.elapsed().as_secs_f64();
    println!(
        "  transitions with audit: {sequential:.0}/s sequential, {concurrent:.0}/s from 4 tasks, \
         {operator_rate:.0}/s suspensions"
    );
    for i in (0..2 * n).step_by(3) {
        let _ = store
            .set_connectivity(&endpoint(i), Connectivity::Online, Some(chrono::Utc::now()))
            .await;
    }

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let q = scale.queries;
    let devices = scale.devices;
    println!("  device list, 50 per page, {q} queries each:");
    measure("first page, no filter", q, &mut rng, |_| {
        list(store, DeviceFilter::default(), None)
    })
    .await;
    measure("deep page (keyset, random cursor)", q, &mut rng, |seed| {
        list(
            store,
            DeviceFilter::default(),
            Some(endpoint(seed as usize % devices)),
        )
    })
    .await;
    measure("model = EM-300 (1 %), random cursor", q, &mut rng, |seed| {
        let filter = DeviceFilter {
            model: Some("EM-300".into()),
            ..Default::default()
        };
        list(store, filter, Some(endpoint(seed as usize % devices)))
    })
    .await;
    measure(
        "model = EM-100 (50 %), random cursor",
        q,
        &mut rng,
        |seed| {
            let filter = DeviceFilter {
                model: Some("EM-100".into()),
                ..Default::default()
            };
            list(store, filter, Some(endpoint(seed as usize % devices)))
        },
    )
    .await;
    measure("tag feeder = F<random> (0.5 %)", q, &mut rng, |seed| {
        let filter = DeviceFilter {
            tags: vec![("feeder".into(), format!("F{}", seed as usize % FEEDERS))],
            ..Default::default()
        };
        list(store, filter, None)
    })
    .await;
    measure(
        "tag region = <random> (25 %), random cursor",
        q,
        &mut rng,
        |seed| {
            let filter = DeviceFilter {
                tags: vec![("region".into(), REGIONS[seed as usize % 4].into())],
                ..Default::default()
            };
            list(
                store,
                filter,
                Some(endpoint((seed >> 8) as usize % devices)),
            )
        },
    )
    .await;
    measure("tag region + model EM-300", q, &mut rng, |seed| {
        let filter = DeviceFilter {
            tags: vec![("region".into(), REGIONS[seed as usize % 4].into())],
            model: Some("EM-300".into()),
            ..Default::default()
        };
        list(store, filter, None)
    })
    .await;
    measure("state = suspended", q, &mut rng, |_| {
        let filter = DeviceFilter {
            state: Some(LifecycleState::Suspended),
            ..Default::default()
        };
        list(store, filter, None)
    })
    .await;
    measure(
        "state = registered (most), random cursor",
        q,
        &mut rng,
        |seed| {
            let filter = DeviceFilter {
                state: Some(LifecycleState::Registered),
                ..Default::default()
            };
            list(store, filter, Some(endpoint(seed as usize % devices)))
        },
    )
    .await;
    measure("connectivity = online", q, &mut rng, |_| {
        let filter = DeviceFilter {
            connectivity: Some(Connectivity::Online),
            ..Default::default()
        };
        list(store, filter, None)
    })
    .await;
    measure(
        "search endpoint substring (many hits)",
        q,
        &mut rng,
        |seed| {
            let filter = DeviceFilter {
                search: Some(format!("{:02}", seed % 100)),
                ..Default::default()
            };
            list(store, filter, None)
        },
    )
    .await;
    measure(
        "search serial, exact-ish (1 hit: full scan)",
        q.min(50),
        &mut rng,
        |seed| {
            let filter = DeviceFilter {
                search: Some(format!("SN{:09}", (seed as usize % devices) * 13)),
                ..Default::default()
            };
            list(store, filter, None)
        },
    )
    .await;
    measure("count(model = EM-200)", q.min(50), &mut rng, |_| async {
        let filter = DeviceFilter {
            model: Some("EM-200".into()),
            ..Default::default()
        };
        store.count_devices(&filter).await.map_or(0, |c| c as usize)
    })
    .await;
    println!("  single lookups:");
    measure("get_device(endpoint)", q, &mut rng, |seed| async move {
        usize::from(
            store
                .get_device(&endpoint(seed as usize % devices))
                .await
                .ok()
                .flatten()
                .is_some(),
        )
    })
    .await;
    measure(
        "psk_credentials(identity) (DTLS handshake)",
        q,
        &mut rng,
        |seed| async move {
            let i = (seed as usize % devices) & !1;
            usize::from(
                store
                    .psk_credentials(&format!("id-{i:07}"))
                    .await
                    .ok()
                    .flatten()
                    .is_some(),
            )
        },
    )
    .await;

    let start = Instant::now();
    let written = store
        .export_csv(&DeviceFilter::default(), std::io::sink())
        .await
        .unwrap_or_else(|e| panic!("export failed: {e}"));
    println!(
        "  CSV export of {written} devices: {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full {
        Scale {
            devices: 100_000,
            queries: 200,
            transitions: 2_000,
        }
    } else {
        Scale {
            devices: 2_000,
            queries: 5,
            transitions: 40,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no runtime: {e}"));
    runtime.block_on(async {
        let key = ServerKey::from_bytes([7; 32]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("bench.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()), key.clone())
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}"));
        run("SQLite (WAL, synchronous=FULL)", &store, &scale).await;
        store.close().await;
        let size: u64 = std::fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        println!("  database files: {:.1} MB", size as f64 / 1e6);

        match std::env::var(POSTGRES_URL_VAR) {
            Ok(admin_url) if !admin_url.is_empty() => {
                let db = ScratchPostgres::create(&admin_url, "ferrite_bench")
                    .await
                    .unwrap_or_else(|e| panic!("postgres: {e}"));
                let store = Store::connect(db.url(), key)
                    .await
                    .unwrap_or_else(|e| panic!("postgres: {e}"));
                run("PostgreSQL", &store, &scale).await;
                store.close().await;
                db.drop_database().await.unwrap_or_else(|e| panic!("{e}"));
            }
            _ => println!("\n== PostgreSQL: skipped ({POSTGRES_URL_VAR} not set)"),
        }
    });
}
