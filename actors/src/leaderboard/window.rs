//! Timeframes and window keys: which window an `occurred_at` falls in (in UTC, or as a local
//! wall-clock label), key text and byte forms.
//!
//! Built-in windows are half-open `[start, end)` and named by their *label*: the wall-clock date
//! (or UTC hour) they cover. For a board in UTC the label is the UTC start; a board with a
//! `timezone` keys daily, weekly and monthly windows by the local date, so the label is the local
//! midnight read as if it were UTC, and [`super::schedule::Calendar`] turns it into real instants.
//! Hourly windows are always UTC hours. Weekly windows are ISO weeks (Monday 00:00 to the next
//! Monday) named by their ISO week-year, so 2024-12-30 is in `2025-W01` and 2021-01-03 in
//! `2020-W53`. Schedule windows (`Timeframe::Schedule`) are keyed by their real UTC start and
//! printed as `2026-12-01T18:00:00Z`. Key texts are canonical: [`WindowKey::parse`] accepts exactly
//! what `Display` prints.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, SecondsFormat, TimeDelta, Utc, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Longest schedule id, in bytes (schedule ids are stored inline so `Timeframe` stays `Copy`).
pub const MAX_SCHEDULE_ID: usize = 32;

/// The id of one of a board's schedules: 1 to [`MAX_SCHEDULE_ID`] bytes of `A-Z a-z 0-9 - _ .`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleId {
    len: u8,
    bytes: [u8; MAX_SCHEDULE_ID],
}

impl ScheduleId {
    /// Checks the charset and length; built-in timeframe names are refused by the caller.
    pub fn new(s: &str) -> Result<ScheduleId, InvalidScheduleId> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SCHEDULE_ID
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(InvalidScheduleId(s.to_owned()));
        }
        let mut bytes = [0; MAX_SCHEDULE_ID];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(ScheduleId {
            len: u8::try_from(s.len()).expect("at most 32"),
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("checked ASCII")
    }
}

impl fmt::Debug for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Ord for ScheduleId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ScheduleId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A schedule id with a character or a length outside [`ScheduleId`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} must be 1-{MAX_SCHEDULE_ID} characters of A-Z a-z 0-9 - _ .")]
pub struct InvalidScheduleId(pub String);

/// A name that is neither a built-in timeframe nor a valid schedule id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown timeframe {0:?} (expected hourly, daily, weekly, monthly, all_time or a schedule id)"
)]
pub struct UnknownTimeframe(pub String);

/// Window key text that is not the canonical key of its timeframe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {timeframe} window key {text:?} (expected e.g. {})", key_example(*.timeframe))]
pub struct InvalidWindowKey {
    pub timeframe: Timeframe,
    pub text: String,
}

/// Why the byte form of a timeframe or window key (checkpoints, history keys) does not read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyBytesError {
    #[error("truncated timeframe")]
    Truncated,
    #[error("bad timeframe byte {0}")]
    UnknownByte(u8),
    #[error("schedule id: {0}")]
    ScheduleUtf8(#[from] std::str::Utf8Error),
    #[error(transparent)]
    ScheduleId(#[from] InvalidScheduleId),
    #[error("window key must be 8 bytes, got {0}")]
    KeyLength(usize),
    #[error("{start} is not the start of a {timeframe} window")]
    Unaligned { timeframe: Timeframe, start: i64 },
}

/// How long one window of a leaderboard lasts: a built-in period or one of the board's schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    AllTime,
    /// A board's named schedule (cron or fixed start/end); its windows come from the board's
    /// [`super::schedule::Calendar`].
    Schedule(ScheduleId),
}

impl Timeframe {
    /// Every built-in timeframe, shortest first.
    pub const ALL: [Timeframe; 5] = [
        Timeframe::Hourly,
        Timeframe::Daily,
        Timeframe::Weekly,
        Timeframe::Monthly,
        Timeframe::AllTime,
    ];

