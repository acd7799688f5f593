//! `Supervisor`: spawns one linked `TenantActor` per tenant and one linked
//! `LeaderboardActor` per leaderboard, and restarts any that fails — a tenant from the log
//! (position + dedupe window), a board from its checkpoint plus the rest of the log.
//!
//! Restarts back off: the first after `initial`, each further one twice as late (with
//! jitter) up to `max`; a child that ran `reset_after` without failing starts again from
//! `initial`. A restart that itself fails (the disk is still full) counts as another failure.
//! Failures are logged through a throttle, so a broken disk produces neither a restart storm
//! nor a log storm.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::error::EngineError;
use crate::leaderboard::actor::{BoardArgs, LeaderboardActor, LeaderboardMsg};
use crate::tenant::{Routes, TenantActor, TenantArgs};
use crate::throttle::LogThrottle;

static FAILURE_LOG: LogThrottle = LogThrottle::new(20, Duration::from_secs(60));

static BOARD_RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The CPU priority of the leaderboard runtime's threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardPriority {
    /// Linux `SCHED_IDLE`: scoring runs on the CPU that ingestion leaves, so a tenant's
    /// hundred boards never delay another tenant's acknowledgements; under sustained full
    /// CPU, standings lag instead (`phoenix_leaderboard_apply_lag`).
    #[default]
    Background,
    /// The same priority as ingestion: scoring and acks share the CPU.
    Normal,
}

/// How the leaderboard runtime is built (the first engine of a process fixes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardRuntime {
    /// Worker threads.
    pub threads: usize,
    pub priority: BoardPriority,
}

/// The runtime leaderboard actors and tenant feeds run on — a bulkhead: scoring work gets at
/// most its `threads` (fixed by the first caller), at its own priority, and never queues
/// ahead of ingestion on the service's own workers, however many boards a tenant floods.
pub fn board_runtime(rt: BoardRuntime) -> tokio::runtime::Handle {
    BOARD_RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(rt.threads.max(1))
                .thread_name("phoenix-boards")
                .on_thread_start(move || set_priority(rt.priority))
                .enable_all()
                .build()
                .expect("start the leaderboard runtime")
        })
        .handle()
        .clone()
}

/// Give the calling thread `priority` (a failure is logged: the thread runs at normal).
fn set_priority(priority: BoardPriority) {
    if priority == BoardPriority::Normal {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        if let Err(e) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ) {
            tracing::warn!(error = ?e, "leaderboard threads stay at normal CPU priority");
        }
    }
}

/// The restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay between restarts.
    pub max: Duration,
    /// A child that ran this long without failing is healthy again: its next failure waits
    /// `initial` again.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based): `initial · 2^attempt`, capped at
    /// `max`, then "equal jitter" — uniformly in `[d/2, d]` — so restarts of many children
    /// spread out while each delay is still at least the previous undithered one.
    pub fn delay(&self, attempt: u32, jitter: u64) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let d = self.initial.saturating_mul(factor).min(self.max);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(if nanos == 0 { 0 } else { jitter % (nanos + 1) })
    }
}

/// A random number for jitter (no RNG crate needed: std's hasher keys are random).
pub fn jitter() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Failures of one child in a row.
#[derive(Debug, Clone, Copy)]
struct Streak {
    /// Restarts so far in this streak.
    attempts: u32,
    /// When the current incarnation started.
    started: Instant,
}

/// Each board's current actor, by (tenant, board id).
pub type BoardRoutes = Arc<RwLock<HashMap<(String, String), ActorRef<LeaderboardMsg>>>>;

#[derive(Debug)]
pub struct Supervisor;

pub struct SupervisorArgs {
    pub routes: Routes,
    pub boards: BoardRoutes,
    pub tenants: Vec<TenantArgs>,
    pub backoff: Backoff,
    /// Worker threads of [`board_runtime`].
    pub board_runtime: BoardRuntime,
}

/// How to respawn a child.
enum Child {
    Tenant(TenantArgs),
    Board(BoardArgs),
}

impl Child {
    fn key(&self) -> ChildKey {
        match self {
            Child::Tenant(a) => ChildKey::Tenant(a.tenant.clone()),
            Child::Board(a) => ChildKey::Board(a.tenant.clone(), a.def.id.clone()),
        }
    }
}

