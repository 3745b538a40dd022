//! The routes that change a device (fleet-manager): Write, Execute, Create, Delete and
//! Write-Attributes (TS Core 1.1 §6.3.3–§6.3.7, §5.1.2). Values are checked against the object
//! model before anything is sent: a value of the wrong type or a resource that is not writable
//! (or not executable) is a 400 that says so. Every request that reaches the device (or its
//! queue) is audited: who asked for what, and how it went.

use axum::extract::{Path as UrlPath, State};
use lwm2m_objects::link::Attributes;
use lwm2m_objects::{Operations, Path};
use lwm2m_proto::lwm2m::server::{OpOutcome, Operation, WriteMode};

use super::values::{instance_in, node_in, resource_def};
use super::{
    CreateRequest, CreatedResponse, DeviceErrorBody, Done, DoneResponse, ENDPOINT, ExecuteRequest,
    OpRouteError, PathRequest, PendingResponse, Reply, WriteAttributesRequest, WriteModeIn,
    WriteRequest, path_of, pending, request, service, unexpected,
};
use crate::accounts::Principal;
use crate::fleet::registry::{
    AUDIT_DEVICE_CREATE, AUDIT_DEVICE_DELETE, AUDIT_DEVICE_EXECUTE, AUDIT_DEVICE_WRITE,
    AUDIT_DEVICE_WRITE_ATTRIBUTES,
};
use crate::http::AppState;
use crate::http::devices::actor;
use crate::http::extract::JsonBody;

/// Audits a changing operation once it was asked of the device: `what` (path, arguments) and
/// the outcome. A failed audit write is logged, not returned: the device was already asked.
async fn audited(
    state: &AppState,
    principal: &Principal,
    endpoint: &str,
    action: &str,
    what: String,
    result: Result<Done, OpRouteError>,
) -> Result<Done, OpRouteError> {
    let outcome = match &result {
        Ok(Done::Queued(id)) => format!("queued as operation {id}"),
        Ok(Done::Answered(id, _)) => format!("done (operation {id})"),
        // Refused before anything was sent (unknown device, bad request): nothing to audit.
        Err(OpRouteError::Api(_)) => return result,
        Err(error) => format!("failed: {error}"),
    };
    let recorded = match actor(principal) {
        Ok(actor) => state
            .store
            .record_audit(endpoint, &actor, action, &format!("{what}: {outcome}"))
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = recorded {
        tracing::warn!(%endpoint, action, %error, "a device operation could not be audited");
    }
    result
}

/// Writes a resource, a resource instance or (with `values`) an object instance.
#[utoipa::path(post, path = "/devices/{endpoint}/write", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = WriteRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody, description = "Bad path, or a value that does not fit the resource's type"),
        (status = 404, body = DeviceErrorBody), (status = 409, body = DeviceErrorBody, description = "The device is suspended (read-only)"),
        (status = 502, body = DeviceErrorBody), (status = 504, body = DeviceErrorBody)))]
pub(super) async fn write(
    State(state): State<AppState>,
    principal: Principal,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<WriteRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    let (node, default_mode) = match (&body.value, &body.values, path) {
        (Some(value), None, _) => (
            node_in(&path, value).map_err(OpRouteError::bad_request)?,
            WriteMode::Replace,
        ),
        (None, Some(values), Path::Instance(object, instance)) => (
            lwm2m_objects::Node::Instance(
                instance_in(object, instance, values).map_err(OpRouteError::bad_request)?,
            ),
            WriteMode::PartialUpdate,
        ),
        (None, Some(_), _) => {
            return Err(OpRouteError::bad_request(format!(
                "\"values\" (resource ID → value) writes an object instance (/object/instance), not {path}"
            )));
        }
        _ => {
            return Err(OpRouteError::bad_request(
                "give either \"value\" (a resource) or \"values\" (an object instance)",
            ));
        }
    };
    if let Some(def) = resource_def(&path)
        && !def.operations.write
    {
        return Err(OpRouteError::bad_request(format!(
            "{path} ({}) is not writable (operations: {})",
            def.name,
            operations_text(def.operations)
        )));
    }
    let mode = match body.mode {
        Some(WriteModeIn::Replace) => WriteMode::Replace,
        Some(WriteModeIn::Partial) => WriteMode::PartialUpdate,
        None => default_mode,
    };
    let result = request(
        service,
        &endpoint,
        Operation::Write { path, node, mode },
        body.wait_ms,
    )
    .await;
    let what = path.to_string();
    changed(
        audited(
            &state,
            &principal,
            &endpoint,
            AUDIT_DEVICE_WRITE,
            what,
            result,
        )
        .await?,
    )
}

fn operations_text(operations: Operations) -> &'static str {
    match operations.as_str() {
        "" => "none",
        other => other,
    }
}

