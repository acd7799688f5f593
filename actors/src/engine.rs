//! `Engine`: the handle the edge (`src/`) holds. Starts the supervisor and the group
//! committer, routes calls to tenant actors with timeouts, and hands out the state stores
//! (`engine/stores.rs`); no sled handle leaves it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::committer::Committer;
use crate::error::EngineError;
use crate::event::Event;
use crate::feed::Feed;
use crate::retention::DiskGuard;
use crate::store::{EventLog, LogEntry};
use crate::supervisor::{BoardRoutes, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::tenant::{Outcome, Routes, TenantArgs};

/// Engine settings (from the service config).
#[derive(Clone)]
pub struct EngineConfig {
    /// The server clock (tests substitute one they can move).
    pub clock: crate::leaderboard::clock::Clock,
    /// How long an accepted `event_id` is remembered (server clock).
    pub dedupe_window: Duration,
    /// Most remembered ids per tenant; past it the oldest are forgotten early (counted).
    pub dedupe_capacity: usize,
    /// Timeout on every call into an actor.
    pub call_timeout: Duration,
    /// Minimum time between leaderboard checkpoints.
    pub checkpoint_interval: Duration,
    /// Frozen leaderboard windows that ended longer ago than this are dropped.
    pub history_retention: Duration,
    /// Least time between two pushes of one live view (20 frames/s at 50 ms).
    pub push_interval: Duration,
    /// The data dir, whose filesystem's free space the disk guard watches (none: unwatched).
    pub data_dir: Option<std::path::PathBuf>,
    /// Below this many free bytes, writes are refused ("disk space low") before any fails.
    pub min_free_disk_bytes: u64,
    /// How often free space (and the store's size) is measured.
    pub disk_check_interval: Duration,
    /// How long log records are kept (at least the dedupe window, and until every board has
    /// checkpointed past them).
    pub log_retention: Duration,
    /// Per-tenant retention, overriding `log_retention`.
    pub retention_overrides: HashMap<String, Duration>,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Limits of a window close (results kept, grants, webhook outbox).
    pub close: crate::leaderboard::actor::CloseSettings,
    /// Most leaderboards one tenant may define; creating one more is refused.
    pub max_leaderboards_per_tenant: usize,
    /// Decoded log entries each tenant's feed keeps for its boards; a board further behind
    /// reads the log itself.
    pub feed_buffer_events: usize,
    /// Most bytes of one tenant's events between two fsyncs while other tenants write too: a
    /// tenant's flood waits for later fsyncs instead of lengthening the one others wait on.
    pub commit_round_bytes_per_tenant: usize,
    /// The same while the tenant is the only one writing.
    pub commit_round_bytes_alone: usize,
    /// How failed actors are restarted.
    pub restart: crate::supervisor::Backoff,
    /// Worker threads of the separate runtime leaderboards and feeds run on (the first engine
    /// of a process fixes it).
    pub leaderboard_threads: usize,
    /// The CPU priority of those threads.
    pub leaderboard_priority: crate::supervisor::BoardPriority,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("dedupe_window", &self.dedupe_window)
            .field("dedupe_capacity", &self.dedupe_capacity)
            .field("push_interval", &self.push_interval)
            .field(
                "max_leaderboards_per_tenant",
                &self.max_leaderboards_per_tenant,
            )
            .field("feed_buffer_events", &self.feed_buffer_events)
            .field(
                "commit_round_bytes_per_tenant",
                &self.commit_round_bytes_per_tenant,
            )
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    fn board_runtime(&self) -> crate::supervisor::BoardRuntime {
        crate::supervisor::BoardRuntime {
            threads: self.leaderboard_threads,
            priority: self.leaderboard_priority,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clock: crate::leaderboard::clock::system_clock(),
            dedupe_window: Duration::from_secs(300),
            dedupe_capacity: 5_000_000,
            call_timeout: Duration::from_secs(10),
            checkpoint_interval: Duration::from_secs(5),
            history_retention: Duration::from_secs(400 * 86_400),
            push_interval: Duration::from_millis(50),
            data_dir: None,
            min_free_disk_bytes: 256 << 20,
            disk_check_interval: Duration::from_secs(1),
            log_retention: Duration::from_secs(168 * 3600),
            retention_overrides: HashMap::new(),
            retention_interval: Duration::from_secs(60),
            close: Default::default(),
            max_leaderboards_per_tenant: 100,
            feed_buffer_events: 8192,
            commit_round_bytes_per_tenant: 32 * 1024,
            commit_round_bytes_alone: 1024 * 1024,
            restart: crate::supervisor::Backoff::default(),
            leaderboard_threads: 1,
            leaderboard_priority: Default::default(),
        }
    }
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventLog>,
    /// The sled store of the state (and, embedded, the log), synced by `persist`.
    state: crate::stores::SledStore,
    /// Where the state stores live (sled, or JetStream KV in cluster mode).
    bundle: EngineStores,
    /// The per-tenant state stores handed out (`engine/stores.rs`), opened on first use.
    stores: stores::Opened,
    boards: BoardRoutes,
    committer: Committer,
    config: EngineConfig,
    routes: Routes,
    heads: RwLock<HashMap<String, Arc<watch::Sender<u64>>>>,
    /// Each tenant's reader, shared by its boards.
    feeds: RwLock<HashMap<String, Arc<Feed>>>,
    /// Held while definitions are created or deleted, so the per-tenant cap is exact.
    defs_lock: tokio::sync::Mutex<()>,
    supervisor: ActorRef<SupervisorMsg>,
    disk: DiskGuard,
    /// Set when a state fsync failed (the log tracks its own failures).
    state_failed: std::sync::atomic::AtomicBool,
    /// Tenant actors started with the engine still rebuilding their dedupe window
    /// ([`Engine::starting`]).
    rebuilding: Arc<std::sync::atomic::AtomicUsize>,
    /// `true` once shut down.
    stopped: watch::Sender<bool>,
}

impl Engine {
    /// Start the supervisor with one tenant actor per id in `tenants`, and every leaderboard
    /// stored in `state`, with every state store in `state` ([`EngineStores::sled`]).
    pub async fn start(
        log: Arc<dyn EventLog>,
        state: crate::stores::SledStore,
        tenants: &[String],
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let bundle = EngineStores::sled(&state)?;
        Engine::start_with_stores(log, state, bundle, tenants, config).await
    }

    /// [`Engine::start`] with the state stores taken from `bundle` (e.g. JetStream KV);
    /// `state` still holds what the bundle does not (window-close records) and is synced by
    /// [`Engine::persist`].
    pub async fn start_with_stores(
        log: Arc<dyn EventLog>,
        state: crate::stores::SledStore,
        bundle: EngineStores,
        tenants: &[String],
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let committer = Committer::start(
            log.clone(),
            crate::committer::Budget {
                shared: config.commit_round_bytes_per_tenant,
                alone: config.commit_round_bytes_alone,
            },
        );
        let routes: Routes = Arc::new(RwLock::new(HashMap::new()));
        let boards: BoardRoutes = Arc::new(RwLock::new(HashMap::new()));
        let mut heads = HashMap::new();
        let mut args = Vec::new();
        let rebuilding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for t in tenants {
            let head = Arc::new(watch::channel(0).0);
            heads.insert(t.clone(), head.clone());
            args.push(tenant_args(t, &log, &committer, head, &config, &rebuilding));
        }
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                routes: routes.clone(),
                boards: boards.clone(),
                tenants: args,
                backoff: config.restart,
                board_runtime: config.board_runtime(),
            },
        )
        .await
        .map_err(|e| EngineError::ActorUnavailable(e.to_string()))?;
        let disk = DiskGuard::new(config.data_dir.clone(), config.min_free_disk_bytes);
        let engine = Engine {
            inner: Arc::new(Inner {
                log,
                state,
                bundle,
                stores: Default::default(),
                boards,
                committer,
                config,
                routes,
                heads: RwLock::new(heads),
                feeds: RwLock::new(HashMap::new()),
                defs_lock: tokio::sync::Mutex::new(()),
                supervisor,
                disk,
                state_failed: Default::default(),
                rebuilding,
                stopped: watch::channel(false).0,
            }),
        };
        // Tenant actors have set the heads from the log: the feeds start reading after them.
        for t in tenants {
            engine.feed(t);
        }
        for t in tenants {
            engine.count_boards(t)?;
        }
        engine.start_stored_boards().await?;
        engine.start_maintenance();
        Ok(engine)
    }

    /// Start an actor for a tenant created at run time (no-op if it exists).
    pub async fn add_tenant(&self, tenant: &str) -> Result<(), EngineError> {
        let head = {
            let mut heads = self.inner.heads.write().expect("heads");
            heads
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(watch::channel(0).0))
                .clone()
        };
        let i = &self.inner;
        // Not counted by `starting`: a tenant added or taken over at run time does not make the
        // whole node unready; its own events wait for its rebuild.
        let args = tenant_args(
            tenant,
            &i.log,
            &i.committer,
            head,
            &i.config,
            &Arc::default(),
        );
        match i
            .supervisor
            .call(
                |r| SupervisorMsg::AddTenant(args, r),
                Some(i.config.call_timeout),
            )
            .await
        {
            Ok(CallResult::Success(())) => {
                self.feed(tenant);
                self.count_boards(tenant)?;
                Ok(())
            }
            other => Err(EngineError::ActorUnavailable(format!("{other:?}"))),
        }
    }

    /// Cluster mode: run `tenant` on this node (it took the tenant's lease): its actor, which
    /// rebuilds position and dedupe window from the log, and every board stored here, each
    /// from its checkpoint if this node has one under the same definition, else from the log.
    /// An actor already running for it (the edge's admin restore adds every registered
    /// tenant) is replaced, so the owner's actor always starts from the log as it is now.
    pub async fn start_tenant(&self, tenant: &str) -> Result<(), EngineError> {
        if self.tenant_actor(tenant).is_some() {
            self.stop_tenant(tenant).await?;
        }
        self.add_tenant(tenant).await?;
        for def in self.list_leaderboards(tenant)? {
            let Some(id) = def.get("id").and_then(|v| v.as_str()).map(str::to_owned) else {
                continue;
            };
            self.put_leaderboard(tenant, &id, &def)
                .await
                .map_err(|e| EngineError::ActorUnavailable(format!("leaderboard {id}: {e}")))?;
        }
        Ok(())
    }

    /// Cluster mode: stop running `tenant` here (its lease moved or was handed off): its
    /// boards, its actor and its feed. What it logged stays in the log for the next owner.
    pub async fn stop_tenant(&self, tenant: &str) -> Result<(), EngineError> {
        let t = tenant.to_owned();
        let i = &self.inner;
        match i
            .supervisor
            .call(
                |r| SupervisorMsg::StopTenant(t, r),
                Some(i.config.call_timeout.saturating_mul(2)),
            )
            .await
        {
            Ok(CallResult::Success(())) => {}
            other => return Err(EngineError::ActorUnavailable(format!("{other:?}"))),
        }
        if let Some(f) = i.feeds.write().expect("feeds").remove(tenant) {
            f.stop();
        }
        i.heads.write().expect("heads").remove(tenant);
        Ok(())
    }

    /// Whether `other` is a handle of this same engine (not one opened later).
    pub fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The tenant's feed, started on first use (after its actor has set the head).
    pub(crate) fn feed(&self, tenant: &str) -> Option<Arc<Feed>> {
        if let Some(f) = self.inner.feeds.read().expect("feeds").get(tenant) {
            return Some(f.clone());
        }
        let head = self.durable_head(tenant)?;
        let mut feeds = self.inner.feeds.write().expect("feeds");
        let feed = feeds.entry(tenant.to_owned()).or_insert_with(|| {
            Feed::start(
                tenant,
                self.inner.log.clone(),
                head,
                self.inner.config.feed_buffer_events,
                &crate::supervisor::board_runtime(self.inner.config.board_runtime()),
            )
        });
        Some(feed.clone())
    }

    /// Dedupe and durably log `events` for `tenant`. Returns one outcome per event, in order,
    /// only after every accepted event is fsync'd.
    pub async fn ingest(
        &self,
        tenant: &str,
        events: Vec<Event>,
    ) -> Result<Vec<Outcome>, EngineError> {
        self.writable()?;
        let actor = self
            .inner
            .routes
            .read()
            .expect("routes")
            .get(tenant)
            .cloned()
            .ok_or_else(|| EngineError::UnknownTenant(tenant.to_owned()))?;
        let call = actor
            .call(
                |reply| crate::tenant::TenantMsg::Ingest { events, reply },
                Some(self.inner.config.call_timeout),
            )
            .await;
        match call {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(EngineError::ActorUnavailable("timed out".into())),
            Ok(CallResult::SenderError) => Err(EngineError::ActorUnavailable(
                "actor stopped mid-call".into(),
            )),
            Err(e) => Err(EngineError::ActorUnavailable(e.to_string())),
        }
    }

    /// Up to `max` durable log entries of `tenant` from position `from`.
    pub fn read_log(
        &self,
        tenant: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, EngineError> {
        let head = self.durable_head(tenant).map(|h| *h.borrow()).unwrap_or(0);
        let mut entries = self.inner.log.read_from(tenant, from, max)?;
        entries.retain(|e| e.seq <= head);
        Ok(entries)
    }

    /// The durable head of `tenant`'s log: the last position every consumer may read.
    pub fn durable_head(&self, tenant: &str) -> Option<watch::Receiver<u64>> {
        self.inner
            .heads
            .read()
            .expect("heads")
            .get(tenant)
            .map(|h| h.subscribe())
    }

    /// Wait until everything written so far is durable: the log (one trip through the group
    /// committer) and then the state store's own fsync, so the promise holds whatever
    /// backend the log has. A failed state fsync latches the store failed like a failed
    /// log write (nothing after it is acknowledged until the store heals).
    pub async fn persist(&self) -> Result<(), EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.committer.submit(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.await.map_err(|_| EngineError::Unavailable)??;
        let state = self.inner.state.clone();
        let synced = tokio::task::spawn_blocking(move || state.sync())
            .await
            .map_err(|_| EngineError::Unavailable)?;
        synced.map_err(|e| {
            self.inner
                .state_failed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(error = %e, "state store fsync failed; store marked unhealthy");
            EngineError::from(e)
        })
    }

    /// Whether the store can persist right now (and the disk has room).
    pub fn healthy(&self) -> bool {
        self.writable().is_ok()
    }

    /// `Ok` when writes may proceed: the store is healthy and the disk guard is not low.
    /// How many tenant actors are still rebuilding their dedupe window after a (re)start:
    /// their events wait until it is whole, so `/ready` says not yet.
    pub fn starting(&self) -> usize {
        self.inner
            .rebuilding
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn writable(&self) -> Result<(), EngineError> {
        if !self.store_healthy() {
            return Err(EngineError::Unavailable);
        }
        if self.inner.disk.low() {
            return Err(EngineError::DiskLow);
        }
        Ok(())
    }

    /// Whether the store can persist: no log write and no state fsync has failed. Once
    /// false it stays false for this engine (sled latches its error); a new engine on a
    /// reopened store is how it heals.
    pub fn store_healthy(&self) -> bool {
        self.inner.log.healthy()
            && !self
                .inner
                .state_failed
                .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current actor of a tenant (tests use it to inject faults).
    pub fn tenant_actor(&self, tenant: &str) -> Option<ActorRef<crate::tenant::TenantMsg>> {
        self.inner
            .routes
            .read()
            .expect("routes")
            .get(tenant)
            .cloned()
    }

    /// Stop the supervisor and its children, and the feeds. The store closes once the last
    /// clone of this engine is dropped (its actors and threads hold none after this).
    pub async fn shutdown(&self) {
        self.inner.supervisor.stop(None);
        for f in self.inner.feeds.read().expect("feeds").values() {
            f.stop();
        }
        self.inner.stores.clear();
        let _ = self.inner.stopped.send(true);
    }

    /// Becomes `true` once [`Engine::shutdown`] ran: holders of a clone (a WebSocket
    /// session, a worker) let go of it then, so the store can be closed and reopened.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.inner.stopped.subscribe()
    }
}

fn tenant_args(
    tenant: &str,
    log: &Arc<dyn EventLog>,
    committer: &Committer,
    head: Arc<watch::Sender<u64>>,
    config: &EngineConfig,
    rebuilding: &Arc<std::sync::atomic::AtomicUsize>,
) -> TenantArgs {
    TenantArgs {
        tenant: tenant.to_owned(),
        log: log.clone(),
        committer: committer.clone(),
        head,
        dedupe_window_ms: i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX),
        dedupe_capacity: config.dedupe_capacity,
        rebuilding: rebuilding.clone(),
    }
}

mod closes;
mod leaderboards;
mod maintenance;
mod stores;

pub use stores::{EngineStores, TenantFactory};

#[cfg(test)]
#[path = "engine/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "engine/close_tests.rs"]
mod close_tests;
