//! Black-box hardening tests of the engine against the real binary over real sockets: the
//! per-tenant board cap, nothing acknowledged that a board cannot decode, sums that would
//! overflow, client-chosen extremes that must not wrap, and the process's own memory setting
//! (no transparent huge pages once started, unless configured).

mod common;

use common::ws::{demo_backend, next_where, send_text};
use common::*;
use serde_json::{json, Value};
use std::ops::ControlFlow;
use std::time::Duration;

fn sum_board() -> Value {
    json!({"rules": [{"event_type": "match.*", "points_expression": "attrs.score"}],
           "timeframes": ["all_time"]})
}

/// A server with the standard config and board `sum` (201).
async fn start_with_sum(dir: &std::path::Path) -> (Server, Client) {
    let server = Server::start(dir);
    let c = server.client();
    let (status, body) = c.put_board("sum", &sum_board()).await;
    assert_eq!(status, 201, "{body}");
    (server, c)
}

/// The all-time standings of board `sum`.
async fn sum_standings(c: &Client) -> Value {
    c.standings("sum", "timeframe=all_time").await.1
}

#[tokio::test]
async fn the_101st_board_of_a_tenant_is_refused_and_others_are_unaffected() {
    let (_dir, server, c) = fresh();
    for i in 0..100 {
        let (status, body) = c.put_board(&format!("b{i}"), &sum_board()).await;
        assert_eq!(status, 201, "board {i}: {body}");
    }
    let (status, body) = c.put_board("b100", &sum_board()).await;
    assert_envelope(status, &body, 400, "VALIDATION_ERROR");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("100 leaderboards") && msg.contains("max_leaderboards_per_tenant"),
        "{msg}"
    );
    // Nothing was created, the other boards still work, replacing one is not "one more".
    let (status, _) = c.get("/v1/leaderboards/b100", "").await;
    assert_eq!(status, 404);
    let (_, list) = c.get("/v1/leaderboards", "").await;
    assert_eq!(list["leaderboards"].as_array().unwrap().len(), 100);
    let mut changed = sum_board();
    changed["name"] = json!("renamed");
    let (status, body) = c.put_board("b7", &changed).await;
    assert_eq!(status, 200, "{body}");
    // Another tenant has its own allowance.
    let other = Client::new(&server.base, OTHER, OTHER_SECRET);
    let (status, body) = other.put_board("b100", &sum_board()).await;
    assert_eq!(status, 201, "{body}");
    // Deleting one makes room again.
    let (status, _) = c.request("DELETE", "/v1/leaderboards/b0", b"").await;
    assert_eq!(status, 204);
    let (status, body) = c.put_board("b100", &sum_board()).await;
    assert_eq!(status, 201, "{body}");
    let m = server.metrics().await;
    assert_eq!(
        metric(&m, "phoenix_tenant_leaderboards", &[("tenant", TENANT)]),
        100.0
    );
    assert_eq!(
        metric(&m, "phoenix_tenant_leaderboards", &[("tenant", OTHER)]),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "phoenix_leaderboards_rejected_total",
            &[("tenant", TENANT), ("reason", "limit")]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_cap_is_configurable_and_checked_for_config_boards() {
    let dir = tempfile::tempdir().unwrap();
    let board = |id: &str| {
        format!(
            "[[tenants.leaderboards]]\nid = \"{id}\"\nrules = [{{ event_type = \"*\", points_expression = \"1\" }}]\n"
        )
    };
    // Three boards declared for a tenant allowed two: the config is refused at start-up.
    let mut text = config_text(&dir.path().join("data"), "max_leaderboards_per_tenant = 2");
    text.push_str(&format!("{}{}{}", board("x"), board("y"), board("z")));
    std::fs::write(dir.path().join("bad.toml"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["serve", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leaderboards: 3 declared, at most max_leaderboards_per_tenant (2)"),
        "{err}"
    );
    // Two declared (for the last tenant in the file): the server starts, and the cap of two
    // holds for every tenant's API boards too.
    let mut text = config_text(&dir.path().join("data"), "max_leaderboards_per_tenant = 2");
    text.push_str(&format!("{}{}", board("x"), board("y")));
    let server = Server::start_with(dir.path(), &text);
    let c = server.client();
    let (status, _) = c.put_board("one-more", &sum_board()).await;
    assert_eq!(status, 201);
    let (status, _) = c.put_board("two-more", &sum_board()).await;
    assert_eq!(status, 201);
    let (status, body) = c.put_board("three-more", &sum_board()).await;
    assert_envelope(status, &body, 400, "VALIDATION_ERROR");
}

/// JSON bodies whose attrs a consumer's decoder refuses, with what the error must name.
fn undecodable_attrs() -> Vec<(String, &'static str)> {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(130), "}".repeat(130));
    vec![
        (deep, "nesting is too deep"),
        (r#"{"score":1e309}"#.to_owned(), "number is out of range"),
        (r#"{"score":1,"name":"\ud800"}"#.to_owned(), "\\u escape"),
    ]
}

fn raw_event(id: &str, attrs: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"match.completed","actor":{{"user_id":"eve"}},"occurred_at":"{}","attrs":{attrs}}}"#,
        chrono::Utc::now().to_rfc3339()
    )
}

#[tokio::test]
async fn what_a_board_cannot_decode_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start_with_sum(dir.path()).await;
    // HTTP single: 400 naming the problem.
    for (i, (attrs, want)) in undecodable_attrs().iter().enumerate() {
        let body = raw_event(&format!("bad-{i}"), attrs);
        let (status, resp) = c.post_at("/v1/events", body.as_bytes(), now()).await;
        assert_envelope(status, &resp, 400, "VALIDATION_ERROR");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want), "{msg} lacks {want}");
    }
    // HTTP bulk: each bad event fails alone, the good one is accepted.
    let mut events: Vec<String> = undecodable_attrs()
        .iter()
        .enumerate()
        .map(|(i, (a, _))| raw_event(&format!("bulk-bad-{i}"), a))
        .collect();
    events.push(raw_event("good-1", r#"{"score":7}"#));
    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
    let (status, resp) = c.post_at("/v1/events/bulk", body.as_bytes(), now()).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["status"], "partial", "{resp}");
    assert_eq!(
        (resp["accepted"].as_u64(), resp["failed"].as_u64()),
        (Some(1), Some(3))
    );
    for (i, (_, want)) in undecodable_attrs().iter().enumerate() {
        let r = &resp["results"][i];
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["event_id"], format!("bulk-bad-{i}"));
        assert!(r["error"].as_str().unwrap().contains(want), "{r}");
    }
    // WebSocket ingest agrees: the same events are refused there.
    let mut ws = demo_backend(&server.base).await;
    for (i, (attrs, _)) in undecodable_attrs().iter().enumerate() {
        let frame = format!(
            r#"{{"type":"ingest","id":"w{i}","event":{}}}"#,
            raw_event(&format!("ws-bad-{i}"), attrs)
        );
        send_text(&mut ws, frame).await;
        let reply = next_where(&mut ws, |f| f["type"] == "error" || f["type"] == "ack").await;
        let refused = reply["type"] == "error" || reply["results"][0]["status"] == "failed";
        assert!(refused, "ws accepted an undecodable event: {reply}");
    }
    // Only the good event was logged, and every logged event decodes.
    let log = c.log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log.iter().all(|e| !e["event"].is_null()));
    assert_eq!(log[0]["event"]["event_id"], "good-1");
    eventually("the good event is scored", || async {
        let s = sum_standings(&c).await;
        s["entries"][0]["score"] == 7.0
    })
    .await;
    let m = server.metrics().await;
    assert_eq!(metric(&m, "phoenix_log_undecodable_total", &[]), 0.0, "{m}");
}

