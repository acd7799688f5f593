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
use serde_json::Value;

use super::definition::{Aggregation, Definition};
use super::members::{Decision, Members, MEMBER_JOINED, MEMBER_LEFT};
use super::rank::{RankIndex, SortOrder, Ties};
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

/// One open window.
#[derive(Debug)]
pub struct Window {
    pub accs: HashMap<Box<str>, Acc>,
    pub ranks: RankIndex,
}

impl Window {
    pub(super) fn new(order: SortOrder, ties: Ties) -> Window {
        Window {
            accs: HashMap::new(),
            ranks: RankIndex::with_ties(order, ties),
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
    spans: HashMap<Timeframe, (WindowKey, DateTime<Utc>, DateTime<Utc>)>,
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
            spans: HashMap::new(),
        }
    }

    /// The window of `tf` holding `at` and whether it was open at `accepted`.
    fn place(
        &mut self,
        tf: Timeframe,
        at: DateTime<Utc>,
        accepted: DateTime<Utc>,
    ) -> Option<(WindowKey, bool)> {
        let (cal, grace) = (&self.def.calendar, self.def.late_grace_seconds);
        if let Some(&(key, start, end)) = self.spans.get(&tf) {
            if start <= at && at < end {
                return Some((key, Calendar::open_until(end, accepted, grace)));
            }
        }
        let key = cal.window_of(tf, at)?;
        if let Some((start, end)) = cal.span(key) {
            self.spans.insert(tf, (key, start, end));
        }
        Some((key, cal.is_open(key, accepted, grace)))
    }

    /// Apply the event at log position `seq`, accepted at `accepted_ms`.
    pub fn apply(&mut self, seq: u64, accepted_ms: i64, event: &Value) -> Applied {
        let mut out = Applied::default();
        self.applied = self.applied.max(seq);
        self.watermark_ms = self.watermark_ms.max(accepted_ms);
        let ty = event.get("type").and_then(Value::as_str);
        let user = event.pointer("/actor/user_id").and_then(Value::as_str);
        let at = event
            .get("occurred_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        if matches!(ty, Some(MEMBER_JOINED | MEMBER_LEFT))
            && event.pointer("/attrs/leaderboard").and_then(Value::as_str)
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
        let Some(points) = self.def.score(ty, event) else {
            out.no_score = true;
            return out;
        };
        let accepted = Utc
            .timestamp_millis_opt(accepted_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let at = at.with_timezone(&Utc);
        let def = self.def.clone();
        let (agg, order, ties) = (def.aggregation, def.sort_order, def.ties);
        let max_attempts = def.entry.and_then(|e| e.max_attempts).map(u64::from);
        let mut any_window = false;
        for &tf in &def.frames {
            // Outside a fixed schedule (or before a cron's first firing) there is no window.
            let Some((key, open)) = self.place(tf, at, accepted) else {
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
            if let (Some(max), Some(a)) = (max_attempts, w.accs.get(user)) {
                if a.count >= max {
                    out.over_attempts += 1;
                    continue;
                }
            }
            let before = w.accs.get(user).map(|a| a.score(agg));
            let after = match w.accs.get_mut(user) {
                Some(a) => {
                    if !a.try_add(points, agg) {
                        out.overflow += 1;
                        continue;
                    }
                    a.score(agg)
                }
                None => {
                    let a = Acc::new(points);
                    w.accs.insert(user.into(), a);
                    a.score(agg)
                }
            };
            if before.map(f64::to_bits) != Some(after.to_bits()) {
                w.ranks.upsert(user, after, seq);
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
        self.open.remove(&(tf, key))
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
