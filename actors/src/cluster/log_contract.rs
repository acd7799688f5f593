//! The [`EventLog`] contract suite: one set of checks every implementation passes (the
//! object-store integration-suite pattern of STYLE.md). [`run`] takes a way to open the
//! log under test — opened again to check durability, so a store holding a lock must
//! release it on drop — and distinct tenant names so the suite can share a server.
//!
//! Each check panics with what differed; they are `pub` so a backend's test can run one.

use crate::store::{EventLog, LogEntry, NewEntry};

/// Run every check on logs made by `open`, on tenants named `<prefix>-…`.
pub fn run<L: EventLog>(open: &mut dyn FnMut() -> L, prefix: &str) {
    let log = open();
    assert!(log.healthy(), "a freshly opened log is healthy");
    empty(&log, &format!("{prefix}-empty"));
    round_trip(&log, &format!("{prefix}-trip"));
    recent_ids(&log, &format!("{prefix}-recent"));
    tenants_are_separate(&log, &format!("{prefix}-a"), &format!("{prefix}-b"));
    large_batches(&log, &format!("{prefix}-large"));
    assert!(log.healthy(), "still healthy after the checks");
    drop(log);
    survives_reopen(open, &format!("{prefix}-trip"));
}

/// One append: first position, acceptance time, `(event_id, json)` per event.
type Batch = (u64, i64, Vec<(String, String)>);

/// The events of [`round_trip`]: three appends of 1, 5 and 2 events.
fn trip_batches() -> Vec<Batch> {
    let batch = |first: u64, ms: i64, n: u64| {
        let events = (first..first + n)
            .map(|s| (format!("ev-{s}"), format!(r#"{{"n":{s},"s":"é✓ {s}"}}"#)))
            .collect();
        (first, ms, events)
    };
    vec![batch(1, 1_000, 1), batch(2, 2_000, 5), batch(7, 3_000, 2)]
}

fn append_all<L: EventLog + ?Sized>(log: &L, tenant: &str, batches: &[Batch]) -> Vec<LogEntry> {
    let mut want = Vec::new();
    for (first, ms, events) in batches {
        let entries: Vec<NewEntry<'_>> = events
            .iter()
            .map(|(id, json)| (*ms, id.as_str(), json.as_str()))
            .collect();
        log.append(tenant, *first, &entries).expect("append");
        for (i, (id, json)) in events.iter().enumerate() {
            want.push(LogEntry {
                seq: first + i as u64,
                accepted_ms: *ms,
                event_id: id.clone(),
                json: json.clone(),
            });
        }
    }
    log.sync().expect("sync");
    want
}

/// A tenant nothing was logged for.
pub fn empty<L: EventLog + ?Sized>(log: &L, tenant: &str) {
    assert_eq!(log.next_seq(tenant).unwrap(), 1, "next_seq of an empty log");
    assert_eq!(
        log.first_seq(tenant).unwrap(),
        1,
        "first_seq of an empty log"
    );
    assert!(log.read_from(tenant, 1, 10).unwrap().is_empty());
    assert!(log.recent_ids(tenant, 0).unwrap().is_empty());
}

/// Appended and synced events read back whole, in order, at their positions; reads are
/// windowed by `from` and `max`.
pub fn round_trip<L: EventLog + ?Sized>(log: &L, tenant: &str) {
    let want = append_all(log, tenant, &trip_batches());
    assert_eq!(log.next_seq(tenant).unwrap(), 9);
    assert_eq!(log.first_seq(tenant).unwrap(), 1);
    assert_eq!(log.read_from(tenant, 1, 100).unwrap(), want);
    assert_eq!(log.read_from(tenant, 4, 2).unwrap(), want[3..5].to_vec());
    assert_eq!(
        log.read_from(tenant, 0, 1).unwrap(),
        want[..1].to_vec(),
        "from 0 reads from 1"
    );
    assert!(
        log.read_from(tenant, 9, 10).unwrap().is_empty(),
        "nothing past the head"
    );
    assert!(
        log.read_from(tenant, 1, 0).unwrap().is_empty(),
        "max 0 reads nothing"
    );
}

/// `recent_ids` lists the ids accepted at or after `since_ms`, oldest first.
pub fn recent_ids<L: EventLog + ?Sized>(log: &L, tenant: &str) {
    append_all(log, tenant, &trip_batches());
    let recent = log.recent_ids(tenant, 3_000).unwrap();
    assert_eq!(
        recent,
        vec![
            ("ev-7".to_string(), 7, 3_000),
            ("ev-8".to_string(), 8, 3_000)
        ]
    );
    let all = log.recent_ids(tenant, 0).unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[0], ("ev-1".to_string(), 1, 1_000));
    assert!(
        all.windows(2).all(|w| w[0].1 < w[1].1),
        "oldest first: {all:?}"
    );
    assert!(log.recent_ids(tenant, 3_001).unwrap().is_empty());
}

/// One tenant's positions and entries are its own.
pub fn tenants_are_separate<L: EventLog + ?Sized>(log: &L, a: &str, b: &str) {
    log.append(a, 1, &[(5, "x", "{}"), (5, "y", "{}")]).unwrap();
    log.append(b, 1, &[(6, "x", "[1]")]).unwrap();
    log.sync().unwrap();
    assert_eq!(log.next_seq(a).unwrap(), 3);
    assert_eq!(log.next_seq(b).unwrap(), 2);
    let got = log.read_from(b, 1, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].seq, got[0].accepted_ms, got[0].json.as_str()),
        (1, 6, "[1]")
    );
}

/// Many events with large bodies, in one append and over several, read back in chunks.
pub fn large_batches<L: EventLog + ?Sized>(log: &L, tenant: &str) {
    let body = "x".repeat(2_000);
    let events: Vec<(String, String)> = (1..=300u64)
        .map(|s| (format!("big-{s}"), format!(r#"{{"n":{s},"pad":"{body}"}}"#)))
        .collect();
    let batches = vec![
        (1, 10, events[..250].to_vec()),
        (251, 11, events[250..].to_vec()),
    ];
    let want = append_all(log, tenant, &batches);
    let mut got = Vec::new();
    while got.len() < want.len() {
        let chunk = log.read_from(tenant, got.len() as u64 + 1, 64).unwrap();
        assert!(
            !chunk.is_empty() && chunk.len() <= 64,
            "chunk of {}",
            chunk.len()
        );
        got.extend(chunk);
    }
    assert_eq!(got, want);
    assert_eq!(log.next_seq(tenant).unwrap(), 301);
}

/// What was synced is there after the log is opened again, and appending continues at
/// the same position.
pub fn survives_reopen<L: EventLog>(open: &mut dyn FnMut() -> L, tenant: &str) {
    let log = open();
    let want: Vec<LogEntry> = {
        let mut w = Vec::new();
        for (first, ms, events) in trip_batches() {
            for (i, (id, json)) in events.into_iter().enumerate() {
                w.push(LogEntry {
                    seq: first + i as u64,
                    accepted_ms: ms,
                    event_id: id,
                    json,
                });
            }
        }
        w
    };
    assert_eq!(log.read_from(tenant, 1, 100).unwrap(), want, "after reopen");
    assert_eq!(log.next_seq(tenant).unwrap(), 9);
    log.append(tenant, 9, &[(4_000, "ev-9", "{}")]).unwrap();
    log.sync().unwrap();
    assert_eq!(log.next_seq(tenant).unwrap(), 10);
    assert_eq!(
        log.recent_ids(tenant, 4_000).unwrap(),
        vec![("ev-9".to_string(), 9, 4_000)]
    );
}
