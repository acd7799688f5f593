//! The bulk read path against the get path, on a real 3-server cluster (testkit): the same
//! entries, ids, positions and times, over ranges larger than `bulk_threshold`, with a
//! purged prefix. Plus an `#[ignore]`d timing of `recent_ids` over large windows.

use std::time::{Duration, Instant};

use super::read::{Span, Want};
use super::{JetStreamLog, JetStreamLogConfig};
use crate::cluster::log_contract;
use crate::cluster::testkit::{cluster_or_skip, NatsCluster};
use crate::store::{EventLog, LogEntry};

/// A log that reads everything by message gets (the reference).
fn gets_only(cluster: &NatsCluster) -> JetStreamLog {
    JetStreamLog::open(JetStreamLogConfig {
        urls: cluster.urls(),
        bulk_threshold: usize::MAX,
        ..Default::default()
    })
    .expect("open")
}

/// A log that reads any range of more than 8 positions in bulk, 100 messages (or 16 KiB)
/// per pull, so one read takes many pulls.
fn bulk_first(cluster: &NatsCluster) -> JetStreamLog {
    JetStreamLog::open(JetStreamLogConfig {
        urls: cluster.urls(),
        bulk_threshold: 8,
        read_batch: 100,
        read_batch_bytes: 16 << 10,
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .expect("open")
}

/// `n` events from position `first`, acceptance time `ms0 + seq / 10` (ten events per
/// millisecond), appended and synced in batches of 500.
fn fill(log: &JetStreamLog, tenant: &str, first: u64, n: u64, ms0: i64) {
    let mut seq = first;
    while seq < first + n {
        let end = (seq + 500).min(first + n);
        let rows: Vec<(i64, String, String)> = (seq..end)
            .map(|s| {
                let ms = ms0 + i64::try_from(s / 10).unwrap();
                (
                    ms,
                    format!("e{s}"),
                    format!(r#"{{"s":{s},"pad":"{}"}}"#, "p".repeat(200)),
                )
            })
            .collect();
        let entries: Vec<_> = rows
            .iter()
            .map(|(ms, id, json)| (*ms, id.as_str(), json.as_str()))
            .collect();
        log.append(tenant, seq, &entries).expect("append");
        log.sync().expect("sync");
        seq = end;
    }
}

/// Drop every position below `keep_from` (retention's purge).
fn purge_below(log: &JetStreamLog, tenant: &str, keep_from: u64) {
    let js = log.inner.js.clone();
    let (stream, _) = JetStreamLog::stream_of(tenant);
    log.bridge
        .run(async move {
            let s = js.get_stream(&stream).await.expect("stream");
            s.purge().sequence(keep_from).await.expect("purge");
        })
        .expect("bridge");
}

/// What the consumer alone delivers of `lo..=hi`, and where it stopped.
fn consume(log: &JetStreamLog, tenant: &str, lo: u64, hi: u64, want: Want) -> (Vec<LogEntry>, u64) {
    let inner = log.inner.clone();
    let t = inner.tenant(tenant);
    let tenant = tenant.to_owned();
    log.bridge
        .run(async move {
            let span = Span {
                tenant: &tenant,
                t: &t,
                lo,
                hi,
                want,
            };
            inner.consume(span).await
        })
        .expect("bridge")
        .expect("consume")
}

fn ids(entries: &[LogEntry], since_ms: i64) -> Vec<(String, u64, i64)> {
    entries
        .iter()
        .filter(|e| e.accepted_ms >= since_ms)
        .map(|e| (e.event_id.clone(), e.seq, e.accepted_ms))
        .collect()
}

#[test]
fn bulk_reads_return_what_gets_return_over_a_purged_prefix() {
    let Some(cluster) = cluster_or_skip("bulk_reads_return_what_gets_return_over_a_purged_prefix")
    else {
        return;
    };
    let (gets, bulk) = (gets_only(&cluster), bulk_first(&cluster));
    let tenant = "bulk-eq";
    fill(&bulk, tenant, 1, 1_500, 1_000_000);
    purge_below(&bulk, tenant, 301);
    assert_eq!(bulk.first_seq(tenant).unwrap(), 301);

    let all = gets.read_from(tenant, 1, 10_000).unwrap();
    assert_eq!(all.len(), 1_200, "the get path after the purge");
    assert_eq!((all[0].seq, all[1_199].seq), (301, 1_500));
    assert_eq!(bulk.read_from(tenant, 1, 10_000).unwrap(), all, "from 1");
    // The consumer alone (no gets filling in) delivers it all, whole and by ids.
    for want in [Want::Entries, Want::Ids] {
        let (got, next) = consume(&bulk, tenant, 1, 1_500, want);
        assert_eq!(
            next, 1_501,
            "{want:?}: the consumer reached the leader's last position"
        );
        let strip = |e: &LogEntry| LogEntry {
            json: if want == Want::Ids {
                String::new()
            } else {
                e.json.clone()
            },
            ..e.clone()
        };
        assert_eq!(got, all.iter().map(strip).collect::<Vec<_>>(), "{want:?}");
    }
    for (from, max) in [(250, 400), (700, 500), (1_450, 1_000), (301, 9)] {
        let want = gets.read_from(tenant, from, max).unwrap();
        assert_eq!(
            bulk.read_from(tenant, from, max).unwrap(),
            want,
            "{from}+{max}"
        );
    }
    assert!(bulk.read_from(tenant, 1_501, 100).unwrap().is_empty());

    // recent_ids: everything, a cut inside the kept range (mid-millisecond too), the first
    // kept time, the last time, and after the end.
    let first_ms = all[0].accepted_ms;
    let last_ms = all[1_199].accepted_ms;
    for since in [0, first_ms, first_ms + 1, 1_000_100, last_ms, last_ms + 1] {
        let want = ids(&all, since);
        assert_eq!(
            gets.recent_ids(tenant, since).unwrap(),
            want,
            "gets since {since}"
        );
        assert_eq!(
            bulk.recent_ids(tenant, since).unwrap(),
            want,
            "bulk since {since}"
        );
    }
    assert_eq!(bulk.recent_ids(tenant, 0).unwrap().len(), 1_200);

    // Appending goes on after bulk reads, and the new tail reads the same both ways.
    fill(&bulk, tenant, 1_501, 40, 1_000_000);
    let tail = gets.read_from(tenant, 1_400, 1_000).unwrap();
    assert_eq!(tail.len(), 141);
    assert_eq!(bulk.read_from(tenant, 1_400, 1_000).unwrap(), tail);
}

#[test]
fn bulk_read_past_the_stream_end_falls_back_and_returns_what_is_there() {
    let Some(cluster) = cluster_or_skip("bulk_read_past_the_stream_end_falls_back") else {
        return;
    };
    let (gets, bulk) = (gets_only(&cluster), bulk_first(&cluster));
    let tenant = "bulk-end";
    fill(&bulk, tenant, 1, 50, 5_000);
    let want = gets.read_from(tenant, 1, 100).unwrap();
    // Ask the consumer for positions the stream does not have (as if its replica lagged):
    // it waits `request_timeout` for them, then reads the rest with gets.
    let inner = bulk.inner.clone();
    let t = inner.tenant(tenant);
    let started = Instant::now();
    let got = bulk
        .bridge
        .run(async move {
            let span = Span {
                tenant,
                t: &t,
                lo: 1,
                hi: 60,
                want: Want::Entries,
            };
            inner.bulk(span).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(got, want);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the missing positions: {:?}",
        started.elapsed()
    );
}

#[test]
fn jetstream_log_passes_the_contract_reading_in_bulk() {
    let Some(cluster) = cluster_or_skip("jetstream_log_passes_the_contract_reading_in_bulk") else {
        return;
    };
    let config = JetStreamLogConfig {
        urls: cluster.urls(),
        bulk_threshold: 1,
        read_batch: 7,
        ..Default::default()
    };
    log_contract::run(
        &mut || JetStreamLog::open(config.clone()).expect("open"),
        "bulk",
    );
}

/// `recent_ids` over 100 k and 600 k logged events, by gets and in bulk. Timing, not a
/// test: run it under the cluster lock with
/// `flock /work/cluster.lock cargo test --release -p phoenix-actors recent_ids_timing -- --ignored --nocapture`
/// (`PHOENIX_TIMING_SIZES=100000,600000` by default; `PHOENIX_TIMING_GETS_MAX` bounds the
/// sizes also timed by gets, default 100000).
#[test]
#[ignore = "timing; run by hand"]
fn recent_ids_timing() {
    let Some(cluster) = cluster_or_skip("recent_ids_timing") else {
        return;
    };
    let sizes: Vec<u64> = std::env::var("PHOENIX_TIMING_SIZES")
        .unwrap_or_else(|_| "100000,600000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("size"))
        .collect();
    let gets_max: u64 = std::env::var("PHOENIX_TIMING_GETS_MAX")
        .map_or(100_000, |s| s.parse().expect("PHOENIX_TIMING_GETS_MAX"));
    let (gets, bulk) = (gets_only(&cluster), {
        JetStreamLog::open(JetStreamLogConfig {
            urls: cluster.urls(),
            ..Default::default()
        })
        .expect("open")
    });
    for n in sizes {
        let tenant = format!("timing-{n}");
        let t0 = Instant::now();
        fill(&bulk, &tenant, 1, n, 1_000_000);
        println!("timing n={n} append {:.1}s", t0.elapsed().as_secs_f64());
        for run in 1..=3 {
            let t = Instant::now();
            let got = bulk.recent_ids(&tenant, 0).unwrap();
            assert_eq!(got.len() as u64, n);
            println!(
                "timing n={n} run={run} recent_ids bulk {:.2}s",
                t.elapsed().as_secs_f64()
            );
            let t = Instant::now();
            let got = bulk.read_from(&tenant, n / 2, 1024).unwrap();
            assert_eq!(got.len(), 1024);
            println!(
                "timing n={n} run={run} read_from 1024 bulk {:.3}s",
                t.elapsed().as_secs_f64()
            );
            let t = Instant::now();
            let got = gets.read_from(&tenant, n / 2, 1024).unwrap();
            assert_eq!(got.len(), 1024);
            println!(
                "timing n={n} run={run} read_from 1024 gets {:.3}s",
                t.elapsed().as_secs_f64()
            );
        }
        if n <= gets_max {
            let t = Instant::now();
            let got = gets.recent_ids(&tenant, 0).unwrap();
            assert_eq!(got.len() as u64, n);
            println!(
                "timing n={n} recent_ids gets {:.2}s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}
