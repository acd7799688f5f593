//! [`KvDefinitions`]: leaderboard definitions in bucket `<prefix>_DEFS`, key
//! `<tenant>.<board>` → the definition JSON (the bytes the sled `defs` tree stores).
//!
//! Atomic per board (one key); durable when the put or delete returns (stream quorum).

use super::bucket::{key, part, unpart, Bucket};
use crate::stores::{DefinitionStore, StoreError};

/// The cluster-wide [`DefinitionStore`].
#[derive(Clone)]
pub struct KvDefinitions {
    bucket: Bucket,
}

impl KvDefinitions {
    pub fn new(bucket: Bucket) -> KvDefinitions {
        KvDefinitions { bucket }
    }

    /// `(tenant, id, definition)` of every board under `prefix`, in (tenant, id) order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.bucket.entries(prefix)? {
            let Some((t, id)) = k.split_once('.') else {
                continue;
            };
            if let (Some(t), Some(id)) = (unpart(t), unpart(id)) {
                out.push((t, id, v.to_vec()));
            }
        }
        out.sort();
        Ok(out)
    }
}

impl DefinitionStore for KvDefinitions {
    fn get(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .bucket
            .get(&key(&[tenant, id]))?
            .map(|(v, _)| v.to_vec()))
    }

    fn put(&self, tenant: &str, id: &str, json: &[u8]) -> Result<(), StoreError> {
        self.bucket.put(&key(&[tenant, id]), json.to_vec())?;
        Ok(())
    }

    fn remove(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let k = key(&[tenant, id]);
        let Some((_, rev)) = self.bucket.get(&k)? else {
            return Ok(false);
        };
        // On the revision read: of two concurrent removes, one says `true`.
        Ok(self.bucket.delete_at(&k, rev)?)
    }

    fn list(&self, tenant: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let boards = self.scan(&format!("{}.", part(tenant)))?;
        Ok(boards.into_iter().map(|(_, id, v)| (id, v)).collect())
    }

    fn all(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        self.scan("")
    }
}
