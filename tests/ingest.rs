//! Black-box ingestion tests over real HTTP against the real binary (seed 000, SPEC §8).

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn single_and_bulk_happy_path() {
    let (_dir, _server, c) = fresh();

    let (status, body) = c
        .post("/v1/events", &event("evt-1", "user-123", 1550))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"event_id": "evt-1", "status": "accepted"}));

    let bulk =
        json!({"events": [event("b1", "u1", 1), event("b2", "u2", 2), event("b3", "u3", 3)]});
    let (status, body) = c.post("/v1/events/bulk", &bulk).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["total"], 3);
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["failed"], 0);
    assert_eq!(strs(&body["results"], "event_id"), ["b1", "b2", "b3"]);

    let log = c.log().await;
    let logged: Vec<&str> = log
        .iter()
        .map(|e| e["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(logged, ["evt-1", "b1", "b2", "b3"]);
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    // The stored event is the client's event, normalised.
    assert_eq!(log[0]["event"]["attrs"]["score"], 1550);
    assert_eq!(log[0]["event"]["actor"]["metadata"]["region"], "na-east");
}

#[tokio::test]
async fn the_seeds_sample_payload_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // The sample payload as seed 000 prints it.
    let sample = include_str!("fixtures/seed-000-sample.json");
    let (status, body) = server
        .client()
        .post_at("/v1/events", sample.as_bytes(), now())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
}

#[tokio::test]
async fn duplicates_are_acknowledged_but_logged_once() {
    let (_dir, _server, c) = fresh();
    let e = event("dup-1", "u1", 10);
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "accepted");
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "duplicate");

    // In bulk: against the log, and twice within one batch.
    let bulk = json!({"events": [e.clone(), event("dup-2", "u2", 1), event("dup-2", "u2", 1)]});
    let (status, body) = c.post("/v1/events/bulk", &bulk).await;
    assert_eq!(status, 202);
    assert_eq!(
        strs(&body["results"], "status"),
        ["duplicate", "accepted", "duplicate"]
    );
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["duplicates"], 2);

    let ids = c.logged_ids().await;
    assert_eq!(ids, ["dup-1", "dup-2"]);
}

