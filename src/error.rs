//! `ApiError`: the one place errors become HTTP responses, in the seed's envelope
//! `{"error":{"code":…,"message":…,"status":…}}`. 5xx bodies say nothing internal.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
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
        }
    }

    /// The message a client sees.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "Transient ingestion/storage issue. Wait and retry.".into(),
            other => other.to_string(),
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
            EngineError::ActorUnavailable(_) => {
                tracing::warn!(error = %e, "engine call failed");
                ApiError::Unavailable("Ingestion is temporarily unavailable; retry later".into())
            }
            EngineError::UnknownTenant(_) => ApiError::Unauthorized("Unknown tenant".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        (self.status(), Json(self.envelope())).into_response()
    }
}
