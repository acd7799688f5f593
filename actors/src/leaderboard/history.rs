//! Frozen windows in sled, queryable by key with O(log n + k) lookups: one tree per board.
//!
//! Keys (big-endian, so scans come back in rank order):
//! - `m | tf | window` → total entries (marks the window as frozen and complete)
//! - `r | tf | window | position:u32` → `user_len:u16 | user | score:f64 [| rank:u32]`
//! - `u | tf | window | user` → `position:u32 | score:f64 [| rank:u32]`
//!
//! `tf` is [`Timeframe::encode`]'s form (one byte for a built-in). The trailing rank is written
//! only where it differs from the position (shared ties), so older rows read the same.

use super::rank::Entry;
use super::state::Window;
use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;

#[derive(Clone)]
pub struct History {
    tree: sled::Tree,
}

fn prefix(kind: u8, tf: Timeframe, key: WindowKey) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.push(kind);
    tf.encode(&mut p);
    p.extend_from_slice(&key.to_sortable_bytes());
    p
}

impl History {
    pub fn open(db: &sled::Db, tenant: &str, board: &str) -> Result<History, EngineError> {
        Ok(History {
            tree: db.open_tree(format!("hist/{tenant}/{board}"))?,
        })
    }

    /// Store a frozen window atomically.
    pub fn write(&self, tf: Timeframe, key: WindowKey, w: &Window) -> Result<(), EngineError> {
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
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Total entries of a frozen window, or `None` if it is not in history.
    pub fn total(&self, tf: Timeframe, key: WindowKey) -> Result<Option<usize>, EngineError> {
        Ok(self
            .tree
            .get(prefix(b'm', tf, key))?
            .map(|v| u32::from_be_bytes(v[..4].try_into().expect("4 bytes")) as usize))
    }

    /// Entries with rank in `offset+1 ..= offset+limit`.
    pub fn range(
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
        for kv in self.tree.range(start..).take(limit) {
            let (k, v) = kv?;
            if !k.starts_with(&rp) {
                break;
            }
            let position = u32::from_be_bytes(k[rp.len()..].try_into().expect("4 bytes")) as usize;
            let len = u16::from_be_bytes(v[..2].try_into().expect("2 bytes")) as usize;
            let user = String::from_utf8_lossy(&v[2..2 + len]).into_owned();
            let score = f64::from_bits(u64::from_be_bytes(
                v[2 + len..10 + len].try_into().expect("8 bytes"),
            ));
            let rank = v.get(10 + len..14 + len).map_or(position, |r| {
                u32::from_be_bytes(r.try_into().expect("4 bytes")) as usize
            });
            out.push(Entry {
                rank,
                user_id: user,
                score,
            });
        }
        Ok(out)
    }

    /// A user's (rank, score) in a frozen window.
    pub fn user(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, f64)>, EngineError> {
        Ok(self
            .locate(tf, key, user)?
            .map(|(_, rank, score)| (rank, score)))
    }

    /// A user's (position, rank, score) in a frozen window; position and rank differ only
    /// inside a shared tie.
    pub fn locate(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, usize, f64)>, EngineError> {
        let mut k = prefix(b'u', tf, key);
        k.extend_from_slice(user.as_bytes());
        Ok(self.tree.get(k)?.map(|v| {
            let position = u32::from_be_bytes(v[..4].try_into().expect("4 bytes")) as usize;
            let score = f64::from_bits(u64::from_be_bytes(v[4..12].try_into().expect("8 bytes")));
            let rank = v.get(12..16).map_or(position, |r| {
                u32::from_be_bytes(r.try_into().expect("4 bytes")) as usize
            });
            (position, rank, score)
        }))
    }

    /// A user's (rank, score) and up to `radius` neighbours on each side, in rank order.
    pub fn around(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
        radius: usize,
    ) -> Result<Option<(usize, f64, Vec<Entry>)>, EngineError> {
        let Some((position, rank, score)) = self.locate(tf, key, user)? else {
            return Ok(None);
        };
        let from = position.saturating_sub(radius.saturating_add(1));
        let limit = (position - from).saturating_add(radius);
        let entries = self.range(tf, key, from, limit)?;
        Ok(Some((rank, score, entries)))
    }

    /// Drop one window (retention).
    pub fn drop_window(&self, tf: Timeframe, key: WindowKey) -> Result<(), EngineError> {
        for kind in [b'm', b'r', b'u'] {
            let p = prefix(kind, tf, key);
            let mut batch = sled::Batch::default();
            for k in self.tree.scan_prefix(&p).keys() {
                batch.remove(k?);
            }
            self.tree.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Drop everything (definition changed or board deleted).
    pub fn clear(&self) -> Result<(), EngineError> {
        self.tree.clear()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaderboard::definition::Definition;
    use crate::leaderboard::state::BoardState;
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use std::sync::Arc;

    /// A frozen window reads back page by page and user by user, and can be dropped.
    #[test]
    fn frozen_window_round_trip() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let h = History::open(&db, "t", "b").unwrap();
        let def = Definition::from_json(
            "b",
            &json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}],
                    "timeframes": ["daily"], "late_grace_seconds": 0}),
        )
        .unwrap();
        let mut s = BoardState::new(Arc::new(def));
        let at = "2025-11-18T10:00:00Z";
        let accepted = at.parse::<DateTime<Utc>>().unwrap().timestamp_millis();
        for (i, (u, p)) in [("a", 5.0), ("b", 9.0), ("c", 1.0), ("d", 7.0)]
            .iter()
            .enumerate()
        {
            let e =
                json!({"type": "x", "actor": {"user_id": u}, "occurred_at": at, "attrs": {"p": p}});
            s.apply(i as u64 + 1, accepted, &e);
        }
        s.watermark_ms = accepted + 86_400_000;
        let (tf, key) = s.due_for_freeze()[0];
        let w = s.freeze(tf, key).unwrap();
        h.write(tf, key, &w).unwrap();

