//! Black-box tests of the Ninja Metrics interface (seed 003) against the real binary: every
//! type #1–#24 with the seed's own example, a rejected variant of each, referential
//! integrity, dedupe of retried POSTs, auth, and an XP leaderboard fed only by these events.

mod common;

use std::ops::ControlFlow::{Break, Continue};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const QUERY: &str = "client_id=100&app_id=100&api_client=CoolCompany/ruby_1.2a&app_pwd=nm-pass-123";

fn config(dir: &std::path::Path) -> String {
    let mut c = config_text(&dir.join("data"), "");
    c.push_str(
        "\n[[tenants]]\nid = \"nm\"\nsecret = \"nm-secret-0123456789\"\n\
         [tenants.ninja_metrics]\nclient_id = \"100\"\napp_id = \"100\"\napp_pwd = \"nm-pass-123\"\n",
    );
    c
}

/// A server in a fresh directory with the Ninja Metrics tenant `nm`.
fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &config(dir.path()));
    (dir, server)
}

async fn post_nm(base: &str, query: &str, body: &str, content_type: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/event?{query}"))
        .header("User-Agent", "Spot/js_1.5.u")
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    decode(req.send().await.unwrap()).await
}

async fn nm(base: &str, payload: &Value) -> (u16, Value) {
    post_nm(base, QUERY, &payload.to_string(), Some("application/json")).await
}

fn p(ts: &str, data: Value) -> Value {
    json!({"timestamp": ts, "data": data})
}

