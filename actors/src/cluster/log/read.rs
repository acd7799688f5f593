//! Reading the JetStream log: positions are stream sequences. Every read first takes the
//! stream state from its leader (the last acknowledged position), then reads up to it:
//!
//! - **small ranges** (up to `bulk_threshold` positions) with leader-served message gets
//!   (`STREAM.MSG.GET`), `read_concurrency` in flight;
//! - **larger ranges** through an ephemeral consumer (`bulk.rs`), which reads until it has
//!   delivered every position up to the leader's last one, or fills the tail with gets.
//!
//! `recent_ids` finds the first position of the window by a binary search on the
//! acceptance times (positions are logged in acceptance order), then reads only the ids
//! and times from there (`headers_only`). nats-server 2.9 has no batched get (2.11's batch
//! direct get could replace the consumer); see docs/cluster.md.

use std::sync::Arc;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;

use super::{Inner, Tenant, ACCEPTED_HEADER};
use crate::cluster::error::ClusterError;
use crate::store::LogEntry;

/// What a read needs of each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Whole entries.
    Entries,
    /// Ids and times only: entries come back with an empty `json`.
    Ids,
}

/// A range `lo..=hi` of one tenant's log to read, and what of each message.
#[derive(Clone, Copy)]
pub(super) struct Span<'a> {
    pub tenant: &'a str,
    pub t: &'a Tenant,
    pub lo: u64,
    pub hi: u64,
    pub want: Want,
}

impl Span<'_> {
    /// The same read from `lo` on.
    pub fn from(self, lo: u64) -> Self {
        Span { lo, ..self }
    }
}

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
        self.fetch(Span {
            tenant,
            t,
            lo: from,
            hi: last,
            want: Want::Entries,
        })
        .await
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
        let (first, last) = (state.first_sequence.max(1), state.last_sequence);
        if state.messages == 0 || last < first {
            return Ok(Vec::new());
        }
        let lo = if self.is_small(first, last) {
            first
        } else {
            let stream = self.stream(t).await?;
            match first_recent(&stream, tenant, first, last, since_ms).await? {
                Some(seq) => seq,
                None => return Ok(Vec::new()),
            }
        };
        let entries = self
            .fetch(Span {
                tenant,
                t,
                lo,
                hi: last,
                want: Want::Ids,
            })
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.accepted_ms >= since_ms)
            .map(|e| (e.event_id, e.seq, e.accepted_ms))
            .collect())
    }

    /// Entries `lo..=hi` in order, read by gets or in bulk by the size of the range;
    /// positions no longer in the stream (purged) are skipped.
    pub(super) async fn fetch(&self, span: Span<'_>) -> Result<Vec<LogEntry>, ClusterError> {
        if self.is_small(span.lo, span.hi) {
            self.get_range(span).await
        } else {
            self.bulk(span).await
        }
    }

    fn is_small(&self, lo: u64, hi: u64) -> bool {
        hi.saturating_sub(lo) < u64::try_from(self.config.bulk_threshold).unwrap_or(u64::MAX)
    }

    pub(super) async fn stream(&self, t: &Tenant) -> Result<Stream<()>, ClusterError> {
        self.js
            .get_stream_no_info(&t.stream)
            .await
            .map_err(|e| ClusterError::api("stream", e))
    }

    /// Entries `lo..=hi` by leader-served message gets, `read_concurrency` in flight.
    pub(super) async fn get_range(&self, span: Span<'_>) -> Result<Vec<LogEntry>, ClusterError> {
        let Span {
            tenant,
            t,
            lo,
            hi,
            want,
        } = span;
        if lo > hi {
            return Ok(Vec::new());
        }
        let stream = self.stream(t).await?;
        let got: Vec<Result<Option<LogEntry>, ClusterError>> = futures_util::stream::iter(lo..=hi)
            .map(|seq| {
                let stream = &stream;
                async move { get(stream, tenant, seq, want).await }
            })
            .buffered(self.config.read_concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::with_capacity(got.len());
        for e in got {
            out.extend(e?);
        }
        Ok(out)
    }
}

/// The entry at `seq` from the stream leader, `None` when it is not in the stream.
async fn get(
    stream: &Stream<()>,
    tenant: &str,
    seq: u64,
    want: Want,
) -> Result<Option<LogEntry>, ClusterError> {
    match stream.get_raw_message(seq).await {
        Ok(m) => decode(tenant, m.sequence, &m.headers, &m.payload, want).map(Some),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(ClusterError::api("message get", e)),
    }
}

/// The first position in `first..=last` accepted at or after `since_ms` (`None`: none is),
/// by a binary search over leader-served gets: positions are logged in acceptance order.
/// A position purged since the state was read counts as older.
async fn first_recent(
    stream: &Stream<()>,
    tenant: &str,
    first: u64,
    last: u64,
    since_ms: i64,
) -> Result<Option<u64>, ClusterError> {
    let (mut lo, mut hi) = (first, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let recent = get(stream, tenant, mid, Want::Ids)
            .await?
            .is_some_and(|e| e.accepted_ms >= since_ms);
        if recent {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok((lo <= last).then_some(lo))
}

/// A stored message as a log entry (with an empty `json` for [`Want::Ids`]).
pub(super) fn decode(
    tenant: &str,
    seq: u64,
    headers: &HeaderMap,
    payload: &[u8],
    want: Want,
) -> Result<LogEntry, ClusterError> {
    let bad = |reason| ClusterError::Decode {
        tenant: tenant.to_owned(),
        seq,
        reason,
    };
    let id = headers
        .get(NATS_MESSAGE_ID)
        .ok_or_else(|| bad("no Nats-Msg-Id"))?
        .as_str();
    let event_id = id
        .strip_prefix(tenant)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| bad("Nats-Msg-Id is not <tenant>:<event_id>"))?
        .to_owned();
    let accepted_ms = headers
        .get(ACCEPTED_HEADER)
        .and_then(|v| v.as_str().parse::<i64>().ok())
        .ok_or_else(|| bad("no Phoenix-Accepted-Ms"))?;
    let json = match want {
        Want::Ids => String::new(),
        Want::Entries => {
            String::from_utf8(payload.to_vec()).map_err(|_| bad("payload is not UTF-8"))?
        }
    };
    Ok(LogEntry {
        seq,
        accepted_ms,
        event_id,
        json,
    })
}
