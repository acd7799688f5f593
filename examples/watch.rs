//! Print a live top-10 of a leaderboard over the WebSocket gateway (docs/websocket.md).
//!
//! Run (server from the README, a board created with `send_events board`):
//!   cargo run --example watch -- --leaderboard ranked --timeframe daily
//! Options: --url ws://127.0.0.1:8080, --tenant demo, --secret <demo secret>, --top 10,
//! or --token <client token> to connect as a game client instead of with tenant HMAC.

mod common;

use std::collections::BTreeMap;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    #[command(flatten)]
    auth: common::Tenant,
    /// Connect with a client token instead of tenant HMAC.
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    leaderboard: String,
    #[arg(long, default_value = "all_time")]
    timeframe: String,
    #[arg(long, default_value_t = 10)]
    top: usize,
}

fn print(board: &str, window: &str, rows: &BTreeMap<usize, (String, f64)>) {
    println!("\n{board} — {window}");
    for (rank, (user, score)) in rows {
        println!("{rank:>4}  {user:<24} {score:>12.1}");
    }
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let req = match &a.token {
        Some(t) => format!("{}/v1/ws?token={t}", a.url)
            .into_client_request()
            .unwrap(),
        None => a.auth.ws_request(&format!("{}/v1/ws", a.url)),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let sub = json!({"type": "subscribe", "id": "watch", "leaderboard": a.leaderboard,
                     "timeframe": a.timeframe, "view": {"top": a.top}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    // rank → (user, score), kept in sync from snapshots and updates.
    let mut rows: BTreeMap<usize, (String, f64)> = BTreeMap::new();
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str() {
            Some("snapshot") => {
                rows.clear();
                for e in v["entries"].as_array().unwrap() {
                    rows.insert(
                        e["rank"].as_u64().unwrap() as usize,
                        (
                            e["user_id"].as_str().unwrap().into(),
                            e["score"].as_f64().unwrap(),
                        ),
                    );
                }
            }
            Some("update") => {
                let changes = v["changes"].as_array().unwrap();
                // Drop everyone who moved or left, then place the new positions.
                let moved: Vec<&str> = changes
                    .iter()
                    .filter_map(|c| c["user_id"].as_str())
                    .collect();
                rows.retain(|_, (u, _)| !moved.contains(&u.as_str()));
                for c in changes {
                    if let (Some(r), Some(s)) = (c["rank"].as_u64(), c["score"].as_f64()) {
                        rows.insert(r as usize, (c["user_id"].as_str().unwrap().into(), s));
                    }
                }
            }
            Some("error") => {
                eprintln!("error: {}", v["error"]);
                std::process::exit(1);
            }
            _ => continue,
        }
        print(&a.leaderboard, v["window"].as_str().unwrap_or(""), &rows);
    }
}