/// A child by name, stable across incarnations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChildKey {
    Tenant(String),
    Board(String, String),
}

impl ChildKey {
    fn kind(&self) -> &'static str {
        match self {
            ChildKey::Tenant(_) => "tenant",
            ChildKey::Board(..) => "leaderboard",
        }
    }
}

pub struct SupervisorState {
    routes: Routes,
    boards: BoardRoutes,
    backoff: Backoff,
    board_runtime: BoardRuntime,
    /// Arguments to respawn each child with, by the actor id of its current incarnation.
    children: HashMap<ActorId, Child>,
    /// Each child's failure streak.
    streaks: HashMap<ChildKey, Streak>,
    /// Children waiting out their backoff, with the generation that scheduled them.
    waiting: HashMap<ChildKey, (u64, Child)>,
    generation: u64,
}

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Start a tenant actor (no-op if the tenant already runs).
    AddTenant(TenantArgs, RpcReplyPort<()>),
    /// Start (or replace) a board's actor.
    StartBoard(BoardArgs, RpcReplyPort<Result<(), EngineError>>),
    /// Stop a board's actor and wait until it has stopped.
    StopBoard(String, String, RpcReplyPort<()>),
    /// Stop a tenant's actor and all its boards (cluster mode: its lease moved), and wait.
    StopTenant(String, RpcReplyPort<()>),
    /// A failed child's backoff is over (scheduled by the supervisor itself).
    Restart(ChildKey, u64),
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            routes: args.routes,
            boards: args.boards,
            backoff: args.backoff,
            board_runtime: args.board_runtime,
            children: HashMap::new(),
            streaks: HashMap::new(),
            waiting: HashMap::new(),
            generation: 0,
        };
        for t in args.tenants {
            spawn_tenant(&myself, &mut state, t).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::AddTenant(args, reply) => {
                let exists = state
                    .routes
                    .read()
                    .expect("routes")
                    .contains_key(&args.tenant);
                if !exists {
                    spawn_tenant(&myself, state, args).await?;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::StartBoard(args, reply) => {
                stop_board(state, &args.tenant, &args.def.id).await;
                // A new definition starts a fresh streak.
                let key = ChildKey::Board(args.tenant.clone(), args.def.id.clone());
                state.streaks.remove(&key);
                let result = spawn_board(&myself, state, args)
                    .await
                    .map_err(|e| EngineError::ChildStart(Arc::new(e)));
                let _ = reply.send(result);
            }
            SupervisorMsg::StopBoard(tenant, id, reply) => {
                stop_board(state, &tenant, &id).await;
                state.streaks.remove(&ChildKey::Board(tenant, id));
                let _ = reply.send(());
            }
            SupervisorMsg::StopTenant(tenant, reply) => {
                stop_tenant(state, &tenant).await;
                let _ = reply.send(());
            }
            SupervisorMsg::Restart(key, generation) => {
                if state
                    .waiting
                    .get(&key)
                    .is_some_and(|(g, _)| *g == generation)
                {
                    let (_, child) = state.waiting.remove(&key).expect("checked");
                    restart(&myself, state, child).await;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        if let Some(child) = state.children.remove(&cell.get_id()) {
            failed(&myself, state, child, &err.to_string());
        }
        Ok(())
    }
}

/// A child failed (or could not restart): count it, log it (throttled) and schedule its
/// restart after its backoff.
fn failed(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, child: Child, err: &str) {
    let key = child.key();
    let now = Instant::now();
    let streak = state.streaks.entry(key.clone()).or_insert(Streak {
        attempts: 0,
        started: now,
    });
    if now.duration_since(streak.started) >= state.backoff.reset_after {
        streak.attempts = 0;
    }
    let delay = state.backoff.delay(streak.attempts, jitter());
    streak.attempts = streak.attempts.saturating_add(1);
    let attempt = streak.attempts;
    metrics::counter!("phoenix_actor_restarts_total", "actor" => key.kind()).increment(1);
    metrics::gauge!("phoenix_actor_restart_backoff_seconds", "actor" => key.kind())
        .set(delay.as_secs_f64());
    if let Some(suppressed) = FAILURE_LOG.allow() {
        tracing::error!(child = ?key, error = %err, attempt, delay_ms = delay.as_millis() as u64, suppressed, "actor failed; restarting after a backoff");
    }
    state.generation += 1;
    let generation = state.generation;
    state.waiting.insert(key.clone(), (generation, child));
    myself.send_after(delay, move || SupervisorMsg::Restart(key, generation));
}

/// Respawn a child whose backoff is over; a failed respawn is another failure.
async fn restart(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, child: Child) {
    let key = child.key();
    let (result, retry) = match child {
        Child::Tenant(args) => (
            spawn_tenant(myself, state, args.clone()).await,
            Child::Tenant(args),
        ),
        Child::Board(args) => (
            spawn_board(myself, state, args.clone()).await,
            Child::Board(args),
        ),
    };
    match result {
        Ok(()) => {
            if let Some(s) = state.streaks.get_mut(&key) {
                s.started = Instant::now();
            }
        }
        Err(e) => failed(myself, state, retry, &format!("restart failed: {e}")),
    }
}

async fn spawn_tenant(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    args: TenantArgs,
) -> Result<(), ActorProcessingErr> {
    let tenant = args.tenant.clone();
    let (actor, _) =
        Actor::spawn_linked(None, TenantActor, args.clone(), myself.get_cell()).await?;
    state.children.insert(actor.get_id(), Child::Tenant(args));
    state.routes.write().expect("routes").insert(tenant, actor);
    Ok(())
}

async fn spawn_board(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    args: BoardArgs,
) -> Result<(), ActorProcessingErr> {
    let key = (args.tenant.clone(), args.def.id.clone());
    let (cell, spawn_args) = (myself.get_cell(), args.clone());
    let (actor, _) = board_runtime(state.board_runtime)
        .spawn(async move { Actor::spawn_linked(None, LeaderboardActor, spawn_args, cell).await })
        .await
        .map_err(|e| ActorProcessingErr::from(format!("leaderboard spawn task: {e}")))??;
    state.children.insert(actor.get_id(), Child::Board(args));
    state.boards.write().expect("boards").insert(key, actor);
    Ok(())
}

async fn stop_board(state: &mut SupervisorState, tenant: &str, id: &str) {
    let old = state
        .boards
        .write()
        .expect("boards")
        .remove(&(tenant.to_owned(), id.to_owned()));
    state
        .waiting
        .remove(&ChildKey::Board(tenant.to_owned(), id.to_owned()));
    if let Some(actor) = old {
        state.children.remove(&actor.get_id());
        let _ = actor
            .stop_and_wait(
                Some("definition replaced or deleted".into()),
                Some(Duration::from_secs(10)),
            )
            .await;
    }
}

/// Stop every board of `tenant`, then its tenant actor; none is restarted.
async fn stop_tenant(state: &mut SupervisorState, tenant: &str) {
    let ids: Vec<String> = state
        .boards
        .read()
        .expect("boards")
        .keys()
        .filter(|(t, _)| t == tenant)
        .map(|(_, id)| id.clone())
        .collect();
    for id in ids {
        stop_board(state, tenant, &id).await;
    }
    state.waiting.retain(|k, _| match k {
        ChildKey::Tenant(t) | ChildKey::Board(t, _) => t != tenant,
    });
    state.streaks.retain(|k, _| match k {
        ChildKey::Tenant(t) | ChildKey::Board(t, _) => t != tenant,
    });
    let old = state.routes.write().expect("routes").remove(tenant);
    if let Some(actor) = old {
        state.children.remove(&actor.get_id());
        let _ = actor
            .stop_and_wait(Some("tenant moved".into()), Some(Duration::from_secs(10)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let b = Backoff::default();
        for jitter in [0, 1, u64::MAX / 3, u64::MAX] {
            let d: Vec<Duration> = (0..12).map(|a| b.delay(a, jitter)).collect();
            assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
            for (a, x) in d.iter().enumerate() {
                let full = Duration::from_millis(100)
                    .saturating_mul(1 << a)
                    .min(Duration::from_secs(30));
                assert!(*x >= full / 2 && *x <= full, "attempt {a}: {x:?}");
            }
            assert!(
                d[11] >= Duration::from_secs(15),
                "capped at 30 s: {:?}",
                d[11]
            );
        }
        // Absurd attempt counts neither overflow nor exceed the cap.
        assert!(b.delay(u32::MAX, u64::MAX) <= Duration::from_secs(30));
        // Different jitter spreads restarts out.
        assert_ne!(b.delay(5, 1), b.delay(5, 1_000_000_007));
    }
}
