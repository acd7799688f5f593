//! Unit tests of the board state: aggregation, windows and lateness, schedules, members,
//! checkpoints.

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

/// Asserts the top entries of one window: `(user, score)` in rank order.
#[track_caller]
fn expect_top(s: &BoardState, tf: Timeframe, key: &str, want: &[(&str, f64)]) {
    let want: Vec<(String, f64)> = want.iter().map(|(u, p)| (u.to_string(), *p)).collect();
    assert_eq!(top(s, tf, key), want, "top of {tf:?} {key}");
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
    expect_top(&s, Timeframe::Daily, "2026-11-01", &[("a", 3.0)]);
    expect_top(&s, Timeframe::Daily, "2026-11-02", &[("b", 4.0)]);
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
    expect_top(&s, Timeframe::Daily, "2026-03-08", &[("c", 1.0)]);
    expect_top(&s, Timeframe::Daily, "2026-03-09", &[("d", 1.0)]);
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
    expect_top(&s, cup, "2026-12-20T00:00:00Z", &[("a", 1.0)]);
    let tue: Timeframe = "tue".parse().unwrap();
    expect_top(&s, tue, "2026-12-22T10:00:00Z", &[("a", 1.0)]);
    assert!(top(&s, tue, "2026-12-15T10:00:00Z").is_empty());
    assert_eq!(top(&s, Timeframe::AllTime, "all_time").len(), 2);
    // Round trip through a checkpoint, schedule timeframes included.
    let back = BoardState::decode(s.def.clone(), &s.encode()).unwrap();
    expect_top(&back, cup, "2026-12-20T00:00:00Z", &[("a", 1.0)]);
}

