//! The login page: user name and password, errors (wrong password, too many attempts, session
//! expired) in one alert, then back to the page the operator came from.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::{self, ApiError};
use crate::state::use_session;

#[component]
pub fn LoginPage() -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    // Already signed in (e.g. the back button): straight to the fleet.
    let go_home = navigate.clone();
    Effect::new(move |_| {
        if session.me.with(Option::is_some) {
            let target = session
                .return_to
                .get_untracked()
                .unwrap_or_else(|| "/".into());
            session.return_to.set(None);
            go_home(&target, Default::default());
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (user, pass) = (username.get_untracked(), password.get_untracked());
        if user.trim().is_empty() || pass.is_empty() {
            error.set(Some("Enter your username and password".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        session.flash.set(None);
        spawn_local(async move {
            match api::login(user.trim(), &pass).await {
                Ok(me) => {
                    password.set(String::new());
                    session.me.set(Some(me));
                }
                Err(ApiError::Http { status: 401, .. }) => {
                    error.set(Some("Wrong username or password".into()));
                }
                Err(ApiError::Http { status: 429, .. }) => {
                    error.set(Some(
                        "Too many failed attempts; wait a minute and try again".into(),
                    ));
                }
                Err(e) => error.set(Some(e.plain())),
            }
            busy.set(false);
        });
    };

    let message = move || error.get().or_else(|| session.flash.get());
    view! {
        <main class="login-page">
            <form class="card login-card" on:submit=submit novalidate>
                <div class="login-brand">
                    <span class="brand-mark" aria-hidden="true">"Fe"</span>
                    <h1>"Ferrite"</h1>
                </div>
                <p class="muted">"Device management console. Sign in to continue."</p>
                {move || message().map(|m| view! { <div role="alert" class="alert">{m}</div> })}
                <label for="login-username">"Username"</label>
                <input
                    id="login-username"
                    name="username"
                    autocomplete="username"
                    autocapitalize="none"
                    spellcheck="false"
                    bind:value=username
                />
                <label for="login-password">"Password"</label>
                <input
                    id="login-password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    bind:value=password
                />
                <button type="submit" class="button primary wide" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
}
