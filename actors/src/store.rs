//! The durable event log: the [`EventLog`] trait and its embedded sled implementation.
//!
//! One sled tree per tenant (`log/<tenant>`). A record holds a run of consecutive events (up
//! to [`MAX_RECORD_BYTES`]), keyed by the big-endian sequence number of its first event: the
//! group-commit [`crate::committer::Committer`] writes everything a tenant logged during one
//! commit round as few records as that allows, so many single-event requests cost one sled
//! insert, and scans come back in log order. Appends are buffered; [`EventLog::sync`] makes
//! them durable.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::error::EngineError;
use crate::stores::SledStore;

/// Target size of one log record; a batch larger than this is split into several records.
/// Keeps sled pages inline (see [`SledLog::open`]).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One event to log: `(accepted_ms, event_id, json)`.
pub type NewEntry<'a> = (i64, &'a str, &'a str);

/// One logged event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the tenant's log, starting at 1, gap-free.
    pub seq: u64,
    /// Server time the event was accepted (ms since the Unix epoch).
    pub accepted_ms: i64,
    pub event_id: String,
    /// The normalised event JSON.
    pub json: String,
}

/// An append-only, per-tenant, durable event log.
///
/// sled is the embedded default. A replicated log (e.g. NATS JetStream, whose `Nats-Msg-Id`
/// dedupe window and quorum acks match these semantics) can implement the same trait: its
/// [`EventLog::sync`] makes only the log durable. The engine's other state (definitions,
/// checkpoints, the stores in [`crate::stores`]) is made durable by `Engine::persist`, which
/// fsyncs the state store itself after the log's group commit, so nothing relies on the two
/// sharing one database (in the embedded setup they do, and the second fsync is cheap).
pub trait EventLog: Send + Sync + 'static {
    /// Buffer one run of `(accepted_ms, event_id, json)` whose first event gets `first_seq`.
    /// All-or-nothing; not yet durable. A failed append must leave the log unhealthy (no
    /// further appends): later positions are already assigned, and the log has no gaps.
    fn append(
        &self,
        tenant: &str,
        first_seq: u64,
        events: &[NewEntry<'_>],
    ) -> Result<(), EngineError>;
    /// Make every batch appended before this call durable (fsync).
    fn sync(&self) -> Result<(), EngineError>;
    /// Up to `max` entries with `seq >= from`, in order.
    fn read_from(&self, tenant: &str, from: u64, max: usize) -> Result<Vec<LogEntry>, EngineError>;
    /// One past the last appended position (1 for an empty log).
    fn next_seq(&self, tenant: &str) -> Result<u64, EngineError>;
    /// `(event_id, seq, accepted_ms)` of entries accepted at or after `since_ms`, oldest first.
    fn recent_ids(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, u64, i64)>, EngineError>;
    /// The newest `max` of [`EventLog::recent_ids`], oldest first: what a dedupe window capped
    /// at `max` ids keeps of them. A log that can stop reading after `max` overrides this
    /// (the sled log does: a restart then reads only what the window keeps).
    fn recent_ids_newest(
        &self,
        tenant: &str,
        since_ms: i64,
        max: usize,
    ) -> Result<Vec<(String, u64, i64)>, EngineError> {
        let mut ids = self.recent_ids(tenant, since_ms)?;
        let older = ids.len().saturating_sub(max);
        ids.drain(..older);
        Ok(ids)
    }
    /// [`EventLog::recent_ids_newest`] handed to `each` one id at a time, **newest first**,
    /// so a caller can take them while they are read (the tenant's dedupe rebuild inserts them
    /// on another thread). Returns how many it handed over. The sled log reads each record
    /// once and allocates nothing per id.
    fn each_recent_id_newest(
        &self,
        tenant: &str,
        since_ms: i64,
        max: usize,
        each: &mut dyn FnMut(&str, u64, i64),
    ) -> Result<usize, EngineError> {
        let ids = self.recent_ids_newest(tenant, since_ms, max)?;
        for (id, seq, ms) in ids.iter().rev() {
            each(id, *seq, *ms);
        }
        Ok(ids.len())
    }
    /// At least as many ids as [`EventLog::recent_ids_newest`] returns, and close to it:
    /// what the dedupe rebuild sizes its tables for before the ids arrive. `None` when the
    /// log cannot tell without reading them all.
    fn recent_count_hint(&self, _tenant: &str, _since_ms: i64) -> Result<Option<u64>, EngineError> {
        Ok(None)
    }
    /// Whether the log can currently persist.
    fn healthy(&self) -> bool;
    /// Whether an append made while a [`EventLog::sync`] runs already shortens the next sync
    /// (a replicated log whose append starts the replication, as JetStream's publish does).
    /// When it does not (a local file: the next fsync writes it all anyway), the committer
    /// writes a small round only once the running sync has ended, so it wakes once per sync
    /// instead of once per arriving request.
    fn appends_overlap_sync(&self) -> bool {
        false
    }
    /// The oldest retained position (`next_seq` for an empty log). The default is a log
    /// that keeps everything (so do the defaults of the retention methods below).
    fn first_seq(&self, _tenant: &str) -> Result<u64, EngineError> {
        Ok(1)
    }
    /// The oldest `max` records of `tenant`, as spans. The newest record is never listed:
    /// it holds the log's head, so positions survive a purge of everything else.
    fn oldest_spans(&self, _tenant: &str, _max: usize) -> Result<Vec<Span>, EngineError> {
        Ok(Vec::new())
    }
    /// Delete the records that start at `firsts` (from [`EventLog::oldest_spans`]).
    /// Not fsync'd by itself: a purge lost in a crash is simply done again.
    fn purge(&self, _tenant: &str, _firsts: &[u64]) -> Result<(), EngineError> {
        Ok(())
    }
    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, EngineError> {
        Ok(0)
    }
}

