//! Test harness: start the real `phoenix` binary on 127.0.0.1:0 with a temp data dir, and a
//! signing HTTP client. Beside it: `boards` (leaderboard, event and token helpers), `plain`
//! (unsigned, Bearer and operator requests), `prom` (reading `/metrics`), `ws` (WebSocket
//! clients).
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod boards;
pub mod plain;
pub mod prom;
pub mod ws;

#[allow(unused_imports)]
pub use boards::{closing_season, ranked, row, strs, table, user_scores, ClosingSeason, Row};
#[allow(unused_imports)]
pub use prom::{metric, sample};

pub const TENANT: &str = "demo";
pub const SECRET: &str = "demo-secret-0123456789";
pub const OTHER: &str = "other";
pub const OTHER_SECRET: &str = "other-secret-0123456789";
pub const OPERATOR: &str = "test-operator-token";

/// The tenant HMAC of a request (seed 000 §3), as the `X-Signature` header carries it.
pub fn sign(secret: &str, method: &str, path: &str, ts: &str, body: &[u8]) -> String {
    phoenix::auth::sign(secret.as_bytes(), method, path, ts, body)
}

/// A client token for `user` of `tenant` signed with `secret`, expiring at `exp` (Unix
/// seconds), as the server mints them: for tokens the API would not hand out.
pub fn mint_token(secret: &str, tenant: &str, user: &str, exp: i64) -> String {
    let claims = phoenix::tokens::Claims {
        t: tenant.into(),
        u: user.into(),
        exp,
        lb: None,
    };
    phoenix::tokens::mint(secret.as_bytes(), &claims)
}

/// The top of every test configuration: listen on a free port, data in `data_dir`, the
/// operator token.
pub fn config_head(data_dir: &Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\noperator_token = \"{OPERATOR}\"\n",
        data_dir.display()
    )
}

/// A `[[tenants]]` entry; `more` is TOML that follows inside it (sub-tables included).
pub fn tenant_toml(id: &str, secret: &str, more: &str) -> String {
    format!("\n[[tenants]]\nid = \"{id}\"\nsecret = \"{secret}\"\n{more}")
}

/// The standard test configuration; `data_dir` and extra TOML are filled in.
pub fn config_text(data_dir: &Path, extra: &str) -> String {
    [
        config_head(data_dir),
        format!("{extra}\n"),
        tenant_toml(TENANT, SECRET, ""),
        tenant_toml(OTHER, OTHER_SECRET, ""),
        tenant_toml(
            "paused",
            "paused-secret-0123456789",
            "status = \"suspended\"\n",
        ),
    ]
    .concat()
}

/// A server with the standard config in a fresh temp dir, and its tenant client.
pub fn fresh() -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = server.client();
    (dir, server, c)
}

/// A running `phoenix serve` child process.
pub struct Server {
    child: Child,
    pub base: String,
    pub config: PathBuf,
}

