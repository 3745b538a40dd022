//! Why a request through the LwM2M service failed ([`ServiceError`]), grouped into
//! [`ServiceErrorKind`]s that the HTTP layer maps to status codes (404, 409, 504, 502 with the
//! device's CoAP code, …), and the mapping from the engine's `OpError`.

use lwm2m_proto::lwm2m::server::OpError;

use super::events::ErrorView;
use crate::fleet::lifecycle::LifecycleState;
use crate::store::StoreError;

/// What kind of failure, for an HTTP status: the suggested status is in each variant's doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceErrorKind {
    /// 404: the device is unknown or not registered.
    NotFound,
    /// 400: the request is invalid for this device (path, version, content).
    BadRequest,
    /// 409: the device's lifecycle state forbids it (suspended: no writes).
    Conflict,
    /// 429: too many requests or observations are waiting for this device.
    TooManyRequests,
    /// 502: the device answered with an error code or with something unusable.
    BadGateway,
    /// 504: the device did not answer in time (or the request expired in its queue).
    GatewayTimeout,
    /// 410: the registration ended before the answer (de-registered, expired, rebooted).
    Gone,
    /// 503: the service is shutting down.
    Unavailable,
    /// 500: storage failed.
    Internal,
}

/// A failed service request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("device {0:?} is not in the fleet registry")]
    UnknownDevice(String),
    #[error("device {0:?} is not registered")]
    NotRegistered(String),
    #[error("{operation} is not allowed while device {endpoint:?} is {state}{}", if *state == LifecycleState::Suspended { " (suspended: reads only)" } else { "" })]
    NotAllowed {
        endpoint: String,
        operation: &'static str,
        state: LifecycleState,
    },
    /// The engine refused the request as given (wrong path, 1.1-only operation on a 1.0 device,
    /// content that cannot be encoded, unknown observation).
    #[error("{0}")]
    Invalid(OpError),
    /// The device's queue or observation slots are full.
    #[error("{0}")]
    Busy(OpError),
    /// The device did not answer, or the request expired while waiting for it.
    #[error("{0}")]
    Timeout(OpError),
    /// The device answered with an error code (RFC 7252 §5.9: 4.xx/5.xx).
    #[error("the device answered {code}{}", diagnostic.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    DeviceError {
        /// `4.04` etc.
        code: String,
        diagnostic: Option<String>,
    },
    /// The device's answer could not be used (undecodable content, RST, transfer failure).
    #[error("{0}")]
    BadResponse(OpError),
    /// The registration ended before the answer came.
    #[error("{0}")]
    RegistrationEnded(OpError),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    #[error("the LwM2M service is not running")]
    Unavailable,
}

impl ServiceError {
    pub fn kind(&self) -> ServiceErrorKind {
        match self {
            ServiceError::UnknownDevice(_) | ServiceError::NotRegistered(_) => {
                ServiceErrorKind::NotFound
            }
            ServiceError::NotAllowed { .. } => ServiceErrorKind::Conflict,
            ServiceError::Invalid(_) => ServiceErrorKind::BadRequest,
            ServiceError::Busy(_) => ServiceErrorKind::TooManyRequests,
            ServiceError::Timeout(_) => ServiceErrorKind::GatewayTimeout,
            ServiceError::DeviceError { .. } | ServiceError::BadResponse(_) => {
                ServiceErrorKind::BadGateway
            }
            ServiceError::RegistrationEnded(_) => ServiceErrorKind::Gone,
            ServiceError::Store(_) => ServiceErrorKind::Internal,
            ServiceError::Unavailable => ServiceErrorKind::Unavailable,
        }
    }

