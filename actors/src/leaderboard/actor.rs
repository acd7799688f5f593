//! `LeaderboardActor`: one per leaderboard. Follows its tenant's durable log from its last
//! checkpoint, scores each event into its windows, freezes closed windows into history,
//! checkpoints, and answers standings queries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::definition::Definition;
use super::history::History;
use super::rank::Entry;
use super::state::BoardState;
use super::views::{Published, View, ViewFrame, ViewKey, ViewKind};
use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;
use crate::feed::{Decoded, Feed, Plan, TypeFilter};
use crate::store::EventLog;
use std::collections::HashMap;
use tokio::sync::broadcast;

/// Log entries applied per message, so queries (and other actors on the same workers)
/// interleave with a long catch-up.
const CATCH_UP_CHUNK: usize = 1024;

#[derive(Debug)]
pub struct LeaderboardActor;

/// The server clock, injectable so tests can roll windows over.
pub type Clock = Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Everything a (re)started board needs.
#[derive(Clone)]
pub struct BoardArgs {
    /// "Now" for current windows, freezing and retention.
    pub clock: Clock,
    pub tenant: String,
    pub def: Arc<Definition>,
    pub log: Arc<dyn EventLog>,
    pub db: sled::Db,
    /// The tenant's durable head.
    pub head: watch::Receiver<u64>,
    /// The tenant's reader: decoded entries, and wake-ups only for types this board matches.
    pub feed: Arc<Feed>,
    /// Minimum time between checkpoints.
    pub checkpoint_interval: Duration,
    /// Frozen windows that ended longer ago than this are dropped.
    pub history_retention: Duration,
    /// Least time between two pushes of a view (coalescing); a change after a quiet period
    /// goes out at once.
    pub push_interval: Duration,
}

pub struct BoardActorState {
    args: BoardArgs,
    board: BoardState,
    meta: sled::Tree,
    history: History,
    /// A `CatchUp` is queued; the feed does not queue another.
    pending: Arc<AtomicBool>,
    /// The event types this board's rules can match.
    filter: TypeFilter,
    /// This incarnation's registration with the feed.
    token: u64,
    tasks: Vec<JoinHandle<()>>,
    last_checkpoint: Instant,
    checkpointed: u64,
    /// Live views with subscribers, shared by every session watching the same thing.
    views: HashMap<ViewKey, View>,
    /// Standings changed since the last publish.
    dirty: bool,
    last_publish: Instant,
    /// A `Publish` is scheduled.
    publish_pending: bool,
}

/// A view subscription: the current snapshot and the stream of later frames.
pub type Subscription = (ViewFrame, broadcast::Receiver<Arc<Published>>);

/// Which window of a timeframe a query means.
#[derive(Debug, Clone)]
pub enum WindowSel {
    /// The window containing the server's current time (follows rollover).
    Current,
    Key(WindowKey),
}

/// A page of standings.
#[derive(Debug, Clone)]
pub struct Standings {
    pub window: WindowKey,
    pub total: usize,
    pub entries: Vec<Entry>,
}

/// One user's place and neighbourhood.
#[derive(Debug, Clone)]
pub struct UserStanding {
    pub window: WindowKey,
    pub rank: usize,
    pub score: f64,
    pub entries: Vec<Entry>,
}

