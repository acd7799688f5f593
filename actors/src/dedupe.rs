//! The per-tenant dedupe window: a pure, bounded, synchronous set of recent `event_id`s.
//!
//! Entries expire `window_ms` after they were accepted (server clock). The set is also capped
//! at `capacity` entries; when full, the oldest entry is evicted early and counted, so memory
//! stays bounded whatever the ingest rate.
//!
//! The ids live in [`SHARDS`] separate hash maps: a map that doubles rehashes all of its keys
//! at once, and at millions of ids that took the tenant actor (and every ack behind it)
//! hundreds of milliseconds. Sharding divides each of those pauses by the shard count, and
//! [`DedupeWindow::maintain`] grows at most one shard per batch, ahead of need. Shards fill
//! in lockstep (ids hash uniformly), so each shard grows at its own load — spread from 50 %
//! to 85 % across the shards — or they would all double within the same second, one batch
//! after another, and stall the actor just the same (seen with 64 shards: 64 batches of
//! 10–19 ms in a row at 2.7 M ids; `examples/dedupe_pauses.rs` measures it). The expiry order
//! is kept in fixed-size blocks for the same reason: one big queue would copy tens of MB when
//! it doubles.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Number of hash maps the ids are spread over.
pub const SHARDS: usize = 1024;

/// Shards [`DedupeWindow::maintain`] looks at per call (it grows at most one).
const MAINTAIN_SCAN: usize = 8;

/// Below this many ids a shard just grows when it must: that is cheap.
const MAINTAIN_MIN_LEN: usize = 256;

/// How full (of `capacity()`) shard `k` may get before `maintain` grows it.
fn grow_at(k: usize, capacity: usize) -> usize {
    capacity / 100 * (50 + 35 * k / SHARDS)
}

/// One shard of the window: id → log position. Ids come from clients, so the hasher is
/// seeded per shard (foldhash's quality variant, a fraction of SipHash's cost per id).
type Shard = HashMap<Arc<str>, u64, foldhash::quality::RandomState>;

/// Recent event ids of one tenant with the log position each was stored at.
#[derive(Debug)]
pub struct DedupeWindow {
    window_ms: i64,
    capacity: usize,
    len: usize,
    seen: Vec<Shard>,
    /// Insertion order: (accepted_ms, id), in blocks of [`BLOCK`]. Accepted times are
    /// non-decreasing in practice; eviction only trusts the front, so a clock step backwards
    /// merely delays expiry.
    order: Order,
    /// Next shard [`DedupeWindow::maintain`] looks at.
    next_shard: usize,
    evicted_early: u64,
}

impl DedupeWindow {
    pub fn new(window_ms: i64, capacity: usize) -> Self {
        DedupeWindow {
            window_ms,
            capacity: capacity.max(1),
            len: 0,
            seen: (0..SHARDS).map(|_| Shard::default()).collect(),
            order: Order::default(),
            next_shard: 0,
            evicted_early: 0,
        }
    }

    fn shard(id: &str) -> usize {
        // FNV-1a: cheap, and only picks a shard (each map hashes again with its own seed).
        let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        (h % SHARDS as u64) as usize
    }

    /// Grow at most one shard that has reached its load (`grow_at`: 50–85 %), looking at a few
    /// shards round robin: call once per batch.
    pub fn maintain(&mut self) {
        for _ in 0..MAINTAIN_SCAN {
            let k = self.next_shard;
            self.next_shard = (k + 1) % SHARDS;
            let shard = &mut self.seen[k];
            if shard.len() >= MAINTAIN_MIN_LEN && shard.len() >= grow_at(k, shard.capacity()) {
                shard.reserve(shard.capacity());
                return;
            }
        }
    }

    /// Make room for `n` more ids at once (a restart's rebuild), so the shards do not double
    /// their way up one insert at a time. Shards then grow at their own load as before.
    pub fn reserve(&mut self, n: usize) {
        let per_shard = n.min(self.capacity) / SHARDS;
        if per_shard == 0 {
            return;
        }
        for shard in &mut self.seen {
            shard.reserve(per_shard + per_shard / 4);
        }
    }

