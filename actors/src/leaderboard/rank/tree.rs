//! The counted B+tree: insert, remove, rank and select, each one descent.

use super::key::Key;
use super::node::{count_less, Inner, Leaf};
use super::users::Users;
use super::{to_u32, INNER_CAP, LEAF_CAP};

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

/// Stores `node` in a freed slot of `arena` if there is one (its box is reused), else at the end.
#[allow(clippy::vec_box, reason = "the arenas box their nodes, see `Tree`")]
fn alloc<T>(arena: &mut Vec<Box<T>>, free: &mut Vec<u32>, node: T) -> u32 {
    match free.pop() {
        Some(id) => {
            *arena[id as usize] = node;
            id
        }
        None => {
            arena.push(Box::new(node));
            to_u32(arena.len() - 1)
        }
    }
}

/// The counted B+tree. Key comparison needs user names, so every operation borrows [`Users`].
#[derive(Debug, Clone)]
#[allow(
    clippy::vec_box,
    reason = "nodes are ~1.5 KiB: boxing keeps the arenas' spare capacity at 8 bytes a slot and \
              makes growth copy pointers, not nodes"
)]
pub(super) struct Tree {
    pub(super) leaves: Vec<Box<Leaf>>,
    pub(super) inners: Vec<Box<Inner>>,
    /// Freed node ids, reused before the arenas grow (their boxes stay allocated).
    pub(super) free_leaves: Vec<u32>,
    pub(super) free_inners: Vec<u32>,
    pub(super) root: u32,
    /// 0 when the root is a leaf.
    pub(super) height: usize,
    pub(super) len: usize,
    pub(super) leaf_cap: usize,
    pub(super) leaf_min: usize,
    pub(super) inner_cap: usize,
    pub(super) inner_min: usize,
    /// Upserts served by [`Tree::move_entry`] inside one leaf, and between two leaves (tests
    /// check the paths are taken).
    #[cfg(test)]
    pub(super) moves_in_place: usize,
    #[cfg(test)]
    pub(super) moves_between_leaves: usize,
}

/// Deepest tree [`Tree::move_entry`] handles (a production tree of `u32::MAX` entries, at the
/// minimum fan-out, is 8 levels high); deeper trees move by remove + insert.
const MAX_PATH: usize = 12;

/// The (inner node, child index) of each level on the paths to two keys' leaves.
struct Paths {
    a: [(u32, usize); MAX_PATH],
    b: [(u32, usize); MAX_PATH],
}