/// One log record, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Position of its first event.
    pub first: u64,
    /// Position of its last event.
    pub last: u64,
    /// Acceptance time of its newest event (ms since the Unix epoch).
    pub newest_ms: i64,
}

/// The sled-backed [`EventLog`].
pub struct SledLog {
    store: SledStore,
    trees: RwLock<HashMap<String, sled::Tree>>,
    healthy: AtomicBool,
    /// Write compressed (v3) records where that saves space (the default).
    compress: bool,
}

impl std::fmt::Debug for SledLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl SledLog {
    /// Open (or create) the store under `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledLog, EngineError> {
        Ok(SledLog {
            store: SledStore::open(dir, cache_bytes)?,
            trees: RwLock::new(HashMap::new()),
            healthy: AtomicBool::new(true),
            compress: true,
        })
    }

    /// Write records compressed (the default) or plain. Either way every layout reads back;
    /// plain exists to measure what compression saves (`actors/examples/log_bytes.rs`).
    pub fn with_compression(mut self, on: bool) -> SledLog {
        self.compress = on;
        self
    }

    /// The database the log lives in, shared by the engine's state stores (one fsync
    /// covers both in this embedded setup).
    pub fn store(&self) -> SledStore {
        self.store.clone()
    }

    fn db(&self) -> &sled::Db {
        self.store.db()
    }

    fn tree(&self, tenant: &str) -> Result<sled::Tree, EngineError> {
        if let Some(t) = self.trees.read().expect("tree cache poisoned").get(tenant) {
            return Ok(t.clone());
        }
        let tree = self.db().open_tree(format!("log/{tenant}"))?;
        self.trees
            .write()
            .expect("tree cache poisoned")
            .insert(tenant.to_owned(), tree.clone());
        Ok(tree)
    }

    fn fail(&self, e: sled::Error) -> EngineError {
        self.healthy.store(false, Ordering::SeqCst);
        tracing::error!(error = %e, "event log write failed; store marked unhealthy");
        EngineError::Storage(e.to_string())
    }
}

