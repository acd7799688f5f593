//! GAMEMONITORING vote rewards (seed 004, SPEC §7): the signed `server.vote` webhook, the
//! vote lookup, exactly-once rewards, players and wallets.
//!
//! Webhook flow: UTF-8 body (400/413) → tenant with a `[tenants.gamemonitoring]` table (404)
//! → JSON object (400) → signature (401) → suspended tenant (403) → `is_test` (204, nothing
//! else) → not `server.vote` (204, recorded) → already delivered (204; re-emits the stream
//! event if it was lost) → fetch the vote (503 on any API trouble, nothing granted) → one
//! rewards-ledger transaction (dedupe record + grant, or unclaimed record) → fsync → 204 → stream
//! event `gamemonitoring.vote`.

pub mod config;
pub(crate) mod players;
pub mod signature;
pub mod vote;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use chrono::{TimeZone, Utc};
use phoenix_actors::rewards::{Applied, Delivery, DeliveryStatus, Grant, Vote};
use phoenix_actors::stores::RewardLedger;
use phoenix_actors::{Engine, Event};
use serde_json::{json, Map, Value};

pub use self::config::{GmConfig, RewardRule};
use crate::error::ApiError;
use crate::gateway::utf8_body;
use crate::state::AppState;
use crate::types::TenantStatus;

/// The event type that grants rewards.
pub const VOTE: &str = "server.vote";
/// Longest accepted vote id (it becomes part of a stream `event_id`).
pub const MAX_VOTE_ID: usize = 200;

/// Routes of this protocol.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks/gamemonitoring/{tenant_id}", post(webhook))
        .route("/v1/players/{user_id}", put(players::link))
        .route("/v1/players/{user_id}/wallet", get(players::wallet))
        .route("/v1/gamemonitoring/deliveries", get(players::deliveries))
}

fn count_delivery(outcome: &'static str) {
    metrics::counter!("phoenix_gm_deliveries_total", "outcome" => outcome).increment(1);
}

