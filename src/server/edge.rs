//! What every request passes around the handlers: the URI and header limits (414, 431 in the
//! envelope) and the rewrite of any bare error a layer below the handlers produced (axum's
//! 405, a `Path`/`Query`/`Json` rejection, …) into the seed's envelope — both layers of
//! `app()` — and, for the transport, the body stall deadline (408) and the body that tells
//! the connection when a response is done.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::conn::{ConnClock, Stage};
use crate::error::ApiError;

/// The request limits checked before routing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            max_uri_bytes: c.http_max_uri_bytes,
            max_header_bytes: c.http_max_header_bytes,
        }
    }
}

/// Middleware: refuse a request over the head limits before it reaches any route.
pub async fn limit_head(
    limits: Limits,
    req: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    match check_head(&req, &limits) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// 414 or 431 when the request head is over the configured limits.
pub fn check_head<B>(req: &Request<B>, limits: &Limits) -> Result<(), ApiError> {
    let uri = req.uri();
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, str::len);
    if uri_len > limits.max_uri_bytes {
        return Err(ApiError::UriTooLong(format!(
            "Request target is {uri_len} bytes; at most {} are accepted",
            limits.max_uri_bytes
        )));
    }
    // As on the wire: `name: value\r\n`.
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_len > limits.max_header_bytes {
        return Err(ApiError::HeadersTooLarge(format!(
            "Request header fields are {header_len} bytes; at most {} are accepted",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

/// The answer for a request whose body stalled; the connection is closed after it.
pub fn stalled(timeout: Duration) -> Response<Body> {
    let mut resp = ApiError::RequestTimeout(format!(
        "The request body made no progress for {} s",
        timeout.as_secs()
    ))
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Largest bare error body read back to become the envelope's message.
const BARE_BODY_MAX: usize = 16 * 1024;

/// Any 4xx/5xx that is not already JSON becomes the envelope, keeping its status and its
/// other headers (`Allow` on a 405, …). Handlers' own errors are `ApiError`s already.
pub async fn envelope(resp: Response<Body>) -> Response<Body> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, BARE_BODY_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED && text.trim().is_empty() {
        match parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
        {
            Some(allow) => format!("Method not allowed here; allowed: {allow}"),
            None => "Method not allowed here".to_owned(),
        }
    } else {
        text
    };
    let fresh = ApiError::from_status(status, message).into_response();
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    for (k, v) in &fresh_parts.headers {
        parts.headers.insert(k, v.clone());
    }
    Response::from_parts(parts, fresh_body)
}

/// A request body that fails once no frame arrived for `timeout`, and says so in `fired`.
pub struct StallTimeout<B> {
    inner: B,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    fired: Arc<AtomicBool>,
}

impl<B> StallTimeout<B> {
    pub fn new(inner: B, timeout: Duration, fired: Arc<AtomicBool>) -> Self {
        StallTimeout {
            inner,
            timeout,
            sleep: None,
            fired,
        }
    }
}

/// The error a stalled body reports to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("request body made no progress for {0:?}")]
pub struct BodyStalled(Duration);

impl<B> HttpBody for StallTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.fired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyStalled(this.timeout).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.fired.store(true, Ordering::Relaxed);
                        Stage::Body.count();
                        Poll::Ready(Some(Err(BodyStalled(timeout).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the connection's clock when it is done (written or dropped).
pub struct Finished {
    inner: Body,
    clock: Arc<ConnClock>,
}

impl Finished {
    pub fn new(inner: Body, clock: Arc<ConnClock>) -> Self {
        Finished { inner, clock }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.clock.request_finished();
    }
}

impl HttpBody for Finished {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_uri_bytes: 100,
            max_header_bytes: 200,
        }
    }

    #[test]
    fn head_limits() {
        let ok = Request::get("/v1/x?a=1").header("a", "b").body(()).unwrap();
        assert!(check_head(&ok, &limits()).is_ok());
        let long = Request::get(format!("/{}", "a".repeat(100)))
            .body(())
            .unwrap();
        assert_eq!(
            check_head(&long, &limits()).unwrap_err().status(),
            StatusCode::URI_TOO_LONG
        );
        let big = Request::get("/")
            .header("x", "v".repeat(200))
            .body(())
            .unwrap();
        assert_eq!(
            check_head(&big, &limits()).unwrap_err().status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn bare_errors_get_the_envelope_and_keep_their_headers() {
        let bare = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET,HEAD")
            .body(Body::empty())
            .unwrap();
        let resp = envelope(bare).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET,HEAD");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "METHOD_NOT_ALLOWED");
        assert!(v["error"]["message"].as_str().unwrap().contains("GET,HEAD"));

        let text = (StatusCode::BAD_REQUEST, "Invalid URL: bad escape").into_response();
        let resp = envelope(text).await;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["message"], "Invalid URL: bad escape");

        let ok = (StatusCode::OK, "fine").into_response();
        let resp = envelope(ok).await;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(&body[..], b"fine");
    }
}
