//! The one error type of the HTTP API: every failure becomes a status code and an
//! [`api_types::ErrorBody`] (or, for an illegal lifecycle transition,
//! [`api_types::IllegalTransitionBody`]) that says what is wrong. Storage failures are logged
//! here and shown to the caller only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::accounts::{AccountError, Role};
use crate::fleet::lifecycle::IllegalTransition;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "authentication required: send `Authorization: Bearer <token>` or log in (POST /api/v1/auth/login)"
    )]
    Unauthorized,
    #[error("wrong user name or password")]
    LoginFailed,
    #[error("this needs the role {required} or higher; you have {actual}")]
    Forbidden { required: Role, actual: Role },
    #[error("{0}")]
    Refused(String),
    #[error(
        "a request authenticated by the session cookie that changes state must send the session's CSRF token in X-CSRF-Token"
    )]
    CsrfRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    IllegalTransition(IllegalTransition),
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::LoginFailed => (StatusCode::UNAUTHORIZED, "login_failed"),
            ApiError::Forbidden { .. } | ApiError::Refused(_) => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            ApiError::CsrfRequired => (StatusCode::FORBIDDEN, "csrf_token_required"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::IllegalTransition(_) => (StatusCode::CONFLICT, "illegal_transition"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Logs a failure the caller cannot fix and hides its details (they may name tables,
    /// hosts or paths).
    pub(crate) fn internal(error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::Internal
    }
}

fn api_state(state: crate::fleet::LifecycleState) -> api_types::LifecycleState {
    super::convert::lifecycle_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = match &self {
            ApiError::IllegalTransition(illegal) => (
                status,
                Json(api_types::IllegalTransitionBody {
                    error: code.to_owned(),
                    message: self.to_string(),
                    from: api_state(illegal.from),
                    to: api_state(illegal.to),
                    why: illegal.why.to_owned(),
                }),
            )
                .into_response(),
            _ => (
                status,
                Json(api_types::ErrorBody {
                    error: code.to_owned(),
                    message: self.to_string(),
                }),
            )
                .into_response(),
        };
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(endpoint) => {
                ApiError::NotFound(format!("no device with endpoint {endpoint:?}"))
            }
            StoreError::DuplicateEndpoint(_) | StoreError::DuplicateIdentity(_) => {
                ApiError::Conflict {
                    code: "duplicate",
                    message: error.to_string(),
                }
            }
            StoreError::CredentialsRevoked(_) | StoreError::NotPskDevice(_) => ApiError::Conflict {
                code: "conflict",
                message: error.to_string(),
            },
            StoreError::Conflict(_) => ApiError::Conflict {
                code: "concurrent_change",
                message: error.to_string(),
            },
            StoreError::IllegalTransition(illegal) => ApiError::IllegalTransition(illegal),
            StoreError::Invalid(_) | StoreError::ReasonRequired { .. } | StoreError::Import(_) => {
                ApiError::BadRequest(error.to_string())
            }
            StoreError::UnsupportedUrl(_)
            | StoreError::CreateDirectory { .. }
            | StoreError::Connect(_)
            | StoreError::Migrate(_)
            | StoreError::Database(_)
            | StoreError::Secret(_)
            | StoreError::Corrupt(_)
            | StoreError::Csv(_) => ApiError::internal(&error),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> ApiError {
        match error {
            AccountError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            AccountError::DuplicateUser(_) | AccountError::DuplicateToken(_) => {
                ApiError::Conflict {
                    code: "duplicate",
                    message: error.to_string(),
                }
            }
            AccountError::UserNotFound(_) | AccountError::TokenNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            AccountError::LastAdmin(_) => ApiError::Conflict {
                code: "last_admin",
                message: error.to_string(),
            },
            AccountError::Hash(_)
            | AccountError::Random(_)
            | AccountError::Database(_)
            | AccountError::Corrupt(_) => ApiError::internal(&error),
        }
    }
}

/// Answers routes that do not exist with the same JSON error shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such route: {}", uri.path()))
}
