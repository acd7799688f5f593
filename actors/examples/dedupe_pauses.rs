//! Pause profile of the dedupe window: feed `--events` fresh ids in batches of 100 (one
//! `maintain()` per batch, as the tenant actor does) into a window of `--capacity`, and
//! report how long batches took: the slowest, and how many took over 2 / 5 / 10 ms. Growing
//! or rehashing the id maps is what makes a batch slow; this shows whether that work comes
//! in a few long pauses or is spread thin.
//!
//!   cargo run --release -p phoenix-actors --example dedupe_pauses -- 12000000 5000000

use std::time::Instant;

use phoenix_actors::dedupe::DedupeWindow;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map_or(12_000_000, |a| a.parse().expect("events"));
    let capacity: usize = args
        .next()
        .map_or(5_000_000, |a| a.parse().expect("capacity"));
    let mut w = DedupeWindow::new(300_000, capacity);
    let mut times = Vec::with_capacity((events / 100) as usize);
    let started = Instant::now();
    let mut seq = 0u64;
    while seq < events {
        let ids: Vec<String> = (0..100)
            .map(|j| format!("lg19a8c3d0e2f-{}-{j}", seq / 100))
            .collect();
        let t = Instant::now();
        w.maintain();
        for id in &ids {
            if w.check(id, 1_000).is_none() {
                w.insert(id, seq, 1_000);
            }
            seq += 1;
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = started.elapsed().as_secs_f64();
    let over = |ms: f64| times.iter().filter(|t| **t > ms).count();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "dedupe: {events} ids into capacity {capacity} in batches of 100: {total:.2} s; batch p50 {:.3} ms p99 {:.3} ms max {:.2} ms; batches over 2 ms: {}, over 5 ms: {}, over 10 ms: {}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 99 / 100],
        sorted[sorted.len() - 1],
        over(2.0),
        over(5.0),
        over(10.0)
    );
    // Where the slow batches were: seconds of 125 k ids/s (the half-rate bulk load).
    let mut slow: Vec<(usize, f64)> = times
        .iter()
        .enumerate()
        .filter(|(_, t)| **t > 5.0)
        .map(|(i, t)| (i, *t))
        .collect();
    slow.truncate(8);
    for (i, t) in slow {
        println!("  slow batch at {} ids: {t:.1} ms", i * 100);
    }
}
