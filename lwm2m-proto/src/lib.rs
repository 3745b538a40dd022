//! The sans-I/O CoAP (RFC 7252, 7641, 7959) and LwM2M engine shared by the `ferrite` server and
//! the `ferrite-sim` simulator.
//!
//! Nothing is implemented here yet: the engine is the subject of the LwM2M server core issue. This
//! crate will never open a socket, spawn a task or read the clock; every input carries `now`.
