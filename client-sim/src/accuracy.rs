//! `ferrite-sim accuracy`: scores the server's remote diagnostics (issue 7) against the
//! simulator's ground truth. It provisions a fleet through the HTTP API, runs it (problem
//! profiles, an accelerated clock), starts several diagnostic sweeps spaced in time
//! (`POST /api/v1/diagnostics/sweeps`: the history rules — reboots, memory leak — need earlier
//! snapshots and registrations), reads the last sweep's results and each run's findings
//! (`GET /api/v1/diagnostics/sweeps/{id}/results`, `GET /api/v1/diagnostics/runs/{id}`) and prints
//! precision and recall per problem and a confusion table (true problem × rule that fired), also
//! written as JSON with `--report`.
//!
//! What counts as detecting a problem (rule ids of the `ferrite-diagnostics` crate):
//! - weak signal → `weak_signal` of severity major or worse (≤ −110 dBm; ≤ −100 is only minor);
//! - dying battery → `low_battery`;
//! - periodic reboots → `frequent_reboots` (count or rhythm);
//! - memory leak → `memory_leak` or `low_memory`;
//! - error codes → `error_code` with a code other than 1, 4 and 5 (low battery, low signal and
//!   out of memory belong to the battery, signal and memory problems, which report them too);
//! - bad firmware → whatever catches it: `frequent_reboots`, `error_code` 8 or `firmware_update`.
//!
//! A detection that another true cause of the same meter explains is not a false positive: a
//! bad-firmware meter that restarts is flagged `frequent_reboots` (the symptom is real), a
//! memory-leak meter restarted by its watchdog too; such cases are counted as `explained`
//! instead and left out of precision.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::cli::{RunArgs, parse_duration, unix_now};
use crate::fleet::Fleet;
use crate::ground_truth::{GroundTruth, MeterTruth};
use crate::meter::Problem;
use crate::provision::{ApiClient, provision};

/// `ferrite-sim accuracy`.
#[derive(Debug, Clone, Args)]
pub struct AccuracyArgs {
    /// The fleet (same options as `run`; --api and --api-token are required).
    #[command(flatten)]
    pub run: RunArgs,
    /// Diagnostic sweeps over the fleet; the last one is scored (the earlier ones give the
    /// history rules their snapshots). Example: --sweeps 4
    #[arg(long, default_value_t = 4)]
    pub sweeps: u32,
    /// Real time between the starts of two sweeps (simulated time runs --speed times faster).
    /// Example: --sweep-interval 30s
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub sweep_interval: Duration,
    /// Real time between every meter having registered and the first sweep.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub warmup: Duration,
    /// Devices diagnosed per second by each sweep (the server allows at most 200).
    #[arg(long, default_value_t = 100.0)]
    pub sweep_rate: f64,
    /// Write the scores as JSON here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// A problem the simulator gives a meter, as scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    WeakSignal,
    DyingBattery,
    PeriodicReboots,
    MemoryLeak,
    ErrorCodes,
    BadFirmware,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::WeakSignal,
        Class::DyingBattery,
        Class::PeriodicReboots,
        Class::MemoryLeak,
        Class::ErrorCodes,
        Class::BadFirmware,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::WeakSignal => "weak_signal",
            Class::DyingBattery => "dying_battery",
            Class::PeriodicReboots => "periodic_reboots",
            Class::MemoryLeak => "memory_leak",
            Class::ErrorCodes => "error_codes",
            Class::BadFirmware => "bad_firmware",
        }
    }

    fn of(problem: Problem) -> Class {
        match problem {
            Problem::WeakSignal => Class::WeakSignal,
            Problem::DyingBattery => Class::DyingBattery,
            Problem::PeriodicReboots => Class::PeriodicReboots,
            Problem::MemoryLeak => Class::MemoryLeak,
            Problem::ErrorCodes => Class::ErrorCodes,
        }
    }
}

/// One finding of a run, as much of it as the scoring needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Rule id (`weak_signal`).
    pub rule: String,
    /// `info`, `minor`, `major`, `critical`.
    pub severity: String,
    /// Error codes in the evidence (error_code findings).
    pub codes: Vec<i64>,
}

