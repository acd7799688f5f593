//! `Feed`: one reader per tenant. It follows the tenant's durable head, reads each log entry
//! once, decodes it once, keeps the decoded entries (shared, `Arc`) in a bounded buffer, and
//! wakes only the boards whose rules can match an entry's type. Boards take their entries
//! from the buffer instead of each re-reading and re-parsing the log; a board that has
//! nothing to match since its position jumps straight to the feed's position; a board
//! further behind than the buffer (one being rebuilt) reads the log itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::leaderboard::definition::Definition;
use crate::leaderboard::expr::{path_number, Known};
use crate::leaderboard::state::Facts;
use crate::store::{EventLog, LogEntry};
use crate::throttle::LogThrottle;

/// Log entries the reader takes from the store per read.
const READ_CHUNK: usize = 1024;

static UNDECODABLE_LOG: LogThrottle = LogThrottle::new(10, Duration::from_secs(60));
static READ_ERROR_LOG: LogThrottle = LogThrottle::new(5, Duration::from_secs(60));
static LEFT_BEHIND_LOG: LogThrottle = LogThrottle::new(5, Duration::from_secs(60));

/// One log entry, decoded once for every board of the tenant.
#[derive(Debug)]
pub struct Decoded {
    pub seq: u64,
    pub accepted_ms: i64,
    /// `None` when the entry could not be decoded (counted and logged where it was read).
    pub event: Option<Value>,
    /// The event's `type`, `actor.user_id` and `occurred_at`, taken out once here for every
    /// board (a JSON object lookup compares keys byte by byte; 100 boards made it a third of
    /// the board thread).
    pub ty: Option<Box<str>>,
    pub user: Option<Box<str>>,
    pub at: Option<DateTime<Utc>>,
    /// The points-expression paths of the tenant's boards when the entry was decoded, and what
    /// each gives the event ([`path_number`]): read once here instead of once per board.
    pub paths: Arc<[Box<str>]>,
    pub numbers: Box<[Option<f64>]>,
    /// `accepted_ms` as an instant (`None` out of chrono's range).
    pub accepted: Option<DateTime<Utc>>,
}

impl Decoded {
    /// Decode `e`; an undecodable entry is counted in `phoenix_log_undecodable_total` under
    /// `consumer` and logged at error level (throttled), never skipped silently.
    pub fn from_entry(tenant: &str, consumer: &'static str, e: LogEntry) -> Decoded {
        Decoded::with_paths(tenant, consumer, e, Arc::from([]))
    }

    /// [`Decoded::from_entry`] that also reads `paths` (see [`Decoded::paths`]).
    pub fn with_paths(
        tenant: &str,
        consumer: &'static str,
        e: LogEntry,
        paths: Arc<[Box<str>]>,
    ) -> Decoded {
        let event = match crate::event::decode(&e.json) {
            Ok(v) => Some(v),
            Err(err) => {
                undecodable(tenant, consumer, e.seq, &err.to_string());
                None
            }
        };
        let facts = event.as_ref().map(Facts::of);
        let (ty, user, at) = match facts {
            Some(f) => (f.ty.map(Box::from), f.user.map(Box::from), f.at),
            None => (None, None, None),
        };
        let numbers = match &event {
            Some(v) => paths.iter().map(|p| path_number(v, p)).collect(),
            None => Box::from([]),
        };
        Decoded {
            seq: e.seq,
            accepted_ms: e.accepted_ms,
            event,
            ty,
            user,
            at,
            paths,
            numbers,
            accepted: Utc.timestamp_millis_opt(e.accepted_ms).single(),
        }
    }

    /// The event's `type`, if it has one.
    pub fn event_type(&self) -> Option<&str> {
        self.ty.as_deref()
    }

    /// What every board reads of the event besides its rules' paths.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            ty: self.ty.as_deref(),
            user: self.user.as_deref(),
            at: self.at,
            known: Known::new(&self.paths, &self.numbers),
            accepted: self.accepted,
        }
    }
}

