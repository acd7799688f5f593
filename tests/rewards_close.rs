//! Rewards at window close and outbound webhooks (SPEC §12), over the real binary: a window
//! closes during the test and grants each tier exactly once — also across SIGKILLs before
//! and after the close — its results are queryable, its `leaderboard.window_closed` event
//! is in the stream once, and a webhook receiver on 127.0.0.1 that fails the first delivery
//! gets the retry with the same delivery id and a valid signature.

mod common;

use std::ops::ControlFlow::{Break, Continue};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DurationRound, TimeDelta, Utc};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const HOOK_PATH: &str = "/hooks/phoenix";

/// One request the fake receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

/// A webhook receiver on 127.0.0.1 that answers 500 to its first request, 200 afterwards.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        HOOK_PATH,
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                let status = if log.is_empty() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                log.push(Received {
                    headers,
                    body,
                    answered: status.as_u16(),
                });
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{HOOK_PATH}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Verify a delivery's signature the way a receiver should (seed 000 §3, constant time).
fn signature_ok(r: &Received) -> bool {
    let h = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(hex_sig) = h("x-signature").strip_prefix("hmac-sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("POST\n{HOOK_PATH}\n{}\n", h("x-timestamp")).as_bytes());
    mac.update(&r.body);
    h("x-tenant-id") == TENANT && mac.verify_slice(&sig).is_ok()
}

/// Wait (at most 20 s) until the receiver has answered a delivery 200; all it got by then.
async fn until_delivered(seen: &Mutex<Vec<Received>>) -> Vec<Received> {
    for _ in 0..400 {
        if seen.lock().unwrap().iter().any(|r| r.answered == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clone()
}

/// The webhook deliveries listing once it holds at least two attempts (fails after 10 s).
async fn two_attempts(c: &Client, query: &str) -> Value {
    wait_for(
        "two delivery attempts listed",
        Duration::from_secs(10),
        || async {
            let (s, l) = c.get("/v1/webhooks/deliveries", query).await;
            assert_eq!(s, 200, "{l}");
            if l["deliveries"].as_array().is_some_and(|d| d.len() >= 2) {
                Break(l)
            } else {
                Continue(l)
            }
        },
    )
    .await
}

fn config(dir: &std::path::Path, url: &str) -> String {
    // No checkpoint during the test: a restart rebuilds the board from the log and freezes
    // the closed window again, which must not grant again.
    let extra =
        "checkpoint_interval_seconds = 3600\n[webhooks]\nretry_initial_ms = 300\npoll_ms = 100\n";
    with_webhook(&config_text(&dir.join("data"), extra), SECRET, url)
}

/// `config` with `webhook_url = url` for the tenant whose secret is `secret`.
fn with_webhook(config: &str, secret: &str, url: &str) -> String {
    let entry = format!("secret = \"{secret}\"");
    config.replacen(&entry, &format!("{entry}\nwebhook_url = \"{url}\""), 1)
}

async fn wallet(c: &Client, user: &str) -> Value {
    let (s, w) = c.get(&format!("/v1/players/{user}/wallet"), "").await;
    assert_eq!(s, 200, "{user}: {w}");
    w
}

async fn results(c: &Client, key: &str) -> (u16, Value) {
    c.get(
        &format!("/v1/leaderboards/season/windows/{key}/results"),
        "timeframe=hourly",
    )
    .await
}

/// Balances and ledger lines per user: what must not change after a restart.
async fn balances(c: &Client) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    for u in ["ann", "bob", "cid", "dan"] {
        let w = wallet(c, u).await;
        out.push((
            w["balance"].as_u64().unwrap(),
            w["grants"].as_array().unwrap().len(),
        ));
    }
    out
}

#[tokio::test]
async fn window_close_grants_once_across_sigkill_and_retries_the_webhook() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &url);
    let mut server = Server::start_with(dir.path(), &cfg);
    let c = server.client();

    // The previous hour closes a few seconds from now (4 s).
    let ClosingSeason { key, def, at, hour } = closing_season(4);
    let (s, body) = c.put_board("season", &def).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["rewards"][0]["items"][0], "gold-cup");
    let events: Vec<Value> = [("ann", 50), ("bob", 40), ("cid", 30), ("dan", 10)]
        .iter()
        .map(|(u, p)| {
            let mut e = event(&format!("e-{u}"), u, *p);
            e["occurred_at"] = json!(at);
            e
        })
        .collect();
    let (s, body) = c
        .post("/v1/events/bulk", &json!({ "events": events }))
        .await;
    assert_eq!((s, body["accepted"].as_u64()), (202, Some(4)), "{body}");
    let (s, body) = results(&c, &key).await;
    assert_envelope(s, &body, 404, "NOT_FOUND");

    // SIGKILL before the close: the events are durable, the close happens after restart.
    server.kill();
    let server = Server::start_with(dir.path(), &cfg);
    let c = server.client();
    for _ in 0..400 {
        if results(&c, &key).await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, r) = results(&c, &key).await;
    assert_eq!(s, 200, "window {key} never closed: {r}");
    assert_eq!(
        (r["total"].as_u64(), r["rewarded"].as_bool()),
        (Some(4), Some(true)),
        "{r}"
    );
    assert_eq!(strs(&r["results"], "user_id"), ["ann", "bob", "cid", "dan"]);
    let grants: Vec<(&str, u64, u64)> = r["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["user_id"].as_str().unwrap(),
                g["rank"].as_u64().unwrap(),
                g["coins"].as_u64().unwrap(),
            )
        })
        .collect();
    // First matching tier wins: ann only the [1,1] tier, dan only the top 100%.
    assert_eq!(
        grants,
        [
            ("ann", 1, 1000),
            ("bob", 2, 300),
            ("cid", 3, 300),
            ("dan", 4, 7)
        ]
    );
    let expected = vec![(1000, 1), (300, 1), (300, 1), (7, 1)];
    assert_eq!(balances(&c).await, expected);
    let ann = wallet(&c, "ann").await;
    assert_eq!(ann["grants"][0]["items"], json!(["gold-cup"]));
    assert_eq!(ann["grants"][0]["source"], "leaderboard");
    // The closed window is listed (for pickers) and the open one is not closed.
    let (s, list) = c
        .get("/v1/leaderboards/season/results", "timeframe=hourly")
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["closes"][0]["window"], key.as_str());
    let current = hour.format("%Y-%m-%dT%H").to_string();
    let (s, body) = results(&c, &current).await;
    assert_envelope(s, &body, 404, "NOT_FOUND");

    // The webhook: first delivery refused (500), the retry has the same id and a valid
    // signature, and is answered 200.
    let got = until_delivered(&seen).await;
    assert!(got.len() >= 2, "first attempt then a retry: {got:?}");
    assert_eq!((got[0].answered, got[1].answered), (500, 200));
    let id = got[0].headers["x-phoenix-delivery"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    for r in &got {
        assert_eq!(
            r.headers["x-phoenix-delivery"].to_str().unwrap(),
            id,
            "same id on retries"
        );
        assert!(signature_ok(r), "bad signature on {r:?}");
        assert_eq!(r.body, got[0].body, "same body on retries");
    }
    let payload: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(payload["type"], "leaderboard.window_closed");
    assert_eq!(
        (
            payload["leaderboard"].as_str(),
            payload["timeframe"].as_str()
        ),
        (Some("season"), Some("hourly"))
    );
    assert_eq!(payload["window"], key.as_str());
    assert_eq!(payload["grants"].as_array().unwrap().len(), 4);
    assert_eq!(payload["results"][0]["user_id"], "ann");
    // A tampered body would not verify.
    let mut forged = got[1].clone();
    forged.body = Bytes::from(String::from_utf8_lossy(&got[1].body).replace("1000", "9000"));
    assert!(!signature_ok(&forged));
    // The attempts are listed, newest first.
    let listed = two_attempts(&c, "limit=10").await;
    let d = listed["deliveries"]
        .as_array()
        .expect("two attempts listed");
    assert_eq!(
        (d[0]["result"].as_str(), d[0]["attempt"].as_u64()),
        (Some("delivered"), Some(2)),
        "{listed}"
    );
    assert_eq!(
        (d[1]["result"].as_str(), d[1]["http_status"].as_u64()),
        (Some("failed"), Some(500))
    );
    assert_eq!(d[1]["delivery_id"], id.as_str());
    assert_eq!(listed["pending"], 0);
    let (s, body) = c.get("/v1/webhooks/deliveries", "limit=0").await;
    assert_envelope(s, &body, 400, "VALIDATION_ERROR");

    let m = server.metrics().await;
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        m.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(
        value(
            "phoenix_window_closes_total",
            &["tenant=\"demo\"", "result=\"rewarded\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(
            "phoenix_rewards_grants_total",
            &["tenant=\"demo\"", "source=\"leaderboard\""]
        ),
        Some(4.0)
    );
    assert!(value("phoenix_webhook_deliveries_total", &["result=\"failed\""]) >= Some(1.0));
    assert!(
        value(
            "phoenix_webhook_deliveries_total",
            &["result=\"delivered\""]
        ) >= Some(1.0)
    );
    assert_eq!(
        value(
            "phoenix_webhook_outbox_dropped_total",
            &["tenant=\"other\""]
        ),
        Some(0.0),
        "registered at zero"
    );

    // SIGKILL after the close (no checkpoint since): the board rebuilds from the log,
    // freezes the window again, and grants nothing twice.
    drop(server);
    let server = Server::start_with(dir.path(), &cfg);
    let c = server.client();
    eventually("the board replayed the log", || async {
        let (s, b) = c
            .get("/v1/leaderboards/season/standings", "timeframe=all_time")
            .await;
        s == 200 && b["total"] == 4
    })
    .await;
    // Ticks run every second; give the re-freeze a few of them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        balances(&c).await,
        expected,
        "no grant twice after a restart"
    );
    assert_eq!(
        results(&c, &key).await.1["grants"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let closed: Vec<Value> = c
        .log()
        .await
        .into_iter()
        .filter(|e| e["event"]["type"] == "leaderboard.window_closed")
        .collect();
    assert_eq!(closed.len(), 1, "one close event in the stream: {closed:?}");
    assert_eq!(closed[0]["event"]["attrs"]["window"], key.as_str());
    assert_eq!(closed[0]["event"]["attrs"]["winners"][0], "ann");
    // The close event scores on no catch-all board: all_time still has the 4 players.
    let (_, st) = c
        .get("/v1/leaderboards/season/standings", "timeframe=all_time")
        .await;
    assert_eq!(st["total"], 4);
    // Only deliveries with the one id ever reached the receiver.
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.headers["x-phoenix-delivery"].to_str().unwrap() == id));
}

