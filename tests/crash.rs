//! Crash test: SIGKILL a loaded `phoenix` child; after restart every event that got a 202 is
//! in the log exactly once, and nothing is in the log twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_doubles_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();

    let mut tasks = Vec::new();
    for w in 0..8 {
        let (c, acked, sent) = (server.client(), acked.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let bulk = i % 2 == 1;
                let ids: Vec<String> = if bulk {
                    (0..20).map(|j| format!("w{w}-{i}-{j}")).collect()
                } else {
                    vec![format!("w{w}-{i}")]
                };
                sent.lock().unwrap().extend(ids.iter().cloned());
                let result = if bulk {
                    let events: Vec<_> = ids.iter().map(|id| event(id, "u", 1)).collect();
                    c.http_post_json("/v1/events/bulk", &json!({ "events": events }))
                        .await
                } else {
                    c.http_post_json("/v1/events", &event(&ids[0], "u", 1))
                        .await
                };
                match result {
                    Some((202, body)) => {
                        let mut a = acked.lock().unwrap();
                        if bulk {
                            for r in body["results"].as_array().unwrap() {
                                assert_ne!(r["status"], "failed");
                                a.insert(r["event_id"].as_str().unwrap().to_owned());
                            }
                        } else {
                            a.insert(ids[0].clone());
                        }
                    }
                    // Connection reset by the kill, or a non-202: not acknowledged.
                    _ => return,
                }
            }
        }));
    }
    // Let load build up, then kill mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    drop(server);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the load generated acknowledgements ({})",
        acked.len()
    );

    let server = Server::start(dir.path());
    let c = server.client();
    let log = c.log().await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64().unwrap(),
            i as u64 + 1,
            "positions are gap-free"
        );
        *counts
            .entry(e["event"]["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let sent = sent.lock().unwrap().clone();
    assert!(
        counts.keys().all(|id| sent.contains(id)),
        "nothing in the log that was never sent"
    );
    eprintln!(
        "acked {} events; log holds {} after SIGKILL + restart",
        acked.len(),
        log.len()
    );

    // And a retry of an acknowledged event after the restart is a duplicate, not a new event.
    let some = acked.iter().next().unwrap();
    assert_eq!(
        c.post("/v1/events", &event(some, "u", 1)).await.1["status"],
        "duplicate"
    );
}

/// A board that checkpoints after ingest went quiet gets its checkpoint onto the disk (the
/// committer flushes it, though no event asks for a flush): a SIGKILL then costs a restart
/// no replay. Before, that checkpoint stayed in memory until the next event arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_taken_after_ingest_stopped_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config = |interval: u64| {
        config_text(
            &dir.path().join("data"),
            &format!("checkpoint_interval_seconds = {interval}"),
        )
    };
    let mut server = Server::start_with(dir.path(), &config(1));
    let c = server.client();
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}], "timeframes": ["all_time"]});
    c.create_board("b", &def).await;
    let events: Vec<_> = (0..300)
        .map(|i| event(&format!("e{i}"), &format!("u{}", i % 10), 1))
        .collect();
    c.ingest(&events).await;
    let labels = [("tenant", TENANT), ("board", "b")];
    // Ingest is over; the board checkpoints on its next tick past the interval.
    wait_for(
        "the checkpoint of all 300 on disk",
        Duration::from_secs(20),
        || async {
            match server
                .metric("phoenix_leaderboard_checkpointed_seq", &labels)
                .await
            {
                300.0 => std::ops::ControlFlow::Break(()),
                n => std::ops::ControlFlow::Continue(n),
            }
        },
    )
    .await;
    server.kill();
    drop(server);
    // Restarted with checkpoints far apart: the gauge stays what the board loaded from disk.
    let server = Server::start_with(dir.path(), &config(3600));
    let c = server.client();
    let standings = wait_for(
        "standings after the restart",
        Duration::from_secs(30),
        || async {
            match c.standings("b", "timeframe=all_time&limit=20").await {
                (200, v) if v["entries"].as_array().is_some_and(|e| e.len() == 10) => {
                    std::ops::ControlFlow::Break(v)
                }
                other => std::ops::ControlFlow::Continue(other),
            }
        },
    )
    .await;
    for e in standings["entries"].as_array().unwrap() {
        assert_eq!(e["score"], 30.0, "{standings}");
    }
    assert_eq!(
        server
            .metric("phoenix_leaderboard_checkpointed_seq", &labels)
            .await,
        300.0,
        "the board started from a checkpoint older than the last one taken"
    );
}
