//! Cluster-wide state (SPEC §11, issue 14 item 5): the engine's state stores on JetStream KV,
//! so every node reads and writes the same tenants, definitions, dimensions, rewards,
//! outbox, checkpoints, history and window closes.
//!
//! | store | trait | bucket | keys |
//! |---|---|---|---|
//! | [`KvTenants`] | [`crate::stores::TenantRegistry`] | `<prefix>_TENANTS` | `<tenant>` |
//! | [`KvDefinitions`] | [`crate::stores::DefinitionStore`] | `<prefix>_DEFS` | `<tenant>.<board>` |
//! | [`KvDimensions`] | [`crate::stores::DimensionStore`] | `<prefix>_DIMS` | `<tenant>.<kind>.<id>` |
//! | [`KvRewards`] | [`crate::stores::RewardLedger`] | `<prefix>_REWARDS` | `<tenant>.<kind>.…` |
//! | [`KvOutbox`] | [`crate::stores::WebhookOutbox`] | `<prefix>_OUTBOX` | `e.<tenant>.<id>`, `a.<tenant>` |
//! | [`KvBoardStore`] | [`crate::leaderboard::board_store::BoardStore`] | `<prefix>_BOARDS` | `<tenant>.<board>.…` |
//! | [`KvCloses`] | [`crate::leaderboard::close::CloseLedger`] | `<prefix>_CLOSES` | `<tenant>.<board>.r.<tf>.<window>`, `….epoch` |
//!
//! Every key part is escaped ([`bucket::part`]) so any tenant, board or user id is a valid
//! KV token. **Durable when**: a KV write returns once the bucket's stream has stored it at
//! its quorum (`replicas`, R=3 → 2 servers); on nats-server 2.9 that is "replicated to a
//! quorum", fsync'd only with `sync_interval: always` on ≥ 2.10 (`docs/cluster.md`).
//! Without a quorum a write fails with [`super::ClusterError`] within `request_timeout`.

pub mod board;
pub mod bucket;
pub mod closes;
pub mod definitions;
pub mod dimensions;
pub mod outbox;
pub mod rewards;
pub mod tenants;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use board::KvBoardStore;
pub use bucket::Bucket;
pub use closes::KvCloses;
pub use definitions::KvDefinitions;
pub use dimensions::KvDimensions;
pub use outbox::KvOutbox;
pub use rewards::KvRewards;
pub use tenants::KvTenants;

use super::bridge::Bridge;
use super::error::ClusterError;

/// Where the state buckets live and how they are replicated.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// Bucket names start with this (`PHX` → `PHX_TENANTS`, `PHX_DEFS` …); tests use their own.
    pub prefix: String,
    /// JetStream replicas of every bucket (the `[cluster] replicas`).
    pub replicas: usize,
    /// Bound on one KV request (a write without a quorum fails after it).
    pub request_timeout: Duration,
    /// Largest value written in one KV message; larger checkpoints and frozen windows are
    /// split into chunks of this size (below the servers' `max_payload`, 1 MiB by default).
    pub chunk_bytes: usize,
    /// How many times a compare-and-set that lost a race is retried before it fails.
    pub max_cas_retries: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            prefix: "PHX".into(),
            replicas: 3,
            request_timeout: Duration::from_secs(5),
            chunk_bytes: 256 * 1024,
            max_cas_retries: 64,
        }
    }
}

/// One node's handle on the state buckets: the buckets, opened once, and the runtime their
/// synchronous callers are bridged to. Cheap to clone.
#[derive(Clone)]
pub struct KvStores {
    pub tenants: Bucket,
    pub defs: Bucket,
    pub dims: Bucket,
    pub rewards: Bucket,
    pub outbox: Bucket,
    pub boards: Bucket,
    pub closes: Bucket,
    pub config: KvConfig,
}

impl std::fmt::Debug for KvStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStores")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KvStores {
    /// Connect to `urls` and open (creating if needed) every bucket.
    pub fn connect(urls: &[String], config: KvConfig) -> Result<KvStores, ClusterError> {
        let bridge = Arc::new(Bridge::new("phoenix-kv", 2)?);
        let (urls, timeout) = (urls.to_vec(), config.request_timeout);
        let client = bridge.run(async move {
            async_nats::ConnectOptions::new()
                .connection_timeout(timeout)
                .request_timeout(Some(timeout))
                .connect(urls)
                .await
                .map_err(ClusterError::Connect)
        })??;
        KvStores::open(bridge, client, config)
    }

    /// Open every bucket over an existing client, calls bridged through `bridge`.
    pub fn open(
        bridge: Arc<Bridge>,
        client: async_nats::Client,
        config: KvConfig,
    ) -> Result<KvStores, ClusterError> {
        // The context spawns its acker task: on the bridge's runtime.
        let js = {
            let _rt = bridge.handle().enter();
            async_nats::jetstream::context::ContextBuilder::new()
                .timeout(config.request_timeout)
                .build(client)
        };
        let open = |name: &str| {
            let bucket = format!("{}_{name}", config.prefix);
            Bucket::open(&bridge, &js, &bucket, config.replicas).map(|b| {
                b.with_cas_retries(config.max_cas_retries)
                    .with_scan_timeout(config.request_timeout.saturating_mul(6))
            })
        };
        metrics::counter!("phoenix_cluster_kv_cas_conflicts_total").increment(0);
        Ok(KvStores {
            tenants: open("TENANTS")?,
            defs: open("DEFS")?,
            dims: open("DIMS")?,
            rewards: open("REWARDS")?,
            outbox: open("OUTBOX")?,
            boards: open("BOARDS")?,
            closes: open("CLOSES")?,
            config,
        })
    }
}
