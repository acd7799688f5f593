//! Actor suite for the engine: ingest, dedupe, durability handoff, supervision, restart.

use super::*;
use crate::store::{NewEntry, SledLog};
use chrono::Utc;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

fn event(id: &str) -> Event {
    let v = json!({
        "event_id": id, "type": "match.completed", "actor": {"user_id": "u1"},
        "occurred_at": "2025-11-18T12:34:56Z", "attrs": {"score": 1}
    });
    Event::from_json(v, "acme", Utc::now()).unwrap()
}

/// Ingests events with these ids for `acme` and asserts the outcomes, in order.
async fn ingest_expect(engine: &Engine, ids: &[&str], expect: &[Outcome]) {
    let out = engine
        .ingest("acme", ids.iter().map(|id| event(id)).collect())
        .await
        .unwrap();
    assert_eq!(out, expect, "ingesting {ids:?}");
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Open the log in `dir`, waiting (up to 4 s) for an engine shut down just before to have
/// released the store's file lock: its actors let go of it asynchronously.
async fn open_log(dir: &std::path::Path) -> SledLog {
    let mut opened = SledLog::open(dir, 1 << 22);
    for _ in 0..200 {
        if opened.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        opened = SledLog::open(dir, 1 << 22);
    }
    opened.unwrap()
}

async fn start(dir: &std::path::Path) -> Engine {
    let log = Arc::new(open_log(dir).await);
    let db = log.store();
    let config = EngineConfig {
        checkpoint_interval: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    Engine::start(log, db, &["acme".into(), "other".into()], config)
        .await
        .unwrap()
}

#[tokio::test]
async fn accepts_then_dedupes_and_advances_head() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    let expect = [
        Outcome::Accepted { seq: 1 },
        Outcome::Accepted { seq: 2 },
        Outcome::Duplicate { seq: 1 },
    ];
    ingest_expect(&engine, &["a", "b", "a"], &expect).await;
    let again = engine.ingest("acme", vec![event("b")]).await.unwrap();
    assert_eq!(again, vec![Outcome::Duplicate { seq: 2 }]);
    assert_eq!(*engine.durable_head("acme").unwrap().borrow(), 2);
    // Tenants are independent: the same id is new for another tenant.
    let other = engine.ingest("other", vec![event("a")]).await.unwrap();
    assert_eq!(other, vec![Outcome::Accepted { seq: 1 }]);
    assert_eq!(engine.read_log("acme", 1, 10).unwrap().len(), 2);
    assert!(matches!(
        engine.ingest("nobody", vec![event("a")]).await,
        Err(EngineError::UnknownTenant(_))
    ));
}

#[tokio::test]
async fn dedupe_window_and_positions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = start(dir.path()).await;
        engine
            .ingest("acme", vec![event("a"), event("b")])
            .await
            .unwrap();
        engine.shutdown().await;
    }
    // Give the supervisor a moment to stop before the store is reopened.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let engine = start(dir.path()).await;
    let expect = [Outcome::Duplicate { seq: 2 }, Outcome::Accepted { seq: 3 }];
    ingest_expect(&engine, &["b", "c"], &expect).await;
}

/// The rebuild reads the log newest first on its own thread and hands the ids over in
/// chunks: across many records and chunk boundaries, with a window smaller than the log,
/// a restart keeps exactly the newest `capacity` ids at their positions and forgets the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_keeps_the_newest_ids_of_a_long_log() {
    let dir = tempfile::tempdir().unwrap();
    let start_capped = |capacity: usize| {
        let dir = dir.path().to_owned();
        async move {
            let log = Arc::new(open_log(&dir).await);
            let db = log.store();
            let config = EngineConfig {
                dedupe_capacity: capacity,
                ..EngineConfig::default()
            };
            Engine::start(log, db, &["acme".into()], config)
                .await
                .unwrap()
        }
    };
    let total = 20_000usize;
    let capacity = 12_000usize;
    {
        let engine = start_capped(total).await;
        for first in (0..total).step_by(100) {
            let ids: Vec<String> = (first..first + 100).map(|i| format!("r-{i}")).collect();
            let out = engine
                .ingest("acme", ids.iter().map(|id| event(id)).collect())
                .await
                .unwrap();
            assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
        }
        engine.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let engine = start_capped(capacity).await;
    // Newest kept (at their own positions, which are 1-based in log order), oldest forgotten.
    let probe = [
        total - 1,
        total - 8_192,
        total - capacity,
        total - capacity - 1,
        0,
    ];
    let ids: Vec<String> = probe.iter().map(|i| format!("r-{i}")).collect();
    let out = engine
        .ingest("acme", ids.iter().map(|id| event(id)).collect())
        .await
        .unwrap();
    let next = total as u64 + 1;
    assert_eq!(
        out,
        [
            Outcome::Duplicate { seq: total as u64 },
            Outcome::Duplicate {
                seq: (total - 8_192) as u64 + 1
            },
            Outcome::Duplicate {
                seq: (total - capacity) as u64 + 1
            },
            Outcome::Accepted { seq: next },
            Outcome::Accepted { seq: next + 1 },
        ]
    );
}

