//! Small status markers: lifecycle state and connectivity as coloured, text-bearing badges
//! (the text carries the meaning; colour only helps).

use api_types::{Connectivity, LifecycleState};
use leptos::prelude::*;

use crate::format::{connectivity_name, state_name};

#[component]
pub fn StateBadge(state: LifecycleState) -> impl IntoView {
    let name = state_name(state);
    view! { <span class=format!("badge state-{name}")>{name}</span> }
}

#[component]
pub fn ConnectivityBadge(connectivity: Connectivity) -> impl IntoView {
    let name = connectivity_name(connectivity);
    view! {
        <span class=format!("badge conn-{name}")>
            <span class="dot" aria-hidden="true"></span>
            {name}
        </span>
    }
}
