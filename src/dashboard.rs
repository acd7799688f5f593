//! The live-ops dashboard: one embedded HTML page at `GET /` (no external assets — the
//! machines have no internet), plus the operator calls it needs beyond the admin API: a
//! tenant's leaderboards, saving one (the board editor), a player's wallet, and a read-only
//! client token for the live WebSocket view and the read-only queries.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::admin::tenant_named;
use crate::error::ApiError;
use crate::extract::{Readable, Writable};
use crate::state::AppState;
use crate::tokens::{mint, Claims};

const PAGE: &str = include_str!("dashboard/index.html");

/// The operator calls of the dashboard; `server::operator_routes` puts them behind the
/// operator check (the page itself, `GET /`, is public: it asks for the token).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{id}/leaderboards", get(boards))
        .route(
            "/v1/admin/tenants/{id}/leaderboards/{board}",
            axum::routing::put(put_board),
        )
        .route("/v1/admin/tenants/{id}/players/{user}/wallet", get(wallet))
        .route("/v1/admin/tenants/{id}/token", post(token))
}

#[utoipa::path(get, path = "/", operation_id = "dashboard_page", tag = "admin", responses((status = 200, description = "The live-ops dashboard (HTML; it asks for the operator token)", content_type = "text/html", body = String)))]
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(PAGE),
    )
}

#[utoipa::path(get, path = "/v1/admin/tenants/{id}/leaderboards", operation_id = "tenant_leaderboards", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's boards", body = crate::openapi::schemas::LeaderboardList), crate::openapi::schemas::OperatorErrors))]
async fn boards(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    tenant_named(&app, &id)?;
    Ok(Json(
        json!({"leaderboards": engine.list_leaderboards(&id)?}),
    ))
}

/// A one-hour read-only client token for the dashboard's live view of a tenant.
#[utoipa::path(post, path = "/v1/admin/tenants/{id}/token", operation_id = "dashboard_token", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "A one-hour read-only client token", body = crate::openapi::schemas::DashboardToken), crate::openapi::schemas::OperatorErrors))]
async fn token(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = tenant_named(&app, &id)?;
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

/// The board editor's save: `PUT /v1/admin/tenants/{id}/leaderboards/{board}` with the
/// definition, exactly as the tenant's own `PUT /v1/leaderboards/{id}` (same validation, same
/// 400 messages naming the field).
#[utoipa::path(put, path = "/v1/admin/tenants/{id}/leaderboards/{board}", operation_id = "admin_put_leaderboard", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id"), ("board" = String, Path)), request_body = crate::openapi::schemas::LeaderboardDefinition, responses((status = 201, description = "Created", body = crate::openapi::schemas::LeaderboardDefinition), (status = 200, description = "Replaced", body = crate::openapi::schemas::LeaderboardDefinition), crate::openapi::schemas::OperatorErrors))]
async fn put_board(
    State(app): State<AppState>,
    Path((id, board)): Path<(String, String)>,
    Writable(engine): Writable,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    tenant_named(&app, &id)?;
    let body = crate::gateway::utf8_body(body)?;
    let json = crate::gateway::parse_json(&body)?;
    let (def, created) = engine.put_leaderboard(&id, &board, &json).await?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, Json(def)))
}

/// A player's wallet for the player view (operator token).
#[utoipa::path(get, path = "/v1/admin/tenants/{id}/players/{user}/wallet", operation_id = "admin_wallet", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id"), ("user" = String, Path)), responses((status = 200, description = "The player's wallet and ledger", body = crate::openapi::schemas::Wallet), crate::openapi::schemas::NotFound, crate::openapi::schemas::OperatorErrors))]
async fn wallet(
    State(app): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    Writable(engine): Writable,
) -> Result<Json<Value>, ApiError> {
    tenant_named(&app, &id)?;
    let store = engine
        .rewards(&id)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let w = store
        .wallet(&user)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound("No such player".into()))?;
    Ok(Json(json!({
        "user_id": w.user_id, "nicknames": w.nicknames, "balance": w.balance,
        "grants": w.grants.iter().map(|g| json!({
            "id": g.vote_id, "coins": g.reward.coins, "items": g.reward.items,
            "source": g.source.as_deref().unwrap_or("gamemonitoring"),
            "granted_at": chrono::DateTime::from_timestamp_millis(g.granted_at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        })).collect::<Vec<_>>(),
    })))
}