#[tokio::test]
async fn bad_rewards_are_400_naming_the_field() {
    let (_dir, _server, c) = fresh();
    let base = |rewards: Value| {
        json!({"rules": [{"event_type": "*", "points_expression": "1"}],
               "timeframes": ["daily"], "rewards": rewards})
    };
    for (rewards, field) in [
        (
            json!([{"ranks": [1, 1], "coins": 1}, {"ranks": [10, 2], "coins": 5}]),
            "rewards[1].ranks",
        ),
        (json!([{"ranks": [0, 3], "coins": 5}]), "rewards[0].ranks"),
        (
            json!([{"ranks": [1, 3], "top_percent": 10, "coins": 5}]),
            "rewards[0].ranks",
        ),
        (json!([{"coins": 5}]), "rewards[0].ranks"),
        (
            json!([{"top_percent": 0, "coins": 5}]),
            "rewards[0].top_percent",
        ),
        (
            json!([{"top_percent": 101, "coins": 5}]),
            "rewards[0].top_percent",
        ),
        (json!([{"ranks": [1, 1], "coins": -1}]), "rewards[0].coins"),
        (
            json!([{"ranks": [1, 1], "coins": 5, "items": [7]}]),
            "rewards[0].items",
        ),
        (json!("lots"), "rewards"),
    ] {
        let (s, body) = c.put_board("bad", &base(rewards.clone())).await;
        assert_envelope(s, &body, 400, "VALIDATION_ERROR");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{rewards}: {msg} should name {field}");
    }
    // Nothing was stored.
    let (s, body) = c.get("/v1/leaderboards/bad", "").await;
    assert_envelope(s, &body, 404, "NOT_FOUND");
    // A good definition is stored with its tiers; results of a window not closed are 404,
    // a malformed key 400.
    let (s, body) = c
        .put_board("good", &base(json!([{"top_percent": 10, "coins": 50}])))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["rewards"], json!([{"top_percent": 10, "coins": 50}]));
    for (board, key, status, code) in [
        ("good", "2025-11-18", 404, "NOT_FOUND"),
        ("good", "2025-W47", 400, "VALIDATION_ERROR"),
        ("nope", "2025-11-18", 404, "NOT_FOUND"),
    ] {
        let path = format!("/v1/leaderboards/{board}/windows/{key}/results");
        let (s, body) = c.get(&path, "timeframe=daily").await;
        assert_envelope(s, &body, status, code);
    }
}

