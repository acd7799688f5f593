//! Writing the JetStream log: stream creation, asynchronous publishes, and the group-commit
//! `flush` that awaits their acks and retries what failed, in position order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::{NATS_EXPECTED_LAST_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::HeaderMap;
use bytes::Bytes;

use super::{lock, Inner, Tenant, ACCEPTED_HEADER};
use crate::cluster::error::{Cause, ClusterError};

/// First and longest wait between two publish attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

/// One event published (or to publish) at its position.
pub(crate) struct Pending {
    tenant: Arc<str>,
    stream: Arc<str>,
    subject: Arc<str>,
    seq: u64,
    msg_id: String,
    accepted_ms: i64,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
    sent: Instant,
    cause: Option<Cause>,
}

impl Pending {
    pub(super) fn new(
        tenant: &str,
        t: &Tenant,
        seq: u64,
        accepted_ms: i64,
        event_id: &str,
        json: &str,
    ) -> Pending {
        Pending {
            tenant: tenant.into(),
            stream: t.stream.as_str().into(),
            subject: t.subject.as_str().into(),
            seq,
            msg_id: msg_id(tenant, event_id),
            accepted_ms,
            payload: Bytes::copy_from_slice(json.as_bytes()),
            ack: None,
            sent: Instant::now(),
            cause: None,
        }
    }
}

/// The `Nats-Msg-Id` of an event: tenant and event id (tenant ids hold no `:`).
pub fn msg_id(tenant: &str, event_id: &str) -> String {
    format!("{tenant}:{event_id}")
}

/// What one publish attempt came to.
enum Verdict {
    /// At its position in the stream.
    Confirmed,
    /// Not known to be stored yet: publish again.
    Retry(Option<Cause>),
    /// Can never be stored at its position.
    Fatal(ClusterError),
}

impl Inner {
    /// Publish `batch` (positions `first_seq..`) without waiting for acks.
    pub(super) async fn append(
        self: Arc<Self>,
        tenant: String,
        t: Arc<Tenant>,
        first_seq: u64,
        batch: Vec<Pending>,
    ) -> Result<(), ClusterError> {
        let known = *lock(&t.next);
        let expected = match known {
            Some(n) => n,
            None => match self.ensure_stream(&t, self.window(&tenant)).await {
                Ok(state) => state.last_sequence + 1,
                // The caller has given these positions away already: latch, as for any
                // failed append.
                Err(e) => return Err(self.fail(e)),
            },
        };
        if first_seq != expected {
            return Err(self.fail(ClusterError::Gap {
                tenant,
                expected,
                got: first_seq,
            }));
        }
        *lock(&t.next) = Some(first_seq + batch.len() as u64);
        for mut p in batch {
            if lock(&self.pending).len() >= self.config.max_pending {
                self.clone().flush().await?;
            }
            p.sent = Instant::now();
            match self.send(&p).await {
                Ok(ack) => p.ack = Some(ack),
                Err(e) => p.cause = Some(e.into()),
            }
            let mut pending = lock(&self.pending);
            pending.push(p);
            metrics::gauge!("phoenix_cluster_publish_pending").set(pending.len() as f64);
        }
        Ok(())
    }

