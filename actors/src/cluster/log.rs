//! [`JetStreamLog`]: the per-tenant event log on NATS JetStream, behind [`EventLog`].
//!
//! - **One stream per tenant** (`PHX_LOG_<tenant>`, subject `phx.log.<tenant>`), limits
//!   retention, no `max_age` (retention is Phoenix's, SPEC §10), `num_replicas` from the
//!   config, `deny_delete` so no position is ever removed alone. One message per event: the
//!   **stream sequence is the log position**.
//! - **Gap-free and fenced**: each message carries `Nats-Expected-Last-Sequence = position −
//!   1`, so a position is written only right after its predecessor, and a stale owner whose
//!   position another writer took gets an error instead of a fork.
//! - **Dedupe**: `Nats-Msg-Id = <tenant>:<event_id>`, the stream's `duplicate_window` the
//!   tenant's dedupe window. A duplicate at the position this writer gave the event is its own
//!   earlier attempt (a retried publish): success. A duplicate of an event logged at another
//!   position is reported as [`ClusterError::Duplicate`] (see `docs/cluster.md`).
//! - **Group commit**: `append` publishes asynchronously and returns; `sync` awaits every
//!   outstanding publish ack (acks come after the stream's quorum stored it), retrying what
//!   failed in position order until `sync_deadline`.
//! - **Reads** take the stream's last position from its leader, then read up to it: small
//!   ranges by message gets, larger ones through an ephemeral consumer (`log/read.rs`,
//!   `log/bulk.rs`).
//! - A failed append or sync latches the log failed (as [`crate::SledLog`] does): the
//!   caller's positions may now be ahead of the stream, so it must reopen and re-derive them.

mod bulk;
mod publish;
mod read;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;

use super::bridge::Bridge;
use super::error::ClusterError;
use crate::error::EngineError;
use crate::store::{EventLog, LogEntry, NewEntry};

use publish::Pending;

/// Header holding the event's acceptance time (ms since the Unix epoch).
pub const ACCEPTED_HEADER: &str = "Phoenix-Accepted-Ms";

/// How the log reaches JetStream and how it bounds itself.
#[derive(Debug, Clone)]
pub struct JetStreamLogConfig {
    /// NATS servers to connect to (any of them will do).
    pub urls: Vec<String>,
    /// Connection name, shown by the servers (the node id).
    pub name: String,
    /// JetStream replicas of every tenant stream (a publish is acknowledged at this many).
    pub replicas: usize,
    /// The stream's `duplicate_window` for tenants without their own
    /// ([`JetStreamLog::set_dedupe_window`]): Phoenix's dedupe window.
    pub duplicate_window: Duration,
    /// Bound on one API request or one publish-ack wait.
    pub request_timeout: Duration,
    /// How long `sync` keeps retrying unacknowledged publishes before it fails: longer than a
    /// stream leader election (4–7 s on loopback after `kill -9` of the leader).
    pub sync_deadline: Duration,
    /// Publishes awaiting their ack at most; `append` waits for acks beyond it.
    pub max_pending: usize,
    /// Message reads in flight at once in `read_from` and `recent_ids` (the get path).
    pub read_concurrency: usize,
    /// Ranges of more positions than this are read through an ephemeral consumer (one
    /// pull per `read_batch` messages) instead of one message get per position.
    pub bulk_threshold: usize,
    /// Messages asked for in one pull of a bulk read (one pull in flight per read).
    pub read_batch: usize,
    /// Bytes one pull of a bulk read may bring at most.
    pub read_batch_bytes: usize,
    /// How often the quorum probe behind [`EventLog::healthy`] runs.
    pub probe_interval: Duration,
}

impl Default for JetStreamLogConfig {
    fn default() -> Self {
        JetStreamLogConfig {
            urls: vec!["nats://127.0.0.1:4222".into()],
            name: "phoenix".into(),
            replicas: 3,
            duplicate_window: Duration::from_secs(300),
            request_timeout: Duration::from_secs(5),
            sync_deadline: Duration::from_secs(20),
            max_pending: 10_000,
            read_concurrency: 64,
            bulk_threshold: 256,
            read_batch: 4096,
            read_batch_bytes: 4 << 20,
            probe_interval: Duration::from_secs(1),
        }
    }
}

/// The JetStream-backed [`EventLog`]; see the module doc.
pub struct JetStreamLog {
    inner: Arc<Inner>,
    bridge: Bridge,
}

impl std::fmt::Debug for JetStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quorum = self.inner.quorum.load(Ordering::SeqCst);
        write!(
            f,
            "JetStreamLog({:?}, quorum: {quorum}, failure: {:?})",
            self.inner.config.urls,
            self.failure()
        )
    }
}

/// A tenant's stream, and where this writer appends next once it has appended.
struct Tenant {
    stream: String,
    subject: String,
    /// Next position this log will append (`None` until its first append).
    next: Mutex<Option<u64>>,
}

