//! The live state of one leaderboard: per timeframe, the open windows (per-user accumulators
//! plus a rank index), which windows are frozen, and how far into the log it has applied.
//! Pure and synchronous; the actor feeds it log entries in order.
//!
//! Determinism: an event is late for a window when the server time it was *accepted* at
//! (stored in the log) is past the window's end + grace — not the time it is applied — so
//! replaying the log after a crash rebuilds exactly the same standings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use compact_str::CompactString;
use serde_json::Value;

use super::definition::{Aggregation, Definition};
use super::expr::Known;
use super::members::{Decision, Members, MEMBER_JOINED, MEMBER_LEFT};
use super::rank::{RankId, RankIndex, SortOrder, Ties};
use super::schedule::Calendar;
use super::window::{Timeframe, WindowKey};

/// Everything one user contributed to one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acc {
    pub sum: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

impl Acc {
    fn new(p: f64) -> Acc {
        Acc {
            sum: p,
            count: 1,
            min: p,
            max: p,
        }
    }

    /// Add `p` unless the score under `agg` would stop being a finite number (`false`: the
    /// accumulator is unchanged). Sums that only `max`/`min`/`count` boards keep saturate.
    fn try_add(&mut self, p: f64, agg: Aggregation) -> bool {
        let sum = self.sum + p;
        if !sum.is_finite() && matches!(agg, Aggregation::Sum | Aggregation::Avg) {
            return false;
        }
        self.sum = if sum.is_finite() {
            sum
        } else {
            f64::MAX.copysign(sum)
        };
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(p);
        self.max = self.max.max(p);
        true
    }

    /// The user's score in the window under `agg`.
    pub fn score(&self, agg: Aggregation) -> f64 {
        match agg {
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count as f64,
            Aggregation::Max => self.max,
            Aggregation::Min => self.min,
            Aggregation::Avg => self.sum / self.count as f64,
        }
    }
}

/// A window's accumulators by user id. User ids come from clients, so the hasher is seeded
/// per map (foldhash's quality variant: a fraction of SipHash's cost per event and window).
/// An id of up to 24 bytes is stored inside the table's entry: comparing it reads no other
/// cache line.
pub type Accs = HashMap<CompactString, Cell, foldhash::quality::RandomState>;

/// One user's row in a window: what they contributed, and where the window's rank index and
/// its current batch hold them, so that an event costs one hash lookup per window and the
/// batch's end moves the user without looking them up again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub acc: Acc,
    /// The user's handle in `ranks`; `None` until the user is ranked.
    rank: Option<RankId>,
    /// `(batch, index)`: the user's entry in `moves` while `batch` is the window's current one.
    queued: (u32, u32),
}

impl Cell {
    fn new(acc: Acc) -> Cell {
        Cell {
            acc,
            rank: None,
            queued: (0, 0),
        }
    }
}

/// A user whose score changed inside a batch: their final score, and the log position of
/// their last change.
#[derive(Debug)]
struct Move {
    who: Who,
    score: f64,
    seq: u64,
}

/// The user a [`Move`] moves.
#[derive(Debug)]
enum Who {
    Ranked(RankId),
    /// Not in the rank index yet.
    New(Box<str>),
}

/// The users a batch moves, in the order they first changed in it.
#[derive(Debug)]
struct Moves {
    list: Vec<Move>,
    /// The current batch's number: a cell is queued in it when its `queued.0` equals it. It
    /// starts at 1, so a new cell is queued in none.
    batch: u32,
}

impl Moves {
    /// Record that the user of `cell` (named `user`) now scores `score`, changed at `seq`:
    /// queued for the batch's end when `batching`, else moved in `ranks` at once.
    fn note(
        &mut self,
        ranks: &mut RankIndex,
        cell: &mut Cell,
        user: &str,
        (score, seq): (f64, u64),
        batching: bool,
    ) {
        if !batching {
            match cell.rank {
                Some(id) => {
                    ranks.upsert_id(id, score, seq);
                }
                None => cell.rank = ranks.upsert_keeping_id(user, score, seq),
            }
            return;
        }
        let (b, i) = cell.queued;
        if b == self.batch {
            let m = &mut self.list[i as usize];
            m.score = score;
            m.seq = seq;
            return;
        }
        cell.queued = (self.batch, to_u32(self.list.len()));
        let who = match cell.rank {
            Some(id) => Who::Ranked(id),
            None => Who::New(user.into()),
        };
        self.list.push(Move { who, score, seq });
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a batch moves fewer than 2^32 users")
}

/// One open window.
#[derive(Debug)]
pub struct Window {
    pub accs: Accs,
    pub ranks: RankIndex,
    /// Inside a batch ([`BoardState::begin_batch`]): users whose score changed but is not in
    /// `ranks` yet. A user scored many times in one batch costs one rank-index move.
    moves: Moves,
}

impl Window {
    pub(super) fn new(order: SortOrder, ties: Ties) -> Window {
        Window {
            accs: Accs::default(),
            ranks: RankIndex::with_ties(order, ties),
            moves: Moves {
                list: Vec::new(),
                batch: 1,
            },
        }
    }

