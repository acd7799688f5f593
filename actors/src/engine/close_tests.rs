//! Actor suite for window closes: a movable clock rolls an hourly window past end + grace;
//! the close grants once and enters the log once, an engine restarted after the close grants
//! nothing twice, and a window that closed before the definition existed is recorded without
//! rewards.

use super::*;
use crate::leaderboard::window::{Timeframe, WindowKey};
use crate::store::SledLog;
use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};

async fn start(dir: &std::path::Path, offset: &Arc<AtomicI64>) -> Engine {
    let log = Arc::new(SledLog::open(dir, 1 << 22).unwrap());
    let db = log.store();
    let o = offset.clone();
    let clock: crate::leaderboard::clock::Clock =
        Arc::new(move || Utc::now() + chrono::Duration::milliseconds(o.load(Ordering::SeqCst)));
    let config = EngineConfig {
        clock,
        // No checkpoint during the test: a restart rebuilds the board from the log and
        // freezes the closed window again.
        checkpoint_interval: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    Engine::start(log, db, &["acme".into()], config)
        .await
        .unwrap()
}

fn ev(id: &str, user: &str, score: i64, at: chrono::DateTime<Utc>) -> Event {
    let v = json!({"event_id": id, "type": "match.completed", "actor": {"user_id": user},
                   "occurred_at": at.to_rfc3339(), "attrs": {"score": score}});
    Event::from_json(v, "acme", Utc::now()).unwrap()
}

async fn closed(
    engine: &Engine,
    board: &str,
    key: WindowKey,
) -> crate::leaderboard::close::CloseRecord {
    for _ in 0..400 {
        if let Ok(r) = engine.window_results("acme", board, Timeframe::Hourly, key) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("window {key} of {board} never closed");
}

fn balance(engine: &Engine, user: &str) -> (u64, usize) {
    engine
        .rewards("acme")
        .unwrap()
        .wallet(user)
        .unwrap()
        .map(|w| (w.balance, w.grants.len()))
        .unwrap_or((0, 0))
}

fn close_events(engine: &Engine) -> usize {
    engine
        .read_log("acme", 1, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.json.contains("\"leaderboard.window_closed\""))
        .count()
}

#[tokio::test]
async fn a_close_grants_once_and_a_restart_grants_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let key = Timeframe::Hourly.window_of(hour);
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}],
                     "timeframes": ["hourly", "all_time"], "late_grace_seconds": 60,
                     "rewards": [{"ranks": [1, 1], "coins": 100}, {"top_percent": 100, "coins": 1}]});
    {
        let engine = start(dir.path(), &offset).await;
        engine.put_leaderboard("acme", "b", &def).await.unwrap();
        engine
            .ingest(
                "acme",
                vec![ev("1", "ann", 9, hour), ev("2", "bob", 3, hour)],
            )
            .await
            .unwrap();
        // Roll the clock past end + grace + the 5 s watermark margin.
        let to_close = key.label_end().unwrap() + TimeDelta::seconds(70) - Utc::now();
        offset.store(to_close.num_milliseconds(), Ordering::SeqCst);
        let r = closed(&engine, "b", key).await;
        assert!(r.rewarded);
        let grants: Vec<(&str, u64)> = r
            .grants
            .iter()
            .map(|g| (g.user_id.as_str(), g.coins))
            .collect();
        assert_eq!(grants, [("ann", 100), ("bob", 1)]);
        assert_eq!(
            (balance(&engine, "ann"), balance(&engine, "bob")),
            ((100, 1), (1, 1))
        );
        for _ in 0..200 {
            if close_events(&engine) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(close_events(&engine), 1);
        // The close event does not score on this catch-all board.
        let all = engine
            .standings(
                "acme",
                "b",
                Timeframe::AllTime,
                crate::leaderboard::query::WindowSel::Current,
                0,
                10,
            )
            .await
            .unwrap();
        assert_eq!(all.total, 2);
        engine.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Restarted: the board replays the log and freezes the window again; the close is found,
    // nothing is granted or emitted twice.
    let engine = start(dir.path(), &offset).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        (balance(&engine, "ann"), balance(&engine, "bob")),
        ((100, 1), (1, 1))
    );
    assert_eq!(close_events(&engine), 1);
    assert_eq!(closed(&engine, "b", key).await.grants.len(), 2);
    // A board defined now over the same log: that window closed before it existed.
    engine.put_leaderboard("acme", "late", &def).await.unwrap();
    let r = closed(&engine, "late", key).await;
    assert!(!r.rewarded && r.grants.is_empty(), "{r:?}");
    assert_eq!(r.total, 2);
    assert_eq!(balance(&engine, "ann"), (100, 1));
}
