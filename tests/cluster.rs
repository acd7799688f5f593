//! Cluster mode, black-box (SPEC §11): 3 real nats-servers (JetStream, R=3) and 3 real
//! `phoenix` processes on 127.0.0.1. Any node serves any request; a retry sent to another
//! node is a duplicate; SIGKILL of the owner under load moves its tenant within 15 s with
//! nothing acknowledged lost or counted twice; one nats-server killed → ingestion goes on; two
//! stopped → 503, then recovery. WebSocket on any node: a session on a non-owner gets the
//! owner's views (same error frames; resubscribe after the owner's SIGKILL) and streams its
//! ingest to the owner.
//!
//! Without nats-server these tests fail, unless `PHOENIX_SKIP_NATS=1` (then they say so loudly).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow::{Break, Continue};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use phoenix_actors::cluster::testkit::{cluster_or_skip, NatsCluster};
use phoenix_actors::cluster::{LeaseConfig, Leases};
use serde_json::{json, Value};

/// The lease TTL of the test nodes (the smallest allowed): a dead owner's tenants are free
/// after about this long.
const TTL_SECONDS: u64 = 3;

/// The nodes' log filter: ownership changes and tenant starts are worth seeing on failure.
const LOG: &str = "warn,phoenix::cluster=info,phoenix_actors::tenant=info";

fn node_config(data: &Path, i: usize, urls: &[String]) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    [
        config_head(data),
        format!(
            "\n[cluster]\nnode_id = \"n{i}\"\nnats_urls = [{}]\nreplicas = 3\nlease_ttl_seconds = {TTL_SECONDS}\n",
            urls.join(", ")
        ),
        tenant_toml(
            TENANT,
            SECRET,
            concat!(
                "[[tenants.leaderboards]]\nid = \"total\"\n",
                "rules = [{ event_type = \"*\", points_expression = \"attrs.score\" }]\n",
                "timeframes = [\"all_time\"]\n"
            ),
        ),
        tenant_toml(OTHER, OTHER_SECRET, ""),
    ]
    .concat()
}

/// Three nats-servers and three Phoenix nodes (`None` once killed).
struct Nodes {
    nats: NatsCluster,
    nodes: Vec<Option<Server>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Nodes {
    /// Start the nodes one after the other (the first takes every tenant, the others join
    /// and get theirs handed off), and wait until every tenant has an owner.
    async fn start(test: &str) -> Option<Nodes> {
        let nats = cluster_or_skip(test)?;
        let urls = nats.urls();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let server = Server::start_logging(
                dir.path(),
                &node_config(&dir.path().join("data"), i, &urls),
                LOG,
            );
            nodes.push(Some(server));
            dirs.push(dir);
        }
        let n = Nodes {
            nats,
            nodes,
            _dirs: dirs,
        };
        for t in [TENANT, OTHER] {
            let what = format!("{t} has an owner");
            wait_for(&what, Duration::from_secs(30), || async {
                match n.owner(t).await {
                    Some(o) => Break(o),
                    None => Continue(()),
                }
            })
            .await;
        }
        // Settled: both tenants run, each on its own node (share = ceil(2 / 3) = 1).
        wait_for("ownership settled", Duration::from_secs(30), || async {
            let mut owned = Vec::new();
            for s in n.nodes.iter().flatten() {
                owned.push(s.metric("phoenix_cluster_owned_tenants", &[]).await);
            }
            if owned.iter().sum::<f64>() == 2.0 && owned.iter().all(|o| *o <= 1.0) {
                Break(())
            } else {
                Continue(owned)
            }
        })
        .await;
        Some(n)
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node alive")
    }

    fn client(&self, i: usize, tenant: &str, secret: &str) -> Client {
        Client::new(&self.node(i).base, tenant, secret)
    }

    /// The node (0-based) holding `tenant`'s lease, read from the lease bucket.
    async fn owner(&self, tenant: &str) -> Option<usize> {
        let client = async_nats::connect(self.nats.urls()).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let config = LeaseConfig {
            bucket: "PHX_LEASES".into(),
            ttl: Duration::from_secs(TTL_SECONDS),
            replicas: 3,
        };
        let leases = Leases::open(&js, "observer", &config).await.ok()?;
        let (node, _) = leases.owner(tenant).await.ok()??;
        node.strip_prefix('n')?.parse::<usize>().ok().map(|i| i - 1)
    }

