//! The engine's state stores (SPEC §10, §11): the [`EngineStores`] bundle the engine takes
//! them from — sled ([`EngineStores::sled`], the embedded default) or JetStream KV
//! ([`EngineStores::jetstream`], cluster mode) — and the accessors that hand them to the
//! edge as trait objects. Per-tenant stores are opened once and cached until
//! [`Engine::shutdown`], which drops them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Engine, EngineConfig};
use crate::cluster::kv::{
    KvBoardStore, KvCloses, KvConfig, KvDefinitions, KvDimensions, KvOutbox, KvRewards, KvStores,
    KvTenants,
};
use crate::cluster::ClusterError;
use crate::error::EngineError;
use crate::leaderboard::board_store::{BoardStore, BoardStoreFactory, SledBoardStore};
use crate::leaderboard::close::{CloseLedger, CloseLedgerFactory, CloseStore};
use crate::outbox::Outbox;
use crate::rewards::{RewardError, RewardStore};
use crate::store::{EventLog, SledLog};
use crate::stores::{
    DefinitionStore, DimensionStore, RewardLedger, SledDefinitions, SledDimensions, SledStore,
    SledTenants, StoreError, TenantRegistry, WebhookOutbox,
};

/// Opens one tenant's store of kind `T`.
pub type TenantFactory<T, E> = Arc<dyn Fn(&str) -> Result<Arc<T>, E> + Send + Sync>;

/// Every durable fact of the engine besides the event log, behind its contract: what the
/// engine reads and writes them through. Cheap to clone.
#[derive(Clone)]
pub struct EngineStores {
    pub tenants: Arc<dyn TenantRegistry>,
    pub definitions: Arc<dyn DefinitionStore>,
    pub outbox: Arc<dyn WebhookOutbox>,
    pub dimensions: TenantFactory<dyn DimensionStore, StoreError>,
    pub rewards: TenantFactory<dyn RewardLedger, RewardError>,
    /// `(tenant, board)` → that board's checkpoint and history.
    pub boards: BoardStoreFactory,
    /// `(tenant, board)` → that board's window closes, with their grants (into `rewards`'
    /// ledger) and webhooks (into `outbox`).
    pub closes: CloseLedgerFactory,
}

impl std::fmt::Debug for EngineStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineStores")
    }
}

impl EngineStores {
    /// The embedded stores, all in `state`'s sled database: exactly the trees and layout
    /// the engine has always used.
    pub fn sled(state: &SledStore) -> Result<EngineStores, EngineError> {
        let (dims, db) = (state.clone(), state.db().clone());
        let (boards_db, closes_db) = (db.clone(), db.clone());
        Ok(EngineStores {
            tenants: Arc::new(SledTenants::open(state)?),
            definitions: Arc::new(SledDefinitions::open(state)?),
            outbox: Arc::new(Outbox::open(&db)?),
            dimensions: Arc::new(move |t| {
                Ok(Arc::new(SledDimensions::open(&dims, t)?) as Arc<dyn DimensionStore>)
            }),
            rewards: Arc::new(move |t| {
                Ok(Arc::new(RewardStore::open(&db, t)?) as Arc<dyn RewardLedger>)
            }),
            boards: Arc::new(move |t, b| {
                Ok(Arc::new(SledBoardStore::open(&boards_db, t, b)?) as Arc<dyn BoardStore>)
            }),
            closes: Arc::new(move |t, b| {
                Ok(Arc::new(CloseStore::open(&closes_db, t, b)?) as Arc<dyn CloseLedger>)
            }),
        })
    }

    /// The cluster-wide stores on JetStream KV over `client` (buckets created with
    /// `config.replicas` if missing): every node that opens them sees the same state.
    pub fn jetstream(
        client: async_nats::Client,
        config: KvConfig,
    ) -> Result<EngineStores, ClusterError> {
        let bridge = Arc::new(crate::cluster::bridge::Bridge::new("phoenix-kv", 2)?);
        Ok(EngineStores::kv(KvStores::open(bridge, client, config)?))
    }

    /// [`EngineStores::jetstream`] on a connection of its own to `urls`.
    pub fn connect(urls: &[String], config: KvConfig) -> Result<EngineStores, ClusterError> {
        Ok(EngineStores::kv(KvStores::connect(urls, config)?))
    }

