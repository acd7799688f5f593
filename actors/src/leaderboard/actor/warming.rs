//! Reads wait while a (re)started board replays what was durable when it started: a query
//! or subscription answered from a board that has not yet applied the events acknowledged
//! before it started would show standings without them (after a restart, a failover to
//! another node, or a rebuild). Such reads are parked and answered once the board has
//! caught up; one parked longer than [`PARK_LIMIT`] gets a 503 saying so instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{labels, BoardActorState, LeaderboardMsg};
use crate::leaderboard::query::QueryError;

/// Most reads parked at once per board; more get a 503 at once.
pub(super) const MAX_PARKED: usize = 1024;

/// Longest a read waits for the replay before it is refused.
pub(super) const PARK_LIMIT: Duration = Duration::from_secs(2);

/// A board still short of the durable head it started at, and the reads waiting for it.
pub(super) struct Warming {
    /// The tenant's durable head when the board started.
    pub head: u64,
    parked: VecDeque<(Instant, LeaderboardMsg)>,
}

impl Warming {
    /// `None` when the board starts at or past `head` already.
    pub fn start(applied: u64, head: u64) -> Option<Warming> {
        (applied < head).then(|| Warming {
            head,
            parked: VecDeque::new(),
        })
    }

    /// Keep `read` until the board is warm, or hand it back when [`MAX_PARKED`] wait already.
    fn park(&mut self, read: LeaderboardMsg, now: Instant) -> Option<LeaderboardMsg> {
        if self.parked.len() >= MAX_PARKED {
            return Some(read);
        }
        self.parked.push_back((now, read));
        None
    }

    /// The reads parked for [`PARK_LIMIT`] or longer at `now`, oldest first.
    fn expired(&mut self, now: Instant) -> Vec<LeaderboardMsg> {
        let mut out = Vec::new();
        while self
            .parked
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= PARK_LIMIT)
        {
            out.extend(self.parked.pop_front().map(|(_, m)| m));
        }
        out
    }

    /// Every parked read, in arrival order.
    fn drain(self) -> impl Iterator<Item = LeaderboardMsg> {
        self.parked.into_iter().map(|(_, m)| m)
    }
}

/// Park `read` while the board warms up; `Some(read)` back to answer now when it is warm.
pub(super) fn park(state: &mut BoardActorState, read: LeaderboardMsg) -> Option<LeaderboardMsg> {
    let applied = state.board.applied;
    let Some(w) = state.warming.as_mut() else {
        return Some(read);
    };
    if let Some(read) = w.park(read, Instant::now()) {
        refuse(read, &state.args.def.id, applied, w.head);
    }
    gauge(state);
    None
}

/// After a catch-up pass: once the board reached its start head, or read everything the log
/// holds (`exhausted`: the log ends before that head), hand back every parked read to
/// answer; else refuse the ones parked for [`PARK_LIMIT`].
pub(super) fn settle(state: &mut BoardActorState, exhausted: bool) -> Vec<LeaderboardMsg> {
    let applied = state.board.applied;
    let Some(w) = state.warming.as_mut() else {
        return Vec::new();
    };
    let out = if applied >= w.head || exhausted {
        let w = state.warming.take().expect("warming");
        tracing::debug!(board = %state.args.def.id, applied, head = w.head, "leaderboard caught up");
        w.drain().collect()
    } else {
        let head = w.head;
        for read in w.expired(Instant::now()) {
            refuse(read, &state.args.def.id, applied, head);
        }
        Vec::new()
    };
    gauge(state);
    out
}

fn gauge(state: &BoardActorState) {
    let n = state.warming.as_ref().map_or(0, |w| w.parked.len());
    metrics::gauge!("phoenix_leaderboard_parked_reads", &labels(state)).set(n as f64);
}

/// Answer a parked read with a 503 that says why.
fn refuse(msg: LeaderboardMsg, board: &str, applied: u64, head: u64) {
    metrics::counter!("phoenix_leaderboard_parked_refused_total").increment(1);
    let err = || {
        QueryError::Replaying(format!(
            "leaderboard {board} is replaying its log after a (re)start \
             (applied {applied} of {head}); retry shortly"
        ))
    };
    match msg {
        LeaderboardMsg::Standings { reply, .. } | LeaderboardMsg::Users { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        LeaderboardMsg::User { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        LeaderboardMsg::Windows { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        LeaderboardMsg::Members { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        LeaderboardMsg::Subscribe { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaderboard::query::WindowInfo;
    use crate::leaderboard::window::Timeframe;
    use tokio::sync::oneshot;

    type Answer = oneshot::Receiver<Result<Vec<WindowInfo>, QueryError>>;

    /// A `Windows` read and the receiver of its answer; `limit` tells reads apart.
    fn read(limit: usize) -> (LeaderboardMsg, Answer) {
        let (tx, rx) = oneshot::channel();
        let msg = LeaderboardMsg::Windows {
            tf: Timeframe::AllTime,
            limit,
            reply: tx.into(),
        };
        (msg, rx)
    }

    fn limit_of(msg: &LeaderboardMsg) -> usize {
        match msg {
            LeaderboardMsg::Windows { limit, .. } => *limit,
            _ => unreachable!("only Windows reads here"),
        }
    }

    #[test]
    fn a_board_at_its_start_head_does_not_warm_up() {
        assert!(Warming::start(5, 5).is_none());
        assert!(Warming::start(6, 5).is_none());
        assert_eq!(Warming::start(4, 5).map(|w| w.head), Some(5));
    }

    #[test]
    fn parking_is_bounded_and_the_overflow_comes_back() {
        let mut w = Warming::start(0, 10).unwrap();
        let now = Instant::now();
        for i in 0..MAX_PARKED {
            assert!(w.park(read(i).0, now).is_none(), "read {i} parks");
        }
        let back = w.park(read(MAX_PARKED).0, now).expect("full");
        assert_eq!(limit_of(&back), MAX_PARKED);
        let order: Vec<usize> = w.drain().map(|m| limit_of(&m)).collect();
        assert_eq!(order, (0..MAX_PARKED).collect::<Vec<_>>(), "arrival order");
    }

    #[test]
    fn reads_expire_after_the_park_limit_oldest_first() {
        let mut w = Warming::start(0, 10).unwrap();
        let t0 = Instant::now();
        w.park(read(1).0, t0);
        w.park(read(2).0, t0 + Duration::from_millis(500));
        assert!(w
            .expired(t0 + PARK_LIMIT - Duration::from_millis(1))
            .is_empty());
        let gone: Vec<usize> = w.expired(t0 + PARK_LIMIT).iter().map(limit_of).collect();
        assert_eq!(gone, [1]);
        let gone: Vec<usize> = w
            .expired(t0 + PARK_LIMIT + Duration::from_millis(500))
            .iter()
            .map(limit_of)
            .collect();
        assert_eq!(gone, [2]);
        assert_eq!(w.drain().count(), 0);
    }

    #[test]
    fn a_refused_read_gets_a_503_that_says_why() {
        let (msg, mut rx) = read(1);
        refuse(msg, "total", 1024, 5000);
        match rx.try_recv().expect("answered") {
            Err(QueryError::Replaying(m)) => {
                assert!(m.contains("leaderboard total is replaying"), "{m}");
                assert!(m.contains("applied 1024 of 5000"), "{m}");
            }
            other => panic!("not a 503: {other:?}"),
        }
    }
}