#[tokio::test]
async fn a_sum_that_would_overflow_is_refused_counted_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start_with_sum(dir.path()).await;
    let big = |id: &str, user: &str, score: f64| {
        let mut e = event(id, user, 0);
        e["attrs"]["score"] = json!(score);
        e
    };
    for (id, user, score) in [
        ("o1", "ann", 1.7e308),
        ("o2", "ann", 1.7e308),
        ("o3", "bob", 5.0),
    ] {
        let (status, body) = c.post("/v1/events", &big(id, user, score)).await;
        assert_eq!(status, 202, "{body}");
    }
    eventually("bob is scored", || async {
        let s = sum_standings(&c).await;
        s["total"] == 2
    })
    .await;
    let s = sum_standings(&c).await;
    let entries = s["entries"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["score"].is_number()),
        "no null scores: {s}"
    );
    assert_eq!(entries[0]["user_id"], "ann");
    assert_eq!(
        entries[0]["score"], 1.7e308,
        "the refused event changed nothing"
    );
    let m = server.metrics().await;
    assert_eq!(
        metric(
            &m,
            "phoenix_leaderboard_unscored_total",
            &[("board", "sum"), ("reason", "overflow")]
        ),
        1.0,
        "one event refused in one window"
    );
    // A negative event brings ann back into range: scored again.
    let (status, _) = c.post("/v1/events", &big("o4", "ann", -1.0e308)).await;
    assert_eq!(status, 202);
    eventually("ann's sum moves down", || async {
        let (_, s) = c.user("sum", "ann", "timeframe=all_time").await;
        s["score"]
            .as_f64()
            .is_some_and(|x| (x - 0.7e308).abs() < 1e300)
    })
    .await;
}

