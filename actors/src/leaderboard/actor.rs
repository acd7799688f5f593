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

use super::close::{CloseStore, Closed};
use super::definition::Definition;
use super::history::History;
use super::members::Decision;
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
    /// What a window close records, grants and enqueues.
    pub close: CloseSettings,
    /// The tenant actors, to put `leaderboard.window_closed` events into the stream through
    /// the normal durable ingest path (`None`: closes are not emitted, e.g. in unit tests).
    pub tenants: Option<crate::supervisor::Routes>,
}

/// Limits of a window close (from the config).
#[derive(Debug, Clone, Copy)]
pub struct CloseSettings {
    /// Top entries kept in a close record (and sent in its webhook).
    pub results_size: usize,
    /// Most grants one close makes; further matched users are counted, not granted.
    pub max_grants: usize,
    /// Most webhook deliveries waiting per tenant; a close beyond it sends none (counted).
    pub outbox_max_per_tenant: u64,
    /// Timeout of the call that ingests a close's stream event.
    pub emit_timeout: Duration,
}

impl Default for CloseSettings {
    fn default() -> Self {
        CloseSettings {
            results_size: 100,
            max_grants: 10_000,
            outbox_max_per_tenant: 10_000,
            emit_timeout: Duration::from_secs(10),
        }
    }
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
    /// A `Sweep` is scheduled (while any view is live).
    sweep_pending: bool,
    /// Closed windows of this board (records, grants, outbox).
    closes: CloseStore,
    /// Windows closing before this time (ms) belong to an older definition: no rewards.
    epoch_ms: i64,
    /// Closes whose stream event is not yet acknowledged, and whether one is in flight.
    unemitted: std::collections::BTreeMap<(Timeframe, WindowKey), bool>,
    /// Earliest next emit attempt after a failure (backoff), and the current delay.
    emit_retry: (Instant, Duration),
    /// Callers waiting for the decision on their own membership event (answered once applied).
    member_waiters: Vec<(u64, RpcReplyPort<Result<Decision, QueryError>>)>,
}

/// Most callers waiting on membership decisions at once; more get 503.
const MAX_MEMBER_WAITERS: usize = 1024;

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
    /// Users in the window.
    pub total: usize,
    /// Share of users ranked strictly better, 0–100 (two decimals).
    pub percentile: f64,
    pub entries: Vec<Entry>,
}

/// Where a window is in its life (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Before its end.
    Open,
    /// Past its end, still taking late events until end + `late_grace_seconds`.
    Grace,
    /// Frozen into history (or past its close, about to be).
    Closed,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Open => "open",
            WindowState::Grace => "grace",
            WindowState::Closed => "closed",
        }
    }
}

/// One row of the windows listing.
#[derive(Debug, Clone)]
pub struct WindowInfo {
    pub window: WindowKey,
    /// Real start and end (`None` for `all_time`).
    pub start: Option<chrono::DateTime<Utc>>,
    pub end: Option<chrono::DateTime<Utc>>,
    /// End + `late_grace_seconds`: when it stops taking events and freezes.
    pub closes_at: Option<chrono::DateTime<Utc>>,
    pub state: WindowState,
    /// Users with a score in it.
    pub total: usize,
}

/// A page of members (user id, join position) and the member count.
pub type MemberPage = (Vec<(String, u64)>, usize);

