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
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

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

async fn put(c: &Client, id: &str, def: &Value) {
    let (s, body) = c.put_board(id, def).await;
    assert!(s == 200 || s == 201, "{s} {body}");
}

async fn ingest(c: &Client, events: &[Value]) {
    for chunk in events.chunks(100) {
        let (s, body) = c.post("/v1/events/bulk", &json!({ "events": chunk })).await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(
            body["accepted"].as_u64(),
            Some(chunk.len() as u64),
            "{body}"
        );
    }
}

fn table(v: &Value) -> Vec<(u64, String, f64)> {
    v["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {v}"))
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().unwrap(),
                e["user_id"].as_str().unwrap().to_owned(),
                e["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn row(rank: u64, user: &str, score: f64) -> (u64, String, f64) {
    (rank, user.to_owned(), score)
}

/// Poll a standings query until it shows `want` (or fail with the last answer after 30 s: the
/// machine is shared, and a restarted board replays first).
async fn expect(c: &Client, id: &str, query: &str, want: Vec<(u64, String, f64)>) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (s, v) = c
            .get(&format!("/v1/leaderboards/{id}/standings"), query)
            .await;
        if s == 200 && table(&v) == want {
            return v;
        }
        last = json!({"status": s, "body": v});
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id}?{query}: wanted {want:?}, last {last}");
}

