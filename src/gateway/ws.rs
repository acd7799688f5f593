//! `GET /v1/ws`: the WebSocket gateway (SPEC §5, docs/websocket.md). Authenticates before
//! the upgrade, then runs three parts per connection: a writer task draining the bounded
//! outbound queue, a `SessionActor` owning the view subscriptions, and this reader loop,
//! which also runs streaming ingest with a bounded number of unacknowledged events.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use phoenix_actors::leaderboard::views::{ViewKey, ViewKind};
use phoenix_actors::leaderboard::window::{Timeframe, WindowKey};
use phoenix_actors::session::{error_frame, SessionArgs, SessionHandle};
use phoenix_actors::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::error::ApiError;
use crate::gateway::events::Batch;
use crate::server::AppState;
use crate::tokens::{self, Claims};

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// Who is on the other end.
#[derive(Debug, Clone)]
struct Principal {
    tenant: String,
    /// Game clients (token) are read-only and may be limited to some boards.
    client: Option<Claims>,
}

pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Validation(e.body_text()))?;
    let principal = match q.token {
        Some(token) => {
            let claims = tokens::verify(&app.tenants, &token, Utc::now().timestamp())?;
            Principal {
                tenant: claims.t.clone(),
                client: Some(claims),
            }
        }
        None => Principal {
            tenant: app.tenants.authenticate(&headers, "GET", "/v1/ws", b"")?,
            client: None,
        },
    };
    let engine = app.require_engine()?.clone();
    let ws = ws.map_err(|e| ApiError::Validation(format!("WebSocket upgrade required: {e}")))?;
    let limits = Limits::from(&app);
    Ok(ws
        .max_message_size(crate::gateway::BODY_LIMIT)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(socket, engine, principal, limits)))
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    queue: usize,
    inflight: usize,
    stall: Duration,
}

impl From<&AppState> for Limits {
    fn from(app: &AppState) -> Self {
        Limits {
            queue: app.config.ws_outbound_queue,
            inflight: app.config.ws_max_inflight_events,
            stall: Duration::from_secs(app.config.ws_stall_timeout_seconds),
        }
    }
}

async fn session(socket: WebSocket, engine: Engine, who: Principal, limits: Limits) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<String>(limits.queue);
    let (close, mut close_rx) = watch::channel::<Option<String>>(None);
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = out_rx.recv() => match frame {
                    Some(f) => if sink.send(Message::Text(f.into())).await.is_err() { return },
                    None => return,
                },
                _ = close_rx.changed() => {
                    let reason = close_rx.borrow().clone().unwrap_or_default();
                    tracing::info!(%reason, "closing WebSocket");
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: reason.into() }))).await;
                    return;
                }
            }
        }
    });
    let args = SessionArgs {
        tenant: who.tenant.clone(),
        engine: engine.clone(),
        out: out.clone(),
        close: close.clone(),
        stall_timeout: limits.stall,
    };
    let actor = match SessionHandle::start(args).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "session actor did not start");
            writer.abort();
            return;
        }
    };
    let inflight = Arc::new(Semaphore::new(limits.inflight));
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(text) => {
                handle_frame(
                    &text,
                    &who,
                    &engine,
                    &actor,
                    &out,
                    &inflight,
                    limits.inflight,
                )
                .await
            }
            Message::Binary(_) => {
                let _ = out
                    .send(error_frame(
                        None,
                        "VALIDATION_ERROR",
                        400,
                        "binary frames are not supported; send JSON text",
                    ))
                    .await;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    actor.stop();
    // Let queued frames (acks) drain briefly, then stop writing.
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    id: String,
    leaderboard: String,
    #[serde(default)]
    timeframe: Option<String>,
    #[serde(default)]
    window: Option<String>,
    view: ViewSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewSpec {
    top: Option<usize>,
    around: Option<String>,
    radius: Option<usize>,
}

fn view_key(s: &Subscribe) -> Result<ViewKey, String> {
    let tf: Timeframe = s.timeframe.as_deref().unwrap_or("all_time").parse()?;
    let window = match s.window.as_deref() {
        None | Some("current") => None,
        Some(k) => Some(WindowKey::parse(tf, k).map_err(|e| format!("window: {e}"))?),
    };
    let kind = match (&s.view.top, &s.view.around) {
        (Some(n), None) if (1..=100).contains(n) => ViewKind::Top(*n),
        (None, Some(user)) => {
            let radius = s.view.radius.unwrap_or(5);
            if radius > 50 {
                return Err("view.radius: must be 0 to 50".into());
            }
            ViewKind::Around {
                user: user.clone(),
                radius,
            }
        }
        _ => {
            return Err(
                r#"view: must be {"top": 1..100} or {"around": user_id, "radius": 0..50}"#.into(),
            )
        }
    };
    Ok(ViewKey { tf, window, kind })
}

async fn handle_frame(
    text: &str,
    who: &Principal,
    engine: &Engine,
    actor: &SessionHandle,
    out: &mpsc::Sender<String>,
    inflight: &Arc<Semaphore>,
    max_inflight: usize,
) {
    let reply = |f: String| {
        let out = out.clone();
        async move {
            let _ = out.send(f).await;
        }
    };
    let frame: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return reply(error_frame(
                None,
                "VALIDATION_ERROR",
                400,
                &format!("Malformed JSON: {e}"),
            ))
            .await
        }
    };
    let id = frame.get("id").and_then(Value::as_str).map(str::to_owned);
    let id = id.as_deref();
    match frame.get("type").and_then(Value::as_str) {
        Some("ping") => reply(json!({"type": "pong", "id": id}).to_string()).await,
        Some("subscribe") => {
            let mut body = frame.clone();
            body.as_object_mut().map(|o| o.remove("type"));
            let sub: Subscribe = match serde_json::from_value(body) {
                Ok(s) => s,
                Err(e) => {
                    return reply(error_frame(
                        id,
                        "VALIDATION_ERROR",
                        400,
                        &format!("subscribe: {e}"),
                    ))
                    .await
                }
            };
            if let Some(Claims {
                lb: Some(allowed), ..
            }) = &who.client
            {
                if !allowed.contains(&sub.leaderboard) {
                    return reply(error_frame(
                        id,
                        "FORBIDDEN",
                        403,
                        "this token may not watch that leaderboard",
                    ))
                    .await;
                }
            }
            match view_key(&sub) {
                Ok(key) => actor.subscribe(sub.id, sub.leaderboard, key),
                Err(e) => reply(error_frame(id, "VALIDATION_ERROR", 400, &e)).await,
            }
        }
        Some("unsubscribe") => match id {
            Some(id) => actor.unsubscribe(id.to_owned()),
            None => {
                reply(error_frame(
                    None,
                    "VALIDATION_ERROR",
                    400,
                    "unsubscribe needs the subscription id",
                ))
                .await
            }
        },
        Some("ingest") => {
            if who.client.is_some() {
                return reply(error_frame(
                    id,
                    "FORBIDDEN",
                    403,
                    "client tokens are read-only: ingest needs tenant HMAC",
                ))
                .await;
            }
            ingest(text, id, who, engine, out, inflight, max_inflight).await
        }
        _ => {
            reply(error_frame(
                id,
                "VALIDATION_ERROR",
                400,
                "type must be subscribe, unsubscribe, ingest or ping",
            ))
            .await
        }
    }
}

