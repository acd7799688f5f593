//! Black-box hardening tests of the WebSocket gateway against the real binary (SPEC §9,
//! issue 11): subscription and string limits, views released when nobody watches, slow
//! consumers reset even if they never read, live credentials (suspension, rotation, token
//! expiry), client tokens across a rotation, and close codes for protocol errors.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcp;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ws::{
    assert_serves, backend, churn, close_of, demo_backend, next, next_of, next_text, ping_ok,
    refusal, send, subscribe, with_token, Ws, WsError,
};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// A server with board `b` on the standard tenant (its config: the standard one plus
/// `extra`).
async fn start(dir: &Path, extra: &str) -> (Server, Client) {
    let server = Server::start_with(dir, &config_text(&dir.join("data"), extra));
    let c = server.client();
    put_board(&c, "b").await;
    (server, c)
}

async fn put_board(c: &Client, id: &str) {
    let def = json!({"rules": [{"event_type": "*", "points_expression": "attrs.score"}], "timeframes": ["daily", "all_time"]});
    c.create_board(id, &def).await;
}

/// The live WebSocket views, summed over boards.
async fn views(server: &Server) -> f64 {
    server.metric("phoenix_ws_views", &[]).await
}

async fn admin(base: &str, path: &str, body: Value) -> (u16, Value) {
    plain::operator(base, "POST", path, Some(&body)).await
}

/// Rotate t2's secret to `secret`, the old one staying valid for `overlap_seconds`.
async fn rotate(base: &str, secret: &str, overlap_seconds: u64) {
    let body = json!({"secret": secret, "overlap_seconds": overlap_seconds});
    let (s, v) = admin(base, "/v1/admin/tenants/t2/rotate", body).await;
    assert_eq!(s, 200, "{v}");
}

