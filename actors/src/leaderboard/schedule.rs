//! A board's calendar: its time zone and its schedules, and the pure mapping from an instant to
//! the window of a timeframe that contains it, and from a window to its real start, end and
//! close time (SPEC §12).
//!
//! - Built-in daily, weekly and monthly windows run from local midnight to local midnight in the
//!   board's `timezone` (so a daylight-saving day lasts 23 or 25 hours); their keys stay the
//!   local date. Hourly windows are UTC hours. A local midnight that does not exist (a zone that
//!   springs forward at midnight) starts the day at the first local time that does; one that
//!   occurs twice starts it at the first.
//! - A `cron` schedule (5 fields, minute granularity, evaluated in the board's time zone by
//!   `croner`) opens a window at each firing that runs to the next firing.
//! - A fixed schedule (`start`/`end`) is one window; instants outside it are in no window.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::{json, Value};
use std::sync::Arc;
use thiserror::Error;

use super::window::{InvalidScheduleId, ScheduleId, Timeframe, WindowKey};

/// Most schedules on one board.
pub const MAX_SCHEDULES: usize = 16;

/// How one schedule's windows are laid out.
#[derive(Debug, Clone)]
pub enum ScheduleKind {
    /// A window from each firing to the next.
    Cron { expr: String, cron: Box<Cron> },
    /// One window `[start, end)`.
    Fixed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// One named extra timeframe of a board.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: ScheduleId,
    pub kind: ScheduleKind,
}

