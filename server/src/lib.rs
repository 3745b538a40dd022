//! The Ferrite server as a library: configuration, the HTTP API and (as later work lands) the
//! CoAP/DTLS endpoints, the fleet registry and storage. The `ferrite` binary is a thin wrapper.

pub mod accounts;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod fleet;
pub mod http;
pub mod inventory;
pub mod logging;
pub mod lwm2m;
pub mod metrics;
pub mod run;
pub mod store;
