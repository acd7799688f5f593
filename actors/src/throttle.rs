//! `LogThrottle`: error logs that cannot storm. A fault that repeats (a full disk, a board
//! that keeps failing) is logged a few times per window; the rest are counted and the count is
//! reported with the next line that goes out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `per_window` lines per `window`; usable in a `static`.
pub struct LogThrottle {
    per_window: u32,
    window: Duration,
    /// (window start, lines logged in it, lines suppressed since the last one logged).
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl LogThrottle {
    pub const fn new(per_window: u32, window: Duration) -> LogThrottle {
        LogThrottle {
            per_window,
            window,
            state: Mutex::new(None),
        }
    }

    /// `Some(suppressed)` if a line may be logged now (with how many were dropped since the
    /// last one), `None` if this one is to be dropped.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, logged, suppressed) = guard.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= self.window {
            (*start, *logged) = (now, 0);
        }
        if *logged < self.per_window {
            *logged += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_the_drop_count_reported_later() {
        let t = LogThrottle::new(3, Duration::from_secs(10));
        let start = Instant::now();
        let got: Vec<Option<u64>> = (0..100).map(|_| t.allow_at(start)).collect();
        assert_eq!(&got[..3], &[Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        // Next window: one line again, reporting the 97 dropped.
        assert_eq!(t.allow_at(start + Duration::from_secs(10)), Some(97));
        assert_eq!(t.allow_at(start + Duration::from_secs(11)), Some(0));
    }
}
