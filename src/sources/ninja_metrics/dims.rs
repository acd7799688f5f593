//! Ninja Metrics dimension rules: which references a payload must satisfy and what a
//! loader event changes. The data lives in the engine's [`DimensionStore`] (accounts,
//! characters, shards, currencies, items, character names, applied markers, clients).

use std::sync::Arc;

use phoenix_actors::stores::{DimChange, DimKind, DimensionStore, StoreError};
use serde_json::{json, Map, Value};

use super::schema::{EventType, Loader, Ref};

/// One tenant's dimensions, as the Ninja Metrics routes use them.
#[derive(Clone)]
pub struct Dims {
    store: Arc<dyn DimensionStore>,
}

/// Why a payload's references fail: a 400 the client can fix, or a store fault.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("{0}")]
    Invalid(String),
    #[error("dimension store failure")]
    Store(#[from] StoreError),
}

/// Dimension key of a numeric id: `42` and `42.0` are the same shard.
pub fn num_key(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn str_of<'a>(data: &'a Map<String, Value>, k: &str) -> &'a str {
    data.get(k).and_then(Value::as_str).unwrap_or("")
}

impl Dims {
    pub fn new(store: Arc<dyn DimensionStore>) -> Dims {
        Dims { store }
    }

    pub fn applied(&self, event_id: &str) -> Result<bool, StoreError> {
        self.store.applied(event_id)
    }

    fn account_ok(&self, field: &str, id: &str) -> Result<(), RefError> {
        match self.store.get(DimKind::Accounts, id)? {
            None => Err(RefError::Invalid(format!(
                "data.{field}: account {id:?} was never initialised (send #9 first)"
            ))),
            Some(a) if a["deleted"] == true => Err(RefError::Invalid(format!(
                "data.{field}: account {id:?} was deleted (#10)"
            ))),
            Some(_) => Ok(()),
        }
    }

    fn character_ok(&self, field: &str, id: &str) -> Result<Value, RefError> {
        match self.store.get(DimKind::Characters, id)? {
            None => Err(RefError::Invalid(format!(
                "data.{field}: character {id:?} was never initialised (send #11 first)"
            ))),
            Some(c) if c["deleted"] == true => Err(RefError::Invalid(format!(
                "data.{field}: character {id:?} was deleted (#12)"
            ))),
            Some(c) => Ok(c),
        }
    }

    fn exists(
        &self,
        kind: DimKind,
        field: &str,
        k: &str,
        what: &str,
        num: u32,
    ) -> Result<(), RefError> {
        if self.store.contains(kind, k)? {
            return Ok(());
        }
        Err(RefError::Invalid(format!(
            "data.{field}: {what} {k} was never initialised (send #{num} first)"
        )))
    }

    /// Every referenced account, character, shard, item and currency must exist (and not be
    /// deleted). "Unused" values (0, "") are not references.
    pub fn check_refs(&self, t: &EventType, data: &Map<String, Value>) -> Result<(), RefError> {
        for f in t.fields {
            let Some(v) = data.get(f.name) else { continue };
            match f.refers {
                Ref::None => {}
                Ref::Account => self.account_ok(f.name, v.as_str().unwrap_or_default())?,
                Ref::Character => {
                    let id = v.as_str().unwrap_or_default();
                    if !id.is_empty() {
                        self.character_ok(f.name, id)?;
                    }
                }
                Ref::Shard => {
                    if v.as_f64() != Some(0.0) {
                        self.exists(DimKind::Shards, f.name, &num_key(v), "shard", 13)?;
                    }
                }
                Ref::Item => self.exists(DimKind::Items, f.name, &num_key(v), "item", 15)?,
            }
        }
        // Virtual-currency transactions name a currency loaded with #14.
        if data.get("currency_type").and_then(Value::as_i64) == Some(1) {
            let label = str_of(data, "virtual_currency_label");
            if self.store.currency(label)?.is_none() {
                return Err(RefError::Invalid(format!(
                    "data.virtual_currency_label: virtual currency {label:?} was never initialised (send #14 first)"
                )));
            }
        }
        match t.loader {
            Loader::CharacterDelete => {
                let c = self.character_ok("character_id", str_of(data, "character_id"))?;
                if c["account_id"] != str_of(data, "account_id") {
                    return Err(RefError::Invalid(format!(
                        "data.character_id: character {:?} does not belong to account {:?}",
                        str_of(data, "character_id"),
                        str_of(data, "account_id")
                    )));
                }
            }
            Loader::ItemCreate if str_of(data, "item_segment") == "UGC" => {
                self.account_ok("account_id", str_of(data, "account_id"))?;
                self.character_ok("character_id", str_of(data, "character_id"))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Apply a loader's effect and mark `event_id` applied, in one transaction.
    pub fn apply(
        &self,
        t: &EventType,
        data: &Map<String, Value>,
        timestamp: &str,
        event_id: &str,
    ) -> Result<(), StoreError> {
        let mut record = data.clone();
        record.remove("type");
        record.insert("updated_at".into(), json!(timestamp));
        let id = |k: &str| str_of(data, k).to_owned();
        let change = match t.loader {
            Loader::None => DimChange::None,
            Loader::AccountCreate => DimChange::Put {
                kind: DimKind::Accounts,
                id: id("account_id"),
                record,
            },
            Loader::AccountDelete => DimChange::DeleteAccount {
                id: id("account_id"),
                record,
            },
            Loader::CharacterCreate => DimChange::PutCharacter {
                id: id("character_id"),
                record,
                name: id("character_name"),
                account: id("account_id"),
            },
            Loader::CharacterDelete => DimChange::DeleteCharacter {
                id: id("character_id"),
                timestamp: timestamp.to_owned(),
            },
            Loader::ShardCreate => DimChange::Put {
                kind: DimKind::Shards,
                id: num_key(&data["shard_id"]),
                record,
            },
            Loader::SetCurrency => DimChange::SetCurrency {
                label: id("virtual_currency_label"),
                timestamp: timestamp.to_owned(),
                rate: data["virtual_currency_ex_rate"].clone(),
            },
            Loader::ItemCreate => DimChange::Put {
                kind: DimKind::Items,
                id: num_key(&data["item_id"]),
                record,
            },
        };
        self.store.apply(&change, event_id)
    }

    /// Record an API client and User-Agent seen (count and last time); best effort.
    pub fn record_client(&self, api_client: &str, user_agent: &str, now: &str) {
        if let Err(e) = self.store.record_client(api_client, user_agent, now) {
            tracing::warn!(error = %e, "could not count a Ninja Metrics client");
        }
    }

    pub fn clients(&self) -> Result<Vec<Value>, StoreError> {
        self.store.clients()
    }

    /// A dimension record by kind (`accounts`, `characters`, `shards`, `items`).
    pub fn get(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        match DimKind::parse(kind) {
            Some(k) => self.store.get(k, id),
            None => Ok(None),
        }
    }

    /// A currency's current rate and its history, oldest first.
    pub fn currency(&self, label: &str) -> Result<Option<Value>, StoreError> {
        self.store.currency(label)
    }
}
