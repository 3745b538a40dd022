//! The device's audit history: who did what and when, the state change and the reason, newest
//! first, with older pages on demand.

use api_types::AuditEntry;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiError};
use crate::format;

#[component]
pub fn AuditHistory(endpoint: String, version: RwSignal<u32>) -> impl IntoView {
    let endpoint = StoredValue::new(endpoint);
    let entries = RwSignal::new(Vec::<AuditEntry>::new());
    let next_before = RwSignal::new(None::<i64>);
    let error = RwSignal::new(None::<String>);
    let loaded = RwSignal::new(false);

    let load = move |before: Option<i64>| {
        spawn_local(async move {
            match api::audit(&endpoint.get_value(), before).await {
                Ok(page) => {
                    if before.is_some() {
                        entries.update(|e| e.extend(page.entries));
                    } else {
                        entries.set(page.entries);
                    }
                    next_before.set(page.next_before);
                    error.set(None);
                }
                Err(ApiError::Unauthorized) => {}
                Err(e) => error.set(Some(e.plain())),
            }
            loaded.set(true);
        });
    };
    // First page now and again whenever the page knows the trail changed.
    Effect::new(move |_| {
        version.track();
        load(None);
    });

    view! {
        <section class="card" aria-label="Audit history">
            <h2>"Audit history"</h2>
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
            {move || {
                let list = entries.get();
                if !loaded.get() {
                    return view! { <p class="muted" role="status">"Loading…"</p> }.into_any();
                }
                if list.is_empty() {
                    return view! { <p class="muted">"No audit entries yet."</p> }.into_any();
                }
                view! {
                    <div class="table-wrap">
                        <table class="data" aria-label="Audit entries">
                            <thead>
                                <tr>
                                    <th scope="col">"Time"</th>
                                    <th scope="col">"Actor"</th>
                                    <th scope="col">"Action"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Reason"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|e| {
                                    let change = match (e.from, e.to) {
                                        (Some(f), Some(t)) => format!("{} → {}", format::state_name(f), format::state_name(t)),
                                        (None, Some(t)) => format!("→ {}", format::state_name(t)),
                                        (Some(f), None) => format!("{} →", format::state_name(f)),
                                        (None, None) => String::new(),
                                    };
                                    view! {
                                        <tr>
                                            <td class="nowrap">{format::time_text(&e.at)}</td>
                                            <td>{e.actor}</td>
                                            <td>{e.action}</td>
                                            <td class="nowrap">{change}</td>
                                            <td>{e.reason.unwrap_or_default()}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            {move || next_before.get().map(|before| view! {
                <button type="button" class="button subtle" on:click=move |_| load(Some(before))>"Show older entries"</button>
            })}
        </section>
    }
}
