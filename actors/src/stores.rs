//! The engine's durable facts besides the event log, one small store type per fact. Each is
//! a trait whose doc says what is atomic with what and when a write is durable, a sled
//! implementation beside it, and a contract suite ([`contract`]) that any implementation
//! (sled, and JetStream KV in `crate::cluster::kv`, SPEC §11) must pass.
//!
//! | fact | trait | sled implementation | trees |
//! |---|---|---|---|
//! | tenant registry (admin API changes) | [`TenantRegistry`] | [`SledTenants`] | `admin/tenants` |
//! | Ninja Metrics dimensions | [`DimensionStore`] | [`SledDimensions`] | `nm/{tenant}/…` |
//! | vote rewards and wallets | [`RewardLedger`] | [`crate::rewards::RewardStore`] | `gm/{tenant}/…` |
//! | outbound webhook outbox | [`WebhookOutbox`] | [`crate::outbox::Outbox`] | `outbox/…` |
//! | leaderboard definitions | [`DefinitionStore`] | [`SledDefinitions`] | `defs` |
//!
//! Durability: every write is applied (atomically, as each trait says) when the call
//! returns, and is durable once [`crate::Engine::persist`] has returned after it: that
//! fsyncs the log *and* this state store ([`SledStore::sync`]). No sled handle leaves the
//! engine crate; the edge gets these as `Arc<dyn Trait>` from the [`crate::Engine`].

pub mod contract;
pub mod definitions;
pub mod dimensions;
pub mod outbox;
pub mod rewards;
mod sled_store;
pub mod tenants;

pub use definitions::{DefinitionStore, SledDefinitions};
pub use dimensions::{DimChange, DimKind, DimensionStore, SledDimensions};
pub use outbox::WebhookOutbox;
pub use rewards::RewardLedger;
pub use sled_store::SledStore;
pub use tenants::{SledTenants, TenantRecord, TenantRegistry, TenantState, WebhookRecord};

/// A fault of a state store (outcomes such as "not found" are values, not errors).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage backend failed to read or write.
    #[error("state storage failure")]
    Storage(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("corrupt {what} record")]
    Corrupt {
        /// Which record (e.g. `tenant acme`).
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The cluster-wide (JetStream KV) backend failed: no quorum, timeout, lost connection.
    #[error("cluster state storage failure")]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl From<StoreError> for crate::EngineError {
    fn from(e: StoreError) -> Self {
        crate::EngineError::Storage(format!("{e}: {}", source_text(&e)))
    }
}

fn source_text(e: &StoreError) -> String {
    std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Decode a JSON record, naming it in the error.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    v: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|source| StoreError::Corrupt {
        what: what(),
        source,
    })
}
