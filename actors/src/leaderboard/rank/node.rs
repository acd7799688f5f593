//! The two node kinds of the counted B+tree, stored struct-of-arrays.

use std::cmp::Ordering;

use super::key::Key;
use super::users::Users;
use super::{INNER_CAP, LEAF_CAP, NIL};

/// Column-wise row moves for struct-of-arrays nodes: every listed column moves together, so a
/// binary search only touches the 8-byte `skey` column until it meets a tie.
macro_rules! soa_rows {
    ($ty:ident { $($col:ident),+ }) => {
        impl $ty {
            /// Shifts rows `[i..]` right by one; the caller fills row `i`.
            pub(super) fn open_gap(&mut self, i: usize) {
                debug_assert!(self.len < self.skey.len() && i <= self.len);
                $( self.$col.copy_within(i..self.len, i + 1); )+
                self.len += 1;
            }

            pub(super) fn close_gap(&mut self, i: usize) {
                $( self.$col.copy_within(i + 1..self.len, i); )+
                self.len -= 1;
            }

            /// Moves rows `[at..]` into the empty `right`.
            pub(super) fn split_into(&mut self, right: &mut Self, at: usize) {
                let n = self.len - at;
                $( right.$col[..n].copy_from_slice(&self.$col[at..self.len]); )+
                right.len = n;
                self.len = at;
            }

            /// Moves the first `n` rows of `right` to the back of `self`.
            pub(super) fn take_front(&mut self, right: &mut Self, n: usize) {
                let l = self.len;
                $(
                    self.$col[l..l + n].copy_from_slice(&right.$col[..n]);
                    right.$col.copy_within(n..right.len, 0);
                )+
                self.len += n;
                right.len -= n;
            }

            /// Moves the last `n` rows of `left` to the front of `self`.
            pub(super) fn take_back(&mut self, left: &mut Self, n: usize) {
                let (l, r) = (left.len, self.len);
                $(
                    self.$col.copy_within(0..r, n);
                    self.$col[..n].copy_from_slice(&left.$col[l - n..l]);
                )+
                self.len += n;
                left.len -= n;
            }

            /// Evens out two siblings (left gets the smaller half), or moves all rows left.
            pub(super) fn rebalance_pair(left: &mut Self, right: &mut Self, merge: bool) {
                let total = left.len + right.len;
                let target = if merge { total } else { total / 2 };
                if left.len < target {
                    left.take_front(right, target - left.len);
                } else if left.len > target {
                    right.take_back(left, left.len - target);
                }
            }

            pub(super) fn key(&self, i: usize) -> Key {
                Key {
                    skey: self.skey[i],
                    reached: self.reached[i],
                    uid: self.uid[i],
                }
            }

            pub(super) fn set_key(&mut self, i: usize, k: Key) {
                self.skey[i] = k.skey;
                self.reached[i] = k.reached;
                self.uid[i] = k.uid;
            }

            /// Order of row `i` relative to `t`.
            pub(super) fn cmp_row(&self, i: usize, t: &Key, users: &Users) -> Ordering {
                self.skey[i]
                    .cmp(&t.skey)
                    .then_with(|| self.reached[i].cmp(&t.reached))
                    .then_with(|| users.cmp_uids(self.uid[i], t.uid))
            }
        }
    };
}

/// Number of values in the ascending `col` that are below `x`. It probes the last value of each
/// 8-value block, then scans the one block that holds the boundary: all of the column's cache
/// lines are requested at once and nothing branches on the data, where a binary search waits for
/// one line per step (at 1 M users a leaf is rarely in cache).
pub(super) fn count_less(col: &[u64], x: u64) -> usize {
    let blocks: usize = col.chunks_exact(8).map(|b| usize::from(b[7] < x)).sum();
    let start = blocks * 8;
    let end = col.len().min(start + 8);
    start
        + col[start..end]
            .iter()
            .map(|&k| usize::from(k < x))
            .sum::<usize>()
}

