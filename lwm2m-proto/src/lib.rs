//! The sans-I/O CoAP (RFC 7252, 7641, 7959) and LwM2M engine shared by the `ferrite` server and
//! the `ferrite-sim` simulator.
//!
//! This crate never opens a socket, spawns a task or reads the clock; every input carries `now`.
//! The [`coap`] layer is the message codec and endpoint state machine; the LwM2M layer (registration,
//! device management operations) will be built on top of it.

#![warn(missing_docs)]

pub mod coap;
pub mod lwm2m;
mod rng;
mod timers;
