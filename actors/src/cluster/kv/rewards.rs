//! [`KvRewards`]: one tenant's vote-rewards ledger in bucket `<prefix>_REWARDS`.
//!
//! Keys (each part escaped) under `<tenant>.`:
//! - `d.<event_type>.<event_id>` → the [`Delivery`] (the dedupe record), plus `pending`
//! - `n.<nickname>` → user id (links); `p.<user>` → [`Player`]
//! - `w.<user>` → the wallet: balance and grant ledger, one value
//! - `u.<nickname>.<vote_id>` → an unclaimed [`Grant`]
//!
//! **Exactly once across nodes.** The delivery key is the one compare-and-set point of a
//! vote: it is *created* (create-if-absent) already saying who is granted, with
//! `pending: true`; only the node whose create succeeded reports `New`, every other gets
//! `Duplicate`. Crediting the wallet is a compare-and-set on `w.<user>` that first checks
//! the wallet's ledger for the vote id, so it is idempotent: whoever finds the delivery
//! still pending (the granting node, a retry, a reader, [`KvRewards::open`]) finishes it and
//! clears `pending`, and the grant lands exactly once even after a crash between the two
//! writes. A claim by [`RewardLedger::link`] is the compare-and-set of the delivery from
//! `unclaimed` to `granted` (pending), so two links never both grant a vote.
//!
//! **Durable when** each call returns (stream quorum). Limits: a wallet is one KV value, so
//! a user's ledger holds what fits in the servers' `max_payload` (≈ 3 000 grants at 1 MiB);
//! listings read every key under the tenant's prefix, one leader read each.

use serde::{Deserialize, Serialize};

use super::bucket::{key, unpart, Bucket};
use crate::cluster::ClusterError;
use crate::rewards::{
    nickname_key, Applied, Delivery, DeliveryStatus, Grant, Player, RewardError, Vote, Wallet,
};
use crate::stores::RewardLedger;

/// A delivery as stored: granted but not yet credited while `pending`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    d: Delivery,
    #[serde(default)]
    pending: bool,
}

