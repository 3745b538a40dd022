//! The LwM2M layer (OMA LwM2M TS Core 1.1/1.2, Transport Bindings 1.1) on top of the sans-I/O
//! [`crate::coap`] endpoint: the registration interface and device-management operations.
//!
//! - [`registration`]: the parameters of Register and Update (the `/rd` query string), shared by
//!   the server side (which parses them) and the client side (which writes them).
//! - [`client`]: the sans-I/O LwM2M client (one per simulated device): registration, device
//!   management answered from an object store, observations, Send.
//! - [`bootstrap`]: the sans-I/O Bootstrap-Server and the server account it writes.
//! - [`server`]: the sans-I/O LwM2M server (one per socket): registrations, operations on
//!   registered clients, observations, Send, queue mode.

pub mod bootstrap;
pub mod client;
pub mod registration;
pub mod server;
