//! The LwM2M data model shared by every part of Ferrite: object and resource definitions, paths,
//! typed values and nodes, and the content-format codecs (TLV, SenML JSON/CBOR, LwM2M JSON, plain
//! text, opaque, CoRE link format).
//!
//! This crate never performs I/O and never reads the clock: it turns bytes into typed values and
//! back. It builds for `wasm32-unknown-unknown` so the console can use the same object model.
//!
//! Entry points:
//! - [`Path`] for `/3/0/7/1`-style paths;
//! - [`Value`], [`Node`] for typed content;
//! - [`ObjectModel`] for definitions (the OMA objects Ferrite ships, generated from the registry);
//! - [`codec`] for decoding and encoding payloads by [`ContentFormat`];
//! - [`link`] for CoRE link format (registration payloads and Discover output).

pub mod codec;
pub mod link;
mod model;
mod node;
mod path;
#[rustfmt::skip]
mod registry;
#[cfg(test)]
mod test_support;
mod value;

pub use codec::ContentFormat;
pub use model::{ObjectDef, ObjectModel, Operations, Range, ResourceDef};
pub use node::{Node, ObjectInstance, Resource, ResourceValue};
pub use path::{MAX_ID, Path, PathError};
pub use value::{ObjLink, ResourceType, Value, ValueError};

/// The object definitions generated from the OMA LwM2M registry (see `xtask gen-objects`).
pub use registry::OBJECTS as BUILTIN_OBJECTS;
