//! Remote diagnostics on the device page: the "Diagnose" button, the verdict with its summary
//! sentence, the findings worst first (severity, evidence, what to do), what changed since the
//! previous diagnosis, small SVG trend charts of RSSI / battery / free memory over the stored
//! runs, and the history of runs. A sleeping (queue-mode) device answers when it next wakes: the
//! pending run is polled until it completes. Also the shared pieces of the fleet diagnostics
//! page: the verdict badge and the hand-drawn SVG charts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api_types::diagnostics::{DiagnosisHistory, DiagnosisRun, RunStatus, Verdict};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiError};
use crate::diagnosis::{self as diag, Bar};
use crate::format;

/// How often a pending run is asked for again.
const POLL_MS: i32 = 2_000;

#[component]
pub fn VerdictBadge(verdict: Verdict) -> impl IntoView {
    view! {
        <span class=format!("badge verdict-{}", diag::verdict_key(verdict))>
            {diag::verdict_label(verdict)}
        </span>
    }
}

#[component]
pub fn DeviceDiagnostics(endpoint: String) -> impl IntoView {
    let endpoint = StoredValue::new(endpoint);
    let history = RwSignal::new(None::<Result<DiagnosisHistory, ApiError>>);
    // The run on show: the newest, the one just asked for, or one picked from the history.
    let selected = RwSignal::new(None::<DiagnosisRun>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Polling stops when the page goes away.
    let alive = Arc::new(AtomicBool::new(true));
    {
        let alive = alive.clone();
        on_cleanup(move || alive.store(false, Ordering::Relaxed));
    }

    // Answers may arrive after the operator left the page: every read of page state after an
    // await uses the `try_` forms (a disposed signal is then a no-op, not a panic).
    let load_history = move || {
        spawn_local(async move {
            let Some(ep) = endpoint.try_get_value() else {
                return;
            };
            let result = api::diagnosis_history(&ep).await;
            if matches!(result, Err(ApiError::Unauthorized)) {
                return;
            }
            if let Ok(h) = &result {
                let newest = h.runs.first().cloned();
                let replace = selected.try_with_untracked(|s| match (s, &newest) {
                    (None, _) => true,
                    // The same run, now with its final state.
                    (Some(s), Some(n)) => s.id == n.id,
                    _ => false,
                });
                if replace == Some(true) {
                    selected.set(newest);
                }
            }
            history.set(Some(result));
        });
    };
    load_history();

    let diagnose = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let alive = alive.clone();
        spawn_local(async move {
            let Some(ep) = endpoint.try_get_value() else {
                return;
            };
            let mut result = api::diagnose(&ep).await;
            // A sleeping device: ask again until the run is no longer pending.
            while let Ok(run) = &result {
                if run.status != RunStatus::Pending {
                    break;
                }
                selected.set(Some(run.clone()));
                api::sleep(POLL_MS).await;
                if !alive.load(Ordering::Relaxed) {
                    return;
                }
                result = api::diagnosis_run(&run.id).await;
            }
            match result {
                Ok(run) => {
                    selected.set(Some(run));
                    load_history();
                }
                Err(ApiError::Unauthorized) => {}
                Err(e) => error.set(Some(e.plain())),
            }
            busy.set(false);
        });
    };

    view! {
        <section class="card diagnostics" aria-label="Diagnostics">
            <div class="card-head">
                <h2>"Diagnostics"</h2>
                <button
                    type="button"
                    class="button primary"
                    on:click=diagnose
                    aria-disabled=move || busy.get().to_string()
                    aria-describedby="diagnose-hint"
                >
                    "Diagnose"
                </button>
            </div>
            <p id="diagnose-hint" class="muted small">
                "Reads the device's diagnostic objects (device, connectivity, firmware, location, \
                 data usage) and checks them against the rules."
            </p>
            <div role="status" class="diag-status">
                {move || {
                    let pending = selected.with(|s| s.as_ref().is_some_and(|r| r.status == RunStatus::Pending));
                    if pending {
                        Some("The device is asleep (queue mode): the diagnosis runs when it next checks in. This page updates by itself.")
                    } else if busy.get() {
                        Some("Diagnosing: reading the device…")
                    } else {
                        None
                    }
                }}
            </div>
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
            {move || match (selected.get(), history.with(|h| h.as_ref().map(Result::is_ok))) {
                (Some(run), _) => {
                    // Whether an older completed run exists to compare with.
                    let earlier = history.with(|h| match h {
                        Some(Ok(h)) => h.runs.iter().any(|r| {
                            r.status == RunStatus::Completed && r.requested_at < run.requested_at
                        }),
                        _ => false,
                    });
                    view! { <div class="run" inner_html=diag::run_html(&run, earlier)></div> }.into_any()
                }
                (None, Some(true)) => view! {
                    <p class="muted">"This device has not been diagnosed yet."</p>
                }.into_any(),
                _ => ().into_any(),
            }}
            {move || match history.get() {
                None => view! { <p class="muted">"Loading the diagnosis history…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <div class="alert" role="alert">{format!("The diagnosis history is not available: {}", e.plain())}</div>
                }.into_any(),
                Some(Ok(h)) => history_view(h, selected).into_any(),
            }}
        </section>
    }
}

