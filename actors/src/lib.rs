//! The Phoenix engine: actors, the durable event log, dedupe — no HTTP in here.
//!
//! Supervision tree:
//!
//! ```text
//! Supervisor (supervisor.rs)                restarts a failed child from sled
//!  ├── TenantActor "acme"   (tenant.rs)     dedupe window + log position
//!  ├── LeaderboardActor "acme/weekly"       (leaderboard/actor.rs, answers and closes in
//!  │                                         leaderboard/actor/) takes decoded entries from
//!  │                                         its tenant's feed; checkpoint + replay on restart;
//!  │                                         shared live views for push subscribers
//!  └── …                                     (restarts back off: 100 ms → 30 s, jittered)
//! Feed "acme" (feed.rs)                     one reader per tenant: follows the durable head,
//!                                            decodes each entry once, wakes only the boards
//!                                            whose rules can match its type
//! SessionActor (src/gateway/ws/session.rs)  one per WebSocket connection, in the edge crate;
//!                                            views into the bounded outbound queue, resync
//! Committer threads (committer.rs)          writer: each round's events as few log records as
//!                                            fit, bounded bytes per tenant per round (fair);
//!                                            fsync: one fsync acknowledges whole rounds
//! SledLog (store.rs)                        one sled tree per tenant, ≤ 64 KB records,
//!                                            LZ4-compressed from 512 bytes
//! Upkeep task (engine/maintenance.rs)       low-disk guard (retention.rs) every second,
//!                                            log retention in bounded steps every minute
//! State stores (stores/, engine/stores.rs) one trait per durable fact, sled beside it,
//!                                            a contract suite each; the edge gets them from
//!                                            the engine, never a sled handle:
//!   TenantRegistry (stores/tenants.rs)      admin tenant changes, one record per tenant
//!   DimensionStore (stores/dimensions.rs)   Ninja Metrics dimensions: change + applied
//!                                            marker, one transaction
//!   RewardLedger → RewardStore (rewards.rs) vote-reward dedupe + grants, one transaction each
//!   WebhookOutbox → Outbox (outbox.rs)      durable webhook deliveries, retried by the edge
//! BoardStore (leaderboard/board_store.rs)   a board's checkpoint and frozen-window history:
//!                                            the contract (trait), its sled implementation
//!                                            and the contract suite every backend must pass
//! CloseLedger (leaderboard/close.rs)        a window close: record + grants + outbox, exactly
//!                                            once; sled CloseStore (one tx), KV KvCloses
//! cluster/ (used by src/cluster/)          JetStreamLog, KV leases, EventLog contract suite
//! ```
//!
//! Durability: the committer's fsync acknowledges events; `Engine::persist` makes everything
//! else durable (the log's group commit, then the state store's own fsync). A failed write
//! or fsync latches the store failed (`Engine::store_healthy`); the edge heals it by
//! shutting the engine down and starting a new one on the reopened store, which rebuilds
//! positions from the log as at start-up.
//!
//! Leaderboard modules: pure parts decide — `definition` (with `matcher`, `expr`, `schedule`),
//! `window`, `state`, `rank/` (the rank index: order, key encoding, nodes, tree, user table,
//! API) — and `actor` orchestrates; `query` holds what a board answers (and `QueryError`),
//! `clock` the injectable "now". Each parser returns a typed error, one variant per cause.
//!
//! Data flow: the edge validates an [`event::Event`], calls [`engine::Engine::ingest`]; the
//! tenant actor dedupes and assigns positions, hands the events and its reply to the
//! committer, which writes them, answers after `fsync` and advances the tenant's durable
//! head. The tenant's feed reads and decodes the log up to that head once; leaderboard actors
//! take the entries their rules can match, score events into event-time
//! windows (rank index per window), checkpoint, freeze closed windows into history, and
//! publish view changes to sessions.

pub mod cluster;
pub mod committer;
pub mod dedupe;
pub mod engine;
pub mod error;
pub mod event;
pub mod feed;
pub mod leaderboard;
pub mod outbox;
pub mod retention;
pub mod rewards;
pub mod store;
pub mod stores;
pub mod supervisor;
pub mod tenant;
pub mod throttle;
pub mod xorshift;

pub use engine::{Engine, EngineConfig, EngineStores};
pub use error::EngineError;
pub use event::{Event, EventError};
pub use store::{EventLog, LogEntry, SledLog};
pub use tenant::Outcome;
