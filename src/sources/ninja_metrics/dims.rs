//! Ninja Metrics dimension data per tenant in sled: accounts (#9/#10), characters (#11/#12),
//! shards (#13), virtual currencies with rate history (#14), items (#15), character names,
//! the markers of applied loader events, and the API clients seen.

use serde_json::{json, Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::schema::{EventType, Loader, Ref};

/// One tenant's dimension trees.
#[derive(Clone)]
pub struct Dims {
    accounts: sled::Tree,
    characters: sled::Tree,
    shards: sled::Tree,
    items: sled::Tree,
    /// `label \0 timestamp` → rate (timestamps are fixed-width ISO-8601, so keys sort by time).
    currencies: sled::Tree,
    names: sled::Tree,
    /// event_id → loader already applied (makes retried loaders idempotent).
    applied: sled::Tree,
    clients: sled::Tree,
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

fn live(v: Option<sled::IVec>) -> Option<Value> {
    let v: Value = serde_json::from_slice(&v?).ok()?;
    Some(v)
}

impl Dims {
    pub fn open(db: &sled::Db, tenant: &str) -> sled::Result<Dims> {
        let t = |n: &str| db.open_tree(format!("nm/{tenant}/{n}"));
        Ok(Dims {
            accounts: t("accounts")?,
            characters: t("characters")?,
            shards: t("shards")?,
            items: t("items")?,
            currencies: t("currencies")?,
            names: super::character_names(db, tenant)?,
            applied: t("applied")?,
            clients: t("clients")?,
        })
    }

    pub fn applied(&self, event_id: &str) -> sled::Result<bool> {
        self.applied.contains_key(event_id)
    }

    fn account_ok(&self, field: &str, id: &str) -> Result<(), String> {
        match live(self.accounts.get(id).map_err(|e| e.to_string())?) {
            None => Err(format!(
                "data.{field}: account {id:?} was never initialised (send #9 first)"
            )),
            Some(a) if a["deleted"] == true => {
                Err(format!("data.{field}: account {id:?} was deleted (#10)"))
            }
            Some(_) => Ok(()),
        }
    }

    fn character_ok(&self, field: &str, id: &str) -> Result<Value, String> {
        match live(self.characters.get(id).map_err(|e| e.to_string())?) {
            None => Err(format!(
                "data.{field}: character {id:?} was never initialised (send #11 first)"
            )),
            Some(c) if c["deleted"] == true => {
                Err(format!("data.{field}: character {id:?} was deleted (#12)"))
            }
            Some(c) => Ok(c),
        }
    }

    /// Every referenced account, character, shard, item and currency must exist (and not be
    /// deleted). "Unused" values (0, "") are not references.
    pub fn check_refs(&self, t: &EventType, data: &Map<String, Value>) -> Result<(), String> {
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
                        let k = num_key(v);
                        if !self.shards.contains_key(&k).map_err(|e| e.to_string())? {
                            return Err(format!(
                                "data.{}: shard {k} was never initialised (send #13 first)",
                                f.name
                            ));
                        }
                    }
                }
                Ref::Item => {
                    let k = num_key(v);
                    if !self.items.contains_key(&k).map_err(|e| e.to_string())? {
                        return Err(format!(
                            "data.{}: item {k} was never initialised (send #15 first)",
                            f.name
                        ));
                    }
                }
            }
        }
        // Virtual-currency transactions name a currency loaded with #14.
        if data.get("currency_type").and_then(Value::as_i64) == Some(1) {
            let label = str_of(data, "virtual_currency_label");
            if self.currency(label).map_err(|e| e.to_string())?.is_none() {
                return Err(format!(
                    "data.virtual_currency_label: virtual currency {label:?} was never initialised (send #14 first)"
                ));
            }
        }
        match t.loader {
            Loader::CharacterDelete => {
                let c = self.character_ok("character_id", str_of(data, "character_id"))?;
                if c["account_id"] != str_of(data, "account_id") {
                    return Err(format!(
                        "data.character_id: character {:?} does not belong to account {:?}",
                        str_of(data, "character_id"),
                        str_of(data, "account_id")
                    ));
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
    ) -> Result<(), String> {
        let mut record = data.clone();
        record.remove("type");
        record.insert("updated_at".into(), json!(timestamp));
        let trees = (
            &self.accounts,
            &self.characters,
            &self.shards,
            &self.items,
            &self.currencies,
            &self.names,
            &self.applied,
        );
        let result: Result<(), TransactionError<String>> =
            trees.transaction(|(acc, chr, shd, itm, cur, nam, app)| {
                let enc = |v: &Value| serde_json::to_vec(v).expect("JSON serialises");
                match t.loader {
                    Loader::None => {}
                    Loader::AccountCreate => {
                        let mut r = record.clone();
                        r.insert("deleted".into(), json!(false));
                        acc.insert(
                            str_of(data, "account_id").as_bytes(),
                            enc(&Value::Object(r)),
                        )?;
                    }
                    Loader::AccountDelete => {
                        let id = str_of(data, "account_id");
                        let mut r: Map<String, Value> = acc
                            .get(id)?
                            .and_then(|v| serde_json::from_slice(&v).ok())
                            .unwrap_or_default();
                        for (k, v) in &record {
                            r.insert(k.clone(), v.clone());
                        }
                        r.insert("deleted".into(), json!(true));
                        acc.insert(id.as_bytes(), enc(&Value::Object(r)))?;
                    }
                    Loader::CharacterCreate => {
                        let mut r = record.clone();
                        r.insert("deleted".into(), json!(false));
                        chr.insert(
                            str_of(data, "character_id").as_bytes(),
                            enc(&Value::Object(r)),
                        )?;
                        let name = str_of(data, "character_name").to_lowercase();
                        if !name.is_empty() {
                            nam.insert(name.as_bytes(), str_of(data, "account_id").as_bytes())?;
                        }
                    }
                    Loader::CharacterDelete => {
                        let id = str_of(data, "character_id");
                        if let Some(old) = chr.get(id)? {
                            let mut r: Map<String, Value> =
                                serde_json::from_slice(&old).unwrap_or_default();
                            if let Some(name) = r.get("character_name").and_then(Value::as_str) {
                                nam.remove(name.to_lowercase().as_bytes())?;
                            }
                            r.insert("deleted".into(), json!(true));
                            r.insert("updated_at".into(), json!(timestamp));
                            chr.insert(id.as_bytes(), enc(&Value::Object(r)))?;
                        }
                    }
                    Loader::ShardCreate => {
                        shd.insert(
                            num_key(&data["shard_id"]).as_bytes(),
                            enc(&Value::Object(record.clone())),
                        )?;
                    }
                    Loader::SetCurrency => {
                        let key =
                            format!("{}\0{timestamp}", str_of(data, "virtual_currency_label"));
                        cur.insert(key.as_bytes(), enc(&data["virtual_currency_ex_rate"]))?;
                    }
                    Loader::ItemCreate => {
                        itm.insert(
                            num_key(&data["item_id"]).as_bytes(),
                            enc(&Value::Object(record.clone())),
                        )?;
                    }
                }
                app.insert(event_id.as_bytes(), &b"1"[..])?;
                Ok::<(), ConflictableTransactionError<String>>(())
            });
        result.map_err(|e| format!("{e:?}"))
    }

    /// Record an API client and User-Agent seen (count and last time).
    pub fn record_client(&self, api_client: &str, user_agent: &str, now: &str) {
        let key = format!("{api_client}\0{user_agent}");
        let _ = self.clients.update_and_fetch(key.as_bytes(), |old| {
            let n = old
                .and_then(|o| serde_json::from_slice::<Value>(o).ok())
                .and_then(|v| v["requests"].as_u64())
                .unwrap_or(0);
            Some(serde_json::to_vec(&json!({"api_client": api_client, "user_agent": user_agent, "requests": n + 1, "last_seen": now})).expect("JSON"))
        });
    }

    pub fn clients(&self) -> Vec<Value> {
        self.clients
            .iter()
            .values()
            .filter_map(|v| serde_json::from_slice(&v.ok()?).ok())
            .collect()
    }

    /// A dimension record by kind (`accounts`, `characters`, `shards`, `items`).
    pub fn get(&self, kind: &str, id: &str) -> Option<Value> {
        let tree = match kind {
            "accounts" => &self.accounts,
            "characters" => &self.characters,
            "shards" => &self.shards,
            "items" => &self.items,
            _ => return None,
        };
        live(tree.get(id).ok()?)
    }

    /// A currency's current rate and its history, oldest first.
    pub fn currency(&self, label: &str) -> sled::Result<Option<Value>> {
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
}
