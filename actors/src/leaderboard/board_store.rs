//! Where a board's durable facts live: its checkpoint and its frozen windows (history), behind
//! one contract, [`BoardStore`]. The sled implementation ([`SledBoardStore`]) sits beside it and
//! [`contract::run`] is the suite every implementation must pass.

pub mod checkpoint;
pub mod contract;
mod sled_store;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use sled_store::SledBoardStore;

use std::sync::Arc;

use super::rank::Entry;
use super::state::Window;
use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;

/// Opens the [`BoardStore`] of `(tenant, board)`: how the engine hands a backend (sled, or
/// JetStream KV in cluster mode) to each board actor.
pub type BoardStoreFactory =
    Arc<dyn Fn(&str, &str) -> Result<Arc<dyn BoardStore>, EngineError> + Send + Sync>;

/// One board's checkpoint and history.
///
/// **Atomic with what.** Each call is atomic on its own and nothing else: a reader sees a
/// checkpoint whole, old or new, and a frozen window whole (rows, user index and total) or
/// not at all. A checkpoint and the history of the windows it froze are *not* written
/// together; the order makes that safe (a window's history is written before any checkpoint
/// that no longer holds it as open). [`clear`](Self::clear) drops the checkpoint first, then
/// the history: a crash between leaves history without a checkpoint, and a board that starts
/// without a checkpoint clears its history.
///
/// **Durable when.** Writes become durable in the order they were made, at the store's next
/// flush: for sled, the shared `Db`'s flush that the committer makes before it acknowledges
/// a round (`EventLog::sync`), or `Engine::persist`. A checkpoint that is lost is harmless:
/// the board replays the log from the one before — but a long replay: a board that
/// checkpoints while nothing else writes asks for that flush itself
/// ([`BoardStore::flushed_by_the_log`]).
pub trait BoardStore: Send + Sync {
    /// Whether this store's writes become durable only with the event log's next fsync (the
    /// sled store shares the log's `Db`): a board that checkpoints while ingest is idle then
    /// submits a round to the committer, or the checkpoint would stay in memory until the
    /// next event and a crash meanwhile would replay everything since the last one that
    /// reached the disk. `false` (the default): every write is durable on its own.
    fn flushed_by_the_log(&self) -> bool {
        false
    }

    /// Replaces the checkpoint with `state` ([`crate::leaderboard::state::BoardState::encode`])
    /// taken under `definition` (the definition's canonical JSON).
    fn save_checkpoint(&self, definition: &str, state: &[u8]) -> Result<(), EngineError>;

    /// The checkpoint, if one was saved (and not cleared).
    fn load_checkpoint(&self) -> Result<Option<Checkpoint>, EngineError>;

    /// The log position the checkpoint has applied, 0 without one: retention never deletes
    /// past it. Cheaper than loading the checkpoint.
    fn checkpointed_seq(&self) -> Result<u64, EngineError>;

    /// Stores a frozen window: its entries in rank order and its total.
    fn write_window(&self, tf: Timeframe, key: WindowKey, w: &Window) -> Result<(), EngineError>;

    /// Total entries of a frozen window, or `None` if it is not in history.
    fn window_total(&self, tf: Timeframe, key: WindowKey) -> Result<Option<usize>, EngineError>;

    /// Entries at positions `offset+1 ..= offset+limit` of a frozen window (shared ties keep
    /// their shared rank). Extreme values neither wrap nor panic.
    fn window_range(
        &self,
        tf: Timeframe,
        key: WindowKey,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>, EngineError>;

    /// A user's (position, rank, score) in a frozen window; position and rank differ only
    /// inside a shared tie.
    fn window_locate(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, usize, f64)>, EngineError>;

    /// Drops one frozen window (history retention).
    fn drop_window(&self, tf: Timeframe, key: WindowKey) -> Result<(), EngineError>;

    /// Drops the checkpoint and every frozen window (definition changed or board deleted).
    fn clear(&self) -> Result<(), EngineError>;

    /// A user's (rank, score) in a frozen window.
    fn window_user(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, f64)>, EngineError> {
        Ok(self
            .window_locate(tf, key, user)?
            .map(|(_, rank, score)| (rank, score)))
    }

    /// A user's (rank, score) and up to `radius` neighbours on each side, in rank order.
    fn window_around(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
        radius: usize,
    ) -> Result<Option<(usize, f64, Vec<Entry>)>, EngineError> {
        let Some((position, rank, score)) = self.window_locate(tf, key, user)? else {
            return Ok(None);
        };
        let from = position.saturating_sub(radius.saturating_add(1));
        let limit = (position - from).saturating_add(radius);
        let entries = self.window_range(tf, key, from, limit)?;
        Ok(Some((rank, score, entries)))
    }
}
