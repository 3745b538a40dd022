//! The device's live event feed (server-sent events), newest first: registrations, check-ins,
//! notifications with their values, queued and completed requests.

use leptos::prelude::*;

use crate::format;
use crate::model::LiveEvent;

#[component]
pub fn LiveEvents(events: RwSignal<Vec<LiveEvent>>, live: RwSignal<bool>) -> impl IntoView {
    view! {
        <section class="card" aria-label="Live events">
            <div class="card-head">
                <h2>"Live events"</h2>
                <span class=move || if live.get() { "live on" } else { "live" } role="status">
                    <span class="dot" aria-hidden="true"></span>
                    {move || if live.get() { "Connected" } else { "Connecting…" }}
                </span>
            </div>
            {move || {
                let list = events.get();
                if list.is_empty() {
                    return view! {
                        <p class="muted">"No events since this page opened. Registrations, check-ins and observed values appear here as they happen."</p>
                    }.into_any();
                }
                view! {
                    <ol class="events" aria-live="polite">
                        {list.into_iter().map(|e| {
                            let at = e.at.as_deref().map(format::time_text).unwrap_or_default();
                            let values = e.values.clone();
                            view! {
                                <li class=format!("event kind-{}", e.kind)>
                                    <div class="event-head">
                                        <span class="event-kind">{e.kind.replace('_', " ")}</span>
                                        <time class="muted">{at}</time>
                                    </div>
                                    <p>{e.summary}</p>
                                    {(values.len() > 1).then(|| view! {
                                        <ul class="event-values">
                                            {values.into_iter().map(|v| view! {
                                                <li><span class="mono">{v.path}</span>" "{v.name}" = "<strong>{v.text}</strong></li>
                                            }).collect_view()}
                                        </ul>
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
    }
}