/// Why an entry of `schedules` is refused; `at` is its path (`schedules[0]`).
#[derive(Debug, Clone, Error)]
pub enum ScheduleError {
    #[error("{at}: must be an object")]
    NotAnObject { at: String },
    #[error("{at}.{field}: unknown field")]
    UnknownField { at: String, field: String },
    #[error("{at}.id: {source}")]
    BadId {
        at: String,
        #[source]
        source: InvalidScheduleId,
    },
    #[error("{at}.id: {id:?} is a built-in timeframe name; pick another id")]
    BuiltinId { at: String, id: String },
    #[error("{at}.id: required string")]
    IdRequired { at: String },
    #[error("{at}.{field}: not an RFC 3339 time ({source})")]
    BadTime {
        at: String,
        field: &'static str,
        #[source]
        source: chrono::ParseError,
    },
    #[error("{at}.{field}: must be an RFC 3339 string")]
    TimeNotString { at: String, field: &'static str },
    #[error("{at}.cron: {source}")]
    Cron {
        at: String,
        #[source]
        source: CronExprError,
    },
    #[error("{at}: has both cron and start/end; a schedule is one or the other")]
    CronAndSpan { at: String },
    #[error("{at}.cron: must be a string")]
    CronNotString { at: String },
    #[error("{at}.end: must be after start")]
    EndNotAfterStart { at: String },
    #[error("{at}.start: start and end must be whole seconds")]
    FractionalSeconds { at: String },
    #[error("{at}.end: required with start")]
    EndRequired { at: String },
    #[error("{at}.start: required with end")]
    StartRequired { at: String },
    #[error("{at}: needs either cron or start and end (neither given)")]
    NoWindows { at: String },
}

/// Why a cron expression is refused.
#[derive(Debug, Clone, Error)]
pub enum CronExprError {
    #[error("{0:?} must have 5 fields (minute hour day-of-month month day-of-week)")]
    FieldCount(String),
    #[error("{expr:?}: {source}")]
    Parse {
        expr: String,
        #[source]
        source: Arc<croner::errors::CronError>,
    },
    #[error("{0:?} never fires")]
    NeverFires(String),
    #[error("{0:?} fires only once")]
    FiresOnce(String),
}

impl Schedule {
    /// Parses one entry of `schedules` (`at` is its field path, e.g. `schedules[0]`). Every
    /// error names the field.
    pub fn from_json(at: &str, v: &Value, tz: Tz) -> Result<Schedule, ScheduleError> {
        let at = at.to_owned();
        let Some(obj) = v.as_object() else {
            return Err(ScheduleError::NotAnObject { at });
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["id", "cron", "start", "end"].contains(&k.as_str()))
        {
            return Err(ScheduleError::UnknownField {
                at,
                field: k.clone(),
            });
        }
        let id = match obj.get("id") {
            Some(Value::String(s)) => {
                let id = ScheduleId::new(s).map_err(|source| ScheduleError::BadId {
                    at: at.clone(),
                    source,
                })?;
                if Timeframe::ALL.iter().any(|t| t.as_str() == s) {
                    return Err(ScheduleError::BuiltinId { at, id: s.clone() });
                }
                id
            }
            _ => return Err(ScheduleError::IdRequired { at }),
        };
        let instant = |field: &'static str| -> Result<Option<DateTime<Utc>>, ScheduleError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|source| ScheduleError::BadTime {
                        at: at.clone(),
                        field,
                        source,
                    }),
                Some(_) => Err(ScheduleError::TimeNotString {
                    at: at.clone(),
                    field,
                }),
            }
        };
        let (start, end) = (instant("start")?, instant("end")?);
        let kind = match (obj.get("cron"), start, end) {
            (Some(Value::String(expr)), None, None) => ScheduleKind::Cron {
                cron: Box::new(
                    parse_cron(expr, tz).map_err(|source| ScheduleError::Cron { at, source })?,
                ),
                expr: expr.clone(),
            },
            (Some(Value::String(_)), _, _) => return Err(ScheduleError::CronAndSpan { at }),
            (Some(_), _, _) => return Err(ScheduleError::CronNotString { at }),
            (None, Some(start), Some(end)) => {
                if end <= start {
                    return Err(ScheduleError::EndNotAfterStart { at });
                }
                if start.timestamp_subsec_nanos() != 0 || end.timestamp_subsec_nanos() != 0 {
                    return Err(ScheduleError::FractionalSeconds { at });
                }
                ScheduleKind::Fixed { start, end }
            }
            (None, Some(_), None) => return Err(ScheduleError::EndRequired { at }),
            (None, None, Some(_)) => return Err(ScheduleError::StartRequired { at }),
            (None, None, None) => return Err(ScheduleError::NoWindows { at }),
        };
        Ok(Schedule { id, kind })
    }

    pub fn to_json(&self) -> Value {
        match &self.kind {
            ScheduleKind::Cron { expr, .. } => json!({"id": self.id.as_str(), "cron": expr}),
            ScheduleKind::Fixed { start, end } => json!({
                "id": self.id.as_str(),
                "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }),
        }
    }
}

/// A 5-field cron expression, checked to fire at least once in the years Phoenix serves.
fn parse_cron(expr: &str, tz: Tz) -> Result<Cron, CronExprError> {
    if expr.split_whitespace().count() != 5 {
        return Err(CronExprError::FieldCount(expr.to_owned()));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| CronExprError::Parse {
            expr: expr.to_owned(),
            source: Arc::new(e),
        })?;
    let from = tz.from_utc_datetime(&NaiveDateTime::default());
    let first = cron
        .find_next_occurrence(&from, false)
        .map_err(|_| CronExprError::NeverFires(expr.to_owned()))?;
    // Two firings are needed to make a window.
    cron.find_next_occurrence(&first, false)
        .map_err(|_| CronExprError::FiresOnce(expr.to_owned()))?;
    Ok(cron)
}

/// The first instant at local wall-clock time `local` in `tz`: the earlier of two, or the first
/// quarter hour after a gap (time zone transitions fall on quarter hours).
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    for step in 0..=96 {
        let t = local.checked_add_signed(TimeDelta::minutes(15 * step))?;
        match tz.from_local_datetime(&t) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return Some(t.with_timezone(&Utc))
            }
            LocalResult::None => continue,
        }
    }
    None
}

/// A board's time zone and schedules.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: Tz,
    pub schedules: Vec<Schedule>,
}

impl Calendar {
    /// UTC, no schedules (every board before SPEC §12).
    pub fn utc() -> Calendar {
        Calendar {
            tz: Tz::UTC,
            schedules: Vec::new(),
        }
    }

