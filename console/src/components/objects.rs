//! The device's object tree: the objects and instances of its registration, each resource named
//! and with its unit from the object model, and Read / Write / Execute / Observe per resource
//! (Read per instance) with the result or a plain-language error in the resource's row. Execute
//! asks for confirmation first (with optional arguments), explicitly for disruptive resources.
//! Values from reads, observe notifications and Send land in one store ([`Values`]), so a row
//! always shows the latest value whatever brought it.

use std::collections::BTreeMap;

use api_types::Role;
use api_types::lwm2m::{RegistrationOut, ValueOut};
use leptos::prelude::*;
use leptos::task::spawn_local;
use lwm2m_objects::ResourceDef;

use crate::api::{self, ApiError, OpReply};
use crate::format;
use crate::model::{self, LiveEvent, ObjectNode};
use crate::pages::fleet::now_seconds;
use crate::state::use_session;

/// The latest value(s) of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// (value path, text without unit): one entry, or one per resource instance.
    pub entries: Vec<(String, String)>,
    /// `read`, `notification`, `send`.
    pub source: &'static str,
    /// When the console received it (seconds since the Unix epoch).
    pub at: f64,
}

/// The values and observations of the device page.
#[derive(Debug, Clone, Copy)]
pub struct Values {
    /// Resource path (`/3/0/9`) → its latest value.
    pub cells: RwSignal<BTreeMap<String, Cell>>,
    /// Observed path → observation number.
    pub observed: RwSignal<BTreeMap<String, u64>>,
}

impl Values {
    pub fn new() -> Values {
        Values {
            cells: RwSignal::new(BTreeMap::new()),
            observed: RwSignal::new(BTreeMap::new()),
        }
    }

    fn store(&self, values: impl Iterator<Item = (String, String)>, source: &'static str) {
        let mut grouped: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (path, text) in values {
            if let Some(resource) = model::resource_path(&path) {
                grouped.entry(resource).or_default().push((path, text));
            }
        }
        if grouped.is_empty() {
            return;
        }
        let at = now_seconds();
        self.cells.update(|cells| {
            for (resource, entries) in grouped {
                cells.insert(
                    resource,
                    Cell {
                        entries,
                        source,
                        at,
                    },
                );
            }
        });
    }

    /// Values from a read or an observe answer.
    pub fn set_from(&self, values: &[ValueOut]) {
        self.store(
            values
                .iter()
                .map(|v| (v.path.clone(), format::value_text(&v.ty, &v.value, None))),
            "read",
        );
    }

    /// Values and observation changes carried by a live event.
    pub fn apply_event(&self, event: &LiveEvent) {
        let source = match event.kind.as_str() {
            "notification" => "notification",
            "send" => "send",
            "operation_completed" => "read",
            _ => "",
        };
        if !source.is_empty() {
            self.store(
                event
                    .values
                    .iter()
                    .map(|v| (v.path.clone(), format::value_text(v.oma_type, &v.raw, None))),
                source,
            );
        }
        if event.kind == "observation_ended"
            && let Some(number) = event.observation
        {
            self.observed.update(|o| o.retain(|_, n| *n != number));
        }
    }

    /// The device's observations already established (e.g. from an earlier visit).
    pub fn load_observations(&self, endpoint: String) {
        let observed = self.observed;
        spawn_local(async move {
            if let Ok(list) = api::observations(&endpoint).await {
                observed.update(|o| {
                    for obs in list {
                        if let [path] = obs.paths.as_slice() {
                            o.insert(path.clone(), obs.observation);
                        }
                    }
                });
            }
        });
    }
}

impl Default for Values {
    fn default() -> Values {
        Values::new()
    }
}

/// The outcome line under a row or instance.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Info(String),
    Error(String),
}

fn outcome_view(outcome: RwSignal<Option<Outcome>>) -> impl IntoView {
    move || {
        outcome.get().map(|o| match o {
            Outcome::Info(text) => view! { <p class="outcome" role="status">{text}</p> }.into_any(),
            Outcome::Error(text) => {
                view! { <p class="outcome error" role="alert">{text}</p> }.into_any()
            }
        })
    }
}

