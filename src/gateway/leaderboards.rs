//! Leaderboard definitions (`PUT|GET|DELETE /v1/leaderboards/{id}`, `GET /v1/leaderboards`),
//! queries (`…/{id}/standings`, `…/{id}/users/{user_id}`, `POST …/{id}/standings/users`,
//! `…/{id}/windows`), and tournament membership (`POST|DELETE …/{id}/members/{user_id}`,
//! `GET …/{id}/members`). Definitions take tenant HMAC; queries also a client token; a join or
//! leave also the user's own client token.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use phoenix_actors::leaderboard::members::JoinOutcome;
use phoenix_actors::leaderboard::query::WindowSel;
use phoenix_actors::leaderboard::window::{Timeframe, WindowKey};
use phoenix_actors::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_limit, parse_json};
use crate::error::ApiError;
use crate::extract::{Readable, Reader, ReaderBody, SignedBody, SignedTenant, Writable};
use crate::state::AppState;

/// Most entries one standings page returns.
pub const MAX_LIMIT: usize = 1000;

/// Largest `offset`: ranks are stored as `u32`, so no board has an entry past it, and
/// `offset + limit` cannot wrap anywhere below.
pub const MAX_OFFSET: usize = u32::MAX as usize - MAX_LIMIT;

#[utoipa::path(put, path = "/v1/leaderboards/{id}", operation_id = "put_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), request_body = crate::openapi::schemas::LeaderboardDefinition, responses((status = 201, description = "Created; rebuilt from the retained log", body = crate::openapi::schemas::LeaderboardDefinition), (status = 200, description = "Replaced (or unchanged)", body = crate::openapi::schemas::LeaderboardDefinition), crate::openapi::schemas::TenantErrors))]
pub async fn put(
    Path(id): Path<String>,
    Writable(engine): Writable,
    signed: SignedBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = signed.tenant;
    let json = parse_json(&signed.body)?;
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

#[utoipa::path(get, path = "/v1/leaderboards/{id}", operation_id = "get_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), responses((status = 200, description = "The definition", body = crate::openapi::schemas::LeaderboardDefinition), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn get(
    Path(id): Path<String>,
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    engine
        .get_leaderboard(&tenant, &id)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("leaderboard {id} not found")))
}

#[utoipa::path(get, path = "/v1/leaderboards", operation_id = "list_leaderboards", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), responses((status = 200, description = "The tenant's boards", body = crate::openapi::schemas::LeaderboardList), crate::openapi::schemas::TenantErrors))]
pub async fn list(
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"leaderboards": engine.list_leaderboards(&tenant)?}),
    ))
}

#[utoipa::path(delete, path = "/v1/leaderboards/{id}", operation_id = "delete_leaderboard", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id")), responses((status = 204, description = "Deleted"), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn delete(
    Path(id): Path<String>,
    SignedTenant(tenant): SignedTenant,
    Writable(engine): Writable,
) -> Result<StatusCode, ApiError> {
    if engine.delete_leaderboard(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("leaderboard {id} not found")))
    }
}

/// Readable or Writable: the engine a board query runs on.
pub trait EngineOf: FromRequestParts<AppState, Rejection = ApiError> {
    fn engine(self) -> Engine;
}
impl EngineOf for Readable {
    fn engine(self) -> Engine {
        self.0
    }
}
impl EngineOf for Writable {
    fn engine(self) -> Engine {
        self.0
    }
}

/// The extractors every board query takes, in the order the handlers listed them (so the
/// same check answers first): the path `P`, the reader (tenant HMAC or client token), the
/// engine `E`, then the query string parsed as `Q`.
pub struct BoardRead<P, E, Q> {
    path: P,
    tenant: String,
    engine: Engine,
    query: Q,
    via: PhantomData<E>,
}

impl<P, E, Q> BoardRead<P, E, Q> {
    /// Path, tenant, engine and query.
    fn parts(self) -> (P, String, Engine, Q) {
        (self.path, self.tenant, self.engine, self.query)
    }
}

