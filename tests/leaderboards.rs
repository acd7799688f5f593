//! Black-box leaderboard tests through the real binary: definitions, scoring, windows,
//! late events, rank queries, and SIGKILL recovery.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as Dur, Timelike, Utc};
use common::*;
use serde_json::{json, Value};

/// Events in the past at fixed offsets from a base two days back at 12:00 UTC.
fn base() -> DateTime<Utc> {
    (Utc::now() - Dur::days(2))
        .with_hour(12)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
}

fn match_event(
    id: &str,
    user: &str,
    region: &str,
    mode: &str,
    score: i64,
    kills: i64,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "tenant_id": "placeholder", "event_id": id, "type": "match.completed",
        "actor": {"user_id": user, "metadata": {"region": region}},
        "occurred_at": at.to_rfc3339(),
        "attrs": {"score": score, "kills": kills, "mode": mode}
    })
}

#[tokio::test]
async fn scores_windows_and_ranks_match_a_hand_computed_answer() {
    let (_dir, server, c) = fresh();
    let (s, body) = c
        .put_board(
            "score",
            &json!({
                "name": "Total score",
                "rules": [{"event_type": "match.completed", "points_expression": "attrs.score"}],
                "timeframes": ["hourly", "daily", "weekly", "all_time"],
                "late_grace_seconds": 30 * 86400
            }),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = c.put_board("ranked", &json!({
        "name": "Weekly ranked score",
        "scope": {"actor.metadata.region": {"eq": "na-east"}},
        "rules": [{"event_type": "match.completed", "conditions": {"attrs.mode": {"eq": "ranked"}},
                   "points_expression": "attrs.score * 0.1 + max(attrs.kills - 3, 0)"}],
        "aggregation": "sum", "timeframes": ["hourly", "daily", "weekly", "all_time"],
        "sort_order": "desc", "late_grace_seconds": 30 * 86400
    })).await;
    assert_eq!(s, 201, "{body}");

    let b = base();
    // The seed's own sample event, at 12:10.
    let mut seed = json!({
      "tenant_id": "placeholder", "event_id": "evt_01JBQ56ZGTKNC3XN8R8KZZR4N5", "type": "match.completed",
      "actor": {"user_id": "user-123", "metadata": {"region": "na-east", "platform": "ios"}},
      "subject": {"type": "match", "id": "match-987"},
      "attrs": {"score": 1550, "duration_seconds": 480, "victory": true}
    });
    seed["occurred_at"] = json!((b + Dur::minutes(10)).to_rfc3339());
    let events = vec![
        seed,
        match_event(
            "e2",
            "alice",
            "na-east",
            "ranked",
            1000,
            5,
            b + Dur::minutes(5),
        ),
        match_event(
            "e3",
            "bob",
            "na-east",
            "ranked",
            800,
            10,
            b + Dur::minutes(20),
        ),
        match_event(
            "e4",
            "alice",
            "na-east",
            "casual",
            500,
            0,
            b + Dur::minutes(30),
        ),
        match_event(
            "e5",
            "carol",
            "eu-west",
            "ranked",
            1200,
            3,
            b + Dur::minutes(40),
        ),
        match_event(
            "e6",
            "bob",
            "na-east",
            "ranked",
            300,
            4,
            b - Dur::minutes(30),
        ),
        match_event("e7", "dave", "na-east", "casual", 2000, 0, b - Dur::days(7)),
    ];
    let (s, body) = c.post("/v1/events/bulk", &json!({"events": events})).await;
    assert_eq!((s, body["accepted"].as_u64()), (202, Some(7)), "{body}");

    let hour = b.format("%Y-%m-%dT%H").to_string();
    let day = b.format("%Y-%m-%d").to_string();
    let week = format!("{}-W{:02}", b.iso_week().year(), b.iso_week().week());

    c.expect_standings(
        "score",
        &format!("timeframe=hourly&window={hour}&limit=10"),
        ranked(&[
            ("user-123", 1550.0),
            ("alice", 1500.0),
            ("carol", 1200.0),
            ("bob", 800.0),
        ]),
    )
    .await;
    // The day and the ISO week hold the same events; all time has dave's, a week older.
    let week_scores = [
        ("user-123", 1550.0),
        ("alice", 1500.0),
        ("carol", 1200.0),
        ("bob", 1100.0),
    ];
    let all_time = [&[("dave", 2000.0)][..], &week_scores].concat();
    for (query, want) in [
        (format!("timeframe=daily&window={day}"), &week_scores[..]),
        (format!("timeframe=weekly&window={week}"), &week_scores),
        ("timeframe=all_time&window=all_time".to_owned(), &all_time),
    ] {
        c.expect_standings("score", &query, ranked(want)).await;
    }
    // Pagination.
    c.expect_standings(
        "score",
        "timeframe=all_time&limit=2&offset=1",
        vec![(2, "user-123".into(), 1550.0), (3, "alice".into(), 1500.0)],
    )
    .await;
    // Ranked: 1000*0.1 + max(5-3, 0) = 102; 800*0.1 + 7 = 87; 300*0.1 + 1 = 31.
    c.expect_standings(
        "ranked",
        &format!("timeframe=hourly&window={hour}"),
        ranked(&[("alice", 102.0), ("bob", 87.0)]),
    )
    .await;
    c.expect_standings(
        "ranked",
        &format!("timeframe=daily&window={day}"),
        ranked(&[("bob", 118.0), ("alice", 102.0)]),
    )
    .await;

    let (s, v) = c.standings("score", "timeframe=all_time").await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["leaderboard"].as_str(),
            v["timeframe"].as_str(),
            v["window"].as_str(),
            v["total"].as_u64()
        ),
        (Some("score"), Some("all_time"), Some("all_time"), Some(5))
    );

    // A user's rank and neighbours.
    let (s, u) = c
        .user("score", "alice", "timeframe=all_time&around=1")
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        (u["rank"].as_u64(), u["score"].as_f64()),
        (Some(3), Some(1500.0))
    );
    assert_eq!(
        table(&u),
        vec![
            (2, "user-123".into(), 1550.0),
            (3, "alice".into(), 1500.0),
            (4, "carol".into(), 1200.0)
        ]
    );
    let (s, u) = c
        .user(
            "score",
            "bob",
            &format!("timeframe=hourly&window={hour}&around=1"),
        )
        .await;
    assert_eq!((s, u["rank"].as_u64()), (200, Some(4)), "{u}");
    assert_eq!(
        u["entries"].as_array().unwrap().len(),
        2,
        "bob is last: one neighbour above"
    );

    // 404s: unknown board, user without a score there, window with nothing in it.
    let (s, e) = c.standings("nope", "timeframe=daily").await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (s, e) = c.user("ranked", "carol", "timeframe=all_time").await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (s, e) = c
        .standings("score", "timeframe=daily&window=2001-01-01")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (s, e) = c.standings("score", "timeframe=monthly").await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    // 400s: bad timeframe, window key of the wrong shape, limit out of range, unknown param.
    let bad = [
        "timeframe=yearly",
        "timeframe=daily&window=2025-W47",
        "limit=0",
        "limit=5000",
        "colour=red",
    ];
    c.assert_queries_invalid("/v1/leaderboards/score/standings", &bad)
        .await;
    // Another tenant sees none of it.
    let other = Client::new(&server.base, OTHER, OTHER_SECRET);
    let (s, e) = other.standings("score", "timeframe=all_time").await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
}

