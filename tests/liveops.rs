//! Black-box live-ops tests through the real binary (SPEC §12): local-time resets across
//! daylight saving, schedules (cron and fixed windows), tournaments (membership, caps,
//! attempts, restarts), shared ties, percentiles, friends boards, the windows listing, and
//! every bad definition being a 400 that names its field.
//!
//! The server clock is real, so windows are reached with past `occurred_at` inside a large
//! `late_grace_seconds`, and closings are watched with small windows and graces.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as Dur, NaiveTime, SecondsFormat, TimeZone, Utc};
use common::ws::{demo_backend, next_where, send, with_token, Ws};
use common::*;
use serde_json::{json, Value};

/// Largest grace a board accepts: 366 days.
const YEAR_GRACE: u64 = 31_622_400;

fn ev(id: &str, user: &str, points: f64, at: DateTime<Utc>) -> Value {
    json!({
        "tenant_id": "placeholder", "event_id": id, "type": "match.completed",
        "actor": {"user_id": user}, "occurred_at": at.to_rfc3339(),
        "attrs": {"score": points}
    })
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn board(extra: Value) -> Value {
    let mut d = json!({"rules": [{"event_type": "match.completed", "points_expression": "attrs.score"}],
                       "timeframes": ["all_time"]});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

async fn windows(c: &Client, id: &str, query: &str) -> Vec<Value> {
    let (s, v) = c
        .get(&format!("/v1/leaderboards/{id}/windows"), query)
        .await;
    assert_eq!(s, 200, "{v}");
    v["windows"].as_array().unwrap().clone()
}

/// Poll the windows listing of `id` until `state` holds for it (checked every 100 ms, for
/// at most 30 s); the listing then.
async fn windows_until(
    c: &Client,
    id: &str,
    query: &str,
    state: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut list = Vec::new();
    for _ in 0..300 {
        list = windows(c, id, query).await;
        if state(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id}?{query}: never reached the state wanted: {list:?}");
}

/// The next frame of type `ty`; an error frame on the way fails.
async fn next_frame(ws: &mut Ws, ty: &str) -> Value {
    next_where(ws, |f| {
        assert_ne!(f["type"], "error", "{f}");
        f["type"] == ty
    })
    .await
}

/// The next update must move `user` to `rank`.
async fn assert_update_ranks(ws: &mut Ws, user: &str, rank: u64) {
    let up = next_frame(ws, "update").await;
    assert!(
        up["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["user_id"] == user && ch["rank"] == rank),
        "{user} at {rank}: {up}"
    );
}

/// A server in a fresh directory with board `id` (`board(extra)`) on the standard tenant.
async fn start_with_board(id: &str, extra: Value) -> (tempfile::TempDir, Server, Client) {
    let (dir, server, c) = fresh();
    c.create_board(id, &board(extra)).await;
    (dir, server, c)
}

/// Los Angeles' last midnight before `now`, in UTC (whatever the season: chrono-tz knows
/// the offset of that day).
fn la_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let la = chrono_tz::America::Los_Angeles;
    let local = now.with_timezone(&la).date_naive();
    la.from_local_datetime(&local.and_time(NaiveTime::MIN))
        .earliest()
        .expect("Los Angeles has a midnight every day")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn daily_and_weekly_reset_at_local_midnight_across_daylight_saving() {
    let (_dir, _server, c) = start_with_board(
        "la",
        json!({"timezone": "America/Los_Angeles", "timeframes": ["daily", "weekly"],
                      "late_grace_seconds": YEAR_GRACE}),
    )
    .await;
    let (s, def) = c.get("/v1/leaderboards/la", "").await;
    assert_eq!(
        (s, def["timezone"].as_str()),
        (200, Some("America/Los_Angeles"))
    );
    c.ingest(&[
        // 2026-11-01 (clocks fall back): local 00:00 PDT = 07:00Z … 23:59:59 PST = 07:59:59Z next day.
        ev("f1", "ann", 1.0, t("2026-11-01T07:00:00Z")),
        ev("f2", "ann", 2.0, t("2026-11-02T07:59:59Z")),
        ev("f3", "bob", 4.0, t("2026-11-02T08:00:00Z")),
        ev("f0", "cy", 8.0, t("2026-11-01T06:59:59Z")),
        // 2026-03-08 (clocks spring forward): 08:00Z … 06:59:59Z next day.
        ev("s1", "dee", 1.0, t("2026-03-09T06:59:59Z")),
        ev("s2", "eve", 1.0, t("2026-03-09T07:00:00Z")),
        ev("s0", "fay", 1.0, t("2026-03-08T07:59:59Z")),
    ])
    .await;
    let fall = c
        .expect_standings(
            "la",
            "timeframe=daily&window=2026-11-01",
            vec![row(1, "ann", 3.0)],
        )
        .await;
    assert_eq!(fall["window"], "2026-11-01");
    // Local Sunday 2026-11-01 23:59 PST is still ISO week 44; Monday 00:00 PST starts week 45.
    for (window, want) in [
        ("daily&window=2026-11-02", vec![row(1, "bob", 4.0)]),
        ("daily&window=2026-10-31", vec![row(1, "cy", 8.0)]),
        ("daily&window=2026-03-08", vec![row(1, "dee", 1.0)]),
        ("daily&window=2026-03-09", vec![row(1, "eve", 1.0)]),
        ("daily&window=2026-03-07", vec![row(1, "fay", 1.0)]),
        (
            "weekly&window=2026-W44",
            vec![row(1, "cy", 8.0), row(2, "ann", 3.0)],
        ),
        ("weekly&window=2026-W45", vec![row(1, "bob", 4.0)]),
    ] {
        c.expect_standings("la", &format!("timeframe={window}"), want)
            .await;
    }

    // The listing gives the real spans: 25 and 23 hours.
    let list = windows(&c, "la", "timeframe=daily&limit=100").await;
    let span = |key: &str| {
        let w = list
            .iter()
            .find(|w| w["window"] == key)
            .unwrap_or_else(|| panic!("{key} in {list:?}"));
        (
            t(w["start"].as_str().unwrap()),
            t(w["end"].as_str().unwrap()),
            w["state"].as_str().unwrap().to_owned(),
        )
    };
    let (s, e, state) = span("2026-11-01");
    assert_eq!(
        (s, e),
        (t("2026-11-01T07:00:00Z"), t("2026-11-02T08:00:00Z"))
    );
    assert_eq!(e - s, Dur::hours(25));
    assert_eq!(state, "grace", "ended, still inside the late grace");
    let (s, e, _) = span("2026-03-08");
    assert_eq!(e - s, Dur::hours(23));
    // Newest first, and today's local date is listed as open.
    let today = Utc::now()
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .date_naive()
        .to_string();
    assert_eq!(list[0]["window"], today.as_str(), "{list:?}");
    assert_eq!(list[0]["state"], "open");
    let (s, v) = c
        .get("/v1/leaderboards/la/standings", "timeframe=daily")
        .await;
    assert_eq!((s, v["window"].as_str()), (200, Some(today.as_str())));
}

#[tokio::test]
async fn local_windows_freeze_at_local_midnight_plus_grace() {
    let now = Utc::now();
    let midnight = la_midnight(now);
    // Yesterday (local) closes a few seconds from now.
    let grace = u64::try_from((now - midnight).num_seconds()).unwrap() + 3;
    let (_dir, _server, c) = start_with_board(
        "la",
        json!({"timezone": "America/Los_Angeles", "timeframes": ["daily"],
                      "late_grace_seconds": grace}),
    )
    .await;
    let yesterday = (midnight - Dur::seconds(1))
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .date_naive()
        .to_string();
    c.ingest(&[ev("y1", "ann", 5.0, midnight - Dur::seconds(1))])
        .await;
    let q = format!("timeframe=daily&window={yesterday}");
    c.expect_standings("la", &q, vec![row(1, "ann", 5.0)]).await;
    // Yesterday closes.
    windows_until(&c, "la", "timeframe=daily", |list| {
        list.iter()
            .any(|w| w["window"] == yesterday.as_str() && w["state"] == "closed")
    })
    .await;
    // Frozen into history: still queryable, and a late event no longer counts (the event after
    // it shows it was applied).
    c.ingest(&[ev("y2", "bob", 9.0, midnight - Dur::seconds(2))])
        .await;
    c.ingest(&[ev("t1", "cy", 1.0, Utc::now())]).await;
    c.expect_standings("la", "timeframe=daily", vec![row(1, "cy", 1.0)])
        .await;
    c.expect_standings("la", &q, vec![row(1, "ann", 5.0)]).await;
}

/// The start of the weekly Tuesday-10:00-Los-Angeles window holding `now` (PST: 18:00Z).
fn last_tuesday_10_la(now: DateTime<Utc>) -> DateTime<Utc> {
    let mut d = now.date_naive();
    loop {
        let fire = Utc.from_utc_datetime(&d.and_hms_opt(18, 0, 0).unwrap());
        if d.weekday() == chrono::Weekday::Tue && fire <= now {
            return fire;
        }
        d = d.pred_opt().unwrap();
    }
}

#[tokio::test]
async fn schedules_are_timeframes_for_standings_users_windows_and_websocket() {
    let now = Utc::now();
    let season_start = (now - Dur::hours(2)).with_nanosecond_zero();
    let season_end = (now + Dur::hours(2)).with_nanosecond_zero();
    let (_dir, server, c) = start_with_board(
        "cup",
        json!({
        "timezone": "America/Los_Angeles",
        "late_grace_seconds": YEAR_GRACE,
        "schedules": [
            {"id": "weekly_tue", "cron": "0 10 * * 2"},
            {"id": "season", "start": iso(season_start), "end": iso(season_end)},
            {"id": "winter_cup", "start": "2027-12-20T00:00:00Z", "end": "2028-01-03T00:00:00Z"}
        ]}),
    )
    .await;
    let fire = last_tuesday_10_la(now);
    c.ingest(&[
        ev("w1", "ann", 3.0, now - Dur::minutes(1)),
        ev("w2", "bob", 5.0, now - Dur::minutes(2)),
        // The previous cron window, and before the season.
        ev("w0", "cy", 7.0, fire - Dur::seconds(1)),
    ])
    .await;
    let key = iso(fire);
    let v = c
        .expect_standings(
            "cup",
            "timeframe=weekly_tue&window=current",
            vec![row(1, "bob", 5.0), row(2, "ann", 3.0)],
        )
        .await;
    assert_eq!(v["window"], key.as_str());
    assert_eq!(v["timeframe"], "weekly_tue");
    c.expect_standings(
        "cup",
        &format!("timeframe=weekly_tue&window={key}"),
        vec![row(1, "bob", 5.0), row(2, "ann", 3.0)],
    )
    .await;
    let prev = iso(fire - Dur::days(7));
    c.expect_standings(
        "cup",
        &format!("timeframe=weekly_tue&window={prev}"),
        vec![row(1, "cy", 7.0)],
    )
    .await;
    let mut season = vec![row(1, "bob", 5.0), row(2, "ann", 3.0)];
    if fire - Dur::seconds(1) >= season_start {
        season.insert(0, row(1, "cy", 7.0));
        season[1].0 = 2;
        season[2].0 = 3;
    }
    let v = c.expect_standings("cup", "timeframe=season", season).await;
    assert_eq!(v["window"], iso(season_start).as_str());
    // Outside a fixed window `current` is 404; a known key with nothing in it is 404 too.
    let (s, e) = c
        .get("/v1/leaderboards/cup/standings", "timeframe=winter_cup")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    // Unknown timeframes are 400; a window key of the wrong shape is 400.
    c.assert_queries_invalid(
        "/v1/leaderboards/cup/standings",
        &[
            "timeframe=monthly_cup",
            "timeframe=weekly_tue&window=2026-12-01",
            "timeframe=weekly_tue&window=2026-12-01T18:00:00%2B00:00",
        ],
    )
    .await;
    // User queries take schedules too.
    let (s, u) = c.user("cup", "ann", "timeframe=weekly_tue").await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        (u["rank"].as_u64(), u["window"].as_str()),
        (Some(2), Some(key.as_str()))
    );
    // The listing: newest first, with state and close time.
    let list = windows(&c, "cup", "timeframe=weekly_tue").await;
    assert_eq!(list[0]["window"], key.as_str());
    assert_eq!(list[0]["state"], "open");
    assert_eq!(list[0]["end"], iso(fire + Dur::days(7)).as_str());
    assert_eq!(list[1]["window"], prev.as_str());
    assert_eq!(list[1]["state"], "grace");
    assert_eq!(
        windows(&c, "cup", "timeframe=weekly_tue&limit=1")
            .await
            .len(),
        1
    );
    assert!(windows(&c, "cup", "timeframe=winter_cup").await.is_empty());
    c.assert_queries_invalid(
        "/v1/leaderboards/cup/windows",
        &[
            "timeframe=weekly_tue&limit=0",
            "timeframe=weekly_tue&limit=101",
            "timeframe=nope",
            "colour=red",
        ],
    )
    .await;

    // A WebSocket view of a schedule.
    let mut ws = demo_backend(&server.base).await;
    let sub = json!({"type": "subscribe", "id": "s", "leaderboard": "cup",
                     "timeframe": "weekly_tue", "view": {"top": 5}});
    send(&mut ws, sub).await;
    let snap = next_frame(&mut ws, "snapshot").await;
    assert_eq!(snap["window"], key.as_str(), "{snap}");
    assert_eq!(snap["entries"].as_array().unwrap().len(), 2, "{snap}");
    c.ingest(&[ev("w3", "dan", 9.0, now)]).await;
    assert_update_ranks(&mut ws, "dan", 1).await;
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap()
    }
}

#[tokio::test]
async fn a_fixed_window_freezes_at_its_end_plus_grace() {
    let now = Utc::now().with_nanosecond_zero();
    let (start, end) = (now - Dur::hours(1), now + Dur::seconds(3));
    let (_dir, _server, c) = start_with_board(
        "sprint",
        json!({"late_grace_seconds": 1,
                      "schedules": [{"id": "sprint", "start": iso(start), "end": iso(end)}]}),
    )
    .await;
    c.ingest(&[ev("a", "ann", 2.0, now - Dur::seconds(10))])
        .await;
    c.expect_standings("sprint", "timeframe=sprint", vec![row(1, "ann", 2.0)])
        .await;
    let list = windows_until(&c, "sprint", "timeframe=sprint", |list| {
        list.first().is_some_and(|w| w["state"] == "closed")
    })
    .await;
    assert_eq!(list[0]["closes_at"], iso(end + Dur::seconds(1)).as_str());
    // After the end: `current` is 404, the window itself is still there.
    let (s, e) = c
        .get("/v1/leaderboards/sprint/standings", "timeframe=sprint")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    // Frozen: queryable from history after the board wrote it.
    let q = format!("timeframe=sprint&window={}", iso(start));
    c.expect_standings("sprint", &q, vec![row(1, "ann", 2.0)])
        .await;
}

/// Join `user` to `board`: signed by the tenant, or with a client token.
async fn join_with(c: &Client, board: &str, user: &str, bearer: Option<&str>) -> (u16, Value) {
    let path = format!("/v1/leaderboards/{board}/members/{user}");
    match bearer {
        Some(tok) => plain::call(&c.base, "POST", &path, Some(tok), None).await,
        None => c.request("POST", &path, b"").await,
    }
}

async fn members(c: &Client, board: &str, query: &str) -> Value {
    let (s, v) = c
        .get(&format!("/v1/leaderboards/{board}/members"), query)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn member_ids(v: &Value) -> Vec<&str> {
    strs(&v["members"], "user_id")
}

#[tokio::test]
async fn tournaments_admit_members_cap_attempts_and_survive_restarts() {
    let (dir, mut server, c) = start_with_board(
        "cup",
        json!({"timeframes": ["daily", "all_time"],
                      "entry": {"join_required": true, "max_members": 2, "max_attempts": 2}}),
    )
    .await;
    c.create_board("open", &board(json!({}))).await;
    // Not a member yet: scores nothing.
    c.ingest(&[ev("pre", "ann", 50.0, Utc::now())]).await;

    let (s, v) = join_with(&c, "cup", "ann", None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["member"], true);
    let (s, _) = join_with(&c, "cup", "ann", None).await;
    assert_eq!(s, 200, "already a member");
    let bob = c.token("bob", 600).await;
    let (s, v) = join_with(&c, "cup", "bob", Some(&bob)).await;
    assert_eq!(s, 201, "own token: {v}");
    let (s, e) = join_with(&c, "cup", "cy", Some(&bob)).await;
    assert_envelope(s, &e, 403, "FORBIDDEN");
    let (s, e) = join_with(&c, "cup", "cy", None).await;
    assert_envelope(s, &e, 409, "CONFLICT");
    let (s, e) = join_with(&c, "open", "cy", None).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let (s, e) = join_with(&c, "nope", "cy", None).await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (s, e) = plain::call(
        &c.base,
        "POST",
        "/v1/leaderboards/cup/members/cy",
        None,
        None,
    )
    .await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let m = members(&c, "cup", "").await;
    assert_eq!(member_ids(&m), ["ann", "bob"]);
    assert_eq!(m["total"], 2);
    let page = members(&c, "cup", "limit=1").await;
    assert_eq!(
        (member_ids(&page), page["next"].as_str()),
        (vec!["ann"], Some("ann"))
    );
    assert_eq!(member_ids(&members(&c, "cup", "after=ann").await), ["bob"]);

    // Two scored events per user per window; the third is counted, not scored.
    let now = Utc::now();
    c.ingest(&[
        ev("a1", "ann", 1.0, now),
        ev("a2", "ann", 2.0, now),
        ev("a3", "ann", 100.0, now),
        ev("b1", "bob", 4.0, now),
        ev("c1", "cy", 9.0, now),
    ])
    .await;
    let want = vec![row(1, "bob", 4.0), row(2, "ann", 3.0)];
    c.expect_standings("cup", "timeframe=all_time", want.clone())
        .await;
    let open = ranked(&[("ann", 153.0), ("cy", 9.0), ("bob", 4.0)]);
    c.expect_standings("open", "timeframe=all_time", open).await;
    let (metrics, over) = (
        server.metrics().await,
        "phoenix_leaderboard_over_attempts_total",
    );
    assert_eq!(
        sample(&metrics, over, &[("board", "cup")]),
        Some(2.0),
        "two windows refused ann's third event"
    );

    // Leave, and the freed place goes to the next join.
    let (s, _) = c
        .request("DELETE", "/v1/leaderboards/cup/members/bob", b"")
        .await;
    assert_eq!(s, 204);
    let (s, e) = c
        .request("DELETE", "/v1/leaderboards/cup/members/bob", b"")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (s, _) = join_with(&c, "cup", "cy", None).await;
    assert_eq!(s, 201);
    c.ingest(&[ev("b2", "bob", 40.0, Utc::now())]).await;
    // Joins and leaves are durable events of the tenant's log.
    let log = c.log().await;
    let types: Vec<&str> = log
        .iter()
        .filter_map(|e| e["event"]["type"].as_str())
        .filter(|t| t.starts_with("leaderboard.member_"))
        .collect();
    assert_eq!(
        types,
        [
            "leaderboard.member_joined",
            "leaderboard.member_joined",
            "leaderboard.member_joined",
            "leaderboard.member_left",
            "leaderboard.member_joined"
        ],
        "a refused join is logged too (the board decides in log order)"
    );

    // SIGKILL and restart: members and attempts come back exactly.
    server.kill();
    let server = Server::start(dir.path());
    let c = server.client();
    c.expect_standings("cup", "timeframe=all_time", want.clone())
        .await;
    assert_eq!(member_ids(&members(&c, "cup", "").await), ["ann", "cy"]);
    c.ingest(&[
        ev("a4", "ann", 1000.0, Utc::now()),
        ev("c2", "cy", 1.0, Utc::now()),
    ])
    .await;
    let cup = ranked(&[("bob", 4.0), ("ann", 3.0), ("cy", 1.0)]);
    c.expect_standings("cup", "timeframe=all_time", cup).await;
    let (s, _) = join_with(&c, "cup", "bob", None).await;
    assert_eq!(s, 409, "full again: ann and cy");
}

#[tokio::test]
async fn racing_joins_for_the_last_places_are_decided_in_log_order() {
    let (_dir, _server, c) = start_with_board(
        "cup",
        json!({"entry": {"join_required": true, "max_members": 3}}),
    )
    .await;
    let joins = (0..12).map(|i| {
        let c = c.clone();
        tokio::spawn(async move { join_with(&c, "cup", &format!("p{i}"), None).await.0 })
    });
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for j in joins {
        *counts.entry(j.await.unwrap()).or_default() += 1;
    }
    assert_eq!(counts.get(&201), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&409), Some(&9), "{counts:?}");
    assert_eq!(members(&c, "cup", "").await["total"], 3);
}

#[tokio::test]
async fn shared_ties_percentiles_and_friends_boards() {
    let (_dir, server, c) = start_with_board("tied", json!({"ties": "shared"})).await;
    c.create_board("plain", &board(json!({}))).await;
    let now = Utc::now();
    let scores = [("ann", 10.0), ("bob", 8.0), ("cy", 8.0), ("dan", 5.0)];
    let events: Vec<Value> = (1..)
        .zip(scores)
        .map(|(i, (u, s))| ev(&format!("{i}"), u, s, now))
        .collect();
    c.ingest(&events).await;
    // Shared ties: bob and cy are both 2nd and dan is 4th; without them every rank differs.
    for (id, ranks) in [("tied", [1, 2, 2, 4]), ("plain", [1, 2, 3, 4])] {
        let want = ranks.iter().zip(scores).map(|(r, (u, s))| row(*r, u, s));
        c.expect_standings(id, "", want.collect()).await;
    }
    c.expect_standings("tied", "offset=2&limit=1", vec![row(2, "cy", 8.0)])
        .await;
    let user = |b: &'static str, u: &'static str| {
        let c = c.clone();
        async move {
            let (s, v) = c
                .get(&format!("/v1/leaderboards/{b}/users/{u}"), "around=1")
                .await;
            assert_eq!(s, 200, "{v}");
            v
        }
    };
    let cy = user("tied", "cy").await;
    assert_eq!(
        (cy["rank"].as_u64(), cy["total"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        cy["percentile"].as_f64(),
        Some(25.0),
        "one of four ranks strictly better"
    );
    assert_eq!(
        table(&cy),
        vec![row(2, "bob", 8.0), row(2, "cy", 8.0), row(4, "dan", 5.0)]
    );
    assert_eq!(user("tied", "dan").await["percentile"].as_f64(), Some(75.0));
    assert_eq!(user("tied", "ann").await["percentile"].as_f64(), Some(0.0));
    assert_eq!(user("plain", "cy").await["percentile"].as_f64(), Some(50.0));

    // Friends board: the listed users in rank order; unknown ones left out.
    let path = "/v1/leaderboards/tied/standings/users";
    let (s, v) = c
        .post(
            path,
            &json!({"timeframe": "all_time", "window": "current",
                            "user_ids": ["dan", "zed", "cy", "ann", "cy"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        table(&v),
        vec![row(1, "ann", 10.0), row(2, "cy", 8.0), row(4, "dan", 5.0)]
    );
    assert_eq!(v["total"], 4);
    // A client token may ask too.
    let tok = c.token("cy", 600).await;
    let body = json!({"user_ids": ["bob"]}).to_string();
    let (s, v) = plain::call(&c.base, "POST", path, Some(&tok), Some(body)).await;
    assert_eq!((s, table(&v)), (200, vec![row(2, "bob", 8.0)]));
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    for bad in [
        json!({"user_ids": many}),
        json!({"user_ids": "ann"}),
        json!({"user_ids": ["ann"], "colour": 1}),
        json!({"user_ids": [""]}),
        json!({"timeframe": "yearly!", "user_ids": ["ann"]}),
        json!({}),
    ] {
        let (s, e) = c.post(path, &bad).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    }
    let (s, e) = c.post_at(path, b"{not json", common::now()).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");

    // WebSocket pushes carry shared ranks too.
    let mut ws = with_token(&server.base, &tok).await.unwrap();
    let sub = json!({"type": "subscribe", "id": "t", "leaderboard": "tied", "view": {"top": 5}});
    send(&mut ws, sub).await;
    let snap = next_frame(&mut ws, "snapshot").await;
    let ranks: Vec<u64> = table(&snap).iter().map(|r| r.0).collect();
    assert_eq!(ranks, [1, 2, 2, 4], "{snap}");
    c.ingest(&[ev("5", "dan", 3.0, now)]).await;
    // dan ties at 8 and shares rank 2.
    assert_update_ranks(&mut ws, "dan", 2).await;
}

#[tokio::test]
async fn bad_live_ops_definitions_are_400s_naming_the_field_and_old_boards_are_unchanged() {
    let (_dir, _server, c) = fresh();
    let cases = [
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"timezone": 3}), "timezone"),
        (
            json!({"schedules": [{"id": "a", "cron": "0 10 * *"}]}),
            "schedules[0].cron",
        ),
        (
            json!({"schedules": [{"id": "a", "cron": "0 25 * * 2"}]}),
            "schedules[0].cron",
        ),
        (
            json!({"schedules": [{"id": "a", "start": "2027-01-03T00:00:00Z", "end": "2026-12-20T00:00:00Z"}]}),
            "schedules[0].end",
        ),
        (
            json!({"schedules": [{"id": "a", "start": "2026-12-20T00:00:00Z", "end": "2026-12-20T00:00:00Z"}]}),
            "schedules[0].end",
        ),
        (
            json!({"schedules": [{"id": "a", "cron": "0 10 * * 2", "start": "2026-12-20T00:00:00Z", "end": "2027-01-03T00:00:00Z"}]}),
            "schedules[0]",
        ),
        (json!({"schedules": [{"id": "a"}]}), "schedules[0]"),
        (
            json!({"schedules": [{"id": "a", "cron": "0 10 * * 2"}, {"id": "a", "cron": "0 9 * * 2"}]}),
            "schedules[1].id",
        ),
        (
            json!({"schedules": [{"id": "daily", "cron": "0 10 * * 2"}]}),
            "schedules[0].id",
        ),
        (
            json!({"schedules": [{"id": "no spaces", "cron": "0 10 * * 2"}]}),
            "schedules[0].id",
        ),
        (json!({"ties": "random"}), "ties"),
        (json!({"entry": {"max_members": 0}}), "entry.max_members"),
        (json!({"entry": {"max_members": -5}}), "entry.max_members"),
        (json!({"entry": {"max_attempts": 0}}), "entry.max_attempts"),
        (
            json!({"entry": {"join_required": "yes"}}),
            "entry.join_required",
        ),
        (json!({"timeframes": ["weekly_tue"]}), "timeframes[0]"),
    ];
    for (extra, field) in cases {
        let (s, e) = c.put_board("bad", &board(extra.clone())).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(field),
            "{extra}: {msg:?} should name {field}"
        );
    }
    let (s, _) = c.get("/v1/leaderboards/bad", "").await;
    assert_eq!(s, 404, "nothing was stored");
    // A board without the new fields reads back without them.
    c.create_board("old", &board(json!({"timeframes": ["daily"]})))
        .await;
    let (_, def) = c.get("/v1/leaderboards/old", "").await;
    for k in ["timezone", "schedules", "entry", "ties"] {
        assert!(def.get(k).is_none(), "{k} in {def}");
    }
}