impl<P, E, Q> FromRequestParts<AppState> for BoardRead<P, E, Q>
where
    P: DeserializeOwned + Send,
    E: EngineOf,
    Q: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let Path(path) = Path::<P>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Reader { tenant, .. } = Reader::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let engine = E::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?
            .engine();
        let raw = parts.uri.query().map(str::to_owned);
        let query = query_of::<Q>(raw).map_err(IntoResponse::into_response)?;
        Ok(Self {
            path,
            tenant,
            engine,
            query,
            via: PhantomData,
        })
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

fn view(q: &ViewQuery) -> Result<(Timeframe, WindowSel), ApiError> {
    view_of(q.timeframe.as_deref(), q.window.as_deref())
}

fn view_of(
    timeframe: Option<&str>,
    window: Option<&str>,
) -> Result<(Timeframe, WindowSel), ApiError> {
    let tf: Timeframe = timeframe
        .unwrap_or("all_time")
        .parse::<Timeframe>()
        .map_err(|e| ApiError::Validation(format!("timeframe: {e}")))?;
    let window = match window {
        None | Some("current") => WindowSel::Current,
        Some(k) => WindowSel::Key(
            WindowKey::parse(tf, k).map_err(|e| ApiError::Validation(format!("window: {e}")))?,
        ),
    };
    Ok((tf, window))
}

#[utoipa::path(get, path = "/v1/leaderboards/{id}/standings", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ViewQuery), responses((status = 200, description = "A page of standings", body = crate::openapi::schemas::Standings), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn standings(b: BoardRead<String, Readable, ViewQuery>) -> Result<Json<Value>, ApiError> {
    let (id, tenant, engine, q) = b.parts();
    let (tf, window) = view(&q)?;
    let limit = page_limit(q.limit, 10, MAX_LIMIT)?;
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::Validation(format!(
            "offset: must be 0 to {MAX_OFFSET}"
        )));
    }
    let s = engine
        .standings(&tenant, &id, tf, window, offset, limit)
        .await?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(), "window": s.window.to_string(),
        "total": s.total, "entries": s.entries,
    })))
}

#[utoipa::path(get, path = "/v1/leaderboards/{id}/users/{user_id}", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("user_id" = String, Path, description = "Player"), ViewQuery), responses((status = 200, description = "The player's rank and neighbours", body = crate::openapi::schemas::UserStanding), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn user(
    b: BoardRead<(String, String), Readable, ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    let ((id, user), tenant, engine, q) = b.parts();
    let (tf, window) = view(&q)?;
    let around = q.around.unwrap_or(5);
    if around > 100 {
        return Err(ApiError::Validation("around: must be 0 to 100".into()));
    }
    let u = engine
        .user_standing(&tenant, &id, tf, window, &user, around)
        .await?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(), "window": u.window.to_string(),
        "user_id": user, "rank": u.rank, "score": u.score, "total": u.total,
        "percentile": u.percentile, "entries": u.entries,
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
        .parse::<Timeframe>()
        .map_err(|e| ApiError::Validation(format!("timeframe: {e}")))
}

/// `GET /v1/leaderboards/{id}/windows/{key}/results?timeframe=…` → the final standings
/// (top entries) and the grants of a closed window; 404 while it is not closed.
#[utoipa::path(get, path = "/v1/leaderboards/{id}/windows/{key}/results", operation_id = "window_results", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("key" = String, Path, description = "Window key"), ("timeframe" = String, Query, description = "Timeframe or schedule id")), responses((status = 200, description = "Final standings and grants of a closed window", body = crate::openapi::schemas::WindowClose), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn results(
    b: BoardRead<(String, String), Writable, ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    let ((id, key), tenant, engine, q) = b.parts();
    let tf = timeframe_of(&q)?;
    let key =
        WindowKey::parse(tf, &key).map_err(|e| ApiError::Validation(format!("window: {e}")))?;
    Ok(Json(close_json(
        &engine.window_results(&tenant, &id, tf, key)?,
    )))
}

