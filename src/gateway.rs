//! The HTTP gateways: ingestion, log reads, health. One file per concern below `gateway/`.

pub mod events;
pub mod health;
pub mod leaderboards;
pub mod tokens;
pub mod ws;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::ApiError;

/// The 1 MB body limit of seed 000 §2.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Take a buffered body: over the limit → 413, not UTF-8 → 400 (both before any signature
/// check, as the seed requires).
pub fn utf8_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Validation(format!("Could not read the request body: {r}"))
        }
    })?;
    if std::str::from_utf8(&body).is_err() {
        return Err(ApiError::Validation(
            "Request body is not valid UTF-8".into(),
        ));
    }
    Ok(body)
}

/// Parse JSON with a client-facing message.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Validation(format!("Malformed JSON: {e}")))
}

/// A page size: `given`, else `default`; a 400 `limit: must be 1 to {max}` outside `1..=max`.
pub fn page_limit(given: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = given.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::Validation(format!("limit: must be 1 to {max}")));
    }
    Ok(limit)
}

/// The page size of a log read (`GET /v1/events`, GAMEMONITORING deliveries): `given`, else
/// 100; a 400 `limit must be between 1 and 1000` outside `1..=1000` (seed 000's wording).
pub fn log_limit(given: Option<usize>) -> Result<usize, ApiError> {
    page_limit(given, 100, 1000)
        .map_err(|_| ApiError::Validation("limit must be between 1 and 1000".into()))
}
