//! Tenant ownership: leases in a JetStream KV bucket, fenced by revision.
//!
//! nats-server 2.9 has no per-key TTL (2.11 has), so a lease is built from what 2.9 has:
//! - **acquire** = create-if-absent of key `<tenant>` with value `<node_id>`;
//! - **renew** = update on the revision this node last wrote (a CAS: it fails once anyone
//!   else wrote the key, or once the key expired);
//! - **expiry** = the bucket's `max_age` (history 1): a key not renewed for `ttl` is removed
//!   by the servers, and then another node's create succeeds;
//! - **fencing token** = the revision that acquired the lease: it grows with every change of
//!   the bucket, so a later owner always holds a larger token than any earlier one.
//!
//! A node knows when it lost a lease: locally, a lease is valid until the renewal that last
//! succeeded was *sent* plus `ttl` (the servers count from when they stored it, which is
//! later), so the holder stops before anyone else can acquire; and a renewal after that, or
//! one whose revision is no longer current, returns [`Renewal::Lost`].

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use bytes::Bytes;

use super::error::ClusterError;

/// Where leases live and how long they last.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The KV bucket holding one key per owned tenant.
    pub bucket: String,
    /// A lease not renewed for this long expires (the bucket's `max_age`). Renew every
    /// `ttl / 3` or so.
    pub ttl: Duration,
    /// JetStream replicas of the bucket.
    pub replicas: usize,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            bucket: "PHX_LEASES".into(),
            ttl: Duration::from_secs(10),
            replicas: 3,
        }
    }
}

/// The KV bucket's stream, as the KV API lays it out (`KV_<bucket>`, `$KV.<bucket>.>`,
/// one message per key, rollups allowed, deletes only as markers).
fn bucket_stream(config: &LeaseConfig) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some("Phoenix tenant ownership".into()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: 1,
        max_age: config.ttl,
        storage: StorageType::File,
        num_replicas: config.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        duplicate_window: config.ttl.min(Duration::from_secs(120)),
        ..Default::default()
    }
}

/// A tenant this node owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub tenant: String,
    /// The revision that acquired it: the fencing token of this ownership.
    pub token: u64,
    /// The revision this node wrote last (what the next renewal expects).
    pub revision: u64,
    /// Until when this node may act as the owner without another renewal.
    pub valid_until: Instant,
}

impl Lease {
    /// Whether this node still owns the tenant by its own clock.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// The outcome of an acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This node owns the tenant now.
    Owned(Lease),
    /// Another node holds it (`owner`, if it could be read).
    Held { owner: Option<String> },
}

/// The outcome of a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still the owner, for another `ttl`.
    Renewed,
    /// No longer the owner: expired, or someone else wrote the key. Stop serving the tenant.
    Lost,
}

/// The lease bucket, as seen by one node.
#[derive(Debug, Clone)]
pub struct Leases {
    kv: kv::Store,
    /// For the conditional writes (`kv::bucket::publish_if`), and the subject prefix of a key.
    js: jetstream::Context,
    subjects: String,
    node: String,
    ttl: Duration,
}

impl Leases {
    /// Open (or create) the bucket for node `node`.
    pub async fn open(
        js: &jetstream::Context,
        node: &str,
        config: &LeaseConfig,
    ) -> Result<Leases, ClusterError> {
        let kv = match js.get_key_value(&config.bucket).await {
            Ok(kv) => kv,
            Err(_) => {
                // async-nats' `create_key_value` first parses an account-info reply that
                // nats-server 2.9 does not send in full; the bucket is a stream with the KV
                // conventions, so create that stream directly.
                js.create_stream(bucket_stream(config))
                    .await
                    .map_err(|e| ClusterError::api("create lease bucket", e))?;
                js.get_key_value(&config.bucket)
                    .await
                    .map_err(|e| ClusterError::api("open lease bucket", e))?
            }
        };
        metrics::counter!("phoenix_cluster_lease_renewals_total").increment(0);
        metrics::counter!("phoenix_cluster_leases_lost_total").increment(0);
        let subjects = kv.put_prefix.clone().unwrap_or_else(|| kv.prefix.clone());
        Ok(Leases {
            kv,
            js: js.clone(),
            subjects,
            node: node.to_owned(),
            ttl: config.ttl,
        })
    }

