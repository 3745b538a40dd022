//! `GET /api/v1/objects` and `GET /api/v1/objects/{id}`: the object model the server knows (names,
//! types, units, ranges), which the console uses to label values.

use axum::Json;
use axum::extract::Path;
use lwm2m_objects::{ObjectDef, ObjectModel, Range, ResourceDef};
use utoipa_axum::routes;

use super::{ApiError, Routes};
use crate::accounts::Role;

pub fn routes() -> Vec<Routes> {
    vec![
        Routes::role(Role::FieldService)
            .routes(routes!(list))
            .routes(routes!(detail)),
    ]
}

/// The LwM2M objects the server knows.
#[utoipa::path(get, path = "/objects", tag = "objects",
    responses((status = 200, body = Vec<api_types::ObjectSummary>)))]
async fn list() -> Json<Vec<api_types::ObjectSummary>> {
    Json(ObjectModel::builtin().objects().map(summary).collect())
}

/// One object with its resources.
#[utoipa::path(get, path = "/objects/{id}", tag = "objects",
    params(("id" = u16, Path, description = "Object ID, e.g. 3 (Device)")),
    responses((status = 200, body = api_types::ObjectDetail),
              (status = 404, body = api_types::ErrorBody)))]
async fn detail(Path(id): Path<String>) -> Result<Json<api_types::ObjectDetail>, ApiError> {
    let id: u16 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not an object ID (0..65534)")))?;
    let def = ObjectModel::builtin()
        .object(id)
        .ok_or_else(|| ApiError::NotFound(format!("object {id} is not in the object model")))?;
    Ok(Json(api_types::ObjectDetail {
        id: def.id,
        name: def.name.to_owned(),
        urn: def.urn.to_owned(),
        version: def.version.to_owned(),
        lwm2m_version: def.lwm2m_version.to_owned(),
        multiple_instances: def.multiple,
        mandatory: def.mandatory,
        resources: def.resources.iter().map(resource).collect(),
    }))
}

fn summary(def: &ObjectDef) -> api_types::ObjectSummary {
    api_types::ObjectSummary {
        id: def.id,
        name: def.name.to_owned(),
        version: def.version.to_owned(),
        multiple_instances: def.multiple,
        mandatory: def.mandatory,
        resource_count: def.resources.len(),
    }
}

fn resource(def: &ResourceDef) -> api_types::ResourceInfo {
    api_types::ResourceInfo {
        id: def.id,
        name: def.name.to_owned(),
        operations: def.operations.as_str().to_owned(),
        multiple_instances: def.multiple,
        mandatory: def.mandatory,
        ty: def.ty.oma_name().to_owned(),
        units: def.units.map(str::to_owned),
        range: def.range.map(|r| range_text(&r)),
    }
}

fn range_text(range: &Range) -> String {
    match range {
        Range::Integer { min, max } => format!("{min}..{max}"),
        Range::Float { min, max } => format!("{min}..{max}"),
        Range::Length { min, max } => format!("{min}..{max} bytes"),
        Range::OneOf(values) => values
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Range::Described(text) => (*text).to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::super::test_util::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn lists_and_details_objects() {
        let app = TestApp::new().await;
        let (status, body) = app.get("/api/v1/objects", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"Device"), "{names:?}");
        let (status, body) = app.get("/api/v1/objects/4", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let rssi = body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == 2)
            .unwrap();
        assert_eq!(rssi["units"], "dBm");
        assert_eq!(rssi["type"], "Integer");
    }

    #[tokio::test]
    async fn unknown_and_malformed_ids_get_clear_errors() {
        let app = TestApp::new().await;
        let (status, body) = app.get("/api/v1/objects/4242", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        let (status, body) = app.get("/api/v1/objects/abc", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["message"].as_str().unwrap().contains("abc"));
        let (status, _) = app.get("/nowhere", Auth::Bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