fn changed(done: Done) -> Result<Reply<DoneResponse>, OpRouteError> {
    match done {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Changed) => Ok(Reply::Done(DoneResponse {
            operation: id.to_string(),
            outcome: "changed".to_owned(),
        })),
        Done::Answered(id, OpOutcome::Deleted) => Ok(Reply::Done(DoneResponse {
            operation: id.to_string(),
            outcome: "deleted".to_owned(),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

/// Executes a resource (TS Core 1.1 §6.3.5), with optional arguments.
#[utoipa::path(post, path = "/devices/{endpoint}/execute", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = ExecuteRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
pub(super) async fn execute(
    State(state): State<AppState>,
    principal: Principal,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<ExecuteRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    if !matches!(path, Path::Resource(..)) {
        return Err(OpRouteError::bad_request(format!(
            "Execute targets a resource (/object/instance/resource), not {path}"
        )));
    }
    if let Some(def) = resource_def(&path)
        && !def.operations.execute
    {
        return Err(OpRouteError::bad_request(format!(
            "{path} ({}) is not executable (operations: {})",
            def.name,
            operations_text(def.operations)
        )));
    }
    let args = body.args.filter(|a| !a.is_empty());
    let what = match &args {
        Some(args) => format!("{path} args {args:?}"),
        None => path.to_string(),
    };
    let operation = Operation::Execute { path, args };
    let result = request(service, &endpoint, operation, body.wait_ms).await;
    changed(
        audited(
            &state,
            &principal,
            &endpoint,
            AUDIT_DEVICE_EXECUTE,
            what,
            result,
        )
        .await?,
    )
}

/// Creates an object instance (TS Core 1.1 §6.3.6).
#[utoipa::path(post, path = "/devices/{endpoint}/create", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = CreateRequest,
    responses((status = 200, body = CreatedResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Result<Reply<CreatedResponse>, OpRouteError> {
    let service = service(&state)?;
    let (object, instance) = match (path_of(&body.path)?, body.instance) {
        (Path::Object(object), Some(instance)) => (object, instance),
        (Path::Instance(object, instance), None) => (object, instance),
        (Path::Instance(object, instance), Some(other)) if other == instance => (object, instance),
        (Path::Object(_), None) => {
            return Err(OpRouteError::bad_request(
                "name the new instance: \"path\": \"/object/instance\" or \"instance\": n",
            ));
        }
        (path, _) => {
            return Err(OpRouteError::bad_request(format!(
                "Create targets an object (/object) or a new instance (/object/instance), not {path}"
            )));
        }
    };
    let instance =
        instance_in(object, instance, &body.values).map_err(OpRouteError::bad_request)?;
    let what = format!("/{object}/{}", instance.id);
    let result = request(
        service,
        &endpoint,
        Operation::Create { object, instance },
        body.wait_ms,
    )
    .await;
    match audited(
        &state,
        &principal,
        &endpoint,
        AUDIT_DEVICE_CREATE,
        what,
        result,
    )
    .await?
    {
        Done::Queued(id) => Ok(Reply::Pending(pending(&[id]))),
        Done::Answered(id, OpOutcome::Created { instance }) => Ok(Reply::Done(CreatedResponse {
            operation: id.to_string(),
            instance: instance.map(|p| p.to_string()),
        })),
        Done::Answered(_, other) => Err(unexpected(&other)),
    }
}

/// Deletes an object instance (or, LwM2M 1.2, a resource instance), TS Core 1.1 §6.3.7.
#[utoipa::path(post, path = "/devices/{endpoint}/delete", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = PathRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
pub(super) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    let result = request(service, &endpoint, Operation::Delete(path), body.wait_ms).await;
    let what = path.to_string();
    changed(
        audited(
            &state,
            &principal,
            &endpoint,
            AUDIT_DEVICE_DELETE,
            what,
            result,
        )
        .await?,
    )
}

/// Writes notification attributes (TS Core 1.1 §5.1.2, §6.3.4).
#[utoipa::path(post, path = "/devices/{endpoint}/write-attributes", tag = "device operations",
    params(("endpoint" = String, Path, description = ENDPOINT)),
    request_body = WriteAttributesRequest,
    responses((status = 200, body = DoneResponse), (status = 202, body = PendingResponse),
        (status = 400, body = DeviceErrorBody), (status = 404, body = DeviceErrorBody),
        (status = 409, body = DeviceErrorBody), (status = 502, body = DeviceErrorBody),
        (status = 504, body = DeviceErrorBody)))]
pub(super) async fn write_attributes(
    State(state): State<AppState>,
    principal: Principal,
    UrlPath(endpoint): UrlPath<String>,
    JsonBody(body): JsonBody<WriteAttributesRequest>,
) -> Result<Reply<DoneResponse>, OpRouteError> {
    let service = service(&state)?;
    let path = path_of(&body.path)?;
    let attributes = attributes_in(&body).map_err(OpRouteError::bad_request)?;
    let params: Vec<String> = attributes
        .to_params()
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{name}={value}"),
            None => name,
        })
        .collect();
    let what = format!("{path} ?{}", params.join("&"));
    let operation = Operation::WriteAttributes { path, attributes };
    let result = request(service, &endpoint, operation, body.wait_ms).await;
    let action = AUDIT_DEVICE_WRITE_ATTRIBUTES;
    changed(audited(&state, &principal, &endpoint, action, what, result).await?)
}

/// The attributes of a Write-Attributes body; `clear` sends names without a value (removal).
fn attributes_in(body: &WriteAttributesRequest) -> Result<Attributes, String> {
    let mut attributes = Attributes {
        pmin: body.pmin,
        pmax: body.pmax,
        gt: body.gt,
        lt: body.lt,
        st: body.st,
        epmin: body.epmin,
        epmax: body.epmax,
        ..Attributes::default()
    };
    for (name, value) in &body.other {
        if !valid_attribute_name(name) || value.is_empty() {
            return Err(format!(
                "attribute {name:?}={value:?} is not a name=value pair"
            ));
        }
        attributes.other.push((name.clone(), Some(value.clone())));
    }
    for name in &body.clear {
        if !valid_attribute_name(name) {
            return Err(format!("{name:?} is not an attribute name"));
        }
        attributes.other.push((name.clone(), None));
    }
    if attributes == Attributes::default() {
        return Err(
            "no attribute given (pmin, pmax, gt, lt, st, epmin, epmax, other, clear)".to_owned(),
        );
    }
    Ok(attributes)
}

fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 16 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}
