//! Old data dirs still open. `tests/fixtures/datadir-2026-11` was written by the binary of
//! commit ca53b35 (2026-12-01, before the edge redesign and the storage lifecycle changes):
//! two tenants with boards and events, a linked player with a granted vote reward, and Ninja
//! Metrics dimensions. `expected.json` beside it holds what that binary answered. Every later
//! binary must open a copy of the directory and answer the same.
//!
//! To rewrite the fixture with the current binary (only when the format is meant to change):
//! `PHOENIX_WRITE_FIXTURE=1 cargo test --test compat -- --ignored write_fixture`.

mod common;

use std::path::{Path, PathBuf};

use axum::extract::Path as UrlPath;
use common::*;
use serde_json::{json, Value};

const GM_TOKEN: &str = "gm-webhook-token-0123456789";
const NM_QUERY: &str = "client_id=100&app_id=100&api_client=compat&app_pwd=nm-pass-123";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-2026-11")
}

/// The config the fixture was written with; `api_base` is the fake vote API (unused when
/// reading).
fn config(data: &Path, api_base: &str) -> String {
    let integrations = format!(
        r#"
[tenants.ninja_metrics]
client_id = "100"
app_id = "100"
app_pwd = "nm-pass-123"

[tenants.gamemonitoring]
webhook_token = "{GM_TOKEN}"
api_base = "{api_base}"
timeout_ms = 2000

[[tenants.gamemonitoring.rewards]]
coins = 25
items = ["vote-crate"]
"#
    );
    [
        config_head(data),
        tenant_toml(TENANT, SECRET, &integrations),
        tenant_toml(OTHER, OTHER_SECRET, ""),
    ]
    .concat()
}

fn nm(ts: &str, data: Value) -> Value {
    json!({"timestamp": ts, "data": data})
}

/// Every read the fixture is checked with: (what, tenant, path, query).
fn reads() -> Vec<(&'static str, &'static str, String, &'static str)> {
    vec![
        (
            "score all_time",
            TENANT,
            "/v1/leaderboards/score/standings".into(),
            "timeframe=all_time&limit=50",
        ),
        (
            "score daily window",
            TENANT,
            "/v1/leaderboards/score/standings".into(),
            "timeframe=daily&window=2026-11-30&limit=50",
        ),
        (
            "kills monthly",
            TENANT,
            "/v1/leaderboards/kills/standings".into(),
            "timeframe=monthly&window=2026-11&limit=50",
        ),
        (
            "xp from ninja metrics",
            TENANT,
            "/v1/leaderboards/xp/standings".into(),
            "timeframe=all_time&limit=50",
        ),
        (
            "voters",
            TENANT,
            "/v1/leaderboards/voters/standings".into(),
            "timeframe=all_time&limit=50",
        ),
        (
            "user u3 around",
            TENANT,
            "/v1/leaderboards/score/users/u3".into(),
            "timeframe=all_time&around=2",
        ),
        (
            "other tenant",
            OTHER,
            "/v1/leaderboards/solo/standings".into(),
            "timeframe=all_time",
        ),
        ("wallet", TENANT, "/v1/players/p1/wallet".into(), ""),
        (
            "account",
            TENANT,
            "/v1/ninja/accounts/cool_guy@example.com".into(),
            "",
        ),
        ("shard", TENANT, "/v1/ninja/shards/42".into(), ""),
        ("item", TENANT, "/v1/ninja/items/66".into(), ""),
        ("currency", TENANT, "/v1/ninja/currencies/mucha".into(), ""),
        ("boards", TENANT, "/v1/leaderboards".into(), ""),
    ]
}

async fn read_all(base: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (what, tenant, path, query) in reads() {
        let secret = if tenant == TENANT {
            SECRET
        } else {
            OTHER_SECRET
        };
        let (status, body) = Client::new(base, tenant, secret).get(&path, query).await;
        out.insert(what.into(), json!({"status": status, "body": body}));
    }
    Value::Object(out)
}

