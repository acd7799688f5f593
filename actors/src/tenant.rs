//! `TenantActor`: one per tenant. Owns the dedupe window and the tenant's position in the
//! durable log; acknowledges a batch only once the group committer has made it durable.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::committer::Committer;
use crate::dedupe::DedupeWindow;
use crate::error::EngineError;
use crate::event::Event;
use crate::store::{EventLog, MAX_RECORD_BYTES};

/// What happened to one event of a batch. Both are successes; neither is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly logged at this position.
    Accepted { seq: u64 },
    /// Already logged (at this position) within the dedupe window; scores nothing.
    Duplicate { seq: u64 },
}

/// The tenant actor has no read-only configuration beyond its arguments.
#[derive(Debug)]
pub struct TenantActor;

/// Everything a (re)started tenant actor needs.
#[derive(Clone)]
pub struct TenantArgs {
    pub tenant: String,
    pub log: Arc<dyn EventLog>,
    pub committer: Committer,
    /// Durable head of this tenant's log; consumers (leaderboards) watch it.
    pub head: Arc<watch::Sender<u64>>,
    pub dedupe_window_ms: i64,
    pub dedupe_capacity: usize,
}

pub struct TenantState {
    args: TenantArgs,
    next_seq: u64,
    dedupe: DedupeWindow,
    /// Early evictions already counted in metrics.
    evicted_reported: u64,
}

/// Messages to a tenant actor.
pub enum TenantMsg {
    /// Dedupe and log a batch of validated events; reply once durable, one outcome per event.
    Ingest {
        events: Vec<Event>,
        reply: RpcReplyPort<Result<Vec<Outcome>, EngineError>>,
    },
    /// Fault injection for supervision tests: panic inside the handler.
    #[cfg(test)]
    Panic,
}

impl Actor for TenantActor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = TenantArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: TenantArgs,
    ) -> Result<TenantState, ActorProcessingErr> {
        let now = chrono::Utc::now().timestamp_millis();
        let next_seq = args.log.next_seq(&args.tenant)?;
        let mut dedupe = DedupeWindow::new(args.dedupe_window_ms, args.dedupe_capacity);
        let recent = args
            .log
            .recent_ids(&args.tenant, now - args.dedupe_window_ms)?;
        for (id, seq, accepted_ms) in &recent {
            dedupe.insert(id, *seq, *accepted_ms);
        }
        // Everything already in the log counts as durable for consumers: either this process
        // flushed it, or it survived a restart.
        args.head.send_if_modified(|h| {
            let last = next_seq - 1;
            (last > *h).then(|| *h = last).is_some()
        });
        tracing::info!(tenant = %args.tenant, next_seq, dedupe_entries = recent.len(), "tenant actor started");
        Ok(TenantState {
            args,
            next_seq,
            dedupe,
            evicted_reported: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: TenantMsg,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TenantMsg::Ingest { events, reply } => ingest(state, events, reply),
            #[cfg(test)]
            TenantMsg::Panic => panic!("injected tenant actor panic"),
        }
        Ok(())
    }
}

fn ingest(
    state: &mut TenantState,
    events: Vec<Event>,
    reply: RpcReplyPort<Result<Vec<Outcome>, EngineError>>,
) {
    let now = chrono::Utc::now().timestamp_millis();
    state.dedupe.expire(now);
    state.dedupe.maintain();
    let first_seq = state.next_seq;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut fresh: Vec<&Event> = Vec::with_capacity(events.len());
    let mut in_batch: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        let earlier = state
            .dedupe
            .check(&e.event_id, now)
            .or_else(|| in_batch.get(e.event_id.as_str()).copied());
        if let Some(seq) = earlier {
            outcomes.push(Outcome::Duplicate { seq });
        } else {
            let seq = first_seq + fresh.len() as u64;
            outcomes.push(Outcome::Accepted { seq });
            in_batch.insert(&e.event_id, seq);
            fresh.push(e);
        }
    }
    let tenant = state.args.tenant.clone();
    // One record per chunk of at most MAX_RECORD_BYTES. Each chunk advances the position
    // and the dedupe window as soon as it is written, so a failure part-way leaves no
    // logged event that a retry could log again.
    for chunk in chunks(&fresh, MAX_RECORD_BYTES) {
        let seq = state.next_seq;
        let records: Vec<(&str, &str)> = chunk
            .iter()
            .map(|e| (e.event_id.as_str(), e.json.as_str()))
            .collect();
        if let Err(e) = state.args.log.append(&tenant, seq, now, &records) {
            let _ = reply.send(Err(e));
            return;
        }
        for (i, e) in chunk.iter().enumerate() {
            state.dedupe.insert(&e.event_id, seq + i as u64, now);
        }
        state.next_seq += chunk.len() as u64;
    }
    let evicted = state.dedupe.evicted_early();
    if evicted > state.evicted_reported {
        metrics::counter!("phoenix_dedupe_evicted_early_total", "tenant" => tenant.clone())
            .increment(evicted - state.evicted_reported);
        state.evicted_reported = evicted;
    }
    let accepted = fresh.len() as u64;
    let duplicates = events.len() as u64 - accepted;
    let last = state.next_seq - 1;
    let head = state.args.head.clone();
    // Duplicates also wait: the original they point at may not be durable yet.
    state
        .args
        .committer
        .submit(Box::new(move |result| match result {
            Ok(()) => {
                head.send_if_modified(|h| (last > *h).then(|| *h = last).is_some());
                metrics::counter!("phoenix_events_accepted_total", "tenant" => tenant.clone())
                    .increment(accepted);
                metrics::counter!("phoenix_events_duplicate_total", "tenant" => tenant)
                    .increment(duplicates);
                let _ = reply.send(Ok(outcomes));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }));
}

/// Split `events` into runs whose JSON adds up to at most `max_bytes` (at least one each).
fn chunks<'a>(events: &'a [&'a Event], max_bytes: usize) -> Vec<&'a [&'a Event]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        let len = e.json.len() + e.event_id.len();
        if i > start && size + len > max_bytes {
            out.push(&events[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(id: usize, pad: usize) -> Event {
        Event {
            event_id: format!("e{id}"),
            event_type: "t".into(),
            user_id: "u".into(),
            occurred_at: chrono::Utc::now(),
            json: "x".repeat(pad),
        }
    }

    proptest! {
        /// Chunks cover the batch in order, each within the limit unless a single event is
        /// bigger than the limit on its own.
        #[test]
        fn chunks_cover_in_order(sizes in proptest::collection::vec(0usize..300, 0..60), max in 1usize..1000) {
            let events: Vec<Event> = sizes.iter().enumerate().map(|(i, s)| ev(i, *s)).collect();
            let refs: Vec<&Event> = events.iter().collect();
            let parts = chunks(&refs, max);
            let flat: Vec<&str> = parts.iter().flat_map(|c| c.iter().map(|e| e.event_id.as_str())).collect();
            let want: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            prop_assert_eq!(flat, want);
            for c in &parts {
                prop_assert!(!c.is_empty());
                let total: usize = c.iter().map(|e| e.json.len() + e.event_id.len()).sum();
                prop_assert!(c.len() == 1 || total <= max);
            }
        }
    }
}
