//! Tournament membership (SPEC §12 `entry.join_required`): who may score on a board.
//!
//! A join or a leave is itself a durable event of the tenant's log (`leaderboard.member_joined` /
//! `leaderboard.member_left`, `actor.user_id` = the user, `attrs.leaderboard` = the board id),
//! and the board applies it in log order like any other event. So membership is a function of
//! the log: replay and checkpoints reproduce it exactly, and when two joins race for the last
//! place the one logged first wins and the other is refused. Pure and synchronous.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// Event type of a join.
pub const MEMBER_JOINED: &str = "leaderboard.member_joined";
/// Event type of a leave.
pub const MEMBER_LEFT: &str = "leaderboard.member_left";

/// Decisions remembered for callers waiting on their own join or leave (not checkpointed: a
/// caller whose decision was forgotten reads the membership instead).
const RECENT_DECISIONS: usize = 4096;

/// What applying one membership event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The user became a member.
    Joined,
    /// The user was already a member.
    AlreadyMember,
    /// The board was full (`max_members`); the user is not a member.
    Full,
    /// The user left.
    Left,
    /// The user was not a member.
    NotMember,
}

/// How a join request ended for its caller (a full board is an error, 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// This call made the user a member.
    Joined,
    /// The user already was one (or a concurrent identical join admitted them).
    AlreadyMember,
}

/// The members of one board: user → log position of the join that admitted them.
#[derive(Debug, Default)]
pub struct Members {
    joined: BTreeMap<Box<str>, u64>,
    recent: VecDeque<(u64, Decision)>,
}

impl Members {
    pub fn len(&self) -> usize {
        self.joined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.joined.contains_key(user)
    }

    /// Apply a join at log position `seq` with at most `cap` members.
    pub fn join(&mut self, seq: u64, user: &str, cap: usize) -> Decision {
        let d = if self.joined.contains_key(user) {
            Decision::AlreadyMember
        } else if self.joined.len() >= cap {
            Decision::Full
        } else {
            self.joined.insert(user.into(), seq);
            Decision::Joined
        };
        self.remember(seq, d)
    }

    /// Apply a leave at log position `seq`.
    pub fn leave(&mut self, seq: u64, user: &str) -> Decision {
        let d = if self.joined.remove(user).is_some() {
            Decision::Left
        } else {
            Decision::NotMember
        };
        self.remember(seq, d)
    }

    fn remember(&mut self, seq: u64, d: Decision) -> Decision {
        if self.recent.len() >= RECENT_DECISIONS {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, d));
        d
    }

    /// The decision taken for the membership event at `seq`, if still remembered.
    pub fn decision(&self, seq: u64) -> Option<Decision> {
        self.recent
            .binary_search_by_key(&seq, |(s, _)| *s)
            .ok()
            .map(|i| self.recent[i].1)
    }

    /// Up to `limit` members after `after` (exclusive), in user id order, with their join
    /// positions.
    pub fn page(&self, after: Option<&str>, limit: usize) -> Vec<(String, u64)> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.joined
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(u, s)| (u.to_string(), *s))
            .collect()
    }

    /// Every member with its join position (checkpoints).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.joined.iter().map(|(u, s)| (&**u, *s))
    }

    /// Restore one member from a checkpoint.
    pub fn restore(&mut self, user: &str, seq: u64) {
        self.joined.insert(user.into(), seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_are_decided_in_order_up_to_the_cap() {
        let mut m = Members::default();
        assert_eq!(m.join(1, "a", 2), Decision::Joined);
        assert_eq!(m.join(2, "a", 2), Decision::AlreadyMember);
        assert_eq!(m.join(3, "b", 2), Decision::Joined);
        assert_eq!(m.join(4, "c", 2), Decision::Full);
        assert!(!m.contains("c"));
        assert_eq!(m.leave(5, "a"), Decision::Left);
        assert_eq!(m.leave(6, "a"), Decision::NotMember);
        assert_eq!(m.join(7, "c", 2), Decision::Joined);
        assert_eq!(m.decision(4), Some(Decision::Full));
        assert_eq!(m.decision(7), Some(Decision::Joined));
        assert_eq!(m.decision(8), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.page(None, 10), vec![("b".into(), 3), ("c".into(), 7)]);
        assert_eq!(m.page(Some("b"), 10), vec![("c".into(), 7)]);
        assert_eq!(m.page(None, 1).len(), 1);
    }

    #[test]
    fn remembered_decisions_are_bounded() {
        let mut m = Members::default();
        for seq in 0..(RECENT_DECISIONS as u64 + 10) {
            m.join(seq, "a", 1);
        }
        assert_eq!(m.recent.len(), RECENT_DECISIONS);
        assert_eq!(m.decision(0), None);
        assert_eq!(
            m.decision(RECENT_DECISIONS as u64 + 9),
            Some(Decision::AlreadyMember)
        );
    }
}
