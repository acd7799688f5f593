//! [`KvDimensions`]: one tenant's Ninja Metrics dimensions in bucket `<prefix>_DIMS`.
//!
//! Keys (each part escaped): `<tenant>.acc.<id>`, `.chr.<id>`, `.shd.<id>`, `.itm.<id>`
//! → the JSON record; `.cur.<label>.<timestamp>` → the rate; `.nam.<lower-cased name>` →
//! account id; `.app.<event_id>` → applied marker; `.cli.<api_client>.<user_agent>` →
//! client statistics.
//!
//! **Atomic with what.** KV on nats-server 2.9 has no multi-key transaction, so
//! [`DimensionStore::apply`] writes the change's keys first and the `app` marker last.
//! Every change is idempotent (a put of the same record; a merge of the same fields; a
//! delete of what is deleted), so a loader retried after a crash between the two finds no
//! marker and applies the same change again: exactly-once in effect, like the sled store's
//! transaction. A reader may see a change's keys land one by one (a character before its
//! name link). Merges (`DeleteAccount`, `DeleteCharacter`, client counts) are
//! compare-and-set on the key's revision, so concurrent nodes never lose each other's writes.
//! **Durable when** each call returns (stream quorum).

use serde_json::{json, Map, Value};

use super::bucket::{key, unpart, Bucket};
use crate::stores::{DimChange, DimKind, DimensionStore, StoreError};

/// Decoded key parts after a prefix, and the value.
type Scanned = Vec<(Vec<String>, Vec<u8>)>;

/// The cluster-wide [`DimensionStore`] of one tenant.
#[derive(Clone)]
pub struct KvDimensions {
    bucket: Bucket,
    tenant: String,
}

fn kind_tag(kind: DimKind) -> &'static str {
    match kind {
        DimKind::Accounts => "acc",
        DimKind::Characters => "chr",
        DimKind::Shards => "shd",
        DimKind::Items => "itm",
    }
}

fn enc(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON serialises")
}

fn with_deleted(record: &Map<String, Value>, deleted: bool) -> Value {
    let mut r = record.clone();
    r.insert("deleted".into(), json!(deleted));
    Value::Object(r)
}

fn object(v: Option<&[u8]>) -> Map<String, Value> {
    v.and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or_default()
}

impl KvDimensions {
    pub fn new(bucket: Bucket, tenant: &str) -> KvDimensions {
        KvDimensions {
            bucket,
            tenant: tenant.to_owned(),
        }
    }

    fn k(&self, parts: &[&str]) -> String {
        let mut all = vec![self.tenant.as_str()];
        all.extend_from_slice(parts);
        key(&all)
    }

    /// Decoded trailing parts and values of every key under `parts`, sorted by the parts.
    fn scan(&self, parts: &[&str]) -> Result<Scanned, StoreError> {
        let prefix = format!("{}.", self.k(parts));
        let mut out = Vec::new();
        for (k, v) in self.bucket.entries(&prefix)? {
            let rest: Option<Vec<String>> = k[prefix.len()..].split('.').map(unpart).collect();
            if let Some(rest) = rest {
                out.push((rest, v.to_vec()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl DimensionStore for KvDimensions {
    fn applied(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.bucket.get(&self.k(&["app", event_id]))?.is_some())
    }

    fn get(&self, kind: DimKind, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self
            .bucket
            .get(&self.k(&[kind_tag(kind), id]))?
            .and_then(|(v, _)| serde_json::from_slice(&v).ok()))
    }

    fn contains(&self, kind: DimKind, id: &str) -> Result<bool, StoreError> {
        Ok(self.bucket.get(&self.k(&[kind_tag(kind), id]))?.is_some())
    }

    fn currency(&self, label: &str) -> Result<Option<Value>, StoreError> {
        let history: Vec<Value> = self
            .scan(&["cur", label])?
            .into_iter()
            .map(|(rest, v)| {
                let rate: Value = serde_json::from_slice(&v).unwrap_or(Value::Null);
                json!({"timestamp": rest.join("."), "rate": rate})
            })
            .collect();
        Ok(history.last().cloned().map(|cur| {
            json!({"label": label, "rate": cur["rate"], "since": cur["timestamp"], "history": history})
        }))
    }

    fn apply(&self, change: &DimChange, event_id: &str) -> Result<(), StoreError> {
        match change {
            DimChange::None => {}
            DimChange::Put { kind, id, record } => {
                let v = match kind {
                    DimKind::Accounts | DimKind::Characters => with_deleted(record, false),
                    DimKind::Shards | DimKind::Items => Value::Object(record.clone()),
                };
                self.bucket.put(&self.k(&[kind_tag(*kind), id]), enc(&v))?;
            }
            DimChange::DeleteAccount { id, record } => {
                self.bucket
                    .modify(&self.k(&["acc", id]), |old| -> Result<_, StoreError> {
                        let mut r = object(old);
                        for (k, v) in record {
                            r.insert(k.clone(), v.clone());
                        }
                        Ok((Some(enc(&with_deleted(&r, true))), ()))
                    })?;
            }
            DimChange::PutCharacter {
                id,
                record,
                name,
                account,
            } => {
                self.bucket
                    .put(&self.k(&["chr", id]), enc(&with_deleted(record, false)))?;
                let name = name.to_lowercase();
                if !name.is_empty() {
                    self.bucket
                        .put(&self.k(&["nam", &name]), account.as_bytes().to_vec())?;
                }
            }
            DimChange::DeleteCharacter { id, timestamp } => {
                let name =
                    self.bucket
                        .modify(&self.k(&["chr", id]), |old| -> Result<_, StoreError> {
                            let Some(old) = old else {
                                return Ok((None, None));
                            };
                            let mut r = object(Some(old));
                            let name = r
                                .get("character_name")
                                .and_then(Value::as_str)
                                .map(str::to_lowercase);
                            r.insert("updated_at".into(), json!(timestamp));
                            Ok((Some(enc(&with_deleted(&r, true))), name))
                        })?;
                if let Some(name) = name {
                    self.bucket.delete(&self.k(&["nam", &name]))?;
                }
            }
            DimChange::SetCurrency {
                label,
                timestamp,
                rate,
            } => {
                self.bucket
                    .put(&self.k(&["cur", label, timestamp]), enc(rate))?;
            }
        }
        // Last: the marker says the whole change is there.
        self.bucket
            .put(&self.k(&["app", event_id]), b"1".to_vec())?;
        Ok(())
    }

    fn record_client(
        &self,
        api_client: &str,
        user_agent: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        self.bucket.modify(
            &self.k(&["cli", api_client, user_agent]),
            |old| -> Result<_, StoreError> {
                let n = old
                    .and_then(|o| serde_json::from_slice::<Value>(o).ok())
                    .and_then(|v| v["requests"].as_u64())
                    .unwrap_or(0);
                let v = json!({"api_client": api_client, "user_agent": user_agent, "requests": n + 1, "last_seen": now});
                Ok((Some(enc(&v)), ()))
            },
        )
    }

    fn clients(&self) -> Result<Vec<Value>, StoreError> {
        Ok(self
            .scan(&["cli"])?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    fn character_owner(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .bucket
            .get(&self.k(&["nam", &name.to_lowercase()]))?
            .and_then(|(v, _)| String::from_utf8(v.to_vec()).ok()))
    }
}