/// What a board says about one user's membership.
#[derive(Debug, Clone, Copy)]
pub struct MemberStatus {
    pub join_required: bool,
    pub member: bool,
    /// The board's applied log position when it answered.
    pub applied: u64,
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
    NoTimeframe(String),
    /// A join past `entry.max_members`.
    #[error("{0}")]
    Conflict(String),
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
    /// The given users' entries in rank order (unknown users left out).
    Users {
        tf: Timeframe,
        window: WindowSel,
        users: Vec<String>,
        reply: RpcReplyPort<Result<Standings, QueryError>>,
    },
    /// The windows of a timeframe with their state, newest first.
    Windows {
        tf: Timeframe,
        limit: usize,
        reply: RpcReplyPort<Result<Vec<WindowInfo>, QueryError>>,
    },
    /// A page of members after a user id (exclusive), and the member count.
    Members {
        after: Option<String>,
        limit: usize,
        reply: RpcReplyPort<Result<MemberPage, QueryError>>,
    },
    /// Whether a user is a member now.
    Membership {
        user: String,
        reply: RpcReplyPort<MemberStatus>,
    },
    /// The decision on the membership event at `seq`, once applied.
    MemberDecision {
        seq: u64,
        user: String,
        reply: RpcReplyPort<Result<Decision, QueryError>>,
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
    /// Release views no session watches any more (every push interval while views live).
    Sweep,
    /// The stream event of a window close was acknowledged (`true`) or failed.
    Emitted(Timeframe, WindowKey, bool),
    /// Fault injection for supervision tests.
    #[cfg(test)]
    Panic,
}

const CKPT_KEY: &[u8] = b"checkpoint";

/// The sled tree holding a board's checkpoint.
pub fn meta_tree(db: &sled::Db, tenant: &str, board: &str) -> Result<sled::Tree, EngineError> {
    Ok(db.open_tree(format!("lb/{tenant}/{board}"))?)
}

/// The log position a board's durable checkpoint has applied (0 without one): retention
/// never deletes past it.
pub fn checkpointed_seq(meta: &sled::Tree) -> Result<u64, EngineError> {
    let Some(buf) = meta.get(CKPT_KEY)? else {
        return Ok(0);
    };
    let def_len = buf
        .get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize)
        .unwrap_or(usize::MAX);
    // After the definition: the checkpoint version byte, then `applied` (big-endian u64).
    let at = def_len.saturating_add(5);
    Ok(buf
        .get(at..at.saturating_add(8))
        .map(|b| u64::from_be_bytes(b.try_into().expect("8")))
        .unwrap_or(0))
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
        let mut board = recover(&args, &meta, &history)?;
        if board.applied == 0 {
            // A new or rebuilt board starts at the oldest retained position (retention may
            // have deleted what came before): the PUT answer's `rebuilt_from`.
            let first = args.log.first_seq(&args.tenant)?;
            if first > 1 {
                board.skip(first - 1, 0);
            }
        }
        let closes = CloseStore::open(&args.db, &args.tenant, &args.def.id)?;
        let epoch_ms = closes.epoch(
            &args.def.to_json().to_string(),
            (args.clock)().timestamp_millis(),
        )?;
        let unemitted = closes
            .unemitted()?
            .into_iter()
            .filter_map(|r| {
                let tf = r.timeframe.parse::<Timeframe>().ok()?;
                Some(((tf, WindowKey::parse(tf, &r.window).ok()?), false))
            })
            .collect();
        tracing::info!(tenant = %args.tenant, board = %args.def.id, applied = board.applied, "leaderboard started");
        Ok(BoardActorState {
            closes,
            epoch_ms,
            unemitted,
            emit_retry: (Instant::now(), Duration::from_millis(500)),
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
            sweep_pending: false,
            member_waiters: Vec::new(),
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
        state.views.clear();
        metrics::gauge!("phoenix_ws_views", &labels(state)).set(0.0);
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
                answer_member_waiters(state);
                maybe_publish(&myself, state)?;
                // Let the other boards' chunks (other tenants') run between two of ours.
                tokio::task::yield_now().await;
            }
            LeaderboardMsg::Tick => {
                // Boards are woken only for types they match: move past the rest now.
                catch_up(&myself, state)?;
                tick(state)?;
                emit_closes(&myself, state);
                let now = (state.args.clock)();
                let cal = &state.board.def.calendar;
                let rolled = state.views.iter().any(|(k, v)| {
                    k.window.is_none() && cal.window_of(k.tf, now).is_some_and(|w| w != v.window)
                });
                if rolled {
                    publish(state)?;
                }
            }
            LeaderboardMsg::Subscribe { key, reply } => {
                let _ = reply.send(subscribe(state, key));
                schedule_sweep(&myself, state);
            }
            LeaderboardMsg::Sweep => {
                state.sweep_pending = false;
                sweep(state);
                schedule_sweep(&myself, state);
            }
            LeaderboardMsg::Publish => {
                state.publish_pending = false;
                publish(state)?;
            }
            LeaderboardMsg::Emitted(tf, key, ok) => emitted(state, tf, key, ok)?,
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
            LeaderboardMsg::Users {
                tf,
                window,
                users,
                reply,
            } => {
                let _ = reply.send(users_standings(state, tf, window, &users));
            }
            LeaderboardMsg::Windows { tf, limit, reply } => {
                let _ = reply.send(windows(state, tf, limit));
            }
            LeaderboardMsg::Members {
                after,
                limit,
                reply,
            } => {
                let m = &state.board.members;
                let _ = reply.send(if state.board.def.join_required() {
                    Ok((m.page(after.as_deref(), limit), m.len()))
                } else {
                    Err(not_a_tournament())
                });
            }
            LeaderboardMsg::Membership { user, reply } => {
                let _ = reply.send(MemberStatus {
                    join_required: state.board.def.join_required(),
                    member: state.board.members.contains(&user),
                    applied: state.board.applied,
                });
            }
            LeaderboardMsg::MemberDecision { seq, user, reply } => {
                if state.board.applied >= seq {
                    let _ = reply.send(Ok(decision_of(state, seq, &user)));
                } else if state.member_waiters.len() >= MAX_MEMBER_WAITERS {
                    let _ = reply.send(Err(QueryError::Engine(EngineError::ActorUnavailable(
                        "too many membership changes in flight".into(),
                    ))));
                } else {
                    state.member_waiters.push((seq, reply));
                }
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
    not_member: u64,
    over_attempts: u64,
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
    seen.not_member += u64::from(applied.not_member);
    seen.over_attempts += u64::from(applied.over_attempts);
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
    metrics::counter!("phoenix_leaderboard_not_member_total", &l).increment(seen.not_member);
    metrics::counter!("phoenix_leaderboard_over_attempts_total", &l).increment(seen.over_attempts);
    metrics::gauge!("phoenix_leaderboard_members", &l).set(state.board.members.len() as f64);
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
            close_window(state, tf, key, &w)?;
        }
    }
    let retention =
        chrono::Duration::from_std(state.args.history_retention).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = (state.args.clock)().checked_sub_signed(retention) {
        for (tf, key) in state.board.forget_frozen_before(cutoff) {
            state.history.drop_window(tf, key)?;
            state.closes.drop_window(tf, key)?;
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
    check_timeframe(&state.board.def, tf)?;
    match sel {
        WindowSel::Current => current_window(state, tf),
        WindowSel::Key(k) => Ok(k),
    }
}

/// A built-in timeframe the board does not keep is a 404; a name that is neither built-in nor
/// one of the board's schedules is a 400.
fn check_timeframe(def: &Definition, tf: Timeframe) -> Result<(), QueryError> {
    if def.has_timeframe(tf) {
        Ok(())
    } else if tf.is_builtin() {
        Err(QueryError::NoTimeframe(tf.as_str().to_owned()))
    } else {
        Err(QueryError::Invalid(format!(
            "timeframe: unknown timeframe {:?} (expected hourly, daily, weekly, monthly, all_time or one of this board's schedules)",
            tf.as_str()
        )))
    }
}

/// The window of `tf` holding the server's now; outside a fixed schedule there is none (404).
fn current_window(state: &BoardActorState, tf: Timeframe) -> Result<WindowKey, QueryError> {
    let now = (state.args.clock)();
    state
        .board
        .def
        .calendar
        .window_of(tf, now)
        .ok_or_else(|| QueryError::NoWindow(format!("current ({tf} has no window open now)")))
}

fn not_a_tournament() -> QueryError {
    QueryError::Invalid("entry.join_required is not set on this leaderboard".into())
}

/// The decision on the membership event at `seq` (already applied): remembered, or read from
/// the membership now if it was forgotten.
fn decision_of(state: &BoardActorState, seq: u64, user: &str) -> Decision {
    state.board.members.decision(seq).unwrap_or_else(|| {
        if state.board.members.contains(user) {
            Decision::AlreadyMember
        } else {
            Decision::NotMember
        }
    })
}

fn answer_member_waiters(state: &mut BoardActorState) {
    if state.member_waiters.is_empty() {
        return;
    }
    let applied = state.board.applied;
    let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.member_waiters)
        .into_iter()
        .partition(|(seq, _)| *seq <= applied);
    state.member_waiters = waiting;
    for (seq, reply) in ready {
        let d = state
            .board
            .members
            .decision(seq)
            .unwrap_or(Decision::NotMember);
        let _ = reply.send(Ok(d));
    }
}

fn percentile(rank: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let share = rank.saturating_sub(1) as f64 / total as f64 * 100.0;
    (share * 100.0).round() / 100.0
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
        let total = w.ranks.len();
        return Ok(UserStanding {
            window,
            rank,
            score,
            total,
            percentile: percentile(rank, total),
            entries,
        });
    }
    let (rank, score, entries) = state
        .history
        .around(tf, window, user, around)?
        .ok_or_else(none)?;
    let total = state.history.total(tf, window)?.unwrap_or(0);
    Ok(UserStanding {
        window,
        rank,
        score,
        total,
        percentile: percentile(rank, total),
        entries,
    })
}

