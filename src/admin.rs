//! Operator API (`/v1/admin/*`, operator token): list, create, suspend/resume tenants, and
//! rotate a tenant's secret with an overlap period during which both secrets verify.
//! Changes are persisted in the engine's tenant registry and re-applied over the config at
//! start-up.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use phoenix_actors::stores::{StoreError, TenantRecord, TenantState, WebhookRecord};
use phoenix_actors::{Engine, EngineError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::valid_tenant_id;
use crate::error::ApiError;
use crate::extract::Writable;
use crate::gateway::utf8_body;
use crate::state::AppState;
use crate::tenants::{Tenant, Tenants};
use crate::types::{Secret, TenantStatus};

/// Longest secret-rotation overlap: 7 days.
pub const MAX_OVERLAP: i64 = 7 * 86_400;

/// The tenant routes; `server::operator_routes` puts them behind the operator check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", get(list).post(create))
        .route("/v1/admin/tenants/{id}/suspend", post(suspend))
        .route("/v1/admin/tenants/{id}/resume", post(resume))
        .route("/v1/admin/tenants/{id}/rotate", post(rotate))
        .route("/v1/admin/tenants/{id}/webhook", put(set_webhook))
}

/// Why persisted admin changes could not be re-applied at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("tenant registry unreadable")]
    Store(#[from] StoreError),
    #[error("tenant {0}: actor did not start")]
    Engine(String, #[source] EngineError),
}

fn status_of(s: TenantState) -> TenantStatus {
    match s {
        TenantState::Active => TenantStatus::Active,
        TenantState::Suspended => TenantStatus::Suspended,
    }
}

/// Re-apply persisted admin changes over the configured tenants and start actors for tenants
/// created at run time. Called once the store is open.
pub async fn restore(engine: &Engine, tenants: &Tenants) -> Result<(), RestoreError> {
    for (id, s) in engine.tenants()?.list()? {
        let configured = tenants.get(&id).and_then(|t| t.webhook_url);
        tenants.upsert(
            &id,
            Tenant {
                secret: Secret::new(s.secret),
                status: status_of(s.status),
                previous: s.previous.map(|(p, until)| (Secret::new(p), until)),
                webhook_url: match s.webhook {
                    Some(w) => w.url,
                    None => configured,
                },
            },
        );
        engine
            .add_tenant(&id)
            .await
            .map_err(|e| RestoreError::Engine(id.clone(), e))?;
    }
    Ok(())
}

async fn save(engine: &Engine, id: &str, t: &Tenant) -> Result<(), ApiError> {
    let record = TenantRecord {
        secret: t.secret.expose().to_owned(),
        status: match t.status {
            TenantStatus::Active => TenantState::Active,
            TenantStatus::Suspended => TenantState::Suspended,
        },
        previous: t
            .previous
            .as_ref()
            .map(|(p, u)| (p.expose().to_owned(), *u)),
        webhook: Some(WebhookRecord {
            url: t.webhook_url.clone(),
        }),
    };
    engine
        .tenants()
        .and_then(|r| r.put(id, &record))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // Acknowledge only once durable.
    engine.persist().await.map_err(ApiError::from)
}

/// Tenant `id`, or 404.
pub fn tenant_named(app: &AppState, id: &str) -> Result<Tenant, ApiError> {
    app.tenants
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id:?} not found")))
}

fn view(id: &str, t: &Tenant) -> Value {
    let overlap = t
        .previous
        .as_ref()
        .and_then(|(_, until)| chrono::DateTime::from_timestamp(*until, 0))
        .filter(|u| *u > chrono::Utc::now())
        .map(|u| u.to_rfc3339());
    json!({"id": id, "status": t.status, "previous_secret_valid_until": overlap,
           "webhook_url": t.webhook_url})
}

/// The secret the operator gave (at least 16 bytes), or a fresh random one.
fn secret_or_random(given: Option<String>) -> Result<String, ApiError> {
    match given {
        Some(s) if s.len() >= 16 => Ok(s),
        Some(_) => Err(ApiError::Validation(
            "secret: must be at least 16 bytes".into(),
        )),
        None => random_secret(),
    }
}

