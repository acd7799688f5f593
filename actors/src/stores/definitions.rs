//! Leaderboard definitions per tenant: the canonical JSON each board was created with
//! ([`crate::leaderboard::definition::Definition::to_json`]), stored as given.

use super::{SledStore, StoreError};

/// The leaderboard definitions of every tenant.
///
/// Contract:
/// - **Atomic per board.** A put replaces one definition whole; a remove takes it away
///   whole. Nothing else is written with it (the board's checkpoint and history are the
///   [`crate::leaderboard::board_store::BoardStore`]'s).
/// - **Durable after persist** (sled: [`crate::Engine::persist`]; JetStream: on return).
/// - **Listed in id order** per tenant; tenants are separate (a tenant `a` never lists a
///   board of tenant `ab`).
pub trait DefinitionStore: Send + Sync + 'static {
    /// Board `id`'s definition bytes, if defined.
    fn get(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Create or replace board `id`'s definition.
    fn put(&self, tenant: &str, id: &str, json: &[u8]) -> Result<(), StoreError>;
    /// Remove board `id`; `false` if it was not defined.
    fn remove(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// `(id, definition)` of every board of `tenant`, in id order.
    fn list(&self, tenant: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// `(tenant, id, definition)` of every board, in (tenant, id) order.
    fn all(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError>;
}

/// The sled [`DefinitionStore`]: tree `defs`, key `{tenant}/{id}` → the JSON (the layout
/// data dirs have always had).
#[derive(Clone)]
pub struct SledDefinitions {
    tree: sled::Tree,
}

impl SledDefinitions {
    pub fn open(store: &SledStore) -> Result<SledDefinitions, StoreError> {
        Ok(SledDefinitions {
            tree: store.db().open_tree("defs")?,
        })
    }
}

fn def_key(tenant: &str, id: &str) -> Vec<u8> {
    format!("{tenant}/{id}").into_bytes()
}

impl DefinitionStore for SledDefinitions {
    fn get(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(def_key(tenant, id))?.map(|v| v.to_vec()))
    }

    fn put(&self, tenant: &str, id: &str, json: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(def_key(tenant, id), json)?;
        Ok(())
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.tree.remove(def_key(tenant, id))?.is_some())
    }

    fn list(&self, tenant: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = format!("{tenant}/");
        self.tree
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    fn all(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some((tenant, id)) = key.split_once('/') {
                out.push((tenant.to_owned(), id.to_owned(), v.to_vec()));
            }
        }
        Ok(out)
    }
}