#[tokio::test]
async fn definitions_are_validated_listed_replaced_and_deleted() {
    let (dir, mut server, c) = fresh();
    let good =
        json!({"rules": [{"event_type": "*", "points_expression": "1"}], "aggregation": "count"});
    for (def, needle) in [
        (
            json!({"rules": [{"event_type": "*", "points_expression": "attrs.score * (2"}]}),
            "rules[0].points_expression: at position",
        ),
        (
            json!({"rules": [{"event_type": "*", "points_expression": "1"}], "aggregation": "median"}),
            "aggregation",
        ),
        (
            json!({"rules": [{"event_type": "*", "points_expression": "1"}], "timeframes": ["yearly"]}),
            "timeframes[0]",
        ),
        (
            json!({"rules": [{"event_type": "*", "points_expression": "1", "conditions": {"attrs.x": {"like": 1}}}]}),
            "rules[0].conditions",
        ),
        (json!({"rules": []}), "rules"),
    ] {
        let (s, e) = c.put_board("bad", &def).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{e} lacks {needle}"
        );
    }
    let (s, e) = c.put_board("bad", &good).await; // bad JSON body below
    assert_eq!(s, 201, "{e}");
    assert_eq!(c.delete("/v1/leaderboards/bad").await.0, 204);
    assert_eq!(c.delete("/v1/leaderboards/bad").await.0, 404);

    assert_eq!(c.put_board("count", &good).await.0, 201);
    assert_eq!(
        c.put_board("count", &good).await.0,
        200,
        "identical PUT is not a create"
    );
    for i in 0..3 {
        c.post("/v1/events", &event(&format!("c{i}"), "amy", 1))
            .await;
    }
    c.expect_standings("count", "", ranked(&[("amy", 3.0)]))
        .await;
    let (s, list) = c.get("/v1/leaderboards", "").await;
    assert_eq!(s, 200);
    assert_eq!(list["leaderboards"].as_array().unwrap().len(), 1);
    let (s, got) = c.get("/v1/leaderboards/count", "").await;
    assert_eq!((s, got["aggregation"].as_str()), (200, Some("count")));

    // Changing the definition rebuilds it from the retained log.
    let sum = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score * 10"}]});
    assert_eq!(c.put_board("count", &sum).await.0, 200);
    c.expect_standings("count", "", ranked(&[("amy", 30.0)]))
        .await;

    // Definitions and standings survive a restart.
    server.kill();
    drop(server);
    let server = Server::start(dir.path());
    let c = server.client();
    c.expect_standings("count", "", ranked(&[("amy", 30.0)]))
        .await;
}

