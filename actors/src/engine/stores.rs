//! The engine's state stores, handed to the edge as trait objects (SPEC §10): the tenant
//! registry, Ninja Metrics dimensions, vote rewards and the webhook outbox. Each is opened
//! once and cached until [`Engine::shutdown`], which drops them so the store can close.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Engine, EngineConfig};
use crate::error::EngineError;
use crate::outbox::Outbox;
use crate::rewards::{RewardError, RewardStore};
use crate::store::{EventLog, SledLog};
use crate::stores::{
    DimensionStore, RewardLedger, SledDimensions, SledTenants, StoreError, TenantRegistry,
    WebhookOutbox,
};

/// The stores opened so far (bounded by the number of tenants).
#[derive(Default)]
pub(super) struct Opened {
    tenants: Mutex<Option<Arc<dyn TenantRegistry>>>,
    outbox: Mutex<Option<Arc<dyn WebhookOutbox>>>,
    dimensions: Mutex<HashMap<String, Arc<dyn DimensionStore>>>,
    rewards: Mutex<HashMap<String, Arc<dyn RewardLedger>>>,
}

impl Opened {
    /// Drop every cached store handle.
    pub(super) fn clear(&self) {
        *self.tenants.lock().expect("stores") = None;
        *self.outbox.lock().expect("stores") = None;
        self.dimensions.lock().expect("stores").clear();
        self.rewards.lock().expect("stores").clear();
    }
}

/// The cached value of `slot`, or `open()`'s, remembered.
fn cached<T: ?Sized, E>(
    slot: &Mutex<Option<Arc<T>>>,
    open: impl FnOnce() -> Result<Arc<T>, E>,
) -> Result<Arc<T>, E> {
    let mut slot = slot.lock().expect("stores");
    if let Some(s) = &*slot {
        return Ok(s.clone());
    }
    let s = open()?;
    *slot = Some(s.clone());
    Ok(s)
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
        cached(&self.inner.stores.tenants, || {
            Ok(Arc::new(SledTenants::open(&self.inner.state)?) as Arc<dyn TenantRegistry>)
        })
    }

    /// One tenant's Ninja Metrics dimensions.
    pub fn dimensions(&self, tenant: &str) -> Result<Arc<dyn DimensionStore>, StoreError> {
        cached_for(&self.inner.stores.dimensions, tenant, || {
            Ok(Arc::new(SledDimensions::open(&self.inner.state, tenant)?)
                as Arc<dyn DimensionStore>)
        })
    }

    /// The account a Ninja Metrics character name of `tenant` belongs to, if any.
    pub fn character_owner(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.dimensions(tenant)?.character_owner(name)
    }

    /// One tenant's vote rewards and wallets.
    pub fn rewards(&self, tenant: &str) -> Result<Arc<dyn RewardLedger>, RewardError> {
        cached_for(&self.inner.stores.rewards, tenant, || {
            Ok(Arc::new(RewardStore::open(&self.inner.db, tenant)?) as Arc<dyn RewardLedger>)
        })
    }

    /// The durable outbox of webhook deliveries.
    pub fn outbox(&self) -> Result<Arc<dyn WebhookOutbox>, EngineError> {
        cached(&self.inner.stores.outbox, || {
            Ok(Arc::new(Outbox::open(&self.inner.db)?) as Arc<dyn WebhookOutbox>)
        })
    }
}
