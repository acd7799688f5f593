//! WebSocket test clients: connect as a backend (tenant HMAC on the upgrade) or with a
//! client token, send JSON frames, read frames of a type, close frames, and the churn that
//! makes a client that never reads a slow consumer.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::{event, now, sign, Client, SECRET, TENANT};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type WsError = tokio_tungstenite::tungstenite::Error;

pub fn ws_url(base: &str) -> String {
    format!("{}/v1/ws", base.replacen("http://", "ws://", 1))
}

/// Connect as a backend (tenant HMAC on the upgrade).
pub async fn backend(base: &str, tenant: &str, secret: &str) -> Result<Ws, WsError> {
    let mut req = ws_url(base).into_client_request().unwrap();
    let ts = now().to_string();
    let sig = sign(secret, "GET", "/v1/ws", &ts, b"");
    let h = req.headers_mut();
    h.insert("X-Tenant-Id", tenant.parse().unwrap());
    h.insert("X-Timestamp", ts.parse().unwrap());
    h.insert("X-Signature", sig.parse().unwrap());
    connect_async(req).await.map(|(ws, _)| ws)
}

/// Connect as the standard tenant's backend, which must succeed.
pub async fn demo_backend(base: &str) -> Ws {
    backend(base, TENANT, SECRET)
        .await
        .expect("backend upgrade")
}

/// Connect as a game client with `?token=`.
pub async fn with_token(base: &str, token: &str) -> Result<Ws, WsError> {
    connect_async(format!("{}?token={token}", ws_url(base)))
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status a refused upgrade was answered with (fails if it was not refused so).
pub fn refusal(attempt: Result<Ws, WsError>) -> u16 {
    match attempt {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    send_text(ws, v.to_string()).await;
}

/// Send a text frame as it is (JSON or not).
pub async fn send_text(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// A subscription to board `b`, all time.
pub fn subscribe(id: &str, view: Value) -> Value {
    json!({"type": "subscribe", "id": id, "leaderboard": "b", "timeframe": "all_time", "view": view})
}

/// The next text frame, raw (fails on a close frame, or after 10 s).
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// The next JSON frame.
pub async fn next(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

/// The next JSON frame for which `wanted` holds (the others are skipped).
pub async fn next_where(ws: &mut Ws, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = next(ws).await;
        if wanted(&f) {
            return f;
        }
    }
}

/// The next frame of type `ty`.
pub async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    next_where(ws, |f| f["type"] == ty).await
}

/// A ping frame is answered with its pong.
pub async fn ping_ok(ws: &mut Ws) {
    send(ws, json!({"type": "ping", "id": "p"})).await;
    assert_eq!(next_of(ws, "pong").await["id"], "p");
}

/// Read until the server's close frame; its (code, reason). Fails on a bare close.
pub async fn close_of(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return (f.code.into(), f.reason.to_string()),
            Ok(Some(Ok(Message::Close(None)))) => panic!("close frame without a code"),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the stream ended without a close frame: {other:?}"),
            Err(_) => panic!("no close frame within {within:?}"),
        }
    }
}

/// Round `round` of churn in the top 100 of board `b`: 100 events for users with long ids
/// (~26 KB frames, so a client that never reads fills the socket buffers within seconds).
pub async fn churn(c: &Client, round: i64, pad: &str) {
    let events: Vec<Value> = (0..100)
        .map(|j| {
            event(
                &format!("r{round}-{j}"),
                &format!("user{j}-{pad}"),
                (round * 7 + j * 13) % 97 + 1,
            )
        })
        .collect();
    c.bulk(&events).await;
}

/// The server still serves a fresh backend session: a subscription gets its snapshot.
pub async fn assert_serves(base: &str) {
    let mut ws = demo_backend(base).await;
    send(&mut ws, subscribe("again", json!({"top": 3}))).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
}
