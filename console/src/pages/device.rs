//! One device: who it is, its live registration, its lifecycle with the actions the operator's
//! role may take, remote diagnostics, its object tree with operations, its live events and its
//! audit history. The page listens to this device's events and re-reads the device when its
//! registration changes.

use api_types::lwm2m::RegistrationOut;
use api_types::{Device, LifecycleChange};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;

use crate::api::{self, ApiError, LinkState};
use crate::components::audit::AuditHistory;
use crate::components::badges::{ConnectivityBadge, StateBadge};
use crate::components::diagnosis::DeviceDiagnostics;
use crate::components::live::LiveEvents;
use crate::components::objects::{ObjectTree, Values};
use crate::format::{self, LifecycleAction, lifecycle_actions};
use crate::model::{self, LiveEvent};
use crate::state::{use_clock, use_session};

/// The most events the feed keeps.
const MAX_EVENTS: usize = 200;

/// Event kinds that change the registration (so the page re-reads the device).
const REGISTRATION_KINDS: [&str; 6] = [
    "registered",
    "updated",
    "deregistered",
    "expired",
    "removed",
    "registration_refused",
];

#[component]
pub fn DevicePage() -> impl IntoView {
    let params = use_params_map();
    let endpoint = Memo::new(move |_| {
        params.with(|p| format::percent_decode(&p.get("endpoint").unwrap_or_default()))
    });
    view! {
        // A new endpoint (following a link from one device to another) is a fresh page.
        {move || {
            let endpoint = endpoint.get();
            view! { <DeviceView endpoint=endpoint/> }
        }}
    }
}

#[component]
fn DeviceView(endpoint: String) -> impl IntoView {
    let device = RwSignal::new(None::<Result<Device, ApiError>>);
    let registration = RwSignal::new(None::<Result<Option<RegistrationOut>, ApiError>>);
    let events = RwSignal::new(Vec::<LiveEvent>::new());
    let live = RwSignal::new(LinkState::Connecting);
    let values = Values::new();
    // Bumped when the audit trail has new entries.
    let audit_version = RwSignal::new(0u32);
    let endpoint = StoredValue::new(endpoint);

    let load_device = move || {
        let ep = endpoint.get_value();
        spawn_local(async move {
            let result = api::device(&ep).await;
            if !matches!(result, Err(ApiError::Unauthorized)) {
                device.set(Some(result));
            }
        });
    };
    let load_registration = move || {
        let ep = endpoint.get_value();
        spawn_local(async move {
            let result = api::registration(&ep).await;
            if !matches!(result, Err(ApiError::Unauthorized)) {
                registration.set(Some(result));
            }
        });
    };
    load_device();
    load_registration();
    values.load_observations(endpoint.get_value());

    let mut kinds: Vec<&str> = REGISTRATION_KINDS.to_vec();
    kinds.extend([
        "notification",
        "observation_ended",
        "send",
        "operation_queued",
        "operation_completed",
        "lagged",
        // Lifecycle changes made elsewhere (another operator, a registration, bootstrap).
        "state_changed",
    ]);
    let ep = endpoint.get_value();
    let subscription = api::subscribe(
        Some(&endpoint.get_value()),
        &kinds,
        move |kind, data| {
            let event = model::live_event(&kind, &data);
            if event.endpoint.as_deref().is_some_and(|e| e != ep) {
                return;
            }
            values.apply_event(&event);
            if REGISTRATION_KINDS.contains(&kind.as_str()) {
                load_device();
                load_registration();
                audit_version.update(|v| *v += 1);
            } else if kind == "state_changed" || kind == "lagged" {
                load_device();
                audit_version.update(|v| *v += 1);
            }
            events.update(|list| {
                list.insert(0, event);
                list.truncate(MAX_EVENTS);
            });
        },
        move |state| {
            // Back after a drop: events may have been missed, so read the device again.
            if state == LinkState::Live && live.try_get_untracked() == Some(LinkState::Reconnecting)
            {
                load_device();
                load_registration();
                audit_version.update(|v| *v += 1);
            }
            live.set(state);
        },
    );
    on_cleanup(move || {
        if let Some(id) = subscription {
            api::unsubscribe(id);
        }
    });

    view! {
        <div class="page device-page">
            <p class="breadcrumb"><a href="/">"Fleet"</a> " / " {endpoint.get_value()}</p>
            <div class="page-head">
                <h1>{endpoint.get_value()}</h1>
                {move || device.get().and_then(Result::ok).map(|d| view! {
                    <StateBadge state=d.state/>
                    <ConnectivityBadge connectivity=d.connectivity/>
                })}
            </div>
            {move || match device.get() {
                None => view! { <p class="muted" role="status">"Loading the device…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <div class="alert" role="alert">
                        {if e.status() == Some(404) {
                            format!("There is no device named {} (404)", endpoint.get_value())
                        } else {
                            e.plain()
                        }}
                    </div>
                }.into_any(),
                Some(Ok(d)) => view! {
                    <div class="device-grid">
                        <RegistrationCard device=d.clone() registration=registration/>
                        <Lifecycle device=d on_changed=move |updated: Device| {
                            device.set(Some(Ok(updated)));
                            audit_version.update(|v| *v += 1);
                        }/>
                    </div>
                }.into_any(),
            }}
            <DeviceDiagnostics endpoint=endpoint.get_value()/>
            <ObjectTree endpoint=endpoint.get_value() registration=registration values=values/>
            <div class="device-grid">
                <LiveEvents events=events live=live/>
                <AuditHistory endpoint=endpoint.get_value() version=audit_version/>
            </div>
        </div>
    }
}