/// The seed's example payloads for #1–#24, verbatim.
fn seed_examples() -> Vec<Value> {
    vec![
        p(
            "2013-01-14T15:36:27.671Z",
            json!({"type":1,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"platform":"Facebook Mobile","area_id":0}),
        ),
        p(
            "2013-01-14T15:36:27.739Z",
            json!({"type":2,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"platform":"Facebook Mobile","area_id":0}),
        ),
        p(
            "1989-08-15T05:00:00.000Z",
            json!({"type":3,"account_id":"cool_guy@example.com","account_status":"Active","account_sub_type":"Paid","account_sub_value":7.34,"account_sub_expires_timestamp":"1990-08-15T05:00:00.000Z"}),
        ),
        p(
            "2013-01-14T15:36:27.353Z",
            json!({"type":4,"account_id":"cool_guy@example.com","character_id":"wizard","character_lvl":50,"shard_id":42,"group_id":42}),
        ),
        p(
            "2013-01-14T15:36:27.418Z",
            json!({"type":5,"account_id":"cool_guy@example.com","character_id":"wizard","character_lvl":52,"shard_id":42,"group_id":42}),
        ),
        p(
            "2013-01-14T15:36:28.000Z",
            json!({"type":6,"sender_account_id":"cool_guy@example.com","sender_character_id":"wizard","sender_character_level":52,"receiver_account_id":"small_cat","receiver_character_id":"mage","receiver_character_level":6,"shard_id":42,"social_event_name":"trade gold","social_event_type":"economic"}),
        ),
        p(
            "2013-01-14T15:36:27.935Z",
            json!({"type":7,"sender_account_id":"cool_guy@example.com","sender_character_id":"wizard","receiver_account_id":"small_cat","receiver_character_id":"mage","shard_id":42,"ogi_location":"https://www.facebook.com/wall/42","ogi_category":"wall post"}),
        ),
        p(
            "2013-01-14T15:36:27.869Z",
            json!({"type":8,"sender_account_id":"cool_guy@example.com","sender_character_id":"wizard","receiver_account_id":"small_cat","receiver_character_id":"mage","shard_id":42,"ogi_location":"https://www.facebook.com/wall/42","ogi_category":"wall post","ogi_receiver_action":"responded"}),
        ),
        p(
            "2013-01-11T22:01:10.700Z",
            json!({"type":9,"account_id":"cool_guy@example.com","account_sub_type":"Free","account_lang":"en-US","account_country":"US","account_gender":"M","account_dob":"1980-09-22T05:00:00.000Z","account_currency_balance":42.42,"platform":"Facebook Mobile"}),
        ),
        p(
            "1989-08-15T05:00:00.000Z",
            json!({"type":10,"account_id":"cool_guy@example.com","account_status":"Failed","farmer_flag":"Y","integrity_flag":"N"}),
        ),
        p(
            "2013-01-11T22:01:11.742Z",
            json!({"type":11,"account_id":"cool_guy@example.com","character_id":"wizard","character_class":"magic","character_sub_class":"healer","character_gender":"T","character_race":"fish","character_name":"the character name","shard_id":0}),
        ),
        p(
            "2013-01-11T22:01:11.925Z",
            json!({"type":12,"account_id":"wizard","character_id":"cool_guy@example.com"}),
        ),
        p(
            "2013-01-11T22:01:12.173Z",
            json!({"type":13,"shard_id":42,"shard_desc":"the shard with answers to it all"}),
        ),
        p(
            "2013-01-11T22:01:12.295Z",
            json!({"type":14,"virtual_currency_label":"mucha","virtual_currency_ex_rate":0.01}),
        ),
        p(
            "2013-01-11T22:01:12.060Z",
            json!({"type":15,"item_id":66,"item_name":"the big blaster gun","item_type":"weapon","item_value":5,"item_segment":"UGC","account_id":"cool_guy@example.com","character_id":"wizard"}),
        ),
        p(
            "2013-01-14T15:36:27.483Z",
            json!({"type":16,"account_id":"cool_guy@example.com","character_id":"wizard","character_lvl":52,"shard_id":42,"item_id":66,"item_count":1,"area_id":42,"position_x":678,"position_y":231,"position_z":517}),
        ),
        p(
            "2013-01-14T15:36:27.548Z",
            json!({"type":17,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"item_id":66,"item_name":"the big blaster gun","item_price":3,"transaction_type":0,"currency_type":0,"virtual_currency_label":"","currency_value":3}),
        ),
        p(
            "2013-01-14T15:36:27.217Z",
            json!({"type":18,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"transaction_type":0,"currency_type":0,"virtual_currency_label":"","currency_value":3.45,"transaction_desc":"spend 3.45USD"}),
        ),
        p(
            "2013-01-14T15:36:27.281Z",
            json!({"type":19,"account_id":"theAccountId","character_id":"theCharacterId","shard_id":42,"item_id":764,"item_name":"theItemName","ugc_rating":"theUgcRating"}),
        ),
        p(
            "2013-01-14T15:36:27.805Z",
            json!({"type":20,"sender_account_id":"account 1","sender_character_id":"char 1","receiver_account_id":"account 2","receiver_character_id":"char 2","shard_id":0,"message_ch_label":"twitter","message_desc":"pulled from twitter","message_char_count":140}),
        ),
        p(
            "2013-01-14T15:36:28.130Z",
            json!({"type":21,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"npc_id":"the_mercenary_npc","area_id":0,"position_x":678,"position_y":231,"position_z":517}),
        ),
        p(
            "2013-01-14T15:36:28.193Z",
            json!({"type":22,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"npc_id":"the_mercenary_npc","area_id":0,"position_x":678,"position_y":231,"position_z":517}),
        ),
        p(
            "2013-01-14T15:36:28.257Z",
            json!({"type":23,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"npc_id":"the_mercenary_npc","character_lvl":52}),
        ),
        p(
            "2013-01-14T15:36:28.336Z",
            json!({"type":24,"account_id":"cool_guy@example.com","character_id":"wizard","shard_id":42,"xp_amount":3,"character_lvl":52,"grouped_flag":"N"}),
        ),
    ]
}

fn account(id: &str) -> Value {
    p(
        "2013-01-11T22:01:10.700Z",
        json!({"type":9,"account_id":id,"account_sub_type":"Free","account_lang":"fr","account_country":"VE","account_gender":"","account_dob":"1980-09-22T05:00:00.000Z","account_currency_balance":0,"platform":"web"}),
    )
}