async fn windows(c: &Client, id: &str, query: &str) -> Vec<Value> {
    let (s, v) = c
        .get(&format!("/v1/leaderboards/{id}/windows"), query)
        .await;
    assert_eq!(s, 200, "{v}");
    v["windows"].as_array().unwrap().clone()
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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put(
        &c,
        "la",
        &board(
            json!({"timezone": "America/Los_Angeles", "timeframes": ["daily", "weekly"],
                      "late_grace_seconds": YEAR_GRACE}),
        ),
    )
    .await;
    let (s, def) = c.get("/v1/leaderboards/la", "").await;
    assert_eq!(
        (s, def["timezone"].as_str()),
        (200, Some("America/Los_Angeles"))
    );
    ingest(
        &c,
        &[
            // 2026-11-01 (clocks fall back): local 00:00 PDT = 07:00Z … 23:59:59 PST = 07:59:59Z next day.
            ev("f1", "ann", 1.0, t("2026-11-01T07:00:00Z")),
            ev("f2", "ann", 2.0, t("2026-11-02T07:59:59Z")),
            ev("f3", "bob", 4.0, t("2026-11-02T08:00:00Z")),
            ev("f0", "cy", 8.0, t("2026-11-01T06:59:59Z")),
            // 2026-03-08 (clocks spring forward): 08:00Z … 06:59:59Z next day.
            ev("s1", "dee", 1.0, t("2026-03-09T06:59:59Z")),
            ev("s2", "eve", 1.0, t("2026-03-09T07:00:00Z")),
            ev("s0", "fay", 1.0, t("2026-03-08T07:59:59Z")),
        ],
    )
    .await;
    let fall = expect(
        &c,
        "la",
        "timeframe=daily&window=2026-11-01",
        vec![row(1, "ann", 3.0)],
    )
    .await;
    assert_eq!(fall["window"], "2026-11-01");
    expect(
        &c,
        "la",
        "timeframe=daily&window=2026-11-02",
        vec![row(1, "bob", 4.0)],
    )
    .await;
    expect(
        &c,
        "la",
        "timeframe=daily&window=2026-10-31",
        vec![row(1, "cy", 8.0)],
    )
    .await;
    expect(
        &c,
        "la",
        "timeframe=daily&window=2026-03-08",
        vec![row(1, "dee", 1.0)],
    )
    .await;
    expect(
        &c,
        "la",
        "timeframe=daily&window=2026-03-09",
        vec![row(1, "eve", 1.0)],
    )
    .await;
    expect(
        &c,
        "la",
        "timeframe=daily&window=2026-03-07",
        vec![row(1, "fay", 1.0)],
    )
    .await;
    // Local Sunday 2026-11-01 23:59 PST is still ISO week 44; Monday 00:00 PST starts week 45.
    expect(
        &c,
        "la",
        "timeframe=weekly&window=2026-W44",
        vec![row(1, "cy", 8.0), row(2, "ann", 3.0)],
    )
    .await;
    expect(
        &c,
        "la",
        "timeframe=weekly&window=2026-W45",
        vec![row(1, "bob", 4.0)],
    )
    .await;

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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    let now = Utc::now();
    let midnight = la_midnight(now);
    // Yesterday (local) closes a few seconds from now.
    let grace = u64::try_from((now - midnight).num_seconds()).unwrap() + 3;
    put(
        &c,
        "la",
        &board(
            json!({"timezone": "America/Los_Angeles", "timeframes": ["daily"],
                      "late_grace_seconds": grace}),
        ),
    )
    .await;
    let yesterday = (midnight - Dur::seconds(1))
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .date_naive()
        .to_string();
    ingest(&c, &[ev("y1", "ann", 5.0, midnight - Dur::seconds(1))]).await;
    let q = format!("timeframe=daily&window={yesterday}");
    expect(&c, "la", &q, vec![row(1, "ann", 5.0)]).await;
    let mut closed = false;
    for _ in 0..300 {
        let list = windows(&c, "la", "timeframe=daily").await;
        if list
            .iter()
            .any(|w| w["window"] == yesterday.as_str() && w["state"] == "closed")
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "yesterday never closed");
    // Frozen into history: still queryable, and a late event no longer counts (the event after
    // it shows it was applied).
    ingest(&c, &[ev("y2", "bob", 9.0, midnight - Dur::seconds(2))]).await;
    ingest(&c, &[ev("t1", "cy", 1.0, Utc::now())]).await;
    expect(&c, "la", "timeframe=daily", vec![row(1, "cy", 1.0)]).await;
    expect(&c, "la", &q, vec![row(1, "ann", 5.0)]).await;
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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    let now = Utc::now();
    let season_start = (now - Dur::hours(2)).with_nanosecond_zero();
    let season_end = (now + Dur::hours(2)).with_nanosecond_zero();
    put(
        &c,
        "cup",
        &board(json!({
        "timezone": "America/Los_Angeles",
        "late_grace_seconds": YEAR_GRACE,
        "schedules": [
            {"id": "weekly_tue", "cron": "0 10 * * 2"},
            {"id": "season", "start": iso(season_start), "end": iso(season_end)},
            {"id": "winter_cup", "start": "2027-12-20T00:00:00Z", "end": "2028-01-03T00:00:00Z"}
        ]})),
    )
    .await;
    let fire = last_tuesday_10_la(now);
    ingest(
        &c,
        &[
            ev("w1", "ann", 3.0, now - Dur::minutes(1)),
            ev("w2", "bob", 5.0, now - Dur::minutes(2)),
            // The previous cron window, and before the season.
            ev("w0", "cy", 7.0, fire - Dur::seconds(1)),
        ],
    )
    .await;
    let key = iso(fire);
    let v = expect(
        &c,
        "cup",
        "timeframe=weekly_tue&window=current",
        vec![row(1, "bob", 5.0), row(2, "ann", 3.0)],
    )
    .await;
    assert_eq!(v["window"], key.as_str());
    assert_eq!(v["timeframe"], "weekly_tue");
    expect(
        &c,
        "cup",
        &format!("timeframe=weekly_tue&window={key}"),
        vec![row(1, "bob", 5.0), row(2, "ann", 3.0)],
    )
    .await;
    let prev = iso(fire - Dur::days(7));
    expect(
        &c,
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
    let v = expect(&c, "cup", "timeframe=season", season).await;
    assert_eq!(v["window"], iso(season_start).as_str());
    // Outside a fixed window `current` is 404; a known key with nothing in it is 404 too.
    let (s, e) = c
        .get("/v1/leaderboards/cup/standings", "timeframe=winter_cup")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    // Unknown timeframes are 400; a window key of the wrong shape is 400.
    for q in [
        "timeframe=monthly_cup",
        "timeframe=weekly_tue&window=2026-12-01",
        "timeframe=weekly_tue&window=2026-12-01T18:00:00%2B00:00",
    ] {
        let (s, e) = c.get("/v1/leaderboards/cup/standings", q).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    }
    // User queries take schedules too.
    let (s, u) = c
        .get("/v1/leaderboards/cup/users/ann", "timeframe=weekly_tue")
        .await;
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
    for q in [
        "timeframe=weekly_tue&limit=0",
        "timeframe=weekly_tue&limit=101",
        "timeframe=nope",
        "colour=red",
    ] {
        let (s, e) = c.get("/v1/leaderboards/cup/windows", q).await;
        assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    }

    // A WebSocket view of a schedule.
    let url = format!("{}/v1/ws", server.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    let ts = now_ts();
    let sig = phoenix::auth::sign(SECRET.as_bytes(), "GET", "/v1/ws", &ts, b"");
    let h = req.headers_mut();
    h.insert("X-Tenant-Id", TENANT.parse().unwrap());
    h.insert("X-Timestamp", ts.parse().unwrap());
    h.insert("X-Signature", sig.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let sub = json!({"type": "subscribe", "id": "s", "leaderboard": "cup",
                     "timeframe": "weekly_tue", "view": {"top": 5}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    let snap = next_frame(&mut ws, "snapshot").await;
    assert_eq!(snap["window"], key.as_str(), "{snap}");
    assert_eq!(snap["entries"].as_array().unwrap().len(), 2, "{snap}");
    ingest(&c, &[ev("w3", "dan", 9.0, now)]).await;
    let up = next_frame(&mut ws, "update").await;
    assert!(
        up["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["user_id"] == "dan" && ch["rank"] == 1),
        "{up}"
    );
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap()
    }
}

fn now_ts() -> String {
    now().to_string()
}

async fn next_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    ty: &str,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == ty {
                return v;
            }
            assert_ne!(v["type"], "error", "{v}");
        }
    }
}

#[tokio::test]
async fn a_fixed_window_freezes_at_its_end_plus_grace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    let now = Utc::now().with_nanosecond_zero();
    let (start, end) = (now - Dur::hours(1), now + Dur::seconds(3));
    put(
        &c,
        "sprint",
        &board(json!({"late_grace_seconds": 1,
                      "schedules": [{"id": "sprint", "start": iso(start), "end": iso(end)}]})),
    )
    .await;
    ingest(&c, &[ev("a", "ann", 2.0, now - Dur::seconds(10))]).await;
    expect(&c, "sprint", "timeframe=sprint", vec![row(1, "ann", 2.0)]).await;
    let mut state = String::new();
    for _ in 0..300 {
        let list = windows(&c, "sprint", "timeframe=sprint").await;
        state = list
            .first()
            .map(|w| w["state"].as_str().unwrap().to_owned())
            .unwrap_or_default();
        if state == "closed" {
            assert_eq!(list[0]["closes_at"], iso(end + Dur::seconds(1)).as_str());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "closed");
    // After the end: `current` is 404, the window itself is still there.
    let (s, e) = c
        .get("/v1/leaderboards/sprint/standings", "timeframe=sprint")
        .await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    // Frozen: queryable from history after the board wrote it.
    let q = format!("timeframe=sprint&window={}", iso(start));
    expect(&c, "sprint", &q, vec![row(1, "ann", 2.0)]).await;
}

async fn token(c: &Client, user: &str) -> String {
    let (s, t) = c
        .post("/v1/tokens", &json!({"user_id": user, "ttl_seconds": 600}))
        .await;
    assert_eq!(s, 201, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

async fn join_with(c: &Client, board: &str, user: &str, bearer: Option<&str>) -> (u16, Value) {
    let path = format!("/v1/leaderboards/{board}/members/{user}");
    match bearer {
        Some(tok) => {
            decode(
                c.http
                    .post(format!("{}{path}", c.base))
                    .bearer_auth(tok)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
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

fn member_ids(v: &Value) -> Vec<String> {
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tournaments_admit_members_cap_attempts_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let c = server.client();
    put(
        &c,
        "cup",
        &board(json!({"timeframes": ["daily", "all_time"],
                      "entry": {"join_required": true, "max_members": 2, "max_attempts": 2}})),
    )
    .await;
    put(&c, "open", &board(json!({}))).await;
    // Not a member yet: scores nothing.
    ingest(&c, &[ev("pre", "ann", 50.0, Utc::now())]).await;

    let (s, v) = join_with(&c, "cup", "ann", None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["member"], true);
    let (s, _) = join_with(&c, "cup", "ann", None).await;
    assert_eq!(s, 200, "already a member");
    let bob = token(&c, "bob").await;
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
    let unsigned = c
        .http
        .post(format!("{}/v1/leaderboards/cup/members/cy", c.base))
        .send()
        .await
        .unwrap();
    let (s, e) = decode(unsigned).await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let m = members(&c, "cup", "").await;
    assert_eq!(member_ids(&m), ["ann", "bob"]);
    assert_eq!(m["total"], 2);
    let page = members(&c, "cup", "limit=1").await;
    assert_eq!(
        (member_ids(&page), page["next"].as_str()),
        (vec!["ann".to_owned()], Some("ann"))
    );
    assert_eq!(member_ids(&members(&c, "cup", "after=ann").await), ["bob"]);

    // Two scored events per user per window; the third is counted, not scored.
    let now = Utc::now();
    ingest(
        &c,
        &[
            ev("a1", "ann", 1.0, now),
            ev("a2", "ann", 2.0, now),
            ev("a3", "ann", 100.0, now),
            ev("b1", "bob", 4.0, now),
            ev("c1", "cy", 9.0, now),
        ],
    )
    .await;
    let want = vec![row(1, "bob", 4.0), row(2, "ann", 3.0)];
    expect(&c, "cup", "timeframe=all_time", want.clone()).await;
    expect(
        &c,
        "open",
        "timeframe=all_time",
        vec![row(1, "ann", 153.0), row(2, "cy", 9.0), row(3, "bob", 4.0)],
    )
    .await;
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("phoenix_leaderboard_over_attempts_total")
                && l.contains("board=\"cup\"")
                && l.ends_with(" 2")),
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
    ingest(&c, &[ev("b2", "bob", 40.0, Utc::now())]).await;
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
    expect(&c, "cup", "timeframe=all_time", want.clone()).await;
    assert_eq!(member_ids(&members(&c, "cup", "").await), ["ann", "cy"]);
    ingest(
        &c,
        &[
            ev("a4", "ann", 1000.0, Utc::now()),
            ev("c2", "cy", 1.0, Utc::now()),
        ],
    )
    .await;
    expect(
        &c,
        "cup",
        "timeframe=all_time",
        vec![row(1, "bob", 4.0), row(2, "ann", 3.0), row(3, "cy", 1.0)],
    )
    .await;
    let (s, _) = join_with(&c, "cup", "bob", None).await;
    assert_eq!(s, 409, "full again: ann and cy");
}

#[tokio::test]
async fn racing_joins_for_the_last_places_are_decided_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put(
        &c,
        "cup",
        &board(json!({"entry": {"join_required": true, "max_members": 3}})),
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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    put(&c, "tied", &board(json!({"ties": "shared"}))).await;
    put(&c, "plain", &board(json!({}))).await;
    let now = Utc::now();
    ingest(
        &c,
        &[
            ev("1", "ann", 10.0, now),
            ev("2", "bob", 8.0, now),
            ev("3", "cy", 8.0, now),
            ev("4", "dan", 5.0, now),
        ],
    )
    .await;
    expect(
        &c,
        "tied",
        "",
        vec![
            row(1, "ann", 10.0),
            row(2, "bob", 8.0),
            row(2, "cy", 8.0),
            row(4, "dan", 5.0),
        ],
    )
    .await;
    expect(&c, "tied", "offset=2&limit=1", vec![row(2, "cy", 8.0)]).await;
    expect(
        &c,
        "plain",
        "",
        vec![
            row(1, "ann", 10.0),
            row(2, "bob", 8.0),
            row(3, "cy", 8.0),
            row(4, "dan", 5.0),
        ],
    )
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
    let tok = token(&c, "cy").await;
    let body = json!({"user_ids": ["bob"]}).to_string();
    let (s, v) = decode(
        c.http
            .post(format!("{}{path}", c.base))
            .bearer_auth(&tok)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
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
    let (s, e) = c
        .post_at(path, b"{not json", now_ts().parse().unwrap())
        .await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");

    // WebSocket pushes carry shared ranks too.
    let url = format!(
        "{}/v1/ws?token={tok}",
        server.base.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let sub = json!({"type": "subscribe", "id": "t", "leaderboard": "tied", "view": {"top": 5}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    let snap = next_frame(&mut ws, "snapshot").await;
    let ranks: Vec<u64> = snap["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks, [1, 2, 2, 4], "{snap}");
    ingest(&c, &[ev("5", "dan", 3.0, now)]).await;
    let up = next_frame(&mut ws, "update").await;
    assert!(
        up["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["user_id"] == "dan" && ch["rank"] == 2),
        "dan ties at 8 and shares rank 2: {up}"
    );
}

#[tokio::test]
async fn bad_live_ops_definitions_are_400s_naming_the_field_and_old_boards_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
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
    put(&c, "old", &board(json!({"timeframes": ["daily"]}))).await;
    let (_, def) = c.get("/v1/leaderboards/old", "").await;
    for k in ["timezone", "schedules", "entry", "ties"] {
        assert!(def.get(k).is_none(), "{k} in {def}");
    }
}
