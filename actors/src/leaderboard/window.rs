//! Timeframes and window keys: which window an `occurred_at` falls in, key text and byte forms, and
//! whether a window still accepts late events.
//!
//! All windows are UTC and half-open `[start, end)`. Weekly windows are ISO weeks (Monday 00:00 to
//! the next Monday) named by their ISO week-year, so 2024-12-30 is in `2025-W01` and 2021-01-03 in
//! `2020-W53`. Key texts are canonical: [`WindowKey::parse`] accepts exactly what `Display` prints.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc, Weekday};
use serde::{Deserialize, Serialize, Serializer};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// How long one window of a leaderboard lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timeframe {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    AllTime,
}

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 5] = [
        Timeframe::Hourly,
        Timeframe::Daily,
        Timeframe::Weekly,
        Timeframe::Monthly,
        Timeframe::AllTime,
    ];

    /// The wire name (`"hourly"` … `"all_time"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::Hourly => "hourly",
            Timeframe::Daily => "daily",
            Timeframe::Weekly => "weekly",
            Timeframe::Monthly => "monthly",
            Timeframe::AllTime => "all_time",
        }
    }

    /// The window that contains `t`.
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
        };
        WindowKey {
            timeframe: self,
            start,
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::ALL
            .into_iter()
            .find(|tf| tf.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown timeframe {s:?} (expected hourly, daily, weekly, monthly or all_time)"
                )
            })
    }
}

fn midnight(date: NaiveDate) -> i64 {
    date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()
}

/// One window of one timeframe. Ordered by timeframe, then start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    timeframe: Timeframe,
    /// Unix seconds of the window start (0 for `all_time`).
    start: i64,
}

impl WindowKey {
    /// The single `all_time` window.
    pub const ALL_TIME: WindowKey = WindowKey {
        timeframe: Timeframe::AllTime,
        start: 0,
    };

    pub fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// Parses the canonical key text of timeframe `tf` (`2025-11-18T12`, `2025-11-18`, `2025-W47`,
    /// `2025-11`, `all_time`); rejects other timeframes' keys and dates that do not exist.
    pub fn parse(tf: Timeframe, s: &str) -> Result<WindowKey, String> {
        let invalid = || {
            let example = match tf {
                Timeframe::Hourly => "2025-11-18T12",
                Timeframe::Daily => "2025-11-18",
                Timeframe::Weekly => "2025-W47",
                Timeframe::Monthly => "2025-11",
                Timeframe::AllTime => "all_time",
            };
            format!("invalid {tf} window key {s:?} (expected e.g. {example})")
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
        }
        .ok_or_else(invalid)?;
        Ok(WindowKey {
            timeframe: tf,
            start,
        })
    }

    /// First instant of the window; `None` for `all_time`.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        match self.timeframe {
            Timeframe::AllTime => None,
            _ => DateTime::from_timestamp(self.start, 0),
        }
    }

    /// First instant after the window (exclusive end); `None` for `all_time`.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        let start = self.start()?;
        match self.timeframe {
            Timeframe::Hourly => start.checked_add_signed(TimeDelta::hours(1)),
            Timeframe::Daily => start.checked_add_signed(TimeDelta::days(1)),
            Timeframe::Weekly => start.checked_add_signed(TimeDelta::weeks(1)),
            Timeframe::Monthly => start.checked_add_months(Months::new(1)),
            Timeframe::AllTime => None,
        }
    }

    /// Whether the window still accepts events at `now`: `all_time` always does, any other window
    /// until `end + late_grace_seconds` (exclusive).
    pub fn is_open(&self, now: DateTime<Utc>, late_grace_seconds: u64) -> bool {
        let Some(end) = self.end() else {
            return self.timeframe == Timeframe::AllTime;
        };
        let close = i64::try_from(late_grace_seconds)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .and_then(|grace| end.checked_add_signed(grace));
        // A close time beyond chrono's range is never reached.
        close.is_none_or(|close| now < close)
    }

    /// Eight bytes whose byte order is the window's start order (sign-flipped big-endian start
    /// seconds), for sled keys scoped to one timeframe.
    pub fn to_sortable_bytes(&self) -> [u8; 8] {
        let mut b = self.start.to_be_bytes();
        b[0] ^= 0x80;
        b
    }

    /// Inverse of [`WindowKey::to_sortable_bytes`]; rejects other lengths and starts that are not
    /// a window boundary of `tf`.
    pub fn from_sortable_bytes(tf: Timeframe, bytes: &[u8]) -> Result<WindowKey, String> {
        let mut b: [u8; 8] = bytes
            .try_into()
            .map_err(|_| format!("window key must be 8 bytes, got {}", bytes.len()))?;
        b[0] ^= 0x80;
        let start = i64::from_be_bytes(b);
        let key = WindowKey {
            timeframe: tf,
            start,
        };
        let aligned = match tf {
            Timeframe::AllTime => start == 0,
            _ => DateTime::from_timestamp(start, 0).is_some_and(|t| tf.window_of(t) == key),
        };
        if aligned {
            Ok(key)
        } else {
            Err(format!("{start} is not the start of a {tf} window"))
        }
    }
}

impl fmt::Display for WindowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(start) = self.start() else {
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
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
        assert_eq!(k.end(), Some(t("2025-01-01T00:00:00Z")));
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
        assert_eq!(w.start(), Some(t("2024-12-30T00:00:00Z")));
        assert_eq!(w.end(), Some(t("2025-01-06T00:00:00Z")));
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
        assert_eq!(feb.end(), Some(t("2024-03-01T00:00:00Z")));
        let dec = Monthly.window_of(t("2025-12-31T23:59:59Z"));
        assert_eq!(dec.to_string(), "2025-12");
        assert_eq!(dec.end(), Some(t("2026-01-01T00:00:00Z")));
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
            assert!(e.contains(tf.as_str()), "{e}");
        }
        assert_eq!(
            WindowKey::parse(AllTime, "all_time"),
            Ok(WindowKey::ALL_TIME)
        );
        assert_eq!(WindowKey::ALL_TIME.to_string(), "all_time");
        assert_eq!(WindowKey::ALL_TIME.start(), None);
        assert_eq!(WindowKey::ALL_TIME.end(), None);
    }

    #[test]
    fn open_until_end_plus_grace() {
        let k = Timeframe::Hourly.window_of(t("2025-11-18T12:30:00Z"));
        assert!(k.is_open(t("2025-11-18T12:59:59Z"), 0));
        assert!(!k.is_open(t("2025-11-18T13:00:00Z"), 0));
        assert!(k.is_open(t("2025-11-18T13:59:59Z"), 3600));
        assert!(!k.is_open(t("2025-11-18T14:00:00Z"), 3600));
        assert!(k.is_open(t("2025-11-18T14:00:00Z"), u64::MAX));
        assert!(WindowKey::ALL_TIME.is_open(t("2999-01-01T00:00:00Z"), 0));
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
        assert!("yearly".parse::<Timeframe>().is_err());
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
            match (k.start(), k.end()) {
                (Some(s), Some(e)) => prop_assert!(s <= at && at < e, "{} {} {} {}", k, s, at, e),
                (None, None) => prop_assert_eq!(tf, Timeframe::AllTime),
                other => prop_assert!(false, "{other:?}"),
            }
            if let Some(e) = k.end() {
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
