//! The swappable engine that `AppState` holds (SPEC §10, "a store that heals"): empty until
//! the store first opens, then the running engine. A keeper task watches it: when the
//! store has failed (a write or fsync hit ENOSPC or EIO, and sled latched the error), it
//! waits with backoff until the data dir's filesystem has room again, takes the engine
//! down, drops every handle of the old store, and opens a new engine, which re-derives
//! positions from the log exactly as at start-up. Reads keep answering from the failed
//! engine until it is taken down; nothing is acknowledged across the gap, because every
//! write whose append or fsync failed was answered 503 and positions restart from the log.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use phoenix_actors::supervisor::{jitter, Backoff};
use phoenix_actors::Engine;
use tokio::task::JoinHandle;

/// Free bytes the data dir's filesystem needs before a failed store is reopened: sled
/// writes whole 8 MiB segments, so a reopen with less would only fail again.
pub const REOPEN_MIN_FREE: u64 = 16 << 20;

/// The engine slot. Cheap to clone; clones share the slot.
#[derive(Clone, Default)]
pub struct EngineSlot {
    current: Arc<RwLock<Option<Engine>>>,
}

impl EngineSlot {
    /// The running engine, if the store is open (a clone: drop it when the request is done).
    pub fn get(&self) -> Option<Engine> {
        self.current.read().expect("engine slot").clone()
    }

    fn set(&self, engine: Engine) {
        *self.current.write().expect("engine slot") = Some(engine);
    }

    fn take(&self) -> Option<Engine> {
        self.current.write().expect("engine slot").take()
    }
}

/// A started engine and the edge tasks that hold a handle of it (stopped on a heal).
pub struct Running {
    pub engine: Engine,
    pub workers: Vec<JoinHandle<()>>,
}

/// Why an engine could not be opened (the store, or what the edge does once it is open).
pub type OpenError = Box<dyn std::error::Error + Send + Sync>;

/// Opens an engine: the edge's store opening, restore of admin changes, workers.
pub type Opener =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Running, OpenError>> + Send>> + Send + Sync>;

/// When the keeper reopens and how often it looks.
#[derive(Debug, Clone)]
pub struct Healing {
    /// The data dir, whose free space decides when a failed store is worth reopening.
    pub data_dir: PathBuf,
    /// Waits between tries (`store_reopen_initial_ms` … `store_reopen_max_ms`).
    pub backoff: Backoff,
    /// How often a healthy engine is checked.
    pub check_every: Duration,
}

/// Put `first` (the engine opened before serving, if it opened) in the slot and keep the
/// slot filled for the life of the process: open with backoff while empty, heal a failed
/// store. Returns the keeper task and aborts the workers of an engine it takes down.
pub fn keep(slot: EngineSlot, first: Option<Running>, open: Opener, healing: Healing) -> Keeper {
    let mut workers = Vec::new();
    if let Some(r) = first {
        slot.set(r.engine);
        workers = r.workers;
    }
    let task_slot = slot.clone();
    let task = tokio::spawn(async move { run(task_slot, workers, open, healing).await });
    Keeper { slot, task }
}

/// The keeper task, stopped (with the engine it holds) by [`Keeper::stop`].
pub struct Keeper {
    slot: EngineSlot,
    task: JoinHandle<()>,
}

impl Keeper {
    /// Stop keeping, and shut the current engine down.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        if let Some(engine) = self.slot.take() {
            engine.shutdown().await;
        }
    }
}

async fn run(slot: EngineSlot, mut workers: Vec<JoinHandle<()>>, open: Opener, healing: Healing) {
    let mut attempt: u32 = 0;
    // Whether the slot was emptied by a heal (then an open is counted as a reopen).
    let mut healing_now = false;
    loop {
        let wait = healing.backoff.delay(attempt, jitter());
        match slot.get() {
            Some(engine) if engine.store_healthy() => {
                drop(engine);
                attempt = 0;
                tokio::time::sleep(healing.check_every).await;
            }
            Some(engine) => {
                metrics::gauge!("phoenix_store_failed").set(1.0);
                drop(engine);
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
                let free = phoenix_actors::retention::available(&healing.data_dir).unwrap_or(0);
                if free < REOPEN_MIN_FREE {
                    tracing::warn!(
                        free,
                        need = REOPEN_MIN_FREE,
                        "store failed; waiting for disk space before reopening"
                    );
                    continue;
                }
                tracing::warn!("store failed; closing it to reopen");
                for w in workers.drain(..) {
                    w.abort();
                    let _ = w.await;
                }
                if let Some(old) = slot.take() {
                    old.shutdown().await;
                }
                healing_now = true;
            }
            None => {
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
                match open().await {
                    Ok(r) => {
                        metrics::counter!("phoenix_store_open_attempts_total", "result" => "ok")
                            .increment(1);
                        if healing_now {
                            metrics::counter!("phoenix_store_reopens_total").increment(1);
                            tracing::info!("store reopened; writes are served again");
                        } else {
                            tracing::info!("store opened; ready");
                        }
                        metrics::gauge!("phoenix_store_failed").set(0.0);
                        slot.set(r.engine);
                        workers = r.workers;
                        healing_now = false;
                        attempt = 0;
                    }
                    Err(e) => {
                        metrics::counter!("phoenix_store_open_attempts_total", "result" => "failed")
                            .increment(1);
                        tracing::error!(error = %e, cause = ?e.source(), attempt, "store unavailable; retrying with backoff");
                    }
                }
            }
        }
    }
}
