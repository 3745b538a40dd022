//! The fleet page: counts by lifecycle state and connectivity, a searchable and filterable
//! device table paginated by the server (keyset cursors, so page N costs the same with 100,000
//! devices as page 1) with its filters in the URL query, live refresh on registrations and
//! lifecycle changes (and after the event stream reconnects), "last seen" that ticks, and the
//! CSV import for fleet managers.

use api_types::{DevicePage, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use std::time::Duration;

use api_types::DeviceSummary;

use crate::api::{self, ApiError, LinkState};
use crate::components::badges::{ConnectivityBadge, StateBadge};
use crate::components::import::Import;
use crate::components::live::LiveIndicator;
use crate::filters::FleetFilters;
use crate::format::{
    self, CONNECTIVITIES, STATES, connectivity_count, connectivity_name, state_count, state_name,
};
use crate::state::{use_clock, use_session};

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// How long typing must pause before the table is asked for again.
const TYPING_PAUSE: Duration = Duration::from_millis(250);
/// The least time between two live refreshes of the table and the counts.
const LIVE_REFRESH: Duration = Duration::from_secs(3);

#[component]
pub fn FleetPage() -> impl IntoView {
    let session = use_session();
    let url_query = use_query_map();
    let navigate = use_navigate();
    // The filters live in the URL query (a filtered fleet is a link; back returns to the
    // previous filters). `filters` is what the form shows; the URL follows it once typing
    // pauses, and it follows the URL when that changes by itself (back, forward, a link).
    let from_url = move || url_query.with(|q| FleetFilters::from_query(|k| q.get(k)));
    let filters =
        RwSignal::new(url_query.with_untracked(|q| FleetFilters::from_query(|k| q.get(k))));
    // The `after` cursor of each page visited so far: page 0 has none.
    let cursors = RwSignal::new(vec![None::<String>]);
    let page = RwSignal::new(0usize);
    let rows = RwSignal::new(None::<Result<DevicePage, ApiError>>);
    let loading = RwSignal::new(false);
    let summary = RwSignal::new(None::<Result<DeviceSummary, ApiError>>);
    let tag_problem = RwSignal::new(None::<String>);
    let live = RwSignal::new(LinkState::Connecting);
    // Bumped to fetch again with the same filters (live refresh, after an import).
    let refresh = RwSignal::new(0u32);
    let generation = StoredValue::new(0u64);
    let last_filters = StoredValue::new(None::<FleetFilters>);

    let load_summary = move || {
        spawn_local(async move {
            let result = api::summary().await;
            if !matches!(result, Err(ApiError::Unauthorized)) {
                summary.set(Some(result));
            }
        });
    };
    load_summary();

    // Fetch the current page whenever the filters, the page or `refresh` change; typing waits
    // for a pause, and an answer that arrives after a newer request is dropped.
    Effect::new(move |_| {
        let current = filters.get();
        let index = page.get();
        let after = cursors.with(|c| c.get(index).cloned().flatten());
        let refreshing = refresh.get() > 0;
        let (mut pairs, problem) = current.api_pairs();
        tag_problem.set(problem);
        pairs.push(("after", after.unwrap_or_default()));
        pairs.push(("limit", PAGE_SIZE.to_string()));
        let query = format::query_string(&pairs);
        let typed = last_filters.with_value(|f| f.as_ref().is_some_and(|f| *f != current));
        last_filters.set_value(Some(current));
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        let delay = if typed { TYPING_PAUSE } else { Duration::ZERO };
        if !refreshing || typed {
            loading.set(true);
        }
        let navigate = navigate.clone();
        set_timeout(
            move || {
                // `try_`: the page may be gone by now (navigated away while typing or loading).
                if generation.try_get_value() != Some(mine) {
                    return;
                }
                // The URL catches up with what was typed: one history entry per pause.
                let wanted = filters.try_with_untracked(FleetFilters::to_query);
                let shown = url_query
                    .try_with_untracked(|q| FleetFilters::from_query(|k| q.get(k)).to_query());
                if let (Some(wanted), Some(shown)) = (wanted, shown)
                    && wanted != shown
                {
                    navigate(
                        &format!("/{wanted}"),
                        NavigateOptions {
                            scroll: false,
                            ..NavigateOptions::default()
                        },
                    );
                }
                spawn_local(async move {
                    let result = api::devices(&query).await;
                    if generation.try_get_value() != Some(mine)
                        || matches!(result, Err(ApiError::Unauthorized))
                    {
                        return;
                    }
                    rows.set(Some(result));
                    loading.set(false);
                });
            },
            delay,
        );
    });

    // Any filter change starts again at page 1.
    let set_filter = move |change: &dyn Fn(&mut FleetFilters)| {
        filters.update(|f| change(f));
        cursors.set(vec![None]);
        page.set(0);
    };
    // The URL changed by itself (back / forward / a link): show its filters.
    Effect::new(move |_| {
        let wanted = from_url();
        if filters.with_untracked(|f| *f != wanted) {
            set_filter(&|f: &mut FleetFilters| *f = wanted.clone());
        }
    });

    // Live: registrations and their ends change connectivity and counts; refresh at most every
    // few seconds however many arrive.
    let dirty = StoredValue::new(false);
    let subscription = api::subscribe(
        None,
        &[
            "registered",
            "deregistered",
            "expired",
            "removed",
            "state_changed",
            "lagged",
        ],
        move |_, _| dirty.set_value(true),
        move |state| {
            // Back after a drop: whatever happened meanwhile was missed.
            if state == LinkState::Live && live.try_get_untracked() == Some(LinkState::Reconnecting)
            {
                dirty.set_value(true);
            }
            live.set(state);
        },
    );
    let timer = set_interval_with_handle(
        move || {
            if dirty.get_value() {
                dirty.set_value(false);
                refresh.update(|r| *r += 1);
                load_summary();
            }
        },
        LIVE_REFRESH,
    )
    .ok();
    on_cleanup(move || {
        if let Some(id) = subscription {
            api::unsubscribe(id);
        }
        if let Some(timer) = timer {
            timer.clear();
        }
    });

    let next_page = move |_| {
        let next = rows.with_untracked(|r| {
            r.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|p| p.next_after.clone())
        });
        if let Some(after) = next {
            let index = page.get_untracked() + 1;
            cursors.update(|c| {
                c.truncate(index);
                c.push(Some(after));
            });
            page.set(index);
        }
    };
    let previous_page = move |_| {
        let index = page.get_untracked();
        if index > 0 {
            page.set(index - 1);
        }
    };
    let has_next = move || {
        rows.with(|r| {
            r.as_ref()
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|p| p.next_after.is_some())
        })
    };

    let text_input = move |id: &'static str,
                           label: &'static str,
                           placeholder: &'static str,
                           field: fn(&mut FleetFilters) -> &mut String| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input
                    id=id
                    type="search"
                    placeholder=placeholder
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=move || filters.with(|f| {
                        let mut f = f.clone();
                        field(&mut f).clone()
                    })
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        set_filter(&|f: &mut FleetFilters| *field(f) = value.clone());
                    }
                />
            </div>
        }
    };

    let pick = move |state: Option<String>, connectivity: Option<String>| {
        set_filter(&|f: &mut FleetFilters| {
            if let Some(s) = &state {
                f.state = s.clone();
            }
            if let Some(c) = &connectivity {
                f.connectivity = c.clone();
            }
        });
    };

    view! {
        <div class="page fleet-page">
            <div class="page-head">
                <h1>"Fleet"</h1>
                <LiveIndicator state=live/>
                <Show when=move || session.may(Role::FleetManager)>
                    // The sweep form opens with the same filters.
                    <a
                        class="button head-action"
                        href=move || format!("/diagnostics{}", filters.with(FleetFilters::to_query))
                    >
                        "Diagnose these devices"
                    </a>
                </Show>
            </div>

            <Summary summary=summary on_pick=pick/>

            <section class="card" aria-labelledby="devices-heading">
                <h2 id="devices-heading" class="visually-hidden">"Devices"</h2>
                <form class="filters" role="search" on:submit=|ev| ev.prevent_default()>
                    <div class="field grow">
                        <label for="filter-q">"Search"</label>
                        <input
                            id="filter-q"
                            type="search"
                            placeholder="Endpoint or serial number"
                            autocomplete="off"
                            spellcheck="false"
                            prop:value=move || filters.with(|f| f.q.clone())
                            on:input=move |ev| {
                                let value = event_target_value(&ev);
                                set_filter(&|f: &mut FleetFilters| f.q = value.clone());
                            }
                        />
                    </div>
                    <div class="field">
                        <label for="filter-state">"State"</label>
                        <select
                            id="filter-state"
                            prop:value=move || filters.with(|f| f.state.clone())
                            on:change=move |ev| {
                                let value = event_target_value(&ev);
                                set_filter(&|f: &mut FleetFilters| f.state = value.clone());
                            }
                        >
                            <option value="">"Any state"</option>
                            {STATES.iter().map(|s| {
                                let name = state_name(*s);
                                view! { <option value=name>{name}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="filter-connectivity">"Connectivity"</label>
                        <select
                            id="filter-connectivity"
                            prop:value=move || filters.with(|f| f.connectivity.clone())
                            on:change=move |ev| {
                                let value = event_target_value(&ev);
                                set_filter(&|f: &mut FleetFilters| f.connectivity = value.clone());
                            }
                        >
                            <option value="">"Any connectivity"</option>
                            {CONNECTIVITIES.iter().map(|c| {
                                let name = connectivity_name(*c);
                                view! { <option value=name>{name}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    {text_input("filter-model", "Model", "e.g. EM-200", |f| &mut f.model)}
                    {text_input("filter-tag", "Tag", "key=value", |f| &mut f.tag)}
                    {text_input("filter-firmware", "Firmware", "e.g. 1.4.2", |f| &mut f.firmware)}
                    <Show when=move || filters.with(FleetFilters::any)>
                        <button
                            type="button"
                            class="button subtle clear"
                            on:click=move |_| set_filter(&|f: &mut FleetFilters| *f = FleetFilters::default())
                        >
                            "Clear filters"
                        </button>
                    </Show>
                </form>
                {move || tag_problem.get().map(|p| view! { <p class="field-error" role="alert">{p}</p> })}

                <DeviceTable rows=rows loading=loading page=page/>

                <div class="pager">
                    <button
                        type="button"
                        class="button"
                        on:click=previous_page
                        disabled=move || page.get() == 0
                    >
                        "Previous page"
                    </button>
                    <span class="muted">{move || format!("Page {}", page.get() + 1)}</span>
                    <button
                        type="button"
                        class="button"
                        on:click=next_page
                        disabled=move || !has_next()
                    >
                        "Next page"
                    </button>
                </div>
            </section>

            <Show when=move || session.may(Role::FleetManager)>
                <Import on_done=move || {
                    refresh.update(|r| *r += 1);
                    load_summary();
                }/>
            </Show>
        </div>
    }
}

/// The counts by state and by connectivity; a count is a button that filters the table.
#[component]
fn Summary(
    summary: RwSignal<Option<Result<DeviceSummary, ApiError>>>,
    on_pick: impl Fn(Option<String>, Option<String>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <section class="summary" aria-label="Fleet summary">
            {move || match summary.get() {
                None => view! { <p class="muted">"Counting devices…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <p class="muted">{format!("Counts are not available: {}", e.plain())}</p>
                }.into_any(),
                Some(Ok(s)) => {
                    let states = STATES.iter().map(|st| {
                        let name = state_name(*st);
                        let n = state_count(&s.by_state, *st);
                        view! {
                            <button
                                type="button"
                                class=format!("stat state-{name}")
                                title=format!("Show {name} devices")
                                on:click=move |_| on_pick(Some(name.to_owned()), None)
                            >
                                <span class="stat-label">{name}</span>
                                " "
                                <span class="stat-value">{n}</span>
                            </button>
                        }
                    }).collect_view();
                    let conns = CONNECTIVITIES.iter().map(|c| {
                        let name = connectivity_name(*c);
                        let n = connectivity_count(&s.by_connectivity, *c);
                        view! {
                            <button
                                type="button"
                                class=format!("stat conn-{name}")
                                title=format!("Show {name} devices")
                                on:click=move |_| on_pick(None, Some(name.to_owned()))
                            >
                                <span class="stat-label">{name}</span>
                                " "
                                <span class="stat-value">{n}</span>
                            </button>
                        }
                    }).collect_view();
                    view! {
                        <div class="stat-group total">
                            <span class="stat-label">"Devices"</span>
                            " "
                            <span class="stat-value big">{s.total}</span>
                        </div>
                        <div class="stat-group">
                            <h2 class="stat-title">"Lifecycle"</h2>
                            <div class="stats">{states}</div>
                        </div>
                        <div class="stat-group">
                            <h2 class="stat-title">"Connectivity"</h2>
                            <div class="stats">{conns}</div>
                        </div>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The device table (or its loading, empty and error states).
#[component]
fn DeviceTable(
    rows: RwSignal<Option<Result<DevicePage, ApiError>>>,
    loading: RwSignal<bool>,
    page: RwSignal<usize>,
) -> impl IntoView {
    let clock = use_clock();
    view! {
        <div class="table-wrap" aria-busy=move || loading.get().to_string()>
            {move || match rows.get() {
                None => view! { <p class="muted pad" role="status">"Loading devices…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <div class="alert" role="alert">{e.plain()}</div>
                }.into_any(),
                Some(Ok(p)) => {
                    let count = p.devices.len();
                    let first = page.get_untracked() * PAGE_SIZE as usize + 1;
                    let status = if count == 0 {
                        "No devices match these filters.".to_owned()
                    } else {
                        format!("Showing devices {first}–{}", first + count - 1)
                    };
                    let body = p.devices.into_iter().map(|d| {
                        let href = format::device_href(&d.endpoint);
                        let seen = d.last_seen.as_deref().and_then(format::parse_rfc3339);
                        let seen_text = move || seen.map_or_else(|| "never".to_owned(), |t| format::relative_time(t, clock.get()));
                        let seen_title = d.last_seen.as_deref().map(format::time_text).unwrap_or_default();
                        let tags = d.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
                        view! {
                            <tr>
                                <td class="endpoint"><a href=href>{d.endpoint.clone()}</a></td>
                                <td><StateBadge state=d.state/></td>
                                <td><ConnectivityBadge connectivity=d.connectivity/></td>
                                <td>{d.model.clone()}</td>
                                <td>{d.firmware_version.clone().unwrap_or_else(|| "—".into())}</td>
                                <td title=seen_title>{seen_text}</td>
                                <td class="tags">{tags}</td>
                            </tr>
                        }
                    }).collect_view();
                    view! {
                        <p class="muted table-status" role="status" data-testid="fleet-loaded">{status}</p>
                        <table aria-label="Devices" class="data">
                            <thead>
                                <tr>
                                    <th scope="col">"Endpoint"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Connectivity"</th>
                                    <th scope="col">"Model"</th>
                                    <th scope="col">"Firmware"</th>
                                    <th scope="col">"Last seen"</th>
                                    <th scope="col">"Tags"</th>
                                </tr>
                            </thead>
                            <tbody>{body}</tbody>
                        </table>
                    }.into_any()
                }
            }}
        </div>
    }
}

/// Now, in seconds since the Unix epoch (the browser's clock).
pub fn now_seconds() -> f64 {
    js_sys::Date::now() / 1000.0
}