/// Why a leaderboard call has no answer: 400s, 404s and faults.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The definition or a parameter is invalid (the message names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("leaderboard {0} not found")]
    NoBoard(String),
    #[error("this leaderboard has no {0} timeframe")]
    NoTimeframe(&'static str),
    #[error("no standings for window {0}")]
    NoWindow(String),
    #[error("user {0} has no score in window {1}")]
    NoUser(String, String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Messages to a leaderboard actor.
pub enum LeaderboardMsg {
    /// New durable events may be in the log: apply the next chunk.
    CatchUp,
    /// Periodic: freeze closed windows, apply retention, checkpoint.
    Tick,
    /// A page of a window's standings.
    Standings {
        tf: Timeframe,
        window: WindowSel,
        offset: usize,
        limit: usize,
        reply: RpcReplyPort<Result<Standings, QueryError>>,
    },
    /// A user's rank, score and `around` neighbours on each side.
    User {
        tf: Timeframe,
        window: WindowSel,
        user: String,
        around: usize,
        reply: RpcReplyPort<Result<UserStanding, QueryError>>,
    },
    /// The last applied log position.
    Applied(RpcReplyPort<u64>),
    /// Watch a view: its snapshot now, its changes later.
    Subscribe {
        key: ViewKey,
        reply: RpcReplyPort<Result<Subscription, QueryError>>,
    },
    /// Push pending view changes (scheduled by coalescing).
    Publish,
    /// Fault injection for supervision tests.
    #[cfg(test)]
    Panic,
}

const CKPT_KEY: &[u8] = b"checkpoint";

/// The sled tree holding a board's checkpoint.
pub fn meta_tree(db: &sled::Db, tenant: &str, board: &str) -> Result<sled::Tree, EngineError> {
    Ok(db.open_tree(format!("lb/{tenant}/{board}"))?)
}

/// Load the checkpoint if it was taken under the same definition; otherwise start empty
/// (and drop any history of an older definition).
fn recover(
    args: &BoardArgs,
    meta: &sled::Tree,
    history: &History,
) -> Result<BoardState, EngineError> {
    let def_json = args.def.to_json().to_string();
    if let Some(buf) = meta.get(CKPT_KEY)? {
        let len = buf
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize);
        if let Some(len) = len {
            if buf.get(4..4 + len) == Some(def_json.as_bytes()) {
                match BoardState::decode(args.def.clone(), &buf[4 + len..]) {
                    Ok(s) => return Ok(s),
                    Err(e) => {
                        tracing::warn!(board = %args.def.id, error = %e, "unreadable checkpoint; rebuilding from the log")
                    }
                }
            }
        }
    }
    history.clear()?;
    meta.remove(CKPT_KEY)?;
    Ok(BoardState::new(args.def.clone()))
}

impl Actor for LeaderboardActor {
    type Msg = LeaderboardMsg;
    type State = BoardActorState;
    type Arguments = BoardArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: BoardArgs,
    ) -> Result<BoardActorState, ActorProcessingErr> {
        let meta = meta_tree(&args.db, &args.tenant, &args.def.id)?;
        let history = History::open(&args.db, &args.tenant, &args.def.id)?;
        let board = recover(&args, &meta, &history)?;
        tracing::info!(tenant = %args.tenant, board = %args.def.id, applied = board.applied, "leaderboard started");
        Ok(BoardActorState {
            filter: TypeFilter::of(&args.def),
            checkpointed: board.applied,
            args,
            board,
            meta,
            history,
            pending: Arc::new(AtomicBool::new(false)),
            token: 0,
            tasks: Vec::new(),
            last_checkpoint: Instant::now(),
            views: HashMap::new(),
            dirty: false,
            last_publish: Instant::now(),
            publish_pending: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut BoardActorState,
    ) -> Result<(), ActorProcessingErr> {
        let (me, pending) = (myself.clone(), state.pending.clone());
        let wake = move || {
            pending.swap(true, Ordering::SeqCst) || me.cast(LeaderboardMsg::CatchUp).is_ok()
        };
        state.token =
            state
                .args
                .feed
                .register(&state.args.def.id, state.filter.clone(), Box::new(wake));
        // Whatever the checkpoint left to apply.
        state.pending.store(true, Ordering::SeqCst);
        myself
            .cast(LeaderboardMsg::CatchUp)
            .map_err(|e| EngineError::ActorUnavailable(e.to_string()))?;
        let me = myself.clone();
        state.tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if me.cast(LeaderboardMsg::Tick).is_err() {
                    return;
                }
            }
        }));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut BoardActorState,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.tasks.drain(..) {
            t.abort();
        }
        state.args.feed.unregister(&state.args.def.id, state.token);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: LeaderboardMsg,
        state: &mut BoardActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LeaderboardMsg::CatchUp => {
                catch_up(&myself, state)?;
                maybe_publish(&myself, state)?;
                // Let the other boards' chunks (other tenants') run between two of ours.
                tokio::task::yield_now().await;
            }
            LeaderboardMsg::Tick => {
                // Boards are woken only for types they match: move past the rest now.
                catch_up(&myself, state)?;
                tick(state)?;
                let now = (state.args.clock)();
                let rolled = state
                    .views
                    .iter()
                    .any(|(k, v)| k.window.is_none() && k.tf.window_of(now) != v.window);
                if rolled {
                    publish(state)?;
                }
            }
            LeaderboardMsg::Subscribe { key, reply } => {
                let _ = reply.send(subscribe(state, key));
            }
            LeaderboardMsg::Publish => {
                state.publish_pending = false;
                publish(state)?;
            }
            LeaderboardMsg::Standings {
                tf,
                window,
                offset,
                limit,
                reply,
            } => {
                let _ = reply.send(standings(state, tf, window, offset, limit));
            }
            LeaderboardMsg::User {
                tf,
                window,
                user,
                around,
                reply,
            } => {
                let _ = reply.send(user_standing(state, tf, window, &user, around));
            }
            LeaderboardMsg::Applied(reply) => {
                catch_up(&myself, state)?;
                let _ = reply.send(state.board.applied);
            }
            #[cfg(test)]
            LeaderboardMsg::Panic => panic!("injected leaderboard panic"),
        }
        Ok(())
    }
}

