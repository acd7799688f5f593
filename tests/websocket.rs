//! Black-box WebSocket tests against the real binary: live pushes, views, client tokens,
//! streaming ingest, slow clients, reconnects.

mod common;

use std::time::Duration;

use common::ws::{
    assert_serves, backend, churn, demo_backend, next, next_of, refusal, send, subscribe,
    with_token, ws_url, Ws,
};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn sum_board() -> Value {
    json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}], "timeframes": ["daily", "all_time"]})
}

/// A server with board `b` (its config: the standard one plus `extra`).
async fn start(dir: &std::path::Path, extra: &str) -> (Server, Client) {
    let server = Server::start_with(dir, &config_text(&dir.join("data"), extra));
    let c = server.client();
    c.create_board("b", &sum_board()).await;
    (server, c)
}

/// Subscribe as `id` until the snapshot holds `entries` entries (events are applied in the
/// background, so the first snapshots may predate them).
async fn snapshot_with(ws: &mut Ws, id: &str, view: Value, entries: usize) -> Value {
    loop {
        send(ws, subscribe(id, view.clone())).await;
        let snap = next_of(ws, "snapshot").await;
        if snap["entries"].as_array().unwrap().len() == entries {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (user, rank) of each entry.
fn ranks(v: &Value) -> Vec<(&str, u64)> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user_id"].as_str().unwrap(), e["rank"].as_u64().unwrap()))
        .collect()
}

/// The error code of the next error frame.
async fn next_error(ws: &mut Ws) -> Value {
    next_of(ws, "error").await["error"]["code"].clone()
}

#[tokio::test]
async fn snapshot_then_updates_after_http_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    c.post("/v1/events", &event("a1", "alice", 10)).await;

    let mut ws = demo_backend(&server.base).await;
    let snap = snapshot_with(&mut ws, "top", json!({"top": 3}), 1).await;
    assert_eq!(snap["id"], "top");
    assert_eq!(snap["window"], "all_time");
    assert_eq!(ranks(&snap), [("alice", 1)]);
    let seq = snap["seq"].as_u64().unwrap();

    c.post("/v1/events", &event("b1", "bob", 20)).await;
    let up = next_of(&mut ws, "update").await;
    assert_eq!(
        up["seq"].as_u64().unwrap(),
        seq + 1,
        "sequence numbers have no gaps: {up}"
    );
    let mut changes: Vec<Value> = up["changes"].as_array().unwrap().clone();
    changes.sort_by_key(|c| c["user_id"].as_str().unwrap().to_owned());
    assert_eq!(
        changes,
        vec![
            json!({"user_id": "alice", "rank": 2, "score": 10.0, "previous_rank": 1}),
            json!({"user_id": "bob", "rank": 1, "score": 20.0, "previous_rank": null}),
        ]
    );

    // ping / unknown frames / bad subscriptions answer with frames, never a silent close.
    send(&mut ws, json!({"type": "ping", "id": "p1"})).await;
    assert_eq!(next_of(&mut ws, "pong").await["id"], "p1");
    send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(next_error(&mut ws).await, "VALIDATION_ERROR");
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "x", "leaderboard": "nope", "view": {"top": 3}}),
    )
    .await;
    let e = next_of(&mut ws, "error").await;
    assert_eq!(
        (e["id"].as_str(), e["error"]["code"].as_str()),
        (Some("x"), Some("NOT_FOUND"))
    );
    send(&mut ws, subscribe("y", json!({"top": 0}))).await;
    assert_eq!(next_error(&mut ws).await, "VALIDATION_ERROR");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next_error(&mut ws).await, "VALIDATION_ERROR");
}

#[tokio::test]
async fn around_view_follows_a_user_who_is_overtaken() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    let seed: Vec<Value> = [("a", 50), ("b", 40), ("c", 30), ("d", 20)]
        .iter()
        .map(|(u, s)| event(&format!("s-{u}"), u, *s))
        .collect();
    c.post("/v1/events/bulk", &json!({"events": seed})).await;

    let mut ws = demo_backend(&server.base).await;
    let snap = snapshot_with(&mut ws, "me", json!({"around": "c", "radius": 1}), 3).await;
    assert_eq!(ranks(&snap), [("b", 2), ("c", 3), ("d", 4)]);

    // Two players overtake c: c moves from 3 to 5, and the view moves with c.
    c.post(
        "/v1/events/bulk",
        &json!({"events": [event("o-e", "e", 45), event("o-f", "f", 35)]}),
    )
    .await;
    let mut c_rank = None;
    while c_rank != Some(5) {
        let up = next_of(&mut ws, "update").await;
        for ch in up["changes"].as_array().unwrap() {
            if ch["user_id"] == "c" {
                c_rank = ch["rank"].as_u64();
                assert_eq!(ch["previous_rank"], 3);
            }
        }
    }
    send(
        &mut ws,
        subscribe("me2", json!({"around": "c", "radius": 1})),
    )
    .await;
    let again = next_of(&mut ws, "snapshot").await;
    assert_eq!(ranks(&again), [("f", 4), ("c", 5), ("d", 6)]);
}