/// A server in `dir` with tenant `id` created with `secret` through the operator API, with
/// board `b`, a client token for alice, and an open backend session and client session.
async fn live_tenant(dir: &Path, id: &str, secret: &str) -> (Server, Client, String, Ws, Ws) {
    let server = Server::start(dir);
    let base = &server.base;
    let (s, v) = admin(
        base,
        "/v1/admin/tenants",
        json!({"id": id, "secret": secret}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let c = Client::new(base, id, secret);
    put_board(&c, "b").await;
    let tok = c.token("alice", 600).await;
    let back = backend(base, id, secret).await.unwrap();
    let client = with_token(base, &tok).await.unwrap();
    (server, c, tok, back, client)
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped_and_frame_strings_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    let tok = c.token("alice", 600).await;
    // A read-only client token, as in the report.
    let mut ws = with_token(&server.base, &tok).await.unwrap();
    for n in 1..=32 {
        send(&mut ws, subscribe(&format!("s{n}"), json!({"top": n}))).await;
        let snap = next(&mut ws).await;
        assert_eq!(
            (snap["type"].as_str(), snap["id"].as_str()),
            (Some("snapshot"), Some(format!("s{n}").as_str())),
            "{snap}"
        );
    }
    // The 33rd is refused with an error frame; the connection stays usable.
    send(&mut ws, subscribe("s33", json!({"top": 1}))).await;
    let e = next(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["id"], "s33");
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(e["error"]["status"], 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("32"),
        "{e}"
    );
    // Re-using an id replaces (no new slot needed); freeing a slot lets a new one in.
    send(&mut ws, subscribe("s1", json!({"top": 2}))).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    send(&mut ws, json!({"type": "unsubscribe", "id": "s2"})).await;
    send(&mut ws, subscribe("s34", json!({"top": 1}))).await;
    assert_eq!(next_of(&mut ws, "snapshot").await["id"], "s34");
    let text = server.metrics().await;
    assert!(
        metric(&text, "phoenix_ws_subscriptions_refused_total", &[]) >= 1.0,
        "{text}"
    );

    // Strings within the HTTP limits; refusals are short error frames, nothing echoed whole.
    let huge = "u".repeat(900_000);
    let cases = [
        (
            subscribe("a1", json!({"around": "u".repeat(257)})),
            Some("a1"),
        ),
        (subscribe("a2", json!({"around": huge.clone()})), Some("a2")),
        (subscribe("a3", json!({"around": ""})), Some("a3")),
        (
            json!({"type": "subscribe", "id": "l1", "leaderboard": "x".repeat(65), "view": {"top": 1}}),
            Some("l1"),
        ),
        (
            json!({"type": "subscribe", "id": "l2", "leaderboard": huge.clone(), "view": {"top": 1}}),
            Some("l2"),
        ),
        (
            json!({"type": "subscribe", "id": "t1", "leaderboard": "b", "timeframe": huge.clone(), "view": {"top": 1}}),
            Some("t1"),
        ),
        (
            json!({"type": "subscribe", "id": "w1", "leaderboard": "b", "window": huge.clone(), "view": {"top": 1}}),
            Some("w1"),
        ),
        (subscribe(&"i".repeat(129), json!({"top": 1})), None),
        (json!({"type": "unsubscribe", "id": huge.clone()}), None),
        (json!({"type": huge.clone(), "id": "ty"}), Some("ty")),
        (
            json!({"type": "subscribe", "id": "f1", "leaderboard": "b", "view": {"top": 1}, huge.clone(): 1}),
            Some("f1"),
        ),
    ];
    for (frame, id) in cases {
        send(&mut ws, frame).await;
        let raw = next_text(&mut ws).await;
        assert!(
            raw.len() < 1000,
            "error frames stay small: {} bytes",
            raw.len()
        );
        let e: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(e["type"], "error", "{raw}");
        assert_eq!(e["error"]["code"], "VALIDATION_ERROR", "{raw}");
        assert_eq!(e["id"].as_str(), id, "{raw}");
    }
    // A user id of exactly 256 bytes is fine (no score yet: an empty neighbourhood).
    send(&mut ws, json!({"type": "unsubscribe", "id": "s3"})).await;
    send(
        &mut ws,
        subscribe("a256", json!({"around": "u".repeat(256)})),
    )
    .await;
    assert_eq!(next_of(&mut ws, "snapshot").await["id"], "a256");
    ping_ok(&mut ws).await;
    // No refused subscription made a view. Live: top 1 (s34), top 2 (s1 and formerly s2),
    // top 4..=32, and the 256-byte neighbourhood; top 3 went with s3.
    eventually("32 live views", || async { views(&server).await == 32.0 }).await;
}

#[tokio::test]
async fn views_nobody_watches_are_released_without_a_board_change() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    c.ingest(&[event("e1", "alice", 5)]).await;
    let mut ws = demo_backend(&server.base).await;
    for i in 0..5 {
        send(
            &mut ws,
            subscribe(&format!("a{i}"), json!({"around": format!("user-{i}")})),
        )
        .await;
        next_of(&mut ws, "snapshot").await;
    }
    let text = server.metrics().await;
    assert_eq!(metric(&text, "phoenix_ws_views", &[]), 5.0, "{text}");
    assert_eq!(metric(&text, "phoenix_ws_sessions", &[]), 1.0, "{text}");
    // Unsubscribing one releases its view, with no event on the board.
    send(&mut ws, json!({"type": "unsubscribe", "id": "a0"})).await;
    ping_ok(&mut ws).await;
    let t0 = Instant::now();
    eventually("the unwatched view is released", || async {
        views(&server).await == 4.0
    })
    .await;
    // Closing the connection releases the rest; the board does not change meanwhile.
    ws.close(None).await.unwrap();
    drop(ws);
    eventually("views of a closed connection are released", || async {
        let text = server.metrics().await;
        metric(&text, "phoenix_ws_views", &[]) == 0.0
            && metric(&text, "phoenix_ws_sessions", &[]) == 0.0
    })
    .await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "released after {took:?}, not at the board's next change"
    );
}

