//! The session as the whole console sees it: who is signed in, whether that is known yet, the
//! message the login page shows after an expiry, and where to return after signing in; and the
//! ticking clock relative times are shown against.

use api_types::{Me, Role};
use leptos::prelude::*;

/// Shared through context; every field is a signal, so copies are cheap and stay in sync.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// The signed-in operator, None when signed out.
    pub me: RwSignal<Option<Me>>,
    /// True once `/me` has answered at start-up.
    pub checked: RwSignal<bool>,
    /// A message for the login page ("Your session has expired").
    pub flash: RwSignal<Option<String>>,
    /// The page to open after signing in.
    pub return_to: RwSignal<Option<String>>,
}

impl Session {
    pub fn new() -> Session {
        Session {
            me: RwSignal::new(None),
            checked: RwSignal::new(false),
            flash: RwSignal::new(None),
            return_to: RwSignal::new(None),
        }
    }

    /// The signed-in role (tracked), None when signed out.
    pub fn role(&self) -> Option<Role> {
        self.me.with(|m| m.as_ref().map(|m| m.role))
    }

    /// Whether the signed-in operator has at least `role` (tracked).
    pub fn may(&self, role: Role) -> bool {
        self.role().is_some_and(|r| r >= role)
    }
}

impl Default for Session {
    fn default() -> Session {
        Session::new()
    }
}

/// The session from context (provided by `App`).
pub fn use_session() -> Session {
    expect_context::<Session>()
}

/// The console's idea of "now" (seconds since the Unix epoch), ticking every few seconds so
/// relative times ("5 min ago") stay true on a page left open. Provided by `App`.
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub RwSignal<f64>);

/// How often the clock ticks.
pub const CLOCK_TICK: std::time::Duration = std::time::Duration::from_secs(10);

/// The clock from context (a fixed one when none is provided).
pub fn use_clock() -> RwSignal<f64> {
    use_context::<Clock>()
        .map(|c| c.0)
        .unwrap_or_else(|| RwSignal::new(js_sys::Date::now() / 1000.0))
}
