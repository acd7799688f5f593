//! Order-statistic rank index for one leaderboard window: user → (score, reached_at), rank ↔ user.
//!
//! Layout (measured ≈ 78 bytes per entry at 1,000,000 users, user ids included):
//! - a counted B+tree (`Tree`, fan-out 64): leaves hold sorted 20-byte rows `(score key, reached_at,
//!   user slot)` as struct-of-arrays, so a binary search reads the 8-byte score column; inner nodes
//!   hold, per child, the exact minimum key of its subtree and its entry count. Rank lookup,
//!   select-by-rank, insert and remove each descend once (O(log n)); leaves are chained, so top-N
//!   and around-a-user are one descent plus O(k). Nodes live in `Vec<Box<_>>` arenas by `u32` id.
//! - a user table (`Users`): every user id is stored once in a shared string arena and addressed by a
//!   `u32` slot; an open-addressing hash table of slot numbers maps id → slot without a second copy.
//!
//! Order: score in [`SortOrder`] (by `f64::total_cmp`, so `-inf` and `+inf` rank sanely), then the
//! earlier `reached_at` (log position at which the user reached that score), then `user_id` ascending
//! (byte order). `NaN` scores are ignored by [`RankIndex::upsert`]; `-0.0` is stored as `0.0`.
//!
//! Limits (panics, far beyond one window's realistic size): at most `u32::MAX - 1` users and 4 GiB
//! of user-id bytes per index. Freed nodes and user slots are reused, not returned to the allocator.

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// "No node / no slot" marker in `u32` links.
const NIL: u32 = u32::MAX;
/// Physical key capacity of a leaf (production fan-out).
const LEAF_CAP: usize = 64;
/// Physical child capacity of an inner node (production fan-out).
const INNER_CAP: usize = 64;

/// Which end of the score range ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Highest score is rank 1.
    #[default]
    Desc,
    /// Lowest score is rank 1.
    Asc,
}

impl SortOrder {
    /// The wire name (`"desc"` / `"asc"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Desc => "desc",
            SortOrder::Asc => "asc",
        }
    }
}

impl FromStr for SortOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "desc" => Ok(SortOrder::Desc),
            "asc" => Ok(SortOrder::Asc),
            other => Err(format!(
                "unknown sort order {other:?} (expected \"desc\" or \"asc\")"
            )),
        }
    }
}

/// How equal scores rank (SPEC §12 `ties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ties {
    /// Distinct ranks; whoever reached the score first ranks higher (1, 2, 3, 4).
    #[default]
    FirstToReach,
    /// Equal scores share a rank and the next rank skips (1, 2, 2, 4); the order inside a
    /// tie stays first-to-reach.
    Shared,
}

impl Ties {
    pub fn as_str(self) -> &'static str {
        match self {
            Ties::FirstToReach => "first_to_reach",
            Ties::Shared => "shared",
        }
    }
}

impl FromStr for Ties {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "first_to_reach" => Ok(Ties::FirstToReach),
            "shared" => Ok(Ties::Shared),
            other => Err(format!(
                "unknown ties {other:?} (expected \"first_to_reach\" or \"shared\")"
            )),
        }
    }
}

/// One row of a standings answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 1-based rank.
    pub rank: usize,
    pub user_id: String,
    pub score: f64,
}

/// A borrowed row yielded by [`RankIndex::iter`]; carries `reached_at` so a board can be persisted
/// and rebuilt exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryRef<'a> {
    /// 1-based rank (shared by equal scores under [`Ties::Shared`]).
    pub rank: usize,
    /// 1-based position in rank order (always distinct).
    pub position: usize,
    pub user_id: &'a str,
    pub score: f64,
    pub reached_at: u64,
}

impl EntryRef<'_> {
    /// The owned form used in API answers.
    pub fn to_entry(&self) -> Entry {
        Entry {
            rank: self.rank,
            user_id: self.user_id.to_owned(),
            score: self.score,
        }
    }
}

