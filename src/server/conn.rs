//! One accepted TCP connection: its slot under `max_connections`, the clock that says which
//! deadline applies to it (header, idle), and the socket wrapper that turns the bare error
//! response hyper writes for a request it cannot parse into the seed's envelope.
//!
//! How the wrapper knows a write is hyper's own error answer: hyper writes only responses to
//! requests it dispatched, or that answer. After a response is complete hyper flushes all of
//! it before it reads the next head (its state returns to `Init` only after a flush), so a
//! write that comes after such a flush and before the next dispatch can only be hyper's
//! answer to a head it could not take.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::error::ApiError;

/// Which wait on the peer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No complete request head within `http_header_timeout_seconds`.
    Header,
    /// A request body made no progress for `http_body_timeout_seconds`.
    Body,
    /// A keep-alive connection sent nothing for `http_idle_timeout_seconds`.
    Idle,
    /// A response could not be written for `http_body_timeout_seconds` (the client does not
    /// read).
    Write,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Header => "header",
            Stage::Body => "body",
            Stage::Idle => "idle",
            Stage::Write => "write",
        }
    }

    pub fn count(self) {
        metrics::counter!("phoenix_http_timeouts_total", "stage" => self.as_str()).increment(1);
    }
}

/// The three deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
}

/// One place under `max_connections`, held for as long as the socket is open (an upgraded
/// WebSocket included), and the `phoenix_http_connections` gauge with it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    pub fn new(permit: OwnedSemaphorePermit) -> Slot {
        metrics::gauge!("phoenix_http_connections").increment(1.0);
        Slot { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("phoenix_http_connections").decrement(1.0);
    }
}

const NONE: u64 = u64::MAX;

/// What a connection is doing, as far as its deadlines go. hyper's HTTP/1 server handles one
/// request at a time, so every change happens on the connection's own task; atomics only
/// because the state is shared between the socket, the service and the watchdog.
pub struct ConnClock {
    origin: Instant,
    /// Requests dispatched and not yet fully answered (the response body not yet dropped).
    busy: AtomicUsize,
    /// Requests answered so far.
    served: AtomicU64,
    /// Requests dispatched so far.
    started: AtomicU64,
    /// A 101 was answered: the socket now carries another protocol, never to be rewritten.
    upgraded: AtomicBool,
    /// Milliseconds since `origin` when the current wait for a request head began.
    waiting_since: AtomicU64,
    /// Milliseconds since `origin` of the first byte of the next head (`NONE` before it).
    head_byte: AtomicU64,
    /// Milliseconds since `origin` since when a write has been waiting on the peer (`NONE`
    /// while writes go through).
    write_blocked: AtomicU64,
    pub changed: Notify,
}