#[derive(Deserialize)]
struct IngestFrame<'a> {
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

/// Validate, then log durably in a task; the ack goes out after fsync. Reading the next frame
/// waits while `max_inflight` events are unacknowledged.
async fn ingest(
    text: &str,
    id: Option<&str>,
    who: &Principal,
    engine: &Engine,
    out: &mpsc::Sender<String>,
    inflight: &Arc<Semaphore>,
    max_inflight: usize,
) {
    let frame: IngestFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let _ = out
                .send(error_frame(
                    id,
                    "VALIDATION_ERROR",
                    400,
                    &format!("ingest: {e}"),
                ))
                .await;
            return;
        }
    };
    let raws: Vec<&RawValue> = match (frame.event, frame.events) {
        (Some(e), None) => vec![e],
        (None, Some(list)) if (1..=crate::gateway::events::MAX_BULK).contains(&list.len()) => list,
        (None, Some(_)) => {
            let _ = out
                .send(error_frame(
                    id,
                    "VALIDATION_ERROR",
                    400,
                    "events must hold 1 to 100 events",
                ))
                .await;
            return;
        }
        _ => {
            let _ = out
                .send(error_frame(
                    id,
                    "VALIDATION_ERROR",
                    400,
                    "ingest needs \"event\" or \"events\"",
                ))
                .await;
            return;
        }
    };
    let n = raws.len().min(max_inflight) as u32;
    let Ok(permits) = inflight.clone().acquire_many_owned(n).await else {
        return;
    };
    let mut batch = Batch::validate(&raws, &who.tenant, Utc::now());
    let (engine, tenant, out, id) = (
        engine.clone(),
        who.tenant.clone(),
        out.clone(),
        id.map(str::to_owned),
    );
    tokio::spawn(async move {
        let valid = std::mem::take(&mut batch.valid);
        let outcomes = if valid.is_empty() {
            Ok(Vec::new())
        } else {
            engine.ingest(&tenant, valid).await
        };
        let frame = match outcomes {
            Ok(outcomes) => {
                let (results, ..) = batch.results(&outcomes);
                json!({"type": "ack", "id": id, "results": results}).to_string()
            }
            Err(e) => {
                let e = ApiError::from(e);
                error_frame(
                    id.as_deref(),
                    e.code(),
                    e.status().as_u16(),
                    &e.public_message(),
                )
            }
        };
        let _ = out.send(frame).await;
        drop(permits);
    });
}