/// `POST /v1/webhooks/gamemonitoring/{tenant_id}` → 204, or an error envelope.
#[utoipa::path(post, path = "/v1/webhooks/gamemonitoring/{tenant_id}", tag = "gamemonitoring", params(("tenant_id" = String, Path, description = "Tenant id")), request_body = crate::openapi::schemas::GmWebhook, responses((status = 204, description = "Handled (granted, duplicate, test or ignored)"), crate::openapi::schemas::NotFound, crate::openapi::schemas::TenantErrors))]
pub async fn webhook(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    match handle(&app, &tenant, body).await {
        Ok(outcome) => {
            count_delivery(outcome);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => {
            count_delivery(e.code());
            Err(e)
        }
    }
}

/// The webhook; returns the outcome label on success.
async fn handle(
    app: &AppState,
    tenant: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<&'static str, ApiError> {
    let body = utf8_body(body)?;
    // Unknown tenant and tenant without the integration look the same from outside.
    let gm = app
        .config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .and_then(|t| t.gamemonitoring.as_ref())
        .ok_or_else(|| ApiError::NotFound("No such webhook".into()))?;
    let data: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(ApiError::Validation("Body must be a JSON object".into())),
        Err(e) => return Err(ApiError::Validation(format!("Malformed JSON: {e}"))),
    };
    if !signature::verify(gm.webhook_token.expose().as_bytes(), &data) {
        return Err(ApiError::Unauthorized("Invalid webhook signature".into()));
    }
    if app.tenants.get(tenant).map(|t| t.status) == Some(TenantStatus::Suspended) {
        return Err(ApiError::Forbidden(crate::tenants::SUSPENDED.into()));
    }
    if data.get("is_test") == Some(&Value::Bool(true)) {
        return Ok("test");
    }
    let event_type = data.get("event_type").and_then(Value::as_str).unwrap_or("");
    let event_id = match data.get("event_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ if event_type != VOTE => return Ok("ignored"),
        _ => return Err(ApiError::Validation("event_id is required".into())),
    };
    if event_id.len() > MAX_VOTE_ID {
        return Err(ApiError::Validation(format!(
            "event_id is longer than {MAX_VOTE_ID} bytes"
        )));
    }
    let engine = &app.require_engine()?;
    let store = open_store(engine, tenant)?;
    let now_ms = Utc::now().timestamp_millis();
    if event_type != VOTE {
        let (store, et, id) = (store.clone(), event_type.to_owned(), event_id.clone());
        let applied = blocking(move || store.record_ignored(&et, &id, now_ms)).await?;
        engine.persist().await?;
        return Ok(match applied {
            Applied::New(_) => "ignored",
            Applied::Duplicate(_) => "duplicate",
        });
    }
    // A redelivery is answered from the dedupe record, without asking the API again.
    if let Some(d) = store.delivery(VOTE, &event_id).map_err(internal)? {
        emit_if_lost(engine, &store, tenant, gm, &d).await;
        return Ok("duplicate");
    }
    let fetched = vote::fetch_vote(
        &gm.api_base,
        &event_id,
        Duration::from_millis(gm.timeout_ms),
    )
    .await
    .map_err(|e| {
        metrics::counter!("phoenix_gm_api_failures_total", "reason" => e.reason()).increment(1);
        tracing::warn!(tenant, vote_id = %event_id, error = %e, "vote lookup failed; nothing granted");
        ApiError::Unavailable(
            "The vote could not be verified right now; nothing was granted. Resend the delivery later."
                .into(),
        )
    })?;
    let vote = Vote {
        event_type: VOTE.into(),
        vote_id: event_id,
        fallback_user: engine
            .character_owner(tenant, &fetched.nickname)
            .map_err(internal)?,
        reward: gm
            .rule_for(fetched.server_id.as_deref())
            .map(RewardRule::reward),
        nickname: fetched.nickname,
        server_id: fetched.server_id,
        gm_user_id: fetched.user_id,
    };
    let applied = {
        let store = store.clone();
        blocking(move || store.apply_vote(&vote, now_ms)).await?
    };
    engine.persist().await?;
    Ok(match applied {
        Applied::New(d) => {
            let outcome = match d.status {
                DeliveryStatus::Granted => "granted",
                DeliveryStatus::Unclaimed => "unclaimed",
                DeliveryStatus::NoRule => "no_rule",
                DeliveryStatus::Ignored => "ignored",
            };
            if let Some(g) = &d.grant {
                metrics::counter!("phoenix_gm_grants_total", "via" => "vote").increment(1);
                tracing::debug!(tenant, vote_id = %g.vote_id, user = %g.user_id, coins = g.reward.coins, "vote granted");
                emit(engine, &store, tenant, gm, g).await;
            }
            outcome
        }
        Applied::Duplicate(d) => {
            emit_if_lost(engine, &store, tenant, gm, &d).await;
            "duplicate"
        }
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The tenant's rewards ledger (the engine's store).
pub(crate) type Ledger = std::sync::Arc<dyn RewardLedger>;

fn open_store(engine: &Engine, tenant: &str) -> Result<Ledger, ApiError> {
    engine.rewards(tenant).map_err(internal)
}

/// Run a store call off the async workers (transactions may wait on the store's locks).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, phoenix_actors::rewards::RewardError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(internal)
}

/// The stream event of a grant. Deterministic (id and time come from the grant), so a
/// retried emit is deduplicated by the engine.
pub fn vote_event(tenant: &str, g: &Grant) -> Result<Event, ApiError> {
    let at = Utc
        .timestamp_millis_opt(g.granted_at_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let value = json!({
        "tenant_id": tenant,
        "event_id": format!("gm-vote-{}", g.vote_id),
        "type": "gamemonitoring.vote",
        "actor": {"user_id": g.user_id},
        "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "attrs": {"server_id": g.server_id, "coins": g.reward.coins,
                  "vote_id": g.vote_id, "nickname": g.nickname}
    });
    Event::from_json(value, tenant, Utc::now()).map_err(|e| internal(e.to_string()))
}

/// Put a durable grant into the event stream (when the tenant wants it) and note it. A
/// failure is logged: the next redelivery of the vote retries.
async fn emit(engine: &Engine, store: &Ledger, tenant: &str, gm: &GmConfig, g: &Grant) {
    if !gm.emit_events {
        return;
    }
    let result = match vote_event(tenant, g) {
        Ok(event) => engine.ingest(tenant, vec![event]).await.map_err(internal),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            if let Err(e) = store.mark_emitted(VOTE, &g.vote_id) {
                tracing::warn!(tenant, vote_id = %g.vote_id, error = %e, "could not mark vote event as emitted");
            }
        }
        Err(e) => {
            metrics::counter!("phoenix_gm_emit_failures_total").increment(1);
            tracing::warn!(tenant, vote_id = %g.vote_id, error = %e, "granted vote not yet in the event stream; a redelivery retries");
        }
    }
}

async fn emit_if_lost(engine: &Engine, store: &Ledger, tenant: &str, gm: &GmConfig, d: &Delivery) {
    if let (false, Some(g)) = (d.emitted, &d.grant) {
        emit(engine, store, tenant, gm, g).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_actors::rewards::Reward;

    #[test]
    fn vote_event_is_deterministic_and_valid() {
        let g = Grant {
            vote_id: "9824cabb".into(),
            server_id: Some("1".into()),
            nickname: "PlayerName".into(),
            user_id: "u1".into(),
            gm_user_id: None,
            reward: Reward {
                coins: 100,
                ..Reward::default()
            },
            granted_at_ms: 1_700_000_000_000,
            source: None,
        };
        let e = vote_event("acme", &g).unwrap();
        assert_eq!(e.event_id, "gm-vote-9824cabb");
        assert_eq!(e.event_type, "gamemonitoring.vote");
        assert_eq!(e.user_id, "u1");
        let v: Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["attrs"]["coins"], 100);
        assert_eq!(v["attrs"]["server_id"], "1");
        assert_eq!(v["occurred_at"], "2023-11-14T22:13:20Z");
        assert_eq!(vote_event("acme", &g).unwrap().json, e.json);
    }
}
