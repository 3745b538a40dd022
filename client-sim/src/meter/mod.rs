//! The simulated meter: who it is ([`profile`]), how its values move ([`dynamics`],
//! [`consumption`], [`radio`]), the objects it serves ([`store`]), firmware updates
//! ([`firmware`], [`download`]), its store-and-forward buffer ([`buffer`]) and the sans-I/O state machine that ties them to the LwM2M client and DTLS
//! ([`sim`]), whose DTLS handshakes back off as RFC 6347 asks ([`handshake`]).

pub mod buffer;
pub mod consumption;
pub mod download;
pub mod dynamics;
pub mod firmware;
pub mod handshake;
pub mod profile;
pub mod radio;
pub mod sim;
pub mod store;

pub use dynamics::Reading;
pub use firmware::{BadEffect, FirmwareSettings};
pub use profile::{Problem, Profile, ProfileParams, VersionMix};
pub use sim::{
    BootstrapSettings, Ctx, MeterSettings, OutagePlan, Security, SimMeter, endpoint_name, psk_key,
};

#[cfg(test)]
mod tests;