fn character(account: &str, id: &str, name: &str) -> Value {
    p(
        "2013-01-11T22:01:11.742Z",
        json!({"type":11,"account_id":account,"character_id":id,"character_class":"c","character_sub_class":"s","character_gender":"F","character_race":"r","character_name":name,"shard_id":0}),
    )
}

/// `payload` is refused with a message containing `needle`.
async fn refused_with(base: &str, payload: Value, needle: &str) {
    let (_, e) = nm(base, &payload).await;
    assert!(message(&e).contains(needle), "{e}");
}

async fn accept(base: &str, payload: &Value) {
    let (s, b) = nm(base, payload).await;
    assert_eq!(s, 202, "{payload} → {b}");
    assert_eq!(b["status"], "accepted", "{payload} → {b}");
}

/// The dimension loaders every seed example needs, in the seed's own form where it has one.
async fn load_dimensions(base: &str, ex: &[Value]) {
    accept(base, &ex[12]).await; // #13 shard 42
    accept(base, &ex[8]).await; // #9 cool_guy@example.com
    accept(base, &ex[10]).await; // #11 wizard
    accept(base, &ex[13]).await; // #14 mucha
    accept(base, &ex[14]).await; // #15 item 66 (UGC, owned by cool_guy/wizard)
    for a in [
        "small_cat",
        "theAccountId",
        "account 1",
        "account 2",
        "wizard",
    ] {
        accept(base, &account(a)).await;
    }
    for (a, c) in [
        ("small_cat", "mage"),
        ("theAccountId", "theCharacterId"),
        ("account 1", "char 1"),
        ("account 2", "char 2"),
        ("wizard", "cool_guy@example.com"),
    ] {
        accept(base, &character(a, c, &format!("{c} name"))).await;
    }
    accept(base, &p("2013-01-11T22:01:12.060Z", json!({"type":15,"item_id":764,"item_name":"theItemName","item_type":"art","item_value":1,"item_segment":"INGAME","account_id":"","character_id":""}))).await;
}

