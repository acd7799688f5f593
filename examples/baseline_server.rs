//! Baseline for the ingestion benchmarks: the same HTTP surface as Phoenix's gateway
//! without durability. `--mode noop` answers 202 at once; `--mode signed` verifies the tenant
//! HMAC, parses and validates every event exactly like Phoenix, then answers 202 without
//! storing anything. Comparing against it isolates what the log, dedupe and fsync cost.
//!
//! Run: cargo run --release --example baseline_server -- --mode signed --listen 127.0.0.1:8090

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Mode {
    Noop,
    Signed,
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    #[arg(long, value_enum, default_value = "signed")]
    mode: Mode,
    #[arg(long, default_value = "demo-secret-0123456789")]
    secret: String,
}

fn check(secret: &str, headers: &HeaderMap, path: &str, body: &[u8]) -> Option<Vec<Value>> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (ts, sig) = (get("x-timestamp")?, get("x-signature")?);
    std::str::from_utf8(body).ok()?;
    if !phoenix::auth::verify(secret.as_bytes(), "POST", path, ts, body, sig) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    #[derive(serde::Deserialize)]
    struct Bulk<'a> {
        #[serde(borrow)]
        events: Vec<&'a serde_json::value::RawValue>,
    }
    let list: Vec<&str> = if path.ends_with("bulk") {
        serde_json::from_str::<Bulk>(text)
            .ok()?
            .events
            .iter()
            .map(|r| r.get())
            .collect()
    } else {
        vec![text]
    };
    let now = chrono::Utc::now();
    Some(
        list.into_iter()
            .map(|e| match phoenix_actors::Event::from_str(e, "demo", now) {
                Ok(e) => json!({"event_id": e.event_id, "status": "accepted"}),
                Err(e) => json!({"status": "failed", "error": e.to_string()}),
            })
            .collect(),
    )
}

/// The answer to a POST of `body` to `path` (`/v1/events` or `/v1/events/bulk`).
fn answer(
    mode: Mode,
    secret: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Json<Value>) {
    if mode == Mode::Noop {
        return (StatusCode::ACCEPTED, Json(json!({"status": "accepted"})));
    }
    match check(secret, headers, path, body) {
        Some(mut r) if !path.ends_with("bulk") => (StatusCode::ACCEPTED, Json(r.remove(0))),
        Some(r) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "accepted", "results": r})),
        ),
        None => (StatusCode::UNAUTHORIZED, Json(json!({}))),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut app = Router::new();
    for path in ["/v1/events", "/v1/events/bulk"] {
        let (mode, secret) = (args.mode, args.secret.clone());
        app = app.route(
            path,
            post(move |headers: HeaderMap, body: Bytes| async move {
                answer(mode, &secret, path, &headers, &body)
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .expect("bind");
    println!(
        "baseline listening on http://{}",
        listener.local_addr().expect("addr")
    );
    axum::serve(listener, app).await.expect("serve");
}
