//! Bulk reads of the JetStream log through an ephemeral pull consumer: one pull request
//! brings up to `read_batch` messages (or `read_batch_bytes`), where the get path needs one
//! round trip per position.
//!
//! A consumer may be served by a replica that has not applied the latest writes (see
//! docs/cluster.md), so the caller passes `hi`, the leader's last position taken before the
//! read: the read goes on until the consumer has delivered every position up to `hi`. While
//! a lagging replica delivers nothing, the read waits for it up to `request_timeout`, then
//! reads what is left with leader-served gets. The consumer lives in memory, with one
//! replica and no acks, and is deleted after the read (or expires after
//! `inactive_threshold` when the delete is lost).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use futures_util::StreamExt;

use super::read::{decode, Span, Want};
use super::Inner;
use crate::cluster::error::ClusterError;
use crate::store::LogEntry;

/// Longest one pull waits for messages that are not there yet (a lagging replica).
const PULL_WAIT: Duration = Duration::from_secs(1);

impl Inner {
    /// Entries `lo..=hi` in order through an ephemeral consumer; `hi` must not be above the
    /// leader's last position. Positions purged before the read are skipped.
    pub(super) async fn bulk(&self, span: Span<'_>) -> Result<Vec<LogEntry>, ClusterError> {
        let (mut out, next) = self.consume(span).await?;
        if next <= span.hi {
            // The consumer stopped short of the leader's last position: read the rest from
            // the leader.
            metrics::counter!("phoenix_cluster_bulk_read_fallbacks_total").increment(1);
            tracing::debug!(stream = %span.t.stream, from = next, to = span.hi, "bulk read filled from the leader");
            out.extend(self.get_range(span.from(next)).await?);
        }
        Ok(out)
    }

    /// What an ephemeral consumer from `lo` delivers up to `hi`, and the first position it
    /// did not deliver (`hi + 1` when it delivered everything).
    pub(super) async fn consume(
        &self,
        span: Span<'_>,
    ) -> Result<(Vec<LogEntry>, u64), ClusterError> {
        let stream = self.stream(span.t).await?;
        let consumer: Consumer<pull::Config> = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: span.lo,
                },
                ack_policy: AckPolicy::None,
                headers_only: span.want == Want::Ids,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: self.config.request_timeout.saturating_mul(2),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::api("create read consumer", e))?;
        let name = consumer.cached_info().name.clone();
        let read = self.drain(&consumer, span).await;
        if let Err(e) = stream.delete_consumer(&name).await {
            tracing::debug!(stream = %span.t.stream, consumer = %name, error = %e, "read consumer not deleted; it expires");
        }
        metrics::counter!("phoenix_cluster_bulk_reads_total").increment(1);
        read
    }

    /// Pull from `consumer` until it delivered `hi`, or delivered nothing for
    /// `request_timeout`. Returns the entries and the first position not read.
    async fn drain(
        &self,
        consumer: &Consumer<pull::Config>,
        span: Span<'_>,
    ) -> Result<(Vec<LogEntry>, u64), ClusterError> {
        let (tenant, lo, hi, want) = (span.tenant, span.lo, span.hi, span.want);
        let batch = self.config.read_batch.max(1);
        let capacity = usize::try_from(hi - lo + 1).map_or(batch, |n| n.min(1 << 20));
        let mut out = Vec::with_capacity(capacity);
        let mut next = lo;
        let mut progress = Instant::now();
        let wait = PULL_WAIT.min(self.config.request_timeout);
        let no_headers = async_nats::HeaderMap::new();
        while next <= hi && progress.elapsed() < self.config.request_timeout {
            let room = usize::try_from(hi - next + 1).map_or(batch, |n| n.min(batch));
            let mut messages = consumer
                .batch()
                .max_messages(room)
                .max_bytes(self.config.read_batch_bytes)
                .expires(wait)
                .messages()
                .await
                .map_err(|e| ClusterError::api("pull", e))?;
            let mut delivered = 0usize;
            while let Some(m) = messages.next().await {
                // The server ends a pull with a status: `409 Message Size Exceeds MaxBytes`
                // when the batch is full by bytes, others on a leader change or a deleted
                // consumer. A pull that brought nothing leaves the rest to the gets.
                let m = match m {
                    Ok(m) => m,
                    Err(e) if delivered > 0 => {
                        tracing::trace!(error = %e, "pull ended");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "pull brought nothing; reading on by gets");
                        return Ok((out, next));
                    }
                };
                let seq = m
                    .info()
                    .map_err(|e| ClusterError::api("pulled message info", e))?
                    .stream_sequence;
                if seq < next {
                    continue;
                }
                if seq > hi {
                    // Past the leader's position taken before the read: not ours to return.
                    return Ok((out, hi + 1));
                }
                let headers = m.message.headers.as_ref().unwrap_or(&no_headers);
                out.push(decode(tenant, seq, headers, &m.message.payload, want)?);
                next = seq + 1;
                delivered += 1;
                progress = Instant::now();
            }
        }
        Ok((out, next))
    }
}
