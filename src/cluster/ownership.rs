//! The lease loop: which tenants this node runs.
//!
//! Two tasks. The **keeper**, every `lease_ttl / 3` and nothing else: renew this node's
//! liveness key (bucket `PHX_NODES`) and every tenant lease it holds (bucket `PHX_LEASES`);
//! a lease that is lost — renewal refused, or not renewed within the TTL by this node's
//! clock — stops being served at once and is handed to the loop, which stops its actors.
//! Nothing the loop waits on (a slow scan, a tenant that takes seconds to start) delays a
//! renewal. The **loop**, every `lease_ttl / 3`, from one scan of both buckets: with
//! `share = ceil(tenants / live nodes)`, a node below its share takes free tenants
//! (create-if-absent) and starts their actors; a node above it while another live node is
//! below hands the surplus off (stop, then release: the other node takes it on its next
//! pass). A tenant whose owner died is free once its lease expired.
//! The lease revision fences ownership; the log's expected-sequence check is the second
//! fence (a stale owner's append fails instead of forking the stream).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use phoenix_actors::cluster::{Acquired, ClusterError, Lease, LeaseConfig, Leases, Renewal};
use phoenix_actors::Engine;
use tokio::sync::watch;

use super::Node;
use crate::engine_slot::EngineSlot;

/// The bucket of liveness keys, one per node.
const NODES_BUCKET: &str = "PHX_NODES";
/// The bucket of tenant leases.
const LEASES_BUCKET: &str = "PHX_LEASES";

/// The tenant leases this node holds, shared by the loop (which adds and releases them) and
/// the keeper (which renews them).
#[derive(Default)]
struct Held {
    /// By tenant.
    leases: HashMap<String, Lease>,
    /// Tenants whose lease the keeper found lost: the loop stops their actors.
    lost: BTreeSet<String>,
}

/// [`Held`], and the wake-up of the loop when a lease is lost.
type Shared = Arc<(tokio::sync::Mutex<Held>, tokio::sync::Notify)>;

/// What the loop keeps between passes.
struct Loop {
    node: Arc<Node>,
    leases: Leases,
    nodes: Leases,
    held: Shared,
    /// The engine the owned tenants run on (a new engine starts them again).
    engine: Option<Engine>,
    /// Owned tenants whose actors run on `engine`.
    started: BTreeSet<String>,
}

