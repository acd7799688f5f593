//! [`KvCloses`]: one board's window closes in bucket `<prefix>_CLOSES`, their grants in the
//! tenant's [`KvRewards`] ledger and their webhooks in the [`KvOutbox`]: the cluster-wide
//! [`CloseLedger`].
//!
//! Keys (each part escaped) under `<tenant>.<board>.`:
//! - `r.<timeframe>.<window>` → the close record ([`CloseRecord`] JSON) plus `pending` and
//!   `outbox_id`; `<window>` is the window's sortable start as 16 hex digits, so keys sort
//!   by window
//! - `epoch` → `{"definition", "since_ms"}` (see [`CloseLedger::epoch`])
//!
//! **Exactly once without a multi-key transaction.** A close is four idempotent steps:
//! 1. the record is *created* (create-if-absent, the conditional publish of
//!    [`Bucket::update`]) with `pending: true`, its grants, and — for a rewarded close with
//!    room in the tenant's outbox — an outbox entry id reserved beforehand. Of two closers
//!    (two nodes after a failover, a restarted board) only the creator answers
//!    [`Closed::New`]; the decision what to grant and whether to send a webhook is the
//!    creator's, in the record;
//! 2. every grant is credited through [`KvRewards::credit`]: a compare-and-set on the
//!    user's wallet that first looks for the close's grant id in the wallet's ledger, so a
//!    repeat is a no-op;
//! 3. the webhook entry is written at the reserved id with [`KvOutbox::insert_once`]
//!    (revision 0: never written), so a repeat — even after the entry was delivered and
//!    removed — enqueues nothing;
//! 4. `pending` is cleared (compare-and-set).
//!
//! Whoever finds a record still pending — a second closer, a reader ([`CloseLedger::get`],
//! [`CloseLedger::list`]), a board starting ([`CloseLedger::unemitted`]) — runs steps 2–4
//! again. A crash between any two steps therefore never loses or doubles a grant or a
//! webhook; concurrent finishers are safe because every step is.
//!
//! **Durable when** each call returns: every step is acknowledged by the bucket's stream
//! quorum (R=3 → 2 servers; on nats-server 2.9 replicated, not fsync'd). A `close` that
//! returned `Ok` is complete on every node. Without a quorum a step fails with
//! [`crate::cluster::ClusterError`] and the record stays pending until the next finisher.
//!
//! Cost: one round trip per step and per grant (a close with 10 000 grants is ~20 000
//! round trips, in the board actor); listings read every record of the board.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bucket::{key, part, Bucket};
use super::{KvOutbox, KvRewards, KvStores};
use crate::error::EngineError;
use crate::leaderboard::close::{CloseLedger, CloseLedgerFactory, CloseRecord, Closed};
use crate::leaderboard::window::{Timeframe, WindowKey};
use crate::stores::WebhookOutbox;

/// A close record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    record: CloseRecord,
    /// Recorded; credits or the webhook entry may not all be written yet.
    #[serde(default)]
    pending: bool,
    /// The outbox entry id reserved for the webhook (`None`: no webhook).
    #[serde(default)]
    outbox_id: Option<u64>,
}

/// Since when a definition applies.
#[derive(Debug, Serialize, Deserialize)]
struct Epoch {
    definition: String,
    since_ms: i64,
}

fn corrupt(what: &'static str, e: serde_json::Error) -> EngineError {
    EngineError::CorruptRecord {
        what,
        source: Arc::new(e),
    }
}

fn decode(v: &[u8]) -> Result<Stored, EngineError> {
    serde_json::from_slice(v).map_err(|e| corrupt("close record", e))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("close records serialise")
}

/// The cluster-wide [`CloseLedger`] of one board of one tenant. Cheap to make (no I/O).
#[derive(Clone)]
pub struct KvCloses {
    bucket: Bucket,
    rewards: KvRewards,
    outbox: KvOutbox,
    tenant: String,
    /// `<tenant>.<board>`, escaped.
    prefix: String,
}

impl KvCloses {
    /// The closes of board `board` of `tenant` on `kv`'s buckets.
    pub fn new(kv: &KvStores, tenant: &str, board: &str) -> KvCloses {
        KvCloses {
            bucket: kv.closes.clone(),
            rewards: KvRewards::handle(kv.rewards.clone(), tenant),
            outbox: KvOutbox::new(kv.outbox.clone()),
            tenant: tenant.to_owned(),
            prefix: key(&[tenant, board]),
        }
    }

    /// The factory the engine's store bundle hands to board actors and close queries.
    pub fn factory(kv: &KvStores) -> CloseLedgerFactory {
        let kv = kv.clone();
        Arc::new(move |t, b| Ok(Arc::new(KvCloses::new(&kv, t, b)) as Arc<dyn CloseLedger>))
    }

    fn records_prefix(&self, tf: Option<Timeframe>) -> String {
        match tf {
            Some(tf) => format!("{}.r.{}.", self.prefix, part(tf.as_str())),
            None => format!("{}.r.", self.prefix),
        }
    }

