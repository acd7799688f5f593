//! [`KvBoardStore`]: one board's checkpoint and frozen windows in bucket `<prefix>_BOARDS`.
//!
//! Values can be larger than one NATS message, so both are **blobs**: chunks
//! `<tenant>.<board>.<name>.c.<nonce>.<i>` of at most `chunk_bytes`, written first, then the
//! manifest `<tenant>.<board>.<name>` (nonce, chunk count, length, and a number: the
//! checkpoint's applied position or the window's total). The manifest is one key, so a
//! reader sees the old blob or the new one whole, never a mix; chunks of a replaced or
//! dropped blob are deleted afterwards (a crash between leaves orphan chunks, which a
//! later [`BoardStore::clear`] removes). Names: `ck` (the checkpoint frame,
//! [`Checkpoint::to_frame`]), `w.<tf hex>.<window hex>` (a frozen window's rows).
//!
//! **Durable when** each call returns (stream quorum). Reads of a frozen window load its
//! blob (the last one read is cached: frozen windows never change under one nonce).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::bucket::{key, Bucket};
use crate::error::EngineError;
use crate::leaderboard::board_store::{BoardStore, Checkpoint};
use crate::leaderboard::rank::Entry;
use crate::leaderboard::state::Window;
use crate::leaderboard::window::{Timeframe, WindowKey};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    nonce: String,
    chunks: u32,
    len: u64,
    /// The checkpoint's applied position, or the window's total.
    meta: u64,
}

/// One row of a frozen window.
#[derive(Debug, Clone)]
struct Row {
    rank: usize,
    user: String,
    score: f64,
}

/// A decoded frozen window and what identifies it: (manifest key, nonce).
type CachedRows = ((String, String), Arc<Vec<Row>>);

/// The cluster-wide [`BoardStore`] of one board.
pub struct KvBoardStore {
    bucket: Bucket,
    base: String,
    chunk_bytes: usize,
    /// The last frozen window read: (manifest key, nonce) and its rows.
    cache: Mutex<Option<CachedRows>>,
}

fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{t:x}{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn corrupt(what: &'static str) -> EngineError {
    EngineError::Storage(format!("corrupt {what} in the board bucket"))
}

fn encode_rows(w: &Window) -> Vec<u8> {
    let mut v = Vec::new();
    for e in w.ranks.iter() {
        let rank = u32::try_from(e.rank).unwrap_or(u32::MAX);
        let len = u16::try_from(e.user_id.len()).unwrap_or(u16::MAX);
        v.extend_from_slice(&rank.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&e.user_id.as_bytes()[..usize::from(len)]);
        v.extend_from_slice(&e.score.to_bits().to_be_bytes());
    }
    v
}

fn decode_rows(mut b: &[u8]) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    while !b.is_empty() {
        let rank = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let len = usize::from(u16::from_be_bytes(b.get(4..6)?.try_into().ok()?));
        let user = String::from_utf8_lossy(b.get(6..6 + len)?).into_owned();
        let score = f64::from_bits(u64::from_be_bytes(
            b.get(6 + len..14 + len)?.try_into().ok()?,
        ));
        rows.push(Row { rank, user, score });
        b = &b[14 + len..];
    }
    Some(rows)
}

impl KvBoardStore {
    pub fn new(bucket: Bucket, tenant: &str, board: &str, chunk_bytes: usize) -> KvBoardStore {
        KvBoardStore {
            bucket,
            base: key(&[tenant, board]),
            chunk_bytes: chunk_bytes.max(1024),
            cache: Mutex::new(None),
        }
    }

    fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.base)
    }

    fn window_name(&self, tf: Timeframe, key: WindowKey) -> String {
        let mut t = Vec::new();
        tf.encode(&mut t);
        self.name(&format!("w.{}.{}", hex(&t), hex(&key.to_sortable_bytes())))
    }

    fn manifest(&self, m: &str) -> Result<Option<Manifest>, EngineError> {
        match self.bucket.get(m)? {
            Some((v, _)) => Ok(Some(
                serde_json::from_slice(&v).map_err(|_| corrupt("manifest"))?,
            )),
            None => Ok(None),
        }
    }

    /// Write `bytes` as the blob `m`: chunks, then the manifest, then the old chunks go.
    fn write_blob(&self, m: &str, bytes: &[u8], meta: u64) -> Result<(), EngineError> {
        let old = self.manifest(m)?;
        let nonce = nonce();
        let mut chunks = 0u32;
        for (i, c) in bytes.chunks(self.chunk_bytes).enumerate() {
            self.bucket.put(&format!("{m}.c.{nonce}.{i}"), c.to_vec())?;
            chunks += 1;
        }
        let manifest = Manifest {
            nonce,
            chunks,
            len: bytes.len() as u64,
            meta,
        };
        self.bucket
            .put(m, serde_json::to_vec(&manifest).expect("serialises"))?;
        if let Some(old) = old {
            self.delete_chunks(m, &old)?;
        }
        Ok(())
    }

    fn read_blob(&self, m: &str, manifest: &Manifest) -> Result<Vec<u8>, EngineError> {
        let mut out = Vec::with_capacity(usize::try_from(manifest.len).unwrap_or(0));
        for i in 0..manifest.chunks {
            let (c, _) = self
                .bucket
                .get(&format!("{m}.c.{}.{i}", manifest.nonce))?
                .ok_or_else(|| corrupt("blob (missing chunk)"))?;
            out.extend_from_slice(&c);
        }
        if out.len() as u64 != manifest.len {
            return Err(corrupt("blob (length)"));
        }
        Ok(out)
    }

    fn delete_chunks(&self, m: &str, manifest: &Manifest) -> Result<(), EngineError> {
        for i in 0..manifest.chunks {
            self.bucket
                .delete(&format!("{m}.c.{}.{i}", manifest.nonce))?;
        }
        Ok(())
    }

    fn drop_blob(&self, m: &str) -> Result<(), EngineError> {
        if let Some(old) = self.manifest(m)? {
            self.bucket.delete(m)?;
            self.delete_chunks(m, &old)?;
        }
        Ok(())
    }

    fn rows(&self, tf: Timeframe, key: WindowKey) -> Result<Option<Arc<Vec<Row>>>, EngineError> {
        let m = self.window_name(tf, key);
        let Some(manifest) = self.manifest(&m)? else {
            return Ok(None);
        };
        let id = (m.clone(), manifest.nonce.clone());
        if let Some((cached, rows)) = &*self.cache.lock().expect("cache") {
            if *cached == id {
                return Ok(Some(rows.clone()));
            }
        }
        let rows = Arc::new(
            decode_rows(&self.read_blob(&m, &manifest)?).ok_or_else(|| corrupt("window rows"))?,
        );
        *self.cache.lock().expect("cache") = Some((id, rows.clone()));
        Ok(Some(rows))
    }
}

impl BoardStore for KvBoardStore {
    fn save_checkpoint(&self, definition: &str, state: &[u8]) -> Result<(), EngineError> {
        let frame = Checkpoint::to_frame(definition, state);
        let applied = Checkpoint::applied_in_frame(&frame);
        self.write_blob(&self.name("ck"), &frame, applied)
    }

    fn load_checkpoint(&self) -> Result<Option<Checkpoint>, EngineError> {
        let m = self.name("ck");
        let Some(manifest) = self.manifest(&m)? else {
            return Ok(None);
        };
        Ok(Checkpoint::from_frame(&self.read_blob(&m, &manifest)?))
    }

    fn checkpointed_seq(&self) -> Result<u64, EngineError> {
        Ok(self.manifest(&self.name("ck"))?.map_or(0, |m| m.meta))
    }

    fn write_window(&self, tf: Timeframe, key: WindowKey, w: &Window) -> Result<(), EngineError> {
        let total = w.ranks.len() as u64;
        self.write_blob(&self.window_name(tf, key), &encode_rows(w), total)
    }

    fn window_total(&self, tf: Timeframe, key: WindowKey) -> Result<Option<usize>, EngineError> {
        Ok(self
            .manifest(&self.window_name(tf, key))?
            .map(|m| usize::try_from(m.meta).unwrap_or(usize::MAX)))
    }

    fn window_range(
        &self,
        tf: Timeframe,
        key: WindowKey,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>, EngineError> {
        let Some(rows) = self.rows(tf, key)? else {
            return Ok(Vec::new());
        };
        Ok(rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| Entry {
                rank: r.rank,
                user_id: r.user.clone(),
                score: r.score,
            })
            .collect())
    }

    fn window_locate(
        &self,
        tf: Timeframe,
        key: WindowKey,
        user: &str,
    ) -> Result<Option<(usize, usize, f64)>, EngineError> {
        let Some(rows) = self.rows(tf, key)? else {
            return Ok(None);
        };
        Ok(rows
            .iter()
            .position(|r| r.user == user)
            .map(|i| (i + 1, rows[i].rank, rows[i].score)))
    }

    fn drop_window(&self, tf: Timeframe, key: WindowKey) -> Result<(), EngineError> {
        self.drop_blob(&self.window_name(tf, key))
    }

    fn clear(&self) -> Result<(), EngineError> {
        // The checkpoint first (as the sled store): a crash leaves history without one,
        // which a board starting without a checkpoint clears.
        self.drop_blob(&self.name("ck"))?;
        for k in self.bucket.keys(&format!("{}.", self.base))? {
            self.bucket.delete(&k)?;
        }
        *self.cache.lock().expect("cache") = None;
        Ok(())
    }
}
