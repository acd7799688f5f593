//! `SessionActor`: one per WebSocket connection. Owns the connection's bounded outbound queue
//! and its view subscriptions, and feeds their frames into that queue. A subscriber that cannot
//! keep up never grows server memory: frames it has no room for are dropped and replaced by
//! one fresh snapshot when room returns; a connection stuck for `stall_timeout` is judged
//! slow and aborted. At most `max_subscriptions` live subscriptions per connection. The
//! socket itself (reading, writing, closing) is `ws.rs`; the frames' JSON is `render.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use phoenix_actors::leaderboard::views::{Published, ViewKey};
use phoenix_actors::Engine;

use super::render::{ended_frame, query_error_frame, render, render_body, with_id};

#[derive(Debug)]
pub struct SessionActor;

/// What a session is started with.
pub struct SessionConfig {
    pub tenant: String,
    pub engine: Engine,
    /// Frames the outbound queue holds (`ws_outbound_queue`).
    pub queue: usize,
    /// Set to end the connection (the first reason set wins).
    pub close: watch::Sender<Option<Closing>>,
    /// How long a full outbound queue is tolerated before the connection is closed.
    pub stall_timeout: Duration,
    /// Live subscriptions allowed at once on this connection.
    pub max_subscriptions: usize,
    /// Set in cluster mode: views of tenants owned by another node come from there.
    pub remote: Option<RemoteHook>,
}

/// Everything a session and its subscription tasks share.
pub struct SessionArgs {
    tenant: String,
    engine: Engine,
    /// The connection's bounded outbound queue of text frames, owned by the session: its
    /// subscriptions and the connection's replies (acks, errors) go out through it.
    out: mpsc::Sender<String>,
    close: watch::Sender<Option<Closing>>,
    stall_timeout: Duration,
    max_subscriptions: usize,
    remote: Option<RemoteHook>,
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
                let task = match &args.remote {
                    Some(RemoteHook(r)) if r.is_remote(&args.tenant) => {
                        tokio::spawn(r.relay(RemoteSub {
                            id: id.clone(),
                            tenant: args.tenant.clone(),
                            board,
                            key,
                            out: args.out.clone(),
                            close: args.close.clone(),
                            stall_timeout: args.stall_timeout,
                        }))
                    }
                    _ => {
                        let sub_id = id.clone();
                        tokio::spawn(async move { forward(args, sub_id, board, key).await })
                    }
                };
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

/// Room for one frame in the outbound queue, waited for up to `stall`; past that the
/// connection is judged slow (once, whichever subscription notices first; the edge counts
/// it). `None`: judged slow, or the connection is gone.
pub(crate) async fn room<'a>(
    out: &'a mpsc::Sender<String>,
    close: &watch::Sender<Option<Closing>>,
    stall: Duration,
) -> Option<mpsc::Permit<'a, String>> {
    match tokio::time::timeout(stall, out.reserve()).await {
        Ok(Ok(p)) => Some(p),
        Ok(Err(_)) => None,
        Err(_) => {
            let reason = format!(
                "slow consumer: outbound queue full for {} s",
                stall.as_secs()
            );
            Closing::signal(close, Closing::Slow(reason));
            None
        }
    }
}

/// Views of tenants whose boards run on another node (cluster mode, `cluster/views.rs`):
/// put on the upgrade request by the cluster's middleware, asked for every subscription.
pub trait RemoteViews: Send + Sync {
    /// True when `tenant`'s boards run on another node.
    fn is_remote(&self, tenant: &str) -> bool;
    /// Relay `sub`'s frames from the owner into the session's queue until it ends.
    fn relay(&self, sub: RemoteSub) -> futures_util::future::BoxFuture<'static, ()>;
    /// Log `events` of `tenant` on its owner: the outcomes once durable there, or the
    /// error frame (for ingest frame `id`) to answer with.
    fn ingest(
        &self,
        tenant: String,
        id: Option<String>,
        events: Vec<phoenix_actors::event::Event>,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<phoenix_actors::Outcome>, String>>;
}

/// The request extension that carries [`RemoteViews`].
#[derive(Clone)]
pub struct RemoteHook(pub Arc<dyn RemoteViews>);

impl std::fmt::Debug for RemoteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteHook")
    }
}

/// One subscription relayed from another node, with the session's queue and slow rule.
pub struct RemoteSub {
    pub id: String,
    pub tenant: String,
    pub board: String,
    pub key: ViewKey,
    pub out: mpsc::Sender<String>,
    pub close: watch::Sender<Option<Closing>>,
    pub stall_timeout: Duration,
}

/// Copy one subscription's frames into the outbound queue until it ends.
async fn forward(args: Arc<SessionArgs>, id: String, board: String, key: ViewKey) {
    let mut rx: broadcast::Receiver<Arc<Published>>;
    // Subscribe and send the snapshot; also used to resync after lagging or dropping.
    macro_rules! snapshot {
        ($resync:expr) => {{
            let Some(permit) = room(&args.out, &args.close, args.stall_timeout).await else {
                return;
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
                    permit.send(query_error_frame(&id, e));
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
                let _ = args.out.try_send(ended_frame(&id));
                return;
            }
        }
    }
}

/// The connection's handle on its session actor.
#[derive(Clone)]
pub struct SessionHandle {
    actor: ActorRef<SessionMsg>,
    out: mpsc::Sender<String>,
    remote: Option<RemoteHook>,
}

impl SessionHandle {
    /// Start a session actor and its bounded outbound queue: the handle, and the queue's
    /// receiving end for the connection's writer.
    pub async fn start(
        config: SessionConfig,
    ) -> Result<(SessionHandle, mpsc::Receiver<String>), ractor::SpawnErr> {
        let (out, frames) = mpsc::channel(config.queue);
        let remote = config.remote.clone();
        let args = SessionArgs {
            tenant: config.tenant,
            engine: config.engine,
            out: out.clone(),
            close: config.close,
            stall_timeout: config.stall_timeout,
            max_subscriptions: config.max_subscriptions,
            remote: config.remote,
        };
        let (actor, _) = Actor::spawn(None, SessionActor, args).await?;
        Ok((SessionHandle { actor, out, remote }, frames))
    }

    /// The outbound queue, for the connection's own frames (acks, pongs, errors).
    pub fn outbound(&self) -> mpsc::Sender<String> {
        self.out.clone()
    }

    /// Where this session's tenant is served when another node owns it (cluster mode).
    pub fn remote(&self) -> Option<RemoteHook> {
        self.remote.clone()
    }

    /// Start (or replace) subscription `id`; refused beyond the connection's limit.
    pub async fn subscribe(
        &self,
        id: String,
        board: String,
        key: ViewKey,
    ) -> Result<(), SubscribeError> {
        self.actor
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
        let _ = self.actor.cast(SessionMsg::Unsubscribe { id });
    }

    /// Stop the session; with the handle its hold on the outbound queue goes, so the writer
    /// ends once the connection's own senders are gone too.
    pub fn stop(self) {
        self.actor.stop(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