#[test]
fn attempts_are_capped_per_window() {
    let mut s = BoardState::new(live(json!({"entry": {"max_attempts": 2}})));
    let acc = ms("2025-11-18T12:30:00Z");
    for (i, p) in [5.0, 1.0, 100.0].iter().enumerate() {
        let a = s.apply(i as u64 + 1, acc, &ev("a", *p, "2025-11-18T12:00:00Z"));
        assert_eq!(a.over_attempts, if i == 2 { 2 } else { 0 });
    }
    expect_top(&s, Timeframe::Daily, "2025-11-18", &[("a", 6.0)]);
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
    assert_eq!(
        a.accs["a"].acc.count, 2,
        "attempts are part of the checkpoint"
    );
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
    // (seq, user, board joined, decision); "other" is another board's join.
    let joins = [
        (2, "a", "b", Some(Decision::Joined)),
        (3, "b", "other", None),
        (4, "b", "b", Some(Decision::Joined)),
        (5, "c", "b", Some(Decision::Full)),
    ];
    for (seq, user, board, want) in joins {
        let got = s.apply(seq, acc, &member_ev(MEMBER_JOINED, user, board));
        assert_eq!(got.membership, want, "join #{seq}: {user} to {board}");
    }
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
    expect_top(&back, Timeframe::AllTime, "all_time", &[("a", 2.0)]);
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

/// A log from generated `(user, points, occurred offset s, acceptance delay s)`: the
/// acceptance time of each entry and its event.
fn log_of(evs: &[(u8, i32, i64, i64)]) -> Vec<(i64, Value)> {
    let base = ms("2025-11-18T10:00:00Z");
    evs.iter()
        .map(|(u, p, occ, delay)| {
            let at = Utc.timestamp_millis_opt(base + occ * 1000).unwrap();
            let e = ev(&format!("u{u}"), f64::from(*p), &at.to_rfc3339());
            (base + (occ + delay) * 1000, e)
        })
        .collect()
}

/// A board with every entry of `events` applied one by one, at positions 1, 2, …
fn apply_all(d: Arc<Definition>, events: &[(i64, Value)]) -> BoardState {
    let mut s = BoardState::new(d);
    for (i, (acc, e)) in events.iter().enumerate() {
        s.apply(i as u64 + 1, *acc, e);
    }
    s
}

/// A window's entries in rank order: user, score bits, the position the score was reached at.
fn ranks(w: &Window) -> Vec<(String, u64, u64)> {
    w.ranks
        .iter()
        .map(|e| (e.user_id.to_owned(), e.score.to_bits(), e.reached_at))
        .collect()
}

/// A batch number wraps after 2^32 batches: a user queued long ago under the number the new
/// batch reuses is not taken as queued in it (that would hand another user's move their score).
#[test]
fn a_wrapped_batch_number_confuses_no_users() {
    let at = "2025-11-18T10:00:00Z";
    let events = [
        (ms(at), ev("a", 1.0, at)),
        (ms(at), ev("b", 2.0, at)),
        (ms(at), ev("b", 3.0, at)),
        (ms(at), ev("a", 5.0, at)),
    ];
    let single = apply_all(def("sum", 900), &events);
    let mut s = BoardState::new(def("sum", 900));
    // Batch 1 queues a; the next batches, numbered up to u32::MAX, queue b alone.
    s.begin_batch();
    s.apply(1, events[0].0, &events[0].1);
    s.end_batch();
    for w in s.open.values_mut() {
        w.moves.batch = u32::MAX;
    }
    s.begin_batch();
    s.apply(2, events[1].0, &events[1].1);
    s.end_batch();
    // Numbered 1 again: b is queued first (at index 0, where a was in the first batch 1).
    s.begin_batch();
    s.apply(3, events[2].0, &events[2].1);
    s.apply(4, events[3].0, &events[3].1);
    s.end_batch();
    assert!(s.open.values().all(|w| w.moves.batch == 2));
    for (key, w) in &single.open {
        assert_eq!(ranks(w), ranks(&s.open[key]), "{key:?}");
    }
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
        let events = log_of(&evs);
        let d = def(agg, 900);
        let full = apply_all(d.clone(), &events);
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
            prop_assert_eq!(ranks(w), ranks(r));
        }
    }

    /// Applying the log in batches (the rank index updated once per user at each batch's
    /// end) gives the same standings, reach positions included, as applying it one by one;
    /// so does a window frozen in the middle of the batch.
    #[test]
    fn batches_equal_one_by_one(
        evs in proptest::collection::vec((0u8..5, -3i32..4, 0i64..3 * 3600, 0i64..7200), 1..120),
        cuts in proptest::collection::vec(1usize..30, 1..10),
        agg in prop_oneof![Just("sum"), Just("count"), Just("max"), Just("min"), Just("avg")],
    ) {
        let events = log_of(&evs);
        let d = def(agg, 900);
        let single = apply_all(d.clone(), &events);
        let mut batched = BoardState::new(d);
        let mut i = 0;
        for n in cuts.iter().cycle() {
            if i >= events.len() {
                break;
            }
            batched.begin_batch();
            for (acc, e) in events.iter().skip(i).take(*n) {
                i += 1;
                batched.apply(i as u64, *acc, e);
            }
            batched.end_batch();
        }
        prop_assert_eq!(single.open.len(), batched.open.len());
        // A checkpoint keeps the standings, reach positions included.
        let back = BoardState::decode(batched.def.clone(), &batched.encode()).unwrap();
        for (key, w) in &single.open {
            prop_assert_eq!(ranks(w), ranks(&batched.open[key]));
            prop_assert_eq!(ranks(w), ranks(&back.open[key]));
        }
        // Freezing mid-batch hands out a window whose ranks are complete.
        let mut mid = BoardState::new(def(agg, 900));
        mid.begin_batch();
        for (i, (acc, e)) in events.iter().enumerate() {
            mid.apply(i as u64 + 1, *acc, e);
        }
        for key in single.open.keys().copied().collect::<Vec<_>>() {
            let w = mid.freeze(key.0, key.1).unwrap();
            prop_assert_eq!(ranks(&single.open[&key]), ranks(&w));
        }
        mid.end_batch();
    }

    #[test]
    fn garbage_checkpoints_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = BoardState::decode(def("sum", 0), &buf);
    }
}
