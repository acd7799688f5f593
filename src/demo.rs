//! `phoenix demo`: the server with the example configuration, three demo leaderboards per
//! active tenant, and a traffic simulator sending signed events through the real HTTP path —
//! matches, XP and purchases from a few dozen players, with some duplicates and late events —
//! and a rewarded `season` board whose cron schedule closes a window every five minutes, so
//! the dashboard shows winners and grants within the first minutes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::types::TenantStatus;
use phoenix_actors::xorshift::XorShift as Rng;

/// The demo season: a cron schedule that closes a window every five minutes (plus 30 s of
/// late grace), each close granting the reward tiers below — so the dashboard shows winners
/// and grants within the first minutes, and new ones every five minutes after.
pub const SEASON_CRON: &str = "*/5 * * * *";

fn season_windows() -> Value {
    json!({"timeframes": ["all_time"], "schedules": [{"id": "season", "cron": SEASON_CRON}],
           "late_grace_seconds": 30})
}

/// The rewarded season board: top 3, places 4-10 and the best quarter.
fn season() -> Value {
    let mut def = json!({"name": "Season (rewards)",
        "rules": [{"event_type": "match.completed", "points_expression": "attrs.score"}],
        "rewards": [{"ranks": [1, 1], "coins": 1000, "items": ["gold-cup"]},
                    {"ranks": [2, 3], "coins": 500, "items": ["silver-cup"]},
                    {"ranks": [4, 10], "coins": 100},
                    {"top_percent": 25, "coins": 20}]});
    if let (Some(d), Value::Object(w)) = (def.as_object_mut(), season_windows()) {
        d.extend(w);
    }
    def
}

/// The demo leaderboards created for every active tenant (`now`: the demo's start).
pub fn boards_at(_now: chrono::DateTime<chrono::Utc>) -> Vec<(&'static str, Value)> {
    let mut b = boards();
    b.push(("season", season()));
    b
}

/// The three always-on demo leaderboards.
pub fn boards() -> Vec<(&'static str, Value)> {
    vec![
        (
            "ranked",
            json!({"name": "Ranked score",
            "rules": [{"event_type": "match.completed", "conditions": {"attrs.mode": {"eq": "ranked"}},
                       "points_expression": "attrs.score * 0.1 + max(attrs.kills - 3, 0)"}],
            "timeframes": ["hourly", "daily", "weekly", "all_time"], "late_grace_seconds": 3600}),
        ),
        (
            "xp",
            json!({"name": "XP", "rules": [{"event_type": "xp.granted", "points_expression": "attrs.xp"}],
            "timeframes": ["daily", "monthly", "all_time"]}),
        ),
        (
            "spenders",
            json!({"name": "Top spenders", "rules": [{"event_type": "purchase.settled", "points_expression": "attrs.amount"}],
            "timeframes": ["weekly", "all_time"]}),
        ),
    ]
}

const PLAYERS: [&str; 24] = [
    "aurora", "blaze", "cinder", "dusk", "ember", "frost", "gale", "havoc", "ivy", "jinx",
    "kestrel", "lumen", "moss", "nova", "onyx", "pyre", "quill", "rune", "sable", "talon", "umbra",
    "vex", "wren", "zephyr",
];

async fn signed(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: String,
) -> Option<u16> {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = crate::auth::sign(secret.as_bytes(), method, path, &ts, body.as_bytes());
    let req = if method == "PUT" {
        client.put(format!("{base}{path}"))
    } else {
        client.post(format!("{base}{path}"))
    };
    let resp = req
        .header("X-Tenant-Id", tenant)
        .header("X-Timestamp", ts)
        .header("X-Signature", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// Create the demo boards, then send about `rate` events/s per active tenant until the
/// process stops. `base` is the server's own address.
pub async fn simulate(config: Config, base: String, rate: u64) {
    let client = reqwest::Client::new();
    let tenants: Vec<(String, String)> = config
        .tenants
        .iter()
        .filter(|t| t.status == TenantStatus::Active)
        .map(|t| (t.id.clone(), t.secret.expose().to_owned()))
        .collect();
    let started = chrono::Utc::now();
    for (tenant, secret) in &tenants {
        for (id, def) in boards_at(started) {
            let path = format!("/v1/leaderboards/{id}");
            if signed(
                &client,
                &base,
                tenant,
                secret,
                "PUT",
                &path,
                def.to_string(),
            )
            .await
            .is_none_or(|s| s >= 300)
            {
                tracing::warn!(tenant, board = id, "demo board not created");
            }
        }
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01 ^ chrono::Utc::now().timestamp_micros() as u64);
    let batch = 10u64;
    let pause = Duration::from_secs_f64(batch as f64 / rate.max(1) as f64);
    let run = format!("{:x}", chrono::Utc::now().timestamp());
    let mut n = 0u64;
    let mut recent: Vec<Value> = Vec::new();
    loop {
        for (tenant, secret) in &tenants {
            let mut events = Vec::with_capacity(batch as usize);
            for _ in 0..batch {
                // ~3 % duplicates (a retried event), ~2 % late (two hours old).
                if !recent.is_empty() && rng.below(100) < 3 {
                    events.push(recent[rng.below(recent.len() as u64) as usize].clone());
                    continue;
                }
                n += 1;
                let player = PLAYERS[(rng.below(PLAYERS.len() as u64) as usize
                    + rng.below(3) as usize)
                    % PLAYERS.len()];
                let late = rng.below(100) < 2;
                let at = chrono::Utc::now() - chrono::Duration::hours(if late { 2 } else { 0 });
                let (ty, attrs) = match rng.below(10) {
                    0..=5 => (
                        "match.completed",
                        json!({"score": 200 + rng.below(1800), "kills": rng.below(12),
                        "mode": if rng.below(3) == 0 { "casual" } else { "ranked" }}),
                    ),
                    6..=8 => ("xp.granted", json!({"xp": 10 + rng.below(240)})),
                    _ => {
                        let amount = [0.99, 4.99, 9.99, 19.99][rng.below(4) as usize];
                        ("purchase.settled", json!({"amount": amount}))
                    }
                };
                let e = json!({"event_id": format!("demo-{run}-{n}"), "type": ty, "actor": {"user_id": player,
                    "metadata": {"region": "na-east"}}, "occurred_at": at.to_rfc3339(), "attrs": attrs});
                if recent.len() < 200 {
                    recent.push(e.clone());
                } else {
                    recent[(n % 200) as usize] = e.clone();
                }
                events.push(e);
            }
            let body = json!({"events": events}).to_string();
            let _ = signed(
                &client,
                &base,
                tenant,
                secret,
                "POST",
                "/v1/events/bulk",
                body,
            )
            .await;
        }
        tokio::time::sleep(pause).await;
    }
}