impl EventLog for SledLog {
    fn append(
        &self,
        tenant: &str,
        first_seq: u64,
        events: &[NewEntry<'_>],
    ) -> Result<(), EngineError> {
        if !self.healthy() {
            return Err(EngineError::Unavailable);
        }
        // Any failure here leaves the store unhealthy: tenant actors have already assigned
        // these positions, so nothing may be written after a missing record (no gaps).
        let tree = self.tree(tenant).inspect_err(|_| {
            self.healthy.store(false, Ordering::SeqCst);
        })?;
        let record = if self.compress {
            codec::encode(events)
        } else {
            codec::encode_v2(events)
        };
        tree.insert(first_seq.to_be_bytes(), record)
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn sync(&self) -> Result<(), EngineError> {
        if !self.healthy() {
            return Err(EngineError::Unavailable);
        }
        self.store.sync().map_err(|e| self.fail(e))
    }

    fn read_from(&self, tenant: &str, from: u64, max: usize) -> Result<Vec<LogEntry>, EngineError> {
        let tree = self.tree(tenant)?;
        let from = from.max(1);
        let mut out = Vec::new();
        // The record holding `from` may start before it.
        let start = match tree.range(..=from.to_be_bytes()).next_back() {
            Some(kv) => kv?.0,
            None => sled::IVec::from(&from.to_be_bytes()),
        };
        for kv in tree.range(start..) {
            let (k, v) = kv?;
            let first = key_seq(&k);
            let record = expand(tenant, first, &v)?;
            let events = decode(tenant, first, &record)?;
            for (i, (accepted_ms, id, json)) in events.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq < from {
                    continue;
                }
                if out.len() >= max {
                    return Ok(out);
                }
                out.push(LogEntry {
                    seq,
                    accepted_ms,
                    event_id: id.to_owned(),
                    json: json.to_owned(),
                });
            }
        }
        Ok(out)
    }

    fn next_seq(&self, tenant: &str) -> Result<u64, EngineError> {
        let tree = self.tree(tenant)?;
        match tree.last()? {
            None => Ok(1),
            Some((k, v)) => {
                let first = key_seq(&k);
                let n = codec::count(&v).map_err(corrupt(tenant, first))?;
                Ok(first + n as u64)
            }
        }
    }

    fn recent_ids(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, u64, i64)>, EngineError> {
        self.recent_ids_newest(tenant, since_ms, usize::MAX)
    }

    fn recent_ids_newest(
        &self,
        tenant: &str,
        since_ms: i64,
        max: usize,
    ) -> Result<Vec<(String, u64, i64)>, EngineError> {
        let mut out = Vec::new();
        self.each_recent_id_newest(tenant, since_ms, max, &mut |id, seq, ms| {
            out.push((id.to_owned(), seq, ms))
        })?;
        out.reverse();
        Ok(out)
    }

    fn each_recent_id_newest(
        &self,
        tenant: &str,
        since_ms: i64,
        max: usize,
        each: &mut dyn FnMut(&str, u64, i64),
    ) -> Result<usize, EngineError> {
        let tree = self.tree(tenant)?;
        let mut handed = 0usize;
        'records: for kv in tree.iter().rev() {
            let (k, v) = kv?;
            let first = key_seq(&k);
            let record = expand(tenant, first, &v)?;
            let events = decode_ids(tenant, first, &record)?;
            for (i, (accepted_ms, id)) in events.iter().enumerate().rev() {
                if handed >= max {
                    break 'records;
                }
                if *accepted_ms >= since_ms {
                    each(id, first + i as u64, *accepted_ms);
                    handed += 1;
                }
            }
            // Records are written in acceptance order: one that starts before `since_ms`
            // is the last that can hold anything recent.
            if events.first().is_none_or(|(ms, ..)| *ms < since_ms) {
                break;
            }
        }
        Ok(handed)
    }

