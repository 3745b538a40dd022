//! Fleet diagnostics: the list of sweeps with their progress and verdict counts, starting a sweep
//! over the fleet filters (fleet-manager and admin), and one sweep's page: progress, counts by
//! verdict and by rule as SVG bar charts, and its per-device results filtered by rule or verdict
//! (kept in the URL query) with links to the device pages. Running sweeps are polled; a fleet
//! manager can cancel one (after confirming).

use std::time::Duration;

use api_types::Role;
use api_types::diagnostics::{Sweep, SweepRequest, SweepResult, SweepStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::{self, ApiError};
use crate::components::diagnosis::BarChart;
use crate::diagnosis::{self as diag, RULES, VERDICTS};
use crate::filters::FleetFilters;
use crate::format::{self, CONNECTIVITIES, STATES, connectivity_name, state_name};
use crate::state::use_session;

/// How often running sweeps are asked for again.
const POLL: Duration = Duration::from_secs(2);

fn sweep_href(id: &str) -> String {
    format!("/diagnostics/sweeps/{}", format::percent_encode(id))
}

#[component]
pub fn DiagnosticsPage() -> impl IntoView {
    let session = use_session();
    let sweeps = RwSignal::new(None::<Result<Vec<Sweep>, ApiError>>);
    let load = move || {
        spawn_local(async move {
            let result = api::sweeps().await;
            if !matches!(result, Err(ApiError::Unauthorized)) {
                sweeps.set(Some(result));
            }
        });
    };
    load();
    let timer = set_interval_with_handle(
        move || {
            let running = sweeps.with_untracked(|s| {
                s.as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .is_some_and(|s| s.iter().any(|s| s.status == SweepStatus::Running))
            });
            if running {
                load();
            }
        },
        POLL,
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });

    view! {
        <div class="page diagnostics-page">
            <div class="page-head"><h1>"Diagnostics"</h1></div>
            <p class="muted">
                "A sweep diagnoses every device that matches the filters, a few per second, and \
                 counts the verdicts and the findings. Open a sweep to see which devices need what."
            </p>
            {move || if session.may(Role::FleetManager) {
                view! { <StartSweep/> }.into_any()
            } else {
                view! { <p class="muted">"Starting a sweep needs the fleet-manager role; any device can be diagnosed from its own page."</p> }.into_any()
            }}
            <section class="card" aria-labelledby="sweeps-heading">
                <h2 id="sweeps-heading">"Sweeps"</h2>
                {move || match sweeps.get() {
                    None => view! { <p class="muted" role="status">"Loading sweeps…"</p> }.into_any(),
                    Some(Err(e)) => view! { <div class="alert" role="alert">{e.plain()}</div> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => view! {
                        <p class="muted">"No sweeps yet."</p>
                    }.into_any(),
                    Some(Ok(list)) => view! { <div inner_html=diag::sweeps_html(&list)></div> }.into_any(),
                }}
            </section>
        </div>
    }
}

/// The form that starts a sweep; pre-filled from the URL query (the fleet page links here with
/// its filters).
#[component]
fn StartSweep() -> impl IntoView {
    let query = use_query_map();
    let navigate = use_navigate();
    let filters = RwSignal::new(query.with_untracked(|q| FleetFilters::from_query(|k| q.get(k))));
    let rate = RwSignal::new("5".to_owned());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let filter = match filters.with_untracked(FleetFilters::sweep_filter) {
            Ok(f) => f,
            Err(why) => {
                error.set(Some(why));
                return;
            }
        };
        let rate_per_sec = match rate.get_untracked().trim().parse::<f64>() {
            Ok(r) if r > 0.0 && r <= 200.0 => r,
            _ => {
                error.set(Some(
                    "Devices per second is a number from 0.1 to 200".into(),
                ));
                return;
            }
        };
        error.set(None);
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let request = SweepRequest {
                filter,
                rate_per_sec: Some(rate_per_sec),
                limit: None,
            };
            match api::start_sweep(&request).await {
                Ok(sweep) => navigate(&sweep_href(&sweep.id), NavigateOptions::default()),
                Err(ApiError::Unauthorized) => {}
                Err(e) => error.set(Some(e.plain())),
            }
            busy.set(false);
        });
    };

    let text = move |id: &'static str,
                     label: &'static str,
                     placeholder: &'static str,
                     field: fn(&mut FleetFilters) -> &mut String| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input
                    id=id
                    placeholder=placeholder
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=move || filters.with(|f| field(&mut f.clone()).clone())
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        filters.update(|f| *field(f) = value);
                    }
                />
            </div>
        }
    };
    let select = move |id: &'static str,
                       label: &'static str,
                       any: &'static str,
                       options: Vec<&'static str>,
                       field: fn(&mut FleetFilters) -> &mut String| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <select
                    id=id
                    prop:value=move || filters.with(|f| field(&mut f.clone()).clone())
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        filters.update(|f| *field(f) = value);
                    }
                >
                    <option value="">{any}</option>
                    {options.into_iter().map(|o| view! { <option value=o>{o}</option> }).collect_view()}
                </select>
            </div>
        }
    };

    view! {
        <section class="card" aria-labelledby="start-sweep-heading">
            <h2 id="start-sweep-heading">"Start a sweep"</h2>
            <form class="filters" on:submit=start>
                {text("sweep-q", "Search", "Endpoint or serial number", |f| &mut f.q)}
                {select("sweep-state", "State", "Any state", STATES.iter().map(|s| state_name(*s)).collect(), |f| &mut f.state)}
                {select("sweep-connectivity", "Connectivity", "Any connectivity", CONNECTIVITIES.iter().map(|c| connectivity_name(*c)).collect(), |f| &mut f.connectivity)}
                {text("sweep-model", "Model", "e.g. EM-200", |f| &mut f.model)}
                {text("sweep-tag", "Tag", "key=value", |f| &mut f.tag)}
                {text("sweep-firmware", "Firmware", "e.g. 1.4.2", |f| &mut f.firmware)}
                <div class="field narrow">
                    <label for="sweep-rate">"Devices per second"</label>
                    <input id="sweep-rate" type="number" min="0.1" max="200" step="0.1" bind:value=rate/>
                </div>
                <button type="submit" class="button primary" disabled=move || busy.get()>"Start sweep"</button>
            </form>
            <p class="muted small">{move || format!(
                "Diagnoses {}.",
                filters.with(|f| f.sweep_filter().map(|s| diag::filter_text(&s)).unwrap_or_else(|_| "— fix the tag first".into()))
            )}</p>
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
        </section>
    }
}

