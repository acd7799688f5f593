//! Load generator for the ingestion gateway: signed single or bulk events over N keep-alive
//! HTTP/1.1 connections, reporting durable events/s and ack latency percentiles.
//!
//! Run (server already up, e.g. `benches/ingest_load.sh` does all of this):
//!   cargo run --release --example loadgen -- --mode single --connections 64 --duration 10
//!   cargo run --release --example loadgen -- --mode bulk --connections 16 --duration 10
//!   cargo run --release --example loadgen -- --mode single --rate 20000 --duration 10
//! With `--rate` (events/s, open loop) latency is measured from each request's scheduled
//! send time, so queueing delay is not hidden (no coordinated omission).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Barrier};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Mode {
    Single,
    Bulk,
}

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[command(flatten)]
    auth: common::Tenant,
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Events per bulk request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of measured load (after a 1 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Target events/s across all connections (open loop); omit for as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Client worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print every response slower than this many ms, with its time since the start.
    #[arg(long)]
    slow_ms: Option<u64>,
    /// A label printed with the result line.
    #[arg(long, default_value = "phoenix")]
    label: String,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    events: u64,
    requests: u64,
    errors: u64,
}

fn event(id: &str, user: u64, occurred_at: &str) -> String {
    format!(
        r#"{{"tenant_id":"x","event_id":"{id}","type":"match.completed","actor":{{"user_id":"user-{user}","metadata":{{"region":"na-east","platform":"ios"}}}},"subject":{{"type":"match","id":"match-987"}},"occurred_at":"{occurred_at}","attrs":{{"score":{score},"duration_seconds":480,"victory":true}}}}"#,
        score = user % 2000
    )
}

/// One connection: connects, waits until every connection is up (the clock starts then, so
/// connection setup is never counted as request latency), then sends until the end.
async fn connection(
    args: Args,
    conn: usize,
    run: String,
    ready: Arc<Barrier>,
    mut clock: watch::Receiver<Option<(Instant, Instant)>>,
) -> Tally {
    let mut tally = Tally::default();
    let stream = tokio::net::TcpStream::connect(&args.addr)
        .await
        .expect("connect");
    stream.set_nodelay(true).ok();
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(driver);
    ready.wait().await;
    let (start, end) = clock
        .wait_for(Option::is_some)
        .await
        .expect("clock")
        .expect("set");
    let per_request = if args.mode == Mode::Bulk {
        args.batch
    } else {
        1
    };
    let path = if args.mode == Mode::Bulk {
        "/v1/events/bulk"
    } else {
        "/v1/events"
    };
    // Open loop: this connection's share of the rate, as a request interval.
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(per_request as f64 * args.connections as f64 / r));
    let occurred_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let warmup_end = start + Duration::from_secs(1);
    let mut scheduled = start
        + interval
            .map(|i| i.mul_f64(conn as f64 / args.connections as f64))
            .unwrap_or_default();
    let mut i: u64 = 0;
    while Instant::now() < end {
        if interval.is_some() {
            let now = Instant::now();
            if scheduled > now {
                tokio::time::sleep_until(scheduled.into()).await;
            }
        }
        let body = if args.mode == Mode::Bulk {
            let mut b = String::with_capacity(per_request * 330 + 16);
            b.push_str(r#"{"events":["#);
            for j in 0..per_request {
                if j > 0 {
                    b.push(',');
                }
                b.push_str(&event(
                    &format!("{run}-{conn}-{i}-{j}"),
                    i * 31 + j as u64,
                    &occurred_at,
                ));
            }
            b.push_str("]}");
            b
        } else {
            event(
                &format!("{run}-{conn}-{i}"),
                i * 31 + conn as u64,
                &occurred_at,
            )
        };
        let mut req = hyper::Request::post(path)
            .header("host", &args.addr)
            .header("content-type", "application/json");
        for (name, value) in args.auth.headers("POST", path, body.as_bytes()) {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let sent = Instant::now();
        let from = if interval.is_some() { scheduled } else { sent };
        match sender.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status() == 202;
                let _ = resp.into_body().collect().await;
                let done = Instant::now();
                if let Some(ms) = args.slow_ms {
                    let lat = done.duration_since(from);
                    if lat.as_millis() as u64 > ms {
                        eprintln!(
                            "slow: conn {conn} sent at {:.3} s, latency {:.1} ms",
                            from.duration_since(start).as_secs_f64(),
                            lat.as_secs_f64() * 1e3
                        );
                    }
                }
                if sent >= warmup_end {
                    tally.requests += 1;
                    if ok {
                        tally.events += per_request as u64;
                        tally.latencies_us.push(
                            done.duration_since(from).as_micros().min(u32::MAX as u128) as u32,
                        );
                    } else {
                        tally.errors += 1;
                    }
                }
            }
            Err(_) => {
                tally.errors += 1;
                break;
            }
        }
        if let Some(iv) = interval {
            scheduled += iv;
        }
        i += 1;
    }
    tally
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let run = format!("lg{:x}", chrono::Utc::now().timestamp_micros());
        let ready = Arc::new(Barrier::new(args.connections + 1));
        let (clock, clock_rx) = watch::channel(None);
        let tasks: Vec<_> = (0..args.connections)
            .map(|c| {
                let (ready, clock_rx) = (ready.clone(), clock_rx.clone());
                tokio::spawn(connection(args.clone(), c, run.clone(), ready, clock_rx))
            })
            .collect();
        ready.wait().await;
        let start = Instant::now();
        clock
            .send(Some((start, start + Duration::from_secs_f64(1.0 + args.duration))))
            .expect("connections wait for the clock");
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await.expect("connection task");
            all.latencies_us.extend(t.latencies_us);
            all.events += t.events;
            all.requests += t.requests;
            all.errors += t.errors;
        }
        all.latencies_us.sort_unstable();
        let secs = args.duration;
        println!(
            "{label} mode={mode} conns={c} rate={rate} events/s={eps:.0} req/s={rps:.0} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} errors={err}",
            label = args.label,
            mode = if args.mode == Mode::Bulk { format!("bulk{}", args.batch) } else { "single".into() },
            c = args.connections,
            rate = args.rate.map(|r| format!("{r:.0}")).unwrap_or_else(|| "max".into()),
            eps = all.events as f64 / secs,
            rps = all.requests as f64 / secs,
            p50 = pct(&all.latencies_us, 0.5),
            p99 = pct(&all.latencies_us, 0.99),
            max = pct(&all.latencies_us, 1.0),
            err = all.errors,
        );
    });
}
