//! What the operator sees: progress bars on a terminal (indicatif) or plain lines otherwise, the
//! final summary, and the memory figures (resident set size from `/proc`).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::stats::Snapshot;

/// Resident set size of this process, bytes (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Kernel memory of all UDP sockets on the machine, bytes (`/proc/net/sockstat`), which the
/// resident set size does not show.
pub fn udp_kernel_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("UDP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            return words.next()?.parse::<u64>().ok().map(|p| p * 4096);
        }
    }
    None
}

/// Memory per meter: the resident-set growth from before the fleet existed to a moment when
/// every meter was registered and idle-ish, divided by the number of meters.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct MemoryFigure {
    /// RSS before the fleet, bytes.
    pub rss_before: u64,
    /// RSS when measured, bytes.
    pub rss_after: u64,
    /// Meters counted.
    pub meters: u64,
    /// (after − before) / meters.
    pub bytes_per_meter: u64,
}

impl MemoryFigure {
    /// The figure from two readings.
    pub fn new(before: u64, after: u64, meters: u64) -> MemoryFigure {
        MemoryFigure {
            rss_before: before,
            rss_after: after,
            meters,
            bytes_per_meter: after.saturating_sub(before) / meters.max(1),
        }
    }
}

/// The run's summary (printed, and written with `--summary-json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Meters in the fleet.
    pub meters: u32,
    /// Real seconds the fleet ran.
    pub elapsed_seconds: f64,
    /// Simulated seconds covered.
    pub simulated_seconds: f64,
    /// Seconds until every meter was registered, if they all were.
    pub all_registered_after_seconds: Option<f64>,
    /// Registrations per second over that time.
    pub registrations_per_second: Option<f64>,
    /// Memory per meter, measured 2 s after all were registered (or at the end).
    pub memory: MemoryFigure,
    /// Memory per meter 260 s after all were registered (past CoAP's EXCHANGE_LIFETIME, when
    /// idle clients have dropped their exchange state), if the run lasted that long.
    pub memory_settled: Option<MemoryFigure>,
    /// Kernel memory of UDP sockets at that moment, bytes (whole machine).
    pub udp_kernel_bytes: Option<u64>,
    /// Meters without a socket.
    pub socket_errors: usize,
    /// The counters.
    pub stats: Snapshot,
}

impl Summary {
    /// Human-readable lines.
    pub fn lines(&self) -> Vec<String> {
        let s = &self.stats;
        let mut out = vec![
            format!(
                "ran {:.1} s real, {:.1} h simulated, {} meters",
                self.elapsed_seconds,
                self.simulated_seconds / 3600.0,
                self.meters
            ),
            format!(
                "registrations {} ({} failed), updates {} ({} failed), de-registrations {}, \
                 expiries {}, reboots {}",
                s.registrations,
                s.register_failures,
                s.updates,
                s.update_failures,
                s.deregistrations,
                s.expirations,
                s.reboots
            ),
            format!(
                "readings produced {}, sent {}, acknowledged {}, evicted {}; sends ok {} \
                 failed {}; notifications acked {}",
                s.readings_produced,
                s.readings_sent,
                s.readings_acked,
                s.readings_evicted,
                s.sends_ok,
                s.sends_failed,
                s.notifications_acked
            ),
            format!(
                "server requests {}, datagrams sent {} received {} dropped {} send errors {}; \
                 outages {}; DTLS handshakes {} ({} failed)",
                s.server_requests,
                s.datagrams_sent,
                s.datagrams_received,
                s.datagrams_dropped,
                s.send_errors,
                s.outages,
                s.handshakes,
                s.handshake_failures
            ),
        ];
        if s.bootstraps + s.bootstrap_failures > 0 {
            out.push(format!(
                "bootstraps {} ({} failed)",
                s.bootstraps, s.bootstrap_failures
            ));
        }
        if s.fault_lost + s.fault_duplicated + s.fault_delayed + s.fault_rebinds > 0 {
            out.push(format!(
                "faults: lost {}, duplicated {}, delayed {}, rebinds {}",
                s.fault_lost, s.fault_duplicated, s.fault_delayed, s.fault_rebinds
            ));
        }
        match (
            self.all_registered_after_seconds,
            self.registrations_per_second,
        ) {
            (Some(t), Some(rate)) => out.push(format!(
                "{} registrations after {t:.2} s ({rate:.0} registrations/s)",
                self.meters
            )),
            _ => out.push("not every meter registered".into()),
        }
        let m = &self.memory;
        out.push(format!(
            "memory: RSS {:.1} MB → {:.1} MB, {:.1} KB per meter{}",
            m.rss_before as f64 / 1e6,
            m.rss_after as f64 / 1e6,
            m.bytes_per_meter as f64 / 1000.0,
            self.udp_kernel_bytes
                .map(|b| format!(" (+ kernel UDP buffers {:.1} MB)", b as f64 / 1e6))
                .unwrap_or_default()
        ));
        if let Some(m) = &self.memory_settled {
            out.push(format!(
                "memory settled (260 s after the last registration): RSS {:.1} MB, {:.1} KB per meter",
                m.rss_after as f64 / 1e6,
                m.bytes_per_meter as f64 / 1000.0
            ));
        }
        if self.socket_errors > 0 {
            out.push(format!(
                "{} meters had no socket (raise `ulimit -n`?)",
                self.socket_errors
            ));
        }
        out
    }
}

