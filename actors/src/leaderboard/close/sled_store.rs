//! The sled [`CloseLedger`]: one transaction per close.
//!
//! [`CloseStore::close`] writes the close record (final top entries + grants), credits every
//! grant into the tenant's wallet and ledger ([`crate::rewards::RewardStore`], each grant
//! deduped on its ledger key), and enqueues the webhook delivery
//! ([`crate::outbox::Outbox`]) in one sled transaction. A second close of the same window (a
//! board restarted from an older checkpoint, a rebuilt definition) finds the record and
//! changes nothing. Durable with the next fsync of the shared db; a crash before it redoes
//! the close from the log with the same standings, ids and times.
//!
//! Tree `closes/{tenant}/{board}`: `lp(timeframe) ‖ window (sortable)` → [`CloseRecord`];
//! `epoch` → `u32 len ‖ definition JSON ‖ i64 ms` (windows closing before the current
//! definition was first seen are recorded without rewards, events or webhooks).

use sled::transaction::{abort, TransactionError};
use sled::Transactional;

use super::{CloseLedger, CloseRecord, Closed};
use crate::error::EngineError;
use crate::leaderboard::window::{Timeframe, WindowKey};
use crate::outbox::{Enqueued, Outbox, OutboxTx};
use crate::rewards::{credit_once, Grant, RewardError, RewardStore};

/// Closed windows of one board.
#[derive(Clone)]
pub struct CloseStore {
    tenant: String,
    closes: sled::Tree,
    rewards: RewardStore,
    outbox: Outbox,
}

fn key(tf: Timeframe, w: WindowKey) -> Vec<u8> {
    let name = tf.as_str();
    let mut k = (name.len() as u32).to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k.extend_from_slice(&w.to_sortable_bytes());
    k
}

const EPOCH: &[u8] = b"epoch";

fn corrupt(e: serde_json::Error) -> EngineError {
    EngineError::CorruptRecord {
        what: "close record",
        source: std::sync::Arc::new(e),
    }
}

impl CloseStore {
    pub fn open(db: &sled::Db, tenant: &str, board: &str) -> Result<CloseStore, EngineError> {
        Ok(CloseStore {
            tenant: tenant.to_owned(),
            closes: db.open_tree(format!("closes/{tenant}/{board}"))?,
            rewards: RewardStore::open(db, tenant)?,
            outbox: Outbox::open(db)?,
        })
    }
}

impl CloseLedger for CloseStore {
    fn epoch(&self, def_json: &str, now_ms: i64) -> Result<i64, EngineError> {
        if let Some(v) = self.closes.get(EPOCH)? {
            let len = v
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize);
            if let Some(len) = len {
                if v.get(4..4 + len) == Some(def_json.as_bytes()) {
                    if let Some(ms) = v.get(4 + len..12 + len) {
                        return Ok(i64::from_be_bytes(ms.try_into().expect("8")));
                    }
                }
            }
        }
        let mut v = (def_json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(def_json.as_bytes());
        v.extend_from_slice(&now_ms.to_be_bytes());
        self.closes.insert(EPOCH, v)?;
        Ok(now_ms)
    }

    fn get(&self, tf: Timeframe, w: WindowKey) -> Result<Option<CloseRecord>, EngineError> {
        self.closes
            .get(key(tf, w))?
            .map(|v| serde_json::from_slice(&v).map_err(corrupt))
            .transpose()
    }

    fn list(&self, tf: Timeframe, limit: usize) -> Result<Vec<CloseRecord>, EngineError> {
        let mut p = (tf.as_str().len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(tf.as_str().as_bytes());
        self.closes
            .scan_prefix(p)
            .rev()
            .take(limit)
            .map(|kv| serde_json::from_slice(&kv?.1).map_err(corrupt))
            .collect()
    }

    fn unemitted(&self) -> Result<Vec<CloseRecord>, EngineError> {
        let mut out = Vec::new();
        for kv in self.closes.iter() {
            let (k, v) = kv?;
            if k.as_ref() == EPOCH {
                continue;
            }
            let r: CloseRecord = serde_json::from_slice(&v).map_err(corrupt)?;
            if r.rewarded && !r.emitted {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn mark_emitted(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        if let Some(mut r) = self.get(tf, w)? {
            if !r.emitted {
                r.emitted = true;
                self.closes
                    .insert(key(tf, w), serde_json::to_vec(&r).map_err(corrupt)?)?;
            }
        }
        Ok(())
    }

    fn drop_window(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        self.closes.remove(key(tf, w))?;
        Ok(())
    }

    fn close(
        &self,
        tf: Timeframe,
        w: WindowKey,
        mut record: CloseRecord,
        outbox_max: u64,
    ) -> Result<Closed, EngineError> {
        let k = key(tf, w);
        if let Some(v) = self.closes.get(&k)? {
            return Ok(Closed::Already(
                serde_json::from_slice(&v).map_err(corrupt)?,
            ));
        }
        let ledger: Vec<Grant> = record.ledger_grants();
        let message = record.webhook_message(&self.tenant);
        if message.is_some() {
            record.delivery_id = Some(record.event_id());
        }
        let id = self.outbox.next_id()?;
        let (balances, grants) = self.rewards.grant_trees();
        let (entries, due, counts) = self.outbox.trees();
        let result = (&self.closes, balances, grants, entries, due, counts).transaction(
            |(closes, balances, grants, entries, due, counts)| {
                if let Some(v) = closes.get(&k)? {
                    return match serde_json::from_slice(&v) {
                        Ok(r) => Ok(Closed::Already(r)),
                        Err(e) => abort(RewardError::Corrupt(e.to_string())),
                    };
                }
                let mut stored = record.clone();
                let mut webhook_dropped = false;
                if let Some(m) = &message {
                    let tx = OutboxTx {
                        entries,
                        due,
                        counts,
                    };
                    let queued = Outbox::enqueue_in(&tx, id, m, outbox_max)?;
                    if queued == Enqueued::Full {
                        webhook_dropped = true;
                        stored.delivery_id = None;
                    }
                }
                if stored.rewarded {
                    for g in &ledger {
                        credit_once(balances, grants, g)?;
                    }
                }
                match serde_json::to_vec(&stored) {
                    Ok(b) => closes.insert(k.as_slice(), b)?,
                    Err(e) => return abort(RewardError::Corrupt(e.to_string())),
                };
                Ok(Closed::New { webhook_dropped })
            },
        );
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e.into(),
            TransactionError::Storage(e) => e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaderboard::close::contract;
    use std::sync::Arc;

    /// The contract, on two stores of one board in one db (a restarted actor, or two
    /// closers), the tenant's reward store and the outbox.
    #[test]
    fn sled_close_store_keeps_the_contract() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let open = || Arc::new(CloseStore::open(&db, "t", "b").unwrap()) as Arc<dyn CloseLedger>;
        contract::run(
            &open,
            &RewardStore::open(&db, "t").unwrap(),
            &Outbox::open(&db).unwrap(),
        );
    }
}
