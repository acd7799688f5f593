//! Window close (SPEC §12): reward tiers (parsed with the definition), who gets what at a
//! window's final standings (pure), and the [`CloseStore`] that records a close exactly once.
//!
//! Contract of [`CloseStore::close`]: one sled transaction writes the close record (final
//! top entries + grants), credits every grant into the tenant's wallet and ledger
//! ([`crate::rewards::RewardStore`], each grant deduped on its ledger key), and enqueues the
//! webhook delivery ([`crate::outbox::Outbox`]). A second close of the same window (a board
//! restarted from an older checkpoint, a rebuilt definition) finds the record and changes
//! nothing. Durable with the next fsync of the shared db; a crash before it redoes the
//! close from the log with the same standings, ids and times.
//!
//! Tree `closes/{tenant}/{board}`: `lp(timeframe) ‖ window (sortable)` → [`CloseRecord`];
//! `epoch` → `u32 len ‖ definition JSON ‖ i64 ms` (windows closing before the current
//! definition was first seen are recorded without rewards, events or webhooks).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sled::transaction::{abort, TransactionError};
use sled::Transactional;

use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;
use crate::outbox::{Enqueued, NewMessage, Outbox, OutboxTx};
use crate::rewards::{credit_once, Grant, Reward, RewardError, RewardStore};

/// Highest rank a `ranks` tier may name (it bounds the grants of one close).
pub const MAX_REWARD_RANK: u64 = 10_000;
/// Most tiers in one definition.
pub const MAX_TIERS: usize = 32;
/// Most items in one tier, and their longest name.
const MAX_ITEMS: usize = 16;
const MAX_ITEM_LEN: usize = 64;

/// The stream event type and webhook `type` of a close.
pub const WINDOW_CLOSED: &str = "leaderboard.window_closed";

/// Which users a tier matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierMatch {
    /// Ranks `from..=to`.
    Ranks(u64, u64),
    /// The best `p` percent of the window's users: ranks `1..=ceil(total × p / 100)`.
    TopPercent(u64),
}

/// One reward tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardTier {
    pub matches: TierMatch,
    pub coins: u64,
    pub items: Vec<String>,
}

/// Why `rewards` is refused; every message names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardsError {
    #[error("rewards: at most {MAX_TIERS} tiers")]
    TooManyTiers,
    #[error("rewards: must be an array of tiers")]
    NotAnArray,
    #[error("rewards[{0}]: must be an object")]
    TierNotAnObject(usize),
    #[error("rewards[{tier}].{field}: {problem}")]
    Tier {
        tier: usize,
        field: String,
        problem: TierProblem,
    },
}

/// What is wrong with one field of a reward tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierProblem {
    #[error("unknown field")]
    UnknownField,
    #[error("give ranks or top_percent, not both")]
    RanksAndPercent,
    #[error("required (or top_percent)")]
    RanksRequired,
    #[error("[{0}, {1}] is reversed")]
    Reversed(u64, u64),
    #[error("must be [first, last], 1 <= first <= last <= {MAX_REWARD_RANK}")]
    BadRanks,
    #[error("must be an integer from 1 to 100")]
    BadPercent,
    #[error("must be a whole number of coins, 0 or more")]
    BadCoins,
    #[error("each item must be a string of 1-{MAX_ITEM_LEN} bytes")]
    BadItem,
    #[error("must be an array of at most {MAX_ITEMS} strings")]
    BadItems,
    #[error("a tier must grant coins or items")]
    NothingGranted,
}

fn tier_err(tier: usize, field: &str, problem: TierProblem) -> RewardsError {
    RewardsError::Tier {
        tier,
        field: field.to_owned(),
        problem,
    }
}

