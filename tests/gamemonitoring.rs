//! Black-box GAMEMONITORING vote rewards through the real binary, against a fake vote API
//! served by the test on 127.0.0.1:0: signatures, rules, dedupe, API failures, suspension,
//! unclaimed votes, concurrency, SIGKILL mid-delivery and a top-voters leaderboard.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{json, Value};

const GM_TOKEN: &str = "gm-webhook-token-0123";

/// How the fake API answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Normal,
    /// 500 for everything.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Answer normally after this long.
    Delay(Duration),
}

#[derive(Clone)]
struct Fake {
    votes: Arc<Mutex<HashMap<String, Value>>>,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
    addr: SocketAddr,
}

impl Fake {
    async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            votes: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            calls: Arc::default(),
            addr: listener.local_addr().unwrap(),
        };
        let app = axum::Router::new()
            .route("/votes/{id}", axum::routing::get(fake_vote))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serve `GET /votes/{id}` as `{"response": response}`.
    fn add(&self, id: &str, response: Value) {
        self.votes
            .lock()
            .unwrap()
            .insert(id.to_owned(), json!({ "response": response }));
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn fake_vote(State(f): State<Fake>, Path(id): Path<String>) -> Response {
    f.calls.fetch_add(1, Ordering::SeqCst);
    let mode = *f.mode.lock().unwrap();
    match mode {
        Mode::Down => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::Garbage => return (StatusCode::OK, "<html>maintenance</html>").into_response(),
        Mode::Delay(d) => tokio::time::sleep(d).await,
        Mode::Normal => {}
    }
    let vote = f.votes.lock().unwrap().get(&id).cloned();
    match vote {
        Some(v) => axum::Json(v).into_response(),
        None => (StatusCode::NOT_FOUND, "{}").into_response(),
    }
}

/// The standard config with `demo` wired to the fake API (`other` has no integration).
fn gm_config(dir: &std::path::Path, api_base: &str, timeout_ms: u64) -> String {
    let gamemonitoring = format!(
        r#"
[tenants.gamemonitoring]
webhook_token = "{GM_TOKEN}"
api_base = "{api_base}"
timeout_ms = {timeout_ms}

[[tenants.gamemonitoring.rewards]]
server_id = "1"
coins = 100
items = ["vote-crate"]
role = "voter"
vip_days = 3

[[tenants.gamemonitoring.rewards]]
coins = 10
"#
    );
    [
        config_head(&dir.join("data")),
        tenant_toml(TENANT, SECRET, &gamemonitoring),
        tenant_toml(OTHER, OTHER_SECRET, ""),
    ]
    .concat()
}

/// A signed webhook body.
fn delivery(event_id: Value, event_type: &str, is_test: bool) -> Value {
    let mut body = json!({"event_id": event_id, "event_type": event_type, "is_test": is_test});
    let sig = phoenix::sources::gamemonitoring::signature::sign(
        GM_TOKEN.as_bytes(),
        body.as_object().unwrap(),
    );
    body["signature"] = json!(sig);
    body
}

async fn post_raw(base: &str, tenant: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/webhooks/gamemonitoring/{tenant}"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    decode(resp).await
}

async fn deliver(base: &str, body: &Value) -> (u16, Value) {
    post_raw(base, TENANT, body.to_string().into_bytes()).await
}

async fn vote(base: &str, id: &str) -> u16 {
    deliver(base, &delivery(json!(id), "server.vote", false))
        .await
        .0
}

async fn link(c: &Client, user: &str, nickname: &str) -> Value {
    let (status, body) = c
        .request(
            "PUT",
            &format!("/v1/players/{user}"),
            json!({ "nickname": nickname }).to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wallet(c: &Client, user: &str) -> (u16, Value) {
    c.get(&format!("/v1/players/{user}/wallet"), "").await
}

async fn balance(c: &Client, user: &str) -> u64 {
    match wallet(c, user).await {
        (200, w) => w["balance"].as_u64().unwrap(),
        (404, _) => 0,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn votes_grant_by_rule_once_and_other_deliveries_grant_nothing() {
    let (fake, _dir, s, c) = start(2000).await;
    link(&c, "u1", "PlayerName").await;
    fake.add(
        "9824cabb-2203-437e-9b6c-aba43dde3e4b",
        json!({"nickname": "PlayerName", "server": {"id": 1}, "user": {"id": 77}}),
    );
    fake.add(
        "v-2",
        json!({"nickname": "playername", "server": {"id": "2"}}),
    );
    fake.add("12345", json!({"nickname": "PLAYERNAME", "entity_id": "1"}));

    // Rule by server id, the default rule, and a numeric event_id (signed as its JSON text).
    assert_eq!(
        vote(&s.base, "9824cabb-2203-437e-9b6c-aba43dde3e4b").await,
        204
    );
    assert_eq!(balance(&c, "u1").await, 100);
    assert_eq!(vote(&s.base, "v-2").await, 204);
    assert_eq!(balance(&c, "u1").await, 110);
    let (st, b) = deliver(&s.base, &delivery(json!(12345), "server.vote", false)).await;
    assert_eq!(st, 204, "{b}");
    assert_eq!(balance(&c, "u1").await, 210);
    assert_eq!(fake.calls(), 3);

    let (_, w) = wallet(&c, "u1").await;
    assert_eq!(w["user_id"], "u1");
    let grants = w["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 3);
    let first = grants
        .iter()
        .find(|g| g["vote_id"] == "9824cabb-2203-437e-9b6c-aba43dde3e4b")
        .unwrap();
    assert_eq!(first["server_id"], "1");
    assert_eq!(first["coins"], 100);
    assert_eq!(first["items"], json!(["vote-crate"]));
    assert_eq!(first["role"], "voter");
    assert_eq!(first["vip_days"], 3);
    assert_eq!(first["gm_user_id"], "77");
    assert!(first["granted_at"].is_string());

    // Redelivery: 204, nothing changes, the API is not asked again.
    assert_eq!(
        vote(&s.base, "9824cabb-2203-437e-9b6c-aba43dde3e4b").await,
        204
    );
    assert_eq!(balance(&c, "u1").await, 210);
    assert_eq!(fake.calls(), 3);

    // A test delivery: 204, no fetch, no grant.
    let (st, _) = deliver(&s.base, &delivery(json!("test-1"), "server.vote", true)).await;
    assert_eq!(st, 204);
    assert_eq!(fake.calls(), 3);

    // Another event type: 204, recorded, nothing granted.
    let (st, _) = deliver(&s.base, &delivery(json!("e-9"), "server.review", false)).await;
    assert_eq!(st, 204);
    assert_eq!(balance(&c, "u1").await, 210);
    assert_eq!(fake.calls(), 3);
    let (st, list) = c.get("/v1/gamemonitoring/deliveries", "limit=100").await;
    assert_eq!(st, 200, "{list}");
    let list = list["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    assert!(list
        .iter()
        .any(|d| d["event_type"] == "server.review" && d["status"] == "ignored"));

    // Bad signatures.
    let mut bad = delivery(json!("v-2"), "server.vote", false);
    bad["event_id"] = json!("v-3");
    let (st, b) = deliver(&s.base, &bad).await;
    assert_envelope(st, &b, 401, "UNAUTHORIZED");
    let mut unsigned = delivery(json!("v-3"), "server.vote", false);
    unsigned.as_object_mut().unwrap().remove("signature");
    let (st, b) = deliver(&s.base, &unsigned).await;
    assert_envelope(st, &b, 401, "UNAUTHORIZED");

    // Unknown tenant, and a tenant without the integration: the same 404.
    let body = delivery(json!("v-2"), "server.vote", false).to_string();
    for tenant in ["nobody", OTHER] {
        let (st, b) = post_raw(&s.base, tenant, body.clone().into_bytes()).await;
        assert_envelope(st, &b, 404, "NOT_FOUND");
    }

    // Malformed bodies.
    let (st, b) = post_raw(&s.base, TENANT, b"{not json".to_vec()).await;
    assert_envelope(st, &b, 400, "VALIDATION_ERROR");
    let (st, b) = post_raw(&s.base, TENANT, vec![b'"', 0xff, b'"']).await;
    assert_envelope(st, &b, 400, "VALIDATION_ERROR");
    let (st, b) = post_raw(&s.base, TENANT, b"[1,2]".to_vec()).await;
    assert_envelope(st, &b, 400, "VALIDATION_ERROR");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let (st, b) = post_raw(&s.base, TENANT, big.into_bytes()).await;
    assert_envelope(st, &b, 413, "PAYLOAD_TOO_LARGE");

    // Wallet of a stranger; no grant went anywhere else.
    let (st, b) = wallet(&c, "stranger").await;
    assert_envelope(st, &b, 404, "NOT_FOUND");
    assert_eq!(balance(&c, "u1").await, 210);
}

#[tokio::test]
async fn api_failures_grant_nothing_and_a_resend_grants_once() {
    let (fake, _dir, s, c) = start_with_player(300, "v-1").await;

    let check_5xx = |st: u16, b: &Value| {
        assert!((500..600).contains(&st), "{st} {b}");
        assert_eq!(b["error"]["status"], st, "{b}");
        let text = b.to_string();
        for secret in [GM_TOKEN, fake.base().as_str(), "127.0.0.1", "votes/"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    };
    for mode in [
        Mode::Down,
        Mode::Garbage,
        Mode::Delay(Duration::from_millis(1500)),
    ] {
        fake.set(mode);
        let (st, b) = deliver(&s.base, &delivery(json!("v-1"), "server.vote", false)).await;
        check_5xx(st, &b);
        assert_eq!(balance(&c, "u1").await, 0, "{mode:?}");
    }
    // A vote the API does not know (404 there; a missing nickname is the same): 5xx.
    fake.set(Mode::Normal);
    fake.add("v-nonick", json!({"server": {"id": 1}}));
    for id in ["v-unknown", "v-nonick"] {
        let (st, b) = deliver(&s.base, &delivery(json!(id), "server.vote", false)).await;
        check_5xx(st, &b);
    }
    assert_eq!(balance(&c, "u1").await, 0);

    // Fixed: the resend grants, once.
    assert_eq!(vote(&s.base, "v-1").await, 204);
    assert_eq!(balance(&c, "u1").await, 100);
    assert_eq!(vote(&s.base, "v-1").await, 204);
    assert_eq!(balance(&c, "u1").await, 100);
}

#[tokio::test]
async fn unreachable_api_is_a_5xx_without_internals() {
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &gm_config(dir.path(), &base, 1000));
    let (st, b) = deliver(&s.base, &delivery(json!("v-1"), "server.vote", false)).await;
    assert_envelope(st, &b, 503, "UNAVAILABLE");
    assert!(!b.to_string().contains(&base) && !b.to_string().contains(GM_TOKEN));
}

#[tokio::test]
async fn unknown_nickname_waits_unclaimed_and_is_granted_once_on_link() {
    let (fake, _dir, s, c) = start(2000).await;
    fake.add("v-g1", json!({"nickname": "Ghost", "server": {"id": 1}}));
    fake.add("v-g2", json!({"nickname": "ghost", "server": {"id": 5}}));
    assert_eq!(vote(&s.base, "v-g1").await, 204);
    assert_eq!(vote(&s.base, "v-g2").await, 204);
    assert_eq!(wallet(&c, "u9").await.0, 404);
    let (_, list) = c.get("/v1/gamemonitoring/deliveries", "").await;
    assert!(list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "unclaimed"));

    let linked = link(&c, "u9", "GHOST").await;
    assert_eq!(linked["claimed"].as_array().unwrap().len(), 2, "{linked}");
    assert_eq!(linked["balance"], 110);
    assert_eq!(balance(&c, "u9").await, 110);
    // Linking again, or redelivering, grants nothing more.
    let again = link(&c, "u9", "ghost").await;
    assert_eq!(again["claimed"].as_array().unwrap().len(), 0);
    assert_eq!(vote(&s.base, "v-g1").await, 204);
    assert_eq!(balance(&c, "u9").await, 110);
    let (_, w) = wallet(&c, "u9").await;
    assert_eq!(w["grants"].as_array().unwrap().len(), 2);
    assert_eq!(w["nicknames"], json!(["ghost"]));
}

/// A fake API and a server using it with this API timeout.
async fn start(timeout_ms: u64) -> (Fake, tempfile::TempDir, Server, Client) {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &gm_config(dir.path(), &fake.base(), timeout_ms));
    let c = s.client();
    (fake, dir, s, c)
}

/// [`start`], with player u1 linked to "PlayerName", for whom the fake serves vote
/// `vote_id` on server 1.
async fn start_with_player(
    timeout_ms: u64,
    vote_id: &str,
) -> (Fake, tempfile::TempDir, Server, Client) {
    let (fake, dir, s, c) = start(timeout_ms).await;
    link(&c, "u1", "PlayerName").await;
    fake.add(
        vote_id,
        json!({"nickname": "PlayerName", "server": {"id": 1}}),
    );
    (fake, dir, s, c)
}

#[tokio::test]
async fn twenty_concurrent_duplicates_grant_once() {
    let (fake, _dir, s, c) = start_with_player(2000, "v-c").await;
    // Hold the API a little so the deliveries overlap inside the handler.
    fake.set(Mode::Delay(Duration::from_millis(200)));
    let body = delivery(json!("v-c"), "server.vote", false);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (base, body) = (s.base.clone(), body.clone());
            tokio::spawn(async move { deliver(&base, &body).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 204);
    }
    assert_eq!(balance(&c, "u1").await, 100);
    let (_, w) = wallet(&c, "u1").await;
    assert_eq!(w["grants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sigkill_mid_delivery_then_resend_grants_once() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = gm_config(dir.path(), &fake.base(), 10_000);
    let mut s = Server::start_with(dir.path(), &config);
    link(&s.client(), "u1", "PlayerName").await;
    fake.add(
        "v-k",
        json!({"nickname": "PlayerName", "server": {"id": 1}}),
    );
    fake.set(Mode::Delay(Duration::from_secs(5)));
    let body = delivery(json!("v-k"), "server.vote", false);
    let pending = {
        let (base, body) = (s.base.clone(), body.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/webhooks/gamemonitoring/{TENANT}"))
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    eventually("the webhook is waiting on the API", || async {
        fake.calls() == 1
    })
    .await;
    s.kill();
    assert!(
        pending.await.unwrap().is_err(),
        "the killed server answered"
    );
    fake.set(Mode::Normal);

    let s = Server::start_with(dir.path(), &config);
    let c = s.client();
    assert_eq!(
        balance(&c, "u1").await,
        0,
        "nothing granted before the crash"
    );
    assert_eq!(deliver(&s.base, &body).await.0, 204);
    assert_eq!(balance(&c, "u1").await, 100);
    assert_eq!(deliver(&s.base, &body).await.0, 204);
    assert_eq!(balance(&c, "u1").await, 100);
}

#[tokio::test]
async fn a_monthly_top_voters_board_counts_votes() {
    let (fake, _dir, s, c) = start(2000).await;
    let (st, b) = c
        .put_board(
            "top-voters",
            &json!({"rules": [{"event_type": "gamemonitoring.vote", "points_expression": "1"}],
                    "aggregation": "count", "timeframes": ["monthly"]}),
        )
        .await;
    assert!(st == 200 || st == 201, "{st} {b}");
    link(&c, "alice", "Alice").await;
    for (id, nick) in [("a1", "Alice"), ("a2", "alice"), ("b1", "Bob")] {
        fake.add(id, json!({"nickname": nick, "server": {"id": 1}}));
        assert_eq!(vote(&s.base, id).await, 204);
    }
    // Bob's vote is unclaimed until Bob links: then it counts too.
    link(&c, "bob", "bob").await;
    // A redelivery does not count twice.
    assert_eq!(vote(&s.base, "a1").await, 204);
    let want = [("alice".to_owned(), 2.0), ("bob".to_owned(), 1.0)];
    wait_for(
        "standings show alice 2, bob 1",
        Duration::from_secs(10),
        || async {
            let (st, v) = c.standings("top-voters", "timeframe=monthly").await;
            assert_eq!(st, 200, "{v}");
            if user_scores(&v) == want {
                Break(())
            } else {
                Continue(v)
            }
        },
    )
    .await;
}

/// Suspend the tenant through the operator API (or resume it).
async fn set_suspended(base: &str, suspended: bool) {
    let action = if suspended { "suspend" } else { "resume" };
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/admin/tenants/{TENANT}/{action}"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("admin request");
    assert_eq!(resp.status(), 200, "{action}");
}

#[tokio::test]
async fn a_suspended_tenant_gets_403_and_nothing_changes_until_resumed() {
    let (fake, _dir, s, c) = start_with_player(2000, "v-s").await;

    set_suspended(&s.base, true).await;
    let (st, body) = deliver(&s.base, &delivery(json!("v-s"), "server.vote", false)).await;
    assert_envelope(st, &body, 403, "FORBIDDEN");
    assert_eq!(
        fake.calls(),
        0,
        "a suspended tenant's vote is not looked up"
    );

    // Resumed, the same delivery is new: looked up and granted once.
    set_suspended(&s.base, false).await;
    assert_eq!(vote(&s.base, "v-s").await, 204);
    assert_eq!(vote(&s.base, "v-s").await, 204);
    assert_eq!(fake.calls(), 1);
    assert_eq!(balance(&c, "u1").await, 100);
}
