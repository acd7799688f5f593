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
        // Only the newest `capacity` ids: a full window would evict the older ones anyway.
        let recent = args.log.recent_ids_newest(
            &args.tenant,
            now - args.dedupe_window_ms,
            args.dedupe_capacity,
        )?;
        state.dedupe.reserve(recent.len());
        for (id, seq, accepted_ms) in &recent {
            state.dedupe.insert(id, *seq, *accepted_ms);
        }
        state.rebuilding = None;
        tracing::info!(tenant = %args.tenant, next_seq = state.next_seq, dedupe_entries = recent.len(), "tenant actor started");
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
    let mut in_batch: HashMap<String, u64> = HashMap::new();
    for e in events {
        let earlier = state
            .dedupe
            .check(&e.event_id, now)
            .or_else(|| in_batch.get(e.event_id.as_str()).copied());
        if let Some(seq) = earlier {
            outcomes.push(Outcome::Duplicate { seq });
        } else {
            let seq = first_seq + fresh.len() as u64;
            outcomes.push(Outcome::Accepted { seq });
            if total > 1 {
                in_batch.insert(e.event_id.clone(), seq);
            }
            fresh.push(e);
        }
    }
    // Positions and the dedupe window advance now; the committer writes the events in
    // order and fsyncs before anyone is answered. If that fails the store is marked
    // unhealthy and refuses every later write until a restart rebuilds this state from
    // what the log really holds, so an id remembered here but never logged cannot turn a
    // retry into a false "duplicate".
    for (i, e) in fresh.iter().enumerate() {
        state.dedupe.insert(&e.event_id, first_seq + i as u64, now);
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