#[tokio::test]
async fn every_type_accepts_the_seed_example_and_rejects_a_broken_one() {
    let (_dir, server) = start();
    let ex = seed_examples();
    load_dimensions(&server.base, &ex).await;
    // Usage events #1–#8 (incl. #3) and #16–#24, then #12 and finally #10 (deletes the account).
    for n in (1..=8).chain(16..=24).chain([12, 10]) {
        accept(&server.base, &ex[n - 1]).await;
    }

    // One rejected variant per type: (type, field, mutation, words the message must contain).
    let cases: Vec<(usize, &str, Value, &str)> = vec![
        (1, "account_id", Value::Null, "data.account_id is required"),
        (
            2,
            "character_id",
            Value::Null,
            "data.character_id is required",
        ),
        (
            3,
            "account_status",
            json!("Paused"),
            "data.account_status: must be one of",
        ),
        (
            4,
            "character_lvl",
            json!("fifty"),
            "data.character_lvl: must be a number",
        ),
        (5, "group_id", Value::Null, "data.group_id is required"),
        (
            6,
            "sender_character_level",
            json!("6"),
            "data.sender_character_level: must be a number",
        ),
        (
            7,
            "ogi_category",
            json!(7),
            "data.ogi_category: must be a string",
        ),
        (
            8,
            "ogi_receiver_action",
            Value::Null,
            "data.ogi_receiver_action is required",
        ),
        (
            9,
            "account_gender",
            json!("X"),
            "data.account_gender: must be one of",
        ),
        (
            10,
            "farmer_flag",
            json!("maybe"),
            "data.farmer_flag: must be one of \"Y\", \"N\"",
        ),
        (11, "character_gender", json!("Q"), "data.character_gender"),
        (
            12,
            "character_id",
            Value::Null,
            "data.character_id is required",
        ),
        (13, "shard_desc", Value::Null, "data.shard_desc is required"),
        (
            14,
            "virtual_currency_ex_rate",
            json!("cheap"),
            "data.virtual_currency_ex_rate: must be a number",
        ),
        (
            15,
            "item_segment",
            json!("MOD"),
            "data.item_segment: must be one of \"UGC\", \"INGAME\"",
        ),
        (16, "position_z", Value::Null, "data.position_z is required"),
        (
            17,
            "transaction_type",
            json!(2),
            "data.transaction_type: must be one of [0, 1]",
        ),
        (
            18,
            "transaction_desc",
            json!("x".repeat(201)),
            "data.transaction_desc: must be a string of at most 200",
        ),
        (
            19,
            "ugc_rating",
            json!([5]),
            "data.ugc_rating: must be a number or a string",
        ),
        (
            20,
            "message_char_count",
            Value::Null,
            "data.message_char_count is required",
        ),
        (21, "npc_id", json!(3), "data.npc_id: must be a string"),
        (22, "area_id", Value::Null, "data.area_id is required"),
        (
            23,
            "character_lvl",
            json!(true),
            "data.character_lvl: must be a number",
        ),
        (
            24,
            "xp_amount",
            json!(-3),
            "data.xp_amount: must be an unsigned whole number",
        ),
    ];
    assert_eq!(cases.len(), 24);
    for (n, field, value, needle) in cases {
        let mut bad = ex[n - 1].clone();
        if value.is_null() {
            bad["data"].as_object_mut().unwrap().remove(field);
        } else {
            bad["data"][field] = value;
        }
        let (s, b) = nm(&server.base, &bad).await;
        assert_invalid(s, &b, needle);
    }

    // Dimension data is queryable (tenant HMAC).
    let c = Client::new(&server.base, "nm", "nm-secret-0123456789");
    let (s, acct) = c.get("/v1/ninja/accounts/cool_guy@example.com", "").await;
    assert_eq!(
        (
            s,
            acct["deleted"].as_bool(),
            acct["account_status"].as_str()
        ),
        (200, Some(true), Some("Failed"))
    );
    let (s, shard) = c.get("/v1/ninja/shards/42", "").await;
    assert_eq!(
        (s, shard["shard_desc"].as_str()),
        (200, Some("the shard with answers to it all"))
    );
    let (s, _) = c.get("/v1/ninja/items/66", "").await;
    assert_eq!(s, 200);
    let (s, e) = c.get("/v1/ninja/characters/nobody", "").await;
    assert_envelope(s, &e, 404, "NOT_FOUND");
    let (_, clients) = c.get("/v1/ninja/clients", "").await;
    let cl = &clients["clients"][0];
    assert_eq!(
        (cl["api_client"].as_str(), cl["user_agent"].as_str()),
        (Some("CoolCompany/ruby_1.2a"), Some("Spot/js_1.5.u"))
    );
    // Every accepted payload is in the tenant's stream as a Phoenix event.
    let log = c.log().await;
    assert!(log.iter().any(|e| e["event"]["type"] == "nm.player_xp"
        && e["event"]["actor"]["user_id"] == "cool_guy@example.com"));
    assert!(log.iter().any(|e| e["event"]["type"] == "nm.shard_create"
        && e["event"]["actor"]["user_id"] == "ninja-metrics"));
}