/// Count and log a log entry a consumer could not decode.
pub fn undecodable(tenant: &str, consumer: &'static str, seq: u64, error: &str) {
    metrics::counter!("phoenix_log_undecodable_total", "consumer" => consumer, "tenant" => tenant.to_owned())
        .increment(1);
    if let Some(suppressed) = UNDECODABLE_LOG.allow() {
        tracing::error!(
            tenant,
            consumer,
            seq,
            error,
            suppressed,
            "log entry cannot be decoded; it scores nothing"
        );
    }
}

/// Most distinct points-expression paths a feed reads for its boards; a board's paths past it
/// are read by the board itself.
pub const MAX_FEED_PATHS: usize = 32;

/// The event types a board's rules can match: exact names, `prefix.*` families, or `*`; and
/// the event paths its points expressions read (which the feed reads once for every board).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
    paths: Vec<String>,
}

impl TypeFilter {
    pub fn of(def: &Definition) -> TypeFilter {
        let mut f = TypeFilter::default();
        for r in &def.rules {
            for p in r.points.paths() {
                if !f.paths.iter().any(|q| q == p) {
                    f.paths.push(p.to_owned());
                }
            }
            match r.event_type.strip_suffix('*') {
                Some("") => f.all = true,
                Some(prefix) => f.prefixes.push(prefix.to_owned()),
                None => {
                    f.exact.insert(r.event_type.clone());
                }
            }
        }
        // A tournament board applies its own joins and leaves, whatever its rules match.
        if def.entry.is_some() {
            f.exact
                .insert(crate::leaderboard::members::MEMBER_JOINED.to_owned());
            f.exact
                .insert(crate::leaderboard::members::MEMBER_LEFT.to_owned());
        }
        f
    }

    /// Whether an event of type `ty` can score on the board (same rule as
    /// [`crate::leaderboard::matcher::event_type_matches`]).
    pub fn wants(&self, ty: &str) -> bool {
        self.all
            || self.exact.contains(ty)
            || self
                .prefixes
                .iter()
                .any(|p| ty.len() > p.len() && ty.starts_with(p.as_str()))
    }
}

/// Called to wake a board; `false` once the board is gone (it is then dropped).
pub type Wake = Box<dyn Fn() -> bool + Send + Sync>;

/// What a board at position `applied` should do next.
pub enum Plan {
    /// Nothing it can match lies in `(applied, to]`: move there (and the watermark to
    /// `accepted_ms`).
    Skip { to: u64, accepted_ms: i64 },
    /// The next decoded entries after `applied` (empty when caught up with the feed).
    Entries(Vec<Arc<Decoded>>),
    /// `applied` is older than the buffer: read the log directly.
    Cold,
}

struct Board {
    token: u64,
    filter: TypeFilter,
    wake: Wake,
    /// Entries after this position are tracked for this board.
    since: u64,
    /// Last tracked position that the board's filter wants (0 = none yet).
    last_wanted: u64,
    /// The position the board last reported (`plan`), `None` before its first.
    applied: Option<u64>,
}

struct State {
    buf: VecDeque<Arc<Decoded>>,
    /// Last position read and decoded; `buf` ends there.
    read: u64,
    /// Latest acceptance time read.
    accepted_ms: i64,
    boards: HashMap<String, Board>,
    next_token: u64,
    /// The boards' points-expression paths (at most [`MAX_FEED_PATHS`]), read as entries are
    /// decoded.
    paths: Arc<[Box<str>]>,
}

impl State {
    /// Recompute `paths` from the registered boards (first come, first kept), and report how
    /// many are read in `phoenix_feed_paths{tenant}`.
    fn refresh_paths(&mut self, tenant: &str) {
        let mut paths: Vec<Box<str>> = Vec::new();
        let mut boards: Vec<&Board> = self.boards.values().collect();
        boards.sort_by_key(|b| b.token);
        for p in boards.iter().flat_map(|b| &b.filter.paths) {
            if paths.len() == MAX_FEED_PATHS {
                break;
            }
            if !paths.iter().any(|q| **q == **p) {
                paths.push(p.as_str().into());
            }
        }
        metrics::gauge!("phoenix_feed_paths", "tenant" => tenant.to_owned())
            .set(paths.len() as f64);
        if *paths != *self.paths {
            self.paths = paths.into();
        }
    }
}

