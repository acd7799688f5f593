//! `phoenix demo` runs from the example config and standings move within seconds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn demo_mode_makes_standings_move() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/phoenix.example.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["demo", "--rate", "300", "--config", example])
        .env("PHOENIX_LISTEN", "127.0.0.1:0")
        .env("PHOENIX_DATA_DIR", dir.path().join("data"))
        .env("PHOENIX_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("phoenix listening on ")
        .unwrap()
        .to_owned();
    let mut demo = String::new();
    out.read_line(&mut demo).unwrap();
    assert!(demo.contains("operator token"), "{demo}");

    let c = Client::new(&base, "demo", "demo-secret-0123456789");
    let mut totals = Vec::new();
    for _ in 0..100 {
        let (s, v) = c
            .get(
                "/v1/leaderboards/ranked/standings",
                "timeframe=all_time&limit=5",
            )
            .await;
        // Count only samples taken once something has scored.
        let top = v["entries"][0]["score"].as_f64().unwrap_or(0.0);
        if s == 200 && top > 0.0 {
            totals.push(top);
            if top > totals[0] {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rewarded season board is there, closing a window every five minutes.
    let (s, season) = c.get("/v1/leaderboards/season", "").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(s, 200, "{season}");
    assert_eq!(
        season["rewards"][0]["ranks"],
        serde_json::json!([1, 1]),
        "{season}"
    );
    assert_eq!(
        season["schedules"][0]["cron"], "*/5 * * * *",
        "the season closes every five minutes: {season}"
    );
    assert!(
        totals.len() >= 2 && totals.last() > totals.first() && totals[0] > 0.0,
        "standings moved: {totals:?}"
    );
}