    /// Await the ack of everything published so far; retry what is not confirmed until
    /// `sync_deadline`. Any failure latches the log.
    pub(super) async fn flush(self: Arc<Self>) -> Result<(), ClusterError> {
        self.check_failed()?;
        let mut todo = std::mem::take(&mut *lock(&self.pending));
        metrics::gauge!("phoenix_cluster_publish_pending").set(0.0);
        let deadline = Instant::now() + self.config.sync_deadline;
        let mut backoff = BACKOFF.0;
        while !todo.is_empty() {
            // All ack waits run together (each one's timer starts when awaited).
            let results = futures_util::future::join_all(todo.iter_mut().map(|p| {
                let ack = p.ack.take();
                async move {
                    match ack {
                        Some(f) => f.await.map_err(Cause::from),
                        None => Err("not sent".into()),
                    }
                }
            }))
            .await;
            let mut retry = Vec::new();
            for (mut p, result) in todo.into_iter().zip(results) {
                match self.classify(&p, result).await {
                    Verdict::Confirmed => {
                        metrics::histogram!("phoenix_cluster_publish_ack_seconds")
                            .record(p.sent.elapsed().as_secs_f64());
                        // An ack at the stream's replicas proves a quorum now, whatever
                        // the last probe (perhaps run mid-election) saw.
                        self.quorum.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Verdict::Retry(cause) => {
                        p.cause = cause.or(p.cause.take());
                        retry.push(p);
                    }
                    Verdict::Fatal(e) => return Err(self.fail(e)),
                }
            }
            if let Some(first) = retry.first_mut() {
                if Instant::now() + backoff > deadline {
                    let e = ClusterError::NotAcknowledged {
                        tenant: first.tenant.to_string(),
                        seq: first.seq,
                        after: self.config.sync_deadline,
                        cause: first.cause.take(),
                    };
                    return Err(self.fail(e));
                }
                metrics::counter!("phoenix_cluster_publish_retries_total")
                    .increment(retry.len() as u64);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                for p in &mut retry {
                    match self.send(p).await {
                        Ok(ack) => p.ack = Some(ack),
                        Err(e) => p.cause = Some(e.into()),
                    }
                }
            }
            todo = retry;
        }
        Ok(())
    }

    async fn send(&self, p: &Pending) -> Result<PublishAckFuture, ClusterError> {
        let mut h = HeaderMap::new();
        h.insert(NATS_MESSAGE_ID, p.msg_id.as_str());
        h.insert(NATS_EXPECTED_LAST_SEQUENCE, (p.seq - 1).to_string());
        h.insert(ACCEPTED_HEADER, p.accepted_ms.to_string());
        let msg = PublishMessage::build()
            .payload(p.payload.clone())
            .headers(h);
        self.js
            .send_publish(p.subject.to_string(), msg)
            .await
            .map_err(|e| ClusterError::api("publish", e))
    }

    async fn classify(&self, p: &Pending, result: Result<PublishAck, Cause>) -> Verdict {
        match result {
            // A duplicate at our own position is an earlier attempt of ours that landed.
            Ok(ack) if ack.sequence == p.seq => Verdict::Confirmed,
            Ok(ack) if ack.duplicate => {
                metrics::counter!("phoenix_cluster_duplicates_total").increment(1);
                Verdict::Fatal(ClusterError::Duplicate {
                    tenant: p.tenant.to_string(),
                    event_id: p.msg_id[p.tenant.len() + 1..].to_owned(),
                    position: p.seq,
                    existing: ack.sequence,
                })
            }
            Ok(_) => Verdict::Fatal(ClusterError::Fenced {
                tenant: p.tenant.to_string(),
                position: p.seq,
                found: None,
            }),
            Err(e) if is_wrong_last_sequence(&e) => self.verify(p).await,
            Err(e) => Verdict::Retry(Some(e)),
        }
    }

    /// The stream's last sequence is not `p.seq − 1`: either `p` itself is already there
    /// (an attempt whose ack was lost), or a predecessor is still missing (retry), or
    /// another writer holds the position (fenced).
    async fn verify(&self, p: &Pending) -> Verdict {
        let stream = match self.js.get_stream_no_info(&*p.stream).await {
            Ok(s) => s,
            Err(e) => return Verdict::Retry(Some(e.into())),
        };
        match stream.get_raw_message(p.seq).await {
            Ok(m) => {
                let found = m
                    .headers
                    .get(NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned());
                if found.as_deref() == Some(p.msg_id.as_str()) {
                    Verdict::Confirmed
                } else {
                    Verdict::Fatal(ClusterError::Fenced {
                        tenant: p.tenant.to_string(),
                        position: p.seq,
                        found,
                    })
                }
            }
            Err(e) => Verdict::Retry(Some(e.into())),
        }
    }

    /// Create `t`'s stream if it does not exist (or give it `window`), and return its state.
    /// Transient refusals (no meta leader yet, peers not current) are retried until
    /// `sync_deadline`.
    pub(super) async fn ensure_stream(
        &self,
        t: &Tenant,
        window: Duration,
    ) -> Result<stream::State, ClusterError> {
        let config = Config {
            name: t.stream.clone(),
            subjects: vec![t.subject.clone()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            num_replicas: self.config.replicas,
            duplicate_window: window,
            deny_delete: true,
            ..Default::default()
        };
        let deadline = Instant::now() + self.config.sync_deadline;
        let mut backoff = BACKOFF.0;
        loop {
            let attempt: Result<stream::State, ClusterError> = async {
                match self.info(t).await? {
                    Some(info) if info.config.duplicate_window == window => Ok(info.state),
                    Some(_) => self
                        .js
                        .update_stream(&config)
                        .await
                        .map(|info| info.state)
                        .map_err(|e| ClusterError::api("update stream", e)),
                    None => self
                        .js
                        .create_stream(config.clone())
                        .await
                        .map(|s| s.cached_info().state.clone())
                        .map_err(|e| ClusterError::api("create stream", e)),
                }
            }
            .await;
            match attempt {
                Ok(state) => return Ok(state),
                Err(e) if Instant::now() + backoff > deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(stream = %t.stream, error = %e, "stream not ready; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// `t`'s stream state from its leader, or `None` when the stream does not exist.
    pub(super) async fn state(&self, t: &Tenant) -> Result<Option<stream::State>, ClusterError> {
        Ok(self.info(t).await?.map(|i| i.state))
    }

    /// `t`'s stream info (config and state) from its leader, `None` when there is none.
    pub(super) async fn info(&self, t: &Tenant) -> Result<Option<stream::Info>, ClusterError> {
        use async_nats::jetstream::context::GetStreamErrorKind;
        match self.js.get_stream(&t.stream).await {
            Ok(s) => Ok(Some(s.cached_info().clone())),
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(ClusterError::api("stream info", e)),
            },
        }
    }
}

fn is_wrong_last_sequence(e: &Cause) -> bool {
    e.downcast_ref::<async_nats::jetstream::context::PublishError>()
        .is_some_and(|p| p.kind() == PublishErrorKind::WrongLastSequence)
}