/// The live display.
#[derive(Debug)]
pub enum Progress {
    /// Bars on a terminal.
    Bars {
        /// Keeps the bars drawn together.
        _multi: MultiProgress,
        /// Registered meters out of the fleet.
        registered: ProgressBar,
        /// Readings and errors.
        status: ProgressBar,
        /// Time (when --duration is set).
        time: Option<ProgressBar>,
    },
    /// A line every `every`.
    Lines {
        /// Interval.
        every: Duration,
        /// When the last line was printed (seconds since start).
        last: f64,
    },
    /// Nothing.
    Quiet,
}

impl Progress {
    /// Bars if `bars` (or on a terminal when `auto`), lines otherwise, nothing if `quiet`.
    pub fn new(
        meters: u32,
        duration: Option<Duration>,
        auto: bool,
        bars: bool,
        quiet: bool,
    ) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if bars || (auto && std::io::stderr().is_terminal()) {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let style =
                ProgressStyle::with_template("{prefix:>11} [{bar:40.cyan/blue}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            let registered = multi.add(ProgressBar::new(u64::from(meters)));
            registered.set_style(style.clone());
            registered.set_prefix("registered");
            let time = duration.map(|d| {
                let bar = multi.add(ProgressBar::new(d.as_secs().max(1)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>11} [{bar:40.green/white}] {elapsed_precise} / {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix("time");
                bar.set_message(format!("{}s", d.as_secs()));
                bar
            });
            let status = multi.add(ProgressBar::new_spinner());
            status.set_style(
                ProgressStyle::with_template("{prefix:>11} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            status.set_prefix("readings");
            Progress::Bars {
                _multi: multi,
                registered,
                status,
                time,
            }
        } else {
            Progress::Lines {
                every: Duration::from_secs(5),
                last: f64::NEG_INFINITY,
            }
        }
    }

    /// Shows `s` at `elapsed` seconds, simulated time `sim` (Unix seconds).
    pub fn update(&mut self, s: &Snapshot, elapsed: f64, sim: f64) {
        let sim_text = format_sim(sim);
        match self {
            Progress::Bars {
                registered,
                status,
                time,
                ..
            } => {
                registered.set_position(s.registered.max(0) as u64);
                registered.set_message(format!(
                    "(registrations {}, failed {}, reboots {})",
                    s.registrations, s.register_failures, s.reboots
                ));
                if let Some(t) = time {
                    t.set_position(elapsed as u64);
                }
                status.set_message(format!(
                    "produced {} sent {} acked {} evicted {} | requests {} | sim {sim_text}",
                    s.readings_produced,
                    s.readings_sent,
                    s.readings_acked,
                    s.readings_evicted,
                    s.server_requests
                ));
            }
            Progress::Lines { every, last } => {
                if elapsed - *last >= every.as_secs_f64() {
                    *last = elapsed;
                    println!(
                        "[{elapsed:>7.1}s sim {sim_text}] registered {} (ok {} failed {}) \
                         readings produced {} acked {} evicted {} requests {} reboots {}",
                        s.registered,
                        s.registrations,
                        s.register_failures,
                        s.readings_produced,
                        s.readings_acked,
                        s.readings_evicted,
                        s.server_requests,
                        s.reboots
                    );
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Progress::Bars {
            registered,
            status,
            time,
            ..
        } = self
        {
            registered.finish_and_clear();
            status.finish_and_clear();
            if let Some(t) = time {
                t.finish_and_clear();
            }
        }
    }
}

/// Simulated Unix seconds as `YYYY-MM-DD HH:MM` (UTC).
pub fn format_sim(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn simulated_time_formats_as_a_utc_date() {
        assert_eq!(format_sim(0.0), "1970-01-01 00:00");
        // 2024-02-29 12:34:56 UTC = 1709210096.
        assert_eq!(format_sim(1_709_210_096.0), "2024-02-29 12:34");
    }

    #[test]
    fn memory_figure_divides_the_growth() {
        let m = MemoryFigure::new(10_000_000, 60_000_000, 10_000);
        assert_eq!(m.bytes_per_meter, 5_000);
        assert_eq!(MemoryFigure::new(5, 1, 0).bytes_per_meter, 0);
    }

    #[test]
    fn proc_readings_exist_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().unwrap() > 0);
        }
    }
}
