//! `POST /v1/events`, `POST /v1/events/bulk` (seed 000 §2–§8) and `GET /v1/events` (read the
//! tenant's durable log from a position).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{TimeZone, Utc};
use phoenix_actors::{Event, EventError, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::parse_json;
use crate::error::ApiError;
use crate::extract::{IngestBody, SignedTenant, Writable};
use crate::state::AppState;

/// Most events in one bulk request.
pub const MAX_BULK: usize = 100;

fn outcome_status(o: Outcome) -> &'static str {
    match o {
        Outcome::Accepted { .. } => "accepted",
        Outcome::Duplicate { .. } => "duplicate",
    }
}

fn count(endpoint: &'static str, status: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("phoenix_ingest_events_total", "endpoint" => endpoint, "status" => status)
            .increment(n);
    }
}

/// `result`, with a refused request counted under its error code.
fn counted<T>(endpoint: &'static str, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(e) = &result {
        count(endpoint, e.code(), 1);
    }
    result
}

/// The answer for one event (`error` only when it failed).
#[derive(Debug, Serialize)]
pub struct EventResult {
    event_id: Value,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `POST /v1/events`: one event → 202 `{"event_id", "status": "accepted"|"duplicate"}`.
#[utoipa::path(post, path = "/v1/events", tag = "ingestion", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), request_body = crate::openapi::schemas::IngestionEventV1, responses((status = 202, description = "Stored durably (or a duplicate)", body = crate::openapi::schemas::EventAck), crate::openapi::schemas::TenantErrors))]
pub async fn ingest_one(
    engine: Result<Writable, ApiError>,
    signed: Result<IngestBody, ApiError>,
) -> Result<(StatusCode, Json<EventResult>), ApiError> {
    counted("single", ingest_one_inner(engine, signed).await)
}

/// Body, signature, then the engine: the order of the checks of seed 000.
async fn ingest_one_inner(
    engine: Result<Writable, ApiError>,
    signed: Result<IngestBody, ApiError>,
) -> Result<(StatusCode, Json<EventResult>), ApiError> {
    let IngestBody { signed, turn } = signed?;
    let Writable(engine) = engine?;
    let tenant = &signed.tenant;
    let event = Event::from_str(signed.text(), tenant, Utc::now()).map_err(|e| match e {
        // A body that is not JSON at all is a request-level problem, not a schema one.
        EventError::Malformed { .. } => ApiError::Validation(e.to_string()),
        e => ApiError::Validation(validation_failed(&e)),
    })?;
    let event_id = event.event_id.clone();
    turn.done();
    let outcome = engine.ingest(tenant, vec![event]).await?;
    let status = outcome_status(outcome[0]);
    count("single", status, 1);
    Ok((
        StatusCode::ACCEPTED,
        Json(EventResult {
            event_id: Value::String(event_id),
            status,
            error: None,
        }),
    ))
}

/// `POST /v1/events/bulk`: `{"events": [...]}` with 1..=100 events, each validated alone.
#[utoipa::path(post, path = "/v1/events/bulk", tag = "ingestion", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), request_body = crate::openapi::schemas::BulkRequest, responses((status = 202, description = "Per-event results; accepted ones are durable", body = crate::openapi::schemas::BulkAck), crate::openapi::schemas::TenantErrors))]
pub async fn ingest_bulk(
    engine: Result<Writable, ApiError>,
    signed: Result<IngestBody, ApiError>,
) -> Result<(StatusCode, impl IntoResponse), ApiError> {
    counted("bulk", ingest_bulk_inner(engine, signed).await)
}

async fn ingest_bulk_inner(
    engine: Result<Writable, ApiError>,
    signed: Result<IngestBody, ApiError>,
) -> Result<(StatusCode, impl IntoResponse), ApiError> {
    let IngestBody { signed, mut turn } = signed?;
    let Writable(engine) = engine?;
    let tenant = &signed.tenant;
    let list = bulk_events(signed.text())?;
    if list.is_empty() {
        return Err(ApiError::Validation(
            "Bulk request must contain at least 1 event".into(),
        ));
    }
    if list.len() > MAX_BULK {
        return Err(ApiError::Validation(format!(
            "Bulk request can contain maximum {MAX_BULK} events"
        )));
    }
    let total = list.len();
    let mut batch = Batch::validate_in_turns(&list, tenant, Utc::now(), &mut turn).await;
    turn.done();
    let outcomes = if batch.valid.is_empty() {
        Vec::new()
    } else {
        engine
            .ingest(tenant, std::mem::take(&mut batch.valid))
            .await?
    };
    let (results, accepted, duplicates, failed) = batch.results(&outcomes);
    count("bulk", "accepted", accepted);
    count("bulk", "duplicate", duplicates);
    count("bulk", "failed", failed);
    let status = if failed == 0 {
        "accepted"
    } else if failed as usize == total {
        "failed"
    } else {
        "partial"
    };
    #[derive(Serialize)]
    struct BulkAck {
        status: &'static str,
        total: usize,
        accepted: u64,
        duplicates: u64,
        failed: u64,
        results: Vec<EventResult>,
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(BulkAck {
            status,
            total,
            accepted,
            duplicates,
            failed,
            results,
        }),
    ))
}

