//! What the server engine tells the application ([`ServerEvent`]): everything it must persist
//! (registrations, queued requests), publish (notifications, Send data) or decide
//! (Register requests), plus the answers it can give to a Register ([`Rejection`]).

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m_objects::Path;
use lwm2m_objects::codec::{DecodeError, Record};
use lwm2m_objects::link::{LinkError, RegistrationLinks};

use super::commit::{Change, CommitTicket};
use super::ops::{Content, ObservationId, OpError, OpId, OpOutcome};
use super::registrations::{PeerAuth, Registration, RegistrationId};
use crate::coap::Code;
use crate::lwm2m::registration::{RegisterParams, RegistrationError};

/// Names a Register request waiting for [`super::Lwm2mServer::accept_registration`] or
/// [`super::Lwm2mServer::reject_registration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationTicket(pub(super) u64);

/// How the application refuses a Register (TS Core 1.1 §6.2.1 lists 4.00 and 4.03; 5.03 asks
/// the client to come back later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 4.00: the request is not acceptable (e.g. an unknown endpoint name).
    BadRequest,
    /// 4.03: the client is not allowed (decommissioned, identity not the endpoint's, NoSec
    /// not allowed for it).
    Forbidden,
    /// 5.03: try again later (e.g. the store is unavailable).
    ServiceUnavailable,
}

impl Rejection {
    /// The CoAP response code.
    pub fn code(self) -> Code {
        match self {
            Rejection::BadRequest => Code::BAD_REQUEST,
            Rejection::Forbidden => Code::FORBIDDEN,
            Rejection::ServiceUnavailable => Code::SERVICE_UNAVAILABLE,
        }
    }
}

/// Why the engine itself refused a Register, Update or De-register.
#[derive(Debug, Clone, PartialEq)]
pub enum RefusalReason {
    /// The query string is wrong (4.00), or the version is not served (4.12,
    /// [`RegistrationError::coap_code`]).
    InvalidParameters(RegistrationError),
    /// The payload is not valid registration link format (4.00).
    InvalidLinks(LinkError),
    /// The payload is not UTF-8 (4.00).
    PayloadNotUtf8,
    /// The payload's Content-Format is not link format (4.00).
    UnsupportedContentFormat(u16),
    /// [`super::ServerConfig::max_registrations`] reached (5.03).
    TooManyRegistrations,
    /// [`super::ServerConfig::max_pending_registrations`] reached (5.03).
    TooManyPendingRegistrations,
    /// Update or De-register of an unknown registration ID (4.04).
    UnknownRegistration,
    /// Update or De-register with another identity than the registration's (4.03).
    IdentityMismatch {
        /// The registration it named.
        registration: RegistrationId,
    },
    /// A request on `/rd` with the wrong method (4.05).
    MethodNotAllowed,
    /// An Update or De-register while a Register (reboot) or De-register of the same endpoint
    /// is still being persisted (5.03: the client tries again; applied in order, it could
    /// overwrite or resurrect the stored registration).
    ChangePending,
}

/// Why a Send (`POST /dp`) was refused (TS Transport 1.1 Table 6.7-4: 4.00 or 4.04).
#[derive(Debug, Clone, PartialEq)]
pub enum SendRefusal {
    /// No registration from this address (4.04: none of its objects are registered here).
    NotRegistered,
    /// The address is registered with another identity (4.03).
    IdentityMismatch,
    /// Content-Format absent or not SenML (4.00).
    UnsupportedContentFormat(Option<u16>),
    /// The payload could not be decoded (4.00).
    DecodeFailed(DecodeError),
    /// A record names an object instance the client did not register (4.04, TS Core 1.1
    /// §6.4.6: "the reported Object Instances MUST have been registered").
    InstanceNotRegistered(Path),
}

/// Why an observation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationEndReason {
    /// A `CancelObservation` operation ended it.
    Cancelled,
    /// The client ended it with a response without Observe (RFC 7641 §3.2), e.g. 4.04 after
    /// the instance was deleted; `None` when a proactive cancellation got no answer.
    EndedByClient(Option<Code>),
    /// The client de-registered.
    Deregistered,
    /// The registration expired.
    RegistrationExpired,
    /// The client registered again (a reboot): its observations are gone on its side too.
    Replaced,
    /// The client's address changed (NAT rebinding, seen in an Update): CoAP observations are
    /// bound to the address they were made from, so observe again.
    AddressChanged,
    /// The application removed the registration.
    Removed,
}

