//! `SessionActor`: one per WebSocket connection. Owns the connection's view subscriptions and
//! feeds their frames into the connection's bounded outbound queue. A subscriber that cannot
//! keep up never grows server memory: frames it has no room for are dropped and replaced by
//! one fresh snapshot when room returns; a connection stuck for `stall_timeout` is judged
//! slow and aborted. At most `max_subscriptions` live subscriptions per connection. The
//! socket itself (reading, writing, closing) lives at the edge (`src/`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::leaderboard::query::QueryError;
use crate::leaderboard::views::{Published, ViewFrame, ViewKey};

#[derive(Debug)]
pub struct SessionActor;

/// Everything a session needs.
pub struct SessionArgs {
    pub tenant: String,
    pub engine: Engine,
    /// The connection's bounded outbound queue of text frames.
    pub out: mpsc::Sender<String>,
    /// Set to end the connection (the first reason set wins).
    pub close: watch::Sender<Option<Closing>>,
    /// How long a full outbound queue is tolerated before the connection is closed.
    pub stall_timeout: Duration,
    /// Live subscriptions allowed at once on this connection.
    pub max_subscriptions: usize,
}

/// Why and how a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// The client could not take frames for the stall timeout: abort the connection at
    /// once, without flushing what is queued (a close frame could not get through anyway).
    Slow(String),
    /// End with a WebSocket close frame carrying `code` and `reason` (at most 123 bytes).
    Close { code: u16, reason: String },
}

impl Closing {
    /// Set `closing` on `close` unless a reason is already set; true if this one won.
    pub fn signal(close: &watch::Sender<Option<Closing>>, closing: Closing) -> bool {
        close.send_if_modified(|c| {
            if c.is_some() {
                return false;
            }
            *c = Some(closing);
            true
        })
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("at most {0} subscriptions per connection; unsubscribe one first")]
    TooMany(usize),
    #[error("session ended")]
    Ended,
}

pub struct SessionState {
    args: Arc<SessionArgs>,
    subs: HashMap<String, JoinHandle<()>>,
}

/// Messages to a session actor.
pub enum SessionMsg {
    /// Watch `key` of `board`, labelled `id` in every frame (replaces a subscription with
    /// the same id); refused beyond `max_subscriptions`.
    Subscribe {
        id: String,
        board: String,
        key: ViewKey,
        reply: RpcReplyPort<Result<(), SubscribeError>>,
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
            SessionMsg::Subscribe {
                id,
                board,
                key,
                reply,
            } => {
                if let Some(old) = state.subs.remove(&id) {
                    old.abort();
                }
                // A subscription that ended by itself (unknown board, board replaced) no
                // longer counts.
                state.subs.retain(|_, t| !t.is_finished());
                if state.subs.len() >= state.args.max_subscriptions {
                    metrics::counter!("phoenix_ws_subscriptions_refused_total").increment(1);
                    let _ = reply.send(Err(SubscribeError::TooMany(state.args.max_subscriptions)));
                    return Ok(());
                }
                let args = state.args.clone();
                let sub_id = id.clone();
                let task = tokio::spawn(async move { forward(args, sub_id, board, key).await });
                state.subs.insert(id, task);
                let _ = reply.send(Ok(()));
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

/// Longest `message` an error frame carries: messages may quote client input.
pub const MAX_ERROR_MESSAGE: usize = 300;

/// An error frame in the seed's envelope fields (`message` cut to [`MAX_ERROR_MESSAGE`]).
pub fn error_frame(id: Option<&str>, code: &str, status: u16, message: &str) -> String {
    let message = truncate(message, MAX_ERROR_MESSAGE);
    json!({"type": "error", "id": id, "error": {"code": code, "message": message, "status": status}})
        .to_string()
}

/// `s` cut to at most `max` bytes at a character boundary, with "…" when cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
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
    // Subscribe and send the snapshot; also used to resync after lagging or dropping. The
    // connection is judged slow (once, whichever subscription notices first; the edge
    // counts it) when no room appears for the stall timeout.
    macro_rules! snapshot {
        ($resync:expr) => {{
            let permit = match tokio::time::timeout(args.stall_timeout, args.out.reserve()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return,
                Err(_) => {
                    Closing::signal(
                        &args.close,
                        Closing::Slow(format!(
                            "slow consumer: outbound queue full for {} s",
                            args.stall_timeout.as_secs()
                        )),
                    );
                    return;
                }
            };
            if $resync {
                metrics::counter!("phoenix_ws_resyncs_total").increment(1);
            }
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
    rx = snapshot!(false);
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
                    rx = snapshot!(true);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("phoenix_ws_frames_dropped_total").increment(n);
                rx = snapshot!(true);
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

    /// Start (or replace) subscription `id`; refused beyond the connection's limit.
    pub async fn subscribe(
        &self,
        id: String,
        board: String,
        key: ViewKey,
    ) -> Result<(), SubscribeError> {
        self.0
            .call(
                |reply| SessionMsg::Subscribe {
                    id,
                    board,
                    key,
                    reply,
                },
                Some(Duration::from_secs(10)),
            )
            .await
            .ok()
            .and_then(|r| r.success_or(()).ok())
            .unwrap_or(Err(SubscribeError::Ended))
    }

    pub fn unsubscribe(&self, id: String) {
        let _ = self.0.cast(SessionMsg::Unsubscribe { id });
    }

    pub fn stop(&self) {
        self.0.stop(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(400);
        let cut = truncate(&long, MAX_ERROR_MESSAGE);
        assert!(
            cut.len() <= MAX_ERROR_MESSAGE && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        let frame = error_frame(Some("x"), "VALIDATION_ERROR", 400, &"u".repeat(900_000));
        assert!(frame.len() < MAX_ERROR_MESSAGE + 200, "{}", frame.len());
    }

    #[test]
    fn the_first_closing_reason_wins() {
        let (tx, rx) = watch::channel(None);
        assert!(Closing::signal(&tx, Closing::Slow("slow".into())));
        assert!(!Closing::signal(
            &tx,
            Closing::Close {
                code: 1008,
                reason: "later".into()
            }
        ));
        assert_eq!(*rx.borrow(), Some(Closing::Slow("slow".into())));
    }
}