impl ConnClock {
    pub fn new() -> ConnClock {
        ConnClock {
            origin: Instant::now(),
            busy: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            started: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
            head_byte: AtomicU64::new(NONE),
            write_blocked: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// A complete request head was parsed and handed to the service.
    pub fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// The response was written out (or abandoned): the wait for the next head begins.
    pub fn request_finished(&self) {
        self.waiting_since
            .store(self.elapsed_ms(), Ordering::Relaxed);
        self.head_byte.store(NONE, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The request in flight was answered 101 Switching Protocols.
    pub fn upgrading(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    fn upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    fn idle(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
    }

    /// Bytes arrived from the peer.
    fn bytes_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0
            && self.served.load(Ordering::Relaxed) > 0
            && self.head_byte.load(Ordering::Relaxed) == NONE
        {
            self.head_byte.store(self.elapsed_ms(), Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// A write to the peer would block.
    fn write_waits(&self) {
        if self.write_blocked.load(Ordering::Relaxed) == NONE {
            self.write_blocked
                .store(self.elapsed_ms(), Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    /// A write to the peer went through.
    fn write_done(&self) {
        if self.write_blocked.load(Ordering::Relaxed) != NONE {
            self.write_blocked.store(NONE, Ordering::Relaxed);
        }
    }

    /// The deadline that applies now, if any: a write stalled on the peer, or the wait for a
    /// request head. While a request is being served there is no read deadline here: a
    /// stalled body has its own (`StallTimeout`), and the handlers bound their calls.
    pub fn deadline(&self, t: &Timeouts) -> Option<(Instant, Stage)> {
        let at = |ms: u64| self.origin + Duration::from_millis(ms);
        let write = match self.write_blocked.load(Ordering::Relaxed) {
            NONE => None,
            since => Some((at(since) + t.body, Stage::Write)),
        };
        let read = if self.busy.load(Ordering::Relaxed) > 0 {
            None
        } else {
            let since = at(self.waiting_since.load(Ordering::Relaxed));
            if self.served.load(Ordering::Relaxed) == 0 {
                Some((since + t.header, Stage::Header))
            } else {
                match self.head_byte.load(Ordering::Relaxed) {
                    NONE => Some((since + t.idle, Stage::Idle)),
                    first => Some((at(first) + t.header, Stage::Header)),
                }
            }
        };
        match (write, read) {
            (Some(w), Some(r)) => Some(if w.0 <= r.0 { w } else { r }),
            (w, r) => w.or(r),
        }
    }
}

/// What the socket does with the bytes hyper writes.
enum Rewrite {
    /// Every response so far is flushed and none is in flight: a write before the next
    /// dispatch (`started` still equal to this) is hyper's bare 400/414/431.
    Armed(u64),
    /// A response of ours is being written: bytes pass through.
    Passing,
    /// Collecting hyper's bare response.
    Capturing(Vec<u8>),
    /// Writing our envelope instead; whatever hyper writes meanwhile is dropped.
    Sending { out: Vec<u8>, at: usize },
    /// Ours is out; hyper is closing the connection.
    Sent,
    /// The connection was upgraded (WebSocket): everything passes through untouched.
    Off,
}

/// Largest bare response we collect (hyper's are about 100 bytes).
const CAPTURE_MAX: usize = 1024;

/// The accepted socket: reads tell the clock that bytes arrived, writes whether they wait on
/// the peer; writes pass through, except hyper's bare parse-error response (see the module
/// docs for how it is told apart), which is replaced by the envelope.
pub struct ConnIo {
    inner: TcpStream,
    clock: Arc<ConnClock>,
    rewrite: Rewrite,
    _slot: Slot,
}

impl ConnIo {
    pub fn new(inner: TcpStream, clock: Arc<ConnClock>, slot: Slot) -> ConnIo {
        ConnIo {
            inner,
            clock,
            rewrite: Rewrite::Armed(0),
            _slot: slot,
        }
    }

    /// The TCP socket underneath (a WebSocket session resets it to drop a slow client).
    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    /// Whether this write should be swallowed (captured or dropped) rather than sent.
    fn capture(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<usize> {
        if let Rewrite::Armed(at) = self.rewrite {
            self.rewrite = if self.clock.upgraded() {
                Rewrite::Off
            } else if self.clock.started() != at {
                Rewrite::Passing
            } else {
                Rewrite::Capturing(Vec::new())
            };
        }
        let n = bufs.iter().map(|b| b.len()).sum();
        match &mut self.rewrite {
            Rewrite::Capturing(v) => {
                for b in bufs {
                    let room = CAPTURE_MAX.saturating_sub(v.len());
                    v.extend_from_slice(&b[..b.len().min(room)]);
                }
                Some(n)
            }
            Rewrite::Sending { .. } | Rewrite::Sent => Some(n),
            Rewrite::Armed(_) | Rewrite::Passing | Rewrite::Off => None,
        }
    }

    /// Write out our replacement, if one is due; Ready once nothing of ours is pending.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Rewrite::Capturing(v) = &self.rewrite {
            self.rewrite = Rewrite::Sending {
                out: envelope_response(v),
                at: 0,
            };
        }
        while let Rewrite::Sending { out, at } = &mut self.rewrite {
            if *at == out.len() {
                self.rewrite = Rewrite::Sent;
                break;
            }
            let n = std::task::ready!(watch_write(
                &self.clock,
                Pin::new(&mut self.inner).poll_write(cx, &out[*at..])
            ))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *at += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// Our answer in place of hyper's bare `HTTP/1.1 NNN …` with an empty body.
fn envelope_response(bare: &[u8]) -> Vec<u8> {
    let status = bare
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    metrics::counter!("phoenix_http_transport_errors_total", "status" => status.as_str().to_owned())
        .increment(1);
    let message = match status {
        StatusCode::URI_TOO_LONG => "Request target is too long".to_owned(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "Request header fields are too large or too many".to_owned()
        }
        _ => "Malformed HTTP request: could not parse the request line or headers".to_owned(),
    };
    let body = ApiError::from_status(status, message)
        .envelope()
        .to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// Tell the clock whether a write is waiting on the peer.
fn watch_write<T>(clock: &ConnClock, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    if r.is_pending() {
        clock.write_waits();
    } else {
        clock.write_done();
    }
    r
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        r
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.capture(&[io::IoSlice::new(buf)]) {
            return Poll::Ready(Ok(n));
        }
        watch_write(&this.clock, Pin::new(&mut this.inner).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.capture(bufs) {
            return Poll::Ready(Ok(n));
        }
        watch_write(
            &this.clock,
            Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_replacement(cx))?;
        std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // hyper flushes only once its buffer is written out: if no request is in flight now,
        // every byte of every response is out, and the next write before a dispatch is hyper's.
        if matches!(this.rewrite, Rewrite::Passing | Rewrite::Armed(_)) {
            this.rewrite = if this.clock.upgraded() {
                Rewrite::Off
            } else if this.clock.idle() {
                Rewrite::Armed(this.clock.started())
            } else {
                Rewrite::Passing
            };
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_responses_become_envelopes() {
        for (bare, status, code) in [
            (
                &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"[..],
                400,
                "VALIDATION_ERROR",
            ),
            (b"HTTP/1.1 414 URI Too Long\r\n\r\n", 414, "URI_TOO_LONG"),
            (
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n",
                431,
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ),
            (b"garbage", 400, "VALIDATION_ERROR"),
        ] {
            let out = String::from_utf8(envelope_response(bare)).unwrap();
            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            assert!(head.contains("connection: close"), "{head}");
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["status"], status);
            assert_eq!(v["error"]["code"], code);
        }
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let t = Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let near = |got: Option<(Instant, Stage)>, at: Instant, stage: Stage| {
            let (g, s) = got.expect("a deadline");
            assert_eq!(s, stage);
            let off = if g > at { g - at } else { at - g };
            assert!(off < Duration::from_millis(50), "{off:?}");
        };
        let c = ConnClock::new();
        let start = Instant::now();
        near(c.deadline(&t), start + t.header, Stage::Header);
        // A byte of the first head does not extend the header deadline.
        std::thread::sleep(Duration::from_millis(100));
        c.bytes_read();
        near(c.deadline(&t), start + t.header, Stage::Header);
        c.request_started();
        assert_eq!(c.deadline(&t), None, "no deadline while serving");
        assert_eq!(c.started(), 1);
        std::thread::sleep(Duration::from_millis(100));
        c.request_finished();
        near(c.deadline(&t), Instant::now() + t.idle, Stage::Idle);
        std::thread::sleep(Duration::from_millis(100));
        // The first byte of the next head: from idle to the header deadline.
        c.bytes_read();
        let first = Instant::now();
        near(c.deadline(&t), first + t.header, Stage::Header);
        std::thread::sleep(Duration::from_millis(100));
        c.bytes_read();
        near(c.deadline(&t), first + t.header, Stage::Header);
        // A blocked write has its own deadline, also while a request is served.
        c.request_started();
        c.write_waits();
        let blocked = Instant::now();
        near(c.deadline(&t), blocked + t.body, Stage::Write);
        std::thread::sleep(Duration::from_millis(100));
        c.write_waits();
        near(c.deadline(&t), blocked + t.body, Stage::Write);
        c.write_done();
        assert_eq!(c.deadline(&t), None);
    }
}
