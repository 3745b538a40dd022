//! The object store a client serves device-management requests from: the [`ObjectStore`] trait
//! the application (a simulated meter) implements, the write modes of TS Core 1.1 §6.3.3 and the
//! errors that map to the CoAP codes of TS Core 1.1 §6.3 (Table "Device Management response
//! codes").

use lwm2m_objects::{Node, ObjectInstance, Path};
use thiserror::Error;

use crate::coap::Code;

/// How a Write replaces content (OMA LwM2M TS Core 1.1 §6.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `PUT`: the target (instance or resource) is replaced by the payload; writable resources of
    /// an instance that the payload leaves out are removed.
    Replace,
    /// `POST`: only the resources (or resource instances) in the payload are changed.
    PartialUpdate,
}

/// Why the store refused an operation; each maps to one CoAP response code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum StoreError {
    /// 4.04: the object, instance or resource does not exist.
    #[error("not found")]
    NotFound,
    /// 4.05: the operation is not allowed on this target (a write to a read-only resource, an
    /// execute on a non-executable one, a read of an executable one).
    #[error("operation not allowed on this target")]
    NotAllowed,
    /// 4.01: the server may not access this target (e.g. the Security object, TS Core 1.1 §E.1).
    #[error("access denied")]
    Unauthorized,
    /// 4.00: the content is not acceptable for the target (wrong type, out of range, duplicate
    /// instance ID), with a short reason.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 5.00: the store failed for its own reasons.
    #[error("internal error")]
    Internal,
}

impl StoreError {
    /// The CoAP response code for this error.
    pub fn code(self) -> Code {
        match self {
            StoreError::NotFound => Code::NOT_FOUND,
            StoreError::NotAllowed => Code::METHOD_NOT_ALLOWED,
            StoreError::Unauthorized => Code::UNAUTHORIZED,
            StoreError::BadRequest(_) => Code::BAD_REQUEST,
            StoreError::Internal => Code::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The objects of one LwM2M client, as the device-management interface sees them.
///
/// The client ([`super::Lwm2mClient`]) decodes requests, checks what it can check without the
/// data (paths, content formats, the Security object), calls the store, and encodes the answer.
/// The store owns the values and decides permissions (a ready implementation that enforces the
/// object model's R/W/E operations is [`super::MemoryObjectStore`]).
///
/// Values change in two ways: through the client (server writes, creates, deletes: the client
/// knows what changed) and by the application itself (a meter's reading moves). For the second,
/// a store that wants observations to fire reports the changed paths from
/// [`pop_change`](Self::pop_change), or the application calls
/// [`super::Lwm2mClient::notify_changed`].
pub trait ObjectStore {
    /// Reads the object, instance, resource or resource instance at `path` (never the root).
    /// Only readable resources are included in an object or instance.
    fn read(&self, path: &Path) -> Result<Node, StoreError>;

    /// Writes `node`, decoded for `path` (an instance, a resource or a resource instance).
    fn write(&mut self, path: &Path, node: Node, mode: WriteMode) -> Result<(), StoreError>;

    /// Executes the resource at `path` with the optional argument text (TS Core 1.1 §5.4.5).
    /// The client reports [`super::ClientEvent::Executed`] afterwards: acting on it (rebooting,
    /// starting a firmware update) is the application's business.
    fn execute(&mut self, path: &Path, args: Option<&str>) -> Result<(), StoreError>;

    /// Creates an instance of `object`, with the ID the server asked for or one the store
    /// chooses, and returns the ID.
    fn create(
        &mut self,
        object: u16,
        instance: Option<u16>,
        content: ObjectInstance,
    ) -> Result<u16, StoreError>;

    /// Deletes the object instance at `path`.
    fn delete(&mut self, path: &Path) -> Result<(), StoreError>;

    /// The supported objects in ascending order, each with its instance IDs in ascending order
    /// (an object with no instance yet has an empty list). The registration payload is built
    /// from this.
    fn objects(&self) -> Vec<(u16, Vec<u16>)>;

    /// The resources present in instance `/object/instance`, ascending, with the number of
    /// instances of each multiple-instance resource (`dim` in Discover).
    fn resources(&self, object: u16, instance: u16) -> Result<Vec<(u16, Option<u16>)>, StoreError>;

    /// Bootstrap-Write (OMA LwM2M TS Core 1.1 §6.1.7.4): writes `node` at `path` (an object, an
    /// instance or a resource), creating the instance when it does not exist and ignoring the
    /// operations a device-management server is limited to (the Security object has none). Only
    /// the bootstrap server reaches this. The default refuses (4.05): a store that can be
    /// bootstrapped overrides it.
    fn bootstrap_write(&mut self, path: &Path, node: Node) -> Result<(), StoreError> {
        let _ = (path, node);
        Err(StoreError::NotAllowed)
    }

    /// The whole instance `/object/instance` as the bootstrap interface sees it (every
    /// resource, including those a device-management server may not read, such as the Security
    /// object's). The default is [`read`](Self::read).
    fn bootstrap_read_instance(&self, object: u16, instance: u16) -> Option<ObjectInstance> {
        match self.read(&Path::Instance(object, instance)) {
            Ok(Node::Instance(instance)) => Some(instance),
            _ => None,
        }
    }

    /// A path whose value the application changed since the last call, if any. The client drains
    /// this after every input so observations of those paths are notified.
    fn pop_change(&mut self) -> Option<Path> {
        None
    }
}
