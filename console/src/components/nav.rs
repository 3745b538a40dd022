//! The top bar: the product name, role-aware navigation, who is signed in, and signing out.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api;
use crate::format::role_name;
use crate::state::use_session;

#[component]
pub fn Nav() -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let who = move || {
        session.me.with(|m| {
            m.as_ref()
                .map(|m| format!("{} ({})", m.name, role_name(m.role)))
                .unwrap_or_default()
        })
    };
    let sign_out = move |_| {
        let navigate = navigate.clone();
        spawn_local(async move {
            // Signed out locally even when the server cannot be reached.
            let _ = api::logout().await;
            session.me.set(None);
            session.return_to.set(None);
            session.flash.set(Some("You have signed out.".to_owned()));
            navigate("/login", Default::default());
        });
    };
    view! {
        <header class="topbar">
            <nav aria-label="Main">
                <a href="/" class="brand">
                    <span class="brand-mark" aria-hidden="true">"Fe"</span>
                    <span class="brand-name">"Ferrite"</span>
                </a>
                <ul class="nav-links">
                    <li><A href="/" exact=true>"Fleet"</A></li>
                    <li><A href="/diagnostics">"Diagnostics"</A></li>
                </ul>
                <div class="nav-user">
                    <span class="who">{who}</span>
                    <button type="button" class="button subtle" on:click=sign_out>"Sign out"</button>
                </div>
            </nav>
        </header>
    }
}
