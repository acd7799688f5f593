//! `run(config, listener, shutdown)`: the whole service, started by `main` (the black-box
//! tests start the binary on `127.0.0.1:0`). `app(state)` builds the router, every route in
//! one place; `transport` serves it over HTTP/1 with deadlines and a connection limit.

pub(crate) mod conn;
mod edge;
pub mod transport;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use phoenix_actors::{Engine, EngineConfig};
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::cluster::Node;
use crate::config::Config;
use crate::engine_slot::{self, EngineSlot, Healing, Opener, Running};
use crate::error::ApiError;
use crate::extract::Operator;
use crate::gateway::{self, events, health, leaderboards as lb, tokens, ws};
use crate::state::AppState;
use crate::tenants::Tenants;

/// The process-wide Prometheus recorder (installed once, shared by every `run`).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                ])
                .expect("static buckets")
                .set_buckets_for_metric(
                    Matcher::Suffix("batch_size".into()),
                    &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
                )
                .expect("static buckets")
                .install_recorder()
                .expect("install the Prometheus recorder once")
        })
        .clone()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such endpoint".into())
}

/// Listen on `addr` with a backlog of 1,024 connections. The standard library's 128 turns a
/// burst of connects (clients reconnecting after a restart, a load test) into SYNs dropped
/// and retried a second later.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a) {
            Ok(()) => return socket.listen(1024),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// The router `run` serves. The concurrency limit covers every route but the probes:
/// `/health`, `/ready`, `/metrics` and `/openapi.json` answer however many requests wait.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_concurrent_requests;
    let head_limits = edge::Limits::from_config(&state.config);
    let limited = Router::new()
        .route("/v1/events", post(events::ingest_one).get(events::read_log))
        .route("/v1/events/bulk", post(events::ingest_bulk))
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/leaderboards", get(lb::list))
        .route(
            "/v1/leaderboards/{id}",
            put(lb::put).get(lb::get).delete(lb::delete),
        )
        .route("/v1/leaderboards/{id}/standings", get(lb::standings))
        .route("/v1/leaderboards/{id}/users/{user_id}", get(lb::user))
        .route("/v1/leaderboards/{id}/results", get(lb::closes))
        .route(
            "/v1/leaderboards/{id}/windows/{key}/results",
            get(lb::results),
        )
        .merge(crate::webhooks::routes())
        .route("/v1/leaderboards/{id}/standings/users", post(lb::users))
        .route("/v1/leaderboards/{id}/windows", get(lb::windows))
        .route("/v1/leaderboards/{id}/members", get(lb::members))
        .route(
            "/v1/leaderboards/{id}/members/{user_id}",
            post(lb::join).delete(lb::leave),
        )
        .route("/", get(crate::dashboard::page))
        .merge(operator_routes(&state))
        .merge(crate::sources::ninja_metrics::routes())
        .merge(crate::sources::gamemonitoring::routes())
        .layer(GlobalConcurrencyLimitLayer::new(limit));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .merge(limited)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(gateway::BODY_LIMIT))
        // Every bare error below here (405, extractor rejections) leaves in the envelope …
        .layer(axum::middleware::map_response(edge::envelope))
        // … and an oversized head never reaches a route.
        .layer(axum::middleware::from_fn(move |req, next| {
            edge::limit_head(head_limits, req, next)
        }))
        .with_state(state)
}

/// The admin and dashboard APIs (`/v1/admin/*`): one sub-router behind the operator check.
fn operator_routes(state: &AppState) -> Router<AppState> {
    crate::admin::routes()
        .merge(crate::dashboard::routes())
        .route_layer(axum::middleware::from_extractor_with_state::<Operator, _>(
            state.clone(),
        ))
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h.saturating_mul(3600))
}

/// Why the engine could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {0}")]
    DataDir(std::path::PathBuf, #[source] std::io::Error),
    #[error("store unavailable")]
    Store(#[from] phoenix_actors::EngineError),
    #[error("tenants.{tenant}.leaderboards.{id}")]
    Leaderboard {
        tenant: String,
        id: String,
        #[source]
        source: phoenix_actors::leaderboard::query::QueryError,
    },
    #[error("could not restore tenants changed through the admin API")]
    Restore(#[from] crate::admin::RestoreError),
    #[error("cluster node")]
    Cluster(#[from] crate::cluster::OpenError),
}

fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        clock: phoenix_actors::leaderboard::clock::system_clock(),
        dedupe_window: Duration::from_secs(config.dedupe_window_seconds),
        dedupe_capacity: config.dedupe_capacity,
        call_timeout: Duration::from_secs(10),
        checkpoint_interval: Duration::from_secs(config.checkpoint_interval_seconds),
        history_retention: Duration::from_secs(config.history_retention_days * 86_400),
        push_interval: Duration::from_millis(config.ws_push_interval_ms),
        data_dir: Some(config.data_dir.clone()),
        min_free_disk_bytes: config.min_free_disk_mb.saturating_mul(1 << 20),
        disk_check_interval: Duration::from_millis(config.disk_check_interval_ms),
        log_retention: hours(config.log_retention_hours),
        retention_overrides: config
            .tenants
            .iter()
            .filter_map(|t| t.log_retention_hours.map(|h| (t.id.clone(), hours(h))))
            .collect(),
        retention_interval: Duration::from_secs(config.retention_interval_seconds),
        close: phoenix_actors::leaderboard::actor::CloseSettings {
            results_size: config.webhooks.close_results_size,
            max_grants: config.webhooks.close_max_grants,
            outbox_max_per_tenant: config.webhooks.outbox_max_per_tenant,
            emit_timeout: Duration::from_secs(10),
        },
        max_leaderboards_per_tenant: config.max_leaderboards_per_tenant,
        feed_buffer_events: config.leaderboard_feed_buffer_events,
        commit_round_bytes_per_tenant: config.commit_round_kb_per_tenant.saturating_mul(1024),
        commit_round_bytes_alone: config.commit_round_kb_alone.saturating_mul(1024),
        restart: phoenix_actors::supervisor::Backoff {
            initial: Duration::from_millis(config.actor_restart_initial_ms),
            max: Duration::from_millis(config.actor_restart_max_ms),
            reset_after: Duration::from_secs(config.actor_restart_reset_seconds),
        },
        leaderboard_threads: config.leaderboard_threads,
        leaderboard_priority: config.leaderboard_priority,
    }
}

async fn open_engine(
    config: &Config,
    tenants: &[String],
    node: Option<&Arc<Node>>,
) -> Result<Engine, OpenError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| OpenError::DataDir(config.data_dir.clone(), e))?;
    if let Some(node) = node {
        // Tenants (and their configured boards) start when this node takes their lease.
        return Ok(crate::cluster::open_engine(node, config, engine_config(config)).await?);
    }
    let engine = Engine::open_sled(
        &config.data_dir,
        config.cache_mb * 1024 * 1024,
        config.log_compression,
        tenants,
        engine_config(config),
    )
    .await?;
    // Leaderboards declared in the config (validated at load); identical ones are untouched.
    for t in &config.tenants {
        for (id, json) in t.leaderboard_json() {
            engine
                .put_leaderboard(&t.id, &id, &json)
                .await
                .map_err(|source| OpenError::Leaderboard {
                    tenant: t.id.clone(),
                    id: id.clone(),
                    source,
                })?;
        }
    }
    Ok(engine)
}