    /// The log position at which the user of `cell` reached their ranked score (0 while
    /// unranked).
    pub(super) fn reached(&self, cell: &Cell) -> u64 {
        cell.rank.map_or(0, |id| self.ranks.reached_id(id))
    }

    /// Add a user with `acc`, ranked at `score` reached at `reached` (a checkpoint's load).
    pub(super) fn load(&mut self, user: &str, acc: Acc, score: f64, reached: u64) {
        let mut cell = Cell::new(acc);
        cell.rank = self.ranks.upsert_keeping_id(user, score, reached);
        self.accs.insert(user.into(), cell);
    }

    /// Move every queued user to their final score in `ranks`, and start a new batch.
    fn flush(&mut self) {
        for m in self.moves.list.drain(..) {
            match m.who {
                Who::Ranked(id) => {
                    self.ranks.upsert_id(id, m.score, m.seq);
                }
                Who::New(user) => {
                    let id = self.ranks.upsert_keeping_id(&user, m.score, m.seq);
                    if let Some(cell) = self.accs.get_mut(&*user) {
                        cell.rank = id;
                    }
                }
            }
        }
        self.moves.batch = match self.moves.batch.checked_add(1) {
            Some(b) => b,
            None => {
                // Every 2^32 batches: forget every cell's old batch so none is taken as
                // queued in a new batch with the same number.
                for c in self.accs.values_mut() {
                    c.queued = (0, 0);
                }
                1
            }
        };
    }
}

/// What every board reads of an event besides its rules' paths, taken out of it once per
/// event (the feed does it when it decodes the entry) instead of once per board.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub ty: Option<&'a str>,
    pub user: Option<&'a str>,
    pub at: Option<DateTime<Utc>>,
    /// Expression paths already read (none when the facts come from [`Facts::of`]).
    pub known: Known<'a>,
    /// The acceptance time as an instant, when already converted (it is the same for every
    /// board).
    pub accepted: Option<DateTime<Utc>>,
}

impl<'a> Facts<'a> {
    /// `type`, `actor.user_id` and `occurred_at` (RFC 3339) of `event`.
    pub fn of(event: &'a Value) -> Facts<'a> {
        Facts {
            ty: event.get("type").and_then(Value::as_str),
            user: event
                .get("actor")
                .and_then(|a| a.get("user_id"))
                .and_then(Value::as_str),
            at: event
                .get("occurred_at")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            known: Known::default(),
            accepted: None,
        }
    }
}

/// What applying one event did (counted in metrics, never an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Windows whose standings changed.
    pub windows_updated: u32,
    /// Windows the event missed because they had closed (end + grace passed at acceptance).
    pub late: u32,
    /// The event matched no rule / scope, or its expression gave no number.
    pub no_score: bool,
    /// The event JSON lacked `type`, `actor.user_id` or a parsable `occurred_at`.
    pub malformed: bool,
    /// The board requires joining and the user is not a member.
    pub not_member: bool,
    /// Windows where the user had used up `entry.max_attempts`.
    pub over_attempts: u32,
    /// A join or leave of this board: what it decided.
    pub membership: Option<Decision>,
    /// Windows the event was refused in because the user's score would overflow to ±inf.
    pub overflow: u32,
}

/// A window and the instants it starts and ends at.
type Span = (WindowKey, DateTime<Utc>, DateTime<Utc>);

/// A board's state.
#[derive(Debug)]
pub struct BoardState {
    pub def: Arc<Definition>,
    /// Last applied log position (0 = none).
    pub applied: u64,
    /// Latest acceptance time seen (ms), or the clock when caught up: windows whose
    /// end + grace is before it can be frozen.
    pub watermark_ms: i64,
    pub(super) open: BTreeMap<(Timeframe, WindowKey), Window>,
    pub(super) frozen: BTreeSet<(Timeframe, WindowKey)>,
    /// Members (boards with `entry.join_required`).
    pub members: Members,
    /// Per timeframe, the last window an event fell in and its real span: most events land in
    /// the same window, and a cron or time-zone lookup costs microseconds.
    /// By the timeframe's index in the definition's `frames`.
    spans: Vec<Option<Span>>,
    /// Between [`BoardState::begin_batch`] and [`BoardState::end_batch`].
    batch: bool,
}