/// `GET /v1/leaderboards/{id}/results?timeframe=…&limit=20` → `{"closes": […]}`: the
/// closed windows of a timeframe with their winners and grants, newest first.
#[utoipa::path(get, path = "/v1/leaderboards/{id}/results", operation_id = "closed_windows", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("timeframe" = String, Query, description = "Timeframe or schedule id"), ("limit" = Option<u32>, Query, description = "1-100, default 20")), responses((status = 200, description = "Closed windows, newest first, with winners and grants", body = crate::openapi::schemas::WindowCloses), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn closes(b: BoardRead<String, Writable, ViewQuery>) -> Result<Json<Value>, ApiError> {
    let (id, tenant, engine, q) = b.parts();
    let tf = timeframe_of(&q)?;
    let limit = page_limit(q.limit, 20, 100)?;
    let list = engine.window_closes(&tenant, &id, tf, limit)?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(),
        "closes": list.iter().map(close_json).collect::<Vec<_>>(),
    })))
}

/// Most user ids in one `standings/users` request.
pub const MAX_USER_IDS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersBody {
    timeframe: Option<String>,
    window: Option<String>,
    user_ids: Vec<String>,
}

/// `POST /v1/leaderboards/{id}/standings/users`: the listed users' entries in rank order (a
/// friends or clan board); users without a score are left out. Tenant HMAC (signed over the
/// body) or a client token.
#[utoipa::path(post, path = "/v1/leaderboards/{id}/standings/users", operation_id = "users_standings", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id")), request_body = crate::openapi::schemas::UsersStandingsRequest, responses((status = 200, description = "Those users' entries in rank order (friends or clan board)", body = crate::openapi::schemas::Standings), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn users(
    Path(id): Path<String>,
    Writable(engine): Writable,
    ReaderBody { reader, body }: ReaderBody,
) -> Result<Json<Value>, ApiError> {
    let tenant = reader.tenant;
    let req: UsersBody = serde_json::from_value(parse_json(&body)?)
        .map_err(|e| ApiError::Validation(format!("body: {e}")))?;
    if req.user_ids.len() > MAX_USER_IDS {
        return Err(ApiError::Validation(format!(
            "user_ids: at most {MAX_USER_IDS} ids ({} given)",
            req.user_ids.len()
        )));
    }
    if let Some(bad) = req
        .user_ids
        .iter()
        .find(|u| u.is_empty() || u.len() > phoenix_actors::event::MAX_ID_LEN)
    {
        return Err(ApiError::Validation(format!(
            "user_ids: {bad:?} must be 1 to {} bytes",
            phoenix_actors::event::MAX_ID_LEN
        )));
    }
    let (tf, window) = view_of(req.timeframe.as_deref(), req.window.as_deref())?;
    let s = engine
        .users_standings(&tenant, &id, tf, window, req.user_ids)
        .await?;
    Ok(Json(json!({
        "leaderboard": id, "timeframe": tf.as_str(), "window": s.window.to_string(),
        "total": s.total, "entries": s.entries,
    })))
}

