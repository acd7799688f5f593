//! Durable appends on JetStream (R=3, a local 3-server cluster) beside SledLog, same run.
//!
//! For each log: single-event syncs (append one event, sync, repeat) and 100-event groups
//! (append 100, sync once), one writer; events/s and the sync (publish-ack) latency p50/p99.
//! Bounded: `SINGLES` syncs and `GROUPS` groups per log, all on 127.0.0.1.
//!
//! Run: `cargo run --release -p phoenix-actors --example jetstream_append`
//! (needs Debian's nats-server; `SINGLES=… GROUPS=…` change the counts).

use std::time::{Duration, Instant};

use phoenix_actors::cluster::testkit::NatsCluster;
use phoenix_actors::cluster::{JetStreamLog, JetStreamLogConfig};
use phoenix_actors::{EventLog, SledLog};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Append `groups` groups of `size` events to `tenant`, syncing after each; the latency of
/// each sync.
fn run(log: &dyn EventLog, tenant: &str, groups: usize, size: usize) -> (Duration, Vec<Duration>) {
    let body = format!(
        r#"{{"type":"match_end","user_id":"u-1","score":42,"pad":"{}"}}"#,
        "x".repeat(250)
    );
    let ids: Vec<String> = (0..groups * size)
        .map(|i| format!("{tenant}-{i}"))
        .collect();
    let mut lat = Vec::with_capacity(groups);
    let mut next = log.next_seq(tenant).expect("next_seq");
    let started = Instant::now();
    for g in 0..groups {
        let ms = chrono::Utc::now().timestamp_millis();
        let events: Vec<(i64, &str, &str)> = ids[g * size..(g + 1) * size]
            .iter()
            .map(|id| (ms, id.as_str(), body.as_str()))
            .collect();
        let t = Instant::now();
        log.append(tenant, next, &events).expect("append");
        log.sync().expect("sync");
        lat.push(t.elapsed());
        next += size as u64;
    }
    (started.elapsed(), lat)
}

fn report(name: &str, size: usize, (took, mut lat): (Duration, Vec<Duration>)) {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let events = lat.len() * size;
    println!(
        "{name:<10} groups of {size:>3}: {events:>6} events in {:>7.2?}  {:>8.0} events/s  sync p50 {:>8.2?}  p99 {:>8.2?}",
        took,
        events as f64 / took.as_secs_f64(),
        q(0.50),
        q(0.99)
    );
}

fn main() {
    let singles = count("SINGLES", 2_000);
    let groups = count("GROUPS", 200);
    let cluster = NatsCluster::start(3).expect("start 3 nats-servers (is nats-server installed?)");
    let js = JetStreamLog::open(JetStreamLogConfig {
        urls: cluster.urls(),
        replicas: 3,
        ..Default::default()
    })
    .expect("open the JetStream log");
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledLog::open(dir.path(), 64 << 20).expect("open sled");
    println!(
        "nats-server R=3 on 127.0.0.1 vs SledLog (fdatasync) in {}",
        dir.path().display()
    );
    // A short warm-up creates the stream and sled's tree.
    run(&js, "warm", 10, 1);
    run(&sled, "warm", 10, 1);
    report("jetstream", 1, run(&js, "single", singles, 1));
    report("sled", 1, run(&sled, "single", singles, 1));
    report("jetstream", 100, run(&js, "group", groups, 100));
    report("sled", 100, run(&sled, "group", groups, 100));
}
