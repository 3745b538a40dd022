//! Errors of the device-operation routes: the API's own errors ([`ApiError`]) plus the LwM2M
//! service's, mapped to HTTP the way the API contract says — the device's CoAP error code in the
//! body (`coap_code`), 4.04 → 404 and 4.05 → 405, other device errors 502, no answer 504,
//! unknown or unregistered device 404, suspended device 409, service stopped 503.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::ApiError;
use crate::lwm2m::{OperationId, ServiceError, ServiceErrorKind};

/// The JSON body of a failed device operation (defined in `api_types::lwm2m`, shared with the
/// console).
pub use api_types::lwm2m::DeviceErrorBody;

/// A failed device operation.
#[derive(Debug, thiserror::Error)]
pub enum OpRouteError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The caller's wait ran out while the request was on the wire (not queued).
    #[error(
        "the device did not answer within {waited_ms} ms; operation {operation} is still in flight and its result will come as an operation_completed event"
    )]
    StillRunning {
        operation: OperationId,
        waited_ms: u64,
    },
    /// An error already rendered (one path's failure standing for a whole parallel read).
    #[error("{}", .1.message)]
    Body(StatusCode, DeviceErrorBody),
}

impl OpRouteError {
    /// A malformed request (400) saying what is wrong.
    pub fn bad_request(message: impl Into<String>) -> OpRouteError {
        OpRouteError::Api(ApiError::BadRequest(message.into()))
    }

    /// The HTTP status and body kind of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            OpRouteError::Api(_) => StatusCode::INTERNAL_SERVER_ERROR, // answered by ApiError
            OpRouteError::StillRunning { .. } => StatusCode::GATEWAY_TIMEOUT,
            OpRouteError::Service(error) => service_status(error),
            OpRouteError::Body(status, _) => *status,
        }
    }

    /// The JSON body of this error; None for the API's own errors (they render themselves).
    pub fn to_body(&self) -> Option<DeviceErrorBody> {
        Some(match self {
            OpRouteError::Api(_) => return None,
            OpRouteError::Body(_, body) => body.clone(),
            OpRouteError::StillRunning { operation, .. } => DeviceErrorBody {
                error: "timeout".to_owned(),
                message: self.to_string(),
                coap_code: None,
                operation: Some(operation.to_string()),
            },
            OpRouteError::Service(ServiceError::Store(error)) => {
                // Storage details (tables, hosts) are for the log, not the caller.
                tracing::error!(%error, "device operation failed in storage");
                DeviceErrorBody {
                    error: "internal".to_owned(),
                    message: "internal error".to_owned(),
                    coap_code: None,
                    operation: None,
                }
            }
            OpRouteError::Service(error) => {
                let view = error.to_view();
                DeviceErrorBody {
                    error: view.kind,
                    message: view.message,
                    coap_code: view.coap_code,
                    operation: None,
                }
            }
        })
    }
}

/// The status for a service error: the CoAP codes with an HTTP twin keep it.
pub fn service_status(error: &ServiceError) -> StatusCode {
    match error.kind() {
        ServiceErrorKind::NotFound => StatusCode::NOT_FOUND,
        ServiceErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ServiceErrorKind::Conflict => StatusCode::CONFLICT,
        ServiceErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ServiceErrorKind::BadGateway => match error.coap_code() {
            // RFC 7252 §5.9.2.5 / §5.9.2.6: the resource or the method does not exist on the
            // device; the HTTP codes mean the same (RFC 8075 §7 maps them one to one).
            Some("4.04") => StatusCode::NOT_FOUND,
            Some("4.05") => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_GATEWAY,
        },
        ServiceErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        ServiceErrorKind::Gone => StatusCode::GONE,
        ServiceErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ServiceErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for OpRouteError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self.to_body() {
            Some(body) => (status, Json(body)).into_response(),
            None => match self {
                OpRouteError::Api(error) => error.into_response(),
                // to_body is None only for Api.
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fleet::lifecycle::LifecycleState;

    fn device_error(code: &str) -> ServiceError {
        ServiceError::DeviceError {
            code: code.to_owned(),
            diagnostic: None,
        }
    }

    #[test]
    fn coap_codes_map_to_http() {
        assert_eq!(service_status(&device_error("4.04")), StatusCode::NOT_FOUND);
        assert_eq!(
            service_status(&device_error("4.05")),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            service_status(&device_error("4.01")),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            service_status(&device_error("5.00")),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            service_status(&ServiceError::UnknownDevice("m".into())),
            StatusCode::NOT_FOUND
        );
        let suspended = ServiceError::NotAllowed {
            endpoint: "m".into(),
            operation: "Write",
            state: LifecycleState::Suspended,
        };
        assert_eq!(service_status(&suspended), StatusCode::CONFLICT);
        assert_eq!(
            service_status(&ServiceError::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
