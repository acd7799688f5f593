//! The process's transparent-huge-page policy (config `transparent_huge_pages`).
//!
//! mimalloc asks for huge pages for its arenas. While the server starts (the dedupe windows
//! rebuilt, checkpoints loaded) they pay: its working set is allocated in big blocks, one
//! fault per 2 MB. Once it serves, the heap grows in small steps under load, and faulting,
//! zeroing and compacting 2 MB pages then cost WebSocket ingest ~40 % of its throughput and
//! put 20 ms stalls into the ack p99 (docs/PERFORMANCE.md, session 13). So by default the
//! server turns them off for itself once started; what was faulted before keeps its pages.

use std::time::{Duration, Instant};

use crate::engine_slot::EngineSlot;

/// Longest the server waits for its engine to start before turning huge pages off anyway.
const START_BOUND: Duration = Duration::from_secs(60);

/// Turn transparent huge pages off once the engine in `slot` has started (every tenant's
/// dedupe window rebuilt), or after [`START_BOUND`].
pub async fn huge_pages_off_once_started(slot: EngineSlot) {
    let deadline = Instant::now() + START_BOUND;
    while Instant::now() < deadline && slot.get().is_none_or(|e| e.starting() != 0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    disable_transparent_huge_pages();
}

/// No transparent huge pages for this process from now on (`PR_SET_THP_DISABLE`: every
/// later fault, whatever the allocator advised), as `MIMALLOC_ALLOW_THP=0` would do.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    match nix::sys::prctl::set_thp_disable(true) {
        Ok(()) => tracing::debug!("transparent huge pages off for this process"),
        Err(e) => tracing::warn!(error = %e, "transparent huge pages stay allowed"),
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}
