//! The cluster black-box harness shared by `cluster.rs` and `cluster_ws.rs`: three real
//! nats-servers (JetStream, R=3) and three real `phoenix` nodes on 127.0.0.1, and the
//! helpers that read what they agree on.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::ControlFlow::{Break, Continue};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use phoenix_actors::cluster::testkit::{cluster_or_skip, NatsCluster};
use phoenix_actors::cluster::{LeaseConfig, Leases};
use serde_json::{json, Value};

/// The lease TTL of the test nodes (the smallest allowed): a dead owner's tenants are free
/// after about this long.
pub const TTL_SECONDS: u64 = 3;

/// The nodes' log filter: ownership changes and tenant starts are worth seeing on failure.
pub const LOG: &str = "warn,phoenix::cluster=info,phoenix_actors::tenant=info";

pub fn node_config(data: &Path, i: usize, urls: &[String]) -> String {
    node_config_with(data, i, urls, "")
}

/// [`node_config`] with `extra` top-level TOML (e.g. `checkpoint_interval_seconds = 3600`).
pub fn node_config_with(data: &Path, i: usize, urls: &[String], extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    [
        config_head(data),
        extra.to_owned(),
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

/// Held by the one cluster of a test binary that runs at a time: three nats-servers and
/// three nodes per test is as much as two cores carry with the timings these tests assert
/// (failover within 15 s, recovery within 60 s); tests of the binary take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Three nats-servers and three Phoenix nodes (`None` once killed).
pub struct Nodes {
    pub nats: NatsCluster,
    pub nodes: Vec<Option<Server>>,
    _dirs: Vec<tempfile::TempDir>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Nodes {
    /// Start the nodes one after the other (the first takes every tenant, the others join
    /// and get theirs handed off), and wait until every tenant has an owner.
    pub async fn start(test: &str) -> Option<Nodes> {
        Nodes::start_with(test, "").await
    }

    /// [`Nodes::start`] with `extra` top-level TOML in every node's config.
    pub async fn start_with(test: &str, extra: &str) -> Option<Nodes> {
        // A test that failed while holding the turn poisons the lock; the next one still runs.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let nats = cluster_or_skip(test)?;
        let urls = nats.urls();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let server = Server::start_logging(
                dir.path(),
                &node_config_with(&dir.path().join("data"), i, &urls, extra),
                LOG,
            );
            nodes.push(Some(server));
            dirs.push(dir);
        }
        let n = Nodes {
            nats,
            nodes,
            _dirs: dirs,
            _turn: turn,
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

    pub fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node alive")
    }

    pub fn client(&self, i: usize, tenant: &str, secret: &str) -> Client {
        Client::new(&self.node(i).base, tenant, secret)
    }

    /// The node (0-based) holding `tenant`'s lease, read from the lease bucket.
    pub async fn owner(&self, tenant: &str) -> Option<usize> {
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
    pub async fn total(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let mut sum = 0.0;
        for s in self.nodes.iter().flatten() {
            sum += s.metric(metric, labels).await;
        }
        sum
    }
}

/// POST one event until it is acknowledged (`accepted` or `duplicate`), within `within`;
/// the acknowledged status.
pub async fn send(c: &Client, e: &Value, within: Duration) -> String {
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
pub async fn log_ids(c: &Client) -> Vec<String> {
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
pub async fn expect_scores(c: &Client, board: &str, want: &BTreeMap<String, f64>) {
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