    /// The stores on already opened buckets.
    pub fn kv(kv: KvStores) -> EngineStores {
        let (dims, rewards, boards) = (kv.dims.clone(), kv.rewards.clone(), kv.boards.clone());
        let chunk = kv.config.chunk_bytes;
        let closes = KvCloses::factory(&kv);
        EngineStores {
            tenants: Arc::new(KvTenants::new(kv.tenants.clone())),
            definitions: Arc::new(KvDefinitions::new(kv.defs.clone())),
            outbox: Arc::new(KvOutbox::new(kv.outbox.clone())),
            dimensions: Arc::new(move |t| {
                Ok(Arc::new(KvDimensions::new(dims.clone(), t)) as Arc<dyn DimensionStore>)
            }),
            rewards: Arc::new(move |t| {
                Ok(Arc::new(KvRewards::open(rewards.clone(), t)?) as Arc<dyn RewardLedger>)
            }),
            boards: Arc::new(move |t, b| {
                Ok(Arc::new(KvBoardStore::new(boards.clone(), t, b, chunk)) as Arc<dyn BoardStore>)
            }),
            closes,
        }
    }
}

/// The per-tenant stores opened so far (bounded by the number of tenants).
#[derive(Default)]
pub(super) struct Opened {
    dimensions: Mutex<HashMap<String, Arc<dyn DimensionStore>>>,
    rewards: Mutex<HashMap<String, Arc<dyn RewardLedger>>>,
}

impl Opened {
    /// Drop every cached store handle.
    pub(super) fn clear(&self) {
        self.dimensions.lock().expect("stores").clear();
        self.rewards.lock().expect("stores").clear();
    }
}

fn cached_for<T: ?Sized, E>(
    map: &Mutex<HashMap<String, Arc<T>>>,
    tenant: &str,
    open: impl FnOnce() -> Result<Arc<T>, E>,
) -> Result<Arc<T>, E> {
    let mut map = map.lock().expect("stores");
    if let Some(s) = map.get(tenant) {
        return Ok(s.clone());
    }
    let s = open()?;
    map.insert(tenant.to_owned(), s.clone());
    Ok(s)
}

impl Engine {
    /// Open the embedded sled store under `dir` (log and state in one database, so one
    /// fsync covers both) and start an engine on it.
    pub async fn open_sled(
        dir: &Path,
        cache_bytes: u64,
        compress: bool,
        tenants: &[String],
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let log = SledLog::open(dir, cache_bytes)?.with_compression(compress);
        let state = log.store();
        let log: Arc<dyn EventLog> = Arc::new(log);
        Engine::start(log, state, tenants, config).await
    }

    /// The tenant registry (tenants changed through the admin API).
    pub fn tenants(&self) -> Result<Arc<dyn TenantRegistry>, StoreError> {
        Ok(self.inner.bundle.tenants.clone())
    }

    /// The leaderboard definitions of every tenant.
    pub fn definitions(&self) -> Arc<dyn DefinitionStore> {
        self.inner.bundle.definitions.clone()
    }

    /// One tenant's Ninja Metrics dimensions.
    pub fn dimensions(&self, tenant: &str) -> Result<Arc<dyn DimensionStore>, StoreError> {
        cached_for(&self.inner.stores.dimensions, tenant, || {
            (self.inner.bundle.dimensions)(tenant)
        })
    }

    /// The account a Ninja Metrics character name of `tenant` belongs to, if any.
    pub fn character_owner(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.dimensions(tenant)?.character_owner(name)
    }

    /// One tenant's vote rewards and wallets.
    pub fn rewards(&self, tenant: &str) -> Result<Arc<dyn RewardLedger>, RewardError> {
        cached_for(&self.inner.stores.rewards, tenant, || {
            (self.inner.bundle.rewards)(tenant)
        })
    }

    /// The durable outbox of webhook deliveries.
    pub fn outbox(&self) -> Result<Arc<dyn WebhookOutbox>, EngineError> {
        Ok(self.inner.bundle.outbox.clone())
    }

    /// The checkpoint and history store of board `id` of `tenant`.
    pub(super) fn board_store(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Arc<dyn BoardStore>, EngineError> {
        (self.inner.bundle.boards)(tenant, id)
    }
}
