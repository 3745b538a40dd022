//! The fleet: device registry, lifecycle and bulk onboarding as pure logic (no I/O). The store
//! (`crate::store`) persists it; the HTTP API and the CoAP/DTLS endpoints call the store.

pub mod lifecycle;
pub mod onboarding;
pub mod registry;
pub mod secrets;

pub use lifecycle::{
    Actor, ActorKind, IllegalTransition, LifecycleState, SystemComponent, TransitionAction,
};
pub use onboarding::{ImportOutcome, ImportRejection, ImportReport, ImportRow};
pub use registry::{
    AuditEntry, AuditPage, AuditPageRequest, Connectivity, ConnectivityUpdate, CreatedDevice,
    CredentialsPage, Device, DeviceChanges, DeviceFilter, DevicePage, NewDevice, PageRequest,
    PskCredentials, RegistrationFacts, RegistrationRefusal, RotatedCredentials, SecurityMode, Tags,
    ValidationError,
};
pub use secrets::{PskKey, ServerKey};
