//! Cost of scoring an event on a board with local-time windows or a cron schedule:
//! `BoardState::apply` of 200,000 events (1,000 users, `occurred_at` advancing 15 s per event
//! across ~35 days, accepted at once) on three boards with two windows each that differ only in
//! their calendar: UTC daily + weekly, Los Angeles daily + weekly, Los Angeles daily + a weekly
//! cron schedule; then the cron lookup alone without the board's per-timeframe span cache
//! (`Calendar::window_of` + `is_open`).
//!
//! Run: `cargo run --release -p phoenix-actors --example calendar_cost`

use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use phoenix_actors::leaderboard::definition::Definition;
use phoenix_actors::leaderboard::state::BoardState;
use phoenix_actors::leaderboard::window::Timeframe;
use serde_json::{json, Value};

fn def(extra: Value) -> Arc<Definition> {
    let mut d = json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}],
                       "timeframes": ["daily", "weekly"], "late_grace_seconds": 31_622_400});
    for (k, v) in extra.as_object().expect("object") {
        d[k] = v.clone();
    }
    Arc::new(Definition::from_json("b", &d).expect("definition"))
}

fn main() {
    let n = 200_000i64;
    let base = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let events: Vec<(i64, Value)> = (0..n)
        .map(|i| {
            let at = DateTime::from_timestamp(base + i * 15, 0).expect("in range");
            let e = json!({"type": "x", "actor": {"user_id": format!("u{}", i % 1000)},
                           "occurred_at": at.to_rfc3339(), "attrs": {"p": i % 7}});
            (at.timestamp_millis(), e)
        })
        .collect();
    let cron = json!([{"id": "weekly_tue", "cron": "0 10 * * 2"}]);
    for (name, d) in [
        ("utc daily+weekly", def(json!({}))),
        (
            "la daily+weekly",
            def(json!({"timezone": "America/Los_Angeles"})),
        ),
        (
            "la daily+cron",
            def(
                json!({"timezone": "America/Los_Angeles", "timeframes": ["daily"], "schedules": cron}),
            ),
        ),
    ] {
        let mut s = BoardState::new(d);
        let started = Instant::now();
        for (i, (acc, e)) in events.iter().enumerate() {
            s.apply(i as u64 + 1, *acc, e);
        }
        let per = started.elapsed().as_nanos() / n as u128;
        println!("{name:>22}: {per} ns per event (apply)");
    }
    let d = def(json!({"timezone": "America/Los_Angeles", "schedules": cron}));
    let tf: Timeframe = "weekly_tue".parse().expect("id");
    let started = Instant::now();
    let mut open = 0u64;
    for (acc, _) in &events {
        let t = DateTime::from_timestamp_millis(*acc).expect("in range");
        let k = d.calendar.window_of(tf, t).expect("a window");
        open += u64::from(d.calendar.is_open(k, t, 3600));
    }
    let per = started.elapsed().as_nanos() / n as u128;
    println!(
        "{:>22}: {per} ns per event ({open} open)",
        "cron lookup, uncached"
    );
}