pub(super) async fn run(node: Arc<Node>, slot: EngineSlot, mut stop: watch::Receiver<bool>) {
    let ttl = Duration::from_secs(node.config.lease_ttl_seconds);
    let every = ttl / 3;
    let lease_config = |bucket: &str| LeaseConfig {
        bucket: bucket.into(),
        ttl,
        replicas: node.config.replicas,
    };
    let (leases, nodes) = loop {
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(super::lease_op_timeout(&node.config))
            .build(node.client.clone());
        let opened = async {
            Ok::<_, ClusterError>((
                Leases::open(&js, &node.id, &lease_config(LEASES_BUCKET)).await?,
                Leases::open(&js, &node.id, &lease_config(NODES_BUCKET)).await?,
            ))
        };
        match opened.await {
            Ok(b) => break b,
            Err(e) => {
                tracing::warn!(error = %phoenix_actors::cluster::error::display_chain(&e), "lease buckets not open yet; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    };
    let _ = node.leases.set(leases.clone());
    let held: Shared = Arc::default();
    let keeper = tokio::spawn(keep(
        node.clone(),
        leases.clone(),
        nodes.clone(),
        held.clone(),
        stop.clone(),
    ));
    let mut l = Loop {
        node,
        leases,
        nodes,
        held,
        engine: None,
        started: BTreeSet::new(),
    };
    loop {
        l.pass(&slot).await;
        let lost = l.held.clone();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = lost.1.notified() => {}
            _ = stop.changed() => break,
        }
    }
    let alive = keeper.await.ok().flatten();
    l.release_all().await;
    if let Some(alive) = alive {
        let _ = l.nodes.release(alive).await;
    }
}

/// The keeper: every `lease_ttl / 3`, renew the liveness key and every held lease, until
/// `stop`. Returns the liveness key, for the loop to release once its tenants are.
async fn keep(
    node: Arc<Node>,
    leases: Leases,
    nodes: Leases,
    held: Shared,
    mut stop: watch::Receiver<bool>,
) -> Option<Lease> {
    let every = Duration::from_secs(node.config.lease_ttl_seconds) / 3;
    let mut alive = None;
    loop {
        heartbeat(&node, &nodes, &mut alive).await;
        renew(&node, &leases, &held).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return alive,
        }
    }
}

/// Renew (or take) this node's liveness key.
async fn heartbeat(node: &Node, nodes: &Leases, alive: &mut Option<Lease>) {
    let renewed = match alive.as_mut() {
        Some(lease) => matches!(nodes.renew(lease).await, Ok(Renewal::Renewed)),
        None => false,
    };
    if !renewed {
        *alive = match nodes.acquire(&node.id).await {
            Ok(Acquired::Owned(lease)) => Some(lease),
            // Our previous incarnation's key: it expires within the TTL.
            _ => None,
        };
    }
}

/// Renew every held lease. A lost one stops being served here at once and goes to the
/// loop, which stops its tenant's actors.
async fn renew(node: &Node, leases: &Leases, held: &Shared) {
    let mut h = held.0.lock().await;
    let mut lost = Vec::new();
    for (t, lease) in h.leases.iter_mut() {
        match leases.renew(lease).await {
            Ok(Renewal::Renewed) => {
                // Only a tenant already running here: one still starting is served once it
                // has started.
                if let Some(until) = node.table.serving.write().expect("table").get_mut(t) {
                    *until = lease.valid_until;
                }
            }
            Ok(Renewal::Lost) => lost.push(t.clone()),
            Err(e) => {
                metrics::counter!("phoenix_cluster_lease_renewal_failures_total").increment(1);
                tracing::warn!(tenant = %t, error = %phoenix_actors::cluster::error::display_chain(&e), "lease renewal failed");
                if !lease.is_valid() {
                    lost.push(t.clone());
                }
            }
        }
    }
    if lost.is_empty() {
        return;
    }
    for t in lost {
        h.leases.remove(&t);
        node.table.serving.write().expect("table").remove(&t);
        h.lost.insert(t);
    }
    held.1.notify_one();
}

impl Loop {
    async fn pass(&mut self, slot: &EngineSlot) {
        let engine = slot.get().filter(|e| !*e.stopped().borrow());
        if !matches!((&self.engine, &engine), (Some(a), Some(b)) if a.same(b)) {
            // A new engine (or none): nothing runs on it yet.
            self.started.clear();
            self.node.table.serving.write().expect("table").clear();
            self.engine = engine;
        }
        let Some(engine) = self.engine.clone() else {
            // No engine here (no quorum, or the log failed): let other nodes take over.
            self.release_all().await;
            return;
        };
        // A pass waits on NATS (seconds without a quorum); if the engine is taken down
        // meanwhile, drop it at once so its store can close and reopen.
        let mut stopped = engine.stopped();
        let finished = tokio::select! {
            _ = self.work(&engine) => true,
            _ = stopped.wait_for(|s| *s) => false,
        };
        if !finished {
            self.engine = None;
            self.started.clear();
            self.node.table.serving.write().expect("table").clear();
        }
    }

    /// One pass over a running engine.
    async fn work(&mut self, engine: &Engine) {
        let lost = std::mem::take(&mut self.held.0.lock().await.lost);
        for t in lost {
            self.stop(engine, &t).await;
        }
        let t0 = std::time::Instant::now();
        let scanned = self.scan().await;
        let took = t0.elapsed();
        if took > Duration::from_secs(self.node.config.lease_ttl_seconds) / 3 {
            tracing::warn!(scanned = ?took, "slow lease scan");
        }
        let (owners, live) = match scanned {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %phoenix_actors::cluster::error::display_chain(&e), "lease scan failed");
                return;
            }
        };
        // Owned but not running on this engine (it was reopened): start them.
        let pending: Vec<String> = self
            .held
            .0
            .lock()
            .await
            .leases
            .keys()
            .filter(|t| !self.started.contains(*t))
            .cloned()
            .collect();
        for t in pending {
            self.start(engine, &t).await;
        }
        let mut tenants = self.node.tenants.ids();
        tenants.sort();
        let share = tenants.len().div_ceil(live.len().max(1));
        let owned = self.owned().await;
        if owned < share {
            self.take_free(engine, &tenants, &owners, share).await;
        } else if owned > share {
            self.hand_off(engine, &owners, &live, share).await;
        }
        metrics::gauge!("phoenix_cluster_owned_tenants").set(self.started.len() as f64);
    }

    /// How many tenant leases this node holds.
    async fn owned(&self) -> usize {
        self.held.0.lock().await.leases.len()
    }

    /// Every tenant's owner, and the live nodes (this one always counts).
    async fn scan(&self) -> Result<(HashMap<String, String>, BTreeSet<String>), ClusterError> {
        let owners: HashMap<String, String> = self.leases.holders().await?.into_iter().collect();
        let mut live: BTreeSet<String> = self
            .nodes
            .holders()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        live.insert(self.node.id.clone());
        *self.node.table.owners.write().expect("table") = owners.clone();
        Ok((owners, live))
    }

    /// Take free tenants up to `share`, starting from a place that differs per node so that
    /// nodes starting together try different tenants first.
    async fn take_free(
        &mut self,
        engine: &Engine,
        tenants: &[String],
        owners: &HashMap<String, String>,
        share: usize,
    ) {
        let free: Vec<&String> = tenants
            .iter()
            .filter(|t| !owners.contains_key(*t))
            .collect();
        if free.is_empty() {
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.node.id.hash(&mut h);
        let offset = (h.finish() % free.len() as u64) as usize;
        for i in 0..free.len() {
            if self.owned().await >= share {
                break;
            }
            let t = free[(offset + i) % free.len()];
            match self.leases.acquire(t).await {
                Ok(Acquired::Owned(lease)) => {
                    self.held.0.lock().await.leases.insert(t.clone(), lease);
                    self.start(engine, t).await;
                }
                Ok(Acquired::Held { .. }) => {}
                Err(e) => {
                    tracing::warn!(tenant = %t, error = %phoenix_actors::cluster::error::display_chain(&e), "lease acquire failed");
                    return;
                }
            }
        }
    }

    /// Above the share while another live node is below it: release the surplus.
    async fn hand_off(
        &mut self,
        engine: &Engine,
        owners: &HashMap<String, String>,
        live: &BTreeSet<String>,
        share: usize,
    ) {
        let below = live
            .iter()
            .any(|n| n != &self.node.id && owners.values().filter(|o| *o == n).count() < share);
        if !below {
            return;
        }
        let mut surplus: Vec<String> = self.held.0.lock().await.leases.keys().cloned().collect();
        surplus.sort();
        let keep = share.min(surplus.len());
        let surplus = surplus.split_off(keep);
        for t in surplus {
            // Out of the keeper's hands first: the release expects the revision it holds.
            let lease = self.held.0.lock().await.leases.remove(&t);
            if let Some(lease) = lease {
                self.stop(engine, &t).await;
                let _ = self.leases.release(lease).await;
                metrics::counter!("phoenix_cluster_handoffs_total").increment(1);
                tracing::info!(tenant = %t, node = %self.node.id, "tenant handed off to a node below its share");
            }
        }
    }

    /// Run `tenant` here: reset the log's position for it (it may have moved while away),
    /// start its actor and stored boards, apply its configured boards. A tenant that does not
    /// start is released again.
    async fn start(&mut self, engine: &Engine, tenant: &str) {
        if let Some(log) = self.node.log() {
            log.forget(tenant);
        }
        let t0 = std::time::Instant::now();
        let started = async {
            engine
                .start_tenant(tenant)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(t) = self.node.service.tenants.iter().find(|t| t.id == tenant) {
                for (id, json) in t.leaderboard_json() {
                    engine
                        .put_leaderboard(tenant, &id, &json)
                        .await
                        .map_err(|e| format!("leaderboard {id}: {e}"))?;
                }
            }
            Ok::<_, String>(())
        };
        match started.await {
            Ok(()) => {
                self.started.insert(tenant.to_owned());
                // Served from now on, unless the lease was lost while the tenant started (the
                // next pass stops it then).
                let h = self.held.0.lock().await;
                if let Some(lease) = h.leases.get(tenant) {
                    self.node
                        .table
                        .serving
                        .write()
                        .expect("table")
                        .insert(tenant.to_owned(), lease.valid_until);
                }
                let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::info!(tenant, node = %self.node.id, ms, "tenant started on this node");
            }
            Err(e) => {
                tracing::error!(tenant, error = %e, "tenant did not start; releasing its lease");
                let _ = engine.stop_tenant(tenant).await;
                let lease = self.held.0.lock().await.leases.remove(tenant);
                if let Some(lease) = lease {
                    let _ = self.leases.release(lease).await;
                }
            }
        }
    }

    /// Stop running `tenant` here (its lease is gone or being released).
    async fn stop(&mut self, engine: &Engine, tenant: &str) {
        self.node
            .table
            .serving
            .write()
            .expect("table")
            .remove(tenant);
        if self.started.remove(tenant) {
            if let Err(e) = engine.stop_tenant(tenant).await {
                tracing::error!(tenant, error = %e, "tenant did not stop cleanly");
            }
            tracing::info!(tenant, node = %self.node.id, "tenant stopped on this node");
        }
    }

    /// Stop every owned tenant and release its lease (shutdown, or no engine here).
    async fn release_all(&mut self) {
        let owned: Vec<(String, Lease)> = self.held.0.lock().await.leases.drain().collect();
        for (t, lease) in owned {
            if let Some(engine) = self.engine.clone() {
                self.stop(&engine, &t).await;
            }
            self.started.remove(&t);
            let _ = self.leases.release(lease).await;
        }
        self.node.table.serving.write().expect("table").clear();
        metrics::gauge!("phoenix_cluster_owned_tenants").set(0.0);
    }
}
