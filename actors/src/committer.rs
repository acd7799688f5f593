//! Group commit: two threads that write log batches and make them durable, many at a time.
//!
//! Tenant actors decide positions and dedupe, then hand the committer the events to log with
//! a completion. The writer thread takes every job queued so far and writes each tenant's
//! events of the round as few sled records as [`MAX_RECORD_BYTES`] allows (consecutive
//! requests of a tenant share records, so many single-event requests cost one sled insert),
//! then hands the round to the fsync thread, which calls [`EventLog::sync`] once for every
//! round written since its last sync and then runs their completions — so one fsync
//! acknowledges every request that arrived while the previous one ran, across tenants. The
//! writer goes on writing while a sync runs, except a small round that nothing written yet
//! waits for: that one is held back until the sync ends and then written with everything
//! that arrived meanwhile, so single-event requests wake the writer once per fsync, not once
//! each (a log whose appends overlap its syncs, JetStream's, is always written ahead).
//! Keeping sled's blocking calls on these threads keeps them off the async workers; one thread calling the blocking `flush()` avoids
//! the `flush_async` deadlock of sled 0.34 (sled #1308, #1241).
//!
//! Fairness: queued jobs wait in one FIFO per tenant, and a round takes from each tenant at
//! most `round_bytes_per_tenant` of events (at least one job), so one tenant's flood is
//! spread over later rounds instead of making another tenant's single event wait behind all
//! of it. The writer runs at most one round ahead of the fsync, so a round never waits for
//! more than the rounds before it could hold. A job without events ("durable so far") of a
//! tenant waits in that tenant's queue; a global one (no tenant) waits until everything
//! queued before it is written.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::error::EngineError;
use crate::event::Event;
use crate::store::{EventLog, NewEntry, MAX_RECORD_BYTES};

/// A write round or fsync this long is logged: every ack behind it waited that long.
const SLOW: std::time::Duration = std::time::Duration::from_millis(100);

/// What to run once the round it was submitted in is durable (or failed to become so).
pub type Completion = Box<dyn FnOnce(Result<(), EngineError>) + Send>;

/// Events a tenant actor has positioned: the first gets `first_seq`, the rest follow.
pub struct Append {
    pub tenant: Arc<str>,
    pub first_seq: u64,
    pub accepted_ms: i64,
    pub events: Vec<Event>,
}

struct Job {
    /// Whose queue the job waits in (`None`: a barrier behind every queue).
    tenant: Option<Arc<str>>,
    append: Option<Append>,
    done: Completion,
    /// Event bytes of `append`, counted once: the queue, the budget and the writer's wait
    /// all weigh the job by them.
    bytes: usize,
}

