//! The writer keeps writing big rounds while an fsync runs, within each tenant's budget;
//! a small round that nothing written yet waits for is held back until the fsync ends.
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A log whose `sync` waits until the test opens the gate; it records each append's
/// tenant and event count, and how many syncs had started before it. `overlap` is what it
/// answers to [`EventLog::appends_overlap_sync`].
#[derive(Default)]
struct Gated {
    appends: Mutex<Vec<(String, usize, usize)>>,
    syncs: AtomicUsize,
    open: Mutex<bool>,
    overlap: bool,
}

impl EventLog for Gated {
    fn append(&self, t: &str, _: u64, ev: &[NewEntry<'_>]) -> Result<(), EngineError> {
        let started = self.syncs.load(Ordering::SeqCst);
        self.appends
            .lock()
            .unwrap()
            .push((t.into(), ev.len(), started));
        Ok(())
    }
    fn sync(&self) -> Result<(), EngineError> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        while !*self.open.lock().unwrap() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
    fn read_from(&self, _: &str, _: u64, _: usize) -> Result<Vec<LogEntry>, EngineError> {
        unimplemented!()
    }
    fn next_seq(&self, _: &str) -> Result<u64, EngineError> {
        unimplemented!()
    }
    fn recent_ids(&self, _: &str, _: i64) -> Result<Vec<(String, u64, i64)>, EngineError> {
        unimplemented!()
    }
    fn healthy(&self) -> bool {
        true
    }
    fn appends_overlap_sync(&self) -> bool {
        self.overlap
    }
}

use crate::store::LogEntry;

fn append(tenant: &str, seq: u64, bytes: usize) -> Append {
    let e = Event {
        event_id: format!("{tenant}{seq}"),
        event_type: "t".into(),
        user_id: "u".into(),
        occurred_at: chrono::Utc::now(),
        json: "x".repeat(bytes),
    };
    Append {
        tenant: tenant.into(),
        first_seq: seq,
        accepted_ms: 0,
        events: vec![e],
    }
}

/// Events of `tenant` appended after the first sync started and before the second did:
/// those the second sync makes durable.
fn during_first_sync(log: &Gated, tenant: &str) -> usize {
    let appends = log.appends.lock().unwrap();
    appends
        .iter()
        .filter(|(t, _, started)| t == tenant && *started == 1)
        .map(|(_, n, _)| n)
        .sum()
}

/// Flood requests are big enough that the writer never waits for a sync after them.
const FLOOD: usize = LATE_ROUND_BYTES + 1_000;

/// Runs a flood of tenant `a` (40 requests of [`FLOOD`] bytes) submitted while the first
/// fsync hangs, with or without two small events of `b`; returns `a`'s events written
/// for the second fsync (checking that both of `b`'s ride it), and whether no completion
/// ran before the gate opened.
fn flood_during_a_sync(with_b: bool) -> (usize, bool) {
    let log = Arc::new(Gated::default());
    let committer = Committer::start(
        log.clone(),
        Budget {
            shared: 3 * FLOOD,
            alone: 1 << 20,
        },
    );
    let done = Arc::new(AtomicUsize::new(0));
    committer.append(append("a", 1, FLOOD), counter(&done));
    while log.syncs.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    if with_b {
        committer.append(append("b", 1, 10), counter(&done));
    }
    for s in 2..=41 {
        committer.append(append("a", s, FLOOD), counter(&done));
    }
    std::thread::sleep(Duration::from_millis(200));
    if with_b {
        // a's budget for the next sync is spent; b's next event still rides it.
        committer.append(append("b", 2, 10), counter(&done));
        std::thread::sleep(Duration::from_millis(100));
        // If b's first event came alone it was small enough to wait for the sync's end;
        // the flood behind it is big, so the writer goes on at once.
        assert!(
            during_first_sync(&log, "a") >= 1,
            "a's flood is written while the sync runs"
        );
    } else {
        assert_eq!(
            during_first_sync(&log, "a"),
            40,
            "the flood is written while the sync runs"
        );
    }
    let none_early = done.load(Ordering::SeqCst) == 0;
    *log.open.lock().unwrap() = true;
    let total = 41 + 2 * usize::from(with_b);
    wait_for(&done, total);
    if with_b {
        assert_eq!(
            during_first_sync(&log, "b"),
            2,
            "both of b's events ride it"
        );
    }
    (during_first_sync(&log, "a"), none_early)
}

/// A completion that counts itself in `done` (and insists on success).
fn counter(done: &Arc<AtomicUsize>) -> Completion {
    let done = done.clone();
    Box::new(move |r| {
        r.unwrap();
        done.fetch_add(1, Ordering::SeqCst);
    })
}

/// Wait (up to 2 s) until `done` reaches `total`.
fn wait_for(done: &AtomicUsize, total: usize) {
    for _ in 0..2000 {
        if done.load(Ordering::SeqCst) == total {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("completions did not all run");
}

/// Small requests arriving one at a time while a sync runs: the local log's writer waits
/// for the sync and writes the ten as one record after it; a log whose appends overlap its
/// syncs gets each one at once. Either way every one rides the next sync, and none is
/// answered before its own sync.
fn trickle_during_a_sync(overlap: bool) -> Vec<(String, usize, usize)> {
    let log = Arc::new(Gated {
        overlap,
        ..Gated::default()
    });
    let committer = Committer::start(
        log.clone(),
        Budget {
            shared: 1 << 20,
            alone: 1 << 20,
        },
    );
    let done = Arc::new(AtomicUsize::new(0));
    committer.append(append("a", 1, 100), counter(&done));
    while log.syncs.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for s in 2..=11 {
        committer.append(append("a", s, 100), counter(&done));
        std::thread::sleep(Duration::from_millis(3));
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = log.appends.lock().unwrap().len();
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "nothing answered before its sync"
    );
    *log.open.lock().unwrap() = true;
    wait_for(&done, 11);
    let appends = log.appends.lock().unwrap().clone();
    let during: Vec<_> = appends
        .iter()
        .filter(|(_, _, s)| *s == 1)
        .cloned()
        .collect();
    assert_eq!(
        during.iter().map(|(_, n, _)| n).sum::<usize>(),
        10,
        "{appends:?}"
    );
    if overlap {
        assert_eq!(before, 11, "each arrival written at once: {appends:?}");
    } else {
        assert_eq!(before, 1, "nothing written while the sync ran: {appends:?}");
    }
    during
}

#[test]
fn small_requests_during_a_sync_are_written_once_it_ends() {
    let during = trickle_during_a_sync(false);
    assert_eq!(during.len(), 1, "one record for the ten: {during:?}");
}

#[test]
fn a_log_whose_appends_overlap_its_syncs_is_written_ahead() {
    let during = trickle_during_a_sync(true);
    assert_eq!(during.len(), 10, "{during:?}");
}

/// A log whose appends fail: every job is answered (with the error) at once, also past
/// the budget — a failed write opens no sync, so it must not hold the budget.
struct Failing;

impl EventLog for Failing {
    fn append(&self, _: &str, _: u64, _: &[NewEntry<'_>]) -> Result<(), EngineError> {
        Err(EngineError::Unavailable)
    }
    fn sync(&self) -> Result<(), EngineError> {
        Ok(())
    }
    fn read_from(&self, _: &str, _: u64, _: usize) -> Result<Vec<LogEntry>, EngineError> {
        unimplemented!()
    }
    fn next_seq(&self, _: &str) -> Result<u64, EngineError> {
        unimplemented!()
    }
    fn recent_ids(&self, _: &str, _: i64) -> Result<Vec<(String, u64, i64)>, EngineError> {
        unimplemented!()
    }
    fn healthy(&self) -> bool {
        false
    }
}

#[test]
fn failed_writes_are_answered_at_once_past_the_budget() {
    let committer = Committer::start(
        Arc::new(Failing),
        Budget {
            shared: 1_000,
            alone: 1_000,
        },
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for s in 1..=20 {
        let tx = tx.clone();
        committer.append(
            append("a", s, 1000),
            Box::new(move |r| tx.send(r.is_err()).unwrap()),
        );
    }
    for _ in 0..20 {
        let failed = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("every job answered");
        assert!(failed);
    }
}

#[test]
fn a_lone_flood_is_written_while_a_sync_runs() {
    let (written, none_early) = flood_during_a_sync(false);
    assert_eq!(written, 40, "all of a's flood is written during the sync");
    assert!(none_early, "nothing completes before its sync");
}

#[test]
fn beside_another_tenant_a_flood_gets_the_shared_budget() {
    let (written, none_early) = flood_during_a_sync(true);
    // A budget of three flood requests: at most three of them, not 40.
    assert!((1..=3).contains(&written), "{written} of a's events");
    assert!(none_early);
}
