//! The HTTP transport edge (issue 11, SPEC §9): header, body and idle deadlines over real
//! sockets, the connection limit, probes outside the concurrency limit, transport-level
//! errors in the envelope, and no wrapping arithmetic on client-supplied numbers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short deadlines so the tests run in seconds: header 1 s, body 1 s, idle 4 s.
const SHORT: &str = "http_header_timeout_seconds = 1\nhttp_body_timeout_seconds = 1\nhttp_idle_timeout_seconds = 4\n";

/// A server in a fresh directory with the standard config plus `extra`.
fn start(extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &config_text(&dir.path().join("data"), extra));
    (dir, server)
}

fn addr(server: &Server) -> String {
    server.base.strip_prefix("http://").unwrap().to_owned()
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(addr(server)).await.unwrap()
}

/// One response read off a raw socket: status, head (lower-cased), body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {:?}", self.head, self.body))
    }
}

/// Read exactly one response (head byte by byte, then `content-length` bytes), so a
/// pipelined one behind it stays in the socket; fails after 5 s.
async fn read_response(s: &mut TcpStream) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout_at(deadline.into(), s.read(&mut byte))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed before a response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout_at(deadline.into(), s.read_exact(&mut body))
        .await
        .expect("the body within 5 s")
        .expect("the whole body");
    Raw { status, head, body }
}

/// Send `bytes` on a fresh connection and read the answer.
async fn exchange(server: &Server, bytes: &[u8]) -> Raw {
    read_response(&mut sent(server, bytes).await).await
}