/// A wallet as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WalletDoc {
    balance: u64,
    grants: Vec<Grant>,
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, RewardError> {
    serde_json::from_slice(v).map_err(|e| RewardError::Corrupt(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("reward records serialise")
}

/// The cluster-wide [`RewardLedger`] of one tenant.
#[derive(Clone)]
pub struct KvRewards {
    bucket: Bucket,
    tenant: String,
}

impl KvRewards {
    /// The ledger of `tenant`, finishing any grant a crashed node left pending.
    pub fn open(bucket: Bucket, tenant: &str) -> Result<KvRewards, RewardError> {
        let r = KvRewards::handle(bucket, tenant);
        for (k, v) in r.bucket.entries(&format!("{}.", r.k(&["d"])))? {
            if decode::<Stored>(&v)?.pending {
                r.finish(&k)?;
            }
        }
        Ok(r)
    }

    /// The ledger of `tenant` without the pending-grant scan of [`KvRewards::open`]: for a
    /// caller that only credits grants of its own (a window close, `super::KvCloses`).
    pub(crate) fn handle(bucket: Bucket, tenant: &str) -> KvRewards {
        KvRewards {
            bucket,
            tenant: tenant.to_owned(),
        }
    }

    fn k(&self, parts: &[&str]) -> String {
        let mut all = vec![self.tenant.as_str()];
        all.extend_from_slice(parts);
        key(&all)
    }

    fn delivery_key(&self, event_type: &str, event_id: &str) -> String {
        self.k(&["d", event_type, event_id])
    }

    fn balance(&self, user: &str) -> Result<u64, RewardError> {
        Ok(match self.bucket.get(&self.k(&["w", user]))? {
            Some((v, _)) => decode::<WalletDoc>(&v)?.balance,
            None => 0,
        })
    }

    /// Credit `g` to its user's wallet unless the ledger already holds its vote id (so a
    /// repeat is a no-op; one compare-and-set on the wallet).
    pub(crate) fn credit(&self, g: &Grant) -> Result<(), RewardError> {
        self.bucket.modify(
            &self.k(&["w", &g.user_id]),
            |old| -> Result<_, RewardError> {
                let mut w: WalletDoc = old.map(decode).transpose()?.unwrap_or_default();
                if w.grants.iter().any(|x| x.vote_id == g.vote_id) {
                    return Ok((None, ()));
                }
                w.balance = w
                    .balance
                    .checked_add(g.reward.coins)
                    .ok_or_else(|| RewardError::Overflow(g.user_id.clone()))?;
                w.grants.push(g.clone());
                Ok((Some(encode(&w)), ()))
            },
        )
    }

    /// Finish the delivery at `dk` if its grant is pending; returns the delivery.
    fn finish(&self, dk: &str) -> Result<Option<Delivery>, RewardError> {
        let Some((v, _)) = self.bucket.get(dk)? else {
            return Ok(None);
        };
        let s: Stored = decode(&v)?;
        if !s.pending {
            return Ok(Some(s.d));
        }
        if let Some(g) = &s.d.grant {
            self.credit(g)?;
        }
        self.bucket.modify(dk, |old| -> Result<_, RewardError> {
            let Some(old) = old else {
                return Ok((None, ()));
            };
            let mut s: Stored = decode(old)?;
            if !s.pending {
                return Ok((None, ()));
            }
            s.pending = false;
            Ok((Some(encode(&s)), ()))
        })?;
        Ok(Some(s.d))
    }

    fn linked(&self, nick: &str) -> Result<Option<String>, RewardError> {
        Ok(self
            .bucket
            .get(&self.k(&["n", nick]))?
            .map(|(v, _)| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Claim the unclaimed vote at `uk` for `user`: the delivery's compare-and-set from
    /// unclaimed to granted decides; the grant made, if this call made it.
    fn claim(&self, uk: &str, user: &str, now_ms: i64) -> Result<Option<Grant>, RewardError> {
        let Some((v, _)) = self.bucket.get(uk)? else {
            return Ok(None);
        };
        let g: Grant = decode(&v)?;
        let dk = self.delivery_key("server.vote", &g.vote_id);
        let claimed = self.bucket.modify(&dk, |old| -> Result<_, RewardError> {
            let Some(old) = old else {
                return Ok((None, None));
            };
            let mut s: Stored = decode(old)?;
            if s.d.status != DeliveryStatus::Unclaimed {
                return Ok((None, None));
            }
            let mut g = g.clone();
            g.user_id = user.to_owned();
            g.granted_at_ms = now_ms;
            s.d.status = DeliveryStatus::Granted;
            s.d.grant = Some(g.clone());
            s.pending = true;
            Ok((Some(encode(&s)), Some(g)))
        })?;
        let Some(d) = self.finish(&dk)? else {
            // The vote's own delivery record is not written yet: its node links it.
            return Ok(None);
        };
        if d.status != DeliveryStatus::Unclaimed {
            self.bucket.delete(uk)?;
        }
        Ok(claimed)
    }
}

impl RewardLedger for KvRewards {
    fn delivery(&self, event_type: &str, event_id: &str) -> Result<Option<Delivery>, RewardError> {
        self.finish(&self.delivery_key(event_type, event_id))
    }

    fn deliveries(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, RewardError> {
        let prefix = format!("{}.", self.k(&["d"]));
        let mut all: Vec<(String, String, bytes::Bytes)> = Vec::new();
        for (k, v) in self.bucket.entries(&prefix)? {
            if let Some((t, id)) = k[prefix.len()..].split_once('.') {
                if let (Some(t), Some(id)) = (unpart(t), unpart(id)) {
                    all.push((t, id, v));
                }
            }
        }
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all.into_iter()
            .filter(|(t, id, _)| {
                after.is_none_or(|(at, aid)| (t.as_str(), id.as_str()) > (at, aid))
            })
            .take(limit)
            .map(|(_, _, v)| Ok(decode::<Stored>(&v)?.d))
            .collect()
    }

    fn record_ignored(
        &self,
        event_type: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Applied, RewardError> {
        let dk = self.delivery_key(event_type, event_id);
        let fresh = Delivery {
            event_type: event_type.to_owned(),
            event_id: event_id.to_owned(),
            status: DeliveryStatus::Ignored,
            received_at_ms: now_ms,
            grant: None,
            emitted: false,
        };
        let stored = Stored {
            d: fresh.clone(),
            pending: false,
        };
        match self.bucket.create(&dk, encode(&stored))? {
            Some(_) => Ok(Applied::New(fresh)),
            None => self.duplicate(&dk),
        }
    }

    fn apply_vote(&self, vote: &Vote, now_ms: i64) -> Result<Applied, RewardError> {
        let dk = self.delivery_key(&vote.event_type, &vote.vote_id);
        if self.bucket.get(&dk)?.is_some() {
            return self.duplicate(&dk);
        }
        let nick = nickname_key(&vote.nickname);
        let mut d = Delivery {
            event_type: vote.event_type.clone(),
            event_id: vote.vote_id.clone(),
            status: DeliveryStatus::NoRule,
            received_at_ms: now_ms,
            grant: None,
            emitted: false,
        };
        let mut unclaimed = None;
        if let Some(reward) = &vote.reward {
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
            match self.linked(&nick)?.or_else(|| vote.fallback_user.clone()) {
                Some(user) => {
                    // Refuse an overflowing grant before anything is recorded.
                    if self.balance(&user)?.checked_add(reward.coins).is_none() {
                        return Err(RewardError::Overflow(user));
                    }
                    g.user_id = user;
                    d.status = DeliveryStatus::Granted;
                    d.grant = Some(g);
                }
                None => {
                    // The claimable record first: a delivery that says unclaimed always
                    // has one.
                    let uk = self.k(&["u", &nick, &vote.vote_id]);
                    self.bucket.put(&uk, encode(&g))?;
                    d.status = DeliveryStatus::Unclaimed;
                    unclaimed = Some(uk);
                }
            }
        }
        let stored = Stored {
            d: d.clone(),
            pending: d.status == DeliveryStatus::Granted,
        };
        if self.bucket.create(&dk, encode(&stored))?.is_none() {
            return self.duplicate(&dk);
        }
        self.finish(&dk)?;
        if let Some(uk) = unclaimed {
            // A link written after this vote resolved the nickname has scanned already, or
            // will find `uk`; either way the one that wins the delivery's CAS grants.
            if let Some(user) = self.linked(&nick)? {
                if let Some(g) = self.claim(&uk, &user, now_ms)? {
                    d.status = DeliveryStatus::Granted;
                    d.grant = Some(g);
                }
            }
        }
        Ok(Applied::New(d))
    }

    fn link(&self, user_id: &str, nickname: &str, now_ms: i64) -> Result<Vec<Grant>, RewardError> {
        let nick = nickname_key(nickname);
        let prev = self.bucket.modify(&self.k(&["n", &nick]), |old| {
            let prev = old.map(|v| String::from_utf8_lossy(v).into_owned());
            let write = (prev.as_deref() != Some(user_id)).then(|| user_id.as_bytes().to_vec());
            Ok::<_, RewardError>((write, prev))
        })?;
        if let Some(prev) = prev.filter(|p| p != user_id) {
            self.bucket.modify(&self.k(&["p", &prev]), |old| {
                let Some(old) = old else {
                    return Ok((None, ()));
                };
                let mut p: Player = decode(old)?;
                p.nicknames.retain(|n| nickname_key(n) != nick);
                Ok::<_, RewardError>((Some(encode(&p)), ()))
            })?;
        }
        self.bucket.modify(&self.k(&["p", user_id]), |old| {
            let mut p: Player = old.map(decode).transpose()?.unwrap_or_default();
            p.nicknames.retain(|n| nickname_key(n) != nick);
            p.nicknames.push(nickname.trim().to_owned());
            Ok::<_, RewardError>((Some(encode(&p)), ()))
        })?;
        let mut granted = Vec::new();
        for uk in self.bucket.keys(&format!("{}.", self.k(&["u", &nick])))? {
            granted.extend(self.claim(&uk, user_id, now_ms)?);
        }
        Ok(granted)
    }

    fn mark_emitted(&self, event_type: &str, event_id: &str) -> Result<(), RewardError> {
        self.bucket
            .modify(&self.delivery_key(event_type, event_id), |old| {
                let Some(old) = old else {
                    return Ok((None, ()));
                };
                let mut s: Stored = decode(old)?;
                if s.d.emitted {
                    return Ok((None, ()));
                }
                s.d.emitted = true;
                Ok::<_, RewardError>((Some(encode(&s)), ()))
            })
    }

    fn wallet(&self, user_id: &str) -> Result<Option<Wallet>, RewardError> {
        let player: Option<Player> = self
            .bucket
            .get(&self.k(&["p", user_id]))?
            .map(|(v, _)| decode(&v))
            .transpose()?;
        let doc: Option<WalletDoc> = self
            .bucket
            .get(&self.k(&["w", user_id]))?
            .map(|(v, _)| decode(&v))
            .transpose()?;
        if player.is_none() && doc.is_none() {
            return Ok(None);
        }
        let doc = doc.unwrap_or_default();
        let mut grants = doc.grants;
        grants.sort_by(|a, b| (a.granted_at_ms, &a.vote_id).cmp(&(b.granted_at_ms, &b.vote_id)));
        Ok(Some(Wallet {
            user_id: user_id.to_owned(),
            nicknames: player.map(|p| p.nicknames).unwrap_or_default(),
            balance: doc.balance,
            grants,
        }))
    }
}

impl KvRewards {
    /// The stored delivery at `dk` as a duplicate (finished if it was pending).
    fn duplicate(&self, dk: &str) -> Result<Applied, RewardError> {
        match self.finish(dk)? {
            Some(d) => Ok(Applied::Duplicate(d)),
            None => Err(RewardError::Cluster(ClusterError::Decode {
                tenant: self.tenant.clone(),
                seq: 0,
                reason: "a delivery vanished while being read",
            })),
        }
    }
}
