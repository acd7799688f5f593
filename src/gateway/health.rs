//! `GET /health` (liveness), `GET /ready` (can we persist right now?) and `GET /metrics`
//! (Prometheus, operator token).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::Operator;
use crate::state::AppState;

#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, description = "Alive", body = crate::openapi::schemas::StatusBody)))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/ready", tag = "service", responses((status = 200, description = "Events can be persisted", body = crate::openapi::schemas::StatusBody), (status = 503, description = "`UNAVAILABLE`", body = crate::openapi::schemas::ErrorEnvelope)))]
pub async fn ready(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    match app.engine() {
        Some(engine) => {
            engine.writable()?;
            match engine.starting() {
                0 => Ok(Json(json!({"status": "ready"}))),
                n => Err(ApiError::Unavailable(format!(
                    "Starting: {n} tenant(s) still rebuilding their dedupe window from the log"
                ))),
            }
        }
        None => Err(ApiError::Unavailable(
            "Persistence is unavailable: events cannot be stored".into(),
        )),
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics_endpoint", tag = "service", security(("operator" = [])), responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String), (status = 401, description = "`UNAUTHORIZED`", body = crate::openapi::schemas::ErrorEnvelope)))]
pub async fn metrics(State(app): State<AppState>, _: Operator) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
