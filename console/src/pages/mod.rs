//! The console's pages, one per route.

pub mod device;
pub mod fleet;
pub mod login;
