//! What a benchmark reads about the process it measures (the server, the UDP echo floor or
//! `openssl s_server`) from Linux's `/proc`: CPU time and resident set size (`VmRSS` of
//! `/proc/<pid>/status`).
//!
//! CPU time comes two ways: `utime + stime` of `/proc/<pid>/stat` (includes exited threads, but
//! counts in 10 ms ticks) and the sum of the threads' `/proc/<pid>/task/*/schedstat` run times
//! (nanoseconds, but a thread that exits takes its time with it). A delta uses the schedstat one
//! unless the tick count says more time went by (a thread exited in between).

use std::time::{Duration, Instant};

use serde::Serialize;

/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space (proc(5)).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) the process has used so far, or `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&text)
}

/// `utime + stime` in seconds from the text of `/proc/<pid>/stat`. The command name (field 2) is
/// in parentheses and may hold spaces and parentheses itself, so fields are counted from the
/// last `)`: utime and stime are fields 14 and 15 (proc(5)).
pub fn parse_stat_cpu(text: &str) -> Option<f64> {
    let after = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    // After the name: state (3), ppid (4) … utime is the 12th field from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds the process's live threads have run (sum of `/proc/<pid>/task/*/schedstat`).
pub fn sched_seconds(pid: u32) -> Option<f64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue; // the thread just exited
        };
        total += parse_schedstat(&text)?;
    }
    Some(total as f64 / 1e9)
}

/// The run time (ns), first field of a `schedstat` file.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Resident set size of the process in bytes, or `None` if it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_rss(&text)
}

/// `VmRSS` (kB) of `/proc/<pid>/status`, in bytes.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The 1-minute load average of the machine (`/proc/loadavg`), to print beside the figures.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// One reading of the measured process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From `/proc/<pid>/stat` (ticks).
    pub cpu: f64,
    /// From the threads' schedstat (ns), if readable.
    pub sched: Option<f64>,
    pub rss: u64,
}

impl Sample {
    /// CPU seconds from `self` to `later`: the schedstat delta unless the tick delta exceeds it
    /// by more than two ticks and 5 % (time of threads that exited in between).
    pub fn cpu_until(&self, later: &Sample) -> f64 {
        let ticks = (later.cpu - self.cpu).max(0.0);
        match (self.sched, later.sched) {
            (Some(a), Some(b)) if b >= a && ticks <= (b - a) * 1.05 + 0.02 => b - a,
            _ => ticks,
        }
    }
}

/// The measured process, if a pid was given.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub pid: u32,
}

impl Watched {
    pub fn sample(self) -> Option<Sample> {
        Some(Sample {
            cpu: cpu_seconds(self.pid)?,
            sched: sched_seconds(self.pid),
            rss: rss_bytes(self.pid).unwrap_or(0),
        })
    }

    /// Waits until the process stops using CPU (work it deferred, such as persisting what was
    /// just registered, belongs to the operations measured), at most `patience`: two quiet
    /// quarter-seconds in a row (under 2 % of a core each) end the wait.
    pub fn quiesce(self, patience: Duration) -> Option<Sample> {
        let give_up = Instant::now() + patience;
        let mut last = self.sample()?;
        let mut quiet = 0;
        while Instant::now() < give_up && quiet < 2 {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.sample()?;
            if last.cpu_until(&now) <= 0.005 {
                quiet += 1;
            } else {
                quiet = 0;
            }
            last = now;
        }
        Some(last)
    }
}

/// What the measured process spent on a scenario.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ProcessCost {
    /// The process measured.
    pub pid: u32,
    /// CPU seconds (user + system) used during the scenario.
    pub cpu_seconds: f64,
    /// CPU microseconds per operation.
    pub cpu_us_per_op: f64,
    /// Resident set size before and after, bytes.
    pub rss_before: u64,
    pub rss_after: u64,
    /// (after − before) / devices, bytes (0 when the scenario holds no devices).
    pub rss_per_device: i64,
}

impl ProcessCost {
    pub fn between(pid: u32, before: Sample, after: Sample, ops: u64, devices: u64) -> ProcessCost {
        let cpu = before.cpu_until(&after);
        let delta = after.rss as i64 - before.rss as i64;
        ProcessCost {
            pid,
            cpu_seconds: cpu,
            cpu_us_per_op: if ops == 0 {
                0.0
            } else {
                cpu * 1e6 / ops as f64
            },
            rss_before: before.rss,
            rss_after: after.rss,
            rss_per_device: if devices == 0 {
                0
            } else {
                delta / devices as i64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stat_cpu_is_utime_plus_stime() {
        // A /proc/<pid>/stat line (proc(5) layout) whose name holds a space and a parenthesis:
        // utime 250, stime 50 ticks → 3.0 s.
        let line = "4242 (fer rite)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 9 0 \
                    100 2000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu(line), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1"), None);
    }

    #[test]
    fn status_rss_is_in_bytes() {
        let status = "Name:\tferrite\nVmPeak:\t  9000 kB\nVmRSS:\t   5120 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss(status), Some(5120 * 1024));
        assert_eq!(parse_status_rss("Name:\tx\n"), None);
    }

    #[test]
    fn schedstat_is_preferred_unless_threads_exited() {
        // schedstat: "run-ns wait-ns timeslices" (Documentation/scheduler/sched-stats.rst).
        assert_eq!(parse_schedstat("123456789 5000 12\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        let at = |cpu, sched| Sample {
            cpu,
            sched: Some(sched),
            rss: 0,
        };
        // 0.01 s of ticks, 0.0123 s of run time: the precise figure.
        assert!((at(1.0, 2.0).cpu_until(&at(1.01, 2.0123)) - 0.0123).abs() < 1e-9);
        // A thread with 0.5 s exited: schedstat went backwards, the ticks stand.
        assert!((at(1.0, 2.0).cpu_until(&at(1.6, 1.7)) - 0.6).abs() < 1e-9);
        // Ticks far above the run time: an exited thread's time counts.
        assert!((at(1.0, 2.0).cpu_until(&at(2.0, 2.1)) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = Watched {
            pid: std::process::id(),
        };
        let sample = me.sample().unwrap();
        assert!(sample.rss > 0);
        assert!(sample.sched.is_some());
        assert!(sample.cpu >= 0.0);
    }

    #[test]
    fn cost_per_operation_and_device() {
        let before = Sample {
            cpu: 1.0,
            sched: None,
            rss: 1_000_000,
        };
        let after = Sample {
            cpu: 1.5,
            sched: None,
            rss: 5_000_000,
        };
        let cost = ProcessCost::between(7, before, after, 1000, 1000);
        assert!((cost.cpu_us_per_op - 500.0).abs() < 1e-6);
        assert_eq!(cost.rss_per_device, 4000);
        assert_eq!(
            ProcessCost::between(7, before, after, 0, 0).cpu_us_per_op,
            0.0
        );
    }
}
