//! Ninja Metrics dimensions per tenant (SPEC §6): accounts (#9/#10), characters (#11/#12),
//! shards (#13), virtual currencies with rate history (#14), items (#15), character names,
//! the markers of applied loader events, and the API clients seen. The edge decides what a
//! loader event changes ([`DimChange`]); this store applies it.

use serde_json::{json, Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{SledStore, StoreError};

/// The record kinds readable by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimKind {
    Accounts,
    Characters,
    Shards,
    Items,
}

impl DimKind {
    /// The kind named in a URL (`accounts`, `characters`, `shards`, `items`).
    pub fn parse(name: &str) -> Option<DimKind> {
        Some(match name {
            "accounts" => DimKind::Accounts,
            "characters" => DimKind::Characters,
            "shards" => DimKind::Shards,
            "items" => DimKind::Items,
            _ => return None,
        })
    }
}

/// What one loader event changes. Records are JSON objects as the edge built them.
#[derive(Debug, Clone, PartialEq)]
pub enum DimChange {
    /// Nothing (the event is only marked applied).
    None,
    /// Create or replace an account, shard or item (an account is stored with
    /// `deleted: false`; shards and items are never deleted). Shards and items are keyed by
    /// their numeric id's canonical text. Characters use [`DimChange::PutCharacter`].
    Put {
        kind: DimKind,
        id: String,
        record: Map<String, Value>,
    },
    /// Merge `record` into the account (created if missing) and mark it `deleted: true`.
    DeleteAccount {
        id: String,
        record: Map<String, Value>,
    },
    /// Create or replace a character (stored with `deleted: false`), and, when `name` is not
    /// empty, link its lower-cased name to `account`.
    PutCharacter {
        id: String,
        record: Map<String, Value>,
        name: String,
        account: String,
    },
    /// Mark an existing character deleted at `timestamp` and unlink its name (no-op if the
    /// character is unknown).
    DeleteCharacter { id: String, timestamp: String },
    /// Add a rate of a virtual currency at `timestamp` (fixed-width ISO-8601).
    SetCurrency {
        label: String,
        timestamp: String,
        rate: Value,
    },
}

