//! Ferrite's web console (Leptos, client-side rendered, compiled to WebAssembly): login, the
//! fleet (counts, a filtered server-side-paginated table, CSV import), one device (its
//! registration, lifecycle, remote diagnostics, object tree with Read / Write / Execute /
//! Observe, live events and audit history) and fleet diagnostics sweeps.
//!
//! Layout: `api` is the only module that talks to the server; `format`, `model`, `filters` and
//! `diagnosis` are pure logic (unit-tested on the host); `state` holds the session; `pages` and
//! `components` are the views. The crate shares only `api-types` and `lwm2m-objects` with the server.

pub mod api;
pub mod diagnosis;
pub mod filters;
pub mod format;
pub mod model;
pub mod state;

mod app;
mod components;
mod pages;

pub use app::App;

/// The wasm entry point (`init()` in index.html runs it): mounts the console on `<body>`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
