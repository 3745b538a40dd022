//! Authentication of API requests. For now one static admin bearer token from the configuration
//! (`FERRITE_API_TOKEN`); operator accounts with roles come with the fleet-registry work.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};

/// Lets the request through only with `Authorization: Bearer <configured token>`.
pub async fn require_auth(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (presented, state.config.api_token.as_deref()) {
        (Some(given), Some(expected))
            if constant_time_eq(given.as_bytes(), expected.as_bytes()) =>
        {
            Ok(next.run(request).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// Compares secrets in time independent of where they differ (length still shows, which a
/// random fixed-length token makes harmless). Small enough not to warrant a crate.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn compares_secrets() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[tokio::test]
    async fn api_refuses_missing_or_wrong_tokens() {
        let app = test_app();
        let (status, body) = get(&app, "/api/v1/objects", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");
        let (status, _) = get(&app, "/api/v1/objects", Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get(&app, "/api/v1/objects", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_a_configured_token_nothing_gets_in() {
        let app = super::super::app(AppState {
            config: std::sync::Arc::new(crate::config::Config::default()),
            lwm2m: None,
        });
        let (status, _) = get(&app, "/api/v1/objects", Some("")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
