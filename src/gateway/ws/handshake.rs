//! The WebSocket handshake, done here rather than by axum's `WebSocketUpgrade` because a
//! session needs its TCP socket: a slow client is aborted (RST, nothing flushed), which only
//! the socket can do. Falls back to the plain upgraded stream when the server's connection
//! type is not the one expected (the session then ends with a normal close instead).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::error::ApiError;
use crate::server::conn::ConnIo;

/// A checked upgrade request, ready to be answered with 101.
pub struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Upgrade {
    /// Check that `req` is a WebSocket upgrade (RFC 6455 §4.2.1) and take its upgrade handle.
    pub fn check(req: &mut Request) -> Result<Upgrade, ApiError> {
        let refuse = |why: &str| {
            Err(ApiError::Validation(format!(
                "WebSocket upgrade required: {why}"
            )))
        };
        let h = req.headers();
        if req.method() != Method::GET {
            return refuse("use GET");
        }
        if !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return refuse("send Connection: upgrade and Upgrade: websocket");
        }
        if h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return refuse("Sec-WebSocket-Version must be 13");
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
            return refuse("Sec-WebSocket-Key is missing");
        };
        let accept = derive_accept_key(key.as_bytes());
        let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
            return refuse("this connection cannot be upgraded");
        };
        Ok(Upgrade { accept, on_upgrade })
    }

    /// Answer 101 and run `session` on the WebSocket once the upgrade completes.
    pub fn respond<F, Fut>(self, config: WebSocketConfig, session: F) -> Response
    where
        F: FnOnce(WebSocketStream<Io>, Abort) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let (io, read_buf, abort) = into_io(upgraded);
            let ws = WebSocketStream::from_partially_read(io, read_buf, Role::Server, Some(config))
                .await;
            session(ws, abort).await;
        });
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}

/// The TCP stream under the upgrade if it can be reached (hyper-util's auto connection, or
/// hyper's own), with the bytes already read past the HTTP head.
fn into_io(upgraded: Upgraded) -> (Io, Vec<u8>, Abort) {
    // Phoenix's own transport (src/server/transport.rs) serves `ConnIo` over hyper's HTTP/1.
    let upgraded = match upgraded.downcast::<TokioIo<ConnIo>>() {
        Ok(p) => {
            let conn = p.io.into_inner();
            let abort = Abort(socket2::SockRef::from(conn.tcp()).try_clone().ok());
            return (Io::Conn(Box::new(conn)), p.read_buf.to_vec(), abort);
        }
        Err(upgraded) => upgraded,
    };
    let tcp =
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(p) => Ok((p.io.into_inner(), p.read_buf)),
            Err(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(p) => Ok((p.io.into_inner(), p.read_buf)),
                Err(upgraded) => Err(upgraded),
            },
        };
    match tcp {
        Ok((tcp, read_buf)) => {
            let abort = Abort(socket2::SockRef::from(&tcp).try_clone().ok());
            (Io::Tcp(tcp), read_buf.to_vec(), abort)
        }
        Err(upgraded) => {
            tracing::warn!(
                "WebSocket without access to its TCP socket: slow clients are closed, not reset"
            );
            (
                Io::Upgraded(TokioIo::new(upgraded)),
                Vec::new(),
                Abort(None),
            )
        }
    }
}

/// A second handle on the session's socket: lets the session reset the connection (RST,
/// discarding whatever is queued) instead of closing it behind megabytes of unsent frames.
/// Dropped with the session; the socket is closed when both it and the stream are gone.
pub struct Abort(Option<socket2::Socket>);

impl Abort {
    /// Make the coming close a reset: linger 0 drops the unsent queue and sends RST.
    pub fn reset_on_close(&self) {
        if let Some(s) = &self.0 {
            if let Err(e) = s.set_linger(Some(Duration::ZERO)) {
                tracing::warn!(error = %e, "could not set SO_LINGER 0 on a WebSocket");
            }
        }
    }
}

/// The session's byte stream: the TCP socket itself, or (fallback) hyper's upgraded stream.
pub enum Io {
    Conn(Box<ConnIo>),
    Tcp(TcpStream),
    Upgraded(TokioIo<Upgraded>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Conn(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Conn(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Conn(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Conn(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