    /// A write of this node's value at `tenant` only if its revision is still `revision`
    /// (0: never written); `delete` writes a delete marker instead. Of two nodes expecting
    /// the same revision exactly one wins, also on nats-server 2.9 (`publish_if`).
    async fn write_if(
        &self,
        tenant: &str,
        revision: u64,
        delete: bool,
    ) -> Result<Option<u64>, ClusterError> {
        let value = if delete { Bytes::new() } else { self.value() };
        let subject = format!("{}{tenant}", self.subjects);
        crate::cluster::kv::bucket::publish_if(self.js.clone(), subject, value, revision, delete)
            .await
    }

    /// Take `tenant` if nobody holds it.
    pub async fn acquire(&self, tenant: &str) -> Result<Acquired, ClusterError> {
        let sent = Instant::now();
        let mut won = self.write_if(tenant, 0, false).await?;
        if won.is_none() {
            // A released (deleted) lease's last message is its delete marker: take it on
            // top of that.
            let entry = self
                .kv
                .entry(tenant)
                .await
                .map_err(|e| ClusterError::api("read lease", e))?;
            if let Some(e) = entry.filter(|e| e.operation != Operation::Put) {
                won = self.write_if(tenant, e.revision, false).await?;
            }
        }
        match won {
            Some(revision) => {
                tracing::info!(tenant, node = %self.node, token = revision, "lease acquired");
                Ok(Acquired::Owned(Lease {
                    tenant: tenant.to_owned(),
                    token: revision,
                    revision,
                    valid_until: sent + self.ttl,
                }))
            }
            None => Ok(Acquired::Held {
                owner: self.owner(tenant).await?.map(|(node, _)| node),
            }),
        }
    }

    /// Extend `lease` by another `ttl`, if it is still this node's.
    pub async fn renew(&self, lease: &mut Lease) -> Result<Renewal, ClusterError> {
        if !lease.is_valid() {
            return Ok(self.lost(lease, "expired"));
        }
        let sent = Instant::now();
        match self.write_if(&lease.tenant, lease.revision, false).await? {
            Some(revision) => {
                lease.revision = revision;
                lease.valid_until = sent + self.ttl;
                metrics::counter!("phoenix_cluster_lease_renewals_total").increment(1);
                Ok(Renewal::Renewed)
            }
            None => Ok(self.lost(lease, "revision moved")),
        }
    }

    /// Give `lease` up so another node can take the tenant at once.
    pub async fn release(&self, lease: Lease) -> Result<(), ClusterError> {
        // Only if it is still ours: an expectation on our revision, never a blind delete
        // (losing that race means someone else holds it already).
        self.write_if(&lease.tenant, lease.revision, true)
            .await
            .map(|_| ())
    }

    /// Who holds `tenant` now, with the revision of their last write.
    pub async fn owner(&self, tenant: &str) -> Result<Option<(String, u64)>, ClusterError> {
        let entry = self
            .kv
            .entry(tenant)
            .await
            .map_err(|e| ClusterError::api("read lease", e))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision)))
    }

    /// Every key held now with its holder: `(key, node)`, sorted by key. One stream-info
    /// request for the keys, then one KV read per key; the bucket holds one key per owned
    /// tenant (or live node). Not the KV API's key listing: that creates a consumer, a
    /// meta-leader operation that took seconds on a busy 2-core cluster and so delayed
    /// every pass of the lease loop.
    pub async fn holders(&self) -> Result<Vec<(String, String)>, ClusterError> {
        use futures_util::TryStreamExt;
        let subjects: Vec<(String, usize)> = self
            .kv
            .stream
            .info_with_subjects(format!("{}>", self.kv.prefix))
            .await
            .map_err(|e| ClusterError::api("list leases", e))?
            .try_collect()
            .await
            .map_err(|e| ClusterError::api("list leases", e))?;
        let mut out = Vec::with_capacity(subjects.len());
        for (subject, _) in subjects {
            let Some(k) = subject.strip_prefix(self.kv.prefix.as_str()) else {
                continue;
            };
            if let Some((node, _)) = self.owner(k).await? {
                out.push((k.to_owned(), node));
            }
        }
        out.sort();
        Ok(out)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn value(&self) -> Bytes {
        Bytes::copy_from_slice(self.node.as_bytes())
    }

    fn lost(&self, lease: &Lease, why: &'static str) -> Renewal {
        tracing::warn!(tenant = %lease.tenant, node = %self.node, token = lease.token, why, "lease lost");
        metrics::counter!("phoenix_cluster_leases_lost_total").increment(1);
        Renewal::Lost
    }
}