/// The trend charts and the table of runs.
fn history_view(
    history: DiagnosisHistory,
    selected: RwSignal<Option<DiagnosisRun>>,
) -> impl IntoView {
    let times: Vec<String> = history.series.iter().map(|p| p.at.clone()).collect();
    let series = |f: fn(&api_types::diagnostics::DiagnosisPoint) -> Option<i64>| {
        history
            .series
            .iter()
            .map(|p| f(p).map(|v| v as f64))
            .collect::<Vec<_>>()
    };
    let charts = (!history.series.is_empty()).then(|| {
        view! {
            <h3>"Trends"</h3>
            <div class="trends">
                <TrendChart title="Signal strength" unit="dBm" values=series(|p| p.rssi_dbm) times=times.clone() min_span=10.0/>
                <TrendChart title="Battery" unit="%" values=series(|p| p.battery_percent) times=times.clone() min_span=10.0/>
                <TrendChart title="Free memory" unit="KB" values=series(|p| p.free_memory_kb) times=times min_span=8.0/>
            </div>
        }
    });
    let rows = history
        .runs
        .into_iter()
        .map(|run| {
            let id = run.id.clone();
            let when = format::time_text(run.completed_at.as_deref().unwrap_or(&run.requested_at));
            let by = diag::requester_text(&run.requested_by);
            let verdict = run.diagnosis.as_ref().map(|d| d.verdict);
            let summary = match run.status {
                RunStatus::Pending => "Waiting for the device".to_owned(),
                RunStatus::Failed => run.error.clone().unwrap_or_else(|| "Failed".into()),
                RunStatus::Completed => run
                    .diagnosis
                    .as_ref()
                    .map(|d| d.summary.clone())
                    .unwrap_or_default(),
            };
            let is_shown = {
                let id = id.clone();
                move || selected.with(|s| s.as_ref().is_some_and(|s| s.id == id))
            };
            let shown = is_shown.clone();
            view! {
                <tr class:selected=is_shown>
                    <td class="nowrap">{when}</td>
                    <td>{by}</td>
                    <td>{verdict.map(|v| view! { <VerdictBadge verdict=v/> })}</td>
                    <td>{summary}</td>
                    <td>
                        <button
                            type="button"
                            class="button small"
                            aria-pressed=move || shown().to_string()
                            on:click=move |_| selected.set(Some(run.clone()))
                        >
                            "Show"
                        </button>
                    </td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let empty = rows.is_empty();
    view! {
        {charts}
        {(!empty).then(|| view! {
            <h3>"Diagnosis history"</h3>
            <div class="table-wrap">
                <table class="data compact" aria-label="Diagnosis history">
                    <thead>
                        <tr>
                            <th scope="col">"When"</th>
                            <th scope="col">"Requested by"</th>
                            <th scope="col">"Verdict"</th>
                            <th scope="col">"Summary"</th>
                            <th scope="col"><span class="visually-hidden">"Show"</span></th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        })}
    }
}

/// A small line chart of one value over the runs (oldest left), hand-drawn SVG.
#[component]
pub fn TrendChart(
    title: &'static str,
    unit: &'static str,
    values: Vec<Option<f64>>,
    times: Vec<String>,
    min_span: f64,
) -> impl IntoView {
    let caption = match values.iter().rev().flatten().next() {
        Some(v) => format!("{title}: {} {unit}", diag::axis_text(*v)),
        None => format!("{title}: not reported"),
    };
    let svg = diag::trend_svg(title, unit, &values, &times, min_span);
    view! {
        <figure class="trend">
            <figcaption>{caption}</figcaption>
            <div class="chart-box" inner_html=svg></div>
        </figure>
    }
}

/// A horizontal bar chart of counts, hand-drawn SVG (its description carries the counts).
#[component]
pub fn BarChart(label: &'static str, bars: Vec<Bar>) -> impl IntoView {
    view! { <div class="chart-box" inner_html=diag::bars_svg(label, &bars)></div> }
}
