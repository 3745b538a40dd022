//! The session as the whole console sees it: who is signed in, whether that is known yet, the
//! message the login page shows after an expiry, and where to return after signing in.

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
