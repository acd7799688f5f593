//! Opening the engine of a cluster node: the event log on JetStream, the state stores on
//! JetStream KV (cluster-wide; the local sled dir keeps only window-close records), no tenant
//! running until its lease is taken (`ownership.rs`).

use std::sync::Arc;
use std::time::Duration;

use phoenix_actors::cluster::kv::KvConfig;
use phoenix_actors::cluster::{ClusterError, JetStreamLog, JetStreamLogConfig};
use phoenix_actors::stores::SledStore;
use phoenix_actors::EngineStores;
use phoenix_actors::{Engine, EngineConfig, EngineError, EventLog};

use super::Node;
use crate::Config;

/// Why a cluster node's engine did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("JetStream event log unavailable")]
    Log(#[from] ClusterError),
    #[error("local state store unavailable")]
    State(#[from] EngineError),
    #[error("opening the JetStream log stopped")]
    Joined,
}

/// Open the JetStream log (replicas from `[cluster]`, the dedupe window as every stream's
/// `duplicate_window`) and start an engine on it with no tenant running.
pub async fn open_engine(
    node: &Node,
    config: &Config,
    engine: EngineConfig,
) -> Result<Engine, OpenError> {
    let log_config = JetStreamLogConfig {
        urls: node.config.nats_urls.clone(),
        name: format!("phoenix-{}-log", node.id),
        replicas: node.config.replicas,
        duplicate_window: Duration::from_secs(config.dedupe_window_seconds),
        ..JetStreamLogConfig::default()
    };
    let log = tokio::task::spawn_blocking(move || JetStreamLog::open(log_config))
        .await
        .map_err(|_| OpenError::Joined)??;
    let log = Arc::new(log);
    let kv = KvConfig {
        replicas: node.config.replicas,
        ..KvConfig::default()
    };
    let urls = node.config.nats_urls.clone();
    let stores = tokio::task::spawn_blocking(move || EngineStores::connect(&urls, kv))
        .await
        .map_err(|_| OpenError::Joined)??;
    let state = SledStore::open(&config.data_dir, config.cache_mb * 1024 * 1024)?;
    let as_log: Arc<dyn EventLog> = log.clone();
    let engine = Engine::start_with_stores(as_log, state, stores, &[], engine).await?;
    node.set_log(log);
    tracing::info!(node = %node.id, replicas = node.config.replicas, "cluster node: engine open on JetStream");
    Ok(engine)
}
