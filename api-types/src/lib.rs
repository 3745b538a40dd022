//! The serde types of Ferrite's HTTP API (`/api/v1`), shared by the server and the console.
//!
//! These types are the serialization boundary: the server converts its store rows and core types
//! into them explicitly, so a change inside the server never changes the API by accident.

use serde::{Deserialize, Serialize};

/// The body of every error response: a stable machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// e.g. `unauthorized`, `not_found`, `bad_request`.
    pub error: String,
    pub message: String,
}

/// One object of the server's object model, as listed by `GET /api/v1/objects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub id: u16,
    pub name: String,
    pub version: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    pub resource_count: usize,
}

/// One object with its resources, as returned by `GET /api/v1/objects/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDetail {
    pub id: u16,
    pub name: String,
    pub urn: String,
    pub version: String,
    pub lwm2m_version: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    pub resources: Vec<ResourceInfo>,
}

/// A resource definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceInfo {
    pub id: u16,
    pub name: String,
    /// `R`, `W`, `RW`, `E` or empty.
    pub operations: String,
    pub multiple_instances: bool,
    pub mandatory: bool,
    /// The OMA type name: `String`, `Integer`, `Unsigned Integer`, `Float`, `Boolean`, `Opaque`,
    /// `Time`, `Objlnk`, `Corelnk`, or `none` for executable resources.
    #[serde(rename = "type")]
    pub ty: String,
    pub units: Option<String>,
    /// The range or enumeration as text (`0..100`, `16,32,48`, `0..255 bytes`).
    pub range: Option<String>,
}