    /// The wire name (`"hourly"` … `"all_time"`, or the schedule id).
    pub fn as_str(&self) -> &str {
        match self {
            Timeframe::Hourly => "hourly",
            Timeframe::Daily => "daily",
            Timeframe::Weekly => "weekly",
            Timeframe::Monthly => "monthly",
            Timeframe::AllTime => "all_time",
            Timeframe::Schedule(id) => id.as_str(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        !matches!(self, Timeframe::Schedule(_))
    }

    /// The built-in window whose label contains `t` (for a UTC board, the window containing
    /// `t`). A schedule's windows depend on its board: use the board's `Calendar`; here a
    /// schedule gets the key starting at `t`'s second.
    pub fn window_of(self, t: DateTime<Utc>) -> WindowKey {
        let secs = t.timestamp();
        let start = match self {
            Timeframe::Hourly => secs - secs.rem_euclid(HOUR),
            Timeframe::Daily => secs - secs.rem_euclid(DAY),
            Timeframe::Weekly => {
                let date = t.date_naive();
                let back = Days::new(u64::from(date.weekday().num_days_from_monday()));
                midnight(date.checked_sub_days(back).unwrap_or(NaiveDate::MIN))
            }
            Timeframe::Monthly => {
                let date = t.date_naive();
                midnight(date.with_day(1).unwrap_or(date))
            }
            Timeframe::AllTime => 0,
            Timeframe::Schedule(_) => secs,
        };
        WindowKey {
            timeframe: self,
            start,
        }
    }

    /// The persisted byte of a built-in timeframe (checkpoints and history keys). These
    /// values are on disk: never change or reuse one. `None` for a schedule.
    fn builtin_byte(self) -> Option<u8> {
        match self {
            Timeframe::Hourly => Some(0),
            Timeframe::Daily => Some(1),
            Timeframe::Weekly => Some(2),
            Timeframe::Monthly => Some(3),
            Timeframe::AllTime => Some(4),
            Timeframe::Schedule(_) => None,
        }
    }

    /// Appends the byte form used in checkpoint and history keys: a built-in is its
    /// `builtin_byte` (one byte, as before schedules existed); a schedule
    /// is `0xFF`, the id length and the id.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match (self, self.builtin_byte()) {
            (_, Some(b)) => out.push(b),
            (Timeframe::Schedule(id), None) => {
                out.push(SCHEDULE_BYTE);
                out.push(id.len);
                out.extend_from_slice(id.as_str().as_bytes());
            }
            (_, None) => unreachable!("only schedules have no built-in byte"),
        }
    }