        assert_eq!(h.total(tf, key).unwrap(), Some(4));
        let users: Vec<(usize, String, f64)> = h
            .range(tf, key, 0, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.rank, e.user_id, e.score))
            .collect();
        assert_eq!(
            users,
            vec![
                (1, "b".into(), 9.0),
                (2, "d".into(), 7.0),
                (3, "a".into(), 5.0),
                (4, "c".into(), 1.0)
            ]
        );
        assert_eq!(h.range(tf, key, 2, 1).unwrap()[0].user_id, "a");
        assert!(h.range(tf, key, 4, 10).unwrap().is_empty());
        assert_eq!(h.user(tf, key, "d").unwrap(), Some((2, 7.0)));
        assert_eq!(h.user(tf, key, "zz").unwrap(), None);
        let (rank, score, near) = h.around(tf, key, "a", 1).unwrap().unwrap();
        assert_eq!((rank, score), (3, 5.0));
        let near: Vec<&str> = near.iter().map(|e| e.user_id.as_str()).collect();
        assert_eq!(near, ["d", "a", "c"]);
        let (_, _, top) = h.around(tf, key, "b", 2).unwrap().unwrap();
        assert_eq!(top.len(), 3, "clipped at rank 1");
        assert!(h.around(tf, key, "zz", 1).unwrap().is_none());
        // Client-chosen extremes neither wrap nor panic.
        assert!(h.range(tf, key, usize::MAX, usize::MAX).unwrap().is_empty());
        assert_eq!(h.range(tf, key, u32::MAX as usize, 1).unwrap().len(), 0);
        assert_eq!(
            h.around(tf, key, "a", usize::MAX).unwrap().unwrap().2.len(),
            4
        );
        let other = Timeframe::Daily.window_of("2025-11-19T00:00:00Z".parse().unwrap());
        assert_eq!(h.total(tf, other).unwrap(), None);

        h.drop_window(tf, key).unwrap();
        assert_eq!(h.total(tf, key).unwrap(), None);
        assert!(h.range(tf, key, 0, 10).unwrap().is_empty());
    }
}
