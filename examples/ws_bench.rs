//! WebSocket benchmarks against a running Phoenix (see benches/ws_bench.sh, which runs them
//! with an HTTP bulk baseline in the same run).
//!
//!   cargo run --release --example ws_bench -- push --subscribers 1000
//!   cargo run --release --example ws_bench -- ingest --connections 8 --seconds 10
//!
//! push: N subscribers watch the top 10 of one board. (1) quiet board: one event at a time,
//! latency from its HTTP 202 to each subscriber receiving the update; (2) sustained ingest:
//! every event outscores all before it, so the newest event is always rank 1 and a frame's
//! age is receipt time minus that event's 202 time.
//! ingest: streaming `ingest` frames of 100 events with acks, several batches in flight.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[command(flatten)]
    auth: common::Tenant,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Push {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Quiet-board samples (one event each, 200 ms apart).
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// Sustained phase: events per second and seconds.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    Ingest {
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Batches in flight per connection.
        #[arg(long, default_value_t = 8)]
        window: usize,
    },
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(a: &Args) -> Ws {
    let req = a.auth.ws_request(&format!("ws://{}/v1/ws", a.addr));
    // tungstenite zero-fills its whole read buffer (128 KiB by default) before every read;
    // frames here are ~1 KiB, so a small buffer keeps the client's own cost per frame down.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    tokio_tungstenite::connect_async_with_config(req, Some(config), false)
        .await
        .expect("connect")
        .0
}

async fn http(a: &Args, client: &reqwest::Client, method: &str, path: &str, body: String) -> u16 {
    let url = format!("http://{}{path}", a.addr);
    let req = a.auth.request(client, method, &url, path, body);
    req.send().await.expect("http").status().as_u16()
}

