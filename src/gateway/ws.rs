//! `GET /v1/ws`: the WebSocket gateway (SPEC §5, §9, docs/websocket.md). Authenticates before
//! the upgrade, then runs four parts per connection: a `SessionActor` (`session.rs`) owning
//! the bounded outbound queue and the view subscriptions, a writer task draining that queue,
//! a watcher that ends the session when its credential stops holding (`live`), and this
//! reader loop, which also runs streaming ingest with a bounded number of unacknowledged
//! events.
//!
//! Every way a session ends is explicit: a slow client is reset at once (nothing flushed);
//! revoked rights and protocol errors get a close frame with a code and a reason.

mod frames;
mod handshake;
mod live;
pub(crate) mod render;
pub(crate) mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use chrono::Utc;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use phoenix_actors::Engine;
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tenants::Tenants;
use crate::tokens::{self, Claims};
use handshake::{Abort, Io, Upgrade};
use live::Credential;
use render::error_frame;
use session::{Closing, SessionConfig, SessionHandle};

pub use frames::MAX_FRAME_ID;

/// How long a closing session may take to write its close frame (or its last acks).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Socket write buffer per connection beyond which writes wait (bounded memory).
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

/// Open WebSocket connections of this process (`ws_max_connections`).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One of the `ws_max_connections` slots, held for the life of a connection.
struct Slot;