/// Parse the `rewards` array; every error names its field (`rewards[1].ranks: …`).
pub fn parse_rewards(v: &Value) -> Result<Vec<RewardTier>, RewardsError> {
    let list = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(l) if l.len() <= MAX_TIERS => l,
        Value::Array(_) => return Err(RewardsError::TooManyTiers),
        _ => return Err(RewardsError::NotAnArray),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let Some(obj) = t.as_object() else {
            return Err(RewardsError::TierNotAnObject(i));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["ranks", "top_percent", "coins", "items"].contains(&k.as_str()))
        {
            return Err(tier_err(i, k, TierProblem::UnknownField));
        }
        let matches = match (obj.get("ranks"), obj.get("top_percent")) {
            (Some(_), Some(_)) => return Err(tier_err(i, "ranks", TierProblem::RanksAndPercent)),
            (None, None) => {
                return Err(tier_err(i, "ranks", TierProblem::RanksRequired));
            }
            (Some(r), None) => {
                let pair = r
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)));
                match pair {
                    Some((from, to)) if from >= 1 && from <= to && to <= MAX_REWARD_RANK => {
                        TierMatch::Ranks(from, to)
                    }
                    Some((from, to)) if from >= 1 && from > to => {
                        return Err(tier_err(i, "ranks", TierProblem::Reversed(from, to)))
                    }
                    _ => return Err(tier_err(i, "ranks", TierProblem::BadRanks)),
                }
            }
            (None, Some(p)) => match p.as_u64() {
                Some(p) if (1..=100).contains(&p) => TierMatch::TopPercent(p),
                _ => return Err(tier_err(i, "top_percent", TierProblem::BadPercent)),
            },
        };
        let coins = match obj.get("coins") {
            None | Some(Value::Null) => 0,
            Some(c) => c
                .as_u64()
                .ok_or_else(|| tier_err(i, "coins", TierProblem::BadCoins))?,
        };
        let items = match obj.get("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_ITEMS => items
                .iter()
                .map(|it| match it.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= MAX_ITEM_LEN => Ok(s.to_owned()),
                    _ => Err(tier_err(i, "items", TierProblem::BadItem)),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(tier_err(i, "items", TierProblem::BadItems)),
        };
        if coins == 0 && items.is_empty() {
            return Err(tier_err(i, "coins", TierProblem::NothingGranted));
        }
        out.push(RewardTier {
            matches,
            coins,
            items,
        });
    }
    Ok(out)
}

/// The tiers as the API returns them.
pub fn rewards_json(tiers: &[RewardTier]) -> Value {
    Value::Array(
        tiers
            .iter()
            .map(|t| {
                let mut v = match t.matches {
                    TierMatch::Ranks(a, b) => json!({"ranks": [a, b]}),
                    TierMatch::TopPercent(p) => json!({"top_percent": p}),
                };
                v["coins"] = json!(t.coins);
                if !t.items.is_empty() {
                    v["items"] = json!(t.items);
                }
                v
            })
            .collect(),
    )
}

/// The last rank a tier covers in a window of `total` users.
fn last_rank(m: TierMatch, total: u64) -> u64 {
    match m {
        TierMatch::Ranks(_, to) => to.min(total),
        TierMatch::TopPercent(p) => (total.saturating_mul(p)).div_ceil(100).min(total),
    }
}

/// The first tier matching `rank` (1-based) in a window of `total` users.
pub fn tier_of(tiers: &[RewardTier], rank: u64, total: u64) -> Option<usize> {
    tiers.iter().position(|t| {
        let first = match t.matches {
            TierMatch::Ranks(from, _) => from,
            TierMatch::TopPercent(_) => 1,
        };
        rank >= first && rank <= last_rank(t.matches, total)
    })
}

/// How many top entries the grants of a window of `total` users need.
pub fn ranks_needed(tiers: &[RewardTier], total: u64) -> u64 {
    tiers
        .iter()
        .map(|t| last_rank(t.matches, total))
        .max()
        .unwrap_or(0)
}

/// One final standing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEntry {
    pub rank: u64,
    pub user_id: String,
    pub score: f64,
}

/// One reward granted at a close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowGrant {
    pub user_id: String,
    pub rank: u64,
    /// Index of the tier in the definition's `rewards`.
    pub tier: usize,
    pub coins: u64,
    pub items: Vec<String>,
}

/// A closed window: the final top entries and the grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseRecord {
    pub leaderboard: String,
    pub timeframe: String,
    pub window: String,
    /// End + `late_grace_seconds` (ms): deterministic, so a redone close is identical.
    pub closed_at_ms: i64,
    /// Users in the window.
    pub total: u64,
    /// The top entries (at most the configured results size, or more if grants needed them).
    pub results: Vec<ResultEntry>,
    pub grants: Vec<WindowGrant>,
    /// Tiers matched more users than the per-close grant limit: the rest got nothing.
    #[serde(default)]
    pub grants_capped: u64,
    /// `false` when the window closed before this definition existed: recorded, nothing
    /// granted, no event, no webhook.
    pub rewarded: bool,
    /// The `leaderboard.window_closed` stream event was acknowledged.
    #[serde(default)]
    pub emitted: bool,
    /// The webhook delivery id, if one was enqueued.
    #[serde(default)]
    pub delivery_id: Option<String>,
}