/// An event of this run only (`bench.<run>`): a board created by a later run against the
/// same server must not replay earlier runs' higher scores into its top 10.
fn event(run: &str, id: &str, user: &str, score: u64) -> Value {
    json!({"event_id": id, "type": format!("bench.{run}"), "actor": {"user_id": user},
           "occurred_at": chrono::Utc::now().to_rfc3339(), "attrs": {"score": score}})
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn push(a: &Args, subscribers: usize, samples: usize, rate: u64, seconds: u64) {
    let client = reqwest::Client::new();
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let board = format!("wsbench{run}");
    let def = json!({"rules": [{"event_type": format!("bench.{run}"), "points_expression": "attrs.score"}], "aggregation": "max"});
    assert!(
        http(
            a,
            &client,
            "PUT",
            &format!("/v1/leaderboards/{board}"),
            def.to_string()
        )
        .await
            < 300
    );
    // Every subscriber records (receipt instant, top user id) of each update frame.
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let started = Instant::now();
    let mut ready = Vec::new();
    for i in 0..subscribers {
        let mut ws = connect(a).await;
        let sub = json!({"type": "subscribe", "id": format!("s{i}"), "leaderboard": board, "view": {"top": 10}});
        ws.send(Message::Text(sub.to_string().into()))
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        ready.push(rx);
        let log = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let at = Instant::now();
                // Scan instead of parsing: the client's own cost is not what is measured.
                if t.contains(r#""type":"snapshot""#) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                } else if t.contains(r#""type":"update""#) {
                    // Keys are sorted: {"previous_rank":…,"rank":1,"score":…,"user_id":"…"}.
                    let top = t
                        .split(r#""rank":1,"score":"#)
                        .nth(1)
                        .and_then(|rest| rest.split(r#""user_id":""#).nth(1))
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or("")
                        .to_owned();
                    log.lock().unwrap().push((at, top));
                }
            }
        });
    }
    for r in ready {
        r.await.unwrap();
    }
    println!(
        "push: {subscribers} subscribers connected and snapshotted in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // (1) Quiet board.
    let mut lat = Vec::new();
    for s in 0..samples {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log.lock().unwrap().clear();
        let user = format!("q{s}");
        let body = event(&run, &format!("{run}-q{s}"), &user, 1_000_000 + s as u64).to_string();
        assert_eq!(http(a, &client, "POST", "/v1/events", body).await, 202);
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(2);
        loop {
            let got: Vec<Instant> = log
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, u)| *u == user)
                .map(|(t, _)| *t)
                .collect();
            if got.len() >= subscribers || Instant::now() > deadline {
                lat.extend(
                    got.iter()
                        .map(|t| t.saturating_duration_since(acked).as_secs_f64() * 1e3),
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let n = lat.len();
    println!(
        "push quiet board: {n} deliveries ({} expected) ack→push min {:.2} ms p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        samples * subscribers,
        pct(&mut lat, 0.0),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );

    // (2) Sustained ingest: increasing scores, so each event becomes rank 1.
    log.lock().unwrap().clear();
    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let per_batch = 10u64;
    let interval = Duration::from_secs_f64(per_batch as f64 / rate as f64);
    let t0 = Instant::now();
    let mut next = t0;
    let mut i = 0u64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        let events: Vec<Value> = (0..per_batch)
            .map(|j| {
                let k = i * per_batch + j;
                event(
                    &run,
                    &format!("{run}-s{k}"),
                    &format!("s{k}"),
                    2_000_000 + k,
                )
            })
            .collect();
        let status = http(
            a,
            &client,
            "POST",
            "/v1/events/bulk",
            json!({"events": events}).to_string(),
        )
        .await;
        assert_eq!(status, 202);
        let now = Instant::now();
        {
            let mut m = acks.lock().unwrap();
            for j in 0..per_batch {
                m.insert(format!("s{}", i * per_batch + j), now);
            }
        }
        i += 1;
        next += interval;
        if next > Instant::now() {
            tokio::time::sleep_until(next.into()).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let frames = log.lock().unwrap().clone();
    let mut ages: Vec<f64> = {
        let m = acks.lock().unwrap();
        frames
            .iter()
            .filter_map(|(t, u)| {
                m.get(u)
                    .map(|a| t.saturating_duration_since(*a).as_secs_f64() * 1e3)
            })
            .collect()
    };
    println!(
        "push sustained: {} events/s ingested for {seconds} s; {} frames delivered to {subscribers} subscribers = {:.0} frames/s; frame age (newest event's 202 → receipt) p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        rate,
        frames.len(),
        frames.len() as f64 / elapsed,
        pct(&mut ages, 0.5),
        pct(&mut ages, 0.99),
        pct(&mut ages, 1.0)
    );
    // Every board reads the whole log: leave none behind to slow what runs next.
    let path = format!("/v1/leaderboards/{board}");
    assert!(http(a, &client, "DELETE", &path, String::new()).await < 300);
}

/// A server frame as the ingest client reads it: its type and, for an ack, each result's
/// status (other fields are skipped).
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default, borrow)]
    results: Vec<Status<'a>>,
}

#[derive(serde::Deserialize)]
struct Status<'a> {
    status: &'a str,
}

async fn ingest(a: Arc<Args>, connections: usize, seconds: u64, window: usize) {
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (a, run, total) = (a.clone(), run.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let ws = connect(&a).await;
            let (mut tx, mut rx) = ws.split();
            let sem = Arc::new(tokio::sync::Semaphore::new(window));
            let reader = {
                let (sem, total) = (sem.clone(), total.clone());
                tokio::spawn(async move {
                    while let Some(Ok(Message::Text(t))) = rx.next().await {
                        // Read into borrowed fields, not a `Value` tree: the client shares
                        // the server's cores, and the HTTP load generator reads no body.
                        let f: Frame<'_> = serde_json::from_str(&t).unwrap();
                        if f.kind == "ack" {
                            let ok = f.results.iter().filter(|r| r.status == "accepted").count();
                            total.fetch_add(ok as u64, std::sync::atomic::Ordering::Relaxed);
                            sem.add_permits(1);
                        }
                    }
                })
            };
            let occurred = chrono::Utc::now().to_rfc3339();
            let mut b = 0u64;
            while Instant::now() < end {
                sem.acquire().await.unwrap().forget();
                let mut s = String::with_capacity(100 * 200);
                s.push_str(&format!(r#"{{"type":"ingest","id":"{c}-{b}","events":["#));
                for j in 0..100 {
                    if j > 0 {
                        s.push(',');
                    }
                    s.push_str(&format!(
                        r#"{{"event_id":"{run}-{c}-{b}-{j}","type":"match.completed","actor":{{"user_id":"u{j}"}},"occurred_at":"{occurred}","attrs":{{"score":{j}}}}}"#
                    ));
                }
                s.push_str("]}");
                tx.send(Message::Text(s.into())).await.unwrap();
                b += 1;
            }
            // Wait for the outstanding acks.
            let _ = tokio::time::timeout(Duration::from_secs(5), sem.acquire_many(window as u32)).await;
            reader.abort();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = total.load(std::sync::atomic::Ordering::Relaxed);
    println!("ws ingest: {connections} connections x {window} batches of 100 in flight: {n} events acked (accepted) in {secs:.2} s = {:.0} events/s", n as f64 / secs);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args = Arc::new(Args::parse());
    match &args.cmd {
        Cmd::Push {
            subscribers,
            samples,
            rate,
            seconds,
        } => push(&args, *subscribers, *samples, *rate, *seconds).await,
        Cmd::Ingest {
            connections,
            seconds,
            window,
        } => ingest(args.clone(), *connections, *seconds, *window).await,
    }
}