impl BoardState {
    pub fn new(def: Arc<Definition>) -> BoardState {
        BoardState {
            def,
            applied: 0,
            watermark_ms: i64::MIN,
            open: BTreeMap::new(),
            frozen: BTreeSet::new(),
            members: Members::default(),
            spans: Vec::new(),
            batch: false,
        }
    }

    /// Start applying a run of events whose standings nobody reads until
    /// [`BoardState::end_batch`]: score changes update the accumulators at once, the rank
    /// index only at the end, once per user and window. The standings after `end_batch` are
    /// exactly those the same events give one by one.
    pub fn begin_batch(&mut self) {
        self.batch = true;
    }

    /// Bring every window's rank index up to its accumulators and end the batch.
    pub fn end_batch(&mut self) {
        self.batch = false;
        for w in self.open.values_mut() {
            w.flush();
        }
    }

    /// The window of `tf` (the definition's `frames[i]`) holding `at` and whether it was open
    /// at `accepted`.
    fn place(
        &mut self,
        (i, tf): (usize, Timeframe),
        at: DateTime<Utc>,
        accepted: DateTime<Utc>,
    ) -> Option<(WindowKey, bool)> {
        let (cal, grace) = (&self.def.calendar, self.def.late_grace_seconds);
        if let Some(&Some((key, start, end))) = self.spans.get(i) {
            if start <= at && at < end {
                return Some((key, Calendar::open_until(end, accepted, grace)));
            }
        }
        let key = cal.window_of(tf, at)?;
        if let Some((start, end)) = cal.span(key) {
            if self.spans.len() <= i {
                self.spans.resize(i + 1, None);
            }
            self.spans[i] = Some((key, start, end));
        }
        Some((key, cal.is_open(key, accepted, grace)))
    }

    /// Looks `user` up, changing nothing, in the window each timeframe's last event fell in:
    /// a catch-up calls it a few events ahead of the one it applies, so that the lookups'
    /// cache misses (a window's table is far larger than the cache with many users) overlap
    /// the work in between instead of stalling the event's own [`BoardState::apply_facts`].
    /// Returns a value to pass to `black_box`, so the reads are not optimised away.
    pub fn warm(&self, user: &str) -> u64 {
        let mut x = 0;
        for (i, span) in self.spans.iter().enumerate() {
            let (Some((key, _, _)), Some(&tf)) = (span, self.def.frames.get(i)) else {
                continue;
            };
            if let Some(w) = self.open.get(&(tf, *key)) {
                x ^= w.accs.get(user).map_or(0, |c| c.acc.count);
            }
        }
        x
    }

    /// Apply the event at log position `seq`, accepted at `accepted_ms`.
    pub fn apply(&mut self, seq: u64, accepted_ms: i64, event: &Value) -> Applied {
        self.apply_facts(seq, accepted_ms, event, Facts::of(event))
    }

