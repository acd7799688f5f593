//! `SessionActor`: one per WebSocket connection. Owns the connection's view subscriptions and
//! feeds their frames into the connection's bounded outbound queue. A subscriber that cannot
//! keep up never grows server memory: frames it has no room for are dropped and replaced by
//! one fresh snapshot when room returns; a connection stuck for `stall_timeout` is closed
//! with a reason. The socket itself (reading, writing) lives at the edge (`src/`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::leaderboard::actor::QueryError;
use crate::leaderboard::views::{Published, ViewFrame, ViewKey};

#[derive(Debug)]
pub struct SessionActor;

/// Everything a session needs.
pub struct SessionArgs {
    pub tenant: String,
    pub engine: Engine,
    /// The connection's bounded outbound queue of text frames.
    pub out: mpsc::Sender<String>,
    /// Set to close the connection with a reason.
    pub close: watch::Sender<Option<String>>,
    /// How long a full outbound queue is tolerated before the connection is closed.
    pub stall_timeout: Duration,
}

pub struct SessionState {
    args: Arc<SessionArgs>,
    subs: HashMap<String, JoinHandle<()>>,
}

/// Messages to a session actor.
pub enum SessionMsg {
    /// Watch `key` of `board`, labelled `id` in every frame (replaces a subscription with
    /// the same id).
    Subscribe {
        id: String,
        board: String,
        key: ViewKey,
    },
    /// Stop watching `id`.
    Unsubscribe { id: String },
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        metrics::gauge!("phoenix_ws_sessions").increment(1.0);
        Ok(SessionState {
            args: Arc::new(args),
            subs: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, t) in state.subs.drain() {
            t.abort();
        }
        metrics::gauge!("phoenix_ws_sessions").decrement(1.0);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SessionMsg::Subscribe { id, board, key } => {
                if let Some(old) = state.subs.remove(&id) {
                    old.abort();
                }
                let args = state.args.clone();
                let sub_id = id.clone();
                let task = tokio::spawn(async move { forward(args, sub_id, board, key).await });
                state.subs.insert(id, task);
            }
            SessionMsg::Unsubscribe { id } => {
                if let Some(t) = state.subs.remove(&id) {
                    t.abort();
                }
            }
        }
        Ok(())
    }
}

/// Render a view frame for subscription `id`.
pub fn render(id: &str, board: &str, key: &ViewKey, frame: &ViewFrame) -> String {
    with_id(id, &render_body(board, key, frame))
}

/// The frame without its subscription id: the same for every session watching the view, so
/// it is rendered once per published frame (`Published::rendered`).
fn render_body(board: &str, key: &ViewKey, frame: &ViewFrame) -> String {
    let tf = key.tf.as_str();
    match frame {
        ViewFrame::Snapshot { seq, window, entries } => json!({
            "type": "snapshot", "leaderboard": board, "timeframe": tf,
            "window": window.to_string(), "seq": seq, "entries": entries,
        }),
        ViewFrame::Update { seq, window, changes } => json!({
            "type": "update", "leaderboard": board, "timeframe": tf,
            "window": window.to_string(), "seq": seq,
            "changes": changes.iter().map(|c| json!({
                "user_id": c.user_id, "rank": c.rank, "score": c.score, "previous_rank": c.previous_rank,
            })).collect::<Vec<_>>(),
        }),
    }
    .to_string()
}

/// `{"id":…,` spliced in front of a rendered body `{…}`.
fn with_id(id: &str, body: &str) -> String {
    let id = Value::from(id).to_string();
    let mut out = String::with_capacity(body.len() + id.len() + 8);
    out.push_str("{\"id\":");
    out.push_str(&id);
    out.push(',');
    out.push_str(&body[1..]);
    out
}

/// An error frame in the seed's envelope fields.
pub fn error_frame(id: Option<&str>, code: &str, status: u16, message: &str) -> String {
    json!({"type": "error", "id": id, "error": {"code": code, "message": message, "status": status}})
        .to_string()
}

fn query_error_frame(id: &str, e: &QueryError) -> String {
    match e {
        QueryError::Invalid(m) => error_frame(Some(id), "VALIDATION_ERROR", 400, m),
        QueryError::Engine(_) => error_frame(
            Some(id),
            "UNAVAILABLE",
            503,
            "Leaderboard temporarily unavailable; resubscribe",
        ),
        other => error_frame(Some(id), "NOT_FOUND", 404, &other.to_string()),
    }
}

/// Copy one subscription's frames into the outbound queue until it ends.
async fn forward(args: Arc<SessionArgs>, id: String, board: String, key: ViewKey) {
    let mut rx: broadcast::Receiver<Arc<Published>>;
    // Subscribe and send the snapshot; also used to resync after lagging or dropping.
    macro_rules! snapshot {
        () => {{
            let permit = match tokio::time::timeout(args.stall_timeout, args.out.reserve()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return,
                Err(_) => {
                    metrics::counter!("phoenix_ws_slow_closed_total").increment(1);
                    let _ = args.close.send(Some(format!(
                        "slow consumer: outbound queue full for {} s",
                        args.stall_timeout.as_secs()
                    )));
                    return;
                }
            };
            match args
                .engine
                .subscribe_view(&args.tenant, &board, key.clone())
                .await
            {
                Ok((snap, new_rx)) => {
                    permit.send(render(&id, &board, &key, &snap));
                    new_rx
                }
                Err(e) => {
                    permit.send(query_error_frame(&id, &e));
                    return;
                }
            }
        }};
    }
    rx = snapshot!();
    loop {
        match rx.recv().await {
            Ok(p) => match args.out.try_send(with_id(
                &id,
                p.rendered
                    .get_or_init(|| render_body(&board, &key, &p.frame)),
            )) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("phoenix_ws_frames_dropped_total").increment(1);
                    metrics::counter!("phoenix_ws_resyncs_total").increment(1);
                    rx = snapshot!();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("phoenix_ws_frames_dropped_total").increment(n);
                metrics::counter!("phoenix_ws_resyncs_total").increment(1);
                rx = snapshot!();
            }
            Err(broadcast::error::RecvError::Closed) => {
                // The board was replaced or deleted (or restarted): tell the client.
                let _ = args.out.try_send(error_frame(
                    Some(&id),
                    "UNAVAILABLE",
                    503,
                    "subscription ended (leaderboard changed or restarted); resubscribe",
                ));
                return;
            }
        }
    }
}

/// The edge's handle on a session (keeps `ractor` out of `src/`).
#[derive(Clone)]
pub struct SessionHandle(ActorRef<SessionMsg>);

impl SessionHandle {
    /// Start a session actor.
    pub async fn start(args: SessionArgs) -> Result<SessionHandle, String> {
        Actor::spawn(None, SessionActor, args)
            .await
            .map(|(a, _)| SessionHandle(a))
            .map_err(|e| e.to_string())
    }

    pub fn subscribe(&self, id: String, board: String, key: ViewKey) {
        let _ = self.0.cast(SessionMsg::Subscribe { id, board, key });
    }

    pub fn unsubscribe(&self, id: String) {
        let _ = self.0.cast(SessionMsg::Unsubscribe { id });
    }

    pub fn stop(&self) {
        self.0.stop(None);
    }
}
