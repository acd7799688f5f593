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
    fn new(order: SortOrder, ties: Ties) -> Window {
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
    open: BTreeMap<(Timeframe, WindowKey), Window>,
    frozen: BTreeSet<(Timeframe, WindowKey)>,
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

    pub fn is_frozen(&self, tf: Timeframe, key: WindowKey) -> bool {
        self.frozen.contains(&(tf, key))
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

    /// Serialise for a checkpoint (see [`BoardState::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.open_entries() * 64);
        b.push(CKPT_VERSION);
        b.extend_from_slice(&self.applied.to_be_bytes());
        b.extend_from_slice(&self.watermark_ms.to_be_bytes());
        b.extend_from_slice(&(self.frozen.len() as u32).to_be_bytes());
        for (tf, k) in &self.frozen {
            tf.encode(&mut b);
            b.extend_from_slice(&k.to_sortable_bytes());
        }
        b.extend_from_slice(&(self.open.len() as u32).to_be_bytes());
        for ((tf, k), w) in &self.open {
            tf.encode(&mut b);
            b.extend_from_slice(&k.to_sortable_bytes());
            b.extend_from_slice(&(w.accs.len() as u32).to_be_bytes());
            for (user, a) in &w.accs {
                let reached = w.ranks.get(user).map(|(_, _, r)| r).unwrap_or(0);
                b.extend_from_slice(&(user.len() as u16).to_be_bytes());
                b.extend_from_slice(user.as_bytes());
                for x in [
                    a.sum.to_bits(),
                    a.count,
                    a.min.to_bits(),
                    a.max.to_bits(),
                    reached,
                ] {
                    b.extend_from_slice(&x.to_be_bytes());
                }
            }
        }
        // Version 2: the members follow.
        b.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for (user, seq) in self.members.iter() {
            b.extend_from_slice(&(user.len() as u16).to_be_bytes());
            b.extend_from_slice(user.as_bytes());
            b.extend_from_slice(&seq.to_be_bytes());
        }
        b
    }

    /// Rebuild a state from [`BoardState::encode`] output.
    pub fn decode(def: Arc<Definition>, buf: &[u8]) -> Result<BoardState, String> {
        let mut r = Reader { buf, at: 0 };
        let version = r.u8()?;
        if !(1..=CKPT_VERSION).contains(&version) {
            return Err("unknown checkpoint version".into());
        }
        let mut s = BoardState::new(def);
        s.applied = r.u64()?;
        s.watermark_ms = r.u64()? as i64;
        for _ in 0..r.u32()? {
            let tf = r.timeframe()?;
            let key = WindowKey::from_sortable_bytes(tf, r.take(8)?)?;
            s.frozen.insert((tf, key));
        }
        let (agg, order, ties) = (s.def.aggregation, s.def.sort_order, s.def.ties);
        for _ in 0..r.u32()? {
            let tf = r.timeframe()?;
            let key = WindowKey::from_sortable_bytes(tf, r.take(8)?)?;
            let mut w = Window::new(order, ties);
            for _ in 0..r.u32()? {
                let len = r.u16()? as usize;
                let user = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
                let a = Acc {
                    sum: f64::from_bits(r.u64()?),
                    count: r.u64()?,
                    min: f64::from_bits(r.u64()?),
                    max: f64::from_bits(r.u64()?),
                };
                let reached = r.u64()?;
                w.ranks.upsert(user, a.score(agg), reached);
                w.accs.insert(user.into(), a);
            }
            s.open.insert((tf, key), w);
        }
        if version >= 2 {
            for _ in 0..r.u32()? {
                let len = r.u16()? as usize;
                let user = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
                let seq = r.u64()?;
                s.members.restore(user, seq);
            }
        }
        Ok(s)
    }
}