#[tokio::test]
async fn webhook_url_is_set_through_the_admin_api_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let path = format!("/v1/admin/tenants/{TENANT}/webhook");
    let bad = json!({"url": "ftp://example.com/x"});
    let (s, e) = plain::operator(&server.base, "PUT", &path, Some(&bad)).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let good = json!({"url": "http://127.0.0.1:9/hook"});
    let (s, v) = plain::operator(&server.base, "PUT", &path, Some(&good)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["webhook_url"], "http://127.0.0.1:9/hook");
    let unauth = Some("{\"url\":null}".to_owned());
    assert_eq!(
        plain::call(&server.base, "PUT", &path, None, unauth)
            .await
            .0,
        401
    );
    drop(server);
    let server = Server::start(dir.path());
    let (s, list) = plain::operator(&server.base, "GET", "/v1/admin/tenants", None).await;
    assert_eq!(s, 200, "{list}");
    let demo = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == TENANT)
        .unwrap()
        .clone();
    assert_eq!(demo["webhook_url"], "http://127.0.0.1:9/hook");
}

/// A board on `c`'s tenant whose previous hour (holding two scored players) closes a few
/// seconds from now; returns the window key.
async fn board_closing_soon(c: &Client) -> String {
    let now = Utc::now();
    let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap();
    let def = json!({"rules": [{"event_type": "match.*", "points_expression": "attrs.score"}],
        "timeframes": ["hourly"], "late_grace_seconds": (now - hour).num_seconds() + 3,
        "rewards": [{"ranks": [1, 1], "coins": 10}]});
    let (s, body) = c.put_board("season", &def).await;
    assert_eq!(s, 201, "{body}");
    let at = (hour - TimeDelta::minutes(10)).to_rfc3339();
    let events: Vec<Value> = ["p1", "p2"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut e = event(&format!("soon-{u}"), u, 10 - i as i64);
            e["occurred_at"] = json!(at);
            e
        })
        .collect();
    let (s, body) = c
        .post("/v1/events/bulk", &json!({ "events": events }))
        .await;
    assert_eq!(s, 202, "{body}");
    (hour - TimeDelta::hours(1))
        .format("%Y-%m-%dT%H")
        .to_string()
}