#[tokio::test]
async fn panicking_tenant_actor_is_restarted_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    engine.ingest("acme", vec![event("a")]).await.unwrap();
    let before = engine.tenant_actor("acme").unwrap();
    before.cast(crate::tenant::TenantMsg::Panic).unwrap();
    eventually("tenant actor replaced", || {
        engine.tenant_actor("acme").map(|a| a.get_id()) != Some(before.get_id())
    })
    .await;
    let expect = [Outcome::Duplicate { seq: 1 }, Outcome::Accepted { seq: 2 }];
    ingest_expect(&engine, &["a", "z"], &expect).await;
}

/// A log whose `sync` or reads fail on demand (recording when each read was tried), to
/// prove nothing is acknowledged without fsync and that failing boards back off, and whose
/// `recent_ids` can be held (a slow dedupe rebuild). It always claims health, so a failure
/// is met on the commit or read path itself.
struct FaultyLog {
    inner: SledLog,
    fail_sync: AtomicBool,
    fail_reads: AtomicBool,
    hold_ids: AtomicBool,
    reads: std::sync::Mutex<Vec<std::time::Instant>>,
}

impl FaultyLog {
    fn new(inner: SledLog) -> FaultyLog {
        FaultyLog {
            inner,
            fail_sync: AtomicBool::new(false),
            fail_reads: AtomicBool::new(false),
            hold_ids: AtomicBool::new(false),
            reads: Default::default(),
        }
    }
}

impl EventLog for FaultyLog {
    fn append(&self, t: &str, s: u64, ev: &[NewEntry<'_>]) -> Result<(), EngineError> {
        self.inner.append(t, s, ev)
    }
    fn sync(&self) -> Result<(), EngineError> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(EngineError::Storage("injected fsync failure".into()));
        }
        self.inner.sync()
    }
    fn read_from(&self, t: &str, f: u64, m: usize) -> Result<Vec<LogEntry>, EngineError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            self.reads.lock().unwrap().push(std::time::Instant::now());
            return Err(EngineError::Storage("injected read failure".into()));
        }
        self.inner.read_from(t, f, m)
    }
    fn next_seq(&self, t: &str) -> Result<u64, EngineError> {
        self.inner.next_seq(t)
    }
    fn recent_ids(&self, t: &str, s: i64) -> Result<Vec<(String, u64, i64)>, EngineError> {
        while self.hold_ids.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.recent_ids(t, s)
    }
    fn healthy(&self) -> bool {
        true
    }
}

