//! `GET /api/v1/openapi.json`: the API's OpenAPI document, generated from the routes themselves.
//!
//! It needs a login like every other route (field-service): it holds no secret, but an
//! unauthenticated caller has no use for the map of a device-management server, and keeping it
//! behind the gate means the route-enumeration test needs no exception besides the login.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::routes;

use super::Routes;
use crate::accounts::Role;

pub fn routes() -> Vec<Routes> {
    vec![Routes::role(Role::FieldService).routes(routes!(openapi_json))]
}

/// The document, serialized once when the app is built.
#[derive(Debug, Clone)]
pub struct Document(Arc<String>);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Document {
        // Serializing plain data structures (strings, maps) cannot fail.
        let json = serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".to_owned());
        Document(Arc::new(json))
    }
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}