/// Most windows one listing returns.
pub const MAX_WINDOWS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsQuery {
    timeframe: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/leaderboards/{id}/windows?timeframe=…&limit=…`: the windows of one timeframe, newest
/// first, with their state (`open`, `grace`, `closed`) and close time.
#[utoipa::path(get, path = "/v1/leaderboards/{id}/windows", operation_id = "list_windows", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("timeframe" = String, Query, description = "Timeframe or schedule id"), ("limit" = Option<u32>, Query, description = "1-100, default 20")), responses((status = 200, description = "Windows newest first with state and close time", body = crate::openapi::schemas::WindowList), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn windows(
    b: BoardRead<String, Writable, WindowsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (id, tenant, engine, q) = b.parts();
    let (tf, _) = view_of(q.timeframe.as_deref(), None)?;
    let limit = page_limit(q.limit, 20, MAX_WINDOWS)?;
    let list = engine.windows(&tenant, &id, tf, limit).await?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let rows: Vec<Value> = list
        .iter()
        .map(|w| {
            json!({
                "window": w.window.to_string(), "state": w.state.as_str(),
                "start": time(w.start), "end": time(w.end), "closes_at": time(w.closes_at),
                "total": w.total,
            })
        })
        .collect();
    Ok(Json(
        json!({"leaderboard": id, "timeframe": tf.as_str(), "windows": rows}),
    ))
}

fn query_of<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<T, ApiError> {
    let raw = raw.unwrap_or_default();
    Query::<T>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| ApiError::Validation("bad query string".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::Validation(format!("query: {}", e.body_text())))
}

fn check_user_id(user: &str) -> Result<(), ApiError> {
    if user.is_empty() || user.len() > phoenix_actors::event::MAX_ID_LEN {
        return Err(ApiError::Validation(format!(
            "user_id: must be 1 to {} bytes",
            phoenix_actors::event::MAX_ID_LEN
        )));
    }
    Ok(())
}

/// `POST /v1/leaderboards/{id}/members/{user_id}` → 201 joined, 200 already a member, 409 full.
#[utoipa::path(post, path = "/v1/leaderboards/{id}/members/{user_id}", operation_id = "join", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("user_id" = String, Path)), responses((status = 201, description = "Joined", body = crate::openapi::schemas::Membership), (status = 200, description = "Already a member", body = crate::openapi::schemas::Membership), (status = 409, description = "max_members reached", body = crate::openapi::schemas::ErrorEnvelope), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn join(
    Path((id, user)): Path<(String, String)>,
    Writable(engine): Writable,
    ReaderBody { reader, .. }: ReaderBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = reader.acting_for(&user)?;
    check_user_id(&user)?;
    let status = match engine.join_member(&tenant, &id, &user).await? {
        JoinOutcome::Joined => StatusCode::CREATED,
        JoinOutcome::AlreadyMember => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({"leaderboard": id, "user_id": user, "member": true})),
    ))
}

/// `DELETE /v1/leaderboards/{id}/members/{user_id}` → 204, or 404 if not a member.
#[utoipa::path(delete, path = "/v1/leaderboards/{id}/members/{user_id}", operation_id = "leave", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("user_id" = String, Path)), responses((status = 204, description = "Left"), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn leave(
    Path((id, user)): Path<(String, String)>,
    Writable(engine): Writable,
    reader: Reader,
) -> Result<StatusCode, ApiError> {
    let tenant = reader.acting_for(&user)?;
    check_user_id(&user)?;
    if engine.leave_member(&tenant, &id, &user).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "user {user} is not a member of leaderboard {id}"
        )))
    }
}

/// Most members one page lists.
pub const MAX_MEMBERS_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/leaderboards/{id}/members?after=…&limit=…`: members in user id order, paged by
/// the last id seen (`next`).
#[utoipa::path(get, path = "/v1/leaderboards/{id}/members", operation_id = "list_members", tag = "leaderboards", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("id" = String, Path, description = "Leaderboard id"), ("after" = Option<String>, Query, description = "Page after this user id"), ("limit" = Option<u32>, Query, description = "1-1000")), responses((status = 200, description = "Members, by user id", body = crate::openapi::schemas::MemberList), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn members(
    b: BoardRead<String, Writable, MembersQuery>,
) -> Result<Json<Value>, ApiError> {
    let (id, tenant, engine, q) = b.parts();
    let limit = page_limit(q.limit, 100, MAX_MEMBERS_PAGE)?;
    let (page, total) = engine.members(&tenant, &id, q.after, limit).await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|(u, _)| u.clone()))
        .flatten();
    let rows: Vec<Value> = page
        .into_iter()
        .map(|(u, seq)| json!({"user_id": u, "joined_at": seq}))
        .collect();
    Ok(Json(
        json!({"leaderboard": id, "total": total, "members": rows, "next": next}),
    ))
}