/// One tenant's Ninja Metrics dimensions.
///
/// Contract:
/// - **A change is atomic with its marker.** [`DimensionStore::apply`] writes the change
///   and marks `event_id` applied in one transaction: after a crash either both are there
///   or neither, so a retried loader is applied exactly once.
/// - **Durable after persist**: visible on return, durable once [`crate::Engine::persist`]
///   (or, in the embedded setup where state and log share one store, the fsync of the
///   event's own ingest) returns after it.
/// - **Reads are of the latest applied state**; a deleted record reads with
///   `deleted: true`, an unknown one as `None`.
/// - Client statistics ([`DimensionStore::record_client`]) are best effort: counted per
///   call, lost with an unsynced crash.
pub trait DimensionStore: Send + Sync + 'static {
    /// Whether the loader event `event_id` was applied.
    fn applied(&self, event_id: &str) -> Result<bool, StoreError>;
    /// A record by kind and id (unreadable stored bytes read as `None`).
    fn get(&self, kind: DimKind, id: &str) -> Result<Option<Value>, StoreError>;
    /// Whether a record exists (deleted or not).
    fn contains(&self, kind: DimKind, id: &str) -> Result<bool, StoreError>;
    /// A currency's current rate and its history, oldest first.
    fn currency(&self, label: &str) -> Result<Option<Value>, StoreError>;
    /// Apply `change` and mark `event_id` applied, in one transaction.
    fn apply(&self, change: &DimChange, event_id: &str) -> Result<(), StoreError>;
    /// Count one request of an API client and User-Agent, seen at `now`.
    fn record_client(
        &self,
        api_client: &str,
        user_agent: &str,
        now: &str,
    ) -> Result<(), StoreError>;
    /// The API clients seen, with counts.
    fn clients(&self) -> Result<Vec<Value>, StoreError>;
    /// The account a character name belongs to (case-insensitive), if any.
    fn character_owner(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// The sled [`DimensionStore`]: trees `nm/{tenant}/{accounts,characters,shards,items,
/// currencies,character_names,applied,clients}`.
#[derive(Clone)]
pub struct SledDimensions {
    accounts: sled::Tree,
    characters: sled::Tree,
    shards: sled::Tree,
    items: sled::Tree,
    /// `label \0 timestamp` → rate (timestamps are fixed-width ISO-8601, so keys sort by time).
    currencies: sled::Tree,
    /// Lower-cased character name → account id.
    names: sled::Tree,
    /// event_id → loader already applied (makes retried loaders idempotent).
    applied: sled::Tree,
    clients: sled::Tree,
}

fn live(v: Option<sled::IVec>) -> Option<Value> {
    serde_json::from_slice(&v?).ok()
}

fn enc(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON serialises")
}

fn with_deleted(record: &Map<String, Value>, deleted: bool) -> Value {
    let mut r = record.clone();
    r.insert("deleted".into(), json!(deleted));
    Value::Object(r)
}

impl SledDimensions {
    pub fn open(store: &SledStore, tenant: &str) -> Result<SledDimensions, StoreError> {
        let t = |n: &str| store.db().open_tree(format!("nm/{tenant}/{n}"));
        Ok(SledDimensions {
            accounts: t("accounts")?,
            characters: t("characters")?,
            shards: t("shards")?,
            items: t("items")?,
            currencies: t("currencies")?,
            names: t("character_names")?,
            applied: t("applied")?,
            clients: t("clients")?,
        })
    }

    fn tree(&self, kind: DimKind) -> &sled::Tree {
        match kind {
            DimKind::Accounts => &self.accounts,
            DimKind::Characters => &self.characters,
            DimKind::Shards => &self.shards,
            DimKind::Items => &self.items,
        }
    }
}

impl DimensionStore for SledDimensions {
    fn applied(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.applied.contains_key(event_id)?)
    }

    fn get(&self, kind: DimKind, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(live(self.tree(kind).get(id)?))
    }

    fn contains(&self, kind: DimKind, id: &str) -> Result<bool, StoreError> {
        Ok(self.tree(kind).contains_key(id)?)
    }

    fn currency(&self, label: &str) -> Result<Option<Value>, StoreError> {
        let mut history = Vec::new();
        for kv in self.currencies.scan_prefix(format!("{label}\0")) {
            let (k, v) = kv?;
            let at = String::from_utf8_lossy(&k[label.len() + 1..]).into_owned();
            let rate: Value = serde_json::from_slice(&v).unwrap_or(Value::Null);
            history.push(json!({"timestamp": at, "rate": rate}));
        }
        Ok(history.last().cloned().map(|cur| {
            json!({"label": label, "rate": cur["rate"], "since": cur["timestamp"], "history": history})
        }))
    }

    fn apply(&self, change: &DimChange, event_id: &str) -> Result<(), StoreError> {
        let trees = (
            &self.accounts,
            &self.characters,
            &self.shards,
            &self.items,
            &self.currencies,
            &self.names,
            &self.applied,
        );
        let result: Result<(), TransactionError<std::convert::Infallible>> =
            trees.transaction(|(acc, chr, shd, itm, cur, nam, app)| {
                match change {
                    DimChange::None => {}
                    DimChange::Put { kind, id, record } => {
                        let (tree, v) = match kind {
                            DimKind::Accounts => (acc, with_deleted(record, false)),
                            DimKind::Characters => (chr, with_deleted(record, false)),
                            DimKind::Shards => (shd, Value::Object(record.clone())),
                            DimKind::Items => (itm, Value::Object(record.clone())),
                        };
                        tree.insert(id.as_bytes(), enc(&v))?;
                    }
                    DimChange::DeleteAccount { id, record } => {
                        let mut r: Map<String, Value> = acc
                            .get(id)?
                            .and_then(|v| serde_json::from_slice(&v).ok())
                            .unwrap_or_default();
                        for (k, v) in record {
                            r.insert(k.clone(), v.clone());
                        }
                        acc.insert(id.as_bytes(), enc(&with_deleted(&r, true)))?;
                    }
                    DimChange::PutCharacter {
                        id,
                        record,
                        name,
                        account,
                    } => {
                        chr.insert(id.as_bytes(), enc(&with_deleted(record, false)))?;
                        let name = name.to_lowercase();
                        if !name.is_empty() {
                            nam.insert(name.as_bytes(), account.as_bytes())?;
                        }
                    }
                    DimChange::DeleteCharacter { id, timestamp } => {
                        if let Some(old) = chr.get(id)? {
                            let mut r: Map<String, Value> =
                                serde_json::from_slice(&old).unwrap_or_default();
                            if let Some(name) = r.get("character_name").and_then(Value::as_str) {
                                nam.remove(name.to_lowercase().as_bytes())?;
                            }
                            r.insert("updated_at".into(), json!(timestamp));
                            chr.insert(id.as_bytes(), enc(&with_deleted(&r, true)))?;
                        }
                    }
                    DimChange::SetCurrency {
                        label,
                        timestamp,
                        rate,
                    } => {
                        cur.insert(format!("{label}\0{timestamp}").as_bytes(), enc(rate))?;
                    }
                }
                app.insert(event_id.as_bytes(), &b"1"[..])?;
                Ok::<(), ConflictableTransactionError<std::convert::Infallible>>(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(never)) => match never {},
        }
    }

    fn record_client(
        &self,
        api_client: &str,
        user_agent: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let key = format!("{api_client}\0{user_agent}");
        self.clients.update_and_fetch(key.as_bytes(), |old| {
            let n = old
                .and_then(|o| serde_json::from_slice::<Value>(o).ok())
                .and_then(|v| v["requests"].as_u64())
                .unwrap_or(0);
            Some(enc(
                &json!({"api_client": api_client, "user_agent": user_agent, "requests": n + 1, "last_seen": now}),
            ))
        })?;
        Ok(())
    }

    fn clients(&self) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::new();
        for v in self.clients.iter().values() {
            if let Ok(v) = serde_json::from_slice(&v?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn character_owner(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .names
            .get(name.to_lowercase())?
            .and_then(|v| String::from_utf8(v.to_vec()).ok()))
    }
}