/// Maps a score to a `u64` whose unsigned order is `f64::total_cmp` order (ascending).
fn asc_bits(score: f64) -> u64 {
    let bits = score.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn score_from_asc_bits(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

fn score_key(score: f64, order: SortOrder) -> u64 {
    match order {
        SortOrder::Asc => asc_bits(score),
        SortOrder::Desc => !asc_bits(score),
    }
}

fn key_score(skey: u64, order: SortOrder) -> f64 {
    match order {
        SortOrder::Asc => score_from_asc_bits(skey),
        SortOrder::Desc => score_from_asc_bits(!skey),
    }
}

/// Sort key of one entry. Ordered by `(skey, reached, name of uid)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Key {
    skey: u64,
    reached: u64,
    uid: u32,
}

/// Column-wise row moves for struct-of-arrays nodes: every listed column moves together, so a
/// binary search only touches the 8-byte `skey` column until it meets a tie.
macro_rules! soa_rows {
    ($ty:ident { $($col:ident),+ }) => {
        impl $ty {
            /// Shifts rows `[i..]` right by one; the caller fills row `i`.
            fn open_gap(&mut self, i: usize) {
                debug_assert!(self.len < self.skey.len() && i <= self.len);
                $( self.$col.copy_within(i..self.len, i + 1); )+
                self.len += 1;
            }

            fn close_gap(&mut self, i: usize) {
                $( self.$col.copy_within(i + 1..self.len, i); )+
                self.len -= 1;
            }

            /// Moves rows `[at..]` into the empty `right`.
            fn split_into(&mut self, right: &mut Self, at: usize) {
                let n = self.len - at;
                $( right.$col[..n].copy_from_slice(&self.$col[at..self.len]); )+
                right.len = n;
                self.len = at;
            }

            /// Moves the first `n` rows of `right` to the back of `self`.
            fn take_front(&mut self, right: &mut Self, n: usize) {
                let l = self.len;
                $(
                    self.$col[l..l + n].copy_from_slice(&right.$col[..n]);
                    right.$col.copy_within(n..right.len, 0);
                )+
                self.len += n;
                right.len -= n;
            }

            /// Moves the last `n` rows of `left` to the front of `self`.
            fn take_back(&mut self, left: &mut Self, n: usize) {
                let (l, r) = (left.len, self.len);
                $(
                    self.$col.copy_within(0..r, n);
                    self.$col[..n].copy_from_slice(&left.$col[l - n..l]);
                )+
                self.len += n;
                left.len -= n;
            }

            /// Evens out two siblings (left gets the smaller half), or moves all rows left.
            fn rebalance_pair(left: &mut Self, right: &mut Self, merge: bool) {
                let total = left.len + right.len;
                let target = if merge { total } else { total / 2 };
                if left.len < target {
                    left.take_front(right, target - left.len);
                } else if left.len > target {
                    right.take_back(left, left.len - target);
                }
            }

            fn key(&self, i: usize) -> Key {
                Key {
                    skey: self.skey[i],
                    reached: self.reached[i],
                    uid: self.uid[i],
                }
            }

            fn set_key(&mut self, i: usize, k: Key) {
                self.skey[i] = k.skey;
                self.reached[i] = k.reached;
                self.uid[i] = k.uid;
            }

            /// Order of row `i` relative to `t`.
            fn cmp_row(&self, i: usize, t: &Key, users: &Users) -> Ordering {
                self.skey[i]
                    .cmp(&t.skey)
                    .then_with(|| self.reached[i].cmp(&t.reached))
                    .then_with(|| users.cmp_uids(self.uid[i], t.uid))
            }
        }
    };
}

/// First index in `lo..hi` where the monotone `pred` (true…true false…false) is false.
fn partition(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[derive(Debug, Clone)]
struct Leaf {
    len: usize,
    /// Next leaf in key order (`NIL` for the last).
    next: u32,
    skey: [u64; LEAF_CAP],
    reached: [u64; LEAF_CAP],
    uid: [u32; LEAF_CAP],
}

soa_rows!(Leaf { skey, reached, uid });

impl Leaf {
    fn empty() -> Self {
        Leaf {
            len: 0,
            next: NIL,
            skey: [0; LEAF_CAP],
            reached: [0; LEAF_CAP],
            uid: [0; LEAF_CAP],
        }
    }

    /// `Ok(row)` of `t`, or `Err(row)` where it would be inserted.
    fn find(&self, t: &Key, users: &Users) -> Result<usize, usize> {
        let i = partition(0, self.len, |i| self.cmp_row(i, t, users) == Ordering::Less);
        if i < self.len && self.key(i) == *t {
            Ok(i)
        } else {
            Err(i)
        }
    }

    fn insert(&mut self, i: usize, k: Key) {
        self.open_gap(i);
        self.set_key(i, k);
    }
}

/// Row `i` describes child `i`: the exact minimum key of its subtree (`key(0)` is only meaningful
/// transiently, while rebalancing), its node id and its entry count.
#[derive(Debug, Clone)]
struct Inner {
    len: usize,
    skey: [u64; INNER_CAP],
    reached: [u64; INNER_CAP],
    uid: [u32; INNER_CAP],
    child: [u32; INNER_CAP],
    count: [u32; INNER_CAP],
}

soa_rows!(Inner {
    skey,
    reached,
    uid,
    child,
    count
});

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            skey: [0; INNER_CAP],
            reached: [0; INNER_CAP],
            uid: [0; INNER_CAP],
            child: [0; INNER_CAP],
            count: [0; INNER_CAP],
        }
    }

    fn insert(&mut self, i: usize, k: Key, child: u32, count: u32) {
        self.open_gap(i);
        self.set_key(i, k);
        self.child[i] = child;
        self.count[i] = count;
    }

    fn total(&self) -> usize {
        self.count_before(self.len)
    }

    /// Index of the child whose key range contains `t`.
    fn child_for(&self, t: &Key, users: &Users) -> usize {
        partition(1, self.len, |i| {
            self.cmp_row(i, t, users) != Ordering::Greater
        }) - 1
    }

    fn count_before(&self, idx: usize) -> usize {
        // Widening: counts are u32.
        self.count[..idx].iter().map(|&c| c as usize).sum()
    }
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b, "two_mut on one node");
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("rank index exceeds u32 range")
}

/// The counted B+tree. Key comparison needs user names, so every operation borrows [`Users`].
#[derive(Debug, Clone)]
#[allow(
    clippy::vec_box,
    reason = "nodes are ~1.5 KiB: boxing keeps the arenas' spare capacity at 8 bytes a slot and \
              makes growth copy pointers, not nodes"
)]
struct Tree {
    leaves: Vec<Box<Leaf>>,
    inners: Vec<Box<Inner>>,
    /// Freed node ids, reused before the arenas grow (their boxes stay allocated).
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: u32,
    /// 0 when the root is a leaf.
    height: usize,
    len: usize,
    leaf_cap: usize,
    leaf_min: usize,
    inner_cap: usize,
    inner_min: usize,
}

impl Tree {
    fn new(leaf_cap: usize, inner_cap: usize) -> Self {
        assert!((3..=LEAF_CAP).contains(&leaf_cap) && (4..=INNER_CAP).contains(&inner_cap));
        Tree {
            leaves: vec![Box::new(Leaf::empty())],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
            leaf_cap,
            leaf_min: leaf_cap / 3,
            inner_cap,
            inner_min: (inner_cap / 3).max(2),
        }
    }

    fn alloc_leaf(&mut self, leaf: Leaf) -> u32 {
        match self.free_leaves.pop() {
            Some(id) => {
                *self.leaves[id as usize] = leaf;
                id
            }
            None => {
                self.leaves.push(Box::new(leaf));
                to_u32(self.leaves.len() - 1)
            }
        }
    }

    fn alloc_inner(&mut self, inner: Inner) -> u32 {
        match self.free_inners.pop() {
            Some(id) => {
                *self.inners[id as usize] = inner;
                id
            }
            None => {
                self.inners.push(Box::new(inner));
                to_u32(self.inners.len() - 1)
            }
        }
    }

    /// Entries under `node` at `height`.
    fn count_of(&self, node: u32, height: usize) -> u32 {
        to_u32(if height == 0 {
            self.leaves[node as usize].len
        } else {
            self.inners[node as usize].total()
        })
    }

    fn insert(&mut self, key: Key, users: &Users) {
        if let Some((sep, right)) = self.insert_rec(self.root, self.height, key, users) {
            let left = self.root;
            let mut root = Inner::empty();
            root.insert(0, Key::default(), left, self.count_of(left, self.height));
            root.insert(1, sep, right, self.count_of(right, self.height));
            self.root = self.alloc_inner(root);
            self.height += 1;
        }
        self.len += 1;
    }

