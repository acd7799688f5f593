//! WebSocket test clients: connect as a backend (tenant HMAC on the upgrade) or with a
//! client token, and send JSON frames.

use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::now;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn ws_url(base: &str) -> String {
    format!("{}/v1/ws", base.replacen("http://", "ws://", 1))
}

/// Connect as a backend (tenant HMAC on the upgrade).
pub async fn backend(base: &str, tenant: &str, secret: &str) -> Result<Ws, String> {
    let mut req = ws_url(base).into_client_request().unwrap();
    let ts = now().to_string();
    let sig = phoenix::auth::sign(secret.as_bytes(), "GET", "/v1/ws", &ts, b"");
    let h = req.headers_mut();
    h.insert("X-Tenant-Id", tenant.parse().unwrap());
    h.insert("X-Timestamp", ts.parse().unwrap());
    h.insert("X-Signature", sig.parse().unwrap());
    connect_async(req)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// Connect as a game client with `?token=`.
pub async fn with_token(base: &str, token: &str) -> Result<Ws, String> {
    connect_async(format!("{}?token={token}", ws_url(base)))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}