    /// Whether `id` is a duplicate at `now_ms` (cheap path: expire first, then look up).
    pub fn check(&mut self, id: &str, now_ms: i64) -> Option<u64> {
        self.expire(now_ms);
        self.seen[Self::shard(id)].get(id).copied()
    }

    /// Record `id` as accepted at `accepted_ms` with log position `seq`.
    pub fn insert(&mut self, id: &str, seq: u64, accepted_ms: i64) {
        let shard = Self::shard(id);
        if self.seen[shard].contains_key(id) {
            return;
        }
        self.insert_new(shard, id, seq, accepted_ms);
    }

    /// [`DedupeWindow::check`] and, when `id` is not in the window, [`DedupeWindow::insert`]
    /// at `seq` in one step: one shard hash and one lookup where the two took two and three.
    /// Does not expire (call [`DedupeWindow::expire`] once per batch first).
    pub fn check_or_insert(&mut self, id: &str, seq: u64, now_ms: i64) -> Option<u64> {
        let shard = Self::shard(id);
        if let Some(earlier) = self.seen[shard].get(id) {
            return Some(*earlier);
        }
        self.insert_new(shard, id, seq, now_ms);
        None
    }

    /// Rebuild from the log **newest first**: remember each `(id, seq, accepted_ms)` of
    /// `batch` (itself newest first) as older than everything inserted so far, unless the
    /// window already holds the id (a newer position of it: the older was gone when the newer
    /// was accepted) or is full (a full window keeps the newest ids). Nothing is evicted.
    pub fn insert_older(&mut self, batch: &[(&str, u64, i64)]) {
        for &(id, seq, accepted_ms) in batch {
            if self.len >= self.capacity {
                return;
            }
            let shard = Self::shard(id);
            if !self.seen[shard].contains_key(id) {
                self.add(shard, id, seq, accepted_ms, true);
            }
        }
    }

    /// Insert `id`, known not to be in `shard`, evicting the oldest while full.
    fn insert_new(&mut self, shard: usize, id: &str, seq: u64, accepted_ms: i64) {
        while self.len >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen[Self::shard(&old)].remove(&old);
                self.len -= 1;
                self.evicted_early += 1;
            } else {
                break;
            }
        }
        self.add(shard, id, seq, accepted_ms, false);
    }

    /// Remember `id` (not in `shard`) as the newest entry, or as the oldest if `oldest`.
    fn add(&mut self, shard: usize, id: &str, seq: u64, accepted_ms: i64, oldest: bool) {
        let key: Arc<str> = Arc::from(id);
        self.seen[shard].insert(key.clone(), seq);
        self.len += 1;
        self.order.push((accepted_ms, key), oldest);
    }

    /// Drop entries accepted at or before `now_ms - window_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(accepted, _)) = self.order.front() {
            if accepted + self.window_ms > now_ms {
                break;
            }
            let (_, id) = self.order.pop_front().expect("front exists");
            self.seen[Self::shard(&id)].remove(&id);
            self.len -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many entries were evicted before their window ended because of the capacity cap.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

/// Entries per block of the expiry order.
const BLOCK: usize = 4096;

/// A FIFO of blocks: pushing never reallocates more than one block.
#[derive(Debug, Default)]
struct Order {
    blocks: VecDeque<VecDeque<(i64, Arc<str>)>>,
}

impl Order {
    /// Add `item` as the newest, or as the oldest if `front` (the rebuild reads the log
    /// newest first).
    fn push(&mut self, item: (i64, Arc<str>), front: bool) {
        let end = if front {
            self.blocks.front_mut()
        } else {
            self.blocks.back_mut()
        };
        match end {
            Some(b) if b.len() < BLOCK && front => b.push_front(item),
            Some(b) if b.len() < BLOCK => b.push_back(item),
            _ => {
                let mut b = VecDeque::with_capacity(BLOCK);
                b.push_back(item);
                if front {
                    self.blocks.push_front(b);
                } else {
                    self.blocks.push_back(b);
                }
            }
        }
    }

