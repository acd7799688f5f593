//! The service configuration: one typed TOML tree, env overrides, validation with paths.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::types::{Secret, TenantStatus};

/// One tenant: its id (the `X-Tenant-Id` header) and HMAC secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant id: 1–64 of `A-Z a-z 0-9 - _ .`.
    pub id: String,
    /// HMAC-SHA256 key for the tenant's signed requests (at least 16 bytes).
    pub secret: Secret,
    /// `active` (default) or `suspended`.
    #[serde(default)]
    pub status: TenantStatus,
    /// Leaderboards declared here (same fields as the API, plus `id`); applied at start-up.
    #[serde(default)]
    pub leaderboards: Vec<toml::Table>,
    /// The Ninja Metrics app mapped to this tenant (`POST /event`).
    #[serde(default)]
    pub ninja_metrics: Option<crate::sources::ninja_metrics::config::NmConfig>,
    /// GAMEMONITORING vote rewards for this tenant.
    #[serde(default)]
    pub gamemonitoring: Option<crate::sources::gamemonitoring::config::GmConfig>,
    /// Hours this tenant's log records are kept, overriding the top-level
    /// `log_retention_hours`.
    #[serde(default)]
    pub log_retention_hours: Option<u64>,
    /// Outbound webhook (`http://` or `https://`): receives signed `POST`s such as
    /// `leaderboard.window_closed` (docs/webhooks.md). The admin API can change it.
    #[serde(default)]
    pub webhook_url: Option<String>,
}