#[tokio::test]
async fn client_chosen_extremes_do_not_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, c) = start_with_sum(dir.path()).await;
    let (status, _) = c.post("/v1/events", &event("x1", "ann", 3)).await;
    assert_eq!(status, 202);
    eventually("ann is scored", || async {
        let s = sum_standings(&c).await;
        s["total"] == 1
    })
    .await;
    let max = u64::MAX.to_string();
    let past_bound = format!("timeframe=all_time&offset={max}");
    let (status, s) = c.standings("sum", &past_bound).await;
    // Past the edge's bound: a clear 400 naming the parameter (nothing wraps).
    assert_invalid(status, &s, "offset");
    // The largest offset the edge allows reaches the board, which answers an empty page.
    let (status, s) = c
        .standings("sum", "timeframe=all_time&offset=4294966295")
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["entries"].as_array().unwrap().len(), 0);
    let (status, page) = c.get("/v1/events", &format!("from={max}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["events"].as_array().unwrap().is_empty());
    // The board is still alive and answering.
    let (status, u) = c.user("sum", "ann", "timeframe=all_time&around=100").await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["rank"], 1);
}

/// With a single turn to check ingest requests (`ingest_fair_slots = 1`): uploads that stall
/// mid-body hold no turn (the body is read before the turn is taken), and many concurrent
/// requests of two tenants all land, each exactly once.
#[tokio::test]
async fn one_ingest_turn_a_stalled_upload_holds_none_and_concurrent_tenants_all_land() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &config_text(dir.path(), "ingest_fair_slots = 1"),
    );
    let a = server.client();
    let b = Client::new(&server.base, OTHER, OTHER_SECRET);
    for c in [&a, &b] {
        let (status, body) = c.put_board("sum", &sum_board()).await;
        assert_eq!(status, 201, "{body}");
    }
    // Two uploads that announce a body and stop halfway, on connections kept open.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nX-Tenant-Id: {TENANT}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"event_id\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let mut sends = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        sends.push(tokio::spawn(async move {
            c.post(
                "/v1/events",
                &event(&format!("f{i}"), &format!("u{}", i % 5), 1),
            )
            .await
        }));
    }
    for s in sends {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 202, "{body}");
    }
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "40 events took {took:?} beside two stalled uploads (the body timeout is 10 s)"
    );
    for c in [&a, &b] {
        eventually("each tenant's 20 events scored once", || async {
            let s = sum_standings(c).await;
            let total: f64 = s["entries"]
                .as_array()
                .map(|e| e.iter().filter_map(|x| x["score"].as_f64()).sum())
                .unwrap_or(0.0);
            total == 20.0
        })
        .await;
    }
    assert!(server.metric("phoenix_ingest_gate_waiting", &[]).await >= 0.0);
    drop(stalled);
}