/// While a restarted tenant actor rebuilds its dedupe window the engine is open and says it
/// is starting; an event sent meanwhile waits, and is then deduplicated against the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_the_dedupe_rebuild_and_starting_says_so() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = start(dir.path()).await;
        ingest_expect(&engine, &["a"], &[Outcome::Accepted { seq: 1 }]).await;
        engine.shutdown().await;
    }
    let log = Arc::new(FaultyLog::new(open_log(dir.path()).await));
    log.hold_ids.store(true, Ordering::SeqCst);
    let db = log.inner.store();
    let engine = Engine::start(log.clone(), db, &["acme".into()], EngineConfig::default())
        .await
        .unwrap();
    assert_eq!(engine.starting(), 1, "acme is rebuilding");
    let pending = tokio::spawn({
        let engine = engine.clone();
        async move { engine.ingest("acme", vec![event("a"), event("b")]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pending.is_finished(),
        "no answer before the window is rebuilt"
    );
    log.hold_ids.store(false, Ordering::SeqCst);
    let out = pending.await.unwrap().unwrap();
    assert_eq!(
        out,
        [Outcome::Duplicate { seq: 1 }, Outcome::Accepted { seq: 2 }]
    );
    assert_eq!(engine.starting(), 0);
}

#[tokio::test]
async fn failed_fsync_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(FaultyLog::new(SledLog::open(dir.path(), 1 << 22).unwrap()));
    // State in a database of its own: `persist` must sync it itself.
    let state_dir = tempfile::tempdir().unwrap();
    let db = crate::stores::SledStore::open(state_dir.path(), 1 << 20).unwrap();
    let engine = Engine::start(log.clone(), db, &["acme".into()], EngineConfig::default())
        .await
        .unwrap();
    engine.ingest("acme", vec![event("a")]).await.unwrap();
    log.fail_sync.store(true, Ordering::SeqCst);
    assert!(engine.ingest("acme", vec![event("b")]).await.is_err());
    assert_eq!(*engine.durable_head("acme").unwrap().borrow(), 1);
}

async fn top(engine: &Engine, board: &str) -> Vec<(String, f64)> {
    use crate::leaderboard::query::WindowSel;
    use crate::leaderboard::window::Timeframe;
    match engine
        .standings(
            "acme",
            board,
            Timeframe::AllTime,
            WindowSel::Current,
            0,
            100,
        )
        .await
    {
        Ok(s) => s
            .entries
            .into_iter()
            .map(|e| (e.user_id, e.score))
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn eventually_top(engine: &Engine, board: &str, want: Vec<(String, f64)>) {
    for _ in 0..300 {
        if top(engine, board).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "board {board}: wanted {want:?}, have {:?}",
        top(engine, board).await
    );
}

/// Ingests `events` for `acme` and waits until board `b` shows `want`.
/// (event id, user, score) per event; (user, score) per wanted entry.
async fn score_and_see(engine: &Engine, events: &[(&str, &str, i64)], want: &[(&str, f64)]) {
    let events = events.iter().map(|(id, u, p)| scored(id, u, *p)).collect();
    engine.ingest("acme", events).await.unwrap();
    let want = want.iter().map(|(u, p)| (u.to_string(), *p)).collect();
    eventually_top(engine, "b", want).await;
}

fn scored(id: &str, user: &str, score: i64) -> Event {
    let v = json!({
        "event_id": id, "type": "match.completed", "actor": {"user_id": user},
        "occurred_at": Utc::now().to_rfc3339(), "attrs": {"score": score}
    });
    Event::from_json(v, "acme", Utc::now()).unwrap()
}

#[tokio::test]
async fn panicking_board_restarts_from_checkpoint_and_log_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}]});
    engine.put_leaderboard("acme", "b", &def).await.unwrap();
    score_and_see(
        &engine,
        &[("1", "ann", 5), ("2", "bo", 3)],
        &[("ann", 5.0), ("bo", 3.0)],
    )
    .await;
    // Let a checkpoint happen, add more, then crash the board.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    score_and_see(&engine, &[("3", "bo", 10)], &[("bo", 13.0), ("ann", 5.0)]).await;
    let before = engine.board("acme", "b").unwrap();
    before
        .cast(crate::leaderboard::actor::LeaderboardMsg::Panic)
        .unwrap();
    eventually("board replaced", || {
        engine.board("acme", "b").map(|a| a.get_id()) != Some(before.get_id())
    })
    .await;
    eventually_top(&engine, "b", vec![("bo".into(), 13.0), ("ann".into(), 5.0)]).await;
    score_and_see(&engine, &[("4", "ann", 20)], &[("ann", 25.0), ("bo", 13.0)]).await;
    assert_eq!(engine.board_applied("acme", "b").await.unwrap(), 4);
}

#[tokio::test]
async fn boards_recover_after_an_engine_restart() {
    let dir = tempfile::tempdir().unwrap();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}]});
    {
        let engine = start(dir.path()).await;
        engine.put_leaderboard("acme", "b", &def).await.unwrap();
        score_and_see(&engine, &[("1", "ann", 5)], &[("ann", 5.0)]).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        score_and_see(&engine, &[("2", "ann", 1)], &[("ann", 6.0)]).await;
        engine.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let engine = start(dir.path()).await;
    eventually_top(&engine, "b", vec![("ann".into(), 6.0)]).await;
}

/// A board rebuilt from a long log (several catch-up chunks) answers no read before it has
/// replayed what was durable when it started: the very first query, sent as soon as the PUT
/// returns, sees every event (it waits, parked, meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilding_board_answers_reads_only_once_it_has_replayed_its_start_head() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    let (n, users) = (6_000, 8);
    for batch in 0..n / 100 {
        let events = (0..100)
            .map(|i| {
                let k = batch * 100 + i;
                scored(&format!("e{k}"), &format!("u{}", k % users), 1)
            })
            .collect();
        engine.ingest("acme", events).await.unwrap();
    }
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}]});
    engine.put_leaderboard("acme", "b", &def).await.unwrap();
    let mut first = top(&engine, "b").await;
    first.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, f64)> = (0..users)
        .map(|u| (format!("u{u}"), (n / users) as f64))
        .collect();
    assert_eq!(first, want, "the first answer holds all {n} events");
    assert_eq!(engine.board_applied("acme", "b").await.unwrap(), n as u64);
}