#[tokio::test]
async fn references_must_be_initialised_and_not_deleted() {
    let (_dir, server) = start();
    let base = &server.base;
    let ex = seed_examples();
    // `area` varies the payload: an identical payload is a retry (a duplicate), not a new event.
    let login = |acct: &str, chr: &str, shard: i64, area: i64| {
        p(
            "2013-01-14T15:36:27.671Z",
            json!({"type":1,"account_id":acct,"character_id":chr,"shard_id":shard,"platform":"web","area_id":area}),
        )
    };
    let refused = |payload: Value, needle: &'static str| refused_with(base, payload, needle);
    let (s, e) = nm(base, &login("ghost", "", 0, 0)).await;
    assert_invalid(s, &e, "account \"ghost\" was never initialised");
    accept(base, &account("ann")).await;
    accept(base, &login("ann", "", 0, 0)).await;
    refused(
        login("ann", "ghostchar", 0, 0),
        "data.character_id: character \"ghostchar\" was never initialised",
    )
    .await;
    refused(
        login("ann", "", 7, 0),
        "data.shard_id: shard 7 was never initialised",
    )
    .await;
    // Characters need their account; a deleted character or account can no longer be used.
    refused(character("nobody", "c1", "C One"), "account \"nobody\"").await;
    accept(base, &character("ann", "c1", "C One")).await;
    accept(base, &login("ann", "c1", 0, 0)).await;
    accept(
        base,
        &p(
            "2013-01-15T00:00:00.000Z",
            json!({"type":12,"account_id":"ann","character_id":"c1"}),
        ),
    )
    .await;
    refused(login("ann", "c1", 0, 1), "character \"c1\" was deleted").await;
    accept(base, &p("2013-01-16T00:00:00.000Z", json!({"type":10,"account_id":"ann","account_status":"Cancelled","farmer_flag":"N","integrity_flag":"N"}))).await;
    refused(login("ann", "", 0, 2), "account \"ann\" was deleted").await;
    // Items and virtual currencies too.
    accept(base, &account("bo")).await;
    accept(base, &character("bo", "b1", "Bee")).await;
    let spend = |label: &str| {
        p(
            "2013-01-14T15:36:27.217Z",
            json!({"type":18,"account_id":"bo","character_id":"b1","shard_id":0,"transaction_type":0,"currency_type":1,"virtual_currency_label":label,"currency_value":5}),
        )
    };
    refused(
        spend("gold"),
        "virtual currency \"gold\" was never initialised",
    )
    .await;
    accept(base, &ex[13]).await; // mucha at 0.01
    accept(base, &spend("mucha")).await;
    let used = p(
        "2013-01-14T15:36:27.483Z",
        json!({"type":16,"account_id":"bo","character_id":"b1","character_lvl":1,"shard_id":0,"item_id":99,"item_count":1,"area_id":0,"position_x":-1.0,"position_y":-1.0,"position_z":-1.0}),
    );
    refused(used, "item 99 was never initialised").await;
    // An INGAME item must not name an owner; a UGC one must.
    let mut ingame_owned = ex[14].clone();
    ingame_owned["data"]["item_segment"] = json!("INGAME");
    refused(ingame_owned, "must be \"\" when item_segment is \"INGAME\"").await;
    // Currency rates keep their history by timestamp.
    accept(
        base,
        &p(
            "2013-02-01T00:00:00.000Z",
            json!({"type":14,"virtual_currency_label":"mucha","virtual_currency_ex_rate":0.02}),
        ),
    )
    .await;
    let c = Client::new(base, "nm", "nm-secret-0123456789");
    let (_, cur) = c.get("/v1/ninja/currencies/mucha", "").await;
    assert_eq!(cur["rate"], 0.02);
    assert_eq!(cur["history"].as_array().unwrap().len(), 2);
    assert_eq!(cur["history"][0]["rate"], 0.01);
}