    /// Inserts below `node`; on a split returns the new right sibling and its separator.
    fn insert_rec(
        &mut self,
        node: u32,
        height: usize,
        key: Key,
        users: &Users,
    ) -> Option<(Key, u32)> {
        if height == 0 {
            let cap = self.leaf_cap;
            let leaf = &mut self.leaves[node as usize];
            let (Ok(pos) | Err(pos)) = leaf.find(&key, users);
            if leaf.len < cap {
                leaf.insert(pos, key);
                return None;
            }
            let half = cap / 2;
            let mut right = Leaf::empty();
            leaf.split_into(&mut right, half);
            if pos <= half {
                leaf.insert(pos, key);
            } else {
                right.insert(pos - half, key);
            }
            right.next = leaf.next;
            let sep = right.key(0);
            let id = self.alloc_leaf(right);
            self.leaves[node as usize].next = id;
            return Some((sep, id));
        }
        let inner = &self.inners[node as usize];
        let idx = inner.child_for(&key, users);
        let child = inner.child[idx];
        let split = self.insert_rec(child, height - 1, key, users);
        let Some((sep, new_child)) = split else {
            self.inners[node as usize].count[idx] += 1;
            return None;
        };
        let left_count = self.count_of(child, height - 1);
        let right_count = self.count_of(new_child, height - 1);
        let cap = self.inner_cap;
        let inner = &mut self.inners[node as usize];
        inner.count[idx] = left_count;
        if inner.len < cap {
            inner.insert(idx + 1, sep, new_child, right_count);
            return None;
        }
        let half = cap / 2;
        let mut right = Inner::empty();
        inner.split_into(&mut right, half);
        if idx < half {
            inner.insert(idx + 1, sep, new_child, right_count);
        } else {
            right.insert(idx + 1 - half, sep, new_child, right_count);
        }
        let up = right.key(0);
        Some((up, self.alloc_inner(right)))
    }

    /// Removes `key`; returns its 0-based position before removal.
    fn remove(&mut self, key: Key, users: &Users) -> Option<usize> {
        let pos = self.remove_rec(self.root, self.height, key, users)?;
        self.len -= 1;
        if self.height > 0 && self.inners[self.root as usize].len == 1 {
            let old = self.root;
            self.root = self.inners[old as usize].child[0];
            self.height -= 1;
            self.free_inners.push(old);
        }
        Some(pos)
    }

    fn remove_rec(&mut self, node: u32, height: usize, key: Key, users: &Users) -> Option<usize> {
        if height == 0 {
            let leaf = &mut self.leaves[node as usize];
            let i = leaf.find(&key, users).ok()?;
            leaf.close_gap(i);
            return Some(i);
        }
        let inner = &self.inners[node as usize];
        let idx = inner.child_for(&key, users);
        let before = inner.count_before(idx);
        let child = inner.child[idx];
        let pos = self.remove_rec(child, height - 1, key, users)?;
        let inner = &mut self.inners[node as usize];
        inner.count[idx] -= 1;
        if idx > 0 && inner.key(idx) == key {
            // Separators are exact subtree minima, so no separator ever names a removed user
            // (whose slot and name may be reused). An emptied leaf is fixed by `rebalance`.
            if let Some(min) = self.min_key(child, height - 1) {
                self.inners[node as usize].set_key(idx, min);
            }
        }
        let (child_len, min) = if height == 1 {
            (self.leaves[child as usize].len, self.leaf_min)
        } else {
            (self.inners[child as usize].len, self.inner_min)
        };
        if child_len < min {
            self.rebalance(node, idx, height - 1);
        }
        Some(before + pos)
    }

    /// Fixes an underfull child `idx` of `parent` by merging with or borrowing from a sibling.
    fn rebalance(&mut self, parent: u32, idx: usize, child_height: usize) {
        let p = &self.inners[parent as usize];
        let (li, ri) = if idx + 1 < p.len {
            (idx, idx + 1)
        } else {
            (idx - 1, idx)
        };
        let (l, r) = (p.child[li] as usize, p.child[ri] as usize);
        let (merged, left_min, right_min, lc, rc) = if child_height == 0 {
            let (ln, rn) = two_mut(&mut self.leaves, l, r);
            let merge = ln.len + rn.len <= self.leaf_cap;
            Leaf::rebalance_pair(ln, rn, merge);
            if merge {
                ln.next = rn.next;
            }
            // The left leaf may have been emptied and refilled from the right.
            (merge, Some(ln.key(0)), rn.key(0), ln.len, rn.len)
        } else {
            let parent_sep = p.key(ri);
            let (ln, rn) = two_mut(&mut self.inners, l, r);
            rn.set_key(0, parent_sep);
            let merge = ln.len + rn.len <= self.inner_cap;
            Inner::rebalance_pair(ln, rn, merge);
            (merge, None, rn.key(0), ln.total(), rn.total())
        };
        let p = &mut self.inners[parent as usize];
        p.count[li] = to_u32(lc);
        if let (true, Some(min)) = (li > 0, left_min) {
            p.set_key(li, min);
        }
        if merged {
            p.close_gap(ri);
            if child_height == 0 {
                self.free_leaves.push(to_u32(r));
            } else {
                self.free_inners.push(to_u32(r));
            }
        } else {
            p.set_key(ri, right_min);
            p.count[ri] = to_u32(rc);
        }
    }

    /// Smallest key under `node`.
    fn min_key(&self, mut node: u32, height: usize) -> Option<Key> {
        for _ in 0..height {
            node = self.inners[node as usize].child[0];
        }
        let leaf = &self.leaves[node as usize];
        (leaf.len > 0).then(|| leaf.key(0))
    }

    /// 0-based position of an existing key.
    fn position(&self, key: &Key, users: &Users) -> Option<usize> {
        let mut node = self.root;
        let mut acc = 0;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let idx = inner.child_for(key, users);
            acc += inner.count_before(idx);
            node = inner.child[idx];
        }
        let i = self.leaves[node as usize].find(key, users).ok()?;
        Some(acc + i)
    }

    /// Number of entries whose score key is strictly less than `skey` (ranked strictly better):
    /// one descent, reading only the score column.
    fn count_below(&self, skey: u64) -> usize {
        let mut node = self.root;
        let mut acc = 0;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            // The last child whose minimum is below `skey` (children before it are wholly below,
            // children after it wholly at or above); child 0 when there is none.
            let idx = partition(1, inner.len, |i| inner.skey[i] < skey) - 1;
            acc += inner.count_before(idx);
            node = inner.child[idx];
        }
        let leaf = &self.leaves[node as usize];
        acc + partition(0, leaf.len, |i| leaf.skey[i] < skey)
    }

    /// Leaf and in-leaf index of the entry at 0-based `pos` (`pos == len` gives an end cursor).
    fn select(&self, mut pos: usize) -> (u32, usize) {
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            // The last child takes whatever is left, so `pos == len` parks at the end.
            let mut chosen = inner.len - 1;
            for i in 0..chosen {
                let c = inner.count[i] as usize;
                if pos < c {
                    chosen = i;
                    break;
                }
                pos -= c;
            }
            node = inner.child[chosen];
        }
        (node, pos)
    }
}

