//! Sign and send gameplay events to Phoenix — the README's tour uses this.
//!
//! Run (against `cargo run --release -- serve --config phoenix.example.toml`):
//!   cargo run --example send_events -- single --user alice --score 1550
//!   cargo run --example send_events -- bulk --count 100
//!   cargo run --example send_events -- log
//!   cargo run --example send_events -- board --id score --def '{"rules":[{"event_type":"match.*","points_expression":"attrs.score"}],"timeframes":["daily","all_time"]}'
//!   cargo run --example send_events -- standings --id score --timeframe daily
//! Options: --url (default http://127.0.0.1:8080), --tenant (demo), --secret (the demo secret).

mod common;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[command(flatten)]
    auth: common::Tenant,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// POST /v1/events: one match.completed event.
    Single {
        #[arg(long, default_value = "alice")]
        user: String,
        #[arg(long, default_value_t = 100)]
        score: i64,
        /// Reuse an id to see dedupe at work (default: a fresh one).
        #[arg(long)]
        event_id: Option<String>,
        /// Event type.
        #[arg(long = "type", default_value = "match.completed")]
        event_type: String,
    },
    /// POST /v1/events/bulk: COUNT events for random players.
    Bulk {
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// GET /v1/events: print the tenant's durable log.
    Log {
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// PUT /v1/leaderboards/ID: create or replace a leaderboard.
    Board {
        #[arg(long)]
        id: String,
        /// The definition JSON (SPEC §3).
        #[arg(long)]
        def: String,
    },
    /// GET /v1/leaderboards/ID/standings.
    Standings {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "all_time")]
        timeframe: String,
        #[arg(long, default_value = "current")]
        window: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// GET /v1/leaderboards/ID/users/USER: rank, score and neighbours.
    User {
        #[arg(long)]
        id: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "all_time")]
        timeframe: String,
        #[arg(long, default_value_t = 2)]
        around: usize,
    },
}

fn event(id: &str, event_type: &str, user: &str, score: i64) -> Value {
    json!({
        "tenant_id": "placeholder",
        "event_id": id,
        "type": event_type,
        "actor": {"user_id": user, "metadata": {"region": "na-east", "platform": "ios"}},
        "subject": {"type": "match", "id": format!("match-{}", score)},
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "attrs": {"score": score, "kills": score % 7, "mode": "ranked", "victory": score % 2 == 0}
    })
}

fn fresh_id() -> String {
    let n = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("evt-{n:x}-{}", std::process::id())
}

async fn send(args: &Args, method: &str, path: &str, query: &str, body: String) -> (u16, Value) {
    let url = format!("{}{path}{query}", args.url);
    let req = args
        .auth
        .request(&reqwest::Client::new(), method, &url, path, body);
    let resp = req
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot reach {}: {e}", args.url));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (method, path, query, body) = match &args.command {
        Cmd::Single {
            user,
            score,
            event_id,
            event_type,
        } => {
            let id = event_id.clone().unwrap_or_else(fresh_id);
            let body = event(&id, event_type, user, *score).to_string();
            ("POST", "/v1/events".to_owned(), String::new(), body)
        }
        Cmd::Bulk { count } => {
            let players = ["alice", "bob", "carol", "dave", "erin", "frank"];
            let events: Vec<Value> = (0..*count)
                .map(|i| {
                    let score = ((i * 7919) % 2000) as i64;
                    let player = players[i % players.len()];
                    event(
                        &format!("{}-{i}", fresh_id()),
                        "match.completed",
                        player,
                        score,
                    )
                })
                .collect();
            let body = json!({ "events": events }).to_string();
            ("POST", "/v1/events/bulk".to_owned(), String::new(), body)
        }
        Cmd::Log { from } => (
            "GET",
            "/v1/events".to_owned(),
            format!("?from={from}"),
            String::new(),
        ),
        Cmd::Board { id, def } => (
            "PUT",
            format!("/v1/leaderboards/{id}"),
            String::new(),
            def.clone(),
        ),
        Cmd::Standings {
            id,
            timeframe,
            window,
            limit,
        } => (
            "GET",
            format!("/v1/leaderboards/{id}/standings"),
            format!("?timeframe={timeframe}&window={window}&limit={limit}"),
            String::new(),
        ),
        Cmd::User {
            id,
            user,
            timeframe,
            around,
        } => (
            "GET",
            format!("/v1/leaderboards/{id}/users/{user}"),
            format!("?timeframe={timeframe}&around={around}"),
            String::new(),
        ),
    };
    let (status, body) = send(&args, method, &path, &query, body).await;
    println!("HTTP {status}");
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    if status >= 400 {
        std::process::exit(1);
    }
}