/// A receiver that never answers is cut off by the delivery timeout and retried, while its
/// tenant keeps ingesting and another tenant's webhook is delivered.
#[tokio::test]
async fn a_hanging_receiver_times_out_without_blocking_ingestion_or_other_tenants() {
    let hang = axum::Router::new().route(
        HOOK_PATH,
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}{HOOK_PATH}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hang).await.unwrap() });
    let (ok_url, seen) = receiver().await;
    seen.lock().unwrap().push(Received {
        headers: HeaderMap::new(),
        body: Bytes::new(),
        answered: 0,
    }); // so the fake answers 200 at once
    let dir = tempfile::tempdir().unwrap();
    let extra = "[webhooks]\ntimeout_ms = 300\nretry_initial_ms = 200\npoll_ms = 100\n";
    let cfg = config_text(&dir.path().join("data"), extra);
    let cfg = with_webhook(
        &with_webhook(&cfg, SECRET, &hang_url),
        OTHER_SECRET,
        &ok_url,
    );
    let server = Server::start_with(dir.path(), &cfg);
    let demo = server.client();
    let other = Client::new(&server.base, OTHER, OTHER_SECRET);
    board_closing_soon(&demo).await;
    board_closing_soon(&other).await;
    // The other tenant's delivery arrives although demo's receiver hangs.
    let got = until_delivered(&seen).await;
    let delivered: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
    assert!(
        !delivered.is_empty(),
        "the other tenant's webhook was not delivered"
    );
    assert_eq!(delivered[0].headers["x-tenant-id"], OTHER);
    // demo's attempts time out and are retried; its ingestion is unaffected.
    let listed = two_attempts(&demo, "").await;
    let d = listed["deliveries"]
        .as_array()
        .expect("two timed-out attempts");
    assert!(
        d.iter().all(|a| a["result"] == "failed"
            && a["error"] == "timed out"
            && a["http_status"].is_null()),
        "{listed}"
    );
    assert_eq!(listed["pending"], 1, "still waiting for the next retry");
    let (s, body) = demo
        .post("/v1/events", &event("during-hang", "p3", 1))
        .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (202, Some("accepted")),
        "{body}"
    );
}
