//! Diagnostics as an operator reads them, worked out without the browser: verdicts, severities
//! and rules in plain words, evidence and changes named from the object model, and the geometry
//! of the small hand-drawn SVG charts (line charts of the device's RSSI / battery / free memory
//! over its runs, bar charts of a sweep's counts).

use std::collections::BTreeMap;

use api_types::diagnostics::{
    Change, DiagnosisRun, Reading, RunStatus, Severity, Sweep, SweepFilter, SweepResult,
    SweepStatus, Verdict,
};

use crate::format;
use crate::model::resource_at;

/// Verdicts from best to worst, as the API names them.
pub const VERDICTS: [Verdict; 4] = [
    Verdict::Healthy,
    Verdict::Monitor,
    Verdict::RemoteAction,
    Verdict::SiteVisit,
];

/// The API's name of a verdict (`remote_action`); also the CSS class suffix.
pub fn verdict_key(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "healthy",
        Verdict::Monitor => "monitor",
        Verdict::RemoteAction => "remote_action",
        Verdict::SiteVisit => "site_visit",
    }
}

/// The verdict as a short label (`Site visit`).
pub fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "Healthy",
        Verdict::Monitor => "Monitor",
        Verdict::RemoteAction => "Remote action",
        Verdict::SiteVisit => "Site visit",
    }
}

/// What the verdict means for the person deciding on a truck roll.
pub fn verdict_meaning(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "Nothing to do.",
        Verdict::Monitor => "Keep an eye on it; no action yet.",
        Verdict::RemoteAction => "Needs action that can be taken remotely; no site visit.",
        Verdict::SiteVisit => "Someone has to go to the meter.",
    }
}

/// The label of a verdict given by its API name; the name itself when unknown.
pub fn verdict_key_label(key: &str) -> String {
    VERDICTS
        .iter()
        .find(|v| verdict_key(**v) == key)
        .map_or_else(|| key.replace('_', " "), |v| verdict_label(*v).to_owned())
}

pub fn severity_key(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Minor => "minor",
        Severity::Major => "major",
        Severity::Critical => "critical",
    }
}

pub fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Info",
        Severity::Minor => "Minor",
        Severity::Major => "Major",
        Severity::Critical => "Critical",
    }
}

/// The rules as the API names them, in the order the console lists them.
pub const RULES: [&str; 11] = [
    "weak_signal",
    "poor_link_quality",
    "low_battery",
    "frequent_reboots",
    "error_code",
    "low_memory",
    "memory_leak",
    "firmware_update",
    "traffic_pattern",
    "location",
    "missed_check_in",
];

/// A rule's name in plain words (`weak_signal` → `Weak signal`); unknown names are spelled out.
pub fn rule_label(rule: &str) -> String {
    match rule {
        "weak_signal" => "Weak signal".to_owned(),
        "poor_link_quality" => "Poor link quality".to_owned(),
        "low_battery" => "Low battery".to_owned(),
        "frequent_reboots" => "Frequent reboots".to_owned(),
        "error_code" => "Error codes".to_owned(),
        "low_memory" => "Low free memory".to_owned(),
        "memory_leak" => "Memory leak".to_owned(),
        "firmware_update" => "Firmware update".to_owned(),
        "traffic_pattern" => "Unusual data usage".to_owned(),
        "location" => "Location".to_owned(),
        "missed_check_in" => "Missed check-in".to_owned(),
        other => {
            let spaced = other.replace('_', " ");
            let mut chars = spaced.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
    }
}

/// Where a value comes from, named: `Radio Signal Strength (/4/0/2)`; evidence from the
/// registration history is `Registration history`.
pub fn path_label(path: &str) -> String {
    if path == "registrations" {
        return "Registration history".to_owned();
    }
    match resource_at(path) {
        Some(def) => format!("{} ({path})", def.name),
        None => path.to_owned(),
    }
}

/// A stored reading as text, with the resource's unit (times as UTC dates).
pub fn reading_text(path: &str, reading: &Reading) -> String {
    if let Reading::Time(t) = reading {
        return format::utc_text(*t as f64);
    }
    let unit = resource_at(path)
        .and_then(|d| d.units)
        .map(format::unit_text)
        .unwrap_or("");
    let core = reading.display();
    if unit.is_empty() || matches!(reading, Reading::Bool(_)) {
        core
    } else {
        format!("{core} {unit}")
    }
}

/// One change since the previous diagnosis, as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    pub what: String,
    pub before: String,
    pub after: String,
    /// `+3`, `−6` for numbers; `added` / `gone` for values that appeared or disappeared.
    pub delta: String,
}