    fn record_key(&self, tf: Timeframe, w: WindowKey) -> String {
        let hex: String = w
            .to_sortable_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}{hex}", self.records_prefix(Some(tf)))
    }

    fn read(&self, k: &str) -> Result<Option<Stored>, EngineError> {
        self.bucket.get(k)?.map(|(v, _)| decode(&v)).transpose()
    }

    /// Step 1: create the record of the close, pending. `Some(webhook_dropped)` if this call
    /// created it, `None` if a record was there (or another closer created it first).
    fn begin(
        &self,
        k: &str,
        mut record: CloseRecord,
        outbox_max: u64,
    ) -> Result<Option<bool>, EngineError> {
        let message = record.webhook_message(&self.tenant);
        let dropped = message.is_some() && self.outbox.pending(&self.tenant)? >= outbox_max;
        let outbox_id = match message {
            Some(_) if !dropped => Some(self.outbox.next_id()?),
            _ => None,
        };
        record.delivery_id = outbox_id.map(|_| record.event_id());
        let stored = Stored {
            record,
            pending: true,
            outbox_id,
        };
        Ok(self.bucket.create(k, encode(&stored))?.map(|_| dropped))
    }

    /// Steps 2–4 for the record at `k` if it is pending; the record as it stands after.
    fn finish(&self, k: &str) -> Result<Option<CloseRecord>, EngineError> {
        let Some(s) = self.read(k)? else {
            return Ok(None);
        };
        if s.pending {
            self.complete(k, &s)?;
        }
        Ok(Some(s.record))
    }

    fn complete(&self, k: &str, s: &Stored) -> Result<(), EngineError> {
        if s.record.rewarded {
            for g in s.record.ledger_grants() {
                self.rewards.credit(&g)?;
            }
        }
        if let (Some(id), Some(msg)) = (s.outbox_id, s.record.webhook_message(&self.tenant)) {
            self.outbox.insert_once(id, &msg)?;
        }
        self.bucket.modify(k, |old| -> Result<_, EngineError> {
            let Some(old) = old else {
                return Ok((None, ())); // dropped meanwhile (retention)
            };
            let mut s = decode(old)?;
            if !s.pending {
                return Ok((None, ()));
            }
            s.pending = false;
            Ok((Some(encode(&s)), ()))
        })
    }

    /// Every record under `prefix` (finished if pending), in key order.
    fn records(&self, prefix: &str) -> Result<Vec<CloseRecord>, EngineError> {
        let mut out = Vec::new();
        for (k, v) in self.bucket.entries(prefix)? {
            let s = decode(&v)?;
            if s.pending {
                self.complete(&k, &s)?;
            }
            out.push(s.record);
        }
        Ok(out)
    }
}

impl CloseLedger for KvCloses {
    fn epoch(&self, def_json: &str, now_ms: i64) -> Result<i64, EngineError> {
        let k = format!("{}.epoch", self.prefix);
        self.bucket.modify(&k, |old| -> Result<_, EngineError> {
            if let Some(old) = old {
                let e: Epoch =
                    serde_json::from_slice(old).map_err(|e| corrupt("close epoch", e))?;
                if e.definition == def_json {
                    return Ok((None, e.since_ms));
                }
            }
            let e = Epoch {
                definition: def_json.to_owned(),
                since_ms: now_ms,
            };
            Ok((Some(encode(&e)), now_ms))
        })
    }

    fn get(&self, tf: Timeframe, w: WindowKey) -> Result<Option<CloseRecord>, EngineError> {
        self.finish(&self.record_key(tf, w))
    }

    fn list(&self, tf: Timeframe, limit: usize) -> Result<Vec<CloseRecord>, EngineError> {
        let mut all = self.records(&self.records_prefix(Some(tf)))?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    fn unemitted(&self) -> Result<Vec<CloseRecord>, EngineError> {
        Ok(self
            .records(&self.records_prefix(None))?
            .into_iter()
            .filter(|r| r.rewarded && !r.emitted)
            .collect())
    }

    fn mark_emitted(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        self.bucket
            .modify(&self.record_key(tf, w), |old| -> Result<_, EngineError> {
                let Some(old) = old else {
                    return Ok((None, ()));
                };
                let mut s = decode(old)?;
                if s.record.emitted {
                    return Ok((None, ()));
                }
                s.record.emitted = true;
                Ok((Some(encode(&s)), ()))
            })
    }

    fn drop_window(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        Ok(self.bucket.delete(&self.record_key(tf, w))?)
    }

    fn close(
        &self,
        tf: Timeframe,
        w: WindowKey,
        record: CloseRecord,
        outbox_max: u64,
    ) -> Result<Closed, EngineError> {
        let k = self.record_key(tf, w);
        if self.bucket.get(&k)?.is_none() {
            if let Some(webhook_dropped) = self.begin(&k, record, outbox_max)? {
                self.finish(&k)?;
                return Ok(Closed::New { webhook_dropped });
            }
        }
        match self.finish(&k)? {
            Some(r) => Ok(Closed::Already(r)),
            None => Err(EngineError::Storage(format!(
                "close record {k} vanished while being read"
            ))),
        }
    }
}

#[cfg(test)]
#[path = "closes_tests.rs"]
mod tests;
