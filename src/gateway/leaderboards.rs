//! Leaderboard definitions (`PUT|GET|DELETE /v1/leaderboards/{id}`, `GET /v1/leaderboards`)
//! and queries (`…/{id}/standings`, `…/{id}/users/{user_id}`), all tenant-HMAC signed.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use phoenix_actors::leaderboard::actor::{QueryError, WindowSel};
use phoenix_actors::leaderboard::window::{Timeframe, WindowKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, utf8_body};
use crate::error::ApiError;
use crate::server::AppState;

/// Most entries one standings page returns.
pub const MAX_LIMIT: usize = 1000;

/// Largest `offset`: ranks are stored as `u32`, so no board has an entry past it, and
/// `offset + limit` cannot wrap anywhere below.
pub const MAX_OFFSET: usize = u32::MAX as usize - MAX_LIMIT;

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => ApiError::Validation(m),
            QueryError::Engine(e) => e.into(),
            other => ApiError::NotFound(other.to_string()),
        }
    }
}

/// Authenticate a tenant request whose signed path is the request path (no query).
fn tenant_of(
    app: &AppState,
    headers: &HeaderMap,
    method: &str,
    uri: &Uri,
    body: &[u8],
) -> Result<String, ApiError> {
    app.tenants.authenticate(headers, method, uri.path(), body)
}

#[utoipa::path(put, path = "/v1/leaderboards/{id}", operation_id = "put_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), request_body = crate::openapi::schemas::LeaderboardDefinition, responses((status = 201, description = "Created; rebuilt from the retained log", body = crate::openapi::schemas::LeaderboardDefinition), (status = 200, description = "Replaced (or unchanged)", body = crate::openapi::schemas::LeaderboardDefinition), crate::openapi::TenantErrors))]
pub async fn put(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = utf8_body(body)?;
    let tenant = tenant_of(&app, &headers, "PUT", &uri, &body)?;
    let engine = app.require_engine()?;
    let json = parse_json(&body)?;
    let before = engine.get_leaderboard(&tenant, &id)?;
    let (mut def, created) = engine.put_leaderboard(&tenant, &id, &json).await?;
    if before.as_ref() != Some(&def) {
        // A new or changed board is built from the retained log: say from where.
        def["rebuilt_from"] = engine.first_seq(&tenant)?.into();
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(def)))
}

#[utoipa::path(get, path = "/v1/leaderboards/{id}", operation_id = "get_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), responses((status = 200, description = "The definition", body = crate::openapi::schemas::LeaderboardDefinition), crate::openapi::NotFound, crate::openapi::TenantErrors))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_of(&app, &headers, "GET", &uri, b"")?;
    let engine = app.read_engine()?;
    engine
        .get_leaderboard(&tenant, &id)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("leaderboard {id} not found")))
}

#[utoipa::path(get, path = "/v1/leaderboards", operation_id = "list_leaderboards", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), responses((status = 200, description = "The tenant's boards", body = crate::openapi::schemas::LeaderboardList), crate::openapi::TenantErrors))]
pub async fn list(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_of(&app, &headers, "GET", &uri, b"")?;
    let engine = app.read_engine()?;
    Ok(Json(
        json!({"leaderboards": engine.list_leaderboards(&tenant)?}),
    ))
}

#[utoipa::path(delete, path = "/v1/leaderboards/{id}", operation_id = "delete_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), responses((status = 204, description = "Deleted"), crate::openapi::NotFound, crate::openapi::TenantErrors))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_of(&app, &headers, "DELETE", &uri, b"")?;
    let engine = app.require_engine()?;
    if engine.delete_leaderboard(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("leaderboard {id} not found")))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    timeframe: Option<String>,
    window: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    around: Option<usize>,
}

fn parse_query(raw: Option<String>) -> Result<ViewQuery, ApiError> {
    let raw = raw.unwrap_or_default();
    Query::<ViewQuery>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| ApiError::Validation("bad query string".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::Validation(format!("query: {}", e.body_text())))
}

/// Read-only queries take tenant HMAC, or a client token (`Authorization: Bearer pxt1…`)
/// scoped to its tenant and, if it names any, its leaderboards.
fn reader_of(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    board: &str,
) -> Result<String, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(token) => {
            let claims =
                crate::tokens::verify(&app.tenants, token, chrono::Utc::now().timestamp())?;
            if claims
                .lb
                .as_ref()
                .is_some_and(|lb| !lb.iter().any(|b| b == board))
            {
                return Err(ApiError::Forbidden(
                    "this token may not read that leaderboard".into(),
                ));
            }
            Ok(claims.t)
        }
        None => tenant_of(app, headers, "GET", uri, b""),
    }
}

fn view(q: &ViewQuery) -> Result<(Timeframe, WindowSel), ApiError> {
    let tf: Timeframe = q
        .timeframe
        .as_deref()
        .unwrap_or("all_time")
        .parse()
        .map_err(|e: String| ApiError::Validation(format!("timeframe: {e}")))?;
    let window = match q.window.as_deref() {
        None | Some("current") => WindowSel::Current,
        Some(k) => WindowSel::Key(
            WindowKey::parse(tf, k).map_err(|e| ApiError::Validation(format!("window: {e}")))?,
        ),
    };
    Ok((tf, window))
}

#[utoipa::path(get, path = "/v1/leaderboards/{id}/standings", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ViewQuery), responses((status = 200, description = "A page of standings", body = crate::openapi::schemas::Standings), crate::openapi::NotFound, crate::openapi::TenantErrors))]
pub async fn standings(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = reader_of(&app, &headers, &uri, &id)?;
    let q = parse_query(raw)?;
    let (tf, window) = view(&q)?;
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::Validation(format!(
            "limit: must be 1 to {MAX_LIMIT}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::Validation(format!(
            "offset: must be 0 to {MAX_OFFSET}"
        )));
    }
    let engine = app.read_engine()?;
    let s = engine
        .standings(&tenant, &id, tf, window, offset, limit)
        .await?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(), "window": s.window.to_string(),
        "total": s.total, "entries": s.entries,
    })))
}

#[utoipa::path(get, path = "/v1/leaderboards/{id}/users/{user_id}", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("user_id" = String, Path, description = "Player"), ViewQuery), responses((status = 200, description = "The player's rank and neighbours", body = crate::openapi::schemas::UserStanding), crate::openapi::NotFound, crate::openapi::TenantErrors))]
pub async fn user(
    State(app): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = reader_of(&app, &headers, &uri, &id)?;
    let q = parse_query(raw)?;
    let (tf, window) = view(&q)?;
    let around = q.around.unwrap_or(5);
    if around > 100 {
        return Err(ApiError::Validation("around: must be 0 to 100".into()));
    }
    let engine = app.read_engine()?;
    let u = engine
        .user_standing(&tenant, &id, tf, window, &user, around)
        .await?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(), "window": u.window.to_string(),
        "user_id": user, "rank": u.rank, "score": u.score, "entries": u.entries,
    })))
}
