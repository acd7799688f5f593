//! Vote rewards store (SPEC §7): per-tenant deliveries (the dedupe record), nickname links,
//! balances, the grant ledger and unclaimed votes — every grant is one sled transaction
//! with its dedupe record, so a redelivery or a crash never grants twice or loses a grant.
//!
//! Trees (one per concern, all named `gm/{tenant}/…`):
//! - `deliveries`: `lp(event_type) ‖ event_id` → [`Delivery`] (the dedupe record)
//! - `nicknames`: lower-cased nickname → user id
//! - `players`: user id → [`Player`]
//! - `balances`: user id → coins (u64 big-endian)
//! - `grants`: `lp(user_id) ‖ vote_id` → [`Grant`] (the ledger)
//! - `unclaimed`: `lp(lower-cased nickname) ‖ vote_id` → [`Grant`] without a user
//!
//! `lp(x)` is `x` prefixed by its length as a big-endian u32, so prefixes never collide.
//! This is the sled implementation of [`crate::stores::RewardLedger`] (the contract, and
//! when writes are durable: after `Engine::persist`).

use serde::{Deserialize, Serialize};
use sled::transaction::{abort, ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

/// A fault of the rewards store (outcomes such as "duplicate" are values, not errors).
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error("rewards storage failure: {0}")]
    Storage(#[from] sled::Error),
    #[error("corrupt rewards record: {0}")]
    Corrupt(String),
    #[error("balance of {0} would overflow")]
    Overflow(String),
    /// The cluster-wide (JetStream KV) ledger failed: no quorum, timeout, lost connection.
    #[error("rewards storage failure")]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl From<TransactionError<RewardError>> for RewardError {
    fn from(e: TransactionError<RewardError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => RewardError::Storage(e),
        }
    }
}

/// What one vote grants (from the tenant's reward rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    pub coins: u64,
    #[serde(default)]
    pub items: Vec<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub vip_days: Option<u32>,
}

/// One granted (or, in `unclaimed`, waiting) vote reward: a ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub vote_id: String,
    pub server_id: Option<String>,
    pub nickname: String,
    /// Empty while unclaimed.
    pub user_id: String,
    /// The voter's GAMEMONITORING user id (`response.user.id`), kept for the ledger.
    #[serde(default)]
    pub gm_user_id: Option<String>,
    #[serde(flatten)]
    pub reward: Reward,
    /// Unix milliseconds; for an unclaimed vote, when it was received.
    pub granted_at_ms: i64,
    /// What granted it when not a vote: `leaderboard` for a reward at window close (then
    /// `vote_id` is the grant id `lb:{board}:{timeframe}:{window}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// How a delivery was handled; stored as its dedupe record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The reward was added to a player's balance.
    Granted,
    /// No player has the nickname yet; granted when one links it.
    Unclaimed,
    /// No reward rule matched the vote's server.
    NoRule,
    /// Not a `server.vote`: acknowledged, nothing granted.
    Ignored,
}

/// The dedupe record of one `(event_type, event_id)` delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_type: String,
    pub event_id: String,
    pub status: DeliveryStatus,
    pub received_at_ms: i64,
    /// Set once granted (at vote time or when the nickname was linked).
    #[serde(default)]
    pub grant: Option<Grant>,
    /// Whether the grant's stream event was acknowledged by the engine.
    #[serde(default)]
    pub emitted: bool,
}

/// A player's linked nicknames (as given, case kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    pub nicknames: Vec<String>,
}

/// A player's balance and ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub user_id: String,
    pub nicknames: Vec<String>,
    pub balance: u64,
    /// Oldest first.
    pub grants: Vec<Grant>,
}

