//! `phoenix demo`: the server with the example configuration, three demo leaderboards per
//! active tenant, and a traffic simulator sending signed events through the real HTTP path —
//! matches, XP and purchases from a few dozen players, with some duplicates and late events.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Config, TenantStatus};

/// The demo leaderboards created for every active tenant.
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

/// A tiny deterministic generator (xorshift), enough for demo traffic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
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
    for (tenant, secret) in &tenants {
        for (id, def) in boards() {
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
