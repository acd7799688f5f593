//! The tenant registry: tenants created or changed through the admin API (secret, status,
//! the previous secret during a rotation overlap, the webhook setting), re-applied over the
//! configured tenants at start-up.

use serde::{Deserialize, Serialize};

use super::{decode_json, SledStore, StoreError};

/// Whether a tenant may use the API (stored as `"active"` / `"suspended"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    #[default]
    Active,
    Suspended,
}

/// One tenant as persisted (the JSON layout of `admin/tenants` values, unchanged since the
/// admin API first wrote it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub secret: String,
    pub status: TenantState,
    /// The secret before the last rotation and the Unix time until which it verifies.
    pub previous: Option<(String, i64)>,
    /// The webhook setting; absent in records written before webhooks existed (then the
    /// config's `webhook_url` stays).
    #[serde(default)]
    pub webhook: Option<WebhookRecord>,
}

/// A tenant's webhook setting; `url: None` means "removed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub url: Option<String>,
}

/// The tenant registry.
///
/// Contract:
/// - **Atomic per tenant.** [`TenantRegistry::put`] replaces one tenant's whole record; a
///   reader sees the old record or the new one, never a mix. Records of different tenants
///   are independent.
/// - **Durable after persist.** A `put` is visible when it returns and durable once
///   [`crate::Engine::persist`] returns after it; acknowledge an admin change only then.
/// - **Listed in id order**, every tenant once.
pub trait TenantRegistry: Send + Sync + 'static {
    /// Create or replace tenant `id`'s record.
    fn put(&self, id: &str, record: &TenantRecord) -> Result<(), StoreError>;
    /// Every stored tenant, sorted by id.
    fn list(&self) -> Result<Vec<(String, TenantRecord)>, StoreError>;
}

/// The sled [`TenantRegistry`]: tree `admin/tenants`, id → JSON [`TenantRecord`].
pub struct SledTenants {
    tree: sled::Tree,
}

impl SledTenants {
    pub fn open(store: &SledStore) -> Result<SledTenants, StoreError> {
        Ok(SledTenants {
            tree: store.db().open_tree("admin/tenants")?,
        })
    }
}

impl TenantRegistry for SledTenants {
    fn put(&self, id: &str, record: &TenantRecord) -> Result<(), StoreError> {
        let v = serde_json::to_vec(record).expect("tenant records serialise");
        self.tree.insert(id.as_bytes(), v)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<(String, TenantRecord)>, StoreError> {
        self.tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k).into_owned();
                let record = decode_json(|| format!("tenant {id}"), &v)?;
                Ok((id, record))
            })
            .collect()
    }
}
