//! Outbound webhooks (SPEC §12, docs/webhooks.md): the delivery worker over the engine's
//! durable outbox ([`WebhookOutbox`]), and `GET /v1/webhooks/deliveries` (tenant HMAC).
//!
//! Each due entry is `POST`ed to its tenant's `webhook_url`, signed like an inbound request
//! (seed 000 §3: `METHOD\nPATH\nTIMESTAMP\nBODY`, PATH = the URL's path) with the tenant's
//! current secret, with `X-Phoenix-Delivery` (stable across retries) and
//! `X-Phoenix-Event` (the kind). 2xx = delivered; anything else (timeout, refused, non-2xx)
//! is retried with exponential backoff (jitter, cap) until `retry_hours` after enqueueing.
//! A slow receiver holds at most `max_in_flight_per_tenant` deliveries of its own tenant and
//! never blocks ingestion (the worker is its own task; HTTP calls have timeouts).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use dashmap::DashMap;
use phoenix_actors::outbox::{Attempt, AttemptResult, OutboxEntry};
use phoenix_actors::stores::WebhookOutbox;
use phoenix_actors::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::WebhookConfig;
use crate::error::ApiError;
use crate::extract::SignedTenant;
use crate::state::AppState;
use crate::tenants::Tenants;

/// Entries taken from the outbox per poll.
const BATCH: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/webhooks/deliveries", get(deliveries))
}

/// Register the webhook and window-close metrics at zero (per configured tenant where they
/// carry one), so dashboards see them before the first close.
pub fn register_metrics(tenants: &[String]) {
    for t in tenants {
        for result in ["rewarded", "before_definition"] {
            metrics::counter!("phoenix_window_closes_total", "tenant" => t.clone(), "result" => result)
                .increment(0);
        }
        metrics::counter!("phoenix_rewards_grants_total", "tenant" => t.clone(), "source" => "leaderboard")
            .increment(0);
        for name in [
            "phoenix_rewards_grants_capped_total",
            "phoenix_webhook_outbox_dropped_total",
            "phoenix_window_close_emit_failures_total",
        ] {
            metrics::counter!(name, "tenant" => t.clone()).increment(0);
        }
    }
    for result in ["delivered", "failed", "gave_up", "no_endpoint"] {
        metrics::counter!("phoenix_webhook_deliveries_total", "result" => result).increment(0);
    }
    metrics::gauge!("phoenix_webhook_outbox_depth").set(0.0);
    metrics::counter!("phoenix_webhook_retries_total").increment(0);
}

/// Delay before attempt `n + 1` after `n` failed attempts: `initial × 2^(n-1)`, capped,
/// then scaled by a random factor in [0.5, 1) (jitter, so receivers coming back up are
/// not hit by every sender at once).
pub fn backoff(cfg: &WebhookConfig, failed: u32, jitter: f64) -> Duration {
    let exp = failed.saturating_sub(1).min(40);
    let base = cfg
        .retry_initial_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.retry_max_ms);
    let jitter = jitter.clamp(0.0, 1.0);
    Duration::from_millis(((base as f64) * (0.5 + 0.5 * jitter)) as u64)
}

/// A random number in [0, 1) from the std hasher's random keys (no extra crate needed).
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

struct Worker {
    outbox: Arc<dyn WebhookOutbox>,
    tenants: Tenants,
    client: reqwest::Client,
    cfg: WebhookConfig,
    /// Entry ids being delivered now (so the next poll does not take them again).
    in_flight: Mutex<HashSet<u64>>,
    per_tenant: DashMap<String, Arc<Semaphore>>,
}

/// Start the delivery worker (one task; each delivery its own task).
pub fn spawn(
    engine: &Engine,
    tenants: Tenants,
    cfg: WebhookConfig,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let outbox = engine.outbox().map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("phoenix-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let worker = Arc::new(Worker {
        outbox,
        tenants,
        client,
        cfg,
        in_flight: Mutex::new(HashSet::new()),
        per_tenant: DashMap::new(),
    });
    Ok(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(worker.cfg.poll_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = poll(&worker) {
                tracing::warn!(error = %e, "webhook outbox unreadable; retrying");
            }
        }
    }))
}

fn poll(worker: &Arc<Worker>) -> Result<(), phoenix_actors::EngineError> {
    metrics::gauge!("phoenix_webhook_outbox_depth").set(worker.outbox.depth() as f64);
    let now = chrono::Utc::now().timestamp_millis();
    for entry in worker.outbox.due(now, BATCH)? {
        let sem = worker
            .per_tenant
            .entry(entry.tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(worker.cfg.max_in_flight_per_tenant)))
            .clone();
        let Ok(permit) = sem.try_acquire_owned() else {
            continue; // this tenant is at its in-flight limit; others go on
        };
        if !worker.in_flight.lock().expect("in_flight").insert(entry.id) {
            continue;
        }
        let w = worker.clone();
        tokio::spawn(async move {
            let id = entry.id;
            deliver(&w, entry).await;
            w.in_flight.lock().expect("in_flight").remove(&id);
            drop(permit);
        });
    }
    Ok(())
}