    /// [`BoardState::apply`] with the event's [`Facts`] already taken out.
    pub fn apply_facts(
        &mut self,
        seq: u64,
        accepted_ms: i64,
        event: &Value,
        facts: Facts<'_>,
    ) -> Applied {
        let mut out = Applied::default();
        self.applied = self.applied.max(seq);
        self.watermark_ms = self.watermark_ms.max(accepted_ms);
        let Facts {
            ty,
            user,
            at,
            known,
            accepted,
        } = facts;
        if matches!(ty, Some(MEMBER_JOINED | MEMBER_LEFT))
            && event
                .get("attrs")
                .and_then(|a| a.get("leaderboard"))
                .and_then(Value::as_str)
                == Some(self.def.id.as_str())
        {
            // A control event of this board: never scored here.
            if let (Some(user), true) = (user, self.def.join_required()) {
                let cap = self.def.entry.map_or(0, |e| e.member_cap());
                out.membership = Some(if ty == Some(MEMBER_JOINED) {
                    self.members.join(seq, user, cap)
                } else {
                    self.members.leave(seq, user)
                });
            } else {
                out.no_score = true;
            }
            return out;
        }
        let (Some(ty), Some(user), Some(at)) = (ty, user, at) else {
            out.malformed = true;
            return out;
        };
        if self.def.join_required() && !self.members.contains(user) {
            out.not_member = true;
            return out;
        }
        let Some(points) = self.def.score_known(ty, event, known) else {
            out.no_score = true;
            return out;
        };
        let accepted = accepted
            .or_else(|| Utc.timestamp_millis_opt(accepted_ms).single())
            .unwrap_or_else(Utc::now);
        let def = &self.def;
        let (agg, order, ties) = (def.aggregation, def.sort_order, def.ties);
        let max_attempts = def.entry.and_then(|e| e.max_attempts).map(u64::from);
        let mut any_window = false;
        // By index, not through a clone of the `Arc`: its count's atomic add and subtract
        // drew a fifth of this function's samples with 100 boards.
        for i in 0..def.frames.len() {
            let tf = self.def.frames[i];
            // Outside a fixed schedule (or before a cron's first firing) there is no window.
            let Some((key, open)) = self.place((i, tf), at, accepted) else {
                continue;
            };
            any_window = true;
            if !open || self.frozen.contains(&(tf, key)) {
                out.late += 1;
                continue;
            }
            let w = self
                .open
                .entry((tf, key))
                .or_insert_with(|| Window::new(order, ties));
            let (cell, before, after) = match w.accs.get_mut(user) {
                Some(c) if max_attempts.is_some_and(|max| c.acc.count >= max) => {
                    out.over_attempts += 1;
                    continue;
                }
                Some(c) => {
                    let before = c.acc.score(agg);
                    if !c.acc.try_add(points, agg) {
                        out.overflow += 1;
                        continue;
                    }
                    let after = c.acc.score(agg);
                    (c, Some(before), after)
                }
                None => {
                    let a = Acc::new(points);
                    let c = w.accs.entry(user.into()).or_insert(Cell::new(a));
                    (c, None, a.score(agg))
                }
            };
            if before.map(f64::to_bits) != Some(after.to_bits()) {
                w.moves
                    .note(&mut w.ranks, cell, user, (after, seq), self.batch);
                out.windows_updated += 1;
            }
        }
        if !any_window {
            out.no_score = true;
        }
        out
    }

    /// Open windows of `tf`, newest first.
    pub fn open_windows(&self, tf: Timeframe) -> impl Iterator<Item = (WindowKey, &Window)> {
        self.open
            .iter()
            .rev()
            .filter(move |((t, _), _)| *t == tf)
            .map(|((_, k), w)| (*k, w))
    }

    /// Frozen windows of `tf` still in history, newest first.
    pub fn frozen_windows(&self, tf: Timeframe) -> impl Iterator<Item = WindowKey> + '_ {
        self.frozen
            .iter()
            .rev()
            .filter(move |(t, _)| *t == tf)
            .map(|(_, k)| *k)
    }

    /// Pass over the entry at `seq` without scoring it (it cannot match this board, or it
    /// could not be decoded): the position and watermark still advance.
    pub fn skip(&mut self, seq: u64, accepted_ms: i64) {
        self.applied = self.applied.max(seq);
        self.watermark_ms = self.watermark_ms.max(accepted_ms);
    }

    /// The open window, if any.
    pub fn window(&self, tf: Timeframe, key: WindowKey) -> Option<&Window> {
        self.open.get(&(tf, key))
    }

    /// Open windows whose end + grace is before the watermark.
    pub fn due_for_freeze(&self) -> Vec<(Timeframe, WindowKey)> {
        let Some(wm) = Utc.timestamp_millis_opt(self.watermark_ms).single() else {
            return Vec::new();
        };
        let (cal, grace) = (&self.def.calendar, self.def.late_grace_seconds);
        self.open
            .keys()
            .filter(|(_, k)| !cal.is_open(*k, wm, grace))
            .copied()
            .collect()
    }

    /// Remove a window from the live state and remember it as frozen.
    pub fn freeze(&mut self, tf: Timeframe, key: WindowKey) -> Option<Window> {
        self.frozen.insert((tf, key));
        let mut w = self.open.remove(&(tf, key))?;
        w.flush();
        Some(w)
    }

    /// Forget frozen windows that ended before `cutoff` (their history was dropped).
    pub fn forget_frozen_before(&mut self, cutoff: DateTime<Utc>) -> Vec<(Timeframe, WindowKey)> {
        let old: Vec<_> = self
            .frozen
            .iter()
            .filter(|(_, k)| {
                self.def.calendar.end(*k).is_none_or(|e| e < cutoff)
                    && k.timeframe() != Timeframe::AllTime
            })
            .copied()
            .collect();
        for k in &old {
            self.frozen.remove(k);
        }
        old
    }

    /// Number of users across open windows (for metrics).
    pub fn open_entries(&self) -> usize {
        self.open.values().map(|w| w.accs.len()).sum()
    }
}

#[cfg(test)]
mod tests;