/// Start the outbound webhook worker (logged, not fatal, if it cannot start).
fn start_webhooks(
    engine: &Engine,
    tenants: &Tenants,
    config: &Config,
) -> Option<tokio::task::JoinHandle<()>> {
    crate::webhooks::spawn(engine, tenants.clone(), config.webhooks.clone())
        .map_err(|e| tracing::error!(error = %e, "webhook worker not started"))
        .ok()
}

/// Open the engine, re-apply admin changes over the configured tenants, start the workers
/// that hold it. Admin changes that cannot be restored are logged, not fatal (as before).
async fn open_running(
    config: &Config,
    tenants: &Tenants,
    node: Option<&Arc<Node>>,
) -> Result<Running, OpenError> {
    let engine = open_engine(config, &tenants.ids(), node).await?;
    if let Err(e) = crate::admin::restore(&engine, tenants).await {
        let e = OpenError::from(e);
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "admin tenant changes not restored");
    }
    let workers = start_webhooks(&engine, tenants, config)
        .into_iter()
        .collect();
    Ok(Running { engine, workers })
}

/// Serve until `shutdown` resolves. If the store cannot be opened the service still starts
/// (`/health` 200, `/ready` 503, ingestion 503) and retries opening it with backoff; a store
/// that fails later is reopened the same way (`engine_slot.rs`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let tenants = Tenants::from_config(&config.tenants);
    let ids = tenants.ids();
    // Before the engine starts: actors look their counters up once, when they start.
    let metrics = metrics_handle();
    crate::metrics::describe_and_register();
    crate::gateway::ws::register_metrics();
    crate::webhooks::register_metrics(&ids);
    let node = match &config.cluster {
        Some(_) => Some(
            Node::connect(config.clone(), tenants.clone())
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let first = match open_running(&config, &tenants, node.as_ref()).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), data_dir = %config.data_dir.display(), "store unavailable; retrying");
            None
        }
    };
    let opener: Opener = {
        let (config, tenants, node) = (config.clone(), tenants.clone(), node.clone());
        Arc::new(move || {
            let (config, tenants, node) = (config.clone(), tenants.clone(), node.clone());
            Box::pin(async move {
                open_running(&config, &tenants, node.as_ref())
                    .await
                    .map_err(|e| Box::new(e) as engine_slot::OpenError)
            })
        })
    };
    let slot = EngineSlot::default();
    let keeper = engine_slot::keep(
        slot.clone(),
        first,
        opener,
        Healing {
            data_dir: config.data_dir.clone(),
            backoff: phoenix_actors::supervisor::Backoff {
                initial: Duration::from_millis(config.store_reopen_initial_ms),
                max: Duration::from_millis(config.store_reopen_max_ms),
                reset_after: Duration::ZERO,
            },
            check_every: Duration::from_millis(config.disk_check_interval_ms),
        },
    );
    // The recorder keeps histogram samples until upkeep folds them in: run it, or memory
    // grows with every fsync until someone scrapes /metrics.
    let upkeep = {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        })
    };
    if !config.transparent_huge_pages {
        tokio::spawn(crate::memory::huge_pages_off_once_started(slot.clone()));
    }
    let config_slots = config.ingest_slots();
    let state = AppState {
        config,
        tenants,
        engine: slot,
        metrics,
        gate: crate::fair::FairGate::new(config_slots),
    };
    let transport = transport::Transport::from_config(&state.config);
    let slot = state.engine.clone();
    let mut router = app(state);
    let mut cluster = None;
    if let Some(node) = &node {
        router = node.wrap(router);
        cluster = Some(node.start(slot, router.clone()));
    }
    transport::serve(listener, router, transport, shutdown).await?;
    if let Some(c) = cluster {
        c.stop().await;
    }
    upkeep.abort();
    keeper.stop().await;
    Ok(())
}
