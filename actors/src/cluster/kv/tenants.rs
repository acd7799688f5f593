//! [`KvTenants`]: the tenant registry in bucket `<prefix>_TENANTS`, key `<tenant>` → the
//! JSON [`TenantRecord`] (the bytes the sled registry stores).
//!
//! Atomic per tenant (one key, one message); durable when the put returns (stream quorum).

use super::bucket::{part, unpart, Bucket};
use crate::stores::{decode_json, StoreError, TenantRecord, TenantRegistry};

/// The cluster-wide [`TenantRegistry`].
#[derive(Clone)]
pub struct KvTenants {
    bucket: Bucket,
}

impl KvTenants {
    pub fn new(bucket: Bucket) -> KvTenants {
        KvTenants { bucket }
    }
}

impl TenantRegistry for KvTenants {
    fn put(&self, id: &str, record: &TenantRecord) -> Result<(), StoreError> {
        let v = serde_json::to_vec(record).expect("tenant records serialise");
        self.bucket.put(&part(id), v)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<(String, TenantRecord)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.bucket.entries("")? {
            let Some(id) = unpart(&k) else { continue };
            out.push((id.clone(), decode_json(|| format!("tenant {id}"), &v)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
