//! The per-tenant dedupe window: a pure, bounded, synchronous set of recent `event_id`s.
//!
//! Entries expire `window_ms` after they were accepted (server clock). The set is also capped
//! at `capacity` entries; when full, the oldest entry is evicted early and counted, so memory
//! stays bounded whatever the ingest rate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Recent event ids of one tenant with the log position each was stored at.
#[derive(Debug)]
pub struct DedupeWindow {
    window_ms: i64,
    capacity: usize,
    seen: HashMap<Arc<str>, u64>,
    /// Insertion order: (accepted_ms, id). Accepted times are non-decreasing in practice;
    /// eviction only trusts the front, so a clock step backwards merely delays expiry.
    order: VecDeque<(i64, Arc<str>)>,
    evicted_early: u64,
}

impl DedupeWindow {
    pub fn new(window_ms: i64, capacity: usize) -> Self {
        DedupeWindow {
            window_ms,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            evicted_early: 0,
        }
    }

    /// Whether `id` is a duplicate at `now_ms` (cheap path: expire first, then look up).
    pub fn check(&mut self, id: &str, now_ms: i64) -> Option<u64> {
        self.expire(now_ms);
        self.seen.get(id).copied()
    }

    /// Record `id` as accepted at `accepted_ms` with log position `seq`.
    pub fn insert(&mut self, id: &str, seq: u64, accepted_ms: i64) {
        if self.seen.contains_key(id) {
            return;
        }
        while self.seen.len() >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.evicted_early += 1;
            } else {
                break;
            }
        }
        let key: Arc<str> = Arc::from(id);
        self.seen.insert(key.clone(), seq);
        self.order.push_back((accepted_ms, key));
    }

    /// Drop entries accepted at or before `now_ms - window_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some((accepted, _)) = self.order.front() {
            if accepted + self.window_ms > now_ms {
                break;
            }
            let (_, id) = self.order.pop_front().expect("front exists");
            self.seen.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// How many entries were evicted before their window ended because of the capacity cap.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
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

    #[test]
    fn reinsert_keeps_first_position() {
        let mut w = DedupeWindow::new(1_000, 10);
        w.insert("a", 1, 0);
        w.insert("a", 9, 5);
        assert_eq!(w.check("a", 6), Some(1));
    }

    proptest! {
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
                if expect.is_none() {
                    w.insert(&id, seq as u64, now);
                    model.insert(id, (seq as u64, now));
                }
            }
        }
    }
}