#[tokio::test]
async fn client_tokens_are_read_only_scoped_and_expiring() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    c.create_board("secret-board", &sum_board()).await;

    let (s, t) = c
        .post(
            "/v1/tokens",
            &json!({"user_id": "alice", "leaderboards": ["b"], "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    let mut ws = with_token(&server.base, &token).await.unwrap();
    send(&mut ws, subscribe("s", json!({"top": 5}))).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "x", "leaderboard": "secret-board", "view": {"top": 5}}),
    )
    .await;
    assert_eq!(next_error(&mut ws).await, "FORBIDDEN");
    send(
        &mut ws,
        json!({"type": "ingest", "id": "i", "event": event("tok-1", "alice", 1)}),
    )
    .await;
    let e = next_of(&mut ws, "error").await;
    assert_eq!(
        (e["id"].as_str(), e["error"]["code"].as_str()),
        (Some("i"), Some("FORBIDDEN"))
    );
    let (_, log) = c.get("/v1/events", "").await;
    assert!(
        log["events"].as_array().unwrap().is_empty(),
        "nothing was ingested"
    );

    // Another tenant's token sees none of this tenant's boards.
    let other = Client::new(&server.base, OTHER, OTHER_SECRET);
    let (_, t2) = other
        .post("/v1/tokens", &json!({"user_id": "mallory"}))
        .await;
    let mut ws2 = with_token(&server.base, t2["token"].as_str().unwrap())
        .await
        .unwrap();
    send(&mut ws2, subscribe("s", json!({"top": 5}))).await;
    assert_eq!(next_error(&mut ws2).await, "NOT_FOUND");

    // Expired, forged and missing credentials: 401 before the upgrade.
    let expired = mint_token(SECRET, TENANT, "alice", now() - 1);
    for bad in [expired, format!("{token}00"), "garbage".to_owned()] {
        assert_eq!(refusal(with_token(&server.base, &bad).await), 401);
    }
    let anonymous = connect_async(ws_url(&server.base)).await.map(|(ws, _)| ws);
    assert_eq!(refusal(anonymous), 401);
    let forged = backend(&server.base, TENANT, "wrong-secret-0000000").await;
    assert_eq!(refusal(forged), 401);
    // The same token reads standings over HTTP (read-only), only for its boards.
    let bearer = |method: &'static str, path: &'static str, tok: &str| {
        let (base, tok) = (server.base.clone(), tok.to_owned());
        async move { plain::call(&base, method, path, Some(&tok), None).await }
    };
    let all_time = "/v1/leaderboards/b/standings?timeframe=all_time";
    let (s, v) = bearer("GET", all_time, &token).await;
    assert_eq!((s, v["leaderboard"].as_str()), (200, Some("b")), "{v}");
    let (s, e) = bearer("GET", "/v1/leaderboards/secret-board/standings", &token).await;
    assert_envelope(s, &e, 403, "FORBIDDEN");
    let (s, e) = bearer("GET", "/v1/leaderboards/b/standings", "pxt1.bogus.00").await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let put = Some("{}".to_owned());
    let (s, e) = plain::call(&server.base, "PUT", "/v1/leaderboards/b", Some(&token), put).await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    // Token requests are validated.
    for bad in [
        json!({"user_id": "", "ttl_seconds": 60}),
        json!({"user_id": "a", "ttl_seconds": 999999999}),
    ] {
        let (s, e) = c.post("/v1/tokens", &bad).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn streaming_ingest_acks_after_durability_with_dedupe() {
    let (_dir, server, c) = fresh();
    let mut ws = demo_backend(&server.base).await;
    let mut bad = event("w-bad", "u", 1);
    bad["type"] = json!("");
    send(&mut ws, json!({"type": "ingest", "id": "batch-1", "events": [event("w1", "u", 1), event("w1", "u", 1), bad, event("w2", "u", 2)]})).await;
    let ack = next_of(&mut ws, "ack").await;
    assert_eq!(ack["id"], "batch-1");
    assert_eq!(
        strs(&ack["results"], "status"),
        ["accepted", "duplicate", "failed", "accepted"]
    );
    // Acknowledged means durable and visible in the log.
    let ids = c.logged_ids().await;
    assert_eq!(ids, ["w1", "w2"]);
    send(
        &mut ws,
        json!({"type": "ingest", "id": "one", "event": event("w2", "u", 2)}),
    )
    .await;
    let ack = next_of(&mut ws, "ack").await;
    assert_eq!(ack["results"][0]["status"], "duplicate");
    // Many batches in flight at once: every one acknowledged exactly once.
    for i in 0..50 {
        let events: Vec<Value> = (0..100)
            .map(|j| event(&format!("m{i}-{j}"), "u", 1))
            .collect();
        send(
            &mut ws,
            json!({"type": "ingest", "id": format!("m{i}"), "events": events}),
        )
        .await;
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 50 {
        let ack = next_of(&mut ws, "ack").await;
        assert!(ack["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "accepted"));
        assert!(seen.insert(ack["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(c.log().await.len(), 2 + 5000);
    send(
        &mut ws,
        json!({"type": "ingest", "id": "empty", "events": []}),
    )
    .await;
    assert_eq!(next_error(&mut ws).await, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_resynced_or_closed_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "ws_push_interval_ms = 1\nws_outbound_queue = 4\nws_stall_timeout_seconds = 2";
    let (server, c) = start(dir.path(), extra).await;
    let mut ws = demo_backend(&server.base).await;
    send(&mut ws, subscribe("big", json!({"top": 100}))).await;
    // Never read from `ws` while the top 100 churns. Long user ids make each frame ~26 KB so
    // the socket buffers (several MB on loopback) fill within seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pad = "x".repeat(200);
    let mut round = 0;
    loop {
        churn(&c, round, &pad).await;
        round += 1;
        let text = server.metrics().await;
        if metric(&text, "phoenix_ws_slow_closed_total", &[]) >= 1.0
            || std::time::Instant::now() > deadline
        {
            assert!(
                metric(&text, "phoenix_ws_frames_dropped_total", &[]) > 0.0,
                "frames were dropped, not queued:\n{text}"
            );
            break;
        }
    }
    // Reading now: the backlog is bounded (queue + socket buffers) and ends: a connection
    // judged slow is reset at once (SPEC §9), so the client sees the reset (or EOF), not
    // necessarily a close frame; a close frame, if any, carries the reason.
    let mut frames = 0;
    let reason = loop {
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let msg = match got {
            Ok(Some(Ok(m))) => m,
            Err(_) => panic!("the connection is still open after {frames} frames"),
            other => {
                eprintln!("stream ended with {other:?}");
                break Some("slow consumer (connection reset)".to_owned());
            }
        };
        match msg {
            Message::Text(_) => frames += 1,
            Message::Close(Some(f)) => break Some(f.reason.to_string()),
            Message::Close(None) => break None,
            _ => {}
        }
    };
    eprintln!("{round} rounds of churn; the client then read {frames} frames");
    assert!(
        frames < round,
        "backlog bounded: {frames} frames for {round} rounds"
    );
    assert_eq!(
        reason.as_deref().map(|r| r.starts_with("slow consumer")),
        Some(true),
        "closed (reset, or a close frame with the reason), after {frames} frames"
    );
    // The server is fine afterwards.
    assert_serves(&server.base).await;
}

#[tokio::test]
async fn reconnect_and_resubscribe_resumes_from_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    let mut ws = demo_backend(&server.base).await;
    send(&mut ws, subscribe("s", json!({"top": 5}))).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    ws.close(None).await.unwrap();
    drop(ws);
    c.post("/v1/events", &event("while-away", "zed", 99)).await;
    let mut ws = demo_backend(&server.base).await;
    let snap = snapshot_with(&mut ws, "s", json!({"top": 5}), 1).await;
    assert_eq!(ranks(&snap), [("zed", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_caps_a_hot_board_but_never_delays_a_quiet_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "ws_push_interval_ms = 300").await;
    let mut ws = demo_backend(&server.base).await;
    send(&mut ws, subscribe("t", json!({"top": 3}))).await;
    next_of(&mut ws, "snapshot").await;
    // A second session on the same view shares it: one view computed, two subscribers.
    let mut ws2 = demo_backend(&server.base).await;
    send(&mut ws2, subscribe("same", json!({"top": 3}))).await;
    next_of(&mut ws2, "snapshot").await;
    let text = server.metrics().await;
    assert!(
        text.contains("phoenix_ws_views{tenant=\"demo\",board=\"b\"} 1"),
        "{text}"
    );

    // Quiet board: the first change goes out at once, not after the 300 ms coalescing tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = std::time::Instant::now();
    c.post("/v1/events", &event("q1", "quiet", 5)).await;
    next_of(&mut ws, "update").await;
    let quiet = t0.elapsed();
    assert!(
        quiet < Duration::from_millis(250),
        "quiet-board push took {quiet:?}"
    );

    // Hot board: events every ~10 ms for 1.5 s, at most one frame per 300 ms gets pushed.
    let hot = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                c.post(
                    "/v1/events",
                    &event(&format!("h{i}"), &format!("hot{}", i % 5), i),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let start = std::time::Instant::now();
    let mut frames = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        if let Ok(Some(Ok(Message::Text(_)))) =
            tokio::time::timeout(Duration::from_millis(100), ws.next()).await
        {
            frames += 1;
        }
    }
    hot.abort();
    assert!(
        (2..=7).contains(&frames),
        "{frames} frames in 1.5 s at a 300 ms push interval"
    );
}