impl Job {
    fn new(tenant: Option<Arc<str>>, append: Option<Append>, done: Completion) -> Job {
        let bytes = append.as_ref().map_or(0, |a| {
            a.events
                .iter()
                .map(|e| e.json.len() + e.event_id.len())
                .sum()
        });
        Job {
            tenant,
            append,
            done,
            bytes,
        }
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Jobs waiting for a round: one FIFO per tenant plus global barriers, each with its arrival
/// number.
#[derive(Default)]
struct Queue {
    tenants: HashMap<Arc<str>, VecDeque<(u64, Job)>>,
    barriers: VecDeque<(u64, Job)>,
    arrived: u64,
    /// Event bytes of the queued jobs.
    bytes: usize,
}

impl Queue {
    fn push(&mut self, job: Job) {
        self.arrived += 1;
        self.bytes += job.bytes();
        match job.tenant.clone() {
            Some(t) => self
                .tenants
                .entry(t)
                .or_default()
                .push_back((self.arrived, job)),
            None => self.barriers.push_back((self.arrived, job)),
        }
    }

    fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.barriers.is_empty()
    }

    /// The next round: from every tenant its oldest jobs up to the `left` bytes of
    /// `budget(tenant) = (left, full)` (at least one job when all of `full` is left), then
    /// every barrier that nothing still queued arrived before.
    fn round(&mut self, budget: impl Fn(&str) -> (usize, usize)) -> Vec<Job> {
        let mut out = Vec::new();
        for (t, q) in self.tenants.iter_mut() {
            let (left, full) = budget(t);
            let mut bytes = 0usize;
            while let Some((_, job)) = q.front() {
                let b = job.bytes().max(1);
                let fresh = bytes == 0 && left >= full;
                if !fresh && bytes.saturating_add(b) > left {
                    break;
                }
                bytes = bytes.saturating_add(b);
                let job = q.pop_front().expect("front").1;
                self.bytes -= job.bytes();
                out.push(job);
            }
        }
        self.tenants.retain(|_, q| !q.is_empty());
        let oldest_left = self
            .tenants
            .values()
            .filter_map(|q| q.front().map(|(n, _)| *n))
            .min()
            .unwrap_or(u64::MAX);
        while self.barriers.front().is_some_and(|(n, _)| *n < oldest_left) {
            out.push(self.barriers.pop_front().expect("front").1);
        }
        out
    }
}

/// Handle to the group-commit threads. Cloning shares the same threads.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Start the writer and fsync threads for `log`, with `budget` bytes per tenant between
    /// two fsyncs. They stop when every handle is dropped.
    pub fn start(log: Arc<dyn EventLog>, budget: Budget) -> Committer {
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared::default());
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("phoenix-commit".into())
            .spawn(move || run(log, rx, budget, writer))
            .expect("spawn the group-commit thread");
        Committer { tx, shared }
    }

    /// Run `done` after everything submitted so far (by anyone) is durable.
    pub fn submit(&self, done: Completion) {
        self.send(Job::new(None, None, done));
    }

    /// Run `done` after everything `tenant` submitted so far is durable.
    pub fn submit_for(&self, tenant: Arc<str>, done: Completion) {
        self.send(Job::new(Some(tenant), None, done));
    }

    /// Log `append` and run `done` once it is durable. Appends of one tenant must be
    /// submitted in position order (the tenant actor does).
    pub fn append(&self, append: Append, done: Completion) {
        self.send(Job::new(Some(append.tenant.clone()), Some(append), done));
    }

    fn send(&self, job: Job) {
        let bytes = job.bytes();
        let before = self.shared.unread.fetch_add(bytes, Ordering::SeqCst);
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            self.shared.unread.fetch_sub(bytes, Ordering::SeqCst);
            (job.done)(Err(EngineError::Unavailable));
            return;
        }
        // A writer waiting for the running sync (after small rounds) writes at once when a
        // big round has arrived. Taking the lock orders this wake after its check.
        if before < LATE_ROUND_BYTES && before + bytes >= LATE_ROUND_BYTES {
            drop(self.shared.lock());
            self.shared.changed.notify_all();
        }
    }
}

/// How many bytes of one tenant's events may go between two fsyncs (at least one request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// While other tenants are writing too: small, so that an fsync carrying a flood stays
    /// short for the others' events that wait on it.
    pub shared: usize,
    /// While the tenant is the only one writing (no other tenant within [`ACTIVE`]): large,
    /// so a lone flood gets the throughput of big group commits.
    pub alone: usize,
}

/// A tenant that queued a job within this long counts as writing.
const ACTIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// Which tenants wrote recently, so the budget is [`Budget::shared`] while more than one is
/// writing. Holds at most the tenants that wrote within [`ACTIVE`].
#[derive(Default)]
struct Activity {
    seen: HashMap<Arc<str>, Instant>,
    pruned: Option<Instant>,
}

impl Activity {
    fn saw(&mut self, tenant: &Arc<str>, now: Instant) {
        match self.seen.get_mut(tenant) {
            Some(t) => *t = now,
            None => {
                self.seen.insert(tenant.clone(), now);
            }
        }
        if self.pruned.is_none_or(|p| now.duration_since(p) >= ACTIVE) {
            self.seen.retain(|_, t| now.duration_since(*t) < ACTIVE);
            self.pruned = Some(now);
        }
    }