impl Found {
    fn at_least_minor(&self) -> bool {
        self.severity != "info"
    }

    fn at_least_major(&self) -> bool {
        matches!(self.severity.as_str(), "major" | "critical")
    }
}

/// The findings of a run's diagnosis JSON (`diagnosis.findings`).
pub fn findings_of(run: &Json) -> Vec<Found> {
    run["diagnosis"]["findings"]
        .as_array()
        .map(|findings| {
            findings
                .iter()
                .map(|f| Found {
                    rule: f["rule"].as_str().unwrap_or_default().to_owned(),
                    severity: f["severity"].as_str().unwrap_or_default().to_owned(),
                    codes: f["evidence"]
                        .as_array()
                        .map(|ev| {
                            ev.iter()
                                .filter(|e| {
                                    e["path"].as_str().is_some_and(|p| p.starts_with("/3/0/11"))
                                })
                                .filter_map(|e| e["value"].as_str()?.trim().parse().ok())
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the meter truly has.
pub fn actual(truth: &MeterTruth) -> BTreeSet<Class> {
    let mut out: BTreeSet<Class> = truth.problems.iter().map(|p| Class::of(*p)).collect();
    if truth.bad_firmware.is_some() {
        out.insert(Class::BadFirmware);
    }
    out
}

/// What the findings say the meter has (see the module documentation for the mapping).
pub fn predicted(found: &[Found]) -> BTreeSet<Class> {
    let mut out = BTreeSet::new();
    for f in found.iter().filter(|f| f.at_least_minor()) {
        match f.rule.as_str() {
            "weak_signal" if f.at_least_major() => {
                out.insert(Class::WeakSignal);
            }
            "low_battery" => {
                out.insert(Class::DyingBattery);
            }
            "frequent_reboots" => {
                out.insert(Class::PeriodicReboots);
                out.insert(Class::BadFirmware);
            }
            "memory_leak" | "low_memory" => {
                out.insert(Class::MemoryLeak);
            }
            "error_code" => {
                if f.codes.iter().any(|c| !matches!(c, 1 | 4 | 5)) {
                    out.insert(Class::ErrorCodes);
                }
                if f.codes.contains(&8) {
                    out.insert(Class::BadFirmware);
                }
            }
            "firmware_update" => {
                out.insert(Class::BadFirmware);
            }
            _ => {}
        }
    }
    out
}

/// Whether a detection of `class` on a meter that does not have it is explained by another true
/// cause the meter has (the symptom the rule saw is real).
fn explained(class: Class, truth: &MeterTruth, actual: &BTreeSet<Class>) -> bool {
    let bad = truth.bad_firmware.as_ref();
    match class {
        Class::PeriodicReboots => {
            bad.is_some_and(|b| b.symptoms.contains(&"reboots"))
                || actual.contains(&Class::MemoryLeak)
        }
        Class::ErrorCodes => bad.is_some_and(|b| b.symptoms.contains(&"error_code_8")),
        Class::BadFirmware => {
            actual.contains(&Class::PeriodicReboots)
                || actual.contains(&Class::ErrorCodes)
                || actual.contains(&Class::MemoryLeak)
        }
        Class::WeakSignal | Class::DyingBattery | Class::MemoryLeak => false,
    }
}

/// Precision and recall of one class.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClassScore {
    /// Meters that have it.
    pub actual: u32,
    pub true_positives: u32,
    pub false_positives: u32,
    pub false_negatives: u32,
    /// Detections on meters without it that another true cause of theirs explains.
    pub explained: u32,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// The whole score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    pub meters: u32,
    /// Meters with a completed diagnosis in the scored sweep.
    pub diagnosed: u32,
    /// Per class.
    pub classes: BTreeMap<&'static str, ClassScore>,
    /// Rows: true problem (`healthy` for none; a meter with two problems is in both rows);
    /// columns: rules that fired (severity ≥ minor), `none` when none did, `not_diagnosed`.
    pub confusion: BTreeMap<String, BTreeMap<String, u32>>,
    /// Meters whose problem was missed, by class (first ten), with the rules that did fire.
    pub missed_examples: BTreeMap<&'static str, Vec<(String, Vec<String>)>>,
    /// False positives by class (first ten), with the meter's true problems.
    pub false_positive_examples: BTreeMap<&'static str, Vec<(String, Vec<String>)>>,
}

/// Scores the diagnoses (`None`: not diagnosed) against the truth.
pub fn score(truth: &GroundTruth, runs: &BTreeMap<String, Option<Vec<Found>>>) -> Score {
    let mut s = Score {
        meters: truth.endpoints.len() as u32,
        ..Score::default()
    };
    for class in Class::ALL {
        s.classes.insert(class.as_str(), ClassScore::default());
    }
    for (ep, meter) in &truth.endpoints {
        let actual = actual(meter);
        let run = runs.get(ep).cloned().flatten();
        let found = run.clone().unwrap_or_default();
        if run.is_some() {
            s.diagnosed += 1;
        }
        let predicted = predicted(&found);
        let fired: Vec<String> = {
            let set: BTreeSet<String> = found
                .iter()
                .filter(|f| f.at_least_minor())
                .map(|f| f.rule.clone())
                .collect();
            set.into_iter().collect()
        };
        let rows: Vec<String> = if actual.is_empty() {
            vec!["healthy".to_owned()]
        } else {
            actual.iter().map(|c| c.as_str().to_owned()).collect()
        };
        let columns: Vec<String> = if run.is_none() {
            vec!["not_diagnosed".to_owned()]
        } else if fired.is_empty() {
            vec!["none".to_owned()]
        } else {
            fired.clone()
        };
        for row in &rows {
            let line = s.confusion.entry(row.clone()).or_default();
            for column in &columns {
                *line.entry(column.clone()).or_default() += 1;
            }
        }
        for class in Class::ALL {
            let Some(c) = s.classes.get_mut(class.as_str()) else {
                continue;
            };
            let has = actual.contains(&class);
            let said = predicted.contains(&class);
            if has {
                c.actual += 1;
            }
            match (has, said) {
                (true, true) => c.true_positives += 1,
                (true, false) => {
                    c.false_negatives += 1;
                    let ex = s.missed_examples.entry(class.as_str()).or_default();
                    if ex.len() < 10 {
                        ex.push((ep.clone(), columns.clone()));
                    }
                }
                (false, true) if explained(class, meter, &actual) => c.explained += 1,
                (false, true) => {
                    c.false_positives += 1;
                    let ex = s.false_positive_examples.entry(class.as_str()).or_default();
                    if ex.len() < 10 {
                        ex.push((ep.clone(), rows.clone()));
                    }
                }
                (false, false) => {}
            }
        }
    }
    for c in s.classes.values_mut() {
        let ratio = |a: u32, b: u32| (a + b > 0).then(|| f64::from(a) / f64::from(a + b));
        c.precision = ratio(c.true_positives, c.false_positives);
        c.recall = ratio(c.true_positives, c.false_negatives);
    }
    s
}

impl Score {
    /// The table as text.
    pub fn lines(&self) -> Vec<String> {
        let pct =
            |v: Option<f64>| v.map_or("   –  ".to_owned(), |v| format!("{:5.1}%", v * 100.0));
        let mut out = vec![
            format!(
                "diagnosed {} of {} meters in the scored sweep",
                self.diagnosed, self.meters
            ),
            format!(
                "{:<17} {:>6} {:>5} {:>5} {:>5} {:>9} {:>9} {:>8}",
                "problem", "actual", "TP", "FP", "FN", "explained", "precision", "recall"
            ),
        ];
        for class in Class::ALL {
            if let Some(c) = self.classes.get(class.as_str()) {
                out.push(format!(
                    "{:<17} {:>6} {:>5} {:>5} {:>5} {:>9} {:>9} {:>8}",
                    class.as_str(),
                    c.actual,
                    c.true_positives,
                    c.false_positives,
                    c.false_negatives,
                    c.explained,
                    pct(c.precision),
                    pct(c.recall)
                ));
            }
        }
        let columns: BTreeSet<&String> = self.confusion.values().flat_map(|r| r.keys()).collect();
        out.push(String::new());
        out.push("confusion: true problem (rows) × rules that fired, meters".to_owned());
        let mut header = format!("{:<17}", "");
        for c in &columns {
            header.push_str(&format!(" {:>8}", abbreviate(c)));
        }
        out.push(header);
        for (row, line) in &self.confusion {
            let mut text = format!("{row:<17}");
            for c in &columns {
                text.push_str(&format!(" {:>8}", line.get(*c).copied().unwrap_or(0)));
            }
            out.push(text);
        }
        out.push(format!(
            "columns: {}",
            columns
                .iter()
                .map(|c| format!("{}={c}", abbreviate(c)))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        out
    }
}

/// A column name short enough for the table.
fn abbreviate(rule: &str) -> String {
    let short: String = rule
        .split('_')
        .map(|w| w.chars().take(4).collect::<String>())
        .collect::<Vec<_>>()
        .join("_");
    short.chars().take(8).collect()
}

fn get_json(api: &ApiClient, path: &str) -> anyhow::Result<Json> {
    let answer = api.request("GET", path, "application/json", b"")?;
    if answer.status != 200 {
        bail!(
            "GET {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(serde_json::from_slice(&answer.body)?)
}

fn post_json(api: &ApiClient, path: &str, body: &Json) -> anyhow::Result<Json> {
    let answer = api.request(
        "POST",
        path,
        "application/json",
        body.to_string().as_bytes(),
    )?;
    if !(200..300).contains(&answer.status) {
        bail!(
            "POST {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(serde_json::from_slice(&answer.body)?)
}

/// Starts a sweep over the endpoints with `prefix` and waits until it is no longer running (or
/// `patience` passed). Returns its id.
fn sweep(
    api: &ApiClient,
    prefix: &str,
    meters: u32,
    rate: f64,
    patience: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let sweep = post_json(
        api,
        "/api/v1/diagnostics/sweeps",
        &json!({"filter": {"q": prefix}, "rate_per_sec": rate, "limit": meters}),
    )?;
    let id = sweep["id"]
        .as_str()
        .context("the sweep answer has no id")?
        .to_owned();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = get_json(api, &format!("/api/v1/diagnostics/sweeps/{id}"))?;
        if now["status"] != "running" || started.elapsed() > patience {
            eprintln!(
                "sweep {id}: {} devices, {} completed, {} pending, {} failed in {:.1} s; by rule {}",
                now["devices"],
                now["completed"],
                now["pending"],
                now["failed"],
                started.elapsed().as_secs_f64(),
                now["by_rule"]
            );
            return Ok(id);
        }
    }
}

/// Every device's findings in sweep `id` (`None` for a run that did not complete).
fn sweep_findings(
    api: &ApiClient,
    id: &str,
) -> anyhow::Result<BTreeMap<String, Option<Vec<Found>>>> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/diagnostics/sweeps/{id}/results?limit=1000");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = get_json(api, &path)?;
        for item in page["items"].as_array().into_iter().flatten() {
            let Some(endpoint) = item["endpoint"].as_str() else {
                continue;
            };
            let found = match (item["status"].as_str(), item["run_id"].as_str()) {
                (Some("completed"), Some(run)) => {
                    let run = get_json(api, &format!("/api/v1/diagnostics/runs/{run}"))?;
                    Some(findings_of(&run))
                }
                _ => None,
            };
            out.insert(endpoint.to_owned(), found);
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

/// Runs the whole measurement.
pub fn run(args: AccuracyArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let config = run
        .fleet_config(unix_now())
        .map_err(anyhow::Error::msg)
        .context("invalid options")?;
    let url = run
        .api
        .as_deref()
        .context("accuracy needs --api (the server's HTTP API)")?;
    let token = run
        .api_token
        .as_deref()
        .context("accuracy needs --api-token (or FERRITE_API_TOKEN)")?;
    let api = ApiClient::new(url, token)?;
    let prefix = config.meter.endpoint_prefix.clone();
    let meters = config.meters;
    let provisioned = provision(&api, &run.provision_plan(&config), &|_, _| {})
        .context("provisioning through the API failed")?;
    eprintln!("{provisioned}");
    let truth = GroundTruth::of_fleet(&config.profiles, meters, &prefix)
        .with_firmware(&config.meter.firmware);
    if let Some(path) = &run.ground_truth {
        truth
            .write(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let speed = config.speed;
    let fleet = Fleet::start(config).context("cannot start the fleet")?;
    let started = Instant::now();
    while fleet.stats().registrations < u64::from(meters) {
        if started.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "only {} of {meters} meters registered after 120 s; sweeping anyway",
                fleet.stats().registrations
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{} registrations after {:.1} s",
        fleet.stats().registrations,
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(args.warmup);
    let mut ids = Vec::new();
    for n in 1..=args.sweeps.max(1) {
        let begun = Instant::now();
        let sim = fleet.clock().sim(begun);
        eprintln!(
            "sweep {n}/{} at simulated {:.1} h",
            args.sweeps,
            (sim - fleet.clock().sim_start()) / 3600.0
        );
        let patience = args.sweep_interval.max(Duration::from_secs(60)) * 3;
        ids.push(sweep(&api, &prefix, meters, args.sweep_rate, patience)?);
        if n < args.sweeps {
            std::thread::sleep(args.sweep_interval.saturating_sub(begun.elapsed()));
        }
    }
    let sim_hours = (fleet.clock().sim(Instant::now()) - fleet.clock().sim_start()) / 3600.0;
    let id = ids.last().cloned().context("no sweep ran")?;
    // Every sweep's findings: the last one is scored; the union over all of them is what an
    // operator who looked at each sweep would have seen.
    let mut per_sweep = Vec::new();
    for sweep_id in &ids {
        per_sweep.push(sweep_findings(&api, sweep_id)?);
    }
    fleet.stop();
    let report = fleet.join();
    let runs = per_sweep.last().cloned().unwrap_or_default();
    let score = score(&truth, &runs);
    let mut union: BTreeMap<String, Option<Vec<Found>>> = BTreeMap::new();
    for sweep in &per_sweep {
        for (ep, found) in sweep {
            let entry = union.entry(ep.clone()).or_default();
            if let Some(found) = found {
                entry
                    .get_or_insert_with(Vec::new)
                    .extend(found.iter().cloned());
            }
        }
    }
    let score_any = self::score(&truth, &union);
    println!(
        "{meters} meters, speed {speed}×, {} sweeps {:?} apart, {sim_hours:.1} simulated hours; \
         fleet: {} registrations, {} reboots",
        args.sweeps, args.sweep_interval, report.stats.registrations, report.stats.reboots
    );
    for line in score.lines() {
        println!("{line}");
    }
    println!("a problem found in any of the {} sweeps:", args.sweeps);
    for class in Class::ALL {
        if let Some(c) = score_any.classes.get(class.as_str()) {
            let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
            println!(
                "  {:<17} TP {:>4} FP {:>4} FN {:>4}  precision {:>6}  recall {:>6}",
                class.as_str(),
                c.true_positives,
                c.false_positives,
                c.false_negatives,
                pct(c.precision),
                pct(c.recall)
            );
        }
    }
    if let Some(path) = &args.report {
        let json = json!({
            "meters": meters,
            "speed": speed,
            "sweeps": args.sweeps,
            "sweep_interval_secs": args.sweep_interval.as_secs_f64(),
            "simulated_hours": sim_hours,
            "scored_sweep": id,
            "sweep_ids": ids,
            "score": score,
            "score_any_sweep": score_any,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ground_truth::BadFirmwareTruth;

    fn found(rule: &str, severity: &str, codes: &[i64]) -> Found {
        Found {
            rule: rule.into(),
            severity: severity.into(),
            codes: codes.to_vec(),
        }
    }

    fn meter(problems: &[Problem], bad: bool) -> MeterTruth {
        MeterTruth {
            problems: problems.to_vec(),
            model: "FSM-E200",
            firmware: "3.0.2",
            lwm2m: "1.1",
            queue_mode: false,
            rssi_mean_dbm: -85.0,
            bad_firmware: bad.then(|| BadFirmwareTruth {
                version: "3.0.2",
                symptoms: vec!["reboots"],
            }),
        }
    }

    #[test]
    fn findings_are_read_from_a_run() {
        let run = json!({"diagnosis": {"findings": [
            {"rule": "error_code", "severity": "critical",
             "evidence": [{"path": "/3/0/11/0", "value": "8", "meaning": "peripheral"}]},
            {"rule": "weak_signal", "severity": "minor",
             "evidence": [{"path": "/4/0/2", "value": "-104 dBm"}]}]}});
        assert_eq!(
            findings_of(&run),
            [
                found("error_code", "critical", &[8]),
                found("weak_signal", "minor", &[])
            ]
        );
        assert!(findings_of(&json!({"status": "failed"})).is_empty());
    }

    #[test]
    fn mapping_of_rules_to_problems() {
        // A minor weak signal is not the weak-signal problem; a major one is.
        assert!(predicted(&[found("weak_signal", "minor", &[])]).is_empty());
        assert_eq!(
            predicted(&[found("weak_signal", "major", &[])]),
            BTreeSet::from([Class::WeakSignal])
        );
        // Codes 1/4/5 belong to battery, signal and memory; 7 is an error-code problem, 8 also
        // what a bad firmware reports.
        assert!(predicted(&[found("error_code", "major", &[1, 4, 5])]).is_empty());
        assert_eq!(
            predicted(&[found("error_code", "major", &[7])]),
            BTreeSet::from([Class::ErrorCodes])
        );
        assert_eq!(
            predicted(&[found("error_code", "critical", &[8])]),
            BTreeSet::from([Class::ErrorCodes, Class::BadFirmware])
        );
        assert_eq!(
            predicted(&[found("low_memory", "major", &[])]),
            BTreeSet::from([Class::MemoryLeak])
        );
        // Info findings never count.
        assert!(predicted(&[found("low_battery", "info", &[])]).is_empty());
    }

    #[test]
    fn scores_count_explained_detections_apart() {
        let mut endpoints = BTreeMap::new();
        endpoints.insert("a".to_owned(), meter(&[Problem::WeakSignal], false));
        endpoints.insert("b".to_owned(), meter(&[], true));
        endpoints.insert("c".to_owned(), meter(&[], false));
        endpoints.insert("d".to_owned(), meter(&[Problem::PeriodicReboots], false));
        endpoints.insert("e".to_owned(), meter(&[Problem::DyingBattery], false));
        let truth = GroundTruth {
            seed: 1,
            meters: 5,
            problem_share: 0.0,
            reboot_period_hours: 6.0,
            endpoints,
            bad_firmware: None,
        };
        let mut runs = BTreeMap::new();
        runs.insert(
            "a".to_owned(),
            Some(vec![found("weak_signal", "major", &[])]),
        );
        // The bad firmware restarts: reboots found, explained by the bad firmware.
        runs.insert(
            "b".to_owned(),
            Some(vec![found("frequent_reboots", "major", &[])]),
        );
        // A healthy meter flagged weak: a false positive.
        runs.insert(
            "c".to_owned(),
            Some(vec![found("weak_signal", "major", &[])]),
        );
        runs.insert("d".to_owned(), Some(vec![]));
        runs.insert("e".to_owned(), None);
        let s = score(&truth, &runs);
        assert_eq!(s.diagnosed, 4);
        let weak = &s.classes["weak_signal"];
        assert_eq!(
            (weak.actual, weak.true_positives, weak.false_positives),
            (1, 1, 1)
        );
        assert_eq!(weak.precision, Some(0.5));
        let reboots = &s.classes["periodic_reboots"];
        assert_eq!(
            (
                reboots.false_negatives,
                reboots.explained,
                reboots.false_positives
            ),
            (1, 1, 0)
        );
        assert_eq!(reboots.recall, Some(0.0));
        let bad = &s.classes["bad_firmware"];
        assert_eq!((bad.true_positives, bad.recall), (1, Some(1.0)));
        assert_eq!(s.confusion["healthy"]["weak_signal"], 1);
        assert_eq!(s.confusion["dying_battery"]["not_diagnosed"], 1);
        assert_eq!(s.confusion["periodic_reboots"]["none"], 1);
        assert!(s.lines().iter().any(|l| l.starts_with("weak_signal")));
    }
}