#[tokio::test]
async fn retries_dedupe_auth_content_type_and_batches() {
    let (_dir, server) = start();
    let base = &server.base;
    let ex = seed_examples();
    // A retried identical POST is deduplicated — loaders included (a second #10 is not an error).
    let (_, first) = nm(base, &ex[12]).await;
    let (s, again) = nm(base, &ex[12]).await;
    assert_eq!((s, again["status"].as_str()), (202, Some("duplicate")));
    assert_eq!(first["event_id"], again["event_id"]);
    accept(base, &account("del")).await;
    let delete = p(
        "2013-01-16T00:00:00.000Z",
        json!({"type":10,"account_id":"del","account_status":"Stopped","farmer_flag":"N","integrity_flag":"Y"}),
    );
    accept(base, &delete).await;
    let (s, again) = nm(base, &delete).await;
    assert_eq!(
        (s, again["status"].as_str()),
        (202, Some("duplicate")),
        "{again}"
    );

    // Auth: wrong app_pwd, unknown client/app, missing parameters.
    for q in [
        "client_id=100&app_id=100&api_client=x&app_pwd=wrong",
        "client_id=100&app_id=100&api_client=x",
        "client_id=999&app_id=100&api_client=x&app_pwd=nm-pass-123",
        "api_client=x",
    ] {
        let (s, e) = post_nm(base, q, &ex[12].to_string(), Some("application/json")).await;
        assert_envelope(s, &e, 401, "UNAUTHORIZED");
    }
    // Content-Type is required.
    let (s, e) = post_nm(base, QUERY, &ex[12].to_string(), None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE"))
    );
    let (s, _) = post_nm(base, QUERY, &ex[12].to_string(), Some("text/plain")).await;
    assert_eq!(s, 415);
    // Bad JSON, bad timestamps, unknown types; #25–#46 are generic.
    let (s, e) = post_nm(base, QUERY, "{\"timestamp\":", Some("application/json")).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let (s, e) = nm(
        base,
        &p(
            "2013-01-14 15:36",
            json!({"type": 13, "shard_id": 1, "shard_desc": "x"}),
        ),
    )
    .await;
    assert_invalid(s, &e, "timestamp");
    let (s, e) = nm(base, &p("2013-01-14T15:36:27.000Z", json!({"type": 47}))).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let (s, b) = nm(
        base,
        &p(
            "2013-01-14T15:36:27.000Z",
            json!({"type": 31, "npc_id": "orc", "anything": [1, 2]}),
        ),
    )
    .await;
    assert_eq!((s, b["type"].as_str()), (202, Some("nm.type_31")));

    // A batch: loaders first, then a reference to them, and one failure that sinks nothing else.
    let batch = json!([
        account("zed"),
        character("zed", "zc", "Zed Char"),
        p(
            "2013-01-14T15:36:27.671Z",
            json!({"type":1,"account_id":"zed","character_id":"zc","shard_id":0,"platform":"web","area_id":0})
        ),
        p(
            "2013-01-14T15:36:27.671Z",
            json!({"type":1,"account_id":"nobody"})
        )
    ]);
    let (s, b) = post_nm(base, QUERY, &batch.to_string(), Some("application/json")).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        (
            b["status"].as_str(),
            b["accepted"].as_u64(),
            b["failed"].as_u64()
        ),
        (Some("partial"), Some(3), Some(1))
    );
    assert!(b["results"][3]["error"]
        .as_str()
        .unwrap()
        .contains("nobody"));
}

#[tokio::test]
async fn an_xp_leaderboard_fed_only_by_ninja_metrics() {
    let (_dir, server) = start();
    let base = &server.base;
    let c = Client::new(base, "nm", "nm-secret-0123456789");
    let (s, _) = c.put_board("xp", &json!({"rules": [{"event_type": "nm.player_xp", "points_expression": "attrs.xp_amount"}]})).await;
    assert_eq!(s, 201);
    for (a, ch) in [("amy", "amy-c"), ("ben", "ben-c")] {
        accept(base, &account(a)).await;
        accept(base, &character(a, ch, ch)).await;
    }
    let xp = |a: &str, ch: &str, n: u64, ts: &str| {
        p(
            ts,
            json!({"type":24,"account_id":a,"character_id":ch,"shard_id":0,"xp_amount":n,"character_lvl":3,"grouped_flag":"N"}),
        )
    };
    for (i, (a, ch, n)) in [
        ("amy", "amy-c", 30),
        ("ben", "ben-c", 50),
        ("amy", "amy-c", 40),
    ]
    .iter()
    .enumerate()
    {
        accept(base, &xp(a, ch, *n, &format!("2013-01-14T15:36:2{i}.000Z"))).await;
    }
    // A retried XP event does not count twice.
    let (_, dup) = nm(base, &xp("amy", "amy-c", 40, "2013-01-14T15:36:22.000Z")).await;
    assert_eq!(dup["status"], "duplicate");
    let want = [("amy".to_owned(), 70.0), ("ben".to_owned(), 50.0)];
    wait_for("amy 70, ben 50", Duration::from_secs(5), || async {
        let (_, v) = c.standings("xp", "timeframe=all_time").await;
        if user_scores(&v) == want {
            Break(())
        } else {
            Continue(v)
        }
    })
    .await;
}
