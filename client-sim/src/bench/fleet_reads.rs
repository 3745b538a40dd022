//! `ferrite-sim bench fleet-reads`: server-initiated reads through the fleet API
//! (`POST /api/v1/fleet/read`), each request reading the same /3/0 paths on many simulated
//! devices at once. The operation counted is the CoAP read (devices × paths of every answered
//! device), so the server's CPU per op is what one read costs the engine and the socket with the
//! HTTP request and the store query shared by the whole batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::driver::Kind;
use super::report::Latency;
use super::{
    ApiArgs, CommonArgs, DeviceArgs, Progress, cost, devices, emit, http, quiet_start, result,
    start_registered, version, watched,
};
use crate::cli::ProgressChoice;
use crate::meter::endpoint_name;

/// `bench fleet-reads`.
#[derive(Debug, Clone, Args)]
pub struct FleetReadsArgs {
    #[command(flatten)]
    pub devices: DeviceArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    /// CoAP reads to make in total (rounded up to whole fleet-read requests).
    #[arg(long, default_value_t = 20_000)]
    pub reads: u64,
    /// Devices per fleet-read request (at most 1000; default: every registered device).
    #[arg(long)]
    pub batch: Option<u32>,
    /// Resources of /3/0 per device (1–8). Example: --paths 2
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub paths: u8,
    /// Fleet-read requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 2)]
    pub http_concurrency: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What the requests came to.
#[derive(Default)]
struct Tally {
    /// CoAP reads of devices answered 200.
    reads_ok: u64,
    /// Devices not answered 200, times paths.
    reads_failed: u64,
    /// HTTP requests not answered 200 (or not at all).
    requests_failed: u64,
    latencies: Vec<u32>,
    first_failure: Option<String>,
}

pub(super) fn fleet_reads(args: &FleetReadsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let w = watched(common);
    let http_addr = http::parse_http_url(&args.api.http).map_err(anyhow::Error::msg)?;
    let (server, _secure, factory) = devices(&args.devices, version(args.api.lwm2m), false, 0)?;
    let (driver, _) = start_registered(&args.devices, common, factory, server, "registering")?;
    let registered = driver.control.ok(Kind::Register) as u32;
    if registered == 0 {
        bail!("no device registered");
    }
    let batch = args
        .batch
        .unwrap_or(registered)
        .clamp(1, registered.min(1000));
    let paths = u64::from(args.paths);
    let per_request = u64::from(batch) * paths;
    let requests = args.reads.div_ceil(per_request).max(1);
    // Resources of /3/0 the devices hold (see driver::device_store).
    let resources = ["0", "1", "2", "3", "9", "10", "17", "21"];
    let path_list: Vec<String> = resources
        .iter()
        .take(usize::from(args.paths))
        .map(|r| format!("\"/3/0/{r}\""))
        .collect();
    // The request bodies, one per window of `batch` consecutive devices.
    let windows = registered.div_ceil(batch);
    let bodies: Vec<Vec<u8>> = (0..windows)
        .map(|w| {
            let endpoints: Vec<String> = (0..batch)
                .map(|k| {
                    let i = (w * batch + k) % registered;
                    format!("\"{}\"", endpoint_name(&args.devices.endpoint_prefix, i))
                })
                .collect();
            format!(
                "{{\"endpoints\":[{}],\"paths\":[{}]}}",
                endpoints.join(","),
                path_list.join(",")
            )
            .into_bytes()
        })
        .collect();

    let before = quiet_start(w, common);
    let started = Instant::now();
    let tally = post_all(
        http_addr,
        &args.api.token,
        Arc::new(bodies),
        requests,
        paths,
        args.http_concurrency.max(1),
        common.progress,
    )?;
    let elapsed = started.elapsed();
    let after = w.and_then(|w| w.quiesce(common.settle));
    driver.finish();

    let mut latencies = tally.latencies;
    let mut r = result(
        "fleet-reads",
        common,
        "CoAP read",
        tally.reads_ok,
        tally.reads_failed,
        u64::from(registered),
        elapsed,
        Latency::of(&mut latencies),
        cost(w, before, after, tally.reads_ok, 0),
    );
    r.extra.insert("devices_per_request".into(), batch.into());
    r.extra.insert("paths_per_device".into(), paths.into());
    r.extra.insert("http_requests".into(), requests.into());
    r.extra
        .insert("http_requests_failed".into(), tally.requests_failed.into());
    r.extra.insert(
        "note".into(),
        "latency is per fleet-read HTTP request".into(),
    );
    if let Some(why) = tally.first_failure {
        r.extra.insert("first_failure".into(), why.into());
    }
    emit(common, &r)
}

/// Posts `requests` fleet reads over `concurrency` keep-alive connections, cycling through the
/// bodies, and counts the devices answered.
fn post_all(
    addr: std::net::SocketAddr,
    token: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    requests: u64,
    paths: u64,
    concurrency: usize,
    progress: ProgressChoice,
) -> anyhow::Result<Tally> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP client runtime")?;
    let token: Arc<str> = Arc::from(token);
    runtime.block_on(async move {
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (next, done, bodies, token) = (
                Arc::clone(&next),
                Arc::clone(&done),
                Arc::clone(&bodies),
                Arc::clone(&token),
            );
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut conn: Option<http::HttpConn> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let Some(body) = bodies.get((i % bodies.len() as u64) as usize) else {
                        break;
                    };
                    let t = Instant::now();
                    if conn.is_none() {
                        conn = http::HttpConn::connect(addr).await.ok();
                    }
                    let answer = match conn.as_mut() {
                        Some(c) => {
                            c.request(
                                "POST",
                                "/api/v1/fleet/read",
                                &token,
                                Some(("application/json", body)),
                            )
                            .await
                        }
                        None => Err(std::io::Error::other("cannot connect")),
                    };
                    tally
                        .latencies
                        .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    match answer {
                        Ok(a) if a.status == 200 => {
                            let parsed: serde_json::Value =
                                serde_json::from_slice(&a.body).unwrap_or_default();
                            let ok = parsed["succeeded"].as_u64().unwrap_or(0);
                            let total = parsed["results"].as_array().map_or(0, Vec::len) as u64;
                            tally.reads_ok += ok * paths;
                            tally.reads_failed += total.saturating_sub(ok) * paths;
                            if ok < total && tally.first_failure.is_none() {
                                tally.first_failure = parsed["results"]
                                    .as_array()
                                    .and_then(|r| r.iter().find(|x| x["status"] != 200))
                                    .map(ToString::to_string);
                            }
                        }
                        Ok(a) => {
                            tally.requests_failed += 1;
                            tally.first_failure.get_or_insert_with(|| {
                                format!("HTTP {}: {}", a.status, String::from_utf8_lossy(&a.body))
                            });
                        }
                        Err(error) => {
                            tally.requests_failed += 1;
                            tally.first_failure.get_or_insert_with(|| error.to_string());
                            conn = None;
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                tally
            }));
        }
        let watcher =
            Progress::new(progress, requests, "fleet reads").watch(Arc::clone(&done), requests);
        let mut all = Tally::default();
        for task in tasks {
            if let Ok(t) = task.await {
                all.reads_ok += t.reads_ok;
                all.reads_failed += t.reads_failed;
                all.requests_failed += t.requests_failed;
                all.latencies.extend(t.latencies);
                if all.first_failure.is_none() {
                    all.first_failure = t.first_failure;
                }
            }
        }
        watcher.abort();
        Ok(all)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::super::Scenario;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<super::FleetReadsArgs, clap::Error> {
        let mut args = vec![
            "ferrite-sim",
            "bench",
            "fleet-reads",
            "--server",
            "coap://127.0.0.1:5683",
            "--token",
            "t",
        ];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_from(args)?;
        let Command::Bench(bench) = cli.command else {
            panic!("bench expected");
        };
        let Scenario::FleetReads(fleet) = bench.scenario else {
            panic!("fleet-reads expected");
        };
        Ok(fleet)
    }

    #[test]
    fn fleet_reads_arguments_parse() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (defaults.reads, defaults.batch, defaults.paths),
            (20_000, None, 1)
        );
        let given = parse(&["--reads", "500", "--batch", "50", "--paths", "8"]).unwrap();
        assert_eq!((given.reads, given.batch, given.paths), (500, Some(50), 8));
        assert!(parse(&["--paths", "9"]).is_err());
        assert!(parse(&["--paths", "0"]).is_err());
    }
}