impl Slot {
    fn take(max: usize) -> Result<Slot, ApiError> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map(|_| Slot)
        .map_err(|_| {
            metrics::counter!("phoenix_ws_connections_refused_total").increment(1);
            ApiError::Unavailable(format!(
                "Too many WebSocket connections (at most {max}); retry later"
            ))
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

/// Register this gateway's metrics at zero, so dashboards see them before they first move.
pub fn register_metrics() {
    metrics::gauge!("phoenix_ws_sessions").increment(0.0);
    for name in [
        "phoenix_ws_slow_closed_total",
        "phoenix_ws_frames_dropped_total",
        "phoenix_ws_resyncs_total",
        "phoenix_ws_subscriptions_refused_total",
        "phoenix_ws_revoked_total",
        "phoenix_ws_connections_refused_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for reason in ["too_big", "invalid_utf8", "protocol"] {
        metrics::counter!("phoenix_ws_protocol_closed_total", "reason" => reason).increment(0);
    }
}

#[utoipa::path(get, path = "/v1/ws", tag = "realtime", security(("tenant_id" = [], "tenant_timestamp" = [], "tenant_signature" = []), ("client_token_query" = [])), params(WsQuery), responses((status = 101, description = "Switching to the WebSocket protocol (frames: docs/websocket.md)"), crate::openapi::schemas::TenantErrors))]
pub async fn upgrade(
    State(app): State<AppState>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Validation(e.body_text()))?;
    let (principal, cred) = match q.token {
        Some(token) => {
            let claims = tokens::check(&app.tenants, &token, Utc::now().timestamp())?.claims;
            let p = Principal {
                tenant: claims.t.clone(),
                client: Some(claims),
            };
            (p, Credential::Client(token))
        }
        None => {
            let (tenant, secret) =
                app.tenants
                    .authenticate_with(req.headers(), "GET", "/v1/ws", b"")?;
            let p = Principal {
                tenant,
                client: None,
            };
            (p, Credential::Backend(secret))
        }
    };
    let engine = app.require_engine()?.clone();
    let upgrade = Upgrade::check(&mut req)?;
    let slot = Slot::take(app.config.ws_max_connections)?;
    let mut limits = Limits::from(&app);
    limits.remote = req.extensions().get::<session::RemoteHook>().cloned();
    let tenants = app.tenants.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(crate::gateway::BODY_LIMIT))
        .max_frame_size(Some(crate::gateway::BODY_LIMIT))
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    Ok(upgrade.respond(config, move |ws, abort| async move {
        session(ws, abort, engine, tenants, principal, cred, limits).await;
        drop(slot);
    }))
}

#[derive(Debug, Clone)]
struct Limits {
    queue: usize,
    inflight: usize,
    stall: Duration,
    subscriptions: usize,
    /// Cluster mode: views of tenants owned elsewhere (`session::RemoteViews`).
    remote: Option<session::RemoteHook>,
}

impl From<&AppState> for Limits {
    fn from(app: &AppState) -> Self {
        Limits {
            queue: app.config.ws_outbound_queue,
            inflight: app.config.ws_max_inflight_events,
            stall: Duration::from_secs(app.config.ws_stall_timeout_seconds),
            subscriptions: app.config.ws_max_subscriptions,
            remote: None,
        }
    }
}

/// Resolves once a reason to end the session is set (or nobody can set one any more).
async fn ending(rx: &mut watch::Receiver<Option<Closing>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

/// The close a read error calls for: 1009 for a frame or message over the limit, 1007 for
/// invalid UTF-8, 1002 with the reason for other protocol errors; `None` when the peer is
/// gone (nothing can be sent).
fn protocol_close(e: &tungstenite::Error) -> Option<Closing> {
    use tungstenite::Error as E;
    let (code, label, reason) = match e {
        E::Capacity(_) => (
            1009,
            "too_big",
            format!(
                "message too big: frames and messages over {} bytes are refused",
                crate::gateway::BODY_LIMIT
            ),
        ),
        E::Utf8(_) => (
            1007,
            "invalid_utf8",
            "text frame is not valid UTF-8".to_owned(),
        ),
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)
        | E::ConnectionClosed
        | E::AlreadyClosed
        | E::Io(_) => return None,
        E::Protocol(p) => (1002, "protocol", format!("protocol error: {p}")),
        other => (1002, "protocol", format!("protocol error: {other}")),
    };
    metrics::counter!("phoenix_ws_protocol_closed_total", "reason" => label).increment(1);
    let reason = render::truncate(&reason, 123).into_owned();
    Some(Closing::Close { code, reason })
}

async fn session(
    ws: WebSocketStream<Io>,
    abort: Abort,
    engine: Engine,
    tenants: Tenants,
    who: Principal,
    cred: Credential,
    limits: Limits,
) {
    let (sink, mut stream) = ws.split();
    let (close, mut closing) = watch::channel::<Option<Closing>>(None);
    let config = SessionConfig {
        tenant: who.tenant.clone(),
        engine: engine.clone(),
        queue: limits.queue,
        close: close.clone(),
        stall_timeout: limits.stall,
        max_subscriptions: limits.subscriptions,
        remote: limits.remote.clone(),
    };
    let (actor, frames) = match SessionHandle::start(config).await {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "session actor did not start");
            return;
        }
    };
    let out = actor.outbound();
    let mut writer = tokio::spawn(write(sink, frames, closing.clone()));
    let rights = tokio::spawn(live::watch(
        tenants,
        who.tenant.clone(),
        cred,
        close.clone(),
    ));
    // A healed store comes with a new engine: a session on the old one ends (1012) so the
    // old store's handles go; the client reconnects to the new engine.
    let restarted = {
        let (mut stopped, close) = (engine.stopped(), close.clone());
        tokio::spawn(async move {
            if stopped.wait_for(|s| *s).await.is_ok() {
                let reason = "service restart: reconnect".to_owned();
                Closing::signal(&close, Closing::Close { code: 1012, reason });
            }
        })
    };
    let inflight = Arc::new(Semaphore::new(limits.inflight));
    loop {
        let msg = tokio::select! {
            _ = ending(&mut closing) => break,
            msg = stream.next() => msg,
        };
        let handled = async {
            match msg {
                Some(Ok(Message::Text(text))) => {
                    frames::handle(
                        &text,
                        &who,
                        &engine,
                        &actor,
                        &out,
                        &inflight,
                        limits.inflight,
                    )
                    .await;
                    true
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = out
                        .send(error_frame(
                            None,
                            "VALIDATION_ERROR",
                            400,
                            "binary frames are not supported; send JSON text",
                        ))
                        .await;
                    true
                }
                // tungstenite answers pings and queues the reply to a close itself.
                Some(Ok(Message::Close(_))) | None => false,
                Some(Ok(_)) => true,
                Some(Err(e)) => {
                    if let Some(c) = protocol_close(&e) {
                        Closing::signal(&close, c);
                    }
                    false
                }
            }
        };
        // Handling waits on the outbound queue and the in-flight limit: never past an end.
        let go_on = tokio::select! {
            _ = ending(&mut closing) => false,
            go_on = handled => go_on,
        };
        if !go_on {
            break;
        }
    }
    rights.abort();
    restarted.abort();
    actor.stop();
    drop(out);
    let slow = matches!(&*close.borrow(), Some(Closing::Slow(_)));
    if slow {
        // Judged slow: abort now. Nothing queued is flushed and no close frame is written
        // (it could not get past the full socket buffers anyway): the peer gets a reset.
        metrics::counter!("phoenix_ws_slow_closed_total").increment(1);
        abort.reset_on_close();
        writer.abort();
    }
    if tokio::time::timeout(CLOSE_GRACE * 2, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        let _ = (&mut writer).await;
    }
    drop(stream);
    drop(abort);
}

/// Write queued frames until the session ends, racing every write against the end: a
/// writer blocked on a full socket still sees a slow-consumer verdict at once.
async fn write(
    mut sink: SplitSink<WebSocketStream<Io>, Message>,
    mut frames: mpsc::Receiver<String>,
    mut closing: watch::Receiver<Option<Closing>>,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = ending(&mut closing) => break,
            f = frames.recv() => f,
        };
        // `None`: the session ended normally and everything queued (acks) is written.
        let Some(frame) = frame else { break };
        tokio::select! {
            biased;
            _ = ending(&mut closing) => break,
            sent = sink.send(Message::Text(frame.into())) => if sent.is_err() { return },
        }
    }
    let end = closing.borrow().clone();
    match end {
        Some(Closing::Slow(reason)) => {
            tracing::info!(%reason, "aborting a slow WebSocket");
        }
        Some(Closing::Close { code, reason }) => {
            tracing::info!(code, %reason, "closing WebSocket");
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
        }
        None => {
            // Flushes tungstenite's reply to the client's close, or closes normally.
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
        }
    }
}
