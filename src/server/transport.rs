//! The HTTP/1 server under the router, in place of `axum::serve` (which runs hyper without a
//! timer, so nothing ever timed out): accept under `max_connections`, one task per connection
//! with its header, idle and body deadlines, WebSocket upgrades, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::conn::{ConnClock, ConnIo, Slot, Stage, Timeouts};
use super::edge::{self, Finished, StallTimeout};
use crate::config::Config;

/// Everything the transport takes from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub timeouts: Timeouts,
    pub max_connections: usize,
}

impl Transport {
    pub fn from_config(c: &Config) -> Transport {
        Transport {
            timeouts: Timeouts {
                header: Duration::from_secs(c.http_header_timeout_seconds),
                body: Duration::from_secs(c.http_body_timeout_seconds),
                idle: Duration::from_secs(c.http_idle_timeout_seconds),
            },
            max_connections: c.max_connections,
        }
    }
}

/// Register this module's metrics at zero, so dashboards see them before they first fire.
pub fn register_metrics() {
    metrics::gauge!("phoenix_http_connections").increment(0.0);
    metrics::counter!("phoenix_http_connections_refused_total").increment(0);
    for stage in [Stage::Header, Stage::Body, Stage::Idle, Stage::Write] {
        metrics::counter!("phoenix_http_timeouts_total", "stage" => stage.as_str()).increment(0);
    }
    for status in ["400", "414", "431"] {
        metrics::counter!("phoenix_http_transport_errors_total", "status" => status).increment(0);
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting, let every
/// connection finish its request in flight (idle ones close at once) and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    register_metrics();
    let slots = Arc::new(Semaphore::new(transport.max_connections));
    let mut builder = http1::Builder::new();
    // Our own clock keeps the header deadline: hyper's would also cut idle keep-alive
    // connections at the header deadline instead of the idle one. The timer stays set so
    // that no hyper timeout can ever run without one.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let builder = Arc::new(builder);
    // Every connection task holds a receiver; `closed()` resolves once all have ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!("phoenix_http_connections_refused_total").increment(1);
            refuse(&stream);
            continue;
        };
        let conn = Connection {
            stream,
            slot: Slot::new(permit),
            router: router.clone(),
            builder: builder.clone(),
            transport,
            stop: stop_rx.clone(),
        };
        tokio::spawn(conn.run());
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// Tell an over-limit client why, if its socket takes the answer at once (no waiting on it,
/// no task); the caller then drops, i.e. closes, the socket.
fn refuse(stream: &TcpStream) {
    let body = crate::error::ApiError::Unavailable("Too many open connections; retry later".into())
        .envelope()
        .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

struct Connection {
    stream: TcpStream,
    slot: Slot,
    router: Router,
    builder: Arc<http1::Builder>,
    transport: Transport,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self) {
        let clock = Arc::new(ConnClock::new());
        let io = ConnIo::new(self.stream, clock.clone(), self.slot);
        let service = {
            let (clock, router, t) = (clock.clone(), self.router, self.transport);
            hyper::service::service_fn(move |req: Request<Incoming>| {
                // Before any byte of the answer can be written (see `conn`).
                clock.request_started();
                // From here on, whatever happens, the clock hears when this request is done.
                let finished = FinishGuard(Some(clock.clone()));
                handle(req, router.clone(), finished, t)
            })
        };
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let timeouts = self.transport.timeouts;
        let mut draining = *self.stop.borrow();
        if draining {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let changed = clock.changed.notified();
            let deadline = clock.deadline(&timeouts);
            let sleep = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                    break;
                }
                () = changed => {}
                () = sleep => {
                    if let Some((at, stage)) = clock.deadline(&timeouts) {
                        if at <= tokio::time::Instant::now() {
                            // Dropping the connection closes the socket.
                            stage.count();
                            tracing::debug!(stage = stage.as_str(), "http connection timed out");
                            break;
                        }
                    }
                }
                r = self.stop.changed(), if !draining => {
                    draining = true;
                    if r.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// One request: the body stall deadline around the router (which does the rest).
async fn handle(
    req: Request<Incoming>,
    router: Router,
    finished: FinishGuard,
    t: Transport,
) -> Result<axum::response::Response<Finished>, Infallible> {
    let fired = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| Body::new(StallTimeout::new(b, t.timeouts.body, fired.clone())));
    let resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // Whatever the handler made of its failed read, the answer is the 408.
    let resp = if fired.load(Ordering::Relaxed) {
        edge::stalled(t.timeouts.body)
    } else {
        resp
    };
    let clock = finished.take();
    if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        clock.upgrading();
    }
    Ok(resp.map(|b| Finished::new(b, clock)))
}

/// Marks the request finished if the response never gets as far as its body.
struct FinishGuard(Option<Arc<ConnClock>>);

impl FinishGuard {
    fn take(mut self) -> Arc<ConnClock> {
        self.0.take().expect("taken once")
    }
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        if let Some(clock) = self.0.take() {
            clock.request_finished();
        }
    }
}