fn queued_text(pending: &api_types::lwm2m::PendingResponse) -> String {
    format!(
        "The device sleeps: request {} is queued and runs when it next checks in (see Live events)",
        pending.operation
    )
}

fn failed(error: ApiError) -> Option<Outcome> {
    match error {
        // The session-expired hook has taken the operator to the login page.
        ApiError::Unauthorized => None,
        other => Some(Outcome::Error(other.plain())),
    }
}

#[component]
pub fn ObjectTree(
    endpoint: String,
    registration: RwSignal<Option<Result<Option<RegistrationOut>, ApiError>>>,
    values: Values,
) -> impl IntoView {
    let endpoint = StoredValue::new(endpoint);
    view! {
        <section class="card objects" aria-label="Objects">
            <h2>"Objects"</h2>
            {move || match registration.get() {
                None => view! { <p class="muted" role="status">"Loading the object list…"</p> }.into_any(),
                Some(Err(e)) => view! { <div class="alert" role="alert">{e.plain()}</div> }.into_any(),
                Some(Ok(None)) => view! {
                    <div class="empty">
                        <p><strong>"No object list: the device is not registered right now."</strong></p>
                        <p class="muted">"Its objects appear here as soon as it registers (this page updates by itself)."</p>
                    </div>
                }.into_any(),
                Some(Ok(Some(r))) => {
                    let tree = model::object_tree(&r.objects);
                    if tree.is_empty() {
                        return view! {
                            <p class="muted">"The device registered without any object links."</p>
                        }.into_any();
                    }
                    tree.into_iter()
                        .map(|object| view! { <ObjectBlock endpoint=endpoint.get_value() object=object values=values/> })
                        .collect_view()
                        .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn ObjectBlock(endpoint: String, object: ObjectNode, values: Values) -> impl IntoView {
    let title = format!("{} · /{}", object.name, object.id);
    let version = object.version.clone().map(|v| format!("version {v}"));
    let known = object.known;
    let id = object.id;
    let instances = object.instances.clone();
    view! {
        <details class="object" open>
            <summary>
                <span class="object-title">{title}</span>
                {version.map(|v| view! { <span class="muted">{v}</span> })}
            </summary>
            {(!known).then(|| view! {
                <p class="muted">"This object is not in the console's object model: its resources cannot be named."</p>
            })}
            {if instances.is_empty() {
                view! { <p class="muted">"Supported, but no instance exists on the device."</p> }.into_any()
            } else {
                instances.into_iter().map(|instance| view! {
                    <InstanceBlock endpoint=endpoint.clone() object=id instance=instance values=values/>
                }).collect_view().into_any()
            }}
        </details>
    }
}

#[component]
fn InstanceBlock(endpoint: String, object: u16, instance: u16, values: Values) -> impl IntoView {
    let path = format!("/{object}/{instance}");
    let outcome = RwSignal::new(None::<Outcome>);
    let busy = RwSignal::new(false);
    let endpoint = StoredValue::new(endpoint);
    let instance_path = StoredValue::new(path.clone());
    // Busy buttons are aria-disabled, not disabled: a disabled button drops the keyboard focus.
    let read = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        outcome.set(Some(Outcome::Info("Reading…".into())));
        spawn_local(async move {
            let result = api::read(&endpoint.get_value(), &instance_path.get_value()).await;
            outcome.set(match result {
                Ok(OpReply::Done(r)) => {
                    values.set_from(&r.values);
                    let errors = r
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.error.message))
                        .collect::<Vec<_>>();
                    if errors.is_empty() {
                        Some(Outcome::Info(format!("Read {} values", r.values.len())))
                    } else {
                        Some(Outcome::Error(format!(
                            "Some paths failed: {}",
                            errors.join("; ")
                        )))
                    }
                }
                Ok(OpReply::Pending(p)) => Some(Outcome::Info(queued_text(&p))),
                Err(e) => failed(e),
            });
            busy.set(false);
        });
    };
    let resources = model::resources_of(object);
    let rows = resources
        .iter()
        .map(|def| {
            view! {
                <ResourceRow
                    endpoint=endpoint.get_value()
                    path=format!("{path}/{}", def.id)
                    def=def
                    values=values
                />
            }
        })
        .collect_view();
    view! {
        <div class="instance">
            <div class="instance-head">
                <h3>{format!("Instance {instance}")}</h3>
                <button type="button" class="button" on:click=read aria-disabled=move || busy.get().to_string()>
                    {format!("Read {path}")}
                </button>
            </div>
            {outcome_view(outcome)}
            {if resources.is_empty() {
                view! { <p class="muted">"No resource definitions for this object."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="data resources" aria-label=format!("Resources of {path}")>
                            <thead>
                                <tr>
                                    <th scope="col" class="num">"ID"</th>
                                    <th scope="col">"Resource"</th>
                                    <th scope="col">"Value"</th>
                                    <th scope="col">"Unit"</th>
                                    <th scope="col">"Actions"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </div>
    }
}

#[component]
fn ResourceRow(
    endpoint: String,
    path: String,
    def: &'static ResourceDef,
    values: Values,
) -> impl IntoView {
    let session = use_session();
    let outcome = RwSignal::new(None::<Outcome>);
    let busy = RwSignal::new(false);
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let confirming = RwSignal::new(false);
    let args = RwSignal::new(String::new());
    let understood = RwSignal::new(false);
    let execute_button = NodeRef::<leptos::html::Button>::new();
    let args_input = NodeRef::<leptos::html::Input>::new();
    // The panel opens with the focus in it (the arguments field).
    Effect::new(move |_| {
        if let Some(input) = args_input.get() {
            let _ = input.focus();
        }
    });
    let endpoint = StoredValue::new(endpoint);
    let path = StoredValue::new(path);
    let ty = def.ty.oma_name();
    let ops = def.operations;
    let may_change = move || session.may(Role::FleetManager);
    let observation = move || path.with_value(|p| values.observed.with(|o| o.get(p).copied()));

    let read_now = move || {
        busy.set(true);
        spawn_local(async move {
            let result = api::read(&endpoint.get_value(), &path.get_value()).await;
            outcome.set(match result {
                Ok(OpReply::Done(r)) => {
                    values.set_from(&r.values);
                    r.errors
                        .first()
                        .map(|e| Outcome::Error(e.error.message.clone()))
                }
                Ok(OpReply::Pending(p)) => Some(Outcome::Info(queued_text(&p))),
                Err(e) => failed(e),
            });
            busy.set(false);
        });
    };
    let read = move |_| {
        if busy.get_untracked() {
            return;
        }
        outcome.set(Some(Outcome::Info("Reading…".into())));
        read_now();
    };
    let start_write = move |_| {
        if busy.get_untracked() {
            return;
        }
        let current = values.cells.with(|c| {
            path.with_value(|p| {
                c.get(p)
                    .and_then(|cell| cell.entries.first().map(|(_, t)| t.clone()))
            })
        });
        draft.set(current.filter(|t| t != "—").unwrap_or_default());
        outcome.set(None);
        editing.set(true);
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = match format::parse_write_value(ty, &draft.get_untracked()) {
            Ok(v) => v,
            Err(why) => {
                outcome.set(Some(Outcome::Error(why)));
                return;
            }
        };
        busy.set(true);
        outcome.set(Some(Outcome::Info("Writing…".into())));
        spawn_local(async move {
            let result = api::write(&endpoint.get_value(), &path.get_value(), value).await;
            match result {
                Ok(OpReply::Done(_)) => {
                    editing.set(false);
                    outcome.set(Some(Outcome::Info(
                        "Written; the device accepted the value".into(),
                    )));
                    busy.set(false);
                    // Read it back so the row shows what the device now holds.
                    if ops.read {
                        read_now();
                    }
                }
                Ok(OpReply::Pending(p)) => {
                    editing.set(false);
                    outcome.set(Some(Outcome::Info(queued_text(&p))));
                    busy.set(false);
                }
                Err(e) => {
                    outcome.set(failed(e));
                    busy.set(false);
                }
            }
        });
    };
    // Execute asks first: a panel in the row with optional arguments, and for a disruptive
    // resource (reboot, factory reset, …) what it does and an explicit "I understand".
    let warning = path.with_value(|p| format::execute_warning(p));
    let open_execute = move |_| {
        if busy.get_untracked() {
            return;
        }
        outcome.set(None);
        args.set(String::new());
        understood.set(false);
        confirming.update(|c| *c = !*c);
    };
    let close_execute = move || {
        confirming.set(false);
        if let Some(button) = execute_button.get_untracked() {
            let _ = button.focus();
        }
    };
    let execute = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if warning.is_some() && !understood.get_untracked() {
            outcome.set(Some(Outcome::Error(
                "Tick the box to confirm: this execute disrupts the meter".into(),
            )));
            return;
        }
        let arguments = match format::parse_execute_args(&args.get_untracked()) {
            Ok(a) => a,
            Err(why) => {
                outcome.set(Some(Outcome::Error(why)));
                return;
            }
        };
        busy.set(true);
        close_execute();
        outcome.set(Some(Outcome::Info("Executing…".into())));
        spawn_local(async move {
            let result = api::execute(&endpoint.get_value(), &path.get_value(), arguments).await;
            outcome.set(match result {
                Ok(OpReply::Done(_)) => Some(Outcome::Info(format!(
                    "Executed: the device accepted {}",
                    def.name
                ))),
                Ok(OpReply::Pending(p)) => Some(Outcome::Info(queued_text(&p))),
                Err(e) => failed(e),
            });
            busy.set(false);
        });
    };
    let observe = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        outcome.set(Some(Outcome::Info("Starting to observe…".into())));
        spawn_local(async move {
            let p = path.get_value();
            let result = api::observe(&endpoint.get_value(), &p).await;
            outcome.set(match result {
                Ok(OpReply::Done(r)) => {
                    values.set_from(&r.values);
                    match r.observation {
                        Some(n) => {
                            values.observed.update(|o| {
                                o.insert(p, n);
                            });
                            Some(Outcome::Info(format!(
                                "Observing (observation {n}): new values appear here as the device sends them"
                            )))
                        }
                        None => Some(Outcome::Error(
                            "The device sent the value but did not start an observation".into(),
                        )),
                    }
                }
                Ok(OpReply::Pending(pending)) => Some(Outcome::Info(queued_text(&pending))),
                Err(e) => failed(e),
            });
            busy.set(false);
        });
    };
    let cancel = move |_| {
        if busy.get_untracked() {
            return;
        }
        let Some(number) = observation() else { return };
        busy.set(true);
        spawn_local(async move {
            let result = api::cancel_observe(&endpoint.get_value(), number).await;
            outcome.set(match result {
                Ok(_) => {
                    values.observed.update(|o| o.retain(|_, n| *n != number));
                    Some(Outcome::Info("Observation cancelled".into()))
                }
                Err(ApiError::Http { status: 404, .. }) => {
                    // Already gone (the device or the server ended it).
                    values.observed.update(|o| o.retain(|_, n| *n != number));
                    Some(Outcome::Info("The observation had already ended".into()))
                }
                Err(e) => failed(e),
            });
            busy.set(false);
        });
    };

    let value_cell = move || {
        let cell = values
            .cells
            .with(|c| path.with_value(|p| c.get(p).cloned()));
        match cell {
            None => view! { <span class="muted">"not read"</span> }.into_any(),
            Some(cell) => {
                let updated = format!(
                    "{} {}",
                    match cell.source {
                        "notification" => "Notified",
                        "send" => "Sent by the device",
                        _ => "Read",
                    },
                    format::relative_time(cell.at, now_seconds())
                );
                let live = cell.source == "notification";
                let single = cell.entries.len() == 1 && !def.multiple;
                let entries = cell
                    .entries
                    .into_iter()
                    .map(|(p, text)| {
                        let label = if single {
                            String::new()
                        } else {
                            p.rsplit('/').next().map(|i| format!("[{i}] ")).unwrap_or_default()
                        };
                        view! { <span class="value-entry">{label}<span class="value">{text}</span></span> }
                    })
                    .collect_view();
                view! {
                    <span class="values" class:flash=live title=updated>{entries}</span>
                }
                .into_any()
            }
        }
    };

    let row_path = path.get_value();
    let name_id = format!("res-{}", name_id_for(&row_path));
    let write_id = format!("write-{}", name_id_for(&row_path));
    let args_id = format!("args-{}", name_id_for(&row_path));
    view! {
        <tr data-path=row_path.clone() aria-describedby=name_id.clone()>
            <td class="num">{def.id}</td>
            <td id=name_id.clone() class="res-name">
                <span>{def.name}</span>
                <span class="ops" title="Operations the object model allows">{ops.as_str()}</span>
                {move || observation().map(|_| view! { <span class="badge observed">"observed"</span> })}
            </td>
            <td class="res-value">
                // An execute-only resource (Reboot) has no value to show.
                {move || ops.read.then(value_cell)}
                <Show when=move || editing.get()>
                    <form class="write-form" on:submit=save>
                        <label class="visually-hidden" for=write_id.clone()>
                            {format!("New value for {}", def.name)}
                        </label>
                        <input
                            id=write_id.clone()
                            placeholder=format::write_hint(ty)
                            bind:value=draft
                            on:keydown=move |ev| {
                                if ev.key() == "Escape" {
                                    editing.set(false);
                                }
                            }
                            autofocus
                        />
                        <button type="submit" class="button primary" disabled=move || busy.get()>"Save"</button>
                        <button type="button" class="button subtle" on:click=move |_| editing.set(false)>"Cancel"</button>
                    </form>
                </Show>
                <Show when=move || confirming.get()>
                    <form
                        class="exec-form"
                        on:submit=execute
                        on:keydown=move |ev| {
                            if ev.key() == "Escape" {
                                close_execute();
                            }
                        }
                    >
                        {warning.map(|w| view! { <p class="warning">{w}</p> })}
                        {warning.map(|_| view! {
                            <label class="check">
                                <input type="checkbox" bind:checked=understood/>
                                {format!("I understand: execute {} on {}", def.name, endpoint.get_value())}
                            </label>
                        })}
                        <label for=args_id.clone()>{format!("Arguments for {} (optional)", def.name)}</label>
                        <div class="write-form">
                            <input
                                id=args_id.clone()
                                node_ref=args_input
                                placeholder="e.g. 0='text',1"
                                autocomplete="off"
                                bind:value=args
                            />
                            <button
                                type="submit"
                                class=if warning.is_some() { "button danger" } else { "button primary" }
                                disabled=move || busy.get() || (warning.is_some() && !understood.get())
                            >
                                {format!("Execute {}", def.name)}
                            </button>
                            <button type="button" class="button subtle" on:click=move |_| close_execute()>"Cancel"</button>
                        </div>
                    </form>
                </Show>
                {outcome_view(outcome)}
            </td>
            <td class="unit">{def.units.map(format::unit_text).unwrap_or("")}</td>
            <td class="row-actions">
                {ops.read.then(|| view! {
                    <button type="button" class="button small" on:click=read aria-disabled=move || busy.get().to_string()>"Read"</button>
                })}
                {move || (ops.write && !def.multiple && may_change() && !editing.get()).then(|| view! {
                    <button type="button" class="button small" on:click=start_write aria-disabled=move || busy.get().to_string()>"Write"</button>
                })}
                {move || (ops.execute && may_change()).then(|| view! {
                    <button
                        type="button"
                        class=if warning.is_some() { "button small danger" } else { "button small" }
                        node_ref=execute_button
                        aria-expanded=move || confirming.get().to_string()
                        on:click=open_execute
                        aria-disabled=move || busy.get().to_string()
                    >
                        "Execute"
                    </button>
                })}
                {move || ops.read.then(|| match observation() {
                    None => view! {
                        <button type="button" class="button small" on:click=observe aria-disabled=move || busy.get().to_string()>"Observe"</button>
                    }.into_any(),
                    Some(_) => view! {
                        <button type="button" class="button small" on:click=cancel aria-disabled=move || busy.get().to_string()>"Cancel observe"</button>
                    }.into_any(),
                })}
            </td>
        </tr>
    }
}

/// An id-safe form of a path (`/3/0/1` → `3-0-1`).
fn name_id_for(path: &str) -> String {
    path.trim_start_matches('/').replace('/', "-")
}
