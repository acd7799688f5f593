//! The durable outbox (SPEC §10, §12): messages Phoenix owes to someone outside — today the
//! tenants' `leaderboard.window_closed` webhooks — kept in sled until delivered or given up,
//! plus a bounded per-tenant log of delivery attempts.
//!
//! Contract (what a second backend must keep):
//! - **Atomic with its cause.** An entry is written inside the transaction of whatever owes
//!   it ([`Outbox::enqueue_in`], used by a window close together with its grants), so the
//!   message exists exactly when its cause does. [`Outbox::enqueue`] is the standalone form.
//! - **Durable with the store.** Writes become durable with the next fsync of the shared
//!   sled db (the log's group committer, `Engine::persist`). A delivery may be attempted
//!   before then; after a crash the cause and its entry are redone together, with the same
//!   `delivery_id`, so the receiver sees at most a repeat it can dedupe, never a loss.
//! - **At least once.** An entry leaves the outbox only through [`Outbox::record`] with no
//!   next attempt (delivered, or given up); a crash between a delivery and its record means
//!   one more delivery with the same `delivery_id`.
//! - **Bounded.** At most `max_per_tenant` entries per tenant ([`Outbox::enqueue_in`] refuses
//!   more: the caller counts the drop); the attempt log keeps the newest
//!   [`ATTEMPTS_KEPT`] attempts per tenant.
//! - **Generic.** `kind` names the message type; `body` is the exact bytes to send, fixed at
//!   enqueue time so every retry sends (and signs) the same body.
//!
//! Trees: `outbox/entries` (`id:u64` → [`OutboxEntry`]), `outbox/due`
//! (`next_attempt_ms (sortable) ‖ id` → ()), `outbox/counts` (tenant → u64 entries),
//! `outbox/attempts` (`lp(tenant) ‖ seq:u64` → [`Attempt`]).

use serde::{Deserialize, Serialize};
use sled::transaction::{
    abort, ConflictableTransactionError, TransactionError, TransactionalTree,
    UnabortableTransactionError,
};
use sled::Transactional;

use crate::error::EngineError;

/// Attempts kept per tenant in the attempt log (oldest dropped first).
pub const ATTEMPTS_KEPT: usize = 1000;

/// One message waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Storage key (allocated by sled, increasing).
    pub id: u64,
    /// Stable id the receiver dedupes on (`X-Phoenix-Delivery`), the same on every retry.
    pub delivery_id: String,
    pub tenant: String,
    /// Message type, e.g. `leaderboard.window_closed`.
    pub kind: String,
    /// The exact body to send.
    pub body: String,
    /// When the entry was enqueued (ms); retries stop at `created_ms` + the retry horizon.
    pub created_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this time (ms).
    pub next_attempt_ms: i64,
}

impl OutboxEntry {
    /// `msg` as entry `id`, never tried yet: due at once.
    pub fn new(id: u64, msg: &NewMessage) -> OutboxEntry {
        OutboxEntry {
            id,
            delivery_id: msg.delivery_id.clone(),
            tenant: msg.tenant.clone(),
            kind: msg.kind.clone(),
            body: msg.body.clone(),
            created_ms: msg.created_ms,
            attempts: 0,
            next_attempt_ms: msg.created_ms,
        }
    }
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub delivery_id: String,
    pub tenant: String,
    pub kind: String,
    pub body: String,
    pub created_ms: i64,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The receiver answered 2xx: done.
    Delivered,
    /// Transport error, timeout or non-2xx: retried later.
    Failed,
    /// Failed, and the retry horizon has passed: dropped.
    GaveUp,
    /// The tenant has no webhook URL: dropped without sending.
    NoEndpoint,
}

/// One delivery attempt, as listed by `GET /v1/webhooks/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub delivery_id: String,
    pub kind: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub at_ms: i64,
    pub result: AttemptResult,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt is due, if there is one.
    #[serde(default)]
    pub next_attempt_ms: Option<i64>,
}