/// One attempt: send, then record the result (and the next attempt, if any).
async fn deliver(w: &Worker, entry: OutboxEntry) {
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let attempt_no = entry.attempts.saturating_add(1);
    let tenant = w.tenants.get(&entry.tenant);
    let target = tenant.as_ref().and_then(|t| t.webhook_url.clone());
    let (result, http_status, error) = match (tenant, target) {
        (Some(t), Some(url)) => match send(w, &t, &url, &entry).await {
            Ok(status) if (200..300).contains(&status) => {
                (AttemptResult::Delivered, Some(status), None)
            }
            Ok(status) => (
                AttemptResult::Failed,
                Some(status),
                Some(format!("receiver answered {status}")),
            ),
            Err(e) => (AttemptResult::Failed, None, Some(e.to_string())),
        },
        _ => (AttemptResult::NoEndpoint, None, None),
    };
    let horizon_ms = i64::try_from(w.cfg.retry_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    let (result, next) = match result {
        AttemptResult::Failed => {
            let next = now_ms.saturating_add(
                i64::try_from(backoff(&w.cfg, attempt_no, random_unit()).as_millis())
                    .unwrap_or(i64::MAX),
            );
            if next > entry.created_ms.saturating_add(horizon_ms) {
                (AttemptResult::GaveUp, None)
            } else {
                metrics::counter!("phoenix_webhook_retries_total").increment(1);
                (AttemptResult::Failed, Some(next))
            }
        }
        other => (other, None),
    };
    let label = match result {
        AttemptResult::Delivered => "delivered",
        AttemptResult::Failed => "failed",
        AttemptResult::GaveUp => "gave_up",
        AttemptResult::NoEndpoint => "no_endpoint",
    };
    metrics::counter!("phoenix_webhook_deliveries_total", "result" => label).increment(1);
    if result == AttemptResult::GaveUp {
        tracing::warn!(tenant = %entry.tenant, delivery = %entry.delivery_id, attempts = attempt_no, "webhook given up after the retry horizon");
    }
    let attempt = Attempt {
        delivery_id: entry.delivery_id.clone(),
        kind: entry.kind.clone(),
        attempt: attempt_no,
        at_ms: now_ms,
        result,
        http_status,
        error,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        next_attempt_ms: next,
    };
    let outbox = w.outbox.clone();
    let recorded = tokio::task::spawn_blocking(move || outbox.record(&entry, &attempt, next)).await;
    if !matches!(recorded, Ok(Ok(()))) {
        tracing::warn!(
            ?recorded,
            "could not record a webhook attempt; it will be repeated"
        );
    }
}

/// `url::ParseError`, named through reqwest (which does not re-export it).
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Why a delivery got no answer (the text is recorded with the attempt).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("bad webhook_url: {0}")]
    BadUrl(#[source] UrlError),
    #[error("timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("could not connect")]
    Connect(#[source] reqwest::Error),
    #[error("request failed")]
    Request(#[source] reqwest::Error),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> SendError {
        if e.is_timeout() {
            SendError::Timeout(e)
        } else if e.is_connect() {
            SendError::Connect(e)
        } else {
            SendError::Request(e)
        }
    }
}

/// POST the entry's body, signed; the receiver's status, or why there was none.
async fn send(
    w: &Worker,
    t: &crate::tenants::Tenant,
    url: &str,
    entry: &OutboxEntry,
) -> Result<u16, SendError> {
    let parsed = reqwest::Url::parse(url).map_err(SendError::BadUrl)?;
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = crate::auth::sign(
        t.secret.expose().as_bytes(),
        "POST",
        parsed.path(),
        &ts,
        entry.body.as_bytes(),
    );
    let resp = w
        .client
        .post(parsed)
        .header("Content-Type", "application/json")
        .header("X-Tenant-Id", &entry.tenant)
        .header("X-Timestamp", ts)
        .header("X-Signature", sig)
        .header("X-Phoenix-Delivery", &entry.delivery_id)
        .header("X-Phoenix-Event", &entry.kind)
        .body(entry.body.clone())
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Most attempts (default 50, 1..=1000).
    limit: Option<usize>,
}

fn time(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// `GET /v1/webhooks/deliveries?limit=50` (tenant HMAC) → `{"pending": n, "deliveries":
/// [attempts, newest first]}`.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", operation_id = "webhook_deliveries", tag = "webhooks", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(("limit" = Option<u32>, Query, description = "Newest first")), responses((status = 200, description = "Delivery attempts and results", body = crate::openapi::schemas::WebhookDeliveries), crate::openapi::schemas::TenantErrors))]
pub async fn deliveries(
    State(app): State<AppState>,
    SignedTenant(tenant): SignedTenant,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Validation(format!("query: {}", e.body_text())))?;
    let limit = crate::gateway::page_limit(q.limit, 50, 1000)?;
    let outbox = app.require_engine()?.outbox()?;
    let list = outbox.attempts(&tenant, limit)?;
    Ok(Json(json!({
        "pending": outbox.pending(&tenant)?,
        "deliveries": list.iter().map(|a| json!({
            "delivery_id": a.delivery_id, "kind": a.kind, "attempt": a.attempt,
            "at": time(a.at_ms), "result": a.result, "http_status": a.http_status,
            "error": a.error, "duration_ms": a.duration_ms,
            "next_attempt_at": a.next_attempt_ms.map(time),
        })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let cfg = WebhookConfig {
            retry_initial_ms: 100,
            retry_max_ms: 1_000,
            ..WebhookConfig::default()
        };
        let ms = |n, j| backoff(&cfg, n, j).as_millis();
        assert_eq!(
            [ms(1, 1.0), ms(2, 1.0), ms(3, 1.0), ms(4, 1.0)],
            [100, 200, 400, 800]
        );
        assert_eq!(ms(5, 1.0), 1_000, "capped");
        assert_eq!(ms(60, 1.0), 1_000, "no overflow");
        assert_eq!(ms(2, 0.0), 100, "jitter keeps at least half");
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