/// The listed users' entries in rank order; users without a score are left out.
fn users_standings(
    state: &BoardActorState,
    tf: Timeframe,
    sel: WindowSel,
    users: &[String],
) -> Result<Standings, QueryError> {
    let window = resolve(state, tf, sel)?;
    let mut found: Vec<(usize, Entry)> = Vec::with_capacity(users.len());
    let (total, live) = match state.board.window(tf, window) {
        Some(w) => (w.ranks.len(), Some(w)),
        None => match state.history.total(tf, window)? {
            Some(total) => (total, None),
            None => (0, None),
        },
    };
    let mut seen = std::collections::HashSet::new();
    for user in users.iter().filter(|u| seen.insert(u.as_str())) {
        let hit = match live {
            Some(w) => w
                .ranks
                .position_of(user)
                .zip(w.ranks.get(user))
                .map(|(p, (rank, score, _))| (p, rank, score)),
            None => state.history.locate(tf, window, user)?,
        };
        if let Some((position, rank, score)) = hit {
            found.push((
                position,
                Entry {
                    rank,
                    user_id: user.clone(),
                    score,
                },
            ));
        }
    }
    found.sort_by_key(|(p, _)| *p);
    Ok(Standings {
        window,
        total,
        entries: found.into_iter().map(|(_, e)| e).collect(),
    })
}

