//! Live views of a board for push subscribers: the top N, or the neighbourhood of one user, of
//! a timeframe's window. Each distinct view is computed once per publish tick, however many
//! sessions watch it, and published on a bounded broadcast channel: a subscriber that falls
//! behind is told it lagged (and resnapshots) instead of the server keeping its backlog.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::rank::Entry;
use super::window::{Timeframe, WindowKey};

/// Frames a view keeps for slow subscribers before they count as lagging.
pub const VIEW_BUFFER: usize = 16;

/// What part of a window a view shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ViewKind {
    Top(usize),
    Around { user: String, radius: usize },
}

/// Identifies a shared view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub tf: Timeframe,
    /// `None`: the current window (follows rollover); `Some`: a fixed window.
    pub window: Option<WindowKey>,
    pub kind: ViewKind,
}

/// One user's move inside a view. `rank: None` means the user left the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub user_id: String,
    pub rank: Option<usize>,
    pub score: Option<f64>,
    pub previous_rank: Option<usize>,
}

/// A frame published to a view's subscribers.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewFrame {
    /// The whole view (first frame, window rollover, or resync).
    Snapshot {
        seq: u64,
        window: WindowKey,
        entries: Vec<Entry>,
    },
    /// What changed since the frame with `seq - 1`.
    Update {
        seq: u64,
        window: WindowKey,
        changes: Vec<Change>,
    },
}

/// A frame as published: the frame plus its JSON body, rendered once by the first session
/// that forwards it and shared by all the others.
#[derive(Debug)]
pub struct Published {
    pub frame: ViewFrame,
    pub rendered: std::sync::OnceLock<String>,
}

impl ViewFrame {
    pub fn seq(&self) -> u64 {
        match self {
            ViewFrame::Snapshot { seq, .. } | ViewFrame::Update { seq, .. } => *seq,
        }
    }
}

/// The changes that turn view `old` into view `new`.
pub fn diff(old: &[Entry], new: &[Entry]) -> Vec<Change> {
    let before: HashMap<&str, &Entry> = old.iter().map(|e| (e.user_id.as_str(), e)).collect();
    let mut out = Vec::new();
    for e in new {
        match before.get(e.user_id.as_str()) {
            Some(o) if o.rank == e.rank && o.score.to_bits() == e.score.to_bits() => {}
            o => out.push(Change {
                user_id: e.user_id.clone(),
                rank: Some(e.rank),
                score: Some(e.score),
                previous_rank: o.map(|o| o.rank),
            }),
        }
    }
    let after: std::collections::HashSet<&str> = new.iter().map(|e| e.user_id.as_str()).collect();
    for o in old {
        if !after.contains(o.user_id.as_str()) {
            out.push(Change {
                user_id: o.user_id.clone(),
                rank: None,
                score: None,
                previous_rank: Some(o.rank),
            });
        }
    }
    out
}

/// One shared view's state.
#[derive(Debug)]
pub struct View {
    pub tx: broadcast::Sender<Arc<Published>>,
    pub window: WindowKey,
    pub seq: u64,
    pub last: Vec<Entry>,
}

impl View {
    pub fn new(window: WindowKey, entries: Vec<Entry>) -> View {
        View {
            tx: broadcast::channel(VIEW_BUFFER).0,
            window,
            seq: 1,
            last: entries,
        }
    }

    /// The current state as a snapshot frame.
    pub fn snapshot(&self) -> ViewFrame {
        ViewFrame::Snapshot {
            seq: self.seq,
            window: self.window,
            entries: self.last.clone(),
        }
    }

    /// Move the view to `entries` (in `window`) and publish what changed, if anything.
    /// A different window (rollover) publishes a snapshot. Returns whether a frame went out.
    pub fn advance(&mut self, window: WindowKey, entries: Vec<Entry>) -> bool {
        let frame = if window != self.window {
            self.window = window;
            self.last = entries;
            self.seq += 1;
            self.snapshot()
        } else {
            let changes = diff(&self.last, &entries);
            if changes.is_empty() {
                return false;
            }
            self.last = entries;
            self.seq += 1;
            ViewFrame::Update {
                seq: self.seq,
                window,
                changes,
            }
        };
        // No receivers is fine: the view is dropped at the next tick.
        let _ = self.tx.send(Arc::new(Published {
            frame,
            rendered: std::sync::OnceLock::new(),
        }));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rank: usize, user: &str, score: f64) -> Entry {
        Entry {
            rank,
            user_id: user.into(),
            score,
        }
    }

    #[test]
    fn diff_reports_moves_entries_and_exits() {
        let old = vec![e(1, "a", 10.0), e(2, "b", 8.0), e(3, "c", 5.0)];
        let new = vec![e(1, "b", 12.0), e(2, "a", 10.0), e(3, "d", 6.0)];
        let ch = diff(&old, &new);
        assert_eq!(
            ch,
            vec![
                Change {
                    user_id: "b".into(),
                    rank: Some(1),
                    score: Some(12.0),
                    previous_rank: Some(2)
                },
                Change {
                    user_id: "a".into(),
                    rank: Some(2),
                    score: Some(10.0),
                    previous_rank: Some(1)
                },
                Change {
                    user_id: "d".into(),
                    rank: Some(3),
                    score: Some(6.0),
                    previous_rank: None
                },
                Change {
                    user_id: "c".into(),
                    rank: None,
                    score: None,
                    previous_rank: Some(3)
                },
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn advance_numbers_frames_and_snapshots_on_rollover() {
        let w1 = Timeframe::Hourly.window_of("2025-11-18T12:00:00Z".parse().unwrap());
        let w2 = Timeframe::Hourly.window_of("2025-11-18T13:00:00Z".parse().unwrap());
        let mut v = View::new(w1, vec![e(1, "a", 1.0)]);
        let mut rx = v.tx.subscribe();
        assert!(!v.advance(w1, vec![e(1, "a", 1.0)]), "no change, no frame");
        assert!(v.advance(w1, vec![e(1, "a", 2.0)]));
        assert!(v.advance(w2, vec![]));
        let f1 = rx.try_recv().unwrap();
        assert!(matches!(&f1.frame, ViewFrame::Update { seq: 2, .. }));
        let f2 = rx.try_recv().unwrap();
        assert!(matches!(&f2.frame, ViewFrame::Snapshot { seq: 3, window, .. } if *window == w2));
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_growing_a_backlog() {
        let w = Timeframe::AllTime.window_of(chrono::Utc::now());
        let mut v = View::new(w, vec![]);
        let mut rx = v.tx.subscribe();
        for i in 0..(VIEW_BUFFER as u64 * 3) {
            v.advance(w, vec![e(1, "a", i as f64 + 1.0)]);
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
