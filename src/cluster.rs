//! Cluster mode (SPEC §11, docs/cluster.md): with a `[cluster]` table this process is one node
//! of several over a NATS JetStream cluster.
//!
//! - `open.rs`: the engine opens over [`JetStreamLog`] (one stream per tenant, 202 after the
//!   publish ack) instead of sled's log; the local sled dir keeps the state stores.
//! - `ownership.rs`: the lease loop — a node runs a tenant's actors only while it holds the
//!   tenant's lease, takes at most its fair share of free tenants, hands tenants off to a
//!   joining node, and takes over tenants whose lease expired.
//! - `forward.rs`: any node serves any request — a tenant-scoped request for a tenant owned
//!   elsewhere goes to the owner over NATS request/reply and runs through its router.
//! - `views.rs`: WebSocket views of a tenant owned elsewhere — the owner streams a view's
//!   frames to a core NATS subject per subscription, the session's node relays them.
//! - `ingest.rs`: WebSocket streaming ingest of a tenant owned elsewhere is logged there.

pub mod config;
mod forward;
mod ingest;
mod open;
mod ownership;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use phoenix_actors::cluster::{ClusterError, JetStreamLog, Leases};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::engine_slot::EngineSlot;
use crate::tenants::Tenants;
use crate::Config;
use config::ClusterConfig;

pub use open::{open_engine, OpenError};

/// This node: its NATS client, its view of who owns what, the log of its current engine.
pub struct Node {
    id: String,
    config: ClusterConfig,
    service: Arc<Config>,
    client: async_nats::Client,
    /// The tenant leases (set once the bucket opened).
    leases: OnceLock<Leases>,
    table: Table,
    /// The log of the engine opened last (the lease loop resets a moved tenant's position).
    log: Mutex<Option<Arc<JetStreamLog>>>,
    /// Forwards in flight from this node, and requests forwarded to it being served.
    outbound: Arc<Semaphore>,
    inbound: Arc<Semaphore>,
    tenants: Tenants,
    /// Remote views: those this node serves as owner, those it relays into its sessions.
    views: views::Registry,
}

/// Who serves what, as this node knows it.
#[derive(Default)]
struct Table {
    /// Tenants this node runs, each until when its lease is valid by this node's clock.
    serving: RwLock<HashMap<String, Instant>>,
    /// Every tenant's owner as of the last scan of the lease bucket.
    owners: RwLock<HashMap<String, String>>,
}

impl Table {
    fn serves(&self, tenant: &str) -> bool {
        self.serving
            .read()
            .expect("table")
            .get(tenant)
            .is_some_and(|until| Instant::now() < *until)
    }
}

/// The running node's tasks, stopped by [`Running::stop`] (which releases its leases).
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Connect to NATS (in the background: the service starts even while NATS is down).
    pub async fn connect(
        service: Arc<Config>,
        tenants: Tenants,
    ) -> Result<Arc<Node>, ClusterError> {
        let config = service
            .cluster
            .clone()
            .expect("cluster mode has a [cluster] table");
        let client = async_nats::ConnectOptions::new()
            .name(format!("phoenix-{}", config.node_id))
            .retry_on_initial_connect()
            .request_timeout(Some(lease_op_timeout(&config)))
            .connect(config.nats_urls.clone())
            .await
            .map_err(ClusterError::Connect)?;
        register_metrics();
        Ok(Arc::new(Node {
            id: config.node_id.clone(),
            outbound: Arc::new(Semaphore::new(config.max_forwards_in_flight)),
            views: views::Registry::new(config.max_remote_views),
            inbound: Arc::new(Semaphore::new(config.max_forwards_in_flight)),
            config,
            service,
            client,
            leases: OnceLock::new(),
            table: Table::default(),
            log: Mutex::new(None),
            tenants,
        }))
    }

    /// `router` with forwarding in front of it: what this node serves, to clients and to
    /// requests other nodes forward here.
    pub fn wrap(self: &Arc<Self>, router: Router) -> Router {
        let node = self.clone();
        router.layer(axum::middleware::from_fn(
            move |mut req: axum::extract::Request, next| {
                if req.uri().path() == "/v1/ws"
                    && forward::tenant_of(&node.service.tenants, &req).is_none()
                {
                    // Sessions here relay views of tenants owned elsewhere (`views.rs`).
                    req.extensions_mut().insert(views::hook(&node));
                }
                forward::route(node.clone(), req, next)
            },
        ))
    }

    /// Start the lease loop over `slot`'s engines and the responder for forwarded requests
    /// (served by `router`, which must be [`Node::wrap`]'s).
    pub fn start(self: &Arc<Self>, slot: EngineSlot, router: Router) -> Running {
        let (stop, rx) = watch::channel(false);
        let slot_for_views = slot.clone();
        let tasks = vec![
            tokio::spawn(ownership::run(self.clone(), slot, rx.clone())),
            tokio::spawn(forward::respond(self.clone(), router, rx.clone())),
            tokio::spawn(views::serve(
                self.clone(),
                slot_for_views.clone(),
                rx.clone(),
            )),
            tokio::spawn(ingest::serve(self.clone(), slot_for_views, rx)),
        ];
        Running { stop, tasks }
    }

    fn set_log(&self, log: Arc<JetStreamLog>) {
        *self.log.lock().expect("log") = Some(log);
    }

    fn log(&self) -> Option<Arc<JetStreamLog>> {
        self.log.lock().expect("log").clone()
    }
}

impl Running {
    /// Stop serving: hand every tenant back (stop its actors, release its lease), stop the
    /// responder.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// Bound on one lease-bucket operation: a third of the TTL (1–5 s), so a pass that waits on
/// an unanswered KV write still renews the other leases in time.
fn lease_op_timeout(config: &ClusterConfig) -> Duration {
    (Duration::from_secs(config.lease_ttl_seconds) / 3)
        .clamp(Duration::from_secs(1), Duration::from_secs(5))
}

fn register_metrics() {
    metrics::gauge!("phoenix_cluster_owned_tenants").set(0.0);
    metrics::counter!("phoenix_cluster_lease_renewals_total").increment(0);
    metrics::counter!("phoenix_cluster_lease_renewal_failures_total").increment(0);
    metrics::counter!("phoenix_cluster_leases_lost_total").increment(0);
    metrics::counter!("phoenix_cluster_handoffs_total").increment(0);
    metrics::gauge!("phoenix_cluster_forwards_in_flight").set(0.0);
    metrics::gauge!("phoenix_cluster_remote_views").set(0.0);
    metrics::counter!("phoenix_cluster_remote_view_frames_total").increment(0);
    for result in forward::RESULTS {
        metrics::counter!("phoenix_cluster_forwarded_total", "result" => result).increment(0);
    }
}