/// Events of a bulk checked per fair-admission turn.
const CHECK_CHUNK: usize = 10;

/// A batch of raw events checked one by one: what to log, and how to answer for each slot.
/// Shared by HTTP bulk and WebSocket `ingest`.
pub struct Batch {
    /// Per input slot: `Ok(index into the valid events)` or `Err((event_id if any, message))`.
    slots: Vec<Result<usize, (Value, String)>>,
    ids: Vec<String>,
    /// The events that passed validation, in order; hand these to the engine.
    pub valid: Vec<Event>,
}

/// How seed 000 words a refused event.
fn validation_failed(e: &EventError) -> String {
    format!("Validation failed: {e}")
}

impl Batch {
    pub fn validate(raws: &[&RawValue], tenant: &str, now: chrono::DateTime<Utc>) -> Batch {
        let mut batch = Batch::with_capacity(raws.len());
        raws.iter().for_each(|raw| batch.check(raw, tenant, now));
        batch.finish()
    }

    /// [`Batch::validate`] a chunk of [`CHECK_CHUNK`] events at a time, passing the fair
    /// admission turn on between chunks (`crate::fair`).
    pub async fn validate_in_turns(
        raws: &[&RawValue],
        tenant: &str,
        now: chrono::DateTime<Utc>,
        turn: &mut crate::fair::Slot,
    ) -> Batch {
        let mut batch = Batch::with_capacity(raws.len());
        for (i, chunk) in raws.chunks(CHECK_CHUNK).enumerate() {
            if i > 0 {
                turn.pass(tenant).await;
            }
            chunk.iter().for_each(|raw| batch.check(raw, tenant, now));
        }
        batch.finish()
    }

    fn with_capacity(n: usize) -> Batch {
        Batch {
            slots: Vec::with_capacity(n),
            ids: Vec::new(),
            valid: Vec::with_capacity(n),
        }
    }

