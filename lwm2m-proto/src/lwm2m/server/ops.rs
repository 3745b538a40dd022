//! The operations the server sends to a registered client — Device Management and Service
//! Enablement (OMA LwM2M TS Core 1.1 §6.3) and Information Reporting (§6.4) — with their outcomes
//! and errors. How they travel as CoAP is in `mapping`.

use std::fmt;

use lwm2m_objects::codec::{DecodeError, EncodeError, Record};
use lwm2m_objects::link::{Attributes, DiscoverLink, LinkError};
use lwm2m_objects::{Node, ObjectInstance, Path};

use crate::coap::{Code, FailureReason};
use crate::lwm2m::registration::Lwm2mVersion;

/// Identifies an operation from [`super::Lwm2mServer::request`] in the events about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub(super) u64);

impl OpId {
    /// The number, for logs and for correlating with the application's own records.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op-{}", self.0)
    }
}

/// Identifies an established observation (Observe or Observe-Composite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservationId(pub(super) u64);

impl ObservationId {
    /// The number, for logs and for the application's records.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The observation numbered `number` (as [`as_u64`](Self::as_u64) gave it), e.g. read back
    /// from the application's records to restore it.
    pub fn from_u64(number: u64) -> ObservationId {
        ObservationId(number)
    }
}

impl fmt::Display for ObservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "obs-{}", self.0)
    }
}

/// How a Write changes its target (TS Core 1.1 §6.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the target (PUT): resources not given are removed or reset.
    Replace,
    /// Partial update (POST): only the resources given change.
    PartialUpdate,
}

/// An operation on a registered client.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Read an object, instance, resource or resource instance (§6.3.1).
    Read(Path),
    /// Read several paths at once (§6.3.8, LwM2M 1.1+).
    ReadComposite(Vec<Path>),
    /// Write an instance, resource or resource instance (§6.3.3).
    Write {
        /// The target.
        path: Path,
        /// The content, the node found at `path`.
        node: Node,
        /// Replace or partial update.
        mode: WriteMode,
    },
    /// Write values at several paths (§6.3.9, LwM2M 1.1+).
    WriteComposite(Vec<Record>),
    /// Execute a resource (§6.3.5), with optional arguments (`0='x',1` syntax, §5.4.3).
    Execute {
        /// The resource.
        path: Path,
        /// The argument text, if any.
        args: Option<String>,
    },
    /// Create an object instance (§6.3.6); `instance.id` is the ID asked for.
    Create {
        /// The object.
        object: u16,
        /// The new instance's resources.
        instance: ObjectInstance,
    },
    /// Delete an object instance (or, 1.2, a resource instance) (§6.3.7).
    Delete(Path),
    /// Discover the attributes and resources below a path (§6.3.2).
    Discover(Path),
    /// Write notification attributes (§6.3.4, §5.1.2). A parameter in
    /// [`Attributes::other`] without a value is sent bare, which removes that attribute.
    WriteAttributes {
        /// The target.
        path: Path,
        /// pmin, pmax, gt, lt, st, epmin, epmax …
        attributes: Attributes,
    },
    /// Observe a path (§6.4.1).
    Observe(Path),
    /// Observe several paths at once (§6.4.2, LwM2M 1.1+).
    ObserveComposite(Vec<Path>),
    /// End an observation (§6.4.3).
    CancelObservation(ObservationId),
}

impl Operation {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Read(_) => "Read",
            Operation::ReadComposite(_) => "Read-Composite",
            Operation::Write { .. } => "Write",
            Operation::WriteComposite(_) => "Write-Composite",
            Operation::Execute { .. } => "Execute",
            Operation::Create { .. } => "Create",
            Operation::Delete(_) => "Delete",
            Operation::Discover(_) => "Discover",
            Operation::WriteAttributes { .. } => "Write-Attributes",
            Operation::Observe(_) => "Observe",
            Operation::ObserveComposite(_) => "Observe-Composite",
            Operation::CancelObservation(_) => "Cancel Observation",
        }
    }
}

