//! Extractors whose rejections use the API's error shape (axum's own answer in plain text).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body; a malformed one is a 400 with the parser's explanation, one over the
/// body limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(value)| JsonBody(value))
            .map_err(|rejection: JsonRejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(rejection.body_text())
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// Query parameters; malformed ones are a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection: QueryRejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// A JSON response serialized into one buffer of about `capacity` bytes: for large answers
/// (a fleet read of 1,000 devices is ~250 KB), where `axum::Json`'s buffer, starting at 128
/// bytes and written through a `BytesMut` writer a few bytes at a time, cost a third of the
/// handler's CPU (profiled).
#[derive(Debug, Clone)]
pub struct SizedJson<T> {
    pub value: T,
    pub capacity: usize,
}

impl<T: serde::Serialize> axum::response::IntoResponse for SizedJson<T> {
    fn into_response(self) -> axum::response::Response {
        let mut buf = Vec::with_capacity(self.capacity);
        match serde_json::to_writer(&mut buf, &self.value) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(error) => ApiError::internal(&error).into_response(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sized_json_tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn it_is_the_same_json_as_axum_json() {
        let value = serde_json::json!({"endpoint": "m\"1", "values": [1, 2.5, "x"]});
        let sized = SizedJson {
            value: value.clone(),
            capacity: 4,
        }
        .into_response();
        let plain = axum::Json(value).into_response();
        assert_eq!(sized.status(), plain.status());
        assert_eq!(
            sized.headers().get("content-type"),
            plain.headers().get("content-type")
        );
        let body = |r: axum::response::Response| async move {
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap()
        };
        assert_eq!(body(sized).await, body(plain).await);
    }
}