#[tokio::test]
async fn one_bad_event_does_not_sink_the_bulk() {
    let (_dir, _server, c) = fresh();
    let mut bad = event("bad", "u", 1);
    bad["type"] = json!("");
    let bulk = json!({"events": [event("ok-1", "u", 1), bad, {"no": "id"}, event("ok-2", "u", 2)]});
    let (status, body) = c.post("/v1/events/bulk", &bulk).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "partial");
    assert_eq!(
        (
            body["total"].as_u64(),
            body["accepted"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    let r = body["results"].as_array().unwrap();
    assert_eq!(
        r[1],
        json!({"event_id": "bad", "status": "failed", "error": "Validation failed: event_type cannot be empty"})
    );
    assert_eq!(r[2]["event_id"], Value::Null);
    assert!(r[2]["error"]
        .as_str()
        .unwrap()
        .contains("event_id is required"));
    assert_eq!(c.log().await.len(), 2);

    // All failed: still per-event results, status "failed", nothing logged.
    let (status, body) = c
        .post("/v1/events/bulk", &json!({"events": [{"x": 1}]}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "failed");
    assert_eq!(c.log().await.len(), 2);
}

#[tokio::test]
async fn tenant_id_in_the_payload_is_overridden() {
    let (_dir, server, c) = fresh();
    let mut e = event("x-1", "u1", 5);
    e["tenant_id"] = json!(OTHER);
    assert_eq!(c.post("/v1/events", &e).await.0, 202);
    let log = c.log().await;
    assert_eq!(log[0]["event"]["tenant_id"], TENANT);
    let other = Client::new(&server.base, OTHER, OTHER_SECRET);
    assert!(
        other.log().await.is_empty(),
        "nothing landed in the other tenant"
    );
    // The same event_id is independent per tenant.
    assert_eq!(other.post("/v1/events", &e).await.1["status"], "accepted");
}

#[tokio::test]
async fn every_bad_input_gets_the_envelope_and_changes_nothing() {
    let (_dir, server, c) = fresh();
    assert_eq!(c.post("/v1/events", &event("seed", "u", 1)).await.0, 202);

    // Body over 1 MB.
    let mut big = event("big", "u", 1);
    big["attrs"]["blob"] = json!("x".repeat(1024 * 1024));
    let (s, b) = c.post("/v1/events", &big).await;
    assert_envelope(s, &b, 413, "PAYLOAD_TOO_LARGE");
    let (s, b) = c.post("/v1/events/bulk", &json!({"events": [big]})).await;
    assert_envelope(s, &b, 413, "PAYLOAD_TOO_LARGE");

    // Invalid UTF-8 is refused before the signature is checked: a wrongly signed body gets
    // 400, not 401.
    let resp = c
        .http
        .post(format!("{}/v1/events", c.base))
        .header("X-Tenant-Id", TENANT)
        .header("X-Timestamp", now().to_string())
        .header("X-Signature", "hmac-sha256=00")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    let (s, b) = decode(resp).await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    assert!(b["error"]["message"].as_str().unwrap().contains("UTF-8"));

    // Bad JSON, wrong shapes, missing fields, future occurred_at.
    let (s, b) = c.post_at("/v1/events", b"{\"event_id\": ", now()).await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Malformed JSON"));
    for (field, message) in [
        ("event_id", "event_id is required"),
        ("type", "event_type is required"),
        ("actor", "actor is required"),
        ("occurred_at", "occurred_at is required"),
        ("attrs", "attrs is required"),
    ] {
        let mut e = event("m", "u", 1);
        e.as_object_mut().unwrap().remove(field);
        let (s, b) = c.post("/v1/events", &e).await;
        assert_envelope(s, &b, 400, "VALIDATION_ERROR");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(message),
            "{b}"
        );
    }
    let mut future = event("f", "u", 1);
    future["occurred_at"] =
        json!((chrono::Utc::now() + chrono::Duration::minutes(61)).to_rfc3339());
    let (s, b) = c.post("/v1/events", &future).await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1 hour in the future"));

    // Batch sizes.
    let (s, b) = c.post("/v1/events/bulk", &json!({"events": []})).await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    let many: Vec<Value> = (0..101).map(|i| event(&format!("m{i}"), "u", 1)).collect();
    let (s, b) = c.post("/v1/events/bulk", &json!({"events": many})).await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    assert_eq!(
        b["error"]["message"],
        "Bulk request can contain maximum 100 events"
    );
    let (s, b) = c
        .post("/v1/events/bulk", &json!([event("arr", "u", 1)]))
        .await;
    assert_envelope(s, &b, 400, "VALIDATION_ERROR");

    // Stale and future timestamps, wrong signatures, missing headers, unknown tenant.
    let body = event("auth", "u", 1).to_string();
    let (s, b) = c.post_at("/v1/events", body.as_bytes(), now() - 301).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    let (s, b) = c.post_at("/v1/events", body.as_bytes(), now() + 301).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    let wrong = Client::new(&server.base, TENANT, "not-the-secret-at-all");
    let (s, b) = wrong.post("/v1/events", &event("auth", "u", 1)).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    let stranger = Client::new(&server.base, "nobody", SECRET);
    let (s, b) = stranger.post("/v1/events", &event("auth", "u", 1)).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    // Signed for /v1/events but sent to /v1/events/bulk: the path is part of the signature.
    let bulk_body = json!({"events": [event("auth", "u", 1)]}).to_string();
    let ts = now().to_string();
    let sig = phoenix::auth::sign(
        SECRET.as_bytes(),
        "POST",
        "/v1/events",
        &ts,
        bulk_body.as_bytes(),
    );
    let resp = c
        .http
        .post(format!("{}/v1/events/bulk", c.base))
        .header("X-Tenant-Id", TENANT)
        .header("X-Timestamp", ts)
        .header("X-Signature", sig)
        .body(bulk_body)
        .send()
        .await
        .unwrap();
    let (s, b) = decode(resp).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    let resp = c
        .http
        .post(format!("{}/v1/events", c.base))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (s, b) = decode(resp).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-Tenant-Id"));

    // Unknown route: envelope too.
    let resp = c
        .http
        .get(format!("{}/v1/nope", c.base))
        .send()
        .await
        .unwrap();
    let (s, b) = decode(resp).await;
    assert_envelope(s, &b, 404, "NOT_FOUND");

    // Nothing above changed the log.
    let log = c.log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["event"]["event_id"], "seed");
}

#[tokio::test]
async fn suspended_tenant_gets_403_and_bad_signature_still_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let paused = Client::new(&server.base, "paused", "paused-secret-0123456789");
    let (s, b) = paused.post("/v1/events", &event("p1", "u", 1)).await;
    assert_envelope(s, &b, 403, "FORBIDDEN");
    let (s, b) = paused
        .post("/v1/events/bulk", &json!({"events": [event("p1", "u", 1)]}))
        .await;
    assert_envelope(s, &b, 403, "FORBIDDEN");
    // Suspension is not revealed to someone without the secret.
    let forger = Client::new(&server.base, "paused", "wrong-secret-000000000");
    let (s, b) = forger.post("/v1/events", &event("p1", "u", 1)).await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn dedupe_window_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let e = event("restart-1", "u1", 10);
    assert_eq!(
        server.client().post("/v1/events", &e).await.1["status"],
        "accepted"
    );
    server.kill();
    drop(server);
    let server = Server::start(dir.path());
    let c = server.client();
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "duplicate");
    assert_eq!(
        c.post("/v1/events", &event("restart-2", "u1", 1)).await.1["status"],
        "accepted"
    );
    let seqs: Vec<u64> = c
        .log()
        .await
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
}