    /// Binary search over positions (one record read per step, ~24 for 10 M positions) for
    /// the first record that starts at or after `since_ms`; the hint counts from the record
    /// before it, so it is at most one record above the exact count.
    fn recent_count_hint(&self, tenant: &str, since_ms: i64) -> Result<Option<u64>, EngineError> {
        let tree = self.tree(tenant)?;
        let next = self.next_seq(tenant)?;
        let first = self.first_seq(tenant)?;
        // The start and first acceptance time of the record holding `seq`.
        let record_at = |seq: u64| -> Result<Option<(u64, i64)>, EngineError> {
            let Some(kv) = tree.range(..=seq.to_be_bytes()).next_back() else {
                return Ok(None);
            };
            let (k, v) = kv?;
            let start = key_seq(&k);
            let record = expand(tenant, start, &v)?;
            let ms = decode_ids(tenant, start, &record)?
                .first()
                .map(|(ms, _)| *ms);
            Ok(ms.map(|ms| (start, ms)))
        };
        // Smallest position whose record starts at or after `since_ms` (`next`: none does).
        let (mut lo, mut hi) = (first, next);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match record_at(mid)? {
                Some((_, ms)) if ms >= since_ms => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let from = match lo.checked_sub(1).filter(|p| *p >= first) {
            Some(before) => record_at(before)?.map_or(lo, |(start, _)| start),
            None => lo,
        };
        Ok(Some(next - from))
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn first_seq(&self, tenant: &str) -> Result<u64, EngineError> {
        match self.tree(tenant)?.first()? {
            Some((k, _)) => Ok(key_seq(&k)),
            None => self.next_seq(tenant),
        }
    }

    fn oldest_spans(&self, tenant: &str, max: usize) -> Result<Vec<Span>, EngineError> {
        let tree = self.tree(tenant)?;
        let last_key = match tree.last()? {
            Some((k, _)) => k,
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            if k == last_key || out.len() >= max {
                break;
            }
            let first = key_seq(&k);
            let record = expand(tenant, first, &v)?;
            let events = decode(tenant, first, &record)?;
            let n = u64::try_from(events.len()).unwrap_or(u64::MAX);
            out.push(Span {
                first,
                last: first.saturating_add(n.saturating_sub(1)),
                newest_ms: events.iter().map(|(ms, ..)| *ms).max().unwrap_or(i64::MIN),
            });
        }
        Ok(out)
    }

    fn purge(&self, tenant: &str, firsts: &[u64]) -> Result<(), EngineError> {
        let tree = self.tree(tenant)?;
        let mut batch = sled::Batch::default();
        for f in firsts {
            batch.remove(&f.to_be_bytes());
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, EngineError> {
        Ok(self.store.size_on_disk()?)
    }
}

/// The error of a record of `tenant` at `seq` that does not decode, for `map_err`.
fn corrupt(tenant: &str, seq: u64) -> impl FnOnce(String) -> EngineError + '_ {
    move |reason| EngineError::Corrupt {
        tenant: tenant.to_owned(),
        seq,
        reason,
    }
}

fn expand<'a>(
    tenant: &str,
    seq: u64,
    v: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, EngineError> {
    codec::expand(v).map_err(corrupt(tenant, seq))
}

fn decode<'a>(tenant: &str, seq: u64, record: &'a [u8]) -> Result<codec::Decoded<'a>, EngineError> {
    codec::decode(record).map_err(corrupt(tenant, seq))
}

/// [`codec::decode_ids`], its error as [`decode`]'s.
fn decode_ids<'a>(
    tenant: &str,
    seq: u64,
    record: &'a [u8],
) -> Result<Vec<(i64, &'a str)>, EngineError> {
    codec::decode_ids(record).map_err(corrupt(tenant, seq))
}

fn key_seq(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[..8]);
    u64::from_be_bytes(b)
}

/// Record layout (integers big-endian):
/// - v3: `3 | n u32 | lz4(entries)`, where `lz4` is an LZ4 block with its uncompressed size
///   prepended (`lz4_flex::compress_prepend_size`) and `entries` is v2's body; written for
///   records of at least [`codec::COMPRESS_MIN`] bytes when that makes them smaller. A
///   commit round of the load generator's events compresses ~10× (docs/PERFORMANCE.md).
/// - v2: `2 | n u32 | n × (accepted_ms i64 | id_len u16 | id | json_len u32 | json)`, written
///   for small records, since one record may hold events accepted by several requests;
/// - v1 (still read): `1 | accepted_ms i64 | n u32 | n × (id_len u16 | id | json_len u32 | json)`.
pub(crate) mod codec {
    use std::borrow::Cow;

    use super::NewEntry;

    const V1: u8 = 1;
    const V2: u8 = 2;
    const V3: u8 = 3;
    /// Records smaller than this are stored as v2: LZ4 saves little on one or two events.
    pub const COMPRESS_MIN: usize = 512;
    /// A record never decompresses to more than this (records are written ≤ 64 KB plus one
    /// event of at most the 1 MB body limit); a larger claimed size is corruption.
    const MAX_DECOMPRESSED: usize = 4 << 20;

    /// Encode `events` as one record: v3 (compressed) when that is smaller, else v2.
    pub fn encode(events: &[NewEntry<'_>]) -> Vec<u8> {
        let plain = encode_v2(events);
        if plain.len() < COMPRESS_MIN {
            return plain;
        }
        let packed = lz4_flex::compress_prepend_size(&plain[5..]);
        if packed.len() + 5 >= plain.len() {
            return plain;
        }
        let mut out = Vec::with_capacity(5 + packed.len());
        out.push(V3);
        out.extend_from_slice(&plain[1..5]);
        out.extend_from_slice(&packed);
        out
    }

    /// A record in a layout [`decode`] reads: v3 is decompressed to v2, v1 and v2 are
    /// borrowed as they are.
    pub fn expand(buf: &[u8]) -> Result<Cow<'_, [u8]>, String> {
        if buf.first() != Some(&V3) {
            return Ok(Cow::Borrowed(buf));
        }
        let body = buf.get(5..).ok_or("truncated record")?;
        let claimed = body
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or("truncated record")?;
        if claimed > MAX_DECOMPRESSED {
            return Err(format!("record claims {claimed} bytes uncompressed"));
        }
        // Straight into the v2 layout behind its header: no second copy of the entries.
        let mut out = vec![0u8; 5 + claimed];
        out[0] = V2;
        out[1..5].copy_from_slice(&buf[1..5]);
        let n = lz4_flex::block::decompress_into(&body[4..], &mut out[5..])
            .map_err(|e| e.to_string())?;
        if n != claimed {
            return Err(format!("record holds {n} bytes, claims {claimed}"));
        }
        Ok(Cow::Owned(out))
    }

