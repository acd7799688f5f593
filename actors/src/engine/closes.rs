//! The engine's window-close API (SPEC §12): results of closed windows (the webhook outbox
//! they feed is in `engine/stores.rs`).

use std::sync::Arc;

use super::Engine;
use crate::leaderboard::close::{CloseLedger, CloseRecord};
use crate::leaderboard::query::QueryError;
use crate::leaderboard::window::{Timeframe, WindowKey};

impl Engine {
    /// The close ledger of board `id` (sled, or JetStream KV in cluster mode: the closes
    /// of every node).
    fn close_store(&self, tenant: &str, id: &str) -> Result<Arc<dyn CloseLedger>, QueryError> {
        if self.get_leaderboard(tenant, id)?.is_none() {
            return Err(QueryError::NoBoard(id.to_owned()));
        }
        Ok((self.inner.bundle.closes)(tenant, id)?)
    }

    /// The final standings and grants of a closed window; `NoWindow` if it is not closed.
    pub fn window_results(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        key: WindowKey,
    ) -> Result<CloseRecord, QueryError> {
        self.close_store(tenant, id)?
            .get(tf, key)?
            .ok_or_else(|| QueryError::NoWindow(format!("{key} is not closed")))
    }

    /// The closed windows of a timeframe, newest first.
    pub fn window_closes(
        &self,
        tenant: &str,
        id: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<Vec<CloseRecord>, QueryError> {
        Ok(self.close_store(tenant, id)?.list(tf, limit)?)
    }
}
