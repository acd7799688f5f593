//! Operator API tests against the real binary: auth, create, suspend → ingestion 403,
//! resume, secret rotation with overlap, and persistence across a restart.

mod common;

use common::*;
use serde_json::{json, Value};

/// The status a POST of `event` gets from `c`.
async fn ingest_status(c: &Client, event: &Value) -> u16 {
    c.post("/v1/events", event).await.0
}

#[tokio::test]
async fn operator_api_manages_tenants_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let base = server.base.clone();
    let op = |method: &'static str, path: &'static str, body: Option<Value>| {
        let base = base.clone();
        async move { plain::operator(&base, method, path, body.as_ref()).await }
    };

    // Operator token required.
    let (s, e) = plain::call(&base, "GET", "/v1/admin/tenants", Some("wrong-token"), None).await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let (s, list) = op("GET", "/v1/admin/tenants", None).await;
    assert_eq!(s, 200);
    assert!(list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == TENANT));
    assert!(
        !list.to_string().contains(SECRET),
        "secrets are never listed"
    );

    // Create: a generated secret works for ingestion right away.
    let (s, created) = op("POST", "/v1/admin/tenants", Some(json!({"id": "newco"}))).await;
    assert_eq!(s, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let c = Client::new(&base, "newco", &secret);
    assert_eq!(
        c.post("/v1/events", &event("n1", "u", 1)).await.1["status"],
        "accepted"
    );
    let (s, e) = op("POST", "/v1/admin/tenants", Some(json!({"id": "newco"}))).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");
    let (s, e) = op("POST", "/v1/admin/tenants", Some(json!({"id": "bad id"}))).await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");

    // Suspend → 403 for ingestion; resume → accepted again.
    let (s, v) = op("POST", "/v1/admin/tenants/newco/suspend", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("suspended")));
    let (s, e) = c.post("/v1/events", &event("n2", "u", 1)).await;
    assert_envelope(s, &e, 403, "FORBIDDEN");
    op("POST", "/v1/admin/tenants/newco/resume", None).await;
    assert_eq!(ingest_status(&c, &event("n2", "u", 1)).await, 202);
    let (s, e) = op("POST", "/v1/admin/tenants/nobody/suspend", None).await;
    assert_envelope(s, &e, 404, "NOT_FOUND");

    // Rotate with an overlap: old and new secrets both work; without overlap the old stops.
    let (s, rotated) = op(
        "POST",
        "/v1/admin/tenants/newco/rotate",
        Some(json!({"overlap_seconds": 600})),
    )
    .await;
    assert_eq!(s, 200, "{rotated}");
    assert!(rotated["previous_secret_valid_until"].is_string());
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let c2 = Client::new(&base, "newco", &new_secret);
    assert_eq!(
        ingest_status(&c, &event("n3", "u", 1)).await,
        202,
        "old secret inside the overlap"
    );
    assert_eq!(
        ingest_status(&c2, &event("n4", "u", 1)).await,
        202,
        "new secret"
    );
    let demo = Client::new(&base, TENANT, SECRET);
    let (_, r) = op(
        "POST",
        "/v1/admin/tenants/demo/rotate",
        Some(json!({"overlap_seconds": 0, "secret": "brand-new-secret-0001"})),
    )
    .await;
    assert_eq!(r["secret"], "brand-new-secret-0001");
    let (s, e) = demo.post("/v1/events", &event("d1", "u", 1)).await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    let demo2 = Client::new(&base, TENANT, "brand-new-secret-0001");
    assert_eq!(ingest_status(&demo2, &event("d1", "u", 1)).await, 202);
    let (s, e) = op(
        "POST",
        "/v1/admin/tenants/demo/rotate",
        Some(json!({"overlap_seconds": -5})),
    )
    .await;
    assert_envelope(s, &e, 400, "VALIDATION_ERROR");

    // Everything survives a restart (SIGKILL): the created tenant, its rotation, demo's secret.
    server.kill();
    drop(server);
    let server = Server::start(dir.path());
    let c = Client::new(&server.base, "newco", &secret);
    let c2 = Client::new(&server.base, "newco", &new_secret);
    assert_eq!(
        ingest_status(&c, &event("n5", "u", 1)).await,
        202,
        "overlap persisted"
    );
    assert_eq!(ingest_status(&c2, &event("n6", "u", 1)).await, 202);
    let ids = c2.logged_ids().await;
    assert_eq!(ids, ["n1", "n2", "n3", "n4", "n5", "n6"]);
    let s = ingest_status(
        &Client::new(&server.base, TENANT, SECRET),
        &event("d2", "u", 1),
    )
    .await;
    assert_eq!(s, 401, "the rotated-out config secret stays rotated out");
    assert_eq!(
        Client::new(&server.base, TENANT, "brand-new-secret-0001")
            .post("/v1/events", &event("d2", "u", 1))
            .await
            .0,
        202
    );
}
