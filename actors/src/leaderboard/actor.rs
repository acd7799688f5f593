//! `LeaderboardActor`: one per leaderboard. Follows its tenant's durable log from its last
//! checkpoint, scores each event into its windows, freezes closed windows into history,
//! checkpoints, and answers standings queries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::board_store::{BoardStore, BoardStoreFactory};
use super::clock::Clock;
use super::close::{CloseLedger, CloseLedgerFactory};
use super::definition::Definition;
use super::members::Decision;
use super::query::{
    MemberPage, MemberStatus, QueryError, Standings, Subscription, UserStanding, WindowInfo,
    WindowSel,
};
use super::state::BoardState;
use super::views::{View, ViewKey};
use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;
use crate::feed::{Decoded, Feed, Plan, TypeFilter};
use crate::store::EventLog;
use std::collections::HashMap;

/// Log entries applied per message, so queries (and other actors on the same workers)
/// interleave with a long catch-up.
mod closes;
mod queries;
mod warming;

use closes::{close_window, emit_closes, emitted};
use queries::{
    standings, subscribe, user_standing, users_standings, view_entries, view_window, windows,
};
use warming::Warming;

const CATCH_UP_CHUNK: usize = 1024;
/// How many entries ahead of the one it applies a catch-up looks the user up
/// ([`BoardState::warm`]).
const WARM_AHEAD: usize = 3;

#[derive(Debug)]
pub struct LeaderboardActor;

/// Everything a (re)started board needs.
#[derive(Clone)]
pub struct BoardArgs {
    /// "Now" for current windows, freezing and retention.
    pub clock: Clock,
    pub tenant: String,
    pub def: Arc<Definition>,
    pub log: Arc<dyn EventLog>,
    /// Opens this board's window closes (sled, or JetStream KV).
    pub closes: CloseLedgerFactory,
    /// Opens this board's checkpoint and history store (sled, or JetStream KV).
    pub board_store: BoardStoreFactory,
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
    pub tenants: Option<crate::tenant::Routes>,
    /// The engine's group commit: a checkpoint into a store that the log's fsync flushes
    /// ([`BoardStore::flushed_by_the_log`]) asks it for a round (`None`: nobody to ask, as in
    /// unit tests).
    pub committer: Option<crate::committer::Committer>,
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
    /// The board's checkpoint and frozen windows.
    store: Arc<dyn BoardStore>,
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
    closes: Arc<dyn CloseLedger>,
    /// Windows closing before this time (ms) belong to an older definition: no rewards.
    epoch_ms: i64,
    /// Closes whose stream event is not yet acknowledged, and whether one is in flight.
    unemitted: std::collections::BTreeMap<(Timeframe, WindowKey), bool>,
    /// Earliest next emit attempt after a failure (backoff), and the current delay.
    emit_retry: (Instant, Duration),
    /// Callers waiting for the decision on their own membership event (answered once applied).
    member_waiters: Vec<(u64, RpcReplyPort<Result<Decision, QueryError>>)>,
    /// Set while the board replays up to the durable head it started at; reads wait.
    warming: Option<Warming>,
}

/// Most callers waiting on membership decisions at once; more get 503.
const MAX_MEMBER_WAITERS: usize = 1024;

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

