//! The rank index's API: [`RankIndex`], its rows and its rank-order cursor.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::key::{key_score, score_key, Key};
use super::node::{Inner, Leaf};
use super::tree::Tree;
use super::users::{UserSlot, Users};
use super::{SortOrder, Ties, INNER_CAP, LEAF_CAP, NIL};

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

/// A ranked user's handle in one [`RankIndex`]: stable while the user stays in it (ids of
/// removed users are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankId(std::num::NonZeroU32);

impl RankId {
    fn new(uid: u32) -> RankId {
        RankId(std::num::NonZeroU32::new(uid.wrapping_add(1)).expect("a user slot is below NIL"))
    }

    fn uid(self) -> u32 {
        self.0.get() - 1
    }
}

/// Ranked standings of one leaderboard window. See the module docs for the order and layout.
#[derive(Clone)]
pub struct RankIndex {
    pub(super) order: SortOrder,
    pub(super) ties: Ties,
    pub(super) tree: Tree,
    pub(super) users: Users,
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
    pub(super) fn with_caps(order: SortOrder, leaf_cap: usize, inner_cap: usize) -> Self {
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
        self.tree.count_below(self.skey(score))
    }

    /// The key of `score` in this index's order; `-0.0` keys as `0.0`, so the two tie.
    fn skey(&self, score: f64) -> u64 {
        score_key(if score == 0.0 { 0.0 } else { score }, self.order)
    }

    /// The displayed rank of the entry at 1-based `position` with score key `skey`.
    pub(super) fn rank_at(&self, position: usize, skey: u64) -> usize {
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

    pub(super) fn key_of(&self, uid: u32) -> Key {
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
        match self.users.find(user) {
            Some(uid) => self.move_to(uid, score, reached_at),
            None => {
                self.insert_new(user, score, reached_at);
                None
            }
        }
    }

    /// [`RankIndex::upsert`] that also returns the user's [`RankId`] (`None` only for a new
    /// user given a `NaN` score, who stays unranked). A caller that keeps the id moves the user
    /// later with [`RankIndex::upsert_id`], without looking the id up again.
    pub fn upsert_keeping_id(&mut self, user: &str, score: f64, reached_at: u64) -> Option<RankId> {
        match self.users.find(user) {
            Some(uid) => {
                if !score.is_nan() {
                    self.move_to(uid, score, reached_at);
                }
                Some(RankId::new(uid))
            }
            None if score.is_nan() => None,
            None => Some(self.insert_new(user, score, reached_at)),
        }
    }

    /// [`RankIndex::upsert`] of the user `id` names (from [`RankIndex::upsert_keeping_id`] on
    /// this index; valid until that user is [`RankIndex::remove`]d).
    pub fn upsert_id(&mut self, id: RankId, score: f64, reached_at: u64) -> Option<usize> {
        let uid = id.uid();
        debug_assert!(
            self.users
                .slots
                .get(uid as usize)
                .is_some_and(|s| s.start != NIL),
            "stale rank id"
        );
        if score.is_nan() {
            return self.get_uid(uid).map(|(rank, _, _)| rank);
        }
        self.move_to(uid, score, reached_at)
    }

    /// Move the ranked user `uid` to `score` (not `NaN`) reached at `reached_at`; their rank
    /// before.
    fn move_to(&mut self, uid: u32, score: f64, reached_at: u64) -> Option<usize> {
        let skey = self.skey(score);
        let old = self.key_of(uid);
        if old.skey == skey && old.reached == reached_at {
            return self.tree.position(&old, &self.users).map(|p| p + 1);
        }
        let new = Key {
            skey,
            reached: reached_at,
            uid,
        };
        let prev = match self.tree.move_entry(&old, &new, &self.users) {
            Some(pos) => Some(pos),
            None => {
                let prev = self.tree.remove(old, &self.users);
                self.tree.insert(new, &self.users);
                prev
            }
        };
        debug_assert!(prev.is_some(), "user table and tree disagree");
        let slot = &mut self.users.slots[uid as usize];
        slot.skey = skey;
        slot.reached = reached_at;
        prev.map(|p| p + 1)
    }

    /// Rank a user not in the index yet at `score` (not `NaN`).
    fn insert_new(&mut self, user: &str, score: f64, reached_at: u64) -> RankId {
        let skey = self.skey(score);
        let uid = self.users.insert(user, skey, reached_at);
        self.tree.insert(self.key_of(uid), &self.users);
        RankId::new(uid)
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
        self.get_uid(self.users.find(user)?)
    }

    /// The log position at which the user `id` names (see [`RankIndex::upsert_id`]) reached
    /// their score: [`RankIndex::get`]'s third part, without a lookup or a descent.
    pub fn reached_id(&self, id: RankId) -> u64 {
        self.key_of(id.uid()).reached
    }

    fn get_uid(&self, uid: u32) -> Option<(usize, f64, u64)> {
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
