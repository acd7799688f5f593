//! Reading the JetStream log: positions are stream sequences, read from the stream leader
//! (`STREAM.MSG.GET`, consistent with every acknowledged publish), many in flight at once.
//!
//! nats-server 2.9 has no batched get (2.11's batch direct get would replace this); see
//! docs/cluster.md for what that costs.

use std::sync::Arc;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use futures_util::StreamExt;

use super::{Inner, Tenant, ACCEPTED_HEADER};
use crate::cluster::error::ClusterError;
use crate::store::LogEntry;

/// Positions fetched per step when `recent_ids` walks back from the head.
const RECENT_CHUNK: u64 = 256;

impl Inner {
    pub(super) async fn read_from(
        self: Arc<Self>,
        tenant: &str,
        t: &Tenant,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, ClusterError> {
        let Some(state) = self.state(t).await? else {
            return Ok(Vec::new());
        };
        let from = from.max(1).max(state.first_sequence);
        let last = state.last_sequence.min(
            from.saturating_add(u64::try_from(max).unwrap_or(u64::MAX))
                .saturating_sub(1),
        );
        if max == 0 || from > last {
            return Ok(Vec::new());
        }
        self.fetch(tenant, t, from, last).await
    }

    pub(super) async fn recent_ids(
        self: Arc<Self>,
        tenant: &str,
        t: &Tenant,
        since_ms: i64,
    ) -> Result<Vec<(String, u64, i64)>, ClusterError> {
        let Some(state) = self.state(t).await? else {
            return Ok(Vec::new());
        };
        let first = state.first_sequence.max(1);
        let mut hi = state.last_sequence;
        let mut out = Vec::new();
        while hi >= first && hi > 0 {
            let lo = hi.saturating_sub(RECENT_CHUNK - 1).max(first);
            let chunk = self.fetch(tenant, t, lo, hi).await?;
            for e in chunk.iter().rev() {
                if e.accepted_ms >= since_ms {
                    out.push((e.event_id.clone(), e.seq, e.accepted_ms));
                }
            }
            // Events are logged in acceptance order: a chunk that starts before `since_ms`
            // is the last that can hold anything recent.
            if chunk.first().is_none_or(|e| e.accepted_ms < since_ms) {
                break;
            }
            hi = lo - 1;
        }
        out.reverse();
        Ok(out)
    }

    /// Entries `lo..=hi` in order; positions no longer in the stream (purged) are skipped.
    async fn fetch(
        &self,
        tenant: &str,
        t: &Tenant,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<LogEntry>, ClusterError> {
        let stream: Stream<()> = self
            .js
            .get_stream_no_info(&t.stream)
            .await
            .map_err(|e| ClusterError::api("stream", e))?;
        let got: Vec<Result<Option<StreamMessage>, ClusterError>> =
            futures_util::stream::iter(lo..=hi)
                .map(|seq| {
                    let stream = &stream;
                    async move {
                        match stream.get_raw_message(seq).await {
                            Ok(m) => Ok(Some(m)),
                            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                                Ok(None)
                            }
                            Err(e) => Err(ClusterError::api("message get", e)),
                        }
                    }
                })
                .buffered(self.config.read_concurrency.max(1))
                .collect()
                .await;
        let mut out = Vec::with_capacity(got.len());
        for m in got {
            if let Some(m) = m? {
                out.push(decode(tenant, m)?);
            }
        }
        Ok(out)
    }
}

/// A stored message as a log entry.
fn decode(tenant: &str, m: StreamMessage) -> Result<LogEntry, ClusterError> {
    let seq = m.sequence;
    let bad = |reason| ClusterError::Decode {
        tenant: tenant.to_owned(),
        seq,
        reason,
    };
    let id = m
        .headers
        .get(NATS_MESSAGE_ID)
        .ok_or_else(|| bad("no Nats-Msg-Id"))?
        .as_str();
    let event_id = id
        .strip_prefix(tenant)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| bad("Nats-Msg-Id is not <tenant>:<event_id>"))?
        .to_owned();
    let accepted_ms = m
        .headers
        .get(ACCEPTED_HEADER)
        .and_then(|v| v.as_str().parse::<i64>().ok())
        .ok_or_else(|| bad("no Phoenix-Accepted-Ms"))?;
    let json = String::from_utf8(m.payload.to_vec()).map_err(|_| bad("payload is not UTF-8"))?;
    Ok(LogEntry {
        seq,
        accepted_ms,
        event_id,
        json,
    })
}