    /// How many tenants wrote within [`ACTIVE`] of `now`.
    fn writers(&self, now: Instant) -> usize {
        self.seen
            .values()
            .filter(|at| now.duration_since(**at) < ACTIVE)
            .count()
    }
}

/// What the writer has written and the syncer has not yet taken, and how many syncs the
/// syncer has taken (each one opens a new budget for every tenant).
#[derive(Default)]
struct Written {
    completions: Vec<Completion>,
    epoch: u64,
    /// The last epoch whose sync has returned (`epoch` while no sync runs).
    ended: u64,
    closed: bool,
}

/// What the writer, the syncer and the senders share.
#[derive(Default)]
struct Shared {
    written: std::sync::Mutex<Written>,
    /// Signalled when completions are handed over, a sync ends, the writer stops, or a big
    /// round's worth of bytes has been sent.
    changed: std::sync::Condvar,
    /// Event bytes sent and not yet taken by the writer.
    unread: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(
        &self,
        w: std::sync::MutexGuard<'a, Written>,
    ) -> std::sync::MutexGuard<'a, Written> {
        self.changed.wait(w).unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer: takes every job queued so far and writes their events, while the syncer
/// fsyncs what was written before. Only a small round (under [`LATE_ROUND_BYTES`]) that
/// would wait for the running sync anyway is held back until that sync ends, so requests
/// trickling in meanwhile are written together instead of waking the writer each. What
/// bounds the next fsync (and everyone waiting on it) is the budget: between two syncs a
/// tenant's events take at most its [`Budget`] of bytes (at least one job); the rest of a
/// flood waits for later syncs, while another tenant's event rides the next one.
fn run(log: Arc<dyn EventLog>, rx: mpsc::Receiver<Job>, budget: Budget, shared: Arc<Shared>) {
    let late = !log.appends_overlap_sync();
    let syncer = (log.clone(), shared.clone());
    std::thread::Builder::new()
        .name("phoenix-fsync".into())
        .spawn(move || sync_rounds(syncer.0, syncer.1))
        .expect("spawn the fsync thread");
    let mut queue = Queue::default();
    let mut spent: HashMap<Arc<str>, usize> = HashMap::new();
    let mut activity = Activity::default();
    let mut epoch = 0u64;
    // Set while every queued tenant has spent its budget: wait for the next sync.
    let mut held = false;
    loop {
        if queue.is_empty() || held {
            let next = if held {
                rx.recv_timeout(BUDGET_POLL)
            } else {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            };
            match next {
                Ok(job) => take(&mut queue, &shared, job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        rx.try_iter().for_each(|j| take(&mut queue, &shared, j));
        // Small rounds while a sync runs that nothing written waits for yet: write them
        // once it ends (or a big round arrives), all at once, for the sync after it.
        if late && !held && queue.bytes < LATE_ROUND_BYTES {
            let mut w = shared.lock();
            if w.ended != w.epoch && w.completions.is_empty() {
                let ended = w.ended;
                while w.ended == ended
                    && queue.bytes + shared.unread.load(Ordering::SeqCst) < LATE_ROUND_BYTES
                {
                    w = shared.wait(w);
                }
                continue;
            }
        }
        let now = Instant::now();
        queue.tenants.keys().for_each(|t| activity.saw(t, now));
        let synced = shared.lock().epoch;
        if synced != epoch {
            epoch = synced;
            spent.clear();
        }
        // Every queued tenant was just seen, so more than one writer means others write too.
        let full = if activity.writers(now) > 1 {
            budget.shared
        } else {
            budget.alone
        };
        let mut batch = queue.round(|t| {
            (
                full.saturating_sub(spent.get(t).copied().unwrap_or(0)),
                full,
            )
        });
        held = batch.is_empty() && !queue.is_empty();
        if batch.is_empty() {
            continue;
        }
        for j in &batch {
            if let Some(t) = &j.tenant {
                *spent.entry(t.clone()).or_default() += j.bytes().max(1);
            }
        }
        let started = Instant::now();
        let written = write_round(log.as_ref(), &batch);
        timed(
            "phoenix_log_write_seconds",
            "slow log write",
            started,
            batch.len(),
        );
        let done = batch.drain(..).map(|j| j.done);
        match written {
            // Written before the syncer can take it, so the fsync that takes it covers it.
            Ok(()) => {
                shared.lock().completions.extend(done);
                shared.changed.notify_all();
            }
            // Nothing went to the syncer, so no sync will open a new budget: this round's
            // bytes do not count (the tenants' next jobs fail or land without waiting).
            Err(e) => {
                done.for_each(|d| d(Err(e.clone())));
                spent.clear();
            }
        }
    }
    shared.lock().closed = true;
    shared.changed.notify_all();
}

/// Queue a job the writer received.
fn take(queue: &mut Queue, shared: &Shared, job: Job) {
    shared.unread.fetch_sub(job.bytes(), Ordering::SeqCst);
    queue.push(job);
}

/// How often a writer whose queued tenants have all spent their budget looks for the next
/// sync (or a job of another tenant).
const BUDGET_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// A round smaller than this, while a sync runs and nothing is yet written for the next
/// one, waits for that sync's end (unless the log's appends overlap its syncs). A bigger
/// one (a bulk request, a flood) is written at once, overlapping the sync.
const LATE_ROUND_BYTES: usize = 16 * 1024;

/// Record a stage's time since `started` in `histogram`; log it when it was [`SLOW`].
fn timed(histogram: &'static str, slow: &'static str, started: Instant, requests: usize) {
    let took = started.elapsed();
    metrics::histogram!(histogram).record(took.as_secs_f64());
    if took >= SLOW {
        tracing::warn!(ms = took.as_millis() as u64, requests, "{slow}");
    }
}

/// The syncer: one fsync for everything written so far, then its completions.
fn sync_rounds(log: Arc<dyn EventLog>, shared: Arc<Shared>) {
    loop {
        let mut batch = {
            let mut w = shared.lock();
            while w.completions.is_empty() && !w.closed {
                w = shared.wait(w);
            }
            if w.completions.is_empty() {
                return;
            }
            w.epoch += 1;
            std::mem::take(&mut w.completions)
        };
        let started = Instant::now();
        let result = log.sync();
        {
            let mut w = shared.lock();
            w.ended = w.epoch;
        }
        shared.changed.notify_all();
        timed("phoenix_fsync_seconds", "slow fsync", started, batch.len());
        metrics::histogram!("phoenix_fsync_batch_size").record(batch.len() as f64);
        metrics::counter!("phoenix_fsyncs_total").increment(1);
        for done in batch.drain(..) {
            done(result.clone());
        }
    }
}

/// A record being assembled for one tenant.
struct Pending<'a> {
    first_seq: u64,
    bytes: usize,
    entries: Vec<NewEntry<'a>>,
}

/// Write every append of the round: per tenant, runs of consecutive positions packed into
/// records of at most `MAX_RECORD_BYTES` (at least one event each). Stops at the first error.
fn write_round(log: &dyn EventLog, jobs: &[Job]) -> Result<(), EngineError> {
    let mut open: HashMap<&str, Pending<'_>> = HashMap::new();
    for a in jobs.iter().filter_map(|j| j.append.as_ref()) {
        for (i, e) in a.events.iter().enumerate() {
            let seq = a.first_seq + i as u64;
            let len = e.json.len() + e.event_id.len();
            let entry = (a.accepted_ms, e.event_id.as_str(), e.json.as_str());
            match open.get_mut(&*a.tenant) {
                Some(p)
                    if p.first_seq + p.entries.len() as u64 == seq
                        && p.bytes + len <= MAX_RECORD_BYTES =>
                {
                    p.bytes += len;
                    p.entries.push(entry);
                }
                _ => {
                    let next = Pending {
                        first_seq: seq,
                        bytes: len,
                        entries: vec![entry],
                    };
                    if let Some(full) = open.insert(&a.tenant, next) {
                        log.append(&a.tenant, full.first_seq, &full.entries)?;
                    }
                }
            }
        }
    }
    for (tenant, p) in open {
        log.append(tenant, p.first_seq, &p.entries)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledLog;
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// Records what `write_round` asks of the log.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Record>>);

    /// One `append`: tenant, first position, `(accepted_ms, event_id)` per event.
    type Record = (String, u64, Vec<(i64, String)>);

    impl EventLog for Recorder {
        fn append(&self, t: &str, s: u64, ev: &[NewEntry<'_>]) -> Result<(), EngineError> {
            let ev = ev.iter().map(|(m, id, _)| (*m, id.to_string())).collect();
            self.0.lock().unwrap().push((t.into(), s, ev));
            Ok(())
        }
        fn sync(&self) -> Result<(), EngineError> {
            Ok(())
        }
        fn read_from(
            &self,
            _: &str,
            _: u64,
            _: usize,
        ) -> Result<Vec<crate::LogEntry>, EngineError> {
            unimplemented!()
        }
        fn next_seq(&self, _: &str) -> Result<u64, EngineError> {
            unimplemented!()
        }
        fn recent_ids(&self, _: &str, _: i64) -> Result<Vec<(String, u64, i64)>, EngineError> {
            unimplemented!()
        }
        fn healthy(&self) -> bool {
            true
        }
    }

    fn ev(id: String, pad: usize) -> Event {
        Event {
            event_id: id,
            event_type: "t".into(),
            user_id: "u".into(),
            occurred_at: chrono::Utc::now(),
            json: "x".repeat(pad),
        }
    }

    fn job(tenant: &str, first_seq: u64, ms: i64, sizes: &[usize]) -> Job {
        let events = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| ev(format!("{tenant}{}", first_seq + i as u64), *s))
            .collect();
        let append = Append {
            tenant: tenant.into(),
            first_seq,
            accepted_ms: ms,
            events,
        };
        Job::new(Some(tenant.into()), Some(append), Box::new(|_| {}))
    }

    proptest! {
        /// Whatever the round looks like, each tenant's events come out once, in position
        /// order, each at its own position and acceptance time, in records within the size
        /// limit (unless one event alone is bigger), each record a run of consecutive
        /// positions.
        #[test]
        fn rounds_pack_in_order(
            reqs in proptest::collection::vec((0usize..3, proptest::collection::vec(0usize..40_000, 0..5)), 0..30),
        ) {
            let tenants = ["a", "b", "c"];
            let mut next = [1u64; 3];
            let mut jobs = Vec::new();
            let mut want: HashMap<String, Vec<(u64, i64, String)>> = HashMap::new();
            for (k, (t, sizes)) in reqs.iter().enumerate() {
                let ms = k as i64;
                jobs.push(job(tenants[*t], next[*t], ms, sizes));
                for i in 0..sizes.len() as u64 {
                    let seq = next[*t] + i;
                    want.entry(tenants[*t].into()).or_default().push((seq, ms, format!("{}{seq}", tenants[*t])));
                }
                next[*t] += sizes.len() as u64;
            }
            // A job without an append (a plain "wait for durability") may sit anywhere.
            jobs.push(Job::new(None, None, Box::new(|_| {})));
            let rec = Recorder::default();
            write_round(&rec, &jobs).unwrap();
            let mut got: HashMap<String, Vec<(u64, i64, String)>> = HashMap::new();
            let sizes: HashMap<String, usize> = jobs.iter().filter_map(|j| j.append.as_ref())
                .flat_map(|a| a.events.iter().map(|e| (e.event_id.clone(), e.json.len() + e.event_id.len())))
                .collect();
            let mut records = rec.0.into_inner().unwrap();
            records.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            for (t, first, evs) in records {
                prop_assert!(!evs.is_empty());
                let total: usize = evs.iter().map(|(_, id)| sizes[id]).sum();
                prop_assert!(evs.len() == 1 || total <= MAX_RECORD_BYTES);
                for (i, (ms, id)) in evs.into_iter().enumerate() {
                    got.entry(t.clone()).or_default().push((first + i as u64, ms, id));
                }
            }
            prop_assert_eq!(got, want);
        }
    }

    fn ids(jobs: &[Job]) -> Vec<String> {
        jobs.iter()
            .map(|j| match &j.append {
                Some(a) => a.events[0].event_id.clone(),
                None => format!("barrier:{}", j.tenant.as_deref().unwrap_or("*")),
            })
            .collect()
    }

    /// A flood of one tenant is spread over rounds of bounded size; another tenant's single
    /// event goes out in the first round, and each tenant's order is kept.
    #[test]
    fn a_flood_cannot_hold_back_another_tenants_event() {
        let mut q = Queue::default();
        for s in 1..=100u64 {
            q.push(job("a", s, 0, &[1000]));
        }
        q.push(job("b", 1, 0, &[10]));
        let first = q.round(|_| (10_100, 10_100));
        let first_ids = ids(&first);
        assert!(first_ids.contains(&"b1".to_string()), "{first_ids:?}");
        let a: Vec<&String> = first_ids.iter().filter(|i| i.starts_with('a')).collect();
        assert_eq!(a.len(), 10, "10 KB of a's events per round");
        assert_eq!(a[0], "a1");
        let mut seen = a.len();
        let mut rounds = 1;
        while !q.is_empty() {
            let r = ids(&q.round(|_| (10_100, 10_100)));
            assert!(r.len() <= 10);
            assert_eq!(r[0], format!("a{}", seen + 1), "in order");
            seen += r.len();
            rounds += 1;
        }
        assert_eq!((seen, rounds), (100, 10));
    }

    /// One job bigger than the limit still goes (alone); a tenant's "durable so far" waits in
    /// its queue; a global barrier waits for everything queued before it.
    #[test]
    fn barriers_wait_for_what_came_before() {
        let mut q = Queue::default();
        q.push(job("a", 1, 0, &[50_000]));
        q.push(job("a", 2, 0, &[10]));
        q.push(Job::new(Some("a".into()), None, Box::new(|_| {})));
        q.push(Job::new(None, None, Box::new(|_| {})));
        q.push(job("b", 1, 0, &[10]));
        let mut first = ids(&q.round(|_| (1_000, 1_000)));
        first.sort();
        assert_eq!(first, ["a1", "b1"]);
        let second = ids(&q.round(|_| (1_000, 1_000)));
        assert_eq!(second, ["a2", "barrier:a", "barrier:*"]);
        assert!(q.is_empty());
    }

    /// Single-event requests of one round share a record.
    #[test]
    fn small_requests_share_one_record() {
        let rec = Recorder::default();
        let jobs: Vec<Job> = (1..=50).map(|s| job("a", s, s as i64, &[300])).collect();
        write_round(&rec, &jobs).unwrap();
        let records = rec.0.into_inner().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].1, 1);
        assert_eq!(records[0].2.len(), 50);
    }

    /// Completions run only after the round is written and synced, and see what is in the
    /// log.
    #[test]
    fn completion_runs_after_the_round_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path(), 1 << 20).unwrap());
        let committer = Committer::start(
            log.clone(),
            Budget {
                shared: 1 << 20,
                alone: 1 << 20,
            },
        );
        let (tx, rx) = std::sync::mpsc::channel();
        for s in 1..=3u64 {
            let tx = tx.clone();
            let reader = log.clone();
            let Job { append, .. } = job("a", s, 7, &[10]);
            committer.append(
                append.unwrap(),
                Box::new(move |r| {
                    r.unwrap();
                    tx.send(reader.read_from("a", s, 1).unwrap()[0].event_id.clone())
                        .unwrap();
                }),
            );
        }
        let got: Vec<String> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(got, vec!["a1", "a2", "a3"]);
        assert_eq!(log.next_seq("a").unwrap(), 4);
    }
}

#[cfg(test)]
mod budget_tests;
