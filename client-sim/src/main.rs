//! `ferrite-sim`: the simulated smart-meter fleet. A thin binary over the `client_sim` library:
//! parse the command line, write the ground truth, run the fleet with a live display until
//! `--duration` or Ctrl-C, stop it gracefully and print the summary.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use client_sim::cli::{Cli, Command, KeysArgs, ProgressChoice, RunArgs, unix_now};
use client_sim::fleet::Fleet;
use client_sim::ground_truth::GroundTruth;
use client_sim::meter::{endpoint_name, psk_key};
use client_sim::provision::{ApiClient, provision};
use client_sim::report::{MemoryFigure, Progress, Summary, resident_bytes, udp_kernel_bytes};
use lwm2m_objects::ObjectModel;

fn main() -> anyhow::Result<()> {
    let argv = client_sim::cli::expand_config(std::env::args_os().collect())
        .map_err(anyhow::Error::msg)
        .context("--config")?;
    match Cli::parse_from(argv).command {
        Command::Objects => {
            print_objects();
            Ok(())
        }
        Command::Keys(args) => {
            print_keys(&args);
            Ok(())
        }
        Command::Run(args) => run(*args),
        Command::Bench(args) => client_sim::bench::run(*args),
        Command::Accuracy(args) => client_sim::accuracy::run(*args),
    }
}

fn print_objects() {
    for object in ObjectModel::builtin().objects() {
        println!(
            "/{} {} (version {})",
            object.id, object.name, object.version
        );
        for r in object.resources {
            let units = r.units.map(|u| format!(" [{u}]")).unwrap_or_default();
            println!(
                "  /{}/x/{} {} {} {}{}",
                object.id,
                r.id,
                r.name,
                r.operations.as_str(),
                r.ty,
                units
            );
        }
    }
}

fn print_keys(args: &KeysArgs) {
    let n = &args.naming;
    println!("endpoint,identity,key_hex");
    for i in 0..n.meters {
        let endpoint = endpoint_name(&n.endpoint_prefix, i);
        let identity = format!("{}{endpoint}", n.psk_identity_prefix);
        let key: String = psk_key(&n.psk_secret, &identity)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("{endpoint},{identity},{key}");
    }
}

/// When the settled memory figure is taken, after every meter registered.
const IDLE_AFTER: Duration = Duration::from_secs(260);

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args
        .fleet_config(unix_now())
        .map_err(anyhow::Error::msg)
        .context("invalid options")?;
    if let Some(url) = &args.api {
        let token = args
            .api_token
            .as_deref()
            .context("--api needs --api-token (or FERRITE_API_TOKEN)")?;
        let api = ApiClient::new(url, token)?;
        let plan = args.provision_plan(&config);
        let started = Instant::now();
        let report = provision(&api, &plan, &|done, total| {
            if total > 0 {
                eprintln!("provisioning: {done}/{total}");
            }
        })
        .context("provisioning through the API failed")?;
        eprintln!("{report} in {:.1} s", started.elapsed().as_secs_f64());
    }
    if let Some(path) = &args.ground_truth {
        GroundTruth::of_fleet(
            &config.profiles,
            config.meters,
            &config.meter.endpoint_prefix,
        )
        .with_firmware(&config.meter.firmware)
        .write(path)
        .with_context(|| format!("cannot write the ground truth {}", path.display()))?;
    }
    if args.duration.is_none() && args.sim_start.is_none() && args.speed > 1.0 {
        eprintln!(
            "note: without --duration the simulated clock starts now and runs ahead of real \
             time at --speed {}; pass --sim-start to keep readings in the past",
            args.speed
        );
    }
    let meters = config.meters;
    let rss_before = resident_bytes().unwrap_or(0);
    let fleet = Fleet::start(config).context("cannot start the fleet")?;
    let mut progress = Progress::new(
        meters,
        args.duration,
        args.progress == ProgressChoice::Auto,
        args.progress == ProgressChoice::Bars,
        args.progress == ProgressChoice::None,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    let mut all_registered: Option<Duration> = None;
    let mut memory: Option<(MemoryFigure, Option<u64>)> = None;
    let mut idle_memory: Option<MemoryFigure> = None;
    let started = fleet.started();
    runtime.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = &mut ctrl_c => {
                    eprintln!("Ctrl-C: stopping (de-registering); Ctrl-C again to quit at once");
                    break;
                }
                _ = tick.tick() => {}
            }
            let elapsed = started.elapsed();
            let stats = fleet.stats();
            // Registrations counted (not the gauge): a meter that reboots meanwhile does not
            // hold the figure back.
            if all_registered.is_none()
                && (stats.registered >= i64::from(meters)
                    || stats.registrations >= u64::from(meters))
            {
                all_registered = Some(elapsed);
            }
            if memory.is_none()
                && all_registered.is_some_and(|t| elapsed >= t + Duration::from_secs(2))
            {
                let after = resident_bytes().unwrap_or(0);
                memory = Some((
                    MemoryFigure::new(rss_before, after, u64::from(meters)),
                    udp_kernel_bytes(),
                ));
            }
            // Past EXCHANGE_LIFETIME (247 s) the clients drop their CoAP exchange state: the
            // figure for a settled fleet.
            if idle_memory.is_none() && all_registered.is_some_and(|t| elapsed >= t + IDLE_AFTER) {
                let after = resident_bytes().unwrap_or(0);
                idle_memory = Some(MemoryFigure::new(rss_before, after, u64::from(meters)));
            }
            progress.update(
                &stats,
                elapsed.as_secs_f64(),
                fleet.clock().sim(Instant::now()),
            );
            if args.duration.is_some_and(|d| elapsed >= d) {
                break;
            }
        }
    });
    fleet.stop();
    // A second Ctrl-C quits without waiting for the de-registrations.
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            std::process::exit(130);
        }
    });
    let memory = memory.unwrap_or_else(|| {
        (
            MemoryFigure::new(rss_before, resident_bytes().unwrap_or(0), u64::from(meters)),
            udp_kernel_bytes(),
        )
    });
    let sim_end = fleet.clock().sim(Instant::now());
    let sim_start = fleet.clock().sim_start();
    while !fleet.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        progress.update(
            &fleet.stats(),
            started.elapsed().as_secs_f64(),
            fleet.clock().sim(Instant::now()),
        );
    }
    progress.finish();
    let report = fleet.join();
    let summary = Summary {
        meters,
        elapsed_seconds: report.elapsed.as_secs_f64(),
        simulated_seconds: sim_end - sim_start,
        all_registered_after_seconds: all_registered.map(|d| d.as_secs_f64()),
        registrations_per_second: all_registered.map(|d| f64::from(meters) / d.as_secs_f64()),
        memory: memory.0,
        memory_settled: idle_memory,
        udp_kernel_bytes: memory.1,
        socket_errors: report.socket_errors,
        stats: report.stats,
    };
    for line in summary.lines() {
        println!("{line}");
    }
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