    pub fn encode_v2(events: &[NewEntry<'_>]) -> Vec<u8> {
        let size: usize = events.iter().map(|(_, i, j)| 14 + i.len() + j.len()).sum();
        let mut out = Vec::with_capacity(5 + size);
        out.push(V2);
        out.extend_from_slice(
            &u32::try_from(events.len())
                .expect("batch fits u32")
                .to_be_bytes(),
        );
        for (ms, id, json) in events {
            out.extend_from_slice(&ms.to_be_bytes());
            let id_len = u16::try_from(id.len()).expect("event_id length is validated");
            out.extend_from_slice(&id_len.to_be_bytes());
            out.extend_from_slice(id.as_bytes());
            let json_len = u32::try_from(json.len()).expect("body limit keeps events small");
            out.extend_from_slice(&json_len.to_be_bytes());
            out.extend_from_slice(json.as_bytes());
        }
        out
    }

    /// `(version, record-wide accepted_ms for v1, n, where the entries start)`.
    fn header(buf: &[u8]) -> Result<(u8, i64, u32, usize), String> {
        match buf.first() {
            Some(&V1) if buf.len() >= 13 => {
                let ms = i64::from_be_bytes(buf[1..9].try_into().expect("8 bytes"));
                let n = u32::from_be_bytes(buf[9..13].try_into().expect("4 bytes"));
                Ok((V1, ms, n, 13))
            }
            Some(&V2 | &V3) if buf.len() >= 5 => {
                let n = u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes"));
                Ok((V2, 0, n, 5))
            }
            _ => Err("bad record header".into()),
        }
    }

    pub fn count(buf: &[u8]) -> Result<u32, String> {
        header(buf).map(|(_, _, n, _)| n)
    }

    /// A decoded record: `(accepted_ms, event_id, json)` borrowed from the buffer.
    pub type Decoded<'a> = Vec<NewEntry<'a>>;

    /// Step through a v1 or v2 record ([`expand`] a v3 one first), handing `each` every
    /// event's `(accepted_ms, event_id, json bytes)`.
    fn walk<'a>(
        buf: &'a [u8],
        mut each: impl FnMut(i64, &'a str, &'a [u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let (version, record_ms, n, mut at) = header(buf)?;
        if version == V3 {
            return Err("compressed record: expand it first".into());
        }
        let mut take = |len: usize| -> Result<&'a [u8], String> {
            let s = buf.get(at..at + len).ok_or("truncated record")?;
            at += len;
            Ok(s)
        };
        for _ in 0..n {
            let ms = if version == V2 {
                i64::from_be_bytes(take(8)?.try_into().expect("8 bytes"))
            } else {
                record_ms
            };
            let id_len = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
            let id = std::str::from_utf8(take(id_len)?).map_err(|e| e.to_string())?;
            let json_len = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            each(ms, id, take(json_len)?)?;
        }
        Ok(())
    }

    /// Room for a record's events: each takes at least 6 bytes, so `n` is never trusted for
    /// the allocation.
    fn room(buf: &[u8]) -> usize {
        count(buf).map_or(0, |n| (n as usize).min(buf.len() / 6))
    }

    /// Decode a v1 or v2 record ([`expand`] a v3 one first).
    pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, String> {
        let mut out = Vec::with_capacity(room(buf));
        walk(buf, |ms, id, json| {
            out.push((
                ms,
                id,
                std::str::from_utf8(json).map_err(|e| e.to_string())?,
            ));
            Ok(())
        })?;
        Ok(out)
    }

    /// [`decode`] without the events' JSON: `(accepted_ms, event_id)` per event. The JSON is
    /// stepped over unread (not checked as UTF-8), which is most of a decode's time; the dedupe
    /// rebuild reads millions of ids this way.
    pub fn decode_ids(buf: &[u8]) -> Result<Vec<(i64, &str)>, String> {
        let mut out = Vec::with_capacity(room(buf));
        walk(buf, |ms, id, _| {
            out.push((ms, id));
            Ok(())
        })?;
        Ok(out)
    }

    /// The v1 layout, kept to prove logs written before v2 still read back.
    #[cfg(test)]
    pub fn encode_v1(accepted_ms: i64, events: &[(&str, &str)]) -> Vec<u8> {
        let mut out = vec![V1];
        out.extend_from_slice(&accepted_ms.to_be_bytes());
        out.extend_from_slice(&(events.len() as u32).to_be_bytes());
        for (id, json) in events {
            out.extend_from_slice(&(id.len() as u16).to_be_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&(json.len() as u32).to_be_bytes());
            out.extend_from_slice(json.as_bytes());
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn round_trips(evs in proptest::collection::vec((any::<i64>(), ".{0,20}", ".{0,60}"), 0..20)) {
                let refs: Vec<NewEntry<'_>> = evs.iter().map(|(m, a, b)| (*m, a.as_str(), b.as_str())).collect();
                let buf = encode(&refs);
                let record = expand(&buf).unwrap();
                prop_assert_eq!(decode(&record).unwrap(), refs.clone());
                prop_assert_eq!(count(&buf).unwrap() as usize, evs.len());
                let ids: Vec<(i64, &str)> = refs.iter().map(|(m, id, _)| (*m, *id)).collect();
                prop_assert_eq!(decode_ids(&record).unwrap(), ids);
            }

            /// `decode_ids` refuses what `decode` refuses for a short buffer: a cut record is
            /// an error, never a shorter list.
            #[test]
            fn cut_records_are_errors(evs in proptest::collection::vec((any::<i64>(), ".{1,20}", ".{1,60}"), 1..10), cut in 1usize..40) {
                let refs: Vec<NewEntry<'_>> = evs.iter().map(|(m, a, b)| (*m, a.as_str(), b.as_str())).collect();
                let plain = encode_v2(&refs);
                let short = &plain[..plain.len().saturating_sub(cut).max(1)];
                prop_assert!(decode_ids(short).is_err());
                prop_assert!(decode(short).is_err());
            }

            /// Records of repetitive JSON (what events are) compress, and read back.
            #[test]
            fn large_records_compress_and_round_trip(n in 5usize..200, seed in any::<u32>()) {
                let jsons: Vec<String> = (0..n).map(|i| format!(
                    r#"{{"event_id":"e-{seed}-{i}","type":"match.completed","actor":{{"user_id":"user-{}"}},"attrs":{{"score":{}}}}}"#,
                    (seed as usize + i * 7) % 1000, i % 13)).collect();
                let ids: Vec<String> = (0..n).map(|i| format!("e-{seed}-{i}")).collect();
                let refs: Vec<NewEntry<'_>> = (0..n).map(|i| (i as i64, ids[i].as_str(), jsons[i].as_str())).collect();
                let buf = encode(&refs);
                prop_assert_eq!(buf[0], V3);
                prop_assert!(buf.len() < encode_v2(&refs).len() / 2);
                let record = expand(&buf).unwrap();
                prop_assert_eq!(decode(&record).unwrap(), refs);
                prop_assert_eq!(count(&buf).unwrap() as usize, n);
                // A record whose size field lies is corrupt, not a shorter or padded record.
                let mut lying = buf.clone();
                let claimed = u32::from_le_bytes(lying[5..9].try_into().unwrap());
                lying[5..9].copy_from_slice(&(claimed + 1).to_le_bytes());
                prop_assert!(expand(&lying).is_err());
            }

            #[test]
            fn garbage_v3_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
                let mut b = vec![V3];
                b.extend(buf);
                if let Ok(r) = expand(&b) {
                    let _ = decode(&r);
                    let _ = decode_ids(&r);
                }
            }

            #[test]
            fn v1_records_still_read(ms in any::<i64>(), evs in proptest::collection::vec((".{0,20}", ".{0,60}"), 0..20)) {
                let refs: Vec<(&str, &str)> = evs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                let buf = encode_v1(ms, &refs);
                let want: Vec<NewEntry<'_>> = refs.iter().map(|(a, b)| (ms, *a, *b)).collect();
                prop_assert_eq!(decode(&buf).unwrap(), want);
                prop_assert_eq!(count(&buf).unwrap() as usize, evs.len());
            }

            #[test]
            fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = decode(&buf);
                let _ = decode_ids(&buf);
                let _ = expand(&buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(log.next_seq("t").unwrap(), 1);
        log.append("t", 1, &[(10, "a", "{}"), (10, "b", "{}")])
            .unwrap();
        log.append("t", 3, &[(20, "c", "{\"x\":1}")]).unwrap();
        log.append("u", 1, &[(20, "z", "{}")]).unwrap();
        log.sync().unwrap();
        assert_eq!(log.next_seq("t").unwrap(), 4);
        let all = log.read_from("t", 0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let mid = log.read_from("t", 2, 1).unwrap();
        assert_eq!(mid.len(), 1);
        assert_eq!(mid[0].event_id, "b");
        assert_eq!(log.read_from("t", 3, 10).unwrap()[0].json, "{\"x\":1}");
        assert!(log.read_from("t", 4, 10).unwrap().is_empty());
        let recent = log.recent_ids("t", 15).unwrap();
        assert_eq!(recent, vec![("c".to_string(), 3, 20)]);
        assert_eq!(log.recent_ids("t", 0).unwrap().len(), 3);
    }

    /// Retention deletes whole old records; the newest record (the head) always stays, so
    /// positions continue after a purge, and reads from below `first` start at `first`.
    #[test]
    fn purge_keeps_the_head_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(SledLog::open(dir.path(), 1 << 20).unwrap());
        log.append("t", 1, &[(10, "a", "{}"), (11, "b", "{}")])
            .unwrap();
        log.append("t", 3, &[(20, "c", "{}")]).unwrap();
        log.append("t", 4, &[(30, "d", "{}")]).unwrap();
        let spans = log.oldest_spans("t", 10).unwrap();
        assert_eq!(
            spans,
            vec![
                Span {
                    first: 1,
                    last: 2,
                    newest_ms: 11
                },
                Span {
                    first: 3,
                    last: 3,
                    newest_ms: 20
                }
            ]
        );
        log.purge("t", &[1, 3]).unwrap();
        log.sync().unwrap();
        assert_eq!(log.first_seq("t").unwrap(), 4);
        assert!(log.oldest_spans("t", 10).unwrap().is_empty());
        assert_eq!(log.next_seq("t").unwrap(), 5);
        let from_below = log.read_from("t", 1, 10).unwrap();
        assert_eq!(
            from_below.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4]
        );
        assert_eq!(log.first_seq("empty").unwrap(), 1);
        assert!(log.size_on_disk().unwrap() > 0);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledLog::open(dir.path(), 1 << 20).unwrap();
            log.append("t", 1, &[(10, "a", "{}")]).unwrap();
            log.sync().unwrap();
        }
        let log = SledLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(log.next_seq("t").unwrap(), 2);
        assert_eq!(log.read_from("t", 1, 10).unwrap()[0].event_id, "a");
    }