/// 1: windows; 2: windows then members (version 1 still loads, with no members).
const CKPT_VERSION: u8 = 2;

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .buf
            .get(self.at..self.at + n)
            .ok_or("truncated checkpoint")?;
        self.at += n;
        Ok(s)
    }
    fn timeframe(&mut self) -> Result<Timeframe, String> {
        let (tf, used) = Timeframe::decode(&self.buf[self.at.min(self.buf.len())..])?;
        self.at += used;
        Ok(tf)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn def(agg: &str, grace: u64) -> Arc<Definition> {
        Arc::new(
            Definition::from_json(
                "b",
                &json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}],
                        "aggregation": agg, "timeframes": ["hourly", "daily", "all_time"],
                        "late_grace_seconds": grace}),
            )
            .unwrap(),
        )
    }

    fn ev(user: &str, p: f64, at: &str) -> Value {
        json!({"type": "x", "actor": {"user_id": user}, "occurred_at": at, "attrs": {"p": p}})
    }

    fn ms(s: &str) -> i64 {
        s.parse::<DateTime<Utc>>().unwrap().timestamp_millis()
    }

    fn top(s: &BoardState, tf: Timeframe, key: &str) -> Vec<(String, f64)> {
        let k = WindowKey::parse(tf, key).unwrap();
        s.window(tf, k)
            .map(|w| {
                w.ranks
                    .range(0, 100)
                    .into_iter()
                    .map(|e| (e.user_id, e.score))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn each_aggregation() {
        let pts = [3.0, 1.0, 5.0];
        for (agg, want) in [
            ("sum", 9.0),
            ("count", 3.0),
            ("max", 5.0),
            ("min", 1.0),
            ("avg", 3.0),
        ] {
            let mut s = BoardState::new(def(agg, 0));
            for (i, p) in pts.iter().enumerate() {
                s.apply(
                    i as u64 + 1,
                    ms("2025-11-18T12:30:00Z"),
                    &ev("a", *p, "2025-11-18T12:00:00Z"),
                );
            }
            assert_eq!(
                top(&s, Timeframe::AllTime, "all_time"),
                vec![("a".into(), want)],
                "{agg}"
            );
        }
    }

    #[test]
    fn ties_go_to_whoever_reached_the_score_first() {
        let mut s = BoardState::new(def("sum", 0));
        let t = ms("2025-11-18T12:30:00Z");
        s.apply(1, t, &ev("zed", 10.0, "2025-11-18T12:00:00Z"));
        s.apply(2, t, &ev("amy", 10.0, "2025-11-18T12:00:00Z"));
        let order: Vec<String> = top(&s, Timeframe::AllTime, "all_time")
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(order, ["zed", "amy"]);
    }

    #[test]
    fn windows_and_late_grace_use_acceptance_time() {
        let mut s = BoardState::new(def("sum", 600));
        // Occurred 12:59:59, accepted 13:09:59 (inside a 10 min grace): lands in hour 12.
        let a = s.apply(
            1,
            ms("2025-11-18T13:09:59Z"),
            &ev("a", 1.0, "2025-11-18T12:59:59Z"),
        );
        assert_eq!((a.windows_updated, a.late), (3, 0));
        assert_eq!(top(&s, Timeframe::Hourly, "2025-11-18T12").len(), 1);
        // Accepted at 13:10:00: the hourly window is closed, daily and all_time still open.
        let b = s.apply(
            2,
            ms("2025-11-18T13:10:00Z"),
            &ev("b", 1.0, "2025-11-18T12:59:59Z"),
        );
        assert_eq!((b.windows_updated, b.late), (2, 1));
        assert_eq!(top(&s, Timeframe::Hourly, "2025-11-18T12").len(), 1);
        assert_eq!(top(&s, Timeframe::Daily, "2025-11-18").len(), 2);
        // 13:00:00 exactly is the next hour.
        s.apply(
            3,
            ms("2025-11-18T13:10:00Z"),
            &ev("c", 1.0, "2025-11-18T13:00:00Z"),
        );
        assert_eq!(top(&s, Timeframe::Hourly, "2025-11-18T13").len(), 1);
    }

    #[test]
    fn frozen_windows_take_no_more_events() {
        let mut s = BoardState::new(def("sum", 0));
        s.apply(
            1,
            ms("2025-11-18T12:30:00Z"),
            &ev("a", 1.0, "2025-11-18T12:00:00Z"),
        );
        s.watermark_ms = ms("2025-11-18T13:00:01Z");
        let due = s.due_for_freeze();
        assert_eq!(
            due.len(),
            1,
            "only the hourly window is past end + grace: {due:?}"
        );
        let (tf, k) = due[0];
        assert!(s.freeze(tf, k).is_some());
        let a = s.apply(
            2,
            ms("2025-11-18T12:59:00Z"),
            &ev("a", 1.0, "2025-11-18T12:10:00Z"),
        );
        assert_eq!(a.late, 1);
        assert!(s.window(tf, k).is_none());
    }

    #[test]
    fn unscored_and_malformed_events_change_nothing() {
        let mut s = BoardState::new(def("sum", 0));
        let t = ms("2025-11-18T12:30:00Z");
        assert!(s.apply(1, t, &json!({"type": "x", "actor": {"user_id": "a"}, "occurred_at": "2025-11-18T12:00:00Z", "attrs": {}})).no_score);
        assert!(s.apply(2, t, &json!({"type": "x"})).malformed);
        assert_eq!(s.open_entries(), 0);
        assert_eq!(s.applied, 2);
    }

    fn live(extra: Value) -> Arc<Definition> {
        let mut d = json!({"rules": [{"event_type": "*", "points_expression": "attrs.p"}],
                           "timeframes": ["daily", "all_time"], "late_grace_seconds": 0});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        Arc::new(Definition::from_json("b", &d).unwrap())
    }

    #[test]
    fn local_days_with_daylight_saving() {
        let mut s = BoardState::new(live(
            json!({"timezone": "America/Los_Angeles", "late_grace_seconds": 7200}),
        ));
        // 2026-11-01 lasts 25 hours in Los Angeles: 07:00 UTC to 08:00 UTC the next day.
        let acc = ms("2026-11-02T08:30:00Z");
        s.apply(1, acc, &ev("a", 1.0, "2026-11-01T07:00:00Z"));
        s.apply(2, acc, &ev("a", 2.0, "2026-11-02T07:59:59Z"));
        s.apply(3, acc, &ev("b", 4.0, "2026-11-02T08:00:00Z"));
        assert_eq!(
            top(&s, Timeframe::Daily, "2026-11-01"),
            vec![("a".into(), 3.0)]
        );
        assert_eq!(
            top(&s, Timeframe::Daily, "2026-11-02"),
            vec![("b".into(), 4.0)]
        );
        // 2026-03-08 lasts 23 hours: 08:00 UTC to 07:00 UTC the next day.
        s.apply(
            4,
            ms("2026-03-09T07:30:00Z"),
            &ev("c", 1.0, "2026-03-09T06:59:59Z"),
        );
        s.apply(
            5,
            ms("2026-03-09T07:30:00Z"),
            &ev("d", 1.0, "2026-03-09T07:00:00Z"),
        );
        assert_eq!(
            top(&s, Timeframe::Daily, "2026-03-08"),
            vec![("c".into(), 1.0)]
        );
        assert_eq!(
            top(&s, Timeframe::Daily, "2026-03-09"),
            vec![("d".into(), 1.0)]
        );
        // The grace runs from the local end: 2026-03-08 closes at 07:00 UTC + 2 h.
        let late = s.apply(
            6,
            ms("2026-03-09T09:00:00Z"),
            &ev("e", 1.0, "2026-03-09T06:00:00Z"),
        );
        assert_eq!(late.late, 1);
        s.watermark_ms = ms("2026-03-09T09:00:00Z");
        let due: Vec<String> = s
            .due_for_freeze()
            .iter()
            .map(|(_, k)| k.to_string())
            .collect();
        assert_eq!(due, ["2026-03-08"]);
    }

    #[test]
    fn schedules_are_extra_timeframes() {
        let mut s = BoardState::new(live(json!({"schedules": [
            {"id": "cup", "start": "2026-12-20T00:00:00Z", "end": "2027-01-03T00:00:00Z"},
            {"id": "tue", "cron": "0 10 * * 2"}]})));
        let acc = ms("2026-12-22T12:00:00Z");
        let a = s.apply(1, acc, &ev("a", 1.0, "2026-12-22T11:00:00Z"));
        assert_eq!(a.windows_updated, 4);
        let b = s.apply(2, acc, &ev("b", 1.0, "2026-12-19T11:00:00Z"));
        assert_eq!(
            (b.windows_updated, b.late),
            (1, 2),
            "all_time; daily and the cron week closed; not in the cup"
        );
        let cup: Timeframe = "cup".parse().unwrap();
        assert_eq!(
            top(&s, cup, "2026-12-20T00:00:00Z"),
            vec![("a".into(), 1.0)]
        );
        let tue: Timeframe = "tue".parse().unwrap();
        assert_eq!(
            top(&s, tue, "2026-12-22T10:00:00Z"),
            vec![("a".into(), 1.0)]
        );
        assert!(top(&s, tue, "2026-12-15T10:00:00Z").is_empty());
        assert_eq!(top(&s, Timeframe::AllTime, "all_time").len(), 2);
        // Round trip through a checkpoint, schedule timeframes included.
        let back = BoardState::decode(s.def.clone(), &s.encode()).unwrap();
        assert_eq!(
            top(&back, cup, "2026-12-20T00:00:00Z"),
            vec![("a".into(), 1.0)]
        );
    }

    #[test]
    fn attempts_are_capped_per_window() {
        let mut s = BoardState::new(live(json!({"entry": {"max_attempts": 2}})));
        let acc = ms("2025-11-18T12:30:00Z");
        for (i, p) in [5.0, 1.0, 100.0].iter().enumerate() {
            let a = s.apply(i as u64 + 1, acc, &ev("a", *p, "2025-11-18T12:00:00Z"));
            assert_eq!(a.over_attempts, if i == 2 { 2 } else { 0 });
        }
        assert_eq!(
            top(&s, Timeframe::Daily, "2025-11-18"),
            vec![("a".into(), 6.0)]
        );
        // The next day is a new window with fresh attempts (all_time is still capped).
        let a = s.apply(
            4,
            ms("2025-11-19T12:30:00Z"),
            &ev("a", 7.0, "2025-11-19T12:00:00Z"),
        );
        assert_eq!((a.windows_updated, a.over_attempts), (1, 1));
        let back = BoardState::decode(s.def.clone(), &s.encode()).unwrap();
        let a = back
            .window(Timeframe::AllTime, WindowKey::ALL_TIME)
            .unwrap();
        assert_eq!(a.accs["a"].count, 2, "attempts are part of the checkpoint");
    }

    fn member_ev(ty: &str, user: &str, board: &str) -> Value {
        json!({"type": ty, "actor": {"user_id": user}, "occurred_at": "2025-11-18T12:00:00Z",
               "attrs": {"leaderboard": board, "p": 50}})
    }

    #[test]
    fn only_members_score_and_membership_is_in_log_order() {
        let mut s = BoardState::new(live(
            json!({"entry": {"join_required": true, "max_members": 2}}),
        ));
        let acc = ms("2025-11-18T12:30:00Z");
        assert!(
            s.apply(1, acc, &ev("a", 1.0, "2025-11-18T12:00:00Z"))
                .not_member
        );
        assert_eq!(
            s.apply(2, acc, &member_ev(MEMBER_JOINED, "a", "b"))
                .membership,
            Some(Decision::Joined)
        );
        assert_eq!(
            s.apply(3, acc, &member_ev(MEMBER_JOINED, "b", "other"))
                .membership,
            None,
            "another board's join"
        );
        assert_eq!(
            s.apply(4, acc, &member_ev(MEMBER_JOINED, "b", "b"))
                .membership,
            Some(Decision::Joined)
        );
        assert_eq!(
            s.apply(5, acc, &member_ev(MEMBER_JOINED, "c", "b"))
                .membership,
            Some(Decision::Full)
        );
        assert_eq!(
            s.apply(6, acc, &ev("a", 3.0, "2025-11-18T12:00:00Z"))
                .windows_updated,
            2
        );
        assert!(
            s.apply(7, acc, &ev("c", 3.0, "2025-11-18T12:00:00Z"))
                .not_member
        );
        assert_eq!(
            top(&s, Timeframe::AllTime, "all_time"),
            vec![("a".into(), 3.0)],
            "join events score nothing here"
        );
        let back = BoardState::decode(s.def.clone(), &s.encode()).unwrap();
        assert!(back.members.contains("a") && back.members.contains("b"));
        assert_eq!(back.members.len(), 2);
        assert_eq!(
            s.apply(8, acc, &member_ev(MEMBER_LEFT, "a", "b"))
                .membership,
            Some(Decision::Left)
        );
        assert!(
            s.apply(9, acc, &ev("a", 3.0, "2025-11-18T12:00:00Z"))
                .not_member
        );
    }

    proptest! {
        /// With local days and a cron schedule, events in any order land where the calendar
        /// alone says (the per-timeframe span cache changes nothing).
        #[test]
        fn local_and_cron_windows_match_the_calendar(
            evs in proptest::collection::vec((0u8..4, 1i32..9, 0i64..21 * 86_400), 1..120),
        ) {
            let d = live(json!({"timezone": "America/Los_Angeles", "late_grace_seconds": YEAR,
                                "schedules": [{"id": "tue", "cron": "0 10 * * 2"}]}));
            let base = ms("2026-10-25T00:00:00Z");
            let acc = ms("2026-11-20T00:00:00Z");
            let mut s = BoardState::new(d.clone());
            let mut want: HashMap<(Timeframe, WindowKey, String), f64> = HashMap::new();
            for (i, (u, p, occ)) in evs.iter().enumerate() {
                let at = Utc.timestamp_millis_opt(base + occ * 1000).unwrap();
                let user = format!("u{u}");
                s.apply(i as u64 + 1, acc, &ev(&user, f64::from(*p), &at.to_rfc3339()));
                for &tf in &d.frames {
                    let k = d.calendar.window_of(tf, at).unwrap();
                    *want.entry((tf, k, user.clone())).or_default() += f64::from(*p);
                }
            }
            for ((tf, k, user), score) in &want {
                let got = s.window(*tf, *k).and_then(|w| w.ranks.get(user)).map(|g| g.1);
                prop_assert_eq!(got, Some(*score), "{} {} {}", tf, k, user);
            }
            let cells: usize = d.frames.iter().map(|tf| s.open_windows(*tf).map(|(_, w)| w.accs.len()).sum::<usize>()).sum();
            prop_assert_eq!(cells, want.len());
        }
    }

    const YEAR: u64 = 31_622_400;

    /// A version-1 checkpoint (before members and schedules) still loads.
    #[test]
    fn version_one_checkpoints_load() {
        let mut s = BoardState::new(def("sum", 0));
        s.apply(
            1,
            ms("2025-11-18T12:30:00Z"),
            &ev("a", 2.0, "2025-11-18T12:00:00Z"),
        );
        let mut v1 = s.encode();
        v1[0] = 1;
        v1.truncate(v1.len() - 4); // no members section
        let back = BoardState::decode(s.def.clone(), &v1).unwrap();
        assert_eq!(
            top(&back, Timeframe::AllTime, "all_time"),
            vec![("a".into(), 2.0)]
        );
    }

    #[test]
    fn a_sum_that_would_overflow_is_refused_and_counted() {
        let t = ms("2025-11-18T12:30:00Z");
        for agg in ["sum", "avg"] {
            let mut s = BoardState::new(def(agg, 0));
            let first = s.apply(1, t, &ev("a", 1.7e308, "2025-11-18T12:00:00Z"));
            assert_eq!((first.windows_updated, first.overflow), (3, 0), "{agg}");
            let second = s.apply(2, t, &ev("a", 1.7e308, "2025-11-18T12:00:00Z"));
            assert_eq!((second.windows_updated, second.overflow), (0, 3), "{agg}");
            s.apply(3, t, &ev("b", 1.0, "2025-11-18T12:00:00Z"));
            let top = top(&s, Timeframe::AllTime, "all_time");
            assert_eq!(
                top[0],
                ("a".into(), 1.7e308),
                "{agg}: the stored score stays finite"
            );
            assert!(top.iter().all(|(_, x)| x.is_finite()));
            // A negative point brings it back into range: accepted again.
            let back = s.apply(4, t, &ev("a", -1.0e308, "2025-11-18T12:00:00Z"));
            assert_eq!(back.overflow, 0, "{agg}");
        }
        // max/count boards do not care about the sum.
        let mut s = BoardState::new(def("max", 0));
        s.apply(1, t, &ev("a", 1.7e308, "2025-11-18T12:00:00Z"));
        let second = s.apply(2, t, &ev("a", 1.7e308, "2025-11-18T12:00:00Z"));
        assert_eq!(second.overflow, 0);
        let enc = s.encode();
        BoardState::decode(def("max", 0), &enc).unwrap();
    }

    #[test]
    fn skipped_entries_advance_position_and_watermark() {
        let mut s = BoardState::new(def("sum", 0));
        s.skip(7, 1_000);
        assert_eq!((s.applied, s.watermark_ms), (7, 1_000));
        s.skip(3, 10);
        assert_eq!((s.applied, s.watermark_ms), (7, 1_000));
    }

    proptest! {
        /// Whatever the points, no stored score is ever ±inf or NaN.
        #[test]
        fn scores_stay_finite(
            pts in proptest::collection::vec(prop_oneof![Just(1.7e308), Just(-1.7e308), -1e3f64..1e3], 1..30),
            agg in prop_oneof![Just("sum"), Just("avg"), Just("max"), Just("min"), Just("count")],
        ) {
            let mut s = BoardState::new(def(agg, 0));
            let t = ms("2025-11-18T12:30:00Z");
            for (i, p) in pts.iter().enumerate() {
                s.apply(i as u64 + 1, t, &ev(if i % 2 == 0 { "a" } else { "b" }, *p, "2025-11-18T12:00:00Z"));
            }
            for w in s.open.values() {
                for e in w.ranks.iter() {
                    prop_assert!(e.score.is_finite(), "{} has {}", e.user_id, e.score);
                }
            }
        }

        /// A checkpoint round-trips to identical standings, and replaying the rest of the log
        /// on top of a checkpoint equals applying the whole log at once.
        #[test]
        fn checkpoint_plus_replay_equals_full_apply(
            evs in proptest::collection::vec((0u8..6, -5i32..20, 0i64..3 * 3600, 0i64..7200), 1..80),
            cut in 0usize..80,
            agg in prop_oneof![Just("sum"), Just("count"), Just("max"), Just("min"), Just("avg")],
        ) {
            let base = ms("2025-11-18T10:00:00Z");
            let events: Vec<(i64, Value)> = evs.iter().map(|(u, p, occ, delay)| {
                let at = Utc.timestamp_millis_opt(base + occ * 1000).unwrap();
                (base + (occ + delay) * 1000, ev(&format!("u{u}"), f64::from(*p), &at.to_rfc3339()))
            }).collect();
            let d = def(agg, 900);
            let mut full = BoardState::new(d.clone());
            for (i, (acc, e)) in events.iter().enumerate() {
                full.apply(i as u64 + 1, *acc, e);
            }
            let cut = cut.min(events.len());
            let mut first = BoardState::new(d.clone());
            for (i, (acc, e)) in events[..cut].iter().enumerate() {
                first.apply(i as u64 + 1, *acc, e);
            }
            let mut resumed = BoardState::decode(d.clone(), &first.encode()).unwrap();
            prop_assert_eq!(resumed.applied, cut as u64);
            for (i, (acc, e)) in events.iter().enumerate().skip(cut) {
                resumed.apply(i as u64 + 1, *acc, e);
            }
            prop_assert_eq!(resumed.open.len(), full.open.len());
            for (key, w) in &full.open {
                let r = &resumed.open[key];
                let a: Vec<_> = w.ranks.iter().map(|e| (e.user_id.to_owned(), e.score.to_bits(), e.reached_at)).collect();
                let b: Vec<_> = r.ranks.iter().map(|e| (e.user_id.to_owned(), e.score.to_bits(), e.reached_at)).collect();
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn garbage_checkpoints_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BoardState::decode(def("sum", 0), &buf);
        }
    }
}