/// The server side of the TCP connection between `server_port` and `client_port`, from
/// /proc/net/tcp: its state (hex, "01" = ESTABLISHED) and send queue, if it exists.
fn server_socket(server_port: u16, client_port: u16) -> Option<(String, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
        if port(f[1])? == server_port && port(f[2])? == client_port {
            let tx = u64::from_str_radix(f[4].split(':').next()?, 16).ok()?;
            Some((f[3].to_owned(), tx))
        } else {
            None
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_reset_at_once_even_if_it_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "ws_push_interval_ms = 1\nws_outbound_queue = 4\nws_stall_timeout_seconds = 2";
    let (server, c) = start(dir.path(), extra).await;
    let server_port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut ws = demo_backend(&server.base).await;
    let client_port = match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s.local_addr().unwrap().port(),
        _ => unreachable!("plain TCP"),
    };
    // Three subscriptions on one connection: still one slow connection closed.
    for (id, n) in [("big", 100), ("big2", 99), ("big3", 98)] {
        send(&mut ws, subscribe(id, json!({"top": n}))).await;
    }
    assert!(
        server_socket(server_port, client_port).is_some(),
        "the connection is visible"
    );
    // Never read while the top 100 churns (long user ids: ~26 KB frames fill the buffers).
    let pad = "x".repeat(200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    let judged = loop {
        churn(&c, round, &pad).await;
        round += 1;
        let text = server.metrics().await;
        if metric(&text, "phoenix_ws_slow_closed_total", &[]) >= 1.0 {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "never judged slow:\n{text}");
    };
    // The server side is gone at once (reset), though the client has not read a byte.
    let mut gone = None;
    while judged.elapsed() < Duration::from_secs(3) {
        match server_socket(server_port, client_port) {
            None => {
                gone = Some(judged.elapsed());
                break;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        gone.is_some(),
        "server socket still there: {:?}",
        server_socket(server_port, client_port)
    );
    let text = server.metrics().await;
    assert_eq!(
        metric(&text, "phoenix_ws_slow_closed_total", &[]),
        1.0,
        "counted per connection:\n{text}"
    );
    assert!(
        metric(&text, "phoenix_ws_frames_dropped_total", &[]) > 0.0,
        "{text}"
    );
    eventually("the session is gone", || async {
        server.metric("phoenix_ws_sessions", &[]).await == 0.0
    })
    .await;
    // Reading now: whatever had reached the client, then the reset (or EOF), quickly.
    let mut frames = 0;
    let t0 = Instant::now();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => frames += 1,
            Ok(Some(Ok(_))) => {}
            Ok(other) => break format!("{other:?}"),
            Err(_) => panic!("the client's socket is still open after {frames} frames"),
        }
    };
    eprintln!("{round} rounds; server socket gone {gone:?} after the verdict; client read {frames} frames in {:?}, then {end}", t0.elapsed());
    assert!(
        frames < round,
        "backlog bounded: {frames} frames for {round} rounds"
    );
    // The server is fine afterwards.
    assert_serves(&server.base).await;
}

#[tokio::test]
async fn suspension_ends_open_backend_and_client_sessions_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (server, t1, tok, mut back, mut client) =
        live_tenant(dir.path(), "t1", "t1-secret-0123456789").await;
    send(&mut client, subscribe("s", json!({"top": 3}))).await;
    next_of(&mut client, "snapshot").await;
    send(
        &mut back,
        json!({"type": "ingest", "id": "i1", "event": event("before", "bob", 1)}),
    )
    .await;
    assert_eq!(
        next_of(&mut back, "ack").await["results"][0]["status"],
        "accepted"
    );
    // Another tenant's session is not touched.
    let mut bystander = demo_backend(&server.base).await;

    let t0 = Instant::now();
    let (s, v) = admin(&server.base, "/v1/admin/tenants/t1/suspend", json!({})).await;
    assert_eq!(s, 200, "{v}");
    for ws in [&mut back, &mut client] {
        let (code, reason) = close_of(ws, Duration::from_secs(2)).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("suspended"), "{reason}");
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "sessions ended {took:?} after the suspension"
    );
    // Nothing more from t1: new sessions are refused, the log holds only the event before.
    let refused = backend(&server.base, "t1", "t1-secret-0123456789").await;
    assert_eq!(refusal(refused), 403);
    assert_eq!(refusal(with_token(&server.base, &tok).await), 403);
    let (s, v) = admin(&server.base, "/v1/admin/tenants/t1/resume", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(t1.logged_ids().await, ["before"]);
    ping_ok(&mut bystander).await;
}