    fn check(&mut self, raw: &RawValue, tenant: &str, now: chrono::DateTime<Utc>) {
        match Event::from_str(raw.get(), tenant, now) {
            Ok(e) => {
                self.slots.push(Ok(self.valid.len()));
                self.valid.push(e);
            }
            Err(e) => {
                // Slow path only for failures: pick the event_id out if there is one. The
                // other members are skipped unparsed, so an event refused for what is in
                // them (too deep, 1e309, a lone surrogate) still gets its id back.
                #[derive(Deserialize)]
                struct IdOnly {
                    #[serde(default)]
                    event_id: Option<Value>,
                }
                let id = serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|v| v.event_id.filter(Value::is_string))
                    .unwrap_or(Value::Null);
                self.slots.push(Err((id, validation_failed(&e))));
            }
        }
    }

    fn finish(mut self) -> Batch {
        self.ids = self.valid.iter().map(|e| e.event_id.clone()).collect();
        self
    }

    /// Per-slot results given the engine's outcomes for the valid events, with the counts
    /// `(results, accepted, duplicates, failed)`.
    pub fn results(mut self, outcomes: &[Outcome]) -> (Vec<EventResult>, u64, u64, u64) {
        let (mut accepted, mut duplicates, mut failed) = (0u64, 0u64, 0u64);
        let results = self
            .slots
            .into_iter()
            .map(|slot| match slot {
                Ok(i) => {
                    let status = outcome_status(outcomes[i]);
                    if status == "accepted" {
                        accepted += 1;
                    } else {
                        duplicates += 1;
                    }
                    EventResult {
                        event_id: Value::String(std::mem::take(&mut self.ids[i])),
                        status,
                        error: None,
                    }
                }
                Err((id, message)) => {
                    failed += 1;
                    EventResult {
                        event_id: id,
                        status: "failed",
                        error: Some(message),
                    }
                }
            })
            .collect();
        (results, accepted, duplicates, failed)
    }
}

/// The `events` array of a bulk body, each event left as raw JSON for `Event::from_str`.
fn bulk_events(text: &str) -> Result<Vec<&RawValue>, ApiError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        events: Option<&'a RawValue>,
    }
    if !text.trim_start().starts_with('{') {
        parse_json(text.as_bytes())?;
        return Err(ApiError::Validation(
            r#"Body must be {"events": [...]}"#.into(),
        ));
    }
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| ApiError::Validation(format!("Malformed JSON: {e}")))?;
    match envelope.events.map(|r| r.get()) {
        None | Some("null") => Err(ApiError::Validation("events is required".into())),
        Some(r) if r.starts_with('[') => serde_json::from_str(r)
            .map_err(|e| ApiError::Validation(format!("Malformed JSON: {e}"))),
        Some(_) => Err(ApiError::Validation("events must be an array".into())),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// First position to return (default 1).
    #[serde(default)]
    from: Option<u64>,
    /// Most entries (default 100, max 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/events?from=&limit=`: the tenant's durable log, in order (signed with body "").
#[utoipa::path(get, path = "/v1/events", tag = "ingestion", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = [])), params(LogQuery), responses((status = 200, description = "A page of the durable log", body = crate::openapi::schemas::LogPage), crate::openapi::schemas::TenantErrors))]
pub async fn read_log(
    State(app): State<AppState>,
    SignedTenant(tenant): SignedTenant,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Validation(e.body_text()))?;
    let limit = super::log_limit(q.limit)?;
    let engine = app.read_engine()?;
    // Retention deletes the oldest records: a `from` below the oldest retained starts there.
    let first = engine.first_seq(&tenant)?;
    let from = q.from.unwrap_or(1).max(first);
    let entries = engine.read_log(&tenant, from, limit)?;
    let head = engine
        .durable_head(&tenant)
        .map(|h| *h.borrow())
        .unwrap_or(0);
    let next = entries.last().map(|e| e.seq + 1).unwrap_or(from);
    let events: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            // Ingestion refuses what this decoder refuses; an entry logged before that (or
            // damaged) is counted and logged, and shown as null.
            let event = phoenix_actors::event::decode(&e.json).unwrap_or_else(|err| {
                phoenix_actors::feed::undecodable(&tenant, "log_api", e.seq, &err.to_string());
                Value::Null
            });
            let accepted_at = Utc
                .timestamp_millis_opt(e.accepted_ms)
                .single()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            json!({"seq": e.seq, "accepted_at": accepted_at, "event": event})
        })
        .collect();
    Ok(Json(
        json!({"events": events, "first": first, "next": next, "head": head}),
    ))
}