/// Something the application must know, from [`super::Lwm2mServer::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A client asks to register. Check it (known device, not decommissioned, identity belongs
    /// to the endpoint, NoSec allowed) and answer with `accept_registration` or
    /// `reject_registration` within [`crate::coap::CoapConfig::pending_request_timeout`].
    RegistrationRequest {
        /// The ticket to answer with.
        ticket: RegistrationTicket,
        /// Sender.
        peer: SocketAddr,
        /// Its authenticated identity.
        auth: PeerAuth,
        /// The Register parameters.
        params: RegisterParams,
        /// Its objects.
        links: RegistrationLinks,
    },
    /// A client is registered. `replaced` is its previous registration if it registered again
    /// without de-registering (a reboot); that one's observations and in-flight requests have
    /// ended (events for them came first), its queued requests carry over.
    Registered {
        /// The new registration.
        registration: Registration,
        /// The registration it replaced.
        replaced: Option<Registration>,
    },
    /// Persist `change`, then call [`super::Lwm2mServer::commit_succeeded`] (or
    /// [`super::Lwm2mServer::commit_failed`]) with `ticket`; only then does it take effect and the
    /// client get its answer. Only with [`super::ServerConfig::persist_before_answer`] set.
    PersistChange {
        /// The ticket to report the commit with.
        ticket: CommitTicket,
        /// What to write.
        change: Change,
    },
    /// No commit came for `ticket` within [`super::ServerConfig::persist_before_answer`]: the
    /// client was answered 5.03 and nothing changed. If the write may still land, undo it (write
    /// back what the engine holds for the endpoint).
    CommitTimedOut {
        /// The ticket given up.
        ticket: CommitTicket,
        /// The change that did not take effect.
        change: Change,
    },
    /// A client updated its registration (lifetime, binding, objects, or address).
    Updated {
        /// After the Update.
        registration: Registration,
        /// Before it.
        previous: Registration,
    },
    /// A client de-registered (its operations and observations ended first).
    Deregistered {
        /// The registration.
        registration: Registration,
    },
    /// A registration was not updated within its lifetime and is gone.
    Expired {
        /// The registration.
        registration: Registration,
    },
    /// The engine refused a Register, Update or De-register by itself (diagnostics).
    RegistrationRefused {
        /// Sender.
        peer: SocketAddr,
        /// Its identity.
        auth: PeerAuth,
        /// The endpoint name, when the request carried a readable one.
        endpoint: Option<String>,
        /// The response code sent.
        code: Code,
        /// Why.
        reason: RefusalReason,
    },
    /// An operation waits for the client (queue mode and asleep, or all in-flight slots taken).
    /// Persist it if it must survive a restart; see [`super::Lwm2mServer::queued_ops`].
    OpQueued {
        /// The operation.
        op: OpId,
        /// The client.
        endpoint: String,
        /// When it fails with [`OpError::Expired`] if still waiting.
        expires_at: Instant,
    },
    /// An operation finished.
    OpCompleted {
        /// The operation.
        op: OpId,
        /// The client.
        endpoint: String,
        /// The result.
        outcome: Result<OpOutcome, OpError>,
    },
    /// A new value of an observation (RFC 7641 §3.2; reordered and duplicate notifications are
    /// already filtered).
    Notification {
        /// The observation.
        observation: ObservationId,
        /// The client.
        endpoint: String,
        /// The observed path(s).
        paths: Vec<Path>,
        /// The decoded value, or why it could not be decoded.
        content: Result<Content, OpError>,
        /// The Observe sequence number.
        seq: u32,
    },
    /// An observation ended.
    ObservationEnded {
        /// The observation.
        observation: ObservationId,
        /// The client.
        endpoint: String,
        /// Why.
        reason: ObservationEndReason,
    },
    /// A client sent data (LwM2M 1.1 Send, `POST /dp`, TS Core 1.1 §6.4.6); answered 2.04.
    Send {
        /// The client.
        endpoint: String,
        /// Its registration.
        registration: RegistrationId,
        /// The records, with their times (relative times are relative to reception).
        records: Vec<Record>,
    },
    /// A Send was refused (diagnostics: the data is lost unless the client retries).
    SendRefused {
        /// Sender.
        peer: SocketAddr,
        /// The endpoint, when the sender is registered.
        endpoint: Option<String>,
        /// The response code sent.
        code: Code,
        /// Why.
        reason: SendRefusal,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_map_to_their_codes() {
        assert_eq!(Rejection::BadRequest.code(), Code::new(4, 0));
        assert_eq!(Rejection::Forbidden.code(), Code::new(4, 3));
        assert_eq!(Rejection::ServiceUnavailable.code(), Code::new(5, 3));
    }
}
