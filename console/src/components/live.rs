//! The device's live event feed (server-sent events), newest first: registrations, check-ins,
//! notifications with their values, queued and completed requests.

use leptos::prelude::*;

use crate::api::LinkState;
use crate::format;
use crate::model::LiveEvent;

/// The state of the page's live event stream: "Live", "Connecting…" or "Reconnecting…".
#[component]
pub fn LiveIndicator(state: RwSignal<LinkState>) -> impl IntoView {
    view! {
        <span
            class=move || match state.get() {
                LinkState::Live => "live on",
                LinkState::Connecting => "live",
                LinkState::Reconnecting => "live off",
            }
            role="status"
            data-testid="live-indicator"
            title="Live updates from the server"
        >
            <span class="dot" aria-hidden="true"></span>
            {move || match state.get() {
                LinkState::Live => "Live",
                LinkState::Connecting => "Connecting…",
                LinkState::Reconnecting => "Reconnecting…",
            }}
        </span>
    }
}

#[component]
pub fn LiveEvents(events: RwSignal<Vec<LiveEvent>>, live: RwSignal<LinkState>) -> impl IntoView {
    view! {
        <section class="card" aria-label="Live events">
            <div class="card-head">
                <h2>"Live events"</h2>
                <LiveIndicator state=live/>
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