    /// The device's CoAP response code (`4.04`), when it answered with an error.
    pub fn coap_code(&self) -> Option<&str> {
        match self {
            ServiceError::DeviceError { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A stable snake_case name for the error, for JSON bodies and stored results.
    pub fn code_name(&self) -> &'static str {
        match self {
            ServiceError::UnknownDevice(_) => "unknown_device",
            ServiceError::NotRegistered(_) => "not_registered",
            ServiceError::NotAllowed { .. } => "not_allowed",
            ServiceError::Invalid(_) => "invalid_request",
            ServiceError::Busy(_) => "busy",
            ServiceError::Timeout(OpError::Expired) => "expired",
            ServiceError::Timeout(_) => "timeout",
            ServiceError::DeviceError { .. } => "device_error",
            ServiceError::BadResponse(_) => "bad_response",
            ServiceError::RegistrationEnded(_) => "registration_ended",
            ServiceError::Store(_) => "storage",
            ServiceError::Unavailable => "unavailable",
        }
    }

    /// The serde form of this error.
    pub fn to_view(&self) -> ErrorView {
        ErrorView {
            kind: self.code_name().to_owned(),
            message: self.to_string(),
            coap_code: self.coap_code().map(str::to_owned),
        }
    }
}

impl From<OpError> for ServiceError {
    fn from(error: OpError) -> ServiceError {
        match error {
            // The directory said registered but the engine no longer has it: it just ended.
            OpError::UnknownEndpoint => ServiceError::RegistrationEnded(OpError::UnknownEndpoint),
            OpError::NotSupported { .. }
            | OpError::Invalid { .. }
            | OpError::Encode(_)
            | OpError::UnknownObservation => ServiceError::Invalid(error),
            OpError::QueueFull | OpError::TooManyObservations => ServiceError::Busy(error),
            OpError::Timeout | OpError::Expired => ServiceError::Timeout(error),
            OpError::Coap { code, diagnostic } => ServiceError::DeviceError {
                code: code.to_string(),
                diagnostic,
            },
            OpError::UnsupportedContentFormat(_)
            | OpError::DecodeFailed(_)
            | OpError::InvalidLinks(_)
            | OpError::Reset
            | OpError::Transport(_) => ServiceError::BadResponse(error),
            OpError::Deregistered
            | OpError::RegistrationExpired
            | OpError::Replaced
            | OpError::Removed => ServiceError::RegistrationEnded(error),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lwm2m_proto::coap::Code;

    #[test]
    fn engine_errors_map_to_http_minded_kinds() {
        let cases = [
            (
                OpError::Timeout,
                ServiceErrorKind::GatewayTimeout,
                "timeout",
            ),
            (
                OpError::Expired,
                ServiceErrorKind::GatewayTimeout,
                "expired",
            ),
            (
                OpError::QueueFull,
                ServiceErrorKind::TooManyRequests,
                "busy",
            ),
            (
                OpError::Deregistered,
                ServiceErrorKind::Gone,
                "registration_ended",
            ),
            (
                OpError::UnknownObservation,
                ServiceErrorKind::BadRequest,
                "invalid_request",
            ),
            (OpError::Reset, ServiceErrorKind::BadGateway, "bad_response"),
        ];
        for (op, kind, name) in cases {
            let error = ServiceError::from(op);
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.code_name(), name);
        }
        let error = ServiceError::from(OpError::Coap {
            code: Code::new(4, 4),
            diagnostic: Some("no such instance".into()),
        });
        assert_eq!(error.kind(), ServiceErrorKind::BadGateway);
        assert_eq!(error.coap_code(), Some("4.04"));
        assert_eq!(
            error.to_string(),
            "the device answered 4.04: no such instance"
        );
        let view = error.to_view();
        assert_eq!(view.coap_code.as_deref(), Some("4.04"));
    }

    #[test]
    fn suspension_is_explained() {
        let error = ServiceError::NotAllowed {
            endpoint: "m".into(),
            operation: "Write",
            state: LifecycleState::Suspended,
        };
        assert_eq!(error.kind(), ServiceErrorKind::Conflict);
        assert!(
            error.to_string().contains("suspended: reads only"),
            "{error}"
        );
    }
}
