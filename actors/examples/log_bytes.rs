//! Bytes on disk per logged event, and the log's write throughput, with and without record
//! compression, in one run: writes the load generator's event shape through `SledLog` in
//! commit rounds (one record per round, fsync per round), as the group committer does.
//!
//! `cargo run --release -p phoenix-actors --example log_bytes -- [EVENTS] [PER_ROUND]`
//! (defaults 1,000,000 and 50: a commit round of single events at ~45 k/s).

use std::time::Instant;

use phoenix_actors::store::{EventLog, SledLog};

fn event(i: u64, run: &str) -> (String, String) {
    let id = format!("{run}-{}-{i}", i / 100);
    let user = (i.wrapping_mul(2_654_435_761)) % 100_000;
    let json = format!(
        r#"{{"tenant_id":"bench","event_id":"{id}","type":"match.completed","actor":{{"user_id":"user-{user}","metadata":{{"region":"na-east","platform":"ios"}}}},"subject":{{"type":"match","id":"match-987"}},"occurred_at":"2026-12-01T09:{:02}:{:02}Z","attrs":{{"score":{},"duration_seconds":480,"victory":true}}}}"#,
        i / 60_000 % 60,
        i / 1_000 % 60,
        user % 2000
    );
    (id, json)
}

fn run(events: u64, per_round: u64, compress: bool) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = SledLog::open(dir.path(), 64 << 20)
        .expect("open")
        .with_compression(compress);
    let started = Instant::now();
    let mut raw = 0u64;
    let mut seq = 1;
    while seq <= events {
        let n = per_round.min(events - seq + 1);
        let round: Vec<(String, String)> = (seq..seq + n).map(|i| event(i, "lgbench")).collect();
        raw += round
            .iter()
            .map(|(i, j)| (i.len() + j.len()) as u64)
            .sum::<u64>();
        let entries: Vec<(i64, &str, &str)> = round
            .iter()
            .map(|(i, j)| (1_764_579_000_000, i.as_str(), j.as_str()))
            .collect();
        log.append("bench", seq, &entries).expect("append");
        log.sync().expect("sync");
        seq += n;
    }
    let secs = started.elapsed().as_secs_f64();
    // Let sled settle (segment cleanup) and measure the files.
    log.sync().expect("sync");
    drop(log);
    let bytes: u64 = walk(dir.path());
    (
        bytes as f64 / events as f64,
        events as f64 / secs,
        raw as f64 / events as f64,
    )
}

fn walk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                walk(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_round: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    println!("{events} events, {per_round} per commit round (one record, one fsync each)");
    for compress in [false, true] {
        let (per_event, rate, raw) = run(events, per_round, compress);
        println!(
            "{:<6} {per_event:>7.1} bytes on disk per event ({raw:.0} bytes of id+JSON), {rate:>9.0} events/s written and fsync'd",
            if compress { "lz4" } else { "plain" }
        );
    }
}
