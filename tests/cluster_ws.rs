//! WebSocket on any node of a cluster, black-box (SPEC §11, docs/cluster.md "WebSocket on
//! any node"): 3 real nats-servers and 3 real `phoenix` nodes. A session on a non-owner gets
//! the owner's views (same error frames as on the owner; the owner drops views on
//! unsubscribe, session end and the relaying node's death; resubscribe after the owner's
//! SIGKILL gets every acknowledged event) and streams its ingest to the owner.
//!
//! Without nats-server these tests fail, unless `PHOENIX_SKIP_NATS=1` (then they say so loudly).

mod cluster_nodes;
mod common;

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow::{Break, Continue};
use std::time::{Duration, Instant};

use cluster_nodes::*;
use common::*;
use serde_json::{json, Value};

/// A subscription to `board`'s all-time top 100.
fn top(id: &str, board: &str) -> Value {
    json!({"type": "subscribe", "id": id, "leaderboard": board, "timeframe": "all_time", "view": {"top": 100}})
}

/// Apply a view frame to `scores` (a snapshot replaces them, an update changes them).
fn apply(scores: &mut BTreeMap<String, f64>, f: &Value) {
    match f["type"].as_str() {
        Some("snapshot") => {
            scores.clear();
            for e in f["entries"].as_array().unwrap() {
                let user = e["user_id"].as_str().unwrap().to_owned();
                scores.insert(user, e["score"].as_f64().unwrap());
            }
        }
        Some("update") => {
            for c in f["changes"].as_array().unwrap() {
                let user = c["user_id"].as_str().unwrap().to_owned();
                match c["score"].as_f64() {
                    Some(s) if !c["rank"].is_null() => scores.insert(user, s),
                    _ => scores.remove(&user),
                };
            }
        }
        other => panic!("not a view frame ({other:?}): {f}"),
    }
}

/// Read `ws`'s frames into `scores` until they equal `want` (within 30 s).
async fn watch_until(
    ws: &mut ws::Ws,
    scores: &mut BTreeMap<String, f64>,
    want: &BTreeMap<String, f64>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while scores != want {
        assert!(
            Instant::now() < deadline,
            "view shows {scores:?}, want {want:?}"
        );
        apply(scores, &ws::next(ws).await);
    }
}

