//! The live-ops dashboard: one embedded HTML page at `GET /` (no external assets — the
//! machines have no internet), plus the two operator calls it needs beyond the admin API:
//! a tenant's leaderboards and a read-only client token for the live WebSocket view.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::server::AppState;
use crate::tokens::{mint, Claims};

const PAGE: &str = include_str!("dashboard/index.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/v1/admin/tenants/{id}/leaderboards", get(boards))
        .route("/v1/admin/tenants/{id}/token", post(token))
}

#[utoipa::path(get, path = "/", operation_id = "dashboard_page", tag = "admin", responses((status = 200, description = "The live-ops dashboard (HTML; it asks for the operator token)", content_type = "text/html", body = String)))]
async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(PAGE),
    )
}

#[utoipa::path(get, path = "/v1/admin/tenants/{id}/leaderboards", operation_id = "tenant_leaderboards", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's boards", body = crate::openapi::schemas::LeaderboardList), crate::openapi::OperatorErrors))]
async fn boards(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.require_operator(&headers)?;
    app.tenants
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id:?} not found")))?;
    Ok(Json(
        json!({"leaderboards": app.read_engine()?.list_leaderboards(&id)?}),
    ))
}

/// A one-hour read-only client token for the dashboard's live view of a tenant.
#[utoipa::path(post, path = "/v1/admin/tenants/{id}/token", operation_id = "dashboard_token", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "A one-hour read-only client token", body = crate::openapi::schemas::DashboardToken), crate::openapi::OperatorErrors))]
async fn token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.require_operator(&headers)?;
    let t = app
        .tenants
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id:?} not found")))?;
    let claims = Claims {
        t: id,
        u: "live-ops-dashboard".into(),
        exp: chrono::Utc::now().timestamp() + 3600,
        lb: None,
    };
    Ok(Json(
        json!({"token": mint(t.secret.expose().as_bytes(), &claims), "expires_at": claims.exp}),
    ))
}