impl CloseRecord {
    /// The grant id of every grant of this close (the ledger dedupe key, per user).
    pub fn grant_id(&self) -> String {
        format!("lb:{}:{}:{}", self.leaderboard, self.timeframe, self.window)
    }

    /// The webhook delivery id (also the stream event's id).
    pub fn event_id(&self) -> String {
        format!(
            "window-closed:{}:{}:{}",
            self.leaderboard, self.timeframe, self.window
        )
    }

    /// The webhook body: `{"type","leaderboard","timeframe","window","closed_at","total",
    /// "results","grants"}`.
    pub fn webhook_body(&self) -> String {
        json!({
            "type": WINDOW_CLOSED,
            "leaderboard": self.leaderboard,
            "timeframe": self.timeframe,
            "window": self.window,
            "closed_at": rfc3339(self.closed_at_ms),
            "total": self.total,
            "results": self.results,
            "grants": self.grants,
        })
        .to_string()
    }

    /// The stream event of the close (deterministic: id and time from the record).
    pub fn stream_event(&self) -> Value {
        let coins: u64 = self.grants.iter().map(|g| g.coins).sum();
        json!({
            "event_id": self.event_id(),
            "type": WINDOW_CLOSED,
            "actor": {"user_id": format!("leaderboard:{}", self.leaderboard)},
            "subject": {"type": "leaderboard", "id": self.leaderboard},
            "occurred_at": rfc3339(self.closed_at_ms),
            "attrs": {
                "leaderboard": self.leaderboard, "timeframe": self.timeframe,
                "window": self.window, "total": self.total,
                "winners": self.results.iter().take(3).map(|e| &e.user_id).collect::<Vec<_>>(),
                "grants": self.grants.len(), "coins": coins
            }
        })
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Work out a close: the grants of the top `entries` (rank order) of a window of `total`
/// users, at most `max_grants`. Pure. Returns the grants and how many were cut by the cap.
pub fn assign(
    tiers: &[RewardTier],
    entries: &[ResultEntry],
    total: u64,
    max_grants: usize,
) -> (Vec<WindowGrant>, u64) {
    let mut grants = Vec::new();
    let mut capped = 0u64;
    for e in entries {
        let Some(t) = tier_of(tiers, e.rank, total) else {
            continue;
        };
        if grants.len() >= max_grants {
            capped += 1;
            continue;
        }
        grants.push(WindowGrant {
            user_id: e.user_id.clone(),
            rank: e.rank,
            tier: t,
            coins: tiers[t].coins,
            items: tiers[t].items.clone(),
        });
    }
    (grants, capped)
}

/// What [`CloseStore::close`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// Recorded now (grants credited, webhook enqueued unless the outbox was full).
    New { webhook_dropped: bool },
    /// Closed before: the stored record, nothing changed.
    Already(CloseRecord),
}

/// Closed windows of one board.
#[derive(Clone)]
pub struct CloseStore {
    tenant: String,
    closes: sled::Tree,
    rewards: RewardStore,
    outbox: Outbox,
}

fn key(tf: Timeframe, w: WindowKey) -> Vec<u8> {
    let name = tf.as_str();
    let mut k = (name.len() as u32).to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k.extend_from_slice(&w.to_sortable_bytes());
    k
}

const EPOCH: &[u8] = b"epoch";

fn corrupt(e: serde_json::Error) -> EngineError {
    EngineError::CorruptRecord {
        what: "close record",
        source: std::sync::Arc::new(e),
    }
}

impl CloseStore {
    pub fn open(db: &sled::Db, tenant: &str, board: &str) -> Result<CloseStore, EngineError> {
        Ok(CloseStore {
            tenant: tenant.to_owned(),
            closes: db.open_tree(format!("closes/{tenant}/{board}"))?,
            rewards: RewardStore::open(db, tenant)?,
            outbox: Outbox::open(db)?,
        })
    }

    /// Since when (ms) the definition `def_json` applies: stored the first time it is seen.
    pub fn epoch(&self, def_json: &str, now_ms: i64) -> Result<i64, EngineError> {
        if let Some(v) = self.closes.get(EPOCH)? {
            let len = v
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize);
            if let Some(len) = len {
                if v.get(4..4 + len) == Some(def_json.as_bytes()) {
                    if let Some(ms) = v.get(4 + len..12 + len) {
                        return Ok(i64::from_be_bytes(ms.try_into().expect("8")));
                    }
                }
            }
        }
        let mut v = (def_json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(def_json.as_bytes());
        v.extend_from_slice(&now_ms.to_be_bytes());
        self.closes.insert(EPOCH, v)?;
        Ok(now_ms)
    }