/// The windows of `tf`, newest first: open ones, the current one (even without scores), and
/// frozen ones still in history.
fn windows(
    state: &BoardActorState,
    tf: Timeframe,
    limit: usize,
) -> Result<Vec<WindowInfo>, QueryError> {
    check_timeframe(&state.board.def, tf)?;
    let now = (state.args.clock)();
    let (cal, grace) = (
        &state.board.def.calendar,
        state.board.def.late_grace_seconds,
    );
    let mut keys: std::collections::BTreeMap<WindowKey, (bool, usize)> = Default::default();
    for (k, w) in state.board.open_windows(tf).take(limit) {
        keys.insert(k, (false, w.accs.len()));
    }
    for k in state.board.frozen_windows(tf).take(limit) {
        keys.insert(k, (true, 0));
    }
    if let Some(k) = cal.window_of(tf, now) {
        keys.entry(k).or_insert((false, 0));
    }
    let mut out = Vec::with_capacity(limit);
    for (window, (frozen, users)) in keys.into_iter().rev().take(limit) {
        let span = cal.span(window);
        let closes_at = cal.close_time(window, grace);
        let state_now = if frozen || closes_at.is_some_and(|c| now >= c) {
            WindowState::Closed
        } else if span.is_some_and(|(_, end)| now >= end) {
            WindowState::Grace
        } else {
            WindowState::Open
        };
        let total = if frozen {
            state.history.total(tf, window)?.unwrap_or(0)
        } else {
            users
        };
        out.push(WindowInfo {
            window,
            start: span.map(|(s, _)| s),
            end: span.map(|(_, e)| e),
            closes_at,
            state: state_now,
            total,
        });
    }
    Ok(out)
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

/// The window a view shows now; `None` for a current view of a fixed schedule outside its span.
fn view_window(state: &BoardActorState, key: &ViewKey) -> Option<WindowKey> {
    key.window.or_else(|| {
        state
            .board
            .def
            .calendar
            .window_of(key.tf, (state.args.clock)())
    })
}

fn subscribe(state: &mut BoardActorState, key: ViewKey) -> Result<Subscription, QueryError> {
    check_timeframe(&state.board.def, key.tf)?;
    if let Some(view) = state.views.get(&key) {
        // Same view already live: share it. Its snapshot is current as of the last publish;
        // anything newer is still pending and arrives as an update.
        return Ok((view.snapshot(), view.tx.subscribe()));
    }
    let window = match view_window(state, &key) {
        Some(w) => w,
        None => current_window(state, key.tf)?,
    };
    let entries = view_entries(state, key.tf, window, &key.kind)?;
    let view = View::new(window, entries);
    let sub = (view.snapshot(), view.tx.subscribe());
    state.views.insert(key, view);
    metrics::gauge!("phoenix_ws_views", &labels(state)).set(state.views.len() as f64);
    Ok(sub)
}

/// Drop the views whose last subscriber has gone, so a closed connection's views do not wait
/// for the board's next change to be released.
fn sweep(state: &mut BoardActorState) {
    let before = state.views.len();
    state.views.retain(|_, v| v.tx.receiver_count() > 0);
    if state.views.len() != before {
        metrics::gauge!("phoenix_ws_views", &labels(state)).set(state.views.len() as f64);
    }
}

/// Keep one `Sweep` scheduled a push interval ahead while any view is live.
fn schedule_sweep(myself: &ActorRef<LeaderboardMsg>, state: &mut BoardActorState) {
    if state.sweep_pending || state.views.is_empty() {
        return;
    }
    state.sweep_pending = true;
    let every = state.args.push_interval.max(Duration::from_millis(10));
    myself.send_after(every, || LeaderboardMsg::Sweep);
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
        // A current view whose fixed window ended keeps showing that window.
        let Some(window) =
            view_window(state, &key).or_else(|| state.views.get(&key).map(|v| v.window))
        else {
            continue;
        };
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

/// Record the close of a just-frozen window (exactly once, see `close.rs`): final top
/// entries, grants, webhook delivery; then queue its stream event.
fn close_window(
    state: &mut BoardActorState,
    tf: Timeframe,
    key: WindowKey,
    w: &super::state::Window,
) -> Result<(), EngineError> {
    use super::close::{assign, ranks_needed, CloseRecord, ResultEntry};
    let def = &state.args.def;
    // The window's real end: local midnight for a board's time zone, the next firing of a
    // cron schedule, a fixed window's `end`.
    let Some(end) = def.calendar.end(key) else {
        return Ok(());
    };
    let settings = state.args.close;
    let grace_ms = i64::try_from(def.late_grace_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let closed_at_ms = end.timestamp_millis().saturating_add(grace_ms);
    let total = w.ranks.len() as u64;
    let rewarded = closed_at_ms >= state.epoch_ms;
    let needed = if rewarded {
        ranks_needed(&def.rewards, total)
    } else {
        0
    };
    let take = usize::try_from(needed)
        .unwrap_or(usize::MAX)
        .min(settings.max_grants)
        .max(settings.results_size);
    let entries: Vec<ResultEntry> = w
        .ranks
        .range(0, take)
        .into_iter()
        .map(|e| ResultEntry {
            rank: e.rank as u64,
            user_id: e.user_id,
            score: e.score,
        })
        .collect();
    let (grants, mut capped) = if rewarded {
        assign(&def.rewards, &entries, total, settings.max_grants)
    } else {
        (Vec::new(), 0)
    };
    capped += needed.saturating_sub(entries.len() as u64);
    let record = CloseRecord {
        leaderboard: def.id.clone(),
        timeframe: tf.as_str().to_owned(),
        window: key.to_string(),
        closed_at_ms,
        total,
        results: entries.into_iter().take(settings.results_size).collect(),
        grants,
        grants_capped: capped,
        rewarded,
        emitted: false,
        delivery_id: None,
    };
    let tenant = state.args.tenant.clone();
    let grants = record.grants.len() as u64;
    match state
        .closes
        .close(tf, key, record, settings.outbox_max_per_tenant)?
    {
        Closed::New { webhook_dropped } => {
            let result = if rewarded {
                "rewarded"
            } else {
                "before_definition"
            };
            metrics::counter!("phoenix_window_closes_total", "tenant" => tenant.clone(), "result" => result)
                .increment(1);
            metrics::counter!("phoenix_rewards_grants_total", "tenant" => tenant.clone(), "source" => "leaderboard")
                .increment(grants);
            if capped > 0 {
                metrics::counter!("phoenix_rewards_grants_capped_total", "tenant" => tenant.clone())
                    .increment(capped);
                tracing::warn!(tenant, board = %def.id, window = %key, capped, "reward tiers matched more users than close_max_grants; the rest got nothing");
            }
            if webhook_dropped {
                metrics::counter!("phoenix_webhook_outbox_dropped_total", "tenant" => tenant.clone())
                    .increment(1);
                tracing::warn!(tenant, board = %def.id, window = %key, "webhook outbox full; this close sends no webhook");
            }
            tracing::info!(tenant, board = %def.id, window = %key, grants, rewarded, "window closed");
            if rewarded {
                state.unemitted.insert((tf, key), false);
            }
        }
        Closed::Already(r) => {
            if r.rewarded && !r.emitted {
                state.unemitted.entry((tf, key)).or_insert(false);
            }
        }
    }
    Ok(())
}

/// Put the stream event of every unemitted close into the tenant's log (deterministic
/// event id, so a repeat after a crash is a duplicate), one call in flight per close.
fn emit_closes(myself: &ActorRef<LeaderboardMsg>, state: &mut BoardActorState) {
    let Some(routes) = state.args.tenants.clone() else {
        return;
    };
    if state.unemitted.is_empty() || Instant::now() < state.emit_retry.0 {
        return;
    }
    let tenant = state.args.tenant.clone();
    let Some(actor) = routes.read().expect("routes").get(&tenant).cloned() else {
        return;
    };
    let timeout = state.args.close.emit_timeout;
    for ((tf, key), in_flight) in state.unemitted.iter_mut() {
        if *in_flight {
            continue;
        }
        let record = match state.closes.get(*tf, *key) {
            Ok(Some(r)) => r,
            _ => continue,
        };
        let event = match crate::event::Event::from_json(record.stream_event(), &tenant, Utc::now())
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(tenant, board = %state.args.def.id, error = %e, "window_closed event invalid; not emitted");
                continue;
            }
        };
        *in_flight = true;
        let (me, actor, tf, key) = (myself.clone(), actor.clone(), *tf, *key);
        tokio::spawn(async move {
            let r = actor
                .call(
                    |reply| crate::tenant::TenantMsg::Ingest {
                        events: vec![event],
                        reply,
                    },
                    Some(timeout),
                )
                .await;
            let ok = matches!(r, Ok(ractor::rpc::CallResult::Success(Ok(_))));
            let _ = me.cast(LeaderboardMsg::Emitted(tf, key, ok));
        });
    }
}

fn emitted(
    state: &mut BoardActorState,
    tf: Timeframe,
    key: WindowKey,
    ok: bool,
) -> Result<(), EngineError> {
    if ok {
        state.closes.mark_emitted(tf, key)?;
        state.unemitted.remove(&(tf, key));
        state.emit_retry.1 = Duration::from_millis(500);
    } else {
        metrics::counter!("phoenix_window_close_emit_failures_total", "tenant" => state.args.tenant.clone())
            .increment(1);
        if let Some(f) = state.unemitted.get_mut(&(tf, key)) {
            *f = false;
        }
        // Back off (doubling, capped at 30 s) before the next attempt.
        let delay = state.emit_retry.1;
        state.emit_retry = (
            Instant::now() + delay,
            (delay * 2).min(Duration::from_secs(30)),
        );
    }
    Ok(())
}
