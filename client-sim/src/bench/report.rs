//! A scenario's result: throughput, latency percentiles, what the measured process spent, and
//! how it is printed (one block of plain lines) and written (`--json FILE`, one JSON object per
//! scenario run, appended as a line so a script can collect repeats in one file).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::procfs::ProcessCost;

/// Latency percentiles of one kind of operation, milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles (nearest rank) of `micros`, which is sorted in place.
    pub fn of(micros: &mut [u32]) -> Latency {
        micros.sort_unstable();
        let rank = |q: f64| -> f64 {
            if micros.is_empty() {
                return 0.0;
            }
            let i = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            micros.get(i).map_or(0.0, |&v| f64::from(v) / 1000.0)
        };
        Latency {
            count: micros.len() as u64,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: micros.last().map_or(0.0, |&v| f64::from(v) / 1000.0),
        }
    }
}

/// One run of one scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchResult {
    /// `register`, `handshake`, `reads`, `send`, `echo`.
    pub scenario: String,
    /// Free text from `--label` (e.g. `nosec`, `dtls`, `openssl`, `round 2`).
    pub label: String,
    /// What one operation is (`registration`, `handshake`, `read request`, `send`, `echo`).
    pub op: String,
    /// Operations completed and failed.
    pub ops: u64,
    pub failed: u64,
    /// Devices (or sockets) taking part.
    pub devices: u64,
    /// Seconds from the first operation started to the last completed.
    pub elapsed_seconds: f64,
    /// `ops / elapsed_seconds`.
    pub per_second: f64,
    /// Latency of the operations.
    pub latency: Latency,
    /// What the measured process spent (with `--server-pid`).
    pub process: Option<ProcessCost>,
    /// Scenario-specific figures (e.g. CoAP reads per HTTP request).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The machine's 1-minute load average at the end.
    pub load_average: Option<f64>,
}

impl BenchResult {
    /// The result as printed lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} [{}]: {} {}s ok, {} failed, {} devices, {:.2} s → {:.1} {}/s",
            self.scenario,
            self.label,
            self.ops,
            self.op,
            self.failed,
            self.devices,
            self.elapsed_seconds,
            self.per_second,
            self.op
        )];
        let l = &self.latency;
        out.push(format!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
        ));
        if let Some(p) = &self.process {
            out.push(format!(
                "  process {}: CPU {:.3} s = {:.1} µs per {}; RSS {:.1} → {:.1} MiB ({} B per device)",
                p.pid,
                p.cpu_seconds,
                p.cpu_us_per_op,
                self.op,
                p.rss_before as f64 / 1_048_576.0,
                p.rss_after as f64 / 1_048_576.0,
                p.rss_per_device
            ));
        }
        for (k, v) in &self.extra {
            out.push(format!("  {k}: {v}"));
        }
        if let Some(load) = self.load_average {
            out.push(format!("  load average (1 min): {load:.2}"));
        }
        out
    }

    /// Appends the result to `path` as one JSON line.
    pub fn append_json(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut line = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let l = Latency::of(&mut v);
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert_eq!(Latency::of(&mut []), Latency::default());
        assert_eq!(Latency::of(&mut [1500]).p50_ms, 1.5);
    }

    #[test]
    fn results_print_and_serialize() {
        let r = BenchResult {
            scenario: "register".into(),
            label: "nosec".into(),
            op: "registration".into(),
            ops: 10,
            failed: 0,
            devices: 10,
            elapsed_seconds: 0.5,
            per_second: 20.0,
            latency: Latency::default(),
            process: None,
            extra: serde_json::Map::new(),
            load_average: Some(1.0),
        };
        assert!(
            r.lines()[0].contains("20.0 registration/s"),
            "{:?}",
            r.lines()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["per_second"], 20.0);
        let dir = std::env::temp_dir().join(format!("bench-json-{}", std::process::id()));
        r.append_json(&dir).unwrap();
        r.append_json(&dir).unwrap();
        let text = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(text.lines().count(), 2);
    }
}