#[tokio::test]
async fn current_views_follow_the_window_as_it_rolls_over() {
    use crate::leaderboard::views::{ViewFrame, ViewKey, ViewKind};
    use crate::leaderboard::window::Timeframe;
    use std::sync::atomic::AtomicI64;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path(), 1 << 22).unwrap());
    let db = log.store();
    // A clock we can move: real time plus an offset.
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let clock: crate::leaderboard::clock::Clock =
        Arc::new(move || Utc::now() + chrono::Duration::milliseconds(o.load(Ordering::SeqCst)));
    let config = EngineConfig {
        clock: clock.clone(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(log, db, &["acme".into()], config)
        .await
        .unwrap();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}],
                     "timeframes": ["hourly", "all_time"]});
    engine.put_leaderboard("acme", "b", &def).await.unwrap();
    score_and_see(&engine, &[("1", "ann", 5)], &[("ann", 5.0)]).await;
    let key = ViewKey {
        tf: Timeframe::Hourly,
        window: None,
        kind: ViewKind::Top(5),
    };
    let (snap, mut rx) = engine.subscribe_view("acme", "b", key).await.unwrap();
    let first = Timeframe::Hourly.window_of(clock());
    assert!(
        matches!(&snap, ViewFrame::Snapshot { window, entries, .. } if *window == first && entries.len() == 1)
    );
    // An hour later the current window is a new, empty one: a snapshot of it is pushed.
    offset.store(3_600_000, Ordering::SeqCst);
    let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match &frame.frame {
        ViewFrame::Snapshot {
            window,
            entries,
            seq,
        } => {
            assert_eq!(*window, Timeframe::Hourly.window_of(clock()));
            assert_ne!(*window, first);
            assert!(entries.is_empty());
            assert_eq!(*seq, snap.seq() + 1);
        }
        other => panic!("expected a rollover snapshot, got {other:?}"),
    }
}

/// A board that fails every time it starts (its log cannot be read) restarts with growing
/// delays, not in a loop; once the log reads again it recovers and scores everything.
#[tokio::test]
async fn a_board_failing_repeatedly_restarts_with_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Events logged before the engine starts: the new board must read them from the log.
        let log = SledLog::open(dir.path(), 1 << 22).unwrap();
        let (a, b) = (scored("1", "ann", 5), scored("2", "bo", 3));
        let ms = Utc::now().timestamp_millis();
        log.append("acme", 1, &[(ms, "1", &a.json), (ms, "2", &b.json)])
            .unwrap();
        log.sync().unwrap();
    }
    let inner = SledLog::open(dir.path(), 1 << 22).unwrap();
    let db = inner.store();
    let log = Arc::new(FaultyLog::new(inner));
    log.fail_reads.store(true, Ordering::SeqCst);
    let config = EngineConfig {
        restart: crate::supervisor::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(320),
            reset_after: Duration::from_secs(60),
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(log.clone(), db, &["acme".into()], config)
        .await
        .unwrap();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}]});
    engine.put_leaderboard("acme", "b", &def).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reads = log.reads.lock().unwrap().clone();
    let gaps: Vec<u128> = reads
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // Without backoff this is thousands of restarts; with 20 ms doubling to a 320 ms cap
    // (each delay in [d/2, d]: at least 10, 20, 40, 80, then 160 ms) 1.5 s holds at most
    // 12 delays.
    assert!(
        (4..=13).contains(&reads.len()),
        "{} failed starts, gaps {gaps:?} ms",
        reads.len()
    );
    // Delay k is at least initial·2^k / 2 (jitter may make one gap shorter than the one
    // before it, which is why the bound, not the order, is checked).
    for (k, gap) in gaps.iter().take(4).enumerate() {
        assert!(*gap >= 10 << k, "delay {k} ≥ {} ms: {gaps:?}", 10 << k);
    }
    assert!(
        *gaps.last().unwrap() >= 160,
        "later delays reach the cap's range: {gaps:?}"
    );
    // The disk heals: the next restart succeeds and the board scores the whole log.
    log.fail_reads.store(false, Ordering::SeqCst);
    eventually_top(&engine, "b", vec![("ann".into(), 5.0), ("bo".into(), 3.0)]).await;
}
