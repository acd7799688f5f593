//! [`KvOutbox`]: the webhook outbox in bucket `<prefix>_OUTBOX`.
//!
//! Keys: `seq` → the last entry id (a compare-and-set counter); `e.<tenant>.<id>` (id
//! zero-padded to 20 digits) → the [`OutboxEntry`]; `a.<tenant>` → that tenant's attempt log
//! (newest [`ATTEMPTS_KEPT`], one value).
//!
//! **Atomic with what.** An entry is one key: enqueued, rescheduled (compare-and-set on its
//! revision) and removed whole, so two nodes recording the same entry change it once. The
//! attempt log is written after the entry's change (a crash between loses the log line,
//! never the entry). A window close's entry is *not* written in the close's transaction on
//! this backend: `super::KvCloses` reserves an id in the close record, then writes the entry
//! with [`KvOutbox::insert_once`] (create on revision 0), so a close finished twice enqueues
//! once.
//! **Durable when** each call returns (stream quorum).
//! **Bounded**: `max_per_tenant` is checked against the tenant's stored entries; enqueues
//! racing on different nodes can each pass the check, so the bound holds within one entry
//! per concurrently enqueuing node.

use super::bucket::{key, part, Bucket};
use crate::error::EngineError;
use crate::outbox::{Attempt, Enqueued, NewMessage, OutboxEntry, ATTEMPTS_KEPT};
use crate::stores::WebhookOutbox;

/// The cluster-wide [`WebhookOutbox`].
#[derive(Clone)]
pub struct KvOutbox {
    bucket: Bucket,
}

fn corrupt(what: &'static str, e: serde_json::Error) -> EngineError {
    EngineError::CorruptRecord {
        what,
        source: std::sync::Arc::new(e),
    }
}

impl KvOutbox {
    pub fn new(bucket: Bucket) -> KvOutbox {
        KvOutbox { bucket }
    }

    fn entry_key(tenant: &str, id: u64) -> String {
        format!("{}.{id:020}", key(&["e", tenant]))
    }

    /// A fresh entry id (the `seq` counter, compare-and-set).
    pub(crate) fn next_id(&self) -> Result<u64, EngineError> {
        self.bucket.modify("seq", |old| -> Result<_, EngineError> {
            let n = old
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            Ok((Some(n.to_string().into_bytes()), n))
        })
    }

    /// Write `msg` as entry `id` if that entry was never written: `false` if it exists or
    /// existed (delivered and removed since: its delete marker stays), so a caller that
    /// reserved `id` can repeat this after a crash without a second delivery.
    pub(crate) fn insert_once(&self, id: u64, msg: &NewMessage) -> Result<bool, EngineError> {
        let entry = OutboxEntry::new(id, msg);
        let v = serde_json::to_vec(&entry).expect("outbox entries serialise");
        let k = KvOutbox::entry_key(&msg.tenant, id);
        Ok(self.bucket.update(&k, v, 0)?.is_some())
    }

    fn entries(&self, prefix: &str) -> Result<Vec<OutboxEntry>, EngineError> {
        self.bucket
            .entries(prefix)?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).map_err(|e| corrupt("outbox entry", e)))
            .collect()
    }

    /// Delete entry `k` on the revision read (retried while others change it): whether
    /// this call removed it.
    fn remove(&self, k: &str) -> Result<bool, EngineError> {
        for _ in 0..64 {
            let Some((_, rev)) = self.bucket.get(k)? else {
                return Ok(false);
            };
            if self.bucket.delete_at(k, rev)? {
                return Ok(true);
            }
        }
        Err(crate::cluster::ClusterError::api("outbox remove", "lost 64 races in a row").into())
    }

    fn log_attempt(&self, tenant: &str, attempt: &Attempt) -> Result<(), EngineError> {
        self.bucket
            .modify(&key(&["a", tenant]), |old| -> Result<_, EngineError> {
                let mut log: Vec<Attempt> = match old {
                    Some(v) => serde_json::from_slice(v).map_err(|e| corrupt("attempt log", e))?,
                    None => Vec::new(),
                };
                log.push(attempt.clone());
                let drop = log.len().saturating_sub(ATTEMPTS_KEPT);
                log.drain(..drop);
                Ok((
                    Some(serde_json::to_vec(&log).expect("attempts serialise")),
                    (),
                ))
            })
    }
}

impl WebhookOutbox for KvOutbox {
    fn enqueue(&self, msg: &NewMessage, max_per_tenant: u64) -> Result<Enqueued, EngineError> {
        if self.pending(&msg.tenant)? >= max_per_tenant {
            return Ok(Enqueued::Full);
        }
        let id = self.next_id()?;
        self.insert_once(id, msg)?;
        Ok(Enqueued::Queued)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, EngineError> {
        let mut due: Vec<OutboxEntry> = self
            .entries("e.")?
            .into_iter()
            .filter(|e| e.next_attempt_ms <= now_ms)
            .collect();
        due.sort_by_key(|e| (e.next_attempt_ms, e.id));
        due.truncate(limit);
        Ok(due)
    }

    fn record(
        &self,
        entry: &OutboxEntry,
        attempt: &Attempt,
        next_attempt_ms: Option<i64>,
    ) -> Result<(), EngineError> {
        let k = KvOutbox::entry_key(&entry.tenant, entry.id);
        let changed = match next_attempt_ms {
            Some(next) => self.bucket.modify(&k, |old| -> Result<_, EngineError> {
                let Some(old) = old else {
                    return Ok((None, false)); // already recorded (another node, a replay)
                };
                let mut stored: OutboxEntry =
                    serde_json::from_slice(old).map_err(|e| corrupt("outbox entry", e))?;
                stored.attempts = attempt.attempt;
                stored.next_attempt_ms = next;
                Ok((Some(serde_json::to_vec(&stored).expect("serialises")), true))
            })?,
            None => self.remove(&k)?,
        };
        if changed {
            self.log_attempt(&entry.tenant, attempt)?;
        }
        Ok(())
    }

    fn attempts(&self, tenant: &str, limit: usize) -> Result<Vec<Attempt>, EngineError> {
        let log: Vec<Attempt> = match self.bucket.get(&key(&["a", tenant]))? {
            Some((v, _)) => serde_json::from_slice(&v).map_err(|e| corrupt("attempt log", e))?,
            None => Vec::new(),
        };
        Ok(log.into_iter().rev().take(limit).collect())
    }

    fn pending(&self, tenant: &str) -> Result<u64, EngineError> {
        let n = self.bucket.keys(&format!("e.{}.", part(tenant)))?.len();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn depth(&self) -> usize {
        match self.bucket.keys("e.") {
            Ok(k) => k.len(),
            Err(e) => {
                tracing::warn!(error = %e, "outbox depth unreadable");
                0
            }
        }
    }
}