#[tokio::test]
async fn an_expired_client_token_ends_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = start(dir.path(), "").await;
    let tok = c.token("alice", 2).await;
    let minted = Instant::now();
    let mut ws = with_token(&server.base, &tok).await.unwrap();
    send(&mut ws, subscribe("s", json!({"top": 3}))).await;
    next_of(&mut ws, "snapshot").await;
    let (code, reason) = close_of(&mut ws, Duration::from_secs(5)).await;
    let after = minted.elapsed();
    assert_eq!((code, reason.as_str()), (1008, "client token expired"));
    // Expiry is to the second: between 1 s and 2 s after minting, plus at most 1 s.
    assert!(
        after > Duration::from_millis(900) && after < Duration::from_millis(3500),
        "closed {after:?} after minting"
    );
    assert_eq!(refusal(with_token(&server.base, &tok).await), 401);
}

#[tokio::test]
async fn rotation_keeps_old_credentials_for_the_overlap_only() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _old, old_token, mut back, mut client) =
        live_tenant(dir.path(), "t2", "t2-old-secret-0123456").await;

    rotate(&server.base, "t2-new-secret-0123456", 2).await;
    let rotated = Instant::now();
    let new = Client::new(&server.base, "t2", "t2-new-secret-0123456");
    // During the overlap: old sessions go on, the old token verifies over HTTP and WS.
    ping_ok(&mut back).await;
    ping_ok(&mut client).await;
    let standings = |tok: String| {
        let base = server.base.clone();
        async move {
            let resp = reqwest::Client::new()
                .get(format!(
                    "{base}/v1/leaderboards/b/standings?timeframe=all_time"
                ))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap();
            decode(resp).await
        }
    };
    let (s, v) = standings(old_token.clone()).await;
    assert_eq!(
        s, 200,
        "a token minted before the rotation verifies during the overlap: {v}"
    );
    let mut during = with_token(&server.base, &old_token)
        .await
        .expect("old token during the overlap");
    send(&mut during, subscribe("s", json!({"top": 3}))).await;
    next_of(&mut during, "snapshot").await;
    let new_token = new.token("alice", 600).await;

    // The overlap ends: every session that rests on the old secret ends with 1008.
    for ws in [&mut back, &mut client, &mut during] {
        let (code, reason) = close_of(ws, Duration::from_secs(5)).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("rotated"), "{reason}");
    }
    let after = rotated.elapsed();
    assert!(
        after > Duration::from_millis(900) && after < Duration::from_millis(3500),
        "closed {after:?} after the rotation"
    );
    let (s, e) = standings(old_token.clone()).await;
    assert_envelope(s, &e, 401, "UNAUTHORIZED");
    assert_eq!(refusal(with_token(&server.base, &old_token).await), 401);
    let refused = backend(&server.base, "t2", "t2-old-secret-0123456").await;
    assert_eq!(refusal(refused), 401);
    // The new credentials work.
    let (s, v) = standings(new_token.clone()).await;
    assert_eq!(s, 200, "{v}");
    let mut fresh = backend(&server.base, "t2", "t2-new-secret-0123456")
        .await
        .unwrap();
    ping_ok(&mut fresh).await;

    // Without overlap the old secret's sessions end at once; the new secret's do not.
    let mut token_ws = with_token(&server.base, &new_token).await.unwrap();
    let t0 = Instant::now();
    rotate(&server.base, "t2-third-secret-01234", 0).await;
    for ws in [&mut fresh, &mut token_ws] {
        let (code, reason) = close_of(ws, Duration::from_secs(2)).await;
        assert_eq!(code, 1008, "{reason}");
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

// ---- protocol errors, over a raw socket so the frames can be anything ----

/// A raw TCP connection that sent a tenant-signed `GET /v1/ws`, with the upgrade headers
/// when `upgrade`.
fn raw_get_ws(base: &str, upgrade: bool) -> StdTcp {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = StdTcp::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ts = now().to_string();
    let sig = sign(SECRET, "GET", "/v1/ws", &ts, b"");
    let connection = if upgrade {
        "Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    } else {
        "close"
    };
    write!(
        s,
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n\
         X-Tenant-Id: {TENANT}\r\nX-Timestamp: {ts}\r\nX-Signature: {sig}\r\n\r\n"
    )
    .unwrap();
    s
}

/// A raw TCP connection upgraded to a WebSocket as the backend (tenant HMAC).
fn raw_ws(base: &str) -> StdTcp {
    let mut s = raw_get_ws(base, true);
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 accept key: {head}"
    );
    s
}

