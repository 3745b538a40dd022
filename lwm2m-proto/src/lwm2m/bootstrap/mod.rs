//! The LwM2M bootstrap interface (OMA LwM2M TS Core 1.1 §6.1, TS Transport 1.1 §6.1): the
//! sans-I/O Bootstrap-Server ([`BootstrapServer`], client-initiated bootstrap: Bootstrap-Request,
//! Discover, Delete, Write of the Security and Server objects, Bootstrap-Finish) and the
//! [`ServerAccount`] it delivers. The client side lives in `lwm2m::client` (`Lwm2mClient::
//! bootstrap`).

mod account;
mod server;

#[cfg(test)]
mod tests;

pub use self::account::{AccountSecurity, ServerAccount};
pub(crate) use self::account::{is_bootstrap_account, security, server as server_object};
pub use self::server::{
    BootstrapEvent, BootstrapFailure, BootstrapServer, BootstrapServerConfig, BootstrapStep,
    BootstrapTicket, BootstrapTicketError,
};

/// Bootstrap-Request Trigger, resource 9 of the Server object (TS Core 1.1 Appendix E.2):
/// executing `/1/x/9` makes a 1.1 client start a client-initiated bootstrap.
pub const BOOTSTRAP_REQUEST_TRIGGER: u16 = 9;