/// Where a user's name lives and their current key parts.
#[derive(Debug, Clone, Copy)]
struct UserSlot {
    /// Byte offset into the name arena; `NIL` marks a free slot.
    start: u32,
    len: u32,
    skey: u64,
    reached: u64,
}

/// Interned user ids plus an open-addressing (linear probing, backward-shift delete) id → slot table.
#[derive(Debug, Clone)]
struct Users {
    slots: Vec<UserSlot>,
    names: String,
    free: Vec<u32>,
    /// Slot numbers; `NIL` = empty. Power-of-two length, load ≤ 1/2.
    table: Vec<u32>,
    live: usize,
    /// Bytes of `names` owned by removed users; compacted away when it dominates.
    garbage: usize,
    hasher: RandomState,
}

impl Users {
    fn new() -> Self {
        Users {
            slots: Vec::new(),
            names: String::new(),
            free: Vec::new(),
            table: Vec::new(),
            live: 0,
            garbage: 0,
            hasher: RandomState::new(),
        }
    }

    fn name(&self, uid: u32) -> &str {
        let s = &self.slots[uid as usize];
        &self.names[s.start as usize..s.start as usize + s.len as usize]
    }

    /// Final tie-break: user id ascending (byte order).
    fn cmp_uids(&self, a: u32, b: u32) -> Ordering {
        if a == b {
            Ordering::Equal
        } else {
            self.name(a).cmp(self.name(b))
        }
    }

    fn bucket(&self, name: &str) -> usize {
        // Truncation is intended: only the low bits pick the bucket.
        (self.hasher.hash_one(name) as usize) & (self.table.len() - 1)
    }

