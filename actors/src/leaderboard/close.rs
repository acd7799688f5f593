//! Window close (SPEC §12): reward tiers (parsed with the definition), who gets what at a
//! window's final standings (pure), and the [`CloseLedger`] contract that records a close
//! exactly once: the sled [`CloseStore`] (`close/sled_store.rs`, one transaction) and, in
//! cluster mode, `crate::cluster::kv::KvCloses` (JetStream KV, idempotent steps). Both pass
//! [`contract::run`].

pub mod contract;
mod sled_store;

pub use sled_store::CloseStore;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::window::{Timeframe, WindowKey};
use crate::error::EngineError;
use crate::outbox::NewMessage;
use crate::rewards::{Grant, Reward};

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

    /// The ledger line of each grant (one per user; the close's grant id is the dedupe key
    /// in the user's ledger, as a vote id is for vote rewards).
    pub fn ledger_grants(&self) -> Vec<Grant> {
        let grant_id = self.grant_id();
        self.grants
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
                granted_at_ms: self.closed_at_ms,
                source: Some("leaderboard".into()),
            })
            .collect()
    }

    /// The webhook delivery of a rewarded close (deterministic: id, body and time from the
    /// record), `None` for a close recorded without rewards.
    pub fn webhook_message(&self, tenant: &str) -> Option<NewMessage> {
        self.rewarded.then(|| NewMessage {
            delivery_id: self.event_id(),
            tenant: tenant.to_owned(),
            kind: WINDOW_CLOSED.into(),
            body: self.webhook_body(),
            created_ms: self.closed_at_ms,
        })
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

/// What [`CloseLedger::close`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// Recorded now (grants credited, webhook enqueued unless the outbox was full).
    New { webhook_dropped: bool },
    /// Closed before: the stored record, nothing changed (a close another node or an
    /// earlier run left half done is finished first, then reported here).
    Already(CloseRecord),
}

/// Opens the [`CloseLedger`] of `(tenant, board)`: how the engine hands a backend (sled, or
/// JetStream KV in cluster mode) to each board actor and to the close-history queries.
pub type CloseLedgerFactory =
    Arc<dyn Fn(&str, &str) -> Result<Arc<dyn CloseLedger>, EngineError> + Send + Sync>;

/// The closed windows of one board of one tenant, and what each close owes.
///
/// Contract ([`contract::run`] checks it):
/// - **Exactly once per (tenant, board, timeframe, window).** [`close`](Self::close) stores
///   the record (final top entries + grants), credits every grant into the tenant's reward
///   ledger (the same wallet and ledger as vote rewards, [`crate::stores::RewardLedger`];
///   each line keyed by [`CloseRecord::grant_id`] per user) and, for a rewarded close,
///   enqueues its webhook ([`CloseRecord::webhook_message`]) in the tenant's
///   [`crate::stores::WebhookOutbox`] unless the tenant has `outbox_max` entries waiting.
///   Any later close of the window — a board restarted from an older checkpoint, a new
///   owner after failover, a second closer racing on another node — answers
///   [`Closed::Already`] and credits and enqueues nothing more.
/// - **All or nothing, as seen after it returns.** Once `close` returned `Ok`, the record,
///   every credit and the webhook entry are all there. A crash inside it leaves either
///   nothing or a record that the next `close` of the window, or the next
///   [`unemitted`](Self::unemitted) (a board starting), completes with the same grants and
///   delivery id.
/// - **Durable when** the backend says: sled at the shared db's next fsync (a crash before
///   it redoes the close from the log with the same standings, ids and times); JetStream KV
///   when the call returns (each step acknowledged by the bucket's stream quorum).
pub trait CloseLedger: Send + Sync {
    /// Since when (ms) the definition `def_json` applies: stored the first time it is seen
    /// (windows closing before it are recorded without rewards, events or webhooks).
    fn epoch(&self, def_json: &str, now_ms: i64) -> Result<i64, EngineError>;

    /// The close of window `w`, if it closed.
    fn get(&self, tf: Timeframe, w: WindowKey) -> Result<Option<CloseRecord>, EngineError>;

    /// The closes of `tf`, newest window first, at most `limit`.
    fn list(&self, tf: Timeframe, limit: usize) -> Result<Vec<CloseRecord>, EngineError>;

    /// Every rewarded close whose stream event is not yet acknowledged (finishing any close
    /// left half done first).
    fn unemitted(&self) -> Result<Vec<CloseRecord>, EngineError>;

    /// Note that the close's stream event was acknowledged.
    fn mark_emitted(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError>;

    /// Forget a window's close (history retention).
    fn drop_window(&self, tf: Timeframe, w: WindowKey) -> Result<(), EngineError>;

    /// Record the close of window `w` exactly once (see the contract).
    fn close(
        &self,
        tf: Timeframe,
        w: WindowKey,
        record: CloseRecord,
        outbox_max: u64,
    ) -> Result<Closed, EngineError>;
}

#[cfg(test)]
mod tests {
    use super::contract::{entries, tiers};
    use super::*;

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
}
