//! `ferrite-sim` as a library: a fleet of simulated LwM2M smart meters in one process, built on
//! the sans-I/O LwM2M client of `lwm2m-proto` and the sans-I/O DTLS client of `ferrite-dtls`.
//!
//! - [`meter`]: one meter — its profile, its values, its objects, its store-and-forward buffer
//!   and the state machine that drives its LwM2M client ([`meter::SimMeter`], no I/O);
//! - [`fleet`]: the runtime — worker threads, one socket per meter, a deadline heap
//!   ([`fleet::Fleet`]);
//! - [`ledger`], [`ground_truth`]: the files a test checks the server against;
//! - [`clock`]: real ↔ simulated time; [`rng`]: the seeded generator; [`stats`]: counters;
//! - [`accuracy`]: scoring the server's diagnostics against the ground truth;
//! - [`cli`]: the command line (and `--config` TOML files), [`report`]: progress and memory
//!   figures, [`provision`]: entering the meters in the server's registry over its HTTP API.

pub mod accuracy;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod fleet;
pub mod ground_truth;
pub mod ledger;
pub mod meter;
pub mod provision;
pub mod report;
pub mod rng;
pub mod stats;