#[tokio::test]
async fn dedupe_window_is_configurable_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_text(&dir.path().join("data"), "dedupe_window_seconds = 1");
    let server = Server::start_with(dir.path(), &config);
    let c = server.client();
    let e = event("short-1", "u1", 10);
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "accepted");
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "duplicate");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(c.post("/v1/events", &e).await.1["status"], "accepted");
}

#[tokio::test]
async fn ready_is_503_while_storage_is_broken_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the data directory should be: the store cannot open.
    let blocker = dir.path().join("blocked");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let config = config_text(&blocker.join("data"), "");
    let server = Server::start_with(dir.path(), &config);
    let c = server.client();

    let (s, _) = plain::get(&server.base, "/health").await;
    assert_eq!(s, 200, "liveness does not depend on storage");
    let (s, b) = plain::get(&server.base, "/ready").await;
    assert_envelope(s, &b, 503, "UNAVAILABLE");
    let (s, b) = c.post("/v1/events", &event("never", "u", 1)).await;
    assert_envelope(s, &b, 503, "UNAVAILABLE");
    let (s, b) = c.bulk(&[event("never", "u", 1)]).await;
    assert_envelope(s, &b, 503, "UNAVAILABLE");

    // Fix the storage: the server notices on its own and becomes ready.
    std::fs::remove_file(&blocker).unwrap();
    let base = server.base.clone();
    eventually("ready after storage is fixed", || async {
        plain::get(&base, "/ready").await.0 == 200
    })
    .await;
    assert_eq!(
        c.post("/v1/events", &event("now", "u", 1)).await.1["status"],
        "accepted"
    );
    assert_eq!(
        c.logged_ids().await,
        ["now"],
        "the refused event was never stored"
    );
}

#[tokio::test]
async fn metrics_need_the_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .client()
            .post("/v1/events", &event("m1", "u", 1))
            .await
            .0,
        202
    );
    let (s, b) = plain::get(&server.base, "/metrics").await;
    assert_envelope(s, &b, 401, "UNAUTHORIZED");
    let text = server.metrics().await;
    assert!(
        text.contains("phoenix_events_accepted_total{tenant=\"demo\"} 1"),
        "{text}"
    );
    assert!(text.contains("phoenix_fsyncs_total"), "{text}");
}
