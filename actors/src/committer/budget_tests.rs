//! The writer keeps writing while an fsync runs, within each tenant's budget.
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A log whose `sync` waits until the test opens the gate; it records each append's
/// tenant and event count, and how many syncs had started before it.
#[derive(Default)]
struct Gated {
    appends: Mutex<Vec<(String, usize, usize)>>,
    syncs: AtomicUsize,
    open: Mutex<bool>,
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

/// Events of `tenant` appended while the first sync was running.
fn during_first_sync(log: &Gated, tenant: &str) -> usize {
    let appends = log.appends.lock().unwrap();
    appends
        .iter()
        .filter(|(t, _, started)| t == tenant && *started == 1)
        .map(|(_, n, _)| n)
        .sum()
}

/// Runs a flood of tenant `a` (40 × ~1 KB) submitted while the first fsync hangs, with
/// or without one event of `b`; returns `a`'s events written during that fsync, once
/// the writer has settled, and whether every completion ran after the gate opened.
fn flood_during_a_sync(with_b: bool) -> (usize, bool) {
    let log = Arc::new(Gated::default());
    let committer = Committer::start(
        log.clone(),
        Budget {
            shared: 4_000,
            alone: 1 << 20,
        },
    );
    let done = Arc::new(AtomicUsize::new(0));
    let counter = |done: &Arc<AtomicUsize>| -> Completion {
        let done = done.clone();
        Box::new(move |r| {
            r.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        })
    };
    committer.append(append("a", 1, 1000), counter(&done));
    while log.syncs.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    if with_b {
        committer.append(append("b", 1, 10), counter(&done));
    }
    for s in 2..=41 {
        committer.append(append("a", s, 1000), counter(&done));
    }
    std::thread::sleep(Duration::from_millis(200));
    if with_b {
        // The writer has used a's budget and waits for the sync; b's next event is
        // still written at once, to ride the next fsync.
        committer.append(append("b", 2, 10), counter(&done));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            during_first_sync(&log, "b"),
            2,
            "both of b's events written"
        );
    }
    let written = during_first_sync(&log, "a");
    let none_early = done.load(Ordering::SeqCst) == 0;
    *log.open.lock().unwrap() = true;
    let total = 41 + 2 * usize::from(with_b);
    for _ in 0..2000 {
        if done.load(Ordering::SeqCst) == total {
            return (written, none_early);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("completions did not all run");
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
    // 4,000 bytes at ~1.1 KB a request: 3 requests, not 40.
    assert!((1..=4).contains(&written), "{written} of a's events");
    assert!(none_early);
}