/// What the bridged futures share.
struct Inner {
    js: jetstream::Context,
    config: JetStreamLogConfig,
    tenants: Mutex<HashMap<String, Arc<Tenant>>>,
    /// Dedupe windows set per tenant (others use the config's).
    windows: Mutex<HashMap<String, Duration>>,
    /// Published, not yet confirmed, in append order.
    pending: Mutex<Vec<Pending>>,
    failure: Mutex<Option<Arc<ClusterError>>>,
    quorum: AtomicBool,
}

impl JetStreamLog {
    /// Connect to `config.urls` and check that JetStream answers.
    pub fn open(config: JetStreamLogConfig) -> Result<JetStreamLog, ClusterError> {
        let bridge = Bridge::new("phoenix-nats", 2)?;
        let cfg = config.clone();
        let js = bridge.run(async move {
            let client = async_nats::ConnectOptions::new()
                .name(&cfg.name)
                .connection_timeout(cfg.request_timeout)
                .request_timeout(Some(cfg.request_timeout))
                .connect(cfg.urls.clone())
                .await
                .map_err(ClusterError::Connect)?;
            let js = jetstream::context::ContextBuilder::new()
                .timeout(cfg.request_timeout)
                .max_ack_inflight(cfg.max_pending.saturating_add(1))
                .backpressure_on_inflight(true)
                .build(client);
            jetstream_ready(&js).await?;
            Ok::<_, ClusterError>(js)
        })??;
        describe_metrics();
        let inner = Arc::new(Inner {
            js,
            config,
            tenants: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            quorum: AtomicBool::new(true),
        });
        bridge.handle().spawn(probe(Arc::downgrade(&inner)));
        Ok(JetStreamLog { inner, bridge })
    }

    /// Use `window` as `tenant`'s `duplicate_window` (creating or updating its stream).
    pub fn set_dedupe_window(&self, tenant: &str, window: Duration) -> Result<(), ClusterError> {
        lock(&self.inner.windows).insert(tenant.to_owned(), window);
        let inner = self.inner.clone();
        let t = inner.tenant(tenant);
        self.bridge
            .run(async move { inner.ensure_stream(&t, window).await.map(|_| ()) })?
    }

    /// Forget where this writer appends `tenant` next: the tenant moved (this node lost and
    /// regained its lease), so the next `next_seq` asks the stream again.
    pub fn forget(&self, tenant: &str) {
        lock(&self.inner.tenants).remove(tenant);
    }

    /// The failure that latched the log, typed (`EngineError` only carries its text).
    pub fn failure(&self) -> Option<Arc<ClusterError>> {
        lock(&self.inner.failure).clone()
    }

    /// `sync`, with the typed error: [`ClusterError::Failed`] wraps what latched the log,
    /// e.g. a [`ClusterError::Duplicate`] or [`ClusterError::NotAcknowledged`].
    pub fn flush(&self) -> Result<(), ClusterError> {
        let inner = self.inner.clone();
        self.bridge.run(async move { inner.flush().await })?
    }

    /// `append`, with the typed error.
    pub fn publish(
        &self,
        tenant: &str,
        first_seq: u64,
        events: &[NewEntry<'_>],
    ) -> Result<(), ClusterError> {
        self.inner.check_failed()?;
        let t = self.inner.tenant(tenant);
        let batch: Vec<Pending> = events
            .iter()
            .enumerate()
            .map(|(i, (ms, id, json))| {
                Pending::new(tenant, &t, first_seq + i as u64, *ms, id, json)
            })
            .collect();
        let inner = self.inner.clone();
        let name = tenant.to_owned();
        self.bridge
            .run(async move { inner.append(name, t, first_seq, batch).await })?
    }

    /// The server leading `tenant`'s stream now (`None`: no stream, or no leader).
    pub fn stream_leader(&self, tenant: &str) -> Result<Option<String>, ClusterError> {
        let t = self.inner.tenant(tenant);
        let inner = self.inner.clone();
        self.bridge.run(async move {
            Ok(inner
                .info(&t)
                .await?
                .and_then(|i| i.cluster)
                .and_then(|c| c.leader))
        })?
    }

    /// The stream name and subject of `tenant`'s log.
    pub fn stream_of(tenant: &str) -> (String, String) {
        let token = encode_token(tenant);
        (format!("PHX_LOG_{token}"), format!("phx.log.{token}"))
    }

    fn bridged<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<T, ClusterError>> + Send + 'static,
        T: Send + 'static,
    {
        Ok(self.bridge.run(f(self.inner.clone()))??)
    }
}

impl Inner {
    fn tenant(&self, tenant: &str) -> Arc<Tenant> {
        lock(&self.tenants)
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                let (stream, subject) = JetStreamLog::stream_of(tenant);
                Arc::new(Tenant {
                    stream,
                    subject,
                    next: Mutex::new(None),
                })
            })
            .clone()
    }

    fn window(&self, tenant: &str) -> Duration {
        lock(&self.windows)
            .get(tenant)
            .copied()
            .unwrap_or(self.config.duplicate_window)
    }

    fn check_failed(&self) -> Result<(), ClusterError> {
        match lock(&self.failure).as_ref() {
            Some(f) => Err(ClusterError::Failed(f.clone())),
            None => Ok(()),
        }
    }

    /// Latch the log failed with `e` (the first failure is kept) and return it wrapped.
    fn fail(&self, e: ClusterError) -> ClusterError {
        tracing::error!(error = %super::error::display_chain(&e), "JetStream event log failed; refusing writes until reopened");
        let mut f = lock(&self.failure);
        let cause = f.get_or_insert_with(|| Arc::new(e)).clone();
        ClusterError::Failed(cause)
    }
}