/// Wait until the server closes `s` (EOF or reset), failing after `within`; returns how long
/// it took. Bytes that arrive meanwhile are returned too.
async fn closed_within(s: &mut TcpStream, within: Duration) -> (Duration, Vec<u8>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(within.saturating_sub(t0.elapsed()), s.read(&mut chunk)).await {
            Err(_) => panic!("still open after {within:?} (got {got:?})"),
            Ok(Ok(0)) | Ok(Err(_)) => return (t0.elapsed(), got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// At least `n` HTTP timeouts were counted at `stage`.
async fn assert_timeouts(server: &Server, stage: &str, n: f64) {
    let m = server.metrics().await;
    let counted = metric(&m, "phoenix_http_timeouts_total", &[("stage", stage)]);
    assert!(counted >= n, "{counted} {stage} timeouts:\n{m}");
}

/// A fresh connection on which `bytes` were sent.
async fn sent(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut s = connect(server).await;
    s.write_all(bytes).await.unwrap();
    s
}

/// `GET /health` on `s`, and its response.
async fn health(s: &mut TcpStream) -> Raw {
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_response(s).await
}

fn assert_raw_envelope(r: &Raw, status: u16, code: &str) {
    assert_envelope(r.status, &r.json(), status, code);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let (_dir, server) = start(SHORT);
    let mut s = connect(&server).await;
    let (took, got) = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(
        got.is_empty(),
        "a silent connection gets no answer: {got:?}"
    );
    assert_timeouts(&server, "header", 1.0).await;
}

#[tokio::test]
async fn a_dripping_header_is_closed_although_bytes_keep_coming() {
    let (_dir, server) = start(SHORT);
    let mut s = connect(&server).await;
    let (mut reader, mut writer) = s.split();
    let t0 = Instant::now();
    let drip = async {
        writer.write_all(b"GET /health HTTP/1.1\r\n").await?;
        // One byte every 100 ms: never a complete head.
        for _ in 0..100 {
            writer.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::io::Result::Ok(())
    };
    let closed = async {
        let mut chunk = [0u8; 1024];
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => t0.elapsed(),
            Ok(_) => panic!("no answer expected for an incomplete head"),
        }
    };
    let took = tokio::select! {
        took = closed => took,
        r = drip => panic!("dripped for 10 s without being closed ({r:?})"),
    };
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_announced_body_never_sent_gets_408_and_the_connection_closes() {
    let (_dir, server) = start(SHORT);
    // Part of the body, then nothing.
    let mut s = connect(&server).await;
    s.write_all(
        b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"event_id\"",
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let r = read_response(&mut s).await;
    let took = t0.elapsed();
    assert_raw_envelope(&r, 408, "REQUEST_TIMEOUT");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(r.head.contains("connection: close"), "{}", r.head);
    closed_within(&mut s, Duration::from_secs(2)).await;

    // No body byte at all, on an endpoint that reads it.
    let mut s = sent(
        &server,
        b"POST /v1/events/bulk HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n",
    )
    .await;
    let r = read_response(&mut s).await;
    assert_raw_envelope(&r, 408, "REQUEST_TIMEOUT");
    closed_within(&mut s, Duration::from_secs(2)).await;

    // Nothing was logged, and the stalls were counted.
    assert!(server.client().log().await.is_empty());
    assert_timeouts(&server, "body", 2.0).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_closes_after_the_idle_timeout_not_before() {
    let (_dir, server) = start(SHORT);
    let mut s = connect(&server).await;
    // Requests every 500 ms keep it open well past the idle timeout.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        let r = health(&mut s).await;
        assert_eq!(r.status, 200, "{r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then silence: still open past the 1 s header timeout …
    let mut chunk = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(2000), s.read(&mut chunk)).await;
    assert!(early.is_err(), "closed before the idle timeout: {early:?}");
    // … and closed soon after the 4 s idle timeout.
    let (took, got) = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_timeouts(&server, "idle", 1.0).await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_is_closed() {
    let (_dir, server) = start(SHORT);
    let mut s = connect(&server).await;
    // Pipelined requests for the 12 KB dashboard page, never reading an answer: the
    // server's writes block, and after the 1 s write deadline it closes the connection.
    let burst = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(100);
    let t0 = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(e) = s.write_all(&burst).await {
                return e;
            }
        }
    })
    .await
    .expect("still open after 10 s of not reading");
    assert!(t0.elapsed() >= Duration::from_millis(900), "{closed}");
    assert_timeouts(&server, "write", 1.0).await;
}

#[tokio::test]
async fn probes_answer_while_stalled_uploads_hold_the_concurrency_limit() {
    // A long body timeout so the uploads keep their places for the whole test.
    let (_dir, server) = start("max_concurrent_requests = 4\nhttp_body_timeout_seconds = 60\n");
    let mut uploads = Vec::new();
    for _ in 0..8 {
        let s = sent(
            &server,
            b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await;
        uploads.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The limit is really full: a limited route waits.
    let c = server.client();
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/v1/leaderboards", "").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the concurrency limit was not full");
    // The probes answer regardless.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/health", "/ready"] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} blocked: {e}"));
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("/metrics blocked");
    assert_eq!(r.status(), 200);
    // Once the uploads go away the waiting request is served.
    drop(uploads);
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the uploads are gone")
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_at_once() {
    let (_dir, server) = start("max_connections = 3\n");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&server).await;
        assert_eq!(health(&mut s).await.status, 200);
        held.push(s);
    }
    // The fourth is answered 503 in the envelope and closed at once (an accepted one would
    // stay open for the 10 s header timeout).
    let mut s = connect(&server).await;
    let (took, got) = closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    // A place freed is a place taken.
    drop(held.pop());
    let m = {
        let mut m = String::new();
        for _ in 0..50 {
            if let Ok(r) = reqwest::Client::new()
                .get(format!("{}/metrics", server.base))
                .bearer_auth(OPERATOR)
                .send()
                .await
            {
                // Refused (503) until the server has seen the dropped socket close.
                if r.status() == 200 {
                    m = r.text().await.unwrap();
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!m.is_empty(), "the freed place was never taken");
        m
    };
    assert!(
        metric(&m, "phoenix_http_connections_refused_total", &[]) >= 1.0,
        "{m}"
    );
    let open = metric(&m, "phoenix_http_connections", &[]);
    assert!(
        (2.0..=3.0).contains(&open),
        "2 held + the scrape: {open}\n{m}"
    );
}

#[tokio::test]
async fn transport_level_errors_use_the_envelope() {
    let (_dir, server) = start("");

    // 405, keeping `Allow`.
    let r = exchange(
        &server,
        b"POST /health HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert_raw_envelope(&r, 405, "METHOD_NOT_ALLOWED");
    assert!(r.head.contains("allow: get"), "{}", r.head);

    // A GET of `target`, with `fields` header lines after the host.
    let get = |target: String, fields: String| {
        format!("GET {target} HTTP/1.1\r\nhost: x\r\n{fields}\r\n")
    };
    let mut many = String::new();
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    let many = get("/health".into(), many);
    let cases = [
        // 405 on a route under the concurrency limit, too.
        (
            "DELETE /v1/events HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            get("/no/such/thing".into(), String::new()),
            404,
            "NOT_FOUND",
        ),
        // A percent-encoding that is not UTF-8 in a path segment.
        (
            get("/v1/leaderboards/%FF%FE/standings".into(), String::new()),
            400,
            "VALIDATION_ERROR",
        ),
        // 414 from our limit (8 KiB), for paths no route knows too, and from hyper's own
        // (64 KiB), rewritten.
        (
            get(format!("/health?x={}", "a".repeat(10_000)), String::new()),
            414,
            "URI_TOO_LONG",
        ),
        (
            get(format!("/nowhere/{}", "a".repeat(10_000)), String::new()),
            414,
            "URI_TOO_LONG",
        ),
        (
            get(format!("/health?x={}", "a".repeat(70_000)), String::new()),
            414,
            "URI_TOO_LONG",
        ),
        // 431 from our limit (32 KiB of header fields), and from hyper's (more than 100
        // fields), rewritten.
        (
            get(
                "/health".into(),
                format!("x-big: {}\r\n", "b".repeat(40_000)),
            ),
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
        ),
        (many.clone(), 431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
    ];
    for (request, status, code) in cases {
        let r = exchange(&server, request.as_bytes()).await;
        assert_raw_envelope(&r, status, code);
    }

    // A request hyper cannot parse at all.
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        let mut s = sent(&server, garbage).await;
        let r = read_response(&mut s).await;
        assert_raw_envelope(&r, 400, "VALIDATION_ERROR");
        assert!(r.head.contains("connection: close"), "{}", r.head);
        closed_within(&mut s, Duration::from_secs(2)).await;
    }

    // The same after earlier requests on a keep-alive connection (hyper's answer is
    // recognised by coming after a fully flushed response, not by being first).
    let mut s = connect(&server).await;
    for _ in 0..3 {
        let r = health(&mut s).await;
        assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    }
    s.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let r = read_response(&mut s).await;
    assert_raw_envelope(&r, 400, "VALIDATION_ERROR");
    closed_within(&mut s, Duration::from_secs(2)).await;
    // Pipelined: a good request and a bad one in one write.
    let mut s = connect(&server).await;
    let mut both = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    both.extend_from_slice(&many.as_bytes()[..many.len()]);
    s.write_all(&both).await.unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    let r = read_response(&mut s).await;
    assert_raw_envelope(&r, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE");

    // 413 (over 1 MB).
    let c = server.client();
    let mut big = event("big", "u", 1);
    big["attrs"]["blob"] = json!("x".repeat(1024 * 1024));
    let (s, b) = c.post("/v1/events", &big).await;
    assert_envelope(s, &b, 413, "PAYLOAD_TOO_LARGE");

    // Well-formed requests on the same server are unaffected, and nothing was logged.
    let (s, b) = c.post("/v1/events", &event("ok", "u", 1)).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(c.logged_ids().await, ["ok"]);
    let errors = "phoenix_http_transport_errors_total";
    let counted = server.metric(errors, &[("status", "400")]).await;
    assert!(counted >= 3.0, "{counted} transport errors");
}

#[tokio::test]
async fn extreme_numbers_from_clients_are_refused_not_wrapped() {
    let (_dir, server) = start("");
    let c = server.client();
    let body = event("e1", "u", 1).to_string();
    // Correctly signed, timestamps at the ends of i64 (`-2^63 + now` used to wrap into range).
    for ts in [i64::MIN + now(), i64::MIN, i64::MAX, i64::MAX - now() + 1] {
        let (s, b) = c.post_at("/v1/events", body.as_bytes(), ts).await;
        assert_envelope(s, &b, 401, "UNAUTHORIZED");
    }
    assert!(c.log().await.is_empty(), "nothing was accepted");
    // The server is alive (a debug build used to panic on the subtraction).
    let (s, b) = c.post("/v1/events", &event("e1", "u", 1)).await;
    assert_eq!(s, 202, "{b}");

    let board = json!({"name": "b", "rules": [{"event_type": "*", "points_expression": "1"}]});
    let (s, b) = c.put_board("b", &board).await;
    assert!(s == 200 || s == 201, "{b}");
    for query in [
        "offset=18446744073709551615",
        "offset=18446744073709551616",
        "offset=4294967295",
        "limit=18446744073709551615",
        "offset=-1",
    ] {
        let (s, b) = c.get("/v1/leaderboards/b/standings", query).await;
        assert_envelope(s, &b, 400, "VALIDATION_ERROR");
    }
    let (s, b) = c
        .get("/v1/leaderboards/b/standings", "offset=1000000")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["entries"], json!([]), "{b}");
    let (s, b) = c
        .get("/v1/events", "from=18446744073709551615&limit=1000")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["events"], json!([]), "{b}");
}

#[tokio::test]
async fn sigterm_still_shuts_down_gracefully_with_connections_open() {
    let (dir, mut server) = start("");
    let c = server.client();
    let (s, b) = c.post("/v1/events", &event("kept", "u", 1)).await;
    assert_eq!(s, 202, "{b}");
    // An idle keep-alive connection and a silent one do not hold the shutdown up.
    let mut idle = connect(&server).await;
    assert_eq!(health(&mut idle).await.status, 200);
    let _silent = connect(&server).await;
    let t0 = Instant::now();
    let status = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    closed_within(&mut idle, Duration::from_secs(1)).await;
    // And the data is there after a restart.
    let server = Server::start_with(
        dir.path(),
        &std::fs::read_to_string(&server.config).unwrap(),
    );
    assert_eq!(server.client().logged_ids().await, ["kept"]);
}

#[test]
fn zero_limits_are_refused_at_start_up_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phoenix.toml");
    let extra = "http_header_timeout_seconds = 0\nhttp_body_timeout_seconds = 0\nhttp_idle_timeout_seconds = 0\nmax_connections = 0\nhttp_max_uri_bytes = 0\nhttp_max_header_bytes = 0\n";
    std::fs::write(&path, config_text(&dir.path().join("data"), extra)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "http_header_timeout_seconds:",
        "http_body_timeout_seconds:",
        "http_idle_timeout_seconds:",
        "max_connections:",
        "http_max_uri_bytes:",
        "http_max_header_bytes:",
    ] {
        assert!(err.contains(key), "{key} missing from {err}");
    }
}