/// Subscribe `id` until the answer is a snapshot (an error frame asks to resubscribe while
/// the tenant has no owner); the snapshot.
async fn subscribe_until_snapshot(ws: &mut ws::Ws, id: &str, board: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        ws::send(ws, top(id, board)).await;
        let f = ws::next_where(ws, |f| f["id"] == id).await;
        if f["type"] == "snapshot" {
            return f;
        }
        assert_eq!(f["error"]["status"], 503, "{f}");
        assert!(Instant::now() < deadline, "no snapshot within 40 s: {f}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_on_a_non_owner_gets_the_owners_views_and_errors() {
    let Some(mut n) = Nodes::start("websocket_on_a_non_owner").await else {
        return;
    };
    let owner = n.owner(TENANT).await.expect("demo has an owner");
    let (x, y) = ((owner + 1) % 3, (owner + 2) % 3);
    let mut ws = ws::demo_backend(&n.node(x).base).await;
    ws::send(&mut ws, top("s1", "total")).await;
    let snap = ws::next(&mut ws).await;
    assert_eq!(
        (&snap["type"], &snap["id"]),
        (&json!("snapshot"), &json!("s1")),
        "{snap}"
    );
    let mut scores = BTreeMap::new();
    apply(&mut scores, &snap);
    assert!(scores.is_empty(), "{snap}");
    assert_eq!(
        n.node(owner)
            .metric("phoenix_cluster_remote_views", &[])
            .await,
        1.0
    );
    // Events ingested on the owner and on the third node reach the session on this node.
    let mut want = BTreeMap::new();
    for (k, node) in [(1, owner), (2, y), (3, owner), (4, y)] {
        let user = format!("w{k}");
        let e = event(&format!("ws{k}"), &user, k * 10);
        assert_eq!(
            send(&n.client(node, TENANT, SECRET), &e, Duration::from_secs(20)).await,
            "accepted"
        );
        want.insert(user, (k * 10) as f64);
        watch_until(&mut ws, &mut scores, &want).await;
    }
    assert!(
        n.node(owner)
            .metric("phoenix_cluster_remote_view_frames_total", &[])
            .await
            >= 1.0,
        "the owner published no frame"
    );
    // A bad subscription gets the same error frame on a non-owner as on the owner.
    let mut on_owner = ws::demo_backend(&n.node(owner).base).await;
    let bad = [
        top("b1", "nope"),
        json!({"type": "subscribe", "id": "b2", "leaderboard": "total", "timeframe": "weekly", "view": {"top": 5}}),
        json!({"type": "subscribe", "id": "b3", "leaderboard": "total", "view": {"top": 500}}),
    ];
    for frame in bad {
        ws::send(&mut ws, frame.clone()).await;
        ws::send(&mut on_owner, frame.clone()).await;
        let id = frame["id"].clone();
        let here = ws::next_where(&mut ws, |f| f["id"] == id).await;
        let there = ws::next_where(&mut on_owner, |f| f["id"] == id).await;
        assert_eq!(here["type"], "error", "{frame}: {here}");
        assert_eq!(here, there, "{frame}");
    }
    assert_eq!(
        n.node(owner)
            .metric("phoenix_cluster_remote_views", &[])
            .await,
        1.0
    );
    // Unsubscribing drops the owner's view; so does the end of the session.
    ws::send(&mut ws, json!({"type": "unsubscribe", "id": "s1"})).await;
    wait_for(
        "the owner dropped the view",
        Duration::from_secs(10),
        || async {
            match n
                .node(owner)
                .metric("phoenix_cluster_remote_views", &[])
                .await
            {
                0.0 => Break(()),
                v => Continue(v),
            }
        },
    )
    .await;
    ws::send(&mut ws, top("s2", "total")).await;
    let snap = ws::next_where(&mut ws, |f| f["id"] == "s2").await;
    apply(&mut scores, &snap);
    assert_eq!(scores, want, "{snap}");
    assert_eq!(
        n.node(owner)
            .metric("phoenix_cluster_remote_views", &[])
            .await,
        1.0
    );
    drop(ws);
    wait_for(
        "the session's end dropped the view",
        Duration::from_secs(10),
        || async {
            match n
                .node(owner)
                .metric("phoenix_cluster_remote_views", &[])
                .await
            {
                0.0 => Break(()),
                v => Continue(v),
            }
        },
    )
    .await;
    // A relaying node that dies leaves nothing behind: its views stop being renewed and
    // the owner drops them after the remote view lease (6 s).
    let mut ws = ws::demo_backend(&n.node(y).base).await;
    let snap = subscribe_until_snapshot(&mut ws, "s3", "total").await;
    apply(&mut scores, &snap);
    assert_eq!(scores, want, "{snap}");
    assert_eq!(
        n.node(owner)
            .metric("phoenix_cluster_remote_views", &[])
            .await,
        1.0
    );
    n.nodes[y].as_mut().unwrap().kill();
    let killed = Instant::now();
    wait_for(
        "the dead node's view dropped",
        Duration::from_secs(15),
        || async {
            match n
                .node(owner)
                .metric("phoenix_cluster_remote_views", &[])
                .await
            {
                0.0 => Break(()),
                v => Continue(v),
            }
        },
    )
    .await;
    assert!(
        killed.elapsed() >= Duration::from_secs(4),
        "dropped before its lease ran out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_view_ends_on_owner_sigkill_and_a_resubscribe_holds_every_ack() {
    let Some(mut n) = Nodes::start("remote_view_owner_sigkill").await else {
        return;
    };
    let owner = n.owner(TENANT).await.expect("demo has an owner");
    let x = (owner + 1) % 3;
    let mut ws = ws::demo_backend(&n.node(x).base).await;
    let snap = subscribe_until_snapshot(&mut ws, "s", "total").await;
    let mut scores = BTreeMap::new();
    apply(&mut scores, &snap);
    let cx = n.client(x, TENANT, SECRET);
    let mut want = BTreeMap::new();
    for k in 0..10 {
        let user = format!("k{k}");
        let e = event(&format!("kill{k}"), &user, k + 1);
        assert_eq!(send(&cx, &e, Duration::from_secs(20)).await, "accepted");
        want.insert(user, (k + 1) as f64);
    }
    watch_until(&mut ws, &mut scores, &want).await;
    n.nodes[owner].as_mut().unwrap().kill();
    let killed = Instant::now();
    let ended = ws::next_where(&mut ws, |f| f["type"] == "error").await;
    assert_eq!(ended["id"], "s", "{ended}");
    assert_eq!(ended["error"]["code"], "UNAVAILABLE", "{ended}");
    assert_eq!(ended["error"]["status"], 503, "{ended}");
    assert!(
        ended["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resubscribe"),
        "{ended}"
    );
    eprintln!("remote view ended {:?} after the kill", killed.elapsed());
    let snap = subscribe_until_snapshot(&mut ws, "s", "total").await;
    eprintln!("fresh snapshot {:?} after the kill", killed.elapsed());
    apply(&mut scores, &snap);
    assert_eq!(scores, want, "{snap}");
    // And it goes on: an event acknowledged now reaches the new subscription.
    let e = event("after-kill", "late", 99);
    assert_eq!(send(&cx, &e, Duration::from_secs(30)).await, "accepted");
    want.insert("late".into(), 99.0);
    watch_until(&mut ws, &mut scores, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_websocket_on_a_non_owner_streams_events_to_the_owner() {
    let Some(n) = Nodes::start("websocket_ingest_on_a_non_owner").await else {
        return;
    };
    let owner = n.owner(TENANT).await.expect("demo has an owner");
    let x = (owner + 1) % 3;
    let mut ws = ws::demo_backend(&n.node(x).base).await;
    let bad = json!({"event_id": "no-type"});
    let batch = json!({"type": "ingest", "id": "b1", "events": [event("i1", "ann", 5), event("i1", "ann", 5), bad, event("i2", "bob", 7)]});
    ws::send(&mut ws, batch).await;
    let ack = ws::next_of(&mut ws, "ack").await;
    assert_eq!(ack["id"], "b1", "{ack}");
    let statuses: Vec<&str> = ack["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "duplicate", "failed", "accepted"],
        "{ack}"
    );
    // Many frames in flight at once: each acknowledged once, every event scored once.
    for k in 0..20 {
        let e = event(&format!("s{k}"), "cat", 1);
        ws::send(
            &mut ws,
            json!({"type": "ingest", "id": format!("f{k}"), "event": e}),
        )
        .await;
    }
    let mut acked = HashSet::new();
    while acked.len() < 20 {
        let ack = ws::next_of(&mut ws, "ack").await;
        assert_eq!(ack["results"][0]["status"], "accepted", "{ack}");
        assert!(
            acked.insert(ack["id"].as_str().unwrap().to_owned()),
            "{ack}"
        );
    }
    // They went to the owner: 21 ingest frames forwarded by the session's node.
    let forwarded = n
        .node(x)
        .metric("phoenix_cluster_forwarded_total", &[("result", "ok")])
        .await;
    assert_eq!(forwarded, 21.0);
    // A retry through HTTP on yet another node is a duplicate.
    let c = n.client((owner + 2) % 3, TENANT, SECRET);
    let (s, v) = c.post("/v1/events", &event("s3", "cat", 1)).await;
    assert_eq!((s, v["status"].as_str()), (202, Some("duplicate")), "{v}");
    let want = BTreeMap::from([
        ("ann".to_owned(), 5.0),
        ("bob".to_owned(), 7.0),
        ("cat".to_owned(), 20.0),
    ]);
    for i in 0..3 {
        expect_scores(&n.client(i, TENANT, SECRET), "total", &want).await;
    }
    assert_eq!(log_ids(&n.client(owner, TENANT, SECRET)).await.len(), 22);
}