/// One sweep: progress, counts, results.
#[component]
pub fn SweepPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| {
        params.with(|p| format::percent_decode(&p.get("id").unwrap_or_default()))
    });
    view! { {move || view! { <SweepView id=id.get()/> }} }
}

#[component]
fn SweepView(id: String) -> impl IntoView {
    let id = StoredValue::new(id);
    let query = use_query_map();
    let navigate = use_navigate();
    let sweep = RwSignal::new(None::<Result<Sweep, ApiError>>);
    let rule = Memo::new(move |_| query.with(|q| q.get("rule").unwrap_or_default()));
    let verdict = Memo::new(move |_| query.with(|q| q.get("verdict").unwrap_or_default()));
    let results = RwSignal::new(None::<Result<Vec<SweepResult>, ApiError>>);
    let next_after = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u64);

    let load_sweep = move || {
        spawn_local(async move {
            let Some(id) = id.try_get_value() else {
                return;
            };
            let result = api::sweep(&id).await;
            if !matches!(result, Err(ApiError::Unauthorized)) {
                sweep.set(Some(result));
            }
        });
    };
    let load_results = move |after: Option<String>| {
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        let (r, v) = (rule.get_untracked(), verdict.get_untracked());
        spawn_local(async move {
            let Some(id) = id.try_get_value() else {
                return;
            };
            let result = api::sweep_results(&id, &r, &v, after.as_deref()).await;
            // A newer request won, or the page is gone (`try_`: no panic on a disposed value).
            if generation.try_get_value() != Some(mine)
                || matches!(result, Err(ApiError::Unauthorized))
            {
                return;
            }
            match result {
                Ok(page) => {
                    next_after.set(page.next_after);
                    if after.is_some() {
                        results.update(|list| {
                            if let Some(Ok(list)) = list {
                                list.extend(page.items);
                            }
                        });
                    } else {
                        results.set(Some(Ok(page.items)));
                    }
                }
                Err(e) => results.set(Some(Err(e))),
            }
        });
    };
    load_sweep();
    // The first page again whenever the filters (the URL query) change.
    Effect::new(move |_| {
        rule.track();
        verdict.track();
        load_results(None);
    });
    // While it runs: the counts every few seconds, and the results with them (only the first
    // page, so an operator paging through them is not interrupted).
    let timer = set_interval_with_handle(
        move || {
            let running = sweep
                .with_untracked(|s| matches!(s, Some(Ok(s)) if s.status == SweepStatus::Running));
            if running {
                load_sweep();
                if next_after.with_untracked(Option::is_none) {
                    load_results(None);
                }
            }
        },
        POLL,
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });
    // Once it finishes, the final results.
    Effect::new(move |was_running: Option<bool>| {
        let running = sweep.with(|s| matches!(s, Some(Ok(s)) if s.status == SweepStatus::Running));
        if was_running == Some(true) && !running {
            load_results(None);
        }
        running
    });

    let set_filter = move |key: &'static str, value: String| {
        let (mut r, mut v) = (rule.get_untracked(), verdict.get_untracked());
        if key == "rule" {
            r = value;
        } else {
            v = value;
        }
        let query = format::query_string(&[("rule", r), ("verdict", v)]);
        navigate(
            &format!("{}{query}", sweep_href(&id.get_value())),
            NavigateOptions::default(),
        );
    };
    let set_filter = StoredValue::new(set_filter);
    let session = use_session();

    view! {
        <div class="page sweep-page">
            <p class="breadcrumb"><a href="/diagnostics">"Diagnostics"</a> " / Sweep"</p>
            {move || match sweep.get() {
                None => view! { <p class="muted" role="status">"Loading the sweep…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <h1>"Sweep"</h1>
                    <div class="alert" role="alert">{if e.status() == Some(404) {
                        "There is no such sweep (404)".to_owned()
                    } else {
                        e.plain()
                    }}</div>
                }.into_any(),
                Some(Ok(s)) => {
                    let cancellable = s.status == SweepStatus::Running && session.may(Role::FleetManager);
                    view! {
                        <SweepSummary sweep=s on_filter=move |k, v| set_filter.with_value(|f| f(k, v))/>
                        {cancellable.then(|| view! {
                            <CancelSweep id=id.get_value() on_cancelled=move |s| sweep.set(Some(Ok(s)))/>
                        })}
                    }.into_any()
                }
            }}
            <section class="card" aria-labelledby="results-heading">
                <h2 id="results-heading">"Results"</h2>
                <form class="filters" on:submit=|ev| ev.prevent_default()>
                    <div class="field">
                        <label for="results-verdict">"Verdict"</label>
                        <select
                            id="results-verdict"
                            prop:value=move || verdict.get()
                            on:change=move |ev| set_filter.with_value(|f| f("verdict", event_target_value(&ev)))
                        >
                            <option value="">"Any verdict"</option>
                            {VERDICTS.iter().map(|v| view! {
                                <option value=diag::verdict_key(*v)>{diag::verdict_label(*v)}</option>
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="results-rule">"Finding"</label>
                        <select
                            id="results-rule"
                            prop:value=move || rule.get()
                            on:change=move |ev| set_filter.with_value(|f| f("rule", event_target_value(&ev)))
                        >
                            <option value="">"Any finding"</option>
                            {RULES.iter().map(|r| view! { <option value=*r>{diag::rule_label(r)}</option> }).collect_view()}
                        </select>
                    </div>
                </form>
                {move || match results.get() {
                    None => view! { <p class="muted" role="status">"Loading results…"</p> }.into_any(),
                    Some(Err(e)) => view! { <div class="alert" role="alert">{e.plain()}</div> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => view! {
                        <p class="muted" role="status">"No devices match these filters (yet)."</p>
                    }.into_any(),
                    Some(Ok(list)) => view! { <div inner_html=diag::results_html(&list)></div> }.into_any(),
                }}
                <Show when=move || next_after.with(Option::is_some)>
                    <div class="pager">
                        <button
                            type="button"
                            class="button"
                            on:click=move |_| load_results(next_after.get_untracked())
                        >
                            "More results"
                        </button>
                    </div>
                </Show>
            </section>
        </div>
    }
}

/// Cancels a running sweep after an explicit confirmation: the devices being diagnosed finish,
/// no others are started, and the sweep is not resumed after a restart.
#[component]
fn CancelSweep(
    id: String,
    on_cancelled: impl Fn(Sweep) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = StoredValue::new(id);
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let cancel = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let Some(id) = id.try_get_value() else {
                return;
            };
            match api::cancel_sweep(&id).await {
                Ok(sweep) => {
                    confirming.set(false);
                    on_cancelled(sweep);
                }
                Err(ApiError::Unauthorized) => {}
                Err(e) => error.set(Some(e.plain())),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card cancel-sweep" aria-label="Cancel the sweep">
            {move || if confirming.get() {
                view! {
                    <p role="alert">
                        "Stop the sweep? Devices being diagnosed now finish; the others are not \
                         diagnosed, and the sweep is not resumed after a restart."
                    </p>
                    <div class="actions">
                        <button type="button" class="button danger" on:click=cancel aria-disabled=move || busy.get().to_string()>
                            "Yes, cancel the sweep"
                        </button>
                        <button type="button" class="button" on:click=move |_| confirming.set(false)>
                            "Keep it running"
                        </button>
                    </div>
                }.into_any()
            } else {
                view! {
                    <button type="button" class="button" on:click=move |_| confirming.set(true)>
                        "Cancel sweep…"
                    </button>
                }.into_any()
            }}
            {move || error.get().map(|e| view! { <p class="outcome error" role="alert">{e}</p> })}
        </section>
    }
}

#[component]
fn SweepSummary(
    sweep: Sweep,
    on_filter: impl Fn(&'static str, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let (done, total, percent) = diag::sweep_progress(&sweep);
    let status = diag::sweep_status_label(sweep.status);
    let progress = format!(
        "{done} of {total} devices diagnosed ({percent} %){}{}",
        if sweep.pending > 0 {
            format!(", {} waiting for the device", sweep.pending)
        } else {
            String::new()
        },
        if sweep.failed > 0 {
            format!(", {} failed", sweep.failed)
        } else {
            String::new()
        },
    );
    let verdict_bars = diag::bars(&sweep.by_verdict, diag::verdict_key_label);
    let rule_bars = diag::bars(&sweep.by_rule, diag::rule_label);
    let no_rules = rule_bars.is_empty();
    let verdict_buttons = VERDICTS
        .iter()
        .map(|v| {
            let key = diag::verdict_key(*v);
            let n = sweep.by_verdict.get(key).copied().unwrap_or(0);
            view! {
                <button
                    type="button"
                    class=format!("stat verdict-{key}")
                    title=format!("Show the {} devices", diag::verdict_label(*v))
                    on:click=move |_| on_filter("verdict", key.to_owned())
                >
                    <span class="stat-label">{diag::verdict_label(*v)}</span>
                    " "
                    <span class="stat-value">{n}</span>
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="page-head">
            <h1>"Sweep"</h1>
            <span class=format!("badge sweep-{}", status.to_lowercase())>{status}</span>
        </div>
        <p class="muted">{format!(
            "{} · started {} by {} · {} devices per second{}",
            diag::filter_text(&sweep.filter),
            format::time_text(&sweep.created_at),
            diag::requester_text(&sweep.created_by),
            sweep.rate_per_sec,
            sweep.finished_at.as_deref().map(|f| format!(" · finished {}", format::time_text(f))).unwrap_or_default(),
        )}</p>
        <section class="card" aria-label="Sweep progress">
            <div class="progress-line">
                <progress max=total.max(1) value=done aria-label="Devices diagnosed"></progress>
                <span role="status">{format!("{status}: {progress}")}</span>
            </div>
            <div class="stats verdict-stats" aria-label="Counts by verdict">{verdict_buttons}</div>
        </section>
        <div class="device-grid">
            <section class="card" aria-labelledby="by-verdict-heading">
                <h2 id="by-verdict-heading">"By verdict"</h2>
                <BarChart label="Devices by verdict" bars=verdict_bars/>
            </section>
            <section class="card" aria-labelledby="by-rule-heading">
                <h2 id="by-rule-heading">"By finding"</h2>
                {if no_rules {
                    view! { <p class="muted">"No findings so far."</p> }.into_any()
                } else {
                    view! { <BarChart label="Devices by finding" bars=rule_bars/> }.into_any()
                }}
            </section>
        </div>
    }
}