    /// Reads [`Timeframe::encode`]'s form from the front of `b`; returns it and the bytes used.
    pub fn decode(b: &[u8]) -> Result<(Timeframe, usize), KeyBytesError> {
        match b.first() {
            Some(&SCHEDULE_BYTE) => {
                let len = usize::from(*b.get(1).ok_or(KeyBytesError::Truncated)?);
                let id = b.get(2..2 + len).ok_or(KeyBytesError::Truncated)?;
                let id = ScheduleId::new(std::str::from_utf8(id)?)?;
                Ok((Timeframe::Schedule(id), 2 + len))
            }
            Some(&i) => Timeframe::ALL
                .into_iter()
                .find(|tf| tf.builtin_byte() == Some(i))
                .map(|tf| (tf, 1))
                .ok_or(KeyBytesError::UnknownByte(i)),
            None => Err(KeyBytesError::Truncated),
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a built-in name, or any valid schedule id (whether a board has that schedule is the
/// board's question).
impl FromStr for Timeframe {
    type Err = UnknownTimeframe;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(tf) = Timeframe::ALL.into_iter().find(|tf| tf.as_str() == s) {
            return Ok(tf);
        }
        ScheduleId::new(s)
            .map(Timeframe::Schedule)
            .map_err(|_| UnknownTimeframe(s.to_owned()))
    }
}

impl Serialize for Timeframe {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Timeframe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The first byte of a schedule's byte form (built-ins use 0 to 4).
const SCHEDULE_BYTE: u8 = 0xFF;

/// A canonical key text of `tf`, for error messages.
fn key_example(tf: Timeframe) -> &'static str {
    match tf {
        Timeframe::Hourly => "2025-11-18T12",
        Timeframe::Daily => "2025-11-18",
        Timeframe::Weekly => "2025-W47",
        Timeframe::Monthly => "2025-11",
        Timeframe::AllTime => "all_time",
        Timeframe::Schedule(_) => "2026-12-01T18:00:00Z",
    }
}

fn midnight(date: NaiveDate) -> i64 {
    date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()
}

/// One window of one timeframe. Ordered by timeframe, then start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    timeframe: Timeframe,
    /// Unix seconds of the window's label start (0 for `all_time`): see the module docs.
    start: i64,
}

impl WindowKey {
    /// The single `all_time` window.
    pub const ALL_TIME: WindowKey = WindowKey {
        timeframe: Timeframe::AllTime,
        start: 0,
    };

    /// The window of schedule `id` that starts at `start` (real UTC).
    pub fn schedule(id: ScheduleId, start: DateTime<Utc>) -> WindowKey {
        WindowKey {
            timeframe: Timeframe::Schedule(id),
            start: start.timestamp(),
        }
    }

    pub fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// Parses the canonical key text of timeframe `tf` (`2025-11-18T12`, `2025-11-18`, `2025-W47`,
    /// `2025-11`, `all_time`, and for schedules `2026-12-01T18:00:00Z`); rejects other
    /// timeframes' keys and dates that do not exist.
    pub fn parse(tf: Timeframe, s: &str) -> Result<WindowKey, InvalidWindowKey> {
        let invalid = || InvalidWindowKey {
            timeframe: tf,
            text: s.to_owned(),
        };
        let num = |part: Option<&str>, width: usize| {
            part.filter(|p| p.len() == width && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u32>().ok())
        };
        let date = |d: &str| {
            let mut it = d.split('-');
            let (y, m, day) = (num(it.next(), 4)?, num(it.next(), 2)?, num(it.next(), 2)?);
            if it.next().is_some() {
                return None;
            }
            NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, day)
        };
        let start = match tf {
            Timeframe::AllTime => (s == "all_time").then_some(0),
            Timeframe::Daily => date(s).map(midnight),
            Timeframe::Hourly => s.split_once('T').and_then(|(d, h)| {
                let hour = num(Some(h), 2).filter(|h| *h < 24)?;
                Some(midnight(date(d)?) + i64::from(hour) * HOUR)
            }),
            Timeframe::Weekly => s.split_once("-W").and_then(|(y, w)| {
                let year = i32::try_from(num(Some(y), 4)?).ok()?;
                NaiveDate::from_isoywd_opt(year, num(Some(w), 2)?, Weekday::Mon).map(midnight)
            }),
            Timeframe::Monthly => s.split_once('-').and_then(|(y, m)| {
                let year = i32::try_from(num(Some(y), 4)?).ok()?;
                NaiveDate::from_ymd_opt(year, num(Some(m), 2)?, 1).map(midnight)
            }),
            Timeframe::Schedule(_) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true) == s)
                .map(|t| t.timestamp()),
        }
        .ok_or_else(invalid)?;
        Ok(WindowKey {
            timeframe: tf,
            start,
        })
    }

    /// The label start (see the module docs); `None` for `all_time`. For a UTC board, and for
    /// hourly and schedule windows, this is the real start.
    pub fn label_start(&self) -> Option<DateTime<Utc>> {
        match self.timeframe {
            Timeframe::AllTime => None,
            _ => DateTime::from_timestamp(self.start, 0),
        }
    }

    /// The label end of a built-in window (the next window's label start); `None` for
    /// `all_time` and schedules (whose end the calendar knows).
    pub fn label_end(&self) -> Option<DateTime<Utc>> {
        let start = self.label_start()?;
        match self.timeframe {
            Timeframe::Hourly => start.checked_add_signed(TimeDelta::hours(1)),
            Timeframe::Daily => start.checked_add_signed(TimeDelta::days(1)),
            Timeframe::Weekly => start.checked_add_signed(TimeDelta::weeks(1)),
            Timeframe::Monthly => start.checked_add_months(Months::new(1)),
            Timeframe::AllTime | Timeframe::Schedule(_) => None,
        }
    }

    /// Eight bytes whose byte order is the window's start order (sign-flipped big-endian start
    /// seconds), for sled keys scoped to one timeframe.
    pub fn to_sortable_bytes(&self) -> [u8; 8] {
        let mut b = self.start.to_be_bytes();
        b[0] ^= 0x80;
        b
    }

    /// Inverse of [`WindowKey::to_sortable_bytes`]; rejects other lengths and starts that are not
    /// a window boundary of a built-in `tf` (a schedule's boundaries are its calendar's).
    pub fn from_sortable_bytes(tf: Timeframe, bytes: &[u8]) -> Result<WindowKey, KeyBytesError> {
        let mut b: [u8; 8] = bytes
            .try_into()
            .map_err(|_| KeyBytesError::KeyLength(bytes.len()))?;
        b[0] ^= 0x80;
        let start = i64::from_be_bytes(b);
        let key = WindowKey {
            timeframe: tf,
            start,
        };
        let aligned = match tf {
            Timeframe::AllTime => start == 0,
            Timeframe::Schedule(_) => DateTime::from_timestamp(start, 0).is_some(),
            _ => DateTime::from_timestamp(start, 0).is_some_and(|t| tf.window_of(t) == key),
        };
        if aligned {
            Ok(key)
        } else {
            Err(KeyBytesError::Unaligned {
                timeframe: tf,
                start,
            })
        }
    }
}