/// Decoded content from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// The node at the path asked for (Read, Observe, notifications without times).
    Node {
        /// The path the node was read at.
        path: Path,
        /// Its content.
        node: Node,
    },
    /// Records with their paths and times: composite operations, and single-path content that
    /// carries times (a SenML time series: historical notifications), which a node would lose.
    Records(Vec<Record>),
}

/// What a successful operation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum OpOutcome {
    /// Read, Read-Composite; also an Observe the client answered without establishing an
    /// observation (no Observe option in the response).
    Content(Content),
    /// Write, Write-Composite, Write-Attributes, Execute (2.04).
    Changed,
    /// Create (2.01): the new instance, when the client gave its Location-Path.
    Created {
        /// `/o/i` of the new instance.
        instance: Option<Path>,
    },
    /// Delete (2.02).
    Deleted,
    /// Discover: the links with their attributes.
    Links(Vec<DiscoverLink>),
    /// Observe, Observe-Composite: established, with the current value.
    Observing {
        /// Names the observation in notifications and in `CancelObservation`.
        observation: ObservationId,
        /// The first value.
        content: Content,
    },
    /// Cancel Observation: the observation is over.
    Cancelled {
        /// The observation.
        observation: ObservationId,
    },
}

/// Why an operation failed: refused at once by [`super::Lwm2mServer::request`], or reported in
/// `OpCompleted`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// No registration with that endpoint name.
    #[error("the endpoint is not registered")]
    UnknownEndpoint,
    /// The client's LwM2M version does not have this operation (composite operations need 1.1).
    #[error("{operation} needs LwM2M 1.1 or later; the client registered {version}")]
    NotSupported {
        /// The operation.
        operation: &'static str,
        /// The client's version.
        version: Lwm2mVersion,
    },
    /// The operation is not valid as given (wrong path depth, empty list, …).
    #[error("invalid {operation}: {reason}")]
    Invalid {
        /// The operation.
        operation: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`super::ServerConfig::max_queued`] requests already wait for this client.
    #[error("the request queue for this client is full")]
    QueueFull,
    /// [`super::ServerConfig::max_observations`] observations already exist for this client.
    #[error("too many observations for this client")]
    TooManyObservations,
    /// No such observation for this client.
    #[error("no such observation")]
    UnknownObservation,
    /// The content could not be encoded in the client's format.
    #[error("cannot encode the request: {0}")]
    Encode(EncodeError),
    /// The client answered with an error code (4.00, 4.04, 4.05, 5.00, …).
    #[error("the client answered {code}{}", diagnostic.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Coap {
        /// The response code.
        code: Code,
        /// The diagnostic payload, if it was text (RFC 7252 §5.5.2).
        diagnostic: Option<String>,
    },
    /// The response came in a content format this server does not decode.
    #[error("the response has unsupported content format {0}")]
    UnsupportedContentFormat(u16),
    /// The response content could not be decoded.
    #[error("{0}")]
    DecodeFailed(DecodeError),
    /// A Discover response is not valid link format.
    #[error("{0}")]
    InvalidLinks(LinkError),
    /// No answer (no ACK after the retransmissions, or no response in time).
    #[error("the client did not answer")]
    Timeout,
    /// The client rejected the request with RST.
    #[error("the client reset the request")]
    Reset,
    /// Another transport failure (block-wise transfer, oversized response, …).
    #[error("transport failure: {0}")]
    Transport(FailureReason),
    /// The request waited in the queue past its expiry without the client waking up.
    #[error("the request expired in the queue")]
    Expired,
    /// The client de-registered.
    #[error("the client de-registered")]
    Deregistered,
    /// The registration's lifetime ran out.
    #[error("the registration expired")]
    RegistrationExpired,
    /// The client registered again (a reboot); in-flight requests of the old registration fail.
    #[error("the client registered again")]
    Replaced,
    /// The application removed the registration.
    #[error("the registration was removed")]
    Removed,
}

impl From<DecodeError> for OpError {
    fn from(e: DecodeError) -> OpError {
        OpError::DecodeFailed(e)
    }
}