/// What [`Outbox::enqueue_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The tenant's outbox is full: nothing written (the caller counts it).
    Full,
}

/// The outbox store. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    entries: sled::Tree,
    due: sled::Tree,
    counts: sled::Tree,
    attempts: sled::Tree,
}

/// The transactional views of the outbox's trees, for [`Outbox::enqueue_in`].
pub struct OutboxTx<'a> {
    pub entries: &'a TransactionalTree,
    pub due: &'a TransactionalTree,
    pub counts: &'a TransactionalTree,
}

fn sortable_ms(ms: i64) -> [u8; 8] {
    let mut b = ms.to_be_bytes();
    b[0] ^= 0x80;
    b
}

fn due_key(ms: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sortable_ms(ms));
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn lp(s: &str) -> Vec<u8> {
    let mut k = u32::try_from(s.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    k.extend_from_slice(s.as_bytes());
    k
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Storage(format!("corrupt outbox {what}: {e}"))
}

fn count_of(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn tx_err(e: TransactionError<EngineError>) -> EngineError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

impl Outbox {
    pub fn open(db: &sled::Db) -> Result<Outbox, EngineError> {
        Ok(Outbox {
            db: db.clone(),
            entries: db.open_tree("outbox/entries")?,
            due: db.open_tree("outbox/due")?,
            counts: db.open_tree("outbox/counts")?,
            attempts: db.open_tree("outbox/attempts")?,
        })
    }

    /// The trees a caller's transaction must include for [`Outbox::enqueue_in`], in the
    /// order of [`OutboxTx`]'s fields.
    pub fn trees(&self) -> (&sled::Tree, &sled::Tree, &sled::Tree) {
        (&self.entries, &self.due, &self.counts)
    }

    /// A fresh entry id (call before the transaction: sled ids are not transactional; a
    /// retried transaction may reuse it).
    pub fn next_id(&self) -> Result<u64, EngineError> {
        Ok(self.db.generate_id()?)
    }

    /// Enqueue `msg` as entry `id` inside the caller's transaction, unless the tenant already
    /// has `max_per_tenant` entries.
    pub fn enqueue_in(
        tx: &OutboxTx<'_>,
        id: u64,
        msg: &NewMessage,
        max_per_tenant: u64,
    ) -> Result<Enqueued, UnabortableTransactionError> {
        let count = count_of(tx.counts.get(msg.tenant.as_bytes())?.as_deref());
        if count >= max_per_tenant {
            return Ok(Enqueued::Full);
        }
        let entry = OutboxEntry::new(id, msg);
        let bytes = serde_json::to_vec(&entry).expect("outbox entries serialise");
        tx.entries.insert(&id.to_be_bytes(), bytes)?;
        tx.due.insert(&due_key(entry.next_attempt_ms, id), &[])?;
        tx.counts
            .insert(msg.tenant.as_bytes(), &(count + 1).to_be_bytes())?;
        Ok(Enqueued::Queued)
    }

    /// Enqueue `msg` on its own (one transaction).
    pub fn enqueue(&self, msg: &NewMessage, max_per_tenant: u64) -> Result<Enqueued, EngineError> {
        let id = self.next_id()?;
        (&self.entries, &self.due, &self.counts)
            .transaction(|(entries, due, counts)| -> Result<Enqueued, ConflictableTransactionError<EngineError>> {
                Ok(Outbox::enqueue_in(
                    &OutboxTx {
                        entries,
                        due,
                        counts,
                    },
                    id,
                    msg,
                    max_per_tenant,
                )?)
            })
            .map_err(tx_err)
    }

    /// Up to `limit` entries due at `now_ms`, earliest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, EngineError> {
        let end = due_key(now_ms.saturating_add(1), 0);
        let mut out = Vec::new();
        for kv in self.due.range(..end.as_slice()).take(limit) {
            let (k, _) = kv?;
            let id = u64::from_be_bytes(k[8..16].try_into().map_err(|e| corrupt("due key", e))?);
            if let Some(v) = self.entries.get(id.to_be_bytes())? {
                out.push(serde_json::from_slice(&v).map_err(|e| corrupt("entry", e))?);
            } else {
                // An index key without its entry (cannot happen through this API): drop it.
                self.due.remove(k)?;
            }
        }
        Ok(out)
    }

    /// Record an attempt of `entry`. With `next_attempt_ms` the entry stays, due then;
    /// without, it leaves the outbox (delivered or given up).
    pub fn record(
        &self,
        entry: &OutboxEntry,
        attempt: &Attempt,
        next_attempt_ms: Option<i64>,
    ) -> Result<(), EngineError> {
        let seq = self.db.generate_id()?;
        let mut akey = lp(&entry.tenant);
        akey.extend_from_slice(&seq.to_be_bytes());
        let abytes = serde_json::to_vec(attempt).map_err(|e| corrupt("attempt", e))?;
        (&self.entries, &self.due, &self.counts, &self.attempts)
            .transaction(|(entries, due, counts, attempts)| {
                let id = entry.id.to_be_bytes();
                let Some(v) = entries.get(id)? else {
                    return Ok(()); // already recorded (a concurrent worker, or a replay)
                };
                let mut stored: OutboxEntry = match serde_json::from_slice(&v) {
                    Ok(s) => s,
                    Err(e) => return abort(corrupt("entry", e)),
                };
                due.remove(&due_key(stored.next_attempt_ms, stored.id))?;
                attempts.insert(akey.as_slice(), abytes.as_slice())?;
                match next_attempt_ms {
                    Some(next) => {
                        stored.attempts = attempt.attempt;
                        stored.next_attempt_ms = next;
                        let bytes = match serde_json::to_vec(&stored) {
                            Ok(b) => b,
                            Err(e) => return abort(corrupt("entry", e)),
                        };
                        entries.insert(&id, bytes)?;
                        due.insert(&due_key(next, stored.id), &[])?;
                    }
                    None => {
                        entries.remove(&id)?;
                        let c = count_of(counts.get(stored.tenant.as_bytes())?.as_deref());
                        counts
                            .insert(stored.tenant.as_bytes(), &c.saturating_sub(1).to_be_bytes())?;
                    }
                }
                Ok(())
            })
            .map_err(tx_err)?;
        // Trim the attempt log to the newest ATTEMPTS_KEPT of this tenant.
        for k in self
            .attempts
            .scan_prefix(lp(&entry.tenant))
            .rev()
            .skip(ATTEMPTS_KEPT)
        {
            self.attempts.remove(k?.0)?;
        }
        Ok(())
    }

    /// The newest `limit` attempts of `tenant`, newest first.
    pub fn attempts(&self, tenant: &str, limit: usize) -> Result<Vec<Attempt>, EngineError> {
        self.attempts
            .scan_prefix(lp(tenant))
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| corrupt("attempt", e))
            })
            .collect()
    }

    /// Entries waiting for `tenant`.
    pub fn pending(&self, tenant: &str) -> Result<u64, EngineError> {
        Ok(count_of(self.counts.get(tenant.as_bytes())?.as_deref()))
    }

    /// Entries waiting, all tenants.
    pub fn depth(&self) -> usize {
        self.entries.len()
    }
}

/// A sample message, shared by the unit tests below and the contract suite
/// (`stores::contract::outbox`).
pub mod fixtures {
    use super::NewMessage;

    /// A `test.kind` message of `tenant` with delivery id `id`, created at `at` ms.
    pub fn msg(tenant: &str, id: &str, at: i64) -> NewMessage {
        NewMessage {
            delivery_id: id.into(),
            tenant: tenant.into(),
            kind: "test.kind".into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            created_ms: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::msg;
    use super::*;

    #[test]
    fn outbox_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            Outbox::open(&db)
                .unwrap()
                .enqueue(&msg("t", "d", 5), 10)
                .unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let o = Outbox::open(&db).unwrap();
        assert_eq!(o.due(5, 10).unwrap()[0].delivery_id, "d");
        assert_eq!(o.pending("t").unwrap(), 1);
    }
}