/// Load the checkpoint if it was taken under the same definition; otherwise start empty
/// (and drop any history of an older definition).
fn recover(args: &BoardArgs, store: &dyn BoardStore) -> Result<BoardState, EngineError> {
    if let Some(ckpt) = store.load_checkpoint()? {
        match ckpt.state_for(&args.def) {
            Some(Ok(s)) => return Ok(s),
            Some(Err(e)) => {
                tracing::warn!(board = %args.def.id, error = %e, "unreadable checkpoint; rebuilding from the log")
            }
            None => {}
        }
    }
    store.clear()?;
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
        let store = (args.board_store)(&args.tenant, &args.def.id)?;
        let mut board = recover(&args, store.as_ref())?;
        if board.applied == 0 {
            // A new or rebuilt board starts at the oldest retained position (retention may
            // have deleted what came before): the PUT answer's `rebuilt_from`.
            let first = args.log.first_seq(&args.tenant)?;
            if first > 1 {
                board.skip(first - 1, 0);
            }
        }
        let closes = (args.closes)(&args.tenant, &args.def.id)?;
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
        metrics::gauge!("phoenix_leaderboard_checkpointed_seq", "tenant" => args.tenant.clone(), "board" => args.def.id.clone())
            .set(board.applied as f64);
        let warming = Warming::start(board.applied, *args.head.borrow());
        Ok(BoardActorState {
            warming,
            closes,
            epoch_ms,
            unemitted,
            emit_retry: (Instant::now(), Duration::from_millis(500)),
            filter: TypeFilter::of(&args.def),
            checkpointed: board.applied,
            args,
            board,
            store,
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
            read @ (LeaderboardMsg::Standings { .. }
            | LeaderboardMsg::User { .. }
            | LeaderboardMsg::Users { .. }
            | LeaderboardMsg::Windows { .. }
            | LeaderboardMsg::Members { .. }
            | LeaderboardMsg::Subscribe { .. }) => {
                // A board mid-replay parks it (see `warming`).
                if let Some(read) = warming::park(state, read) {
                    answer_read(&myself, state, read);
                }
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

/// Answer a standings or view read from the board as it is now.
fn answer_read(
    myself: &ActorRef<LeaderboardMsg>,
    state: &mut BoardActorState,
    read: LeaderboardMsg,
) {
    match read {
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
        LeaderboardMsg::Subscribe { key, reply } => {
            let _ = reply.send(subscribe(state, key));
            schedule_sweep(myself, state);
        }
        _ => {}
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
    let applied = state
        .board
        .apply_facts(d.seq, d.accepted_ms, event, d.facts());
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
    let mut exhausted = false;
    let target = match feed.plan(&state.args.def.id, state.token, before, CATCH_UP_CHUNK) {
        Plan::Skip { to, accepted_ms } => {
            state.board.skip(to, accepted_ms);
            feed.read()
        }
        Plan::Entries(entries) => {
            state.board.begin_batch();
            for (i, d) in entries.iter().enumerate() {
                if let Some(user) = entries.get(i + WARM_AHEAD).and_then(|a| a.user.as_deref()) {
                    std::hint::black_box(state.board.warm(user));
                }
                apply_entry(state, d, &mut seen);
            }
            state.board.end_batch();
            feed.read()
        }
        Plan::Cold => {
            let tenant = state.args.tenant.clone();
            let entries = state
                .args
                .log
                .read_from(&tenant, before + 1, CATCH_UP_CHUNK)?;
            // Nothing after `before` in the log at all: it ends before the durable head.
            exhausted = entries.is_empty();
            state.board.begin_batch();
            for e in entries.into_iter().take_while(|e| e.seq <= durable) {
                let d = Decoded::from_entry(&tenant, "leaderboard", e);
                apply_entry(state, &d, &mut seen);
            }
            state.board.end_batch();
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
    for read in warming::settle(state, exhausted) {
        answer_read(myself, state, read);
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
            state.store.write_window(tf, key, &w)?;
            tracing::debug!(board = %state.args.def.id, window = %key, users = w.accs.len(), "window frozen");
            close_window(state, tf, key, &w)?;
        }
    }
    let retention =
        chrono::Duration::from_std(state.args.history_retention).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = (state.args.clock)().checked_sub_signed(retention) {
        for (tf, key) in state.board.forget_frozen_before(cutoff) {
            state.store.drop_window(tf, key)?;
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
    state
        .store
        .save_checkpoint(&def_json, &state.board.encode())?;
    state.checkpointed = state.board.applied;
    state.last_checkpoint = Instant::now();
    let durable = metrics::gauge!("phoenix_leaderboard_checkpointed_seq", &labels(state));
    let applied = state.board.applied as f64;
    match state.args.committer.as_ref() {
        Some(committer) if state.store.flushed_by_the_log() => {
            // Rides the next round when ingest is busy; when it is idle, this is the round.
            let board = state.args.def.id.clone();
            committer.submit(Box::new(move |r| match r {
                Ok(()) => durable.set(applied),
                Err(e) => tracing::warn!(board = %board, error = %e, "checkpoint flush failed"),
            }));
        }
        _ => durable.set(applied),
    }
    metrics::histogram!("phoenix_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
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