impl Tree {
    pub(super) fn new(leaf_cap: usize, inner_cap: usize) -> Self {
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
            #[cfg(test)]
            moves_in_place: 0,
            #[cfg(test)]
            moves_between_leaves: 0,
        }
    }

    pub(super) fn alloc_leaf(&mut self, leaf: Leaf) -> u32 {
        alloc(&mut self.leaves, &mut self.free_leaves, leaf)
    }

    pub(super) fn alloc_inner(&mut self, inner: Inner) -> u32 {
        alloc(&mut self.inners, &mut self.free_inners, inner)
    }

    /// Entries under `node` at `height`.
    pub(super) fn count_of(&self, node: u32, height: usize) -> u32 {
        to_u32(if height == 0 {
            self.leaves[node as usize].len
        } else {
            self.inners[node as usize].total()
        })
    }

    pub(super) fn insert(&mut self, key: Key, users: &Users) {
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
    pub(super) fn insert_rec(
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
    pub(super) fn remove(&mut self, key: Key, users: &Users) -> Option<usize> {
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

    pub(super) fn remove_rec(
        &mut self,
        node: u32,
        height: usize,
        key: Key,
        users: &Users,
    ) -> Option<usize> {
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
    pub(super) fn rebalance(&mut self, parent: u32, idx: usize, child_height: usize) {
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
    pub(super) fn min_key(&self, mut node: u32, height: usize) -> Option<Key> {
        for _ in 0..height {
            node = self.inners[node as usize].child[0];
        }
        let leaf = &self.leaves[node as usize];
        (leaf.len > 0).then(|| leaf.key(0))
    }

    /// 0-based position of an existing key.
    pub(super) fn position(&self, key: &Key, users: &Users) -> Option<usize> {
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

    /// Descends to the leaves of `a` and of `b` side by side, changing nothing, recording each
    /// path's (inner node, child index) per level, then reads every cache line of both leaves.
    /// The two chains of node reads are independent, so their cache misses overlap; the leaves
    /// are read with independent loads, so their misses overlap too (a cold leaf is 21 lines).
    /// Whatever follows on either path finds it in cache. Returns `a`'s leaf, the number of
    /// entries before that leaf, and `b`'s leaf. The tree is at most [`MAX_PATH`] high.
    fn locate_pair(&self, a: &Key, b: &Key, users: &Users, paths: &mut Paths) -> (u32, usize, u32) {
        let (mut na, mut nb, mut before) = (self.root, self.root, 0);
        for level in 0..self.height {
            let (ia, ib) = (&self.inners[na as usize], &self.inners[nb as usize]);
            let (ca, cb) = (ia.child_for(a, users), ib.child_for(b, users));
            before += ia.count_before(ca);
            paths.a[level] = (na, ca);
            paths.b[level] = (nb, cb);
            (na, nb) = (ia.child[ca], ib.child[cb]);
        }
        std::hint::black_box(self.leaves[na as usize].touch() ^ self.leaves[nb as usize].touch());
        (na, before, nb)
    }

    /// Moves the entry `old` to `new` (the same user's new key) without restructuring the tree,
    /// when that is possible: both keys in one leaf (the row moves inside it), or in two leaves
    /// where the old one stays at least minimally full and the new one has room. Neither key may
    /// be (or become) its leaf's first row, so no separator changes; only the counts along the
    /// two paths do. Returns `old`'s 0-based position, or `None` with nothing changed when the
    /// move needs [`Tree::remove`] + [`Tree::insert`] (which then find both paths in cache).
    pub(super) fn move_entry(&mut self, old: &Key, new: &Key, users: &Users) -> Option<usize> {
        if self.height > MAX_PATH {
            return None;
        }
        let mut paths = Paths {
            a: [(0, 0); MAX_PATH],
            b: [(0, 0); MAX_PATH],
        };
        let (la, before, lb) = self.locate_pair(old, new, users, &mut paths);
        let from = self.leaves[la as usize].find(old, users).ok()?;
        let to = self.leaves[lb as usize].find(new, users).err()?;
        if from == 0 || to == 0 {
            return None;
        }
        if la == lb {
            self.leaves[la as usize].move_row(from, to, *new);
            #[cfg(test)]
            {
                self.moves_in_place += 1;
            }
            return Some(before + from);
        }
        let (min, cap) = (self.leaf_min, self.leaf_cap);
        let (a, b) = two_mut(&mut self.leaves, la as usize, lb as usize);
        if a.len <= min || b.len >= cap {
            return None;
        }
        a.close_gap(from);
        b.insert(to, *new);
        for level in 0..self.height {
            let ((na, ca), (nb, cb)) = (paths.a[level], paths.b[level]);
            if (na, ca) != (nb, cb) {
                self.inners[na as usize].count[ca] -= 1;
                self.inners[nb as usize].count[cb] += 1;
            }
        }
        #[cfg(test)]
        {
            self.moves_between_leaves += 1;
        }
        Some(before + from)
    }

    /// Number of entries whose score key is strictly less than `skey` (ranked strictly better):
    /// one descent, reading only the score column.
    pub(super) fn count_below(&self, skey: u64) -> usize {
        let mut node = self.root;
        let mut acc = 0;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            // The last child whose minimum is below `skey` (children before it are wholly below,
            // children after it wholly at or above); child 0 when there is none.
            let idx = count_less(&inner.skey[1..inner.len], skey);
            acc += inner.count_before(idx);
            node = inner.child[idx];
        }
        let leaf = &self.leaves[node as usize];
        acc + count_less(&leaf.skey[..leaf.len], skey)
    }

    /// Leaf and in-leaf index of the entry at 0-based `pos` (`pos == len` gives an end cursor).
    pub(super) fn select(&self, mut pos: usize) -> (u32, usize) {
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
