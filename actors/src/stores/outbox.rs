//! The outbound-webhook outbox (SPEC §10, §12) as a contract. The sled implementation is
//! [`crate::outbox::Outbox`], whose module doc details the layout.

use crate::error::EngineError;
use crate::outbox::{Attempt, Enqueued, NewMessage, Outbox, OutboxEntry};

/// The durable outbox of messages owed to the outside.
///
/// Contract:
/// - **Atomic with its cause.** An entry is written in the transaction of whatever owes it
///   (a window close writes its record, grants and entry together, inside the engine);
///   [`WebhookOutbox::enqueue`] is the standalone form.
/// - **Durable after persist** ([`crate::Engine::persist`]). A delivery may be attempted
///   before; after a crash the cause and its entry are redone together with the same
///   `delivery_id`, so a receiver sees at most a repeat it can dedupe, never a loss.
/// - **At least once.** An entry leaves only through [`WebhookOutbox::record`] with no next
///   attempt (delivered or given up).
/// - **Bounded**: at most `max_per_tenant` entries per tenant (more are refused: `Full`);
///   the attempt log keeps the newest [`crate::outbox::ATTEMPTS_KEPT`] per tenant.
pub trait WebhookOutbox: Send + Sync + 'static {
    /// Enqueue `msg` on its own, unless the tenant has `max_per_tenant` entries.
    fn enqueue(&self, msg: &NewMessage, max_per_tenant: u64) -> Result<Enqueued, EngineError>;
    /// Up to `limit` entries due at `now_ms`, earliest first.
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, EngineError>;
    /// Record an attempt; with `next_attempt_ms` the entry stays (due then), else it leaves.
    fn record(
        &self,
        entry: &OutboxEntry,
        attempt: &Attempt,
        next_attempt_ms: Option<i64>,
    ) -> Result<(), EngineError>;
    /// The newest `limit` attempts of `tenant`, newest first.
    fn attempts(&self, tenant: &str, limit: usize) -> Result<Vec<Attempt>, EngineError>;
    /// Entries waiting for `tenant`.
    fn pending(&self, tenant: &str) -> Result<u64, EngineError>;
    /// Entries waiting, all tenants.
    fn depth(&self) -> usize;
}

impl WebhookOutbox for Outbox {
    fn enqueue(&self, msg: &NewMessage, max_per_tenant: u64) -> Result<Enqueued, EngineError> {
        Outbox::enqueue(self, msg, max_per_tenant)
    }
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, EngineError> {
        Outbox::due(self, now_ms, limit)
    }
    fn record(
        &self,
        entry: &OutboxEntry,
        attempt: &Attempt,
        next_attempt_ms: Option<i64>,
    ) -> Result<(), EngineError> {
        Outbox::record(self, entry, attempt, next_attempt_ms)
    }
    fn attempts(&self, tenant: &str, limit: usize) -> Result<Vec<Attempt>, EngineError> {
        Outbox::attempts(self, tenant, limit)
    }
    fn pending(&self, tenant: &str) -> Result<u64, EngineError> {
        Outbox::pending(self, tenant)
    }
    fn depth(&self) -> usize {
        Outbox::depth(self)
    }
}