/// A tenant's reader. Created by the engine per tenant; boards register with it.
pub struct Feed {
    tenant: String,
    capacity: usize,
    state: Mutex<State>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Signalled when a board reports progress: the reader may be waiting for room.
    progress: tokio::sync::Notify,
}

/// Longest the reader waits for a board that its next read would push out of the buffer;
/// after that the board is left behind (it then reads the log itself).
const MAX_WAIT_FOR_BOARD: Duration = Duration::from_secs(2);

impl Feed {
    /// Start reading `tenant`'s log after its current durable head (earlier entries are read
    /// by the boards that need them), keeping the last `capacity` entries decoded.
    pub fn start(
        tenant: &str,
        log: Arc<dyn EventLog>,
        head: watch::Receiver<u64>,
        capacity: usize,
        runtime: &tokio::runtime::Handle,
    ) -> Arc<Feed> {
        let read = *head.borrow();
        let feed = Arc::new(Feed {
            tenant: tenant.to_owned(),
            capacity: capacity.max(1),
            state: Mutex::new(State {
                buf: VecDeque::new(),
                read,
                accepted_ms: i64::MIN,
                boards: HashMap::new(),
                next_token: 1,
                paths: Arc::from([]),
            }),
            task: Mutex::new(None),
            progress: tokio::sync::Notify::new(),
        });
        let task = runtime.spawn(follow(Arc::downgrade(&feed), log, head));
        *feed.task.lock().expect("feed task") = Some(task);
        metrics::gauge!("phoenix_feed_buffered", "tenant" => tenant.to_owned()).set(0.0);
        metrics::gauge!("phoenix_feed_paths", "tenant" => tenant.to_owned()).set(0.0);
        feed
    }

    /// Stop the reader.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().expect("feed task").take() {
            t.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register board `id` (replacing an earlier incarnation); returns its token.
    pub fn register(&self, id: &str, filter: TypeFilter, wake: Wake) -> u64 {
        let mut s = self.lock();
        let token = s.next_token;
        s.next_token += 1;
        let since = s.read;
        s.boards.insert(
            id.to_owned(),
            Board {
                token,
                filter,
                wake,
                since,
                last_wanted: 0,
                applied: None,
            },
        );
        s.refresh_paths(&self.tenant);
        token
    }

    /// Drop board `id` if `token` is still its registration.
    pub fn unregister(&self, id: &str, token: u64) {
        let mut s = self.lock();
        if s.boards.get(id).is_some_and(|b| b.token == token) {
            s.boards.remove(id);
            s.refresh_paths(&self.tenant);
        }
    }

    /// Last position the feed has decoded.
    pub fn read(&self) -> u64 {
        self.lock().read
    }

    /// What board `id` (token `token`) at position `applied` does next; at most `max`
    /// entries.
    pub fn plan(&self, id: &str, token: u64, applied: u64, max: usize) -> Plan {
        let mut s = self.lock();
        if let Some(b) = s.boards.get_mut(id).filter(|b| b.token == token) {
            b.applied = Some(applied);
            self.progress.notify_one();
        }
        if applied >= s.read {
            return Plan::Entries(Vec::new());
        }
        if let Some(b) = s.boards.get(id).filter(|b| b.token == token) {
            if applied >= b.since && b.last_wanted <= applied {
                return Plan::Skip {
                    to: s.read,
                    accepted_ms: s.accepted_ms,
                };
            }
        }
        let first = s.read + 1 - s.buf.len() as u64;
        if applied + 1 < first {
            return Plan::Cold;
        }
        let skip = usize::try_from(applied + 1 - first).unwrap_or(usize::MAX);
        Plan::Entries(s.buf.iter().skip(skip).take(max).cloned().collect())
    }