impl fmt::Display for WindowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(start) = self.label_start() else {
            return f.write_str("all_time");
        };
        let d = start.date_naive();
        match self.timeframe {
            Timeframe::Hourly => {
                let hour = self.start.rem_euclid(DAY) / HOUR;
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{hour:02}",
                    d.year(),
                    d.month(),
                    d.day()
                )
            }
            Timeframe::Daily => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            Timeframe::Weekly => {
                let w = d.iso_week();
                write!(f, "{:04}-W{:02}", w.year(), w.week())
            }
            Timeframe::Monthly => write!(f, "{:04}-{:02}", d.year(), d.month()),
            Timeframe::AllTime => f.write_str("all_time"),
            Timeframe::Schedule(_) => {
                f.write_str(&start.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
        }
    }
}

/// Serialized as its key text.
impl Serialize for WindowKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An RFC 3339 time (test input).
    pub(in crate::leaderboard) fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect(s)
            .with_timezone(&Utc)
    }

    fn key(tf: Timeframe, at: &str) -> String {
        tf.window_of(t(at)).to_string()
    }

    #[test]
    fn hour_and_day_edges() {
        use Timeframe::*;
        assert_eq!(key(Hourly, "2025-11-18T12:59:59.999Z"), "2025-11-18T12");
        assert_eq!(key(Hourly, "2025-11-18T13:00:00Z"), "2025-11-18T13");
        assert_eq!(key(Hourly, "2025-11-18T00:00:00Z"), "2025-11-18T00");
        assert_eq!(key(Daily, "2025-11-18T23:59:59.999Z"), "2025-11-18");
        assert_eq!(key(Daily, "2025-11-19T00:00:00Z"), "2025-11-19");
        assert_eq!(
            key(Daily, "2025-11-19T01:30:00+02:00"),
            "2025-11-18",
            "keyed in UTC"
        );
        let k = Hourly.window_of(t("2024-12-31T23:10:00Z"));
        assert_eq!(k.to_string(), "2024-12-31T23");
        assert_eq!(k.label_end(), Some(t("2025-01-01T00:00:00Z")));
        assert_eq!(
            key(Daily, "1969-12-31T23:59:59Z"),
            "1969-12-31",
            "before the epoch"
        );
        assert_eq!(key(Hourly, "1969-12-31T23:59:59Z"), "1969-12-31T23");
    }

    #[test]
    fn iso_week_edges() {
        use Timeframe::Weekly;
        assert_eq!(key(Weekly, "2025-11-18T12:00:00Z"), "2025-W47");
        assert_eq!(
            key(Weekly, "2025-11-23T23:59:59.999Z"),
            "2025-W47",
            "Sunday ends the week"
        );
        assert_eq!(
            key(Weekly, "2025-11-24T00:00:00Z"),
            "2025-W48",
            "Monday starts the next"
        );
        assert_eq!(key(Weekly, "2021-01-03T12:00:00Z"), "2020-W53");
        assert_eq!(key(Weekly, "2020-12-28T00:00:00Z"), "2020-W53");
        assert_eq!(key(Weekly, "2021-01-04T00:00:00Z"), "2021-W01");
        assert_eq!(key(Weekly, "2024-12-30T00:00:00Z"), "2025-W01");
        assert_eq!(key(Weekly, "2024-12-29T23:59:59Z"), "2024-W52");
        assert_eq!(key(Weekly, "2026-01-01T00:00:00Z"), "2026-W01");
        let w = WindowKey::parse(Weekly, "2025-W01").expect("valid");
        assert_eq!(w.label_start(), Some(t("2024-12-30T00:00:00Z")));
        assert_eq!(w.label_end(), Some(t("2025-01-06T00:00:00Z")));
        assert!(WindowKey::parse(Weekly, "2020-W53").is_ok());
        assert!(
            WindowKey::parse(Weekly, "2021-W53").is_err(),
            "2021 has 52 ISO weeks"
        );
        assert!(WindowKey::parse(Weekly, "2025-W00").is_err());
    }

    #[test]
    fn month_ends_and_leap_day() {
        use Timeframe::*;
        assert_eq!(key(Monthly, "2024-02-29T23:59:59.999Z"), "2024-02");
        assert_eq!(key(Monthly, "2024-03-01T00:00:00Z"), "2024-03");
        assert_eq!(key(Daily, "2024-02-29T12:00:00Z"), "2024-02-29");
        let feb = Monthly.window_of(t("2024-02-10T00:00:00Z"));
        assert_eq!(feb.label_end(), Some(t("2024-03-01T00:00:00Z")));
        let dec = Monthly.window_of(t("2025-12-31T23:59:59Z"));
        assert_eq!(dec.to_string(), "2025-12");
        assert_eq!(dec.label_end(), Some(t("2026-01-01T00:00:00Z")));
        assert!(WindowKey::parse(Daily, "2024-02-29").is_ok());
        assert!(WindowKey::parse(Daily, "2023-02-29").is_err());
        assert!(WindowKey::parse(Daily, "2025-04-31").is_err());
        assert_eq!(key(Monthly, "2025-04-30T23:59:59Z"), "2025-04");
    }

    #[test]
    fn parse_rejects_wrong_or_noncanonical_keys() {
        use Timeframe::*;
        for (tf, bad) in [
            (Hourly, "2025-11-18"),
            (Hourly, "2025-11-18T24"),
            (Hourly, "2025-11-18T1"),
            (Daily, "2025-11-18T12"),
            (Daily, "2025-1-18"),
            (Daily, "2025-11-18 "),
            (Daily, "+2025-11-18"),
            (Weekly, "2025-47"),
            (Weekly, "2025-W7"),
            (Monthly, "2025-13"),
            (Monthly, "2025-00"),
            (Monthly, "2025-11-01"),
            (AllTime, "2025"),
            (Daily, "all_time"),
            (Daily, ""),
        ] {
            let e = WindowKey::parse(tf, bad).expect_err(bad);
            assert!(e.to_string().contains(tf.as_str()), "{e}");
        }
        assert_eq!(
            WindowKey::parse(AllTime, "all_time"),
            Ok(WindowKey::ALL_TIME)
        );
        assert_eq!(WindowKey::ALL_TIME.to_string(), "all_time");
        assert_eq!(WindowKey::ALL_TIME.label_start(), None);
        assert_eq!(WindowKey::ALL_TIME.label_end(), None);
    }

    #[test]
    fn schedule_keys_are_utc_instants() {
        let tf: Timeframe = "weekly_tue".parse().unwrap();
        let k = WindowKey::parse(tf, "2026-12-01T18:00:00Z").unwrap();
        assert_eq!(k.to_string(), "2026-12-01T18:00:00Z");
        assert_eq!(k.label_start(), Some(t("2026-12-01T18:00:00Z")));
        for bad in [
            "2026-12-01T18:00:00+00:00",
            "2026-12-01T18:00:00.000Z",
            "2026-12-01",
            "2026-12-01T10:00:00-08:00",
        ] {
            assert!(WindowKey::parse(tf, bad).is_err(), "{bad}");
        }
        assert_eq!(
            WindowKey::from_sortable_bytes(tf, &k.to_sortable_bytes()),
            Ok(k)
        );
    }

    #[test]
    fn sortable_bytes() {
        let a = Timeframe::Daily.window_of(t("1969-12-31T00:00:00Z"));
        let b = Timeframe::Daily.window_of(t("1970-01-01T00:00:00Z"));
        let c = Timeframe::Daily.window_of(t("2025-11-18T00:00:00Z"));
        assert!(a.to_sortable_bytes() < b.to_sortable_bytes());
        assert!(b.to_sortable_bytes() < c.to_sortable_bytes());
        assert_eq!(
            WindowKey::from_sortable_bytes(Timeframe::Daily, &c.to_sortable_bytes()),
            Ok(c)
        );
        assert!(
            WindowKey::from_sortable_bytes(Timeframe::Monthly, &c.to_sortable_bytes()).is_err()
        );
        assert!(WindowKey::from_sortable_bytes(Timeframe::Daily, &[0; 7]).is_err());
        let all = WindowKey::ALL_TIME.to_sortable_bytes();
        assert_eq!(
            WindowKey::from_sortable_bytes(Timeframe::AllTime, &all),
            Ok(WindowKey::ALL_TIME)
        );
    }

    #[test]
    fn timeframe_names() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.as_str().parse::<Timeframe>(), Ok(tf));
            let json = serde_json::to_string(&tf).expect("serialize");
            assert_eq!(json, format!("\"{}\"", tf.as_str()));
            assert_eq!(serde_json::from_str::<Timeframe>(&json).ok(), Some(tf));
        }
        assert_eq!(
            "weekly_tue".parse::<Timeframe>().map(|t| t.to_string()),
            Ok("weekly_tue".to_owned())
        );
        assert!("bad id".parse::<Timeframe>().is_err());
        assert!("a-very-long-schedule-name-that-goes-on"
            .parse::<Timeframe>()
            .is_err());
        let mut b = Vec::new();
        let tf: Timeframe = "cup".parse().unwrap();
        tf.encode(&mut b);
        Timeframe::Daily.encode(&mut b);
        assert_eq!(b, [0xFF, 3, b'c', b'u', b'p', 1]);
        assert_eq!(Timeframe::decode(&b), Ok((tf, 5)));
        assert_eq!(Timeframe::decode(&b[5..]), Ok((Timeframe::Daily, 1)));
        assert!(Timeframe::decode(&b[..3]).is_err());
        assert_eq!(Timeframe::decode(&[9]), Err(KeyBytesError::UnknownByte(9)));
        assert_eq!(Timeframe::decode(&[]), Err(KeyBytesError::Truncated));
    }

    /// The persisted bytes of the built-ins are on disk in every data dir: pinned here, not
    /// derived from the order of `Timeframe::ALL`.
    #[test]
    fn builtin_timeframe_bytes_are_fixed() {
        use Timeframe::*;
        for (tf, byte) in [
            (Hourly, 0),
            (Daily, 1),
            (Weekly, 2),
            (Monthly, 3),
            (AllTime, 4),
        ] {
            let mut b = Vec::new();
            tf.encode(&mut b);
            assert_eq!(b, [byte], "{tf}");
            assert_eq!(Timeframe::decode(&b), Ok((tf, 1)));
        }
        let k = Timeframe::Weekly.window_of(t("2025-11-18T00:00:00Z"));
        assert_eq!(
            serde_json::to_string(&k).ok().as_deref(),
            Some("\"2025-W47\"")
        );
    }

    fn timeframe() -> impl Strategy<Value = Timeframe> {
        proptest::sample::select(Timeframe::ALL.to_vec())
    }

    /// Instants from 1900 to 9999 (four-digit years), with sub-second parts.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (-2_208_988_800i64..253_402_300_799, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn window_contains_its_instant(tf in timeframe(), at in instant()) {
            let k = tf.window_of(at);
            match (k.label_start(), k.label_end()) {
                (Some(s), Some(e)) => prop_assert!(s <= at && at < e, "{} {} {} {}", k, s, at, e),
                (None, None) => prop_assert_eq!(tf, Timeframe::AllTime),
                other => prop_assert!(false, "{other:?}"),
            }
            if let Some(e) = k.label_end() {
                prop_assert_ne!(tf.window_of(e), k);
                prop_assert_eq!(tf.window_of(e - TimeDelta::nanoseconds(1)), k);
            }
        }

        #[test]
        fn text_and_bytes_round_trip(tf in timeframe(), at in instant()) {
            let k = tf.window_of(at);
            prop_assert_eq!(WindowKey::parse(tf, &k.to_string()), Ok(k));
            prop_assert_eq!(WindowKey::from_sortable_bytes(tf, &k.to_sortable_bytes()), Ok(k));
        }

        #[test]
        fn orders_agree(tf in timeframe(), a in instant(), b in instant()) {
            let (ka, kb) = (tf.window_of(a), tf.window_of(b));
            if a <= b {
                prop_assert!(ka <= kb);
            }
            prop_assert_eq!(ka.cmp(&kb), ka.to_sortable_bytes().cmp(&kb.to_sortable_bytes()));
        }

        #[test]
        fn parse_never_panics(tf in timeframe(), s in "[0-9TW:+ -]{0,16}") {
            if let Ok(k) = WindowKey::parse(tf, &s) {
                prop_assert_eq!(k.to_string(), s);
            }
        }
    }
}
