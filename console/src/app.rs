//! The application shell: the session check at start-up, the routes (`/login`, `/` fleet,
//! `/devices/{endpoint}`, `/diagnostics`, `/diagnostics/sweeps/{id}`), the guard that sends signed-out visitors to the login page, and the
//! session-expired hook of the API module.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::{use_location, use_navigate};
use leptos_router::path;
use wasm_bindgen::JsCast;

use crate::api;
use crate::components::nav::Nav;
use crate::pages::diagnostics::{DiagnosticsPage, SweepPage};
use crate::pages::{device::DevicePage, fleet::FleetPage, login::LoginPage};
use crate::state::{CLOCK_TICK, Clock, Session, use_session};

/// The whole console.
#[component]
pub fn App() -> impl IntoView {
    let session = Session::new();
    provide_context(session);
    let clock = RwSignal::new(js_sys::Date::now() / 1000.0);
    provide_context(Clock(clock));
    // Never cleared: the clock lives as long as the console.
    let _ = set_interval_with_handle(move || clock.set(js_sys::Date::now() / 1000.0), CLOCK_TICK);
    spawn_local(async move {
        match api::me().await {
            Ok(me) => session.me.set(me),
            Err(error) => session.flash.set(Some(error.plain())),
        }
        session.checked.set(true);
    });
    view! {
        <Router>
            <ExpiryHook/>
            <FocusOnNavigate/>
            <Routes fallback=|| view! { <Authed><NotFound/></Authed> }>
                <Route path=path!("/login") view=LoginPage/>
                <Route path=path!("/") view=|| view! { <Authed><FleetPage/></Authed> }/>
                <Route
                    path=path!("/devices/:endpoint")
                    view=|| view! { <Authed><DevicePage/></Authed> }
                />
                <Route
                    path=path!("/diagnostics")
                    view=|| view! { <Authed><DiagnosticsPage/></Authed> }
                />
                <Route
                    path=path!("/diagnostics/sweeps/:id")
                    view=|| view! { <Authed><SweepPage/></Authed> }
                />
            </Routes>
        </Router>
    }
}

/// Installs what a 401 anywhere does: forget the session, say so, go to the login page and come
/// back here after signing in.
#[component]
fn ExpiryHook() -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let location = use_location();
    api::on_unauthorized(move || {
        if session.me.get_untracked().is_some() {
            session
                .return_to
                .set(Some(location.pathname.get_untracked()));
        }
        session.me.set(None);
        session.flash.set(Some(
            "Your session has expired. Please sign in again.".to_owned(),
        ));
        navigate("/login", Default::default());
    });
}

/// After moving to another page, puts the focus at the start of the new page's content (as a
/// full page load would), so keyboard and screen-reader users continue from there instead of
/// from a link that is gone. Changing only the query (fleet filters) keeps the focus.
#[component]
fn FocusOnNavigate() -> impl IntoView {
    let location = use_location();
    Effect::new(move |previous: Option<String>| {
        let path = location.pathname.get();
        if previous.is_some_and(|p| p != path) {
            request_animation_frame(focus_main);
        }
        path
    });
}

/// Moves the focus to the page's content (`<main id="main" tabindex="-1">`).
fn focus_main() {
    let main = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("main"))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(main) = main {
        let _ = main.focus();
    }
}

/// Shows its page to a signed-in operator (with the navigation), and sends anyone else to the
/// login page.
#[component]
pub fn Authed(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let location = use_location();
    Effect::new(move |_| {
        if session.checked.get() && session.me.with(Option::is_none) {
            session
                .return_to
                .set(Some(location.pathname.get_untracked()));
            navigate("/login", Default::default());
        }
    });
    view! {
        <Show
            when=move || session.me.with(Option::is_some)
            fallback=|| view! { <p class="page-loading" role="status">"Loading…"</p> }
        >
            // Handled here: the router would otherwise take the `#main` link as a navigation
            // and the focus would not move.
            <a
                class="skip-link"
                href="#main"
                on:click=|ev| {
                    ev.prevent_default();
                    focus_main();
                }
            >
                "Skip to content"
            </a>
            <Nav/>
            <main id="main" tabindex="-1">{children()}</main>
        </Show>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <div class="empty">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <a href="/">"Back to the fleet"</a></p>
        </div>
    }
}