/// A `<dt>`/`<dd>` pair.
fn item(term: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="kv">
            <dt>{term}</dt>
            <dd>{value}</dd>
        </div>
    }
}

/// Registration details (from the live registration, else what the registry knows).
#[component]
fn RegistrationCard(
    device: Device,
    registration: RwSignal<Option<Result<Option<RegistrationOut>, ApiError>>>,
) -> impl IntoView {
    // "5 min ago" moves on with the console's clock (`Clock`), not only when the device is read.
    let clock = use_clock();
    let seen_at = device.last_seen.as_deref().and_then(format::parse_rfc3339);
    let last_seen = move || match seen_at {
        Some(t) => format!(
            "{} ({})",
            format::relative_time(t, clock.get()),
            format::utc_text(t)
        ),
        None => "never".to_owned(),
    };
    let seen_item = move || {
        view! {
            <div class="kv">
                <dt>"Last seen"</dt>
                <dd>{last_seen}</dd>
            </div>
        }
    };
    let tags = if device.tags.is_empty() {
        "none".to_owned()
    } else {
        device
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let details = view! {
        {item("Model", device.model.clone())}
        {item("Serial", device.serial.clone())}
        {item("Firmware", device.firmware_version.clone().unwrap_or_else(|| "not reported".into()))}
        {item("Tags", tags)}
        {item("Customer", device.customer.clone().unwrap_or_else(|| "—".into()))}
    };
    let fallback = device.registration.clone();
    view! {
        <section class="card" aria-label="Registration">
            <h2>"Registration"</h2>
            {move || {
                // The registration route has the object links; the device record has the rest
                // when the route is unavailable.
                let live = match registration.get() {
                    Some(Ok(Some(r))) => Some((
                        r.lwm2m_version, r.binding, r.queue_mode, r.lifetime_secs, r.address,
                        r.transport, r.registered_at, r.last_update,
                    )),
                    _ => fallback.clone().map(|r| (
                        r.lwm2m_version, r.binding, r.queue_mode, r.lifetime_secs, r.address,
                        r.transport, r.registered_at, r.last_update,
                    )),
                };
                match live {
                    Some((version, binding, queue, lifetime, address, transport, since, update)) => view! {
                        <dl class="kvs">
                            {item("LwM2M version", version)}
                            {item("Binding", if queue { format!("{binding} (queue mode: sleeps between check-ins)") } else { binding })}
                            {item("Lifetime", format::duration_text(u64::from(lifetime)))}
                            {item("Address", format!("{address} ({})", if transport == "coaps" { "DTLS" } else { "no security" }))}
                            {seen_item()}
                            {item("Registered", format::time_text(&since))}
                            {item("Last update", format::time_text(&update))}
                        </dl>
                    }.into_any(),
                    None => view! {
                        <p class="muted">"Not registered with the server right now."</p>
                        <dl class="kvs">{seen_item()}</dl>
                    }.into_any(),
                }
            }}
            <h3>"Device"</h3>
            <dl class="kvs">{details}</dl>
        </section>
    }
}

/// The lifecycle state, with the actions this operator may take and a required reason.
#[component]
fn Lifecycle(
    device: Device,
    on_changed: impl Fn(Device) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let session = use_session();
    let reason = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let endpoint = StoredValue::new(device.endpoint.clone());
    let state = device.state;
    let actions = move || {
        session
            .role()
            .map(|role| lifecycle_actions(role, state))
            .unwrap_or_default()
    };
    let act = move |action: LifecycleAction| {
        let why = reason.get_untracked().trim().to_owned();
        if why.is_empty() {
            error.set(Some(format!(
                "Give a reason to {}: it is kept in the audit history",
                action.label().to_lowercase()
            )));
            return;
        }
        busy.set(true);
        error.set(None);
        let change = LifecycleChange {
            to: action.target(),
            reason: why,
        };
        spawn_local(async move {
            match api::change_lifecycle(&endpoint.get_value(), &change).await {
                Ok(updated) => {
                    reason.set(String::new());
                    on_changed(updated);
                }
                Err(ApiError::Unauthorized) => {}
                Err(e) => error.set(Some(e.plain())),
            }
            busy.set(false);
        });
    };
    let explanation = match state {
        api_types::LifecycleState::Registered => "Known to the fleet, not yet provisioned.",
        api_types::LifecycleState::Provisioned => {
            "Bootstrap delivered its credentials; waiting for its first registration."
        }
        api_types::LifecycleState::Active => "In service.",
        api_types::LifecycleState::Suspended => {
            "On hold: writes, firmware updates and billing are paused."
        }
        api_types::LifecycleState::Updating => "Installing a firmware update.",
        api_types::LifecycleState::Decommissioned => {
            "Retired: credentials revoked, registration refused."
        }
    };
    view! {
        <section class="card" aria-label="Lifecycle">
            <h2>"Lifecycle"</h2>
            <p class="lifecycle-state">
                <StateBadge state=state/>
                <span class="muted">{explanation}</span>
            </p>
            {move || {
                let actions = actions();
                if actions.is_empty() {
                    return view! {
                        <p class="muted">{if session.may(api_types::Role::FleetManager) {
                            "No lifecycle action applies in this state."
                        } else {
                            "Lifecycle actions need the fleet-manager role."
                        }}</p>
                    }.into_any();
                }
                view! {
                    <form class="lifecycle-form" on:submit=|ev| ev.prevent_default()>
                        <div class="field grow">
                            <label for="lifecycle-reason">"Reason"</label>
                            <input
                                id="lifecycle-reason"
                                required
                                maxlength="1000"
                                placeholder="Why (kept in the audit history)"
                                bind:value=reason
                            />
                        </div>
                        <div class="actions">
                            {actions.into_iter().map(|action| {
                                let class = if action == LifecycleAction::Decommission {
                                    "button danger"
                                } else {
                                    "button"
                                };
                                view! {
                                    <button
                                        type="button"
                                        class=class
                                        disabled=move || busy.get()
                                        on:click=move |_| act(action)
                                    >
                                        {action.label()}
                                    </button>
                                }
                            }).collect_view()}
                        </div>
                    </form>
                }.into_any()
            }}
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
        </section>
    }
}