pub fn change_row(change: &Change) -> ChangeRow {
    let text = |r: &Option<Reading>| {
        r.as_ref()
            .map_or_else(|| "—".to_owned(), |r| reading_text(&change.path, r))
    };
    let delta = match (change.delta, &change.before, &change.after) {
        (Some(d), _, _) => signed(d),
        (None, None, Some(_)) => "added".to_owned(),
        (None, Some(_), None) => "gone".to_owned(),
        _ => "changed".to_owned(),
    };
    ChangeRow {
        what: path_label(&change.path),
        before: text(&change.before),
        after: text(&change.after),
        delta,
    }
}

/// A difference with its sign (a true minus sign, as people write it): `+3`, `−6`, `+0.25`.
pub fn signed(delta: f64) -> String {
    let magnitude = {
        let s = format!("{:.3}", delta.abs());
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if delta < 0.0 {
        format!("\u{2212}{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// A time as `11-22 01:40` (UTC; month-day hour:minute), for chart axes; the text itself when
/// it does not parse.
pub fn short_time(rfc3339: &str) -> String {
    match format::parse_rfc3339(rfc3339) {
        // `2026-11-22 01:40:00 UTC` → `11-22 01:40`
        Some(t) => format::utc_text(t)
            .get(5..16)
            .unwrap_or_default()
            .to_owned(),
        None => rfc3339.to_owned(),
    }
}

/// Who asked for a run, for people: `user:alice` → `alice`, `system:sweep` → `a fleet sweep`.
pub fn requester_text(requested_by: &str) -> String {
    match requested_by.split_once(':') {
        Some(("user", name)) => name.to_owned(),
        Some(("system", "sweep")) => "a fleet sweep".to_owned(),
        Some(("token", _)) => "an API token".to_owned(),
        _ => requested_by.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sweeps
// ---------------------------------------------------------------------------------------------

/// A sweep's progress: devices finished (completed or failed), devices so far, and the share
/// finished in percent (100 for a finished sweep with no devices).
pub fn sweep_progress(sweep: &Sweep) -> (u64, u64, u32) {
    let done = sweep.completed.saturating_add(sweep.failed);
    // A running sweep expects what matched its filter at the start; a finished one reached what
    // it reached (devices may have come or gone meanwhile).
    let expected = match sweep.status {
        SweepStatus::Running => sweep.planned.unwrap_or(0),
        _ => 0,
    };
    let total = sweep.devices.max(done).max(expected);
    let percent = if total == 0 {
        if sweep.status == SweepStatus::Running {
            0
        } else {
            100
        }
    } else {
        ((done as f64 / total as f64) * 100.0).round() as u32
    };
    (done, total, percent.min(100))
}

pub fn sweep_status_label(status: SweepStatus) -> &'static str {
    match status {
        SweepStatus::Running => "Running",
        SweepStatus::Completed => "Completed",
        SweepStatus::Interrupted => "Interrupted",
    }
}

/// A sweep's filter in words: `state active, model SIM-1, tag site:lab`; `all devices` when empty.
pub fn filter_text(filter: &SweepFilter) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, value: &Option<String>| {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{name} {v}"));
        }
    };
    add("search", &filter.q);
    add("state", &filter.state);
    add("connectivity", &filter.connectivity);
    add("model", &filter.model);
    add("firmware", &filter.firmware);
    add("customer", &filter.customer);
    for tag in &filter.tag {
        parts.push(format!("tag {tag}"));
    }
    if parts.is_empty() {
        "all devices".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One bar of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The API name (`weak_signal`, `site_visit`): what a click filters by.
    pub key: String,
    pub label: String,
    pub count: u64,
    /// Length relative to the longest bar, 0–1.
    pub share: f64,
}

/// Bars for counts by key, largest first (ties by key), zero counts left out.
pub fn bars(counts: &BTreeMap<String, u64>, label: impl Fn(&str) -> String) -> Vec<Bar> {
    let max = counts.values().copied().max().unwrap_or(0);
    let mut out: Vec<Bar> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| Bar {
            key: k.clone(),
            label: label(k),
            count: *n,
            share: if max == 0 {
                0.0
            } else {
                *n as f64 / max as f64
            },
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out
}

// ---------------------------------------------------------------------------------------------
// Line charts
// ---------------------------------------------------------------------------------------------

/// The drawing box of a line chart (SVG user units).
pub const CHART_W: f64 = 260.0;
pub const CHART_H: f64 = 96.0;
/// The plot area inside it: room for the axis labels on the left and the dates below.
const PLOT_LEFT: f64 = 40.0;
const PLOT_RIGHT: f64 = 252.0;
const PLOT_TOP: f64 = 8.0;
const PLOT_BOTTOM: f64 = 74.0;

/// One point drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub value: f64,
    /// Index in the series (oldest first).
    pub index: usize,
}

/// What to draw for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// `points` attributes of polylines; a missing value breaks the line.
    pub segments: Vec<String>,
    pub dots: Vec<Dot>,
    /// The value range the vertical axis shows (bottom, top).
    pub low: f64,
    pub high: f64,
    /// Vertical positions of the bottom and top of the plot.
    pub bottom: f64,
    pub top: f64,
    pub left: f64,
    pub right: f64,
}

/// Lays out `values` (oldest first; None = the run did not report it) over the plot area. The
/// vertical range is the values' range widened to at least `min_span` (a flat line sits in the
/// middle instead of on an edge); None when there is no value at all.
pub fn line_chart(values: &[Option<f64>], min_span: f64) -> Option<LineChart> {
    let present: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mut low = present.iter().copied().fold(f64::INFINITY, f64::min);
    let mut high = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if present.is_empty() {
        return None;
    }
    let span = min_span.max(f64::EPSILON);
    if high - low < span {
        let middle = (high + low) / 2.0;
        low = middle - span / 2.0;
        high = middle + span / 2.0;
    }
    let n = values.len();
    let x_of = |i: usize| {
        if n <= 1 {
            (PLOT_LEFT + PLOT_RIGHT) / 2.0
        } else {
            PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: f64| PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (v - low) / (high - low);
    let mut segments = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut dots = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match value.filter(|v| v.is_finite()) {
            Some(v) => {
                let (x, y) = (round1(x_of(index)), round1(y_of(v)));
                current.push(format!("{x},{y}"));
                dots.push(Dot {
                    x,
                    y,
                    value: v,
                    index,
                });
            }
            None => {
                if current.len() > 1 {
                    segments.push(current.join(" "));
                }
                current.clear();
            }
        }
    }
    if current.len() > 1 {
        segments.push(current.join(" "));
    }
    Some(LineChart {
        segments,
        dots,
        low,
        high,
        bottom: PLOT_BOTTOM,
        top: PLOT_TOP,
        left: PLOT_LEFT,
        right: PLOT_RIGHT,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// An axis label: whole numbers without decimals, others with one.
pub fn axis_text(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The chart's description for screen readers: `Radio signal over 4 diagnoses: from −95 to −113
/// dBm (latest −113 dBm)`.
pub fn chart_description(title: &str, unit: &str, values: &[Option<f64>]) -> String {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    match (present.first(), present.last()) {
        (Some(first), Some(last)) if present.len() > 1 => format!(
            "{title} over {} diagnoses: from {} to {} {unit} (latest {} {unit})",
            present.len(),
            axis_text(*first),
            axis_text(*last),
            axis_text(*last)
        ),
        (Some(only), _) => format!("{title}: {} {unit} (one diagnosis)", axis_text(*only)),
        _ => format!("{title}: not reported"),
    }
}

// ---------------------------------------------------------------------------------------------
// SVG markup
// ---------------------------------------------------------------------------------------------
// The charts are written as SVG text (set as the inner HTML of their box) rather than as view
// code: the same drawing for a fraction of the WebAssembly, and testable on the host. Every
// text from outside (labels, times) goes through `escape`; numbers are formatted here.

/// Text safe inside an SVG/HTML element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small line chart of one value over the runs (oldest left): the value range on the left,
/// the first and last dates below, a dot per run with its time and value as a tooltip.
pub fn trend_svg(
    title: &str,
    unit: &str,
    values: &[Option<f64>],
    times: &[String],
    min_span: f64,
) -> String {
    let mut svg = format!(
        r#"<svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{}" class="chart">"#,
        escape(&chart_description(title, unit, values))
    );
    if let Some(c) = line_chart(values, min_span) {
        let label_x = c.left - 4.0;
        for y in [c.top, c.bottom] {
            svg.push_str(&format!(
                r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}" class="grid"/>"#,
                c.left, c.right
            ));
        }
        for (y, v) in [(c.top + 4.0, c.high), (c.bottom + 4.0, c.low)] {
            svg.push_str(&format!(
                r#"<text x="{label_x}" y="{y}" text-anchor="end" class="axis">{}</text>"#,
                axis_text(v)
            ));
        }
        for points in &c.segments {
            svg.push_str(&format!(
                r#"<polyline points="{points}" class="trend-line"/>"#
            ));
        }
        for d in &c.dots {
            let when = times
                .get(d.index)
                .map(|t| format::time_text(t))
                .unwrap_or_default();
            svg.push_str(&format!(
                r#"<circle cx="{}" cy="{}" r="3" class="trend-dot"><title>{}</title></circle>"#,
                d.x,
                d.y,
                escape(&format!("{when}: {} {unit}", axis_text(d.value)))
            ));
        }
        let first = times.first().map(|t| short_time(t)).unwrap_or_default();
        svg.push_str(&format!(
            r#"<text x="{}" y="92" class="axis">{}</text>"#,
            c.left,
            escape(&first)
        ));
        if times.len() > 1 {
            let last = times.last().map(|t| short_time(t)).unwrap_or_default();
            svg.push_str(&format!(
                r#"<text x="{}" y="92" text-anchor="end" class="axis">{}</text>"#,
                c.right,
                escape(&last)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal bar chart of counts: label, bar (relative to the largest), count.
pub fn bars_svg(label: &str, bars: &[Bar]) -> String {
    const ROW: f64 = 26.0;
    const LABEL_W: f64 = 150.0;
    const WIDTH: f64 = 480.0;
    const COUNT_W: f64 = 44.0;
    let height = (bars.len() as f64 * ROW).max(ROW);
    let description = if bars.is_empty() {
        format!("{label}: none")
    } else {
        let parts: Vec<String> = bars
            .iter()
            .map(|b| format!("{} {}", b.label, b.count))
            .collect();
        format!("{label}: {}", parts.join(", "))
    };
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}" class="chart bars" style="max-width: {WIDTH}px">"#,
        escape(&description)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * ROW;
        let length = round1(((WIDTH - LABEL_W - COUNT_W) * b.share).max(2.0));
        svg.push_str(&format!(
            r#"<g class="bar bar-{}"><text x="{}" y="{}" text-anchor="end" class="bar-label">{}</text><rect x="{LABEL_W}" y="{}" width="{length}" height="{}" rx="3"/><text x="{}" y="{}" class="bar-count">{}</text></g>"#,
            escape(&b.key),
            LABEL_W - 8.0,
            y + 17.0,
            escape(&b.label),
            y + 5.0,
            ROW - 10.0,
            round1(LABEL_W + length + 6.0),
            y + 17.0,
            b.count
        ));
    }
    svg.push_str("</svg>");
    svg
}

// ---------------------------------------------------------------------------------------------
// Read-only blocks as HTML
// ---------------------------------------------------------------------------------------------
// A run's verdict, findings and changes, and the sweep tables, have no controls: like the charts
// they are written as markup (escaped) instead of view code, which keeps the WebAssembly module
// within its size budget. Links in them are ordinary `<a href>`s the router follows.

/// A verdict badge.
fn verdict_badge(verdict: Verdict) -> String {
    format!(
        r#"<span class="badge verdict-{}">{}</span>"#,
        verdict_key(verdict),
        verdict_label(verdict)
    )
}

/// One run: its verdict with the summary sentence, what did not answer, the findings worst
/// first (severity, evidence, what to do) and the changes since the previous run (`earlier`:
/// whether there was a previous completed run to compare with).
pub fn run_html(run: &DiagnosisRun, earlier: bool) -> String {
    let when = format::time_text(run.completed_at.as_deref().unwrap_or(&run.requested_at));
    let by = escape(&requester_text(&run.requested_by));
    let Some(d) = &run.diagnosis else {
        return match run.status {
            RunStatus::Pending => {
                format!(r#"<p class="muted">Requested {when} by {by}; waiting for the device.</p>"#)
            }
            _ => format!(
                r#"<div class="alert" role="alert">The diagnosis failed: {}</div>"#,
                escape(run.error.as_deref().unwrap_or("no reason given"))
            ),
        };
    };
    let mut h = format!(
        r#"<div class="verdict verdict-{}"><span class="verdict-label">{}</span><div class="verdict-text"><p class="verdict-summary">{}</p><p class="muted small">{} Diagnosed {when} by {by}.</p></div></div>"#,
        verdict_key(d.verdict),
        verdict_label(d.verdict),
        escape(&d.summary),
        verdict_meaning(d.verdict),
    );
    if !d.unanswered.is_empty() {
        let list: Vec<String> = d
            .unanswered
            .iter()
            .map(|(path, why)| format!("{} ({})", escape(&path_label(path)), escape(why)))
            .collect();
        h.push_str(&format!(
            r#"<p class="warning">Not answered, diagnosed without: {}.</p>"#,
            list.join("; ")
        ));
    }
    h.push_str("<h3>Findings</h3>");
    if d.findings.is_empty() {
        h.push_str(r#"<p class="muted">No findings: every rule passed.</p>"#);
    } else {
        h.push_str(r#"<ol class="findings" aria-label="Findings">"#);
        for f in &d.findings {
            let sev = severity_key(f.severity);
            h.push_str(&format!(
                r#"<li class="finding sev-{sev}"><div class="finding-head"><span class="badge sev-{sev}">{}</span><strong class="finding-title">{}</strong>{}</div><ul class="evidence">"#,
                severity_label(f.severity),
                escape(&f.title),
                if f.site_visit {
                    r#"<span class="badge verdict-site_visit">Site visit</span>"#
                } else {
                    ""
                },
            ));
            for e in &f.evidence {
                h.push_str(&format!(
                    "<li>{}: <strong>{}</strong>{}</li>",
                    escape(&path_label(&e.path)),
                    escape(&e.value),
                    e.meaning
                        .as_deref()
                        .map(|m| format!(" — {}", escape(m)))
                        .unwrap_or_default()
                ));
            }
            h.push_str(&format!(
                r#"</ul><p class="action"><span class="muted">What to do: </span>{}</p></li>"#,
                escape(&f.action)
            ));
        }
        h.push_str("</ol>");
    }
    h.push_str("<h3>Changes since the previous diagnosis</h3>");
    if run.changes.is_empty() {
        h.push_str(if earlier {
            r#"<p class="muted">Nothing changed since the previous diagnosis.</p>"#
        } else {
            r#"<p class="muted">This is the first diagnosis of this device: nothing to compare with yet.</p>"#
        });
    } else {
        h.push_str(r#"<div class="table-wrap"><table class="data compact" aria-label="Changes since the previous diagnosis"><thead><tr><th scope="col">Value</th><th scope="col">Before</th><th scope="col">Now</th><th scope="col" class="num">Change</th></tr></thead><tbody>"#);
        for c in run.changes.iter().map(change_row) {
            h.push_str(&format!(
                r#"<tr><td>{}</td><td>{}</td><td><strong>{}</strong></td><td class="num">{}</td></tr>"#,
                escape(&c.what),
                escape(&c.before),
                escape(&c.after),
                escape(&c.delta)
            ));
        }
        h.push_str("</tbody></table></div>");
    }
    h
}

/// The sweeps list: when (a link to the sweep), by whom, which devices, status, progress, and
/// the verdict counts.
pub fn sweeps_html(sweeps: &[Sweep]) -> String {
    let mut h = String::from(
        r#"<div class="table-wrap"><table class="data" aria-label="Sweeps"><thead><tr><th scope="col">Started</th><th scope="col">By</th><th scope="col">Devices</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Verdicts</th></tr></thead><tbody>"#,
    );
    for s in sweeps {
        let (done, total, percent) = sweep_progress(s);
        let status = sweep_status_label(s.status);
        let counts: String = VERDICTS
            .iter()
            .filter_map(|v| {
                let n = s.by_verdict.get(verdict_key(*v)).copied().unwrap_or(0);
                (n > 0).then(|| format!(r#"<span class="count">{} {n}</span>"#, verdict_badge(*v)))
            })
            .collect();
        h.push_str(&format!(
            r#"<tr><td class="nowrap"><a href="/diagnostics/sweeps/{}">{}</a></td><td>{}</td><td>{}</td><td><span class="badge sweep-{}">{status}</span></td><td class="nowrap"><progress max="{}" value="{done}" aria-label="Progress"></progress> {done} of {total} ({percent} %)</td><td class="counts">{counts}</td></tr>"#,
            format::percent_encode(&s.id),
            escape(&format::time_text(&s.created_at)),
            escape(&requester_text(&s.created_by)),
            escape(&filter_text(&s.filter)),
            status.to_lowercase(),
            total.max(1),
        ));
    }
    h.push_str("</tbody></table></div>");
    h
}

/// A sweep's per-device results, each endpoint a link to its device page.
pub fn results_html(results: &[SweepResult]) -> String {
    let mut h = String::from(
        r#"<div class="table-wrap"><table class="data" aria-label="Sweep results"><thead><tr><th scope="col">Endpoint</th><th scope="col">Run</th><th scope="col">Verdict</th><th scope="col">Findings</th><th scope="col">Summary</th></tr></thead><tbody>"#,
    );
    for r in results {
        let status = match r.status {
            RunStatus::Pending => "waiting",
            RunStatus::Completed => "done",
            RunStatus::Failed => "failed",
        };
        let rules: Vec<String> = r.rules.iter().map(|rule| rule_label(rule)).collect();
        h.push_str(&format!(
            r#"<tr><td class="endpoint"><a href="{}">{}</a></td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&format::device_href(&r.endpoint)),
            escape(&r.endpoint),
            r.verdict.map(verdict_badge).unwrap_or_default(),
            escape(&rules.join(", ")),
            escape(r.summary.as_deref().unwrap_or_default()),
        ));
    }
    h.push_str("</tbody></table></div>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::diagnostics::{Diagnosis, Evidence, Finding};

    fn sweep(devices: u64, completed: u64, failed: u64, status: SweepStatus) -> Sweep {
        Sweep {
            id: "s1".into(),
            status,
            filter: SweepFilter::default(),
            rate_per_sec: 5.0,
            created_at: "2026-11-22T01:00:00Z".into(),
            created_by: "user:maria".into(),
            finished_at: None,
            planned: None,
            devices,
            completed,
            pending: devices - completed - failed,
            failed,
            by_verdict: BTreeMap::new(),
            by_rule: BTreeMap::new(),
        }
    }

    #[test]
    fn verdicts_and_rules_have_plain_names() {
        assert_eq!(verdict_label(Verdict::SiteVisit), "Site visit");
        assert_eq!(verdict_key(Verdict::RemoteAction), "remote_action");
        assert_eq!(verdict_key_label("remote_action"), "Remote action");
        assert_eq!(verdict_key_label("odd_one"), "odd one");
        assert_eq!(rule_label("weak_signal"), "Weak signal");
        assert_eq!(rule_label("missed_check_in"), "Missed check-in");
        assert_eq!(rule_label("new_rule"), "New rule");
        assert_eq!(rule_label(""), "");
        for rule in RULES {
            assert!(!rule_label(rule).contains('_'), "{rule}");
        }
        // Every rule of the rules crate has a label of its own.
        for rule in api_types::diagnostics::RuleId::ALL {
            assert!(RULES.contains(&rule.as_str()), "{}", rule.as_str());
        }
    }

    #[test]
    fn paths_and_readings_are_named_from_the_object_model() {
        assert_eq!(path_label("/4/0/2"), "Radio Signal Strength (/4/0/2)");
        assert_eq!(path_label("/3/0/11/1"), "Error Code (/3/0/11/1)");
        assert_eq!(path_label("registrations"), "Registration history");
        assert_eq!(path_label("/9999/0/1"), "/9999/0/1");
        assert_eq!(reading_text("/4/0/2", &Reading::Int(-113)), "-113 dBm");
        assert_eq!(reading_text("/3/0/9", &Reading::Int(15)), "15 %");
        assert_eq!(
            reading_text("/3/0/13", &Reading::Time(0)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            reading_text("/3/0/0", &Reading::Text("Acme".into())),
            "Acme"
        );
    }

    #[test]
    fn changes_read_as_before_after_and_delta() {
        let row = change_row(&Change {
            path: "/3/0/9".into(),
            before: Some(Reading::Int(80)),
            after: Some(Reading::Int(74)),
            delta: Some(-6.0),
        });
        assert_eq!(
            row,
            ChangeRow {
                what: "Battery Level (/3/0/9)".into(),
                before: "80 %".into(),
                after: "74 %".into(),
                delta: "\u{2212}6".into(),
            }
        );
        let added = change_row(&Change {
            path: "/3/0/11/1".into(),
            before: None,
            after: Some(Reading::Int(4)),
            delta: None,
        });
        assert_eq!(
            (added.before.as_str(), added.delta.as_str()),
            ("—", "added")
        );
        assert_eq!(signed(0.25), "+0.25");
        assert_eq!(signed(0.0), "+0");
    }

    #[test]
    fn short_times_for_axes() {
        assert_eq!(short_time("2026-11-22T01:40:59.123Z"), "11-22 01:40");
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    #[test]
    fn requesters_read_as_people() {
        assert_eq!(requester_text("user:alice"), "alice");
        assert_eq!(requester_text("system:sweep"), "a fleet sweep");
        assert_eq!(requester_text("token:ci"), "an API token");
        assert_eq!(requester_text("odd"), "odd");
    }

    #[test]
    fn a_running_sweep_counts_against_the_devices_it_expects() {
        let running = Sweep {
            planned: Some(40),
            ..sweep(10, 4, 1, SweepStatus::Running)
        };
        assert_eq!(sweep_progress(&running), (5, 40, 13));
        // Devices that appeared after the start raise the total rather than pass 100 %.
        let grown = Sweep {
            planned: Some(8),
            ..sweep(10, 9, 1, SweepStatus::Running)
        };
        assert_eq!(sweep_progress(&grown), (10, 10, 100));
        // Finished: what it reached, whatever it expected.
        let done = Sweep {
            planned: Some(40),
            ..sweep(38, 38, 0, SweepStatus::Completed)
        };
        assert_eq!(sweep_progress(&done), (38, 38, 100));
    }

    #[test]
    fn sweep_progress_counts_finished_devices() {
        assert_eq!(
            sweep_progress(&sweep(10, 4, 1, SweepStatus::Running)),
            (5, 10, 50)
        );
        assert_eq!(
            sweep_progress(&sweep(0, 0, 0, SweepStatus::Running)),
            (0, 0, 0)
        );
        assert_eq!(
            sweep_progress(&sweep(0, 0, 0, SweepStatus::Completed)),
            (0, 0, 100)
        );
        assert_eq!(
            sweep_progress(&sweep(3, 3, 0, SweepStatus::Completed)),
            (3, 3, 100)
        );
    }

    #[test]
    fn filters_read_as_words() {
        assert_eq!(filter_text(&SweepFilter::default()), "all devices");
        let filter = SweepFilter {
            state: Some("active".into()),
            model: Some("SIM-1".into()),
            tag: vec!["site:lab".into()],
            q: Some(String::new()),
            ..SweepFilter::default()
        };
        assert_eq!(
            filter_text(&filter),
            "state active, model SIM-1, tag site:lab"
        );
    }

    #[test]
    fn bars_are_largest_first_and_relative_to_the_largest() {
        let mut counts = BTreeMap::new();
        counts.insert("weak_signal".to_owned(), 2);
        counts.insert("low_battery".to_owned(), 4);
        counts.insert("memory_leak".to_owned(), 2);
        counts.insert("location".to_owned(), 0);
        let b = bars(&counts, rule_label);
        let keys: Vec<&str> = b.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["low_battery", "memory_leak", "weak_signal"]);
        assert_eq!(b[0].share, 1.0);
        assert_eq!(b[1].share, 0.5);
        assert_eq!(b[0].label, "Low battery");
        assert!(bars(&BTreeMap::new(), |k| k.to_owned()).is_empty());
    }

    #[test]
    fn line_chart_spans_the_plot_and_breaks_at_gaps() {
        assert_eq!(line_chart(&[], 10.0), None);
        assert_eq!(line_chart(&[None, None], 10.0), None);

        let c = line_chart(
            &[Some(-90.0), Some(-100.0), None, Some(-110.0), Some(-95.0)],
            10.0,
        )
        .unwrap_or_else(|| panic!("a chart"));
        assert_eq!((c.low, c.high), (-110.0, -90.0));
        assert_eq!(c.dots.len(), 4);
        // Oldest at the left edge, newest at the right; highest value at the top.
        assert_eq!((c.dots[0].x, c.dots[0].y), (PLOT_LEFT, PLOT_TOP));
        assert_eq!(c.dots[2].y, PLOT_BOTTOM);
        assert_eq!(c.dots[3].x, PLOT_RIGHT);
        assert_eq!(c.dots[2].index, 3);
        // The gap splits the line in two.
        assert_eq!(c.segments.len(), 2);
        assert_eq!(c.segments[0], "40,8 93,41");

        // A flat series sits in the middle of a range widened to the minimum span.
        let flat = line_chart(&[Some(50.0), Some(50.0)], 10.0).unwrap_or_else(|| panic!("a chart"));
        assert_eq!((flat.low, flat.high), (45.0, 55.0));
        assert_eq!(flat.dots[0].y, (PLOT_TOP + PLOT_BOTTOM) / 2.0);

        // One value: one dot in the middle, no line.
        let one = line_chart(&[Some(3.0)], 1.0).unwrap_or_else(|| panic!("a chart"));
        assert!(one.segments.is_empty());
        assert_eq!(one.dots[0].x, (PLOT_LEFT + PLOT_RIGHT) / 2.0);

        // Every coordinate is inside the drawing box.
        for d in &c.dots {
            assert!((0.0..=CHART_W).contains(&d.x) && (0.0..=CHART_H).contains(&d.y));
        }
    }

    #[test]
    fn svg_markup_is_escaped_and_complete() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let times = vec![
            "2026-11-22T01:00:00Z".to_owned(),
            "2026-11-22T02:00:00Z".to_owned(),
        ];
        let svg = trend_svg(
            "Signal <strength>",
            "dBm",
            &[Some(-90.0), Some(-113.0)],
            &times,
            10.0,
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-label="Signal &lt;strength&gt; over 2 diagnoses"#));
        assert!(svg.contains(r#"<polyline points="40,8 252,74" class="trend-line"/>"#));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("<title>2026-11-22 02:00:00 UTC: -113 dBm</title>"));
        assert!(svg.contains(">11-22 01:00<") && svg.contains(">11-22 02:00<"));
        assert!(svg.contains(">-90<") && svg.contains(">-113<"));
        // No values: an empty chart that still says so.
        let empty = trend_svg("Battery", "%", &[None], &times[..1], 10.0);
        assert!(empty.contains("Battery: not reported") && !empty.contains("<circle"));

        let mut counts = BTreeMap::new();
        counts.insert("site_visit".to_owned(), 2);
        counts.insert("healthy".to_owned(), 4);
        let svg = bars_svg("By verdict", &bars(&counts, verdict_key_label));
        assert!(svg.contains(r#"aria-label="By verdict: Healthy 4, Site visit 2""#));
        assert!(svg.contains(r#"<g class="bar bar-healthy">"#));
        assert!(
            svg.contains(r#"width="286""#),
            "the largest bar is full length: {svg}"
        );
        assert!(svg.contains(r#"width="143""#), "half of it: {svg}");
        assert!(bars_svg("None", &[]).contains(r#"aria-label="None: none""#));
    }

    fn run(diagnosis: Option<Diagnosis>, changes: Vec<Change>) -> DiagnosisRun {
        DiagnosisRun {
            id: "r1".into(),
            endpoint: "m<1>".into(),
            status: if diagnosis.is_some() {
                RunStatus::Completed
            } else {
                RunStatus::Failed
            },
            requested_at: "2026-11-22T01:00:00Z".into(),
            requested_by: "user:fred".into(),
            completed_at: Some("2026-11-22T01:00:02Z".into()),
            sweep_id: None,
            diagnosis,
            snapshot: None,
            changes,
            error: Some("device <offline>".into()),
        }
    }

    #[test]
    fn run_html_shows_verdict_findings_and_changes_escaped() {
        let finding = Finding {
            rule: api_types::diagnostics::RuleId::WeakSignal,
            severity: Severity::Major,
            title: "Weak <radio> signal".into(),
            evidence: vec![Evidence::new("/4/0/2", "-113 dBm").meaning("below -110")],
            action: "Move the antenna & check the cable".into(),
            site_visit: true,
        };
        let mut unanswered = BTreeMap::new();
        unanswered.insert("/6/0".to_owned(), "not found (4.04)".to_owned());
        let d = Diagnosis::from_findings(0, vec![finding], unanswered);
        let change = Change {
            path: "/3/0/9".into(),
            before: Some(Reading::Int(80)),
            after: Some(Reading::Int(74)),
            delta: Some(-6.0),
        };
        let h = run_html(&run(Some(d), vec![change]), true);
        assert!(h.starts_with(r#"<div class="verdict verdict-site_visit"><span class="verdict-label">Site visit</span>"#), "{h}");
        assert!(h.contains("Diagnosed 2026-11-22 01:00:02 UTC by fred."));
        assert!(h.contains(
            r#"<ol class="findings" aria-label="Findings"><li class="finding sev-major">"#
        ));
        assert!(h.contains("Weak &lt;radio&gt; signal"));
        assert!(h.contains(
            "<li>Radio Signal Strength (/4/0/2): <strong>-113 dBm</strong> — below -110</li>"
        ));
        assert!(h.contains("Move the antenna &amp; check the cable"));
        assert!(h.contains("Not answered, diagnosed without: /6/0 (not found (4.04))."));
        assert!(h.contains(r#"aria-label="Changes since the previous diagnosis""#));
        assert!(h.contains("<td>Battery Level (/3/0/9)</td><td>80 %</td><td><strong>74 %</strong></td><td class=\"num\">\u{2212}6</td>"));
        assert!(!h.contains("<radio>"));

        let healthy = Diagnosis::from_findings(0, vec![], BTreeMap::new());
        let h = run_html(&run(Some(healthy.clone()), vec![]), false);
        assert!(h.contains("No findings: every rule passed."));
        assert!(h.contains("This is the first diagnosis"));
        let h = run_html(&run(Some(healthy), vec![]), true);
        assert!(h.contains("Nothing changed since the previous diagnosis."));
        let h = run_html(&run(None, vec![]), false);
        assert_eq!(
            h,
            r#"<div class="alert" role="alert">The diagnosis failed: device &lt;offline&gt;</div>"#
        );
    }

    #[test]
    fn sweep_tables_link_to_sweeps_and_devices() {
        let mut s = sweep(4, 3, 1, SweepStatus::Completed);
        s.by_verdict.insert("healthy".into(), 2);
        s.by_verdict.insert("site_visit".into(), 1);
        let h = sweeps_html(&[s]);
        assert!(
            h.contains(r#"<a href="/diagnostics/sweeps/s1">2026-11-22 01:00:00 UTC</a>"#),
            "{h}"
        );
        assert!(h.contains(
            r#"<progress max="4" value="4" aria-label="Progress"></progress> 4 of 4 (100 %)"#
        ));
        assert!(h.contains(r#"<span class="badge verdict-healthy">Healthy</span> 2"#));
        assert!(h.contains(">maria<") && h.contains(">all devices<"));

        let r = SweepResult {
            endpoint: "m 1".into(),
            run_id: "r".into(),
            status: RunStatus::Completed,
            verdict: Some(Verdict::Monitor),
            rules: vec!["weak_signal".into(), "low_battery".into()],
            summary: Some("Keep an eye on it: x.".into()),
        };
        let h = results_html(&[r]);
        assert!(
            h.contains(
                r#"<td class="endpoint"><a href="/devices/m%201">m 1</a></td><td>done</td>"#
            ),
            "{h}"
        );
        assert!(h.contains(">Weak signal, Low battery<"));
        assert!(h.contains(r#"<span class="badge verdict-monitor">Monitor</span>"#));
    }

    #[test]
    fn chart_descriptions_say_first_and_latest() {
        assert_eq!(
            chart_description("Signal", "dBm", &[Some(-95.0), None, Some(-113.0)]),
            "Signal over 2 diagnoses: from -95 to -113 dBm (latest -113 dBm)"
        );
        assert_eq!(
            chart_description("Battery", "%", &[Some(80.0)]),
            "Battery: 80 % (one diagnosis)"
        );
        assert_eq!(
            chart_description("Battery", "%", &[None]),
            "Battery: not reported"
        );
        assert_eq!(axis_text(2.5), "2.5");
        assert_eq!(axis_text(-110.0), "-110");
    }
}