#[tokio::test]
async fn late_events_land_inside_grace_and_not_outside() {
    let (_dir, _server, c) = fresh();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}],
                     "timeframes": ["hourly", "all_time"], "late_grace_seconds": 5400});
    assert_eq!(c.put_board("late", &def).await.0, 201);
    // 61 minutes ago: its hour has ended (≤ 61 min ago), inside the 90 min grace.
    let inside = Utc::now() - Dur::minutes(61);
    // 3 hours ago: its hour ended ≥ 2 h ago, past the grace.
    let outside = Utc::now() - Dur::hours(3);
    let mut e1 = event("late-in", "ina", 5);
    e1["occurred_at"] = json!(inside.to_rfc3339());
    let mut e2 = event("late-out", "otto", 7);
    e2["occurred_at"] = json!(outside.to_rfc3339());
    c.post("/v1/events/bulk", &json!({"events": [e1, e2]}))
        .await;

    c.expect_standings(
        "late",
        "timeframe=all_time",
        ranked(&[("otto", 7.0), ("ina", 5.0)]),
    )
    .await;
    let hour_in = inside.format("%Y-%m-%dT%H").to_string();
    c.expect_standings(
        "late",
        &format!("timeframe=hourly&window={hour_in}"),
        ranked(&[("ina", 5.0)]),
    )
    .await;
    let hour_out = outside.format("%Y-%m-%dT%H").to_string();
    let (s, e) = c
        .standings("late", &format!("timeframe=hourly&window={hour_out}"))
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
}

#[tokio::test]
async fn boards_can_be_declared_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_text(&dir.path().join("data"), "");
    config.push_str(concat!(
        "\n[[tenants]]\nid = \"cfg\"\nsecret = \"cfg-secret-0123456789\"\n",
        "[[tenants.leaderboards]]\nid = \"xp\"\n",
        "rules = [{ event_type = \"xp.*\", points_expression = \"attrs.xp\" }]\n",
        "timeframes = [\"daily\", \"all_time\"]\n"
    ));
    let server = Server::start_with(dir.path(), &config);
    let c = Client::new(&server.base, "cfg", "cfg-secret-0123456789");
    let mut e = event("xp1", "zoe", 0);
    e["type"] = json!("xp.granted");
    e["attrs"] = json!({"xp": 40});
    assert_eq!(c.post("/v1/events", &e).await.0, 202);
    c.expect_standings("xp", "timeframe=daily", ranked(&[("zoe", 40.0)]))
        .await;
}

/// Send every event (retrying what was not acknowledged) until all are acknowledged.
async fn send_all(c: &Client, events: &[Value]) {
    for chunk in events.chunks(50) {
        loop {
            if let Some((202, _)) = c
                .http_post_json("/v1/events/bulk", &json!({"events": chunk}))
                .await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_gives_identical_standings() {
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}],
                     "timeframes": ["hourly", "daily", "all_time"], "late_grace_seconds": 86400});
    // 40 users, user k gets 60 events of k+1 points: every total is distinct.
    let at = Utc::now() - Dur::minutes(5);
    let events: Vec<Value> = (0..2400)
        .map(|i| {
            let k = i % 40;
            let mut e = event(&format!("k{i}"), &format!("user{k:02}"), k as i64 + 1);
            e["occurred_at"] = json!(at.to_rfc3339());
            e
        })
        .collect();
    let want: Vec<(u64, String, f64)> = (0..40u64)
        .rev()
        .enumerate()
        .map(|(r, k)| (r as u64 + 1, format!("user{k:02}"), 60.0 * (k as f64 + 1.0)))
        .collect();
    let extra = "checkpoint_interval_seconds = 1";

    // Uninterrupted run.
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = Server::start_with(
        clean_dir.path(),
        &config_text(&clean_dir.path().join("data"), extra),
    );
    let cc = clean.client();
    assert_eq!(cc.put_board("b", &def).await.0, 201);
    send_all(&cc, &events).await;
    cc.expect_standings("b", "timeframe=all_time&limit=100", want.clone())
        .await;
    let hour = at.format("%Y-%m-%dT%H").to_string();
    let (_, clean_hourly) = cc
        .standings("b", &format!("timeframe=hourly&window={hour}&limit=100"))
        .await;

    // Killed run: kill while events stream in, restart, resend everything.
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &config_text(&dir.path().join("data"), extra));
    let c = server.client();
    assert_eq!(c.put_board("b", &def).await.0, 201);
    let sender = {
        let (c, events) = (c.clone(), events.clone());
        tokio::spawn(async move {
            for chunk in events.chunks(20) {
                if c.http_post_json("/v1/events/bulk", &json!({"events": chunk}))
                    .await
                    .is_none()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1300)).await;
    server.kill();
    sender.await.unwrap();
    drop(server);
    let server = Server::start_with(dir.path(), &config_text(&dir.path().join("data"), extra));
    let c = server.client();
    send_all(&c, &events).await;
    c.expect_standings("b", "timeframe=all_time&limit=100", want)
        .await;
    let (_, hourly) = c
        .standings("b", &format!("timeframe=hourly&window={hour}&limit=100"))
        .await;
    assert_eq!(hourly, clean_hourly);
    // Every event is in the log exactly once.
    let ids = c.logged_ids().await;
    assert_eq!(ids.len(), 2400);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2400);
}
