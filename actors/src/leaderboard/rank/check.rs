//! The rank index's structural invariants, checked by the unit and property tests.

use std::cmp::Ordering;

use super::key::Key;
use super::users::Users;
use super::{RankIndex, NIL};

fn cmp_keys(u: &Users, a: &Key, b: &Key) -> Ordering {
    a.skey
        .cmp(&b.skey)
        .then(a.reached.cmp(&b.reached))
        .then_with(|| u.cmp_uids(a.uid, b.uid))
}

impl RankIndex {
    /// Checks every structural invariant; panics with a description on the first violation.
    pub(super) fn check(&self) {
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