    fn find(&self, name: &str) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut i = self.bucket(name);
        loop {
            let e = self.table[i];
            if e == NIL {
                return None;
            }
            if self.name(e) == name {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
    }

    fn place(&mut self, uid: u32) {
        let mask = self.table.len() - 1;
        let mut i = self.bucket(self.name(uid));
        while self.table[i] != NIL {
            i = (i + 1) & mask;
        }
        self.table[i] = uid;
    }

    fn insert(&mut self, name: &str, skey: u64, reached: u64) -> u32 {
        if (self.live + 1) * 2 > self.table.len() {
            let size = (self.table.len() * 2).max(16);
            self.table = vec![NIL; size];
            for uid in 0..self.slots.len() {
                if self.slots[uid].start != NIL {
                    self.place(to_u32(uid));
                }
            }
        }
        if self.names.len() + name.len() >= NIL as usize {
            self.compact();
        }
        assert!(
            self.names.len() + name.len() < NIL as usize,
            "rank index user-id arena exceeds 4 GiB"
        );
        let start = to_u32(self.names.len());
        self.names.push_str(name);
        let slot = UserSlot {
            start,
            len: to_u32(name.len()),
            skey,
            reached,
        };
        let uid = match self.free.pop() {
            Some(uid) => {
                self.slots[uid as usize] = slot;
                uid
            }
            None => {
                self.slots.push(slot);
                to_u32(self.slots.len() - 1)
            }
        };
        assert_ne!(uid, NIL, "rank index exceeds u32 users");
        self.place(uid);
        self.live += 1;
        uid
    }

    fn remove(&mut self, uid: u32) {
        let mask = self.table.len() - 1;
        let mut hole = self.bucket(self.name(uid));
        while self.table[hole] != uid {
            hole = (hole + 1) & mask;
        }
        let mut j = (hole + 1) & mask;
        loop {
            let e = self.table[j];
            if e == NIL {
                break;
            }
            let ideal = self.bucket(self.name(e));
            if (j.wrapping_sub(ideal) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.table[hole] = e;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.table[hole] = NIL;
        let slot = &mut self.slots[uid as usize];
        self.garbage += slot.len as usize;
        slot.start = NIL;
        slot.len = 0;
        self.free.push(uid);
        self.live -= 1;
        if self.garbage > 4096 && self.garbage * 2 > self.names.len() {
            self.compact();
        }
    }

    /// Rewrites the name arena without removed users' bytes.
    fn compact(&mut self) {
        let mut names = String::with_capacity(self.names.len() - self.garbage);
        for slot in self.slots.iter_mut().filter(|s| s.start != NIL) {
            let start = to_u32(names.len());
            names.push_str(&self.names[slot.start as usize..(slot.start + slot.len) as usize]);
            slot.start = start;
        }
        self.names = names;
        self.garbage = 0;
    }
}

/// Ranked standings of one leaderboard window. See the module docs for the order and layout.
#[derive(Clone)]
pub struct RankIndex {
    order: SortOrder,
    ties: Ties,
    tree: Tree,
    users: Users,
}

impl fmt::Debug for RankIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RankIndex")
            .field("order", &self.order)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl RankIndex {
    /// An empty index ranking in `order`.
    pub fn new(order: SortOrder) -> Self {
        Self::with_caps(order, LEAF_CAP, INNER_CAP)
    }

    /// Small fan-outs make tests exercise splits and merges with few users.
    fn with_caps(order: SortOrder, leaf_cap: usize, inner_cap: usize) -> Self {
        RankIndex {
            order,
            ties: Ties::FirstToReach,
            tree: Tree::new(leaf_cap, inner_cap),
            users: Users::new(),
        }
    }

    /// An empty index ranking in `order` with `ties`.
    pub fn with_ties(order: SortOrder, ties: Ties) -> Self {
        RankIndex {
            ties,
            ..Self::new(order)
        }
    }

    pub fn sort_order(&self) -> SortOrder {
        self.order
    }

    pub fn ties(&self) -> Ties {
        self.ties
    }

    /// Number of users whose score ranks strictly better than `score` (O(log n)).
    pub fn count_better(&self, score: f64) -> usize {
        let score = if score == 0.0 { 0.0 } else { score };
        self.tree.count_below(score_key(score, self.order))
    }

    /// The displayed rank of the entry at 1-based `position` with score key `skey`.
    fn rank_at(&self, position: usize, skey: u64) -> usize {
        match self.ties {
            Ties::FirstToReach => position,
            Ties::Shared => self.tree.count_below(skey) + 1,
        }
    }

    /// Number of ranked users.
    pub fn len(&self) -> usize {
        self.tree.len
    }

    pub fn is_empty(&self) -> bool {
        self.tree.len == 0
    }

    fn key_of(&self, uid: u32) -> Key {
        let s = &self.users.slots[uid as usize];
        Key {
            skey: s.skey,
            reached: s.reached,
            uid,
        }
    }

    /// Sets `user`'s score, reached at log position `reached_at`; returns the user's rank before
    /// the call (`None` for a new user). A `NaN` score changes nothing (the current rank is still
    /// returned); `-0.0` is stored as `0.0` so the two tie.
    pub fn upsert(&mut self, user: &str, score: f64, reached_at: u64) -> Option<usize> {
        if score.is_nan() {
            return self.rank_of(user);
        }
        let score = if score == 0.0 { 0.0 } else { score };
        let skey = score_key(score, self.order);
        match self.users.find(user) {
            Some(uid) => {
                let old = self.key_of(uid);
                if old.skey == skey && old.reached == reached_at {
                    return self.tree.position(&old, &self.users).map(|p| p + 1);
                }
                let prev = self.tree.remove(old, &self.users);
                debug_assert!(prev.is_some(), "user table and tree disagree");
                let slot = &mut self.users.slots[uid as usize];
                slot.skey = skey;
                slot.reached = reached_at;
                self.tree.insert(self.key_of(uid), &self.users);
                prev.map(|p| p + 1)
            }
            None => {
                let uid = self.users.insert(user, skey, reached_at);
                self.tree.insert(self.key_of(uid), &self.users);
                None
            }
        }
    }

    /// Removes `user`; returns the rank they had.
    pub fn remove(&mut self, user: &str) -> Option<usize> {
        let uid = self.users.find(user)?;
        let pos = self.tree.remove(self.key_of(uid), &self.users);
        debug_assert!(pos.is_some(), "user table and tree disagree");
        self.users.remove(uid);
        pos.map(|p| p + 1)
    }

    /// `(rank, score, reached_at)` of `user`; the rank follows the index's [`Ties`].
    pub fn get(&self, user: &str) -> Option<(usize, f64, u64)> {
        let uid = self.users.find(user)?;
        let key = self.key_of(uid);
        let pos = self.tree.position(&key, &self.users)?;
        Some((
            self.rank_at(pos + 1, key.skey),
            key_score(key.skey, self.order),
            key.reached,
        ))
    }

    /// 1-based rank of `user` (following the index's [`Ties`]).
    pub fn rank_of(&self, user: &str) -> Option<usize> {
        self.get(user).map(|(rank, _, _)| rank)
    }

    /// 1-based position of `user` in rank order (distinct even inside a shared tie).
    pub fn position_of(&self, user: &str) -> Option<usize> {
        let uid = self.users.find(user)?;
        self.tree
            .position(&self.key_of(uid), &self.users)
            .map(|p| p + 1)
    }

    /// Up to `limit` entries starting at 0-based `offset` (rank `offset + 1`).
    pub fn range(&self, offset: usize, limit: usize) -> Vec<Entry> {
        let n = limit.min(self.len().saturating_sub(offset));
        self.iter_from(offset)
            .take(n)
            .map(|e| e.to_entry())
            .collect()
    }

    /// `user`'s entry with up to `radius` entries above and below it.
    pub fn around(&self, user: &str, radius: usize) -> Option<Vec<Entry>> {
        let position = self.position_of(user)?;
        let start = (position - 1).saturating_sub(radius);
        let end = position.saturating_add(radius).min(self.len());
        Some(self.range(start, end - start))
    }

    /// All entries in rank order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Entries in rank order starting at 0-based `offset`.
    pub fn iter_from(&self, offset: usize) -> Iter<'_> {
        let offset = offset.min(self.len());
        let (leaf, pos) = self.tree.select(offset);
        Iter {
            index: self,
            leaf,
            pos,
            rank: offset,
            shared: None,
        }
    }

    /// Approximate heap bytes owned by the index (arenas at capacity, boxes, names, table).
    pub fn approx_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let t = &self.tree;
        let u = &self.users;
        t.leaves.capacity() * size_of::<Box<Leaf>>()
            + t.leaves.len() * size_of::<Leaf>()
            + t.inners.capacity() * size_of::<Box<Inner>>()
            + t.inners.len() * size_of::<Inner>()
            + (t.free_leaves.capacity() + t.free_inners.capacity()) * size_of::<u32>()
            + u.slots.capacity() * size_of::<UserSlot>()
            + u.names.capacity()
            + (u.free.capacity() + u.table.capacity()) * size_of::<u32>()
    }
}

/// Rank-order cursor over a [`RankIndex`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    index: &'a RankIndex,
    leaf: u32,
    pos: usize,
    /// Position of the last yielded entry (0 before the first).
    rank: usize,
    /// Under shared ties: the score key and displayed rank of the last yielded entry.
    shared: Option<(u64, usize)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        let index = self.index;
        while self.leaf != NIL {
            let leaf = &index.tree.leaves[self.leaf as usize];
            if self.pos < leaf.len {
                let k = leaf.key(self.pos);
                self.pos += 1;
                self.rank += 1;
                let rank = match (index.ties, self.shared) {
                    (Ties::FirstToReach, _) => self.rank,
                    (Ties::Shared, Some((skey, rank))) if skey == k.skey => rank,
                    // A new score starts its rank at its first position; the first entry of a
                    // page may sit inside a tie that began on an earlier page.
                    (Ties::Shared, Some(_)) => self.rank,
                    (Ties::Shared, None) => index.rank_at(self.rank, k.skey),
                };
                self.shared = Some((k.skey, rank));
                return Some(EntryRef {
                    rank,
                    position: self.rank,
                    user_id: index.users.name(k.uid),
                    score: key_score(k.skey, index.order),
                    reached_at: k.reached,
                });
            }
            self.leaf = leaf.next;
            self.pos = 0;
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.index.len() - self.rank;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmp_keys(u: &Users, a: &Key, b: &Key) -> Ordering {
        a.skey
            .cmp(&b.skey)
            .then(a.reached.cmp(&b.reached))
            .then_with(|| u.cmp_uids(a.uid, b.uid))
    }

    impl RankIndex {
        /// Checks every structural invariant; panics with a description on the first violation.
        fn check(&self) {
            let t = &self.tree;
            let u = &self.users;
            let mut keys = Vec::new();
            let n = self.check_node(t.root, t.height, None, None, true, &mut keys);
            assert_eq!(n, t.len, "root count");
            for w in keys.windows(2) {
                assert_eq!(cmp_keys(u, &w[0], &w[1]), Ordering::Less, "tree order");
            }
            // Leaf chain visits the same keys in order.
            let mut node = t.root;
            for _ in 0..t.height {
                node = t.inners[node as usize].child[0];
            }
            let mut chained = Vec::new();
            while node != NIL {
                let leaf = &t.leaves[node as usize];
                chained.extend((0..leaf.len).map(|i| leaf.key(i)));
                node = t.leaves[node as usize].next;
            }
            assert_eq!(chained, keys, "leaf chain");
            // User table agrees with the tree.
            assert_eq!(u.live, t.len, "live users");
            for k in &keys {
                let name = u.name(k.uid);
                assert_eq!(u.find(name), Some(k.uid), "find {name}");
                assert_eq!(self.key_of(k.uid), *k, "slot key {name}");
            }
            let live = u.slots.iter().filter(|s| s.start != NIL).count();
            assert_eq!(live, t.len, "live slots");
            assert_eq!(self.iter().count(), t.len);
        }

        fn check_node(
            &self,
            node: u32,
            height: usize,
            lo: Option<Key>,
            hi: Option<Key>,
            is_root: bool,
            out: &mut Vec<Key>,
        ) -> usize {
            let t = &self.tree;
            let u = &self.users;
            let in_bounds = |k: &Key| {
                lo.is_none_or(|lo| cmp_keys(u, &lo, k) != Ordering::Greater)
                    && hi.is_none_or(|hi| cmp_keys(u, k, &hi) == Ordering::Less)
            };
            if height == 0 {
                let leaf = &t.leaves[node as usize];
                assert!(leaf.len <= t.leaf_cap, "leaf overflow");
                assert!(is_root || leaf.len >= t.leaf_min, "leaf underflow");
                for k in (0..leaf.len).map(|i| leaf.key(i)) {
                    assert!(in_bounds(&k), "leaf key out of separator bounds");
                    out.push(k);
                }
                return leaf.len;
            }
            let inner = &t.inners[node as usize];
            assert!(inner.len <= t.inner_cap, "inner overflow");
            assert!(
                inner.len >= if is_root { 2 } else { t.inner_min },
                "inner underflow"
            );
            let mut total = 0;
            for i in 0..inner.len {
                let clo = if i == 0 { lo } else { Some(inner.key(i)) };
                let chi = (i + 1 < inner.len).then(|| inner.key(i + 1)).or(hi);
                if i > 0 {
                    assert!(in_bounds(&inner.key(i)), "separator out of bounds");
                }
                let first = out.len();
                let c = self.check_node(inner.child[i], height - 1, clo, chi, false, out);
                if i > 0 {
                    assert_eq!(
                        out.get(first),
                        Some(&inner.key(i)),
                        "separator is not the exact subtree min"
                    );
                }
                assert_eq!(c, inner.count[i] as usize, "subtree count");
                total += c;
            }
            total
        }
    }

    /// Naive reference: unsorted rows, sorted on every query.
    #[derive(Default)]
    struct Model {
        rows: Vec<(String, f64, u64)>,
    }

    impl Model {
        fn sorted(&self, order: SortOrder) -> Vec<(String, f64, u64)> {
            let mut v = self.rows.clone();
            v.sort_by(|a, b| {
                let s = match order {
                    SortOrder::Asc => a.1.total_cmp(&b.1),
                    SortOrder::Desc => b.1.total_cmp(&a.1),
                };
                s.then(a.2.cmp(&b.2)).then_with(|| a.0.cmp(&b.0))
            });
            v
        }

        fn rank(&self, order: SortOrder, user: &str) -> Option<usize> {
            self.sorted(order)
                .iter()
                .position(|r| r.0 == user)
                .map(|p| p + 1)
        }

        fn range(&self, order: SortOrder, offset: usize, limit: usize) -> Vec<Entry> {
            self.sorted(order)
                .into_iter()
                .enumerate()
                .skip(offset)
                .take(limit)
                .map(|(i, (user_id, score, _))| Entry {
                    rank: i + 1,
                    user_id,
                    score,
                })
                .collect()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(usize, f64, u64),
        Remove(usize),
        Get(usize),
        Range(usize, usize),
        Around(usize, usize),
    }

    fn score() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => (-3i32..4).prop_map(f64::from),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(-0.0),
            1 => Just(f64::NAN),
            2 => any::<f64>(),
        ]
    }

