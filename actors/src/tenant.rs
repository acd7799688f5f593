//! `TenantActor`: one per tenant. Owns the dedupe window and the tenant's position in the
//! durable log; acknowledges a batch only once the group committer has made it durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::committer::{Append, Committer, Completion};
use crate::dedupe::DedupeWindow;
use crate::error::EngineError;
use crate::event::Event;
use crate::store::EventLog;

/// What happened to one event of a batch. Both are successes; neither is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly logged at this position.
    Accepted { seq: u64 },
    /// Already logged (at this position) within the dedupe window; scores nothing.
    Duplicate { seq: u64 },
}

/// Where the edge (and a board emitting its closes) finds each tenant's current actor; the
/// supervisor replaces an entry on restart.
pub type Routes = Arc<RwLock<HashMap<String, ActorRef<TenantMsg>>>>;

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
    /// Tenant actors of this engine still rebuilding their dedupe window (`/ready` waits).
    pub rebuilding: Arc<AtomicUsize>,
}

/// Counts one tenant actor as rebuilding until dropped (the rebuild ended, or the actor
/// stopped before it did).
struct Rebuilding(Arc<AtomicUsize>);

impl Rebuilding {
    fn start(count: &Arc<AtomicUsize>) -> Rebuilding {
        count.fetch_add(1, Ordering::SeqCst);
        Rebuilding(count.clone())
    }
}

impl Drop for Rebuilding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct TenantState {
    args: TenantArgs,
    /// `args.tenant`, shared with the committer's jobs.
    tenant: Arc<str>,
    next_seq: u64,
    dedupe: DedupeWindow,
    /// Early evictions already counted in metrics.
    evicted_reported: u64,
    /// `phoenix_events_{accepted,duplicate}_total` for this tenant, looked up once.
    accepted_total: metrics::Counter,
    duplicate_total: metrics::Counter,
    /// Held until `post_start` has rebuilt the dedupe window.
    rebuilding: Option<Rebuilding>,
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
        let rebuilding = Rebuilding::start(&args.rebuilding);
        let next_seq = args.log.next_seq(&args.tenant)?;
        // Everything already in the log counts as durable for consumers: either this process
        // flushed it, or it survived a restart. Set before the dedupe rebuild, so the
        // tenant's boards load their checkpoints and replay meanwhile.
        args.head.send_if_modified(|h| {
            let last = next_seq - 1;
            (last > *h).then(|| *h = last).is_some()
        });
        let label = args.tenant.clone();
        Ok(TenantState {
            accepted_total: metrics::counter!("phoenix_events_accepted_total", "tenant" => label.clone()),
            duplicate_total: metrics::counter!("phoenix_events_duplicate_total", "tenant" => label),
            tenant: args.tenant.as_str().into(),
            dedupe: DedupeWindow::new(args.dedupe_window_ms, args.dedupe_capacity),
            args,
            next_seq,
            evicted_reported: 0,
            rebuilding: Some(rebuilding),
        })
    }

    /// Rebuild the dedupe window from the log. Runs after `spawn` has returned (so the
    /// engine starts the boards meanwhile) and before any message is handled: an event
    /// sent now waits in the mailbox until the window knows every id it must.
    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        let now = chrono::Utc::now().timestamp_millis();
        let args = &state.args;
        let started = std::time::Instant::now();
        let entries = rebuild(
            args.log.as_ref(),
            &args.tenant,
            now - args.dedupe_window_ms,
            args.dedupe_capacity,
            &mut state.dedupe,
        )?;
        state.rebuilding = None;
        tracing::info!(tenant = %args.tenant, next_seq = state.next_seq, dedupe_entries = entries, ms = started.elapsed().as_millis() as u64, "tenant actor started");
        Ok(())
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

/// Ids the rebuild's reader hands over at a time, and how many such chunks may wait.
const REBUILD_CHUNK: usize = 8192;
const REBUILD_QUEUE: usize = 16;

/// Ids read from the log, in one buffer: `(start, end, seq, accepted_ms)` into `text`.
#[derive(Default)]
struct IdChunk {
    text: String,
    ids: Vec<(usize, usize, u64, i64)>,
}