    pub fn get(&self, tf: Timeframe, w: WindowKey) -> Result<Option<CloseRecord>, EngineError> {
        self.closes
            .get(key(tf, w))?
            .map(|v| serde_json::from_slice(&v).map_err(corrupt))
            .transpose()
    }

    /// The closes of `tf`, newest window first.
    pub fn list(&self, tf: Timeframe, limit: usize) -> Result<Vec<CloseRecord>, EngineError> {
        let mut p = (tf.as_str().len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(tf.as_str().as_bytes());
        self.closes
            .scan_prefix(p)
            .rev()
            .take(limit)
            .map(|kv| serde_json::from_slice(&kv?.1).map_err(corrupt))
            .collect()
    }

    /// Every rewarded close whose stream event is not yet acknowledged.
    pub fn unemitted(&self) -> Result<Vec<CloseRecord>, EngineError> {
        let mut out = Vec::new();
        for kv in self.closes.iter() {
            let (k, v) = kv?;
            if k.as_ref() == EPOCH {
                continue;
            }
            let r: CloseRecord = serde_json::from_slice(&v).map_err(corrupt)?;
            if r.rewarded && !r.emitted {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Note that the close's stream event was acknowledged.
    pub fn mark_emitted(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        if let Some(mut r) = self.get(tf, w)? {
            if !r.emitted {
                r.emitted = true;
                self.closes
                    .insert(key(tf, w), serde_json::to_vec(&r).map_err(corrupt)?)?;
            }
        }
        Ok(())
    }

    /// Forget a window's close (history retention).
    pub fn drop_window(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError> {
        self.closes.remove(key(tf, w))?;
        Ok(())
    }

    /// Record the close of window `w` exactly once (see the module docs): the record, its
    /// grants and, when `rewarded`, its webhook delivery, in one transaction.
    pub fn close(
        &self,
        tf: Timeframe,
        w: WindowKey,
        mut record: CloseRecord,
        outbox_max: u64,
    ) -> Result<Closed, EngineError> {
        let k = key(tf, w);
        if let Some(v) = self.closes.get(&k)? {
            return Ok(Closed::Already(
                serde_json::from_slice(&v).map_err(corrupt)?,
            ));
        }
        let grant_id = record.grant_id();
        let ledger: Vec<Grant> = record
            .grants
            .iter()
            .map(|g| Grant {
                vote_id: grant_id.clone(),
                server_id: None,
                nickname: String::new(),
                user_id: g.user_id.clone(),
                gm_user_id: None,
                reward: Reward {
                    coins: g.coins,
                    items: g.items.clone(),
                    role: None,
                    vip_days: None,
                },
                granted_at_ms: record.closed_at_ms,
                source: Some("leaderboard".into()),
            })
            .collect();
        let message = record.rewarded.then(|| NewMessage {
            delivery_id: record.event_id(),
            tenant: self.tenant.clone(),
            kind: WINDOW_CLOSED.into(),
            body: record.webhook_body(),
            created_ms: record.closed_at_ms,
        });
        if message.is_some() {
            record.delivery_id = Some(record.event_id());
        }
        let id = self.outbox.next_id()?;
        let (balances, grants) = self.rewards.grant_trees();
        let (entries, due, counts) = self.outbox.trees();
        let result = (&self.closes, balances, grants, entries, due, counts).transaction(
            |(closes, balances, grants, entries, due, counts)| {
                if let Some(v) = closes.get(&k)? {
                    return match serde_json::from_slice(&v) {
                        Ok(r) => Ok(Closed::Already(r)),
                        Err(e) => abort(RewardError::Corrupt(e.to_string())),
                    };
                }
                let mut stored = record.clone();
                let mut webhook_dropped = false;
                if let Some(m) = &message {
                    let tx = OutboxTx {
                        entries,
                        due,
                        counts,
                    };
                    let queued = Outbox::enqueue_in(&tx, id, m, outbox_max)?;
                    if queued == Enqueued::Full {
                        webhook_dropped = true;
                        stored.delivery_id = None;
                    }
                }
                if stored.rewarded {
                    for g in &ledger {
                        credit_once(balances, grants, g)?;
                    }
                }
                match serde_json::to_vec(&stored) {
                    Ok(b) => closes.insert(k.as_slice(), b)?,
                    Err(e) => return abort(RewardError::Corrupt(e.to_string())),
                };
                Ok(Closed::New { webhook_dropped })
            },
        );
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e.into(),
            TransactionError::Storage(e) => e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<RewardTier> {
        parse_rewards(&json!([
            {"ranks": [1, 1], "coins": 1000, "items": ["gold-cup"]},
            {"ranks": [2, 3], "coins": 300},
            {"top_percent": 50, "coins": 50}
        ]))
        .unwrap()
    }

    fn entries(n: u64) -> Vec<ResultEntry> {
        (1..=n)
            .map(|r| ResultEntry {
                rank: r,
                user_id: format!("u{r}"),
                score: (100 - r) as f64,
            })
            .collect()
    }

    #[test]
    fn bad_tiers_name_their_field() {
        for (def, field) in [
            (json!([{"ranks": [3, 1], "coins": 1}]), "rewards[0].ranks"),
            (json!([{"ranks": [0, 1], "coins": 1}]), "rewards[0].ranks"),
            (
                json!([{"coins": 1}, {"ranks": [1], "coins": 1}]),
                "rewards[0].ranks",
            ),
            (
                json!([{"ranks": [1, 1], "coins": 1}, {"ranks": [1, 2], "top_percent": 5, "coins": 1}]),
                "rewards[1].ranks",
            ),
            (
                json!([{"top_percent": 0, "coins": 1}]),
                "rewards[0].top_percent",
            ),
            (
                json!([{"top_percent": 101, "coins": 1}]),
                "rewards[0].top_percent",
            ),
            (json!([{"ranks": [1, 1], "coins": -5}]), "rewards[0].coins"),
            (json!([{"ranks": [1, 1], "coins": 1.5}]), "rewards[0].coins"),
            (json!([{"ranks": [1, 1]}]), "rewards[0].coins"),
            (
                json!([{"ranks": [1, 1], "coins": 1, "items": [""]}]),
                "rewards[0].items",
            ),
            (
                json!([{"ranks": [1, 1], "coins": 1, "gems": 3}]),
                "rewards[0].gems",
            ),
            (json!({"ranks": [1, 1]}), "rewards:"),
        ] {
            let err = parse_rewards(&def).unwrap_err().to_string();
            assert!(err.starts_with(field), "{def}: {err}");
        }
        assert_eq!(
            parse_rewards(&json!([{"ranks": [2, 1], "coins": 1}])),
            Err(tier_err(0, "ranks", TierProblem::Reversed(2, 1)))
        );
        let t = tiers();
        assert_eq!(parse_rewards(&rewards_json(&t)).unwrap(), t, "round trip");
    }

    #[test]
    fn first_matching_tier_wins_and_percent_rounds_up() {
        let t = tiers();
        let (g, capped) = assign(&t, &entries(10), 10, 100);
        let got: Vec<(u64, usize, u64)> = g.iter().map(|g| (g.rank, g.tier, g.coins)).collect();
        // top 50% of 10 = ranks 1..=5; 1 → tier 0, 2-3 → tier 1, 4-5 → tier 2.
        assert_eq!(
            got,
            [
                (1, 0, 1000),
                (2, 1, 300),
                (3, 1, 300),
                (4, 2, 50),
                (5, 2, 50)
            ]
        );
        assert_eq!(
            (capped, g[0].items.clone()),
            (0, vec!["gold-cup".to_string()])
        );
        // 3 users: ceil(1.5) = 2 → rank 3 gets tier 1 only through its ranks.
        assert_eq!(ranks_needed(&t, 3), 3);
        assert_eq!(tier_of(&t, 3, 3), Some(1));
        // One user: top 50% still covers rank 1 (tier 0 matched first).
        assert_eq!(tier_of(&t, 1, 1), Some(0));
        let only_pct = parse_rewards(&json!([{"top_percent": 10, "coins": 5}])).unwrap();
        assert_eq!(ranks_needed(&only_pct, 25), 3);
        assert_eq!(tier_of(&only_pct, 4, 25), None);
        // The cap cuts the tail and counts it.
        let (g, capped) = assign(&t, &entries(10), 10, 2);
        assert_eq!((g.len(), capped), (2, 3));
    }

    fn record(rewarded: bool) -> CloseRecord {
        let t = tiers();
        let results = entries(4);
        let (grants, grants_capped) = assign(&t, &results, 4, 100);
        CloseRecord {
            leaderboard: "b".into(),
            timeframe: "hourly".into(),
            window: "2025-11-18T12".into(),
            closed_at_ms: 1_763_470_800_000,
            total: 4,
            results,
            grants,
            grants_capped,
            rewarded,
            emitted: false,
            delivery_id: None,
        }
    }

    /// A temporary db, board `b`'s close store in it, and the hourly window 2025-11-18T12.
    fn hourly_store() -> (sled::Db, CloseStore, Timeframe, WindowKey) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = CloseStore::open(&db, "t", "b").unwrap();
        let tf = Timeframe::Hourly;
        let w = WindowKey::parse(tf, "2025-11-18T12").unwrap();
        (db, s, tf, w)
    }

    /// A close credits every grant and enqueues one delivery; closing again changes nothing.
    #[test]
    fn close_is_exactly_once() {
        let (db, s, tf, w) = hourly_store();
        assert!(matches!(
            s.close(tf, w, record(true), 10).unwrap(),
            Closed::New {
                webhook_dropped: false
            }
        ));
        assert!(matches!(
            s.close(tf, w, record(true), 10).unwrap(),
            Closed::Already(_)
        ));
        let rewards = RewardStore::open(&db, "t").unwrap();
        let bal = |u: &str| rewards.wallet(u).unwrap().map(|w| w.balance).unwrap_or(0);
        // 4 users: top 50% = ranks 1-2; rank 3 by its ranks tier; rank 4 nothing.
        assert_eq!(
            (bal("u1"), bal("u2"), bal("u3"), bal("u4")),
            (1000, 300, 300, 0)
        );
        let w1 = rewards.wallet("u1").unwrap().unwrap();
        assert_eq!(w1.grants.len(), 1);
        assert_eq!(w1.grants[0].vote_id, "lb:b:hourly:2025-11-18T12");
        assert_eq!(w1.grants[0].source.as_deref(), Some("leaderboard"));
        let outbox = Outbox::open(&db).unwrap();
        assert_eq!(outbox.pending("t").unwrap(), 1);
        let e = &outbox.due(i64::MAX - 1, 10).unwrap()[0];
        assert_eq!(e.delivery_id, "window-closed:b:hourly:2025-11-18T12");
        let body: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(body["type"], WINDOW_CLOSED);
        assert_eq!(body["grants"][0]["user_id"], "u1");
        assert_eq!(
            s.get(tf, w).unwrap().unwrap().delivery_id,
            Some(e.delivery_id.clone())
        );
        assert_eq!(s.list(tf, 10).unwrap().len(), 1);
        assert_eq!(s.unemitted().unwrap().len(), 1);
        s.mark_emitted(tf, w).unwrap();
        assert!(s.unemitted().unwrap().is_empty());
        // A second store for the same board (a restarted actor) sees the close.
        let again = CloseStore::open(&db, "t", "b").unwrap();
        assert!(matches!(
            again.close(tf, w, record(true), 10).unwrap(),
            Closed::Already(_)
        ));
        assert_eq!(bal("u1"), 1000);
    }

    #[test]
    fn unrewarded_close_and_full_outbox() {
        let (db, s, tf, w) = hourly_store();
        s.close(tf, w, record(false), 10).unwrap();
        let rewards = RewardStore::open(&db, "t").unwrap();
        assert!(rewards.wallet("u1").unwrap().is_none());
        assert_eq!(Outbox::open(&db).unwrap().pending("t").unwrap(), 0);
        let w2 = WindowKey::parse(tf, "2025-11-18T13").unwrap();
        let mut r = record(true);
        r.window = "2025-11-18T13".into();
        assert_eq!(
            s.close(tf, w2, r, 0).unwrap(),
            Closed::New {
                webhook_dropped: true
            }
        );
        assert_eq!(
            rewards.wallet("u1").unwrap().unwrap().balance,
            1000,
            "granted anyway"
        );
        assert_eq!(s.get(tf, w2).unwrap().unwrap().delivery_id, None);
        // Epoch: first sight stores now; the same definition keeps it; another resets it.
        assert_eq!(s.epoch("{}", 5).unwrap(), 5);
        assert_eq!(s.epoch("{}", 9).unwrap(), 5);
        assert_eq!(s.epoch("{\"x\":1}", 9).unwrap(), 9);
    }
}