/// First index in `lo..hi` where the monotone `pred` (true…true false…false) is false.
pub(super) fn partition(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
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

/// `repr(C)`: `len` and `next` sit in the same cache line as the first score keys.
#[derive(Debug, Clone)]
#[repr(C)]
pub(super) struct Leaf {
    pub(super) len: usize,
    /// Next leaf in key order (`NIL` for the last).
    pub(super) next: u32,
    pub(super) skey: [u64; LEAF_CAP],
    pub(super) reached: [u64; LEAF_CAP],
    pub(super) uid: [u32; LEAF_CAP],
}

soa_rows!(Leaf { skey, reached, uid });

impl Leaf {
    pub(super) fn empty() -> Self {
        Leaf {
            len: 0,
            next: NIL,
            skey: [0; LEAF_CAP],
            reached: [0; LEAF_CAP],
            uid: [0; LEAF_CAP],
        }
    }

    /// Reads one word of every cache line of the leaf; the loads are independent, so a cold
    /// leaf's misses overlap.
    pub(super) fn touch(&self) -> u64 {
        let mut x = self.len as u64;
        for j in (0..LEAF_CAP).step_by(8).chain([LEAF_CAP - 1]) {
            x ^= self.skey[j] ^ self.reached[j];
        }
        for j in (0..LEAF_CAP).step_by(16).chain([LEAF_CAP - 1]) {
            x ^= u64::from(self.uid[j]);
        }
        x
    }

    /// `Ok(row)` of `t`, or `Err(row)` where it would be inserted.
    pub(super) fn find(&self, t: &Key, users: &Users) -> Result<usize, usize> {
        let mut i = count_less(&self.skey[..self.len], t.skey);
        if i < self.len && self.skey[i] == t.skey {
            // Equal scores: order by the rest of the key.
            i = partition(i, self.len, |i| self.cmp_row(i, t, users) == Ordering::Less);
        }
        if i < self.len && self.key(i) == *t {
            Ok(i)
        } else {
            Err(i)
        }
    }

    pub(super) fn insert(&mut self, i: usize, k: Key) {
        self.open_gap(i);
        self.set_key(i, k);
    }

    /// Replaces row `from` by `k`, which sorts just before the row now at `to` (`to` counted
    /// with row `from` still present); the rows in between shift by one.
    pub(super) fn move_row(&mut self, from: usize, to: usize, k: Key) {
        let at = if to > from {
            self.skey.copy_within(from + 1..to, from);
            self.reached.copy_within(from + 1..to, from);
            self.uid.copy_within(from + 1..to, from);
            to - 1
        } else {
            self.skey.copy_within(to..from, to + 1);
            self.reached.copy_within(to..from, to + 1);
            self.uid.copy_within(to..from, to + 1);
            to
        };
        self.set_key(at, k);
    }
}

/// Row `i` describes child `i`: the exact minimum key of its subtree (`key(0)` is only meaningful
/// transiently, while rebalancing), its node id and its entry count.
#[derive(Debug, Clone)]
#[repr(C)]
pub(super) struct Inner {
    pub(super) len: usize,
    pub(super) skey: [u64; INNER_CAP],
    pub(super) reached: [u64; INNER_CAP],
    pub(super) uid: [u32; INNER_CAP],
    pub(super) child: [u32; INNER_CAP],
    pub(super) count: [u32; INNER_CAP],
}

soa_rows!(Inner {
    skey,
    reached,
    uid,
    child,
    count
});

impl Inner {
    pub(super) fn empty() -> Self {
        Inner {
            len: 0,
            skey: [0; INNER_CAP],
            reached: [0; INNER_CAP],
            uid: [0; INNER_CAP],
            child: [0; INNER_CAP],
            count: [0; INNER_CAP],
        }
    }

    pub(super) fn insert(&mut self, i: usize, k: Key, child: u32, count: u32) {
        self.open_gap(i);
        self.set_key(i, k);
        self.child[i] = child;
        self.count[i] = count;
    }

    pub(super) fn total(&self) -> usize {
        self.count_before(self.len)
    }

    /// Index of the child whose key range contains `t`.
    pub(super) fn child_for(&self, t: &Key, users: &Users) -> usize {
        let i = 1 + count_less(&self.skey[1..self.len], t.skey);
        if i < self.len && self.skey[i] == t.skey {
            partition(i, self.len, |i| {
                self.cmp_row(i, t, users) != Ordering::Greater
            }) - 1
        } else {
            i - 1
        }
    }

    pub(super) fn count_before(&self, idx: usize) -> usize {
        // Widening: counts are u32.
        self.count[..idx].iter().map(|&c| c as usize).sum()
    }
}