    /// One record may hold events accepted at different times (several requests in one
    /// commit round); each keeps its own time, and logs written as v1 still read.
    #[test]
    fn per_event_acceptance_times_and_v1_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path(), 1 << 20).unwrap();
        let v1 = codec::encode_v1(5, &[("old1", "{}"), ("old2", "{}")]);
        log.tree("t")
            .unwrap()
            .insert(1u64.to_be_bytes(), v1)
            .unwrap();
        log.append("t", 3, &[(10, "a", "{}"), (30, "b", "{}"), (31, "c", "{}")])
            .unwrap();
        assert_eq!(log.next_seq("t").unwrap(), 6);
        let all = log.read_from("t", 0, 100).unwrap();
        let got: Vec<(u64, i64, &str)> = all
            .iter()
            .map(|e| (e.seq, e.accepted_ms, e.event_id.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 5, "old1"),
                (2, 5, "old2"),
                (3, 10, "a"),
                (4, 30, "b"),
                (5, 31, "c")
            ]
        );
        assert_eq!(
            log.recent_ids("t", 30).unwrap(),
            vec![("b".to_string(), 4, 30), ("c".to_string(), 5, 31)]
        );
        assert_eq!(log.recent_ids("t", 5).unwrap().len(), 5);
    }

    /// `recent_ids_newest` keeps the newest `max` of `recent_ids` (across records, oldest
    /// first), and the trait's default agrees with the sled log's early stop.
    #[test]
    fn recent_ids_newest_keeps_the_newest_across_records() {
        struct Plain(std::sync::Arc<SledLog>);
        impl EventLog for Plain {
            fn append(&self, _: &str, _: u64, _: &[NewEntry<'_>]) -> Result<(), EngineError> {
                unreachable!()
            }
            fn sync(&self) -> Result<(), EngineError> {
                unreachable!()
            }
            fn read_from(&self, _: &str, _: u64, _: usize) -> Result<Vec<LogEntry>, EngineError> {
                unreachable!()
            }
            fn next_seq(&self, t: &str) -> Result<u64, EngineError> {
                self.0.next_seq(t)
            }
            fn recent_ids(&self, t: &str, s: i64) -> Result<Vec<(String, u64, i64)>, EngineError> {
                self.0.recent_ids(t, s)
            }
            fn healthy(&self) -> bool {
                true
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(SledLog::open(dir.path(), 1 << 20).unwrap());
        log.append("t", 1, &[(10, "a", "{}"), (11, "b", "{}")])
            .unwrap();
        log.append("t", 3, &[(12, "c", "{}"), (13, "d", "{}"), (14, "e", "{}")])
            .unwrap();
        let ids =
            |v: Vec<(String, u64, i64)>| v.into_iter().map(|(i, s, _)| (i, s)).collect::<Vec<_>>();
        let want = |xs: &[(&str, u64)]| {
            xs.iter()
                .map(|(i, s)| (i.to_string(), *s))
                .collect::<Vec<_>>()
        };
        for max in 0..7 {
            let all = ids(log.recent_ids("t", 11).unwrap());
            let newest = all[all.len().saturating_sub(max)..].to_vec();
            assert_eq!(
                ids(log.recent_ids_newest("t", 11, max).unwrap()),
                newest,
                "max {max}"
            );
            assert_eq!(
                ids(Plain(log.clone()).recent_ids_newest("t", 11, max).unwrap()),
                newest
            );
        }
        assert_eq!(
            ids(log.recent_ids_newest("t", 0, 4).unwrap()),
            want(&[("b", 2), ("c", 3), ("d", 4), ("e", 5)])
        );
        assert_eq!(
            ids(log.recent_ids_newest("t", 13, 10).unwrap()),
            want(&[("d", 4), ("e", 5)])
        );
        // The default hands the same ids over newest first; the sled log's own does too.
        for (since, max) in [(0, 10), (11, 3), (13, 10), (99, 10)] {
            let mut plain = Vec::new();
            Plain(log.clone())
                .each_recent_id_newest("t", since, max, &mut |i, s, _| {
                    plain.push((i.to_string(), s))
                })
                .unwrap();
            let mut sled = Vec::new();
            log.each_recent_id_newest("t", since, max, &mut |i, s, _| {
                sled.push((i.to_string(), s))
            })
            .unwrap();
            let mut want = ids(log.recent_ids_newest("t", since, max).unwrap());
            want.reverse();
            assert_eq!((&plain, &sled), (&want, &want), "since {since} max {max}");
        }
        assert_eq!(Plain(log.clone()).recent_count_hint("t", 0).unwrap(), None);
    }

    /// The hint the rebuild sizes its tables by is never below the count of recent ids, and
    /// at most one record above it, wherever `since` falls; a purged prefix changes nothing.
    #[test]
    fn recent_count_hint_bounds_the_recent_ids() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(log.recent_count_hint("t", 0).unwrap(), Some(0));
        // 40 records of 1..=7 events, acceptance times rising by 10 ms per event.
        let (mut seq, mut ms) = (1u64, 0i64);
        let mut sizes = Vec::new();
        for r in 0..40u64 {
            let n = 1 + (r * 5 % 7);
            let ids: Vec<String> = (0..n).map(|i| format!("e{}", seq + i)).collect();
            let entries: Vec<NewEntry<'_>> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (ms + 10 * i as i64, id.as_str(), "{}"))
                .collect();
            log.append("t", seq, &entries).unwrap();
            sizes.push(n);
            seq += n;
            ms += 10 * n as i64;
        }
        let largest = *sizes.iter().max().unwrap();
        let check = |log: &SledLog| {
            for since in (-5..ms + 15).step_by(5) {
                let exact = log.recent_ids("t", since).unwrap().len() as u64;
                let hint = log.recent_count_hint("t", since).unwrap().unwrap();
                assert!(
                    hint >= exact && hint <= exact + largest,
                    "since {since}: {hint} vs {exact}"
                );
            }
        };
        check(&log);
        let spans = log.oldest_spans("t", 10).unwrap();
        log.purge("t", &spans.iter().map(|s| s.first).collect::<Vec<_>>())
            .unwrap();
        check(&log);
    }
}
