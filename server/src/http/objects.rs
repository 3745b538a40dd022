//! `GET /api/v1/objects` and `GET /api/v1/objects/{id}`: the object model the server knows (names,
//! types, units, ranges), which the console uses to label values.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use lwm2m_objects::{ObjectDef, ObjectModel, Range, ResourceDef};

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/objects", get(list))
        .route("/objects/{id}", get(detail))
}

async fn list() -> Json<Vec<api_types::ObjectSummary>> {
    Json(ObjectModel::builtin().objects().map(summary).collect())
}

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
mod tests {
    use super::super::test_util::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn lists_and_details_objects() {
        let app = test_app();
        let (status, body) = get(&app, "/api/v1/objects", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"Device"), "{names:?}");
        let (status, body) = get(&app, "/api/v1/objects/4", Some(TOKEN)).await;
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
        let app = test_app();
        let (status, body) = get(&app, "/api/v1/objects/4242", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        let (status, body) = get(&app, "/api/v1/objects/abc", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["message"].as_str().unwrap().contains("abc"));
        let (status, _) = get(&app, "/nowhere", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
