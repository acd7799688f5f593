//! Tenant-signed player calls: link a nickname (`PUT /v1/players/{user_id}`, which also
//! grants the nickname's unclaimed votes), read a wallet, list webhook deliveries.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{TimeZone, Utc};
use phoenix_actors::rewards::{Delivery, Grant};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, emit, open_store};
use crate::error::ApiError;
use crate::extract::{Readable, SignedBody, SignedTenant, Writable};
use crate::gateway::parse_json;
use crate::state::AppState;

/// Longest user id (it becomes a stream event's `actor.user_id`).
const MAX_USER_ID: usize = 256;
/// Longest nickname.
const MAX_NICKNAME: usize = 128;

fn check_user(user_id: &str) -> Result<(), ApiError> {
    if user_id.trim().is_empty()
        || user_id.len() > MAX_USER_ID
        || user_id.chars().any(char::is_control)
    {
        return Err(ApiError::Validation(format!(
            "user_id must be 1-{MAX_USER_ID} bytes without control characters"
        )));
    }
    Ok(())
}

fn time(ms: i64) -> Value {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A ledger line as the API shows it.
fn grant_json(g: &Grant) -> Value {
    json!({
        "vote_id": g.vote_id, "server_id": g.server_id, "nickname": g.nickname,
        "gm_user_id": g.gm_user_id, "coins": g.reward.coins, "items": g.reward.items,
        "role": g.reward.role, "vip_days": g.reward.vip_days, "granted_at": time(g.granted_at_ms),
        "source": g.source.as_deref().unwrap_or("gamemonitoring")
    })
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "event_type": d.event_type, "event_id": d.event_id, "status": d.status,
        "received_at": time(d.received_at_ms), "user_id": d.grant.as_ref().map(|g| &g.user_id),
        "emitted": d.emitted
    })
}

/// The tenant's vote-reward settings, or 404 when the integration is off.
fn gm_of<'a>(app: &'a AppState, tenant: &str) -> Result<&'a super::GmConfig, ApiError> {
    app.config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .and_then(|t| t.gamemonitoring.as_ref())
        .ok_or_else(|| ApiError::NotFound("Vote rewards are not configured for this tenant".into()))
}

/// `PUT /v1/players/{user_id}` `{"nickname": "…"}` → 200 `{"user_id", "nickname",
/// "balance", "claimed": [grants made now]}`.
#[utoipa::path(put, path = "/v1/players/{user_id}", tag = "gamemonitoring", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("user_id" = String, Path, description = "Player")), request_body = crate::openapi::schemas::LinkRequest, responses((status = 200, description = "Linked; grants for earlier votes are made now", body = crate::openapi::schemas::LinkAnswer), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn link(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    Writable(engine): Writable,
    SignedBody { tenant, body, .. }: SignedBody,
) -> Result<Json<Value>, ApiError> {
    let gm = gm_of(&app, &tenant)?;
    check_user(&user_id)?;
    let nickname = match parse_json(&body)?.get("nickname") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_NICKNAME => {
            s.trim().to_owned()
        }
        _ => {
            return Err(ApiError::Validation(format!(
                "nickname is required: a non-empty string of at most {MAX_NICKNAME} bytes"
            )))
        }
    };
    let store = open_store(&engine, &tenant)?;
    let now_ms = Utc::now().timestamp_millis();
    let claimed = {
        let (store, user, nick) = (store.clone(), user_id.clone(), nickname.clone());
        blocking(move || store.link(&user, &nick, now_ms)).await?
    };
    engine.persist().await?;
    for g in &claimed {
        metrics::counter!("phoenix_gm_grants_total", "via" => "link").increment(1);
        emit(&engine, &store, &tenant, gm, g).await;
    }
    let balance = store
        .wallet(&user_id)
        .map_err(super::internal)?
        .map(|w| w.balance)
        .unwrap_or(0);
    Ok(Json(json!({
        "user_id": user_id, "nickname": nickname, "balance": balance,
        "claimed": claimed.iter().map(grant_json).collect::<Vec<_>>()
    })))
}

/// `GET /v1/players/{user_id}/wallet` → `{"user_id", "nicknames", "balance", "grants"}`;
/// 404 for a user never linked and never granted.
#[utoipa::path(get, path = "/v1/players/{user_id}/wallet", tag = "gamemonitoring", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("user_id" = String, Path, description = "Player")), responses((status = 200, description = "Balance and grants", body = crate::openapi::schemas::Wallet), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn wallet(
    Path(user_id): Path<String>,
    SignedTenant(tenant): SignedTenant,
    Readable(engine): Readable,
) -> Result<Json<Value>, ApiError> {
    // No `gm_of` check: leaderboard rewards (SPEC §12) credit the same wallet for tenants
    // without vote rewards.
    check_user(&user_id)?;
    let w = open_store(&engine, &tenant)?
        .wallet(&user_id)
        .map_err(super::internal)?
        .ok_or_else(|| ApiError::NotFound("No such player".into()))?;
    Ok(Json(json!({
        "user_id": w.user_id, "nicknames": w.nicknames, "balance": w.balance,
        "grants": w.grants.iter().map(grant_json).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Most deliveries (default 100, 1..=1000).
    limit: Option<usize>,
    /// Continue after this delivery (both or neither).
    after_type: Option<String>,
    after_id: Option<String>,
}

/// `GET /v1/gamemonitoring/deliveries?limit=&after_type=&after_id=` → the recorded webhook
/// deliveries (the dedupe records) in key order, `{"deliveries": […]}`.
#[utoipa::path(get, path = "/v1/gamemonitoring/deliveries", tag = "gamemonitoring", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(DeliveryQuery), responses((status = 200, description = "Recorded webhook deliveries in key order", body = crate::openapi::schemas::Deliveries), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn deliveries(
    State(app): State<AppState>,
    SignedTenant(tenant): SignedTenant,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    gm_of(&app, &tenant)?;
    let Query(q) = query.map_err(|e| ApiError::Validation(e.body_text()))?;
    let limit = crate::gateway::log_limit(q.limit)?;
    let after = match (&q.after_type, &q.after_id) {
        (Some(t), Some(id)) => Some((t.as_str(), id.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError::Validation(
                "after_type and after_id go together".into(),
            ))
        }
    };
    let engine = &app.read_engine()?;
    let list = open_store(engine, &tenant)?
        .deliveries(after, limit)
        .map_err(super::internal)?;
    Ok(Json(json!({
        "deliveries": list.iter().map(delivery_json).collect::<Vec<_>>()
    })))
}