/// Where `actual` differs from `expected`, if anywhere (fields a newer version adds are
/// ignored: only the fixture's keys are compared).
fn mismatch(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, v)| match a.get(k) {
            Some(got) => mismatch(v, got, &format!("{at}.{k}")),
            None => Some(format!("{at}.{k}: missing")),
        }),
        (Value::Array(e), Value::Array(a)) if e.len() != a.len() => {
            Some(format!("{at}: {} items, expected {}", a.len(), e.len()))
        }
        (Value::Array(e), Value::Array(a)) => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (x, y))| mismatch(x, y, &format!("{at}[{i}]"))),
        (e, a) if e == a => None,
        (e, a) => Some(format!("{at}: {a}, expected {e}")),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn an_old_data_dir_opens_with_identical_answers() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixture_dir().join("data"), &data);
    let server = Server::start_with(dir.path(), &config(&data, "http://127.0.0.1:9"));
    // Boards rebuild or load their checkpoints in the background: wait for the standings.
    let mut last = String::new();
    for _ in 0..100 {
        let got = read_all(&server.base).await;
        match mismatch(&expected, &got, "") {
            None => return,
            Some(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the old data dir answers differently: {last}");
}

/// Writes the fixture with the current binary. Ignored: run it only to change the fixture.
#[tokio::test]
#[ignore]
async fn write_fixture() {
    assert!(
        std::env::var("PHOENIX_WRITE_FIXTURE").is_ok(),
        "set PHOENIX_WRITE_FIXTURE=1 to rewrite tests/fixtures/datadir-2026-11"
    );
    // The fake vote API: vote v1 by "Hero".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/votes/{id}",
        axum::routing::get(|UrlPath(id): UrlPath<String>| async move {
            axum::Json(json!({"response": {"id": id, "nickname": "Hero", "server": {"id": 7}}}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = out.join("data");
    let mut server = Server::start_with(work.path(), &config(&data, &api));
    let c = server.client();
    let boards = [
        (
            "score",
            json!({"name": "Score", "rules": [{"event_type": "match.*", "points_expression": "attrs.score"}], "timeframes": ["daily", "all_time"], "late_grace_seconds": 259200}),
        ),
        (
            "kills",
            json!({"name": "Kills", "rules": [{"event_type": "match.completed", "points_expression": "attrs.kills"}], "aggregation": "max", "timeframes": ["monthly"], "late_grace_seconds": 259200}),
        ),
        (
            "xp",
            json!({"name": "XP", "rules": [{"event_type": "nm.player_xp", "points_expression": "attrs.xp_amount"}], "timeframes": ["all_time"]}),
        ),
        (
            "voters",
            json!({"name": "Voters", "rules": [{"event_type": "gamemonitoring.vote", "points_expression": "1"}], "aggregation": "count", "timeframes": ["all_time"]}),
        ),
    ];
    for (id, def) in &boards {
        let (s, b) = c.put_board(id, def).await;
        assert_eq!(s, 201, "{b}");
    }
    let o = Client::new(&server.base, OTHER, OTHER_SECRET);
    let (s, _) = o
        .put_board("solo", &json!({"name": "Solo", "rules": [{"event_type": "*", "points_expression": "attrs.score"}], "timeframes": ["all_time"]}))
        .await;
    assert_eq!(s, 201);

    // Events on 2026-11-30 (a closed day by the time anyone reads the fixture) and a retry.
    let mut events = Vec::new();
    for i in 0..40 {
        let user = format!("u{}", i % 7);
        events.push(
            json!({"event_id": format!("e{i}"), "type": "match.completed",
            "actor": {"user_id": user}, "occurred_at": format!("2026-11-30T{:02}:15:00Z", i % 24),
            "attrs": {"score": (i * 37) % 100, "kills": i % 9}}),
        );
    }
    for chunk in events.chunks(20) {
        let (s, b) = c.post("/v1/events/bulk", &json!({"events": chunk})).await;
        assert_eq!(s, 202, "{b}");
    }
    let (s, b) = c.post("/v1/events", &events[3]).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("duplicate")));
    for i in 0..5 {
        let (s, _) = o
            .post("/v1/events", &json!({"event_id": format!("o{i}"), "type": "x", "actor": {"user_id": format!("z{i}")}, "occurred_at": "2026-11-30T10:00:00Z", "attrs": {"score": i}}))
            .await;
        assert_eq!(s, 202);
    }

    // Ninja Metrics dimensions (seed 003's examples) and an XP event.
    let http = reqwest::Client::new();
    for payload in [
        nm(
            "2013-01-11T22:01:12.173Z",
            json!({"type":13,"shard_id":42,"shard_desc":"the shard with answers to it all"}),
        ),
        nm(
            "2013-01-11T22:01:10.700Z",
            json!({"type":9,"account_id":"cool_guy@example.com","account_sub_type":"Free","account_lang":"en-US","account_country":"US","account_gender":"M","account_dob":"1980-09-22T05:00:00.000Z","account_currency_balance":42.42,"platform":"Facebook Mobile"}),
        ),
        nm(
            "2013-01-11T22:01:11.742Z",
            json!({"type":11,"account_id":"cool_guy@example.com","character_id":"wizard","character_class":"magic","character_sub_class":"healer","character_gender":"T","character_race":"fish","character_name":"Hero","shard_id":0}),
        ),
        nm(
            "2013-01-11T22:01:12.295Z",
            json!({"type":14,"virtual_currency_label":"mucha","virtual_currency_ex_rate":0.01}),
        ),
        nm(
            "2013-02-01T00:00:00.000Z",
            json!({"type":14,"virtual_currency_label":"mucha","virtual_currency_ex_rate":0.02}),
        ),
        nm(
            "2013-01-11T22:01:12.060Z",
            json!({"type":15,"item_id":66,"item_name":"the big blaster gun","item_type":"weapon","item_value":5,"item_segment":"UGC","account_id":"cool_guy@example.com","character_id":"wizard"}),
        ),
        nm(
            "2026-11-30T12:00:00.000Z",
            json!({"type":24,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"xp_amount":1200,"character_lvl":3,"grouped_flag":"N"}),
        ),
    ] {
        let resp = http
            .post(format!("{}/event?{NM_QUERY}", server.base))
            .header("Content-Type", "application/json")
            .body(payload.to_string())
            .send()
            .await
            .unwrap();
        let (s, b) = decode(resp).await;
        assert_eq!(s, 202, "{payload}: {b}");
    }

    // A linked player and a granted vote.
    let (s, b) = c
        .request(
            "PUT",
            "/v1/players/p1",
            json!({"nickname": "Hero"}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut vote = json!({"event_id": "v1", "event_type": "server.vote", "is_test": false});
    let sig = phoenix::sources::gamemonitoring::signature::sign(
        GM_TOKEN.as_bytes(),
        vote.as_object().unwrap(),
    );
    vote["signature"] = json!(sig);
    let resp = http
        .post(format!(
            "{}/v1/webhooks/gamemonitoring/{TENANT}",
            server.base
        ))
        .header("Content-Type", "application/json")
        .body(vote.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    // Let every board apply and checkpoint, then record the answers.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let answers = read_all(&server.base).await;
    for (what, v) in answers.as_object().unwrap() {
        assert_eq!(v["status"], 200, "{what}: {v}");
    }
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&answers).unwrap(),
    )
    .unwrap();
    server.kill();
}