impl EventLog for JetStreamLog {
    fn append(
        &self,
        tenant: &str,
        first_seq: u64,
        events: &[NewEntry<'_>],
    ) -> Result<(), EngineError> {
        Ok(self.publish(tenant, first_seq, events)?)
    }

    fn sync(&self) -> Result<(), EngineError> {
        Ok(self.flush()?)
    }

    fn read_from(&self, tenant: &str, from: u64, max: usize) -> Result<Vec<LogEntry>, EngineError> {
        let t = self.inner.tenant(tenant);
        let name = tenant.to_owned();
        self.bridged(move |i| async move { i.read_from(&name, &t, from, max).await })
    }

    fn next_seq(&self, tenant: &str) -> Result<u64, EngineError> {
        let t = self.inner.tenant(tenant);
        if let Some(next) = *lock(&t.next) {
            return Ok(next);
        }
        self.bridged(
            move |i| async move { Ok(i.state(&t).await?.map_or(1, |s| s.last_sequence + 1)) },
        )
    }

    fn recent_ids(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, u64, i64)>, EngineError> {
        let t = self.inner.tenant(tenant);
        let name = tenant.to_owned();
        self.bridged(move |i| async move { i.recent_ids(&name, &t, since_ms).await })
    }

    fn healthy(&self) -> bool {
        lock(&self.inner.failure).is_none() && self.inner.quorum.load(Ordering::SeqCst)
    }

    /// A publish is on its way to the replicas at once; the sync only awaits the acks.
    fn appends_overlap_sync(&self) -> bool {
        true
    }

    fn first_seq(&self, tenant: &str) -> Result<u64, EngineError> {
        let t = self.inner.tenant(tenant);
        self.bridged(move |i| async move {
            Ok(match i.state(&t).await? {
                None => 1,
                Some(s) if s.messages == 0 => s.last_sequence + 1,
                Some(s) => s.first_sequence,
            })
        })
    }
}

/// Stream names may not hold `.`: `_` becomes `__` and `.` becomes `_d`, which is
/// reversible for every valid tenant id (`[A-Za-z0-9_.-]`).
fn encode_token(tenant: &str) -> String {
    let mut out = String::with_capacity(tenant.len() + 4);
    for c in tenant.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            c => out.push(c),
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// JetStream answers an account-info request without an error: the meta group has a leader
/// this server knows. (The raw request: async-nats' `Account` type expects fields that
/// nats-server 2.9 does not send.)
pub async fn jetstream_ready(js: &jetstream::Context) -> Result<(), ClusterError> {
    let info: serde_json::Value = js
        .request("INFO", &())
        .await
        .map_err(|e| ClusterError::api("account info", e))?;
    match info.get("error") {
        None => Ok(()),
        Some(e) => Err(ClusterError::api("account info", e.to_string())),
    }
}

/// Keep `quorum` current: JetStream answers an account-info request only while its meta
/// group has a leader.
async fn probe(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(i) = inner.upgrade() else { return };
        let every = i.config.probe_interval;
        let js = i.js.clone();
        let wait = i
            .config
            .request_timeout
            .min(every.max(Duration::from_millis(500)));
        drop(i);
        tokio::time::sleep(every).await;
        let ok = matches!(
            tokio::time::timeout(wait, jetstream_ready(&js)).await,
            Ok(Ok(()))
        );
        let Some(i) = inner.upgrade() else { return };
        if i.quorum.swap(ok, Ordering::SeqCst) != ok {
            tracing::warn!(quorum = ok, "JetStream quorum changed");
        }
        metrics::gauge!("phoenix_cluster_quorum").set(if ok { 1.0 } else { 0.0 });
    }
}

fn describe_metrics() {
    metrics::gauge!("phoenix_cluster_quorum").set(1.0);
    metrics::gauge!("phoenix_cluster_publish_pending").set(0.0);
    metrics::counter!("phoenix_cluster_publish_retries_total").increment(0);
    metrics::counter!("phoenix_cluster_duplicates_total").increment(0);
    metrics::counter!("phoenix_cluster_bulk_reads_total").increment(0);
    metrics::counter!("phoenix_cluster_bulk_read_fallbacks_total").increment(0);
}

#[cfg(test)]
mod unit {
    use super::encode_token;

    #[test]
    fn stream_tokens_are_reversible_and_dot_free() {
        let ids = ["a.b", "a_db", "a__", "a_.", "x-y", "plain"];
        let tokens: Vec<String> = ids.iter().map(|i| encode_token(i)).collect();
        for t in &tokens {
            assert!(!t.contains('.'), "{t}");
        }
        let mut unique = tokens.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{tokens:?}");
        assert_eq!(encode_token("a.b"), "a_db");
        assert_eq!(encode_token("a_db"), "a__db");
    }
}