    fn front(&self) -> Option<&(i64, Arc<str>)> {
        self.blocks.front().and_then(|b| b.front())
    }

    fn pop_front(&mut self) -> Option<(i64, Arc<str>)> {
        let first = self.blocks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() {
            self.blocks.pop_front();
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicate_within_window_then_expires() {
        let mut w = DedupeWindow::new(300_000, 100);
        assert_eq!(w.check("a", 1_000), None);
        w.insert("a", 7, 1_000);
        assert_eq!(w.check("a", 300_999), Some(7));
        assert_eq!(w.check("a", 301_000), None);
        assert!(w.is_empty());
    }

    #[test]
    fn capacity_evicts_oldest_and_counts_it() {
        let mut w = DedupeWindow::new(300_000, 2);
        w.insert("a", 1, 0);
        w.insert("b", 2, 1);
        w.insert("c", 3, 2);
        assert_eq!(w.len(), 2);
        assert_eq!(w.check("a", 3), None);
        assert_eq!(w.check("b", 3), Some(2));
        assert_eq!(w.evicted_early(), 1);
    }

    /// A rebuild's reservation changes nothing but room: ids still dedupe, expire and evict.
    #[test]
    fn reserve_then_fill_past_capacity() {
        let cap = 4 * SHARDS;
        let mut w = DedupeWindow::new(1_000, cap);
        w.reserve(10 * cap);
        assert!(w.seen.iter().all(|s| s.capacity() >= 4));
        for i in 0..cap + 10 {
            w.insert(&format!("id-{i}"), i as u64, i as i64);
        }
        assert_eq!(w.len(), cap);
        assert_eq!(w.evicted_early(), 10);
        assert_eq!(w.check("id-9", 0), None);
        assert_eq!(w.check("id-10", 0), Some(10));
        w.expire(1_000 + cap as i64 + 8);
        assert_eq!(w.len(), 1);
        assert_eq!(w.check(&format!("id-{}", cap + 9), 0), Some(cap as u64 + 9));
    }

    /// A rebuild newest first leaves the window as one oldest first would (distinct ids that
    /// fit): the same ids at the same positions, expiring in the same order, and full at the
    /// same point.
    #[test]
    fn newest_first_rebuild_matches_oldest_first() {
        let n = 2 * BLOCK + 5;
        let (mut old_first, mut new_first) =
            (DedupeWindow::new(1_000, n), DedupeWindow::new(1_000, n));
        for i in 0..n {
            old_first.insert(&format!("id-{i}"), i as u64, i as i64);
        }
        let ids: Vec<String> = (0..n).rev().map(|i| format!("id-{i}")).collect();
        let batch: Vec<(&str, u64, i64)> = ids
            .iter()
            .zip((0..n).rev())
            .map(|(id, i)| (id.as_str(), i as u64, i as i64))
            .collect();
        // In uneven batches, as the rebuild hands them over.
        for part in batch.chunks(BLOCK - 3) {
            new_first.insert_older(part);
        }
        new_first.insert_older(&[("one-too-many", 0, 0)]);
        assert_eq!(new_first.len(), n);
        for at in [0, 1, BLOCK as i64, n as i64 - 1] {
            old_first.expire(1_000 + at);
            new_first.expire(1_000 + at);
            assert_eq!(old_first.len(), new_first.len());
            for i in 0..n {
                let id = format!("id-{i}");
                assert_eq!(
                    old_first.check(&id, 0),
                    new_first.check(&id, 0),
                    "{id} at {at}"
                );
            }
        }
        assert_eq!(new_first.check("one-too-many", 0), None);
    }

    /// Newest first, a repeated id keeps its newest position (the one a live window holds:
    /// the older was gone when the newer was accepted).
    #[test]
    fn newest_first_keeps_the_newest_position() {
        let mut w = DedupeWindow::new(1_000, 10);
        w.insert_older(&[("a", 9, 5), ("b", 8, 4), ("a", 1, 0)]);
        w.insert_older(&[("b", 2, 1)]);
        assert_eq!(
            (w.check("a", 6), w.check("b", 6), w.len()),
            (Some(9), Some(8), 2)
        );
        w.expire(1_004);
        assert_eq!(
            (w.check("a", 0), w.check("b", 0), w.len()),
            (Some(9), None, 1)
        );
    }

    #[test]
    fn reinsert_keeps_first_position() {
        let mut w = DedupeWindow::new(1_000, 10);
        w.insert("a", 1, 0);
        w.insert("a", 9, 5);
        assert_eq!(w.check("a", 6), Some(1));
    }

    #[test]
    fn order_blocks_expire_and_evict_across_block_boundaries() {
        let n = 3 * BLOCK as i64 + 17;
        let mut w = DedupeWindow::new(1_000_000, 2 * BLOCK);
        for i in 0..n {
            w.maintain();
            w.insert(&format!("id-{i}"), i as u64, i);
        }
        assert_eq!(w.len(), 2 * BLOCK, "capacity holds across blocks");
        assert_eq!(w.evicted_early(), (n as usize - 2 * BLOCK) as u64);
        let oldest_kept = n - 2 * BLOCK as i64;
        assert_eq!(w.check(&format!("id-{}", oldest_kept - 1), n), None);
        assert_eq!(
            w.check(&format!("id-{oldest_kept}"), n),
            Some(oldest_kept as u64)
        );
        // Entries expire once accepted + window <= now: keep the last 10 (n-10 .. n-1).
        w.expire(n - 11 + 1_000_000);
        assert_eq!(w.len(), 10);
        assert_eq!(w.check(&format!("id-{}", n - 1), n), Some(n as u64 - 1));
    }

    proptest! {
        /// `check_or_insert` answers and remembers exactly what `check` then `insert` do,
        /// including once the capacity evicts.
        #[test]
        fn check_or_insert_is_check_then_insert(
            ops in proptest::collection::vec((0u8..12, 0i64..30), 1..300),
            capacity in 1usize..8,
        ) {
            let mut one = DedupeWindow::new(100, capacity);
            let mut two = DedupeWindow::new(100, capacity);
            let mut now = 0i64;
            for (seq, (id, dt)) in ops.into_iter().enumerate() {
                now += dt;
                let id = format!("e{id}");
                one.expire(now);
                let got = one.check_or_insert(&id, seq as u64, now);
                let want = two.check(&id, now);
                if want.is_none() {
                    two.insert(&id, seq as u64, now);
                }
                prop_assert_eq!(got, want);
                prop_assert_eq!((one.len(), one.evicted_early()), (two.len(), two.evicted_early()));
            }
        }

        /// Against a naive model: an id is a duplicate iff it was inserted less than
        /// `window` ms ago (capacity large enough not to interfere).
        #[test]
        fn matches_naive_model(ops in proptest::collection::vec((0u8..8, 0i64..50), 1..200)) {
            let window = 100;
            let mut w = DedupeWindow::new(window, 10_000);
            let mut model: HashMap<String, (u64, i64)> = HashMap::new();
            let mut now = 0i64;
            for (seq, (id, dt)) in ops.into_iter().enumerate() {
                now += dt;
                let id = format!("e{id}");
                let expect = model.get(&id).filter(|(_, t)| t + window > now).map(|(s, _)| *s);
                prop_assert_eq!(w.check(&id, now), expect);
                w.maintain();
                if expect.is_none() {
                    w.insert(&id, seq as u64, now);
                    model.insert(id, (seq as u64, now));
                }
            }
        }
    }
}