/// 24 random bytes from the OS, hex.
fn random_secret() -> Result<String, ApiError> {
    use std::io::Read;
    let mut buf = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

#[utoipa::path(get, path = "/v1/admin/tenants", operation_id = "list_tenants", tag = "admin", security(("operator" = [])), responses((status = 200, description = "Every tenant", body = crate::openapi::schemas::TenantList), crate::openapi::schemas::OperatorErrors))]
async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = app
        .tenants
        .list()
        .iter()
        .map(|(id, t)| view(id, t))
        .collect();
    Ok(Json(json!({"tenants": list})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
    #[serde(default)]
    secret: Option<String>,
}

#[utoipa::path(post, path = "/v1/admin/tenants", operation_id = "create_tenant", tag = "admin", security(("operator" = [])), request_body = CreateTenant, responses((status = 201, description = "Created; the answer carries the secret once", body = crate::openapi::schemas::TenantView), (status = 409, description = "`CONFLICT`: the id exists", body = crate::openapi::schemas::ErrorEnvelope), crate::openapi::schemas::OperatorErrors))]
async fn create(
    State(app): State<AppState>,
    Writable(engine): Writable,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = utf8_body(body)?;
    let req: CreateTenant =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("tenant: {e}")))?;
    if !valid_tenant_id(&req.id) {
        return Err(ApiError::Validation(
            "id: must be 1-64 characters of A-Z a-z 0-9 - _ .".into(),
        ));
    }
    if app.tenants.get(&req.id).is_some() {
        return Err(ApiError::Validation(format!(
            "id: tenant {:?} already exists",
            req.id
        )));
    }
    let secret = secret_or_random(req.secret)?;
    let t = Tenant {
        secret: Secret::new(secret.clone()),
        status: TenantStatus::Active,
        previous: None,
        webhook_url: None,
    };
    save(&engine, &req.id, &t).await?;
    engine.add_tenant(&req.id).await?;
    app.tenants.upsert(&req.id, t.clone());
    let mut v = view(&req.id, &t);
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

/// The extractors of a tenant status change, in the order the handlers used to list them
/// (state, the `{id}` path, then a writable engine), each rejection answered as before.
struct TenantWrite {
    app: AppState,
    id: String,
    engine: Engine,
}

impl FromRequestParts<AppState> for TenantWrite {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Writable(engine) = Writable::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            app: app.clone(),
            id,
            engine,
        })
    }
}

impl TenantWrite {
    /// Changes the named tenant (404 when unknown), saves it durably, then serves it; returns
    /// its view.
    async fn update(self, change: impl FnOnce(&mut Tenant)) -> Result<Value, ApiError> {
        let Self { app, id, engine } = self;
        let mut t = tenant_named(&app, &id)?;
        change(&mut t);
        save(&engine, &id, &t).await?;
        app.tenants.upsert(&id, t.clone());
        Ok(view(&id, &t))
    }

    async fn set_status(self, status: TenantStatus) -> Result<Json<Value>, ApiError> {
        self.update(|t| t.status = status).await.map(Json)
    }
}

#[utoipa::path(post, path = "/v1/admin/tenants/{id}/suspend", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "Suspended: its writes get 403", body = crate::openapi::schemas::TenantView), crate::openapi::schemas::OperatorErrors))]
async fn suspend(t: TenantWrite) -> Result<Json<Value>, ApiError> {
    t.set_status(TenantStatus::Suspended).await
}

#[utoipa::path(post, path = "/v1/admin/tenants/{id}/resume", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), responses((status = 200, description = "Active again", body = crate::openapi::schemas::TenantView), crate::openapi::schemas::OperatorErrors))]
async fn resume(t: TenantWrite) -> Result<Json<Value>, ApiError> {
    t.set_status(TenantStatus::Active).await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    secret: Option<String>,
    /// How long the old secret keeps working (default 3600 s).
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

#[utoipa::path(post, path = "/v1/admin/tenants/{id}/rotate", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), request_body(content = Option<Rotate>, description = "Optional; an empty body rotates to a random secret with a 3600 s overlap"), responses((status = 200, description = "The new secret, once; the old one works until `previous_secret_valid_until`", body = crate::openapi::schemas::TenantView), crate::openapi::schemas::OperatorErrors))]
async fn rotate(
    tenant: TenantWrite,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = utf8_body(body)?;
    let req: Rotate = if body.is_empty() {
        Rotate::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("rotate: {e}")))?
    };
    let overlap = req.overlap_seconds.unwrap_or(3600);
    if !(0..=MAX_OVERLAP).contains(&overlap) {
        return Err(ApiError::Validation(format!(
            "overlap_seconds: must be 0 to {MAX_OVERLAP}"
        )));
    }
    let secret = secret_or_random(req.secret)?;
    let new_secret = Secret::new(secret.clone());
    let mut v = tenant
        .update(|t| {
            let until = chrono::Utc::now().timestamp() + overlap;
            t.previous = Some((std::mem::replace(&mut t.secret, new_secret), until));
        })
        .await?;
    v["secret"] = json!(secret);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetWebhook {
    /// `null` removes the webhook.
    url: Option<String>,
}

/// `PUT /v1/admin/tenants/{id}/webhook` `{"url": "https://…" | null}`: set or remove the
/// tenant's outbound webhook (persisted; applies to the next delivery attempt).
#[utoipa::path(put, path = "/v1/admin/tenants/{id}/webhook", operation_id = "set_webhook", tag = "admin", security(("operator" = [])), params(("id" = String, Path, description = "Tenant id")), request_body = crate::openapi::schemas::WebhookSetting, responses((status = 200, description = "The tenant with its webhook", body = crate::openapi::schemas::TenantView), crate::openapi::schemas::NotFound, crate::openapi::schemas::OperatorErrors))]
async fn set_webhook(
    tenant: TenantWrite,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = utf8_body(body)?;
    let req: SetWebhook =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("webhook: {e}")))?;
    if let Some(url) = &req.url {
        if !crate::config::valid_webhook_url(url) {
            return Err(ApiError::Validation(
                "url: must be an http:// or https:// URL of at most 2048 bytes".into(),
            ));
        }
    }
    tenant.update(|t| t.webhook_url = req.url).await.map(Json)
}