fn labels(state: &BoardActorState) -> [(&'static str, String); 2] {
    [
        ("tenant", state.args.tenant.clone()),
        ("board", state.args.def.id.clone()),
    ]
}

/// What one catch-up pass saw, for the metrics.
#[derive(Default)]
struct Seen {
    late: u64,
    no_match: u64,
    malformed: u64,
    overflow: u64,
}

/// Score one decoded entry, or pass over it if it cannot match or could not be decoded.
fn apply_entry(state: &mut BoardActorState, d: &Decoded, seen: &mut Seen) {
    let Some(event) = d.event.as_ref() else {
        // Counted in phoenix_log_undecodable_total where it was decoded.
        state.board.skip(d.seq, d.accepted_ms);
        return;
    };
    if d.event_type().is_some_and(|t| !state.filter.wants(t)) {
        state.board.skip(d.seq, d.accepted_ms);
        return;
    }
    let applied = state.board.apply(d.seq, d.accepted_ms, event);
    state.dirty |= applied.windows_updated > 0;
    seen.late += u64::from(applied.late);
    seen.no_match += u64::from(applied.no_score);
    seen.malformed += u64::from(applied.malformed);
    seen.overflow += u64::from(applied.overflow);
}

fn catch_up(
    myself: &ActorRef<LeaderboardMsg>,
    state: &mut BoardActorState,
) -> Result<(), EngineError> {
    state.pending.store(false, Ordering::SeqCst);
    let durable = *state.args.head.borrow();
    let before = state.board.applied;
    let mut seen = Seen::default();
    let feed = state.args.feed.clone();
    let target = match feed.plan(&state.args.def.id, state.token, before, CATCH_UP_CHUNK) {
        Plan::Skip { to, accepted_ms } => {
            state.board.skip(to, accepted_ms);
            feed.read()
        }
        Plan::Entries(entries) => {
            for d in &entries {
                apply_entry(state, d, &mut seen);
            }
            feed.read()
        }
        Plan::Cold => {
            let tenant = state.args.tenant.clone();
            let entries = state
                .args
                .log
                .read_from(&tenant, before + 1, CATCH_UP_CHUNK)?;
            for e in entries.into_iter().take_while(|e| e.seq <= durable) {
                let d = Decoded::from_entry(&tenant, "leaderboard", e);
                apply_entry(state, &d, &mut seen);
            }
            durable
        }
    };
    let l = labels(state);
    metrics::counter!("phoenix_leaderboard_late_total", &l).increment(seen.late);
    for (reason, n) in [
        ("no_match", seen.no_match),
        ("malformed", seen.malformed),
        ("overflow", seen.overflow),
    ] {
        if n > 0 {
            let [t, b] = l.clone();
            metrics::counter!("phoenix_leaderboard_unscored_total", "tenant" => t.1, "board" => b.1, "reason" => reason)
                .increment(n);
        }
    }
    metrics::gauge!("phoenix_leaderboard_apply_lag", &l)
        .set(durable.saturating_sub(state.board.applied) as f64);
    let progressed = state.board.applied > before;
    if progressed && state.board.applied < target && !state.pending.swap(true, Ordering::SeqCst) {
        myself
            .cast(LeaderboardMsg::CatchUp)
            .map_err(|e| EngineError::ActorUnavailable(e.to_string()))?;
    }
    Ok(())
}

fn tick(state: &mut BoardActorState) -> Result<(), EngineError> {
    let head = *state.args.head.borrow();
    if state.board.applied >= head {
        // Caught up: nothing accepted before now - margin is still on its way to us.
        let margin_ms = 5_000;
        state.board.watermark_ms = state
            .board
            .watermark_ms
            .max((state.args.clock)().timestamp_millis() - margin_ms);
    }
    for (tf, key) in state.board.due_for_freeze() {
        if let Some(w) = state.board.freeze(tf, key) {
            state.history.write(tf, key, &w)?;
            tracing::debug!(board = %state.args.def.id, window = %key, users = w.accs.len(), "window frozen");
        }
    }
    let retention =
        chrono::Duration::from_std(state.args.history_retention).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = (state.args.clock)().checked_sub_signed(retention) {
        for (tf, key) in state.board.forget_frozen_before(cutoff) {
            state.history.drop_window(tf, key)?;
        }
    }
    let due = state.last_checkpoint.elapsed() >= state.args.checkpoint_interval;
    if due && state.board.applied > state.checkpointed {
        checkpoint(state)?;
    }
    Ok(())
}

fn checkpoint(state: &mut BoardActorState) -> Result<(), EngineError> {
    let started = Instant::now();
    let def_json = state.args.def.to_json().to_string();
    let body = state.board.encode();
    let mut buf = Vec::with_capacity(4 + def_json.len() + body.len());
    buf.extend_from_slice(&(def_json.len() as u32).to_be_bytes());
    buf.extend_from_slice(def_json.as_bytes());
    buf.extend_from_slice(&body);
    state.meta.insert(CKPT_KEY, buf)?;
    state.checkpointed = state.board.applied;
    state.last_checkpoint = Instant::now();
    metrics::histogram!("phoenix_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

fn resolve(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
) -> Result<WindowKey, QueryError> {
    if !state.board.def.timeframes.contains(&tf) {
        return Err(QueryError::NoTimeframe(tf.as_str()));
    }
    Ok(match sel {
        WindowSel::Current => tf.window_of((state.args.clock)()),
        WindowSel::Key(k) => k,
    })
}

fn standings(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    offset: usize,
    limit: usize,
) -> Result<Standings, QueryError> {
    let current = matches!(sel, WindowSel::Current);
    let window = resolve(state, tf, sel)?;
    if let Some(w) = state.board.window(tf, window) {
        return Ok(Standings {
            window,
            total: w.ranks.len(),
            entries: w.ranks.range(offset, limit),
        });
    }
    if let Some(total) = state.history.total(tf, window)? {
        return Ok(Standings {
            window,
            total,
            entries: state.history.range(tf, window, offset, limit)?,
        });
    }
    if current {
        // The current window simply has no scores yet.
        return Ok(Standings {
            window,
            total: 0,
            entries: Vec::new(),
        });
    }
    Err(QueryError::NoWindow(window.to_string()))
}

fn user_standing(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    user: &str,
    around: usize,
) -> Result<UserStanding, QueryError> {
    let window = resolve(state, tf, sel)?;
    let none = || QueryError::NoUser(user.to_owned(), window.to_string());
    if let Some(w) = state.board.window(tf, window) {
        let (rank, score, _) = w.ranks.get(user).ok_or_else(none)?;
        let entries = w.ranks.around(user, around).unwrap_or_default();
        return Ok(UserStanding {
            window,
            rank,
            score,
            entries,
        });
    }
    let (rank, score, entries) = state
        .history
        .around(tf, window, user, around)?
        .ok_or_else(none)?;
    Ok(UserStanding {
        window,
        rank,
        score,
        entries,
    })
}

/// The entries a view shows right now.
fn view_entries(
    state: &BoardActorState,
    tf: Timeframe,
    window: WindowKey,
    kind: &ViewKind,
) -> Result<Vec<Entry>, EngineError> {
    if let Some(w) = state.board.window(tf, window) {
        return Ok(match kind {
            ViewKind::Top(n) => w.ranks.range(0, *n),
            ViewKind::Around { user, radius } => w.ranks.around(user, *radius).unwrap_or_default(),
        });
    }
    match kind {
        ViewKind::Top(n) => state.history.range(tf, window, 0, *n),
        ViewKind::Around { user, radius } => Ok(state
            .history
            .around(tf, window, user, *radius)?
            .map(|(_, _, entries)| entries)
            .unwrap_or_default()),
    }
}

fn view_window(state: &BoardActorState, key: &ViewKey) -> WindowKey {
    key.window
        .unwrap_or_else(|| key.tf.window_of((state.args.clock)()))
}

fn subscribe(state: &mut BoardActorState, key: ViewKey) -> Result<Subscription, QueryError> {
    if !state.board.def.timeframes.contains(&key.tf) {
        return Err(QueryError::NoTimeframe(key.tf.as_str()));
    }
    if let Some(view) = state.views.get(&key) {
        // Same view already live: share it. Its snapshot is current as of the last publish;
        // anything newer is still pending and arrives as an update.
        return Ok((view.snapshot(), view.tx.subscribe()));
    }
    let window = view_window(state, &key);
    let entries = view_entries(state, key.tf, window, &key.kind)?;
    let view = View::new(window, entries);
    let sub = (view.snapshot(), view.tx.subscribe());
    state.views.insert(key, view);
    metrics::gauge!("phoenix_ws_views", &labels(state)).set(state.views.len() as f64);
    Ok(sub)
}

/// Publish now if the last push was long enough ago, else schedule one for when it is.
fn maybe_publish(
    myself: &ActorRef<LeaderboardMsg>,
    state: &mut BoardActorState,
) -> Result<(), EngineError> {
    if !state.dirty || state.views.is_empty() {
        state.dirty = false;
        return Ok(());
    }
    let since = state.last_publish.elapsed();
    if since >= state.args.push_interval {
        return publish(state);
    }
    if !state.publish_pending {
        state.publish_pending = true;
        myself.send_after(state.args.push_interval - since, || LeaderboardMsg::Publish);
    }
    Ok(())
}

/// Recompute every live view once and push what changed.
fn publish(state: &mut BoardActorState) -> Result<(), EngineError> {
    state.dirty = false;
    state.last_publish = Instant::now();
    state.views.retain(|_, v| v.tx.receiver_count() > 0);
    let keys: Vec<ViewKey> = state.views.keys().cloned().collect();
    let mut sent = 0u64;
    for key in keys {
        let window = view_window(state, &key);
        let entries = view_entries(state, key.tf, window, &key.kind)?;
        if let Some(view) = state.views.get_mut(&key) {
            sent += u64::from(view.advance(window, entries));
        }
    }
    let l = labels(state);
    metrics::counter!("phoenix_ws_view_frames_total", &l).increment(sent);
    metrics::gauge!("phoenix_ws_views", &l).set(state.views.len() as f64);
    Ok(())
}
