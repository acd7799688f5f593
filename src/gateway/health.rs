//! `GET /health` (liveness) and `GET /ready` (can we persist right now?).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::server::AppState;

#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, description = "Alive", body = crate::openapi::schemas::StatusBody)))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/ready", tag = "service", responses((status = 200, description = "Events can be persisted", body = crate::openapi::schemas::StatusBody), (status = 503, description = "`UNAVAILABLE`", body = crate::openapi::schemas::ErrorEnvelope)))]
pub async fn ready(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    match app.engine() {
        Some(engine) => {
            engine.writable()?;
            Ok(Json(json!({"status": "ready"})))
        }
        None => Err(ApiError::Unavailable(
            "Persistence is unavailable: events cannot be stored".into(),
        )),
    }
}
