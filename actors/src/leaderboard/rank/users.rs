//! The user table: interned user ids addressed by `u32` slot, and an id → slot hash table.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use super::{to_u32, NIL};

/// Where a user's name lives and their current key parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserSlot {
    /// Byte offset into the name arena; `NIL` marks a free slot.
    pub(super) start: u32,
    pub(super) len: u32,
    pub(super) skey: u64,
    pub(super) reached: u64,
}

/// Interned user ids plus an open-addressing (linear probing, backward-shift delete) id → slot table.
#[derive(Debug, Clone)]
pub(super) struct Users {
    pub(super) slots: Vec<UserSlot>,
    pub(super) names: String,
    pub(super) free: Vec<u32>,
    /// Slot numbers; `NIL` = empty. Power-of-two length, load ≤ 1/2.
    pub(super) table: Vec<u32>,
    pub(super) live: usize,
    /// Bytes of `names` owned by removed users; compacted away when it dominates.
    pub(super) garbage: usize,
    /// Seeded per table: user ids come from clients.
    pub(super) hasher: foldhash::quality::RandomState,
}

impl Users {
    pub(super) fn new() -> Self {
        Users {
            slots: Vec::new(),
            names: String::new(),
            free: Vec::new(),
            table: Vec::new(),
            live: 0,
            garbage: 0,
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    pub(super) fn name(&self, uid: u32) -> &str {
        let s = &self.slots[uid as usize];
        &self.names[s.start as usize..s.start as usize + s.len as usize]
    }

    /// Final tie-break: user id ascending (byte order).
    pub(super) fn cmp_uids(&self, a: u32, b: u32) -> Ordering {
        if a == b {
            Ordering::Equal
        } else {
            self.name(a).cmp(self.name(b))
        }
    }

    pub(super) fn bucket(&self, name: &str) -> usize {
        // Truncation is intended: only the low bits pick the bucket.
        (self.hasher.hash_one(name) as usize) & (self.table.len() - 1)
    }

    pub(super) fn find(&self, name: &str) -> Option<u32> {
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

    pub(super) fn place(&mut self, uid: u32) {
        let mask = self.table.len() - 1;
        let mut i = self.bucket(self.name(uid));
        while self.table[i] != NIL {
            i = (i + 1) & mask;
        }
        self.table[i] = uid;
    }

    pub(super) fn insert(&mut self, name: &str, skey: u64, reached: u64) -> u32 {
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

    pub(super) fn remove(&mut self, uid: u32) {
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
    pub(super) fn compact(&mut self) {
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