    /// How many entries after `read` the reader may decode now without pushing out of the
    /// buffer an entry that a board served from it still needs (`usize::MAX`: no limit).
    /// Boards already older than the buffer (rebuilding from the log) do not hold it back.
    fn room(&self) -> usize {
        let s = self.lock();
        let first = s.read + 1 - s.buf.len() as u64;
        let slowest = s
            .boards
            .values()
            // Boards with nothing to match after their position skip ahead whatever is
            // evicted (and are not woken, so they report nothing).
            .filter(|b| b.applied.is_some_and(|a| b.last_wanted > a || a < b.since))
            .filter_map(|b| b.applied)
            .filter(|a| a + 1 >= first && *a < s.read)
            .min();
        match slowest {
            Some(a) => usize::try_from((a + self.capacity as u64).saturating_sub(s.read))
                .unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }

    /// The paths entries are read for now.
    fn paths(&self) -> Arc<[Box<str>]> {
        self.lock().paths.clone()
    }

    /// Whether no board is registered (then nothing needs decoding).
    fn idle(&self) -> bool {
        self.lock().boards.is_empty()
    }

    /// Move to `to` without decoding, if still no board is registered: the buffer empties
    /// (it must end at `read`), so a board registering later reads the log itself up to
    /// there. `false` (nothing changed) when a board registered meanwhile.
    fn skip_to(&self, to: u64, accepted_ms: Option<i64>) -> bool {
        let mut s = self.lock();
        if !s.boards.is_empty() || to <= s.read {
            return to <= s.read;
        }
        s.read = to;
        s.buf.clear();
        if let Some(ms) = accepted_ms {
            s.accepted_ms = s.accepted_ms.max(ms);
        }
        metrics::gauge!("phoenix_feed_buffered", "tenant" => self.tenant.clone()).set(0.0);
        true
    }

    /// Add decoded entries (consecutive, after `read`) and wake the boards they concern.
    fn push(&self, entries: Vec<Decoded>) {
        let Some(last) = entries.last() else {
            return;
        };
        let last_seq = last.seq;
        let mut woken: Vec<String> = Vec::new();
        {
            let mut s = self.lock();
            {
                let types: HashSet<&str> = entries.iter().filter_map(Decoded::event_type).collect();
                for (id, b) in s.boards.iter_mut() {
                    if types.iter().any(|t| b.filter.wants(t)) {
                        b.last_wanted = last_seq;
                        woken.push(id.clone());
                    }
                }
            }
            for e in entries {
                s.accepted_ms = s.accepted_ms.max(e.accepted_ms);
                s.read = e.seq;
                s.buf.push_back(Arc::new(e));
            }
            while s.buf.len() > self.capacity {
                s.buf.pop_front();
            }
            metrics::gauge!("phoenix_feed_buffered", "tenant" => self.tenant.clone())
                .set(s.buf.len() as f64);
            let dead: Vec<String> = woken
                .into_iter()
                .filter(|id| !s.boards.get(id).is_some_and(|b| (b.wake)()))
                .collect();
            if !dead.is_empty() {
                for id in dead {
                    s.boards.remove(&id);
                }
                s.refresh_paths(&self.tenant);
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reader task: whenever the durable head moves, read and decode up to it.
async fn follow(
    feed: std::sync::Weak<Feed>,
    log: Arc<dyn EventLog>,
    mut head: watch::Receiver<u64>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let target = *head.borrow_and_update();
        let Some(f) = feed.upgrade() else { return };
        let read = f.read();
        if read >= target {
            drop(f);
            if head.changed().await.is_err() {
                return;
            }
            continue;
        }
        if f.idle() {
            // No board to hand entries to: nothing is decoded (boards that register later
            // start behind the feed and read the log themselves). Only the newest entry is
            // read, for the acceptance-time watermark.
            match log.read_from(&f.tenant, target, 1) {
                Ok(last) if f.skip_to(target, last.first().map(|e| e.accepted_ms)) => continue,
                Ok(_) => {}
                Err(e) => {
                    if let Some(suppressed) = READ_ERROR_LOG.allow() {
                        tracing::error!(tenant = %f.tenant, error = %e, suppressed, "feed could not read the log; retrying");
                    }
                }
            }
        }
        // Keep the boards served from the buffer: one decode per event for all of them holds
        // only while none falls out of it, so the reader waits (bounded) for the slowest.
        let mut room = f.room();
        if room == 0 {
            let waited = tokio::time::timeout(MAX_WAIT_FOR_BOARD, f.progress.notified()).await;
            room = f.room();
            if room == 0 {
                if waited.is_ok() {
                    continue;
                }
                if let Some(suppressed) = LEFT_BEHIND_LOG.allow() {
                    tracing::warn!(tenant = %f.tenant, read, suppressed, "a board made no progress for 2 s; the feed reads on and the board will read the log itself");
                }
                room = READ_CHUNK;
            }
        }
        match log.read_from(&f.tenant, read + 1, READ_CHUNK.min(room)) {
            Ok(entries) => {
                backoff = Duration::from_millis(100);
                let paths = f.paths();
                let decoded: Vec<Decoded> = entries
                    .into_iter()
                    .take_while(|e| e.seq <= target)
                    .map(|e| Decoded::with_paths(&f.tenant, "leaderboard", e, paths.clone()))
                    .collect();
                if decoded.is_empty() || decoded[0].seq != read + 1 {
                    // The durable head says more is logged than the store returns: a fault.
                    if let Some(suppressed) = READ_ERROR_LOG.allow() {
                        tracing::error!(tenant = %f.tenant, read, target, suppressed, "log read returned no entry at the next position");
                    }
                    drop(f);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                f.push(decoded);
            }
            Err(e) => {
                if let Some(suppressed) = READ_ERROR_LOG.allow() {
                    tracing::error!(tenant = %f.tenant, error = %e, suppressed, "feed could not read the log; retrying");
                }
                drop(f);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        // A long backlog is read in chunks; let other tenants' work run in between.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(types: &[&str]) -> TypeFilter {
        let rules: Vec<Value> = types
            .iter()
            .map(|t| json!({"event_type": t, "points_expression": "1"}))
            .collect();
        TypeFilter::of(&Definition::from_json("b", &json!({ "rules": rules })).unwrap())
    }

    fn scoring(id: &str, expr: &str) -> TypeFilter {
        let def = json!({"rules": [{"event_type": "x", "points_expression": expr}]});
        TypeFilter::of(&Definition::from_json(id, &def).unwrap())
    }

    /// The feed reads the union of its boards' expression paths (each once, capped), and the
    /// entries it decodes carry what each path gives.
    #[test]
    fn entries_carry_the_boards_expression_paths() {
        let f = feed(8);
        let a = f.register("a", scoring("a", "attrs.score * 2"), Box::new(|| true));
        f.register(
            "b",
            scoring("b", "attrs.score + attrs.bonus"),
            Box::new(|| true),
        );
        assert_eq!(&*f.paths(), &["attrs.score".into(), "attrs.bonus".into()]);
        let e = LogEntry {
            seq: 1,
            accepted_ms: 0,
            event_id: "e".into(),
            json: r#"{"type":"x","attrs":{"score":4,"bonus":"no","x":1}}"#.into(),
        };
        let d = Decoded::with_paths("t", "leaderboard", e, f.paths());
        assert_eq!(&*d.numbers, &[Some(4.0), None]);
        f.unregister("a", a);
        assert_eq!(&*f.paths(), &["attrs.score".into(), "attrs.bonus".into()]);
        let many: Vec<String> = (0..MAX_FEED_PATHS + 5)
            .map(|i| format!("attrs.p{i}"))
            .collect();
        f.register("c", scoring("c", &many.join(" + ")), Box::new(|| true));
        assert_eq!(f.paths().len(), MAX_FEED_PATHS);
        assert_eq!(
            &f.paths()[..2],
            &["attrs.score".into(), "attrs.bonus".into()]
        );
    }

    #[test]
    fn filters_agree_with_the_rule_matcher() {
        use crate::leaderboard::matcher::event_type_matches;
        let pats = ["*", "match.*", "match.completed", "a", "x.y.*"];
        let types = [
            "match",
            "match.",
            "match.completed",
            "match.won",
            "a",
            "ab",
            "x.y.z",
            "x.y",
            "",
        ];
        for p in pats {
            let f = filter(&[p]);
            for t in types {
                assert_eq!(f.wants(t), event_type_matches(p, t), "{p} vs {t}");
            }
        }
        let both = filter(&["a", "match.*"]);
        assert!(both.wants("a") && both.wants("match.x") && !both.wants("b"));
    }

    fn entry(seq: u64, ty: &str) -> Decoded {
        Decoded {
            seq,
            accepted_ms: seq as i64,
            event: Some(json!({"type": ty})),
            ty: Some(ty.into()),
            user: None,
            at: None,
            paths: Arc::from([]),
            numbers: Box::from([]),
            accepted: None,
        }
    }

    fn feed(capacity: usize) -> Feed {
        Feed {
            tenant: "t".into(),
            capacity,
            state: Mutex::new(State {
                buf: VecDeque::new(),
                read: 0,
                accepted_ms: i64::MIN,
                boards: HashMap::new(),
                next_token: 1,
                paths: Arc::from([]),
            }),
            task: Mutex::new(None),
            progress: tokio::sync::Notify::new(),
        }
    }

    #[test]
    fn only_boards_that_can_match_are_woken_and_others_skip() {
        let f = feed(100);
        let woke = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let w = woke.clone();
        let a = f.register(
            "a",
            filter(&["match.*"]),
            Box::new(move || {
                w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            }),
        );
        let b = f.register(
            "b",
            filter(&["quest.done"]),
            Box::new(|| panic!("not woken")),
        );
        f.push(vec![entry(1, "match.won"), entry(2, "match.lost")]);
        assert_eq!(woke.load(std::sync::atomic::Ordering::SeqCst), 1);
        match f.plan("a", a, 0, 10) {
            Plan::Entries(e) => assert_eq!(e.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2]),
            _ => panic!("a has entries to apply"),
        }
        match f.plan("b", b, 0, 10) {
            Plan::Skip { to, accepted_ms } => assert_eq!((to, accepted_ms), (2, 2)),
            _ => panic!("b has nothing to match"),
        }
        assert!(matches!(f.plan("a", a, 2, 10), Plan::Entries(e) if e.is_empty()));
    }

    #[test]
    fn the_buffer_is_bounded_and_older_positions_read_cold() {
        let f = feed(3);
        let t = f.register("a", filter(&["*"]), Box::new(|| true));
        f.push((1..=5).map(|s| entry(s, "x")).collect());
        assert_eq!(f.lock().buf.len(), 3);
        assert!(matches!(f.plan("a", t, 1, 10), Plan::Cold));
        match f.plan("a", t, 2, 1) {
            Plan::Entries(e) => assert_eq!(e[0].seq, 3),
            _ => panic!("3 is buffered"),
        }
        // A stale token (an earlier incarnation) gets no skip and cannot unregister.
        f.unregister("a", t + 7);
        assert!(f.lock().boards.contains_key("a"));
    }

    /// With no board registered the feed moves on without decoding; a board registering
    /// later reads what it skipped from the log and what follows from the buffer.
    #[test]
    fn a_feed_without_boards_skips_and_a_later_board_reads_cold() {
        let f = feed(10);
        f.push(vec![entry(1, "x")]);
        assert!(f.idle());
        assert!(f.skip_to(5, Some(5)));
        let s = f.lock();
        assert_eq!((s.read, s.buf.len(), s.accepted_ms), (5, 0, 5));
        drop(s);
        assert!(f.skip_to(4, None), "already past: nothing to do");
        let t = f.register("a", filter(&["*"]), Box::new(|| true));
        assert!(!f.idle());
        assert!(!f.skip_to(8, Some(8)), "a registered board stops skipping");
        assert_eq!(f.read(), 5);
        assert!(matches!(f.plan("a", t, 0, 10), Plan::Cold));
        f.push(vec![entry(6, "x")]);
        match f.plan("a", t, 5, 10) {
            Plan::Entries(e) => assert_eq!(e.iter().map(|d| d.seq).collect::<Vec<_>>(), [6]),
            _ => panic!("6 is buffered"),
        }
    }

    /// End to end over a real log: the reader skips while no board listens, then decodes.
    #[tokio::test]
    async fn the_reader_skips_while_idle_and_decodes_once_a_board_listens() {
        use crate::store::SledLog;
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path(), 1 << 20).unwrap());
        let append = |seq: u64| {
            let json = format!(r#"{{"event_id":"e{seq}","type":"x"}}"#);
            log.append("t", seq, &[(seq as i64 * 10, &format!("e{seq}"), &json)])
                .unwrap();
        };
        let (head, rx) = watch::channel(0u64);
        let f = Feed::start("t", log.clone(), rx, 10, &tokio::runtime::Handle::current());
        for seq in 1..=3 {
            append(seq);
        }
        head.send(3).unwrap();
        let wait_for = |want: u64| {
            let f = f.clone();
            async move {
                for _ in 0..500 {
                    if f.read() >= want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                panic!("feed never reached {want}");
            }
        };
        wait_for(3).await;
        {
            let s = f.lock();
            assert_eq!((s.buf.len(), s.accepted_ms), (0, 30));
        }
        let t = f.register("a", filter(&["x"]), Box::new(|| true));
        append(4);
        head.send(4).unwrap();
        wait_for(4).await;
        match f.plan("a", t, 3, 10) {
            Plan::Entries(e) => {
                assert_eq!(e.len(), 1);
                assert_eq!((e[0].seq, e[0].event_type()), (4, Some("x")));
            }
            _ => panic!("4 is decoded and buffered"),
        }
        assert!(matches!(f.plan("a", t, 2, 10), Plan::Cold));
    }

    /// The reader may not decode past what would push a board served from the buffer out of
    /// it; boards rebuilding from the log, or with nothing to match, do not hold it back.
    #[test]
    fn room_is_what_the_slowest_buffered_board_allows() {
        let f = feed(4);
        assert_eq!(f.room(), usize::MAX, "no board");
        let a = f.register("a", filter(&["x"]), Box::new(|| true));
        let q = f.register("q", filter(&["quest"]), Box::new(|| true));
        f.push((1..=4).map(|s| entry(s, "x")).collect());
        assert_eq!(f.room(), usize::MAX, "no report yet");
        assert!(matches!(f.plan("a", a, 1, 10), Plan::Entries(e) if e.len() == 3));
        assert_eq!(
            f.room(),
            1,
            "a still needs 2..=4: one more entry evicts only 1"
        );
        assert!(matches!(f.plan("q", q, 0, 10), Plan::Skip { .. }));
        assert_eq!(f.room(), 1, "q has nothing to match: it does not count");
        assert!(matches!(f.plan("a", a, 3, 10), Plan::Entries(e) if e.len() == 1));
        assert_eq!(f.room(), 3);
        assert!(matches!(f.plan("a", a, 4, 10), Plan::Entries(e) if e.is_empty()));
        assert_eq!(f.room(), usize::MAX, "caught up");
        let r = f.register("r", filter(&["x"]), Box::new(|| true));
        f.push((5..=8).map(|s| entry(s, "x")).collect());
        assert_eq!(f.room(), 0, "a needs 5..=8, all buffered: the reader waits");
        assert!(matches!(f.plan("a", a, 8, 10), Plan::Entries(e) if e.is_empty()));
        assert!(matches!(f.plan("r", r, 0, 10), Plan::Cold));
        assert_eq!(
            f.room(),
            usize::MAX,
            "r is older than the buffer: it reads the log"
        );
    }

    #[test]
    fn a_gone_board_is_dropped_when_woken() {
        let f = feed(10);
        f.register("gone", filter(&["*"]), Box::new(|| false));
        f.push(vec![entry(1, "x")]);
        assert!(f.lock().boards.is_empty());
    }
}