    fn ops(users: usize) -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            10 => (0..users, score(), 0u64..4).prop_map(|(u, s, r)| Op::Upsert(u, s, r)),
            3 => (0..users).prop_map(Op::Remove),
            2 => (0..users).prop_map(Op::Get),
            2 => (0..users + 5, 0usize..20).prop_map(|(o, l)| Op::Range(o, l)),
            2 => (0..users, 0usize..6).prop_map(|(u, r)| Op::Around(u, r)),
        ];
        proptest::collection::vec(op, 1..300)
    }

    fn run_model(order: SortOrder, caps: (usize, usize), ops: &[Op], check_every_op: bool) {
        let mut idx = RankIndex::with_caps(order, caps.0, caps.1);
        let mut model = Model::default();
        let name = |u: usize| format!("u{u}");
        for op in ops {
            match *op {
                Op::Upsert(u, s, r) => {
                    let user = name(u);
                    let expect = model.rank(order, &user);
                    if !s.is_nan() {
                        let s = if s == 0.0 { 0.0 } else { s };
                        model.rows.retain(|row| row.0 != user);
                        model.rows.push((user.clone(), s, r));
                    }
                    assert_eq!(idx.upsert(&user, s, r), expect, "{op:?}");
                }
                Op::Remove(u) => {
                    let user = name(u);
                    let expect = model.rank(order, &user);
                    model.rows.retain(|row| row.0 != user);
                    assert_eq!(idx.remove(&user), expect, "{op:?}");
                }
                Op::Get(u) => {
                    let user = name(u);
                    let expect = model.rank(order, &user).map(|rank| {
                        let row = model.rows.iter().find(|row| row.0 == user).expect("row");
                        (rank, row.1, row.2)
                    });
                    assert_eq!(idx.get(&user), expect, "{op:?}");
                }
                Op::Range(o, l) => assert_eq!(idx.range(o, l), model.range(order, o, l), "{op:?}"),
                Op::Around(u, r) => {
                    let user = name(u);
                    let expect = model.rank(order, &user).map(|rank| {
                        let start = (rank - 1).saturating_sub(r);
                        model.range(order, start, rank + r - start)
                    });
                    assert_eq!(idx.around(&user, r), expect, "{op:?}");
                }
            }
            assert_eq!(idx.len(), model.rows.len());
            if check_every_op {
                idx.check();
            }
        }
        idx.check();
        let all: Vec<Entry> = idx.iter().map(|e| e.to_entry()).collect();
        assert_eq!(all, model.range(order, 0, usize::MAX));
    }

    fn order() -> impl Strategy<Value = SortOrder> {
        prop_oneof![Just(SortOrder::Desc), Just(SortOrder::Asc)]
    }

    /// Shared ties against the naive definition: rank = 1 + users with a strictly better score;
    /// pages (which may start inside a tie) and `around` agree with it; order stays first-to-reach.
    fn check_shared(order: SortOrder, caps: (usize, usize), rows: &[(usize, i32, u64)]) {
        let mut idx = RankIndex::with_caps(order, caps.0, caps.1);
        idx.ties = Ties::Shared;
        let mut model = Model::default();
        for &(u, s, r) in rows {
            let user = format!("u{u}");
            let s = f64::from(s);
            model.rows.retain(|row| row.0 != user);
            model.rows.push((user.clone(), s, r));
            idx.upsert(&user, s, r);
        }
        let better = |s: f64| {
            model
                .rows
                .iter()
                .filter(|row| match order {
                    SortOrder::Desc => row.1 > s,
                    SortOrder::Asc => row.1 < s,
                })
                .count()
        };
        let sorted = model.sorted(order);
        let want: Vec<Entry> = sorted
            .iter()
            .map(|(u, s, _)| Entry {
                rank: better(*s) + 1,
                user_id: u.clone(),
                score: *s,
            })
            .collect();
        for offset in 0..=want.len() {
            for limit in [1, 2, 5] {
                let end = (offset + limit).min(want.len());
                assert_eq!(
                    idx.range(offset, limit),
                    want[offset..end].to_vec(),
                    "page {offset}+{limit}"
                );
            }
        }
        for (i, (u, s, r)) in sorted.iter().enumerate() {
            assert_eq!(idx.get(u), Some((better(*s) + 1, *s, *r)), "{u}");
            assert_eq!(idx.position_of(u), Some(i + 1));
            assert_eq!(idx.count_better(*s), better(*s));
            let start = i.saturating_sub(1);
            let end = (i + 2).min(want.len());
            assert_eq!(idx.around(u, 1), Some(want[start..end].to_vec()));
        }
        for probe in -4..5 {
            assert_eq!(
                idx.count_better(f64::from(probe)),
                better(f64::from(probe)),
                "{probe}"
            );
        }
        let positions: Vec<usize> = idx.iter().map(|e| e.position).collect();
        assert_eq!(positions, (1..=want.len()).collect::<Vec<_>>());
    }

    #[test]
    fn shared_ties_skip_ranks() {
        let mut idx = RankIndex::with_ties(SortOrder::Desc, Ties::Shared);
        for (u, s, r) in [("a", 10.0, 1), ("b", 8.0, 2), ("c", 8.0, 3), ("d", 5.0, 4)] {
            idx.upsert(u, s, r);
        }
        let ranks: Vec<(usize, String)> = idx
            .range(0, 10)
            .into_iter()
            .map(|e| (e.rank, e.user_id))
            .collect();
        assert_eq!(
            ranks,
            [
                (1, "a".into()),
                (2, "b".into()),
                (2, "c".into()),
                (4, "d".into())
            ]
        );
        assert_eq!(idx.range(2, 1)[0].rank, 2, "a page starting inside the tie");
        assert_eq!(idx.rank_of("c"), Some(2));
        assert_eq!(idx.position_of("c"), Some(3));
        assert_eq!(idx.count_better(8.0), 1);
        assert_eq!(idx.count_better(9.0), 1);
        assert_eq!(idx.count_better(-1.0), 4);
        assert_eq!("shared".parse::<Ties>(), Ok(Ties::Shared));
        assert!("tied".parse::<Ties>().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn shared_ties_match_the_model(
            order in order(),
            rows in proptest::collection::vec((0usize..60, -3i32..4, 0u64..1000), 1..150),
        ) {
            check_shared(order, (3, 4), &rows);
            check_shared(order, (LEAF_CAP, INNER_CAP), &rows);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Tiny fan-out: a few dozen users already split and merge nodes on several levels.
        #[test]
        fn model_small_fanout(order in order(), ops in ops(40)) {
            run_model(order, (3, 4), &ops, true);
        }

        #[test]
        fn model_mid_fanout(order in order(), ops in ops(60)) {
            run_model(order, (5, 5), &ops, true);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Production fan-out with more users than one leaf holds.
        #[test]
        fn model_production_fanout(order in order(), ops in ops(200)) {
            run_model(order, (LEAF_CAP, INNER_CAP), &ops, false);
        }
    }

    #[test]
    fn score_keys_follow_total_order() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            1e-300,
            1.0,
            2.5,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(score_key(w[0], SortOrder::Asc) < score_key(w[1], SortOrder::Asc));
            assert!(score_key(w[0], SortOrder::Desc) > score_key(w[1], SortOrder::Desc));
        }
        for x in xs {
            for o in [SortOrder::Asc, SortOrder::Desc] {
                assert_eq!(key_score(score_key(x, o), o).to_bits(), x.to_bits());
            }
        }
    }

    #[test]
    fn ties_break_on_reached_at_then_user_id() {
        let mut idx = RankIndex::new(SortOrder::Desc);
        assert_eq!(idx.upsert("carol", 10.0, 5), None);
        assert_eq!(idx.upsert("bob", 10.0, 5), None);
        assert_eq!(idx.upsert("alice", 10.0, 7), None);
        assert_eq!(idx.upsert("dave", 11.0, 9), None);
        let order: Vec<String> = idx.iter().map(|e| e.user_id.to_owned()).collect();
        assert_eq!(order, ["dave", "bob", "carol", "alice"]);
        // alice moves up: previous rank returned, new rank visible.
        assert_eq!(idx.upsert("alice", 12.0, 8), Some(4));
        assert_eq!(idx.get("alice"), Some((1, 12.0, 8)));
        assert_eq!(idx.rank_of("bob"), Some(3));
    }

    #[test]
    fn asc_order_ranks_lowest_first() {
        let mut idx = RankIndex::new(SortOrder::Asc);
        idx.upsert("slow", 93.5, 1);
        idx.upsert("fast", 61.2, 2);
        assert_eq!(idx.range(0, 10)[0].user_id, "fast");
        assert_eq!(idx.rank_of("slow"), Some(2));
    }

    #[test]
    fn nan_is_ignored_and_negative_zero_ties_zero() {
        let mut idx = RankIndex::new(SortOrder::Desc);
        assert_eq!(idx.upsert("a", f64::NAN, 1), None);
        assert!(idx.is_empty());
        idx.upsert("a", 1.0, 1);
        assert_eq!(idx.upsert("a", f64::NAN, 2), Some(1));
        assert_eq!(idx.get("a"), Some((1, 1.0, 1)));
        idx.upsert("b", -0.0, 3);
        idx.upsert("c", 0.0, 3);
        assert_eq!(idx.get("b"), Some((2, 0.0, 3)));
        assert_eq!(idx.get("b").map(|g| g.1.is_sign_positive()), Some(true));
        assert_eq!(idx.rank_of("c"), Some(3));
    }

    #[test]
    fn empty_and_edges() {
        let mut idx = RankIndex::new(SortOrder::Desc);
        assert_eq!(idx.range(0, 10), vec![]);
        assert_eq!(idx.around("x", 3), None);
        assert_eq!(idx.remove("x"), None);
        assert_eq!(idx.iter().next(), None);
        for i in 0..10 {
            idx.upsert(&format!("u{i}"), f64::from(i), 0);
        }
        assert_eq!(idx.range(10, 5), vec![]);
        assert_eq!(idx.range(8, usize::MAX).len(), 2);
        let top = idx.around("u9", 2).expect("present");
        assert_eq!(top.iter().map(|e| e.rank).collect::<Vec<_>>(), [1, 2, 3]);
        let bottom = idx.around("u0", usize::MAX).expect("present");
        assert_eq!(bottom.len(), 10);
        let mid = idx.around("u5", 1).expect("present");
        assert_eq!(
            mid.iter().map(|e| e.user_id.as_str()).collect::<Vec<_>>(),
            ["u6", "u5", "u4"]
        );
        assert_eq!(
            idx.iter_from(7).map(|e| e.rank).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        assert_eq!(idx.iter_from(3).len(), 7);
    }

    /// Grows to several levels at production fan-out, then drains (every merge path), and
    /// exercises name-arena compaction and slot reuse.
    #[test]
    fn bulk_grow_and_drain() {
        let mut idx = RankIndex::new(SortOrder::Desc);
        let n = 20_000u32;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            idx.upsert(
                &format!("player-{i:06}"),
                f64::from((x % 5000) as u32),
                u64::from(i),
            );
        }
        assert!(idx.tree.height >= 2);
        idx.check();
        for i in (0..n).step_by(2) {
            assert!(idx.remove(&format!("player-{i:06}")).is_some());
        }
        idx.check();
        for i in 0..n / 2 {
            idx.upsert(&format!("again-{i}"), f64::from(i), 1);
        }
        idx.check();
        for e in idx.iter().map(|e| e.user_id.to_owned()).collect::<Vec<_>>() {
            idx.remove(&e);
        }
        assert!(idx.is_empty());
        assert_eq!(idx.tree.height, 0);
        idx.check();
    }

    #[test]
    fn sort_order_serde() {
        assert_eq!(
            serde_json::to_string(&SortOrder::Desc).ok().as_deref(),
            Some("\"desc\"")
        );
        assert_eq!(
            serde_json::from_str::<SortOrder>("\"asc\"").ok(),
            Some(SortOrder::Asc)
        );
        assert_eq!("asc".parse::<SortOrder>(), Ok(SortOrder::Asc));
        assert!("up".parse::<SortOrder>().is_err());
    }

    /// Timing and memory at 1,000,000 users. Run in release:
    /// `cargo test --release -- --ignored --nocapture bench_one_million`
    #[test]
    #[ignore]
    fn bench_one_million() {
        use std::time::Instant;
        const N: u64 = 1_000_000;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let name = |i: u64| format!("user-{i:07}");
        let mut idx = RankIndex::new(SortOrder::Desc);
        let t0 = Instant::now();
        for i in 0..N {
            let s = (rnd() % 1_000_000) as f64;
            idx.upsert(&name(i), s, i);
        }
        let build = t0.elapsed();
        let median = |mut v: Vec<u128>| {
            v.sort_unstable();
            (v[v.len() / 2], v[v.len() * 99 / 100])
        };
        let samples = 200_000;
        let names: Vec<String> = (0..samples).map(|_| name(rnd() % N)).collect();
        let mut up = Vec::with_capacity(samples);
        for (j, user) in names.iter().enumerate() {
            let s = (rnd() % 1_000_000) as f64;
            let t = Instant::now();
            std::hint::black_box(idx.upsert(user, s, N + j as u64));
            up.push(t.elapsed().as_nanos());
        }
        let mut rq = Vec::with_capacity(samples);
        for user in &names {
            let t = Instant::now();
            std::hint::black_box(idx.rank_of(user));
            rq.push(t.elapsed().as_nanos());
        }
        let mut find = Vec::with_capacity(samples);
        for user in &names {
            let t = Instant::now();
            std::hint::black_box(idx.users.find(user));
            find.push(t.elapsed().as_nanos());
        }
        let mut top = Vec::new();
        let mut near = Vec::new();
        for user in names.iter().take(20_000) {
            let t = Instant::now();
            std::hint::black_box(idx.range(0, 100));
            top.push(t.elapsed().as_nanos());
            let t = Instant::now();
            std::hint::black_box(idx.around(user, 5));
            near.push(t.elapsed().as_nanos());
        }
        let bytes = idx.approx_heap_bytes();
        println!(
            "users: {}  height: {}  build: {:?}",
            idx.len(),
            idx.tree.height,
            build
        );
        println!("upsert   median/p99 ns: {:?}", median(up));
        println!("rank_of  median/p99 ns: {:?}", median(rq));
        println!("  of which id lookup median/p99 ns: {:?}", median(find));
        println!("top-100  median/p99 ns: {:?}", median(top));
        println!("around-5 median/p99 ns: {:?}", median(near));
        println!(
            "heap: {bytes} bytes = {:.1} bytes/entry",
            bytes as f64 / idx.len() as f64
        );
    }
}
