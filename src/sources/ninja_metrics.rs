//! The Ninja Metrics HTTPS & JSON event interface (seed 003, SPEC §6): `POST /event`, mapped
//! to a tenant by `client_id` + `app_id`; every accepted event also enters the tenant's
//! stream as a Phoenix event (`nm.<type name>`), so leaderboards can rank it.

pub mod config;
pub mod dims;
pub mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use phoenix_actors::{Engine, Event, Outcome};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::constant_time_eq;
use crate::error::ApiError;
use crate::extract::{Readable, SignedTenant};
use crate::gateway::{parse_json, utf8_body};
use crate::state::AppState;
use crate::types::TenantStatus;
pub use config::NmConfig;
use dims::{Dims, RefError};
use phoenix_actors::stores::StoreError;

/// Most payloads in one POST (a JSON array).
pub const MAX_BATCH: usize = 100;
/// `actor.user_id` of loader events that name no account (#13 shard, #14 currency).
pub const SYSTEM_USER: &str = "ninja-metrics";

/// Routes of this protocol.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/event", post(ingest))
        .route("/v1/ninja/clients", get(clients))
        .route("/v1/ninja/currencies/{label}", get(currency))
        .route("/v1/ninja/{kind}/{id}", get(dimension))
        .layer(Extension(NinjaState::default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    client_id: Option<String>,
    app_id: Option<String>,
    api_client: Option<String>,
    app_pwd: Option<String>,
}

/// A tenant's dimensions and the lock that serialises its
/// check-references → update-dimensions → log sequence.
type TenantNm = (Dims, Arc<tokio::sync::Mutex<()>>);

/// Per-tenant Ninja Metrics locks, created on first use (this source's own state: an
/// `Extension` of its routes; the dimensions themselves are the engine's, so a reopened
/// store is picked up).
#[derive(Clone, Default)]
pub struct NinjaState(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

fn tenant_state(nm: &NinjaState, engine: &Engine, tenant: &str) -> Result<TenantNm, ApiError> {
    let dims = Dims::new(
        engine
            .dimensions(tenant)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    let mut map = nm.0.lock().expect("ninja state");
    let lock = map.entry(tenant.to_owned()).or_default().clone();
    Ok((dims, lock))
}

/// Map `client_id` + `app_id` (and `app_pwd` when configured) to a tenant.
fn tenant_for(app: &AppState, q: &EventQuery) -> Result<String, ApiError> {
    let (Some(client_id), Some(app_id)) = (&q.client_id, &q.app_id) else {
        return Err(ApiError::Unauthorized(
            "client_id and app_id query parameters are required".into(),
        ));
    };
    let bad = || ApiError::Unauthorized("Unknown client_id/app_id or wrong app_pwd".into());
    let t = app
        .config
        .tenants
        .iter()
        .find(|t| {
            t.ninja_metrics
                .as_ref()
                .is_some_and(|n| &n.client_id == client_id && &n.app_id == app_id)
        })
        .ok_or_else(bad)?;
    if let Some(pwd) = t.ninja_metrics.as_ref().and_then(|n| n.app_pwd.as_ref()) {
        let given = q.app_pwd.as_deref().unwrap_or("");
        if !constant_time_eq(given.as_bytes(), pwd.expose().as_bytes()) {
            return Err(bad());
        }
    }
    let status = app
        .tenants
        .get(&t.id)
        .map(|x| x.status)
        .unwrap_or(TenantStatus::Suspended);
    if status == TenantStatus::Suspended {
        return Err(ApiError::Forbidden(crate::tenants::SUSPENDED.into()));
    }
    Ok(t.id.clone())
}

/// `POST /event?client_id=&app_id=&api_client=[&app_pwd=]`: one payload (`{"timestamp",
/// "data"}`) or a JSON array of up to 100.
#[utoipa::path(post, path = "/event", operation_id = "ninja_ingest", tag = "ninja-metrics", params(EventQuery), request_body(content = Object, description = "One payload `{\"timestamp\", \"data\"}` or an array of up to 100 (seed 003)"), responses((status = 202, description = "Stored durably", body = crate::openapi::schemas::NinjaAck), (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = crate::openapi::schemas::ErrorEnvelope), crate::openapi::schemas::TenantErrors))]
pub async fn ingest(
    State(app): State<AppState>,
    Extension(nm): Extension<NinjaState>,
    headers: HeaderMap,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = utf8_body(body)?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::Validation(e.body_text()))?;
    let tenant = tenant_for(&app, &q)?;
    let engine = app.require_engine()?;
    let (dims, lock) = tenant_state(&nm, &engine, &tenant)?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    dims.record_client(
        q.api_client.as_deref().unwrap_or(""),
        user_agent,
        &Utc::now().to_rfc3339(),
    );
    let parsed = parse_json(&body)?;
    let _guard = lock.lock().await;
    match parsed {
        Value::Array(list) => {
            if list.is_empty() || list.len() > MAX_BATCH {
                return Err(ApiError::Validation(format!(
                    "A batch must hold 1 to {MAX_BATCH} payloads"
                )));
            }
            let mut results = Vec::with_capacity(list.len());
            let (mut accepted, mut duplicates, mut failed) = (0, 0, 0);
            for (index, p) in list.into_iter().enumerate() {
                match process(&engine, &dims, &tenant, p).await {
                    Ok(r) => {
                        if r.status == "accepted" {
                            accepted += 1
                        } else {
                            duplicates += 1
                        }
                        results.push(json!({"index": index, "event_id": r.event_id, "type": r.phoenix_type, "status": r.status}));
                    }
                    Err(Failure::Invalid(msg)) => {
                        failed += 1;
                        results.push(json!({"index": index, "status": "failed", "error": msg}));
                    }
                    Err(Failure::Fault(e)) => return Err(e),
                }
            }
            let status = if failed == 0 {
                "accepted"
            } else if failed == results.len() {
                "failed"
            } else {
                "partial"
            };
            Ok((
                StatusCode::ACCEPTED,
                Json(
                    json!({"status": status, "total": results.len(), "accepted": accepted,
                "duplicates": duplicates, "failed": failed, "results": results}),
                ),
            ))
        }
        p => match process(&engine, &dims, &tenant, p).await {
            Ok(r) => Ok((
                StatusCode::ACCEPTED,
                Json(json!({"event_id": r.event_id, "type": r.phoenix_type, "status": r.status})),
            )),
            Err(Failure::Invalid(msg)) => Err(ApiError::Validation(msg)),
            Err(Failure::Fault(e)) => Err(e),
        },
    }
}

struct Processed {
    event_id: String,
    phoenix_type: String,
    status: &'static str,
}

enum Failure {
    /// The payload is wrong: a 400 (or a failed slot in a batch).
    Invalid(String),
    /// Storage or engine trouble: the whole request fails, nothing is acknowledged.
    Fault(ApiError),
}

/// Validate one payload, check its references, apply its dimension effect, and log it as a
/// Phoenix event. A retried identical payload gets the same event_id and is a duplicate.
async fn process(
    engine: &Engine,
    dims: &Dims,
    tenant: &str,
    payload: Value,
) -> Result<Processed, Failure> {
    let invalid = |m: String| Failure::Invalid(m);
    let Value::Object(obj) = &payload else {
        return Err(invalid(
            "payload must be a JSON object {\"timestamp\", \"data\"}".into(),
        ));
    };
    let timestamp = match obj.get("timestamp") {
        Some(Value::String(s))
            if chrono::DateTime::parse_from_rfc3339(s)
                .is_ok_and(|t| t.offset().local_minus_utc() == 0) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(invalid(
                "timestamp: must be ISO-8601 UTC (YYYY-MM-DDTHH:mm:ss.sssZ)".into(),
            ))
        }
        None => return Err(invalid("timestamp is required".into())),
    };
    let Some(Value::Object(data)) = obj.get("data") else {
        return Err(invalid("data is required and must be an object".into()));
    };
    let number = match data.get("type") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("data.type: must be a whole number".into()))?,
        None => return Err(invalid("data.type is required".into())),
    };
    let t = schema::lookup(number);
    if t.is_none() && !schema::GENERIC.contains(&number) {
        return Err(invalid(format!("data.type: unknown type {number} (1-24 are defined; 25-46 are accepted as generic events)")));
    }
    if let Some(t) = t {
        schema::check(t, data).map_err(|e| invalid(e.to_string()))?;
    }
    // Deterministic id: the same payload always maps to the same event.
    let digest = Sha256::digest(payload.to_string().as_bytes());
    let event_id = format!("nm-{}", &hex::encode(digest)[..32]);
    let phoenix_type = match t {
        Some(t) => format!("nm.{}", t.name),
        None => format!("nm.type_{number}"),
    };
    let fault = |e: StoreError| Failure::Fault(ApiError::Internal(e.to_string()));
    let replay = dims.applied(&event_id).map_err(fault)?;
    if let (Some(t), false) = (t, replay) {
        dims.check_refs(t, data).map_err(|e| match e {
            RefError::Invalid(m) => Failure::Invalid(m),
            RefError::Store(e) => fault(e),
        })?;
    }
    let user = t
        .and_then(|t| t.actor)
        .and_then(|f| data.get(f).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .or_else(|| {
            data.get("account_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(SYSTEM_USER);
    let mut attrs: Map<String, Value> = data.clone();
    attrs.remove("type");
    attrs.insert("nm_type".into(), json!(number));
    let event = json!({
        "event_id": event_id, "type": phoenix_type, "actor": {"user_id": user},
        "subject": {"type": "ninja_metrics", "id": format!("#{number}")},
        "occurred_at": timestamp, "attrs": attrs,
    });
    let event = Event::from_json(event, tenant, Utc::now()).map_err(|e| invalid(e.to_string()))?;
    let changed = !replay && t.is_some();
    if let (Some(t), true) = (t, changed) {
        dims.apply(t, data, &timestamp, &event_id).map_err(fault)?;
    }
    let outcome = engine
        .ingest(tenant, vec![event])
        .await
        .map_err(|e| Failure::Fault(e.into()))?;
    // The ingest fsync'd the log; a loader's dimension change is made durable with the
    // state store too before it is acknowledged (a no-op extra fsync when they share one).
    if changed {
        engine
            .persist()
            .await
            .map_err(|e| Failure::Fault(e.into()))?;
    }
    let status = match outcome[0] {
        Outcome::Accepted { .. } => "accepted",
        Outcome::Duplicate { .. } => "duplicate",
    };
    metrics::counter!("phoenix_ninja_events_total", "tenant" => tenant.to_owned(), "status" => status).increment(1);
    Ok(Processed {
        event_id,
        phoenix_type,
        status,
    })
}

/// `GET /v1/ninja/{accounts|characters|shards|items}/{id}` (tenant HMAC).
#[utoipa::path(get, path = "/v1/ninja/{kind}/{id}", tag = "ninja-metrics", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("kind" = String, Path, description = "`accounts`, `characters`, `shards` or `items`"), ("id" = String, Path, description = "Record id")), responses((status = 200, description = "The dimension record", body = crate::openapi::schemas::NinjaRecord), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn dimension(
    Path((kind, id)): Path<(String, String)>,
    Extension(nm): Extension<NinjaState>,
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    let (dims, _) = tenant_state(&nm, &engine, &tenant)?;
    if !["accounts", "characters", "shards", "items"].contains(&kind.as_str()) {
        return Err(ApiError::NotFound(format!(
            "no dimension {kind:?} (accounts, characters, shards, items, currencies)"
        )));
    }
    dims.get(&kind, &id)
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {id:?} not found")))
}

/// `GET /v1/ninja/currencies/{label}`: current rate and history (tenant HMAC).
#[utoipa::path(get, path = "/v1/ninja/currencies/{label}", tag = "ninja-metrics", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("label" = String, Path, description = "Virtual currency label")), responses((status = 200, description = "Current rate and history", body = crate::openapi::schemas::NinjaRecord), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn currency(
    Path(label): Path<String>,
    Extension(nm): Extension<NinjaState>,
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    let (dims, _) = tenant_state(&nm, &engine, &tenant)?;
    dims.currency(&label)
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("virtual currency {label:?} not found")))
}

/// `GET /v1/ninja/clients`: `api_client` and User-Agent values seen, with counts.
#[utoipa::path(get, path = "/v1/ninja/clients", tag = "ninja-metrics", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), responses((status = 200, description = "`api_client` and User-Agent values seen, with counts", body = crate::openapi::schemas::NinjaClients), crate::openapi::schemas::TenantErrors))]
pub async fn clients(
    Extension(nm): Extension<NinjaState>,
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    let (dims, _) = tenant_state(&nm, &engine, &tenant)?;
    Ok(Json(json!({"clients": dims.clients().map_err(internal)?})))
}

fn internal(e: StoreError) -> ApiError {
    ApiError::Internal(e.to_string())
}