impl Server {
    /// Start with the standard config under `dir` (data in `dir/data`).
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &config_text(&dir.join("data"), ""))
    }

    /// Start with a given config text, written to `dir/phoenix.toml`.
    pub fn start_with(dir: &Path, config: &str) -> Server {
        Server::start_logging(dir, config, "warn")
    }

    /// `start_with`, logging to stderr with the `PHOENIX_LOG` filter `log`.
    pub fn start_logging(dir: &Path, config: &str, log: &str) -> Server {
        let path = dir.join("phoenix.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("PHOENIX_LOG", log)
            .env_remove("PHOENIX_LISTEN")
            .env_remove("PHOENIX_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn phoenix");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("phoenix listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            base,
            config: path,
        }
    }

    /// SIGKILL: no shutdown hooks, no final flush.
    /// Whether the server process is still running (it has not exited or been killed).
    pub fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, TENANT, SECRET)
    }

    /// `GET /metrics` with the operator token: the Prometheus text (the status must be 200).
    pub async fn metrics(&self) -> String {
        let resp = self.scrape().await.expect("request");
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("metrics text")
    }

    /// `GET /metrics` with the operator token, however it goes.
    pub async fn scrape(&self) -> reqwest::Result<reqwest::Response> {
        reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
    }

    /// The sum of the samples of one metric (see [`prom::metric`]).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics().await, name, labels)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tenant-signing HTTP client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub tenant: String,
    pub secret: String,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Client {
    pub fn new(base: &str, tenant: &str, secret: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.to_owned(),
            tenant: tenant.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// A request to `path` (plus `query`, which is not signed) signed with timestamp `ts`.
    fn signed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        ts: i64,
    ) -> reqwest::RequestBuilder {
        let ts = ts.to_string();
        let sig = sign(&self.secret, method, path, &ts, body);
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        self.http
            .request(method.parse().unwrap(), url)
            .header("X-Tenant-Id", &self.tenant)
            .header("X-Timestamp", ts)
            .header("X-Signature", sig)
            .body(body.to_vec())
    }

    /// POST `body` to `path`, signed with timestamp `ts`.
    pub async fn post_at(&self, path: &str, body: &[u8], ts: i64) -> (u16, Value) {
        let resp = self
            .signed("POST", path, "", body, ts)
            .header("Content-Type", "application/json")
            .send()
            .await
            .expect("request");
        decode(resp).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_at(path, body.to_string().as_bytes(), now()).await
    }

    /// Any signed request (`body` may be empty).
    pub async fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let resp = self
            .signed(method, path, "", body, now())
            .send()
            .await
            .expect("request");
        decode(resp).await
    }

    /// Create or replace a leaderboard.
    pub async fn put_board(&self, id: &str, def: &Value) -> (u16, Value) {
        self.request(
            "PUT",
            &format!("/v1/leaderboards/{id}"),
            def.to_string().as_bytes(),
        )
        .await
    }

    /// GET `path?query`, signing the path only with body "".
    pub async fn get(&self, path: &str, query: &str) -> (u16, Value) {
        let resp = self
            .signed("GET", path, query, b"", now())
            .send()
            .await
            .expect("request");
        decode(resp).await
    }

    /// Every durable log entry of this tenant, in order.
    pub async fn log(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut from = 1u64;
        loop {
            let (status, page) = self
                .get("/v1/events", &format!("from={from}&limit=1000"))
                .await;
            assert_eq!(status, 200, "{page}");
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return out;
            }
            from = page["next"].as_u64().unwrap();
            out.extend(events);
        }
    }

    /// The `event_id` of every durable log entry, in log order.
    pub async fn logged_ids(&self) -> Vec<String> {
        self.log()
            .await
            .iter()
            .map(|e| e["event"]["event_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn decode(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A valid event in the seed's shape.
pub fn event(id: &str, user: &str, score: i64) -> Value {
    serde_json::json!({
        "tenant_id": "placeholder",
        "event_id": id,
        "type": "match.completed",
        "actor": {"user_id": user, "metadata": {"region": "na-east", "platform": "ios"}},
        "subject": {"type": "match", "id": "match-987"},
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "attrs": {"score": score, "duration_seconds": 480, "victory": true}
    })
}

/// Assert the seed's error envelope.
pub fn assert_envelope(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert_eq!(body["error"]["status"], want_status, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

/// The message of an error envelope.
pub fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

/// Assert a 400 `VALIDATION_ERROR` envelope whose message contains `needle`.
pub fn assert_invalid(status: u16, body: &Value, needle: &str) {
    assert_envelope(status, body, 400, "VALIDATION_ERROR");
    assert!(message(body).contains(needle), "{body} lacks {needle:?}");
}

/// Poll `f` every 50 ms until it breaks with a value, and return it; fail after `within`
/// with `what` and the last thing `f` saw.
pub async fn wait_for<T, Seen, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    Seen: Debug,
    F: Fn() -> Fut,
    Fut: Future<Output = ControlFlow<T, Seen>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            ControlFlow::Break(done) => return done,
            ControlFlow::Continue(seen) if Instant::now() >= deadline => {
                panic!("never happened within {within:?}: {what}; last seen: {seen:?}")
            }
            ControlFlow::Continue(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Poll `f` until it returns true (or fail after ~10 s).
pub async fn eventually<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, Duration::from_secs(10), || {
        let done = f();
        async move {
            if done.await {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    })
    .await
}

impl Client {
    /// Like `post`, but `None` on a transport error (the server was killed).
    pub async fn http_post_json(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let body = body.to_string();
        let resp = self
            .signed("POST", path, "", body.as_bytes(), now())
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let body = resp.json().await.ok()?;
        Some((status, body))
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown), then the exit status, waiting at most `within` (after
    /// that: SIGKILL and a panic).
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for phoenix") {
                return status;
            }
            if t0.elapsed() > within {
                self.kill();
                panic!("phoenix did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Run `phoenix serve` with `config` written under `dir`, expecting it to exit: its exit code
/// and stderr (for configurations that must be refused).
pub fn refused(dir: &Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("phoenix.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run phoenix");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
