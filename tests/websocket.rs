//! Black-box WebSocket tests against the real binary: live pushes, views, client tokens,
//! streaming ingest, slow clients, reconnects.

mod common;

use std::time::Duration;

use common::ws::{backend, send, with_token, ws_url, Ws};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// The next JSON frame (fails after 10 s).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let f = next(ws).await;
        if f["type"] == ty {
            return f;
        }
    }
}

async fn put_board(c: &Client, id: &str, def: &Value) {
    let (s, body) = c.put_board(id, def).await;
    assert!(s < 300, "{body}");
}

fn sum_board() -> Value {
    json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}], "timeframes": ["daily", "all_time"]})
}

fn subscribe(id: &str, view: Value) -> Value {
    json!({"type": "subscribe", "id": id, "leaderboard": "b", "timeframe": "all_time", "view": view})
}

fn rows(v: &Value, field: &str) -> Vec<(String, Value)> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user_id"].as_str().unwrap().to_owned(), e["rank"].clone()))
        .collect()
}

#[tokio::test]
async fn snapshot_then_updates_after_http_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    c.post("/v1/events", &event("a1", "alice", 10)).await;

    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    // The snapshot may predate alice's event being applied; wait until she is in it.
    let mut snap;
    loop {
        send(&mut ws, subscribe("top", json!({"top": 3}))).await;
        snap = next_of(&mut ws, "snapshot").await;
        if !snap["entries"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(snap["id"], "top");
    assert_eq!(snap["window"], "all_time");
    assert_eq!(rows(&snap, "entries"), vec![("alice".into(), json!(1))]);
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
    assert_eq!(
        next_of(&mut ws, "error").await["error"]["code"],
        "VALIDATION_ERROR"
    );
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
    assert_eq!(
        next_of(&mut ws, "error").await["error"]["code"],
        "VALIDATION_ERROR"
    );
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(
        next_of(&mut ws, "error").await["error"]["code"],
        "VALIDATION_ERROR"
    );
}

#[tokio::test]
async fn around_view_follows_a_user_who_is_overtaken() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    let seed: Vec<Value> = [("a", 50), ("b", 40), ("c", 30), ("d", 20)]
        .iter()
        .map(|(u, s)| event(&format!("s-{u}"), u, *s))
        .collect();
    c.post("/v1/events/bulk", &json!({"events": seed})).await;

    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    let snap = loop {
        send(
            &mut ws,
            subscribe("me", json!({"around": "c", "radius": 1})),
        )
        .await;
        let s = next_of(&mut ws, "snapshot").await;
        if s["entries"].as_array().unwrap().len() == 3 {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        rows(&snap, "entries"),
        vec![
            ("b".into(), json!(2)),
            ("c".into(), json!(3)),
            ("d".into(), json!(4))
        ]
    );

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
    assert_eq!(
        rows(&again, "entries"),
        vec![
            ("f".into(), json!(4)),
            ("c".into(), json!(5)),
            ("d".into(), json!(6))
        ]
    );
}

#[tokio::test]
async fn client_tokens_are_read_only_scoped_and_expiring() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    put_board(&c, "secret-board", &sum_board()).await;

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
    assert_eq!(
        next_of(&mut ws, "error").await["error"]["code"],
        "FORBIDDEN"
    );
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
    assert_eq!(
        next_of(&mut ws2, "error").await["error"]["code"],
        "NOT_FOUND"
    );

    // Expired, forged and missing credentials: 401 before the upgrade.
    let expired = phoenix::tokens::mint(
        SECRET.as_bytes(),
        &phoenix::tokens::Claims {
            t: TENANT.into(),
            u: "alice".into(),
            exp: now() - 1,
            lb: None,
        },
    );
    for bad in [expired, format!("{token}00"), "garbage".to_owned()] {
        let err = with_token(&server.base, &bad).await.unwrap_err();
        assert!(err.contains("401"), "{err}");
    }
    let err = connect_async(ws_url(&server.base))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(backend(&server.base, TENANT, "wrong-secret-0000000")
        .await
        .unwrap_err()
        .contains("401"));
    // The same token reads standings over HTTP (read-only), only for its boards.
    let http = reqwest::Client::new();
    let get = |path: &str, tok: &str| {
        http.get(format!("{}{path}", server.base))
            .bearer_auth(tok.to_owned())
            .send()
    };
    let (s, v) = decode(
        get("/v1/leaderboards/b/standings?timeframe=all_time", &token)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["leaderboard"].as_str()), (200, Some("b")), "{v}");
    let (s, e) = decode(
        get("/v1/leaderboards/secret-board/standings", &token)
            .await
            .unwrap(),
    )
    .await;
    assert_envelope(s, &e, 403, "FORBIDDEN");
    let (s, e) = decode(
        get("/v1/leaderboards/b/standings", "pxt1.bogus.00")
            .await
            .unwrap(),
    )
    .await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let (s, e) = decode(
        http.put(format!("{}/v1/leaderboards/b", server.base))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    // Token requests are validated.
    let (s, e) = c
        .post("/v1/tokens", &json!({"user_id": "", "ttl_seconds": 60}))
        .await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let (s, e) = c
        .post(
            "/v1/tokens",
            &json!({"user_id": "a", "ttl_seconds": 999999999}),
        )
        .await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn streaming_ingest_acks_after_durability_with_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    let mut bad = event("w-bad", "u", 1);
    bad["type"] = json!("");
    send(&mut ws, json!({"type": "ingest", "id": "batch-1", "events": [event("w1", "u", 1), event("w1", "u", 1), bad, event("w2", "u", 2)]})).await;
    let ack = next_of(&mut ws, "ack").await;
    assert_eq!(ack["id"], "batch-1");
    let statuses: Vec<&str> = ack["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "duplicate", "failed", "accepted"]);
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
    assert_eq!(
        next_of(&mut ws, "error").await["error"]["code"],
        "VALIDATION_ERROR"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_resynced_or_closed_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "ws_push_interval_ms = 1\nws_outbound_queue = 4\nws_stall_timeout_seconds = 2";
    let server = Server::start_with(dir.path(), &config_text(&dir.path().join("data"), extra));
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    send(&mut ws, subscribe("big", json!({"top": 100}))).await;
    // Never read from `ws` while the top 100 churns. Long user ids make each frame ~26 KB so
    // the socket buffers (several MB on loopback) fill within seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pad = "x".repeat(200);
    let mut round = 0;
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    loop {
        let events: Vec<Value> = (0..100)
            .map(|j| {
                event(
                    &format!("r{round}-{j}"),
                    &format!("user{j}-{pad}"),
                    (round * 7 + j * 13) % 97 + 1,
                )
            })
            .collect();
        c.post("/v1/events/bulk", &json!({"events": events})).await;
        round += 1;
        let text = server.metrics().await;
        if metric(&text, "phoenix_ws_slow_closed_total") >= 1.0
            || std::time::Instant::now() > deadline
        {
            assert!(
                metric(&text, "phoenix_ws_frames_dropped_total") > 0.0,
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
    let mut ws2 = backend(&server.base, TENANT, SECRET).await.unwrap();
    send(&mut ws2, subscribe("again", json!({"top": 3}))).await;
    assert_eq!(next(&mut ws2).await["type"], "snapshot");
}

#[tokio::test]
async fn reconnect_and_resubscribe_resumes_from_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    send(&mut ws, subscribe("s", json!({"top": 5}))).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    ws.close(None).await.unwrap();
    drop(ws);
    c.post("/v1/events", &event("while-away", "zed", 99)).await;
    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    let snap = loop {
        send(&mut ws, subscribe("s", json!({"top": 5}))).await;
        let s = next_of(&mut ws, "snapshot").await;
        if !s["entries"].as_array().unwrap().is_empty() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows(&snap, "entries"), vec![("zed".into(), json!(1))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_caps_a_hot_board_but_never_delays_a_quiet_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &config_text(&dir.path().join("data"), "ws_push_interval_ms = 300"),
    );
    let c = server.client();
    put_board(&c, "b", &sum_board()).await;
    let mut ws = backend(&server.base, TENANT, SECRET).await.unwrap();
    send(&mut ws, subscribe("t", json!({"top": 3}))).await;
    next_of(&mut ws, "snapshot").await;
    // A second session on the same view shares it: one view computed, two subscribers.
    let mut ws2 = backend(&server.base, TENANT, SECRET).await.unwrap();
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
