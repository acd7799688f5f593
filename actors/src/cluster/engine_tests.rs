//! The engine API the service's lease loop uses: start and stop one tenant on a running
//! engine (on the embedded log here; `tests/cluster.rs` runs it over JetStream).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use crate::{Engine, EngineConfig, EngineError, Event, Outcome};

fn event(id: &str) -> Event {
    let v = json!({
        "event_id": id, "type": "match.completed", "actor": {"user_id": "u1"},
        "occurred_at": "2025-11-18T12:34:56Z", "attrs": {"score": 1}
    });
    Event::from_json(v, "acme", Utc::now()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_stops_and_starts_again_where_its_log_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_sled(dir.path(), 8 << 20, false, &[], EngineConfig::default())
        .await
        .unwrap();
    // Not started: nothing runs for it.
    let refused = engine.ingest("acme", vec![event("a")]).await;
    assert!(
        matches!(refused, Err(EngineError::UnknownTenant(_))),
        "{refused:?}"
    );
    engine.start_tenant("acme").await.unwrap();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "1"}],
        "aggregation": "count", "timeframes": ["all_time"]});
    engine.put_leaderboard("acme", "b", &def).await.unwrap();
    let out = engine.ingest("acme", vec![event("a"), event("b")]).await;
    assert_eq!(
        out.unwrap(),
        [Outcome::Accepted { seq: 1 }, Outcome::Accepted { seq: 2 }]
    );
    // Started while running (an idle actor left by someone else): rebuilt from the log.
    engine.start_tenant("acme").await.unwrap();
    let out = engine.ingest("acme", vec![event("b")]).await;
    assert_eq!(out.unwrap(), [Outcome::Duplicate { seq: 2 }]);
    // Stopped: its actor, boards and feed are gone.
    engine.stop_tenant("acme").await.unwrap();
    let refused = engine.ingest("acme", vec![event("c")]).await;
    assert!(
        matches!(refused, Err(EngineError::UnknownTenant(_))),
        "{refused:?}"
    );
    assert!(engine.durable_head("acme").is_none());
    assert!(engine.board_applied("acme", "b").await.is_err());
    // Started again: position and dedupe window come back from the log, the stored board
    // runs again and catches up.
    engine.start_tenant("acme").await.unwrap();
    let out = engine.ingest("acme", vec![event("a"), event("c")]).await;
    assert_eq!(
        out.unwrap(),
        [Outcome::Duplicate { seq: 1 }, Outcome::Accepted { seq: 3 }]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.board_applied("acme", "b").await.ok() != Some(3) {
        assert!(Instant::now() < deadline, "board never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
}