/// Two tenants' 100-event bulks, checked ten events per turn with one turn for everyone and
/// a 1 KiB commit budget per fsync (so every bulk is spread over turns and fsyncs, side by
/// side with the other tenant's), at normal scoring priority: every event is acknowledged
/// once and scored once, in both tenants.
#[tokio::test]
async fn bulks_split_over_turns_and_fsyncs_land_whole_in_both_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "ingest_fair_slots = 1\ncommit_round_kb_per_tenant = 1\ncommit_round_kb_alone = 1\nleaderboard_priority = \"normal\"";
    let server = Server::start_with(dir.path(), &config_text(dir.path(), extra));
    let a = server.client();
    let b = Client::new(&server.base, OTHER, OTHER_SECRET);
    for c in [&a, &b] {
        let (status, body) = c.put_board("sum", &sum_board()).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut sends = Vec::new();
    for r in 0..6 {
        for (name, c) in [("a", a.clone()), ("b", b.clone())] {
            sends.push(tokio::spawn(async move {
                let events: Vec<Value> = (0..100)
                    .map(|i| event(&format!("{name}{r}-{i}"), &format!("u{}", i % 7), 1))
                    .collect();
                c.post("/v1/events/bulk", &json!({ "events": events }))
                    .await
            }));
        }
    }
    for s in sends {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 100, "{body}");
    }
    for c in [&a, &b] {
        eventually("each tenant's 600 events scored once", || async {
            let s = sum_standings(c).await;
            let total: f64 = s["entries"]
                .as_array()
                .map(|e| e.iter().filter_map(|x| x["score"].as_f64()).sum())
                .unwrap_or(0.0);
            total == 600.0
        })
        .await;
    }
    // A retry of a whole bulk is all duplicates, and changes nothing.
    let events: Vec<Value> = (0..100)
        .map(|i| event(&format!("a0-{i}"), &format!("u{}", i % 7), 1))
        .collect();
    let (status, body) = a
        .post("/v1/events/bulk", &json!({ "events": events }))
        .await;
    assert_eq!(
        (status, body["duplicates"].as_u64()),
        (202, Some(100)),
        "{body}"
    );
}

#[test]
fn a_bad_scoring_priority_or_commit_budget_is_refused_at_start_up() {
    for (extra, needle) in [
        ("leaderboard_priority = \"idle\"", "leaderboard_priority"),
        ("commit_round_kb_alone = 0", "commit_round_kb_alone"),
        (
            "commit_round_kb_per_tenant = 0",
            "commit_round_kb_per_tenant",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phoenix.toml");
        std::fs::write(&path, config_text(&dir.path().join("data"), extra)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(needle), "{extra}: {stderr}");
    }
}

/// The kernel's `THP_enabled` flag of process `pid` (Linux ≥ 5.0 shows it in `status`).
#[cfg(target_os = "linux")]
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// By default the server turns transparent huge pages off for itself (PR_SET_THP_DISABLE)
/// once its engine has started; `transparent_huge_pages = true` leaves the kernel's setting
/// alone. Either way it serves.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn transparent_huge_pages_are_off_for_the_server_once_started_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let pid = server.pid();
    wait_for("THP_enabled 0", Duration::from_secs(10), || async move {
        match thp_enabled(pid).as_str() {
            "0" => ControlFlow::Break(()),
            other => ControlFlow::Continue(other.to_owned()),
        }
    })
    .await;
    assert_eq!(server.client().get("/health", "").await.0, 200);
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let config = config_text(&dir.path().join("data"), "transparent_huge_pages = true");
    let server = Server::start_with(dir.path(), &config);
    let c = server.client();
    wait_for("ready", Duration::from_secs(10), || async {
        match c.get("/ready", "").await.0 {
            200 => ControlFlow::Break(()),
            other => ControlFlow::Continue(other),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        thp_enabled(server.pid()),
        "1",
        "left to the kernel when configured"
    );
}
