//! Leaderboard, event and token helpers on the signing [`Client`]: create a board, ingest
//! events, poll standings until they show an expected table, mint client tokens; and the
//! tables that standings and per-event results are compared as.

use std::ops::ControlFlow::{Break, Continue};
use std::time::Duration;

use serde_json::{json, Value};

use super::{assert_envelope, wait_for, Client};

/// One standings entry as compared in tests: (rank, user, score).
pub type Row = (u64, String, f64);

impl Client {
    /// PUT a board definition, which must be created or replaced (200 or 201).
    pub async fn create_board(&self, id: &str, def: &Value) {
        let (s, body) = self.put_board(id, def).await;
        assert!(s == 200 || s == 201, "{s} {body}");
    }

    /// POST `/v1/events/bulk` with these events.
    pub async fn bulk(&self, events: &[Value]) -> (u16, Value) {
        self.post("/v1/events/bulk", &json!({ "events": events }))
            .await
    }

    /// Ingest `events` in bulk requests of at most 100; every event must be accepted.
    pub async fn ingest(&self, events: &[Value]) {
        for chunk in events.chunks(100) {
            let (s, body) = self.bulk(chunk).await;
            assert_eq!(s, 202, "{body}");
            assert_eq!(
                body["accepted"].as_u64(),
                Some(chunk.len() as u64),
                "{body}"
            );
        }
    }

    /// `GET /v1/leaderboards/{id}/standings?query`.
    pub async fn standings(&self, id: &str, query: &str) -> (u16, Value) {
        self.get(&format!("/v1/leaderboards/{id}/standings"), query)
            .await
    }

    /// `GET /v1/leaderboards/{id}/users/{user}?query`: a user's rank and neighbours.
    pub async fn user(&self, id: &str, user: &str, query: &str) -> (u16, Value) {
        self.get(&format!("/v1/leaderboards/{id}/users/{user}"), query)
            .await
    }

    /// Poll a standings query until it shows `want`, and return that answer (or fail with the
    /// last one after 30 s: the machine is shared, and a restarted board replays first).
    pub async fn expect_standings(&self, id: &str, query: &str, want: Vec<Row>) -> Value {
        let what = format!("{id}?{query} shows {want:?}");
        wait_for(&what, Duration::from_secs(30), || async {
            match self.standings(id, query).await {
                (200, v) if table(&v) == want => Break(v),
                (s, v) => Continue(json!({"status": s, "body": v})),
            }
        })
        .await
    }

    /// Mint a client token for `user` (201).
    pub async fn token(&self, user: &str, ttl_seconds: i64) -> String {
        let (s, t) = self
            .post(
                "/v1/tokens",
                &json!({"user_id": user, "ttl_seconds": ttl_seconds}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        t["token"].as_str().unwrap().to_owned()
    }

    /// Every one of `queries` on `GET path` is refused with a 400 envelope.
    pub async fn assert_queries_invalid(&self, path: &str, queries: &[&str]) {
        for query in queries {
            let (s, e) = self.get(path, query).await;
            assert_envelope(s, &e, 400, "VALIDATION_ERROR");
        }
    }

    /// A signed DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request("DELETE", path, b"").await
    }
}

/// The `entries` of a standings (or user) answer as rows.
pub fn table(v: &Value) -> Vec<Row> {
    v["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {v}"))
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().unwrap(),
                e["user_id"].as_str().unwrap().to_owned(),
                e["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

pub fn row(rank: u64, user: &str, score: f64) -> Row {
    (rank, user.to_owned(), score)
}

/// Rows ranked 1, 2, 3… in the order given.
pub fn ranked(list: &[(&str, f64)]) -> Vec<Row> {
    list.iter()
        .zip(1..)
        .map(|((user, score), rank)| row(rank, user, *score))
        .collect()
}

/// (user, score) of each entry; empty while the answer has no entries.
pub fn user_scores(v: &Value) -> Vec<(String, f64)> {
    v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The string `key` of every item of the array `list` (e.g. each result's `status`).
pub fn strs<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

/// A rewarded `season` board whose previous hourly window closes `in_seconds` from now.
pub struct ClosingSeason {
    /// The closing window's key (`2026-12-01T17`).
    pub key: String,
    /// The board definition: tiers rank 1 → 1000 coins + `gold-cup`, ranks 2-3 → 300, the
    /// top 100 % → 7; `late_grace_seconds` = time since this hour began + `in_seconds`.
    pub def: Value,
    /// An `occurred_at` inside the closing window (10 minutes before it ends).
    pub at: String,
    /// The start of the current hour.
    pub hour: chrono::DateTime<chrono::Utc>,
}

/// See [`ClosingSeason`].
pub fn closing_season(in_seconds: i64) -> ClosingSeason {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap();
    let grace = (now - hour).num_seconds() + in_seconds;
    let key = (hour - TimeDelta::hours(1))
        .format("%Y-%m-%dT%H")
        .to_string();
    let def = json!({"name": "Season", "rules": [{"event_type": "match.*", "points_expression": "attrs.score"}],
        "timeframes": ["hourly", "all_time"], "late_grace_seconds": grace,
        "rewards": [{"ranks": [1, 1], "coins": 1000, "items": ["gold-cup"]},
                    {"ranks": [2, 3], "coins": 300},
                    {"top_percent": 100, "coins": 7}]});
    let at = (hour - TimeDelta::minutes(10)).to_rfc3339();
    ClosingSeason { key, def, at, hour }
}