impl TenantConfig {
    /// The declared leaderboards as `(id, definition JSON)`.
    pub fn leaderboard_json(&self) -> Vec<(String, serde_json::Value)> {
        self.leaderboards
            .iter()
            .map(|t| {
                let id = t
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let json = serde_json::to_value(t).unwrap_or(serde_json::Value::Null);
                (id, json)
            })
            .collect()
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port. Env: `PHOENIX_LISTEN`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where sled keeps the event log and state. Env: `PHOENIX_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Bearer token for `/metrics`, `/v1/admin/*` and the dashboard. Env: `PHOENIX_OPERATOR_TOKEN`.
    pub operator_token: Secret,
    /// How long an accepted `event_id` is remembered for dedupe (seed default 300 s).
    #[serde(default = "u64_is::<300>")]
    pub dedupe_window_seconds: u64,
    /// Most remembered event ids per tenant; bounds memory (oldest forgotten first).
    #[serde(default = "usize_is::<5_000_000>")]
    pub dedupe_capacity: usize,
    /// sled page cache size in MiB.
    #[serde(default = "u64_is::<256>")]
    pub cache_mb: u64,
    /// Requests served at once; further requests wait (backpressure at the edge).
    #[serde(default = "usize_is::<4096>")]
    pub max_concurrent_requests: usize,
    /// Minimum seconds between leaderboard checkpoints (recovery replays at most this much).
    #[serde(default = "u64_is::<5>")]
    pub checkpoint_interval_seconds: u64,
    /// Frozen leaderboard windows that ended more than this many days ago are dropped.
    #[serde(default = "u64_is::<400>")]
    pub history_retention_days: u64,
    /// WebSocket: least milliseconds between two pushes of one view (coalescing).
    #[serde(default = "u64_is::<50>")]
    pub ws_push_interval_ms: u64,
    /// WebSocket: frames queued per connection before a slow client is resynced.
    #[serde(default = "usize_is::<64>")]
    pub ws_outbound_queue: usize,
    /// WebSocket: seconds a connection may stay unable to take frames before it is closed.
    #[serde(default = "u64_is::<10>")]
    pub ws_stall_timeout_seconds: u64,
    /// WebSocket: unacknowledged streamed events per connection; further frames wait.
    #[serde(default = "usize_is::<1000>")]
    pub ws_max_inflight_events: usize,
    /// Hours log records are kept (never less than the dedupe window, and never before every
    /// board has checkpointed past them). Per tenant: `tenants[].log_retention_hours`.
    #[serde(default = "u64_is::<168>")]
    pub log_retention_hours: u64,
    /// Seconds between two retention passes (each deletes in bounded steps).
    #[serde(default = "u64_is::<60>")]
    pub retention_interval_seconds: u64,
    /// Below this many MiB free on the data dir's filesystem, `/ready` and every write path
    /// answer 503 "disk space low", before any write fails; they recover by themselves.
    #[serde(default = "u64_is::<256>")]
    pub min_free_disk_mb: u64,
    /// Store log records LZ4-compressed (about 6× less disk at load; docs/PERFORMANCE.md).
    /// Records written either way always read back.
    #[serde(default = "default_true")]
    pub log_compression: bool,
    /// Milliseconds between two free-space measurements.
    #[serde(default = "u64_is::<1000>")]
    pub disk_check_interval_ms: u64,
    /// After a failed store write (ENOSPC, EIO) or a failed open, the first wait in ms before
    /// the store is reopened in the background; each failed try doubles it (jittered).
    #[serde(default = "u64_is::<500>")]
    pub store_reopen_initial_ms: u64,
    /// The longest wait in ms between two tries to reopen the store.
    #[serde(default = "u64_is::<10_000>")]
    pub store_reopen_max_ms: u64,
    /// WebSocket: open connections per process; one more upgrade is refused with 503
    /// (`phoenix_ws_connections_refused_total`).
    #[serde(default = "usize_is::<10_000>")]
    pub ws_max_connections: usize,
    /// WebSocket: live subscriptions per connection; one more is refused with an error
    /// frame (`phoenix_ws_subscriptions_refused_total`).
    #[serde(default = "usize_is::<32>")]
    pub ws_max_subscriptions: usize,
    /// Ingest requests checked (signature, parse, validation) at once, handed out fairly
    /// across tenants so one tenant's flood never queues ahead of another's event
    /// (`phoenix_ingest_gate_waiting`, `phoenix_ingest_gate_wait_seconds`). 0: one per core.
    #[serde(default)]
    pub ingest_fair_slots: usize,
    /// HTTP: seconds a connection may take to send a complete request head (from accept);
    /// a silent or dripping connection is closed after this.
    #[serde(default = "u64_is::<10>")]
    pub http_header_timeout_seconds: u64,
    /// HTTP: seconds a request body may make no progress before the request fails (408)
    /// and the connection is closed.
    #[serde(default = "u64_is::<10>")]
    pub http_body_timeout_seconds: u64,
    /// HTTP: seconds a keep-alive connection may sit idle between requests before it is closed.
    #[serde(default = "u64_is::<60>")]
    pub http_idle_timeout_seconds: u64,
    /// HTTP: open connections at most (WebSockets included); further ones are refused at
    /// once. Keep it below the process's open-file limit (`ulimit -n`).
    #[serde(default = "usize_is::<10_000>")]
    pub max_connections: usize,
    /// HTTP: longest request target (path and query) in bytes; longer gets 414.
    #[serde(default = "usize_is::<{ 8 * 1024 }>")]
    pub http_max_uri_bytes: usize,
    /// HTTP: most bytes of request header fields (names, values and separators); more gets 431.
    #[serde(default = "usize_is::<{ 32 * 1024 }>")]
    pub http_max_header_bytes: usize,
    /// Outbound webhooks and window closes (SPEC §12, docs/webhooks.md).
    #[serde(default)]
    pub webhooks: WebhookConfig,
    /// Most leaderboards one tenant may have (API and config together); creating one more
    /// is a 400.
    #[serde(default = "usize_is::<100>")]
    pub max_leaderboards_per_tenant: usize,
    /// Decoded log entries each tenant's feed keeps for its boards (memory: roughly this many
    /// events per tenant); a board further behind reads the log itself.
    #[serde(default = "usize_is::<8192>")]
    pub leaderboard_feed_buffer_events: usize,
    /// Most KiB of one tenant's events between two fsyncs while other tenants are writing
    /// too (at least one request), so one tenant's flood keeps the fsyncs others wait on short.
    #[serde(default = "usize_is::<32>")]
    pub commit_round_kb_per_tenant: usize,
    /// The same while the tenant is the only one writing (none other within a second): a
    /// lone flood gets big group commits.
    #[serde(default = "usize_is::<1024>")]
    pub commit_round_kb_alone: usize,
    /// First delay before a failed actor is restarted; each further failure doubles it.
    #[serde(default = "u64_is::<100>")]
    pub actor_restart_initial_ms: u64,
    /// Longest delay between restarts of a failing actor.
    #[serde(default = "u64_is::<30_000>")]
    pub actor_restart_max_ms: u64,
    /// An actor that ran this long without failing restarts from the first delay again.
    #[serde(default = "u64_is::<60>")]
    pub actor_restart_reset_seconds: u64,
    /// Worker threads of the separate runtime that runs leaderboards and tenant feeds: scoring
    /// can use at most this many cores' worth of CPU, leaving the rest to ingestion.
    #[serde(default = "usize_is::<1>")]
    pub leaderboard_threads: usize,
    /// CPU priority of those threads: `"background"` (Linux `SCHED_IDLE`: scoring uses only
    /// the CPU ingestion leaves, so one tenant's boards never slow another tenant's acks;
    /// under sustained full CPU standings lag instead) or `"normal"` (scoring and acks share).
    #[serde(default)]
    pub leaderboard_priority: phoenix_actors::supervisor::BoardPriority,
    /// Keep transparent huge pages (where the kernel's THP setting allows) after start-up.
    /// Off by default: once its engine has started, the server turns them off for itself
    /// (`src/memory.rs`: they speed up start-up and cost streaming ingest ~40 %).
    /// Linux only.
    #[serde(default)]
    pub transparent_huge_pages: bool,
    /// The tenants.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Cluster mode over NATS JetStream (SPEC §11, docs/cluster.md); absent: embedded sled.
    #[serde(default)]
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

/// A serde default of `N` (one function for every numeric default: `default = "u64_is::<60>"`).
const fn u64_is<const N: u64>() -> u64 {
    N
}
/// A serde default of `N`, for `usize` fields.
const fn usize_is<const N: usize>() -> usize {
    N
}

/// Adds "`key`: must be at least 1" for each `(key, is_zero)` that is zero, in order.
fn at_least_one(problems: &mut Vec<String>, fields: &[(&str, bool)]) {
    for (key, _) in fields.iter().filter(|(_, zero)| *zero) {
        problems.push(format!("{key}: must be at least 1"));
    }
}

fn default_true() -> bool {
    true
}

/// Bounds of the HTTP limits: below the floors nothing useful gets through; above the
/// ceilings hyper's own parser limits (64 KiB URI, ~400 KiB read buffer) would answer first,
/// without the envelope.
pub const HTTP_URI_BYTES: std::ops::RangeInclusive<usize> = 256..=65_000;
pub const HTTP_HEADER_BYTES: std::ops::RangeInclusive<usize> = 1024..=262_144;
/// `[webhooks]`: delivery of the durable outbox, and the limits of a window close.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Timeout of one delivery (connect + response), in ms.
    pub timeout_ms: u64,
    /// First retry delay in ms; doubles per failed attempt (with jitter) up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between two attempts, in ms.
    pub retry_max_ms: u64,
    /// A delivery that has not succeeded this many hours after it was enqueued is given up.
    pub retry_hours: u64,
    /// Deliveries in flight at once per tenant (a slow receiver delays only its own tenant).
    pub max_in_flight_per_tenant: usize,
    /// Deliveries waiting per tenant; a window close beyond it sends no webhook (counted in
    /// `phoenix_webhook_outbox_dropped_total`).
    pub outbox_max_per_tenant: u64,
    /// How often the delivery worker looks for due deliveries, in ms.
    pub poll_ms: u64,
    /// Top entries kept with a closed window (results endpoint, webhook `results`).
    pub close_results_size: usize,
    /// Most reward grants of one window close; further matched users are counted
    /// (`phoenix_rewards_grants_capped_total`), not granted.
    pub close_max_grants: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_ms: 5_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 600_000,
            retry_hours: 24,
            max_in_flight_per_tenant: 4,
            outbox_max_per_tenant: 10_000,
            poll_ms: 500,
            close_results_size: 100,
            close_max_grants: 10_000,
        }
    }
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host.
pub fn valid_webhook_url(url: &str) -> bool {
    url.len() <= 2048
        && reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
}
impl Config {
    /// `ingest_fair_slots`, with 0 meaning one per core.
    pub fn ingest_slots(&self) -> usize {
        match self.ingest_fair_slots {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// Why a configuration could not be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Read `path`, apply `PHOENIX_*` env overrides, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parse TOML text (no env, no validation).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })
    }

    /// Apply `PHOENIX_LISTEN`, `PHOENIX_DATA_DIR`, `PHOENIX_OPERATOR_TOKEN` (and `PHOENIX_CLUSTER_*`
    /// to a `[cluster]` table).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("PHOENIX_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("PHOENIX_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("PHOENIX_OPERATOR_TOKEN") {
            self.operator_token = Secret::new(v);
        }
        if let Some(c) = &mut self.cluster {
            c.apply_env(&get);
        }
    }

    /// Every problem, each with its path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(c) = &self.cluster {
            c.problems(&mut problems);
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "listen: {:?} is not an address like 127.0.0.1:8080",
                self.listen
            ));
        }
        if self.operator_token.expose().len() < 8 {
            problems.push("operator_token: must be at least 8 characters".into());
        }
        at_least_one(
            &mut problems,
            &[
                ("dedupe_window_seconds", self.dedupe_window_seconds == 0),
                ("dedupe_capacity", self.dedupe_capacity == 0),
            ],
        );
        if self.ws_outbound_queue == 0 || self.ws_max_inflight_events < 100 {
            problems.push(
                "ws_outbound_queue / ws_max_inflight_events: need at least 1 frame and 100 events"
                    .into(),
            );
        }
        if self.store_reopen_initial_ms == 0
            || self.store_reopen_max_ms < self.store_reopen_initial_ms
        {
            problems.push(
                "store_reopen_initial_ms / store_reopen_max_ms: initial must be at least 1 and at most max"
                    .into(),
            );
        }
        if self.retention_interval_seconds == 0 || self.disk_check_interval_ms == 0 {
            problems.push(
                "retention_interval_seconds / disk_check_interval_ms: must be at least 1".into(),
            );
        }
        at_least_one(
            &mut problems,
            &[
                ("ws_max_subscriptions", self.ws_max_subscriptions == 0),
                ("ws_max_connections", self.ws_max_connections == 0),
                ("max_concurrent_requests", self.max_concurrent_requests == 0),
            ],
        );
        for (key, v) in [
            (
                "http_header_timeout_seconds",
                self.http_header_timeout_seconds,
            ),
            ("http_body_timeout_seconds", self.http_body_timeout_seconds),
            ("http_idle_timeout_seconds", self.http_idle_timeout_seconds),
        ] {
            if !(1..=86_400).contains(&v) {
                problems.push(format!(
                    "{key}: must be 1 to 86400 seconds (0 would close every connection)"
                ));
            }
        }
        at_least_one(
            &mut problems,
            &[("max_connections", self.max_connections == 0)],
        );
        if !HTTP_URI_BYTES.contains(&self.http_max_uri_bytes) {
            problems.push(format!(
                "http_max_uri_bytes: must be {} to {}",
                HTTP_URI_BYTES.start(),
                HTTP_URI_BYTES.end()
            ));
        }
        if !HTTP_HEADER_BYTES.contains(&self.http_max_header_bytes) {
            problems.push(format!(
                "http_max_header_bytes: must be {} to {}",
                HTTP_HEADER_BYTES.start(),
                HTTP_HEADER_BYTES.end()
            ));
        }
        let w = &self.webhooks;
        if w.timeout_ms == 0 || w.retry_initial_ms == 0 || w.poll_ms == 0 {
            problems.push(
                "webhooks: timeout_ms, retry_initial_ms and poll_ms must be at least 1".into(),
            );
        }
        if w.retry_max_ms < w.retry_initial_ms {
            problems.push("webhooks.retry_max_ms: must be at least retry_initial_ms".into());
        }
        if w.max_in_flight_per_tenant == 0 || w.close_results_size == 0 {
            problems.push(
                "webhooks: max_in_flight_per_tenant and close_results_size must be at least 1"
                    .into(),
            );
        }
        at_least_one(
            &mut problems,
            &[
                (
                    "max_leaderboards_per_tenant",
                    self.max_leaderboards_per_tenant == 0,
                ),
                (
                    "leaderboard_feed_buffer_events",
                    self.leaderboard_feed_buffer_events == 0,
                ),
                ("leaderboard_threads", self.leaderboard_threads == 0),
                ("commit_round_kb_alone", self.commit_round_kb_alone == 0),
                (
                    "commit_round_kb_per_tenant",
                    self.commit_round_kb_per_tenant == 0,
                ),
            ],
        );
        if self.actor_restart_initial_ms == 0
            || self.actor_restart_max_ms < self.actor_restart_initial_ms
        {
            problems.push(
                "actor_restart_initial_ms / actor_restart_max_ms: need 1 ≤ initial ≤ max".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !valid_tenant_id(&t.id) {
                problems.push(format!(
                    "tenants[{i}].id: {:?} must be 1-64 characters of A-Z a-z 0-9 - _ .",
                    t.id
                ));
            }
            if !seen.insert(&t.id) {
                problems.push(format!("tenants[{i}].id: {:?} is declared twice", t.id));
            }
            if t.secret.expose().len() < 16 {
                problems.push(format!("tenants[{i}].secret: must be at least 16 bytes"));
            }
            if let Some(url) = &t.webhook_url {
                if !valid_webhook_url(url) {
                    problems.push(format!(
                        "tenants[{i}].webhook_url: {url:?} is not an http:// or https:// URL"
                    ));
                }
            }
            let declared = t.leaderboards.len();
            if declared > self.max_leaderboards_per_tenant {
                problems.push(format!(
                    "tenants[{i}].leaderboards: {declared} declared, at most \
                     max_leaderboards_per_tenant ({}) allowed",
                    self.max_leaderboards_per_tenant
                ));
            }
            let mut ids = std::collections::HashSet::new();
            for (j, (id, json)) in t.leaderboard_json().into_iter().enumerate() {
                let at = format!("tenants[{i}].leaderboards[{j}]");
                if !ids.insert(id.clone()) {
                    problems.push(format!("{at}.id: {id:?} is declared twice"));
                }
                if let Err(e) =
                    phoenix_actors::leaderboard::definition::Definition::from_json(&id, &json)
                {
                    problems.push(format!("{at}.{e}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Tenant ids appear in URLs, sled tree names and metric labels: keep them plain.
/// The same rule as leaderboard ids.
pub fn valid_tenant_id(id: &str) -> bool {
    phoenix_actors::leaderboard::definition::valid_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        listen = "127.0.0.1:0"
        data_dir = "/tmp/x"
        operator_token = "operator-secret"
        [[tenants]]
        id = "acme"
        secret = "0123456789abcdef"
    "#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::from_toml(GOOD).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dedupe_window_seconds, 300);
        assert_eq!(
            (c.http_header_timeout_seconds, c.http_body_timeout_seconds),
            (10, 10)
        );
        assert_eq!(
            (c.http_idle_timeout_seconds, c.max_connections),
            (60, 10_000)
        );
        assert_eq!(c.tenants[0].status, TenantStatus::Active);
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "secrets are masked"
        );
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::from_toml(GOOD).unwrap();
        c.apply_env(|k| (k == "PHOENIX_DATA_DIR").then(|| "/elsewhere".to_string()));
        assert_eq!(c.data_dir, PathBuf::from("/elsewhere"));
        assert_eq!(c.listen, "127.0.0.1:0");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::from_toml(&format!("{GOOD}\nbogus = 1")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn tenant_and_engine_limits_have_defaults_and_are_checked() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.max_leaderboards_per_tenant, 100);
        assert_eq!(
            (c.actor_restart_initial_ms, c.actor_restart_max_ms),
            (100, 30_000)
        );
        let boards: String = (0..3)
            .map(|i| {
                format!(
                    "[[tenants.leaderboards]]\nid = \"b{i}\"\nrules = [{{ event_type = \"*\", points_expression = \"1\" }}]\n"
                )
            })
            .collect();
        let text =
            format!("max_leaderboards_per_tenant = 2\nactor_restart_max_ms = 10\n{GOOD}{boards}");
        let err = Config::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "tenants[0].leaderboards: 3 declared, at most max_leaderboards_per_tenant (2)"
            ),
            "{err}"
        );
        assert!(
            err.contains("actor_restart_initial_ms / actor_restart_max_ms"),
            "{err}"
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let text = r#"
            listen = "nowhere"
            operator_token = "x"
            dedupe_window_seconds = 0
            http_header_timeout_seconds = 0
            max_connections = 0
            http_max_uri_bytes = 10
            [[tenants]]
            id = "bad id"
            secret = "short"
            [[tenants]]
            id = "bad id"
            secret = "0123456789abcdef"
            [[tenants.leaderboards]]
            id = "xp"
            rules = [{ event_type = "*", points_expression = "1 +" }]
        "#;
        let err = Config::from_toml(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        for needle in [
            "listen:",
            "operator_token:",
            "dedupe_window_seconds:",
            "http_header_timeout_seconds: must be 1 to 86400",
            "max_connections: must be at least 1",
            "http_max_uri_bytes: must be 256 to 65000",
            "tenants[0].id:",
            "tenants[0].secret:",
            "tenants[1].id: \"bad id\" is declared twice",
            "tenants[1].leaderboards[0].rules[0].points_expression: at position 3",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }
}
