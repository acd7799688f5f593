//! [`BoardStore`] on sled: two trees per board.
//!
//! - `lb/{tenant}/{board}`: the key `checkpoint` → the [`Checkpoint`] frame.
//! - `hist/{tenant}/{board}`: frozen windows, queryable by key with O(log n + k) lookups.
//!   Keys are big-endian, so scans come back in rank order:
//!   - `m | tf | window` → total entries (marks the window as frozen and complete)
//!   - `r | tf | window | position:u32` → `user_len:u16 | user | score:f64 [| rank:u32]`
//!   - `u | tf | window | user` → `position:u32 | score:f64 [| rank:u32]`
//!
//! `tf` is [`Timeframe::encode`]'s form (one byte for a built-in). The trailing rank is written
//! only where it differs from the position (shared ties), so older rows read the same.

use super::{BoardStore, Checkpoint};
use crate::error::EngineError;
use crate::leaderboard::rank::Entry;
use crate::leaderboard::state::Window;
use crate::leaderboard::window::{Timeframe, WindowKey};

const CKPT_KEY: &[u8] = b"checkpoint";

/// One board's checkpoint and history trees in the engine's sled database.
#[derive(Clone)]
pub struct SledBoardStore {
    meta: sled::Tree,
    history: sled::Tree,
}

impl SledBoardStore {
    /// Opens (creating if needed) the trees of `board` of `tenant`.
    pub fn open(db: &sled::Db, tenant: &str, board: &str) -> Result<SledBoardStore, EngineError> {
        Ok(SledBoardStore {
            meta: db.open_tree(format!("lb/{tenant}/{board}"))?,
            history: db.open_tree(format!("hist/{tenant}/{board}"))?,
        })
    }
}

fn prefix(kind: u8, tf: Timeframe, key: WindowKey) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.push(kind);
    tf.encode(&mut p);
    p.extend_from_slice(&key.to_sortable_bytes());
    p
}

fn be_u32(b: &[u8]) -> usize {
    u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize
}

fn be_f64(b: &[u8]) -> f64 {
    f64::from_bits(u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

impl BoardStore for SledBoardStore {
    fn flushed_by_the_log(&self) -> bool {
        true
    }

    fn save_checkpoint(&self, definition: &str, state: &[u8]) -> Result<(), EngineError> {
        self.meta
            .insert(CKPT_KEY, Checkpoint::to_frame(definition, state))?;
        Ok(())
    }

    fn load_checkpoint(&self) -> Result<Option<Checkpoint>, EngineError> {
        Ok(self
            .meta
            .get(CKPT_KEY)?
            .and_then(|frame| Checkpoint::from_frame(&frame)))
    }

    fn checkpointed_seq(&self) -> Result<u64, EngineError> {
        Ok(self
            .meta
            .get(CKPT_KEY)?
            .map_or(0, |frame| Checkpoint::applied_in_frame(&frame)))
    }

    fn write_window(&self, tf: Timeframe, key: WindowKey, w: &Window) -> Result<(), EngineError> {
        let mut batch = sled::Batch::default();
        let rp = prefix(b'r', tf, key);
        let up = prefix(b'u', tf, key);
        for e in w.ranks.iter() {
            let position = u32::try_from(e.position).unwrap_or(u32::MAX);
            let shared = (e.rank != e.position).then(|| u32::try_from(e.rank).unwrap_or(u32::MAX));
            let mut k = rp.clone();
            k.extend_from_slice(&position.to_be_bytes());
            let mut v = Vec::with_capacity(14 + e.user_id.len());
            v.extend_from_slice(&(e.user_id.len() as u16).to_be_bytes());
            v.extend_from_slice(e.user_id.as_bytes());
            v.extend_from_slice(&e.score.to_bits().to_be_bytes());
            if let Some(rank) = shared {
                v.extend_from_slice(&rank.to_be_bytes());
            }
            batch.insert(k, v);
            let mut k = up.clone();
            k.extend_from_slice(e.user_id.as_bytes());
            let mut v = position.to_be_bytes().to_vec();
            v.extend_from_slice(&e.score.to_bits().to_be_bytes());
            if let Some(rank) = shared {
                v.extend_from_slice(&rank.to_be_bytes());
            }
            batch.insert(k, v);
        }
        let total = u32::try_from(w.ranks.len()).unwrap_or(u32::MAX);
        batch.insert(prefix(b'm', tf, key), total.to_be_bytes().to_vec());
        self.history.apply_batch(batch)?;
        Ok(())
    }

    fn window_total(&self, tf: Timeframe, key: WindowKey) -> Result<Option<usize>, EngineError> {
        Ok(self
            .history
            .get(prefix(b'm', tf, key))?
            .map(|v| be_u32(&v[..4])))
    }

    fn window_range(
        &self,
        tf: Timeframe,
        key: WindowKey,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>, EngineError> {
        let rp = prefix(b'r', tf, key);
        let mut start = rp.clone();
        // `offset` comes from a query string: never let it wrap.
        let first = u32::try_from(offset.saturating_add(1)).unwrap_or(u32::MAX);
        start.extend_from_slice(&first.to_be_bytes());
        let mut out = Vec::new();
        for kv in self.history.range(start..).take(limit) {
            let (k, v) = kv?;
            if !k.starts_with(&rp) {
                break;
            }
            let position = be_u32(&k[rp.len()..]);
            let len = u16::from_be_bytes(v[..2].try_into().expect("2 bytes")) as usize;
            let user = String::from_utf8_lossy(&v[2..2 + len]).into_owned();
            let score = be_f64(&v[2 + len..10 + len]);
            let rank = v.get(10 + len..14 + len).map_or(position, be_u32);
            out.push(Entry {
                rank,
                user_id: user,
                score,
            });
        }
        Ok(out)
    }

    fn window_locate(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, usize, f64)>, EngineError> {
        let mut k = prefix(b'u', tf, key);
        k.extend_from_slice(user.as_bytes());
        Ok(self.history.get(k)?.map(|v| {
            let position = be_u32(&v[..4]);
            let rank = v.get(12..16).map_or(position, be_u32);
            (position, rank, be_f64(&v[4..12]))
        }))
    }

    fn drop_window(&self, tf: Timeframe, key: WindowKey) -> Result<(), EngineError> {
        let mut batch = sled::Batch::default();
        for kind in [b'm', b'r', b'u'] {
            for k in self.history.scan_prefix(prefix(kind, tf, key)).keys() {
                batch.remove(k?);
            }
        }
        self.history.apply_batch(batch)?;
        Ok(())
    }

    fn clear(&self) -> Result<(), EngineError> {
        self.meta.clear()?;
        self.history.clear()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_passes_the_board_store_contract() {
        let db = sled::Config::new().temporary(true).open().expect("temp db");
        let n = std::cell::Cell::new(0);
        super::super::contract::run(|| {
            n.set(n.get() + 1);
            SledBoardStore::open(&db, "t", &format!("b{}", n.get())).expect("open")
        });
    }
}
