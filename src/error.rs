//! `ApiError`: the one place errors become HTTP responses, in the seed's envelope
//! `{"error":{"code":…,"message":…,"status":…}}`. 5xx bodies say nothing internal.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use phoenix_actors::leaderboard::query::QueryError;
use phoenix_actors::EngineError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a full tournament).
    #[error("{0}")]
    Conflict(String),
    #[error("Request body exceeds the 1 MB limit")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
    /// The path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request body made no progress for `http_body_timeout_seconds`.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Any other status a layer below the handlers produced (a 422 from a JSON extractor, …).
    #[error("{1}")]
    Other(StatusCode, String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Other(status, _) => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "VALIDATION_ERROR",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::Internal(_) => "INTERNAL_ERROR",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            ApiError::RequestTimeout(_) => "REQUEST_TIMEOUT",
            ApiError::UriTooLong(_) => "URI_TOO_LONG",
            ApiError::HeadersTooLarge(_) => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ApiError::Other(status, _) => match status.as_u16() {
                409 => "CONFLICT",
                422 => "VALIDATION_ERROR",
                429 => "TOO_MANY_REQUESTS",
                s if s >= 500 => "INTERNAL_ERROR",
                _ => "BAD_REQUEST",
            },
        }
    }

    /// The message a client sees.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "Transient ingestion/storage issue. Wait and retry.".into(),
            ApiError::Other(status, _) if status.is_server_error() => {
                "The server could not answer this request. Wait and retry.".into()
            }
            other => other.to_string(),
        }
    }

    /// The error for a bare `status` with `message` (a rejection produced below the
    /// handlers, rewritten into the envelope). An empty message becomes the reason phrase.
    pub fn from_status(status: StatusCode, message: String) -> ApiError {
        let message = if message.trim().is_empty() {
            status
                .canonical_reason()
                .unwrap_or("Request failed")
                .to_owned()
        } else {
            message.trim().to_owned()
        };
        match status.as_u16() {
            400 => ApiError::Validation(message),
            401 => ApiError::Unauthorized(message),
            403 => ApiError::Forbidden(message),
            404 => ApiError::NotFound(message),
            405 => ApiError::MethodNotAllowed(message),
            408 => ApiError::RequestTimeout(message),
            413 => ApiError::PayloadTooLarge,
            414 => ApiError::UriTooLong(message),
            415 => ApiError::UnsupportedMediaType(message),
            431 => ApiError::HeadersTooLarge(message),
            500 => ApiError::Internal(message),
            503 => ApiError::Unavailable(message),
            _ => ApiError::Other(status, message),
        }
    }

    /// The envelope as a JSON value (also used inside WebSocket frames).
    pub fn envelope(&self) -> serde_json::Value {
        json!({"error": {"code": self.code(), "message": self.public_message(), "status": self.status().as_u16()}})
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable => {
                ApiError::Unavailable("Persistence is unavailable; retry later".into())
            }
            EngineError::ActorUnavailable(_) | EngineError::ChildStart(_) => {
                tracing::warn!(error = %e, "engine call failed");
                ApiError::Unavailable("Ingestion is temporarily unavailable; retry later".into())
            }
            EngineError::DiskLow => ApiError::Unavailable(
                "Writes are refused: disk space low on the server; retry later".into(),
            ),
            EngineError::UnknownTenant(_) => ApiError::Unauthorized("Unknown tenant".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The one `QueryError → (code, status)` table, for HTTP answers and WebSocket error frames.
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => ApiError::Validation(m),
            QueryError::Conflict(m) => ApiError::Conflict(m),
            QueryError::Replaying(m) => ApiError::Unavailable(m),
            QueryError::Engine(e) => e.into(),
            other => ApiError::NotFound(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Other(status, detail) if status.is_server_error() => {
                tracing::error!(%status, %detail, "server error")
            }
            _ => {}
        }
        (self.status(), Json(self.envelope())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_statuses_keep_their_status_and_get_a_code() {
        for (status, code) in [
            (400, "VALIDATION_ERROR"),
            (404, "NOT_FOUND"),
            (405, "METHOD_NOT_ALLOWED"),
            (408, "REQUEST_TIMEOUT"),
            (413, "PAYLOAD_TOO_LARGE"),
            (414, "URI_TOO_LONG"),
            (415, "UNSUPPORTED_MEDIA_TYPE"),
            (422, "VALIDATION_ERROR"),
            (431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
            (502, "INTERNAL_ERROR"),
        ] {
            let e = ApiError::from_status(StatusCode::from_u16(status).unwrap(), String::new());
            let v = e.envelope();
            assert_eq!(v["error"]["status"], status, "{v}");
            assert_eq!(v["error"]["code"], code, "{v}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
        }
    }

    #[test]
    fn a_board_replaying_its_log_is_a_503_that_says_so() {
        let e = ApiError::from(QueryError::Replaying(
            "leaderboard b is replaying its log after a (re)start (applied 3 of 9); retry shortly"
                .into(),
        ));
        let v = e.envelope();
        assert_eq!(v["error"]["status"], 503, "{v}");
        assert_eq!(v["error"]["code"], "UNAVAILABLE", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("replaying its log"),
            "{v}"
        );
    }

    #[test]
    fn server_errors_say_nothing_internal() {
        let e = ApiError::from_status(StatusCode::BAD_GATEWAY, "db at 10.0.0.3 down".into());
        assert!(!e.public_message().contains("10.0.0.3"));
        let e = ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR, "secret".into());
        assert!(!e.public_message().contains("secret"));
    }
}