/// A `server.vote` ready to apply: fetched, rule chosen.
#[derive(Debug, Clone)]
pub struct Vote {
    pub event_type: String,
    pub vote_id: String,
    pub nickname: String,
    pub server_id: Option<String>,
    /// The voter's GAMEMONITORING user id, if the API gave one.
    pub gm_user_id: Option<String>,
    /// `None`: no rule matched; the delivery is recorded, nothing granted.
    pub reward: Option<Reward>,
    /// The owner found outside the links (Ninja Metrics character names), used when no
    /// linked nickname matches.
    pub fallback_user: Option<String>,
}

/// The result of applying a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// First delivery: recorded now with this status (and grant, if granted).
    New(Delivery),
    /// Seen before: the stored record, nothing changed.
    Duplicate(Delivery),
}

/// The rewards store of one tenant.
#[derive(Clone)]
pub struct RewardStore {
    deliveries: sled::Tree,
    nicknames: sled::Tree,
    players: sled::Tree,
    balances: sled::Tree,
    grants: sled::Tree,
    unclaimed: sled::Tree,
}

fn lp(s: &str) -> Vec<u8> {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    let mut k = Vec::with_capacity(4 + s.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(s.as_bytes());
    k
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = lp(a);
    k.extend_from_slice(b.as_bytes());
    k
}

/// Nicknames match case-insensitively (and ignoring surrounding blanks).
pub fn nickname_key(nickname: &str) -> String {
    nickname.trim().to_lowercase()
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, RewardError> {
    serde_json::from_slice(v).map_err(|e| RewardError::Corrupt(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("reward records serialise")
}

pub(crate) type Tx<T> = Result<T, ConflictableTransactionError<RewardError>>;

fn tx_decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Tx<T> {
    decode(v).or_else(abort)
}

/// Credit `g` unless its user's ledger already holds its id (`vote_id`): the dedupe record
/// of a window-close grant is its ledger line, checked in the crediting transaction.
/// Returns whether it credited.
pub(crate) fn credit_once(
    balances: &TransactionalTree,
    grants: &TransactionalTree,
    g: &Grant,
) -> Tx<bool> {
    if grants.get(key2(&g.user_id, &g.vote_id))?.is_some() {
        return Ok(false);
    }
    credit(balances, grants, g)?;
    Ok(true)
}

/// Add a grant to its user's balance and ledger inside a transaction.
fn credit(balances: &TransactionalTree, grants: &TransactionalTree, g: &Grant) -> Tx<()> {
    let old = match balances.get(g.user_id.as_bytes())? {
        Some(v) => u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .or_else(|_| abort(RewardError::Corrupt("balance".into())))?,
        ),
        None => 0,
    };
    let Some(new) = old.checked_add(g.reward.coins) else {
        return abort(RewardError::Overflow(g.user_id.clone()));
    };
    balances.insert(g.user_id.as_bytes(), &new.to_be_bytes())?;
    grants.insert(key2(&g.user_id, &g.vote_id), encode(g))?;
    Ok(())
}

impl RewardStore {
    /// Open (or create) the trees of `tenant`.
    pub fn open(db: &sled::Db, tenant: &str) -> Result<RewardStore, RewardError> {
        let t = |name: &str| db.open_tree(format!("gm/{tenant}/{name}"));
        Ok(RewardStore {
            deliveries: t("deliveries")?,
            nicknames: t("nicknames")?,
            players: t("players")?,
            balances: t("balances")?,
            grants: t("grants")?,
            unclaimed: t("unclaimed")?,
        })
    }

    /// The dedupe record of a delivery, if any.
    pub fn delivery(
        &self,
        event_type: &str,
        event_id: &str,
    ) -> Result<Option<Delivery>, RewardError> {
        self.deliveries
            .get(key2(event_type, event_id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Deliveries in key order (event type, then id), starting after `after` if given.
    pub fn deliveries(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, RewardError> {
        let iter = match after {
            Some((t, id)) => {
                let mut from = key2(t, id);
                from.push(0);
                self.deliveries.range(from..)
            }
            None => self.deliveries.iter(),
        };
        iter.take(limit)
            .map(|r| decode(&r?.1))
            .collect::<Result<Vec<_>, _>>()
    }

    /// Record a delivery that grants nothing (another event type), once.
    pub fn record_ignored(
        &self,
        event_type: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Applied, RewardError> {
        let key = key2(event_type, event_id);
        let fresh = Delivery {
            event_type: event_type.to_owned(),
            event_id: event_id.to_owned(),
            status: DeliveryStatus::Ignored,
            received_at_ms: now_ms,
            grant: None,
            emitted: false,
        };
        match self
            .deliveries
            .compare_and_swap(&key, None as Option<&[u8]>, Some(encode(&fresh)))?
        {
            Ok(()) => Ok(Applied::New(fresh)),
            Err(e) => Ok(Applied::Duplicate(decode(&e.current.unwrap_or_default())?)),
        }
    }

    /// Apply a vote exactly once: the dedupe record and the grant (or unclaimed record) are
    /// one transaction. The nickname is resolved inside it, so a concurrent link either
    /// sees the unclaimed record or the vote sees the link.
    pub fn apply_vote(&self, vote: &Vote, now_ms: i64) -> Result<Applied, RewardError> {
        let key = key2(&vote.event_type, &vote.vote_id);
        let nick = nickname_key(&vote.nickname);
        let applied = (
            &self.deliveries,
            &self.nicknames,
            &self.balances,
            &self.grants,
            &self.unclaimed,
        )
            .transaction(|(deliveries, nicknames, balances, grants, unclaimed)| {
                if let Some(v) = deliveries.get(&key)? {
                    return Ok(Applied::Duplicate(tx_decode(&v)?));
                }
                let mut d = Delivery {
                    event_type: vote.event_type.clone(),
                    event_id: vote.vote_id.clone(),
                    status: DeliveryStatus::NoRule,
                    received_at_ms: now_ms,
                    grant: None,
                    emitted: false,
                };
                if let Some(reward) = &vote.reward {
                    let linked = nicknames
                        .get(nick.as_bytes())?
                        .map(|u| String::from_utf8_lossy(&u).into_owned());
                    let mut g = Grant {
                        vote_id: vote.vote_id.clone(),
                        server_id: vote.server_id.clone(),
                        nickname: vote.nickname.clone(),
                        user_id: String::new(),
                        gm_user_id: vote.gm_user_id.clone(),
                        reward: reward.clone(),
                        granted_at_ms: now_ms,
                        source: None,
                    };
                    match linked.or_else(|| vote.fallback_user.clone()) {
                        Some(user) => {
                            g.user_id = user;
                            credit(balances, grants, &g)?;
                            d.status = DeliveryStatus::Granted;
                            d.grant = Some(g);
                        }
                        None => {
                            unclaimed.insert(key2(&nick, &vote.vote_id), encode(&g))?;
                            d.status = DeliveryStatus::Unclaimed;
                        }
                    }
                }
                deliveries.insert(key.as_slice(), encode(&d))?;
                Ok(Applied::New(d))
            })?;
        Ok(applied)
    }

    /// Link `nickname` to `user_id` (moving it from another user if needed) and grant every
    /// unclaimed vote for it, each exactly once. Returns the grants made now.
    pub fn link(
        &self,
        user_id: &str,
        nickname: &str,
        now_ms: i64,
    ) -> Result<Vec<Grant>, RewardError> {
        let nick = nickname_key(nickname);
        (&self.nicknames, &self.players).transaction(|(nicknames, players)| {
            if let Some(prev) = nicknames.insert(nick.as_bytes(), user_id.as_bytes())? {
                if prev.as_ref() != user_id.as_bytes() {
                    if let Some(p) = players.get(&prev)? {
                        let mut p: Player = tx_decode(&p)?;
                        p.nicknames.retain(|n| nickname_key(n) != nick);
                        players.insert(&prev, encode(&p))?;
                    }
                }
            }
            let mut p: Player = match players.get(user_id.as_bytes())? {
                Some(v) => tx_decode(&v)?,
                None => Player::default(),
            };
            p.nicknames.retain(|n| nickname_key(n) != nick);
            p.nicknames.push(nickname.trim().to_owned());
            players.insert(user_id.as_bytes(), encode(&p))?;
            Ok(())
        })?;
        // Every vote that resolved before the link committed is in `unclaimed` now; later
        // votes see the link. Claim what is there, each key removed in the granting
        // transaction so two concurrent links cannot both grant it.
        let mut granted = Vec::new();
        for entry in self.unclaimed.scan_prefix(lp(&nick)) {
            let (k, _) = entry?;
            let claimed = (
                &self.unclaimed,
                &self.deliveries,
                &self.balances,
                &self.grants,
            )
                .transaction(|(unclaimed, deliveries, balances, grants)| {
                    let Some(v) = unclaimed.remove(&k)? else {
                        return Ok(None);
                    };
                    let mut g: Grant = tx_decode(&v)?;
                    g.user_id = user_id.to_owned();
                    g.granted_at_ms = now_ms;
                    credit(balances, grants, &g)?;
                    // The vote's dedupe record now says granted (server.vote is the only
                    // event type that can be unclaimed).
                    let dk = key2("server.vote", &g.vote_id);
                    if let Some(dv) = deliveries.get(&dk)? {
                        let mut d: Delivery = tx_decode(&dv)?;
                        d.status = DeliveryStatus::Granted;
                        d.grant = Some(g.clone());
                        deliveries.insert(dk, encode(&d))?;
                    }
                    Ok(Some(g))
                })?;
            granted.extend(claimed);
        }
        Ok(granted)
    }

    /// Note that the grant of a delivery entered the event stream.
    pub fn mark_emitted(&self, event_type: &str, event_id: &str) -> Result<(), RewardError> {
        let key = key2(event_type, event_id);
        self.deliveries
            .transaction(|t| {
                if let Some(v) = t.get(&key)? {
                    let mut d: Delivery = tx_decode(&v)?;
                    if !d.emitted {
                        d.emitted = true;
                        t.insert(key.as_slice(), encode(&d))?;
                    }
                }
                Ok(())
            })
            .map_err(RewardError::from)
    }

    /// The balance and ledger trees, for a caller's transaction around [`credit_once`].
    pub(crate) fn grant_trees(&self) -> (&sled::Tree, &sled::Tree) {
        (&self.balances, &self.grants)
    }

    /// A player's wallet; `None` if the user was never linked and never granted anything.
    pub fn wallet(&self, user_id: &str) -> Result<Option<Wallet>, RewardError> {
        let player: Option<Player> = self
            .players
            .get(user_id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()?;
        let balance = match self.balances.get(user_id.as_bytes())? {
            Some(v) => Some(u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| RewardError::Corrupt("balance".into()))?,
            )),
            None => None,
        };
        if player.is_none() && balance.is_none() {
            return Ok(None);
        }
        let mut grants = self
            .grants
            .scan_prefix(lp(user_id))
            .map(|r| decode::<Grant>(&r?.1))
            .collect::<Result<Vec<_>, _>>()?;
        grants.sort_by(|a, b| (a.granted_at_ms, &a.vote_id).cmp(&(b.granted_at_ms, &b.vote_id)));
        Ok(Some(Wallet {
            user_id: user_id.to_owned(),
            nicknames: player.map(|p| p.nicknames).unwrap_or_default(),
            balance: balance.unwrap_or(0),
            grants,
        }))
    }
}

/// Sample votes, shared by the unit tests below and the contract suite
/// (`stores::contract::rewards`).
pub mod fixtures {
    use super::{Reward, Vote};

    /// A `server.vote` of `coins` (and a crate, a role, a VIP day) from `nick`.
    pub fn vote(id: &str, nick: &str, coins: u64) -> Vote {
        Vote {
            event_type: "server.vote".into(),
            vote_id: id.into(),
            nickname: nick.into(),
            server_id: Some("1".into()),
            gm_user_id: Some("77".into()),
            reward: Some(Reward {
                coins,
                items: vec!["crate".into()],
                role: Some("voter".into()),
                vip_days: Some(1),
            }),
            fallback_user: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::vote;

    fn balance(s: &RewardStore, user: &str) -> u64 {
        s.wallet(user).unwrap().map(|w| w.balance).unwrap_or(0)
    }
    use super::*;

    fn store() -> (sled::Db, RewardStore) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = RewardStore::open(&db, "acme").unwrap();
        (db, s)
    }

    #[test]
    fn rewards_dedupe_and_grant_once() {
        let (_db, s) = store();
        s.link("u1", "PlayerName", 1).unwrap();
        let first = s.apply_vote(&vote("v1", "playername", 100), 10).unwrap();
        let Applied::New(d) = first else {
            panic!("{first:?}")
        };
        assert_eq!(d.status, DeliveryStatus::Granted);
        assert_eq!(d.grant.as_ref().unwrap().user_id, "u1");
        let again = s.apply_vote(&vote("v1", "playername", 100), 20).unwrap();
        assert!(matches!(again, Applied::Duplicate(ref d) if d.status == DeliveryStatus::Granted));
        s.apply_vote(&vote("v2", "PLAYERNAME", 5), 30).unwrap();
        let w = s.wallet("u1").unwrap().unwrap();
        assert_eq!(w.balance, 105);
        assert_eq!(w.grants.len(), 2);
        assert_eq!(w.grants[0].vote_id, "v1");
        assert_eq!(w.grants[0].reward.items, vec!["crate".to_string()]);
        assert_eq!(w.nicknames, vec!["PlayerName".to_string()]);
    }

    #[test]
    fn rewards_concurrent_duplicates_grant_once() {
        let (_db, s) = store();
        s.link("u1", "p", 1).unwrap();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.apply_vote(&vote("v1", "p", 7), 2).unwrap())
            })
            .collect();
        let new = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|a| matches!(a, Applied::New(_)))
            .count();
        assert_eq!(new, 1);
        assert_eq!(balance(&s, "u1"), 7);
    }

    #[test]
    fn rewards_unclaimed_then_claim_once() {
        let (_db, s) = store();
        let a = s.apply_vote(&vote("v1", "Ghost", 50), 1).unwrap();
        assert!(matches!(a, Applied::New(ref d) if d.status == DeliveryStatus::Unclaimed));
        assert!(s.wallet("u9").unwrap().is_none());
        let got = s.link("u9", "ghost", 2).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].user_id, "u9");
        assert_eq!(balance(&s, "u9"), 50);
        let d = s.delivery("server.vote", "v1").unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Granted);
        assert!(s.link("u9", "GHOST", 3).unwrap().is_empty());
        // Another user taking the nickname later does not get the old vote either.
        assert!(s.link("u10", "ghost", 4).unwrap().is_empty());
        assert_eq!(balance(&s, "u9"), 50);
        assert_eq!(balance(&s, "u10"), 0);
        assert!(s.wallet("u9").unwrap().unwrap().nicknames.is_empty());
        // Redelivery of the claimed vote is a duplicate.
        assert!(matches!(
            s.apply_vote(&vote("v1", "ghost", 50), 5).unwrap(),
            Applied::Duplicate(_)
        ));
        assert_eq!(balance(&s, "u9"), 50);
    }

    #[test]
    fn rewards_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("gm-rewards-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let db = sled::open(&dir).unwrap();
            let s = RewardStore::open(&db, "t").unwrap();
            s.link("u", "n", 1).unwrap();
            s.apply_vote(&vote("v", "n", 4), 2).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(&dir).unwrap();
        let s = RewardStore::open(&db, "t").unwrap();
        assert_eq!(balance(&s, "u"), 4);
        assert!(matches!(
            s.apply_vote(&vote("v", "n", 4), 3).unwrap(),
            Applied::Duplicate(_)
        ));
        drop(s);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
