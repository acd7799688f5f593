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

#[derive(Debug, Deserialize)]
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

/// A closed window as the API shows it.
fn close_json(r: &phoenix_actors::leaderboard::close::CloseRecord) -> Value {
    let closed_at = chrono::DateTime::from_timestamp_millis(r.closed_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    json!({
        "leaderboard": r.leaderboard, "timeframe": r.timeframe, "window": r.window,
        "state": "closed", "closed_at": closed_at, "total": r.total,
        "results": r.results, "grants": r.grants, "grants_capped": r.grants_capped,
        "rewarded": r.rewarded, "delivery_id": r.delivery_id,
    })
}

fn timeframe_of(q: &ViewQuery) -> Result<Timeframe, ApiError> {
    q.timeframe
        .as_deref()
        .ok_or_else(|| ApiError::Validation("timeframe: required".into()))?
        .parse()
        .map_err(|e: String| ApiError::Validation(format!("timeframe: {e}")))
}

/// `GET /v1/leaderboards/{id}/windows/{key}/results?timeframe=…` → the final standings
/// (top entries) and the grants of a closed window; 404 while it is not closed.
pub async fn results(
    State(app): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = reader_of(&app, &headers, &uri, &id)?;
    let tf = timeframe_of(&parse_query(raw)?)?;
    let key =
        WindowKey::parse(tf, &key).map_err(|e| ApiError::Validation(format!("window: {e}")))?;
    let engine = app.require_engine()?;
    Ok(Json(close_json(
        &engine.window_results(&tenant, &id, tf, key)?,
    )))
}

/// `GET /v1/leaderboards/{id}/results?timeframe=…&limit=20` → `{"closes": […]}`: the
/// closed windows of a timeframe with their winners and grants, newest first.
pub async fn closes(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = reader_of(&app, &headers, &uri, &id)?;
    let q = parse_query(raw)?;
    let tf = timeframe_of(&q)?;
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 100 {
        return Err(ApiError::Validation("limit: must be 1 to 100".into()));
    }
    let engine = app.require_engine()?;
    let list = engine.window_closes(&tenant, &id, tf, limit)?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(),
        "closes": list.iter().map(close_json).collect::<Vec<_>>(),
    })))
}