    fn is_utc(&self) -> bool {
        self.tz == Tz::UTC
    }

    pub fn schedule(&self, id: &ScheduleId) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == *id)
    }

    /// The window of `tf` containing `t`; `None` when there is none (outside a fixed schedule,
    /// before a cron's first firing, or an unknown schedule).
    pub fn window_of(&self, tf: Timeframe, t: DateTime<Utc>) -> Option<WindowKey> {
        match tf {
            Timeframe::Schedule(id) => {
                let s = self.schedule(&id)?;
                match &s.kind {
                    ScheduleKind::Fixed { start, end } => {
                        (*start <= t && t < *end).then(|| WindowKey::schedule(id, *start))
                    }
                    ScheduleKind::Cron { cron, .. } => {
                        let local = t.with_timezone(&self.tz);
                        let start = cron.find_previous_occurrence(&local, true).ok()?;
                        Some(WindowKey::schedule(id, start.with_timezone(&Utc)))
                    }
                }
            }
            Timeframe::Hourly | Timeframe::AllTime => Some(tf.window_of(t)),
            _ if self.is_utc() => Some(tf.window_of(t)),
            _ => {
                let label = t.with_timezone(&self.tz).naive_local().and_utc();
                let key = tf.window_of(label);
                // Where a repeated local hour straddles a boundary, the label and the instant
                // can disagree: the window is the one whose real span holds `t`.
                let (start, end) = self.span(key)?;
                if t >= end {
                    Some(tf.window_of(key.label_end()?))
                } else if t < start {
                    Some(tf.window_of(key.label_start()? - TimeDelta::seconds(1)))
                } else {
                    Some(key)
                }
            }
        }
    }

    /// Real `[start, end)` of a window; `None` for `all_time` (and unknown schedules).
    pub fn span(&self, key: WindowKey) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match key.timeframe() {
            Timeframe::AllTime => None,
            Timeframe::Schedule(id) => {
                let start = key.label_start()?;
                match &self.schedule(&id)?.kind {
                    ScheduleKind::Fixed { end, .. } => Some((start, *end)),
                    ScheduleKind::Cron { cron, .. } => {
                        let next = cron
                            .find_next_occurrence(&start.with_timezone(&self.tz), false)
                            .ok()?;
                        Some((start, next.with_timezone(&Utc)))
                    }
                }
            }
            Timeframe::Hourly => Some((key.label_start()?, key.label_end()?)),
            _ if self.is_utc() => Some((key.label_start()?, key.label_end()?)),
            _ => Some((
                local_to_utc(self.tz, key.label_start()?.naive_utc())?,
                local_to_utc(self.tz, key.label_end()?.naive_utc())?,
            )),
        }
    }

    /// Exclusive end of a window; `None` for `all_time`.
    pub fn end(&self, key: WindowKey) -> Option<DateTime<Utc>> {
        self.span(key).map(|(_, end)| end)
    }

    /// Whether a window ending at `end` still accepts events at `now` (see [`Calendar::is_open`]).
    pub fn open_until(end: DateTime<Utc>, now: DateTime<Utc>, grace: u64) -> bool {
        i64::try_from(grace)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .and_then(|g| end.checked_add_signed(g))
            .is_none_or(|close| now < close)
    }

    /// When the window stops taking late events: end + `grace`. `None` for `all_time` (never),
    /// or a close beyond chrono's range.
    pub fn close_time(&self, key: WindowKey, grace: u64) -> Option<DateTime<Utc>> {
        let grace = TimeDelta::try_seconds(i64::try_from(grace).ok()?)?;
        self.end(key)?.checked_add_signed(grace)
    }

    /// Whether the window still accepts events at `now`: `all_time` always does, any other window
    /// until `end + grace` (exclusive).
    pub fn is_open(&self, key: WindowKey, now: DateTime<Utc>, grace: u64) -> bool {
        if key.timeframe() == Timeframe::AllTime {
            return true;
        }
        if self.end(key).is_none() {
            // An unknown schedule's window (the definition changed): closed.
            return false;
        }
        // A close time beyond chrono's range is never reached.
        self.close_time(key, grace).is_none_or(|close| now < close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaderboard::window::tests::t;
    use proptest::prelude::*;

    fn cal(tz: &str, schedules: Value) -> Calendar {
        let tz: Tz = tz.parse().unwrap();
        let schedules = schedules
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, s)| Schedule::from_json(&format!("schedules[{i}]"), s, tz).unwrap())
            .collect();
        Calendar { tz, schedules }
    }

    fn la() -> Calendar {
        cal("America/Los_Angeles", json!([]))
    }

    fn span(c: &Calendar, tf: Timeframe, at: &str) -> (String, DateTime<Utc>, DateTime<Utc>) {
        let k = c.window_of(tf, t(at)).unwrap();
        let (s, e) = c.span(k).unwrap();
        (k.to_string(), s, e)
    }

    #[test]
    fn local_midnight_moves_daily_weekly_monthly() {
        use Timeframe::{Daily, Hourly, Monthly, Weekly};
        let c = la();
        // (timeframe, instant, its window key, and where given the window's start and end).
        // 2026-12-01 07:59 UTC is still Nov 30 in Los Angeles (UTC-8); hourly stays UTC.
        let cases = [
            (
                Daily,
                "2026-12-01T07:59:59Z",
                "2026-11-30",
                Some("2026-11-30T08:00:00Z"),
                Some("2026-12-01T08:00:00Z"),
            ),
            (Daily, "2026-12-01T08:00:00Z", "2026-12-01", None, None),
            (
                Weekly,
                "2026-11-30T09:00:00Z",
                "2026-W49",
                Some("2026-11-30T08:00:00Z"),
                None,
            ),
            (Weekly, "2026-11-30T07:00:00Z", "2026-W48", None, None),
            (
                Monthly,
                "2026-12-15T00:00:00Z",
                "2026-12",
                Some("2026-12-01T08:00:00Z"),
                Some("2027-01-01T08:00:00Z"),
            ),
            (Hourly, "2026-12-01T07:59:59Z", "2026-12-01T07", None, None),
        ];
        for (tf, at, key, start, end) in cases {
            let (k, s, e) = span(&c, tf, at);
            assert_eq!(k, key, "{tf:?} at {at}");
            assert!(start.is_none_or(|x| s == t(x)), "{tf:?} at {at}: start {s}");
            assert!(end.is_none_or(|x| e == t(x)), "{tf:?} at {at}: end {e}");
        }
    }

    #[test]
    fn daylight_saving_days_last_23_and_25_hours() {
        let c = la();
        // 2026-03-08: clocks spring forward at 02:00 PST.
        let (k, s, e) = span(&c, Timeframe::Daily, "2026-03-08T12:00:00Z");
        assert_eq!(k, "2026-03-08");
        assert_eq!(e - s, TimeDelta::hours(23));
        assert_eq!(s, t("2026-03-08T08:00:00Z"));
        assert_eq!(e, t("2026-03-09T07:00:00Z"));
        // 2026-11-01: clocks fall back at 02:00 PDT.
        let (k, s, e) = span(&c, Timeframe::Daily, "2026-11-01T12:00:00Z");
        assert_eq!(k, "2026-11-01");
        assert_eq!(e - s, TimeDelta::hours(25));
        assert_eq!(
            (s, e),
            (t("2026-11-01T07:00:00Z"), t("2026-11-02T08:00:00Z"))
        );
        // Both passes through the repeated 01:xx hour are in the same day.
        assert_eq!(
            span(&c, Timeframe::Daily, "2026-11-01T08:30:00Z").0,
            "2026-11-01"
        );
        assert_eq!(
            span(&c, Timeframe::Daily, "2026-11-01T09:30:00Z").0,
            "2026-11-01"
        );
        // The week holding the spring-forward day is 167 hours long.
        let (_, s, e) = span(&c, Timeframe::Weekly, "2026-03-08T12:00:00Z");
        assert_eq!(e - s, TimeDelta::hours(7 * 24 - 1));
    }

    #[test]
    fn a_missing_local_midnight_starts_the_day_when_the_clock_resumes() {
        // Santiago springs forward at 24:00 on the first Saturday of September: 2026-09-06 00:00
        // does not exist; the day starts at 01:00 local (04:00 UTC).
        let c = cal("America/Santiago", json!([]));
        let (k, s, _) = span(&c, Timeframe::Daily, "2026-09-06T12:00:00Z");
        assert_eq!(k, "2026-09-06");
        assert_eq!(s, t("2026-09-06T04:00:00Z"));
        let (_, _, e) = span(&c, Timeframe::Daily, "2026-09-05T12:00:00Z");
        assert_eq!(e, s, "days tile the line");
    }

    #[test]
    fn cron_windows_run_from_firing_to_firing_in_the_board_zone() {
        let c = cal(
            "America/Los_Angeles",
            json!([{"id": "weekly_tue", "cron": "0 10 * * 2"}]),
        );
        let tf: Timeframe = "weekly_tue".parse().unwrap();
        // Tuesday 2026-12-01 10:00 PST = 18:00 UTC.
        let (k, s, e) = span(&c, tf, "2026-12-03T00:00:00Z");
        assert_eq!(k, "2026-12-01T18:00:00Z");
        assert_eq!(
            (s, e),
            (t("2026-12-01T18:00:00Z"), t("2026-12-08T18:00:00Z"))
        );
        assert_eq!(
            span(&c, tf, "2026-12-01T17:59:59Z").0,
            "2026-11-24T18:00:00Z"
        );
        assert_eq!(
            span(&c, tf, "2026-12-01T18:00:00Z").0,
            "2026-12-01T18:00:00Z"
        );
        // Across the spring-forward, Tuesday 10:00 is 17:00 UTC: the window is 167 hours long.
        let (k, s, e) = span(&c, tf, "2026-03-05T00:00:00Z");
        assert_eq!(k, "2026-03-03T18:00:00Z");
        assert_eq!(e - s, TimeDelta::hours(167));
        let key = WindowKey::parse(tf, "2026-12-01T18:00:00Z").unwrap();
        assert!(c.is_open(key, t("2026-12-08T18:59:59Z"), 3600));
        assert!(!c.is_open(key, t("2026-12-08T19:00:00Z"), 3600));
    }

    #[test]
    fn fixed_windows_cover_only_their_span() {
        let c = cal(
            "UTC",
            json!([{"id": "winter_cup", "start": "2026-12-20T00:00:00Z", "end": "2027-01-03T00:00:00Z"}]),
        );
        let tf: Timeframe = "winter_cup".parse().unwrap();
        assert_eq!(c.window_of(tf, t("2026-12-19T23:59:59Z")), None);
        assert_eq!(c.window_of(tf, t("2027-01-03T00:00:00Z")), None);
        let (k, s, e) = span(&c, tf, "2026-12-20T00:00:00Z");
        assert_eq!(k, "2026-12-20T00:00:00Z");
        assert_eq!(
            (s, e),
            (t("2026-12-20T00:00:00Z"), t("2027-01-03T00:00:00Z"))
        );
        let other: Timeframe = "nope".parse().unwrap();
        assert_eq!(c.window_of(other, t("2026-12-21T00:00:00Z")), None);
    }

    #[test]
    fn utc_calendar_matches_the_plain_windows() {
        let c = Calendar::utc();
        let k = Timeframe::Hourly.window_of(t("2025-11-18T12:30:00Z"));
        assert!(c.is_open(k, t("2025-11-18T12:59:59Z"), 0));
        assert!(!c.is_open(k, t("2025-11-18T13:00:00Z"), 0));
        assert!(c.is_open(k, t("2025-11-18T13:59:59Z"), 3600));
        assert!(!c.is_open(k, t("2025-11-18T14:00:00Z"), 3600));
        assert!(c.is_open(k, t("2025-11-18T14:00:00Z"), u64::MAX));
        assert!(c.is_open(WindowKey::ALL_TIME, t("2999-01-01T00:00:00Z"), 0));
    }

    #[test]
    fn bad_schedules_name_their_field() {
        let tz = Tz::UTC;
        for (v, want) in [
            (json!({"id": "a", "cron": "0 10 * *"}), "schedules[0].cron"),
            (
                json!({"id": "a", "cron": "61 10 * * 2"}),
                "schedules[0].cron",
            ),
            (json!({"id": "a", "cron": "0 0 31 2 *"}), "never fires"),
            (json!({"id": "a", "cron": 5}), "schedules[0].cron"),
            (
                json!({"id": "a", "cron": "0 10 * * 2", "start": "2026-12-20T00:00:00Z", "end": "2027-01-03T00:00:00Z"}),
                "both cron and start/end",
            ),
            (json!({"id": "a"}), "neither"),
            (
                json!({"id": "a", "start": "2026-12-20T00:00:00Z", "end": "2026-12-20T00:00:00Z"}),
                "schedules[0].end: must be after start",
            ),
            (
                json!({"id": "a", "start": "2026-12-20T00:00:00Z"}),
                "schedules[0].end",
            ),
            (
                json!({"id": "a", "start": "yesterday", "end": "2026-12-20T00:00:00Z"}),
                "schedules[0].start",
            ),
            (
                json!({"id": "daily", "cron": "0 10 * * 2"}),
                "schedules[0].id",
            ),
            (
                json!({"id": "a b", "cron": "0 10 * * 2"}),
                "schedules[0].id",
            ),
            (json!({"cron": "0 10 * * 2"}), "schedules[0].id"),
            (
                json!({"id": "a", "cron": "0 10 * * 2", "every": 1}),
                "schedules[0].every",
            ),
        ] {
            let e = Schedule::from_json("schedules[0]", &v, tz)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    fn zone() -> impl Strategy<Value = Tz> {
        proptest::sample::select(vec![
            Tz::UTC,
            Tz::America__Los_Angeles,
            Tz::Europe__Berlin,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kolkata,
            Tz::America__Santiago,
            Tz::Pacific__Chatham,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every instant is in exactly the window whose real span holds it, and windows tile the
        /// time line with no gap or overlap.
        #[test]
        fn local_windows_tile_the_line(
            tz in zone(),
            tf in proptest::sample::select(vec![Timeframe::Daily, Timeframe::Weekly, Timeframe::Monthly]),
            secs in 946_684_800i64..2_524_608_000,
        ) {
            let c = Calendar { tz, schedules: Vec::new() };
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let k = c.window_of(tf, at).unwrap();
            let (s, e) = c.span(k).unwrap();
            prop_assert!(s <= at && at < e, "{k} {s} {at} {e}");
            prop_assert!(e - s >= TimeDelta::hours(22), "{k} {s} {e}");
            prop_assert_eq!(c.window_of(tf, e).map(|n| c.span(n).unwrap().0), Some(e));
            prop_assert_eq!(c.window_of(tf, e - TimeDelta::seconds(1)), Some(k));
            prop_assert_eq!(WindowKey::parse(tf, &k.to_string()), Ok(k));
        }

        #[test]
        fn cron_windows_hold_their_instant(
            tz in zone(),
            expr in proptest::sample::select(vec!["0 10 * * 2", "30 * * * *", "0 0 1 * *", "15 2 * * *"]),
            secs in 946_684_800i64..2_524_608_000,
        ) {
            let s = Schedule::from_json("s", &json!({"id": "s", "cron": expr}), tz).unwrap();
            let c = Calendar { tz, schedules: vec![s] };
            let tf: Timeframe = "s".parse().unwrap();
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let k = c.window_of(tf, at).unwrap();
            let (s, e) = c.span(k).unwrap();
            prop_assert!(s <= at && at < e, "{k} {s} {at} {e}");
            prop_assert_eq!(c.window_of(tf, e).map(|n| c.span(n).unwrap().0), Some(e));
        }
    }
}