/// A frame header (FIN flag, opcode, masked with a zero key when `masked`) for `len` bytes.
fn header(fin: bool, opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mut h = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xffff {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        h.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
    }
    h
}

/// One server frame: its opcode and payload.
fn read_frame(s: &mut StdTcp) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let mut len = (h[1] & 0x7f) as usize;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b)?;
        len = u16::from_be_bytes(b) as usize;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b)?;
        len = u64::from_be_bytes(b) as usize;
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((h[0] & 0x0f, payload))
}

/// Read server frames until a close frame: its (code, reason); panics on EOF first (a bare
/// TCP close) and collects the text frames seen before.
fn raw_close(s: &mut StdTcp) -> (u16, String, Vec<String>) {
    let mut texts = Vec::new();
    loop {
        let (opcode, payload) = read_frame(s).unwrap_or_else(|e| {
            panic!("connection ended without a close frame ({e}); saw {texts:?}")
        });
        match opcode {
            0x8 => {
                assert!(payload.len() >= 2, "a close frame carries a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8(payload[2..].to_vec()).unwrap();
                return (code, reason, texts);
            }
            0x1 => texts.push(String::from_utf8(payload).unwrap()),
            _ => {}
        }
    }
}

/// Read one text frame (skipping others).
fn raw_text(s: &mut StdTcp) -> String {
    loop {
        let (opcode, payload) = read_frame(s).unwrap();
        assert!(payload.len() < 1 << 16, "small frames only here");
        assert_ne!(opcode, 0x8, "unexpected close: {payload:?}");
        if opcode == 0x1 {
            return String::from_utf8(payload).unwrap();
        }
    }
}

const MB: usize = 1024 * 1024;

#[test]
fn protocol_errors_get_a_close_code_and_reason_never_a_bare_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // A frame header announcing 16 MB: answered 1009 at once, without the payload being sent.
    let mut s = raw_ws(&server.base);
    s.write_all(&header(true, 0x1, 16 * MB, true)).unwrap();
    s.write_all(b"{\"type\":").unwrap();
    let t0 = Instant::now();
    let (code, reason, _) = raw_close(&mut s);
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("too big"), "{reason}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "not buffered first: {:?}",
        t0.elapsed()
    );

    // One byte over 1 MB, sent whole: 1009.
    let mut s = raw_ws(&server.base);
    let mut frame = header(true, 0x1, MB + 1, true);
    frame.extend(std::iter::repeat_n(b' ', MB + 1));
    let _ = s.write_all(&frame); // the server may reset before the tail is written
    assert_eq!(raw_close(&mut s).0, 1009);

    // 1.2 MB in two fragments of 600 KB: the message limit holds too.
    let mut s = raw_ws(&server.base);
    let part = 600 * 1024;
    let mut frames = header(false, 0x1, part, true);
    frames.extend(std::iter::repeat_n(b' ', part));
    frames.extend(header(true, 0x0, part, true));
    frames.extend(std::iter::repeat_n(b' ', part));
    let _ = s.write_all(&frames);
    assert_eq!(raw_close(&mut s).0, 1009);

    // Exactly 1 MB is within the limit: not JSON, so an error frame, and the session goes on.
    let mut s = raw_ws(&server.base);
    let mut frame = header(true, 0x1, MB, true);
    frame.extend(std::iter::repeat_n(b'x', MB));
    s.write_all(&frame).unwrap();
    let e: Value = serde_json::from_str(&raw_text(&mut s)).unwrap();
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR", "{e}");
    let ping = br#"{"type":"ping","id":"after"}"#;
    s.write_all(&header(true, 0x1, ping.len(), true)).unwrap();
    s.write_all(ping).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&raw_text(&mut s)).unwrap()["type"],
        "pong"
    );

    // Invalid UTF-8 in a text frame: 1007.
    let mut s = raw_ws(&server.base);
    let bad = [b'{', 0xff, 0xfe, b'}'];
    s.write_all(&header(true, 0x1, bad.len(), true)).unwrap();
    s.write_all(&bad).unwrap();
    let (code, reason, _) = raw_close(&mut s);
    assert_eq!(code, 1007, "{reason}");
    assert!(!reason.is_empty());

    // Other protocol errors (an unmasked client frame, a reserved opcode): 1002 with a reason.
    for h in [header(true, 0x1, 2, false), header(true, 0x3, 2, true)] {
        let mut s = raw_ws(&server.base);
        s.write_all(&h).unwrap();
        s.write_all(b"{}").unwrap();
        let (code, reason, _) = raw_close(&mut s);
        assert_eq!(code, 1002, "{reason}");
        assert!(reason.starts_with("protocol error"), "{reason}");
    }

    // A binary frame: an error frame, and the connection stays usable.
    let mut s = raw_ws(&server.base);
    s.write_all(&header(true, 0x2, 3, true)).unwrap();
    s.write_all(&[1, 2, 3]).unwrap();
    let e: Value = serde_json::from_str(&raw_text(&mut s)).unwrap();
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR", "{e}");
    s.write_all(&header(true, 0x1, ping.len(), true)).unwrap();
    s.write_all(ping).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&raw_text(&mut s)).unwrap()["type"],
        "pong"
    );

    // Authenticated but not an upgrade: the envelope, no switch of protocols.
    let mut s = raw_get_ws(&server.base, false);
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_envelope(400, &body, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn connections_are_capped_per_process_with_a_503_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &config_text(&dir.path().join("data"), "ws_max_connections = 3"),
    );
    let c = server.client();
    let tok = c.token("alice", 600).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(demo_backend(&server.base).await);
    }
    open.push(with_token(&server.base, &tok).await.unwrap());
    // The fourth is refused before the upgrade, in the envelope.
    match with_token(&server.base, &tok).await {
        Err(WsError::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_envelope(resp.status().as_u16(), &body, 503, "UNAVAILABLE");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    // A bad credential is still a 401 (auth first), and uses no slot.
    assert_eq!(refusal(with_token(&server.base, "garbage").await), 401);
    // Closing one frees its slot.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(ws) = backend(&server.base, TENANT, SECRET).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ping_ok(again.as_mut().expect("a slot again after a close")).await;
    let text = server.metrics().await;
    assert!(
        metric(&text, "phoenix_ws_connections_refused_total", &[]) >= 1.0,
        "{text}"
    );
}
