//! The vote-rewards ledger (SPEC §7) as a contract: deliveries (the dedupe record),
//! nickname links, balances and the grant ledger. The sled implementation is
//! [`crate::rewards::RewardStore`].

use crate::rewards::{Applied, Delivery, Grant, RewardError, RewardStore, Vote, Wallet};

/// One tenant's rewards ledger.
///
/// Contract:
/// - **A grant is atomic with its dedupe record.** [`RewardLedger::apply_vote`] writes the
///   delivery record and the grant (balance + ledger line) or the unclaimed record in one
///   transaction; a redelivery, concurrent or after a crash, is a `Duplicate` and grants
///   nothing.
/// - **A claim is atomic with its grant.** [`RewardLedger::link`] grants each unclaimed vote
///   of the nickname in one transaction that removes it, so two links never both grant it.
/// - **Durable after persist**: visible on return, durable once [`crate::Engine::persist`]
///   returns after it; answer the vote site only then.
/// - Balances never overflow: a grant that would is refused ([`RewardError::Overflow`]).
pub trait RewardLedger: Send + Sync + 'static {
    /// The dedupe record of a delivery, if any.
    fn delivery(&self, event_type: &str, event_id: &str) -> Result<Option<Delivery>, RewardError>;
    /// Deliveries in key order (event type, then id), starting after `after` if given.
    fn deliveries(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, RewardError>;
    /// Record a delivery that grants nothing (another event type), once.
    fn record_ignored(
        &self,
        event_type: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Applied, RewardError>;
    /// Apply a vote exactly once (see the contract).
    fn apply_vote(&self, vote: &Vote, now_ms: i64) -> Result<Applied, RewardError>;
    /// Link `nickname` to `user_id` and grant every unclaimed vote for it, each once.
    fn link(&self, user_id: &str, nickname: &str, now_ms: i64) -> Result<Vec<Grant>, RewardError>;
    /// Note that the grant of a delivery entered the event stream.
    fn mark_emitted(&self, event_type: &str, event_id: &str) -> Result<(), RewardError>;
    /// A player's wallet; `None` if the user was never linked and never granted anything.
    fn wallet(&self, user_id: &str) -> Result<Option<Wallet>, RewardError>;
}

impl RewardLedger for RewardStore {
    fn delivery(&self, event_type: &str, event_id: &str) -> Result<Option<Delivery>, RewardError> {
        RewardStore::delivery(self, event_type, event_id)
    }
    fn deliveries(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, RewardError> {
        RewardStore::deliveries(self, after, limit)
    }
    fn record_ignored(
        &self,
        event_type: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Applied, RewardError> {
        RewardStore::record_ignored(self, event_type, event_id, now_ms)
    }
    fn apply_vote(&self, vote: &Vote, now_ms: i64) -> Result<Applied, RewardError> {
        RewardStore::apply_vote(self, vote, now_ms)
    }
    fn link(&self, user_id: &str, nickname: &str, now_ms: i64) -> Result<Vec<Grant>, RewardError> {
        RewardStore::link(self, user_id, nickname, now_ms)
    }
    fn mark_emitted(&self, event_type: &str, event_id: &str) -> Result<(), RewardError> {
        RewardStore::mark_emitted(self, event_type, event_id)
    }
    fn wallet(&self, user_id: &str) -> Result<Option<Wallet>, RewardError> {
        RewardStore::wallet(self, user_id)
    }
}