    /// Sum of `metric` over the live nodes.
    async fn total(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let mut sum = 0.0;
        for s in self.nodes.iter().flatten() {
            sum += s.metric(metric, labels).await;
        }
        sum
    }
}

/// POST one event until it is acknowledged (`accepted` or `duplicate`), within `within`;
/// the acknowledged status.
async fn send(c: &Client, e: &Value, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some((202, body)) = c.http_post_json("/v1/events", e).await {
            return body["status"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} not acknowledged within {within:?}",
            e["event_id"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every logged event id of `c`'s tenant, in order; a page answered 503 (the tenant is
/// moving between nodes) is asked again.
async fn log_ids(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 1u64;
    loop {
        let page = wait_for("a log page", Duration::from_secs(30), || async {
            match c
                .get("/v1/events", &format!("from={from}&limit=1000"))
                .await
            {
                (200, page) => Break(page),
                other => Continue(other),
            }
        })
        .await;
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            return out;
        }
        from = page["next"].as_u64().unwrap();
        out.extend(
            events
                .iter()
                .map(|e| e["event"]["event_id"].as_str().unwrap().to_owned()),
        );
    }
}

/// Poll `c`'s board until its (user, score) set is `want`.
async fn expect_scores(c: &Client, board: &str, want: &BTreeMap<String, f64>) {
    let what = format!("{board} on {} shows {want:?}", c.base);
    wait_for(&what, Duration::from_secs(30), || async {
        match c.standings(board, "timeframe=all_time&limit=100").await {
            (200, v) => {
                let got: BTreeMap<String, f64> = user_scores(&v).into_iter().collect();
                if &got == want {
                    Break(())
                } else {
                    Continue(json!({"got": format!("{got:?}")}))
                }
            }
            (s, v) => Continue(json!({"status": s, "body": v})),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_request_and_a_retry_elsewhere_is_a_duplicate() {
    let Some(n) = Nodes::start("any_node_serves_any_request").await else {
        return;
    };
    // A board created through node 1 for `other`, wherever `other` runs.
    let o1 = n.client(0, OTHER, OTHER_SECRET);
    let def = json!({"rules": [{"event_type": "*", "points_expression": "1"}], "aggregation": "count", "timeframes": ["all_time"]});
    wait_for(
        "board created through node 1",
        Duration::from_secs(20),
        || async {
            match o1.put_board("api", &def).await {
                (200 | 201, _) => Break(()),
                (s, v) => Continue((s, v)),
            }
        },
    )
    .await;
    for i in 1..3 {
        let (s, v) = n
            .client(i, OTHER, OTHER_SECRET)
            .get("/v1/leaderboards/api", "")
            .await;
        assert_eq!(s, 200, "node {}: {v}", i + 1);
        assert_eq!(v["id"], "api", "{v}");
    }
    // Events ingested on node 1 are seen through nodes 2 and 3.
    let c1 = n.client(0, TENANT, SECRET);
    let mut want = BTreeMap::new();
    for k in 0..20 {
        let user = format!("u{}", k % 4);
        let e = event(&format!("e{k}"), &user, k);
        assert_eq!(send(&c1, &e, Duration::from_secs(20)).await, "accepted");
        *want.entry(user).or_insert(0.0) += k as f64;
    }
    for i in 0..3 {
        expect_scores(&n.client(i, TENANT, SECRET), "total", &want).await;
    }
    for k in 0..3 {
        let e = event(&format!("o{k}"), "olga", 1);
        assert_eq!(send(&o1, &e, Duration::from_secs(20)).await, "accepted");
    }
    expect_scores(
        &n.client(2, OTHER, OTHER_SECRET),
        "api",
        &BTreeMap::from([("olga".to_owned(), 3.0)]),
    )
    .await;
    // The same event_id sent to another node is a duplicate, and counted once.
    let c2 = n.client(1, TENANT, SECRET);
    let (s, v) = c2.post("/v1/events", &event("e7", "u3", 7)).await;
    assert_eq!((s, v["status"].as_str()), (202, Some("duplicate")), "{v}");
    let ids = log_ids(&n.client(2, TENANT, SECRET)).await;
    assert_eq!(ids.len(), 20, "{ids:?}");
    expect_scores(&n.client(2, TENANT, SECRET), "total", &want).await;
    // Bad input through a non-owner gets the owner's envelope and changes nothing.
    let owner = n.owner(TENANT).await.expect("demo has an owner");
    let other = (owner + 1) % 3;
    let forged = Client::new(&n.node(other).base, TENANT, "not-the-secret-0123456789");
    let (s, v) = forged
        .post("/v1/events", &event("forged", "mallory", 1000))
        .await;
    assert_envelope(s, &v, 401, "UNAUTHORIZED");
    let (s, v) = n.client(other, TENANT, SECRET).standings("nope", "").await;
    assert_envelope(s, &v, 404, "NOT_FOUND");
    let (s, v) = n
        .client(other, TENANT, SECRET)
        .post("/v1/events", &json!({"event_id": "x"}))
        .await;
    assert_envelope(s, &v, 400, "VALIDATION_ERROR");
    assert_eq!(log_ids(&n.client(owner, TENANT, SECRET)).await.len(), 20);
    // Every tenant runs on exactly one node; some requests were forwarded.
    assert_eq!(n.total("phoenix_cluster_owned_tenants", &[]).await, 2.0);
    assert!(
        n.total("phoenix_cluster_forwarded_total", &[("result", "ok")])
            .await
            > 0.0,
        "nothing was forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_owner_under_load_moves_the_tenant_and_loses_nothing() {
    let Some(mut n) = Nodes::start("sigkill_of_the_owner").await else {
        return;
    };
    let owner = n.owner(TENANT).await.expect("demo has an owner");
    let live: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    // Load: 3 writers, each event retried (same id, any live node) until acknowledged.
    let targets: Arc<Mutex<Vec<Client>>> = Arc::new(Mutex::new(
        (0..3).map(|i| n.client(i, TENANT, SECRET)).collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3usize {
        let (targets, stop, next, acked) =
            (targets.clone(), stop.clone(), next.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut turn = w;
            while !stop.load(Ordering::SeqCst) {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let e = event(&format!("L{k}"), &format!("u{}", k % 7), 1);
                let t0 = Instant::now();
                loop {
                    let c = {
                        let t = targets.lock().unwrap();
                        turn += 1;
                        t[turn % t.len()].clone()
                    };
                    if let Some((202, _)) = c.http_post_json("/v1/events", &e).await {
                        acked.lock().unwrap().push((k, Instant::now()));
                        break;
                    }
                    assert!(
                        t0.elapsed() < Duration::from_secs(40),
                        "L{k} never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SIGKILL the owner; the writers keep going through the other two nodes only.
    *targets.lock().unwrap() = live.iter().map(|i| n.client(*i, TENANT, SECRET)).collect();
    let before = acked.lock().unwrap().len();
    n.nodes[owner].as_mut().unwrap().kill();
    n.nodes[owner] = None;
    let killed = Instant::now();
    let resumed = wait_for(
        "an event acknowledged after the kill",
        Duration::from_secs(30),
        || async {
            let a = acked.lock().unwrap();
            match a.iter().find(|(_, at)| *at > killed) {
                Some((_, at)) => Break(*at - killed),
                None => Continue(a.len()),
            }
        },
    )
    .await;
    eprintln!("failover: {before} events acknowledged before the kill; first acknowledgement {resumed:?} after it");
    assert!(
        resumed < Duration::from_secs(15),
        "tenant resumed only after {resumed:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let acked: Vec<u64> = acked.lock().unwrap().iter().map(|(k, _)| *k).collect();
    let unique: HashSet<u64> = acked.iter().copied().collect();
    assert_eq!(
        unique.len(),
        acked.len(),
        "an event acknowledged twice by the writers"
    );
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for k in &acked {
        *want.entry(format!("u{}", k % 7)).or_insert(0.0) += 1.0;
    }
    // Every acknowledged event is in the log exactly once, and the standings (equal on both
    // live nodes) count each once.
    let c = n.client(live[0], TENANT, SECRET);
    let ids = log_ids(&c).await;
    let logged: HashSet<&String> = ids.iter().collect();
    assert_eq!(logged.len(), ids.len(), "an event logged twice");
    for k in &acked {
        assert!(logged.contains(&format!("L{k}")), "acknowledged L{k} lost");
    }
    assert_eq!(
        ids.len(),
        acked.len(),
        "the log holds events nobody had acknowledged"
    );
    for i in &live {
        expect_scores(&n.client(*i, TENANT, SECRET), "total", &want).await;
    }
    let new_owner = n.owner(TENANT).await.expect("demo has a new owner");
    assert_ne!(new_owner, owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_failures_one_server_down_goes_on_two_down_is_503_then_recovery() {
    let Some(mut n) = Nodes::start("nats_failures").await else {
        return;
    };
    let c = n.client(0, TENANT, SECRET);
    assert_eq!(
        send(&c, &event("a0", "ann", 1), Duration::from_secs(20)).await,
        "accepted"
    );
    // One of three servers SIGKILLed: ingestion goes on (after a stream leader election).
    n.nats.kill(0).expect("kill nats s1");
    // (A first attempt may be stored during the election yet answered 503 by a forwarding
    // node; the retry is then a duplicate. Either way it is acknowledged once.)
    let a1 = send(&c, &event("a1", "ann", 1), Duration::from_secs(30)).await;
    assert!(a1 == "accepted" || a1 == "duplicate", "{a1}");
    // Two stopped: no quorum, /ready and ingestion answer 503 in the envelope.
    n.nats.stop(1).expect("stop nats s2");
    let probes = AtomicU64::new(0);
    let (ready, ingest) = wait_for("503 without a quorum", Duration::from_secs(30), || async {
        let ready = reqwest::get(format!("{}/ready", c.base)).await;
        let ready = match ready {
            Ok(r) => decode(r).await,
            Err(e) => return Continue(json!(e.to_string())),
        };
        let probe = format!("p{}", probes.fetch_add(1, Ordering::SeqCst));
        let ingest = c.post("/v1/events", &event(&probe, "ann", 1)).await;
        if ready.0 == 503 && ingest.0 == 503 {
            Break((ready, ingest))
        } else {
            Continue(json!({"ready": ready.0, "ingest": ingest.0}))
        }
    })
    .await;
    assert_envelope(
        ready.0,
        &ready.1,
        503,
        ready.1["error"]["code"].as_str().unwrap(),
    );
    assert_envelope(
        ingest.0,
        &ingest.1,
        503,
        ingest.1["error"]["code"].as_str().unwrap(),
    );
    // Back by themselves once the servers return.
    n.nats.restart(0).expect("restart s1");
    n.nats.restart(1).expect("restart s2");
    wait_for("/ready 200 again", Duration::from_secs(60), || async {
        match reqwest::get(format!("{}/ready", c.base)).await {
            Ok(r) if r.status() == 200 => Break(()),
            Ok(r) => Continue(r.status().as_u16()),
            Err(_) => Continue(0),
        }
    })
    .await;
    assert_eq!(
        send(&c, &event("a2", "ann", 1), Duration::from_secs(60)).await,
        "accepted"
    );
    assert_eq!(
        send(&c, &event("a1", "ann", 1), Duration::from_secs(20)).await,
        "duplicate"
    );
    // Probes sent before the quorum was gone may have been accepted: the log says which.
    let ids = log_ids(&n.client(2, TENANT, SECRET)).await;
    for id in ["a0", "a1", "a2"] {
        assert!(ids.iter().any(|i| i == id), "{id} lost: {ids:?}");
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    let want = BTreeMap::from([("ann".to_owned(), ids.len() as f64)]);
    expect_scores(&n.client(2, TENANT, SECRET), "total", &want).await;
}

#[test]
fn a_bad_cluster_table_exits_2_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[cluster]\nnode_id = \"n.1\"\nnats_urls = [\"http://x\"]\nreplicas = 0\nlease_ttl_seconds = 1\nmax_forwards_in_flight = 0\n",
        config_head(&dir.path().join("data"))
    );
    let (code, stderr) = refused(dir.path(), &config);
    assert_eq!(code, Some(2), "{stderr}");
    // Every problem at once, each with its path (the full list is the config unit test's).
    for key in ["cluster.node_id", "cluster.max_forwards_in_flight"] {
        assert!(stderr.contains(key), "{key} missing: {stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing was created before the config was refused"
    );
}

// ----- WebSocket on any node (docs/cluster.md "WebSocket on any node") -----

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
