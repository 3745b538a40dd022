//! The console's pages, one per route.

pub mod device;
pub mod diagnostics;
pub mod fleet;
pub mod login;