/// Fill `dedupe` with the newest `max` ids accepted since `since_ms`, as the log holds them.
/// A reader thread reads and decompresses the log's records newest first while this thread
/// inserts the ids it has handed over (each was about half of a rebuild), into tables sized
/// at once for the log's count. Returns how many ids were read.
fn rebuild(
    log: &dyn EventLog,
    tenant: &str,
    since_ms: i64,
    max: usize,
    dedupe: &mut DedupeWindow,
) -> Result<usize, EngineError> {
    if let Some(n) = log.recent_count_hint(tenant, since_ms)? {
        dedupe.reserve(usize::try_from(n).unwrap_or(max).min(max));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<IdChunk>(REBUILD_QUEUE);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("phoenix-rebuild".into())
            .spawn_scoped(scope, move || {
                let mut chunk = IdChunk::default();
                let mut gone = false;
                let read = log.each_recent_id_newest(tenant, since_ms, max, &mut |id, seq, ms| {
                    if gone {
                        return;
                    }
                    let start = chunk.text.len();
                    chunk.text.push_str(id);
                    chunk.ids.push((start, chunk.text.len(), seq, ms));
                    if chunk.ids.len() >= REBUILD_CHUNK {
                        gone = tx.send(std::mem::take(&mut chunk)).is_err();
                    }
                });
                if !gone && !chunk.ids.is_empty() {
                    let _ = tx.send(chunk);
                }
                read
            });
        let reader = match reader {
            Ok(r) => r,
            // No thread to spare: read, then insert, on this one.
            Err(e) => {
                tracing::warn!(error = %e, "dedupe rebuild on one thread");
                let ids = log.recent_ids_newest(tenant, since_ms, max)?;
                let batch: Vec<(&str, u64, i64)> = ids
                    .iter()
                    .rev()
                    .map(|(id, seq, ms)| (id.as_str(), *seq, *ms))
                    .collect();
                dedupe.insert_older(&batch);
                return Ok(ids.len());
            }
        };
        for chunk in rx {
            let batch: Vec<(&str, u64, i64)> = chunk
                .ids
                .iter()
                .map(|(start, end, seq, ms)| (&chunk.text[*start..*end], *seq, *ms))
                .collect();
            dedupe.insert_older(&batch);
        }
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn ingest(
    state: &mut TenantState,
    events: Vec<Event>,
    reply: RpcReplyPort<Result<Vec<Outcome>, EngineError>>,
) {
    if !state.args.log.healthy() {
        let _ = reply.send(Err(EngineError::Unavailable));
        return;
    }
    let now = chrono::Utc::now().timestamp_millis();
    state.dedupe.expire(now);
    state.dedupe.maintain();
    let first_seq = state.next_seq;
    let total = events.len();
    let mut outcomes = Vec::with_capacity(total);
    let mut fresh: Vec<Event> = Vec::with_capacity(total);
    // A window smaller than the batch could evict an id of this batch before its repeat
    // later in the batch is checked; then the batch's own ids are checked here too.
    let mut in_batch: Option<HashMap<String, u64>> =
        (total > 1 && state.args.dedupe_capacity < total).then(HashMap::new);
    // Positions and the dedupe window advance now, each id remembered as it is accepted (so
    // a repeat later in the batch is a duplicate of it); the committer writes the events in
    // order and fsyncs before anyone is answered. If that fails the store is marked
    // unhealthy and refuses every later write until a restart rebuilds this state from
    // what the log really holds, so an id remembered here but never logged cannot turn a
    // retry into a false "duplicate".
    for e in events {
        let seq = first_seq + fresh.len() as u64;
        let earlier = match in_batch.as_ref().and_then(|m| m.get(e.event_id.as_str())) {
            Some(earlier) => Some(*earlier),
            None => state.dedupe.check_or_insert(&e.event_id, seq, now),
        };
        if let Some(earlier) = earlier {
            outcomes.push(Outcome::Duplicate { seq: earlier });
        } else {
            outcomes.push(Outcome::Accepted { seq });
            if let Some(m) = in_batch.as_mut() {
                m.insert(e.event_id.clone(), seq);
            }
            fresh.push(e);
        }
    }
    state.next_seq += fresh.len() as u64;
    let evicted = state.dedupe.evicted_early();
    if evicted > state.evicted_reported {
        metrics::counter!("phoenix_dedupe_evicted_early_total", "tenant" => state.args.tenant.clone())
            .increment(evicted - state.evicted_reported);
        state.evicted_reported = evicted;
    }
    let accepted = fresh.len() as u64;
    let duplicates = total as u64 - accepted;
    let last = state.next_seq - 1;
    let head = state.args.head.clone();
    let (accepted_total, duplicate_total) =
        (state.accepted_total.clone(), state.duplicate_total.clone());
    // Duplicates also wait: the original they point at may not be durable yet.
    let done: Completion = Box::new(move |result| match result {
        Ok(()) => {
            head.send_if_modified(|h| (last > *h).then(|| *h = last).is_some());
            accepted_total.increment(accepted);
            duplicate_total.increment(duplicates);
            let _ = reply.send(Ok(outcomes));
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    });
    if fresh.is_empty() {
        state.args.committer.submit_for(state.tenant.clone(), done);
    } else {
        let append = Append {
            tenant: state.tenant.clone(),
            first_seq,
            accepted_ms: now,
            events: fresh,
        };
        state.args.committer.append(append, done);
    }
}
