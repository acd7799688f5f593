//! Log retention and the low-disk guard (SPEC §10): which of a tenant's oldest log records
//! may be deleted, and whether the data dir's filesystem has room for more writes.
//!
//! A record may go only when all three hold: every event in it was accepted longer ago than
//! the tenant's retention, it is outside the dedupe window (so a retry is still recognised
//! as a duplicate), and every board of the tenant has checkpointed past its last event (so a
//! board restart never needs it). Deletion keeps the log a contiguous suffix: it stops at
//! the first record that must stay, and the newest record is never deleted (it holds the
//! head, from which positions continue).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::{EventLog, Span};

/// The start positions of the records of `spans` (oldest first) that may be deleted: each
/// wholly accepted before `cutoff_ms` and at or below `checkpointed`, stopping at the first
/// that must stay.
pub fn purgeable(spans: &[Span], cutoff_ms: i64, checkpointed: u64) -> Vec<u64> {
    spans
        .iter()
        .take_while(|s| s.newest_ms < cutoff_ms && s.last <= checkpointed)
        .map(|s| s.first)
        .collect()
}

/// The acceptance time before which records may go: `now − max(retention, dedupe window)`.
pub fn cutoff_ms(now_ms: i64, retention: Duration, dedupe_window: Duration) -> i64 {
    let keep = retention.max(dedupe_window).as_millis();
    now_ms.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX))
}

/// Free space on the data dir's filesystem, watched in the background. Below the minimum,
/// writes are refused before any of them fails; above it again they resume by themselves.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    inner: Arc<GuardInner>,
}

#[derive(Debug)]
struct GuardInner {
    dir: Option<PathBuf>,
    min_free: u64,
    low: AtomicBool,
    free: AtomicU64,
}

impl DiskGuard {
    /// A guard for `dir` (none: never low) refusing writes below `min_free` bytes free.
    pub fn new(dir: Option<PathBuf>, min_free: u64) -> DiskGuard {
        let guard = DiskGuard {
            inner: Arc::new(GuardInner {
                dir,
                min_free,
                low: AtomicBool::new(false),
                free: AtomicU64::new(u64::MAX),
            }),
        };
        guard.check();
        guard
    }

    /// Whether free space is below the minimum (as of the last check).
    pub fn low(&self) -> bool {
        self.inner.low.load(Ordering::SeqCst)
    }

    /// Bytes free at the last check.
    pub fn free(&self) -> u64 {
        self.inner.free.load(Ordering::SeqCst)
    }

    /// Measure now, update the flag and `phoenix_disk_free_bytes`, and say whether low.
    pub fn check(&self) -> bool {
        let Some(dir) = &self.inner.dir else {
            return false;
        };
        match available(dir) {
            Ok(free) => {
                self.inner.free.store(free, Ordering::SeqCst);
                metrics::gauge!("phoenix_disk_free_bytes").set(free as f64);
                let low = free < self.inner.min_free;
                let was = self.inner.low.swap(low, Ordering::SeqCst);
                if low && !was {
                    tracing::error!(
                        free_bytes = free,
                        min_free_bytes = self.inner.min_free,
                        "disk space low: refusing writes until space is freed"
                    );
                } else if was && !low {
                    tracing::info!(free_bytes = free, "disk space recovered: writes resume");
                }
                low
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot measure free disk space");
                self.low()
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on `dir`'s filesystem (statvfs `f_bavail`).
pub fn available(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Export the store's size (`phoenix_store_bytes`).
pub fn record_store_size(log: &dyn EventLog) {
    if let Ok(bytes) = log.size_on_disk() {
        metrics::gauge!("phoenix_store_bytes").set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span(first: u64, last: u64, newest_ms: i64) -> Span {
        Span {
            first,
            last,
            newest_ms,
        }
    }

    #[test]
    fn stops_at_the_first_record_that_must_stay() {
        let spans = [span(1, 10, 100), span(11, 20, 200), span(21, 30, 300)];
        assert_eq!(purgeable(&spans, 250, u64::MAX), vec![1, 11]);
        // A board that has checkpointed only to 15 keeps 11..20 and everything after.
        assert_eq!(purgeable(&spans, 250, 15), vec![1]);
        assert_eq!(purgeable(&spans, 100, u64::MAX), Vec::<u64>::new());
        assert_eq!(purgeable(&spans, 1_000, 0), Vec::<u64>::new());
    }

    #[test]
    fn the_dedupe_window_outlasts_a_shorter_retention() {
        let h = Duration::from_secs(3600);
        assert_eq!(
            cutoff_ms(10_000_000, h, Duration::from_secs(300)),
            10_000_000 - 3_600_000
        );
        assert_eq!(
            cutoff_ms(10_000_000, Duration::ZERO, Duration::from_secs(300)),
            10_000_000 - 300_000
        );
        assert_eq!(cutoff_ms(i64::MIN + 5, h, h), i64::MIN);
    }

    proptest! {
        /// Whatever the spans, the purged records are a prefix, each old enough and
        /// checkpointed past.
        #[test]
        fn purges_a_safe_prefix(
            lens in proptest::collection::vec(1u64..20, 0..30),
            times in proptest::collection::vec(0i64..1000, 30),
            cutoff in 0i64..1000,
            checkpointed in 0u64..400,
        ) {
            let mut spans = Vec::new();
            let mut at = 1;
            for (i, n) in lens.iter().enumerate() {
                spans.push(span(at, at + n - 1, times[i]));
                at += n;
            }
            let out = purgeable(&spans, cutoff, checkpointed);
            prop_assert!(out.len() <= spans.len());
            for (s, f) in spans.iter().zip(&out) {
                prop_assert_eq!(s.first, *f);
                prop_assert!(s.newest_ms < cutoff && s.last <= checkpointed);
            }
            if let Some(next) = spans.get(out.len()) {
                prop_assert!(!(next.newest_ms < cutoff && next.last <= checkpointed));
            }
        }
    }
}
